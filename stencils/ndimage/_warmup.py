"""`warmup`: compile the filters' kernels for their common calls now, on every core.

Each filter's kernels compile on their first use on a machine (seconds each,
docs/ndimage.md "The first call"); numba's disk cache then keeps them for
every later process.  `warmup` makes those first uses ahead of time in helper
processes, one per core, each compiling its share into the disk cache: the
wall time is about the longest share instead of the sum.  Helper processes
are plain ``python -c`` children (not multiprocessing), so a script that calls
`warmup` needs no ``if __name__ == "__main__"`` guard.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import numpy as np

from .._kernels import CACHE
from ..errors import StencilValueError

__all__ = ["warmup"]

# The calls a first use of each function makes, on a 256^2 array of the warmed dtype (the
# size of the parallel kernels), with the seconds each took to compile on a fresh
# machine (2 vCPUs, float32), which order the helpers' shares.  The maximum's kernels
# serve the minimum too.
_CALLS = {
    "maximum_filter": (7.8, lambda ndi, a: (ndi.maximum_filter(a, 5),
                                            ndi.minimum_filter(a, 5))),
    "gaussian_filter": (7.4, lambda ndi, a: ndi.gaussian_filter(a, 2.0)),
    "median_filter": (4.8, lambda ndi, a: (ndi.median_filter(a, 3), ndi.median_filter(a, 5))),
    "sobel": (3.4, lambda ndi, a: (ndi.sobel(a, 0), ndi.sobel(a, 1))),
    "correlate": (1.9, lambda ndi, a: ndi.correlate(a, np.ones((3, 3), a.dtype))),
    "uniform_filter": (1.8, lambda ndi, a: ndi.uniform_filter(a, 5)),
}
FUNCTIONS = tuple(_CALLS)


def warmup(dtypes=("float32", "float64"), *, functions=None, processes=None):
    """Compile `stencils.ndimage`'s kernels for the common calls now, in helper processes.

    Parameters
    ----------
    dtypes : sequence of dtype, optional
        The input dtypes to compile for.
    functions : sequence of str, optional
        Names among ``stencils.ndimage._warmup.FUNCTIONS`` (default: all).
    processes : int, optional
        Helper processes (default: one per core).  0 compiles in this process,
        as does any value when numba's disk cache is off
        (``STENCILS_NUMBA_CACHE=0``): a helper's compile would be lost.

    Returns
    -------
    dict
        Seconds each ``(function, dtype)`` took, in whichever process ran it.

    Examples
    --------
    >>> from stencils import ndimage as ndi
    >>> took = ndi.warmup(("float64",), functions=["uniform_filter"], processes=0)
    >>> sorted(took)
    [('uniform_filter', 'float64')]
    """
    jobs = _jobs(dtypes, functions)
    if processes is None:
        processes = os.cpu_count() or 1
    if not isinstance(processes, int) or isinstance(processes, bool) or processes < 0:
        raise StencilValueError(f"processes={processes!r}; expected an integer >= 0.",
                                param="processes", value=processes, expected="an integer >= 0")
    if processes == 0 or not CACHE:
        return {job: _warm(*job) for job in jobs}
    shares = _shares(jobs, min(processes, len(jobs)))
    children = [subprocess.Popen(
        [sys.executable, "-c", "from stencils.ndimage._warmup import _main; _main()",
         *(f"{name}:{dtype}" for name, dtype in share)],
        stdout=subprocess.PIPE, text=True) for share in shares]
    took = {}
    for child in children:
        out, _ = child.communicate()
        if child.returncode != 0:
            raise RuntimeError(f"a warm-up helper process failed (exit status "
                               f"{child.returncode}); its error is printed above.")
        took.update({(name, dtype): seconds for name, dtype, seconds in json.loads(out)})
    return took


def _jobs(dtypes, functions):
    names = FUNCTIONS if functions is None else tuple(functions)
    unknown = [name for name in names if name not in _CALLS]
    if unknown or isinstance(functions, str):
        raise StencilValueError(
            f"functions={functions!r}: {unknown or functions!r} not among the warmed calls; "
            f"expected names among {', '.join(FUNCTIONS)}.",
            param="functions", value=functions, expected="names of FUNCTIONS")
    return [(name, np.dtype(dtype).name) for name in names for dtype in dtypes]


def _shares(jobs, count):
    """`jobs` split into `count` shares, longest first onto the least loaded."""
    shares, loads = [[] for _ in range(count)], [0.0] * count
    for job in sorted(jobs, key=lambda job: -_CALLS[job[0]][0]):
        least = loads.index(min(loads))
        shares[least].append(job)
        loads[least] += _CALLS[job[0]][0]
    return [share for share in shares if share]


def _warm(name, dtype):
    from stencils import ndimage

    started = time.perf_counter()
    _CALLS[name][1](ndimage, np.zeros((256, 256), dtype))
    return time.perf_counter() - started


def _main():
    """A helper process: warm the ``name:dtype`` jobs of its arguments, print their seconds."""
    jobs = [arg.split(":") for arg in sys.argv[1:]]
    print(json.dumps([(name, dtype, _warm(name, dtype)) for name, dtype in jobs]))
