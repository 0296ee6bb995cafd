"""`stencils.ndimage` side by side with scipy.ndimage, OpenCV and dask-image.

4096^2 float32 (512^2 with ``--quick``); run with ``python -m benchmarks --only ndimage``.
Ours and scipy give bit-equal results (checked); OpenCV rounds differently
(float32 arithmetic), so its rows are checked to 1e-4, as is our opt-in
``compute_dtype=np.float32`` Gaussian (float32 sums).

Adding rows (the order-statistics and generic filters go here too): write a
``_<name>_setup(quick)`` returning ``[Implementation(ours...), peers...]``
(ours first: it is the reference for ratios and checks; a missing peer is a
``Skipped``), then append a ``Workload(name, description, setup,
group="ndimage", bytes=..., ops=...)`` to ``WORKLOADS`` below.  Use `_image`
for the input and keep ``--quick`` small (CI runs it).
"""

from __future__ import annotations

import numpy as np

from stencils import ndimage as ours

from ._harness import Implementation, Skipped, Workload, allclose

try:
    import scipy.ndimage as sn
except ImportError:  # pragma: no cover - optional peer
    sn = None
try:
    import cv2
except ImportError:  # pragma: no cover - optional peer
    cv2 = None

GROUP = "ndimage"
_EXACT = allclose(0, 0)
_CV2_CLOSE = allclose(1e-4, 1e-4)


def _side(quick):
    return 512 if quick else 4096


def _image(quick, side=None):
    side = side or _side(quick)
    return np.random.default_rng(0).random((side, side), dtype=np.float32)


def _scipy(name, run):
    if sn is None:
        return Skipped(name, "scipy is not installed")
    return Implementation(name, run, _EXACT, "1 thread")


def _cv2(name, run):
    if cv2 is None:
        return Skipped(name, "opencv-python is not installed")
    return Implementation(name, run, _CV2_CLOSE, "float32 arithmetic")


def _gaussian_setup(quick):
    a = _image(quick)
    out, sp_out, f32_out, cv_out = (np.empty_like(a) for _ in range(4))
    # Every side writes into an output allocated once, as the first rows do.  A new
    # 64 MB output per call costs its page faults and the kernel's zero-filling,
    # several milliseconds for either library: the last two rows show that cost.
    return [
        Implementation("stencils.ndimage.gaussian_filter", lambda: ours.gaussian_filter(
            a, 2.0, output=out)),
        _scipy("scipy.ndimage.gaussian_filter", lambda: sn.gaussian_filter(
            a, 2.0, output=sp_out)),
        Implementation("stencils.ndimage.gaussian_filter compute_dtype=float32", lambda:
                       ours.gaussian_filter(a, 2.0, output=f32_out, compute_dtype=np.float32),
                       _CV2_CLOSE, "float32 sums (opt-in)"),
        _cv2("cv2.GaussianBlur 17x17", lambda: cv2.GaussianBlur(
            a, (17, 17), 2.0, dst=cv_out, borderType=cv2.BORDER_REFLECT)),
        Implementation("stencils.ndimage.gaussian_filter, a new output per call", lambda:
                       ours.gaussian_filter(a, 2.0), _EXACT, "allocates its output per call"),
        _cv2("cv2.GaussianBlur 17x17, a new dst per call", lambda: cv2.GaussianBlur(
            a, (17, 17), 2.0, borderType=cv2.BORDER_REFLECT)),
    ]


def _uniform_setup(quick):
    a = _image(quick)
    out, sp_out, cv_out = np.empty_like(a), np.empty_like(a), np.empty_like(a)
    return [
        Implementation("stencils.ndimage.uniform_filter", lambda: ours.uniform_filter(
            a, 15, output=out)),
        _scipy("scipy.ndimage.uniform_filter", lambda: sn.uniform_filter(
            a, 15, output=sp_out)),
        _cv2("cv2.blur 15x15", lambda: cv2.blur(a, (15, 15), dst=cv_out,
                                                borderType=cv2.BORDER_REFLECT)),
    ]


def _sobel_setup(quick):
    a = _image(quick)
    d0, d1 = ours.sobel(a, 0), ours.sobel(a, 1)
    return [
        Implementation("stencils.ndimage.sobel x2 + np.hypot", lambda: np.hypot(
            ours.sobel(a, 0), ours.sobel(a, 1))),
        _scipy("scipy.ndimage.sobel x2 + np.hypot", lambda: np.hypot(
            sn.sobel(a, 0), sn.sobel(a, 1))),
        # NumPy's hypot (one thread) is part of both sides: above 1/10 of scipy's time
        # alone, so this row cannot reach 10x scipy whatever the filters take.
        Implementation("np.hypot alone (in both rows above)", lambda: np.hypot(d0, d1),
                       note="1 thread; not a filter"),
    ]


def _sobel_magnitude_setup(quick):
    a = _image(quick)
    out, sp_out = np.empty_like(a), np.empty_like(a)
    return [
        Implementation("stencils.ndimage.generic_gradient_magnitude(sobel)", lambda:
                       ours.generic_gradient_magnitude(a, ours.sobel, output=out)),
        _scipy("scipy.ndimage.generic_gradient_magnitude(sobel)", lambda:
               sn.generic_gradient_magnitude(a, sn.sobel, output=sp_out)),
    ]


def _ggm_setup(quick):
    a = _image(quick)
    out, sp_out = np.empty_like(a), np.empty_like(a)
    return [
        Implementation("stencils.ndimage.gaussian_gradient_magnitude", lambda:
                       ours.gaussian_gradient_magnitude(a, 2.0, output=out)),
        _scipy("scipy.ndimage.gaussian_gradient_magnitude", lambda:
               sn.gaussian_gradient_magnitude(a, 2.0, output=sp_out)),
    ]


def _dask_side(quick):
    return (1024, 256) if quick else (8192, 2048)


def _dask_gaussian_setup(quick):
    """`.compute()` to one NumPy array (the row's target), and `.persist()`: the chunks
    computed and kept, without dask's final concatenation into one array (a copy of
    the whole result into fresh memory, alike for both, that moves with the machine)."""
    try:
        import dask
        import dask.array as da
    except ImportError:
        return [Skipped("stencils.ndimage.gaussian_filter (dask)", "dask is not installed")]
    side, chunk = _dask_side(quick)
    a = da.from_array(_image(quick, side), chunks=chunk)

    def run(func, finish="compute"):
        with dask.config.set(scheduler="threads", num_workers=_threads()):
            result = getattr(func(a, 2.0), finish)()
        return result if finish == "compute" else None

    impls = [Implementation("stencils.ndimage.gaussian_filter (dask)",
                            lambda: run(ours.gaussian_filter))]
    try:
        from dask_image import ndfilters
    except ImportError:
        impls.append(Skipped("dask_image.ndfilters.gaussian_filter", "dask-image is not installed"))
        return impls
    impls.append(Implementation("dask_image.ndfilters.gaussian_filter",
                                lambda: run(ndfilters.gaussian_filter), _EXACT,
                                "scipy per chunk"))
    if not quick:
        impls += [Implementation("stencils.ndimage.gaussian_filter (dask), persist",
                                 lambda: run(ours.gaussian_filter, "persist"),
                                 note="chunks kept, not concatenated"),
                  Implementation("dask_image.ndfilters.gaussian_filter, persist",
                                 lambda: run(ndfilters.gaussian_filter, "persist"),
                                 note="chunks kept, not concatenated")]
    return impls


def _threads():
    import numba

    return numba.get_num_threads()


def _pixels(quick):
    return float(_side(quick)) ** 2


WORKLOADS = [
    Workload("ndi-gaussian-f32", "gaussian_filter(sigma=2), 17 taps per axis, 4096^2 float32 "
             "(512^2 with --quick), 'reflect'", _gaussian_setup, group=GROUP,
             bytes=lambda q: 8 * _pixels(q), ops=lambda q: 2 * 17 * _pixels(q)),
    Workload("ndi-uniform-f32", "uniform_filter(size=15), 4096^2 float32, 'reflect'",
             _uniform_setup, group=GROUP, bytes=lambda q: 8 * _pixels(q),
             ops=lambda q: 2 * 3 * _pixels(q)),
    Workload("ndi-sobel-hypot-f32", "sobel along both axes + np.hypot, 4096^2 float32",
             _sobel_setup, group=GROUP, bytes=lambda q: 16 * _pixels(q),
             ops=lambda q: 4 * 3 * _pixels(q)),
    Workload("ndi-sobel-magnitude-f32", "generic_gradient_magnitude(derivative=sobel): "
             "sqrt(sobel_0**2 + sobel_1**2) as scipy computes it, 4096^2 float32",
             _sobel_magnitude_setup, group=GROUP, bytes=lambda q: 16 * _pixels(q),
             ops=lambda q: 4 * 3 * _pixels(q)),
    Workload("ndi-ggm-f32", "gaussian_gradient_magnitude(sigma=2), 4096^2 float32",
             _ggm_setup, group=GROUP, bytes=lambda q: 16 * _pixels(q),
             ops=lambda q: 4 * 17 * _pixels(q)),
    Workload("ndi-dask-gaussian-f32", "gaussian_filter(sigma=2) of a dask array, 8192^2 "
             "float32 in 2048^2 chunks (1024^2 in 256^2 with --quick), threaded scheduler",
             _dask_gaussian_setup, group=GROUP,
             bytes=lambda q: 8.0 * _dask_side(q)[0] ** 2,
             ops=lambda q: 2 * 17.0 * _dask_side(q)[0] ** 2, repeats=5),
]


# -- order statistics and user functions (stencils.ndimage._order, _generic) ----------------


def _disk(radius):
    y, x = np.mgrid[-radius:radius + 1, -radius:radius + 1]
    return x * x + y * y <= radius * radius


def _max_box_setup(quick):
    a = _image(quick)
    out, sp_out, cv_out = (np.empty_like(a) for _ in range(3))
    rect = None if cv2 is None else np.ones((15, 15), np.uint8)
    return [
        Implementation("stencils.ndimage.maximum_filter", lambda: ours.maximum_filter(
            a, size=15, output=out)),
        _scipy("scipy.ndimage.maximum_filter", lambda: sn.maximum_filter(
            a, size=15, output=sp_out)),
        # dilate ignores cells past the edge, which equals 'reflect' for a box maximum.
        Implementation("cv2.dilate 15x15 rectangle", lambda: cv2.dilate(
            a, rect, dst=cv_out), _EXACT, "same values") if cv2 is not None else Skipped(
            "cv2.dilate 15x15 rectangle", "opencv-python is not installed"),
    ]


def _max_disk_setup(quick):
    a = _image(quick)
    out, sp_out, cv_out = (np.empty_like(a) for _ in range(3))
    disk = _disk(7)
    impls = [
        Implementation("stencils.ndimage.maximum_filter disk r=7", lambda: ours.maximum_filter(
            a, footprint=disk, output=out)),
        _scipy("scipy.ndimage.maximum_filter disk r=7", lambda: sn.maximum_filter(
            a, footprint=disk, output=sp_out)),
    ]
    if cv2 is None:
        return impls + [Skipped("cv2.dilate 15x15 ellipse", "opencv-python is not installed")]
    ellipse = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (15, 15))
    return impls + [Implementation("cv2.dilate 15x15 ellipse",
                                   lambda: cv2.dilate(a, ellipse, dst=cv_out),
                                   None, "OpenCV's ellipse is not the same disk: unchecked")]


def _median_setup(quick):
    a = _image(quick)
    out, sp_out, cv_out = (np.empty_like(a) for _ in range(3))
    return [
        Implementation("stencils.ndimage.median_filter", lambda: ours.median_filter(
            a, size=5, output=out)),
        _scipy("scipy.ndimage.median_filter", lambda: sn.median_filter(
            a, size=5, output=sp_out)),
        Implementation("cv2.medianBlur 5", lambda: cv2.medianBlur(a, 5, dst=cv_out), None,
                       "BORDER_REPLICATE edges: unchecked") if cv2 is not None else Skipped(
            "cv2.medianBlur 5", "opencv-python is not installed"),
    ]


def _median15_side(quick):
    return 256 if quick else 1024


def _median15_setup(quick):
    side = _median15_side(quick)
    a = np.random.default_rng(0).integers(0, 256, (side, side)).astype(np.uint8)
    out, sp_out, cv_out = (np.empty_like(a) for _ in range(3))
    return [
        Implementation("stencils.ndimage.median_filter, uint8", lambda: ours.median_filter(
            a, size=15, mode="nearest", output=out)),
        _scipy("scipy.ndimage.median_filter, uint8", lambda: sn.median_filter(
            a, size=15, mode="nearest", output=sp_out)),
        # medianBlur replicates the edge cells, which is 'nearest'.
        Implementation("cv2.medianBlur 15, uint8", lambda: cv2.medianBlur(a, 15, dst=cv_out),
                       _EXACT, "same values") if cv2 is not None else Skipped(
            "cv2.medianBlur 15, uint8", "opencv-python is not installed"),
    ]


def _spread(window):
    return window.max() - window.min()


def _spread_low_level():
    import scipy
    from numba import carray, cfunc, types

    sig = types.intc(types.CPointer(types.double), types.intp, types.CPointer(types.double),
                     types.voidptr)

    @cfunc(sig)
    def spread(values, n, result, user_data):
        w = carray(values, (n,))
        result[0] = w.max() - w.min()
        return 1

    return scipy.LowLevelCallable(spread.ctypes)


def _generic_side(quick):
    return 256 if quick else 1024


def _generic_setup(quick):
    a = _image(quick, _generic_side(quick))
    impls = [Implementation("stencils.ndimage.generic_filter, Python function", lambda:
                            ours.generic_filter(a, _spread, size=5))]
    if sn is None:
        return impls + [Skipped("scipy.ndimage.generic_filter", "scipy is not installed")]
    low_level = _spread_low_level()
    return impls + [
        _scipy("scipy.ndimage.generic_filter, Python function", lambda: sn.generic_filter(
            a, _spread, size=5)),
        _scipy("scipy.ndimage.generic_filter, numba cfunc LowLevelCallable", lambda:
               sn.generic_filter(a, low_level, size=5)),
    ]


def _vectorized_median_setup(quick):
    a = _image(quick, _generic_side(quick))
    return [
        Implementation("stencils.ndimage.vectorized_filter(np.median)", lambda:
                       ours.vectorized_filter(a, np.median, size=5)),
        _scipy("scipy.ndimage.vectorized_filter(np.median)", lambda:
               sn.vectorized_filter(a, np.median, size=5)),
    ]


WORKLOADS += [
    Workload("ndi-maximum-box-f32", "maximum_filter(size=15), 4096^2 float32, 'reflect'",
             _max_box_setup, group=GROUP, bytes=lambda q: 8 * _pixels(q),
             ops=lambda q: 2 * 3 * _pixels(q)),
    Workload("ndi-maximum-disk-f32", "maximum_filter(footprint=disk of radius 7), 4096^2 "
             "float32, 'reflect'", _max_disk_setup, group=GROUP,
             bytes=lambda q: 8 * _pixels(q), ops=lambda q: 2 * 15 * _pixels(q)),
    Workload("ndi-median5-f32", "median_filter(size=5), 4096^2 float32, 'reflect'",
             _median_setup, group=GROUP, bytes=lambda q: 8 * _pixels(q),
             ops=lambda q: 94 * _pixels(q)),
    Workload("ndi-median15-u8", "median_filter(size=15), 1024^2 uint8 (256^2 with --quick), "
             "'nearest': a running histogram", _median15_setup, group=GROUP,
             bytes=lambda q: 2.0 * _median15_side(q) ** 2,
             # Per point: a column of 15 cells out and one in, then the rank's bin moved.
             ops=lambda q: 32.0 * _median15_side(q) ** 2, repeats=3),
    Workload("ndi-generic-spread-f32", "generic_filter(window.max() - window.min(), size=5), "
             "1024^2 float32 (256^2 with --quick)", _generic_setup, group=GROUP,
             bytes=lambda q: 8.0 * _generic_side(q) ** 2,
             # A box's rows shared by its windows: 2 (5 - 1) selects per point along the
             # rows, as many down the columns (the direct count is 50 comparisons).
             ops=lambda q: 16.0 * _generic_side(q) ** 2, repeats=3),
    Workload("ndi-vectorized-median-f32", "vectorized_filter(np.median, size=5), 1024^2 "
             "float32 (256^2 with --quick): ours on median_filter, scipy's over windows",
             _vectorized_median_setup, group=GROUP, bytes=lambda q: 8.0 * _generic_side(q) ** 2,
             ops=lambda q: 94.0 * _generic_side(q) ** 2, repeats=3),
]
