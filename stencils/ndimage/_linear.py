"""scipy.ndimage's linear filters: correlations, uniform, Gaussian and derivative filters.

Each function has scipy 1.17's signature, defaults, output dtype rules and
errors, and gives scipy's results to the last bit: the kernels in
`stencils._kernels_ndimage` do each output's float64 arithmetic in scipy's
order, and the composite filters here (Gaussian, Sobel, Laplace, ...) make the
same passes as scipy, through the same intermediate dtype (the output's).

Separable filters run as 1-D passes along each axis; a pass along the last
axis works on one extended line at a time, a pass along any other axis is
vectorised across the last axis (contiguous rows).  Arrays from
`_GENERATED_MIN_SIZE` elements run on passes generated per tap count (every
tap unrolled: `_kernels_ndimage.pass_source`), split into blocks of rows
among Numba's thread count; two passes over the last two axes (a 2-D Gaussian,
Sobel, Prewitt or uniform filter) run fused per band of rows, the first pass's
rows rounded to the output's dtype exactly where scipy stores them.  `correlate` with an n-D
kernel never factors the kernel into 1-D passes, even when it is an outer
product: a separable sum rounds differently from scipy's n-D sum, and scipy's
own tests compare some results exactly.

Dask arrays give lazy dask arrays (`_lazy`); the kernels then run serially
inside each chunk's task.
"""

from __future__ import annotations

import numbers

import numpy as np

from .. import _kernels_ndimage as kn
from ..errors import StencilTypeError, StencilValueError
from ._lazy import dask_aware, generic_dask, in_dask_task
from ._nan import check_nan_policy, omit_nan
from ._args import (NdimageRuntimeError, as_compute_dtype, as_float_cval, as_input,
                    check_origin, get_output,
                    is_dask, mode_code, normalize_axes, normalize_axis, origins_for, per_axis,
                    split_complex, store)

__all__ = [
    "correlate1d", "convolve1d", "correlate", "convolve", "uniform_filter1d", "uniform_filter",
    "gaussian_filter1d", "gaussian_filter", "prewitt", "sobel", "generic_laplace", "laplace",
    "gaussian_laplace", "generic_gradient_magnitude", "gaussian_gradient_magnitude",
]

_DBL_EPSILON = np.finfo(np.float64).eps
_PARALLEL_MIN_SIZE = 1 << 15
_CHUNK = 2048  # columns per vectorised block (its float64 sums stay in L1)


def _threads():
    import numba

    return numba.get_num_threads()


def _parallel(size):
    return size >= _PARALLEL_MIN_SIZE and not in_dask_task()


# -- running a 1-D pass --------------------------------------------------------

def _as_source(a):
    """The array the kernels read: float32 or float64, native, C-contiguous."""
    if a.dtype == np.float32 or a.dtype == np.float64:
        return np.ascontiguousarray(a).astype(a.dtype.newbyteorder("="), copy=False)
    if a.dtype == np.bool_:
        a = a.view(np.uint8)  # scipy reads a bool as its byte (an earlier pass may have left 2)
    return np.ascontiguousarray(a, dtype=np.float64)


def _same_array(a, b):
    return (a.dtype == b.dtype and a.shape == b.shape and a.strides == b.strides
            and a.__array_interface__["data"][0] == b.__array_interface__["data"][0])


def _target_for(output, source, *, in_place_ok=False):
    """Where a kernel writes (`output` itself when it can), and whether to copy back.

    `in_place_ok`: the kernel reads each line whole before writing it, so the
    output may be the source itself (not any other overlap).
    """
    dtype = output.dtype
    if (dtype.kind == "f" and dtype.itemsize in (4, 8) and dtype.isnative
            and output.flags.c_contiguous
            and (not np.may_share_memory(output, source)
                 or (in_place_ok and _same_array(output, source)))):
        return output, False
    kind = dtype.newbyteorder("=") if dtype.kind == "f" and dtype.itemsize in (4, 8) else None
    return np.empty(output.shape, dtype=kind or np.float64), True


def _symmetry(weights):
    """scipy's test: 1 symmetric, -1 antisymmetric (both within DBL_EPSILON, odd length), 0."""
    size = weights.shape[0]
    if not size & 1:
        return 0
    half = size // 2
    left, right = weights[half - 1::-1] if half else weights[:0], weights[half + 1:]
    if not np.any(np.abs(right - left) > _DBL_EPSILON):
        return 1
    if not np.any(np.abs(right + left) > _DBL_EPSILON):
        return -1
    return 0


def _check_real_output(output):
    if output.dtype.kind == "c":
        raise NdimageRuntimeError(
            f"array type {output.dtype!r} not supported: a real filter of real input cannot "
            "write a complex output (scipy refuses it too); pass a real output, or complex "
            "input or weights.",
            param="output", value=output.dtype, expected="a real dtype",
        )


def _pass1d(input, weights, axis, output, code, cval, origin, *, uniform=False,
            accumulate=np.float64):
    """One 1-D correlation (or uniform filter of len(weights)) of real `input` into `output`."""
    _check_real_output(output)
    if input.size == 0:
        return output
    source = _as_source(input)
    shape = source.shape
    outer = int(np.prod(shape[:axis], dtype=np.int64))
    n, inner = shape[axis], int(np.prod(shape[axis + 1:], dtype=np.int64))
    target, copy_back = _target_for(output, source, in_place_ok=inner == 1)
    before = weights.shape[0] // 2 + origin
    parallel = _parallel(source.size)
    if not uniform and _generated(source, weights, accumulate):
        _generated_pass(source, target, weights, (outer, n, inner), before, code, cval,
                        accumulate)
    elif inner == 1:
        lines = outer
        group = kn.LINE_GROUP  # the uniform kernel advances this many lines together
        per_task = -(-max(1, -(-lines // (8 * _threads()))) // group) * group
        run = kn.lines_parallel if parallel else kn.lines_serial
        run(source.reshape(lines, n), target.reshape(lines, n), weights, before, code, cval,
            _symmetry(weights), uniform, per_task)
    elif uniform:
        run = kn.uniform_axis_parallel if parallel else kn.uniform_axis_serial
        chunk = min(_CHUNK, max(16, -(-inner // max(1, -(-8 * _threads() // outer)))))
        run(source.reshape(outer, n, inner), target.reshape(outer, n, inner),
            weights.shape[0], before, code, cval, chunk)
    else:
        blocks = max(1, -(-8 * _threads() // outer)) if parallel else 1
        rows_per_task = max(1, -(-n // blocks))
        run = kn.axis_parallel if parallel else kn.axis_serial
        run(source.reshape(outer, n, inner), target.reshape(outer, n, inner), weights, before,
            code, cval, _symmetry(weights), rows_per_task, _CHUNK)
    if copy_back:
        store(target, output)
    return output


# -- generated passes (stencils._kernels_ndimage.pass_source) -------------------

# Arrays from this many elements run on generated kernels (a new tap count costs
# a compile of about a second, once per cache); smaller ones on the generic ones.
_GENERATED_MIN_SIZE = 1 << 15
# Above this many taps the generic kernels are used (unless float32 sums are asked for).
_GENERATED_MAX_TAPS = 64
_SYMMETRY_NAMES = {1: "s", -1: "a", 0: "g"}
_PASS_DIGEST = []


def _generated(source, weights, accumulate):
    if accumulate != np.float64:
        return True  # only the generated kernels sum in float32
    return source.size >= _GENERATED_MIN_SIZE and weights.shape[0] <= _GENERATED_MAX_TAPS


def _pass_module(size0, symmetry0, size1, symmetry1, accumulate):
    """The generated module for these tap counts and symmetries (compiled once per cache)."""
    from .. import _engine

    if not _PASS_DIGEST:
        _PASS_DIGEST.append(_engine.source_digest((kn,)))
    accumulate = np.dtype(accumulate).name
    name = (f"stencils_ndi_pass_{size0}{_SYMMETRY_NAMES[symmetry0]}_{size1}"
            f"{_SYMMETRY_NAMES[symmetry1]}_{accumulate}_{_PASS_DIGEST[0]}")
    return _engine.import_generated(
        name, lambda: kn.pass_source(size0, symmetry0, size1, symmetry1, accumulate))


def _kernel_weights(weights, accumulate):
    """The weights argument of a generated pass: the taps, then 1.0 (the multiplier of
    `_kernels_ndimage.exact_add`), as `accumulate`."""
    return np.append(weights, 1.0).astype(accumulate)


# Blocks per thread of a fused pair of passes.  The threads take blocks as they come
# free, so a thread the OS holds back for a while delays the call by at most about
# one block: ~2 ms for a 4096^2 Gaussian's 256-row blocks on one core.  Each block
# also reads and converts the `size0 - 1` rows above it once more (6% of 256 rows).
_FUSED_BLOCKS_PER_THREAD = 8


def _blocks(outer, n, parallel, per_thread=4):
    """``(o0, o1, i0, i1)`` blocks of the outputs of an ``(outer, n, inner)`` pass,
    about `per_thread` per thread."""
    if not parallel:
        return [(0, outer, 0, n)]
    want = per_thread * _threads()
    if outer >= want:
        return [(outer * k // want, outer * (k + 1) // want, 0, n) for k in range(want)]
    parts = min(n, -(-want // outer))
    return [(o, o + 1, n * k // parts, n * (k + 1) // parts)
            for o in range(outer) for k in range(parts)]


def _run_blocks(kernel, blocks, *args):
    """kernel(*block, *args) for every block, on as many threads as numba uses."""
    from .. import _engine

    _engine.run_parallel(lambda block: kernel(*block, *args), blocks, _threads())


def _generated_pass(source, target, weights, shape3, before, code, cval, accumulate):
    """A 1-D correlation on the generated kernels (any axis; `inner` 1 is the last)."""
    outer, n, inner = shape3
    size, symmetry = weights.shape[0], _symmetry(weights)
    module = _pass_module(size, symmetry, size, symmetry, accumulate)
    w = _kernel_weights(weights, accumulate)
    parallel = _parallel(source.size)
    if inner == 1:
        blocks = [(b[0], b[1]) for b in _blocks(outer, 1, parallel)]
        _run_blocks(module.lines, blocks, source.reshape(outer, n), target.reshape(outer, n), w,
                    before, code, cval)
    else:
        _run_blocks(module.vertical, _blocks(outer, n, parallel), source.reshape(shape3),
                    target.reshape(shape3), w, before, code, cval)


def _fused_pair(input, first, second, output, cval, accumulate):
    """Both passes of a filter along the last two axes, fused per band of rows, if they can be.

    `first` and `second` are ``(axis, weights, mode code)``, in either order of
    the two axes; the first pass's rows are stored in the output's dtype before
    the second reads them, as scipy stores them in the output.  Returns whether
    it ran.
    """
    ndim = input.ndim
    (axis0, w0, code0), (axis1, w1, code1) = first, second
    last_two = {(ndim - 2, ndim - 1): True, (ndim - 1, ndim - 2): False}
    if ndim < 2 or (axis0, axis1) not in last_two or input.dtype.kind not in "fiub":
        return False
    dtype = output.dtype
    if (dtype.kind != "f" or dtype.itemsize not in (4, 8) or not dtype.isnative
            or not output.flags.c_contiguous or np.may_share_memory(output, input)
            or input.size == 0):
        return False
    source = _as_source(input)
    if not all(_generated(source, w, accumulate) for w in (w0, w1)):
        return False
    kernel, passes = _fused_kernel(first, second, accumulate, cval)
    shape3 = (int(np.prod(source.shape[:-2], dtype=np.int64)),) + source.shape[-2:]
    blocks = _blocks(shape3[0], shape3[1], _parallel(source.size), _FUSED_BLOCKS_PER_THREAD)
    _run_blocks(kernel, blocks, source.reshape(shape3), output.reshape(shape3), 0, *passes)
    return True


def _fused_kernel(first, second, accumulate, cval):
    """The generated fused kernel for passes `first` then `second` (over the last two
    axes, either order), and its arguments after the output row shift."""
    (axis0, w0, code0), (axis1, w1, code1) = first, second
    vertical_first = axis0 < axis1
    if not vertical_first:
        (w0, code0), (w1, code1) = (w1, code1), (w0, code0)  # w0: the vertical pass
    module = _pass_module(w0.shape[0], _symmetry(w0), w1.shape[0], _symmetry(w1), accumulate)
    vertical = (_kernel_weights(w0, accumulate), w0.shape[0] // 2, code0)
    line = (_kernel_weights(w1, accumulate), w1.shape[0] // 2, code1)
    if vertical_first:
        return module.fused, vertical + line + (as_float_cval(cval),)
    return module.fused_lines_first, line + vertical + (as_float_cval(cval),)


def _weights1d(weights, param="weights"):
    w = np.asarray(weights, dtype=np.float64)
    if w.ndim != 1 or w.shape[0] < 1:
        raise NdimageRuntimeError(
            f"no filter weights given: {param} must be a non-empty 1-D sequence, got shape "
            f"{w.shape}.",
            param=param, value=w.shape, expected="a non-empty 1-D array",
        )
    return np.ascontiguousarray(w)


def _reach_1d(ndim, axis, half, origin):
    depth = [0] * ndim
    depth[normalize_axis(axis, ndim)] = half + abs(int(origin))
    return depth


def _gauss_radius(sigma, truncate, radius):
    return int(radius) if radius is not None else int(truncate * float(sigma) + 0.5)


def _reach_gauss(ndim, sigma, truncate=4.0, radius=None, axes=None, **_):
    axes = normalize_axes(axes, ndim)
    sigmas = per_axis(sigma, len(axes), param="sigma")
    radii = per_axis(radius, len(axes), param="radius")
    depth = [0] * ndim
    for ax, s, r in zip(axes, sigmas, radii):
        depth[ax] = _gauss_radius(s, truncate, r)
    return depth


# -- 1-D correlations -----------------------------------------------------------

@dask_aware(lambda ndim, weights, axis=-1, origin=0, **_:
             _reach_1d(ndim, axis, len(np.atleast_1d(weights)), origin))
def correlate1d(input, weights, axis=-1, output=None, mode="reflect", cval=0.0, origin=0, *,
                nan_policy="propagate", compute_dtype=None):
    """Correlate along one axis, as ``scipy.ndimage.correlate1d``.

    ``output[..., i, ...] = sum_k weights[k] * input[..., i + k - len(weights) // 2 - origin, ...]``
    along `axis`, with reads outside the array answered by `mode`.

    Parameters
    ----------
    input : array_like or dask array
        Real or complex.
    weights : array_like
        1-D, real or complex (complex weights are conjugated, as scipy does).
    axis : int, optional
    output : ndarray or dtype, optional
        By default the input's dtype: integer input gives (truncated) integer output.
    mode : {'reflect', 'constant', 'nearest', 'mirror', 'wrap', 'grid-mirror', \
'grid-constant', 'grid-wrap'}, optional
    cval : scalar, optional
        The value outside the input for ``mode='constant'``.
    origin : int, optional
        Shifts the filter: ``-(len(weights) // 2) <= origin <= (len(weights) - 1) // 2``.
    nan_policy : {'propagate', 'omit'}, optional, keyword-only
        Not in scipy.  'propagate' (default) is scipy's behaviour; 'omit' leaves
        NaN out of each window and rescales the other weights (docs/ndimage.md).
    compute_dtype : {None, numpy.float64, numpy.float32}, optional, keyword-only
        Not in scipy.  The type each output's sum is computed in: None or
        float64 (default) is scipy's float64 arithmetic, bit for bit;
        float32 sums in float32 as OpenCV does (twice the vector lanes; the
        result differs from scipy's by float32 rounding).  Real input only.

    Returns
    -------
    ndarray (dask array for dask input)

    Examples
    --------
    >>> import numpy as np
    >>> from stencils import ndimage as ndi
    >>> ndi.correlate1d([2, 8, 0, 4, 1, 9, 9, 0], weights=[1, 3])
    array([ 8, 26,  8, 12,  7, 28, 36,  9])
    >>> ndi.correlate1d(np.array([0.0, 1, 0, 0]), [1, 2, 3], mode="constant")
    array([3., 2., 1., 0.])
    >>> ndi.correlate1d([1.0, np.nan, 3.0, 4.0], [1, 1, 1], nan_policy="omit")
    array([ 3. ,  6. , 10.5, 11. ])
    """
    if check_nan_policy(nan_policy) == "omit":
        return omit_nan(
            lambda d, c, absolute: correlate1d(d, np.abs(weights) if absolute else weights, axis,
                                               np.float64, mode, c, origin),
            correlate1d(input, weights, axis, output, mode, cval, origin,
                        compute_dtype=compute_dtype), input, cval)
    accumulate = as_compute_dtype(compute_dtype)
    input = as_input(input)
    weights = np.asarray(weights)
    if input.dtype.kind == "c" or weights.dtype.kind == "c":
        _check_real_compute(accumulate)
        if weights.dtype.kind == "c":
            weights = weights.conj().astype(np.complex128, copy=False)
        output = get_output(output, input, complex_output=True)
        return split_complex(correlate1d, input, weights, output, cval, axis=axis, mode=mode,
                             origin=origin)
    output = get_output(output, input)
    weights = _weights1d(weights)
    axis = normalize_axis(axis, input.ndim)
    origin = check_origin(origin, weights.shape[0])
    code = mode_code(mode)
    return _pass1d(input, weights, axis, output, code, as_float_cval(cval), origin,
                   accumulate=accumulate)


def _check_real_compute(accumulate):
    if accumulate != np.float64:
        raise StencilValueError(
            "compute_dtype=numpy.float32 is for real input and weights; complex ones are "
            "computed in float64 (leave compute_dtype as None).",
            param="compute_dtype", value=accumulate, expected="None for complex data",
        )


@dask_aware(lambda ndim, weights, axis=-1, origin=0, **_:
             _reach_1d(ndim, axis, len(np.atleast_1d(weights)), origin))
def convolve1d(input, weights, axis=-1, output=None, mode="reflect", cval=0.0, origin=0, *,
               nan_policy="propagate"):
    """Convolve along one axis, as ``scipy.ndimage.convolve1d``.

    `correlate1d` with the weights reversed and the origin mirrored.
    Parameters as in `correlate1d`.

    Examples
    --------
    >>> from stencils import ndimage as ndi
    >>> ndi.convolve1d([2, 8, 0, 4, 1, 9, 9, 0], weights=[1, 3])
    array([14, 24,  4, 13, 12, 36, 27,  0])
    """
    weights = np.asarray(weights)
    if weights.ndim == 0:
        _weights1d(weights)  # raises scipy's error; other shapes are checked by correlate1d
    weights = weights[::-1]
    origin = -origin
    if not weights.shape[0] & 1:
        origin -= 1
    if weights.dtype.kind == "c":
        weights = weights.conj()  # undone by correlate1d's conjugation
    return correlate1d(input, weights, axis, output, mode, cval, origin, nan_policy=nan_policy)


# -- n-D correlations -----------------------------------------------------------

def _reach_nd(ndim, weights, origin=0, axes=None, **_):
    axes = normalize_axes(axes, ndim)
    w = np.asarray(weights)
    origins = per_axis(origin, len(axes), param="origin")
    shape = w.shape if w.ndim == ndim else (1,) * ndim
    depth = [0] * ndim
    for i, ax in enumerate(axes):
        size = shape[ax] if w.ndim == ndim else (w.shape[i] if i < w.ndim else 1)
        depth[ax] = size + abs(int(origins[i]))
    return depth


def _correlate_nd(input, weights, output, mode, cval, origin, convolution, axes):
    input = as_input(input)
    weights = np.asarray(weights)
    if input.dtype.kind == "c" or weights.dtype.kind == "c":
        if weights.dtype.kind == "c" and not convolution:
            weights = weights.conj()  # as np.correlate: conjugate the weights
        output = get_output(output, input, complex_output=True)
        return split_complex(_correlate_nd, input, weights, output, cval, mode=mode,
                             origin=origin, convolution=convolution, axes=axes)
    axes = normalize_axes(axes, input.ndim)
    weights = np.asarray(weights, dtype=np.float64)
    if len(axes) < input.ndim:
        if weights.ndim != len(axes):
            raise NdimageRuntimeError(
                f"weights.ndim ({weights.ndim}) must match len(axes) ({len(axes)})",
                param="weights", value=weights.shape, expected=f"{len(axes)}-D",
            )
        weights = np.expand_dims(weights, tuple(ax for ax in range(input.ndim)
                                                if ax not in axes))
    origins = origins_for(origin, axes, input.ndim)
    if len([s for s in weights.shape if s > 0]) != input.ndim:
        raise NdimageRuntimeError(
            f"weights.ndim ({weights.ndim}) must match len(axes) ({len(axes)}) and every axis "
            f"of weights must be non-empty; weights has shape {weights.shape}.",
            param="weights", value=weights.shape, expected=f"a {input.ndim}-D non-empty array",
        )
    if convolution:
        weights = weights[(slice(None, None, -1),) * weights.ndim]
        origins = [-o - (0 if s & 1 else 1) for o, s in zip(origins, weights.shape)]
    for o, s in zip(origins, weights.shape):
        check_origin(o, s)
    output = get_output(output, input)
    if not isinstance(mode, str) and np.iterable(mode):
        raise NdimageRuntimeError(
            f"A sequence of modes is not supported by correlate and convolve (mode={mode!r}); "
            "give one mode name.",
            param="mode", value=mode, expected="a mode name",
        )
    code = mode_code(mode)
    _check_real_output(output)
    if input.size:
        _run_nd(input, np.ascontiguousarray(weights), output, code, as_float_cval(cval),
                origins)
    return output


def _run_nd(input, weights, output, code, cval, origins):
    """The n-D kernel on real `input`: taps grouped by source row, in scipy's C order."""
    source = _as_source(input)
    target, copy_back = _target_for(output, source)
    if source.ndim == 1:
        source, target_view, weights = source[None], target[None], weights[None]
        origins = [0] + list(origins)
    else:
        target_view = target
    taps = np.argwhere(np.abs(weights) > _DBL_EPSILON)  # C order, as scipy's footprint
    centre = np.array([s // 2 + o for s, o in zip(weights.shape, origins)], dtype=np.int64)
    offsets = taps - centre
    tap_weights = weights[tuple(taps.T)] if len(taps) else np.zeros(0)
    lead = offsets[:, :-1]
    new_group = np.ones(len(taps), dtype=bool)
    if len(taps) > 1:
        new_group[1:] = np.any(lead[1:] != lead[:-1], axis=1)
    starts = np.flatnonzero(new_group)
    group_start = np.append(starts, len(taps)).astype(np.int64)
    group_offsets = np.ascontiguousarray(lead[starts], dtype=np.int64).reshape(
        len(starts), source.ndim - 1)
    shifts = np.ascontiguousarray(offsets[:, -1], dtype=np.int64)
    min_shift = int(min(shifts.min(initial=0), 0))
    max_shift = int(max(shifts.max(initial=0), 0))
    lead_shape = np.array(source.shape[:-1], dtype=np.int64)
    n = source.shape[-1]
    rows = source.size // n
    parallel = _parallel(source.size * max(1, len(taps)) // 4)
    per_task = max(1, -(-rows // (8 * _threads())))
    run = kn.nd_parallel if parallel else kn.nd_serial
    run(source.reshape(rows, n), target_view.reshape(rows, n), lead_shape, group_offsets,
        group_start, shifts, np.ascontiguousarray(tap_weights, dtype=np.float64), code, cval,
        min_shift, max_shift, per_task)
    if copy_back:
        store(target, output)


@dask_aware(_reach_nd)
def correlate(input, weights, output=None, mode="reflect", cval=0.0, origin=0, *, axes=None,
              nan_policy="propagate"):
    """Multidimensional correlation, as ``scipy.ndimage.correlate``.

    ``output[i] = sum_k weights[k] * input[i + k - weights.shape // 2 - origin]``,
    over the weights with ``|w| > DBL_EPSILON`` (scipy leaves the others out,
    so a NaN under a zero weight does not spread).

    Parameters
    ----------
    input : array_like or dask array
    weights : array_like
        Of the input's rank, or of ``len(axes)`` dimensions with `axes`.
    output : ndarray or dtype, optional
    mode : str, optional
        One of scipy's filter modes (a sequence is refused, as scipy does).
    cval : scalar, optional
    origin : int or sequence of int, optional
    axes : int or tuple of int, optional
        The axes `weights` spans.
    nan_policy : {'propagate', 'omit'}, optional, keyword-only
        Not in scipy; as in `correlate1d`.

    Returns
    -------
    ndarray (dask array for dask input)

    Examples
    --------
    >>> import numpy as np
    >>> from stencils import ndimage as ndi
    >>> ndi.correlate(np.arange(12).reshape(3, 4), [[1, 1], [1, 1]], mode="constant")
    array([[ 0,  1,  3,  5],
           [ 4, 10, 14, 18],
           [12, 26, 30, 34]])
    """
    return _with_nan_policy(_correlate_nd, input, weights, output, mode, cval, origin, False,
                            axes, nan_policy)


@dask_aware(_reach_nd)
def convolve(input, weights, output=None, mode="reflect", cval=0.0, origin=0, *, axes=None,
             nan_policy="propagate"):
    """Multidimensional convolution, as ``scipy.ndimage.convolve``.

    `correlate` with the weights flipped on every axis and the origins mirrored.

    Examples
    --------
    >>> from stencils import ndimage as ndi
    >>> ndi.convolve([[1, 2, 0], [5, 0, 3], [0, 4, 1]], [[1, 1, 0], [1, 0, 0], [0, 0, 0]],
    ...              mode="constant", cval=1)
    array([[7, 3, 5],
           [4, 8, 3],
           [6, 3, 3]])
    """
    return _with_nan_policy(_correlate_nd, input, weights, output, mode, cval, origin, True,
                            axes, nan_policy)


def _with_nan_policy(run, input, weights, output, mode, cval, origin, convolution, axes,
                     nan_policy):
    plain = run(input, weights, output, mode, cval, origin, convolution, axes)
    if check_nan_policy(nan_policy) == "propagate":
        return plain
    return omit_nan(lambda d, c, absolute: run(d, np.abs(weights) if absolute else weights,
                                               np.float64, mode, c, origin, convolution, axes),
                    plain, input, cval)


# -- uniform -------------------------------------------------------------------

@dask_aware(lambda ndim, size, axis=-1, origin=0, **_: _reach_1d(ndim, axis, size, origin))
def uniform_filter1d(input, size, axis=-1, output=None, mode="reflect", cval=0.0, origin=0, *,
                     nan_policy="propagate"):
    """The mean over `size` neighbours along one axis, as ``scipy.ndimage.uniform_filter1d``.

    scipy's running sum: the first window is summed, then each step adds the
    entering value and subtracts the leaving one (so a NaN spoils the rest of
    its line, as in scipy).

    Examples
    --------
    >>> from stencils import ndimage as ndi
    >>> ndi.uniform_filter1d([2, 8, 0, 4, 1, 9, 9, 0], size=3)
    array([4, 3, 4, 1, 4, 6, 6, 3])

    ``nan_policy='omit'`` (not in scipy) averages the values present:

    >>> ndi.uniform_filter1d([2.0, np.nan, 0, 4], size=3, nan_policy="omit")
    array([2.        , 1.        , 2.        , 2.66666667])
    """
    if check_nan_policy(nan_policy) == "omit":
        return omit_nan(lambda d, c, _: uniform_filter1d(d, size, axis, np.float64, mode, c,
                                                          origin),
                        uniform_filter1d(input, size, axis, output, mode, cval, origin), input,
                        cval)
    input = as_input(input)
    axis = normalize_axis(axis, input.ndim)
    if isinstance(size, numbers.Real) and size < 1:
        raise NdimageRuntimeError(
            f"incorrect filter size: size={size!r}, expected an integer >= 1.",
            param="size", value=size, expected="an integer >= 1",
        )
    if not isinstance(size, numbers.Integral):
        raise StencilTypeError(f"size={size!r} is not an integer.", param="size", value=size,
                               expected="an integer >= 1")
    size = int(size)
    complex_output = input.dtype.kind == "c"
    output = get_output(output, input, complex_output=complex_output)
    if size // 2 + origin < 0 or size // 2 + origin >= size:
        raise StencilValueError(
            f"invalid origin: origin={origin!r} for size={size}, expected "
            f"{-(size // 2)} .. {(size - 1) // 2}.",
            param="origin", value=origin, expected=f"{-(size // 2)} .. {(size - 1) // 2}",
        )
    code = mode_code(mode)
    ones = np.ones(size)
    if not complex_output:
        return _pass1d(input, ones, axis, output, code, as_float_cval(cval), origin,
                       uniform=True)
    for part, out_part, c in ((input.real, output.real, np.real(cval)),
                              (input.imag, output.imag, np.imag(cval))):
        _pass1d(part, ones, axis, out_part, code, float(c), origin, uniform=True)
    return output


def _reach_uniform(ndim, size=3, origin=0, axes=None, **_):
    axes = normalize_axes(axes, ndim)
    depth = [0] * ndim
    for ax, s, o in zip(axes, per_axis(size, len(axes), param="size"),
                        per_axis(origin, len(axes), param="origin")):
        depth[ax] = int(s) // 2 + 1 + abs(int(o))
    return depth


@dask_aware(_reach_uniform)
def uniform_filter(input, size=3, output=None, mode="reflect", cval=0.0, origin=0, *,
                   axes=None, nan_policy="propagate"):
    """The mean over a box, as ``scipy.ndimage.uniform_filter`` (1-D passes per axis).

    Intermediate passes are stored in the output's dtype, as in scipy.

    Examples
    --------
    >>> import numpy as np
    >>> from stencils import ndimage as ndi
    >>> ndi.uniform_filter(np.arange(9.0).reshape(3, 3), size=3, mode="nearest")
    array([[1.33333333, 2.        , 2.66666667],
           [3.33333333, 4.        , 4.66666667],
           [5.33333333, 6.        , 6.66666667]])
    """
    if check_nan_policy(nan_policy) == "omit":
        return omit_nan(lambda d, c, _: uniform_filter(d, size, np.float64, mode, c, origin,
                                                        axes=axes),
                        uniform_filter(input, size, output, mode, cval, origin, axes=axes),
                        input, cval)
    input = as_input(input)
    output = get_output(output, input, complex_output=input.dtype.kind == "c")
    axes = normalize_axes(axes, input.ndim)
    sizes = per_axis(size, len(axes), param="size")
    origins = per_axis(origin, len(axes), param="origin")
    modes = per_axis(mode, len(axes), param="mode")
    passes = [(ax, s, o, m) for ax, s, o, m in zip(axes, sizes, origins, modes) if s > 1]
    if not passes:
        output[...] = input[...]
        return output
    if _uniform_fused(input, passes, output, cval):
        return output
    for ax, s, o, m in passes:
        uniform_filter1d(input, int(s), ax, output, m, cval, o)
        input = output
    return output


def _uniform_fused(input, passes, output, cval):
    """Both passes of a 2-D uniform filter fused per group of rows, if they can be."""
    if (len(passes) != 2 or input.ndim != 2 or [p[0] for p in passes] != [0, 1]
            or input.dtype.kind not in "fiub" or not _flat_float(output)
            or np.may_share_memory(output, input) or input.size < _GENERATED_MIN_SIZE):
        return False
    (_, size0, origin0, mode0), (_, size1, origin1, mode1) = passes
    for size, origin in ((size0, origin0), (size1, origin1)):
        if not (isinstance(size, numbers.Integral) and isinstance(origin, numbers.Integral)
                and -(size // 2) <= origin <= (size - 1) // 2):
            return False  # the 1-D passes raise scipy's error
    if not all(isinstance(m, str) for m in (mode0, mode1)):
        return False
    source = _as_source(input)
    blocks = [b[2:] for b in _blocks(1, source.shape[0], _parallel(source.size))]
    if len(blocks) > 1:  # each block steps the running sums from row 0: as few as threads
        n, parts = source.shape[0], _threads()
        blocks = [(n * k // parts, n * (k + 1) // parts) for k in range(parts)]
    _run_blocks(kn.uniform_fused, blocks, source, output, int(size0),
                int(size0) // 2 + int(origin0), mode_code(mode0), int(size1),
                int(size1) // 2 + int(origin1), mode_code(mode1), as_float_cval(cval))
    return True


# -- Gaussian ------------------------------------------------------------------

def _gaussian_kernel1d(sigma, order, radius):
    """The sampled Gaussian (or its `order`-th derivative) on ``[-radius, radius]``.

    The same float64 operations as scipy's, so the weights are bit-identical: the
    normalised samples ``exp(-x^2 / (2 sigma^2))``, times the polynomial ``q``
    with ``f^(n) = q_n(x) phi(x)``, ``q_{n+1} = q_n' - x q_n / sigma^2``.
    """
    if order < 0:
        raise StencilValueError(f"order must be non-negative, got order={order}.",
                                param="order", value=order, expected=">= 0")
    sigma2 = sigma * sigma
    x = np.arange(-radius, radius + 1)
    phi = np.exp(-0.5 / sigma2 * x ** 2)
    phi = phi / phi.sum()
    if order == 0:
        return phi
    powers = np.arange(order + 1)
    step = np.diag(powers[1:], 1) + np.diag(np.ones(order) / -sigma2, -1)
    q = np.zeros(order + 1)
    q[0] = 1
    for _ in range(order):
        q = step.dot(q)
    return (x[:, None] ** powers).dot(q) * phi


def _radius(sigma, truncate, radius):
    lw = int(truncate * float(sigma) + 0.5) if radius is None else radius
    if not isinstance(lw, numbers.Integral) or lw < 0:
        raise StencilValueError(
            f"Radius must be a nonnegative integer: radius={radius!r} (or truncate * sigma "
            "rounded).",
            param="radius", value=radius, expected="an integer >= 0",
        )
    return int(lw)


def _gaussian_weights(sigma, order, truncate, radius):
    """The correlation weights of scipy's gaussian_filter1d (its kernel reversed)."""
    sigma = float(sigma)
    return _gaussian_kernel1d(sigma, order, _radius(sigma, truncate, radius))[::-1]


@dask_aware(lambda ndim, sigma, axis=-1, truncate=4.0, radius=None, **_:
             _reach_1d(ndim, axis, _gauss_radius(sigma, truncate, radius), 0))
def gaussian_filter1d(input, sigma, axis=-1, order=0, output=None, mode="reflect", cval=0.0,
                      truncate=4.0, *, radius=None, nan_policy="propagate", compute_dtype=None):
    """A 1-D Gaussian filter (or its `order`-th derivative), as ``scipy.ndimage.gaussian_filter1d``.

    The kernel has ``radius = int(truncate * sigma + 0.5)`` taps on each side
    unless `radius` is given.  ``nan_policy`` and ``compute_dtype``
    (keyword-only, not in scipy) as in `correlate1d`.

    Examples
    --------
    >>> from stencils import ndimage as ndi
    >>> ndi.gaussian_filter1d([1.0, 2, 3, 4, 5], 1)
    array([1.42704095, 2.06782203, 3.        , 3.93217797, 4.57295905])
    """
    weights = _gaussian_weights(sigma, order, truncate, radius)
    return correlate1d(input, weights, axis, output, mode, cval, 0, nan_policy=nan_policy,
                       compute_dtype=compute_dtype)


@dask_aware(_reach_gauss)
def gaussian_filter(input, sigma, order=0, output=None, mode="reflect", cval=0.0,
                    truncate=4.0, *, radius=None, axes=None, nan_policy="propagate",
                    compute_dtype=None):
    """A multidimensional Gaussian filter, as ``scipy.ndimage.gaussian_filter``.

    One `gaussian_filter1d` pass per axis (axes with ``sigma <= 1e-15`` are
    skipped), each stored in the output's dtype: float32 stays float32.  When
    the last two passes run along the last two axes, they run fused per row
    (the same operations, without a full-size intermediate pass through memory).
    ``nan_policy='omit'`` (keyword-only, not in scipy) gives the Gaussian-weighted
    mean of the values present in each window (docs/ndimage.md);
    ``compute_dtype=np.float32`` (keyword-only, not in scipy) sums in float32
    as in `correlate1d`.

    Examples
    --------
    >>> import numpy as np
    >>> from stencils import ndimage as ndi
    >>> ndi.gaussian_filter(np.arange(50, step=2).reshape(5, 5), sigma=1)
    array([[ 4,  6,  8,  9, 11],
           [10, 12, 14, 15, 17],
           [20, 22, 24, 25, 27],
           [29, 31, 33, 34, 36],
           [35, 37, 39, 40, 42]])
    >>> image = np.ones((4, 4), np.float32)
    >>> ndi.gaussian_filter(image, 1, compute_dtype=np.float32).dtype
    dtype('float32')
    """
    accumulate = as_compute_dtype(compute_dtype)
    input = as_input(input)
    output = get_output(output, input)
    if input.dtype.kind == "c" or output.dtype.kind == "c":
        _check_real_compute(accumulate)
    axes = normalize_axes(axes, input.ndim)
    n = len(axes)
    orders = per_axis(order, n, param="order")
    sigmas = per_axis(sigma, n, param="sigma")
    modes = per_axis(mode, n, param="mode")
    radii = per_axis(radius, n, param="radius")
    passes = [(axes[i], _gaussian_weights(sigmas[i], orders[i], truncate, radii[i]), modes[i])
              for i in range(n) if sigmas[i] > 1e-15]
    plain = _separable(input, passes, output, cval, accumulate)
    if check_nan_policy(nan_policy) == "propagate":
        return plain
    return omit_nan(lambda d, c, absolute: _separable(
        d, [(ax, np.abs(w) if absolute else w, m) for ax, w, m in passes], np.empty(d.shape), c,
        np.float64), plain, input, cval)


def _separable(data, passes, output, cval, accumulate):
    """1-D correlations ``(axis, weights, mode)`` one after another, each stored in `output`."""
    if not passes:
        output[...] = data[...]
        return output
    if len(passes) == 2 and data.dtype.kind != "c":
        pair = [(ax, np.ascontiguousarray(w, dtype=np.float64), mode_code(m))
                for ax, w, m in passes]
        if _fused_pair(data, pair[0], pair[1], output, cval, accumulate):
            return output
    for ax, w, m in passes:
        correlate1d(data, w, ax, output, m, cval, 0,
                    compute_dtype=None if data.dtype.kind == "c" else accumulate)
        data = output
    return output


# -- derivatives ---------------------------------------------------------------

def _derivative3(input, axis, output, mode, cval, smooth):
    input = as_input(input)
    axis = normalize_axis(axis, input.ndim)
    output = get_output(output, input)
    modes = per_axis(mode, input.ndim, param="mode")
    passes = [(axis, [-1.0, 0.0, 1.0], modes[axis])]
    passes += [(ax, smooth, modes[ax]) for ax in range(input.ndim) if ax != axis]
    return _separable(input, passes, output, cval, np.float64)


_SMOOTHING = {"prewitt": [1.0, 1.0, 1.0], "sobel": [1.0, 2.0, 1.0]}  # along the other axes


def _reach_ones(ndim, **_):
    return [1] * ndim


@dask_aware(_reach_ones)
def prewitt(input, axis=-1, output=None, mode="reflect", cval=0.0):
    """The Prewitt derivative along `axis`, as ``scipy.ndimage.prewitt``.

    ``[-1, 0, 1]`` along `axis`, ``[1, 1, 1]`` along every other axis.

    Examples
    --------
    >>> from stencils import ndimage as ndi
    >>> ndi.prewitt([[0, 0, 1], [0, 0, 1], [0, 0, 1]])
    array([[0, 3, 3],
           [0, 3, 3],
           [0, 3, 3]])
    """
    return _derivative3(input, axis, output, mode, cval, _SMOOTHING["prewitt"])


@dask_aware(_reach_ones)
def sobel(input, axis=-1, output=None, mode="reflect", cval=0.0):
    """The Sobel derivative along `axis`, as ``scipy.ndimage.sobel``.

    ``[-1, 0, 1]`` along `axis`, ``[1, 2, 1]`` along every other axis.

    Examples
    --------
    >>> from stencils import ndimage as ndi
    >>> ndi.sobel([[0, 0, 1], [0, 0, 1], [0, 0, 1]])
    array([[0, 4, 4],
           [0, 4, 4],
           [0, 4, 4]])
    """
    return _derivative3(input, axis, output, mode, cval, _SMOOTHING["sobel"])


def generic_laplace(input, derivative2, output=None, mode="reflect", cval=0.0,
                    extra_arguments=(), extra_keywords=None, *, axes=None):
    """The sum of second derivatives given by `derivative2`, as ``scipy.ndimage.generic_laplace``.

    ``derivative2(input, axis, output, mode, cval, *extra_arguments,
    **extra_keywords)`` is called for each axis in `axes`.

    Examples
    --------
    >>> import numpy as np
    >>> from stencils import ndimage as ndi
    >>> def d2(input, axis, output, mode, cval):
    ...     return ndi.correlate1d(input, [1, -2, 1], axis, output, mode, cval, 0)
    >>> ndi.generic_laplace(np.eye(3), d2)
    array([[-2.,  2.,  0.],
           [ 2., -4.,  2.],
           [ 0.,  2., -2.]])
    """
    if extra_keywords is None:
        extra_keywords = {}
    input = input if is_dask(input) else as_input(input)
    if is_dask(input):
        return generic_dask(input, derivative2, output, mode, cval, extra_arguments,
                             extra_keywords, axes, square=False)
    output = get_output(output, input)
    axes = normalize_axes(axes, input.ndim)
    if not axes:
        output[...] = input[...]
        return output
    modes = per_axis(mode, len(axes), param="mode")
    derivative2(input, axes[0], output, modes[0], cval, *extra_arguments, **extra_keywords)
    for ax, m in zip(axes[1:], modes[1:]):
        output += derivative2(input, ax, output.dtype, m, cval, *extra_arguments,
                              **extra_keywords)
    return output


def laplace(input, output=None, mode="reflect", cval=0.0, *, axes=None):
    """The Laplace filter with second differences ``[1, -2, 1]``, as ``scipy.ndimage.laplace``.

    Examples
    --------
    >>> import numpy as np
    >>> from stencils import ndimage as ndi
    >>> ndi.laplace(np.array([[0, 0, 0], [0, 1, 0], [0, 0, 0]]), mode="constant")
    array([[ 0,  1,  0],
           [ 1, -4,  1],
           [ 0,  1,  0]])
    """
    def derivative2(input, axis, output, mode, cval):
        return correlate1d(input, [1, -2, 1], axis, output, mode, cval, 0)
    return generic_laplace(input, derivative2, output, mode, cval, axes=axes)


def gaussian_laplace(input, sigma, output=None, mode="reflect", cval=0.0, *, axes=None,
                     **kwargs):
    """The Laplace filter with Gaussian second derivatives, as ``scipy.ndimage.gaussian_laplace``.

    `kwargs` go to `gaussian_filter` (``truncate``, ``radius``).

    Examples
    --------
    >>> import numpy as np
    >>> from stencils import ndimage as ndi
    >>> ndi.gaussian_laplace(np.eye(4), sigma=1).round(3)
    array([[-0.392, -0.005,  0.214,  0.183],
           [-0.005, -0.172, -0.037,  0.214],
           [ 0.214, -0.037, -0.172, -0.005],
           [ 0.183,  0.214, -0.005, -0.392]])
    """
    ndim = input.ndim if is_dask(input) else as_input(input).ndim
    input = input if is_dask(input) else as_input(input)

    def derivative2(input, axis, output, mode, cval, sigma, **kwargs):
        order = [0] * input.ndim
        order[axis] = 2
        return gaussian_filter(input, sigma, order, output, mode, cval, **kwargs)

    axes = normalize_axes(axes, ndim)
    sigma = per_axis(sigma, len(axes), param="sigma")
    if len(axes) < ndim:
        sigma = [dict(zip(axes, sigma)).get(ax, 0) for ax in range(ndim)]
    return generic_laplace(input, derivative2, output, mode, cval, extra_arguments=(sigma,),
                           extra_keywords=kwargs, axes=axes)


def generic_gradient_magnitude(input, derivative, output=None, mode="reflect", cval=0.0,
                               extra_arguments=(), extra_keywords=None, *, axes=None):
    """``sqrt(sum of squared first derivatives)``, as ``scipy.ndimage.generic_gradient_magnitude``.

    ``derivative(input, axis, output, mode, cval, *extra_arguments,
    **extra_keywords)`` is called for each axis in `axes`.

    Examples
    --------
    >>> import numpy as np
    >>> from stencils import ndimage as ndi
    >>> ndi.generic_gradient_magnitude(np.eye(3) * 4, ndi.sobel).round(2)
    array([[11.31, 12.65,  5.66],
           [12.65,  0.  , 12.65],
           [ 5.66, 12.65, 11.31]])
    """
    if extra_keywords is None:
        extra_keywords = {}
    input = input if is_dask(input) else as_input(input)
    if is_dask(input):
        return generic_dask(input, derivative, output, mode, cval, extra_arguments,
                             extra_keywords, axes, square=True)
    output = get_output(output, input)
    smooth = _SMOOTHING[derivative.__name__] if derivative in (sobel, prewitt) else None
    if (smooth is not None and not extra_arguments and not extra_keywords
            and _magnitude_can_fuse(input, axes, {})
            and _fused_magnitude(input, _derivative3_passes(smooth, mode, cval), output)):
        return output
    axes = normalize_axes(axes, input.ndim)
    if not axes:
        output[...] = input[...]
        return output
    modes = per_axis(mode, len(axes), param="mode")
    derivative(input, axes[0], output, modes[0], cval, *extra_arguments, **extra_keywords)
    squared = rooted = False  # NumPy's steps, or one pass per axis of `add_square`
    for i, (ax, m) in enumerate(zip(axes[1:], modes[1:])):
        tmp = derivative(input, ax, output.dtype, m, cval, *extra_arguments, **extra_keywords)
        last = i == len(axes) - 2
        if _flat_float(output) and _flat_float(tmp) and tmp.dtype == output.dtype \
                and tmp.shape == output.shape:
            total, d = output.reshape(-1), tmp.reshape(-1)
            blocks = [b[2:] for b in _blocks(1, total.shape[0], _parallel(total.shape[0]))]
            _run_blocks(kn.add_square, blocks, total, d, not squared, last)
            squared, rooted = True, last
            continue
        if not squared:
            np.multiply(output, output, output)
            squared = True
        np.multiply(tmp, tmp, tmp)
        output += tmp
    if not squared:
        np.multiply(output, output, output)
    if not rooted:
        np.sqrt(output, output, casting="unsafe")
    return output


def _flat_float(a):
    return (isinstance(a, np.ndarray) and a.dtype.kind == "f" and a.dtype.itemsize in (4, 8)
            and a.dtype.isnative and a.flags.c_contiguous)


def gaussian_gradient_magnitude(input, sigma, output=None, mode="reflect", cval=0.0, *,
                                axes=None, **kwargs):
    """The gradient magnitude with Gaussian derivatives, as
    ``scipy.ndimage.gaussian_gradient_magnitude``.

    Examples
    --------
    >>> import numpy as np
    >>> from stencils import ndimage as ndi
    >>> ndi.gaussian_gradient_magnitude(np.eye(3) * 10, sigma=1).round(2)
    array([[1.53, 2.02, 1.32],
           [2.02, 0.  , 2.02],
           [1.32, 2.02, 1.53]])
    """
    if not is_dask(input) and _magnitude_can_fuse(as_input(input), axes, kwargs):
        input = as_input(input)
        output = get_output(output, input)
        pairs = _gaussian_derivative_passes(input, sigma, mode, cval, kwargs)
        if pairs is not None and _fused_magnitude(input, pairs, output):
            return output

    def derivative(input, axis, output, mode, cval, sigma, **kwargs):
        order = [0] * input.ndim
        order[axis] = 1
        return gaussian_filter(input, sigma, order, output, mode, cval, **kwargs)

    return generic_gradient_magnitude(input, derivative, output, mode, cval,
                                      extra_arguments=(sigma,), extra_keywords=kwargs,
                                      axes=axes)


# -- the gradient magnitude of a 2-D image, fused per block of rows ---------------------

_MAGNITUDE_ROWS = 128  # rows of the second derivative held at a time (per thread)


def _derivative3_passes(smooth, mode, cval):
    """The passes of sobel / prewitt along each axis of a 2-D image (see `_derivative3`)."""
    diff, smooth = np.array([-1.0, 0.0, 1.0]), np.asarray(smooth, dtype=np.float64)
    pairs = []
    for axis, m in enumerate(per_axis(mode, 2, param="mode")):
        code = mode_code(m)
        pairs.append(([(axis, diff, code), (1 - axis, smooth, code)], as_float_cval(cval)))
    return pairs


def _magnitude_can_fuse(input, axes, kwargs):
    return (input.ndim == 2 and input.dtype.kind in "fiub" and input.size >= _GENERATED_MIN_SIZE
            and not set(kwargs) - {"truncate", "radius"}
            and normalize_axes(axes, 2) == (0, 1))


def _gaussian_derivative_passes(input, sigma, mode, cval, kwargs):
    """scipy's two Gaussian derivatives as pairs of passes ``(axis, weights, mode code)``,
    each derivative with its own mode on both axes (as scipy's derivative calls get it);
    None where a pass would be skipped or too long to generate."""
    sigmas = per_axis(sigma, 2, param="sigma")
    radii = per_axis(kwargs.get("radius"), 2, param="radius")
    truncate = kwargs.get("truncate", 4.0)
    if min(float(s) for s in sigmas) <= 1e-15:
        return None
    pairs = []
    for axis, m in enumerate(per_axis(mode, 2, param="mode")):
        code = mode_code(m)
        passes = [(a, np.ascontiguousarray(_gaussian_weights(sigmas[a], int(a == axis),
                                                                truncate, radii[a])), code)
                  for a in (0, 1)]
        if any(w.shape[0] > _GENERATED_MAX_TAPS for _, w, _ in passes):
            return None
        pairs.append((passes, as_float_cval(cval)))
    return pairs


def _fused_magnitude(input, pairs, output):
    """sqrt(d0**2 + d1**2) of a 2-D image, each derivative two fused passes, a block of
    rows at a time: the second derivative never exists in full.  Every step rounds to
    the output's dtype where scipy's does (each derivative, each square, the sum)."""
    if not _flat_float(output) or np.may_share_memory(output, input):
        return False
    source = _as_source(input)
    kernels = [_fused_kernel(passes[0], passes[1], np.float64, cval) for passes, cval in pairs]
    n, inner = source.shape
    src3, out3 = source.reshape(1, n, inner), output.reshape(1, n, inner)

    def block(o0, o1, i0, i1):
        scratch = np.empty((1, min(_MAGNITUDE_ROWS, i1 - i0), inner), dtype=output.dtype)
        for c0 in range(i0, i1, _MAGNITUDE_ROWS):
            c1 = min(i1, c0 + _MAGNITUDE_ROWS)
            (first, first_args), (second, second_args) = kernels
            first(0, 1, c0, c1, src3, out3, 0, *first_args)
            second(0, 1, c0, c1, src3, scratch, c0, *second_args)
            count = (c1 - c0) * inner
            kn.add_square(0, count, output[c0:c1].reshape(-1), scratch.reshape(-1)[:count],
                          True, True)

    _run_blocks(block, _blocks(1, n, _parallel(source.size)))
    return True
