"""The acoustic-model recipe: a frame-level DNN (Mohamed, Hinton & Penn 2012) on FSDD frames.

:func:`train_acoustic_model` builds frame features (:mod:`.features`), trains an
:class:`~layerscope.models.AcousticDNN` (1 to 8 hidden layers) to classify the digit (or the
speaker) of every frame with :func:`layerscope.training.train`, and so writes an ordinary run
folder: ``run.json`` plus ``checkpoints/epoch_XXXX.safetensors``. ``layerscope.loading.load_run_model``
rebuilds the model from it; :func:`load_acoustic_run` also rebuilds the feature extractor, whose
parameters and global statistics are stored in ``run.json`` under ``"features"``.

Extra ``run.json`` fields written here::

    "recipe": "speech", "arch": "dnn:width=..,depth=..", "data": "fsdd", "input_shape": [2w+1, F],
    "classes": [...], "normalization": {...}, "target": "digit" | "speaker",
    "features": {FeatureConfig fields, "n_features", "input_shape", "global_mean", "global_std"},
    "split": "official" | "speaker" | "all", "test_speakers": [...], "test_takes": [0..4],
    "train_speakers": [...], "frame_step": int,
    "utterance_accuracy": float   # test recordings, frame log-probabilities summed (after training)
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Sequence

import numpy as np
import torch
from torch import nn

from .._io import write_json
from .._progress import Tracker
from ..data.audio import AudioDataset
from ..data.base import ArrayDataset
from ..data.registry import register_data_kind
from ..exceptions import DataError, ParameterError
from ..models import build_model, parse_arch_spec
from ..training import RUN_FILE, TrainRun, train
from .features import FeatureConfig, FrameExtractor, fsdd_split

__all__ = [
    "AcousticRun",
    "train_acoustic_model",
    "load_acoustic_run",
    "run_frames",
    "utterance_accuracy",
]


@dataclass
class AcousticRun:
    """A trained acoustic model with what is needed to feed it.

    Attributes
    ----------
    model : AcousticDNN (eval mode)
    extractor : FrameExtractor (fitted)
    meta : dict  — the run's ``run.json``
    directory : Path
    """

    model: nn.Module
    extractor: FrameExtractor
    meta: dict[str, Any]
    directory: Path

    @property
    def target(self) -> str:
        return str(self.meta.get("target", "digit"))

    def split_rows(self, audio: AudioDataset) -> tuple[np.ndarray, np.ndarray]:
        """Train / test recording rows of ``audio`` as the run defined them."""
        split = self.meta.get("split", "official")
        return fsdd_split(audio, split, self.meta.get("test_speakers"), self.meta.get("test_takes", range(5)))

    def frames(self, audio: AudioDataset, part: Literal["train", "test", "all"] = "test", *,
               frame_step: int = 1, progress: Tracker | None = None) -> ArrayDataset:
        """Frames of the run's ``part`` of ``audio``, labelled for the run's target."""
        tr, te = self.split_rows(audio)
        rows = {"train": tr, "test": te, "all": np.arange(len(audio))}[part]
        return self.extractor.transform(
            audio, rows, frame_step=frame_step, target=self.target,  # type: ignore[arg-type]
            speakers=self.meta.get("classes") if self.target == "speaker" else None, progress=progress,
        )


def utterance_accuracy(model: nn.Module, frames: ArrayDataset, batch_size: int = 2048) -> float:
    """Accuracy per recording: frame log-probabilities summed over each recording's frames.

    ``frames.extra_labels["utterance"]`` groups the frames; the recording's label is its frames' label.
    """
    from ..capture import model_device, model_state_guard
    from ..seam import call_model, iter_batches

    if "utterance" not in frames.extra_labels:
        raise DataError("utterance_accuracy needs frames with extra_labels['utterance'] (from FrameExtractor).")
    utt = np.asarray(frames.extra_labels["utterance"])
    dev = model_device(model)
    logp = []
    with model_state_guard(model), torch.no_grad():
        model.eval()
        for batch in iter_batches(frames, batch_size, model=model, device=dev):
            logp.append(torch.log_softmax(call_model(model, batch)[: batch.n], 1).cpu().numpy())
    lp = np.concatenate(logp)
    ids, inv = np.unique(utt, return_inverse=True)
    sums = np.zeros((len(ids), lp.shape[1]))
    np.add.at(sums, inv, lp)
    truth = np.zeros(len(ids), np.int64)
    truth[inv] = frames.y.numpy()
    return float((sums.argmax(1) == truth).mean())


def train_acoustic_model(
    audio: AudioDataset,
    *,
    out_dir: str | os.PathLike[str],
    features: FeatureConfig | None = None,
    arch: str = "dnn:width=256,depth=4",
    target: Literal["digit", "speaker"] = "digit",
    split: Literal["official", "speaker", "all"] = "official",
    test_speakers: Sequence[str] | None = None,
    epochs: int = 5,
    checkpoints: Sequence[int] | None = None,
    batch_size: int = 256,
    lr: float = 1e-3,
    optimizer: str = "adam",
    momentum: float = 0.9,
    weight_decay: float = 0.0,
    frame_step: int = 1,
    seed: int = 0,
    data_spec: str = "fsdd",
    progress: Tracker | None = None,
) -> AcousticRun:
    """Train a frame-level acoustic DNN on recordings (Mohamed, Hinton & Penn 2012).

    Parameters
    ----------
    audio
        Recordings with digit and speaker labels (``layerscope.data.load_fsdd()``).
    out_dir
        Run folder to write (``run.json`` + checkpoints), loadable by ``load_run_model``.
    features
        Feature configuration (default: 40 log-mel, ±5 frames, per-utterance normalisation).
    arch
        ``dnn:width=W,depth=D`` (depth 1 to 8). Input shape and classes come from the features.
    target
        Classify each frame's digit (the acoustic model) or its speaker (the embedding network of
        Garcia-Romero et al. 2017).
    split
        ``"official"`` (test = takes 0-4 of every speaker), ``"speaker"`` (``test_speakers`` held
        out), or ``"all"`` (train on everything, test = everything). With ``target="speaker"`` and
        ``split="speaker"`` the model is validated on takes 0-4 of the training speakers and the
        held-out speakers are the run's test recordings (for :mod:`.embeddings`).
    epochs, checkpoints, batch_size, lr, optimizer, momentum, weight_decay, seed
        As :func:`layerscope.training.train` (Adam, lr 1e-3 by default).
    frame_step
        Train on every ``frame_step``-th frame (test frames are all kept).

    Returns
    -------
    AcousticRun
    """
    name, opts = parse_arch_spec(arch)
    if name != "dnn":
        raise ParameterError(f"The speech recipe trains 'dnn:width=..,depth=..' models; got architecture {arch!r}.")
    if target not in ("digit", "speaker"):
        raise ParameterError(f"target must be 'digit' or 'speaker'; got {target!r}.")
    cfg = features or FeatureConfig()
    tr, te = fsdd_split(audio, split, test_speakers)
    if target == "speaker" and split == "speaker":
        # Garcia-Romero et al.: the speaker classifier learns the training speakers (validated on
        # their takes 0-4); the held-out speakers' recordings are kept for embedding and clustering.
        is_val = np.isin(audio.indices[tr], np.arange(5))
        fit_rows, val_rows = tr[~is_val], tr[is_val]
    else:
        fit_rows, val_rows = tr, te
    extractor = FrameExtractor(cfg).fit(audio, fit_rows, progress=progress)
    train_speakers = sorted({audio.speaker_names[s] for s in audio.speakers[fit_rows]})
    spk = train_speakers if target == "speaker" else None
    train_set = extractor.transform(audio, fit_rows, frame_step=frame_step, target=target, speakers=spk, progress=progress)
    val_set = extractor.transform(audio, val_rows, target=target, speakers=spk, progress=progress)
    torch.manual_seed(seed)
    model = build_model(arch, cfg.input_shape, len(train_set.classes))
    held = list(test_speakers) if test_speakers else ([audio.speaker_names[-1]] if split == "speaker" else [])
    meta = {
        "recipe": "speech",
        "arch": arch,
        "data": data_spec,
        "val_data": None,
        "input_shape": list(cfg.input_shape),
        "classes": list(train_set.classes),
        "normalization": train_set.normalization.to_dict(),
        "target": target,
        "features": extractor.to_dict(),
        "split": split,
        "test_speakers": held,
        "test_takes": list(range(5)),
        "train_speakers": train_speakers,
        "frame_step": frame_step,
        "n_train_recordings": int(len(fit_rows)),
        "n_val_recordings": int(len(val_rows)),
        "n_test_recordings": int(len(te)),
        "depth": int(opts.get("depth", 4)),
        "width": int(opts.get("width", 512)),
    }
    run = train(
        model, train_set, out_dir=out_dir, epochs=epochs, val_set=val_set, checkpoints=checkpoints,
        batch_size=batch_size, lr=lr, momentum=momentum, weight_decay=weight_decay, optimizer=optimizer,
        seed=seed, meta=meta, progress=progress,
    )
    info = dict(run.meta)
    info["utterance_accuracy"] = utterance_accuracy(model, val_set)
    write_json(Path(out_dir) / RUN_FILE, info)
    model.classes = list(train_set.classes)  # type: ignore[assignment]
    model.normalization = train_set.normalization  # type: ignore[assignment]
    return AcousticRun(model.eval(), extractor, info, Path(out_dir))


def load_acoustic_run(run_dir: str | os.PathLike[str], epoch: int | None = None) -> AcousticRun:
    """Load a run folder written by :func:`train_acoustic_model`: model and feature extractor."""
    from ..loading import load_run_model

    run = TrainRun.load(run_dir)
    if "features" not in run.meta:
        raise DataError(
            f"{run_dir} was not written by the speech recipe: its run.json has no 'features'. "
            "Train one with `layerscope speech train`."
        )
    model = load_run_model(run_dir, epoch)
    return AcousticRun(model, FrameExtractor.from_dict(run.meta["features"]), run.meta, Path(run_dir))


def run_frames(run_dir: str | os.PathLike[str], audio: AudioDataset | None = None,
               part: Literal["train", "test", "all"] = "test", frame_step: int = 1) -> ArrayDataset:
    """The frames a speech run was trained / tested on (features rebuilt from ``run.json``)."""
    from ..data import load_dataset

    run = load_acoustic_run(run_dir)
    if audio is None:
        loaded = load_dataset(run.meta.get("data", "fsdd"))
        if not isinstance(loaded, AudioDataset):
            raise DataError(f"The run's data {run.meta.get('data')!r} is not a set of recordings.")
        audio = loaded
    return run.frames(audio, part, frame_step=frame_step)


def _speech_frames(path: str | None, split: str | None) -> ArrayDataset:
    return run_frames(str(path), part=split or "test")  # type: ignore[arg-type]


register_data_kind(
    "speech", _speech_frames, default_split="test", train_split="train", eval_split="test", needs_path=True,
    description="the feature frames a `layerscope speech train` run was trained (train) or tested (test) on",
)
