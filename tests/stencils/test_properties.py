"""Hypothesis properties against the plain NumPy reference (stencils._reference).

The reference pads by the border rule one index at a time and loops over
output points, calling the stencil's definition with real numbers: it shares
nothing with the kernels.  Data and weights are small integers, so every
result is exact whatever the summation order, and comparisons use ==.
"""

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as hs
from hypothesis.extra import numpy as hnp

import stencils as st
from stencils import _reference as ref

from conftest import MASSIV_BORDERS, SCIPY_MODES



@hs.composite
def borders(draw):
    choice = draw(hs.sampled_from(["fill"] + MASSIV_BORDERS + SCIPY_MODES))
    if choice == "fill":
        return st.Fill(draw(hs.integers(-5, 5)))
    return st.as_border(choice) if isinstance(choice, str) else choice


@hs.composite
def arrays(draw, ndim=None, max_side=6, min_side=0, dtype=np.float64):
    ndim = ndim or draw(hs.integers(1, 4))
    max_side = {1: 12, 2: 7, 3: 5, 4: 4}[ndim] if max_side is None else min(
        max_side, {1: 12, 2: 7, 3: 5, 4: 4}[ndim])
    shape = draw(hnp.array_shapes(min_dims=ndim, max_dims=ndim, min_side=min_side,
                                  max_side=max_side))
    return draw(hnp.arrays(dtype, shape, elements=hs.integers(-9, 9).map(float)))


@hs.composite
def kernels(draw, ndim):
    shape = draw(hnp.array_shapes(min_dims=ndim, max_dims=ndim, min_side=1, max_side=4))
    return draw(hnp.arrays(np.float64, shape, elements=hs.integers(-4, 4).map(float)))


def paddings(ndim):
    widths = hs.lists(hs.integers(0, 6), min_size=ndim, max_size=ndim).map(tuple)
    return hs.tuples(widths, widths)


def _expected_or_error(compute_reference, array, border):
    """The reference result, or None where massiv raises (a non-Fill border on an empty axis)."""
    try:
        return compute_reference()
    except (ZeroDivisionError, IndexError):
        assert array.size == 0 and border.kind != "Fill"
        return None


def _kernel_fn(kernel, convolution):
    h = [m // 2 for m in kernel.shape]
    taps = [(j, kernel[j]) for j in np.ndindex(kernel.shape)]
    if convolution:
        return lambda get: sum(w * get(*[hh - jj for hh, jj in zip(h, j)]) for j, w in taps)
    return lambda get: sum(w * get(*[jj - hh for hh, jj in zip(h, j)]) for j, w in taps)


def _check(w, want, stride=None):
    if want is None:
        with pytest.raises(st.errors.StencilValueError, match="empty axis"):
            st.compute(w) if stride is None else st.compute_with_stride(stride, w)
        return
    got = st.compute(w) if stride is None else st.compute_with_stride(stride, w)
    assert got.shape == want.shape
    np.testing.assert_array_equal(got, want)


@given(data=hs.data(), convolution=hs.booleans())
def test_kernel_stencils_match_reference(data, convolution):
    array = data.draw(arrays())
    kernel = data.draw(kernels(array.ndim))
    (po, pb), border = data.draw(paddings(array.ndim)), data.draw(borders())
    stride = data.draw(hs.lists(hs.integers(1, 3), min_size=array.ndim,
                                max_size=array.ndim).map(tuple))
    make = (st.make_convolution_stencil_from_kernel if convolution
            else st.make_correlation_stencil_from_kernel)
    stencil = make(kernel)
    want = _expected_or_error(lambda: ref.apply_function(
        _kernel_fn(kernel, convolution), stencil.size, stencil.center, array, po, pb, border,
        stride), array, border)
    _check(st.apply_stencil(st.Padding(po, pb, border), stencil, array), want, st.Stride(*stride))


NONLINEAR = [
    lambda g, d: np.maximum(g(*d[0]), g(*d[1])) - abs(g(*d[2])),
    lambda g, d: np.where(g(*d[0]) > g(*d[1]), g(*d[2]) * 2.0, -g(*d[0])),
    lambda g, d: np.minimum(g(*d[0]) * g(*d[1]), 3.0) + (g(*d[2]) >= 0),
    lambda g, d: (g(*d[0]) - g(*d[1])) ** 2 + np.sign(g(*d[2])),
    lambda g, d: np.clip(g(*d[0]) + g(*d[1]) - g(*d[2]), -4, 5),
]


@hs.composite
def user_stencils(draw, ndim):
    size = tuple(draw(hs.lists(hs.integers(1, 4), min_size=ndim, max_size=ndim)))
    center = tuple(draw(hs.integers(0, s - 1)) for s in size)
    offsets = [tuple(draw(hs.integers(-c, s - 1 - c)) for s, c in zip(size, center))
               for _ in range(3)]
    template = draw(hs.sampled_from(NONLINEAR))
    return size, center, (lambda get: template(get, offsets))


@given(data=hs.data())
def test_make_stencil_matches_reference(data):
    array = data.draw(arrays())
    size, center, fn = data.draw(user_stencils(array.ndim))
    (po, pb), border = data.draw(paddings(array.ndim)), data.draw(borders())
    stencil = st.make_stencil(size, center, fn)
    want = _expected_or_error(lambda: ref.apply_function(fn, size, center, array, po, pb, border),
                              array, border)
    _check(st.apply_stencil(st.Padding(po, pb, border), stencil, array), want)


@settings(max_examples=12)
@given(data=hs.data())
def test_generated_kernels_match_reference(data):
    """The same through kernels generated for the stencil (each example compiles one)."""
    array = data.draw(arrays(min_side=1))
    size, center, fn = data.draw(user_stencils(array.ndim))
    (po, pb), border = data.draw(paddings(array.ndim)), data.draw(borders())
    stride = tuple(data.draw(hs.lists(hs.integers(1, 2), min_size=array.ndim,
                                      max_size=array.ndim)))
    stencil = st.make_stencil(size, center, fn)
    want = ref.apply_function(fn, size, center, array, po, pb, border, stride)
    with st.config(engine="generated"):
        _check(st.apply_stencil(st.Padding(po, pb, border), stencil, array), want,
               st.Stride(*stride))


READY = {
    "sum": (st.sum_stencil, np.sum),
    "product": (st.product_stencil, np.prod),
    "max": (st.max_stencil, np.max),
    "min": (st.min_stencil, np.min),
    "avg": (st.avg_stencil, None),
}


@given(data=hs.data(), name=hs.sampled_from(sorted(READY)))
def test_ready_made_stencils_are_window_reductions(data, name):
    array = data.draw(arrays(min_side=1))
    size = tuple(data.draw(hs.lists(hs.integers(1, 3), min_size=array.ndim,
                                    max_size=array.ndim)))
    border = data.draw(borders())
    make, reduce = READY[name]
    padded = ref.pad(array, [0] * array.ndim, [s - 1 for s in size], border)
    windows = np.lib.stride_tricks.sliding_window_view(padded, size)
    axes = tuple(range(array.ndim, 2 * array.ndim))
    if name == "avg":
        want = windows.sum(axis=axes) / np.prod(size)
    else:
        want = reduce(windows, axis=axes)
    np.testing.assert_array_equal(st.compute(st.map_stencil(border, make(size), array)), want)


@given(data=hs.data())
def test_map_stencil_keeps_the_shape_and_centres_output_i_on_source_i(data):
    """massiv's mapStencil, read off its definition: ``out[i] = f(get)`` where ``get(d)``
    reads source ``i + d`` through the border (no padding arithmetic in the test)."""
    array = data.draw(arrays(min_side=1))
    size, center, fn = data.draw(user_stencils(array.ndim))
    border = data.draw(borders())
    got = st.compute(st.map_stencil(border, st.make_stencil(size, center, fn), array))

    def read(i, d):
        at = [ref.border_index(a + b, n, border) for a, b, n in zip(i, d, array.shape)]
        return np.float64(border.value if None in at else array[tuple(at)])

    want = np.empty(array.shape)
    for i in np.ndindex(array.shape):
        want[i] = fn(lambda *d, i=i: read(i, d))
    assert got.shape == array.shape
    np.testing.assert_array_equal(got, want)


@given(data=hs.data())
def test_strided_compute_is_compute_then_slice(data):
    array = data.draw(arrays())
    stencil = st.make_correlation_stencil_from_kernel(data.draw(kernels(array.ndim)))
    (po, pb) = data.draw(paddings(array.ndim))
    w = st.apply_stencil(st.Padding(po, pb, st.Fill(1)), stencil, array)
    stride = tuple(data.draw(hs.lists(hs.integers(1, 4), min_size=array.ndim,
                                      max_size=array.ndim)))
    full = st.compute(w)
    strided = st.compute_with_stride(st.Stride(*stride), w)
    assert strided.shape == tuple(-(-n // s) for n, s in zip(full.shape, stride))
    np.testing.assert_array_equal(strided, full[tuple(slice(None, None, s) for s in stride)])


@given(data=hs.data())
def test_convolution_is_correlation_with_flipped_odd_kernel(data):
    array = data.draw(arrays(min_side=1))
    kernel = data.draw(kernels(array.ndim))
    assume(all(m % 2 == 1 for m in kernel.shape))
    border = data.draw(borders())
    conv = st.compute(st.map_stencil(border, st.make_convolution_stencil_from_kernel(kernel), array))
    corr = st.compute(st.map_stencil(
        border, st.make_correlation_stencil_from_kernel(np.flip(kernel)), array))
    np.testing.assert_array_equal(conv, corr)


@given(data=hs.data())
def test_one_by_one_kernel_scales(data):
    array = data.draw(arrays(min_side=1))
    w = data.draw(hs.integers(-4, 4))
    out = st.compute(st.map_stencil(st.Wrap, st.make_correlation_stencil_from_kernel(
        np.full((1,) * array.ndim, float(w))), array))
    np.testing.assert_array_equal(out, w * array)


@given(data=hs.data())
def test_float32_stays_float32_and_close_to_float64(data):
    rng = np.random.default_rng(data.draw(hs.integers(0, 2**32 - 1)))
    ndim = data.draw(hs.integers(1, 3))
    shape = tuple(rng.integers(1, 9, size=ndim))
    array = rng.standard_normal(shape)
    kernel = rng.standard_normal(tuple(rng.integers(1, 5, size=ndim)))
    border = data.draw(borders())
    stencil = st.make_correlation_stencil_from_kernel(kernel)
    single = st.compute(st.map_stencil(border, stencil, array.astype(np.float32)))
    double = st.compute(st.map_stencil(border, stencil, array))
    assert single.dtype == np.float32
    scale = np.abs(kernel).sum() * (1 + np.abs(array).max())
    np.testing.assert_allclose(single, double, rtol=0, atol=1e-5 * scale)


@given(border=borders(), n=hs.integers(1, 9),
       reads=hs.lists(hs.integers(-(2**40), 2**40) | hs.integers(-30, 30), min_size=1,
                      max_size=20))
def test_the_kernels_border_rule_equals_the_reference(border, n, reads):
    from stencils import _kernels_border as kb

    want = [ref.border_index(i, n, border) for i in reads]
    want = np.array([-1 if w is None else w for w in want], dtype=np.int64)
    np.testing.assert_array_equal(kb.resolve_indices(np.array(reads), n, border.code), want)
    assert [kb.resolve_index(i, n, border.code) for i in reads] == want.tolist()
