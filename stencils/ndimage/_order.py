"""Order-statistic filters: minimum, maximum, median, rank and percentile (scipy.ndimage's).

scipy's signatures, defaults, errors and results, NaN included: scipy computes
a box minimum or maximum one axis at a time with a sliding-extremum deque in
float64, a footprint one point by point (the first cell, then strict
improvements), and a rank by quickselect; where these differ on NaN the same
steps run here (`_kernels_order.minmax_lines_exact`, `minmax_gather`,
`rank_gather`).  NaN-free data take the fast kernels (van Herk / Gil-Werman,
doubling, footprint runs, selection networks), whose results are the same
values.

Keyword-only extra: ``nan_policy='omit'`` ignores NaN in each window (a window
of NaN only gives NaN; for ranks, the rank is taken among the values left, see
`stencils._kernels_order.omit_rank`).
"""

from __future__ import annotations

import numbers
from collections.abc import Iterable

import numba
import numpy as np

from .. import _kernels_order as ko
from ..errors import StencilTypeError, StencilValueError
from . import _args
from . import _window as win
from ._lazy import dask_aware
from ._networks import BAND, network_kernel

__all__ = [
    "minimum_filter1d", "maximum_filter1d", "minimum_filter", "maximum_filter",
    "rank_filter", "median_filter", "percentile_filter",
]

# Largest box a selection network is generated for (cells).
_NETWORK_MAX_CELLS = 25


def _check_nan_policy(nan_policy):
    if nan_policy not in ("propagate", "omit"):
        raise StencilValueError(
            f"nan_policy={nan_policy!r}; expected 'propagate' (scipy's behaviour) or 'omit' "
            "(NaN ignored in each window).",
            param="nan_policy", value=nan_policy, expected="'propagate' or 'omit'",
        )
    return nan_policy == "omit"


def _finish(result, output, input):
    """Write `result` into `output` as scipy's C code stores it; return what scipy returns."""
    if result is output:
        return output
    if result.dtype == output.dtype:
        output[...] = result
    else:
        _args.store(result.astype(np.float64), output)
    return output


def _result_buffer(output, a, dtype):
    """Where a kernel writes: `output` itself when it can take the kernel's values as they are
    (its dtype, C-contiguous, apart from the input), else a fresh array for `_finish`."""
    if output.dtype == dtype and output.flags.c_contiguous and not _args.overlaps(a, output):
        return output
    return np.empty(a.shape, dtype)


def _output(output, a):
    """scipy's output rules; a fresh result is left uninitialised (every cell is written)."""
    if output is None:
        return np.empty(a.shape, np.dtype(a.dtype.name))  # by name: native byte order
    return _args.get_output(output, a)


# -- box minimum / maximum, one axis at a time -----------------------------------------


def _minmax_axis(a, axis, size, lo, code, cval, is_min, out, check_nan=True):
    """One scipy min/max pass along `axis` into `out` (C-contiguous, a's dtype; cval of it).

    Returns whether NaN or -0.0 was found (and scipy's own steps were run: which of
    two equal zeros a window keeps is its deque's choice, the newest).
    """
    n = a.shape[axis]
    if a.size == 0:
        return False
    nan = check_nan and a.dtype.kind == "f" and (
        win.contains_nan(a, negative_zeros=True)
        or (code == win.FILL and win.is_nan_or_negative_zero(cval)))
    if nan:
        moved = np.moveaxis(a, axis, -1)
        lines = np.ascontiguousarray(moved).reshape(-1, n)
        res = np.empty_like(lines)
        ko.minmax_lines_exact(lines, res, size, lo, code, cval, is_min)
        out[...] = np.moveaxis(res.reshape(moved.shape), -1, axis)
        return True
    outer = int(np.prod(a.shape[:axis], dtype=np.int64))
    inner = int(np.prod(a.shape[axis + 1:], dtype=np.int64))
    if inner == 1:
        ko.minmax_last_axis(a.reshape(outer, n), out.reshape(outer, n), size, lo, code, cval,
                            is_min)
    else:
        ko.minmax_middle_axis(a.reshape(outer, n, inner), out.reshape(outer, n, inner), size,
                              lo, code, cval, is_min)
    return False


def _box_work(a, cval, code):
    """The dtype a box pass computes in, and cval in it (scipy computes in float64)."""
    dtype = win.kernel_dtype(a.dtype)
    if dtype.kind == "f" or code != win.FILL or win.fits(cval, dtype):
        return dtype, win.c_cast(cval, dtype)
    return np.dtype(np.float64), np.float64(cval)


def _minmax_box_fused(a, passes, output, cval, is_min):
    """Both passes of a box over the last two axes in one kernel; False where it does not apply.

    It applies when the two passes compute in the output's dtype (no store in
    between to round) and the data hold no NaN nor -0.0 (one pass per axis then
    gives the same bits in either order; the kernel counts both as it goes and
    its result is dropped when it finds any).
    """
    nd = a.ndim
    if len(passes) != 2 or {p[0] for p in passes} != {nd - 2, nd - 1} or a.size == 0:
        return False
    by_axis = {axis: (size, origin, code) for axis, size, origin, code in passes}
    (ky, oy, cy), (kx, ox, cx) = by_axis[nd - 2], by_axis[nd - 1]
    dtype, cv = _box_work(a, cval, cy)
    if _box_work(a, cval, cx)[0] != dtype or output.dtype != dtype:
        return False
    if dtype.kind == "f" and win.is_nan_or_negative_zero(cv):
        return False
    src = np.ascontiguousarray(a, dtype=dtype)
    shape3 = (-1,) + a.shape[-2:]
    nan = ko.minmax_box2d(src.reshape(shape3), output.reshape(shape3), ky, ky // 2 + oy, cy,
                          kx, kx // 2 + ox, cx, cv, is_min, 8 * numba.get_num_threads(),
                          dtype.kind == "f")
    return nan == 0


def _minmax_box(a, passes, output, cval, is_min):
    """Box min/max as scipy does: one pass per axis, each stored into the output's dtype.

    `output` is C-contiguous and does not overlap `a`.
    """
    if not passes:
        output[...] = a
        return output
    if _minmax_box_fused(a, passes, output, cval, is_min):
        return output
    cur = a
    may_have_nan = True
    for k, (axis, size, origin, code) in enumerate(passes):
        last = k == len(passes) - 1
        dtype, cv = _box_work(cur, cval, code)
        src = np.ascontiguousarray(cur, dtype=dtype)
        dst = output if last and output.dtype == dtype else np.empty(cur.shape, dtype)
        found = _minmax_axis(src, axis, size, size // 2 + origin, code, cv, is_min, dst,
                             check_nan=may_have_nan)
        # A pass over data free of NaN and -0.0, with a cval neither, gives such data.
        may_have_nan = found or (code == win.FILL and win.is_nan_or_negative_zero(cv))
        if last:
            return _finish(dst, output, a)
        cur = dst if dtype == output.dtype else _finish(dst, np.empty(cur.shape, output.dtype), a)
    return output


# -- footprint minimum / maximum ---------------------------------------------------------


def _runs(footprint2d):
    """The footprint's True runs along its last axis: (row, start, length) arrays."""
    dy, xs, ls = [], [], []
    for r, row in enumerate(footprint2d):
        c = 0
        while c < row.size:
            if row[c]:
                s = c
                while c < row.size and row[c]:
                    c += 1
                dy.append(r)
                xs.append(s)
                ls.append(c - s)
            else:
                c += 1
    as_arr = lambda v: np.array(v, np.int64)  # noqa: E731
    return as_arr(dy), as_arr(xs), as_arr(ls)


def _minmax_footprint(a, footprint, origins, code, cval, output, is_min):
    dtype = win.kernel_dtype(a.dtype)
    cv = win.c_cast(cval, dtype)
    src = np.ascontiguousarray(a, dtype=dtype)
    lo, hi = win.window_bounds(footprint.shape, origins)
    padded = win.pad(src, lo, hi, [code] * a.ndim, cv)
    result = _result_buffer(output, a, dtype)
    if a.size == 0:
        return _finish(result, output, a)
    wide = [k for k, f in enumerate(footprint.shape) if f > 1]
    nan = dtype.kind == "f" and code == win.FILL and cv != cv
    if not nan and a.ndim >= 2 and all(k >= a.ndim - 2 for k in wide):
        fp2 = footprint.reshape(footprint.shape[-2:])
        dy, xs, ls = _runs(fp2)
        levels = int(ls.max()).bit_length()
        shape3 = (-1,) + padded.shape[-2:]
        # The kernel counts NaN as it goes (no parallel region of its own): NaN found, its
        # result is dropped for scipy's own steps below.
        nan = ko.minmax_runs(padded.reshape(shape3), result.reshape((-1,) + a.shape[-2:]), dy,
                             xs, ls, levels, is_min, lo[-2], dtype.kind == "f") > 0
    else:
        nan = True
    if nan:
        offsets = win.flat_offsets(footprint, padded.shape)
        bases = win.row_bases(a.shape, padded.shape)
        ko.minmax_gather(padded.reshape(-1), bases, result.reshape(win.as_rows(a.shape)),
                         offsets, is_min, False)
    return _finish(result, output, a)


def _omit_nan_minmax(run, a, cval, is_min):
    """min/max ignoring NaN: NaN as the identity, then NaN where a window held NaN only."""
    ident = np.inf if is_min else -np.inf
    filled = np.where(np.isnan(a), a.dtype.type(ident), a)
    cval_filled = ident if cval != cval else cval
    result = run(filled, cval_filled)
    all_nan = run(np.isnan(a).astype(np.uint8), float(cval != cval), minimum=True)
    result[all_nan.astype(bool)] = np.nan
    return result


def _footprint_rank(footprint, axes, box_as_sizes):
    """scipy's errors for a footprint with the wrong number of axes (before anything else)."""
    if footprint is None:
        return
    fp = np.asarray(footprint, dtype=bool)
    if not fp.any() or fp.ndim == len(axes):
        return
    if box_as_sizes and fp.all():
        raise _args.NdimageRuntimeError(
            f"sequence argument must have length equal to input rank: footprint has "
            f"{fp.ndim} axes for {len(axes)} filtered axes.",
            param="footprint", value=fp.shape, expected=f"{len(axes)}-D")
    raise _args.NdimageRuntimeError(
        f"footprint.ndim ({fp.ndim}) must match len(axes) ({len(axes)})",
        param="footprint", value=fp.shape, expected=f"{len(axes)}-D")


@win.serial_when_small
def _min_or_max(input, size, footprint, output, mode, cval, origin, axes, is_min, nan_policy):
    omit = _check_nan_policy(nan_policy)
    a = _args.as_input(input, complex_ok=False)
    axes = _args.normalize_axes(axes, a.ndim)
    _footprint_rank(footprint, axes, True)
    sizes, fp = _args.sizes_or_footprint(size, footprint, axes, a.ndim)
    cval = _args.as_float_cval(cval)
    if omit and a.dtype.kind == "f":
        def run(x, cv, minimum=is_min):
            return _min_or_max(x, size, footprint, None if x.dtype == a.dtype else x.dtype,
                               mode, cv, origin, axes, minimum, "propagate")
        return _finish(_omit_nan_minmax(run, a, cval, is_min), _output(output, a), a)
    output = _output(output, a)
    if fp is None:
        origins = _args.per_axis(origin, len(axes), param="origin")
        modes = _args.per_axis(mode, len(axes), param="mode")
        box = [sizes[ax] for ax in axes]
        passes = []
        for ax, s, o, m in zip(axes, box, origins, modes):
            code = _args.mode_code(m)
            if s > 1:
                passes.append((ax, s, _args.check_origin(o, s), code))
        fresh = output.flags.c_contiguous and not _args.overlaps(a, output)
        temp = output if fresh else np.empty(output.shape, output.dtype)
        res = _minmax_box(a, passes, temp, cval, is_min)
        if res is not output:
            output[...] = res
        return output
    origins = _args.origins_for(origin, axes, a.ndim)
    origins = [_args.check_origin(o, f) for o, f in zip(origins, fp.shape)]
    if not isinstance(mode, str) and isinstance(mode, Iterable):
        raise _args.NdimageRuntimeError(
            f"mode={mode!r}: a sequence of modes is not supported for non-separable "
            "footprints; give one mode.",
            param="mode", value=mode, expected="one mode name",
        )
    code = _args.mode_code(mode)
    return _minmax_footprint(a, fp, origins, code, cval, output, is_min)


def _window_reach(ndim, size=None, footprint=None, origin=0, axes=None, **_):
    """Cells a window reaches from its point on each axis (the halo a dask chunk needs)."""
    axes = _args.normalize_axes(axes, ndim)
    if footprint is not None:
        shape = np.shape(footprint)
        ext = list(shape) if len(shape) == ndim else _args.expand_to_rank(shape, axes, ndim, 1)
    else:
        ext = _args.expand_to_rank(_args.per_axis(size, len(axes), param="size"), axes, ndim,
                                   1)
    origins = _args.origins_for(origin, axes, ndim)
    lo, hi = win.window_bounds([int(e) for e in ext], [int(o) for o in origins])
    return [max(l, h, 0) for l, h in zip(lo, hi)]


def _line_reach(ndim, size, axis=-1, origin=0, **_):
    reach = [0] * ndim
    lo, hi = win.window_bounds([int(size)], [int(origin)])
    reach[_args.normalize_axis(axis, ndim)] = max(lo[0], hi[0], 0)
    return reach


@dask_aware(_line_reach)
def minimum_filter1d(input, size, axis=-1, output=None, mode="reflect", cval=0.0, origin=0,
                     *, nan_policy="propagate"):
    """Calculate a 1-D minimum filter along the given axis (scipy.ndimage.minimum_filter1d).

    scipy's signature and results; O(1) comparisons per point whatever `size`.

    Parameters
    ----------
    input : array_like
    size : int
        Length of the window.
    axis : int, optional
    output : ndarray or dtype, optional
    mode : {'reflect', 'constant', 'nearest', 'mirror', 'wrap', 'grid-*'}, optional
    cval : scalar, optional
    origin : int, optional
    nan_policy : {'propagate', 'omit'}, optional
        Keyword-only extra: 'omit' ignores NaN in each window.

    Returns
    -------
    ndarray

    Examples
    --------
    >>> from stencils import ndimage as ndi
    >>> ndi.minimum_filter1d([2, 8, 0, 4, 1, 9, 9, 0], size=3)
    array([2, 0, 0, 0, 1, 1, 0, 0])
    """
    return _min_or_max_1d(input, size, axis, output, mode, cval, origin, True, nan_policy)


@dask_aware(_line_reach)
def maximum_filter1d(input, size, axis=-1, output=None, mode="reflect", cval=0.0, origin=0,
                     *, nan_policy="propagate"):
    """Calculate a 1-D maximum filter along the given axis (scipy.ndimage.maximum_filter1d).

    Parameters and results as `minimum_filter1d`, with the maximum.

    Examples
    --------
    >>> from stencils import ndimage as ndi
    >>> ndi.maximum_filter1d([2, 8, 0, 4, 1, 9, 9, 0], size=3)
    array([8, 8, 8, 4, 9, 9, 9, 9])
    """
    return _min_or_max_1d(input, size, axis, output, mode, cval, origin, False, nan_policy)


def _min_or_max_1d(input, size, axis, output, mode, cval, origin, is_min, nan_policy):
    a = _args.as_input(input, complex_ok=False)
    ax = _args.normalize_axis(axis, a.ndim)
    if not isinstance(size, numbers.Integral) or isinstance(size, bool):
        raise StencilTypeError(f"size={size!r} is not an integer.", param="size", value=size,
                               expected="an integer >= 1")
    if size < 1:
        raise _args.NdimageRuntimeError(f"incorrect filter size: size={size}, expected >= 1.",
                                        param="size", value=size, expected=">= 1")
    if not isinstance(mode, str):
        _args.mode_code(mode)
    _args.check_origin(origin, size)
    return _min_or_max(a, size, None, output, mode, cval, origin, (ax,), is_min, nan_policy)


@dask_aware(_window_reach)
def minimum_filter(input, size=None, footprint=None, output=None, mode="reflect", cval=0.0,
                   origin=0, *, axes=None, nan_policy="propagate"):
    """Calculate a multidimensional minimum filter (scipy.ndimage.minimum_filter).

    A box (``size``, or a footprint of all True) runs one axis at a time in
    O(1) comparisons per point; other footprints run as runs along the last
    axis (``mode`` may then not be a sequence, as in scipy).

    Parameters
    ----------
    input : array_like
    size : int or sequence of int, optional
    footprint : array of bool, optional
    output : ndarray or dtype, optional
    mode : str or sequence of str, optional
    cval : scalar, optional
    origin : int or sequence of int, optional
    axes : int or tuple of int, optional
    nan_policy : {'propagate', 'omit'}, optional
        Keyword-only extra: 'omit' ignores NaN in each window.

    Returns
    -------
    ndarray

    Examples
    --------
    >>> import numpy as np
    >>> from stencils import ndimage as ndi
    >>> ndi.minimum_filter(np.array([[3, 1, 2], [4, 0, 5], [6, 7, 8]]), size=2)
    array([[3, 1, 1],
           [3, 0, 0],
           [4, 0, 0]])
    """
    return _min_or_max(input, size, footprint, output, mode, cval, origin, axes, True,
                       nan_policy)


@dask_aware(_window_reach)
def maximum_filter(input, size=None, footprint=None, output=None, mode="reflect", cval=0.0,
                   origin=0, *, axes=None, nan_policy="propagate"):
    """Calculate a multidimensional maximum filter (scipy.ndimage.maximum_filter).

    Parameters and results as `minimum_filter`, with the maximum.

    Examples
    --------
    >>> import numpy as np
    >>> from stencils import ndimage as ndi
    >>> disk = np.array([[0, 1, 0], [1, 1, 1], [0, 1, 0]], bool)
    >>> ndi.maximum_filter(np.eye(3), footprint=disk, mode="constant")
    array([[1., 1., 0.],
           [1., 1., 1.],
           [0., 1., 1.]])
    """
    return _min_or_max(input, size, footprint, output, mode, cval, origin, axes, False,
                       nan_policy)


# -- rank, median, percentile ---------------------------------------------------------------


def _rank_of(operation, rank, filter_size):
    if operation == "median":
        return filter_size // 2
    if operation == "percentile":
        percentile = rank
        if not isinstance(percentile, numbers.Real):
            raise StencilTypeError(f"percentile={percentile!r} is not a number.",
                                   param="percentile", value=percentile, expected="a number")
        if percentile < 0.0:
            percentile += 100.0
        if percentile < 0 or percentile > 100:
            raise _args.NdimageRuntimeError(
                f"invalid percentile: percentile={rank!r}, expected -100 .. 100.",
                param="percentile", value=rank, expected="-100 .. 100")
        if percentile == 100.0:
            return filter_size - 1
        return int(float(filter_size) * percentile / 100.0)
    if not isinstance(rank, numbers.Integral) or isinstance(rank, bool):
        raise StencilTypeError(f"rank={rank!r} is not an integer.", param="rank", value=rank,
                               expected="an integer")
    return int(rank)


@win.serial_when_small
def _rank(input, rank, size, footprint, output, mode, cval, origin, operation, axes,
          nan_policy):
    omit = _check_nan_policy(nan_policy)
    a = _args.as_input(input, complex_ok=False)
    axes = _args.normalize_axes(axes, a.ndim)
    _footprint_rank(footprint, axes, False)
    sizes, fp = _args.sizes_or_footprint(size, footprint, axes, a.ndim)
    if fp is None:  # a box: from size (scipy's order of axes) or an all-True footprint
        fp = win.box_footprint(sizes, axes, a.ndim) if footprint is None else np.ones(sizes, bool)
    origins = _args.origins_for(origin, axes, a.ndim)
    origins = [_args.check_origin(o, f) for o, f in zip(origins, fp.shape)]
    filter_size = int(fp.sum())
    requested = _rank_of(operation, rank, filter_size)
    r = requested + filter_size if requested < 0 else requested
    if r < 0 or r >= filter_size:
        raise _args.NdimageRuntimeError(
            f"rank not within filter footprint size: rank={rank!r} for a window of "
            f"{filter_size} cells, expected {-filter_size} .. {filter_size - 1}.",
            param="rank", value=rank, expected=f"{-filter_size} .. {filter_size - 1}")
    cval = _args.as_float_cval(cval)
    if not omit or a.dtype.kind != "f":
        if r == 0 or r == filter_size - 1:
            return _min_or_max(a, None, fp, output, _args.expand_to_rank(
                _args.per_axis(mode, len(axes), param="mode"), axes, a.ndim, "constant")
                if not isinstance(mode, str) else mode, cval, origins, None, r == 0,
                "propagate")
    if not isinstance(mode, str) and isinstance(mode, Iterable):
        raise _args.NdimageRuntimeError(
            f"mode={mode!r}: a sequence of modes is not supported by non-separable rank "
            "filters; give one mode.", param="mode", value=mode, expected="one mode name")
    code = _args.mode_code(mode)
    output = _output(output, a)
    kind = {"median": ko.MEDIAN, "percentile": ko.PERCENTILE}.get(operation, ko.RANK)
    omit_rank = requested if operation == "rank" else r
    pct = float(rank) if operation == "percentile" else 0.0
    pct = pct + 100.0 if pct < 0 else pct
    return _rank_compute(a, fp, origins, code, cval, output, r, kind, omit_rank, pct, omit)


def _rank_work(a, cval, code):
    """Working dtype and cval of a rank filter (scipy: the input's type, cval cast as C casts)."""
    dtype = win.kernel_dtype(a.dtype)
    one_d = a.ndim == 1
    if one_d and dtype.kind in "iub" and code == win.FILL and not win.fits(cval, dtype):
        # scipy's 1-D path computes integers in int64 with cval truncated.
        return np.dtype(np.int64), np.int64(int(cval)) if cval == cval else np.int64(0)
    return dtype, win.c_cast(cval, dtype)


def _rank_compute(a, fp, origins, code, cval, output, r, kind, omit_rank, pct, omit):
    dtype, cv = _rank_work(a, cval, code)
    src = np.ascontiguousarray(a, dtype=dtype)
    lo, hi = win.window_bounds(fp.shape, origins)
    result = np.empty(a.shape, dtype)
    if a.size == 0:
        return _finish(result, output, a)
    if not omit:
        done = _network_rank(src, fp, r, lo, code, cv, output, a)
        if done is None:
            done = _histogram_rank(src, fp, r, lo, code, cv, output, a)
        if done is not None:
            return done
    padded = win.pad(src, lo, hi, [code] * a.ndim, cv)
    scipy_steps = (a.ndim == 1 and not omit and dtype.kind == "f"
                   and win.contains_nan(padded, negative_zeros=True))
    if scipy_steps and _scipy_1d_path(a, fp, origins):
        return _scipy_rank_1d(a, r, fp, output, code, cval, origins)
    offsets = win.flat_offsets(fp, padded.shape)
    bases = win.row_bases(a.shape, padded.shape)
    ko.rank_gather(padded.reshape(-1), bases, result.reshape(win.as_rows(a.shape)), offsets,
                   kind, omit_rank if omit else r, pct, omit)
    return _finish(result, output, a)


def _network_rank(src, fp, r, lo, code, cv, output, a):
    """The rank by a selection network, straight into `output` where it can; None if no
    network applies or the data hold NaN or -0.0 (whose places only scipy's steps give)."""
    kernel = network_kernel(fp, r, src.dtype)
    if kernel is None or (src.dtype.kind == "f" and code == win.FILL
                          and win.is_nan_or_negative_zero(cv)):
        return None
    src3, result, rowmap, colmap = _box_rows(src, fp, lo, code, output, a)
    nan = kernel(src3, result.reshape(src3.shape), rowmap, colmap, cv, lo[-1],
                 src.dtype.kind == "f", BAND)
    if nan:
        return None
    return _finish(result, output, a)


def _box_rows(src, fp, lo, code, output, a):
    """What a kernel over a box on the last two axes reads and writes: the source as
    (outer, H, W), the result buffer, and the row and column extension maps."""
    (H, W), (h, w) = src.shape[-2:], fp.shape[-2:]
    rowmap = ko.extension_map(H, lo[-2], H + h - 1, code)
    colmap = ko.extension_map(W, lo[-1], W + w - 1, code)
    return src.reshape(-1, H, W), _result_buffer(output, a, src.dtype), rowmap, colmap


def _histogram_rank(src, fp, r, lo, code, cv, output, a):
    """The rank by a running histogram (`rank_histogram`), straight into `output`, for
    8-bit integers over a box on the last two axes; None elsewhere."""
    if src.dtype not in _HISTOGRAM_OFFSETS or not fp.all() or fp.ndim < 2:
        return None
    if any(f > 1 for f in fp.shape[:-2]):
        return None
    src3, result, rowmap, colmap = _box_rows(src, fp, lo, code, output, a)
    h, w = fp.shape[-2:]
    ko.rank_histogram(src3, result.reshape(src3.shape), rowmap, colmap, cv, h, w, r,
                      _HISTOGRAM_OFFSETS[src.dtype], BAND)
    return _finish(result, output, a)


# The dtypes a running histogram serves (its 256 bins), and the value of bin 0.
_HISTOGRAM_OFFSETS = {np.dtype(np.uint8): 0, np.dtype(np.int8): -128}


def _scipy_1d_path(a, fp, origins):
    lim2 = a.size - ((fp.size - 1) // 2 - origins[0])
    return lim2 >= 0 or a.size == 1


def _scipy_rank_1d(a, r, fp, output, code, cval, origins):
    """1-D input holding NaN or -0.0: scipy's own 1-D rank filter (a two-heap mediator
    whose NaN placement, and choice between equal zeros, depend on its heap order), so the
    result is scipy's to the bit.

    Through scipy's private ``_rank_filter``: the public names may be ours (scipy's
    test suite runs with them replaced)."""
    from scipy.ndimage import _filters

    mode = {v: k for k, v in reversed(list(_args._MODE_CODES.items()))}[code]
    return _filters._rank_filter(a, r, footprint=fp, output=output, mode=mode, cval=cval,
                                 origin=origins[0], operation="rank")


@dask_aware(_window_reach)
def rank_filter(input, rank, size=None, footprint=None, output=None, mode="reflect",
                cval=0.0, origin=0, *, axes=None, nan_policy="propagate"):
    """Calculate a multidimensional rank filter (scipy.ndimage.rank_filter).

    Small boxes (up to 5x5) run a generated selection network; other windows
    gather each window and select by scipy's own quickselect.

    Parameters
    ----------
    input : array_like
    rank : int
        Negative counts from the top (-1: the maximum).
    size, footprint, output, mode, cval, origin, axes
        As scipy.ndimage.rank_filter.
    nan_policy : {'propagate', 'omit'}, optional
        Keyword-only extra: 'omit' leaves NaN out of each window and takes
        the rank among the values left (clipped to them).

    Returns
    -------
    ndarray

    Examples
    --------
    >>> from stencils import ndimage as ndi
    >>> ndi.rank_filter([1, 5, 2, 8, 3], rank=1, size=3)
    array([1, 2, 5, 3, 3])
    """
    return _rank(input, rank, size, footprint, output, mode, cval, origin, "rank", axes,
                 nan_policy)


@dask_aware(_window_reach)
def median_filter(input, size=None, footprint=None, output=None, mode="reflect", cval=0.0,
                  origin=0, *, axes=None, nan_policy="propagate"):
    """Calculate a multidimensional median filter (scipy.ndimage.median_filter).

    Parameters as `rank_filter` without ``rank``: the median is the rank
    ``cells // 2`` (the upper median for an even window, as scipy).

    Examples
    --------
    >>> import numpy as np
    >>> from stencils import ndimage as ndi
    >>> ndi.median_filter(np.array([1.0, 9.0, 2.0, np.nan, 3.0]), size=3, nan_policy="omit")
    array([1., 2., 9., 3., 3.])
    """
    return _rank(input, 0, size, footprint, output, mode, cval, origin, "median", axes,
                 nan_policy)


@dask_aware(_window_reach)
def percentile_filter(input, percentile, size=None, footprint=None, output=None,
                      mode="reflect", cval=0.0, origin=0, *, axes=None,
                      nan_policy="propagate"):
    """Calculate a multidimensional percentile filter (scipy.ndimage.percentile_filter).

    ``percentile`` in -100 .. 100 (negative: ``percentile + 100``); the rank is
    ``int(cells * percentile / 100)``, the last cell for 100, as scipy.

    Examples
    --------
    >>> from stencils import ndimage as ndi
    >>> ndi.percentile_filter([1, 5, 2, 8, 3], percentile=20, size=5, mode="nearest")
    array([1, 1, 2, 3, 3])
    """
    return _rank(input, percentile, size, footprint, output, mode, cval, origin,
                 "percentile", axes, nan_policy)
