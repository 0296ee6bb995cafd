"""Dask arrays in, lazy dask arrays out, equal to scipy on the whole array (chunk edges too)."""

import numpy as np
import pytest
import scipy.ndimage as sn

from stencils import ndimage as ndi

da = pytest.importorskip("dask.array")

X = np.random.default_rng(0).standard_normal((37, 29))
KERNEL = np.arange(12.0).reshape(3, 4)
CALLS = [
    ("gaussian_filter", (1.5,), {}),
    ("gaussian_filter1d", (2.0,), {"order": 1, "axis": 0}),
    ("correlate", (KERNEL,), {"origin": (0, 1)}),
    ("convolve", (KERNEL,), {}),
    ("correlate1d", ([1, 2, 3, 4],), {"axis": 0}),
    ("convolve1d", ([1, -1],), {}),
    ("sobel", (0,), {}),
    ("prewitt", (1,), {}),
    ("laplace", (), {}),
    ("gaussian_laplace", (1.0,), {}),
    ("gaussian_gradient_magnitude", (1.0,), {}),
]


@pytest.mark.parametrize("mode", ["reflect", "constant", "nearest", "mirror", "wrap"])
@pytest.mark.parametrize("name, args, kwargs", CALLS, ids=[c[0] for c in CALLS])
def test_lazy_and_exact_across_chunks(name, args, kwargs, mode):
    lazy = getattr(ndi, name)(da.from_array(X, chunks=(10, 8)), *args, mode=mode, **kwargs)
    assert isinstance(lazy, da.Array)
    expected = getattr(sn, name)(X, *args, mode=mode, **kwargs)
    assert lazy.dtype == expected.dtype
    np.testing.assert_array_equal(lazy.compute(), expected)


def test_uniform_filter_restarts_the_running_sum_per_chunk():
    # scipy's running sum depends on where the line starts: per chunk it
    # restarts, so results agree to rounding, as dask-image's do.
    lazy = ndi.uniform_filter(da.from_array(X, chunks=(10, 8)), 5, mode="wrap", origin=1)
    np.testing.assert_allclose(lazy.compute(), sn.uniform_filter(X, 5, mode="wrap", origin=1),
                               rtol=0, atol=1e-13)


def test_integer_dtype_and_output_dtype():
    image = (X * 10).astype(np.int16)
    lazy = ndi.gaussian_filter(da.from_array(image, chunks=9), 1.0, output=np.float32)
    assert lazy.dtype == np.float32
    np.testing.assert_array_equal(lazy.compute(),
                                  sn.gaussian_filter(image, 1.0, output=np.float32))
