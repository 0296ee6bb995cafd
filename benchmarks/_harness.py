"""Timing side by side: every implementation of a workload in one process, in
alternating order, after warm-up; medians, spread, ratios, and a check that the
outputs agree.  These machines are shared and noisy, so only ratios measured
in the same run mean much.

Each workload may also say how many bytes it must move and how many
arithmetic operations it must do; with the machine's measured copy bandwidth
and FMA throughput (`benchmarks.bench_floor`) that gives the row a *floor*:
the time below which no implementation can go (a roofline bound), and whether
memory bandwidth or arithmetic sets it.
"""

from __future__ import annotations

import dataclasses
import fnmatch
import json
import math
import os
import platform
import statistics
import time
from typing import Callable

import numpy as np


@dataclasses.dataclass
class Implementation:
    name: str
    run: Callable[[], object]
    # Compare this implementation's output with the reference one (None: skip).
    check: Callable[[object, object], None] | None = None
    note: str = ""


@dataclasses.dataclass
class Skipped:
    """A peer that could not run here (not installed, ...): a row with a note, never a time."""
    name: str
    reason: str


@dataclasses.dataclass
class Workload:
    name: str
    description: str
    # Returns the implementations, "ours" first (the reference for ratios and checks);
    # `Skipped` entries become rows with a note.
    setup: Callable[[bool], list]
    # What limits it, for the docs: 'memory bandwidth', 'arithmetic', ...  (With `bytes`
    # and `ops` given, the roofline decides and this is only a fallback.)
    limit: str = ""
    # A floor for the row, in seconds (overrides the roofline floor).
    floor: Callable[[bool], float] | None = None
    # Bytes that must cross the memory bus at least once (read inputs, write outputs).
    bytes: Callable[[bool], float] | None = None
    # Arithmetic operations, counted in FMA-pipe slots per lane: an FMA, an add, a
    # multiply or a max is one.  The peak is half the measured FMA GFLOP/s.
    ops: Callable[[bool], float] | None = None
    # The element type of the arithmetic: picks the float32 or float64 peak.
    dtype: str = "float32"
    group: str = ""
    repeats: int | None = None
    # Calls timed together per sample (their mean is the sample): for rows of a
    # fraction of a millisecond, a loop as users run it, the implementations
    # alternating between samples.
    number: int = 1
    # Untimed calls before each sample: the loop settles after the other
    # implementation's (its thread pool's spinning threads go idle, this one's
    # start spinning).
    settle: int = 0
    # Seconds of idle before each sample's settle calls, so that it starts as
    # a loop of one library does, with no other library's threads spinning:
    # torch's OpenMP workers spin for milliseconds after its calls, and ours
    # meeting them on the cores back off from the team for 10 ms or more.
    pause: float = 0.0


@dataclasses.dataclass
class Result:
    workload: str
    implementation: str
    median: float
    low: float
    high: float
    repeats: int
    agrees: str
    note: str = ""
    group: str = ""
    description: str = ""


def allclose(rtol=1e-5, atol=1e-5):
    def check(ours, theirs):
        np.testing.assert_allclose(np.asarray(theirs), np.asarray(ours), rtol=rtol, atol=atol)
    return check


def all_close(rtol=1e-5, atol=1e-5):
    """Like `allclose` for a tuple of outputs (e.g. several gradients)."""
    def check(ours, theirs):
        assert len(ours) == len(theirs), f"{len(theirs)} outputs, expected {len(ours)}"
        for a, b in zip(ours, theirs):
            np.testing.assert_allclose(np.asarray(b), np.asarray(a), rtol=rtol, atol=atol)
    return check


def selected(workload, patterns):
    """Whether `--only` patterns (names, group names or globs) select `workload`."""
    if not patterns:
        return True
    return any(fnmatch.fnmatchcase(workload.name, p) or p == workload.group
               for p in patterns)


def time_workload(workload, *, quick=False, repeats=None, warmup=2):
    entries = workload.setup(quick)
    skipped = [e for e in entries if isinstance(e, Skipped)]
    impls = [e for e in entries if not isinstance(e, Skipped)]
    repeats = repeats or workload.repeats or (3 if quick else 9)
    reference = None
    agreement = {}
    for impl in impls:
        out = None
        for _ in range(warmup):
            out = impl.run()
        if reference is None:
            reference = out
            agreement[impl.name] = "reference"
        elif impl.check is None:
            agreement[impl.name] = "not checked"
        else:
            try:
                impl.check(reference, out)
                agreement[impl.name] = "yes"
            except AssertionError as exc:
                lines = [ln.strip() for ln in str(exc).strip().splitlines() if ln.strip()]
                detail = next((ln for ln in lines if ln.startswith("Max abs")), lines[0]
                              if lines else "")
                agreement[impl.name] = "NO: " + detail[:80]
        del out
    times = {impl.name: [] for impl in impls}
    for r in range(repeats):
        # Alternate the order so that drift hits every implementation alike.
        order = impls if r % 2 == 0 else impls[::-1]
        for impl in order:
            if workload.pause:
                time.sleep(workload.pause)
            for _ in range(workload.settle):
                impl.run()
            start = time.perf_counter()
            for _ in range(workload.number):
                impl.run()
            times[impl.name].append((time.perf_counter() - start) / workload.number)
    results = [
        Result(workload.name, impl.name, statistics.median(times[impl.name]),
               min(times[impl.name]), max(times[impl.name]), repeats,
               agreement[impl.name], impl.note, workload.group, workload.description)
        for impl in impls
    ]
    results += [Result(workload.name, s.name, math.nan, math.nan, math.nan, 0, "skipped",
                       s.reason, workload.group, workload.description) for s in skipped]
    return results


@dataclasses.dataclass
class Floor:
    seconds: float
    limit: str
    detail: str


def roofline(workload, quick, machine):
    """The row's floor from its bytes and ops and the machine's measured limits.

    `machine`: dict with ``copy_GBps``, ``fma_f32_GFLOPs``, ``fma_f64_GFLOPs``.
    Returns a `Floor` or None when the workload declares neither.
    """
    if workload.floor is not None:
        return Floor(workload.floor(quick), workload.limit or "memory bandwidth",
                     "measured copy of the data")
    if workload.bytes is None and workload.ops is None or not machine:
        return None
    t_mem = t_ops = 0.0
    parts = []
    if workload.bytes is not None:
        nbytes = workload.bytes(quick)
        t_mem = nbytes / (machine["copy_GBps"] * 1e9)
        parts.append(f"{nbytes / 1e6:.3g} MB / {machine['copy_GBps']:.0f} GB/s")
    if workload.ops is not None:
        peak = machine["fma_f64_GFLOPs" if "64" in workload.dtype else "fma_f32_GFLOPs"] / 2
        ops = workload.ops(quick)
        t_ops = ops / (peak * 1e9)
        parts.append(f"{ops / 1e6:.3g} M ops / {peak:.0f} G ops/s")
    limit = "memory bandwidth" if t_mem >= t_ops else "arithmetic"
    return Floor(max(t_mem, t_ops), limit, "; ".join(parts))


def environment():
    import numba

    info = {
        "python": platform.python_version(),
        "machine": platform.machine(),
        "processor": _cpu_name(),
        "cpu_count": os.cpu_count(),
        "numpy": np.__version__,
        "numba": numba.__version__,
        "numba_threads": numba.get_num_threads(),
    }
    try:
        info["numba_threading_layer"] = numba.threading_layer()
    except ValueError:
        info["numba_threading_layer"] = "not started"
    from importlib import metadata

    for module, dist in (("stencil-grad", "stencil-grad"), ("llvmlite", "llvmlite"),
                         ("scipy", "scipy"), ("cv2", "opencv-python-headless"),
                         ("torch", "torch"), ("dask", "dask"), ("dask_image", "dask-image"),
                         ("matplotlib", "matplotlib")):
        try:
            info[module] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            info[module] = "not installed"
    if info["cv2"] == "not installed":
        try:
            import cv2
            info["cv2"] = cv2.__version__
        except ImportError:
            pass
    try:
        info["load_average"] = " ".join(f"{v:.2f}" for v in os.getloadavg())
    except OSError:
        pass
    return info


def _cpu_name():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _fmt_ms(seconds):
    if seconds is None or math.isnan(seconds):
        return "-"
    ms = seconds * 1e3
    return f"{ms:.3g}" if ms < 100 else f"{ms:.0f}"


def markdown_table(results, floors=None):
    """One row per implementation (ratio = its median / ours: > 1 means ours is faster),
    then the workload's physical floor where known.  `floors`: workload name -> seconds
    or `Floor`."""
    floors = floors or {}
    lines = [
        "| workload | implementation | median ms | min-max ms | time / ours | agrees | note |",
        "|---|---|---:|---:|---:|---|---|",
    ]
    by_workload = {}
    for r in results:
        by_workload.setdefault(r.workload, []).append(r)
    for name, rows in by_workload.items():
        ours = rows[0].median
        for r in rows:
            if math.isnan(r.median):
                lines.append(f"| {name} | {r.implementation} | - | - | - | {r.agrees} | "
                             f"{r.note} |")
                continue
            ratio = f"{r.median / ours:.2f}"
            lines.append(
                f"| {name} | {r.implementation} | {_fmt_ms(r.median)} | "
                f"{_fmt_ms(r.low)}-{_fmt_ms(r.high)} | {ratio} | {r.agrees} | {r.note} |")
        if name in floors:
            floor = floors[name]
            if not isinstance(floor, Floor):
                floor = Floor(floor, "memory bandwidth", "copy of the data")
            where = (" (below the memory floor: the data fits in cache)"
                     if ours < floor.seconds and floor.limit == "memory bandwidth" else "")
            lines.append(f"| {name} | *floor: {floor.limit}* | {_fmt_ms(floor.seconds)} | | "
                         f"{floor.seconds / ours:.2f} | | ours at {ours / floor.seconds:.1f}x "
                         f"the floor{where}; {floor.detail} |")
    return "\n".join(lines)


def write_json(path, results, env, floors=None, extra=None):
    def floor_json(f):
        return dataclasses.asdict(f) if isinstance(f, Floor) else f

    def clean(v):
        return None if isinstance(v, float) and math.isnan(v) else v

    payload = {"environment": env,
               "floors_s": {k: floor_json(v) for k, v in (floors or {}).items()},
               "results": [{k: clean(v) for k, v in dataclasses.asdict(r).items()}
                           for r in results]}
    payload.update(extra or {})
    with open(path, "w") as f:
        json.dump(payload, f, indent=2)


def results_from_json(data):
    """`Result`s back from a `write_json` payload (e.g. another suite's, run as a subprocess)."""
    fields = {f.name for f in dataclasses.fields(Result)}
    out = []
    for row in data.get("results", []):
        row = {k: (math.nan if v is None and k in ("median", "low", "high") else v)
               for k, v in row.items() if k in fields}
        out.append(Result(**row))
    return out


def plot_ratios(results, path, floors=None, title=""):
    """A PNG: per workload, each peer's time over ours (log scale; right of 1 = ours faster),
    and ours against the physical floor.  matplotlib's Figure API, no display."""
    from matplotlib.figure import Figure

    floors = floors or {}
    by_workload = {}
    for r in results:
        by_workload.setdefault(r.workload, []).append(r)
    labels, ratios, colours = [], [], []
    floor_labels, floor_fracs = [], []
    for name, rows in by_workload.items():
        ours = rows[0].median
        if not ours or math.isnan(ours):
            continue
        for r in rows[1:]:
            if math.isnan(r.median):
                continue
            labels.append(f"{name}: {r.implementation}")
            ratios.append(r.median / ours)
            colours.append("tab:green" if r.median >= ours else "tab:red")
        if name in floors:
            f = floors[name]
            seconds = f.seconds if isinstance(f, Floor) else f
            floor_labels.append(f"{name} ({getattr(f, 'limit', 'memory bandwidth')})")
            floor_fracs.append(seconds / ours)
    height = 0.26 * (len(labels) + len(floor_labels)) + 2.5
    fig = Figure(figsize=(11, height), layout="constrained")
    axes = fig.subplots(2, 1, height_ratios=[max(len(labels), 1), max(len(floor_labels), 1)])
    ax = axes[0]
    y = np.arange(len(labels))
    ax.barh(y, ratios, color=colours)
    ax.set_yticks(y, labels, fontsize=7)
    ax.invert_yaxis()
    ax.set_xscale("log")
    ax.axvline(1, color="black", lw=1)
    for yi, v in zip(y, ratios):
        ax.text(v, yi, f" {v:.2g}x", va="center", fontsize=6)
    ax.set_xlabel("peer time / our time (log; > 1: ours is faster)")
    ax.set_title(title or "stencils against its peers")
    ax.grid(True, axis="x", alpha=0.3, which="both")
    ax = axes[1]
    y = np.arange(len(floor_labels))
    ax.barh(y, floor_fracs, color="tab:blue")
    ax.set_yticks(y, floor_labels, fontsize=7)
    ax.invert_yaxis()
    ax.set_xlim(0, max([1.0] + floor_fracs) * 1.1)
    ax.axvline(1, color="black", lw=1)
    for yi, v in zip(y, floor_fracs):
        ax.text(v, yi, f" {100 * v:.0f}%", va="center", fontsize=6)
    ax.set_xlabel("floor time / our time (1 = at the machine's limit)")
    ax.set_title("How close ours gets to the physical floor")
    ax.grid(True, axis="x", alpha=0.3)
    fig.savefig(path, dpi=110)
