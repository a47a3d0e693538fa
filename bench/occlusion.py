"""Benchmark: occlusion maps on the bundled ``mnist-cnn``, batched versus one forward per position,
and versus Captum's ``Occlusion`` in the same run.

1. A 28x28 map at stride 1 (``anchor="centred"``, 7x7 grey square, 784 positions):
   layerscope batched (256 positions per forward) vs the same positions with one forward each
   (the loop baseline). Target: >= 5x over the loop.
2. Captum's windows (``anchor="valid"``, 7x7 square, stride 1: 22x22 = 484 positions), true-class
   probability: layerscope batched vs ``captum.attr.Occlusion`` with ``perturbations_per_eval``
   = 1 (its default) and = 256 (same batch as ours). Target: not slower than Captum.

Each configuration runs interleaved with its baseline, median over repeats, printed as ratios
(baseline time / layerscope time: > 1 means layerscope is faster). Results are also checked for
equality (max abs difference).

Usage: python bench/occlusion.py [--repeats 5] [--threads 1]
"""

from __future__ import annotations

import argparse
import statistics
import time
from typing import Callable

import numpy as np
import torch


def _time(fn: Callable[[], object]) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--size", type=int, default=7)
    ap.add_argument("--batch", type=int, default=256)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    from layerscope.attribution.occlusion import dataset_mean, occlusion, window_grid
    from layerscope.data import load_dataset
    from layerscope.loading import load_model

    model = load_model("mnist-cnn")
    ds = load_dataset("mnist:test")
    x, y = ds.x[0], int(ds.y[0])
    grey = float(dataset_mean(ds)[0])
    size = args.size

    def ours_centred() -> np.ndarray:
        return occlusion(model, x, target=y, size=size, stride=1, value=grey, batch_size=args.batch).probability

    rows = window_grid(28, size, 1, "centred")

    def loop_centred() -> np.ndarray:
        out = np.empty((len(rows), len(rows)), dtype=np.float32)
        with torch.no_grad():
            for i, (r0, r1) in enumerate(rows):
                for j, (c0, c1) in enumerate(rows):
                    xo = x.clone()
                    xo[:, r0:r1, c0:c1] = grey
                    out[i, j] = torch.softmax(model(xo[None]), 1)[0, y]
        return out

    diff = float(np.abs(ours_centred() - loop_centred()).max())
    t_ours, t_loop = [], []
    for _ in range(args.repeats):
        t_loop.append(_time(loop_centred))
        t_ours.append(_time(ours_centred))
    m_ours, m_loop = statistics.median(t_ours), statistics.median(t_loop)
    print(f"[1] 28x28 map, {size}x{size} square, stride 1 ({len(rows) ** 2} positions), {args.threads} thread(s)")
    print(f"    layerscope batched ({args.batch}/forward): {m_ours * 1e3:8.1f} ms (median of {args.repeats})")
    print(f"    one forward per position (loop):        {m_loop * 1e3:8.1f} ms")
    print(f"    speed-up over the loop: {m_loop / m_ours:.1f}x (target >= 5x); max |diff| = {diff:.2e}")

    try:
        from captum.attr import Occlusion as CaptumOcclusion
    except ImportError:
        print("[2] captum not installed: skipped")
        return

    def prob(z: torch.Tensor) -> torch.Tensor:
        return torch.softmax(model(z), dim=1)

    cap = CaptumOcclusion(prob)

    def ours_valid() -> np.ndarray:
        return occlusion(model, x, target=y, size=size, stride=1, value=grey, anchor="valid",
                         batch_size=args.batch).pixel_attribution()

    def captum(ppe: int) -> Callable[[], np.ndarray]:
        def run() -> np.ndarray:
            with torch.no_grad():
                a = cap.attribute(x[None], sliding_window_shapes=(1, size, size), strides=(1, 1, 1), baselines=grey,
                                  target=y, perturbations_per_eval=ppe)
            return a[0, 0].numpy()

        return run

    diff = float(np.abs(ours_valid() - captum(args.batch)()).max())
    t_ours, t_c1, t_cb = [], [], []
    for _ in range(args.repeats):
        t_c1.append(_time(captum(1)))
        t_cb.append(_time(captum(args.batch)))
        t_ours.append(_time(ours_valid))
    m_ours, m_c1, m_cb = (statistics.median(t) for t in (t_ours, t_c1, t_cb))
    n_valid = (28 - size + 1) ** 2
    print(f"[2] Captum's windows, {size}x{size} square, stride 1 ({n_valid} positions)")
    print(f"    layerscope batched ({args.batch}/forward):          {m_ours * 1e3:8.1f} ms")
    print(f"    captum Occlusion, perturbations_per_eval=1:     {m_c1 * 1e3:8.1f} ms  -> ratio {m_c1 / m_ours:.1f}x")
    print(f"    captum Occlusion, perturbations_per_eval={args.batch}:   {m_cb * 1e3:8.1f} ms  -> ratio {m_cb / m_ours:.1f}x")
    print(f"    target: ratio >= 1 (not slower than Captum); max |attribution diff| = {diff:.2e}")


if __name__ == "__main__":
    main()
