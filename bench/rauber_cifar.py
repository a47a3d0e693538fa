"""Rauber et al. 2017, Fig. 9 on CIFAR-10: NH and AC of the CNN's last hidden layer, before and after training.

The paper: CNN (2 x conv32, pool, 2 x conv64, pool, dense 4096, dense 512, dropout) trained with
SGD + momentum on the 50,000 CIFAR-10 training images; t-SNE of a test subset; last hidden layer
NH 53.43 %, AC 78.7 %. Here: the same CNN (``cnn:dropout=0.5``: dropout after both dense layers)
trained with the ``rauber`` recipe on the CIFAR-10 subset of ``LAYERSCOPE_SHARED_DATA`` (the
official train images 0–3,999 and test images 0–999) for ``--epochs`` epochs; layers ``relu4``
(last conv) and ``relu6`` (last hidden = dense 512). All 1,000 test images are projected (fewer than
the paper's 2,000 exist), so the AC of the projected subset is the AC of the full test split here.

    LAYERSCOPE_SHARED_DATA=... nice -n 10 python bench/rauber_cifar.py [--epochs 15] [--work DIR]
"""

from __future__ import annotations

import argparse
import os
import tempfile
from pathlib import Path

from _rauber import reproduce


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--epochs", type=int, default=15)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--work", type=Path, default=Path(tempfile.mkdtemp(prefix="rauber-cifar-")))
    args = ap.parse_args()
    shared = os.environ.get("LAYERSCOPE_SHARED_DATA")
    if not shared:
        raise SystemExit("set LAYERSCOPE_SHARED_DATA to the shared data folder (for the CIFAR-10 subset)")
    npz = Path(shared) / "cifar10" / "cifar10_subset.npz"
    doc = reproduce(
        "rauber_cifar", "cnn:dropout=0.5", f"cifar10:{npz}:train", f"cifar10:{npz}:test", ["relu4", "relu6"],
        epochs=args.epochs, limit=None, n_project=2000, seed=args.seed, work=args.work, shared=shared,
        paper={"last hidden layer NH": "53.43 %", "AC": "78.7 %", "training data": "50,000 CIFAR-10 images"},
    )
    print(Path(__file__).resolve().parent.joinpath("results", "rauber_cifar.md").read_text())
    assert doc["rows"]


if __name__ == "__main__":
    main()
