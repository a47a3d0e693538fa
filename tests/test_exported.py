"""A ``torch.export`` program (``.pt2``) gives what the module it was exported from gives.

ResNet-20 (bundled) exported with a dynamic and with a static batch size, then ``layers``,
``capture``, ``topk`` (patches included) and ``occlude`` from the CLI on both, compared array by array.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

import layerscope as ls
from layerscope.cli import app
from layerscope.convnets import receptive_field

runner = CliRunner()


@pytest.fixture(scope="module")
def programs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("pt2")
    model = ls.load_model("resnet20-cifar10")
    x = torch.randn(4, 3, 32, 32)
    batch = torch.export.Dim("batch", min=1, max=4096)
    torch.export.save(torch.export.export(model, (x,), dynamic_shapes=({0: batch},)), d / "dynamic.pt2")
    torch.export.save(torch.export.export(model, (x,)), d / "static.pt2")
    rng = np.random.default_rng(0)
    np.savez(d / "data.npz", x=rng.integers(0, 256, (22, 3, 32, 32), dtype=np.uint8), y=np.arange(22) % 10)
    return {"dynamic": d / "dynamic.pt2", "static": d / "static.pt2", "data": d / "data.npz"}


def _cli(*argv: str) -> None:
    res = runner.invoke(app, list(argv))
    assert res.exit_code == 0, res.output


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["dynamic", "static"])
def test_exported_resnet_matches_the_module(programs: dict[str, Path], kind: str, tmp_path: Path) -> None:
    program, data = str(programs[kind]), f"npz:{programs['data']}"
    exported = ls.load_model(program)
    assert exported.layerscope_static_batch == (4 if kind == "static" else None)
    bundled = ls.load_model("resnet20-cifar10")
    # layers: same names, shapes and calls
    rows_e = {r.name: r for r in ls.list_layers(exported, torch.zeros(1, 3, 32, 32))}
    rows_b = {r.name: r for r in ls.list_layers(bundled, torch.zeros(1, 3, 32, 32))}
    for name, r in rows_b.items():
        if r.is_leaf and rows_e[name].calls == 0:
            assert r.type == "Identity", name  # export removes identity modules: they never run there
        elif r.is_leaf:
            assert rows_e[name].output_shape == r.output_shape and rows_e[name].calls == r.calls, name
    # receptive fields: measured on the program = derived from the module's graph
    for layer in ("conv1", "layer1.2.relu2", "layer2.0.conv1"):
        a, b = receptive_field(bundled, layer, (3, 32, 32)), receptive_field(exported, layer, (3, 32, 32))
        assert (a.jump, a.size, a.start) == (b.jump, b.size, b.start), layer
    out: dict[str, Path] = {}
    for name, spec in (("module", "resnet20-cifar10"), ("program", program)):
        o = tmp_path / name
        _cli("capture", "-m", spec, "--data", data, "--layers", "layer1.0.bn1,layer2.1.relu2,linear",
             "--batch-size", "5", "--out", str(o / "capture"), "--no-progress")
        _cli("topk", "-m", spec, "--data", data, "--layer", "layer2.0.conv1", "--units", "0,3", "--k", "4",
             "--rule", "gradient", "--batch-size", "6", "--out", str(o / "topk"), "--no-progress")
        _cli("occlude", "-m", spec, "--data", data, "--indices", "0,7", "--size", "8", "--stride", "4",
             "--out", str(o / "occlude"), "--no-progress")
        out[name] = o
    a = ls.Activations.load(out["module"] / "capture")
    b = ls.Activations.load(out["program"] / "capture")
    for layer in a.layers:
        np.testing.assert_allclose(a[layer], b[layer], rtol=0, atol=2e-5, err_msg=layer)
    assert (a.predictions == b.predictions).all()
    for sub in ("topk", "occlude"):
        za = dict(np.load(next((out["module"] / sub).glob("*.npz"))))
        zb = dict(np.load(next((out["program"] / sub).glob("*.npz"))))
        assert za.keys() == zb.keys()
        for key in za:
            if za[key].dtype.kind in "iub":
                assert (za[key] == zb[key]).all(), (sub, key)
            else:
                np.testing.assert_allclose(za[key], zb[key], rtol=0, atol=2e-5, err_msg=f"{sub}:{key}")
    # deconvnet / guided rules need ReLU modules; a program has ATen ops: refused, not silently the gradient
    res = runner.invoke(app, ["topk", "-m", program, "--data", data, "--layer", "layer2.0.conv1", "--units", "0",
                              "--rule", "deconvnet", "--out", str(tmp_path / "refused"), "--no-progress"])
    assert res.exit_code != 0 and "exported program" in str(res.exception or res.output)
    ra = json.loads((out["module"] / "topk" / "result.json").read_text())
    assert ra["metrics"] == json.loads((out["program"] / "topk" / "result.json").read_text())["metrics"]
