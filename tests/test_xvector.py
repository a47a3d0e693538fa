"""x-vectors (Garcia-Romero et al. 2017): statistics pooling and EER by hand, embeddings independent
of padding and batching, folds that keep test speakers out of training, the study end to end."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from layerscope.cli import app
from layerscope.data import AudioDataset
from layerscope.exceptions import DataError, InputShapeError, ParameterError
from layerscope.speech import (XVectorNet, XVectorStudy, cosine_trials, equal_error_rate, fold_rows,
                               speaker_embedding_study, speaker_folds, stats_pool, xvector_embeddings)
from layerscope.speech.xvector import VAR_FLOOR, segment_embeddings

from folders import assert_same_folder
from test_speech_cli import write_wavs

TINY = {"channels": (8, 8, 8, 8, 12), "embed_dim": 6, "hidden_dim": 5}


def test_stats_pool_by_hand_with_masked_padding() -> None:
    x = torch.tensor([
        [[1.0, 3.0, 100.0, -7.0], [5.0, 5.0, 9.0, 9.0]],   # 2 valid frames: padding 100, -7 / 9, 9
        [[0.0, 2.0, 4.0, 6.0], [2.0, 4.0, 6.0, 1000.0]],   # 4 valid frames / (same row) 3 valid below
    ])
    got = stats_pool(x, torch.tensor([2, 4]))
    # row 0: mean (1+3)/2 = 2, population var 1; constant channel: var 0 -> floored
    # row 1: mean 3, var (9+1+1+9)/4 = 5; channel 2: mean (2+4+6+1000)/4 = 253, var ((251)^2*3 + 747^2)/4
    var_row1_ch1 = (251.0**2 + 249.0**2 + 247.0**2 + 747.0**2) / 4
    want = torch.tensor([[2.0, 5.0, 1.0, math.sqrt(VAR_FLOOR)], [3.0, 253.0, math.sqrt(5.0), math.sqrt(var_row1_ch1)]])
    torch.testing.assert_close(got, want)
    # three valid frames of row 1, channel 2: mean 4, var 8/3; the 1000 is padding now
    got3 = stats_pool(x, torch.tensor([2, 3]))
    torch.testing.assert_close(got3[1], torch.tensor([2.0, 4.0, math.sqrt(2.0 / 3.0 * 4), math.sqrt(8.0 / 3.0)]))
    # whatever the padding holds, the statistics stay
    y = x.clone()
    y[0, :, 2:] = torch.randn(2, 2) * 1e3
    torch.testing.assert_close(stats_pool(y, torch.tensor([2, 4])), got)
    for bad in ([0, 4], [2, 5], [2]):
        with pytest.raises(InputShapeError, match="one length per row"):
            stats_pool(x, torch.tensor(bad))
    with pytest.raises(InputShapeError, match=r"\(N, C, T\)"):
        stats_pool(x[0])


def test_eer_on_hand_made_scores() -> None:
    def eer(targets: list[float], nontargets: list[float]) -> float:
        s = np.array(targets + nontargets)
        return equal_error_rate(s, np.array([True] * len(targets) + [False] * len(nontargets)))

    # sorted: T .95, T .9, N .8, T .6, N .5, T .3, N .2, N .1 -> at threshold .6: 1 of 4 false accepts,
    # 1 of 4 false rejects
    assert eer([0.95, 0.9, 0.6, 0.3], [0.8, 0.5, 0.2, 0.1]) == pytest.approx(0.25)
    # T .9, N .6, T .4, ...: (FAR, FRR) goes (0, 1/2) -> (1/3, 1/2) -> (1/3, 0): equal at 1/3 (interpolated)
    assert eer([0.9, 0.4], [0.6, 0.1, 0.05]) == pytest.approx(1 / 3)
    # T .9, N .6, T .5, T .4: (0, 2/3) -> (1, 2/3): the segment crosses FAR = FRR at 2/3
    assert eer([0.9, 0.5, 0.4], [0.6]) == pytest.approx(2 / 3)
    assert eer([2.0, 3.0], [0.0, 1.0]) == 0.0  # perfectly separated
    assert eer([0.0, 1.0], [2.0, 3.0]) == 1.0  # perfectly inverted
    # order of the trials does not matter
    rng = np.random.default_rng(0)
    s, t = rng.normal(size=200) + np.r_[np.ones(100), np.zeros(100)], np.r_[np.ones(100), np.zeros(100)].astype(bool)
    p = rng.permutation(200)
    assert equal_error_rate(s, t) == pytest.approx(equal_error_rate(s[p], t[p]))
    with pytest.raises(DataError, match="both same-speaker and different-speaker"):
        equal_error_rate(np.array([0.1, 0.2]), np.array([True, True]))
    with pytest.raises(DataError, match="NaN"):
        equal_error_rate(np.array([np.nan, 0.2]), np.array([True, False]))
    with pytest.raises(DataError, match="booleans"):
        equal_error_rate(np.array([0.1, 0.2]), np.array([1, 0]))


def test_cosine_trials_by_hand() -> None:
    e = np.array([[1.0, 0.0], [0.0, 2.0], [3.0, 3.0]])
    s, t = cosine_trials(e, np.array([7, 7, 8]))
    np.testing.assert_allclose(s, [0.0, 1 / math.sqrt(2), 1 / math.sqrt(2)])
    assert t.tolist() == [True, False, False]
    s, _ = cosine_trials(e + 5.0, np.array([7, 7, 8]), center=np.array([5.0, 5.0]))  # centring undoes the shift
    np.testing.assert_allclose(s, [0.0, 1 / math.sqrt(2), 1 / math.sqrt(2)])
    with pytest.raises(DataError, match="zero"):
        cosine_trials(e, np.array([0, 0, 1]), center=e[0])


def test_embedding_does_not_depend_on_padding_or_batching() -> None:
    torch.manual_seed(3)
    net = XVectorNet(6, 3, **TINY)
    for m in net.modules():  # non-trivial BatchNorm statistics, as after training
        if isinstance(m, torch.nn.BatchNorm1d):
            m.running_mean.normal_()
            m.running_var.uniform_(0.5, 2.0)
    net.train()  # the caller's mode, to be restored
    rng = np.random.default_rng(0)
    lengths = [3, 15, 16, 22, 40, 9, 31]  # receptive field 15: 3 and 9 are extended with their last frame
    utts = [rng.normal(size=(n, 6)).astype(np.float32) for n in lengths]
    batched = xvector_embeddings(net, utts, batch_size=4)
    single = xvector_embeddings(net, utts, batch_size=1)
    assert net.training and all(m.training for m in net.modules())
    np.testing.assert_allclose(batched, single, rtol=0, atol=1e-5)
    with torch.no_grad():
        net.eval()
        for u, row in zip(utts, batched):
            v = np.concatenate([u, np.repeat(u[-1:], max(0, 15 - len(u)), 0)])  # by hand: the extension
            one = net.embed(torch.from_numpy(v)[None]).numpy()[0]  # one recording, no padding at all
            np.testing.assert_allclose(row, one, rtol=0, atol=1e-5)
        # a padded batch passed straight to the network: padding values do not matter
        x = torch.zeros(2, 40, 6)
        x[0, :22], x[1] = torch.from_numpy(utts[3]), torch.from_numpy(utts[4])
        a = net.embed(x, torch.tensor([22, 40]))
        x[0, 22:] = 1e4
        torch.testing.assert_close(net.embed(x, torch.tensor([22, 40])), a)
        np.testing.assert_allclose(a.numpy(), batched[[3, 4]], rtol=0, atol=1e-5)
        # the other segment layers are batching-independent too, and segment6 is the x-vector
        seg = segment_embeddings(net, utts, batch_size=3)
        np.testing.assert_allclose(seg["segment6"], batched, rtol=0, atol=1e-5)
        one = net.segment_outputs(torch.from_numpy(utts[4])[None])
        for layer in ("pool", "segment7"):
            np.testing.assert_allclose(seg[layer][4], one[layer].numpy()[0], rtol=0, atol=1e-5)
    assert net.receptive_field == 15
    with pytest.raises(InputShapeError, match="at least 15 frames"):
        net.embed(torch.zeros(1, 9, 6))
    with pytest.raises(InputShapeError, match=r"\(T >= 1, 6\)"):
        xvector_embeddings(net, [np.zeros((20, 5), np.float32)])


def _tones(freqs: tuple[float, ...] = (400.0, 1500.0, 3000.0, 2200.0), takes: int = 7) -> AudioDataset:
    rng = np.random.default_rng(0)
    sr = 8000
    waves, speakers, indices, names = [], [], [], []
    for s, f in enumerate(freqs):
        for k in range(takes):
            t = np.arange(int((0.22 + 0.05 * rng.random()) * sr)) / sr
            waves.append((0.5 * np.sin(2 * np.pi * f * t + rng.random() * 6) + 0.01 * rng.standard_normal(t.size)).astype(np.float32))
            speakers.append(s)
            indices.append(k)
            names.append(f"0_spk{s}_{k}.wav")
    n = len(waves)
    return AudioDataset(waves, np.zeros(n, np.int64), np.array(speakers), np.array(indices), names, ["0"],
                        [f"spk{s}" for s in range(len(freqs))], sr, "tones")


def test_folds_never_put_a_test_speaker_in_training() -> None:
    names = ["george", "jackson", "lucas", "nicolas", "theo", "yweweler"]
    folds = speaker_folds(names, 2)
    assert len(folds) == 15 == len(set(folds))
    assert all(sum(n in f for f in folds) == 5 for n in names)  # each speaker held out 5 times
    assert len(speaker_folds(names, 3)) == 20
    sub = speaker_folds(names, 2, max_folds=4, random_state=1)
    assert len(sub) == 4 and set(sub) <= set(folds) and sub == speaker_folds(names, 2, max_folds=4, random_state=1)
    for bad in (1, 5):
        with pytest.raises(ParameterError, match="n_test_speakers"):
            speaker_folds(names, bad)
    audio = _tones()
    for held in speaker_folds(audio.speaker_names, 2):
        fit, val, te = fold_rows(audio, held)
        ids = {audio.speaker_names.index(s) for s in held}
        assert set(audio.speakers[te]) == ids
        assert not ids & set(audio.speakers[fit]) and not ids & set(audio.speakers[val])
        assert (audio.indices[fit] >= 5).all() and (audio.indices[val] < 5).all()
        assert sorted(np.r_[fit, val, te].tolist()) == list(range(len(audio)))


@pytest.mark.slow
def test_study_on_tone_speakers() -> None:
    audio = _tones()
    res = speaker_embedding_study(audio, folds=[("spk0", "spk1"), ("spk2", "spk3")], xvector_epochs=2,
                                  xvector_arch=TINY, dnn_arch="dnn:width=8,depth=2", dnn_epochs=1)
    m = res.metrics
    assert m["n_folds"] == 2 and m["headline"] == ["xvector", "frame_dnn"]
    assert m["methods"] == ["xvector", "xvector:pool", "xvector:segment7", "frame_dnn:input", "frame_dnn:relu1",
                            "frame_dnn"]
    for r in m["folds"]:
        assert not set(r["test_speakers"]) & set(r["train_speakers"])
        assert sorted(r["test_speakers"] + r["train_speakers"]) == audio.speaker_names
        assert r["n_recordings"] == 14 and r["n_trials"] == 91 and r["n_target_trials"] == 42
        assert 0 <= r["eer"] <= 1 and 0.5 <= r["purity"] <= 1
    # the mean log-mel frame of a pure tone names its speaker: perfect on unseen tones
    inp = [r for r in m["folds"] if r["method"] == "frame_dnn:input"]
    assert all(r["eer"] == 0.0 and r["ari"] == 1.0 for r in inp)
    s = res.summary_row("frame_dnn:input", "eer")
    assert s == {"mean": 0.0, "std": 0.0, "min": 0.0, "max": 0.0, "n": 2}
    x = [r["eer"] for r in m["folds"] if r["method"] == "xvector"]
    assert res.summary_row("xvector", "eer")["mean"] == pytest.approx(np.mean(x))
    assert res.summary_row("xvector", "eer")["std"] == pytest.approx(np.std(x, ddof=1))
    with pytest.raises(DataError, match="methods"):
        res.summary_row("plda", "eer")
    with pytest.raises(DataError, match="unknown speakers"):
        speaker_embedding_study(audio, folds=[("spk0", "nobody")])


@pytest.mark.slow
def test_xvector_cli_equals_api_and_loads_back(tmp_path: Path) -> None:
    wavs = tmp_path / "wavs"
    write_wavs(wavs, {"anna": 500.0, "bert": 1300.0, "carl": 2900.0, "dora": 2100.0})
    spec = f"fsdd:{wavs}"
    from layerscope.data import load_dataset

    audio = load_dataset(spec)
    assert isinstance(audio, AudioDataset)
    api = speaker_embedding_study(audio, folds=[("anna", "dora")], xvector_epochs=1, dnn_arch="dnn:width=8,depth=1",
                                  dnn_epochs=1, max_recordings=10, data_spec=spec)
    api.save(tmp_path / "api")
    res = CliRunner().invoke(app, ["speech", "xvector", "--data", spec, "--folds", "anna,dora", "--epochs", "1",
                                   "--dnn-arch", "dnn:width=8,depth=1", "--dnn-epochs", "1", "--max-recordings", "10", "--out",
                                   str(tmp_path / "cli"), "--no-progress"])
    assert res.exit_code == 0, res.output
    assert "xvector" in res.output and "EER" in res.output
    row = api.metrics["folds"][0]
    assert row["n_recordings"] == 10 and row["n_target_trials"] == 2 * 10  # 5 per speaker: 2 * C(5, 2) same-speaker pairs
    assert_same_folder(tmp_path / "api", tmp_path / "cli")
    back = XVectorStudy.load(tmp_path / "cli")
    back.save(tmp_path / "again")
    assert_same_folder(tmp_path / "api", tmp_path / "again")
    from layerscope.cli import main

    with pytest.raises(SystemExit) as e:
        main(["speech", "xvector", "--data", spec, "--test-speakers", "1", "--out", str(tmp_path / "bad")])
    assert e.value.code == 2
    assert not (tmp_path / "bad").exists()
