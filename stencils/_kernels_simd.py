"""Passes over short runs of points as whole vectors, written in LLVM IR.

LLVM's loop vectoriser enters its vector loop only for runs of at least its
vector width times its unroll (32 float32 points on AVX2): shorter runs, the
rows of 5 to 14 points of LeNet's pooling layers, run scalar, one point at a
time.  These passes take a run of `n` points as vectors of the given width,
the last vector ending at the run's end and overlapping the one before; a
point the two share is computed twice from the same inputs, so it gets the
same bits either way.  The run needs at least one vector of points.

Tier 0 (`stencils._kernels`) calls them on its short rows.  Numba's disk
cache does not notice a change here (numba#1833): changing these asks for a
cleared cache (``NUMBA_CACHE_DIR``).
"""

from __future__ import annotations

from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic

__all__ = ["axpy_wide", "axpy_narrow", "copy_wide", "copy_narrow"]


def _data(context, builder, signature, args, k):
    """The data pointer of the array argument k."""
    return cgutils.create_struct_proxy(signature.args[k])(context, builder, value=args[k]).data


def _ints(context, builder, signature, args, ks):
    return [context.cast(builder, args[k], signature.args[k], types.intp) for k in ks]


def _vector_at(builder, ptr, vector):
    return builder.bitcast(ptr, vector.as_pointer())


def _axpy_intrinsic(bits):
    """``axpy(o, oat, src, first, n, step, w)``: for t < n,
    ``o[oat + t] = o[oat + t] + w * src[first + t * step]``, in vectors of
    `bits` bits, with `step` 1 or 2 and n at least one vector's lanes; with
    step 2 the pass reads one element more, ``src[first + 2 * n - 1]``.
    `o` and `src` are 1-D contiguous arrays of one dtype, `w` a scalar of it."""
    @intrinsic
    def axpy(typingctx, o, oat, src, first, n, step, w):
        lanes = bits // o.dtype.bitwidth
        sig = types.void(o, oat, src, first, n, step, w)

        def codegen(context, builder, signature, args):
            o_ptr, s_ptr = (_data(context, builder, signature, args, k) for k in (0, 2))
            oat, first, n, step = _ints(context, builder, signature, args, (1, 3, 4, 5))
            intp = context.get_value_type(types.intp)
            vector = ir.VectorType(o_ptr.type.pointee, lanes)
            w = builder.insert_element(ir.Constant(vector, ir.Undefined), args[6],
                                       ir.Constant(ir.IntType(32), 0))
            w = builder.shuffle_vector(w, w, ir.Constant(ir.VectorType(ir.IntType(32), lanes),
                                                         [0] * lanes))
            out = builder.gep(o_ptr, [oat])
            source = builder.gep(s_ptr, [first])
            even = ir.Constant(ir.VectorType(ir.IntType(32), lanes), list(range(0, 2 * lanes, 2)))

            def read(t, strided):
                if not strided:
                    return builder.load(_vector_at(builder, builder.gep(source, [t]), vector),
                                        align=1)
                at = builder.gep(source, [builder.add(t, t)])
                low = builder.load(_vector_at(builder, at, vector), align=1)
                high = builder.load(_vector_at(builder, builder.gep(
                    at, [ir.Constant(intp, lanes)]), vector), align=1)
                return builder.shuffle_vector(low, high, even)

            def updated(t, strided):
                target = _vector_at(builder, builder.gep(out, [t]), vector)
                return target, builder.fadd(builder.load(target, align=1),
                                            builder.fmul(w, read(t, strided)))

            def run(strided):
                # The last vector first, from the points as they were: storing
                # it after the others rewrites the shared points with the same bits.
                last_at, last = updated(builder.sub(n, ir.Constant(intp, lanes)), strided)
                whole = builder.sdiv(n, ir.Constant(intp, lanes))
                with cgutils.for_range(builder, whole) as loop:
                    target, value = updated(builder.mul(loop.index, ir.Constant(intp, lanes)),
                                            strided)
                    builder.store(value, target, align=1)
                builder.store(last, last_at, align=1)

            with builder.if_else(builder.icmp_signed("==", step, ir.Constant(intp, 1))) as (
                    contiguous, strided):
                with contiguous:
                    run(False)
                with strided:
                    run(True)
            return context.get_dummy_value()
        return sig, codegen
    return axpy


def _copy_intrinsic(bits):
    """``copy(o, oat, v, vat, n)``: ``o[oat + t] = v[vat + t]`` for t < n, in
    vectors of `bits` bits, n at least one vector's lanes; `o` and `v` 1-D
    contiguous arrays of one dtype that do not overlap."""
    @intrinsic
    def copy(typingctx, o, oat, v, vat, n):
        lanes = bits // o.dtype.bitwidth
        sig = types.void(o, oat, v, vat, n)

        def codegen(context, builder, signature, args):
            o_ptr, v_ptr = (_data(context, builder, signature, args, k) for k in (0, 2))
            oat, vat, n = _ints(context, builder, signature, args, (1, 3, 4))
            intp = context.get_value_type(types.intp)
            vector = ir.VectorType(o_ptr.type.pointee, lanes)
            out, values = builder.gep(o_ptr, [oat]), builder.gep(v_ptr, [vat])

            def move(t):
                value = builder.load(_vector_at(builder, builder.gep(values, [t]), vector),
                                     align=1)
                builder.store(value, _vector_at(builder, builder.gep(out, [t]), vector), align=1)

            whole = builder.sdiv(n, ir.Constant(intp, lanes))
            with cgutils.for_range(builder, whole) as loop:
                move(builder.mul(loop.index, ir.Constant(intp, lanes)))
            move(builder.sub(n, ir.Constant(intp, lanes)))
            return context.get_dummy_value()
        return sig, codegen
    return copy


# 256-bit vectors, and 128-bit ones for runs shorter than those.
axpy_wide, axpy_narrow = _axpy_intrinsic(256), _axpy_intrinsic(128)
copy_wide, copy_narrow = _copy_intrinsic(256), _copy_intrinsic(128)
