"""Classify digit images: ``python -m convnet.predict CHECKPOINT IMAGE...``."""

from __future__ import annotations

import argparse
import sys

import numpy as np

from .data import normalize
from .errors import ConvNetError, DataFormatError
from .evaluate import load_model

__all__ = ["load_digit", "main"]


def load_digit(path, invert="auto"):
    """Read an image file as a 28x28 uint8 MNIST-style digit (light on dark).

    Parameters
    ----------
    path : str or path-like
        Any format Pillow reads (PNG, JPEG...); colour is converted to grey and
        other sizes are resized to 28x28.
    invert : {'auto', True, False}, optional
        MNIST digits are white on black; 'auto' inverts images whose mean grey
        level is above the middle (dark ink on white paper).

    Returns
    -------
    ndarray of uint8, shape (28, 28)
    """
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as image:
            grey = image.convert("L")
            if grey.size != (28, 28):
                grey = grey.resize((28, 28), Image.Resampling.LANCZOS)
            pixels = np.asarray(grey, dtype=np.uint8)
    except (OSError, UnidentifiedImageError) as err:
        raise DataFormatError(f"{path}: not a readable image ({err})", param="image",
                              value=str(path), expected="a PNG (or other Pillow) image") \
            from None
    if invert == "auto":
        invert = pixels.mean() > 127
    return 255 - pixels if invert else pixels


def main(argv=None):
    parser = argparse.ArgumentParser(
        prog="python -m convnet.predict",
        description="Classify images of handwritten digits with a trained LeNet checkpoint.")
    parser.add_argument("checkpoint", help="checkpoint.npz written by convnet.train")
    parser.add_argument("images", nargs="+", metavar="IMAGE", help="PNG files of digits")
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--invert", dest="invert", action="store_const", const=True,
                       default="auto", help="always invert (dark digit on light background)")
    group.add_argument("--no-invert", dest="invert", action="store_const", const=False,
                       help="never invert (light digit on dark background, as MNIST)")
    args = parser.parse_args(argv)
    try:
        model, _ = load_model(args.checkpoint)
        digits = np.stack([load_digit(path, args.invert) for path in args.images])
    except ConvNetError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    probabilities = model.predict_proba(normalize(digits))
    for path, probs in zip(args.images, probabilities):
        best = int(np.argmax(probs))
        listing = " ".join(f"{k}:{p:.3f}" for k, p in enumerate(probs))
        print(f"{path}: {best} (probability {probs[best]:.3f})  [{listing}]")
    return 0


if __name__ == "__main__":
    sys.exit(main())
