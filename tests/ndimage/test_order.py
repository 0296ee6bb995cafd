"""stencils.ndimage's order-statistic filters against scipy.ndimage, to the last element.

Exact equality (NaN where scipy has NaN, the same dtype) for every function,
mode, dtype and rank 1-4, with boxes and footprints; ``nan_policy='omit'``
against a plain per-window reference; bad input gets scipy's error types.
"""

import numpy as np
import pytest
import scipy.ndimage as sndi
from hypothesis import given, settings
from hypothesis import strategies as st

from stencils import ndimage as ndi
from stencils.errors import StencilError
from stencils.ndimage import _networks

MODES = ["reflect", "constant", "nearest", "mirror", "wrap", "grid-wrap", "grid-constant",
         "grid-mirror"]
DTYPES = [np.uint8, np.int16, np.int32, np.float32, np.float64]
FUNCTIONS = ["minimum_filter", "maximum_filter", "median_filter", "rank_filter",
             "percentile_filter"]


def assert_same(ours, theirs):
    assert ours.dtype == theirs.dtype
    assert ours.shape == theirs.shape
    np.testing.assert_array_equal(ours, theirs)


@st.composite
def arrays(draw, max_ndim=4):
    ndim = draw(st.integers(1, max_ndim))
    shape = tuple(draw(st.lists(st.integers(1, 7), min_size=ndim, max_size=ndim)))
    dtype = np.dtype(draw(st.sampled_from(DTYPES)))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    a = rng.integers(0, 20, size=shape).astype(dtype)  # few values: ties
    if dtype.kind == "f" and draw(st.booleans()):
        a[rng.random(shape) < 0.25] = np.nan
    return a


@st.composite
def windows(draw, ndim):
    """size (int or per axis) or a footprint, and an origin valid for it."""
    if draw(st.booleans()):
        sizes = tuple(draw(st.lists(st.integers(1, 4), min_size=ndim, max_size=ndim)))
        footprint = None
        size = sizes[0] if draw(st.booleans()) and len(set(sizes)) == 1 else sizes
    else:
        sizes = tuple(draw(st.lists(st.integers(1, 3), min_size=ndim, max_size=ndim)))
        rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
        footprint = rng.random(sizes) < 0.6
        footprint.flat[rng.integers(footprint.size)] = True
        size = None
    origin = tuple(draw(st.integers(-(s // 2), (s - 1) // 2)) for s in sizes)
    return size, footprint, origin, int(np.prod(sizes)) if footprint is None else int(
        footprint.sum())


def _call(module, name, a, cells, draw_rank, **kwargs):
    if name == "rank_filter":
        return getattr(module, name)(a, draw_rank, **kwargs)
    if name == "percentile_filter":
        percentile = min(100.0, max(-100.0, draw_rank * 100.0 / cells - 10))
        return getattr(module, name)(a, percentile, **kwargs)
    return getattr(module, name)(a, **kwargs)


@settings(max_examples=150)
@given(data=st.data())
def test_every_function_mode_dtype_and_rank_matches_scipy(data):
    a = data.draw(arrays())
    size, footprint, origin, cells = data.draw(windows(a.ndim))
    name = data.draw(st.sampled_from(FUNCTIONS))
    mode = data.draw(st.sampled_from(MODES))
    cval = data.draw(st.sampled_from([0.0, 3.0, 7.5, np.nan] if a.dtype.kind == "f" else
                                     [0.0, 3.0, 7.5]))
    rank = data.draw(st.integers(-cells, cells - 1))
    kwargs = dict(size=size, footprint=footprint, mode=mode, cval=cval, origin=origin)
    expected = _call(sndi, name, a, cells, rank, **kwargs)
    assert_same(_call(ndi, name, a, cells, rank, **kwargs), expected)


@given(data=st.data())
def test_1d_filters_and_per_axis_modes_match_scipy(data):
    a = data.draw(arrays(max_ndim=3))
    axis = data.draw(st.integers(-a.ndim, a.ndim - 1))
    size = data.draw(st.integers(1, 9))
    origin = data.draw(st.integers(-(size // 2), (size - 1) // 2))
    mode = data.draw(st.sampled_from(MODES))
    for name in ("minimum_filter1d", "maximum_filter1d"):
        kwargs = dict(axis=axis, mode=mode, cval=2.0, origin=origin)
        assert_same(getattr(ndi, name)(a, size, **kwargs),
                    getattr(sndi, name)(a, size, **kwargs))
    modes = [data.draw(st.sampled_from(MODES)) for _ in range(a.ndim)]
    for name in ("minimum_filter", "maximum_filter"):
        assert_same(getattr(ndi, name)(a, size=3, mode=modes, cval=1.0),
                    getattr(sndi, name)(a, size=3, mode=modes, cval=1.0))


@pytest.mark.parametrize("name", FUNCTIONS)
def test_axes_output_array_and_output_dtype(name):
    rng = np.random.default_rng(1)
    a = rng.random((5, 6, 7)) * 50
    kwargs = dict(size=(3, 2), axes=(2, 0), mode="nearest")
    if name in ("rank_filter", "percentile_filter"):
        kwargs[{"rank_filter": "rank", "percentile_filter": "percentile"}[name]] = 2
    for output in (np.int16, np.empty(a.shape, np.uint8), np.empty(a.shape, np.float32)):
        ours, theirs = (getattr(m, name)(a, output=output if isinstance(output, type)
                                         else output.copy(), **kwargs) for m in (ndi, sndi))
        assert_same(ours, theirs)
    out = np.empty_like(a)
    assert getattr(ndi, name)(a, output=out, **kwargs) is out


def test_box_filters_of_large_windows_match_scipy():
    rng = np.random.default_rng(2)
    a = rng.random((70, 90)).astype(np.float32)
    for size in [(15, 15), (31, 1), (1, 40), (9, 23)]:
        for name in ("minimum_filter", "maximum_filter"):
            assert_same(getattr(ndi, name)(a, size=size, mode="mirror"),
                        getattr(sndi, name)(a, size=size, mode="mirror"))
    y, x = np.mgrid[-7:8, -7:8]
    disk = x * x + y * y <= 49
    for mode in ("reflect", "constant"):
        assert_same(ndi.maximum_filter(a, footprint=disk, mode=mode, cval=0.5),
                    sndi.maximum_filter(a, footprint=disk, mode=mode, cval=0.5))
    assert_same(ndi.median_filter(a, size=7), sndi.median_filter(a, size=7))
    assert_same(ndi.median_filter(a, footprint=disk[::2, ::2]),
                sndi.median_filter(a, footprint=disk[::2, ::2]))


@pytest.mark.parametrize("shape", [(3, 3), (5, 5), pytest.param((3, 5), marks=pytest.mark.slow),
                                   pytest.param((1, 5), marks=pytest.mark.slow)])
def test_selection_network_medians_match_scipy(shape):
    rng = np.random.default_rng(3)
    a = rng.integers(0, 6, size=(9, 11, 13)).astype(np.int16)  # ties everywhere
    assert _networks.network_kernel(np.ones(shape, bool), np.prod(shape) // 2, a.dtype)
    assert_same(ndi.median_filter(a, size=shape, axes=(1, 2)),
                sndi.median_filter(a, size=shape, axes=(1, 2)))


@pytest.mark.parametrize("h, w", [(3, 3), (5, 5), (3, 5), (1, 5)])
def test_selection_networks_select_every_rank(h, w):
    # _prune checks its network on every sorted-column 0-1 input (a proof by the
    # 0-1 principle); here the pruned ops run on random data in plain Python.
    rng = np.random.default_rng(h * w)
    for rank in range(h * w):
        ops, wires = _networks._prune(h, w, rank)
        for _ in range(20):
            values = rng.integers(0, 5, size=h * w).astype(float)
            cols = np.sort(values.reshape(w, h), axis=1).reshape(-1)  # wire c*h + k
            wire = dict(enumerate(cols))
            for op, i, j in ops:
                lo, hi = min(wire[i], wire[j]), max(wire[i], wire[j])
                if op in ("cx", "min"):
                    wire[i] = lo
                if op in ("cx", "max"):
                    wire[j] = hi
            assert wire[rank] == np.sort(values)[rank]


def test_selection_network_for_5x5_is_small():
    ops, wires = _networks._prune(5, 5, 12)
    assert len(wires) == 25
    # fewer comparators than the best known 25-input median networks (99)
    assert len(ops) < 99


def test_nan_propagates_exactly_as_scipy():
    # scipy's NaN placement depends on its algorithm: these pin the cases.
    n = np.nan
    for line in ([n, 1, 2, 3, 4, 5], [1, n, 2, 3, 4, 5], [5, 4, n, 3, 2, 1, 0, -1],
                 [n, n, 1, 2, 3, 4]):
        a = np.array(line)
        for name in ("minimum_filter1d", "maximum_filter1d"):
            assert_same(getattr(ndi, name)(a, 3), getattr(sndi, name)(a, 3))
        assert_same(ndi.maximum_filter(a, footprint=[1, 0, 1]),
                    sndi.maximum_filter(a, footprint=[1, 0, 1]))
        assert_same(ndi.median_filter(a, 3), sndi.median_filter(a, 3))
        b = np.tile(a, (3, 1))
        assert_same(ndi.median_filter(b, 3), sndi.median_filter(b, 3))


@pytest.mark.parametrize("mode", ["reflect", "constant", "wrap"])
def test_banded_kernels_across_tasks_and_a_late_nan(mode):
    # Bigger than one band or task of the fused box and the median network, with 3-D
    # stacks and origins; then one NaN in the last rows, which must send the whole call
    # to scipy's own steps (the kernels count NaN as they go and their result is dropped).
    rng = np.random.default_rng(8)
    a = rng.random((2, 83, 45)).astype(np.float32)
    disk = np.add.outer(np.arange(-2, 3) ** 2, np.arange(-2, 3) ** 2) <= 4
    for b in (a, np.where(np.arange(83)[:, None] == 80, np.float32(np.nan), a)):
        for call in (
                lambda m, x: m.maximum_filter(x, size=(1, 7, 4), mode=mode, origin=(0, 1, -1)),
                lambda m, x: m.minimum_filter(x, size=(1, 9, 9), mode=mode, cval=0.5),
                lambda m, x: m.median_filter(x, size=(1, 5, 5), mode=mode, origin=(0, -1, 2)),
                lambda m, x: m.median_filter(x, size=(1, 3, 5), mode=mode, cval=0.25),
                lambda m, x: m.maximum_filter(x, footprint=disk[None], mode=mode)):
            assert_same(call(ndi, b), call(sndi, b))
        for name in ("median_filter", "maximum_filter"):  # written straight into output=
            out = np.full(b.shape, -1.0, np.float32)
            assert getattr(ndi, name)(b, size=(1, 5, 5), mode=mode, output=out) is out
            assert_same(out, getattr(sndi, name)(b, size=(1, 5, 5), mode=mode))


def _omit_reference(a, footprint, mode, cval, pick):
    pad = [(f // 2, f - 1 - f // 2) for f in footprint.shape]
    kw = {"constant_values": cval} if mode == "constant" else {}
    padded = np.pad(a, pad, mode={"reflect": "symmetric", "constant": "constant"}[mode], **kw)
    out = np.empty(a.shape)
    for idx in np.ndindex(a.shape):
        window = padded[tuple(slice(i, i + f) for i, f in zip(idx, footprint.shape))]
        values = window[footprint]
        values = np.sort(values[~np.isnan(values)])
        out[idx] = pick(values) if values.size else np.nan
    return out


@pytest.mark.parametrize("mode", ["reflect", "constant"])
def test_nan_policy_omit_ignores_nan_in_each_window(mode):
    rng = np.random.default_rng(4)
    a = rng.random((6, 7))
    a[rng.random(a.shape) < 0.4] = np.nan
    a[:3, :3] = np.nan  # some windows hold NaN only
    fp = np.array([[1, 1, 0], [1, 1, 1], [0, 1, 1]], bool)
    box = np.ones((3, 3), bool)
    cases = [
        ("minimum_filter", {}, lambda v: v[0]),
        ("maximum_filter", {}, lambda v: v[-1]),
        ("median_filter", {}, lambda v: v[v.size // 2]),
        ("percentile_filter", {"percentile": 25}, lambda v: v[int(v.size * 25 / 100)]),
        ("rank_filter", {"rank": -2}, lambda v: v[max(v.size - 2, 0)]),
    ]
    for name, extra, pick in cases:
        for footprint in (fp, box):
            ours = getattr(ndi, name)(a, footprint=footprint, mode=mode, cval=np.nan,
                                      nan_policy="omit", **extra)
            np.testing.assert_array_equal(ours, _omit_reference(a, footprint, mode, np.nan,
                                                                pick))


def test_nan_policy_omit_leaves_nan_free_data_as_scipy():
    a = np.random.default_rng(5).random((8, 9))
    for name in ("minimum_filter", "median_filter"):
        assert_same(getattr(ndi, name)(a, size=3, nan_policy="omit"),
                    getattr(sndi, name)(a, size=3))


def test_bool_big_endian_and_non_contiguous_inputs():
    rng = np.random.default_rng(6)
    b = rng.random((9, 10)) < 0.5
    for name in ("minimum_filter", "maximum_filter", "median_filter"):
        assert_same(getattr(ndi, name)(b, size=3), getattr(sndi, name)(b, size=3))
    big = rng.random((9, 10)).astype(">f8")[::2, ::-1]
    for name in ("maximum_filter", "median_filter"):
        assert_same(getattr(ndi, name)(big, size=(2, 3)), getattr(sndi, name)(big, size=(2, 3)))


def test_output_may_be_the_input():
    a = np.random.default_rng(7).random((6, 6))
    expected = sndi.maximum_filter(a, size=3)
    assert ndi.maximum_filter(a, size=3, output=a) is a
    np.testing.assert_array_equal(a, expected)


@pytest.mark.parametrize("call, error", [
    (lambda a: ndi.median_filter(a + 1j, size=3), TypeError),
    (lambda a: ndi.rank_filter(a, 9, size=3), RuntimeError),
    (lambda a: ndi.percentile_filter(a, 101, size=3), RuntimeError),
    (lambda a: ndi.maximum_filter(a, size=3, origin=2), ValueError),
    (lambda a: ndi.minimum_filter(a, footprint=np.zeros((3, 3))), ValueError),
    (lambda a: ndi.maximum_filter(a, footprint=[[1, 0], [1, 1]], mode=["wrap", "wrap"]),
     RuntimeError),
    (lambda a: ndi.median_filter(a, size=3, mode=["wrap", "wrap"]), RuntimeError),
    (lambda a: ndi.maximum_filter(a), RuntimeError),
    (lambda a: ndi.minimum_filter1d(a, 0), RuntimeError),
    (lambda a: ndi.maximum_filter(a, size=3, mode="refelct"), RuntimeError),
    (lambda a: ndi.median_filter(a, size=3, nan_policy="ignore"), ValueError),
    (lambda a: ndi.maximum_filter(a, size=3, output=np.empty((2, 2))), RuntimeError),
])
def test_bad_input_raises_scipys_error_type_naming_the_argument(call, error):
    a = np.ones((4, 4))
    with pytest.raises(error) as info:
        call(a)
    assert isinstance(info.value, StencilError)
    assert info.value.param is not None


def test_dask_in_lazy_dask_out_exact_at_chunk_edges():
    da = pytest.importorskip("dask.array")
    rng = np.random.default_rng(8)
    a = rng.random((30, 41)).astype(np.float32)
    d = da.from_array(a, chunks=(7, 9))
    y, x = np.mgrid[-2:3, -2:3]
    disk = x * x + y * y <= 4
    for mode in ("reflect", "wrap", "constant"):
        lazy = ndi.maximum_filter(d, footprint=disk, mode=mode, origin=(1, 0))
        assert isinstance(lazy, da.Array)
        assert_same(lazy.compute(), sndi.maximum_filter(a, footprint=disk, mode=mode,
                                                        origin=(1, 0)))
        assert_same(ndi.median_filter(d, size=(3, 5), mode=mode).compute(),
                    sndi.median_filter(a, size=(3, 5), mode=mode))
        assert_same(ndi.minimum_filter1d(d, 6, axis=0, mode=mode).compute(),
                    sndi.minimum_filter1d(a, 6, axis=0, mode=mode))


@settings(max_examples=20)
@given(data=st.data())
def test_zero_sized_and_size_one_arrays(data):
    shape = tuple(data.draw(st.lists(st.integers(0, 2), min_size=1, max_size=3)))
    a = np.ones(shape, np.float32)
    for name in ("maximum_filter", "median_filter"):
        assert_same(getattr(ndi, name)(a, size=2), getattr(sndi, name)(a, size=2))


# -- whole stores: an extremum updated in place is stored whole, bit for bit --------


def test_whole_store_gives_every_value_back_bit_for_bit():
    from numba import njit

    from stencils._kernels_order import store_identity, whole_store

    @njit
    def restore(a, out):
        zero = store_identity(out)
        for i in range(a.shape[0]):
            out[i] = whole_store(a[i], zero)

    tiny = np.finfo(np.float64).smallest_subnormal
    for dtype in (np.float32, np.float64):
        a = np.array([-0.0, 0.0, np.nan, -np.nan, np.inf, -np.inf, tiny, -tiny, 1.5, -3.25],
                     dtype=dtype)
        out = np.full_like(a, 7)
        restore(a, out)
        assert out.tobytes() == a.tobytes()
    for dtype in (np.uint8, np.int8, np.int32, np.int64):
        info = np.iinfo(dtype)
        a = np.array([info.min, info.max, 0, 1], dtype=dtype)
        out = np.full_like(a, 7)
        restore(a, out)
        assert out.tobytes() == a.tobytes()


_MASKED_STORES_CHILD = r"""
import numpy as np
from numba import njit
from stencils import _kernels_order as ko

@njit
def in_place_max(dst, row):
    for c in range(dst.shape[0]):
        v = row[c]
        d = dst[c]
        dst[c] = v if v > d else d

def masked(dispatcher):
    return sum(dispatcher.inspect_asm(sig).count("maskmov") for sig in dispatcher.signatures)

for dtype in (np.float32, np.float64):
    a, b = np.zeros(64, dtype), np.zeros(80, dtype)
    in_place_max(a, b)
    ko._pick3_rows(a, b, 3, 7, 64, False)
    ko._advance_prefix(a, a.copy(), a.copy(), b.reshape(1, 1, 80), 0, 0, 0, 1, 0, 0.0, 0, 64,
                       True, False)
    big = np.zeros(64)
    ko.run_extremes(np.zeros(80), 5, big, big.copy())
    ko.combine_rows(np.zeros((2, 64)), np.zeros((2, 64)), np.array([0, 1]), big, big.copy())
print(masked(in_place_max), *(masked(getattr(ko, name)) for name in
      ("_pick3_rows", "_advance_prefix", "run_extremes", "combine_rows")))
"""


def test_in_place_extremum_loops_make_no_masked_stores(tmp_path):
    # Compiled in a fresh process for Zen 3 (AVX2, no AVX-512), where LLVM turns a
    # plain in-place update into VMASKMOVPS: the first count shows this LLVM does.
    import os
    import subprocess
    import sys

    env = dict(os.environ, NUMBA_CPU_NAME="znver3", NUMBA_CACHE_DIR=str(tmp_path / "numba"),
               STENCILS_CACHE_DIR=str(tmp_path / "stencils"))
    done = subprocess.run([sys.executable, "-c", _MASKED_STORES_CHILD], env=env,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    plain, *kernels = map(int, done.stdout.split())
    if plain == 0:
        pytest.skip("this LLVM makes no masked store of a plain in-place update either")
    assert kernels == [0, 0, 0, 0]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape, sizes", [((40, 37), (3, 5, (3, 5))), ((4, 9, 11), (3, (1, 3, 3))),
                                          ((90,), (3, 5))])
@pytest.mark.parametrize("name", ["maximum_filter", "minimum_filter", "median_filter"])
def test_signed_zeros_keep_scipy_s_bits(dtype, shape, sizes, name):
    """-0.0 equals 0.0 in every comparison: which one a window keeps is the algorithm's
    (scipy's deque keeps the newest, its quickselect and 1-D mediator their own order)."""
    rng = np.random.default_rng(11)
    a = rng.choice(np.array([-0.0, 0.0, 1.0, -1.0], dtype), size=shape)
    for size in sizes:
        for mode, cval in (("reflect", 0.0), ("constant", -0.0)):
            ours = getattr(ndi, name)(a, size=size, mode=mode, cval=cval)
            theirs = getattr(sndi, name)(a, size=size, mode=mode, cval=cval)
            assert_same(ours, theirs)
            np.testing.assert_array_equal(np.signbit(ours), np.signbit(theirs))
    for axis in range(a.ndim):
        if name != "median_filter":
            line = name.replace("_filter", "_filter1d")
            np.testing.assert_array_equal(np.signbit(getattr(ndi, line)(a, 3, axis=axis)),
                                          np.signbit(getattr(sndi, line)(a, 3, axis=axis)))


@settings(max_examples=60, deadline=None)
@given(data=st.data())
def test_8_bit_boxes_by_running_histogram(data):
    """8-bit boxes over the last two axes take the running histogram: scipy's values for
    every mode, rank, percentile and origin (a window's values, whichever selection)."""
    dtype = data.draw(st.sampled_from([np.uint8, np.int8]))
    shape = tuple(data.draw(st.lists(st.integers(1, 12), min_size=2, max_size=3)))
    rng = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1)))
    info = np.iinfo(dtype)
    a = rng.integers(info.min, int(info.max) + 1, size=shape).astype(dtype)
    h, w = data.draw(st.integers(1, 9)), data.draw(st.integers(2, 9))
    size = (1,) * (len(shape) - 2) + (h, w)
    kwargs = {"size": size, "mode": data.draw(st.sampled_from(MODES)),
              "cval": data.draw(st.integers(-300, 300)),
              "origin": (0,) * (len(shape) - 2) + (data.draw(st.integers(-(h // 2), (h - 1) // 2)),
                                                   data.draw(st.integers(-(w // 2), (w - 1) // 2)))}
    which = data.draw(st.sampled_from(["median_filter", "rank_filter", "percentile_filter"]))
    extra = {"rank_filter": (data.draw(st.integers(1, h * w - 2)),) if h * w > 2 else (0,),
             "percentile_filter": (data.draw(st.floats(0, 100)),)}.get(which, ())
    assert_same(getattr(ndi, which)(a, *extra, **kwargs),
                getattr(sndi, which)(a, *extra, **kwargs))


def test_large_8_bit_median_takes_the_histogram(monkeypatch):
    from stencils.ndimage import _order

    served = []
    real = _order._histogram_rank

    def spy(*args):
        result = real(*args)
        served.append(result is not None)
        return result
    monkeypatch.setattr(_order, "_histogram_rank", spy)
    a = np.random.default_rng(5).integers(0, 256, (3, 40, 57)).astype(np.uint8)
    for size in ((1, 15, 15), (1, 7, 9)):
        ours = ndi.median_filter(a, size=size)
        assert served.pop() is True
        assert_same(ours, sndi.median_filter(a, size=size))
