"""Blur and downsample an image larger than a chunk, with Dask: threads, then a LocalCluster.

Run: ``python docs/examples/dask_blur.py [--size N] [--chunk C]`` (needs the
``[dask]`` extra: ``pip install "stencil-grad[dask]"``).

The image is a dask array in chunks smaller than the image; the 5x5 Gaussian
blur with a stride of 2 (blur, then keep every other pixel: a downsample
without aliasing) is one lazy dask array.  It is computed twice, on dask's
threaded scheduler and on a ``dask.distributed.LocalCluster`` of two worker
processes on 127.0.0.1, and both results are checked against the in-memory
``stencils.correlate`` of the whole NumPy image.
"""

from __future__ import annotations

import argparse
import time

import numpy as np


def gaussian_kernel(size=5, sigma=1.0):
    x = np.arange(size) - size // 2
    g = np.exp(-0.5 * (x / sigma) ** 2)
    k = np.outer(g, g)
    return (k / k.sum()).astype(np.float32)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=3000, help="image side (default 3000)")
    parser.add_argument("--chunk", type=int, default=1024, help="chunk side (default 1024)")
    args = parser.parse_args(argv)

    import dask
    import dask.array as da
    from dask.distributed import Client, LocalCluster

    import stencils as st

    # The image is made chunk by chunk where it is computed (on the workers for
    # the cluster), as data read with da.from_zarr would be; da.from_array on
    # a big NumPy array would copy it into the task graph instead.
    x = da.random.default_rng(0).random((args.size, args.size), dtype=np.float32,
                                        chunks=args.chunk)
    image = x.compute()  # for the in-memory reference only
    kernel = gaussian_kernel()
    print(f"image {image.shape} float32 in chunks {x.chunksize} ({x.npartitions} chunks)")

    # Lazy: nothing is computed here.  'nearest' is scipy's mode name; a massiv
    # border value (st.Edge, st.Reflect, ...) works the same way.
    small = st.correlate(x, kernel, mode="nearest", stride=2)
    print(f"lazy result: {small.shape} {small.dtype} in chunks {small.chunksize}, "
          f"{len(small.__dask_graph__())} tasks")

    expected = st.correlate(image, kernel, mode="nearest", stride=2)

    # 1. The threaded scheduler: each chunk runs a serial, GIL-free kernel.
    #    (The first call may compile the kernel: seconds, once per process.)
    for attempt in ("first call", "second call"):
        start = time.perf_counter()
        with dask.config.set(scheduler="threads"):
            result = small.compute()
        label = f"threaded scheduler ({attempt}):"
        print(f"{label:34} {time.perf_counter() - start:6.3f} s")
        np.testing.assert_allclose(result, expected, rtol=1e-5, atol=1e-6)

    # 2. A local cluster of two worker processes on the loopback interface.
    #    Each worker compiles (or loads from the disk cache) its kernels once.
    with LocalCluster(n_workers=2, processes=True, threads_per_worker=1, host="127.0.0.1",
                      dashboard_address=None) as cluster, Client(cluster) as client:
        for attempt in ("first call", "second call"):
            start = time.perf_counter()
            result = client.compute(small).result()
            label = f"LocalCluster ({attempt}):"
            print(f"{label:34} {time.perf_counter() - start:6.3f} s")
            np.testing.assert_allclose(result, expected, rtol=1e-5, atol=1e-6)

    print("both agree with the in-memory stencils.correlate")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
