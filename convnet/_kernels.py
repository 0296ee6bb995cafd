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
    The product (not a select) keeps NumPy's ``dy * (codes == k)``: a NaN or
    infinite dy makes its whole window NaN, and -0.0 keeps its sign.
    """
    one = dx.dtype.type(1)
    zero = dx.dtype.type(0)
    samples, channels, ho, wo = dy.shape
    for a in range(samples):
        for b in range(channels):
            for i in range(ho):
                grad = dy[a, b, i]
                code = codes[a, b, i]
                top = dx[a, b, 2 * i]
                bottom = dx[a, b, 2 * i + 1]
                for j in range(wo):
                    g = grad[j]
                    k = one * code[j]  # a float compare vectorises, an int64 one did not
                    top[2 * j] = g * (one if k == 0 else zero)
                    top[2 * j + 1] = g * (one if k == 1 else zero)
                    bottom[2 * j] = g * (one if k == 2 else zero)
                    bottom[2 * j + 1] = g * (one if k == 3 else zero)
