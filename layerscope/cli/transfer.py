"""``layerscope transfer``: the transferability grid of Yosinski et al. 2014."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

import typer
from rich.table import Table

from ._app import app, console, parse_list, progress_bar


def _print_result(result: Any, out: Path) -> None:
    from ..transfer.analysis import EFFECTS

    conds = ["BnB", "AnB", "BnB+", "AnB+", "random"]
    summ = {(s["condition"], s["n"]): s for s in result.summary}

    def fmt(s: Any) -> str:  # ± the seed std only when there are two seeds or more
        if s is None:
            return "-"
        n = s.get("seeds") or len(s.get("per_seed") or {})
        return f"{100 * s['mean']:.1f}" + (f"±{100 * s['std']:.1f}" if int(n) >= 2 else "")

    console.print(
        f"Transfer grid {out}: {result.cells_done}/{result.cells_total} cells; accuracy on B in %, mean ± seed std (± only with 2+ seeds); "
        f"baseA {fmt(summ.get(('baseA', 0)))}, baseB {fmt(summ.get(('baseB', 0)))}"
    )
    console.print(f"selection: {result.parameters.get('selection', 'mean of the k best validation epochs')}")
    acc = Table(title="accuracy on B's test data at the selected epochs")
    eff = Table(title="effects (paired by seed)")
    for t, cols in ((acc, conds), (eff, [label for _l, _r, label in EFFECTS.values()])):
        t.add_column("n", justify="right")
        for c in cols:
            t.add_column(c, justify="right")
    for e in result.effects:
        n = e["n"]
        acc.add_row(str(n), *[fmt(summ.get((c, n))) for c in conds])
        eff.add_row(str(n), *[fmt(e[k]) for k in EFFECTS])
    console.print(acc)
    console.print(eff)
    if result.table:
        console.print(f"figure {out / 'transfer.png'}, table {out / 'transfer.csv'}, result {out / 'result.json'}")


#: CLI option -> GridConfig key, for the options that define a grid (checked against --resume)
_GRID_OPTIONS = {
    "arch": "arch", "data": "data", "val_data": "val_data", "split": "split", "seeds": "seeds", "epochs": "epochs",
    "lr": "lr", "momentum": "momentum", "weight_decay": "weight_decay", "batch_size": "batch_size", "k": "k_best",
    "limit": "limit", "val_limit": "val_limit", "conditions": "conditions", "layers": "layers",
    "cache": "cache_features", "init": "init", "holdout": "holdout", "patience": "patience",
}


def _given_settings(ctx: typer.Context, values: dict[str, Any]) -> dict[str, Any]:
    """GridConfig settings of the grid options given on the command line (not left at defaults)."""
    given: dict[str, Any] = {}
    for opt, key in _GRID_OPTIONS.items():
        src = ctx.get_parameter_source(opt)
        if src is None or getattr(src, "name", "DEFAULT") in ("DEFAULT", "DEFAULT_MAP"):
            continue
        v = values[opt]
        if opt == "seeds":
            v = list(range(int(v)))
        elif opt == "conditions":
            v = parse_list(v)
        elif opt == "layers":
            v = sorted({int(x) for x in parse_list(v) or []})
        given[key] = v
    return given


@app.command()
def transfer(
    ctx: typer.Context,
    arch: Optional[str] = typer.Option(None, "--arch", help="Architecture with numbered layers, e.g. convnet8 or convnet8:width=16,fc_width=128."),
    data: Optional[str] = typer.Option(None, help="Training data spec, e.g. mnist or cifar10:PATH:train."),
    val_data: Optional[str] = typer.Option(None, help="Validation data spec (default: the test split of --data)."),
    split: str = typer.Option("random", help="random (a random half split per seed), mnist-0-4, cifar10-living, or a JSON file {\"a\": [...], \"b\": [...]}."),
    seeds: int = typer.Option(3, help="Number of seeds (0..N-1); each gives its own bases and networks."),
    epochs: int = typer.Option(10, help="Training epochs of every network."),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="Grid folder (store, result.json, transfer.png, transfer.csv)."),
    resume: Optional[Path] = typer.Option(None, help="Finish the grid in this folder (its stored settings)."),
    report: Optional[Path] = typer.Option(None, help="Rebuild table, figure and result.json of this grid folder from its store; trains nothing."),
    executor: str = typer.Option("local", help="local (in-process), pool (local processes) or ray."),
    address: Optional[str] = typer.Option(None, help="Ray cluster address (with --executor ray), e.g. auto or ray://host:10001."),
    workers: Optional[int] = typer.Option(None, help="Processes of --executor pool, CPUs of a local Ray (default: all cores)."),
    limit: Optional[int] = typer.Option(None, help="Training samples per task (seeded stratified subset)."),
    val_limit: Optional[int] = typer.Option(None, help="Validation samples per task."),
    lr: float = typer.Option(0.01, help="SGD learning rate (also for fine-tuned copied layers)."),
    momentum: float = typer.Option(0.9),
    weight_decay: float = typer.Option(0.0),
    batch_size: int = typer.Option(128),
    k: int = typer.Option(10, "--k", help="Metric: mean of the k best per-epoch validation accuracies (paper: 10)."),
    layers: Optional[str] = typer.Option(None, help="Comma-separated n to run (default 1..L-1)."),
    conditions: Optional[str] = typer.Option(None, help="Comma-separated subset of BnB,AnB,BnB+,AnB+,random."),
    cache: bool = typer.Option(True, help="Cache frozen layers' outputs (same results, faster)."),
    init: str = typer.Option("kaiming", help="Initialisation: kaiming or default."),
    holdout: float = typer.Option(0.1, help="Fraction of each task's training samples held out to choose the reported epochs (and to early-stop); 0 = choose on the reported test data (optimistic)."),
    patience: Optional[int] = typer.Option(None, help="Early stopping: stop a network when its held-out accuracy has not improved for this many epochs (--epochs is then the maximum)."),
    progress: bool = typer.Option(True, help="Show a progress bar over cells."),
) -> None:
    """Transferability of layers (Yosinski et al. 2014): baseA/baseB and BnB, AnB, BnB+, AnB+, random per n."""
    from ..exceptions import ParameterError
    from ..transfer import GridConfig, TransferStore, make_executor, resume_grid, run_grid, write_outputs

    from .._io import folder_lock

    modes = [m for m in (resume, report) if m is not None]
    if len(modes) > 1:
        raise ParameterError("Give only one of --resume DIR and --report DIR.")
    if report is not None:
        store = TransferStore(report)
        with folder_lock(report):
            result = write_outputs(store)
        _print_result(result, report)
        return
    given = _given_settings(ctx, dict(locals()))
    if resume is not None and out is not None and Path(out).resolve() != Path(resume).resolve():
        raise ParameterError("--resume DIR continues the grid in DIR; leave out --out (or give the same folder).")
    if resume is None and (arch is None or data is None or out is None):
        raise ParameterError("A new grid needs --arch, --data and --out (or --resume DIR / --report DIR).")
    if address is not None and executor != "ray":
        raise ParameterError(f"--address is for --executor ray; got --executor {executor}.")
    ex = make_executor(executor, workers=workers, address=address)
    try:
        with progress_bar(progress) as bar:
            if resume is not None:
                result = resume_grid(resume, executor=ex, progress=bar, settings=given)
                folder = resume
            else:
                cfg = GridConfig(
                    arch=str(arch), data=str(data), val_data=val_data, split=split, seeds=tuple(range(seeds)), epochs=epochs,
                    lr=lr, momentum=momentum, weight_decay=weight_decay, batch_size=batch_size, k_best=k, limit=limit,
                    val_limit=val_limit,
                    conditions=tuple(parse_list(conditions) or ("BnB", "AnB", "BnB+", "AnB+", "random")),
                    layers=tuple(int(v) for v in parse_list(layers)) if layers else None,  # type: ignore[union-attr]
                    cache_features=cache, init=init, holdout=holdout, patience=patience,
                )
                folder = Path(str(out))
                result = run_grid(cfg, folder, executor=ex, progress=bar)
    finally:
        ex.close()
    _print_result(result, folder)
