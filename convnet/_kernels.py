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
                # One pass over each output column, writing both rows: the
                # same store count as a pass over windows, with no interleaved
                # stores for LLVM to shuffle (0.089 against 0.098 ms, LeNet's
                # (64, 6, 28, 28), one process).
                for x in range(2 * wo):
                    g = grad[x >> 1]
                    k = one * code[x >> 1]  # codes of any numeric dtype, compared as floats
                    v = one * (x & 1)
                    rest = g * zero
                    top[x] = g if k == v else rest
                    bottom[x] = g if k == v + 2 else rest
