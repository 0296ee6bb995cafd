"""Train LeNet on MNIST (or any MNIST-layout IDX folder): ``python -m convnet.train``.

Per epoch: a tqdm progress bar with the running loss, then one line as in the
seed (epoch, training accuracy, validation accuracy) plus loss and seconds.
Writes into the output folder, after every epoch: ``checkpoint.npz`` (atomic),
``metrics.csv``, ``curves.png`` and ``conv1_filters.png``.  Ctrl-C saves a
checkpoint mid-epoch and exits; ``--resume`` continues exactly where it
stopped.  "Validation" is the official test set, as in the seed.
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import json
import math
import os
import resource
import sys
import time
from datetime import datetime
from pathlib import Path

import numba
import numpy as np

from . import functional as F
from ._malloc import keep_freed_memory
from .checkpoint import load_checkpoint, save_checkpoint
from .data import batch_indices, load_dataset, normalize
from .errors import ConvNetError, ConvNetValueError, TrainingDivergedError
from .evaluate import evaluate_model
from .model import LeNet
from .optim import SGD, Adam, cosine_lr

__all__ = ["TrainConfig", "PRESETS", "train", "warm_up", "main"]


@dataclasses.dataclass
class TrainConfig:
    """Everything that determines a training run (stored in its checkpoints)."""

    preset: str = "default"
    epochs: int = 10
    batch_size: int = 64
    lr: float = 0.05
    momentum: float = 0.9
    weight_decay: float = 5e-4
    optimizer: str = "sgd"
    schedule: str = "cosine"
    conv_bias: bool = True
    seed: int = 0
    data: str | None = None
    train_limit: int | None = None
    test_limit: int | None = None


#: ``default``: chosen by results (docs/convnet.md): >= 99 % in 10 epochs.
#: ``seed``: the seed's settings: plain SGD lr 0.01, batch 64, 30 epochs, no conv bias.
PRESETS = {
    "default": {},
    "seed": {"epochs": 30, "batch_size": 64, "lr": 0.01, "momentum": 0.0,
             "weight_decay": 0.0, "optimizer": "sgd", "schedule": "constant",
             "conv_bias": False},
}


def _make_optimizer(config, params):
    if config.optimizer == "sgd":
        return SGD(params, lr=config.lr, momentum=config.momentum,
                   weight_decay=config.weight_decay)
    if config.optimizer == "adam":
        return Adam(params, lr=config.lr, weight_decay=config.weight_decay)
    raise ConvNetValueError(f"optimizer={config.optimizer!r}; expected 'sgd' or 'adam'",
                            param="optimizer", value=config.optimizer,
                            expected=("sgd", "adam"))


def _check_config(config):
    for name in ("epochs", "batch_size"):
        value = getattr(config, name)
        if not isinstance(value, int) or value < 1:
            raise ConvNetValueError(f"{name}={value!r} must be an int >= 1", param=name,
                                    value=value, expected="int >= 1")
    if config.schedule not in ("cosine", "constant"):
        raise ConvNetValueError(f"schedule={config.schedule!r}; expected 'cosine' or "
                                f"'constant'", param="schedule", value=config.schedule,
                                expected=("cosine", "constant"))
    if not (math.isfinite(config.lr) and config.lr > 0):
        raise ConvNetValueError(f"lr={config.lr!r} must be a finite number > 0", param="lr",
                                value=config.lr, expected="> 0")


_METRIC_FIELDS = ["epoch", "train_loss", "train_acc", "val_loss", "val_acc", "lr", "seconds"]


def _write_metrics(out_dir, metrics):
    path = out_dir / "metrics.csv"
    tmp = path.with_suffix(".csv.tmp")
    with open(tmp, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=_METRIC_FIELDS)
        writer.writeheader()
        for row in metrics:
            writer.writerow({k: row[k] for k in _METRIC_FIELDS})
    os.replace(tmp, path)


def _write_plots(out_dir, metrics, model):
    from .plotting import plot_filters, plot_training_curves

    plot_training_curves(metrics, out_dir / "curves.png")
    plot_filters(model["conv1"].weight.data, out_dir / "conv1_filters.png")


def _save(out_dir, model, optimizer, config, progress_state, metrics):
    meta = {"config": dataclasses.asdict(config), "model": model.config(),
            "metrics": metrics, **progress_state}
    save_checkpoint(out_dir / "checkpoint.npz", model.state_dict(), optimizer.state_dict(),
                    meta)


def train(config, out_dir, *, resume=None, epochs=None, progress=None, log=print):
    """Train LeNet as `config` says, writing checkpoints, metrics and plots to `out_dir`.

    Parameters
    ----------
    config : TrainConfig or None
        Ignored where `resume` is given: the checkpoint's own configuration is
        used.
    out_dir : str or path-like
    resume : str or path-like, optional
        Checkpoint to continue from, with its optimiser state and position.
    epochs : int, optional
        Total number of epochs, overriding the configuration's (to extend a
        resumed run).
    progress : bool or None, optional
        tqdm progress bars; None shows them only on a terminal.
    log : callable, optional
        Receives each per-epoch line.

    Returns
    -------
    (LeNet, list of dict)
        The trained model and one metrics dict per epoch.

    Raises
    ------
    convnet.errors.TrainingDivergedError
        The loss became NaN or infinite (the last checkpoint is kept).
    KeyboardInterrupt
        After saving a mid-epoch checkpoint.
    """
    out_dir = Path(out_dir)
    config, state, metrics, checkpoint = _start_or_resume(config, resume, epochs)
    out_dir.mkdir(parents=True, exist_ok=True)
    with open(out_dir / "config.json", "w") as f:
        json.dump(dataclasses.asdict(config), f, indent=2)
    data = _load_data(config)
    model = LeNet(conv_bias=config.conv_bias, num_classes=max(10, data.num_classes),
                  rng=config.seed)
    optimizer = _make_optimizer(config, model.parameters())
    if checkpoint is not None:
        model.load_state_dict(checkpoint["model"])
        optimizer.load_state_dict(checkpoint["optimizer"])
    warm_up(model, config.batch_size)
    model.train()
    for epoch in range(state["epoch"], config.epochs):
        started = time.perf_counter() - state["epoch_seconds"]
        try:
            _train_epoch(model, optimizer, config, data, state, epoch, progress, out_dir)
        except KeyboardInterrupt:
            state.update(epoch=epoch, epoch_seconds=time.perf_counter() - started)
            _save(out_dir, model, optimizer, config, state, metrics)
            raise
        seconds = time.perf_counter() - started
        val_loss, val_acc, _ = evaluate_model(model, data.test_x, data.test_y)
        row = {"epoch": epoch + 1,
               "train_loss": state["loss_sum"] / max(state["seen"], 1),
               "train_acc": 100.0 * state["correct"] / max(state["seen"], 1),
               "val_loss": val_loss, "val_acc": val_acc, "lr": optimizer.lr,
               "seconds": seconds}
        metrics.append(row)
        state = _fresh_state(epoch + 1)
        _save(out_dir, model, optimizer, config, state, metrics)
        _write_metrics(out_dir, metrics)
        _write_plots(out_dir, metrics, model)
        log(f"{epoch + 1} Training accuracy {row['train_acc']:.1f}  Validation accuracy "
            f"{val_acc:.1f}  loss {row['train_loss']:.4f}  {seconds:.1f} s")
    return model, metrics


def _fresh_state(epoch):
    """Where a run stands: the epoch, the next batch, and the epoch's running sums."""
    return {"epoch": epoch, "batch": 0, "loss_sum": 0.0, "correct": 0, "seen": 0,
            "epoch_seconds": 0.0}


def _start_or_resume(config, resume, epochs):
    """(config, state, metrics, checkpoint or None) of a new run or of the checkpoint's."""
    state, metrics, checkpoint = _fresh_state(0), [], None
    if resume is not None:
        checkpoint = load_checkpoint(resume)
        meta = checkpoint["meta"]
        config = TrainConfig(**meta["config"])
        metrics = list(meta.get("metrics", []))
        state.update({k: meta[k] for k in state if k in meta})
    if epochs is not None:
        config = dataclasses.replace(config, epochs=epochs)
    _check_config(config)
    return config, state, metrics, checkpoint


@dataclasses.dataclass
class _Data:
    train_x: np.ndarray
    train_y: np.ndarray
    test_x: np.ndarray
    test_y: np.ndarray
    num_classes: int


def _load_data(config):
    data = load_dataset(config.data)
    return _Data(normalize(data.train_images[:config.train_limit]),
                 data.train_labels[:config.train_limit].astype(np.intp),
                 normalize(data.test_images[:config.test_limit]),
                 data.test_labels[:config.test_limit].astype(np.intp), data.num_classes)


def warm_up(model, batch_size):
    """Compile (or load from the disk cache) every kernel a training step and an
    evaluation use, before the first epoch's clock starts.

    One forward and backward pass in training mode at `batch_size`, and one
    forward pass in inference mode, on zeros; the weights are not changed (the
    gradients are overwritten by the next step anyway).
    """
    was_training = model.training
    x = np.zeros((batch_size, model.in_channels, 28, 28), model["conv1"].weight.data.dtype)
    try:
        logits = model.train().forward(x)
        model.backward(np.zeros_like(logits), input_grad=False)
        model.eval().forward(x[:1])
    finally:
        model.train(was_training)


def _train_epoch(model, optimizer, config, data, state, epoch, progress, out_dir):
    """Run the epoch's batches from ``state["batch"]``, adding to the running sums in `state`."""
    from tqdm.auto import tqdm

    n = len(data.train_x)
    batches = batch_indices(n, config.batch_size, config.seed, epoch)
    total_steps = len(batches) * config.epochs
    bar = tqdm(total=len(batches), initial=state["batch"], leave=False, unit="batch",
               desc=f"epoch {epoch + 1}/{config.epochs}", disable=progress is False
               or (progress is None and not sys.stderr.isatty()), mininterval=0.5)
    try:
        for b in range(state["batch"], len(batches)):
            state["batch"] = b
            index = batches[b]
            if config.schedule == "cosine":
                optimizer.lr = cosine_lr(config.lr, optimizer.steps, total_steps)
            logits = model.forward(data.train_x[index])
            loss, dlogits = F.softmax_cross_entropy(logits, data.train_y[index])
            if not math.isfinite(loss):
                raise TrainingDivergedError(
                    f"the training loss became {loss} at epoch {epoch + 1}, batch {b + 1} "
                    f"(lr {optimizer.lr:g}); the last good checkpoint in {out_dir} is "
                    f"kept. Lower --lr and train again.")
            model.backward(dlogits, input_grad=False)
            optimizer.step()
            state["loss_sum"] += loss * len(index)
            state["correct"] += int(np.count_nonzero(logits.argmax(axis=1)
                                                     == data.train_y[index]))
            state["seen"] += len(index)
            bar.update(1)
            if b % 20 == 0:
                bar.set_postfix(loss=f"{state['loss_sum'] / state['seen']:.4f}", refresh=False)
    finally:
        bar.close()


def _parser():
    p = argparse.ArgumentParser(
        prog="python -m convnet.train",
        description="Train the seed's LeNet (stencil convolutions, hand-written backprop) "
                    "on MNIST.  Defaults: the 'default' preset (SGD momentum 0.9, lr 0.05 "
                    "with cosine decay, weight decay 5e-4, batch 64, 10 epochs, conv bias).")
    p.add_argument("--preset", choices=sorted(PRESETS), default="default",
                   help="'seed': plain SGD, lr 0.01, batch 64, 30 epochs, no conv bias")
    p.add_argument("--epochs", type=int, help="number of epochs (total, also when resuming)")
    p.add_argument("--batch-size", type=int)
    p.add_argument("--lr", type=float, help="(initial) learning rate")
    p.add_argument("--momentum", type=float)
    p.add_argument("--weight-decay", type=float)
    p.add_argument("--optimizer", choices=["sgd", "adam"])
    p.add_argument("--schedule", choices=["cosine", "constant"],
                   help="learning-rate schedule over the whole run")
    p.add_argument("--seed", type=int, help="initial weights and batch order (default 0)")
    p.add_argument("--threads", type=int,
                   help=f"Numba threads (1..{numba.config.NUMBA_NUM_THREADS}; default all)")
    p.add_argument("--data", help="folder of MNIST-layout IDX files, raw or .gz "
                                  "(default: the MNIST copy inside the package)")
    p.add_argument("--out", help="output folder (default: a new folder under runs/, or the "
                                 "checkpoint's folder with --resume)")
    p.add_argument("--resume", metavar="CHECKPOINT",
                   help="continue from a checkpoint (file or run folder)")
    p.add_argument("--train-limit", type=int, help="use only the first N training images")
    p.add_argument("--test-limit", type=int, help="use only the first N test images")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    return p


def _config_from_args(args):
    values = dict(PRESETS[args.preset], preset=args.preset)
    for field in ("epochs", "batch_size", "lr", "momentum", "weight_decay", "optimizer",
                  "schedule", "seed", "data", "train_limit", "test_limit"):
        value = getattr(args, field)
        if value is not None:
            values[field] = str(Path(value).resolve()) if field == "data" else value
    return TrainConfig(**values)


def main(argv=None):
    # Idle OpenMP workers sleep instead of spinning: on a machine whose cores are shared
    # (other processes, or more threads than cores) spinning workers starve the one that
    # still has work, and a step of many short parallel kernels slows down several-fold.
    # Only effective before Numba starts its thread pool (the first parallel kernel).
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    keep_freed_memory()  # no page faults on each step's fresh arrays
    args = _parser().parse_args(argv)
    if args.threads is not None:
        if not 1 <= args.threads <= numba.config.NUMBA_NUM_THREADS:
            print(f"error: --threads {args.threads}: expected 1..{numba.config.NUMBA_NUM_THREADS}"
                  f" (NUMBA_NUM_THREADS caps it)", file=sys.stderr)
            return 2
        numba.set_num_threads(args.threads)
    config = _config_from_args(args)
    if args.out is not None:
        out_dir = Path(args.out)
    elif args.resume is not None:
        resume = Path(args.resume)
        out_dir = resume if resume.is_dir() else resume.parent
    else:
        out_dir = Path("runs") / f"{datetime.now():%Y%m%d-%H%M%S}-{config.preset}"
    what = f"resuming {args.resume}" if args.resume is not None else f"preset {config.preset!r}"
    print(f"LeNet, {what}, output {out_dir}, "
          f"{numba.get_num_threads()} thread(s); kernels compile before the first epoch "
          f"(cached on disk after the first run)", flush=True)
    try:
        train(config, out_dir, resume=args.resume,
              epochs=args.epochs if args.resume is not None else None,
              progress=False if args.no_progress else None)
    except KeyboardInterrupt:
        print(f"\ninterrupted: checkpoint saved to {out_dir / 'checkpoint.npz'}; continue "
              f"with --resume {out_dir / 'checkpoint.npz'}", file=sys.stderr)
        return 130
    except TrainingDivergedError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    except ConvNetError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
    print(f"done: {out_dir} (peak resident memory {peak:.0f} MB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
