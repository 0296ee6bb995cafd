"""Argument checks shared by `stencils` and `convnet`: ints, arrays, dtypes, strides, `out=`.

One rule per concept, so every public function answers the same input the
same way:

- *int*: a Python or NumPy integer, never a bool (`is_int`);
- *dtype policy* (documented in docs/api.md): float32 stays float32, float64
  stays float64, float16 becomes float32, bool and integers become float64
  (not scipy's integer output with truncation).  Complex, object, string,
  extended-precision and other non-numeric arrays are refused
  (`compute_dtype`);
- *stride*: a step larger than its axis keeps the same single point as a step
  equal to it, so steps are clamped to the axis (`clamp_steps`): any int is
  exact and the kernels' index arithmetic stays small.

`stencils.validation` is the public face of this module (what `convnet`
imports); the names here that it does not list are for `stencils` itself.
"""

from __future__ import annotations

import numpy as np

from .errors import StencilTypeError, StencilValueError

__all__ = ["is_int", "int_tuple", "compute_dtype", "read_array", "as_real_array",
           "as_source_array", "clamp_steps", "check_out", "kernel_target", "prepare_out"]


def is_int(value):
    """True for a Python or NumPy integer; False for bools and everything else.

    Examples
    --------
    >>> import numpy as np
    >>> from stencils.validation import is_int
    >>> is_int(3), is_int(np.int8(3)), is_int(True), is_int(3.0)
    (True, True, False, False)
    """
    # Concrete types, not numbers.Integral: its ABC check is slow on a hot path.
    return isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))


def int_tuple(value, *, param, length=None, minimum=None,
              type_error=StencilTypeError, value_error=StencilValueError):
    """`value`, an int or a sequence of ints, as a tuple of Python ints.

    Parameters
    ----------
    value : int or sequence of int
        An int stands for the same int on every entry.
    param : str
        The argument's name, for the error message.
    length : int, optional
        How many entries the tuple must have (an int is repeated that often);
        any non-empty length when None.
    minimum : int, optional
        The smallest value allowed.
    type_error, value_error : exception classes, optional
        Raised for a value of the wrong type, and for a wrong length or a
        value below `minimum` (another package passes its own subclasses of
        `stencils.errors.StencilError`).

    Returns
    -------
    tuple of int

    Examples
    --------
    >>> from stencils.validation import int_tuple
    >>> int_tuple(2, param="stride", length=2)
    (2, 2)
    >>> int_tuple((1, 3), param="stride", length=2, minimum=1)
    (1, 3)
    >>> int_tuple((1, 0), param="stride", minimum=1)
    Traceback (most recent call last):
    ...
    stencils.errors.StencilValueError: stride=(1, 0) has an entry below 1; every entry must be >= 1.
    """
    if is_int(value):
        items = (int(value),) * (1 if length is None else length)
    else:
        try:
            items = tuple(value) if not isinstance(value, (str, bytes)) else ()
        except TypeError:
            items = ()
        if not items or not all(is_int(v) for v in items):
            count = "a non-empty sequence of" if length is None else f"a sequence of {length}"
            raise type_error(
                f"{param}={value!r} is not an int or {count} ints.",
                param=param, value=value, expected=f"an int or {count} ints",
            )
        items = tuple(int(v) for v in items)
    if length is not None and len(items) != length:
        raise value_error(
            f"{param}={value!r} has {len(items)} entries; expected an int or {length} ints.",
            param=param, value=value, expected=f"an int or {length} ints",
        )
    if minimum is not None and min(items) < minimum:
        raise value_error(
            f"{param}={value!r} has an entry below {minimum}; every entry must be >= {minimum}.",
            param=param, value=value, expected=f"ints >= {minimum}",
        )
    return items


_DTYPE_HINTS = {
    "c": " Complex data: apply the stencil to .real and .imag separately.",
    "O": " Object arrays often come from ragged lists; build a numeric array first.",
    "U": " Strings are not numbers.",
    "S": " Bytes are not numbers.",
}


def compute_dtype(dtype, *, param="array", type_error=StencilTypeError):
    """The dtype values of `dtype` are computed in (the package's one dtype policy).

    Parameters
    ----------
    dtype : dtype_like
    param : str, optional
        The argument's name, for the error message.
    type_error : exception class, optional
        Raised for a dtype that is refused.

    Returns
    -------
    numpy.dtype
        float32 for float16 and float32; float64 for float64, integers and bool.

    Examples
    --------
    >>> import numpy as np
    >>> from stencils.validation import compute_dtype
    >>> compute_dtype(np.float16), compute_dtype(np.uint8), compute_dtype(np.float64)
    (dtype('float32'), dtype('float64'), dtype('float64'))
    >>> compute_dtype(np.complex128, param="x")
    Traceback (most recent call last):
    ...
    stencils.errors.StencilTypeError: x has dtype complex128; expected a real numeric dtype (bool, integer or float). Complex data: apply the stencil to .real and .imag separately.
    """
    dtype = np.dtype(dtype)
    if dtype.kind == "f":
        if dtype.itemsize <= 4:
            return np.dtype(np.float32)
        if dtype.itemsize == 8:
            return np.dtype(np.float64)
        raise type_error(
            f"{param} has dtype {dtype}; extended precision is not supported. "
            "Convert it with .astype(np.float64).",
            param=param, value=dtype, expected="float32 or float64",
        )
    if dtype.kind in "biu":
        return np.dtype(np.float64)
    raise type_error(
        f"{param} has dtype {dtype}; expected a real numeric dtype (bool, integer or float)."
        + _DTYPE_HINTS.get(dtype.kind, ""),
        param=param, value=dtype, expected="bool, integer or float",
    )


def read_array(value, *, param, expected, type_error=StencilTypeError):
    """``np.asarray(value)``, or `type_error` naming `param` when NumPy cannot read it
    (ragged nesting and the like)."""
    if isinstance(value, np.ndarray):
        return value
    try:
        return np.asarray(value)
    except Exception as exc:  # noqa: BLE001 - NumPy raises several kinds here
        raise type_error(
            f"{param} could not be read as an array ({exc}).",
            param=param, value=type(value).__name__, expected=expected,
        ) from None


def as_real_array(value, *, param="array", ndim=None, layout=None,
                  type_error=StencilTypeError, value_error=StencilValueError):
    """`value` as a NumPy array of its compute dtype (see `compute_dtype`).

    The array is not copied when it already has that dtype; its memory
    layout is kept.

    Parameters
    ----------
    value : array_like
    param : str, optional
        The argument's name, for the error message.
    ndim : int, optional
        The number of axes it must have.
    layout : str, optional
        What the axes are, added to the message of a wrong `ndim`
        (e.g. ``"(N, C, H, W)"``).
    type_error, value_error : exception classes, optional
        Raised for something that is not a real array, and for a wrong `ndim`.

    Returns
    -------
    ndarray

    Examples
    --------
    >>> import numpy as np
    >>> from stencils.validation import as_real_array
    >>> as_real_array([1, 2], param="x")
    array([1., 2.])
    >>> as_real_array(np.ones((2, 2)), param="x", ndim=4, layout="(N, C, H, W)")
    Traceback (most recent call last):
    ...
    stencils.errors.StencilValueError: x has 2 dimension(s) (shape (2, 2)); expected 4: (N, C, H, W)
    """
    array = read_array(value, param=param, expected="an array of real numbers",
                       type_error=type_error)
    dtype = compute_dtype(array.dtype, param=param, type_error=type_error)
    if ndim is not None and array.ndim != ndim:
        raise value_error(
            f"{param} has {array.ndim} dimension(s) (shape {array.shape}); expected {ndim}"
            + (f": {layout}" if layout else ""),
            param=param, value=array.shape, expected=layout or f"{ndim} dimensions",
        )
    return array if array.dtype == dtype else array.astype(dtype)


def as_source_array(array, *, param="array"):
    """`array` as a C-contiguous, native-endian array of its compute dtype (>= 1-D)."""
    a = as_real_array(array, param=param)
    if a.ndim == 0:
        raise StencilValueError(
            f"{param} is 0-D (a scalar, {a!r}); a stencil needs at least one axis. "
            "Use np.atleast_1d for a single value.",
            param=param, value=a.shape, expected="at least 1-D",
        )
    return np.ascontiguousarray(a)


def clamp_steps(steps, extents):
    """Each step clamped to ``max(extent, 1)``: the package's one stride rule.

    A strided computation keeps the points ``0, s, 2s, ...`` of an axis of
    `extent` points; any step ``s >= extent`` keeps only point 0, the same as
    ``s = extent``.  Clamping makes every int an exact stride and keeps the
    kernels' index arithmetic (``j * s + ...``) far inside int64.

    Parameters
    ----------
    steps : sequence of int
        Steps >= 1, one per axis.
    extents : sequence of int
        Per axis, how many points the stride-1 computation has.

    Returns
    -------
    tuple of int

    Examples
    --------
    >>> from stencils.validation import clamp_steps
    >>> clamp_steps((2, 10**30), (5, 5))
    (2, 5)
    """
    return tuple(s if s <= m else max(m, 1) for s, m in zip(steps, extents))


def check_out(out, shape, dtype, *, param="out"):
    """Refuse an `out` that cannot hold a result of `shape` and `dtype`."""
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


def kernel_target(out, shape, dtype, source):
    """(array the kernel writes, array to copy it into or None) for a checked `out`."""
    # A stencil reads neighbours it may already have overwritten, and the
    # kernels want a contiguous native-endian target: otherwise go through a temporary.
    if out is None:
        return np.empty(shape, dtype=dtype), None
    if (not out.flags.c_contiguous or not out.dtype.isnative
            or np.may_share_memory(out, source)):
        return np.empty(shape, dtype=dtype), out
    return out, None


def prepare_out(out, shape, dtype, source, *, param="out"):
    """Check `out`; return (array the kernel writes, array to copy it into or None)."""
    if out is not None:
        check_out(out, shape, dtype, param=param)
    return kernel_target(out, shape, dtype, source)
