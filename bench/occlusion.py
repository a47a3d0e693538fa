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

3. ``--check``: the real check of issue 4 (no timing). For 20 test images of ``mnist-cnn`` (7x7
   square, stride 1) and of ``resnet20-cifar10`` (8x8, stride 2; CIFAR-10 subset from the shared
   data folder, ``--cifar PATH``): the drop of the true-class probability when the square covers
   the object (MNIST: the window's centre pixel is ink; CIFAR: the window's centre lies in the
   central 16x16) versus when it lies on the empty border (MNIST: no ink in the window; CIFAR:
   the window's centre in the outer 4-pixel frame), and how often the map's minimum is on the
   object.

Usage: python bench/occlusion.py [--repeats 5] [--threads 1] [--check] [--cifar PATH]
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
    ap.add_argument("--check", action="store_true", help="Also run the real check on MNIST and CIFAR-10.")
    ap.add_argument("--cifar", default=None, help="CIFAR-10 subset .npz (default: ../shared/data/cifar10/...).")
    ap.add_argument("--n", type=int, default=20, help="Images for --check.")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    if args.check:
        real_check(args.n, args.cifar)

    from layerscope.convnets.occlusion import dataset_mean, occlusion, window_grid
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


def real_check(n: int, cifar: str | None) -> None:
    """Occlusion of the true-class probability: object vs empty border, on real test images."""
    from pathlib import Path

    from layerscope.convnets.occlusion import dataset_mean, occlusion
    from layerscope.data import load_dataset
    from layerscope.loading import load_model

    def run(name: str, model: torch.nn.Module, ds: object, size: int, stride: int,
            on_object: Callable[[int, np.ndarray, np.ndarray], np.ndarray],
            on_border: Callable[[int, np.ndarray, np.ndarray], np.ndarray],
            covers: Callable[[int, np.ndarray, np.ndarray], np.ndarray] | None = None) -> None:
        grey = dataset_mean(ds)
        rows: list[tuple[float, float, float, bool, bool]] = []
        for i in range(n):
            x, y = ds.x[i], int(ds.y[i])  # type: ignore[attr-defined]
            res = occlusion(model, x, target=y, size=size, stride=stride, value=grey)
            rw, cw = res.windows
            obj = on_object(i, rw, cw)
            bor = on_border(i, rw, cw)
            drop = res.base_probability - res.probability
            amin = np.unravel_index(int(np.argmin(res.probability)), res.probability.shape)
            rows.append((float(drop[obj].mean()) if obj.any() else np.nan,
                         float(drop[bor].mean()) if bor.any() else np.nan,
                         float(np.abs(drop[bor]).max()) if bor.any() else np.nan,
                         bool((covers or on_object)(i, rw, cw)[amin]), res.base_label == y))
        a = np.array(rows, dtype=np.float64)
        print(f"[check] {name}: {n} test images, {size}x{size} square, stride {stride}, grey = data mean")
        print(f"    mean drop of p(true) with the square on the object: {np.nanmean(a[:, 0]):.4f}")
        print(f"    mean drop of p(true) with the square on the empty border: {np.nanmean(a[:, 1]):.4f}")
        print(f"    largest |drop| on the border, median over images: {np.nanmedian(a[:, 2]):.4f}")
        print(f"    images whose minimum of p(true) lies on the object: {int(a[:, 3].sum())}/{n}")
        print(f"    correctly classified (unoccluded): {int(a[:, 4].sum())}/{n}")
        for i, r in enumerate(rows):
            print(f"      image {i:2d}: object drop {r[0]:.4f}  border drop {r[1]:+.4f}  min on object {r[3]}")

    mn = load_dataset("mnist:test")
    ink = (mn.x[:n, 0] > 0.5).numpy()

    def mn_obj(i: int, rw: np.ndarray, cw: np.ndarray) -> np.ndarray:
        cr = (rw[:, 0] + rw[:, 1] - 1) // 2
        cc = (cw[:, 0] + cw[:, 1] - 1) // 2
        return ink[i][np.ix_(cr, cc)]

    def mn_covers(i: int, rw: np.ndarray, cw: np.ndarray) -> np.ndarray:
        return np.array([[ink[i][r0:r1, c0:c1].any() for c0, c1 in cw] for r0, r1 in rw])

    def mn_border(i: int, rw: np.ndarray, cw: np.ndarray) -> np.ndarray:
        any_ink = (mn.x[i, 0] > 0).numpy()
        out = np.zeros((len(rw), len(cw)), bool)
        for a, (r0, r1) in enumerate(rw):
            for b, (c0, c1) in enumerate(cw):
                out[a, b] = not any_ink[r0:r1, c0:c1].any()
        return out

    run("mnist-cnn", load_model("mnist-cnn"), mn, 7, 1, mn_obj, mn_border, mn_covers)
    path = Path(cifar) if cifar else Path(__file__).resolve().parents[1].parent / "shared" / "data" / "cifar10" / "cifar10_subset.npz"
    if not path.exists():
        print(f"[check] CIFAR-10 subset not found at {path}: skipped")
        return
    cf = load_dataset(f"cifar10:{path}:test")

    def centre(rw: np.ndarray, cw: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return (rw[:, 0] + rw[:, 1] - 1) / 2, (cw[:, 0] + cw[:, 1] - 1) / 2

    def cf_obj(i: int, rw: np.ndarray, cw: np.ndarray) -> np.ndarray:
        cr, cc = centre(rw, cw)
        return ((cr >= 8) & (cr < 24))[:, None] & ((cc >= 8) & (cc < 24))[None, :]

    def cf_border(i: int, rw: np.ndarray, cw: np.ndarray) -> np.ndarray:
        cr, cc = centre(rw, cw)
        return ~(((cr >= 4) & (cr < 28))[:, None] & ((cc >= 4) & (cc < 28))[None, :])

    run("resnet20-cifar10", load_model("resnet20-cifar10"), cf, 8, 2, cf_obj, cf_border)


if __name__ == "__main__":
    main()
