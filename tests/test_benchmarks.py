"""Smoke test of the benchmark suite: it imports, and one tiny workload goes through the
harness (structure only, never time)."""

import json
import math

import numpy as np
import pytest

pytest.importorskip("scipy")

from benchmarks import __main__ as suite  # noqa: E402
from benchmarks._harness import (Floor, Implementation, Skipped, Workload, allclose,  # noqa: E402
                                 markdown_table, plot_ratios, results_from_json, roofline,
                                 selected, time_workload, write_json)


def _tiny(quick):
    a = np.arange(12.0)
    return [Implementation("ours", lambda: a * 2),
            Implementation("peer", lambda: a + a, allclose()),
            Implementation("wrong", lambda: a * 3, allclose()),
            Skipped("absent", "not installed")]


def test_suite_lists_every_required_workload():
    names = {w.name for w in suite.workloads()}
    for size in (3, 5, 11):
        for tag in ("f32", "f64"):
            for n in (1024, 4096):
                assert f"corr{size}x{size}-{tag}-{n}" in names
    assert {"stride2", "box-blur", "sobel", "laplace3d-f64", "stencil1d-f64", "maxpool-fwd",
            "maxpool-bwd", "conv1-fwd", "conv1-bwd", "conv2-fwd", "conv2-bwd"} <= names
    assert len(names) == len(suite.workloads())
    assert all(w.bytes is not None and w.ops is not None for w in suite.workloads())


def test_harness_structure(tmp_path):
    w = Workload("tiny", "a tiny workload", _tiny, bytes=lambda q: 192.0, ops=lambda q: 12.0,
                 group="test")
    results = time_workload(w, quick=True, repeats=2, warmup=1)
    assert [r.implementation for r in results] == ["ours", "peer", "wrong", "absent"]
    assert [r.agrees for r in results[:2]] == ["reference", "yes"]
    assert results[2].agrees.startswith("NO")
    assert results[3].agrees == "skipped" and math.isnan(results[3].median)
    assert all(r.low <= r.median <= r.high and r.repeats == 2 for r in results[:3])
    machine = {"copy_GBps": 10.0, "fma_f32_GFLOPs": 100.0, "fma_f64_GFLOPs": 50.0}
    floor = roofline(w, True, machine)
    assert isinstance(floor, Floor) and floor.limit == "memory bandwidth"
    assert floor.seconds == pytest.approx(192 / 10e9)
    table = markdown_table(results, {"tiny": floor})
    assert table.count("\n") == 6 and "| tiny | absent | - |" in table and "floor" in table
    path = tmp_path / "r.json"
    write_json(path, results, {"numba_threads": 1}, {"tiny": floor})
    data = json.loads(path.read_text())
    assert data["floors_s"]["tiny"]["limit"] == "memory bandwidth"
    back = results_from_json(data)
    assert [r.implementation for r in back] == [r.implementation for r in results]
    pytest.importorskip("matplotlib")
    plot_ratios(results, tmp_path / "r.png", {"tiny": floor})
    assert (tmp_path / "r.png").read_bytes()[:4] == b"\x89PNG"


def test_only_selects_by_name_glob_and_group():
    w = Workload("corr3x3-f32-1024", "", _tiny, group="correlate")
    assert selected(w, None) and selected(w, ["corr*"]) and selected(w, ["correlate"])
    assert not selected(w, ["sobel"])


def test_one_real_workload_runs_quick():
    w = next(w for w in suite.workloads() if w.name == "maxpool-fwd")
    results = time_workload(w, quick=True, repeats=1, warmup=1)
    assert results[0].agrees == "reference"
    assert all(r.agrees in ("yes", "skipped") for r in results[1:])


def test_cli_list(capsys):
    assert suite.main(["--list"]) == 0
    out = capsys.readouterr().out
    assert "corr11x11-f64-4096" in out and "lenet" in out and "compile-latency" in out
