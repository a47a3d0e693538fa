"""``layerscope speech frames | merge``: export a run's frames to .npz; merge ``speech analyze`` results."""

from __future__ import annotations

from pathlib import Path
from typing import List

import typer

from ._app import console
from .speech import speech

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


@speech.command("merge")
def merge_cmd(
    results: List[Path] = typer.Argument(..., help="Result folders of `speech analyze` to combine."),
    out: Path = typer.Option(..., "--out", "-o", help="Output folder of the combined result."),
) -> None:
    """Combine `speech analyze` results (e.g. runs analysed in parallel) into one comparison table."""
    from ..speech.runs import merge_results

    doc = merge_results(results, out)
    console.print(f"merged {len(results)} results ({len(doc['table'])} rows) into [bold]{out}[/]")
