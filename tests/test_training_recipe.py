"""Training recipes by name: ``train(..., recipe="rauber")`` and ``layerscope train --recipe rauber``."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn
from typer.testing import CliRunner

from layerscope.cli import app
from layerscope.data import ArrayDataset, Normalization
from layerscope.exceptions import ParameterError
from layerscope.models import MLP
from layerscope.training import RECIPES, dropout_modules, train


def blobs(n: int = 300, seed: int = 0) -> ArrayDataset:
    g = torch.Generator().manual_seed(seed)
    y = torch.arange(n) % 3
    x = torch.randn(n, 1, 4, 4, generator=g) + y.view(-1, 1, 1, 1).float()
    return ArrayDataset(x, y, classes=["a", "b", "c"], normalization=Normalization(scale=1.0, description="raw"))


def mlp(dropout: float) -> MLP:
    torch.manual_seed(0)
    return MLP((1, 4, 4), 3, width=16, depth=2, dropout=dropout)


def test_rauber_recipe_refuses_a_model_without_its_dropout(tmp_path: Path) -> None:
    with pytest.raises(ParameterError, match="has no dropout module.*mlp:dropout=0.5"):
        train(mlp(0.0), blobs(), out_dir=tmp_path / "a", epochs=1, recipe="rauber")
    with pytest.raises(ParameterError, match="uses dropout p = 0.5.*drop1"):
        train(mlp(0.3), blobs(), out_dir=tmp_path / "b", epochs=1, recipe="rauber")
    with pytest.raises(ParameterError, match=r"lr=0.1 \(recipe: 0.01\)"):
        train(mlp(0.5), blobs(), out_dir=tmp_path / "c", epochs=1, recipe="rauber", lr=0.1)
    with pytest.raises(ParameterError, match="Unknown recipe 'adam'"):
        train(mlp(0.5), blobs(), out_dir=tmp_path / "d", epochs=1, recipe="adam")
    assert dropout_modules(mlp(0.5)) == {"drop1": 0.5, "drop2": 0.5}
    assert not (tmp_path / "a" / "run.json").exists()


def test_rauber_recipe_is_sgd_momentum_with_dropout_like_a_hand_loop(tmp_path: Path) -> None:
    data = blobs()
    net = mlp(0.5)
    ref = mlp(0.5)
    run = train(net, data, out_dir=tmp_path / "r", epochs=2, recipe="rauber", lr=0.01, seed=5)  # equal value: accepted
    info = json.loads((tmp_path / "r" / "run.json").read_text())
    assert info["training_recipe"]["name"] == "rauber" and info["training_recipe"]["dropout"] == {"p": 0.5, "modules": ["drop1", "drop2"]}
    assert (info["optimizer"], info["lr"], info["momentum"], info["batch_size"], info["weight_decay"]) == ("sgd", 0.01, 0.9, 128, 0.0)
    assert "Rauber et al. 2017" in info["training_recipe"]["source"] and run.meta["training_recipe"]["name"] == "rauber"
    # the same two epochs by hand: torch SGD(lr 0.01, momentum 0.9), batches of 128 in the seeded order, dropout on
    torch.manual_seed(5)
    gen = torch.Generator().manual_seed(5)
    opt = torch.optim.SGD(ref.parameters(), lr=0.01, momentum=0.9)
    for _ in range(2):
        ref.train()
        perm = torch.randperm(len(data), generator=gen)
        for s in range(0, len(data), 128):
            idx = perm[s : s + 128]
            opt.zero_grad()
            nn.functional.cross_entropy(ref(data.x[idx]), data.y[idx]).backward()
            opt.step()
    for (k, p), q in zip(net.state_dict().items(), ref.state_dict().values()):
        torch.testing.assert_close(p, q, rtol=0, atol=1e-6, msg=k)
    # dropout really was on in training: the same loop without it ends elsewhere
    assert not torch.allclose(net.fc1.weight, _hand_without_dropout(data, epochs=2, seed=5).fc1.weight, atol=1e-4)


def _hand_without_dropout(data: ArrayDataset, epochs: int, seed: int) -> MLP:
    net = mlp(0.5)
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    opt = torch.optim.SGD(net.parameters(), lr=0.01, momentum=0.9)
    net.eval()  # dropout off
    for _ in range(epochs):
        perm = torch.randperm(len(data), generator=gen)
        for s in range(0, len(data), 128):
            idx = perm[s : s + 128]
            opt.zero_grad()
            nn.functional.cross_entropy(net(data.x[idx]), data.y[idx]).backward()
            opt.step()
    return net


def test_plain_training_keeps_its_defaults(tmp_path: Path) -> None:
    train(mlp(0.0), blobs(), out_dir=tmp_path / "p", epochs=1)
    info = json.loads((tmp_path / "p" / "run.json").read_text())
    assert info["training_recipe"] is None and (info["optimizer"], info["lr"], info["momentum"], info["batch_size"]) == ("sgd", 0.01, 0.9, 128)
    assert RECIPES["rauber"].settings()["momentum"] == 0.9


def test_cli_recipe_builds_the_dropout_it_states(tmp_path: Path, shared_data: Path) -> None:
    runner = CliRunner()
    run = tmp_path / "run"
    res = runner.invoke(app, ["train", "--model", "mlp:width=16,depth=2", "--recipe", "rauber", "--epochs", "1", "--limit", "300",
                              "--checkpoints", "1", "--out", str(run), "--no-progress"])
    assert res.exit_code == 0, res.output
    assert "dropout=0.5" in res.output
    info = json.loads((run / "run.json").read_text())
    assert info["arch"] == "mlp:width=16,depth=2,dropout=0.5" and info["training_recipe"]["name"] == "rauber"
    assert info["optimizer"] == "sgd" and info["lr"] == 0.01
    res = runner.invoke(app, ["train", "--model", "mlp:width=16", "--recipe", "rauber", "--optimizer", "adam", "--epochs", "1",
                              "--limit", "100", "--out", str(tmp_path / "bad"), "--no-progress"])
    assert isinstance(res.exception, ParameterError) and "optimizer='adam' (recipe: 'sgd')" in str(res.exception)
    assert not (tmp_path / "bad" / "run.json").exists()
    assert np.isfinite(info["checkpoints"][-1]["val_accuracy"])
