"""Keep freed memory mapped in the command-line programs (glibc only).

A training step allocates and frees arrays of 0.2-1.6 MB: layer outputs, the
convolution kernels' padded and transposed copies.  glibc's malloc returns
such memory to the system once enough of it is free at the top of the heap,
and the next allocation of that size is then fresh pages, each faulted in
(and zeroed by the kernel) on its first write.  A LeNet step at batch 64 took
750 such page faults, and 13.7-16.2 ms against 10.8-11.8 ms with the
thresholds raised (one process, 2 threads, Zen 3 under KVM, 2026-12-02).

The setting is process-wide, so the library never makes it: the programs
(`python -m convnet.train`, `python -m convnet.evaluate`) do, and a script
of one's own can call `convnet.keep_freed_memory` or set glibc's environment
variables (``MALLOC_TRIM_THRESHOLD_``, ``MALLOC_MMAP_THRESHOLD_``).  Since
the convolutions keep their largest temporary (the weight gradient's layout)
in per-thread memory, a step of one's own takes no faults without it either
(3.60-3.70 against 3.44-3.51 ms a step with it, 2026-12-03).
"""

from __future__ import annotations

import ctypes
import sys

__all__ = ["keep_freed_memory"]

# mallopt's parameters (malloc.h).
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
# Arrays below 32 MB (glibc's largest mmap threshold) come from the heap, and up to
# 256 MB of freed heap stays mapped for the next step.
_MMAP_BYTES = 32 << 20
_TRIM_BYTES = 256 << 20


def keep_freed_memory():
    """Ask glibc's malloc to keep freed memory for reuse; return whether it did.

    Nothing happens (False) off Linux or with another C library.

    Examples
    --------
    >>> import convnet
    >>> convnet.keep_freed_memory() in (True, False)
    True
    """
    if not sys.platform.startswith("linux"):
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):  # musl and others have no mallopt
        return False
    mallopt.argtypes, mallopt.restype = (ctypes.c_int, ctypes.c_int), ctypes.c_int
    return bool(mallopt(_M_MMAP_THRESHOLD, _MMAP_BYTES)) and bool(
        mallopt(_M_TRIM_THRESHOLD, _TRIM_BYTES))
