"""`stencils.ndimage` side by side with scipy.ndimage, OpenCV and dask-image.

4096^2 float32 (512^2 with ``--quick``); run with ``python -m benchmarks --only ndimage``.
Ours and scipy give bit-equal results (checked); OpenCV rounds differently
(float32 arithmetic), so its rows are checked to 1e-4.

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
    out, sp_out = np.empty_like(a), np.empty_like(a)
    return [
        Implementation("stencils.ndimage.gaussian_filter", lambda: ours.gaussian_filter(
            a, 2.0, output=out)),
        _scipy("scipy.ndimage.gaussian_filter", lambda: sn.gaussian_filter(
            a, 2.0, output=sp_out)),
        _cv2("cv2.GaussianBlur 17x17", lambda: cv2.GaussianBlur(
            a, (17, 17), 2.0, borderType=cv2.BORDER_REFLECT)),
    ]


def _uniform_setup(quick):
    a = _image(quick)
    out, sp_out = np.empty_like(a), np.empty_like(a)
    return [
        Implementation("stencils.ndimage.uniform_filter", lambda: ours.uniform_filter(
            a, 15, output=out)),
        _scipy("scipy.ndimage.uniform_filter", lambda: sn.uniform_filter(
            a, 15, output=sp_out)),
        _cv2("cv2.blur 15x15", lambda: cv2.blur(a, (15, 15), borderType=cv2.BORDER_REFLECT)),
    ]


def _sobel_setup(quick):
    a = _image(quick)
    return [
        Implementation("stencils.ndimage.sobel x2 + np.hypot", lambda: np.hypot(
            ours.sobel(a, 0), ours.sobel(a, 1))),
        _scipy("scipy.ndimage.sobel x2 + np.hypot", lambda: np.hypot(
            sn.sobel(a, 0), sn.sobel(a, 1))),
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
    try:
        import dask
        import dask.array as da
    except ImportError:
        return [Skipped("stencils.ndimage.gaussian_filter (dask)", "dask is not installed")]
    side, chunk = _dask_side(quick)
    a = da.from_array(_image(quick, side), chunks=chunk)

    def run(func):
        with dask.config.set(scheduler="threads", num_workers=_threads()):
            return func(a, 2.0).compute()

    impls = [Implementation("stencils.ndimage.gaussian_filter (dask)",
                            lambda: run(ours.gaussian_filter))]
    try:
        from dask_image import ndfilters
    except ImportError:
        impls.append(Skipped("dask_image.ndfilters.gaussian_filter", "dask-image is not installed"))
    else:
        impls.append(Implementation("dask_image.ndfilters.gaussian_filter",
                                    lambda: run(ndfilters.gaussian_filter), _EXACT,
                                    "scipy per chunk"))
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
    Workload("ndi-ggm-f32", "gaussian_gradient_magnitude(sigma=2), 4096^2 float32",
             _ggm_setup, group=GROUP, bytes=lambda q: 16 * _pixels(q),
             ops=lambda q: 4 * 17 * _pixels(q)),
    Workload("ndi-dask-gaussian-f32", "gaussian_filter(sigma=2) of a dask array, 8192^2 "
             "float32 in 2048^2 chunks (1024^2 in 256^2 with --quick), threaded scheduler",
             _dask_gaussian_setup, group=GROUP,
             bytes=lambda q: 8.0 * _dask_side(q)[0] ** 2,
             ops=lambda q: 2 * 17.0 * _dask_side(q)[0] ** 2, repeats=3),
]
