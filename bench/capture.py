"""Benchmark: capture of every layer (full maps) versus the bare forward pass, time and peak memory.

Issue 17. Two models, every leaf layer, full maps kept in RAM:

* ``mnist-cnn`` (bundled pretrained) over 10,000 MNIST test images;
* ResNet-20 (bundled pretrained, CIFAR-10) over 1,000 CIFAR-10 test images from the shared data
  folder (``LAYERSCOPE_SHARED_DATA``; random inputs if it is absent, said in the output).

Time: ``bare`` (the model over the same batches, no hooks, ``no_grad``, eval), ``before`` (the
``collect_activations`` of ``--before``, read with ``git show`` and loaded as a module) and
``after`` (today's), in one process, interleaved (the order rotates every repeat), median wall and
CPU time, 1 torch thread. ``floor`` writes the same number of bytes into fresh memory, allocated as
the capture allocates it, and nothing else: bare + floor is the least any capture that keeps every
value can cost on this machine (page mapping and memory bandwidth), printed beside the target.
``floor_warm`` writes them into memory already mapped: bare + warm floor is the least it could cost
even if mapping fresh memory were free.

Peak memory: each configuration in a FRESH process (``subprocess`` = fork + exec: after ``exec``
the kernel's high-water mark ``VmHWM`` in ``/proc/self/status`` starts from the new image, unlike
``ru_maxrss``, which keeps the parent's peak across fork + exec). A child loads the model and the
data, runs one small warm-up batch, reads ``VmHWM`` (the base), runs the capture (or the bare pass)
and reads ``VmHWM`` again. ``excess`` = peak - base; the target is excess <= 1.1 x the bytes of
the arrays kept. Children of the three variants are interleaved too; medians.

Usage: python bench/capture.py [--repeats 5] [--mem-repeats 3] [--before REV | none] [--models mnist-cnn,resnet20]
[--json out.json]   (``--before none``: today's capture only, no git needed)
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from _before import load_before

BEFORE_REV = "9117c7a"  # main before issue 17's capture changes


def vm_hwm_bytes() -> int:
    """This process's peak resident set (``VmHWM``), in bytes."""
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("no VmHWM in /proc/self/status")


def setup(which: str) -> tuple[torch.nn.Module, torch.Tensor, torch.Tensor, str]:
    import layerscope as ls

    if which == "mnist-cnn":
        d = ls.load_dataset("mnist:test")
        return ls.load_model("mnist-cnn"), d.x[:10000], d.y[:10000], "10,000 MNIST test images"
    model = ls.load_model("resnet20-cifar10")
    shared = Path(os.environ.get("LAYERSCOPE_SHARED_DATA", ""))
    cifar = shared / "cifar10" / "cifar10_subset.npz"
    if cifar.exists():
        d = ls.load_dataset(f"cifar10:{cifar}:test")
        return model, d.x[:1000], d.y[:1000], "1,000 CIFAR-10 test images"
    g = torch.Generator().manual_seed(0)
    return model, torch.randn(1000, 3, 32, 32, generator=g), torch.zeros(1000, dtype=torch.long), "1,000 random inputs (CIFAR-10 subset absent)"


def bare(model: torch.nn.Module, x: torch.Tensor, batch: int) -> None:
    with torch.no_grad():
        model.eval()
        for s in range(0, len(x), batch):
            model(x[s : s + batch])


def write_floor(total: int, block: int, into: np.ndarray | None = None) -> None:
    """The memory cost alone: fill ``total`` bytes with ``np.copyto`` in blocks of ``block`` bytes from
    one small source (what any capture must at least do; the compute is not included).

    ``into=None``: fresh memory, allocated as the capture allocates its arrays (``np.empty``, mapped
    by the kernel at the first write of each page). ``into=array``:
    memory already mapped and written once (the ``warm`` floor: no page mapping at all, only the
    bytes moved; no capture that keeps every value in RAM can cost less)."""
    out = np.empty(total // 4, dtype=np.float32) if into is None else into
    src = np.ones(block // 4, dtype=np.float32)
    for s in range(0, len(out), len(src)):
        np.copyto(out[s : s + len(src)], src[: len(out) - s])


def timed(fn: Callable[[], Any]) -> tuple[float, float, Any]:
    c0, t0 = time.process_time(), time.perf_counter()
    out = fn()
    return time.perf_counter() - t0, time.process_time() - c0, out


def child(which: str, variant: str, batch: int, before_rev: str) -> None:
    import layerscope as ls

    torch.set_num_threads(1)
    model, x, y, _ = setup(which)
    names = [r.name for r in ls.list_layers(model) if r.is_leaf]
    ds = torch.utils.data.TensorDataset(x, y)
    mod = load_before(before_rev) if variant == "before" else ls
    bare(model, x[:2], 2)  # warm-up: lazy init of kernels and allocator
    base = vm_hwm_bytes()
    kept = 0
    if variant == "bare":
        w, c, _ = timed(lambda: bare(model, x, batch))
    else:
        w, c, acts = timed(lambda: mod.collect_activations(model, ds, names, batch_size=batch))
        kept = int(sum(a.nbytes for a in acts.arrays.values()))
    print(json.dumps({"base": base, "peak": vm_hwm_bytes(), "kept": kept, "wall": w, "cpu": c}))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--mem-repeats", type=int, default=3)
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--before", default=BEFORE_REV)
    ap.add_argument("--models", default="mnist-cnn,resnet20")
    ap.add_argument("--json", default=None)
    ap.add_argument("--child", nargs=2, default=None, metavar=("MODEL", "VARIANT"))
    args = ap.parse_args()
    if args.child:
        child(args.child[0], args.child[1], args.batch, args.before)
        return

    import layerscope as ls

    torch.set_num_threads(1)
    before = None if args.before == "none" else load_before(args.before)
    variants = ("before", "after") if before is not None else ("after",)
    report: dict[str, Any] = {"load_average_start": os.getloadavg(), "batch": args.batch, "repeats": args.repeats,
                              "mem_repeats": args.mem_repeats, "before": args.before, "threads": 1, "models": {}}
    print(f"load average {os.getloadavg()[0]:.2f} {os.getloadavg()[1]:.2f}; 1 torch thread; median of {args.repeats}, interleaved")
    for which in args.models.split(","):
        model, x, y, note = setup(which)
        names = [r.name for r in ls.list_layers(model) if r.is_leaf]
        ds = torch.utils.data.TensorDataset(x, y)
        probe = ls.collect_activations(model, ds, names, batch_size=args.batch, indices=np.arange(args.batch))
        row_bytes = sum(a[0].nbytes for a in probe.arrays.values())
        kept_bytes = row_bytes * len(x)
        runs: dict[str, Callable[[], Any]] = {
            "bare": lambda: bare(model, x, args.batch),
            **({"before": lambda: before.collect_activations(model, ds, names, batch_size=args.batch)} if before else {}),
            "after": lambda: ls.collect_activations(model, ds, names, batch_size=args.batch),
            "floor": lambda: write_floor(kept_bytes, args.batch * row_bytes),
            "floor_warm": lambda: write_floor(kept_bytes, args.batch * row_bytes, warm),
        }
        warm = np.ones(kept_bytes // 4, dtype=np.float32)  # mapped and written once, reused by every floor_warm run
        # equality on the first 2 batches (holding both full captures at once would double the memory)
        sub = np.arange(min(len(x), 2 * args.batch))
        same = None
        if before is not None:
            a_old = before.collect_activations(model, ds, names, batch_size=args.batch, indices=sub)
            a_new = ls.collect_activations(model, ds, names, batch_size=args.batch, indices=sub)
            same = all(np.array_equal(a_old[n], a_new[n]) for n in names)
            del a_old, a_new
        wall: dict[str, list[float]] = {k: [] for k in runs}
        cpu: dict[str, list[float]] = {k: [] for k in runs}
        order = list(runs)
        for k in order:  # one untimed run of each first: the first run of a process pays for cold caches
            del_me = runs[k]()
            del del_me
        for rep in range(args.repeats):
            for k in order[rep % len(order):] + order[: rep % len(order)]:
                w, c, o = timed(runs[k])
                wall[k].append(w)
                cpu[k].append(c)
                del o  # each run's arrays are freed before the next run
        floor_ratio = (statistics.median(wall["bare"]) + statistics.median(wall["floor"])) / statistics.median(wall["bare"])
        floor_cpu = (statistics.median(cpu["bare"]) + statistics.median(cpu["floor"])) / statistics.median(cpu["bare"])
        warm_ratio = (statistics.median(wall["bare"]) + statistics.median(wall["floor_warm"])) / statistics.median(wall["bare"])
        warm_cpu = (statistics.median(cpu["bare"]) + statistics.median(cpu["floor_warm"])) / statistics.median(cpu["bare"])
        del warm
        kept = kept_bytes
        med = {k: statistics.median(v) for k, v in wall.items()}
        cmed = {k: statistics.median(v) for k, v in cpu.items()}
        morder = ["bare", *variants]
        mem: dict[str, list[dict[str, float]]] = {k: [] for k in morder}
        for rep in range(args.mem_repeats):
            for k in morder[rep % len(morder):] + morder[: rep % len(morder)]:
                out = subprocess.run([sys.executable, __file__, "--child", which, k, "--batch", str(args.batch),
                                      "--before", args.before], capture_output=True, text=True, check=True)
                mem[k].append(json.loads(out.stdout.strip().splitlines()[-1]))
        excess = {k: statistics.median(r["peak"] - r["base"] for r in v) for k, v in mem.items()}
        m = {
            "data": note, "layers": len(names), "kept_mb": kept / 2**20, "equal_to_before": same,
            "wall_s": med, "cpu_s": cmed,
            "ratio_wall": {k: med[k] / med["bare"] for k in variants},
            "ratio_cpu": {k: cmed[k] / cmed["bare"] for k in variants},
            "floor_ratio_wall": floor_ratio, "floor_ratio_cpu": floor_cpu,
            "warm_floor_ratio_wall": warm_ratio, "warm_floor_ratio_cpu": warm_cpu,
            "peak_excess_mb": {k: v / 2**20 for k, v in excess.items()},
            "peak_over_kept": {k: excess[k] / kept for k in variants},
            "fresh_wall_s": {k: statistics.median(r["wall"] for r in v) for k, v in mem.items()},
        }
        report["models"][which] = m
        print(f"{which}, {note}: {len(names)} layers, {kept / 2**20:.0f} MB kept"
              + (f"; after equal to before (first {len(sub)} rows): {same}" if before is not None else ""))
        for label, t, r in (("wall", med, m["ratio_wall"]), ("cpu ", cmed, m["ratio_cpu"])):
            print(f"  {label}  bare {t['bare']:.3f}s  " + "  ".join(f"{k} {t[k]:.3f}s ({r[k]:.3f}x)" for k in variants)
                  + ("   target <= 1.15x" if label == "wall" else ""))
        print(f"  floor (bare + writing the kept bytes into fresh memory): {floor_ratio:.3f}x wall, {floor_cpu:.3f}x cpu")
        print(f"  warm floor (bare + writing them into memory already mapped): {warm_ratio:.3f}x wall, {warm_cpu:.3f}x cpu")
        print(f"  peak over base, fresh processes: bare {m['peak_excess_mb']['bare']:.0f} MB, "
              + ", ".join(f"{k} {m['peak_excess_mb'][k]:.0f} MB ({m['peak_over_kept'][k]:.2f}x kept)" for k in variants)
              + "   target <= 1.10x")
    report["load_average_end"] = os.getloadavg()
    print(f"load average at the end {os.getloadavg()[0]:.2f}")
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(report, indent=1))


if __name__ == "__main__":
    sys.exit(main())
