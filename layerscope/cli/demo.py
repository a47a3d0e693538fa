"""``layerscope demo``: from a fresh clone to a browsable report on the bundled data.

The steps and the runner are the library's (:mod:`layerscope.demo`, :func:`~layerscope.demo.run_demo`);
this command parses the options, prints each step as it starts and ends (its summary, or why it
failed or was skipped), the step table and the report's path, and exits with status 1 when a step
failed. ``--list`` shows the steps and their equivalent command lines.
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable, Optional, cast

import typer
from rich.markup import escape

from ._app import app, console, err_console, progress_bar, progress_option

if TYPE_CHECKING:
    from ..demo import StepRun


def _command_exists(path: list[str]) -> bool:
    """Whether ``layerscope <path...>`` is an installed command (sub-apps included)."""
    import typer.main

    cmd = typer.main.get_command(app)
    for part in path:
        commands = getattr(cmd, "commands", None)  # a group (typer vendors its own click)
        if not isinstance(commands, dict) or part not in commands:
            return False
        cmd = commands[part]
    return True


def _invoke(args: list[str]) -> None:
    """Run ``layerscope ARGS`` in-process (for a step given only a command line)."""
    try:
        rc = app(args=args, prog_name="layerscope", standalone_mode=False)
    except typer.Exit as ex:  # raised inside a command
        rc = ex.exit_code
    if isinstance(rc, int) and rc != 0:
        raise RuntimeError(f"exited with status {rc}")


class _Printer:
    """Prints each step as it starts and ends (``on_step``). Called as the library's tracker, it
    draws a rich progress display per step, opened at the step's first loop and closed at its end."""

    def __init__(self, bars: bool) -> None:
        self.bars, self.active, self._bar, self._stack = bars, False, cast(Any, None), contextlib.ExitStack()

    def __call__(self, iterable: Iterable[Any], total: Optional[int] = None, desc: Optional[str] = None, **_: Any) -> Iterable[Any]:
        if self.bars and self.active and self._bar is None:
            self._bar = self._stack.enter_context(progress_bar(True))
        return iterable if self._bar is None else self._bar(iterable, total=total, desc=desc)

    def close(self) -> None:
        self.active, self._bar = False, None
        self._stack.close()

    def on_step(self, event: str, r: StepRun) -> None:
        head = f"[bold][{r.index}/{r.total}] {r.name}[/]: {escape(r.what)}"
        if event == "report":
            console.print(f"[bold]report[/]: {escape(r.what)}")
        elif event == "start":
            console.print(head, highlight=False)
            self.active = True
            return
        self.close()
        if r.status == "skipped":
            console.print(f"{head}\n   [yellow]skipped[/]: {escape(r.summary)}", highlight=False)
        elif r.status == "interrupted":
            console.print("[yellow]interrupted[/]: writing the report of what finished.")
        elif r.status == "failed":
            err_console.print(f"   [red]failed[/] after {r.seconds:.0f} s: {escape(r.error)}", highlight=False)
            err_console.print("   " + r.traceback.replace("\n", "\n   "), highlight=False, markup=False)
        elif r.status == "ok":
            for line in r.summary.splitlines():
                console.print("   " + line, highlight=False, markup=False)
            console.print(f"   [green]done[/] in {r.seconds:.0f} s")


@app.command()
def demo(
    out: Path = typer.Option(Path("demo-out"), "--out", "-o", help="Folder for every result of the demo (and report.html)."),
    epochs: int = typer.Option(5, help="Training epochs of the reference MLP."),
    limit: int = typer.Option(30000, help="MNIST training digits for the MLP (stratified; the CNN uses a quarter)."),
    n_project: int = typer.Option(2000, "--n-project", help="Test digits / frames in each projection (Rauber et al. used 2,000)."),
    speech: bool = typer.Option(True, help="Include the FSDD speech steps."),
    transfer: bool = typer.Option(True, help="Include the (tiny) transfer grid."),
    text: bool = typer.Option(True, help="Include the text steps on all-MiniLM-L6-v2 (skipped if the [text] extra is missing)."),
    only: Optional[str] = typer.Option(None, help="Comma-separated step names to run (others skipped); see --list."),
    list_steps: bool = typer.Option(False, "--list", help="List the steps and exit."),
    progress: bool = progress_option(),
) -> None:
    """Train reference models on bundled MNIST/FSDD, run every analysis at a small size, write the report."""
    from rich.table import Table

    from .. import demo as lib

    if list_steps:
        for s in lib.build_steps(out, epochs=epochs, limit=limit, n_project=n_project, progress=progress, speech=speech,
                                 transfer=transfer, text=text):
            console.print(f"[bold]{s.name}[/]: {s.what}\n   {s.command}", highlight=False)
        return
    printer = _Printer(progress)
    try:
        run = lib.run_demo(out, only=only, speech=speech, transfer=transfer, text=text, epochs=epochs, limit=limit, n_project=n_project,
                           progress=printer if progress else None, on_step=printer.on_step,
                           invoke=lambda args: _invoke(args), command_exists=lambda path: _command_exists(path))
    finally:
        printer.close()
    table = Table(title=f"layerscope demo: {run.seconds:.0f} s in all")
    for col in ("step", "status", "seconds", "note"):
        table.add_column(col, justify="right" if col == "seconds" else "left")
    colour = {"ok": "green", "failed": "red", "skipped": "yellow"}
    for r in [*run.steps, lib.StepRun("report", "", "", status="ok", seconds=run.report_seconds)]:
        table.add_row(r.name, f"[{colour.get(r.status, 'white')}]{r.status}[/]", f"{r.seconds:.0f}", escape(r.note[:90]))
    console.print(table)
    console.print(f"report: [bold]{run.report}[/]\nopen it in a browser: file://{run.report.resolve()}", highlight=False)
    if run.failed:
        console.print(f"[yellow]{len(run.failed)} step(s) failed[/]; their messages are above, the report shows everything that finished.")
        raise typer.Exit(1)
