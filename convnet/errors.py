"""Exceptions raised by `convnet` for bad input, data and checkpoints.

Each names the argument or file at fault, the value received and what was
expected.  They subclass :class:`ValueError` or :class:`TypeError`, so code
that catches those keeps working.
"""

from __future__ import annotations

from stencils.errors import StencilError

__all__ = ["ConvNetError", "ConvNetValueError", "ConvNetTypeError", "DataFormatError",
           "CheckpointError", "TrainingDivergedError"]


class ConvNetError(StencilError):
    """Base of every error raised for bad input to `convnet`.

    A `stencils.errors.StencilError`, so one ``except`` clause catches bad
    input to either package; it carries the same ``param``, ``value`` and
    ``expected`` attributes.
    """


class ConvNetValueError(ConvNetError, ValueError):
    """An argument has the right type but a value that cannot be used."""


class ConvNetTypeError(ConvNetError, TypeError):
    """An argument has a type (or dtype) that cannot be used."""


class DataFormatError(ConvNetValueError):
    """A data file is missing, truncated, corrupted or not in the IDX format."""


class CheckpointError(ConvNetValueError):
    """A checkpoint file is missing, truncated, corrupted or from something else."""


class TrainingDivergedError(ConvNetError, ArithmeticError):
    """The training loss became NaN or infinite."""
