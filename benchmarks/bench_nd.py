"""Stencils off the 2-D image path: a 3-D 7-point Laplacian and a 1-D 3-point stencil.

Run through ``python -m benchmarks --only laplace3d-f64 --only stencil1d-f64``.
"""

from __future__ import annotations

import numpy as np

import stencils as st

from ._harness import Implementation, Skipped, Workload, allclose

try:
    import scipy.ndimage as ndi
except ImportError:  # pragma: no cover - optional peer
    ndi = None


def _cube(quick):
    return 64 if quick else 256


def laplacian_stencil():
    """The 7-point Laplacian as a `make_stencil` user stencil."""
    return st.make_stencil((3, 3, 3), (1, 1, 1), lambda g: (
        g(-1, 0, 0) + g(1, 0, 0) + g(0, -1, 0) + g(0, 1, 0) + g(0, 0, -1) + g(0, 0, 1)
        - 6 * g(0, 0, 0)))


def _laplace_setup(quick):
    n = _cube(quick)
    a = np.random.default_rng(0).random((n, n, n))
    out = np.empty_like(a)
    w = st.map_stencil("nearest", laplacian_stencil(), a)
    k = np.zeros((3, 3, 3))
    k[1, 1, :] = k[1, :, 1] = k[:, 1, 1] = 1
    k[1, 1, 1] = -6
    check = allclose(1e-9, 1e-9)
    impls = [Implementation("stencils make_stencil", lambda: st.compute(w, out=out))]

    def numpy_slices():
        p = np.pad(a, 1, mode="edge")
        c = p[1:-1, 1:-1, 1:-1]
        return (p[:-2, 1:-1, 1:-1] + p[2:, 1:-1, 1:-1] + p[1:-1, :-2, 1:-1] + p[1:-1, 2:, 1:-1]
                + p[1:-1, 1:-1, :-2] + p[1:-1, 1:-1, 2:] - 6 * c)

    if ndi is not None:
        sp_out = np.empty_like(a)
        impls += [
            Implementation("scipy.ndimage.laplace", lambda: ndi.laplace(
                a, output=sp_out, mode="nearest"), check, "1 thread"),
            Implementation("scipy.ndimage.correlate 3x3x3", lambda: ndi.correlate(
                a, k, output=sp_out, mode="nearest"), check, "1 thread"),
        ]
    else:
        impls.append(Skipped("scipy.ndimage.laplace", "scipy is not installed"))
    impls.append(Implementation("NumPy slicing (np.pad edge)", numpy_slices, check,
                                "1 thread, temporaries"))
    return impls


def _line(quick):
    return 10**6 if quick else 10**8


def _stencil1d_setup(quick):
    x = np.random.default_rng(0).random(_line(quick))
    wts = np.array([0.25, 0.5, 0.25])
    out = np.empty_like(x)
    sten = st.make_stencil(3, 1, lambda g: 0.25 * g(-1) + 0.5 * g(0) + 0.25 * g(1))
    w = st.map_stencil(st.Fill(0), sten, x)
    check = allclose(1e-12, 1e-12)
    impls = [Implementation("stencils make_stencil, Fill 0", lambda: st.compute(w, out=out))]

    def numpy_slices():
        r = np.empty_like(x)
        r[1:-1] = 0.25 * x[:-2] + 0.5 * x[1:-1] + 0.25 * x[2:]
        r[0] = 0.5 * x[0] + 0.25 * x[1]
        r[-1] = 0.25 * x[-2] + 0.5 * x[-1]
        return r

    impls.append(Implementation("np.convolve 'same'", lambda: np.convolve(x, wts, "same"),
                                check, "1 thread"))
    if ndi is not None:
        sp_out = np.empty_like(x)
        impls.append(Implementation("scipy.ndimage.correlate1d", lambda: ndi.correlate1d(
            x, wts, output=sp_out, mode="constant"), check, "1 thread"))
    else:
        impls.append(Skipped("scipy.ndimage.correlate1d", "scipy is not installed"))
    impls.append(Implementation("NumPy slicing", numpy_slices, check, "1 thread, temporaries"))
    return impls


WORKLOADS = [
    Workload("laplace3d-f64", "3-D 7-point Laplacian of a 256^3 float64 array (64^3 with "
             "--quick), 'nearest' border", _laplace_setup, group="nd",
             bytes=lambda q: 16.0 * _cube(q) ** 3, ops=lambda q: 7.0 * _cube(q) ** 3,
             dtype="float64"),
    Workload("stencil1d-f64", "1-D 3-point stencil (0.25, 0.5, 0.25) on 10^8 float64 (10^6 "
             "with --quick), zero border", _stencil1d_setup, group="nd",
             bytes=lambda q: 16.0 * _line(q), ops=lambda q: 3.0 * _line(q), dtype="float64",
             repeats=5),
]
