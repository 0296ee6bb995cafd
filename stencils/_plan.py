"""The plan: one stencil computation, checked and normalised, as a backend runs it.

The public layer (stencils._windowed) checks every argument, then builds a
`Plan` (`WindowedArray.plan`) and hands it to a backend: stencils._memory for
a NumPy source, stencils._dask for a Dask one.  A backend reads the plan and
nothing else, so a new backend is a module with a ``compute(plan)`` function,
picked by the type of ``plan.source`` in `stencils._windowed._backend`.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

__all__ = ["Plan"]


# A NamedTuple rather than a frozen dataclass: as immutable and as plain, and
# built in a quarter of the time (every compute call builds one).
class Plan(NamedTuple):
    """One stencil computation, ready for a backend.

    Geometry (per axis ``a``): output ``j`` reads the source cells
    ``j * step[a] + lo[a] + k`` for box coordinates ``k`` in
    ``[0, stencil.size[a])``; reads outside the source go through `border`.

    Attributes
    ----------
    source : ndarray or dask array
        C-contiguous and native-endian (a NumPy source), of dtype `dtype`.
    stencil : Stencil
    lo : tuple of int
        Per axis, where output 0's box starts in the source (``-from_origin``).
    step : tuple of int
        Per axis, the stride, clamped to the axis (every index fits in int64).
    border : Border
    dtype : numpy.dtype
        Of the source and of the result.
    shape : tuple of int
        Of the result.
    out : ndarray or None
        Where the caller wants the result (checked: shape and dtype match);
        None for a new array.
    """

    source: object
    stencil: object
    lo: tuple
    step: tuple
    border: object
    dtype: np.dtype
    shape: tuple
    out: object = None
