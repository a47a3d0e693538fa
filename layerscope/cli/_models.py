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
