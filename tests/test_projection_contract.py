"""The analysis contract for project, neurons, probe, cka, maximize and capture: the Python API
writes the same folder as the CLI, results have short reprs, HTML with the key figure and
matplotlib Figures, load what they saved, and the report reads a capture folder."""

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
from typer.testing import CliRunner

from layerscope.cli import app
from layerscope.results import AnalysisResult

REPO = Path(__file__).resolve().parents[1]
COMMON = ["--model", "mnist-mlp", "--data", "mnist:test", "--no-progress"]
#: keys that hold wall-clock times or timestamps: the only values allowed to differ between two runs
TIMING_KEYS = {"created", "seconds"}


def _without_timings(v: Any) -> Any:
    if isinstance(v, dict):
        return {k: _without_timings(x) for k, x in v.items() if k not in TIMING_KEYS}
    if isinstance(v, list):
        return [_without_timings(x) for x in v]
    return v


def assert_same_folder(a: Path, b: Path) -> None:
    """Same file names; result.json equal apart from timings; arrays and PNG bytes equal."""
    files_a = sorted(p.relative_to(a).as_posix() for p in a.rglob("*") if p.is_file())
    files_b = sorted(p.relative_to(b).as_posix() for p in b.rglob("*") if p.is_file())
    assert files_a == files_b
    assert "result.json" in files_a
    for f in files_a:
        pa, pb = a / f, b / f
        if f.endswith(".json"):
            assert _without_timings(json.loads(pa.read_text())) == _without_timings(json.loads(pb.read_text())), f
        elif f.endswith(".npz"):
            with np.load(pa) as za, np.load(pb) as zb:
                assert sorted(za.files) == sorted(zb.files), f
                for k in za.files:
                    assert np.array_equal(za[k], zb[k]), (f, k)
        elif f.endswith(".npy"):
            assert np.array_equal(np.load(pa), np.load(pb)), f
        else:  # PNG: matplotlib embeds no date in PNGs, so the bytes must match
            assert pa.read_bytes() == pb.read_bytes(), f


def _cli(args: list[str]) -> None:
    r = CliRunner().invoke(app, args)
    assert r.exit_code == 0, (r.output, r.exception)


@pytest.fixture
def mlp() -> nn.Module:
    from layerscope.loading import load_model

    return load_model("mnist-mlp")


@pytest.fixture
def digits() -> Any:
    from layerscope.data import load_dataset

    return load_dataset("mnist:test")


def check_contract(res: AnalysisResult, cls: type, tmp_path: Path, same: Callable[[Any, Any], None]) -> None:
    """Short repr, HTML with an <img>, Figures, and save -> load -> the same numbers."""
    r = repr(res)
    assert len(r) < 300 and "array(" not in r and r.startswith(cls.__name__), r
    html = res._repr_html_()
    assert "<img" in html and "data:image/png;base64," in html
    figs = res.figures()
    assert figs and all(isinstance(f, Figure) for f in figs.values())
    back = cls.load(res.save(tmp_path / "roundtrip"))
    assert isinstance(back, cls) and back.analysis == res.analysis
    same(res, back)
    assert set(back.figures()) == set(figs)


# ------------------------------------------------------------------------------------------
# API folder == CLI folder, one test per analysis
# ------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_project_api_equals_cli(tmp_path: Path, mlp: nn.Module, digits: Any) -> None:
    from layerscope.projection import ProjectionStudy, project_model

    _cli(["project", *COMMON, "--n", "120", "--method", "pca", "--thumbnails", "3", "--out", str(tmp_path / "cli")])
    study = project_model(mlp, digits, "all", n=120, method="pca", random_state=0, thumbnails=3, k=6,
                          data_spec="mnist:test")
    study.save(tmp_path / "api")
    assert_same_folder(tmp_path / "cli", tmp_path / "api")
    # AC in the result is the model's accuracy on exactly these observations (a plain forward pass)
    x, y = digits.x[study.indices], digits.y[study.indices].numpy()
    with torch.no_grad():
        acc = float((mlp(x).argmax(1).numpy() == y).mean())
    assert study.metrics["ac"]["model"] == pytest.approx(acc)

    def same(a: ProjectionStudy, b: ProjectionStudy) -> None:
        assert b.layers == a.layers and b.checkpoints == a.checkpoints
        assert _without_timings(b.metrics) == _without_timings(a.metrics)
        assert np.allclose(b.get("relu2").embedding, a.get("relu2").embedding, atol=1e-4)
        assert np.array_equal(b.indices, a.indices)

    check_contract(study, ProjectionStudy, tmp_path, same)


def test_neurons_api_equals_cli(tmp_path: Path, mlp: nn.Module, digits: Any) -> None:
    from layerscope.projection.neurons import NeuronProjection, project_neurons

    _cli(["neurons", *COMMON, "--n", "150", "--layer", "relu2", "--class", "2,7", "--method", "mds",
          "--n-estimators", "10", "--out", str(tmp_path / "cli")])
    res = project_neurons(mlp, digits, "relu2", n=150, classes=[2, 7], method="mds", n_estimators=10, random_state=0,
                          data_spec="mnist:test")
    res.save(tmp_path / "api")
    assert_same_folder(tmp_path / "cli", tmp_path / "api")
    assert sorted(p.name for p in (tmp_path / "api").glob("*.png")) == ["neurons_class2.png", "neurons_class7.png"]

    def same(a: NeuronProjection, b: NeuronProjection) -> None:
        assert b.layer == "relu2" and list(b.importances) == [2, 7] and b.classes == a.classes
        assert np.allclose(b.importances[7], a.importances[7], atol=1e-6)
        assert np.array_equal(b.neuron_index, a.neuron_index) and b.metrics == a.metrics

    check_contract(res, NeuronProjection, tmp_path, same)


def test_probe_api_equals_cli(tmp_path: Path, mlp: nn.Module, digits: Any) -> None:
    from layerscope.similarity import ProbeStudy, linear_probe, probe_model

    _cli(["probe", *COMMON, "--n", "200", "--out", str(tmp_path / "cli")])
    res = probe_model(mlp, digits, "all", n=200, random_state=0, data_spec="mnist:test")
    res.save(tmp_path / "api")
    assert_same_folder(tmp_path / "cli", tmp_path / "api")
    # the same probe by hand: activations of a plain forward pass of the same 200 digits
    from layerscope.projection.analysis import select_observations

    idx = select_observations(digits, 200, 0)
    with torch.no_grad():
        h = torch.relu(mlp.fc1(torch.flatten(digits.x[idx], 1)))
    by_hand = linear_probe(h.numpy(), digits.y[idx].numpy(), random_state=0, layer="relu1")
    assert res.results["model"][0].accuracy == pytest.approx(by_hand.accuracy)
    assert res.results["model"][0].to_dict() == by_hand.to_dict()

    def same(a: ProbeStudy, b: ProbeStudy) -> None:
        assert b.layers == a.layers and b.metrics == a.metrics and b.chance == a.chance

    check_contract(res, ProbeStudy, tmp_path, same)


def test_cka_api_equals_cli(tmp_path: Path, mlp: nn.Module, digits: Any) -> None:
    from layerscope.loading import load_model
    from layerscope.similarity import CKAResult, cka_model

    _cli(["cka", *COMMON, "--n", "150", "--model-b", "mnist-mlp", "--layers-b", "relu2,fc3", "--out", str(tmp_path / "cli")])
    res = cka_model(mlp, digits, "all", model_b=load_model("mnist-mlp"), layers_b=["relu2", "fc3"], n=150,
                    label_a="mnist-mlp", label_b="mnist-mlp", data_spec="mnist:test")
    res.save(tmp_path / "api")
    assert_same_folder(tmp_path / "cli", tmp_path / "api")
    assert res.mode == "models" and res.matrix[1, 0] == pytest.approx(1.0)  # relu2 vs itself in a copy

    def same(a: CKAResult, b: CKAResult) -> None:
        assert b.rows == a.rows and b.cols == a.cols and b.mode == a.mode
        assert np.allclose(b.matrix, a.matrix, atol=1e-6) and b.metrics == a.metrics

    check_contract(res, CKAResult, tmp_path, same)


@pytest.mark.slow
def test_maximize_api_equals_cli(tmp_path: Path, mlp: nn.Module, digits: Any) -> None:
    from layerscope.featurevis import ActMaxResult, maximize
    from layerscope.results import model_description

    _cli(["maximize", "--model", "mnist-mlp", "--layer", "fc3", "--units", "0,3", "--steps", "8", "--restarts", "2",
          "--no-progress", "--out", str(tmp_path / "cli")])
    res = maximize(mlp, "fc3", [0, 3], kind="auto", steps=8, restarts=2, data=digits, data_max=False,
                   model_info={**model_description(mlp), "spec": "mnist-mlp"}, random_state=0)
    res.save(tmp_path / "api")
    assert_same_folder(tmp_path / "cli", tmp_path / "api")
    doc = json.loads((tmp_path / "api" / "result.json").read_text())
    assert [u["image"] for u in doc["units"]] == ["units/unit_0000.png", "units/unit_0003.png"]
    assert [f["path"] for f in doc["figures"]] == ["grid.png", "traces.png"]

    def same(a: ActMaxResult, b: ActMaxResult) -> None:
        assert np.array_equal(b.images, a.images) and b.metrics == a.metrics and b.model == a.model

    check_contract(res, ActMaxResult, tmp_path, same)


def test_capture_api_equals_cli_and_report_finds_it(tmp_path: Path, mlp: nn.Module, digits: Any) -> None:
    from layerscope.capture_result import CaptureResult, capture_dataset

    _cli(["capture", *COMMON, "--layers", "relu1,fc3", "--limit", "90", "--stratify", "--out", str(tmp_path / "runs" / "cli")])
    res = capture_dataset(mlp, digits, ["relu1", "fc3"], limit=90, stratify=True, data_spec="mnist:test")
    res.save(tmp_path / "api")
    assert_same_folder(tmp_path / "runs" / "cli", tmp_path / "api")
    # accuracy: the model's arg-max on exactly the captured rows, by a plain forward pass
    ids = res.activations.sample_ids
    with torch.no_grad():
        logits = mlp(digits.x[ids])
    assert np.allclose(res.activations["fc3"], logits.numpy(), atol=1e-5)
    assert res.metrics["accuracy"] == pytest.approx(float((logits.argmax(1) == digits.y[ids]).float().mean()))
    assert res.metrics["n_samples"] == 90 and res.metrics["n_labelled"] == 90
    doc = json.loads((tmp_path / "api" / "result.json").read_text())
    assert doc["analysis"] == "capture" and [r["name"] for r in doc["layers"]] == ["relu1", "fc3"]
    assert doc["layers"][1]["output_shape"] == [10] and (tmp_path / "api" / doc["layers"][1]["file"]).exists()
    # the report finds the capture folder as one result and renders it
    r = CliRunner().invoke(app, ["report", str(tmp_path / "runs")])
    assert r.exit_code == 0, r.output
    assert "report of 1 results" in r.output
    html = (tmp_path / "runs" / "report.html").read_text()
    assert "relu1" in html and "accuracy" in html

    def same(a: CaptureResult, b: CaptureResult) -> None:
        assert np.array_equal(b.activations["relu1"], a.activations["relu1"]) and b.metrics == a.metrics

    check_contract(res, CaptureResult, tmp_path, same)


# ------------------------------------------------------------------------------------------
# Edge cases
# ------------------------------------------------------------------------------------------


class _Identity(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.lin = nn.Linear(3, 3)
        with torch.no_grad():
            self.lin.weight.copy_(torch.eye(3))
            self.lin.bias.zero_()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.lin(x)


def test_capture_accuracy_counts_labelled_samples_only(tmp_path: Path) -> None:
    from torch.utils.data import TensorDataset

    from layerscope.capture_result import capture_dataset
    from layerscope.exceptions import ParameterError

    # arg-max of the identity model is the index of the largest input value
    x = torch.tensor([[3.0, 0, 0], [0, 3, 0], [0, 0, 3], [3, 0, 0], [0, 3, 0]])
    y = torch.tensor([0, 2, 2, -1, -1])  # right, wrong, right, unlabelled, unlabelled
    model = _Identity()
    res = capture_dataset(model, TensorDataset(x, y), "all")
    assert res.parameters["layers"] == ["lin"]
    assert res.metrics["n_labelled"] == 3 and res.metrics["accuracy"] == pytest.approx(2 / 3)
    unlabelled = capture_dataset(model, TensorDataset(x, torch.full((5,), -1)), ["lin"])
    assert "accuracy" not in unlabelled.metrics and "accuracy" not in repr(unlabelled)
    with pytest.raises(ParameterError, match="stratified subset needs class labels"):
        capture_dataset(model, TensorDataset(x, y), ["lin"], limit=2, stratify=True)
    with pytest.raises(ParameterError, match="limit must be at least 1"):
        capture_dataset(model, TensorDataset(x, y), ["lin"], limit=0)


def test_neuron_class_subset_without_names_keeps_each_class_name() -> None:
    """Importances of classes 1 and 2 without class names are labelled "1" and "2" (not shifted)."""
    from layerscope.projection.neurons import neuron_projection

    rng = np.random.default_rng(0)
    y = np.repeat(np.arange(3), 40)
    x = rng.normal(size=(120, 8))
    x[:, 4] = 3.0 * (y == 2) + 0.1 * rng.normal(size=120)
    res = neuron_projection(x, y, classes=[1, 2], method="mds", n_estimators=20)
    imps = res.to_dict()["neurons"]["importances"]
    assert list(imps) == ["1", "2"]
    assert int(np.argmax(imps["2"])) == list(res.neuron_index).index(4)  # class 2's best neuron is neuron 4
    assert res.class_name(2) == "2" and set(res.figures()) == {"neurons_class1", "neurons_class2"}


def test_cka_model_modes_and_errors(digits: Any, mlp: nn.Module) -> None:
    from layerscope.exceptions import ParameterError
    from layerscope.similarity import cka_model, linear_cka

    res = cka_model(mlp, digits, ["relu1", "relu2"], n=100)
    assert res.mode == "layers" and np.allclose(np.diag(res.matrix), 1.0) and "diagonal" not in res.metrics
    assert res.parameters["a"] == type(mlp).__name__ and res.parameters["b"] is None
    from layerscope.capture import collect_activations
    from layerscope.projection.analysis import select_observations

    acts = collect_activations(mlp, digits, ["relu1", "relu2"], indices=select_observations(digits, 100, 0))
    assert res.matrix[0, 1] == pytest.approx(linear_cka(acts["relu1"], acts["relu2"]))
    two = cka_model({0: mlp, 5: mlp}, digits, ["relu2"], n=100)
    assert two.mode == "checkpoints" and two.label_a == "epoch 0" and two.metrics["diagonal"]["relu2"] == pytest.approx(1.0)
    with pytest.raises(ParameterError, match="either two checkpoints or model_b"):
        cka_model({0: mlp, 5: mlp}, digits, ["relu2"], model_b=mlp, n=100)
    with pytest.raises(ParameterError, match="two checkpoints at most"):
        cka_model({0: mlp, 1: mlp, 2: mlp}, digits, ["relu2"], n=100)


def test_probe_model_group_by_unknown_label(digits: Any, mlp: nn.Module) -> None:
    from layerscope.exceptions import ParameterError
    from layerscope.similarity import probe_model

    with pytest.raises(ParameterError, match="no such per-sample label"):
        probe_model(mlp, digits, ["relu1"], n=100, group_by="speaker")


def test_progress_takes_tqdm_keywords(digits: Any, mlp: nn.Module) -> None:
    """Any tqdm-compatible callable works: the analyses call it with total= and desc= keywords."""
    from layerscope.similarity import probe_model

    seen: list[tuple[Any, str]] = []

    def tqdm_like(iterable: Any, desc: str | None = None, total: int | None = None, **kw: Any) -> Any:
        seen.append((total, str(desc)))
        return iterable

    probe_model(mlp, digits, ["relu1", "relu2"], n=100, progress=tqdm_like)
    assert (2, "probes of layers") in seen


@pytest.mark.slow
def test_plot_modules_leave_the_matplotlib_backend_alone() -> None:
    code = (
        "import matplotlib; matplotlib.use('svg'); "
        "import layerscope.projection.plots, layerscope.featurevis.plots, layerscope.similarity_plots, "
        "layerscope.capture_result; import layerscope.projection.analysis; "
        "print(matplotlib.get_backend())"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env={"PYTHONPATH": str(REPO), "PATH": ""}).stdout.strip()
    assert out == "svg"


def test_cli_modules_are_thin() -> None:
    for name in ("projection", "similarity", "maximize", "foundation", "train", "_models"):
        n = len((REPO / "layerscope" / "cli" / f"{name}.py").read_text().splitlines())
        assert n <= 125, (name, n)
    src = (REPO / "layerscope" / "cli" / "foundation.py").read_text()
    assert "write_result" not in src and ".mean()" not in src  # no result.json or metric built in the CLI


def test_reprs_stay_short_with_many_layers(tmp_path: Path) -> None:
    from torch.utils.data import TensorDataset

    from layerscope.capture_result import CaptureResult, capture_dataset
    from layerscope.similarity import CKAResult

    model = nn.Sequential(*[nn.Linear(4, 4) for _ in range(40)])
    ds = TensorDataset(torch.randn(20, 4), torch.randint(0, 4, (20,)))
    res = capture_dataset(model, ds, "all", predictions=False)
    assert len(res.activations.arrays) == 40 and "accuracy" not in res.metrics
    assert repr(res) == "CaptureResult(n=20, layers=[0, 1, 2, 3, ... (40)])"
    assert "<img" in res._repr_html_()
    (fig,) = res.figures().values()
    assert len(fig.axes) == 32  # the first 32 layers, as the caption says
    back = CaptureResult.load(res.save(tmp_path / "c"))
    assert np.array_equal(back.activations["39"], res.activations["39"])
    names = [f"l{i}" for i in range(30)]
    cka = CKAResult(matrix=np.eye(30), rows=names, cols=names)
    assert len(repr(cka)) < 120 and "... (30)" in repr(cka)


# ------------------------------------------------------------------------------------------
# Through the seam: sequences, non-classifiers, layouts
# ------------------------------------------------------------------------------------------


class _Tokens(torch.utils.data.Dataset):  # type: ignore[type-arg]
    """Dict items like a tokenizer's: input_ids, attention_mask and labels."""

    def __init__(self, n: int = 80, t: int = 7, vocab: int = 12, seed: int = 0) -> None:
        g = torch.Generator().manual_seed(seed)
        self.ids = torch.randint(1, vocab, (n, t), generator=g)
        lengths = torch.randint(2, t + 1, (n,), generator=g)
        self.mask = (torch.arange(t)[None, :] < lengths[:, None]).long()
        self.ids = self.ids * self.mask  # padding token 0 after each sequence
        self.labels = (self.ids[:, 0] % 3).numpy()  # the class is told by the first token

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, i: int) -> dict[str, Any]:
        return {"input_ids": self.ids[i], "attention_mask": self.mask[i], "labels": int(self.labels[i])}


class _Encoder(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.emb = nn.Embedding(12, 6)
        self.head = nn.Linear(6, 3)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        h = self.emb(input_ids)
        m = attention_mask[..., None].float()
        return self.head((h * m).sum(1) / m.sum(1))


def test_probe_default_reduction_is_the_masked_token_mean() -> None:
    """On a sequence layer (N, T, D) the default reduce='mean' averages the unmasked tokens, not the
    D features: equal to a probe on the hand-pooled embeddings."""
    from layerscope.similarity import linear_probe, probe_model

    ds, model = _Tokens(), _Encoder()
    res = probe_model(model, ds, ["emb"], n=None, random_state=0)
    with torch.no_grad():
        h = model.emb(ds.ids)
    m = ds.mask[..., None].float()
    pooled = ((h * m).sum(1) / m.sum(1)).numpy()
    by_hand = linear_probe(pooled, ds.labels, random_state=0, layer="emb")
    assert res.results["model"][0].to_dict() == by_hand.to_dict()
    assert res.results["model"][0].n_features == 6  # the D features survive; T was averaged
    assert res.parameters["layouts"] == {"emb": "sequence"} and res.parameters["reduce"] == "mean"


def test_capture_and_project_of_a_non_classifier(tmp_path: Path) -> None:
    """A model whose output is not (N, n_classes) scores: no predictions, no accuracy, no AC; the
    result says why."""
    from torch.utils.data import TensorDataset

    from layerscope.capture_result import capture_dataset
    from layerscope.projection import project_model

    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(5, 8), nn.ReLU(), nn.Linear(8, 2))  # a 2-D embedding, 4 classes
    x = torch.randn(60, 5)
    y = torch.arange(60) % 4
    res = capture_dataset(model, TensorDataset(x, y), ["0", "2"])
    assert res.activations.predictions is None and "accuracy" not in res.metrics
    res.save(tmp_path / "c")
    doc = json.loads((tmp_path / "c" / "result.json").read_text())
    assert doc["predictions"].startswith("no predictions") and "accuracy" not in doc["metrics"]
    assert [r["layout"] for r in doc["layers"]] == ["flat", "flat"]
    study = project_model(model, TensorDataset(x, y), ["0"], n=None, method="pca", thumbnails=0)
    assert study.metrics["ac"] == {"model": None} and study.get("0").predictions is None
    captions = {stem: caption for stem, _, _, caption in study._figure_specs()}
    scatter = [c for stem, c in captions.items() if stem == "grid" or stem.startswith("projection_")]
    assert len(scatter) == 2 and all("No AC and no misclassified marks" in c for c in scatter)
    assert all("triangles" not in c for c in captions.values())


def test_layout_flag_for_an_ambiguous_3d_output(tmp_path: Path) -> None:
    """A 3-D output layerscope cannot read is refused with the fix; --layout / layouts= give it."""
    from layerscope.exceptions import ParameterError
    from layerscope.similarity import probe_model

    class Conv1d(nn.Module):  # (N, 4, 6) from a module of no known kind: channels or time?
        def __init__(self) -> None:
            super().__init__()
            self.lift = nn.Identity()

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.lift(x.view(len(x), 4, 6)).sum(2)

    from torch.utils.data import TensorDataset

    torch.manual_seed(0)
    x, y = torch.randn(40, 24), torch.arange(40) % 2
    with pytest.raises(ParameterError, match="will not guess"):
        probe_model(Conv1d(), TensorDataset(x, y), ["lift"], n=None)
    res = probe_model(Conv1d(), TensorDataset(x, y), ["lift"], n=None, layouts={"lift": "spatial"})
    assert res.results["model"][0].n_features == 4 and res.parameters["layouts"] == {"lift": "spatial"}
    from layerscope.cli._models import parse_layouts

    assert parse_layouts("lift=spatial,enc.0=sequence") == {"lift": "spatial", "enc.0": "sequence"}
    with pytest.raises(ParameterError, match="NAME=spatial"):
        parse_layouts("lift:spatial")


def test_layer_specs_with_selectors_are_accepted() -> None:
    from layerscope.exceptions import LayerNotFoundError
    from layerscope.projection.analysis import resolve_projection_layers

    class Pair(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.rnn = nn.GRU(3, 4, batch_first=True)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.rnn(x)[0][:, -1]

    assert resolve_projection_layers(Pair(), ["rnn:h_n", "rnn[0]"]) == ["rnn:h_n", "rnn[0]"]
    with pytest.raises(LayerNotFoundError, match="rnn"):
        resolve_projection_layers(Pair(), ["rn"])
    with pytest.raises(LayerNotFoundError, match="No layer names"):
        resolve_projection_layers(Pair(), [])


def test_subset_of_data_whose_items_carry_the_labels() -> None:
    """Without .y/.labels the stratified subset reads the labels the items carry (seam rule)."""
    from layerscope.exceptions import DataError
    from layerscope.projection.analysis import dataset_labels, select_observations

    class NoAttr(_Tokens):
        def __init__(self) -> None:
            super().__init__()
            self.hidden = self.labels
            del self.labels

        def __getitem__(self, i: int) -> dict[str, Any]:
            return {"input_ids": self.ids[i], "attention_mask": self.mask[i], "labels": int(self.hidden[i])}

    ds = NoAttr()
    assert np.array_equal(dataset_labels(ds), ds.hidden)
    idx = select_observations(ds, 30, 0)
    assert len(idx) == 30 and len(set(idx.tolist())) == 30
    from layerscope.data import stratified_indices

    assert np.array_equal(idx, stratified_indices(ds.hidden, 30, 0))  # the same subset as from the labels themselves
    assert np.bincount(ds.hidden[idx], minlength=3).tolist() == [8, 11, 11]  # 30 x (22, 28, 30) / 80, rounded
    x = torch.randn(10, 3)
    assert np.array_equal(select_observations(x, None), np.arange(10))  # all rows: no labels needed
    with pytest.raises(DataError, match="yields no class labels"):
        select_observations(x, 5)
