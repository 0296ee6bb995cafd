"""Running a stencil: choosing a kernel tier, compiling in the background, calling safely.

Two tiers compute any stencil (see stencils._kernels):

- tier 0, the interpreter, compiled once per dtype for every stencil there is:
  it runs a small register program over blocks of output points, so hundreds
  of different stencils (the conformance vectors, property tests) compile
  nothing new, and large arrays run within a few times of tier 1;
- tier 1, a kernel generated for the stencil's structure (its expression's
  shape, not its numbers): about a second to compile the first time on a
  machine, a fraction of that to load from the disk cache after.

Which tier serves a call (settings in `config`, changed with `stencils.config`):

- a structure whose kernel is on disk, compiled for the dtype by any process,
  is served by tier 1 from its first call (loaded in the call);
- otherwise tier 0 serves it.  Once the structure is used again and its work
  (output points times expression size, summed over calls) passes
  ``jit_total_work``, or one call brings ``jit_min_work``, its kernel is
  compiled on a background thread; calls keep running on tier 0 and switch
  when it is ready.  ``compile="sync"`` compiles in the call instead (for
  reproducible timing); only `compile_stencil` (and `stencils.warmup`) always
  waits;
- ``engine="interpreter"`` or ``"generated"`` forces a tier.

Kernel caches live here, keyed by structure; the stencil value holds none.

Kernels with a C-callable entry point (tier 1's generated kernels, tier 0, the
direct and batch convolutions) run on the *team* (`run_team`,
stencils._kernels_team): every thread calls the entry point, which claims its
work from a shared counter in native code, and helpers that finished a job
poll a board in native code for ``config.spin_us``, so the next call's job
starts on them at once, without a wake-up or the GIL.  Work is taken only by
a thread that runs, so when another process keeps a core busy the call goes
on without the thread that cannot run (numba's parallel loops wait for every
worker: measured 8 ms instead of 0.42 ms a call, see docs/performance.md); a
call that waits long for a descheduled helper sends the team away for a while
(calls then run alone).  Tier 0 runs on the team once the team's own kernels
are compiled (any tier-1 compile makes them); before, on a fresh machine, its
threads take the same work through this module's helper queue, each calling
its entry point through ctypes, which lets go of the GIL.
"""

from __future__ import annotations

import atexit
import functools
import importlib.util
import itertools
import os
import queue
import sys
import tempfile
import threading
import time
import weakref

import numba
from numba.np.ufunc import parallel as numba_parallel
import numpy as np

from . import _kernels as kn
from . import _kernels_team as kt
from . import _kernels_run, _lower, _numba_cache

__all__ = ["run", "compile_stencil", "cache_dir", "config", "tier_of", "wait_for_compiles"]


class _Config:
    """Tuning knobs (read once from the environment; `stencils.config` changes them)."""

    def __init__(self):
        env = os.environ.get
        # Output points x expression nodes above which a call goes parallel.  Below
        # about two million a serial call takes 0.05-0.3 ms (LeNet's pooling
        # stencils), less than handing its boxes to a helper thread costs.
        self.parallel_min_work = int(env("STENCILS_PARALLEL_MIN_WORK", 1 << 21))
        # ... above which one call starts compiling the stencil's own kernel.
        self.jit_min_work = int(env("STENCILS_JIT_MIN_WORK", 1 << 26))
        # ... summed over a structure's calls (two at least), after which it is compiled.
        self.jit_total_work = int(env("STENCILS_JIT_TOTAL_WORK", 1 << 24))
        # Expressions larger than this are never unrolled (compile time grows with them).
        self.max_unrolled_nodes = int(env("STENCILS_MAX_UNROLLED_NODES", 400))
        # Microseconds a helper polls for the next job of the team before it
        # sleeps (0: helpers always sleep on their queue).
        self.spin_us = int(env("STENCILS_SPIN_US", 300))
        # 'auto', 'interpreter' or 'generated': force a tier (tests, benchmarks).
        self.engine = env("STENCILS_ENGINE", "auto")
        # 'background' (a helper process), 'thread' or 'sync': where a kernel
        # the policy asks for is compiled.
        self.compile = env("STENCILS_COMPILE", "background")
        # Whether tier 0's first compile on a fresh machine runs half of itself
        # in a forked child process (stencils._numba_cache.compile_beside).
        self.parallel_compile = env("STENCILS_PARALLEL_COMPILE", "1").lower() not in (
            "0", "false", "no", "off")


config = _Config()

_LOCK = threading.RLock()
_CACHE_DIR = None
# Calls served by each tier, and kernels compiled or loaded (tests read these).
stats = {"tier0": 0, "tier1": 0, "compiled": 0, "loaded": 0}


def source_digest(modules):
    """A short hash of these modules' sources and Numba's version.

    Generated modules call functions of other modules; numba's cache does not
    notice when such a callee changes (numba#1833), so this digest is part of
    every generated module's name and of the cache folder's.
    """
    import hashlib

    digest = hashlib.sha1(numba.__version__.encode())
    for module in modules:
        with open(module.__file__, "rb") as f:
            digest.update(f.read())
    return digest.hexdigest()[:12]


def _fingerprint():
    from . import _codegen, _kernels_border, _kernels_run

    return source_digest((kn, _kernels_border, _kernels_run, kt, _codegen, _lower))


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
        _remove_stale_partial_files(path)
        _CACHE_DIR = path
    return _CACHE_DIR


def set_cache_dir(path):
    """Use `path` as the kernel cache folder (a helper process shares its parent's)."""
    global _CACHE_DIR
    _CACHE_DIR = path


# A partial file older than this belongs to no write in progress: its writer
# exited mid-write (a process may end with a background compile under way).
_STALE_PARTIAL_SECONDS = 600


def _remove_stale_partial_files(path):
    now = time.time()
    try:
        names = [n for n in os.listdir(path) if n.endswith(".tmp")]
        for name in names:
            full = os.path.join(path, name)
            if now - os.path.getmtime(full) > _STALE_PARTIAL_SECONDS:
                os.remove(full)
    except OSError:  # another process removed it first, or the folder is not ours
        pass


def write_atomic(path, text):
    # Other processes may be writing the same file right now.
    fd, tmp = tempfile.mkstemp(dir=os.path.dirname(path), suffix=".tmp")
    with os.fdopen(fd, "w") as f:
        f.write(text)
    os.replace(tmp, path)


# -- structures and their kernels ----------------------------------------------

class _Structure:
    """One generated kernel: its file, and per dtype the module once compiled."""

    __slots__ = ("key", "stencil", "step_last", "module", "ready", "pending", "work", "calls",
                 "checked", "failed")

    def __init__(self, key, stencil, step_last):
        self.key, self.stencil, self.step_last = key, stencil, step_last
        self.module = None
        self.ready = {}  # dtype char -> module compiled for it
        self.pending = set()  # dtype chars being compiled in the background
        self.checked = set()  # dtype chars whose disk marker was looked for
        self.failed = set()  # dtype chars whose background compile raised: not tried again
        self.work = 0
        self.calls = 0

    def path(self, suffix):
        return os.path.join(cache_dir(), f"stencils_kernel_{self.key}{suffix}")

    def marker(self, dtype):
        # Written once numba has cached this dtype's code: its presence means a
        # load, not a compile.  The CPU is in the name, as in numba's own key.
        cpu = numba.core.config.CPU_NAME or _host_cpu()
        return self.path(f".{np.dtype(dtype).name}.{cpu}.ready")


def _host_cpu():
    import llvmlite.binding as ll

    return ll.get_host_cpu_name()


class _Entry:
    """What the engine keeps per expression and centre: program, params, structures."""

    __slots__ = ("program", "params", "structures", "expr_ref")

    def __init__(self, stencil):
        self.program = _lower.lower_program(stencil)
        self.params = _lower.kernel_params(stencil)
        self.structures = {}  # step_last -> _Structure
        self.expr_ref = weakref.ref(stencil.expr)


_ENTRIES = {}  # (id(expr), center) -> _Entry; dropped when the expression dies
_STRUCTURES = {}  # structure key -> _Structure


def _entry(stencil):
    key = (id(stencil.expr), stencil.center)
    entry = _ENTRIES.get(key)
    if entry is not None and entry.expr_ref() is stencil.expr:
        return entry
    with _LOCK:
        entry = _Entry(stencil)
        _ENTRIES[key] = entry
        weakref.finalize(stencil.expr, _ENTRIES.pop, key, None)
    return entry


def _structure(stencil, entry, step_last):
    structure = entry.structures.get(step_last)
    if structure is None:
        key = _lower.structure_key(stencil, step_last, _FINGERPRINT)
        with _LOCK:
            structure = _STRUCTURES.setdefault(key, _Structure(key, stencil, step_last))
            entry.structures[step_last] = structure
    return structure


_IMPORTED = {}  # module name -> generated module imported in this process


def import_generated(name, source):
    """The generated module `name`, imported from the kernel cache folder.

    `source` (a str, or a function returning one, called only when needed) is
    written there first when the file is missing.  Thread-safe, and atomic
    against other processes writing the same file.  Every module generated by
    stencils (kernels, fused time steps, selection networks) goes through here.
    """
    with _LOCK:
        module = _IMPORTED.get(name)
        if module is not None:
            return module
        path = os.path.join(cache_dir(), name + ".py")
        if not os.path.exists(path):
            write_atomic(path, source() if callable(source) else source)
        spec = importlib.util.spec_from_file_location(name, path)
        module = importlib.util.module_from_spec(spec)
        # Registered before running: numba's cache of a parallel function looks
        # the module up by name when it reloads in the next process.
        sys.modules[name] = module
        spec.loader.exec_module(module)
        _IMPORTED[name] = module
        return module


def _load_module(structure):
    """Import the structure's generated module, writing its file if needed."""
    with _LOCK:
        if structure.module is None:
            structure.module = import_generated(
                f"stencils_kernel_{structure.key}",
                lambda: _lower.generate_source(structure.stencil, structure.step_last,
                                               _FINGERPRINT))
        return structure.module


def team_entry(module, dtype, *, cached=False):
    """The address of a generated module's team entry point for `dtype`, a C
    callback ``int64(int64 block)`` (see `_codegen._entry_points_source`):
    compiled, or loaded from numba's disk cache, once per process.  `cached`:
    its code is on disk, loaded without numba's compiler set-up
    (stencils._numba_cache) when possible."""
    entries = module.__dict__.setdefault("_ENTRIES", {})
    name = _TEAM_ENTRY_NAMES[np.dtype(dtype).char]
    if name in entries:  # the common case, without the lock a compile may hold
        return entries[name].address
    with _ENTRY_LOCK:
        if name not in entries:
            entries[name] = _numba_cache.entry_point(getattr(module, name), caching=kn.CACHE,
                                                     load=cached)
        return entries[name].address


_ENTRY_LOCK = threading.Lock()
_TEAM_ENTRY_NAMES = {"f": "team_float32", "d": "team_float64"}
_LOOKED_UP = set()  # keys of `load_once`


def _load_team_kernels():
    """Look for the team's own kernels on numba's disk cache, once per process."""
    if "team" in _LOOKED_UP:
        return
    _LOOKED_UP.add("team")
    board = np.zeros(kt.BOARD_WORDS, dtype=np.int64)
    for name, args in (("clock", ()), ("post", (board, 0, 0)), ("finish", (board, 0)),
                       ("serve", (board, 0, 0, 0)), ("run_entry", (0, 0))):
        _numba_cache.load(getattr(kt, name), args)


def prepare_team(dtype):
    """Compile, or load from disk, the team's own kernels and tier 1's block
    builder for `dtype`: every tier-1 compile does it (on the compile thread or
    in the helper process), so no call compiles them (0.8 s, found in a loop's
    first parallel call on tier 1)."""
    _load_team_kernels()
    board = np.zeros(kt.BOARD_WORDS, dtype=np.int64)
    kt.clock()
    kt.finish(board, kt.post(board, 0, 0))  # a job nobody joins
    kt.serve(board, 0, 0, 0)  # sees it closed and returns
    kt.run_entry.compile((numba.types.int64, numba.types.int64))
    real2, real1 = np.zeros((1, 1), dtype=dtype), np.zeros(1, dtype=dtype)
    index = np.zeros(1, dtype=np.int64)
    team_block((real2, real2, real1) + (index,) * 5, (0, 0, 0, 0), ("tier1", real2.dtype.char))


def team_block(arrays, numbers, key):
    """``_kernels_team.team_block(arrays, numbers)``, its code for these types
    (which `key` names) looked for on disk once (see `load_once`)."""
    load_once(("team_block",) + key, kt.team_block, (arrays, numbers))
    return kt.team_block(arrays, numbers)


def load_once(key, dispatcher, args):
    """Look for `dispatcher`'s code for the types of `args` on numba's disk cache,
    once per `key` (a cheap stand-in for those types): found there, it loads
    without numba's compiler set-up (stencils._numba_cache), as a kernel's
    first call in a process with a warm cache should."""
    if key not in _LOOKED_UP:
        _LOOKED_UP.add(key)
        _numba_cache.load(dispatcher, args)


def compile_module(module, dtype, *, cached=False):
    """Compile, or load from disk, a generated module's team entry point and
    the team's own kernels for `dtype`, the collector held off (in this
    process or in a helper process, `stencils._compile_worker`)."""
    with _numba_cache.collector_paused():
        team_entry(module, dtype, cached=cached)
        prepare_team(dtype)


def _compile(structure, dtype):
    """Compile (or load from numba's cache) the structure's kernel for `dtype`."""
    char = np.dtype(dtype).char
    module = structure.ready.get(char)
    if module is not None:
        return module
    module = _load_module(structure)
    marker = structure.marker(dtype)
    hit = kn.CACHE and os.path.exists(marker)
    compile_module(module, dtype, cached=hit)
    if kn.CACHE and not hit:
        write_atomic(marker, "")
    with _LOCK:
        stats["loaded" if hit else "compiled"] += 1
        structure.ready[char] = module
    return module


# -- background compiles ---------------------------------------------------------

_JOBS = queue.SimpleQueue()
_WORKER = None
_EXITING = False
_IDLE = threading.Condition(_LOCK)
# Cleared by tests to hold compiles back (to see a structure on tier 0 while
# its kernel compiles); set otherwise.
compile_gate = threading.Event()
compile_gate.set()


def _compile_worker():
    while True:
        structure, dtype = _JOBS.get()
        compile_gate.wait()
        try:
            if not _EXITING:
                _compile(structure, dtype)
        except Exception:  # noqa: BLE001 - the structure stays on tier 0
            structure.failed.add(np.dtype(dtype).char)
        finally:
            with _LOCK:
                structure.pending.discard(np.dtype(dtype).char)
                _IDLE.notify_all()


def _start_compile(structure, dtype):
    """Compile the structure's kernel on this process's compile thread."""
    global _WORKER
    char = np.dtype(dtype).char
    with _LOCK:
        if char in structure.pending or char in structure.ready or char in structure.failed:
            return
        structure.pending.add(char)
        if _WORKER is None:
            # A daemon: a process may exit with a compile under way.  Every
            # file it writes is renamed into place whole, so nothing half
            # written is left behind.
            _WORKER = threading.Thread(target=_compile_worker, name="stencils-compile",
                                       daemon=True)
            _WORKER.start()
    _JOBS.put((structure, dtype))


@atexit.register
def _stop_compiling():
    global _EXITING
    _EXITING = True


# -- compiles in a helper process -------------------------------------------------

# How often a call of a structure whose kernel a helper process compiles looks
# for the marker (one stat; a helper takes seconds).
_POLL_SECONDS = 0.05
# A lock file older than this belongs to a helper that died without removing it.
_STALE_LOCK_SECONDS = 600


class _Watch:
    """A kernel that a helper process (ours, or another process's) compiles."""

    __slots__ = ("structure", "dtype", "proc", "lock", "next_check")

    def __init__(self, structure, dtype, proc, lock):
        self.structure, self.dtype, self.proc, self.lock = structure, dtype, proc, lock
        self.next_check = time.monotonic() + _POLL_SECONDS


_WATCHES = {}  # (structure key, dtype char) -> _Watch


def _lock_held(lock):
    """Whether `lock` exists and is recent enough that its helper may be alive."""
    try:
        return time.time() - os.path.getmtime(lock) < _STALE_LOCK_SECONDS
    except OSError:  # no lock
        return False


def _take_lock(lock):
    """True if this process now holds `lock` (one helper per kernel on the machine)."""
    for _ in range(2):
        try:
            os.close(os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
            return True
        except FileExistsError:
            if _lock_held(lock):
                return False
            try:
                os.remove(lock)  # its helper died
            except OSError:  # removed meanwhile: try again
                pass
        except OSError:  # the folder is not writable: no helper
            return False
    return False


def _spawn_worker(structure, dtype, lock):
    import subprocess

    package_root = os.path.dirname(os.path.dirname(os.path.abspath(kn.__file__)))
    env = dict(os.environ, NUMBA_NUM_THREADS="1")
    env["PYTHONPATH"] = os.pathsep.join(filter(None, (package_root, env.get("PYTHONPATH"))))
    args = [sys.executable, "-m", "stencils._compile_worker", cache_dir(),
            f"stencils_kernel_{structure.key}", np.dtype(dtype).name, structure.marker(dtype),
            lock]
    # Its own session: it outlives this process, and a Ctrl-C here does not reach it.
    return subprocess.Popen(args, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True, close_fds=True)


def _start_worker(structure, dtype):
    """Have a helper process compile the structure's kernel into the disk cache.

    Falls back to the compile thread when there is no disk cache to share.
    """
    char = np.dtype(dtype).char
    if not kn.CACHE:
        _start_compile(structure, dtype)
        return
    with _LOCK:
        if char in structure.pending or char in structure.ready or char in structure.failed:
            return
        structure.pending.add(char)
        lock = structure.marker(dtype)[:-len(".ready")] + ".lock"
        taken = False
        try:
            _load_module(structure)  # writes the source file the helper compiles
            taken = _take_lock(lock)
            proc = _spawn_worker(structure, dtype, lock) if taken else None
        except Exception:  # noqa: BLE001 - no helper process here: compile on the thread
            if taken:
                os.remove(lock)
            structure.pending.discard(char)
            _start_compile(structure, dtype)
            return
        _WATCHES[(structure.key, char)] = _Watch(structure, dtype, proc, lock)


def _poll_worker(structure, char, force=False):
    """Look for the marker of a kernel a helper compiles; once there, load it
    on the compile thread.  Cheap between checks (one clock read)."""
    watch = _WATCHES.get((structure.key, char))
    if watch is None:
        return
    now = time.monotonic()
    if not force and now < watch.next_check:
        return
    with _LOCK:
        if _WATCHES.get((structure.key, char)) is not watch:
            return
        watch.next_check = now + _POLL_SECONDS
        if os.path.exists(structure.marker(watch.dtype)):
            del _WATCHES[(structure.key, char)]
            structure.pending.discard(char)
            _start_compile(structure, watch.dtype)  # a load now, off the calling thread
            return
        # Another process's helper has ended once its lock is gone or stale.
        ended = (watch.proc.poll() is not None if watch.proc is not None
                 else not _lock_held(watch.lock))
        if ended and not os.path.exists(structure.marker(watch.dtype)):
            # The helper failed or was killed: tier 0 goes on serving.
            del _WATCHES[(structure.key, char)]
            structure.pending.discard(char)
            structure.failed.add(char)
            _IDLE.notify_all()


def wait_for_compiles(timeout=None):
    """Block until no background compile (thread or helper process started
    here) is queued or running; True if none is."""
    deadline = None if timeout is None else time.monotonic() + timeout
    while True:
        for watch in list(_WATCHES.values()):
            _poll_worker(watch.structure, np.dtype(watch.dtype).char, force=True)
        with _LOCK:
            idle = not any(s.pending for s in _STRUCTURES.values())
            if idle:
                return True
            left = None if deadline is None else deadline - time.monotonic()
            if left is not None and left <= 0:
                return False
            _IDLE.wait(_POLL_SECONDS if left is None else min(_POLL_SECONDS, left))


def tier_of(stencil, dtype=np.float64, *, step_last=1):
    """0 if calls of `stencil` on `dtype` run on the interpreter now, 1 if on its own kernel."""
    structure = _entry(stencil).structures.get(int(step_last))
    return int(structure is not None and np.dtype(dtype).char in structure.ready)


def compile_stencil(stencil, dtype=np.float64, *, step_last=1):
    """Compile (or load from the disk cache) the stencil's own kernel now."""
    return _compile(_structure(stencil, _entry(stencil), int(step_last)), dtype)


def _choose_kernel(stencil, entry, dtype, work, step_last):
    """The generated module that serves this call, or None for the interpreter."""
    engine = config.engine
    if engine == "interpreter":
        return None
    if entry.program.nodes > config.max_unrolled_nodes and engine != "generated":
        return None
    structure = _structure(stencil, entry, step_last)
    char = dtype.char
    module = structure.ready.get(char)
    if module is not None:
        return module
    if engine == "generated":
        return _compile(structure, dtype)
    if char not in structure.checked:
        structure.checked.add(char)
        if kn.CACHE and os.path.exists(structure.marker(dtype)):
            return _compile(structure, dtype)
    if char in structure.pending:
        _poll_worker(structure, char)
        return None
    with _LOCK:
        structure.work += work
        structure.calls += 1
        wanted = work >= config.jit_min_work or (
            structure.calls >= 2 and structure.work >= config.jit_total_work)
    if wanted:
        if config.compile == "sync":
            return _compile(structure, dtype)
        # Tier 0 serves this call: on a fresh machine its first compile, which
        # the call waits for, runs first, on both cores, and the tier-1 compile
        # after it (together, three compiles shared two cores).
        _tier0_ready(entry.program.uses_operators, dtype, step_last == 1)
        if config.compile == "thread":
            _start_compile(structure, dtype)
        else:
            _start_worker(structure, dtype)
    return None


# -- running --------------------------------------------------------------------

# Output points one interpreter block holds (a row segment, or whole short
# rows): its registers stay in the L1 and L2 caches.
_BLOCK_POINTS = 512
# Boxes per thread in a parallel call.  Each box is a Python call, and every
# box after a thread's first waits to take the GIL back from a thread running
# Python: on 2 threads, 4 boxes each took 0.70 ms for a 512^2 7x7 call on tier
# 1 and 1.48 ms on tier 0, one box each 0.65 and 1.12 ms.  Beside a process
# that keeps a core busy, one box each did as well as four (0.76-0.90 against
# 0.88-0.98 ms, serial 0.77-0.82): the box a thread takes is taken by a
# thread that runs.
_BOXES_PER_THREAD = 1


class _Helpers:
    """Daemon threads that help a calling thread through the boxes of one call.

    Helper ``h`` owns slot ``h`` of the team's board: a team call (`run_team`)
    sends sleeping helpers there, and a helper polls it in native code for
    `config.spin_us` after its last job before it goes back to sleep on the
    queue.
    """

    def __init__(self):
        self._jobs = queue.SimpleQueue()
        self._count = 0
        self.board = None  # the team's board, once a team call has run

    def start(self, helpers):
        """Make sure `helpers` helper threads exist."""
        with _LOCK:
            while self._count < helpers:
                threading.Thread(target=self._serve, args=(self._count,), daemon=True,
                                 name=f"stencils-helper-{self._count}").start()
                self._count += 1

    def run(self, fn, boxes, threads):
        """fn(box) for every box, on the calling thread and up to threads - 1 helpers."""
        self.start(threads - 1)
        counter = itertools.count()
        total = len(boxes)
        left = [total]
        done = threading.Event()
        errors = []
        # The call's function and boxes, emptied when the call returns: a helper
        # that runs its job late then holds none of the call's arrays.  An output
        # freed later on a helper thread leaves the heap, and the next fresh
        # output of the same size takes page faults (conv2's forward 0.36 ->
        # 0.51 ms on 2 threads).
        work = [fn, boxes]

        def drain():
            while True:
                i = next(counter)
                if i >= total:
                    return
                # Box i is claimed and not done, so `work` is not emptied yet.
                try:
                    work[0](work[1][i])
                except BaseException as exc:  # noqa: BLE001 - re-raised by the caller
                    errors.append(exc)
                with _LOCK:
                    left[0] -= 1
                    if left[0] == 0:
                        done.set()

        if self.board is not None:
            # Spinning helpers leave the board for the queue.
            self.board[kt.KICK * kt.LINE] += 1
        for _ in range(min(threads - 1, total - 1)):
            self._jobs.put(drain)
        drain()
        done.wait()
        work.clear()
        if errors:
            raise errors[0]

    def wake(self, helpers):
        """Send the sleeping ones of the first `helpers` slots to the board."""
        board = self.board
        for slot in range(helpers):
            state = (kt.SLOT + 2 * slot) * kt.LINE
            if board[state] == kt.ASLEEP:
                board[state] = kt.WAKING
                self._jobs.put(_join_team)

    def _serve(self, slot):
        while True:
            job = self._jobs.get()
            job()
            board = self.board
            if job is not _join_team:
                # After a Python job a helper sleeps: spinning then only takes
                # time from a neighbour (the 512^2 7x7 loop beside a busy core:
                # 1.65 against 1.41 ms a call, mean).
                continue
            spin = _TEAM.spin_cycles()
            board[(kt.SLOT + 2 * slot) * kt.LINE] = kt.SPINNING if spin else kt.ASLEEP
            if spin and kt.serve(board, slot, spin, _TEAM.gap_cycles()):
                _TEAM.back_off()


def _join_team():
    """A helper's job that sends it to the team's board."""


_HELPERS = _Helpers()


def split_range(count, threads):
    """[start, stop) ranges splitting `count` items for `threads` threads: as many per
    thread as the engine's boxes."""
    chunks = max(1, min(count, threads * _BOXES_PER_THREAD if threads > 1 else 1))
    return [(t * count // chunks, (t + 1) * count // chunks) for t in range(chunks)]


def thread_count():
    """``numba.get_num_threads()``, without starting Numba's own thread pool for it.

    The engine runs on its own helper threads, so until a program starts Numba's
    pool (``numba.set_num_threads`` does, and so does a ``prange`` kernel) the
    count is the configured one and the pool's start-up is not paid for nothing.
    """
    if numba_parallel._is_initialized:
        return numba.get_num_threads()
    return numba.config.NUMBA_NUM_THREADS


def run_parallel(fn, parts, threads):
    """fn(part) for every part, on the calling thread and up to threads - 1 helpers.

    Each thread takes the next part when it is free, so a thread the OS does not
    run takes none and nobody waits for it, where a Numba prange would.  `fn`
    gains from the helpers only if it releases the GIL (a ``nogil`` kernel).
    """
    if threads > 1 and len(parts) > 1:
        _HELPERS.run(fn, parts, threads)
    else:
        for part in parts:
            fn(part)


class _Team:
    """The spinning helpers' side of a call: posting a job on the board, and when not to.

    A helper that took a job and is then descheduled (another process wants
    its core) keeps the call waiting until the OS runs it again, a time slice
    of milliseconds, and a spinning helper takes time from the threads that
    have work.  A call that was descheduled during its own share, or waits
    that long for its helpers, or a helper that finds itself descheduled while
    it spins, sends the team away for a while: helpers neither spin nor take
    jobs from the board, and each call runs alone on its calling thread.  The
    while starts at 10 ms (another library's threads spinning for a
    moment after their own call) and doubles, up to 1 s, while it keeps
    happening as soon as it ends (a process that keeps a core busy).
    """

    _BACKOFF_S = (0.01, 1.0)

    def __init__(self):
        self._lock = threading.Lock()
        self._rate = None  # cycles of `kt.clock` per microsecond
        self._backoff_until = 0.0
        self._backoff_s = self._BACKOFF_S[0]

    # A helper is descheduled when this many microseconds pass between two of
    # its polls: the OS gave its core to another thread for a time slice
    # (shorter gaps are interrupts and the hypervisor's own stalls).
    _GAP_US = 500

    def spin_cycles(self):
        """Cycles a helper polls for (0: it does not); measures the counter's rate once."""
        if not config.spin_us or self.backing_off():
            return 0
        return int(config.spin_us * self._cycles_per_us())

    def backing_off(self):
        return time.monotonic() < self._backoff_until

    def gap_cycles(self):
        return int(self._GAP_US * self._cycles_per_us())

    def _cycles_per_us(self):
        if self._rate is None:
            start, begun = kt.clock(), time.perf_counter()
            while time.perf_counter() - begun < 1e-3:
                pass
            self._rate = (kt.clock() - start) / ((time.perf_counter() - begun) * 1e6)
        return self._rate

    def back_off(self):
        """Send the team away for a while: a thread of the call was descheduled."""
        now = time.monotonic()
        shortest, longest = self._BACKOFF_S
        lasting = now < self._backoff_until + self._backoff_s
        self._backoff_s = min(2 * self._backoff_s, longest) if lasting else shortest
        self._backoff_until = now + self._backoff_s

    def run(self, entry, block, serially, threads):
        helpers = min(threads - 1, kt.MAX_SLOTS)
        address, data, failed = entry(), block.ctypes.data, []
        _load_team_kernels()

        def share(_):
            if not kt.run_entry(address, data):
                failed.append(True)

        if helpers < 1:
            share(None)
        elif config.spin_us and self.backing_off():
            # Another process holds a core: a helper would take work and then
            # wait for it, and so would the call (conv2's forward right after
            # torch's calls, whose threads spin for ~10 ms: 0.4-0.8 ms a call
            # through the queue, 0.31 ms alone, 0.19 ms on a quiet team).
            share(None)
        elif not self.spin_cycles() or not self._lock.acquire(blocking=False):
            run_parallel(share, [None] * threads, threads)
        else:
            try:
                self._run_on_board(address, data, share, helpers, failed)
            finally:
                self._lock.release()
        if failed:
            # The entry point reports an exception only as a status: computed
            # again through Python, the kernel raises it (or its result is right).
            serially()

    def _run_on_board(self, address, data, share, helpers, failed):
        if _HELPERS.board is None:
            _HELPERS.board = np.zeros(kt.BOARD_WORDS, dtype=np.int64)
        board = _HELPERS.board
        _HELPERS.start(helpers)
        _HELPERS.wake(helpers)
        sequence = kt.post(board, address, data)
        begun, begun_cpu = time.perf_counter(), time.thread_time()
        try:
            share(None)
        finally:
            ended, cpu = time.perf_counter(), time.thread_time() - begun_cpu
            if kt.finish(board, sequence):
                failed.append(True)
        # Descheduled for a time slice: this thread (its share took that much
        # more time than it ran), or a helper it waited for.  Shorter losses are
        # interrupts and the hypervisor's own stalls, which come and go: on a
        # shared host they sent LeNet's pooling calls (50 us shares) away from
        # the team for most of a run.
        gap_s = self._GAP_US * 1e-6
        if (ended - begun) - cpu > gap_s or time.perf_counter() - ended > gap_s:
            self.back_off()


_TEAM = _Team()


def run_team(entry, block, serially, threads):
    """Run a kernel's C entry point on this thread and up to threads - 1 helpers.

    ``entry()`` gives the address of a C function ``int64(int64)``, called by
    every thread with the address of the int64 array `block`; it returns 1,
    or 0 when its kernel raised.  Every call must take its work from shared
    atomic counters (the kernel's own), so a helper that joins late, or never,
    takes what is left, and one thread alone computes everything.  When an
    entry point failed, ``serially()`` computes the whole result through
    Python (raising the kernel's own exception).

    Helpers that are polling the team's board start within a microsecond,
    where a sleeping thread takes 20-60 us to wake and then waits for the GIL;
    when the team is busy (another thread's call) or spinning is off
    (``config.spin_us == 0``), the threads run the entry point through the
    queue (`run_parallel`), and while the team backs off (`_Team`) the calling
    thread runs it alone.
    """
    _TEAM.run(entry, block, serially, threads)


def _consts(params, fill, dtype):
    return np.array([0.0, 1.0, fill] + list(params), dtype=dtype)


def _interpreter_blocks(nrows, width):
    """(colblock, group): block columns, and output rows per block when rows are short."""
    if width >= _BLOCK_POINTS:
        nblk = -(-width // _BLOCK_POINTS)
        return -(-width // nblk), 1
    return width, max(1, min(nrows, _BLOCK_POINTS // width))


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
    entry = _entry(stencil)
    work = out.size * entry.program.nodes
    module = _choose_kernel(stencil, entry, src.dtype, work, int(step[-1]))
    with _LOCK:
        stats["tier1" if module is not None else "tier0"] += 1
    if module is not None:
        _run_generated(module, entry, src, out, lo, step, border, parallel, work)
        return out
    _run_interpreter(entry.program, src, out, lo, step, border, parallel, work)
    return out


# A call on tier 1 runs on the team from this fraction of `config.parallel_min_work`
# (2^16 of the default 2^21): its helpers start within a microsecond, so far
# smaller calls gain from a second thread than through the queue (LeNet's pool2
# max stencil, 2^17: 0.060-0.070 ms on the team, 0.075-0.078 ms alone).
_TEAM_WORK_SHIFT = 5
# Pieces of a call's items per thread, claimed one at a time: a thread the OS
# runs late leaves at most one piece for the others to wait for.
_PIECES_PER_THREAD = 8


def _run_generated(module, entry, src, out, lo, step, border, parallel, work):
    """Tier 1: the module's team entry point over the items of `out`, its rows."""
    if parallel is None:
        parallel = work >= config.parallel_min_work >> _TEAM_WORK_SHIFT
    threads = thread_count() if parallel else 1
    src2 = src.reshape(-1, src.shape[-1])
    out2 = out.reshape(-1, out.shape[-1])
    consts = _consts(entry.params, border.value, src.dtype)
    out_outer = np.array(out.shape[:-1] or (1,), dtype=np.int64)
    src_outer = np.array(src.shape[:-1] or (1,), dtype=np.int64)
    lo_arr, step_arr = np.array(lo, dtype=np.int64), np.array(step, dtype=np.int64)
    colblock = out2.shape[1]
    items = _kernels_run.item_count(out2, colblock)
    pieces = max(1, -(-items // (threads * _PIECES_PER_THREAD))) if threads > 1 else items
    # The block holds addresses only: every array it names stays referenced here.
    counter = np.zeros(1, dtype=np.int64)
    block = team_block((src2, out2, consts, out_outer, src_outer, lo_arr, step_arr, counter),
                       (int(border.code), colblock, items, pieces), ("tier1", src.dtype.char))

    def serially():
        module.kernel_serial(src2, out2, consts, out_outer, src_outer, lo_arr, step_arr,
                             np.int64(border.code), np.int64(colblock), np.int64(1))

    run_team(lambda: team_entry(module, src.dtype), block, serially, threads)


_ROW_READERS = {}  # (dtype char, unit step) -> tier 0's compiled row reader (kn.row_reader)
_TIER0_ENTRIES = {}  # (uses operators, dtype char) -> tier 0's compiled entry point
_TIER0_CALLERS = {}  # the same keys -> the entry point as a ctypes function
_TIER0_LOCK = threading.Lock()  # held while a part of tier 0 is loaded or compiled
_RESOLVER = {}  # "resolve_run" -> tier 0's tables' resolver, compiled (kn.resolve_run)
# Tables of calls whose row table is at most this many bytes are kept (the
# last _TABLES_KEPT of them): a loop of calls builds them once.
_TABLE_BYTES_KEPT = 1 << 20
_TABLES_KEPT = 64


def _resolver():
    """Tier 0's tables' resolver (kn.resolve_run), loaded from the disk cache
    if it is there (its ``address`` is None while it needs compiling).  Called
    holding _TIER0_LOCK."""
    resolver = _RESOLVER.get("resolve_run")
    if resolver is None:
        resolver = _numba_cache.callback(kn.resolve_run, caching=kn.CACHE)
        if kn.CACHE:
            _numba_cache.load_callback(resolver)
    return resolver


def _resolve_cells(cells, n, code):
    """`resolve_index` of each of the int64 array `cells` on an axis of length
    `n`, as a new array, by tier 0's compiled resolver (compiled here if no
    tier-0 call has readied it)."""
    resolver = _RESOLVER.get("resolve_run")
    if resolver is None:
        with _TIER0_LOCK, _numba_cache.collector_paused():
            resolver = _resolver()
            if resolver.address is None:
                resolver.compile()
            _RESOLVER["resolve_run"] = resolver
    resolved = np.array(cells, dtype=np.int64, order="C")
    head = np.array([resolved.ctypes.data, resolved.size, n, code], dtype=np.int64)
    resolver.ctypes(head.ctypes.data)
    return resolved


def _tier0_tables(prog, out_shape, src_shape, lo, step, code):
    """`kn.tier0_tables` for a call of program `prog`; those of small row
    tables kept for the calls after it."""
    size = int(np.prod(out_shape[:-1])) * prog.row_offsets.shape[0] * 8
    build = _tier0_tables_kept if size <= _TABLE_BYTES_KEPT else _tier0_tables_built
    return build(prog, out_shape, src_shape, lo, step, code)


def _tier0_tables_built(prog, out_shape, src_shape, lo, step, code):
    return kn.tier0_tables(prog.row_offsets, prog.column_offsets, out_shape, src_shape, lo,
                           step, code, _resolve_cells)


_tier0_tables_kept = functools.lru_cache(maxsize=_TABLES_KEPT)(_tier0_tables_built)


def _run_interpreter(prog, src, out, lo, step, border, parallel, work):
    """Tier 0: the interpreter's entry point over the blocks of `out`'s rows,
    claimed `pieces` at a time by each thread (see `kn.tier0_block`)."""
    entry, reader = _tier0_ready(prog.uses_operators, src.dtype, step[-1] == 1)
    src2 = src.reshape(-1, src.shape[-1])
    out2 = out.reshape(-1, out.shape[-1])
    nrows, width = out2.shape
    colblock, group = _interpreter_blocks(nrows, width)
    items = -(-nrows // group) * -(-width // colblock)
    # The team starts within a microsecond, as for tier 1; the helper queue
    # pays off only for more work.
    team = _team_ready()
    if parallel is None:
        parallel = work >= (config.parallel_min_work >> _TEAM_WORK_SHIFT if team
                            else config.parallel_min_work)
    threads = min(thread_count(), items) if parallel else 1
    pieces = max(1, -(-items // (threads * _PIECES_PER_THREAD))) if threads > 1 else items
    consts = _consts(prog.params, border.value, src.dtype)
    layout = kn.scratch_layout(prog.registers, group, colblock, src.dtype)
    scratch = np.empty(threads * layout[1], dtype=np.uint8)
    tables = _tier0_tables(prog, out.shape, src.shape, tuple(lo), tuple(step), int(border.code))
    block = kn.tier0_block(
        src2, out2, consts, prog, tables, layout, threads, reader.address, colblock, group,
        items, pieces,
        (src2.ctypes.data, out2.ctypes.data, consts.ctypes.data, scratch.ctypes.data))

    def serially():
        # Through Python, where a failed entry point's exception is raised: the
        # entry point's function compiled as a numba function, from a fresh block.
        block[kn.TIER0_COUNTERS] = 0
        _tier0_in_python(prog.uses_operators, src.dtype.char)(block.ctypes.data)

    if threads > 1 and team:
        run_team(lambda: entry.address, block, serially, threads)
        return
    call, address, failed = (_TIER0_CALLERS[prog.uses_operators, src.dtype.char],
                             block.ctypes.data, [])

    def share(_):
        # A ctypes call lets go of the GIL while the entry point runs.
        if not call(address):
            failed.append(True)

    run_parallel(share, [None] * threads, threads)
    if failed:
        serially()


@functools.lru_cache(maxsize=None)
def _tier0_in_python(uses_operators, char):
    """Tier 0's entry point as a numba function (compiled when first called):
    its exceptions reach Python."""
    return numba.njit(kn.TIER0_ENTRIES[uses_operators, char], error_model="numpy")


def _team_ready():
    """Whether the team's own kernels are compiled in this process (or load
    from disk): tier 0 on a fresh machine does not wait for their compile; it
    uses the helper queue until a tier-1 compile has made them (`prepare_team`)."""
    _load_team_kernels()
    return all(getattr(kt, name).overloads for name in ("clock", "post", "finish", "serve",
                                                         "run_entry"))


def _tier0_ready(uses_operators, dtype, unit_step):
    """Tier 0's entry point for programs that use operators or not and
    `dtype`, its row reader for a step of 1 along the last axis or another
    (`unit_step`), and the resolver of its tables (`_resolve_cells`), each
    compiled or loaded from disk.

    With the reader not on disk and more to compile (a fresh machine), the
    reader compiles in a forked child process while this one compiles the
    rest, then loads from the disk cache what the child wrote: the two halves
    of tier 0's first compile run on two cores (`_numba_cache.compile_beside`;
    only while a core looks free; off with ``STENCILS_PARALLEL_COMPILE=0``)."""
    char = np.dtype(dtype).char
    key, reader_key = (uses_operators, char), (char, unit_step)
    entry, read_run = _TIER0_ENTRIES.get(key), _ROW_READERS.get(reader_key)
    if entry is not None and read_run is not None:
        return entry, read_run
    with _TIER0_LOCK, _numba_cache.collector_paused():
        read_run = _ROW_READERS.get(reader_key)
        if read_run is None:
            read_run = kn.row_reader(dtype, unit_step)
            if kn.CACHE:
                _numba_cache.load_callback(read_run)
        missing = []
        entry = _TIER0_ENTRIES.get(key)
        if entry is None:
            entry = _numba_cache.callback(kn.TIER0_ENTRIES[key], caching=kn.CACHE)
            if not (kn.CACHE and _numba_cache.load_callback(entry)):
                missing.append(entry.compile)
        resolver = _resolver()
        if resolver.address is None:
            missing.append(resolver.compile)
        if (missing and read_run.address is None and kn.CACHE and config.parallel_compile
                and _numba_cache.can_fork() and _numba_cache.core_free()):
            _numba_cache.compile_beside(read_run.compile, lambda: [c() for c in missing])
        else:
            for compile_one in missing:
                compile_one()
        if read_run.address is None:
            read_run.compile()  # loads what a forked child left on disk, or compiles
        _ROW_READERS[reader_key] = read_run
        _RESOLVER["resolve_run"] = resolver
        _TIER0_CALLERS[key] = entry.ctypes
        _TIER0_ENTRIES[key] = entry
    return entry, read_run
