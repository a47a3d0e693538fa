"""``layerscope occlude`` and ``correspondence`` (Zeiler & Fergus 2014, §4.2 and §4.3).

Each command parses, calls the library (:mod:`layerscope.convnets`), saves the result with its
``save()`` and prints a summary; the folders are described by
:class:`~layerscope.convnets.OcclusionMaps` and :class:`~layerscope.convnets.Correspondence`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

import typer

from ._app import (allow_pickle_option, app, check_count, console, data_option, load_model_and_data, model_option,
                   out_option, parse_indices, parse_list, progress_bar, progress_option, seed_option, weights_option)
from ._zf import number_or


@app.command()
def occlude(
    model: str = model_option(), out: Path = out_option(), data: Optional[str] = data_option(),
    indices: str = typer.Option("0,1,2,3", help="Dataset rows to occlude."),
    size: int = typer.Option(7, help="Side of the grey square in pixels."),
    stride: int = typer.Option(2, help="Step of the square in pixels."),
    value: str = typer.Option("mean", help="Grey value: 'mean' (data set mean in normalised space), 'zero' "
                              "(0 in normalised space, i.e. the normalisation's mean, for standardised data; "
                              "0.5 raw for data in [0, 1]), or a number (normalised space)."),
    anchor: str = typer.Option("centred", help="centred (map as large as image / stride) or valid (Captum's windows)."),
    layer: Optional[str] = typer.Option(None, "--layer", "-l", help="Layer for map (b); none: skip (b)."),
    unit: Optional[int] = typer.Option(None, help="Feature map for (b) (needs --layer); default the strongest per image."),
    project: bool = typer.Option(True, help="With --layer: panel (c), the deconvnet projection of the feature map's "
                                 "strongest activation."),
    batch_size: int = typer.Option(256, help="Occluded images per forward pass."),
    weights: Optional[Path] = weights_option(), allow_pickle: bool = allow_pickle_option(),
    progress: bool = progress_option(),
) -> None:
    """Occlusion maps: feature map (b), p(true class) (d), most probable label (e) (Z&F Fig. 7)."""
    from ..convnets.occlusion import occlusion_maps
    from ..exceptions import ParameterError

    if unit is not None and layer is None:
        raise ParameterError(f"--unit {unit} needs --layer (the layer of the feature map of panel (b)).")
    net, ds = load_model_and_data(model, data, weights, allow_pickle)
    with progress_bar(progress) as bar:
        res = occlusion_maps(net, ds, parse_indices(indices, len(ds)), size=size, stride=stride,
                             value=number_or(value, ("mean", "zero"), "--value"), anchor=anchor,  # type: ignore[arg-type]
                             layer=layer, unit=unit, project=project, batch_size=batch_size, progress=bar, data_spec=data)
    for note in res.notes:
        console.print(f"[yellow]{note}[/]")
    res.save(out)
    console.print(f"occlusion maps of {len(res.sample_ids)} images written to [bold]{out}[/]")


@app.command()
def correspondence(
    model: str = model_option(), layers: str = typer.Option(..., "--layers", "-l", help="Comma-separated layers."),
    out: Path = out_option(), data: Optional[str] = data_option(),
    label: Optional[int] = typer.Option(None, help="Use images of this class (default: the class of the first image)."),
    limit: int = typer.Option(5, help="Number of images (the paper: 5)."),
    indices: Optional[str] = typer.Option(None, help="Dataset rows instead of --label/--limit."),
    parts: Optional[str] = typer.Option(None, help="Boxes 'name=row,col,h,w;name=...' (default: top/bottom/left/right quarters)."),
    value: str = typer.Option("mean", help="Mask value: 'mean' (data set mean) or a number (normalised space)."),
    n_random: int = typer.Option(10, help="Random-mask draws per part."),
    seed: int = seed_option("Seed of the random masks."),
    weights: Optional[Path] = weights_option(), allow_pickle: bool = allow_pickle_option(),
    progress: bool = progress_option(),
) -> None:
    """Correspondence Δ per layer: the same part masked in several images vs random masks (Z&F Table 1)."""
    from ..convnets.correspondence import correspondence as corr
    from ..exceptions import ParameterError

    net, ds = load_model_and_data(model, data, weights, allow_pickle)
    boxes: Optional[dict[str, Any]] = None
    if parts:
        try:
            boxes = {name.strip(): tuple(int(v) for v in spec.split(","))
                     for name, spec in (item.split("=") for item in parts.split(";"))}
        except ValueError as err:
            raise ParameterError(f"--parts takes 'name=row,col,h,w;...'; got {parts!r}.") from err
    rows = parse_indices(indices, len(ds))
    with progress_bar(progress) as bar:
        res = corr(net, ds, parse_list(layers) or [], parts=boxes, value=number_or(value, ("mean",), "--value"),
                   n_random=n_random, random_state=seed, label=label, indices=rows,
                   limit=None if rows is not None else check_count("--limit", limit), data_spec=data, progress=bar)
    res.save(out)
    console.print(f"correspondence Δ of {len(res.layers)} layers over {res.n_images} images written to [bold]{out}[/]")
    for layer in res.layers:
        console.print(f"  {layer}: " + ", ".join(f"{k}={v:.4f}" for k, v in res.delta[layer].items()))
