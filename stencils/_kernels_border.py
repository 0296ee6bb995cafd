"""The border table the kernels use: one integer code per rule, and the rule itself.

A read at index ``i`` on an axis of length ``n`` that falls outside ``[0, n)``
is answered by the source cell `resolve_index` names for the border's code
(or by the fill value, for `FILL`).  Every production path goes through this
one rule: the interpreter and the generated kernels call `resolve_index`, the
Dask backend `resolve_indices` (which loops over it).  A new border rule is a
new code here and a new branch in `resolve_index`, then its names in
stencils._border.  (stencils._reference writes the rules out again on purpose,
as an independent oracle for the tests.)

Kernel-level: imports nothing but NumPy and Numba.
"""

from __future__ import annotations

import os

import numpy as np
from numba import njit

__all__ = ["CACHE", "FILL", "WRAP", "EDGE", "REFLECT", "CONTINUE", "SCIPY_REFLECT",
           "SCIPY_MIRROR", "resolve_index", "resolve_indices"]

# Disk caching of compiled kernels; STENCILS_NUMBA_CACHE=0 turns it off.  Read
# here, the lowest kernel module, so that every kernel module shares it.
CACHE = os.environ.get("STENCILS_NUMBA_CACHE", "1").lower() not in ("0", "false", "no", "off")

FILL, WRAP, EDGE, REFLECT, CONTINUE, SCIPY_REFLECT, SCIPY_MIRROR = range(7)


@njit(cache=CACHE, nogil=True, error_model="numpy")
def resolve_index(i, n, code):
    """The source index that answers a read at `i` on an axis of length `n`, or -1 for Fill."""
    if 0 <= i < n:
        return i
    if code == FILL:
        return -1
    if code == WRAP:
        return i % n
    if code == EDGE:
        return 0 if i < 0 else n - 1
    if code == REFLECT:  # massiv: one modulo, period n far from the array
        return (-i - 1) % n
    if code == CONTINUE:  # massiv: edge cell not repeated, period n
        return (-i) % n if i < 0 else (-i - 2) % n
    if code == SCIPY_REFLECT:  # scipy 'reflect' / numpy 'symmetric': period 2n
        m = i % (2 * n)
        return m if m < n else 2 * n - 1 - m
    # SCIPY_MIRROR: scipy 'mirror' / numpy 'reflect': period 2n - 2
    if n == 1:
        return 0
    m = i % (2 * n - 2)
    return m if m < n else 2 * n - 2 - m


@njit(cache=CACHE, nogil=True, error_model="numpy")
def _resolve_each(idx, n, code, out):
    for t in range(idx.size):
        out[t] = resolve_index(idx[t], n, code)


def resolve_indices(idx, n, code):
    """`resolve_index` of every read in `idx` (a 1-D int64 array), as a new int64 array."""
    idx = np.ascontiguousarray(idx, dtype=np.int64)
    out = np.empty_like(idx)
    _resolve_each(idx, np.int64(n), np.int64(code), out)
    return out
