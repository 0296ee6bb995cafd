"""Training on a slice of MNIST, resuming, Ctrl-C, NaN, and the three command lines."""

import csv
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from convnet import TrainingDivergedError, evaluate, predict
from convnet import train as train_module
from convnet.checkpoint import load_checkpoint
from convnet.data import load_dataset
from convnet.train import TrainConfig, main, train

FASHION = Path(__file__).resolve().parents[3] / "shared" / "data" / "fashion-mnist"


def small(**kwargs):
    values = dict(epochs=2, batch_size=64, train_limit=640, test_limit=200, seed=3)
    values.update(kwargs)
    return TrainConfig(**values)


def weights(model):
    return {name: p.data.copy() for name, p in model.named_parameters()}


def test_short_training_beats_chance_by_far(tmp_path):
    config = small(epochs=2, train_limit=3000, test_limit=1000)
    _, metrics = train(config, tmp_path, progress=False, log=lambda line: None)
    assert len(metrics) == 2
    assert metrics[-1]["val_acc"] > 85.0  # chance is 10 %
    assert metrics[-1]["train_loss"] < metrics[0]["train_loss"]


def test_resume_between_epochs_gives_same_weights(tmp_path):
    # A constant learning rate: extending the run does not change its first epoch's
    # schedule (with cosine decay it would; the Ctrl-C test below covers that case).
    whole, _ = train(small(schedule="constant"), tmp_path / "a", progress=False,
                     log=lambda line: None)
    train(small(epochs=1, schedule="constant"), tmp_path / "b", progress=False,
          log=lambda line: None)
    resumed, metrics = train(None, tmp_path / "b", resume=tmp_path / "b" / "checkpoint.npz",
                             epochs=2, progress=False, log=lambda line: None)
    assert [m["epoch"] for m in metrics] == [1, 2]
    for name, value in weights(whole).items():
        np.testing.assert_array_equal(weights(resumed)[name], value, err_msg=name)


def test_ctrl_c_mid_epoch_saves_and_resumes_exactly(tmp_path, monkeypatch):
    whole, _ = train(small(), tmp_path / "a", progress=False, log=lambda line: None)
    real = train_module.F.softmax_cross_entropy
    calls = {"n": 0}

    def interrupt_on_step_14(logits, labels):
        calls["n"] += 1
        # 10 training batches and 1 evaluation batch in epoch 1: call 14 is epoch 2's third.
        if calls["n"] == 14:
            raise KeyboardInterrupt
        return real(logits, labels)

    monkeypatch.setattr(train_module.F, "softmax_cross_entropy", interrupt_on_step_14)
    with pytest.raises(KeyboardInterrupt):
        train(small(), tmp_path / "b", progress=False, log=lambda line: None)
    monkeypatch.setattr(train_module.F, "softmax_cross_entropy", real)
    meta = load_checkpoint(tmp_path / "b")["meta"]
    assert (meta["epoch"], meta["batch"]) == (1, 2)
    resumed, _ = train(None, tmp_path / "b", resume=tmp_path / "b", progress=False,
                       log=lambda line: None)
    for name, value in weights(whole).items():
        np.testing.assert_array_equal(weights(resumed)[name], value, err_msg=name)


def test_nan_loss_stops_with_clear_error_and_keeps_checkpoint(tmp_path):
    with pytest.raises(TrainingDivergedError, match="Lower --lr"):
        train(small(epochs=2, lr=1e30), tmp_path / "x", progress=False, log=lambda line: None)
    train(small(epochs=1), tmp_path, progress=False, log=lambda line: None)
    good = (tmp_path / "checkpoint.npz").read_bytes()
    with pytest.raises(TrainingDivergedError, match="became"):
        _diverge_resumed(tmp_path)
    assert (tmp_path / "checkpoint.npz").read_bytes() == good


def _diverge_resumed(folder):
    # Resume the good run with an absurd learning rate: it must not overwrite the checkpoint.
    checkpoint = load_checkpoint(folder)
    checkpoint["meta"]["config"]["lr"] = 1e30
    from convnet.checkpoint import save_checkpoint

    save_checkpoint(folder / "hot.npz", checkpoint["model"], checkpoint["optimizer"],
                    checkpoint["meta"])
    train(None, folder, resume=folder / "hot.npz", epochs=2, progress=False,
          log=lambda line: None)


def test_command_lines(tmp_path, capsys):
    out = tmp_path / "run"
    code = main(["--epochs", "1", "--train-limit", "512", "--test-limit", "100", "--out",
                 str(out), "--no-progress", "--threads", "1", "--batch-size", "32"])
    assert code == 0
    for name in ("checkpoint.npz", "metrics.csv", "curves.png", "conv1_filters.png",
                 "config.json"):
        assert (out / name).is_file(), name
    with open(out / "metrics.csv") as f:
        rows = list(csv.DictReader(f))
    assert rows[0]["epoch"] == "1" and 0 <= float(rows[0]["val_acc"]) <= 100
    printed = capsys.readouterr().out
    assert "1 Training accuracy" in printed and "Validation accuracy" in printed

    assert evaluate.main([str(out / "checkpoint.npz")]) == 0
    printed = capsys.readouterr().out
    assert "test accuracy" in printed and "confusion matrix" in printed

    data = load_dataset()
    Image.fromarray(data.test_images[0]).save(tmp_path / "seven.png")
    Image.fromarray(255 - data.test_images[1]).resize((56, 56)).save(tmp_path / "two.png")
    assert predict.main([str(out / "checkpoint.npz"), str(tmp_path / "seven.png"),
                         str(tmp_path / "two.png")]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 2 and "seven.png:" in lines[0] and "probability" in lines[0]

    assert predict.main([str(out / "checkpoint.npz"), str(tmp_path / "missing.png")]) == 2
    assert "missing.png" in capsys.readouterr().err
    assert main(["--threads", "999", "--out", str(tmp_path / "t")]) == 2
    (tmp_path / "broken.npz").write_bytes(b"PK\x03\x04garbage")
    assert evaluate.main([str(tmp_path / "broken.npz")]) == 2
    assert "broken.npz" in capsys.readouterr().err


@pytest.mark.skipif(not FASHION.is_dir(), reason="Fashion-MNIST copy not present")
def test_other_idx_folder(tmp_path):
    config = small(epochs=1, data=str(FASHION), train_limit=256, test_limit=64)
    _, metrics = train(config, tmp_path, progress=False, log=lambda line: None)
    assert load_checkpoint(tmp_path)["meta"]["config"]["data"] == str(FASHION)
    assert 0 <= metrics[0]["val_acc"] <= 100
