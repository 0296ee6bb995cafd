"""Test accuracy and confusion matrix of a checkpoint: ``python -m convnet.evaluate CHECKPOINT``."""

from __future__ import annotations

import argparse
import sys

import numpy as np

from . import functional as F
from ._malloc import keep_freed_memory
from .checkpoint import load_checkpoint
from .data import load_dataset, normalize
from .errors import ConvNetError
from .model import LeNet

__all__ = ["evaluate_model", "confusion_matrix", "load_model", "main"]


def load_model(checkpoint):
    """Rebuild the LeNet stored in a checkpoint (a path or `load_checkpoint`'s dict).

    Returns
    -------
    (LeNet, dict)
        The model in eval mode and the checkpoint's metadata.
    """
    if not isinstance(checkpoint, dict):
        checkpoint = load_checkpoint(checkpoint)
    meta = checkpoint["meta"]
    model = LeNet(**meta.get("model", {}), rng=0)
    model.load_state_dict(checkpoint["model"])
    return model.eval(), meta


def evaluate_model(model, images, labels, batch_size=1000):
    """Mean cross-entropy, accuracy in percent and predicted classes, in eval mode.

    Parameters
    ----------
    model : convnet.layers.Module
    images : ndarray, shape (N, 1, 28, 28), normalised
    labels : ndarray of int, shape (N,)
    batch_size : int, optional

    Returns
    -------
    (float, float, ndarray)
    """
    was_training = model.training
    model.eval()
    total_loss, predictions = 0.0, []
    try:
        for start in range(0, len(images), batch_size):
            logits = model.forward(images[start:start + batch_size])
            target = labels[start:start + batch_size]
            loss, _ = F.softmax_cross_entropy(logits, target)
            total_loss += loss * len(target)
            predictions.append(logits.argmax(axis=1))
    finally:
        model.train(was_training)
    predicted = np.concatenate(predictions) if predictions else np.zeros(0, np.intp)
    if len(labels) == 0:
        return 0.0, 0.0, predicted
    return total_loss / len(labels), 100.0 * float(np.mean(predicted == labels)), predicted


def confusion_matrix(labels, predicted, num_classes):
    """Counts ``m[true, predicted]``.

    Examples
    --------
    >>> confusion_matrix([0, 1, 1], [0, 1, 0], 2)
    array([[1, 0],
           [1, 1]])
    """
    matrix = np.zeros((num_classes, num_classes), dtype=np.int64)
    np.add.at(matrix, (np.asarray(labels), np.asarray(predicted)), 1)
    return matrix


def _format_matrix(matrix):
    width = max(5, len(str(matrix.max())) + 1)
    head = "true\\pred" + "".join(f"{j:>{width}}" for j in range(matrix.shape[1]))
    rows = [f"{i:>9}" + "".join(f"{v:>{width}}" for v in row) for i, row in enumerate(matrix)]
    return "\n".join([head] + rows)


def main(argv=None):
    parser = argparse.ArgumentParser(
        prog="python -m convnet.evaluate",
        description="Test accuracy and confusion matrix of a trained LeNet checkpoint.")
    parser.add_argument("checkpoint", help="checkpoint.npz written by convnet.train (or its folder)")
    parser.add_argument("--data", default=None,
                        help="folder of MNIST-layout IDX files (default: the checkpoint's data, "
                             "else the bundled MNIST)")
    parser.add_argument("--batch-size", type=int, default=1000)
    args = parser.parse_args(argv)
    keep_freed_memory()
    try:
        model, meta = load_model(args.checkpoint)
        data = load_dataset(args.data if args.data is not None
                            else meta.get("config", {}).get("data"))
    except ConvNetError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    labels = data.test_labels.astype(np.intp)
    loss, acc, predicted = evaluate_model(model, normalize(data.test_images), labels,
                                          args.batch_size)
    print(f"checkpoint {args.checkpoint} (epoch {meta.get('epoch')}), data {data.source}")
    print(f"test loss {loss:.4f}  test accuracy {acc:.2f} % "
          f"({int(np.sum(predicted == labels))}/{len(labels)})")
    print("confusion matrix (rows: true class, columns: predicted):")
    print(_format_matrix(confusion_matrix(labels, predicted, model.num_classes)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
