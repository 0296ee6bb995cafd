"""Symbolic values: what a stencil function computes, recorded once and compiled.

`make_stencil` calls the user's function a single time with a `get` that returns
`Expr` objects instead of numbers.  Arithmetic, NumPy ufuncs and ``np.where`` on
them build a small expression graph (a DAG; identical sub-expressions are shared
by hash-consing), which the kernel layer turns into native code.  No Python
runs per element.

Rewrites done while building are exact in IEEE arithmetic (``-(a + b)`` is
``-a + -b``; ``c * x`` is one product), except that sums of several terms are
re-associated: that changes rounding only, as any summation order does.
"""

from __future__ import annotations

import numbers
import struct
import weakref

import numpy as np

from . import _kernels as kn
from .errors import StencilTypeError, StencilValueError

__all__ = ["Expr", "const", "read", "as_expr", "lin", "apply_op", "topological_order", "to_flat",
           "from_flat", "OPS"]

# name -> arity, from the operator table of stencils._kernels, which also
# gives each op's meaning to the interpreter and the generated kernels.
OPS = dict(kn.ARITY)

_INTERNED = weakref.WeakValueDictionary()


def _float_key(value):
    # Bit pattern: distinguishes -0.0 from 0.0 and makes NaN equal to itself.
    return struct.pack("<d", value)


class Expr:
    """A symbolic value inside a stencil function.

    Do not build these directly: `make_stencil` hands them out through ``get``.
    They support ``+ - * / **``, unary ``-`` and ``abs``, comparisons, ``& | ~``
    on conditions, NumPy ufuncs (``np.maximum``, ``np.exp``, ``np.sqrt``...)
    and ``np.where`` / ``np.clip``.  Python control flow on them (``if``,
    ``max()``, ``math.exp``) cannot be recorded and raises a `TypeError` that
    names the NumPy function to use instead.
    """

    __slots__ = ("op", "args", "weights", "__weakref__")
    __array_priority__ = 1000

    # ``op`` is 'read' (args: offset tuple), 'const' (args: (float,)), 'lin'
    # (args: terms, weights: their float weights; value = sum of weight * term),
    # or a name in OPS (args: operand Exprs).

    def __new__(cls, op, args, weights=()):
        if op == "read":
            key = (op, args)
        elif op == "const":
            key = (op, _float_key(args[0]))
        else:
            key = (op, tuple(id(a) for a in args), tuple(_float_key(w) for w in weights))
        node = _INTERNED.get(key)
        if node is None:
            node = object.__new__(cls)
            object.__setattr__(node, "op", op)
            object.__setattr__(node, "args", args)
            object.__setattr__(node, "weights", weights)
            _INTERNED[key] = node
        return node

    def __setattr__(self, name, value):
        raise AttributeError("Expr is immutable")

    __hash__ = object.__hash__

    def __reduce__(self):
        # Flat, not recursive: a deep expression (a 31x31 max_stencil is a
        # chain of 961 nodes) would exceed Python's recursion limit.
        return (from_flat, (to_flat(self),))

    def __repr__(self):
        return f"<symbolic stencil value: {describe(self)}>"

    # -- arithmetic -------------------------------------------------------
    def __add__(self, other):
        return add(self, as_expr(other))

    def __radd__(self, other):
        return add(as_expr(other), self)

    def __sub__(self, other):
        return add(self, neg(as_expr(other)))

    def __rsub__(self, other):
        return add(as_expr(other), neg(self))

    def __mul__(self, other):
        return mul(self, as_expr(other))

    def __rmul__(self, other):
        return mul(as_expr(other), self)

    def __truediv__(self, other):
        return apply_op("div", self, as_expr(other))

    def __rtruediv__(self, other):
        return apply_op("div", as_expr(other), self)

    def __pow__(self, other):
        return power(self, as_expr(other))

    def __rpow__(self, other):
        return power(as_expr(other), self)

    def __mod__(self, other):
        return apply_op("mod", self, as_expr(other))

    def __neg__(self):
        return neg(self)

    def __pos__(self):
        return self

    def __abs__(self):
        return apply_op("abs", self)

    def __lt__(self, other):
        return apply_op("lt", self, as_expr(other))

    def __le__(self, other):
        return apply_op("le", self, as_expr(other))

    def __gt__(self, other):
        return apply_op("gt", self, as_expr(other))

    def __ge__(self, other):
        return apply_op("ge", self, as_expr(other))

    def __eq__(self, other):  # noqa: D105 - symbolic comparison, like NumPy arrays
        return apply_op("eq", self, as_expr(other))

    def __ne__(self, other):
        return apply_op("ne", self, as_expr(other))

    def __and__(self, other):
        return apply_op("and", self, as_expr(other))

    __rand__ = __and__

    def __or__(self, other):
        return apply_op("or", self, as_expr(other))

    __ror__ = __or__

    def __xor__(self, other):
        return apply_op("xor", self, as_expr(other))

    __rxor__ = __xor__

    def __invert__(self):
        return apply_op("not", self)

    # -- what cannot be recorded ------------------------------------------
    def __bool__(self):
        raise StencilTypeError(
            "a stencil function is recorded once, symbolically, so it cannot branch on a value "
            "(an `if`, `and`/`or`, or Python's max()/min() on values read with get). "
            "Use np.where(condition, a, b), np.maximum(a, b) or np.minimum(a, b) instead.",
            param="fn", value=self, expected="branch-free NumPy expressions",
        )

    def __float__(self):
        raise StencilTypeError(
            "a value read with get is symbolic and cannot be converted to a Python number "
            "(e.g. by math.exp or float()); use the NumPy ufunc instead (np.exp, np.sqrt, ...).",
            param="fn", value=self, expected="NumPy ufuncs on symbolic values",
        )

    __int__ = __float__
    __index__ = __float__
    __complex__ = __float__

    def __iter__(self):
        raise StencilTypeError(
            "a value read with get is a single number, not a sequence.",
            param="fn", value=self, expected="a scalar expression",
        )

    # -- NumPy protocols ----------------------------------------------------
    def __array_ufunc__(self, ufunc, method, *inputs, **kwargs):
        if method != "__call__" or kwargs:
            return _unsupported(f"np.{ufunc.__name__}.{method}" if method != "__call__"
                                else f"np.{ufunc.__name__} with keywords {sorted(kwargs)}")
        builder = _UFUNCS.get(ufunc)
        if builder is None:
            return _unsupported(f"np.{ufunc.__name__}")
        return builder(*[as_expr(x) for x in inputs])

    def __array_function__(self, func, types, args, kwargs):
        if func is np.where and not kwargs and len(args) == 3:
            cond, a, b = (as_expr(x) for x in args)
            return apply_op("where", cond, a, b)
        if func is np.clip:
            return _clip(*args, **kwargs)
        return _unsupported(f"np.{func.__name__}")


def _unsupported(what):
    names = sorted(f"np.{u.__name__}" for u in _UFUNCS) + ["np.where", "np.clip"]
    raise StencilTypeError(
        f"{what} cannot be used in a stencil function; supported: {', '.join(names)}, "
        "and the operators + - * / ** % abs < <= > >= == != & | ~.",
        param="fn", value=what, expected="a supported NumPy function",
    )


def _clip(a, a_min=None, a_max=None, **kwargs):
    if kwargs:
        _unsupported(f"np.clip with keywords {sorted(kwargs)}")
    out = as_expr(a)
    if a_min is not None:
        out = apply_op("max", out, as_expr(a_min))
    if a_max is not None:
        out = apply_op("min", out, as_expr(a_max))
    return out


def const(value):
    """The constant `value` as an expression."""
    return Expr("const", (_as_float(value),))


def _as_float(value):
    try:
        return float(value)
    except OverflowError:
        raise StencilValueError(
            f"{value!r} does not fit in a float64, so a stencil cannot compute with it.",
            param="value", value=value, expected="a number within float64's range",
        ) from None


def read(offset):
    """The source value at ``centre + offset``."""
    return Expr("read", tuple(int(d) for d in offset))


def as_expr(x):
    """An `Expr` for `x` (an Expr, or a real number)."""
    if isinstance(x, Expr):
        return x
    if isinstance(x, (numbers.Real, np.bool_)) or (
        isinstance(x, np.ndarray) and x.ndim == 0 and x.dtype.kind in "biuf"
    ):
        return const(x)
    raise StencilTypeError(
        f"a stencil function can combine read values only with real numbers; got {x!r} "
        f"of type {type(x).__name__}.",
        param="fn", value=x, expected="a real number or a value read with get",
    )


def lin(terms, weights):
    """``sum(w * t)``, normalised: one term of weight 1 is the term itself."""
    terms = tuple(terms)
    weights = tuple(_as_float(w) for w in weights)
    if len(terms) == 1 and weights[0] == 1.0:
        return terms[0]
    return Expr("lin", terms, weights)


def _as_terms(x):
    if x.op == "lin":
        return x.args, x.weights
    return (x,), (1.0,)


def add(a, b):
    ta, wa = _as_terms(a)
    tb, wb = _as_terms(b)
    return lin(ta + tb, wa + wb)


def neg(x):
    if x.op == "const":
        return const(-x.args[0])
    terms, weights = _as_terms(x)
    return lin(terms, [-w for w in weights])


def mul(a, b):
    if a.op == "const" and b.op != "const":
        return _scale(b, a.args[0])
    if b.op == "const" and a.op != "const":
        return _scale(a, b.args[0])
    return apply_op("mul", a, b)


def _scale(x, c):
    # c * x is one rounding; c * (w1*t1 + w2*t2) must stay c * (sum), not be distributed,
    # so a sum becomes a single term of weight c.
    return lin((x,), (c,))


def power(a, b):
    if b.op == "const" and b.args[0] == 2.0:
        return apply_op("mul", a, a)
    return apply_op("pow", a, b)


def apply_op(name, *args):
    """The node ``name(*args)`` for an op in `OPS`."""
    if OPS[name] != len(args):
        raise AssertionError(f"{name} takes {OPS[name]} operands")
    return Expr(name, tuple(args))


def to_flat(root):
    """The expression as a list of plain tuples, operands before users."""
    order = topological_order(root)
    index = {id(node): i for i, node in enumerate(order)}
    flat = []
    for node in order:
        if node.op in ("read", "const"):
            flat.append((node.op, node.args, ()))
        else:
            flat.append((node.op, tuple(index[id(a)] for a in node.args), node.weights))
    return flat


def from_flat(flat):
    """The expression `to_flat` recorded."""
    nodes = []
    for op, args, weights in flat:
        if op not in ("read", "const"):
            args = tuple(nodes[i] for i in args)
        nodes.append(Expr(op, args, weights))
    return nodes[-1]


def topological_order(root):
    """Every node reachable from `root`, operands before users (iterative DFS)."""
    order, seen = [], set()
    stack = [(root, False)]
    while stack:
        node, expanded = stack.pop()
        if expanded:
            order.append(node)
            continue
        if id(node) in seen:
            continue
        seen.add(id(node))
        stack.append((node, True))
        if node.op not in ("read", "const"):
            for child in reversed(node.args):
                if id(child) not in seen:
                    stack.append((child, False))
    return order


def describe(root, limit=200):
    """A short human-readable rendering of an expression (for repr and errors)."""
    names = {}
    for node in topological_order(root):
        if node.op == "read":
            text = "get(" + ", ".join(map(str, node.args)) + ")"
        elif node.op == "const":
            text = repr(node.args[0])
        elif node.op == "lin":
            parts = []
            for t, w in zip(node.args, node.weights):
                parts.append(names[id(t)] if w == 1.0 else f"{w!r}*{names[id(t)]}")
            text = "(" + " + ".join(parts) + ")"
        else:
            text = f"{node.op}(" + ", ".join(names[id(a)] for a in node.args) + ")"
        if len(text) > limit:
            text = text[: limit - 3] + "..."
        names[id(node)] = text
    return names[id(root)]


def _unary(name):
    return lambda x: apply_op(name, x)


def _binary(name):
    return lambda a, b: apply_op(name, a, b)


_UFUNCS = {
    np.add: add,
    np.subtract: lambda a, b: add(a, neg(b)),
    np.multiply: mul,
    np.true_divide: _binary("div"),
    np.power: power,
    np.float_power: power,
    np.negative: neg,
    np.positive: lambda x: x,
    np.absolute: _unary("abs"),
    np.fabs: _unary("abs"),
    np.square: lambda x: apply_op("mul", x, x),
    np.reciprocal: lambda x: apply_op("div", const(1.0), x),
    np.maximum: _binary("max"),
    np.minimum: _binary("min"),
    np.fmax: _binary("fmax"),
    np.fmin: _binary("fmin"),
    np.arctan2: _binary("atan2"),
    np.hypot: _binary("hypot"),
    np.copysign: _binary("copysign"),
    np.mod: _binary("mod"),
    np.less: _binary("lt"),
    np.less_equal: _binary("le"),
    np.greater: _binary("gt"),
    np.greater_equal: _binary("ge"),
    np.equal: _binary("eq"),
    np.not_equal: _binary("ne"),
    np.logical_and: _binary("and"),
    np.logical_or: _binary("or"),
    np.logical_xor: _binary("xor"),
    np.logical_not: _unary("not"),
    np.isnan: _unary("isnan"),
    np.isinf: _unary("isinf"),
    np.isfinite: _unary("isfinite"),
}
for _name, _ufunc in [
    ("sqrt", np.sqrt), ("cbrt", np.cbrt), ("exp", np.exp), ("exp2", np.exp2),
    ("expm1", np.expm1), ("log", np.log), ("log2", np.log2), ("log10", np.log10),
    ("log1p", np.log1p), ("sin", np.sin), ("cos", np.cos), ("tan", np.tan),
    ("asin", np.arcsin), ("acos", np.arccos), ("atan", np.arctan), ("sinh", np.sinh),
    ("cosh", np.cosh), ("tanh", np.tanh), ("asinh", np.arcsinh), ("acosh", np.arccosh),
    ("atanh", np.arctanh), ("floor", np.floor), ("ceil", np.ceil), ("trunc", np.trunc),
    ("rint", np.rint), ("sign", np.sign),
]:
    _UFUNCS[_ufunc] = _unary(_name)
del _name, _ufunc
