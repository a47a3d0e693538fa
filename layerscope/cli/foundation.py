"""``layerscope layers``, ``capture`` and ``train``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import torch
import typer
from rich.table import Table

from ._app import (
    DATA_HELP,
    allow_pickle_option,
    app,
    batch_size_option,
    check_count,
    console,
    data_option,
    load_data_cli,
    load_model_cli,
    model_option,
    parse_list,
    progress_bar,
    progress_option,
    weights_option,
)


@app.command()
def layers(
    model: str = model_option(),
    weights: Optional[Path] = weights_option(),
    data: Optional[str] = typer.Option(None, help=DATA_HELP + " One sample gives the output shapes."),
    allow_pickle: bool = allow_pickle_option(),
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of a table."),
) -> None:
    """List every layer: dotted name, type, output shape, parameters."""
    from ..data import ArrayDataset
    from ..layers import list_layers

    net = load_model_cli(model, weights, allow_pickle)
    sample = None
    shape = getattr(net, "input_shape", None)
    try:
        ds = load_data_cli(data, net)
        if isinstance(ds, ArrayDataset):
            sample = ds.x[:1]
    except Exception:
        if data is not None:
            raise
    if sample is None and shape is not None:
        sample = torch.zeros(1, *shape)
    rows = list_layers(net, sample)
    if as_json:
        console.print_json(json.dumps([r.to_dict() for r in rows]))
        return
    table = Table(title=f"{type(net).__name__}: {len(rows)} layers, {sum(p.numel() for p in net.parameters()):,} parameters")
    for col in ("name", "type", "output shape", "params"):
        table.add_column(col, justify="right" if col == "params" else "left")
    for r in rows:
        shp = "×".join(str(s) for s in r.output_shape) if r.output_shape is not None else "-"
        table.add_row("  " * (r.depth - 1) + r.name, r.type, shp, f"{r.total_params:,}")
    console.print(table)


@app.command()
def capture(
    model: str = model_option(),
    layers: str = typer.Option(..., "--layers", "-l", help="Comma-separated layer names, or 'all' for every leaf layer."),
    out: Path = typer.Option(..., "--out", "-o", help="Output folder: one .npy per layer, labels.npz, activations.json."),
    data: Optional[str] = data_option(),
    weights: Optional[Path] = weights_option(),
    allow_pickle: bool = allow_pickle_option(),
    reduce: Optional[str] = typer.Option(None, help="Spatial reduction of conv maps inside the hook: mean or max."),
    limit: Optional[int] = typer.Option(None, help="Use only the first N samples (or a stratified N with --stratify)."),
    stratify: bool = typer.Option(False, help="With --limit: a seeded stratified subset instead of the first N."),
    seed: int = typer.Option(0, help="Seed for --stratify."),
    batch_size: int = batch_size_option(),
    memory_budget_mb: Optional[float] = typer.Option(None, help="Stream to disk when the arrays exceed this many MB."),
    progress: bool = progress_option(),
) -> None:
    """Capture layer activations over a dataset into OUT."""
    import numpy as np

    from ..capture import collect_activations
    from ..data import stratified_indices
    from ..layers import list_layers

    net = load_model_cli(model, weights, allow_pickle)
    ds = load_data_cli(data, net)
    names = parse_list(layers) or []
    if names == ["all"]:
        names = [r.name for r in list_layers(net) if r.is_leaf]
    indices = None
    check_count("--limit", limit)
    if limit is not None:
        labels = ds.y.numpy() if hasattr(ds, "y") else np.asarray(ds.labels)
        indices = stratified_indices(labels, limit, seed) if stratify else np.arange(min(limit, len(ds)))
    budget = int(memory_budget_mb * 2**20) if memory_budget_mb is not None else None
    with progress_bar(progress) as bar:
        acts = collect_activations(
            net, ds, names, batch_size=batch_size, reduce=reduce, indices=indices, predictions=True,  # type: ignore[arg-type]  # validated by the library
            memory_budget=budget, out_dir=out, progress=bar,
        )
    acc = float((acts.predictions == acts.labels).mean()) if acts.predictions is not None else None
    console.print(f"captured {len(acts)} samples x {len(names)} layers into [bold]{out}[/] (accuracy on them: {acc:.4f})")
    for n, a in acts.arrays.items():
        console.print(f"  {n}: {tuple(a.shape)} {a.dtype}")


@app.command()
def train(
    model: str = typer.Option(..., "--model", "-m", help="Architecture spec: mlp, cnn, convnet8, dnn, with options e.g. mlp:width=256,depth=3."),
    data: str = typer.Option("mnist", help="Training data spec."),
    val_data: Optional[str] = typer.Option(None, help="Validation data spec (default: the test split of --data)."),
    epochs: int = typer.Option(10, help="Training epochs."),
    out: Path = typer.Option(..., "--out", "-o", help="Run folder to write."),
    checkpoints: Optional[str] = typer.Option(None, help="Comma-separated epochs to save (default 0,1,2,5,10,20,... and the last)."),
    batch_size: int = typer.Option(128),
    lr: Optional[float] = typer.Option(None, help="Learning rate (default: 1e-3 for adam, 0.01 for sgd)."),
    momentum: float = typer.Option(0.9, help="SGD momentum (Rauber et al. used SGD with momentum 0.9)."),
    optimizer: str = typer.Option("adam", help="adam (default: trains every reference model reliably) or sgd."),
    weight_decay: float = typer.Option(0.0),
    limit: Optional[int] = typer.Option(None, help="Train on a seeded stratified subset of N samples."),
    seed: int = typer.Option(0),
    threads: Optional[int] = typer.Option(None, help="torch CPU threads."),
    progress: bool = progress_option(),
) -> None:
    """Train a reference model on DATA, saving checkpoints and run.json into OUT."""
    from ..data import ArrayDataset, load_dataset, parse_data_spec, stratified_indices
    from ..exceptions import DataError
    from ..models import build_model
    from ..training import train as train_fn

    if threads:
        torch.set_num_threads(threads)
    ds = load_dataset(data)
    if not isinstance(ds, ArrayDataset):
        raise DataError(
            f"{data} holds raw recordings, not fixed-size inputs; speech models train with `layerscope speech train`."
        )
    if val_data is None:
        kind, path, split = parse_data_spec(data)
        if split in (None, "train") and kind in ("mnist", "cifar10", "npz"):
            val_data = f"{kind}:{path}:test" if path else f"{kind}:test"
    val = load_dataset(val_data) if val_data else None
    check_count("--limit", limit)
    if limit is not None:
        ds = ds.subset(stratified_indices(ds.y.numpy(), limit, seed))
    torch.manual_seed(seed)
    net = build_model(model, ds.input_shape, len(ds.classes))
    cps = [int(c) for c in parse_list(checkpoints) or []] if checkpoints else None
    if lr is None:
        lr = 1e-3 if optimizer == "adam" else 0.01
    meta = {
        "arch": model,
        "data": data,
        "val_data": val_data,
        "limit": limit,
        "input_shape": list(ds.input_shape),
        "classes": ds.classes,
        "normalization": ds.normalization.to_dict(),
    }
    with progress_bar(progress) as bar:
        run = train_fn(
            net, ds, val_set=val, out_dir=out, epochs=epochs, checkpoints=cps, batch_size=batch_size, lr=lr,
            momentum=momentum, optimizer=optimizer, weight_decay=weight_decay, seed=seed, meta=meta, progress=bar,
        )
    table = Table(title=f"{model} on {data}: run folder {out}")
    for col in ("epoch", "train loss", "train acc", "val acc"):
        table.add_column(col, justify="right")
    fmt = lambda v: "-" if v is None else f"{v:.4f}"  # noqa: E731
    for c in run.checkpoints:
        table.add_row(str(c["epoch"]), fmt(c["train_loss"]), fmt(c["train_accuracy"]), fmt(c["val_accuracy"]))
    console.print(table)
