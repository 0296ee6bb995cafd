"""stencils.ndimage's linear filters against scipy.ndimage: bit-equal results, same dtypes."""

import numpy as np
import pytest
import scipy.ndimage as sn
from hypothesis import given, strategies as st
from hypothesis.extra import numpy as hnp

from stencils import ndimage as ndi

MODES = ["reflect", "constant", "nearest", "mirror", "wrap", "grid-wrap", "grid-mirror",
         "grid-constant"]
DTYPES = [np.float64, np.float32, np.int16, np.uint8, np.int64, np.bool_]


@st.composite
def images(draw, dtypes=DTYPES, min_dims=1, max_dims=4):
    shape = draw(hnp.array_shapes(min_dims=min_dims, max_dims=max_dims, min_side=1,
                                  max_side=7))
    dtype = np.dtype(draw(st.sampled_from(dtypes)))
    if dtype.kind == "f":
        elements = st.floats(-1e3, 1e3, width=dtype.itemsize * 8)
    elif dtype.kind == "c":
        elements = st.complex_numbers(max_magnitude=1e3, width=dtype.itemsize * 8)
    elif dtype.kind == "b":
        elements = st.booleans()
    else:
        info = np.iinfo(dtype)
        elements = st.integers(max(info.min, -1000), min(info.max, 1000))
    return draw(hnp.arrays(dtype, shape, elements=elements))


def same(ours, theirs):
    assert ours.dtype == theirs.dtype
    np.testing.assert_array_equal(ours, theirs, strict=True)


cvals = st.sampled_from([0.0, 1.5, -2.0, 0.1])


@given(images(), st.lists(st.floats(-3, 3), min_size=1, max_size=6), st.data())
def test_correlate1d_and_convolve1d(image, weights, data):
    axis = data.draw(st.integers(-image.ndim, image.ndim - 1))
    mode, cval = data.draw(st.sampled_from(MODES)), data.draw(cvals)
    shape = data.draw(st.sampled_from(["any", "symmetric", "antisymmetric"]))
    if shape == "symmetric":  # scipy sums these in pairs
        weights = weights[:-1] + weights[::-1]
    elif shape == "antisymmetric":
        weights = weights[:-1] + [0.0] + [-w for w in weights[-2::-1]]
    n = len(weights)
    origin = data.draw(st.integers(-(n // 2), (n - 1) // 2))
    for ours, theirs in ((ndi.correlate1d, sn.correlate1d), (ndi.convolve1d, sn.convolve1d)):
        same(ours(image, weights, axis, mode=mode, cval=cval, origin=origin),
             theirs(image, weights, axis, mode=mode, cval=cval, origin=origin))


@given(images(), st.data())
def test_correlate_and_convolve(image, data):
    shape = data.draw(hnp.array_shapes(min_dims=image.ndim, max_dims=image.ndim, max_side=4))
    weights = data.draw(hnp.arrays(np.float64, shape, elements=st.sampled_from(
        [0.0, 1.0, -2.0, 0.5, 1e-17, 3.25])))
    mode, cval = data.draw(st.sampled_from(MODES)), data.draw(cvals)
    origin = [data.draw(st.integers(-(s // 2), (s - 1) // 2)) for s in shape]
    for ours, theirs in ((ndi.correlate, sn.correlate), (ndi.convolve, sn.convolve)):
        same(ours(image, weights, mode=mode, cval=cval, origin=origin),
             theirs(image, weights, mode=mode, cval=cval, origin=origin))


@given(images(), st.integers(1, 6), st.data())
def test_uniform_filters(image, size, data):
    mode, cval = data.draw(st.sampled_from(MODES)), data.draw(cvals)
    axis = data.draw(st.integers(0, image.ndim - 1))
    origin = data.draw(st.integers(-(size // 2), (size - 1) // 2))
    same(ndi.uniform_filter1d(image, size, axis, mode=mode, cval=cval, origin=origin),
         sn.uniform_filter1d(image, size, axis, mode=mode, cval=cval, origin=origin))
    same(ndi.uniform_filter(image, size, mode=mode, cval=cval, origin=origin),
         sn.uniform_filter(image, size, mode=mode, cval=cval, origin=origin))


@given(images(), st.floats(0.3, 3.0), st.integers(0, 3), st.data())
def test_gaussian_filters(image, sigma, order, data):
    mode, cval = data.draw(st.sampled_from(MODES)), data.draw(cvals)
    truncate = data.draw(st.sampled_from([4.0, 2.0, 1.0]))
    radius = data.draw(st.sampled_from([None, 0, 2]))
    axis = data.draw(st.integers(0, image.ndim - 1))
    kw = dict(mode=mode, cval=cval, truncate=truncate, radius=radius)
    same(ndi.gaussian_filter1d(image, sigma, axis, order, **kw),
         sn.gaussian_filter1d(image, sigma, axis, order, **kw))
    same(ndi.gaussian_filter(image, sigma, order, **kw),
         sn.gaussian_filter(image, sigma, order, **kw))


@given(images(), st.data())
def test_derivative_filters(image, data):
    mode, cval = data.draw(st.sampled_from(MODES)), data.draw(cvals)
    axis = data.draw(st.integers(0, image.ndim - 1))
    for name in ("sobel", "prewitt"):
        same(getattr(ndi, name)(image, axis, mode=mode, cval=cval),
             getattr(sn, name)(image, axis, mode=mode, cval=cval))
    same(ndi.laplace(image, mode=mode, cval=cval), sn.laplace(image, mode=mode, cval=cval))


@given(images(dtypes=[np.float64, np.float32, np.int32]), st.floats(0.5, 2.0), st.data())
def test_gaussian_laplace_and_gradient_magnitude(image, sigma, data):
    mode = data.draw(st.sampled_from(MODES))
    for name in ("gaussian_laplace", "gaussian_gradient_magnitude"):
        same(getattr(ndi, name)(image, sigma, mode=mode),
             getattr(sn, name)(image, sigma, mode=mode))


@given(images(dtypes=[np.float64, np.complex128, np.complex64], max_dims=3), st.data())
def test_complex_input_and_weights(image, data):
    weights = data.draw(st.sampled_from([[1, 2j, 3], [1 - 1j, 0.5], [1.0, -2.0, 1.0]]))
    weights = np.asarray(weights)
    axis = data.draw(st.integers(0, image.ndim - 1))
    mode = data.draw(st.sampled_from(MODES))
    for name in ("correlate1d", "convolve1d"):
        same(getattr(ndi, name)(image, weights, axis, mode=mode),
             getattr(sn, name)(image, weights, axis, mode=mode))
    kernel = weights.reshape((1,) * (image.ndim - 1) + (-1,))
    for name in ("correlate", "convolve"):
        same(getattr(ndi, name)(image, kernel, mode=mode),
             getattr(sn, name)(image, kernel, mode=mode))
    same(ndi.uniform_filter(image, 3, mode=mode), sn.uniform_filter(image, 3, mode=mode))


@pytest.mark.parametrize("axes", [(0,), (1, 2), (-1, 0)])
def test_axes_and_per_axis_arguments(axes):
    image = np.random.default_rng(1).standard_normal((5, 6, 7))
    n = len(axes)
    modes = ["wrap", "mirror"][:n]
    kw = dict(mode=modes, axes=axes)
    same(ndi.gaussian_filter(image, [1.0, 0.5][:n], order=[1, 0][:n], **kw),
         sn.gaussian_filter(image, [1.0, 0.5][:n], order=[1, 0][:n], **kw))
    same(ndi.uniform_filter(image, [3, 2][:n], origin=[1, 0][:n], **kw),
         sn.uniform_filter(image, [3, 2][:n], origin=[1, 0][:n], **kw))
    weights = np.arange(1.0, 1 + 3 ** n).reshape((3,) * n)
    same(ndi.correlate(image, weights, axes=axes, origin=1),
         sn.correlate(image, weights, axes=axes, origin=1))
    same(ndi.laplace(image, mode=modes, axes=axes), sn.laplace(image, mode=modes, axes=axes))


@pytest.mark.parametrize("out_dtype", [np.float32, np.int16, np.uint8, np.bool_])
def test_output_array_and_dtype(out_dtype):
    image = np.random.default_rng(2).uniform(-50, 50, (9, 8))
    out = np.zeros(image.shape, out_dtype)
    with np.errstate(all="ignore"):
        expected = sn.gaussian_filter(image, 1.5, output=out_dtype)
        assert ndi.gaussian_filter(image, 1.5, output=out) is out
        same(out, expected)
        same(ndi.correlate(image, [[1, -2], [3, 1]], output=out_dtype),
             sn.correlate(image, [[1, -2], [3, 1]], output=out_dtype))


def test_in_place_output_and_non_contiguous_input():
    image = np.random.default_rng(3).standard_normal((8, 10))
    expected = sn.sobel(image, 0)
    ours = image.copy()
    ndi.sobel(ours, 0, output=ours)
    same(ours, expected)
    view = image.T[::2]
    same(ndi.gaussian_filter(view, 1.0), sn.gaussian_filter(view, 1.0))
    same(ndi.correlate(view, np.ones((2, 3))), sn.correlate(view, np.ones((2, 3))))


def test_large_parallel_matches_scipy():
    # Large enough for the parallel kernels (their first call compiles them).
    image = np.random.default_rng(4).standard_normal((300, 257)).astype(np.float32)
    same(ndi.gaussian_filter(image, 2.0, mode="constant", cval=0.3),
         sn.gaussian_filter(image, 2.0, mode="constant", cval=0.3))
    same(ndi.uniform_filter(image, 15, mode="wrap"), sn.uniform_filter(image, 15, mode="wrap"))
    same(ndi.correlate(image, np.arange(9.0).reshape(3, 3)),
         sn.correlate(image, np.arange(9.0).reshape(3, 3)))


def test_nan_and_inf_spread_as_in_scipy():
    image = np.arange(20.0).reshape(4, 5)
    image[1, 2] = np.nan
    image[3, 0] = np.inf
    for name, args in (("gaussian_filter", (1.0,)), ("uniform_filter", (3,)), ("sobel", ()),
                       ("correlate", ([[0, 1e-17], [1, 2]],))):
        same(getattr(ndi, name)(image, *args), getattr(sn, name)(image, *args))


# -- the generated passes (arrays from 2**15 elements, up to 64 taps) ---------------------

LARGE = np.random.default_rng(5).uniform(-100, 100, (190, 181))


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.int16])
def test_generated_passes_match_scipy(mode, dtype):
    image = LARGE.astype(dtype)
    kw = dict(mode=mode, cval=-1.25)
    # Fused per row (both axes), then each axis alone, symmetric and antisymmetric.
    same(ndi.gaussian_filter(image, 2.0, **kw), sn.gaussian_filter(image, 2.0, **kw))
    for axis in (0, 1):
        same(ndi.gaussian_filter1d(image, 1.5, axis, order=1, **kw),
             sn.gaussian_filter1d(image, 1.5, axis, order=1, **kw))
        same(ndi.correlate1d(image, [0.5, -2.0, 1.0, 3.0], axis, origin=1, **kw),
             sn.correlate1d(image, [0.5, -2.0, 1.0, 3.0], axis, origin=1, **kw))
    # The uniform filter's two passes fused (its running sums start at row 0 in every block).
    for size, origin in ((15, 0), ((4, 7), (1, -3))):
        same(ndi.uniform_filter(image, size, origin=origin, **kw),
             sn.uniform_filter(image, size, origin=origin, **kw))


@pytest.mark.parametrize("mode", MODES)
def test_fused_derivatives_match_scipy(mode):
    # Both orders of fused passes (vertical first, lines first) and the one-pass magnitude.
    image = LARGE.astype(np.float32)
    for axis in (0, 1):
        for name in ("sobel", "prewitt"):
            same(getattr(ndi, name)(image, axis, mode=mode, cval=2.5),
                 getattr(sn, name)(image, axis, mode=mode, cval=2.5))
    for name in ("sobel", "prewitt"):  # fused per block of rows, as the Gaussian below
        same(ndi.generic_gradient_magnitude(image, getattr(ndi, name), mode=mode, cval=-1.0),
             sn.generic_gradient_magnitude(image, getattr(sn, name), mode=mode, cval=-1.0))
    # Both Gaussian derivatives fused per block of rows, the magnitude taken there.
    same(ndi.gaussian_gradient_magnitude(image, 2.0, mode=mode, cval=2.5),
         sn.gaussian_gradient_magnitude(image, 2.0, mode=mode, cval=2.5))


def test_vertical_passes_of_wide_rows_in_short_blocks():
    # Rows wider than the vertical passes' column chunks (512), and blocks of a few rows
    # each, shorter than the 17 taps: every ring entry and chunk edge is reached (the
    # Gaussian fuses vertical-then-line passes, sobel along axis 1 line-then-vertical).
    image = np.random.default_rng(7).uniform(-100, 100, (37, 1030)).astype(np.float32)
    for mode in MODES:
        same(ndi.gaussian_filter(image, 2.0, mode=mode, cval=0.75),
             sn.gaussian_filter(image, 2.0, mode=mode, cval=0.75))
        same(ndi.gaussian_filter1d(image, 2.0, 0, order=1, mode=mode, cval=0.75),
             sn.gaussian_filter1d(image, 2.0, 0, order=1, mode=mode, cval=0.75))
        same(ndi.sobel(image, 1, mode=mode, cval=0.75), sn.sobel(image, 1, mode=mode, cval=0.75))


def test_fused_gradient_magnitude_per_axis_arguments():
    image = LARGE.astype(np.float32)
    # 17 taps on both axes (the kernels of sigma=2 above): nothing new to compile.
    kw = dict(mode=["wrap", "constant"], cval=-3.0, radius=8)
    same(ndi.gaussian_gradient_magnitude(image, (2.0, 1.0), **kw),
         sn.gaussian_gradient_magnitude(image, (2.0, 1.0), **kw))


def test_generated_passes_of_3d_arrays_and_strided_input():
    image = np.random.default_rng(6).standard_normal((40, 31, 29))
    same(ndi.gaussian_filter(image, [1.0, 2.0, 0.7], mode=["wrap", "constant", "mirror"]),
         sn.gaussian_filter(image, [1.0, 2.0, 0.7], mode=["wrap", "constant", "mirror"]))
    same(ndi.gaussian_filter(image, 2.0, axes=(1, 2)), sn.gaussian_filter(image, 2.0, axes=(1, 2)))
    view = LARGE.T[::-1].astype(np.float32)
    out = np.zeros(view.shape, np.float64)
    ndi.gaussian_filter(view, 2.0, output=out)
    same(out, sn.gaussian_filter(view, 2.0, output=np.float64))
    in_place = LARGE.copy()
    ndi.gaussian_filter(in_place, 2.0, output=in_place)
    same(in_place, sn.gaussian_filter(LARGE, 2.0))


def test_float32_sums_are_float32_close():
    image = LARGE.astype(np.float32)
    for sigma, order in ((2.0, 0), (1.0, 1)):
        ours = ndi.gaussian_filter(image, sigma, order, compute_dtype=np.float32)
        exact = sn.gaussian_filter(image.astype(np.float64), sigma, order)
        assert ours.dtype == np.float32
        # float32 sums of 17 taps: within a few float32 ulps of the values summed.
        np.testing.assert_allclose(ours, exact, rtol=0, atol=1e-4 * np.abs(image).max())
    ours = ndi.gaussian_filter1d(image[:5], 2.0, compute_dtype="float32")
    np.testing.assert_allclose(ours, sn.gaussian_filter1d(image[:5].astype(np.float64), 2.0),
                               rtol=0, atol=1e-4 * np.abs(image).max())
    same(ndi.gaussian_filter(image, 2.0, compute_dtype=np.float64),
         sn.gaussian_filter(image, 2.0))


@pytest.mark.parametrize("bad", [np.int32, "float16", complex, "nonsense"])
def test_compute_dtype_is_checked(bad):
    with pytest.raises(ValueError, match="compute_dtype"):
        ndi.gaussian_filter(np.ones((3, 3)), 1.0, compute_dtype=bad)
    with pytest.raises(ValueError, match="compute_dtype"):
        ndi.correlate1d(np.ones(3, complex), [1, 2], compute_dtype=np.float32)


@pytest.mark.parametrize("width", [7, 8, 9, 23])
def test_line_passes_in_vector_blocks_and_tails(width):
    # The line pass sums 8 outputs per vector and the rest one by one: rows shorter than,
    # equal to and longer than a block, kernels of 1 to 64 taps of every symmetry (their
    # taps cut from loaded vectors up to the last one), float32 and float64 outputs.
    image = np.random.default_rng(8).uniform(-100, 100, (-(-(1 << 15) // width), width))
    cases = [(np.float32, [2.5]), (np.float32, [1.0, -3.0]),
             (np.float32, [-2.0, -1.0, 0.0, 1.0, 2.0]), (np.float32, [-1.0, 0.0, 1.0] * 3),
             (np.float32, np.linspace(-1, 2, 64)), (np.float64, np.linspace(-1, 2, 64))]
    for dtype, weights in cases:
        data = image.astype(dtype)
        same(ndi.correlate1d(data, weights, 1, mode="mirror"),
             sn.correlate1d(data, weights, 1, mode="mirror"))
