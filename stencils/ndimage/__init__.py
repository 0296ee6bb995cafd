"""scipy.ndimage's filter functions on the stencil core: ``from stencils import ndimage as ndi``.

Every function has scipy 1.17's signature, defaults, output dtype rules,
errors and results (integer input gives scipy's integer output), runs in
parallel, and takes dask arrays (the result is a lazy dask array).  See
docs/ndimage.md for the drop-in table and what differs.

Modules: `_args` (argument rules shared by all), `_linear` (correlations,
uniform, Gaussian and derivative filters), `_order` (minimum, maximum, median,
rank, percentile), `_generic` (`generic_filter`, `generic_filter1d`).
"""

__all__ = []

from ._order import (  # noqa: E402
    maximum_filter, maximum_filter1d, median_filter, minimum_filter, minimum_filter1d,
    percentile_filter, rank_filter,
)

__all__ += [
    "minimum_filter", "maximum_filter", "minimum_filter1d", "maximum_filter1d",
    "median_filter", "rank_filter", "percentile_filter",
]

from ._generic import CompileFallbackWarning, generic_filter, generic_filter1d  # noqa: E402

__all__ += ["generic_filter", "generic_filter1d", "CompileFallbackWarning"]
