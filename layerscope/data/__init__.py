"""Dataset loaders for standard on-disk formats, and the data spec strings of the CLI.

Data specs (``--data``):

=========================  =====================================================================
``mnist``                  bundled MNIST, training split (60,000); ``mnist:test`` (10,000), ``mnist:all``
``mnist:PATH[:SPLIT]``     MNIST IDX files (.gz or raw) in folder PATH
``fsdd``                   bundled Free Spoken Digit Dataset, all 3,000 wavs; ``fsdd:train``, ``fsdd:test``
``fsdd:PATH[:SPLIT]``      a folder or .tar.gz of ``<digit>_<speaker>_<index>.wav`` files
``cifar10:PATH[:SPLIT]``   CIFAR-10 python batches folder or .npz (default split: test; training: train)
``imagefolder:PATH``       one sub-folder of images per class; ``imagefolder:PATH@28x28`` resizes
``npz:PATH[:SPLIT]``       arrays x/y (or x_train/y_train/x_test/y_test)
``speech:RUN[:SPLIT]``     the feature frames a ``layerscope speech train`` run was trained
                           (``train``) or tested (``test``, default) on, rebuilt from its run.json
``wordnet[:OPTS][:SPLIT]`` bundled WordNet noun glosses by lexname (``classes=animal,plant``; see
                           :mod:`layerscope.data.text`); ``text:FILE.tsv|jsonl`` labelled texts
=========================  =====================================================================

Default splits: every kind states which split it loads, trains on and evaluates on in one table,
:mod:`layerscope.data.registry` (``default_split``, ``train_spec_for``, ``eval_spec_for``); other
packages add kinds with :func:`register_data_kind`.

Normalisation: MNIST and image folders give pixels / 255 in [0, 1]; CIFAR-10 gives pixels / 255
standardised with mean (0.485, 0.456, 0.406) and std (0.229, 0.224, 0.225) (what the bundled
ResNet-20 expects); npz gives uint8 / 255, other integers as int64 (token ids), floats as float32.
Labels are checked when loaded: integers in ``[0, n_classes)``, at most ``MAX_CLASSES`` classes.
Each dataset says so in
``dataset.normalization``.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Union

from ..exceptions import DataError
from .audio import AudioDataset, load_audiofolder, load_fsdd
from .base import MAX_CLASSES, ArrayDataset, Normalization, check_labels, stratified_indices
from .images import (
    CIFAR10_CLASSES,
    MAX_IMAGE_SIDE,
    load_cifar10,
    load_imagefolder,
    load_mnist,
    load_npz,
    npz_splits,
    read_idx,
)
from .registry import (
    SPLITS,
    DataKind,
    data_kinds,
    default_split,
    eval_spec_for,
    get_data_kind,
    load_dataset,
    parse_data_spec,
    register_data_kind,
    register_data_plugin,
    train_spec_for,
)
from .text import TextDataset

__all__ = [
    "ArrayDataset",
    "AudioDataset",
    "Normalization",
    "DataKind",
    "load_dataset",
    "parse_data_spec",
    "register_data_kind",
    "register_data_plugin",
    "data_kinds",
    "get_data_kind",
    "default_split",
    "train_spec_for",
    "eval_spec_for",
    "load_mnist",
    "load_cifar10",
    "load_imagefolder",
    "load_npz",
    "load_fsdd",
    "load_audiofolder",
    "read_idx",
    "stratified_indices",
    "check_labels",
    "CIFAR10_CLASSES",
    "MAX_CLASSES",
    "SPLITS",
]

Dataset = Union[ArrayDataset, AudioDataset, TextDataset]


def _text(kind: str, rest: str | None, split: str | None) -> TextDataset:
    from .text import load_text_spec

    rest = ":".join(p for p in (rest, split) if p) or None
    return load_text_spec(kind, rest, ":".join(p for p in (kind, rest) if p))


def _imagefolder(path: str | None, split: str | None) -> ArrayDataset:
    assert path is not None  # needs_path=True: load_dataset refuses a missing path first
    size = None
    m = re.fullmatch(r"(.+)@([^@/\\]*)", path)
    if m and not Path(path).is_dir():
        path, s = m[1], m[2]
        sm = re.fullmatch(r"(\d{1,6})[xX](\d{1,6})", s)
        if not sm:
            raise DataError(f"Bad size {s!r} in imagefolder:{path}@{s}; expected HxW, e.g. imagefolder:PATH@32x32.")
        size = (int(sm[1]), int(sm[2]))
        if not all(1 <= v <= MAX_IMAGE_SIDE for v in size):
            raise DataError(
                f"Size {s} in imagefolder:{path}@{s} is outside 1..{MAX_IMAGE_SIDE} pixels per side; e.g. @32x32."
            )
    return load_imagefolder(path, size=size)


register_data_kind(
    "mnist", lambda path, split: load_mnist(path, split=split),  # type: ignore[arg-type]
    default_split="train", train_split="train", eval_split="test",
    description="MNIST IDX files (bundled copy without PATH)",
)
register_data_kind(
    "fsdd", lambda path, split: load_fsdd(path, split=split),  # type: ignore[arg-type]
    default_split="all", train_split="train", eval_split="test",
    description="Free Spoken Digit Dataset wavs (bundled copy without PATH)",
)
register_data_kind(
    "cifar10", lambda path, split: load_cifar10(path, split=split),  # type: ignore[arg-type]
    default_split="test", train_split="train", eval_split="test", needs_path=True,
    description="CIFAR-10 python batches folder or .npz",
)
register_data_kind(
    "npz", lambda path, split: load_npz(path, split=split),  # type: ignore[arg-type]
    default_split="all", train_split="train", eval_split="test", needs_path=True, available_splits=npz_splits,
    description="arrays x/y or x_train/y_train/x_test/y_test",
)
register_data_kind(
    "imagefolder", _imagefolder, default_split=None, needs_path=True,
    description="one sub-folder of images per class; @HxW resizes",
)
register_data_kind(
    "wordnet",
    lambda opts, split: _text("wordnet", opts, split),
    default_split="all", train_split="train", eval_split="test",
    description="bundled WordNet 3.0 noun glosses labelled by lexicographer file (classes=..., per_class=N)",
)
register_data_kind(
    "text",
    lambda path, split: _text("text", path, split),
    default_split="all", train_split="train", eval_split="test", needs_path=True,
    description="a .tsv or .jsonl file of labelled texts (text=COL, label=COL)",
)
register_data_plugin("speech", "layerscope.speech.recipe")
