"""Argument checks shared by the public functions: arrays, dtypes and `out=`.

The dtype policy (documented in docs/api.md): float32 stays float32, float64
stays float64, float16 becomes float32, bool and integers become float64 (not
scipy's integer output with truncation).  Complex, object, string and other
non-numeric arrays are refused.
"""

from __future__ import annotations

import numpy as np

from .errors import StencilTypeError, StencilValueError

__all__ = ["compute_dtype", "as_source_array", "prepare_out"]


def compute_dtype(dtype, *, param="array"):
    """The dtype a stencil over `dtype` values is computed in."""
    dtype = np.dtype(dtype)
    if dtype.kind == "f":
        if dtype.itemsize <= 4:
            return np.dtype(np.float32)
        if dtype.itemsize == 8:
            return np.dtype(np.float64)
        raise StencilTypeError(
            f"{param} has dtype {dtype}; extended precision is not supported. "
            "Convert it with .astype(np.float64).",
            param=param, value=dtype, expected="float32 or float64",
        )
    if dtype.kind in "biu":
        return np.dtype(np.float64)
    hint = {
        "c": " Complex data: apply the stencil to .real and .imag separately.",
        "O": " Object arrays often come from ragged lists; build a numeric array first.",
        "U": " Strings are not numbers.",
        "S": " Bytes are not numbers.",
    }.get(dtype.kind, "")
    raise StencilTypeError(
        f"{param} has dtype {dtype}; expected a real numeric dtype (bool, integer or float)."
        + hint,
        param=param, value=dtype, expected="bool, integer or float",
    )


def as_source_array(array, *, param="array"):
    """`array` as a C-contiguous, native-endian array of its compute dtype (>= 1-D)."""
    if isinstance(array, np.ndarray):
        a = array
    else:
        try:
            a = np.asarray(array)
        except Exception as exc:  # ragged nesting and the like
            raise StencilTypeError(
                f"{param} could not be read as an array ({exc}).",
                param=param, value=type(array).__name__, expected="an array of real numbers",
            ) from None
    dtype = compute_dtype(a.dtype, param=param)
    if a.ndim == 0:
        raise StencilValueError(
            f"{param} is 0-D (a scalar, {a!r}); a stencil needs at least one axis. "
            "Use np.atleast_1d for a single value.",
            param=param, value=a.shape, expected="at least 1-D",
        )
    return np.ascontiguousarray(a, dtype=dtype)


def prepare_out(out, shape, dtype, source, *, param="out"):
    """Check `out`; return (array the kernel writes, array to copy it into or None)."""
    if out is None:
        return np.empty(shape, dtype=dtype), None
    if not isinstance(out, np.ndarray):
        raise StencilTypeError(
            f"{param} must be a NumPy array, got {type(out).__name__}.",
            param=param, value=type(out).__name__, expected="numpy.ndarray",
        )
    if out.shape != tuple(shape):
        raise StencilValueError(
            f"{param} has shape {out.shape} but the result has shape {tuple(shape)}.",
            param=param, value=out.shape, expected=str(tuple(shape)),
        )
    # A byte-swapped `out` of the right type is accepted: it is written through a temporary.
    if out.dtype.newbyteorder("=") != dtype:
        raise StencilTypeError(
            f"{param} has dtype {out.dtype} but the result is computed in {dtype} "
            f"(float32 input gives float32, other numeric input float64).",
            param=param, value=out.dtype, expected=str(dtype),
        )
    if not out.flags.writeable:
        raise StencilValueError(
            f"{param} is read-only; pass a writeable array.",
            param=param, value="read-only", expected="a writeable array",
        )
    # A stencil reads neighbours it may already have overwritten, and the
    # kernels want a contiguous native-endian target: otherwise go through a temporary.
    if (not out.flags.c_contiguous or not out.dtype.isnative
            or np.may_share_memory(out, source)):
        return np.empty(shape, dtype=dtype), out
    return out, None
