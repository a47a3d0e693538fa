"""Benchmarks of the projection module, measured side by side in one run (medians over repeats).

1. Neighborhood hit on 100,000 2-D points: ours (KD-tree, O(n log n)) vs a naive O(n^2)
   all-pairs version. The naive one is timed on subsets (it needs n^2 distance evaluations) and
   extrapolated to 100k with the exponent fitted on those subsets; both are checked to agree.
2. t-SNE of 10,000 x 256 real activations (layer relu3 of the bundled mnist-cnn on the MNIST
   test set): ours (``project``: openTSNE, FFT gradients, 1 thread, ``ints_in_interval=2``) and
   ours with openTSNE's finer default grid (``ints_in_interval=1``) vs scikit-learn's ``TSNE``
   (Barnes-Hut, its defaults; OpenMP limited to 1 thread by OMP_NUM_THREADS=1), with the NH of
   every embedding.
3. An aligned sequence of 5 layer projections (mnist-cnn: relu1, relu2, fc1, relu3, fc2; 2,000
   test observations) vs 5 independent projections, interleaved: wall and CPU time, NH per frame
   (``--out`` writes JSON; bench/results/aligned.json).

Run:  OMP_NUM_THREADS=1 python bench/projection.py [--repeats 3] [--quick]
Targets (issue 5): NH on 100k <= 0.3 s; t-SNE >= 2.5x faster than scikit-learn; aligned
sequence >= 1.5x faster than independent projections at equal or better NH.
"""

from __future__ import annotations

import argparse
import statistics
import time
from typing import Any, Callable

import numpy as np
import torch


def _median_time(fn: Callable[[], Any], repeats: int) -> tuple[float, Any]:
    times, out = [], None
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), out


def naive_nh(x: np.ndarray, y: np.ndarray, k: int = 6, block: int = 1024) -> float:
    """O(n^2) reference: all pairwise distances (in row blocks), full sort of each row."""
    hits = 0.0
    sq = np.sum(x * x, axis=1)
    for s in range(0, len(x), block):
        xb = x[s : s + block]
        d = sq[s : s + block, None] + sq[None, :] - 2.0 * xb @ x.T
        d[np.arange(len(xb)), np.arange(s, s + len(xb))] = np.inf
        nn = np.argsort(d, axis=1)[:, :k]
        hits += float(np.sum(y[nn] == y[s : s + block, None])) / k
    return hits / len(x)


def bench_nh(repeats: int, quick: bool) -> None:
    from layerscope.projection import neighborhood_hit

    rng = np.random.default_rng(0)
    n = 100_000
    y = rng.integers(0, 10, size=n)
    x = rng.normal(size=(n, 2)) + 3.0 * np.stack([np.cos(y), np.sin(y)], axis=1)
    t_ours, nh = _median_time(lambda: neighborhood_hit(x, y), repeats)
    cpu = []
    for _ in range(repeats):
        c0 = time.process_time()
        neighborhood_hit(x, y)
        cpu.append(time.process_time() - c0)
    t_two, _ = _median_time(lambda: neighborhood_hit(x, y, n_jobs=2), repeats)
    sizes = [2_000, 4_000] if quick else [5_000, 10_000, 20_000]
    t_naive = []
    for m in sizes:
        t, v = _median_time(lambda m=m: naive_nh(x[:m], y[:m]), max(1, repeats - 1) if m > 10_000 else repeats)
        ref = neighborhood_hit(x[:m], y[:m])
        assert abs(v - ref) < 1e-9, (v, ref)
        t_naive.append(t)
    expo = float(np.polyfit(np.log(sizes), np.log(t_naive), 1)[0])
    t_naive_100k = t_naive[-1] * (n / sizes[-1]) ** 2  # quadratic extrapolation (conservative: see exponent)
    t_ours_same = [_median_time(lambda m=m: neighborhood_hit(x[:m], y[:m]), repeats)[0] for m in sizes]
    print("\n## 1. Neighborhood hit, k = 6, 2-D points")
    print(f"ours on {n:,} points: median {t_ours:.3f} s wall over {repeats} runs (target <= 0.3 s), NH = {nh:.4f}; "
          f"CPU time {statistics.median(cpu):.3f} s (what it costs without other processes competing); "
          f"with n_jobs=2: {t_two:.3f} s wall")
    for m, tn, to in zip(sizes, t_naive, t_ours_same):
        print(f"  n = {m:>6,}: naive O(n^2) {tn:.3f} s | ours {to:.4f} s | ratio {tn / to:.0f}x (same NH, checked)")
    print(f"naive fitted exponent {expo:.2f}; naive extrapolated to 100k (x (100k/{sizes[-1] // 1000}k)^2): "
          f"{t_naive_100k:.1f} s -> ratio ~{t_naive_100k / t_ours:.0f}x")


def _mnist_cnn_activations(layers: list[str], n: int) -> tuple[dict[str, np.ndarray], np.ndarray, np.ndarray]:
    from layerscope.capture import collect_activations
    from layerscope.data import load_dataset
    from layerscope.loading import load_model
    from layerscope.projection.analysis import select_observations

    model = load_model("mnist-cnn")
    ds = load_dataset("mnist:test")
    idx = select_observations(ds, n, 0)
    acts = collect_activations(model, ds, layers, indices=idx, predictions=True, batch_size=500)
    return {k: np.asarray(v).reshape(len(idx), -1) for k, v in acts.arrays.items()}, acts.labels, acts.predictions


def bench_tsne(repeats: int, quick: bool) -> None:
    from sklearn.manifold import TSNE

    from layerscope.projection import neighborhood_hit, project

    n = 3_000 if quick else 10_000
    acts, y, _ = _mnist_cnn_activations(["relu3"], n)
    x = acts["relu3"].astype(np.float32)
    project(x[:300], y[:300], "tsne", 0, perplexity=10, n_iter=5, early_exaggeration_iter=5)  # imports, warm-up
    runs: dict[str, list[tuple[float, float]]] = {"ours": [], "ours_fine": [], "sklearn": []}
    nh: dict[str, float] = {}

    def timed(name: str, fn: Callable[[], np.ndarray]) -> None:
        w0, c0 = time.perf_counter(), time.process_time()
        emb = fn()
        runs[name].append((time.perf_counter() - w0, time.process_time() - c0))
        nh[name] = neighborhood_hit(emb, y)

    # interleaved, so that changes in the machine's load hit every contender alike
    for r in range(repeats):
        timed("ours", lambda: project(x, y, "tsne", 0, nh_original=False).embedding)
        timed("sklearn", lambda: TSNE(n_components=2, random_state=0, init="pca", n_jobs=1).fit_transform(x))
        if r < max(1, repeats - 1):
            timed("ours_fine", lambda: project(x, y, "tsne", 0, nh_original=False, ints_in_interval=1).embedding)
    med = {k: (statistics.median(w for w, _ in v), statistics.median(c for _, c in v)) for k, v in runs.items()}
    print(f"\n## 2. t-SNE of {x.shape[0]:,} x {x.shape[1]} activations (mnist-cnn relu3, MNIST test), 1 thread")
    print("contender                                   | wall (median) | CPU (median) | runs | NH")
    labels = {"ours": "ours (project: openTSNE, ints_in_interval=2)",
              "ours_fine": "ours, openTSNE's default grid (ints=1)",
              "sklearn": "scikit-learn TSNE (defaults, Barnes-Hut)"}
    for k in ("ours", "ours_fine", "sklearn"):
        print(f"{labels[k]:<43} | {med[k][0]:>11.1f} s | {med[k][1]:>10.1f} s | {len(runs[k]):>4} | {nh[k]:.4f}")
    print(f"speed-up ours vs scikit-learn: wall {med['sklearn'][0] / med['ours'][0]:.2f}x, "
          f"CPU {med['sklearn'][1] / med['ours'][1]:.2f}x (target >= 2.5x); with openTSNE's default grid: wall "
          f"{med['sklearn'][0] / med['ours_fine'][0]:.2f}x, CPU {med['sklearn'][1] / med['ours_fine'][1]:.2f}x")


def bench_aligned(repeats: int, quick: bool, out: str | None = None) -> dict[str, Any]:
    """Aligned vs independent sequences, interleaved (the order alternates every repeat); wall and
    CPU time (``time.process_time``) per run, load average before each run; medians."""
    import json
    import os
    from pathlib import Path

    from layerscope.projection.sequence import project_sequence

    layers = ["relu1", "relu2", "fc1", "relu3", "fc2"]
    n = 1_000 if quick else 2_000
    acts, y, pred = _mnist_cnn_activations(layers, n)
    frames = [acts[k] for k in layers]
    project_sequence([f[:300] for f in frames[-2:]], y[:300], "tsne", 0, perplexity=10, n_iter=5,
                     early_exaggeration_iter=5)  # imports, warm-up
    runs: dict[str, list[tuple[float, float, float]]] = {"independent": [], "aligned": []}
    seqs: dict[str, list[Any]] = {"independent": [], "aligned": []}
    for r in range(repeats):  # seed = repeat: NH is compared over seeds, not on one layout
        for name in (("independent", "aligned") if r % 2 == 0 else ("aligned", "independent")):
            load = os.getloadavg()[0]
            w0, c0 = time.perf_counter(), time.process_time()
            seqs[name].append(project_sequence(frames, y, "tsne", r, aligned=name == "aligned", layers=layers,
                                               predictions=pred, nh_original=False))
            runs[name].append((time.perf_counter() - w0, time.process_time() - c0, load))
    nh = {k: np.mean([sq.nh() for sq in v], axis=0) for k, v in seqs.items()}  # per layer, mean over seeds
    by_seed = {k: [float(np.mean(sq.nh())) for sq in v] for k, v in seqs.items()}
    diff = np.array(by_seed["aligned"]) - np.array(by_seed["independent"])
    ali = seqs["aligned"][-1]
    med = {k: (statistics.median(w for w, _, _ in v), statistics.median(c for _, c, _ in v)) for k, v in runs.items()}
    print(f"\n## 3. Sequence of {len(layers)} layer projections (mnist-cnn, {n:,} MNIST test observations), interleaved")
    print(f"layer     | NH independent | NH aligned   (means over seeds 0-{repeats - 1})")
    for lay, a_, b_ in zip(layers, nh["independent"], nh["aligned"]):
        print(f"{lay:<9} | {a_:.4f}         | {b_:.4f}")
    print(f"mean NH: independent {np.mean(nh['independent']):.4f}, aligned {np.mean(nh['aligned']):.4f}; "
          f"aligned - independent per seed: {', '.join(f'{d:+.4f}' for d in diff)}")
    print(f"mean displacement between frames (in units of frame spread): independent "
          f"{np.mean([np.mean(sq.displacement()) for sq in seqs['independent']]):.3f}, aligned "
          f"{np.mean([np.mean(sq.displacement()) for sq in seqs['aligned']]):.3f}")
    print(f"time over {repeats} runs each: independent median wall {med['independent'][0]:.1f} s / CPU "
          f"{med['independent'][1]:.1f} s, aligned wall {med['aligned'][0]:.1f} s / CPU {med['aligned'][1]:.1f} s "
          f"-> speed-up wall {med['independent'][0] / med['aligned'][0]:.2f}x, CPU "
          f"{med['independent'][1] / med['aligned'][1]:.2f}x (target >= 1.5x at equal or better NH); load "
          f"{statistics.median(x for v in runs.values() for _, _, x in v):.1f}")
    doc = {"n": n, "layers": layers, "repeats": repeats,
           "runs": {k: [{"wall_s": round(w, 3), "cpu_s": round(c, 3), "load_before": round(ld, 2)} for w, c, ld in v]
                    for k, v in runs.items()},
           "nh": {k: [float(v) for v in nh[k]] for k in nh},  # per layer, mean over seeds
           "mean_nh": {k: float(np.mean(nh[k])) for k in nh},
           "mean_nh_by_seed": by_seed, "seeds": list(range(repeats)),
           "speedup_wall": round(med["independent"][0] / med["aligned"][0], 2),
           "speedup_cpu": round(med["independent"][1] / med["aligned"][1], 2),
           "aligned_schedule": ali.parameters}
    if out:
        Path(out).write_text(json.dumps(doc, indent=1))
    return doc


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--quick", action="store_true", help="smaller sizes, for a smoke run")
    ap.add_argument("--only", choices=["nh", "tsne", "aligned"], default=None)
    ap.add_argument("--out", default=None, help="aligned: write the measurements as JSON here")
    args = ap.parse_args()
    torch.set_num_threads(1)
    import os

    print(f"bench/projection.py: repeats={args.repeats}, quick={args.quick}, cpu count={os.cpu_count()}")
    if args.only in (None, "nh"):
        bench_nh(args.repeats, args.quick)
    if args.only in (None, "tsne"):
        bench_tsne(args.repeats, args.quick)
    if args.only in (None, "aligned"):
        bench_aligned(args.repeats, args.quick, args.out)


if __name__ == "__main__":
    main()
