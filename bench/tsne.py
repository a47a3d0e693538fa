"""t-SNE speed and quality: layerscope's ``project`` vs openTSNE's defaults vs scikit-learn's ``TSNE``.

Data: real activations, layer ``relu3`` (256 units) of the bundled ``mnist-cnn`` on a stratified
random subset of the MNIST training set (``select_observations``, seed 0); the first n rows of that
subset at every size. Contenders, each single-threaded (BLAS/OpenMP limited to one thread):

* ``layerscope``: ``project(x, y, "tsne", seed)`` as a user calls it (exact or Annoy kNN chosen by
  n, Barnes-Hut gradients below 500 points and FFT gradients on the grid chosen by n from there, NH
  in 2-D *and* in activation space included; the gradient method used is recorded per row);
* ``openTSNE``: ``openTSNE.TSNE(n_jobs=1, random_state=seed).fit(x)``, all defaults;
* ``sklearn``: ``sklearn.manifold.TSNE(random_state=seed, n_jobs=1).fit_transform(x)``, defaults.

The contenders run interleaved (one of each per size and repeat, their order rotated each repeat), so
changes in the machine's load hit all alike; medians over the repeats of wall and CPU time
(``time.process_time``: what the run costs without competition). Ratios are computed on CPU time
and on wall time. Quality: NH (k = 6, 2-D) of each embedding, and its KL divergence against the same
exact-kNN affinities (openTSNE's FFT estimate on a fine grid) for all three. Load average recorded.

    nice -n 10 python bench/tsne.py [--sizes 300,500,...] [--repeats 3] [--contenders sklearn] [--out PART.json]
    python bench/tsne.py --merge PART1.json PART2.json [--notes NOTES.md]  # -> results/tsne.json + tsne.md

A part's data are the first n rows of a stratified subset of max(sizes) images, so rows of one size
always come from one part (merging keeps the first part's rows of a size/repeat/contender); the
``part`` field of each row says which. How the committed results were run: see bench/results/tsne.md.
"""

from __future__ import annotations

import os

for _v in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS"):
    os.environ[_v] = "1"

import argparse  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import statistics  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any, Callable  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"
CONTENDERS = ("layerscope", "openTSNE", "sklearn")


def activations(n: int) -> tuple[np.ndarray, np.ndarray]:
    from layerscope.capture import collect_activations
    from layerscope.data import load_dataset
    from layerscope.loading import load_model
    from layerscope.projection.analysis import select_observations

    model = load_model("mnist-cnn")
    ds = load_dataset("mnist:train")
    idx = select_observations(ds, n, 0)
    acts = collect_activations(model, ds, ["relu3"], indices=idx, batch_size=1000)
    return np.asarray(acts.arrays["relu3"]).reshape(len(idx), -1).astype(np.float32), np.asarray(acts.labels)


def runners(x: np.ndarray, y: np.ndarray, seed: int, info: dict[str, Any] | None = None
            ) -> dict[str, Callable[[], np.ndarray]]:
    from openTSNE import TSNE as OTSNE
    from sklearn.manifold import TSNE as SKTSNE

    from layerscope.projection import project

    def ours() -> np.ndarray:
        p = project(x, y, "tsne", seed)
        if info is not None:
            info["gradient"] = p.parameters["negative_gradient_method"]
            info["knn"] = p.parameters["knn"]
        return p.embedding

    return {
        "layerscope": ours,
        "openTSNE": lambda: np.asarray(OTSNE(n_jobs=1, random_state=seed).fit(x)),
        "sklearn": lambda: SKTSNE(n_components=2, random_state=seed, n_jobs=1).fit_transform(x),
    }


def kl_of(emb: np.ndarray, P: Any) -> float:
    from openTSNE.tsne import kl_divergence_fft

    kl, _ = kl_divergence_fft(np.ascontiguousarray(emb, dtype=np.float64), P, 1,
                              dict(n_interpolation_points=3, min_num_intervals=50, ints_in_interval=0.5),
                              should_eval_error=True)
    return float(kl)


def run(sizes: list[int], repeats: int, first: int = 0, contenders: tuple[str, ...] = CONTENDERS) -> dict[str, Any]:
    from openTSNE.affinity import PerplexityBasedNN
    from threadpoolctl import threadpool_limits

    from layerscope.projection import neighborhood_hit

    torch.set_num_threads(1)
    threadpool_limits(1)
    X, Y = activations(max(sizes))
    for m in (400, 600):  # imports and first-call costs (Barnes-Hut and FFT paths), untimed
        for f in runners(X[:m], Y[:m], 0).values():
            f()
    P = {n: PerplexityBasedNN(X[:n].astype(np.float64), perplexity=30, method="exact", n_jobs=1).P for n in sizes}
    rows: list[dict[str, Any]] = []
    for r in range(first, first + repeats):
        for n in sizes:
            x, y = X[:n], Y[:n]
            info: dict[str, Any] = {}
            fns = runners(x, y, r, info)
            order = CONTENDERS[r % 3:] + CONTENDERS[: r % 3]
            for name in (c for c in order if c in contenders):
                load0 = os.getloadavg()[0]
                w0, c0 = time.perf_counter(), time.process_time()
                emb = fns[name]()
                wall, cpu = time.perf_counter() - w0, time.process_time() - c0
                row = {"n": n, "repeat": r, "seed": r, "contender": name, "wall_s": round(wall, 3),
                       "cpu_s": round(cpu, 3), "nh": round(neighborhood_hit(emb, y), 5),
                       "kl": round(kl_of(emb, P[n]), 4), "load_before": round(load0, 2),
                       "load_after": round(os.getloadavg()[0], 2)}
                if name == "layerscope":
                    row.update(info)
                rows.append(row)
                print(json.dumps(row), flush=True)
    return {"data": "mnist-cnn relu3 (256 units) on a stratified subset of MNIST train (seed 0)",
            "threads": 1, "repeats": repeats, "sizes": sizes, "rows": rows,
            "machine": {"cpu_count": os.cpu_count(), "platform": platform.platform()}}


def summarise(rows: list[dict[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for n in sorted({r["n"] for r in rows}):
        s: dict[str, Any] = {}
        for c in CONTENDERS:
            rs = [r for r in rows if r["n"] == n and r["contender"] == c]
            if not rs:
                continue
            s[c] = {k: statistics.median(r[k] for r in rs) for k in ("wall_s", "cpu_s", "nh", "kl")}
            s[c]["runs"] = len(rs)
            s[c]["load"] = round(statistics.median(r["load_before"] for r in rs), 2)
            if c == "layerscope":
                s[c]["gradient"] = "/".join(sorted({str(r.get("gradient", "?")) for r in rs}))
                s[c]["knn"] = "/".join(sorted({str(r.get("knn", "?")) for r in rs}))
        if all(c in s for c in CONTENDERS):
            ours = s["layerscope"]
            s["ratios"] = {f"{c}_{t}": round(s[c][f"{t}_s"] / ours[f"{t}_s"], 2)
                           for c in ("openTSNE", "sklearn") for t in ("cpu", "wall")}
            s["nh_minus_sklearn"] = round(ours["nh"] - s["sklearn"]["nh"], 4)
        loads = [r[k] for r in rows if r["n"] == n for k in ("load_before", "load_after") if k in r]
        s["load_range"] = [min(loads), max(loads)]
        out[str(n)] = s
    return out


def _f(v: Any, fmt: str) -> str:
    return "-" if v is None else format(v, fmt)


def markdown(doc: dict[str, Any]) -> str:
    lines = [f"# t-SNE: layerscope vs openTSNE defaults vs scikit-learn ({doc['data']}, 1 thread each)", "",
             "Medians over the runs of each size (seed = repeat), contenders interleaved. Ratio = contender CPU time / "
             "layerscope CPU time. Target (issue 17): >= 2x openTSNE and >= 3x scikit-learn at n = 2k-20k, "
             "NH within 0.005 of scikit-learn's at 2k-50k. Runs = layerscope / openTSNE / scikit-learn. Load = the 1-minute load average before and after the runs (2 cores).", "",
             "| n | runs | gradient (ours) | CPU s ours | CPU s openTSNE | CPU s sklearn | x openTSNE | x sklearn | "
             "NH ours | NH openTSNE | NH sklearn | NH ours - sklearn | KL ours | KL openTSNE | KL sklearn | load |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for n, s in doc["summary"].items():
        g = {c: s.get(c, {}) for c in CONTENDERS}
        rat = s.get("ratios", {})
        lines.append(
            f"| {int(n):,} | {' / '.join(str(g[c].get('runs', 0)) for c in CONTENDERS)} | "
            f"{g['layerscope'].get('gradient', '-')} | "
            + " | ".join(_f(g[c].get("cpu_s"), ".2f") for c in CONTENDERS) + " | "
            + " | ".join(_f(rat.get(f"{c}_cpu"), ".2f") + ("x" if f"{c}_cpu" in rat else "") for c in ("openTSNE", "sklearn"))
            + " | " + " | ".join(_f(g[c].get("nh"), ".4f") for c in CONTENDERS) + " | "
            + _f(s.get("nh_minus_sklearn"), "+.4f") + " | "
            + " | ".join(_f(g[c].get("kl"), ".3f") for c in CONTENDERS) + " | "
            + "{:.1f}-{:.1f}".format(*s["load_range"]) + " |")
    lines += ["", "Wall times (stretched by the shared machine's load; compare CPU times):", "",
              "| n | contender | runs | CPU s | wall s | wall ratio | load before (median) |", "|---|---|---|---|---|---|---|"]
    for n, s in doc["summary"].items():
        for c in CONTENDERS:
            if c not in s:
                continue
            v = s[c]
            wr = s.get("ratios", {}).get(c + "_wall")
            lines.append(f"| {int(n):,} | {c} | {v['runs']} | {v['cpu_s']:.2f} | {v['wall_s']:.2f} | "
                         f"{'' if c == 'layerscope' or wr is None else f'{wr:.2f}x'} | {v['load']:.1f} |")
    lines += ["", "Per repeat (the three contenders of one repeat run back to back in one process, so each repeat's "
              "ratios are side by side even where repeats ran on different days):", "",
              "| n | seed | part | CPU s ours | x openTSNE | x sklearn | NH ours - sklearn |", "|---|---|---|---|---|---|---|"]
    for n in doc["summary"]:
        for seed in sorted({r["seed"] for r in doc["rows"] if r["n"] == int(n)}):
            rs = {r["contender"]: r for r in doc["rows"] if r["n"] == int(n) and r["seed"] == seed}
            if "layerscope" not in rs:
                continue
            ours = rs["layerscope"]
            x = {c: f"{rs[c]['cpu_s'] / ours['cpu_s']:.2f}x" if c in rs else "-" for c in ("openTSNE", "sklearn")}
            dnh = f"{ours['nh'] - rs['sklearn']['nh']:+.4f}" if "sklearn" in rs else "-"
            lines.append(f"| {int(n):,} | {seed} | {ours.get('part', '-')} | {ours['cpu_s']:.2f} | {x['openTSNE']} | "
                         f"{x['sklearn']} | {dnh} |")
    return "\n".join(lines) + "\n" + (("\n" + doc["notes"].strip() + "\n") if doc.get("notes") else "")


def _read_part(path: Path) -> dict[str, Any]:
    """A part written with --out, or the JSON lines a run printed (an interrupted run's log)."""
    text = path.read_text()
    try:
        doc = json.loads(text)
        if isinstance(doc, dict) and "rows" in doc:
            return doc
    except json.JSONDecodeError:
        pass
    if True:
        rows = [json.loads(line) for line in text.splitlines() if line.startswith('{"n"')]
        return {"data": "mnist-cnn relu3 (256 units) on a stratified subset of MNIST train (seed 0)", "threads": 1,
                "rows": rows, "machine": {"cpu_count": os.cpu_count(), "platform": platform.platform()}}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default="300,500,1000,2000,5000,10000,20000")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--first-repeat", type=int, default=0, help="seed of the first repeat (to split a run)")
    ap.add_argument("--out", default=None, help="write this run's rows here (default: results/tsne.json)")
    ap.add_argument("--contenders", default=",".join(CONTENDERS), help="run only these (e.g. sklearn at 50k, alone)")
    ap.add_argument("--merge", nargs="+", default=None, help="merge part files into results/tsne.json + .md")
    ap.add_argument("--notes", default=None, help="with --merge: markdown appended to tsne.md (how it was run)")
    a = ap.parse_args()
    if a.merge:
        parts = [_read_part(Path(p)) for p in a.merge]
        seen: set[tuple[int, int, str]] = set()
        rows = []
        for i, p in enumerate(parts):
            for r in p["rows"]:
                r = {**r, "part": i}
                if (r["n"], r["repeat"], r["contender"]) not in seen:
                    seen.add((r["n"], r["repeat"], r["contender"]))
                    rows.append(r)
        doc = {**parts[0], "sizes": sorted({r["n"] for r in rows}), "rows": rows,
               "repeats": min(len({r["repeat"] for r in rows if r["n"] == n}) for n in {r["n"] for r in rows}),
               "parts": len(parts)}
        if a.notes:
            doc["notes"] = Path(a.notes).read_text()
    else:
        unknown = set(a.contenders.split(",")) - set(CONTENDERS)
        if unknown:
            ap.error(f"unknown contenders {sorted(unknown)}; expected some of {CONTENDERS}")
        doc = run([int(s) for s in a.sizes.split(",")], a.repeats, a.first_repeat, tuple(a.contenders.split(",")))
        if a.out:
            Path(a.out).write_text(json.dumps(doc, indent=1))
            return
    doc["summary"] = summarise(doc["rows"])
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "tsne.json").write_text(json.dumps(doc, indent=1))
    (RESULTS / "tsne.md").write_text(markdown(doc))
    print(markdown(doc))


if __name__ == "__main__":
    main()
