"""The stencil core against scipy.ndimage, OpenCV and numba's own @stencil.

Run: ``python -m benchmarks.bench_stencils [--quick] [--only NAME] [--json PATH]``
(``python -m benchmarks`` runs these together with every other suite).
Peers that are not installed are skipped with a note.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import textwrap
import time

import numba
import numpy as np

import stencils as st

from ._harness import (Implementation, Skipped, Workload, allclose, environment, markdown_table,
                       roofline, selected, time_workload, write_json)

try:
    import cv2
except ImportError:  # pragma: no cover - optional peer
    cv2 = None
try:
    import scipy.ndimage as ndi
except ImportError:  # pragma: no cover - optional peer
    ndi = None

NO_CV2 = "opencv-python-headless is not installed"
NO_SCIPY = "scipy is not installed"


def _side(n, quick):
    return n // 4 if quick else n


def _image(quick, dtype=np.float32, n=4096):
    n = _side(n, quick)
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
        t = time.perf_counter()
        _copy(array, out)
        times.append(time.perf_counter() - t)
    return float(np.median(times))


def numba_stencil(weights):
    """A numba ``@stencil`` correlation with `weights` unrolled as literals of their dtype,
    called inside ``njit(parallel=True)`` (its fast path).  Returns ``run(a, out)``."""
    kh, kw = weights.shape
    rh, rw = kh // 2, kw // 2
    cast = "np.float32" if weights.dtype == np.float32 else "np.float64"
    body = " + ".join(f"{cast}({weights[i, j]!r}) * a[{i - rh}, {j - rw}]"
                      for i in range(kh) for j in range(kw))
    ns = {"np": np, "numba": numba}
    exec(textwrap.dedent(f"""
        @numba.stencil(neighborhood=(({-rh}, {kh - 1 - rh}), ({-rw}, {kw - 1 - rw})))
        def kernel(a):
            return {body}

        @numba.njit(parallel=True)
        def run(a, out):
            out[:] = kernel(a)
            return out
    """), ns)
    return ns["run"]


def _interior_close(radius, rtol, atol):
    # numba's @stencil only offers its own 'constant' mode (border cells *set* to cval);
    # the interior is what it computes, so only the interior is compared.
    def check(ours, theirs):
        inner = (slice(radius, -radius),) * 2
        np.testing.assert_allclose(np.asarray(theirs)[inner], np.asarray(ours)[inner],
                                   rtol=rtol, atol=atol)
    return check


def _correlation(size, dtype=np.float32, n=4096):
    def setup(quick):
        img = _image(quick, dtype, n)
        k = np.random.default_rng(1).random((size, size)).astype(dtype)
        tol = (1e-4, 1e-4 * size * size) if dtype == np.float32 else (1e-9, 1e-9 * size * size)
        out = np.empty_like(img)
        impls = [Implementation("stencils.correlate", lambda: st.correlate(
            img, k, mode="constant", out=out), note="out= given")]
        if cv2 is not None:
            cv_out = np.empty_like(img)
            impls.append(Implementation(
                "cv2.filter2D", lambda: cv2.filter2D(img, -1, k, dst=cv_out,
                                                     borderType=cv2.BORDER_CONSTANT),
                allclose(*tol), "DFT above ~11x11" if size >= 11 else ""))
        else:
            impls.append(Skipped("cv2.filter2D", NO_CV2))
        if ndi is not None:
            sp_out = np.empty_like(img)
            impls.append(Implementation(
                "scipy.ndimage.correlate", lambda: ndi.correlate(img, k, mode="constant",
                                                                  output=sp_out),
                allclose(*tol), "1 thread (scipy has no threads)"))
        else:
            impls.append(Skipped("scipy.ndimage.correlate", NO_SCIPY))
        if quick and (size, dtype) != (5, np.float32):
            impls.append(Skipped("numba @stencil", "--quick: only at 5x5 float32 (each "
                                 "kernel compiles for seconds)"))
            return impls
        run = numba_stencil(k)
        nb_out = np.empty_like(img)
        impls.append(Implementation("numba @stencil", lambda: run(img, nb_out),
                                    _interior_close(size // 2, *tol),
                                    "interior only (its own border rule)"))
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
            img, k, mode="constant", out=full), lambda a, b: np.testing.assert_allclose(
                b[::2, ::2], a, rtol=1e-5, atol=1e-5), "every point (checked at even ones)"),
        Implementation("correlate, stride 1, then [::2, ::2]", lambda: st.correlate(
            img, k, mode="constant", out=full)[::2, ::2], allclose(1e-5, 1e-5),
            "what strides save"),
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
    impls = [
        Implementation("make_stencil box blur", lambda: st.compute(w1, out=out1)),
        Implementation("stencil from a kernel array", lambda: st.compute(w2, out=out2),
                       allclose(1e-5, 1e-5)),
    ]
    if cv2 is not None:
        cv_out = np.empty_like(img)
        impls.append(Implementation("cv2.blur", lambda: cv2.blur(
            img, (3, 3), dst=cv_out, borderType=cv2.BORDER_REPLICATE), allclose(1e-5, 1e-5)))
    else:
        impls.append(Skipped("cv2.blur", NO_CV2))
    if ndi is not None:
        sp_out = np.empty_like(img)
        impls.append(Implementation("scipy.ndimage.uniform_filter", lambda: ndi.uniform_filter(
            img, 3, mode="nearest", output=sp_out), allclose(1e-5, 1e-5), "separable, 1 thread"))
    else:
        impls.append(Skipped("scipy.ndimage.uniform_filter", NO_SCIPY))
    return impls


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
    else:
        impls.append(Skipped("cv2.Sobel x2 + magnitude", NO_CV2))
    if ndi is not None:
        def sp_sobel():
            return np.hypot(ndi.sobel(img, 1, mode="nearest"), ndi.sobel(img, 0, mode="nearest"))
        impls.append(Implementation("scipy.ndimage.sobel x2 + hypot", sp_sobel,
                                    allclose(1e-4, 1e-4), "1 thread"))
    else:
        impls.append(Skipped("scipy.ndimage.sobel x2 + hypot", NO_SCIPY))
    return impls


def _tiers_setup(quick):
    """The warm-up loop's call, 512^2 float32 7x7 'reflect', on tier 1 and on tier 0."""
    rng = np.random.default_rng(0)
    side = _side(512, quick)
    img = rng.standard_normal((side, side)).astype(np.float32)
    kernel = rng.standard_normal((7, 7)).astype(np.float32)

    def on_tier0():
        with st.config(engine="interpreter"):
            return st.correlate(img, kernel, mode="reflect")

    return [Implementation("stencils: the stencil's own kernel (tier 1)",
                           lambda: st.correlate(img, kernel, mode="reflect")),
            Implementation("the same call on tier 0 (the interpreter)", on_tier0,
                           allclose(0, 0), "issue 10: within 3x of the stencil's own kernel")]


def _px(n, quick):
    return float(_side(n, quick)) ** 2


def _correlation_workloads():
    out = []
    for n in (1024, 4096):
        for size in (3, 5, 11):
            for dtype in (np.float32, np.float64):
                item = np.dtype(dtype).itemsize
                tag = "f32" if dtype == np.float32 else "f64"
                out.append(Workload(
                    f"corr{size}x{size}-{tag}-{n}",
                    f"{size}x{size} {np.dtype(dtype).name} correlation of an {n}^2 image "
                    f"({n // 4}^2 with --quick), zero border",
                    _correlation(size, dtype, n), group="correlate",
                    bytes=lambda q, n=n, item=item: 2 * item * _px(n, q),
                    ops=lambda q, n=n, size=size: size * size * _px(n, q),
                    dtype=np.dtype(dtype).name))
    return out


WORKLOADS = _correlation_workloads() + [
    Workload("stride2", "5x5 float32 correlation of a 4096^2 image computed only at stride "
             "(2, 2)", _stride_setup, group="stencil",
             bytes=lambda q: 4 * 1.25 * _px(4096, q), ops=lambda q: 25 * _px(4096, q) / 4),
    Workload("box-blur", "3x3 box blur of a 4096^2 float32 image written with make_stencil "
             "(Edge border)", _box_blur_setup, group="stencil",
             bytes=lambda q: 8 * _px(4096, q), ops=lambda q: 9 * _px(4096, q)),
    Workload("sobel", "Sobel gradient magnitude of a 4096^2 float32 image written with "
             "make_stencil", _sobel_setup, group="stencil",
             bytes=lambda q: 8 * _px(4096, q), ops=lambda q: 20 * _px(4096, q)),
    # Both tiers on the same cores: in the warm-up group's loop with an empty
    # kernel cache, tier 0 shares them with the compile of its tier-1 kernel.
    Workload("tiers-7x7-512", "the warm-up loop's call (512^2 float32, 7x7 'reflect') on "
             "tier 1 and on tier 0, in one process", _tiers_setup, group="warm-up",
             number=100, settle=20, repeats=9,
             bytes=lambda q: 8 * _px(512, q), ops=lambda q: 49 * _px(512, q)),
]


def compile_latency(quick=False):
    """First call in a fresh process with an empty kernel cache, then with a warm one."""
    n = 1024 if quick else 4096
    code = textwrap.dedent(f"""
        import time, numpy as np
        t = time.perf_counter()
        import stencils as st
        t_import = time.perf_counter() - t
        img = np.random.default_rng(0).random(({n}, {n})).astype(np.float32)
        k = np.random.default_rng(9).random((5, 5))
        t0 = time.perf_counter()
        st.correlate(img, k, mode='constant')
        t1 = time.perf_counter()
        st.correlate(img, k, mode='constant')
        t2 = time.perf_counter()
        print(t_import, t1 - t0, t2 - t1)
    """)
    with tempfile.TemporaryDirectory() as cache:
        env = dict(os.environ, STENCILS_CACHE_DIR=cache, NUMBA_CACHE_DIR=cache)
        runs = [[float(v) for v in subprocess.run(
            [sys.executable, "-c", code], env=env, check=True, capture_output=True,
            text=True).stdout.split()[-3:]] for _ in range(2)]
    return {"import stencils (s)": runs[0][0],
            "first call, empty kernel cache (s)": runs[0][1],
            "first call, warm disk cache, new process (s)": runs[1][1],
            "second call, same process (s)": runs[1][2],
            "image": f"{n}x{n} float32, 5x5 kernel"}


def main(argv=None):
    from . import bench_floor

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="1024^2 images, few repeats")
    parser.add_argument("--only", action="append", help="run only this workload (repeatable)")
    parser.add_argument("--json", help="write the results here")
    parser.add_argument("--no-compile-latency", action="store_true")
    args = parser.parse_args(argv)
    if cv2 is not None:
        cv2.setNumThreads(numba.get_num_threads())
    st.warmup(("float32",), ndims=(2,))
    machine = bench_floor.measure(args.quick)
    results, floors = [], {}
    for w in WORKLOADS:
        if not selected(w, args.only):
            continue
        results += time_workload(w, quick=args.quick)
        floor = roofline(w, args.quick, machine)
        if floor is not None:
            floors[w.name] = floor
    env = environment()
    print(f"threads: numba {env['numba_threads']} ({env['numba_threading_layer']}), "
          f"OpenCV {cv2.getNumThreads() if cv2 is not None else '-'}, scipy 1")
    print(bench_floor.markdown(machine))
    print()
    print(markdown_table(results, floors))
    latency = {} if args.no_compile_latency or args.only else compile_latency(args.quick)
    for k, v in latency.items():
        print(f"- {k}: {v}")
    if args.json:
        write_json(args.json, results, dict(env, **latency), floors, {"machine": machine})
    return 0


if __name__ == "__main__":
    sys.exit(main())
