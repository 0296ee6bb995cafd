"""The machine's physical limits, measured: parallel copy bandwidth and FMA throughput.

Run: ``python -m benchmarks.bench_floor [--quick]``.  Every other row's floor is
derived from these two numbers (`benchmarks._harness.roofline`).
"""

from __future__ import annotations

import argparse
import sys
import time

import numba
import numpy as np


@numba.njit(parallel=True, cache=True)
def _copy(src, dst):
    for i in numba.prange(src.shape[0]):
        dst[i] = src[i]


def copy_bandwidth(quick=False, repeats=None):
    """GB/s of a Numba ``prange`` copy (bytes read + bytes written), the best of a few."""
    n = (32 if quick else 256) * 2**20 // 8          # 32 MiB / 256 MiB of float64
    src = np.ones(n)
    dst = np.empty_like(src)
    _copy(src, dst)
    times = []
    for _ in range(repeats or (5 if quick else 15)):
        t = time.perf_counter()
        _copy(src, dst)
        times.append(time.perf_counter() - t)
    return 2 * src.nbytes / min(times) / 1e9


def _fma_kernel(width, dtype):
    # `width` lanes of independent multiply-adds: LLVM keeps the row in vector registers
    # (4 or 8 of them) and issues one FMA per register per iteration.
    @numba.njit(fastmath={"contract"}, inline="never", cache=True)
    def chunk(row, n_iter, a, b):
        for _ in range(n_iter):
            for k in range(width):
                row[k] = row[k] * a + b

    @numba.njit(parallel=True, cache=True)
    def run(n_iter, acc):
        for t in numba.prange(acc.shape[0]):
            chunk(acc[t], n_iter, dtype(0.999999), dtype(1e-7))

    return run


def fma_throughput(dtype=np.float32, quick=False, repeats=None):
    """GFLOP/s (an FMA counts 2) of independent FMA chains on every Numba thread."""
    threads = numba.get_num_threads()
    best = 0.0
    lanes = 64 // np.dtype(dtype).itemsize            # one 512-bit register
    for regs in (4, 8):
        width = lanes * regs
        run = _fma_kernel(width, np.dtype(dtype).type)
        acc = np.ones((threads, width), dtype)
        run(10, acc)
        n_iter = (2 if quick else 10) * 2**20 // regs
        for _ in range(repeats or (3 if quick else 5)):
            t = time.perf_counter()
            run(n_iter, acc)
            best = max(best, 2 * n_iter * acc.size / (time.perf_counter() - t) / 1e9)
    return best


def measure(quick=False):
    return {"copy_GBps": copy_bandwidth(quick),
            "fma_f32_GFLOPs": fma_throughput(np.float32, quick),
            "fma_f64_GFLOPs": fma_throughput(np.float64, quick),
            "threads": numba.get_num_threads()}


def markdown(machine):
    return "\n".join([
        "| physical limit | measured | how |",
        "|---|---:|---|",
        f"| copy bandwidth | {machine['copy_GBps']:.1f} GB/s | Numba `prange` copy of a "
        f"large float64 array (bytes read + bytes written / time), best of several |",
        f"| FMA throughput, float32 | {machine['fma_f32_GFLOPs']:.0f} GFLOP/s | independent "
        f"vector FMA chains on {machine['threads']} thread(s), best of several |",
        f"| FMA throughput, float64 | {machine['fma_f64_GFLOPs']:.0f} GFLOP/s | the same, "
        f"float64 |",
    ])


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args(argv)
    print(markdown(measure(args.quick)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
