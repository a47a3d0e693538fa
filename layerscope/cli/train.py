"""``layerscope train``: train a reference model, saving checkpoints and run.json."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from rich.table import Table

from ._app import app, check_count, console, parse_list, progress_bar, progress_option, seed_option, set_threads, threads_option


@app.command()
def train(
    model: str = typer.Option(..., "--model", "-m", help="Architecture spec: mlp, cnn, convnet8, dnn, with options e.g. mlp:width=256,depth=3."),
    data: str = typer.Option("mnist", help="Training data spec."),
    val_data: Optional[str] = typer.Option(None, help="Validation data spec (default: the test split of --data)."),
    epochs: int = typer.Option(10, help="Training epochs."),
    out: Path = typer.Option(..., "--out", "-o", help="Run folder to write."),
    checkpoints: Optional[str] = typer.Option(None, help="Comma-separated epochs to save (default 0,1,2,5,10,20,... and the last)."),
    batch_size: Optional[int] = typer.Option(None, help="Samples per training step (>= 1; default 128)."),
    lr: Optional[float] = typer.Option(None, help="Learning rate (default: 1e-3 for adam, 0.01 for sgd)."),
    momentum: Optional[float] = typer.Option(None, help="SGD momentum (default 0.9, as Rauber et al.)."),
    optimizer: Optional[str] = typer.Option(None, help="adam (default without a recipe: trains every reference model reliably) or sgd."),
    weight_decay: Optional[float] = typer.Option(None, help="Weight decay (default 0)."),
    recipe: Optional[str] = typer.Option(
        None, help="A paper's training recipe: rauber (Rauber et al. 2017: SGD, momentum 0.9, lr 0.01, batch 128, "
        "dropout 0.5 on the hidden layers; the model is built with dropout=0.5 unless the spec sets dropout)."),
    limit: Optional[int] = typer.Option(None, help="Train on a seeded stratified subset of N samples."),
    val_limit: Optional[int] = typer.Option(None, help="Validate on a seeded stratified subset of N samples of the validation data (default: all)."),
    seed: int = seed_option(),
    threads: Optional[int] = threads_option(),
    progress: bool = progress_option(),
) -> None:
    """Train a reference model on DATA, saving checkpoints and run.json into OUT."""
    import torch

    from ..data import ArrayDataset, eval_spec_for, load_dataset, stratified_indices, train_spec_for
    from ..exceptions import DataError, ParameterError
    from ..models import build_model, parse_arch_spec
    from ..training import RECIPES
    from ..training import train as train_fn

    if recipe is not None:
        if recipe not in RECIPES:
            raise ParameterError(f"Unknown recipe {recipe!r}; known recipes: {', '.join(RECIPES)}.")
        drop = RECIPES[recipe].dropout
        if drop is not None and "dropout" not in parse_arch_spec(model)[1]:
            # stated, not silent: the spec (printed and stored in run.json) names the dropout
            model = f"{model}{',' if ':' in model else ':'}dropout={drop}"
            console.print(f"recipe {recipe}: the model is built with dropout={drop} on its hidden layers: {model}")
    elif optimizer is None:
        optimizer = "adam"
    set_threads(threads)
    data = train_spec_for(data)  # the kind's training split, stated in layerscope.data.registry
    ds = load_dataset(data)
    if not isinstance(ds, ArrayDataset):
        raise DataError(
            f"{data} holds raw recordings, not fixed-size inputs; speech models train with `layerscope speech train`."
        )
    if val_data is None:
        val_data = eval_spec_for(data)
    val = load_dataset(val_data) if val_data else None
    if limit is not None:
        ds = ds.subset(stratified_indices(ds.y.numpy(), limit, seed))
    if val_limit is not None and val is not None:
        if not isinstance(val, ArrayDataset):
            raise DataError(f"--val-limit needs fixed-size validation data; {val_data} holds raw recordings.")
        val = val.subset(stratified_indices(val.y.numpy(), check_count("--val-limit", val_limit) or 0, seed))
    torch.manual_seed(seed)
    net = build_model(model, ds.input_shape, len(ds.classes))
    cps = [int(c) for c in parse_list(checkpoints) or []] if checkpoints else None
    if lr is None and recipe is None:
        lr = 1e-3 if optimizer == "adam" else 0.01
    meta = {
        "arch": model,
        "data": data,
        "val_data": val_data,
        "limit": limit,
        "val_limit": val_limit,
        "input_shape": list(ds.input_shape),
        "classes": ds.classes,
        "normalization": ds.normalization.to_dict(),
    }
    with progress_bar(progress) as bar:
        run = train_fn(
            net, ds, val_set=val, out_dir=out, epochs=epochs, checkpoints=cps, batch_size=batch_size, lr=lr,
            momentum=momentum, optimizer=optimizer, weight_decay=weight_decay, recipe=recipe, seed=seed, meta=meta,
            progress=bar,
        )
    table = Table(title=f"{model} on {data}: run folder {out}")
    for col in ("epoch", "train loss", "train acc", "val acc"):
        table.add_column(col, justify="right")
    fmt = lambda v: "-" if v is None else f"{v:.4f}"  # noqa: E731
    for c in run.checkpoints:
        table.add_row(str(c["epoch"]), fmt(c["train_loss"]), fmt(c["train_accuracy"]), fmt(c["val_accuracy"]))
    console.print(table)
