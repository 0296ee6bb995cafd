"""Time stepping: many steps of a memory-bound stencil, fused in cache or one pass per step.

Rows (``python -m benchmarks --only time-stepping``):

- ``jacobi2d-f32`` / ``jacobi2d-f64``: the 5-point Jacobi step on 4096^2, 100 steps,
  'nearest' border: `stencils.iterate` (temporal blocking) against our own one-pass-per-step
  loop with ``out=``, a scipy.ndimage loop, numba's laplace2d ``@stencil`` loop and
  pystencils 2.x (ghost layers refreshed by NumPy slicing each step, as its examples do);
- ``heat3d-f64``: the 7-point heat step on 256^3 float64, 50 steps, against our loop (the
  fused run sweeps the first axis plane by plane, tiles of the other two in cache);
- ``life-u8``: Conway's Game of Life on 4096^2 uint8, 100 steps, Wrap: `stencils.iterate`
  with ``dtype=np.uint8`` (a uint8 state), and with the dtype policy's float64 state, against
  a NumPy ``np.roll`` implementation and our loop.

The floor of each row is one pass over memory per step (read and write the state), the
bound for any implementation that steps one pass at a time; fused steps can go below it.
"""

from __future__ import annotations

import numpy as np

import stencils as st

from ._harness import Implementation, Skipped, Workload, allclose

try:
    import scipy.ndimage as ndi
except ImportError:  # pragma: no cover - optional peer
    ndi = None


def jacobi_stencil():
    """The 5-point Jacobi relaxation step (the mean of the four neighbours)."""
    return st.make_stencil((3, 3), (1, 1), lambda g: 0.25 * (
        g(-1, 0) + g(1, 0) + g(0, -1) + g(0, 1)))


def heat3d_stencil(alpha=0.1):
    """An explicit 7-point heat step, u + alpha * Laplacian(u)."""
    return st.make_stencil((3, 3, 3), (1, 1, 1), lambda g: g(0, 0, 0) + alpha * (
        g(-1, 0, 0) + g(1, 0, 0) + g(0, -1, 0) + g(0, 1, 0) + g(0, 0, -1) + g(0, 0, 1)
        - 6 * g(0, 0, 0)))


def life_stencil():
    """Conway's Game of Life: born with 3 neighbours, survives with 2 or 3."""
    def rule(g):
        n = sum(g(i, j) for i in (-1, 0, 1) for j in (-1, 0, 1) if (i, j) != (0, 0))
        return np.where((n == 3) | ((g(0, 0) != 0) & (n == 2)), 1.0, 0.0)
    return st.make_stencil((3, 3), (1, 1), rule)


def step_loop(steps, stencil, border, a):
    """Our one-pass-per-step loop: `compute(map_stencil(...), out=)` into two buffers."""
    x = np.array(a, dtype=st.compute(st.map_stencil(border, stencil, a[:1, :1])).dtype)
    y = np.empty_like(x)
    for _ in range(steps):
        st.compute(st.map_stencil(border, stencil, x), out=y)
        x, y = y, x
    return x


# On large arrays the loop runs the engine's generated kernel and agrees to the bit; small
# (--quick) arrays go through its interpreter, which may round a nested sum differently.
_SAME_NOTE = "bit-identical to the generated kernel"


def _same(dtype):
    return allclose(1e-6, 1e-7) if dtype == np.float32 else allclose(1e-14, 1e-15)


def _jacobi_sizes(quick):
    return (256, 10) if quick else (4096, 100)


def _numba_laplace2d(steps, a):
    # numba's laplace2d example: an @stencil kernel called from a parallel @njit loop.  Its
    # border ring keeps @stencil's cval (no 'nearest' rule), so it is timed, not checked.
    from numba import njit, stencil

    @stencil
    def kernel(x):
        return 0.25 * (x[0, 1] + x[1, 0] + x[0, -1] + x[-1, 0])

    @njit(parallel=True)
    def relax(x, out):
        kernel(x, out=out)

    def run():
        x, y = a.copy(), np.zeros_like(a)
        for _ in range(steps):
            relax(x, y)
            x, y = y, x
        return x
    return run


def _pystencils(steps, a):
    """pystencils 2.x: a generated C kernel with OpenMP, ghost layers refreshed each step."""
    import pystencils as ps

    dtype = "float32" if a.dtype == np.float32 else "float64"
    src, dst = ps.fields(f"src, dst: {dtype}[2D]")
    update = ps.Assignment(dst.center, 0.25 * (src[1, 0] + src[-1, 0] + src[0, 1] + src[0, -1]))
    config = ps.CreateKernelConfig()
    config.cpu.openmp.enable = True
    kernel = ps.create_kernel(update, config).compile()

    def nearest(x):
        x[0, 1:-1], x[-1, 1:-1] = x[1, 1:-1], x[-2, 1:-1]
        x[:, 0], x[:, -1] = x[:, 1], x[:, -2]

    def run():
        x = np.pad(a, 1, mode="edge")
        y = np.empty_like(x)
        for _ in range(steps):
            nearest(x)
            kernel(src=x, dst=y)
            x, y = y, x
        return x[1:-1, 1:-1]
    return run


def _jacobi_setup(dtype):
    def setup(quick):
        n, steps = _jacobi_sizes(quick)
        a = np.random.default_rng(0).random((n, n)).astype(dtype)
        jac = jacobi_stencil()
        out = np.empty_like(a)
        close = allclose(1e-4, 1e-5) if dtype == np.float32 else allclose(1e-10, 1e-12)
        impls = [
            Implementation("stencils iterate (fused)", lambda: st.iterate(
                steps, jac, "nearest", a, out=out)),
            Implementation("stencils step loop, out=", lambda: step_loop(
                steps, jac, "nearest", a), _same(dtype), _SAME_NOTE),
        ]
        if ndi is not None:
            k = np.array([[0, 0.25, 0], [0.25, 0, 0.25], [0, 0.25, 0]], dtype=dtype)

            def scipy_loop():
                x, y = a.copy(), np.empty_like(a)
                for _ in range(steps):
                    ndi.correlate(x, k, output=y, mode="nearest")
                    x, y = y, x
                return x
            impls.append(Implementation("scipy.ndimage.correlate loop", scipy_loop, close,
                                        "1 thread"))
        else:
            impls.append(Skipped("scipy.ndimage.correlate loop", "scipy is not installed"))
        impls.append(Implementation("numba @stencil loop (laplace2d)", _numba_laplace2d(
            steps, a), None, "border ring held at 0 (no 'nearest'): not checked"))
        try:
            impls.append(Implementation("pystencils 2 (OpenMP)", _pystencils(steps, a), close,
                                        "ghost layers by NumPy slicing"))
        except Exception as exc:  # not installed, or no C compiler
            impls.append(Skipped("pystencils 2 (OpenMP)", f"{type(exc).__name__}: {exc}"[:120]))
        return impls
    return setup


def _cube(quick):
    return (32, 5) if quick else (256, 50)


def _heat3d_setup(quick):
    n, steps = _cube(quick)
    a = np.random.default_rng(0).random((n, n, n))
    heat = heat3d_stencil()
    out = np.empty_like(a)
    return [
        Implementation("stencils iterate (fused)", lambda: st.iterate(
            steps, heat, "nearest", a, out=out)),
        Implementation("stencils step loop, out=", lambda: step_loop(
            steps, heat, "nearest", a), _same(np.float64), _SAME_NOTE),
    ]


def life_numpy(steps, board):
    """The Game of Life with np.roll (uint8 throughout)."""
    x = board.copy()
    for _ in range(steps):
        n = sum(np.roll(np.roll(x, i, 0), j, 1)
                for i in (-1, 0, 1) for j in (-1, 0, 1) if (i, j) != (0, 0))
        x = ((n == 3) | ((x != 0) & (n == 2))).astype(np.uint8)
    return x


def _life_setup(quick):
    n, steps = _jacobi_sizes(quick)
    board = (np.random.default_rng(0).random((n, n)) < 0.3).astype(np.uint8)
    life = life_stencil()
    out = np.empty_like(board)
    out64 = np.empty(board.shape)
    same = lambda ours, theirs: np.testing.assert_array_equal(theirs, ours)  # noqa: E731
    return [
        Implementation("stencils iterate (fused), uint8 state", lambda: st.iterate(
            steps, life, st.Wrap, board, out=out, dtype=np.uint8)),
        Implementation("stencils iterate (fused), float64 state", lambda: st.iterate(
            steps, life, st.Wrap, board, out=out64), same, "the dtype policy's float64"),
        Implementation("stencils step loop, out=", lambda: step_loop(
            steps, life, st.Wrap, board), same, "float64 (the engine's dtype policy)"),
        Implementation("NumPy np.roll", lambda: life_numpy(steps, board), same,
                       "1 thread, uint8"),
    ]


def _one_pass_bytes(sizes, itemsize, ndim):
    def bytes_(quick):
        n, steps = sizes(quick)
        return 2.0 * itemsize * n ** ndim * steps
    return bytes_


def _ops(sizes, per_cell, ndim):
    # FMA-pipe slots per cell and step: Jacobi 1 multiply + 3 FMAs; 3-D heat 7 FMAs;
    # Life 8 adds, 2 compares, and, or, select, on uint8 lanes (four to a float32 lane, so
    # 13 / 4 float32 slots).
    def ops(quick):
        n, steps = sizes(quick)
        return float(per_cell) * n ** ndim * steps
    return ops


WORKLOADS = [
    Workload("jacobi2d-f32", "5-point Jacobi step, 4096^2 float32, 100 steps (256^2, 10 with "
             "--quick), 'nearest'", _jacobi_setup(np.float32), group="time-stepping",
             limit="memory bandwidth",
             bytes=_one_pass_bytes(_jacobi_sizes, 4, 2), ops=_ops(_jacobi_sizes, 4, 2),
             dtype="float32", repeats=3),
    Workload("jacobi2d-f64", "5-point Jacobi step, 4096^2 float64, 100 steps (256^2, 10 with "
             "--quick), 'nearest'", _jacobi_setup(np.float64), group="time-stepping",
             limit="memory bandwidth", bytes=_one_pass_bytes(_jacobi_sizes, 8, 2),
             ops=_ops(_jacobi_sizes, 4, 2), dtype="float64", repeats=3),
    Workload("heat3d-f64", "7-point heat step, 256^3 float64, 50 steps (32^3, 5 with --quick), "
             "'nearest'", _heat3d_setup, group="time-stepping", limit="memory bandwidth",
             bytes=_one_pass_bytes(_cube, 8, 3), ops=_ops(_cube, 7, 3), dtype="float64",
             repeats=3),
    Workload("life-u8", "Game of Life, 4096^2 uint8, 100 steps (256^2, 10 with --quick), Wrap",
             _life_setup, group="time-stepping", limit="memory bandwidth",
             bytes=_one_pass_bytes(_jacobi_sizes, 1, 2), ops=_ops(_jacobi_sizes, 13 / 4, 2),
             dtype="uint8", repeats=3),
]
