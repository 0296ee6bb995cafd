"""Dask arrays through `stencils.ndimage`'s filters: lazy results, exact halos.

`dask_aware(reach)` wraps a filter so that a dask array input gives a lazy
dask array, one task per chunk filtering the chunk's *window*: the chunk with,
per axis, a halo as wide as the filter reaches (``reach(ndim, **arguments)``),
as ``dask.array.map_overlap`` would give it.  Axes whose mode wraps take their
halo from the other end of the array ('periodic'); on the others the chunks
at the array's edges see its true edges and apply the mode there themselves,
so every chunk's result equals the in-memory one.  Inside a chunk's task
`in_dask_task()` is true and the kernels run serially (a parallel Numba
kernel must not run on Dask's worker threads).

`generic_dask` serves generic_laplace / generic_gradient_magnitude: the
user's derivative function is called with the dask array and its (lazy)
results are summed.
"""

from __future__ import annotations

import functools
import inspect
import itertools
import operator
import threading

import numpy as np

from .._dask import _window_buffer
from ..errors import StencilTypeError, StencilValueError
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


def _merged_chunks(chunks, size):
    """`chunks` with those shorter than `size` merged into their neighbours, as
    ``dask.array.map_overlap`` does: a window then spans at most three chunks."""
    if min(chunks) >= size:
        return tuple(chunks)
    merged, run = [], 0
    for c in chunks:
        run += c
        if run >= size:
            merged.append(run)
            run = 0
    if run:
        merged = merged[:-1] + [merged[-1] + run] if merged else [run]
    return tuple(merged)


def _axis_pieces(chunks, depth, periodic):
    """Per chunk of one axis: its window's pieces ``(chunk, local slice, dest slice)``,
    where the chunk starts in the window, and the window's length.

    The window is the chunk with `depth` cells more on each side, cut at the
    array's ends (the filter meets the true edge there) or, when `periodic`,
    taken from the other end; a periodic window as long as the axis is the
    whole axis, which the filter's own wrap then answers.
    """
    bounds = np.cumsum((0,) + tuple(chunks))
    n = int(bounds[-1])
    plans = []
    for c in range(len(chunks)):
        start, stop = int(bounds[c]) - depth, int(bounds[c + 1]) + depth
        if periodic and stop - start >= n:
            start, stop = 0, n
        elif not periodic:
            start, stop = max(start, 0), min(stop, n)
        pieces, at = [], start
        while at < stop:
            cell = at % n
            src = int(np.searchsorted(bounds, cell, side="right")) - 1
            take = min(stop - at, int(bounds[src + 1]) - cell)
            local = cell - int(bounds[src])
            pieces.append((src, slice(local, local + take), slice(at - start, at - start + take)))
            at += take
        plans.append((pieces, int(bounds[c]) - start, stop - start))
    return plans


class _BlockSpec:
    """What one chunk's task needs besides its pieces, opaque to dask (a tuple
    starting with a function would be read as a task).  `func` is the public
    filter, so that the graph pickles by reference for dask.distributed."""

    __slots__ = ("func", "kwargs", "dtype", "dests", "window_shape", "inner")

    def __init__(self, func, kwargs, dtype, dests, window_shape, inner):
        self.func, self.kwargs, self.dtype = func, kwargs, dtype
        self.dests, self.window_shape, self.inner = dests, window_shape, inner

    def __reduce__(self):
        return (_BlockSpec, tuple(getattr(self, name) for name in self.__slots__))


def _filter_block(spec, *pieces):
    """One output chunk: its window assembled from `pieces`, filtered, the chunk cut out.

    The window goes into the thread's reused buffer (`stencils._dask`): a
    fresh multi-MB array per task costs page faults, a large share of a
    chunk's time beside the serial kernels.  A plain module-level function,
    so that it pickles by reference for dask.distributed.
    """
    window_shape = spec.window_shape
    if len(pieces) == 1 and pieces[0].shape == window_shape:
        window = pieces[0]
    else:
        window = _window_buffer(window_shape, pieces[0].dtype)
        for dest, piece in zip(spec.dests, pieces):
            window[dest] = piece
    out = np.empty(window_shape, dtype=spec.dtype)
    _TASK.on = True
    try:
        spec.func(window, output=out, **spec.kwargs)
    finally:
        _TASK.on = False
    return out[spec.inner]


def _map_overlap(func, input, depth, modes, output, kwargs):
    """``func(window, **kwargs)`` over a dask array's chunks, each chunk's window with
    `depth` more cells per axis (wrapping round on axes whose mode wraps).

    ``dask.array.map_overlap(boundary='none' / 'periodic')`` as its own graph:
    each task copies its window's pieces into a reused buffer instead of a
    fresh concatenation (chunks shorter than the halo are merged first, as
    map_overlap does).
    """
    import dask.array as da
    from dask.base import tokenize
    from dask.highlevelgraph import HighLevelGraph

    _check_dask_output(output)
    sample = np.zeros((1,) * input.ndim, dtype=input.dtype)
    dtype = func(sample, output=output, **{**kwargs, "mode": "nearest"}).dtype
    meta = np.empty((0,) * input.ndim, dtype=dtype)
    if any(np.isnan(n) for n in input.shape):
        raise StencilValueError(
            f"input is a dask array of unknown chunk sizes (shape {input.shape}); a filter "
            "needs each chunk's neighbours. Call input.compute_chunk_sizes() first.",
            param="input", value=input.shape, expected="a dask array with known chunk sizes",
        )
    if input.size == 0:
        return da.empty(input.shape, dtype=dtype, chunks=input.chunks)
    chunks = tuple(_merged_chunks(c, min(int(d), n))
                   for c, d, n in zip(input.chunks, depth, input.shape))
    if chunks != input.chunks:
        input = input.rechunk(chunks)
    axes = [_axis_pieces(axis_chunks, int(d), m in ("wrap", "grid-wrap"))
            for axis_chunks, d, m in zip(input.chunks, depth, modes)]
    name = func.__name__ + "-" + tokenize(
        func.__module__, func.__name__, input.name, tuple(depth), tuple(modes), output, kwargs)
    piece_name = "window-piece-" + name
    dsk = {}
    for index in itertools.product(*(range(len(axis_chunks)) for axis_chunks in chunks)):
        plans = [plan[i] for plan, i in zip(axes, index)]
        deps, dests = [], []
        for combo in itertools.product(*(plan[0] for plan in plans)):
            key = (input.name,) + tuple(src for src, _, _ in combo)
            local = tuple(sl for _, sl, _ in combo)
            whole = all(sl.start == 0 and sl.stop == input.chunks[ax][src]
                        for ax, (src, sl, _) in enumerate(combo))
            if not whole:
                piece = (piece_name,) + index + (len(deps),)
                dsk[piece] = (operator.getitem, key, local)
                key = piece
            deps.append(key)
            dests.append(tuple(d for _, _, d in combo))
        window_shape = tuple(plan[2] for plan in plans)
        inner = tuple(slice(plan[1], plan[1] + input.chunks[ax][i])
                      for ax, (plan, i) in enumerate(zip(plans, index)))
        spec = _BlockSpec(func, kwargs, dtype, dests, window_shape, inner)
        dsk[(name,) + index] = (_filter_block, spec) + tuple(deps)
    graph = HighLevelGraph.from_collections(name, dsk, dependencies=[input])
    return da.Array(graph, name, input.chunks, meta=meta)


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
            return _map_overlap(wrapper, input, depth, modes, output, {**params, **extra})
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
