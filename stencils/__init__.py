"""massiv's stencil API for NumPy arrays, on a Numba-JIT parallel core.

A stencil is a value: a box size, a centre, and what it computes from the
neighbourhood.  Apply it with a border rule (`map_stencil`) or an explicit
padding (`apply_stencil`), then compute the whole result or only strided
points.  See docs/api.md for the massiv -> Python name table.

>>> import numpy as np, stencils as st
>>> blur = st.make_stencil((3, 3), (1, 1), lambda get: sum(
...     get(i, j) for i in (-1, 0, 1) for j in (-1, 0, 1)) / 9)
>>> st.compute(st.map_stencil(st.Edge, blur, np.eye(3)))
array([[0.55555556, 0.33333333, 0.11111111],
       [0.33333333, 0.33333333, 0.33333333],
       [0.11111111, 0.33333333, 0.55555556]])
"""

from ._border import Border, Continue, Edge, Fill, Reflect, Wrap, as_border
from ._channels import correlate_channels
from ._config import config, warmup
from ._filters import convolve, correlate
from ._iterate import iterate, iterate_until
from ._padding import Padding, Stride, no_padding, same_padding
from ._resample import downsample, upsample, zoom, zoom_with_grid
from ._stencil import (
    Stencil,
    avg_stencil,
    dimap_stencil,
    foldl_stencil,
    foldr_stencil,
    id_stencil,
    lmap_stencil,
    make_convolution_stencil,
    make_convolution_stencil_from_kernel,
    make_correlation_stencil,
    make_correlation_stencil_from_kernel,
    make_stencil,
    max_stencil,
    min_stencil,
    product_stencil,
    rmap_stencil,
    sum_stencil,
)
from ._windowed import WindowedArray, apply_stencil, compute, compute_with_stride, map_stencil
from . import errors, validation

__version__ = "0.1.0"

__all__ = [
    "Border",
    "Continue",
    "Edge",
    "Fill",
    "Padding",
    "Reflect",
    "Stencil",
    "Stride",
    "WindowedArray",
    "Wrap",
    "apply_stencil",
    "as_border",
    "avg_stencil",
    "compute",
    "compute_with_stride",
    "config",
    "convolve",
    "correlate",
    "correlate_channels",
    "dimap_stencil",
    "downsample",
    "errors",
    "foldl_stencil",
    "foldr_stencil",
    "id_stencil",
    "iterate",
    "iterate_until",
    "lmap_stencil",
    "make_convolution_stencil",
    "make_convolution_stencil_from_kernel",
    "make_correlation_stencil",
    "make_correlation_stencil_from_kernel",
    "make_stencil",
    "map_stencil",
    "max_stencil",
    "min_stencil",
    "no_padding",
    "product_stencil",
    "rmap_stencil",
    "same_padding",
    "sum_stencil",
    "upsample",
    "validation",
    "warmup",
    "zoom",
    "zoom_with_grid",
]
