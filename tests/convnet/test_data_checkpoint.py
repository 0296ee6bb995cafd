"""IDX reading, the bundled MNIST copy, batches, optimiser state and checkpoints."""

import gzip
import hashlib
import os
import shutil

import numpy as np
import pytest

from convnet import SGD, Adam, CheckpointError, DataFormatError, LeNet
from convnet.checkpoint import load_checkpoint, save_checkpoint
from convnet.data import (BUNDLED_MD5, BUNDLED_MNIST, batch_indices, load_dataset, normalize,
                          read_idx)


def write_idx(path, array, compress=False):
    array = np.asarray(array, np.uint8)
    header = bytes([0, 0, 8, array.ndim]) + b"".join(
        int(d).to_bytes(4, "big") for d in array.shape)
    data = header + array.tobytes()
    with (gzip.open(path, "wb") if compress else open(path, "wb")) as f:
        f.write(data)


def make_folder(folder, n_train=6, n_test=4, compress=True):
    rng = np.random.default_rng(0)
    suffix = ".gz" if compress else ""
    arrays = {
        "train-images-idx3-ubyte": rng.integers(0, 256, (n_train, 28, 28)),
        "train-labels-idx1-ubyte": rng.integers(0, 10, n_train),
        "t10k-images-idx3-ubyte": rng.integers(0, 256, (n_test, 28, 28)),
        "t10k-labels-idx1-ubyte": rng.integers(0, 10, n_test),
    }
    for stem, array in arrays.items():
        write_idx(folder / (stem + suffix), array, compress)
    return arrays


@pytest.mark.parametrize("compress", [False, True])
def test_read_idx_round_trip(tmp_path, compress):
    array = np.arange(24, dtype=np.uint8).reshape(2, 3, 4)
    write_idx(tmp_path / "a", array, compress)
    np.testing.assert_array_equal(read_idx(tmp_path / "a"), array)


def test_read_idx_other_types(tmp_path):
    data = bytes([0, 0, 0x0B, 1, 0, 0, 0, 2]) + np.array([-3, 500], ">i2").tobytes()
    (tmp_path / "s").write_bytes(data)
    out = read_idx(tmp_path / "s")
    np.testing.assert_array_equal(out, [-3, 500])
    assert out.dtype.isnative


def test_truncated_raw_file_names_the_file(tmp_path):
    write_idx(tmp_path / "t", np.zeros((3, 4, 4)))
    data = (tmp_path / "t").read_bytes()
    (tmp_path / "t").write_bytes(data[:-5])
    with pytest.raises(DataFormatError, match="truncated") as info:
        read_idx(tmp_path / "t")
    assert str(tmp_path / "t") in str(info.value)


def test_truncated_gzip(tmp_path):
    write_idx(tmp_path / "t.gz", np.arange(5000) % 256, compress=True)
    data = (tmp_path / "t.gz").read_bytes()
    (tmp_path / "t.gz").write_bytes(data[:len(data) // 2])
    with pytest.raises(DataFormatError, match="t.gz"):
        read_idx(tmp_path / "t.gz")


def test_too_long_and_foreign_files(tmp_path):
    write_idx(tmp_path / "long", np.zeros(4))
    with open(tmp_path / "long", "ab") as f:
        f.write(b"xx")
    with pytest.raises(DataFormatError, match="longer"):
        read_idx(tmp_path / "long")
    (tmp_path / "png").write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(20))
    with pytest.raises(DataFormatError, match="not an IDX file"):
        read_idx(tmp_path / "png")
    (tmp_path / "empty").write_bytes(b"")
    with pytest.raises(DataFormatError, match="not an IDX file"):
        read_idx(tmp_path / "empty")
    with pytest.raises(DataFormatError, match="no such file"):
        read_idx(tmp_path / "missing")
    assert issubclass(DataFormatError, ValueError)


def test_bundled_mnist_is_byte_identical():
    for name, md5 in BUNDLED_MD5.items():
        assert hashlib.md5((BUNDLED_MNIST / name).read_bytes()).hexdigest() == md5


def test_load_bundled_mnist():
    data = load_dataset()
    assert data.train_images.shape == (60000, 28, 28) and data.test_images.shape == (10000, 28, 28)
    assert data.train_images.dtype == np.uint8
    np.testing.assert_array_equal(np.bincount(data.test_labels),
                                  [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009])
    assert data.train_images.mean() == pytest.approx(33.3184, abs=1e-3)


@pytest.mark.parametrize("compress", [False, True])
def test_load_folder(tmp_path, compress):
    arrays = make_folder(tmp_path, compress=compress)
    data = load_dataset(tmp_path)
    np.testing.assert_array_equal(data.train_labels, arrays["train-labels-idx1-ubyte"])
    np.testing.assert_array_equal(data.test_images, arrays["t10k-images-idx3-ubyte"])


def test_load_folder_errors(tmp_path):
    with pytest.raises(DataFormatError, match="not a folder"):
        load_dataset(tmp_path / "nope")
    make_folder(tmp_path)
    os.remove(tmp_path / "t10k-labels-idx1-ubyte.gz")
    with pytest.raises(DataFormatError, match="t10k-labels-idx1-ubyte"):
        load_dataset(tmp_path)
    write_idx(tmp_path / "t10k-labels-idx1-ubyte", np.zeros(3))  # 4 test images
    with pytest.raises(DataFormatError, match="labels"):
        load_dataset(tmp_path)


def test_normalize():
    out = normalize(np.array([[[0, 255]]], np.uint8))
    assert out.shape == (1, 1, 1, 2) and out.dtype == np.float32
    np.testing.assert_allclose(out.ravel(), [(0 - 0.1307) / 0.3081, (1 - 0.1307) / 0.3081],
                               rtol=1e-6)


def test_batches_reshuffle_every_epoch_deterministically():
    first = np.concatenate(batch_indices(100, 32, seed=1, epoch=0))
    assert sorted(first) == list(range(100))
    assert [len(b) for b in batch_indices(100, 32, seed=1, epoch=0)] == [32, 32, 32, 4]
    np.testing.assert_array_equal(first, np.concatenate(batch_indices(100, 32, seed=1, epoch=0)))
    assert not np.array_equal(first, np.concatenate(batch_indices(100, 32, seed=1, epoch=1)))
    assert not np.array_equal(first, np.concatenate(batch_indices(100, 32, seed=2, epoch=0)))


@pytest.mark.parametrize("make", [
    lambda p: SGD(p, lr=0.1, momentum=0.9, weight_decay=1e-3), lambda p: Adam(p, lr=1e-3)])
def test_checkpoint_round_trip_with_optimizer(tmp_path, make):
    net = LeNet(rng=0)
    opt = make(net.parameters())
    for p in net.parameters():
        p.grad[...] = 0.01
    opt.step()
    path = tmp_path / "ck.npz"
    save_checkpoint(path, net.state_dict(), opt.state_dict(), {"epoch": 3, "note": "x"})
    loaded = load_checkpoint(path)
    assert loaded["meta"] == {"epoch": 3, "note": "x"}
    net2 = LeNet(rng=5)
    net2.load_state_dict(loaded["model"])
    opt2 = make(net2.parameters())
    opt2.load_state_dict(loaded["optimizer"])
    assert opt2.steps == 1
    for p, q in zip(net.parameters(), net2.parameters()):
        np.testing.assert_array_equal(p.data, q.data)
    for name, buf in opt.state_dict()["arrays"].items():
        np.testing.assert_array_equal(buf, opt2.state_dict()["arrays"][name])


def test_truncated_or_corrupted_checkpoint(tmp_path):
    net = LeNet(rng=0)
    path = tmp_path / "ck.npz"
    save_checkpoint(path, net.state_dict(), SGD(net.parameters()).state_dict(), {})
    data = path.read_bytes()
    (tmp_path / "short.npz").write_bytes(data[:len(data) // 2])
    with pytest.raises(CheckpointError, match="short.npz"):
        load_checkpoint(tmp_path / "short.npz")
    garbled = bytearray(data)
    garbled[len(data) // 3:len(data) // 3 + 64] = bytes(64)
    (tmp_path / "bad.npz").write_bytes(bytes(garbled))
    with pytest.raises(CheckpointError, match="bad.npz"):
        load_checkpoint(tmp_path / "bad.npz")
    np.savez(tmp_path / "other.npz", a=np.ones(3))
    with pytest.raises(CheckpointError, match="not a"):
        load_checkpoint(tmp_path / "other.npz")
    with pytest.raises(CheckpointError, match="no such"):
        load_checkpoint(tmp_path / "missing.npz")


def test_failed_save_keeps_the_good_checkpoint(tmp_path, monkeypatch):
    net = LeNet(rng=0)
    path = tmp_path / "ck.npz"
    save_checkpoint(path, net.state_dict(), SGD(net.parameters()).state_dict(), {"epoch": 1})
    good = path.read_bytes()

    def disk_full(f, **arrays):
        f.write(b"half a checkpoint")
        raise OSError("No space left on device")

    monkeypatch.setattr(np, "savez", disk_full)
    with pytest.raises(OSError, match="No space"):
        save_checkpoint(path, net.state_dict(), SGD(net.parameters()).state_dict(), {})
    assert path.read_bytes() == good
    assert [p.name for p in tmp_path.iterdir()] == ["ck.npz"]  # no temporary left behind


def test_copy_of_bundled_data_loads_as_folder(tmp_path):
    for name in BUNDLED_MD5:
        shutil.copy(BUNDLED_MNIST / name, tmp_path / name)
    assert load_dataset(tmp_path).train_labels.shape == (60000,)
