"""Every validation path: the exception type and a stable fragment of its message."""

import numpy as np
import pytest

import stencils as st
from stencils import validation
from stencils.errors import (BorderError, OffsetOutOfBoundsError, StencilError,
                             StencilTypeError, StencilValueError)

A = np.arange(12.0).reshape(3, 4)
S = st.make_correlation_stencil_from_kernel(np.ones((3, 3)))


def test_error_classes_are_value_and_type_errors():
    assert issubclass(StencilValueError, ValueError) and issubclass(StencilValueError, StencilError)
    assert issubclass(StencilTypeError, TypeError)
    assert issubclass(BorderError, ValueError) and issubclass(OffsetOutOfBoundsError, ValueError)


@pytest.mark.parametrize("mode, hint", [
    ("reflct", "Did you mean 'reflect'"),
    ("edge", "here it is 'nearest'"),
    ("symmetric", "here it is 'reflect'"),
    ("circular", "here it is 'wrap'"),
    ("continue", "here it is 'mirror'"),
    (3, "not a border"),
])
def test_unknown_border_names_get_hints(mode, hint):
    with pytest.raises(BorderError, match=hint) as info:
        st.correlate(A, np.ones((3, 3)), mode=mode)
    assert info.value.param == "mode" and info.value.value == mode


def test_fill_without_value_is_explained():
    with pytest.raises(BorderError, match="Fill is the constructor"):
        st.map_stencil(st.Fill, S, A)


def test_fill_value_must_be_real():
    with pytest.raises(BorderError, match="real number"):
        st.Fill("zero")


def test_kernel_rank_must_match_image():
    with pytest.raises(StencilValueError, match=r"kernel has 1 dimension \(shape \(3,\)\) but the image has 2"):
        st.correlate(A, [1, 2, 3])


def test_stencil_rank_must_match_array():
    with pytest.raises(StencilValueError, match="give a size of"):
        st.map_stencil(st.Edge, st.sum_stencil(3), A)


@pytest.mark.parametrize("kernel", [np.ones((0, 3)), np.array(5.0), []])
def test_empty_kernels_are_refused(kernel):
    with pytest.raises(StencilValueError, match="empty or 0-D"):
        st.make_correlation_stencil_from_kernel(kernel)


def test_complex_and_object_kernels_are_refused():
    with pytest.raises(StencilTypeError, match="complex128.*real and imaginary"):
        st.make_correlation_stencil_from_kernel(np.ones(3, complex))
    with pytest.raises(StencilTypeError, match="dtype object"):
        st.make_correlation_stencil_from_kernel(np.array([1, "a"], dtype=object))


@pytest.mark.parametrize("array, fragment", [
    (np.ones(3, complex), "complex128.*.real and .imag"),
    (np.array([1, None]), "dtype object"),
    (np.array(["a", "b"]), "<U1"),
    (np.float64(3.0), "0-D"),
])
def test_non_numeric_or_scalar_arrays_are_refused(array, fragment):
    with pytest.raises(StencilError, match=fragment):
        st.map_stencil(st.Edge, st.id_stencil(1), array)


@pytest.mark.parametrize("center, fragment", [
    ((3, 0), "outside the stencil"),
    ((-1, 0), "outside the stencil"),
    ((1,), "does not match size"),
])
def test_centre_outside_size(center, fragment):
    with pytest.raises(StencilValueError, match=fragment):
        st.make_stencil((3, 3), center, lambda get: get(0, 0))


def test_sizes_must_be_positive_ints():
    with pytest.raises(StencilValueError, match="not a size"):
        st.sum_stencil((3, 0))
    with pytest.raises(StencilTypeError, match="not a size"):
        st.sum_stencil(None)


def test_negative_padding_is_refused_with_hint():
    with pytest.raises(StencilValueError, match="to crop, slice the result"):
        st.Padding((1, -1), 0, st.Edge)


def test_padding_rank_mismatch():
    with pytest.raises(StencilValueError, match="has 3 entries but the array has 2 axes"):
        st.apply_stencil(st.Padding((1, 1, 1), 0, st.Edge), S, A)


def test_arguments_in_scipy_order_get_massiv_order_hint():
    with pytest.raises(StencilTypeError, match="massiv's order"):
        st.apply_stencil(S, st.no_padding, A)


@pytest.mark.parametrize("out, exc, fragment", [
    (np.empty((3, 5)), StencilValueError, r"shape \(3, 5\) but the result has shape \(3, 4\)"),
    (np.empty((3, 4), np.float32), StencilTypeError, "dtype float32 but the result is computed in float64"),
    ([[0.0] * 4] * 3, StencilTypeError, "must be a NumPy array"),
])
def test_mismatched_out(out, exc, fragment):
    with pytest.raises(exc, match=fragment):
        st.compute(st.map_stencil(st.Edge, S, A), out=out)


def test_read_only_out_is_refused():
    out = np.empty((3, 4))
    out.flags.writeable = False
    with pytest.raises(StencilValueError, match="read-only"):
        st.compute(st.map_stencil(st.Edge, S, A), out=out)


def test_offsets_outside_the_box_fail_when_the_stencil_is_made():
    """massiv #109: never an out-of-bounds read later; here an error at creation."""
    with pytest.raises(OffsetOutOfBoundsError, match=r"offsets on axis 0 must lie in \[-1, 1\]"):
        st.make_stencil(3, 1, lambda get: get(2))
    with pytest.raises(StencilValueError, match="one offset per axis"):
        st.make_stencil((3, 3), (1, 1), lambda get: get(1))
    with pytest.raises(OffsetOutOfBoundsError):
        st.make_correlation_stencil((3,), (1,), {(-2,): 1.0})


def test_data_dependent_reads_cannot_be_expressed():
    with pytest.raises(StencilTypeError, match="offsets must be integers known"):
        st.make_stencil(3, 1, lambda get: get(get(0)))


def test_python_branching_is_explained():
    with pytest.raises(StencilTypeError, match="np.where"):
        st.make_stencil(3, 1, lambda get: get(0) if get(1) > 0 else get(-1))
    with pytest.raises(StencilTypeError, match="np.maximum"):
        st.make_stencil(3, 1, lambda get: max(get(0), get(1)))
    with pytest.raises(StencilTypeError, match="np.exp"):
        import math

        st.make_stencil(3, 1, lambda get: math.exp(get(0)))


def test_unsupported_numpy_functions_are_named():
    with pytest.raises(StencilTypeError, match="np.sum cannot be used"):
        st.make_stencil(3, 1, lambda get: np.sum(get(0)))


def test_non_stencils_are_refused():
    with pytest.raises(StencilTypeError, match="must be a Stencil"):
        st.map_stencil(st.Edge, np.ones(3), np.ones(3))
    with pytest.raises(StencilTypeError, match="must be a WindowedArray"):
        st.compute(np.ones(3))
    with pytest.raises(StencilTypeError, match="not callable"):
        st.make_stencil(3, 1, 5)


def test_windowed_arrays_cannot_be_indexed():
    with pytest.raises(StencilTypeError, match="compute it first"):
        st.map_stencil(st.Edge, S, A)[0]


def test_combining_stencils_of_different_rank():
    with pytest.raises(StencilValueError, match="cannot combine a 1-D stencil with a 2-D"):
        st.sum_stencil(3) + st.sum_stencil((3, 3))


def test_stride_must_be_ints():
    with pytest.raises(StencilTypeError, match="not a stride"):
        st.correlate(A, np.ones((3, 3)), stride=1.5)


# -- stencils.validation: the rules both packages apply ------------------------

class _OwnTypeError(st.errors.StencilTypeError):
    pass


class _OwnValueError(st.errors.StencilValueError):
    pass


@pytest.mark.parametrize("value, exc", [
    (1.5, StencilTypeError), (True, StencilTypeError), ("22", StencilTypeError),
    ((), StencilTypeError), ((1, np.float64(2)), StencilTypeError),
    ((1, 2, 3), StencilValueError), ((1, 0), StencilValueError),
])
def test_int_tuple_refuses_with_the_callers_classes(value, exc):
    with pytest.raises(exc, match="stride") as info:
        validation.int_tuple(value, param="stride", length=2, minimum=1)
    assert info.value.param == "stride"
    own = _OwnTypeError if exc is StencilTypeError else _OwnValueError
    with pytest.raises(own):
        validation.int_tuple(value, param="stride", length=2, minimum=1,
                             type_error=_OwnTypeError, value_error=_OwnValueError)


def test_int_tuple_and_is_int_accept_numpy_integers():
    assert validation.int_tuple(np.array([2, 3]), param="p") == (2, 3)
    assert validation.int_tuple(np.uint8(4), param="p", length=3) == (4, 4, 4)
    assert not validation.is_int(np.bool_(True))


@pytest.mark.parametrize("dtype", [np.longdouble, np.complex64, object, "U2", "M8[s]"])
def test_as_real_array_refuses_what_the_dtype_policy_refuses(dtype):
    if np.dtype(dtype).itemsize == 8 and np.dtype(dtype).kind == "f":
        pytest.skip("long double is float64 on this platform")
    with pytest.raises(_OwnTypeError) as info:
        validation.as_real_array(np.zeros(2, dtype=dtype), param="x", type_error=_OwnTypeError)
    assert info.value.param == "x"


def test_as_real_array_converts_only_when_needed():
    a = np.zeros((2, 3), np.float32, order="F")
    assert validation.as_real_array(a, param="x") is a
    assert validation.as_real_array(a.astype(np.float16), param="x").dtype == np.float32
    with pytest.raises(_OwnValueError, match=r"x has 2 dimension\(s\).*: \(N, C, H, W\)"):
        validation.as_real_array(a, param="x", ndim=4, layout="(N, C, H, W)",
                                 value_error=_OwnValueError)


def test_clamp_steps_keeps_the_same_points():
    assert validation.clamp_steps((3, 10**30, 7), (5, 4, 0)) == (3, 4, 1)
