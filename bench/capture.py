"""Benchmark: capture over 10,000 MNIST test inputs versus the bare forward pass.

Baseline: ``model(x)`` over the same batches with no hooks (``torch.no_grad``, eval mode).
Measured side by side in one run, interleaved, median over repeats; printed as ratios.

1. ``mnist-cnn`` (bundled pretrained CNN), every leaf layer, full maps kept in RAM.
2. Rauber et al.'s CNN (``cnn:dense=512x128``, untrained weights; same cost), every leaf layer,
   conv maps reduced by spatial mean inside the hook.
3. ``mnist-cnn`` with a memory budget: arrays stream to .npy files; peak RSS of a fresh process
   doing the capture versus a fresh process doing only the bare forward pass.

Targets (issue 2): time ratio <= 1.10; peak RSS <= baseline process + budget + 200 MB.
The best-of-N ratio is printed beside the median: on a shared VM, large fresh allocations (the
captured arrays) are sometimes slowed by the host's memory reclaim, which only the capture side pays.

Usage: python bench/capture.py [--repeats 5] [--n 10000] [--budget-mb 64]
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import tempfile
import time

import torch


def _bare(model: torch.nn.Module, x: torch.Tensor, batch: int) -> None:
    with torch.no_grad():
        for i in range(0, len(x), batch):
            model(x[i : i + batch])


def _child(mode: str, n: int, budget_mb: int, batch: int) -> None:
    """Run one configuration in this (fresh) process and print its peak RSS in MB."""
    import numpy as np

    import layerscope as ls

    model = ls.load_model("mnist-cnn")
    data = ls.load_dataset("mnist:test").subset(np.arange(n))
    names = [r.name for r in ls.list_layers(model) if r.is_leaf]
    if mode == "bare":
        _bare(model, data.x, batch)
    else:
        with tempfile.TemporaryDirectory() as d:
            acts = ls.collect_activations(
                model, data, names, batch_size=batch, predictions=True, memory_budget=budget_mb * 2**20, out_dir=d
            )
            total = sum(a.nbytes for a in acts.arrays.values())
            assert isinstance(next(iter(acts.arrays.values())), np.memmap)
            print(json.dumps({"bytes": total}), file=sys.stderr)
    print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--n", type=int, default=10000)
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--budget-mb", type=int, default=64)
    ap.add_argument("--child", default=None)
    args = ap.parse_args()
    if args.child:
        _child(args.child, args.n, args.budget_mb, args.batch)
        return

    import numpy as np

    import layerscope as ls
    from layerscope.models import build_model

    torch.set_num_threads(1)
    data = ls.load_dataset("mnist:test").subset(np.arange(args.n))
    configs = {
        "mnist-cnn, all layers, full maps": (ls.load_model("mnist-cnn"), None),
        "Rauber CNN, all layers, spatial mean": (build_model("cnn:dense=512x128", (1, 28, 28), 10).eval(), "mean"),
    }
    print(f"capture vs bare forward, {args.n} MNIST inputs, batch {args.batch}, 1 thread, median of {args.repeats}")
    for label, (model, reduce) in configs.items():
        names = [r.name for r in ls.list_layers(model) if r.is_leaf]
        t_bare, t_cap = [], []
        for _ in range(args.repeats):
            t0 = time.perf_counter()
            _bare(model, data.x, args.batch)
            t_bare.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            acts = ls.collect_activations(model, data, names, batch_size=args.batch, reduce=reduce, predictions=True)
            t_cap.append(time.perf_counter() - t0)
        mb = sum(a.nbytes for a in acts.arrays.values()) / 2**20
        b, c = statistics.median(t_bare), statistics.median(t_cap)
        print(
            f"  {label}: {len(names)} layers, {mb:.0f} MB captured; capture/bare = {c / b:.3f}x median "
            f"({min(t_cap) / min(t_bare):.3f}x best-of-{args.repeats}) (target <= 1.10)"
        )

    def run_child(mode: str) -> float:
        out = subprocess.run(
            [sys.executable, __file__, "--child", mode, "--n", str(args.n), "--budget-mb", str(args.budget_mb), "--batch", str(args.batch)],
            capture_output=True, text=True, check=True,
        )
        return float(out.stdout.strip().splitlines()[-1])

    rss_bare = statistics.median(run_child("bare") for _ in range(3))
    rss_cap = statistics.median(run_child("stream") for _ in range(3))
    limit = rss_bare + args.budget_mb + 200
    print(
        f"  peak RSS, mnist-cnn all layers streamed with a {args.budget_mb} MB budget: {rss_cap:.0f} MB vs bare-forward "
        f"process {rss_bare:.0f} MB; excess {rss_cap - rss_bare:.0f} MB (target <= budget + 200 = {args.budget_mb + 200} MB): "
        f"{'OK' if rss_cap <= limit else 'OVER'}"
    )


if __name__ == "__main__":
    main()
