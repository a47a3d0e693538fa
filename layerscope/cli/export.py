"""``layerscope export``: a result folder in another tool's format (TensorBoard's Embedding Projector)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from ._app import app, console, parse_list


@app.command()
def export(
    tensorboard: Path = typer.Option(
        ..., "--tensorboard", help="Result folder to export for TensorBoard's Embedding Projector (written by "
        "project, capture, speech analyze, speech embed or neurons)."),
    out: Path = typer.Option(..., "--out", "-o", help="Export folder (new, or one written by an earlier export)."),
    layers: Optional[str] = typer.Option(None, help="Comma-separated layers to export (default all)."),
    data: Optional[str] = typer.Option(None, help="Data spec to read sprite images from (default: the result's own, if bundled)."),
    sprites: bool = typer.Option(True, help="Write sprite images (thumbnails) for image data."),
    allow_external_data: bool = typer.Option(False, help="Read sprite images also from a data path the result names."),
) -> None:
    """Write a result's per-layer embeddings as tensors.tsv, metadata.tsv, sprite and projector_config.pbtxt."""
    from ..export import export_tensorboard

    res = export_tensorboard(tensorboard, out, layers=parse_list(layers), data=data, sprites=sprites,
                             allow_external_data=allow_external_data)
    sprite = "with sprites" if any(e.sprite_path for e in res.embeddings) else "no sprites"
    console.print(f"exported {len(res.embeddings)} embeddings of the {res.analysis} result ({sprite}): [bold]{res.out}[/]")
    for note in res.notes:
        console.print(f"[yellow]note[/] {note}")
    console.print(f"view with: tensorboard --logdir {res.out}  (tab \"Projector\")")
