"""LeNet training epoch and inference: convnet (stencils + Numba) against PyTorch CPU.

``python -m benchmarks.bench_lenet [--threads 2] [--repeats 2] [--quick]``

Both run in this process, alternately, on the same data: one training epoch
of 60,000 MNIST images at batch 64 (SGD with momentum, the default preset's
optimiser; the last batch 32), then inference over the 10,000 test images at
batch 1000.  Compilation and the stencil engine's kernel generation happen in
a warm-up before any timing.  Prints medians and the ratio ours / torch (below
1 means ours is faster).  ``--quick`` times 200 steps instead of an epoch.
The machines are shared and noisy: only the ratio in one run means much.
"""

from __future__ import annotations

import os

# As convnet.train does (and before torch loads its OpenMP runtime, so both sides get it):
# idle OpenMP workers sleep instead of spinning, which matters on shared cores.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import argparse  # noqa: E402
import platform  # noqa: E402
import resource  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402

import numba  # noqa: E402
import numpy as np  # noqa: E402

from convnet import SGD, LeNet  # noqa: E402
from convnet import functional as F  # noqa: E402
from convnet.data import batch_indices, load_dataset, normalize  # noqa: E402

try:
    import torch
except ImportError:  # pragma: no cover - optional peer
    torch = None

BATCH = 64
TEST_BATCH = 1000


def ours_trainer(seed=0):
    net = LeNet(rng=seed)
    opt = SGD(net.parameters(), lr=0.01, momentum=0.9, weight_decay=5e-4)

    def step(x, y):
        loss, dlogits = F.softmax_cross_entropy(net.forward(x), y)
        net.backward(dlogits, input_grad=False)
        opt.step()
        return loss

    def infer(x):
        net.eval()
        try:
            return net.forward(x).argmax(axis=1)
        finally:
            net.train()

    return step, infer


def torch_trainer(seed=0):
    torch.manual_seed(seed)
    nn = torch.nn
    model = nn.Sequential(
        nn.Conv2d(1, 6, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(6, 16, 5), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
        nn.Linear(400, 120), nn.ReLU(), nn.Linear(120, 84), nn.ReLU(), nn.Linear(84, 10))
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=5e-4)

    def step(x, y):
        loss = nn.functional.cross_entropy(model(torch.from_numpy(x)), torch.from_numpy(y))
        opt.zero_grad()
        loss.backward()
        opt.step()
        return loss.item()

    def infer(x):
        with torch.no_grad():
            return model(torch.from_numpy(x)).argmax(dim=1).numpy()

    return step, infer


def time_epoch(step, images, labels, batches):
    start = time.perf_counter()
    for index in batches:
        step(images[index], labels[index])
    return time.perf_counter() - start


def time_inference(infer, images):
    start = time.perf_counter()
    for s in range(0, len(images), TEST_BATCH):
        infer(images[s:s + TEST_BATCH])
    return time.perf_counter() - start


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m benchmarks.bench_lenet",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=2, help="timed epochs per implementation")
    parser.add_argument("--quick", action="store_true", help="time 200 steps, not an epoch")
    parser.add_argument("--json", help="also write the numbers to this file")
    args = parser.parse_args(argv)

    numba.set_num_threads(args.threads)
    data = load_dataset()
    images = normalize(data.train_images)
    labels = data.train_labels.astype(np.int64)
    test_images = normalize(data.test_images)
    ours_step, ours_infer = ours_trainer()
    impls = {"convnet": (ours_step, ours_infer)}
    if torch is not None:
        torch.set_num_threads(args.threads)
        impls["torch"] = torch_trainer()

    # Warm-up: Numba compilation, and enough work for the stencil engine to switch
    # its pooling stencils from the interpreter to generated kernels.
    warm = batch_indices(len(images), BATCH, seed=99, epoch=0)[:400]
    for name, (step, infer) in impls.items():
        for index in warm[:400 if name == "convnet" else 50]:
            step(images[index], labels[index])
        for _ in range(3 if name == "convnet" else 1):
            time_inference(infer, test_images)

    epoch_times = {name: [] for name in impls}
    infer_times = {name: [] for name in impls}
    for repeat in range(args.repeats):
        batches = batch_indices(len(images), BATCH, seed=0, epoch=repeat)
        if args.quick:
            batches = batches[:200]
        order = list(impls) if repeat % 2 == 0 else list(reversed(impls))
        for name in order:
            step, infer = impls[name]
            epoch_times[name].append(time_epoch(step, images, labels, batches))
            infer_times[name].append(time_inference(infer, test_images))
            print(f"  repeat {repeat + 1} {name}: {epoch_times[name][-1]:.2f} s train, "
                  f"{infer_times[name][-1] * 1e3:.0f} ms inference", flush=True)

    steps = len(batches)
    what = "200 steps" if args.quick else "epoch (60,000 images)"
    print(f"\nLeNet, batch {BATCH}, {args.threads} thread(s) (numba {numba.__version__}, "
          f"{numba.threading_layer()} layer, OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY')};"
          f" torch "
          f"{torch.__version__ if torch else 'not installed'}), {platform.processor() or ''}")
    print(f"| implementation | training {what}, s | per step, ms | "
          f"inference, images/s (batch {TEST_BATCH}) |")
    print("|---|---|---|---|")
    summary = {}
    for name in impls:
        epoch = statistics.median(epoch_times[name])
        rate = len(test_images) / statistics.median(infer_times[name])
        summary[name] = {"train_seconds": epoch, "step_ms": 1e3 * epoch / steps,
                         "inference_images_per_s": rate, "train_all": epoch_times[name],
                         "inference_all": infer_times[name]}
        print(f"| {name} | {epoch:.2f} | {1e3 * epoch / steps:.2f} | {rate:,.0f} |")
    if "torch" in summary:
        ratio = summary["convnet"]["train_seconds"] / summary["torch"]["train_seconds"]
        inf_ratio = (summary["torch"]["inference_images_per_s"]
                     / summary["convnet"]["inference_images_per_s"])
        print(f"\ntraining time ours / torch: {ratio:.2f}x (<= 1.0 is the target); "
              f"inference time ours / torch: {inf_ratio:.2f}x")
        summary["ratio_train"] = ratio
        summary["ratio_inference"] = inf_ratio
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak resident memory of this process (both implementations): {peak:.0f} MB")
    summary["peak_rss_mb_both"] = peak
    summary["threads"] = args.threads
    if args.json:
        # The harness's format, so `python -m benchmarks` merges these rows into its table.
        from ._harness import Result, environment, write_json

        rows = []
        for workload, key, what in (("lenet-train", "train_all", f"training {what}"),
                                    ("lenet-inference", "inference_all",
                                     f"inference, 10,000 images at batch {TEST_BATCH}")):
            for name in impls:
                times = summary[name][key]
                rows.append(Result(workload, name, statistics.median(times), min(times),
                                   max(times), len(times), "reference" if name == "convnet"
                                   else "not checked", group="lenet", description=what))
        write_json(args.json, rows, environment(), extra={"lenet": summary})
    return 0


if __name__ == "__main__":
    sys.exit(main())
