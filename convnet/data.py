"""IDX files (MNIST's format), the bundled MNIST copy, normalisation and batches."""

from __future__ import annotations

import gzip
import hashlib
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .errors import DataFormatError

__all__ = ["read_idx", "load_dataset", "normalize", "batch_indices", "Dataset",
           "BUNDLED_MNIST", "MNIST_MEAN", "MNIST_STD"]

#: Folder of the MNIST files shipped inside the package.
BUNDLED_MNIST = Path(__file__).resolve().parent / "data" / "mnist"

#: MD5 of each bundled file, as published with the data set (checked at load).
BUNDLED_MD5 = {
    "train-images-idx3-ubyte.gz": "f68b3c2dcbeaaa9fbdd348bbdeb94873",
    "train-labels-idx1-ubyte.gz": "d53e105ee54ea40749a09fcbcd1e9432",
    "t10k-images-idx3-ubyte.gz": "9fb629c4189551a2d022fa330f9573f3",
    "t10k-labels-idx1-ubyte.gz": "ec29112dd5afa0611ce80d1b7f02629c",
}

#: Normalisation of the PyTorch MNIST example (and the seed).
MNIST_MEAN = 0.1307
MNIST_STD = 0.3081

# IDX type byte -> big-endian NumPy dtype.
_IDX_TYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}

_STEMS = {"train_images": "train-images-idx3-ubyte", "train_labels": "train-labels-idx1-ubyte",
          "test_images": "t10k-images-idx3-ubyte", "test_labels": "t10k-labels-idx1-ubyte"}


def _read_bytes(path):
    with open(path, "rb") as f:
        head = f.read(2)
    if head == b"\x1f\x8b":
        try:
            with gzip.open(path, "rb") as f:
                return f.read()
        except (EOFError, OSError, zlib.error) as err:
            raise DataFormatError(
                f"{path}: the gzip stream is truncated or corrupted ({err}); "
                f"copy the file again", param="path", value=str(path),
                expected="a complete gzip file") from None
    with open(path, "rb") as f:
        return f.read()


def read_idx(path):
    """Read an IDX file (raw or gzip-compressed) into a NumPy array.

    Checks the magic number (two zero bytes, a known type code, the number of
    dimensions), the dimensions and that the payload length matches them
    exactly; errors name the file.

    Parameters
    ----------
    path : str or path-like

    Returns
    -------
    ndarray
        In native byte order (uint8 for MNIST).

    Raises
    ------
    convnet.errors.DataFormatError
        Missing, truncated or foreign file.

    Examples
    --------
    >>> import tempfile, os
    >>> folder = tempfile.mkdtemp()
    >>> path = os.path.join(folder, "tiny-idx1-ubyte")
    >>> with open(path, "wb") as f:
    ...     _ = f.write(bytes([0, 0, 8, 1, 0, 0, 0, 3, 7, 8, 9]))
    >>> read_idx(path)
    array([7, 8, 9], dtype=uint8)
    """
    path = Path(path)
    if not path.is_file():
        raise DataFormatError(f"{path}: no such file", param="path", value=str(path),
                              expected="an existing IDX file")
    data = _read_bytes(path)
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] not in _IDX_TYPES:
        raise DataFormatError(
            f"{path}: not an IDX file (magic bytes {data[:4].hex() or 'missing'}; expected "
            f"00 00, a type code in {sorted(hex(t) for t in _IDX_TYPES)} and a dimension count)",
            param="path", value=str(path), expected="IDX magic number 0x000008NN")
    ndim = data[3]
    header = 4 + 4 * ndim
    if ndim == 0 or len(data) < header:
        raise DataFormatError(
            f"{path}: IDX header declares {ndim} dimension(s) but the file has only "
            f"{len(data)} bytes", param="path", value=str(path), expected="a complete header")
    dims = tuple(int.from_bytes(data[4 + 4 * i:8 + 4 * i], "big") for i in range(ndim))
    dtype = np.dtype(_IDX_TYPES[data[2]])
    expected = header + int(np.prod(dims, dtype=np.int64)) * dtype.itemsize
    if len(data) != expected:
        what = "truncated" if len(data) < expected else "longer than its header says"
        raise DataFormatError(
            f"{path}: file is {what}: dimensions {dims} of {dtype.name} need {expected} bytes, "
            f"found {len(data)}", param="path", value=str(path), expected=f"{expected} bytes")
    array = np.frombuffer(data, dtype=dtype, offset=header).reshape(dims)
    return array.astype(dtype.newbyteorder("="), copy=False)


def _md5(path):
    digest = hashlib.md5()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _find(folder, stem):
    for name in (stem + ".gz", stem):
        if (folder / name).is_file():
            return folder / name
    raise DataFormatError(
        f"{folder}: no {stem}.gz or {stem} file; a data folder holds the four MNIST-layout "
        f"IDX files ({', '.join(s + '[.gz]' for s in _STEMS.values())})",
        param="data", value=str(folder), expected="folder with the four IDX files")


@dataclass(frozen=True)
class Dataset:
    """Images (N, 28, 28) uint8 and labels (N,) for training and test."""

    train_images: np.ndarray
    train_labels: np.ndarray
    test_images: np.ndarray
    test_labels: np.ndarray
    source: str

    @property
    def num_classes(self):
        return int(max(self.train_labels.max(), self.test_labels.max())) + 1


def load_dataset(folder=None, *, verify=True):
    """Load the four IDX files of an MNIST-layout folder.

    Parameters
    ----------
    folder : str or path-like, optional
        Holds ``train-images-idx3-ubyte``, ``train-labels-idx1-ubyte``,
        ``t10k-images-idx3-ubyte`` and ``t10k-labels-idx1-ubyte``, each raw or
        ``.gz`` (e.g. Fashion-MNIST).  Default: the MNIST copy in the package,
        whose MD5 sums are checked.
    verify : bool, optional
        Check the bundled files' MD5 sums (default True).

    Returns
    -------
    Dataset

    Raises
    ------
    convnet.errors.DataFormatError
        Missing, truncated, foreign or altered files, or images and labels that
        do not match.
    """
    bundled = folder is None
    folder = BUNDLED_MNIST if bundled else Path(folder)
    if not folder.is_dir():
        raise DataFormatError(f"data={str(folder)!r} is not a folder", param="data",
                              value=str(folder), expected="a folder of IDX files")
    arrays = {}
    for key, stem in _STEMS.items():
        path = _find(folder, stem)
        if bundled and verify and _md5(path) != BUNDLED_MD5.get(path.name):
            raise DataFormatError(
                f"{path}: MD5 {_md5(path)} differs from the published "
                f"{BUNDLED_MD5.get(path.name)}; the bundled MNIST file was altered "
                f"(reinstall the package)", param="path", value=str(path),
                expected=BUNDLED_MD5.get(path.name))
        arrays[key] = read_idx(path)
    for split in ("train", "test"):
        images, labels = arrays[f"{split}_images"], arrays[f"{split}_labels"]
        if images.ndim != 3 or labels.ndim != 1 or len(images) != len(labels):
            raise DataFormatError(
                f"{folder}: {split} images have shape {images.shape} and labels "
                f"{labels.shape}; expected (N, rows, cols) images and N labels",
                param="data", value=(images.shape, labels.shape), expected="(N, H, W) and (N,)")
    return Dataset(source=str(folder), **arrays)


def normalize(images, mean=MNIST_MEAN, std=MNIST_STD):
    """uint8 images (N, H, W) -> float32 (N, 1, H, W), ``(x / 255 - mean) / std``.

    Examples
    --------
    >>> import numpy as np
    >>> normalize(np.array([[[0, 255]]], np.uint8)).round(4)
    array([[[[-0.4242,  2.8215]]]], dtype=float32)
    """
    images = np.asarray(images)
    scaled = images.astype(np.float32) / np.float32(255)
    return ((scaled - np.float32(mean)) / np.float32(std))[:, None]


def batch_indices(n, batch_size, seed, epoch):
    """Index arrays of the batches of one epoch: a fresh permutation per epoch.

    The permutation depends only on (seed, epoch), so a resumed run sees the
    same batches as an uninterrupted one.

    Examples
    --------
    >>> [b.tolist() for b in batch_indices(5, 2, seed=0, epoch=0)]
    [[2, 4], [3, 0], [1]]
    """
    order = np.random.default_rng([seed, epoch]).permutation(n)
    return [order[i:i + batch_size] for i in range(0, n, batch_size)]
