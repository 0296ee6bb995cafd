"""Scratch memory each thread keeps and reuses from one call to the next.

A fresh array of a few MB is fresh pages whenever glibc has given freed
memory back to the system, each faulted in (and zeroed) on its first write;
memory a thread keeps is written at cache speed.  Each user holds its own
`Scratch`, so that two of them can be in use at once on one thread.
"""

from __future__ import annotations

import threading

import numpy as np

__all__ = ["Scratch"]


class Scratch:
    """Per-thread memory for arrays of up to `max_bytes`; larger ones are
    allocated per call (their faults are small next to their work)."""

    def __init__(self, max_bytes):
        self.max_bytes = max_bytes
        self._local = threading.local()

    def array(self, shape, dtype):
        """An uninitialised C-contiguous array in this thread's memory, valid
        until the thread's next call (a fresh array past `max_bytes`)."""
        dtype = np.dtype(dtype)
        nbytes = int(np.prod(shape)) * dtype.itemsize
        if nbytes > self.max_bytes:
            return np.empty(shape, dtype=dtype)
        memory = getattr(self._local, "memory", None)
        if memory is None or memory.nbytes < nbytes:
            memory = self._local.memory = np.empty(max(nbytes, 1), dtype=np.uint8)
        return memory[:nbytes].view(dtype).reshape(shape)
