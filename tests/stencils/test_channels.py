"""correlate_channels against a plain NumPy reference (einsum over sliding windows)."""

import threading
import weakref

import hypothesis.extra.numpy as hnp
import hypothesis.strategies as hs
import numba
import numpy as np
import pytest
from hypothesis import given, settings
from numpy.lib.stride_tricks import sliding_window_view

from stencils import _kernels_channels as kc
from stencils._channels import (_ALGORITHMS, Geometry, _check_bias, _geometry, choose_algorithm,
                                correlate_channels)
from stencils.errors import StencilTypeError, StencilValueError


def reference(x, weights, padding, stride):
    """res[n,o,i,j] = sum_c,u,v xp[n,c,i*sh+u,j*sw+v] w[o,c,u,v] in float64."""
    (top, bottom), (left, right) = padding
    xp = np.pad(np.asarray(x, np.float64), ((0, 0), (0, 0), (top, bottom), (left, right)))
    windows = sliding_window_view(xp, weights.shape[2:], axis=(2, 3))
    windows = windows[:, :, ::stride[0], ::stride[1]]
    return np.einsum("ncijuv,ocuv->noij", windows, np.asarray(weights, np.float64))


@hs.composite
def problems(draw):
    n = draw(hs.integers(1, 4))
    c = draw(hs.integers(1, 4))
    o = draw(hs.integers(1, 4))
    kh, kw = draw(hs.integers(1, 5)), draw(hs.integers(1, 5))
    pads = [draw(hs.integers(0, 4)) for _ in range(4)]
    h = draw(hs.integers(max(1, kh - pads[0] - pads[1]), 9))
    w = draw(hs.integers(max(1, kw - pads[2] - pads[3]), 9))
    stride = (draw(hs.integers(1, 3)), draw(hs.integers(1, 3)))
    elements = hs.floats(-100, 100, allow_nan=False, allow_infinity=False, width=32)
    x = draw(hnp.arrays(np.float64, (n, c, h, w), elements=elements))
    weights = draw(hnp.arrays(np.float64, (o, c, kh, kw), elements=elements))
    return x, weights, ((pads[0], pads[1]), (pads[2], pads[3])), stride


@settings(deadline=None, max_examples=80)
@given(problem=problems(), method=hs.sampled_from(["auto", "gather", "scatter"]),
       parallel=hs.sampled_from([None, False, True]))
def test_matches_reference(problem, method, parallel):
    x, weights, padding, stride = problem
    if method == "scatter":
        stride = (1, 1)
    got = correlate_channels(x, weights, padding=padding, stride=stride, method=method,
                             parallel=parallel)
    want = reference(x, weights, padding, stride)
    assert got.dtype == np.float64
    scale = 1 + np.abs(x).max() * np.abs(weights).sum(axis=(1, 2, 3)).max()
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12 * scale)


@settings(deadline=None, max_examples=40)
@given(problem=problems())
def test_float32_stays_float32_and_close(problem):
    x, weights, padding, stride = problem
    got = correlate_channels(x.astype(np.float32), weights, padding=padding, stride=stride)
    assert got.dtype == np.float32
    want = reference(x, weights, padding, stride)
    scale = 1 + np.abs(x).max() * np.abs(weights).sum(axis=(1, 2, 3)).max()
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6 * scale)


@pytest.mark.parametrize("pad", [0, 2, ((1, 3), (0, 2))])
@pytest.mark.parametrize("parallel", [False, True])
def test_weight_gradient_layout(pad, parallel):
    # The convnet's weight gradient: batch and channel axes swapped, read in place.
    rng = np.random.default_rng(0)
    x = rng.standard_normal((5, 3, 12, 11))
    dy = rng.standard_normal((5, 4, 8, 7))
    xt, dyt = x.transpose(1, 0, 2, 3), dy.transpose(1, 0, 2, 3)
    padding = pad if isinstance(pad, tuple) else ((pad, pad), (pad, pad))
    if sum(padding[0]) + 12 - 8 < 0:
        pytest.skip("no output")
    got = correlate_channels(xt, dyt, padding=pad, parallel=parallel)
    np.testing.assert_allclose(got, reference(xt, dyt, padding, (1, 1)), rtol=1e-12,
                               atol=1e-10)


@pytest.mark.parametrize("shape", [(64, 1, 28, 28, 6, 5, 2), (64, 6, 14, 14, 16, 5, 0),
                                   (64, 16, 10, 10, 6, 5, 4), (1, 64, 28, 28, 6, 24, 2)])
def test_lenet_shapes_all_paths_agree(shape):
    n, c, h, w, o, k, p = shape
    rng = np.random.default_rng(1)
    x = rng.standard_normal((n, c, h, w)).astype(np.float32)
    weights = rng.standard_normal((o, c, k, k)).astype(np.float32)
    want = reference(x, weights, ((p, p), (p, p)), (1, 1))
    for method in ("gather", "scatter"):
        for parallel in (False, True):
            got = correlate_channels(x, weights, padding=p, method=method, parallel=parallel)
            np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-3)


@pytest.mark.parametrize("sw", [1, 2, 3])
def test_im2col_windows_wholly_in_padding(sw):
    # Wide side padding leaves some taps outside the image for every output column
    # (CI's bounds-checked run found the first such case: width 1, pad_left 3, sw 2).
    # The pure-Python original raises IndexError on any out-of-range write.
    rng = np.random.default_rng(5)
    for width in (1, 2, 4):
        for pad_left in range(6):
            for pad_right in range(6):
                kw = 3
                if width + pad_left + pad_right < kw:
                    continue
                image = rng.standard_normal((1, 2, width))
                wo = (width + pad_left + pad_right - kw) // sw + 1
                cols = np.full((kw, 2 * wo), np.nan)
                kc.im2col.py_func(image, cols, 1, kw, 0, pad_left, 1, sw, 2, wo)
                xp = np.pad(image[0], ((0, 0), (pad_left, pad_right)))
                want = sliding_window_view(xp, kw, axis=1)[:, ::sw][:, :wo]  # (2, wo, kw)
                np.testing.assert_array_equal(cols, want.transpose(2, 0, 1).reshape(kw, -1))


def test_respects_numba_thread_count():
    rng = np.random.default_rng(2)
    x = rng.standard_normal((8, 3, 16, 16))
    weights = rng.standard_normal((4, 3, 3, 3))
    before = numba.get_num_threads()
    try:
        numba.set_num_threads(1)
        one = correlate_channels(x, weights, padding=1, parallel=True)
    finally:
        numba.set_num_threads(before)
    many = correlate_channels(x, weights, padding=1, parallel=True)
    np.testing.assert_allclose(one, many, rtol=1e-13, atol=1e-12)


def test_from_worker_threads_is_correct():
    # Concurrent calls: one may hold the parallel pool, the others run serially.
    rng = np.random.default_rng(3)
    x = rng.standard_normal((16, 3, 20, 20))
    weights = rng.standard_normal((4, 3, 5, 5))
    want = correlate_channels(x, weights, padding=2)
    results = [None] * 4

    def work(i):
        results[i] = correlate_channels(x, weights, padding=2)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for got in results:
        np.testing.assert_array_equal(got, want)


def test_serial_kernels_py_func_matches():
    # Coverage of the jitted code paths: the pure-Python originals of the serial kernels.
    rng = np.random.default_rng(4)
    x = rng.standard_normal((2, 2, 5, 6))
    weights = rng.standard_normal((3, 2, 3, 2))
    want = reference(x, weights, ((1, 1), (2, 0)), (1, 1))
    out = np.empty_like(want)
    kc.rows_samples.py_func(x, weights.reshape(3, -1), np.empty(0), out, 0, 2, 3, 2, 1, 2, 7, 8)
    np.testing.assert_allclose(out, want, atol=1e-12)
    bias = np.array([1.5, -2.0, 0.25])
    kc.rows_samples.py_func(x, weights.reshape(3, -1), bias, out, 0, 2, 3, 2, 1, 2, 7, 8)
    np.testing.assert_allclose(out, want + bias[:, None, None], atol=1e-12)


@pytest.mark.parametrize("x_shape, w_shape, padding, stride", [
    ((3, 2, 9, 8), (4, 2, 3, 3), 1, 1),   # rows
    ((3, 2, 9, 8), (4, 2, 3, 3), 1, 2),   # strided
    ((3, 2, 4, 4), (4, 2, 3, 3), 2, 1),   # scatter (mostly padding)
    ((2, 3, 9, 9), (4, 3, 7, 7), 0, 1),   # positions (output smaller than the kernel)
])
@pytest.mark.parametrize("parallel", [False, True])
def test_bias_is_added_to_each_output_channel(x_shape, w_shape, padding, stride, parallel):
    # Every algorithm adds the bias to the finished sum, as `y + bias` would: bit for bit.
    rng = np.random.default_rng(5)
    x, weights = rng.standard_normal(x_shape), rng.standard_normal(w_shape)
    bias = rng.standard_normal(w_shape[0])
    plain = correlate_channels(x, weights, padding=padding, stride=stride, parallel=parallel)
    got = correlate_channels(x, weights, bias=bias, padding=padding, stride=stride,
                             parallel=parallel)
    np.testing.assert_array_equal(got, plain + bias[:, None, None])
    as_list = correlate_channels(x.astype(np.float32), weights, bias=list(bias),
                                 padding=padding, stride=stride)
    assert as_list.dtype == np.float32
    np.testing.assert_allclose(as_list, got, rtol=1e-4, atol=1e-4)


def test_bias_without_channels_and_aliasing_out():
    bias = np.array([1.0, 2.0, 3.0])
    got = correlate_channels(np.ones((2, 0, 4, 4)), np.ones((3, 0, 2, 2)), bias=bias)
    np.testing.assert_array_equal(got, np.broadcast_to(bias[:, None, None], (2, 3, 3, 3)))
    # out overlapping the bias: the result is as if they were separate.
    x, weights = np.ones((1, 1, 2, 2)), np.ones((2, 1, 1, 1))
    storage = np.zeros(10)
    out = storage[:8].reshape(1, 2, 2, 2)
    bias = storage[6:8]
    bias[:] = [10.0, 20.0]
    want = correlate_channels(x, weights, bias=bias.copy())
    np.testing.assert_array_equal(correlate_channels(x, weights, bias=bias, out=out), want)


def test_remembered_geometry_still_checks_each_argument_type():
    # 1, 1.0, True and np.int64(1) hash alike: only plain ints are remembered.
    x, weights = np.ones((1, 1, 3, 3)), np.ones((1, 1, 2, 2))
    correlate_channels(x, weights, padding=1, stride=1)
    for bad in (1.0, True):
        with pytest.raises(StencilTypeError, match="stride"):
            correlate_channels(x, weights, padding=1, stride=bad)
        with pytest.raises((StencilTypeError, StencilValueError), match="padding"):
            correlate_channels(x, weights, padding=bad, stride=1)
    got = correlate_channels(x, weights, padding=np.int64(1), stride=(np.int64(1), 1))
    np.testing.assert_array_equal(got, correlate_channels(x, weights, padding=1))


def test_dtypes():
    x = np.ones((1, 1, 3, 3), np.int32)
    assert correlate_channels(x, np.ones((1, 1, 2, 2))).dtype == np.float64
    assert correlate_channels(x.astype(bool), np.ones((1, 1, 2, 2))).dtype == np.float64
    assert correlate_channels(x.astype(np.float16), np.ones((1, 1, 2, 2))).dtype == np.float32
    big_endian = np.ones((1, 1, 3, 3), ">f8")
    np.testing.assert_array_equal(correlate_channels(big_endian, np.ones((1, 1, 2, 2))),
                                  np.full((1, 1, 2, 2), 4.0))


def test_out_argument():
    x = np.arange(32.0).reshape(2, 1, 4, 4)
    weights = np.ones((3, 1, 2, 2))
    out = np.empty((2, 3, 3, 3))
    assert correlate_channels(x, weights, out=out) is out
    np.testing.assert_array_equal(out, reference(x, weights, ((0, 0), (0, 0)), (1, 1)))
    strided_out = np.empty((2, 3, 3, 6))[..., ::2]
    correlate_channels(x, weights, out=strided_out)
    np.testing.assert_array_equal(strided_out, out)


def test_empty_batch_and_channels():
    assert correlate_channels(np.ones((0, 2, 4, 4)), np.ones((3, 2, 2, 2))).shape == (0, 3, 3, 3)
    zero = correlate_channels(np.ones((2, 0, 4, 4)), np.ones((3, 0, 2, 2)))
    np.testing.assert_array_equal(zero, np.zeros((2, 3, 3, 3)))


@pytest.mark.parametrize("kwargs, error, fragment", [
    (dict(x=np.ones((3, 3)), weights=np.ones((1, 1, 2, 2))), StencilValueError, "dimension"),
    (dict(x=np.ones((1, 2, 3, 3)), weights=np.ones((1, 3, 2, 2))), StencilValueError,
     "input channel"),
    (dict(x=np.ones((1, 1, 3, 3), complex), weights=np.ones((1, 1, 2, 2))), StencilTypeError,
     "dtype"),
    (dict(x=np.ones((1, 1, 3, 3)), weights=np.ones((1, 1, 2, 2), object)), StencilTypeError,
     "dtype"),
    (dict(x=np.ones((1, 1, 3, 3)), weights=np.ones((1, 1, 5, 2))), StencilValueError,
     "larger than the padded image"),
    (dict(x=np.ones((1, 1, 3, 3)), weights=np.ones((1, 1, 0, 2))), StencilValueError, "empty"),
    (dict(x=np.ones((1, 1, 3, 3)), weights=np.ones((1, 1, 2, 2)), padding=-1),
     StencilValueError, "negative"),
    (dict(x=np.ones((1, 1, 3, 3)), weights=np.ones((1, 1, 2, 2)), padding="same"),
     StencilValueError, "not a padding"),
    (dict(x=np.ones((1, 1, 3, 3)), weights=np.ones((1, 1, 2, 2)), padding=(1, 2, 3)),
     StencilValueError, "not a padding"),
    (dict(x=np.ones((1, 1, 3, 3)), weights=np.ones((1, 1, 2, 2)), stride=0),
     StencilValueError, "stride"),
    (dict(x=np.ones((1, 1, 3, 3)), weights=np.ones((1, 1, 2, 2)), stride=1.5),
     StencilTypeError, "stride"),
    (dict(x=np.ones((1, 1, 3, 3), np.longdouble), weights=np.ones((1, 1, 2, 2))),
     StencilTypeError, "extended precision"),
    (dict(x=np.ones((1, 1, 3, 3)), weights=np.ones((1, 1, 2, 2)), method="fft"),
     StencilValueError, "not a method"),
    (dict(x=np.ones((1, 1, 3, 3)), weights=np.ones((1, 1, 2, 2)), method="scatter", stride=2),
     StencilValueError, "stride 1"),
    (dict(x=np.ones((1, 1, 3, 3)), weights=np.ones((1, 1, 2, 2)), out=np.ones((1, 1, 3, 3))),
     StencilValueError, "shape"),
    (dict(x=np.ones((1, 1, 3, 3)), weights=np.ones((1, 1, 2, 2)),
          out=np.ones((1, 1, 2, 2), np.float32)), StencilTypeError, "dtype"),
    (dict(x=np.ones((1, 1, 3, 3)), weights=np.ones((1, 1, 2, 2)), out=[0.0]),
     StencilTypeError, "NumPy array"),
    (dict(x=np.ones((1, 1, 3, 3)), weights=np.ones((2, 1, 2, 2)), bias=np.ones(3)),
     StencilValueError, "one value per output channel"),
    (dict(x=np.ones((1, 1, 3, 3)), weights=np.ones((2, 1, 2, 2)), bias=np.ones((2, 1))),
     StencilValueError, "dimension"),
    (dict(x=np.ones((1, 1, 3, 3)), weights=np.ones((2, 1, 2, 2)), bias=np.ones(2, complex)),
     StencilTypeError, "dtype"),
])
def test_errors(kwargs, error, fragment):
    x = kwargs.pop("x")
    weights = kwargs.pop("weights")
    with pytest.raises(error, match=fragment) as info:
        correlate_channels(x, weights, **kwargs)
    assert info.value.param is not None


def test_error_is_also_builtin_type():
    with pytest.raises(ValueError):
        correlate_channels(np.ones((1, 1, 3, 3)), np.ones((1, 2, 2, 2)))
    with pytest.raises(TypeError):
        correlate_channels(np.ones((1, 1, 3, 3), complex), np.ones((1, 1, 2, 2)))


def _never():
    raise AssertionError("a finiteness check the choice does not depend on")


def test_choose_algorithm_by_cost_and_ieee_rules():
    # LeNet's conv2: its forward, its input gradient (a 'full' correlation of the
    # 10x10 delta) and its weight gradient (batch and channels swapped).
    forward = Geometry(64, 6, 14, 14, 16, 5, 5, 0, 0, 1, 1, 10, 10)
    input_grad = Geometry(64, 16, 10, 10, 6, 5, 5, 4, 4, 1, 1, 14, 14)
    weight_grad = Geometry(6, 64, 14, 14, 16, 10, 10, 0, 0, 1, 1, 5, 5)
    assert choose_algorithm(forward, weights_finite=_never, x_finite=_never) == "direct"
    assert choose_algorithm(input_grad, x_finite=_never) == "batch"
    assert choose_algorithm(input_grad, "gather", x_finite=_never) == "batch"
    assert choose_algorithm(input_grad, "scatter", x_finite=_never) == "scatter"
    # An inf or NaN weight rules out batch (it skips padding); of the gathering
    # algorithms, direct's 6 of 8 lanes still beat rows (1.05 against 1.49 ms, one thread).
    assert choose_algorithm(input_grad, "gather", weights_finite=lambda: False) == "direct"
    assert choose_algorithm(input_grad, weights_finite=lambda: False) == "direct"
    assert choose_algorithm(weight_grad, weights_finite=_never, x_finite=_never) == "direct"
    assert choose_algorithm(forward, "scatter", x_finite=_never) == "scatter"
    # conv1's weight gradient: direct, just ahead of positions.
    weight_grad = Geometry(1, 64, 28, 28, 6, 28, 28, 2, 2, 1, 1, 5, 5)
    assert choose_algorithm(weight_grad, "gather") == "direct"
    # A 4 x 4 weight gradient (narrower than a direct block): positions is the
    # cheapest, but not for an inf or NaN pixel.
    weight_grad = Geometry(1, 16, 8, 8, 6, 5, 5, 0, 0, 1, 1, 4, 4)
    assert choose_algorithm(weight_grad, "gather") == "positions"
    assert choose_algorithm(weight_grad, x_finite=lambda: False) == "rows"
    # conv1: 25 taps a sum are too few for direct; columns skips the padded rows,
    # and an inf or NaN weight (which must meet the padding) takes rows.
    conv1 = Geometry(64, 1, 28, 28, 6, 5, 5, 2, 2, 1, 1, 28, 28)
    assert choose_algorithm(conv1) == "columns"
    assert choose_algorithm(conv1, weights_finite=lambda: False) == "rows"
    # 4 output columns, fewer than a block.
    assert Geometry(64, 6, 14, 8, 16, 5, 5, 0, 0, 1, 1, 10, 4).costs()["direct"] is None
    strided = Geometry(64, 6, 12, 12, 16, 5, 5, 0, 0, 2, 1, 4, 8)
    assert choose_algorithm(strided, weights_finite=_never, x_finite=_never) == "strided"


@hs.composite
def direct_problems(draw):
    """Stride-1 problems with outputs of at least one block
    (`kc.DIRECT_ROWS` x `kc.DIRECT_COLUMNS`)."""
    n, c, o = draw(hs.integers(1, 3)), draw(hs.integers(1, 5)), draw(hs.integers(1, 20))
    kh, kw = draw(hs.integers(1, 5)), draw(hs.integers(1, 5))
    pads = [draw(hs.integers(0, 3)) for _ in range(4)]
    h = draw(hs.integers(max(1, kc.DIRECT_ROWS + kh - 1 - pads[0] - pads[1]), 9))
    w = draw(hs.integers(max(1, kc.DIRECT_COLUMNS + kw - 1 - pads[2] - pads[3]), 13))
    dtype = draw(hs.sampled_from([np.float32, np.float64]))
    elements = hs.floats(-100, 100, allow_nan=False, allow_infinity=False, width=32)
    x = draw(hnp.arrays(dtype, (n, c, h, w), elements=elements))
    weights = draw(hnp.arrays(dtype, (o, c, kh, kw), elements=elements))
    bias = draw(hs.none() | hnp.arrays(dtype, (o,), elements=elements))
    if draw(hs.booleans()):
        # Channel-major, as the weight gradient passes its input: read in place.
        x = np.ascontiguousarray(x.transpose(1, 0, 2, 3)).transpose(1, 0, 2, 3)
    layout = draw(hs.sampled_from(["C", "channel-major", "reversed columns"]))
    if layout == "channel-major":
        # As the weight gradient passes the output gradient: transposed in one pass.
        weights = np.ascontiguousarray(weights.transpose(1, 0, 2, 3)).transpose(1, 0, 2, 3)
    elif layout == "reversed columns":
        weights = np.ascontiguousarray(weights[..., ::-1])[..., ::-1]
    return x, weights, bias, ((pads[0], pads[1]), (pads[2], pads[3]))


@settings(deadline=None, max_examples=60)
@given(problem=direct_problems(), threads=hs.sampled_from([1, 2]))
def test_direct_matches_reference(problem, threads):
    # Every lane count (1 to 20 output channels: narrow, wide, several groups),
    # padded and unpadded input, C-contiguous or channel-major, blocks that
    # overlap at the row's end.
    assert_algorithm_matches_reference("direct", *problem, threads)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("outs, plane, padded", [(6, 784, 8), (16, 100, 16), (3, 7, 8),
                                                 (9, 33, 16), (17, 12, 32), (1, 1, 8)])
def test_channels_last_is_the_zero_padded_transpose(dtype, outs, plane, padded):
    # Whole vector blocks, a scalar tail, groups of lanes with no channel left in them.
    rng = np.random.default_rng(outs)
    w = rng.standard_normal((3, outs, plane)).astype(dtype).transpose(1, 0, 2)
    wt = np.full((3 * plane, padded), np.nan, dtype=dtype)
    kc.channels_last(w, wt)
    want = np.zeros((3, plane, padded), dtype=dtype)
    want[..., :outs] = w.transpose(1, 2, 0)
    np.testing.assert_array_equal(wt, want.reshape(-1, padded))


def assert_algorithm_matches_reference(algorithm, x, weights, bias, padding, threads):
    """The stride-1 kernel `algorithm` run directly, against `reference` plus the bias."""
    geometry = _geometry(x.shape, weights.shape, padding, 1)
    out = np.full((geometry.samples, geometry.outs, geometry.ho, geometry.wo), np.nan, x.dtype)
    _ALGORITHMS[algorithm](x, weights, _check_bias(bias, geometry.outs, x.dtype), out,
                           geometry, threads)
    want = reference(x, weights, padding, (1, 1))
    if bias is not None:
        want += bias[:, None, None]
    scale = 1 + np.abs(x).max() * np.abs(weights).sum(axis=(1, 2, 3)).max()
    tol = 1e-12 if x.dtype == np.float64 else 1e-6
    np.testing.assert_allclose(out, want, rtol=tol, atol=tol * scale)


def _assert_ieee_values_as_rows(x, weights, padding, algorithms):
    """Each algorithm spreads x's and the weights' inf and NaN exactly where rows does."""
    geometry = _geometry(x.shape, weights.shape, padding, 1)
    shape = (geometry.samples, geometry.outs, geometry.ho, geometry.wo)
    bias = _check_bias(None, geometry.outs, x.dtype)
    results = []
    for algorithm in ("rows",) + algorithms:
        out = np.empty(shape)
        _ALGORITHMS[algorithm](x, weights, bias, out, geometry, 1)
        results.append(out)
    assert np.isnan(results[0]).any() and np.isinf(results[0]).any()
    for result in results[1:]:
        np.testing.assert_allclose(result, results[0], rtol=1e-12, atol=1e-12)


def test_direct_ieee_values_as_rows():
    # The zero weights of direct's spare lanes meet the pixels, but those sums are dropped.
    rng = np.random.default_rng(7)
    x = rng.standard_normal((2, 3, 8, 9))
    weights = rng.standard_normal((6, 3, 3, 3))
    x[0, 1, 2, 3], x[1, 2, 7, 8], weights[2, 0, 1, 1] = np.inf, np.nan, -np.inf
    _assert_ieee_values_as_rows(x, weights, 1, ("direct",))


@pytest.mark.parametrize("algorithm", ["rows", "direct", "scatter"])
def test_parallel_call_lets_go_of_its_output(algorithm):
    # Once the call returns, no helper thread holds the output: dropped by its
    # caller, it is freed there and then (freed later by a helper, its memory
    # left the heap and every fresh output took page faults).
    rng = np.random.default_rng(8)
    x = rng.standard_normal((4, 6, 14, 14)).astype(np.float32)
    weights = rng.standard_normal((16, 6, 5, 5)).astype(np.float32)
    geometry = _geometry(x.shape, weights.shape, 0, 1)
    bias = _check_bias(None, geometry.outs, x.dtype)
    for _ in range(20):
        out = np.empty((4, 16, 10, 10), np.float32)
        freed = weakref.ref(out)
        _ALGORITHMS[algorithm](x, weights, bias, out, geometry, 2)
        del out
        assert freed() is None


@pytest.mark.parametrize("stride", [(10**30, 1), (1, 2**62), 10**18])
def test_huge_stride_keeps_the_first_window(stride):
    # One stride rule (stencils.validation.clamp_steps): any int is exact.
    rng = np.random.default_rng(6)
    x = rng.standard_normal((2, 3, 6, 7))
    weights = rng.standard_normal((2, 3, 3, 3))
    got = correlate_channels(x, weights, padding=1, stride=stride)
    steps = (stride, stride) if isinstance(stride, int) else stride
    full = reference(x, weights, ((1, 1), (1, 1)), (1, 1))
    want = full[:, :, ::min(steps[0], 10), ::min(steps[1], 10)]
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)


@hs.composite
def columns_problems(draw):
    """Stride-1 problems around the columns and batch kernels' edges: fewer, as many and
    more output channels than a block (`kc.COLUMNS_OUTS`), rows and batches narrower and
    wider than a vector, kernel rows and columns that meet only padding."""
    n, c, o = draw(hs.integers(1, 40)), draw(hs.integers(1, 4)), draw(hs.integers(1, 14))
    kh, kw = draw(hs.integers(1, 5)), draw(hs.integers(1, 5))
    pads = [draw(hs.integers(0, 4)) for _ in range(4)]
    h = draw(hs.integers(max(1, kh - pads[0] - pads[1]), 7))
    w = draw(hs.integers(max(1, kw - pads[2] - pads[3]), 21))
    dtype = draw(hs.sampled_from([np.float32, np.float64]))
    elements = hs.floats(-100, 100, allow_nan=False, allow_infinity=False, width=32)
    x = draw(hnp.arrays(dtype, (n, c, h, w), elements=elements))
    weights = draw(hnp.arrays(dtype, (o, c, kh, kw), elements=elements))
    bias = draw(hs.none() | hnp.arrays(dtype, (o,), elements=elements))
    return x, weights, bias, ((pads[0], pads[1]), (pads[2], pads[3]))


@settings(deadline=None, max_examples=60)
@given(problem=columns_problems(), algorithm=hs.sampled_from(["columns", "batch"]),
       threads=hs.sampled_from([1, 2]))
def test_columns_and_batch_match_reference(problem, algorithm, threads):
    assert_algorithm_matches_reference(algorithm, *problem, threads)


def test_columns_and_batch_ieee_values_as_rows():
    # The zero weights of a block's spare channels and the spare lanes past a
    # row meet the pixels, but those sums are dropped.  (Columns and batch skip
    # padding, so an inf weight needs a gathering algorithm: see
    # test_choose_algorithm_by_cost_and_ieee_rules.)
    rng = np.random.default_rng(8)
    x = rng.standard_normal((2, 3, 8, 9))
    weights = rng.standard_normal((4, 3, 3, 3))
    x[0, 1, 2, 3], x[1, 2, 7, 8], x[1, 0, 0, 0] = np.inf, np.nan, -np.inf
    _assert_ieee_values_as_rows(x, weights, 2, ("columns", "batch"))


def test_scratch_memory_is_reused_per_thread_and_large_arrays_are_fresh():
    from stencils._scratch import Scratch

    scratch = Scratch(1 << 20)
    first = scratch.array((64, 28, 28, 4), np.float32)
    again = scratch.array((6, 5, 5, 8), np.float64)
    assert again.dtype == np.float64 and again.shape == (6, 5, 5, 8)
    assert again.flags.c_contiguous and np.shares_memory(first, again)
    others = []
    worker = threading.Thread(target=lambda: others.append(
        scratch.array((64, 28, 28, 4), np.float32)))
    worker.start()
    worker.join()
    assert not np.shares_memory(first, others[0])
    assert not np.shares_memory(first, Scratch(1 << 20).array((10,), np.float32))
    huge = scratch.array(((1 << 18) + 1,), np.float32)
    assert not np.shares_memory(first, huge)


def test_direct_layouts_of_every_size_in_turn_match_the_reference():
    # The weights' layout reuses scratch memory that a larger layout wrote before.
    rng = np.random.default_rng(11)
    for n, c, o, side in ((8, 3, 12, 20), (2, 2, 5, 12), (8, 3, 12, 20), (1, 1, 3, 10)):
        x = rng.standard_normal((n, c, side, side))
        weights = rng.standard_normal((o, c, 5, 5))
        assert_algorithm_matches_reference("direct", x, weights, np.zeros(o), ((2, 2), (2, 2)), 2)
