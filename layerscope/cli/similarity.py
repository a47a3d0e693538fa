"""``layerscope probe`` and ``cka``: linear probes (Alain & Bengio 2016) and linear CKA
(Kornblith et al. 2019) over a model's layers."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from ._app import (allow_pickle_option, app, batch_size_option, console, data_option, load_data_cli, load_model_cli,
                   model_option, out_option, parse_list, progress_bar, progress_option, seed_option, weights_option)
from ._models import (checkpoints_option, layers_option, layout_option, load_models, n_option, parse_layouts, print_table,
                      reduce_option)


@app.command()
def probe(
    model: str = model_option(),
    out: Path = out_option("Output folder (result.json, figure)."),
    data: Optional[str] = data_option(),
    layers: str = layers_option(),
    checkpoints: Optional[str] = checkpoints_option(),
    n: int = n_option(),
    test_size: float = typer.Option(0.25, help="Held-out fraction."),
    c: float = typer.Option(1.0, "--C", help="Inverse L2 regularisation of the logistic regression."),
    group_by: Optional[str] = typer.Option(None, help="Hold out whole groups: the name of a per-sample label (e.g. speaker)."),
    reduce: Optional[str] = reduce_option("mean", " 'none': flatten."),
    layout: Optional[str] = layout_option(),
    seed: int = seed_option(),
    batch_size: int = batch_size_option(),
    weights: Optional[Path] = weights_option(),
    allow_pickle: bool = allow_pickle_option(),
    progress: bool = progress_option(),
) -> None:
    """Linear probes (Alain & Bengio 2016): held-out accuracy of a linear classifier on each layer."""
    from ..similarity import probe_model

    models = load_models(model, checkpoints, weights, allow_pickle)
    ds = load_data_cli(data, next(iter(models.values())))
    with progress_bar(progress) as bar:
        res = probe_model(models, ds, parse_list(layers) or "all", n=n, test_size=test_size, C=c, group_by=group_by,
                          reduce=reduce, layouts=parse_layouts(layout), random_state=seed, batch_size=batch_size,
                          data_spec=data, progress=bar)
    res.save(out)
    rows = [[key, r.layer, r.accuracy, r.train_accuracy, r.chance] for key, rs in res.results.items() for r in rs]
    print_table("linear probes", ["checkpoint", "layer", "held-out acc", "train acc", "chance"], rows)
    console.print(f"wrote [bold]{out}[/]")


@app.command()
def cka(
    model: str = model_option(),
    out: Path = out_option("Output folder (result.json, figure)."),
    data: Optional[str] = data_option(),
    layers: str = layers_option(),
    model_b: Optional[str] = typer.Option(None, "--model-b", help="A second model: CKA between its layers and --model's."),
    layers_b: Optional[str] = typer.Option(None, help="Layers of --model-b (default: as --layers)."),
    checkpoints: Optional[str] = checkpoints_option(help="Two epochs of a run (e.g. 0,last): CKA between the layers at the first and at the second."),
    n: int = n_option(),
    reduce: Optional[str] = reduce_option(None, " Default: flatten."),
    layout: Optional[str] = layout_option(),
    seed: int = seed_option(),
    batch_size: int = batch_size_option(),
    weights: Optional[Path] = weights_option(),
    allow_pickle: bool = allow_pickle_option(),
    progress: bool = progress_option(),
) -> None:
    """Linear CKA (Kornblith et al. 2019) between all pairs of layers, or the same layers at two checkpoints / in two models."""
    import numpy as np
    from rich.table import Table

    from ..exceptions import ParameterError
    from ..similarity import cka_model

    models = load_models(model, checkpoints, weights, allow_pickle)
    if checkpoints and len(models) != 2:
        raise ParameterError(f"--checkpoints takes exactly two epochs for CKA, got {list(models)}.")
    if checkpoints and model_b:
        raise ParameterError("give either --checkpoints or --model-b, not both.")
    net_b = load_model_cli(model_b) if model_b else None
    ds = load_data_cli(data, next(iter(models.values())))
    with progress_bar(progress) as bar:
        res = cka_model(models, ds, parse_list(layers) or "all", model_b=net_b, layers_b=parse_list(layers_b), n=n,
                        reduce=reduce, layouts=parse_layouts(layout), random_state=seed, batch_size=batch_size,
                        label_a=model, label_b=model_b,
                        data_spec=data, progress=bar)
    res.save(out)
    t = Table(title=f"linear CKA ({res.mode}): rows {res.label_a}, columns {res.label_b or res.label_a}")
    t.add_column("")
    for cname in res.cols:
        t.add_column(cname, justify="right")
    for i, r in enumerate(res.rows):
        t.add_row(r, *[f"{v:.3f}" if np.isfinite(v) else "-" for v in res.matrix[i]])
    console.print(t)
    console.print(f"wrote [bold]{out}[/]")
