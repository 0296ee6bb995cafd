"""Argument normalisation shared by every `stencils.ndimage` function.

scipy.ndimage's rules, in one place, with errors of scipy's types whose
messages name the argument, the value and what was expected.  The filter
modules (`_linear`, `_order`, `_generic`) call only these helpers; the kernels
see only what they return.

Interface (stable: other modules build on it)
---------------------------------------------
``NdimageRuntimeError``
    scipy raises ``RuntimeError`` for several bad arguments (a wrong output
    shape, a bad mode, a sequence of the wrong length); this subclass of
    `stencils.errors.StencilError` and ``RuntimeError`` carries ours.
``as_input(input, *, complex_ok=True, param="input") -> ndarray``
    ``np.asarray`` plus refusal of non-numeric dtypes (and of complex ones
    where ``complex_ok`` is false, with scipy's ``TypeError``).
``is_dask(x) -> bool``
``get_output(output, input, *, shape=None, complex_output=False) -> ndarray``
    scipy's ``output`` rules: None -> zeros of the input's dtype (complex
    promoted when ``complex_output``), a dtype / type / string -> zeros of
    it, an array -> checked for shape and complexness.
``normalize_axis(axis, ndim, *, param="axis") -> int``
``normalize_axes(axes, ndim) -> tuple of int``
    None -> every axis; a scalar or iterable of ints, negative allowed,
    unique.
``as_compute_dtype(compute_dtype) -> np.float64 or np.float32``
    The linear filters' keyword-only `compute_dtype` (None -> float64).
``per_axis(value, rank, *, param) -> list``
    A scalar (or string) repeated ``rank`` times, or a sequence of length
    ``rank``.
``expand_to_rank(values, axes, ndim, fill) -> list``
    Per-filtered-axis values spread to a full-rank list, ``fill`` elsewhere.
``mode_code(mode, *, param="mode") -> int``
    One filter mode name -> the kernels' border code (`stencils._kernels`):
    'reflect', 'constant', 'nearest', 'mirror', 'wrap' and the aliases
    'grid-mirror' (= 'reflect'), 'grid-constant' (= 'constant'),
    'grid-wrap' (= 'wrap'), which are the same rules for filters.
``mode_codes(mode, axes, ndim) -> list of int``
    A mode or one per filtered axis, to a full-rank list of codes.
``check_origin(origin, size, *, param="origin") -> int``
    ``-(size // 2) <= origin <= (size - 1) // 2`` as scipy requires.
``origins_for(origin, axes, ndim) -> list of int``
``sizes_or_footprint(size, footprint, axes, ndim) -> (sizes, footprint)``
    For filters taking ``size`` or ``footprint``: a full-rank list of sizes
    when the window is a box (footprint None or all True), else a full-rank
    boolean footprint (sizes None).  Warns as scipy does when both are given.
``as_float_cval(cval, *, param="cval") -> float``
``split_complex(func, input, weights, output, cval, **kwargs) -> output``
    scipy's complex rule: a complex filter as real filters of the real and
    imaginary parts (weights already conjugated by the caller where scipy
    does).
``store(result, output)``
    Write float64 values into ``output`` the way scipy's C code casts them:
    truncation for integers and bool (an unsigned byte in scipy's C), modular
    wrap for negative values into unsigned types.
``overlaps(input, output) -> bool``
"""

from __future__ import annotations

import difflib
import numbers
import operator
import warnings
from collections.abc import Iterable

import numpy as np
from numpy.lib.array_utils import normalize_axis_index

from .._border import _FOREIGN_NAMES, EDGE, FILL, SCIPY_MIRROR, SCIPY_REFLECT, WRAP
from .._validate import read_array
from ..errors import StencilError, StencilTypeError, StencilValueError

__all__ = [
    "NdimageRuntimeError", "as_input", "is_dask", "get_output", "normalize_axis",
    "normalize_axes", "per_axis", "expand_to_rank", "mode_code", "mode_codes",
    "check_origin", "origins_for", "sizes_or_footprint", "as_float_cval",
    "split_complex", "store", "overlaps", "FILTER_MODES",
]


class NdimageRuntimeError(StencilError, RuntimeError):
    """An argument scipy.ndimage refuses with ``RuntimeError`` (kept for drop-in use)."""


# scipy's filter modes and the kernels' border codes.  The 'grid-*' names are
# the interpolation family's; for filters they are the same rules as their
# plain names (scipy's _extend_mode_to_code(..., is_filter=True) maps them so).
_MODE_CODES = {
    "reflect": SCIPY_REFLECT,
    "grid-mirror": SCIPY_REFLECT,
    "mirror": SCIPY_MIRROR,
    "nearest": EDGE,
    "wrap": WRAP,
    "grid-wrap": WRAP,
    "constant": FILL,
    "grid-constant": FILL,
}
FILTER_MODES = tuple(_MODE_CODES)


def is_dask(x):
    """Whether `x` is a dask array (without importing dask when it is not loaded)."""
    import sys

    da = sys.modules.get("dask.array")
    return da is not None and isinstance(x, da.Array)


def as_input(input, *, complex_ok=True, param="input"):
    """`input` as an ndarray of a numeric dtype (scipy's ``np.asarray``)."""
    a = read_array(input, param=param, expected="an array of numbers")
    if a.dtype.kind not in "biufc":
        raise StencilTypeError(
            f"{param} has dtype {a.dtype}; expected a numeric dtype (bool, integer, float "
            "or complex).",
            param=param, value=a.dtype, expected="a numeric dtype",
        )
    _check_supported(a.dtype, param)
    if a.dtype.kind == "c" and not complex_ok:
        raise StencilTypeError(
            f"{param} has the complex dtype {a.dtype}; this filter takes real input only "
            "(as scipy.ndimage: 'Complex type not supported'). Filter .real and .imag "
            "separately if that is what you mean.",
            param=param, value=a.dtype, expected="a real dtype",
        )
    return a


def _check_supported(dtype, param):
    # scipy's C core takes no half or extended precision (RuntimeError there too).
    if (dtype.kind == "f" and dtype.itemsize not in (4, 8)) or (
            dtype.kind == "c" and dtype.itemsize not in (8, 16)):
        raise NdimageRuntimeError(
            f"array type {dtype!r} not supported: {param} has dtype {dtype}; convert it, "
            "e.g. with .astype(np.float32) or .astype(np.float64).",
            param=param, value=dtype, expected="float32, float64, complex64 or complex128",
        )


def get_output(output, input, *, shape=None, complex_output=False, param="output"):
    """The array a filter writes, by scipy's rules for ``output``."""
    shape = input.shape if shape is None else tuple(shape)
    if output is None:
        dtype = input.dtype.newbyteorder("=")  # scipy: np.zeros(..., dtype=input.dtype.name)
        if complex_output:
            dtype = np.promote_types(dtype, np.complex64)
        return np.zeros(shape, dtype=dtype)
    if isinstance(output, (type, np.dtype, str)):
        try:
            dtype = np.dtype(output)
        except TypeError:
            raise StencilTypeError(
                f"{param}={output!r} is neither an array nor a dtype.",
                param=param, value=output, expected="an ndarray or a numeric dtype",
            ) from None
        if dtype.kind not in "biufc":
            raise NdimageRuntimeError(
                f"{param}={output!r}: output must have numeric dtype, got {dtype}.",
                param=param, value=output, expected="a numeric dtype",
            )
        _check_supported(dtype, param)
        if complex_output and dtype.kind != "c":
            if isinstance(output, str):
                raise NdimageRuntimeError(
                    f"{param}={output!r}: output must have complex dtype for complex "
                    "input or weights.",
                    param=param, value=output, expected="a complex dtype",
                )
            warnings.warn("promoting specified output dtype to complex", stacklevel=4)
            dtype = np.promote_types(dtype, np.complex64)
        return np.zeros(shape, dtype=dtype)
    if not isinstance(output, np.ndarray):
        raise StencilTypeError(
            f"{param} must be an ndarray or a dtype, got {type(output).__name__}.",
            param=param, value=type(output).__name__, expected="an ndarray or a dtype",
        )
    if output.shape != shape:
        raise NdimageRuntimeError(
            f"output shape not correct: {param} has shape {output.shape} but the result has "
            f"shape {shape}.",
            param=param, value=output.shape, expected=str(shape),
        )
    if complex_output and output.dtype.kind != "c":
        raise NdimageRuntimeError(
            f"output must have complex dtype: {param} has dtype {output.dtype} but the input "
            "or weights are complex.",
            param=param, value=output.dtype, expected="a complex dtype",
        )
    _check_supported(output.dtype, param)
    if output.dtype.kind not in "biufc":
        raise NdimageRuntimeError(
            f"{param} has dtype {output.dtype}; output must have numeric dtype.",
            param=param, value=output.dtype, expected="a numeric dtype",
        )
    if not output.flags.writeable:
        raise StencilValueError(
            f"{param} is read-only; pass a writeable array.",
            param=param, value="read-only", expected="a writeable array",
        )
    return output


def _as_integer(value, param):
    try:
        return operator.index(value)
    except TypeError:
        raise StencilTypeError(
            f"{param}={value!r} is not an integer.",
            param=param, value=value, expected="an integer",
        ) from None


def normalize_axis(axis, ndim, *, param="axis"):
    """One axis index (negative counts from the end); numpy's AxisError if out of range."""
    return normalize_axis_index(_as_integer(axis, param), ndim, msg_prefix=param)


def normalize_axes(axes, ndim, *, param="axes"):
    """scipy's ``axes``: None -> all; an int or iterable of ints, unique, in range."""
    if axes is None:
        return tuple(range(ndim))
    if np.isscalar(axes):
        axes = (axes,)
    elif not isinstance(axes, Iterable):
        raise StencilValueError(
            f"{param}={axes!r}: axes must be an integer, iterable of integers, or None.",
            param=param, value=axes, expected="an int, an iterable of ints or None",
        )
    try:
        axes = tuple(operator.index(ax) for ax in axes)
    except TypeError as exc:
        raise StencilTypeError(
            f"{param}={axes!r}: axes must be an integer, iterable of integers, or None "
            f"({exc}).",
            param=param, value=axes, expected="integers",
        ) from None
    for ax in axes:
        if ax < -ndim or ax > ndim - 1:
            raise StencilValueError(
                f"specified axis: {ax} is out of range for {param} on an array of "
                f"{ndim} dimensions.",
                param=param, value=axes, expected=f"axes in [-{ndim}, {ndim - 1}]",
            )
    axes = tuple(ax % ndim for ax in axes)
    if len(set(axes)) != len(axes):
        raise StencilValueError(
            f"{param}={axes!r}: axes must be unique.",
            param=param, value=axes, expected="unique axes",
        )
    return axes


def per_axis(value, rank, *, param):
    """A scalar repeated `rank` times, or a sequence of exactly `rank` items (scipy's rule)."""
    if not isinstance(value, str) and np.iterable(value):
        values = list(value)
        if len(values) != rank:
            raise NdimageRuntimeError(
                f"{param}={value!r}: sequence argument must have length equal to input rank "
                f"(the number of filtered axes, {rank}), got {len(values)}.",
                param=param, value=value, expected=f"a scalar or {rank} values",
            )
        return values
    return [value] * rank


def expand_to_rank(values, axes, ndim, fill):
    """Values for the filtered `axes` placed in a full-rank list, `fill` elsewhere."""
    full = [fill] * ndim
    for v, ax in zip(values, axes):
        full[ax] = v
    return full


def mode_code(mode, *, param="mode"):
    """One filter mode name as the kernels' border code."""
    code = _MODE_CODES.get(mode) if isinstance(mode, str) else None
    if code is None:
        hint = ""
        if isinstance(mode, str):
            if mode.lower() in _FOREIGN_NAMES and mode.lower() not in _MODE_CODES:
                hint = (f" {mode!r} is another library's name; here it is "
                        f"{_FOREIGN_NAMES[mode.lower()]!r}.")
            else:
                guess = difflib.get_close_matches(mode, FILTER_MODES, n=1)
                hint = f" Did you mean {guess[0]!r}?" if guess else ""
        raise NdimageRuntimeError(
            f"boundary mode not supported: {param}={mode!r}; expected one of "
            f"{', '.join(map(repr, FILTER_MODES))}.{hint}",
            param=param, value=mode, expected="one of " + ", ".join(FILTER_MODES),
        )
    return code


def mode_codes(mode, axes, ndim, *, param="mode"):
    """`mode` (one name, or one per filtered axis) as a full-rank list of border codes.

    Axes that are not filtered get 'constant' (never read: their window is 1).
    """
    modes = per_axis(mode, len(axes), param=param)
    return expand_to_rank([mode_code(m, param=param) for m in modes], axes, ndim, FILL)


def check_origin(origin, size, *, param="origin"):
    """scipy's origin range for a `size` window: ``-(size // 2) <= origin <= (size - 1) // 2``."""
    origin = _as_integer(origin, param)
    if origin < -(size // 2) or origin > (size - 1) // 2:
        raise StencilValueError(
            f"Invalid origin; origin must satisfy -(len(weights) // 2) <= origin <= "
            f"(len(weights)-1) // 2: {param}={origin} for a window of {size}, expected "
            f"{-(size // 2)} .. {(size - 1) // 2}.",
            param=param, value=origin, expected=f"{-(size // 2)} .. {(size - 1) // 2}",
        )
    return origin


def origins_for(origin, axes, ndim, *, param="origin"):
    """`origin` (scalar or one per filtered axis) as a full-rank list, 0 on other axes."""
    return expand_to_rank(per_axis(origin, len(axes), param=param), axes, ndim, 0)


def sizes_or_footprint(size, footprint, axes, ndim):
    """A box (full-rank sizes) or a full-rank boolean footprint, by scipy's rules."""
    if size is not None and footprint is not None:
        warnings.warn("ignoring size because footprint is set", UserWarning, stacklevel=4)
    if footprint is None:
        if size is None:
            raise NdimageRuntimeError(
                "no footprint provided: give size= or footprint=.",
                param="size", value=None, expected="size or footprint",
            )
        sizes = [_as_size(s) for s in per_axis(size, len(axes), param="size")]
        return expand_to_rank(sizes, axes, ndim, 1), None
    fp = np.asarray(footprint, dtype=bool)
    if not fp.any():
        raise StencilValueError(
            "All-zero footprint is not supported: footprint has no True element.",
            param="footprint", value=fp.shape, expected="at least one True",
        )
    if len(axes) < ndim:
        if fp.ndim != len(axes):
            raise NdimageRuntimeError(
                f"footprint.ndim ({fp.ndim}) must match len(axes) ({len(axes)})",
                param="footprint", value=fp.shape, expected=f"{len(axes)}-D",
            )
        fp = np.expand_dims(fp, tuple(ax for ax in range(ndim) if ax not in axes))
    if fp.ndim != ndim:
        raise NdimageRuntimeError(
            f"footprint array has incorrect shape: footprint.ndim ({fp.ndim}) must match "
            f"the input's ({ndim})",
            param="footprint", value=fp.shape, expected=f"{ndim}-D",
        )
    if fp.all():
        return list(fp.shape), None
    return None, np.ascontiguousarray(fp)


def _as_size(s):
    if not isinstance(s, numbers.Integral) and not (isinstance(s, float) and s == int(s)):
        raise StencilTypeError(
            f"size={s!r} is not an integer.", param="size", value=s, expected="an integer",
        )
    s = int(s)
    if s < 1:
        raise NdimageRuntimeError(
            f"incorrect filter size: size={s}, expected >= 1.",
            param="size", value=s, expected=">= 1",
        )
    return s


def as_float_cval(cval, *, param="cval"):
    """`cval` as a Python float (a complex cval is refused for real computations)."""
    if np.iscomplexobj(cval):
        raise StencilValueError(
            f"Cannot provide a complex-valued cval when the input is real: {param}={cval!r}.",
            param=param, value=cval, expected="a real number",
        )
    try:
        return float(cval)
    except (TypeError, ValueError):
        raise StencilTypeError(
            f"{param}={cval!r} is not a number.",
            param=param, value=cval, expected="a real number",
        ) from None


def as_compute_dtype(compute_dtype, *, param="compute_dtype"):
    """The dtype the linear filters sum in: float64 (scipy's, the default) or float32."""
    try:
        dtype = np.dtype(np.float64 if compute_dtype is None else compute_dtype)
    except TypeError:
        dtype = None
    if dtype is None or dtype not in (np.dtype(np.float64), np.dtype(np.float32)):
        raise StencilValueError(
            f"compute_dtype={compute_dtype!r} is not a float dtype the filters sum in; "
            "expected None or numpy.float64 (scipy's arithmetic) or numpy.float32 (float32 "
            "sums, as OpenCV).",
            param=param, value=compute_dtype, expected="None, numpy.float64 or numpy.float32",
        )
    return dtype.type


def split_complex(func, input, weights, output, cval, **kwargs):
    """A complex correlation as real ones (scipy's rule and order of operations).

    `func(input, weights, output=..., cval=..., **kwargs)` filters real data.
    """
    complex_input = input.dtype.kind == "c"
    complex_weights = weights.dtype.kind == "c"
    if complex_input and complex_weights:
        func(input.real, weights.real, output=output.real, cval=np.real(cval), **kwargs)
        output.real -= func(input.imag, weights.imag, output=None, cval=np.imag(cval), **kwargs)
        func(input.real, weights.imag, output=output.imag, cval=np.real(cval), **kwargs)
        output.imag += func(input.imag, weights.real, output=None, cval=np.imag(cval), **kwargs)
    elif complex_input:
        func(input.real, weights, output=output.real, cval=np.real(cval), **kwargs)
        func(input.imag, weights, output=output.imag, cval=np.imag(cval), **kwargs)
    else:
        as_float_cval(cval)
        func(input, weights.real, output=output.real, cval=cval, **kwargs)
        func(input, weights.imag, output=output.imag, cval=cval, **kwargs)
    return output


def store(result, output):
    """Write float64 `result` into `output` with scipy's C casts."""
    kind = output.dtype.kind
    if kind in "fc":
        output[...] = result
    elif kind == "b":
        # scipy's npy_bool is an unsigned char: the value is truncated, not tested != 0.
        store(result, output.view(np.uint8))
    elif kind == "u":
        # scipy: value > -1 ? (type)value : -(type)(-value), i.e. modular for negatives.
        mag = np.where(result > -1, result, -result)
        with np.errstate(invalid="ignore"):
            wide = mag.astype(np.int64).astype(np.uint64)
        wide = np.where(result > -1, wide, -wide)
        output[...] = wide.astype(output.dtype)
    else:
        with np.errstate(invalid="ignore"):
            output[...] = result.astype(np.int64).astype(output.dtype)
    return output


def overlaps(input, output):
    """Whether writing `output` could change `input` while it is read."""
    return np.may_share_memory(input, output)
