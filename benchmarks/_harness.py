"""Timing side by side: every implementation of a workload in one process, in
alternating order, after warm-up; medians, spread, ratios, and a check that the
outputs agree.  These machines are shared and noisy, so only ratios measured
in the same run mean much.
"""

from __future__ import annotations

import dataclasses
import json
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
class Workload:
    name: str
    description: str
    # Returns the implementations, "ours" first (the reference for ratios and checks).
    setup: Callable[[bool], list]
    # What limits it, for the docs: 'memory bandwidth', 'arithmetic', ...
    limit: str = ""
    # A floor for the row, in seconds: e.g. the time to read and write the data once.
    floor: Callable[[bool], float] | None = None


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


def allclose(rtol=1e-5, atol=1e-5):
    def check(ours, theirs):
        np.testing.assert_allclose(np.asarray(theirs), np.asarray(ours), rtol=rtol, atol=atol)
    return check


def time_workload(workload, *, quick=False, repeats=None, warmup=2):
    impls = workload.setup(quick)
    repeats = repeats or (3 if quick else 9)
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
                agreement[impl.name] = "NO: " + str(exc).strip().splitlines()[0][:80]
    times = {impl.name: [] for impl in impls}
    for r in range(repeats):
        # Alternate the order so that drift hits every implementation alike.
        order = impls if r % 2 == 0 else impls[::-1]
        for impl in order:
            start = time.perf_counter()
            impl.run()
            times[impl.name].append(time.perf_counter() - start)
    return [
        Result(workload.name, impl.name, statistics.median(times[impl.name]),
               min(times[impl.name]), max(times[impl.name]), repeats,
               agreement[impl.name], impl.note)
        for impl in impls
    ]


def environment():
    import numba

    info = {
        "python": platform.python_version(),
        "machine": platform.machine(),
        "processor": platform.processor() or platform.machine(),
        "numpy": np.__version__,
        "numba": numba.__version__,
        "numba_threads": numba.get_num_threads(),
    }
    try:
        info["numba_threading_layer"] = numba.threading_layer()
    except ValueError:
        info["numba_threading_layer"] = "not started"
    from importlib import metadata

    for module, dist in (("scipy", "scipy"), ("cv2", "opencv-python-headless"),
                         ("torch", "torch"), ("dask", "dask"), ("dask_image", "dask-image")):
        try:
            info[module] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            info[module] = "not installed"
    return info


def markdown_table(results, floors=None):
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
            ratio = f"{r.median / ours:.2f}"
            lines.append(
                f"| {name} | {r.implementation} | {r.median * 1e3:.2f} | "
                f"{r.low * 1e3:.2f}-{r.high * 1e3:.2f} | {ratio} | {r.agrees} | {r.note} |")
        if name in floors:
            floor = floors[name]
            lines.append(f"| {name} | *physical floor* | {floor * 1e3:.2f} | | "
                         f"{floor / ours:.2f} | | ours is {ours / floor:.2f}x the floor |")
    return "\n".join(lines)


def write_json(path, results, env, floors=None):
    with open(path, "w") as f:
        json.dump({"environment": env,
                   "floors_s": floors or {},
                   "results": [dataclasses.asdict(r) for r in results]}, f, indent=2)
