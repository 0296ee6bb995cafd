"""Loading a compiled kernel from numba's disk cache without setting up numba's compiler.

numba's own load (``Dispatcher.compile`` -> ``Cache.load_overload``) first
calls its target context's ``refresh()``, which imports and installs every
typing and lowering registry numba has (numba.np.linalg and arraymath, which
imports scipy.linalg, the typed containers, jitclass, ...).  A compile needs
them; machine code read from the disk does not: it needs only numba's
runtime (NRT), which its allocations call.  That set-up was about 95 % of the
first call of a process whose kernel is on disk (docs/performance.md,
"Warm-up").

`load` does what numba's load does after ``refresh()``.  It relies on
numba's internals (``Dispatcher._cache``, ``add_overload``; unchanged from
numba 0.59 to 0.68, and tests/stencils/test_disk_cache.py checks that a
kernel on disk loads this way), so any failure leaves the dispatcher as it
was and the caller's ordinary call goes through numba's own path.  A compile
later in the process runs ``refresh()`` itself, as every numba compile does.

`compile_beside` runs two compiles at once, one in a forked child that
leaves its code in the disk cache: tier 0's first compile on a machine with
nothing on disk uses both cores (stencils._engine).

Kernel-level: imports nothing from stencils.
"""

from __future__ import annotations

import contextlib
import gc
import os
import signal
import sys
import threading
import time


def load(dispatcher, args):
    """Load `dispatcher`'s code for the types of `args` from numba's disk cache.

    True if it is now compiled for them; False if numba's own path must do it
    (not in the cache, caching off, or numba's internals not as expected).
    """
    try:
        from numba.core.compiler_lock import global_compiler_lock
        from numba.core.runtime import rtsys

        cache = dispatcher._cache
        sig = tuple(dispatcher.typeof_pyval(a) for a in args)
        context = dispatcher.targetctx
        with global_compiler_lock:
            if sig in dispatcher.overloads:
                return True
            rtsys.initialize(context)
            cres = cache._load_overload(sig, context)
            if cres is None or cres.objectmode:
                return False
            context.insert_user_function(cres.entry_point, cres.fndesc, [cres.library])
            dispatcher.add_overload(cres)
            dispatcher._cache_hits[sig] += 1
        return True
    except Exception:  # noqa: BLE001 - numba's own path loads (or compiles) it instead
        return False


_PAUSES = {"compiles": 0, "was_enabled": False}  # compiles holding the collector off
_PAUSES_LOCK = threading.Lock()


@contextlib.contextmanager
def collector_paused():
    """Python's cyclic garbage collector held off while numba compiles.

    A compile makes hundreds of thousands of objects that live until it ends
    (IR, types, LLVM text), so the collector's passes over the older
    generations find little to free: tier 0's first call on a fresh machine
    took 3.33-3.36 s with them, 3.21-3.23 s without (alternated), and a
    second compile in one process gains more (tier 0's row reader after its
    entry point: 2.48 -> 2.10-2.17 s), for 47 MB more peak memory.  A compile
    on the background thread holds the collector off for the whole process
    while it runs.  Nested and concurrent pauses count; the collector is
    back on (if it was on) when the last one ends.
    """
    with _PAUSES_LOCK:
        if _PAUSES["compiles"] == 0:
            _PAUSES["was_enabled"] = gc.isenabled()
            gc.disable()
        _PAUSES["compiles"] += 1
    try:
        yield
    finally:
        with _PAUSES_LOCK:
            _PAUSES["compiles"] -= 1
            if _PAUSES["compiles"] == 0 and _PAUSES["was_enabled"]:
                gc.enable()


def load_callback(callback):
    """Load a C callback (numba's ``CFunc``, `enable_caching` done, not compiled)
    from numba's disk cache, as `load` does a dispatcher's code.

    True if it is now compiled; False if ``callback.compile()`` must do it.
    """
    try:
        from numba.core.compiler_lock import global_compiler_lock
        from numba.core.runtime import rtsys

        context = callback._targetdescr.target_context
        with global_compiler_lock:
            rtsys.initialize(context)
            cres = callback._cache._load_overload(callback._sig, context)
            if cres is None:
                return False
            callback._library = cres.library
            callback._wrapper_name = cres.fndesc.llvm_cfunc_wrapper_name
            callback._wrapper_address = cres.library.get_pointer_to_function(
                callback._wrapper_name)
            callback._cache_hits += 1
        return True
    except Exception:  # noqa: BLE001 - numba's own path loads (or compiles) it instead
        return False


def entry_point(pyfunc, *, caching, load=True, error_model="numpy"):
    """`pyfunc` compiled as a C callback ``int64(int64)`` (numba's ``CFunc``):
    with `caching`, kept in numba's disk cache and, with `load`, taken from it
    as `load_callback` does when it is there; else compiled here."""
    entry = callback(pyfunc, caching=caching, error_model=error_model)
    if caching and load and load_callback(entry):
        return entry
    with collector_paused():
        entry.compile()
    return entry


def callback(pyfunc, *, caching, error_model="numpy"):
    """`pyfunc` as a C callback ``int64(int64)`` (numba's ``CFunc``), not
    compiled yet; with `caching`, kept in numba's disk cache."""
    from numba import types
    from numba.core.ccallback import CFunc

    entry = CFunc(pyfunc, ((types.int64,), types.int64), {},
                  {"nopython": True, "error_model": error_model})
    if caching:
        entry.enable_caching()
    return entry


# How long the parent waits for a forked compile past its own; a child still
# at work then is killed and its piece compiled here.
CHILD_TIMEOUT = 60.0


def can_fork():
    """Whether `compile_beside` forks: Linux (fork is what the platform's
    processes are made with; elsewhere it is unsafe or absent) with two or
    more CPUs to run on."""
    if not sys.platform.startswith("linux") or not hasattr(os, "fork"):
        return False
    try:
        return len(os.sched_getaffinity(0)) >= 2
    except (AttributeError, OSError):
        return (os.cpu_count() or 1) >= 2


def core_free():
    """Whether a CPU looks free for a second compile: besides this thread, at
    most CPUs - 2 threads are runnable now (``procs_running`` of /proc/stat;
    the load average of the last minute where there is none, which lags: a
    program's own parallel work a moment ago counts in it).  With no CPU free,
    the child and the parent share one CPU and the two compiles take longer
    than one process doing both (the child compiles a few small functions
    again)."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return True
    try:
        with open("/proc/stat") as stat:
            running = next(int(line.split()[1]) for line in stat
                           if line.startswith("procs_running"))
        return running - 1 <= cpus - 2
    except (OSError, StopIteration, ValueError, IndexError):
        pass
    try:
        return os.getloadavg()[0] <= cpus - 0.5
    except (AttributeError, OSError):
        return True


def compile_beside(child_compile, parent_compile, *, timeout=None):
    """Run `child_compile` in a forked child while this process runs
    `parent_compile`; True if the child finished (its code, compiled with
    caching on, is then in numba's disk cache), False if it failed or took
    longer than `timeout` seconds past the parent's own compile (it is killed).

    numba's per-process set-up (``refresh()``, the runtime) runs first, so the
    child inherits it.  Fork happens while this thread holds numba's compiler
    lock: no thread of this process is then inside numba or LLVM.  The child
    runs the compile and nothing else, and leaves with ``os._exit`` (no
    atexit handlers, no flushing of buffers it shares with this process).
    numba writes each cache file whole (a temporary file renamed into place),
    so a child killed mid-compile leaves no entry anyone would load.  The
    caller checks `can_fork` (and `core_free`) first.
    """
    from numba.core.compiler_lock import global_compiler_lock
    from numba.core.registry import cpu_target
    from numba.core.runtime import rtsys

    with collector_paused(), global_compiler_lock:
        context = cpu_target.target_context
        context.refresh()
        rtsys.initialize(context)
        pid = os.fork()
        if pid == 0:  # the child
            status = 1
            try:
                child_compile()
                status = 0
            finally:
                os._exit(status)
        try:
            parent_compile()
        except BaseException:
            _reap(pid, 0.0)
            raise
    return _reap(pid, CHILD_TIMEOUT if timeout is None else timeout)


def _reap(pid, timeout):
    # Wait for the child (no zombie is left), killing it after `timeout` s or
    # when this process is interrupted while it waits.
    deadline = time.monotonic() + timeout
    try:
        while True:
            done, status = os.waitpid(pid, os.WNOHANG)
            if done:
                return os.waitstatus_to_exitcode(status) == 0
            if time.monotonic() >= deadline:
                break
            time.sleep(0.002)
    except ChildProcessError:
        # Reaped elsewhere (SIGCHLD ignored): its outcome is unknown, and the
        # caller looks in the disk cache for what it compiled.
        return False
    except BaseException:
        _kill(pid)
        raise
    _kill(pid)
    return False


def _kill(pid):
    try:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
    except (ChildProcessError, ProcessLookupError):
        pass
