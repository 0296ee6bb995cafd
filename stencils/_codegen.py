"""Python source of a kernel specialised to one stencil's structure.

`generate_source` plans the kernel once (`KernelPlan`: the source rows it
reads, the columns of its box, its expression as straight-line statements),
then writes each generated function from the plan with one small function:

- ``_rows``: the expression over runs of output lines, a vectorised, call-free
  loop over source rows (the hot loop; see `_rows_source`); for strides 2-4
  along the last axis it calls ``_run_strided`` or ``_run_dense`` per run;
- ``kernel``: the items of a call (output line, column block) cut into runs of
  lines whose reads all lie inside the array, and edge pieces filled through
  the border rule (see `_kernel_source`);
- ``team_float32`` / ``team_float64``: the entry points the engine compiles and
  calls, C callbacks that run ``kernel`` over the items each thread claims
  (``kernel_serial`` runs it through Python, where an entry point failed).

Weights and constants are not in the source: they are read from the constant
array at run time (slots from `FIXED_SLOTS` on), so stencils that differ only
in their numbers share one kernel.
"""

from __future__ import annotations

from dataclasses import dataclass

from . import _expr as ex
from . import _kernels as kn

# Slots 0, 1, 2 of the constant array: typed zero, one and the fill value.
FIXED_SLOTS = 3
# Above this many taps a weighted sum is computed one kernel row at a time.
_SINGLE_PASS_TAPS = 32
# Strides along the last axis up to this are computed densely, then subsampled.
_DENSE_STEP_MAX = 4
# ... for lines of at least this many output points.
_DENSE_MIN_POINTS = 32
# Output points per edge piece (fewer for strides above 4, so the buffer stays small).
_PIECE_POINTS = 256
# Cells of the buffer the pieces are queued in.
_PIECE_BUFFER_CELLS = 1 << 16
# Runs of lines queued before the hot loop computes them.
_RUN_SLOTS = 256


def scalar_template(op):
    """How generated code spells `op` ({0}, {1}, {2}: its operands)."""
    return kn.SCALAR_TEMPLATES[op]


@dataclass(frozen=True)
class KernelPlan:
    """What the generated functions are written from.

    ``row_keys``: the distinct source rows read, as box coordinates on the outer
    axes (row ``m`` of the hot loop is ``v{m}``); ``kmin``, ``kmax``: the box
    columns read; ``statements``: ``(name, expression)`` per node, reads spelled
    ``v{m}[q + d]`` for the point's first column ``q``; ``passes``: for a large
    weighted sum of reads, ``(m, ((d, param), ...))`` per source row, computed
    one row per pass; ``nodes``: the expression's size.
    """

    ndim: int
    step_last: int
    row_keys: tuple
    kmin: int
    kmax: int
    statements: tuple
    result: str
    nparams: int
    passes: tuple | None
    nodes: int

    @property
    def nrows(self):
        return len(self.row_keys)

    @property
    def box(self):
        return self.kmax - self.kmin + 1

    @property
    def dense_step(self):
        """Strided reads are not vectorised: small strides compute every point, then subsample."""
        return 1 < self.step_last <= _DENSE_STEP_MAX

    @property
    def piece_points(self):
        return max(1, min(_PIECE_POINTS, _PIECE_POINTS * 4 // self.step_last))

    @property
    def piece_cols(self):
        """Columns of the piece buffer: the widest piece."""
        return (self.piece_points - 1) * self.step_last + self.box

    @property
    def piece_rows(self):
        """Rows of the piece buffer: ``nrows`` per queued line, a few hundred lines."""
        lines = max(1, _PIECE_BUFFER_CELLS // (self.piece_cols * self.nrows))
        return lines * self.nrows


def expression_statements(order, spell_read):
    """Straight-line statements computing an expression, as every generated kernel
    writes them: ``(name, right-hand side)`` per node of `order` (topological),
    reads spelled by ``spell_read(node)``, weights and constants as ``p{i}``.

    Returns the statements, the parameters in slot order, and the result's
    name.  Kernels that must round alike (the engine's and the fused time
    steps of stencils._iterate) share this one spelling: the same statements
    compile to the same operations.
    """
    params, names, statements = [], {}, []
    for i, node in enumerate(order):
        if node.op == "read":
            rhs = spell_read(node)
        elif node.op == "const":
            params.append(node.args[0])
            rhs = f"p{len(params) - 1}"
        elif node.op == "lin":
            terms = []
            for t, w in zip(node.args, node.weights):
                params.append(w)
                terms.append(f"p{len(params) - 1} * {names[id(t)]}")
            rhs = " + ".join(terms)
        else:
            rhs = scalar_template(node.op).format(*(names[id(a)] for a in node.args))
        names[id(node)] = f"x{i}"
        statements.append((f"x{i}", rhs))
    return statements, params, f"x{len(order) - 1}"


def plan_kernel(stencil, step_last):
    """The `KernelPlan` of `stencil` at stride `step_last`, and its parameters."""
    expr, center, ndim = stencil.expr, stencil.center, stencil.ndim
    order = ex.topological_order(expr)
    boxes = {id(n): tuple(c + d for c, d in zip(center, n.args))
             for n in order if n.op == "read"}
    row_keys = sorted({k[:-1] for k in boxes.values()}) or [(0,) * (ndim - 1)]
    row_of = {k: m for m, k in enumerate(row_keys)}
    last = [k[-1] for k in boxes.values()] or [0]
    kmin = min(last)

    def spell_read(node):
        k = boxes[id(node)]
        return f"v{row_of[k[:-1]]}[q + {k[-1] - kmin}]"

    statements, params, result = expression_statements(order, spell_read)
    passes = None
    # A large weighted sum of reads is computed one kernel row per pass over the
    # output row (which stays in L1): one pass with every tap needs more weights
    # than there are vector registers, and the spills cost more than the passes.
    if (expr.op == "lin" and len(expr.args) > _SINGLE_PASS_TAPS
            and all(t.op == "read" for t in expr.args)):
        first_param = len(params) - len(expr.args)
        by_row = {}
        for i, t in enumerate(expr.args):
            k = boxes[id(t)]
            by_row.setdefault(row_of[k[:-1]], []).append((k[-1] - kmin, first_param + i))
        passes = tuple((m, tuple(taps)) for m, taps in sorted(by_row.items()))
    plan = KernelPlan(ndim, step_last, tuple(row_keys), kmin, max(last), tuple(statements),
                      result, len(params), passes, len(order))
    return plan, params


def _expression_loop(plan, indent, count, target, step):
    """The expression at points ``t`` of a line, written to ``target[t]``."""
    pad = " " * indent
    head = [pad + f"for t in range({count}):", pad + f"    q = t * {step}"]
    if plan.passes is not None:
        lines = []
        for i, (m, taps) in enumerate(plan.passes):
            terms = " + ".join(f"p{j} * v{m}[q + {d}]" for d, j in taps)
            # o = o + a + b, not o += a + b: the sum left to right, as in one pass.
            rhs = terms if i == 0 else f"{target}[t] + {terms}"
            lines += head + [pad + f"    {target}[t] = {rhs}"]
        return lines
    body = [pad + f"    {name} = {rhs}" for name, rhs in plan.statements]
    return head + body + [pad + f"    {target}[t] = {plan.result}"]


def _rows_source(plan):
    """``_rows``: the expression over runs of lines.

    Run ``i`` is ``runs[:, i]`` = (line, count, e0, e1, first, row_step): lines
    ``line .. line + count - 1``, columns ``[e0, e1)``; its line ``l`` reads
    source row ``rows[i, m] + l * row_step`` of `src2` for each key, from
    column ``first`` on.  The vectorised loop runs over many
    lines inside one function with no calls in it, as a hand-written kernel
    would: with the border code's calls in the same loop nest (or one call per
    line), LLVM kept the weights on the stack and reloaded them on every
    iteration (measured 1.5x slower).  With a stride of 2-4 along the last
    axis, each run is one call of ``_run_strided`` or ``_run_dense``, which
    load the weights themselves.
    """
    head = "@njit(cache=CACHE, nogil=True, error_model='numpy', fastmath=FASTMATH)"
    s = plan.step_last
    if not plan.dense_step:
        return ([head, "def _rows(out2, src2, runs, rows, nruns, c, dense):"]
                + _constants_loaded(plan) + ["    for i in range(nruns):"]
                + _run_fields(plan, 8) + _line_loop(plan, 8, "e1 - e0", "o", s))
    # LLVM does not vectorise the strided reads v[t*S + d]: for small S it is
    # faster to compute every point of a long line, contiguously, and keep
    # every S-th; short lines are faster read strided (measured 1.7x on 14
    # points).  Each way is its own function, called once per run (a branch
    # per line cost 1.3x): with both loops in one function, the strided one
    # ran 1.3-1.9x slower on LeNet's pooling (5-14 points a line).
    strided = ([head, "def _run_strided(out2, src2, runs, rows, i, c):"] + _constants_loaded(plan)
               + _run_fields(plan, 4) + _line_loop(plan, 4, "e1 - e0", "o", s))
    dense = ([head, "def _run_dense(out2, src2, runs, rows, i, c, dense):"]
             + _constants_loaded(plan) + _run_fields(plan, 4)
             + _line_loop(plan, 4, f"(e1 - e0 - 1) * {s} + 1", "dense", 1)
             + ["        for t in range(e1 - e0):", f"            o[t] = dense[t * {s}]"])
    return strided + ["", ""] + dense + ["", "", head] + [
        "def _rows(out2, src2, runs, rows, nruns, c, dense):",
        "    for i in range(nruns):",
        f"        if runs[3, i] - runs[2, i] < {_DENSE_MIN_POINTS}:",
        "            _run_strided(out2, src2, runs, rows, i, c)",
        "        else:",
        "            _run_dense(out2, src2, runs, rows, i, c, dense)",
    ]


def _constants_loaded(plan):
    return ["    _zero = c[0]", "    _one = c[1]"] + [
        f"    p{i} = c[{FIXED_SLOTS + i}]" for i in range(plan.nparams)]


def _run_fields(plan, indent):
    """Run ``i``'s fields (see `_rows_source`) as locals.

    Each is at least 0 already; ``max(.., 0)`` lets LLVM prove it, so that the
    indices built from them need no negative-index wraparound: on lines of
    5-14 points that check cost 1.5-2x (LeNet's pooling).
    """
    pad = " " * indent
    return [pad + f"{name} = max(runs[{k}, i], 0)" for k, name in
            ((0, "line"), (2, "e0"), (3, "e1"), (4, "first"), (5, "row_step"))] + [
        pad + f"r{m} = max(rows[i, {m}], 0)" for m in range(plan.nrows)]


def _line_loop(plan, indent, count, target, step):
    """The lines of run ``i``, each as views of its source rows and the expression."""
    pad = " " * indent
    lines = [pad + "for l in range(runs[1, i]):", pad + "    o = out2[line + l, e0:e1]"]
    lines += [pad + f"    v{m} = src2[r{m} + l * row_step, first:]" for m in range(plan.nrows)]
    return lines + _expression_loop(plan, indent + 4, count, target, step)


def _constants_source(plan):
    """The row keys, and their range per outer axis, as module constants."""
    keys = [list(k) or [0] for k in plan.row_keys]
    nax = len(keys[0])
    lo = [min(k[a] for k in keys) for a in range(nax)]
    hi = [max(k[a] for k in keys) for a in range(nax)]
    return [
        f"_KEYS = np.array({keys}, dtype=np.int64)",
        f"_KEY_LO = np.array({lo}, dtype=np.int64)",
        f"_KEY_HI = np.array({hi}, dtype=np.int64)",
    ]


def _kernel_source(plan):
    """``kernel``: items ``[first_item, last_item)`` of a call, one thread.

    A flat template (no branching on the plan beyond literals; the edge part is
    `_edge_pieces_source`): each item's line is resolved through the border rule; lines whose
    rows all lie inside the array, and the lines after them in the same plane,
    are queued as one run of their interior columns; the columns at each end,
    and lines that meet a Fill row, are copied box-wide through the border
    rule into a piece buffer that is then one more source for ``_rows``.
    """
    s, kmin, nrows = plan.step_last, plan.kmin, plan.nrows
    ndense = (f"max(min(colblock, width), {plan.piece_points}) * {s}" if plan.dense_step
              else "1")
    slots = plan.piece_rows // nrows + 1
    return [
        "@njit(cache=CACHE, nogil=True, error_model='numpy')",
        "def kernel(src2, out2, c, out_outer, src_outer, lo, step, code, colblock, first_item,",
        "           last_item):",
        "    fill = c[2]",
        "    n_l = src2.shape[1]",
        "    width = out2.shape[1]",
        f"    lo_l = lo[{plan.ndim - 1}]",
        "    nblk = (width + colblock - 1) // colblock",
        "    geometry = np.empty((GEOMETRY_ROWS, out_outer.shape[0]), dtype=np.int64)",
        "    ya, yb = outer_geometry(out_outer, src_outer, lo, step, _KEY_LO, _KEY_HI, geometry)",
        "    ny = geometry[OUTER, out_outer.shape[0] - 1]",
        "    row_step = geometry[STEP, out_outer.shape[0] - 1]",
        # Interior columns [ja, jb): every read j*S + lo_l + k, k in [kmin, kmax], in bounds.
        f"    ja = min(width, max(0, -((lo_l + {kmin}) // {s})))",
        f"    jb = min(width, max(0, (n_l - 1 - lo_l - {plan.kmax}) // {s} + 1))",
        f"    piece = np.empty(({plan.piece_rows}, {plan.piece_cols}), dtype=src2.dtype)",
        f"    pieces = np.empty((6, {slots}), dtype=np.int64)",
        f"    piece_rows = np.empty(({slots}, {nrows}), dtype=np.int64)",
        f"    runs = np.empty((6, {_RUN_SLOTS}), dtype=np.int64)",
        f"    run_rows = np.empty(({_RUN_SLOTS}, {nrows}), dtype=np.int64)",
        f"    dense = np.empty({ndense}, dtype=src2.dtype)",
        # Counts as np.int64, never literals: numba compiles ``_rows`` again for
        # each literal argument it is called with.
        "    nruns = np.int64(0)",
        "    npieces = np.int64(0)",
        "    prow = 0",
        "    item = first_item",
        "    while item < last_item:",
        f"        if nruns == {_RUN_SLOTS}:",
        "            _rows(out2, src2, runs, run_rows, nruns, c, dense)",
        "            nruns = np.int64(0)",
        # The line's rows go straight into the next run's slot.
        "        rows = run_rows[nruns]",
        "        line = item // nblk",
        "        j0 = (item - line * nblk) * colblock",
        "        j1 = min(j0 + colblock, width)",
        "        valid = line_rows(line, rows, geometry, _KEYS, code)",
        "        y = line % ny",
        "        count = 1",
        "        if valid and nblk == 1 and ya <= y < yb:",
        "            count = min(yb - y, last_item - item)",
        # A line that meets a Fill row is computed whole from pieces.
        "        ia = ja if valid else j1",
        "        ib = jb if valid else j1",
        "        e0 = max(j0, ia)",
        "        e1 = min(j1, ib)",
        "        if e1 > e0:",
        "            runs[0, nruns] = line",
        "            runs[1, nruns] = count",
        "            runs[2, nruns] = e0",
        "            runs[3, nruns] = e1",
        f"            runs[4, nruns] = e0 * {s} + lo_l + {kmin}",
        "            runs[5, nruns] = row_step",
        "            nruns += 1",
    ] + _edge_pieces_source(plan) + [
        "        item += count",
        "    _rows(out2, piece, pieces, piece_rows, npieces, c, dense)",
        "    _rows(out2, src2, runs, run_rows, nruns, c, dense)",
    ]


def _edge_pieces_source(plan):
    """The part of ``kernel`` that queues the columns of a run's lines outside
    ``[ia, ib)`` (the columns at each end, or the whole line when it meets a
    Fill row) as pieces: the box-wide columns each line reads, copied through
    the border rule into ``nrows`` rows of the piece buffer, the lines of a run
    one under the other, so that they are one more run for ``_rows`` (a run
    per line measured 1.2x slower on 128^3).  Most lines have none: the test
    keeps their cost out of runs of short lines."""
    s, nrows = plan.step_last, plan.nrows
    return [
        "        if ia > j0 or max(ia, ib) < j1:",
        "            for part in range(2):",
        "                e0 = j0 if part == 0 else max(j0, max(ia, ib))",
        "                e1 = min(j1, ia) if part == 0 else j1",
        f"                for p0 in range(e0, e1, {plan.piece_points}):",
        f"                    p1 = min(e1, p0 + {plan.piece_points})",
        f"                    ncols = (p1 - p0 - 1) * {s} + {plan.box}",
        f"                    first = p0 * {s} + lo_l + {plan.kmin}",
        "                    l0 = 0",
        "                    while l0 < count:",
        f"                        if prow + {nrows} > {plan.piece_rows}:",
        "                            _rows(out2, piece, pieces, piece_rows, npieces, c, dense)",
        "                            npieces = np.int64(0)",
        "                            prow = 0",
        f"                        n = min(count - l0, ({plan.piece_rows} - prow) // {nrows})",
        "                        for l in range(l0, l0 + n):",
        f"                            at = prow + (l - l0) * {nrows}",
        f"                            for m in range({nrows}):",
        "                                row = rows[m] + l * row_step if rows[m] >= 0 else -1",
        "                                for qq in range(ncols):",
        "                                    rr = first + qq",
        "                                    if rr < 0 or rr >= n_l:",
        "                                        rr = resolve_index(rr, n_l, code)",
        "                                    piece[at + m, qq] = (",
        "                                        src2[row, rr] if row >= 0 and rr >= 0 else fill)",
        "                        pieces[0, npieces] = line + l0",
        "                        pieces[1, npieces] = n",
        "                        pieces[2, npieces] = p0",
        "                        pieces[3, npieces] = p1",
        "                        pieces[4, npieces] = 0",
        f"                        pieces[5, npieces] = {nrows}",
        f"                        for m in range({nrows}):",
        "                            piece_rows[npieces, m] = prow + m",
        "                        npieces += 1",
        f"                        prow += n * {nrows}",
        "                        l0 += n",
    ]


def _entry_points_source(plan):
    """The engine's calls: ``team_float32`` and ``team_float64``, compiled as C
    callbacks ``int64(int64 block)`` (stencils._engine.run_team), run `kernel`
    over the items each thread claims from the block's counter; ``kernel_serial``
    runs it over every item through Python (where a team entry point failed)."""
    arrays = [("src2", "zero", 2), ("out2", "zero", 2), ("c", "zero", 1)] + [
        (name, "np.int64(0)", 1)
        for name in ("out_outer", "src_outer", "lo", "step", "counter")]
    lines = ["@njit(cache=CACHE, nogil=True, error_model='numpy', inline='always')",
             "def _team(address, zero):",
             f"    b = carray(pointer_at(address, np.int64(0)), ({_TEAM_BLOCK_WORDS},))"]
    at = 0
    for name, zero, ndim in arrays:
        shape = ", ".join(f"b[{at + 1 + axis}]" for axis in range(ndim)) + "," * (ndim == 1)
        lines.append(f"    {name} = carray(pointer_at(b[{at}], {zero}), ({shape}))")
        at += 1 + ndim
    lines += [
        f"    code, colblock, items, chunk = b[{at}], b[{at + 1}], b[{at + 2}], b[{at + 3}]",
        "    while True:",
        "        first = claim(counter, chunk)",
        "        if first >= items:",
        "            return 1",
        "        kernel(src2, out2, c, out_outer, src_outer, lo, step, code, colblock, first,",
        "               min(first + chunk, items))",
    ]
    for dtype in ("float32", "float64"):
        lines += ["", "", f"def team_{dtype}(address):",
                  f"    return _team(address, np.{dtype}(0))"]
    return lines + [
        "", "",
        "def kernel_serial(src2, out2, c, out_outer, src_outer, lo, step, code, colblock,",
        "                  nchunks):",
        "    kernel(src2, out2, c, out_outer, src_outer, lo, step, code, colblock, 0,",
        "           item_count(out2, colblock))",
    ]


# The team block: src2, out2, c, out_outer, src_outer, lo, step and the item
# counter (each its address and shape), then code, colblock, items and chunk.
_TEAM_BLOCK_WORDS = 22


def _header(fingerprint):
    return [
        f"# Generated by stencils for one stencil structure; fingerprint {fingerprint}.",
        "# Safe to delete: it is rewritten on demand.",
        "import numpy as np",
        "from numba import carray, njit",
        "from stencils._kernels import (CACHE, FASTMATH, resolve_index, op_max, op_min, op_fmax,",
        "                               op_fmin, op_sign, op_mod)",
        "from stencils._kernels_run import (GEOMETRY_ROWS, OUTER, STEP, item_count, line_rows,",
        "                                   outer_geometry)",
        "from stencils._kernels_team import claim, pointer_at",
    ]


def generate_source(stencil, step_last, fingerprint):
    """Python source of the kernel for `stencil` at stride `step_last` along the last axis.

    `step_last` is a literal in the source so that every index in the hot loop
    is provably non-negative (else LLVM emits gathers).  `fingerprint` (the
    engine's digest of every module generated code depends on) goes into the
    header.
    """
    plan, _ = plan_kernel(stencil, int(step_last))
    parts = [_header(fingerprint), _constants_source(plan), _rows_source(plan),
             _kernel_source(plan), _entry_points_source(plan)]
    return "\n\n\n".join("\n".join(part) for part in parts) + "\n"
