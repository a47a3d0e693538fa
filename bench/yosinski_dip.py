"""Yosinski et al. 2014's fragile co-adaptation dip, looked for with held-out epoch selection.

Yosinski, Clune, Bengio & Lipson (NIPS 2014) saw BnB (the first n layers of baseB copied and
frozen, the rest retrained on B) fall below baseB at middle n (−3 points at n = 5 of 8 on
ImageNet) and recover at high n. Our first grids (5 epochs) had an undertrained baseB that BnB
beat. Here every network, bases included, is trained until early stopping on a held-out 10 % of
its task's training samples (patience ``--patience`` epochs, at most ``--epochs``), and is
reported at the ``--k`` epoch(s) with the best held-out accuracy (test accuracy there), so the
selection never sees the reported test data (``layerscope.transfer.grid``).

Two grids, ``--seeds`` seeds each (3 by default; a seed gives its own bases, init and order):

* MNIST, split ``mnist-0-4`` (A = digits 0–4, B = 5–9), ``--mnist-limit`` training samples per
  task (stratified subset of the 60k), ``--mnist-val`` test samples per task;
* CIFAR-10 subset of ``LAYERSCOPE_SHARED_DATA`` (4,000 train / 1,000 test images), split
  ``cifar10-living`` (A = 6 animal classes, B = airplane, automobile, ship, truck),
  ``--cifar-limit`` training samples per task, all test samples of the task.

Architecture ``--arch`` (ConvNet8: 5 conv + 3 fc numbered layers, like the paper's 8-layer
AlexNet, but narrow), SGD lr ``--lr`` (0.005), momentum 0.9, batch 128, Kaiming init, n in ``--layers``
for BnB, AnB, BnB+, AnB+ on MNIST and BnB, AnB on CIFAR (the fine-tuned conditions there and the
random-filter baseline everywhere are left out for time on 2 shared cores). Output:
``bench/results/yosinski_dip.json`` and ``.md``: per n the mean over seeds with a t-based 95 %
confidence interval (``t_{0.975, s−1} · sd / sqrt(s)``) of baseB, BnB, BnB+, AnB, AnB+, the paired
co-adaptation effect baseB − BnB with its interval, and a plain statement: dip found or not.

Run (resumable: a killed run continues where it stopped when started again with the same
settings)::

    LAYERSCOPE_SHARED_DATA=... nice -n 10 python bench/yosinski_dip.py [--workers 2] [--work DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from scipy import stats

from layerscope.transfer import GridConfig, PoolExecutor, TransferResult, TransferStore, build_result, run_grid

RESULTS = Path(__file__).resolve().parent / "results"
COLUMNS = ("baseB", "BnB", "BnB+", "AnB", "AnB+")


def ci95(values: list[float]) -> dict[str, float]:
    """Mean and t-based 95 % interval over seeds (half-width t_{0.975, s-1} * sd / sqrt(s))."""
    a = np.asarray(values, dtype=np.float64)
    s = len(a)
    half = float(stats.t.ppf(0.975, s - 1) * a.std(ddof=1) / np.sqrt(s)) if s > 1 else float("nan")
    return {"mean": float(a.mean()), "lo": float(a.mean() - half), "hi": float(a.mean() + half), "n_seeds": s}


def summarise(result: TransferResult) -> dict[str, Any]:
    by: dict[tuple[str, int], dict[int, float]] = {}
    epochs: dict[str, list[int]] = {}
    for r in result.table:
        by.setdefault((r["condition"], r["n"]), {})[r["seed"]] = r["metric"]
        if r.get("epochs_run") is not None:
            epochs.setdefault(r["condition"], []).append(int(r["epochs_run"]))
    base = by.get(("baseB", 0), {})
    rows = []
    for n in sorted({n for (_c, n) in by if n > 0}):
        row: dict[str, Any] = {"n": n, "baseB": ci95(list(base.values())) if base else None}
        for c in COLUMNS[1:]:
            v = by.get((c, n))
            row[c] = ci95(list(v.values())) if v else None
        bnb = by.get(("BnB", n), {})
        seeds = sorted(set(base) & set(bnb))
        row["co_adaptation"] = ci95([base[s] - bnb[s] for s in seeds]) if seeds else None
        rows.append(row)
    mean_epochs = {c: float(np.mean(v)) for c, v in epochs.items()}
    return {"rows": rows, "baseA": ci95(list(by.get(("baseA", 0), {}).values())) if by.get(("baseA", 0)) else None,
            "mean_epochs_run": mean_epochs}


def verdict(summary: dict[str, Any], n_layers: int) -> str:
    """Dip found iff some middle n (2 .. L-2) has a paired baseB - BnB interval entirely above 0."""
    rows = summary["rows"]
    middle = [r for r in rows if 2 <= r["n"] <= n_layers - 2 and r["co_adaptation"] is not None]
    hits = [r for r in middle if r["co_adaptation"]["lo"] > 0]
    worst = max(middle, key=lambda r: r["co_adaptation"]["mean"]) if middle else None
    if worst is None:
        return "no middle n was run"
    e = worst["co_adaptation"]
    text = (f"largest baseB − BnB at middle n: n = {worst['n']}, {100 * e['mean']:+.2f} points "
            f"(95 % CI {100 * e['lo']:+.2f} … {100 * e['hi']:+.2f})")
    if hits:
        ns = ", ".join(str(r["n"]) for r in hits)
        last = rows[-1]["BnB"]["mean"] if rows[-1]["BnB"] else float("nan")
        return f"DIP FOUND at n = {ns}: {text}; BnB at n = {rows[-1]['n']}: {100 * last:.2f} %"
    return f"no dip: no middle n has a baseB − BnB interval above 0; {text}"


def fmt(c: dict[str, float] | None, scale: float = 100.0) -> str:
    if c is None:
        return "-"
    return f"{scale * c['mean']:.2f} [{scale * c['lo']:.2f}, {scale * c['hi']:.2f}]"


def markdown(name: str, cfg: GridConfig, summary: dict[str, Any], text: str, seconds: float, note: str | None = None) -> str:
    wall = f"{seconds / 60:.1f} min" if np.isfinite(seconds) else "n/a (summarised from stored cells)"
    lines = [f"### {name}: `{cfg.arch}`, split `{cfg.split}`, seeds {list(cfg.seeds)}",
             "",
             *([f"*{note}*", ""] if note else []),
             f"selection: {cfg.selection}; at most {cfg.epochs} epochs; limit {cfg.limit}, val_limit {cfg.val_limit}; "
             f"mean epochs run per condition: " + ", ".join(f"{c} {v:.1f}" for c, v in sorted(summary["mean_epochs_run"].items())),
             f"baseA (on A's test data): {fmt(summary['baseA'])}; wall time {wall}; sum of the cells' "
             f"training times {summary.get('cell_seconds', 0) / 60:.1f} min",
             f"cells finished: {summary.get('cells', '?')} of {summary.get('cells_total', '?')}",
             "",
             "Test accuracy on B in %, mean over seeds [t-based 95 % CI]; co-adaptation = baseB − BnB paired by seed.",
             "",
             "| n | baseB | BnB | BnB+ | AnB | AnB+ | baseB − BnB |",
             "|---|---|---|---|---|---|---|"]
    for r in summary["rows"]:
        lines.append(f"| {r['n']} | " + " | ".join(fmt(r[c]) for c in COLUMNS) + f" | {fmt(r['co_adaptation'])} |")
    lines += ["", f"**{text}**", ""]
    return "\n".join(lines)


def merge(cfg: GridConfig, folder: Path, sources: list[Path]) -> TransferStore:
    """Create the grid ``cfg`` in ``folder`` and copy into it the finished cells of ``sources``.

    A source must hold a grid whose settings equal ``cfg`` except ``conditions`` and ``layers``
    (refused otherwise); only cells of ``cfg``'s plan are copied, bases with their weights.
    """
    import shutil

    from layerscope.transfer import plan_cells
    from layerscope.transfer.grid import count_layers, _load

    n_layers = count_layers(cfg.arch, tuple(_load(cfg.data).input_shape))
    store = TransferStore.create(folder, cfg, n_layers)
    wanted = {c.id for c in plan_cells(cfg, n_layers)}
    free = {"conditions", "layers"}
    for src in sources:
        other = TransferStore(src)
        a, b = other.config.to_dict(), cfg.to_dict()
        diff = {k for k in a if k not in free and a[k] != b[k]}
        if diff:
            raise SystemExit(f"{src} has other training settings ({sorted(diff)}); its cells cannot be merged")
        for rec in sorted((src / "cells").glob("*.json")):
            if rec.stem in wanted and not store.cell_path(rec.stem).exists():
                base = src / "bases" / f"{rec.stem}.safetensors"
                if base.exists():
                    shutil.copyfile(base, store.base_path(rec.stem))
                shutil.copyfile(rec, store.cell_path(rec.stem))
    return store


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--arch", default="convnet8:width=8,fc_width=64")
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--epochs", type=int, default=40, help="maximum epochs per network")
    ap.add_argument("--patience", type=int, default=6)
    ap.add_argument("--lr", type=float, default=0.005,
                    help="SGD learning rate (0.01 made the plain 8-layer net blow up and early-stop at 60-75 %% in 2 of 6 bases)")
    ap.add_argument("--k", type=int, default=1, help="epochs reported per network (best held-out ones)")
    ap.add_argument("--holdout", type=float, default=0.1)
    ap.add_argument("--mnist-limit", type=int, default=1000)
    ap.add_argument("--cifar-limit", type=int, default=1200)
    ap.add_argument("--cifar-conditions", default="BnB,AnB", help="the fine-tuned conditions are left out on CIFAR for time")
    ap.add_argument("--mnist-conditions", default="BnB,AnB,BnB+,AnB+")
    ap.add_argument("--mnist-val", type=int, default=1000)
    ap.add_argument("--layers", default="1,4,7", help="n to run (first, middle, last; the others left out for time on 2 shared cores)")
    ap.add_argument("--only", choices=("mnist", "cifar"), default=None)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--report-only", action="store_true", help="summarise the cells finished so far; train nothing")
    ap.add_argument("--note", default=None, help="a sentence printed under the grid's heading (e.g. how its cells were computed)")
    ap.add_argument("--merge-from", type=Path, nargs="*", default=[],
                    help="work folders of grids with the same training settings (other conditions / n): their finished "
                         "cells are copied into this grid (a cell's training depends only on the settings, its seed, "
                         "condition and n), then the grid is summarised; trains nothing")
    ap.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "layerscope-yosinski-dip")
    args = ap.parse_args()
    torch.set_num_threads(1)
    shared = os.environ.get("LAYERSCOPE_SHARED_DATA")
    layers = tuple(int(v) for v in args.layers.split(","))
    common = dict(arch=args.arch, seeds=tuple(range(args.seeds)), epochs=args.epochs, patience=args.patience, k_best=args.k,
                  holdout=args.holdout, lr=args.lr, layers=layers)
    grids: list[tuple[str, GridConfig]] = []
    if args.only in (None, "mnist"):
        grids.append(("MNIST", GridConfig(data="mnist", split="mnist-0-4", limit=args.mnist_limit, val_limit=args.mnist_val,
                                          conditions=tuple(args.mnist_conditions.split(",")), **common)))
    if args.only in (None, "cifar"):
        if not shared:
            raise SystemExit("set LAYERSCOPE_SHARED_DATA to the shared data folder (for the CIFAR-10 subset)")
        data = f"cifar10:{Path(shared) / 'cifar10' / 'cifar10_subset.npz'}"
        grids.append(("CIFAR-10 subset", GridConfig(data=data, split="cifar10-living", limit=args.cifar_limit,
                                                    conditions=tuple(args.cifar_conditions.split(",")), **common)))
    RESULTS.mkdir(exist_ok=True)
    out_json = RESULTS / "yosinski_dip.json"
    doc: dict[str, Any] = json.loads(out_json.read_text()) if out_json.exists() else {}
    doc["setup"] = {"python": platform.python_version(), "torch": torch.__version__, "workers": args.workers,
                    "torch_threads_per_worker": 1}
    for name, cfg in grids:
        t0 = time.time()
        load0 = os.getloadavg()
        folder = args.work / name.split()[0].lower()
        if args.merge_from:
            store = merge(cfg, folder, [d / folder.name for d in args.merge_from])
            result = build_result(store)
            t0 = float("nan")  # merged: no wall time of its own
        elif args.report_only:
            if not (folder / "grid.json").exists():
                continue
            store = TransferStore(folder)
            cfg = store.config  # the stored grid's settings, whatever the options say
            result = build_result(store)
            t0 = float("nan")  # summarised later: no wall time of its own
        else:
            ex = PoolExecutor(workers=args.workers)
            try:
                result = run_grid(cfg, folder, executor=ex)
            finally:
                ex.close()
        seconds = time.time() - t0
        summary = summarise(result)
        summary["cells"], summary["cells_total"] = result.cells_done, result.cells_total
        summary["cell_seconds"] = float(sum(r["seconds"] for r in result.table))
        text = verdict(summary, result.n_layers)
        cfg_doc = cfg.to_dict()
        cfg_doc["data"] = cfg.data.replace(shared or "\0", "$LAYERSCOPE_SHARED_DATA")
        cfg_doc.pop("val_data", None)
        doc[name] = {"config": cfg_doc, "selection": cfg.selection, "summary": summary, "verdict": text,
                     "cells": result.cells_done, "cells_total": result.cells_total, "seconds": round(seconds, 1),
                     "load_average_start": [round(v, 2) for v in load0],
                     "load_average_end": [round(v, 2) for v in os.getloadavg()],
                     "markdown": markdown(name, cfg, summary, text, seconds, args.note)}
        print(doc[name]["markdown"], flush=True)
        out_json.write_text(json.dumps(doc, indent=2) + "\n")
    md = ["# Yosinski et al. 2014: the co-adaptation dip, with held-out selection", "",
          "Produced by `bench/yosinski_dip.py` (see its docstring for the setup).", ""]
    for name in ("MNIST", "CIFAR-10 subset"):
        if name in doc:
            md += [doc[name]["markdown"],
                   f"load average (1, 5, 15 min) at start {doc[name]['load_average_start']}, at end {doc[name]['load_average_end']}", ""]
    (RESULTS / "yosinski_dip.md").write_text("\n".join(md))


if __name__ == "__main__":
    main()
