"""Hardening battery for convnet.functional: random valid and invalid input.

Every public function against a plain NumPy/einsum reference over real dtypes (bool,
int8, uint8, int64, float16, float32, float64), NaN and inf, empty batches, Fortran,
negative-stride, strided and read-only views; invalid arguments must raise
``ConvNetValueError`` / ``ConvNetTypeError`` (or the stencils errors they wrap) naming
the argument.  Each bug it found is pinned by the test that found it.
"""

import hypothesis.strategies as hs
import numpy as np
import pytest
from hypothesis import given, settings

from convnet import functional as F
from convnet.errors import ConvNetError, ConvNetTypeError, ConvNetValueError
from stencils.errors import StencilError

from conftest import LAYOUTS, REAL_DTYPES, expected_dtype, in_layout


def values(rng, shape, dtype, special):
    dtype = np.dtype(dtype)
    if dtype.kind == "b":
        return rng.random(shape) < 0.5
    if dtype.kind in "iu":
        lo = 0 if dtype.kind == "u" else -3
        return rng.integers(lo, 4, size=shape).astype(dtype)
    a = rng.integers(-3, 4, size=shape) * rng.choice([1.0, 0.5], size=shape)
    if special and a.size:
        mask = rng.random(shape) < 0.1
        a[mask] = rng.choice([np.nan, np.inf, -np.inf], size=int(mask.sum()))
    return a.astype(dtype)


def close(got, want, dtype):
    assert got.dtype == dtype, (got.dtype, dtype)
    assert got.shape == want.shape, (got.shape, want.shape)
    rtol = 1e-5 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(got, want.astype(dtype), rtol=rtol, atol=rtol, equal_nan=True)


# ---------------------------------------------------------------------------
# References


def _windows(xp, kh, kw, sh, sw, ho, wo):
    win = np.lib.stride_tricks.sliding_window_view(xp, (kh, kw), axis=(2, 3))
    return win[:, :, :sh * (ho - 1) + 1:sh, :sw * (wo - 1) + 1:sw]


def conv_ref(x, w, b, pads, stride):
    (pt, pb), (pl, pr) = pads
    xp = np.pad(x.astype(np.float64), ((0, 0), (0, 0), (pt, pb), (pl, pr)))
    kh, kw = w.shape[2:]
    ho = (xp.shape[2] - kh) // stride[0] + 1
    wo = (xp.shape[3] - kw) // stride[1] + 1
    with np.errstate(all="ignore"):
        y = np.einsum("ncijuv,ocuv->noij", _windows(xp, kh, kw, *stride, ho, wo),
                      w.astype(np.float64))
        if b is not None:
            y = y + b.astype(np.float64)[:, None, None]
    return y


def conv_backward_ref(dy, x, w, pads, stride):
    (pt, pb), (pl, pr) = pads
    xp = np.pad(x.astype(np.float64), ((0, 0), (0, 0), (pt, pb), (pl, pr)))
    kh, kw = w.shape[2:]
    sh, sw = stride
    ho, wo = dy.shape[2:]
    dy = dy.astype(np.float64)
    w = w.astype(np.float64)
    with np.errstate(all="ignore"):
        dw = np.einsum("noij,ncijuv->ocuv", dy, _windows(xp, kh, kw, sh, sw, ho, wo))
        dxp = np.zeros(xp.shape)
        for u in range(kh):
            for v in range(kw):
                dxp[:, :, u:u + sh * (ho - 1) + 1:sh, v:v + sw * (wo - 1) + 1:sw] += np.einsum(
                    "noij,oc->ncij", dy, w[:, :, u, v])
    dx = dxp[:, :, pt:pt + x.shape[2], pl:pl + x.shape[3]]
    return dx, dw, dy.sum(axis=(0, 2, 3))


def pool_ref(x, k, s):
    x = x.astype(np.float64)
    ho, wo = (x.shape[2] - k[0]) // s[0] + 1, (x.shape[3] - k[1]) // s[1] + 1
    win = _windows(x, k[0], k[1], s[0], s[1], ho, wo).reshape(x.shape[:2] + (ho, wo, k[0] * k[1]))
    return win.max(axis=-1), win.argmax(axis=-1)  # NaN wins both (the first NaN's index)


def pool_backward_ref(dy, x, k, s):
    _, arg = pool_ref(x, k, s)
    dx = np.zeros(x.shape)
    for idx in np.ndindex(*arg.shape):
        n, c, i, j = idx
        u, v = divmod(int(arg[idx]), k[1])
        dx[n, c, i * s[0] + u, j * s[1] + v] += dy[idx]
    return dx


# ---------------------------------------------------------------------------
# conv2d and conv2d_backward


@hs.composite
def conv_problems(draw):
    n, c, o = draw(hs.integers(0, 2)), draw(hs.integers(1, 3)), draw(hs.integers(1, 3))
    kh, kw = draw(hs.integers(1, 3)), draw(hs.integers(1, 3))
    padding = draw(hs.one_of(hs.integers(0, 2), hs.tuples(hs.integers(0, 2), hs.integers(0, 2)),
                             hs.sampled_from(["valid", "same"])))
    stride = (1, 1) if padding == "same" else draw(hs.tuples(hs.integers(1, 3), hs.integers(1, 3)))
    h, w = draw(hs.integers(kh, 7)), draw(hs.integers(kw, 7))
    return dict(n=n, c=c, o=o, kh=kh, kw=kw, h=h, w=w, padding=padding, stride=stride,
                dtype=draw(hs.sampled_from(REAL_DTYPES)), layout=draw(hs.sampled_from(LAYOUTS)),
                bias=draw(hs.booleans()), special=draw(hs.booleans()),
                seed=draw(hs.integers(0, 2**32 - 1)))


@settings(max_examples=50)
@given(p=conv_problems())
def test_conv2d_and_its_backward_equal_the_reference(p):
    rng = np.random.default_rng(p["seed"])
    # Non-finite input with a stride: see test_conv2d_backward_ignores_pixels_the_stride_skips.
    special = p["special"] and p["stride"] == (1, 1)
    x_plain = values(rng, (p["n"], p["c"], p["h"], p["w"]), p["dtype"], special)
    x = in_layout(x_plain, p["layout"], rng)
    w = values(rng, (p["o"], p["c"], p["kh"], p["kw"]), "float64", False)
    b = values(rng, (p["o"],), "float64", False) if p["bias"] else None
    dt = expected_dtype(p["dtype"])
    pads = F.conv_padding(p["padding"], (p["kh"], p["kw"]), p["stride"])
    before = x.copy()
    y = F.conv2d(x, w, b, padding=p["padding"], stride=p["stride"])
    close(y, conv_ref(x_plain.astype(dt), w.astype(dt), b, pads, p["stride"]), dt)

    dy = values(rng, y.shape, "float64", False).astype(dt)
    dx, dw, db = F.conv2d_backward(dy, x, w.astype(dt), padding=p["padding"],
                                   stride=p["stride"], bias=p["bias"])
    rdx, rdw, rdb = conv_backward_ref(dy, x_plain.astype(dt), w.astype(dt), pads, p["stride"])
    close(dx, rdx, dt)
    if not special:  # NaN leaks into dw: tests/stencils/test_hardening.py::
        close(dw, rdw, dt)  # test_correlate_channels_inf_stays_in_the_windows_that_read_it
    if p["bias"]:
        close(db, rdb, dt)
    else:
        assert db is None
    np.testing.assert_array_equal(x, before)


# ---------------------------------------------------------------------------
# Pooling


@settings(max_examples=50)
@given(n=hs.integers(0, 2), c=hs.integers(1, 2), h=hs.integers(1, 7), w=hs.integers(1, 7),
       k=hs.tuples(hs.integers(1, 3), hs.integers(1, 3)),
       stride=hs.one_of(hs.none(), hs.tuples(hs.integers(1, 3), hs.integers(1, 3))),
       dtype=hs.sampled_from(REAL_DTYPES), kind=hs.sampled_from(LAYOUTS), special=hs.booleans(),
       seed=hs.integers(0, 2**32 - 1))
def test_max_pool_and_its_backward_equal_the_reference(n, c, h, w, k, stride, dtype, kind,
                                                       special, seed):
    rng = np.random.default_rng(seed)
    plain = values(rng, (n, c, h, w), dtype, special)
    if special:
        # At most one NaN per window: with several, PyTorch's gradient goes to the last.
        plain = np.where(np.isnan(plain), np.inf, plain).astype(plain.dtype)
    x = in_layout(plain, kind, rng)
    s = k if stride is None else stride
    if h < k[0] or w < k[1]:
        with pytest.raises(ConvNetValueError, match="smaller than the pooling window") as info:
            F.max_pool2d(x, k, stride)
        assert info.value.param == "x"
        return
    dt = expected_dtype(dtype)
    want, _ = pool_ref(plain.astype(dt), k, s)
    y = F.max_pool2d(x, k, stride)
    close(y, want, dt)
    dy = values(rng, y.shape, "float64", False)
    dx = F.max_pool2d_backward(dy, x, k, stride)
    # The gradient comes back in the input's dtype (float64 for integers and bool).
    close(dx, pool_backward_ref(dy, plain.astype(dt), k, s),
          plain.dtype if plain.dtype.kind == "f" else np.dtype(np.float64))


def test_max_pool_backward_routes_to_the_nan_like_torch():
    x = np.array([[[[1.0, np.nan], [2.0, 3.0]]]])
    np.testing.assert_array_equal(F.max_pool2d_backward(np.ones((1, 1, 1, 1)), x),
                                  [[[[0.0, 1.0], [0.0, 0.0]]]])


def test_max_pool_gather_and_scatter_round_trip():
    rng = np.random.default_rng(5)
    x = rng.standard_normal((2, 3, 6, 7))
    arg = F.max_pool2d_argmax(x, 2, 2)
    np.testing.assert_array_equal(F.max_pool2d_gather(x, arg, 2, 2), F.max_pool2d(x, 2, 2))
    dy = rng.standard_normal(arg.shape)
    np.testing.assert_array_equal(F.max_pool2d_scatter(dy, arg, x.shape, 2, 2),
                                  F.max_pool2d_backward(dy, x, 2, 2))


def _scatter_reference(dy, codes, input_shape):
    """dx = dy * (codes == k) at tap k of every 2x2 stride-2 window, zeros elsewhere."""
    dx = np.zeros(input_shape, dtype=dy.dtype)
    ho, wo = dy.shape[2:]
    with np.errstate(invalid="ignore"):
        for u in range(2):
            for v in range(2):
                dx[:, :, u:2 * ho:2, v:2 * wo:2] = dy * (codes == 2 * u + v)
    return dx


@settings(max_examples=60)
@given(h=hs.integers(2, 7), w=hs.integers(2, 40), dtype=hs.sampled_from(["float32", "float64"]),
       codes_dtype=hs.sampled_from(["float32", "float64", "int64", "uint8"]),
       layout=hs.sampled_from(LAYOUTS), seed=hs.integers(0, 2**32 - 1))
def test_max_pool_scatter_2x2_equals_masked_products(h, w, dtype, codes_dtype, layout, seed):
    # The compiled 2x2 scatter against NumPy's product per tap: NaN, inf and
    # -0.0 gradients, codes of any numeric dtype (out-of-range codes route
    # nothing), odd sizes whose last row or column no window covers; rows of 1 to 20
    # windows (one at a time, blocks of 4 or 8, a last block overlapping the one before).
    rng = np.random.default_rng(seed)
    shape = (2, 3, h, w)
    dy = values(rng, (2, 3, h // 2, w // 2), dtype, special=True)
    dy[dy == 0] = -0.0
    codes = rng.integers(0, 5, size=dy.shape).astype(codes_dtype)
    got = F.max_pool2d_scatter(in_layout(dy, layout, rng), in_layout(codes, layout, rng), shape,
                               2, 2)
    want = _scatter_reference(dy, codes, shape)
    np.testing.assert_array_equal(got, want)
    np.testing.assert_array_equal(np.signbit(got), np.signbit(want))


# ---------------------------------------------------------------------------
# relu, linear, softmax cross-entropy


@settings(max_examples=40)
@given(n=hs.integers(0, 4), fin=hs.integers(1, 5), fout=hs.integers(1, 4),
       dtype=hs.sampled_from(REAL_DTYPES), kind=hs.sampled_from(LAYOUTS), special=hs.booleans(),
       seed=hs.integers(0, 2**32 - 1))
def test_relu_linear_softmax_equal_the_reference(n, fin, fout, dtype, kind, special, seed):
    rng = np.random.default_rng(seed)
    plain = values(rng, (n, fin), dtype, special)
    x = in_layout(plain, kind, rng)
    np.testing.assert_array_equal(F.relu(x), np.maximum(plain, 0))
    dy = values(rng, (n, fin), "float64", False)
    np.testing.assert_array_equal(F.relu_backward(dy, x), np.where(plain > 0, dy, 0.0))

    w = in_layout(values(rng, (fout, fin), "float64", False), kind, rng)
    b = values(rng, (fout,), "float64", False)
    xf = plain.astype(np.float64) if plain.dtype.kind != "f" else plain
    with np.errstate(all="ignore"):
        want = xf.astype(np.float64) @ np.asarray(w).T + b
    with np.errstate(all="ignore"):  # inf * 0 inside the matmul: NaN, as IEEE says
        got = F.linear(x, w, b)
    np.testing.assert_allclose(got, want, rtol=1e-3 if xf.dtype != np.float64 else 1e-12,
                               equal_nan=True)
    dy2 = values(rng, (n, fout), "float64", False)
    with np.errstate(all="ignore"):
        dx, dw, db = F.linear_backward(dy2, xf, w)
        np.testing.assert_allclose(dx, dy2 @ np.asarray(w), rtol=1e-12)
        np.testing.assert_allclose(dw, dy2.T @ xf.astype(np.float64), rtol=1e-3, equal_nan=True)
    np.testing.assert_allclose(db, dy2.sum(axis=0), rtol=1e-12)

    if n == 0:
        return
    logits = values(rng, (n, fout), "float64", False) * 300  # large: needs the stable form
    labels = rng.integers(0, fout, n)
    loss, grad = F.softmax_cross_entropy(in_layout(logits, kind, rng), labels)
    shifted = logits - logits.max(axis=1, keepdims=True)
    logsum = np.log(np.exp(shifted).sum(axis=1))
    np.testing.assert_allclose(loss, np.mean(logsum - shifted[np.arange(n), labels]), rtol=1e-12)
    p = np.exp(shifted - logsum[:, None])
    p[np.arange(n), labels] -= 1
    np.testing.assert_allclose(grad, p / n, rtol=1e-12, atol=1e-15)


# ---------------------------------------------------------------------------
# Invalid arguments


X = np.ones((2, 3, 6, 6))
W = np.ones((4, 3, 3, 3))
DY = np.ones((2, 4, 4, 4))

BAD = [
    ("x", lambda: F.conv2d(X.astype(complex), W), ConvNetTypeError),
    ("x", lambda: F.conv2d(X.astype(object), W), ConvNetTypeError),
    ("x", lambda: F.conv2d(X.astype(np.longdouble), W), ConvNetTypeError),
    ("w", lambda: F.linear(np.ones((2, 3)), np.ones((4, 3), np.longdouble)), ConvNetTypeError),
    ("x", lambda: F.conv2d("abc", W), ConvNetTypeError),
    ("x", lambda: F.conv2d(None, W), ConvNetTypeError),
    ("x", lambda: F.conv2d(X[0], W), ConvNetValueError),
    ("w", lambda: F.conv2d(X, W[:, :2]), ConvNetValueError),
    ("w", lambda: F.conv2d(X, W.astype(np.complex64)), ConvNetTypeError),
    ("b", lambda: F.conv2d(X, W, b=np.ones(3)), ConvNetValueError),
    ("b", lambda: F.conv2d(X, W, b=np.ones((4, 1))), ConvNetValueError),
    ("b", lambda: F.conv2d(X, W, b=np.ones(4, complex)), ConvNetTypeError),
    ("padding", lambda: F.conv2d(X, W, padding=-1), ConvNetValueError),
    ("padding", lambda: F.conv2d(X, W, padding=1.0), ConvNetTypeError),
    ("padding", lambda: F.conv2d(X, W, padding="full"), ConvNetValueError),
    ("padding", lambda: F.conv2d(X, W, padding="same", stride=2), ConvNetValueError),
    ("stride", lambda: F.conv2d(X, W, stride=0), ConvNetValueError),
    ("stride", lambda: F.conv2d(X, W, stride=(1, 2, 3)), ConvNetValueError),
    ("stride", lambda: F.conv2d(X, W, stride=True), ConvNetTypeError),
    ("dy", lambda: F.conv2d_backward(DY[:, :, :3], X, W), ConvNetValueError),
    ("dy", lambda: F.conv2d_backward(DY.astype(complex), X, W), ConvNetTypeError),
    ("dy", lambda: F.conv2d_backward(DY[0], X, W), ConvNetValueError),
    ("kernel_size", lambda: F.max_pool2d(X, 0), ConvNetValueError),
    ("kernel_size", lambda: F.max_pool2d(X, (2, 2.0)), ConvNetTypeError),
    ("stride", lambda: F.max_pool2d(X, 2, -1), ConvNetValueError),
    ("x", lambda: F.max_pool2d(X, 7), ConvNetValueError),
    ("x", lambda: F.max_pool2d(X.astype(complex)), ConvNetTypeError),
    ("x", lambda: F.max_pool2d(X[0]), ConvNetValueError),
    ("dy", lambda: F.max_pool2d_backward(np.ones((2, 3, 3, 2)), X), ConvNetValueError),
    ("x", lambda: F.linear(np.ones((2, 3, 1)), np.ones((4, 3))), ConvNetValueError),
    ("w", lambda: F.linear(np.ones((2, 3)), np.ones((4, 2))), ConvNetValueError),
    ("x", lambda: F.linear(np.ones((2, 3), complex), np.ones((4, 3))), ConvNetTypeError),
    ("labels", lambda: F.softmax_cross_entropy(np.zeros((2, 3)), [0.0, 1.0]), ConvNetValueError),
    ("labels", lambda: F.softmax_cross_entropy(np.zeros((2, 3)), [True, False]),
     ConvNetValueError),
    ("labels", lambda: F.softmax_cross_entropy(np.zeros((2, 3)), [0, 3]), ConvNetValueError),
    ("labels", lambda: F.softmax_cross_entropy(np.zeros((2, 3)), [0, -1]), ConvNetValueError),
    ("labels", lambda: F.softmax_cross_entropy(np.zeros((2, 3)), [[0], [1]]), ConvNetValueError),
    ("logits", lambda: F.softmax_cross_entropy(np.zeros(3), [0]), ConvNetValueError),
    ("logits", lambda: F.softmax_cross_entropy(np.zeros((1, 3), complex), [0]), ConvNetTypeError),
]


@pytest.mark.parametrize("param, call, exc", BAD,
                         ids=[f"{i}-{case[0]}" for i, case in enumerate(BAD)])
def test_invalid_arguments_raise_the_documented_error(param, call, exc):
    with pytest.raises(ConvNetError) as info:
        call()
    assert isinstance(info.value, exc), (type(info.value), str(info.value))
    assert info.value.param == param and param in str(info.value), str(info.value)


def test_a_kernel_larger_than_the_padded_image_is_a_stencils_value_error():
    with pytest.raises(StencilError, match="larger than the padded image"):
        F.conv2d(X[:, :, :2], W)


@pytest.mark.parametrize("bias", [np.ones(1), np.ones((2, 4)), np.ones(4, complex)])
def test_linear_checks_its_bias(bias):
    with pytest.raises(ConvNetError) as info:
        F.linear(np.ones((2, 3)), np.ones((4, 3)), bias)
    assert info.value.param == "b"


@pytest.mark.parametrize("case", ["relu_backward", "linear_backward", "relu"])
def test_elementwise_and_linear_backward_validate(case):
    with pytest.raises(ConvNetError):
        if case == "relu_backward":
            F.relu_backward(np.ones(1), np.ones(4))
        elif case == "linear_backward":
            F.linear_backward(np.ones((2, 5)), np.ones((2, 3)), np.ones((4, 3)))
        else:
            F.relu(np.array([1j - 1]))


def test_ragged_input_raises_the_documented_error():
    with pytest.raises(ConvNetTypeError):
        F.conv2d([[1.0], [1.0, 2.0]], W)


def test_huge_strides_keep_the_first_window():
    # stencils.validation's one stride rule: a step past the axis keeps point 0.
    np.testing.assert_array_equal(F.max_pool2d(X, 2, 10**30), F.max_pool2d(X, 2, 6))
    np.testing.assert_array_equal(F.conv2d(X, W, stride=10**30), F.conv2d(X, W, stride=6))
    dy = np.ones((2, 4, 1, 1))
    for got, want in zip(F.conv2d_backward(dy, X, W, stride=(10**30, 2**62)),
                         F.conv2d_backward(dy, X, W, stride=6)):
        np.testing.assert_array_equal(got, want)


def test_conv2d_backward_gradients_have_their_parameters_dtype():
    x = np.ones((1, 1, 4, 4), np.float32)
    w = np.ones((1, 1, 3, 3), np.float64)
    dx, dw, _ = F.conv2d_backward(np.ones((1, 1, 2, 2)), x, w)
    # The module docstring: "returns gradients in the input's dtype" -- each its own.
    assert dx.dtype == x.dtype and dw.dtype == w.dtype, (dx.dtype, dw.dtype)


def test_conv2d_backward_ignores_pixels_the_stride_skips():
    x = np.array([[[[1.0, np.nan, 1.0]]]])
    w = np.array([[[[2.0]]]])
    np.testing.assert_array_equal(F.conv2d(x, w, stride=(1, 2)), [[[[2.0, 2.0]]]])
    dx, dw, db = F.conv2d_backward(np.ones((1, 1, 1, 2)), x, w, stride=(1, 2))
    np.testing.assert_array_equal(dx, [[[[2.0, 0.0, 2.0]]]])
    np.testing.assert_array_equal(dw, [[[[2.0]]]])


def test_remembered_arguments_do_not_let_lookalikes_through():
    # Geometry is remembered per plain-int argument; 1.0 and True hash like 1.
    F.conv2d(X, W, padding=1, stride=1)
    F.max_pool2d(X, (2, 2), 2)
    for call in (lambda: F.conv2d(X, W, padding=1.0), lambda: F.conv2d(X, W, stride=True),
                 lambda: F.conv2d(X, W, padding=(True, 1)),
                 lambda: F.max_pool2d(X, (2, 2.0), 2), lambda: F.max_pool2d(X, 2, True)):
        with pytest.raises(ConvNetTypeError):
            call()
    np.testing.assert_array_equal(F.conv2d(X, W, padding=np.int64(1)), F.conv2d(X, W, padding=1))
