"""The demo: from a fresh clone to a browsable report on the bundled data, as a library call.

The demo is a list of independent :class:`Step` s with small sizes (:func:`build_steps`). Each step
calls the library the way the corresponding command does (load the model and data, call the
analysis, ``result.save(out)``) and returns a one-line summary; its equivalent ``layerscope``
command line is kept with it as documentation. :func:`run_demo` runs the steps in order: a step
that fails is recorded and the others go on (what finished stays on disk), a step that needs a step
that did not finish is skipped. At the end the step table is written as a ``demo`` result (shown
first in the report) and the HTML report of everything under ``out`` is built. Nothing is printed:
the run returns a :class:`DemoRun` (status, seconds, summary and error of every step; the report's
path), and a caller that wants to follow the run passes ``on_step``. ``layerscope demo`` is this
function with a printer.

A step given only a command line (no library call) runs only when the caller passes ``invoke``
(the CLI passes its in-process command runner); this module never imports the CLI.
"""

from __future__ import annotations

import logging
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Literal, Optional, Sequence, Union, cast

from ._progress import ProgressArg, Tracker, resolve_progress
from .exceptions import ParameterError

__all__ = ["Step", "StepRun", "DemoRun", "build_steps", "run_demo", "command_path"]

log = logging.getLogger(__name__)

#: what :class:`StepRun.status` holds once a step is over
STATUSES = ("ok", "failed", "skipped", "not selected", "interrupted", "not run")


@dataclass
class Step:
    """One demo step: a Python function (``run``, a library call returning a one-line summary) or a
    ``layerscope`` command line (``args``). With both, ``run`` is what runs and ``args`` is the
    equivalent command line shown by ``layerscope demo --list`` and in the step table."""

    name: str
    what: str
    args: list[str] = field(default_factory=list)
    run: Optional[Callable[[], Optional[str]]] = None
    needs: list[str] = field(default_factory=list)  # names of steps whose output this one reads
    out: Optional[Path] = None  # a folder that holds result.json when the step succeeded

    @property
    def command(self) -> str:
        """The equivalent command line, or ``"(python)"`` for a step that has none."""
        return ("layerscope " + " ".join(self.args)) if self.args else "(python)"


@dataclass
class StepRun:
    """What became of one step.

    ``status`` is ``"running"`` while the step runs (as seen by ``on_step``), then one of
    ``ok``, ``failed``, ``skipped``, ``not selected``, ``interrupted``. ``note`` is the table's note
    (why a step was skipped, or the error of a failed one), ``summary`` what a finished step
    returned (may hold several lines) or, for a skipped step, why in a sentence;
    ``error``/``traceback`` the exception of a failed step.
    ``index`` is the step's position (1-based) among ``total`` steps.
    """

    name: str
    what: str
    command: str
    index: int = 0
    total: int = 0
    status: str = "not selected"
    seconds: float = 0.0
    summary: str = ""
    note: str = ""
    error: str = ""
    traceback: str = ""


@dataclass
class DemoRun:
    """The outcome of :func:`run_demo`: every step (in order, unselected ones included), the
    report's path, and the seconds spent (``seconds``: everything, report included)."""

    out: Path
    steps: list[StepRun]
    report: Path
    seconds: float
    report_seconds: float

    @property
    def failed(self) -> list[StepRun]:
        """The steps that raised."""
        return [s for s in self.steps if s.status == "failed"]

    @property
    def ok(self) -> bool:
        """Whether no step failed or was interrupted (skipped and unselected steps do not count)."""
        return not self.failed and not any(s.status == "interrupted" for s in self.steps)

    def __repr__(self) -> str:
        counts = ", ".join(f"{st} {n}" for st in STATUSES if (n := sum(s.status == st for s in self.steps)))
        return f"DemoRun({counts}; {self.seconds:.0f} s; report={str(self.report)!r})"


def command_path(args: Sequence[str]) -> list[str]:
    """The leading words of a command line (the command and any sub-command)."""
    words = []
    for a in args:
        if a.startswith("-"):
            break
        words.append(a)
    return words


def build_steps(out: Union[str, Path], *, epochs: int = 5, limit: int = 30000, n_project: int = 2000,
                progress: ProgressArg = None, speech: bool = True, transfer: bool = True) -> list[Step]:
    """The demo's steps, in order; sizes chosen so all of them run in minutes on 2 CPU cores.

    ``progress`` is passed to every analysis (``None``/``False``: none; the command lines then
    carry ``--no-progress``). Building the steps runs nothing.
    """
    out = Path(out)
    bar: Optional[Tracker] = None if progress is None or progress is False else resolve_progress(progress)
    runs = out / "runs"
    mlp, cnn = runs / "mlp", runs / "cnn"
    pb = [] if progress else ["--no-progress"]
    steps: list[Step] = [
        Step("train-mlp", f"train an MLP 784-256-256-256-10 on {limit} MNIST digits, {epochs} epochs, checkpoints 0, 1, 2, {epochs}",
             run=lambda: _train(mlp, "mlp:width=256,depth=3", limit, epochs, sorted({0, 1, 2, epochs}), "sgd", 0.05, bar)),
        Step("train-cnn", f"train a small CNN (2x conv32, pool, 2x conv64, pool, dense 128, 64) on {limit // 4} MNIST digits, 3 epochs",
             run=lambda: _train(cnn, "cnn:dense=128x64", limit // 4, 3, [0, 1, 2, 3], "adam", 1e-3, bar)),
        Step("layers-mlp", "list the MLP's layers and capture its hidden activations on 1,000 test digits",
             run=lambda: _capture_summary(mlp, out / "layers" / "mlp", bar), needs=["train-mlp"], out=out / "layers" / "mlp"),
        Step("layers-cnn", "list the CNN's layers", run=lambda: _capture_summary(cnn, out / "layers" / "cnn", bar, n=500),
             needs=["train-cnn"], out=out / "layers" / "cnn"),
        # Activation maximization (Erhan et al. 2009)
        Step("maximize-classes", "activation maximization of the MLP's 10 class logits (Erhan: 30 steps on the sphere)",
             ["maximize", "--model", str(mlp), "--layer", "out", "--units", "all", "--method", "erhan", "--steps", "30",
              "--out", str(out / "maximize" / "mlp-classes"), *pb],
             run=lambda: _maximize(mlp, out / "maximize" / "mlp-classes", "out", "all", "erhan", 30, bar), needs=["train-mlp"]),
        Step("maximize-channels", "activation maximization of the CNN's conv4 channels (regularised, 30 steps)",
             ["maximize", "--model", str(cnn), "--layer", "conv4", "--units", "0,1,2,3,4,5,6,7", "--method", "lucid",
              "--steps", "30", "--out", str(out / "maximize" / "cnn-conv4"), *pb],
             run=lambda: _maximize(cnn, out / "maximize" / "cnn-conv4", "conv4", list(range(8)), "lucid", 30, bar),
             needs=["train-cnn"]),
        # Visualizing convnets (Zeiler & Fergus 2014)
        Step("correspondence", "masking the same part of 5 digits vs random masks, at conv2 and conv4",
             ["correspondence", "--model", str(cnn), "--data", "mnist:test", "--layers", "conv2,conv4", "--limit", "5",
              "--out", str(out / "convnets" / "correspondence"), *pb],
             run=lambda: _correspondence(cnn, out / "convnets" / "correspondence", ["conv2", "conv4"], 5, bar), needs=["train-cnn"]),
        Step("topk", "top-9 patches of 8 conv2 channels over 2,000 test digits",
             ["topk", "--model", str(cnn), "--data", "mnist:test", "--layer", "conv2", "--units", "0,1,2,3,4,5,6,7",
              "--limit", "2000", "--out", str(out / "convnets" / "topk"), *pb],
             run=lambda: _topk(cnn, out / "convnets" / "topk", "conv2", list(range(8)), 2000, bar), needs=["train-cnn"]),
        Step("deconv", "deconvnet projections of the top activations of 8 conv4 channels",
             ["deconv", "--model", str(cnn), "--data", "mnist:test", "--layer", "conv4", "--units", "0,1,2,3,4,5,6,7",
              "--limit", "2000", "--out", str(out / "convnets" / "deconv"), *pb],
             run=lambda: _deconv(cnn, out / "convnets" / "deconv", "conv4", list(range(8)), 2000, bar), needs=["train-cnn"]),
        Step("occlusion", "occlusion maps of 4 test digits (7x7 grey square, stride 2)",
             ["occlude", "--model", str(cnn), "--data", "mnist:test", "--layer", "conv4", "--indices", "0,1,2,3",
              "--size", "7", "--stride", "2", "--out", str(out / "convnets" / "occlusion"), *pb],
             run=lambda: _occlusion(cnn, out / "convnets" / "occlusion", "conv4", [0, 1, 2, 3], 7, 2, bar), needs=["train-cnn"]),
        Step("invariance", "invariance of each layer to translation, scale and rotation (50 test digits)",
             ["invariance", "--model", str(cnn), "--data", "mnist:test", "--limit", "50",
              "--out", str(out / "convnets" / "invariance"), *pb],
             run=lambda: _invariance(cnn, out / "convnets" / "invariance", 50, bar), needs=["train-cnn"]),
        Step("evolution", "feature evolution of 4 conv4 channels over the CNN's checkpoints",
             ["evolution", "--model", str(cnn), "--data", "mnist:test", "--layer", "conv4", "--units", "0,1,2,3",
              "--limit", "1000", "--out", str(out / "convnets" / "evolution"), *pb],
             run=lambda: _evolution(cnn, out / "convnets" / "evolution", "conv4", [0, 1, 2, 3], 1000, bar), needs=["train-cnn"]),
        # Hidden-activity projections (Rauber et al. 2017)
        Step("project", f"t-SNE of every hidden layer of the MLP, {n_project} test digits, before and after training",
             ["project", "--model", str(mlp), "--data", "mnist:test", "--layers", "all", "--checkpoints", "0,last",
              "--method", "tsne", "--n", str(n_project), "--out", str(out / "projection" / "mlp"), *pb],
             run=lambda: _project(mlp, out / "projection" / "mlp", ["0", "last"], n_project, bar), needs=["train-mlp"]),
        Step("neurons", "neuron projection of the MLP's last hidden layer (colour: power to discriminate digits 0, 1, 8)",
             ["neurons", "--model", str(mlp), "--data", "mnist:test", "--layer", "relu3", "--class", "0,1,8", "--n", str(n_project),
              "--out", str(out / "projection" / "neurons"), *pb],
             run=lambda: _neurons(mlp, out / "projection" / "neurons", "relu3", [0, 1, 8], n_project, bar), needs=["train-mlp"]),
        Step("probe", "linear probes on every hidden layer of the MLP",
             ["probe", "--model", str(mlp), "--data", "mnist:test", "--layers", "all", "--n", str(2 * n_project),
              "--out", str(out / "similarity" / "probe"), *pb],
             run=lambda: _probe(mlp, out / "similarity" / "probe", 2 * n_project, bar), needs=["train-mlp"]),
        Step("cka", "linear CKA between the MLP's layers",
             ["cka", "--model", str(mlp), "--data", "mnist:test", "--layers", "all", "--n", str(n_project),
              "--out", str(out / "similarity" / "cka"), *pb],
             run=lambda: _cka(mlp, out / "similarity" / "cka", n_project, bar), needs=["train-mlp"]),
    ]
    if transfer:
        # Transferability of layers (Yosinski et al. 2014)
        steps.append(Step(
            "transfer", "a tiny transfer grid: narrow 8-layer convnet, MNIST 0-4 vs 5-9, n = 1, 4, 7, 1 seed, 3 epochs, 3,000 digits",
            run=lambda: _transfer(out / "transfer", bar), args=["transfer", "--arch", "convnet8:width=8,fc_width=64", "--data", "mnist", "--split", "mnist-0-4", "--seeds", "1",
             "--epochs", "3", "--k", "1", "--layers", "1,4,7", "--limit", "3000", "--val-limit", "500", "--executor", "local",
             "--out", str(out / "transfer"), *pb]))
    if speech:
        # Acoustic models (Mohamed, Hinton & Penn 2012)
        steps += [
            Step("speech-train", "train a frame-level DNN (3 x 256) on FSDD log-mel frames (+-5 frames of context), official split, 3 epochs",
                 ["speech", "train", "--arch", "dnn:width=256,depth=3", "--features", "fbank", "--epochs", "3",
                  "--frame-step", "3", "--out", str(runs / "speech-dnn"), *pb],
                 run=lambda: _speech_train(runs / "speech-dnn", "dnn:width=256,depth=3", 3, 3, bar)),
            Step("speech-analyze", f"per-layer projections, NH and probes by digit and by speaker on {n_project} FSDD test frames",
                 run=lambda: _speech_analyze(runs / "speech-dnn", out / "speech" / "analyze", n_project, bar), args=["speech", "analyze", "--model", str(runs / "speech-dnn"), "--n-frames", str(n_project),
                  "--out", str(out / "speech" / "analyze"), *pb], needs=["speech-train"]),
            Step("speech-embed", "speaker embeddings: clustering held-out recordings by each layer's mean activation",
                 run=lambda: _speech_embed(runs / "speech-dnn", out / "speech" / "embed", bar), args=["speech", "embed", "--model", str(runs / "speech-dnn"), "--max-recordings", "300", "--frame-step", "2",
                  "--out", str(out / "speech" / "embed"), *pb], needs=["speech-train"]),
        ]
    return steps


def _train(run_dir: Path, arch: str, limit: int, epochs: int, checkpoints: list[int], optimizer: str, lr: float, bar: Optional[Tracker]) -> str:
    """``layerscope train`` with a 2,000-digit validation subset (the full test set at every
    checkpoint would cost more than the training itself on a small CPU)."""
    import torch

    from .data import ArrayDataset, load_dataset, stratified_indices
    from .models import build_model
    from .training import train

    train_set = cast(ArrayDataset, load_dataset("mnist"))  # MNIST loads as arrays, never as recordings
    train_set = train_set.subset(stratified_indices(train_set.y.numpy(), limit, 0))
    test_set = cast(ArrayDataset, load_dataset("mnist:test"))
    val_set = test_set.subset(stratified_indices(test_set.y.numpy(), 2000, 1))
    torch.manual_seed(0)
    net = build_model(arch, train_set.input_shape, len(train_set.classes))
    meta = {
        "arch": arch, "data": "mnist", "val_data": "mnist:test", "val_limit": 2000, "limit": limit,
        "input_shape": list(train_set.input_shape), "classes": train_set.classes,
        "normalization": train_set.normalization.to_dict(),
    }
    run = train(net, train_set, val_set=val_set, out_dir=run_dir, epochs=epochs, checkpoints=checkpoints,
                optimizer=optimizer, lr=lr, seed=0, meta=meta, progress=bar)
    accs = ", ".join(f"{c['epoch']}: {c['val_accuracy']:.4f}" for c in run.checkpoints)
    return f"accuracy on 2,000 test digits by epoch: {accs}"


# -- the analysis steps: each does what its command does with the demo's options (load model/data
# -> call the library -> result.save(out)) and returns the summary the command prints ----------------


def _model(run_dir: Path) -> Any:
    """The model of ``--model RUN`` (the run's last checkpoint), loaded as the commands load it."""
    from .loading import load_model

    return load_model(str(run_dir))


def _data(spec: str) -> Any:
    """The data of ``--data SPEC``."""
    from .data import load_dataset

    return load_dataset(spec)


def _keyed_models(run_dir: Path, checkpoints: Optional[list[str]] = None) -> dict[Any, Any]:
    """``{epoch: model}`` as ``project``/``probe``/``cka`` build it: the run's checkpoints named by
    ``--checkpoints``, else the one model given, keyed by its epoch."""
    from .projection.analysis import models_from_run

    if checkpoints:
        return dict(models_from_run(run_dir, checkpoints))
    net = _model(run_dir)
    src = getattr(net, "layerscope_source", None) or {}
    return {src.get("epoch") if src.get("kind") == "run" else None: net}


def _tracked(bar: Any) -> dict[str, Any]:
    """``progress=bar`` only when bars are on (as ``project``/``neurons``/``probe``/``cka`` pass it)."""
    return {"progress": bar} if bar is not None else {}


def _maximize(run_dir: Path, out_dir: Path, layer: str, units: list[int] | str, method: str, steps: int, bar: Optional[Tracker]) -> str:
    """``layerscope maximize --model RUN --layer L --units U --method M --steps S`` (no ``--data``: the
    model's own data only sets rho and the value range, and no data max is computed)."""
    from .data import ArrayDataset
    from .exceptions import DataError
    from .featurevis import maximize
    from .results import model_description

    net = _model(run_dir)
    # the command's default data (no --data) for a run that records ``val_data``, as the demo's runs
    # do (``_train`` and the command's default data agree there; other runs are not demo steps)
    spec = (getattr(net, "layerscope_source", None) or {}).get("val_data")
    try:
        ds = _data(str(spec)) if spec else None
    except DataError:
        ds = None
    if ds is not None and not isinstance(ds, ArrayDataset):
        ds = None
    res = maximize(net, layer, units, kind="auto", method=cast(Literal["erhan", "lucid"], method), steps=steps,
                   data=ds, transforms=None, thresholds=[], data_max=False, random_state=0,
                   model_info={**model_description(net), "spec": str(run_dir)}, data_spec=None, progress=bar)
    res.save(out_dir)
    m = res.metrics
    return f"{m['n_units']} units of {layer}: mean activation reached {m['mean_activation']:.4g}"


def _correspondence(run_dir: Path, out_dir: Path, layers: list[str], limit: int, bar: Optional[Tracker] = None) -> str:
    """``layerscope correspondence --data mnist:test --layers ... --limit N`` (mask value ``mean``)."""
    from .convnets.correspondence import correspondence

    res = correspondence(_model(run_dir), _data("mnist:test"), layers, parts=None, value="mean", n_random=10,
                         random_state=0, label=None, indices=None, limit=limit, data_spec="mnist:test", progress=bar)
    res.save(out_dir)
    return "\n".join(f"{layer}: " + ", ".join(f"{k}={v:.4f}" for k, v in res.delta[layer].items()) for layer in res.layers)


def _topk(run_dir: Path, out_dir: Path, layer: str, units: list[int], limit: int, bar: Optional[Tracker]) -> str:
    """``layerscope topk --data mnist:test --layer L --units U --limit N`` (k 9, deconvnet patches)."""
    from .convnets.topk import top_activations

    top = top_activations(_model(run_dir), _data("mnist:test"), layer, units=units, k=9, batch_size=256, limit=limit,
                          rule="deconvnet", patches=True, max_units=16, progress=bar, data_spec="mnist:test")
    top.save(out_dir)
    return f"top-9 of {len(top.units)} units of {layer}"


def _deconv(run_dir: Path, out_dir: Path, layer: str, units: list[int], limit: int, bar: Optional[Tracker]) -> str:
    """``layerscope deconv --data mnist:test --layer L --units U --limit N`` (gradient, deconvnet, guided)."""
    from .convnets.deconv import deconv_projections

    res = deconv_projections(_model(run_dir), _data("mnist:test"), layer, units=units,
                             rules=["gradient", "deconvnet", "guided"], indices=None, limit=limit, batch_size=256,
                             progress=bar, data_spec="mnist:test")
    res.save(out_dir)
    return f"{len(res.sample_ids)} projections x {len(res.rules)} rules of {layer}"


def _occlusion(run_dir: Path, out_dir: Path, layer: str, rows: list[int], size: int, stride: int, bar: Optional[Tracker]) -> str:
    """``layerscope occlude --data mnist:test --layer L --indices R --size S --stride T`` (grey: the data mean)."""
    import numpy as np

    from .convnets.occlusion import occlusion_maps

    res = occlusion_maps(_model(run_dir), _data("mnist:test"), np.asarray(rows, dtype=np.int64), size=size, stride=stride,
                         value="mean", anchor="centred", layer=layer, unit=None, project=True, batch_size=256,
                         progress=bar, data_spec="mnist:test")
    res.save(out_dir)
    return "\n".join([*res.notes, f"occlusion maps of {len(res.sample_ids)} images"])


def _invariance(run_dir: Path, out_dir: Path, limit: int, bar: Optional[Tracker]) -> str:
    """``layerscope invariance --data mnist:test --limit N`` (translate, scale, rotate; fill ``min``)."""
    from .convnets.invariance import invariance_curves

    curves = invariance_curves(_model(run_dir), _data("mnist:test"), layers=None, transforms=["translate", "scale", "rotate"],
                               fill="min", indices=None, limit=limit, plot_layers=None, batch_size=256, progress=bar,
                               data_spec="mnist:test")
    curves.save(out_dir)
    return f"invariance curves of {len(curves.labels)} images x {len(curves.layers)} layers"


def _evolution(run_dir: Path, out_dir: Path, layer: str, units: list[int], limit: int, bar: Optional[Tracker]) -> str:
    """``layerscope evolution --model RUN --data mnist:test --layer L --units U --limit N`` (every checkpoint)."""
    from .convnets.evolution import feature_evolution
    from .loading import load_run_model
    from .results import model_description

    last = load_run_model(run_dir)
    evo = feature_evolution(run_dir, _data("mnist:test"), layer, units=units, rule="deconvnet", epochs=None, limit=limit,
                            batch_size=256, progress=bar, model_info=model_description(last), data_spec="mnist:test")
    evo.save(out_dir)
    return f"{len(evo.units)} units over epochs {evo.epochs.tolist()}"


def _project(run_dir: Path, out_dir: Path, checkpoints: list[str], n: int, bar: Optional[Tracker]) -> str:
    """``layerscope project --data mnist:test --layers all --checkpoints ... --method tsne --n N``."""
    from .projection.analysis import project_model

    models = _keyed_models(run_dir, checkpoints)
    study = project_model(models, _data("mnist:test"), "all", n=n, method="tsne", random_state=0, aligned=False,
                          align_over=None, reduce=None, layouts=None, batch_size=256, thumbnails=12,
                          data_spec="mnist:test", k=6, perplexity=30.0, **_tracked(bar))
    study.save(out_dir)
    last = study.metrics["table"][-1]
    return f"{len(study.metrics['table'])} projections; {last['layer']} at the last checkpoint: NH {last['nh']:.3f}"


def _neurons(run_dir: Path, out_dir: Path, layer: str, classes: list[int], n: int, bar: Optional[Tracker]) -> str:
    """``layerscope neurons --data mnist:test --layer L --class C --n N`` (t-SNE layout, 100 trees)."""
    from .projection.neurons import project_neurons

    res = project_neurons(_model(run_dir), _data("mnist:test"), layer, n=n, classes=classes, method="tsne",
                          n_estimators=100, random_state=0, batch_size=256, layouts=None, data_spec="mnist:test",
                          **_tracked(bar))
    res.save(out_dir)
    return f"{layer}: {res.metrics['n_neurons']} neurons ({res.metrics['n_dead']} constant, left out)"


def _probe(run_dir: Path, out_dir: Path, n: int, bar: Optional[Tracker]) -> str:
    """``layerscope probe --data mnist:test --layers all --n N`` (held out 25 %, C 1, mean reduction)."""
    from .similarity import probe_model

    res = probe_model(_keyed_models(run_dir), _data("mnist:test"), "all", n=n, test_size=0.25, C=1.0, group_by=None,
                      reduce="mean", layouts=None, random_state=0, batch_size=256, data_spec="mnist:test", **_tracked(bar))
    res.save(out_dir)
    return "held-out accuracy: " + ", ".join(f"{r.layer} {r.accuracy:.3f}" for rs in res.results.values() for r in rs)


def _cka(run_dir: Path, out_dir: Path, n: int, bar: Optional[Tracker]) -> str:
    """``layerscope cka --data mnist:test --layers all --n N`` (all pairs of the model's layers)."""
    from .similarity import cka_model

    res = cka_model(_keyed_models(run_dir), _data("mnist:test"), "all", model_b=None, layers_b=None, n=n, reduce=None,
                    layouts=None, random_state=0, batch_size=256, label_a=str(run_dir), label_b=None,
                    data_spec="mnist:test", **_tracked(bar))
    res.save(out_dir)
    return f"linear CKA ({res.mode}) of {len(res.rows)} x {len(res.cols)} layers"


def _speech_train(run_dir: Path, arch: str, epochs: int, frame_step: int, bar: Optional[Tracker]) -> str:
    """``layerscope speech train --arch A --features fbank --epochs E --frame-step F`` (official split, digits)."""
    from .data import AudioDataset, load_dataset
    from .exceptions import DataError
    from .speech.features import FeatureConfig
    from .speech.recipe import train_acoustic_model

    audio = load_dataset("fsdd")
    if not isinstance(audio, AudioDataset):
        raise DataError("fsdd did not load as a set of recordings; speech models train on fsdd or fsdd:PATH.")
    cfg = FeatureConfig(kind="fbank", n_mels=40, n_mfcc=13, deltas=0, context=5, normalize="utterance")
    run = train_acoustic_model(audio, out_dir=run_dir, features=cfg, arch=arch, target="digit", split="official",
                               test_speakers=None, epochs=epochs, checkpoints=None, batch_size=256, lr=1e-3,
                               optimizer="adam", frame_step=frame_step, seed=0, data_spec="fsdd", progress=bar)
    return f"recording-level accuracy: {run.meta['utterance_accuracy']:.4f}"


def _speech_analyze(run_dir: Path, out_dir: Path, n_frames: int, bar: Optional[Tracker]) -> str:
    """``layerscope speech analyze`` as a library call."""
    from .speech import analyze_speech_runs

    result = analyze_speech_runs([run_dir], n_frames=n_frames, progress=bar)
    result.save(out_dir)
    last = [r for r in result.metrics["table"] if r["layer"] != "input"][-1]
    return f"{last['layer']}: probe digit {last['probe_digit']:.3f}, probe speaker {last['probe_speaker']:.3f}"


def _speech_embed(run_dir: Path, out_dir: Path, bar: Optional[Tracker]) -> str:
    """``layerscope speech embed --max-recordings 300 --frame-step 2`` as a library call."""
    from .speech import embed_speech_run

    result = embed_speech_run(run_dir, max_recordings=300, frame_step=2, progress=bar)
    result.save(out_dir)
    return f"best layer for speakers: {result.metrics['best_layer']}"


def _transfer(out_dir: Path, bar: Optional[Tracker]) -> str:
    """The tiny ``layerscope transfer`` grid of the demo as a library call (same settings as its command line)."""
    from .transfer import GridConfig, make_executor, run_grid

    cfg = GridConfig(arch="convnet8:width=8,fc_width=64", data="mnist", split="mnist-0-4", seeds=(0,), epochs=3, k_best=1,
                     layers=(1, 4, 7), limit=3000, val_limit=500)
    ex = make_executor("local")
    try:
        result = run_grid(cfg, out_dir, executor=ex, progress=bar)
    finally:
        ex.close()
    return f"{result.cells_done}/{result.cells_total} cells; max specificity {result.metrics.get('max_specificity')}"


def _capture_summary(run_dir: Path, out_dir: Path, bar: Optional[Tracker], n: int = 1000) -> str:
    """Layers table and a capture of the hidden layers on ``n`` test digits, as a ``capture`` result."""
    from .capture import collect_activations
    from .data import ArrayDataset, load_dataset, stratified_indices
    from .capture import list_layers
    from .loading import load_model
    from .results import model_description, write_result

    model = load_model(str(run_dir))
    test_set = cast(ArrayDataset, load_dataset("mnist:test"))  # MNIST loads as arrays, never as recordings
    rows = list_layers(model, test_set.x[:1])
    idx = stratified_indices(test_set.y.numpy(), n, 0)
    hidden = cast(list[str], model.hidden_layers)  # layerscope's MNIST models list their hidden layers
    acts = collect_activations(model, test_set, hidden, indices=idx, predictions=True, reduce="mean", progress=bar)
    assert acts.predictions is not None  # asked for with predictions=True
    acc = float((acts.predictions == acts.labels).mean())
    write_result(
        out_dir, "capture", model=model_description(model), data="mnist:test",
        parameters={"layers": list(acts.arrays), "n": len(acts), "reduce": "mean"},
        metrics={"accuracy": acc, **{f"mean activation {k}": float(v.mean()) for k, v in acts.arrays.items()}},
        layers=[r.to_dict() for r in rows],
    )
    return f"{len(rows)} layers; accuracy on {len(acts)} test digits {acc:.4f}"




def run_demo(
    out: Union[str, Path],
    *,
    only: Union[str, Sequence[str], None] = None,
    speech: bool = True,
    transfer: bool = True,
    epochs: int = 5,
    limit: int = 30000,
    n_project: int = 2000,
    progress: ProgressArg = None,
    on_step: Optional[Callable[[str, StepRun], None]] = None,
    invoke: Optional[Callable[[list[str]], None]] = None,
    command_exists: Optional[Callable[[list[str]], bool]] = None,
) -> DemoRun:
    """Train the reference models on the bundled MNIST/FSDD, run every analysis at a small size,
    write the report.

    Parameters
    ----------
    out
        Folder for every result of the demo; ``out/report.html`` is the report.
    only
        Step names to run (a list, or one comma-separated string); the others are ``not
        selected`` and later steps read their earlier runs from ``out``. An unknown name is a
        :class:`~layerscope.exceptions.ParameterError` (it would otherwise select nothing).
    speech, transfer
        Include the FSDD speech steps / the tiny transfer grid.
    epochs, limit, n_project
        Training epochs of the reference MLP; MNIST training digits for it (the CNN uses a
        quarter); test digits / frames in each projection.
    progress
        ``None``/``False``, ``True`` (tqdm.auto) or a tqdm-compatible tracker, passed to each
        analysis (see :mod:`layerscope._progress`); the loop over the steps is tracked too.
    on_step
        Called as ``on_step(event, run)``: ``"start"`` before a step runs, ``"end"`` when it is over
        (ok, failed, skipped or interrupted; steps not selected are not reported), and
        ``"report"`` before the report is built (``run.what`` says where from).
    invoke, command_exists
        For steps that have only a command line: ``invoke(args)`` runs it (raising on failure) and
        ``command_exists(path)`` says whether ``layerscope <path...>`` exists. Without ``invoke``
        such a step is skipped. The demo's own steps are all library calls.

    Returns
    -------
    DemoRun
        Per step status, seconds, summary and error text; the report's path.

    Notes
    -----
    Each step runs under :func:`torch.enable_grad` (a previous step or command may have switched
    autograd off), which restores the caller's autograd mode afterwards. A ``KeyboardInterrupt``
    stops the steps; the step table and the report of what finished are still written.
    """
    import torch

    from .report import build_report
    from .results import write_result

    out = Path(out)
    steps = build_steps(out, epochs=epochs, limit=limit, n_project=n_project, progress=progress, speech=speech, transfer=transfer)
    wanted: Optional[set[str]] = None
    if only is not None:
        wanted = {s.strip() for s in (only.split(",") if isinstance(only, str) else only) if s.strip()}
        unknown = sorted(wanted - {s.name for s in steps})
        if unknown:
            raise ParameterError(f"only: unknown step(s) {', '.join(unknown)}; the steps are {', '.join(s.name for s in steps)} "
                                 "(speech and transfer steps only when those parts are included).")
    notify = on_step or (lambda event, run: None)
    track = resolve_progress(progress)
    out.mkdir(parents=True, exist_ok=True)
    started = time.time()
    runs = [StepRun(s.name, s.what, s.command, index=i, total=len(steps)) for i, s in enumerate(steps, 1)]
    by_name = {r.name: r for r in runs}
    for s, r in track(list(zip(steps, runs)), total=len(steps), desc="demo steps"):
        if wanted is not None and s.name not in wanted:
            continue  # stays "not selected"
        if s.run is None:
            if invoke is None:
                r.status, r.note, r.summary = "skipped", "command line only", f"no library call; run `{s.command}`."
            elif command_exists is not None and not command_exists(command_path(s.args)):
                r.status, r.note = "skipped", "command not available"
                r.summary = f"`layerscope {' '.join(command_path(s.args))}` is not available in this version."
        if r.status == "not selected":
            missing = [n for n in s.needs if n in by_name and by_name[n].status not in ("ok", "not selected")]
            if missing:
                r.status, r.note = "skipped", f"needs {', '.join(missing)}"
                r.summary = f"{r.note}, which did not finish."
        if r.status == "skipped":
            log.info("demo step %s skipped: %s", s.name, r.note)
            notify("end", r)
            continue
        r.status = "running"
        notify("start", r)
        log.info("demo step %s", s.name)
        t0 = time.time()
        try:
            with torch.enable_grad():
                if s.run is not None:
                    r.summary = s.run() or ""
                else:
                    cast(Callable[[list[str]], None], invoke)(s.args)
        except KeyboardInterrupt:
            r.status, r.seconds = "interrupted", time.time() - t0
            notify("end", r)
            for later in runs[r.index:]:
                later.status = "not run"
            break
        except BaseException as err:  # one failing step must not stop the others
            r.status, r.seconds = "failed", time.time() - t0
            r.error = r.note = f"{type(err).__name__}: {err}"
            r.traceback = traceback.format_exc(limit=-3).strip()
            log.info("demo step %s failed: %s", s.name, r.error)
            notify("end", r)
            continue
        r.status, r.seconds = "ok", time.time() - t0
        notify("end", r)
    write_result(
        out / "demo", "demo", data="mnist, fsdd (bundled)",
        parameters={"epochs": epochs, "limit": limit, "n_project": n_project, "speech": speech, "transfer": transfer,
                    "only": only if only is None or isinstance(only, str) else ",".join(only)},
        metrics={"seconds before the report": round(time.time() - started, 1),
                 **{st: sum(1 for r in runs if r.status == st) for st in ("ok", "failed", "skipped")}},
        steps=[{"step": r.name, "what": r.what, "status": r.status,
                "seconds": round(r.seconds, 1), "note": r.note, "command": r.command} for r in runs],
    )
    notify("report", StepRun("report", f"collecting every result under {out}", "(python)", status="running"))
    t0 = time.time()
    path = build_report(out, out / "report.html", title="layerscope demo")
    report_seconds = time.time() - t0
    return DemoRun(out=out, steps=runs, report=path, seconds=time.time() - started, report_seconds=report_seconds)
