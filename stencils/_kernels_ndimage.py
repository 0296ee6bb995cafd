"""Numba kernels of `stencils.ndimage`: scipy.ndimage's filters, to the last bit.

They see only clean arrays: the source C-contiguous float32 or float64, the
output C-contiguous float32 or float64, weights float64, modes as the border
codes of `stencils._kernels`.  Nothing here validates (stencils.ndimage._args
and ._linear do).

Exactness: every output element is the same sequence of float64 operations as
in scipy's C code (scipy/ndimage/src/ni_filters.c), only the order *across*
elements differs (so loops vectorise across independent outputs; some additions
run as a multiply-add by 1.0, `exact_add`, which rounds as the addition does):

- a 1-D correlation sums a symmetric kernel in pairs, ``c*x0 + w1*(x-1 + x1) + ...``
  from the outermost pair in, an antisymmetric one with differences, any other
  starting with the last tap and then the others from the first;
- the n-D correlation starts from 0.0 and adds ``w*x`` for every weight with
  ``|w| > DBL_EPSILON`` in C order (cval for reads outside the array);
- the uniform filter is scipy's running sum of the extended line.

Reads outside the array follow `stencils._kernels.resolve_index` (scipy's
'reflect', 'mirror', 'nearest', 'wrap' at any distance; -1 means cval).  The
value read is the source element converted to float64; cval is used as a
float64 (as scipy's line buffers hold it), never rounded to the source dtype.

Each filter has a task function (one block of the work), a parallel driver
(``prange`` over tasks) and a serial one (for Dask's worker threads).  The
generated passes (`pass_source`), the fused uniform filter and `add_square`
are serial ``nogil`` functions of a block of rows: the caller runs the blocks
on its threads.
"""

from __future__ import annotations

import numpy as np
from llvmlite import ir
from numba import njit, prange, types
from numba.extending import intrinsic

from ._kernels import CACHE, resolve_index

_OPTS = dict(cache=CACHE, nogil=True, error_model="numpy")
_BLOCK = 128  # outputs of a line summed together (their float64 sums fit in L1)
LINE_GROUP = 32  # lines whose running sums advance together (enough to vectorise across)
RING_ROWS = 4  # output rows of a vertical pass summed together (see _ring_block)


# -- an addition on the multiply units -----------------------------------------

@intrinsic
def exact_add(typingctx, a, one, b):
    """``a + b``, computed as the fused multiply-add ``a * one + b`` with `one` 1.0.

    ``a * 1.0`` is exact, so the single rounding of the multiply-add is the
    addition's: the result is ``a + b`` bit for bit (NaN and infinities
    included).  It runs on the multiply-add units, which a 1-D pass leaves half
    idle while its additions queue for the adders (Zen 4: two of each).  `one`
    must come from memory (the weights array): a literal 1.0 lets LLVM fold the
    multiply-add back into an addition.
    """
    if not (isinstance(a, types.Float) and a == one == b):
        return None

    def codegen(context, builder, signature, args):
        value = context.get_value_type(signature.return_type)
        fma = builder.module.declare_intrinsic(
            "llvm.fma", [value], ir.FunctionType(value, [value, value, value]))
        return builder.call(fma, args)

    return a(a, one, b), codegen


LINE_LANES = 8  # outputs of a line pass computed together by `line_block_for`'s blocks


def line_block_for(size, symmetry):
    """An intrinsic ``line_block(buf, dst, j, ws)``: outputs ``j:j + LINE_LANES`` of a
    `size`-tap float64 correlation along an extended line, ``dst[j + l] = sum_k
    ws[k] * buf[j + l + k]`` in scipy's order (see `pass_source`), as one vector.

    A line pass loading every tap's vector on its own is bound by its loads
    (`size` unaligned loads per vector, most of them across two cache lines).
    Here the vectors at ``j, j + 8, j + 16, ...`` are loaded once and the even
    taps' vectors are cut from two of them by a shuffle; the odd taps' are
    loaded, which keeps the shuffle units and the load ports both busy (the
    fastest split measured: 25% fewer cycles than loading every tap).  `ws` is
    a tuple of the weights (values, so their broadcasts leave the loop); `buf`
    and `dst` are C-contiguous, ``j + LINE_LANES <= len(dst)``,
    ``len(buf) >= len(dst) + size - 1``; `dst` float32 gets the rounded sums.
    """
    half = size // 2

    @intrinsic
    def line_block(typingctx, buf, dst, j, ws):
        if not (isinstance(buf, types.Array) and buf.layout == "C" and buf.dtype == types.float64
                and isinstance(dst, types.Array) and dst.layout == "C"
                and dst.dtype in (types.float32, types.float64) and isinstance(j, types.Integer)
                and isinstance(ws, types.UniTuple) and ws.dtype == types.float64
                and ws.count == size):
            return None

        def codegen(context, builder, signature, args):
            source = context.make_array(buf)(context, builder, args[0]).data
            target = context.make_array(dst)(context, builder, args[1]).data
            at, weights = args[2], args[3]
            vector = ir.VectorType(ir.DoubleType(), LINE_LANES)
            int32 = ir.IntType(32)
            lane_indices = ir.VectorType(int32, LINE_LANES)

            def load(k):
                pointer = builder.gep(source, [builder.add(at, ir.Constant(at.type, k))])
                return builder.load(builder.bitcast(pointer, vector.as_pointer()), align=8)

            spans = {}  # q: the vector at j + LINE_LANES * q

            def span(q):
                if q not in spans:
                    spans[q] = load(LINE_LANES * q)
                return spans[q]

            def tap(k):
                q, r = divmod(k, LINE_LANES)
                if r == 0:
                    return span(q)
                # A shuffle needs the next span, read only where it ends within the taps.
                if k % 2 or LINE_LANES * (q + 1) > size - 1:
                    return load(k)
                lanes = ir.Constant(lane_indices, list(range(r, r + LINE_LANES)))
                return builder.shuffle_vector(span(q), span(q + 1), lanes)

            def weight(k):
                one = builder.insert_element(ir.Constant(vector, ir.Undefined),
                                             builder.extract_value(weights, k), int32(0))
                return builder.shuffle_vector(one, ir.Constant(vector, ir.Undefined),
                                              ir.Constant(lane_indices, [0] * LINE_LANES))

            if symmetry == 0:
                t = builder.fmul(tap(size - 1), weight(size - 1))
                for k in range(size - 1):
                    t = builder.fadd(t, builder.fmul(tap(k), weight(k)))
            else:
                t = builder.fmul(tap(half), weight(half))
                for k in range(half):
                    a, b = tap(k), tap(size - 1 - k)
                    pair = builder.fadd(a, b) if symmetry > 0 else builder.fsub(a, b)
                    t = builder.fadd(t, builder.fmul(pair, weight(k)))
            element = context.get_value_type(dst.dtype)
            if element != ir.DoubleType():
                t = builder.fptrunc(t, ir.VectorType(element, LINE_LANES))
            pointer = builder.bitcast(builder.gep(target, [at]), t.type.as_pointer())
            builder.store(t, pointer, align=4)
            return context.get_dummy_value()

        return types.void(buf, dst, j, ws), codegen

    return line_block


# -- extended lines (scipy's line buffers) -------------------------------------

@njit(**_OPTS)
def _extend_line(buf, row, before, code, cval):
    """buf[p] = the row extended by the border rule, at index p - before."""
    n = row.shape[0]
    lo = min(max(before, 0), buf.shape[0])
    hi = min(max(before + n, lo), buf.shape[0])
    inside = buf[lo:hi]
    src = row[lo - before:hi - before]  # a slice: no negative-index check in the copy loop
    for p in range(hi - lo):
        inside[p] = src[p]
    for p in range(0, lo):
        r = resolve_index(p - before, n, code)
        buf[p] = cval if r < 0 else row[r]
    for p in range(hi, buf.shape[0]):
        r = resolve_index(p - before, n, code)
        buf[p] = cval if r < 0 else row[r]


@njit(**_OPTS)
def _correlate_buffer(buf, acc, weights, symmetry):
    """acc[l] = scipy's 1-D correlation of the extended line at output l."""
    # Taps are read through slices: a plain index like buf[l + k] could be negative
    # as far as Numba knows, and its wraparound check stops vectorisation.
    n = acc.shape[0]
    size = weights.shape[0]
    size1 = size // 2
    if symmetry != 0:
        c = weights[size1]
        centre = buf[size1:size1 + n]
        for ll in range(n):
            acc[ll] = centre[ll] * c
        for jj in range(-size1, 0):
            w = weights[size1 + jj]
            a = buf[size1 + jj:size1 + jj + n]
            b = buf[size1 - jj:size1 - jj + n]
            if symmetry > 0:
                for ll in range(n):
                    acc[ll] += (a[ll] + b[ll]) * w
            else:
                for ll in range(n):
                    acc[ll] += (a[ll] - b[ll]) * w
    else:
        last = buf[size - 1:size - 1 + n]
        wl = weights[size - 1]
        for ll in range(n):
            acc[ll] = last[ll] * wl
        for k in range(size - 1):
            w = weights[k]
            a = buf[k:k + n]
            for ll in range(n):
                acc[ll] += a[ll] * w


# -- 1-D filters along the last axis: one extended line at a time --------------

@njit(**_OPTS)
def _lines_task(src2, out2, first, stop, weights, before, code, cval, symmetry, uniform):
    if uniform:
        _uniform_lines(src2, out2, first, stop, weights.shape[0], before, code, cval)
        return
    n = src2.shape[1]
    size = weights.shape[0]
    buf = np.empty(n + size - 1)
    acc = np.empty(n)
    for line in range(first, stop):
        _extend_line(buf, src2[line], before, code, cval)
        # In blocks, so that the sums and the taps they read stay in L1.
        for b0 in range(0, n, _BLOCK):
            m = min(_BLOCK, n - b0)
            _correlate_buffer(buf[b0:b0 + m + size - 1], acc[b0:b0 + m], weights, symmetry)
        row = out2[line]
        for ll in range(n):
            row[ll] = acc[ll]


@njit(**_OPTS)
def _uniform_lines(src2, out2, first, stop, size, before, code, cval):
    """scipy's running sums of `LINE_GROUP` lines side by side (a sum is a chain of
    dependent additions: one line alone cannot use the vector units).  The lines
    are transposed a block of `_BLOCK` positions at a time, so that the
    transposed copies stay in L1."""
    n = src2.shape[1]
    bufs = np.zeros((LINE_GROUP, n + size - 1))
    ext = np.empty((_BLOCK + size, LINE_GROUP))  # row r: extended position b0 - 1 + r
    res = np.empty((_BLOCK, LINE_GROUP))
    tmp = np.empty(LINE_GROUP)
    for g0 in range(first, stop, LINE_GROUP):
        lines = min(LINE_GROUP, stop - g0)
        for g in range(lines):
            _extend_line(bufs[g], src2[g0 + g], before, code, cval)
        tmp[:] = 0.0
        for p in range(size):
            for g in range(LINE_GROUP):
                tmp[g] += bufs[g, p]
        for b0 in range(0, n, _BLOCK):
            m = min(_BLOCK, n - b0)
            lo = max(b0 - 1, 0)
            for g in range(LINE_GROUP):
                line = bufs[g, lo:b0 + m + size - 1]
                for r in range(line.shape[0]):
                    ext[r + lo - (b0 - 1), g] = line[r]
            for j in range(m):
                ll = b0 + j
                dst = res[j]
                if ll == 0:
                    for g in range(LINE_GROUP):
                        dst[g] = tmp[g] / size
                else:
                    enter, leave = ext[j + size], ext[j]
                    for g in range(LINE_GROUP):
                        tmp[g] += enter[g] - leave[g]
                        dst[g] = tmp[g] / size
            for g in range(lines):
                row = out2[g0 + g, b0:b0 + m]
                for j in range(m):
                    row[j] = res[j, g]


@njit(parallel=True, cache=CACHE, error_model="numpy")
def lines_parallel(src2, out2, weights, before, code, cval, symmetry, uniform, per_task):
    """A 1-D correlation (or uniform filter, `weights` then only gives the size)
    along the rows of `src2` into `out2`; `before` = size // 2 + origin."""
    lines = src2.shape[0]
    tasks = (lines + per_task - 1) // per_task
    for t in prange(tasks):
        _lines_task(src2, out2, t * per_task, min(lines, (t + 1) * per_task), weights, before,
                    code, cval, symmetry, uniform)


@njit(**_OPTS)
def lines_serial(src2, out2, weights, before, code, cval, symmetry, uniform, per_task):
    _lines_task(src2, out2, 0, src2.shape[0], weights, before, code, cval, symmetry, uniform)


# -- 1-D filters along an axis that is not the last: vectorised across it ------

@njit(**_OPTS)
def _tap_rows(rows, i, before, n, code):
    """Source row of each tap for output row i (-1: cval); True if none is -1."""
    inside = True
    for k in range(rows.shape[0]):
        r = resolve_index(i + k - before, n, code)
        rows[k] = r
        if r < 0:
            inside = False
    return inside


@njit(**_OPTS)
def _correlate_rows(x, rows, k0, acc, weights, symmetry):
    """acc[j] = the correlation at column k0 + j, every tap's row inside the source."""
    m = acc.shape[0]
    size = weights.shape[0]
    size1 = size // 2
    if symmetry != 0:
        c = weights[size1]
        centre = x[rows[size1], k0:k0 + m]
        for j in range(m):
            acc[j] = centre[j] * c
        for jj in range(-size1, 0):
            w = weights[size1 + jj]
            a = x[rows[size1 + jj], k0:k0 + m]
            b = x[rows[size1 - jj], k0:k0 + m]
            if symmetry > 0:
                for j in range(m):
                    acc[j] += (np.float64(a[j]) + np.float64(b[j])) * w
            else:
                for j in range(m):
                    acc[j] += (np.float64(a[j]) - np.float64(b[j])) * w
    else:
        last = x[rows[size - 1], k0:k0 + m]
        wl = weights[size - 1]
        for j in range(m):
            acc[j] = last[j] * wl
        for k in range(size - 1):
            w = weights[k]
            a = x[rows[k], k0:k0 + m]
            for j in range(m):
                acc[j] += a[j] * w


@njit(**_OPTS)
def _tap_value(x, r, col, cval):
    return cval if r < 0 else np.float64(x[r, col])


@njit(**_OPTS)
def _correlate_rows_fill(x, rows, k0, acc, weights, symmetry, cval):
    """As `_correlate_rows` where some taps read cval (constant mode near an edge)."""
    size = weights.shape[0]
    size1 = size // 2
    for j in range(acc.shape[0]):
        col = k0 + j
        if symmetry != 0:
            t = _tap_value(x, rows[size1], col, cval) * weights[size1]
            for jj in range(-size1, 0):
                a = _tap_value(x, rows[size1 + jj], col, cval)
                b = _tap_value(x, rows[size1 - jj], col, cval)
                t += ((a + b) if symmetry > 0 else (a - b)) * weights[size1 + jj]
        else:
            t = _tap_value(x, rows[size - 1], col, cval) * weights[size - 1]
            for k in range(size - 1):
                t += _tap_value(x, rows[k], col, cval) * weights[k]
        acc[j] = t


@njit(**_OPTS)
def _axis_task(src3, out3, o, i0, i1, weights, before, code, cval, symmetry, chunk):
    n, inner = src3.shape[1], src3.shape[2]
    x = src3[o]
    rows = np.empty(weights.shape[0], dtype=np.int64)
    acc_full = np.empty(min(chunk, inner))
    for i in range(i0, i1):
        inside = _tap_rows(rows, i, before, n, code)
        for k0 in range(0, inner, chunk):
            m = min(chunk, inner - k0)
            acc = acc_full[:m]
            if inside:
                _correlate_rows(x, rows, k0, acc, weights, symmetry)
            else:
                _correlate_rows_fill(x, rows, k0, acc, weights, symmetry, cval)
            dst = out3[o, i, k0:k0 + m]
            for j in range(m):
                dst[j] = acc[j]


@njit(parallel=True, cache=CACHE, error_model="numpy")
def axis_parallel(src3, out3, weights, before, code, cval, symmetry, rows_per_task, chunk):
    """A 1-D correlation along axis 1 of ``(outer, n, inner)`` arrays, vectorised along
    axis 2; tasks are blocks of `rows_per_task` output rows."""
    outer, n = src3.shape[0], src3.shape[1]
    blocks = (n + rows_per_task - 1) // rows_per_task
    for t in prange(outer * blocks):
        o, b = t // blocks, t % blocks
        _axis_task(src3, out3, o, b * rows_per_task, min(n, (b + 1) * rows_per_task), weights,
                   before, code, cval, symmetry, chunk)


@njit(**_OPTS)
def axis_serial(src3, out3, weights, before, code, cval, symmetry, rows_per_task, chunk):
    for o in range(src3.shape[0]):
        _axis_task(src3, out3, o, 0, src3.shape[1], weights, before, code, cval, symmetry,
                   chunk)


@njit(**_OPTS)
def _uniform_axis_task(src3, out3, o, k0, m, size, before, code, cval):
    n = src3.shape[1]
    x = src3[o]
    tmp = np.zeros(m)
    for p in range(size):
        r = resolve_index(p - before, n, code)
        if r < 0:
            for j in range(m):
                tmp[j] += cval
        else:
            a = x[r, k0:k0 + m]
            for j in range(m):
                tmp[j] += a[j]
    dst = out3[o, 0, k0:k0 + m]
    for j in range(m):
        dst[j] = tmp[j] / size
    for ll in range(1, n):
        r_in = resolve_index(ll + size - 1 - before, n, code)
        r_out = resolve_index(ll - 1 - before, n, code)
        dst = out3[o, ll, k0:k0 + m]
        if r_in >= 0 and r_out >= 0:
            a = x[r_in, k0:k0 + m]
            b = x[r_out, k0:k0 + m]
            for j in range(m):
                tmp[j] += np.float64(a[j]) - np.float64(b[j])
                dst[j] = tmp[j] / size
        else:
            for j in range(m):
                tmp[j] += _tap_value(x, r_in, k0 + j, cval) - _tap_value(x, r_out, k0 + j, cval)
                dst[j] = tmp[j] / size


@njit(parallel=True, cache=CACHE, error_model="numpy")
def uniform_axis_parallel(src3, out3, size, before, code, cval, chunk):
    """scipy's uniform filter along axis 1 of ``(outer, n, inner)`` arrays; each task
    runs the running sums of `chunk` columns of axis 2 side by side."""
    outer, inner = src3.shape[0], src3.shape[2]
    blocks = (inner + chunk - 1) // chunk
    for t in prange(outer * blocks):
        o, b = t // blocks, t % blocks
        k0 = b * chunk
        _uniform_axis_task(src3, out3, o, k0, min(chunk, inner - k0), size, before, code, cval)


@njit(**_OPTS)
def uniform_axis_serial(src3, out3, size, before, code, cval, chunk):
    inner = src3.shape[2]
    for o in range(src3.shape[0]):
        for k0 in range(0, inner, chunk):
            _uniform_axis_task(src3, out3, o, k0, min(chunk, inner - k0), size, before, code,
                               cval)


# -- n-D correlation: taps grouped by the source row they read ------------------

@njit(**_OPTS)
def _nd_task(src2, out2, lead_shape, r0, r1, group_offsets, group_start, shifts, weights,
             code, cval, min_shift, max_shift):
    n = src2.shape[1]
    nlead = lead_shape.shape[0]
    buf = np.empty(n + max_shift - min_shift)
    acc = np.empty(n)
    index = np.empty(nlead, dtype=np.int64)
    for row in range(r0, r1):
        rem = row
        for d in range(nlead - 1, -1, -1):
            index[d] = rem % lead_shape[d]
            rem //= lead_shape[d]
        acc[:] = 0.0
        for g in range(group_start.shape[0] - 1):
            source = 0
            for d in range(nlead):
                r = resolve_index(index[d] + group_offsets[g, d], lead_shape[d], code)
                if r < 0:
                    source = -1
                    break
                source = source * lead_shape[d] + r
            if source < 0:
                buf[:] = cval
            else:
                _extend_line(buf, src2[source], -min_shift, code, cval)
            for t in range(group_start[g], group_start[g + 1]):
                w = weights[t]
                s = shifts[t] - min_shift
                tap = buf[s:s + n]
                for j in range(n):
                    acc[j] += w * tap[j]
        dst = out2[row]
        for j in range(n):
            dst[j] = acc[j]


@njit(parallel=True, cache=CACHE, error_model="numpy")
def nd_parallel(src2, out2, lead_shape, group_offsets, group_start, shifts, weights, code, cval,
                min_shift, max_shift, per_task):
    """scipy's n-D correlation.  Rows are the source's last-axis lines (leading
    index unravelled from `lead_shape`); taps come in groups reading one source
    row at `group_offsets[g]` (per leading axis), each tap a last-axis shift and
    weight, in scipy's C order."""
    rows = out2.shape[0]
    tasks = (rows + per_task - 1) // per_task
    for t in prange(tasks):
        _nd_task(src2, out2, lead_shape, t * per_task, min(rows, (t + 1) * per_task),
                 group_offsets, group_start, shifts, weights, code, cval, min_shift, max_shift)


@njit(**_OPTS)
def nd_serial(src2, out2, lead_shape, group_offsets, group_start, shifts, weights, code, cval,
              min_shift, max_shift, per_task):
    _nd_task(src2, out2, lead_shape, 0, out2.shape[0], group_offsets, group_start, shifts,
             weights, code, cval, min_shift, max_shift)


# -- uniform filter along the last two axes, fused per group of rows -------------

@njit(**_OPTS)
def _add_row(acc, x, r, cval):
    """acc += row r of x (cval where r < 0), in float64."""
    if r < 0:
        for j in range(acc.shape[0]):
            acc[j] += cval
    else:
        row = x[r]
        for j in range(acc.shape[0]):
            acc[j] += np.float64(row[j])


@njit(**_OPTS)
def _uniform_step(x, tmp, ll, size, before, code, cval):
    """scipy's vertical running sums, moved from output row ll - 1 to ll (ll >= 1)."""
    n = x.shape[0]
    r_in = resolve_index(ll + size - 1 - before, n, code)
    r_out = resolve_index(ll - 1 - before, n, code)
    if r_in >= 0 and r_out >= 0:
        a, b = x[r_in], x[r_out]
        for j in range(tmp.shape[0]):
            tmp[j] += np.float64(a[j]) - np.float64(b[j])
    else:
        for j in range(tmp.shape[0]):
            va = cval if r_in < 0 else np.float64(x[r_in, j])
            vb = cval if r_out < 0 else np.float64(x[r_out, j])
            tmp[j] += va - vb


@njit(**_OPTS)
def _uniform_chains(bufs, res, size):
    """scipy's running sums along 4 extended lines at once (4 independent add chains),
    not yet divided by `size` (the caller divides a whole row at once, vectorised)."""
    n = res.shape[1]
    b0, b1, b2, b3 = bufs[0], bufs[1], bufs[2], bufs[3]
    t0 = t1 = t2 = t3 = 0.0
    for p in range(size):
        t0 += b0[p]
        t1 += b1[p]
        t2 += b2[p]
        t3 += b3[p]
    res[0, 0], res[1, 0], res[2, 0], res[3, 0] = t0, t1, t2, t3
    for j in range(1, n):
        t0 += b0[j + size - 1] - b0[j - 1]
        t1 += b1[j + size - 1] - b1[j - 1]
        t2 += b2[j + size - 1] - b2[j - 1]
        t3 += b3[j + size - 1] - b3[j - 1]
        res[0, j], res[1, j], res[2, j], res[3, j] = t0, t1, t2, t3


@njit(**_OPTS)
def uniform_fused(i0, i1, src, out, size0, before0, code0, size1, before1, code1, cval):
    """scipy's uniform filter along axis 0 then axis 1 of 2-D arrays, output rows i0:i1.

    The vertical running sums start at row 0 whatever i0 is (rows before i0 are
    stepped over without output), so every sum is scipy's; each vertical row is
    stored in the output's dtype (as scipy stores the first pass) before the
    line pass reads it."""
    inner = src.shape[1]
    tmp = np.zeros(inner)
    for p in range(size0):
        _add_row(tmp, src, resolve_index(p - before0, src.shape[0], code0), cval)
    middle = np.empty(inner, dtype=out.dtype)
    bufs = np.zeros((4, inner + size1 - 1))
    res = np.empty((4, inner))
    for ll in range(1, i0):
        _uniform_step(src, tmp, ll, size0, before0, code0, cval)
    for g0 in range(i0, i1, 4):
        rows = min(4, i1 - g0)
        for g in range(rows):
            if g0 + g > 0:
                _uniform_step(src, tmp, g0 + g, size0, before0, code0, cval)
            for j in range(inner):
                middle[j] = tmp[j] / size0
            _extend_line(bufs[g], middle, before1, code1, cval)
        _uniform_chains(bufs, res, size1)
        for g in range(rows):
            dst, sums = out[g0 + g], res[g]
            for j in range(inner):
                dst[j] = sums[j] / size1


# -- gradient magnitude ---------------------------------------------------------

@njit(**_OPTS)
def add_square(i0, i1, total, d, first, last):
    """total[i] += d[i]**2 over ``i0:i1`` of flat arrays, in their dtype, as NumPy's
    in-place steps would: `first` squares total first, `last` takes the root after."""
    for i in range(i0, i1):
        t = total[i]
        if first:
            t = t * t
        t = t + d[i] * d[i]
        total[i] = np.sqrt(t) if last else t


# -- generated 1-D passes: every tap unrolled, the sum held in a register -------
#
# `pass_source(size0, symmetry0, size1, symmetry1, accumulate)` writes a module
# whose functions run a 1-D correlation of `size0` taps along a non-last axis
# (vertical), one of `size1` taps along the last axis (lines), or both fused per
# output row (the vertical row is stored in the output's dtype, as scipy stores
# each pass, then filtered along the row while it is still in L2).  Each output is
# one expression over all taps, in scipy's order, so the loop over outputs is the
# only loop and vectorises.  `accumulate` ('float64' for scipy's arithmetic,
# 'float32' for float32 sums) is the type every tap value is converted to; a
# vertical pass converts each source row once, into a ring of the rows its next
# outputs read, and sums `RING_ROWS` outputs together, so that each converted row
# loaded serves all of them (the loads, not the arithmetic, bound one output at a
# time).  The functions are serial (nogil): callers split the outputs among threads.
# Every weights argument `w` holds the taps followed by 1.0 (`exact_add`'s multiplier).

_PASS_HEADER = '''"""Generated by stencils._kernels_ndimage.pass_source: {key}."""
import numpy as np
from numba import njit
from stencils._kernels import resolve_index
from stencils._kernels_ndimage import LINE_LANES, _extend_line, exact_add, line_block_for

_OPTS = dict(cache=True, nogil=True, error_model="numpy", fastmath={fastmath})
ACC = np.{accumulate}
RING_ROWS = {ring_rows}  # output rows of a vertical pass computed together (ring_block)
RING_CHUNK = 512  # columns per step of ring_block (the ring rows it reads stay in L2)
'''

# One output row of a pass: `loads` gives each tap its view of the input.
_ROW = '''

@njit(**_OPTS)
def {name}({source}, dst, w):
    m = dst.shape[0]
{loads}
    for j in range(m):
{sum}
        dst[j] = t
'''

# The line pass of float64 sums: blocks of LINE_LANES outputs as vectors, the rest
# one at a time (`tail_row`).
_LINE_ROW_BLOCKS = '''

line_block = line_block_for({size}, {symmetry})


@njit(**_OPTS)
def line_row(buf, dst, w):
    ws = ({weights},)
    stop = dst.shape[0] - dst.shape[0] % LINE_LANES
    for j in range(0, stop, LINE_LANES):
        line_block(buf, dst, j, ws)
    tail_row(buf[stop:], dst[stop:], w)
'''

_PASS_BODY = '''{line_row}
{ring_row}

@njit(**_OPTS)
def _load_row(dst, src, inside, cval):
    """dst = src converted to dst's dtype if `inside`, else cval."""
    if inside:
        for j in range(dst.shape[0]):
            dst[j] = src[j]
    else:
        dst[:] = cval


@njit(**_OPTS)
def _new_ring(inner):
    """The ring of converted source rows that `RING_ROWS` vertical outputs read."""
    # Ring rows a cache line longer than a multiple of one: a chunk's rows fall in
    # different cache sets instead of all in the same few (4096 columns apart).
    return np.empty((RING_ROWS + {size0} - 1, (inner + 7) // 8 * 8 + 8), dtype=ACC)


@njit(**_OPTS)
def _ring_rows(ring, q0, q1, start, x, code, cval):
    """Ring entries ``q0:q1``: entry q = source row ``start + q`` (resolved by the
    border rule; cval outside), as `ACC`."""
    for q in range(q0, q1):
        row = resolve_index(start + q, x.shape[0], code)
        _load_row(ring[q % ring.shape[0], :x.shape[1]], x[max(row, 0)], row >= 0, cval)


@njit(**_OPTS)
def _ring_sums(ring, q0, w, band):
    """band[r] = the vertical pass at the output whose first tap is ring entry q0 + r,
    for the rows of `band` (their entries are in the ring)."""
    m, inner = band.shape[0], band.shape[1]
    for k0 in range(0, inner, RING_CHUNK):
        if m == RING_ROWS:
            ring_block(ring, q0 % ring.shape[0], k0, band, w)
            continue
        k1 = min(inner, k0 + RING_CHUNK)
        for r in range(m):
            ring_row(ring, (q0 + r) % ring.shape[0], k0, band[r, k0:k1], w)


@njit(**_OPTS)
def vertical(o0, o1, i0, i1, src3, out3, w, before, code, cval):
    """The `size0`-tap correlation along axis 1 of ``(outer, n, inner)`` arrays, at
    outputs ``[o0:o1, i0:i1]``: each source row converted to `ACC` once, into a
    ring, and `RING_ROWS` outputs summed together (`ring_block`)."""
    ring = _new_ring(src3.shape[2])
    start = i0 - before  # source position of ring entry 0
    for o in range(o0, o1):
        x = src3[o]
        _ring_rows(ring, 0, {size0} - 1, start, x, code, cval)
        for b0 in range(i0, i1, RING_ROWS):
            m = min(RING_ROWS, i1 - b0)
            q0 = b0 - i0
            _ring_rows(ring, q0 + {size0} - 1, q0 + m + {size0} - 1, start, x, code, cval)
            _ring_sums(ring, q0, w, out3[o, b0:b0 + m])


@njit(**_OPTS)
def lines(l0, l1, src2, out2, w, before, code, cval):
    """The `size1`-tap correlation along rows ``l0:l1`` of `src2`."""
    buf = np.empty(src2.shape[1] + {size1} - 1, dtype=ACC)
    for line in range(l0, l1):
        _extend_line(buf, src2[line], before, code, cval)
        line_row(buf, out2[line], w)


@njit(**_OPTS)
def fused(o0, o1, i0, i1, src3, out3, shift, w0, before0, code0, w1, before1, code1, cval):
    """The vertical pass then the line pass at outputs ``[o0:o1, i0:i1]`` of
    ``(outer, n, inner)`` arrays; output row i is written to row ``i - shift`` of `out3`.

    The vertical pass runs as in `vertical`, `RING_ROWS` rows at a time; each
    vertical row, stored in the output's dtype as scipy stores the first pass,
    goes through the line pass while in cache."""
    inner = src3.shape[2]
    ring = _new_ring(inner)
    band = np.empty((RING_ROWS, inner), dtype=out3.dtype)
    buf = np.empty(inner + {size1} - 1, dtype=ACC)
    start = i0 - before0  # source position of ring entry 0
    for o in range(o0, o1):
        x = src3[o]
        _ring_rows(ring, 0, {size0} - 1, start, x, code0, cval)
        for b0 in range(i0, i1, RING_ROWS):
            m = min(RING_ROWS, i1 - b0)
            q0 = b0 - i0
            _ring_rows(ring, q0 + {size0} - 1, q0 + m + {size0} - 1, start, x, code0, cval)
            _ring_sums(ring, q0, w0, band[:m])
            for r in range(m):
                _extend_line(buf, band[r], before1, code1, cval)
                line_row(buf, out3[o, b0 + r - shift], w1)


@njit(**_OPTS)
def _ring_line_rows(ring, q0, q1, start, x, code, cval, wl, beforel, codel, buf, middle):
    """Ring entries ``q0:q1``: entry q = the line pass of source row ``start + q``
    (resolved by the border rule `code`; cval outside), stored in `middle`'s dtype
    (the output's, as scipy stores the first pass), then as `ACC`."""
    for q in range(q0, q1):
        row = resolve_index(start + q, x.shape[0], code)
        if row >= 0:
            _extend_line(buf, x[row], beforel, codel, cval)
            line_row(buf, middle, wl)
        _load_row(ring[q % ring.shape[0], :x.shape[1]], middle, row >= 0, cval)


@njit(**_OPTS)
def fused_lines_first(o0, o1, i0, i1, src3, out3, shift, wl, beforel, codel, wv, beforev,
                      codev, cval):
    """The line pass (`size1` taps) then the vertical pass (`size0` taps) at outputs
    ``[o0:o1, i0:i1]``: each source row's line pass is computed once, into the ring
    the vertical pass reads (as in `vertical`).  Output row i is written to row
    ``i - shift`` of `out3`."""
    inner = src3.shape[2]
    ring = _new_ring(inner)
    middle = np.empty(inner, dtype=out3.dtype)
    buf = np.empty(inner + {size1} - 1, dtype=ACC)
    start = i0 - beforev  # source position of ring entry 0
    for o in range(o0, o1):
        x = src3[o]
        _ring_line_rows(ring, 0, {size0} - 1, start, x, codev, cval, wl, beforel, codel,
                        buf, middle)
        for b0 in range(i0, i1, RING_ROWS):
            m = min(RING_ROWS, i1 - b0)
            q0 = b0 - i0
            _ring_line_rows(ring, q0 + {size0} - 1, q0 + m + {size0} - 1, start, x, codev,
                            cval, wl, beforel, codel, buf, middle)
            _ring_sums(ring, q0, wv, out3[o, b0 - shift:b0 - shift + m])
'''


def _tap_terms(size, symmetry, value, t="t", exact=False):
    """scipy's sum over the taps of one output into `t`, one statement per step,
    `value(k)` spelling tap k's value.  `exact`: every other addition of a
    product to `t` runs as `exact_add` (the same bits, on the multiply units)."""
    def add(product, k):
        if exact and k % 2 == 0:
            return f"{t} = exact_add({product}, one, {t})"
        return f"{t} += {product}"

    half = size // 2
    if symmetry == 0:
        terms = [f"{t} = {value(size - 1)} * w{size - 1}"]
        terms += [add(f"{value(k)} * w{k}", k) for k in range(size - 1)]
    else:
        sign = "+" if symmetry > 0 else "-"
        terms = [f"{t} = {value(half)} * w{half}"]
        terms += [add(f"({value(k)} {sign} {value(size - 1 - k)}) * w{k}", k)
                  for k in range(half)]
    return terms


def _tap_sum(size, symmetry, value, exact=False):
    return "\n".join(" " * 8 + term for term in _tap_terms(size, symmetry, value,
                                                              exact=exact))


def _ring_block(size, symmetry, rows, exact):
    """`ring_block`: the vertical pass at `rows` consecutive output rows of the fused
    pass's ring, together: each ring row read once serves every output that
    reads it (``rows + size - 1`` loads for `rows` outputs instead of
    ``rows * size``), and the outputs' sums are independent chains."""
    reach = rows + size - 1
    loads = [f"    x{p} = ring[(first + {p}) % ring.shape[0], k0:k0 + m]" for p in range(reach)]
    loads += [f"    d{r} = band[{r}, k0:k0 + m]" for r in range(rows)]
    loads += _weight_loads(size, exact)
    chains = [_tap_terms(size, symmetry, lambda k, r=r: f"x{r + k}[j]", t=f"t{r}", exact=exact)
              for r in range(rows)]
    body = [term for step in zip(*chains) for term in step]  # the chains interleaved
    body += [f"d{r}[j] = t{r}" for r in range(rows)]
    return ("\n\n@njit(**_OPTS)\ndef ring_block(ring, first, k0, band, w):\n"
            "    m = min(RING_CHUNK, band.shape[1] - k0)\n" + "\n".join(loads)
            + "\n    for j in range(m):\n" + "\n".join(" " * 8 + b for b in body) + "\n")


def _weight_loads(size, exact=False):
    """The weights as locals; `exact`: also `one`, the 1.0 after them (see `exact_add`)."""
    return [f"    w{k} = w[{k}]" for k in range(size)] + [f"    one = w[{size}]"] * exact


def pass_source(size0, symmetry0, size1, symmetry1, accumulate):
    """The source of the generated pass module (see the comment above `_PASS_HEADER`)."""
    key = f"vertical {size0} taps (symmetry {symmetry0}), lines {size1} taps " \
          f"(symmetry {symmetry1}), {accumulate} sums"
    line_loads = [f"    b{k} = buf[{k}:{k} + m]" for k in range(size1)] + _weight_loads(size1)
    exact = accumulate == "float64"
    line_row = _ROW.format(name="tail_row" if exact else "line_row", source="buf",
                           loads="\n".join(line_loads),
                           sum=_tap_sum(size1, symmetry1, lambda k: f"b{k}[j]"))
    if exact:
        line_row += _LINE_ROW_BLOCKS.format(
            size=size1, symmetry=symmetry1, weights=", ".join(f"w[{k}]" for k in range(size1)))
    # The taps of one vertical output in the ring: entries first, first + 1, ...
    # float64 sums are scipy's: a fused multiply-add would round differently.  float32
    # sums promise OpenCV's precision, not its bits: there they may contract.
    fastmath = "{'contract'}" if accumulate == "float32" else "False"
    # The vertical pass is bound by its additions (its loads are shared), so part of
    # them move to the multiply units; the line pass is bound by its loads instead.
    ring_loads = [f"    r{k} = ring[(first + {k}) % ring.shape[0], k0:k0 + m]"
                  for k in range(size0)] + _weight_loads(size0, exact)
    ring_row = _ROW.format(name="ring_row", source="ring, first, k0", loads="\n".join(
        ring_loads), sum=_tap_sum(size0, symmetry0, lambda k: f"r{k}[j]", exact))
    body = _PASS_BODY.format(
        size0=size0, size1=size1, fastmath=fastmath, line_row=line_row,
        ring_row=ring_row + _ring_block(size0, symmetry0, RING_ROWS, exact),
    )
    return _PASS_HEADER.format(key=key, accumulate=accumulate, fastmath=fastmath,
                               ring_rows=RING_ROWS) + body
