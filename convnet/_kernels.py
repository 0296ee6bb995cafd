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

from llvmlite import ir
from numba import njit, types
from numba.extending import intrinsic

__all__ = ["route_to_codes_2x2"]


def _route_block_for(width):
    """An intrinsic ``route_block(g, c, o, at, top, bottom)`` on flat C arrays: for
    ``q < width``, with ``v = g[at + q]`` and ``k = c[at + q]``,
    ``o[top + 2q + s] = v if k == s else v * 0`` and
    ``o[bottom + 2q + s] = v if k == 2 + s else v * 0`` (s = 0, 1).

    One vector load of `width` gradients and codes, each lane duplicated by a
    shuffle, compared with the tap numbers and stored as two vectors of
    ``2 * width`` cells: what LLVM does not find on its own, since a row of
    LeNet's (7 to 14 windows) is too short for its loop vectoriser (the loop
    it vectorised took 0.080 ms on (64, 6, 28, 28), this 0.033 ms, one thread).
    """
    @intrinsic
    def route_block(typingctx, g, c, o, at, top, bottom):
        def codegen(context, builder, signature, args):
            def data(ty, value):
                return context.make_array(ty)(context, builder, value).data

            def load(ty, value):
                vector = ir.VectorType(context.get_value_type(ty.dtype), width)
                pointer = builder.gep(data(ty, value), [args[3]])
                return builder.load(builder.bitcast(pointer, vector.as_pointer()), align=1)

            lanes = ir.VectorType(ir.IntType(32), 2 * width)
            twice = ir.Constant(lanes, [q // 2 for q in range(2 * width)])

            def doubled(vector):
                return builder.shuffle_vector(vector, ir.Constant(vector.type, ir.Undefined),
                                              twice)

            value = doubled(load(g, args[0]))
            code = doubled(load(c, args[1]))
            rest = builder.fmul(value, ir.Constant(value.type, [0.0] * (2 * width)))
            cells = data(o, args[2])
            for first_tap, at in ((0, args[4]), (2, args[5])):
                taps = [first_tap + (q & 1) for q in range(2 * width)]
                if isinstance(c.dtype, types.Float):
                    picked = builder.fcmp_ordered("==", code, ir.Constant(
                        code.type, [float(t) for t in taps]))
                else:
                    picked = builder.icmp_signed("==", code, ir.Constant(code.type, taps))
                pointer = builder.bitcast(builder.gep(cells, [at]), value.type.as_pointer())
                builder.store(builder.select(picked, value, rest), pointer, align=1)
            return context.get_dummy_value()

        if not all(isinstance(a, types.Array) and a.layout == "C" and a.ndim == 1
                   for a in (g, c, o)) or g.dtype != o.dtype:
            return None
        return types.void(g, c, o, at, top, bottom), codegen

    return route_block


_route_block4 = _route_block_for(4)
_route_block8 = _route_block_for(8)


@njit(cache=True, nogil=True)
def route_to_codes_2x2(dy, codes, dx):
    """dx[n, c, 2i + u, 2j + v] = dy[n, c, i, j] * (codes[n, c, i, j] == 2u + v).

    All three arrays C-contiguous, `dx` of `dy`'s dtype.  Cells outside every
    window (an odd last row or column) are left alone.  The cells not picked
    hold ``dy * 0``, as NumPy's ``dy * (codes == k)`` does: a NaN or infinite
    dy makes its whole window NaN, a negative one leaves -0.0 (the picked cell
    holds dy itself, ``dy * 1``).
    """
    ho, wo = dy.shape[2], dy.shape[3]
    height, width = dx.shape[2], dx.shape[3]
    g, c, o = dy.reshape(-1), codes.reshape(-1), dx.reshape(-1)
    for plane in range(dy.shape[0] * dy.shape[1]):
        for i in range(ho):
            at = (plane * ho + i) * wo
            top = (plane * height + 2 * i) * width
            # Blocks of 8 (or 4) windows; a row's last block overlaps the one
            # before it, writing some cells twice with the same values.
            if wo >= 8:
                for j in range(0, wo - 7, 8):
                    _route_block8(g, c, o, at + j, top + 2 * j, top + width + 2 * j)
                if wo % 8:
                    j = wo - 8
                    _route_block8(g, c, o, at + j, top + 2 * j, top + width + 2 * j)
            elif wo >= 4:
                _route_block4(g, c, o, at, top, top + width)
                j = wo - 4
                _route_block4(g, c, o, at + j, top + 2 * j, top + width + 2 * j)
            else:
                _route_windows(g, c, o, at, top, width, wo)


@njit(cache=True, nogil=True)
def _route_windows(g, c, o, at, top, width, count):
    """`route_block`'s cells, one window at a time, for `count` windows."""
    zero = o.dtype.type(0)
    for j in range(count):
        value, code = g[at + j], c[at + j]
        rest = value * zero
        for u in range(2):
            row = top + u * width + 2 * j
            o[row] = value if code == 2 * u else rest
            o[row + 1] = value if code == 2 * u + 1 else rest
