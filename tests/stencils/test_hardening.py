"""Hardening battery: every public function of `stencils` on random valid and invalid input.

Each call either returns the reference result (``stencils._reference``, plain loops,
or ``scipy.ndimage``) or raises ``StencilValueError`` / ``StencilTypeError`` naming the
argument.  Inputs cover empty and length-1 axes, arrays smaller than the stencil, every
real dtype, NaN and inf, Fortran, negative-stride, non-contiguous and read-only views,
``out`` aliasing the input, and huge paddings and strides.  Each bug it found is pinned
by the test that found it (docs/robustness.md lists them).
"""

import os
import threading
import tracemalloc

import hypothesis.strategies as hs
import numpy as np
import pytest
import scipy.ndimage as ndi
from hypothesis import given, settings

import stencils as st
from stencils import _reference as ref
from stencils.errors import BorderError, StencilError, StencilTypeError, StencilValueError

from conftest import (LAYOUTS, MASSIV_BORDERS, REAL_DTYPES, SCIPY_MODES, expected_dtype,
                      in_layout)

BORDERS = [st.Fill(0), st.Fill(-2.5)] + MASSIV_BORDERS + SCIPY_MODES


def make_values(rng, shape, dtype, special):
    """Small exactly representable values (every dtype), plus NaN/inf when `special`."""
    dtype = np.dtype(dtype)
    if dtype.kind == "b":
        return rng.random(shape) < 0.5
    if dtype.kind in "iu":
        info = np.iinfo(dtype)
        # The extremes of int8/uint8, and large int64 values that sums keep exact (the
        # summation order is not part of the contract, so no cancellation of 2**63).
        big = 2**40 if dtype.itemsize == 8 else info.max
        pool = np.array([max(info.min, -big), -3, -1, 0, 1, 2, 3, big], dtype=np.int64)
        pool = pool[(pool >= info.min) & (pool <= info.max)]
        return rng.choice(pool, size=shape).astype(dtype)
    a = rng.integers(-3, 4, size=shape) * rng.choice([1.0, 0.5], size=shape)
    if special and a.size:
        mask = rng.random(shape) < 0.15
        a[mask] = rng.choice([np.nan, np.inf, -np.inf], size=int(mask.sum()))
    return a.astype(dtype)


@hs.composite
def arrays(draw, min_ndim=1, max_ndim=3, max_side=6, dtypes=REAL_DTYPES):
    ndim = draw(hs.integers(min_ndim, max_ndim))
    shape = tuple(draw(hs.lists(hs.integers(0, max_side), min_size=ndim, max_size=ndim)))
    dtype = draw(hs.sampled_from(dtypes))
    layout = draw(hs.sampled_from(LAYOUTS))
    rng = np.random.default_rng(draw(hs.integers(0, 2**32 - 1)))
    plain = make_values(rng, shape, dtype, special=draw(hs.booleans()))
    return plain, in_layout(plain, layout, rng)


def assert_same(got, want, dtype):
    assert got.dtype == dtype, (got.dtype, dtype)
    assert got.shape == want.shape, (got.shape, want.shape)
    # Inputs are small dyadic numbers: sums are exact in float32 and float64, so the
    # only tolerance is for products and quotients (avg, nonlinear stencils).
    rtol = 1e-6 if dtype == np.float32 else 1e-13
    np.testing.assert_allclose(got, want.astype(dtype), rtol=rtol, atol=0, equal_nan=True)


def out_variant(kind, shape, dtype, source):
    """`out` arrays the functions must fill correctly: C, Fortran, strided, the input."""
    if kind == "alias":
        if isinstance(source, np.ndarray) and source.shape == shape and source.dtype == dtype \
                and source.flags.writeable:
            return source
        kind = "c"
    if kind == "c":
        return np.full(shape, 7, dtype=dtype)
    if kind == "fortran":
        return np.asfortranarray(np.full(shape, 7, dtype=dtype))
    if kind == "strided":
        return np.full(tuple(2 * n for n in shape), 7, dtype=dtype)[tuple(
            slice(None, None, 2) for _ in shape)]
    if kind == "swapped":  # big-endian on this machine: a byte-swapped float array
        return np.full(shape, 7, dtype=np.dtype(dtype).newbyteorder())
    return None


# ---------------------------------------------------------------------------
# correlate / convolve against scipy.ndimage


@settings(max_examples=70)
@given(data=arrays(), kseed=hs.integers(0, 2**32 - 1), kshape=hs.lists(hs.integers(1, 5),
       min_size=3, max_size=3), mode=hs.sampled_from(SCIPY_MODES),
       cval=hs.sampled_from([0.0, 1.5, -4.0, np.nan, np.inf]), flip=hs.booleans(),
       stride=hs.integers(1, 3), out_kind=hs.sampled_from([None, "c", "fortran", "strided",
                                                           "alias", "swapped"]))
def test_correlate_and_convolve_equal_scipy(data, kseed, kshape, mode, cval, flip, stride,
                                            out_kind):
    plain, image = data
    rng = np.random.default_rng(kseed)
    kernel = rng.choice([-2.0, -1.0, 0.0, 0.0, 0.5, 1.0, 3.0], size=kshape[:plain.ndim])
    dtype = expected_dtype(plain.dtype)
    func = st.convolve if flip else st.correlate
    sfunc = ndi.convolve if flip else ndi.correlate
    if plain.size == 0:
        want = np.zeros(plain.shape)
    else:
        with np.errstate(all="ignore"):
            want = sfunc(plain.astype(dtype).astype(np.float64), kernel, mode=mode, cval=cval)
    want = want[tuple(slice(None, None, stride) for _ in want.shape)]
    out = out_variant(out_kind, want.shape, dtype, image)
    before = image.copy()
    got = func(image, kernel, mode=mode, cval=cval, stride=stride, out=out)
    if out is not None:
        assert got is out
    assert_same(np.asarray(got, dtype=got.dtype.newbyteorder("=")), want, dtype)
    if out is not image:
        np.testing.assert_array_equal(image, before)  # the input is never written


# ---------------------------------------------------------------------------
# map_stencil / apply_stencil / compute / compute_with_stride against _reference


def _stencil(kind, size, center, rng):
    ndim = len(size)
    if kind == "kernel":
        return st.make_correlation_stencil_from_kernel(rng.choice([-1.0, 0.0, 0.5, 2.0], size))
    if kind == "convolution":
        return st.make_convolution_stencil_from_kernel(rng.choice([-1.0, 0.0, 0.5, 2.0], size))
    if kind in ("sum", "avg", "max", "min", "product"):
        return getattr(st, f"{kind}_stencil")(size)
    if kind == "id":
        return st.id_stencil(ndim)
    low = tuple(-c for c in center)
    high = tuple(s - 1 - c for s, c in zip(size, center))

    def fn(get):
        a, b, c = get(*low), get(*high), get(*(0,) * ndim)
        return np.where(a > b, np.maximum(a, c) - 2 * b, np.fmin(b, c) * 0.5) + np.abs(c - a)
    return st.make_stencil(size, center, fn)


KINDS = ["kernel", "convolution", "sum", "avg", "max", "min", "product", "id", "nonlinear"]


@settings(max_examples=80)
@given(data=arrays(), kind=hs.sampled_from(KINDS), seed=hs.integers(0, 2**32 - 1),
       border=hs.sampled_from(BORDERS), how=hs.sampled_from(["map", "apply"]),
       stride=hs.integers(1, 3), out_kind=hs.sampled_from([None, "c", "fortran", "strided",
                                                           "alias"]))
def test_stencils_equal_the_reference(data, kind, seed, border, how, stride, out_kind):
    plain, array = data
    rng = np.random.default_rng(seed)
    size = tuple(int(n) for n in rng.integers(1, 5, plain.ndim))
    center = tuple(int(rng.integers(0, s)) for s in size)
    stencil = _stencil(kind, size, center, rng)
    border = st.as_border(border)
    if how == "map":
        lo = stencil.center
        hi = tuple(s - c - 1 for s, c in zip(stencil.size, stencil.center))
        w = st.map_stencil(border, stencil, array)
    else:
        lo = tuple(int(p) for p in rng.integers(0, 4, plain.ndim))
        hi = tuple(int(p) for p in rng.integers(0, 4, plain.ndim))
        w = st.apply_stencil(st.Padding(lo, hi, border), stencil, array)
    dtype = expected_dtype(plain.dtype)
    assert w.dtype == dtype
    steps = (stride,) * plain.ndim
    shape = tuple(-(-m // s) for m, s in zip(w.shape, steps))
    empty_axis_needs_fill = plain.size == 0 and 0 not in shape and border.code != 0
    out = out_variant(out_kind, shape, dtype, array)
    if empty_axis_needs_fill:
        with pytest.raises(StencilValueError, match="empty axis") as info:
            st.compute_with_stride(st.Stride(stride), w, out=out)
        assert info.value.param == "border"
        return
    want = ref.apply(stencil, plain.astype(dtype), lo, hi, border, steps)
    if stride == 1 and rng.random() < 0.5:
        got = st.compute(w, out=out)
    else:
        got = st.compute_with_stride(st.Stride(stride), w, out=out)
    if out is not None:
        assert got is out
    assert_same(got, want, dtype)


def test_out_may_be_a_shifted_view_of_the_input():
    base = np.arange(12.0)
    want = st.correlate(base[:8].copy(), [1.0, 2.0, 3.0], mode="nearest")
    st.correlate(base[:8], [1.0, 2.0, 3.0], mode="nearest", out=base[2:10])
    np.testing.assert_array_equal(base[2:10], want)


def test_byte_swapped_out_is_accepted():
    """Found by the battery: prepare_out refused a byte-swapped float64 `out` before
    reaching its own branch that handles one (fixed in stencils/_validate.py)."""
    a = np.arange(6.0)
    out = np.zeros(6, dtype=np.dtype(np.float64).newbyteorder())
    got = st.compute(st.map_stencil(st.Edge, st.sum_stencil(2), a), out=out)
    assert got is out
    np.testing.assert_array_equal(out, [1, 3, 5, 7, 9, 10])
    with pytest.raises(StencilTypeError, match="dtype >f4|dtype <f4|dtype float32"):
        st.compute(st.map_stencil(st.Edge, st.sum_stencil(2), a),
                   out=np.zeros(6, dtype=np.dtype(np.float32).newbyteorder()))


# ---------------------------------------------------------------------------
# Huge paddings and strides: exact Python-int reference, small outputs


# Paddings up to 2**60 keep every index below the kernels' 2**62 limit (beyond it the
# call is refused, which test_index_arithmetic_beyond_int64_is_refused_or_exact covers).
@settings(max_examples=60)
@given(n=hs.integers(1, 6), lo=hs.integers(0, 2**60), hi=hs.integers(0, 2**60),
       parts=hs.integers(1, 5), border=hs.sampled_from(BORDERS),
       size=hs.integers(1, 4))
def test_huge_padding_with_huge_stride(n, lo, hi, parts, border, size):
    a = np.arange(1.0, n + 1)
    s = st.make_correlation_stencil_from_kernel(np.arange(1.0, size + 1))
    border = st.as_border(border)
    w = st.apply_stencil(st.Padding(lo, hi, border), s, a)
    step = max(1, w.shape[0] // parts)
    want = ref.apply(s, a, (lo,), (hi,), border, (step,))
    np.testing.assert_array_equal(st.compute_with_stride(step, w), want)


def test_huge_stencil_box_reads_only_its_taps():
    a = np.arange(5.0)
    s = st.make_stencil(2**62, 2**61, lambda g: g(1) + g(-(2**61)))
    got = st.compute(st.map_stencil(st.Wrap, s, a))
    np.testing.assert_array_equal(got, ref.apply(s, a, s.center, (2**62 - 2**61 - 1,), st.Wrap))


@pytest.mark.parametrize("stride", [5, 6, 2**62, 10**30, (1, 10**30)])
def test_a_stride_past_the_axis_keeps_only_point_zero(stride):
    a = np.arange(20.0).reshape(4, 5)
    steps = (stride, stride) if isinstance(stride, int) else stride
    want = ndi.correlate(a, np.ones((3, 3)), mode="wrap")[::min(steps[0], 4),
                                                        ::min(steps[1], 5)]
    np.testing.assert_array_equal(st.correlate(a, np.ones((3, 3)), mode="wrap", stride=stride),
                                  want)


def test_index_arithmetic_beyond_int64_is_refused_or_exact():
    a = np.arange(5.0)
    w = st.apply_stencil(st.Padding(0, 2**63, st.Wrap), st.sum_stencil(3), a)
    try:
        got = st.compute_with_stride(2**62, w)
    except StencilValueError:
        return
    np.testing.assert_array_equal(got, ref.apply(st.sum_stencil(3), a, (0,), (2**63,), st.Wrap,
                                                 (2**62,)))


def test_generated_kernel_with_a_huge_stride():
    a = np.arange(5.0)
    w = st.apply_stencil(st.Padding(2**60, 0, st.Wrap), st.sum_stencil(3), a)
    want = ref.apply(st.sum_stencil(3), a, (2**60,), (0,), st.Wrap, (2**59,))
    np.testing.assert_array_equal(st.compute_with_stride(2**59, w), want)  # the interpreter
    with st.config(engine="generated"):
        got = st.compute_with_stride(2**59, w)
    np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("case", ["padding", "centre"])
def test_values_beyond_int64_raise_the_documented_error(case):
    a = np.arange(5.0)
    with pytest.raises(StencilValueError):
        if case == "padding":
            st.compute_with_stride(2**62, st.apply_stencil(st.Padding(2**63 + 1, 0, st.Wrap),
                                                           st.sum_stencil(3), a))
        else:
            st.compute(st.map_stencil(st.Edge, st.make_stencil(10**30, 10**29, lambda g: g(0)), a))


@pytest.mark.parametrize("case", ["fill", "arithmetic", "taps"])
def test_numbers_beyond_float_raise_the_documented_error(case):
    with pytest.raises(StencilValueError):
        if case == "fill":
            st.correlate(np.ones(3), [1.0], mode="constant", cval=10**400)
        elif case == "arithmetic":
            st.sum_stencil(3) * 10**400
        else:
            st.make_correlation_stencil(3, 1, {0: 10**400})


# ---------------------------------------------------------------------------
# Invalid arguments: the documented exception, naming the argument


A2 = np.arange(12.0).reshape(3, 4)
S2 = st.make_correlation_stencil_from_kernel(np.ones((3, 3)))
W2 = st.map_stencil(st.Edge, S2, A2)
_READ_ONLY = np.zeros((3, 4))
_READ_ONLY.flags.writeable = False

BAD_ARRAYS = [
    (np.ones((3, 4), complex), StencilTypeError, "complex128"),
    (np.array([[1, None]]), StencilTypeError, "object"),
    (np.array([["a", "b"]]), StencilTypeError, "<U1"),
    (np.arange(4).astype("M8[D]").reshape(2, 2), StencilTypeError, "datetime64"),
    (np.ones((3, 4), np.longdouble), StencilTypeError, "extended precision"),
    (np.float64(3.0), StencilValueError, "0-D"),
    ([[1.0, 2.0], [3.0]], StencilTypeError, "could not be read"),
    (None, StencilTypeError, "object"),
]
BAD_MODES = [None, 3, "edge", "symmetric", "reflct", ["reflect"], st.Fill, 1.5]
BAD_STRIDES = [1.5, "2", None, True, (1, 2, 3), np.array([2, 2]), (1, 1.0)]


def _bad_calls():
    calls = []
    for value, exc, frag in BAD_ARRAYS:
        calls.append(("image", lambda v=value: st.correlate(v, np.ones((3, 3))), exc, frag))
        calls.append(("array", lambda v=value: st.map_stencil(st.Edge, S2, v), exc, frag))
        calls.append(("array", lambda v=value: st.apply_stencil(st.no_padding, S2, v), exc, frag))
    for value in BAD_MODES:
        calls.append(("mode", lambda v=value: st.correlate(A2, np.ones((3, 3)), mode=v),
                      BorderError, "border"))
        calls.append(("border", lambda v=value: st.map_stencil(v, S2, A2), BorderError, "border"))
    for value in ["a", None, 1j, np.array(2.0), True]:
        calls.append(("value", lambda v=value: st.correlate(A2, np.ones((3, 3)), mode="constant",
                                                            cval=v), BorderError, "real number"))
    for value in BAD_STRIDES:
        exc = StencilValueError if isinstance(value, tuple) and len(value) == 3 else StencilTypeError
        calls.append(("stride", lambda v=value: st.correlate(A2, np.ones((3, 3)), stride=v), exc,
                      "stride"))
        calls.append(("stride", lambda v=value: st.compute_with_stride(v, W2), exc, "stride"))
        calls.append(("stride", lambda v=value: st.downsample(v, A2), exc, "stride"))
    for value, exc, frag in [
        (np.ones(3, complex), StencilTypeError, "complex"), ("abc", StencilTypeError, "<U3"),
        (None, StencilTypeError, "object"), (np.float64(2.0), StencilValueError, "0-D"),
        (np.ones((0, 3)), StencilValueError, "empty"), ([1.0, 2.0], StencilValueError, "dimension"),
        (S2, StencilTypeError, "already a Stencil"),
    ]:
        calls.append(("kernel", lambda v=value: st.correlate(A2, v), exc, frag))
    for value, exc, frag in [
        ([[0.0] * 4] * 3, StencilTypeError, "NumPy array"),
        (np.zeros((4, 3)), StencilValueError, "shape"), (np.zeros((3, 4), np.float32),
                                                         StencilTypeError, "dtype"),
        (np.zeros((3, 4), np.int64), StencilTypeError, "dtype"),
        (_READ_ONLY, StencilValueError, "read-only"), (np.zeros(12), StencilValueError, "shape"),
    ]:
        calls.append(("out", lambda v=value: st.compute(W2, out=v), exc, frag))
        calls.append(("out", lambda v=value: st.correlate(A2, np.ones((3, 3)), out=v), exc, frag))
    for value, exc in [(S2, StencilTypeError), ((1, 1), StencilTypeError),
                       (st.Padding((1, 1, 1), 0), StencilValueError)]:
        param = "from_origin" if isinstance(value, st.Padding) else "padding"
        calls.append((param, lambda v=value: st.apply_stencil(v, S2, A2), exc, param))
    for value, exc in [(np.ones(3), StencilTypeError), (st.sum_stencil(3), StencilValueError),
                       ("sum", StencilTypeError)]:
        calls.append(("stencil", lambda v=value: st.map_stencil(st.Edge, v, A2), exc, "stencil"))
    for value, exc in [(0, StencilValueError), (-1, StencilValueError), (1.5, StencilTypeError),
                       ((), StencilValueError), (None, StencilTypeError), (True, StencilTypeError),
                       ((3, "a"), StencilValueError), ((3, 0), StencilValueError)]:
        for name in ("sum", "avg", "max", "min", "product"):
            calls.append(("size", lambda v=value, f=getattr(st, f"{name}_stencil"): f(v), exc,
                          "not a size"))
        calls.append(("size", lambda v=value: st.foldl_stencil(np.add, 0, v), exc, "not a size"))
        calls.append(("size", lambda v=value: st.make_stencil(v, 0, lambda g: g(0)), exc,
                      "not a size"))
    for value, exc in [(3, StencilValueError), (-1, StencilValueError), ((0,), StencilValueError),
                       (1.0, StencilTypeError), (None, StencilTypeError)]:
        calls.append(("center", lambda v=value: st.make_stencil((3, 3), v, lambda g: g(0, 0)),
                      exc, "center"))
        calls.append(("center", lambda v=value: st.make_correlation_stencil((3, 3), v, {}), exc,
                      "center"))
    for value in [None, 5, "f"]:
        calls.append(("fn", lambda v=value: st.make_stencil(3, 1, v), StencilTypeError,
                      "not callable"))
        calls.append(("f", lambda v=value: st.rmap_stencil(v, S2), StencilTypeError,
                      "not callable"))
        calls.append(("f", lambda v=value: st.foldr_stencil(v, 0, 3), StencilTypeError,
                      "not callable"))
    for result in [None, "x", 1j, np.array([1.0, 2.0]), [1.0]]:
        calls.append(("fn", lambda r=result: st.make_stencil(3, 1, lambda g: r),
                      StencilTypeError, "real numbers"))
        calls.append(("fn", lambda r=result: st.lmap_stencil(lambda e: r, S2),
                      StencilTypeError, "real numbers"))
    for offset, exc in [(1.0, StencilTypeError), (True, StencilTypeError), (2, StencilValueError),
                        (-(10**30), StencilValueError)]:
        calls.append(("offset", lambda d=offset: st.make_stencil(3, 1, lambda g: g(d)), exc,
                      "get("))
    for value, exc in [(0, StencilValueError), (1.5, StencilValueError), (None, StencilValueError),
                       (True, StencilValueError)]:
        calls.append(("ndim", lambda v=value: st.id_stencil(v), exc, "ndim"))
    for taps, exc in [("abc", StencilTypeError), (None, StencilTypeError),
                      ({0: 1j}, StencilTypeError), ({0: "w"}, StencilTypeError),
                      ({(0, 0): 1.0}, StencilValueError), ({5: 1.0}, StencilValueError)]:
        param = "offset" if exc is StencilValueError else "taps"
        calls.append((param, lambda t=taps: st.make_convolution_stencil(3, 1, t), exc, "taps"))
    for value, exc, frag in BAD_ARRAYS:
        if value is None or exc is StencilTypeError and "could not" not in frag:
            continue  # resampling moves any dtype; only non-arrays are refused
        calls.append(("array", lambda v=value: st.zoom(2, v), exc, frag))
        calls.append(("array", lambda v=value: st.upsample(0, 2, v), exc, frag))
    for fill, exc in [("x", StencilTypeError), (None, StencilTypeError),
                      (np.array([1, 2]), StencilTypeError), (300, StencilValueError),
                      (-1, StencilValueError), (np.datetime64("2020-01-01"), StencilTypeError)]:
        calls.append(("fill", lambda v=fill: st.upsample(v, 2, np.arange(3, dtype=np.uint8)), exc,
                      "fill"))
        calls.append(("fill", lambda v=fill: st.zoom_with_grid(v, 2, np.arange(3, dtype=np.uint8)),
                      exc, "fill"))
    for stride in [10**30, 2**62]:
        calls.append(("stride", lambda s=stride: st.zoom(s, np.arange(3)), StencilValueError,
                      "too large"))
        calls.append(("stride", lambda s=stride: st.upsample(0, s, np.arange(3)),
                      StencilValueError, "too large"))
    for kw, exc in [(dict(x=np.ones((2, 3, 5, 5), complex)), StencilTypeError),
                    (dict(x=np.ones((3, 5, 5))), StencilValueError),
                    (dict(weights=np.ones((4, 2, 3, 3))), StencilValueError),
                    (dict(weights=np.ones((4, 3, 3, 3), object)), StencilTypeError),
                    (dict(padding=-1), StencilValueError), (dict(padding="same"), StencilValueError),
                    (dict(padding=(1, 2, 3)), StencilValueError),
                    (dict(stride=0), StencilValueError), (dict(stride=(1, 1.5)), StencilTypeError),
                    (dict(method="fft"), StencilValueError),
                    (dict(method="scatter", stride=2), StencilValueError),
                    (dict(out=np.zeros((2, 4, 3, 3), np.float32)), StencilTypeError),
                    (dict(out=np.zeros((2, 4, 3, 4))), StencilValueError),
                    (dict(out=[0.0]), StencilTypeError),
                    (dict(x=np.ones((2, 3, 2, 2))), StencilValueError)]:
        param = next(iter(kw)) if "method" not in kw else "method"
        args = dict(x=np.ones((2, 3, 5, 5)), weights=np.ones((4, 3, 3, 3)))
        args.update(kw)
        calls.append(("weights" if param == "x" and "2, 2" in str(kw["x"].shape) else param,
                      lambda a=args: st.correlate_channels(**a), exc, ""))
    return calls


BAD_CALLS = _bad_calls()


@pytest.mark.parametrize("param, call, exc, fragment", BAD_CALLS,
                         ids=[f"{i}-{case[0]}" for i, case in enumerate(BAD_CALLS)])
def test_invalid_arguments_raise_the_documented_error(param, call, exc, fragment):
    with pytest.raises(StencilError) as info:
        call()
    assert isinstance(info.value, exc), (param, type(info.value), str(info.value))
    assert info.value.param == param, (info.value.param, str(info.value))
    assert fragment in str(info.value)


def test_correlate_channels_read_only_out():
    out = np.zeros((2, 4, 3, 3))
    out.flags.writeable = False
    with pytest.raises(StencilValueError, match="read-only"):
        st.correlate_channels(np.ones((2, 3, 5, 5)), np.ones((4, 3, 3, 3)), out=out)


def test_correlate_channels_huge_stride():
    x, w = np.ones((2, 3, 5, 5)), np.ones((4, 3, 3, 3))
    got = st.correlate_channels(x, w, stride=10**30)
    np.testing.assert_array_equal(got, st.correlate_channels(x, w, stride=5))


def test_correlate_channels_ragged_input():
    with pytest.raises(StencilTypeError):
        st.correlate_channels([[1.0], [2.0, 3.0]], np.ones((1, 1, 1, 1)))


def test_correlate_channels_byte_swapped_out():
    out = np.zeros((1, 1, 2, 2), dtype=np.dtype(np.float64).newbyteorder())
    st.correlate_channels(np.ones((1, 1, 3, 3)), np.ones((1, 1, 2, 2)), out=out)
    np.testing.assert_array_equal(out, 4.0)


# ---------------------------------------------------------------------------
# correlate_channels against einsum


def channels_reference(x, w, pads, stride):
    (pt, pb), (pl, pr) = pads
    xp = np.pad(x.astype(np.float64), ((0, 0), (0, 0), (pt, pb), (pl, pr)))
    kh, kw = w.shape[2:]
    win = np.lib.stride_tricks.sliding_window_view(xp, (kh, kw), axis=(2, 3))
    win = win[:, :, ::stride[0], ::stride[1]]
    with np.errstate(all="ignore"):
        return np.einsum("ncijuv,ocuv->noij", win, w.astype(np.float64))


@settings(max_examples=50)
@given(dims=hs.tuples(*[hs.integers(0, 3)] * 3), hw=hs.tuples(hs.integers(0, 7), hs.integers(0, 7)),
       k=hs.tuples(hs.integers(1, 4), hs.integers(1, 4)),
       padding=hs.one_of(hs.integers(0, 2), hs.tuples(hs.integers(0, 2), hs.integers(0, 2)),
                         hs.tuples(hs.tuples(hs.integers(0, 2), hs.integers(0, 2)),
                                   hs.tuples(hs.integers(0, 2), hs.integers(0, 2)))),
       stride=hs.tuples(hs.integers(1, 3), hs.integers(1, 3)),
       dtype=hs.sampled_from(REAL_DTYPES), layout=hs.sampled_from(LAYOUTS),
       method=hs.sampled_from(["auto", "gather", "scatter"]), parallel=hs.sampled_from([None, False, True]),
       out_kind=hs.sampled_from([None, "c", "fortran", "strided"]), seed=hs.integers(0, 2**32 - 1),
       special=hs.booleans())
def test_correlate_channels_equals_einsum(dims, hw, k, padding, stride, dtype, layout, method,
                                          parallel, out_kind, seed, special):
    n, c, o = dims
    rng = np.random.default_rng(seed)
    pads_h = padding if isinstance(padding, int) else (
        padding[1] if isinstance(padding[1], int) else sum(padding[1]) / 2)
    if stride == (1, 1) and method != "scatter" and hw[1] + 2 * pads_h - k[1] + 1 < k[1]:
        special = False  # see test_correlate_channels_inf_stays_in_the_windows_that_read_it
    x_plain = make_values(rng, (n, c) + hw, dtype, special)
    w_plain = make_values(rng, (o, c) + k, "float64", False)  # non-finite weights: below
    x = in_layout(x_plain, layout, rng)
    if isinstance(padding, int):
        pads = ((padding,) * 2,) * 2
    elif isinstance(padding[0], int):
        pads = ((padding[0],) * 2, (padding[1],) * 2)
    else:
        pads = padding
    ph, pw = hw[0] + sum(pads[0]), hw[1] + sum(pads[1])
    if method == "scatter" and stride != (1, 1):
        method = "gather"
    if ph < k[0] or pw < k[1]:
        with pytest.raises(StencilValueError, match="larger than the padded image"):
            st.correlate_channels(x, w_plain, padding=padding, stride=stride)
        return
    dt = expected_dtype(dtype)
    want = channels_reference(x_plain.astype(dt), w_plain.astype(dt), pads, stride)
    out = out_variant(out_kind, want.shape, dt, x)
    got = st.correlate_channels(x, w_plain, padding=padding, stride=stride, out=out,
                                method=method, parallel=parallel)
    if out is not None:
        assert got is out
    assert got.dtype == dt and got.shape == want.shape
    # Small dyadic values: exact in any summation order; NaN and inf land where IEEE says.
    np.testing.assert_allclose(got, want, rtol=1e-6 if dt == np.float32 else 1e-13, atol=0,
                               equal_nan=True)


def test_correlate_channels_methods_agree_on_non_finite_weights():
    w = np.full((1, 1, 1, 2), np.inf)
    x = np.ones((1, 1, 2, 2))
    gather = st.correlate_channels(x, w, padding=1, method="gather")
    # By the definition (IEEE, as torch): a window that meets the zero padding
    # has 0 * inf = NaN; one on real pixels only is inf.
    windows = np.lib.stride_tricks.sliding_window_view(np.pad(x, ((0, 0), (0, 0), (1, 1), (1, 1))),
                                                       (1, 2), axis=(2, 3))
    with np.errstate(invalid="ignore"):
        want = (windows * w[0, 0]).sum(axis=(-2, -1))
    assert np.isnan(want).any() and np.isinf(want).any()
    np.testing.assert_array_equal(gather, want)
    np.testing.assert_array_equal(st.correlate_channels(x, w, padding=1, method="scatter"), gather)


def test_correlate_channels_inf_stays_in_the_windows_that_read_it():
    x = np.array([1.0, 2, 3, 4, 5, -np.inf, 7]).reshape(1, 1, 1, 7)
    np.testing.assert_array_equal(st.correlate_channels(x, np.ones((1, 1, 1, 5))).ravel(),
                                  [15.0, -np.inf, -np.inf])


# ---------------------------------------------------------------------------
# Resampling against plain loops


def resample_reference(name, fill, steps, a):
    shape = a.shape
    if name == "downsample":
        out_shape = tuple(-(-n // s) for n, s in zip(shape, steps))
        out = np.empty(out_shape, a.dtype)
        for j in np.ndindex(*out_shape):
            out[j] = a[tuple(i * s for i, s in zip(j, steps))]
        return out
    if name == "zoom":
        out = np.empty(tuple(n * s for n, s in zip(shape, steps)), a.dtype)
        for j in np.ndindex(*out.shape):
            out[j] = a[tuple(i // s for i, s in zip(j, steps))]
        return out
    dtype = np.result_type(a, fill)
    if name == "upsample":
        out = np.full(tuple(n * s for n, s in zip(shape, steps)), fill, dtype)
        for i in np.ndindex(*shape):
            out[tuple(k * s for k, s in zip(i, steps))] = a[i]
        return out
    out = np.full(tuple(n * (s + 1) + 1 for n, s in zip(shape, steps)), fill, dtype)
    for j in np.ndindex(*out.shape):
        if all(k % (s + 1) for k, s in zip(j, steps)):
            out[j] = a[tuple(k // (s + 1) for k, s in zip(j, steps))]
    return out


@settings(max_examples=80)
@given(data=arrays(max_side=4, dtypes=REAL_DTYPES + ["complex128"]),
       name=hs.sampled_from(["downsample", "upsample", "zoom", "zoom_with_grid"]),
       steps=hs.lists(hs.integers(-1, 3), min_size=3, max_size=3),
       fill=hs.sampled_from([0, 9, -1, 2.5, True, np.float32(4)]))
def test_resampling_equals_plain_loops(data, name, steps, fill):
    plain, array = data
    steps = tuple(steps[:plain.ndim])
    clamped = tuple(max(1, s) for s in steps)
    if isinstance(fill, bool) and plain.dtype.kind != "b":
        fill = int(fill)
    before = array.copy()
    if name in ("downsample", "zoom"):
        got = getattr(st, name)(st.Stride(*steps), array)
        want = resample_reference(name, None, clamped, plain)
    else:
        try:
            want = resample_reference(name, fill, clamped, plain)
        except OverflowError:  # -1 into uint8: NumPy 2 keeps the array's dtype
            with pytest.raises(StencilValueError, match="does not fit") as info:
                getattr(st, name)(fill, st.Stride(*steps), array)
            assert info.value.param == "fill"
            return
        got = getattr(st, name)(fill, st.Stride(*steps), array)
    assert got.dtype == want.dtype and got.shape == want.shape
    np.testing.assert_array_equal(got, want)
    np.testing.assert_array_equal(array, before)
    if name != "downsample" and array.size:
        assert not np.shares_memory(got, array)  # a new array, never a view of the input


# ---------------------------------------------------------------------------
# Threads: different stencils at once give exactly the serial results


def test_four_threads_computing_different_stencils_match_serial():
    rng = np.random.default_rng(7)
    a64 = rng.standard_normal((160, 170))
    a32 = rng.standard_normal((3, 50, 60)).astype(np.float32)
    x = rng.standard_normal((4, 3, 20, 20))
    w = rng.standard_normal((5, 3, 3, 3))
    nonlinear = st.make_stencil((3, 3), (1, 1), lambda g: np.hypot(g(-1, 0) - g(1, 0),
                                                                   g(0, -1) - g(0, 1)))
    jobs = [
        lambda: st.compute(st.map_stencil(st.Reflect, nonlinear, a64)),
        lambda: st.compute_with_stride(st.Stride(1, 2, 3), st.map_stencil(
            st.Wrap, st.max_stencil((2, 3, 2)), a32)),
        lambda: st.convolve(a64, rng_kernel, mode="mirror", stride=(2, 1)),
        lambda: st.correlate_channels(x, w, padding=1),
    ]
    rng_kernel = rng.standard_normal((4, 5))
    want = [job() for job in jobs]
    got = [[None] * 6 for _ in jobs]
    errors = []
    barrier = threading.Barrier(len(jobs))

    def work(i):
        try:
            barrier.wait()
            for r in range(6):
                got[i][r] = jobs[i]()
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(len(jobs))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    for i, results in enumerate(got):
        for r in results:
            np.testing.assert_array_equal(r, want[i])


def test_four_threads_compiling_new_kernels_at_once():
    """Generated kernels for four new structures, first used from four threads at once."""
    rng = np.random.default_rng(8)
    a = rng.standard_normal((40, 41))
    stencils_ = [st.make_stencil((3, 3), (1, 1), lambda g, k=k: g(-1, 1) * (k + 1.5) - g(1, -1)
                                 + np.tanh(g(0, 0) * 0.25 * k)) for k in range(4)]
    want = [ref.apply(s, a, (1, 1), (1, 1), st.Edge) for s in stencils_]
    got = [None] * 4
    errors = []
    barrier = threading.Barrier(4)

    def work(i):
        try:
            barrier.wait()
            got[i] = st.compute(st.map_stencil(st.Edge, stencils_[i], a))
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    with st.config(engine="generated"):
        threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert not errors, errors
    for g, w_ in zip(got, want):
        np.testing.assert_allclose(g, w_, rtol=1e-13, atol=1e-13)


# ---------------------------------------------------------------------------
# Memory: out= means no full-size temporary


@pytest.mark.parametrize("call", ["correlate", "map_stencil", "strided"])
def test_out_means_no_full_size_temporary(call):
    a = np.random.default_rng(3).standard_normal((1024, 1024)).astype(np.float32)  # 4 MiB
    out = np.empty_like(a)
    k = np.ones((5, 5), np.float32) / 25
    s = st.make_correlation_stencil_from_kernel(k)

    def run():
        if call == "correlate":
            st.correlate(a, k, mode="reflect", out=out)
        elif call == "map_stencil":
            st.compute(st.map_stencil(st.Edge, s, a), out=out)
        else:
            st.compute_with_stride(2, st.map_stencil(st.Edge, s, a), out=out[:512, :512].copy())

    with st.config(compile="sync", jit_total_work=0):
        run()  # compile and warm every cache first: the second call compiles its kernel
        run()
    tracemalloc.start()
    try:
        run()
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    # Far below one full-size array; the parallel call's per-box bookkeeping and
    # bounds-checked kernels (CI's second run) allocate a little more than 1/8.
    limit = a.nbytes // 4 if call != "strided" else a.nbytes // 2  # (+ its 1/4-size out copy)
    assert peak < limit, f"peak traced allocation {peak} bytes for a {a.nbytes}-byte array"


def test_tracemalloc_sees_a_full_size_temporary_when_there_is_one():
    """The check above can fail: an `out` that aliases the input needs a temporary."""
    a = np.random.default_rng(3).standard_normal((512, 512)).astype(np.float32)
    st.correlate(a, np.ones((3, 3), np.float32), out=a.copy())
    tracemalloc.start()
    try:
        st.correlate(a, np.ones((3, 3), np.float32), out=a)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak >= a.nbytes


# ---------------------------------------------------------------------------
# The bounds-checked CI run really checks bounds


@pytest.mark.skipif(os.environ.get("NUMBA_BOUNDSCHECK") != "1",
                    reason="only in the NUMBA_BOUNDSCHECK=1 CI run")
def test_boundscheck_run_uses_bounds_checked_kernels():
    """A cached kernel compiled without bounds checks would be reused silently (Numba's
    cache key ignores NUMBA_BOUNDSCHECK): the CI step must use a fresh NUMBA_CACHE_DIR.
    Writing past a view's end must raise IndexError here."""
    from stencils._kernels_channels import _pad_into

    parent = np.zeros(64)
    buffer = parent[:10]
    with pytest.raises(IndexError):
        _pad_into(np.ones((3, 3)), buffer, 2, 0, 5)
    assert not parent[10:].any()
