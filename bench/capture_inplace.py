"""Benchmark: the cost of in-place detection in capture, before vs after, in one run.

Issue 11 (2): ``capture`` used to keep ``output.detach()``, which a later in-place operation
(``ReLU(inplace=True)``, ``out += identity``) overwrites. Capture now checks each stored tensor's
version counter after the pass and, for layers the model changes in place, records a copy and runs
the pass again. This bench measures what that costs, side by side in one run, interleaved (the order rotates every
repeat), median over repeats, wall and CPU time, 1 thread:

* ``bare``   — the model over the same batches, no hooks (``no_grad``, eval);
* ``before`` — ``collect_activations`` of the commit before the change (read with ``git show``
  from this repository's history and loaded as a module: the real previous code, not a stand-in);
* ``after``  — today's ``collect_activations``.

Models: ``mnist-cnn`` (no in-place op; 10,000 MNIST test images) and the bundled ResNet-20 with its
ReLUs switched to ``inplace=True`` as torchvision builds them (1,000 CIFAR-10 test images from the
shared data folder, or random inputs if it is absent). Every leaf layer, full maps. It also counts
the values ``before`` got wrong on the in-place model, against a reference that clones in the hook.

Usage: python bench/capture_inplace.py [--repeats 5] [--before REV]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from _before import load_before

REPO = Path(__file__).resolve().parents[1]
BEFORE_REV = "7544595"  # main before the seam / in-place change


def timed(fn: Callable[[], Any]) -> tuple[float, float, Any]:
    c0, t0 = time.process_time(), time.perf_counter()
    out = fn()
    return time.perf_counter() - t0, time.process_time() - c0, out


def reference(model: torch.nn.Module, x: torch.Tensor, names: list[str], batch: int) -> dict[str, np.ndarray]:
    """Each layer's output cloned inside its hook: right whatever happens to it later."""
    mods = dict(model.named_modules())
    store: dict[str, list[np.ndarray]] = {n: [] for n in names}
    hs = [mods[n].register_forward_hook(lambda m, i, o, n=n: store[n].append(o.detach().clone().numpy())) for n in names]
    try:
        with torch.no_grad():
            for s in range(0, len(x), batch):
                model(x[s : s + batch])
    finally:
        for h in hs:
            h.remove()
    return {n: np.concatenate(v) for n, v in store.items()}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--before", default=BEFORE_REV)
    args = ap.parse_args()

    import layerscope as ls

    torch.set_num_threads(1)
    before = load_before(args.before)
    mnist = ls.load_dataset("mnist:test")
    resnet = ls.load_model("resnet20-cifar10")
    for m in resnet.modules():
        if isinstance(m, torch.nn.ReLU):
            m.inplace = True
    shared = Path(os.environ.get("LAYERSCOPE_SHARED_DATA", REPO.parent / "shared" / "data"))
    cifar = shared / "cifar10" / "cifar10_subset.npz"
    if cifar.exists():
        cdata = ls.load_dataset(f"cifar10:{cifar}:test")
        cx, cy = cdata.x[:1000], cdata.y[:1000]
        cnote = "1,000 CIFAR-10 test images"
    else:
        cx, cy = torch.randn(1000, 3, 32, 32), torch.zeros(1000, dtype=torch.long)
        cnote = "1,000 random inputs (CIFAR-10 subset not found)"
    configs = {
        "mnist-cnn (no in-place op), 10,000 MNIST": (ls.load_model("mnist-cnn"), mnist.x, mnist.y),
        f"ResNet-20 with in-place ReLUs, {cnote}": (resnet, cx, cy),
    }
    print(f"load average {os.getloadavg()[0]:.2f} {os.getloadavg()[1]:.2f}; torch threads 1; median of {args.repeats}, interleaved")
    for label, (model, x, y) in configs.items():
        names = [r.name for r in ls.list_layers(model) if r.is_leaf]
        ds = torch.utils.data.TensorDataset(x, y)
        runs: dict[str, Callable[[], Any]] = {
            "bare": lambda: _bare(model, x, args.batch),
            "before": lambda: before.collect_activations(model, ds, names, batch_size=args.batch),
            "after": lambda: ls.collect_activations(model, ds, names, batch_size=args.batch),
        }
        wall: dict[str, list[float]] = {k: [] for k in runs}
        cpu: dict[str, list[float]] = {k: [] for k in runs}
        outs: dict[str, Any] = {}
        order = list(runs)
        for rep in range(args.repeats):
            # rotate the order every repeat: a run that follows one which freed hundreds of MB reuses
            # warm pages, so a fixed order would favour whichever comes after "before"
            for k in order[rep % len(order):] + order[: rep % len(order)]:
                fn = runs[k]
                w, c, o = timed(fn)
                wall[k].append(w)
                cpu[k].append(c)
                outs[k] = o
        med = {k: statistics.median(v) for k, v in wall.items()}
        cmed = {k: statistics.median(v) for k, v in cpu.items()}
        mb = sum(a.nbytes for a in outs["after"].arrays.values()) / 2**20
        ref = reference(model, x, names, args.batch)
        wrong_before = sum(int((outs["before"][n] != ref[n]).sum()) for n in names)
        wrong_after = sum(int((outs["after"][n] != ref[n]).sum()) for n in names)
        total = sum(ref[n].size for n in names)
        print(f"{label}: {len(names)} layers, {mb:.0f} MB captured")
        print(
            f"  wall  bare {med['bare']:.3f}s  before {med['before']:.3f}s ({med['before'] / med['bare']:.3f}x bare)  "
            f"after {med['after']:.3f}s ({med['after'] / med['bare']:.3f}x bare)  after/before {med['after'] / med['before']:.3f}x"
        )
        print(
            f"  cpu   bare {cmed['bare']:.3f}s  before {cmed['before']:.3f}s ({cmed['before'] / cmed['bare']:.3f}x)  "
            f"after {cmed['after']:.3f}s ({cmed['after'] / cmed['bare']:.3f}x)  after/before {cmed['after'] / cmed['before']:.3f}x"
        )
        print(
            f"  values wrong vs a clone-in-hook reference: before {wrong_before:,} of {total:,} "
            f"({100 * wrong_before / total:.1f} %), after {wrong_after:,}; layers copied after: "
            f"{outs['after'].meta.get('copied_in_place', [])}"
        )
    print(f"load average at the end {os.getloadavg()[0]:.2f}")


def _bare(model: torch.nn.Module, x: torch.Tensor, batch: int) -> None:
    with torch.no_grad():
        model.eval()
        for s in range(0, len(x), batch):
            model(x[s : s + batch])


if __name__ == "__main__":
    sys.exit(main())
