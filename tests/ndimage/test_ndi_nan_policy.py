"""``nan_policy``: 'propagate' is scipy; 'omit' leaves NaN out of each window (rescaled weights)."""

import numpy as np
import pytest
import scipy.ndimage as sn
from hypothesis import given, strategies as st
from hypothesis.extra import numpy as hnp

from stencils import ndimage as ndi

PAD = {"reflect": "symmetric", "mirror": "reflect", "nearest": "edge", "wrap": "wrap",
       "constant": "constant"}


def omit_reference(image, weights, mode, cval):
    """sum_valid(w x) * sum(|w|) / sum_valid(|w|) per window, by brute force (odd kernels)."""
    half = [s // 2 for s in weights.shape]
    kw = {"constant_values": cval} if mode == "constant" else {}
    padded = np.pad(image, [(h, h) for h in half], mode=PAD[mode], **kw)
    out = np.empty(image.shape)
    for index in np.ndindex(image.shape):
        window = padded[tuple(slice(i, i + s) for i, s in zip(index, weights.shape))]
        valid = ~np.isnan(window)
        w = weights[valid]
        out[index] = (w * window[valid]).sum() * np.abs(weights).sum() / np.abs(w).sum() \
            if valid.any() else np.nan
    return out


images = hnp.arrays(np.float64, hnp.array_shapes(min_dims=1, max_dims=2, min_side=3, max_side=8),
                    elements=st.one_of(st.floats(-100, 100), st.just(np.nan)))


@given(images, st.sampled_from(list(PAD)), st.data())
def test_omit_matches_the_definition(image, mode, data):
    weights = data.draw(hnp.arrays(np.float64, (3,) * image.ndim,
                                   elements=st.sampled_from([0.5, 1.0, 2.0, -1.0])))
    got = ndi.correlate(image, weights, mode=mode, cval=1.5, nan_policy="omit")
    np.testing.assert_allclose(got, omit_reference(image, weights, mode, 1.5), rtol=1e-9,
                               atol=1e-9)


@given(images, st.sampled_from(list(PAD)))
def test_omit_gaussian_and_uniform_are_weighted_means_of_present_values(image, mode):
    w1 = np.exp(-0.5 * np.arange(-1.0, 2.0) ** 2)  # sigma 1, radius 1
    w1 /= w1.sum()
    weights = w1 if image.ndim == 1 else np.outer(w1, w1)
    got = ndi.gaussian_filter(image, 1.0, mode=mode, radius=1, nan_policy="omit")
    np.testing.assert_allclose(got, omit_reference(image, weights, mode, 0.0), rtol=1e-9,
                               atol=1e-9)
    box = np.ones((3,) * image.ndim) / 3 ** image.ndim
    got = ndi.uniform_filter(image, 3, mode=mode, nan_policy="omit")
    np.testing.assert_allclose(got, omit_reference(image, box, mode, 0.0), rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("name, args", [("correlate1d", ([1.0, 2.0, 0.5],)),
                                        ("convolve1d", ([1.0, 2.0],)),
                                        ("correlate", (np.ones((2, 3)),)),
                                        ("convolve", (np.ones((3, 3)),)),
                                        ("uniform_filter1d", (4,)), ("uniform_filter", (3,)),
                                        ("gaussian_filter1d", (1.5,)),
                                        ("gaussian_filter", (1.5,))])
@pytest.mark.parametrize("dtype", [np.float64, np.float32, np.int16])
def test_without_nan_omit_is_scipy(name, args, dtype):
    image = (np.random.default_rng(5).standard_normal((9, 11)) * 20).astype(dtype)
    ours = getattr(ndi, name)(image, *args, nan_policy="omit")
    theirs = getattr(sn, name)(image, *args)
    assert ours.dtype == theirs.dtype
    np.testing.assert_array_equal(ours, theirs)


def test_propagate_is_the_default_and_bad_policy_is_refused():
    image = np.array([1.0, np.nan, 3.0])
    np.testing.assert_array_equal(ndi.uniform_filter(image, 3), sn.uniform_filter(image, 3))
    with pytest.raises(ValueError, match="nan_policy"):
        ndi.gaussian_filter(image, 1, nan_policy="raise")
    with pytest.raises(TypeError, match="nan_policy"):
        ndi.correlate1d(image + 0j, [1, 2], nan_policy="omit")
