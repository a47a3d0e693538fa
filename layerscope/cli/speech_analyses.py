"""``layerscope speech analyze | embed | topk``: per-layer digit vs speaker information (Mohamed, Hinton
& Penn 2012), speaker embeddings (Garcia-Romero et al. 2017) and top-k frames of units.

Each command: parse, call the library (:mod:`layerscope.speech`), ``result.save(out)``, print the
metrics."""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from ._app import console, out_option, parse_list, progress_bar, progress_option, seed_option, set_threads, threads_option
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
    progress: bool = progress_option(),
) -> None:
    """Per hidden layer: projections by digit and by speaker, NH and linear probes for both."""
    from rich.table import Table

    from ..speech.runs import analyze_speech_runs

    set_threads(threads)
    with progress_bar(progress) as bar:
        result = analyze_speech_runs(model, part=part, n_frames=n_frames, method=method, k=k,  # type: ignore[arg-type]
                              probe_test_size=probe_test_size, random_state=seed, progress=bar)
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
    progress: bool = progress_option(),
) -> None:
    """Speaker embeddings (Garcia-Romero et al. 2017): mean hidden activations per recording, clustered per layer."""
    from rich.table import Table

    from ..speech.runs import embed_speech_run

    with progress_bar(progress) as bar:
        result = embed_speech_run(model, part=part, linkage=linkage, metric=metric, n_clusters=n_clusters,  # type: ignore[arg-type]
                           max_recordings=max_recordings, frame_step=frame_step, random_state=seed, progress=bar)
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


@speech.command("topk")
def topk_cmd(
    model: str = typer.Option(..., "--model", "-m", help="A speech run folder."),
    layer: str = typer.Option(..., "--layer", "-l", help="Layer whose units are ranked (e.g. relu3)."),
    out: Path = typer.Option(..., "--out", "-o", help="Output folder (result.json, spectrogram PNG, wav files)."),
    units: Optional[str] = typer.Option(None, help="Comma-separated unit indices (default: the first 8 that ever fire)."),
    k: int = typer.Option(5, help="Frames per unit (at most one per recording)."),
    part: str = typer.Option("test", help="Which recordings of the run: test, train or all."),
    progress: bool = progress_option(),
) -> None:
    """Top-k frames of hidden units, with their recordings as wav files to listen to in the report."""
    from ..speech.listen import speech_topk

    with progress_bar(progress) as bar:
        result = speech_topk(model, layer=layer, units=[int(u) for u in parse_list(units) or []] or None, k=k,
                             part=part, progress=bar)  # type: ignore[arg-type]
    result.save(out)
    m = result.metrics
    for u in m["units"]:
        if u["dead"]:
            console.print(f"unit {u['unit']}: dead (0 on every frame)")
            continue
        console.print(f"unit {u['unit']}: " + ", ".join(f"{t['digit']}/{t['speaker']} ({t['activation']:.1f})" for t in u["top"]))
    console.print(f"top-{k} digit purity {m['digit_purity']:.2f}, speaker purity {m['speaker_purity']:.2f}; wrote [bold]{out}[/]")
