"""The Zeiler & Fergus analyses under the analysis contract (issue 13) and their trust fixes (issue 11).

* The folder written by the Python API (``result.save(dir)``) and by the CLI for the same call
  are identical apart from the ``created`` timestamp: one test per command.
* Results have a short repr, an HTML repr with the key figure, ``figures()`` of Figures, and
  ``load(dir)`` reads the folder back (saving the loaded result gives the same folder again).
* Occlusion runs in the model's dtype: float64 equals a hand loop to 1e-10; bfloat16 runs.
* ``occlude --unit`` without ``--layer`` is refused; importing the plots switches no backend.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pytest
import torch
from matplotlib.figure import Figure
from torch import nn
from folders import assert_same_folder
from typer.testing import CliRunner

import layerscope as ls
from layerscope.convnets import (
    Correspondence,
    DeconvProjections,
    Evolution,
    InvarianceCurves,
    OcclusionMaps,
    TopK,
    correspondence,
    deconv_projections,
    feature_evolution,
    invariance_curves,
    occlusion,
    occlusion_maps,
    top_activations,
)
from layerscope.cli import app
from layerscope.exceptions import ParameterError

runner = CliRunner()
COMMON = ["--model", "mnist-cnn", "--data", "mnist:test"]


@pytest.fixture(scope="module")
def cnn() -> nn.Module:
    return ls.load_model("mnist-cnn")


@pytest.fixture(scope="module")
def mnist() -> Any:
    return ls.load_dataset("mnist:test")


def cli(*args: str) -> None:
    r = runner.invoke(app, list(args))
    assert r.exit_code == 0, r.output


def check_result(res: Any, cls: type, folder: Path, tmp_path: Path) -> None:
    """The contract on one result: repr, HTML, figures, load -> save gives the same folder."""
    assert isinstance(res, cls)
    assert len(repr(res)) < 300 and "array(" not in repr(res)
    assert "<img" in res._repr_html_()
    figs = res.figures()
    assert figs and all(isinstance(f, Figure) for f in figs.values())
    json.dumps(res.metrics)  # JSON-safe
    again = cls.load(folder)  # type: ignore[attr-defined]
    assert again.metrics == pytest.approx(res.metrics)
    again.save(tmp_path / "again")
    assert_same_folder(folder, tmp_path / "again")


@pytest.mark.slow
def test_topk_api_equals_cli(cnn: nn.Module, mnist: Any, tmp_path: Path) -> None:
    cli("topk", *COMMON, "--layer", "relu2", "--units", "0,3", "--k", "3", "--limit", "40", "--no-progress",
        "--out", str(tmp_path / "cli"))
    res = top_activations(cnn, mnist, "relu2", units=[0, 3], k=3, limit=40, data_spec="mnist:test")
    res.save(tmp_path / "api")
    assert_same_folder(tmp_path / "cli", tmp_path / "api")
    assert res.metrics == {"mean_top1": pytest.approx(float(res.values[:, 0].mean())), "n_units": 2}
    assert res.sample_ids.max() < 40
    check_result(res, TopK, tmp_path / "api", tmp_path)


@pytest.mark.slow
def test_deconv_api_equals_cli(cnn: nn.Module, mnist: Any, tmp_path: Path) -> None:
    cli("deconv", *COMMON, "--layer", "relu2", "--units", "1,2", "--rules", "gradient,deconvnet", "--limit", "40",
        "--no-progress", "--out", str(tmp_path / "cli"))
    res = deconv_projections(cnn, mnist, "relu2", units=[1, 2], rules=["gradient", "deconvnet"], limit=40,
                             data_spec="mnist:test")
    res.save(tmp_path / "api")
    assert_same_folder(tmp_path / "cli", tmp_path / "api")
    # the metric is the mean cosine of the two rules' maps, checked by hand
    a, b = (res.maps[r].reshape(2, -1).astype(np.float64) for r in ("gradient", "deconvnet"))
    cos = (a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))
    assert res.metrics["cosine_gradient_deconvnet"] == pytest.approx(float(cos.mean()))
    # each row is the strongest activation of its unit among the first 40 samples
    top = top_activations(cnn, mnist, "relu2", units=[1, 2], k=1, limit=40, rule=None, patches=False)
    assert res.sample_ids.tolist() == top.sample_ids[:, 0].tolist()
    np.testing.assert_allclose(res.values, top.values[:, 0], rtol=1e-6)
    check_result(res, DeconvProjections, tmp_path / "api", tmp_path)


@pytest.mark.slow
def test_occlusion_api_equals_cli(cnn: nn.Module, mnist: Any, tmp_path: Path) -> None:
    cli("occlude", *COMMON, "--layer", "relu2", "--indices", "0,1", "--size", "7", "--stride", "7", "--no-progress",
        "--out", str(tmp_path / "cli"))
    res = occlusion_maps(cnn, mnist, [0, 1], size=7, stride=7, value="mean", layer="relu2", data_spec="mnist:test")
    res.save(tmp_path / "api")
    assert_same_folder(tmp_path / "cli", tmp_path / "api")
    assert res.metrics["mean_base_probability"] == pytest.approx(np.mean([o.base_probability for o in res.images]))
    check_result(res, OcclusionMaps, tmp_path / "api", tmp_path)


@pytest.mark.slow
def test_invariance_api_equals_cli(cnn: nn.Module, mnist: Any, tmp_path: Path) -> None:
    cli("invariance", *COMMON, "--layers", "relu1,relu2", "--limit", "2", "--transforms", "translate,rotate",
        "--no-progress", "--out", str(tmp_path / "cli"))
    res = invariance_curves(cnn, mnist, layers=["relu1", "relu2"], limit=2, transforms=["translate", "rotate"],
                            fill="min", data_spec="mnist:test")
    res.save(tmp_path / "api")
    assert_same_folder(tmp_path / "cli", tmp_path / "api")
    # "min" is the per-channel minimum of the data; the same call on tensors gives the same curves
    x, y = mnist.x[:2], mnist.y[:2].numpy()
    t = invariance_curves(cnn, x, y, layers=["relu1", "relu2"], ranges=res.params, fill=float(mnist.x.min()))
    np.testing.assert_allclose(t.probabilities["rotate"], res.probabilities["rotate"], rtol=1e-6)
    assert res.metrics["rotate_min_mean_probability"] == pytest.approx(res.probabilities["rotate"].mean(0).min(), abs=1e-6)
    check_result(res, InvarianceCurves, tmp_path / "api", tmp_path)


@pytest.mark.slow
def test_correspondence_api_equals_cli(cnn: nn.Module, mnist: Any, tmp_path: Path) -> None:
    cli("correspondence", *COMMON, "--layers", "relu1,relu2", "--limit", "3", "--n-random", "2",
        "--out", str(tmp_path / "cli"))
    res = correspondence(cnn, mnist, ["relu1", "relu2"], value="mean", n_random=2, limit=3, data_spec="mnist:test")
    res.save(tmp_path / "api")
    assert_same_folder(tmp_path / "cli", tmp_path / "api")
    label = int(mnist.y[0])
    assert res.label == label and res.sample_ids == np.flatnonzero(mnist.y.numpy() == label)[:3].tolist()
    check_result(res, Correspondence, tmp_path / "api", tmp_path)


@pytest.mark.slow
def test_evolution_api_equals_cli(tmp_path: Path) -> None:
    from layerscope.models import build_model
    from layerscope.training import train

    data = ls.load_dataset("mnist").subset(np.arange(64))
    model = build_model("cnn:dense=16x8", (1, 28, 28), 10)
    meta = {"arch": "cnn:dense=16x8", "data": "mnist", "input_shape": [1, 28, 28], "classes": data.classes,
            "normalization": data.normalization.to_dict()}
    train(model, data, out_dir=tmp_path / "run", epochs=1, checkpoints=[0, 1], batch_size=32, lr=0.05, seed=0, meta=meta)
    cli("evolution", "--model", str(tmp_path / "run"), "--data", "mnist:test", "--layer", "conv2", "--units", "0,1",
        "--limit", "30", "--no-progress", "--out", str(tmp_path / "cli"))
    res = feature_evolution(tmp_path / "run", ls.load_dataset("mnist:test"), "conv2", units=[0, 1], limit=30,
                            data_spec="mnist:test")
    res.save(tmp_path / "api")
    assert_same_folder(tmp_path / "cli", tmp_path / "api")
    assert res.epochs.tolist() == [0, 1] and res.sample_ids.max() < 30
    check_result(res, Evolution, tmp_path / "api", tmp_path)


# -- occlusion in the model's dtype ------------------------------------------------------------


def _small_cnn(dtype: torch.dtype) -> nn.Module:
    torch.manual_seed(0)
    m = nn.Sequential(nn.Conv2d(2, 4, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 6 * 6, 3))
    return m.to(dtype)


def test_occlusion_float64_equals_a_hand_loop() -> None:
    m = _small_cnn(torch.float64)
    x = torch.randn(2, 6, 6, dtype=torch.float64)
    grey = [0.25, -0.5]
    res = occlusion(m, x, target=1, size=3, stride=2, value=grey, anchor="valid", layer="1", unit=2, batch_size=3)
    assert res.probability.dtype == np.float64 and res.activation is not None and res.activation.dtype == np.float64
    rows, cols = res.windows
    with torch.no_grad():  # by hand: one occluded image at a time
        for i, (r0, r1) in enumerate(rows):
            for j, (c0, c1) in enumerate(cols):
                xo = x.clone()
                for ch in range(2):
                    xo[ch, r0:r1, c0:c1] = grey[ch]
                p = torch.softmax(m(xo[None]), dim=1)[0, 1].item()
                act = torch.relu(m[0](xo[None]))[0, 2].sum().item()
                assert abs(res.probability[i, j] - p) < 1e-10
                assert abs(res.activation[i, j] - act) < 1e-10


def test_occlusion_runs_in_bfloat16() -> None:
    m = _small_cnn(torch.bfloat16)
    x = torch.randn(2, 6, 6)
    res = occlusion(m, x, size=3, stride=3, layer="1")
    ref = occlusion(_small_cnn(torch.float32), x, size=3, stride=3, layer="1", target=res.target)
    assert res.probability.dtype == np.float32 and np.isfinite(res.probability).all()
    assert np.abs(res.probability - ref.probability).max() < 0.05  # bfloat16 precision


def test_unit_without_layer_is_refused(cnn: nn.Module, mnist: Any, tmp_path: Path) -> None:
    with pytest.raises(ParameterError, match="needs a layer"):
        occlusion(cnn, mnist.x[0], unit=3)
    with pytest.raises(ParameterError, match="needs a layer"):
        occlusion_maps(cnn, mnist, [0], unit=3)
    out = subprocess.run([sys.executable, "-m", "layerscope", "occlude", *COMMON, "--unit", "3", "--no-progress",
                          "--out", str(tmp_path / "o")], capture_output=True, text=True)
    assert out.returncode == 2 and "--unit 3 needs --layer" in out.stderr and "Traceback" not in out.stderr
    assert not (tmp_path / "o").exists()


def test_importing_the_plots_switches_no_backend() -> None:
    code = ("import matplotlib; matplotlib.use('svg'); import layerscope.convnets.plots, layerscope.cli; "
            "print(matplotlib.get_backend())")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "svg"


def test_load_refuses_another_analysis(cnn: nn.Module, mnist: Any, tmp_path: Path) -> None:
    from layerscope.exceptions import DataError

    res = correspondence(cnn, mnist.x[:2], ["relu1"], n_random=1)
    res.save(tmp_path / "c")
    loaders: list[Callable[[Path], Any]] = [TopK.load, OcclusionMaps.load, Evolution.load]
    for load in loaders:
        with pytest.raises(DataError, match="correspondence"):
            load(tmp_path / "c")


def test_float64_and_bfloat16_models_run_in_their_dtype() -> None:
    """invariance, correspondence and projections take the model's dtype (the inputs are float32)."""
    m32, m64, m16 = _small_cnn(torch.float32), _small_cnn(torch.float64), _small_cnn(torch.bfloat16)
    x = torch.randn(3, 2, 6, 6)
    ranges = {"rotate": [0.0, 90.0]}
    c32, c64 = (invariance_curves(m, x, [0, 1, 2], layers=["1"], ranges=ranges) for m in (m32, m64))
    np.testing.assert_allclose(c64.probabilities["rotate"], c32.probabilities["rotate"], rtol=1e-5)
    assert c64.probabilities["rotate"].dtype == np.float64
    assert np.isfinite(invariance_curves(m16, x, [0, 1, 2], layers=["1"], ranges=ranges).probabilities["rotate"]).all()
    d32, d64 = (correspondence(m, x, ["1", "3"], parts={"c": (2, 2, 2, 2)}, n_random=2) for m in (m32, m64))
    assert d64.delta["3"]["c"] == pytest.approx(d32.delta["3"]["c"], abs=1e-6)
    from layerscope.convnets import project_activations

    p32, p64 = (project_activations(m, x, "1", [0, 1, 2], rule="guided") for m in (m32, m64))
    np.testing.assert_allclose(p64.maps, p32.maps, rtol=1e-4, atol=1e-6)


def test_progress_is_called_with_keywords(cnn: nn.Module, mnist: Any) -> None:
    """Any tqdm-compatible callable: progress(iterable, total=n, desc=...)."""
    calls: list[tuple[int | None, str]] = []

    def progress(iterable: Any, *, total: int | None = None, desc: str = "") -> Any:
        calls.append((total, desc))
        return iterable

    top_activations(cnn, mnist, "relu2", units=[0], k=2, limit=30, batch_size=10, rule=None, patches=False,
                    progress=progress)
    occlusion(cnn, mnist.x[0], size=7, stride=7, layer="relu2", progress=progress)
    invariance_curves(cnn, mnist.x[:1], [int(mnist.y[0])], layers=["relu1"], ranges={"rotate": [0.0]}, progress=progress)
    assert calls == [(3, "layer relu2: top-2"), (1, "occlusion, layer relu2"), (1, "invariance, layers relu1")]


def test_bad_rows_and_sizes_are_one_line_errors(cnn: nn.Module, mnist: Any) -> None:
    """Issue 11: rows past the end or negative, empty selections and zero sizes are refused."""
    with pytest.raises(ParameterError, match="indices must be rows"):
        occlusion_maps(cnn, mnist, [-1])
    with pytest.raises(ParameterError, match="indices must be rows"):
        deconv_projections(cnn, mnist, "relu2", indices=[len(mnist)])
    with pytest.raises(ParameterError, match="limit must be >= 1"):
        invariance_curves(cnn, mnist, layers=["relu1"], limit=0)
    with pytest.raises(ParameterError, match="batch_size must be >= 1"):
        invariance_curves(cnn, mnist, layers=["relu1"], limit=2, batch_size=0)
    with pytest.raises(ParameterError, match="at least 2 images"):
        correspondence(cnn, mnist, ["relu1"], limit=1)
    with pytest.raises(ParameterError, match="limit must be >= 1"):
        top_activations(cnn, mnist, "relu2", limit=0)
