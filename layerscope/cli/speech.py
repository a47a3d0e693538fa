"""``layerscope speech train | analyze | embed``: frame-level acoustic models on FSDD (Mohamed, Hinton &
Penn 2012) and speaker embeddings from their hidden layers (Garcia-Romero et al. 2017)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, List, Optional

import typer

from ._app import (
    app,
    batch_size_option,
    console,
    out_option,
    parse_list,
    progress_bar,
    progress_option,
)

speech = typer.Typer(no_args_is_help=True, help="Acoustic models on speech frames: train, analyze layers, speaker embeddings.")
app.add_typer(speech, name="speech")


def _pct(v: Any) -> str:
    return "-" if v is None else f"{v:.3f}"


@speech.command("train")
def train_cmd(
    out: Path = typer.Option(..., "--out", "-o", help="Run folder to write (run.json + checkpoints)."),
    data: str = typer.Option("fsdd", help="Recordings: fsdd (bundled) or fsdd:PATH (folder / .tar.gz of <digit>_<speaker>_<index>.wav)."),
    arch: str = typer.Option("dnn:width=256,depth=4", "--arch", "--model", "-m", help="dnn:width=W,depth=D (1 to 8 hidden layers)."),
    features: str = typer.Option("fbank", help="fbank (log-mel filterbank) or mfcc."),
    n_mels: int = typer.Option(40, help="Mel bands."),
    n_mfcc: int = typer.Option(13, help="MFCCs kept (features=mfcc)."),
    deltas: int = typer.Option(0, help="0, 1 (+Δ) or 2 (+Δ+ΔΔ)."),
    context: int = typer.Option(5, help="Context window: ±N frames around the centre frame."),
    normalize: str = typer.Option("utterance", help="Mean/variance normalisation: utterance, global or none."),
    target: str = typer.Option("digit", help="What each frame is classified as: digit (acoustic model) or speaker."),
    split: str = typer.Option("official", help="official (test = takes 0-4), speaker (hold out --test-speakers) or all."),
    test_speakers: Optional[str] = typer.Option(None, help="Comma-separated held-out speakers for --split speaker (default: the last by name)."),
    epochs: int = typer.Option(5),
    checkpoints: Optional[str] = typer.Option(None, help="Comma-separated epochs to save (default 0,1,2,5,... and the last)."),
    batch_size: int = batch_size_option(),
    lr: float = typer.Option(1e-3),
    optimizer: str = typer.Option("adam", help="adam or sgd."),
    frame_step: int = typer.Option(1, help="Train on every N-th frame of each recording."),
    seed: int = typer.Option(0),
    threads: Optional[int] = typer.Option(None, help="torch CPU threads."),
    progress: bool = progress_option(),
) -> None:
    """Train a frame-level DNN acoustic model on FSDD frames, saving checkpoints like `layerscope train`."""
    import torch

    from ..data import AudioDataset, load_dataset
    from ..exceptions import DataError
    from ..speech.features import FeatureConfig
    from ..speech.recipe import train_acoustic_model

    if threads:
        torch.set_num_threads(threads)
    audio = load_dataset(data)
    if not isinstance(audio, AudioDataset):
        raise DataError(f"{data} is not a set of recordings; speech models train on fsdd or fsdd:PATH.")
    cfg = FeatureConfig(kind=features, n_mels=n_mels, n_mfcc=n_mfcc, deltas=deltas, context=context,  # type: ignore[arg-type]
                        normalize=normalize)  # type: ignore[arg-type]
    cps = [int(c) for c in parse_list(checkpoints) or []] or None
    with progress_bar(progress) as bar:
        run = train_acoustic_model(
            audio, out_dir=out, features=cfg, arch=arch, target=target, split=split,  # type: ignore[arg-type]
            test_speakers=parse_list(test_speakers), epochs=epochs, checkpoints=cps, batch_size=batch_size, lr=lr,
            optimizer=optimizer, frame_step=frame_step, seed=seed, data_spec=data, progress=bar,
        )
    from rich.table import Table

    t = Table(title=f"{arch} on {cfg.describe()} ({target}, split {split}): run folder {out}")
    for col in ("epoch", "train loss", "train acc", "val acc (frames)"):
        t.add_column(col, justify="right")
    for c in run.meta["checkpoints"]:
        t.add_row(str(c["epoch"]), _pct(c["train_loss"]), _pct(c["train_accuracy"]), _pct(c["val_accuracy"]))
    console.print(t)
    console.print(f"recording-level accuracy (frame log-probabilities summed): {run.meta['utterance_accuracy']:.4f}")


@speech.command("analyze")
def analyze_cmd(
    model: List[str] = typer.Option(..., "--model", "-m", help="A speech run folder; repeat to compare runs (e.g. fbank vs mfcc, shallow vs deep)."),
    out: Path = out_option(),
    part: str = typer.Option("test", help="Which recordings of each run: test, train or all."),
    n_frames: int = typer.Option(3000, help="Frames sampled (stratified by digit and speaker)."),
    method: str = typer.Option("tsne", help="Projection: tsne, umap or pca."),
    k: int = typer.Option(6, help="Neighbours of the neighbourhood hit."),
    probe_test_size: float = typer.Option(0.3, help="Fraction of recordings whose frames test the probes."),
    seed: int = typer.Option(0),
    threads: Optional[int] = typer.Option(None, help="torch CPU threads."),
    progress: bool = progress_option(),
) -> None:
    """Per hidden layer: projections by digit and by speaker, NH and linear probes for both."""
    import torch
    from rich.table import Table

    from ..speech.runs import analyze_speech_runs

    if threads:
        torch.set_num_threads(threads)
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
    seed: int = typer.Option(0),
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


@speech.command("frames")
def frames_cmd(
    model: str = typer.Option(..., "--model", "-m", help="A speech run folder."),
    out: Path = typer.Option(..., "--out", "-o", help="The .npz file to write."),
    part: str = typer.Option("test", help="Which recordings of the run: test, train or all."),
    frame_step: int = typer.Option(1, help="Keep every N-th frame of each recording."),
) -> None:
    """Export a run's input frames to .npz, so that `--data npz:FILE` feeds them to topk, project, probe, ..."""
    from ..speech.runs import export_frames

    p = export_frames(model, out, part=part, frame_step=frame_step)  # type: ignore[arg-type]
    console.print(f"wrote [bold]{p}[/]; use it with e.g. `layerscope topk --model {model} --data npz:{p} ...`")


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


@speech.command("merge")
def merge_cmd(
    results: List[Path] = typer.Argument(..., help="Result folders of `speech analyze` to combine."),
    out: Path = typer.Option(..., "--out", "-o", help="Output folder of the combined result."),
) -> None:
    """Combine `speech analyze` results (e.g. runs analysed in parallel) into one comparison table."""
    from ..speech.runs import merge_results

    doc = merge_results(results, out)
    console.print(f"merged {len(results)} results ({len(doc['table'])} rows) into [bold]{out}[/]")
