"""`correlate_channels`: a multi-channel correlation, one kernel set over all input channels.

This is the seed's "LeNet-like convolution" (massiv's correlation stencil over
(C, KH, KW) applied once per output channel, with ``Padding ... (Fill 0)`` and
``computeWithStride``), written as one fused operation because the generic
stencil path does one pass per output channel.

The front end here checks and normalises the arguments with the package's
rules (`stencils._validate`), describes the problem as a `Geometry`, lets
`choose_algorithm` (a pure function of the geometry and the cost model) pick
one of the seven algorithms of `stencils._kernels_channels` -- strided im2col,
rows, positions, direct, columns, batch or scatter -- and runs it, over ranges of samples on the
engine's helper threads when the work pays for it and no other parallel call
of the package is running (the engine's lock: a busy pool means a serial call,
never a wait).
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import numpy as np

from . import _engine, _numba_cache
from . import _kernels_channels as kc
from ._scratch import Scratch
from ._validate import as_real_array, clamp_steps, int_tuple, is_int, prepare_out
from .errors import StencilValueError

__all__ = ["correlate_channels", "Geometry", "choose_algorithm"]

_METHODS = ("auto", "gather", "scatter")

# Below this many multiply-adds a parallel launch (tens of microseconds) costs
# more than it saves.
_SERIAL_WORK = 300_000

# Direct's cost per multiply-add against BLAS's, and the shortest sum per output
# (C*KH*KW) it takes.  LeNet's conv2 forward on one thread: 1 x 5 blocks took
# 0.62 ms for 240 k multiply-adds a sample against rows' 0.72 ms for 378 k (a
# cost of 1.4); 2 x 5 blocks run the same sums in 0.8 of that time (0.28 against
# 0.35 ms, one process).  conv1's 25 taps ran 2.4x slower than rows.
_DIRECT_COST = 1.15
_DIRECT_MIN_TAPS = 64

# Columns' cost per multiply-add against BLAS's, and per block of registers,
# fitted to one process on a busy machine (one thread): LeNet's conv2 input
# gradient 0.57 ms against scatter's 0.67, conv1 forward 0.311 ms against
# rows' 0.314, conv2 forward 0.63 ms against direct's 0.40.
_COLUMNS_COST = 0.9
_COLUMNS_CALL = 1400
# The same for batch, a group of `lanes` samples a call: the conv2 input
# gradient 0.53 ms against columns' 0.67, conv2 forward 0.58 ms against
# direct's 0.47, conv1 forward 0.58 ms against rows' 0.40; 10 % added.
_BATCH_COST = 1.1
_BATCH_CALL = 4000

# The products per output channel that rows and positions pay beyond their
# multiply-adds: their copies (two) and numba's BLAS call on few rows of
# weights, which took twice NumPy's time for conv1's (6, 25) @ (25, 896) (23
# against 11.5 us, Zen 3, AVX2).  On that core conv1's forward took 1.8 ms on
# rows against 0.50 ms on columns (on an AVX-512 core they tied, 0.314 against
# 0.311 ms), and its weight gradient 1.9-2.2 ms on positions against 1.0-1.2 ms
# on direct (one thread each).
_BLAS_EXTRA = 4


class Geometry(NamedTuple):
    """Sizes of one call: x (N, C, H, W), weights (O, C, KH, KW), output (N, O, Ho, Wo)."""

    samples: int
    channels: int
    height: int
    width: int
    outs: int
    kh: int
    kw: int
    pad_top: int
    pad_left: int
    sh: int
    sw: int
    ho: int
    wo: int

    @property
    def hp(self):
        """Padded rows actually read (padding past the last window is not)."""
        return max(self.pad_top + self.height, (self.ho - 1) * self.sh + self.kh)

    @property
    def wp(self):
        """Padded columns actually read: the row width of the rows and positions buffers."""
        return max(self.pad_left + self.width, (self.wo - 1) * self.sw + self.kw)

    @property
    def work(self):
        """Multiply-adds of the correlation."""
        return (self.samples * self.outs * self.channels * self.kh * self.kw
                * self.ho * self.wo)

    def costs(self):
        """Estimated cost per sample of each stride-1 algorithm, in multiply-adds.

        Products plus buffer copies, a copy counted as two multiply-adds (BLAS
        runs near peak, copies are memory bound), and `_BLAS_EXTRA` per output
        channel for the two BLAS algorithms.  Direct computes whole vectors of
        float32 output channels over whole blocks of rows and columns, each
        multiply-add costing `_DIRECT_COST` of BLAS's; it is left out (None)
        where one block does not fit the output or its sums are too short to
        pay for a block's set-up.
        """
        c, o, kh, kw = self.channels, self.outs, self.kh, self.kw
        lanes = kc.direct_lanes(4, o)
        rows, columns = kc.direct_rows(4, lanes), kc.DIRECT_COLUMNS
        direct = None
        if self.ho >= rows and self.wo >= columns and c * kh * kw >= _DIRECT_MIN_TAPS:
            pixels = -(-self.ho // rows) * rows * -(-self.wo // columns) * columns
            direct = _DIRECT_COST * c * kh * kw * pixels * -(-o // lanes) * lanes
        return {
            "rows": c * kh * kw * self.ho * self.wp * (o + _BLAS_EXTRA),
            "positions": c * kh * self.wp * self.ho * self.wo * (o + _BLAS_EXTRA),
            "scatter": o * kh * kw * self.height * (self.width + kw - 1) * (c + 2),
            "direct": direct,
            "columns": self._columns_cost(),
            "batch": self._batch_cost(),
        }

    def _columns_cost(self):
        """Columns' cost per sample: its multiply-adds, whole vectors of columns and
        blocks of `kc.COLUMNS_OUTS` channels over the kernel rows that meet the
        image, at `_COLUMNS_COST` of BLAS's each, plus `_COLUMNS_CALL` per
        block of registers (loading taps, storing and copying the sums)."""
        lanes = kc.columns_lanes(4)
        rows_met = self._met(self.kh, self.height, self.pad_top, self.ho)
        vectors = -(-self.wo // lanes)
        blocks = -(-self.outs // kc.COLUMNS_OUTS)
        return (_COLUMNS_COST * self.channels * self.kw * rows_met * vectors * lanes * blocks
                * kc.COLUMNS_OUTS + _COLUMNS_CALL * blocks * self.ho * vectors)

    def _batch_cost(self):
        """Batch's cost per sample: its multiply-adds over exactly the taps that meet the
        image, whole vectors of samples and blocks of `kc.COLUMNS_OUTS` channels, at
        `_BATCH_COST` each, plus `_BATCH_CALL` per block of registers and the two
        transposing copies."""
        lanes = kc.columns_lanes(4)
        taps_met = (self._met(self.kh, self.height, self.pad_top, self.ho)
                    * self._met(self.kw, self.width, self.pad_left, self.wo))
        groups = -(-self.samples // lanes) * lanes / max(self.samples, 1)
        blocks = -(-self.outs // kc.COLUMNS_OUTS)
        copies = 2 * (self.channels * self.height * self.width + self.outs * self.ho * self.wo)
        return groups * blocks * (_BATCH_COST * self.channels * taps_met * kc.COLUMNS_OUTS
                                  + _BATCH_CALL * self.ho * self.wo / lanes) + copies

    @staticmethod
    def _met(taps, size, pad, outputs):
        """Taps of one axis that meet the image, summed over the outputs (stride 1)."""
        return sum(max(0, min(taps, size + pad - i) - max(0, pad - i)) for i in range(outputs))


def _true():
    return True


def choose_algorithm(geometry, method="auto", *, weights_finite=_true, x_finite=_true):
    """The algorithm of `stencils._kernels_channels` that computes `geometry` fastest.

    A pure function of its arguments.  ``'strided'`` for any stride but 1;
    otherwise the cheapest of ``'rows'``, ``'positions'``, ``'direct'``,
    ``'columns'``, ``'batch'`` and ``'scatter'`` by `Geometry.costs`
    (``method='scatter'`` asks for scatter, ``'gather'`` excludes it), within
    what IEEE arithmetic allows: scatter and batch never multiply the weights
    with the zero padding, nor columns with its rows, so an inf or NaN weight
    (where 0 * inf is NaN) needs another algorithm; positions
    multiplies pixels with the zero weights of its spare columns, so an inf or
    NaN pixel needs rows or direct (direct's spare lanes are dropped, never
    added).  `weights_finite` and `x_finite` are called only when the choice
    depends on them (each is a pass over an array).

    Examples
    --------
    >>> from stencils._channels import Geometry, choose_algorithm
    >>> conv2 = Geometry(64, 6, 14, 14, 16, 5, 5, 0, 0, 1, 1, 10, 10)
    >>> choose_algorithm(conv2)
    'direct'
    >>> conv1 = Geometry(64, 1, 28, 28, 6, 5, 5, 2, 2, 1, 1, 28, 28)
    >>> choose_algorithm(conv1)
    'columns'
    >>> choose_algorithm(Geometry(64, 6, 12, 12, 16, 5, 5, 0, 0, 2, 2, 4, 4))
    'strided'
    """
    if (geometry.sh, geometry.sw) != (1, 1):
        return "strided"
    costs = _costs(geometry)
    gathering = min((name for name in ("rows", "direct", "positions")
                     if costs[name] is not None), key=costs.get)
    skipping = min({"scatter": ("scatter",), "gather": ("columns", "batch")}.get(
        method, ("scatter", "columns", "batch")), key=costs.get)
    if method == "scatter" or costs[skipping] < costs[gathering]:
        if weights_finite():
            return skipping
    if gathering == "positions" and not x_finite():
        if costs["direct"] is not None and costs["direct"] < costs["rows"]:
            return "direct"
        return "rows"
    return gathering


def correlate_channels(x, weights, *, bias=None, padding=0, stride=1, out=None, method="auto",
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
    bias : array_like, shape (O,), optional
        Added to every point of each output channel (``res[n, o] += bias[o]``),
        as the kernel writes the sample (no extra pass over the result); cast
        to the dtype of the computation.  Default: no bias.
    padding : int, (int, int) or ((int, int), (int, int)), optional
        Zeros added around each image: one width for all four sides, one per
        axis (rows, columns) applied before and after, or
        ``((top, bottom), (left, right))``.  Default 0.
    stride : int or (int, int), optional
        Compute only every `stride`-th output row and column (massiv's
        ``computeWithStride``).  Default 1.  A stride past the last window
        keeps only the first, as any stride that large does.
    out : ndarray, optional
        Preallocated result of shape (N, O, Ho, Wo) and the computed dtype,
        where ``Ho = (H + top + bottom - KH) // sh + 1`` (same for columns).
    method : {'auto', 'gather', 'scatter'}, optional
        'gather' reads each window of the padded input: copied into a buffer
        (im2col) and multiplied with BLAS, or, at stride 1, summed in registers
        by a direct kernel (vectors of output channels, of output columns or of
        samples, the last two skipping the padding); 'scatter' (stride 1 only) multiplies
        first and adds the products into place (col2im), which wins when the
        input is mostly padding (a convolution's input gradient).  'auto'
        (default) picks by estimated cost.  All agree up to rounding.
    parallel : bool or None, optional
        Run on `numba.get_num_threads()` of the engine's helper threads, over
        the batch, or over input channels when the batch is smaller than the
        thread count (a weight gradient).  None (default): by the work.

    Returns
    -------
    ndarray, shape (N, O, Ho, Wo)
        The correlation (`out` itself when given).

    Raises
    ------
    stencils.errors.StencilValueError
        Arrays not 4-D, channel counts that differ, a bad `padding`, `method`
        or `stride`, a kernel larger than the padded image, a bad `out` shape.
    stencils.errors.StencilTypeError
        A complex, object or extended-precision dtype, a `stride` that is not
        ints, or `out` of a dtype other than the computed one.

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

    A bias per output channel, added as each sample is written:

    >>> correlate_channels(x, weights, bias=[10.0, 20.0])[:, :, 1, 1]
    array([[13., 19.]])
    """
    x = as_real_array(x, param="x", ndim=4,
                      layout="(N, C, H, W) = (batch, channels, rows, columns)")
    # The image decides the dtype (skimage's policy): weights are cast to it.
    dtype = x.dtype
    weights = as_real_array(weights, param="weights", ndim=4, layout=(
        "(O, C, KH, KW) = (out channels, in channels, kernel rows, kernel columns)"))
    geometry = _geometry(x.shape, weights.shape, padding, stride)
    bias = _check_bias(bias, geometry.outs, dtype)
    _check_method(method, geometry, stride)
    return _correlate_into(out, x, weights.astype(dtype, copy=False), bias, geometry, method,
                           parallel)


def _correlate_into(out, x, weights, bias, geometry, method, parallel):
    """The correlation in `out` (checked; a temporary when it overlaps an input) or new."""
    shape = (geometry.samples, geometry.outs, geometry.ho, geometry.wo)
    target, copy_into = prepare_out(out, shape, x.dtype, x)
    if copy_into is None and out is not None and (
            np.may_share_memory(out, weights) or np.may_share_memory(out, bias)):
        target, copy_into = np.empty(shape, dtype=x.dtype), out
    if geometry.samples and geometry.outs:
        if geometry.channels:
            _run(x, weights, bias, target, geometry, method, parallel)
        else:
            target[...] = bias[:, None, None] if bias.size else 0
    if copy_into is None:
        return target
    copy_into[...] = target
    return copy_into


def _check_method(method, geometry, stride):
    if method not in _METHODS:
        raise StencilValueError(
            f"method={method!r} is not a method; expected one of {', '.join(map(repr, _METHODS))}",
            param="method", value=method, expected=_METHODS)
    if method == "scatter" and (geometry.sh, geometry.sw) != (1, 1):
        raise StencilValueError(
            f"method='scatter' needs stride 1, got stride={stride!r}; use method='gather'",
            param="method", value=method, expected="'gather' or 'auto' with a stride")


@functools.lru_cache(maxsize=256)
def _costs(geometry):
    return geometry.costs()


def _plain_ints(value):
    """True for an int, or nested tuples of ints, of exactly Python's int type.

    Only such arguments are remembered by `_geometry`: 1.0, True and
    np.int64(1) hash like 1, and each must still be checked on its own.
    """
    if type(value) is int:
        return True
    return type(value) is tuple and all(map(_plain_ints, value))


def _geometry(x_shape, weights_shape, padding, stride):
    """The `Geometry` of a call, after checking that the shapes, padding and stride fit.

    A training loop passes the same arguments every step: those made of
    plain ints are checked once and remembered.
    """
    if _plain_ints(padding) and _plain_ints(stride):
        return _checked_geometry_cached(x_shape, weights_shape, padding, stride)
    return _checked_geometry(x_shape, weights_shape, padding, stride)


def _checked_geometry(x_shape, weights_shape, padding, stride):
    samples, channels, height, width = x_shape
    outs, kchannels, kh, kw = weights_shape
    if kchannels != channels:
        raise StencilValueError(
            f"weights has {kchannels} input channel(s) (shape {weights_shape}) but x has "
            f"{channels} (shape {x_shape}); weights.shape[1] must equal x.shape[1]",
            param="weights", value=weights_shape, expected=f"shape (O, {channels}, KH, KW)")
    if kh < 1 or kw < 1:
        raise StencilValueError(
            f"weights is empty in its kernel axes (shape {weights_shape}); KH and KW must be >= 1",
            param="weights", value=weights_shape, expected="KH >= 1 and KW >= 1")
    (pad_top, pad_bottom), (pad_left, pad_right) = _normalise_padding(padding)
    steps = int_tuple(stride, param="stride", length=2, minimum=1)
    padded_h = height + pad_top + pad_bottom
    padded_w = width + pad_left + pad_right
    if padded_h < kh or padded_w < kw:
        raise StencilValueError(
            f"weights kernel {kh}x{kw} is larger than the padded image {padded_h}x{padded_w} "
            f"(x shape {x_shape}, padding {padding!r}); pad more or use a smaller kernel",
            param="weights", value=weights_shape,
            expected=f"KH <= {padded_h} and KW <= {padded_w}")
    sh, sw = clamp_steps(steps, (padded_h - kh + 1, padded_w - kw + 1))
    return Geometry(samples, channels, height, width, outs, kh, kw, pad_top, pad_left, sh, sw,
                    (padded_h - kh) // sh + 1, (padded_w - kw) // sw + 1)


_checked_geometry_cached = functools.lru_cache(maxsize=256)(_checked_geometry)


def _normalise_padding(padding):
    """int | (ph, pw) | ((top, bottom), (left, right)) -> ((top, bottom), (left, right))."""
    expected = "int, (rows, columns) or ((top, bottom), (left, right)), all >= 0"
    pairs = ((padding, padding), (padding, padding)) if is_int(padding) else _pairs(padding)
    if pairs is None:
        raise StencilValueError(
            f"padding={padding!r} is not a padding; expected {expected}",
            param="padding", value=padding, expected=expected)
    (top, bottom), (left, right) = pairs
    if min(top, bottom, left, right) < 0:
        raise StencilValueError(
            f"padding={padding!r} has a negative width; pad widths must be >= 0 "
            f"(to crop, slice the input instead)",
            param="padding", value=padding, expected=expected)
    return (int(top), int(bottom)), (int(left), int(right))


def _pairs(padding):
    """The ((top, bottom), (left, right)) of a padding given per axis, or None."""
    if not isinstance(padding, (tuple, list)) or len(padding) != 2:
        return None
    pairs = []
    for entry in padding:
        if is_int(entry):
            pairs.append((entry, entry))
        elif (isinstance(entry, (tuple, list)) and len(entry) == 2
              and is_int(entry[0]) and is_int(entry[1])):
            pairs.append(tuple(entry))
        else:
            return None
    return pairs


_NO_BIAS = {}  # dtype -> the empty bias array the kernels take for "no bias"


def _check_bias(bias, outs, dtype):
    """`bias` as a 1-D array of `dtype` and length `outs`; empty for None."""
    if bias is None:
        return _NO_BIAS.setdefault(dtype, np.empty(0, dtype=dtype))
    bias = as_real_array(bias, param="bias", ndim=1, layout="(O,) = (out channels,)")
    if bias.shape != (outs,):
        raise StencilValueError(
            f"bias has shape {bias.shape}; expected ({outs},), one value per output channel "
            f"(weights.shape[0])", param="bias", value=bias.shape, expected=(outs,))
    return np.ascontiguousarray(bias, dtype=dtype)


def _run(x, weights, bias, out, geometry, method, parallel):
    """Compute into `out` (C-contiguous, the computed dtype) with the chosen algorithm."""
    algorithm = choose_algorithm(
        geometry, method, weights_finite=lambda: bool(np.isfinite(weights).all()),
        x_finite=lambda: bool(np.isfinite(x).all()))
    threads = _engine.thread_count()
    if parallel is None:
        parallel = geometry.work >= _SERIAL_WORK
    # Parallel over the batch; positions also over input channels.
    splits = geometry.samples if algorithm != "positions" else max(geometry.samples,
                                                                   geometry.channels)
    parallel = bool(parallel) and threads > 1 and splits > 1
    _ALGORITHMS[algorithm](x, weights, bias, out, geometry, threads if parallel else 1)


def _over_ranges(kernel, ranges, threads):
    """kernel(start, stop) for each range, on this thread and the engine's helpers."""
    _engine.run_parallel(lambda bounds: kernel(*bounds), ranges, threads)


def _run_strided(x, weights, bias, out, g, threads):
    x = np.ascontiguousarray(x)
    w2 = np.ascontiguousarray(weights).reshape(g.outs, -1)
    res = out.reshape(g.samples, g.outs, g.ho * g.wo)
    args = (g.kh, g.kw, g.pad_top, g.pad_left, g.sh, g.sw, g.ho, g.wo)
    _over_ranges(lambda a, b: kc.strided_samples(x, w2, bias, res, a, b, *args),
                 _engine.split_range(g.samples, threads), threads)


def _run_rows(x, weights, bias, out, g, threads):
    x = np.ascontiguousarray(x)
    w2 = np.ascontiguousarray(weights).reshape(g.outs, -1)
    args = (g.kh, g.kw, g.pad_top, g.pad_left, g.hp, g.wp)
    _over_ranges(lambda a, b: kc.rows_samples(x, w2, bias, out, a, b, *args),
                 _engine.split_range(g.samples, threads), threads)


def _run_positions(x, weights, bias, out, g, threads):
    x, swap_x = _c_or_channel_major(x)
    weights, swap_w = _c_or_channel_major(weights)
    args = (g.pad_top, g.pad_left, g.hp, g.wp)
    if threads == 1 or g.samples >= threads:
        _over_ranges(lambda a, b: kc.positions_block(x, swap_x, weights, swap_w, out, a, b,
                                                     0, g.channels, *args),
                     _engine.split_range(g.samples, threads), threads)
    else:
        # Fewer samples than threads (a weight gradient): split the channels,
        # one partial sum per range, added in a fixed order so the result does
        # not depend on thread timing.
        ranges = _engine.split_range(g.channels, threads)
        partials = np.empty((len(ranges),) + out.shape, dtype=out.dtype)
        _over_ranges(lambda a, b: kc.positions_block(
            x, swap_x, weights, swap_w, partials[ranges.index((a, b))], 0, g.samples, a, b,
            *args), ranges, threads)
        np.sum(partials, axis=0, out=out)
    # Positions sums over channel ranges: the bias goes on once, at the end.
    if bias.size:
        out += bias[:, None, None]


# The direct kernel's weights, laid out per call (for a weight gradient, the
# output gradient transposed: 1.5 MB in LeNet's conv1), go in scratch memory:
# fresh, they were 490 of a LeNet step's 757 page faults, and with them no
# longer freed glibc kept the rest (none: 5.05 -> 3.65 ms a step).
_WEIGHT_LAYOUTS = Scratch(16 << 20)


def _run_direct(x, weights, bias, out, g, threads):
    x, swap_x = _c_or_channel_major(x)
    lanes = kc.direct_lanes(out.itemsize, g.outs)
    opad = -(-g.outs // lanes) * lanes
    # Weights (C, KH, KW, O), O rounded up to whole vectors with zero weights.
    planes = weights.reshape(g.outs, g.channels, g.kh * g.kw)
    if planes.strides[2] != planes.itemsize:
        planes = np.ascontiguousarray(planes)
    wt = _WEIGHT_LAYOUTS.array((g.channels, g.kh, g.kw, opad), out.dtype)
    kc.channels_last(planes, wt.reshape(-1, opad))
    bias_padded = bias
    if bias.size != opad:
        bias_padded = np.zeros(opad, dtype=out.dtype)
        bias_padded[:bias.size] = bias
    # One kernel call per thread, each claiming one sample at a time from a
    # shared counter: no Python between samples, and no thread waits for a
    # late one (it takes what is left when it starts).
    args = (g.samples, 1, lanes, g.pad_top, g.pad_left, g.hp, g.wp)

    def serially():
        kc.direct_samples(x, swap_x, wt, bias_padded, out, np.zeros(1, dtype=np.int64),
                          g.samples, g.samples, *args[2:])

    _run_on_team("direct", (x, wt, bias_padded, out), (swap_x,) + args, serially, threads)


def _run_on_team(kernel, arrays, numbers, serially, threads):
    """`kernel`'s team entry point on `arrays`, a fresh work counter and `numbers`."""
    # The block holds addresses only: every array it names stays referenced here.
    dtype = arrays[-1].dtype  # the output's
    counter = np.zeros(1, dtype=np.int64)
    arrays, numbers = arrays + (counter,), tuple(int(n) for n in numbers)
    block = _engine.team_block(arrays, numbers, (kernel, dtype.char))
    _engine.run_team(lambda: _team_entry(kernel, dtype), block, serially, threads)


_TEAM_ENTRY_POINTS = {}  # (kernel, dtype) -> its compiled entry point


def _team_entry(kernel, dtype):
    """The address of `kc.TEAM_ENTRIES[kernel, dtype]` compiled as a C callback
    (once; loaded from disk without numba's compiler set-up where it is there)."""
    key = (kernel, np.dtype(dtype))
    if key not in _TEAM_ENTRY_POINTS:
        _TEAM_ENTRY_POINTS[key] = _numba_cache.entry_point(
            kc.TEAM_ENTRIES[key], caching=kc.CACHE, error_model="python")
    return _TEAM_ENTRY_POINTS[key].address


def _run_scatter(x, weights, bias, out, g, threads):
    x = np.ascontiguousarray(x)
    # Rows ordered (o, u, v): one product row per output channel and tap.
    wt = np.ascontiguousarray(weights.transpose(0, 2, 3, 1)).reshape(-1, g.channels)
    args = (g.kh, g.kw, g.pad_top, g.pad_left)
    _over_ranges(lambda a, b: kc.scatter_samples(x, wt, bias, out, a, b, *args),
                 _engine.split_range(g.samples, threads), threads)


def _run_columns(x, weights, bias, out, g, threads):
    x = np.ascontiguousarray(x)
    lanes = kc.columns_lanes(out.itemsize)
    # A block's taps by kernel row, then channel, then column.
    starts, wt = _channel_blocks(weights, g, (1, 0, 2), out.dtype)
    row_width = max(g.wp, lanes + g.kw - 1)
    # As `_run_direct`: each thread claims samples from a shared counter.
    numbers = (g.samples, 1, lanes, g.pad_top, g.pad_left, row_width)

    def serially():
        kc.columns_samples(x, wt, starts, bias, out, np.zeros(1, dtype=np.int64), g.samples,
                           g.samples, *numbers[2:])

    _run_on_team("columns", (x, wt, starts, bias, out), numbers, serially, threads)


def _run_batch(x, weights, bias, out, g, threads):
    x = np.ascontiguousarray(x)
    lanes = kc.columns_lanes(out.itemsize)
    starts, wt = _channel_blocks(weights, g, (1, 2, 0), out.dtype)
    groups = np.array([min(n, max(0, g.samples - lanes)) for n in range(0, g.samples, lanes)],
                      dtype=np.intp)
    # As `_run_direct`: each thread claims groups from a shared counter.
    numbers = (g.pad_top, g.pad_left)

    def serially():
        kc.batch_groups(x, wt, starts, groups, bias, out, np.zeros(1, dtype=np.int64), *numbers)

    _run_on_team("batch", (x, wt, starts, groups, bias, out), numbers, serially, threads)


def _channel_blocks(weights, g, order, dtype):
    """(starts, wt): blocks of `kc.COLUMNS_OUTS` output channels, the last ending at the
    last channel; wt[b] is block b's (C, KH, KW, K) weights transposed by `order`, zero
    past the last channel."""
    k_outs = kc.COLUMNS_OUTS
    starts = np.array([min(b, max(0, g.outs - k_outs)) for b in range(0, g.outs, k_outs)],
                      dtype=np.intp)
    shape = tuple((g.channels, g.kh, g.kw)[axis] for axis in order)
    wt = np.zeros((starts.size,) + shape + (k_outs,), dtype=dtype)
    for b, first in enumerate(starts):
        part = weights[first:first + k_outs]
        wt[b, ..., :part.shape[0]] = part.transpose(*(axis + 1 for axis in order), 0)
    return starts, wt


_ALGORITHMS = {"strided": _run_strided, "rows": _run_rows, "positions": _run_positions,
               "scatter": _run_scatter, "direct": _run_direct, "columns": _run_columns,
               "batch": _run_batch}


def _c_or_channel_major(a):
    """(array, False) if C-contiguous, (its first-two-axes transpose, True) if that is."""
    if a.flags.c_contiguous:
        return a, False
    swapped = a.transpose(1, 0, 2, 3)
    if swapped.flags.c_contiguous:
        return swapped, True
    return np.ascontiguousarray(a), False
