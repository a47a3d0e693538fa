"""``layerscope report``: one self-contained HTML file from the results under a folder."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from ._app import app, console


@app.command()
def report(
    run_dir: Path = typer.Argument(..., help="Folder holding the analysis results (scanned recursively for result.json)."),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="HTML file to write (default RUN_DIR/report.html)."),
    title: Optional[str] = typer.Option(None, help="Page title."),
    thumbnails: bool = typer.Option(True, help="Show image thumbnails of projected points, read from the results' data."),
    allow_external_data: bool = typer.Option(
        False, help="Also read thumbnails from data outside RUN_DIR named by a result (default: bundled datasets and paths inside RUN_DIR only)."),
) -> None:
    """Write a single-file HTML report (works offline, from file://) of every result under RUN_DIR."""
    from ..report import build_report, find_results

    results, runs, problems = find_results(run_dir)
    path = build_report(run_dir, out, title=title, thumbnails=thumbnails, allow_external_data=allow_external_data)
    size = path.stat().st_size / 2**20
    console.print(f"report of {len(results)} results and {len(runs)} training runs: [bold]{path}[/] ({size:.1f} MB)")
    for p in problems:
        console.print(f"[yellow]skipped[/] {p}")
    console.print(f"open it with: file://{path.resolve()}")
