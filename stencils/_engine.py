"""Running a stencil: choosing a kernel, compiling it once, calling it safely.

Two kernels can compute any stencil (see stencils._kernels):

- the interpreter, compiled once per dtype for every stencil there is, serves
  small arrays and one-off stencils: hundreds of different stencils (the
  conformance vectors, property tests) compile nothing new;
- a kernel generated for the stencil's structure serves large arrays and
  stencils used again and again.  It costs about a second to compile the first
  time on a machine, then loads from the disk cache in a fraction of that.

A stencil is moved to its own kernel once the work it brings (output points
times expression size, over its life in the process) passes a threshold, or at
once for a single large call.  Thresholds come from benchmarks/ measurements.
"""

from __future__ import annotations

import importlib.util
import os
import sys
import tempfile
import threading

import numba
import numpy as np

from . import _kernels as kn
from . import _lower

__all__ = ["run", "compile_stencil", "cache_dir", "config"]


class _Config:
    """Tuning knobs (read once from the environment; tests and benchmarks may set them)."""

    def __init__(self):
        env = os.environ.get
        # Output points x expression nodes above which a call goes parallel.
        self.parallel_min_work = int(env("STENCILS_PARALLEL_MIN_WORK", 1 << 17))
        # ... above which one call compiles the stencil's own kernel at once.
        self.jit_min_work = int(env("STENCILS_JIT_MIN_WORK", 1 << 26))
        # ... summed over a stencil structure's calls, after which it is compiled.
        self.jit_total_work = int(env("STENCILS_JIT_TOTAL_WORK", 1 << 28))
        # Expressions larger than this are never unrolled (compile time grows with them).
        self.max_unrolled_nodes = int(env("STENCILS_MAX_UNROLLED_NODES", 400))
        # 'auto', 'interpreter' or 'generated': force a path (tests, benchmarks).
        self.engine = env("STENCILS_ENGINE", "auto")


config = _Config()

_PARALLEL_LOCK = threading.Lock()
_COMPILE_LOCK = threading.RLock()
_MODULES = {}  # structure key -> imported generated module
_WORK = {}  # structure key -> work done by the interpreter so far
_CACHE_DIR = None


def _fingerprint():
    # Generated modules call functions of stencils._kernels; numba's cache does
    # not notice when those change (numba#1833), so their source is in the key.
    import hashlib

    with open(kn.__file__, "rb") as f:
        kernels = f.read()
    with open(_lower.__file__, "rb") as f:
        lower = f.read()
    return hashlib.sha1(kernels + lower + numba.__version__.encode()).hexdigest()[:12]


_FINGERPRINT = _fingerprint()


def cache_dir():
    """Where generated kernels and their compiled code are kept.

    ``STENCILS_CACHE_DIR`` if set, else ``$XDG_CACHE_HOME/stencil-grad`` (or
    ``~/.cache/stencil-grad``); a private temporary folder if that is not
    writable (the cache then lasts for this process only).
    """
    global _CACHE_DIR
    if _CACHE_DIR is None:
        base = os.environ.get("STENCILS_CACHE_DIR") or os.path.join(
            os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache"),
            "stencil-grad",
        )
        path = os.path.join(base, f"kernels-{_FINGERPRINT}")
        try:
            os.makedirs(path, exist_ok=True)
            probe = tempfile.NamedTemporaryFile(dir=path, delete=True)
            probe.close()
        except OSError:
            path = tempfile.mkdtemp(prefix="stencil-grad-kernels-")
        _CACHE_DIR = path
    return _CACHE_DIR


def _load_module(generated):
    """Import the generated module for `generated`, writing its file if needed."""
    module = _MODULES.get(generated.key)
    if module is not None:
        return module
    with _COMPILE_LOCK:
        module = _MODULES.get(generated.key)
        if module is not None:
            return module
        name = f"stencils_kernel_{generated.key}"
        path = os.path.join(cache_dir(), name + ".py")
        if not os.path.exists(path):
            # Atomic: other processes may be writing the same kernel right now.
            fd, tmp = tempfile.mkstemp(dir=os.path.dirname(path), suffix=".tmp")
            with os.fdopen(fd, "w") as f:
                f.write(generated.source)
            os.replace(tmp, path)
        spec = importlib.util.spec_from_file_location(name, path)
        module = importlib.util.module_from_spec(spec)
        # Registered before running: numba's cache of a parallel function looks
        # the module up by name when it reloads in the next process.
        sys.modules[name] = module
        spec.loader.exec_module(module)
        _MODULES[generated.key] = module
        return module


def _generated(stencil, step_last):
    cache = stencil._lowered
    key = ("generated", step_last)
    gen = cache.get(key)
    if gen is None:
        gen = cache[key] = _lower.generate_source(stencil, step_last, _FINGERPRINT)
    return gen


def _program(stencil):
    prog = stencil._lowered.get("program")
    if prog is None:
        prog = stencil._lowered["program"] = _lower.lower_program(stencil)
    return prog


def compile_stencil(stencil, dtype=np.float64, *, step_last=1):
    """Compile (or load from the disk cache) the stencil's own kernel now."""
    gen = _generated(stencil, int(step_last))
    module = _load_module(gen)
    src = np.zeros((1, 1), dtype=dtype)
    out = np.zeros((1, 1), dtype=dtype)
    consts = _consts(gen.params, 0.0, src.dtype)
    outer = np.ones(max(stencil.ndim - 1, 1), dtype=np.int64)
    lo = np.zeros(stencil.ndim, dtype=np.int64)
    step = np.ones(stencil.ndim, dtype=np.int64)
    for fn in (module.kernel_parallel, module.kernel_serial):
        fn(src, out, consts, outer, outer, lo, step, np.int64(kn.FILL), np.int64(1), np.int64(1))
    return module


def _consts(params, fill, dtype):
    return np.array([0.0, 1.0, fill] + list(params), dtype=dtype)


def _choose_generated(stencil, work, step_last):
    if config.engine == "interpreter":
        return None
    nodes = _program(stencil).nodes
    if nodes > config.max_unrolled_nodes and config.engine != "generated":
        return None
    gen = _generated(stencil, step_last)
    if gen.key in _MODULES or config.engine == "generated":
        return gen
    total = _WORK.get(gen.key, 0) + work
    _WORK[gen.key] = total
    if work >= config.jit_min_work or total >= config.jit_total_work:
        return gen
    return None


def _plan(nrows, width, threads, block_cap):
    """Column block and chunk count so that every thread gets work."""
    colblock = max(1, min(width, block_cap))
    if threads > 1 and nrows < 4 * threads:
        pieces = -(-4 * threads // max(nrows, 1))
        colblock = max(min(width, 256), -(-width // pieces))
        colblock = min(colblock, block_cap)
    nitems = nrows * (-(-width // colblock))
    nchunks = max(1, min(nitems, 8 * threads)) if threads > 1 else 1
    return colblock, nchunks


def run(stencil, src, out, lo, step, border, *, parallel=None):
    """Compute `stencil` over `src` into `out`.

    `src` and `out` are C-contiguous arrays of the same float dtype and rank;
    output index ``j`` on axis ``a`` reads source cells ``j * step[a] + lo[a] +
    k`` for ``k`` in the stencil's box, through `border`.  `out` is written
    whole.  `parallel` None chooses by the amount of work.
    """
    if out.size == 0:
        return out
    ndim = src.ndim
    if src.size == 0:
        # Every read is outside the array: with Fill they all read the fill
        # value, so the result is one number everywhere.
        one = np.full((1,) * ndim, border.value, dtype=src.dtype)
        value = np.empty((1,) * ndim, dtype=src.dtype)
        run(stencil, one, value, (0,) * ndim, (1,) * ndim, border, parallel=False)
        out[...] = value.reshape(())
        return out
    dtype = src.dtype
    src2 = src.reshape(-1, src.shape[-1])
    out2 = out.reshape(-1, out.shape[-1])
    out_outer = np.array(out.shape[:-1] or (1,), dtype=np.int64)
    src_outer = np.array(src.shape[:-1] or (1,), dtype=np.int64)
    lo_arr = np.array(lo, dtype=np.int64)
    step_arr = np.array(step, dtype=np.int64)
    code = np.int64(border.code)
    prog = _program(stencil)
    work = out.size * prog.nodes
    if parallel is None:
        parallel = work >= config.parallel_min_work
    threads = numba.get_num_threads() if parallel else 1
    use_parallel = threads > 1 and _PARALLEL_LOCK.acquire(blocking=False)
    # Chunks handed out one at a time: a thread that the OS runs late (a busy
    # core) leaves its chunks to the others instead of holding everyone up.
    old_chunksize = numba.set_parallel_chunksize(1) if use_parallel else None
    try:
        if not use_parallel:
            threads = 1
        gen = _choose_generated(stencil, work, int(step[-1]))
        if gen is not None:
            module = _load_module(gen)
            colblock, nchunks = _plan(out2.shape[0], out2.shape[1], threads, 1 << 62)
            fn = module.kernel_parallel if use_parallel else module.kernel_serial
            fn(src2, out2, _consts(gen.params, border.value, dtype), out_outer, src_outer,
               lo_arr, step_arr, code, np.int64(colblock), np.int64(nchunks))
        else:
            colblock, nchunks = _plan(out2.shape[0], out2.shape[1], threads, 1024)
            fn = kn.interpret_parallel if use_parallel else kn.interpret_serial
            fn(src2, out2, _consts(prog.params, border.value, dtype), prog.prog, prog.taps,
               out_outer, src_outer, lo_arr, step_arr, code, np.int64(colblock),
               np.int64(nchunks), np.int64(prog.nregs))
    finally:
        if use_parallel:
            numba.set_parallel_chunksize(old_chunksize)
            _PARALLEL_LOCK.release()
    return out
