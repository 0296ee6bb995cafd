"""What every generated kernel shares, apart from the scalar semantics of
stencils._kernels: the geometry of the outer axes and the source rows of an
output line.  (Threads are the engine's: it runs a generated kernel over boxes
of the output on its helper threads.)

Geometry as in stencils._kernels: the source and output are viewed as rows
(every axis but the last flattened); an output *line* is one output row, its
index decoded over the outer axes.  ``keys[m]`` are the box coordinates, on
the outer axes, of the m-th distinct source row the stencil reads.

Generated modules compile against these functions, so their source is part of
the generated text's key (see stencils._codegen): numba's cache does not notice
a change in a callee of another module.
"""

from __future__ import annotations

from numba import njit

from ._kernels import CACHE, resolve_index

# Rows of the geometry array a generated kernel allocates, (GEOMETRY_ROWS, outer axes).
OUTER, SOURCE, LOW, STEP, INDEX = range(5)
GEOMETRY_ROWS = 5


@njit(cache=CACHE, nogil=True, error_model="numpy")
def outer_geometry(out_outer, src_outer, lo, step, key_lo, key_hi, geometry):
    """Fill `geometry` with the outer axes (output and source extents, low corners,
    steps), pass-through axes folded; return the lines ``[ya, yb)`` of the last
    outer axis whose reads all lie inside the array.

    An axis the stencil does not reach across (box 1, step 1, low corner 0) is
    folded into the next one when that one's output lines map to source rows
    at one constant step with no read outside the array: its lines then run
    on across planes (a (64, 6, 28, 28) max pooling is one run of 5376 lines).
    Plain loops and no allocation: each numpy function used here would add to
    the first compile on a machine.
    """
    nax = out_outer.shape[0]
    oo, so, lo_o, st_o = geometry[OUTER], geometry[SOURCE], geometry[LOW], geometry[STEP]
    for a in range(nax):
        oo[a] = out_outer[a]
        so[a] = src_outer[a]
        inner = a < lo.shape[0] - 1
        lo_o[a] = lo[a] if inner else 0
        st_o[a] = step[a] if inner else 1
    for a in range(nax - 1):
        b = a + 1
        passes = (key_lo[a] == 0 and key_hi[a] == 0 and st_o[a] == 1 and lo_o[a] == 0
                  and oo[a] == so[a])
        dense = (so[b] == oo[b] * st_o[b] and lo_o[b] + key_lo[b] >= 0
                 and (oo[b] - 1) * st_o[b] + lo_o[b] + key_hi[b] < so[b])
        if passes and dense:
            oo[b] *= oo[a]
            so[b] *= so[a]
            oo[a] = 1
            so[a] = 1
    y = nax - 1
    ny, s = oo[y], st_o[y]
    ya = min(ny, max(0, -((lo_o[y] + key_lo[y]) // s)))
    yb = min(ny, max(0, (so[y] - 1 - lo_o[y] - key_hi[y]) // s + 1))
    return ya, max(ya, yb)


@njit(cache=CACHE, nogil=True, error_model="numpy")
def line_rows(line, rows, geometry, keys, code):
    """The source row of each key for output `line` (-1 where a read is Fill);
    True when every row is inside the array."""
    oo, so, lo_o, st_o, index = (geometry[OUTER], geometry[SOURCE], geometry[LOW],
                                 geometry[STEP], geometry[INDEX])
    rem = line
    for a in range(oo.shape[0] - 1, -1, -1):
        index[a] = rem % oo[a]
        rem //= oo[a]
    valid = True
    for m in range(rows.shape[0]):
        flat = 0
        for a in range(oo.shape[0]):
            r = resolve_index(index[a] * st_o[a] + lo_o[a] + keys[m, a], so[a], code)
            if r < 0:
                valid = False
                flat = -1
                break
            flat = flat * so[a] + r
        rows[m] = flat
    return valid


def item_count(out2, colblock):
    """Work items of a call: (output line, column block) pairs."""
    return out2.shape[0] * ((out2.shape[1] + colblock - 1) // colblock)
