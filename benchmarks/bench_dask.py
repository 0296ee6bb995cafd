"""Dask backend: a 5x5 correlation of a chunked float32 image, against in memory and dask-image.

Run: ``python -m benchmarks.bench_dask [--quick] [--size N] [--chunk C] [--json PATH]``.

The workload of the issue: an 8192x8192 float32 image in 2048x2048 chunks,
correlated with a 5x5 kernel (mode 'reflect'), on dask's threaded scheduler
with one thread per core.  Rows:

- ``in memory``: ``stencils.correlate`` on the NumPy array (Numba's own threads);
- ``stencils + dask, persist``: the lazy result of ``stencils.correlate`` on the
  dask array, computed with ``.persist()`` (the chunks computed and kept in
  memory, as a pipeline hands them on);
- ``stencils + dask, compute``: the same with ``.compute()``, which also
  concatenates the chunks into one NumPy array (one more copy of the output,
  single-threaded, in dask);
- ``stencils + dask, store``: ``dask.array.store`` into a preallocated NumPy
  array (the chunks copied in parallel);
- ``... C-contiguous chunks``: the same input already persisted as C-contiguous
  chunks (as chunks read from Zarr/HDF5 or made by an earlier dask step are;
  ``da.from_array`` gives strided views of the image, which are copied before
  a kernel reads them);
- ``dask_image ... persist`` / ``compute``: ``dask_image.ndfilters.correlate``
  on the same dask arrays.

Every implementation runs in the same process, in alternating order, after a
warm-up (Numba compiles there); the outputs are checked against the in-memory
one (float32: rtol 1e-5, atol 2e-5).  These machines are shared: only ratios
measured in one run mean much.
"""

from __future__ import annotations

import argparse
import os
import sys

import numpy as np

from benchmarks._harness import (Implementation, Workload, allclose, environment, markdown_table,
                                 time_workload, write_json)


def _setup_factory(size, chunk, threads):
    def setup(quick):
        import dask.array as da

        import stencils as st

        n = size or (2048 if quick else 8192)
        c = chunk or (512 if quick else 2048)
        rng = np.random.default_rng(0)
        image = rng.random((n, n), dtype=np.float32)
        kernel = rng.random((5, 5)).astype(np.float32)
        x = da.from_array(image, chunks=c)
        # The same chunks already in memory as C-contiguous arrays, as chunks read
        # from Zarr/HDF5 or made by an earlier dask step are (from_array's chunks are
        # strided views of the image, which must be copied before a kernel reads them).
        xc = x.map_blocks(np.ascontiguousarray).persist(scheduler="threads")
        target = np.empty_like(image)
        opts = dict(scheduler="threads", num_workers=threads)
        check = allclose(rtol=1e-5, atol=2e-5)

        def store():
            da.store(st.correlate(x, kernel), target, lock=False, **opts)
            return target

        impls = [
            Implementation("in memory (stencils.correlate, NumPy)",
                           lambda: st.correlate(image, kernel)),
            Implementation("stencils + dask, persist",
                           lambda: st.correlate(x, kernel).persist(**opts), check),
            Implementation("stencils + dask, compute",
                           lambda: st.correlate(x, kernel).compute(**opts), check),
            Implementation("stencils + dask, store", store, check),
            Implementation("stencils + dask, persist, C-contiguous chunks",
                           lambda: st.correlate(xc, kernel).persist(**opts), check),
        ]
        try:
            from dask_image import ndfilters
        except ImportError:
            print("dask-image is not installed: its rows are left out", file=sys.stderr)
        else:
            def dask_image():
                return ndfilters.correlate(x, kernel, mode="reflect")

            impls += [
                Implementation("dask_image.ndfilters.correlate, persist",
                               lambda: dask_image().persist(**opts), check),
                Implementation("dask_image.ndfilters.correlate, compute",
                               lambda: dask_image().compute(**opts), check),
                Implementation("dask_image.ndfilters.correlate, persist, C-contiguous chunks",
                               lambda: ndfilters.correlate(xc, kernel, mode="reflect")
                               .persist(**opts), check),
            ]
        return impls

    return setup


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="2048^2 in 512^2 chunks, 3 repeats")
    parser.add_argument("--size", type=int, default=None, help="image side (default 8192)")
    parser.add_argument("--chunk", type=int, default=None, help="chunk side (default 2048)")
    parser.add_argument("--threads", type=int, default=None,
                        help="dask threads, and Numba threads for the in-memory call "
                             "(default: os.cpu_count())")
    parser.add_argument("--repeats", type=int, default=None)
    parser.add_argument("--json", default=None, help="also write the results here")
    args = parser.parse_args(argv)
    threads = args.threads or os.cpu_count()
    if args.threads:
        import numba

        numba.set_num_threads(min(threads, numba.config.NUMBA_NUM_THREADS))
    n = args.size or (2048 if args.quick else 8192)
    c = args.chunk or (512 if args.quick else 2048)
    workload = Workload(
        f"correlate {n}x{n} f32, 5x5, chunks {c}^2",
        "5x5 correlation, mode 'reflect', threaded scheduler",
        _setup_factory(args.size, args.chunk, threads),
        "arithmetic and memory bandwidth",
    )
    results = time_workload(workload, quick=args.quick, repeats=args.repeats)
    env = environment()
    env["dask_threads"] = threads
    env["cpu_count"] = os.cpu_count()
    try:
        env["load_average"] = " ".join(f"{v:.2f}" for v in os.getloadavg())
    except OSError:
        pass
    try:
        from importlib import metadata

        env["distributed"] = metadata.version("distributed")
    except Exception:
        env["distributed"] = "not installed"
    print("## Dask backend\n")
    print(", ".join(f"{k} {v}" for k, v in env.items()))
    print()
    print(markdown_table(results))
    times = {r.implementation: r.median for r in results}
    base = results[0].median
    print()
    for variant in ("persist", "compute", "store", "persist, C-contiguous chunks"):
        ours = times.get(f"stencils + dask, {variant}")
        if ours is not None:
            line = f"- stencils + dask ({variant}) / in memory: {ours / base:.2f}x (target <= 1.3x)"
            theirs = times.get(f"dask_image.ndfilters.correlate, {variant}")
            if theirs is not None:
                line += f"; dask_image / stencils + dask: {theirs / ours:.2f}x (target > 1)"
            print(line)
    if args.json:
        write_json(args.json, results, env)
    return 0


if __name__ == "__main__":
    sys.exit(main())
