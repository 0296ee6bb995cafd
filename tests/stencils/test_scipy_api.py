"""`correlate` / `convolve` equal scipy.ndimage's for every shape and all five modes."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as hs
from hypothesis.extra import numpy as hnp

import stencils as st

from conftest import SCIPY_MODES

ndi = pytest.importorskip("scipy.ndimage")

MAX_SIDE = {1: 14, 2: 8, 3: 5, 4: 4}


@hs.composite
def cases(draw):
    ndim = draw(hs.integers(1, 4))
    shape = draw(hnp.array_shapes(min_dims=ndim, max_dims=ndim, min_side=1,
                                  max_side=MAX_SIDE[ndim]))
    image = draw(hnp.arrays(np.float64, shape, elements=hs.integers(-9, 9).map(float)))
    # Kernels may be longer than the image: the far field, where mirror modes repeat.
    kshape = draw(hnp.array_shapes(min_dims=ndim, max_dims=ndim, min_side=1, max_side=6))
    kernel = draw(hnp.arrays(np.float64, kshape, elements=hs.integers(-4, 4).map(float)))
    return image, kernel, draw(hs.sampled_from(SCIPY_MODES)), float(draw(hs.integers(-3, 3)))


@given(case=cases())
def test_correlate_equals_scipy(case):
    image, kernel, mode, cval = case
    np.testing.assert_array_equal(st.correlate(image, kernel, mode=mode, cval=cval),
                                  ndi.correlate(image, kernel, mode=mode, cval=cval))


@given(case=cases())
def test_convolve_equals_scipy(case):
    image, kernel, mode, cval = case
    np.testing.assert_array_equal(st.convolve(image, kernel, mode=mode, cval=cval),
                                  ndi.convolve(image, kernel, mode=mode, cval=cval))


@given(case=cases(), stride=hs.integers(1, 3))
def test_strided_correlate_is_scipy_sliced(case, stride):
    image, kernel, mode, cval = case
    want = ndi.correlate(image, kernel, mode=mode, cval=cval)[(slice(None, None, stride),) * image.ndim]
    np.testing.assert_array_equal(st.correlate(image, kernel, mode=mode, cval=cval, stride=stride),
                                  want)


@pytest.mark.parametrize("mode", SCIPY_MODES)
def test_real_valued_data_float32_and_float64(mode):
    rng = np.random.default_rng(7)
    image = rng.standard_normal((37, 23))
    kernel = rng.standard_normal((5, 4))
    want = ndi.correlate(image, kernel, mode=mode)
    np.testing.assert_allclose(st.correlate(image, kernel, mode=mode), want, rtol=1e-12,
                               atol=1e-12)
    single = st.correlate(image.astype(np.float32), kernel, mode=mode)
    assert single.dtype == np.float32
    np.testing.assert_allclose(single, want, rtol=1e-5, atol=2e-5 * np.abs(kernel).sum())


def test_zero_weights_do_not_spread_nan_like_scipy():
    a = np.array([1.0, np.nan, 3.0, 4.0, 5.0])
    np.testing.assert_array_equal(st.correlate(a, [1, 0, 1], mode="constant"),
                                  ndi.correlate(a, [1, 0, 1], mode="constant"))


def test_nan_and_inf_propagate_as_ieee_says():
    a = np.array([1.0, np.nan, 3.0, np.inf, 5.0])
    got = st.correlate(a, [1.0, 1.0, 1.0], mode="nearest")
    np.testing.assert_array_equal(got, ndi.correlate(a, [1.0, 1.0, 1.0], mode="nearest"))
    assert np.isnan(got[:3]).all() and np.isinf(got[4])


def test_integer_input_is_computed_in_float64():
    out = st.correlate(np.arange(5), [1, 1, 1])
    assert out.dtype == np.float64
    np.testing.assert_array_equal(out, ndi.correlate(np.arange(5.0), [1.0, 1.0, 1.0]))


def test_massiv_border_values_are_accepted_as_modes():
    a = np.array([1.0, 2.0, 3.0])
    # massiv's Reflect far from the array differs from scipy's 'reflect'.
    far = st.correlate(a, np.eye(1, 11, 0).ravel(), mode=st.Reflect)
    assert far.tolist() == [2.0, 1.0, 3.0]
    scipy_rule = st.correlate(a, np.eye(1, 11, 0).ravel(), mode="reflect")
    assert scipy_rule.tolist() == [2.0, 3.0, 3.0]
    np.testing.assert_array_equal(scipy_rule, ndi.correlate(a, np.eye(1, 11, 0).ravel()))


@pytest.mark.parametrize("mode, same", [("grid-constant", "constant"), ("grid-mirror", "reflect"),
                                        ("grid-wrap", "wrap")])
def test_grid_mode_names_filter_as_scipy_does(mode, same):
    image = np.arange(1.0, 13.0).reshape(3, 4) ** 2
    kernel = np.arange(1.0, 36.0).reshape(5, 7)  # longer than the image: the far field too
    want = ndi.correlate(image, kernel, mode=mode, cval=-2.5)
    np.testing.assert_array_equal(want, ndi.correlate(image, kernel, mode=same, cval=-2.5))
    np.testing.assert_array_equal(st.correlate(image, kernel, mode=mode, cval=-2.5), want)
    assert st.as_border(mode, cval=-2.5) == st.as_border(same, cval=-2.5)
