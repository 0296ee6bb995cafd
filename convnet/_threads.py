"""BLAS on the calling thread only, while a network runs a pass.

A LeNet step is many small products: NumPy's ``@`` in the linear layers and
the BLAS calls inside the stencil core's convolution kernels, which already run
on Numba's threads.  OpenBLAS would start its own threads for each of them, and
those threads then compete with Numba's for the same cores; on a shared
machine a step measured 194 ms instead of 29 ms that way (2 threads, other
processes busy).  `one_blas_thread` limits every loaded BLAS to one thread for
the duration of a pass (threadpoolctl; without it, nothing changes).
"""

from __future__ import annotations

import contextlib

try:
    from threadpoolctl import ThreadpoolController
except ImportError:  # optional: the convnet extra installs it
    ThreadpoolController = None

__all__ = ["one_blas_thread"]

_BLAS = []  # [threadpoolctl selection of the loaded BLAS libraries], filled at first use


def one_blas_thread():
    """A context manager under which BLAS calls run on the calling thread."""
    if ThreadpoolController is None:
        return contextlib.nullcontext()
    if not _BLAS:
        # SciPy's BLAS (what Numba's np.dot calls) is loaded by now only if imported.
        import scipy.linalg.cython_blas  # noqa: F401

        _BLAS.append(ThreadpoolController().select(user_api="blas"))
    return _BLAS[0].limit(limits=1)
