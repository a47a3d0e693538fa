"""``layerscope demo``: from a fresh clone to results on the bundled data."""

from __future__ import annotations

import time
from pathlib import Path

import torch
import typer

from ._app import app, console, progress_bar


@app.command()
def demo(
    out: Path = typer.Option(Path("demo-out"), "--out", "-o", help="Folder for every result of the demo."),
    epochs: int = typer.Option(5, help="Training epochs of the reference MLP."),
    limit: int = typer.Option(20000, help="MNIST training samples used (stratified)."),
    progress: bool = typer.Option(True, help="Show progress bars."),
) -> None:
    """Train a reference MLP on bundled MNIST with checkpoints, list its layers, capture activations."""
    from ..capture import collect_activations
    from ..data import load_dataset, stratified_indices
    from ..layers import list_layers
    from ..loading import load_model
    from ..models import build_model
    from ..results import model_description, write_result
    from ..training import train

    started = time.time()
    train_set = load_dataset("mnist")
    test_set = load_dataset("mnist:test")
    train_set = train_set.subset(stratified_indices(train_set.y.numpy(), limit, 0))
    arch = "mlp:width=256,depth=3"
    torch.manual_seed(0)
    net = build_model(arch, train_set.input_shape, len(train_set.classes))
    run_dir = out / "runs" / "mlp"
    meta = {
        "arch": arch, "data": "mnist", "val_data": "mnist:test", "limit": limit,
        "input_shape": list(train_set.input_shape), "classes": train_set.classes,
        "normalization": train_set.normalization.to_dict(),
    }
    console.print(f"[bold]1.[/] training {arch} on {len(train_set)} MNIST digits for {epochs} epochs -> {run_dir}")
    with progress_bar(progress) as bar:
        run = train(net, train_set, val_set=test_set, out_dir=run_dir, epochs=epochs, lr=0.05, meta=meta, progress=bar)
    for c in run.checkpoints:
        console.print(f"   epoch {c['epoch']:>3}: test accuracy {c['val_accuracy']:.4f}")
    model = load_model(str(run_dir))
    layer_rows = list_layers(model, test_set.x[:1])
    console.print("[bold]2.[/] layers: " + ", ".join(f"{r.name} {r.output_shape}" for r in layer_rows))
    cap_dir = out / "capture"
    idx = stratified_indices(test_set.y.numpy(), 2000, 0)
    with progress_bar(progress) as bar:
        acts = collect_activations(model, test_set, model.hidden_layers, indices=idx, predictions=True, out_dir=cap_dir, progress=bar)
    write_result(
        cap_dir, "capture", model=model_description(model), data="mnist:test",
        parameters={"layers": list(acts.arrays), "n": len(acts)},
        metrics={"accuracy": float((acts.predictions == acts.labels).mean())},
        layers=[r.to_dict() for r in layer_rows],
    )
    console.print(f"[bold]3.[/] captured {len(acts)} test digits at {list(acts.arrays)} -> {cap_dir}")
    console.print(f"done in {time.time() - started:.0f} s; results in [bold]{out}[/]")
