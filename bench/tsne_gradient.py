"""How accurate is the t-SNE repulsive gradient on the grid layerscope chooses? (companion of bench/tsne.py)

For each n, two final t-SNE layouts of the same activations (layer ``relu3`` of ``mnist-cnn`` on
a stratified MNIST-train subset, as in bench/tsne.py): layerscope's ``project`` and openTSNE's
defaults. On each layout, the negative (repulsive) gradient and its normaliser sum_Q are computed

* exactly, by a plain O(n^2) NumPy loop over row blocks (hand-written: it is the reference);
* by openTSNE's FFT on the grid layerscope uses for n (:func:`tsne_grid`, FFT from 500 points);
* by openTSNE's FFT on its own default grid (1-unit boxes, 3 points, >= 50 boxes);
* by openTSNE's Barnes-Hut (theta 0.5; what openTSNE's defaults run below 10,000 points).

Error = mean over points of |g - g_exact| / mean over points of |g_exact| (a share of the typical
gradient), and the relative error of sum_Q; CPU ms per call (median of 5). The layout's spread
(std of the coordinates) shows how much a coarse grid shrinks the embedding. One thread.

    nice -n 10 python bench/tsne_gradient.py [--sizes 1000,2000,5000,10000]
"""

from __future__ import annotations

import os

for _v in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS"):
    os.environ[_v] = "1"

import argparse  # noqa: E402
import json  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any, Callable  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
RESULTS = Path(__file__).resolve().parent / "results"


def exact_negative_gradient(emb: np.ndarray, block: int = 1000) -> tuple[np.ndarray, float]:
    """openTSNE's convention: -sum_j q_ij^2 (y_i - y_j) / Z with q_ij = 1 / (1 + |y_i - y_j|^2), Z = sum q."""
    n = len(emb)
    g = np.zeros_like(emb)
    z = 0.0
    for s in range(0, n, block):
        d = emb[s:s + block, None, :] - emb[None, :, :]
        q = 1.0 / (1.0 + (d ** 2).sum(-1))
        q[np.arange(len(q)), np.arange(s, s + len(q))] = 0.0
        z += float(q.sum())
        g[s:s + block] = -((q ** 2)[:, :, None] * d).sum(1)
    return g / z, z


def measure(emb: np.ndarray) -> dict[str, Any]:
    from openTSNE import _tsne
    from openTSNE.quad_tree import QuadTree

    from layerscope.projection.projectors import _fft_grid

    e = np.ascontiguousarray(emb, dtype=np.float64)
    g_ref, z_ref = exact_negative_gradient(e)
    ours = {k: v for k, v in _fft_grid(len(e)).items() if k != "negative_gradient_method"}
    methods: dict[str, Callable[[np.ndarray], float]] = {
        "fft_layerscope_grid": lambda g: _tsne.estimate_negative_gradient_fft_2d(e, g, **ours, dof=1),
        "fft_opentsne_default_grid": lambda g: _tsne.estimate_negative_gradient_fft_2d(
            e, g, n_interpolation_points=3, min_num_intervals=50, ints_in_interval=1.0, dof=1),
        "bh_theta_0.5": lambda g: _tsne.estimate_negative_gradient_bh(
            QuadTree(e), e, g, theta=0.5, dof=1, num_threads=1, pairwise_normalization=True),
    }
    out: dict[str, Any] = {"spread": round(float(e.std()), 3), "layerscope_grid": ours}
    for name, f in methods.items():
        g = np.zeros_like(e)
        sq = float(f(g))
        times = []
        for _ in range(5):
            c = time.process_time()
            f(np.zeros_like(e))
            times.append(time.process_time() - c)
        err = float(np.linalg.norm(g - g_ref, axis=1).mean() / np.linalg.norm(g_ref, axis=1).mean())
        out[name] = {"gradient_error": round(err, 4), "sum_q_error": round((sq - z_ref) / z_ref, 5),
                     "cpu_ms": round(1e3 * statistics.median(times), 3)}
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default="1000,2000,5000,10000")
    a = ap.parse_args()
    from openTSNE import TSNE
    from threadpoolctl import threadpool_limits

    from layerscope.projection import project
    from tsne import activations

    torch.set_num_threads(1)
    threadpool_limits(1)
    sizes = [int(s) for s in a.sizes.split(",")]
    X, Y = activations(max(sizes))
    rows = []
    for n in sizes:
        x, y = X[:n], Y[:n]
        for layout, emb in (("layerscope", project(x, y, "tsne", 0, nh_original=False).embedding),
                            ("openTSNE", np.asarray(TSNE(n_jobs=1, random_state=0).fit(x)))):
            row = {"n": n, "layout": layout, **measure(emb), "load": round(os.getloadavg()[0], 2)}
            rows.append(row)
            print(json.dumps(row), flush=True)
    doc = {"data": "mnist-cnn relu3 (256 units), stratified MNIST-train subset (seed 0), t-SNE seed 0, 1 thread",
           "rows": rows}
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "tsne_gradient.json").write_text(json.dumps(doc, indent=1))
    lines = ["# t-SNE repulsive-gradient error on final layouts (bench/tsne_gradient.py)", "",
             f"{doc['data']}. Error = mean |g - g_exact| / mean |g_exact| over points; sum_Q = the "
             "normaliser's relative error; ms = CPU per gradient call (median of 5). Spread = std of the "
             "layout's coordinates.", "",
             "| n | layout | spread | layerscope grid (box/points) | error: layerscope grid | openTSNE FFT default | "
             "Barnes-Hut 0.5 | sum_Q err: ours / oT FFT / BH | ms: ours / oT FFT / BH | load |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        ks = ("fft_layerscope_grid", "fft_opentsne_default_grid", "bh_theta_0.5")
        lines.append(
            f"| {r['n']:,} | {r['layout']} | {r['spread']:.1f} | {r['layerscope_grid']['ints_in_interval']}/"
            f"{r['layerscope_grid']['n_interpolation_points']} | "
            + " | ".join(f"{r[k]['gradient_error']:.3f}" for k in ks) + " | "
            + " / ".join(f"{r[k]['sum_q_error']:+.4f}" for k in ks) + " | "
            + " / ".join(f"{r[k]['cpu_ms']:.2f}" for k in ks) + f" | {r['load']:.1f} |")
    (RESULTS / "tsne_gradient.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
