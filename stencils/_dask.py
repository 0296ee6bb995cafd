"""Dask backend: stencils over chunked arrays with dask.array.map_overlap. (Being written.)"""

from __future__ import annotations

__all__ = ["is_dask_array", "as_dask_source", "compute"]


def is_dask_array(x):
    """True for a dask array, without importing dask."""
    return type(x).__module__.split(".")[0] == "dask" and hasattr(x, "map_overlap")


def as_dask_source(array, *, param="array"):
    """The dask array with the dtype policy of stencils._validate applied (lazily)."""
    raise NotImplementedError


def compute(windowed, step, out):
    """A lazy dask array of ``windowed`` computed at every `step`-th point."""
    raise NotImplementedError
