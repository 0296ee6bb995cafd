"""The generated kernels: their source (a golden copy), and arrays whose trailing
axes are short, every border and stride, bit-identical to the interpreter."""

import functools
import os
import pathlib

import numpy as np
import pytest

import stencils as st
from stencils import _codegen, _engine
from stencils import _reference as ref
from stencils._kernels_run import GEOMETRY_ROWS, outer_geometry

GOLDEN = pathlib.Path(__file__).parent / "golden"
REGENERATE = "STENCILS_REGENERATE_GOLDEN"

BORDERS = [st.Fill(-1.5), st.Wrap, st.Edge, st.Reflect, st.Continue, "reflect", "mirror"]


def _golden_stencil():
    return st.make_stencil((3, 3), (1, 1), lambda g: np.maximum(g(-1, 0), g(1, 1))
                           + 0.5 * (g(0, -1) + g(0, 1)))


# (file, stencil, stride along the last axis): a unit stride, and a small one
# (LeNet's pooling: a strided loop for short lines, a dense one for long lines).
GOLDEN_CASES = [("generated_3x3_max_plus_sum.py", _golden_stencil, 1),
                ("generated_2x2_max_stride2.py", lambda: st.max_stencil((1, 1, 2, 2)), 2)]


@pytest.mark.parametrize("name, stencil, step", GOLDEN_CASES, ids=[c[0] for c in GOLDEN_CASES])
def test_generated_source_matches_the_golden_copy(name, stencil, step):
    text = _codegen.generate_source(stencil(), step, "golden")
    path = GOLDEN / name
    if os.environ.get(REGENERATE):
        GOLDEN.mkdir(exist_ok=True)
        path.write_text(text)
    assert text == path.read_text(), (
        f"the generated source changed; if that is intended, regenerate the golden copy with "
        f"`{REGENERATE}=1 python -m pytest {__file__} -k golden` and review its diff")


def _run(stencil, array, padding, step, engine, parallel):
    old = _engine.config.engine
    _engine.config.engine = engine
    try:
        return st.apply_stencil(padding, stencil, array)._run(step, None, parallel=parallel)
    finally:
        _engine.config.engine = old


@functools.lru_cache(maxsize=None)
def _pool_stencils():
    """convnet's max-pooling and first-argmax-code stencils, 2x2."""
    def argmax(get):
        values = [get(0, 0, u, v) for u in range(2) for v in range(2)]
        peak = functools.reduce(np.maximum, values)
        code = 3
        for k in range(2, -1, -1):
            code = np.where(values[k] == peak, k, np.where(values[k] != values[k], k, code))
        return code
    return st.max_stencil((1, 1, 2, 2)), st.make_stencil((1, 1, 2, 2), (0, 0, 0, 0), argmax)


def _array(shape, seed, nan=True):
    a = np.random.default_rng(seed).standard_normal(shape).astype(np.float32)
    a[..., ::3] = np.round(a[..., ::3])  # ties for the argmax codes
    if nan and a.size > 4:
        a.flat[::7] = np.nan
        a.flat[3::11] = -0.0
    return a


@pytest.mark.parametrize("which", [0, 1], ids=["max", "argmax"])
def test_pooling_on_short_trailing_axes_is_the_interpreters(which):
    stencil = _pool_stencils()[which]
    for width in range(2, 41):
        a = _array((3, 2, 6 + width % 5, width), width)
        # One last-axis stride (it is a literal of the kernel: one compile);
        # the others are covered by the stencil below.
        for step in [(1, 1, 2, 2), (1, 2, 3, 2), (2, 1, 1, 2)]:
            want = _run(stencil, a, st.no_padding, step, "interpreter", False)
            for parallel in (False, True):
                got = _run(stencil, a, st.no_padding, step, "generated", parallel)
                np.testing.assert_array_equal(got, want, err_msg=f"{a.shape} {step} {parallel}")


def _mixed_stencil():
    return st.make_stencil((1, 3, 3), (0, 1, 1), lambda g: np.maximum(g(0, -1, 1), g(0, 1, -1))
                           - 0.25 * g(0, 0, 0) + 0.5 * g(0, 1, 1))


@pytest.mark.parametrize("step", [(1, 1, 1), (1, 2, 2), (2, 1, 3)])
def test_short_trailing_axes_every_border_and_stride(step):
    s = _mixed_stencil()
    for width in range(1, 41):
        a = _array((4, 3 + width % 4, width), 100 + width)
        for border in BORDERS:
            for padding in (st.Padding((0, 1, 1), (0, 1, 1), border),
                            st.Padding((1, 2, 0), (0, 0, 3), border)):
                want = _run(s, a, padding, step, "interpreter", False)
                for parallel in (False, True):
                    got = _run(s, a, padding, step, "generated", parallel)
                    np.testing.assert_array_equal(
                        got, want, err_msg=f"{a.shape} {border} {padding} {step} {parallel}")


def test_short_trailing_axes_follow_the_reference():
    # The interpreter is checked against the reference elsewhere; this pins the
    # generated kernel to it directly on a few shapes, borders and strides.
    s = _mixed_stencil()
    for shape, border, step in [((3, 4, 5), st.Reflect, (1, 1, 1)),
                                ((2, 5, 1), st.Fill(2), (1, 2, 1)),
                                ((3, 3, 7), "mirror", (2, 1, 3)), ((1, 6, 9), st.Wrap, (1, 2, 2))]:
        a = _array(shape, 7, nan=False)
        want = ref.apply(s, a, (0, 1, 1), (0, 1, 1), st.as_border(border), step)
        got = _run(s, a, st.Padding((0, 1, 1), (0, 1, 1), border), step, "generated", True)
        np.testing.assert_array_equal(got, want, err_msg=f"{shape} {border} {step}")


def _geometry(out_outer, src_outer, lo, step, key_lo, key_hi):
    geometry = np.empty((GEOMETRY_ROWS, len(out_outer)), dtype=np.int64)
    lines = outer_geometry(*(np.array(v, dtype=np.int64) for v in
                             (out_outer, src_outer, lo, step, key_lo, key_hi)), geometry)
    return [list(g) for g in geometry[:GEOMETRY_ROWS - 1]], lines


def test_pass_through_axes_fold_into_one_run_of_lines():
    # (64, 6, 28, 28) pooled 2x2 with stride 2: every output line reads source
    # rows 2 * line and 2 * line + 1, so the outer axes fold into one.
    pool = dict(out_outer=[64, 6, 14], src_outer=[64, 6, 28], step=[1, 1, 2, 2],
                key_lo=[0, 0, 0], key_hi=[0, 0, 1])
    (oo, so, lo, step), lines = _geometry(lo=[0, 0, 0, 0], **pool)
    assert oo == [1, 1, 64 * 6 * 14] and so == [1, 1, 64 * 6 * 28]
    assert lo == [0, 0, 0] and step == [1, 1, 2] and lines == (0, 64 * 6 * 14)
    # A read above the plane (padding on H) keeps the planes apart.
    (oo, so, lo, step), lines = _geometry(lo=[0, 0, -1, 0], **pool)
    assert oo == [1, 64 * 6, 14] and so == [1, 64 * 6, 28] and lines == (1, 14)
