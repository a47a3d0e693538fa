"""Projections (Rauber et al. 2017): t-SNE/PCA results, seeds, aligned sequences, errors,
model-level studies (hooks, model unchanged), neuron projections and the CLI commands."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn
from typer.testing import CliRunner

from layerscope.cli import app
from layerscope.exceptions import DataError, LayerNotFoundError, ParameterError
from layerscope.projection import Projection, neighborhood_hit, project
from layerscope.projection.analysis import project_model, save_study
from layerscope.projection.neurons import neuron_dissimilarity, neuron_projection
from layerscope.projection.sequence import project_sequence

FAST = {"perplexity": 10.0, "n_iter": 150, "early_exaggeration_iter": 100}


def _blobs(n_per: int = 40, n_classes: int = 3, dim: int = 20, seed: int = 0):
    rng = np.random.default_rng(seed)
    centres = rng.normal(scale=6.0, size=(n_classes, dim))
    y = np.repeat(np.arange(n_classes), n_per)
    return centres[y] + rng.normal(size=(len(y), dim)), y


def test_tsne_separates_blobs_and_is_seeded() -> None:
    x, y = _blobs()
    p = project(x, y, "tsne", random_state=3, **FAST)
    assert p.embedding.shape == (len(x), 2) and np.isfinite(p.embedding).all()
    assert p.metrics["nh"] == pytest.approx(neighborhood_hit(p.embedding, y))
    assert p.metrics["nh"] > 0.95 and p.metrics["nh_original"] == 1.0
    again = project(x, y, "tsne", random_state=3, **FAST)
    assert np.array_equal(p.embedding, again.embedding)  # same seed => same embedding
    other = project(x, y, "tsne", random_state=4, **FAST)
    assert not np.allclose(p.embedding, other.embedding)


def test_pca_is_exact_and_seeded() -> None:
    x, y = _blobs()
    p = project(x, y, "pca", predictions=y, sample_ids=np.arange(100, 100 + len(y)))
    xc = x - x.mean(axis=0)
    _, _, vt = np.linalg.svd(xc, full_matrices=False)
    ref = xc @ vt[:2].T
    # equal up to the sign of each component
    assert np.allclose(np.abs(p.embedding), np.abs(ref), atol=1e-8)
    assert p.metrics["ac"] == 1.0
    assert np.array_equal(project(x, y, "pca").embedding, p.embedding)


def test_misclassified_and_points(tmp_path: Path) -> None:
    x, y = _blobs()
    pred = y.copy()
    pred[:5] = (pred[:5] + 1) % 3
    p = project(x, y, "pca", predictions=pred, sample_ids=np.arange(len(y)) * 2, layer="fc1")
    assert p.metrics["ac"] == pytest.approx(1 - 5 / len(y))
    assert p.misclassified.sum() == 5
    d = p.to_dict()
    json.dumps(d)
    assert len(d["x"]) == len(d["y"]) == len(d["labels"]) == len(d["predictions"]) == len(y)
    assert d["sample_ids"][:3] == [0, 2, 4] and d["predictions"][0] == (y[0] + 1) % 3
    p.save(tmp_path / "p")
    q = Projection.load(tmp_path / "p")
    assert np.array_equal(q.embedding, p.embedding) and np.array_equal(q.predictions, pred)
    assert q.layer == "fc1" and q.metrics == p.metrics and q.method == "pca"
    with pytest.raises(DataError, match="no saved projection"):
        Projection.load(tmp_path)


def test_projection_errors() -> None:
    x, y = _blobs(n_per=10)
    with pytest.raises(ParameterError, match="perplexity 30 needs more than 90"):
        project(x, y, "tsne")
    with pytest.raises(DataError, match="same label"):
        project(x, np.zeros(len(x)), "pca")
    bad = x.copy()
    bad[3, 3] = np.inf
    with pytest.raises(DataError, match="NaN or infinite"):
        project(bad, y, "pca")
    with pytest.raises(ParameterError, match="unknown projection method"):
        project(x, y, "isomap")  # type: ignore[arg-type]
    with pytest.raises(ParameterError, match="k=40 needs at least 41"):
        project(x, y, "pca", k=40)
    with pytest.raises(ParameterError, match="n_neighbors=50"):
        project(x, y, "umap", n_neighbors=50)


def test_aligned_sequence_moves_less_at_equal_nh() -> None:
    rng = np.random.default_rng(0)
    x, y = _blobs(n_per=50, dim=10)
    # three "layers": the same structure seen through random rotations plus a little noise
    frames = [x @ np.linalg.qr(rng.normal(size=(10, 10)))[0] + 0.3 * rng.normal(size=x.shape) for _ in range(3)]
    ind = project_sequence(frames, y, "tsne", 0, aligned=False, **FAST)
    ali = project_sequence(frames, y, "tsne", 0, aligned=True, aligned_n_iter=100, **FAST)
    assert len(ali) == 3 and ali.frames[1].parameters["initialized"]
    assert min(ali.nh()) >= 0.95 and min(ind.nh()) >= 0.95
    assert np.mean(ali.displacement()) < 0.5 * np.mean(ind.displacement())
    # PCA frames are only rotated onto each other: NH unchanged by the alignment
    pa = project_sequence(frames, y, "pca", 0, aligned=True)
    pi = project_sequence(frames, y, "pca", 0, aligned=False)
    assert pa.nh() == pytest.approx(pi.nh())
    with pytest.raises(DataError, match="same 150 observations"):
        project_sequence([frames[0], frames[1][:-1]], y, "pca")


class _Tiny(nn.Module):
    """Hand-weighted: h = relu(x W1), out = h W2; class = sign pattern of x's first two inputs."""

    def __init__(self) -> None:
        super().__init__()
        self.fc1 = nn.Linear(4, 4, bias=False)
        self.relu1 = nn.ReLU()
        self.out = nn.Linear(4, 2, bias=False)
        with torch.no_grad():
            self.fc1.weight.copy_(torch.tensor([[1.0, 0, 0, 0], [-1.0, 0, 0, 0], [0, 1.0, 0, 0], [0, -1.0, 0, 0]]))
            self.out.weight.copy_(torch.tensor([[1.0, -1.0, 0, 0], [-1.0, 1.0, 0, 0]]))
        self.hidden_layers = ["fc1", "relu1"]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(self.relu1(self.fc1(x)))


def _tiny_data(n: int = 120):
    from layerscope.data import ArrayDataset
    from layerscope.data.base import Normalization

    g = torch.Generator().manual_seed(0)
    x = torch.randn(n, 4, generator=g)
    y = (x[:, 0] < 0).long()  # the model predicts argmax(relu(x0)-relu(-x0), ...) = class 0 iff x0 > 0
    y[:7] = 1 - y[:7]  # some label noise: the model is wrong on exactly these (unless x0 == 0)
    return ArrayDataset(x, y, classes=["pos", "neg"], normalization=Normalization(scale=1.0))


def _state(m: nn.Module):
    return ({k: v.clone() for k, v in m.state_dict().items()}, m.training,
            [p.requires_grad for p in m.parameters()])


def _hooks(m: nn.Module) -> int:
    return sum(len(mod._forward_hooks) + len(mod._forward_pre_hooks) for mod in m.modules())


def test_project_model_tiny_hand_model(tmp_path: Path) -> None:
    model = _Tiny().train()
    model.fc1.weight.requires_grad_(False)
    before = _state(model)
    ds = _tiny_data()
    study = project_model(model, ds, "all", n=None, method="pca", random_state=0)
    assert study.layers == ["fc1", "relu1"] and study.checkpoints == [None]
    p = study.get("relu1")
    assert p.metrics["ac"] == pytest.approx(1 - 7 / 120)  # hand-worked: only the flipped labels are wrong
    # the activations of relu1 worked out by hand: (relu(x0), relu(-x0), relu(x1), relu(-x1))
    x = ds.x.numpy()
    h = np.maximum(np.stack([x[:, 0], -x[:, 0], x[:, 1], -x[:, 1]], axis=1), 0)
    assert p.metrics["nh_original"] == pytest.approx(neighborhood_hit(h, ds.y.numpy()))
    # model untouched, no hooks left
    after = _state(model)
    assert all(torch.equal(before[0][k], after[0][k]) for k in before[0])
    assert before[1:] == after[1:] and _hooks(model) == 0
    out = save_study(study, tmp_path / "o", model=model, data="tiny", classes=ds.classes)
    doc = json.loads(out.read_text())
    assert doc["analysis"] == "projection" and doc["layers"] == ["fc1", "relu1"]
    assert len(doc["projections"]) == 2 and len(doc["projections"][0]["x"]) == 120
    assert doc["metrics"]["nh"]["model"]["relu1"] == pytest.approx(p.metrics["nh"])
    for f in doc["figures"]:
        assert (tmp_path / "o" / f["path"]).stat().st_size > 1000
    # errors leave the model as it was too
    with pytest.raises(LayerNotFoundError, match="Did you mean"):
        project_model(model, ds, ["relu"], n=None, method="pca")
    bad = ds.subset(np.arange(120))
    bad.tensors[0][5, 0] = float("nan")
    with pytest.raises(DataError, match="NaN"):
        project_model(model, bad, ["relu1"], n=None, method="pca")
    assert _hooks(model) == 0 and model.training and not model.fc1.weight.requires_grad


def test_project_model_checkpoints_aligned_over_epochs(tmp_path: Path) -> None:
    from layerscope.data import load_dataset
    from layerscope.models import build_model
    from layerscope.projection.analysis import models_from_run
    from layerscope.training import train

    ds = load_dataset("mnist:test").subset(np.arange(600))
    model = build_model("mlp:width=16,depth=2", (1, 28, 28), 10)
    train(model, ds, out_dir=tmp_path / "run", epochs=2, checkpoints=[0, 2], lr=0.05, meta={"arch": "mlp:width=16,depth=2", "input_shape": [1, 28, 28], "classes": ds.classes, "data": "mnist:test"})
    models = models_from_run(tmp_path / "run", ["0", "last"])
    assert list(models) == [0, 2]
    with pytest.raises(ParameterError, match="no checkpoint at epoch 1"):
        models_from_run(tmp_path / "run", [1])
    study = project_model(models, ds, ["relu2"], n=150, method="tsne", aligned=True, **FAST)
    assert study.checkpoints == [0, 2] and len(study.sequences) == 1 and study.sequences[0].axis == "epochs"
    nh0, nh2 = study.get("relu2", 0).metrics["nh"], study.get("relu2", 2).metrics["nh"]
    ac0, ac2 = study.get("relu2", 0).metrics["ac"], study.get("relu2", 2).metrics["ac"]
    assert ac2 > ac0 and nh2 > nh0  # training separates the classes
    assert study.get("relu2", 2).parameters["initialized"]
    out = save_study(study, tmp_path / "o", classes=ds.classes)
    doc = json.loads(out.read_text())
    assert doc["sequences"] == [{"axis": "epochs", "aligned": True, "displacement": doc["sequences"][0]["displacement"],
                                 "frames": [0, 1]}]
    assert doc["metrics"]["nh"]["2"]["relu2"] == pytest.approx(nh2) and doc["checkpoints"] == [0, 2]
    paths = [f["path"] for f in doc["figures"]]
    assert "trails_epochs_relu2.png" in paths and "before_after.png" in paths


def test_neuron_projection_hand_data() -> None:
    rng = np.random.default_rng(0)
    y = np.repeat(np.arange(3), 60)
    base = rng.normal(size=(180, 1))
    x = rng.normal(size=(180, 12))
    x[:, 1] = -2 * base[:, 0]  # neurons 0 and 1 perfectly anti-correlated: distance 0
    x[:, 0] = base[:, 0]
    x[:, 5] = 3.0 * (y == 2) + 0.1 * rng.normal(size=180)  # neuron 5 tells class 2 from the rest
    x[:, 7] = 0.0  # dead neuron
    d, alive = neuron_dissimilarity(x)
    assert 7 not in alive and len(alive) == 11
    assert d[0, 1] == pytest.approx(0.0, abs=1e-12) and np.allclose(np.diag(d), 0)
    assert ((d >= 0) & (d <= 1)).all() and np.allclose(d, d.T)
    res = neuron_projection(x, y, perplexity=3.0, n_estimators=50, random_state=0)
    assert res.embedding.shape == (11, 2) and res.dead.tolist() == [7]
    assert res.metrics["top_neurons"]["2"][0] == 5
    i0, i1 = list(alive).index(0), list(alive).index(1)
    dist = np.linalg.norm(res.embedding[:, None] - res.embedding[None], axis=2)
    assert dist[i0, i1] <= np.sort(dist[i0])[2]  # 1 is among 0's nearest neighbours in the layout
    conv = rng.normal(size=(180, 6, 3, 3))
    r2 = neuron_projection(conv, y, method="mds", n_estimators=10)
    assert r2.parameters["pooled"] and r2.embedding.shape == (6, 2)
    with pytest.raises(ParameterError, match="perplexity 30 is too large for 11 neurons"):
        neuron_projection(x, y, perplexity=30.0)
    with pytest.raises(DataError, match="two classes"):
        neuron_projection(x, np.zeros(180))


def test_cli_project_probe_cka_neurons(tmp_path: Path) -> None:
    runner = CliRunner()
    common = ["--model", "mnist-mlp", "--data", "mnist:test", "--n", "200", "--no-progress"]
    r = runner.invoke(app, ["project", *common, "--method", "pca", "--thumbnails", "3", "--out", str(tmp_path / "p")])
    assert r.exit_code == 0, r.output
    doc = json.loads((tmp_path / "p" / "result.json").read_text())
    assert doc["analysis"] == "projection" and [t["layer"] for t in doc["metrics"]["table"]] == ["relu1", "relu2"]
    assert doc["metrics"]["table"][0]["ac"] > 0.9 and len(doc["projections"][1]["sample_ids"]) == 200
    assert all((tmp_path / "p" / f["path"]).exists() for f in doc["figures"])
    r = runner.invoke(app, ["probe", *common, "--out", str(tmp_path / "q")])
    assert r.exit_code == 0, r.output
    doc = json.loads((tmp_path / "q" / "result.json").read_text())
    assert doc["analysis"] == "probe" and doc["probes"]["model"][1]["accuracy"] > 0.8
    r = runner.invoke(app, ["cka", *common, "--out", str(tmp_path / "c")])
    assert r.exit_code == 0, r.output
    doc = json.loads((tmp_path / "c" / "result.json").read_text())
    m = np.array(doc["metrics"]["cka"])
    assert doc["rows"] == ["relu1", "relu2"] and np.allclose(np.diag(m), 1.0) and 0 < m[0, 1] < 1
    r = runner.invoke(app, ["cka", *common, "--model-b", "mnist-mlp", "--layers-b", "relu2,fc3", "--out", str(tmp_path / "c2")])
    assert r.exit_code == 0, r.output
    doc = json.loads((tmp_path / "c2" / "result.json").read_text())
    m2 = np.array(doc["metrics"]["cka"])
    assert doc["parameters"]["mode"] == "models" and doc["cols"] == ["relu2", "fc3"]
    assert m2.shape == (2, 2) and m2[1, 0] == pytest.approx(1.0) and m2[0, 0] == pytest.approx(m[0, 1])
    r = runner.invoke(app, ["neurons", *common, "--layer", "relu2", "--class", "3", "--n-estimators", "20",
                            "--out", str(tmp_path / "n")])
    assert r.exit_code == 0, r.output
    doc = json.loads((tmp_path / "n" / "result.json").read_text())
    assert doc["analysis"] == "neurons" and list(doc["neurons"]["importances"]) == ["3"]
    assert (tmp_path / "n" / "neurons_class3.png").exists()
    r = runner.invoke(app, ["project", *common, "--checkpoints", "0,last", "--out", str(tmp_path / "e")])
    assert r.exit_code != 0 and isinstance(r.exception, ParameterError)
    assert "needs a run folder" in str(r.exception)
