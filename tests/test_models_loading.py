"""Reference models, bundled pretrained accuracy, and safe model loading."""

from __future__ import annotations

import pickle
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

import layerscope as ls
from layerscope.exceptions import ModelSpecError, ParameterError, UnsafeFileError, WeightsError
from layerscope.models import ConvNet8, build_model, parse_arch_spec
from layerscope.training import evaluate


def test_pretrained_mnist_accuracy() -> None:
    test = ls.load_dataset("mnist:test")
    assert evaluate(ls.load_model("mnist-mlp"), test) >= 0.974  # reported 97.52 %
    assert evaluate(ls.load_model("mnist-cnn"), test) >= 0.966  # reported 96.69 %


def test_pretrained_resnet20_accuracy(cifar10_npz: Path) -> None:
    test = ls.load_dataset(f"cifar10:{cifar10_npz}:test")
    assert evaluate(ls.load_model("resnet20-cifar10"), test) >= 0.91  # 91.5 % on this subset


def test_reference_architectures() -> None:
    mlp = build_model("mlp", (1, 28, 28), 10)
    assert [n for n, _ in mlp.named_children()][:3] == ["flatten", "fc1", "relu1"]
    assert mlp.fc4.out_features == 1000 and mlp.out.out_features == 10
    cnn = build_model("cnn", (1, 28, 28), 10)
    assert cnn.fc1.out_features == 4096 and cnn.fc2.out_features == 512 and cnn.fc1.in_features == 64 * 7 * 7
    assert cnn(torch.zeros(2, 1, 28, 28)).shape == (2, 10)
    net = build_model("convnet8:width=8,fc_width=32", (3, 32, 32), 5)
    assert isinstance(net, ConvNet8) and len(net.numbered_layers()) == 8
    assert net(torch.zeros(2, 3, 32, 32)).shape == (2, 5)
    dnn = build_model("dnn:width=64,depth=8", (11, 40), 10)
    assert dnn(torch.zeros(3, 11, 40)).shape == (3, 10) and dnn.hidden_layers[-1] == "relu8"
    assert parse_arch_spec("cnn:dense=512x128") == ("cnn", {"dense": (512, 128)})
    with pytest.raises(ModelSpecError, match="Unknown architecture"):
        build_model("vgg", (1, 28, 28), 10)
    with pytest.raises(ModelSpecError, match="options are"):
        build_model("mlp:height=3", (1, 28, 28), 10)
    with pytest.raises(ParameterError, match="1 to 8"):
        build_model("dnn:depth=9", (11, 40), 10)


class _Payload:
    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):  # type: ignore[no-untyped-def]
        return (Path.write_text, (Path(self.marker), "payload ran"))


def test_malicious_pickle_refused_and_payload_never_runs(tmp_path: Path) -> None:
    marker = tmp_path / "PWNED"
    evil = tmp_path / "evil.pt"
    with open(evil, "wb") as fh:
        pickle.dump({"fc.weight": _Payload(str(marker))}, fh)
    with pytest.raises(UnsafeFileError, match="--allow-pickle"):
        ls.load_model("fixtures_pkg.tinymodel:make", weights=evil)
    assert not marker.exists()
    # torch.save-format file with the payload inside
    evil2 = tmp_path / "evil2.pt"
    torch.save({"fc.weight": _Payload(str(marker))}, evil2)
    with pytest.raises(UnsafeFileError):
        ls.load_model("fixtures_pkg.tinymodel:make", weights=evil2)
    assert not marker.exists()


def test_weight_files(tmp_path: Path) -> None:
    from fixtures_pkg.tinymodel import make

    src = make()
    torch.save(src.state_dict(), tmp_path / "w.pt")
    save_file(src.state_dict(), str(tmp_path / "w.safetensors"))
    torch.save({"state_dict": {f"module.{k}": v for k, v in src.state_dict().items()}, "epoch": 3}, tmp_path / "ck.pt")
    for f in ("w.pt", "w.safetensors", "ck.pt"):
        m = ls.load_model("fixtures_pkg.tinymodel:make", weights=tmp_path / f)
        assert torch.equal(m.fc.weight, src.fc.weight), f
    (tmp_path / "trunc.pt").write_bytes((tmp_path / "w.pt").read_bytes()[:50])
    with pytest.raises(WeightsError, match="corrupt or truncated"):
        ls.load_model("fixtures_pkg.tinymodel:make", weights=tmp_path / "trunc.pt")
    save_file({"fc.weight": torch.zeros(3, 3), "fc.bias": torch.zeros(3)}, str(tmp_path / "bad.safetensors"))
    with pytest.raises(WeightsError, match="shape mismatch"):
        ls.load_model("fixtures_pkg.tinymodel:make", weights=tmp_path / "bad.safetensors")
    with pytest.raises(WeightsError, match="does not exist"):
        ls.load_model("fixtures_pkg.tinymodel:make", weights=tmp_path / "missing.pt")


def test_model_spec_errors(tmp_path: Path) -> None:
    with pytest.raises(ModelSpecError, match="Cannot load a model"):
        ls.load_model("no-such-model")
    with pytest.raises(ModelSpecError, match="available: resnet20-cifar10"):
        ls.load_model("pretrained:vgg16")
    with pytest.raises(ModelSpecError, match="Cannot import"):
        ls.load_model("no_such_pkg.mod:make")
    with pytest.raises(ModelSpecError, match="not a run folder"):
        ls.load_model(str(tmp_path))
    (tmp_path / "w.safetensors").write_bytes(b"")
    with pytest.raises(ModelSpecError, match="without an architecture"):
        ls.load_model(str(tmp_path / "w.safetensors"))


def test_torch_export_program(tmp_path: Path) -> None:
    src = ls.load_model("mnist-mlp")
    x = ls.load_dataset("mnist:test").x[:5]
    torch.export.save(torch.export.export(src, (x,)), str(tmp_path / "m.pt2"))
    m = ls.load_model(str(tmp_path / "m.pt2"))
    torch.testing.assert_close(m(x), src(x))
    names = ls.layer_names(m)
    assert names  # the exported graph's modules can be listed and hooked
