"""Windows of the order and user-function filters: padding, footprint offsets, working dtypes.

Shared by `_order` and `_generic`.  A footprint filter runs on the input
padded once by the border rule (scipy's extension of each axis, corners by
the rule of each axis in turn), so every window lies inside the padded array
and the kernels read it without bounds checks.
"""

from __future__ import annotations

import functools
import math

import numba
import numpy as np

from .. import _kernels_order as ko
from .._kernels import FILL, resolve_index
from ._lazy import in_dask_task

# Below this many points a filter runs its kernels on the calling thread only:
# waking the other threads costs more than they save (and inside a dask task
# the other threads are dask's).
PARALLEL_MIN_SIZE = 1 << 15


def window_bounds(sizes, origins):
    """(cells before, cells after) each output point on every axis: scipy's ``size // 2 + origin``."""
    lo = [s // 2 + o for s, o in zip(sizes, origins)]
    hi = [s - 1 - l for s, l in zip(sizes, lo)]
    return lo, hi


def pad(a, lo, hi, codes, cval):
    """`a` extended by lo[k] cells before and hi[k] after on axis k, by border code codes[k]."""
    if not any(lo) and not any(hi):
        return np.ascontiguousarray(a)
    shape = tuple(n + l + h for n, l, h in zip(a.shape, lo, hi))
    out = np.empty(shape, a.dtype)
    out[tuple(slice(l, l + n) for l, n in zip(lo, a.shape))] = a
    for axis, (n, l, h, code) in enumerate(zip(a.shape, lo, hi, codes)):
        for e in list(range(l)) + list(range(l + n, l + n + h)):
            r = resolve_index(e - l, n, code)
            dst = [slice(None)] * a.ndim
            dst[axis] = e
            if r < 0:
                out[tuple(dst)] = cval
            else:
                src = [slice(None)] * a.ndim
                src[axis] = l + r
                out[tuple(dst)] = out[tuple(src)]
    return out


def box_footprint(sizes, axes, ndim):
    """The box of a rank or generic filter given `size`, as scipy builds it.

    scipy makes ``ones(sizes)`` in the order the sizes are given and inserts
    the unfiltered axes, without reordering by `axes` (unlike its min/max
    filters); the same here so that unsorted `axes` give scipy's result.
    """
    fp = np.ones([sizes[ax] for ax in axes], bool)
    return np.expand_dims(fp, tuple(ax for ax in range(ndim) if ax not in axes))


def flat_offsets(footprint, padded_shape):
    """Flat offsets in the padded array of the footprint's True cells, in C order (scipy's order)."""
    strides = np.ones(len(padded_shape), np.int64)
    for k in range(len(padded_shape) - 2, -1, -1):
        strides[k] = strides[k + 1] * padded_shape[k + 1]
    cells = np.argwhere(footprint).astype(np.int64)
    return np.ascontiguousarray(cells @ strides)


def row_bases(out_shape, padded_shape):
    """Flat index in the padded array of the window corner of each output row's first point."""
    lead = out_shape[:-1]
    strides = np.ones(len(padded_shape), np.int64)
    for k in range(len(padded_shape) - 2, -1, -1):
        strides[k] = strides[k + 1] * padded_shape[k + 1]
    if not lead:
        return np.zeros(1, np.int64)
    grids = np.indices(lead, dtype=np.int64).reshape(len(lead), -1)
    return np.ascontiguousarray(strides[:-1] @ grids)


def as_rows(shape):
    """The (rows, last axis) shape an N-D array is viewed as by the gather kernels."""
    if len(shape) == 0:
        return (1, 1)
    return (int(np.prod(shape[:-1], dtype=np.int64)), shape[-1])


def c_cast(value, dtype):
    """`value` converted to `dtype` as C's ``(type)value`` does on x86-64 (truncation, wrap)."""
    dtype = np.dtype(dtype)
    if dtype.kind in "fc":
        return dtype.type(value)
    if dtype.kind == "b":
        return np.bool_(value != 0)
    with np.errstate(invalid="ignore", over="ignore"):
        return np.array(value, np.float64).astype(np.int64).astype(dtype)[()]


def fits(value, dtype):
    """Whether float `value` truncated is a value of the integer `dtype`."""
    if value != value or value in (np.inf, -np.inf):
        return False
    info = np.iinfo(dtype) if dtype.kind in "iu" else None
    if info is None:
        return True
    t = int(value)
    return info.min <= t <= info.max


def kernel_dtype(dtype):
    """The dtype the kernels run for `dtype` (native byte order, bool as uint8, float16 as float32)."""
    if dtype.kind == "b":
        return np.dtype(np.uint8)
    if dtype.itemsize == 2 and dtype.kind == "f":
        return np.dtype(np.float32)
    return dtype.newbyteorder("=")


def contains_nan(a, *, negative_zeros=False):
    """Whether float array `a` holds a NaN, or -0.0 too if `negative_zeros` (values whose
    place among equal ones only scipy's own steps give: `_kernels_order._count_nan`)."""
    if a.dtype.kind != "f" or a.size == 0:
        return False
    return bool(ko.has_nan(np.ascontiguousarray(a).reshape(-1), negative_zeros))


def is_nan_or_negative_zero(value):
    """Whether a float cval is NaN or -0.0 (`contains_nan`'s cells)."""
    return value != value or (value == 0 and math.copysign(1.0, value) < 0)


def uses_cval(codes):
    return any(c == FILL for c in codes)


def serial_when_small(func):
    """Run `func(input, ...)` with one Numba thread for small inputs and inside dask tasks."""
    @functools.wraps(func)
    def wrapper(input, *args, **kwargs):
        if np.size(input) >= PARALLEL_MIN_SIZE and not in_dask_task():
            return func(input, *args, **kwargs)
        threads = numba.get_num_threads()
        numba.set_num_threads(1)
        try:
            return func(input, *args, **kwargs)
        finally:
            numba.set_num_threads(threads)
    return wrapper
