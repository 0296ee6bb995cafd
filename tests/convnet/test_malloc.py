"""`convnet.keep_freed_memory`: freed arrays are reused without page faults."""

import subprocess
import sys

import pytest

# Allocate and write four arrays of 1.5 MB, then free them (as a training step's
# layers do); count the minor page faults of 200 such rounds after 20.
_SCRIPT = """
import resource, sys
import numpy as np
from convnet import keep_freed_memory
applied = keep_freed_memory() if sys.argv[1] == "keep" else None
def rounds(n):
    for _ in range(n):
        arrays = [np.empty(3 * 2**17, np.float32) for _ in range(4)]
        for a in arrays:
            a[:] = 1
        del arrays, a
rounds(20)
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
rounds(200)
print(applied, resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


def _faults(mode):
    out = subprocess.run([sys.executable, "-c", _SCRIPT, mode], capture_output=True,
                         text=True, check=True).stdout.split()
    return out[0], int(out[1])


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt")
def test_keep_freed_memory_reuses_freed_arrays_without_page_faults():
    applied, faults = _faults("keep")
    if applied != "True":
        pytest.skip("this C library has no mallopt")
    # 200 rounds of 6 MB of fresh pages would be about 300,000 faults.
    assert faults < 200
