"""Dask backend: stencils over chunked arrays, serial kernels chunk by chunk.

`stencils.map_stencil` / `apply_stencil` on a dask array give a lazy
`WindowedArray` whose source is the dask array; `compute` and
`compute_with_stride` (and so `correlate` / `convolve`) then return a lazy dask
array built here.  Nothing here imports dask unless a dask array was given.

How a chunk is computed
-----------------------
Per axis (source length ``n``, stencil size ``S``, step ``s``, box start
``lo = -from_origin``), output ``j`` reads source cells ``j*s + lo + k`` for
``k`` in ``0..S-1``.  The output chunks are chosen first: output ``j`` goes
with the source chunk that holds its centre ``j*s + lo + center``, so output
chunks follow the source's chunks and every block boundary falls on a stride
point (outputs in a long padding, all in the first or last chunk, are split
into chunks of about the source's).  An output chunk ``[j0, j1)`` reads the source range
``[j0*s + lo, (j1-1)*s + lo + S)``; its *window* is that range materialised:

- cells inside the array are sliced from whichever source chunks hold them
  (any number of them: chunks smaller than the stencil's reach are fine);
- cells outside the array are, for every border but Fill, the cells the
  border's own rule names (`stencils._kernels_border.resolve_index` with the whole
  axis length, so massiv's period-``n`` far field, scipy's period ``2n`` /
  ``2n - 2`` and Wrap are exact at every distance), gathered as runs of
  ascending, descending or repeated cells; in the far field of a mirror or Wrap
  (reads a whole axis length or more past an end: the axis is short) the task
  fetches the whole axis and indexes it instead;
- with Fill they are left out and the kernel's own Fill answers them (a read
  outside the window is then exactly a read outside the array).

Two tasks per source chunk: one cuts from it the pieces that other chunks'
windows read (views, shipped instead of whole chunks on a cluster), one computes
an output chunk with the serial, ``nogil`` kernel
(``_engine.run(..., parallel=False)``; a ``parallel=True`` kernel must not run
on Dask's threads).  Where the source chunk holding most of the window is
C-contiguous, the bulk of the output is computed from it in place (no copy) and
only the thin bands near its faces from small gathered windows; otherwise the
window is gathered into a per-thread buffer first.  This is
``dask.array.map_overlap`` with ``boundary='none'``, ``trim=False`` and explicit
output chunks, written as its own graph layer so that the halo can be
asymmetric, larger than a chunk, strided and border-aware without rechunking.
"""

from __future__ import annotations

import bisect
import hashlib
import itertools
import pickle

import numpy as np

from . import _engine
from ._kernels_border import EDGE, FILL, resolve_indices
from ._scratch import Scratch
from ._validate import compute_dtype
from .errors import StencilTypeError, StencilValueError

__all__ = ["is_dask_array", "as_dask_source", "compute"]


def is_dask_array(x):
    """True for a dask array, without importing dask."""
    return type(x).__module__.split(".")[0] == "dask" and hasattr(x, "map_overlap")


def as_dask_source(array, *, param="array"):
    """The dask array with the dtype policy of stencils._validate applied (lazily)."""
    meta = getattr(array, "_meta", None)
    if meta is not None and type(meta) is not np.ndarray:
        raise StencilTypeError(
            f"{param} is a dask array of {type(meta).__module__}.{type(meta).__name__} chunks; "
            "only NumPy chunks are supported (e.g. x.map_blocks(cupy.asnumpy) first).",
            param=param, value=type(meta).__name__, expected="a dask array of numpy.ndarray chunks",
        )
    dtype = compute_dtype(array.dtype, param=param)
    if array.ndim == 0:
        raise StencilValueError(
            f"{param} is a 0-D dask array; a stencil needs at least one axis. "
            "Use dask.array.atleast_1d.",
            param=param, value=array.shape, expected="at least 1-D",
        )
    if any(c != c for chunks in array.chunks for c in chunks):
        raise StencilValueError(
            f"{param} has unknown chunk sizes {array.chunks} (e.g. after boolean indexing); "
            "call x.compute_chunk_sizes() first.",
            param=param, value=array.chunks, expected="known chunk sizes",
        )
    if array.dtype != dtype:
        array = array.astype(dtype)
    return array


# -- per-axis planning ---------------------------------------------------------

def _runs(idx):
    """Split a sequence of source indices into runs ``(first, step, length)``, step in -1, 0, 1."""
    runs = []
    idx = [int(i) for i in idx]
    i, n = 0, len(idx)
    while i < n:
        if i + 1 < n and abs(idx[i + 1] - idx[i]) <= 1:
            step = idx[i + 1] - idx[i]
            j = i + 1
            while j + 1 < n and idx[j + 1] - idx[j] == step:
                j += 1
            runs.append((idx[i], step, j - i + 1))
            i = j + 1
        else:
            runs.append((idx[i], 1, 1))
            i += 1
    return runs


def _window_runs(a, b, n, code):
    """Runs of source cells that answer the reads ``[a, b)``, the window's local box start,
    and where the cells inside the array sit: ``(first cell, window offset, length)``.

    None for the far field of a mirror or Wrap (reads a whole axis length or
    more past an end): that window is indexed from the whole axis instead.
    """
    start, stop = max(a, 0), min(b, n)
    mid = (start, 0, stop - start) if start < stop else None
    if code == FILL:
        if mid is None:
            return [], 0, None
        return [(start, 1, stop - start)], a - start, mid
    if code != EDGE and (a < -n or b > 2 * n):
        return None
    runs = []
    if a < min(b, 0):
        if code == EDGE:
            runs.append((0, 0, min(b, 0) - a))
        else:
            runs += _runs(resolve_indices(np.arange(a, min(b, 0)), n, code))
    if mid is not None:
        mid = (start, sum(r[2] for r in runs), stop - start)
        runs.append((start, 1, stop - start))
    if max(a, n) < b:
        if code == EDGE:
            runs.append((n - 1, 0, b - max(a, n)))
        else:
            runs += _runs(resolve_indices(np.arange(max(a, n), b), n, code))
    return runs, 0, mid


def _far_field_index(a, b, n, code):
    """The source cell answering each read in ``[a, b)`` (not Fill): a far-field window."""
    return resolve_indices(np.arange(a, b, dtype=np.int64), n, code)


def _split_run(run, bounds):
    """Pieces ``(chunk, local slice, dest offset, dest length)`` of one run over the chunks."""
    first, step, length = run
    pieces = []
    if step == 0:
        c = bisect.bisect_right(bounds, first) - 1
        o = first - bounds[c]
        return [(c, slice(o, o + 1), 0, length)]
    lo, hi = (first, first + length) if step == 1 else (first - length + 1, first + 1)
    c = bisect.bisect_right(bounds, lo) - 1
    while lo < hi:
        end = min(hi, bounds[c + 1])
        if end > lo:
            o = bounds[c]
            if step == 1:
                pieces.append((c, slice(lo - o, end - o), lo - first, end - lo))
            else:  # cells end-1 down to lo, placed after the cells above them
                stop = lo - o - 1
                pieces.append((c, slice(end - 1 - o, stop if stop >= 0 else None, -1),
                               first - (end - 1), end - lo))
            lo = end
        c += 1
    return pieces


# Output chunks longer than twice max(this, source chunk / step) are split:
# padding puts every output past the array into the first or last chunk.
_MIN_SPLIT = 1024
_MAX_SPLIT = 10_000  # pieces per long chunk at most (a padding beyond memory stays lazy)


def _axis_plan(n, chunks, size, center, lo, step, m, code):
    """Output chunks of one axis and, per output chunk, ``(window length, box start, pieces,
    home, take, region length)``: the pieces fill a region; `take` (or None) says how
    to index it (`_far_field_index`)."""
    bounds = [0]
    for c in chunks:
        bounds.append(bounds[-1] + c)
    cuts = [0]
    for b in bounds[1:-1]:
        j = min(max(-(-(b - lo - center) // step), 0), m)
        if j > cuts[-1]:
            cuts.append(j)
    if m > cuts[-1]:
        cuts.append(m)
    target = max(-(-max(chunks) // step), _MIN_SPLIT)
    split = [0]
    for j0, j1 in zip(cuts[:-1], cuts[1:]):
        if j1 - j0 > 2 * target:
            k = min(-(-(j1 - j0) // target), _MAX_SPLIT)
            split.extend(j0 + (j1 - j0) * t // k for t in range(1, k))
        split.append(j1)
    out_chunks, blocks = [], []
    for j0, j1 in zip(split[:-1], split[1:]):
        a = j0 * step + lo
        b = (j1 - 1) * step + lo + size
        take, plan = None, _window_runs(a, b, n, code)
        if plan is None:  # the whole axis, indexed in the task
            take, plan = (a, b, n, code), ([(0, 1, n)], 0, None)
        runs, local_lo, mid = plan
        pieces, offset = [], 0
        for run in runs:
            for c, sl, dest, length in _split_run(run, bounds):
                pieces.append((c, sl, offset + dest, length))
            offset += run[2]
        home = None
        if mid is not None:  # the chunk holding most of the cells inside the array
            first, at, length = mid
            c = max(range(len(chunks)), key=lambda c: (
                min(bounds[c + 1], first + length) - max(bounds[c], first)))
            home = (c, at + bounds[c] - first)
        out_chunks.append(j1 - j0)
        blocks.append((offset if take is None else b - a, local_lo, pieces, home, take, offset))
    return tuple(out_chunks), blocks


# -- the chunk function ---------------------------------------------------------

# Each thread keeps its last window buffer: a fresh multi-MB array costs page
# faults on every task (the kernel's time again, measured), a reused one does not.
_window_buffer = Scratch(64 << 20).array


def _gather(pieces, dests, ranges, dtype, scratch):
    """The window cells ``ranges`` (per axis ``(start, stop)``), copied from the pieces."""
    shape = tuple(b - a for a, b in ranges)
    buf = _window_buffer(shape, dtype) if scratch else np.empty(shape, dtype=dtype)
    for dest, piece in zip(dests, pieces):
        src, dst = [], []
        for (c0, c1), d, n in zip(ranges, dest, piece.shape):
            i0, i1 = max(d.start, c0), min(d.stop, c1)
            if i1 <= i0:
                break
            # n == 1 < d.stop - d.start: one cell repeated (Edge, or a far-field run).
            src.append(slice(0, 1) if n != d.stop - d.start else slice(i0 - d.start, i1 - d.start))
            dst.append(slice(i0 - c0, i1 - c0))
        else:
            buf[tuple(dst)] = piece[tuple(src)]
    return buf


def _region(stencil, border, pieces, dests, window_shape, lo, step, size, region, target, dtype):
    """Compute the outputs ``region`` (per axis ``(start, stop)``) into `target` from the pieces."""
    ranges, sub_lo = [], []
    for (r0, r1), w, l, s, k in zip(region, window_shape, lo, step, size):
        a, b = r0 * s + l, (r1 - 1) * s + l + k
        c0, c1 = min(max(a, 0), w), max(min(b, w), 0)
        c1 = max(c1, c0)
        ranges.append((c0, c1))
        sub_lo.append(a - c0)
    window = _gather(pieces, dests, ranges, dtype, scratch=True)
    _engine.run(stencil, window, target, tuple(sub_lo), step, border, parallel=False)


def _bulk(stencil, border, pieces, dests, window_shape, lo, step, out, chunk, home):
    """Compute `out` mostly straight from the home chunk, without copying it.

    The output rows (axis 0) whose reads on every axis fall inside the home
    chunk, taken whole along the other axes, form a C-contiguous slab of `out`:
    the kernel computes it from the home chunk in place.  Its cells near the
    home chunk's faces on the other axes read past it (answered by `border` on
    the chunk, so wrongly); those bands, and the rows above and below the slab,
    are then computed from small windows gathered from the pieces.  False when
    there is no such slab (chunks smaller than the reach): gather it all then.
    """
    if not chunk.flags.c_contiguous or chunk.dtype != out.dtype:
        return False
    size = stencil.size
    inside = []
    for e0, n, l, s, k, m in zip(home, chunk.shape, lo, step, size, out.shape):
        t0 = max(0, -(-(e0 - l) // s))
        t1 = min(m, (e0 + n - l - k) // s + 1)
        if t1 <= t0:
            return False
        inside.append((t0, t1))
    (u0, u1), ndim = inside[0], out.ndim
    bulk_lo = tuple((u0 if ax == 0 else 0) * s + l - e0
                    for ax, (e0, l, s) in enumerate(zip(home, lo, step)))
    _engine.run(stencil, chunk, out[u0:u1], bulk_lo, step, border, parallel=False)
    full = [(0, m) for m in out.shape]
    args = (stencil, border, pieces, dests, window_shape, lo, step, size)
    for r0, r1 in ((0, u0), (u1, out.shape[0])):
        if r1 > r0:
            _region(*args, [(r0, r1)] + full[1:], out[r0:r1], out.dtype)
    for ax in range(1, ndim):
        t0, t1 = inside[ax]
        for r0, r1 in ((0, t0), (t1, out.shape[ax])):
            if r1 > r0:
                region = [(u0, u1)] + full[1:ax] + [(r0, r1)] + full[ax + 1:]
                band = np.empty(tuple(b - a for a, b in region), dtype=out.dtype)
                _region(*args, region, band, out.dtype)
                out[tuple(slice(a, b) for a, b in region)] = band
    return True


class _Slices:
    """Slices, as ``(start, stop, step)`` per axis, kept opaque in the task graph."""

    __slots__ = ("items",)

    def __init__(self, items):
        self.items = items

    def __reduce__(self):
        return (_Slices, (self.items,))


def _cut(chunk, slices):
    """The pieces of one source chunk that other chunks' windows read (views)."""
    return [chunk[tuple(slice(*t) for t in sl)] for sl in slices.items]


class _Spec:
    """What one output chunk's task needs besides its dependencies.

    One opaque value per task: dask copies it through the graph as a literal
    instead of walking nested tuples of slices in every task.
    """

    __slots__ = ("stencil", "border", "window_shape", "dests", "refs", "lo", "step",
                 "out_shape", "dtype", "home", "region_shape", "takes")

    def __init__(self, stencil, border, window_shape, dests, refs, lo, step, out_shape, dtype,
                 home, region_shape=None, takes=None):
        self.stencil = stencil
        self.border = border
        self.window_shape = window_shape
        self.dests = dests
        self.refs = refs
        self.lo = lo
        self.step = step
        self.out_shape = out_shape
        self.dtype = dtype
        self.home = home
        self.region_shape = region_shape
        self.takes = takes

    def __reduce__(self):
        return (_Spec, tuple(getattr(self, name) for name in self.__slots__))


def _block(spec, *deps):
    """One output chunk, from the pieces of its window (see the module's docstring).

    `deps` are whole source chunks and the lists of pieces cut from others
    (`_cut`); ``spec.refs`` says which is which piece.  ``spec.home`` (or
    None) names the whole source chunk holding most of the window and where it
    starts in the window, per axis.  A plain module-level function, so that it
    pickles by reference for dask.distributed.
    """
    stencil, border, dtype = spec.stencil, spec.border, spec.dtype
    window_shape, dests, lo, step = spec.window_shape, spec.dests, spec.lo, spec.step
    pieces = [deps[arg] if pos < 0 else deps[arg][pos] for arg, pos in spec.refs]
    out = np.empty(spec.out_shape, dtype=dtype)
    if spec.home is not None:
        arg, at = spec.home
        if _bulk(stencil, border, pieces, dests, window_shape, lo, step, out, deps[arg], at):
            return out
    if spec.takes is not None:  # far field: gather the region, then index it
        window = _gather(pieces, dests, [(0, r) for r in spec.region_shape], dtype,
                         scratch=False)
        for ax, take in enumerate(spec.takes):
            if take is not None:
                window = np.take(window, _far_field_index(*take), axis=ax)
        window = np.ascontiguousarray(window)
    elif (len(pieces) == 1 and pieces[0].shape == tuple(window_shape)
            and pieces[0].flags.c_contiguous and pieces[0].dtype == dtype):
        window = pieces[0]
    else:
        window = _gather(pieces, dests, [(0, w) for w in window_shape], dtype, scratch=True)
    _engine.run(stencil, window, out, lo, step, border, parallel=False)
    return out


def _token(src_name, stencil, *parts):
    """A deterministic graph name for this stencil applied to this source."""
    blob = pickle.dumps((src_name, stencil, parts), protocol=4)
    return hashlib.sha1(blob).hexdigest()[:20]


def compute(plan):
    """A lazy dask array of `plan` (a `stencils._plan.Plan` with a dask source)."""
    import dask.array as da
    from dask.highlevelgraph import HighLevelGraph

    src, stencil, border, dtype = plan.source, plan.stencil, plan.border, plan.dtype
    box_lo, step, out_shape = plan.lo, plan.step, plan.shape
    meta = np.empty((0,) * src.ndim, dtype=dtype)
    if 0 in out_shape:
        return da.empty(out_shape, dtype=dtype, chunks=out_shape)
    axis_plans = [
        _axis_plan(n, chunks, size, center, lo, s, m, border.code)
        for n, chunks, size, center, lo, s, m in zip(
            src.shape, src.chunks, stencil.size, stencil.center, box_lo, step, out_shape)
    ]
    out_chunks = tuple(p[0] for p in axis_plans)
    token = _token(src.name, stencil, border, box_lo, tuple(step), out_shape)
    name = "stencil-" + token
    # Per axis and output chunk, each piece once: (chunk, whole chunk?, slice triple, dest).
    axes = [
        [[(c, sl.start == 0 and sl.step in (None, 1) and sl.stop == chunks[c],
           (sl.start, sl.stop, sl.step), slice(at, at + length))
          for c, sl, at, length in block[2]] for block in axis_plan[1]]
        for axis_plan, chunks in zip(axis_plans, src.chunks)
    ]
    dsk = {}
    cuts = {}  # source chunk key -> {slice triples: position in its halo task's list}
    halo = "halo-" + name
    for index in itertools.product(*(range(len(p[1])) for p in axis_plans)):
        blocks = [p[1][i] for p, i in zip(axis_plans, index)]
        deps, refs, dests = {}, [], []  # deps: dependency key -> argument index
        for combo in itertools.product(*(ax[i] for ax, i in zip(axes, index))):
            cidx = tuple(p[0] for p in combo)
            if all(p[1] for p in combo):
                refs.append((deps.setdefault((src.name,) + cidx, len(deps)), -1))
            else:
                wanted = cuts.setdefault(cidx, {})
                pos = wanted.setdefault(tuple(p[2] for p in combo), len(wanted))
                refs.append((deps.setdefault((halo,) + cidx, len(deps)), pos))
            dests.append(tuple(p[3] for p in combo))
        home = None
        homes = [b[3] for b in blocks]
        if all(h is not None for h in homes):
            key = (src.name,) + tuple(h[0] for h in homes)
            if not (len(refs) == 1 and refs[0][1] < 0 and key in deps):
                home = (deps.setdefault(key, len(deps)), tuple(h[1] for h in homes))
        shape = tuple(out_chunks[ax][i] for ax, i in enumerate(index))
        takes = region = None
        if any(b[4] is not None for b in blocks):
            takes, region = tuple(b[4] for b in blocks), tuple(b[5] for b in blocks)
        spec = _Spec(stencil, border, tuple(b[0] for b in blocks), dests, refs,
                     tuple(b[1] for b in blocks), step, shape, dtype, home, region, takes)
        dsk[(name,) + index] = (_block, spec) + tuple(deps)
    for cidx, wanted in cuts.items():
        dsk[(halo,) + cidx] = (_cut, (src.name,) + cidx, _Slices(list(wanted)))
    graph = HighLevelGraph.from_collections(name, dsk, dependencies=[src])
    return da.Array(graph, name, out_chunks, meta=meta)
