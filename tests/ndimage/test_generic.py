"""generic_filter and generic_filter1d against scipy.ndimage: compiled, fallback and low-level paths."""

import decimal
import warnings

import numba
import numpy as np
import pytest
import scipy
import scipy.ndimage as sndi
from hypothesis import given, settings
from hypothesis import strategies as st

from stencils import _kernels_order as ko
from stencils import ndimage as ndi
from stencils._kernels_window import as_window
from stencils.errors import StencilError

MODES = ["reflect", "constant", "nearest", "mirror", "wrap", "grid-wrap"]
DTYPES = [np.uint8, np.int16, np.int32, np.float32, np.float64]


def spread(window):
    return window.max() - window.min()


def weighted(window, weights, scale=1.0):
    return (window * weights[: window.size]).sum() / scale


def second_largest(window):
    return np.sort(window)[-2] if window.size > 1 else window[0]


def uses_python_only(window):
    return float(len({float(v) for v in window}))  # sets of floats: not in nopython mode


def assert_same(ours, theirs):
    assert ours.dtype == theirs.dtype
    np.testing.assert_array_equal(ours, theirs)


@settings(max_examples=40)
@given(data=st.data())
def test_compiled_function_matches_scipy(data):
    ndim = data.draw(st.integers(1, 4))
    shape = tuple(data.draw(st.lists(st.integers(1, 6), min_size=ndim, max_size=ndim)))
    dtype = data.draw(st.sampled_from(DTYPES))
    rng = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1)))
    a = (rng.random(shape) * 100).astype(dtype)
    if np.dtype(dtype).kind == "f" and data.draw(st.booleans()):
        a[rng.random(shape) < 0.2] = np.nan
    if data.draw(st.booleans()):
        kwargs = dict(size=tuple(data.draw(st.lists(st.integers(1, 3), min_size=ndim,
                                                    max_size=ndim))))
        sizes = kwargs["size"]
    else:
        fp = rng.random(tuple(data.draw(st.lists(st.integers(1, 3), min_size=ndim,
                                                 max_size=ndim)))) < 0.6
        fp.flat[0] = True
        kwargs = dict(footprint=fp)
        sizes = fp.shape
    kwargs["origin"] = tuple(data.draw(st.integers(-(s // 2), (s - 1) // 2)) for s in sizes)
    kwargs["mode"] = data.draw(st.sampled_from(MODES))
    kwargs["cval"] = data.draw(st.sampled_from([0.0, 2.5]))
    function = data.draw(st.sampled_from([spread, second_largest]))
    with warnings.catch_warnings():
        warnings.simplefilter("error", ndi.CompileFallbackWarning)
        ours = ndi.generic_filter(a, function, **kwargs)
    assert_same(ours, sndi.generic_filter(a, function, **kwargs))


def test_extra_arguments_keywords_axes_and_output():
    a = np.random.default_rng(1).random((6, 7, 8))
    weights = np.arange(1.0, 10.0)
    kwargs = dict(size=(3, 3), axes=(0, 2), extra_arguments=(weights,),
                  extra_keywords={"scale": 4.0}, mode="mirror")
    # Numba's .sum() adds in order, NumPy's pairwise: the last bit may differ.
    for output in (None, np.float32):
        np.testing.assert_allclose(ndi.generic_filter(a, weighted, output=output, **kwargs),
                                   sndi.generic_filter(a, weighted, output=output, **kwargs),
                                   rtol=1e-6 if output else 1e-14)


def test_numpy_function_runs_compiled():
    a = np.random.default_rng(2).random((9, 9))
    with warnings.catch_warnings():
        warnings.simplefilter("error", ndi.CompileFallbackWarning)
        ours = ndi.generic_filter(a, np.median, size=3)
    assert_same(ours, sndi.generic_filter(a, np.median, size=3))


def test_function_the_inliner_refuses_runs_compiled():
    a = np.random.default_rng(9).random((8, 9))
    expected = sndi.generic_filter(a, spread_of_args, size=(2, 3), extra_arguments=(1.0,))
    with warnings.catch_warnings():
        warnings.simplefilter("error", ndi.CompileFallbackWarning)
        for _ in range(2):  # the second call goes straight to the form that compiles
            assert_same(ndi.generic_filter(a, spread_of_args, size=(2, 3),
                                           extra_arguments=(1.0,)), expected)


def test_uncompilable_function_falls_back_with_the_reason():
    a = np.random.default_rng(3).integers(0, 4, size=(7, 8)).astype(np.int16)
    with pytest.warns(ndi.CompileFallbackWarning, match="uses_python_only.*Numba cannot"):
        ours = ndi.generic_filter(a, uses_python_only, size=(2, 3), mode="wrap")
    assert_same(ours, sndi.generic_filter(a, uses_python_only, size=(2, 3), mode="wrap"))


def test_low_level_callable_gives_scipys_result():
    numba = pytest.importorskip("numba")
    from numba import carray, cfunc, types

    sig = types.intc(types.CPointer(types.double), types.intp, types.CPointer(types.double),
                     types.voidptr)

    @cfunc(sig)
    def c_spread(values, n, result, user_data):
        w = carray(values, (n,))
        result[0] = w.max() - w.min()
        return 1

    callable_ = scipy.LowLevelCallable(c_spread.ctypes)
    a = np.random.default_rng(4).random((10, 11))
    assert_same(ndi.generic_filter(a, callable_, size=3),
                sndi.generic_filter(a, spread, size=3))
    assert numba  # the cfunc came from numba


def shift_sum(line, out, k=1):
    out[:] = line[:-2] + k * line[2:]


def running_max(line, out):
    for j in range(out.size):
        out[j] = line[j:j + 3].max()


def spread_of_args(window, *args):
    return window.max() - window.min() + sum(args)


def python_line(line, out):
    for j in range(out.size):
        out[j] = float(decimal.Decimal(line[j + 1]))  # decimal: Python only


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("dtype", [np.int16, np.float32])
def test_generic_filter1d_matches_scipy(mode, dtype):
    a = (np.random.default_rng(5).random((5, 6, 7)) * 50).astype(dtype)
    for axis in (0, -1):
        for origin in (-1, 0, 1):
            kwargs = dict(axis=axis, mode=mode, cval=1.5, origin=origin,
                          extra_keywords={"k": 2})
            assert_same(ndi.generic_filter1d(a, shift_sum, 3, **kwargs),
                        sndi.generic_filter1d(a, shift_sum, 3, **kwargs))
        assert_same(ndi.generic_filter1d(a, running_max, 3, axis=axis, mode=mode),
                    sndi.generic_filter1d(a, running_max, 3, axis=axis, mode=mode))


def test_generic_filter1d_fallback():
    a = np.arange(12.0).reshape(3, 4)
    with pytest.warns(ndi.CompileFallbackWarning):
        ours = ndi.generic_filter1d(a, python_line, 3, mode="nearest")
    assert_same(ours, sndi.generic_filter1d(a, python_line, 3, mode="nearest"))


def test_dask_in_lazy_dask_out():
    da = pytest.importorskip("dask.array")
    a = np.random.default_rng(6).random((20, 23))
    d = da.from_array(a, chunks=(6, 7))
    lazy = ndi.generic_filter(d, spread, size=(3, 4), mode="wrap")
    assert isinstance(lazy, da.Array)
    assert_same(lazy.compute(), sndi.generic_filter(a, spread, size=(3, 4), mode="wrap"))
    lazy1d = ndi.generic_filter1d(d, shift_sum, 3, axis=0, mode="reflect")
    assert_same(lazy1d.compute(), sndi.generic_filter1d(a, shift_sum, 3, axis=0))


@pytest.mark.parametrize("call, error", [
    (lambda a: ndi.generic_filter(a, 3, size=3), TypeError),
    (lambda a: ndi.generic_filter(a + 1j, spread, size=3), TypeError),
    (lambda a: ndi.generic_filter(a, spread), RuntimeError),
    (lambda a: ndi.generic_filter(a, spread, size=3, origin=2), ValueError),
    (lambda a: ndi.generic_filter(a, spread, size=3, extra_arguments=5), TypeError),
    (lambda a: ndi.generic_filter1d(a, shift_sum, 0), RuntimeError),
    (lambda a: ndi.generic_filter1d(a, shift_sum, 3, mode="bogus"), RuntimeError),
])
def test_bad_input(call, error):
    with pytest.raises(error) as info:
        call(np.ones((4, 4)))
    assert isinstance(info.value, StencilError)


def _extremes(window):
    return window.max(), window.min()


_plain_extremes = numba.njit(_extremes)
_window_extremes = numba.njit(lambda values: _plain_extremes(as_window(values)))
# Payloads tell one NaN from another: the window returns the first, as Numba does.
_NANS = [np.frombuffer(np.uint64(0x7FF8000000000000 + k).tobytes(), np.float64)[0]
         for k in (0, 1, 2)]
_CELLS = st.sampled_from([0.0, -0.0, 1.0, -1.0, 2.5, np.inf, -np.inf, *_NANS])


@settings(max_examples=120)
@given(values=st.lists(st.one_of(_CELLS, st.floats(-3, 3)), min_size=1, max_size=30))
def test_window_max_min_are_numbas_bits(values):
    values = np.array(values, np.float64)
    ours = np.array(_window_extremes(values))
    assert ours.tobytes() == np.array(_plain_extremes(values)).tobytes()


def test_window_of_no_cells_raises_numbas_error():
    with pytest.raises(ValueError, match="zero-size array"):
        _window_extremes(np.empty(0))


def test_window_extremes_through_generic_filter_match_scipy():
    cells = np.array([0.0, -0.0, np.nan, np.inf, -np.inf, 1.0, -2.0])
    a = np.random.default_rng(7).choice(cells, size=(12, 13), p=[.3, .3, .05, .1, .1, .1, .05])
    for mode in ("constant", "reflect"):
        ours = ndi.generic_filter(a, spread, size=(3, 4), mode=mode)
        assert_same(ours, sndi.generic_filter(a, spread, size=(3, 4), mode=mode))


def test_function_refusing_the_window_type_gets_a_plain_array(monkeypatch):
    from numba.core.errors import TypingError

    def refuse(*args):
        raise TypingError("the window type is refused")

    user_kernel = ko.user_kernel
    monkeypatch.setattr(ko, "user_kernel", lambda *args, window=True, **options: (
        refuse if window else user_kernel(*args, window=False, **options)))
    a = np.random.default_rng(8).random((9, 10))
    with warnings.catch_warnings():
        warnings.simplefilter("error", ndi.CompileFallbackWarning)
        ours = ndi.generic_filter(a, spread, size=3)
        ours1d = ndi.generic_filter1d(a, running_max, 3)
    assert_same(ours, sndi.generic_filter(a, spread, size=3))
    assert_same(ours1d, sndi.generic_filter1d(a, running_max, 3))


def checked_spread(window):
    if window.size > 1000:
        raise ValueError("a window this large is not expected")
    return window.max() - window.min()


def test_inlined_function_that_raises_keeps_the_loop_parallel():
    a = np.random.default_rng(10).random((40, 41))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        ours = ndi.generic_filter(a, checked_spread, size=3)
    assert_same(ours, sndi.generic_filter(a, checked_spread, size=3))
    assert not [w for w in caught if issubclass(w.category, numba.NumbaPerformanceWarning)]


def divides_by_its_spread(window):
    return window[0] / (window.max() - window.min())


def refuses_large_centres(window):
    if window[window.size // 2] > 20:
        raise ValueError(f"centre {window[window.size // 2]} is too large")
    return window[0]


def test_division_by_zero_gives_numpys_inf_and_nan():
    a = np.zeros((6, 7))
    a[3:, 4:] = np.arange(9.0).reshape(3, 3)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # scipy's NumPy scalars warn
        theirs = sndi.generic_filter(a, divides_by_its_spread, size=3)
    ours = ndi.generic_filter(a, divides_by_its_spread, size=3)
    assert np.isnan(ours).any() and np.isfinite(ours).any()
    assert_same(ours, theirs)


def test_function_that_raises_raises_its_own_error():
    a = np.arange(48.0).reshape(6, 8)
    with pytest.raises(ValueError, match="is too large"):
        ndi.generic_filter(a, refuses_large_centres, size=3)


# -- box windows: a function reading only max and min gets a BoxExtremes -----------------

def window_max(window):
    return window.max()


def window_min(window):
    return window.min()


def scaled_spread(window, scale, shift=0.0):
    return (window.max() - window.min()) * scale + shift + len(window) - window.size \
        + window.shape[0] - window.size


def _box_runs(function, a, **kwargs):
    """generic_filter's result and whether the box kernel computed it."""
    from stencils.ndimage import _generic

    ran = []
    run_box = _generic._run_box
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(_generic, "_run_box", lambda *args: ran.append(run_box(*args)) or ran[-1])
        result = ndi.generic_filter(a, function, **kwargs)
    return result, ran == [True]


def _through_gathered_windows(function, a, **kwargs):
    from stencils.ndimage import _generic

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(_generic, "_run_box", lambda *args: False)
        return ndi.generic_filter(a, function, **kwargs)


@settings(max_examples=40, deadline=None)
@given(data=st.data())
def test_box_extremes_are_the_gathered_windows_bits_and_scipys_values(data):
    ndim = data.draw(st.integers(1, 3))
    shape = tuple(data.draw(st.lists(st.integers(1, 7), min_size=ndim, max_size=ndim)))
    cells = data.draw(st.lists(st.one_of(_CELLS, st.sampled_from([0.5, 1.5, -1.5])),
                               min_size=int(np.prod(shape)), max_size=int(np.prod(shape))))
    a = np.array(cells, np.float64).reshape(shape)  # float32: the extra-arguments test below
    box = data.draw(st.lists(st.integers(1, 5), min_size=ndim, max_size=ndim))
    kwargs = dict(size=tuple(box), mode=data.draw(st.sampled_from(MODES + ["mirror"])),
                  cval=data.draw(st.sampled_from([0.0, -0.0, np.nan, 2.5])),
                  origin=tuple(data.draw(st.integers(-(s // 2), (s - 1) // 2)) for s in box))
    function = data.draw(st.sampled_from([window_max, window_min]))
    ours, boxed = _box_runs(function, a, **kwargs)
    assert boxed
    assert ours.tobytes() == _through_gathered_windows(function, a, **kwargs).tobytes()
    assert_same(ours, sndi.generic_filter(a, function, **kwargs))


def test_box_extremes_with_extra_arguments_and_a_full_footprint():
    a = np.random.default_rng(11).random((3, 9, 12)).astype(np.float32)
    kwargs = dict(footprint=np.ones((2, 4, 3), bool), extra_arguments=(2.0,),
                  extra_keywords={"shift": 1.0}, mode="nearest")
    ours, boxed = _box_runs(scaled_spread, a, **kwargs)
    assert boxed
    assert_same(ours, sndi.generic_filter(a, scaled_spread, **kwargs))


@pytest.mark.parametrize("function, shape, kwargs", [
    (divides_by_its_spread, (6, 7), dict(size=3)),  # reads a cell too: the gathered window
    (spread, (6, 7), dict(footprint=[[1, 0, 1], [1, 1, 1]])),  # not a box
])
def test_other_windows_keep_the_gathered_cells(function, shape, kwargs):
    a = np.random.default_rng(12).random(shape)
    ours, boxed = _box_runs(function, a, **kwargs)
    assert not boxed
    assert_same(ours, sndi.generic_filter(a, function, **kwargs))
