"""Padding (how far the output reaches past the source) and Stride (which points are kept)."""

from __future__ import annotations

from ._border import Edge, as_border
from ._stencil import check_stencil
from ._validate import int_tuple, is_int
from .errors import StencilTypeError, StencilValueError

__all__ = ["Padding", "no_padding", "same_padding", "Stride"]


def _int_or_tuple(value, param):
    """An int stays an int (it fits any rank); anything else becomes a tuple of ints."""
    return int(value) if is_int(value) else int_tuple(value, param=param)


def broadcast(value, ndim, param):
    """`value` (an int or a tuple) as a tuple of length `ndim`."""
    if isinstance(value, int):
        return (value,) * ndim
    if len(value) != ndim:
        raise StencilValueError(
            f"{param}={value!r} has {len(value)} entr{'y' if len(value) == 1 else 'ies'} but the "
            f"array has {ndim} ax{'is' if ndim == 1 else 'es'}; give one per axis or a single int.",
            param=param, value=value, expected=f"an int or {ndim} ints",
        )
    return value


class Padding:
    """Virtual cells added around the source, and the border that fills them.

    massiv's ``Padding {paddingFromOrigin, paddingFromBottom, paddingWithElement}``.
    Applying a stencil of size ``s`` with this padding to an axis of length ``n``
    gives ``max(0, from_origin + from_bottom + n - (s - 1))`` outputs.

    Parameters
    ----------
    from_origin : int or tuple of int
        Cells added before index 0 on each axis (an int: the same on every axis).
    from_bottom : int or tuple of int
        Cells added after the last index on each axis.
    border : Border or str, optional
        What the added cells read; a massiv `Border` or a scipy mode name.
        Default `Edge` (unused when nothing is added).

    Examples
    --------
    >>> import numpy as np, stencils as st
    >>> p = st.Padding((1, 2), (3, 4), st.Fill(0))
    >>> p
    Padding(from_origin=(1, 2), from_bottom=(3, 4), border=Fill(0.0))
    >>> st.compute(st.apply_stencil(st.Padding(2, 1, st.Fill(0)), st.sum_stencil(3),
    ...                             np.arange(1.0, 6.0)))
    array([ 1.,  3.,  6.,  9., 12.,  9.])
    """

    __slots__ = ("_from_origin", "_from_bottom", "_border")

    def __init__(self, from_origin, from_bottom, border=Edge):
        lo = _int_or_tuple(from_origin, "from_origin")
        hi = _int_or_tuple(from_bottom, "from_bottom")
        for name, v in (("from_origin", lo), ("from_bottom", hi)):
            vals = (v,) if isinstance(v, int) else v
            if any(x < 0 for x in vals):
                raise StencilValueError(
                    f"{name}={from_origin if name == 'from_origin' else from_bottom!r}: padding "
                    "widths must be >= 0 (to crop, slice the result instead).",
                    param=name, value=v, expected="ints >= 0",
                )
        if not isinstance(lo, int) and not isinstance(hi, int) and len(lo) != len(hi):
            raise StencilValueError(
                f"from_origin={lo} and from_bottom={hi} have different lengths; give one width "
                "per axis in both.",
                param="from_bottom", value=hi, expected=f"{len(lo)} ints",
            )
        self._from_origin = lo
        self._from_bottom = hi
        self._border = as_border(border)

    from_origin = property(lambda self: self._from_origin)
    from_bottom = property(lambda self: self._from_bottom)
    border = property(lambda self: self._border)

    def widths(self, ndim):
        """``(from_origin, from_bottom)`` as tuples of `ndim` ints."""
        return (broadcast(self._from_origin, ndim, "from_origin"),
                broadcast(self._from_bottom, ndim, "from_bottom"))

    def __repr__(self):
        return (f"Padding(from_origin={self._from_origin}, from_bottom={self._from_bottom}, "
                f"border={self._border!r})")

    def __eq__(self, other):
        if not isinstance(other, Padding):
            return NotImplemented
        return (self._from_origin, self._from_bottom, self._border) == (
            other._from_origin, other._from_bottom, other._border)

    def __hash__(self):
        return hash((self._from_origin, self._from_bottom, self._border))

    def __reduce__(self):
        return (Padding, (self._from_origin, self._from_bottom, self._border))


no_padding = Padding(0, 0, Edge)
"""No padding (massiv's ``noPadding = Padding 0 0 Edge``): numpy's 'valid' mode."""


def same_padding(stencil, border):
    """The padding that keeps the source's size (massiv's ``samePadding``).

    ``Padding(center, size - center - 1, border)``; `map_stencil` is
    `apply_stencil` with this padding.

    Examples
    --------
    >>> import stencils as st
    >>> st.same_padding(st.make_correlation_stencil_from_kernel([1, 2, 3, 4]), st.Edge)
    Padding(from_origin=(2,), from_bottom=(1,), border=Edge)
    """
    check_stencil(stencil)
    return Padding(stencil.center,
                   tuple(s - c - 1 for s, c in zip(stencil.size, stencil.center)), border)


class Stride:
    """Which points a strided computation keeps: ``0, s, 2s, ...`` on each axis.

    ``Stride(2)`` takes step 2 on every axis, ``Stride(2, 3)`` one step per
    axis.  Steps below 1 become 1, as massiv's ``Stride`` pattern does.

    Examples
    --------
    >>> import stencils as st
    >>> st.Stride(2, 3)
    Stride(2, 3)
    >>> st.Stride(0, -3)
    Stride(1, 1)
    """

    __slots__ = ("_steps",)

    def __init__(self, *steps):
        if len(steps) == 1:
            steps = steps[0]
            if isinstance(steps, Stride):
                steps = steps.steps
        value = _int_or_tuple(steps, "stride")
        self._steps = max(1, value) if isinstance(value, int) else tuple(max(1, v) for v in value)

    @property
    def steps(self):
        """The step: an int (every axis) or a tuple (one per axis)."""
        return self._steps

    def per_axis(self, ndim):
        """The steps as a tuple of `ndim` ints."""
        return broadcast(self._steps, ndim, "stride")

    def __repr__(self):
        steps = (self._steps,) if isinstance(self._steps, int) else self._steps
        return f"Stride({', '.join(map(str, steps))})"

    def __eq__(self, other):
        if not isinstance(other, Stride):
            return NotImplemented
        return self._steps == other._steps

    def __hash__(self):
        return hash(self._steps)

    def __reduce__(self):
        steps = (self._steps,) if isinstance(self._steps, int) else self._steps
        return (Stride, steps)


def as_stride(stride, param="stride"):
    """A `Stride` from a Stride, an int or a tuple of ints."""
    if isinstance(stride, Stride):
        return stride
    if not (is_int(stride) or isinstance(stride, (tuple, list))):
        raise StencilTypeError(
            f"{param}={stride!r} is not a stride; expected a Stride, an int or a tuple of ints.",
            param=param, value=stride, expected="Stride, int or tuple of ints",
        )
    return Stride(stride) if is_int(stride) else Stride(*stride)



def as_steps(stride, ndim, param="stride"):
    """The steps of `stride` (a Stride, an int or a tuple of ints) on `ndim` axes."""
    if is_int(stride):  # the common call, without building a Stride
        return (max(1, int(stride)),) * ndim
    return as_stride(stride, param).per_axis(ndim)
