"""Shared code of bench/rauber_mnist.py and bench/rauber_cifar.py (Rauber et al. 2017, reproduced).

Train a reference model with the ``rauber`` recipe (``layerscope.training.RECIPES``: SGD, momentum
0.9, lr 0.01, batch 128, dropout 0.5 on the hidden layers), keep the checkpoints before (epoch 0)
and after training, project the chosen layers of both with t-SNE (``project_model``: seeded
stratified subset of the test data, NH with k = 6 in 2-D, AC of the projected subset) and
evaluate AC on the whole test split (Rauber et al.'s AC: the network's test accuracy).
"""

from __future__ import annotations

import json
import os
import platform
import time
from pathlib import Path
from typing import Any, Sequence

import torch

RESULTS = Path(__file__).resolve().parent / "results"


def reproduce(
    name: str,
    arch: str,
    train_spec: str,
    test_spec: str,
    layers: Sequence[str],
    *,
    epochs: int,
    limit: int | None,
    n_project: int,
    seed: int,
    work: Path,
    paper: dict[str, Any],
    shared: str | None = None,
) -> dict[str, Any]:
    from layerscope.data import load_dataset, stratified_indices
    from layerscope.models import build_model
    from layerscope.projection import project_model
    from layerscope.projection.analysis import models_from_run
    from layerscope.training import evaluate, train

    torch.set_num_threads(1)
    t0 = time.time()
    load0 = os.getloadavg()
    tr = load_dataset(train_spec)
    te = load_dataset(test_spec)
    if limit is not None:
        tr = tr.subset(stratified_indices(tr.y.numpy(), limit, seed))
    torch.manual_seed(seed)
    net = build_model(arch, tr.input_shape, len(tr.classes))
    run_dir = work / f"{name}-run"
    run = train(net, tr, val_set=te, out_dir=run_dir, epochs=epochs, checkpoints=[0, epochs], recipe="rauber", seed=seed,
                meta={"arch": arch, "data": train_spec, "val_data": test_spec, "limit": limit})
    t_train = time.time() - t0
    models = models_from_run(run_dir, [0, epochs])
    ac_full = {str(ep): evaluate(m, te) for ep, m in models.items()}
    study = project_model(models, te, list(layers), n=n_project, method="tsne", random_state=seed, thumbnails=0,
                          data_spec=test_spec)
    study.save(work / f"{name}_projection")  # the whole study (points, every figure) stays in the work folder
    RESULTS.mkdir(exist_ok=True)
    for fig in ("before_after", "first_last"):  # the two comparisons of the paper's figures
        src = work / f"{name}_projection" / f"{fig}.png"
        if src.exists():
            (RESULTS / f"{name}_{fig}.png").write_bytes(src.read_bytes())
    rows = []
    for r in study.table():
        rows.append({"checkpoint": r["checkpoint"], "layer": r["layer"], "nh": r["nh"], "nh_activation_space": r["nh_original"],
                     "ac_projected_subset": r["ac"], "ac_full_test": ac_full[str(r["checkpoint"])]})
    hide = (lambda s: s.replace(shared, "$LAYERSCOPE_SHARED_DATA")) if shared else (lambda s: s)
    doc = {
        "name": name,
        "arch": arch,
        "train_data": hide(train_spec),
        "test_data": hide(test_spec),
        "n_train": len(tr),
        "n_test": len(te),
        "n_projected": int(study.parameters["n"]),
        "epochs": epochs,
        "seed": seed,
        "recipe": run.meta["training_recipe"],
        "train_curve": [{k: c[k] for k in ("epoch", "train_loss", "train_accuracy", "val_accuracy")} for c in run.checkpoints],
        "rows": rows,
        "paper": paper,
        "seconds_train": round(t_train, 1),
        "seconds_total": round(time.time() - t0, 1),
        "load_average_start": [round(v, 2) for v in load0],
        "load_average_end": [round(v, 2) for v in os.getloadavg()],
        "setup": {"python": platform.python_version(), "torch": torch.__version__, "torch_threads": 1},
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"{name}.json").write_text(json.dumps(doc, indent=2) + "\n")
    (RESULTS / f"{name}.md").write_text(markdown(doc))
    return doc


def markdown(doc: dict[str, Any]) -> str:
    pct = lambda v: "-" if v is None else f"{100 * v:.2f}"  # noqa: E731
    lines = [
        f"# {doc['name']}: Rauber et al. 2017 reproduced with the `rauber` recipe",
        "",
        f"`{doc['arch']}` trained on {doc['n_train']} samples of `{doc['train_data']}` for {doc['epochs']} epochs "
        f"(seed {doc['seed']}; recipe: {doc['recipe']['source']}). t-SNE of {doc['n_projected']} test observations "
        f"(seeded stratified subset of {doc['n_test']}); NH with k = 6 in the 2-D projection.",
        f"Time: training {doc['seconds_train'] / 60:.1f} min, total {doc['seconds_total'] / 60:.1f} min; load average "
        f"(1, 5, 15 min) {doc['load_average_start']} at start, {doc['load_average_end']} at end, 2 cores.",
        "",
        "| checkpoint | layer | NH % (2-D) | NH % (activation space) | AC % projected subset | AC % full test split |",
        "|---|---|---|---|---|---|",
    ]
    for r in doc["rows"]:
        lines.append(f"| {r['checkpoint']} | {r['layer']} | {pct(r['nh'])} | {pct(r['nh_activation_space'])} | "
                     f"{pct(r['ac_projected_subset'])} | {pct(r['ac_full_test'])} |")
    lines += ["", "Paper: " + "; ".join(f"{k}: {v}" for k, v in doc["paper"].items()), ""]
    return "\n".join(lines)
