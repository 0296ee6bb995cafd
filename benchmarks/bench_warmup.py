"""Warm-up: what a new user's loop costs from the first call, in fresh processes.

``python -m benchmarks.bench_warmup [--quick] [--json PATH]`` (group ``warm-up``
of ``python -m benchmarks``).  Each figure comes from a new Python process, so
nothing compiled in this one helps, on three states of the caches:

- *warm*: the stencil's generated kernel (tier 1) is in the disk cache;
- *empty kernel cache*: it is not, but tier 0 (the interpreter, compiled once
  per machine and dtype for every stencil) is: what a user meets with a new
  stencil (issue 10's "empty cache" targets are read this way);
- *fresh machine*: nothing is cached, not even tier 0.

Rows: ``loop-*``: 400 calls of ``st.correlate`` on a 512^2 float32 image, 7x7
kernel, 'reflect' (the first call included), against
``scipy.ndimage.correlate``'s 400 calls; ``first-5x5-4096-*``: the time to the
first result of a 5x5 correlation on a 4096^2 float32 image, against scipy's
first call; ``tier0-compile-fresh-machine``: the first call of the loop on a
fresh machine (tier 0's compile, issue 10's target: <= 3 s), with half of the
compile in a forked child (default) and with it off.  Imports are not timed
(the note gives them: stencils and numba about 1 s, scipy 0.3 s).  A helper
process that a measured process leaves compiling is waited for before the next
measurement starts.

With an empty kernel cache the loop's calls run on tier 0 while the stencil's
own kernel compiles beside them, on one of the two cores, so their fastest
calls are tier 0 on one core; the ``tiers-7x7-512`` row (bench_stencils, in
this group) times the two tiers on the same cores.

Targets (issue 10): the warm loop >= 8x faster than scipy's, the loop with an
empty kernel cache never slower; the first 5x5 result with an empty kernel
cache <= 2 s.
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import subprocess
import sys
import tempfile
import textwrap
import time

CHILD = textwrap.dedent("""
    import json, os, sys, time
    t = time.perf_counter()
    import numpy as np
    which, calls, size, ksize = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
    if which == "ours":
        import stencils as st
        from stencils import _engine
        def call():
            return st.correlate(image, kernel, mode="reflect")
    else:
        import scipy.ndimage as ndi
        def call():
            return ndi.correlate(image, kernel, mode="reflect")
    imported = time.perf_counter() - t
    rng = np.random.default_rng(0)
    image = rng.standard_normal((size, size)).astype(np.float32)
    kernel = rng.standard_normal((ksize, ksize)).astype(np.float32)
    times = []
    for i in range(calls):
        t, started_cpu = time.perf_counter(), time.process_time()
        call()
        times.append(time.perf_counter() - t)
        if i == 0:
            cpu = time.process_time() - started_cpu
    stats = _engine.stats if which == "ours" else {}
    # CPU time of the first call, and of child processes it waited for (a forked compile).
    children = os.times().children_user + os.times().children_system
    print(json.dumps({"total": sum(times), "first": times[0], "rest": sorted(times[1:]),
                      "import": imported, "stats": stats, "cpu": cpu, "children_cpu": children}))
""")

# Cache states: (name, stencils' kernel cache, numba's cache), folders under the run's root.
STATES = (("warm", "kernels-warm", "numba-warm"),
          ("empty-kernel-cache", "kernels-empty{}", "numba-warm"),
          ("fresh-machine", "kernels-fresh{}", "numba-fresh{}"))


def _child(which, calls, size, ksize, caches=None, engine=None, **settings):
    env = dict(os.environ, **settings)
    if caches is not None:
        env["STENCILS_CACHE_DIR"], env["NUMBA_CACHE_DIR"] = caches
    if engine is not None:
        env["STENCILS_ENGINE"] = engine
    proc = subprocess.run([sys.executable, "-c", CHILD, which, str(calls), str(size), str(ksize)],
                          env=env, capture_output=True, text=True, timeout=1200)
    if proc.returncode != 0:
        raise RuntimeError(proc.stderr[-2000:])
    if caches is not None:
        _wait_for_helpers(caches[0])
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _wait_for_helpers(kernel_cache, seconds=600):
    """Wait until no helper process compiles into `kernel_cache` (its lock files gone)."""
    deadline = time.monotonic() + seconds
    while glob.glob(os.path.join(kernel_cache, "*", "*.lock")) and time.monotonic() < deadline:
        time.sleep(0.1)


def _row(workload, impl, seconds, note, description):
    from ._harness import Result

    return Result(workload, impl, seconds, seconds, seconds, 1, "not checked", note, "warm-up",
                  description)


def _note(ours, theirs):
    calls = ours["stats"]
    note = (f"first call {ours['first'] * 1e3:.0f} ms; calls on tier 0 / 1: {calls['tier0']} / "
            f"{calls['tier1']}")
    if ours["rest"]:
        note += f"; fastest 10 calls {sum(ours['rest'][:10]) / 10 * 1e3:.2f} ms each"
    return note + f"; imports {ours['import']:.2f} s (scipy's {theirs['import']:.2f} s)"


def measure(quick=False):
    """The warm-up rows, as harness `Result`s (one fresh process each)."""
    calls, size, big = (40, 256, 1024) if quick else (400, 512, 4096)
    # --quick leaves out the fresh-machine rows: each compiles tier 0 again.
    states = STATES[:2] if quick else STATES
    rows = []
    with tempfile.TemporaryDirectory() as root:
        def caches(state, tag):
            return tuple(os.path.join(root, folder.format(tag)) for folder in state[1:])

        warm = caches(STATES[0], "")
        # Tier 0 compiled into numba's cache, then the stencils' own kernels.
        _child("ours", 1, 16, 5, warm, engine="interpreter")
        for ksize in (7, 5):
            _child("ours", 1, 16, ksize, warm, engine="generated")
        for state in states:
            ours = _child("ours", calls, size, 7, caches(state, "-loop"))
            theirs = _child("scipy", calls, size, 7)
            desc = f"{calls} calls of correlate, {size}^2 float32, 7x7 'reflect', {state[0]}"
            rows.append(_row(f"loop-{state[0]}", "ours", ours["total"], _note(ours, theirs), desc))
            rows.append(_row(f"loop-{state[0]}", "scipy.ndimage", theirs["total"], "", desc))
        for state in states:
            desc = f"first result of a 5x5 correlation, {big}^2 float32, {state[0]}"
            ours = _child("ours", 1, big, 5, caches(state, "-5x5"))
            theirs = _child("scipy", 1, big, 5)
            rows.append(_row(f"first-5x5-{big}-{state[0]}", "ours", ours["first"],
                             _note(ours, theirs), desc))
            rows.append(_row(f"first-5x5-{big}-{state[0]}", "scipy.ndimage", theirs["first"], "",
                             desc))
        if not quick:
            rows += _tier0_compile_rows(caches)
    return rows


def _tier0_compile_rows(caches):
    """Tier 0's first compile (the first call of the 512^2 7x7 loop on a fresh
    machine), with half of it in a forked child (default) and all of it in one
    process (``STENCILS_PARALLEL_COMPILE=0``)."""
    rows = []
    desc = "first call of correlate, 512^2 float32, 7x7 'reflect', fresh machine: tier 0's compile"
    for impl, setting in (("ours", "1"), ("ours, STENCILS_PARALLEL_COMPILE=0", "0")):
        ours = _child("ours", 1, 512, 7, caches(STATES[2], "-compile" + setting),
                      STENCILS_PARALLEL_COMPILE=setting)
        note = (f"CPU {ours['cpu']:.2f} s in the process, {ours['children_cpu']:.2f} s in "
                f"child processes it waited for; imports {ours['import']:.2f} s")
        rows.append(_row("tier0-compile-fresh-machine", impl, ours["first"], note, desc))
    return rows


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m benchmarks.bench_warmup",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true",
                        help="40 calls, smaller images, no fresh-machine rows")
    parser.add_argument("--json", help="also write the numbers to this file")
    args = parser.parse_args(argv)
    rows = measure(args.quick)
    print("| workload | implementation | seconds | x ours | note |\n|---|---|---|---|---|")
    ours = {}
    for r in rows:
        ours.setdefault(r.workload, r.median)
        print(f"| {r.workload} | {r.implementation} | {r.median:.3f} | "
              f"{r.median / ours[r.workload]:.2f} | {r.note} |")
    if args.json:
        from ._harness import environment, write_json

        write_json(args.json, rows, environment())
    return 0


if __name__ == "__main__":
    sys.exit(main())
