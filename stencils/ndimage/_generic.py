"""User-function filters: `generic_filter` and `generic_filter1d` (scipy.ndimage's).

A plain Python function that Numba can compile runs compiled, called from a
parallel loop that gathers each window (scipy's buffer: float64 values, cval
as given) and stores the returns with scipy's casts.  The window reaches the
function as a `stencils._kernels_window.WindowArray` (its ``.max()`` and
``.min()`` faster than Numba's, same results), the function's body compiled
into the loop over the points; a function Numba will not compile that way
runs as written, called with a plain array.  Over a box (a footprint of all
True), a function that names ``max`` or ``min`` is first tried with a
`stencils._kernels_window.BoxExtremes`: no cells, only each window's max and
min, computed for a row of windows at once from the extremes of the input
rows' runs (the same bits); if it uses anything else of the window, Numba
refuses that type and the gathered window runs instead.  A function Numba
cannot compile runs in a Python loop here, as in scipy, after a
`CompileFallbackWarning` that quotes Numba's reason.  A
``scipy.LowLevelCallable`` goes to scipy's own implementation, which is what
it was written for.
"""

from __future__ import annotations

import functools
import numbers
import re
import types
import warnings

import numpy as np

from .. import _kernels_order as ko
from ..errors import StencilTypeError
from . import _args
from . import _window as win
from ._lazy import dask_aware
from ._order import _line_reach, _output, _window_reach

__all__ = ["generic_filter", "generic_filter1d", "CompileFallbackWarning"]

# Windows gathered per step of the Python fallback loop.
_FALLBACK_CHUNK = 4096


class CompileFallbackWarning(UserWarning):
    """Numba could not compile the user function; it runs in a Python loop (scipy's speed)."""


def _is_low_level(function):
    import scipy

    return isinstance(function, scipy.LowLevelCallable) or type(function).__name__ in (
        "PyCapsule", "CFunctionType") or hasattr(function, "_as_parameter_")


@functools.lru_cache(maxsize=64)
def _compiled(function, inline=False):
    """`function` as a Numba dispatcher (numpy and builtin callables through a wrapper).

    With `inline`, one compiled with ``inline="always"`` (its body joins the
    kernel's loop), or None for a function the caller compiled already (its
    own options stay) and for other callables.
    """
    import numba
    from numba.core.registry import CPUDispatcher

    if isinstance(function, CPUDispatcher):
        return None if inline else function
    if not isinstance(function, types.FunctionType):
        if inline:  # the wrapper only calls it: nothing to gain
            return None
        target = function

        def function(window, *args):  # noqa: F811 - a compilable call of the callable
            return target(window, *args)
    # NumPy's error model: scipy calls the function on NumPy float64 values, so a
    # division by zero gives inf or nan there, not ZeroDivisionError.
    return numba.njit(nogil=True, inline="always" if inline else "never",
                      error_model="numpy")(function)


def _compiled_for_call(function, inline=False):
    try:
        return _compiled(function, inline)
    except TypeError:  # unhashable callable: compiled for this call only
        return _compiled.__wrapped__(function, inline)


def _first_line(exc):
    """The line of a Numba error that says what failed (not the pipeline step it failed in)."""
    text = re.sub(r"\x1b\[[0-9;]*m", "", str(exc))
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    useful = [ln for ln in lines if not ln.startswith(("Failed in", "During:", "File "))]
    return (useful or lines or [type(exc).__name__])[0]


@win.serial_when_small
def _run_kernel(data, kernel, *args):
    """kernel(*args), on one thread when `data` (the array it reads) is small."""
    kernel(*args)


def _reads_extremes(function):
    """Whether `function`'s own code names ``max`` or ``min`` (the box kernel is worth trying)."""
    code = getattr(function, "__code__", None)
    return code is not None and not {"max", "min"}.isdisjoint(code.co_names)


def _run_as_window(kind, function, compiled, shape, values):
    """Run the kernel handing `function` a `WindowArray` (inlined into a point loop), or
    for kind 'box' a `BoxExtremes` (inlined; nothing runs for a function not inlined).

    False where that form fails: where Numba refuses it (nothing ran; a
    function's own inlined kernel remembers the refusal, so it is not
    compiled again), or where it raises (the caller's plain run raises again).
    """
    from numba.core.errors import NumbaError

    inlined = _compiled_for_call(function, inline=True) if kind != "line" else None
    if kind == "box" and inlined is None:
        return False
    kernel = ko.user_kernel(kind, *shape, inlined=inlined)
    if getattr(kernel, "refused", False):
        return False
    try:
        _run_kernel(values[0], kernel, compiled, *values)
    except (NumbaError, NotImplementedError):  # the inliner refuses *args, for one
        if inlined is not None:
            kernel.refused = True
        return False
    except Exception:  # noqa: BLE001 - whatever else stops this form: the function as written
        return False
    return True


def _call_shape(extra_arguments, extra_keywords):
    """(kernel call shape, extra values in call order), or None for keywords a kernel
    cannot name."""
    keywords = tuple(extra_keywords)
    if not all(isinstance(k, str) and k.isidentifier() for k in keywords):
        return None
    extras = (*extra_arguments, *(extra_keywords[k] for k in keywords))
    return (len(extra_arguments), keywords), extras


def _run_compiled(kind, function, arrays, extra_arguments, extra_keywords):
    """Run the parallel kernel; None if Numba cannot compile the function (after a
    warning) or the compiled function raised (the Python loop then raises its error)."""
    from numba.core.errors import NumbaError

    call = _call_shape(extra_arguments, extra_keywords)
    if call is None:
        return None
    shape, extras = call
    try:
        compiled = _compiled_for_call(function)
        if not _run_as_window(kind, function, compiled, shape, (*arrays, *extras)):
            _run_kernel(arrays[0], ko.user_kernel(kind, *shape, window=False), compiled,
                        *arrays, *extras)
    except NumbaError as exc:
        warnings.warn(
            f"{getattr(function, '__name__', function)!r} runs in a Python loop at scipy's "
            f"speed: Numba cannot compile it ({_first_line(exc)}).",
            CompileFallbackWarning, stacklevel=4)
        return None
    except Exception:  # noqa: BLE001 - the function raised: the Python loop raises it as scipy does
        return None
    return True


def _box_arguments(a, fp, lo, code, cval, rows_out):
    """The box kernel's arguments after the output: the source's lines, its leading shape,
    the box and its cells before a point on those axes, then on the last axis, border
    code, cval, output rows per task."""
    import numba

    if a.dtype not in (np.float32, np.float64):
        a = a.astype(np.float64)
    lead = [np.array(v[:-1], np.int64) for v in (a.shape, fp.shape, lo)]
    band = max(8, -(-rows_out // (4 * numba.get_num_threads())))
    return (np.ascontiguousarray(a).reshape(-1, a.shape[-1]), *lead, fp.shape[-1], lo[-1],
            code, cval, band)


@functools.lru_cache(maxsize=64)
def _takes_box_window(function, argument_types):
    """Whether `function` alone compiles for a `BoxExtremes` window: a cheap test (tens of
    ms) before the kernel, whose refusal would cost a whole kernel's compile."""
    import numba

    from .._kernels_window import BOX

    try:
        numba.njit(error_model="numpy", no_cpython_wrapper=True)(function).compile(
            (BOX, *argument_types))
    except Exception:  # noqa: BLE001 - whatever stops it: the gathered window runs
        return False
    return True


def _box_worth_trying(function, extra_arguments, extra_keywords):
    """Whether `function` (a plain Python function naming ``max`` or ``min``) compiles with
    a `BoxExtremes`; with keywords the kernel itself is the test."""
    import numba

    if not isinstance(function, types.FunctionType) or not _reads_extremes(function):
        return False
    if extra_keywords:
        return True
    try:
        return _takes_box_window(function, tuple(numba.typeof(v) for v in extra_arguments))
    except (TypeError, ValueError):  # an unhashable function or an argument Numba cannot type
        return True


def _run_box(function, result, a, fp, lo, code, cval, extra_arguments, extra_keywords):
    """Run the box kernel when the footprint `fp` is a box and `function` compiles with a
    `BoxExtremes` (it names ``max`` or ``min`` and uses nothing else of the window); False
    where it did not run through.  Its arguments (a float copy of an integer input) are
    made only then."""
    call = _call_shape(extra_arguments, extra_keywords)
    if (a.ndim == 0 or call is None or not fp.all()
            or not _box_worth_trying(function, extra_arguments, extra_keywords)):
        return False
    shape, extras = call
    box = _box_arguments(a, fp, lo, code, cval, result.shape[0])
    return _run_as_window("box", function, _compiled_for_call(function), shape,
                          (box[0], result, *box[1:], *extras))


def _check_extras(extra_arguments, extra_keywords):
    if extra_keywords is None:
        extra_keywords = {}
    if not isinstance(extra_arguments, (tuple, list)):
        raise StencilTypeError(
            f"extra_arguments must be a sequence, got {type(extra_arguments).__name__}.",
            param="extra_arguments", value=extra_arguments, expected="a tuple")
    if not isinstance(extra_keywords, dict):
        raise StencilTypeError(
            f"extra_keywords must be a dictionary, got {type(extra_keywords).__name__}.",
            param="extra_keywords", value=extra_keywords, expected="a dict")
    return tuple(extra_arguments), dict(extra_keywords)


def _check_function(function):
    if not callable(function) and not _is_low_level(function):
        raise StencilTypeError(
            f"function={function!r} is not callable.", param="function", value=function,
            expected="a callable or a scipy.LowLevelCallable")


@dask_aware(_window_reach)
def generic_filter(input, function, size=None, footprint=None, output=None, mode="reflect",
                   cval=0.0, origin=0, extra_arguments=(), extra_keywords=None, *, axes=None):
    """Calculate a multidimensional filter using the given function (scipy.ndimage.generic_filter).

    ``function(window, *extra_arguments, **extra_keywords)`` gets the window's
    values (float64, footprint cells in C order) and returns a number.  If
    Numba compiles it, every window runs compiled and in parallel; if not, a
    `CompileFallbackWarning` says why and it runs in a Python loop.

    Parameters
    ----------
    input : array_like
    function : callable or scipy.LowLevelCallable
    size, footprint, output, mode, cval, origin, axes
        As scipy.ndimage.generic_filter (one mode for all axes).
    extra_arguments : sequence, optional
    extra_keywords : dict, optional

    Returns
    -------
    ndarray

    Examples
    --------
    >>> import numpy as np
    >>> from stencils import ndimage as ndi
    >>> def spread(window):
    ...     return window.max() - window.min()
    >>> ndi.generic_filter(np.array([1.0, 4.0, 2.0, 8.0]), spread, size=3)
    array([3., 3., 6., 6.])
    """
    _check_function(function)
    extra_arguments, extra_keywords = _check_extras(extra_arguments, extra_keywords)
    a = _args.as_input(input, complex_ok=False)
    axes = _args.normalize_axes(axes, a.ndim)
    sizes, fp = _args.sizes_or_footprint(size, footprint, axes, a.ndim)
    if fp is None:  # a box: from size (scipy's order of axes) or an all-True footprint
        fp = win.box_footprint(sizes, axes, a.ndim) if footprint is None else np.ones(sizes, bool)
    origins = [_args.check_origin(o, f)
               for o, f in zip(_args.origins_for(origin, axes, a.ndim), fp.shape)]
    output = _output(output, a)
    code = _args.mode_code(mode)
    if _is_low_level(function):
        return _scipy().generic_filter(a, function, footprint=fp, output=output, mode=mode,
                                       cval=cval, origin=origins,
                                       extra_arguments=extra_arguments,
                                       extra_keywords=extra_keywords)
    cval = _args.as_float_cval(cval)
    if a.size == 0:
        return output
    lo, hi = win.window_bounds(fp.shape, origins)
    result = np.empty(win.as_rows(a.shape), np.float64)
    # A float output takes the box kernel's values as they come (Numba's casts are
    # NumPy's there), so no float64 result is written and read again.
    direct = (output.dtype in (np.float32, np.float64) and output.flags.c_contiguous
              and not _args.overlaps(a, output))
    target = output.reshape(result.shape) if direct else result
    if _run_box(function, target, a, fp, lo, code, cval, extra_arguments, extra_keywords):
        return output if direct else _args.store(result.reshape(a.shape), output)
    padded = win.pad(a.astype(np.float64), lo, hi, [code] * a.ndim, cval)
    offsets = win.flat_offsets(fp, padded.shape)
    bases = win.row_bases(a.shape, padded.shape)
    arrays = (padded.reshape(-1), bases, result, offsets)
    if _run_compiled("point", function, arrays, extra_arguments, extra_keywords) is None:
        _python_points(function, *arrays, extra_arguments, extra_keywords)
    return _args.store(result.reshape(a.shape), output)


def _python_points(function, pflat, bases, result, offsets, extra_arguments, extra_keywords):
    """The fallback: every window gathered by numpy, `function` called from Python."""
    width = result.shape[1]
    cols = np.arange(width, dtype=np.int64)
    for q in range(result.shape[0]):
        for c0 in range(0, width, _FALLBACK_CHUNK):
            idx = bases[q] + cols[c0:c0 + _FALLBACK_CHUNK, None] + offsets[None, :]
            windows = pflat[idx]
            row = result[q]
            for k in range(windows.shape[0]):
                row[c0 + k] = function(windows[k], *extra_arguments, **extra_keywords)


@dask_aware(lambda ndim, function, filter_size, axis=-1, origin=0, **_: _line_reach(
    ndim, filter_size, axis, origin))
def generic_filter1d(input, function, filter_size, axis=-1, output=None, mode="reflect",
                     cval=0.0, origin=0, extra_arguments=(), extra_keywords=None):
    """Calculate a 1-D filter along the given axis (scipy.ndimage.generic_filter1d).

    ``function(input_line, output_line, *extra_arguments, **extra_keywords)``
    gets each line extended by the border rule (float64, ``filter_size - 1``
    cells longer than the axis) and fills ``output_line`` in place.  Compiled
    and run in parallel over the lines when Numba can compile it.

    Parameters
    ----------
    input : array_like
    function : callable or scipy.LowLevelCallable
    filter_size : int
    axis, output, mode, cval, origin, extra_arguments, extra_keywords
        As scipy.ndimage.generic_filter1d.

    Returns
    -------
    ndarray

    Examples
    --------
    >>> import numpy as np
    >>> from stencils import ndimage as ndi
    >>> def pairs(line, out):
    ...     out[:] = line[:-1] + line[1:]
    >>> ndi.generic_filter1d(np.array([1.0, 2.0, 4.0]), pairs, filter_size=2)
    array([2., 3., 6.])
    """
    _check_function(function)
    extra_arguments, extra_keywords = _check_extras(extra_arguments, extra_keywords)
    a = _args.as_input(input, complex_ok=False)
    output = _output(output, a)
    if not isinstance(filter_size, numbers.Integral) or isinstance(filter_size, bool):
        raise StencilTypeError(f"filter_size={filter_size!r} is not an integer.",
                               param="filter_size", value=filter_size, expected="an integer")
    if filter_size < 1:
        raise _args.NdimageRuntimeError(
            f"invalid filter size: filter_size={filter_size}, expected >= 1.",
            param="filter_size", value=filter_size, expected=">= 1")
    axis = _args.normalize_axis(axis, a.ndim)
    _args.check_origin(origin, filter_size)
    code = _args.mode_code(mode)
    if _is_low_level(function):
        return _scipy().generic_filter1d(a, function, filter_size, axis, output, mode, cval,
                                         origin, extra_arguments, extra_keywords)
    cval = _args.as_float_cval(cval)
    if a.size == 0:
        return output
    moved = np.moveaxis(a, axis, -1)
    n = moved.shape[-1]
    lines = np.ascontiguousarray(moved, dtype=np.float64).reshape(-1, n)
    result = np.empty_like(lines)
    lo = filter_size // 2 + origin
    arrays = (lines, result, filter_size, lo, code, cval)
    if _run_compiled("line", function, arrays, extra_arguments, extra_keywords) is None:
        _python_lines(function, *arrays, extra_arguments, extra_keywords)
    _args.store(np.moveaxis(result.reshape(moved.shape), -1, axis), output)
    return output


def _python_lines(function, lines, result, size, lo, code, cval, extra_arguments,
                  extra_keywords):
    n = lines.shape[1]
    ext = win.pad(lines, [0, lo], [0, size - 1 - lo], [code, code], cval)
    for r in range(lines.shape[0]):
        obuf = np.zeros(n)
        function(ext[r].copy(), obuf, *extra_arguments, **extra_keywords)
        result[r] = obuf


class _ScipyFilters:
    """scipy's own generic filters, taken when this module is imported: the public names
    may later be replaced by ours (scipy's test suite runs that way)."""

    from scipy.ndimage import generic_filter, generic_filter1d  # noqa: F401


def _scipy():
    return _ScipyFilters
