"""The plane-by-plane sweep of fused steps (2-D to 4-D states) against step-by-step loops.

`stencils.iterate` sweeps a 3-D or 4-D state's first axis with every fused level in flight (a
ring of planes per level, each level some planes behind the one before) and tiles only the
other axes.  These tests pin that scheme (forced on 2-D states too) and the overlapped tiles
(1-D and 2-D states, and wherever the sweep does not apply) to the bit, on every border,
with asymmetric reaches along the swept axis, swept axes shorter than the halo, odd tile
remainders and step counts not divisible by the fusion depth.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as hs

import stencils as st
from stencils import _engine, _iterate

from test_iterate import BORDERS, HEAT, NONLIN3, SPARSE4, assert_bit_identical, step_loop

# Reach 2 before and 1 after along the swept axis, 1 and 0 across it.
LOPSIDED = st.make_stencil((4, 2), (2, 1), lambda g: 0.3 * g(-2, 0) + 0.25 * g(1, -1)
                           + 0.4 * g(0, 0) + 0.05 * g(-1, 0))


@pytest.fixture(autouse=True)
def generated_engine(monkeypatch):
    monkeypatch.setattr(_engine.config, "engine", "generated")


@pytest.fixture(params=["sweep", "tiles"])
def scheme(request, monkeypatch):
    """Run each test swept, and again with the sweep refused (overlapped tiles only)."""
    swept = []
    plan = _iterate._sweep_plan

    def recorded(*args):
        result = plan(*args)
        swept.append(result is not None)
        return result
    monkeypatch.setattr(_iterate, "_SWEEP_MIN_NDIM", 2)  # 2-D states sweep too
    monkeypatch.setattr(_iterate, "_sweep_plan", recorded if request.param == "sweep"
                        else lambda *args: None)
    yield request.param
    if request.param == "sweep":
        assert any(swept), "the sweep was never taken"


@pytest.mark.parametrize("border", BORDERS, ids=repr)
def test_lopsided_reach_on_every_border(border, scheme):
    a = np.random.default_rng(10).random((23, 14))
    expected = step_loop(11, LOPSIDED, border, a)
    for depth, tile in [(4, (5, 6)), (3, None), (None, None)]:
        assert_bit_identical(st.iterate(11, LOPSIDED, border, a, depth=depth, tile=tile,
                                        parallel=False), expected)


@pytest.mark.parametrize("rows", [1, 2, 3, 5])
@pytest.mark.parametrize("border", [st.Wrap, st.Edge, st.Reflect, st.Continue, "reflect",
                                    "mirror", st.Fill(0.5)], ids=repr)
def test_swept_axis_shorter_than_the_halo(rows, border, scheme):
    a = np.random.default_rng(rows).random((rows, 9))
    assert_bit_identical(st.iterate(7, LOPSIDED, border, a, depth=6, tile=4, parallel=False),
                         step_loop(7, LOPSIDED, border, a))


@pytest.mark.parametrize("stencil, shape", [(NONLIN3, (9, 7, 11)), (SPARSE4, (7, 3, 6, 9))],
                         ids=["3d", "4d"])
@pytest.mark.parametrize("border", [st.Fill(2), st.Wrap, st.Edge, st.Continue, "mirror"],
                         ids=repr)
def test_nd_odd_remainders(stencil, shape, border, scheme):
    a = np.random.default_rng(11).random(shape)
    expected = step_loop(7, stencil, border, a)
    for depth, tile in [(3, 4), (5, (2, 2, 3, 4)[-len(shape):]), (None, None)]:
        assert_bit_identical(st.iterate(7, stencil, border, a, depth=depth, tile=tile,
                                        parallel=False), expected)


def test_parallel_sweep_matches_serial(scheme):
    a = np.random.default_rng(12).random((40, 33, 30))
    heat = st.make_stencil((3, 3, 3), (1, 1, 1), lambda g: g(0, 0, 0) + 0.1 * (
        g(-1, 0, 0) + g(1, 0, 0) + g(0, -1, 0) + g(0, 1, 0) + g(0, 0, -1) + g(0, 0, 1)
        - 6 * g(0, 0, 0)))
    serial = st.iterate(9, heat, "nearest", a, depth=4, parallel=False)
    assert_bit_identical(st.iterate(9, heat, "nearest", a, depth=4, parallel=True), serial)
    assert_bit_identical(serial, step_loop(9, heat, "nearest", a))


def test_default_sweep_splits_the_plane_among_threads():
    # 256 / 5 tiles would leave one of two threads idle for the last one: 6 tiles instead.
    reach = np.array([0, 1, 1, 1])
    plan = _iterate._sweep_plan((1, 256, 256, 256), 3, reach, reach, 4, 2, 8, None, 1 << 21, 2)
    assert plan[0] == 1 and list(plan[4]) == [1, 1, 6, 1]
    assert _iterate._sweep_plan((1, 1, 64, 64), 2, reach, reach, 4, 2, 8, None, 1 << 21, 2) is None


@settings(max_examples=20, deadline=None)
@given(rows=hs.integers(1, 14), cols=hs.integers(1, 10), n=hs.integers(0, 9),
       depth=hs.integers(2, 6), tile=hs.integers(1, 6), border=hs.sampled_from(BORDERS))
def test_property_sweep_any_depth(rows, cols, n, depth, tile, border):
    a = np.random.default_rng(rows * 17 + cols).random((rows, cols))
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(_iterate, "_SWEEP_MIN_NDIM", 2)  # 2-D states sweep too
        for stencil in (HEAT, LOPSIDED):
            assert_bit_identical(st.iterate(n, stencil, border, a, depth=depth, tile=tile,
                                            parallel=False), step_loop(n, stencil, border, a))


FLAT3 = st.make_stencil((1, 3, 3), (0, 1, 1), lambda g: 0.2 * g(0, -1, 0) + 0.3 * g(0, 1, 1)
                        + 0.5 * g(0, 0, 0))
AXIAL3 = st.make_stencil((5, 1, 1), (1, 0, 0), lambda g: 0.2 * g(-1, 0, 0) + 0.3 * g(3, 0, 0)
                         + 0.5 * g(0, 0, 0))


@pytest.mark.parametrize("stencil", [FLAT3, AXIAL3], ids=["no-reach-along", "reach-only-along"])
@pytest.mark.parametrize("border", [st.Wrap, st.Continue], ids=repr)
def test_reach_on_one_side_of_the_sweep_only(stencil, border):
    # No reach along the swept axis (a ring of one plane per level), or reach along it only.
    a = np.random.default_rng(13).random((6, 5, 9))
    assert_bit_identical(st.iterate(7, stencil, border, a, depth=3, tile=2, parallel=False),
                         step_loop(7, stencil, border, a))
