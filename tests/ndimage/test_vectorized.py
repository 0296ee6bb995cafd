"""stencils.ndimage.vectorized_filter against scipy.ndimage.vectorized_filter, bit for bit.

Every mode ('valid' included), rank 1-4, boxes and footprints, unsorted axes,
origins, batches and NaN / -0.0 in the input, for the reductions that run on
the stencil core's filters and for ones that do not; which path served a call
is checked too, and bad input gets scipy's error types naming the argument.
"""

import warnings

import numpy as np
import pytest
import scipy.ndimage as sndi
from hypothesis import given, settings
from hypothesis import strategies as st

from stencils import ndimage as ndi
from stencils.errors import StencilError
from stencils.ndimage import _order

MODES = ["reflect", "constant", "nearest", "mirror", "wrap", "grid-wrap", "grid-constant",
         "grid-mirror", "valid"]
DTYPES = [np.uint8, np.int16, np.int64, np.float32, np.float64, np.bool_, np.complex64]


def _quartiles(x, axis):
    return np.quantile(x, [0.25, 0.75], axis=axis)


FUNCTIONS = [np.max, np.amin, np.nanmax, np.median, np.nanmedian, np.mean, np.ptp, np.sum]


def assert_same(ours, theirs):
    assert ours.dtype == theirs.dtype
    assert ours.shape == theirs.shape
    np.testing.assert_array_equal(ours, theirs)


@st.composite
def cases(draw):
    ndim = draw(st.integers(1, 4))
    shape = tuple(draw(st.lists(st.integers(1, 6), min_size=ndim, max_size=ndim)))
    dtype = np.dtype(draw(st.sampled_from(DTYPES)))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    a = (rng.integers(-9, 9, size=shape) if dtype.kind != "u"
         else rng.integers(0, 20, size=shape)).astype(dtype)  # few values: ties
    if dtype.kind == "f":
        special = draw(st.sampled_from([None, np.nan, -0.0]))
        if special is not None:
            a[rng.random(shape) < 0.25] = special
    naxes = draw(st.integers(1, ndim))
    axes = tuple(int(x) for x in rng.permutation(ndim)[:naxes])
    mode = draw(st.sampled_from(MODES))
    limit = [shape[ax] for ax in axes] if mode == "valid" else [4] * naxes
    sizes = tuple(draw(st.integers(1, max(1, lim))) for lim in limit)
    kwargs = {"mode": mode, "axes": axes}
    if draw(st.booleans()):
        kwargs["size"] = sizes
    else:
        footprint = rng.random(sizes) < 0.6
        footprint.flat[rng.integers(footprint.size)] = True
        kwargs["footprint"] = footprint
    if mode != "valid" and draw(st.booleans()):
        kwargs["origin"] = tuple(draw(st.integers(-(s // 2), (s - 1) // 2)) for s in sizes)
    if mode in ("constant", "grid-constant") and draw(st.booleans()):
        kwargs["cval"] = draw(st.sampled_from([0, 3, -2.5, np.nan, -0.0]))
    return a, kwargs


@settings(max_examples=300, deadline=None)
@given(case=cases(), function=st.sampled_from(FUNCTIONS))
def test_equals_scipy(case, function):
    a, kwargs = case
    if function in (np.median, np.nanmedian, np.ptp) and a.dtype.kind == "b":
        return  # NumPy itself refuses these on bool windows
    if function is np.ptp and a.dtype.kind == "c":
        return
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        try:
            theirs = sndi.vectorized_filter(a, function, **kwargs)
        except ValueError:  # NumPy refuses a NaN cval for some integer dtypes
            with pytest.raises(ValueError, match="cval"):
                ndi.vectorized_filter(a, function, **kwargs)
            return
        assert_same(ndi.vectorized_filter(a, function, **kwargs), theirs)


def _served_by_filter(monkeypatch):
    served = []
    for name in ("maximum_filter", "minimum_filter", "median_filter"):
        real = getattr(_order, name)

        def spy(*args, _real=real, _name=name, **kwargs):
            served.append(_name)
            return _real(*args, **kwargs)
        monkeypatch.setattr(_order, name, spy)
    return served


@pytest.mark.parametrize("dtype", [np.float32, np.int32])
@pytest.mark.parametrize("function, name", [(np.max, "maximum_filter"),
                                            (np.nanmin, "minimum_filter"),
                                            (np.median, "median_filter")])
def test_reductions_run_on_the_filters(monkeypatch, dtype, function, name):
    served = _served_by_filter(monkeypatch)
    a = np.random.default_rng(1).standard_normal((30, 41)).__mul__(10).astype(dtype)
    for kwargs in ({"size": 3}, {"size": (3, 5), "mode": "valid"},
                   {"footprint": np.eye(3, dtype=bool), "mode": "wrap", "origin": (1, -1)}):
        assert_same(ndi.vectorized_filter(a, function, **kwargs),
                    sndi.vectorized_filter(a, function, **kwargs))
    assert served == [name] * 3


@pytest.mark.parametrize("special", [np.nan, -0.0])
def test_nan_and_negative_zero_take_the_windows_path(monkeypatch, special):
    served = _served_by_filter(monkeypatch)
    a = np.array([[1.0, 0.0, 2.0], [0.5, 3.0, 1.0]])
    a[0, 1] = special
    for function in (np.max, np.median):
        assert_same(ndi.vectorized_filter(a, function, size=3),
                    sndi.vectorized_filter(a, function, size=3))
    assert served == []


def test_even_median_window_takes_the_windows_path(monkeypatch):
    served = _served_by_filter(monkeypatch)
    a = np.arange(20.0).reshape(4, 5) ** 1.5
    assert_same(ndi.vectorized_filter(a, np.median, size=2),
                sndi.vectorized_filter(a, np.median, size=2))
    assert served == []


def test_multi_valued_function_and_fortran_order():
    a = np.asfortranarray(np.random.default_rng(2).random((9, 7)))
    ours = ndi.vectorized_filter(a, _quartiles, size=3, batch_memory=np.inf)
    assert_same(ours, sndi.vectorized_filter(a, _quartiles, size=3, batch_memory=np.inf))
    assert ours.shape == (2, 9, 7)
    # np.mean's bits follow the order its sum meets the values: Fortran input stays Fortran.
    assert_same(ndi.vectorized_filter(a, np.mean, size=(5, 3)),
                sndi.vectorized_filter(a, np.mean, size=(5, 3)))


@pytest.mark.parametrize("batch_memory", [8 * 9 * 5, 8 * 9 * 5 * 3, 2**30])
def test_batches_give_one_call_s_result(batch_memory):
    a = np.random.default_rng(3).random((11, 5))
    output = np.empty_like(a)
    ours = ndi.vectorized_filter(a, np.mean, size=3, output=output, batch_memory=batch_memory)
    assert ours is output
    assert_same(ours, sndi.vectorized_filter(a, np.mean, size=3))


@pytest.mark.parametrize("kwargs, param", [
    ({"size": 0}, "size"),
    ({"size": (2, 2.5)}, "size"),
    ({}, "size"),
    ({"size": 2, "footprint": np.ones((2, 2))}, "footprint"),
    ({"size": (2,)}, "axes"),
    ({"size": 2, "axes": (0, 1, 2)}, "axes"),
    ({"size": 2, "origin": (1, 0.5)}, "origin"),
    ({"size": 2, "origin": (0, 0, 0)}, "origin"),
    ({"size": 3, "origin": 2}, "origin"),
    ({"size": 2, "mode": "edge"}, "mode"),
    ({"size": 2, "mode": "valid", "origin": 1}, "origin"),
    ({"size": 2, "mode": "reflect", "cval": 1}, "cval"),
    ({"size": 2, "mode": "constant", "cval": "a duck"}, "cval"),
    ({"size": 2, "batch_memory": 0}, "batch_memory"),
    ({"size": 2, "batch_memory": 1}, "batch_memory"),
    ({"size": 12, "mode": "valid"}, "size"),
])
def test_bad_arguments_name_themselves(kwargs, param):
    a = np.ones((10, 10))
    with pytest.raises(ValueError) as ours:
        ndi.vectorized_filter(a, np.mean, **kwargs)
    assert isinstance(ours.value, StencilError) and ours.value.param == param
    with pytest.raises(ValueError):
        sndi.vectorized_filter(a, np.mean, **kwargs)


def test_function_and_output_are_checked():
    with pytest.raises(ValueError, match="function"):
        ndi.vectorized_filter(np.ones(3), "eggplant", size=2)
    with pytest.raises(TypeError, match="output"):
        ndi.vectorized_filter(np.ones(3), np.mean, size=2, output=np.float32)


@pytest.mark.parametrize("mode", ["reflect", "constant", "wrap", "grid-mirror", "valid"])
@pytest.mark.parametrize("function", [np.mean, np.max, np.median])
def test_dask_input_gives_the_in_memory_result_lazily(mode, function):
    da = pytest.importorskip("dask.array")
    a = np.random.default_rng(4).random((23, 19))
    lazy = da.from_array(a, chunks=(6, 5))
    for kwargs in ({"size": (5, 3), "axes": (1, 0)},
                   {"footprint": np.array([[1, 0, 1, 1]], bool)}):
        ours = ndi.vectorized_filter(lazy, function, mode=mode, **kwargs)
        assert isinstance(ours, da.Array)
        assert_same(ours.compute(), sndi.vectorized_filter(a, function, mode=mode, **kwargs))


def test_dask_input_needs_one_value_per_window_and_no_output():
    da = pytest.importorskip("dask.array")
    lazy = da.ones((8, 8), chunks=4)
    with pytest.raises(TypeError, match="one value per window") as error:
        ndi.vectorized_filter(lazy, _quartiles, size=3)
    assert error.value.param == "function"
    with pytest.raises(TypeError, match="output"):
        ndi.vectorized_filter(lazy, np.mean, size=3, output=np.empty((8, 8)))


def test_empty_and_zero_dimensional_input():
    empty = np.empty((0, 3))
    assert ndi.vectorized_filter(empty, np.mean, size=2) is empty
    for footprint in (True, False, None):
        kwargs = {"size": ()} if footprint is None else {"footprint": footprint}
        with np.errstate(all="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            assert_same(ndi.vectorized_filter(np.asarray(2.0), np.mean, **kwargs),
                        sndi.vectorized_filter(np.asarray(2.0), np.mean, **kwargs))

