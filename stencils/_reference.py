"""Plain NumPy reference implementations, for tests and benchmark baselines.

Deliberately naive: pad by the border rule one index at a time (massiv's and
scipy's formulas written out in Python), then loop over output points and
evaluate the stencil's expression with NumPy scalars.  Slow, obviously right,
and sharing no code with the kernels.
"""

from __future__ import annotations

import itertools

import numpy as np

from . import _border as b
from . import _expr as ex

__all__ = ["border_index", "pad", "apply", "apply_function", "evaluate"]


def border_index(i, n, border):
    """The index answering a read at `i` on an axis of length `n`; None for Fill."""
    if 0 <= i < n:
        return i
    code = border.code
    if code == b.FILL:
        return None
    if code == b.WRAP:
        return i % n
    if code == b.EDGE:
        return 0 if i < 0 else n - 1
    if code == b.REFLECT:
        return (-i - 1) % n
    if code == b.CONTINUE:
        return (-i) % n if i < 0 else (-i - 2) % n
    if code == b.SCIPY_REFLECT:
        m = i % (2 * n)
        return m if m < n else 2 * n - 1 - m
    if n == 1:
        return 0
    m = i % (2 * n - 2)
    return m if m < n else 2 * n - 2 - m


def pad(array, before, after, border):
    """`array` with `before[a]` / `after[a]` cells added on each axis by `border`."""
    array = np.asarray(array)
    shape = tuple(n + p + q for n, p, q in zip(array.shape, before, after))
    out = np.empty(shape, dtype=array.dtype)
    for idx in itertools.product(*map(range, shape)):
        src = [border_index(i - p, n, border) for i, p, n in zip(idx, before, array.shape)]
        out[idx] = border.value if any(s is None for s in src) else array[tuple(src)]
    return out


_SCALAR = {
    "mul": np.multiply, "div": np.divide, "pow": np.power, "max": np.maximum,
    "min": np.minimum, "fmax": np.fmax, "fmin": np.fmin, "atan2": np.arctan2,
    "hypot": np.hypot, "lt": np.less, "le": np.less_equal, "gt": np.greater,
    "ge": np.greater_equal, "eq": np.equal, "ne": np.not_equal, "and": np.logical_and,
    "or": np.logical_or, "xor": np.logical_xor, "copysign": np.copysign, "mod": np.mod,
    "neg": np.negative, "abs": np.abs, "sqrt": np.sqrt, "cbrt": np.cbrt, "exp": np.exp,
    "exp2": np.exp2, "expm1": np.expm1, "log": np.log, "log2": np.log2, "log10": np.log10,
    "log1p": np.log1p, "sin": np.sin, "cos": np.cos, "tan": np.tan, "asin": np.arcsin,
    "acos": np.arccos, "atan": np.arctan, "sinh": np.sinh, "cosh": np.cosh,
    "tanh": np.tanh, "asinh": np.arcsinh, "acosh": np.arccosh, "atanh": np.arctanh,
    "floor": np.floor, "ceil": np.ceil, "trunc": np.trunc, "rint": np.rint,
    "sign": np.sign, "not": np.logical_not, "isnan": np.isnan, "isinf": np.isinf,
    "isfinite": np.isfinite, "where": lambda c, x, y: x if c != 0 else y,
}


def evaluate(expr, read, dtype):
    """The value of `expr` where ``read(offset)`` gives the source values."""
    t = np.dtype(dtype).type
    values = {}
    with np.errstate(all="ignore"):
        for node in ex.topological_order(expr):
            if node.op == "read":
                v = t(read(node.args))
            elif node.op == "const":
                v = t(node.args[0])
            elif node.op == "lin":
                v = None
                for term, w in zip(node.args, node.weights):
                    part = t(w) * values[id(term)]
                    v = part if v is None else t(v + part)
            else:
                v = t(_SCALAR[node.op](*(values[id(a)] for a in node.args)))
            values[id(node)] = v
    return values[id(expr)]


def apply_function(fn, size, center, array, from_origin, from_bottom, border, stride=None):
    """massiv's ``applyStencil`` then ``computeWithStride`` for ``makeStencil size center fn``,
    calling ``fn(get)`` with real numbers at every output point."""
    array = np.asarray(array)
    ndim = array.ndim
    stride = stride or (1,) * ndim
    full = tuple(max(0, p + q + n - max(0, s - 1))
                 for p, q, n, s in zip(from_origin, from_bottom, array.shape, size))
    shape = tuple(-(-m // s) for m, s in zip(full, stride))
    out = np.empty(shape, dtype=array.dtype)
    t = array.dtype.type
    for o in itertools.product(*map(range, shape)):
        centre = [j * s + c - p for j, s, c, p in zip(o, stride, center, from_origin)]

        def get(*offset, centre=centre):
            idx = [border_index(c + d, n, border) for c, d, n in zip(centre, offset, array.shape)]
            return t(border.value) if any(i is None for i in idx) else array[tuple(idx)]

        with np.errstate(all="ignore"):
            out[o] = fn(get)
    return out


def apply(stencil, array, from_origin, from_bottom, border, stride=None):
    """massiv's ``applyStencil`` then ``computeWithStride`` for a recorded stencil."""
    array = np.asarray(array)
    return apply_function(
        lambda get: evaluate(stencil.expr, lambda d: get(*d), array.dtype),
        stencil.size, stencil.center, array, from_origin, from_bottom, border, stride)

