"""scipy's own `scipy/ndimage/tests/test_filters.py`, run through `stencils.ndimage`.

A subprocess runs it with the `tests.ndimage.scipy_routing` plugin (which
replaces scipy's functions by ours before the test module is imported); this
test passes when every item passes (or fails as documented in the plugin's
EXPECTED_FAILURES) and every replaced function really served some items.
The patching stays in the subprocess, so the other tests here still compare
against the real scipy.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_scipy_filter_tests_pass_through_stencils_ndimage(tmp_path):
    report = tmp_path / "routing.json"
    env = dict(os.environ, STENCILS_NDI_ROUTING_REPORT=str(report),
               PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))
    env.pop("SCIPY_ARRAY_API", None)
    run = subprocess.run(
        # In a pytest-xdist worker, as the documented command runs from the project's
        # root (its `-n auto`): the routing counts travel on the items' reports.
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-x", "-n", "1",
         "-p", "tests.ndimage.scipy_routing", "--pyargs", "scipy.ndimage.tests.test_filters",
         "-W", "ignore::pytest.PytestUnknownMarkWarning"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=1500,
    )
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-2000:]
    summary = json.loads(report.read_text())
    assert summary["routed_failed"] == []
    assert summary["items"] > 2000
    assert summary["routed_items"] > 2400, summary
    unused = [name for name, count in summary["per_function"].items() if count == 0]
    assert unused == [], f"replaced but never called by scipy's tests: {unused}"
