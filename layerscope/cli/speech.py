"""``layerscope speech train``: frame-level acoustic models on FSDD (Mohamed, Hinton & Penn 2012).

The ``speech`` command group is defined here; its analyses (``analyze``, ``embed``, ``topk``) are in
:mod:`.speech_analyses`, the file tools (``frames``, ``merge``) in :mod:`.speech_tools`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

import typer

from ._app import (app, batch_size_option, console, load_recordings, parse_list, progress_bar, progress_option, seed_option, set_threads,
                   threads_option)

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
    seed: int = seed_option(),
    threads: Optional[int] = threads_option(),
    progress: bool = progress_option(),
) -> None:
    """Train a frame-level DNN acoustic model on FSDD frames, saving checkpoints like `layerscope train`."""
    from ..speech.features import FeatureConfig
    from ..speech.recipe import train_acoustic_model

    set_threads(threads)
    audio = load_recordings(data, "speech models train on fsdd or fsdd:PATH")
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
