"""Speech frames and acoustic-model analyses: features by hand on synthetic tones, context
stacking by hand, labels through capture, NH / probes / clustering on trivially separable data."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from layerscope.capture import collect_activations
from layerscope.data import AudioDataset
from layerscope.exceptions import DataError, LayerNotFoundError, ParameterError
from layerscope.models import AcousticDNN
from layerscope.speech import FeatureConfig, FrameExtractor, frame_features, fsdd_split, stack_context
from layerscope.speech.analysis import analyze_layers, grouped_neighborhood_hit, summarize
from layerscope.speech.embeddings import cluster_scores, embedding_study, purity_score, utterance_embeddings

SR = 8000


def tone(freq: float, seconds: float = 0.3, amp: float = 0.5, phase: float = 0.0) -> np.ndarray:
    t = np.arange(int(seconds * SR)) / SR
    return (amp * np.sin(2 * np.pi * freq * t + phase)).astype(np.float32)


def synthetic_audio(freqs: tuple[float, ...] = (400.0, 1500.0, 3000.0), digits: int = 2, takes: int = 3,
                    seed: int = 0) -> AudioDataset:
    """Speaker s speaks a tone at freqs[s] (plus a little noise); the digit is only in the noise seed."""
    rng = np.random.default_rng(seed)
    waves, labels, speakers, indices, names = [], [], [], [], []
    for s, f in enumerate(freqs):
        for d in range(digits):
            for k in range(takes):
                dur = 0.2 + 0.05 * rng.random()
                w = tone(f, dur, phase=rng.random() * 6) + 0.01 * rng.standard_normal(int(dur * SR)).astype(np.float32)
                waves.append(w.astype(np.float32))
                labels.append(d)
                speakers.append(s)
                indices.append(k)
                names.append(f"{d}_spk{s}_{k}.wav")
    return AudioDataset(waves, np.array(labels), np.array(speakers), np.array(indices), names,
                        [str(i) for i in range(digits)], [f"spk{s}" for s in range(len(freqs))], SR, "synthetic")


def n_hooks(model: nn.Module) -> int:
    return sum(len(m._forward_hooks) + len(m._forward_pre_hooks) + len(m._backward_hooks) for m in model.modules())


def snapshot(model: nn.Module) -> tuple[list[torch.Tensor], list[bool], list[bool]]:
    return ([p.detach().clone() for p in model.parameters()], [m.training for m in model.modules()],
            [p.requires_grad for p in model.parameters()])


def assert_unchanged(model: nn.Module, snap: tuple[list[torch.Tensor], list[bool], list[bool]]) -> None:
    params, training, grads = snap
    assert all(torch.equal(a, b) for a, b in zip(params, model.parameters()))
    assert [m.training for m in model.modules()] == training
    assert [p.requires_grad for p in model.parameters()] == grads
    assert n_hooks(model) == 0


# ---------------------------------------------------------------- features


def test_frame_count_and_shapes_on_a_tone() -> None:
    y = tone(1000.0, 0.3)  # 2400 samples
    cfg = FeatureConfig(kind="fbank", n_mels=40)
    win, hop, n_fft = cfg.frame_params(SR)
    assert (win, hop, n_fft) == (200, 80, 256)
    fb = frame_features(y, SR, cfg)
    assert fb.shape == (1 + (2400 - 256) // 80, 40) == (27, 40)
    assert fb.dtype == np.float32
    assert frame_features(y, SR, FeatureConfig(kind="mfcc", n_mfcc=13)).shape == (27, 13)
    assert frame_features(y, SR, FeatureConfig(kind="mfcc", n_mfcc=13, deltas=2)).shape == (27, 39)
    assert frame_features(y, SR, FeatureConfig(kind="fbank", deltas=1)).shape == (27, 80)
    # shorter than one FFT window: padded to one frame
    assert frame_features(tone(1000.0, 0.01), SR, cfg).shape == (1, 40)


def test_fbank_matches_a_by_hand_computation() -> None:
    import librosa
    from scipy.signal import get_window

    y = tone(1000.0, 0.3) + tone(2500.0, 0.3, amp=0.1)
    cfg = FeatureConfig(kind="fbank", n_mels=40, fmin=20.0)
    fb = frame_features(y, SR, cfg)
    win, hop, n_fft = 200, 80, 256
    w = np.zeros(n_fft)
    w[(n_fft - win) // 2:(n_fft - win) // 2 + win] = get_window("hann", win, fftbins=True)
    mel = librosa.filters.mel(sr=SR, n_fft=n_fft, n_mels=40, fmin=20.0, fmax=SR / 2)
    frames = np.stack([y[t * hop:t * hop + n_fft] for t in range(fb.shape[0])])
    power = np.abs(np.fft.rfft(frames * w, axis=1)) ** 2
    db = 10 * np.log10(np.maximum(power @ mel.T, 1e-10))
    db = np.maximum(db, db.max() - 80.0)
    np.testing.assert_allclose(fb, db, atol=2e-3)
    # the loudest band is the one centred nearest 1 kHz; the 2.5 kHz tone makes a second peak
    centres = librosa.mel_frequencies(42, fmin=20.0, fmax=SR / 2)[1:-1]
    assert abs(centres[fb[10].argmax()] - 1000.0) <= np.diff(centres).max()


def test_mfcc_is_the_dct_of_the_log_mel_and_deltas_of_a_steady_tone_vanish() -> None:
    from scipy.fft import dct

    y = tone(700.0, 0.4)
    fb = frame_features(y, SR, FeatureConfig(kind="fbank"))
    mf = frame_features(y, SR, FeatureConfig(kind="mfcc", n_mfcc=13, deltas=2))
    np.testing.assert_allclose(mf[:, :13], dct(fb, type=2, norm="ortho", axis=1)[:, :13], rtol=1e-4, atol=1e-3)
    # a stationary tone: deltas ~ 0 away from the edges, relative to the features' scale
    assert np.abs(mf[5:-5, 13:]).max() < 0.05 * np.abs(mf[:, :13]).max()


def test_stack_context_by_hand() -> None:
    f = np.arange(8, dtype=np.float32).reshape(4, 2)  # frames f0..f3 = [0,1],[2,3],[4,5],[6,7]
    s = stack_context(f, 1)
    assert s.shape == (4, 3, 2)
    np.testing.assert_array_equal(s[0], [[0, 1], [0, 1], [2, 3]])  # f0 repeated at the left edge
    np.testing.assert_array_equal(s[1], [[0, 1], [2, 3], [4, 5]])
    np.testing.assert_array_equal(s[3], [[4, 5], [6, 7], [6, 7]])
    s2 = stack_context(f, 2)
    np.testing.assert_array_equal(s2[:, 2], f)  # the centre column is the frame itself
    np.testing.assert_array_equal(s2[0, :, 0], [0, 0, 0, 2, 4])
    np.testing.assert_array_equal(stack_context(f, 0)[:, 0], f)
    with pytest.raises(DataError, match=r"\(T, F\)"):
        stack_context(np.zeros(5), 1)


def test_extractor_shapes_labels_and_normalisation() -> None:
    audio = synthetic_audio()
    cfg = FeatureConfig(kind="fbank", n_mels=24, context=3, normalize="utterance")
    ext = FrameExtractor(cfg)
    ds = ext.transform(audio)
    lengths = [frame_features(w, SR, cfg).shape[0] for w in audio.waveforms]
    assert ds.x.shape == (sum(lengths), 7, 24) and ds.input_shape == cfg.input_shape == (7, 24)
    utt = ds.extra_labels["utterance"]
    np.testing.assert_array_equal(np.bincount(utt), lengths)
    np.testing.assert_array_equal(ds.extra_labels["speaker"], audio.speakers[utt])
    np.testing.assert_array_equal(ds.y.numpy(), audio.labels[utt])
    np.testing.assert_array_equal(ds.extra_labels["frame"][:lengths[0]], np.arange(lengths[0]))
    # context stacking on the tone's frames, by hand: row t, column j = frame clip(t + j - 3)
    f0 = ext.utterance(audio, 0)
    x0 = ds.x[: lengths[0]].numpy()
    for t in (0, 1, lengths[0] // 2, lengths[0] - 1):
        for j in range(7):
            np.testing.assert_array_equal(x0[t, j], f0[min(max(t + j - 3, 0), lengths[0] - 1)])
    centre = ds.x[:, 3].numpy()
    for u in (0, 5):  # per-utterance CMVN: the centre frames of a recording have mean 0, std 1
        np.testing.assert_allclose(centre[utt == u].mean(0), 0, atol=1e-4)
        np.testing.assert_allclose(centre[utt == u].std(0), 1, atol=1e-2)
    # global CMVN: statistics learned on the training rows only, applied to the rest
    tr, te = fsdd_split(audio, "official", test_takes=[0])
    g = FrameExtractor(FeatureConfig(n_mels=24, context=0, normalize="global")).fit(audio, tr)
    raw = np.concatenate([frame_features(audio.waveforms[i], SR, g.config) for i in tr])
    np.testing.assert_allclose(g.mean_, raw.mean(0), rtol=1e-4, atol=1e-3)
    np.testing.assert_allclose(g.transform(audio, tr).x[:, 0].numpy().mean(0), 0, atol=1e-3)
    # round trip through the run.json dictionary
    g2 = FrameExtractor.from_dict(g.to_dict())
    np.testing.assert_array_equal(g2.transform(audio, te).x.numpy(), g.transform(audio, te).x.numpy())
    # every 2nd frame
    half = ext.transform(audio, frame_step=2)
    assert len(half) == sum((n + 1) // 2 for n in lengths)


def test_feature_errors_say_what_to_do() -> None:
    with pytest.raises(ParameterError, match="'fbank' or 'mfcc'"):
        FeatureConfig(kind="plp")  # type: ignore[arg-type]
    with pytest.raises(ParameterError, match="deltas must be 0, 1 or 2"):
        FeatureConfig(deltas=3)
    with pytest.raises(ParameterError, match="call fit"):
        FrameExtractor(FeatureConfig(normalize="global")).transform(synthetic_audio())
    audio = synthetic_audio()
    with pytest.raises(DataError, match="Unknown speakers"):
        fsdd_split(audio, "speaker", ["nobody"])
    tr, te = fsdd_split(audio, "speaker", ["spk1"])
    assert set(audio.speakers[te]) == {1} and 1 not in set(audio.speakers[tr])
    tr, te = fsdd_split(audio, "official", test_takes=[0])
    assert set(audio.indices[te]) == {0} and set(audio.speakers[te]) == {0, 1, 2}


# ---------------------------------------------------------------- capture and analysis


def test_digit_and_speaker_labels_survive_capture() -> None:
    audio = synthetic_audio()
    ds = FrameExtractor(FeatureConfig(n_mels=16, context=2)).transform(audio)
    model = AcousticDNN(ds.input_shape, 2, width=8, depth=2)
    idx = np.random.default_rng(1).permutation(len(ds))[:50]
    acts = collect_activations(model, ds, ["relu1", "relu2"], indices=idx)
    np.testing.assert_array_equal(acts.labels, ds.y.numpy()[idx])
    for key in ("speaker", "digit", "utterance", "frame"):
        np.testing.assert_array_equal(acts.extra_labels[key], ds.extra_labels[key][idx])
    assert acts["relu1"].shape == (50, 8)


def test_grouped_neighborhood_hit_by_hand() -> None:
    from layerscope.projection import neighborhood_hit

    x = np.array([[0.0], [0.1], [1.0], [1.1]])
    labels = np.array([0, 1, 0, 1])
    groups = np.array([0, 0, 1, 1])
    # k=1, other groups only: p0 -> p2 (hit), p1 -> p2 (miss), p2 -> p1 (miss), p3 -> p1 (hit)
    assert grouped_neighborhood_hit(x, labels, groups, k=1) == 0.5
    assert neighborhood_hit(x, labels, k=1) == 0.0
    # with every point its own group it is the ordinary NH
    rng = np.random.default_rng(0)
    pts, lab = rng.normal(size=(60, 3)), rng.integers(0, 3, 60)
    assert grouped_neighborhood_hit(pts, lab, np.arange(60), k=5) == pytest.approx(neighborhood_hit(pts, lab, k=5))
    with pytest.raises(ParameterError, match="outside the largest group"):
        grouped_neighborhood_hit(x, labels, np.zeros(4), k=1)


def test_speaker_nh_is_one_when_speakers_are_trivially_separable() -> None:
    # each speaker is a pure tone at its own frequency (no per-utterance normalisation, which would
    # remove a steady tone); the digit is unrelated to the signal
    audio = synthetic_audio(takes=4)
    ds = FrameExtractor(FeatureConfig(n_mels=24, context=1, normalize="none")).transform(audio)
    torch.manual_seed(0)
    model = AcousticDNN(ds.input_shape, 2, width=16, depth=2).train()
    snap = snapshot(model)
    a = analyze_layers(model, ds, n_frames=240, method="pca", random_state=0, probe_test_size=0.3)
    assert_unchanged(model, snap)
    assert [r["layer"] for r in a.rows] == ["input", "relu1", "relu2"]
    for r in a.rows:
        assert r["nh_speaker"] > 0.97 and r["nh_speaker_xutt"] > 0.97 and r["nh_speaker_original_xutt"] > 0.97
        assert r["probe_speaker"] > 0.97
    inp = a.rows[0]
    assert inp["nh_digit_xutt"] < 0.75  # digit carries no signal: near chance (0.5), not ~1
    assert a.embeddings["relu2"].shape == (240, 2)
    pts = a.points()
    assert len(pts["layers"]["relu1"]["x"]) == 240 and len(pts["speaker"]) == 240
    s = summarize(a)
    assert s["nh_speaker_xutt_input"] == inp["nh_speaker_xutt"]
    # shuffled speakers: NH falls towards chance
    shuffled = ds.subset(np.arange(len(ds)))
    shuffled.extra_labels["speaker"] = np.random.default_rng(0).permutation(ds.extra_labels["speaker"])
    b = analyze_layers(model, shuffled, n_frames=240, method="pca", random_state=0, layers=["relu1"])
    assert b.rows[0]["nh_speaker"] < 0.6


def test_analysis_errors_leave_the_model_alone() -> None:
    audio = synthetic_audio()
    ds = FrameExtractor(FeatureConfig(n_mels=16, context=1)).transform(audio)
    model = AcousticDNN(ds.input_shape, 2, width=8, depth=2)
    snap = snapshot(model)
    with pytest.raises(LayerNotFoundError):
        analyze_layers(model, ds, layers=["relu9"], n_frames=60, method="pca")
    assert_unchanged(model, snap)
    bare = ds.subset(np.arange(len(ds)))
    bare.extra_labels = {}
    with pytest.raises(DataError, match="FrameExtractor"):
        analyze_layers(model, bare, n_frames=60, method="pca")


# ---------------------------------------------------------------- embeddings


def test_purity_by_hand() -> None:
    assert purity_score(np.array([0, 0, 1, 1, 1]), np.array([0, 0, 0, 1, 1])) == pytest.approx(0.8)
    assert purity_score(np.array([0, 1, 2]), np.array([5, 5, 5])) == pytest.approx(1 / 3)
    with pytest.raises(DataError, match="same non-zero length"):
        purity_score(np.array([0, 1]), np.array([0]))


def test_clustering_blobs_and_utterance_means() -> None:
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(3, 5)) * 10
    spk = np.repeat(np.arange(3), 20)
    emb = centres[spk] + rng.normal(size=(60, 5)) * 0.1
    for linkage in ("average", "ward"):
        scores, pred = cluster_scores(emb, spk, linkage=linkage)  # type: ignore[arg-type]
        assert scores["purity"] == 1.0 and scores["ari"] == pytest.approx(1.0)
    scores, _ = cluster_scores(rng.normal(size=(60, 5)), spk)
    assert scores["ari"] < 0.3
    with pytest.raises(ParameterError, match="n_clusters"):
        cluster_scores(emb, spk, n_clusters=1)
    # utterance embeddings are exact per-recording means of the frame activations
    audio = synthetic_audio()
    ds = FrameExtractor(FeatureConfig(n_mels=16, context=1)).transform(audio)
    model = AcousticDNN(ds.input_shape, 2, width=8, depth=1)
    snap = snapshot(model)
    embs, utts = utterance_embeddings(model, ds, ["relu1"])
    assert_unchanged(model, snap)
    with torch.no_grad():
        h = torch.relu(model.fc1(ds.x.flatten(1))).numpy()
    u = ds.extra_labels["utterance"]
    np.testing.assert_array_equal(utts, np.unique(u))
    np.testing.assert_allclose(embs["relu1"][3], h[u == utts[3]].mean(0), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(embs["input"][0], ds.x[u == utts[0]].flatten(1).numpy().mean(0), rtol=1e-5, atol=1e-6)


def test_embedding_study_separates_tone_speakers() -> None:
    audio = synthetic_audio(takes=4)
    ds = FrameExtractor(FeatureConfig(n_mels=24, context=1, normalize="none")).transform(audio)
    model = AcousticDNN(ds.input_shape, 2, width=16, depth=2)
    st = embedding_study(model, ds, max_recordings=18)
    assert st.info["n_recordings"] == 18 and st.info["n_speakers"] == 3
    assert st.rows[0]["layer"] == "input" and st.rows[0]["purity"] == 1.0 and st.rows[0]["ari"] == pytest.approx(1.0)
    assert st.rows[0]["ari_digit"] < 0.2  # the digit is not in these signals
    pts = st.points()
    assert len(pts["x"]) == 18 and set(pts["speaker"]) == {0, 1, 2}
    one = ds.subset(np.flatnonzero(ds.extra_labels["speaker"] == 0))
    with pytest.raises(DataError, match="single speaker"):
        embedding_study(model, one)


def test_embeddings_and_utterance_accuracy_leave_the_model_alone() -> None:
    from layerscope.speech import utterance_accuracy

    audio = synthetic_audio()
    ds = FrameExtractor(FeatureConfig(n_mels=16, context=1)).transform(audio)
    model = AcousticDNN(ds.input_shape, 2, width=8, depth=2).train()
    snap = snapshot(model)
    with pytest.raises(LayerNotFoundError, match="relu7"):
        utterance_embeddings(model, ds, ["relu7"])
    assert_unchanged(model, snap)
    # recording-level accuracy by hand: sum the frames' log-probabilities per recording
    acc = utterance_accuracy(model, ds)
    assert_unchanged(model, snap)
    with torch.no_grad():
        model.eval()
        lp = torch.log_softmax(model(ds.x), 1).numpy()
        model.train()
    u = ds.extra_labels["utterance"]
    by_hand = np.mean([lp[u == i].sum(0).argmax() == audio.labels[i] for i in np.unique(u)])
    assert acc == pytest.approx(by_hand)
    bare = ds.subset(np.arange(10))
    bare.extra_labels = {}
    with pytest.raises(DataError, match="utterance"):
        utterance_accuracy(model, bare)


def test_top_frames_one_per_recording_by_hand() -> None:
    from layerscope.speech.listen import top_frames

    acts = np.array([5.0, 9.0, 8.0, 1.0, 7.0, 6.0])
    utt = np.array([0, 0, 0, 1, 1, 2])
    # strongest per recording: row 1 (9, rec 0), row 4 (7, rec 1), row 5 (6, rec 2)
    np.testing.assert_array_equal(top_frames(acts, utt, 2), [1, 4])
    np.testing.assert_array_equal(top_frames(acts, utt, 10), [1, 4, 5])
