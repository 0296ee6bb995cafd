"""A pytest plugin that runs scipy's own filter tests through `stencils.ndimage`.

Use::

    python -m pytest -p tests.ndimage.scipy_routing --pyargs scipy.ndimage.tests.test_filters

(`tests/ndimage/test_ndi_scipy_suite.py` runs exactly that in a subprocess).  When
pytest configures the plugin, before scipy's test module is imported, every function that
`stencils.ndimage` provides replaces scipy's in `scipy.ndimage` and
`scipy.ndimage._filters` (scipy's own filters call ``correlate1d`` and others
from there).  Two traps: parametrize lists built at import hold whatever
function was there then, so the patch must come first; and scipy's array-API
machinery looks each public function up in ``xp_capabilities_table``, so
each replacement is registered with the original's entry.

Each replacement counts its calls; every test item records which of ours ran.
The terminal summary lists routed items per function; with
``STENCILS_NDI_ROUTING_REPORT=<path>`` the same is written as JSON.
"""

from __future__ import annotations

import collections
import functools
import json
import os

import pytest

os.environ.pop("SCIPY_ARRAY_API", None)  # stay on the NumPy backend

import scipy.ndimage  # noqa: E402
import scipy.ndimage._filters as _scipy_filters  # noqa: E402
from scipy._lib import _array_api  # noqa: E402

from stencils import ndimage as ours  # noqa: E402

# Items that route through stencils.ndimage but are expected to fail, with the reason.
# Keys are substrings of the node id.
EXPECTED_FAILURES: dict[str, str] = {}

_calls = collections.Counter()  # function name -> calls during the current item
_routed = collections.defaultdict(set)  # function name -> node ids of items that called it
_outcomes = {}  # node id -> 'passed' / 'failed' / 'skipped' / 'xfailed'
_ROUTED = "stencils_ndimage_routed"  # the user property naming the functions an item called


def _counting(name, func):
    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        _calls[name] += 1
        return func(*args, **kwargs)
    return wrapper


def _install():
    replaced = []
    table = _array_api.xp_capabilities_table
    for name in ours.__all__:
        original = getattr(scipy.ndimage, name, None)
        if original is None:
            continue
        replacement = _counting(name, getattr(ours, name))
        if original in table:
            table[replacement] = table[original]
        setattr(scipy.ndimage, name, replacement)
        if hasattr(_scipy_filters, name):
            setattr(_scipy_filters, name, replacement)
        replaced.append(name)
    return replaced


REPLACED = []  # the names replaced, once pytest has loaded this module as a plugin


def pytest_configure(config):
    # Here, not on import: pytest imports every module of the project to collect its
    # doctests, and a patch on import would swap scipy's functions for ours under
    # every test of that session that compares the two.
    REPLACED[:] = _install()


def pytest_collection_modifyitems(config, items):
    for item in items:
        for key, reason in EXPECTED_FAILURES.items():
            if key in item.nodeid:
                item.add_marker(pytest.mark.xfail(reason=reason, strict=True))


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_call(item):
    _calls.clear()
    yield
    # On the item's report: under pytest-xdist the items run in worker processes, and
    # only their reports reach the process that writes the summary.
    item.user_properties.append((_ROUTED, sorted(_calls)))


def pytest_runtest_logreport(report):
    if report.when == "call":
        for key, names in report.user_properties:
            if key == _ROUTED:
                for name in names:
                    _routed[name].add(report.nodeid)
    if report.when == "call" or (report.when == "setup" and report.outcome != "passed"):
        outcome = "xfailed" if hasattr(report, "wasxfail") else report.outcome
        _outcomes[report.nodeid] = outcome


def _summary():
    routed_items = set().union(*_routed.values()) if _routed else set()
    return {
        "replaced": REPLACED,
        "routed_items": len(routed_items),
        "routed_failed": sorted(n for n in routed_items if _outcomes.get(n) == "failed"),
        "per_function": {name: len(_routed.get(name, ())) for name in REPLACED},
        "items": len(_outcomes),
    }


def pytest_terminal_summary(terminalreporter):
    s = _summary()
    tr = terminalreporter
    tr.section("routed through stencils.ndimage")
    tr.write_line(f"{s['routed_items']} of {s['items']} items called at least one of "
                  f"{len(s['replaced'])} replaced functions; "
                  f"{len(s['routed_failed'])} of them failed")
    for name, count in sorted(s["per_function"].items()):
        tr.write_line(f"  {name:32s} {count:5d}")
    path = os.environ.get("STENCILS_NDI_ROUTING_REPORT")
    if path:
        with open(path, "w") as f:
            json.dump(s, f, indent=1)
