"""Peak memory of a stencil over a large float32 array written into ``out=``.

Run: ``python -m benchmarks.bench_memory [--gib 1.0] [--json PATH]``.

Each case runs in a fresh process: it compiles the kernels on a small array first,
allocates and touches the input (and ``out``), then resets the kernel's record of
the process's peak resident set (``/proc/self/clear_refs``, Linux) and reads it
again after the call.  The growth of the peak over the resident set just before
the call is what the call itself needed; with ``out=`` it should be a few row
buffers, not another array.  ``tracemalloc``'s peak (NumPy's allocations) is
printed alongside.  Falls back to ``getrusage`` peaks where ``clear_refs`` is
not writable (those include the set-up, so they bound the call from above).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time

CASES = {
    "correlate(out=)": "stencils.correlate(a, k, mode='reflect', out=out)",
    "map_stencil + compute(out=)": "stencils.compute(stencils.map_stencil(stencils.Edge, s, a), out=out)",
    "compute_with_stride(2, out=)": "stencils.compute_with_stride(2, stencils.map_stencil("
                                    "stencils.Edge, s, a), out=out2)",
    "correlate (no out: the result is new)": "stencils.correlate(a, k, mode='reflect')",
    "scipy.ndimage.correlate(output=)": "ndi.correlate(a, k, mode='reflect', output=out)",
}


def _status(field):
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    raise KeyError(field)


def _child(case, gib):
    import tracemalloc

    import numpy as np
    import scipy.ndimage as ndi  # noqa: F401 - used by a case

    import stencils

    side = int((gib * 2**30 / 4) ** 0.5)
    k = (np.arange(25, dtype=np.float32).reshape(5, 5) % 7 - 3) / 10
    s = stencils.make_correlation_stencil_from_kernel(k)
    # Compile everything on a small array first (compilation has its own peak): the
    # kernels generated for these stencils, which a large array runs on.
    from stencils import _engine
    small = np.ones((300, 300), np.float32)
    _engine.config.engine = "generated"
    stencils.correlate(small, k, mode="reflect", out=np.empty_like(small))
    stencils.compute(stencils.map_stencil(stencils.Edge, s, small), out=np.empty_like(small))
    stencils.compute_with_stride(2, stencils.map_stencil(stencils.Edge, s, small))
    _engine.config.engine = "auto"

    a = np.empty((side, side), np.float32)
    a[...] = 1.5  # touch every page
    out = np.zeros_like(a) if "out=" in case or "output=" in case else None
    out2 = np.zeros(((side + 1) // 2,) * 2, np.float32) if "stride" in case else None
    for target in (out, out2):
        if target is not None:
            target.fill(0.25)  # touch its pages (np.zeros maps them lazily)
    exact = True
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")  # reset VmHWM to the current resident set
    except OSError:
        exact = False
    before = _status("VmRSS")
    before_maxrss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    tracemalloc.start()
    t0 = time.perf_counter()
    result = eval(CASES[case], {"stencils": stencils, "ndi": ndi, "a": a, "k": k, "s": s,
                                "out": out, "out2": out2})
    seconds = time.perf_counter() - t0
    traced_peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    peak = _status("VmHWM") if exact else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    del result
    print(json.dumps({
        "case": case, "array_bytes": a.nbytes, "shape": list(a.shape), "seconds": seconds,
        "rss_before": before, "peak": peak, "growth": peak - (before if exact else before_maxrss),
        "traced_peak": traced_peak, "exact": exact,
    }))


def _env():
    env = dict(os.environ)
    env.setdefault("NUMBA_NUM_THREADS", str(min(os.cpu_count() or 1, 2)))
    return env


def run(gib=1.0):
    rows = []
    env = _env()
    for case in CASES:
        proc = subprocess.run([sys.executable, "-m", "benchmarks.bench_memory", "--child", case,
                               "--gib", str(gib)], capture_output=True, text=True, env=env)
        if proc.returncode != 0:
            print(f"{case}: failed\n{proc.stderr[-2000:]}", file=sys.stderr)
            continue
        rows.append(json.loads(proc.stdout.strip().splitlines()[-1]))
    return rows


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gib", type=float, default=1.0, help="input size in GiB (float32)")
    parser.add_argument("--json", help="also write the rows here")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        _child(args.child, args.gib)
        return
    rows = run(args.gib)
    mib = 2**20
    print(f"5x5 float32 correlation over a {args.gib:g} GiB array "
          f"({rows[0]['shape'][0]} x {rows[0]['shape'][1]}), "
          f"NUMBA_NUM_THREADS={_env()['NUMBA_NUM_THREADS']}")
    print(f"| case | peak RSS growth (MiB) | NumPy traced peak (MiB) | seconds |")
    print("|---|---:|---:|---:|")
    for r in rows:
        note = "" if r["exact"] else " (upper bound)"
        print(f"| {r['case']} | {r['growth'] / mib:.1f}{note} | {r['traced_peak'] / mib:.2f} | "
              f"{r['seconds']:.2f} |")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=2)


if __name__ == "__main__":
    main()
