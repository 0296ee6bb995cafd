"""Dask arrays through `stencils.ndimage`'s filters: lazy results, exact halos.

`dask_aware(reach)` wraps a filter so that a dask array input gives a lazy
dask array: ``dask.array.map_overlap`` with, per axis, a halo as wide as the
filter reaches (``reach(ndim, **arguments)``).  Axes whose mode wraps take
their halo from the other end of the array ('periodic'); on the others the
chunks at the array's edges see its true edges and apply the mode there
themselves, so every chunk's result equals the in-memory one.  Inside a
chunk's task `in_dask_task()` is true and the kernels run serially (a
parallel Numba kernel must not run on Dask's worker threads).

`generic_dask` serves generic_laplace / generic_gradient_magnitude: the
user's derivative function is called with the dask array and its (lazy)
results are summed.
"""

from __future__ import annotations

import functools
import inspect
import threading

import numpy as np

from ..errors import StencilTypeError
from ._args import normalize_axes, per_axis

__all__ = ["dask_aware", "generic_dask", "in_dask_task"]

_TASK = threading.local()


def in_dask_task():
    """Whether this thread is computing a chunk of a dask result."""
    return getattr(_TASK, "on", False)


def _check_dask_output(output):
    if output is not None and not isinstance(output, (type, np.dtype, str)):
        raise StencilTypeError(
            "output must be None or a dtype for a dask array input (the result is a lazy "
            f"dask array), got {type(output).__name__}.",
            param="output", value=type(output).__name__, expected="None or a dtype",
        )


def _map_overlap(func, input, depth, modes, output, kwargs):
    """``func(block, **kwargs)`` over a dask array's chunks with halos of `depth`."""
    import dask.array as da

    _check_dask_output(output)
    sample = np.zeros((1,) * input.ndim, dtype=input.dtype)
    dtype = func(sample, output=output, **{**kwargs, "mode": "nearest"}).dtype
    boundary = {ax: ("periodic" if m in ("wrap", "grid-wrap") else "none")
                for ax, m in enumerate(modes)}

    def block(b):
        _TASK.on = True
        try:
            return func(b, output=output, **kwargs)
        finally:
            _TASK.on = False

    depth = {ax: int(d) for ax, d in enumerate(depth)}
    return da.map_overlap(block, input, depth=depth, boundary=boundary, dtype=dtype,
                          meta=np.empty((0,) * input.ndim, dtype=dtype))


def _modes_list(mode, ndim):
    if isinstance(mode, str):
        return [mode] * ndim
    modes = list(mode) if np.iterable(mode) else [mode]
    return modes if len(modes) == ndim else [modes[0]] * ndim


def dask_aware(reach):
    """Route dask input through `_map_overlap`; `reach(ndim, **arguments)` gives the halo."""
    def wrap(func):
        signature = inspect.signature(func)

        @functools.wraps(func)
        def wrapper(input, *args, **kwargs):
            import sys

            da = sys.modules.get("dask.array")
            if da is None or not isinstance(input, da.Array):
                return func(input, *args, **kwargs)
            bound = signature.bind(input, *args, **kwargs)
            bound.apply_defaults()
            params = dict(bound.arguments)
            extra = params.pop("kwargs", {})
            params.pop("input")
            output = params.pop("output", None)
            depth = reach(input.ndim, **params, **extra)
            modes = _modes_list(params.get("mode", "reflect"), input.ndim)
            return _map_overlap(func, input, depth, modes, output, {**params, **extra})
        return wrapper
    return wrap


def generic_dask(input, derivative, output, mode, cval, extra_arguments, extra_keywords,
                 axes, square):
    """generic_laplace / generic_gradient_magnitude of a dask array: the derivatives'
    own (lazy) results summed."""
    import dask.array as da

    axes = normalize_axes(axes, input.ndim)
    _check_dask_output(output)
    dtype = np.dtype(output) if output is not None else input.dtype
    if not axes:
        return input.astype(dtype)
    modes = per_axis(mode, len(axes), param="mode")
    total = None
    for ax, m in zip(axes, modes):
        d = da.asarray(derivative(input, ax, dtype, m, cval, *extra_arguments,
                                  **extra_keywords)).astype(dtype)
        d = d * d if square else d
        total = d if total is None else total + d
    return da.sqrt(total).astype(dtype) if square else total
