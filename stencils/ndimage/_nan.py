"""``nan_policy='omit'`` for the linear filters: NaN left out of each window.

Definition (documented in docs/ndimage.md): where a window holds NaN, the
result is the filter over the window's other values with their weights
rescaled to the kernel's whole absolute weight,

    out = sum_valid(w * x) * sum_all(|w|) / sum_valid(|w|),

a normalised convolution: for an averaging kernel (uniform, Gaussian) it is
the weighted mean of the values present.  Reads outside the array count as
present (with 'constant' they are cval).  A window of NaN only gives NaN.
Where a window holds no NaN the result is the 'propagate' one, bit for bit
(except after a NaN in the uniform filters, whose running sum, as scipy's,
carries NaN along the line: there the mean is taken as above).
Separable filters apply this to the whole n-D window (each sum is the same
sequence of 1-D passes).
"""

from __future__ import annotations

import numpy as np

from ..errors import StencilTypeError, StencilValueError
from ._args import store

__all__ = ["check_nan_policy", "omit_nan"]

POLICIES = ("propagate", "omit")


def check_nan_policy(nan_policy):
    if not isinstance(nan_policy, str) or nan_policy not in POLICIES:
        raise StencilValueError(
            f"nan_policy={nan_policy!r}; expected 'propagate' (scipy's behaviour) or 'omit' "
            "(leave NaN out of each window).",
            param="nan_policy", value=nan_policy, expected="'propagate' or 'omit'",
        )
    return nan_policy


def omit_nan(filter_real, plain, input, cval):
    """Replace `plain` (the 'propagate' result) where a window holds NaN.

    ``filter_real(data, cval, absolute)`` runs the same filter on float64 `data`
    (with ``|weights|`` when `absolute`) and returns a float64 array.
    """
    data = np.asarray(input)
    if data.dtype.kind == "c" or plain.dtype.kind == "c":
        raise StencilTypeError(
            "nan_policy='omit' takes real input and weights; filter .real and .imag "
            "separately.",
            param="nan_policy", value="omit", expected="real input",
        )
    if data.dtype.kind != "f":
        return plain  # no NaN in integer or bool data
    nan = np.isnan(data)
    if not nan.any():
        return plain
    touched = filter_real(nan.astype(np.float64), 0.0, True) > 0
    values = filter_real(np.where(nan, 0.0, data).astype(np.float64), cval, False)
    present = filter_real((~nan).astype(np.float64), 1.0, True)
    whole = filter_real(np.ones(data.shape), 1.0, True)
    with np.errstate(invalid="ignore", divide="ignore"):
        omitted = values * whole / present
    # A running sum (the uniform filter's) leaves rounding residue where no value is
    # present: a window whose present weight is below that is a window of NaN only.
    omitted[present <= 1e-12 * whole] = np.nan
    fixed = plain.astype(np.float64)
    # scipy's uniform filter is a running sum: it carries NaN past the windows that
    # hold it; those points take the mean of the values present too.
    carried = ~touched & np.isnan(fixed)
    fixed[touched | carried] = omitted[touched | carried]
    store(fixed, plain)
    return plain
