"""Hostile and broken data files for every loader, label validation, default splits, file modes.

Each case asserts the exact outcome: a :class:`DataError` naming the file (or the value the
dataset holds), no payload run, nothing written.
"""

from __future__ import annotations

import gzip
import io
import json
import os
import pickle
import struct
import subprocess
import sys
import zlib
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np
import pytest
import torch
from PIL import Image
from scipy.io import wavfile

from layerscope.data import (
    MAX_CLASSES,
    Normalization,
    default_split,
    eval_spec_for,
    load_audiofolder,
    load_cifar10,
    load_dataset,
    load_imagefolder,
    load_mnist,
    load_npz,
    read_idx,
    register_data_kind,
    train_spec_for,
)
from layerscope.data import registry
from layerscope.exceptions import DataError

REPO = Path(__file__).resolve().parents[2]


# ------------------------------------------------------------------ helpers
def _idx(data: np.ndarray) -> bytes:
    return b"\x00\x00\x08" + bytes([data.ndim]) + b"".join(struct.pack(">I", d) for d in data.shape) + data.tobytes()


def _mnist_folder(root: Path, labels: np.ndarray | None = None, n: int = 6) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    y = np.arange(n, dtype=np.uint8) % 10 if labels is None else labels.astype(np.uint8)
    for prefix in ("train", "t10k"):
        (root / f"{prefix}-images-idx3-ubyte").write_bytes(_idx(rng.integers(0, 256, (len(y), 28, 28), dtype=np.uint8)))
        (root / f"{prefix}-labels-idx1-ubyte").write_bytes(_idx(y))
    return root


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def _png_claiming(width: int, height: int) -> bytes:
    """A tiny PNG whose header claims ``width x height`` 8-bit gray pixels."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr) + _chunk(b"IDAT", zlib.compress(b"\0" * 64)) + _chunk(b"IEND", b"")


def _wav(n: int = 400, rate: int = 8000) -> bytes:
    buf = io.BytesIO()
    wavfile.write(buf, rate, (np.sin(np.arange(n) / 5) * 8000).astype(np.int16))
    return buf.getvalue()


class Payload:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Callable[..., Any], tuple[str]]:
        return (exec, (f"open({str(self.marker)!r}, 'w').write('ran')",))


@pytest.fixture
def umask_022() -> Iterator[None]:
    old = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(old)


# ------------------------------------------------------------------ IDX / MNIST
def test_corrupt_gzip_idx_is_a_data_error(tmp_path: Path) -> None:
    p = tmp_path / "train-images-idx3-ubyte.gz"
    p.write_bytes(b"\x1f\x8b\x08\x00" + b"\xff" * 60)
    with pytest.raises(DataError, match=rf"{p.name} is not a readable IDX file \(corrupt"):
        read_idx(p)


def test_truncated_gzip_idx_is_a_data_error(tmp_path: Path) -> None:
    p = tmp_path / "labels.gz"
    p.write_bytes(gzip.compress(_idx(np.arange(1000, dtype=np.uint8)))[:-30])
    with pytest.raises(DataError, match=rf"{p.name} is not a readable IDX file"):
        read_idx(p)


def test_idx_header_cut_short_is_a_data_error(tmp_path: Path) -> None:
    p = tmp_path / "short"
    p.write_bytes(b"\x00\x00\x08\x03" + struct.pack(">I", 10))  # 3 dims announced, 1 given
    with pytest.raises(DataError, match="ends inside the header"):
        read_idx(p)


def test_idx_header_that_lies_is_refused_without_allocating(tmp_path: Path) -> None:
    p = tmp_path / "lies"
    p.write_bytes(b"\x00\x00\x08\x03" + struct.pack(">III", 2**32 - 1, 2**32 - 1, 2**32 - 1) + b"\0" * 100)
    with pytest.raises(DataError, match=r"truncated or padded: header says \(4294967295, "):
        read_idx(p)


def test_gzip_bomb_behind_a_small_idx_header_is_not_inflated(tmp_path: Path) -> None:
    p = tmp_path / "bomb.gz"
    p.write_bytes(gzip.compress(_idx(np.zeros(10, np.uint8)) + b"\0" * (32 << 20), compresslevel=1))
    assert p.stat().st_size < (1 << 20)
    with pytest.raises(DataError, match=r"header says \(10,\) = 10 values, file holds more"):
        read_idx(p)


def test_mnist_label_outside_ten_classes_is_refused(tmp_path: Path) -> None:
    root = _mnist_folder(tmp_path / "m", labels=np.array([0, 1, 2, 200]))
    with pytest.raises(DataError, match=r"labels-idx1-ubyte: label 200 .* outside \[0, 10\)"):
        load_mnist(root, split="test")


# ------------------------------------------------------------------ image folders
@pytest.mark.parametrize("side", [10_000, 20_000], ids=["over-limit", "over-PIL-error-limit"])
def test_decompression_bomb_png_is_refused_from_its_header(tmp_path: Path, side: int) -> None:
    before = Image.MAX_IMAGE_PIXELS
    (tmp_path / "a").mkdir()
    bomb = tmp_path / "a" / "bomb.png"
    bomb.write_bytes(_png_claiming(side, side))
    with pytest.raises(DataError, match=r"bomb\.png (claims 10000x10000 pixels|is refused as a decompression bomb)"):
        load_imagefolder(tmp_path)
    assert Image.MAX_IMAGE_PIXELS == before


def test_corrupt_png_is_a_data_error_naming_it(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    f = tmp_path / "a" / "x.png"
    f.write_bytes(b"\x89PNG\r\n\x1a\n" + b"garbage" * 20)
    with pytest.raises(DataError, match=r"x\.png is not a readable image"):
        load_imagefolder(tmp_path)


@pytest.mark.parametrize("size", ["0x0", "99999x99999", "abc", "12x", "-3x4"])
def test_bad_imagefolder_sizes_are_refused(tmp_path: Path, size: str) -> None:
    (tmp_path / "a").mkdir()
    Image.fromarray(np.zeros((4, 4), np.uint8)).save(tmp_path / "a" / "i.png")
    with pytest.raises(DataError, match=r"(outside 1\.\.8192 pixels per side|expected HxW)"):
        load_dataset(f"imagefolder:{tmp_path}@{size}")


def test_sixteen_bit_png_scaled_by_its_real_range(tmp_path: Path) -> None:
    for cls, value in (("a", 30000), ("b", 65535)):
        (tmp_path / cls).mkdir()
        Image.fromarray(np.full((4, 4), value, np.uint16)).save(tmp_path / cls / "i.png")
    ds = load_imagefolder(tmp_path)
    assert Image.open(tmp_path / "a" / "i.png").mode in ("I;16", "I")
    assert ds.x.shape == (2, 1, 4, 4)
    assert torch.allclose(ds.x[0], torch.full((1, 4, 4), 30000 / 65535))
    assert abs(float(ds.x[0, 0, 0, 0]) - 0.458) < 1e-3
    assert float(ds.x[1].min()) == 1.0  # not clipped: the classes differ
    assert "65535" in ds.normalization.description


def test_sixteen_and_eight_bit_images_share_one_scale(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    Image.fromarray(np.full((3, 3), 13107, np.uint16)).save(tmp_path / "a" / "i.png")  # 0.2
    Image.fromarray(np.full((3, 3), 51, np.uint8)).save(tmp_path / "b" / "i.png")  # 51 / 255 = 0.2
    ds = load_imagefolder(tmp_path)
    assert torch.allclose(ds.x, torch.full((2, 1, 3, 3), 0.2), atol=1e-6)


def test_eight_bit_folder_unchanged(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    Image.fromarray(np.array([[0, 255], [128, 64]], np.uint8)).save(tmp_path / "a" / "i.png")
    ds = load_imagefolder(tmp_path)
    assert torch.equal(ds.x[0, 0], torch.tensor([[0, 255], [128, 64]], dtype=torch.float32) / 255)


# ------------------------------------------------------------------ npz
def test_npz_string_inputs_are_refused(tmp_path: Path) -> None:
    p = tmp_path / "s.npz"
    np.savez(p, x=np.array([["a", "b"], ["c", "d"]]), y=np.array([0, 1]))
    with pytest.raises(DataError, match=r"s\.npz: x has dtype <U1; inputs must be numbers"):
        load_npz(p)


def test_npz_object_array_is_refused_without_unpickling(tmp_path: Path) -> None:
    marker = tmp_path / "RAN"
    p = tmp_path / "o.npz"
    np.savez(p, x=np.array([Payload(marker), 1], dtype=object), y=np.array([0, 1]))
    with pytest.raises(DataError, match=r"o\.npz: array 'x' cannot be read .*pickle, which is refused"):
        load_npz(p)
    assert not marker.exists()


def test_npz_huge_label_is_refused_before_building_names(tmp_path: Path) -> None:
    p = tmp_path / "big.npz"
    np.savez(p, x=np.zeros((2, 3), np.float32), y=np.array([0, 10**12]))
    with pytest.raises(DataError, match=rf"label 1000000000000 .* at most {MAX_CLASSES}"):
        load_npz(p)


def test_npz_negative_label_is_refused(tmp_path: Path) -> None:
    p = tmp_path / "neg.npz"
    np.savez(p, x=np.zeros((3, 2), np.float32), y=np.array([0, -1, 1]))
    with pytest.raises(DataError, match=r"class indices >= 0; found -1 \(at row 1\)"):
        load_npz(p)


def test_npz_float_labels_are_refused(tmp_path: Path) -> None:
    p = tmp_path / "f.npz"
    np.savez(p, x=np.zeros((2, 2), np.float32), y=np.array([0.0, 1.0]))
    with pytest.raises(DataError, match="labels must be integer class indices; got dtype float64"):
        load_npz(p)


def test_npz_label_beyond_its_class_names_is_refused(tmp_path: Path) -> None:
    p = tmp_path / "c.npz"
    np.savez(p, x=np.zeros((2, 2), np.float32), y=np.array([0, 2]), classes=np.array(["cat", "dog"]))
    with pytest.raises(DataError, match=r"label 2 .* outside \[0, 2\) for its 2 class names"):
        load_npz(p)


def test_npz_keeps_integer_token_ids(tmp_path: Path) -> None:
    p = tmp_path / "tok.npz"
    ids = np.array([[101, 7592, 102], [101, 2088, 102]], np.int64)
    np.savez(p, x=ids, y=np.array([1, 0]))
    ds = load_npz(p)
    assert ds.x.dtype == torch.int64 and torch.equal(ds.x, torch.from_numpy(ids))
    assert ds.input_shape == (3,)
    uint8 = tmp_path / "u8.npz"
    np.savez(uint8, x=np.full((1, 2, 2), 255, np.uint8), y=np.array([0]))
    assert load_npz(uint8).x.dtype == torch.float32 and float(load_npz(uint8).x.max()) == 1.0


@pytest.mark.parametrize(
    "content", [b"", b"PK\x03\x04 not really a zip", b"\x93NUMPY garbage", b"\x80\x04garbage", b"text"]
)
def test_corrupt_npz_is_a_data_error(tmp_path: Path, content: bytes) -> None:
    p = tmp_path / "bad.npz"
    p.write_bytes(content)
    with pytest.raises(DataError, match=r"bad\.npz (is not a readable \.npz file \(corrupt|holds a single \.npy array)") as info:
        load_npz(p)
    assert "allow_pickle" not in str(info.value)


def test_npz_zip_bomb_is_refused_before_inflating(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from layerscope.data import images

    monkeypatch.setattr(images, "MAX_NPZ_BYTES", 1 << 20)  # the real cap is 4 GiB; same check, smaller file
    p = tmp_path / "bomb.npz"
    np.savez_compressed(p, x=np.zeros((1 << 18, 4), np.float32), y=np.zeros(1 << 18, np.int64))
    assert p.stat().st_size < (1 << 16)
    with pytest.raises(DataError, match=r"bomb\.npz inflates to \d+ bytes, more than the 1048576"):
        load_npz(p)


def test_npz_of_plain_xy_has_no_test_split(tmp_path: Path) -> None:
    p = tmp_path / "xy.npz"
    np.savez(p, x=np.zeros((2, 2), np.float32), y=np.array([0, 1]))
    with pytest.raises(DataError, match="holds plain x/y arrays, not a 'test' split"):
        load_dataset(f"npz:{p}:test")
    assert len(load_dataset(f"npz:{p}")) == 2


# ------------------------------------------------------------------ CIFAR-10
def test_cifar_batch_without_data_is_a_data_error(tmp_path: Path) -> None:
    (tmp_path / "test_batch").write_bytes(pickle.dumps({b"labels": [0, 1], b"filenames": [b"a", b"b"]}))
    with pytest.raises(DataError, match=r"test_batch is not a CIFAR-10 python batch: it lacks \['data'\]"):
        load_cifar10(tmp_path, split="test")


def test_cifar_batch_with_payload_does_not_run(tmp_path: Path) -> None:
    marker = tmp_path / "RAN"
    (tmp_path / "test_batch").write_bytes(pickle.dumps({b"data": Payload(marker), b"labels": [0]}))
    with pytest.raises(DataError, match="refusing to unpickle builtins.exec"):
        load_cifar10(tmp_path, split="test")
    assert not marker.exists()


def test_cifar_batch_truncated_is_a_data_error(tmp_path: Path) -> None:
    good = pickle.dumps({b"data": np.zeros((2, 3072), np.uint8), b"labels": [0, 1]})
    (tmp_path / "test_batch").write_bytes(good[: len(good) // 2])
    with pytest.raises(DataError, match=r"test_batch is not a readable CIFAR-10 python batch"):
        load_cifar10(tmp_path, split="test")


def test_cifar_npz_label_out_of_range_is_refused(tmp_path: Path) -> None:
    p = tmp_path / "c.npz"
    np.savez(p, x_test=np.zeros((2, 32, 32, 3), np.uint8), y_test=np.array([3, 10]))
    with pytest.raises(DataError, match=r"c\.npz:y_test: label 10 .* outside \[0, 10\)"):
        load_cifar10(p, split="test")


# ------------------------------------------------------------------ wav
@pytest.mark.parametrize(
    "make, message",
    [
        (lambda w: w[:20], "not a readable wav file"),
        (lambda w: w[:12] + b"fmt \xff\xff\xff\xff" + w[20:], "not a readable wav file"),
        (lambda w: b"RIFF" + w[4:8] + b"WAVEjunkjunkjunk", "not a readable wav file"),
        (lambda w: w[:40] + b"\xff\xff\xff\x7f" + w[44:], "is truncated"),
        (lambda w: b"not a wav at all", "not a readable wav file"),
    ],
    ids=["cut-header", "fmt-size-lies", "no-fmt", "data-size-lies", "garbage"],
)
def test_corrupt_wav_headers_are_data_errors(tmp_path: Path, make: Callable[[bytes], bytes], message: str) -> None:
    (tmp_path / "0_ann_0.wav").write_bytes(_wav())
    (tmp_path / "1_ann_0.wav").write_bytes(make(_wav()))
    with pytest.raises(DataError, match=rf"1_ann_0\.wav in .* {message}"):
        load_audiofolder(tmp_path)


def test_wav_class_number_too_large_is_refused(tmp_path: Path) -> None:
    (tmp_path / "99999999999_ann_0.wav").write_bytes(_wav())
    with pytest.raises(DataError, match=r"class 99999999999, which would mean"):
        load_audiofolder(tmp_path)


# ------------------------------------------------------------------ default splits, registry
def test_every_kind_states_its_default_splits() -> None:
    assert [default_split("mnist", p) for p in ("load", "train", "eval")] == ["train", "train", "test"]
    assert [default_split("cifar10", p) for p in ("load", "train", "eval")] == ["test", "train", "test"]
    assert [default_split("imagefolder", p) for p in ("load", "train", "eval")] == [None, None, None]
    assert train_spec_for("cifar10:/d/c.npz") == "cifar10:/d/c.npz:train"
    assert eval_spec_for("cifar10:/d/c.npz") == "cifar10:/d/c.npz:test"
    assert eval_spec_for("cifar10:/d/c.npz:test") is None
    assert eval_spec_for("mnist") == eval_spec_for("mnist:train") == "mnist:test"
    assert eval_spec_for("imagefolder:/d") is None and train_spec_for("imagefolder:/d") == "imagefolder:/d"


def test_npz_splits_follow_the_file(tmp_path: Path) -> None:
    xy, split = tmp_path / "xy.npz", tmp_path / "split.npz"
    np.savez(xy, x=np.zeros((2, 2), np.float32), y=np.array([0, 1]))
    np.savez(split, x_train=np.zeros((3, 2), np.float32), y_train=np.array([0, 1, 1]),
             x_test=np.ones((2, 2), np.float32), y_test=np.array([1, 0]))
    assert train_spec_for(f"npz:{xy}") == f"npz:{xy}" and eval_spec_for(f"npz:{xy}") is None
    assert train_spec_for(f"npz:{split}") == f"npz:{split}:train"
    assert len(load_dataset(eval_spec_for(f"npz:{split}") or "")) == 2


def test_imagefolder_has_no_test_split(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    Image.fromarray(np.zeros((2, 2), np.uint8)).save(tmp_path / "a" / "i.png")
    with pytest.raises(DataError, match="has no 'test' split"):
        load_dataset(f"imagefolder:{tmp_path}:test")


def test_registry_is_open_for_new_kinds(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(registry, "_KINDS", dict(registry._KINDS))
    seen: list[tuple[str | None, str | None]] = []
    def toy(path: str | None, split: str | None) -> int:
        seen.append((path, split))
        return len(seen)

    register_data_kind("toy", toy, default_split="all", train_split="train", eval_split="test", needs_path=True)
    assert load_dataset("toy:here") == 1 and seen == [("here", "all")]
    assert eval_spec_for("toy:here") == "toy:here:test"
    with pytest.raises(DataError, match="needs a path"):
        load_dataset("toy")
    with pytest.raises(DataError, match="splits must be one of"):
        register_data_kind("bad", lambda p, s: None, default_split="val")


def test_data_package_does_not_import_speech() -> None:
    code = ("import sys, layerscope.data as d; assert 'layerscope.speech' not in sys.modules; "
            "assert 'speech' in d.data_kinds(); print('ok')")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO,
                         env={**os.environ, "PYTHONPATH": str(REPO)})
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr[-2000:]


def _cifar_npz(path: Path) -> Path:
    rng = np.random.default_rng(0)
    np.savez(path, x_train=rng.integers(0, 256, (20, 32, 32, 3), dtype=np.uint8), y_train=np.arange(20) % 10,
             x_test=rng.integers(0, 256, (7, 32, 32, 3), dtype=np.uint8), y_test=np.arange(7) % 10)
    return path


def test_train_cli_trains_on_the_train_split_and_validates_on_test(tmp_path: Path, umask_022: None) -> None:
    from typer.testing import CliRunner

    from layerscope.cli import app

    data = _cifar_npz(tmp_path / "c.npz")
    run = tmp_path / "run"
    res = CliRunner().invoke(app, ["train", "--model", "mlp:width=8,depth=1", "--data", f"cifar10:{data}",
                                   "--epochs", "0", "--out", str(run), "--no-progress"])
    assert res.exit_code == 0, res.output
    info = json.loads((run / "run.json").read_text())
    assert info["data"] == f"cifar10:{data}:train" and info["val_data"] == f"cifar10:{data}:test"
    assert info["n_train"] == 20 and info["n_val"] == 7
    ckpt = run / info["checkpoints"][0]["file"]
    assert (ckpt.stat().st_mode & 0o777) == 0o644
    assert ((run / "run.json").stat().st_mode & 0o777) == 0o644


def test_transfer_base_weights_are_0644(tmp_path: Path, umask_022: None) -> None:
    from layerscope.training import save_safetensors

    p = tmp_path / "bases" / "baseA_s0.safetensors"
    save_safetensors({"w": torch.ones(2, 2)}, p)
    assert (p.stat().st_mode & 0o777) == 0o644
    assert sorted(q.name for q in p.parent.iterdir()) == ["baseA_s0.safetensors"]


def test_zero_value_is_what_its_docstring_says() -> None:
    assert Normalization().zero_value() == 0.5
    std = Normalization(mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225))
    assert std.zero_value() == 0.0
    # 0.0 in standardised space is the standardisation mean colour, not raw mid-grey
    raw = std.denormalize(torch.zeros(1, 3, 1, 1)).reshape(3)
    assert np.allclose(raw, [0.485, 0.456, 0.406])


# ------------------------------------------------------------------ CLI: exit 2, one line
@pytest.mark.parametrize("case", ["huge-label", "corrupt-npz", "bad-size"])
def test_cli_reports_bad_data_in_one_line(tmp_path: Path, case: str, capsys: pytest.CaptureFixture[str]) -> None:
    from layerscope.cli import main

    if case == "huge-label":
        p = tmp_path / "d.npz"
        np.savez(p, x=np.zeros((2, 4), np.float32), y=np.array([0, 10**12]))
        spec = f"npz:{p}"
    elif case == "corrupt-npz":
        p = tmp_path / "d.npz"
        p.write_bytes(b"garbage")
        spec = f"npz:{p}"
    else:
        (tmp_path / "a").mkdir()
        Image.fromarray(np.zeros((2, 2), np.uint8)).save(tmp_path / "a" / "i.png")
        spec = f"imagefolder:{tmp_path}@0x0"
    before = sorted(q.name for q in tmp_path.iterdir())
    with pytest.raises(SystemExit) as info:
        main(["train", "--model", "mlp:width=4,depth=1", "--data", spec, "--epochs", "0",
              "--out", str(tmp_path / "run"), "--no-progress"])
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1 and (spec.split(":", 1)[1].split("@")[0] in err or "d.npz" in err)
    # nothing written (the hidden lock file of the --out folder aside)
    assert sorted(q.name for q in tmp_path.iterdir() if not q.name.endswith(".lock")) == before
