"""Rauber et al. 2017, Fig. 5 on MNIST: NH of the MLP's first and last hidden layer, before and after training.

The paper: MLP with 4 hidden ReLU layers of 1,000 units and dropout, trained with SGD + momentum
on the 60,000 MNIST training images; t-SNE of 2,000 test observations; last hidden layer NH
83.78 % before training → 98.36 % after, AC 99.15 % (test accuracy). Here: the same MLP
(``mlp:width=1000,depth=4,dropout=0.5``) trained with the ``rauber`` recipe
(``layerscope.training.RECIPES``) on ``--limit`` training images for ``--epochs`` epochs (sized
for a shared 2-core CPU), layers ``relu1`` (first) and ``relu4`` (last); AC on the whole 10,000
image test split beside the AC of the 2,000 projected ones. See bench/_rauber.py.

    nice -n 10 python bench/rauber_mnist.py [--epochs 15] [--limit 10000] [--work DIR]
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from _rauber import reproduce


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--epochs", type=int, default=15)
    ap.add_argument("--limit", type=int, default=10000, help="training images (stratified subset of 60,000); 0 = all")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--name", default="rauber_mnist", help="stem of the result files in bench/results")
    ap.add_argument("--work", type=Path, default=Path(tempfile.mkdtemp(prefix="rauber-mnist-")))
    args = ap.parse_args()
    doc = reproduce(
        args.name, "mlp:width=1000,depth=4,dropout=0.5", "mnist:train", "mnist:test", ["relu1", "relu4"],
        epochs=args.epochs, limit=args.limit or None, n_project=2000, seed=args.seed, work=args.work,
        paper={"last hidden layer NH before training": "83.78 %", "after training": "98.36 %", "AC": "99.15 %",
               "training data": "60,000 MNIST images", "projected": "2,000 test observations"},
    )
    print(Path(__file__).resolve().parent.joinpath("results", f"{args.name}.md").read_text())
    assert doc["rows"]


if __name__ == "__main__":
    main()
