"""massiv's resampling: downsample, upsample, zoom, zoom_with_grid."""

from __future__ import annotations

import numbers

import numpy as np

from ._padding import as_steps
from .errors import StencilTypeError, StencilValueError

__all__ = ["downsample", "upsample", "zoom", "zoom_with_grid"]


def _array(a):
    try:
        arr = np.asarray(a)
    except Exception as exc:  # ragged nesting and the like
        raise StencilTypeError(
            f"array could not be read as an array ({exc}).",
            param="array", value=type(a).__name__, expected="an array",
        ) from None
    if arr.ndim == 0:
        raise StencilValueError(
            f"array is 0-D ({arr!r}); resampling needs at least one axis.",
            param="array", value=arr.shape, expected="at least 1-D",
        )
    return arr


def _fill(fill, arr):
    if isinstance(fill, (bool, np.bool_)) and arr.dtype.kind != "b":
        fill = int(fill)
    if not isinstance(fill, (numbers.Number, np.number, np.bool_)):
        raise StencilTypeError(
            f"fill={fill!r} must be a number.", param="fill", value=fill, expected="a number")
    return fill


def _filled(shape, fill, arr):
    """A new array of `shape` full of `fill`, of `arr`'s dtype promoted with `fill`'s."""
    try:
        dtype = np.result_type(arr, fill)
    except TypeError as exc:  # no common dtype (strings, datetimes)
        raise StencilTypeError(
            f"fill={fill!r} cannot be stored with an array of dtype {arr.dtype} ({exc}).",
            param="fill", value=fill, expected=f"a number that fits dtype {arr.dtype}",
        ) from None
    _check_size(shape, dtype)
    try:
        return np.full(shape, fill, dtype=dtype)
    except OverflowError:  # NumPy 2 keeps a Python int's array dtype: 300 in uint8
        raise StencilValueError(
            f"fill={fill!r} does not fit the array's dtype {dtype}; give a fill in its range "
            f"or convert the array first (e.g. .astype(np.int64)).",
            param="fill", value=fill, expected=f"a value representable in {dtype}",
        ) from None


def _check_size(shape, dtype):
    """Refuse results whose size does not fit in memory addresses (a huge stride)."""
    count = 1
    for n in shape:
        count *= n
    if count * np.dtype(dtype).itemsize > np.iinfo(np.intp).max:
        raise StencilValueError(
            f"the result would have shape {tuple(shape)}, too large to allocate; "
            "use a smaller stride.",
            param="stride", value=tuple(shape), expected="a result that fits in memory",
        )


def downsample(stride, array):
    """Keep the elements at multiples of the stride (massiv's ``downsample``).

    ``out[j] = a[j * s]``; ``ceil(n / s)`` elements per axis.  Returns a view.

    Examples
    --------
    >>> import numpy as np, stencils as st
    >>> st.downsample(st.Stride(3), np.arange(7))
    array([0, 3, 6])
    """
    arr = _array(array)
    steps = as_steps(stride, arr.ndim)
    return arr[tuple(slice(None, None, s) for s in steps)]


def upsample(fill, stride, array):
    """Spread the elements out by the stride, filling the gaps (massiv's ``upsample``).

    Size ``n * s`` per axis; ``a[i]`` lands at ``i * s``, every other cell is `fill`.

    Examples
    --------
    >>> import numpy as np, stencils as st
    >>> st.upsample(9, st.Stride(3), np.array([1, 2]))
    array([1, 9, 9, 2, 9, 9])
    >>> st.upsample(0, st.Stride(1, 2), np.array([[1, 2], [3, 4]]))
    array([[1, 0, 2, 0],
           [3, 0, 4, 0]])
    """
    arr = _array(array)
    steps = as_steps(stride, arr.ndim)
    fill = _fill(fill, arr)
    out = _filled(tuple(n * s for n, s in zip(arr.shape, steps)), fill, arr)
    out[tuple(slice(None, None, s) for s in steps)] = arr
    return out


def zoom(stride, array):
    """Repeat every element `s` times per axis (massiv's ``zoom``; nearest neighbour).

    Examples
    --------
    >>> import numpy as np, stencils as st
    >>> st.zoom(st.Stride(3), np.array([1, 2]))
    array([1, 1, 1, 2, 2, 2])
    """
    arr = _array(array)
    steps = as_steps(stride, arr.ndim)
    _check_size([n * s for n, s in zip(arr.shape, steps)], arr.dtype)
    for axis, s in enumerate(steps):
        arr = np.repeat(arr, s, axis=axis)
    return np.array(arr, copy=True) if arr is array else arr


def zoom_with_grid(fill, stride, array):
    """Zoom by the stride with grid lines of `fill` between blocks (massiv's ``zoomWithGrid``).

    Size ``n * (s + 1) + 1`` per axis; grid lines at multiples of ``s + 1``.

    Examples
    --------
    >>> import numpy as np, stencils as st
    >>> st.zoom_with_grid(0, st.Stride(2), np.array([1, 2]))
    array([0, 1, 1, 0, 2, 2, 0])
    """
    arr = _array(array)
    steps = as_steps(stride, arr.ndim)
    fill = _fill(fill, arr)
    out = _filled(tuple(n * (s + 1) + 1 for n, s in zip(arr.shape, steps)), fill, arr)
    zoomed = zoom(stride, arr)
    # Block i of an axis starts at i*(s+1) + 1: the cells that are not grid lines.
    index = tuple(
        np.array([i * (s + 1) + 1 + r for i in range(n) for r in range(s)], dtype=np.intp)
        for n, s in zip(arr.shape, steps)
    )
    out[np.ix_(*index)] = zoomed
    return out
