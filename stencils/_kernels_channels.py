"""Numba kernels of `stencils.correlate_channels` (multi-channel correlation).

They see only clean arguments: C-contiguous float32 or float64 arrays of one
dtype (or, where a kernel says so, the channel-major view of one), plain ints,
and an output allocated by the caller (Numba's allocator is slow for large
arrays).  Nothing here validates; `stencils._channels` does that and chooses
the algorithm.  Every kernel reads the zero padding virtually (out-of-range
reads are zeros or copies from a small zero buffer), so no padded copy of the
input is made.

Seven algorithms compute ``res[n, o, i, j] = sum over c, u, v of
xp[n, c, i*sh + u, j*sw + v] * w[o, c, u, v]``, four of them with one BLAS
product per sample (per sample and channel for positions), the bias (when
there is one) added to each finished sample:

- *strided* (`strided_samples`): im2col, any stride; each
  (C, KH, KW) window is copied into a column buffer, multiplied by the
  (O, C*KH*KW) weights;
- *rows* (`rows_samples`), stride 1: the flat im2col; each
  image is padded once into a buffer of row width Wp, and a tap's window
  column over all output rows is one contiguous run of it (Wp - Wo spare
  columns per row are computed and dropped);
- *positions* (`positions_block`), stride 1, output smaller than the kernel (the
  weight gradient): the roles swap; rows of the buffer are output positions,
  each one contiguous run of KH*Wp padded pixels, and each kernel is copied
  into a zero row of width Wp so the spare columns add nothing.  It also
  takes a range of input channels, for partial sums when the batch is smaller
  than the thread count;
- *direct* (`direct_samples`), stride 1: no buffer and no BLAS; blocks
  of output pixels (2 rows x 5 columns), each a vector of output channels,
  are summed in registers over all (c, u, v) taps by a kernel written in
  LLVM IR and stored into the output (many taps a sum, as LeNet's conv2 and
  its weight gradient have);
- *scatter* (`scatter_samples`), stride 1: col2im; the
  transposed weights multiply the input in place, and each product row is
  added into the output at its tap's offset, one image row at a time.  Wins
  when the input is mostly padding (the input gradient of a convolution).
- *columns* (`columns_samples`), stride 1: direct's roles swapped for few
  output channels; each vector holds output columns, each weight is
  broadcast, and kernel rows that meet only padding are skipped;
- *batch* (`batch_groups`), stride 1: each vector holds one pixel of
  several samples (each group of samples transposed to (C, H, W, lanes)),
  and only the taps whose pixel is in the image are summed: no lane is spent
  on padding (the input gradient of a small convolution over a batch).

Each kernel computes a range of samples (direct, columns and batch: the
samples or groups it claims from a shared counter) and releases the GIL: a
serial call runs it over the whole batch, a parallel one over ranges on the
engine's helper threads (direct, columns and batch: once per thread, on the
engine's team of spinning helpers through a C entry point, `TEAM_ENTRIES`),
with no `prange` (a prange waits for a worker the OS does not run).  Helpers
live in this file so the disk cache notices when they change (numba#1833); the
two intrinsics it takes from `_kernels_team` (`pointer_at`, `claim`) are not
noticed: changing them asks for a cleared numba cache.
"""

from __future__ import annotations

import numpy as np
from llvmlite import ir
from llvmlite.binding import get_host_cpu_features
from numba import carray, config, njit, types
from numba.core import cgutils
from numba.extending import intrinsic, register_jitable

from ._kernels import CACHE
from ._kernels_team import claim, pointer_at

__all__ = ["add_bias", "im2col", "strided_samples", "rows_samples", "positions_block",
           "scatter_samples", "direct_samples", "channels_last", "TEAM_ENTRIES",
           "DIRECT_COLUMNS", "direct_lanes", "direct_rows",
           "columns_samples", "COLUMNS_OUTS", "columns_lanes", "batch_groups"]


@njit(cache=CACHE, nogil=True)
def im2col(image, cols, kh, kw, pad_top, pad_left, sh, sw, ho, wo):
    """Fill ``cols[(c, u, v), (i, j)] = padded(image)[c, i*sh + u, j*sw + v]``."""
    channels, height, width = image.shape
    zero = cols.dtype.type(0)
    for c in range(channels):
        for u in range(kh):
            for v in range(kw):
                row = (c * kh + u) * kw + v
                # Output columns j whose input column j*sw + v - pad_left is inside.
                first = pad_left - v
                # min(wo, ...): with wide left padding a tap can miss the image
                # for every output column, and j0 would run past the row.
                j0 = 0 if first <= 0 else min(wo, (first + sw - 1) // sw)
                last = width - 1 - v + pad_left
                j1 = 0 if last < 0 else min(wo, last // sw + 1)
                if j1 < j0:
                    j1 = j0
                for i in range(ho):
                    y = i * sh + u - pad_top
                    base = i * wo
                    if y < 0 or y >= height:
                        for j in range(wo):
                            cols[row, base + j] = zero
                        continue
                    for j in range(j0):
                        cols[row, base + j] = zero
                    if sw == 1:
                        x0 = j0 + v - pad_left
                        for j in range(j1 - j0):
                            cols[row, base + j0 + j] = image[c, y, x0 + j]
                    else:
                        for j in range(j0, j1):
                            cols[row, base + j] = image[c, y, j * sw + v - pad_left]
                    for j in range(j1, wo):
                        cols[row, base + j] = zero


@njit(cache=CACHE, nogil=True)
def add_bias(res, bias):
    """res[o, ...] += bias[o] for an output sample (O, ...); nothing for an empty bias."""
    if bias.shape[0] == 0:
        return
    flat = res.reshape(bias.shape[0], -1)
    for o in range(flat.shape[0]):
        b = bias[o]
        row = flat[o]
        for k in range(np.uintp(row.shape[0])):
            row[k] += b


@njit(cache=CACHE, nogil=True)
def strided_samples(x, w2, bias, out, start, stop, kh, kw, pad_top, pad_left, sh, sw, ho, wo):
    """out[n] = w2 @ im2col(x[n]) + bias for n in [start, stop); out is (N, O, Ho*Wo)."""
    cols = np.empty((w2.shape[1], ho * wo), dtype=out.dtype)
    for n in range(start, stop):
        im2col(x[n], cols, kh, kw, pad_top, pad_left, sh, sw, ho, wo)
        np.dot(w2, cols, out[n])
        add_bias(out[n], bias)


# Rows: long contiguous copies instead of Wo-element pieces, several times faster
# for LeNet's 8- to 28-wide rows than im2col.


@njit(cache=CACHE, nogil=True)
def _pad_into(image, buffer, pad_top, pad_left, row_width):
    """Copy image (H, W) into the flat buffer at (pad_top, pad_left), row stride row_width."""
    height, width = image.shape
    for y in range(height):
        base = np.uintp((y + pad_top) * row_width + pad_left)
        src = image[y]
        for x in range(np.uintp(width)):
            buffer[base + x] = src[x]


@njit(cache=CACHE, nogil=True)
def rows_samples(x, w2, bias, out, start, stop, kh, kw, pad_top, pad_left, hp, wp):
    """out[n] = w2 @ flat_im2col(x[n]) + bias; out is (N, O, Ho, Wo), w2 is (O, C*KH*KW)."""
    channels = x.shape[1]
    outs, ho, wo = out.shape[1], out.shape[2], out.shape[3]
    plane = (hp + 1) * wp  # one spare zero row: the last run overruns by kw - 1
    span = ho * wp
    padded = np.zeros(channels * plane, dtype=out.dtype)
    cols = np.empty((channels * kh * kw, span), dtype=out.dtype)
    product = np.empty((outs, span), dtype=out.dtype)
    for n in range(start, stop):
        for c in range(channels):
            _pad_into(x[n, c], padded[c * plane:(c + 1) * plane], pad_top, pad_left, wp)
            for u in range(kh):
                for v in range(kw):
                    dst = cols[(c * kh + u) * kw + v]
                    src = np.uintp(c * plane + u * wp + v)
                    for k in range(np.uintp(span)):
                        dst[k] = padded[src + k]
        np.dot(w2, cols, product)
        for o in range(outs):
            row = product[o]
            for i in range(ho):
                dst = out[n, o, i]
                src = np.uintp(i * wp)
                for j in range(np.uintp(wo)):
                    dst[j] = row[src + j]
        add_bias(out[n], bias)


# Positions: either array may come channel-major (a transposed view of a
# C-contiguous array, as x.transpose(1, 0, 2, 3) is in the weight gradient) and is
# then read in place instead of through a transposed copy.


@njit(cache=CACHE, nogil=True)
def positions_block(x, swap_x, w, swap_w, acc, n0, n1, c0, c1, pad_top, pad_left, hp, wp):
    """acc[n] = sum over c in [c0, c1) of pad(w[:, c]) @ cols(x[n, c]).T for n in [n0, n1).

    x is (N, C, H, W), or (C, N, H, W) when swap_x; w is (O, C, KH, KW), or
    (C, O, KH, KW) when swap_w; acc is (N, O, Ho, Wo) and is overwritten.
    """
    outs, ho, wo = acc.shape[1], acc.shape[2], acc.shape[3]
    kh, kw = w.shape[2], w.shape[3]
    span = kh * wp
    padded = np.zeros((hp + 1) * wp, dtype=acc.dtype)
    cols = np.empty((ho * wo, span), dtype=acc.dtype)
    product = np.empty((outs, ho * wo), dtype=acc.dtype)
    kernels = np.zeros((outs, span), dtype=acc.dtype)
    for n in range(n0, n1):
        acc[n] = 0
    for c in range(c0, c1):
        for o in range(outs):
            kernel = w[c, o] if swap_w else w[o, c]
            row = kernels[o]
            for u in range(kh):
                src = kernel[u]
                base = np.uintp(u * wp)
                for v in range(np.uintp(kw)):
                    row[base + v] = src[v]
        for n in range(n0, n1):
            _pad_into(x[c, n] if swap_x else x[n, c], padded, pad_top, pad_left, wp)
            for u in range(ho):
                for v in range(wo):
                    dst = cols[u * wo + v]
                    src = np.uintp(u * wp + v)
                    for k in range(np.uintp(span)):
                        dst[k] = padded[src + k]
            np.dot(kernels, cols.T, product)
            res = acc[n].reshape(outs, ho * wo)
            res += product


@njit(cache=CACHE, nogil=True)
def scatter_samples(x, wt, bias, out, start, stop, kh, kw, pad_top, pad_left):
    """Stride-1 correlation as col2im: out[n] = crop(col2im(wt @ x[n])) + bias.

    x is (N, C, H, W) C-contiguous, wt is (O*KH*KW, C) with rows ordered
    (o, u, v), out is (N, O, Ho, Wo).  Input pixel (y, x) meets tap (u, v) at
    full-correlation position (y + KH-1-u, x + KW-1-v); output (i, j) is full
    position (i + KH-1-pad_top, j + KW-1-pad_left).  The product reads x[n]
    in place (no padded copy, no spare columns) and each of its rows is added
    into the full correlation, of row width Wq = W + KW - 1, one image row at
    a time.
    """
    channels, height, width = x.shape[1], x.shape[2], x.shape[3]
    outs, ho, wo = out.shape[1], out.shape[2], out.shape[3]
    wq = width + kw - 1
    hq = height + kh - 1
    product = np.empty((wt.shape[0], height * width), dtype=out.dtype)
    full = np.empty((outs, hq * wq), dtype=out.dtype)
    for n in range(start, stop):
        np.dot(wt, x[n].reshape(channels, height * width), product)
        full[:] = 0
        for o in range(outs):
            acc = full[o]
            for u in range(kh):
                for v in range(kw):
                    src = product[(o * kh + u) * kw + v]
                    for y in range(height):
                        dst = np.uintp((y + kh - 1 - u) * wq + (kw - 1 - v))
                        first = np.uintp(y * width)
                        for k in range(np.uintp(width)):
                            acc[dst + k] += src[first + k]
            # Output columns j whose full position j + kw-1-pad_left is in [0, wq).
            shift = kw - 1 - pad_left
            j0 = min(wo, max(0, -shift))
            j1 = max(j0, min(wo, wq - shift))
            for i in range(ho):
                yy = i + kh - 1 - pad_top
                res = out[n, o, i]
                res[:] = 0
                if 0 <= yy < hq:
                    base = np.uintp(yy * wq + j0 + shift)
                    for j in range(np.uintp(j1 - j0)):
                        res[j0 + j] = acc[base + j]
        add_bias(out[n], bias)


# Direct: no im2col buffer and no BLAS.  Each call of `_mac_wide` /
# `_mac_narrow` keeps a block of DIRECT_ROWS x DIRECT_COLUMNS output pixels,
# each a vector of output channels, in registers, starts them from the bias,
# runs the whole sum over (c, u, v) on them and stores them into the (O, Ho, Wo)
# output sample: per tap one vector of weights (laid out (C, KH, KW, O),
# contiguous in O) is loaded and multiplied with a broadcast input value per
# pixel, a separate multiply and add per term (no FMA).  Numba has no vector
# type, so the two are written in LLVM IR; LLVM keeps the accumulators in
# registers (they live in allocas that it promotes).

# The output rows and columns of a block: 2 x 5 shares each weight vector
# between 10 accumulators, 10 vector registers where a vector is one register.
# A 512-bit vector takes two of AVX2's sixteen 256-bit registers: there a block
# of wide vectors is 1 x 5, whose sums stay in registers (LeNet's conv2 forward
# on one thread of a Zen 3 core: 0.61 ms against 0.78 ms for 2 x 5, medians of
# 7 rounds).  Rows and columns of the last block overlap the one before it
# where the output does not divide into blocks; the shared pixels are computed
# twice, the same sums.
DIRECT_ROWS = 2
DIRECT_COLUMNS = 5
# The widest vector register of the compile target: 512 bits with AVX-512.
REGISTER_BITS = 512 if "+avx512f" in (
    config.CPU_FEATURES or get_host_cpu_features().flatten()) else 256
_WIDE_ROWS = DIRECT_ROWS if REGISTER_BITS >= 512 else 1


def direct_lanes(itemsize, outs):
    """Vector lanes `direct_samples` uses for `outs` channels of `itemsize` bytes.

    256-bit vectors when the channels fit one, else 512-bit ones.
    """
    narrow = 32 // itemsize
    return narrow if outs <= narrow else 2 * narrow


@register_jitable
def direct_rows(itemsize, lanes):
    """Output rows of `direct_samples`' blocks for vectors of `lanes` x `itemsize` bytes."""
    return DIRECT_ROWS if lanes * itemsize == 32 else _WIDE_ROWS


def _mac_intrinsic(rows, columns, vector_bits):
    """An intrinsic ``mac(out, oat, oplane, orow, valid, x, xoff, xrow, taps, w, woff, ws, bias)``.

    For each row q < `rows`, column k < `columns` and lane l < `valid`:
    ``out[oat + l*oplane + q*orow + k] = bias[woff + l] + sum over t of
    x[xoff + q*xrow + taps[t] + k] * w[woff + t*ws + l]``, the sum in tap order,
    over vectors of `vector_bits` bits (`valid` at most their lanes); `out`,
    `x`, `w` and `bias` are flat 1-D arrays of one dtype, `taps` a 1-D array
    of ints (the offsets of all (c, u, v) taps from a window's corner: one
    loop of C*KH*KW taps for LLVM to unroll, not C*KH loops of KW).
    """
    @intrinsic
    def mac(typingctx, out, oat, oplane, orow, valid, x, xoff, xrow, taps, w, woff, ws, bias):
        lanes = vector_bits // out.dtype.bitwidth
        sig = types.void(out, oat, oplane, orow, valid, x, xoff, xrow, taps, w, woff, ws, bias)

        def codegen(context, builder, signature, args):
            arg_types = signature.args

            def data(k):
                return cgutils.create_struct_proxy(arg_types[k])(
                    context, builder, value=args[k])

            out_ptr, x_ptr, taps_ptr, w_ptr, bias_ptr = (data(k).data for k in (0, 5, 8, 9, 12))
            taps_count = data(8).nitems
            intp = context.get_value_type(types.intp)
            oat, oplane, orow, valid, xoff, xrow, woff, ws = (
                context.cast(builder, args[k], arg_types[k], types.intp)
                for k in (1, 2, 3, 4, 6, 7, 10, 11))
            vector = ir.VectorType(out_ptr.type.pointee, lanes)

            def vector_at(ptr, offset):
                return builder.bitcast(builder.gep(ptr, [offset]), vector.as_pointer())

            def const(value):
                return ir.Constant(intp, value)

            blocks = [(q, k) for q in range(rows) for k in range(columns)]
            x_shifts = [builder.add(builder.mul(xrow, const(q)), const(k)) for q, k in blocks]
            start = builder.load(vector_at(bias_ptr, woff), align=1)
            slots = []
            for _ in blocks:
                slot = cgutils.alloca_once(builder, vector)
                builder.store(start, slot)
                slots.append(slot)
            undef = ir.Constant(vector, ir.Undefined)
            splat = ir.Constant(ir.VectorType(ir.IntType(32), lanes), [0] * lanes)
            with cgutils.for_range(builder, taps_count) as loop:
                tap = context.cast(builder, builder.load(builder.gep(taps_ptr, [loop.index])),
                                   arg_types[8].dtype, types.intp)
                x_tap = builder.add(xoff, tap)
                weights = builder.load(vector_at(
                    w_ptr, builder.add(woff, builder.mul(loop.index, ws))), align=1)
                for shift, slot in zip(x_shifts, slots):
                    value = builder.load(builder.gep(x_ptr, [builder.add(x_tap, shift)]))
                    values = builder.shuffle_vector(builder.insert_element(
                        undef, value, ir.Constant(ir.IntType(32), 0)), undef, splat)
                    builder.store(builder.fadd(builder.load(slot),
                                               builder.fmul(values, weights)), slot)
            sums = [builder.load(slot) for slot in slots]
            # One output channel (lane) at a time: its pixels of the block.
            for lane in range(lanes):
                with builder.if_then(builder.icmp_signed("<", const(lane), valid)):
                    channel_at = builder.add(oat, builder.mul(oplane, const(lane)))
                    for (q, k), total in zip(blocks, sums):
                        at = builder.add(channel_at, builder.add(builder.mul(orow, const(q)),
                                                                 const(k)))
                        builder.store(builder.extract_element(total, ir.Constant(
                            ir.IntType(32), lane)), builder.gep(out_ptr, [at]))
            return context.get_dummy_value()
        return sig, codegen
    return mac


_mac_narrow = _mac_intrinsic(DIRECT_ROWS, DIRECT_COLUMNS, 256)
_mac_wide = _mac_intrinsic(_WIDE_ROWS, DIRECT_COLUMNS, 512)


def _transpose_block_intrinsic(vector_bits):
    """An intrinsic ``transpose(w, o0, valid, c, p, wt, row)`` over square blocks.

    For r, k < lanes (the vectors' lanes): ``wt[row + k, o0 + r] = w[o0 + r, c, p + k]``
    for r < `valid` and 0 for the rest; `w` is 3-D with its last axis
    contiguous, `wt` 2-D and C-contiguous.  One vector load per row of `w`,
    log2(lanes) rounds of two-vector shuffles, one vector store per row of `wt`.
    """
    @intrinsic
    def transpose(typingctx, w, o0, valid, c, p, wt, row):
        lanes = vector_bits // w.dtype.bitwidth
        sig = types.void(w, o0, valid, c, p, wt, row)

        def codegen(context, builder, signature, args):
            arg_types = signature.args
            intp = context.get_value_type(types.intp)
            source = cgutils.create_struct_proxy(arg_types[0])(context, builder, value=args[0])
            target = cgutils.create_struct_proxy(arg_types[5])(context, builder, value=args[5])
            o0, valid, c, p, row = (context.cast(builder, args[k], arg_types[k], types.intp)
                                    for k in (1, 2, 3, 4, 6))
            stride_o, stride_c, _ = cgutils.unpack_tuple(builder, source.strides, 3)
            _, width = cgutils.unpack_tuple(builder, target.shape, 2)
            vector = ir.VectorType(source.data.type.pointee, lanes)
            byte = ir.IntType(8).as_pointer()

            def const(value):
                return ir.Constant(intp, value)

            # Bytes from w's data to w[o0, c, p]: the strides are in bytes.
            corner = builder.add(builder.add(builder.mul(o0, stride_o), builder.mul(c, stride_c)),
                                 builder.mul(p, const(w.dtype.bitwidth // 8)))
            start = builder.gep(builder.bitcast(source.data, byte), [corner])
            zeros = ir.Constant(vector, None)
            rows = []
            for r in range(lanes):
                slot = cgutils.alloca_once_value(builder, zeros)
                with builder.if_then(builder.icmp_signed("<", const(r), valid)):
                    at = builder.gep(start, [builder.mul(const(r), stride_o)])
                    builder.store(builder.load(builder.bitcast(at, vector.as_pointer()), align=1),
                                  slot)
                rows.append(builder.load(slot))
            # Round h swaps the off-diagonal h x h blocks of every 2h x 2h block.
            h = lanes // 2
            while h:
                # Column block j of the new row r: block j of row r (j even) or block
                # j - 1 of row r + h (j odd); of the new row r + h, one block further.
                low = [k if k // h % 2 == 0 else lanes + k - h for k in range(lanes)]
                high = [m + h for m in low]
                for r in range(lanes):
                    if r // h % 2 == 0:
                        a, b = rows[r], rows[r + h]
                        rows[r] = builder.shuffle_vector(a, b, ir.Constant(
                            ir.VectorType(ir.IntType(32), lanes), low))
                        rows[r + h] = builder.shuffle_vector(a, b, ir.Constant(
                            ir.VectorType(ir.IntType(32), lanes), high))
                h //= 2
            first = builder.add(builder.mul(row, width), o0)
            for k in range(lanes):
                at = builder.gep(target.data, [builder.add(first, builder.mul(const(k), width))])
                builder.store(rows[k], builder.bitcast(at, vector.as_pointer()), align=1)
            return context.get_dummy_value()
        return sig, codegen
    return transpose


_transpose_block = _transpose_block_intrinsic(256)


@njit(cache=CACHE, nogil=True)
def channels_last(w, wt):
    """``wt[c*P + p, o] = w[o, c, p]``, zeros in columns o >= O: (O, C, P) to (C*P, Op).

    `w` has a contiguous last axis; `wt` is C-contiguous with Op a multiple
    of 256 bits.  The weights of `direct_samples` from any (O, C, KH, KW),
    a transposed output gradient among them, in one pass.
    """
    outs, channels, plane = w.shape
    lanes = 32 // w.itemsize
    zero = wt.dtype.type(0)
    for o0 in range(0, wt.shape[1], lanes):
        valid = min(lanes, outs - o0)
        for c in range(channels):
            row = c * plane
            p = 0
            while p + lanes <= plane:
                _transpose_block(w, o0, valid, c, p, wt, row + p)
                p += lanes
            for q in range(p, plane):
                for r in range(lanes):
                    wt[row + q, o0 + r] = w[o0 + r, c, q] if r < valid else zero


# Inlined into its team entry point (`TEAM_ENTRIES`): compiled as a callee of
# its own, its machine code would be generated twice, once more inside the
# entry's (about 2.5 s more on an empty cache).  The same holds for `batch_groups`.
@njit(cache=CACHE, nogil=True, inline="always")
def direct_samples(x, swap_x, wt, bias, out, next_sample, stop, chunk, lanes, pad_top, pad_left,
                   hp, wp):
    """Stride-1 correlation out[n] = correlate(pad(x[n]), w) + bias, blocks in registers.

    x is (N, C, H, W), or (C, N, H, W) when swap_x, C-contiguous; wt is
    (C, KH, KW, Op) and bias (Op,), with Op the output channels rounded up to
    a multiple of `lanes` (`direct_lanes`; the extra weights are zeros and
    their sums are dropped); out is (N, O, Ho, Wo), C-contiguous, with
    Ho >= DIRECT_ROWS and Wo >= DIRECT_COLUMNS.  The samples come `chunk` at
    a time from the one-element int64 array `next_sample`, claimed atomically,
    until `stop`: every thread that runs this call with the same counter takes
    what is left, so a thread the OS runs late leaves nobody waiting.  A
    padded input is copied per sample into a zeroed (C, hp, wp) buffer; an
    unpadded one is read in place.
    """
    height, width = x.shape[2], x.shape[3]
    channels, kh, kw = wt.shape[0], wt.shape[1], wt.shape[2]
    plane = height * width
    # Where a sample's channel c starts in the flat x: base + c * channel_step.
    channel_step = x.shape[1] * plane if swap_x else plane
    padded = pad_top or pad_left or hp != height or wp != width
    buffer = np.zeros(channels * hp * wp if padded else 0, dtype=out.dtype)
    # Offsets of the (c, u, v) taps from a window's corner, in the buffer or in x.
    taps = np.empty(channels * kh * kw, dtype=np.intp)
    for c in range(channels):
        for u in range(kh):
            for v in range(kw):
                taps[(c * kh + u) * kw + v] = (c * hp * wp + u * wp + v if padded
                                               else c * channel_step + u * width + v)
    while True:
        first = claim(next_sample, chunk)
        if first >= stop:
            return
        for n in range(first, min(first + chunk, stop)):
            if padded:
                for c in range(channels):
                    _pad_into(x[c, n] if swap_x else x[n, c],
                              buffer[c * hp * wp:(c + 1) * hp * wp], pad_top, pad_left, wp)
                _direct_sample(buffer, 0, wp, wt, bias, out, n, lanes, taps)
            else:
                _direct_sample(x.reshape(-1), n * plane if swap_x else n * channels * plane,
                               width, wt, bias, out, n, lanes, taps)


# The kernels on the engine's team (`stencils._engine.run_team`): the arrays and
# numbers of one call as an int64 block (`_kernels_team.team_block`), unpacked by a
# C-callable entry point per kernel and dtype (`TEAM_ENTRIES`) that returns 1,
# or 0 when its kernel raised.


@njit(cache=CACHE, nogil=True, inline="always")
def _array4(b, at, zero):
    return carray(pointer_at(b[at], zero), (b[at + 1], b[at + 2], b[at + 3], b[at + 4]))


@njit(cache=CACHE, nogil=True, inline="always")
def _array1(b, at, zero):
    return carray(pointer_at(b[at], zero), (b[at + 1],))


# direct_samples(x, swap_x, wt, bias, out, next_sample, stop, chunk, lanes,
# pad_top, pad_left, hp, wp) from team_block(x, wt, bias, out, next_sample,
# swap_x, stop, chunk, lanes, pad_top, pad_left, hp, wp).
@njit(cache=CACHE, nogil=True, inline="always")
def _direct_from_block(address, zero):
    b = carray(pointer_at(address, np.int64(0)), (27,))
    direct_samples(_array4(b, 0, zero), b[19] != 0, _array4(b, 5, zero), _array1(b, 10, zero),
                   _array4(b, 12, zero), _array1(b, 17, np.int64(0)), b[20], b[21], b[22],
                   b[23], b[24], b[25], b[26])
    return 1


# batch_groups(x, wt, starts, groups, bias, out, next_group, pad_top, pad_left)
# from team_block of the same arguments.
@njit(cache=CACHE, nogil=True, inline="always")
def _batch_from_block(address, zero):
    b = carray(pointer_at(address, np.int64(0)), (26,))
    wt = carray(pointer_at(b[5], zero), (b[6], b[7], b[8], b[9], b[10]))
    batch_groups(_array4(b, 0, zero), wt, _array1(b, 11, np.intp(0)),
                 _array1(b, 13, np.intp(0)), _array1(b, 15, zero), _array4(b, 17, zero),
                 _array1(b, 22, np.int64(0)), b[24], b[25])
    return 1


# columns_samples(x, wt, starts, bias, out, next_sample, stop, chunk, lanes, pad_top,
# pad_left, row_width) from team_block(x, wt, starts, bias, out, next_sample, stop,
# chunk, lanes, pad_top, pad_left, row_width).
@njit(cache=CACHE, nogil=True, inline="always")
def _columns_from_block(address, zero):
    b = carray(pointer_at(address, np.int64(0)), (28,))
    wt = carray(pointer_at(b[5], zero), (b[6], b[7], b[8], b[9], b[10]))
    columns_samples(_array4(b, 0, zero), wt, _array1(b, 11, np.intp(0)), _array1(b, 13, zero),
                    _array4(b, 15, zero), _array1(b, 20, np.int64(0)), b[22], b[23], b[24],
                    b[25], b[26], b[27])
    return 1


def _direct_entry_float32(address):
    return _direct_from_block(address, np.float32(0))


def _direct_entry_float64(address):
    return _direct_from_block(address, np.float64(0))


def _batch_entry_float32(address):
    return _batch_from_block(address, np.float32(0))


def _batch_entry_float64(address):
    return _batch_from_block(address, np.float64(0))


def _columns_entry_float32(address):
    return _columns_from_block(address, np.float32(0))


def _columns_entry_float64(address):
    return _columns_from_block(address, np.float64(0))


# The entry points' functions, compiled as C callbacks by `stencils._channels`:
# (kernel, dtype) -> a function of one int64, the address of a team block.
TEAM_ENTRIES = {("direct", np.dtype(np.float32)): _direct_entry_float32,
                ("direct", np.dtype(np.float64)): _direct_entry_float64,
                ("batch", np.dtype(np.float32)): _batch_entry_float32,
                ("batch", np.dtype(np.float64)): _batch_entry_float64,
                ("columns", np.dtype(np.float32)): _columns_entry_float32,
                ("columns", np.dtype(np.float64)): _columns_entry_float64}


@njit(cache=CACHE, nogil=True)
def _direct_sample(src, base, cols, wt, bias, out, n, lanes, taps):
    """out[n] from the window corners at src[base + i*cols + j], block by block."""
    opad = wt.shape[3]
    outs, ho, wo = out.shape[1], out.shape[2], out.shape[3]
    flat_w = wt.reshape(-1)
    flat_out = out.reshape(-1)
    narrow = lanes * out.itemsize == 32
    rows = direct_rows(out.itemsize, lanes)
    for block_i in range(0, ho, rows):
        i0 = min(block_i, ho - rows)
        for block_j in range(0, wo, DIRECT_COLUMNS):
            j0 = min(block_j, wo - DIRECT_COLUMNS)
            x_at = base + i0 * cols + j0
            for group in range(0, opad, lanes):
                out_at = ((n * outs + group) * ho + i0) * wo + j0
                valid = min(lanes, outs - group)
                if narrow:
                    _mac_narrow(flat_out, out_at, ho * wo, wo, valid, src, x_at, cols, taps,
                                flat_w, group, opad, bias)
                else:
                    _mac_wide(flat_out, out_at, ho * wo, wo, valid, src, x_at, cols, taps,
                              flat_w, group, opad, bias)


# Columns: the direct kernel's roles swapped, for few output channels over
# wide rows (a convolution's input gradient: 6 channels of 14 columns in
# LeNet's conv2).  Each call of `_broadcast_mac` keeps COLUMNS_OUTS output
# channels of one output row in registers, each a vector of output columns,
# and runs the taps (u, c, v) of that row on them: one vector of padded input
# per tap, multiplied with a broadcast weight per channel (a separate multiply
# and add per term, no FMA).  Taps are ordered by kernel row first, so the rows
# that fall into the top or bottom padding are one skipped range, never read.

# Output channels a call sums together: LeNet's six input-gradient channels
# (one register each, the loaded input vector reused six times).
COLUMNS_OUTS = 6
COLUMNS_BITS = 512


def columns_lanes(itemsize):
    """Output columns in one vector of `columns_samples`, for elements of `itemsize` bytes."""
    return COLUMNS_BITS // 8 // itemsize


def _broadcast_mac_intrinsic(outs, vector_bits):
    """An intrinsic ``mac(acc, aoff, astride, x, xoff, taps, t0, rows, row_step, count, w)``.

    For each channel k < `outs`: ``acc[aoff + k*astride : +lanes] = sum over r <
    rows, i < count, t = t0 + r*row_step + i, of x[xoff + taps[t] : +lanes] *
    w[t*outs + k]`` with vectors of `vector_bits` bits, the sums started from
    zero and stored (not added); `acc`, `x` and `w` are flat 1-D arrays of one
    dtype, `taps` a 1-D array of ints.  Columns sums one run of taps (one
    row), batch a run per kernel row that meets the image.
    """
    @intrinsic
    def mac(typingctx, acc, aoff, astride, x, xoff, taps, t0, rows, row_step, count, w):
        lanes = vector_bits // acc.dtype.bitwidth
        sig = types.void(acc, aoff, astride, x, xoff, taps, t0, rows, row_step, count, w)

        def codegen(context, builder, signature, args):
            arg_types = signature.args
            acc_ptr, x_ptr, taps_ptr, w_ptr = (
                cgutils.create_struct_proxy(arg_types[k])(context, builder, value=args[k]).data
                for k in (0, 3, 5, 10))
            aoff, astride, xoff, t0, rows, row_step, count = (
                context.cast(builder, args[k], arg_types[k], types.intp)
                for k in (1, 2, 4, 6, 7, 8, 9))
            intp = context.get_value_type(types.intp)
            vector = ir.VectorType(acc_ptr.type.pointee, lanes)
            undef = ir.Constant(vector, ir.Undefined)
            splat = ir.Constant(ir.VectorType(ir.IntType(32), lanes), [0] * lanes)
            slots = []
            for _ in range(outs):
                slot = cgutils.alloca_once(builder, vector)
                builder.store(ir.Constant(vector, None), slot)
                slots.append(slot)
            with cgutils.for_range(builder, rows) as row:
                first = builder.add(t0, builder.mul(row.index, row_step))
                with cgutils.for_range(builder, count) as loop:
                    t = builder.add(first, loop.index)
                    tap = context.cast(builder, builder.load(builder.gep(taps_ptr, [t])),
                                       arg_types[5].dtype, types.intp)
                    values = builder.load(builder.bitcast(builder.gep(
                        x_ptr, [builder.add(xoff, tap)]), vector.as_pointer()), align=1)
                    w_at = builder.mul(t, ir.Constant(intp, outs))
                    for k, slot in enumerate(slots):
                        weight = builder.load(builder.gep(
                            w_ptr, [builder.add(w_at, ir.Constant(intp, k))]))
                        weights = builder.shuffle_vector(builder.insert_element(
                            undef, weight, ir.Constant(ir.IntType(32), 0)), undef, splat)
                        builder.store(builder.fadd(builder.load(slot),
                                                   builder.fmul(values, weights)), slot)
            for k, slot in enumerate(slots):
                at = builder.add(aoff, builder.mul(astride, ir.Constant(intp, k)))
                builder.store(builder.load(slot), builder.bitcast(
                    builder.gep(acc_ptr, [at]), vector.as_pointer()), align=1)
            return context.get_dummy_value()
        return sig, codegen
    return mac


_broadcast_mac = _broadcast_mac_intrinsic(COLUMNS_OUTS, COLUMNS_BITS)


@njit(cache=CACHE, nogil=True, inline="always")
def columns_samples(x, wt, starts, bias, out, next_sample, stop, chunk, lanes, pad_top,
                    pad_left, row_width):
    """Stride-1 correlation out[n] = correlate(pad(x[n]), w) + bias, vectors of columns.

    x is (N, C, H, W) C-contiguous; wt is (B, KH, C, KW, K) with K =
    COLUMNS_OUTS: block b holds output channels starts[b] .. starts[b] + K - 1
    (blocks may overlap; zero weights past the last channel); bias is (O,) or
    empty; out is (N, O, Ho, Wo).  Each sample is copied into a zeroed
    (C, H, row_width) buffer at column pad_left, with row_width >= the padded
    columns read and >= lanes + KW - 1 (a vector of `lanes` columns starting
    at 0 stays in its row); rows of padding are skipped, not stored.  The
    samples come `chunk` at a time from the counter `next_sample` until `stop`,
    as in `direct_samples`.
    """
    channels, height = x.shape[1], x.shape[2]
    kh, kw, k_outs = wt.shape[1], wt.shape[3], wt.shape[4]
    ho, wo = out.shape[2], out.shape[3]
    plane = height * row_width
    buffer = np.zeros(channels * plane, dtype=out.dtype)
    acc_width = max(wo, lanes)
    sums = np.empty(k_outs * ho * acc_width, dtype=out.dtype)
    taps = np.empty(kh * channels * kw, dtype=np.intp)
    for u in range(kh):
        for c in range(channels):
            for v in range(kw):
                taps[(u * channels + c) * kw + v] = c * plane + u * row_width + v
    while True:
        first = claim(next_sample, chunk)
        if first >= stop:
            return
        for n in range(first, min(first + chunk, stop)):
            _columns_sample(x, wt, starts, bias, out, n, lanes, pad_top, pad_left, row_width,
                            buffer, sums, taps)


@njit(cache=CACHE, nogil=True)
def _columns_sample(x, wt, starts, bias, out, n, lanes, pad_top, pad_left, row_width, buffer,
                    sums, taps):
    """out[n] of `columns_samples`, through its zeroed buffer and its sums."""
    channels, height = x.shape[1], x.shape[2]
    blocks, kh, kw, k_outs = wt.shape[0], wt.shape[1], wt.shape[3], wt.shape[4]
    outs, ho, wo = out.shape[1], out.shape[2], out.shape[3]
    plane = height * row_width
    acc_width = sums.shape[0] // (k_outs * ho)
    for c in range(channels):
        _pad_into(x[n, c], buffer[c * plane:(c + 1) * plane], 0, pad_left, row_width)
    for b in range(blocks):
        flat_w = wt[b].reshape(-1)
        for i in range(ho):
            # Kernel rows u whose input row i + u - pad_top is in the image.
            u0 = min(kh, max(0, pad_top - i))
            u1 = max(u0, min(kh, height + pad_top - i))
            t0, t1 = u0 * channels * kw, u1 * channels * kw
            for block_j in range(0, wo, lanes):
                j0 = max(0, min(block_j, wo - lanes))
                _broadcast_mac(sums, i * acc_width + j0, ho * acc_width, buffer,
                               (i - pad_top) * row_width + j0, taps, t0, 1, 0, t1 - t0,
                               flat_w)
        for k in range(min(k_outs, outs - starts[b])):
            o = starts[b] + k
            for i in range(ho):
                src = np.uintp((k * ho + i) * acc_width)
                dst = out[n, o, i]
                for j in range(np.uintp(wo)):
                    dst[j] = sums[src + j]
                if bias.shape[0]:
                    for j in range(np.uintp(wo)):
                        dst[j] += bias[o]


# Batch: vectors of samples.  Each group of `lanes` samples is transposed to
# (C, H, W, lanes), so one vector holds a pixel of every sample of the group;
# each call of `_broadcast_mac` sums COLUMNS_OUTS output channels of one output
# position, each such a vector, over exactly the taps whose pixel is in the
# image (rows and columns of padding both skipped: no lane reads a zero it did
# not need).


@njit(cache=CACHE, nogil=True, inline="always")
def batch_groups(x, wt, starts, groups, bias, out, next_group, pad_top, pad_left):
    """Stride-1 correlation out = correlate(pad(x), w) + bias, vectors of samples.

    x is (N, C, H, W) C-contiguous; wt is (B, KH, KW, C, K) with K =
    COLUMNS_OUTS, block b holding output channels starts[b] .. starts[b] + K
    - 1 (as `columns_samples`); groups[g] is the first of the `lanes` samples
    of group g (groups may overlap; with fewer samples than lanes, zero
    samples fill the vectors and are dropped); bias is (O,) or empty; out is
    (N, O, Ho, Wo).  Computes the groups it claims, one at a time, from the
    one-element int64 array `next_group` (as `direct_samples`): each group's samples
    transposed into a buffer (C, H, W, lanes), summed into a buffer of
    vectors (B*K, Ho, Wo, lanes), then transposed into out (stored straight
    into out, the lanes of a vector land a sample apart each, and cost more
    than the sums).
    """
    samples, channels, height, width = x.shape
    blocks, kh, kw, k_outs = wt.shape[0], wt.shape[1], wt.shape[2], wt.shape[4]
    outs, ho, wo = out.shape[1], out.shape[2], out.shape[3]
    lanes = COLUMNS_BITS // 8 // out.itemsize
    pixels = channels * height * width
    flat_x = np.zeros(pixels * lanes, dtype=out.dtype)
    points = ho * wo
    sums = np.empty(blocks * k_outs * points * lanes, dtype=out.dtype)
    taps = np.empty(kh * kw * channels, dtype=np.intp)
    for u in range(kh):
        for v in range(kw):
            for c in range(channels):
                taps[(u * kw + v) * channels + c] = ((c * height + u) * width + v) * lanes
    while True:
        g = claim(next_group, 1)
        if g >= groups.shape[0]:
            return
        n0 = groups[g]
        for lane in range(min(lanes, samples - n0)):
            pixel = x[n0 + lane].reshape(-1)
            for q in range(pixels):
                flat_x[q * lanes + lane] = pixel[q]
        for b in range(blocks):
            flat_w = wt[b].reshape(-1)
            for i in range(ho):
                # Kernel rows and columns whose pixel is in the image.
                u0 = min(kh, max(0, pad_top - i))
                u1 = max(u0, min(kh, height + pad_top - i))
                for j in range(wo):
                    v0 = min(kw, max(0, pad_left - j))
                    v1 = max(v0, min(kw, width + pad_left - j))
                    corner = ((i - pad_top) * width + j - pad_left) * lanes
                    _broadcast_mac(sums, (b * k_outs * points + i * wo + j) * lanes,
                                   points * lanes, flat_x, corner, taps,
                                   (u0 * kw + v0) * channels, u1 - u0, kw * channels,
                                   (v1 - v0) * channels, flat_w)
        for b in range(blocks):
            for k in range(min(k_outs, outs - starts[b])):
                o = starts[b] + k
                src = (b * k_outs + k) * points * lanes
                for lane in range(min(lanes, samples - n0)):
                    res = out[n0 + lane, o].reshape(-1)
                    for p in range(points):
                        res[p] = sums[src + p * lanes + lane]
                    if bias.shape[0]:
                        for p in range(points):
                            res[p] += bias[o]
