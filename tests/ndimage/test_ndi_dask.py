"""Dask arrays in, lazy dask arrays out, equal to scipy on the whole array (chunk edges too)."""

import numpy as np
import pytest
import scipy.ndimage as sn
from hypothesis import given, strategies as st

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


def _chunks(draw, n):
    """Chunk lengths summing to n, some of them possibly 0."""
    cuts = sorted(draw(st.lists(st.integers(0, n), max_size=4)))
    bounds = [0] + cuts + [n]
    return tuple(b - a for a, b in zip(bounds, bounds[1:]))


@st.composite
def _chunked_arrays(draw):
    shape = draw(st.lists(st.integers(1, 12), min_size=1, max_size=3))
    data = np.random.default_rng(draw(st.integers(0, 2**16))).standard_normal(shape)
    return data, tuple(_chunks(draw, n) for n in shape)


@given(_chunked_arrays(), st.sampled_from(["reflect", "constant", "nearest", "mirror", "wrap",
                                           "grid-wrap", "grid-mirror", "grid-constant"]),
       st.floats(0.3, 4.0), st.sampled_from([np.float64, np.float32]))
def test_halos_wider_than_chunks_and_arrays_are_exact(arrays, mode, sigma, dtype):
    # Radii up to 16 against chunks of 0..12 cells: a window spans several
    # chunks, and on wrapped axes several laps of a short array.
    data, chunks = arrays
    data = data.astype(dtype)
    lazy = ndi.gaussian_filter(da.from_array(data, chunks=chunks), sigma, mode=mode, cval=0.5)
    assert lazy.shape == data.shape  # chunks shorter than the halo are merged
    np.testing.assert_array_equal(lazy.compute(scheduler="threads"),
                                  sn.gaussian_filter(data, sigma, mode=mode, cval=0.5))


def test_chunks_are_kept_where_halos_fit_and_merged_where_not():
    image = da.from_array(X, chunks=(10, 8))
    assert ndi.gaussian_filter(image, 1.0).chunks == image.chunks  # radius 4 < 5 cells
    assert ndi.gaussian_filter(image, 1.5).chunks == ((10, 10, 10, 7), (8, 8, 13))


def test_a_chunk_window_is_not_kept_by_the_next_task():
    # Each thread reuses one window buffer: results computed earlier must not change.
    data = np.random.default_rng(1).random((64, 48))
    lazy = ndi.gaussian_filter(da.from_array(data, chunks=(16, 12)), 2.0, mode="wrap")
    blocks = [lazy.blocks[i, j].compute(scheduler="threads") for i in range(4) for j in range(4)]
    expected = sn.gaussian_filter(data, 2.0, mode="wrap")
    for k, block in enumerate(blocks):
        i, j = divmod(k, 4)
        np.testing.assert_array_equal(block, expected[16 * i:16 * i + 16, 12 * j:12 * j + 12])


def test_the_graph_pickles_by_reference_for_distributed():
    # Plain pickle (no cloudpickle) round-trips only functions importable by name:
    # a worker process then imports the filter instead of receiving its code.
    import pickle

    lazy = ndi.gaussian_filter(da.from_array(X, chunks=(10, 8)), 1.0, mode="mirror")
    graph = pickle.loads(pickle.dumps(dict(lazy.__dask_graph__())))
    from dask.threaded import get

    keys = [k for k in graph if isinstance(k, tuple) and k[0] == lazy.name]
    block = get(graph, (lazy.name, 1, 2))
    np.testing.assert_array_equal(block, sn.gaussian_filter(X, 1.0, mode="mirror")[10:20, 16:24])
    assert len(keys) == 4 * 4


def test_unknown_chunk_sizes_are_refused_by_name():
    from stencils.errors import StencilValueError

    image = da.from_array(X, chunks=(10, 8))
    unknown = image[image[:, 0] > 0]  # rows kept: not known until computed
    with pytest.raises(StencilValueError, match="compute_chunk_sizes") as info:
        ndi.gaussian_filter(unknown, 1.0)
    assert info.value.param == "input"
