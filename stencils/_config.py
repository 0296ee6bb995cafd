"""Engine settings (`config`) and `warmup`: compiling the kernels most programs
need ahead of their first use."""

from __future__ import annotations

import contextlib

import numpy as np

from . import _engine
from .errors import StencilTypeError, StencilValueError

__all__ = ["config", "warmup"]

# Setting -> (environment variable, allowed values or the type of a count).
_SETTINGS = {
    "engine": ("STENCILS_ENGINE", ("auto", "interpreter", "generated")),
    "compile": ("STENCILS_COMPILE", ("background", "thread", "sync")),
    "parallel_compile": ("STENCILS_PARALLEL_COMPILE", (True, False)),
    "parallel_min_work": ("STENCILS_PARALLEL_MIN_WORK", int),
    "jit_min_work": ("STENCILS_JIT_MIN_WORK", int),
    "jit_total_work": ("STENCILS_JIT_TOTAL_WORK", int),
    "max_unrolled_nodes": ("STENCILS_MAX_UNROLLED_NODES", int),
    "spin_us": ("STENCILS_SPIN_US", int),
}


def _check_setting(name, value):
    if name not in _SETTINGS:
        raise StencilTypeError(
            f"config() got an unknown setting {name!r}; expected one of {sorted(_SETTINGS)}.",
            param=name, value=value, expected=f"one of {sorted(_SETTINGS)}")
    allowed = _SETTINGS[name][1]
    if allowed is int:
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0:
            raise StencilValueError(
                f"config({name}={value!r}): expected a count (an int >= 0).",
                param=name, value=value, expected="an int >= 0")
    elif value not in allowed:
        raise StencilValueError(
            f"config({name}={value!r}): expected one of {allowed}.",
            param=name, value=value, expected=f"one of {allowed}")


@contextlib.contextmanager
def config(**settings):
    """Engine settings for the code inside a ``with`` block, restored after it.

    The settings are process-wide (every thread sees them) and start from
    environment variables, read once at import.

    Parameters
    ----------
    engine : {'auto', 'interpreter', 'generated'}
        ``STENCILS_ENGINE``.  'auto' (default) serves a stencil by the
        interpreter (tier 0, compiled once for every stencil) until its own
        generated kernel (tier 1) is ready: at once when that kernel is in the
        disk cache, else after a compile started once the stencil's structure
        is used again with enough work.  'interpreter' and 'generated' force
        one tier ('generated' compiles in the call).
    compile : {'background', 'thread', 'sync'}
        ``STENCILS_COMPILE``.  Where a kernel the 'auto' policy asks for is
        compiled while calls run on the interpreter: 'background' (default)
        in a helper process that writes it to the disk cache and outlives
        this one, so a short script still leaves it for the next (calls
        switch once it is there); 'thread' on a thread of this process (lost
        if the process ends first; the choice when there is no disk cache);
        'sync' in the call that asks (reproducible timing).
    parallel_compile : bool
        ``STENCILS_PARALLEL_COMPILE`` (``0`` turns it off).  True (default):
        the interpreter's first compile on a machine with nothing on disk
        runs half of itself in a forked child process, on another core
        (Linux, two CPUs or more); False compiles it all in the calling
        process.
    parallel_min_work, jit_min_work, jit_total_work, max_unrolled_nodes : int
        ``STENCILS_PARALLEL_MIN_WORK`` ..., counted in output points times
        expression nodes: a call goes parallel above `parallel_min_work` (a
        call on the team of spinning helpers, which start at once, above 1/32
        of it: tier 1 always, tier 0 once the team's kernels are compiled); a
        structure's kernel is compiled when one call brings `jit_min_work`, or
        from its second call once its calls have brought `jit_total_work`;
        expressions of more than `max_unrolled_nodes` nodes stay on the
        interpreter under 'auto'.
    spin_us : int
        ``STENCILS_SPIN_US`` (default 300).  Microseconds a helper thread
        keeps polling for the next parallel call's work after it finished a
        job, before it sleeps: a call that comes within that time starts on
        the helper at once instead of waking it (tens of microseconds).  A
        helper that finds itself descheduled (a busy machine) sleeps at once.
        0 never polls.

    Examples
    --------
    >>> import numpy as np, stencils as st
    >>> with st.config(engine="interpreter"):
    ...     st.correlate(np.arange(5.0), np.ones(3), mode="nearest")
    array([ 1.,  3.,  6.,  9., 11.])
    """
    for name, value in settings.items():
        _check_setting(name, value)
    old = {name: getattr(_engine.config, name) for name in settings}
    try:
        for name, value in settings.items():
            setattr(_engine.config, name, value)
        yield
    finally:
        for name, value in old.items():
            setattr(_engine.config, name, value)


def warmup(dtypes=("float32", "float64"), *, ndims=(1, 2, 3, 4)):
    """Compile the common kernels now instead of at first use.

    Compiles the interpreter (which serves every stencil until its own kernel
    is ready) for each dtype, both its builds (with and without the
    operators' code) and both its row readers (a step of 1 along the last
    axis, and strides), and the generated kernels of the 3x3 and 5x5
    correlations used by `correlate`; waits for kernels compiling in the
    background.  With the disk cache (on unless
    ``STENCILS_NUMBA_CACHE=0``) this costs seconds once per machine and a
    fraction of a second per process after that.

    Parameters
    ----------
    dtypes : sequence of dtype, optional
    ndims : sequence of int, optional
        Ranks to exercise (the interpreter's code is shared by every rank).

    Examples
    --------
    >>> import stencils as st
    >>> st.warmup(("float64",), ndims=(1,))
    """
    from ._stencil import make_correlation_stencil_from_kernel, make_stencil, sum_stencil
    from ._windowed import compute, compute_with_stride, map_stencil

    for dtype in dtypes:
        dtype = np.dtype(dtype)
        for ndim in ndims:
            a = np.zeros((4,) * ndim, dtype=dtype)
            corner = (1,) * ndim
            larger = make_stencil((2,) * ndim, (0,) * ndim,
                                  lambda g: np.maximum(g(*(0,) * ndim), g(*corner)))
            with config(engine="interpreter"):
                compute(map_stencil("reflect", sum_stencil((2,) * ndim), a))
                compute(map_stencil("reflect", larger, a))
                compute_with_stride(2, map_stencil("reflect", larger, a))
        for size in (3, 5):
            s = make_correlation_stencil_from_kernel(np.ones((size, size)))
            _engine.compile_stencil(s, dtype)
    _engine.wait_for_compiles()
