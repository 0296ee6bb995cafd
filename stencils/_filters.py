"""scipy.ndimage-style entry points: `correlate` and `convolve`."""

from __future__ import annotations

import functools

import numpy as np

from . import _dask
from ._border import as_border
from ._stencil import (as_kernel, make_convolution_stencil_from_kernel,
                       make_correlation_stencil_from_kernel)
from ._validate import as_source_array
from ._windowed import compute_with_stride, map_stencil
from .errors import StencilValueError

__all__ = ["correlate", "convolve"]


@functools.lru_cache(maxsize=128)
def _cached_stencil(flip, shape, data):
    kernel = np.frombuffer(data, dtype=np.float64).reshape(shape)
    # scipy.ndimage leaves zero weights out of the footprint, so a NaN or inf
    # under a zero weight does not reach the output; the same here.
    make = make_convolution_stencil_from_kernel if flip else make_correlation_stencil_from_kernel
    return make(kernel, _drop_zeros=True)


def _filter(image, kernel, mode, cval, stride, out, flip):
    source = (_dask.as_dask_source(image, param="image") if _dask.is_dask_array(image)
              else as_source_array(image, param="image"))
    k = as_kernel(kernel)
    if k.ndim != source.ndim:
        hint = ""
        if k.ndim == 1 and source.ndim > 1:
            hint = (f"; reshape it, e.g. kernel[{', '.join(['None'] * (source.ndim - 1))}, :] "
                    "for a filter along the last axis")
        raise StencilValueError(
            f"kernel has {k.ndim} dimension{'s' if k.ndim != 1 else ''} (shape {k.shape}) but "
            f"the image has {source.ndim}{hint}.",
            param="kernel", value=k.shape, expected=f"a {source.ndim}-D kernel",
        )
    border = as_border(mode, cval, param="mode")
    stencil = _cached_stencil(flip, k.shape, np.ascontiguousarray(k).tobytes())
    return compute_with_stride(stride, map_stencil(border, stencil, source), out=out)


def correlate(image, kernel, mode="reflect", cval=0.0, stride=1, out=None):
    """Correlate an n-D image with a kernel, as ``scipy.ndimage.correlate`` does.

    ``out[i] = sum_j kernel[j] * image[i + j - m // 2]`` per axis (kernel length
    ``m``; no flip), equal to ``scipy.ndimage.correlate(image, kernel,
    mode=mode, cval=cval, origin=0)`` for every shape and mode, odd and even
    kernels.

    Parameters
    ----------
    image : array_like
        At least 1-D.  float32 stays float32 (weights and sums too), float16
        becomes float32, other real dtypes become float64 (scipy would keep an
        integer type and truncate).
    kernel : array_like
        Weights, of the image's rank.  Zero weights are left out, as scipy
        does (a NaN under a zero weight does not spread).
    mode : {'reflect', 'constant', 'nearest', 'mirror', 'wrap'} or Border, optional
        How the image is extended (scipy's rules; a massiv `Border` value gives
        massiv's).  Default 'reflect'.
    cval : float, optional
        The value outside the image for ``mode='constant'``.
    stride : int, tuple of int or Stride, optional
        Keep (and compute) only every `stride`-th output point per axis.
    out : ndarray, optional
        Of the result's shape and dtype.

    Returns
    -------
    ndarray

    See Also
    --------
    convolve : The same with the kernel flipped.
    map_stencil : The general form.

    Examples
    --------
    >>> import numpy as np
    >>> from stencils import correlate
    >>> image = np.arange(12.0).reshape(3, 4)
    >>> correlate(image, np.ones((3, 3)), mode="constant")
    array([[10., 18., 24., 18.],
           [27., 45., 54., 39.],
           [26., 42., 48., 34.]])
    >>> correlate(image, np.ones((3, 3)), mode="constant", stride=2)
    array([[10., 24.],
           [26., 48.]])

    Integer input is computed in float64:

    >>> correlate(np.array([0, 1, 2, 3, 4]), [1, 2, 3], mode="wrap")
    array([ 7.,  8., 14., 20., 11.])
    """
    return _filter(image, kernel, mode, cval, stride, out, flip=False)


def convolve(image, kernel, mode="reflect", cval=0.0, stride=1, out=None):
    """Convolve an n-D image with a kernel, as ``scipy.ndimage.convolve`` does.

    ``out[i] = sum_j kernel[j] * image[i + m // 2 - j]`` per axis; equal to
    ``scipy.ndimage.convolve(image, kernel, mode=mode, cval=cval, origin=0)``.
    Parameters as in `correlate`.

    Examples
    --------
    >>> import numpy as np
    >>> from stencils import convolve
    >>> convolve(np.array([0.0, 0, 0, 1, 0, 0, 0]), [1, 2, 3, 4], mode="constant")
    array([0., 1., 2., 3., 4., 0., 0.])
    """
    return _filter(image, kernel, mode, cval, stride, out, flip=True)
