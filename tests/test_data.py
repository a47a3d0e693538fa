"""Loaders on the real bundled data and on small files built here."""

from __future__ import annotations

import gzip
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch

from layerscope.data import (
    ArrayDataset,
    load_cifar10,
    load_dataset,
    load_fsdd,
    load_imagefolder,
    load_mnist,
    parse_data_spec,
    read_idx,
    stratified_indices,
)
from layerscope.data.images import BUNDLED
from layerscope.exceptions import DataError

MNIST_TRAIN = [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
MNIST_TEST = [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]


def test_mnist_counts_and_histograms() -> None:
    train = load_dataset("mnist")
    test = load_dataset("mnist:test")
    assert isinstance(train, ArrayDataset) and isinstance(test, ArrayDataset)
    assert len(train) == 60000 and len(test) == 10000
    assert train.class_counts().tolist() == MNIST_TRAIN
    assert test.class_counts().tolist() == MNIST_TEST
    assert train.input_shape == (1, 28, 28) and train.x.dtype == torch.float32
    assert float(train.x.min()) == 0.0 and float(train.x.max()) == 1.0
    assert train.classes == [str(i) for i in range(10)]
    assert load_dataset("mnist:all").class_counts().tolist() == [a + b for a, b in zip(MNIST_TRAIN, MNIST_TEST)]


def test_mnist_raw_idx_equals_gz(tmp_path: Path) -> None:
    for name in ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"):
        with gzip.open(BUNDLED / "mnist" / f"{name}.gz") as src, open(tmp_path / name, "wb") as dst:
            dst.write(src.read())
    raw = load_mnist(tmp_path, split="test")
    gz = load_mnist(split="test")
    assert torch.equal(raw.x, gz.x) and torch.equal(raw.y, gz.y)


def test_corrupt_and_missing_idx(tmp_path: Path) -> None:
    (tmp_path / "bad").write_bytes(b"\x00\x00\x08\x03" + (10).to_bytes(4, "big") + b"\x00" * 20)
    with pytest.raises(DataError, match="truncated or padded"):
        read_idx(tmp_path / "bad")
    (tmp_path / "junk").write_bytes(b"hello world")
    with pytest.raises(DataError, match="magic number"):
        read_idx(tmp_path / "junk")
    with pytest.raises(DataError, match="No MNIST file"):
        load_mnist(tmp_path, split="test")
    with pytest.raises(DataError, match="does not exist"):
        load_mnist(tmp_path / "nowhere")


def test_fsdd_counts() -> None:
    ds = load_fsdd()
    assert len(ds) == 3000
    assert ds.speaker_names == ["george", "jackson", "lucas", "nicolas", "theo", "yweweler"]
    assert np.bincount(ds.speakers).tolist() == [500] * 6
    assert np.bincount(ds.labels).tolist() == [300] * 10
    assert ds.sample_rate == 8000
    lengths = [len(w) for w in ds.waveforms]
    assert min(lengths) == 1148 and max(lengths) == 18262 and sum(lengths) == 10498424
    assert all(-1.0 <= float(w.min()) and float(w.max()) < 1.0 for w in ds.waveforms[:50])
    test = load_dataset("fsdd:test")
    assert len(test) == 300 and set(test.indices.tolist()) == {0, 1, 2, 3, 4}
    assert len(load_dataset("fsdd:train")) == 2700
    wav, label = ds[0]
    assert wav.dtype == torch.float32 and label == int(ds.labels[0])
    assert ds.extra_labels["speaker"].shape == (3000,)


def test_fsdd_from_folder(tmp_path: Path) -> None:
    import tarfile

    with tarfile.open(BUNDLED / "fsdd" / "fsdd_recordings.tar.gz") as tar:
        members = [m for m in tar.getmembers() if m.name.endswith(("3_theo_7.wav", "5_lucas_0.wav"))]
        tar.extractall(tmp_path, members=members, filter="data")
    ds = load_dataset(f"fsdd:{tmp_path / 'recordings'}")
    assert len(ds) == 2
    assert sorted(zip(ds.labels.tolist(), [ds.speaker_names[s] for s in ds.speakers])) == [(3, "theo"), (5, "lucas")]
    (tmp_path / "recordings" / "badname.wav").write_bytes(b"RIFF")
    with pytest.raises(DataError, match="naming"):
        load_dataset(f"fsdd:{tmp_path / 'recordings'}")


def test_cifar10_npz(cifar10_npz: Path) -> None:
    test = load_dataset(f"cifar10:{cifar10_npz}")
    assert len(test) == 1000 and test.input_shape == (3, 32, 32)
    assert test.class_counts().tolist() == [103, 89, 100, 103, 90, 86, 112, 102, 106, 109]
    train = load_dataset(f"cifar10:{cifar10_npz}:train")
    assert len(train) == 4000
    assert test.classes[0] == "airplane" and test.classes[9] == "truck"
    raw = load_cifar10(cifar10_npz, normalize=False)
    back = test.normalization.denormalize(test.x[:4])
    np.testing.assert_allclose(back, raw.x[:4].numpy(), atol=1e-5)


def _write_batch(path: Path, data: np.ndarray, labels: list[int]) -> None:
    with open(path, "wb") as fh:
        pickle.dump({b"batch_label": b"x", b"labels": labels, b"data": data, b"filenames": [b"a"] * len(labels)}, fh)


def test_cifar10_python_batches(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    data = rng.integers(0, 256, size=(4, 3072), dtype=np.uint8)
    _write_batch(tmp_path / "data_batch_1", data, [0, 1, 2, 3])
    _write_batch(tmp_path / "test_batch", data[:2], [9, 8])
    with open(tmp_path / "batches.meta", "wb") as fh:
        pickle.dump({b"label_names": [f"c{i}".encode() for i in range(10)]}, fh)
    train = load_cifar10(tmp_path, split="train", normalize=False)
    assert train.y.tolist() == [0, 1, 2, 3] and train.classes[3] == "c3"
    np.testing.assert_allclose(train.x[1].numpy() * 255, data[1].reshape(3, 32, 32), atol=1e-4)
    assert load_cifar10(tmp_path, split="test").y.tolist() == [9, 8]


class _Evil:
    def __reduce__(self):  # type: ignore[no-untyped-def]
        import os

        return (os.system, ("echo pwned > /dev/null",))


def test_cifar10_batch_refuses_code(tmp_path: Path) -> None:
    with open(tmp_path / "test_batch", "wb") as fh:
        pickle.dump({b"data": _Evil(), b"labels": [0]}, fh)
    with pytest.raises(DataError, match="refusing to unpickle"):
        load_cifar10(tmp_path, split="test")


def test_npz_and_imagefolder(tmp_path: Path) -> None:
    from PIL import Image

    x = np.random.default_rng(1).integers(0, 256, size=(6, 5, 5), dtype=np.uint8)
    np.savez(tmp_path / "d.npz", x=x, y=np.array([0, 1, 2, 0, 1, 2]), classes=np.array(["a", "b", "c"]))
    ds = load_dataset(f"npz:{tmp_path / 'd.npz'}")
    assert ds.input_shape == (1, 5, 5) and ds.classes == ["a", "b", "c"]
    np.testing.assert_allclose(ds.x[:, 0].numpy() * 255, x, atol=1e-4)
    np.savez(tmp_path / "bad.npz", inputs=x)
    with pytest.raises(DataError, match="expected 'x' and 'y'"):
        load_dataset(f"npz:{tmp_path / 'bad.npz'}")
    for cls in ("cat", "dog"):
        (tmp_path / "imgs" / cls).mkdir(parents=True)
        for i in range(2):
            Image.fromarray(x[i]).save(tmp_path / "imgs" / cls / f"{i}.png")
    folder = load_imagefolder(tmp_path / "imgs")
    assert folder.classes == ["cat", "dog"] and folder.y.tolist() == [0, 0, 1, 1] and folder.input_shape == (1, 5, 5)
    Image.fromarray(np.zeros((7, 7), np.uint8)).save(tmp_path / "imgs" / "dog" / "big.png")
    with pytest.raises(DataError, match="different sizes"):
        load_imagefolder(tmp_path / "imgs")
    assert load_dataset(f"imagefolder:{tmp_path / 'imgs'}@4x4").input_shape == (1, 4, 4)


def test_data_spec_errors() -> None:
    assert parse_data_spec("mnist:test") == ("mnist", None, "test")
    assert parse_data_spec("cifar10:/a/b.npz:train") == ("cifar10", "/a/b.npz", "train")
    assert parse_data_spec("npz:rel/x.npz") == ("npz", "rel/x.npz", None)
    with pytest.raises(DataError, match="Unknown data kind"):
        load_dataset("svhn")
    with pytest.raises(DataError, match="needs a path"):
        load_dataset("cifar10")


def test_stratified_indices_keep_proportions() -> None:
    y = load_dataset("mnist:test").y.numpy()
    idx = stratified_indices(y, 2000, 0)
    assert len(idx) == 2000 and len(set(idx.tolist())) == 2000
    frac = np.bincount(y[idx], minlength=10) / 2000
    np.testing.assert_allclose(frac, np.bincount(y) / len(y), atol=0.002)
    assert np.array_equal(idx, stratified_indices(y, 2000, 0))


def test_speech_run_frames_spec_and_default_data(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from layerscope.cli import app
    from layerscope.cli._app import default_data_spec

    run = tmp_path / "sp"
    res = CliRunner().invoke(
        app, ["speech", "train", "--arch", "dnn:width=16,depth=1", "--epochs", "1", "--frame-step", "16",
              "--context", "2", "--out", str(run), "--no-progress"]
    )
    assert res.exit_code == 0, res.output
    frames = load_dataset(f"speech:{run}:test")
    assert isinstance(frames, ArrayDataset) and frames.input_shape[0] == 5  # 2 * context + 1 frames
    assert set(np.unique(frames.extra_labels["speaker"]).tolist()) == set(range(6))
    from layerscope.loading import load_model

    model = load_model(str(run))
    assert default_data_spec(model) == f"speech:{run}:test"
    assert model(frames.x[:3]).shape == (3, 10)
