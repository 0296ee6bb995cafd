"""Shared test setup: a fresh kernel cache, hypothesis profiles, no display."""

import os
import tempfile

# Before stencils is imported anywhere: generated kernels go to a folder of
# this session's, so stale machine code can never pass a test.
os.environ.setdefault("STENCILS_CACHE_DIR", tempfile.mkdtemp(prefix="stencils-test-cache-"))
os.environ.setdefault("MPLBACKEND", "Agg")

from hypothesis import HealthCheck, settings  # noqa: E402

# deadline=None: the first example of a test may pay a JIT compile.
settings.register_profile(
    "dev", deadline=None, max_examples=60,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
settings.register_profile(
    "ci", deadline=None, max_examples=60, derandomize=True, print_blob=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
# The bounds-checked CI run (.ci/run) looks for out-of-bounds accesses: fewer
# examples there, each already compared with its reference in the first run.
settings.register_profile("bounds", settings.get_profile("ci"), max_examples=20)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE")
                      or ("ci" if os.environ.get("CI") else "dev"))


# -- helpers shared by test files: `from conftest import ...` ------------------


import numpy as np  # noqa: E402

import stencils as st  # noqa: E402

SCIPY_MODES = ["constant", "nearest", "reflect", "mirror", "wrap"]
MASSIV_BORDERS = [st.Wrap, st.Edge, st.Reflect, st.Continue]  # and Fill(value)
REAL_DTYPES = ["bool", "int8", "uint8", "int64", "float16", "float32", "float64"]
LAYOUTS = ["c", "fortran", "negative", "strided", "readonly"]


def expected_dtype(dtype):
    """docs/api.md's dtype policy, written out: float16 and float32 give float32, every other
    real dtype float64."""
    return np.dtype(np.float32) if np.dtype(dtype) in (np.float16, np.float32) else np.dtype(np.float64)


def in_layout(a, layout, rng):
    """An array equal to `a` laid out as `layout` (one of LAYOUTS; a view where it is one)."""
    if layout == "fortran":
        return np.asfortranarray(a)
    if layout == "negative" and a.ndim:
        axes = tuple(ax for ax in range(a.ndim) if rng.random() < 0.7) or (0,)
        flip = tuple(slice(None, None, -1) if ax in axes else slice(None) for ax in range(a.ndim))
        return a[flip].copy()[flip]
    if layout == "strided" and a.ndim:
        big = np.zeros(tuple(2 * n + 1 for n in a.shape), dtype=a.dtype)
        view = big[tuple(slice(1, None, 2) for _ in a.shape)]
        view[...] = a
        return view
    if layout == "readonly":
        b = a.copy()
        b.flags.writeable = False
        return b
    return a.copy()


# -- every comparison with scipy is with scipy -----------------------------------


import pytest  # noqa: E402
import scipy.ndimage  # noqa: E402

from stencils import ndimage as _ndi  # noqa: E402


@pytest.fixture(autouse=True)
def _scipy_ndimage_is_scipys():
    """Fails a test if scipy.ndimage's functions are not scipy's when it starts (the
    scipy-suite plugin, tests/ndimage/scipy_routing.py, replaces them by ours in its
    own process only): a test comparing ours with them would compare ours with ours."""
    swapped = [name for name in _ndi.__all__
               if not getattr(getattr(scipy.ndimage, name, None), "__module__", "scipy")
               .startswith("scipy")]
    assert swapped == [], f"scipy.ndimage's {swapped} are not scipy's in this process"
