"""``layerscope project`` and ``neurons``: hidden-activity and neuron projections (Rauber et al. 2017)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

import typer

from ._app import (
    allow_pickle_option,
    app,
    batch_size_option,
    console,
    data_option,
    load_data_cli,
    load_model_cli,
    model_option,
    out_option,
    parse_list,
    progress_bar,
    progress_option,
    weights_option,
)
from ._models import CHECKPOINTS_HELP, LAYERS_HELP, REDUCE_HELP, layout_option, load_models, parse_layouts, print_table


@app.command()
def project(
    model: str = model_option(),
    out: Path = out_option(),
    data: Optional[str] = data_option(),
    layers: str = typer.Option("all", "--layers", "-l", help=LAYERS_HELP),
    checkpoints: Optional[str] = typer.Option(None, help=CHECKPOINTS_HELP),
    method: str = typer.Option("tsne", help="tsne (openTSNE), umap (umap-learn) or pca."),
    n: int = typer.Option(2000, help="Observations: a seeded stratified subset of the data."),
    aligned: bool = typer.Option(False, help="Initialise each projection of a sequence from the previous one; draw trails."),
    align_over: Optional[str] = typer.Option(None, help="Sequence direction: layers or epochs (default: epochs with several checkpoints)."),
    k: int = typer.Option(6, help="Neighbours for the neighborhood hit."),
    perplexity: float = typer.Option(30.0, help="t-SNE perplexity."),
    reduce: Optional[str] = typer.Option(None, help=REDUCE_HELP + " Default: flatten."),
    layout: Optional[str] = layout_option(),
    thumbnails: int = typer.Option(12, help="Image thumbnails of outliers in the single-layer figures (0: none)."),
    seed: int = typer.Option(0, help="Seed of the subset and of the projections."),
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
    with progress_bar(progress) as bar:
        extra: dict[str, Any] = {"progress": bar} if bar is not None else {}
        study = project_model(models, ds, parse_list(layers) or "all", n=n, method=method,  # type: ignore[arg-type]
                              random_state=seed, aligned=aligned, align_over=align_over,  # type: ignore[arg-type]
                              reduce=reduce, layouts=parse_layouts(layout), batch_size=batch_size,  # type: ignore[arg-type]
                              thumbnails=thumbnails, data_spec=data, **extra, **kw)
    study.save(out)
    rows = [[("-" if r["checkpoint"] is None else r["checkpoint"]), r["layer"], r["nh"], r["nh_original"], r["ac"]]
            for r in study.metrics["table"]]
    print_table(f"{method} of {study.parameters['n']} observations",
                ["checkpoint", "layer", "NH 2-D", "NH activations", "AC"], rows)
    console.print(f"wrote [bold]{out}[/] (result.json + figures)")


@app.command()
def neurons(
    model: str = model_option(),
    layer: str = typer.Option(..., "--layer", "-l", help="The layer whose neurons to project."),
    out: Path = out_option(),
    data: Optional[str] = data_option(),
    cls: str = typer.Option("all", "--class", help="Class(es) to colour by: 'all' or comma-separated class indices."),
    n: int = typer.Option(2000, help="Observations: a seeded stratified subset of the data."),
    method: str = typer.Option("tsne", help="Neuron layout: tsne (on 1 - |Pearson r|) or mds."),
    n_estimators: int = typer.Option(100, help="Trees of each class-vs-rest ExtraTrees classifier."),
    layout: Optional[str] = layout_option(),
    seed: int = typer.Option(0),
    batch_size: int = batch_size_option(),
    weights: Optional[Path] = weights_option(),
    allow_pickle: bool = allow_pickle_option(),
    progress: bool = progress_option(),
) -> None:
    """Neuron projection (Rauber et al. 2017): neurons as points, 1 - |r| distances, colour = class importance."""
    from ..exceptions import ParameterError
    from ..projection.neurons import project_neurons

    net = load_model_cli(model, weights, allow_pickle)
    ds = load_data_cli(data, net)
    try:
        chosen = None if cls == "all" else [int(c) for c in parse_list(cls) or []]
    except ValueError:
        raise ParameterError(f"--class must be 'all' or comma-separated class indices; got {cls!r}.") from None
    with progress_bar(progress) as bar:
        extra: dict[str, Any] = {"progress": bar} if bar is not None else {}
        res = project_neurons(net, ds, layer, n=n, classes=chosen, method=method,  # type: ignore[arg-type]
                              n_estimators=n_estimators, random_state=seed, batch_size=batch_size,
                              layouts=parse_layouts(layout), data_spec=data, **extra)
    res.save(out)
    console.print(f"{layer}: {res.metrics['n_neurons']} neurons ({res.metrics['n_dead']} constant, left out); "
                  f"wrote [bold]{out}[/]")
