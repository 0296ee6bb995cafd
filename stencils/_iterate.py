"""Time stepping: a stencil applied again and again (massiv's ``iterateUntil``).

One step is ``map_stencil(border, stencil, state)``: output ``i`` has the
stencil's centre at ``i`` and reads outside the array go through `border`.
Two buffers serve any number of steps (ping-pong).

Many steps are fused per pass over memory (temporal blocking with overlapped
tiles): each tile computes ``K`` steps in a cache-sized scratch pair from its
own cells plus a halo of ``K`` times the stencil's reach, and writes back only
its own cells (stencils._kernels_iterate).  Every point is computed by the same
expression, from the same values, as a single step through the engine, so the
results are bit-identical to stepping one pass at a time.  Ghost cells (outside
the array) are re-answered by the border rule after every fused step; the tile
planner makes every cell that rule names part of the tile (whole axes where an
axis is shorter than the halo), except for Wrap, whose ghost cells evolve
exactly like the cells they stand for.

A 3-D or 4-D state is swept instead (`_sweep_plan`): only the axes after the
first are tiled, and each tile walks the first axis plane by plane with all
``K`` time levels in flight, each level a few planes behind the one before in a
ring of planes, so that nothing is computed twice along that axis.

``dtype=`` steps the state in a chosen dtype: float32, float64, or an integer
dtype whose every operation wraps modulo 2**bits (massiv's ``Word8``/``Int``);
the integer step is generated with a cast per operation and literal weights,
so that LLVM computes it in lanes of that width.

Stencils the fused kernel does not take (more than ``_MAX_NODES`` expression
nodes, or a weighted sum of more than 32 reads, which the engine computes one
kernel row at a time and so rounds differently) step through the engine.
"""

from __future__ import annotations

import hashlib
import queue

import numpy as np

from . import _codegen, _dask, _engine
from . import _expr as ex
from . import _kernels as kn
from . import _kernels_border
from . import _kernels_iterate as ki
from ._border import FILL, WRAP, as_border
from ._stencil import check_stencil
from ._validate import as_source_array, prepare_out
from ._windowed import _check_ranks
from .errors import StencilTypeError, StencilValueError

__all__ = ["iterate", "iterate_until"]

_MAX_NODES = 400
_SINGLE_PASS_TAPS = 32  # the engine's limit for a one-pass weighted sum (stencils._lower)
_DEFAULT_CACHE = 1 << 20
_MIN_ROW = 256


# -- the generated step function ---------------------------------------------------

def _fusable(expr):
    order = ex.topological_order(expr)
    if len(order) > _MAX_NODES:
        return False
    many_taps = (expr.op == "lin" and len(expr.args) > _SINGLE_PASS_TAPS
                 and all(t.op == "read" for t in expr.args))
    return not many_taps


# Operators an integer state computes exactly, each wrapping modulo 2**bits as
# NumPy's integer arrays and massiv's Word8/Int do (comparisons give 0 or 1).
_INTEGER_OPS = frozenset({"read", "const", "lin", "mul", "max", "min", "fmax", "fmin", "lt",
                          "le", "gt", "ge", "eq", "ne", "and", "or", "xor", "not", "neg", "abs",
                          "where", "sign"})


def _is_integer(dtype):
    return dtype.kind in "iu"


def _wrap_int(value, dtype):
    """The integral `value` modulo 2**bits, as `dtype` holds it (massiv's ``fromInteger``)."""
    bits = 8 * dtype.itemsize
    wrapped = int(value) % (1 << bits)
    if dtype.kind == "i" and wrapped >= 1 << (bits - 1):
        wrapped -= 1 << bits
    return wrapped


def _check_integer_step(stencil, border, dtype):
    """Refuse a step that integers cannot compute exactly."""
    order = ex.topological_order(stencil.expr)
    expected = "a float dtype (or None) for this stencil"
    for node in order:
        if node.op not in _INTEGER_OPS:
            raise StencilValueError(
                f"dtype={dtype.name} computes the step in integers, but the stencil uses "
                f"{node.op!r}, which has no exact integer meaning (true division, powers and "
                "transcendental functions do not); step it in a float dtype.",
                param="dtype", value=dtype.name, expected=expected)
        numbers = node.args if node.op == "const" else node.weights
        for w in numbers:
            if not float(w).is_integer():
                raise StencilValueError(
                    f"dtype={dtype.name} computes the step in integers, but the stencil has "
                    f"the constant {w!r}, which is not an integer; step it in a float dtype.",
                    param="dtype", value=dtype.name, expected=expected)
    if len(order) > _MAX_NODES:
        raise StencilValueError(
            f"dtype={dtype.name}: the stencil has {len(order)} expression nodes; integer steps "
            f"are generated for at most {_MAX_NODES}.",
            param="dtype", value=dtype.name, expected=expected)
    if not float(border.value).is_integer():
        raise StencilValueError(
            f"border={border!r} fills with a non-integer, which a {dtype.name} state cannot "
            "hold.", param="border", value=border, expected="Fill of an integer")


def _constants(step, border, dtype):
    """The kernels' constant array: zero, one, the fill value, then the step's parameters
    (an integer step has its parameters as literals)."""
    if _is_integer(dtype):
        return np.array([0, 1, _wrap_int(border.value, dtype)], dtype=dtype)
    return np.array([0.0, 1.0, border.value] + list(step.params), dtype=dtype)


def _step_source(expr, int_dtype=None):
    """`_step_rows`: the expression at every cell of a run of rows, as the engine writes it.

    Statements, their order and the parameter order are the engine's generated
    kernels' (stencils._codegen.expression_statements), so each cell rounds
    exactly as a single step does.  With an integer `int_dtype` every statement
    is cast to it (each operation wraps modulo 2**bits, and LLVM computes it in
    lanes of that width) and the weights and constants are literals: a product
    by a runtime one costs a widening multiply per lane, a literal one nothing.
    """
    order = ex.topological_order(expr)
    reads = [n for n in order if n.op == "read"]
    read_slot = {id(r): m for m, r in enumerate(reads)}
    statements, params, result = _codegen.expression_statements(
        order, lambda node: f"v{read_slot[id(node)]}[t]")
    lines = [
        "@njit(cache=CACHE, nogil=True, error_model='numpy', fastmath=FASTMATH)",
        "def _step_rows(a, b, rows, orows, nrows, length, d, c):",
    ]
    if int_dtype is None:
        body = [f"{name} = {rhs}" for name, rhs in statements]
        lines += ["    _zero = c[0]", "    _one = c[1]"]
        lines += [f"    p{i} = c[3 + {i}]" for i in range(len(params))]
    else:
        cast = f"np.{int_dtype.name}"
        body = [f"{name} = {rhs if rhs.startswith('v') else f'{cast}({rhs})'}"
                for name, rhs in statements]
        lines += [f"    _zero = {cast}(0)", f"    _one = {cast}(1)"]
        lines += [f"    p{i} = {cast}({_wrap_int(w, int_dtype)})" for i, w in enumerate(params)]
    lines += [f"    d{m} = d[{m}]" for m in range(len(reads))]
    lines += [
        "    for i in range(nrows):",
        "        base = rows[i]",
        "        o = b[orows[i]:orows[i] + length]",
    ]
    lines += [f"        v{m} = a[base + d{m}:]" for m in range(len(reads))]
    lines += ["        for t in range(length):"]
    lines += ["            " + s for s in body]
    lines += [f"            o[t] = {result}"]
    return "\n".join(lines), reads, params


_FINGERPRINT = _engine.source_digest((kn, _kernels_border, ki))


class _Step:
    """A stencil's fused-step module, its reads (offsets from the centre) and parameters."""

    __slots__ = ("module", "offsets", "params")

    def __init__(self, module, offsets, params):
        self.module, self.offsets, self.params = module, offsets, params


def _load(source):
    key = hashlib.sha1(source.encode()).hexdigest()[:20]
    return _engine.import_generated(f"stencils_iterate_{key}", source)


def _step_module(stencil, dtype):
    """The fused-step module of `stencil` for states of `dtype`, or None when it steps
    through the engine."""
    # Its source is written on every call (cheap next to a time loop); the
    # module behind it is loaded once per structure.
    step = None
    integer = _is_integer(dtype)
    if integer or _fusable(stencil.expr):
        body, reads, params = _step_source(stencil.expr, dtype if integer else None)
        source = "\n".join([
            f"# Generated by stencils.iterate for one stencil structure; {_FINGERPRINT}.",
            "import numpy as np",
            "from numba import njit",
            "from stencils._kernels import (CACHE, FASTMATH, resolve_index, op_max, op_min,",
            "                               op_fmax, op_fmin, op_sign, op_mod)",
            "from stencils._kernels_iterate import (load_window, refill_ghosts, store_centre,",
            "                                       region_rows, copy_plane, tile_frame,",
            "                                       ring_slot, frame_vectors, VECTOR_BYTES)",
            "", "", body, ki.DRIVER_SOURCE,
        ])
        step = _Step(_load(source), [r.args for r in reads], params)
    return step


# -- planning -----------------------------------------------------------------------

def _reach4(stencil, offsets):
    """Per axis (4-D, leading axes padded), how far the reads go before and after."""
    pad = 4 - stencil.ndim
    lo = np.zeros(4, dtype=np.int64)
    hi = np.zeros(4, dtype=np.int64)
    for d in offsets:
        for a, x in enumerate(d):
            lo[pad + a] = max(lo[pad + a], -x)
            hi[pad + a] = max(hi[pad + a], x)
    return lo, hi


def _cache_bytes():
    """Twice the L2 cache of one core: the budget of one thread's scratch pair (the halo
    rows beyond L2 come from L3; measured as fast as pairs within L2)."""
    path = "/sys/devices/system/cpu/cpu0/cache/index2/size"
    try:
        with open(path) as f:
            text = f.read().strip()
        scale = {"K": 1 << 10, "M": 1 << 20}.get(text[-1], 1)
        return 2 * int(text.rstrip("KM")) * scale
    except (OSError, ValueError):
        return 2 * _DEFAULT_CACHE


# Cost model for the fusion depth, per cell and step on one thread: the cells
# computed (tile plus the shrinking halo, relative to the tile), each costing
# _NODE_NS per expression node per 64-byte vector of cells (measured on one
# thread in cache: 0.15 ns a cell for the float32 Jacobi step, 0.3 for float64,
# 0.11 for the uint8 Game of Life, all about 0.4 ns a node and vector), plus the
# cell's share of one pass over memory (read and write) every `depth` steps at
# _BYTES_PER_NS.  Cheap cells (narrow dtypes, few nodes) are worth deeper fusion.
_NODE_NS = 0.4
_VECTOR_BYTES = 64
_BYTES_PER_NS = 10.0


def _default_depth(shape4, rlo, rhi, nsteps, itemsize, cache, nodes):
    """The fusion depth (1 to 16) the cost model finds cheapest."""
    best, best_cost = 1, None
    for k in range(1, min(nsteps, 16) + 1):
        halo = k * (rlo + rhi)
        tshape = _tile_shape(shape4, halo, itemsize, cache)
        grown = np.prod([(t + (k - 1) / 2 * (lo + hi)) / t
                         for t, lo, hi in zip(tshape, rlo, rhi)])
        cell_ns = _NODE_NS * nodes * itemsize / _VECTOR_BYTES
        cost = grown * cell_ns + 2 * itemsize / k / _BYTES_PER_NS
        if best_cost is None or cost < best_cost * 0.98:
            best, best_cost = k, cost
    return best


def _tile_shape(shape4, halo, itemsize, cache):
    """The largest tile whose scratch pair fits in `cache` bytes.

    Rows (the last axis) are at least _MIN_ROW cells where the array allows:
    short rows cost more in loop overhead than their halo saves (measured in
    3-D: 16 x 16 x 128 tiles 1.7x faster than 32^3 cubes).
    """
    budget = max(1, cache // (2 * itemsize))

    def tile(side, min_row):
        return [min(n, side) for n in shape4[:3]] + [min(shape4[3], max(side, min_row))]

    def fits(t):
        return np.prod([x + h for x, h in zip(t, halo)]) <= budget

    min_row = min(shape4[3], _MIN_ROW)
    if not fits(tile(1, min_row)):
        min_row = 1
    lo_side, hi_side = 1, int(max(shape4))
    while lo_side < hi_side:
        side = (lo_side + hi_side + 1) // 2
        if fits(tile(side, min_row)):
            lo_side = side
        else:
            hi_side = side - 1
    return tile(lo_side, min_row)


def _plan(shape4, rlo, rhi, depth, code, itemsize, tile, cache):
    """Tile shape (4-D) such that every cell the border rule names lies in the tile."""
    halo = depth * (rlo + rhi)
    if tile is None:
        # As many tiles as the largest fitting side needs, cut to equal sides: a
        # thin last tile would cost a whole halo for few cells.
        tshape = [-(-n // -(-n // t)) for n, t in zip(shape4, _tile_shape(shape4, halo,
                                                                          itemsize, cache))]
    else:
        tshape = [min(n, t) for n, t in zip(shape4, tile)]
    needs_rule = code not in (FILL, WRAP)
    for a, n in enumerate(shape4):
        reach = int(max(rlo[a], rhi[a]))
        if not needs_rule or reach == 0 or tshape[a] >= n:
            continue
        need = depth * reach + 1
        # Tiles at the array's ends must hold every cell the rule names: at least
        # `need` thick, so a thinner remainder tile is avoided by shrinking the tiles.
        fitting = [t for t in range(tshape[a], need - 1, -1)
                   if n > need and n - (-(-n // t) - 1) * t >= need]
        tshape[a] = fitting[0] if fitting else n  # else the whole axis
    tshape = np.array(tshape, dtype=np.int64)
    grid = -(-np.array(shape4, dtype=np.int64) // tshape)
    extents = tshape + halo
    return tshape, grid, extents


# In 2-D the overlapped tiles already compute only a few per cent twice, and the sweep
# (one row a plane, each with its own ghost cells and bookkeeping) measured no faster; from
# 3-D on the tiles compute about 1.7x the cells and the sweep takes 1.5-1.7x less time.
_SWEEP_MIN_NDIM = 3


def _sweep_plan(shape4, ndim, rlo, rhi, depth, code, itemsize, tile, cache, threads):
    """The plane-by-plane sweep of `depth` steps along the first axis of the array (None
    where it does not apply): (axis, ring planes per level, lag between levels, tile shape,
    grid and plane extents across the other axes, the reach across them).

    Level s of a tile computes plane p once level s - 1 holds planes up to p + reach, so
    levels trail each other by ``lag`` planes and each keeps a ring of the last planes
    it wrote.  Along the swept axis nothing is computed twice, and the ghost planes are
    the border rule on planes the ring still holds (checked here)."""
    ax = 4 - ndim
    if ndim < max(2, _SWEEP_MIN_NDIM) or depth < 2:
        return None  # a 1-D state has no plane to sweep
    n, slo, shi = shape4[ax], int(rlo[ax]), int(rhi[ax])
    lag = max(slo, shi)
    ring = lag + slo + 1
    if code not in (FILL, WRAP):
        if any(kn.resolve_index(-j, n, code) > lag for j in range(1, slo + 1)):
            return None
        ring = max([ring] + [p - kn.resolve_index(p, n, code) + 1 for p in range(n, n + shi)])
    prlo, prhi = rlo.copy(), rhi.copy()
    prlo[:ax + 1] = prhi[:ax + 1] = 0
    plane4 = (1,) * (ax + 1) + tuple(shape4[ax + 1:])
    # The (depth + 1) * ring planes in flight share the budget of one scratch pair.
    plane_cache = 2 * cache // ((depth + 1) * ring)
    plane_tile = None if tile is None else (1,) * (ax + 1) + tuple(tile[ax + 1:])
    tshape, grid, extents = _plan(plane4, prlo, prhi, depth, code, itemsize, plane_tile,
                                  plane_cache)
    if tile is None and np.prod(grid) % threads:
        # Tiles are the unit of work of a thread: cut the plane's first axis into a
        # multiple of the threads (a thread left idle at the end costs more than the
        # thinner tiles' halos).
        a = ax + 1
        count = -(-int(grid[a]) // threads) * threads
        even = list(tshape)
        even[a] = max(1, -(-plane4[a] // count))
        cut = _plan(plane4, prlo, prhi, depth, code, itemsize, even, plane_cache)
        if np.prod(cut[1]) % threads == 0:
            tshape, grid, extents = cut
    return ax, ring, lag, tshape, grid, extents, prlo, prhi


def scratch_pair(size, dtype):
    """Two zeroed scratch buffers of `size` cells in one allocation, each cell 0 at the
    start of a vector (and cache line) with a vector of cells before it: (a, b, pad), the
    buffers being ``a[pad:pad + size]`` and ``b[pad:pad + size]``.

    Zeroed, because a step aligned to vectors computes a few cells beyond its region
    from cells never written (finite zeros cost nothing; garbage could be subnormal)."""
    vec = ki.VECTOR_BYTES // dtype.itemsize
    stride = -(-(size + 2 * vec) // vec) * vec
    raw = np.zeros(2 * stride + 2 * vec, dtype)
    pad = vec + (-raw.ctypes.data) % ki.VECTOR_BYTES // dtype.itemsize
    return raw[:stride + pad], raw[stride:2 * stride + pad], np.int64(pad)


def _vector_rows(extents, itemsize):
    """Scratch extents whose rows (the last axis) are whole vectors long, where rows are
    long enough for vector alignment to pay (the steps then align their loads and stores,
    see stencils._kernels_iterate.run_steps)."""
    vec = ki.VECTOR_BYTES // itemsize
    if extents[3] < 4 * vec:
        return extents
    padded = extents.copy()
    padded[3] = -(-extents[3] // vec) * vec
    return padded


def _sweep_deltas(offsets, extents, pad, ax):
    """Per read: its flat offset across a plane of `extents`, and its offset along `ax`."""
    across = np.array([d[ax - pad] for d in offsets] or [0], dtype=np.int64)
    flat = [tuple(0 if pad + a == ax else x for a, x in enumerate(d)) for d in offsets]
    return _deltas(flat, extents, pad), across


def _deltas(offsets, extents, pad):
    """Flat offsets of the reads in a scratch box of `extents` (4-D; reads on the last axes)."""
    strides = np.cumprod(np.r_[1, extents[:0:-1]])[::-1].astype(np.int64)
    return np.array([sum(int(x) * int(strides[pad + a]) for a, x in enumerate(d))
                     for d in offsets] or [0], dtype=np.int64)


# -- running ------------------------------------------------------------------------

class _Stepper:
    """Advances states of one shape by n steps, fused where it can."""

    def __init__(self, stencil, border, shape, dtype, *, depth, tile, parallel, cache,
                 sweep=True):
        self.stencil, self.border, self.dtype = stencil, border, dtype
        self.sweep = sweep
        self.shape = shape
        self.shape4 = (1,) * (4 - len(shape)) + tuple(shape)
        self.depth, self.tile, self.cache = depth, tile, cache
        self.step = _step_module(stencil, dtype) if min(shape) > 0 else None
        self.nodes = len(ex.topological_order(stencil.expr))
        self.work = int(np.prod(shape)) * self.nodes
        self.parallel = parallel
        self._pools = {}
        self.lo = tuple(-c for c in stencil.center)
        if self.step is not None:
            self.rlo, self.rhi = _reach4(stencil, self.step.offsets)
            self.consts = _constants(self.step, border, dtype)

    def _parallel(self):
        if self.parallel is None:
            return self.work >= _engine.config.parallel_min_work
        return bool(self.parallel)

    def one(self, src, dst):
        """One step (through the fused kernel when there is one, so that every step of a
        run computes the same way)."""
        if self.step is None:
            _engine.run(self.stencil, src, dst, self.lo, (1,) * len(self.shape), self.border,
                        parallel=self.parallel)
        else:
            self._fused(src, dst, 1)

    def passes(self, nsteps):
        """The steps of each pass over memory."""
        if self.step is None or nsteps == 0:
            return [1] * nsteps
        k = self.depth or _default_depth(self.shape4, self.rlo, self.rhi, nsteps,
                                         self.dtype.itemsize, self.cache, self.nodes)
        return [k] * (nsteps // k) + ([nsteps % k] if nsteps % k else [])

    def advance(self, nsteps, src, first, second):
        """`nsteps` steps from `src`, passes writing `first`, `second`, `first`...

        `src` may be `second` (it is read by the first pass only).  Returns the
        buffer holding the final state (`src` itself when `nsteps` is 0).
        """
        cur = src
        for p, k in enumerate(self.passes(nsteps)):
            dst = second if p % 2 else first
            if self.step is None:
                self.one(cur, dst)
            else:
                self._fused(cur, dst, k)
            cur = dst
        return cur

    def _threads(self):
        return _engine.thread_count() if self._parallel() else 1

    def _fused(self, src, dst, k):
        sweep = _sweep_plan(self.shape4, len(self.shape), self.rlo, self.rhi, k, self.border.code,
                            self.dtype.itemsize, self.tile, self.cache,
                            self._threads()) if self.sweep else None
        if sweep is not None:
            self._swept(src, dst, k, sweep)
            return
        tshape, grid, extents = _plan(self.shape4, self.rlo, self.rhi, k, self.border.code,
                                      self.dtype.itemsize, self.tile, self.cache)
        extents = _vector_rows(extents, self.dtype.itemsize)
        deltas = _deltas(self.step.offsets, extents, 4 - len(self.shape))
        sdeltas = _deltas(self.step.offsets, np.array(self.shape4), 4 - len(self.shape))
        src4 = src.reshape(self.shape4)
        dst4 = dst.reshape(self.shape4)
        refill = self.border.code != WRAP
        ntiles = int(np.prod(grid))
        args = (extents, tshape, grid, np.int64(k), self.rlo, self.rhi, deltas, sdeltas,
                self.consts, np.int64(self.border.code), refill)
        threads = self._threads()
        pool = self._scratch_pool(int(np.prod(extents)), threads)

        def part(bounds):
            pair = pool.get()
            try:
                self.step.module.tiles(src4, dst4, *pair, *args, *bounds)
            finally:
                pool.put(pair)
        # On several threads a part is one tile (its scratch comes from the pool, not a new
        # allocation), so that the threads finish within a tile of each other.
        parts = [(i, i + 1) for i in range(ntiles)] if threads > 1 else [(0, ntiles)]
        _engine.run_parallel(part, parts, threads)

    def _scratch_pool(self, size, threads):
        """A scratch pair per thread for tiles of `size` cells, kept for later passes."""
        key = (size, threads)
        if key not in self._pools:
            self._pools[key] = queue.SimpleQueue()
            for _ in range(threads):
                self._pools[key].put(scratch_pair(size, self.dtype))
        return self._pools[key]

    def _swept(self, src, dst, k, sweep):
        ax, ring, lag, tshape, grid, extents, prlo, prhi = sweep
        inplane, across = _sweep_deltas(self.step.offsets, extents, 4 - len(self.shape), ax)
        args = (src.reshape(self.shape4), dst.reshape(self.shape4), extents, tshape, grid,
                np.int64(k), np.int64(ax), np.int64(self.rlo[ax]), np.int64(self.rhi[ax]),
                prlo, prhi, np.int64(ring), np.int64(lag), inplane, across, self.consts,
                np.int64(self.border.code), self.border.code != WRAP)
        self._run_tiles(self.step.module.sweep_tiles, args, int(np.prod(grid)))

    def _run_tiles(self, kernel, args, ntiles):
        threads = self._threads()
        _engine.run_parallel(lambda bounds: kernel(*args, *bounds),
                             _engine.split_range(ntiles, threads), threads)


# -- validation ---------------------------------------------------------------------

def _check_count(value, param, minimum):
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        raise StencilTypeError(
            f"{param}={value!r} must be an integer, got {type(value).__name__}.",
            param=param, value=value, expected=f"an integer >= {minimum}",
        )
    if value < minimum:
        raise StencilValueError(
            f"{param}={value} must be at least {minimum}.",
            param=param, value=value, expected=f"an integer >= {minimum}",
        )
    return int(value)


def _check_tile(tile, ndim):
    if tile is None:
        return None
    sizes = (tile,) * ndim if isinstance(tile, (int, np.integer)) else tuple(tile)
    if len(sizes) != ndim or not all(
            isinstance(t, (int, np.integer)) and not isinstance(t, bool) and t >= 1
            for t in sizes):
        raise StencilValueError(
            f"tile={tile!r} must be a positive int or one positive int per axis ({ndim}).",
            param="tile", value=tile, expected=f"an int >= 1 or {ndim} of them",
        )
    return (1,) * (4 - ndim) + tuple(int(t) for t in sizes)


def _check_dtype(dtype):
    """The state's dtype option: None (the package's policy), float32, float64 or an integer."""
    if dtype is None:
        return None
    expected = "None, np.float32, np.float64 or an integer dtype (np.uint8 ... np.int64)"
    try:
        resolved = np.dtype(dtype)
    except TypeError:
        resolved = None
    if resolved is None or not (_is_integer(resolved) or resolved in (np.float32, np.float64)):
        raise StencilTypeError(
            f"dtype={dtype!r} is not a dtype a state can be stepped in; expected {expected}.",
            param="dtype", value=dtype, expected=expected)
    return resolved


def _refuse_non_integer_state(array_dtype, dtype):
    raise StencilTypeError(
        f"array has dtype {array_dtype}, but dtype={dtype.name} steps an integer state: "
        f"convert it first (e.g. array.astype(np.{dtype.name})) so that no value is rounded "
        "without your say.", param="array", value=array_dtype,
        expected="an integer or bool array")


def _state_array(array, dtype):
    """The initial state, C-contiguous, in `dtype` (None: the package's dtype policy)."""
    if dtype is None or not _is_integer(dtype):
        source = as_source_array(array)
        return source if dtype is None else source.astype(dtype, copy=False)
    raw = array if isinstance(array, np.ndarray) else np.asarray(array)
    if raw.dtype.kind not in "biu":
        as_source_array(raw)  # its own error for what is no real array at all
        _refuse_non_integer_state(raw.dtype, dtype)
    if raw.ndim == 0:
        as_source_array(raw)  # refuses 0-D
    return np.ascontiguousarray(raw.astype(dtype, copy=False))


def _check_state(array, stencil, border, dtype):
    if isinstance(array, (tuple, list)) and array and all(
            isinstance(x, np.ndarray) or _dask.is_dask_array(x) for x in array):
        raise StencilTypeError(
            f"array is a {type(array).__name__} of {len(array)} arrays; a step reads one state "
            "only. Steps that need the previous two states (the wave equation's leapfrog) are "
            "not supported: write them as a loop of map_stencil calls.",
            param="array", value=type(array).__name__, expected="one array (the state)",
        )
    source = _state_array(array, dtype)
    _check_ranks(stencil, source)
    if dtype is not None and _is_integer(dtype):
        _check_integer_step(stencil, border, dtype)
    if source.size == 0 and border.code != FILL:
        raise StencilValueError(
            f"the array has an empty axis (shape {source.shape}), so the border {border!r} has "
            "no element to repeat; only Fill can pad it.",
            param="border", value=border, expected="Fill(value)",
        )
    return source


def _stepper(stencil, border, source, depth, tile, parallel):
    depth = None if depth is None else _check_count(depth, "depth", 1)
    return _Stepper(stencil, border, source.shape, source.dtype, depth=depth,
                    tile=_check_tile(tile, source.ndim), parallel=parallel,
                    cache=_cache_bytes())


# -- dask: `depth` steps per halo exchange ------------------------------------------

def _axis_window(g0, t, before, after, n, present_lo, code, periodic):
    """Per axis: indices into the overlapped block for the window's cells, and a Fill mask."""
    glob = np.arange(g0 - before, g0 + t + after)
    if periodic:
        return glob - (g0 - present_lo), np.zeros(glob.shape, dtype=bool)
    res = np.array([kn.resolve_index(int(i), n, code) for i in glob], dtype=np.int64)
    return res - (g0 - present_lo), res < 0


def _dask_block(block, block_id=None, *, starts, sizes, shape, k, rlo, rhi, halo, periodic, border,
                step):
    ndim = block.ndim
    idx, masks, t, g0 = [], [], [], []
    for a in range(ndim):
        b = block_id[a]
        start, size = starts[a][b], sizes[a][b]
        present_lo = halo[a] if (b > 0 or periodic[a]) else 0
        i, m = _axis_window(start, size, k * rlo[a], k * rhi[a], shape[a], present_lo,
                            border.code, periodic[a])
        idx.append(i)
        masks.append(m)
        t.append(size)
        g0.append(start)
    window = block[np.ix_(*[np.maximum(i, 0) for i in idx])]
    if border.code == FILL:
        outside = np.zeros(window.shape, dtype=bool)
        for a, m in enumerate(masks):
            outside |= m.reshape([-1 if b == a else 1 for b in range(ndim)])
        window[outside] = border.value
    pad = 4 - ndim
    win4 = np.ascontiguousarray(window.reshape((1,) * pad + window.shape))
    E = np.array(win4.shape, dtype=np.int64)
    rlo4 = np.array((0,) * pad + tuple(rlo), dtype=np.int64)
    rhi4 = np.array((0,) * pad + tuple(rhi), dtype=np.int64)
    org = np.array((0,) * pad + tuple(g - k * r for g, r in zip(g0, rlo)), dtype=np.int64)
    n4 = np.array((1,) * pad + tuple(shape), dtype=np.int64)
    consts = _constants(step, border, block.dtype)
    a, b, spad = scratch_pair(int(np.prod(E)), win4.dtype)
    result = step.module.window_steps(win4, a, b, spad, E, org, np.int64(k), rlo4, rhi4, n4,
                                      _deltas(step.offsets, E, pad), consts,
                                      np.int64(border.code), border.code != WRAP)
    centre = tuple(slice(k * r, k * r + s) for r, s in zip(rlo, t))
    return result.reshape(window.shape)[centre].copy()


def _dask_pass(x, stencil, border, step, k):
    import dask.array as da

    rlo4, rhi4 = _reach4(stencil, step.offsets)
    pad = 4 - x.ndim
    rlo, rhi = [int(v) for v in rlo4[pad:]], [int(v) for v in rhi4[pad:]]
    halo = [k * max(lo, hi) for lo, hi in zip(rlo, rhi)]
    # An axis the halo does not fit in (or whose border rule may name cells beyond the
    # neighbouring chunk) is taken whole: every cell the rule names is then at hand.
    whole = {a: -1 for a in range(x.ndim)
             if halo[a] and (min(x.chunks[a]) < halo[a] or x.shape[a] <= halo[a] + 1)}
    if whole:
        x = x.rechunk(whole)
    halo = [0 if len(c) == 1 else h for c, h in zip(x.chunks, halo)]
    periodic = [border.code == WRAP and len(x.chunks[a]) > 1 for a in range(x.ndim)]
    boundary = {a: ("periodic" if periodic[a] else "none") for a in range(x.ndim)}
    ov = da.overlap.overlap(x, depth={a: halo[a] for a in range(x.ndim)}, boundary=boundary)
    starts = [np.r_[0, np.cumsum(c)[:-1]].tolist() for c in x.chunks]
    return ov.map_blocks(_dask_block, dtype=x.dtype, chunks=x.chunks, starts=starts,
                         sizes=x.chunks, shape=x.shape, k=k, rlo=rlo, rhi=rhi, halo=halo,
                         periodic=periodic, border=border, step=step)


def _dask_state(array, stencil, border, dtype):
    """The dask state in `dtype` (None: the package's dtype policy), its step checked."""
    x = _dask.as_dask_source(array)  # also checks chunks and rank; lazy
    if dtype is not None and _is_integer(dtype):
        if array.dtype.kind not in "biu":
            _refuse_non_integer_state(array.dtype, dtype)
        x = array
    _check_ranks(stencil, x)
    if dtype is not None and _is_integer(dtype):
        _check_integer_step(stencil, border, dtype)
    return x if dtype is None or x.dtype == dtype else x.astype(dtype)


def _iterate_dask(n, stencil, border, array, *, out, dtype, depth):
    if out is not None:
        raise StencilValueError(
            "out= is not taken with a dask array: iterate returns a lazy dask array.",
            param="out", value=type(out).__name__, expected="None",
        )
    x = _dask_state(array, stencil, border, dtype)
    depth = None if depth is None else _check_count(depth, "depth", 1)
    step = _step_module(stencil, x.dtype) if 0 not in x.shape else None
    if step is None:
        from ._windowed import compute, map_stencil
        for _ in range(n):
            x = compute(map_stencil(border, stencil, x))
        return x
    k = depth or min(n, 8)
    for steps in [k] * (n // k) + ([n % k] if n % k else []):
        x = _dask_pass(x, stencil, border, step, steps)
    return x


# -- public -------------------------------------------------------------------------

def iterate(n, stencil, border, array, *, out=None, dtype=None, depth=None, tile=None,
            parallel=None):
    """Apply a stencil `n` times: ``map_stencil(border, stencil, .)`` stepped in time.

    Steps are fused: each cache-sized tile computes `depth` steps from its own
    cells plus a halo of `depth` times the stencil's reach before anything goes
    back to memory (temporal blocking); a 3-D or 4-D state is swept along its
    first axis with all `depth` steps in flight, plane by plane, so that only
    the other axes' halos are computed twice.  The result is bit-identical to
    `n` separate ``compute(map_stencil(border, stencil, state))`` calls.

    Parameters
    ----------
    n : int
        Number of steps, ``>= 0`` (0 returns a copy of the state).
    stencil : Stencil
        One step: output ``i`` is the stencil with its centre at ``i``.
    border : Border or str
        massiv's ``Fill(v)``, `Wrap`, `Edge`, `Reflect`, `Continue`, or a
        scipy mode name; applied to the state of every step.
    array : array_like or dask array
        The initial state, 1-D or more, of the stencil's rank.  float32 stays
        float32, float16 becomes float32, other real dtypes float64.  A dask
        array gives a lazy dask array (`depth` steps per halo exchange).
    out : ndarray, optional
        Where to write the final state (it may be `array` itself).
    dtype : dtype, optional
        The dtype of the state and of the step's arithmetic, instead of the
        policy above: float32 or float64, or an integer dtype (``np.uint8``
        ... ``np.int64``), in which every operation wraps modulo 2**bits as
        NumPy's integer arrays and massiv's ``Word8``/``Int`` do, comparisons
        and logic give 0 or 1, constants wrap into the dtype (massiv's
        ``fromInteger``), and the array must hold integers or booleans.  A
        stencil integers cannot compute exactly (a non-integral constant,
        true division, a power, a transcendental function) is refused.  An
        integer state takes ``dtype`` bytes a cell and vector lanes of that
        width: a ``uint8`` Game of Life moves an eighth of float64's bytes.
    depth : int, optional
        Steps fused per pass (default: a cost model's choice, up to 16).
    tile : int or tuple of int, optional
        Largest tile size per axis (default: the largest whose scratch pair
        fits in about twice one core's L2 cache, with rows of 256 cells or
        more).  Tiles at the array's ends are kept thick enough for the border
        rule (the tiles shrink a little, or the axis is taken whole).  A swept
        state ignores the size given for its first axis.
    parallel : bool, optional
        Tiles on all threads; None decides by the amount of work.

    Returns
    -------
    ndarray (or dask array)

    Examples
    --------
    Heat flowing along a bar whose ends are held at the edge values:

    >>> import numpy as np, stencils as st
    >>> heat = st.make_stencil(3, 1, lambda g: g(0) + 0.25 * (g(-1) - 2 * g(0) + g(1)))
    >>> st.iterate(3, heat, st.Edge, np.array([0.0, 0, 16, 0, 0]))
    array([1.75, 3.75, 5.  , 3.75, 1.75])

    A uint8 state wraps modulo 256 at every operation, as NumPy's uint8 arrays do:

    >>> total = st.make_stencil(3, 1, lambda g: g(-1) + g(0) + g(1))
    >>> st.iterate(2, total, st.Wrap, np.array([200, 0, 0, 0, 100], dtype=np.uint8),
    ...            dtype=np.uint8)
    array([ 32, 244,  44, 144, 188], dtype=uint8)
    """
    n = _check_count(n, "n", 0)
    border = as_border(border)
    check_stencil(stencil)
    if _dask.is_dask_array(array):
        return _iterate_dask(n, stencil, border, array, out=out, dtype=_check_dtype(dtype),
                             depth=depth)
    source = _check_state(array, stencil, border, _check_dtype(dtype))
    stepper = _stepper(stencil, border, source, depth, tile, parallel)
    if dtype is not None and isinstance(out, np.ndarray) and out.dtype != source.dtype:
        raise StencilTypeError(
            f"out has dtype {out.dtype} but the state is stepped in dtype={source.dtype.name}.",
            param="out", value=out.dtype, expected=source.dtype.name)
    target, copy_to = prepare_out(out, source.shape, source.dtype, np.empty(0))
    if np.may_share_memory(target, source):
        source = source.copy()
    other = np.empty_like(source) if n > 1 else target
    first, second = (target, other) if len(stepper.passes(n)) % 2 else (other, target)
    result = stepper.advance(n, source, first, second)
    if result is source:
        target[...] = source
        result = target
    if copy_to is not None:
        copy_to[...] = result
        return copy_to
    return result


def _check_done(done):
    if not callable(done):
        raise StencilTypeError(
            f"done={done!r} is not callable; expected a function (i, previous, current) -> bool, "
            "e.g. lambda i, prev, cur: np.abs(cur - prev).max() < 1e-6.",
            param="done", value=done, expected="a callable",
        )


def _read_only(a):
    v = a.view()
    v.flags.writeable = False
    return v


def iterate_until(done, stencil, border, array, *, check_every=1, dtype=None, depth=None,
                  tile=None, parallel=None):
    """Step a stencil until `done` says so (massiv's ``iterateUntil``).

    After each step ``done(i, previous, current)`` is asked, ``i`` being 0
    after the first step; the first step's `previous` is the initial state.
    The current state is returned as soon as it answers true.  Two buffers
    serve any number of steps.

    Parameters
    ----------
    done : callable
        ``done(i, previous, current) -> bool``.  `previous` and `current` are
        read-only views of the two buffers, valid during the call only (copy
        them to keep them).
    stencil : Stencil
    border : Border or str
    array : array_like
        The initial state (dtype policy as in `iterate`).
    check_every : int, optional
        Ask `done` only after steps ``k-1, 2k-1, ...`` (``i`` counts every
        step); the ``k-1`` steps in between are fused in cache.  `previous` is
        still the state one step before `current`.
    dtype, depth, tile, parallel
        As in `iterate`.

    Returns
    -------
    ndarray
        The state for which `done` first answered true.

    Examples
    --------
    massiv's own example: Pascal's triangle, one row per step, until the
    bottom-right corner is set.

    >>> import numpy as np, stencils as st
    >>> pascal = st.make_stencil((2, 2), (1, 1), lambda get: np.where(
    ...     get(0, 0) == 0, get(-1, -1) + get(-1, 0), get(0, 0)))
    >>> start = np.zeros((8, 8), dtype=int)
    >>> start[0, 0] = 1
    >>> tri = st.iterate_until(lambda i, prev, cur: cur[7, 7] != 0, pascal, st.Fill(0), start)
    >>> tri.astype(int)[7]
    array([ 1,  7, 21, 35, 35, 21,  7,  1])
    """
    _check_done(done)
    check_every = _check_count(check_every, "check_every", 1)
    border = as_border(border)
    check_stencil(stencil)
    if _dask.is_dask_array(array):
        raise StencilTypeError(
            "iterate_until needs the state in memory to decide when to stop; for a dask array "
            "use iterate with a fixed number of steps, or compute() it first.",
            param="array", value=type(array).__name__, expected="a NumPy array",
        )
    source = _check_state(array, stencil, border, _check_dtype(dtype))
    stepper = _stepper(stencil, border, source, depth, tile, parallel)
    x, y = np.empty_like(source), np.empty_like(source)
    current, i = source, -1
    while True:
        # k - 1 steps (fused; the input is never written), then one more into
        # the other buffer, so that `previous` is one step before `current`.
        other = y if current is x else x
        previous = stepper.advance(check_every - 1, current, other,
                                   y if current is source else current)
        i += check_every - 1
        current = y if previous is x else x
        stepper.one(previous, current)
        i += 1
        if done(i, _read_only(previous), _read_only(current)):
            return current
