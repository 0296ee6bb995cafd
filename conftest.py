"""pytest setup for every collected item: tests, and the doctests of stencils/, convnet/,
docs/ and README.md (tests/conftest.py has what only tests/ need).

After each item, background kernel compiles that it started are waited for, so no
compile thread runs on into the next item: the doctests' captured output and the
threading tests then see only their own work.
"""


def pytest_runtest_teardown(item):
    import sys

    engine = sys.modules.get("stencils._engine")
    if engine is not None:
        engine.wait_for_compiles(timeout=300)
