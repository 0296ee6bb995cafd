"""Which kernel serves a call: tier 0 (the interpreter) until a structure's own
kernel (tier 1) is ready, compiled in the background (a helper process, or a
thread) or loaded from the disk cache; every tier gives the same numbers, NaN
and signed zeros included."""

import ast
import concurrent.futures
import json
import os
import subprocess
import sys
import textwrap
import threading
import time

import hypothesis.strategies as hs
import numpy as np
import pytest
from hypothesis import given, settings

import stencils as st
from stencils import _engine, _numba_cache
from stencils import _kernels as kn
from stencils import _kernels_border as kb
from stencils import _reference as ref

SPECIALS = np.array([np.nan, -0.0, 0.0, 1.5, -2.0, np.inf, -np.inf, 3.0, -0.0, np.nan, 0.25, 7.0])


def _unique_stencil(tag):
    """A structure no other test builds (tag picks the reads), mixing ops where
    NaN and the sign of zero matter, and no sum whose order could differ."""
    def fn(g):
        a, b, c = g(0, 0), g(0, tag % 3 + 1), g(1, tag % 2)
        return np.where(a > b, np.maximum(a, c) * b, np.fmin(-a, c)) - np.copysign(b, c)
    return st.make_stencil((2, 4), (0, 0), fn)


def _bits(array):
    return np.ascontiguousarray(array).view(np.uint8)


def _array(shape, dtype, seed):
    rng = np.random.default_rng(seed)
    a = rng.choice(SPECIALS, size=shape).astype(dtype)
    return a


def test_tier0_while_compiling_then_tier1_with_identical_results():
    s = _unique_stencil(0)
    a = _array((37, 41), np.float64, 0)
    w = st.map_stencil(st.Reflect, s, a)
    _engine.compile_gate.clear()  # hold the background compile back
    try:
        with st.config(engine="auto", compile="thread", jit_total_work=0):
            first = st.compute(w)
            second = st.compute(w)  # used again: its kernel is queued
            assert _engine.tier_of(s, np.float64) == 0
            while_compiling = st.compute(w)
            assert _engine.tier_of(s, np.float64) == 0
    finally:
        _engine.compile_gate.set()
    assert _engine.wait_for_compiles(timeout=600)
    assert _engine.tier_of(s, np.float64) == 1
    before = dict(_engine.stats)
    with st.config(engine="auto"):
        compiled = st.compute(w)
    assert _engine.stats["tier1"] == before["tier1"] + 1
    assert _engine.stats["tier0"] == before["tier0"]
    np.testing.assert_array_equal(first, ref.apply(s, a, (0, 0), (1, 3), st.Reflect))
    for got in (second, while_compiling, compiled):
        np.testing.assert_array_equal(_bits(got), _bits(first))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_every_tier_and_the_reference_agree_bit_for_bit(dtype):
    s = _unique_stencil(1)
    a = _array((3, 29, 300), dtype, 1)[1]
    padding = st.Padding((1, 2), (2, 3), st.Fill(-0.0))
    w = st.apply_stencil(padding, s, a)
    # Values (NaN where NaN) as NumPy's: which zero np.maximum(0.0, -0.0)
    # returns depends on NumPy's SIMD path, so signs are compared between tiers.
    want = ref.apply(s, a, (1, 2), (2, 3), st.Fill(-0.0))
    with st.config(engine="interpreter"):
        tier0 = w._run((1, 1), None, parallel=False)
        strided = w._run((2, 3), None, parallel=True)
    np.testing.assert_array_equal(tier0, want)
    assert np.isnan(tier0).any() and (np.signbit(tier0) & (tier0 == 0)).any()
    np.testing.assert_array_equal(_bits(strided), _bits(tier0[::2, ::3]))
    for engine in ("interpreter", "generated"):
        for parallel in (False, True):
            with st.config(engine=engine):
                got = w._run((1, 1), None, parallel=parallel)
            np.testing.assert_array_equal(_bits(got), _bits(tier0), err_msg=f"{engine} {parallel}")


def test_background_compiles_from_four_threads():
    # The default: helper processes, one per structure however many threads ask.
    stencils_ = [_unique_stencil(t) for t in (2, 3, 4, 5)]  # tags 2 and 4: other structures
    arrays = [_array((30 + i, 50), np.float64, 10 + i) for i in range(4)]
    want = [ref.apply(stencils_[i % 2 * 2], arrays[i], (0, 0), (1, 3), st.Edge) for i in range(4)]
    barrier = threading.Barrier(4)

    def work(i):
        barrier.wait()
        for _ in range(6):
            # Two threads per structure: both ask for its compile at once.
            got = st.compute(st.map_stencil(st.Edge, stencils_[i % 2 * 2], arrays[i]))
            np.testing.assert_array_equal(got, want[i])

    with st.config(engine="auto", compile="background", jit_total_work=0):
        with concurrent.futures.ThreadPoolExecutor(4) as pool:
            list(pool.map(work, range(4)))  # re-raises a thread's failure
    assert _engine.wait_for_compiles(timeout=600)
    assert _engine.tier_of(stencils_[0], np.float64) == 1
    assert _engine.tier_of(stencils_[2], np.float64) == 1


CHILD = textwrap.dedent("""
    import json, sys
    import numpy as np
    import stencils as st
    from stencils import _engine
    mode, result, tag = sys.argv[1], sys.argv[2], int(sys.argv[3])
    s = st.make_stencil((2, 4), (0, 0), lambda g: np.where(g(0, 0) > g(0, tag), np.maximum(
        g(0, 0), g(1, 2)) * g(0, tag), np.fmin(-g(0, 0), g(1, 2))) - np.copysign(g(0, 3), g(1, 2)))
    a = np.cos(np.arange(40 * 50, dtype=np.float64)).reshape(40, 50)
    a[3, 4], a[5, 6] = np.nan, -0.0
    with st.config(engine="auto", compile="background", jit_total_work=0):
        out = st.compute(st.map_stencil(st.Wrap, s, a))
        out2 = st.compute(st.map_stencil(st.Wrap, s, a))
    np.save(result, out)
    if mode == "wait":
        _engine.wait_for_compiles()
    # 'exit': leave at once, the helper process perhaps still compiling.
    print(json.dumps({"stats": _engine.stats, "tier": _engine.tier_of(s, np.float64)}))
""")


def _start_child(mode, cache, result, tag):
    env = dict(os.environ, STENCILS_CACHE_DIR=str(cache), STENCILS_NUMBA_CACHE="1")
    return subprocess.Popen([sys.executable, "-c", CHILD, mode, str(result), str(tag)], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _finish_child(proc):
    out, err = proc.communicate(timeout=600)
    assert proc.returncode == 0, err[-3000:]
    return json.loads(out.strip().splitlines()[-1])


def _cache_files(cache, suffix):
    return [p for folder in cache.iterdir() for p in folder.iterdir() if p.name.endswith(suffix)]


def _wait_for_marker(cache, seconds=600):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if _cache_files(cache, ".ready") and not _cache_files(cache, ".lock"):
            return True
        time.sleep(0.1)
    return False


def test_a_short_process_leaves_its_kernel_compiled_for_the_next(tmp_path):
    cache = tmp_path / "cache"
    # The process exits long before its helper process has compiled the
    # kernel: no hang (the timeout), and the helper finishes the work alone.
    short = _finish_child(_start_child("exit", cache, tmp_path / "short.npy", 3))
    assert short["tier"] == 0 and short["stats"]["compiled"] == 0, short
    assert _wait_for_marker(cache)
    hit = _finish_child(_start_child("exit", cache, tmp_path / "hit.npy", 3))
    # On disk, so served by tier 1 from the first call.
    assert hit["stats"]["tier0"] == 0 and hit["stats"]["tier1"] == 2, hit
    assert hit["stats"]["loaded"] == 1 and hit["stats"]["compiled"] == 0, hit
    np.testing.assert_array_equal(_bits(np.load(tmp_path / "hit.npy")),
                                  _bits(np.load(tmp_path / "short.npy")))


def test_two_processes_compiling_in_the_background_share_one_helper(tmp_path):
    cache = tmp_path / "cache"
    procs = [_start_child("wait", cache, tmp_path / f"r{i}.npy", 2) for i in range(2)]
    results = [_finish_child(p) for p in procs]
    # Both switch to tier 1, loading what one helper process compiled.
    assert [r["tier"] for r in results] == [1, 1], results
    assert [r["stats"]["loaded"] for r in results] == [1, 1], results
    assert _wait_for_marker(cache, 60)
    assert len(_cache_files(cache, ".ready")) == 1
    # Every module a process may import is whole (a writer that exited mid-write
    # leaves only a partial .tmp file, which nothing imports).
    modules = _cache_files(cache, ".py")
    assert modules
    for path in modules:
        ast.parse(path.read_text())
    np.testing.assert_array_equal(_bits(np.load(tmp_path / "r0.npy")),
                                  _bits(np.load(tmp_path / "r1.npy")))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_weighted_sums_round_alike_on_every_tier(dtype):
    # No tier fuses a product into a sum (an FMA rounds once, the other tier
    # twice): a 7x7 correlation, a weighted sum mixed with other ops, and one
    # long enough (over 32 taps) to be computed one kernel row per pass.
    rng = np.random.default_rng(7)
    a = rng.standard_normal((45, 70)).astype(dtype)
    a[3, 4], a[9, 9], a[20, 30] = np.nan, -0.0, np.inf
    weights = rng.standard_normal((7, 7))
    tangled = st.make_stencil((3, 5), (1, 2), lambda g: 0.3 * g(-1, -2) + 1.7 * np.maximum(
        g(0, 0), g(1, 2)) - 0.9 * g(1, -1) * g(0, 1) + 1e-3)
    for s in (st.make_correlation_stencil_from_kernel(weights), tangled):
        results = []
        for engine in ("interpreter", "generated"):
            with st.config(engine=engine):
                results.append(st.compute(st.map_stencil(st.Reflect, s, a)))
        np.testing.assert_array_equal(_bits(results[0]), _bits(results[1]))


def test_both_builds_of_the_interpreter_round_alike():
    # A program without operators runs on the interpreter's build without
    # their code; the full build, run on the same program, gives the same bits.
    rng = np.random.default_rng(8)
    a = _array((23, 61), np.float64, 8) * rng.standard_normal((23, 61))
    s = st.make_correlation_stencil_from_kernel(rng.standard_normal((5, 6)))
    w = st.apply_stencil(st.Padding((2, 3), (2, 2), st.Fill(-0.0)), s, a)
    program = _engine._entry(s).program
    assert not program.uses_operators
    results = []
    try:  # the program is the engine's own, shared by every later call of `s`
        with st.config(engine="interpreter"):
            for full in (False, True):
                program.uses_operators = full
                results.append(st.compute(w))
    finally:
        program.uses_operators = False
    assert np.isnan(results[0]).any()
    np.testing.assert_array_equal(_bits(results[0]), _bits(results[1]))


@pytest.mark.parametrize("width", [1, 2, 3, 5, 6])
def test_short_interior_passes_change_no_bit(width):
    # Tier 0 adds a row's taps in passes of four, two and one tap; every
    # mix of them gives the bits of one sum left to right from -0.0: a sum
    # of -0.0 stays -0.0, NaN stays NaN, and the order is the taps' own.
    a = _array((3, 40), np.float64, width)
    a[0, :] = -0.0
    weights = np.array([[1.5, 0.25, 3.0, 0.5, 2.0, 7.0][:width]])
    s = st.make_correlation_stencil_from_kernel(weights)
    with st.config(engine="interpreter"):
        got = st.compute(st.apply_stencil(st.no_padding, s, a))
    want = np.empty((3, 40 - width + 1))
    with np.errstate(invalid="ignore"):  # inf - inf: NaN, as in the kernels
        for i in range(3):
            for j in range(40 - width + 1):
                acc = -0.0
                for k in range(width):
                    acc = acc + weights[0, k] * a[i, j + k]
                want[i, j] = acc
    assert np.signbit(got[0]).all() and np.isnan(got).any()
    # NaN where NaN (the sign of a NaN is the CPU's, not Python's), zeros signed alike.
    np.testing.assert_array_equal(got, want)
    zeros = want == 0
    np.testing.assert_array_equal(np.signbit(got[zeros]), np.signbit(want[zeros]))


@pytest.mark.parametrize("width", [200, 250])
def test_a_box_wider_than_the_row_reads_every_column_through_the_edge_table(width):
    # A 300-wide box over a row of 200 or 250: every output column is an edge
    # column, and the edge table holds the three taps' columns for each.
    s = st.make_stencil((1, 300), (0, 0), lambda g: np.maximum(g(0, 0), g(0, 299)) - g(0, 150))
    a = _array((2, width), np.float64, width)
    with st.config(engine="interpreter"):
        got = st.compute(st.map_stencil(st.Reflect, s, a))
    np.testing.assert_array_equal(got, ref.apply(s, a, (0, 0), (0, 299), st.Reflect))


@settings(max_examples=200, deadline=None)
@given(data=hs.data())
def test_tier0_tables_name_the_cell_of_every_read(data):
    # Each entry of tier 0's tables against resolve_index applied to the read
    # it answers, one axis at a time.
    ndim = data.draw(hs.integers(1, 3))
    src_shape = tuple(data.draw(hs.lists(hs.integers(1, 6), min_size=ndim, max_size=ndim)))
    out_shape = tuple(data.draw(hs.lists(hs.integers(1, 5), min_size=ndim, max_size=ndim)))
    lo = tuple(data.draw(hs.lists(hs.integers(-9, 6), min_size=ndim, max_size=ndim)))
    step = tuple(data.draw(hs.lists(hs.integers(1, 4), min_size=ndim, max_size=ndim)))
    code = data.draw(hs.sampled_from(range(7)))
    starts = data.draw(hs.lists(hs.tuples(*[hs.integers(0, 8)] * (ndim - 1)), max_size=3,
                                unique=True))
    rows_at = np.array(starts, dtype=np.int64).reshape(len(starts), ndim - 1)
    columns = np.array(sorted(data.draw(hs.sets(hs.integers(0, 12), min_size=1, max_size=4))),
                       dtype=np.int64)
    rows, cols, (inner_lo, inner_hi, nedge), last_axis = kn.tier0_tables(
        rows_at, columns, out_shape, src_shape, lo, step, code, _engine._resolve_cells)
    assert last_axis == (lo[-1], step[-1])
    for r, index in enumerate(np.ndindex(*out_shape[:-1])):
        for s, offsets in enumerate(rows_at):
            cells = [kb.resolve_index(j * step[a] + lo[a] + offsets[a], src_shape[a], code)
                     for a, j in enumerate(index)]
            if not cells:  # a 1-D array: one row
                want = 0
            elif min(cells) < 0:
                want = -1
            else:
                want = int(np.ravel_multi_index(cells, src_shape[:-1]))
            assert rows[r, s] == want
    edge = [j for j in range(out_shape[-1]) if not inner_lo <= j < inner_hi]
    assert nedge == len(edge) and cols.shape == (columns.size * nedge,)
    for e, j in enumerate(edge):
        for c, k in enumerate(columns):
            at = j * step[-1] + lo[-1] + k
            assert cols[c * nedge + e] == kb.resolve_index(at, src_shape[-1], code)
    for j in range(inner_lo, inner_hi):  # the interior reads inside the row
        assert all(0 <= j * step[-1] + lo[-1] + k < src_shape[-1] for k in columns)


COLD_CHILD = textwrap.dedent("""
    import json, os, sys
    import numpy as np
    from numba.core import event
    import stencils as st
    from stencils import _engine, _numba_cache

    compiled, forks = [], []

    class Listener(event.Listener):
        def on_start(self, ev):
            compiled.append(ev.data["dispatcher"].py_func.__qualname__)

        def on_end(self, ev):
            pass

    compile_beside = _numba_cache.compile_beside

    def recorded(child_compile, parent_compile, **options):
        if os.environ.get("TEST_CHILD_FAILS"):
            child_compile = lambda: os._exit(3)
        forks.append(compile_beside(child_compile, parent_compile, **options))
        return forks[-1]

    _numba_cache.compile_beside = recorded
    _numba_cache.core_free = lambda: True  # whatever else runs on the machine now
    # A tier-1 compile asked for: whether tier 0 was ready then (none starts).
    tier1_asked = []
    _engine._start_worker = lambda structure, dtype: tier1_asked.append(
        (False, "f") in _engine._TIER0_ENTRIES)
    event.register("numba:compile", Listener())
    rng = np.random.default_rng(3)
    image = rng.standard_normal((64, 70)).astype(np.float32)
    image[5, 7], image[9, 0] = np.nan, -0.0
    np.save(sys.argv[1], st.correlate(image, rng.standard_normal((7, 7)).astype(np.float32),
                                      mode="constant"))
    reader, entry = _engine._ROW_READERS["f", True], _engine._TIER0_ENTRIES[False, "f"]
    print(json.dumps({"compiled": compiled, "forks": forks, "reader_hits": reader.cache_hits,
                      "reader_ready": reader.address is not None,
                      "entry_hits": entry.cache_hits, "tier1_asked": tier1_asked,
                      "compiler_set_up": "numba.np.linalg" in sys.modules}))
""")


def _cold_child(tmp_path, name, **env):
    env = {**os.environ, "STENCILS_CACHE_DIR": str(tmp_path / "kernels"),
           "NUMBA_CACHE_DIR": str(tmp_path / "numba"), "STENCILS_NUMBA_CACHE": "1",
           "STENCILS_ENGINE": "interpreter", **env}
    out = tmp_path / f"{name}.npy"
    proc = subprocess.run([sys.executable, "-c", COLD_CHILD, str(out)], env=env,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1]), np.load(out)


def _tier0_here():
    rng = np.random.default_rng(3)
    image = rng.standard_normal((64, 70)).astype(np.float32)
    image[5, 7], image[9, 0] = np.nan, -0.0
    with st.config(engine="interpreter"):
        return st.correlate(image, rng.standard_normal((7, 7)).astype(np.float32),
                            mode="constant")


def test_tier0_cold_compile_forks_and_leaves_both_halves_on_disk(tmp_path):
    # On empty caches the first correlation compiles tier 0's entry point and
    # the resolver of its tables (C callbacks: no dispatcher of their own),
    # resolve_index and numba's carray for their three array types in this
    # process, nothing more
    # (each helper numba compiles by itself, its np.empty, integer max/min,
    # adds 0.05-0.3 s to that first call); the row reader compiles in a forked
    # child, and this process loads it from the disk cache instead of
    # compiling it again.  The call asks for its tier-1 kernel at once (no
    # tier-1 compile runs here): tier 0's compile, which the call waits for,
    # is done by then, so the two do not share the cores.
    asks = dict(STENCILS_ENGINE="auto", STENCILS_JIT_MIN_WORK="1")
    cold, got = _cold_child(tmp_path, "cold", **asks)
    # The reader reads every border column from the tables: only the resolver
    # needs resolve_index.
    compiled = sorted(cold["compiled"])
    assert compiled == ["impl_carray.<locals>.impl"] * 3 + ["resolve_index"], cold
    assert cold["entry_hits"] == 0 and cold["tier1_asked"] == [True], cold
    if _numba_cache.can_fork():
        assert cold["forks"] == [True] and cold["reader_hits"] == 1, cold
    want = _tier0_here()
    np.testing.assert_array_equal(_bits(got), _bits(want))
    # A later process loads both halves from the disk, without numba's compiler.
    warm, again = _cold_child(tmp_path, "warm", **asks)
    assert warm == {"compiled": [], "forks": [], "reader_hits": 1, "reader_ready": True,
                    "entry_hits": 1, "tier1_asked": [True], "compiler_set_up": False}, warm
    np.testing.assert_array_equal(_bits(again), _bits(want))


def test_a_forked_compile_that_fails_is_done_in_process(tmp_path):
    if not _numba_cache.can_fork():
        pytest.skip("tier 0 compiles in one process here")
    failed, got = _cold_child(tmp_path, "failed", TEST_CHILD_FAILS="1")
    # The child exited 3: the reader was compiled here, not loaded.
    assert failed["forks"] == [False] and failed["reader_hits"] == 0, failed
    assert failed["reader_ready"], failed
    np.testing.assert_array_equal(_bits(got), _bits(_tier0_here()))


def test_compile_beside_kills_a_hanging_child_and_reaps_every_child(monkeypatch):
    if not _numba_cache.can_fork():
        pytest.skip("no fork here")
    children = []
    fork = os.fork

    def recorded_fork():
        pid = fork()
        if pid:
            children.append(pid)
        return pid

    monkeypatch.setattr(os, "fork", recorded_fork)
    ran = []
    t = time.monotonic()
    assert not _numba_cache.compile_beside(lambda: time.sleep(60), lambda: ran.append(1),
                                           timeout=0.3)
    assert time.monotonic() - t < 30 and ran == [1]
    assert not _numba_cache.compile_beside(lambda: 1 / 0, lambda: ran.append(2))
    assert _numba_cache.compile_beside(lambda: None, lambda: ran.append(3))
    assert ran == [1, 2, 3] and len(children) == 3
    for pid in children:  # each one waited for: no zombie left
        with pytest.raises(ChildProcessError):
            os.waitpid(pid, os.WNOHANG)
