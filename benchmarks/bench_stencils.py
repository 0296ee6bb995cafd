"""The stencil core against scipy.ndimage, OpenCV and numba's own @stencil.

Run: ``python -m benchmarks.bench_stencils [--quick] [--only NAME] [--json PATH]``.
Peers that are not installed are skipped with a note.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import textwrap

import numba
import numpy as np

import stencils as st

from ._harness import (Implementation, Workload, allclose, environment, markdown_table,
                       time_workload, write_json)

try:
    import cv2
except ImportError:  # pragma: no cover - optional peer
    cv2 = None
try:
    import scipy.ndimage as ndi
except ImportError:  # pragma: no cover - optional peer
    ndi = None


def _image(quick, dtype=np.float32):
    n = 1024 if quick else 4096
    return np.random.default_rng(0).random((n, n)).astype(dtype)


@numba.njit(parallel=True, cache=True)
def _copy(src, dst):
    a, b = src.reshape(-1), dst.reshape(-1)
    for i in numba.prange(a.shape[0]):
        b[i] = a[i]


def copy_floor(array):
    """The time of one parallel read and one write of `array`: a memory-bound stencil's floor."""
    out = np.empty_like(array)
    _copy(array, out)
    times = []
    for _ in range(7):
        t = __import__("time").perf_counter()
        _copy(array, out)
        times.append(__import__("time").perf_counter() - t)
    return float(np.median(times))


def _numba_stencil_5x5(weights):
    # numba's @stencil only offers its own 'constant' mode (border cells set to cval);
    # the interior is what it computes, so only the interior is compared.
    body = " + ".join(f"np.float32({weights[i, j]!r}) * a[{i - 2}, {j - 2}]"
                      for i in range(5) for j in range(5))
    ns = {"np": np, "numba": numba}
    exec(textwrap.dedent(f"""
        @numba.stencil(neighborhood=((-2, 2), (-2, 2)))
        def kernel(a):
            return {body}

        @numba.njit(parallel=True)
        def run(a, out):
            out[:] = kernel(a)
    """), ns)
    return ns["run"]


def _interior_close(ours, theirs):
    np.testing.assert_allclose(np.asarray(theirs)[2:-2, 2:-2], np.asarray(ours)[2:-2, 2:-2],
                               rtol=1e-5, atol=1e-5)


def _correlation(size, dtype=np.float32, with_numba_stencil=False, scipy_ok=True):
    def setup(quick):
        img = _image(quick, dtype)
        k = np.random.default_rng(1).random((size, size)).astype(dtype)
        out = np.empty_like(img)
        impls = [Implementation("stencils.correlate", lambda: st.correlate(
            img, k, mode="constant", out=out))]
        if cv2 is not None:
            cv_out = np.empty_like(img)
            impls.append(Implementation(
                "cv2.filter2D", lambda: cv2.filter2D(img, -1, k, dst=cv_out,
                                                     borderType=cv2.BORDER_CONSTANT),
                allclose(1e-4, 1e-4 * size * size)))
        if ndi is not None and scipy_ok:
            sp_out = np.empty_like(img)
            impls.append(Implementation(
                "scipy.ndimage.correlate", lambda: ndi.correlate(img, k, mode="constant",
                                                                  output=sp_out),
                allclose(1e-4, 1e-4 * size * size), "1 thread (scipy has no threads)"))
        if with_numba_stencil and dtype == np.float32:
            run = _numba_stencil_5x5(k)
            nb_out = np.empty_like(img)
            impls.append(Implementation("numba @stencil", lambda: run(img, nb_out) or nb_out,
                                        _interior_close, "interior only (its own border rule)"))
        return impls
    return setup


def _stride_setup(quick):
    img = _image(quick)
    k = np.random.default_rng(1).random((5, 5)).astype(np.float32)
    half = np.empty(tuple(-(-n // 2) for n in img.shape), np.float32)
    full = np.empty_like(img)
    return [
        Implementation("correlate, stride (2, 2)",
                       lambda: st.correlate(img, k, mode="constant", stride=2, out=half)),
        Implementation("correlate, stride 1", lambda: st.correlate(
            img, k, mode="constant", out=full), None, "the same kernel, every point"),
    ]


def _box_blur_setup(quick):
    img = _image(quick)
    by_hand = st.make_stencil((3, 3), (1, 1), lambda get: (
        get(-1, -1) + get(-1, 0) + get(-1, 1) + get(0, -1) + get(0, 0) + get(0, 1)
        + get(1, -1) + get(1, 0) + get(1, 1)) / 9)
    from_array = st.make_correlation_stencil_from_kernel(np.full((3, 3), 1 / 9))
    out1, out2 = np.empty_like(img), np.empty_like(img)
    w1 = st.map_stencil(st.Edge, by_hand, img)
    w2 = st.map_stencil(st.Edge, from_array, img)
    return [
        Implementation("make_stencil box blur", lambda: st.compute(w1, out=out1)),
        Implementation("kernel from an array", lambda: st.compute(w2, out=out2),
                       allclose(1e-5, 1e-5)),
    ]


def _sobel_setup(quick):
    img = _image(quick)

    def sobel(g):
        gx = g(-1, 1) + 2 * g(0, 1) + g(1, 1) - g(-1, -1) - 2 * g(0, -1) - g(1, -1)
        gy = g(1, -1) + 2 * g(1, 0) + g(1, 1) - g(-1, -1) - 2 * g(-1, 0) - g(-1, 1)
        return np.sqrt(gx * gx + gy * gy)

    w = st.map_stencil("nearest", st.make_stencil((3, 3), (1, 1), sobel), img)
    out = np.empty_like(img)
    impls = [Implementation("make_stencil Sobel magnitude", lambda: st.compute(w, out=out))]
    if cv2 is not None:
        def cv_sobel():
            gx = cv2.Sobel(img, cv2.CV_32F, 1, 0, ksize=3, borderType=cv2.BORDER_REPLICATE)
            gy = cv2.Sobel(img, cv2.CV_32F, 0, 1, ksize=3, borderType=cv2.BORDER_REPLICATE)
            return cv2.magnitude(gx, gy)
        impls.append(Implementation("cv2.Sobel x2 + magnitude", cv_sobel, allclose(1e-4, 1e-4)))
    if ndi is not None:
        def sp_sobel():
            return np.hypot(ndi.sobel(img, 1, mode="nearest"), ndi.sobel(img, 0, mode="nearest"))
        impls.append(Implementation("scipy.ndimage.sobel x2 + hypot", sp_sobel,
                                    allclose(1e-4, 1e-4)))
    return impls


WORKLOADS = [
    Workload("corr5x5-f32", "5x5 float32 correlation of a 4096^2 image, zero border",
             _correlation(5, with_numba_stencil=True), "memory bandwidth",
             lambda quick: copy_floor(_image(quick))),
    Workload("corr3x3-f32-out", "3x3 float32, 4096^2, out= given", _correlation(3),
             "memory bandwidth", lambda quick: copy_floor(_image(quick))),
    Workload("corr11x11-f32", "11x11 float32, 4096^2", _correlation(11, scipy_ok=False),
             "arithmetic (121 FMAs per point)"),
    Workload("corr5x5-f64", "5x5 float64, 4096^2", _correlation(5, np.float64),
             "memory bandwidth", lambda quick: copy_floor(_image(quick, np.float64))),
    Workload("stride2", "5x5 float32 computed only at stride (2, 2)", _stride_setup,
             "memory bandwidth (reads all rows it needs)"),
    Workload("box-blur", "3x3 box blur written with make_stencil vs built from an array",
             _box_blur_setup, "memory bandwidth"),
    Workload("sobel", "Sobel gradient magnitude written with make_stencil", _sobel_setup,
             "memory bandwidth"),
]


def compile_latency():
    """First call in a fresh process with an empty kernel cache, then with a warm one."""
    code = textwrap.dedent("""
        import time, numpy as np
        t = time.perf_counter()
        import stencils as st
        img = np.random.default_rng(0).random((4096, 4096)).astype(np.float32)
        k = np.random.default_rng(9).random((5, 5))
        t0 = time.perf_counter()
        st.correlate(img, k, mode='constant')
        print(time.perf_counter() - t0)
    """)
    with tempfile.TemporaryDirectory() as cache:
        env = dict(os.environ, STENCILS_CACHE_DIR=cache)
        runs = [float(subprocess.run([sys.executable, "-c", code], env=env, check=True,
                                     capture_output=True, text=True).stdout.split()[-1])
                for _ in range(2)]
    return {"first call, empty kernel cache (s)": runs[0],
            "first call, warm disk cache, new process (s)": runs[1]}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="1024^2 images, few repeats")
    parser.add_argument("--only", action="append", help="run only this workload (repeatable)")
    parser.add_argument("--json", help="write the results here")
    parser.add_argument("--no-compile-latency", action="store_true")
    args = parser.parse_args(argv)
    if cv2 is not None:
        cv2.setNumThreads(numba.get_num_threads())
    st.warmup(("float32",), ndims=(2,))
    results, floors = [], {}
    for w in WORKLOADS:
        if args.only and w.name not in args.only:
            continue
        results += time_workload(w, quick=args.quick)
        if w.floor is not None:
            floors[w.name] = w.floor(args.quick)
    env = environment()
    print(f"threads: numba {env['numba_threads']} ({env['numba_threading_layer']}), "
          f"OpenCV {cv2.getNumThreads() if cv2 is not None else '-'}, scipy 1")
    print(markdown_table(results, floors))
    latency = {} if args.no_compile_latency or args.only else compile_latency()
    for k, v in latency.items():
        print(f"- {k}: {v:.2f}")
    if args.json:
        write_json(args.json, results, dict(env, **latency), floors)
    return 0


if __name__ == "__main__":
    sys.exit(main())
