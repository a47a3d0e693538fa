"""Hostile model files: crafted ``.pt2`` archives, garbage ``.pt``, payload pickles, broken safetensors.

Every crafted file is built here. A payload pickle writes a marker file when unpickled; each test
asserts the exact error, that the marker is absent and that nothing else was written.
"""

from __future__ import annotations

import io
import json
import pickle
import zipfile
from pathlib import Path
from typing import Any, Callable

import pytest
import torch
from torch import nn

from layerscope.exceptions import UnsafeFileError, WeightsError
from layerscope.layers import layer_names
from layerscope.loading import is_exported, load_exported, load_model, load_weights, set_eval


class SmallConv(nn.Module):
    """A conv net with a buffer-holding BatchNorm and a plain tensor constant."""

    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(1, 3, 3), nn.BatchNorm2d(3), nn.ReLU())
        self.head = nn.Linear(3, 4)
        self.offset = torch.arange(4.0)  # a constant (not a parameter or buffer)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x).mean((2, 3))) + self.offset


class Payload:
    """Unpickling this writes ``marker``: what a malicious file would do."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Callable[..., Any], tuple[str]]:
        return (exec, (f"open({str(self.marker)!r}, 'w').write('ran')",))


def _model() -> SmallConv:
    torch.manual_seed(0)
    m = SmallConv()
    bn = m.features[1]
    assert isinstance(bn, nn.BatchNorm2d) and bn.running_mean is not None and bn.running_var is not None
    with torch.no_grad():
        bn.running_mean.uniform_(-1, 1)
        bn.running_var.uniform_(0.5, 2)
    return m.eval()


def _export(path: Path, dynamic: bool, batch: int = 4) -> Path:
    x = torch.randn(batch, 1, 7, 7)
    shapes = ({0: torch.export.Dim("batch")},) if dynamic else None
    torch.export.save(torch.export.export(_model(), (x,), dynamic_shapes=shapes), path)
    return path


def _members(path: Path) -> dict[str, bytes]:
    with zipfile.ZipFile(path) as zf:
        return {n: zf.read(n) for n in zf.namelist()}


def _write_zip(path: Path, members: dict[str, bytes] | list[tuple[str, bytes]]) -> Path:
    items = members.items() if isinstance(members, dict) else members
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in items:
            zf.writestr(name, data)
    return path


def _root(members: dict[str, bytes]) -> str:
    return next(iter(members)).split("/", 1)[0]


def _payload_pickle(marker: Path) -> bytes:
    buf = io.BytesIO()
    torch.save(Payload(marker), buf)
    return buf.getvalue()


@pytest.fixture
def good(tmp_path: Path) -> Path:
    return _export(tmp_path / "good.pt2", dynamic=True)


@pytest.fixture
def marker(tmp_path: Path) -> Path:
    return tmp_path / "PAYLOAD_RAN"


def _listing(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


# ------------------------------------------------------------------ valid programs: module tree
@pytest.mark.parametrize("dynamic", [True, False])
def test_pt2_loads_as_module_tree_whose_hooks_fire(tmp_path: Path, dynamic: bool) -> None:
    path = _export(tmp_path / "m.pt2", dynamic=dynamic)
    model = load_model(str(path))
    original = _model()
    assert is_exported(model) and not is_exported(original)
    assert model.layerscope_static_batch == (None if dynamic else 4)
    assert set(layer_names(original)) <= set(layer_names(model))
    x = torch.randn(4, 1, 7, 7)
    seen: dict[str, torch.Tensor] = {}
    for name in ("features.0", "features.1", "head"):
        model.get_submodule(name).register_forward_hook(lambda m, i, o, n=name: seen.__setitem__(n, o.detach()))
    want: dict[str, torch.Tensor] = {}
    for name in ("features.0", "features.1", "head"):
        original.get_submodule(name).register_forward_hook(lambda m, i, o, n=name: want.__setitem__(n, o.detach()))
    with torch.no_grad():
        out, ref = model(x), original(x)
    assert torch.allclose(out, ref, atol=1e-6)
    assert set(seen) == set(want)
    for name in want:
        assert torch.allclose(seen[name], want[name], atol=1e-6), name


def test_static_batch_program_refuses_other_batch_sizes_and_set_eval_leaves_it(tmp_path: Path) -> None:
    model = load_model(str(_export(tmp_path / "s.pt2", dynamic=False, batch=3)))
    assert model.layerscope_static_batch == 3
    with pytest.raises(Exception, match="3"):
        model(torch.randn(2, 1, 7, 7))
    assert set_eval(model) is model
    program_module = torch.export.load(str(tmp_path / "s.pt2")).module()
    with pytest.raises(NotImplementedError):
        program_module.eval()
    assert is_exported(program_module) and set_eval(program_module) is program_module
    plain = nn.Sequential(nn.Dropout(0.5)).train()
    assert set_eval(plain) is plain and not plain.training


# ------------------------------------------------------------------ crafted .pt2 archives
def test_pt2_legacy_weights_member_is_refused_without_running(tmp_path: Path, good: Path, marker: Path) -> None:
    m = _members(good)
    r = _root(m)
    m[f"{r}/data/weights/model.pt"] = _payload_pickle(marker)
    bad = _write_zip(tmp_path / "legacy_w.pt2", m)
    with pytest.raises(UnsafeFileError, match=r"data/weights/model\.pt"):
        load_model(str(bad))
    assert not marker.exists()


def test_pt2_legacy_constants_member_is_refused_without_running(tmp_path: Path, good: Path, marker: Path) -> None:
    m = _members(good)
    r = _root(m)
    m[f"{r}/data/constants/model.pt"] = _payload_pickle(marker)
    bad = _write_zip(tmp_path / "legacy_c.pt2", m)
    with pytest.raises(UnsafeFileError, match=r"data/constants/model\.pt"):
        load_model(str(bad))
    assert not marker.exists()


def test_pt2_flat_pre_2_8_layout_is_refused_without_running(tmp_path: Path, marker: Path) -> None:
    # what torch 2.7 wrote: every member at the top level; torch.export.load's fallback unpickles
    # serialized_state_dict.pt with weights_only=False
    bad = _write_zip(tmp_path / "flat.pt2", {
        "serialized_exported_program.json": b"{}",
        "serialized_state_dict.pt": _payload_pickle(marker),
        "serialized_constants.pt": _payload_pickle(marker),
        "serialized_example_inputs.pt": _payload_pickle(marker),
        "version": b"8.0",
    })
    with pytest.raises(UnsafeFileError, match=r"pre-2\.8 flat layout"):
        load_model(str(bad))
    assert not marker.exists()


def _with_config(good: Path, kind: str, edit: Callable[[dict[str, Any], str], None]) -> dict[str, bytes]:
    m = _members(good)
    r = _root(m)
    name = f"{r}/data/{kind}/model_{kind}_config.json"
    cfg = json.loads(m[name])
    edit(cfg["config"], r)
    m[name] = json.dumps(cfg).encode()
    return m


def test_pt2_use_pickle_weight_is_refused_without_running(tmp_path: Path, good: Path, marker: Path) -> None:
    def edit(cfg: dict[str, Any], r: str) -> None:
        cfg["head.bias"]["use_pickle"] = True

    m = _with_config(good, "weights", edit)
    r = _root(m)
    entry = json.loads(m[f"{r}/data/weights/model_weights_config.json"])["config"]["head.bias"]["path_name"]
    m[f"{r}/data/weights/{entry}"] = _payload_pickle(marker)
    bad = _write_zip(tmp_path / "pickled_w.pt2", m)
    with pytest.raises(UnsafeFileError, match=rf"'head\.bias'.*pickled member .*data/weights/{entry}"):
        load_model(str(bad))
    assert not marker.exists()


def test_pt2_pickled_weight_loads_with_allow_pickle(tmp_path: Path, good: Path) -> None:
    """The message says --allow-pickle loads it: it does (the pickled member holds a real tensor)."""
    original = _model()

    def edit(cfg: dict[str, Any], r: str) -> None:
        cfg["head.bias"]["use_pickle"] = True

    m = _with_config(good, "weights", edit)
    r = _root(m)
    entry = json.loads(m[f"{r}/data/weights/model_weights_config.json"])["config"]["head.bias"]["path_name"]
    buf = io.BytesIO()
    torch.save(nn.Parameter(original.head.bias.detach().clone()), buf)
    m[f"{r}/data/weights/{entry}"] = buf.getvalue()
    path = _write_zip(tmp_path / "pickled_ok.pt2", m)
    with pytest.raises(UnsafeFileError, match="--allow-pickle"):
        load_model(str(path))
    model = load_model(str(path), allow_pickle=True)
    x = torch.randn(2, 1, 7, 7)
    with torch.no_grad():
        assert torch.allclose(model(x), original(x), atol=1e-6)


@pytest.mark.parametrize("prefix", ["custom_obj_0", "opaque_obj_0"])
def test_pt2_pickled_object_constants_are_refused(tmp_path: Path, good: Path, marker: Path, prefix: str) -> None:
    def edit(cfg: dict[str, Any], r: str) -> None:
        cfg["evil"] = {"path_name": prefix, "is_param": False, "use_pickle": True, "tensor_meta": None}

    m = _with_config(good, "constants", edit)
    m[f"{_root(m)}/data/constants/{prefix}"] = pickle.dumps(Payload(marker))
    bad = _write_zip(tmp_path / f"{prefix}.pt2", m)
    with pytest.raises(UnsafeFileError, match=rf"'evil'.*data/constants/{prefix}"):
        load_model(str(bad))
    assert not marker.exists()


def test_pt2_payload_sample_inputs_are_refused(tmp_path: Path, good: Path, marker: Path) -> None:
    m = _members(good)
    m[f"{_root(m)}/data/sample_inputs/model.pt"] = _payload_pickle(marker)
    bad = _write_zip(tmp_path / "sample.pt2", m)
    with pytest.raises(UnsafeFileError, match=r"data/sample_inputs/model\.pt needs full unpickling"):
        load_model(str(bad))
    assert not marker.exists()


def test_pt2_compiled_code_member_is_refused(tmp_path: Path, good: Path) -> None:
    m = _members(good)
    m[f"{_root(m)}/data/aotinductor/model/model.so"] = b"\x7fELF not really"
    with pytest.raises(UnsafeFileError, match=r"unexpected member .*data/aotinductor/model/model\.so"):
        load_model(str(_write_zip(tmp_path / "aoti.pt2", m)))


def test_pt2_duplicate_member_is_refused(tmp_path: Path, good: Path, marker: Path) -> None:
    """Python's zipfile and torch's reader may pick different copies of a duplicated name."""
    m = _members(good)
    r = _root(m)
    items = list(m.items()) + [(f"{r}/data/sample_inputs/model.pt", _payload_pickle(marker))]
    with pytest.warns(UserWarning, match="Duplicate name"):
        bad = _write_zip(tmp_path / "dup.pt2", items)
    with pytest.raises(UnsafeFileError, match=r"data/sample_inputs/model\.pt appears more than once"):
        load_model(str(bad))
    assert not marker.exists()


def test_pt2_member_outside_root_is_refused(tmp_path: Path, good: Path) -> None:
    m = _members(good)
    m["elsewhere/data/weights/model.pt"] = b"x"
    with pytest.raises(UnsafeFileError, match=r"elsewhere/data/weights/model\.pt lies outside"):
        load_model(str(_write_zip(tmp_path / "two_roots.pt2", m)))


def test_pt2_unreferenced_weight_member_is_refused(tmp_path: Path, good: Path) -> None:
    m = _members(good)
    m[f"{_root(m)}/data/weights/weight_999"] = b"\0" * 8
    with pytest.raises(UnsafeFileError, match=r"weight_999 \(named by no config\)"):
        load_model(str(_write_zip(tmp_path / "stray.pt2", m)))


def test_pt2_config_naming_missing_member_is_a_weights_error(tmp_path: Path, good: Path) -> None:
    m = _members(good)
    r = _root(m)
    entry = json.loads(m[f"{r}/data/weights/model_weights_config.json"])["config"]["head.weight"]["path_name"]
    del m[f"{r}/data/weights/{entry}"]
    with pytest.raises(WeightsError, match=rf"names .*data/weights/{entry}, which the archive lacks"):
        load_model(str(_write_zip(tmp_path / "missing.pt2", m)))


def test_pt2_wrong_archive_version_is_a_weights_error(tmp_path: Path, good: Path) -> None:
    m = _members(good)
    m[f"{_root(m)}/archive_version"] = b"7"
    with pytest.raises(WeightsError, match="archive_format/archive_version"):
        load_model(str(_write_zip(tmp_path / "v7.pt2", m)))


def test_pt2_broken_program_json_is_a_weights_error(tmp_path: Path, good: Path) -> None:
    m = _members(good)
    m[f"{_root(m)}/models/model.json"] = b"{not json"
    with pytest.raises(WeightsError, match="not a loadable torch.export program") as info:
        load_model(str(_write_zip(tmp_path / "json.pt2", m)))
    assert not isinstance(info.value, UnsafeFileError)


@pytest.mark.parametrize("content", [b"", b"garbage, not a zip" * 10])
def test_pt2_garbage_is_a_weights_error(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "g.pt2"
    path.write_bytes(content)
    with pytest.raises(WeightsError, match="not a torch.export archive") as info:
        load_model(str(path))
    assert not isinstance(info.value, UnsafeFileError)


def test_pt2_truncated_is_a_weights_error(tmp_path: Path, good: Path) -> None:
    path = tmp_path / "t.pt2"
    path.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    with pytest.raises(WeightsError, match="not a torch.export archive") as info:
        load_exported(path)
    assert not isinstance(info.value, UnsafeFileError)


# ------------------------------------------------------------------ .pt / .pth / safetensors
@pytest.mark.parametrize(
    "content",
    [b"\x00\x01garbage" * 50, b"this is not a model.\n", b"\x80\x02garbage" * 3, b"PK\x03\x04broken zip"],
    ids=["binary", "text-with-stop", "proto-header-then-garbage", "zip-magic"],
)
def test_garbage_pt_is_corrupt_not_an_allow_pickle_invitation(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "weights.pt"
    path.write_bytes(content)
    with pytest.raises(WeightsError, match=r"not a readable PyTorch file \(corrupt") as info:
        load_weights(path)
    assert not isinstance(info.value, UnsafeFileError)
    assert "--allow-pickle" not in str(info.value)


def test_truncated_torch_save_is_corrupt(tmp_path: Path) -> None:
    path = tmp_path / "sd.pth"
    torch.save(_model().state_dict(), path)
    path.write_bytes(path.read_bytes()[:-200])
    with pytest.raises(WeightsError, match=r"not a readable PyTorch file \(corrupt") as info:
        load_weights(path)
    assert not isinstance(info.value, UnsafeFileError)


def test_payload_torch_save_is_unsafe_and_does_not_run(tmp_path: Path, marker: Path) -> None:
    path = tmp_path / "evil.pt"
    path.write_bytes(_payload_pickle(marker))
    with pytest.raises(UnsafeFileError, match=r"needs full unpickling.*--allow-pickle"):
        load_weights(path)
    assert not marker.exists()


def test_payload_plain_pickle_is_unsafe_and_does_not_run(tmp_path: Path, marker: Path) -> None:
    path = tmp_path / "evil.pth"
    path.write_bytes(pickle.dumps({"w": Payload(marker)}, protocol=2))
    with pytest.raises(UnsafeFileError, match="needs full unpickling"):
        load_weights(path)
    assert not marker.exists()


def test_real_state_dict_still_loads(tmp_path: Path) -> None:
    path = tmp_path / "sd.pt"
    sd = _model().state_dict()
    torch.save(sd, path)
    got = load_weights(path)
    assert set(got) == set(sd) and all(torch.equal(got[k], sd[k]) for k in sd)


@pytest.mark.parametrize(
    "make",
    [
        lambda good: good[: len(good) // 2],
        lambda good: b"\xff" * 8 + good[8:],
        lambda good: (2**40).to_bytes(8, "little") + good[8:],
        lambda good: b"",
    ],
    ids=["truncated", "header-length-garbage", "header-length-huge", "empty"],
)
def test_broken_safetensors_is_a_weights_error(tmp_path: Path, make: Callable[[bytes], bytes]) -> None:
    from safetensors.torch import save_file

    ok = tmp_path / "ok.safetensors"
    save_file({k: v.contiguous() for k, v in _model().state_dict().items()}, str(ok))
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(make(ok.read_bytes()))
    with pytest.raises(WeightsError, match="not a readable safetensors file"):
        load_weights(bad)


# ------------------------------------------------------------------ CLI: one line, exit 2
@pytest.mark.parametrize("kind", ["legacy", "garbage-pt2"])
def test_cli_refuses_hostile_pt2_in_one_line(
    tmp_path: Path, good: Path, marker: Path, kind: str, capsys: pytest.CaptureFixture[str]
) -> None:
    from layerscope.cli import main

    if kind == "legacy":
        m = _members(good)
        m[f"{_root(m)}/data/weights/model.pt"] = _payload_pickle(marker)
        path = _write_zip(tmp_path / "evil.pt2", m)
    else:
        path = tmp_path / "evil.pt2"
        path.write_bytes(b"nonsense")
    before = _listing(tmp_path)
    with pytest.raises(SystemExit) as info:
        main(["layers", "--model", str(path)])
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert err.startswith("error: ")
    assert ("--allow-pickle" in err) if kind == "legacy" else ("not a torch.export archive" in err)
    assert " ".join(err.split()).count("error:") == 1
    assert not marker.exists() and _listing(tmp_path) == before


def test_pt2_zip_bomb_member_is_refused_before_inflating(tmp_path: Path, good: Path) -> None:
    m = _members(good)
    path = tmp_path / "bomb.pt2"
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in m.items():
            zf.writestr(name, data)
        zf.writestr(f"{_root(m)}/extra/notes.txt", b"\0" * (64 << 20), compress_type=zipfile.ZIP_DEFLATED)
    assert path.stat().st_size < (1 << 20)
    with pytest.raises(WeightsError, match=r"extra/notes\.txt claims to inflate .* zip bomb"):
        load_model(str(path))


@pytest.mark.parametrize("dynamic", [True, False])
def test_collect_activations_on_loaded_program_equals_the_module(tmp_path: Path, dynamic: bool) -> None:
    """Through the seam: a static-batch program (batch 4) gives the module's activations for 7 samples."""
    from layerscope.capture import collect_activations

    model = load_model(str(_export(tmp_path / "c.pt2", dynamic=dynamic)))
    data = torch.utils.data.TensorDataset(torch.randn(7, 1, 7, 7), torch.arange(7) % 4)
    got = collect_activations(model, data, ["features.1", "head"], batch_size=3)
    want = collect_activations(_model(), data, ["features.1", "head"], batch_size=3)
    for name in ("features.1", "head"):
        a, b = torch.as_tensor(got[name]), torch.as_tensor(want[name])
        assert a.shape == b.shape and a.shape[0] == 7
        assert torch.allclose(a, b, atol=1e-5), name
