"""The Stencil value and every way to make one (massiv's constructors and instances)."""

from __future__ import annotations

import itertools
import numbers

import numpy as np

from . import _expr as ex
from ._validate import is_int
from .errors import OffsetOutOfBoundsError, StencilTypeError, StencilValueError

__all__ = [
    "Stencil",
    "make_stencil",
    "make_correlation_stencil_from_kernel",
    "make_convolution_stencil_from_kernel",
    "make_correlation_stencil",
    "make_convolution_stencil",
    "id_stencil",
    "sum_stencil",
    "product_stencil",
    "avg_stencil",
    "max_stencil",
    "min_stencil",
    "foldl_stencil",
    "foldr_stencil",
    "rmap_stencil",
    "lmap_stencil",
    "dimap_stencil",
]


def as_size(size, *, param="size", allow_zero=False):
    """A stencil size as a tuple of ints (an int means 1-D)."""
    sizes = (size,) if is_int(size) else size
    try:
        sizes = tuple(sizes)
    except TypeError:
        raise StencilTypeError(
            f"{param}={size!r} is not a size; expected an int (1-D) or a tuple of ints, "
            "one per axis, e.g. (3, 3).",
            param=param, value=size, expected="int or tuple of ints",
        ) from None
    low = 0 if allow_zero else 1
    if not sizes or not all(is_int(n) for n in sizes) or any(n < low for n in sizes):
        raise StencilValueError(
            f"{param}={size!r} is not a size; expected an int or a non-empty tuple of ints "
            f">= {low}, one per axis, e.g. (3, 3).",
            param=param, value=size, expected=f"ints >= {low}",
        )
    return tuple(int(n) for n in sizes)


def _as_center(center, size, *, param="center"):
    centers = (center,) if is_int(center) else center
    try:
        centers = tuple(centers)
    except TypeError:
        raise StencilTypeError(
            f"{param}={center!r} is not an index; expected a tuple of {len(size)} ints.",
            param=param, value=center, expected=f"tuple of {len(size)} ints",
        ) from None
    if len(centers) != len(size) or not all(is_int(c) for c in centers):
        raise StencilValueError(
            f"{param}={center!r} does not match size={size}: expected {len(size)} "
            f"int{'s' if len(size) > 1 else ''}, one per axis.",
            param=param, value=center, expected=f"{len(size)} ints",
        )
    centers = tuple(int(c) for c in centers)
    for axis, (c, s) in enumerate(zip(centers, size)):
        if not 0 <= c < s:
            raise StencilValueError(
                f"{param}={center!r} lies outside the stencil of size {size}: on axis {axis} "
                f"the centre must be in [0, {s - 1}], got {c}.",
                param=param, value=center, expected=f"0 <= center < size on every axis",
            )
    return centers


def _check_offset(offset, size, center, *, what="get"):
    if not all(is_int(d) for d in offset):
        raise StencilTypeError(
            f"{what}{tuple(offset)!r}: offsets must be integers known when the stencil is made "
            "(a stencil cannot read at a data-dependent position).",
            param="offset", value=offset, expected="ints",
        )
    if len(offset) != len(size):
        raise StencilValueError(
            f"{what}{tuple(offset)!r} has {len(offset)} offset{'s' if len(offset) != 1 else ''} "
            f"but the stencil has {len(size)} axes (size {size}); give one offset per axis.",
            param="offset", value=offset, expected=f"{len(size)} ints",
        )
    for axis, (d, c, s) in enumerate(zip(offset, center, size)):
        if not -c <= d <= s - 1 - c:
            raise OffsetOutOfBoundsError(
                f"{what}{tuple(int(x) for x in offset)!r} reads outside the stencil's box: with "
                f"size {size} and centre {center}, offsets on axis {axis} must lie in "
                f"[{-c}, {s - 1 - c}]. Enlarge the size or move the centre.",
                param="offset", value=tuple(offset), expected=f"[{-c}, {s - 1 - c}] on axis {axis}",
            )


class Stencil:
    """A stencil: a box size, a centre inside it, and what it computes there.

    The value at an output point is computed from source values read at fixed
    offsets from the point's centre.  Stencils are immutable values; make them
    with `make_stencil` or the other constructors, combine them with
    arithmetic (``s1 + s2``, ``s / 9``, ``np.sqrt(s)``: massiv's Num,
    Fractional and Floating instances, with its union-box rule), and apply
    them with `map_stencil` or `apply_stencil`.

    Attributes
    ----------
    size : tuple of int
        The box, one length per axis (massiv's ``getStencilSize``).
    center : tuple of int
        The stored centre (massiv's ``getStencilCenter``; for convolution
        stencils it is the inverted centre).
    ndim : int
        Number of axes.

    Examples
    --------
    >>> import numpy as np, stencils as st
    >>> blur = st.avg_stencil((3, 3))
    >>> blur
    Stencil(size=(3, 3), center=(0, 0))
    >>> centred = st.make_stencil((3,), (1,), lambda get: get(-1) + get(1))
    >>> (centred * 2).size, (centred + st.sum_stencil(4)).size
    ((3,), (5,))
    """

    __slots__ = ("_size", "_center", "_expr")

    def __init__(self, size, center, expr):
        self._size = tuple(size)
        self._center = tuple(center)
        self._expr = expr

    size = property(lambda self: self._size)
    center = property(lambda self: self._center)
    ndim = property(lambda self: len(self._size))
    expr = property(lambda self: self._expr, doc="The recorded expression (internal).")

    def __repr__(self):
        return f"Stencil(size={self._size}, center={self._center})"

    def describe(self):
        """What the stencil computes, as text (``get(d)`` reads at centre + d).

        Examples
        --------
        >>> import stencils as st
        >>> st.make_stencil(3, 1, lambda get: get(-1) - 2 * get(1)).describe()
        '(get(-1) + -2.0*get(1))'
        """
        return ex.describe(self._expr)

    def __reduce__(self):
        return (_rebuild, (self._size, self._center, ex.to_flat(self._expr)))

    def __bool__(self):
        return True

    # -- massiv's Num / Fractional / Floating ---------------------------------
    def __array_ufunc__(self, ufunc, method, *inputs, **kwargs):
        if method != "__call__" or kwargs:
            return NotImplemented
        builder = ex._UFUNCS.get(ufunc)
        if builder is None:
            return ex._unsupported(f"np.{ufunc.__name__}")
        return _lift(builder, inputs)

    def __array_function__(self, func, types, args, kwargs):
        if func is np.where and not kwargs and len(args) == 3:
            return _lift(lambda c, a, b: ex.apply_op("where", c, a, b), args)
        if func is np.clip:
            a, lo, hi = _clip_arguments(*args, **kwargs)
            present = [x is not None for x in (lo, hi)]

            def clip(e, *bounds):
                it = iter(bounds)
                return ex._clip(e, *(next(it) if p else None for p in present))

            return _lift(clip, [a] + [x for x in (lo, hi) if x is not None])
        return NotImplemented

    def _binary(builder, reflected=False):  # noqa: N805 - class-body helper
        if reflected:
            return lambda self, other: _lift(builder, (other, self))
        return lambda self, other: _lift(builder, (self, other))

    __add__ = _binary(ex.add)
    __radd__ = _binary(ex.add, True)
    __sub__ = _binary(lambda a, b: ex.add(a, ex.neg(b)))
    __rsub__ = _binary(lambda a, b: ex.add(a, ex.neg(b)), True)
    __mul__ = _binary(ex.mul)
    __rmul__ = _binary(ex.mul, True)
    __truediv__ = _binary(lambda a, b: ex.apply_op("div", a, b))
    __rtruediv__ = _binary(lambda a, b: ex.apply_op("div", a, b), True)
    __pow__ = _binary(ex.power)
    __rpow__ = _binary(ex.power, True)
    # Comparisons give 1/0 stencils, for np.where; == and != stay Python's
    # identity (use np.equal / np.not_equal on stencils).
    __lt__ = _binary(lambda a, b: ex.apply_op("lt", a, b))
    __le__ = _binary(lambda a, b: ex.apply_op("le", a, b))
    __gt__ = _binary(lambda a, b: ex.apply_op("gt", a, b))
    __ge__ = _binary(lambda a, b: ex.apply_op("ge", a, b))
    del _binary

    def __neg__(self):
        return Stencil(self._size, self._center, ex.neg(self._expr))

    def __pos__(self):
        return self

    def __abs__(self):
        return Stencil(self._size, self._center, ex.apply_op("abs", self._expr))


def _rebuild(size, center, flat):
    return Stencil(size, center, ex.from_flat(flat))


def _clip_arguments(a, a_min=None, a_max=None):
    return a, a_min, a_max


def _lift(builder, operands):
    """massiv's liftA2/fmap: apply `builder` at the same centre, on the union box."""
    stencils = [x for x in operands if isinstance(x, Stencil)]
    ndim = stencils[0].ndim
    for s in stencils[1:]:
        if s.ndim != ndim:
            raise StencilValueError(
                f"cannot combine a {ndim}-D stencil with a {s.ndim}-D one "
                f"(sizes {stencils[0].size} and {s.size}).",
                param="stencil", value=s, expected=f"a {ndim}-D stencil",
            )
    exprs = []
    for x in operands:
        if isinstance(x, Stencil):
            exprs.append(x.expr)
        elif isinstance(x, ex.Expr):
            raise StencilTypeError(
                "a symbolic value from get cannot be combined with a Stencil; combine the "
                "values inside the stencil function instead.",
                param="stencil", value=x, expected="a Stencil or a real number",
            )
        else:
            try:
                exprs.append(ex.as_expr(x))
            except StencilTypeError:
                return NotImplemented
    size, center = stencils[0].size, stencils[0].center
    for s in stencils[1:]:
        center2 = tuple(max(c1, c2) for c1, c2 in zip(center, s.center))
        size = tuple(c + max(s1 - c1, s2 - c2)
                     for c, s1, c1, s2, c2 in zip(center2, size, center, s.size, s.center))
        center = center2
    return Stencil(size, center, builder(*exprs))


def make_stencil(size, center, fn):
    """Make a stencil from a function of the neighbourhood (massiv's ``makeStencil``).

    Parameters
    ----------
    size : int or tuple of int
        The box, one length per axis (an int for 1-D).
    center : int or tuple of int
        The centre inside the box; ``0 <= center < size`` on every axis.
    fn : callable
        ``fn(get)`` returns the value at one point.  ``get(*offset)`` reads the
        source at centre + offset (``get(-1, 0)`` in 2-D, ``get(-1)`` in 1-D);
        offsets must lie in ``[-center, size - 1 - center]`` per axis.  `fn` is
        called once, with symbolic values, and compiled to native code: use
        arithmetic, NumPy ufuncs (``np.maximum``, ``np.abs``, ``np.exp``,
        ``np.sqrt``...), ``np.where`` and ``np.clip``, not ``if`` or ``math``.

    Returns
    -------
    Stencil

    Raises
    ------
    stencils.errors.OffsetOutOfBoundsError
        When `fn` reads outside the declared box: at creation, never an
        out-of-bounds read later (massiv issue #109).

    Examples
    --------
    The Day 5 delay kernel, and a centred 3-point Laplacian:

    >>> import numpy as np, stencils as st
    >>> delay = st.make_stencil(3, 1, lambda get: get(-1))
    >>> st.compute(st.map_stencil(st.Fill(0), delay, np.array([1.0, 2, 5, 6])))
    array([0., 1., 2., 5.])
    >>> lap = st.make_stencil(3, 1, lambda get: get(-1) - 2 * get(0) + get(1))
    >>> st.compute(st.map_stencil(st.Edge, lap, np.array([0.0, 1, 4, 9, 16])))
    array([ 1.,  2.,  2.,  2., -7.])

    Non-linear stencils compile too:

    >>> sobel = st.make_stencil((3, 3), (1, 1), lambda g: np.hypot(
    ...     g(-1, 1) + 2 * g(0, 1) + g(1, 1) - g(-1, -1) - 2 * g(0, -1) - g(1, -1),
    ...     g(1, -1) + 2 * g(1, 0) + g(1, 1) - g(-1, -1) - 2 * g(-1, 0) - g(-1, 1)))
    >>> st.compute(st.map_stencil(st.Edge, sobel, np.eye(3)))
    array([[2.82842712, 3.16227766, 1.41421356],
           [3.16227766, 0.        , 3.16227766],
           [1.41421356, 3.16227766, 2.82842712]])
    """
    size = as_size(size)
    center = _as_center(center, size)
    if not callable(fn):
        raise StencilTypeError(
            f"fn={fn!r} is not callable; expected a function of `get`, e.g. "
            "lambda get: get(-1) + get(1).",
            param="fn", value=fn, expected="a callable",
        )

    def get(*offset):
        if len(offset) == 1 and isinstance(offset[0], (tuple, list)):
            offset = tuple(offset[0])
        _check_offset(offset, size, center)
        return ex.read(offset)

    return Stencil(size, center, ex.as_expr(fn(get)))


def as_kernel(kernel, *, param="kernel"):
    if isinstance(kernel, Stencil):
        raise StencilTypeError(
            f"{param} is already a Stencil; pass it to map_stencil/apply_stencil directly.",
            param=param, value=kernel, expected="an array of weights",
        )
    try:
        k = np.asarray(kernel)
    except Exception as exc:  # ragged lists and the like
        raise StencilTypeError(
            f"{param} could not be read as an array ({exc}); expected an array of real weights.",
            param=param, value=kernel, expected="an array of real numbers",
        ) from None
    if k.dtype.kind not in "biuf":
        raise StencilTypeError(
            f"{param} has dtype {k.dtype}; expected real numbers (bool, int or float)."
            + (" Complex kernels: correlate the real and imaginary parts separately."
               if k.dtype.kind == "c" else ""),
            param=param, value=k.dtype, expected="a real dtype",
        )
    if k.ndim == 0 or 0 in k.shape:
        raise StencilValueError(
            f"{param} is empty or 0-D (shape {k.shape}); every axis needs length >= 1.",
            param=param, value=k.shape, expected="at least 1-D, no empty axis",
        )
    return k.astype(np.float64, copy=False)


def _kernel_stencil(k, centre, offset_of, *, drop_zeros=False):
    terms, weights = [], []
    for j in itertools.product(*map(range, k.shape)):
        w = float(k[j])
        if drop_zeros and w == 0.0:
            continue
        terms.append(ex.read(offset_of(j)))
        weights.append(w)
    if not terms:  # all weights zero: the sum of nothing
        return Stencil(k.shape, centre, ex.const(0.0))
    return Stencil(k.shape, centre, ex.lin(terms, weights))


def make_correlation_stencil_from_kernel(kernel, *, _drop_zeros=False):
    """Cross-correlation with a kernel (massiv's ``makeCorrelationStencilFromKernel``).

    ``out[i] = sum_j kernel[j] * a[i + j - h]`` with centre ``h = m // 2`` per
    axis of length ``m``, for odd and even sizes alike; the same as
    ``scipy.ndimage.correlate(a, kernel, origin=0)``.

    Parameters
    ----------
    kernel : array_like
        Real weights, at least 1-D, no empty axis.

    Returns
    -------
    Stencil

    Examples
    --------
    >>> import numpy as np, stencils as st
    >>> s = st.make_correlation_stencil_from_kernel([1, 2, 3, 4])
    >>> s.size, s.center
    ((4,), (2,))
    >>> impulse = np.array([0.0, 0, 0, 1, 0, 0, 0])
    >>> st.compute(st.map_stencil(st.Fill(0), s, impulse))
    array([0., 0., 4., 3., 2., 1., 0.])
    """
    k = as_kernel(kernel)
    h = tuple(m // 2 for m in k.shape)
    return _kernel_stencil(k, h, lambda j: tuple(a - b for a, b in zip(j, h)),
                           drop_zeros=_drop_zeros)


def make_convolution_stencil_from_kernel(kernel, *, _drop_zeros=False):
    """Convolution with a kernel (massiv's ``makeConvolutionStencilFromKernel``).

    ``out[i] = sum_j kernel[j] * a[i + h - j]`` with ``h = m // 2``; the stored
    centre is ``m - 1 - h`` (massiv issue #72), so even sizes agree with
    ``scipy.ndimage.convolve(a, kernel, origin=0)``.  For even sizes this is
    *not* the correlation with the flipped kernel (that lands one cell off).

    Parameters
    ----------
    kernel : array_like
        Real weights, at least 1-D, no empty axis.

    Returns
    -------
    Stencil

    Examples
    --------
    >>> import numpy as np, stencils as st
    >>> s = st.make_convolution_stencil_from_kernel([1, 2, 3, 4])
    >>> s.center
    (1,)
    >>> st.compute(st.map_stencil(st.Fill(0), s, np.array([1.0, 2, 3, 4, 5])))
    array([10., 20., 30., 34., 31.])
    """
    k = as_kernel(kernel)
    h = tuple(m // 2 for m in k.shape)
    centre = tuple(m - 1 - hh for m, hh in zip(k.shape, h))
    return _kernel_stencil(k, centre, lambda j: tuple(b - a for a, b in zip(j, h)),
                           drop_zeros=_drop_zeros)


def _tap_pairs(taps):
    items = taps.items() if isinstance(taps, dict) else taps
    try:
        pairs = [(tuple(d) if not is_int(d) else (d,), w) for d, w in items]
    except (TypeError, ValueError):
        raise StencilTypeError(
            f"taps={taps!r} is not a mapping from offsets to weights; expected e.g. "
            "{(-1,): 1.0, (1,): -1.0} or [((-1,), 1.0), ((1,), -1.0)].",
            param="taps", value=taps, expected="a dict {offset: weight}",
        ) from None
    for d, w in pairs:
        if isinstance(w, (bool, np.bool_)) or not isinstance(w, (numbers.Real, np.floating,
                                                                   np.integer)):
            raise StencilTypeError(
                f"taps: the weight of offset {d} is {w!r}; expected a real number.",
                param="taps", value=w, expected="a real number",
            )
    return pairs


def make_correlation_stencil(size, center, taps):
    """A correlation stencil from weighted taps (massiv's ``makeCorrelationStencil``).

    ``out[i] = sum(w * a[i + d])`` over ``taps = {d: w}``.

    Parameters
    ----------
    size, center : int or tuple of int
        The box and its centre.
    taps : dict or iterable of (offset, weight)
        Offsets relative to `center`, each inside the box.

    Examples
    --------
    >>> import numpy as np, stencils as st
    >>> s = st.make_correlation_stencil(4, 1, {-1: 1, 0: 2, 1: 3, 2: 4})
    >>> st.compute(st.map_stencil(st.Fill(0), s, np.array([1.0, 2, 3, 4, 5])))
    array([20., 30., 40., 26., 14.])
    """
    size = as_size(size)
    center = _as_center(center, size)
    pairs = _tap_pairs(taps)
    for d, _ in pairs:
        _check_offset(d, size, center, what="taps offset ")
    if not pairs:
        return Stencil(size, center, ex.const(0.0))
    return Stencil(size, center, ex.lin([ex.read(d) for d, _ in pairs], [w for _, w in pairs]))


def make_convolution_stencil(size, center, taps):
    """A convolution stencil from weighted taps (massiv's ``makeConvolutionStencil``).

    ``out[i] = sum(w * a[i - d])`` over ``taps = {d: w}``; the stored centre is
    ``size - 1 - center``.

    Examples
    --------
    >>> import numpy as np, stencils as st
    >>> s = st.make_convolution_stencil(4, 1, {-1: 1, 0: 2, 1: 3, 2: 4})
    >>> s.center
    (2,)
    >>> st.compute(st.map_stencil(st.Fill(0), s, np.array([1.0, 2, 3, 4, 5])))
    array([ 4., 10., 20., 30., 34.])
    """
    size = as_size(size)
    center = _as_center(center, size)
    pairs = _tap_pairs(taps)
    for d, _ in pairs:
        _check_offset(d, size, center, what="taps offset ")
    stored = tuple(s - 1 - c for s, c in zip(size, center))
    if not pairs:
        return Stencil(size, stored, ex.const(0.0))
    return Stencil(size, stored,
                   ex.lin([ex.read(tuple(-x for x in d)) for d, _ in pairs],
                          [w for _, w in pairs]))


def id_stencil(ndim=1):
    """The identity stencil of `ndim` axes: size 1, centre 0 (massiv's ``idStencil``).

    Examples
    --------
    >>> import numpy as np, stencils as st
    >>> a = np.arange(6.0).reshape(2, 3)
    >>> st.compute(st.apply_stencil(st.Padding(1, 0, st.Fill(0)), st.id_stencil(2), a))
    array([[0., 0., 0., 0.],
           [0., 0., 1., 2.],
           [0., 3., 4., 5.]])
    """
    if not is_int(ndim) or ndim < 1:
        raise StencilValueError(f"ndim={ndim!r} must be an int >= 1.", param="ndim",
                                value=ndim, expected="int >= 1")
    return Stencil((1,) * ndim, (0,) * ndim, ex.read((0,) * ndim))


def _box_reads(size):
    return [ex.read(j) for j in itertools.product(*map(range, size))]


def _reduce(size, combine):
    size = as_size(size)
    reads = _box_reads(size)
    acc = reads[0]
    for r in reads[1:]:
        acc = combine(acc, r)
    return Stencil(size, (0,) * len(size), acc)


def sum_stencil(size):
    """Sum of the box starting at each point (massiv's ``sumStencil``; centre 0).

    Under `map_stencil` each output reads the window that *starts* at its
    position; centre it with `apply_stencil` and an explicit `Padding`.

    Examples
    --------
    >>> import numpy as np, stencils as st
    >>> st.compute(st.map_stencil(st.Edge, st.sum_stencil(3), np.arange(1.0, 6.0)))
    array([ 6.,  9., 12., 14., 15.])
    >>> st.compute(st.apply_stencil(st.Padding(1, 1, st.Edge), st.sum_stencil(3),
    ...                             np.arange(1.0, 6.0)))
    array([ 4.,  6.,  9., 12., 14.])
    """
    size = as_size(size)
    return Stencil(size, (0,) * len(size), ex.lin(_box_reads(size), [1.0] * int(np.prod(size))))


def product_stencil(size):
    """Product of the box starting at each point (massiv's ``productStencil``; centre 0).

    Examples
    --------
    >>> import numpy as np, stencils as st
    >>> st.compute(st.apply_stencil(st.Padding(0, 2, st.Reflect), st.product_stencil((2, 2)),
    ...                             np.array([[1.0, 2], [3, 4]])))
    array([[ 24.,  64.,  24.],
           [144., 256., 144.],
           [ 24.,  64.,  24.]])
    """
    return _reduce(size, ex.mul)


def avg_stencil(size):
    """Mean of the box starting at each point (massiv's ``avgStencil``; centre 0).

    Computed as the sum divided by the box's element count, as massiv does.

    Examples
    --------
    >>> import numpy as np, stencils as st
    >>> st.compute(st.map_stencil(st.Reflect, st.avg_stencil(3), np.array([1.0, 2, 3, 4])))
    array([2.        , 3.        , 3.66666667, 3.66666667])
    """
    s = sum_stencil(size)
    return Stencil(s.size, s.center, ex.apply_op("div", s.expr, ex.const(float(np.prod(s.size)))))


def max_stencil(size):
    """Maximum of the box starting at each point (massiv's ``maxStencil``; centre 0).

    NaN propagates (NumPy's ``np.maximum``), where massiv's ``max`` from
    ``Ord`` would not.

    Examples
    --------
    >>> import numpy as np, stencils as st
    >>> st.compute(st.map_stencil(st.Edge, st.max_stencil(3), np.array([3.0, 1, 4, 1, 5, 9, 2, 6])))
    array([4., 4., 5., 9., 9., 9., 6., 6.])

    2x2 max pooling is this stencil computed with a stride:

    >>> a = np.arange(16.0).reshape(4, 4)
    >>> st.compute_with_stride(st.Stride(2), st.apply_stencil(st.no_padding, st.max_stencil((2, 2)), a))
    array([[ 5.,  7.],
           [13., 15.]])
    """
    return _reduce(size, lambda a, b: ex.apply_op("max", a, b))


def min_stencil(size):
    """Minimum of the box starting at each point (massiv's ``minStencil``; centre 0).

    Examples
    --------
    >>> import numpy as np, stencils as st
    >>> st.compute(st.map_stencil(st.Edge, st.min_stencil(2), np.array([3.0, 1, 4, 1, 5])))
    array([1., 1., 1., 1., 5.])
    """
    return _reduce(size, lambda a, b: ex.apply_op("min", a, b))


def _check_callable(f, param):
    if not callable(f):
        raise StencilTypeError(f"{param}={f!r} is not callable.", param=param, value=f,
                               expected="a callable")


def foldl_stencil(f, init, size):
    """Left fold over the box in row-major order (massiv's ``foldlStencil``; centre 0).

    ``f(f(f(init, x0), x1), ...)``; `f` is recorded symbolically like a
    `make_stencil` function.

    Examples
    --------
    >>> import numpy as np, stencils as st
    >>> s = st.foldl_stencil(lambda acc, x: 2 * acc + x, 0, 3)
    >>> st.compute(st.apply_stencil(st.no_padding, s, np.array([1.0, 0, 1, 1])))
    array([5., 3.])
    """
    _check_callable(f, "f")
    size = as_size(size)
    acc = ex.as_expr(init)
    for r in _box_reads(size):
        acc = ex.as_expr(f(acc, r))
    return Stencil(size, (0,) * len(size), acc)


def foldr_stencil(f, init, size):
    """Right fold over the box, last index first (massiv's ``foldrStencil``; centre 0).

    ``f(x0, f(x1, ... f(xn, init)))``.

    Examples
    --------
    >>> import numpy as np, stencils as st
    >>> s = st.foldr_stencil(lambda x, acc: 2 * acc + x, 0, 3)
    >>> st.compute(st.apply_stencil(st.no_padding, s, np.array([1.0, 0, 1, 1])))
    array([5., 6.])
    """
    _check_callable(f, "f")
    size = as_size(size)
    acc = ex.as_expr(init)
    for r in reversed(_box_reads(size)):
        acc = ex.as_expr(f(r, acc))
    return Stencil(size, (0,) * len(size), acc)


def check_stencil(s, param="stencil"):
    if not isinstance(s, Stencil):
        raise StencilTypeError(
            f"{param} must be a Stencil, got {type(s).__name__}; make one with make_stencil, "
            "make_correlation_stencil_from_kernel or a ready-made stencil.",
            param=param, value=s, expected="a Stencil",
        )


def rmap_stencil(f, stencil):
    """Apply `f` to the stencil's result (massiv's ``rmapStencil`` / ``fmap``).

    Fused into the same kernel: no extra pass over the array.

    Examples
    --------
    >>> import numpy as np, stencils as st
    >>> s = st.rmap_stencil(np.sqrt, st.sum_stencil(2))
    >>> st.compute(st.apply_stencil(st.no_padding, s, np.array([1.0, 3, 6])))
    array([2., 3.])
    """
    _check_callable(f, "f")
    check_stencil(stencil)
    return Stencil(stencil.size, stencil.center, ex.as_expr(f(stencil.expr)))


def lmap_stencil(f, stencil):
    """Apply `f` to every value the stencil reads (massiv's ``lmapStencil``).

    `f` applies after border resolution, so a `Fill` value is mapped too.

    Examples
    --------
    >>> import numpy as np, stencils as st
    >>> s = st.lmap_stencil(lambda x: x + 100, st.sum_stencil(3))
    >>> st.compute(st.map_stencil(st.Fill(0), s, np.array([1.0, 2, 3])))
    array([306., 305., 303.])
    """
    _check_callable(f, "f")
    check_stencil(stencil)
    mapped = {}
    for node in ex.topological_order(stencil.expr):
        if node.op == "read":
            new = ex.as_expr(f(node))
        elif node.op == "const":
            new = node
        elif node.op == "lin":
            new = ex.lin([mapped[id(t)] for t in node.args], node.weights)
        else:
            new = ex.apply_op(node.op, *[mapped[id(a)] for a in node.args])
        mapped[id(node)] = new
    return Stencil(stencil.size, stencil.center, mapped[id(stencil.expr)])


def dimap_stencil(f, g, stencil):
    """Map every read with `f` and the result with `g` (massiv's ``dimapStencil``).

    Examples
    --------
    >>> import numpy as np, stencils as st
    >>> s = st.dimap_stencil(np.abs, lambda y: -y, st.sum_stencil(2))
    >>> st.compute(st.apply_stencil(st.no_padding, s, np.array([1.0, -2, 3])))
    array([-3., -5.])
    """
    return rmap_stencil(g, lmap_stencil(f, stencil))

