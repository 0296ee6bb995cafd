"""A helper process that compiles one generated kernel into the disk cache.

Started by stencils._engine (``python -m stencils._compile_worker FOLDER
MODULE DTYPE MARKER LOCK``) in a session of its own, so it
outlives a process shorter than the compile: the next process, or this one
later, finds the kernel on disk.  It compiles the module already written to
FOLDER, writes MARKER (atomically) once numba has cached the code, and
removes LOCK, which the starting process took for it, whatever happens.
Numba writes each cache file whole (a temporary file renamed into place), so
a helper killed mid-compile leaves no entry another process would trust.
"""

from __future__ import annotations

import os
import sys


def main(argv):
    folder, name, dtype, marker, lock = argv
    try:
        from . import _engine

        _engine.set_cache_dir(folder)
        _engine.compile_module(_engine.import_generated(name, None), dtype)
        _engine.write_atomic(marker, "")
    finally:
        try:
            os.remove(lock)
        except OSError:
            pass
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
