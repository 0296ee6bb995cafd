"""Lowering a stencil's expression into what the kernels run.

Two targets: a register program for the interpreter (stencils._kernels) and
Python source for a kernel specialised to the stencil (compiled by
stencils._engine).  Weights and constants are not baked into either: they are
passed at run time in one array, so stencils that differ only in their numbers
(every new kernel given to `correlate`, every training step's weights) share
one compiled kernel.  Loaded once before the loops, they are as fast as literal
constants (measured: 8.1 ms vs 10.7 ms for a 5x5 float32 4096^2 pass).
"""

from __future__ import annotations

import hashlib
import re

import numpy as np

from . import _expr as ex
from . import _kernels as kn

# Slots 0, 1, 2 of the constant array: typed zero, one and the fill value.
_FIXED = 3
# Above this many taps a weighted sum is computed one kernel row at a time.
_SINGLE_PASS_TAPS = 32
# Strides along the last axis up to this are computed densely, then subsampled.
_DENSE_STEP_MAX = 4
# Output points per edge piece (fewer for strides above 4, so the buffer stays small).
_PIECE_POINTS = 256
# Columns of the buffer the pieces are queued in, fewer for stencils with many
# rows (its size is rows x columns).
_PIECE_BUFFER = 4096
_PIECE_BUFFER_CELLS = 1 << 16


def _parents_need_register(order, root):
    """Reads and constants that something other than a weighted sum consumes."""
    need = {id(root)}
    for node in order:
        if node.op in ("read", "const"):
            continue
        if node.op == "lin":
            for t in node.args:
                if t.op == "const":
                    need.add(id(t))
        else:
            need.update(id(a) for a in node.args)
    return need


def _fuse_reads(terms, taps):
    """A weighted sum's instructions with each run of reads of one source row
    (taps and weights numbered consecutively) made a single instruction: the
    interpreter then makes one pass over the block for up to four of them."""
    out = []
    for ins in terms:
        last = out[-1] if out else None
        if (ins[0] == kn.READ_ADD and last is not None and last[0] in (kn.READ_SET, kn.READ_ADD)
                and ins[2] == last[2] + last[4] and ins[3] == last[3] + last[4]
                and taps[ins[2]][:-1] == taps[last[2]][:-1]):
            out[-1] = last[:4] + (last[4] + 1,)
        else:
            out.append(ins)
    return out


class Program:
    """A register program for the interpreter, and the values it reads."""

    __slots__ = ("prog", "taps", "params", "nregs", "nodes")

    def __init__(self, prog, taps, params, nregs, nodes):
        self.prog, self.taps, self.params, self.nregs, self.nodes = prog, taps, params, nregs, nodes


def lower_program(stencil):
    """The interpreter program computing `stencil` at every point."""
    expr, center = stencil.expr, stencil.center
    order = ex.topological_order(expr)
    need = _parents_need_register(order, expr)
    uses = {}
    for node in order:
        if node.op not in ("read", "const"):
            for a in node.args:
                uses[id(a)] = uses.get(id(a), 0) + 1
    taps, tap_index = [], {}
    params = []
    free, nregs = [], 0
    reg = {}
    prog = []

    def tap(node):
        k = tuple(c + d for c, d in zip(center, node.args))
        if k not in tap_index:
            tap_index[k] = len(taps)
            taps.append(k)
        return tap_index[k]

    def param(value):
        params.append(float(value))
        return _FIXED + len(params) - 1

    def new_reg():
        nonlocal nregs
        if free:
            return free.pop()
        nregs += 1
        return nregs - 1

    def release(node):
        uses[id(node)] -= 1
        if uses[id(node)] == 0 and id(node) in reg:
            free.append(reg[id(node)])

    for node in order:
        if node.op == "read":
            if id(node) in need:
                reg[id(node)] = d = new_reg()
                prog.append((kn.READ_SET, d, tap(node), 1, 1))  # weight: const slot 1, one
        elif node.op == "const":
            if id(node) in need:
                reg[id(node)] = d = new_reg()
                prog.append((kn.CONST, d, param(node.args[0]), 0, 0))
        elif node.op == "lin":
            d = new_reg()
            terms = []
            for i, (t, w) in enumerate(zip(node.args, node.weights)):
                if t.op == "read":
                    terms.append((kn.READ_SET if i == 0 else kn.READ_ADD, d, tap(t), param(w), 1))
                else:
                    terms.append((kn.MULC if i == 0 else kn.MAC, d, reg[id(t)], param(w), 0))
            prog += _fuse_reads(terms, taps)
            reg[id(node)] = d
            for t in node.args:
                release(t)
        else:
            d = new_reg()
            operands = [reg[id(a)] for a in node.args]
            operands += [operands[0]] * (3 - len(operands))
            prog.append((kn.OPCODES[node.op], d, *operands))
            reg[id(node)] = d
            for a in node.args:
                release(a)
    taps_arr = np.array(taps, dtype=np.int64).reshape(len(taps), stencil.ndim)
    if not taps:
        taps_arr = np.zeros((0, stencil.ndim), dtype=np.int64)
    return Program(np.array(prog, dtype=np.int64).reshape(-1, 5), taps_arr, params,
                   max(nregs, 1), len(order))


def kernel_params(stencil):
    """The run-time values a generated kernel for `stencil` reads, in its order:
    per node in topological order, a constant's value or a sum's weights."""
    params = []
    for node in ex.topological_order(stencil.expr):
        if node.op == "const":
            params.append(node.args[0])
        elif node.op == "lin":
            params.extend(node.weights)
    return params


def structure_key(stencil, step_last, fingerprint):
    """A name for what a generated kernel depends on: the expression's shape
    (ops, reads, sharing; not its numbers), the centre, the stride along the
    last axis and the generator's own fingerprint.  Known without building the
    kernel's text, so the disk cache is consulted before any code is written."""
    shape = tuple((op,) if op == "const" else (op, args)
                  for op, args, _ in ex.to_flat(stencil.expr))
    text = repr((shape, stencil.center, int(step_last), fingerprint))
    return hashlib.sha1(text.encode()).hexdigest()[:20]


class Generated:
    """Source of a kernel specialised to one stencil's structure, its cache key, and
    the run-time values (weights, constants) it reads."""

    __slots__ = ("source", "key", "params")

    def __init__(self, source, key, params):
        self.source, self.key, self.params = source, key, params


def generate_source(stencil, step_last, fingerprint):
    """Python source of the parallel and serial kernels for `stencil`.

    Work items are (output row, column block), all axes but the last flattened.
    For each item the source rows are resolved through the border rule; the
    interior columns, where every read is in bounds, are queued and computed by
    `_interior_rows`, one vectorised, call-free loop over the source rows
    themselves.  The few columns at each end, and whole rows that meet a Fill
    row, are computed by the same function from a small piece buffer filled
    through the border rule.
    `step_last`, the stride along the last axis, is a literal so that every
    index in the loop is provably non-negative (else LLVM emits gathers).
    """
    expr, center, ndim = stencil.expr, stencil.center, stencil.ndim
    order = ex.topological_order(expr)
    reads = [n for n in order if n.op == "read"]
    boxes = {id(r): tuple(c + d for c, d in zip(center, r.args)) for r in reads}
    row_keys = sorted({k[:-1] for k in boxes.values()}) or [(0,) * (ndim - 1)]
    row_of = {k: m for m, k in enumerate(row_keys)}
    last = [k[-1] for k in boxes.values()] or [0]
    kmin, kmax = min(last), max(last)
    params = []
    names = {}
    body = []
    for i, node in enumerate(order):
        name = f"x{i}"
        if node.op == "read":
            k = boxes[id(node)]
            rhs = f"v{row_of[k[:-1]]}[q + {k[-1] - kmin}]"
        elif node.op == "const":
            params.append(node.args[0])
            rhs = f"p{len(params) - 1}"
        elif node.op == "lin":
            parts = []
            for t, w in zip(node.args, node.weights):
                params.append(w)
                parts.append(f"p{len(params) - 1} * {names[id(t)]}")
            rhs = " + ".join(parts)
        else:
            rhs = kn.SCALAR_TEMPLATES[node.op].format(*(names[id(a)] for a in node.args))
        names[id(node)] = name
        body.append(f"{name} = {rhs}")
    result = names[id(expr)]
    nrows = len(row_keys)
    outer = ndim - 1
    # A large weighted sum of reads is computed one kernel row per pass over the
    # output row (which stays in L1): one pass with every tap needs more weights
    # than there are vector registers, and the spills cost more than the passes.
    passes = None
    if (expr.op == "lin" and len(expr.args) > _SINGLE_PASS_TAPS
            and all(t.op == "read" for t in expr.args)):
        first_param = len(params) - len(expr.args)
        passes = {}
        for i, t in enumerate(expr.args):
            k = boxes[id(t)]
            passes.setdefault(row_of[k[:-1]], []).append((k[-1] - kmin, first_param + i))

    # Output points per edge piece: the piece buffer holds (points - 1) * step + box columns.
    piece_points = max(1, min(_PIECE_POINTS, _PIECE_POINTS * 4 // step_last))
    piece_cols = (piece_points - 1) * step_last + kmax - kmin + 1
    # Pieces are queued side by side and computed together, a few hundred rows'
    # edges per call; each piece is at least a box wide.
    piece_buffer = max(piece_cols, min(_PIECE_BUFFER, _PIECE_BUFFER_CELLS // nrows))
    piece_slots = piece_buffer // (kmax - kmin + 1) + 1
    lines = [
        "def _items(src2, out2, c, out_outer, src_outer, lo, step, code, colblock, first_item,",
        "           last_item, piece, pbatch, piece_rows, dense, batch, batch_rows):",
        "    fill = c[2]",
        "    nbatch = 0",
        "    npieces = 0",
        "    pfill = 0",
    ]
    lines += [
        "    n_l = src2.shape[1]",
        "    width = out2.shape[1]",
        f"    lo_l = lo[{ndim - 1}]",
        "    nblk = (width + colblock - 1) // colblock",
        # Interior columns [ja, jb): every read j*S + lo_l + k, k in [kmin, kmax], in bounds.
        f"    ja = min(width, max(0, -((lo_l + {kmin}) // {step_last})))",
        f"    jb = min(width, max(0, (n_l - 1 - lo_l - {kmax}) // {step_last} + 1))",
        "    for item in range(first_item, last_item):",
        "        line = item // nblk",
        "        j0 = (item - line * nblk) * colblock",
        "        j1 = min(j0 + colblock, width)",
    ]
    # Decode the output row into its outer index, then resolve each source row.
    if outer:
        lines.append("        rem = line")
        for a in range(outer - 1, -1, -1):
            lines.append(f"        o{a} = rem % out_outer[{a}]")
            if a:
                lines.append(f"        rem = rem // out_outer[{a}]")
        for a in range(outer):
            for k in sorted({key[a] for key in row_keys}):
                lines.append(f"        r{a}_{k} = resolve_index(o{a} * step[{a}] + lo[{a}] "
                             f"+ {k}, src_outer[{a}], code)")
    # Each source row as an index into src2, or invalid (Fill, outside the
    # array).  Indices, not row views chosen between src2 and a fill row: a
    # loop reading arrays that are a phi of two sources measured 1.4x slower.
    for m, key in enumerate(row_keys):
        if not outer:
            lines += [f"        flat{m} = 0", f"        valid{m} = True"]
            continue
        valid = " and ".join(f"r{a}_{key[a]} >= 0" for a in range(outer))
        flat = f"r0_{key[0]}"
        for a in range(1, outer):
            flat = f"({flat}) * src_outer[{a}] + r{a}_{key[a]}"
        lines += [f"        valid{m} = {valid}", f"        flat{m} = {flat} if valid{m} else 0"]
    # A row that meets a Fill row is computed whole from pieces.
    allvalid = " and ".join(f"valid{m}" for m in range(nrows))
    lines += [
        f"        if {allvalid}:",
        "            ia = ja",
        "            ib = jb",
        "        else:",
        "            ia = j1",
        "            ib = j1",
    ]
    read_pattern = re.compile(r"v(\d+)\[q \+ (\d+)\]")

    def loop(indent, reader, count="e1 - e0", target="o", step=step_last):
        # The expression at points t of a part, written to target[t]; reader(m, d)
        # spells the read of row m at column offset d from the point's first column.
        pad = " " * indent
        head = [pad + f"for t in range({count}):", pad + f"    q = t * {step}"]
        if passes is not None:
            out = []
            for i, (m, taps) in enumerate(sorted(passes.items())):
                terms = " + ".join(f"p{j} * {reader(m, k)}" for k, j in taps)
                out += head + [pad + f"    {target}[t] {'=' if i == 0 else '+='} {terms}"]
            return out
        out = list(head)
        for stmt in body:
            stmt = read_pattern.sub(lambda g: reader(int(g.group(1)), int(g.group(2))), stmt)
            out.append(pad + "    " + stmt)
        out.append(pad + f"    {target}[t] = {result}")
        return out

    lines += [
        # Interior columns are queued and computed after the item loop, in one
        # call-free function over many rows (see _interior_rows).
        "        e0 = max(j0, ia)",
        "        e1 = min(j1, ib)",
        "        if e1 > e0:",
        "            batch[0, nbatch] = line",
        "            batch[1, nbatch] = e0",
        "            batch[2, nbatch] = e1",
        f"            batch[3, nbatch] = e0 * {step_last} + lo_l + {kmin}",
    ]
    lines += [f"            batch_rows[nbatch, {m}] = flat{m}" for m in range(nrows)]
    lines += ["            nbatch += 1"]
    dense_step = 1 < step_last <= _DENSE_STEP_MAX
    # The vectorised loop runs over many output rows inside one function with no
    # calls in it, as a hand-written kernel would: with the border code's calls
    # in the same loop nest (or one call per row), LLVM kept the weights on the
    # stack and reloaded them on every iteration (measured 1.5x slower).
    interior = [
        "def _interior_rows(out2, src2, batch, batch_rows, nbatch, c, dense):",
        "    _zero = c[0]",
        "    _one = c[1]",
    ]
    interior += [f"    p{i} = c[{_FIXED + i}]" for i in range(len(params))]
    interior += [
        "    for i in range(nbatch):",
        "        e0 = batch[1, i]",
        "        e1 = batch[2, i]",
        "        first = batch[3, i]",
        "        o = out2[batch[0, i], e0:e1]",
    ]
    interior += [f"        v{m} = src2[batch_rows[i, {m}], first:]" for m in range(nrows)]
    if not dense_step:
        interior += loop(8, lambda m, d: f"v{m}[q + {d}]")
    else:
        # LLVM does not vectorise the strided reads v[t*S + d]: for small S it
        # is faster to compute every point of the span, contiguously, and keep
        # every S-th.
        interior += loop(8, lambda m, d: f"v{m}[q + {d}]",
                         count=f"(e1 - e0 - 1) * {step_last} + 1", target="dense", step=1)
        interior += [
            "        for t in range(e1 - e0):",
            f"            o[t] = dense[t * {step_last}]",
        ]
    lines += [
        # The columns at each end (or the whole row) are computed from pieces:
        # the box-wide columns a run of output points reads, copied row by row
        # through the border rule into a small buffer, side by side.  That
        # buffer is then just another source for `_interior_rows`.
        "        for part in range(2):",
        "            if part == 0:",
        "                e0 = j0",
        "                e1 = min(j1, ia)",
        "            else:",
        "                e0 = max(j0, max(ia, ib))",
        "                e1 = j1",
        f"            for p0 in range(e0, e1, {piece_points}):",
        f"                p1 = min(e1, p0 + {piece_points})",
        f"                ncols = (p1 - p0 - 1) * {step_last} + {kmax - kmin + 1}",
        "                if pfill + ncols > piece.shape[1]:",
        "                    _interior_rows(out2, piece, pbatch, piece_rows, npieces, c, dense)",
        "                    npieces = 0",
        "                    pfill = 0",
        f"                first = p0 * {step_last} + lo_l + {kmin}",
        "                for qq in range(ncols):",
        "                    rr = first + qq",
        "                    if rr < 0 or rr >= n_l:",
        "                        rr = resolve_index(rr, n_l, code)",
    ]
    for m in range(nrows):
        lines.append(f"                    piece[{m}, pfill + qq] = src2[flat{m}, rr] if valid{m} "
                     "and rr >= 0 else fill")
    lines += [
        "                pbatch[0, npieces] = line",
        "                pbatch[1, npieces] = p0",
        "                pbatch[2, npieces] = p1",
        "                pbatch[3, npieces] = pfill",
        "                npieces += 1",
        "                pfill += ncols",
        "    _interior_rows(out2, piece, pbatch, piece_rows, npieces, c, dense)",
        "    _interior_rows(out2, src2, batch, batch_rows, nbatch, c, dense)",
    ]

    def driver(fname, parallel):
        loop = "prange" if parallel else "range"
        return [
            f"def {fname}(src2, out2, c, out_outer, src_outer, lo, step, code, colblock, nchunks):",
            "    width = out2.shape[1]",
            "    nitems = out2.shape[0] * ((width + colblock - 1) // colblock)",
            "    ndense = " + (f"max(min(colblock, width), {piece_points}) * {step_last}"
                             if 1 < step_last <= _DENSE_STEP_MAX else "1"),
            "    cap = nitems // nchunks + 1",
            f"    for ch in {loop}(nchunks):",
            f"        piece = np.empty(({nrows}, {piece_buffer}), dtype=src2.dtype)",
            f"        pbatch = np.empty((4, {piece_slots}), dtype=np.int64)",
            f"        piece_rows = np.empty(({piece_slots}, {nrows}), dtype=np.int64)",
            f"        for m in range({nrows}):",
            "            piece_rows[:, m] = m",
            "        dense = np.empty(ndense, dtype=src2.dtype)",
            "        batch = np.empty((4, cap), dtype=np.int64)",
            f"        batch_rows = np.empty((cap, {nrows}), dtype=np.int64)",
            "        _items(src2, out2, c, out_outer, src_outer, lo, step, code, colblock,",
            "               ch * nitems // nchunks, (ch + 1) * nitems // nchunks, piece, pbatch,",
            "               piece_rows, dense, batch, batch_rows)",
        ]

    header = [
        f"# Generated by stencils for one stencil structure; fingerprint {fingerprint}.",
        "# Safe to delete: it is rewritten on demand.",
        "import numpy as np",
        "from numba import njit, prange",
        "from stencils._kernels import (CACHE, FASTMATH, resolve_index, op_max, op_min, op_fmax,",
        "                               op_fmin, op_sign, op_mod)",
        "",
        "",
    ]
    text = "\n".join(
        header
        + ["@njit(cache=CACHE, nogil=True, error_model='numpy', fastmath=FASTMATH)"]
        + interior
        + ["", "", "@njit(cache=CACHE, nogil=True, error_model='numpy', fastmath=FASTMATH)"]
        + lines
        + ["", "", "@njit(cache=CACHE, parallel=True, error_model='numpy')"]
        + driver("kernel_parallel", True)
        + ["", "", "@njit(cache=CACHE, nogil=True, error_model='numpy')"]
        + driver("kernel_serial", False)
        + [""]
    )
    key = hashlib.sha1(text.encode()).hexdigest()[:20]
    return Generated(text, key, params)

