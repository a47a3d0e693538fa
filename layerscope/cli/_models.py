"""Shared pieces of the commands over several checkpoints (project, probe, cka) and their tables."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

from ._app import console, load_model_cli, parse_list

CHECKPOINTS_HELP = (
    "With a run folder from `layerscope train` as --model: comma-separated epochs to analyse, "
    "'first'/'last' allowed (e.g. 0,last). Default: the model as given (a run's last checkpoint)."
)
LAYERS_HELP = "'all' (the model's hidden layers) or comma-separated layer names."
REDUCE_HELP = (
    "Reduce each layer inside the hook, by its layout: mean or max over the positions of a conv map or the tokens "
    "of a sequence (masked), first/cls or last token of a sequence; never over features."
)
LAYOUTS = ("spatial", "sequence", "flat")


def layout_option() -> Any:
    """``--layout NAME=spatial|sequence[,...]``: the layout of layers whose axes layerscope cannot tell."""
    import typer

    return typer.Option(None, "--layout", help="Layouts of 3-D layer outputs layerscope cannot tell apart: "
                                                "NAME=spatial (N x C x L) or NAME=sequence (N x T x D), comma-separated.")


def layers_option() -> Any:
    """``--layers/-l``: ``all`` (default) or comma-separated layer names."""
    import typer

    return typer.Option("all", "--layers", "-l", help=LAYERS_HELP)


def checkpoints_option(help: str = CHECKPOINTS_HELP) -> Any:
    """``--checkpoints``: epochs of a run folder to analyse."""
    import typer

    return typer.Option(None, help=help)


def n_option() -> Any:
    """``--n``: observations, a seeded stratified subset of the data (default 2000)."""
    import typer

    return typer.Option(2000, help="Observations: a seeded stratified subset of the data.")


def reduce_option(default: Optional[str] = None, note: str = "") -> Any:
    """``--reduce``: the layout-aware reduction inside the hook; ``note`` says what the default does."""
    import typer

    return typer.Option(default, help=REDUCE_HELP + note)


def parse_layouts(value: Optional[str]) -> dict[str, str] | None:
    """``"a=sequence,b=spatial"`` -> ``{"a": "sequence", "b": "spatial"}``."""
    from ..exceptions import ParameterError

    if not value:
        return None
    out: dict[str, str] = {}
    for item in parse_list(value) or []:
        name, sep, kind = item.rpartition("=")
        if not sep or not name or kind not in LAYOUTS:
            raise ParameterError(f"--layout takes NAME=spatial, NAME=sequence or NAME=flat (comma-separated); got {item!r}.")
        out[name] = kind
    return out


def load_models(model: str, checkpoints: Optional[str], weights: Optional[Path], allow_pickle: bool) -> dict[Any, Any]:
    """``{epoch or None: model}``: the checkpoints of a run, or the one model given."""
    from ..exceptions import ParameterError
    from ..projection.analysis import models_from_run
    from ..training import RUN_FILE

    if checkpoints:
        if not (Path(model) / RUN_FILE).exists():
            raise ParameterError(
                f"--checkpoints needs a run folder from `layerscope train` as --model; {model!r} is not one "
                f"(no {RUN_FILE})."
            )
        return dict(models_from_run(model, parse_list(checkpoints)))
    net = load_model_cli(model, weights, allow_pickle)
    src = getattr(net, "layerscope_source", None) or {}
    return {src.get("epoch") if src.get("kind") == "run" else None: net}


def print_table(title: str, header: list[str], rows: list[list[Any]]) -> None:
    """A rich table; floats printed as percentages, None as '-'."""
    from rich.table import Table

    t = Table(title=title)
    for h in header:
        t.add_column(h, justify="left" if h in ("layer", "checkpoint") else "right")
    for r in rows:
        t.add_row(*[("-" if v is None else f"{100 * v:.2f}%" if isinstance(v, float) else str(v)) for v in r])
    console.print(t)
