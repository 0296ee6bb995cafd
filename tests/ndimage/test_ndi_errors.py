"""Bad input to stencils.ndimage's linear filters: scipy's exception types, messages that
name the argument and the value."""

import numpy as np
import pytest
import scipy.ndimage as sn

from stencils import ndimage as ndi
from stencils.errors import StencilError

IMAGE = np.arange(20.0).reshape(4, 5)

CASES = [
    # (call, argument named in our message)
    (lambda m: m.correlate1d(IMAGE, [1, 2], mode="edge"), "mode"),
    (lambda m: m.gaussian_filter(IMAGE, 1, mode="refelct"), "mode"),
    (lambda m: m.uniform_filter(IMAGE, 3, mode=["reflect"] * 3), "mode"),
    (lambda m: m.correlate(IMAGE, np.ones((2, 2)), mode=["reflect", "wrap"]), "mode"),
    (lambda m: m.correlate1d(IMAGE, [], 0), "weights"),
    (lambda m: m.correlate1d(IMAGE, [1, 2, 3], origin=2), "origin"),
    (lambda m: m.correlate(IMAGE, np.ones((3, 3)), origin=(0, -2)), "origin"),
    (lambda m: m.correlate(IMAGE, np.ones(3)), "weights"),
    (lambda m: m.correlate1d(IMAGE, [1, 2], axis=2), "axis"),
    (lambda m: m.gaussian_filter(IMAGE, 1, axes=(0, 0)), "axes"),
    (lambda m: m.gaussian_filter(IMAGE, 1, axes=(2,)), "axes"),
    (lambda m: m.uniform_filter(IMAGE, 3, axes=(1.5,)), "axes"),
    (lambda m: m.gaussian_filter(IMAGE, [1, 2, 3]), "sigma"),
    (lambda m: m.gaussian_filter1d(IMAGE, 1, radius=-1), "radius"),
    (lambda m: m.gaussian_filter1d(IMAGE, 1, order=-1), "order"),
    (lambda m: m.uniform_filter1d(IMAGE, 0), "size"),
    (lambda m: m.uniform_filter1d(IMAGE, 2.5), "size"),
    (lambda m: m.uniform_filter1d(IMAGE, 3, origin=2), "origin"),
    (lambda m: m.sobel(IMAGE, output=np.zeros((3, 3))), "output"),
    (lambda m: m.correlate(IMAGE, np.ones((2, 2)), output="complex64"), "output"),
    (lambda m: m.gaussian_filter(IMAGE, 1, output=np.complex64), "output"),
    (lambda m: m.gaussian_filter(IMAGE.astype(np.float16), 1), "input"),
    (lambda m: m.correlate1d(IMAGE, [1, 1j], cval=1j, output=np.complex128), "cval"),
    (lambda m: m.laplace(IMAGE, mode="bogus"), "mode"),
]


@pytest.mark.parametrize("call, param", CASES)
def test_scipy_error_types_with_named_arguments(call, param):
    with pytest.raises(Exception) as theirs:
        call(sn)
    with pytest.raises(type(theirs.value)) as ours:
        call(ndi)
    message = str(ours.value)
    assert param in message, message
    if isinstance(ours.value, StencilError):
        assert ours.value.param == param


def test_message_suggests_the_scipy_name():
    with pytest.raises(RuntimeError, match="here it is 'nearest'"):
        ndi.uniform_filter(IMAGE, 3, mode="edge")
    with pytest.raises(RuntimeError, match="Did you mean 'reflect'"):
        ndi.sobel(IMAGE, mode="reflct")


def test_dask_input_refuses_an_output_array():
    da = pytest.importorskip("dask.array")
    with pytest.raises(TypeError, match="output"):
        ndi.gaussian_filter(da.zeros((4, 4)), 1, output=np.zeros((4, 4)))


def test_non_numeric_input():
    with pytest.raises(TypeError, match="input"):
        ndi.gaussian_filter(np.array(["a", "b"]), 1)
