"""Numba kernels of convnet's own loops (not stencils): the max-pooling gradient scatter.

Max pooling's forward pass is a stencil computation (`stencils`); its gradient
routes each window's upstream value to one cell of the window, which is no
stencil (a stencil gathers, this scatters).  As NumPy it is one masked
multiply per tap through strided views (0.26 ms on LeNet's (64, 6, 28, 28),
twice torch's time); as one loop nest it is a single pass.  The loop is
written out for 2x2 windows at stride 2, LeNet's (and most networks')
pooling: with the window size a run-time value the same loop ran 4-5 times
slower (Numba cannot unroll or vectorise the two-long inner loops).
"""

from __future__ import annotations

from numba import njit

__all__ = ["route_to_codes_2x2"]


@njit(cache=True, nogil=True)
def route_to_codes_2x2(dy, codes, dx):
    """dx[n, c, 2i + u, 2j + v] = dy[n, c, i, j] * (codes[n, c, i, j] == 2u + v).

    Cells outside every window (an odd last row or column) are left alone.
    The cells not picked hold ``dy * 0``, as NumPy's ``dy * (codes == k)``
    does: a NaN or infinite dy makes its whole window NaN, a negative one
    leaves -0.0 (the picked cell holds dy itself, ``dy * 1``).
    """
    zero = dx.dtype.type(0)
    samples, channels, ho, wo = dy.shape
    for a in range(samples):
        for b in range(channels):
            for i in range(ho):
                grad = dy[a, b, i]
                code = codes[a, b, i]
                for u in range(2):
                    row = dx[a, b, 2 * i + u]
                    # One pass per output row, its stores in pairs: LLVM vectorises
                    # this as interleaved stores (0.071 ms on LeNet's (64, 6, 28, 28),
                    # against 0.14 ms for one pass over the columns reading
                    # grad[x >> 1], and 0.36 ms writing both rows in one pass).
                    for j in range(wo):
                        g = grad[j]
                        k = code[j]
                        rest = g * zero
                        row[2 * j] = g if k == 2 * u else rest
                        row[2 * j + 1] = g if k == 2 * u + 1 else rest
