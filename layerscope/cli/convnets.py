"""``layerscope topk``, ``deconv`` and ``evolution`` (Zeiler & Fergus 2014, arXiv 1311.2901).

Each command parses, calls the library (:mod:`layerscope.convnets`), saves the result with its
``save()`` and prints a summary; the folders are described by the result classes
(:class:`~layerscope.convnets.TopK`, :class:`~layerscope.convnets.DeconvProjections`,
:class:`~layerscope.convnets.Evolution`). ``occlude`` and ``correspondence`` are in
:mod:`.occlusion`, ``invariance`` in :mod:`.invariance`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from ._app import (DATA_HELP, allow_pickle_option, app, batch_size_option, check_count, console, data_option,
                   load_data_cli, load_model_and_data, model_option, out_option, parse_indices, parse_list, progress_bar,
                   progress_option, weights_option)
from ._zf import parse_ints


@app.command()
def topk(
    model: str = model_option(), layer: str = typer.Option(..., "--layer", "-l", help="Layer whose units are ranked."),
    out: Path = out_option(), data: Optional[str] = data_option(),
    units: Optional[str] = typer.Option(None, help="Comma-separated channels (default: all)."),
    k: int = typer.Option(9, help="Activations kept per unit (each from a different sample)."),
    rule: str = typer.Option("deconvnet", help="Projection shown next to each patch: deconvnet, guided, gradient or none."),
    limit: Optional[int] = typer.Option(None, help="Use only the first N samples."), batch_size: int = batch_size_option(),
    max_units: int = typer.Option(16, help="Units shown in the figure."),
    patches: bool = typer.Option(True, help="Crop receptive-field patches (needs a model torch.fx can trace); "
                                 "--no-patches only ranks."),
    weights: Optional[Path] = weights_option(), allow_pickle: bool = allow_pickle_option(),
    progress: bool = progress_option(),
) -> None:
    """Top-k activations of many units over a data set, with receptive-field patches (Z&F Fig. 2)."""
    from ..convnets.topk import top_activations

    net, ds = load_model_and_data(model, data, weights, allow_pickle)
    with progress_bar(progress) as bar:
        top = top_activations(net, ds, layer, units=parse_ints(units, "--units", True), k=k, batch_size=batch_size,
                              limit=check_count("--limit", limit), rule=None if rule == "none" or not patches else rule,
                              patches=patches, max_units=max_units, progress=bar, data_spec=data)
    top.save(out)
    rf = top.receptive_field
    console.print(f"top-{k} of {len(top.units)} units of {layer} written to [bold]{out}[/]"
                  + (f" (receptive field {rf.size}, jump {rf.jump})" if rf is not None else ""))


@app.command()
def deconv(
    model: str = model_option(), layer: str = typer.Option(..., "--layer", "-l", help="Layer whose activations are projected."),
    out: Path = out_option(), data: Optional[str] = data_option(),
    units: Optional[str] = typer.Option(None, help="Comma-separated channels (default: the first 8)."),
    rules: str = typer.Option("gradient,deconvnet,guided", help="Projection rules to compare."),
    indices: Optional[str] = typer.Option(None, help="Dataset rows to project from (one per unit); default: "
                                          "the sample with each unit's strongest activation."),
    limit: Optional[int] = typer.Option(None, help="Search the strongest activation among the first N samples."),
    batch_size: int = batch_size_option(), weights: Optional[Path] = weights_option(),
    allow_pickle: bool = allow_pickle_option(), progress: bool = progress_option(),
) -> None:
    """Project single activations back to pixels with gradient / deconvnet / guided backprop."""
    from ..convnets.deconv import deconv_projections

    net, ds = load_model_and_data(model, data, weights, allow_pickle)
    with progress_bar(progress) as bar:
        res = deconv_projections(net, ds, layer, units=parse_ints(units, "--units", True),
                                 rules=parse_list(rules) or ["deconvnet"], indices=parse_indices(indices, len(ds)),
                                 limit=check_count("--limit", limit), batch_size=batch_size, progress=bar,
                                 data_spec=data)
    res.save(out)
    console.print(f"{len(res.sample_ids)} projections x {len(res.rules)} rules of {layer} written to [bold]{out}[/]")


@app.command()
def evolution(
    model: str = typer.Option(..., "--model", "-m", help="A run folder from `layerscope train` (with checkpoints)."),
    layer: str = typer.Option(..., "--layer", "-l", help="Layer whose units are followed."), out: Path = out_option(),
    data: Optional[str] = typer.Option(None, help=DATA_HELP + " The paper uses the training set."),
    units: Optional[str] = typer.Option(None, help="Comma-separated channels (default: the first 8)."),
    epochs: Optional[str] = typer.Option(None, help="Comma-separated checkpoint epochs (default: all saved)."),
    rule: str = typer.Option("deconvnet", help="Projection rule: deconvnet, guided or gradient."),
    limit: Optional[int] = typer.Option(None, help="Search the strongest activations among the first N samples."),
    batch_size: int = batch_size_option(), progress: bool = progress_option(),
) -> None:
    """Strongest activation of chosen units, projected, at each checkpoint (Z&F Fig. 4)."""
    import re

    from ..convnets.evolution import feature_evolution
    from ..exceptions import ParameterError
    from ..loading import load_run_model
    from ..results import model_description

    run_dir = Path(re.sub(r"@\d+$", "", model))
    if not (run_dir / "run.json").exists():
        raise ParameterError(f"--model must be a run folder written by `layerscope train`; {run_dir} has no run.json.")
    last = load_run_model(run_dir)
    ds = load_data_cli(data, last)
    with progress_bar(progress) as bar:
        evo = feature_evolution(run_dir, ds, layer, units=parse_ints(units, "--units", True), rule=rule,
                                epochs=parse_ints(epochs, "--epochs"), limit=check_count("--limit", limit),
                                batch_size=batch_size, progress=bar, model_info=model_description(last), data_spec=data)
    evo.save(out)
    console.print(f"feature evolution of {len(evo.units)} units over epochs {evo.epochs.tolist()} written to [bold]{out}[/]")

