"""Benchmark: the Zarr store against the ``.npy`` files: write (capture) time, size, read time.

Rauber et al.'s CNN (:class:`layerscope.models.reference.RauberCNN`, seeded random weights; the
store's cost depends on the values' compressibility, so ReLU zeros matter: trained weights give
about as many zeros) over ``--n`` MNIST training images, every leaf layer, full maps, batch 256,
1 torch thread. Variants, interleaved (order rotates), medians of ``--repeats``:

* ``npy``:  ``collect_activations(..., memory_budget=0)``: every layer streamed to ``.npy``;
* ``zarr``: ``collect_activations(..., store="zarr")``: Blosc/LZ4 + shuffle chunks of 256 rows.

Reads: every layer whole (``np.asarray``; memory-mapped ``.npy`` copied to RAM), and 1,000 random
rows of every layer (``as_matrix(a, rows)``), cold page cache not forced (the OS caches both).

Usage: python bench/capture_store.py [--n 5000] [--repeats 3] [--json bench/results/capture_store.json]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch


def disk_bytes(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=5000)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--json", default=None)
    args = ap.parse_args()

    import layerscope as ls
    from layerscope.models.reference import RauberCNN
    from layerscope.store import as_matrix

    torch.set_num_threads(1)
    torch.manual_seed(0)
    model = RauberCNN().eval()
    data = ls.load_dataset("mnist:train").subset(np.arange(args.n))
    names = [r.name for r in ls.list_layers(model) if r.is_leaf]
    rows = np.sort(np.random.default_rng(0).choice(args.n, min(1000, args.n), replace=False))
    kinds = {"npy": {"memory_budget": 0}, "zarr": {"store": "zarr"}}
    res: dict[str, dict[str, list[float]]] = {k: {"write_wall": [], "write_cpu": [], "read_all": [], "read_rows": [], "bytes": []} for k in kinds}
    root = Path(tempfile.mkdtemp(prefix="ls-store-bench-"))
    load0 = os.getloadavg()
    try:
        order = list(kinds)
        for rep in range(args.repeats):
            for k in order[rep % 2:] + order[: rep % 2]:
                out = root / f"{k}{rep}"
                c0, t0 = time.process_time(), time.perf_counter()
                acts = ls.collect_activations(model, data, names, batch_size=256, out_dir=out, **kinds[k])
                res[k]["write_wall"].append(time.perf_counter() - t0)
                res[k]["write_cpu"].append(time.process_time() - c0)
                res[k]["bytes"].append(disk_bytes(out))
                back = ls.Activations.load(out)
                t0 = time.perf_counter()
                for n in names:
                    np.asarray(back[n]).sum()
                res[k]["read_all"].append(time.perf_counter() - t0)
                t0 = time.perf_counter()
                for n in names:
                    as_matrix(back[n], rows)
                res[k]["read_rows"].append(time.perf_counter() - t0)
                del acts, back
                shutil.rmtree(out)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    med = {k: {m: statistics.median(v) for m, v in r.items()} for k, r in res.items()}
    raw = med["npy"]["bytes"]
    print(f"Rauber CNN (random seed-0 weights), {args.n} MNIST, {len(names)} layers, full maps; load {load0[0]:.1f}; median of {args.repeats}")
    for k, m in med.items():
        print(f"  {k:4s}: write {m['write_wall']:.1f}s wall / {m['write_cpu']:.1f}s cpu, {m['bytes'] / 1e9:.2f} GB on disk "
              f"({m['bytes'] / raw:.2f}x npy), read all {m['read_all']:.1f}s, read {len(rows)} random rows {m['read_rows']:.2f}s")
    doc: dict[str, Any] = {"n": args.n, "repeats": args.repeats, "layers": len(names), "load_average_start": load0,
                           "load_average_end": os.getloadavg(), "threads": 1, "median": med,
                           "zarr_over_npy": {m: med["zarr"][m] / med["npy"][m] for m in med["npy"]}}
    print(f"  zarr/npy: {json.dumps({m: round(v, 3) for m, v in doc['zarr_over_npy'].items()})}")
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(doc, indent=1))


if __name__ == "__main__":
    sys.exit(main())
