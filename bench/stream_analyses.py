"""Benchmark: peak memory and time of a speech and a text analysis with and without a memory budget.

Each variant runs in a **fresh process** (``subprocess``, not forked: a forked child would inherit
the parent's peak), single-threaded (torch and BLAS), and reports peak resident memory (``VmHWM``
of ``/proc/self/status``): of loading the data and model, and of the analysis alone (the peak is
reset to the current RSS before it by writing ``5`` to ``/proc/self/clear_refs``), with the RSS
before the analysis; the analysis' wall and CPU time; and a digest of its numbers (equal digests:
bit-identical results).

* speech: :func:`layerscope.speech.embeddings.embedding_study` (utterance means of every hidden
  layer, clustered per layer) of a seeded, untrained ``AcousticDNN`` (``--width``, depth 4; memory and
  time do not depend on the weights) over every frame of all 3,000 FSDD recordings (the shared
  data's ``fsdd_recordings.tar.gz``, 40 log-mel, ±5 frames);
* text: :func:`layerscope.text.text_separability` of MiniLM (``hf:all-MiniLM-L6-v2``) on the bundled
  WordNet glosses (``--texts`` of them, stratified), every layer, both poolings, PCA, no re-initialised
  twin.

Variants: ``ram`` (no budget: every layer in RAM), ``npy`` (``memory_budget=0``: every layer to
``.npy`` files, read back by blocks or one layer at a time) and ``zarr`` (``store="zarr"``). With
``--repeats`` > 1 the order rotates; medians are reported.

Usage: nice -n 10 python bench/stream_analyses.py [--only speech|text] [--repeats 1]
       [--json bench/results/stream_analyses.json] [--md bench/results/stream_analyses.md]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

VARIANTS: dict[str, dict[str, Any]] = {"ram": {}, "npy": {"memory_budget": 0}, "zarr": {"store": "zarr"}}


def _status_kb(field: str) -> int:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"{field} not in /proc/self/status")


def _reset_peak() -> bool:
    """Reset this process's VmHWM to its current RSS (Linux >= 4.0: write 5 to clear_refs); False if refused."""
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
        return True
    except OSError:
        return False


def _digest(*parts: Any) -> str:
    import numpy as np

    h = hashlib.sha256()
    for p in parts:
        if isinstance(p, np.ndarray):
            h.update(np.ascontiguousarray(p).tobytes())
        else:
            h.update(json.dumps(p, sort_keys=True, default=str).encode())
    return h.hexdigest()[:16]


def child(task: str, variant: str, args: argparse.Namespace) -> dict[str, Any]:
    """Run one analysis in this (fresh) process; return its numbers."""
    import numpy as np
    import torch

    torch.set_num_threads(1)
    kw = VARIANTS[variant]
    if task == "speech":
        from layerscope.data.audio import load_fsdd
        from layerscope.models import AcousticDNN
        from layerscope.speech import FeatureConfig, FrameExtractor
        from layerscope.speech.embeddings import embedding_study

        shared = Path(os.environ["LAYERSCOPE_SHARED_DATA"])
        audio = load_fsdd(shared / "fsdd" / "fsdd_recordings.tar.gz")
        frames = FrameExtractor(FeatureConfig()).transform(audio)
        torch.manual_seed(0)
        model = AcousticDNN(frames.input_shape, 10, width=args.width, depth=4).eval()
        size = {"frames": int(len(frames)), "recordings": int(len(audio)), "layers": list(model.hidden_layers),
                "layer_mb": round(len(frames) * args.width * 4 / 2**20, 1)}
        hwm0, rss0, reset = _status_kb("VmHWM"), _status_kb("VmRSS"), _reset_peak()
        c0, t0 = time.process_time(), time.perf_counter()
        st = embedding_study(model, frames, max_recordings=None, **kw)
        wall, cpu = time.perf_counter() - t0, time.process_time() - c0
        digest = _digest(st.rows, *[st.embeddings[k] for k in st.embeddings])
    else:
        from layerscope.data import load_dataset
        from layerscope.loading import load_model
        from layerscope.text import text_separability
        from layerscope.text._common import default_text_layers

        model = load_model("hf:all-MiniLM-L6-v2")
        data = load_dataset("wordnet")
        layers = default_text_layers(model)
        size = {"texts": int(args.texts), "layers": layers, "layer_mb": round(args.texts * 2 * 384 * 4 / 2**20, 1)}
        hwm0, rss0, reset = _status_kb("VmHWM"), _status_kb("VmRSS"), _reset_peak()
        c0, t0 = time.process_time(), time.perf_counter()
        res = text_separability(model, data, layers, n=args.texts, method="pca", before_training=False, seed=0,
                                batch_size=64, **kw)
        wall, cpu = time.perf_counter() - t0, time.process_time() - c0
        digest = _digest(res.table, *[res.embeddings[k] for k in res.embeddings])
    hwm1 = _status_kb("VmHWM")
    return {"task": task, "variant": variant, "wall_s": wall, "cpu_s": cpu, "load_peak_mb": hwm0 / 1024,
            "rss_before_mb": rss0 / 1024, "peak_reset": reset,
            # the analysis' own peak (VmHWM reset after loading); the process's is the larger of the two
            "analysis_peak_mb": hwm1 / 1024 if reset else float("nan"),
            "process_peak_mb": max(hwm0, hwm1) / 1024, "digest": digest, "size": size,
            "torch_threads": torch.get_num_threads(), "numpy": np.__version__}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--only", choices=["speech", "text"], default=None)
    ap.add_argument("--repeats", type=int, default=1)
    ap.add_argument("--width", type=int, default=1024, help="hidden units of the acoustic DNN")
    ap.add_argument("--texts", type=int, default=3000, help="WordNet glosses (stratified)")
    ap.add_argument("--json", default=None)
    ap.add_argument("--md", default=None)
    ap.add_argument("--child", nargs=2, metavar=("TASK", "VARIANT"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        print("RESULT " + json.dumps(child(args.child[0], args.child[1], args)), flush=True)
        return
    env = {**os.environ, "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    tasks = [args.only] if args.only else ["speech", "text"]
    load0 = os.getloadavg()
    runs: list[dict[str, Any]] = []
    names = list(VARIANTS)
    for task in tasks:
        for rep in range(args.repeats):
            order = names[rep % len(names):] + names[: rep % len(names)]
            for v in order:
                cmd = [sys.executable, __file__, "--child", task, v, "--width", str(args.width), "--texts", str(args.texts)]
                out = subprocess.run(cmd, env=env, capture_output=True, text=True)
                line = next((x for x in out.stdout.splitlines() if x.startswith("RESULT ")), None)
                if out.returncode != 0 or line is None:
                    sys.exit(f"{task}/{v} failed:\n{out.stderr[-3000:]}")
                r = json.loads(line[len("RESULT "):])
                runs.append(r)
                print(f"{task:6s} {v:5s} wall {r['wall_s']:7.1f} s  cpu {r['cpu_s']:7.1f} s  analysis peak "
                      f"{r['analysis_peak_mb']:7.0f} MB (RSS before {r['rss_before_mb']:.0f} MB)  process peak "
                      f"{r['process_peak_mb']:.0f} MB  digest {r['digest']}", flush=True)
    load1 = os.getloadavg()
    summary: dict[str, Any] = {}
    for task in tasks:
        rs = [r for r in runs if r["task"] == task]
        med = {v: {k: statistics.median(r[k] for r in rs if r["variant"] == v)
                   for k in ("wall_s", "cpu_s", "rss_before_mb", "analysis_peak_mb", "process_peak_mb")} for v in names}
        digests = {r["digest"] for r in rs}
        base = med["ram"]
        summary[task] = {
            "size": rs[0]["size"], "median": med, "identical_results": len(digests) == 1,
            "ratios_vs_ram": {v: {"process_peak": med[v]["process_peak_mb"] / base["process_peak_mb"],
                                  "analysis_peak": med[v]["analysis_peak_mb"] / base["analysis_peak_mb"],
                                  "analysis_growth": (med[v]["analysis_peak_mb"] - med[v]["rss_before_mb"])
                                  / max(base["analysis_peak_mb"] - base["rss_before_mb"], 1e-9),
                                  "wall": med[v]["wall_s"] / base["wall_s"], "cpu": med[v]["cpu_s"] / base["cpu_s"]}
                              for v in names},
        }
    doc = {"bench": "stream_analyses", "repeats": args.repeats, "width": args.width, "texts": args.texts,
           "load_average_before": load0, "load_average_after": load1, "cpus": os.cpu_count(), "runs": runs,
           "summary": summary}
    if args.json:
        Path(args.json).write_text(json.dumps(doc, indent=1) + "\n")
    if args.md:
        lines = ["# Speech and text analyses with and without a memory budget", "",
                 f"Fresh process per run, 1 thread, {args.repeats} repeat(s) (medians); load average "
                 f"{load0[0]:.2f} before, {load1[0]:.2f} after; {os.cpu_count()} CPUs. Peaks are VmHWM: 'analysis "
                 "peak' after resetting it once data and model are loaded (`/proc/self/clear_refs`), 'growth' = "
                 "analysis peak minus the RSS before it, 'process peak' = the whole run's (loading included).", "",
                 "| task | variant | wall s | CPU s | analysis peak MB | growth MB | process peak MB | analysis peak / ram "
                 "| growth / ram | wall / ram | CPU / ram | same numbers |",
                 "|---|---|---|---|---|---|---|---|---|---|---|---|"]
        for task, s in summary.items():
            for v in names:
                m, rt = s["median"][v], s["ratios_vs_ram"][v]
                lines.append(f"| {task} | {v} | {m['wall_s']:.1f} | {m['cpu_s']:.1f} | {m['analysis_peak_mb']:.0f} | "
                             f"{m['analysis_peak_mb'] - m['rss_before_mb']:.0f} | {m['process_peak_mb']:.0f} | "
                             f"{rt['analysis_peak']:.2f} | {rt['analysis_growth']:.2f} | {rt['wall']:.2f} | "
                             f"{rt['cpu']:.2f} | {'yes' if s['identical_results'] else 'NO'} |")
        lines += ["", "Sizes: " + "; ".join(f"{t}: {json.dumps(s['size'])}" for t, s in summary.items()), ""]
        Path(args.md).write_text("\n".join(lines))


if __name__ == "__main__":
    main()
