"""``layerscope project`` and ``neurons``: hidden-activity and neuron projections (Rauber et al. 2017)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

import typer

from ..exceptions import ParameterError
from ._app import (allow_pickle_option, app, batch_size_option, console, data_option, load_data_cli, load_model_and_data,
                   model_option, out_option, parse_list, parse_memory_budget, progress_bar, progress_option, seed_option,
                   weights_option)
from ._models import (checkpoints_option, layers_option, layout_option, load_models, n_option, parse_layouts, print_table,
                      reduce_option)


@app.command()
def project(
    model: str = model_option(),
    out: Path = out_option(),
    data: Optional[str] = data_option(),
    layers: str = layers_option(),
    checkpoints: Optional[str] = checkpoints_option(),
    method: str = typer.Option("tsne", help="tsne (openTSNE), umap (umap-learn) or pca."),
    n: int = n_option(),
    aligned: bool = typer.Option(False, help="Initialise each projection of a sequence from the previous one; draw trails."),
    align_over: Optional[str] = typer.Option(None, help="Sequence direction: layers or epochs (default: epochs with several checkpoints)."),
    k: int = typer.Option(6, help="Neighbours for the neighborhood hit."),
    perplexity: float = typer.Option(30.0, help="t-SNE perplexity."),
    reduce: Optional[str] = reduce_option(None, " Default: flatten."),
    layout: Optional[str] = layout_option(),
    thumbnails: int = typer.Option(12, help="Image thumbnails of outliers in the single-layer figures (0: none)."),
    memory_budget_mb: Optional[float] = typer.Option(
        None, "--memory-budget-mb",
        help="MB a layer's n x features values may take when projected. A wider layer goes through the block route: "
             "exact neighbours in activation space found by blocks, IncrementalPCA to --reduce-dim dimensions for the "
             "layout (recorded in result.json). Default: no limit."),
    reduce_dim: Optional[int] = typer.Option(
        None, help="Dimensions of the block route's IncrementalPCA (with --memory-budget-mb; default 50)."),
    seed: int = seed_option("Seed of the subset and of the projections."),
    batch_size: int = batch_size_option(),
    weights: Optional[Path] = weights_option(),
    allow_pickle: bool = allow_pickle_option(),
    progress: bool = progress_option(),
) -> None:
    """Project each layer's activations to 2-D (Rauber et al. 2017) with NH and AC, per checkpoint."""
    from ..projection.analysis import project_model

    models = load_models(model, checkpoints, weights, allow_pickle)
    ds = load_data_cli(data, next(iter(models.values())))
    kw: dict[str, Any] = {"k": k}
    if method == "tsne":
        kw["perplexity"] = perplexity
    budget = parse_memory_budget(memory_budget_mb)
    if reduce_dim is not None and budget is None:
        raise ParameterError("--reduce-dim sets the block route of --memory-budget-mb; give a budget too, or drop it.")
    if budget is not None:
        kw.update(memory_budget=budget, reduce_dim=50 if reduce_dim is None else reduce_dim)
    with progress_bar(progress) as bar:
        study = project_model(models, ds, parse_list(layers) or "all", n=n, method=method,  # type: ignore[arg-type]
                              random_state=seed, aligned=aligned, align_over=align_over,  # type: ignore[arg-type]
                              reduce=reduce, layouts=parse_layouts(layout), batch_size=batch_size,  # type: ignore[arg-type]
                              thumbnails=thumbnails, data_spec=data, progress=bar, **kw)
    study.save(out)
    rows = [[("-" if r["checkpoint"] is None else r["checkpoint"]), r["layer"], r["nh"], r["nh_original"], r["ac"]]
            for r in study.metrics["table"]]
    print_table(f"{method} of {study.parameters['n']} observations",
                ["checkpoint", "layer", "NH 2-D", "NH activations", "AC"], rows)
    for p in study.projections:
        red = p.parameters.get("reduction")
        if red:
            console.print(f"{p.layer}{'' if p.checkpoint is None else f' @ {p.checkpoint}'}: {red['reason']}; "
                          f"exact neighbours in its {red['input_dim']} dimensions, layout started from "
                          f"{red['method']} to {red['components']} dimensions")
    console.print(f"wrote [bold]{out}[/] (result.json + figures)")


@app.command()
def neurons(
    model: str = model_option(),
    layer: str = typer.Option(..., "--layer", "-l", help="The layer whose neurons to project."),
    out: Path = out_option(),
    data: Optional[str] = data_option(),
    cls: str = typer.Option("all", "--class", help="Class(es) to colour by: 'all' or comma-separated class indices."),
    n: int = n_option(),
    method: str = typer.Option("tsne", help="Neuron layout: tsne (on 1 - |Pearson r|) or mds."),
    n_estimators: int = typer.Option(100, help="Trees of each class-vs-rest ExtraTrees classifier."),
    layout: Optional[str] = layout_option(),
    seed: int = seed_option(),
    batch_size: int = batch_size_option(),
    weights: Optional[Path] = weights_option(),
    allow_pickle: bool = allow_pickle_option(),
    progress: bool = progress_option(),
) -> None:
    """Neuron projection (Rauber et al. 2017): neurons as points, 1 - |r| distances, colour = class importance."""
    from ..exceptions import ParameterError
    from ..projection.neurons import project_neurons

    net, ds = load_model_and_data(model, data, weights, allow_pickle)
    try:
        chosen = None if cls == "all" else [int(c) for c in parse_list(cls) or []]
    except ValueError:
        raise ParameterError(f"--class must be 'all' or comma-separated class indices; got {cls!r}.") from None
    with progress_bar(progress) as bar:
        res = project_neurons(net, ds, layer, n=n, classes=chosen, method=method,  # type: ignore[arg-type]
                              n_estimators=n_estimators, random_state=seed, batch_size=batch_size,
                              layouts=parse_layouts(layout), data_spec=data, progress=bar)
    res.save(out)
    console.print(f"{layer}: {res.metrics['n_neurons']} neurons ({res.metrics['n_dead']} constant, left out); "
                  f"wrote [bold]{out}[/]")
