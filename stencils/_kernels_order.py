"""Numba kernels of the order-statistic and user-function filters (stencils.ndimage).

They see only clean arrays: C-contiguous, one dtype per call, border codes of
`stencils._kernels`, window geometry already checked.  Nothing here validates;
stencils.ndimage._order and stencils.ndimage._generic do that.

Geometry shared by the line kernels: along the filtered axis (length ``n``) the
output index ``j`` reads the source cells ``j - lo + k`` for ``k`` in
``[0, size)``; reads outside ``[0, n)`` go through `resolve_index` (-1: cval).

Algorithms
----------
- min/max of a box over the last two axes (`minmax_box2d`): both axes in one
  kernel, van Herk / Gil-Werman down the columns feeding the row pass
  below, row by row, so the intermediate image stays in cache.
- min/max of a box, one axis at a time: van Herk / Gil-Werman (three
  comparisons per point whatever the window) along an axis that is not the
  last, vectorised across the contiguous columns; along the last axis,
  quadrupling (max over 4, 16, ... cells, each a contiguous vector pass of
  four loads, then four overlapping spans), ``ceil(log4(size))`` vector passes.
- min/max of a footprint: the footprint as runs along its last axis; each
  padded row's doubling levels are computed once per band of output rows and
  every run is two lookups.
- `minmax_lines_exact`: scipy's own sliding-extremum deque (Richard Harter's
  MINLIST), used where NaN is present so NaN travels exactly as in scipy.
- `select`: scipy's own quickselect (Hoare partition, first element as
  pivot), so NaN lands where scipy puts it.
"""

from __future__ import annotations

import functools

import numpy as np
from llvmlite import ir
from numba import njit, prange, types, uintp
from numba.extending import intrinsic

from ._kernels import CACHE, resolve_index
from ._kernels_window import as_window, box_window, replaces_max, replaces_min


# -- stores that stay plain stores --------------------------------------------
#
# A loop ``a[c] = v if keep(v, a[c]) else a[c]`` (an extremum updated in place)
# is, to LLVM, a store only where the new value wins: without AVX-512 it becomes
# VMASKMOVPS, which AMD's Zen 3 runs microcoded, 7x slower than a load, a
# select and a store (0.78 against 0.11 ns a float32 element, updated from two loads).
# Adding the additive identity (-0.0 for floats: exact for every value, -0.0
# and NaN included) makes the stored value a new one, so the store is whole.
# The identity passes through an empty inline assembly once per call, so
# LLVM cannot fold the addition away, and the loop stays vectorised.

@intrinsic
def store_identity(typingctx, array):
    """The additive identity of `array`'s dtype (-0.0 or 0), opaque to the optimiser."""
    dtype = getattr(array, "dtype", None)
    if not isinstance(dtype, (types.Float, types.Integer)):
        return None

    def codegen(context, builder, signature, args):
        value_type = context.get_value_type(dtype)
        identity = ir.Constant(value_type, -0.0 if isinstance(dtype, types.Float) else 0)
        # Its bits through a general-purpose register, a constraint every target has.
        bits = ir.IntType(dtype.bitwidth)
        opaque = builder.asm(ir.FunctionType(bits, [bits]), "", "=r,0",
                             [builder.bitcast(identity, bits)], side_effect=False)
        return builder.bitcast(opaque, value_type)

    return dtype(array), codegen


@intrinsic
def whole_store(typingctx, value, identity):
    """``value + identity`` in `value`'s own type (no integer promotion): `value`
    itself, as a new value (see `store_identity`)."""
    if not (isinstance(value, (types.Float, types.Integer)) and value == identity):
        return None

    def codegen(context, builder, signature, args):
        if isinstance(value, types.Float):
            return builder.fadd(*args)
        return builder.add(*args)

    return value(value, identity), codegen


@intrinsic
def is_negative_zero(typingctx, value):
    """Whether a float's bits are -0.0's (the sign bit alone): one integer comparison,
    which vectorises; False for integers."""
    if not isinstance(value, (types.Float, types.Integer)):
        return None

    def codegen(context, builder, signature, args):
        if not isinstance(value, types.Float):
            return ir.Constant(ir.IntType(1), 0)
        bits = ir.IntType(value.bitwidth)
        return builder.icmp_unsigned("==", builder.bitcast(args[0], bits),
                                     ir.Constant(bits, 1 << (value.bitwidth - 1)))

    return types.boolean(value), codegen


# Columns one van Herk task processes (its two block buffers stay in L1/L2).
_CHUNK = 4096
# Output rows per band of the footprint kernel (its doubling levels are reused
# by every row of the band).
_BAND = 32


@njit(cache=CACHE, nogil=True, inline="always")
def _pick(a, b, is_min):
    if is_min:
        return b if b < a else a
    return b if b > a else a


@njit(cache=CACHE, nogil=True)
def _fill_row(dst, value, cw):
    for c in range(uintp(cw)):
        dst[c] = value


@njit(cache=CACHE, nogil=True)
def _pick_fill(dst, prev, value, cw, is_min):
    for c in range(uintp(cw)):
        dst[c] = _pick(prev[c], value, is_min)


@njit(cache=CACHE, nogil=True)
def _copy_row(dst, row, c0, cw):
    c0 = uintp(c0)
    for c in range(uintp(cw)):
        dst[c] = row[c0 + c]


@njit(cache=CACHE, nogil=True)
def _pick_rows(dst, a, b, a0, b0, cw, is_min):
    """dst[c] = pick(a[a0 + c], b[b0 + c]): the one vector loop every kernel here is made of."""
    a0 = uintp(a0)
    b0 = uintp(b0)
    for c in range(uintp(cw)):
        dst[c] = _pick(a[a0 + c], b[b0 + c], is_min)


@njit(cache=CACHE, nogil=True)
def _pick3_rows(dst, row, s, t, cw, is_min):
    """dst[c] = pick(dst[c], row[s + c], row[t + c])."""
    s = uintp(s)
    t = uintp(t)
    zero = store_identity(dst)
    for c in range(uintp(cw)):
        dst[c] = whole_store(_pick(dst[c], _pick(row[s + c], row[t + c], is_min), is_min), zero)


@njit(cache=CACHE, nogil=True)
def _combine_row(dst, prev, src, o, e, lo, n, code, cval, c0, cw, is_min, first):
    """dst[:] = pick(prev, source row at extended index e) over columns c0..c0+cw."""
    r = resolve_index(e - lo, n, code)
    if r < 0:
        if first:
            _fill_row(dst, cval, cw)
        else:
            _pick_fill(dst, prev, cval, cw, is_min)
    elif first:
        _copy_row(dst, src[o, r], c0, cw)
    else:
        _pick_rows(dst, prev, src[o, r], 0, c0, cw, is_min)


@njit(cache=CACHE, nogil=True)
def _advance_prefix(dst, suffix_row, prefix, src, o, e, lo, n, code, cval, c0, cw, is_min,
                    first):
    """One van Herk prefix step and the output row it completes, columns c0..c0+cw.

    prefix = `_combine_row` of itself and extended row ``e`` (that row itself
    when ``first``), then dst = pick(suffix_row, prefix): one loop of three
    loads and two stores where ``e`` reads a source row.
    """
    r = resolve_index(e - lo, n, code)
    if r < 0:
        _combine_row(prefix, prefix, src, o, e, lo, n, code, cval, c0, cw, is_min, first)
        _pick_rows(dst, suffix_row, prefix, 0, 0, cw, is_min)
        return
    row = src[o, r, c0:]
    if first:
        for c in range(uintp(cw)):
            p = row[c]
            prefix[c] = p
            dst[c] = _pick(suffix_row[c], p, is_min)
    else:
        zero = store_identity(prefix)
        for c in range(uintp(cw)):
            p = _pick(prefix[c], row[c], is_min)
            prefix[c] = whole_store(p, zero)
            dst[c] = _pick(suffix_row[c], p, is_min)


@njit(parallel=True, cache=CACHE, nogil=True)
def minmax_middle_axis(src, out, size, lo, code, cval, is_min):
    """Box min/max along axis 1 of (outer, n, inner) arrays, van Herk / Gil-Werman."""
    outer, n, inner = src.shape
    nchunks = (inner + _CHUNK - 1) // _CHUNK
    nblocks = (n + size - 1) // size
    for task in prange(outer * nchunks):
        o = task // nchunks
        c0 = (task % nchunks) * _CHUNK
        cw = min(_CHUNK, inner - c0)
        suffix = np.empty((size, cw), src.dtype)
        prefix = np.empty(cw, src.dtype)
        for b in range(nblocks):
            base = b * size
            last = min(size, n - base)  # outputs of this block
            _combine_row(suffix[size - 1], suffix[size - 1], src, o, base + size - 1, lo, n,
                         code, cval, c0, cw, is_min, True)
            for t in range(size - 2, -1, -1):
                _combine_row(suffix[t], suffix[t + 1], src, o, base + t, lo, n, code, cval,
                             c0, cw, is_min, False)
            _copy_row(out[o, base, c0:], suffix[0], 0, cw)
            for t in range(1, last):
                _advance_prefix(out[o, base + t, c0:], suffix[t], prefix, src, o,
                                base + size + t - 1, lo, n, code, cval, c0, cw, is_min, t == 1)


@njit(cache=CACHE, nogil=True)
def _row_pass(line, spare, out_row, n, size, lo, code, cval, is_min):
    """out_row = box extremum along a row held in ``line[lo:lo + n]`` (its border filled here)."""
    length = n + size - 1
    for e in range(lo):
        r = resolve_index(e - lo, n, code)
        line[e] = cval if r < 0 else line[lo + r]
    for e in range(lo + n, length):
        r = resolve_index(e - lo, n, code)
        line[e] = cval if r < 0 else line[lo + r]
    _box_line(line, spare, out_row, length, size, is_min)


@njit(parallel=True, cache=CACHE, nogil=True)
def minmax_box2d(src, out, ky, loy, codey, kx, lox, codex, cval, is_min, ntasks, check_nan):
    """Box min/max over the last two axes of (outer, H, W) arrays, both axes in one pass.

    Each task takes bands of ``ky`` output rows: van Herk / Gil-Werman down the
    columns (suffix maxima of the band's rows kept, the prefix run in one row),
    and every finished column-extremum row goes straight through the row
    pass (`_box_line`) while it is in cache, so the intermediate image never reaches
    memory.  The same values as one pass per axis (no NaN: see the caller).
    ``ntasks``: how many tasks share the bands (each allocates its buffers once).
    With ``check_nan`` it returns how many NaN and -0.0 the source holds (each
    band counts its own rows): the caller then drops the result, since their
    places take scipy's own steps (`_count_nan`).  Counting here saves a parallel region of its own.
    """
    outer, H, W = src.shape
    nblocks = (H + ky - 1) // ky
    total = outer * nblocks
    ntasks = min(total, ntasks)
    length = W + kx - 1
    nan = np.zeros(ntasks, np.int64)  # per task: a scalar reduction here counted nothing
    for task in prange(ntasks):
        suffix = np.empty((ky, W), src.dtype)
        prefix = np.empty(W, src.dtype)
        line = np.empty(length, src.dtype)
        spare = np.empty(length, src.dtype)
        for job in range(task * total // ntasks, (task + 1) * total // ntasks):
            o = job // nblocks
            base = (job % nblocks) * ky
            last = min(ky, H - base)
            if check_nan:
                for t in range(last):
                    nan[task] += _count_nan(src[o, base + t], 0, W, True)
            _combine_row(suffix[ky - 1], suffix[ky - 1], src, o, base + ky - 1, loy, H,
                         codey, cval, 0, W, is_min, True)
            for t in range(ky - 2, -1, -1):
                _combine_row(suffix[t], suffix[t + 1], src, o, base + t, loy, H, codey, cval,
                             0, W, is_min, False)
            for t in range(last):
                if t == 0:
                    _copy_row(line[lox:], suffix[0], 0, W)
                else:
                    _advance_prefix(line[lox:], suffix[t], prefix, src, o, base + ky + t - 1,
                                    loy, H, codey, cval, 0, W, is_min, t == 1)
                _row_pass(line, spare, out[o, base + t], W, kx, lox, codex, cval, is_min)
    return nan.sum()


@njit(cache=CACHE, nogil=True)
def extension_map(n, lo, length, code):
    """Source index of each extended cell ``e`` in [0, length): ``resolve_index(e - lo)`` (-1: cval)."""
    out = np.empty(length, np.int64)
    for e in range(length):
        out[e] = resolve_index(e - lo, n, code)
    return out


@njit(cache=CACHE, nogil=True)
def extended_chunk(dst, src, r, x0, m, lo, colmap, cval):
    """dst[:m] = extended cells x0 .. x0 + m of source row ``r`` of 2-D `src` (-1: all cval).

    ``colmap``: `extension_map` of the row (length of the extended row).
    """
    n = src.shape[1]
    if r < 0:
        _fill_row(dst, cval, m)
    elif x0 >= lo and x0 + m <= lo + n:
        _copy_row(dst, src[r], x0 - lo, m)
    else:
        row = src[r]
        for x in range(m):
            c = colmap[x0 + x]
            dst[x] = cval if c < 0 else row[c]


@njit(cache=CACHE, nogil=True)
def count_nan(row, negative_zeros):
    """NaN cells of a 1-D float array, and -0.0 cells too if `negative_zeros`."""
    return _count_nan(row, 0, row.shape[0], negative_zeros)


@njit(cache=CACHE, nogil=True)
def _extend_line(row, n, lo, code, cval, buf, length):
    """buf[e] = the source read at e - lo for e in [0, length) (the border rule outside)."""
    for e in range(min(lo, length)):
        r = resolve_index(e - lo, n, code)
        buf[e] = cval if r < 0 else row[r]
    stop = min(lo + n, length)
    if stop > lo:
        _copy_row(buf[lo:stop], row, 0, stop - lo)
    for e in range(max(stop, lo), length):
        r = resolve_index(e - lo, n, code)
        buf[e] = cval if r < 0 else row[r]


@njit(cache=CACHE, nogil=True)
def _pick4_rows(dst, a, s1, s2, s3, cw, is_min):
    """dst[c] = pick of a[c], a[s1 + c], a[s2 + c], a[s3 + c], left to right (s1 <= s2 <= s3)."""
    s1 = uintp(s1)
    s2 = uintp(s2)
    s3 = uintp(s3)
    for c in range(uintp(cw)):
        dst[c] = _pick(_pick(a[c], a[s1 + c], is_min), _pick(a[s2 + c], a[s3 + c], is_min),
                       is_min)


@njit(cache=CACHE, nogil=True)
def _box_line(a, b, out_row, length, size, is_min):
    """out_row[j] = extremum of a[j:j + size] for j < length - size + 1 (`a`, `b` overwritten).

    Levels by quadrupling (a[i] = extremum of [i, i + span), span x4 per vector
    pass) until four overlapping spans cover the window, then one pass of four
    lookups: ``ceil(log4(size))`` passes of four loads and one store, where
    a doubling makes twice as many (each a store).  Ties keep the leftmost
    cell, as a doubling does, so the bits match one (-0.0 against 0.0 included).
    """
    span = 1
    while 4 * span < size:
        length -= 3 * span
        _pick4_rows(b, a, span, 2 * span, 3 * span, length, is_min)
        a, b = b, a
        span *= 4
    last = size - span
    _pick4_rows(out_row, a, min(span, last), min(2 * span, last), last, length - last, is_min)


@njit(parallel=True, cache=CACHE, nogil=True)
def minmax_last_axis(src, out, size, lo, code, cval, is_min):
    """Box min/max along the last axis of (rows, n) arrays, by quadrupling (`_box_line`)."""
    rows, n = src.shape
    length = n + size - 1
    for r in prange(rows):
        a = np.empty(length, src.dtype)
        b = np.empty(length, src.dtype)
        _extend_line(src[r], n, lo, code, cval, a, length)
        _box_line(a, b, out[r], length, size, is_min)


@njit(parallel=True, cache=CACHE, nogil=True)
def minmax_lines_exact(src, out, size, lo, code, cval, is_min):
    """scipy's sliding extremum (a deque of (value, death) pairs) on (rows, n) lines.

    The same comparisons in the same order as scipy's C code, so NaN ends up
    where scipy puts it.
    """
    rows, n = src.shape
    length = n + size - 1
    for r in prange(rows):
        line = np.empty(length, src.dtype)
        _extend_line(src[r], n, lo, code, cval, line, length)
        orow = out[r]
        if size == 1:
            for j in range(n):
                orow[j] = line[j]
            continue
        vals = np.empty(size, src.dtype)
        deaths = np.empty(size, np.int64)
        front = 0
        last = 0
        vals[0] = line[0]
        deaths[0] = size
        for ll in range(1, length):
            val = line[ll]
            if deaths[front] == ll:
                front = front + 1 if front + 1 < size else 0
            if (is_min and val <= vals[front]) or (not is_min and val >= vals[front]):
                vals[front] = val
                deaths[front] = ll + size
                last = front
            else:
                while (is_min and vals[last] >= val) or (not is_min and vals[last] <= val):
                    last = last - 1 if last > 0 else size - 1
                last = last + 1 if last + 1 < size else 0
                vals[last] = val
                deaths[last] = ll + size
            if ll >= size - 1:
                orow[ll - size + 1] = vals[front]


@njit(parallel=True, cache=CACHE, nogil=True)
def minmax_runs(padded, out, run_dy, run_x, run_len, levels, is_min, loy, check_nan):
    """Footprint min/max as runs: out[o, y, x] = extremum over runs of padded[o, y + dy, x + s : + len].

    ``padded`` is (outer, H + fh - 1, W + fw - 1); ``levels`` doubling levels
    to compute (1 + floor(log2(longest run))).  With ``check_nan`` it returns
    how many NaN the padded rows ``loy .. loy + H`` hold (each band counts its
    own; the rows above and below copy them or hold cval).
    """
    outer, H, W = out.shape
    wp = padded.shape[2]
    fh = padded.shape[1] - H + 1
    nbands = (H + _BAND - 1) // _BAND
    nruns = run_dy.shape[0]
    nan = np.zeros(outer * nbands, np.int64)  # per task, as in minmax_box2d
    for task in prange(outer * nbands):
        o = task // nbands
        y0 = (task % nbands) * _BAND
        y1 = min(H, y0 + _BAND)
        if check_nan:
            for y in range(y0, y1):
                nan[task] += _count_nan(padded[o, y + loy], 0, wp, False)
        nrows = y1 - y0 + fh - 1
        lev = np.empty((levels, nrows, wp), padded.dtype)
        for r in range(nrows):
            _copy_row(lev[0, r], padded[o, y0 + r], 0, wp)
            span = 1
            for p in range(1, levels):
                _pick_rows(lev[p, r], lev[p - 1, r], lev[p - 1, r], 0, span, wp - span, is_min)
                span *= 2
        for y in range(y0, y1):
            orow = out[o, y]
            for k in range(nruns):
                length = run_len[k]
                p = 0
                span = 1
                while span * 2 <= length:
                    span *= 2
                    p += 1
                row = lev[p, y - y0 + run_dy[k]]
                s = run_x[k]
                t = s + length - span
                if k == 0:
                    _pick_rows(orow, row, row, s, t, W, is_min)
                else:
                    _pick3_rows(orow, row, s, t, W, is_min)
    return nan.sum()


@njit(parallel=True, cache=CACHE, nogil=True)
def minmax_gather(pflat, bases, out, offsets, is_min, skip_nan):
    """Footprint min/max point by point with scipy's rule: the first cell, then strict improvements.

    Point ``i`` of output row ``q`` reads ``pflat[bases[q] + i + offsets[k]]``
    (``pflat``: the padded array, flat).  ``skip_nan``: NaN cells are ignored
    (a window of NaN only gives NaN).
    """
    rows, width = out.shape
    m = offsets.shape[0]
    for q in prange(rows):
        orow = out[q]
        for i in range(width):
            p0 = bases[q] + i
            res = pflat[p0 + offsets[0]]
            k0 = 1
            if skip_nan:
                while res != res and k0 < m:
                    res = pflat[p0 + offsets[k0]]
                    k0 += 1
            for k in range(k0, m):
                v = pflat[p0 + offsets[k]]
                if is_min:
                    if v < res:
                        res = v
                elif v > res:
                    res = v
            orow[i] = res


@njit(cache=CACHE, nogil=True)
def select(buf, lo, hi, rank):
    """The `rank`-th of buf[lo..hi]: scipy's quickselect (Hoare partition, first element as pivot)."""
    while lo != hi:
        x = buf[lo]
        i = lo - 1
        j = hi + 1
        while True:
            j -= 1
            while buf[j] > x:
                j -= 1
            i += 1
            while buf[i] < x:
                i += 1
            if i < j:
                t = buf[i]
                buf[i] = buf[j]
                buf[j] = t
            else:
                break
        k = j - lo + 1
        if rank < k:
            hi = j
        else:
            lo = j + 1
            rank -= k
    return buf[lo]


RANK, MEDIAN, PERCENTILE = range(3)


@njit(cache=CACHE, nogil=True)
def omit_rank(kind, rank, percentile, count):
    """The rank among `count` non-NaN values for nan_policy='omit' (same rules on fewer values)."""
    if kind == MEDIAN:
        return count // 2
    if kind == PERCENTILE:
        if percentile == 100.0:
            return count - 1
        return int(float(count) * percentile / 100.0)
    r = rank if rank >= 0 else count + rank
    return min(max(r, 0), count - 1)


@njit(cache=CACHE, nogil=True, inline="always")
def _move_cell(hist, below, m, gone, new):
    """One cell leaves bin `gone` and one enters bin `new`; returns the cells now in the
    bins under `m`."""
    hist[gone] -= 1
    hist[new] += 1
    return below + np.int64(new < m) - np.int64(gone < m)


@njit(cache=CACHE, nogil=True, inline="always")
def _rank_bin(hist, m, below, rank):
    """The bin holding rank `rank`, searched from bin `m` (with `below` cells under it):
    (that bin, the cells under it)."""
    while below > rank:
        m -= 1
        below -= hist[m]
    while below + hist[m] <= rank:
        below += hist[m]
        m += 1
    return m, below


@njit(parallel=True, cache=CACHE, nogil=True)
def rank_histogram(src, out, rowmap, colmap, cval, h, w, rank, offset, band):
    """Rank `rank` (0 = the least) of every h x w box of the (outer, H, W) 8-bit integer
    `src` by a running histogram (Huang's): a row of windows starts from its first
    window's 256 bins, then each step right takes one column of h cells out and one
    in, and the rank's bin moves from where it was.  Value v counts at bin v - offset.

    Reads through the extension maps of the rows and columns (`extension_map`; -1:
    `cval`); each task takes `band` output rows.  O(h) per point where gathering the
    window costs O(h w); the values are the window's, so any selection gives them."""
    outer, H, W = out.shape
    nbands = (H + band - 1) // band
    for task in prange(outer * nbands):
        o = task // nbands
        y0 = (task % nbands) * band
        plane = src[o]
        hist = np.zeros(256, np.int64)
        for y in range(y0, min(H, y0 + band)):
            hist[:] = 0
            for k in range(h):
                r = rowmap[y + k]
                for c in range(w):
                    col = colmap[c]
                    hist[(cval if r < 0 or col < 0 else plane[r, col]) - offset] += 1
            m, below = _rank_bin(hist, 0, 0, rank)  # the rank's bin, the cells under it
            out[o, y, 0] = m + offset
            rows = rowmap[y:y + h]
            rows_inside = rows.min() >= 0
            for x in range(1, W):
                gone, new = colmap[x - 1], colmap[x + w - 1]
                if rows_inside and gone >= 0 and new >= 0:
                    for k in range(h):  # no cell past the edges: no cval to choose
                        below = _move_cell(hist, below, m,
                                           np.int64(plane[rows[k], gone]) - offset,
                                           np.int64(plane[rows[k], new]) - offset)
                else:
                    for k in range(h):
                        r = rows[k]
                        below = _move_cell(
                            hist, below, m,
                            np.int64(cval if r < 0 or gone < 0 else plane[r, gone]) - offset,
                            np.int64(cval if r < 0 or new < 0 else plane[r, new]) - offset)
                m, below = _rank_bin(hist, m, below, rank)
                out[o, y, x] = m + offset


@njit(parallel=True, cache=CACHE, nogil=True)
def rank_gather(pflat, bases, out, offsets, kind, rank, percentile, skip_nan):
    """Rank filter point by point: the window gathered in footprint order, then `select`.

    Without `skip_nan` this is scipy's computation step for step.  With it,
    NaN cells are left out and the rank is recomputed for the cells left
    (`omit_rank`; `rank` may then be negative, counted from the top).
    """
    rows, width = out.shape
    m = offsets.shape[0]
    for q in prange(rows):
        buf = np.empty(m, pflat.dtype)
        orow = out[q]
        for i in range(width):
            p0 = bases[q] + i
            count = 0
            nan = pflat[p0 + offsets[0]]
            for k in range(m):
                v = pflat[p0 + offsets[k]]
                if skip_nan and v != v:
                    nan = v
                    continue
                buf[count] = v
                count += 1
            if count == 0:
                orow[i] = nan
                continue
            r = omit_rank(kind, rank, percentile, count) if skip_nan else rank
            orow[i] = select(buf, 0, count - 1, r)


@njit(parallel=True, cache=CACHE, nogil=True)
def has_nan(flat, negative_zeros):
    """Whether a flat float array holds a NaN, or -0.0 too if `negative_zeros` (one
    parallel read, no temporary)."""
    n = flat.shape[0]
    parts = 64
    found = np.zeros(parts, np.bool_)
    step = (n + parts - 1) // parts
    for p in prange(parts):
        found[p] = _count_nan(flat, p * step, min(n, (p + 1) * step), negative_zeros) > 0
    return found.any()


@njit(cache=CACHE, nogil=True)
def _count_nan(flat, start, stop, negative_zeros):
    """NaN cells in flat[start:stop], and -0.0 cells too if `negative_zeros`, counted in
    int32 lanes per slice (twice the int64 lanes).

    -0.0 equals 0.0 in every comparison, so which of the two a min, max or rank keeps
    follows the algorithm's order: like NaN's place, only scipy's own steps give scipy's."""
    count = 0
    for s0 in range(start, stop, 1 << 30):
        part = np.int32(0)
        for i in range(uintp(s0), uintp(min(stop, s0 + (1 << 30)))):
            v = flat[i]
            part += np.int32((v != v) | (negative_zeros & is_negative_zero(v)))
        count += part
    return count


# -- user functions (generic_filter, generic_filter1d) ---------------------------------
# The kernel calls the user's compiled function by name, so its source is
# generated per call shape (how many extra arguments, which keywords) and
# compiled per user function (numba specialises on the function's type; an
# inlined function is a global of its own kernel).  With `window=True` the
# function gets each window (or input line) as a `WindowArray`, whose max/min
# are faster than Numba's and give the same bits.  A 'box' kernel hands it a
# `BoxExtremes` instead: the extremes of the whole window, computed for a row
# of windows at once from the extremes of each padded line's runs, which a
# ring of `rows` lines per task keeps (each line reduced once, read by the
# `rows` output rows whose windows hold it).


@njit(cache=CACHE, nogil=True)
def run_extremes(line, width, row_max, row_min):
    """row_max[c] and row_min[c]: the extremes of line[c:c + width] as Numba's scan of those
    cells gives them (`replaces_max`), for every c of row_max; vectorised across c."""
    count = row_max.shape[0]
    zero = store_identity(row_max)
    for c in range(count):
        row_max[c] = row_min[c] = line[c]
    for k in range(1, width):
        for c in range(count):
            v = line[c + k]
            m = row_max[c]
            row_max[c] = whole_store(v if replaces_max(v, m) else m, zero)
            m = row_min[c]
            row_min[c] = whole_store(v if replaces_min(v, m) else m, zero)


@njit(cache=CACHE, nogil=True)
def combine_rows(row_max, row_min, order, window_max, window_min):
    """The windows' extremes from their rows' (ring slots `order`, the window's rows in C
    order: the first row's first)."""
    window_max[:] = row_max[order[0]]
    window_min[:] = row_min[order[0]]
    zero = store_identity(window_max)
    for j in range(1, order.shape[0]):
        upper, lower = row_max[order[j]], row_min[order[j]]
        for c in range(window_max.shape[0]):
            v = upper[c]
            m = window_max[c]
            window_max[c] = whole_store(v if replaces_max(v, m) else m, zero)
            v = lower[c]
            m = window_min[c]
            window_min[c] = whole_store(v if replaces_min(v, m) else m, zero)


@njit(cache=CACHE, nogil=True)
def box_extremes(src, lead, box, lo, q, width, lox, code, cval, ring, window_max, window_min):
    """The extremes of the windows of output row q in window_max and window_min.

    src holds the input's lines (leading shape `lead`, n cells each); the box
    is `box` (leading axes) by `width`, `lo` and `lox` its cells before a
    point.  ring = (line, row_max, row_min, tags, order, coords): the rows'
    extremes kept per padded line, line P (padded coordinates p_a) in the
    mixed-radix slot of ``p_a % box[a]`` (the rows of one window never share
    a slot), its tag in `tags`; each line is extended by the border rule and
    reduced once for all the output rows of a task that read it.
    """
    line, row_max, row_min, tags, order, coords = ring
    n = src.shape[1]
    rest = q
    for a in range(lead.shape[0] - 1, -1, -1):
        coords[a] = rest % lead[a]
        rest //= lead[a]
    for j in range(order.shape[0]):
        rest, slot, tag, source, fill = j, 0, 0, 0, False
        slot_stride, tag_stride, source_stride = 1, 1, 1
        for a in range(lead.shape[0] - 1, -1, -1):
            padded = coords[a] + rest % box[a]
            rest //= box[a]
            slot += (padded % box[a]) * slot_stride
            tag += padded * tag_stride
            r = resolve_index(padded - lo[a], lead[a], code)
            fill |= r < 0
            source += r * source_stride
            slot_stride *= box[a]
            tag_stride *= lead[a] + box[a]
            source_stride *= lead[a]
        if tags[slot] != tag:
            if fill:
                line[:] = cval
            else:
                _extend_line(src[source], n, lox, code, cval, line, line.shape[0])
            run_extremes(line, width, row_max[slot], row_min[slot])
            tags[slot] = tag
        order[j] = slot
    combine_rows(row_max, row_min, order, window_max, window_min)


_POINT_KERNEL = '''
def {name}(fn, pflat, bases, out, offsets{params}):
    rows = out.shape[0]
    m = offsets.shape[0]
    for q in prange(rows):
        buf = np.empty(m, np.float64)
        point_row(fn, pflat, bases[q], out[q], offsets, buf{params})


def point_row(fn, pflat, base, orow, offsets, buf{params}):
    for i in range(orow.shape[0]):
        p0 = uintp(base + i)
        for k in range(buf.shape[0]):
            buf[k] = pflat[p0 + uintp(offsets[k])]
        orow[i] = {call}({window}(buf){args})
'''

_BOX_KERNEL = '''
def {name}(fn, src, out, lead, box, lo, width, lox, code, cval, band{params}):
    total, n = out.shape
    rows = 1
    for a in range(box.shape[0]):
        rows *= box[a]
    for b in prange((total + band - 1) // band):
        ring = (np.empty(n + width - 1, np.float64), np.empty((rows, n), np.float64),
                np.empty((rows, n), np.float64), np.full(rows, -1, np.int64),
                np.empty(rows, np.intp), np.empty(lead.shape[0], np.int64))
        window_max = np.empty(n, np.float64)
        window_min = np.empty(n, np.float64)
        for q in range(b * band, min(total, (b + 1) * band)):
            box_extremes(src, lead, box, lo, q, width, lox, code, cval, ring, window_max,
                         window_min)
            point_row(fn, window_max, window_min, out[q], rows * width{params})


def point_row(fn, window_max, window_min, orow, size{params}):
    for i in range(orow.shape[0]):
        orow[i] = {call}(box_window(window_max, window_min, i, size){args})
'''

_LINE_KERNEL = '''
def {name}(fn, lines, out, size, lo, code, cval{params}):
    rows, n = lines.shape
    length = n + size - 1
    for r in prange(rows):
        ext = np.empty(length, np.float64)
        obuf = np.zeros(n, np.float64)
        extend_line(lines[r], n, lo, code, cval, ext, length)
        fn({window}(ext), obuf{args})
        orow = out[r]
        for j in range(n):
            orow[j] = obuf[j]
'''


@functools.lru_cache(maxsize=32)
def user_kernel(kind, n_extra, keywords, *, window=True, inlined=None):
    """A parallel kernel calling a user function per point ('point', 'box') or per line ('line').

    Its arguments: the compiled user function, the arrays, then the
    `n_extra` extra arguments and the `keywords` values, in that order.  The
    function gets a `WindowArray` if `window`, else a plain array.  A point
    kernel calls `inlined` (a dispatcher compiled with ``inline="always"``,
    so the function's body joins the loop over the points, its calls and
    their argument passing gone) instead of its `fn` argument when given.
    A 'box' kernel reads the source itself (its lines, lines x n, float32 or
    float64) and hands the function each window as a `BoxExtremes`; its
    arguments after the source and output: the source's leading shape, the
    box on those axes and its cells before a point there (int64 arrays), the
    box's width and cells before a point on the last axis, the border code,
    cval and the output rows per task.
    """
    params = "".join(f", e{k}" for k in range(n_extra))
    params += "".join(f", kw_{k}" for k in keywords)
    args = "".join(f", e{k}" for k in range(n_extra))
    args += "".join(f", {k}=kw_{k}" for k in keywords)
    template = {"point": _POINT_KERNEL, "box": _BOX_KERNEL, "line": _LINE_KERNEL}[kind]
    source = template.format(name="kernel", params=params, args=args,
                             window="as_window" if window else "",
                             call="fn" if inlined is None else "inlined")
    namespace = {"np": np, "prange": prange, "uintp": uintp, "extend_line": _extend_line,
                 "as_window": as_window, "inlined": inlined, "box_window": box_window,
                 "box_extremes": box_extremes}
    exec(source, namespace)  # noqa: S102 - our own template, names are identifiers
    if "point_row" in namespace:
        # Its own function, so that an inlined body's exits (a raise) stay out of the
        # prange loop: Numba runs a loop with a second exit serially.
        # NumPy's error model, as scipy calls the function on NumPy float64 values:
        # a division by zero gives inf or nan, not ZeroDivisionError.
        namespace["point_row"] = njit(nogil=True, error_model="numpy")(namespace["point_row"])
    return njit(parallel=True, nogil=True, error_model="numpy")(namespace["kernel"])
