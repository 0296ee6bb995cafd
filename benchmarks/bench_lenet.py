"""LeNet training epoch and inference: convnet (stencils + Numba) against PyTorch CPU.

``python -m benchmarks.bench_lenet [--threads 2] [--repeats 2] [--quick]``

Both run in this process, alternately, on the same data: one training epoch
of 60,000 MNIST images at batch 64 (SGD with momentum, the default preset's
optimiser; the last batch 32), then inference over the 10,000 test images at
batch 1000.  Compilation and the stencil engine's kernel generation happen in
a warm-up before any timing.  Prints medians and the ratio ours / torch (below
1 means ours is faster).  ``--quick`` times 200 steps instead of an epoch.

Then, each in fresh processes (what a user meets first; kernels from the
disk cache as a second run finds them):

- 16 training steps, 1 warm-up and 15 timed, ours against torch's (target:
  ours <= 1.0x);
- ``python -m convnet.train`` for two epochs: the first epoch's seconds over
  the second's (target: <= 1.10).  ``--quick`` trains on 6,400 images.

The machines are shared and noisy: only the ratio in one run means much.
"""

from __future__ import annotations

import os

# As convnet.train does (and before torch loads its OpenMP runtime, so both sides get it):
# idle OpenMP workers sleep instead of spinning, which matters on shared cores.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import argparse  # noqa: E402
import csv  # noqa: E402
import platform  # noqa: E402
import resource  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402

import numba  # noqa: E402
import numpy as np  # noqa: E402

from convnet import SGD, LeNet  # noqa: E402
from convnet import functional as F  # noqa: E402
from convnet import keep_freed_memory  # noqa: E402
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


FRESH_STEPS = 16  # 1 warm-up + 15 timed


def fresh_steps(name, threads):
    """Seconds of steps 2-16 of `name`'s trainer in this (fresh) process."""
    numba.set_num_threads(threads)
    if torch is not None:
        torch.set_num_threads(threads)
    data = load_dataset()
    batches = batch_indices(len(data.train_images), BATCH, seed=0, epoch=0)[:FRESH_STEPS]
    images = normalize(data.train_images[np.concatenate(batches)])
    labels = data.train_labels[np.concatenate(batches)].astype(np.int64)
    step, _ = (ours_trainer if name == "convnet" else torch_trainer)()
    step(images[:BATCH], labels[:BATCH])
    start = time.perf_counter()
    for s in range(BATCH, FRESH_STEPS * BATCH, BATCH):
        step(images[s:s + BATCH], labels[s:s + BATCH])
    return time.perf_counter() - start


def _python(args, timeout):
    """Run ``python args`` from the repository root; its stdout."""
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        [root] + [p for p in [os.environ.get("PYTHONPATH")] if p]))
    done = subprocess.run([sys.executable] + args, cwd=root, env=env, capture_output=True,
                          text=True, timeout=timeout, check=True)
    return done.stdout


def time_fresh_steps(names, threads, repeats):
    """Per implementation, the seconds of 15 steps after 1 warm-up, each in a new process."""
    times = {name: [] for name in names}
    for repeat in range(repeats):
        for name in (names if repeat % 2 == 0 else list(reversed(names))):
            out = _python(["-m", "benchmarks.bench_lenet", "--fresh-steps", name,
                           "--threads", str(threads)], timeout=600)
            times[name].append(float(out.split()[-1]))
    return times


def time_first_epochs(threads, quick):
    """Seconds of the first two epochs of ``python -m convnet.train`` in a new process."""
    with tempfile.TemporaryDirectory() as out:
        _python(["-m", "convnet.train", "--epochs", "2", "--no-progress", "--threads",
                 str(threads), "--out", out] + (["--train-limit", "6400"] if quick else []),
                timeout=1800)
        with open(os.path.join(out, "metrics.csv")) as f:
            return [float(row["seconds"]) for row in csv.DictReader(f)]


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m benchmarks.bench_lenet",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=2, help="timed epochs per implementation")
    parser.add_argument("--quick", action="store_true", help="time 200 steps, not an epoch")
    parser.add_argument("--json", help="also write the numbers to this file")
    parser.add_argument("--fresh-steps", choices=["convnet", "torch"],
                        help="(internal) print the seconds of steps 2-16 in this process")
    args = parser.parse_args(argv)
    # As convnet.train does, for both sides: glibc keeps freed memory mapped, so a
    # step's fresh arrays are not faulted in page by page (750 faults a step of ours).
    keep_freed_memory()
    if args.fresh_steps:
        print(fresh_steps(args.fresh_steps, args.threads))
        return 0

    numba.set_num_threads(args.threads)
    summary = time_in_process(args)
    fresh = time_fresh(args)
    summary.update(fresh)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak resident memory of this process (both implementations): {peak:.0f} MB")
    summary["peak_rss_mb_both"] = peak
    summary["threads"] = args.threads
    if args.json:
        write_rows(args.json, summary, args.quick)
    return 0


def time_in_process(args):
    """Training epochs and inference of both, alternating in this process, after warm-up."""
    data = load_dataset()
    images = normalize(data.train_images)
    labels = data.train_labels.astype(np.int64)
    test_images = normalize(data.test_images)
    impls = {"convnet": ours_trainer()}
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
        print(f"\ntraining time ours / torch: {ratio:.2f}x (target <= 0.7); "
              f"inference time ours / torch: {inf_ratio:.2f}x (target <= 0.7)")
        summary["ratio_train"] = ratio
        summary["ratio_inference"] = inf_ratio
    return summary


def time_fresh(args):
    """The fresh-process rows: 16 steps against torch's, and train's first two epochs."""
    names = ["convnet"] + (["torch"] if torch is not None else [])
    steps = time_fresh_steps(names, args.threads, args.repeats)
    epochs = time_first_epochs(args.threads, args.quick)
    print(f"\nfrom a fresh process, {args.threads} thread(s):")
    for name in names:
        print(f"  {FRESH_STEPS} steps (1 warm-up + {FRESH_STEPS - 1} timed), {name}: "
              f"{statistics.median(steps[name]) * 1e3:.0f} ms")
    result = {"fresh_steps": steps, "first_epochs": epochs}
    if "torch" in steps:
        ratio = statistics.median(steps["convnet"]) / statistics.median(steps["torch"])
        print(f"  ours / torch: {ratio:.2f}x (target <= 1.0)")
        result["ratio_fresh_steps"] = ratio
    ratio = epochs[0] / epochs[1]
    print(f"  python -m convnet.train: first epoch {epochs[0]:.2f} s, second {epochs[1]:.2f} s, "
          f"first / second {ratio:.2f} (target <= 1.10)")
    result["ratio_first_epoch"] = ratio
    return result


def write_rows(path, summary, quick):
    """The numbers in the harness's format, so `python -m benchmarks` merges them."""
    from ._harness import Result, environment, write_json

    what = "200 steps" if quick else "epoch (60,000 images)"
    rows = []
    impls = [name for name in ("convnet", "torch") if name in summary]
    for workload, key, desc in (("lenet-train", "train_all", f"training {what}"),
                                ("lenet-inference", "inference_all",
                                 f"inference, 10,000 images at batch {TEST_BATCH}")):
        for name in impls:
            rows.append(_row(workload, name, summary[name][key], desc))
    for name, times in summary["fresh_steps"].items():
        rows.append(_row("lenet-fresh-steps", name, times, f"{FRESH_STEPS} training steps "
                         f"from a fresh process: 1 warm-up, {FRESH_STEPS - 1} timed"))
    desc = "python -m convnet.train in a fresh process" + (", 6,400 images" if quick else "")
    for name, seconds in zip(("convnet first epoch", "convnet second epoch"),
                             summary["first_epochs"]):
        rows.append(_row("lenet-first-epoch", name, [seconds], desc))
    write_json(path, rows, environment(), extra={"lenet": summary})


def _row(workload, name, times, description):
    from ._harness import Result

    return Result(workload, name, statistics.median(times), min(times), max(times), len(times),
                  "reference" if name.startswith("convnet") and "second" not in name
                  else "not checked", group="lenet", description=description)


if __name__ == "__main__":
    sys.exit(main())
