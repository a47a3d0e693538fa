"""``layerscope layers`` and ``capture``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer
from rich.table import Table

from ._app import (DATA_HELP, allow_pickle_option, app, batch_size_option, console, data_option, load_data_cli,
                   load_model_and_data, load_model_cli, memory_budget_option, model_option, parse_list,
                   parse_memory_budget, progress_bar, progress_option, seed_option, store_option, weights_option)
from ._models import layout_option, parse_layouts, reduce_option


@app.command()
def layers(
    model: str = model_option(),
    weights: Optional[Path] = weights_option(),
    data: Optional[str] = typer.Option(None, help=DATA_HELP + " One sample gives the output shapes."),
    allow_pickle: bool = allow_pickle_option(),
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of a table."),
) -> None:
    """List every layer: dotted name, type, output shape, calls per forward pass, parameters."""
    from ..capture import list_layers
    from ..exceptions import LayerscopeError

    net = load_model_cli(model, weights, allow_pickle)
    rows = None
    try:  # the first two samples of the data give output shapes and calls
        rows = list_layers(net, load_data_cli(data, net))
    except LayerscopeError:
        if data is not None:
            raise
    if rows is None:
        shape = getattr(net, "input_shape", None)
        if shape is not None:
            import torch

            rows = list_layers(net, torch.zeros(2, *shape))
        else:
            rows = list_layers(net)
    if as_json:
        console.print_json(json.dumps([r.to_dict() for r in rows]))
        return
    table = Table(title=f"{type(net).__name__}: {len(rows)} layers, {sum(p.numel() for p in net.parameters()):,} parameters")
    for col in ("name", "type", "output shape", "calls", "params"):
        table.add_column(col, justify="right" if col in ("params", "calls") else "left")
    for r in rows:
        shp = "×".join(str(s) for s in r.output_shape) if r.output_shape is not None else "-"
        calls = "-" if r.calls is None else f"{r.calls} (reused: name#k)" if r.reused else str(r.calls)
        table.add_row("  " * (r.depth - 1) + r.name, r.type, shp, calls, f"{r.total_params:,}")
    console.print(table)


@app.command()
def capture(
    model: str = model_option(),
    layers: str = typer.Option(..., "--layers", "-l", help="Comma-separated layer names, or 'all' for every leaf layer."),
    out: Path = typer.Option(..., "--out", "-o", help="Output folder: one .npy per layer, labels.npz, activations.json, result.json."),
    data: Optional[str] = data_option(),
    weights: Optional[Path] = weights_option(),
    allow_pickle: bool = allow_pickle_option(),
    reduce: Optional[str] = reduce_option(),
    layout: Optional[str] = layout_option(),
    limit: Optional[int] = typer.Option(None, help="Use only the first N samples (or a stratified N with --stratify)."),
    stratify: bool = typer.Option(False, help="With --limit: a seeded stratified subset instead of the first N."),
    seed: int = seed_option("Seed for --stratify."),
    batch_size: int = batch_size_option(),
    memory_budget_mb: Optional[float] = memory_budget_option(),
    store: Optional[str] = store_option(),
    dtype: str = typer.Option("float32", help="Storage dtype: float32, float16 (half the size, reduced precision) or float64."),
    progress: bool = progress_option(),
) -> None:
    """Capture layer activations over a dataset into OUT (arrays, activations.png, result.json)."""
    from .._io import result_folder
    from ..capture_result import capture_dataset

    net, ds = load_model_and_data(model, data, weights, allow_pickle)
    budget = parse_memory_budget(memory_budget_mb)
    with progress_bar(progress) as bar, result_folder(out) as staging:
        # arrays are streamed and saved straight into the folder being written (not copied a second time)
        res = capture_dataset(net, ds, parse_list(layers) or [], batch_size=batch_size, reduce=reduce,
                              layouts=parse_layouts(layout), limit=limit, stratify=stratify, random_state=seed,
                              memory_budget=budget, out_dir=staging, data_spec=data, progress=bar,
                              store=store, dtype=dtype)  # type: ignore[arg-type]  # checked by collect_activations
        res.save(staging)
    acc = res.metrics.get("accuracy")
    console.print(f"captured {len(res.activations)} samples x {len(res.activations.arrays)} layers into [bold]{out}[/]"
                  + (f" (accuracy on them: {acc:.4f})" if acc is not None else ""))
    for n, a in res.activations.arrays.items():
        console.print(f"  {n}: {tuple(a.shape)} {a.dtype}")
