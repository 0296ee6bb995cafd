"""`warmup`: compile the kernels most programs need, ahead of their first use."""

from __future__ import annotations

import numpy as np

from . import _engine

__all__ = ["warmup"]


def warmup(dtypes=("float32", "float64"), *, ndims=(1, 2, 3, 4)):
    """Compile the common kernels now instead of at first use.

    Compiles the interpreter (which serves every stencil on small arrays) for
    each dtype, serial and parallel, and the generated kernels of the 3x3 and
    5x5 correlations used by `correlate`.  With the disk cache (on unless
    ``STENCILS_NUMBA_CACHE=0``) this costs seconds once per machine and a
    fraction of a second per process after that.

    Parameters
    ----------
    dtypes : sequence of dtype, optional
    ndims : sequence of int, optional
        Ranks to exercise (the interpreter's code is shared by every rank).

    Examples
    --------
    >>> import stencils as st
    >>> st.warmup(("float64",), ndims=(1,))
    """
    from ._stencil import make_correlation_stencil_from_kernel, sum_stencil
    from ._windowed import map_stencil

    for dtype in dtypes:
        dtype = np.dtype(dtype)
        for ndim in ndims:
            a = np.zeros((4,) * ndim, dtype=dtype)
            w = map_stencil("reflect", sum_stencil((2,) * ndim), a)
            for parallel in (False, True):
                w._run((1,) * ndim, None, parallel=parallel)
        for size in (3, 5):
            s = make_correlation_stencil_from_kernel(np.ones((size, size)))
            _engine.compile_stencil(s, dtype)
