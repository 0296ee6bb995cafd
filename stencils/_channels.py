"""Multi-channel correlation: one kernel set spans all input channels.

This is the seed's "LeNet-like convolution" (massiv's correlation stencil over
(C, KH, KW) applied once per output channel, with ``Padding ... (Fill 0)`` and
``computeWithStride``), written as one fused operation because the generic
stencil path does one pass per output channel.

Three algorithms compute the same sum; `correlate_channels` picks one by cost:

* ``'gather'`` (im2col): per sample, copy every (C, KH, KW) window into a
  small column buffer and multiply by the (O, C*KH*KW) weights with BLAS.
  Best when windows overlap little relative to the output (forward passes).
* ``'scatter'`` (col2im): per sample, multiply the transposed weights by the
  unpadded input with BLAS and add each product into the output at its
  offset.  Best when the input is mostly zero padding -- the input gradient of
  a convolution, a "full" correlation of the padded delta.  Stride 1 only.
* The gather algorithm parallelised over input channels with per-thread
  partial sums, for a batch smaller than the thread count -- the weight
  gradient, where the batch axis of the convolution becomes the channel axis.

Every kernel reads the padding virtually (out-of-range reads are zeros), so no
padded copy of the input is made, and writes into an output allocated here in
Python (Numba's allocator is slow for large arrays).
"""

from __future__ import annotations

import threading

import numba
import numpy as np
from numba import njit, prange

from .errors import StencilTypeError, StencilValueError

__all__ = ["correlate_channels"]

_METHODS = ("auto", "gather", "scatter")

# Below this many multiply-adds a parallel launch (tens of microseconds) costs
# more than it saves.
_SERIAL_WORK = 300_000


# --------------------------------------------------------------------------
# Numba kernels.  They see only C-contiguous float32/float64 arrays and plain
# ints; all checks happen in `correlate_channels`.  Helpers live in this file so
# that the on-disk cache is invalidated when they change (numba#1833).
# --------------------------------------------------------------------------


@njit(cache=True, nogil=True)
def _im2col(image, cols, kh, kw, pad_top, pad_left, sh, sw, ho, wo):
    """Fill ``cols[(c, u, v), (i, j)] = padded(image)[c, i*sh + u, j*sw + v]``."""
    channels, height, width = image.shape
    zero = cols.dtype.type(0)
    for c in range(channels):
        for u in range(kh):
            for v in range(kw):
                row = (c * kh + u) * kw + v
                # Output columns j whose input column j*sw + v - pad_left is inside.
                first = pad_left - v
                # min(wo, ...): with wide left padding a tap can miss the image
                # for every output column, and j0 would run past the row.
                j0 = 0 if first <= 0 else min(wo, (first + sw - 1) // sw)
                last = width - 1 - v + pad_left
                j1 = 0 if last < 0 else min(wo, last // sw + 1)
                if j1 < j0:
                    j1 = j0
                for i in range(ho):
                    y = i * sh + u - pad_top
                    base = i * wo
                    if y < 0 or y >= height:
                        for j in range(wo):
                            cols[row, base + j] = zero
                        continue
                    for j in range(j0):
                        cols[row, base + j] = zero
                    if sw == 1:
                        x0 = j0 + v - pad_left
                        for j in range(j1 - j0):
                            cols[row, base + j0 + j] = image[c, y, x0 + j]
                    else:
                        for j in range(j0, j1):
                            cols[row, base + j] = image[c, y, j * sw + v - pad_left]
                    for j in range(j1, wo):
                        cols[row, base + j] = zero


@njit(cache=True, nogil=True)
def _gather_samples(x, w2, out, start, stop, kh, kw, pad_top, pad_left, sh, sw, ho, wo):
    """out[n] = w2 @ im2col(x[n]) for n in [start, stop); out is (N, O, Ho*Wo)."""
    cols = np.empty((w2.shape[1], ho * wo), dtype=out.dtype)
    for n in range(start, stop):
        _im2col(x[n], cols, kh, kw, pad_top, pad_left, sh, sw, ho, wo)
        np.dot(w2, cols, out[n])


@njit(cache=True, parallel=True)
def _gather_batch_parallel(x, w2, out, chunks, kh, kw, pad_top, pad_left, sh, sw, ho, wo):
    n = x.shape[0]
    for t in prange(chunks):
        _gather_samples(x, w2, out, t * n // chunks, (t + 1) * n // chunks,
                        kh, kw, pad_top, pad_left, sh, sw, ho, wo)


@njit(cache=True, nogil=True)
def _gather_batch_serial(x, w2, out, kh, kw, pad_top, pad_left, sh, sw, ho, wo):
    _gather_samples(x, w2, out, 0, x.shape[0], kh, kw, pad_top, pad_left, sh, sw, ho, wo)


# Stride 1: the "flat" im2col.  Pad each image once into a zero buffer of row
# width Wp; then the window column for tap (u, v) over all output rows is ONE
# contiguous run of the flat buffer, starting at u*Wp + v, of length Ho*Wp (it
# computes Wp - Wo spare columns per row that are dropped afterwards).  Long
# contiguous copies instead of Wo-element pieces: several times faster for
# LeNet's 8- to 28-wide rows.


@njit(cache=True, nogil=True)
def _pad_into(image, buffer, pad_top, pad_left, row_width):
    """Copy image (H, W) into the flat buffer at (pad_top, pad_left), row stride row_width."""
    height, width = image.shape
    for y in range(height):
        base = np.uintp((y + pad_top) * row_width + pad_left)
        src = image[y]
        for x in range(np.uintp(width)):
            buffer[base + x] = src[x]


@njit(cache=True, nogil=True)
def _rows_samples(x, w2, out, start, stop, kh, kw, pad_top, pad_left, hp, wp):
    """out[n] = w2 @ flat_im2col(x[n]); out is (N, O, Ho, Wo), w2 is (O, C*KH*KW)."""
    channels = x.shape[1]
    outs, ho, wo = out.shape[1], out.shape[2], out.shape[3]
    plane = (hp + 1) * wp  # one spare zero row: the last run overruns by kw - 1
    span = ho * wp
    padded = np.zeros(channels * plane, dtype=out.dtype)
    cols = np.empty((channels * kh * kw, span), dtype=out.dtype)
    product = np.empty((outs, span), dtype=out.dtype)
    for n in range(start, stop):
        for c in range(channels):
            _pad_into(x[n, c], padded[c * plane:(c + 1) * plane], pad_top, pad_left, wp)
            for u in range(kh):
                for v in range(kw):
                    dst = cols[(c * kh + u) * kw + v]
                    src = np.uintp(c * plane + u * wp + v)
                    for k in range(np.uintp(span)):
                        dst[k] = padded[src + k]
        np.dot(w2, cols, product)
        for o in range(outs):
            row = product[o]
            for i in range(ho):
                dst = out[n, o, i]
                src = np.uintp(i * wp)
                for j in range(np.uintp(wo)):
                    dst[j] = row[src + j]


@njit(cache=True, parallel=True)
def _rows_parallel(x, w2, out, chunks, kh, kw, pad_top, pad_left, hp, wp):
    n = x.shape[0]
    for t in prange(chunks):
        _rows_samples(x, w2, out, t * n // chunks, (t + 1) * n // chunks,
                      kh, kw, pad_top, pad_left, hp, wp)


@njit(cache=True, nogil=True)
def _rows_serial(x, w2, out, kh, kw, pad_top, pad_left, hp, wp):
    _rows_samples(x, w2, out, 0, x.shape[0], kh, kw, pad_top, pad_left, hp, wp)


# Stride 1, output smaller than the kernel (the weight gradient: a 28x28 delta
# as the kernel, a 5x5 result): the roles swap.  Rows of the buffer are output
# positions (u, v), each one contiguous run of KH*Wp padded pixels; each kernel
# is copied into a zero buffer of row width Wp so that the spare columns
# contribute nothing.  Either array may come channel-major (a transposed view
# of a C-contiguous array, as x.transpose(1, 0, 2, 3) is in the weight
# gradient): the kernel then reads it in place instead of a transposed copy.


@njit(cache=True, nogil=True)
def _positions_block(x, swap_x, w, swap_w, acc, n0, n1, c0, c1, pad_top, pad_left, hp, wp):
    """acc[n] = sum over c in [c0, c1) of pad(w[:, c]) @ cols(x[n, c]).T for n in [n0, n1).

    x is (N, C, H, W), or (C, N, H, W) when swap_x; w is (O, C, KH, KW), or
    (C, O, KH, KW) when swap_w; acc is (N, O, Ho, Wo) and is overwritten.
    """
    outs, ho, wo = acc.shape[1], acc.shape[2], acc.shape[3]
    kh, kw = w.shape[2], w.shape[3]
    span = kh * wp
    padded = np.zeros((hp + 1) * wp, dtype=acc.dtype)
    cols = np.empty((ho * wo, span), dtype=acc.dtype)
    product = np.empty((outs, ho * wo), dtype=acc.dtype)
    kernels = np.zeros((outs, span), dtype=acc.dtype)
    for n in range(n0, n1):
        acc[n] = 0
    for c in range(c0, c1):
        for o in range(outs):
            kernel = w[c, o] if swap_w else w[o, c]
            row = kernels[o]
            for u in range(kh):
                src = kernel[u]
                base = np.uintp(u * wp)
                for v in range(np.uintp(kw)):
                    row[base + v] = src[v]
        for n in range(n0, n1):
            _pad_into(x[c, n] if swap_x else x[n, c], padded, pad_top, pad_left, wp)
            for u in range(ho):
                for v in range(wo):
                    dst = cols[u * wo + v]
                    src = np.uintp(u * wp + v)
                    for k in range(np.uintp(span)):
                        dst[k] = padded[src + k]
            np.dot(kernels, cols.T, product)
            res = acc[n].reshape(outs, ho * wo)
            res += product


@njit(cache=True, parallel=True)
def _positions_parallel_samples(x, swap_x, w, swap_w, out, chunks, pad_top, pad_left, hp, wp):
    n = out.shape[0]
    channels = x.shape[0] if swap_x else x.shape[1]
    for t in prange(chunks):
        _positions_block(x, swap_x, w, swap_w, out, t * n // chunks, (t + 1) * n // chunks,
                         0, channels, pad_top, pad_left, hp, wp)


@njit(cache=True, parallel=True)
def _positions_parallel_channels(x, swap_x, w, swap_w, out, partials, pad_top, pad_left,
                                 hp, wp):
    chunks = partials.shape[0]
    channels = x.shape[0] if swap_x else x.shape[1]
    for t in prange(chunks):
        _positions_block(x, swap_x, w, swap_w, partials[t], 0, out.shape[0],
                         t * channels // chunks, (t + 1) * channels // chunks,
                         pad_top, pad_left, hp, wp)
    # Fixed summation order: the result does not depend on thread timing.
    out[:] = partials[0]
    for t in range(1, chunks):
        out += partials[t]


@njit(cache=True, nogil=True)
def _positions_serial(x, swap_x, w, swap_w, out, pad_top, pad_left, hp, wp):
    channels = x.shape[0] if swap_x else x.shape[1]
    _positions_block(x, swap_x, w, swap_w, out, 0, out.shape[0], 0, channels,
                     pad_top, pad_left, hp, wp)


@njit(cache=True, nogil=True)
def _scatter_samples(x, wt, out, start, stop, kh, kw, pad_top, pad_left):
    """Stride-1 correlation as col2im: out[n] = crop(col2im(wt @ x[n])).

    x is (N, C, H, W), wt is (O*KH*KW, C) with rows ordered (o, u, v), out is
    (N, O, Ho, Wo).  Input pixel (y, x) meets tap (u, v) at full-correlation
    position (y + KH-1-u, x + KW-1-v); output (i, j) is full position
    (i + KH-1-pad_top, j + KW-1-pad_left).  Rows of width Wq = W + KW - 1
    (spare columns hold zeros) make each tap's contribution one contiguous add.
    """
    channels, height, width = x.shape[1], x.shape[2], x.shape[3]
    outs, ho, wo = out.shape[1], out.shape[2], out.shape[3]
    wq = width + kw - 1
    hq = height + kh - 1
    span = height * wq
    padded = np.zeros((channels, span), dtype=out.dtype)
    product = np.empty((wt.shape[0], span), dtype=out.dtype)
    full = np.empty((outs, hq * wq + kw - 1), dtype=out.dtype)
    for n in range(start, stop):
        for c in range(channels):
            _pad_into(x[n, c], padded[c], 0, 0, wq)
        np.dot(wt, padded, product)
        full[:] = 0
        for o in range(outs):
            acc = full[o]
            for u in range(kh):
                for v in range(kw):
                    src = product[(o * kh + u) * kw + v]
                    dst = np.uintp((kh - 1 - u) * wq + (kw - 1 - v))
                    for k in range(np.uintp(span)):
                        acc[dst + k] += src[k]
            # Output columns j whose full position j + kw-1-pad_left is in [0, wq).
            shift = kw - 1 - pad_left
            j0 = min(wo, max(0, -shift))
            j1 = max(j0, min(wo, wq - shift))
            for i in range(ho):
                yy = i + kh - 1 - pad_top
                res = out[n, o, i]
                res[:] = 0
                if 0 <= yy < hq:
                    base = np.uintp(yy * wq + j0 + shift)
                    for j in range(np.uintp(j1 - j0)):
                        res[j0 + j] = acc[base + j]


@njit(cache=True, parallel=True)
def _scatter_parallel(x, wt, out, chunks, kh, kw, pad_top, pad_left):
    n = x.shape[0]
    for t in prange(chunks):
        _scatter_samples(x, wt, out, t * n // chunks, (t + 1) * n // chunks,
                         kh, kw, pad_top, pad_left)


@njit(cache=True, nogil=True)
def _scatter_serial(x, wt, out, kh, kw, pad_top, pad_left):
    _scatter_samples(x, wt, out, 0, x.shape[0], kh, kw, pad_top, pad_left)


# --------------------------------------------------------------------------
# Python front end: validation, normalisation, algorithm choice.
# --------------------------------------------------------------------------


def _compute_dtype(array, param):
    """float32/float64 kept, float16 -> float32, ints and bool -> float64."""
    dtype = array.dtype
    if dtype.kind == "f" and dtype.itemsize in (4, 8):
        return np.dtype(f"f{dtype.itemsize}")
    if dtype.kind == "f" and dtype.itemsize == 2:
        return np.dtype(np.float32)
    if dtype.kind in "iub":
        return np.dtype(np.float64)
    raise StencilTypeError(
        f"{param} has dtype {dtype}; expected a real floating, integer or bool dtype "
        f"(float32 stays float32, float16 is computed in float32, integers and bool in float64)",
        param=param, value=dtype, expected="float16, float32, float64, integer or bool")


def _is_int(value):
    return isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))


def _pair_of_ints(value, param, minimum):
    """An int or a pair of ints -> a pair, each >= minimum."""
    if _is_int(value):
        pair = (int(value), int(value))
    elif isinstance(value, (tuple, list)) and len(value) == 2 and all(map(_is_int, value)):
        pair = (int(value[0]), int(value[1]))
    else:
        raise StencilValueError(
            f"{param}={value!r} is not an int or a pair of ints (rows, columns)",
            param=param, value=value, expected="int or (int, int)")
    if min(pair) < minimum:
        raise StencilValueError(
            f"{param}={value!r} has a value below {minimum}; every entry must be >= {minimum}",
            param=param, value=value, expected=f"ints >= {minimum}")
    return pair


def _normalise_padding(padding):
    """int | (ph, pw) | ((top, bottom), (left, right)) -> ((top, bottom), (left, right))."""
    expected = "int, (rows, columns) or ((top, bottom), (left, right)), all >= 0"
    if _is_int(padding):
        rows = cols = (int(padding), int(padding))
    elif isinstance(padding, (tuple, list)) and len(padding) == 2:
        axes = []
        for entry in padding:
            if _is_int(entry):
                axes.append((int(entry), int(entry)))
            elif (isinstance(entry, (tuple, list)) and len(entry) == 2
                  and all(map(_is_int, entry))):
                axes.append((int(entry[0]), int(entry[1])))
            else:
                break
        else:
            rows, cols = axes
            if min(rows + cols) >= 0:
                return rows, cols
            raise StencilValueError(
                f"padding={padding!r} has a negative width; pad widths must be >= 0 "
                f"(to crop, slice the input instead)",
                param="padding", value=padding, expected=expected)
        raise StencilValueError(
            f"padding={padding!r} is not a padding; expected {expected}",
            param="padding", value=padding, expected=expected)
    else:
        raise StencilValueError(
            f"padding={padding!r} is not a padding; expected {expected}",
            param="padding", value=padding, expected=expected)
    if rows[0] < 0:
        raise StencilValueError(
            f"padding={padding!r} is negative; pad widths must be >= 0",
            param="padding", value=padding, expected=expected)
    return rows, cols


def _as_4d(array, param, layout):
    if not isinstance(array, np.ndarray):
        try:
            array = np.asarray(array)
        except ValueError as err:  # ragged nested lists
            raise StencilTypeError(f"{param} is not an array: {err}", param=param,
                                   value=type(array), expected="a 4-D array") from None
    if array.ndim != 4:
        raise StencilValueError(
            f"{param} has {array.ndim} dimension(s) (shape {array.shape}); expected 4: {layout}",
            param=param, value=array.shape, expected=layout)
    return array


def _in_worker_thread():
    # workqueue aborts on concurrent parallel launches; stay serial off the main thread.
    return threading.current_thread() is not threading.main_thread()


def correlate_channels(x, weights, *, padding=0, stride=1, out=None, method="auto",
                       parallel=None):
    """Correlate a batch of multi-channel images with a set of multi-channel kernels.

    ``res[n, o, i, j] = sum over c, u, v of xp[n, c, i*sh + u, j*sw + v] * weights[o, c, u, v]``
    where ``xp`` is `x` zero-padded (massiv's ``Padding ... (Fill 0)``): every
    output channel is one correlation stencil spanning all input channels, as in
    a convolution layer (cross-correlation, no kernel flip, like
    ``torch.nn.functional.conv2d``).

    Parameters
    ----------
    x : array_like, shape (N, C, H, W)
        Batch of images.  float32 stays float32, float64 stays float64, float16
        is computed in float32, integers and bool in float64.
    weights : array_like, shape (O, C, KH, KW)
        One (C, KH, KW) kernel per output channel; cast to the dtype of the
        computation, which `x` decides.
    padding : int, (int, int) or ((int, int), (int, int)), optional
        Zeros added around each image: one width for all four sides, one per
        axis (rows, columns) applied before and after, or
        ``((top, bottom), (left, right))``.  Default 0.
    stride : int or (int, int), optional
        Compute only every `stride`-th output row and column (massiv's
        ``computeWithStride``).  Default 1.
    out : ndarray, optional
        Preallocated result of shape (N, O, Ho, Wo) and the computed dtype,
        where ``Ho = (H + top + bottom - KH) // sh + 1`` (same for columns).
    method : {'auto', 'gather', 'scatter'}, optional
        'gather' copies each window into a small buffer (im2col) and multiplies
        with BLAS; 'scatter' (stride 1 only) multiplies first and adds the
        products into place (col2im), which wins when the input is mostly
        padding, as in the input gradient of a convolution.  'auto' (default)
        picks by estimated cost.  All give the same result up to rounding.
    parallel : bool or None, optional
        Use Numba's thread pool (`numba.set_num_threads` is respected): over
        the batch, or over input channels when the batch is smaller than the
        thread count (the weight-gradient layout).  None (default) decides by
        the amount of work and stays serial when called from a thread other
        than the main one.

    Returns
    -------
    ndarray, shape (N, O, Ho, Wo)
        The correlation (`out` itself when given).

    Raises
    ------
    stencils.errors.StencilValueError
        Arrays not 4-D, channel counts that differ, a bad `padding`, `stride`
        or `method`, a kernel larger than the padded image, or `out` of the
        wrong shape.
    stencils.errors.StencilTypeError
        A complex or object dtype, or `out` of a dtype other than the computed
        one.

    Examples
    --------
    >>> import numpy as np
    >>> from stencils import correlate_channels
    >>> x = np.arange(16.0).reshape(1, 1, 4, 4)
    >>> weights = np.ones((1, 1, 2, 2))
    >>> correlate_channels(x, weights)[0, 0]
    array([[10., 14., 18.],
           [26., 30., 34.],
           [42., 46., 50.]])

    Two input channels, two output channels, zero padding and a stride:

    >>> x = np.stack([np.ones((3, 3)), 2 * np.ones((3, 3))])[None]
    >>> weights = np.array([[[[1.0]], [[1.0]]], [[[1.0]], [[-1.0]]]])
    >>> correlate_channels(x, weights, padding=1, stride=2)
    array([[[[ 0.,  0.,  0.],
             [ 0.,  3.,  0.],
             [ 0.,  0.,  0.]],
    <BLANKLINE>
            [[ 0.,  0.,  0.],
             [ 0., -1.,  0.],
             [ 0.,  0.,  0.]]]])

    float32 stays float32:

    >>> correlate_channels(np.ones((2, 3, 5, 5), np.float32), np.ones((4, 3, 3, 3))).dtype
    dtype('float32')
    """
    x = _as_4d(x, "x", "(N, C, H, W) = (batch, channels, rows, columns)")
    weights = _as_4d(weights, "weights",
                     "(O, C, KH, KW) = (out channels, in channels, kernel rows, kernel columns)")
    # The image decides the dtype (skimage's policy): weights are cast to it.
    dtype = _compute_dtype(x, "x")
    _compute_dtype(weights, "weights")
    samples, channels, height, width = x.shape
    outs, kchannels, kh, kw = weights.shape
    if kchannels != channels:
        raise StencilValueError(
            f"weights has {kchannels} input channel(s) (shape {weights.shape}) but x has "
            f"{channels} (shape {x.shape}); weights.shape[1] must equal x.shape[1]",
            param="weights", value=weights.shape, expected=f"shape (O, {channels}, KH, KW)")
    if kh < 1 or kw < 1:
        raise StencilValueError(
            f"weights is empty in its kernel axes (shape {weights.shape}); KH and KW must be >= 1",
            param="weights", value=weights.shape, expected="KH >= 1 and KW >= 1")
    (pad_top, pad_bottom), (pad_left, pad_right) = _normalise_padding(padding)
    sh, sw = _pair_of_ints(stride, "stride", 1)
    if method not in _METHODS:
        raise StencilValueError(
            f"method={method!r} is not a method; expected one of {', '.join(map(repr, _METHODS))}",
            param="method", value=method, expected=_METHODS)
    if method == "scatter" and (sh, sw) != (1, 1):
        raise StencilValueError(
            f"method='scatter' needs stride 1, got stride={stride!r}; use method='gather'",
            param="method", value=method, expected="'gather' or 'auto' with a stride")
    padded_h = height + pad_top + pad_bottom
    padded_w = width + pad_left + pad_right
    if padded_h < kh or padded_w < kw:
        raise StencilValueError(
            f"weights kernel {kh}x{kw} is larger than the padded image {padded_h}x{padded_w} "
            f"(x shape {x.shape}, padding {padding!r}); pad more or use a smaller kernel",
            param="weights", value=weights.shape,
            expected=f"KH <= {padded_h} and KW <= {padded_w}")
    # A stride beyond the padded extent gives the same single row or column; clamping
    # keeps the kernels' index arithmetic within int64.
    sh, sw = min(sh, padded_h), min(sw, padded_w)
    ho = (padded_h - kh) // sh + 1
    wo = (padded_w - kw) // sw + 1
    shape = (samples, outs, ho, wo)

    if out is not None:
        if not isinstance(out, np.ndarray):
            raise StencilTypeError(
                f"out must be a numpy array, got {type(out).__name__}",
                param="out", value=type(out), expected="numpy.ndarray")
        if out.shape != shape:
            raise StencilValueError(
                f"out has shape {out.shape}; expected {shape}",
                param="out", value=out.shape, expected=shape)
        if not out.flags.writeable:
            raise StencilValueError("out is read-only; pass a writeable array",
                                    param="out", value="read-only", expected="writeable array")
        if out.dtype.newbyteorder("=") != dtype:
            raise StencilTypeError(
                f"out has dtype {out.dtype}; expected the computed dtype {dtype}",
                param="out", value=out.dtype, expected=dtype)
    target = out
    if (out is None or not out.flags.c_contiguous or not out.dtype.isnative
            or np.may_share_memory(out, x) or np.may_share_memory(out, weights)):
        target = np.empty(shape, dtype=dtype)

    if samples == 0 or outs == 0:
        pass
    elif channels == 0:
        target[...] = 0
    else:
        # astype keeps the memory layout: _dispatch reads channel-major views in place.
        _dispatch(x.astype(dtype, copy=False), weights.astype(dtype, copy=False), target,
                  pad_top, pad_left, sh, sw, method, parallel)
    if out is None:
        return target
    if target is not out:
        out[...] = target
    return out


def _dispatch(x, weights, out, pad_top, pad_left, sh, sw, method, parallel):
    samples, channels, height, width = x.shape
    outs, _, kh, kw = weights.shape
    ho, wo = out.shape[2], out.shape[3]
    taps = kh * kw
    # Padded extent actually read (padding beyond it at the bottom/right is not).
    hp = max(pad_top + height, (ho - 1) * sh + kh)
    wp = max(pad_left + width, (wo - 1) * sw + kw)
    # Estimated cost per sample: multiply-adds plus copies, a copy counted as
    # two multiply-adds (BLAS runs near peak, copies are memory bound).
    rows = channels * taps * ho * wp * (outs + 2)
    positions = channels * kh * wp * ho * wo * (outs + 2)
    scatter = outs * taps * height * (width + kw - 1) * (channels + 2)
    strided = (sh, sw) != (1, 1)
    if method == "auto":
        method = "scatter" if not strided and scatter < min(rows, positions) else "gather"
    if method == "scatter" and not np.isfinite(weights).all():
        # Scatter never multiplies weights with the zero padding; IEEE says 0 * inf is NaN,
        # and gather (like torch) honours that.
        method = "gather"
    if rows > positions and not np.isfinite(x).all():
        # Positions multiplies the spare (zero-weight) columns with real pixels: an inf or
        # NaN there would leak into windows that do not contain it.  Rows drops them.
        rows = 0
    threads = numba.get_num_threads()
    if method == "scatter" or strided or rows <= positions:
        x = np.ascontiguousarray(x)
        weights = np.ascontiguousarray(weights)
    if parallel is None:
        work = samples * outs * channels * taps * ho * wo
        parallel = threads > 1 and work >= _SERIAL_WORK and not _in_worker_thread()
    parallel = bool(parallel) and threads > 1
    if method == "scatter":
        wt = np.ascontiguousarray(weights.transpose(0, 2, 3, 1)).reshape(outs * taps, channels)
        if parallel and samples > 1:
            _scatter_parallel(x, wt, out, min(samples, threads), kh, kw, pad_top, pad_left)
        else:
            _scatter_serial(x, wt, out, kh, kw, pad_top, pad_left)
    elif strided:
        w2 = weights.reshape(outs, channels * taps)
        res = out.reshape(samples, outs, ho * wo)
        if parallel and samples > 1:
            _gather_batch_parallel(x, w2, res, min(samples, threads), kh, kw, pad_top, pad_left,
                                   sh, sw, ho, wo)
        else:
            _gather_batch_serial(x, w2, res, kh, kw, pad_top, pad_left, sh, sw, ho, wo)
    elif rows <= positions:
        w2 = weights.reshape(outs, channels * taps)
        if parallel and samples > 1:
            _rows_parallel(x, w2, out, min(samples, threads), kh, kw, pad_top, pad_left, hp, wp)
        else:
            _rows_serial(x, w2, out, kh, kw, pad_top, pad_left, hp, wp)
    else:
        x, swap_x = _c_or_channel_major(x)
        weights, swap_w = _c_or_channel_major(weights)
        if parallel and samples >= threads:
            _positions_parallel_samples(x, swap_x, weights, swap_w, out, threads,
                                        pad_top, pad_left, hp, wp)
        elif parallel and channels > 1:
            partials = np.empty((min(channels, threads),) + out.shape, dtype=out.dtype)
            _positions_parallel_channels(x, swap_x, weights, swap_w, out, partials,
                                         pad_top, pad_left, hp, wp)
        else:
            _positions_serial(x, swap_x, weights, swap_w, out, pad_top, pad_left, hp, wp)


def _c_or_channel_major(a):
    """(array, False) if C-contiguous, (its first-two-axes transpose, True) if that is."""
    if a.flags.c_contiguous:
        return a, False
    swapped = a.transpose(1, 0, 2, 3)
    if swapped.flags.c_contiguous:
        return swapped, True
    return np.ascontiguousarray(a), False
