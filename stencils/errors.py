"""Exceptions raised by `stencils`.

Every error names the argument, the value received and what was expected, and
adds a hint where one fits.  They subclass :class:`ValueError` or
:class:`TypeError`, so code that catches those keeps working; catch
:class:`StencilError` to catch all of them.
"""

from __future__ import annotations

__all__ = [
    "StencilError",
    "StencilValueError",
    "StencilTypeError",
    "BorderError",
    "OffsetOutOfBoundsError",
]


class StencilError(Exception):
    """Base of every error raised for bad input to `stencils`.

    Attributes
    ----------
    param : str or None
        The argument at fault.
    value : object
        The value that was received.
    expected : str or None
        What would have been accepted.
    """

    def __init__(self, message, *, param=None, value=None, expected=None):
        super().__init__(message)
        self.param = param
        self.value = value
        self.expected = expected


class StencilValueError(StencilError, ValueError):
    """An argument has the right type but a value that cannot be used."""


class StencilTypeError(StencilError, TypeError):
    """An argument has a type (or dtype) that cannot be used."""


class BorderError(StencilValueError):
    """Something given as a border is not one."""


class OffsetOutOfBoundsError(StencilValueError):
    """A stencil reads outside the box it declared (massiv's IndexOutOfBoundsException)."""
