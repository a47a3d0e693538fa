"""Synthetic result folders for the report tests (shared by test_report.py and test_browser.py)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from layerscope._io import write_json
from layerscope.results import write_result

EVIL = "<script>alert(1)</script>"
EVIL_LAYER = 'fc"><img src=x onerror=alert(2)>'


def png(path: Path, value: int = 128, size: int = 16) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    a = np.full((size, size), value, np.uint8)
    a[: size // 2, : size // 2] = 255 - value
    Image.fromarray(a).save(path)
    return path.name


def make_results(root: Path, n: int = 60) -> dict[str, Path]:
    """One folder per analysis kind; returns {name: folder}. Class 1 is named ``EVIL``."""
    rng = np.random.default_rng(0)
    classes = ["zero", EVIL, "two"]
    labels = (np.arange(n) % 3).tolist()
    preds = list(labels)
    preds[0] = 1  # one misclassified point
    emb = (rng.normal(size=(n, 2)) + np.array(labels)[:, None] * 4).tolist()
    out: dict[str, Path] = {}

    run = root / "runs" / "mlp"
    write_json(run / "run.json", {
        "arch": "mlp:width=8", "data": "mnist", "n_train": 100, "complete": True,
        "checkpoints": [
            {"epoch": 0, "file": "checkpoints/epoch_0000.safetensors", "train_loss": None, "train_accuracy": None, "val_accuracy": 0.1},
            {"epoch": 1, "file": "checkpoints/epoch_0001.safetensors", "train_loss": 0.5, "train_accuracy": 0.8, "val_accuracy": 0.85},
            {"epoch": 2, "file": "checkpoints/epoch_0002.safetensors", "train_loss": 0.3, "train_accuracy": 0.9, "val_accuracy": 0.9},
        ],
    })
    out["run"] = run

    d = root / "capture"
    write_result(d, "capture", model={"class": "MLP", "parameters": 1234, "source": {"kind": "run", "spec": "runs/mlp"}, "input_shape": [1, 28, 28]},
                 data="mnist:test", metrics={"accuracy": 0.9}, parameters={"n": n},
                 layers=[{"name": "flatten", "type": "Flatten", "output_shape": [784], "params": 0, "total_params": 0, "depth": 1, "is_leaf": True},
                         {"name": EVIL_LAYER, "type": "Linear", "output_shape": [8], "params": 6280, "total_params": 6280, "depth": 1, "is_leaf": True}])
    out["capture"] = d

    d = root / "maximize"
    write_result(d, "maximize", figures=[{"path": png(d / "grid.png", 40), "title": "units of relu1", "caption": f"caption with {EVIL}"}],
                 metrics={"mean_activation": 3.5}, parameters={"layer": "relu1", "steps": 30},
                 units=[{"unit": i, "activation": 1.0 + i, "consistency": 0.5, "trace": list(np.linspace(0, 1 + i, 30))} for i in range(3)])
    out["maximize"] = d

    d = root / "projection"
    write_result(d, "projection", data="npz:nowhere.npz", classes=classes,
                 metrics={"relu1": {"nh": 0.8, "ac": 0.9}, "relu2": {"nh": 0.95, "ac": 0.9}},
                 figures=[{"path": png(d / "relu1.png", 90), "title": "relu1 t-SNE"}],
                 projections=[{"layer": layer, "method": "tsne", "embedding": emb, "labels": labels, "predictions": preds,
                               "sample_ids": list(range(n)), "nh": nh, "ac": 0.98} for layer, nh in (("relu1", 0.8), ("relu2", 0.95))])
    out["projection"] = d

    d = root / "cka"
    write_result(d, "cka", layers=["relu1", "relu2", EVIL_LAYER], cka=[[1.0, 0.5, 0.2], [0.5, 1.0, 0.4], [0.2, 0.4, 1.0]])
    out["cka"] = d

    d = root / "speech"
    # the shape `layerscope speech analyze` writes: labels once, coordinates per layer
    write_result(d, "speech", metrics={"table": [{"layer": "relu1", "nh_digit": 0.5, "nh_speaker": 0.7}, {"layer": "relu2", "nh_digit": 0.8, "nh_speaker": 0.4}]},
                 points={"model": "dnn", "method": "tsne", "n": n, "digit": labels, "predicted": preds, "speaker": [0, 1, 2] * (n // 3), "utterance": [i // 4 for i in range(n)], "frame": [i % 4 for i in range(n)],
                         "speaker_names": ["jackson", "nicolas", EVIL], "classes": ["0", "1", "2"],
                         "layers": {"relu1": {"x": [p[0] for p in emb], "y": [p[1] for p in emb]}}})
    out["speech"] = d

    d = root / "neurons"
    write_result(d, "neurons", layer="relu1", classes=["zero", EVIL],
                 neurons={"x": [float(i) for i in range(12)], "y": [float(i % 4) for i in range(12)], "index": list(range(12)),
                          "dead": [0] * 12, "importances": {"zero": [i / 11 for i in range(12)], EVIL: [1 - i / 11 for i in range(12)]}})
    out["neurons"] = d

    d = root / "mystery"
    write_result(d, "some_new_analysis", figures=[{"path": png(d / "fig.png", 200), "title": "mystery figure"}],
                 metrics={"score": 0.25, EVIL: 1}, parameters={"knob": EVIL}, table=[{"a": 1, "b": EVIL}])
    out["mystery"] = d
    return out


def make_demo_like(root: Path, n: int = 90, seeds: int = 1) -> dict[str, Path]:
    """Result folders shaped like the ones ``layerscope demo`` writes (same keys and nesting as its
    result.json files, small sizes), including the pitfalls the report must handle: an untrained
    checkpoint whose predictions are all one class, numbers stored twice (``metrics.probe`` and
    ``probes``, ``metrics.delta_*`` and ``correspondence.delta``, ``metrics.table`` and ``table``),
    two NH variants of the speech analysis, and a transfer grid with ``seeds`` seeds."""
    rng = np.random.default_rng(1)
    out: dict[str, Path] = {}
    classes = [str(c) for c in range(3)]
    labels = (np.arange(n) % 3).tolist()
    ids = list(range(100, 100 + n))
    layers = ["relu1", "relu2"]

    run = root / "runs" / "mlp"
    write_json(run / "run.json", {"arch": "mlp:width=8", "data": "mnist", "n_train": 300, "complete": True, "checkpoints": [
        {"epoch": e, "file": f"checkpoints/epoch_{e:04d}.safetensors", "train_loss": None if e == 0 else 0.9 / (e + 1),
         "train_accuracy": None if e == 0 else 0.6 + 0.1 * e, "val_accuracy": 0.1 + 0.28 * e} for e in range(4)]})
    out["run"] = run

    d = root / "projection" / "mlp"
    projections, table = [], []
    for epoch in (0, 5):
        for j, layer in enumerate(layers):
            spread = 0.3 if epoch == 0 else 4.0 + j
            xy = rng.normal(size=(n, 2)) + np.array(labels)[:, None] * spread
            preds = [0] * n if epoch == 0 else [lab if k % 10 else (lab + 1) % 3 for k, lab in enumerate(labels)]
            m = {"n": n, "dim": 8, "k": 6, "seconds": 0.1, "nh": 0.4 + 0.1 * j + epoch / 10, "nh_original": 0.45 + epoch / 10,
                 "ac": 1 / 3 if epoch == 0 else 0.9}
            projections.append({"layer": layer, "method": "tsne", "checkpoint": epoch, "parameters": {"perplexity": 30.0}, "metrics": m,
                                "x": xy[:, 0].round(4).tolist(), "y": xy[:, 1].round(4).tolist(), "labels": labels,
                                "predictions": preds, "sample_ids": ids})
            table.append({"checkpoint": epoch, "layer": layer, **{k: m[k] for k in ("nh", "nh_original", "ac", "seconds")}})
    write_result(d, "projection", data="npz:nowhere.npz", classes=classes, layers=layers, checkpoints=[0, 5],
                 metrics={"table": table, "nh": {str(e): {r["layer"]: r["nh"] for r in table if r["checkpoint"] == e} for e in (0, 5)},
                          "ac": {"0": 1 / 3, "5": 0.9}},
                 parameters={"layers": layers, "checkpoints": [0, 5], "method": "tsne", "n": n},
                 projections=projections, sequences=[{"axis": "epochs", "aligned": False, "displacement": [0.66], "frames": [0, 3]}])
    out["projection"] = d

    d = root / "maximize"
    units = [{"unit": u, "activation": 2.0 + u, "activation_restarts": [2.0 + u], "trace": [float(u + s / 10) for s in range(30)],
              "consistency": None, "data_max": None, "exceeds_data_max": None, "class_probability": 0.9, "predicted_class": u,
              "image": "units/" + png(d / "units" / f"unit_{u:04d}.png", 25 * u)} for u in range(10)]
    write_result(d, "maximize", figures=[{"path": png(d / "grid.png", 60), "title": "Activation maximisation of out"},
                                         {"path": png(d / "traces.png", 70), "title": "Objective over the steps"}],
                 metrics={"n_units": 10, "mean_activation": 6.5, "mean_consistency": None, "seconds": 0.03,
                          "min_class_probability": 0.9, "fraction_classified_as_target": 1.0},
                 parameters={"layer": "out", "steps": 30, "restarts": 1}, layer="out", units=units)
    out["maximize"] = d

    d = root / "topk"
    write_result(d, "topk", figures=[{"path": png(d / "topk.png", 50, size=1000), "title": "Top-9 activations of conv2"}],
                 metrics={"mean_top1": 1.85, "n_units": 2}, parameters={"layer": "conv2", "k": 9},
                 topk={"layer": "conv2", "k": 9, "units": [0, 1], "top": [
                     {"unit": u, "values": [3.0 - u - k / 10 for k in range(9)], "sample_ids": list(range(9)), "labels": [k % 3 for k in range(9)]}
                     for u in range(2)]})
    out["topk"] = d

    d = root / "correspondence"
    delta = {layer: {"top": 0.03 + j / 10, "bottom": 0.07 + j / 10, "left": 0.023 + j / 10, "right": 0.0249 + j / 10, "random": 0.248 + j / 4}
             for j, layer in enumerate(["conv2", "conv4"])}
    write_result(d, "correspondence", figures=[{"path": png(d / "correspondence.png"), "title": "Correspondence Δ per layer"}],
                 metrics={f"delta_{layer}_{part}": v for layer, dd in delta.items() for part, v in dd.items()},
                 parameters={"layers": ["conv2", "conv4"], "n_random": 10},
                 correspondence={"layers": ["conv2", "conv4"], "delta": delta, "random_std": {"conv2": 0.0183, "conv4": 0.0487}, "n_images": 5})
    out["correspondence"] = d

    d = root / "similarity" / "probe"
    recs = [{"accuracy": 0.81 + j / 20, "chance": 0.113, "train_accuracy": 1.0, "n_train": 300, "n_test": 100, "n_features": 8,
             "n_classes": 3, "C": 1.0, "layer": layer} for j, layer in enumerate(layers)]
    write_result(d, "probe", figures=[{"path": png(d / "probes.png"), "title": "Linear probe accuracy per layer"}],
                 metrics={"probe": {"epoch 5": {r["layer"]: {k: v for k, v in r.items() if k != "layer"} for r in recs}}},
                 parameters={"layers": layers, "checkpoints": [5]}, probes={"epoch 5": recs})
    out["probe"] = d

    d = root / "similarity" / "cka"
    write_result(d, "cka", figures=[{"path": png(d / "cka.png"), "title": "Linear CKA (layers)"}],
                 metrics={"cka": [[1.0, 0.868, 0.765], [0.868, 1.0, 0.912], [0.765, 0.912, 1.0]]},
                 parameters={"layers": ["relu1", "relu2", EVIL_LAYER]}, rows=["relu1", "relu2", EVIL_LAYER], cols=["relu1", "relu2", EVIL_LAYER])
    out["cka"] = d

    d = root / "speech" / "analyze"
    speech_rows = [{"model": "speech-dnn", "features": "fbank", "depth": 2, "layer": layer, "layer_index": j,
                    "nh_digit": 0.5 + j / 8, "nh_speaker": 0.46 - j / 50, "nh_digit_xutt": 0.42 + j / 9, "nh_speaker_xutt": 0.4 - j / 60,
                    "nh_digit_original": 0.47 + j / 7, "nh_speaker_original": 0.472, "nh_digit_original_xutt": 0.411 + j / 7,
                    "nh_speaker_original_xutt": 0.413, "probe_digit": 0.178 + j / 4, "probe_speaker": 0.256 + j / 9}
                   for j, layer in enumerate(["input", *layers])]
    summary = [{"model": "speech-dnn", "features": "fbank", "depth": 2, "frame_accuracy": 0.788, "utterance_accuracy": 0.95,
                "nh_digit_xutt_input": 0.42, "nh_digit_xutt_last": 0.642, "nh_digit_xutt_trend": 1.0}]
    write_result(d, "speech", figures=[{"path": png(d / "trends.png"), "title": "Digit vs speaker information per layer"},
                                       {"path": png(d / "model1_projections.png"), "title": "frames per layer"}],
                 metrics={"table": speech_rows, "summary": summary, "chance": {"digit": 0.1009, "speaker": 0.1762}},
                 table=speech_rows, parameters={"n_frames": n, "k": 6},
                 points={"model": "speech-dnn", "method": "tsne", "n": n, "digit": labels, "predicted": labels,
                         "speaker": [k % 2 for k in range(n)], "utterance": [k // 5 for k in range(n)], "frame": [k % 5 for k in range(n)],
                         "sample_ids": ids, "speaker_names": ["george", "jackson"], "classes": classes,
                         "layers": {layer: {"x": rng.normal(size=n).round(3).tolist(), "y": rng.normal(size=n).round(3).tolist()}
                                    for layer in ["input", *layers]}})
    out["speech"] = d

    d = root / "speech" / "embed"
    write_result(d, "speaker_embeddings", figures=[{"path": png(d / "embedding_clusters.png"), "title": "Speaker clustering per layer"}],
                 metrics={"layers": [{"layer": layer, "layer_index": j, "dim": 8, "purity": 0.3 + j / 5, "ari": 0.0453 + j / 7,
                                      "nmi": 0.114 + j / 6, "n_clusters": 2, "ari_digit": 0.0279} for j, layer in enumerate(["input", *layers])],
                          "best_layer": "relu2", "n_recordings": 30, "n_speakers": 2, "speakers": ["george", "jackson"],
                          "unseen_speakers": False, "val_accuracy": 0.788, "chance_purity": 0.5},
                 points={"layer": "relu2", "x": rng.normal(size=30).tolist(), "y": rng.normal(size=30).tolist(),
                         "speaker": [k % 2 for k in range(30)], "cluster": [(k + 1) % 2 for k in range(30)], "utterance": list(range(30)),
                         "digit": [k % 3 for k in range(30)], "speaker_names": ["george", "jackson"]})
    out["embed"] = d

    d = root / "transfer"
    accs = {"baseA": 0.928, "baseB": 0.884, "BnB": 0.87, "AnB": 0.83, "AnB+": 0.9}
    summary_t = [{"condition": c, "n": 0 if c.startswith("base") else 2, "mean": a, "std": 0.0 if seeds == 1 else 0.012, "min": a, "max": a,
                  "seeds": seeds} for c, a in accs.items()]
    eff = {"mean": 0.02, "std": 0.0 if seeds == 1 else 0.005, "min": 0.02, "max": 0.02, "per_seed": {str(s): 0.02 for s in range(seeds)}}
    write_result(d, "transfer", figures=[{"path": png(d / "transfer.png"), "title": "Transferability of layers"}],
                 metrics={"cells_done": 5, "cells_total": 5, "baseA": 0.928, "baseB": 0.884, "max_specificity": 0.04, "max_specificity_n": 2,
                          "max_co_adaptation": 0.014, "max_co_adaptation_n": 2, "mean_fine_tuning_boost": 0.016},
                 parameters={"seeds": list(range(seeds))}, summary=summary_t,
                 effects=[{"n": 2, "co_adaptation": eff, "specificity": dict(eff, mean=0.04), "fine_tuning_boost": dict(eff, mean=0.016)}],
                 table=[{"cell": "baseA_s0", "condition": "baseA", "n": 0, "seed": 0, "metric": 0.928}])
    out["transfer"] = d
    return out
