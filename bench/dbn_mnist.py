"""An MNIST DBN: CD reconstruction error per layer per epoch, and Erhan et al.'s views of its units
(issue 15, part 1; Erhan, Bengio, Courville & Vincent 2009).

Sizes fit a 2-core machine shared by many jobs (load average 15-25 while it ran).

1. Greedy CD-1 pre-training of a 784-500-500-500 DBN (Hinton et al. 2006 used 500-500-2000; a 1000-unit third RBM
   trained at lr 0.1 turned every unit off in a trial run, see the report) on
   the first 3,000 MNIST training images (pixels / 255, Bernoulli visibles), 5 epochs per RBM,
   mini-batches of 100, lr 0.1, momentum 0.5 then 0.9, weight cost 0.0002 -> the reconstruction error
   per layer per epoch (and a PCD-1 run of the first RBM beside CD-1 and CD-5 for comparison).
2. For units 0-7 of layers 1-3: activation maximization (``maximize``, Erhan's method: gradient ascent
   with ||x|| = rho, rho = median norm of the images, 100 steps, 3 restarts), the sampling view (unit
   clamped on in the top RBM, 100 Gibbs steps, 32 chains started from the data's up-pass, mean-field
   down-pass) and the linear combination of lower filters; PNG grids and the views' correlations.
3. The DBN fine-tuned as a classifier (``to_mlp(10)``) vs a randomly initialised DBNNet of the same
   shape, 3 epochs of Adam (lr 1e-3; SGD lr 0.1 with momentum 0.9 left the random sigmoid net at chance in a trial)
   on the 3,000 images, test accuracy on the 10,000 test images.

MNIST is read from ``$LAYERSCOPE_SHARED_DATA/mnist`` when set, else the bundled copy.
Run:  nice -n 10 python bench/dbn_mnist.py [--quick]
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import tempfile
import time
from pathlib import Path

import torch

RESULTS = Path(__file__).resolve().parent / "results"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args()
    torch.set_num_threads(1)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    from layerscope.data import load_mnist
    from layerscope.dbn import DBNNet, RBM
    from layerscope.dbn.units import dbn_units, pretrain_dbn
    from layerscope.training import evaluate, train

    shared = os.environ.get("LAYERSCOPE_SHARED_DATA")
    root = Path(shared) / "mnist" if shared and (Path(shared) / "mnist").is_dir() else None
    train_set = load_mnist(root, "train")
    test_set = load_mnist(root, "test")
    n = 1000 if args.quick else 3000
    epochs = 2 if args.quick else 5
    sizes = [500, 500, 500]
    sub = train_set.subset(range(n))
    load = [round(v, 2) for v in os.getloadavg()]
    out: dict = {"load_average_start": load, "n_train": n, "sizes": sizes, "epochs": epochs}
    t0 = time.time()
    pre = pretrain_dbn(sub, sizes, epochs=epochs, lr=0.1, batch_size=100, random_state=0, data_spec=f"mnist:train[:{n}]")
    pre.save(RESULTS / "dbn_mnist_pretrain")
    out["pretrain_seconds"] = round(time.time() - t0, 1)
    out["mean_activity"] = pre.metrics["mean_activity"]
    out["reconstruction_error"] = [[round(e["reconstruction_error"], 5) for e in h] for h in pre.metrics["history"]]
    # CD-1 vs CD-5 vs PCD-1 on the first layer alone (same seed, same data)
    variants = {}
    for name, kw in (("cd1", dict(k=1)), ("cd5", dict(k=5)), ("pcd1", dict(k=1, persistent=True))):
        t = time.time()
        rbm = RBM(784, sizes[0], random_state=0).fit(sub, epochs=epochs, lr=0.1 if name != "pcd1" else 0.01,
                                                     batch_size=100, random_state=0, **kw)
        variants[name] = {"reconstruction_error": [round(e["reconstruction_error"], 5) for e in rbm.history_],
                          "free_energy_gap": [round(e["free_energy_gap"], 3) for e in rbm.history_],
                          "test_free_energy_mean": float(rbm.free_energy(test_set.x[:2000].reshape(2000, -1)).mean()),
                          "lr": 0.1 if name != "pcd1" else 0.01, "seconds": round(time.time() - t, 1)}
    out["first_layer_variants"] = variants
    # Erhan's views
    t = time.time()
    units = dbn_units(pre.dbn, layers=(1, 2, 3), units=range(8), data=sub.x[:2000], n_chains=32,
                      n_gibbs=50 if args.quick else 100, steps=50 if args.quick else 100, restarts=3, random_state=0)
    units.save(RESULTS / "dbn_mnist_units")
    out["units_seconds"] = round(time.time() - t, 1)
    out["units"] = units.metrics["layers"]
    # fine-tuning: pre-trained vs random init
    ft = {}
    for init in ("pretrained", "random"):
        net = pre.dbn.to_mlp(10, (1, 28, 28), random_state=0) if init == "pretrained" else DBNNet((1, 28, 28), sizes, 10, random_state=0)
        with tempfile.TemporaryDirectory() as tmp:
            train(net, sub, out_dir=tmp, epochs=3, checkpoints=[3], batch_size=100, lr=1e-3, optimizer="adam", seed=0)
        ft[init] = evaluate(net, test_set)
    out["finetune_test_accuracy"] = ft
    out["seconds"] = round(time.time() - t0, 1)
    name = "dbn_mnist_quick.json" if args.quick else "dbn_mnist.json"
    (RESULTS / name).write_text(json.dumps(out, indent=2) + "\n")
    lines = ["# MNIST DBN (784-500-500-500): CD reconstruction error and Erhan's views", "",
             f"{n} training images, {epochs} CD-1 epochs per RBM, batch 100, lr 0.1, momentum 0.5 -> 0.9, "
             f"weight cost 0.0002, seed 0; load average at start {load}; {out['seconds']} s in all.", "",
             "| RBM | reconstruction error per epoch |", "|---|---|"]
    lines += [f"| {i} | " + ", ".join(f"{v:.4f}" for v in h) + " |" for i, h in enumerate(out["reconstruction_error"], 1)]
    lines += ["", "First RBM alone (784-500): CD-1, CD-5, PCD-1", "", "| variant | lr | recon. error first -> last | "
              "mean free energy, 2,000 test images |", "|---|---|---|---|"]
    lines += [f"| {k} | {v['lr']} | {v['reconstruction_error'][0]:.4f} -> {v['reconstruction_error'][-1]:.4f} | "
              f"{v['test_free_energy_mean']:.2f} |" for k, v in variants.items()]
    lines += ["", "Erhan's views of units 0-7 (figures in dbn_mnist_units/)", "",
              "| layer | max activation (maximize) | data max | restart consistency | corr(max, sampling) | "
              "corr(max, sampling - layer mean) | corr(max, linear) |", "|---|---|---|---|---|---|---|"]
    for r in out["units"]:
        lines.append(f"| {r['layer']} | {r['mean_activation']:.3f} | {r['mean_data_max']:.3f} | {r['mean_consistency']:.3f} | "
                     f"{r['corr_maximize_sampling']:.3f} | {r['corr_maximize_sampling_contrast']:.3f} | {r['corr_maximize_linear']:.3f} |")
    lines += ["", f"Fine-tuned 3 epochs (Adam, lr 1e-3, batch 100) on the {n} images, test accuracy on 10,000: "
              f"pre-trained {ft['pretrained']:.4f}, random init {ft['random']:.4f}."]
    (RESULTS / name.replace(".json", ".md")).write_text("\n".join(lines) + "\n")
    print(json.dumps(out, indent=1)[:3000])


if __name__ == "__main__":
    main()
