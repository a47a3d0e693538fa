"""Benchmark of the transfer grid (Yosinski et al. 2014).

1. One frozen cell (AnB at n copied layers) trained with and without the feature cache, in the
   same run, interleaved (the order alternates every repeat), medians over repeats of wall and CPU
   time (``time.process_time``, one thread), load average before each run; prints the speed-ups
   (target >= 3x), checks the two trained networks are bitwise equal and writes
   ``bench/results/transfer.json``.
2. ``--grid``: wall time of the whole MNIST grid (2 seeds, every n and condition) on a process
   pool; note the machine load while it runs.

    python bench/transfer.py [--n 5] [--repeats 3] [--epochs 3] [--limit 6000] [--grid --workers 2]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import tempfile
import time
from pathlib import Path

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
    cpus: dict[bool, list[float]] = {True: [], False: []}
    loads: list[float] = []
    nets: dict[bool, torch.nn.Module] = {}
    for r in range(args.repeats):
        for cache in ((False, True) if r % 2 == 0 else (True, False)):
            net = prepare_network(args.arch, tr.input_shape, len(tr.classes), args.n, True, base, random_state=7)
            loads.append(os.getloadavg()[0])
            t, c = time.perf_counter(), time.process_time()
            log = fit_network(net, tr, va, n_frozen=args.n, epochs=args.epochs, lr=0.01, random_state=7, cache=cache)
            times[cache].append(time.perf_counter() - t)
            cpus[cache].append(time.process_time() - c)
            if log.cached != cache:
                raise SystemExit(f"fit_network(cache={cache}) reported cached={log.cached}")
            nets[cache] = net
    same = all(torch.equal(p, q) for p, q in zip(nets[True].state_dict().values(), nets[False].state_dict().values()))
    slow, fast = statistics.median(times[False]), statistics.median(times[True])
    cslow, cfast = statistics.median(cpus[False]), statistics.median(cpus[True])
    print(f"frozen cell AnB n={args.n}, {args.arch}, {len(tr)} train / {len(va)} val samples, {args.epochs} epochs, 1 thread")
    print(f"  uncached (frozen layers run every epoch): median wall {slow:.2f} s, CPU {cslow:.2f} s")
    print(f"  cached (frozen outputs computed once):    median wall {fast:.2f} s, CPU {cfast:.2f} s")
    print(f"  speed-up: wall {slow / fast:.1f}x, CPU {cslow / cfast:.1f}x (target >= 3x); trained networks bitwise equal: {same}")
    print(f"  load average before the runs: median {statistics.median(loads):.1f} on {os.cpu_count()} cores")
    out = Path(args.out) if args.out else Path(__file__).resolve().parent / "results" / "transfer.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps({
        "cell": f"AnB n={args.n}", "arch": args.arch, "train": len(tr), "val": len(va), "epochs": args.epochs,
        "repeats": args.repeats, "threads": 1,
        "uncached": {"wall_s": [round(t, 3) for t in times[False]], "cpu_s": [round(t, 3) for t in cpus[False]]},
        "cached": {"wall_s": [round(t, 3) for t in times[True]], "cpu_s": [round(t, 3) for t in cpus[True]]},
        "speedup_wall": round(slow / fast, 2), "speedup_cpu": round(cslow / cfast, 2), "bitwise_equal": same,
        "load_before_runs": [round(v, 2) for v in loads]}, indent=1))


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
    p.add_argument("--out", default=None, help="cell timings as JSON (default: bench/results/transfer.json)")
    args = p.parse_args()
    bench_cell(args)
    if args.grid:
        bench_grid(args)


if __name__ == "__main__":
    main()
