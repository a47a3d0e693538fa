"""Benchmark: CKA and t-SNE on layers too wide for the old limits, read from the Zarr store
(issue 17, "data larger than RAM"; the wide-layer follow-up of ``bench/store_60k.py``).

The model is ``bench/store_60k.py``'s quickly trained Rauber CNN (same seed and recipe, weights kept
in OUT). Its full conv maps ``relu1``, ``relu2`` (32 x 28 x 28 = 25,088 features each) and
``relu3`` (64 x 14 x 14 = 12,544) for the first N MNIST training images go into a store, then each
step runs in a FRESH process (its peak resident memory, ``VmHWM``, is its own), 1 thread:

* ``capture``: ``collect_activations(..., store="zarr")`` of the three layers;
* ``cka_wide``: ``linear_cka_detail(relu1, relu2, memory_budget=1 GiB)`` over all N rows; its
  feature sums would take 15 GB (the old streamed CKA refused anything above 2 GiB);
* ``cka_check``: on the first 1,000 rows, in memory, the in-memory CKA vs the blocked route under a
  16 MB budget (the same arrays, so the difference is the route's rounding only);
* ``project_wide``: t-SNE of ``relu2`` on a seeded random 2,000-row subset read from the store,
  ``memory_budget=160 MB`` (the rows take 200 MB): the block route (exact neighbours in the
  25,088-dimensional space, IncrementalPCA to 50 dimensions for the start);
* ``project_ref``: the same rows read into memory and projected as before (no budget).

Peak memory and glibc: by default glibc raises its mmap threshold (up to 32 MB) after the first
large block is freed, so later row blocks and decompressed chunks of 10-30 MB come from the heap,
and the freed heap is kept by the process: ``VmHWM`` then counts memory the analysis no longer
holds. ``--malloc-mmap-threshold 1048576`` runs the children with ``MALLOC_MMAP_THRESHOLD_`` fixed
at 1 MB (allocations above it are mapped and unmapped each time), which shows the peak the analysis
itself needs; results are then stored under ``<phase>@mmap1M``.

Usage: python bench/store_wide.py OUT [--phase all|capture|cka_wide|cka_check|project_wide|project_ref] [--n 5000]
       [--malloc-mmap-threshold BYTES] [--rows 2000]
Writes ``bench/results/store_wide.json`` (merged across phases).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from store_60k import finished, model_of, run_phase, vm_hwm  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results" / "store_wide.json"
LAYERS = ["relu1", "relu2", "relu3"]
CKA_BUDGET = 1 << 30
PROJECT_BUDGET = 160 * 10**6


def phase(name: str, out: Path, n: int, n_rows: int = 2000) -> dict[str, Any]:
    import layerscope as ls

    torch.set_num_threads(1)
    rec: dict[str, Any] = {"load_average_start": os.getloadavg()}
    cap_dir = out / "capture_wide"
    base = vm_hwm()
    c0, t0 = time.process_time(), time.perf_counter()
    if name == "capture":
        model = model_of(out)
        base = vm_hwm()
        c0, t0 = time.process_time(), time.perf_counter()
        data = ls.load_dataset("mnist:train").subset(np.arange(n))
        acts = ls.collect_activations(model, data, LAYERS, batch_size=256, store="zarr", out_dir=cap_dir,
                                      predictions=True)
        rec["features"] = {k: int(np.prod(v.shape[1:])) for k, v in acts.arrays.items()}
        rec["uncompressed_gb"] = sum(a.nbytes for a in acts.arrays.values()) / 1e9
        rec["stored_gb"] = sum(a.stored_bytes for a in acts.arrays.values()) / 1e9
        rec["chunk_rows"] = {k: int(v.chunk_rows) for k, v in acts.arrays.items()}
    else:
        acts = ls.Activations.load(cap_dir)
        # the modules the analyses import, and the store opened, before the base line: the peak
        # over base is then the analysis' own memory, not the code it loads
        import openTSNE  # noqa: F401
        import sklearn.decomposition  # noqa: F401
        import sklearn.linear_model  # noqa: F401
        import sklearn.neighbors  # noqa: F401

        acts[LAYERS[0]].take(np.arange(1))
        base = vm_hwm()
        c0, t0 = time.process_time(), time.perf_counter()
        if name == "cka_wide":
            from layerscope.similarity import linear_cka_detail

            d = linear_cka_detail(acts["relu1"], acts["relu2"], memory_budget=CKA_BUDGET)
            rec.update(pair=["relu1", "relu2"], **d.to_dict(),
                       feature_sums_gb=8 * (d.p * d.p + d.q * d.q + d.p * d.q) / 1e9)
        elif name == "cka_check":
            from layerscope.similarity import linear_cka, linear_cka_detail
            from layerscope.store import as_matrix

            rows = np.arange(min(1000, len(acts)))
            x, y = as_matrix(acts["relu1"], rows), as_matrix(acts["relu2"], rows)
            t1 = time.perf_counter()
            ref = linear_cka(x, y)
            rec["in_memory_s"] = time.perf_counter() - t1
            t1 = time.perf_counter()
            d = linear_cka_detail(x, y, memory_budget=16 * 10**6)
            rec["blocked_s"] = time.perf_counter() - t1
            rec.update(rows=len(rows), in_memory=ref, blocked=d.value, route=d.route, passes=d.passes,
                       abs_difference=abs(ref - d.value))
        elif name in ("project_wide", "project_ref"):
            from layerscope.projection.projectors import project
            from layerscope.store import as_matrix

            rows = np.sort(np.random.default_rng(0).choice(len(acts), n_rows, replace=False))
            if name == "project_wide":
                p = project(acts["relu2"], acts.labels, "tsne", 0, rows=rows, memory_budget=PROJECT_BUDGET)
                rec["reduction"] = p.parameters["reduction"]
            else:
                X = as_matrix(acts["relu2"], rows)
                p = project(X, acts.labels[rows], "tsne", 0)
            rec.update(layer="relu2", rows=len(rows), features=int(p.metrics["dim"]), nh=p.metrics["nh"],
                       nh_original=p.metrics["nh_original"], knn=p.parameters.get("knn"))
            np.save(out / f"{name}_embedding.npy", p.embedding)
    return finished(rec, t0, c0, base)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("out")
    ap.add_argument("--phase", default="all")
    ap.add_argument("--n", type=int, default=5000)
    ap.add_argument("--child", action="store_true")
    ap.add_argument("--malloc-mmap-threshold", type=int, default=None)
    ap.add_argument("--rows", type=int, default=2000, help="rows projected by project_wide / project_ref")
    args = ap.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    if args.child:
        print(json.dumps(phase(args.phase, out, args.n, args.rows)))
        return
    phases = (["capture", "cka_wide", "cka_check", "project_wide", "project_ref"] if args.phase == "all"
              else args.phase.split(","))
    doc = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
    doc.update({"n": args.n, "threads": 1, "cka_budget_bytes": CKA_BUDGET, "project_budget_bytes": PROJECT_BUDGET})
    for ph in phases:
        env = {**os.environ, "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
        key = ph
        if args.malloc_mmap_threshold is not None:
            env["MALLOC_MMAP_THRESHOLD_"] = str(args.malloc_mmap_threshold)
            key = f"{ph}@mmap{args.malloc_mmap_threshold >> 20}M"
        if args.rows != 2000 and ph.startswith("project"):
            key = f"{key}@rows{args.rows}"
        run_phase([__file__, str(out), "--phase", ph, "--n", str(args.n), "--child", "--rows", str(args.rows)],
                  env, doc, key, RESULTS)


if __name__ == "__main__":
    main()
