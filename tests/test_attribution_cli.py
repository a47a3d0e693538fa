"""The Zeiler & Fergus commands end to end on the bundled MNIST CNN, and feature evolution over
the checkpoints of a tiny training run; plus the occlusion property on real digits."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

import layerscope as ls
from layerscope.convnets import TopK, feature_evolution, occlusion, top_activations
from layerscope.convnets.occlusion import dataset_mean
from layerscope.cli import app
from layerscope.exceptions import ParameterError
from layerscope.loading import load_run_model
from layerscope.training import train

runner = CliRunner()


def _result(out: Path, analysis: str) -> dict:  # type: ignore[type-arg]
    doc = json.loads((out / "result.json").read_text())
    assert doc["analysis"] == analysis
    for fig in doc["figures"]:
        assert (out / fig["path"]).stat().st_size > 1000
    return doc


def test_topk_deconv_occlude_commands(tmp_path: Path) -> None:
    common = ["--model", "mnist-cnn", "--data", "mnist:test", "--no-progress"]
    r = runner.invoke(app, ["topk", *common, "--layer", "relu2", "--units", "0,3", "--limit", "300", "--out", str(tmp_path / "t")])
    assert r.exit_code == 0, r.output
    doc = _result(tmp_path / "t", "topk")
    assert doc["topk"]["receptive_field"]["size"] == [10, 10] and len(doc["topk"]["top"][1]["sample_ids"]) == 9
    top = TopK.load(tmp_path / "t")
    assert top.patches.shape == (2, 9, 1, 10, 10) and top.projections.shape == (2, 9, 1, 10, 10)  # type: ignore[union-attr]
    assert top.receptive_field.size == (10, 10) and top.units.tolist() == [0, 3]  # type: ignore[union-attr]
    assert top.to_dict() == doc["topk"]

    r = runner.invoke(app, ["deconv", *common, "--layer", "relu2", "--units", "1,2", "--limit", "300", "--out", str(tmp_path / "d")])
    assert r.exit_code == 0, r.output
    doc = _result(tmp_path / "d", "deconv")
    assert doc["parameters"]["rules"] == ["gradient", "deconvnet", "guided"]
    assert set(np.load(tmp_path / "d" / "deconv.npz").files) >= {"map_gradient", "map_deconvnet", "map_guided"}

    r = runner.invoke(app, ["occlude", *common, "--layer", "relu2", "--indices", "0,1", "--size", "7", "--stride", "3",
                            "--out", str(tmp_path / "o")])
    assert r.exit_code == 0, r.output
    doc = _result(tmp_path / "o", "occlusion")
    assert [im["sample_id"] for im in doc["images"]] == [0, 1]
    assert doc["images"][0]["map_shape"] == [10, 10]

    r = runner.invoke(app, ["invariance", *common, "--limit", "3", "--transforms", "translate,rotate", "--out", str(tmp_path / "i")])
    assert r.exit_code == 0, r.output
    doc = _result(tmp_path / "i", "invariance")
    assert set(doc["curves"]) == {"translate", "rotate"}

    r = runner.invoke(app, ["correspondence", "--model", "mnist-cnn", "--data", "mnist:test", "--layers", "relu1,relu2",
                            "--n-random", "2", "--out", str(tmp_path / "c")])
    assert r.exit_code == 0, r.output
    doc = _result(tmp_path / "c", "correspondence")
    assert set(doc["correspondence"]["delta"]["relu1"]) == {"top", "bottom", "left", "right", "random"}


def test_occlusion_of_real_digits_hits_the_ink_not_the_border() -> None:
    model = ls.load_model("mnist-cnn")
    ds = ls.load_dataset("mnist:test")
    grey = dataset_mean(ds)
    for i in range(3):
        x, y = ds.x[i], int(ds.y[i])
        res = occlusion(model, x, target=y, size=7, stride=2, value=grey)
        rows, cols = res.windows
        ink = (x[0] > 0).numpy()
        empty = np.array([[not ink[r0:r1, c0:c1].any() for c0, c1 in cols] for r0, r1 in rows])
        # squares on empty background change nothing (grey = data mean ~ black there, but not 0)
        assert np.abs(res.probability[empty] - res.base_probability).max() < 0.01
        # the lowest probability is with the square on the digit
        amin = np.unravel_index(int(np.argmin(res.probability)), res.probability.shape)
        assert not empty[amin]
        assert res.probability.min() < res.base_probability - 0.01


def test_feature_evolution_over_checkpoints(tmp_path: Path) -> None:
    data = ls.load_dataset("mnist").subset(np.arange(128))
    from layerscope.models import build_model

    model = build_model("cnn:dense=16x8", (1, 28, 28), 10)
    meta = {"arch": "cnn:dense=16x8", "data": "mnist", "input_shape": [1, 28, 28], "classes": data.classes,
            "normalization": data.normalization.to_dict()}
    train(model, data, out_dir=tmp_path / "run", epochs=2, checkpoints=[0, 2], batch_size=64, lr=0.05, seed=0, meta=meta)
    evo = feature_evolution(tmp_path / "run", data, "conv2", units=[0, 5], rule="guided", batch_size=50)
    assert evo.epochs.tolist() == [0, 2]
    assert evo.projections.shape[:2] == (2, 2) and evo.patches.shape == evo.projections.shape
    for j, epoch in enumerate([0, 2]):
        top = top_activations(load_run_model(tmp_path / "run", epoch), data, "conv2", units=[0, 5], k=1, rule="guided")
        np.testing.assert_allclose(evo.values[:, j], top.values[:, 0], rtol=1e-6)
        np.testing.assert_allclose(evo.projections[:, j], top.projections[:, 0], rtol=1e-5, atol=1e-7)  # type: ignore[index]
    assert not np.allclose(evo.values[:, 0], evo.values[:, 1])  # training changed the features
    with pytest.raises(ParameterError, match="no checkpoints at epochs"):
        feature_evolution(tmp_path / "run", data, "conv2", epochs=[1])
    r = runner.invoke(app, ["evolution", "--model", str(tmp_path / "run"), "--data", "mnist:test", "--layer", "conv2",
                            "--units", "0,1", "--limit", "100", "--no-progress", "--out", str(tmp_path / "e")])
    assert r.exit_code == 0, r.output
    doc = _result(tmp_path / "e", "evolution")
    assert doc["evolution"]["epochs"] == [0, 2]
