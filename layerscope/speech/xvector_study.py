"""Unseen-speaker embeddings over leave-speakers-out folds: x-vectors vs frame-DNN means.

For each fold, some speakers are held out entirely; on the others' recordings (repetitions 5+,
repetitions 0-4 validate, as :func:`~.recipe.train_acoustic_model` does for speaker models) two
speaker classifiers are trained:

* ``xvector`` — :class:`~.xvector.XVectorNet` (TDNN, statistics pooling, segment layers); the
  embedding is ``segment6`` before its ReLU (Garcia-Romero et al. 2017; Snyder et al.); the pooled
  statistics (``xvector:pool``) and ``segment7`` (``xvector:segment7``) are scored too, per layer,
  like the frame DNN's layers;
* ``frame_dnn`` — the frame-level :class:`~layerscope.models.AcousticDNN` of the speech recipe
  trained on the speaker of each frame; the embedding of a recording is the mean over its frames of
  the last hidden layer (what ``layerscope speech embed`` does today). Every hidden layer and the
  input features (``frame_dnn:input``: mean context window) are scored too, reported per layer and
  never used to pick a "best" layer on the test speakers.

Both are then scored on the held-out speakers' recordings only:

* clustering — :func:`~.embeddings.cluster_scores` (agglomerative, as many clusters as held-out
  speakers; embeddings centred on the mean of the clustered recordings): ARI, purity, NMI;
* verification — every pair of held-out recordings is a trial (same speaker or not), scored by
  the cosine of the two embeddings after subtracting the mean embedding of the *training*
  recordings (no statistic of the held-out speakers is used); the equal error rate (EER).

Folds: by default every choice of ``n_test_speakers`` held-out speakers (FSDD: 6 speakers,
``n_test_speakers=2`` gives 15 folds; each speaker is held out in 5 of them and each pair of
speakers is the clustering task once). Two held out keeps four speakers to train the softmax on;
holding out three (20 folds) leaves three training speakers, too few for a speaker space that
generalises. The summary is the mean, the sample standard deviation (ddof 1), min and max across
folds; folds share speakers, so they are not independent samples.

``result.json`` (``analysis = "xvector_study"``)::

    parameters: {features, n_test_speakers, folds, xvector: {...}, frame_dnn: {...}, linkage,
                 max_recordings, random_state}
    metrics: {"folds": [{fold, test_speakers, train_speakers, method, ari, purity, nmi, eer,
                         n_recordings, n_trials, val_accuracy, dim}, ...],
              "summary": {method: {metric: {mean, std, min, max, n}}},
              "methods": ["xvector", "frame_dnn", ...], "headline": ["xvector", "frame_dnn"]}
    figures: "xvector_folds.png"
"""

from __future__ import annotations

import itertools
import os
import tempfile
from dataclasses import replace
from pathlib import Path
from typing import Any, Literal, Sequence

import numpy as np

from .._progress import ProgressArg, resolve_progress
from ..data.audio import AudioDataset
from ..exceptions import DataError, ParameterError
from .embeddings import cluster_scores, utterance_embeddings
from .features import FeatureConfig, FrameExtractor, fsdd_split
from .results import XVectorStudy
from .xvector import cosine_trials, equal_error_rate, segment_embeddings, train_xvector

__all__ = ["speaker_folds", "fold_rows", "speaker_embedding_study"]

#: the frame-DNN method's headline layer and the metrics summarised per method
HEADLINE = ("xvector", "frame_dnn")
METRICS = ("ari", "purity", "nmi", "eer")


def speaker_folds(speaker_names: Sequence[str], n_test: int = 2, max_folds: int | None = None,
                  random_state: int | None = 0) -> list[tuple[str, ...]]:
    """Held-out speaker sets: every choice of ``n_test`` speakers (sorted names, lexicographic order).

    With ``max_folds`` smaller than the number of choices, a seeded subset chosen greedily to hold
    every speaker out about equally often: folds are visited in a seeded random order and each pick
    is a remaining fold whose speakers have been held out least so far (6 speakers, pairs,
    ``max_folds=3``: every speaker held out once; ``6``: about twice). Returned in lexicographic order.
    """
    names = sorted(set(speaker_names))
    if not 2 <= n_test <= len(names) - 2:
        raise ParameterError(
            f"n_test_speakers must leave >= 2 speakers on each side: 2 <= n <= {len(names) - 2} for "
            f"{len(names)} speakers; got {n_test}."
        )
    folds = list(itertools.combinations(names, n_test))
    if max_folds is not None:
        if max_folds < 1:
            raise ParameterError(f"max_folds must be >= 1; got {max_folds}.")
        if max_folds < len(folds):
            order = [folds[i] for i in np.random.default_rng(random_state).permutation(len(folds))]
            count = dict.fromkeys(names, 0)
            picked: list[tuple[str, ...]] = []
            for _ in range(max_folds):
                best = min((f for f in order if f not in picked), key=lambda f: sum(count[n] for n in f))
                picked.append(best)
                for n in best:
                    count[n] += 1
            folds = sorted(picked)
    return folds


def fold_rows(audio: AudioDataset, test_speakers: Sequence[str]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(fit, val, test)`` recording rows of a fold.

    ``test``: every recording of ``test_speakers``; ``fit`` / ``val``: the other speakers'
    repetitions 5+ / 0-4 (the split :func:`~.recipe.train_acoustic_model` makes for a speaker model).
    """
    tr, te = fsdd_split(audio, "speaker", list(test_speakers))
    is_val = np.isin(audio.indices[tr], np.arange(5))
    fit, val = tr[~is_val], tr[is_val]
    if fit.size == 0 or val.size == 0:
        raise DataError("The training speakers need repetitions 0-4 (validation) and 5+ (training); some part is empty.")
    return fit, val, te


def _score(emb: np.ndarray, spk: np.ndarray, center: np.ndarray, linkage: str) -> dict[str, Any]:
    scores, _ = cluster_scores(emb, spk, linkage=linkage)  # type: ignore[arg-type]
    s, t = cosine_trials(emb, spk, center)
    return {"ari": scores["ari"], "purity": scores["purity"], "nmi": scores["nmi"], "eer": equal_error_rate(s, t),
            "n_trials": int(s.size), "n_target_trials": int(t.sum()), "dim": int(emb.shape[1])}


def _limit(rows: np.ndarray, audio: AudioDataset, max_recordings: int | None, seed: int | None) -> np.ndarray:
    if max_recordings is None or len(rows) <= max_recordings:
        return rows
    from ..data.base import stratified_indices

    return np.sort(rows[stratified_indices(audio.speakers[rows], max_recordings, seed)])


def speaker_embedding_study(
    audio: AudioDataset,
    *,
    features: FeatureConfig | None = None,
    n_test_speakers: int = 2,
    folds: Sequence[Sequence[str]] | None = None,
    max_folds: int | None = None,
    xvector_epochs: int = 15,
    xvector_arch: dict[str, Any] | None = None,
    xvector_lr: float = 1e-3,
    dnn_arch: str = "dnn:width=256,depth=4",
    dnn_epochs: int = 5,
    dnn_lr: float = 1e-3,
    dnn_frame_step: int = 1,
    linkage: Literal["average", "complete", "single", "ward"] = "average",
    max_recordings: int | None = None,
    random_state: int = 0,
    work_dir: str | os.PathLike[str] | None = None,
    data_spec: str = "fsdd",
    progress: ProgressArg = None,
) -> XVectorStudy:
    """x-vectors vs frame-DNN means on unseen speakers, per leave-speakers-out fold.

    Parameters
    ----------
    audio
        Recordings with speakers and repetition indices (FSDD).
    features
        Feature frames for both networks. Default: 40 log-mel bands, ±5 frames of context for the
        frame DNN (the x-vector reads single frames: its TDNN makes its own context), and *global*
        mean/variance normalisation learned on each fold's training recordings. Per-recording
        normalisation (the speech recipe's default) sets every band's mean and standard deviation
        over the recording to 0 and 1, i.e. removes exactly the long-term statistics that
        statistics pooling and frame averaging summarise; with it both methods tell unseen FSDD
        speakers apart markedly worse (``bench/xvector_fsdd.py --normalize utterance``).
    n_test_speakers, folds, max_folds
        Held-out speakers per fold: explicit ``folds`` (lists of speaker names), or every choice of
        ``n_test_speakers`` (:func:`speaker_folds`, optionally a seeded subset of ``max_folds``).
    xvector_epochs, xvector_arch, xvector_lr
        :func:`~.xvector.train_xvector` settings (``xvector_arch`` goes to :class:`~.xvector.XVectorNet`).
    dnn_arch, dnn_epochs, dnn_lr, dnn_frame_step
        :func:`~.recipe.train_acoustic_model` settings of the frame DNN (Adam, ``target="speaker"``).
    max_recordings
        Score at most this many held-out recordings per fold (per speaker evenly, seeded); default all.
    random_state
        Seeds both trainings (the same seed in every fold) and any subsampling.
    work_dir
        Where the frame-DNN run folders are written (``fold_XX``); default a temporary folder
        removed afterwards.

    Returns
    -------
    XVectorStudy
    """
    from .recipe import train_acoustic_model

    track = resolve_progress(progress)
    cfg = features or FeatureConfig(normalize="global")
    fold_list = ([tuple(f) for f in folds] if folds is not None
                 else speaker_folds(audio.speaker_names, n_test_speakers, max_folds, random_state))
    if not fold_list:
        raise ParameterError("No folds to run: pass folds=[[speaker, ...], ...] or n_test_speakers.")
    for f in fold_list:
        unknown = sorted(set(f) - set(audio.speaker_names))
        if unknown:
            raise DataError(f"Fold {list(f)} names unknown speakers {unknown}; the data has {audio.speaker_names}.")
        if len(set(f)) < 2:
            raise ParameterError(f"Each fold must hold out at least 2 speakers to cluster; got {list(f)}.")
    xv_arch = dict(xvector_arch or {})
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="xvector-study-") as tmp:
        base = Path(work_dir) if work_dir is not None else Path(tmp)
        for k, held in enumerate(track(fold_list, total=len(fold_list), desc="speaker folds")):
            fit, val, te = fold_rows(audio, held)
            te = _limit(te, audio, max_recordings, random_state)
            train_spk = sorted({audio.speaker_names[s] for s in audio.speakers[fit]})
            if set(train_spk) & set(held):  # pragma: no cover - fsdd_split guarantees it; checked anyway
                raise DataError(f"Fold {k}: held-out speakers {sorted(set(train_spk) & set(held))} are in training.")
            spk_te = audio.speakers[te]
            fold_info = {"fold": k, "test_speakers": sorted(held), "train_speakers": train_spk,
                         "n_recordings": int(len(te)), "n_train_recordings": int(len(fit))}

            # x-vector: single frames, globally normalised with this fold's training statistics
            ext = FrameExtractor(replace(cfg, context=0)).fit(audio, fit)
            index = {audio.speaker_names.index(s): i for i, s in enumerate(train_spk)}
            utt = {name: [ext.utterance(audio, int(i)) for i in r] for name, r in (("fit", fit), ("val", val), ("te", te))}
            xv = train_xvector(utt["fit"], [index[s] for s in audio.speakers[fit]], n_speakers=len(train_spk),
                               val=(utt["val"], [index[s] for s in audio.speakers[val]]), epochs=xvector_epochs,
                               lr=xvector_lr, seed=random_state, **xv_arch)
            emb = segment_embeddings(xv.model, utt["te"])
            emb_fit_xv = segment_embeddings(xv.model, utt["fit"])
            for layer in ("segment6", "pool", "segment7"):
                rows.append({**fold_info, "method": "xvector" if layer == "segment6" else f"xvector:{layer}",
                             "layer": layer, "val_accuracy": xv.history[-1]["val_accuracy"],
                             **_score(emb[layer], spk_te, emb_fit_xv[layer].mean(0), linkage)})

            # frame DNN (the speech recipe), mean activations per recording
            run = train_acoustic_model(
                audio, out_dir=base / f"fold_{k:02d}", features=cfg, arch=dnn_arch, target="speaker", split="speaker",
                test_speakers=list(held), epochs=dnn_epochs, checkpoints=[dnn_epochs], lr=dnn_lr, optimizer="adam",
                frame_step=dnn_frame_step, seed=random_state, data_spec=data_spec,
            )
            if sorted(run.meta["train_speakers"]) != train_spk:  # pragma: no cover - same split function
                raise DataError(f"Fold {k}: the frame DNN trained on {run.meta['train_speakers']}, expected {train_spk}.")
            frames_te = run.extractor.transform(audio, te, target="digit")
            frames_fit = run.extractor.transform(audio, fit, target="digit")
            emb_te, utt_te = utterance_embeddings(run.model, frames_te)
            emb_fit, _ = utterance_embeddings(run.model, frames_fit)
            spk_dnn = audio.speakers[utt_te]  # utt_te: recording rows of audio, sorted
            if not np.array_equal(utt_te, np.sort(te)):  # pragma: no cover
                raise DataError(f"Fold {k}: the frame DNN embedded other recordings than the fold's test recordings.")
            hidden = list(run.model.hidden_layers)  # type: ignore[arg-type]
            for layer, e in emb_te.items():
                method = "frame_dnn" if layer == hidden[-1] else f"frame_dnn:{layer}"
                rows.append({**fold_info, "method": method, "layer": layer,
                             "val_accuracy": run.meta.get("utterance_accuracy"),
                             **_score(e, spk_dnn, emb_fit[layer].mean(0), linkage)})
    methods = list(dict.fromkeys(r["method"] for r in rows))
    summary = {m: {key: _spread([r[key] for r in rows if r["method"] == m]) for key in (*METRICS, "val_accuracy")}
               for m in methods}
    doc = {
        "model": {"name": "x-vector (TDNN + statistics pooling) vs frame-DNN means",
                  "xvector": dict(xv.model.config) if rows else {}, "frame_dnn": dnn_arch},
        "data": f"{data_spec}: {len(audio)} recordings, {len(audio.speaker_names)} speakers "
                f"({', '.join(audio.speaker_names)}); leave-{len(fold_list[0])}-speakers-out folds",
        "parameters": {
            "features": cfg.to_dict(), "n_test_speakers": int(len(fold_list[0])),
            "folds": [list(f) for f in fold_list],
            "xvector": {"epochs": xvector_epochs, "lr": xvector_lr, "optimizer": "adam", "weight_decay": 1e-4,
                        "arch": dict(xv.model.config), "embedding": "segment6 (affine output, before ReLU)",
                        "chunking": "per batch: recordings cropped to the shortest in the batch (max 200 frames)"},
            "frame_dnn": {"arch": dnn_arch, "epochs": dnn_epochs, "lr": dnn_lr, "optimizer": "adam",
                          "frame_step": dnn_frame_step, "embedding": "mean over frames of the last hidden layer"},
            "linkage": linkage, "max_recordings": max_recordings, "random_state": random_state,
            "clustering_centring": "mean of the clustered (held-out) recordings",
            "trial_centring": "mean embedding of the fold's training recordings",
            "trials": "every pair of held-out recordings; cosine score; EER by ROC interpolation",
            "validation": "training speakers' repetitions 0-4 (recording accuracy)",
        },
        "metrics": {"folds": rows, "summary": summary, "methods": methods, "headline": list(HEADLINE),
                    "n_folds": len(fold_list)},
        "figures": [{"path": "xvector_folds.png", "title": "Unseen speakers: x-vectors vs frame-DNN means",
                     "caption": "ARI, purity (agglomerative clustering) and EER (cosine trials) on held-out "
                                "speakers, one dot per fold; bar = mean across folds (Garcia-Romero et al. 2017)."}],
    }
    return XVectorStudy(doc)


def _spread(values: Sequence[Any]) -> dict[str, float | int | None]:
    v = np.asarray([x for x in values if x is not None], dtype=np.float64)
    if v.size == 0:
        return {"mean": None, "std": None, "min": None, "max": None, "n": 0}
    return {"mean": float(v.mean()), "std": float(v.std(ddof=1)) if v.size > 1 else 0.0,
            "min": float(v.min()), "max": float(v.max()), "n": int(v.size)}
