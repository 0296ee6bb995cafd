"""`vectorized_filter`: a vectorised function over every window (scipy 1.16's API).

scipy pads the input by the mode, takes a sliding-window view and calls the
function on batches of windows with ``axis`` naming the window's axes; any
function with NumPy's reduction interface works (``np.nanmedian``,
``np.quantile``, your own), multi-valued ones included.  The same here, the
padding by the border table every filter uses (`_window.pad`), with one
addition: the reductions the stencil core has a filter for run on it when
the result is bit for bit what the function gives on the windows.

=====================================  ======================================
function                               runs as
=====================================  ======================================
``np.max``, ``np.amax``, ``np.nanmax``  `maximum_filter`
``np.min``, ``np.amin``, ``np.nanmin``  `minimum_filter`
``np.median``, ``np.nanmedian``         `median_filter` (odd window counts)
=====================================  ======================================

Only for real integer or float32 / float64 input without NaN or -0.0 (a
window of ``0.0`` and ``-0.0`` has two maxima NumPy may pick either of), with a
`cval` the dtype holds exactly, windows no longer than the input
and origins inside the window; anything else takes the windows' path.

A dask array gives a lazy dask array (`dask.array.map_overlap`, halos as wide
as the window reaches) when the function gives one value per window.
"""

from __future__ import annotations

import math
import numbers

import numpy as np

from ..errors import StencilTypeError, StencilValueError
from . import _args, _order
from . import _window as win
from ._args import is_dask

__all__ = ["vectorized_filter"]

# scipy's mode names for vectorized_filter: the filters' modes and 'valid' (no padding).
_MODES = _args.FILTER_MODES + ("valid",)
# scipy pads by np.pad's names, where its 'grid-mirror' becomes 'mirror' (np.pad's 'reflect'),
# not 'reflect' as in every other filter: the same here, for scipy's values.
_PAD_AS = {"grid-mirror": "mirror"}

# The functions that have a filter of their own, by the order statistic they take (the
# nan forms give the same bits on input without NaN, the only input that runs on a filter).
_REDUCTIONS = {np.max: "max", np.amax: "max", np.nanmax: "max",
               np.min: "min", np.amin: "min", np.nanmin: "min",
               np.median: "median", np.nanmedian: "median"}
# The input dtypes those filters take as they are (native byte order).
_FILTER_DTYPES = {np.dtype(t) for t in (np.int8, np.int16, np.int32, np.int64, np.uint8,
                                        np.uint16, np.uint32, np.uint64, np.float32,
                                        np.float64)}


def _bad(message, param, value, expected):
    return StencilValueError(f"{message} Got {param}={value!r}; expected {expected}.",
                             param=param, value=value, expected=expected)


def _is_integer(value):
    return isinstance(value, (numbers.Integral, np.integer)) and not isinstance(value, bool)


def _window_axes(input, size, footprint, axes):
    """(axes, given, sizes, footprint): the window's axes of `input` (from 0 up), the same as
    given (the result's axes move back to those: a function's extra axes land by them), its
    extent on each, and the footprint as a boolean array (None for a box given by `size`)."""
    if axes is None:
        axes = tuple(range(-input.ndim, 0))
    elif np.isscalar(axes):
        axes = (axes,)
    axes = tuple(axes)
    if len(axes) > input.ndim:
        raise _bad("The length of `axes` may not exceed the dimensionality of `input` "
                   "(`input.ndim`).", "axes", axes, f"at most {input.ndim} axes")
    if size is not None:
        sizes = (size,) * len(axes) if np.isscalar(size) else tuple(size)
        if not all(_is_integer(s) and s > 0 for s in sizes):
            raise _bad("All elements of `size` must be positive integers.", "size", size,
                       "positive integers")
    else:
        footprint = np.asarray(footprint, dtype=bool)
        sizes = footprint.shape
    if len(axes) != len(sizes):
        raise _bad("`axes` must be compatible with the dimensionality of the window "
                   "specified by `size` or `footprint`.", "axes", axes,
                   f"{len(sizes)} axes, one per dimension of the window")
    given = axes
    axes = tuple(_args.normalize_axes(axes, input.ndim)) if axes else ()
    if len(set(axes)) != len(axes):
        raise _bad("`axes` must not repeat an axis.", "axes", given, "distinct axes")
    return axes, given, tuple(int(s) for s in sizes), footprint


def _origins(origin, naxes):
    if origin is None:
        return (0,) * naxes
    origins = (origin,) * naxes if np.isscalar(origin) else tuple(origin)
    if not all(_is_integer(o) for o in origins):
        raise _bad("All elements of `origin` must be integers.", "origin", origin, "integers")
    if len(origins) != naxes:
        raise _bad("`origin` must be an integer or tuple of integers with length equal to "
                   "the number of axes.", "origin", origin, f"{naxes} integers")
    return tuple(int(o) for o in origins)


def _check_mode_cval_memory(mode, cval, origins, batch_memory):
    """scipy's rules on `mode`, `cval` and `batch_memory`; returns cval (0.0 by default)."""
    if not isinstance(mode, str) or mode not in _MODES:
        raise _bad(f"`mode` must be one of {set(_MODES)}.", "mode", mode,
                   "one of " + ", ".join(repr(m) for m in _MODES))
    if mode == "valid" and any(origins):
        raise _bad("`mode='valid'` is incompatible with use of `origin`.", "origin", origins,
                   "no origin with mode='valid'")
    if cval is None:
        cval = 0.0
    elif mode not in ("constant", "grid-constant"):
        raise _bad("Use of `cval` is compatible only with `mode='constant'`.", "cval", cval,
                   "no cval unless mode='constant'")
    if np.asarray(cval).dtype.kind not in "biufc" or np.ndim(cval) != 0:
        raise _bad("`cval` must include only numbers.", "cval", cval, "one number")
    memory = np.asarray(batch_memory)
    if memory.ndim != 0 or memory.dtype.kind not in "biuf" or not memory > 0:
        raise _bad("`batch_memory` must be positive number.", "batch_memory", batch_memory,
                   "a number of bytes > 0")
    return cval


def vectorized_filter(input, function, *, size=None, footprint=None, output=None,
                      mode="reflect", cval=None, origin=None, axes=None, batch_memory=2**30):
    """Filter an array with a vectorised function of each window (scipy.ndimage.vectorized_filter).

    Parameters
    ----------
    input : array_like
        The array to filter.
    function : callable
        ``function(window, *, axis) -> value``: a reduction over the axes `axis`
        of `window`, as NumPy's (``np.mean``, ``np.nanmedian``, ...).  It may
        return several values per window when `output` is None and the windows
        fit in `batch_memory` at once.
    size : int or tuple of int, optional
        The window's shape on the filtered axes (one of `size` and `footprint`).
    footprint : array_like of bool, optional
        The window's shape and the cells of it the function sees.
    output : ndarray, optional
        Written with the result (cast as NumPy assigns); by default a new
        array of the dtype `function` returns.
    mode : {'reflect', 'constant', 'nearest', 'mirror', 'wrap', 'grid-mirror', \
'grid-constant', 'grid-wrap', 'valid'}, optional
        How the input extends past its edges ('valid': it does not, and the
        output is smaller by the window's extent less one).
    cval : scalar, optional
        The value past the edges with ``mode='constant'`` (default 0.0).
    origin : int or tuple of int, optional
        Shift of the window on each filtered axis.
    axes : int or tuple of int, optional
        The axes the window spans (default: all).
    batch_memory : int, optional
        The most bytes of windows passed to `function` in one call.

    Returns
    -------
    ndarray
        `function`'s value on every window.

    Notes
    -----
    The maximum, minimum and median (``np.max``, ``np.min``, ``np.median`` and
    their ``nan`` forms) run on `maximum_filter`, `minimum_filter` and
    `median_filter` where their bits are the function's; see
    ``stencils.ndimage._vectorized``.

    Examples
    --------
    >>> import numpy as np
    >>> from stencils import ndimage as ndi
    >>> ndi.vectorized_filter(np.array([1.0, 5, 2, 8]), np.mean, size=2)
    array([1. , 3. , 3.5, 5. ])
    >>> ndi.vectorized_filter(np.array([[3, 1], [4, 1]]), np.max, size=2, mode="valid")
    array([[4]])
    """
    lazy = is_dask(input)
    if not lazy:
        input = np.asarray(input)
    if not callable(function):
        raise _bad("`function` must be a callable.", "function", function, "a callable")
    if size is None and footprint is None:
        raise _bad("Either `size` or `footprint` must be provided.", "size", None,
                   "a size or a footprint")
    if size is not None and footprint is not None:
        raise _bad("Either `size` or `footprint` may be provided, not both.", "footprint",
                   "an array", "no footprint when size is given")
    if output is not None and (lazy or not isinstance(output, np.ndarray)):
        raise StencilTypeError(
            f"output is {output!r}; expected an array to write into (vectorized_filter "
            "takes the dtype from `function`), or None for a dask array input.",
            param="output", value=output, expected="an ndarray, or None for dask input")
    axes, given_axes, sizes, footprint = _window_axes(input, size, footprint, axes)
    origins = _origins(origin, len(axes))
    cval = _check_mode_cval_memory(mode, cval, origins, batch_memory)
    if input.size == 0:
        return input
    if lazy:
        return _lazy(input, function, sizes, footprint, mode, cval, origins, given_axes,
                     batch_memory)
    if input.ndim == 0 and sizes == ():
        if footprint is None:
            return np.asarray(function(input, axis=()))
        # scipy masks a 0-d input twice, the value and then the window: a 0-d True
        # footprint gives shape (1,) values.
        return np.asarray(function(input[footprint][..., footprint], axis=-1))
    fast = _on_filters(input, function, sizes, footprint, output, mode, cval, origins, axes)
    if fast is not None:
        return fast
    return _over_windows(input, function, sizes, footprint, output, mode, cval, origins,
                         given_axes, batch_memory)


def _lazy(input, function, sizes, footprint, mode, cval, origins, axes, batch_memory):
    """A dask array's filter, lazy: each chunk filtered with halos as wide as the window
    reaches (from the other end where the mode wraps), as dask's `map_overlap` gives them;
    a chunk at the array's edge applies the mode there itself, so the result is the
    in-memory one.  'valid' runs as 'constant' with the window after its point, cut."""
    import dask.array as da

    window = {"size": sizes} if footprint is None else {"footprint": footprint}
    valid = mode == "valid"
    if valid:
        mode, origins = "constant", tuple(-(s // 2) for s in sizes)
    options = dict(window, mode=mode, origin=origins, axes=axes, batch_memory=batch_memory,
                   cval=cval if mode in ("constant", "grid-constant") else None)
    lo, hi = win.window_bounds(sizes, origins)
    window_axes = _args.normalize_axes(axes, input.ndim)
    full = _full_sizes(sizes, window_axes, input.ndim)
    probe = vectorized_filter(np.zeros(full, input.dtype), function, **options)
    if probe.shape != tuple(full):
        raise StencilTypeError(
            f"function gives values of shape {probe.shape} on an input of shape "
            f"{tuple(full)}; a dask array input needs one value per window (the shape "
            f"{tuple(full)}), as each chunk is filtered apart. Call .compute() first, or "
            "reduce each window to one value.",
            param="function", value=function, expected="one value per window")
    depth = dict.fromkeys(range(input.ndim), 0)
    for ax, l, h in zip(window_axes, lo, hi):
        depth[ax] = max(l, h, 0)
    wraps = mode in ("wrap", "grid-wrap")
    result = da.map_overlap(_chunk, input, depth=depth, boundary="periodic" if wraps else "none",
                            trim=True, dtype=probe.dtype, meta=np.empty((0,) * input.ndim,
                                                                        probe.dtype),
                            function=function, options=options)
    if valid:
        result = result[tuple(slice(0, n - s + 1) for n, s in zip(input.shape, full))]
    return result


def _chunk(block, function, options):
    """One chunk's filter (a module-level function: dask.distributed pickles it by name)."""
    return vectorized_filter(block, function, **options)


def _over_windows(input, function, sizes, footprint, output, mode, cval, origins, axes,
                  batch_memory):
    """The function over a sliding-window view of the padded input, in batches of
    the view's first axis (the filtered axes moved last)."""
    working = tuple(range(-len(axes), 0))
    a = np.moveaxis(input, axes, working)
    out = np.moveaxis(output, axes, working) if output is not None else None
    if mode != "valid":
        lo, hi = win.window_bounds(sizes, origins)
        if min(lo + hi, default=0) < 0:
            raise _bad("An `origin` moves the window off its point.", "origin", origins,
                       "-(size // 2) <= origin <= (size - 1) // 2 on each axis")
        codes = [_args.mode_code(_PAD_AS.get(mode, mode))] * a.ndim
        if codes[0] == _args.mode_code("constant"):
            _check_storable(cval, a.dtype)
        batch = a.ndim - len(axes)
        a = _padded(a, [0] * batch + lo, [0] * batch + hi, codes, np.asarray(cval)[()])
    if any(s > n for s, n in zip(sizes, a.shape[a.ndim - len(axes):])):
        raise _bad("With `mode='valid'` the window must fit in the input.", "size", sizes,
                   "at most the input's extent on each filtered axis")
    view = np.lib.stride_tricks.sliding_window_view(a, sizes, working)
    if footprint is not None:
        mask = footprint

        def call(windows):
            return function(windows[..., mask], axis=-1)
    else:
        def call(windows):
            return function(windows, axis=working)
    result = _in_batches(view, call, out, len(axes), batch_memory)
    return np.moveaxis(result, working, axes) if out is None else output


def _check_storable(cval, dtype):
    """NumPy's own check of `cval` stored into `dtype`, which np.pad makes (NaN refused for
    some integer dtypes), even with nothing to pad."""
    try:
        np.empty(0, dtype)[...] = np.asarray(cval)[()]
    except ValueError as error:
        raise _bad(f"`cval` cannot be stored in the input's dtype: {error}.", "cval", cval,
                   f"a number that dtype {dtype} holds") from None


def _padded(a, lo, hi, codes, cval):
    """`a` padded in np.pad's memory order (Fortran order for a Fortran array): a
    reduction's bits follow the order it meets the values in."""
    if a.flags.f_contiguous and not a.flags.c_contiguous:
        return win.pad(a.T, lo[::-1], hi[::-1], codes[::-1], cval).T
    return win.pad(a, lo, hi, codes, cval)


def _in_batches(view, call, out, naxes, batch_memory):
    """`call` over slices of the view's first axis holding at most `batch_memory` bytes."""
    if naxes == 0:
        return call(view)
    one = math.prod(view.shape[1:]) * view.dtype.itemsize
    per_batch = min(view.shape[0], batch_memory // one if one else view.shape[0])
    if per_batch < 1:
        raise _bad("`batch_memory` is insufficient for minimum chunk size.", "batch_memory",
                   batch_memory, f"at least {one} bytes (the windows of one slice)")
    per_batch = int(per_batch)
    if per_batch == view.shape[0]:
        if out is None:
            return call(view)
        out[...] = call(view)
        return out
    for start in range(0, view.shape[0], per_batch):
        stop = min(start + per_batch, view.shape[0])
        values = call(view[start:stop])
        if out is None:
            out = np.empty(view.shape[:view.ndim - naxes], dtype=np.asarray(values).dtype)
        out[start:stop] = values
    return out


def _filter_kind(a, function, sizes, footprint, cval, origins, axes):
    """'max', 'min' or 'median': the filter that gives the function's bits on this call,
    or None (see the module's notes)."""
    kind = _REDUCTIONS.get(function) if _hashable(function) else None
    if kind is None or a.dtype not in _FILTER_DTYPES:
        return None
    if any(s > a.shape[ax] for s, ax in zip(sizes, axes)):
        return None
    if any(not -(s // 2) <= o <= (s - 1) // 2 for s, o in zip(sizes, origins)):
        return None
    count = int(np.count_nonzero(footprint)) if footprint is not None else math.prod(sizes)
    if count == 0 or (kind == "median" and count % 2 == 0):
        return None
    if not _holds_exactly(cval, a.dtype) or win.contains_nan(a, negative_zeros=True):
        return None
    return kind


def _on_filters(a, function, sizes, footprint, output, mode, cval, origins, axes):
    """The function's values by a filter of the stencil core, or None where that
    would not give the function's bits."""
    kind = _filter_kind(a, function, sizes, footprint, cval, origins, axes)
    if kind is None:
        return None
    # Axes in order, as scipy's rank filters read a box's sizes without reordering them.
    order = np.argsort(axes)
    axes, sizes, origins = ([values[i] for i in order] for values in (axes, sizes, origins))
    if footprint is not None:
        footprint = np.transpose(footprint, order)
    valid = mode == "valid"
    if valid:
        origins = [-(s // 2) for s in sizes]
    filter_mode = "constant" if valid else _PAD_AS.get(mode, mode)
    window = {"footprint": footprint} if footprint is not None else {"size": sizes}
    filters = {"max": _order.maximum_filter, "min": _order.minimum_filter,
               "median": _order.median_filter}
    result = filters[kind](a, **window, mode=filter_mode, cval=float(np.asarray(cval).item()),
                           origin=origins, axes=axes)
    if valid:
        result = result[tuple(slice(0, n - s + 1) if ax in axes else slice(None)
                              for ax, (n, s) in enumerate(
                                  zip(a.shape, _full_sizes(sizes, axes, a.ndim))))]
    if kind == "median" and a.dtype.kind in "iu":
        result = result.astype(np.float64)  # np.median's dtype for integers
    if output is None:
        return result
    output[...] = result
    return output


def _full_sizes(sizes, axes, ndim):
    full = [1] * ndim
    for ax, s in zip(axes, sizes):
        full[ax] = s
    return full


def _hashable(function):
    try:
        hash(function)
    except TypeError:
        return False
    return True


def _holds_exactly(cval, dtype):
    """Whether `cval` is a real number, not NaN nor -0.0, that `dtype` and the filters'
    float64 cval both hold exactly (Python's int-float comparison is exact)."""
    value = np.asarray(cval)
    if value.dtype.kind not in "biuf":
        return False
    x = value.item()
    if x != x or (x == 0 and math.copysign(1.0, x) < 0) or float(x) != x:
        return False
    with np.errstate(all="ignore"):
        return np.asarray(x).astype(dtype).item() == x



