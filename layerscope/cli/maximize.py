"""``layerscope maximize``: activation maximisation of a layer's units (Erhan et al. 2009 / Lucid).

Writes ``OUT/grid.png`` (every unit's image), ``OUT/units/unit_XXXX.png`` (one per unit),
``OUT/traces.png``, ``OUT/arrays.npz`` and ``OUT/result.json`` (analysis ``"maximize"``; schema
in :mod:`layerscope.featurevis.render`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal, Optional, cast

import typer

from ._app import (DATA_HELP, allow_pickle_option, app, console, load_data_cli, load_model_cli, model_option, out_option,
                   parse_list, progress_bar, progress_option, seed_option, weights_option)


@app.command()
def maximize(
    model: str = model_option(),
    layer: str = typer.Option(..., "--layer", "-l", help="Layer whose units to maximise (dotted name, see `layerscope layers`)."),
    units: str = typer.Option("all", "--units", "-u", help="'all' or comma-separated unit / channel / class indices."),
    out: Path = out_option(),
    method: str = typer.Option("erhan", help="erhan: gradient ascent on the sphere ||x|| = rho; lucid: FFT, transforms, Adam."),
    objective: str = typer.Option(
        "auto", help="auto, neuron, channel, logit or prob. auto: channel for conv maps, logit for the output layer, else neuron."
    ),
    steps: Optional[int] = typer.Option(None, help="Gradient steps (default 200 for erhan, 256 for lucid)."),
    data: Optional[str] = typer.Option(
        None, help=DATA_HELP + " With --data, each unit's max over the data is reported too."
    ),
    rho: Optional[float] = typer.Option(None, help="erhan: sphere radius (default: median input norm of the data)."),
    restarts: int = typer.Option(1, help="Random restarts per unit (restart consistency needs >= 2)."),
    seed: int = seed_option("Random seed: the same seed gives the same images."),
    lr: Optional[float] = typer.Option(None, help="Step size (erhan default: 0.1 rho / first gradient norm; lucid: 0.05)."),
    position: Optional[str] = typer.Option(None, help="neuron objective on conv maps: spatial position, e.g. 3,3 (default centre)."),
    param: Optional[str] = typer.Option(None, help="pixel or fft (default: pixel for erhan, fft for lucid)."),
    transforms: bool = typer.Option(True, help="lucid: jitter / scale / rotate / pad the image at every step."),
    l2: float = typer.Option(0.0, help="Weight of an L2 penalty on the input."),
    tv: float = typer.Option(0.0, help="Weight of a total-variation penalty on the input."),
    blur_every: int = typer.Option(0, help="Blur the input every k steps (0: never)."),
    blur_sigma: float = typer.Option(0.5, help="Blur width in pixels."),
    diversity: float = typer.Option(0.0, help="Weight of a diversity term between a unit's restarts (needs --restarts >= 2)."),
    optimizer: Optional[str] = typer.Option(None, help="sgd or adam (default: sgd for erhan, adam for lucid)."),
    thresholds: Optional[str] = typer.Option(None, help="Steps at which to keep intermediate images, e.g. 10,50,100."),
    batch_size: int = typer.Option(256, help="Images optimised together (units x restarts)."),
    weights: Optional[Path] = weights_option(),
    allow_pickle: bool = allow_pickle_option(),
    progress: bool = progress_option(),
) -> None:
    """Find the input that maximises each unit of LAYER; write a grid PNG, one PNG per unit and result.json."""
    from ..data import ArrayDataset
    from ..exceptions import DataError, ParameterError
    from ..featurevis import maximize as maximize_fn
    from ..results import model_description

    net = load_model_cli(model, weights, allow_pickle)
    ds = None
    if data is not None:
        ds = load_data_cli(data, net)
    else:
        try:  # the model's own data, only for rho / value range / colours (no data max)
            ds = load_data_cli(None, net)
        except DataError:
            ds = None
    if ds is not None and not isinstance(ds, ArrayDataset):
        if data is not None:
            raise DataError(f"{data} holds raw recordings, not fixed-size model inputs; pass array data (npz, mnist, ...).")
        ds = None
    unit_list: list[int] | str
    if units.strip() == "all":
        unit_list = "all"
    else:
        try:
            unit_list = [int(u) for u in parse_list(units) or []]
        except ValueError:
            raise ParameterError(f"--units must be 'all' or comma-separated integers; got {units!r}.") from None
    pos = None
    if position is not None:
        try:
            pos = [int(p) for p in parse_list(position) or []]
        except ValueError:
            raise ParameterError(f"--position must be comma-separated integers; got {position!r}.") from None
    keep = [int(t) for t in parse_list(thresholds) or []] if thresholds else []
    # maximize() checks method and optimizer against its Literal values (ParameterError), so the
    # CLI strings are passed through unchanged.
    method_lit = cast(Literal["erhan", "lucid"], method)
    optimizer_lit = cast(Optional[Literal["adam", "sgd"]], optimizer)
    with progress_bar(progress) as bar:
        res = maximize_fn(
            net, layer, unit_list, kind=objective, method=method_lit, steps=steps, restarts=restarts, rho=rho, lr=lr,
            position=pos, data=ds, param=param,  # normalization: the data's, else the model's (maximize's default)
            transforms=None if transforms else [], optimizer=optimizer_lit, l2=l2, tv=tv, blur_every=blur_every,
            blur_sigma=blur_sigma, diversity_weight=diversity, thresholds=keep, batch_size=batch_size, data_max=data is not None,
            random_state=seed, model_info={**model_description(net), "spec": model}, data_spec=data, progress=bar,
        )
    res.save(out)
    m = res.metrics
    console.print(f"maximised {m['n_units']} units of [bold]{layer}[/] ({res.kind}, {method}, {res.parameters['steps']} steps) "
                  f"in {m['seconds']:.1f}s -> [bold]{out}[/]")
    console.print(f"  mean activation reached: {m['mean_activation']:.4g}"
                  + (f", mean restart consistency: {m['mean_consistency']:.3f}" if m.get("mean_consistency") is not None else ""))
    if "fraction_exceeding_data_max" in m:
        console.print(f"  units above their max over the data: {m['fraction_exceeding_data_max']:.0%}")
    if "min_class_probability" in m:
        console.print(f"  classified as the target class: {m['fraction_classified_as_target']:.0%}, "
                      f"lowest probability {m['min_class_probability']:.4f}")
