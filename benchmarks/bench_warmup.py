"""Warm-up: what a new user's loop costs from the first call, in fresh processes.

``python -m benchmarks.bench_warmup [--quick] [--json PATH]`` (group ``warm-up``
of ``python -m benchmarks``).  Each figure comes from a new Python process, so
nothing compiled in this one helps:

- ``loop-warm`` / ``loop-empty``: 400 calls of ``st.correlate`` on a 512^2
  float32 image, 7x7 kernel, 'reflect' (the first call included), with the
  kernel cache already filled by an earlier process, and with an empty one
  (numba's cache too), against ``scipy.ndimage.correlate``'s 400 calls;
- ``first-5x5-4096-warm`` / ``-empty``: the time to the first result of a new
  5x5 correlation on a 4096^2 float32 image, against scipy's first call.

Imports are not timed (about 1 s for stencils and numba, 0.3 s for scipy).
Targets (issue 10): the warm loop >= 8x faster than scipy's, the empty one
never slower; the first 5x5 result on an empty cache <= 2 s.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import textwrap

CHILD = textwrap.dedent("""
    import json, sys, time
    import numpy as np
    which, calls, size, ksize = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
    rng = np.random.default_rng(0)
    image = rng.standard_normal((size, size)).astype(np.float32)
    kernel = rng.standard_normal((ksize, ksize)).astype(np.float32)
    if which == "ours":
        import stencils as st
        def call():
            return st.correlate(image, kernel, mode="reflect")
    else:
        import scipy.ndimage as ndi
        def call():
            return ndi.correlate(image, kernel, mode="reflect")
    times = []
    for _ in range(calls):
        t = time.perf_counter()
        call()
        times.append(time.perf_counter() - t)
    print(json.dumps({"total": sum(times), "first": times[0], "rest": sorted(times[1:])}))
""")


def _child(which, calls, size, ksize, cache):
    env = dict(os.environ)
    if cache is not None:
        env["STENCILS_CACHE_DIR"] = cache
        env["NUMBA_CACHE_DIR"] = os.path.join(cache, "numba")
    proc = subprocess.run([sys.executable, "-c", CHILD, which, str(calls), str(size), str(ksize)],
                          env=env, capture_output=True, text=True, timeout=1200)
    if proc.returncode != 0:
        raise RuntimeError(proc.stderr[-2000:])
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _row(workload, impl, seconds, note, description):
    from ._harness import Result

    return Result(workload, impl, seconds, seconds, seconds, 1, "not checked", note, "warm-up",
                  description)


def measure(quick=False):
    """The warm-up rows, as harness `Result`s (one fresh process each)."""
    calls, size, big = (40, 256, 1024) if quick else (400, 512, 4096)
    rows = []
    with tempfile.TemporaryDirectory() as root:
        warm = os.path.join(root, "warm")
        _child("ours", 3, size, 7, warm)  # fills the cache: the next process finds it
        for name, cache in (("warm", warm), ("empty", os.path.join(root, "empty"))):
            ours = _child("ours", calls, size, 7, cache)
            theirs = _child("scipy", calls, size, 7, None)
            last = sum(ours["rest"][:10]) / 10
            desc = f"{calls} calls of correlate, {size}^2 float32, 7x7 'reflect', {name} cache"
            rows.append(_row(f"loop-{name}", "ours", ours["total"],
                             f"first call {ours['first'] * 1e3:.0f} ms; fastest calls "
                             f"{last * 1e3:.2f} ms", desc))
            rows.append(_row(f"loop-{name}", "scipy.ndimage", theirs["total"], "", desc))
        _child("ours", 1, 64, 5, warm)
        for name, cache in (("warm", warm), ("empty", os.path.join(root, "empty5"))):
            desc = f"first result of a new 5x5 correlation, {big}^2 float32, {name} cache"
            ours = _child("ours", 1, big, 5, cache)
            theirs = _child("scipy", 1, big, 5, None)
            rows.append(_row(f"first-5x5-{big}-{name}", "ours", ours["first"], "", desc))
            rows.append(_row(f"first-5x5-{big}-{name}", "scipy.ndimage", theirs["first"], "",
                             desc))
    return rows


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m benchmarks.bench_warmup",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="40 calls, smaller images")
    parser.add_argument("--json", help="also write the numbers to this file")
    args = parser.parse_args(argv)
    rows = measure(args.quick)
    print(f"| workload | implementation | seconds | x ours | note |\n|---|---|---|---|---|")
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
