"""Time stepping: `iterate` and `iterate_until` against step-by-step loops.

Bit-identity is against loops of ``compute(map_stencil(...))`` run by the engine's
generated kernel (the one large arrays get); tiny tiles and depths are forced so
that small arrays cross many tile edges, remainders and array borders.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as hs

import stencils as st
from stencils import _engine
from stencils.errors import StencilTypeError, StencilValueError

BORDERS = [st.Fill(-1.5), st.Wrap, st.Edge, st.Reflect, st.Continue,
           "constant", "nearest", "reflect", "mirror", "wrap"]

HEAT = st.make_stencil((3, 3), (1, 1), lambda g: g(0, 0) + 0.2 * (
    g(-1, 0) + g(1, 0) + g(0, -1) + g(0, 1) - 4 * g(0, 0)))
ASYM1 = st.make_stencil(5, 2, lambda g: 0.3 * g(-2) + 0.4 * g(1) - 0.1 * g(2) + 0.35 * g(0))
NONLIN3 = st.make_stencil((3, 3, 3), (1, 1, 1), lambda g: np.maximum(
    g(-1, 0, 0), g(0, 1, 1)) * 0.5 + g(0, 0, -1) * 0.25)
SPARSE4 = st.make_stencil((3, 1, 2, 3), (1, 0, 0, 1), lambda g: 0.5 * g(-1, 0, 1, 1)
                         + 0.25 * g(1, 0, 0, -1) + 0.25 * g(0, 0, 0, 0))


@pytest.fixture(autouse=True)
def generated_engine(monkeypatch):
    # The reference loops run the engine's generated kernel, as large arrays do.
    monkeypatch.setattr(_engine.config, "engine", "generated")


def step_loop(n, stencil, border, a):
    x = np.asarray(a)
    for _ in range(n):
        x = st.compute(st.map_stencil(border, stencil, x))
    return np.asarray(x, dtype=st.compute(st.map_stencil(border, stencil, a)).dtype)


def assert_bit_identical(result, expected):
    assert result.dtype == expected.dtype
    assert result.shape == expected.shape
    np.testing.assert_array_equal(result, expected, strict=True)


@pytest.mark.parametrize("border", BORDERS, ids=repr)
@pytest.mark.parametrize("depth, tile", [(3, (4, 5)), (2, 3), (None, None)])
def test_matches_step_loop_on_every_border(border, depth, tile):
    a = np.random.default_rng(0).random((13, 17))
    expected = step_loop(7, HEAT, border, a)
    assert_bit_identical(st.iterate(7, HEAT, border, a, depth=depth, tile=tile,
                                    parallel=False), expected)


@pytest.mark.parametrize("border", BORDERS, ids=repr)
def test_many_tiles_touching_every_edge(border):
    # 40 = 5 * 7 + 5 and 45 = 5 * 9: 36 tiles, the last row and column thinner, every
    # edge tile thick enough to keep its own ghost cells (no axis taken whole).
    from stencils import _iterate
    a = np.random.default_rng(9).random((40, 45))
    tshape, grid, _ = _iterate._plan((1, 1, 40, 45), np.array([0, 0, 1, 1]),
                                     np.array([0, 0, 1, 1]), 3, st.as_border(border).code, 8,
                                     (1, 1, 7, 9), 1 << 20)
    assert list(grid) == [1, 1, 6, 5]
    assert_bit_identical(st.iterate(10, HEAT, border, a, depth=3, tile=(7, 9), parallel=False),
                         step_loop(10, HEAT, border, a))


@pytest.mark.parametrize("shape", [(3, 40), (40, 2), (1, 9)])
@pytest.mark.parametrize("border", [st.Wrap, st.Reflect, st.Continue, "reflect", "mirror"],
                         ids=repr)
def test_axes_shorter_than_the_halo_far_field(shape, border):
    a = np.random.default_rng(1).random(shape)
    assert_bit_identical(st.iterate(9, HEAT, border, a, depth=7, tile=2, parallel=False),
                         step_loop(9, HEAT, border, a))


@pytest.mark.parametrize("stencil, shape", [
    (ASYM1, (37,)), (ASYM1, (3,)), (NONLIN3, (7, 9, 11)), (SPARSE4, (5, 4, 6, 7))],
    ids=["1d", "1d-short", "3d", "4d"])
@pytest.mark.parametrize("border", [st.Fill(2), st.Wrap, st.Reflect, "mirror"], ids=repr)
def test_nd_shapes(stencil, shape, border):
    a = np.random.default_rng(2).random(shape)
    expected = step_loop(5, stencil, border, a)
    for depth, tile in [(2, 3), (5, 2), (None, None)]:
        assert_bit_identical(st.iterate(5, stencil, border, a, depth=depth, tile=tile,
                                        parallel=False), expected)


@settings(max_examples=25, deadline=None)
@given(rows=hs.integers(1, 12), cols=hs.integers(1, 12), n=hs.integers(0, 9),
       depth=hs.integers(1, 5), tile=hs.tuples(hs.integers(1, 6), hs.integers(1, 6)),
       border=hs.sampled_from(BORDERS))
def test_property_any_tiling_any_depth(rows, cols, n, depth, tile, border):
    a = np.random.default_rng(rows * 13 + cols).random((rows, cols))
    assert_bit_identical(st.iterate(n, HEAT, border, a, depth=depth, tile=tile,
                                    parallel=False), step_loop(n, HEAT, border, a))


def test_parallel_tiles_match_serial():
    a = np.random.default_rng(3).random((64, 70))
    serial = st.iterate(11, HEAT, "nearest", a, depth=4, tile=(9, 16), parallel=False)
    assert_bit_identical(st.iterate(11, HEAT, "nearest", a, depth=4, tile=(9, 16),
                                    parallel=True), serial)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("border", [st.Fill(-1.5), st.Wrap, st.Edge, st.Reflect, "mirror"],
                         ids=repr)
def test_vector_long_rows_match_step_loop(dtype, border):
    # Scratch rows of 78 cells, padded to whole vectors: the steps start each row at a
    # vector boundary; inner tiles read the source and every tile's last step writes the
    # destination straight, also in a pass of a single step (9 = 4 + 4 + 1).
    a = np.random.default_rng(9).random((50, 300)).astype(dtype)
    expected = step_loop(9, HEAT, border, a)
    for parallel in (False, True):
        assert_bit_identical(st.iterate(9, HEAT, border, a, depth=4, tile=(12, 70),
                                        parallel=parallel), expected)
    x = np.random.default_rng(10).random(500).astype(dtype)
    assert_bit_identical(st.iterate(7, ASYM1, border, x, depth=3, tile=100),
                         step_loop(7, ASYM1, border, x))


def test_dtype_policy():
    a32 = np.random.default_rng(4).random((9, 8)).astype(np.float32)
    r = st.iterate(4, HEAT, st.Edge, a32, depth=3, tile=4)
    assert r.dtype == np.float32
    assert_bit_identical(r, step_loop(4, HEAT, st.Edge, a32))
    assert st.iterate(2, HEAT, st.Edge, a32.astype(np.float16)).dtype == np.float32
    assert st.iterate(2, HEAT, st.Edge, np.ones((4, 4), dtype=np.uint8)).dtype == np.float64


def test_large_weighted_sum_steps_through_the_engine():
    # 36 taps: the engine sums them one kernel row at a time, so iterate does not fuse it.
    wide = st.make_correlation_stencil_from_kernel(np.arange(36.0).reshape(6, 6) / 700)
    a = np.random.default_rng(5).random((12, 11))
    assert_bit_identical(st.iterate(3, wide, st.Reflect, a), step_loop(3, wide, st.Reflect, a))


def test_zero_steps_and_out():
    a = np.random.default_rng(6).random((6, 7))
    r = st.iterate(0, HEAT, st.Edge, a)
    assert r is not a and np.array_equal(r, a)
    expected = step_loop(5, HEAT, st.Edge, a)
    out = np.empty_like(a)
    assert st.iterate(5, HEAT, st.Edge, a, out=out) is out
    assert_bit_identical(out, expected)
    st.iterate(5, HEAT, st.Edge, a, out=a)  # in place
    assert_bit_identical(a, expected)
    strided = np.empty((6, 14))[:, ::2]
    st.iterate(5, HEAT, st.Edge, np.random.default_rng(6).random((6, 7)), out=strided)
    assert_bit_identical(strided, expected)


def life_numpy(board, steps):
    x = board.astype(np.uint8)
    for _ in range(steps):
        n = sum(np.roll(np.roll(x, i, 0), j, 1)
                for i in (-1, 0, 1) for j in (-1, 0, 1) if (i, j) != (0, 0))
        x = ((n == 3) | ((x != 0) & (n == 2))).astype(np.uint8)
    return x


def life_stencil():
    def rule(g):
        n = sum(g(i, j) for i in (-1, 0, 1) for j in (-1, 0, 1) if (i, j) != (0, 0))
        return np.where((n == 3) | ((g(0, 0) != 0) & (n == 2)), 1.0, 0.0)
    return st.make_stencil((3, 3), (1, 1), rule)


def test_game_of_life_glider_wraps():
    board = np.zeros((8, 10), dtype=np.uint8)
    board[0, 1] = board[1, 2] = board[2, 0] = board[2, 1] = board[2, 2] = 1
    r = st.iterate(4 * 9, life_stencil(), st.Wrap, board, depth=5, tile=3)
    np.testing.assert_array_equal(r, life_numpy(board, 36))
    np.testing.assert_array_equal(st.iterate(4, life_stencil(), st.Wrap, board),
                                  np.roll(board, (1, 1), (0, 1)))


PASCAL = st.make_stencil((2, 2), (1, 1), lambda get: np.where(
    get(0, 0) == 0, get(-1, -1) + get(-1, 0), get(0, 0)))


def test_iterate_until_massiv_semantics():
    start = np.zeros((8, 8), dtype=int)
    start[0, 0] = 1
    seen = []

    def done(i, previous, current):
        if not seen:
            np.testing.assert_array_equal(previous, start)  # the first previous: the input
        np.testing.assert_array_equal(st.compute(st.map_stencil(st.Fill(0), PASCAL, previous)),
                                      current)
        assert not current.flags.writeable
        seen.append(i)
        return current[7, 7] != 0

    tri = st.iterate_until(done, PASCAL, st.Fill(0), start)
    assert seen == list(range(7))  # i = 0 after the first step
    np.testing.assert_array_equal(tri[7], [1, 7, 21, 35, 35, 21, 7, 1])
    np.testing.assert_array_equal(tri, st.iterate(7, PASCAL, st.Fill(0), start))


@pytest.mark.parametrize("check_every", [2, 3, 5])
def test_iterate_until_check_every(check_every):
    a = np.random.default_rng(7).random((10, 9))
    seen = []

    def done(i, previous, current):
        assert_bit_identical(np.asarray(current), st.iterate(1, HEAT, "mirror", previous))
        seen.append(i)
        return i >= 11

    r = st.iterate_until(done, HEAT, "mirror", a, check_every=check_every, depth=2, tile=4)
    assert seen == list(range(check_every - 1, seen[-1] + 1, check_every))
    assert seen[-1] >= 11
    assert_bit_identical(r, step_loop(seen[-1] + 1, HEAT, "mirror", a))


def test_iterate_until_convergence():
    a = np.zeros(20)
    a[10] = 1.0
    r = st.iterate_until(lambda i, p, c: np.abs(c - p).max() < 1e-6, ASYM1, st.Reflect, a)
    assert np.abs(st.iterate(1, ASYM1, st.Reflect, r) - r).max() < 1e-5


def test_dask_matches_numpy():
    da = pytest.importorskip("dask.array")
    rng = np.random.default_rng(8)
    for border in [st.Fill(1), st.Wrap, st.Edge, st.Reflect, "mirror"]:
        a = rng.random((23, 31))
        expected = step_loop(7, HEAT, border, a)
        for chunks, depth in [((7, 10), 3), ((5, 31), None), ((23, 4), 7)]:
            lazy = st.iterate(7, HEAT, border, da.from_array(a, chunks=chunks), depth=depth)
            assert_bit_identical(lazy.compute(), expected)
    x = rng.random(50)
    lazy = st.iterate(6, ASYM1, st.Continue, da.from_array(x, chunks=11), depth=4)
    assert_bit_identical(lazy.compute(), step_loop(6, ASYM1, st.Continue, x))


@pytest.mark.parametrize("call, param, error", [
    (lambda a: st.iterate(-1, HEAT, st.Edge, a), "n", StencilValueError),
    (lambda a: st.iterate(1.5, HEAT, st.Edge, a), "n", StencilTypeError),
    (lambda a: st.iterate(2, "heat", st.Edge, a), "stencil", StencilTypeError),
    (lambda a: st.iterate(2, HEAT, "edge", a), "border", StencilValueError),
    (lambda a: st.iterate(2, HEAT, st.Edge, a[0]), "stencil", StencilValueError),
    (lambda a: st.iterate(2, HEAT, st.Edge, a.astype(complex)), "array", StencilTypeError),
    (lambda a: st.iterate(2, HEAT, st.Edge, (a, a)), "array", StencilTypeError),
    (lambda a: st.iterate(2, HEAT, st.Edge, np.zeros((0, 3))), "border", StencilValueError),
    (lambda a: st.iterate(2, HEAT, st.Edge, a, depth=0), "depth", StencilValueError),
    (lambda a: st.iterate(2, HEAT, st.Edge, a, tile=(2,)), "tile", StencilValueError),
    (lambda a: st.iterate(2, HEAT, st.Edge, a, out=np.empty((4, 4), np.float32)), "out",
     StencilTypeError),
    (lambda a: st.iterate_until(None, HEAT, st.Edge, a), "done", StencilTypeError),
    (lambda a: st.iterate_until(lambda *x: True, HEAT, st.Edge, a, check_every=0),
     "check_every", StencilValueError),
])
def test_bad_input(call, param, error):
    with pytest.raises(error) as info:
        call(np.ones((4, 4)))
    assert info.value.param == param


def test_dask_refusals():
    da = pytest.importorskip("dask.array")
    x = da.ones((8, 8), chunks=4)
    with pytest.raises(StencilValueError) as info:
        st.iterate(2, HEAT, st.Edge, x, out=np.empty((8, 8)))
    assert info.value.param == "out"
    with pytest.raises(StencilTypeError) as info:
        st.iterate_until(lambda *a: True, HEAT, st.Edge, x)
    assert info.value.param == "array"
