"""Numba kernels.  They see only clean arrays: C-contiguous, float32 or float64,
the source viewed as rows (every axis but the last flattened), the output the
same way.  Nothing here validates; stencils._engine does that before calling.

Geometry shared by every kernel (per axis ``a``): output index ``j`` reads the
source cells ``j * step[a] + lo[a] + k`` for box coordinates ``k`` in
``[0, size[a])`` (``lo = -from_origin``).  Reads outside ``[0, n)`` go through
`resolve_index` with the border's code.

Two kinds of kernel compute a stencil:

- the *interpreter* (this module) runs a small register program, one block of
  a row at a time, so it serves every stencil without compiling anything new;
- *generated* kernels (stencils._codegen) unroll one stencil's expression into
  straight-line code; they use `resolve_index` and the scalar functions below,
  so both kinds answer identically.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from ._kernels_border import (CACHE, CONTINUE, EDGE, FILL, REFLECT, SCIPY_MIRROR,  # noqa: F401
                              SCIPY_REFLECT, WRAP, resolve_index)

# 'contract' lets LLVM fuse a*b + c into one FMA (one rounding instead of two);
# the other fast-math flags would break NaN and inf handling, so they stay off.
FASTMATH = {"contract"}


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


# Interpreter opcodes.  Codes >= SCALAR_BASE follow the order of OPS in
# stencils._expr (checked by stencils._lower at import).
READ, READMUL, READMAC, MULC, MAC, CONST = range(6)
SCALAR_BASE = 16
SCALAR_OPS = (
    "mul", "div", "pow", "max", "min", "fmax", "fmin", "atan2", "hypot", "lt", "le", "gt",
    "ge", "eq", "ne", "and", "or", "xor", "copysign", "mod", "neg", "abs", "sqrt", "cbrt",
    "exp", "exp2", "expm1", "log", "log2", "log10", "log1p", "sin", "cos", "tan", "asin",
    "acos", "atan", "sinh", "cosh", "tanh", "asinh", "acosh", "atanh", "floor", "ceil",
    "trunc", "rint", "sign", "not", "isnan", "isinf", "isfinite", "where",
)

# How generated kernels spell each op ({0}, {1}, {2}: operands).
SCALAR_TEMPLATES = {
    "mul": "({0} * {1})", "div": "({0} / {1})", "pow": "({0} ** {1})",
    "max": "op_max({0}, {1})", "min": "op_min({0}, {1})",
    "fmax": "op_fmax({0}, {1})", "fmin": "op_fmin({0}, {1})",
    "atan2": "np.arctan2({0}, {1})", "hypot": "np.hypot({0}, {1})",
    "lt": "(_one if {0} < {1} else _zero)", "le": "(_one if {0} <= {1} else _zero)",
    "gt": "(_one if {0} > {1} else _zero)", "ge": "(_one if {0} >= {1} else _zero)",
    "eq": "(_one if {0} == {1} else _zero)", "ne": "(_one if {0} != {1} else _zero)",
    "and": "(_one if ({0} != _zero and {1} != _zero) else _zero)",
    "or": "(_one if ({0} != _zero or {1} != _zero) else _zero)",
    "xor": "(_one if (({0} != _zero) != ({1} != _zero)) else _zero)",
    "copysign": "np.copysign({0}, {1})", "mod": "op_mod({0}, {1})",
    "neg": "(-{0})", "abs": "abs({0})", "sqrt": "np.sqrt({0})", "cbrt": "np.cbrt({0})",
    "exp": "np.exp({0})", "exp2": "np.exp2({0})", "expm1": "np.expm1({0})",
    "log": "np.log({0})", "log2": "np.log2({0})", "log10": "np.log10({0})",
    "log1p": "np.log1p({0})", "sin": "np.sin({0})", "cos": "np.cos({0})", "tan": "np.tan({0})",
    "asin": "np.arcsin({0})", "acos": "np.arccos({0})", "atan": "np.arctan({0})",
    "sinh": "np.sinh({0})", "cosh": "np.cosh({0})", "tanh": "np.tanh({0})",
    "asinh": "np.arcsinh({0})", "acosh": "np.arccosh({0})", "atanh": "np.arctanh({0})",
    "floor": "np.floor({0})", "ceil": "np.ceil({0})", "trunc": "np.trunc({0})",
    "rint": "np.rint({0})", "sign": "op_sign({0}, _one, _zero)",
    "not": "(_one if {0} == _zero else _zero)",
    "isnan": "(_one if {0} != {0} else _zero)",
    "isinf": "(_one if abs({0}) == np.inf else _zero)",
    "isfinite": "(_one if abs({0}) < np.inf else _zero)",
    "where": "({1} if {0} != _zero else {2})",
}


@njit(cache=CACHE, nogil=True, error_model="numpy")
def scalar_op(op, a, b, c, one, zero):  # noqa: C901 - one branch per op, by design
    """The interpreter's meaning of opcode `op` (the same as SCALAR_TEMPLATES)."""
    k = op - SCALAR_BASE
    if k == 0:
        return a * b
    if k == 1:
        return a / b
    if k == 2:
        return a ** b
    if k == 3:
        return op_max(a, b)
    if k == 4:
        return op_min(a, b)
    if k == 5:
        return op_fmax(a, b)
    if k == 6:
        return op_fmin(a, b)
    if k == 7:
        return np.arctan2(a, b)
    if k == 8:
        return np.hypot(a, b)
    if k == 9:
        return one if a < b else zero
    if k == 10:
        return one if a <= b else zero
    if k == 11:
        return one if a > b else zero
    if k == 12:
        return one if a >= b else zero
    if k == 13:
        return one if a == b else zero
    if k == 14:
        return one if a != b else zero
    if k == 15:
        return one if (a != zero and b != zero) else zero
    if k == 16:
        return one if (a != zero or b != zero) else zero
    if k == 17:
        return one if ((a != zero) != (b != zero)) else zero
    if k == 18:
        return np.copysign(a, b)
    if k == 19:
        return op_mod(a, b)
    if k == 20:
        return -a
    if k == 21:
        return abs(a)
    if k == 22:
        return np.sqrt(a)
    if k == 23:
        return np.cbrt(a)
    if k == 24:
        return np.exp(a)
    if k == 25:
        return np.exp2(a)
    if k == 26:
        return np.expm1(a)
    if k == 27:
        return np.log(a)
    if k == 28:
        return np.log2(a)
    if k == 29:
        return np.log10(a)
    if k == 30:
        return np.log1p(a)
    if k == 31:
        return np.sin(a)
    if k == 32:
        return np.cos(a)
    if k == 33:
        return np.tan(a)
    if k == 34:
        return np.arcsin(a)
    if k == 35:
        return np.arccos(a)
    if k == 36:
        return np.arctan(a)
    if k == 37:
        return np.sinh(a)
    if k == 38:
        return np.cosh(a)
    if k == 39:
        return np.tanh(a)
    if k == 40:
        return np.arcsinh(a)
    if k == 41:
        return np.arccosh(a)
    if k == 42:
        return np.arctanh(a)
    if k == 43:
        return np.floor(a)
    if k == 44:
        return np.ceil(a)
    if k == 45:
        return np.trunc(a)
    if k == 46:
        return np.rint(a)
    if k == 47:
        return op_sign(a, one, zero)
    if k == 48:
        return one if a == zero else zero
    if k == 49:
        return one if a != a else zero
    if k == 50:
        return one if abs(a) == np.inf else zero
    if k == 51:
        return one if abs(a) < np.inf else zero
    # k == 52: where
    return b if a != zero else c


# -- the interpreter -----------------------------------------------------------

@njit(cache=CACHE, nogil=True, error_model="numpy")
def _ceil_div(a, b):
    return -((-a) // b)


@njit(cache=CACHE, nogil=True, error_model="numpy", fastmath=FASTMATH)
def _read_row(dst, src_row, valid, fill, j0, j1, lo_l, step_l, k, n_l, code, weight, mode):
    """dst[0 : j1-j0] (=, +=) weight * source[j*step + lo + k] for j in [j0, j1).

    mode 0: dst = value; 1: dst = weight * value; 2: dst += weight * value.
    """
    nb = j1 - j0
    if not valid:
        v = fill if mode == 0 else weight * fill
        if mode == 2:
            for t in range(nb):
                dst[t] += v
        else:
            for t in range(nb):
                dst[t] = v
        return
    base = lo_l + k
    ja = max(j0, min(j1, _ceil_div(-base, step_l)))
    jb = min(j1, max(ja, (n_l - 1 - base) // step_l + 1))
    # The edges, [j0, ja) and [jb, j1), resolve each read through the border rule.
    for j in range(j0, j1):
        if ja <= j < jb:
            continue
        r = resolve_index(j * step_l + base, n_l, code)
        v = src_row[r] if r >= 0 else fill
        if mode == 0:
            dst[j - j0] = v
        elif mode == 1:
            dst[j - j0] = weight * v
        else:
            dst[j - j0] += weight * v
    n = jb - ja
    if n <= 0:
        return
    # Interior: slices starting at 0 keep every index provably >= 0, so no
    # negative-index wraparound check stops LLVM from vectorising.
    d = dst[ja - j0:]
    s = src_row[ja * step_l + base:]
    if step_l == 1:
        if mode == 0:
            for t in range(n):
                d[t] = s[t]
        elif mode == 1:
            for t in range(n):
                d[t] = weight * s[t]
        else:
            for t in range(n):
                d[t] += weight * s[t]
    else:
        for t in range(n):
            v = s[t * step_l]
            if mode == 0:
                d[t] = v
            elif mode == 1:
                d[t] = weight * v
            else:
                d[t] += weight * v


@njit(cache=CACHE, nogil=True, error_model="numpy", fastmath=FASTMATH)
def _interpret_items(src2, out2, fillrow, consts, prog, taps, out_outer, src_outer, lo, step,
                     code, colblock, first, last, regs, tap_rows, outer_index):
    """Run the program for work items [first, last): item = (output row, column block)."""
    ndim = lo.shape[0]
    n_l = src2.shape[1]
    width = out2.shape[1]
    nblk = (width + colblock - 1) // colblock
    fill = consts[2]
    one = consts[1]
    zero = consts[0]
    ntaps = taps.shape[0]
    lo_l = lo[ndim - 1]
    step_l = step[ndim - 1]
    for item in range(first, last):
        line = item // nblk
        j0 = (item - line * nblk) * colblock
        j1 = min(j0 + colblock, width)
        nb = j1 - j0
        rem = line
        for a in range(ndim - 2, -1, -1):
            outer_index[a] = rem % out_outer[a]
            rem //= out_outer[a]
        for t in range(ntaps):
            row = 0
            for a in range(ndim - 1):
                r = resolve_index(outer_index[a] * step[a] + lo[a] + taps[t, a], src_outer[a], code)
                if r < 0:
                    row = -1
                    break
                row = row * src_outer[a] + r
            tap_rows[t] = row
        for ins in range(prog.shape[0]):
            op = prog[ins, 0]
            d = regs[prog[ins, 1]]
            if op <= READMAC:
                t = prog[ins, 2]
                row = tap_rows[t]
                src_row = src2[row] if row >= 0 else fillrow
                _read_row(d, src_row, row >= 0, fill, j0, j1, lo_l, step_l, taps[t, ndim - 1],
                          n_l, code, consts[prog[ins, 3]], op)
            elif op == MULC:
                x = regs[prog[ins, 2]]
                w = consts[prog[ins, 3]]
                for j in range(nb):
                    d[j] = w * x[j]
            elif op == MAC:
                x = regs[prog[ins, 2]]
                w = consts[prog[ins, 3]]
                for j in range(nb):
                    d[j] += w * x[j]
            elif op == CONST:
                v = consts[prog[ins, 2]]
                for j in range(nb):
                    d[j] = v
            else:
                x = regs[prog[ins, 2]]
                y = regs[prog[ins, 3]]
                z = regs[prog[ins, 4]]
                for j in range(nb):
                    d[j] = scalar_op(op, x[j], y[j], z[j], one, zero)
        result = regs[prog[prog.shape[0] - 1, 1]]
        o = out2[line]
        for j in range(nb):
            o[j0 + j] = result[j]


@njit(cache=CACHE, parallel=True, error_model="numpy")
def interpret_parallel(src2, out2, consts, prog, taps, out_outer, src_outer, lo, step, code,
                       colblock, nchunks, nregs):
    nitems = out2.shape[0] * ((out2.shape[1] + colblock - 1) // colblock)
    # Rows outside the array (Fill, outer axes only) read this one; 1-D has none.
    fillrow = np.full(src2.shape[1] if lo.shape[0] > 1 else 1, consts[2], dtype=src2.dtype)
    for ch in prange(nchunks):
        regs = np.empty((nregs, colblock), dtype=src2.dtype)
        tap_rows = np.empty(taps.shape[0], dtype=np.int64)
        outer_index = np.empty(max(lo.shape[0] - 1, 1), dtype=np.int64)
        _interpret_items(src2, out2, fillrow, consts, prog, taps, out_outer, src_outer, lo, step,
                         code, colblock, ch * nitems // nchunks, (ch + 1) * nitems // nchunks,
                         regs, tap_rows, outer_index)


@njit(cache=CACHE, nogil=True, error_model="numpy")
def interpret_serial(src2, out2, consts, prog, taps, out_outer, src_outer, lo, step, code,
                     colblock, nchunks, nregs):
    nitems = out2.shape[0] * ((out2.shape[1] + colblock - 1) // colblock)
    # Rows outside the array (Fill, outer axes only) read this one; 1-D has none.
    fillrow = np.full(src2.shape[1] if lo.shape[0] > 1 else 1, consts[2], dtype=src2.dtype)
    regs = np.empty((nregs, colblock), dtype=src2.dtype)
    tap_rows = np.empty(taps.shape[0], dtype=np.int64)
    outer_index = np.empty(max(lo.shape[0] - 1, 1), dtype=np.int64)
    _interpret_items(src2, out2, fillrow, consts, prog, taps, out_outer, src_outer, lo, step, code,
                     colblock, 0, nitems, regs, tap_rows, outer_index)
