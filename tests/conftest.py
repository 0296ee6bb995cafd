"""Shared test setup: a fresh kernel cache, hypothesis profiles, no display."""

import os
import tempfile

# Before stencils is imported anywhere: generated kernels go to a folder of
# this session's, so stale machine code can never pass a test.
os.environ.setdefault("STENCILS_CACHE_DIR", tempfile.mkdtemp(prefix="stencils-test-cache-"))
os.environ.setdefault("MPLBACKEND", "Agg")

from hypothesis import HealthCheck, settings  # noqa: E402

# deadline=None: the first example of a test may pay a JIT compile.
settings.register_profile(
    "dev", deadline=None, max_examples=60,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
settings.register_profile(
    "ci", deadline=None, max_examples=60, derandomize=True, print_blob=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
settings.load_profile("ci" if os.environ.get("CI") else os.environ.get("HYPOTHESIS_PROFILE", "dev"))
