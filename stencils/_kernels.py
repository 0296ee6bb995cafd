"""Numba kernels.  They see only clean arrays: C-contiguous, float32 or float64,
the source viewed as rows (every axis but the last flattened), the output the
same way.  Nothing here validates: the public layer checks every argument
before stencils._engine calls in.

Geometry shared by every kernel (per axis ``a``): output index ``j`` reads the
source cells ``j * step[a] + lo[a] + k`` for box coordinates ``k`` in
``[0, size[a])`` (``lo = -from_origin``).  Reads outside ``[0, n)`` go through
`resolve_index` with the border's code.

Two kinds of kernel compute a stencil:

- the *interpreter* (this module, tier 0) runs a small register program over
  blocks of output points, so it serves every stencil without compiling
  anything new.  It is a C callback that reads its arguments from an int64
  block (`TIER0_ENTRIES`, `tier0_block`), as tier 1's entry points do, so the
  engine's team of spinning helpers runs it; its reads run in another C
  callback compiled apart (`row_reader`), so that the two halves of its first
  compile can run at once, and take their source rows and border columns from
  tables built in Python once per call (`tier0_tables`);
- *generated* kernels (source from stencils._lower, tier 1) unroll one
  stencil's expression into straight-line code; they use `resolve_index` and
  the operator table below, so both kinds answer identically.

A new operator goes in `OPERATORS` (name, arity, spelling), `binary_op` or
`unary_op`, and the reference's table (stencils._reference).
"""

from __future__ import annotations

import numpy as np
from numba import carray, from_dtype, njit, types
from numba.core.ccallback import CFunc

from ._kernels_border import (CACHE, CONTINUE, EDGE, FILL, REFLECT, SCIPY_MIRROR,  # noqa: F401
                              SCIPY_REFLECT, WRAP, resolve_index)
# Intrinsics, inlined: numba's cache does not notice them change (numba#1833).
from ._kernels_simd import axpy_narrow, axpy_wide, copy_narrow, copy_wide
from ._kernels_team import call_c, claim, pointer_at

# No fast-math flag: 'contract' would let LLVM fuse a*b + c into one FMA
# (one rounding instead of two) wherever it likes, so the interpreter and a
# generated kernel, or two generated kernels, could differ in the last bit;
# every tier rounds each product and each sum, in the expression's order.
# The other flags would break NaN and inf handling.
FASTMATH = False


# -- scalar semantics shared by the interpreter and the generated kernels -----

@njit(cache=CACHE, nogil=True, error_model="numpy")
def op_max(a, b):
    # np.maximum: NaN wins.
    return a if (a > b or a != a) else b


@njit(cache=CACHE, nogil=True, error_model="numpy")
def op_min(a, b):
    return a if (a < b or a != a) else b


@njit(cache=CACHE, nogil=True, error_model="numpy")
def op_fmax(a, b):
    # np.fmax: NaN loses.
    if b != b:
        return a
    return a if a > b else b


@njit(cache=CACHE, nogil=True, error_model="numpy")
def op_fmin(a, b):
    if b != b:
        return a
    return a if a < b else b


@njit(cache=CACHE, nogil=True, error_model="numpy")
def op_sign(a, one, zero):
    if a > zero:
        return one
    if a < zero:
        return -one
    return a  # 0, -0 and NaN


@njit(cache=CACHE, nogil=True, error_model="numpy")
def op_mod(a, b):
    # np.mod: the result has the sign of the divisor.
    return np.remainder(a, b)


# -- the operator table ---------------------------------------------------------
#
# Every operator a stencil expression can use: its name (the node's op in
# stencils._expr), its arity, and how generated kernels spell it ({0}, {1},
# {2}: operands; _one and _zero: the typed constants).  stencils._expr takes
# its op set from here, the interpreter's opcodes follow this order, and
# `scalar_op` below gives the same meaning (checked op by op at import, and
# by tests that run every op through both kernels against the reference).
OPERATORS = (
    ("mul", 2, "({0} * {1})"),
    ("div", 2, "({0} / {1})"),
    ("pow", 2, "({0} ** {1})"),
    ("max", 2, "op_max({0}, {1})"),
    ("min", 2, "op_min({0}, {1})"),
    ("fmax", 2, "op_fmax({0}, {1})"),
    ("fmin", 2, "op_fmin({0}, {1})"),
    ("atan2", 2, "np.arctan2({0}, {1})"),
    ("hypot", 2, "np.hypot({0}, {1})"),
    ("lt", 2, "(_one if {0} < {1} else _zero)"),
    ("le", 2, "(_one if {0} <= {1} else _zero)"),
    ("gt", 2, "(_one if {0} > {1} else _zero)"),
    ("ge", 2, "(_one if {0} >= {1} else _zero)"),
    ("eq", 2, "(_one if {0} == {1} else _zero)"),
    ("ne", 2, "(_one if {0} != {1} else _zero)"),
    ("and", 2, "(_one if ({0} != _zero and {1} != _zero) else _zero)"),
    ("or", 2, "(_one if ({0} != _zero or {1} != _zero) else _zero)"),
    ("xor", 2, "(_one if (({0} != _zero) != ({1} != _zero)) else _zero)"),
    ("copysign", 2, "np.copysign({0}, {1})"),
    ("mod", 2, "op_mod({0}, {1})"),
    ("neg", 1, "(-{0})"),
    ("abs", 1, "abs({0})"),
    ("sqrt", 1, "np.sqrt({0})"),
    ("cbrt", 1, "np.cbrt({0})"),
    ("exp", 1, "np.exp({0})"),
    ("exp2", 1, "np.exp2({0})"),
    ("expm1", 1, "np.expm1({0})"),
    ("log", 1, "np.log({0})"),
    ("log2", 1, "np.log2({0})"),
    ("log10", 1, "np.log10({0})"),
    ("log1p", 1, "np.log1p({0})"),
    ("sin", 1, "np.sin({0})"),
    ("cos", 1, "np.cos({0})"),
    ("tan", 1, "np.tan({0})"),
    ("asin", 1, "np.arcsin({0})"),
    ("acos", 1, "np.arccos({0})"),
    ("atan", 1, "np.arctan({0})"),
    ("sinh", 1, "np.sinh({0})"),
    ("cosh", 1, "np.cosh({0})"),
    ("tanh", 1, "np.tanh({0})"),
    ("asinh", 1, "np.arcsinh({0})"),
    ("acosh", 1, "np.arccosh({0})"),
    ("atanh", 1, "np.arctanh({0})"),
    ("floor", 1, "np.floor({0})"),
    ("ceil", 1, "np.ceil({0})"),
    ("trunc", 1, "np.trunc({0})"),
    ("rint", 1, "np.rint({0})"),
    ("sign", 1, "op_sign({0}, _one, _zero)"),
    ("not", 1, "(_one if {0} == _zero else _zero)"),
    ("isnan", 1, "(_one if {0} != {0} else _zero)"),
    ("isinf", 1, "(_one if abs({0}) == np.inf else _zero)"),
    ("isfinite", 1, "(_one if abs({0}) < np.inf else _zero)"),
    ("where", 3, "({1} if {0} != _zero else {2})"),
)
SCALAR_OPS = tuple(name for name, _, _ in OPERATORS)
ARITY = {name: arity for name, arity, _ in OPERATORS}
SCALAR_TEMPLATES = {name: template for name, _, template in OPERATORS}

# Interpreter opcodes, then one per operator from SCALAR_BASE on, in the
# table's order.  READ_SET / READ_ADD (op, d, first tap, first weight, count):
# d (=, +=) the weighted sum of `count` reads of one source row, their taps and
# weights numbered consecutively (a plain read has weight one, const slot 1).
# MULC / MAC (op, d, x, weight): d (=, +=) weight * x.  CONST (op, d, slot).
READ_SET, READ_ADD, MULC, MAC, CONST = range(5)
SCALAR_BASE = 16
OPCODES = {name: SCALAR_BASE + i for i, name in enumerate(SCALAR_OPS)}
(OP_MUL, OP_DIV, OP_POW, OP_MAX, OP_MIN, OP_FMAX, OP_FMIN, OP_ATAN2, OP_HYPOT, OP_LT, OP_LE,
 OP_GT, OP_GE, OP_EQ, OP_NE, OP_AND, OP_OR, OP_XOR, OP_COPYSIGN, OP_MOD, OP_NEG, OP_ABS,
 OP_SQRT, OP_CBRT, OP_EXP, OP_EXP2, OP_EXPM1, OP_LOG, OP_LOG2, OP_LOG10, OP_LOG1P, OP_SIN,
 OP_COS, OP_TAN, OP_ASIN, OP_ACOS, OP_ATAN, OP_SINH, OP_COSH, OP_TANH, OP_ASINH, OP_ACOSH,
 OP_ATANH, OP_FLOOR, OP_CEIL, OP_TRUNC, OP_RINT, OP_SIGN, OP_NOT, OP_ISNAN, OP_ISINF,
 OP_ISFINITE, OP_WHERE,) = range(SCALAR_BASE, SCALAR_BASE + len(OPERATORS))
for _name, _code in OPCODES.items():
    if globals()["OP_" + _name.upper()] != _code:
        raise ImportError(f"stencils._kernels: opcode OP_{_name.upper()} is out of table order")
del _name, _code


@njit(cache=CACHE, nogil=True, error_model="numpy")
def scalar_op(op, a, b, c, one, zero):
    """The interpreter's meaning of opcode `op` (the same as SCALAR_TEMPLATES)."""
    if op < OP_NEG:
        return binary_op(op, a, b, one, zero)
    if op < OP_WHERE:
        return unary_op(op, a, one, zero)
    return b if a != zero else c


@njit(cache=CACHE, nogil=True, error_model="numpy")
def binary_op(op, a, b, one, zero):  # noqa: C901 - one branch per op, by design
    """Opcodes OP_MUL to OP_MOD (the table's binary operators)."""
    if op == OP_MUL:
        return a * b
    if op == OP_DIV:
        return a / b
    if op == OP_POW:
        return a ** b
    if op == OP_MAX:
        return op_max(a, b)
    if op == OP_MIN:
        return op_min(a, b)
    if op == OP_FMAX:
        return op_fmax(a, b)
    if op == OP_FMIN:
        return op_fmin(a, b)
    if op == OP_ATAN2:
        return np.arctan2(a, b)
    if op == OP_HYPOT:
        return np.hypot(a, b)
    if op == OP_LT:
        return one if a < b else zero
    if op == OP_LE:
        return one if a <= b else zero
    if op == OP_GT:
        return one if a > b else zero
    if op == OP_GE:
        return one if a >= b else zero
    if op == OP_EQ:
        return one if a == b else zero
    if op == OP_NE:
        return one if a != b else zero
    if op == OP_AND:
        return one if (a != zero and b != zero) else zero
    if op == OP_OR:
        return one if (a != zero or b != zero) else zero
    if op == OP_XOR:
        return one if ((a != zero) != (b != zero)) else zero
    if op == OP_COPYSIGN:
        return np.copysign(a, b)
    return op_mod(a, b)  # OP_MOD


@njit(cache=CACHE, nogil=True, error_model="numpy")
def unary_op(op, a, one, zero):  # noqa: C901 - one branch per op, by design
    """Opcodes OP_NEG to OP_ISFINITE (the table's unary operators)."""
    if op == OP_NEG:
        return -a
    if op == OP_ABS:
        return abs(a)
    if op == OP_SQRT:
        return np.sqrt(a)
    if op == OP_CBRT:
        return np.cbrt(a)
    if op == OP_EXP:
        return np.exp(a)
    if op == OP_EXP2:
        return np.exp2(a)
    if op == OP_EXPM1:
        return np.expm1(a)
    if op == OP_LOG:
        return np.log(a)
    if op == OP_LOG2:
        return np.log2(a)
    if op == OP_LOG10:
        return np.log10(a)
    if op == OP_LOG1P:
        return np.log1p(a)
    if op == OP_SIN:
        return np.sin(a)
    if op == OP_COS:
        return np.cos(a)
    if op == OP_TAN:
        return np.tan(a)
    if op == OP_ASIN:
        return np.arcsin(a)
    if op == OP_ACOS:
        return np.arccos(a)
    if op == OP_ATAN:
        return np.arctan(a)
    if op == OP_SINH:
        return np.sinh(a)
    if op == OP_COSH:
        return np.cosh(a)
    if op == OP_TANH:
        return np.tanh(a)
    if op == OP_ASINH:
        return np.arcsinh(a)
    if op == OP_ACOSH:
        return np.arccosh(a)
    if op == OP_ATANH:
        return np.arctanh(a)
    if op == OP_FLOOR:
        return np.floor(a)
    if op == OP_CEIL:
        return np.ceil(a)
    if op == OP_TRUNC:
        return np.trunc(a)
    if op == OP_RINT:
        return np.rint(a)
    if op == OP_SIGN:
        return op_sign(a, one, zero)
    if op == OP_NOT:
        return one if a == zero else zero
    if op == OP_ISNAN:
        return one if a != a else zero
    if op == OP_ISINF:
        return one if abs(a) == np.inf else zero
    return one if abs(a) < np.inf else zero  # OP_ISFINITE


# -- the interpreter -----------------------------------------------------------
#
# Every instruction runs over a whole block of output points before the next
# one starts (as numexpr does): a block is a segment of one output row, or
# several whole rows when rows are short.  Registers are blocks, so the loop
# over points is innermost, free of dispatch, and vectorised by LLVM; the
# per-instruction dispatch is paid once per block, not once per point.


@njit(cache=CACHE, nogil=True, error_model="numpy", fastmath=FASTMATH, inline="always")
def _edge_taps(o, src, start, fill, j0, ja, jb, j1, edges, column_slot, t0, count, consts, p0):
    """o[j - j0] += the weighted reads of taps t0 .. t0+count-1 (weights
    consts[p0 ...]) at the output columns j in [j0, ja) and [jb, j1), those
    outside the interior, of the source row at `start` in the flat `src`, in
    tap order at every point, each at the column the edge table names
    (`tier0_tables`; -1: Fill)."""
    inner_lo, inner_hi, cols, nedge = edges
    for part in range(2):
        for j in range(j0, ja) if part == 0 else range(jb, j1):
            e = j if j < inner_lo else j - inner_hi + inner_lo
            for i in range(count):
                c = cols[column_slot[t0 + i] * nedge + e]
                o[j - j0] += consts[p0 + i] * (src[start + c] if c >= 0 else fill)


@njit(cache=CACHE, nogil=True, error_model="numpy", fastmath=FASTMATH, inline="always")
def _taps_at_step(o, src, first, n, step, taps, t0, count, consts, p0):
    # `_interior_taps` with a step other than 1: one pass per tap.
    last = taps.shape[1] - 1
    for i in range(count):
        si = src[first + taps[t0 + i, last]:]
        w = consts[p0 + i]
        for t in range(n):
            o[t] += w * si[t * step]


@njit(cache=CACHE, nogil=True, error_model="numpy", fastmath=FASTMATH, inline="always")
def _strided_taps(o, src, first, n, step, taps, t0, count, consts, p0):
    # The interior's reads with a step other than 1.
    if step == 2:
        # Pooling's stride, inlined as a constant: LLVM loads vectors and keeps
        # every other lane, where a stride read at run time gathers lane by lane.
        _taps_at_step(o, src, first, n, 2, taps, t0, count, consts, p0)
    else:
        _taps_at_step(o, src, first, n, step, taps, t0, count, consts, p0)


@njit(cache=CACHE, nogil=True, error_model="numpy", fastmath=FASTMATH, inline="always")
def _interior_taps(o, src, first, n, taps, t0, count, consts, p0):
    # Step 1.  One slice per tap, each from index 0: `t` alone indexes them,
    # provably >= 0, so LLVM vectorises (an index t + k with k read at run time
    # gets numba's negative-index check, and gathers).  Passes of four, two and
    # one taps: each adds its taps left to right onto o, as one longer pass
    # would, and every loop here is one more for LLVM to vectorise at tier 0's
    # compile.
    last = taps.shape[1] - 1
    i = 0
    while count - i >= 4:
        s0 = src[first + taps[t0 + i, last]:]
        s1 = src[first + taps[t0 + i + 1, last]:]
        s2 = src[first + taps[t0 + i + 2, last]:]
        s3 = src[first + taps[t0 + i + 3, last]:]
        w0, w1, w2, w3 = consts[p0 + i], consts[p0 + i + 1], consts[p0 + i + 2], consts[p0 + i + 3]
        for t in range(n):
            o[t] = o[t] + w0 * s0[t] + w1 * s1[t] + w2 * s2[t] + w3 * s3[t]
        i += 4
    if count - i >= 2:
        s0 = src[first + taps[t0 + i, last]:]
        s1 = src[first + taps[t0 + i + 1, last]:]
        w0, w1 = consts[p0 + i], consts[p0 + i + 1]
        for t in range(n):
            o[t] = o[t] + w0 * s0[t] + w1 * s1[t]
        i += 2
    if count - i == 1:
        s0 = src[first + taps[t0 + i, last]:]
        w0 = consts[p0 + i]
        for t in range(n):
            o[t] = o[t] + w0 * s0[t]


# Runs of fewer bytes than this are short: LLVM's vectorised loops need longer
# ones (`_kernels_simd`).
_SHORT_RUN_BYTES = 128


@njit(cache=CACHE, nogil=True, error_model="numpy", fastmath=FASTMATH, inline="always")
def _short_taps(o, oat, src, first, n, step, taps, t0, count, consts, p0):
    """o[oat + t] += the weighted reads src[first + taps[k] + t * step], t < n, of
    taps t0 .. t0+count-1 in tap order (as `_interior_taps`), a short run
    (step 1 or 2, at least 16 bytes) as whole vectors, one pass per tap."""
    last = taps.shape[1] - 1
    wide = n * o.itemsize >= 32
    for i in range(count):
        at = first + taps[t0 + i, last]
        w = consts[p0 + i]
        if step == 2 and at + 2 * n > src.shape[0]:
            # The vector pass would read one element past the array's end.
            for t in range(n):
                o[oat + t] += w * src[at + 2 * t]
        elif wide:
            axpy_wide(o, oat, src, at, n, step, w)
        else:
            axpy_narrow(o, oat, src, at, n, step, w)


def _row_reader_function(unit_step):
    """Tier 0's row reader (see `row_reader`) for a step of 1 along the last
    axis (`unit_step`) or for any other: each compiles only its own loops
    over the interior, the first call of a process only the one it needs."""
    def read_run(regs, src, consts, block, line, rows, j0, j1, first):
        """Run the program's read instructions from `first` on, up to the next
        instruction of another kind, over one block of `rows` x ``j1 - j0`` output
        points from output row `line`, column `j0` (see `_interpreter`); return the
        index of that next instruction.

        Compiled apart from the interpreter as a C callback: the registers, the
        source and the constants as raw pointers, the rest read from tier 0's
        block (`tier0_block`); one call serves a whole run of reads (a
        correlation's every row), so the call costs little next to the reads."""
        index = np.int64(0)
        head = carray(block, (_HEAD_WORDS,))
        nb = j1 - j0
        r2 = carray(regs, (head[_NREGS] + 1, head[_GROUP] * head[_COLBLOCK]))
        values = carray(consts, (head[_CONSTS + 1],))
        program = carray(pointer_at(head[_PROG], index), (head[_PROG + 1], 5))
        tap_table = carray(pointer_at(head[_TAPS], index), (head[_TAPS + 1], head[_TAPS + 2]))
        slots = carray(pointer_at(head[_SLOTS], index), (2, head[_TAPS + 1]))
        row_slot, column_slot, nslots = slots[0], slots[1], head[_SLOTS + 1]
        source_rows = carray(pointer_at(head[_ROWS] + 8 * line * nslots, index), (rows * nslots,))
        n_l = head[_SRC + 2]
        source = carray(src, (head[_SRC + 1] * n_l,))
        inner_lo, inner_hi = head[_EDGES], head[_EDGES + 1]
        edges = (inner_lo, inner_hi, carray(pointer_at(head[_COLS], index), (head[_COLS + 1],)),
                 head[_EDGES + 2])
        lo_l, fill = head[_LAST_AXIS], values[2]
        step_l = np.int64(1) if unit_step else head[_LAST_AXIS + 1]
        # The block's interior columns [ja, jb): every tap reads inside the row.
        ja = j0 if inner_lo < j0 else (j1 if inner_lo > j1 else inner_lo)  # inner_lo in [j0, j1]
        jb = ja if inner_hi < ja else (j1 if inner_hi > j1 else inner_hi)  # inner_hi in [ja, j1]
        # Rows of the block as short runs in vectors: every read inside its row.
        short = (step_l <= 2 and 16 <= nb * r2.itemsize < _SHORT_RUN_BYTES and ja == j0
                 and jb == j1)
        ins = first
        while ins < program.shape[0] and (program[ins, 0] == READ_SET
                                          or program[ins, 0] == READ_ADD):
            d = r2[program[ins, 1]]
            t0, p0, count = program[ins, 2], program[ins, 3], program[ins, 4]
            if program[ins, 0] == READ_SET:
                # -0.0 + x is x for every x, -0.0 included: a sum starts exact.
                for t in range(rows * nb):
                    d[t] = -values[0]
            for r in range(rows):
                # Each row's reads are added in tap order at every point.
                row = source_rows[r * nslots + row_slot[t0]]
                if row < 0:  # a row outside the array: Fill
                    for i in range(count):
                        v = values[p0 + i] * fill
                        for j in range(r * nb, r * nb + nb):
                            d[j] += v
                elif short:
                    _short_taps(d, r * nb, source, row * n_l + j0 * step_l + lo_l, nb, step_l,
                                tap_table, t0, count, values, p0)
                else:
                    o = d[r * nb:]
                    _edge_taps(o, source, row * n_l, fill, j0, ja, jb, j1, edges, column_slot, t0,
                               count, values, p0)
                    if jb > ja:
                        at = row * n_l + ja * step_l + lo_l
                        if unit_step:  # up to four taps per pass over the interior
                            _interior_taps(o[ja - j0:], source, at, jb - ja, tap_table, t0,
                                           count, values, p0)
                        else:
                            _strided_taps(o[ja - j0:], source, at, jb - ja, step_l, tap_table,
                                          t0, count, values, p0)
            ins += 1
        return ins

    return read_run


# Tier 0's row readers, by whether the last axis's step is 1 (see `row_reader`).
ROW_READERS = {True: _row_reader_function(True), False: _row_reader_function(False)}


def row_reader_signature(dtype):
    """The C signature of tier 0's row readers for `dtype` (see `_row_reader_function`)."""
    real, i = types.CPointer(from_dtype(np.dtype(dtype))), types.int64
    return types.int64(real, real, real, types.CPointer(i), i, i, i, i, i)


def row_reader(dtype, unit_step):
    """Tier 0's row reader for `dtype` and a step of 1 along the last axis or
    another (`unit_step`), not compiled yet (``.compile()`` compiles it, or
    loads it from numba's disk cache; `_numba_cache.load_callback` loads it
    without numba's compiler set-up).

    The interpreter calls it through a function pointer, in its block, so the
    two are compiled apart: the interpreter's compile types the call from the
    signature alone, and the reader's compile (more than half of tier 0's)
    can run at the same time in another process (stencils._engine)."""
    sig = row_reader_signature(dtype)
    reader = CFunc(ROW_READERS[unit_step], (sig.args, sig.return_type), {},
                   {"nopython": True, "error_model": "numpy", "fastmath": FASTMATH})
    if CACHE:
        reader.enable_caching()
    return reader


@njit(cache=CACHE, nogil=True, error_model="numpy", inline="always")
def _apply_op(op, d, x, y, z, n, one, zero):  # noqa: C901 - one loop per cheap op, by design
    """d[:n] = op(x, y, z) point by point.

    The common ops LLVM can vectorise get a loop of their own; the rest share
    one loop through `scalar_op` (a loop each would cost compile time on the
    first call of every process with an empty cache; maths-library calls cost
    far more than the dispatch anyway).
    """
    if op == OP_MUL:
        for j in range(n):
            d[j] = x[j] * y[j]
    elif op == OP_DIV:
        for j in range(n):
            d[j] = x[j] / y[j]
    elif op == OP_MAX:
        for j in range(n):
            d[j] = op_max(x[j], y[j])
    elif op == OP_MIN:
        for j in range(n):
            d[j] = op_min(x[j], y[j])
    elif op == OP_LT:
        for j in range(n):
            d[j] = one if x[j] < y[j] else zero
    elif op == OP_LE:
        for j in range(n):
            d[j] = one if x[j] <= y[j] else zero
    elif op == OP_GT:
        for j in range(n):
            d[j] = one if x[j] > y[j] else zero
    elif op == OP_GE:
        for j in range(n):
            d[j] = one if x[j] >= y[j] else zero
    elif op == OP_EQ:
        for j in range(n):
            d[j] = one if x[j] == y[j] else zero
    elif op == OP_NE:
        for j in range(n):
            d[j] = one if x[j] != y[j] else zero
    elif op == OP_WHERE:
        for j in range(n):
            # Both loads unconditional: a load only on one branch stops LLVM
            # vectorising the loop (it would need masked loads).
            a, b = y[j], z[j]
            d[j] = a if x[j] != zero else b
    else:
        for j in range(n):
            d[j] = scalar_op(op, x[j], y[j], z[j], one, zero)


@njit(cache=CACHE, nogil=True, inline="always")
def _address(a):
    return np.int64(a.ctypes.data)


@njit(cache=CACHE, nogil=True, inline="always")
def _thread_registers(space, nregs, points, src_at, consts):
    """The program's registers and one more, ``(nregs + 1, points)`` in a
    thread's scratch `space` (see `scratch_layout`); the last is all -0.0 and
    never written by the program (MULC adds onto it).

    They sit 1 KiB past the source's address `src_at` modulo 4 KiB.  A
    register whose address is just past a source row's, modulo 4 KiB, can make
    the CPU take stores for ones the next loads depend on ("4K aliasing"; one
    micro-benchmark here ran a pass 13x slower).  Rows of a power-of-two
    length, the common case, sit at one or two offsets modulo 4 KiB, so this
    keeps them away."""
    shift = ((src_at + 1024 - _address(space)) % 4096) // space.itemsize
    regs = space[shift:shift + (nregs + 1) * points].reshape((nregs + 1, points))
    negzero = regs[nregs]
    for t in range(points):
        negzero[t] = -consts[0]
    return regs


def scratch_layout(nregs, group, colblock, dtype):
    """One thread's scratch memory for the interpreter, which the caller
    allocates (a float array allocated in the interpreter would be one more
    compile of numba's np.empty in tier 0's cold start): (register elements,
    bytes).  The program's `nregs` registers (`register_count`) and one more
    for blocks of ``group * colblock`` points, and room to place them
    (`_thread_registers`)."""
    itemsize = np.dtype(dtype).itemsize
    space = (nregs + 1) * group * colblock + 4096 // itemsize
    return space, -(-space * itemsize // 64) * 64


@njit(cache=CACHE, nogil=True, error_model="numpy", fastmath=FASTMATH, inline="always")
def _sum_step(op, d, regs, consts, at, weight_at, negzero, n):
    """d[:n] = consts[at] (CONST), or d (MAC) or -0.0 (MULC) + consts[weight_at] * regs[at]."""
    if op == CONST:
        v = consts[at]
        for t in range(n):
            d[t] = v
        return
    # MULC adds the product onto -0.0, which changes none of its bits: one
    # loop for both.
    acc = d if op == MAC else negzero
    x = regs[at]
    w = consts[weight_at]
    for t in range(n):
        d[t] = acc[t] + w * x[t]


@njit(cache=CACHE, nogil=True, inline="always")
def _copy_rows(out, res, line, rows, width, j0, nb):
    """The block's rows of `res` (`rows` of `nb` points) into the flat output at
    row `line`, column `j0`: each row as whole vectors, the runs of one point
    or a few as they are (one loop fewer for LLVM to vectorise at tier 0's
    compile)."""
    for r in range(rows):
        at = (line + r) * width + j0
        if nb * res.itemsize >= 32:
            copy_wide(out, at, res, r * nb, nb)
        elif nb * res.itemsize >= 16:
            copy_narrow(out, at, res, r * nb, nb)
        else:  # at most 3 points (float32), 1 (float64)
            out[at] = res[r * nb]
            if nb > 1:
                out[at + 1] = res[r * nb + 1]
            if nb > 2:
                out[at + 2] = res[r * nb + 2]


def _interpreter(with_operators, real):
    """Tier 0's entry point ``entry(address)``, a C callback (`TIER0_ENTRIES`):
    the interpreter over the items it claims from the block at `address`
    (`tier0_block`), for the dtype of `real` (a zero of it), until none is
    left; it returns 1.

    Item i covers output rows [g, g + group) x columns [j0, j0 + colblock) of
    the output (`group` > 1 only when colblock is the whole row).  The block
    names the row reader of the dtype and step (`row_reader`), compiled, each thread's
    scratch (`scratch_layout`), and the tables of the source rows and columns
    every read takes, built in Python once per call (`tier0_tables`).  Every
    thread of a call runs it on the same block, the engine's team or its
    helper queue alike.  Compiled with the operators' code (OPERATORS) only if
    `with_operators` (see `TIER0_ENTRIES`)."""
    def entry(address):
        index = np.int64(0)
        head = carray(pointer_at(address, index), (_HEAD_WORDS,))
        thread = claim(head[_NEXT_THREAD:], 1)
        if thread >= head[_THREADS]:
            return 1
        nrows, width = head[_OUT + 1], head[_OUT + 2]
        out = carray(pointer_at(head[_OUT], real), (nrows * width,))
        consts = carray(pointer_at(head[_CONSTS], real), (head[_CONSTS + 1],))
        prog = carray(pointer_at(head[_PROG], index), (head[_PROG + 1], 5))
        scratch = head[_SCRATCH] + thread * head[_THREAD_BYTES]
        space = carray(pointer_at(scratch, real), (head[_SPACE],))
        reader, colblock, group = head[_READER], head[_COLBLOCK], head[_GROUP]
        items, pieces = head[_ITEMS], head[_PIECES]
        nblk = (width + colblock - 1) // colblock
        nregs = head[_NREGS]
        regs = _thread_registers(space, nregs, group * colblock, head[_SRC], consts)
        negzero = regs[nregs]
        result = prog[prog.shape[0] - 1, 1]
        zero, one = consts[0], consts[1]
        # The reader's arguments that hold for the whole call (see `_row_reader_function`).
        regs_at, src_at, consts_at = _address(regs), head[_SRC], head[_CONSTS]
        # One loop over the items, each piece claimed as the last one ends: a
        # loop over pieces around a loop over items took 0.2 s more to compile.
        item, claimed = 0, 0  # the next item, and the end of the piece it is in
        while True:
            if item == claimed:
                item = claim(head[_NEXT_ITEM:], pieces)
                if item >= items:
                    return 1
                claimed = item + pieces if item + pieces < items else items
            line = (item // nblk) * group
            j0 = (item % nblk) * colblock
            item += 1
            j1 = j0 + colblock if j0 + colblock < width else width
            rows = group if group < nrows - line else nrows - line
            nb = j1 - j0
            # Every instruction over the whole block before the next one.
            npts = rows * nb
            ins = 0
            while ins < prog.shape[0]:
                op = prog[ins, 0]
                if op == READ_SET or op == READ_ADD:
                    # The reader as an address: a call types an int, where typing a
                    # first-class function took numba 30 us a call, and this
                    # compiles without the reader.
                    ins = call_c(reader, (regs_at, src_at, consts_at, address, np.int64(line),
                                          np.int64(rows), np.int64(j0), np.int64(j1),
                                          np.int64(ins)))
                    continue
                d = regs[prog[ins, 1]]
                if op == CONST or op == MULC or op == MAC:
                    _sum_step(op, d, regs, consts, prog[ins, 2], prog[ins, 3], negzero, npts)
                elif with_operators:
                    _apply_op(op, d, regs[prog[ins, 2]], regs[prog[ins, 3]], regs[prog[ins, 4]],
                              npts, one, zero)
                ins += 1
            _copy_rows(out, regs[result], line, rows, width, j0, nb)

    return entry


# Tier 0's block (`tier0_block`): the words of its head, (address, shape...)
# for arrays.
(_SRC, _OUT, _CONSTS, _PROG, _TAPS, _SLOTS, _ROWS, _COLS, _EDGES, _LAST_AXIS, _SCRATCH,
 _THREADS, _THREAD_BYTES, _SPACE, _NREGS, _READER, _COLBLOCK, _GROUP, _ITEMS, _PIECES,
 _NEXT_ITEM, _NEXT_THREAD) = (0, 3, 6, 8, 10, 13, 15, 16, 18, 21, 23, 24, 25, 26, 27, 28, 29,
                              30, 31, 32, 33, 34)
_HEAD_WORDS = 35
# The block's two work counters (items, threads), zeroed to run it again.
TIER0_COUNTERS = slice(_NEXT_ITEM, _NEXT_THREAD + 1)


def tier0_block(src2, out2, consts, prog, tables, layout, threads, reader, colblock, group,
                items, pieces, addresses):
    """The int64 block tier 0's entry points and row reader read (`TIER0_ENTRIES`).

    `prog`: the `Program` (stencils._lower); `tables`: `tier0_tables`;
    `layout`: `scratch_layout`; `addresses`: the data addresses of (src2,
    out2, consts, scratch), scratch holding `threads` rows of ``layout[1]``
    bytes, taken by the caller (each ``ndarray.ctypes`` costs a microsecond:
    the program keeps those of its own arrays).  Every array it names must
    outlive the call.  Built in Python: compiling a builder would add to tier
    0's first compile."""
    src, out, consts_at, scratch_at = addresses
    prog_at, taps_at, slots_at = prog.addresses
    rows, cols, edges, last_axis = tables
    head = [src, *src2.shape, out, *out2.shape, consts_at, consts.shape[0],
            prog_at, prog.prog.shape[0], taps_at, *prog.taps.shape,
            slots_at, rows.shape[1], rows.ctypes.data, cols.ctypes.data, cols.shape[0],
            *edges, *last_axis, scratch_at, threads, layout[1], layout[0],
            prog.registers, reader, colblock, group, items, pieces, 0, 0]
    return np.array(head, dtype=np.int64)


def resolve_run(address):
    """``resolve_run(address)``, a C callback: the indices of the int64 block
    at `address`, ``(data address, count, n, code)``, each replaced by the cell
    `resolve_index` names on an axis of length n; it returns 1.  Tier 0's
    tables (`tier0_tables`) resolve their reads with it, compiled once for
    every dtype."""
    index = np.int64(0)
    head = carray(pointer_at(address, index), (4,))
    cells = carray(pointer_at(head[0], index), (head[1],))
    n, code = head[2], head[3]
    for t in range(cells.shape[0]):
        cells[t] = resolve_index(cells[t], n, code)
    return 1


def read_slots(prog, taps):
    """(slots, row_offsets, column_offsets): the columns of tier 0's tables
    (`tier0_tables`).  The row table has one per source row offset that a
    read instruction of `prog` starts on (a kernel row's reads are one
    instruction, `stencils._lower._fuse_reads`), ``row_offsets[s]`` its
    offsets along every axis but the last; the edge table one per tap offset
    along the last axis, ``column_offsets[c]``.  ``slots[0, t]``, ``slots[1,
    t]``: tap t's slot in each (the first 0 for taps no read starts on)."""
    slots = np.zeros((2, taps.shape[0]), dtype=np.int64)
    rows = {}
    for op, _, t, _, _ in prog.tolist():
        if op in (READ_SET, READ_ADD):
            slots[0, t] = rows.setdefault(tuple(taps[t, :-1].tolist()), len(rows))
    columns, slots[1] = np.unique(taps[:, -1], return_inverse=True)
    row_offsets = np.array(list(rows), dtype=np.int64).reshape(len(rows), taps.shape[1] - 1)
    return slots, row_offsets, columns.astype(np.int64)


def tier0_tables(row_offsets, column_offsets, out_shape, src_shape, lo, step, code, resolve):
    """The tables of tier 0's block, the same for every thread and every
    block of a call: (rows, cols, edges, last_axis).

    ``rows[r, s]``: the source row (of the source viewed as rows) that output
    row r reads for row slot s (`read_slots`), -1 where that is outside the
    array and reads Fill.  Along the last axis the output columns [inner_lo,
    inner_hi) read inside the row for every tap; ``cols[c * nedge + e]`` is the
    source column (-1: Fill) that column slot c reads for the e-th column
    outside them, left ones first (`edges` = (inner_lo, inner_hi, nedge));
    `last_axis`: (lo, step) of the last axis.  Neither table has more entries
    than the reads it answers.  `resolve(cells, n, code)`: `resolve_index` of
    each of an int64 array (`resolve_run`).  Built in Python with NumPy: the
    interpreter's own compile stays small."""
    ndim = len(src_shape)
    nslots = row_offsets.shape[0]
    rows = np.zeros((1,) * (ndim - 1) + (nslots,), dtype=np.int64)
    outside = np.zeros(rows.shape, dtype=bool)
    for a in range(ndim - 1):
        at = np.arange(out_shape[a], dtype=np.int64) * step[a] + lo[a]
        cells = resolve(at[:, None] + row_offsets[:, a], src_shape[a], code)
        cells = cells.reshape((1,) * a + (out_shape[a],) + (1,) * (ndim - 2 - a) + (nslots,))
        rows = rows * src_shape[a] + cells
        outside = outside | (cells < 0)
    rows[outside] = -1  # both have every axis's extent now
    rows = rows.reshape(int(np.prod(out_shape[:-1])), nslots)
    width, n_l, lo_l, step_l = out_shape[-1], src_shape[-1], lo[-1], step[-1]
    # The taps' reach along the last axis (a program of no reads has none).
    first = int(column_offsets[0]) if column_offsets.size else 0
    last = int(column_offsets[-1]) if column_offsets.size else 0
    inner_lo = min(max(-((lo_l + first) // step_l), 0), width)
    inner_hi = min(max((n_l - lo_l - last - 1) // step_l + 1, inner_lo), width)
    nedge = inner_lo + width - inner_hi
    e = np.arange(nedge, dtype=np.int64)
    at = np.where(e < inner_lo, e, e - inner_lo + inner_hi) * step_l + lo_l
    cols = resolve(column_offsets[:, None] + at, n_l, code).reshape(-1)
    return rows, cols, (inner_lo, inner_hi, nedge), (lo_l, step_l)


# Tier 0's entry points, compiled as C callbacks ``int64(int64 block)`` by
# stencils._engine: (uses operators, dtype char) -> the function.  Whether it
# has the operators' code is a constant of the closure, so numba prunes their
# branch before typing it (the closure holds only constants: numba's disk
# cache keys a closure by its values, and a function among them pickles
# differently in every process).  Programs of reads, weighted sums and
# constants (every correlation, convolution and sum) need only the smaller
# build, which compiles in about half the time, and the first call of a
# process compiles (or loads) only the build its program needs.  The whole
# interpreter is one function: inlined into an entry point, numba copies its
# code once more (1.1 s more to compile), and called from one, its machine
# code is generated twice (0.4 s more); only small helpers are inlined.
TIER0_ENTRIES = {(True, "f"): _interpreter(True, np.float32(0)),
                 (True, "d"): _interpreter(True, np.float64(0)),
                 (False, "f"): _interpreter(False, np.float32(0)),
                 (False, "d"): _interpreter(False, np.float64(0))}


def register_count(prog):
    """The registers a program writes (tier 0's block holds the count).
    Computed by the caller: each loop that finds it in the interpreter is one
    more that LLVM vectorises in tier 0's cold compile."""
    return int(prog[:, 1].max()) + 1 if prog.shape[0] else 1


def uses_operators(prog):
    """Whether a register program needs the interpreter's build with the operators
    (an opcode of OPERATORS; see `_interpreter`)."""
    return bool(prog.shape[0]) and int(prog[:, 0].max()) >= SCALAR_BASE
