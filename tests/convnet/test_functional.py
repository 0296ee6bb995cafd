"""Finite-difference gradient checks of convnet.functional (float64), and its errors."""

import hypothesis.strategies as hs
import numpy as np
import pytest
from gradcheck import check_gradient
from hypothesis import given, settings

from convnet import functional as F
from convnet.errors import ConvNetTypeError, ConvNetValueError


def _loss(fn, g):
    """Scalar L = sum(g * fn()) for a fixed random upstream gradient g."""
    return lambda: float(np.sum(g * fn()))


@hs.composite
def conv_cases(draw):
    n, c, o = draw(hs.integers(1, 2)), draw(hs.integers(1, 3)), draw(hs.integers(1, 3))
    kh, kw = draw(hs.integers(1, 4)), draw(hs.integers(1, 4))
    padding = draw(hs.one_of(hs.integers(0, 2), hs.tuples(hs.integers(0, 2), hs.integers(0, 2)),
                             hs.just("valid"), hs.just("same")))
    stride = 1 if padding == "same" else draw(hs.one_of(
        hs.integers(1, 3), hs.tuples(hs.integers(1, 3), hs.integers(1, 3))))
    h = draw(hs.integers(kh, 7))
    w = draw(hs.integers(kw, 7))
    bias = draw(hs.booleans())
    seed = draw(hs.integers(0, 2**16))
    return n, c, o, h, w, kh, kw, padding, stride, bias, seed


@settings(deadline=None, max_examples=25)
@given(case=conv_cases())
def test_conv2d_gradients(case):
    n, c, o, h, w, kh, kw, padding, stride, bias, seed = case
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, c, h, w))
    weight = rng.standard_normal((o, c, kh, kw))
    b = rng.standard_normal(o) if bias else None
    y = F.conv2d(x, weight, b, padding, stride)
    g = rng.standard_normal(y.shape)
    dx, dw, db = F.conv2d_backward(g, x, weight, padding, stride, bias=bias)
    loss = _loss(lambda: F.conv2d(x, weight, b, padding, stride), g)
    check_gradient(loss, x, dx)
    check_gradient(loss, weight, dw)
    if bias:
        check_gradient(loss, b, db)
    else:
        assert db is None


def test_conv2d_backward_skips_input_gradient():
    rng = np.random.default_rng(0)
    x, w = rng.standard_normal((2, 1, 6, 6)), rng.standard_normal((3, 1, 3, 3))
    dx, dw, _ = F.conv2d_backward(np.ones((2, 3, 6, 6)), x, w, "same", input_grad=False)
    assert dx is None and dw.shape == w.shape


def test_conv2d_huge_padding_gradient():
    # Padding wider than the kernel: some delta rows meet only padding.
    rng = np.random.default_rng(1)
    x, w = rng.standard_normal((1, 2, 3, 4)), rng.standard_normal((2, 2, 2, 2))
    y = F.conv2d(x, w, padding=4, stride=3)
    g = rng.standard_normal(y.shape)
    dx, dw, _ = F.conv2d_backward(g, x, w, padding=4, stride=3)
    loss = _loss(lambda: F.conv2d(x, w, padding=4, stride=3), g)
    check_gradient(loss, x, dx)
    check_gradient(loss, w, dw)


def _tie_free(rng, shape):
    # Distinct values: finite differences of max pooling are exact only without ties.
    return rng.permutation(np.prod(shape)).reshape(shape) * 0.1 + rng.uniform(0, 0.01, shape)


@settings(deadline=None, max_examples=25)
@given(kernel=hs.tuples(hs.integers(1, 3), hs.integers(1, 3)),
       stride=hs.one_of(hs.none(), hs.tuples(hs.integers(1, 3), hs.integers(1, 3))),
       h=hs.integers(3, 7), w=hs.integers(3, 7), seed=hs.integers(0, 2**16))
def test_max_pool_gradient(kernel, stride, h, w, seed):
    rng = np.random.default_rng(seed)
    x = _tie_free(rng, (2, 2, h, w))
    y = F.max_pool2d(x, kernel, stride)
    np.testing.assert_array_equal(
        y, F.max_pool2d_gather(x, F.max_pool2d_argmax(x, kernel, stride), kernel, stride))
    g = rng.standard_normal(y.shape)
    dx = F.max_pool2d_backward(g, x, kernel, stride)
    check_gradient(_loss(lambda: F.max_pool2d(x, kernel, stride), g), x, dx)


def test_max_pool_ties_go_to_first_maximum():
    x = np.array([[5.0, 5.0, 1.0, 2.0], [5.0, 1.0, 2.0, 2.0]]).reshape(1, 1, 2, 4)
    dx = F.max_pool2d_backward(np.array([[[[1.0, 1.0]]]]), x)
    np.testing.assert_array_equal(dx[0, 0], [[1, 0, 0, 1], [0, 0, 0, 0]])


def test_max_pool_drops_remainder_like_torch():
    x = np.arange(25.0).reshape(1, 1, 5, 5)
    assert F.max_pool2d(x).shape == (1, 1, 2, 2)
    dx = F.max_pool2d_backward(np.ones((1, 1, 2, 2)), x)
    assert dx[0, 0, 4].sum() == 0 and dx[0, 0, :, 4].sum() == 0


def test_relu_gradient():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((3, 4))
    g = rng.standard_normal(x.shape)
    check_gradient(_loss(lambda: F.relu(x), g), x, F.relu_backward(g, x))


def test_linear_gradients():
    rng = np.random.default_rng(0)
    x, w, b = rng.standard_normal((4, 5)), rng.standard_normal((3, 5)), rng.standard_normal(3)
    g = rng.standard_normal((4, 3))
    dx, dw, db = F.linear_backward(g, x, w)
    loss = _loss(lambda: F.linear(x, w, b), g)
    for array, grad in ((x, dx), (w, dw), (b, db)):
        check_gradient(loss, array, grad)


def test_softmax_cross_entropy_gradient_and_value():
    rng = np.random.default_rng(0)
    logits = rng.standard_normal((5, 4))
    labels = np.array([0, 3, 1, 1, 2])
    loss, grad = F.softmax_cross_entropy(logits, labels)
    probs = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    assert loss == pytest.approx(-np.mean(np.log(probs[np.arange(5), labels])), rel=1e-12)
    check_gradient(lambda: F.softmax_cross_entropy(logits, labels)[0], logits, grad)


def test_softmax_cross_entropy_is_stable():
    loss, grad = F.softmax_cross_entropy(np.array([[1e4, -1e4, 0.0]], np.float32), [1])
    assert np.isfinite(loss) and loss == pytest.approx(2e4)
    assert np.all(np.isfinite(grad))


def test_float32_stays_float32():
    x = np.ones((2, 1, 8, 8), np.float32)
    w = np.ones((3, 1, 3, 3), np.float32)
    y = F.conv2d(x, w, np.zeros(3, np.float32), "same")
    assert y.dtype == np.float32
    assert all(a.dtype == np.float32 for a in F.conv2d_backward(y, x, w, "same"))
    assert F.max_pool2d(y).dtype == np.float32
    assert F.max_pool2d_backward(F.max_pool2d(y), y).dtype == np.float32


@pytest.mark.parametrize("padding, kernel, expected", [
    ("same", (5, 5), ((2, 2), (2, 2))), ("same", (2, 4), ((0, 1), (1, 2))),
    ("valid", (3, 3), ((0, 0), (0, 0))), (3, (3, 3), ((3, 3), (3, 3))),
    ((1, 2), (3, 3), ((1, 1), (2, 2)))])
def test_conv_padding(padding, kernel, expected):
    assert F.conv_padding(padding, kernel) == expected


@pytest.mark.parametrize("call, error, fragment", [
    (lambda: F.conv2d(np.ones((1, 1, 4, 4)), np.ones((1, 2, 3, 3))), ConvNetValueError,
     "input channel"),
    (lambda: F.conv2d(np.ones((1, 4, 4)), np.ones((1, 1, 3, 3))), ConvNetValueError,
     "dimension"),
    (lambda: F.conv2d(np.ones((1, 1, 4, 4)), np.ones((1, 1, 3, 3)), padding="full"),
     ConvNetValueError, "not a padding"),
    (lambda: F.conv2d(np.ones((1, 1, 4, 4)), np.ones((1, 1, 3, 3)), padding="same", stride=2),
     ConvNetValueError, "stride 1"),
    (lambda: F.conv2d(np.ones((1, 1, 4, 4)), np.ones((1, 1, 3, 3)), padding=-1),
     ConvNetValueError, "padding"),
    (lambda: F.conv2d(np.ones((1, 1, 4, 4)), np.ones((2, 1, 3, 3)), np.ones(3)),
     ConvNetValueError, "one bias per output channel"),
    (lambda: F.conv2d(np.ones((1, 1, 4, 4), complex), np.ones((1, 1, 3, 3))), ConvNetTypeError,
     "dtype"),
    (lambda: F.conv2d_backward(np.ones((1, 1, 3, 3)), np.ones((1, 1, 4, 4)),
                               np.ones((1, 1, 3, 3))), ConvNetValueError, "dy has shape"),
    (lambda: F.max_pool2d(np.ones((1, 1, 1, 4))), ConvNetValueError, "smaller than"),
    (lambda: F.max_pool2d(np.ones((1, 1, 4, 4)), kernel_size=0), ConvNetValueError,
     "kernel_size"),
    (lambda: F.max_pool2d_backward(np.ones((1, 1, 3, 3)), np.ones((1, 1, 4, 4))),
     ConvNetValueError, "dy has shape"),
    (lambda: F.linear(np.ones((2, 3)), np.ones((4, 2))), ConvNetValueError, "features"),
    (lambda: F.softmax_cross_entropy(np.ones((2, 3)), [0, 3]), ConvNetValueError, "range"),
    (lambda: F.softmax_cross_entropy(np.ones((2, 3)), [0.0, 1.0]), ConvNetValueError,
     "integers"),
])
def test_errors(call, error, fragment):
    with pytest.raises(error, match=fragment):
        call()


@pytest.mark.parametrize("batch", [5, 33, 64])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_conv2_input_gradient_of_lenet_shapes(batch, dtype):
    # LeNet's conv2 backward at batches that take correlate_channels' columns
    # algorithm (5, 33) and its batch algorithm (64), against a plain full
    # correlation of the delta with the rotated kernels.
    from numpy.lib.stride_tricks import sliding_window_view
    rng = np.random.default_rng(batch)
    x = rng.standard_normal((batch, 6, 14, 14)).astype(dtype)
    w = rng.standard_normal((16, 6, 5, 5)).astype(dtype)
    dy = rng.standard_normal((batch, 16, 10, 10)).astype(dtype)
    dx, dw, db = F.conv2d_backward(dy, x, w)
    padded = np.pad(dy.astype(np.float64), ((0, 0), (0, 0), (4, 4), (4, 4)))
    windows = sliding_window_view(padded, (5, 5), axis=(2, 3))
    want = np.einsum("noijuv,ocuv->ncij", windows, w[:, :, ::-1, ::-1].astype(np.float64))
    tol = 1e-12 if dtype == np.float64 else 1e-5
    assert dx.dtype == dtype and db.dtype == dtype
    np.testing.assert_allclose(dx, want, rtol=tol, atol=tol * np.abs(want).max())
    np.testing.assert_allclose(db, dy.astype(np.float64).sum(axis=(0, 2, 3)), rtol=tol,
                               atol=tol * batch * 100)
