"""Numba helpers for time stepping with temporal blocking (overlapped tiles).

They see only clean arrays: every array is viewed as 4-D (leading axes of
length 1 added), C-contiguous, float32, float64 or an integer dtype.  A
*scratch* buffer is a flat array holding a box of extents ``E`` (C order); a
*window* is the part of it in use, local ``[0, ext)`` per axis, whose local
cell ``x`` stands for the global cell ``org + x`` (global cells outside
``[0, n)`` are ghost cells: the border rule's answer for that cell).

One fused pass of ``K`` steps over a tile: `load_window` fills the tile plus a
halo of ``K`` times the stencil's reach from the source through the border
rule; each step computes the shrinking valid region from the other buffer (the
generated ``_step_rows``, see stencils._iterate); `refill_ghosts` then answers
the ghost cells of the new state by the border rule applied to that state
(not by evolving them, which is right only for Wrap).  The last step's region
is the tile's own cells, which it writes straight into the destination; a tile
with no ghost cells skips `load_window` too, its first step reading the source
itself.  The driver that ties these to one stencil is `DRIVER_SOURCE`,
appended to each generated module.

A sweep (`sweep_tiles`) runs the same helpers one plane at a time: each tile of
the axes after the swept one holds ``K + 1`` rings of planes, one per time
level; `ring_slot` says where a plane lies, `copy_plane` answers a ghost plane.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from ._kernels import CACHE, FILL, resolve_index

__all__ = ["load_window", "refill_ghosts", "store_centre", "region_rows", "copy_plane",
           "tile_frame", "frame_vectors", "ring_slot", "VECTOR_BYTES",
           "DRIVER_SOURCE"]

# One AVX-512 vector, one cache line: the alignment of a scratch buffer's cell 0 and, where
# its rows are whole vectors long, of every row (stencils._iterate.scratch_pair).
VECTOR_BYTES = 64


@njit(cache=CACHE, nogil=True, error_model="numpy")
def load_window(src4, buf, E, org, ext, code, fill):
    """buf[window] = source cells org + x (through the border rule), x in [0, ext)."""
    n0, n1, n2, n3 = src4.shape
    for i0 in range(ext[0]):
        r0 = resolve_index(org[0] + i0, n0, code)
        for i1 in range(ext[1]):
            r1 = resolve_index(org[1] + i1, n1, code)
            for i2 in range(ext[2]):
                r2 = resolve_index(org[2] + i2, n2, code)
                base = ((i0 * E[1] + i1) * E[2] + i2) * E[3]
                row = buf[base:base + ext[3]]
                if r0 < 0 or r1 < 0 or r2 < 0:
                    row[:] = fill
                    continue
                src_row = src4[r0, r1, r2]
                # Contiguous in-array part [ja, jb), border-resolved ends.
                ja = min(ext[3], max(0, -org[3]))
                jb = max(ja, min(ext[3], n3 - org[3]))
                for j in range(ja):
                    r = resolve_index(org[3] + j, n3, code)
                    row[j] = src_row[r] if r >= 0 else fill
                part = src_row[org[3] + ja:]
                out = row[ja:]
                for j in range(jb - ja):
                    out[j] = part[j]
                for j in range(jb, ext[3]):
                    r = resolve_index(org[3] + j, n3, code)
                    row[j] = src_row[r] if r >= 0 else fill


@njit(cache=CACHE, nogil=True, error_model="numpy")
def region_rows(rows, E, base, lo, hi):
    """Flat index, in a box of extents E, of the first cell of every row of the region
    [lo, hi) shifted by `base`; returns the count."""
    count = 0
    for i0 in range(lo[0], hi[0]):
        for i1 in range(lo[1], hi[1]):
            for i2 in range(lo[2], hi[2]):
                rows[count] = (((base[0] + i0) * E[1] + base[1] + i1) * E[2] + base[2] + i2) \
                    * E[3] + base[3] + lo[3]
                count += 1
    return count


@njit(cache=CACHE, nogil=True, error_model="numpy")
def refill_ghosts(buf, E, org, region_lo, region_hi, n4, rlo, rhi, code, fill):
    """Answer the ghost cells of region [lo, hi) within the stencil's reach (`rlo` before,
    `rhi` after the array) by the border rule on the region's in-array cells.

    The planner guarantees every cell the rule names lies in the region.  Ghost cells
    farther out are read by the next step only to compute other ghost cells, which are
    answered again, so they are left as computed.
    """
    lo = np.empty(4, dtype=np.int64)
    hi = np.empty(4, dtype=np.int64)
    for ax in range(4):
        lo[ax] = max(region_lo[ax], -rlo[ax] - org[ax])
        hi[ax] = min(region_hi[ax], n4[ax] + rhi[ax] - org[ax])
        if hi[ax] <= lo[ax]:
            return
    # The ghost columns at a row's ends [lo3, ja) and [jb, hi3) name the same column in
    # every row: resolved once, not once a row (-1: the fill value).
    ja = min(hi[3], max(lo[3], -org[3]))
    jb = max(ja, min(hi[3], n4[3] - org[3]))
    ends = np.empty(ja - lo[3] + hi[3] - jb, dtype=np.int64)
    for m in range(ends.size):
        j = lo[3] + m if m < ja - lo[3] else jb + m - (ja - lo[3])
        r = resolve_index(org[3] + j, n4[3], code)
        ends[m] = r - org[3] if r >= 0 else -1
    for i0 in range(lo[0], hi[0]):
        g0 = org[0] + i0
        r0 = resolve_index(g0, n4[0], code)
        for i1 in range(lo[1], hi[1]):
            g1 = org[1] + i1
            r1 = resolve_index(g1, n4[1], code)
            for i2 in range(lo[2], hi[2]):
                g2 = org[2] + i2
                r2 = resolve_index(g2, n4[2], code)
                base = ((i0 * E[1] + i1) * E[2] + i2) * E[3]
                inside = 0 <= g0 < n4[0] and 0 <= g1 < n4[1] and 0 <= g2 < n4[2]
                if not inside and code == FILL:
                    for j in range(lo[3], hi[3]):
                        buf[base + j] = fill
                    continue
                rbase = base  # inside the array only the row's ends are ghosts
                if not inside:
                    # The whole row repeats an in-array row: its in-array columns one
                    # to one (a rule changes only indices outside the array).
                    rbase = (((r0 - org[0]) * E[1] + r1 - org[1]) * E[2] + r2 - org[2]) * E[3]
                    row = buf[base + ja:base + jb]
                    same = buf[rbase + ja:rbase + jb]
                    for j in range(jb - ja):
                        row[j] = same[j]
                for m in range(ends.size):
                    j = lo[3] + m if m < ja - lo[3] else jb + m - (ja - lo[3])
                    buf[base + j] = buf[rbase + ends[m]] if ends[m] >= 0 else fill


@njit(cache=CACHE, nogil=True, error_model="numpy")
def store_centre(buf, E, off, dst4, g0, t):
    """dst4[g0 + x] = buf[off + x] for x in [0, t)."""
    for i0 in range(t[0]):
        for i1 in range(t[1]):
            for i2 in range(t[2]):
                base = (((off[0] + i0) * E[1] + off[1] + i1) * E[2] + off[2] + i2) * E[3] + off[3]
                src = buf[base:]
                dst = dst4[g0[0] + i0, g0[1] + i1, g0[2] + i2, g0[3]:]
                for j in range(t[3]):
                    dst[j] = src[j]


@njit(cache=CACHE, nogil=True, error_model="numpy")
def copy_plane(buf, to, frm, size, use_fill, fill):
    """buf[to:to + size] = buf[frm:frm + size] (or `fill`, for a Fill border)."""
    dst = buf[to:to + size]
    if use_fill:
        dst[:] = fill
        return
    src = buf[frm:frm + size]
    for j in range(size):
        dst[j] = src[j]


@njit(cache=CACHE, nogil=True, error_model="numpy")
def tile_frame(tile, grid, tshape, n4, nsteps, rlo, rhi, g0, t, org, ext, off):
    """Place tile number `tile` (C order over `grid`); True if its window has ghost cells."""
    rem = tile
    ghosts = False
    for ax in range(3, -1, -1):
        gi = rem % grid[ax]
        rem //= grid[ax]
        g0[ax] = gi * tshape[ax]
        t[ax] = min(tshape[ax], n4[ax] - g0[ax])
        off[ax] = nsteps * rlo[ax]
        org[ax] = g0[ax] - off[ax]
        ext[ax] = t[ax] + nsteps * (rlo[ax] + rhi[ax])
        if org[ax] < 0 or org[ax] + ext[ax] > n4[ax]:
            ghosts = True
    return ghosts


@njit(cache=CACHE, nogil=True, error_model="numpy")
def frame_vectors():
    """Per-axis scratch of a tile's frame: g0, t, org, ext, off, lo, hi (4-D, int64)."""
    v = np.zeros((7, 4), dtype=np.int64)
    return v[0], v[1], v[2], v[3], v[4], v[5], v[6]


@njit(cache=CACHE, nogil=True, error_model="numpy")
def ring_slot(s, p, R, P):
    """Where plane `p` of time level `s` lies in a sweep's scratch (R planes per level)."""
    return (s * R + p % R) * P


# The driver of a generated module: it calls that module's `_step_rows`.
DRIVER_SOURCE = '''

@njit(cache=CACHE, nogil=True, error_model="numpy")
def run_steps(a, b, pad, rows, grows, E, org, ext, nsteps, rlo, rhi, n4, deltas, c, code,
              refill, src, sdeltas, dst):
    """Advance the window held in `a[pad:]` by `nsteps` steps; returns 1 if the result is in
    `b[pad:]` (cell 0 of both starts a vector, and at least a vector of cells precedes it).

    A non-empty `src` (the flat source, holding every cell of the window) is read by the
    first step instead of `a`, with its own `sdeltas`; a non-empty `dst` (the flat
    destination) takes the last step's region, the tile's own cells, straight from it:
    a pass then moves each cell through memory once instead of copying it in and out.
    Where the scratch rows are whole vectors long, the steps in between start each row
    at a vector boundary, computing up to a vector of cells left of the region (from
    cells the region's next step no longer reads, and never read themselves): a step
    whose loads and stores are aligned takes about 15 % less time.
    """
    lo = np.zeros(4, dtype=np.int64)
    hi = np.zeros(4, dtype=np.int64)
    shift = np.zeros(4, dtype=np.int64)
    shift[3] = pad
    size = E[0] * E[1] * E[2] * E[3]
    vec = VECTOR_BYTES // a.itemsize
    aligned = E[3] % vec == 0 and rlo[3] <= vec
    for s in range(1, nsteps + 1):
        for ax in range(4):
            lo[ax] = s * rlo[ax]
            hi[ax] = ext[ax] - s * rhi[ax]
        x, y = (a, b) if s % 2 == 1 else (b, a)
        from_src = s == 1 and src.size > 0
        to_dst = s == nsteps and dst.size > 0
        start = lo[3]
        if aligned and not from_src and not to_dst:
            lo[3] -= lo[3] % vec
        nrows = region_rows(rows, E, shift, lo, hi)
        length = hi[3] - lo[3]
        lo[3] = start
        if from_src or to_dst:
            region_rows(grows, n4, org, lo, hi)
        _step_rows(src if from_src else x, dst if to_dst else y, grows if from_src else rows,
                   grows if to_dst else rows, nrows, length, sdeltas if from_src else deltas, c)
        if refill and not to_dst:
            refill_ghosts(y[pad:pad + size], E, org, lo, hi, n4, rlo, rhi, code, c[2])
    return nsteps % 2


@njit(cache=CACHE, nogil=True, error_model="numpy")
def tiles(src4, dst4, a, b, pad, E, tshape, grid, nsteps, rlo, rhi, deltas, sdeltas, c, code,
          refill, first, last):
    """Tiles first to last - 1 (C order over `grid`) with the scratch pair `a[pad:]`,
    `b[pad:]`; releases the GIL, so threads share them (one pair each).  `sdeltas` are the
    reads' flat offsets in the source array."""
    n4 = np.array(src4.shape, dtype=np.int64)
    size = E[0] * E[1] * E[2] * E[3]
    rows = np.empty(E[0] * E[1] * E[2], dtype=np.int64)
    grows = np.empty(E[0] * E[1] * E[2], dtype=np.int64)
    src = src4.reshape(src4.size)
    dst = dst4.reshape(dst4.size)
    none = np.empty(0, dtype=src4.dtype)
    g0, t, org, ext, off, _, _ = frame_vectors()
    for tile in range(first, last):
        ghosts = tile_frame(tile, grid, tshape, n4, nsteps, rlo, rhi, g0, t, org, ext, off)
        if ghosts:
            load_window(src4, a[pad:pad + size], E, org, ext, code, c[2])
        run_steps(a, b, pad, rows, grows, E, org, ext, nsteps, rlo, rhi, n4, deltas, c, code,
                  refill and ghosts, none if ghosts else src, sdeltas, dst)


@njit(cache=CACHE, nogil=True, error_model="numpy")
def _sweep_tile(src4, dst4, buf, rows, d, E, ax, R, L, nsteps, slo, shi, prlo, prhi, pn4,
                inplane, across, c, code, refill, ghosts, g0, t, org, ext, off, lo, hi):
    """All `nsteps` levels of one tile, swept plane by plane along axis `ax` (reach `slo`
    before and `shi` after along it; `prlo`, `prhi` across the plane)."""
    P = E[0] * E[1] * E[2] * E[3]
    n = src4.shape[ax]
    K = nsteps
    porg = org.copy()
    zero = np.zeros(4, dtype=np.int64)
    for q in range(-K * slo, n + K * L):
        for s in range(K + 1):
            p = q - s * L
            if refill:
                plo, phi = (-slo, n + shi) if s == 0 else (0, n)
            else:  # Wrap: ghost planes evolve like the planes they stand for
                plo, phi = -(K - s) * slo, n + (K - s) * shi
            out = ring_slot(s, p, R, P)
            if s == 0:
                if plo <= p < phi:
                    org[ax] = p
                    load_window(src4, buf[out:out + P], E, org, ext, code, c[2])
                continue
            if plo <= p < phi:
                for a in range(4):
                    lo[a] = s * prlo[a]
                    hi[a] = ext[a] - s * prhi[a]
                nrows = region_rows(rows, E, zero, lo, hi)
                for m in range(d.size):
                    d[m] = ring_slot(s - 1, p + across[m], R, P) + inplane[m]
                _step_rows(buf, buf[out:], rows, rows, nrows, hi[3] - lo[3], d, c)
                if refill and ghosts:
                    refill_ghosts(buf[out:out + P], E, porg, lo, hi, pn4, prlo, prhi, code,
                                  c[2])
            elif refill and s < K and n <= p < n + shi:
                r = resolve_index(p, n, code)
                copy_plane(buf, out, ring_slot(s, r, R, P), P, r < 0, c[2])
            if refill and s < K and p == L:
                # The planes before the first: the border rule on planes 0..L of this level.
                for j in range(1, slo + 1):
                    r = resolve_index(-j, n, code)
                    copy_plane(buf, ring_slot(s, -j, R, P), ring_slot(s, r, R, P), P, r < 0, c[2])
            if s == K and 0 <= p < n:
                g0[ax] = p
                store_centre(buf[out:out + P], E, off, dst4, g0, t)


@njit(cache=CACHE, nogil=True, error_model="numpy")
def sweep_tiles(src4, dst4, E, tshape, grid, nsteps, ax, slo, shi, prlo, prhi, R, L, inplane,
                across, c, code, refill, first, last):
    """Tiles first to last - 1 of the axes after `ax` (`tshape` and `grid` are 1 on the
    others), each swept along `ax` with all `nsteps` time levels in flight, level s one
    plane ``L`` behind level s - 1 in a ring of R planes per level; releases the GIL."""
    pn4 = np.array(src4.shape, dtype=np.int64)
    pn4[:ax + 1] = 1
    P = E[0] * E[1] * E[2] * E[3]
    buf = np.empty((nsteps + 1) * R * P, dtype=src4.dtype)
    rows = np.empty(E[0] * E[1] * E[2], dtype=np.int64)
    d = np.empty(inplane.size, dtype=np.int64)
    g0, t, org, ext, off, lo, hi = frame_vectors()
    for tile in range(first, last):
        ghosts = tile_frame(tile, grid, tshape, pn4, nsteps, prlo, prhi, g0, t, org, ext, off)
        _sweep_tile(src4, dst4, buf, rows, d, E, ax, R, L, nsteps, slo, shi, prlo, prhi, pn4,
                    inplane, across, c, code, refill, ghosts, g0, t, org, ext, off, lo, hi)


@njit(cache=CACHE, nogil=True, error_model="numpy")
def window_steps(win4, a, b, pad, E, org, nsteps, rlo, rhi, n4, deltas, c, code, refill):
    """Advance a whole window (global cells org + x) by `nsteps` in the scratch pair `a[pad:]`,
    `b[pad:]`; returns the buffer holding it."""
    size = E[0] * E[1] * E[2] * E[3]
    a[pad:pad + size] = win4.reshape(size)
    rows = np.empty(E[0] * E[1] * E[2], dtype=np.int64)
    grows = np.empty(E[0] * E[1] * E[2], dtype=np.int64)
    ext = np.array(win4.shape, dtype=np.int64)
    none = np.empty(0, dtype=win4.dtype)
    which = run_steps(a, b, pad, rows, grows, E, org, ext, nsteps, rlo, rhi, n4, deltas, c,
                      code, refill, none, deltas, none)
    return (b if which == 1 else a)[pad:pad + size]
'''
