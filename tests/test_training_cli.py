"""Training with checkpoints (deterministic, interrupt-safe) and the foundation CLI."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file
from typer.testing import CliRunner

import layerscope as ls
from layerscope.cli import app
from layerscope.models import build_model
from layerscope.training import default_checkpoints, list_checkpoints, train


def small_data() -> tuple[ls.data.ArrayDataset, ls.data.ArrayDataset]:
    train_set = ls.load_dataset("mnist")
    test_set = ls.load_dataset("mnist:test")
    return (
        train_set.subset(ls.data.stratified_indices(train_set.y.numpy(), 1000, 0)),
        test_set.subset(np.arange(500)),
    )


def test_default_checkpoints() -> None:
    assert default_checkpoints(10) == [0, 1, 2, 5, 10]
    assert default_checkpoints(7) == [0, 1, 2, 5, 7]
    assert default_checkpoints(64)[-3:] == [40, 50, 64]


def test_training_is_deterministic_and_learns(tmp_path: Path) -> None:
    tr, te = small_data()
    runs = []
    for name in ("a", "b"):
        torch.manual_seed(0)
        net = build_model("mlp:width=64,depth=2", tr.input_shape, 10)
        runs.append(train(net, tr, val_set=te, out_dir=tmp_path / name, epochs=3, lr=0.05, batch_size=32, seed=3))
    wa = load_file(str(tmp_path / "a" / "checkpoints" / "epoch_0003.safetensors"))
    wb = load_file(str(tmp_path / "b" / "checkpoints" / "epoch_0003.safetensors"))
    assert all(torch.equal(wa[k], wb[k]) for k in wa)
    accs = [c["val_accuracy"] for c in runs[0].checkpoints]
    assert [c["epoch"] for c in runs[0].checkpoints] == [0, 1, 2, 3]
    assert accs[0] < 0.3 and accs[-1] > 0.8
    assert runs[0].meta["complete"] is True


def test_interrupted_training_keeps_finished_checkpoints(tmp_path: Path) -> None:
    tr, te = small_data()
    net = build_model("mlp:width=32,depth=1", tr.input_shape, 10)

    def tracker(iterable, total=None, desc=""):  # type: ignore[no-untyped-def]
        # one bar per epoch over its batches: Ctrl-C at the first batch of epoch 3
        if desc.startswith("train epoch 3/"):
            raise KeyboardInterrupt
        yield from iterable

    meta = {"arch": "mlp:width=32,depth=1", "input_shape": [1, 28, 28], "classes": tr.classes}
    with pytest.raises(KeyboardInterrupt):
        train(net, tr, val_set=te, out_dir=tmp_path / "run", epochs=5, checkpoints=[0, 1, 2, 5], meta=meta, progress=tracker)
    info = json.loads((tmp_path / "run" / "run.json").read_text())
    assert [c["epoch"] for c in info["checkpoints"]] == [0, 1, 2] and info["complete"] is False
    files = sorted(p.name for p in (tmp_path / "run" / "checkpoints").iterdir())
    assert files == ["epoch_0000.safetensors", "epoch_0001.safetensors", "epoch_0002.safetensors"]
    assert [e for e, _ in list_checkpoints(tmp_path / "run")] == [0, 1, 2]
    m = ls.load_model(f"{tmp_path / 'run'}@1")  # every finished checkpoint loads
    assert m.layerscope_source["epoch"] == 1


def test_cli_train_layers_capture(tmp_path: Path) -> None:
    runner = CliRunner()
    run = tmp_path / "run"
    res = runner.invoke(
        app, ["train", "--model", "mlp:width=32,depth=2", "--epochs", "1", "--limit", "600", "--val-limit", "50",
              "--out", str(run), "--no-progress"]
    )
    assert res.exit_code == 0, res.output
    info = json.loads((run / "run.json").read_text())
    assert info["arch"] == "mlp:width=32,depth=2" and info["val_data"] == "mnist:test" and info["n_train"] == 600
    assert info["val_limit"] == 50 and info["n_val"] == 50  # validated on 50 test digits
    assert all(abs(c["val_accuracy"] * 50 - round(c["val_accuracy"] * 50)) < 1e-9 for c in info["checkpoints"])
    res = runner.invoke(app, ["layers", "--model", str(run), "--json"])
    assert res.exit_code == 0, res.output
    rows = {r["name"]: r for r in json.loads(res.output)}
    assert rows["relu2"]["output_shape"] == [32] and rows["fc1"]["params"] == 784 * 32 + 32
    res = runner.invoke(
        app, ["capture", "--model", f"{run}@0", "--layers", "relu1,relu2", "--limit", "100", "--out", str(tmp_path / "c"), "--no-progress"]
    )
    assert res.exit_code == 0, res.output
    acts = ls.Activations.load(tmp_path / "c")
    assert acts["relu2"].shape == (100, 32) and acts.predictions is not None


def test_cli_errors_are_clean(tmp_path: Path) -> None:
    import subprocess
    import sys

    out = subprocess.run(
        [sys.executable, "-m", "layerscope", "layers", "--model", "mnist-cnn", "--data", "svhn"],
        capture_output=True, text=True,
    )
    assert out.returncode == 2
    assert "Unknown data kind 'svhn'" in out.stderr and "Traceback" not in out.stderr
    out = subprocess.run(
        [sys.executable, "-m", "layerscope", "capture", "--model", "mnist-cnn", "--layers", "relu9", "--out", str(tmp_path / "x")],
        capture_output=True, text=True,
    )
    assert out.returncode == 2 and "Did you mean" in out.stderr and "Traceback" not in out.stderr
    assert not (tmp_path / "x").exists()


def test_run_without_meta_rebuilds_or_explains(tmp_path: Path) -> None:
    tr, te = small_data()
    net = build_model("mlp:width=16,depth=1", tr.input_shape, 10)
    train(net, tr, out_dir=tmp_path / "run", epochs=1, checkpoints=[1])
    m = ls.load_model(str(tmp_path / "run"))
    assert torch.equal(m.fc1.weight, net.fc1.weight) and m.classes == tr.classes
    plain = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(784, 10))
    train(plain, tr, out_dir=tmp_path / "plain", epochs=1, checkpoints=[1])
    with pytest.raises(ls.exceptions.ModelSpecError, match="lacks \\['arch'\\]"):
        ls.load_model(str(tmp_path / "plain"))
