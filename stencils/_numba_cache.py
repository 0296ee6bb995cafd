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

Kernel-level: imports nothing from stencils.
"""

from __future__ import annotations


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
