"""``layerscope topk``, ``deconv``, ``occlude``, ``invariance``, ``evolution``, ``correspondence``.

Visualizing and understanding convnets (Zeiler & Fergus 2014, arXiv 1311.2901). Each command writes
``OUT/result.json`` with the common keys (``analysis``, ``model``, ``data``, ``parameters``,
``metrics``, ``figures``), an ``.npz`` of the arrays (named by the ``arrays`` key) and PNG figures
laid out like the paper's. Analysis-specific keys:

``topk`` (topk.png, topk.npz: units, values, sample_ids, positions, labels, patches, projections)
    ``topk``: ``{layer, k, units, rule, receptive_field: {layer, jump, size, start, input_size,
    is_global}, top: [{unit, values[k], sample_ids[k], positions[k][n_spatial], labels[k]}]}``;
    metrics ``mean_top1``, ``n_units``.
``deconv`` (projections.png, deconv.npz: inputs, sample_ids, units, map_<rule>)
    ``sample_ids``, ``units``, ``positions`` (per row, in the layer's map), ``values`` (projected
    activations); metrics ``cosine_<ruleA>_<ruleB>`` (mean cosine similarity between rules).
``occlusion`` (occlusion.png, occlusion.npz: sample_ids, inputs, probability, label, activation)
    ``images``: ``[{sample_id, true_label, target, base_probability, base_label, layer, unit,
    base_activation, min_probability, size, stride, anchor, value, map_shape}]``; metrics
    ``mean_base_probability``, ``mean_min_probability``, ``label_changed_fraction``.
``invariance`` (invariance.png, invariance.npz: <kind>_params, <kind>_probability,
<kind>_distance_<layer index>)
    ``curves``: ``{kind: {params, mean_relative_distance: {layer: [P]}, mean_probability: [P]}}``,
    ``sample_ids``, ``labels``; metrics ``<kind>_min_mean_probability``.
``evolution`` (evolution.png, evolution_patches.png, evolution.npz: epochs, units, projections,
patches, values, sample_ids)
    ``evolution``: ``{layer, rule, epochs, units, values[U][E], sample_ids[U][E],
    same_sample_as_last[U][E]}``; metrics ``mean_top_value_last_epoch``,
    ``fraction_same_sample_as_last``.
``correspondence`` (correspondence.png)
    ``correspondence``: ``{layers, parts: {name: [row, col, h, w]}, delta: {layer: {part | "random":
    Δ}}, random_std: {layer: std}, n_images}``; metrics ``delta_<layer>_<part>``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional, cast

import typer

from ._app import (
    DATA_HELP,
    allow_pickle_option,
    app,
    batch_size_option,
    console,
    data_option,
    load_data_cli,
    load_model_cli,
    model_option,
    check_count,
    out_option,
    parse_indices,
    parse_list,
    progress_bar,
    progress_option,
    weights_option,
)


def _indices(limit: Optional[int], n: int) -> Any:
    import numpy as np

    check_count("--limit", limit)
    return None if limit is None else np.arange(min(int(limit), n))


def _units(value: Optional[str]) -> Optional[list[int]]:
    from ..exceptions import ParameterError

    items = parse_list(value)
    if items is None or items == ["all"]:
        return None
    try:
        return [int(u) for u in items]
    except ValueError as err:
        raise ParameterError(f"--units takes comma-separated channel numbers or 'all'; got {value!r}.") from err


def _classes(ds: Any, net: Any) -> Optional[list[str]]:
    return list(getattr(ds, "classes", None) or getattr(net, "classes", None) or []) or None


def _save_npz(path: Path, **arrays: Any) -> None:
    import numpy as np

    from .._io import atomic_path

    with atomic_path(path) as tmp:
        with open(tmp, "wb") as fh:
            np.savez_compressed(fh, **{k: v for k, v in arrays.items() if v is not None})


@app.command()
def topk(
    model: str = model_option(),
    layer: str = typer.Option(..., "--layer", "-l", help="Layer whose units are ranked (dotted name)."),
    out: Path = out_option(),
    data: Optional[str] = data_option(),
    units: Optional[str] = typer.Option(None, help="Comma-separated channels (default: all)."),
    k: int = typer.Option(9, help="Activations kept per unit (each from a different sample)."),
    rule: str = typer.Option("deconvnet", help="Projection shown next to each patch: deconvnet, guided, gradient or none."),
    limit: Optional[int] = typer.Option(None, help="Use only the first N samples."),
    batch_size: int = batch_size_option(),
    max_units: int = typer.Option(16, help="Units shown in the figure."),
    patches: bool = typer.Option(True, help="Crop receptive-field patches (needs a model torch.fx can trace); "
                                 "--no-patches only ranks."),
    weights: Optional[Path] = weights_option(),
    allow_pickle: bool = allow_pickle_option(),
    progress: bool = progress_option(),
) -> None:
    """Top-k activations of many units over a data set, with receptive-field patches (Z&F Fig. 2)."""
    from ..attribution.plots import plot_topk
    from ..attribution.topk import top_activations
    from ..results import model_description

    net = load_model_cli(model, weights, allow_pickle)
    ds = load_data_cli(data, net)
    with progress_bar(progress) as bar:
        top = top_activations(
            net, ds, layer, units=_units(units), k=k, batch_size=batch_size, indices=_indices(limit, len(ds)),
            rule=None if rule == "none" or not patches else rule, patches=patches, progress=bar,
        )
    out.mkdir(parents=True, exist_ok=True)
    plot_topk(top, out / "topk.png", max_units=max_units, class_names=_classes(ds, net))
    top.save(
        out, model=model_description(net), data=data or getattr(ds, "name", None),
        parameters={"layer": layer, "units": top.units.tolist(), "k": k, "rule": top.rule, "limit": limit},
        metrics={"mean_top1": float(top.values[:, 0].mean()), "n_units": int(len(top.units))},
        figures=[{"path": "topk.png", "title": f"Top-{k} activations of {layer}",
                  "caption": "Per unit: projections of its strongest activations (left) and the input patches "
                             "cropped by the unit's receptive field (right), as in Zeiler & Fergus 2014, Fig. 2."}],
    )
    rf = top.receptive_field
    console.print(f"top-{k} of {len(top.units)} units of {layer} written to [bold]{out}[/]"
                  + (f" (receptive field {rf.size}, jump {rf.jump})" if rf is not None else ""))


@app.command()
def deconv(
    model: str = model_option(),
    layer: str = typer.Option(..., "--layer", "-l", help="Layer whose activations are projected."),
    out: Path = out_option(),
    data: Optional[str] = data_option(),
    units: Optional[str] = typer.Option(None, help="Comma-separated channels (default: the first 8)."),
    rules: str = typer.Option("gradient,deconvnet,guided", help="Projection rules to compare."),
    indices: Optional[str] = typer.Option(None, help="Dataset rows to project from (one per unit); default: "
                                          "the sample with each unit's strongest activation."),
    limit: Optional[int] = typer.Option(None, help="Search the strongest activation among the first N samples."),
    batch_size: int = batch_size_option(),
    weights: Optional[Path] = weights_option(),
    allow_pickle: bool = allow_pickle_option(),
    progress: bool = progress_option(),
) -> None:
    """Project single activations back to pixels with gradient / deconvnet / guided backprop."""
    import numpy as np

    from ..attribution.deconvnet import project_activations
    from ..attribution.plots import plot_projections
    from ..attribution.topk import dataset_inputs, display_normalization, top_activations
    from ..results import model_description, write_result

    net = load_model_cli(model, weights, allow_pickle)
    ds = load_data_cli(data, net)
    rule_list = parse_list(rules) or ["deconvnet"]
    unit_list = _units(units)
    rows = parse_indices(indices, len(ds))
    if rows is not None:
        ids = rows
        if unit_list is None:
            unit_list = list(range(min(8, len(ids))))
        ids = np.resize(ids, len(unit_list))
        positions = None
    else:
        with progress_bar(progress) as bar:
            top = top_activations(net, ds, layer, units=unit_list, k=1, batch_size=batch_size,
                                  indices=_indices(limit, len(ds)), patches=False, rule=None, progress=bar)
        if unit_list is None:
            keep = min(8, len(top.units))
            unit_list = top.units[:keep].tolist()
            top_ids, top_pos = top.sample_ids[:keep, 0], top.positions[:keep, 0]
        else:
            top_ids, top_pos = top.sample_ids[:, 0], top.positions[:, 0]
        ids = top_ids
        positions = None if top_pos.shape[-1] == 0 else top_pos
    x = dataset_inputs(ds, ids)
    maps: dict[str, Any] = {}
    info: dict[str, Any] = {}
    for r in rule_list:
        p = project_activations(net, x, layer, unit_list, positions, rule=r)  # type: ignore[arg-type]
        maps[r] = p.maps
        info = {"positions": p.positions.tolist(), "values": p.values.tolist()}
    norm = display_normalization(ds, net)
    disp = norm.denormalize(x) if norm is not None else x.numpy()
    out.mkdir(parents=True, exist_ok=True)
    labels = [f"unit {u}, sample {int(i)}" for u, i in zip(unit_list, ids)]
    plot_projections(disp, maps, out / "projections.png", title=f"{layer}: one activation projected to the input",
                     row_labels=labels)
    metrics: dict[str, Any] = {}
    names = list(maps)
    for i in range(len(names)):
        for j in range(i + 1, len(names)):
            a, b = maps[names[i]].reshape(len(ids), -1), maps[names[j]].reshape(len(ids), -1)
            cos = (a * b).sum(1) / np.maximum(np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1), 1e-12)
            metrics[f"cosine_{names[i]}_{names[j]}"] = float(cos.mean())
    _save_npz(out / "deconv.npz", inputs=disp, sample_ids=ids, units=np.asarray(unit_list), **{f"map_{k}": v for k, v in maps.items()})
    write_result(
        out, "deconv", model=model_description(net), data=data or getattr(ds, "name", None),
        parameters={"layer": layer, "units": list(map(int, unit_list)), "rules": rule_list, "limit": limit},
        metrics=metrics,
        figures=[{"path": "projections.png", "title": f"Projections of single {layer} activations",
                  "caption": "Each row: the input and the projection of one activation (all others zeroed) with "
                             "each rule; grey = 0. Deconvnet = Zeiler & Fergus 2014."}],
        arrays="deconv.npz", sample_ids=ids.tolist(), units=list(map(int, unit_list)), **info,
    )
    console.print(f"{len(ids)} projections x {len(rule_list)} rules of {layer} written to [bold]{out}[/]")


@app.command()
def occlude(
    model: str = model_option(),
    out: Path = out_option(),
    data: Optional[str] = data_option(),
    indices: str = typer.Option("0,1,2,3", help="Dataset rows to occlude."),
    size: int = typer.Option(7, help="Side of the grey square in pixels."),
    stride: int = typer.Option(2, help="Step of the square in pixels."),
    value: str = typer.Option("mean", help="Grey value: 'mean' (data set mean in normalised space), 'zero' "
                              "(mid-grey), or a number."),
    anchor: str = typer.Option("centred", help="centred (map as large as image / stride) or valid (Captum's windows)."),
    layer: Optional[str] = typer.Option(None, "--layer", "-l", help="Layer for map (b); none: skip (b)."),
    unit: Optional[int] = typer.Option(None, help="Feature map for (b); default the strongest for each image."),
    project: bool = typer.Option(True, help="With --layer: panel (c), the deconvnet projection of the feature map's "
                                 "strongest activation."),
    batch_size: int = typer.Option(256, help="Occluded images per forward pass."),
    weights: Optional[Path] = weights_option(),
    allow_pickle: bool = allow_pickle_option(),
    progress: bool = progress_option(),
) -> None:
    """Occlusion maps: feature map (b), p(true class) (d), most probable label (e) (Z&F Fig. 7)."""
    import numpy as np

    from ..attribution.occlusion import dataset_mean, occlusion
    from ..attribution.plots import plot_occlusion
    from ..attribution.topk import dataset_inputs, display_normalization
    from ..exceptions import ParameterError
    from ..results import model_description, write_result

    net = load_model_cli(model, weights, allow_pickle)
    ds = load_data_cli(data, net)
    ids = [int(i) for i in (parse_indices(indices, len(ds)) if indices is not None else [])]
    if value == "mean":
        grey: Any = dataset_mean(ds)
    elif value == "zero":
        norm = display_normalization(ds, net)
        grey = norm.zero_value() if norm is not None else 0.0
    else:
        try:
            grey = float(value)
        except ValueError as err:
            raise ParameterError(f"--value takes 'mean', 'zero' or a number; got {value!r}.") from err
    x = dataset_inputs(ds, ids)
    y = [int(ds[i][1]) for i in ids]
    results = []
    with progress_bar(progress) as bar:
        for i in range(len(ids)):
            results.append(occlusion(net, x[i], target=y[i], size=size, stride=stride, value=grey, anchor=anchor,  # type: ignore[arg-type]
                                     layer=layer, unit=unit, batch_size=batch_size, progress=bar))
    proj = None
    if layer is not None and project:
        from ..attribution.deconvnet import UnsupportedModelError, project_activations

        try:
            # with a layer, occlusion() picks (or checks) a unit per image, so no unit is None here
            proj = project_activations(net, x, layer, cast(list[int], [r.unit for r in results]), rule="deconvnet").maps
        except UnsupportedModelError as err:
            console.print(f"[yellow]panel (c) left out[/]: {err}")
    norm = display_normalization(ds, net)
    disp = norm.denormalize(x) if norm is not None else x.numpy()
    out.mkdir(parents=True, exist_ok=True)
    plot_occlusion(list(disp), results, out / "occlusion.png", class_names=_classes(ds, net), true_labels=y,
                   projections=None if proj is None else list(proj))
    _save_npz(out / "occlusion.npz", sample_ids=np.asarray(ids), inputs=disp,
              probability=np.stack([r.probability for r in results]), label=np.stack([r.label for r in results]),
              activation=np.stack(cast(list[np.ndarray], [r.activation for r in results])) if layer else None,
              projection=proj)
    per_image = [{"sample_id": i, "true_label": t, **r.to_dict()} for i, t, r in zip(ids, y, results)]
    write_result(
        out, "occlusion", model=model_description(net), data=data or getattr(ds, "name", None),
        parameters={"size": size, "stride": stride, "value": value, "anchor": anchor, "layer": layer, "unit": unit,
                    "indices": ids},
        metrics={
            "mean_base_probability": float(np.mean([r.base_probability for r in results])),
            "mean_min_probability": float(np.mean([r.probability.min() for r in results])),
            "label_changed_fraction": float(np.mean([(r.label != r.base_label).mean() for r in results])),
        },
        figures=[{"path": "occlusion.png", "title": "Occlusion sensitivity",
                  "caption": "Per image: (a) input, (b) total activation of the chosen feature map, (c) the deconvnet "
                             "projection of that map's strongest activation, (d) probability "
                             "of the true class and (e) most probable label as a function of the grey square's "
                             "position (Zeiler & Fergus 2014, Fig. 7)."}],
        arrays="occlusion.npz", images=per_image,
    )
    console.print(f"occlusion maps of {len(ids)} images written to [bold]{out}[/]")


def _pick(ds: Any, limit: Optional[int], indices: Optional[str], label: Optional[int] = None) -> Any:
    import numpy as np

    rows = parse_indices(indices, len(ds))
    if rows is not None:
        return rows
    check_count("--limit", limit)
    ids = np.arange(len(ds))
    if label is not None:
        y = ds.y.numpy() if hasattr(ds, "y") else np.asarray([int(ds[i][1]) for i in ids])
        ids = ids[y == label]
    return ids if limit is None else ids[: int(limit)]


@app.command()
def invariance(
    model: str = model_option(),
    out: Path = out_option(),
    data: Optional[str] = data_option(),
    layers: Optional[str] = typer.Option(None, "--layers", "-l", help="Comma-separated layers (default: the model's hidden layers)."),
    limit: Optional[int] = typer.Option(5, help="Number of images (the first N; the paper uses 5)."),
    indices: Optional[str] = typer.Option(None, help="Dataset rows instead of --limit."),
    transforms: str = typer.Option("translate,scale,rotate", help="Which transformations: translate (horizontal), "
                                   "vtranslate (vertical, the paper's), scale, rotate."),
    fill: str = typer.Option("min", help="Value of pixels warped in from outside: 'min' (the data's background), "
                             "'mean', or a number (normalised space)."),
    plot_layers: Optional[str] = typer.Option(None, help="Layers drawn in the figure (default: the lowest and the highest)."),
    batch_size: int = batch_size_option(),
    weights: Optional[Path] = weights_option(),
    allow_pickle: bool = allow_pickle_option(),
    progress: bool = progress_option(),
) -> None:
    """Feature distance per layer and p(true class) under translation, scaling, rotation (Z&F Fig. 5)."""
    import numpy as np

    from ..attribution.invariance import default_ranges, invariance_curves
    from ..attribution.occlusion import dataset_mean
    from ..attribution.plots import plot_invariance
    from ..attribution.topk import dataset_inputs
    from ..exceptions import ParameterError
    from ..results import model_description, write_result

    net = load_model_cli(model, weights, allow_pickle)
    ds = load_data_cli(data, net)
    ids = _pick(ds, limit, indices)
    x = dataset_inputs(ds, ids)
    y = np.asarray([int(ds[int(i)][1]) for i in ids])
    if fill == "min":
        allx = getattr(ds, "x", x)
        fill_v: Any = allx.float().transpose(0, 1).reshape(allx.shape[1], -1).min(dim=1).values
    elif fill == "mean":
        fill_v = dataset_mean(ds)
    else:
        try:
            fill_v = float(fill)
        except ValueError as err:
            raise ParameterError(f"--fill takes 'min', 'mean' or a number; got {fill!r}.") from err
    kinds = parse_list(transforms) or []
    full = default_ranges(min(x.shape[2:]))
    bad = [k for k in kinds if k not in full]
    if bad:
        raise ParameterError(f"--transforms takes translate, vtranslate, scale, rotate; got {bad}.")
    with progress_bar(progress) as bar:
        curves = invariance_curves(net, x, y, layers=parse_list(layers), ranges={k: full[k] for k in kinds},
                                   fill=fill_v, batch_size=batch_size, sample_ids=ids, progress=bar)
    shown = parse_list(plot_layers) or ([curves.layers[0], curves.layers[-1]] if len(curves.layers) > 1 else curves.layers)
    out.mkdir(parents=True, exist_ok=True)
    plot_invariance(curves, out / "invariance.png", layers=shown)
    arrays: dict[str, Any] = {"sample_ids": ids, "labels": y}
    for kind in curves.transforms:
        arrays[f"{kind}_params"] = curves.params[kind]
        arrays[f"{kind}_probability"] = curves.probabilities[kind]
        for i, layer in enumerate(curves.layers):
            arrays[f"{kind}_distance_{i}"] = curves.distances[kind][layer]
    _save_npz(out / "invariance.npz", **arrays)
    summary = curves.summary()
    write_result(
        out, "invariance", model=model_description(net), data=data or getattr(ds, "name", None),
        parameters={"layers": curves.layers, "transforms": curves.transforms, "n_images": len(ids),
                    "fill": fill, "ranges": {k: v.tolist() for k, v in curves.params.items()}},
        metrics={f"{kind}_min_mean_probability": float(min(summary[kind]["mean_probability"])) for kind in curves.transforms},
        figures=[{"path": "invariance.png", "title": "Invariance to translation, scale and rotation",
                  "caption": f"Rows: transformations. Columns: Euclidean distance between the features of the original "
                             f"and the transformed image at {', '.join(shown)}, and the probability of the true class "
                             "(one line per image; Zeiler & Fergus 2014, Fig. 5)."}],
        arrays="invariance.npz", curves=summary, sample_ids=ids.tolist(), labels=y.tolist(),
    )
    console.print(f"invariance curves of {len(ids)} images x {len(curves.layers)} layers written to [bold]{out}[/]")


@app.command()
def evolution(
    model: str = typer.Option(..., "--model", "-m", help="A run folder from `layerscope train` (with checkpoints)."),
    layer: str = typer.Option(..., "--layer", "-l", help="Layer whose units are followed."),
    out: Path = out_option(),
    data: Optional[str] = typer.Option(None, help=DATA_HELP + " The paper uses the training set."),
    units: Optional[str] = typer.Option(None, help="Comma-separated channels (default: the first 8)."),
    epochs: Optional[str] = typer.Option(None, help="Comma-separated checkpoint epochs (default: all saved)."),
    rule: str = typer.Option("deconvnet", help="Projection rule: deconvnet, guided or gradient."),
    limit: Optional[int] = typer.Option(None, help="Search the strongest activations among the first N samples."),
    batch_size: int = batch_size_option(),
    progress: bool = progress_option(),
) -> None:
    """Strongest activation of chosen units, projected, at each checkpoint (Z&F Fig. 4)."""
    import re

    from ..attribution.evolution import feature_evolution
    from ..attribution.plots import plot_evolution
    from ..exceptions import ParameterError
    from ..loading import load_run_model
    from ..results import model_description, write_result

    run_dir = Path(re.sub(r"@\d+$", "", model))
    if not (run_dir / "run.json").exists():
        raise ParameterError(f"--model must be a run folder written by `layerscope train`; {run_dir} has no run.json.")
    last = load_run_model(run_dir)
    ds = load_data_cli(data, last)
    try:
        ep = [int(e) for e in parse_list(epochs) or []] if epochs else None
    except ValueError as err:
        raise ParameterError(f"--epochs takes comma-separated integers; got {epochs!r}.") from err
    with progress_bar(progress) as bar:
        evo = feature_evolution(run_dir, ds, layer, units=_units(units), epochs=ep, rule=rule,
                                indices=_indices(limit, len(ds)), batch_size=batch_size, progress=bar)
    out.mkdir(parents=True, exist_ok=True)
    plot_evolution(evo.projections, evo.epochs.tolist(), evo.units.tolist(), out / "evolution.png",
                   title=f"{layer}: strongest activation per unit, {rule} projection, by epoch")
    plot_evolution(evo.patches, evo.epochs.tolist(), evo.units.tolist(), out / "evolution_patches.png",
                   title=f"{layer}: input patches of the strongest activations, by epoch", kind="image")
    _save_npz(out / "evolution.npz", epochs=evo.epochs, units=evo.units, projections=evo.projections,
              patches=evo.patches, values=evo.values, sample_ids=evo.sample_ids)
    write_result(
        out, "evolution", model=model_description(last), data=data or getattr(ds, "name", None),
        parameters={"layer": layer, "units": evo.units.tolist(), "epochs": evo.epochs.tolist(), "rule": rule,
                    "limit": limit},
        metrics={"mean_top_value_last_epoch": float(evo.values[:, -1].mean()),
                 "fraction_same_sample_as_last": float((evo.sample_ids == evo.sample_ids[:, -1:]).mean())},
        figures=[{"path": "evolution.png", "title": f"Feature evolution of {layer}",
                  "caption": "Rows: units; columns: checkpoints. Each tile is the deconvnet projection of the unit's "
                             "strongest activation over the data at that epoch (Zeiler & Fergus 2014, Fig. 4)."},
                 {"path": "evolution_patches.png", "title": "Input patches of those activations",
                  "caption": "The receptive-field patches of the same activations."}],
        arrays="evolution.npz", evolution=evo.to_dict(),
    )
    console.print(f"feature evolution of {len(evo.units)} units over epochs {evo.epochs.tolist()} written to [bold]{out}[/]")


@app.command()
def correspondence(
    model: str = model_option(),
    layers: str = typer.Option(..., "--layers", "-l", help="Comma-separated layers."),
    out: Path = out_option(),
    data: Optional[str] = data_option(),
    label: Optional[int] = typer.Option(None, help="Use images of this class (default: the class of the first image)."),
    limit: int = typer.Option(5, help="Number of images (the paper: 5)."),
    indices: Optional[str] = typer.Option(None, help="Dataset rows instead of --label/--limit."),
    parts: Optional[str] = typer.Option(None, help="Boxes 'name=row,col,h,w;name=...' (default: top/bottom/left/right quarters)."),
    value: str = typer.Option("mean", help="Mask value: 'mean' (data set mean) or a number (normalised space)."),
    n_random: int = typer.Option(10, help="Random-mask draws per part."),
    seed: int = typer.Option(0, help="Seed of the random masks."),
    weights: Optional[Path] = weights_option(),
    allow_pickle: bool = allow_pickle_option(),
) -> None:
    """Correspondence Δ per layer: the same part masked in several images vs random masks (Z&F Table 1)."""
    from ..attribution.correspondence import correspondence as corr
    from ..attribution.occlusion import dataset_mean
    from ..attribution.plots import plot_correspondence
    from ..attribution.topk import dataset_inputs
    from ..exceptions import ParameterError
    from ..results import model_description, write_result

    net = load_model_cli(model, weights, allow_pickle)
    ds = load_data_cli(data, net)
    if indices is None and label is None:
        label = int(ds[0][1])
    ids = _pick(ds, limit, indices, label)
    x = dataset_inputs(ds, ids)
    boxes = None
    if parts:
        boxes = {}
        try:
            for item in parts.split(";"):
                name, spec = item.split("=")
                r, c, h, w = (int(v) for v in spec.split(","))
                boxes[name.strip()] = (r, c, h, w)
        except ValueError as err:
            raise ParameterError(f"--parts takes 'name=row,col,h,w;...'; got {parts!r}.") from err
    if value == "mean":
        val: Any = dataset_mean(ds)
    else:
        try:
            val = float(value)
        except ValueError as err:
            raise ParameterError(f"--value takes 'mean' or a number; got {value!r}.") from err
    res = corr(net, x, parse_list(layers) or [], parts=boxes, value=val, n_random=n_random, random_state=seed)
    out.mkdir(parents=True, exist_ok=True)
    plot_correspondence(res, out / "correspondence.png")
    write_result(
        out, "correspondence", model=model_description(net), data=data or getattr(ds, "name", None),
        parameters={"layers": res.layers, "parts": res.to_dict()["parts"], "label": label,
                    "sample_ids": ids.tolist(), "value": value, "n_random": n_random, "seed": seed},
        metrics={f"delta_{layer}_{name}": v for layer in res.layers for name, v in res.delta[layer].items()},
        figures=[{"path": "correspondence.png", "title": "Correspondence Δ per layer",
                  "caption": "Mean normalised Hamming distance between the sign patterns of feature changes when the "
                             "same part is masked in each image, vs random masks of the same size (Zeiler & Fergus "
                             "2014, Table 1). Lower = more consistent."}],
        correspondence=res.to_dict(),
    )
    console.print(f"correspondence Δ of {len(res.layers)} layers over {len(ids)} images written to [bold]{out}[/]")
    for layer in res.layers:
        console.print(f"  {layer}: " + ", ".join(f"{k}={v:.4f}" for k, v in res.delta[layer].items()))
