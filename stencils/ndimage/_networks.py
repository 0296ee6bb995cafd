"""Selection networks for rank filters over small boxes, generated and compiled per (box, rank).

A box of ``h`` rows by ``w`` columns is ranked in two steps:

1. each column of ``h`` cells is sorted once per output row by a sorting
   network and shared by the ``w`` windows that contain it;
2. the ``h * w`` wires (columns already sorted) go through Batcher's odd-even
   merge sort, from which two prunings keep only what decides the output:
   comparators that never exchange on any input whose columns are sorted are
   dropped (checked on every 0-1 input of that kind: a comparator network
   commutes with thresholding, so a comparator that never exchanges 0-1 inputs
   never exchanges any input), then, walking back from the output wire, a
   comparator one of whose outputs is unused becomes a single min or max and
   one whose outputs are both unused disappears.

The network is then checked on every sorted-column 0-1 input (the 0-1
principle makes that a proof for all inputs) before its kernel is written.
The generated kernel (cached on disk like the stencil kernels) vectorises each
comparator of the merge across a row of outputs: straight-line min/max, no
branches.  It reads the unpadded source through extension maps of its rows and
columns: each task takes a band of output rows and keeps the band's extended
rows in a ring of ``h`` (each built once per band), counts the NaN of its own
rows on the way (the caller then discards the result), and writes straight
into the output.
"""

from __future__ import annotations

import functools
import hashlib
import itertools

import numpy as np

# Box sides a network is generated for (each box and rank is a kernel to compile;
# the 0-1 check runs (h + 1) ** w inputs).
_SIDES = (1, 3, 5)
_MAX_CELLS = 25
# Output rows per task of a kernel (its first h - 1 extended rows are built once per band).
BAND = 32


def _batcher(lo, hi):
    """Comparators of Batcher's odd-even merge sort of wires lo..hi (hi - lo + 1 a power of 2)."""
    if hi - lo < 1:
        return []
    mid = lo + (hi - lo) // 2
    return _batcher(lo, mid) + _batcher(mid + 1, hi) + _merge(lo, hi, 1)


def _merge(lo, hi, r):
    step = r * 2
    if step < hi - lo:
        return (_merge(lo, hi, step) + _merge(lo + r, hi, step)
                + [(i, i + r) for i in range(lo + r, hi - r, step)])
    return [(lo, lo + r)]


def sorting_network(n):
    """A sorting network of `n` wires: Batcher's for the next power of two, extra wires dropped.

    Dropping is sound: the missing wires would hold +inf, which no comparator moves.
    """
    size = 1 << max(0, (n - 1).bit_length())
    return [(i, j) for i, j in _batcher(0, size - 1) if j < n]


def _sorted_column_inputs(h, w):
    """Every 0-1 input whose columns are sorted: wire c*h + k is row k of column c."""
    columns = [np.array([[0] * (h - z) + [1] * z for z in range(h + 1)], np.uint8)]
    rows = [np.concatenate(parts) for parts in itertools.product(*(columns[0] for _ in range(w)))]
    return np.array(rows, np.uint8)


def _prune(h, w, rank):
    """The pruned network for rank `rank` of an h x w box with sorted columns: ops and wires read."""
    inputs = _sorted_column_inputs(h, w)
    state = inputs.copy()
    kept = []
    for i, j in sorting_network(h * w):
        swap = state[:, i] > state[:, j]
        if swap.any():
            lo = np.minimum(state[:, i], state[:, j])
            state[:, j] = np.maximum(state[:, i], state[:, j])
            state[:, i] = lo
            kept.append((i, j))
    expected = np.sort(inputs, axis=1)[:, rank]
    if not np.array_equal(state[:, rank], expected):
        raise AssertionError("selection network does not select the rank")  # pragma: no cover
    needed = {rank}
    ops = []
    for i, j in reversed(kept):
        use_i, use_j = i in needed, j in needed
        if use_i and use_j:
            ops.append(("cx", i, j))
        elif use_i:
            ops.append(("min", i, j))
        elif use_j:
            ops.append(("max", i, j))
        else:
            continue
        needed |= {i, j}
    ops.reverse()
    return ops, sorted(needed)


def _emit_network(lines, ops, names, indent, fresh):
    """Straight-line min/max for `ops` on wires named in `names` (updated in place).

    A comparator's low output is ``a if a < b else b`` and its high one ``b if a < b
    else a`` (ties and NaN keep those picks, so -0.0 against 0.0 too); written as
    Python's ``min(b, a)`` and ``max(a, b)``, which are exactly those, numba lowers
    each to one select instead of two branches: the 5x5 median's kernel compiled in
    about 28 s with the branches."""
    pad = " " * indent
    for op, i, j in ops:
        a, b = names[i], names[j]
        if op in ("cx", "min"):
            n = next(fresh)
            lines.append(f"{pad}{n} = min({b}, {a})")
        if op in ("cx", "max"):
            m = next(fresh)
            lines.append(f"{pad}{m} = max({a}, {b})")
        if op in ("cx", "min"):
            names[i] = n
        if op in ("cx", "max"):
            names[j] = m


def _source(h, w, rank, name):
    ops, wires = _prune(h, w, rank)
    column_ops = [("cx", i, j) for i, j in sorting_network(h)]
    fresh = (f"t{k}" for k in itertools.count())
    lines = [
        "import numpy as np",
        "from numba import njit, prange",
        "",
        "from stencils._kernels_order import count_nan, extended_chunk",
        "",
        "",
        "@njit(parallel=True, cache=True, nogil=True)",
        f"def {name}(src, out, rowmap, colmap, cval, lox, check_nan, band):",
        f"    # rank {rank} of a {h} x {w} box: {len(ops)} min/max ops per point after sorting columns",
        "    outer, H, W = out.shape",
        f"    wp = W + {w - 1}",
        "    nbands = (H + band - 1) // band",
        "    nan = np.zeros(outer * nbands, np.int64)",
        "    for task in prange(outer * nbands):",
        "        o = task // nbands",
        "        y0 = (task % nbands) * band",
        "        plane = src[o]",
        # the band's extended rows, h of them in a ring: each extended once per band
        f"        ring = np.empty(({h}, wp), src.dtype)",
        f"        cols = np.empty(({h}, wp), src.dtype)",
        f"        for k in range({h - 1}):",
        f"            extended_chunk(ring[(y0 + k) % {h}], plane, rowmap[y0 + k], 0, wp, lox, "
        "colmap, cval)",
    ]
    lines += [f"        c{k} = cols[{k}]" for k in range(h)]
    lines += [
        "        for y in range(y0, min(H, y0 + band)):",
        f"            extended_chunk(ring[(y + {h - 1}) % {h}], plane, rowmap[y + {h - 1}], 0, wp, "
        "lox, colmap, cval)",
        "            if check_nan:",
        "                nan[task] += count_nan(plane[y], True)",
    ]
    lines += [f"            r{k} = ring[(y + {k}) % {h}]" for k in range(h)]
    lines.append("            for x in range(wp):")
    names = {k: f"a{k}" for k in range(h)}
    lines += [f"                a{k} = r{k}[x]" for k in range(h)]
    _emit_network(lines, column_ops, names, 16, fresh)
    lines += [f"                c{k}[x] = {names[k]}" for k in range(h)]
    lines += ["            orow = out[o, y]", "            for x in range(W):"]
    names = {}
    for wire in wires:
        c, k = divmod(wire, h)
        names[wire] = f"v{wire}"
        lines.append(f"                v{wire} = c{k}[x + {c}]")
    _emit_network(lines, ops, names, 16, fresh)
    lines += [f"                orow[x] = {names[rank]}", "    return nan.sum()"]
    return "\n".join(lines) + "\n"


@functools.lru_cache(maxsize=64)
def _kernel(h, w, rank):
    from .. import _kernels_order
    from .._engine import _FINGERPRINT, import_generated, source_digest

    name = f"select_{h}x{w}_rank{rank}"
    source = _source(h, w, rank, name)
    # The kernel calls _kernels_order's helpers, whose changes numba's cache would miss.
    salt = _FINGERPRINT + source_digest((_kernels_order,))
    key = hashlib.sha1((source + salt).encode()).hexdigest()[:16]
    return getattr(import_generated("stencils_ndimage_" + key, source), name)


def network_kernel(footprint, rank, dtype):
    """A compiled kernel for the median of box `footprint`, or None.

    The kernel ``(src3, out3, rowmap, colmap, cval, lox, check_nan, band)`` reads
    the unpadded (outer, H, W) source through the extension maps of its rows
    and columns (`stencils._kernels_order.extension_map`; -1: cval), writes
    every cell of `out3`, and returns how many NaN the source holds when
    `check_nan` (the caller then discards the result: NaN takes scipy's own
    steps); each task takes `band` output rows (`BAND`).

    None unless `rank` is the median (``cells // 2``) of a box of sides 1, 3
    or 5 spanning only the last two axes: each (box, rank) is a kernel of its
    own to compile (seconds, then cached on disk), so other ranks select by
    quickselect.
    """
    if not footprint.all() or footprint.size > _MAX_CELLS or footprint.size < 2:
        return None
    if rank != footprint.size // 2:
        return None
    shape = footprint.shape
    if any(f > 1 for f in shape[:-2]):
        return None
    h, w = (shape[-2], shape[-1]) if len(shape) >= 2 else (1, shape[-1])
    if len(shape) < 2 or h not in _SIDES or w not in _SIDES:
        return None
    if dtype.kind not in "iuf":
        return None
    return _kernel(h, w, rank)
