"""In-memory backend: a `Plan` over a NumPy source, computed by the engine.

The Dask backend (stencils._dask) computes the same plans over chunked
sources; both read only the plan.
"""

from __future__ import annotations

from . import _engine
from ._validate import kernel_target

__all__ = ["compute"]


def compute(plan, *, parallel=None):
    """The result of `plan` (a `stencils._plan.Plan` with a NumPy source), in ``plan.out``
    when given.  `parallel`: None lets the engine choose by the amount of work."""
    target, copy_to = kernel_target(plan.out, plan.shape, plan.dtype, plan.source)
    _engine.run(plan.stencil, plan.source, target, plan.lo, plan.step, plan.border,
                parallel=parallel)
    if copy_to is None:
        return target
    copy_to[...] = target
    return copy_to
