"""Forward and backward functions of LeNet's operations, on NCHW NumPy arrays.

Convolution and max pooling run on the `stencils` package, as in the seed:
the convolution is a multi-channel correlation stencil with ``Padding (Fill 0)``
and a strided compute; its input gradient is the correlation of the padded
delta with the kernels rotated by 180 degrees and channel-transposed, its weight
gradient the correlation of the input with the delta.  Max pooling is a max
stencil computed with a stride; its gradient goes through an argmax-code
stencil.  Layouts follow PyTorch: activations (N, C, H, W), convolution
weights (O, C, KH, KW), linear weights (out, in).

Every backward function takes the upstream gradient first (``dy``) and returns
gradients in the input's dtype.
"""

from __future__ import annotations

import functools

import numpy as np

import stencils as st
from stencils.validation import as_real_array, clamp_steps, int_tuple

from ._kernels import route_to_codes_2x2
from .errors import ConvNetTypeError, ConvNetValueError

__all__ = [
    "conv2d",
    "conv2d_backward",
    "max_pool2d",
    "max_pool2d_backward",
    "max_pool2d_argmax",
    "max_pool2d_gather",
    "max_pool2d_scatter",
    "relu",
    "relu_backward",
    "linear",
    "linear_backward",
    "softmax_cross_entropy",
    "conv_padding",
]


# ----------------------------------------------------------------------------
# Argument checks


def _as_float_array(value, param, ndim=None):
    """`value` as an array of its compute dtype (`stencils.validation`'s policy)."""
    return as_real_array(value, param=param, ndim=ndim, type_error=ConvNetTypeError,
                         value_error=ConvNetValueError)


def _pair(value, param, minimum=1):
    """An int or a pair of ints -> a tuple of two ints >= minimum."""
    return int_tuple(value, param=param, length=2, minimum=minimum,
                     type_error=ConvNetTypeError, value_error=ConvNetValueError)


def conv_padding(padding, kernel_size, stride=1):
    """Normalise a convolution `padding` to ``((top, bottom), (left, right))``.

    Parameters
    ----------
    padding : int, (int, int), 'same' or 'valid'
        An int pads all four sides; a pair pads (rows, columns) on both sides;
        'valid' is no padding; 'same' keeps the size (stride 1 only) and, as in
        PyTorch, puts the extra row and column of an even kernel after.
    kernel_size : (int, int)
    stride : int or (int, int), optional

    Returns
    -------
    tuple of two (int, int) pairs

    Examples
    --------
    >>> conv_padding("same", (5, 5))
    ((2, 2), (2, 2))
    >>> conv_padding("same", (4, 3))
    ((1, 2), (1, 1))
    >>> conv_padding((1, 0), (3, 3))
    ((1, 1), (0, 0))
    """
    if isinstance(padding, str):
        if padding == "valid":
            return (0, 0), (0, 0)
        if padding == "same":
            if _pair(stride, "stride") != (1, 1):
                raise ConvNetValueError(
                    f"padding='same' needs stride 1, got stride={stride!r} (as in PyTorch: "
                    f"the output size would not equal the input's); give the padding as ints",
                    param="padding", value=padding, expected="int padding with a stride")
            return tuple(((k - 1) // 2, k - 1 - (k - 1) // 2) for k in kernel_size)
        raise ConvNetValueError(
            f"padding={padding!r} is not a padding; expected an int, a pair of ints, "
            f"'same' or 'valid'", param="padding", value=padding,
            expected="int, (int, int), 'same' or 'valid'")
    rows, cols = _pair(padding, "padding", minimum=0)
    return (rows, rows), (cols, cols)


# ----------------------------------------------------------------------------
# Convolution


def _check_bias(b, outputs, what):
    if b is None:
        return None
    b = _as_float_array(b, "b", 1)
    if b.shape != (outputs,):
        raise ConvNetValueError(
            f"b has shape {b.shape}; expected ({outputs},), one bias per {what}",
            param="b", value=b.shape, expected=(outputs,))
    return b


def _check_conv(x, w, b=None):
    x = _as_float_array(x, "x", 4)
    w = _as_float_array(w, "w", 4)
    if w.shape[1] != x.shape[1]:
        raise ConvNetValueError(
            f"w has {w.shape[1]} input channel(s) (shape {w.shape}) but x has {x.shape[1]} "
            f"(shape {x.shape}); w must be (out_channels, {x.shape[1]}, kh, kw)",
            param="w", value=w.shape, expected=f"(O, {x.shape[1]}, KH, KW)")
    return x, w, _check_bias(b, w.shape[0], "output channel")


def _exact_key(value):
    """True for a str, an int or nested tuples of ints, of exactly those types.

    Only such arguments are remembered between calls: 1.0, True and
    np.int64(1) hash like 1, and each must still be checked on its own.
    """
    if type(value) in (int, str):
        return True
    return type(value) is tuple and all(map(_exact_key, value))


def _conv_geometry(x_shape, kernel, padding, stride):
    """((top, bottom), (left, right)), the steps (stencils' stride rule) and (Ho, Wo).

    A training step passes the same arguments every time: plain ones are
    checked once and remembered.
    """
    if _exact_key(padding) and _exact_key(stride):
        return _conv_geometry_cached(tuple(x_shape), tuple(kernel), padding, stride)
    return _checked_conv_geometry(x_shape, kernel, padding, stride)


def _checked_conv_geometry(x_shape, kernel, padding, stride):
    steps = _pair(stride, "stride")
    pads = conv_padding(padding, kernel, steps)
    (pt, pb), (pl, pr) = pads
    # Stride-1 output size per axis (below 1: stencils refuses the kernel).
    extents = (x_shape[2] + pt + pb - kernel[0] + 1, x_shape[3] + pl + pr - kernel[1] + 1)
    sh, sw = clamp_steps(steps, extents)
    return pads, (sh, sw), ((extents[0] - 1) // sh + 1, (extents[1] - 1) // sw + 1)


_conv_geometry_cached = functools.lru_cache(maxsize=64)(_checked_conv_geometry)


def conv2d(x, w, b=None, padding=0, stride=1):
    """2-D convolution (cross-correlation, as ``torch.nn.functional.conv2d``).

    ``y[n, o, i, j] = b[o] + sum over c, u, v of xp[n, c, i*sh + u, j*sw + v] * w[o, c, u, v]``
    with ``xp`` the zero-padded input, computed by `stencils.correlate_channels`.

    Parameters
    ----------
    x : ndarray, shape (N, C, H, W)
    w : ndarray, shape (O, C, KH, KW)
    b : ndarray, shape (O,), optional
    padding : int, (int, int), 'same' or 'valid', optional
        See `conv_padding`.  Default 0.
    stride : int or (int, int), optional
        Default 1.

    Returns
    -------
    ndarray, shape (N, O, Ho, Wo)
        float32 for float32 inputs, float64 for float64.

    Examples
    --------
    >>> import numpy as np
    >>> x = np.arange(9.0).reshape(1, 1, 3, 3)
    >>> conv2d(x, np.ones((1, 1, 2, 2)), b=np.array([0.5]))
    array([[[[ 8.5, 12.5],
             [20.5, 24.5]]]])
    >>> conv2d(x, np.ones((2, 1, 3, 3)), padding="same").shape
    (1, 2, 3, 3)
    """
    x, w, b = _check_conv(x, w, b)
    pads, steps, _ = _conv_geometry(x.shape, w.shape[2:], padding, stride)
    return st.correlate_channels(x, w, bias=b, padding=pads, stride=steps)


def conv2d_backward(dy, x, w, padding=0, stride=1, *, bias=True, input_grad=True):
    """Gradients of `conv2d` with respect to its input, weights and bias.

    As the seed derives them: the input gradient is the correlation of the
    delta, padded by ``K - 1 - p`` (and spread out by the stride), with the
    kernels rotated 180 degrees and channel-transposed; the weight gradient is
    the correlation of the padded input (channels as batch) with the delta
    (batch as channels) as kernels.  Both summed over the batch.

    Parameters
    ----------
    dy : ndarray, shape (N, O, Ho, Wo)
        Gradient of the loss with respect to the output of `conv2d`.
    x, w, padding, stride
        As given to `conv2d`.
    bias : bool, optional
        Whether the convolution had a bias; without one, `db` is None.
    input_grad : bool, optional
        False skips the input gradient (`dx` is None), for a first layer.

    Returns
    -------
    dx : ndarray, shape (N, C, H, W), or None
    dw : ndarray, shape (O, C, KH, KW)
    db : ndarray, shape (O,), or None

    Examples
    --------
    >>> import numpy as np
    >>> x = np.arange(9.0).reshape(1, 1, 3, 3)
    >>> dx, dw, db = conv2d_backward(np.ones((1, 1, 2, 2)), x, np.ones((1, 1, 2, 2)))
    >>> dx[0, 0]
    array([[1., 2., 1.],
           [2., 4., 2.],
           [1., 2., 1.]])
    >>> dw[0, 0]
    array([[ 8., 12.],
           [20., 24.]])
    >>> db
    array([4.])
    """
    x, w, _ = _check_conv(x, w)
    dy = _as_float_array(dy, "dy", 4)
    pads, (sh, sw), (ho, wo) = _conv_geometry(x.shape, w.shape[2:], padding, stride)
    expected = (x.shape[0], w.shape[0], ho, wo)
    if dy.shape != expected:
        raise ConvNetValueError(
            f"dy has shape {dy.shape}; expected {expected}, the shape of conv2d's output",
            param="dy", value=dy.shape, expected=expected)
    dtype = np.result_type(x.dtype, w.dtype, dy.dtype)
    x_dtype, w_dtype = x.dtype, w.dtype
    x, w, dy = (a.astype(dtype, copy=False) for a in (x, w, dy))
    dw = _conv_weight_grad(dy, x, w.shape[2:], pads, (sh, sw))
    db = None
    if bias:
        # Over the batch first: whole contiguous planes added, five times faster
        # than numpy's reduction over axes (0, 2, 3) at once.
        db = dy.sum(axis=0).reshape(dy.shape[1], ho * wo).sum(axis=1).astype(w_dtype, copy=False)
    dx = None
    if input_grad:
        # Stride s: the delta spread out by s (zeros between) acts on every input pixel.
        if (sh, sw) != (1, 1):
            dy = st.upsample(0, st.Stride(1, 1, sh, sw), dy)[:, :, :sh * (ho - 1) + 1,
                                                              :sw * (wo - 1) + 1]
        # Each gradient in its own parameter's dtype.
        dx = _conv_input_grad(dy, w, x.shape, pads).astype(x_dtype, copy=False)
    return dx, dw.astype(w_dtype, copy=False), db


def _conv_input_grad(dy, w, x_shape, pads):
    """dx: the full correlation of dy (stride 1) with rot180(w), channel-transposed.

    Padding K-1-p before and whatever reaches the end of the padded input
    after; rows and columns of dy that only meet padding are cropped instead.
    """
    (pt, _), (pl, _) = pads
    kh, kw = w.shape[2:]
    lh, lw = dy.shape[2:]
    top, bottom = kh - 1 - pt, x_shape[2] + pt - lh
    left, right = kw - 1 - pl, x_shape[3] + pl - lw
    dy_c = dy[:, :, max(0, -top):lh - max(0, -bottom), max(0, -left):lw - max(0, -right)]
    if dy_c.shape[2] == 0 or dy_c.shape[3] == 0:
        return np.zeros(x_shape, dtype=dy.dtype)
    rot = w[:, :, ::-1, ::-1].transpose(1, 0, 2, 3)
    return st.correlate_channels(
        dy_c, rot, padding=((max(top, 0), max(bottom, 0)), (max(left, 0), max(right, 0))))


def _conv_weight_grad(dy, x, kernel, padding, stride):
    """dw[o, c, u, v] = sum over n, i, j of xp[n, c, i*sh + u, j*sw + v] * dy[n, o, i, j].

    Stride 1: x^T (C, N, H, W) correlated with dy^T (O, N, Ho, Wo) as kernels
    (the seed's derivation), giving (C, O, KH, KW).  Stride s: split the padded
    input into its s*s phases ``xp[:, :, a::sh, b::sw]``; taps ``u = p*sh + a``,
    ``v = q*sw + b`` are then a stride-1 correlation of that phase with dy, so
    pixels the forward pass skipped are never read (a NaN there stays out).
    """
    (kh, kw), ((pt, pb), (pl, pr)), (sh, sw) = kernel, padding, stride
    dyt = dy.transpose(1, 0, 2, 3)
    if (sh, sw) == (1, 1):
        dw = st.correlate_channels(x.transpose(1, 0, 2, 3), dyt, padding=padding)
        return np.ascontiguousarray(dw[:, :, :kh, :kw].transpose(1, 0, 2, 3))
    ho, wo = dy.shape[2:]
    xp = np.pad(x, ((0, 0), (0, 0), (pt, pb), (pl, pr)))
    dw = np.zeros((dy.shape[1], x.shape[1], kh, kw), dtype=dy.dtype)
    for a in range(min(sh, kh)):
        for b in range(min(sw, kw)):
            taps_h, taps_w = -(-(kh - a) // sh), -(-(kw - b) // sw)
            # Rows a, a+sh, ... of the phase that any tap (p, q) reads together with dy.
            phase = xp[:, :, a::sh, b::sw][:, :, :ho - 1 + taps_h, :wo - 1 + taps_w]
            part = st.correlate_channels(phase.transpose(1, 0, 2, 3), dyt)
            dw[:, :, a::sh, b::sw] = part.transpose(1, 0, 2, 3)[:, :, :taps_h, :taps_w]
    return dw


# ----------------------------------------------------------------------------
# Max pooling


@functools.lru_cache(maxsize=None)
def _max_stencil(kh, kw):
    return st.max_stencil((1, 1, kh, kw))


@functools.lru_cache(maxsize=None)
def _argmax_stencil(kh, kw):
    """Stencil giving the row-major index of the first maximum of each window.

    A NaN is the maximum of its window, as in PyTorch: the first NaN's index.
    The first maximum and the first NaN are two chains of selects, each of
    one comparison, joined by one more: a chain that tests both at each tap
    (``v == peak or v != v``) compiles to a branch per tap on x86 without
    AVX-512, which random data mispredicts (pool1's codes took 1.3-1.5 ms
    that way against 0.37-0.45 ms, Zen 3).
    """
    def first_argmax(get):
        values = [get(0, 0, u, v) for u in range(kh) for v in range(kw)]
        taps = len(values)
        # The maximum of a window without NaN (a window with one is the NaN chain's).
        peak = functools.reduce(lambda a, b: np.where(a < b, b, a), values)
        first_peak, first_nan = taps - 1, taps
        for k in range(taps - 1, -1, -1):
            if k < taps - 1:
                first_peak = np.where(values[k] == peak, k, first_peak)
            first_nan = np.where(values[k] != values[k], k, first_nan)
        return np.where(first_nan < taps, first_nan, first_peak)
    return st.make_stencil((1, 1, kh, kw), (0, 0, 0, 0), first_argmax)


def _pool_window(kernel_size, stride):
    """(KH, KW, SH, SW) from a pooling `kernel_size` and `stride` (None: the kernel size)."""
    if _exact_key(kernel_size) and (stride is None or _exact_key(stride)):
        return _pool_window_cached(kernel_size, stride)
    return _checked_pool_window(kernel_size, stride)


def _checked_pool_window(kernel_size, stride):
    kh, kw = _pair(kernel_size, "kernel_size")
    sh, sw = (kh, kw) if stride is None else _pair(stride, "stride")
    return kh, kw, sh, sw


_pool_window_cached = functools.lru_cache(maxsize=64)(_checked_pool_window)


def _check_pool(x, kernel_size, stride):
    x = _as_float_array(x, "x", 4)
    kh, kw, sh, sw = _pool_window(kernel_size, stride)
    if x.shape[2] < kh or x.shape[3] < kw:
        raise ConvNetValueError(
            f"x has spatial size {x.shape[2:]} (shape {x.shape}), smaller than the pooling "
            f"window {kh}x{kw}", param="x", value=x.shape, expected=f"H >= {kh} and W >= {kw}")
    return x, kh, kw, sh, sw


def max_pool2d(x, kernel_size=2, stride=2):
    """Max pooling: a max stencil computed with a stride (massiv's ``computeWithStride``).

    Parameters
    ----------
    x : ndarray, shape (N, C, H, W)
    kernel_size : int or (int, int), optional
        Default 2.
    stride : int, (int, int) or None, optional
        Default 2; None means `kernel_size` (as in PyTorch).

    Returns
    -------
    ndarray, shape (N, C, (H - KH) // SH + 1, (W - KW) // SW + 1)

    Examples
    --------
    >>> import numpy as np
    >>> max_pool2d(np.arange(16.0).reshape(1, 1, 4, 4))
    array([[[[ 5.,  7.],
             [13., 15.]]]])
    """
    x, kh, kw, sh, sw = _check_pool(x, kernel_size, stride)
    return _pooled(_max_stencil(kh, kw), x, sh, sw)


def _pooled(stencil, x, sh, sw):
    """`stencil` over the windows of `x`, computed with the stride (SH, SW)."""
    return st.compute_with_stride(_pool_stride(sh, sw),
                                  st.apply_stencil(st.no_padding, stencil, x))


@functools.lru_cache(maxsize=None)
def _pool_stride(sh, sw):
    return st.Stride(1, 1, sh, sw)


def max_pool2d_argmax(x, kernel_size=2, stride=2):
    """Row-major index (``u * KW + v``) of the first maximum of each pooling window.

    An argmax-code stencil computed with the same stride as `max_pool2d`.

    Examples
    --------
    >>> import numpy as np
    >>> x = np.array([[1.0, 3, 2, 2], [0, 3, 5, 1]]).reshape(1, 1, 2, 4)
    >>> max_pool2d_argmax(x)
    array([[[[1, 2]]]])
    """
    x, kh, kw, sh, sw = _check_pool(x, kernel_size, stride)
    # The stencil's codes are small exact floats in x's dtype.
    return _pooled(_argmax_stencil(kh, kw), x, sh, sw).astype(np.intp)


def _window_taps(array, kh, kw, sh, sw, ho, wo):
    """(code, strided view) per tap: element (u, v) of every window, k = u * kw + v."""
    return [(u * kw + v, array[:, :, u:u + sh * (ho - 1) + 1:sh, v:v + sw * (wo - 1) + 1:sw])
            for u in range(kh) for v in range(kw)]


def max_pool2d_gather(x, argmax, kernel_size=2, stride=2):
    """The window maxima, read from `x` at the positions `argmax` gives.

    Equals `max_pool2d` (for finite inputs); lets a training step compute the
    argmax-code stencil once and reuse it in the backward pass.

    Examples
    --------
    >>> import numpy as np
    >>> x = np.array([[1.0, 3, 2, 2], [0, 3, 5, 1]]).reshape(1, 1, 2, 4)
    >>> max_pool2d_gather(x, max_pool2d_argmax(x))
    array([[[[3., 5.]]]])
    """
    kh, kw, sh, sw = _pool_window(kernel_size, stride)
    ho, wo = argmax.shape[2:]
    y = None
    # Sum of masked taps: several times faster than fancy indexing or np.choose here.
    with np.errstate(invalid="ignore"):  # inf * 0 in a diverged run: NaN, caught upstream
        for k, tap in _window_taps(x, kh, kw, sh, sw, ho, wo):
            if y is None:
                y = tap * (argmax == k)
            else:
                y += tap * (argmax == k)
    return y


def max_pool2d_scatter(dy, argmax, input_shape, kernel_size=2, stride=2):
    """Route each window's gradient to the position `argmax` picked (PyTorch's rule).

    Parameters
    ----------
    dy : ndarray, shape (N, C, Ho, Wo)
    argmax : ndarray of int, shape (N, C, Ho, Wo)
        From `max_pool2d_argmax`.
    input_shape : tuple of int
        Shape of the pooled input.

    Returns
    -------
    ndarray of `input_shape`

    Examples
    --------
    >>> import numpy as np
    >>> max_pool2d_scatter(np.array([[[[10.0, 20.0]]]]), np.array([[[[1, 2]]]]), (1, 1, 2, 4))
    array([[[[ 0., 10.,  0.,  0.],
             [ 0.,  0., 20.,  0.]]]])
    """
    return _scatter_to_codes(dy, argmax, input_shape, *_pool_window(kernel_size, stride))


def _scatter_to_codes(dy, argmax, input_shape, kh, kw, sh, sw):
    """`max_pool2d_scatter` with the window (KH, KW, SH, SW) given normalised, as
    `MaxPool2d` keeps it: a training step's backward checks nothing twice."""
    ho, wo = dy.shape[2:]
    overlapping = sh < kh or sw < kw
    # Windows that tile the input exactly write every cell once below.
    tiled = (sh, sw) == (kh, kw) and tuple(input_shape[2:]) == (kh * ho, kw * wo)
    dx = (np.empty if tiled else np.zeros)(input_shape, dtype=dy.dtype)
    if (kh, kw, sh, sw) == (2, 2, 2, 2) and _fits_route_kernel(dy, argmax, dx):
        route_to_codes_2x2(np.ascontiguousarray(dy), np.ascontiguousarray(argmax), dx)
        return dx
    for k, target in _window_taps(dx, kh, kw, sh, sw, ho, wo):
        if overlapping:
            target += dy * (argmax == k)
        else:  # disjoint windows: each cell is written once
            np.multiply(dy, argmax == k, out=target)
    return dx


def _fits_route_kernel(dy, argmax, dx):
    """Whether `route_to_codes_2x2` computes this scatter: float arrays whose shapes agree.

    Anything else (integer gradients, shapes that do not fit) takes the NumPy
    path, which gives the same result or raises NumPy's own error.
    """
    # dtype.char, not dtype comparisons: this runs on every training step.
    kind = getattr(getattr(argmax, "dtype", None), "kind", None)
    return (dy.dtype.char in "fd" and kind is not None and kind in "fiu"
            and argmax.shape == dy.shape and dx.ndim == 4 and dx.shape[:2] == dy.shape[:2]
            and dx.shape[2] >= 2 * dy.shape[2] and dx.shape[3] >= 2 * dy.shape[3])


def max_pool2d_backward(dy, x, kernel_size=2, stride=2):
    """Gradient of `max_pool2d`: all of a window's gradient to its first maximum.

    The first maximum in row-major order, as PyTorch does (the seed duplicated
    the gradient across ties).

    Examples
    --------
    >>> import numpy as np
    >>> x = np.array([[1.0, 3, 2, 2], [0, 3, 5, 1]]).reshape(1, 1, 2, 4)
    >>> max_pool2d_backward(np.array([[[[10.0, 20.0]]]]), x)[0, 0]
    array([[ 0., 10.,  0.,  0.],
           [ 0.,  0., 20.,  0.]])
    """
    given = getattr(x, "dtype", None)
    x, kh, kw, sh, sw = _check_pool(x, kernel_size, stride)
    dy = _as_float_array(dy, "dy", 4)
    expected = (x.shape[0], x.shape[1], (x.shape[2] - kh) // sh + 1, (x.shape[3] - kw) // sw + 1)
    if dy.shape != expected:
        raise ConvNetValueError(
            f"dy has shape {dy.shape}; expected {expected}, the shape of max_pool2d's output",
            param="dy", value=dy.shape, expected=expected)
    argmax = max_pool2d_argmax(x, (kh, kw), (sh, sw))
    dx = max_pool2d_scatter(dy.astype(x.dtype, copy=False), argmax, x.shape, (kh, kw), (sh, sw))
    # In the input's own floating dtype (float16 stays float16; integers give float64).
    return dx.astype(given, copy=False) if given is not None and given.kind == "f" else dx


# ----------------------------------------------------------------------------
# Elementwise, linear, loss


def relu(x):
    """max(x, 0), keeping the dtype.

    Examples
    --------
    >>> import numpy as np
    >>> relu(np.array([-1.0, 0.0, 2.0]))
    array([0., 0., 2.])
    """
    return np.maximum(_as_float_array(x, "x"), 0)


def relu_backward(dy, x):
    """Gradient of `relu`: `dy` where the input was positive, 0 elsewhere (as the seed).

    Examples
    --------
    >>> import numpy as np
    >>> relu_backward(np.array([5.0, 5.0, 5.0]), np.array([-1.0, 0.0, 2.0]))
    array([0., 0., 5.])
    """
    dy = _as_float_array(dy, "dy")
    x = _as_float_array(x, "x")
    if dy.shape != x.shape:
        raise ConvNetValueError(f"dy has shape {dy.shape} but x has {x.shape}; they must match",
                                param="dy", value=dy.shape, expected=x.shape)
    return dy * (x > 0)


def linear(x, w, b=None):
    """Fully connected layer ``x @ w.T + b`` with `w` of shape (out, in), as PyTorch.

    Examples
    --------
    >>> import numpy as np
    >>> linear(np.array([[1.0, 2.0]]), np.array([[1.0, 1.0], [0.0, 3.0]]), np.array([0.5, 0.0]))
    array([[3.5, 6. ]])
    """
    x = _as_float_array(x, "x", 2)
    w = _as_float_array(w, "w", 2)
    if w.shape[1] != x.shape[1]:
        raise ConvNetValueError(
            f"w has shape {w.shape} but x has {x.shape[1]} features (shape {x.shape}); "
            f"w must be (out_features, {x.shape[1]})",
            param="w", value=w.shape, expected=f"(out, {x.shape[1]})")
    b = _check_bias(b, w.shape[0], "output feature")
    y = x @ w.T
    if b is not None:
        y += b
    return y


def linear_backward(dy, x, w, *, input_grad=True):
    """Gradients of `linear`: ``(dy @ w, dy.T @ x, dy.sum(0))``.

    ``input_grad=False`` skips the first (None), for a first layer.

    Examples
    --------
    >>> import numpy as np
    >>> dx, dw, db = linear_backward(np.array([[1.0, 2.0]]), np.array([[3.0, 4.0]]),
    ...                              np.array([[1.0, 0.0], [0.0, 1.0]]))
    >>> dx, dw, db
    (array([[1., 2.]]), array([[3., 4.],
           [6., 8.]]), array([1., 2.]))
    """
    dy = _as_float_array(dy, "dy", 2)
    x = _as_float_array(x, "x", 2)
    w = _as_float_array(w, "w", 2)
    if x.shape[1] != w.shape[1] or dy.shape != (x.shape[0], w.shape[0]):
        raise ConvNetValueError(
            f"dy {dy.shape}, x {x.shape} and w {w.shape} do not fit linear: expected "
            f"dy (N, out), x (N, in), w (out, in)", param="dy", value=dy.shape,
            expected=(x.shape[0], w.shape[0]))
    return dy @ w if input_grad else None, dy.T @ x, dy.sum(axis=0)


def softmax_cross_entropy(logits, labels):
    """Mean cross-entropy of softmax(logits) against integer labels, and its gradient.

    Numerically stable: the row maximum is subtracted before exponentiating.

    Parameters
    ----------
    logits : ndarray, shape (N, K)
    labels : array_like of int, shape (N,)
        Class indices in ``[0, K)``.

    Returns
    -------
    loss : float
        Mean over the batch.
    dlogits : ndarray, shape (N, K)
        ``(softmax(logits) - onehot(labels)) / N``.

    Examples
    --------
    >>> import numpy as np
    >>> loss, grad = softmax_cross_entropy(np.array([[0.0, 0.0], [1000.0, 0.0]]), [1, 0])
    >>> round(loss, 6)
    0.346574
    >>> grad
    array([[ 0.25, -0.25],
           [ 0.  ,  0.  ]])
    """
    logits = _as_float_array(logits, "logits", 2)
    labels = np.asarray(labels)
    if labels.dtype.kind not in "iu" or labels.shape != (logits.shape[0],):
        raise ConvNetValueError(
            f"labels has shape {labels.shape} and dtype {labels.dtype}; expected "
            f"{(logits.shape[0],)} integers, one class index per row of logits",
            param="labels", value=labels.shape, expected=(logits.shape[0],))
    if labels.size and (labels.min() < 0 or labels.max() >= logits.shape[1]):
        raise ConvNetValueError(
            f"labels range over [{labels.min()}, {labels.max()}]; expected class indices "
            f"in [0, {logits.shape[1]})", param="labels",
            value=(int(labels.min()), int(labels.max())), expected=(0, logits.shape[1]))
    n = logits.shape[0]
    shifted = logits - logits.max(axis=1, keepdims=True)
    exp = np.exp(shifted)
    total = exp.sum(axis=1, keepdims=True)
    rows = np.arange(n)
    loss = float(np.mean(np.log(total[:, 0]) - shifted[rows, labels]))
    grad = exp / total
    grad[rows, labels] -= 1
    grad /= n
    return loss, grad
