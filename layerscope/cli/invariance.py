"""``layerscope invariance`` (Zeiler & Fergus 2014, §4.1, Fig. 5).

Parses, calls :func:`~layerscope.convnets.invariance_curves`, saves the
:class:`~layerscope.convnets.InvarianceCurves` with its ``save()`` and prints a summary.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from ._app import (allow_pickle_option, app, batch_size_option, check_count, console, data_option, load_model_and_data,
                   model_option, out_option, parse_indices, parse_list, progress_bar, progress_option, weights_option)
from ._zf import number_or


@app.command()
def invariance(
    model: str = model_option(), out: Path = out_option(), data: Optional[str] = data_option(),
    layers: Optional[str] = typer.Option(None, "--layers", "-l", help="Comma-separated layers (default: the model's hidden layers)."),
    limit: Optional[int] = typer.Option(5, help="Number of images (the first N; the paper uses 5)."),
    indices: Optional[str] = typer.Option(None, help="Dataset rows instead of --limit."),
    transforms: str = typer.Option("translate,scale,rotate", help="Which transformations: translate (horizontal), "
                                   "vtranslate (vertical, the paper's), scale, rotate."),
    fill: str = typer.Option("min", help="Value of pixels warped in from outside: 'min' (the data's background), "
                             "'mean', or a number (normalised space)."),
    plot_layers: Optional[str] = typer.Option(None, help="Layers drawn in the figure (default: the lowest and the highest)."),
    batch_size: int = batch_size_option(), weights: Optional[Path] = weights_option(),
    allow_pickle: bool = allow_pickle_option(), progress: bool = progress_option(),
) -> None:
    """Feature distance per layer and p(true class) under translation, scaling, rotation (Z&F Fig. 5)."""
    from ..convnets.invariance import invariance_curves

    net, ds = load_model_and_data(model, data, weights, allow_pickle)
    rows = parse_indices(indices, len(ds))
    with progress_bar(progress) as bar:
        curves = invariance_curves(net, ds, layers=parse_list(layers), transforms=parse_list(transforms) or [],
                                   fill=number_or(fill, ("min", "mean"), "--fill"), indices=rows,
                                   limit=None if rows is not None else check_count("--limit", limit), plot_layers=parse_list(plot_layers),
                                   batch_size=batch_size, progress=bar, data_spec=data)
    curves.save(out)
    console.print(f"invariance curves of {len(curves.labels)} images x {len(curves.layers)} layers written to [bold]{out}[/]")
