"""Benchmark: activation maximisation of all 64 channels of a conv layer, ours vs lucent's way.

* **ours** — ``layerscope.featurevis.maximize(method="lucid")``: the 64 channels are optimised
  together as one batch of 64 images, and the forward pass stops after the layer (nothing above
  it is computed).
* **baseline** — the real per-unit call: ``maximize`` once per channel (batch of 1), as a user
  without batching would write it. Interleaved with the other variants (order rotated each repeat);
  wall and CPU time and the load average are printed.
* **lucent's way (hand loop)** — what torch-lucent's ``render_vis`` does: one optimisation per
  channel (batch of 1) through the full model, the layer's output read by a forward hook.
  Implemented here with the same parameterisation (FFT, 1/f scaling), the same transforms and
  the same optimiser (Adam, lr 0.05), so the ratio measures only batching and the early stop.
  torch-lucent itself is not timed (it needs a separate multi-GB environment with torchvision).

Two further variants split the gain: per channel with the early stop, and batched without it.
Model: RauberCNN (2 x conv32, pool, 2 x conv64, pool, dense 4096, dense 512) on 1x28x28 MNIST
inputs; layers ``conv3`` (first half) and ``conv4`` (last conv layer), both 64 channels. Weights
do not change the cost, so a seeded random initialisation is used.

Run: ``python bench/actmax.py [--steps 20] [--repeats 3] [--threads 1] [--device cpu|cuda]``.
Prints seconds per variant (median over repeats, all measured in the same run) and the ratios.

``python bench/actmax.py --check [MODEL ...] [--cifar PATH]`` instead runs the issue's real check
(class-logit images classified as their class with p > 0.99; last-conv channels above their max
over the MNIST test set) on the bundled models or on run folders from ``layerscope train``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import numpy as np
import torch
from torch import nn

from layerscope.featurevis import maximize
from layerscope.featurevis.param import FFTParam
from layerscope.featurevis.transforms import compose, standard_transforms
from layerscope.models import RauberCNN


class _Stop(Exception):
    pass


def hand_loop(model: nn.Module, layer: str, channels: list[int], steps: int, *, batched: bool, stop: bool, seed: int = 0) -> float:
    """One optimisation per channel (``batched=False``) or all at once; full model or stopped early."""
    dev = next(model.parameters()).device
    module = dict(model.named_modules())[layer]
    shape = model.input_shape
    tf = compose(standard_transforms(shape[-1]), size=shape[1:])
    store: dict[str, torch.Tensor] = {}

    def hook(m: nn.Module, i: object, o: torch.Tensor) -> None:
        store["a"] = o
        if stop:
            raise _Stop

    h = module.register_forward_hook(hook)
    groups = [channels] if batched else [[c] for c in channels]
    t0 = time.perf_counter()
    try:
        for group in groups:
            gen = torch.Generator().manual_seed(seed)
            p = FFTParam(len(group), shape, generator=gen, value_range=(0.0, 1.0), device=dev)
            opt = torch.optim.Adam(p.params, lr=0.05)
            idx = torch.as_tensor(group, device=dev)
            for _ in range(steps):
                x = tf(p(), gen)
                try:
                    model(x)
                except _Stop:
                    pass
                a = store["a"]
                vals = a.flatten(2).mean(2).gather(1, idx[:, None])[:, 0]
                opt.zero_grad()
                (-vals.sum()).backward()
                opt.step()
        if dev.type == "cuda":
            torch.cuda.synchronize()
    finally:
        h.remove()
    return time.perf_counter() - t0


def ours(model: nn.Module, layer: str, channels: list[int], steps: int, seed: int = 0, *, per_unit: bool = False) -> float:
    """``maximize`` on all channels in one batched call, or (``per_unit``) the real per-unit
    baseline: one ``maximize`` call per channel, as a user without batching would write it."""
    dev = next(model.parameters()).device
    t0 = time.perf_counter()
    if per_unit:
        for c in channels:
            maximize(model, layer, [c], kind="channel", method="lucid", steps=steps, random_state=seed, batch_size=1)
    else:
        maximize(model, layer, channels, kind="channel", method="lucid", steps=steps, random_state=seed,
                 batch_size=len(channels))
    if dev.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - t0


def real_check(specs: list[str], steps_erhan: int, steps_lucid: int, cifar: str | None) -> None:
    """The issue's real check: class-logit images classified as their class (p > 0.99); the last
    conv layer's channels driven above their max over the MNIST test set."""
    from layerscope.data import load_dataset
    from layerscope.loading import load_model

    mnist = load_dataset("mnist:test")
    for spec in specs:
        model = load_model(spec)
        is_cifar = tuple(model.input_shape) == (3, 32, 32)
        if is_cifar and cifar is None:
            print(f"\n{spec}: skipped (pass --cifar PATH to the CIFAR-10 subset)")
            continue
        data = load_dataset(f"cifar10:{cifar}:test") if is_cifar else mnist
        names = [n for n, _ in model.named_modules() if n]
        logits = [n for n in names if n in ("out", "fc2", "fc3", "linear")][-1]
        convs = [n for n, m in model.named_modules() if isinstance(m, nn.Conv2d)]
        print(f"\n{spec} ({type(model).__name__}), logits layer {logits}, last conv {convs[-1] if convs else '-'}")
        for method, steps, restarts in (("erhan", steps_erhan, 4), ("lucid", steps_lucid, 2)):
            r = maximize(model, logits, "all", kind="logit", method=method, steps=steps, restarts=restarts, data=data,
                         data_max=False)
            p = r.class_probability
            print(f"  class logits, {method:5s} {steps} steps x {restarts} restarts: p(target) > 0.99 for "
                  f"{int((p > 0.99).sum())}/{len(p)} classes, min p {p.min():.4f}, predicted {r.predicted_class.tolist()}, "
                  f"p = {[round(float(v), 4) for v in p]}  ({r.seconds:.0f} s)", flush=True)
        if is_cifar or not convs:
            continue
        for method, steps in (("erhan", steps_erhan), ("lucid", steps_lucid)):
            r = maximize(model, convs[-1], "all", kind="channel", method=method, steps=steps, restarts=2, data=data)
            above = r.activation > r.data_max
            gap = r.activation - r.data_max
            print(f"  {convs[-1]} channels (mean over the map), {method:5s} {steps} steps: above the test-set max for "
                  f"{int(above.sum())}/{len(above)} channels; smallest margin {gap.min():+.3f}, median ratio "
                  f"reached / data max {np.nanmedian(r.activation / np.where(r.data_max > 0, r.data_max, np.nan)):.2f} "
                  f"(channels with positive max), mean consistency {np.nanmean(r.consistency):.3f}  ({r.seconds:.0f} s)",
                  flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--layers", default="conv3,conv4")
    ap.add_argument("--dense", default="4096x512", help="RauberCNN dense widths (the paper's: 4096x512).")
    ap.add_argument("--check", nargs="*", default=None,
                    help="Instead of timing, run the real check on these models (default: the bundled ones).")
    ap.add_argument("--cifar", default=None, help="CIFAR-10 subset .npz, for the resnet20-cifar10 check.")
    ap.add_argument("--check-steps", default="300,512", help="erhan,lucid steps for --check.")
    ap.add_argument("--json", default=None, help="also write the last layer's medians as JSON here (for run_all)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    if args.check is not None:
        se, sl = (int(v) for v in args.check_steps.split(","))
        real_check(args.check or ["mnist-mlp", "mnist-cnn", "resnet20-cifar10"], se, sl, args.cifar)
        return
    torch.manual_seed(0)
    dense = tuple(int(v) for v in args.dense.split("x"))
    model = RauberCNN((1, 28, 28), 10, dense=dense).to(args.device).eval()
    for q in model.parameters():
        q.requires_grad_(False)
    channels = list(range(64))
    print(f"RauberCNN 1x28x28 dense {args.dense}, 64 channels, {args.steps} steps each, device {args.device}, "
          f"threads {args.threads}, median of {args.repeats} repeats")
    for layer in args.layers.split(","):
        variants = {
            "baseline: maximize called per channel": lambda: ours(model, layer, channels, args.steps, per_unit=True),
            "per channel, full model (lucent's way, hand loop)": lambda: hand_loop(model, layer, channels, args.steps, batched=False, stop=False),
            "per channel, early stop": lambda: hand_loop(model, layer, channels, args.steps, batched=False, stop=True),
            "batched, full model": lambda: hand_loop(model, layer, channels, args.steps, batched=True, stop=False),
            "ours: layerscope maximize (batched + early stop)": lambda: ours(model, layer, channels, args.steps),
        }
        for fn in variants.values():  # warm-up
            fn()
        times: dict[str, list[float]] = {k: [] for k in variants}
        cpus: dict[str, list[float]] = {k: [] for k in variants}
        loads = []
        for r in range(args.repeats):
            names = list(variants)
            names = names[r % len(names):] + names[: r % len(names)]  # interleaved, order rotated
            for k in names:
                loads.append(os.getloadavg()[0])
                c0 = time.process_time()
                times[k].append(variants[k]())
                cpus[k].append(time.process_time() - c0)
        med = {k: statistics.median(v) for k, v in times.items()}
        cmed = {k: statistics.median(v) for k, v in cpus.items()}
        base = med["baseline: maximize called per channel"]
        cbase = cmed["baseline: maximize called per channel"]
        print(f"\nlayer {layer} (load average before runs: median {statistics.median(loads):.1f})")
        for k, v in med.items():
            print(f"  {k:52s} wall {v:8.3f} s  CPU {cmed[k]:8.3f} s   speed-up wall x{base / v:5.2f}  CPU x{cbase / cmed[k]:5.2f}")
        print(f"  RATIO ours vs baseline ({layer}): {base / med['ours: layerscope maximize (batched + early stop)']:.2f}x")
        if args.json:
            import json
            from pathlib import Path

            Path(args.json).write_text(json.dumps({"layer": layer, "steps": args.steps, "repeats": args.repeats,
                                                   "wall_s": med, "cpu_s": cmed, "load": statistics.median(loads)}))


if __name__ == "__main__":
    main()
