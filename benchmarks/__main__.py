"""Every benchmark, side by side with its peers: ``python -m benchmarks [--quick] [--only NAME]``.

One process; each workload's implementations run in alternating order after
warm-up; medians, min-max spread, the ratio to ours, a check that the outputs
agree, the physical floor of the machine (copy bandwidth, FMA throughput) for
each row, thread counts and versions.  Prints a Markdown table and writes
``results.json``, ``results.md`` and ``ratios.png`` into ``--out`` (default
``benchmarks/results/``).  Peers that are not installed are skipped with a note.

Suites owned elsewhere (``bench_lenet``, ``bench_memory``, ``bench_dask``) run
in-process when they expose ``WORKLOADS``, else as subprocesses whose JSON is
merged; with ``--quick`` they run only when ``--only`` names them.
"""

from __future__ import annotations

import argparse
import datetime
import importlib
import importlib.util
import json
import os
import subprocess
import sys
import tempfile
import time

import numba
import numpy as np

from . import (bench_convnet_ops, bench_floor, bench_nd, bench_ndimage, bench_stencils,
               bench_time_stepping)
from ._harness import (Result, environment, markdown_table, plot_ratios, results_from_json,
                       roofline, selected, time_workload, write_json)

# (module, the name --only uses, what it measures, its arguments for --quick: None = its
# own --quick if its source has one)
EXTERNAL = [
    ("bench_lenet", "lenet", "LeNet training epoch and inference against torch", None),
    ("bench_memory", "memory", "peak memory of a call with out=", ["--gib", "0.0625"]),
    ("bench_dask", "dask", "Dask backend against dask-image", None),
    ("bench_warmup", "warm-up", "a loop's first calls and the first result, in fresh processes",
     None),
]


def workloads():
    return (bench_stencils.WORKLOADS + bench_nd.WORKLOADS + bench_convnet_ops.WORKLOADS
            + bench_ndimage.WORKLOADS + bench_time_stepping.WORKLOADS)


def _set_threads(threads=None):
    if threads is not None:
        numba.set_num_threads(threads)
    threads = numba.get_num_threads()
    notes = {"numba": threads}
    try:
        import cv2
        cv2.setNumThreads(threads)
        notes["cv2"] = cv2.getNumThreads()
    except ImportError:
        notes["cv2"] = "not installed"
    try:
        import torch
        torch.set_num_threads(threads)
        notes["torch"] = torch.get_num_threads()
    except ImportError:
        notes["torch"] = "not installed"
    notes["scipy.ndimage / NumPy"] = 1
    return notes


def _run_external(module, quick, only, timeout, quick_args=None):
    """Another suite's results: in-process if it exposes WORKLOADS, else as a subprocess
    whose JSON (the harness's format) is merged, or whose printed report is kept.

    Returns (results, report text, note)."""
    spec = importlib.util.find_spec(f"benchmarks.{module}")
    if spec is None:
        return [], "", f"`benchmarks/{module}.py` is not in this checkout: skipped"
    mod = importlib.import_module(f"benchmarks.{module}")
    if hasattr(mod, "WORKLOADS"):
        out = []
        for w in mod.WORKLOADS:
            if only is None or selected(w, only) or any(p in (module, w.group) for p in only):
                out += time_workload(w, quick=quick)
        return out, "", ""
    with open(spec.origin) as f:
        source = f.read()
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "out.json")
        cmd = [sys.executable, "-m", f"benchmarks.{module}"]
        if quick:
            if quick_args is None:
                quick_args = ["--quick"] if '"--quick"' in source else []
            cmd += quick_args
        shown = "python " + " ".join(cmd[1:])
        if '"--json"' in source:
            cmd += ["--json", path]
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
        except subprocess.TimeoutExpired:
            return [], "", f"`{shown}` ran past {timeout} s: skipped"
        if proc.returncode != 0:
            tail = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or [""]
            return [], "", f"`{shown}` failed (exit {proc.returncode}): {tail[0][:200]}"
        data = None
        if os.path.exists(path):
            with open(path) as f:
                data = json.load(f)
    if isinstance(data, dict) and "results" in data:
        results = results_from_json(data)
        for r in results:
            r.group = r.group or module
        return results, "", ""
    return [], f"### `{shown}`\n\n{proc.stdout.strip()}", ""


def _busy_note(env):
    """A warning line when the machine was busy while measured (load average > half the CPUs)."""
    try:
        load = float(str(env.get("load_average", "")).split()[0])
    except (IndexError, ValueError):
        return ""
    cpus = env.get("cpu_count") or 1
    if load <= 0.5 * cpus:
        return ""
    return (f"**Measured on a busy machine** (load average {load:.1f} on {cpus} CPUs): other "
            f"processes competed for the cores, so timings are slower and noisier than on a "
            f"quiet machine, parallel calls most of all; compare only ratios from this run.")


def _parser():
    parser = argparse.ArgumentParser(prog="python -m benchmarks",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true",
                        help="small sizes, few repeats (under a minute; CI runs it)")
    parser.add_argument("--only", action="append", metavar="NAME",
                        help="a workload name, a glob (corr*) or a group (correlate, stencil, "
                             "nd, convnet, floor, compile, lenet, memory, dask); repeatable")
    parser.add_argument("--out", default=os.path.join("benchmarks", "results"),
                        help="folder for results.json, results.md and ratios.png")
    parser.add_argument("--threads", type=int, default=None,
                        help="threads for Numba, OpenCV and torch (default: Numba's, "
                             "i.e. NUMBA_NUM_THREADS or every core)")
    parser.add_argument("--list", action="store_true", help="list the workloads and exit")
    parser.add_argument("--timeout", type=int, default=None,
                        help="seconds for each suite run as a subprocess (default 60 with "
                             "--quick, 1800 without)")
    return parser


def _print_list():
    for w in workloads():
        print(f"{w.name:22s} [{w.group}] {w.description}")
    print(f"{'compile-latency':22s} [compile] first call: cold kernel cache, warm cache")
    print(f"{'floor':22s} [floor] copy bandwidth and FMA throughput")
    for module, name, what, _ in EXTERNAL:
        print(f"{name:22s} [{name}] benchmarks/{module}.py: {what}")


def _external_suites(args, notes):
    """The suites run as their own processes: their results and their text reports."""
    only, results, reports = args.only, [], []
    for module, name, what, quick_args in EXTERNAL:
        wanted = (only and name in only) or (not only and not args.quick)
        if not wanted:
            if not only:
                notes.append(f"{name} ({what}): not run with --quick; "
                             f"`python -m benchmarks --quick --only {name}` runs it")
            continue
        timeout = args.timeout or (60 if args.quick else 1800)
        extra, text, note = _run_external(module, args.quick, only, timeout, quick_args)
        results += extra
        if text:
            reports.append(text)
        if note:
            notes.append(f"{name} ({what}): {note}")
    return results, reports


def _report(env, threads, machine, results, floors, latency, reports, notes):
    """The Markdown report of one run."""
    report = [
        f"# Benchmarks {env['date']}{' (--quick)' if env['quick'] else ''}",
        "",
        f"{env['processor']}, {env['cpu_count']} CPUs, load average {env.get('load_average')}; "
        f"threads: " + ", ".join(f"{k} {v}" for k, v in threads.items())
        + f" ({env['numba_threading_layer']} layer)",
        "",
    ]
    busy = _busy_note(env)
    if busy:
        report += [busy, ""]
    report += [
        "Versions: " + ", ".join(f"{k} {env[k]}" for k in (
            "python", "stencil-grad", "numpy", "numba", "llvmlite", "scipy", "cv2", "torch",
            "dask", "dask_image")),
        "",
        bench_floor.markdown(machine),
        "",
        "Time / ours > 1: ours is faster.  The floor is the roofline bound from the bytes the "
        "row must move and the operations it must do.",
        "",
        markdown_table(results, floors),
    ]
    if latency:
        report += ["", "| compile latency | seconds |", "|---|---:|"]
        report += [f"| {k.replace(' (s)', '')} | {v:.2f} |" for k, v in latency.items()
                   if isinstance(v, float)]
        report.append(f"\n({latency['image']})")
    if reports:
        report += ["", "## Other suites (their own reports)", ""] + reports
    if notes:
        report += [""] + [f"- {n}" for n in notes]
    return "\n".join(report)


def _write(out, text, results, env, floors, extra, threads):
    """results.json, results.md and (with matplotlib) ratios.png in `out`; their names."""
    os.makedirs(out, exist_ok=True)
    write_json(os.path.join(out, "results.json"), results, env, floors, extra)
    with open(os.path.join(out, "results.md"), "w") as f:
        f.write(text + "\n")
    written = ["results.json", "results.md"]
    if results:
        try:
            plot_ratios(results, os.path.join(out, "ratios.png"), floors,
                        f"stencils against its peers ({env['date'][:10]}, "
                        f"{threads['numba']} threads{', --quick' if env['quick'] else ''})")
            written.append("ratios.png")
        except ImportError:
            print("matplotlib is not installed: no ratios.png", file=sys.stderr)
    return written


def _time_chosen(only, quick):
    """The in-process workloads `only` selects, timed: (workloads, results)."""
    import stencils as st

    chosen = [w for w in workloads() if selected(w, only)]
    if quick:
        # The two image sizes shrink to the same one: keep one of each.
        chosen = [w for w in chosen if not w.name.endswith("-4096")] or chosen
    results = []
    # Steady state: a stencil's own kernel compiles in its second warm-up call,
    # not in the background while the timed calls run (the warm-up group
    # measures the first calls).
    with st.config(compile="sync", jit_total_work=0):
        for w in chosen:
            t = time.perf_counter()
            results += time_workload(w, quick=quick)
            print(f"  {w.name}: {time.perf_counter() - t:.1f} s", file=sys.stderr, flush=True)
    return chosen, results


def main(argv=None):
    args = _parser().parse_args(argv)
    if args.list:
        _print_list()
        return 0

    started = time.perf_counter()
    threads = _set_threads(args.threads)
    import stencils as st
    st.warmup(("float32", "float64"), ndims=(1, 2, 3))
    machine = bench_floor.measure(args.quick)

    notes = []
    chosen, results = _time_chosen(args.only, args.quick)
    extra, reports = _external_suites(args, notes)
    results += extra
    latency = {}
    if not args.only or "compile" in args.only or "compile-latency" in args.only:
        latency = bench_stencils.compile_latency(args.quick)
    if not args.quick:
        # The floors: measured again at the end, the better of the two (the machine is shared).
        again = bench_floor.measure(args.quick)
        machine = {k: max(v, again[k]) for k, v in machine.items()}
    floors = {w.name: f for w in chosen
              if (f := roofline(w, args.quick, machine)) is not None}

    env = environment()
    env["threads"] = threads
    env["date"] = datetime.datetime.now().astimezone().isoformat(timespec="seconds")
    env["quick"] = args.quick
    env["command"] = "python -m benchmarks " + " ".join(argv if argv is not None
                                                        else sys.argv[1:])
    text = _report(env, threads, machine, results, floors, latency, reports, notes)
    print(text)
    written = _write(args.out, text, results, env, floors,
                     {"machine": machine, "compile_latency": latency, "notes": notes}, threads)
    print(f"\nwrote {', '.join(written)} in {args.out} "
          f"({time.perf_counter() - started:.0f} s)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
