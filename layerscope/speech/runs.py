"""Analyses of speech run folders, written as result folders (``result.json`` + PNG figures).

* :func:`analyze_speech_runs` — :func:`~.analysis.analyze_layers` for one or more runs (e.g. filterbank vs
  MFCC, shallow vs deep) into one table; ``analysis = "speech"`` (schema in :mod:`.analysis`).
* :func:`embed_speech_run` — :func:`~.embeddings.embedding_study` of a run's test recordings;
  ``analysis = "speaker_embeddings"`` (schema in :mod:`.embeddings`).
* :func:`merge_results` — several ``speech`` result folders into one comparison (nothing recomputed).
* :func:`export_frames` — a run's frames as ``.npz`` for the general commands (``--data npz:PATH``).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal, Sequence

import numpy as np

from .._progress import ProgressArg
from .._stream import check_storage, storage_params
from ..data.audio import AudioDataset
from ..exceptions import DataError
from ..results import model_description, write_result
from .analysis import LayerAnalysis, analyze_layers, summarize
from .embeddings import embedding_study
from .recipe import AcousticRun, load_acoustic_run
from .results import SpeakerEmbeddings, SpeechAnalysis

__all__ = ["analyze_speech_runs", "embed_speech_run", "export_frames", "merge_results", "run_name"]


def _safe(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name)


def run_name(run: AcousticRun) -> str:
    """A short table name: ``<features>-d<depth>`` plus the folder name."""
    f = run.meta.get("features", {})
    return f"{run.directory.name} ({f.get('kind', '?')}, depth {run.meta.get('depth', '?')})"


def _load_audio(run: AcousticRun, audio: AudioDataset | None) -> AudioDataset:
    if audio is not None:
        return audio
    from ..data import load_dataset

    loaded = load_dataset(run.meta.get("data", "fsdd"))
    if not isinstance(loaded, AudioDataset):
        raise DataError(f"The run's data {run.meta.get('data')!r} is not a set of recordings.")
    return loaded


def analyze_speech_runs(
    run_dirs: Sequence[str | os.PathLike[str]],
    out_dir: str | os.PathLike[str] | None = None,
    *,
    audio: AudioDataset | None = None,
    part: Literal["train", "test", "all"] = "test",
    n_frames: int = 3000,
    method: str = "tsne",
    k: int = 6,
    probe_test_size: float = 0.3,
    random_state: int = 0,
    progress: ProgressArg = None,
    memory_budget: int | None = None,
    store: Literal["npy", "zarr"] | None = None,
) -> SpeechAnalysis:
    """Per-layer digit / speaker analysis of each run (what ``layerscope speech analyze`` writes).

    ``memory_budget`` (bytes) and ``store`` are passed to :func:`~.analysis.analyze_layers` (how the
    captured layers are held; the numbers do not change).

    Returns a :class:`~.results.SpeechAnalysis`; with ``out_dir`` it is also saved there
    (``result.save(out_dir)``: ``result.json``, ``trends.png`` and one projection figure per run).
    """
    if not run_dirs:
        raise DataError("No runs to analyse: pass at least one speech run folder.")
    check_storage(memory_budget, store)
    from .plots import plot_layer_projections, plot_trends

    analyses: list[LayerAnalysis] = []
    figures: list[dict[str, str]] = []
    makers: dict[str, Any] = {}
    models = []
    for n_run, rd in enumerate(run_dirs, start=1):
        run = load_acoustic_run(rd)
        if run.target != "digit":
            raise DataError(
                f"{rd} is a {run.target} classifier; `speech analyze` studies digit acoustic models "
                "(use `speech embed` for speaker models)."
            )
        aud = _load_audio(run, audio)
        frames = run.frames(aud, part)
        if len(np.unique(frames.extra_labels["speaker"])) < 2:
            raise DataError(
                f"The {part!r} recordings of {rd} come from one speaker, so speaker information cannot be "
                "measured; use part='all' (CLI --part all) or a run with the official split."
            )
        name = run_name(run)
        if any(a.name == name for a in analyses):
            name = f"{name} #{n_run}"
        cps = run.meta.get("checkpoints", [])
        info = {
            "run": str(run.directory),
            "features": run.meta.get("features", {}).get("kind"),
            "feature_description": frames.normalization.description,
            "depth": run.meta.get("depth"),
            "width": run.meta.get("width"),
            "split": run.meta.get("split"),
            "frame_accuracy": cps[-1].get("val_accuracy") if cps else None,
            "utterance_accuracy": run.meta.get("utterance_accuracy"),
        }
        a = analyze_layers(run.model, frames, n_frames=n_frames, method=method, k=k, probe_test_size=probe_test_size,
                           random_state=random_state, name=name, info=info, progress=progress,
                           memory_budget=memory_budget, store=store)
        analyses.append(a)
        fig = f"model{n_run}_{_safe(run.directory.name)}_projections.png"
        makers[fig[:-4]] = lambda a=a: plot_layer_projections(a)
        figures.append({"path": fig, "title": f"{name}: frames per layer, by digit and by speaker",
                        "caption": f"{method} of {a.info['n_frames']} {part} frames; left coloured by digit, right by "
                                   "speaker; NH in brackets counts only neighbours from other recordings."})
        models.append({**model_description(run.model), "name": name, **info})
    makers = {"trends": lambda: plot_trends(analyses), **makers}
    figures.insert(0, {"path": "trends.png", "title": "Digit vs speaker information per layer",
                       "caption": "NH (k = 6, neighbours from other recordings) and linear-probe accuracy "
                                  "(held-out recordings) for digit (solid) and speaker (dashed)."})
    table = [row for a in analyses for row in a.table()]
    summary = [summarize(a) for a in analyses]
    doc = {
        "model": models[0] if len(models) == 1 else {"models": models},
        "models": models,
        "data": f"fsdd frames ({part} recordings)",
        "parameters": {"runs": [str(r) for r in run_dirs], "n_frames": n_frames, "method": method, "k": k,
                       "probe_test_size": probe_test_size, "random_state": random_state, "part": part,
                       "layers": [list(a.embeddings) for a in analyses], **storage_params(memory_budget, store)},
        "metrics": {"table": table, "summary": summary,
                    "chance": {"digit": analyses[0].info["chance_digit"], "speaker": analyses[0].info["chance_speaker"]}},
        "table": table,
        "points": analyses[0].points(),
        "figures": figures,
    }
    result = SpeechAnalysis(doc, makers, analyses=analyses)
    if out_dir is not None:
        result.save(out_dir)
    return result


def embed_speech_run(
    run_dir: str | os.PathLike[str],
    out_dir: str | os.PathLike[str] | None = None,
    *,
    audio: AudioDataset | None = None,
    part: Literal["train", "test", "all"] = "test",
    linkage: Literal["average", "complete", "single", "ward"] = "average",
    metric: str = "cosine",
    n_clusters: int | None = None,
    max_recordings: int | None = 600,
    frame_step: int = 1,
    random_state: int = 0,
    progress: ProgressArg = None,
    memory_budget: int | None = None,
    store: Literal["npy", "zarr"] | None = None,
) -> SpeakerEmbeddings:
    """Speaker clustering of a run's recordings per layer (what ``layerscope speech embed`` writes).

    ``memory_budget`` (bytes) and ``store`` are passed to :func:`~.embeddings.embedding_study` (how
    the captured frames' activations are held while averaged; the numbers do not change).

    Returns a :class:`~.results.SpeakerEmbeddings`; with ``out_dir`` it is also saved there
    (``result.json``, ``embedding_clusters.png``, ``embedding_best_layer.png``).
    """
    check_storage(memory_budget, store)
    run = load_acoustic_run(run_dir)
    aud = _load_audio(run, audio)
    tr, te = run.split_rows(aud)
    rows = {"train": tr, "test": te, "all": np.arange(len(aud))}[part]
    frames = run.extractor.transform(aud, rows, frame_step=frame_step, target="digit", progress=progress)
    held = sorted({aud.speaker_names[s] for s in np.unique(frames.extra_labels["speaker"])})
    train_spk = list(run.meta.get("train_speakers", []))
    cps = run.meta.get("checkpoints", [])
    info = {"run": str(run.directory), "target": run.target, "speakers": held, "train_speakers": train_spk,
            "unseen_speakers": not set(held) & set(train_spk),
            "val_accuracy": cps[-1].get("val_accuracy") if cps else None}
    study = embedding_study(run.model, frames, linkage=linkage, metric=metric, n_clusters=n_clusters,
                            max_recordings=max_recordings, random_state=random_state, info=info, progress=progress,
                            memory_budget=memory_budget, store=store)
    doc = {
        "model": {**model_description(run.model), "name": run_name(run)},
        "data": f"fsdd recordings ({part} part of the run: speakers {', '.join(held)})",
        "parameters": {"run": str(run_dir), "layers": [r["layer"] for r in study.rows], "linkage": linkage,
                       "metric": study.info["metric"], "n_clusters": n_clusters, "max_recordings": max_recordings,
                       "frame_step": frame_step, "random_state": random_state, "part": part,
                       **storage_params(memory_budget, store)},
        "metrics": {"layers": study.rows, "best_layer": study.best_layer, **{k: study.info[k] for k in (
            "n_recordings", "n_speakers", "speakers", "train_speakers", "unseen_speakers", "val_accuracy",
            "chance_purity")}},
        "points": study.points(),
        "figures": [
            {"path": "embedding_clusters.png", "title": "Speaker clustering per layer",
             "caption": "Purity, ARI and NMI of agglomerative clustering of utterance embeddings (mean hidden "
                        "activations over the recording's frames), Garcia-Romero et al. 2017."},
            {"path": "embedding_best_layer.png", "title": f"Embeddings of {study.best_layer}",
             "caption": "2-D PCA of the utterance embeddings: true speakers (left), clusters (right)."},
        ],
    }
    result = SpeakerEmbeddings(doc, study=study)  # figures drawn from the document's numbers
    if out_dir is not None:
        result.save(out_dir)
    return result


def export_frames(
    run_dir: str | os.PathLike[str],
    path: str | os.PathLike[str],
    *,
    audio: AudioDataset | None = None,
    part: Literal["train", "test", "all"] = "test",
    frame_step: int = 1,
) -> Path:
    """Write a run's frames to an ``.npz`` that ``--data npz:PATH`` reads, for the general commands
    (``topk``, ``project``, ``probe``, ...): ``x`` ``(N, 2w + 1, F)`` float32 (read back as
    ``(N, 1, 2w + 1, F)``, which the model flattens alike), ``y``, ``classes``, and per frame
    ``speaker``, ``speaker_names``, ``utterance``, ``frame``, ``filename``."""
    from .._io import atomic_path

    run = load_acoustic_run(run_dir)
    aud = _load_audio(run, audio)
    frames = run.frames(aud, part, frame_step=frame_step)
    p = Path(path)
    if p.suffix != ".npz":
        raise DataError(f"Frames are written as .npz; got {p.name!r}.")
    p.parent.mkdir(parents=True, exist_ok=True)
    ex = frames.extra_labels
    with atomic_path(p) as tmp:
        with open(tmp, "wb") as fh:
            np.savez(
                fh, x=frames.x.numpy(), y=frames.y.numpy(), classes=np.asarray(frames.classes),
                speaker=ex["speaker"], speaker_names=np.asarray(aud.speaker_names), utterance=ex["utterance"],
                frame=ex["frame"], filename=np.asarray([aud.filenames[u] for u in ex["utterance"]]),
            )
    return p


def merge_results(result_dirs: Sequence[str | os.PathLike[str]], out_dir: str | os.PathLike[str]) -> dict[str, Any]:
    """Combine ``speech`` result folders (e.g. runs analysed in parallel) into one comparison folder.

    Tables, summaries and models are concatenated, each source's figures are copied (prefixed with
    its position), the trend figure is redrawn over all models, and the first source's points are
    kept. Nothing is recomputed.
    """
    import shutil
    from types import SimpleNamespace

    from ..results import read_result
    from .plots import plot_trends

    if not result_dirs:
        raise DataError("No result folders to merge.")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    docs = []
    for d in result_dirs:
        doc = read_result(d)
        if doc.get("analysis") != "speech":
            raise DataError(f"{d} holds a {doc.get('analysis')!r} result; only 'speech' results (speech analyze) merge.")
        docs.append((Path(d), doc))
    figures: list[dict[str, Any]] = []
    table: list[dict[str, Any]] = []
    summary: list[dict[str, Any]] = []
    models: list[dict[str, Any]] = []
    series = []
    for i, (d, doc) in enumerate(docs, start=1):
        rows = doc.get("table", [])
        table += rows
        summary += doc.get("metrics", {}).get("summary", [])
        models += doc.get("models", [])
        chance = doc.get("metrics", {}).get("chance", {})
        for name in dict.fromkeys(r["model"] for r in rows):
            series.append(SimpleNamespace(name=name, rows=[r for r in rows if r["model"] == name],
                                          info={"chance_digit": chance.get("digit", 0.1),
                                                "chance_speaker": chance.get("speaker", 1 / 6)}))
        for f in doc.get("figures", []):
            if f.get("path") == "trends.png":
                continue
            src = d / f["path"]
            if src.is_file():
                rel = f"src{i}_{Path(f['path']).name}"
                shutil.copyfile(src, out / rel)
                figures.append({**f, "path": rel})
    plot_trends(series).savefig(out / "trends.png", dpi=SpeechAnalysis.dpi)  # type: ignore[arg-type]
    figures.insert(0, {"path": "trends.png", "title": "Digit vs speaker information per layer, all models",
                       "caption": "NH (k = 6, neighbours from other recordings) and linear-probe accuracy "
                                  "(held-out recordings) for digit (solid) and speaker (dashed)."})
    first = docs[0][1]
    merged = {
        "model": {"models": models},
        "models": models,
        "data": first.get("data"),
        "parameters": {**first.get("parameters", {}), "merged_from": [str(d) for d, _ in docs],
                       "runs": [r for _, doc in docs for r in doc.get("parameters", {}).get("runs", [])]},
        "metrics": {"table": table, "summary": summary, "chance": first.get("metrics", {}).get("chance", {})},
        "table": table,
        "points": first.get("points"),
        "figures": figures,
    }
    write_result(out, "speech", **merged)
    return merged
