"""Benchmark: full maps of Rauber et al.'s CNN over all 60,000 MNIST training images into the Zarr
store, then ``project``, ``probe``, ``topk`` and CKA read from it (issue 17, "data larger than RAM").

The model: :class:`layerscope.models.reference.RauberCNN` (2 x conv32, pool, 2 x conv64, pool,
dense 4096, dense 512), TRAINED HERE quickly (no bundled weights exist): seed 0, Adam (lr 1e-3,
batch 64), one epoch over the first 6,000 training images; its test accuracy on 2,000 test
images is printed. Every leaf layer (16), full maps: 689 KB per image, 41.3 GB of float32 for
60,000 images, more than this machine's RAM.

Phases (each a FRESH process, so that its peak resident memory, ``VmHWM``, is its own):

* ``capture``: ``collect_activations(..., store="zarr", memory_budget=2 GB)`` into ``OUT/capture``;
  wall time, CPU time, peak memory, bytes on disk vs the ``.npy`` size (uncompressed);
* ``project``: t-SNE (``project``) of ``relu2`` (25,088 features) on a seeded random 2,000-row
  subset read from the store by rows (``as_matrix``), NH;
* ``probe``: ``linear_probe`` of ``pool2`` (3,136 features) on a seeded 10,000-row subset;
* ``topk``: ``top_activations`` of ``relu4`` (64 x 14 x 14) streamed over all 60,000 rows of the
  store (running maxima chunk by chunk), compared with the same function running the model;
* ``cka``: ``linear_cka(relu5, relu6)`` streamed over all 60,000 rows (feature sums in float64).

Usage: python bench/store_60k.py OUT [--phase all|capture|project|probe|topk|cka] [--n 60000]
Writes ``bench/results/store_60k.json`` (merged across phases).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

RESULTS = Path(__file__).resolve().parent / "results" / "store_60k.json"
BUDGET = 2 * 2**30


def vm_hwm() -> int:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("no VmHWM")


def finished(rec: dict[str, Any], t0: float, c0: float, base: int) -> dict[str, Any]:
    """A phase's record with its wall and CPU time since (t0, c0) (unless set), peak memory (VmHWM, and
    over ``base``) and the load average at the end."""
    rec.setdefault("wall_s", time.perf_counter() - t0)
    rec.setdefault("cpu_s", time.process_time() - c0)
    rec["peak_gb"] = vm_hwm() / 1e9
    rec["peak_over_base_gb"] = (vm_hwm() - base) / 1e9
    rec["load_average_end"] = os.getloadavg()
    return rec


def run_phase(argv: list[str], env: dict[str, str], doc: dict[str, Any], key: str, results: Path) -> None:
    """Run ``python ARGV`` (one phase, in a fresh process: its own peak memory), store its last stdout
    line (JSON) as ``doc[key]``, print it and rewrite ``results`` (a killed run keeps the phases done)."""
    r = subprocess.run([sys.executable, *argv], capture_output=True, text=True, env=env)
    if r.returncode:
        print(r.stderr[-3000:], file=sys.stderr)
        raise SystemExit(f"phase {key} failed")
    doc[key] = json.loads(r.stdout.strip().splitlines()[-1])
    print(key, json.dumps(doc[key]), flush=True)
    results.parent.mkdir(parents=True, exist_ok=True)
    results.write_text(json.dumps(doc, indent=1))


def model_of(out: Path) -> torch.nn.Module:
    """The quickly trained Rauber CNN (trained once, weights kept in OUT)."""
    import layerscope as ls
    from layerscope.loading import load_weights
    from layerscope.models.reference import RauberCNN

    torch.manual_seed(0)
    model = RauberCNN()
    wpath = out / "rauber_cnn.safetensors"
    if not wpath.exists():
        from layerscope.training import train

        train_set = ls.load_dataset("mnist:train").subset(np.arange(6000))
        train(model, train_set, out_dir=out / "train", epochs=1, checkpoints=[1], batch_size=64, lr=1e-3, optimizer="adam", seed=0)
        from layerscope.training import save_safetensors

        save_safetensors(model.state_dict(), wpath)
    else:
        model.load_state_dict(load_weights(wpath))
    return model.eval()


def phase(name: str, out: Path, n: int) -> dict[str, Any]:
    import layerscope as ls

    torch.set_num_threads(1)
    model = model_of(out)
    rec: dict[str, Any] = {"load_average_start": os.getloadavg()}
    cap_dir = out / "capture"
    base = vm_hwm()
    c0, t0 = time.process_time(), time.perf_counter()
    if name == "capture":
        test = ls.load_dataset("mnist:test").subset(np.arange(2000))
        from layerscope.training import evaluate

        rec["test_accuracy_2000"] = evaluate(model, test)
        base = vm_hwm()
        c0, t0 = time.process_time(), time.perf_counter()
        data = ls.load_dataset("mnist:train").subset(np.arange(n))
        names = [r.name for r in ls.list_layers(model) if r.is_leaf]
        acts = ls.collect_activations(model, data, names, batch_size=256, store="zarr", memory_budget=BUDGET,
                                      out_dir=cap_dir, predictions=True)
        rec["layers"] = len(names)
        rec["uncompressed_gb"] = sum(a.nbytes for a in acts.arrays.values()) / 1e9
        rec["stored_gb"] = sum(a.stored_bytes for a in acts.arrays.values()) / 1e9
        rec["accuracy_train"] = float(np.mean(acts.predictions == acts.labels))
    else:
        acts = ls.Activations.load(cap_dir)
        rng = np.random.default_rng(0)
        from layerscope.store import as_matrix

        if name == "project":
            from layerscope.projection.projectors import project

            rows = np.sort(rng.choice(len(acts), 2000, replace=False))
            X = as_matrix(acts["relu2"], rows)
            p = project(X, acts.labels[rows], "tsne", 0, nh_original=False)
            rec.update(layer="relu2", rows=len(rows), features=int(X.shape[1]), nh=p.nh)
        elif name == "probe":
            from layerscope.similarity import linear_probe

            rows = np.sort(rng.choice(len(acts), 10000, replace=False))
            r = linear_probe(acts["pool2"], acts.labels, rows=rows, layer="pool2")
            rec.update(layer="pool2", rows=len(rows), accuracy=r.accuracy, n_features=r.n_features)
        elif name == "topk":
            from layerscope.convnets.topk import top_activations

            data = ls.load_dataset("mnist:train").subset(np.arange(n))
            t = top_activations(model, data, "relu4", k=9, patches=False, rule=None, activations=acts["relu4"],
                                sample_ids=acts.sample_ids)
            rec.update(layer="relu4", units=int(len(t.units)), top_value=float(t.values.max()))
            rec["wall_s"] = time.perf_counter() - t0
            rec["cpu_s"] = time.process_time() - c0
            t1 = time.perf_counter()
            ref = top_activations(model, data, "relu4", k=9, patches=False, rule=None)
            rec["model_pass_wall_s"] = time.perf_counter() - t1
            rec["equal_to_model_pass"] = bool(np.array_equal(ref.values, t.values) and np.array_equal(ref.sample_ids, t.sample_ids))
        elif name == "cka":
            from layerscope.similarity import linear_cka

            rec.update(pair=["relu5", "relu6"], cka=linear_cka(acts["relu5"], acts["relu6"]))
    return finished(rec, t0, c0, base)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("out")
    ap.add_argument("--phase", default="all")
    ap.add_argument("--n", type=int, default=60000)
    ap.add_argument("--child", action="store_true")
    args = ap.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    if args.child:
        print(json.dumps(phase(args.phase, out, args.n)))
        return
    phases = ["capture", "project", "probe", "topk", "cka"] if args.phase == "all" else args.phase.split(",")
    doc = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
    doc.update({"n": args.n, "budget_bytes": BUDGET, "threads": 1})
    for ph in phases:
        env = {**os.environ, "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
        run_phase([__file__, str(out), "--phase", ph, "--n", str(args.n), "--child"], env, doc, ph, RESULTS)


if __name__ == "__main__":
    main()
