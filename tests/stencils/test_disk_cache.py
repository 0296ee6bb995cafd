"""Two processes compiling the same generated kernel into one fresh disk cache at once
leave it usable: a third process loads the kernel without compiling and computes right."""

import json
import os
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest

import stencils as st
from stencils import _engine
from stencils import _kernels as kn
from stencils import _reference as ref

# A structure no other test uses, so the fresh cache really starts empty for it.
CHILD = textwrap.dedent("""
    import json, os, sys, time
    import numpy as np
    go, result = sys.argv[1], sys.argv[2]
    import stencils as st
    from stencils import _engine
    s = st.make_stencil((3, 4), (1, 2), lambda g: np.arctan2(g(-1, 1), g(1, -2) + 2.0)
                        - 0.375 * g(0, 0) + np.fmax(g(1, 1), g(-1, -2)))
    while not os.path.exists(go):  # start compiling together with the other process
        time.sleep(0.005)
    module = _engine.compile_stencil(s, np.float64)
    a = np.cos(np.arange(60 * 70, dtype=np.float64)).reshape(60, 70)
    out = st.compute(st.map_stencil(st.Reflect, s, a))
    np.save(result, out)
    # What the engine compiles: the module's team entry point, a C callback.
    stats = {"team_float64": {"hits": module._ENTRIES["team_float64"].cache_hits}}
    # numba imports its linear algebra only when it sets up its compiler.
    print(json.dumps({"cache_dir": _engine.cache_dir(), "stats": stats,
                      "compiler_set_up": "numba.np.linalg" in sys.modules}))
""")


def _spawn(tmp_path, cache, name):
    env = dict(os.environ, STENCILS_CACHE_DIR=str(cache), STENCILS_ENGINE="generated",
               STENCILS_NUMBA_CACHE="1")
    return subprocess.Popen(
        [sys.executable, "-c", CHILD, str(tmp_path / "go"), str(tmp_path / f"{name}.npy")],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _finish(proc):
    stdout, stderr = proc.communicate(timeout=300)
    assert proc.returncode == 0, stderr[-3000:]
    return json.loads(stdout.strip().splitlines()[-1])


def test_two_processes_compiling_at_once_leave_a_usable_cache(tmp_path):
    cache = tmp_path / "cache"
    first = [_spawn(tmp_path, cache, f"racer{i}") for i in range(2)]
    time.sleep(0.5)  # let both import before the start signal (not needed for correctness)
    (tmp_path / "go").touch()
    racers = [_finish(p) for p in first]
    assert racers[0]["cache_dir"] == racers[1]["cache_dir"]

    third = _finish(_spawn(tmp_path, cache, "loader"))
    # Loaded from the disk cache, not compiled again.
    for name, counts in third["stats"].items():
        assert counts["hits"] == 1, (name, third["stats"])
    # ... without setting up numba's compiler (stencils._numba_cache), which the
    # processes that compiled it did.
    assert not third["compiler_set_up"] and racers[0]["compiler_set_up"], (third, racers)

    # The cache holds finished files only: no temporary left behind by the race.
    left = [p for p in os.listdir(third["cache_dir"]) if p.endswith(".tmp")]
    assert not left

    s = st.make_stencil((3, 4), (1, 2), lambda g: np.arctan2(g(-1, 1), g(1, -2) + 2.0)
                        - 0.375 * g(0, 0) + np.fmax(g(1, 1), g(-1, -2)))
    a = np.cos(np.arange(60 * 70, dtype=np.float64)).reshape(60, 70)
    want = ref.apply(s, a, (1, 2), (1, 1), st.Reflect)
    for name in ("racer0", "racer1", "loader"):
        np.testing.assert_allclose(np.load(tmp_path / f"{name}.npy"), want, rtol=1e-14,
                                   atol=1e-14)


def test_stale_partial_files_are_removed_and_fresh_ones_kept(tmp_path):
    # A process that exits mid-write leaves a partial .tmp file; a later process
    # sweeps old ones, never one another process may be writing right now.
    old, fresh, kernel = (tmp_path / n for n in ("a.tmp", "b.tmp", "k.py"))
    for path in (old, fresh, kernel):
        path.write_text("x")
    long_ago = time.time() - 2 * _engine._STALE_PARTIAL_SECONDS
    for path in (old, kernel):
        os.utime(path, (long_ago, long_ago))
    _engine._remove_stale_partial_files(str(tmp_path))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["b.tmp", "k.py"]


def test_a_lock_left_by_a_dead_helper_is_taken_over_and_a_fresh_one_respected(tmp_path):
    lock = tmp_path / "k.float64.cpu.lock"
    lock.touch()
    assert not _engine._take_lock(str(lock))  # a helper may be compiling right now
    long_ago = time.time() - 2 * _engine._STALE_LOCK_SECONDS
    os.utime(lock, (long_ago, long_ago))
    assert not _engine._lock_held(str(lock))  # a process watching it stops waiting
    assert _engine._take_lock(str(lock))  # its helper died: the lock is ours now
    assert _engine._lock_held(str(lock))


def test_a_helper_that_ends_without_a_kernel_leaves_the_stencil_on_tier_0(tmp_path):
    # Another process's helper holds the lock; it ends without writing the
    # marker (killed, or its compile failed): calls go on, on tier 0.
    s = st.make_stencil((2, 3), (0, 1), lambda g: np.hypot(g(0, -1), g(1, 1)) * 0.5)
    a = np.cos(np.arange(30 * 40, dtype=np.float64)).reshape(30, 40)
    w = st.map_stencil(st.Edge, s, a)
    structure = _engine._structure(s, _engine._entry(s), 1)
    lock = structure.marker(np.float64)[:-len(".ready")] + ".lock"
    with open(lock, "w"):
        pass
    try:
        with st.config(engine="auto", compile="background", jit_total_work=0):
            first = st.compute(w)
            st.compute(w)  # used again: its kernel is wanted, the lock is taken
            assert "d" in structure.pending
    finally:
        os.remove(lock)
    assert _engine.wait_for_compiles(timeout=60)
    assert "d" in structure.failed and _engine.tier_of(s, np.float64) == 0
    with st.config(engine="auto", compile="background", jit_total_work=0):
        again = st.compute(w)
    np.testing.assert_array_equal(again, first)
    np.testing.assert_array_equal(first, ref.apply(s, a, (0, 1), (1, 1), st.Edge))


def test_the_interpreter_on_disk_loads_without_numba_compiler_set_up(tmp_path):
    # This process compiled (or loaded) the interpreter's build for weighted
    # sums, so numba's disk cache holds it; a new process loads it from there
    # without numba's compiler set-up (stencils._numba_cache).
    if not kn.CACHE:
        pytest.skip("numba's disk cache is off (STENCILS_NUMBA_CACHE=0)")
    a = np.cos(np.arange(30 * 40, dtype=np.float64)).reshape(30, 40)
    s = st.make_correlation_stencil_from_kernel(np.arange(6.0).reshape(2, 3))
    with st.config(engine="interpreter"):
        want = st.compute(st.map_stencil(st.Reflect, s, a))
    child = textwrap.dedent("""
        import json, sys
        import numpy as np
        import stencils as st
        from stencils import _engine
        a = np.cos(np.arange(30 * 40, dtype=np.float64)).reshape(30, 40)
        s = st.make_correlation_stencil_from_kernel(np.arange(6.0).reshape(2, 3))
        with st.config(engine="interpreter"):
            np.save(sys.argv[1], st.compute(st.map_stencil(st.Reflect, s, a)))
        print(json.dumps({"hits": _engine._TIER0_ENTRIES[False, "d"].cache_hits,
                          "compiler_set_up": "numba.np.linalg" in sys.modules}))
    """)
    env = dict(os.environ, STENCILS_CACHE_DIR=str(tmp_path / "cache"), STENCILS_NUMBA_CACHE="1")
    proc = subprocess.Popen([sys.executable, "-c", child, str(tmp_path / "out.npy")], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    got = _finish(proc)
    assert got == {"hits": 1, "compiler_set_up": False}, got
    np.testing.assert_array_equal(np.load(tmp_path / "out.npy"), want)


@pytest.mark.parametrize("enabled", [True, False])
def test_compiles_hold_the_collector_off_and_give_it_back_as_it_was(enabled):
    import gc
    import threading

    from stencils import _numba_cache

    was = gc.isenabled()
    (gc.enable if enabled else gc.disable)()
    try:
        inside, release = threading.Event(), threading.Event()

        def other_compile():
            with _numba_cache.collector_paused():
                inside.set()
                release.wait(10)

        thread = threading.Thread(target=other_compile)
        with _numba_cache.collector_paused():
            assert not gc.isenabled()
            with _numba_cache.collector_paused():  # nested
                assert not gc.isenabled()
            assert not gc.isenabled()
            thread.start()
            inside.wait(10)
        # The other thread's compile is still under way: the collector stays off.
        assert not gc.isenabled()
        release.set()
        thread.join(10)
        assert gc.isenabled() == enabled
    finally:
        (gc.enable if was else gc.disable)()
