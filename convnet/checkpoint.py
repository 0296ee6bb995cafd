"""Checkpoints: model parameters, optimiser state and run metadata in one .npz file.

Written atomically (temporary file in the same folder, fsync, ``os.replace``),
so a crash or Ctrl-C while saving leaves the previous checkpoint intact.  Read
without pickle; a truncated or corrupted file raises `CheckpointError`.
"""

from __future__ import annotations

import json
import os
import tempfile
import zipfile
import zlib
from pathlib import Path

import numpy as np

from .errors import CheckpointError

__all__ = ["save_checkpoint", "load_checkpoint", "FORMAT"]

#: Identifies our checkpoints (and their layout version) inside the file.
FORMAT = "convnet-checkpoint-1"


def save_checkpoint(path, model_state, optimizer_state, meta):
    """Write a checkpoint atomically.

    Parameters
    ----------
    path : str or path-like
        Destination ``.npz`` file; replaced only once the new one is complete.
    model_state : mapping name -> ndarray
        From ``model.state_dict()``.
    optimizer_state : dict
        From ``optimizer.state_dict()``.
    meta : dict
        JSON-serialisable run information (epoch, configuration, metrics...).

    Examples
    --------
    >>> import numpy as np, tempfile, os
    >>> path = os.path.join(tempfile.mkdtemp(), "ck.npz")
    >>> save_checkpoint(path, {"w": np.ones(2)}, {"hyper": {}, "steps": 3, "arrays": {}},
    ...                 {"epoch": 1})
    >>> load_checkpoint(path)["model"]["w"]
    array([1., 1.])
    """
    path = Path(path)
    arrays = {f"model/{name}": np.asarray(value) for name, value in model_state.items()}
    arrays.update({f"optim/{name}": np.asarray(value)
                   for name, value in optimizer_state["arrays"].items()})
    header = {"format": FORMAT, "meta": meta,
              "optimizer": {k: v for k, v in optimizer_state.items() if k != "arrays"}}
    arrays["header"] = np.frombuffer(json.dumps(header).encode(), dtype=np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name + ".", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez(f, **arrays)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise
    try:  # make the rename itself durable; not every platform allows it
        dir_fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
    except OSError:
        pass


def load_checkpoint(path):
    """Read a checkpoint written by `save_checkpoint`.

    Returns
    -------
    dict
        ``{"model": {name: array}, "optimizer": {"hyper", "steps", "arrays"},
        "meta": dict}``.

    Raises
    ------
    convnet.errors.CheckpointError
        Missing, truncated, corrupted or foreign file (the message names it).
    """
    path = Path(path)
    if path.is_dir():
        path = path / "checkpoint.npz"
    if not path.is_file():
        raise CheckpointError(f"{path}: no such checkpoint file", param="checkpoint",
                              value=str(path), expected="an existing .npz checkpoint")
    try:
        with np.load(path, allow_pickle=False) as npz:
            data = {key: npz[key] for key in npz.files}
        header = json.loads(bytes(data.pop("header")).decode())
    except (zipfile.BadZipFile, zlib.error, EOFError, OSError, ValueError, KeyError,
            UnicodeDecodeError) as err:
        raise CheckpointError(
            f"{path}: not a readable checkpoint (truncated or corrupted?): {err}",
            param="checkpoint", value=str(path), expected="a complete convnet checkpoint") \
            from None
    if not isinstance(header, dict) or header.get("format") != FORMAT:
        raise CheckpointError(
            f"{path}: not a convnet checkpoint (format {header.get('format')!r}, "
            f"expected {FORMAT!r})", param="checkpoint", value=str(path), expected=FORMAT)
    model = {k[len("model/"):]: v for k, v in data.items() if k.startswith("model/")}
    optim_arrays = {k[len("optim/"):]: v for k, v in data.items() if k.startswith("optim/")}
    optimizer = dict(header.get("optimizer", {}), arrays=optim_arrays)
    return {"model": model, "optimizer": optimizer, "meta": header.get("meta", {}),
            "path": str(path)}
