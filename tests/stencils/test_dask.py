"""The Dask backend: lazy dask results equal to the in-memory ones for every
border (massiv's far field included), stride, rank and chunking, on the
threaded scheduler and on a dask.distributed cluster of two processes."""

import pickle

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as hst

import stencils as st
from stencils import _dask
from stencils.errors import StencilTypeError, StencilValueError

da = pytest.importorskip("dask.array")
dask = pytest.importorskip("dask")

BORDERS = [st.Fill(1.5), st.Fill(np.nan), st.Wrap, st.Edge, st.Reflect, st.Continue,
           "constant", "nearest", "reflect", "mirror", "wrap"]
BORDER_IDS = ["Fill1.5", "FillNaN", "Wrap", "Edge", "Reflect", "Continue",
              "constant", "nearest", "reflect", "mirror", "wrap"]


def _rng(seed=0):
    return np.random.default_rng(seed)


def _kernel_stencil(shape, center, seed=1):
    """A stencil with distinct weights and an off-centre centre (catches any shift)."""
    k = _rng(seed).uniform(0.5, 1.5, shape)
    return st.make_stencil(shape, center, lambda get: sum(
        k[idx] * get(*(i - c for i, c in zip(idx, center))) for idx in np.ndindex(*shape)))


def _same(got, want, dtype=np.float64):
    assert isinstance(got, da.Array), type(got)
    assert got.shape == want.shape and got.dtype == want.dtype
    value = got.compute(scheduler="threads")
    assert value.shape == want.shape and value.dtype == want.dtype
    tol = 1e-12 if np.dtype(dtype) == np.float64 else 2e-6
    np.testing.assert_allclose(value, want, rtol=tol, atol=tol, equal_nan=True)
    return value


def _both(array, chunks, make):
    """``make`` on the NumPy array and on the dask array of it; compare."""
    want = make(array)
    got = make(da.from_array(array, chunks=chunks))
    return _same(got, want, want.dtype)


# -- every border, stride, uneven chunks ----------------------------------------

@pytest.mark.parametrize("border", BORDERS, ids=BORDER_IDS)
@pytest.mark.parametrize("stride", [1, 2, (3, 2)])
def test_map_stencil_every_border_and_stride_2d(border, stride):
    a = _rng().normal(size=(23, 17))
    s = _kernel_stencil((3, 4), (2, 1))
    _both(a, ((5, 7, 11), (4, 4, 9)),
          lambda x: st.compute_with_stride(stride, st.map_stencil(border, s, x)))


@pytest.mark.parametrize("border", BORDERS, ids=BORDER_IDS)
def test_far_field_array_shorter_than_reach(border):
    # Axis length 3, stencil of 11: reads reach 10 cells past the ends, where
    # massiv's Reflect/Continue (period k) and scipy's (2k, 2k-2) differ.
    a = np.array([1.0, 2.0, 4.0])
    s = _kernel_stencil((11,), (6,))
    for chunks in [(3,), (1, 2), (1, 1, 1)]:
        _both(a, (chunks,), lambda x: st.compute(st.map_stencil(border, s, x)))
        _both(a, (chunks,), lambda x: st.compute_with_stride(
            2, st.apply_stencil(st.Padding(13, 8, border), s, x)))


@pytest.mark.parametrize("border", [st.Reflect, st.Continue, "reflect", "mirror", st.Wrap],
                         ids=["Reflect", "Continue", "reflect", "mirror", "Wrap"])
def test_massiv_and_scipy_far_field_really_differ_here(border):
    # The far-field test above is only a test if the rules disagree there.
    a = np.array([1.0, 2.0, 3.0])
    w = st.apply_stencil(st.Padding(5, 0, border), st.id_stencil(1), da.from_array(a, chunks=1))
    got = st.compute(w).compute()
    want = {"Reflect": [2, 1, 3, 2, 1], "Continue": [3, 2, 1, 3, 2], "'reflect'": [2, 3, 3, 2, 1],
            "'mirror'": [2, 1, 2, 3, 2], "Wrap": [2, 3, 1, 2, 3]}[st.as_border(border).kind]
    np.testing.assert_array_equal(got[:5], want)
    np.testing.assert_array_equal(got[5:], a)


@pytest.mark.parametrize("border", BORDERS, ids=BORDER_IDS)
def test_chunks_smaller_than_reach_2d(border):
    a = _rng(2).normal(size=(9, 8))
    s = _kernel_stencil((7, 5), (3, 4))
    _both(a, (1, (2, 1, 3, 2)), lambda x: st.compute(st.map_stencil(border, s, x)))
    _both(a, (2, 3), lambda x: st.compute_with_stride((2, 3), st.map_stencil(border, s, x)))
    # Empty chunks (as slicing can leave) are skipped.
    _both(a, ((0, 4, 0, 5), (8, 0)),
          lambda x: st.compute_with_stride(2, st.map_stencil(border, s, x)))


@pytest.mark.parametrize("border", [st.Fill(-2.0), st.Wrap, st.Reflect, st.Continue, "mirror",
                                    "reflect", st.Edge],
                         ids=["Fill", "Wrap", "Reflect", "Continue", "mirror", "reflect", "Edge"])
def test_apply_stencil_asymmetric_padding(border):
    a = _rng(3).normal(size=(14, 11))
    s = _kernel_stencil((3, 2), (1, 0))
    for padding in [st.no_padding, st.Padding((7, 0), (2, 9), border), st.Padding(0, 4, border)]:
        for stride in (1, 2, 3):
            _both(a, ((4, 10), 3), lambda x: st.compute_with_stride(
                stride, st.apply_stencil(padding, s, x)))


@pytest.mark.parametrize("border", ["constant", st.Wrap, st.Continue, "mirror", st.Reflect],
                         ids=["constant", "Wrap", "Continue", "mirror", "Reflect"])
def test_1d_and_3d(border):
    a1 = _rng(4).normal(size=50)
    s1 = _kernel_stencil((6,), (2,))
    _both(a1, ((7, 1, 20, 22),), lambda x: st.compute_with_stride(3, st.map_stencil(border, s1, x)))
    a3 = _rng(5).normal(size=(7, 9, 10))
    s3 = _kernel_stencil((3, 2, 5), (1, 1, 2))
    _both(a3, ((3, 4), (2, 7), (5, 5)),
          lambda x: st.compute(st.map_stencil(border, s3, x)))
    _both(a3, ((3, 4), (2, 7), (5, 5)),
          lambda x: st.compute_with_stride((2, 1, 3), st.map_stencil(border, s3, x)))


@pytest.mark.parametrize("mode", ["reflect", "constant", "nearest", "mirror", "wrap"])
@pytest.mark.parametrize("stride", [1, 2, 3])
def test_correlate_convolve(mode, stride):
    a = _rng(6).normal(size=(31, 26)).astype(np.float32)
    k = _rng(7).normal(size=(5, 4))
    _both(a, (8, (13, 13)), lambda x: st.correlate(x, k, mode=mode, cval=0.5, stride=stride))
    _both(a, (8, (13, 13)), lambda x: st.convolve(x, k, mode=mode, cval=0.5, stride=stride))


def test_results_agree_with_scipy_and_are_float32():
    ndimage = pytest.importorskip("scipy.ndimage")
    a = _rng(8).random((64, 40), dtype=np.float32)
    k = _rng(9).random((5, 5)).astype(np.float32)
    for mode in ["reflect", "constant", "nearest", "mirror", "wrap"]:
        got = st.correlate(da.from_array(a, chunks=(16, 24)), k, mode=mode).compute()
        assert got.dtype == np.float32
        np.testing.assert_allclose(got, ndimage.correlate(a, k, mode=mode), rtol=1e-5, atol=2e-5)


def test_deep_expression_stencil_on_threads():
    a = _rng(10).normal(size=(20, 21))
    _both(a, 6, lambda x: st.compute(st.map_stencil(st.Reflect, st.max_stencil((5, 5)), x)))


@pytest.mark.parametrize("border", ["reflect", st.Wrap, st.Fill(2.0), st.Continue],
                         ids=["reflect", "Wrap", "Fill", "Continue"])
@pytest.mark.parametrize("stride", [1, 2, (1, 3)])
def test_chunks_computed_in_place_and_gathered_agree(border, stride, monkeypatch):
    # Large chunks take the path that computes from the home chunk in place and
    # patches the bands near its faces; tiny ones gather a whole window.  Both
    # must be taken here, and both must agree with the in-memory result.
    used = []
    real = _dask._bulk
    monkeypatch.setattr(_dask, "_bulk", lambda *a: used.append(real(*a)) or used[-1])
    a = _rng(15).normal(size=(3, 40, 36))
    s = _kernel_stencil((1, 5, 4), (0, 1, 3))
    stride3 = (1,) + ((stride,) * 2 if isinstance(stride, int) else stride)
    want = st.compute_with_stride(stride3, st.map_stencil(border, s, a))
    x = da.from_array(a, chunks=(2, (15, 14, 11), (12, 2, 22)))
    for source in (x, x.map_blocks(np.ascontiguousarray)):  # strided views, then C-contiguous
        _same(st.compute_with_stride(stride3, st.map_stencil(border, s, source)), want)
    assert True in used and False in used


@pytest.mark.parametrize("border", [st.Wrap, st.Reflect, st.Continue, "reflect", "mirror",
                                    st.Edge, st.Fill(4.0)],
                         ids=["Wrap", "Reflect", "Continue", "reflect", "mirror", "Edge", "Fill"])
def test_far_field_2d_many_periods(border):
    # Padding of many axis lengths: the window's border cells are fetched once
    # and indexed (far more runs than a few), on both axes at once.
    a = _rng(17).normal(size=(3, 4))
    s = _kernel_stencil((3, 2), (1, 1))
    for stride in (1, (2, 3)):
        y = _both(a, ((1, 2), (3, 1)), lambda x: st.compute_with_stride(
            stride, st.apply_stencil(st.Padding((30, 7), (25, 40), border), s, x)))
        assert y.shape[0] > 20
    x = da.from_array(a, chunks=((1, 2), (3, 1)))
    y = st.compute(st.apply_stencil(st.Padding((30, 7), (25, 40), border), s, x))
    specs = [t[1] for t in dict(y.__dask_graph__()).values()
             if isinstance(t, tuple) and t and t[0] is _dask._block]
    # Edge repeats one cell (one run) and Fill reads nothing: only mirrors and Wrap index.
    assert specs and any(sp.takes is not None for sp in specs) == (
        st.as_border(border) not in (st.Fill(4.0), st.Edge))


def test_long_padding_is_split_into_chunks():
    a = _rng(18).normal(size=10)
    padding = st.Padding(5000, 3000, st.Reflect)
    s = _kernel_stencil((3,), (1,))
    y = _both(a, 4, lambda x: st.compute(st.apply_stencil(padding, s, x)))
    x = da.from_array(a, chunks=4)
    y = st.compute(st.apply_stencil(padding, s, x))
    assert max(y.chunks[0]) <= 2 * _dask._MIN_SPLIT and sum(y.chunks[0]) == 8008
    # A padding far longer than memory would allow builds at once; parts compute.
    huge = st.compute(st.apply_stencil(st.Padding(10**12, 0, st.Edge), s, x))
    assert huge.shape == (10**12 + 8,)
    np.testing.assert_allclose(huge[-8:].compute(), st.compute(st.apply_stencil(
        st.Padding(3, 0, st.Edge), s, a))[-8:])


# -- laziness, dtypes, shapes -----------------------------------------------------

def test_lazy_until_computed():
    calls = []

    def produce(block):
        calls.append(1)
        return block

    x = da.from_array(_rng().normal(size=(12, 12)), chunks=5).map_blocks(produce)
    calls.clear()
    w = st.map_stencil(st.Edge, st.avg_stencil((3, 3)), x)
    assert isinstance(w, st.WindowedArray) and w.shape == (12, 12)
    y = st.compute_with_stride(2, w)
    z = st.correlate(x, np.ones((3, 3)), stride=2)
    assert isinstance(y, da.Array) and isinstance(z, da.Array) and not calls
    # Output chunks follow the source's (5, 5, 2): outputs 0, 2, 4 | 6, 8 | 10.
    assert y.chunks == ((3, 2, 1), (3, 2, 1))
    y.compute(scheduler="sync")
    assert calls


def test_windowed_array_of_dask_source():
    a = _rng(11).normal(size=(10, 6))
    w = st.map_stencil(st.Continue, st.sum_stencil((3, 2)), da.from_array(a, chunks=4))
    want = st.compute(st.map_stencil(st.Continue, st.sum_stencil((3, 2)), a))
    assert w.shape == want.shape and w.dtype == np.float64
    np.testing.assert_allclose(w.compute().compute(), want)
    assert isinstance(w + 1, da.Array)  # ufuncs stay lazy
    np.testing.assert_allclose((w + 1).compute(), want + 1)


def test_asarray_of_windowed_array_of_dask_source():
    a = _rng(11).normal(size=(10, 6))
    w = st.map_stencil(st.Continue, st.sum_stencil((3, 2)), da.from_array(a, chunks=4))
    want = st.compute(st.map_stencil(st.Continue, st.sum_stencil((3, 2)), a))
    np.testing.assert_allclose(np.asarray(w), want)


@pytest.mark.parametrize("dtype, expected", [(np.float32, np.float32), (np.float16, np.float32),
                                             (np.int16, np.float64), (bool, np.float64),
                                             (">f8", np.float64)])
def test_dtype_policy(dtype, expected):
    a = (_rng(12).normal(size=(9, 9)) * 3).astype(dtype)
    y = st.correlate(da.from_array(a, chunks=4), np.ones((3, 3)))
    assert y.dtype == np.dtype(expected)
    want = st.correlate(a, np.ones((3, 3)))
    np.testing.assert_allclose(y.compute(), want, rtol=1e-6)


def test_empty_results_and_empty_axes():
    # Output shorter than nothing: a 0-length dask array, as in memory.
    x = da.from_array(np.arange(3.0), chunks=2)
    w = st.apply_stencil(st.no_padding, st.sum_stencil(5), x)
    assert st.compute(w).shape == (0,) == st.compute(
        st.apply_stencil(st.no_padding, st.sum_stencil(5), np.arange(3.0))).shape
    # An empty source with Fill: every read is the fill value.
    e = np.empty((0, 4))
    _both(e, (1, 2), lambda x: st.compute(st.apply_stencil(st.Padding(2, 1, st.Fill(3.0)),
                                                           st.sum_stencil((2, 2)), x)))
    with pytest.raises(StencilValueError) as info:
        st.compute(st.apply_stencil(st.Padding(2, 1, st.Edge), st.sum_stencil((2, 2)),
                                    da.from_array(e, chunks=2)))
    assert info.value.param == "border"


# -- errors ---------------------------------------------------------------------

def test_out_is_refused_for_dask_sources():
    x = da.from_array(np.ones((4, 4)), chunks=2)
    w = st.map_stencil(st.Edge, st.sum_stencil((2, 2)), x)
    for call in (lambda: st.compute(w, out=np.empty((4, 4))),
                 lambda: st.compute_with_stride(2, w, out=np.empty((2, 2))),
                 lambda: st.correlate(x, np.ones((2, 2)), out=np.empty((4, 4)))):
        with pytest.raises(StencilValueError, match="dask.array.store") as info:
            call()
        assert info.value.param == "out"


def test_bad_dask_inputs():
    with pytest.raises(StencilTypeError) as info:
        st.map_stencil(st.Edge, st.sum_stencil(2), da.ones(4, chunks=2, dtype=complex))
    assert info.value.param == "array"
    with pytest.raises(StencilTypeError) as info:
        st.correlate(da.ones(4, chunks=2, dtype=complex), [1, 1])
    assert info.value.param == "image"
    with pytest.raises(StencilValueError):
        st.map_stencil(st.Edge, st.sum_stencil(2), da.ones((), dtype=float))
    with pytest.raises(StencilValueError):  # rank mismatch, as in memory
        st.map_stencil(st.Edge, st.sum_stencil(2), da.ones((4, 4), chunks=2))
    x = da.from_array(np.arange(8.0), chunks=3)
    unknown = x[x > 2]
    with pytest.raises(StencilValueError, match="compute_chunk_sizes") as info:
        st.map_stencil(st.Edge, st.sum_stencil(2), unknown)
    assert info.value.param == "array"


# -- properties -----------------------------------------------------------------

@hst.composite
def _cases(draw):
    ndim = draw(hst.integers(1, 3))
    shape = tuple(draw(hst.integers(1, 9)) for _ in range(ndim))
    chunks = []
    for n in shape:
        cuts = sorted(draw(hst.sets(hst.integers(1, n - 1), max_size=3))) if n > 1 else []
        bounds = [0] + cuts + [n]
        chunks.append(tuple(b - a for a, b in zip(bounds, bounds[1:])))
    size = tuple(draw(hst.integers(1, 6)) for _ in range(ndim))
    center = tuple(draw(hst.integers(0, s - 1)) for s in size)
    po = tuple(draw(hst.integers(0, 7)) for _ in range(ndim))
    pb = tuple(draw(hst.integers(0, 7)) for _ in range(ndim))
    border = draw(hst.sampled_from(BORDERS))
    stride = tuple(draw(hst.integers(1, 3)) for _ in range(ndim))
    seed = draw(hst.integers(0, 2**16))
    contiguous = draw(hst.booleans())
    return shape, tuple(chunks), size, center, po, pb, border, stride, seed, contiguous


@settings(max_examples=60, deadline=None)
@given(_cases())
def test_property_equal_to_in_memory(case):
    shape, chunks, size, center, po, pb, border, stride, seed, contiguous = case
    a = _rng(seed).normal(size=shape)
    s = _kernel_stencil(size, center, seed)
    padding = st.Padding(po, pb, border)
    want = st.compute_with_stride(stride, st.apply_stencil(padding, s, a))
    x = da.from_array(a, chunks)
    if contiguous:  # chunks as a pipeline makes them (from_array may give strided views)
        x = x.map_blocks(np.ascontiguousarray)
    got = st.compute_with_stride(stride, st.apply_stencil(padding, s, x))
    assert got.shape == want.shape
    np.testing.assert_allclose(got.compute(scheduler="sync"), want, rtol=1e-12, atol=1e-12,
                               equal_nan=True)


# -- pickling and dask.distributed ---------------------------------------------------

def test_graph_pickles():
    x = da.from_array(_rng().normal(size=(10, 10)), chunks=4)
    y = st.compute_with_stride(2, st.map_stencil(st.Wrap, st.max_stencil((5, 5)), x))
    graph = dict(y.__dask_graph__())
    blob = pickle.dumps(graph)
    assert pickle.loads(blob).keys() == graph.keys()
    assert len(pickle.dumps(_dask._block)) < 100  # by reference


def test_deep_stencil_graph_pickles():
    # max_stencil((31, 31)) is a chain of 961 max nodes: it must pickle
    # (flat, not recursively) for the graph to travel to workers.
    deep = st.max_stencil((31, 31))
    assert pickle.loads(pickle.dumps(deep)).size == (31, 31)
    a = _rng(16).normal(size=(40, 37))
    y = st.compute(st.map_stencil(st.Reflect, deep, da.from_array(a, chunks=(16, 20))))
    graph = pickle.loads(pickle.dumps(dict(y.__dask_graph__())))
    got = dask.get(graph, list(y.__dask_keys__()))
    want = st.compute(st.map_stencil(st.Reflect, deep, a))
    np.testing.assert_array_equal(np.block([list(row) for row in got]), want)


def test_distributed_local_cluster():
    distributed = pytest.importorskip("distributed")
    a = _rng(13).normal(size=(40, 33)).astype(np.float32)
    k = _rng(14).normal(size=(5, 5))
    with distributed.LocalCluster(n_workers=2, processes=True, threads_per_worker=1,
                                  host="127.0.0.1", dashboard_address=None,
                                  worker_dashboard_address=None) as cluster, \
            distributed.Client(cluster) as client:
        assert len(client.scheduler_info()["workers"]) == 2
        x = da.from_array(a, chunks=(9, 14))
        cases = [
            (st.correlate(x, k, mode="wrap", stride=2), st.correlate(a, k, mode="wrap", stride=2)),
            (st.convolve(x, k, mode="mirror"), st.convolve(a, k, mode="mirror")),
            (st.compute(st.map_stencil(st.Continue, st.max_stencil((5, 5)), x)),
             st.compute(st.map_stencil(st.Continue, st.max_stencil((5, 5)), a))),
            (st.compute(st.map_stencil(st.Wrap, st.max_stencil((31, 31)), x)),
             st.compute(st.map_stencil(st.Wrap, st.max_stencil((31, 31)), a))),
            (st.compute_with_stride(3, st.apply_stencil(st.Padding(40, 2, st.Reflect),
                                                        st.avg_stencil((3, 3)), x)),
             st.compute_with_stride(3, st.apply_stencil(st.Padding(40, 2, st.Reflect),
                                                        st.avg_stencil((3, 3)), a))),
        ]
        results = client.compute([got for got, _ in cases], sync=True)
        for value, (_, want) in zip(results, cases):
            np.testing.assert_allclose(value, want, rtol=2e-6, atol=2e-6)
        # The chunk function was unpickled (by reference) in the worker processes.
        loaded = client.run(lambda: "stencils._dask" in __import__("sys").modules)
        assert len(loaded) == 2 and any(loaded.values())


def test_both_backends_compute_a_plan_built_by_hand():
    """A backend reads the plan and nothing else: no WindowedArray is involved here."""
    from stencils import _memory
    from stencils._plan import Plan

    a = np.arange(30.0).reshape(5, 6)
    s = st.make_correlation_stencil_from_kernel(np.arange(9.0).reshape(3, 3))
    border = st.as_border("mirror")
    want = st.compute_with_stride(2, st.map_stencil(border, s, a))
    plan = Plan(a, s, (-1, -1), (2, 2), border, a.dtype, want.shape)
    assert st.map_stencil(border, s, a).plan(2)[1:] == plan[1:]  # all but the source
    np.testing.assert_array_equal(_memory.compute(plan), want)
    lazy = _dask.compute(plan._replace(source=da.from_array(a, chunks=2)))
    np.testing.assert_array_equal(lazy.compute(), want)
    with pytest.raises(AttributeError):
        plan.step = (1, 1)
