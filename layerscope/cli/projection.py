"""``layerscope project``, ``neurons``, ``probe`` and ``cka``: hidden-activity projections
(Rauber et al. 2017), neuron projections, linear probes (Alain & Bengio 2016) and linear CKA
(Kornblith et al. 2019)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional, Sequence

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

CHECKPOINTS_HELP = (
    "With a run folder from `layerscope train` as --model: comma-separated epochs to analyse, "
    "'first'/'last' allowed (e.g. 0,last). Default: the model as given (a run's last checkpoint)."
)
LAYERS_HELP = "'all' (the model's hidden layers) or comma-separated layer names."


def _models(model: str, checkpoints: Optional[str], weights: Optional[Path], allow_pickle: bool) -> dict[Any, Any]:
    """{epoch or None: model}."""
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


def _classes(ds: Any, net: Any) -> list[str] | None:
    c = getattr(ds, "classes", None) or getattr(net, "classes", None)
    return [str(x) for x in c] if c else None


def _print_table(title: str, header: list[str], rows: list[list[Any]]) -> None:
    from rich.table import Table

    t = Table(title=title)
    for h in header:
        t.add_column(h, justify="left" if h in ("layer", "checkpoint") else "right")
    for r in rows:
        t.add_row(*[("-" if v is None else f"{100 * v:.2f}%" if isinstance(v, float) else str(v)) for v in r])
    console.print(t)


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
    reduce: Optional[str] = typer.Option(None, help="Spatially pool conv maps: mean or max (default: flatten)."),
    thumbnails: int = typer.Option(12, help="Image thumbnails of outliers in the single-layer figures (0: none)."),
    seed: int = typer.Option(0, help="Seed of the subset and of the projections."),
    batch_size: int = batch_size_option(),
    weights: Optional[Path] = weights_option(),
    allow_pickle: bool = allow_pickle_option(),
    progress: bool = progress_option(),
) -> None:
    """Project each layer's activations to 2-D (Rauber et al. 2017) with NH and AC, per checkpoint."""
    from ..projection.analysis import display_images, project_model, save_study

    models = _models(model, checkpoints, weights, allow_pickle)
    first = next(iter(models.values()))
    ds = load_data_cli(data, first)
    kw: dict[str, Any] = {"k": k}
    if method == "tsne":
        kw["perplexity"] = perplexity
    with progress_bar(progress) as bar:
        extra: dict[str, Any] = {"progress": bar} if bar is not None else {}
        study = project_model(models, ds, parse_list(layers) or "all", n=n, method=method,  # type: ignore[arg-type]
                              random_state=seed, aligned=aligned, align_over=align_over,  # type: ignore[arg-type]
                              reduce=reduce, batch_size=batch_size,  # type: ignore[arg-type]
                              **extra, **kw)
    images = display_images(ds, study.indices) if thumbnails > 0 and study.indices is not None else None
    save_study(study, out, model=first, data=data, classes=_classes(ds, first), images=images, n_thumbnails=thumbnails)
    rows = [[("-" if r["checkpoint"] is None else r["checkpoint"]), r["layer"], r["nh"], r["nh_original"], r["ac"]]
            for r in study.table()]
    _print_table(f"{method} of {len(study.indices) if study.indices is not None else n} observations",
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
    seed: int = typer.Option(0),
    batch_size: int = batch_size_option(),
    weights: Optional[Path] = weights_option(),
    allow_pickle: bool = allow_pickle_option(),
    progress: bool = progress_option(),
) -> None:
    """Neuron projection (Rauber et al. 2017): neurons as points, 1 - |r| distances, colour = class importance."""
    import numpy as np

    from ..capture import collect_activations
    from ..layers import resolve_layers
    from ..projection import plots
    from ..projection.analysis import select_observations
    from ..projection.neurons import neuron_projection
    from ..results import model_description, write_result

    net = load_model_cli(model, weights, allow_pickle)
    resolve_layers(net, [layer])
    ds = load_data_cli(data, net)
    classes = _classes(ds, net)
    idx = select_observations(ds, n, seed)
    chosen = None if cls == "all" else [int(c) for c in parse_list(cls) or []]
    with progress_bar(progress) as bar:
        extra: dict[str, Any] = {"progress": bar} if bar is not None else {}
        acts = collect_activations(net, ds, [layer], batch_size=batch_size, indices=idx, reduce="mean", **extra)
        res = neuron_projection(acts.arrays[layer], acts.labels, classes=chosen, class_names=classes, method=method,  # type: ignore[arg-type]
                                n_estimators=n_estimators, random_state=seed, layer=layer, **extra)
    out.mkdir(parents=True, exist_ok=True)
    figures = []
    names = classes or [str(c) for c in range(int(np.max(acts.labels)) + 1)]
    for c, imp in res.importances.items():
        fig = plots.plot_neurons(res.embedding, imp, cls_name=names[c] if c < len(names) else str(c),
                                 title=f"{layer}: {len(res.neuron_index)} neurons, class {names[c] if c < len(names) else c} vs rest")
        fname = f"neurons_class{c}.png"
        plots.save_figure(fig, out / fname)
        figures.append({"path": fname, "title": f"Neurons of {layer}, class {names[c] if c < len(names) else c}",
                        "caption": "Each point is a neuron (conv: a spatially pooled channel); distance 1 - |Pearson r| "
                                   "of activations, laid out with " + method + "; colour = feature importance for this "
                                   "class vs the rest (ExtraTrees)."})
    doc = res.to_dict()
    write_result(out, "neurons", model=model_description(net), data=data, parameters=doc["parameters"] | {"layer": layer},
                 metrics=doc["metrics"], figures=figures, classes=doc["classes"], neurons=doc["neurons"], layer=layer)
    console.print(f"{layer}: {res.metrics['n_neurons']} neurons ({res.metrics['n_dead']} constant, left out); "
                  f"wrote [bold]{out}[/]")


@app.command()
def probe(
    model: str = model_option(),
    out: Path = typer.Option(..., "--out", "-o", help="Output folder (result.json, figure)."),
    data: Optional[str] = data_option(),
    layers: str = typer.Option("all", "--layers", "-l", help=LAYERS_HELP),
    checkpoints: Optional[str] = typer.Option(None, help=CHECKPOINTS_HELP),
    n: int = typer.Option(2000, help="Observations: a seeded stratified subset of the data."),
    test_size: float = typer.Option(0.25, help="Held-out fraction."),
    c: float = typer.Option(1.0, "--C", help="Inverse L2 regularisation of the logistic regression."),
    group_by: Optional[str] = typer.Option(None, help="Hold out whole groups: the name of a per-sample label (e.g. speaker)."),
    reduce: Optional[str] = typer.Option("mean", help="Spatial pooling of conv maps: mean, max or none."),
    seed: int = typer.Option(0),
    batch_size: int = batch_size_option(),
    weights: Optional[Path] = weights_option(),
    allow_pickle: bool = allow_pickle_option(),
    progress: bool = progress_option(),
) -> None:
    """Linear probes (Alain & Bengio 2016): held-out accuracy of a linear classifier on each layer."""
    from ..capture import collect_activations
    from ..exceptions import ParameterError
    from ..projection import plots
    from ..projection.analysis import resolve_projection_layers, select_observations
    from ..results import model_description, write_result
    from ..similarity import probe_layers

    models = _models(model, checkpoints, weights, allow_pickle)
    first = next(iter(models.values()))
    ds = load_data_cli(data, first)
    names = resolve_projection_layers(first, parse_list(layers) or "all")
    idx = select_observations(ds, n, seed)
    red = None if reduce in (None, "none") else reduce
    results: dict[str, list[Any]] = {}
    with progress_bar(progress) as bar:
        extra = {"progress": bar} if bar is not None else {}
        for cp, net in models.items():
            acts = collect_activations(net, ds, names, batch_size=batch_size, indices=idx, reduce=red, **extra)  # type: ignore[arg-type]
            groups = None
            if group_by is not None:
                if group_by not in acts.extra_labels:
                    raise ParameterError(f"--group-by {group_by!r}: the data has no such per-sample label; it has "
                                         f"{sorted(acts.extra_labels) or 'none'}.")
                groups = acts.extra_labels[group_by]
            results["model" if cp is None else f"epoch {cp}"] = probe_layers(
                acts.arrays, acts.labels, test_size=test_size, random_state=seed, groups=groups, C=c, **extra)
    series: dict[str, Sequence[float]] = {key: [r.accuracy for r in rs] for key, rs in results.items()}
    chance = next(iter(results.values()))[0].chance
    plots.save_figure(plots.plot_probes(names, series, chance), out / "probes.png")
    write_result(
        out, "probe", model=model_description(first), data=data,
        parameters={"layers": names, "checkpoints": list(models), "n": int(len(idx)), "test_size": test_size, "C": c,
                    "random_state": seed, "groups": group_by, "reduce": red},
        metrics={"probe": {key: {r.layer: r.to_dict() for r in rs} for key, rs in results.items()}},
        probes={key: [r.to_dict() for r in rs] for key, rs in results.items()},
        figures=[{"path": "probes.png", "title": "Linear probe accuracy per layer",
                  "caption": "Held-out accuracy of a standardised logistic regression on each layer's frozen "
                             "activations (Alain & Bengio 2016); dashed: majority-class chance."}],
    )
    rows = [[key, r.layer, r.accuracy, r.train_accuracy, r.chance] for key, rs in results.items() for r in rs]
    _print_table("linear probes", ["checkpoint", "layer", "held-out acc", "train acc", "chance"], rows)
    console.print(f"wrote [bold]{out}[/]")


@app.command()
def cka(
    model: str = model_option(),
    out: Path = typer.Option(..., "--out", "-o", help="Output folder (result.json, figure)."),
    data: Optional[str] = data_option(),
    layers: str = typer.Option("all", "--layers", "-l", help=LAYERS_HELP),
    model_b: Optional[str] = typer.Option(None, "--model-b", help="A second model: CKA between its layers and --model's."),
    layers_b: Optional[str] = typer.Option(None, help="Layers of --model-b (default: as --layers)."),
    checkpoints: Optional[str] = typer.Option(None, help="Two epochs of a run (e.g. 0,last): CKA between the layers at the first and at the second."),
    n: int = typer.Option(2000, help="Observations: a seeded stratified subset of the data."),
    reduce: Optional[str] = typer.Option(None, help="Spatial pooling of conv maps: mean or max (default: flatten)."),
    seed: int = typer.Option(0),
    batch_size: int = batch_size_option(),
    weights: Optional[Path] = weights_option(),
    allow_pickle: bool = allow_pickle_option(),
    progress: bool = progress_option(),
) -> None:
    """Linear CKA (Kornblith et al. 2019) between all pairs of layers, or the same layers at two checkpoints / in two models."""
    import numpy as np

    from ..capture import collect_activations
    from ..exceptions import ParameterError
    from ..projection import plots
    from ..projection.analysis import resolve_projection_layers, select_observations
    from ..results import model_description, write_result
    from ..similarity import cka_matrix

    models = _models(model, checkpoints, weights, allow_pickle)
    if checkpoints and len(models) != 2:
        raise ParameterError(f"--checkpoints takes exactly two epochs for CKA, got {list(models)}.")
    if checkpoints and model_b:
        raise ParameterError("give either --checkpoints or --model-b, not both.")
    net_a = next(iter(models.values()))
    ds = load_data_cli(data, net_a)
    names_a = resolve_projection_layers(net_a, parse_list(layers) or "all")
    idx = select_observations(ds, n, seed)
    mode, label_a, label_b = "layers", model, None
    net_b = None
    if checkpoints:
        (ea, net_a), (eb, net_b) = list(models.items())
        mode, label_a, label_b = "checkpoints", f"epoch {ea}", f"epoch {eb}"
    elif model_b:
        net_b = load_model_cli(model_b)
        mode, label_b = "models", model_b
    names_b = resolve_projection_layers(net_b, parse_list(layers_b) or parse_list(layers) or "all") if net_b is not None else names_a
    with progress_bar(progress) as bar:
        extra = {"progress": bar} if bar is not None else {}
        acts_a = collect_activations(net_a, ds, names_a, batch_size=batch_size, indices=idx, reduce=reduce, **extra)  # type: ignore[arg-type]
        acts_b = (collect_activations(net_b, ds, names_b, batch_size=batch_size, indices=idx, reduce=reduce, **extra)  # type: ignore[arg-type]
                  if net_b is not None else None)
        rows, cols, m = cka_matrix(acts_a.arrays, acts_b.arrays if acts_b is not None else None, **extra)
    xlabel = label_b or label_a
    fig = plots.plot_cka(m, rows, cols, title=f"Linear CKA ({mode})", ylabel=str(label_a), xlabel=str(xlabel))
    plots.save_figure(fig, out / "cka.png")
    metrics: dict[str, Any] = {"cka": np.round(m, 6).tolist()}
    if rows == cols and mode != "layers":
        metrics["diagonal"] = {r: float(m[i, i]) for i, r in enumerate(rows)}
    write_result(
        out, "cka", model=model_description(net_a), data=data,
        parameters={"layers": names_a, "layers_b": names_b, "n": int(len(idx)), "random_state": seed, "mode": mode,
                    "a": label_a, "b": label_b, "reduce": reduce},
        metrics=metrics, rows=rows, cols=cols,
        figures=[{"path": "cka.png", "title": f"Linear CKA ({mode})",
                  "caption": "Linear centred kernel alignment (Kornblith et al. 2019) between layer representations "
                             "of the same observations; 1 = identical up to rotation and scale."}],
    )
    from rich.table import Table

    t = Table(title=f"linear CKA ({mode}): rows {label_a}, columns {xlabel}")
    t.add_column("")
    for cname in cols:
        t.add_column(cname, justify="right")
    for i, r in enumerate(rows):
        t.add_row(r, *[f"{v:.3f}" if np.isfinite(v) else "-" for v in m[i]])
    console.print(t)
    console.print(f"wrote [bold]{out}[/]")
