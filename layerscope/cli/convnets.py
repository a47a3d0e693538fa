"""``layerscope topk``, ``deconv``, ``occlude``, ``invariance``, ``evolution``, ``correspondence``.

Visualizing and understanding convnets (Zeiler & Fergus 2014). Each command writes ``OUT/result.json``
(analysis ``topk`` / ``deconv`` / ``occlusion`` / ``invariance`` / ``evolution`` / ``correspondence``),
PNG figures laid out like the paper's and an ``.npz`` of the arrays; the schemas are documented in
:mod:`layerscope.attribution` modules and in each command's help.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

import typer

from ._app import DATA_HELP, MODEL_HELP, app, console, load_data_cli, load_model_cli, parse_list, progress_bar


def _indices(limit: Optional[int], n: int) -> Any:
    import numpy as np

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
    model: str = typer.Option(..., "--model", "-m", help=MODEL_HELP),
    layer: str = typer.Option(..., "--layer", "-l", help="Layer whose units are ranked (dotted name)."),
    out: Path = typer.Option(..., "--out", "-o", help="Output folder."),
    data: Optional[str] = typer.Option(None, help=DATA_HELP),
    units: Optional[str] = typer.Option(None, help="Comma-separated channels (default: all)."),
    k: int = typer.Option(9, help="Activations kept per unit (each from a different sample)."),
    rule: str = typer.Option("deconvnet", help="Projection shown next to each patch: deconvnet, guided, gradient or none."),
    limit: Optional[int] = typer.Option(None, help="Use only the first N samples."),
    batch_size: int = typer.Option(256),
    max_units: int = typer.Option(16, help="Units shown in the figure."),
    weights: Optional[Path] = typer.Option(None, help="Weights for a package.module:factory model."),
    allow_pickle: bool = typer.Option(False, help="Allow weight files that need unpickling (runs their code)."),
    progress: bool = typer.Option(True, help="Show a progress bar."),
) -> None:
    """Top-k activations of many units over a data set, with receptive-field patches (Z&F Fig. 2)."""
    from ..attribution.plots import plot_topk
    from ..attribution.topk import top_activations
    from ..results import model_description, write_result

    net = load_model_cli(model, weights, allow_pickle)
    ds = load_data_cli(data, net)
    with progress_bar(progress) as bar:
        top = top_activations(
            net, ds, layer, units=_units(units), k=k, batch_size=batch_size, indices=_indices(limit, len(ds)),
            rule=None if rule == "none" else rule, progress=bar,
        )
    out.mkdir(parents=True, exist_ok=True)
    plot_topk(top, out / "topk.png", max_units=max_units, class_names=_classes(ds, net))
    top.save_arrays(out / "topk.npz")
    write_result(
        out, "topk", model=model_description(net), data=data or getattr(ds, "name", None),
        parameters={"layer": layer, "units": top.units.tolist(), "k": k, "rule": top.rule, "limit": limit},
        metrics={"mean_top1": float(top.values[:, 0].mean()), "n_units": int(len(top.units))},
        figures=[{"path": "topk.png", "title": f"Top-{k} activations of {layer}",
                  "caption": "Per unit: projections of its strongest activations (left) and the input patches "
                             "cropped by the unit's receptive field (right), as in Zeiler & Fergus 2014, Fig. 2."}],
        arrays="topk.npz", topk=top.to_dict(),
    )
    rf = top.receptive_field
    console.print(f"top-{k} of {len(top.units)} units of {layer} written to [bold]{out}[/]"
                  + (f" (receptive field {rf.size}, jump {rf.jump})" if rf is not None else ""))


@app.command()
def deconv(
    model: str = typer.Option(..., "--model", "-m", help=MODEL_HELP),
    layer: str = typer.Option(..., "--layer", "-l", help="Layer whose activations are projected."),
    out: Path = typer.Option(..., "--out", "-o", help="Output folder."),
    data: Optional[str] = typer.Option(None, help=DATA_HELP),
    units: Optional[str] = typer.Option(None, help="Comma-separated channels (default: the first 8)."),
    rules: str = typer.Option("gradient,deconvnet,guided", help="Projection rules to compare."),
    indices: Optional[str] = typer.Option(None, help="Dataset rows to project from (one per unit); default: "
                                          "the sample with each unit's strongest activation."),
    limit: Optional[int] = typer.Option(None, help="Search the strongest activation among the first N samples."),
    batch_size: int = typer.Option(256),
    weights: Optional[Path] = typer.Option(None, help="Weights for a package.module:factory model."),
    allow_pickle: bool = typer.Option(False, help="Allow weight files that need unpickling (runs their code)."),
    progress: bool = typer.Option(True, help="Show a progress bar."),
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
    rows = parse_list(indices)
    if rows is not None:
        ids = np.asarray([int(r) for r in rows], dtype=np.int64)
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
    model: str = typer.Option(..., "--model", "-m", help=MODEL_HELP),
    out: Path = typer.Option(..., "--out", "-o", help="Output folder."),
    data: Optional[str] = typer.Option(None, help=DATA_HELP),
    indices: str = typer.Option("0,1,2,3", help="Dataset rows to occlude."),
    size: int = typer.Option(7, help="Side of the grey square in pixels."),
    stride: int = typer.Option(2, help="Step of the square in pixels."),
    value: str = typer.Option("mean", help="Grey value: 'mean' (data set mean in normalised space), 'zero' "
                              "(mid-grey), or a number."),
    anchor: str = typer.Option("centred", help="centred (map as large as image / stride) or valid (Captum's windows)."),
    layer: Optional[str] = typer.Option(None, "--layer", "-l", help="Layer for map (b); none: skip (b)."),
    unit: Optional[int] = typer.Option(None, help="Feature map for (b); default the strongest for each image."),
    batch_size: int = typer.Option(256, help="Occluded images per forward pass."),
    weights: Optional[Path] = typer.Option(None, help="Weights for a package.module:factory model."),
    allow_pickle: bool = typer.Option(False, help="Allow weight files that need unpickling (runs their code)."),
    progress: bool = typer.Option(True, help="Show a progress bar."),
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
    ids = [int(i) for i in parse_list(indices) or []]
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
    norm = display_normalization(ds, net)
    disp = norm.denormalize(x) if norm is not None else x.numpy()
    out.mkdir(parents=True, exist_ok=True)
    plot_occlusion(list(disp), results, out / "occlusion.png", class_names=_classes(ds, net), true_labels=y)
    _save_npz(out / "occlusion.npz", sample_ids=np.asarray(ids), inputs=disp,
              probability=np.stack([r.probability for r in results]), label=np.stack([r.label for r in results]),
              activation=np.stack([r.activation for r in results]) if layer else None)
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
                  "caption": "Per image: (a) input, (b) total activation of the chosen feature map, (d) probability "
                             "of the true class and (e) most probable label as a function of the grey square's "
                             "position (Zeiler & Fergus 2014, Fig. 7)."}],
        arrays="occlusion.npz", images=per_image,
    )
    console.print(f"occlusion maps of {len(ids)} images written to [bold]{out}[/]")
