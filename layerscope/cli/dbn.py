"""``layerscope dbn pretrain | sample | fsdd``: deep belief networks (Hinton et al. 2006; Mohamed,
Hinton & Penn 2012; Erhan et al. 2009).

* ``pretrain`` — greedy CD pre-training; writes ``result.json`` (``dbn_pretrain``), the
  reconstruction-error figure and ``dbn.safetensors``;
* ``sample`` — Erhan et al.'s views of units of a pre-trained DBN (``dbn_units``);
* ``fsdd`` — pre-trained vs randomly initialised DNNs on FSDD frames (``dbn_speech``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from ._app import (DATA_HELP, app, batch_size_option, console, load_data_cli, load_recordings, out_option, parse_list, progress_bar,
                   progress_option, seed_option, set_threads, threads_option)

dbn = typer.Typer(no_args_is_help=True, help="Deep belief networks: CD pre-training, unit views, FSDD comparison.")
app.add_typer(dbn, name="dbn")


def _ints(value: Optional[str], option: str) -> list[int] | None:
    from ..exceptions import ParameterError

    items = parse_list(value)
    if items is None:
        return None
    out: list[int] = []
    for it in items:
        try:
            if "-" in it[1:]:
                lo, hi = it.split("-", 1)
                out += list(range(int(lo), int(hi) + 1))
            else:
                out.append(int(it))
        except ValueError:
            raise ParameterError(f"{option} takes comma-separated integers or ranges (e.g. 0-9,12); got {value!r}.") from None
    return out


def _rows(data: object, limit: Optional[int]) -> object:
    if limit is not None and hasattr(data, "subset") and limit < len(data):  # type: ignore[arg-type]
        return data.subset(range(limit))  # type: ignore[attr-defined]
    return data


@dbn.command("pretrain")
def pretrain_cmd(
    out: Path = out_option(),
    data: str = typer.Option("mnist", help=DATA_HELP + " Rows are flattened."),
    sizes: str = typer.Option("500,500,500", help="Hidden layer sizes, comma-separated."),
    visible: str = typer.Option("binary", help="binary (inputs in [0, 1]) or gaussian (standardised real inputs)."),
    epochs: int = typer.Option(5, help="CD epochs per RBM."),
    lr: Optional[float] = typer.Option(None, help="Learning rate (default 0.1 binary, 0.01 gaussian first layer)."),
    k: int = typer.Option(1, help="Gibbs steps of CD-k."),
    persistent: bool = typer.Option(False, help="Persistent CD (PCD) instead of CD."),
    limit: Optional[int] = typer.Option(10000, help="Use the first N rows of the data."),
    batch_size: int = batch_size_option(),
    seed: int = seed_option(),
    threads: Optional[int] = threads_option(),
    progress: bool = progress_option(),
) -> None:
    """Greedy layer-wise CD pre-training of a DBN; prints the reconstruction error per layer."""
    from ..dbn.units import pretrain_dbn
    from ..exceptions import ParameterError

    set_threads(threads)
    hidden = _ints(sizes, "--sizes")
    if not hidden:
        raise ParameterError("--sizes needs at least one hidden layer size, e.g. 500,500.")
    ds = _rows(load_data_cli(data), limit)
    with progress_bar(progress) as bar:
        res = pretrain_dbn(ds, hidden, visible=visible, epochs=epochs, lr=lr, k=k, persistent=persistent,
                           batch_size=batch_size, random_state=seed, data_spec=data, progress=bar)
    res.save(out)
    for i, (h, act) in enumerate(zip(res.metrics["history"], res.metrics["mean_activity"]), start=1):
        errs = ", ".join(f"{e['reconstruction_error']:.4f}" for e in h)
        console.print(f"RBM {i}: reconstruction error per epoch {errs}; mean activity {act:.3f}")
    console.print(f"wrote [bold]{out}[/]")


@dbn.command("sample")
def sample_cmd(
    model: Path = typer.Option(..., "--model", "-m", help="A folder written by `layerscope dbn pretrain`."),
    out: Path = out_option(),
    data: Optional[str] = typer.Option(None, help=DATA_HELP + " Starts the chains; sets rho (default: the pretrain data)."),
    layers: str = typer.Option("1,2,3", help="Hidden layers (1-based), comma-separated."),
    units: str = typer.Option("0-9", help="Units of every layer: comma-separated integers or ranges."),
    chains: int = typer.Option(32, help="Gibbs chains per unit."),
    gibbs: int = typer.Option(100, help="Gibbs steps in the top RBM."),
    steps: int = typer.Option(200, help="Gradient steps of activation maximization."),
    restarts: int = typer.Option(3, help="Restarts of activation maximization."),
    limit: Optional[int] = typer.Option(2000, help="Use the first N rows of the data."),
    seed: int = seed_option(),
    threads: Optional[int] = threads_option(),
) -> None:
    """Erhan et al.'s views of DBN units: maximization, sampling (unit clamped), linear combination."""
    from ..dbn.results import DBNPretraining
    from ..dbn.units import dbn_units
    from ..exceptions import DataError

    set_threads(threads)
    pre = DBNPretraining.load(model)
    if pre.dbn is None:
        raise DataError(f"{model} has no dbn.safetensors; write it with `layerscope dbn pretrain`.")
    spec = data or pre.doc.get("data")
    ds = _rows(load_data_cli(spec), limit) if spec else None
    shape = pre.doc.get("dbn", {}).get("input_shape") or [pre.dbn.sizes[0]]
    res = dbn_units(pre.dbn, layers=_ints(layers, "--layers") or [1], units=_ints(units, "--units") or [0],
                    image_shape=shape, data=ds, n_chains=chains, n_gibbs=gibbs, steps=steps, restarts=restarts,
                    random_state=seed)
    res.save(out)
    for r in res.metrics["layers"]:
        console.print(f"layer {r['layer']}: max activation {r['mean_activation']:.3f}, corr(max, sampling) "
                      f"{r['corr_maximize_sampling']:.3f}, corr(max, linear) {r['corr_maximize_linear']:.3f}")
    console.print(f"wrote [bold]{out}[/]")


@dbn.command("fsdd")
def fsdd_cmd(
    out: Path = out_option(),
    data: str = typer.Option("fsdd", help="Recordings: fsdd (bundled) or fsdd:PATH."),
    features: str = typer.Option("fbank", help="fbank and/or mfcc, comma-separated."),
    depths: str = typer.Option("4", help="Hidden layers, comma-separated (1-8)."),
    width: int = typer.Option(256, help="Units per hidden layer."),
    seeds: str = typer.Option("0,1", help="Seeds, comma-separated (one run of each initialisation per seed)."),
    pretrain_epochs: int = typer.Option(5, help="CD-1 epochs per RBM."),
    finetune_epochs: int = typer.Option(5, help="Fine-tuning epochs (Adam, lr 1e-3, for both arms; see compare_pretraining)."),
    frame_step: int = typer.Option(6, help="Train on every N-th frame."),
    n_frames: int = typer.Option(1000, help="Test frames for the per-layer NH and probes."),
    threads: Optional[int] = threads_option(),
    progress: bool = progress_option(),
) -> None:
    """Pre-trained (DBN) vs randomly initialised DNNs on FSDD frames: accuracy, per-layer digit / speaker NH."""
    from ..dbn.speech import compare_pretraining

    set_threads(threads)
    audio = load_recordings(data)
    with progress_bar(progress) as bar:
        res = compare_pretraining(audio, features=parse_list(features) or ["fbank"], depths=_ints(depths, "--depths") or [4],
                                  width=width, seeds=_ints(seeds, "--seeds") or [0], pretrain_epochs=pretrain_epochs,
                                  finetune_epochs=finetune_epochs, frame_step=frame_step, n_frames=n_frames, progress=bar)
    res.save(out)
    for s in res.metrics["summary"]:
        console.print(f"{s['features']} depth {s['depth']} {s['init']}: frame accuracy {s['frame_accuracy_mean']:.3f} "
                      f"[{s['frame_accuracy_min']:.3f}, {s['frame_accuracy_max']:.3f}], last-layer digit NH "
                      f"{s['nh_digit_last_mean']:.3f}, speaker NH {s['nh_speaker_last_mean']:.3f}")
    console.print(f"wrote [bold]{out}[/]")
