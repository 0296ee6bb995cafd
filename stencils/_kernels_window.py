"""The array type a compiled `generic_filter` function receives: a window.

A user function gets each window as a `WindowArray`: a Numba array type
(float64, 1-D, C-contiguous, the same memory layout as any array) that
behaves as an ordinary array everywhere, slices and results of arithmetic
being plain arrays, except that its ``.max()`` and ``.min()`` methods are
compiled here instead of by Numba's generic reductions.

Why: Numba's reductions walk any array through ``np.nditer`` and stop at the
first NaN, one comparison after another, so ``window.max() - window.min()``
on 25 cells costs several times the gather of the window.  These read the
window directly, with four independent running extremes (the comparisons of
different cells overlap) and the NaN test folded into a flag.  Their results
are Numba's bit for bit: the first NaN of the window when there is one (as
Numba returns it); otherwise the extreme, whose value does not depend on the
order of the comparisons, except for the sign of a zero (``-0.0 == 0.0``), so
a zero extreme is recomputed in Numba's order (the first cell of the extreme
value wins).

A box window (a footprint of all True) whose function uses nothing of the
window but ``.max()``, ``.min()``, ``.size``, ``.shape`` and ``len()`` gets a
`BoxExtremes` instead: no cells, only the window's maximum and minimum,
which the kernel computes for a whole row of windows at once from the
extremes of each row of the box (a row: a run along the last axis, reduced
once for the output rows of a task that read it).  The window's extreme is
the extreme of its rows' extremes, taken in C order by the rule of
`replaces_max` (each row's left to right by the same rule), and that is Numba's scan of the cells
in C order bit for bit: the first NaN of the first row holding one is the
window's first NaN, and the first row holding the extreme value holds its
first cell (which keeps the sign of a zero).
"""

from __future__ import annotations

import operator

from numba import types, uintp
from numba.core import cgutils
from numba.core.datamodel import models, register_default
from numba.extending import (intrinsic, make_attribute_wrapper, overload, overload_attribute,
                             overload_method, register_jitable)
from numba.np.arrayobj import populate_array


class WindowArray(types.Array):
    """Numba type of a window: a float64 1-D C-contiguous array with fast max/min."""

    def __init__(self, dtype, ndim, layout, readonly=False, aligned=True):
        super().__init__(dtype, ndim, layout, readonly=readonly, aligned=aligned,
                         name=f"window({dtype}, {ndim}d, {layout})")


register_default(WindowArray)(models.ArrayModel)

WINDOW = WindowArray(types.float64, 1, "C")


@intrinsic
def as_window(typingctx, array):
    """`array` (float64, 1-D, C-contiguous) seen as a `WindowArray` (no copy).

    The window borrows `array`'s memory: it must not outlive `array`.
    """
    if not (isinstance(array, types.Array) and array.dtype == types.float64
            and array.ndim == 1 and array.layout == "C"):
        return None

    def codegen(context, builder, signature, args):
        # No memory-info pointer, as for `numba.carray`: the window's buffer
        # outlives every call, and reference counts on it would cost atomic
        # operations in each reduction.
        source = context.make_array(signature.args[0])(context, builder, args[0])
        window = context.make_array(signature.return_type)(context, builder)
        populate_array(window, data=source.data, shape=source.shape,
                       strides=source.strides, itemsize=source.itemsize, meminfo=None)
        return window._getvalue()

    return WINDOW(array), codegen


@register_jitable
def _first_nan(a):
    for k in range(a.shape[0]):
        if a[k] != a[k]:
            return a[k]
    return a[0]


def _extreme(better, name):
    """The window's extreme by `better` (strict: a later equal cell never replaces)."""

    @register_jitable
    def in_order(a):
        m = a[0]
        for k in range(1, a.shape[0]):
            if better(a[k], m):
                m = a[k]
        return m

    def impl(a):
        n = uintp(a.shape[0])
        if n == 0:
            raise ValueError("zero-size array to reduction operation " + name
                             + " which has no identity")
        m0 = m1 = m2 = m3 = a[0]
        nan = m0 != m0
        k = uintp(1)
        while k + uintp(4) <= n:
            v0, v1, v2, v3 = a[k], a[k + uintp(1)], a[k + uintp(2)], a[k + uintp(3)]
            nan |= (v0 != v0) | (v1 != v1) | (v2 != v2) | (v3 != v3)
            m0 = v0 if better(v0, m0) else m0
            m1 = v1 if better(v1, m1) else m1
            m2 = v2 if better(v2, m2) else m2
            m3 = v3 if better(v3, m3) else m3
            k += uintp(4)
        while k < n:
            v0 = a[k]
            nan |= v0 != v0
            m0 = v0 if better(v0, m0) else m0
            k += uintp(1)
        if nan:
            return _first_nan(a)
        m0 = m1 if better(m1, m0) else m0
        m2 = m3 if better(m3, m2) else m2
        m0 = m2 if better(m2, m0) else m0
        if m0 == 0.0:
            return in_order(a)
        return m0

    return impl


_max_impl = _extreme(operator.gt, "maximum")
_min_impl = _extreme(operator.lt, "minimum")


@overload_method(WindowArray, "max", inline="always")
def _window_max(a):
    return _max_impl


@overload_method(WindowArray, "min", inline="always")
def _window_min(a):
    return _min_impl


# -- box windows: the extremes of their rows ---------------------------------------------


@register_jitable
def replaces_max(v, m):
    """Whether cell `v`, met after the running maximum `m`, becomes it in Numba's scan:
    strictly greater, or the first NaN (a NaN, once taken, stays)."""
    return (v > m) | ((v != v) & (m == m))


@register_jitable
def replaces_min(v, m):
    """`replaces_max` for the minimum."""
    return (v < m) | ((v != v) & (m == m))


class BoxExtremes(types.Type):
    """Numba type of a box window known by its extremes (no cells): a kernel computes the
    extremes of a row of windows at once, and each window points at its own two."""

    def __init__(self):
        super().__init__(name="box_window")


@register_default(BoxExtremes)
class _BoxExtremesModel(models.StructModel):
    def __init__(self, dmm, fe_type):
        cell = types.CPointer(types.float64)
        members = [("max_at", cell), ("min_at", cell), ("size", types.intp)]
        super().__init__(dmm, fe_type, members)


BOX = BoxExtremes()
make_attribute_wrapper(BoxExtremes, "size", "size")
make_attribute_wrapper(BoxExtremes, "max_at", "_max_at")
make_attribute_wrapper(BoxExtremes, "min_at", "_min_at")


@intrinsic
def box_window(typingctx, window_max, window_min, column, size):
    """The window at `column` of a row whose windows' extremes are `window_max` and
    `window_min`, of `size` cells.  It borrows both arrays."""
    row = types.Array(types.float64, 1, "C")
    if not (window_max == row and window_min == row and isinstance(column, types.Integer)
            and isinstance(size, types.Integer)):
        return None

    def codegen(context, builder, signature, args):
        at = context.cast(builder, args[2], signature.args[2], types.intp)
        window = cgutils.create_struct_proxy(BOX)(context, builder)
        window.max_at = builder.gep(context.make_array(row)(context, builder, args[0]).data, [at])
        window.min_at = builder.gep(context.make_array(row)(context, builder, args[1]).data, [at])
        window.size = context.cast(builder, args[3], signature.args[3], types.intp)
        return window._getvalue()

    return BOX(window_max, window_min, column, size), codegen


@overload_method(BoxExtremes, "max", inline="always")
def _box_window_max(w):
    return lambda w: w._max_at[0]


@overload_method(BoxExtremes, "min", inline="always")
def _box_window_min(w):
    return lambda w: w._min_at[0]


@overload_attribute(BoxExtremes, "shape")
def _box_window_shape(w):
    return lambda w: (w.size,)


@overload(len)
def _box_window_len(w):
    if isinstance(w, BoxExtremes):
        return lambda w: w.size
    return None
