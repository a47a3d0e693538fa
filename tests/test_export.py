"""``layerscope export --tensorboard``: files TensorBoard's own Projector plugin reads back exactly."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from torch import nn

import layerscope as ls
from layerscope.cli import main
from layerscope.exceptions import DataError, ParameterError
from layerscope.export import SPRITE_MAX_PIXELS, export_tensorboard, sprite_image
from layerscope.projection import Projection, ProjectionStudy
from layerscope.results import write_result


def run_cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as exc:
        main(list(argv))
    out = capsys.readouterr()
    return int(exc.value.code or 0), out.out, out.err


def study_folder(tmp: Path, ids: list[int], data: str | None = "mnist:test",
                 classes: list[str] | None = None) -> tuple[Path, ProjectionStudy]:
    """A saved two-layer, two-checkpoint projection study with hand-set coordinates."""
    rng = np.random.default_rng(0)
    n = len(ids)
    labels = np.arange(n) % 3
    preds = labels.copy()
    preds[::4] = (preds[::4] + 1) % 3  # every fourth point misclassified
    projections = [
        Projection(embedding=rng.normal(size=(n, 2)) * 10, labels=labels, predictions=preds,
                   sample_ids=np.asarray(ids), layer=layer, checkpoint=cp, metrics={"nh": 0.5})
        for cp in (0, 3) for layer in ("fc1", "relu2")
    ]
    study = ProjectionStudy(projections=projections, layers=["fc1", "relu2"], checkpoints=[0, 3],
                            indices=np.asarray(ids), parameters={"method": "tsne", "n": n}, data=data,
                            classes=classes if classes is not None else ["zero", "one", "two"])
    study.save(tmp / "proj")
    return tmp / "proj", study


IDS = [7, 3, 11, 0, 42, 5, 9]  # MNIST test rows, out of order


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A saved study (figures take seconds to draw: saved once, copied per test)."""
    return study_folder(tmp_path_factory.mktemp("study"), IDS)[0]


def copy_of(base: Path, tmp: Path, **edits: Any) -> Path:
    """A copy of the study folder with top-level result.json keys replaced."""
    dst = tmp / "proj"
    shutil.copytree(base, dst)
    doc = json.loads((dst / "result.json").read_text())
    doc.update(edits)
    (dst / "result.json").write_text(json.dumps(doc))
    return dst


class _NoRuns:
    """The data provider TensorBoard passes the plugin; the export folder is the root run "."."""

    def list_runs(self, ctx: Any, experiment_id: str) -> list[Any]:
        return []


def tensorboard_client(logdir: Path) -> tuple[Any, Any]:
    pytest.importorskip("tensorboard", reason="tensorboard not installed (layerscope[test])")
    from tensorboard.plugins import base_plugin
    from tensorboard.plugins.projector import projector_plugin as pp
    from werkzeug.test import Client

    plugin = pp.ProjectorPlugin(base_plugin.TBContext(logdir=str(logdir), data_provider=_NoRuns()))
    apps = plugin.get_plugin_apps()

    def get(route: str, **args: str) -> Any:
        resp = Client(apps[route]).get(route, query_string=args)
        assert resp.status_code == 200, (route, args, resp.get_data(as_text=True))
        return resp

    return pp, get


def test_projection_export_reads_back_through_tensorboards_projector_plugin(base: Path, tmp_path: Path) -> None:
    from PIL import Image

    ids = IDS
    src = copy_of(base, tmp_path)
    saved = ProjectionStudy.load(src)  # coordinates as stored (rounded to 4 decimals)
    res = export_tensorboard(src, tmp_path / "tb")
    assert [e.name for e in res.embeddings] == ["fc1 @ epoch 0", "relu2 @ epoch 0", "fc1 @ epoch 3", "relu2 @ epoch 3"]

    pp, get = tensorboard_client(tmp_path / "tb")
    assert json.loads(get(pp.RUNS_ROUTE).get_data()) == ["."]
    config = json.loads(get(pp.CONFIG_ROUTE, run=".").get_data())
    names = [e["tensorName"] for e in config["embeddings"]]
    assert names == [e.name for e in res.embeddings]
    for emb, proj in zip(config["embeddings"], saved.projections):
        assert [int(s) for s in emb["tensorShape"]] == [len(ids), 2]
        raw = get(pp.TENSOR_ROUTE, run=".", name=emb["tensorName"]).get_data()
        got = np.frombuffer(raw, dtype=np.float32).reshape(len(ids), 2)
        np.testing.assert_array_equal(got, proj.embedding.astype(np.float32))  # exact: 9 digits round-trip float32
        meta = get(pp.METADATA_ROUTE, run=".", name=emb["tensorName"]).get_data(as_text=True).splitlines()
        assert meta[0].split("\t") == ["sample_id", "label", "prediction", "correct"]
        rows = [line.split("\t") for line in meta[1:]]
        assert [int(r[0]) for r in rows] == ids
        names3 = ["zero", "one", "two"]
        assert [r[1] for r in rows] == [names3[v] for v in proj.labels]
        assert [r[2] for r in rows] == [names3[v] for v in proj.predictions]  # type: ignore[union-attr]
        assert [r[3] for r in rows] == ["no" if i % 4 == 0 else "yes" for i in range(len(ids))]
        assert emb["sprite"]["singleImageDim"] == [28, 28]

    png = get(pp.SPRITE_IMAGE_ROUTE, run=".", name="fc1 @ epoch 0").get_data()
    sheet = np.asarray(Image.open(__import__("io").BytesIO(png)))
    cols = math.ceil(math.sqrt(len(ids)))  # 3 x 3 tiles for 7 points
    assert sheet.shape == (cols * 28, cols * 28)
    mnist = ls.load_dataset("mnist:test")
    for k, sid in enumerate(ids):  # tile k holds sample id ids[k], in point order
        r, c = divmod(k, cols)
        want = np.round(mnist.normalization.denormalize(mnist.x[sid : sid + 1])[0, 0] * 255).astype(np.uint8)
        np.testing.assert_array_equal(sheet[r * 28 : (r + 1) * 28, c * 28 : (c + 1) * 28], want)
    assert not sheet[2 * 28 :, 28:].any()  # the two unused tiles are black


def test_capture_export_holds_the_activations_of_a_plain_forward_pass(tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(1, 2, 3), nn.ReLU(), nn.Flatten(), nn.Linear(2 * 26 * 26, 10)).eval()
    data = ls.load_dataset("mnist:test")
    cap = ls.capture_dataset(model, data, ["1", "3"], limit=12, data_spec="mnist:test")
    cap.save(tmp_path / "cap")
    res = export_tensorboard(tmp_path / "cap", tmp_path / "tb", layers=["1", "3"])
    assert [(e.name, e.shape) for e in res.embeddings] == [("1", (12, 2 * 26 * 26)), ("3", (12, 10))]
    with torch.no_grad():
        x = torch.as_tensor(data.x[:12])
        want = {"1": model[1](model[0](x)).reshape(12, -1).numpy(), "3": model(x).numpy()}

    pp, get = tensorboard_client(tmp_path / "tb")
    for e in res.embeddings:
        raw = get(pp.TENSOR_ROUTE, run=".", name=e.name).get_data()
        got = np.frombuffer(raw, dtype=np.float32).reshape(e.shape)
        np.testing.assert_allclose(got, want[e.name], rtol=1e-6, atol=1e-6)
        meta = get(pp.METADATA_ROUTE, run=".", name=e.name).get_data(as_text=True).splitlines()
        assert meta[0].split("\t")[:4] == ["sample_id", "label", "prediction", "correct"]
        assert [int(line.split("\t")[1]) for line in meta[1:]] == data.y[:12].tolist()
        assert [int(line.split("\t")[2]) for line in meta[1:]] == want["3"].argmax(1).tolist()


def test_sprite_layout_and_shrinking(monkeypatch: pytest.MonkeyPatch) -> None:
    imgs = np.zeros((5, 28, 28))
    for i in range(5):
        imgs[i, i, :] = 1.0  # image i: a white row at height i
    sheet, tile, cols = sprite_image(imgs)
    a = np.asarray(sheet)
    assert (cols, tile, a.shape) == (3, (28, 28), (84, 84))
    for i in range(5):
        r, c = divmod(i, 3)
        t = a[r * 28 : (r + 1) * 28, c * 28 : (c + 1) * 28]
        assert t[i].min() == 255 and t.sum() == 255 * 28
    rgb, tile_rgb, _ = sprite_image(np.ones((2, 4, 6, 3)) * 0.5)
    assert rgb.mode == "RGB" and rgb.size == (2 * 6, 2 * 4) and tile_rgb == (6, 4)
    monkeypatch.setattr("layerscope.export.SPRITE_MAX_PIXELS", 40)
    small, stile, scols = sprite_image(imgs)
    assert scols == 3 and stile == (13, 13) and small.size == (39, 39) and max(small.size) <= 40
    assert SPRITE_MAX_PIXELS == 8192  # TensorBoard's limit
    with pytest.raises(ParameterError):
        sprite_image(np.zeros((0, 28, 28)))


def test_odd_labels_and_data_by_path(base: Path, tmp_path: Path) -> None:
    """Tabs / quotes in names stay one TSV cell and parse in the config; data named by a path is
    not read unless asked for; labels outside the class list stay numbers."""
    pytest.importorskip("tensorboard")
    from google.protobuf import text_format
    from tensorboard.plugins.projector.projector_config_pb2 import ProjectorConfig

    src = copy_of(base, tmp_path, data="npz:elsewhere/x.npz", classes=['a\tb', 'say "hi"'])
    res = export_tensorboard(src, tmp_path / "tb")
    assert all(e.sprite_path is None for e in res.embeddings)
    assert any("npz:elsewhere/x.npz" in n and "allow_external_data" in n for n in res.notes)
    cfg = text_format.Parse((tmp_path / "tb" / "projector_config.pbtxt").read_text(), ProjectorConfig())
    assert [e.tensor_name for e in cfg.embeddings] == [e.name for e in res.embeddings]
    lines = (tmp_path / "tb" / res.embeddings[0].metadata_path).read_text().splitlines()
    assert [line.split("\t")[1] for line in lines[1:]] == ["a b", 'say "hi"', "2"] * 2 + ["a b"]  # label 2: no name
    assert all(len(line.split("\t")) == 4 for line in lines)
    # a second export replaces the first (the folder is marked as an export)
    again = export_tensorboard(src, tmp_path / "tb", layers=["relu2"], sprites=False)
    assert [e.name for e in again.embeddings] == ["relu2 @ epoch 0", "relu2 @ epoch 3"]
    assert sorted(p.name for p in (tmp_path / "tb").iterdir() if p.is_dir()) == ["relu2_epoch_0", "relu2_epoch_3"]


def test_refusals(base: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(DataError, match="does not exist"):
        export_tensorboard(tmp_path / "nothing", tmp_path / "tb")
    write_result(tmp_path / "cka", "cka", metrics={"x": 1})
    with pytest.raises(DataError, match="no per-point embeddings.*projection, capture"):
        export_tensorboard(tmp_path / "cka", tmp_path / "tb")
    src = copy_of(base, tmp_path)
    with pytest.raises(ParameterError, match=r"\['conv9'\].*fc1"):
        export_tensorboard(src, tmp_path / "tb", layers=["conv9"])
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("keep me")
    with pytest.raises(ParameterError):
        export_tensorboard(src, mine)  # a user's own folder is never replaced
    assert (mine / "notes.txt").read_text() == "keep me"
    # damaged folder: a projection whose label column is shorter than its points
    doc = json.loads((src / "result.json").read_text())
    doc["projections"][0]["labels"] = doc["projections"][0]["labels"][:-1]
    (src / "result.json").write_text(json.dumps(doc))
    with pytest.raises(DataError, match="7 points but label columns"):
        export_tensorboard(src, tmp_path / "tb")

    code, _, err = run_cli(capsys, "export", "--tensorboard", str(tmp_path / "cka"), "--out", str(tmp_path / "tb2"))
    assert code == 2 and err.count("\n") == 1 and "cka" in err
    assert not (tmp_path / "tb2").exists()


def test_cli_export(base: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src = copy_of(base, tmp_path)
    code, out, err = run_cli(capsys, "export", "--tensorboard", str(src), "--out", str(tmp_path / "tb"),
                             "--layers", "fc1")
    assert code == 0, err
    assert "exported 2 embeddings of the projection result (with sprites)" in " ".join(out.split())
    doc = json.loads((tmp_path / "tb" / "layerscope-export.json").read_text())
    assert [e["name"] for e in doc["embeddings"]] == ["fc1 @ epoch 0", "fc1 @ epoch 3"]
    assert doc["embeddings"][0]["sprite_path"] == "sprite_0.png" and doc["decisions"]
    same = export_tensorboard(src, tmp_path / "lib", layers=["fc1"])
    for e in same.embeddings:  # the CLI writes what the library call writes
        for f in (e.tensor_path, e.metadata_path):
            assert (tmp_path / "tb" / f).read_bytes() == (tmp_path / "lib" / f).read_bytes()
