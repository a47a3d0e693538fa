"""``layerscope speech train | analyze | embed`` end to end on a small folder of synthetic wavs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from scipy.io import wavfile
from typer.testing import CliRunner

from layerscope.cli import app
from layerscope.loading import load_model, load_run_model
from layerscope.results import read_result
from layerscope.speech.recipe import load_acoustic_run, run_frames, utterance_accuracy

SR = 8000


def write_wavs(folder: Path, freqs: dict[str, float], digits: int = 2, takes: int = 7) -> None:
    """Speaker = tone frequency; digit d adds a second tone at (d + 1) * 250 Hz."""
    rng = np.random.default_rng(0)
    folder.mkdir(parents=True, exist_ok=True)
    for spk, f in freqs.items():
        for d in range(digits):
            for k in range(takes):
                t = np.arange(int((0.2 + 0.05 * rng.random()) * SR)) / SR
                y = 0.4 * np.sin(2 * np.pi * f * t) + 0.3 * np.sin(2 * np.pi * (d + 1) * 250 * t)
                y += 0.01 * rng.standard_normal(len(t))
                wavfile.write(folder / f"{d}_{spk}_{k}.wav", SR, (y * 32767).astype(np.int16))


@pytest.fixture
def wavs(tmp_path: Path) -> Path:
    write_wavs(tmp_path / "wavs", {"anna": 500.0, "bert": 1300.0, "carl": 2900.0, "dora": 2100.0})
    return tmp_path / "wavs"


def test_train_analyze_embed(wavs: Path, tmp_path: Path) -> None:
    runner = CliRunner()
    run = tmp_path / "run"
    res = runner.invoke(app, [
        "speech", "train", "--data", f"fsdd:{wavs}", "--out", str(run), "--arch", "dnn:width=16,depth=2",
        "--features", "mfcc", "--deltas", "1", "--context", "2", "--normalize", "global", "--epochs", "2",
        "--no-progress", "--threads", "1",
    ])
    assert res.exit_code == 0, res.output
    assert "recording-level accuracy" in res.output
    meta = load_acoustic_run(run).meta
    assert meta["arch"] == "dnn:width=16,depth=2" and meta["input_shape"] == [5, 26]
    assert meta["features"]["kind"] == "mfcc" and len(meta["features"]["global_mean"]) == 26
    assert [c["epoch"] for c in meta["checkpoints"]] == [0, 1, 2] and meta["split"] == "official"
    # the run loads like any `layerscope train` run, with the input shape of the features
    net = load_run_model(run)
    assert net.input_shape == (5, 26) and net.hidden_layers == ["relu1", "relu2"]
    assert load_model(str(run)).input_shape == (5, 26)
    frames = run_frames(run, part="test")
    assert frames.input_shape == (5, 26) and set(frames.extra_labels["take"]) <= set(range(5))
    assert utterance_accuracy(net, frames) == pytest.approx(meta["utterance_accuracy"])
    with torch.no_grad():
        assert net(frames.x[:3]).shape == (3, 2)

    res = runner.invoke(app, ["speech", "frames", "-m", str(run), "--out", str(tmp_path / "fr.npz")])
    assert res.exit_code == 0, res.output
    from layerscope.data import load_dataset

    npz = load_dataset(f"npz:{tmp_path / 'fr.npz'}")
    np.testing.assert_array_equal(npz.x.reshape(frames.x.shape).numpy(), frames.x.numpy())
    np.testing.assert_array_equal(npz.y.numpy(), frames.y.numpy())
    with torch.no_grad():  # the model takes the npz's (N, 1, 2w + 1, F) inputs as they are
        torch.testing.assert_close(net(npz.x[:4]), net(frames.x[:4]))

    out = tmp_path / "an"
    res = runner.invoke(app, ["speech", "analyze", "-m", str(run), "-m", str(run), "--out", str(out),
                              "--method", "pca", "--n-frames", "120", "--no-progress"])
    assert res.exit_code == 0, res.output
    doc = read_result(out)
    assert doc["analysis"] == "speech"
    layers = [r["layer"] for r in doc["table"] if r["model"] == doc["table"][0]["model"]]
    assert layers == ["input", "relu1", "relu2"] and len(doc["table"]) == 6
    for f in doc["figures"]:
        assert (out / f["path"]).stat().st_size > 1000
    pts = doc["points"]
    assert len(pts["layers"]["relu2"]["x"]) == pts["n"] == len(pts["digit"]) == len(pts["predicted"])
    assert pts["speaker_names"] == ["anna", "bert", "carl", "dora"]
    res = runner.invoke(app, ["speech", "merge", str(out), str(out), "--out", str(tmp_path / "merged")])
    assert res.exit_code == 0, res.output
    merged = read_result(tmp_path / "merged")
    assert merged["analysis"] == "speech" and merged["table"] == doc["table"] * 2
    assert all((tmp_path / "merged" / f["path"]).is_file() for f in merged["figures"])
    assert len(merged["figures"]) == 2 * (len(doc["figures"]) - 1) + 1

    res = runner.invoke(app, ["speech", "topk", "-m", str(run), "-l", "relu2", "--units", "0,3", "--k", "3",
                              "--out", str(tmp_path / "tk"), "--no-progress"])
    assert res.exit_code == 0, res.output
    doc = read_result(tmp_path / "tk")
    assert doc["analysis"] == "speech_topk" and [u["unit"] for u in doc["metrics"]["units"]] == [0, 3]
    assert all(isinstance(u["dead"], bool) for u in doc["metrics"]["units"])
    top = doc["metrics"]["units"][0]["top"]
    assert len(top) == 3 and len({t["utterance"] for t in top}) == 3
    assert top[0]["activation"] >= top[1]["activation"] >= top[2]["activation"]
    wavs_out = [f["path"] for f in doc["figures"] if f["path"].endswith(".wav")]
    assert len(wavs_out) == 6
    sr, w = wavfile.read(tmp_path / "tk" / wavs_out[0])
    assert sr == SR and w.dtype == np.int16 and top[0]["filename"] in wavs_out[0]

    spk = tmp_path / "spk"
    res = runner.invoke(app, [
        "speech", "train", "--data", f"fsdd:{wavs}", "--out", str(spk), "--arch", "dnn:width=16,depth=2",
        "--target", "speaker", "--split", "speaker", "--test-speakers", "carl,dora", "--epochs", "1",
        "--no-progress",
    ])
    assert res.exit_code == 0, res.output
    smeta = load_acoustic_run(spk).meta
    assert smeta["classes"] == ["anna", "bert"] and smeta["test_speakers"] == ["carl", "dora"]
    out2 = tmp_path / "emb"
    res = runner.invoke(app, ["speech", "embed", "-m", str(spk), "--out", str(out2), "--no-progress"])
    assert res.exit_code == 0, res.output
    doc = read_result(out2)
    assert doc["analysis"] == "speaker_embeddings"
    assert doc["metrics"]["unseen_speakers"] is True and doc["metrics"]["speakers"] == ["carl", "dora"]
    assert [r["layer"] for r in doc["metrics"]["layers"]] == ["input", "relu1", "relu2"]
    assert all(0.5 <= r["purity"] <= 1.0 for r in doc["metrics"]["layers"])
    assert (out2 / "embedding_clusters.png").exists()


def test_cli_errors(wavs: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from layerscope.cli import main

    cases = [
        (["speech", "train", "--data", f"fsdd:{wavs}", "--out", str(tmp_path / "r"), "--arch", "mlp:width=8"],
         "dnn:width=..,depth=.."),
        (["speech", "train", "--data", f"fsdd:{wavs}", "--out", str(tmp_path / "r"), "--features", "plp"],
         "'fbank' or 'mfcc'"),
        (["speech", "train", "--data", "mnist:test", "--out", str(tmp_path / "r")], "not a set of recordings"),
        (["speech", "analyze", "-m", str(tmp_path), "--out", str(tmp_path / "o")], "run.json"),
    ]
    for argv, text in cases:
        with pytest.raises(SystemExit) as e:
            main(argv)
        assert e.value.code == 2
        err = capsys.readouterr().err.replace("\n", " ")
        assert text in " ".join(err.split()), err


def test_held_out_speaker_run(wavs: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from layerscope.cli import main

    run = tmp_path / "held"
    runner = CliRunner()
    res = runner.invoke(app, ["speech", "train", "--data", f"fsdd:{wavs}", "--out", str(run), "--arch",
                              "dnn:width=8,depth=1", "--split", "speaker", "--test-speakers", "dora", "--epochs", "1",
                              "--no-progress"])
    assert res.exit_code == 0, res.output
    meta = load_acoustic_run(run).meta
    assert meta["train_speakers"] == ["anna", "bert", "carl"] and meta["test_speakers"] == ["dora"]
    assert meta["n_test_recordings"] == 14  # 2 digits x 7 takes of dora
    # the test part has one speaker: speaker information cannot be measured there
    with pytest.raises(SystemExit) as e:
        main(["speech", "analyze", "-m", str(run), "--out", str(tmp_path / "a"), "--method", "pca", "--no-progress"])
    assert e.value.code == 2
    assert "part='all'" in " ".join(capsys.readouterr().err.split())
    res = runner.invoke(app, ["speech", "analyze", "-m", str(run), "--out", str(tmp_path / "a"), "--method", "pca",
                              "--part", "all", "--n-frames", "80", "--no-progress"])
    assert res.exit_code == 0, res.output
    assert read_result(tmp_path / "a")["points"]["n"] == 80
