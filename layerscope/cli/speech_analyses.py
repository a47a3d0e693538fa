"""``layerscope speech analyze | embed | xvector | topk``: per-layer digit vs speaker information (Mohamed,
Hinton & Penn 2012), speaker embeddings (Garcia-Romero et al. 2017: frame-DNN means, and x-vectors vs
those on unseen speakers over leave-speakers-out folds) and top-k frames of units.

Each command: parse, call the library (:mod:`layerscope.speech`), ``result.save(out)``, print the
metrics."""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from ._app import (console, load_recordings, memory_budget_option, out_option, parse_list, parse_memory_budget, progress_bar,
                   progress_option, seed_option, set_threads, store_option, threads_option)
from .speech import _pct, speech

@speech.command("analyze")
def analyze_cmd(
    model: List[str] = typer.Option(..., "--model", "-m", help="A speech run folder; repeat to compare runs (e.g. fbank vs mfcc, shallow vs deep)."),
    out: Path = out_option(),
    part: str = typer.Option("test", help="Which recordings of each run: test, train or all."),
    n_frames: int = typer.Option(3000, help="Frames sampled (stratified by digit and speaker)."),
    method: str = typer.Option("tsne", help="Projection: tsne, umap or pca."),
    k: int = typer.Option(6, help="Neighbours of the neighbourhood hit."),
    probe_test_size: float = typer.Option(0.3, help="Fraction of recordings whose frames test the probes."),
    seed: int = seed_option(),
    threads: Optional[int] = threads_option(),
    memory_budget_mb: Optional[float] = memory_budget_option(),
    store: Optional[str] = store_option(),
    progress: bool = progress_option(),
) -> None:
    """Per hidden layer: projections by digit and by speaker, NH and linear probes for both."""
    from rich.table import Table

    from ..speech.runs import analyze_speech_runs

    set_threads(threads)
    with progress_bar(progress) as bar:
        result = analyze_speech_runs(model, part=part, n_frames=n_frames, method=method, k=k,  # type: ignore[arg-type]
                              probe_test_size=probe_test_size, random_state=seed, progress=bar,
                              memory_budget=parse_memory_budget(memory_budget_mb), store=store)  # type: ignore[arg-type]
    result.save(out)
    t = Table(title=f"Digit vs speaker per layer ({method}, k={k}; NH counts neighbours from other recordings)")
    keys = ("nh_digit_xutt", "nh_speaker_xutt", "nh_digit_original_xutt", "nh_speaker_original_xutt", "probe_digit", "probe_speaker")
    for col in ("model", "layer", "NH digit", "NH speaker", "NH digit (act.)", "NH speaker (act.)", "probe digit", "probe speaker"):
        t.add_column(col, justify="left" if col in ("model", "layer") else "right")
    for r in result.metrics["table"]:
        t.add_row(r["model"], r["layer"], *[_pct(r[key]) for key in keys])
    console.print(t)
    console.print(f"wrote [bold]{out}[/]/result.json and figures")


@speech.command("embed")
def embed_cmd(
    model: str = typer.Option(..., "--model", "-m", help="A speech run folder (a speaker classifier trained with --split speaker, or any speech run)."),
    out: Path = out_option(),
    part: str = typer.Option("test", help="Recordings to cluster: the run's test (held-out speakers), train or all."),
    linkage: str = typer.Option("average", help="Agglomerative linkage: average, complete, single or ward."),
    metric: str = typer.Option("cosine", help="Distance between embeddings (ignored for ward)."),
    n_clusters: Optional[int] = typer.Option(None, help="Clusters (default: the number of speakers)."),
    max_recordings: int = typer.Option(600, help="Cluster at most this many recordings (per speaker evenly)."),
    frame_step: int = typer.Option(1, help="Average every N-th frame of each recording."),
    seed: int = seed_option(),
    memory_budget_mb: Optional[float] = memory_budget_option(),
    store: Optional[str] = store_option(),
    progress: bool = progress_option(),
) -> None:
    """Speaker embeddings (Garcia-Romero et al. 2017): mean hidden activations per recording, clustered per layer."""
    from rich.table import Table

    from ..speech.runs import embed_speech_run

    with progress_bar(progress) as bar:
        result = embed_speech_run(model, part=part, linkage=linkage, metric=metric, n_clusters=n_clusters,  # type: ignore[arg-type]
                           max_recordings=max_recordings, frame_step=frame_step, random_state=seed, progress=bar,
                           memory_budget=parse_memory_budget(memory_budget_mb), store=store)  # type: ignore[arg-type]
    result.save(out)
    m = result.metrics
    t = Table(title=f"Clustering {m['n_recordings']} recordings of {m['n_speakers']} speakers "
                    f"({'unseen' if m.get('unseen_speakers') else 'seen'} by the model)")
    for col in ("layer", "purity", "ARI", "NMI", "ARI vs digits"):
        t.add_column(col, justify="left" if col == "layer" else "right")
    for r in m["layers"]:
        t.add_row(r["layer"], _pct(r["purity"]), _pct(r["ari"]), _pct(r["nmi"]), _pct(r["ari_digit"]))
    console.print(t)
    console.print(f"wrote [bold]{out}[/]/result.json and figures")


@speech.command("xvector")
def xvector_cmd(
    out: Path = out_option(),
    data: str = typer.Option("fsdd", help="Recordings: fsdd (bundled) or fsdd:PATH (folder / .tar.gz of <digit>_<speaker>_<index>.wav)."),
    test_speakers: int = typer.Option(2, help="Speakers held out per fold (every choice of them is a fold)."),
    folds: Optional[str] = typer.Option(None, help="Explicit folds instead: held-out speakers, ';' between folds, ',' within (e.g. 'theo,lucas;george,nicolas')."),
    max_folds: Optional[int] = typer.Option(None, help="Run a seeded random subset of this many folds."),
    normalize: str = typer.Option("global", help="Feature normalisation: global (per fold, training recordings), utterance or none."),
    epochs: int = typer.Option(15, help="x-vector training epochs."),
    dnn_arch: str = typer.Option("dnn:width=256,depth=4", help="Frame DNN compared with (its last hidden layer, averaged per recording)."),
    dnn_epochs: int = typer.Option(5, help="Frame-DNN training epochs."),
    linkage: str = typer.Option("average", help="Agglomerative linkage: average, complete, single or ward."),
    max_recordings: Optional[int] = typer.Option(None, help="Score at most this many held-out recordings per fold (default all)."),
    seed: int = seed_option(),
    threads: Optional[int] = threads_option(),
    progress: bool = progress_option(),
) -> None:
    """x-vectors vs frame-DNN means on unseen speakers: ARI / purity of clustering and EER, per fold."""
    from rich.table import Table

    from ..speech.features import FeatureConfig
    from ..speech.xvector_study import speaker_embedding_study

    set_threads(threads)
    audio = load_recordings(data)
    fold_list = [parse_list(f) or [] for f in folds.split(";")] if folds else None
    with progress_bar(progress) as bar:
        result = speaker_embedding_study(
            audio, features=FeatureConfig(normalize=normalize), n_test_speakers=test_speakers,  # type: ignore[arg-type]
            folds=fold_list, max_folds=max_folds, xvector_epochs=epochs, dnn_arch=dnn_arch, dnn_epochs=dnn_epochs,
            linkage=linkage, max_recordings=max_recordings, random_state=seed, data_spec=data, progress=bar,  # type: ignore[arg-type]
        )
    result.save(out)
    m = result.metrics
    spread = int(m["n_folds"]) >= 2  # a spread of one fold is no spread: show the value alone
    t = Table(title=f"Unseen speakers over {m['n_folds']} folds" + (": mean ± std across folds" if spread else ""))
    for col in ("method", "ARI", "purity", "EER", "val acc"):
        t.add_column(col, justify="left" if col == "method" else "right")
    for meth in m["methods"]:
        s = m["summary"][meth]
        t.add_row(meth, *[("-" if s[k]["mean"] is None else f"{s[k]['mean']:.3f}" + (f" ± {s[k]['std']:.3f}" if spread else ""))
                          for k in ("ari", "purity", "eer", "val_accuracy")])
    console.print(t)
    console.print(f"wrote [bold]{out}[/]/result.json and figures")


@speech.command("topk")
def topk_cmd(
    model: str = typer.Option(..., "--model", "-m", help="A speech run folder."),
    layer: str = typer.Option(..., "--layer", "-l", help="Layer whose units are ranked (e.g. relu3)."),
    out: Path = typer.Option(..., "--out", "-o", help="Output folder (result.json, spectrogram PNG, wav files)."),
    units: Optional[str] = typer.Option(None, help="Comma-separated unit indices (default: the first 8 that ever fire)."),
    k: int = typer.Option(5, help="Frames per unit (at most one per recording)."),
    part: str = typer.Option("test", help="Which recordings of the run: test, train or all."),
    memory_budget_mb: Optional[float] = memory_budget_option(),
    store: Optional[str] = store_option(),
    progress: bool = progress_option(),
) -> None:
    """Top-k frames of hidden units, with their recordings as wav files to listen to in the report."""
    from ..speech.listen import speech_topk

    with progress_bar(progress) as bar:
        result = speech_topk(model, layer=layer, units=[int(u) for u in parse_list(units) or []] or None, k=k,
                             part=part, progress=bar, memory_budget=parse_memory_budget(memory_budget_mb),  # type: ignore[arg-type]
                             store=store)  # type: ignore[arg-type]
    result.save(out)
    m = result.metrics
    for u in m["units"]:
        if u["dead"]:
            console.print(f"unit {u['unit']}: dead (0 on every frame)")
            continue
        console.print(f"unit {u['unit']}: " + ", ".join(f"{t['digit']}/{t['speaker']} ({t['activation']:.1f})" for t in u["top"]))
    console.print(f"top-{k} digit purity {m['digit_purity']:.2f}, speaker purity {m['speaker_purity']:.2f}; wrote [bold]{out}[/]")
