"""massiv's delayed windowed arrays (``Array DW``): a stencil applied, not yet computed.

`map_stencil` and `apply_stencil` check their arguments and return a
`WindowedArray`; `compute` and `compute_with_stride` check theirs, build a
`stencils._plan.Plan` (`WindowedArray.plan`) and hand it to the backend for
the source: stencils._memory (NumPy) or stencils._dask (Dask).
"""

from __future__ import annotations

import functools

import numpy as np
from numpy.lib.mixins import NDArrayOperatorsMixin

from . import _dask, _memory
from ._border import FILL, as_border
from ._padding import Padding, Stride, as_steps, same_padding
from ._stencil import check_stencil
from ._plan import Plan
from ._validate import as_source_array, check_out, clamp_steps
from .errors import StencilTypeError, StencilValueError

__all__ = ["WindowedArray", "map_stencil", "apply_stencil", "compute", "compute_with_stride"]


class WindowedArray(NDArrayOperatorsMixin):
    """A stencil applied to an array, computed when asked (massiv's ``Array DW``).

    Made by `map_stencil` and `apply_stencil`.  Compute it with `compute`,
    `compute_with_stride` (only the kept points are evaluated),
    ``np.asarray(w)``, or by giving it to a NumPy function or operator (which
    computes it first).  Like massiv's DW arrays it cannot be indexed.

    Attributes
    ----------
    shape, ndim, size, dtype
        Of the result.
    stencil : Stencil
    padding : Padding
        With ``from_origin`` and ``from_bottom`` as full per-axis tuples.
    window : tuple of (start, stop)
        Per axis, the output indices whose reads all fall inside the source
        (massiv's interior window, computed without border checks).

    Examples
    --------
    >>> import numpy as np, stencils as st
    >>> w = st.map_stencil(st.Edge, st.avg_stencil(2), np.array([1.0, 2, 4, 8]))
    >>> w
    WindowedArray(shape=(4,), dtype=float64, stencil=Stencil(size=(2,), center=(0,)), padding=Padding(from_origin=(0,), from_bottom=(1,), border=Edge))
    >>> w.window
    ((0, 3),)
    >>> np.asarray(w)
    array([1.5, 3. , 6. , 8. ])
    >>> w + 1
    array([2.5, 4. , 7. , 9. ])
    """

    __slots__ = ("_source", "_stencil", "_padding", "_lo", "_box_lo", "_shape")

    def __init__(self, source, stencil, padding):
        # Private: made by map_stencil / apply_stencil after validation.
        self._source = source
        self._stencil = stencil
        self._padding, self._lo, self._box_lo, self._shape = _windowed_geometry(
            padding, source.shape, stencil.size)

    shape = property(lambda self: self._shape)
    ndim = property(lambda self: len(self._shape))
    size = property(lambda self: int(np.prod(self._shape)))
    dtype = property(lambda self: self._source.dtype)
    stencil = property(lambda self: self._stencil)
    padding = property(lambda self: self._padding)

    @property
    def window(self):
        return tuple(
            (min(lo, m), min(max(lo, lo + n - s + 1), m))
            for lo, n, s, m in zip(self._lo, self._source.shape, self._stencil.size, self._shape)
        )

    def __repr__(self):
        return (f"WindowedArray(shape={self._shape}, dtype={self.dtype}, "
                f"stencil={self._stencil!r}, padding={self._padding!r})")

    def __len__(self):
        return self._shape[0]

    def __array__(self, dtype=None, copy=None):
        result = np.asarray(compute(self))  # a dask source computes here
        return result if dtype is None else result.astype(dtype, copy=False)

    def __array_ufunc__(self, ufunc, method, *inputs, **kwargs):
        inputs = tuple(compute(x) if isinstance(x, WindowedArray) else x for x in inputs)
        if "out" in kwargs:
            kwargs["out"] = tuple(compute(x) if isinstance(x, WindowedArray) else x
                                  for x in kwargs["out"])
        return getattr(ufunc, method)(*inputs, **kwargs)

    def __getitem__(self, index):
        raise StencilTypeError(
            "a WindowedArray cannot be indexed (massiv's DW arrays are not a Source); "
            "compute it first, e.g. st.compute(w)[index], or keep every s-th point with "
            "st.compute_with_stride.",
            param="index", value=index, expected="compute() first",
        )

    def compute(self, out=None):
        """The same as ``stencils.compute(self, out=out)``."""
        return compute(self, out=out)

    def plan(self, stride=1, out=None):
        """The checked plan of computing this array at every `stride`-th point into `out`.

        What `compute` and `compute_with_stride` hand to a backend
        (``stencils._memory.compute(plan)`` for a NumPy source,
        ``stencils._dask.compute(plan)`` for a Dask one).

        Parameters
        ----------
        stride : Stride, int or tuple of int, optional
        out : ndarray, optional
            Checked against the result's shape and dtype.

        Returns
        -------
        stencils._plan.Plan

        Examples
        --------
        >>> import numpy as np, stencils as st
        >>> k = st.make_correlation_stencil_from_kernel([1, 2, 1])
        >>> p = st.map_stencil(st.Edge, k, np.arange(5.0)).plan(2)
        >>> p.lo, p.step, p.shape
        ((-1,), (2,), (3,))
        """
        step, shape = _strided_geometry(stride, self._shape, self._box_lo, self._stencil.size,
                                        self._source.shape)
        border = self._padding.border
        if 0 in self._source.shape and 0 not in shape and border.code != FILL:
            raise StencilValueError(
                f"the array has an empty axis (shape {self._source.shape}), so the border "
                f"{border!r} has no element to repeat; only Fill can pad it "
                "(massiv raises an index-zero exception here).",
                param="border", value=border, expected="Fill(value)",
            )
        if out is not None:
            if _dask.is_dask_array(self._source):
                raise StencilValueError(
                    "out= cannot be used when the source is a dask array: the result is a lazy "
                    "dask array. Write it into an array with dask.array.store(result, out), or "
                    "call result.compute().",
                    param="out", value=type(out).__name__, expected="None (a dask source)",
                )
            check_out(out, shape, self.dtype)
        return Plan(self._source, self._stencil, self._box_lo, step, border, self.dtype, shape,
                    out)

    def _run(self, step, out, parallel=None):
        # stencils._config.warmup compiles the serial and the parallel kernels through this.
        return _memory.compute(self.plan(step, out), parallel=parallel)


def _backend(plan):
    return _dask if _dask.is_dask_array(plan.source) else _memory


# The kernels do index arithmetic in int64 (j * step + lo + k, and 2 * n for
# scipy's mirror periods): every index they form must stay well inside it.
_INDEX_LIMIT = 2**62


@functools.lru_cache(maxsize=256)
def _windowed_geometry(padding, source_shape, size):
    """(full Padding, from_origin, box start, shape) of a stencil of `size` on `source_shape`.

    The Padding has its widths spelled out per axis.  Remembered: a training
    loop applies the same padding to the same shapes every step, and a
    Padding compares exactly (a Fill of -0.0 is not one of 0.0), so equal
    keys give identical results.
    """
    lo, hi = padding.widths(len(source_shape))
    shape = tuple(max(0, a + b + n - max(0, s - 1))
                  for a, b, n, s in zip(lo, hi, source_shape, size))
    # Output j has its centre at j*s + c - from_origin, so its box starts
    # at j*s - from_origin: the kernels take that start.
    return Padding(lo, hi, padding.border), lo, tuple(-p for p in lo), shape


def _strided_geometry(stride, full_shape, box_lo, size, source_shape):
    """(steps, shape) of computing at every `stride`-th point; see `_strided_shape`.

    A `Stride` or a plain int is remembered per shape (a training loop
    passes the same ones every step); anything else (np.int64, tuples, bad
    values, which must raise each time) is checked on every call.
    """
    if type(stride) is int or isinstance(stride, Stride):
        return _strided_geometry_cached(stride, full_shape, box_lo, size, source_shape)
    return _checked_strided_geometry(stride, full_shape, box_lo, size, source_shape)


def _checked_strided_geometry(stride, full_shape, box_lo, size, source_shape):
    step = clamp_steps(as_steps(stride, len(full_shape)), full_shape)
    return step, _strided_shape(full_shape, step, box_lo, size, source_shape)


_strided_geometry_cached = functools.lru_cache(maxsize=256)(_checked_strided_geometry)


def _strided_shape(full_shape, step, box_lo, size, source_shape):
    """The shape of the result kept at every `step`-th point; refuses indices the kernels
    cannot form."""
    shape = []
    for axis, (f, s, lo, k, n) in enumerate(zip(full_shape, step, box_lo, size, source_shape)):
        m = -(-f // s)
        shape.append(m)
        last = (max(m, 1) - 1) * s + lo + k
        if max(abs(lo), abs(last), s, 2 * n) >= _INDEX_LIMIT:
            raise StencilValueError(
                f"on axis {axis} the padding ({-lo} before) and stride ({s}) reach source index "
                f"{last}, beyond what the kernels can index (|index| < 2**62); use a smaller "
                "padding or stride.",
                param="padding", value=(-lo, s), expected="indices below 2**62",
            )
    return tuple(shape)


def _check_ranks(stencil, array):
    if stencil.ndim != array.ndim:
        hint = ""
        if stencil.ndim == 1 and array.ndim > 1:
            hint = (f" For a stencil along the last axis give a size of "
                    f"{(1,) * (array.ndim - 1) + stencil.size}.")
        raise StencilValueError(
            f"the stencil has {stencil.ndim} ax{'is' if stencil.ndim == 1 else 'es'} (size "
            f"{stencil.size}) but the array has {array.ndim} (shape {array.shape}).{hint}",
            param="stencil", value=stencil.size, expected=f"a {array.ndim}-D stencil",
        )


def apply_stencil(padding, stencil, array):
    """Apply a stencil with explicit padding (massiv's ``applyStencil``).

    Per axis, with source length ``n``, stencil size ``s``, stored centre ``c``
    and padding ``(po, pb)``: the result has ``max(0, po + pb + n - (s - 1))``
    elements, and output ``o`` evaluates the stencil with its centre at source
    position ``o + c - po``.  Reads outside the source go through
    ``padding.border``.

    Parameters
    ----------
    padding : Padding
        ``no_padding`` ('valid'), ``same_padding(stencil, border)``, or any other.
    stencil : Stencil
    array : array_like
        At least 1-D, of the stencil's rank.  float32 stays float32, float16
        becomes float32, every other real dtype float64.

    Returns
    -------
    WindowedArray
        Lazy; see `compute` and `compute_with_stride`.

    Examples
    --------
    >>> import numpy as np, stencils as st
    >>> k = st.make_correlation_stencil_from_kernel([1, 2, 3, 4])
    >>> st.compute(st.apply_stencil(st.no_padding, k, np.arange(1.0, 6.0)))
    array([30., 40.])

    "Full" convolution (length n + m - 1) is padding m - 1 on both sides:

    >>> conv = st.make_convolution_stencil_from_kernel([1, 2, 3])
    >>> st.compute(st.apply_stencil(st.Padding(2, 2, st.Fill(0)), conv, np.array([1.0, 1, 1])))
    array([1., 3., 6., 5., 3.])
    """
    if not isinstance(padding, Padding):
        raise StencilTypeError(
            f"padding must be a Padding, got {padding!r}; e.g. st.no_padding, "
            "st.same_padding(stencil, border) or st.Padding(1, 1, st.Fill(0)). "
            "(Arguments are in massiv's order: padding, stencil, array.)",
            param="padding", value=padding, expected="a Padding",
        )
    check_stencil(stencil)
    if _dask.is_dask_array(array):
        source = _dask.as_dask_source(array)
    else:
        source = as_source_array(array)
    _check_ranks(stencil, source)
    padding.widths(source.ndim)  # raises if the widths do not fit the rank
    return WindowedArray(source, stencil, padding)


def map_stencil(border, stencil, array):
    """Apply a stencil keeping the array's shape (massiv's ``mapStencil``).

    ``apply_stencil(same_padding(stencil, border), stencil, array)``: output
    ``i`` has the stencil's centre at ``i``.

    Parameters
    ----------
    border : Border or str
        ``Fill(v)``, `Wrap`, `Edge`, `Reflect`, `Continue` (massiv's rules), or
        a scipy mode name (scipy's rules).
    stencil : Stencil
    array : array_like

    Returns
    -------
    WindowedArray

    Examples
    --------
    The delay kernel of the Day 5 post:

    >>> import numpy as np, stencils as st
    >>> xs = np.array([1.0, 2, 5, 6, 2, -1, 3, -2])
    >>> delay = st.make_correlation_stencil_from_kernel([1, 0, 0])
    >>> st.compute(st.map_stencil(st.Fill(0), delay, xs))
    array([ 0.,  1.,  2.,  5.,  6.,  2., -1.,  3.])
    """
    border = as_border(border)
    check_stencil(stencil)
    return apply_stencil(same_padding(stencil, border), stencil, array)


def _check_windowed(w, param="array"):
    if not isinstance(w, WindowedArray):
        raise StencilTypeError(
            f"{param} must be a WindowedArray (the result of map_stencil or apply_stencil), "
            f"got {type(w).__name__}.",
            param=param, value=type(w).__name__, expected="a WindowedArray",
        )


def compute(array, out=None):
    """Compute a windowed array into a NumPy array (massiv's ``compute``).

    Parameters
    ----------
    array : WindowedArray
    out : ndarray, optional
        Where to write the result: its shape must be ``array.shape`` and its
        dtype ``array.dtype``.  It may be the source itself (a temporary is
        used then).

    Returns
    -------
    ndarray
        `out` when given.

    Examples
    --------
    >>> import numpy as np, stencils as st
    >>> a = np.arange(5.0)
    >>> out = np.empty(5)
    >>> st.compute(st.map_stencil(st.Wrap, st.sum_stencil(2), a), out=out) is out
    True
    >>> out
    array([1., 3., 5., 7., 4.])
    """
    _check_windowed(array)
    plan = array.plan(1, out)
    return _backend(plan).compute(plan)


def compute_with_stride(stride, array, out=None):
    """Compute only the points ``0, s, 2s, ...`` of each axis (massiv's ``computeWithStride``).

    Only the kept points are evaluated: stride 2 in 2-D costs a quarter of the
    full computation.

    Parameters
    ----------
    stride : Stride, int or tuple of int
        ``Stride(2)``: every axis; ``Stride(2, 3)``: one step per axis.  A
        step past the end of its axis keeps only point 0.
    array : WindowedArray
    out : ndarray, optional
        Of shape ``ceil(array.shape / stride)`` and dtype ``array.dtype``.

    Returns
    -------
    ndarray

    Examples
    --------
    >>> import numpy as np, stencils as st
    >>> a = np.arange(1.0, 26.0).reshape(5, 5)
    >>> w = st.map_stencil(st.Fill(0), st.id_stencil(2), a)
    >>> st.compute_with_stride(st.Stride(2, 3), w)
    array([[ 1.,  4.],
           [11., 14.],
           [21., 24.]])
    """
    _check_windowed(array)
    plan = array.plan(stride, out)
    return _backend(plan).compute(plan)
