"""Benchmark of the transfer grid (Yosinski et al. 2014).

1. One frozen cell (AnB at n copied layers) trained with and without the feature cache, in the
   same run, alternating, median over repeats; prints the speed-up (target >= 3x) and checks the
   two trained networks are bitwise equal.
2. ``--grid``: wall time of the whole MNIST grid (2 seeds, every n and condition) on a process
   pool; note the machine load while it runs.

    python bench/transfer.py [--n 5] [--repeats 3] [--epochs 3] [--limit 6000] [--grid --workers 2]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import tempfile
import time

import torch

from layerscope.models import build_model
from layerscope.transfer import GridConfig, PoolExecutor, fit_network, prepare_network, run_grid
from layerscope.transfer.grid import task_data


def bench_cell(args: argparse.Namespace) -> None:
    torch.set_num_threads(1)
    cfg = GridConfig(arch=args.arch, data="mnist", split="mnist-0-4", seeds=(0,), epochs=args.epochs, limit=args.limit, val_limit=args.val_limit)
    tr, va, split = task_data(cfg, 0, "B")
    torch.manual_seed(0)
    base = build_model(args.arch, tr.input_shape, len(split.a))  # stands in for a trained baseA (same cost)
    times: dict[bool, list[float]] = {True: [], False: []}
    nets: dict[bool, torch.nn.Module] = {}
    for _ in range(args.repeats):
        for cache in (False, True):
            net = prepare_network(args.arch, tr.input_shape, len(tr.classes), args.n, True, base, random_state=7)
            t = time.perf_counter()
            log = fit_network(net, tr, va, n_frozen=args.n, epochs=args.epochs, lr=0.01, random_state=7, cache=cache)
            times[cache].append(time.perf_counter() - t)
            assert log.cached == cache
            nets[cache] = net
    same = all(torch.equal(p, q) for p, q in zip(nets[True].state_dict().values(), nets[False].state_dict().values()))
    slow, fast = statistics.median(times[False]), statistics.median(times[True])
    print(f"frozen cell AnB n={args.n}, {args.arch}, {len(tr)} train / {len(va)} val samples, {args.epochs} epochs, 1 thread")
    print(f"  uncached (frozen layers run every epoch): median {slow:.2f} s  {[round(t, 2) for t in times[False]]}")
    print(f"  cached (frozen outputs computed once):    median {fast:.2f} s  {[round(t, 2) for t in times[True]]}")
    print(f"  speed-up: {slow / fast:.1f}x (target >= 3x); trained networks bitwise equal: {same}")
    print(f"  load average during the run: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")


def bench_grid(args: argparse.Namespace) -> None:
    cfg = GridConfig(
        arch=args.arch, data="mnist", split="mnist-0-4", seeds=(0, 1), epochs=5, k_best=3, limit=args.limit,
        val_limit=args.val_limit, lr=0.01,
    )
    out = tempfile.mkdtemp(prefix="transfer-bench-")
    try:
        t = time.perf_counter()
        with PoolExecutor(args.workers) as pool:
            res = run_grid(cfg, out, executor=pool)
        wall = time.perf_counter() - t
        print(f"whole MNIST grid: {res.cells_done} cells, {args.workers} workers, wall {wall:.0f} s "
              f"(sum of cell times {sum(r['seconds'] for r in res.table):.0f} s); load average {os.getloadavg()[0]:.1f}")
    finally:
        shutil.rmtree(out, ignore_errors=True)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--arch", default="convnet8:width=8,fc_width=64")
    p.add_argument("--n", type=int, default=5)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--epochs", type=int, default=5)
    p.add_argument("--limit", type=int, default=6000)
    p.add_argument("--val-limit", type=int, default=2000)
    p.add_argument("--grid", action="store_true", help="also time the whole MNIST grid")
    p.add_argument("--workers", type=int, default=2)
    args = p.parse_args()
    bench_cell(args)
    if args.grid:
        bench_grid(args)


if __name__ == "__main__":
    main()
