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
