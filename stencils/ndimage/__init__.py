"""scipy.ndimage's filter functions on the stencil core: ``from stencils import ndimage as ndi``.

Every function has scipy 1.17's signature, defaults, output dtype rules,
errors and results (integer input gives scipy's integer output), runs in
parallel, and takes dask arrays (the result is a lazy dask array).  See
docs/ndimage.md for the drop-in table and what differs.

Modules: `_args` (argument rules shared by all), `_linear` (correlations,
uniform, Gaussian and derivative filters), `_order` (minimum, maximum, median,
rank, percentile), `_generic` (`generic_filter`, `generic_filter1d`), `_vectorized`
(`vectorized_filter`), `_warmup` (`warmup`: the kernels compiled ahead of time); `_window`
(padding and footprint offsets of those two) and `_networks` (generated median networks).

>>> from stencils import ndimage as ndi
>>> ndi.uniform_filter1d([2.0, 8, 0, 4], size=2)
array([2., 5., 4., 2.])
"""

from . import _generic, _linear, _order, _vectorized, _warmup
from ._generic import CompileFallbackWarning, generic_filter, generic_filter1d
from ._linear import (
    convolve,
    convolve1d,
    correlate,
    correlate1d,
    gaussian_filter,
    gaussian_filter1d,
    gaussian_gradient_magnitude,
    gaussian_laplace,
    generic_gradient_magnitude,
    generic_laplace,
    laplace,
    prewitt,
    sobel,
    uniform_filter,
    uniform_filter1d,
)
from ._order import (
    maximum_filter,
    maximum_filter1d,
    median_filter,
    minimum_filter,
    minimum_filter1d,
    percentile_filter,
    rank_filter,
)
from ._vectorized import vectorized_filter
from ._warmup import warmup

# Other filter modules add their imports above this line and their names below.
__all__ = sorted(_linear.__all__ + _order.__all__ + _generic.__all__ + _vectorized.__all__
                 + _warmup.__all__)
