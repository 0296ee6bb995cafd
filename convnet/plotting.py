"""Training curves and learned filters as PNG files (matplotlib's Figure API, no display)."""

from __future__ import annotations

import numpy as np

__all__ = ["plot_training_curves", "plot_filters"]


def _figure(**kwargs):
    # Figure without pyplot: no global state, no backend selection, works headless.
    from matplotlib.figure import Figure

    return Figure(**kwargs)


def plot_training_curves(metrics, path):
    """Loss and accuracy per epoch (training and validation) into a PNG.

    Parameters
    ----------
    metrics : list of dict
        One dict per epoch with keys ``epoch``, ``train_loss``, ``val_loss``,
        ``train_acc``, ``val_acc`` (accuracies in percent).
    path : str or path-like
    """
    epochs = [m["epoch"] for m in metrics]
    fig = _figure(figsize=(10, 4), layout="constrained")
    loss_ax, acc_ax = fig.subplots(1, 2)
    loss_ax.plot(epochs, [m["train_loss"] for m in metrics], "o-", label="training")
    loss_ax.plot(epochs, [m["val_loss"] for m in metrics], "s-", label="validation")
    loss_ax.set(xlabel="epoch", ylabel="cross-entropy loss", yscale="log", title="Loss")
    acc_ax.plot(epochs, [m["train_acc"] for m in metrics], "o-", label="training")
    acc_ax.plot(epochs, [m["val_acc"] for m in metrics], "s-", label="validation")
    acc_ax.set(xlabel="epoch", ylabel="accuracy (%)", title="Accuracy")
    for ax in (loss_ax, acc_ax):
        ax.grid(True, alpha=0.3)
        ax.legend()
    fig.savefig(path, dpi=100)


def plot_filters(weights, path, title="conv1 filters"):
    """The kernels of a convolution layer (O, C, KH, KW), first input channel, as images."""
    weights = np.asarray(weights)
    count = weights.shape[0]
    fig = _figure(figsize=(1.6 * count, 2.0), layout="constrained")
    axes = np.atleast_1d(fig.subplots(1, count))
    limit = float(np.abs(weights).max()) or 1.0
    for o, ax in enumerate(axes):
        ax.imshow(weights[o, 0], cmap="RdBu_r", vmin=-limit, vmax=limit)
        ax.set_title(f"{o}")
        ax.set_xticks([])
        ax.set_yticks([])
    fig.suptitle(title)
    fig.savefig(path, dpi=100)
