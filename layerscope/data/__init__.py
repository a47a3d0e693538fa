"""Dataset loaders for standard on-disk formats, and the data spec strings of the CLI.

Data specs (``--data``):

=========================  =====================================================================
``mnist``                  bundled MNIST, training split (60,000); ``mnist:test`` (10,000), ``mnist:all``
``mnist:PATH[:SPLIT]``     MNIST IDX files (.gz or raw) in folder PATH
``fsdd``                   bundled Free Spoken Digit Dataset, all 3,000 wavs; ``fsdd:train``, ``fsdd:test``
``fsdd:PATH[:SPLIT]``      a folder or .tar.gz of ``<digit>_<speaker>_<index>.wav`` files
``cifar10:PATH[:SPLIT]``   CIFAR-10 python batches folder or .npz (default split: test)
``imagefolder:PATH``       one sub-folder of images per class; ``imagefolder:PATH@28x28`` resizes
``npz:PATH[:SPLIT]``       arrays x/y (or x_train/y_train/x_test/y_test)
``speech:RUN[:SPLIT]``     the feature frames a ``layerscope speech train`` run was trained
                           (``train``) or tested (``test``, default) on, rebuilt from its run.json
``wordnet[:OPTS][:SPLIT]`` bundled WordNet noun glosses by lexname (``classes=animal,plant``; see
                           :mod:`layerscope.data.text`); ``text:FILE.tsv|jsonl`` labelled texts
=========================  =====================================================================

Normalisation: MNIST and image folders give pixels / 255 in [0, 1]; CIFAR-10 gives pixels / 255
standardised with mean (0.485, 0.456, 0.406) and std (0.229, 0.224, 0.225) (what the bundled
ResNet-20 expects); npz gives uint8 / 255 or floats as stored. Each dataset says so in
``dataset.normalization``.
"""

from __future__ import annotations

from typing import Union

from ..exceptions import DataError
from .audio import AudioDataset, load_audiofolder, load_fsdd
from .base import ArrayDataset, Normalization, stratified_indices
from .images import CIFAR10_CLASSES, load_cifar10, load_imagefolder, load_mnist, load_npz, read_idx
from .text import TextDataset

__all__ = [
    "ArrayDataset",
    "AudioDataset",
    "Normalization",
    "load_dataset",
    "parse_data_spec",
    "load_mnist",
    "load_cifar10",
    "load_imagefolder",
    "load_npz",
    "load_fsdd",
    "load_audiofolder",
    "read_idx",
    "stratified_indices",
    "CIFAR10_CLASSES",
]

Dataset = Union[ArrayDataset, AudioDataset, TextDataset]
SPLITS = ("train", "test", "all")
KINDS = ("mnist", "fsdd", "cifar10", "imagefolder", "npz", "speech", "wordnet", "text")


def parse_data_spec(spec: str) -> tuple[str, str | None, str | None]:
    """Split ``KIND[:PATH][:SPLIT]`` into ``(kind, path, split)``."""
    if not spec or not isinstance(spec, str):
        raise DataError(f"Empty data spec; expected one of {', '.join(KINDS)} (e.g. 'mnist:test').")
    kind, _, rest = spec.partition(":")
    kind = kind.strip().lower()
    if kind not in KINDS:
        raise DataError(
            f"Unknown data kind {kind!r} in {spec!r}; expected one of {', '.join(KINDS)} "
            "(e.g. 'mnist', 'mnist:test', 'fsdd', 'cifar10:PATH', 'imagefolder:PATH', 'npz:PATH')."
        )
    path: str | None = rest or None
    split: str | None = None
    if path is not None:
        head, sep, tail = path.rpartition(":")
        if tail in SPLITS:
            split = tail
            path = head if sep else None
            path = path or None
    return kind, path, split


def load_dataset(spec: str) -> Dataset:
    """Load the dataset a spec string names (see the module docstring)."""
    if spec.partition(":")[0].strip().lower() in ("wordnet", "text"):  # text kinds parse their own options
        from .text import load_text_spec

        head, _, rest = spec.partition(":")
        return load_text_spec(head.strip().lower(), rest or None, spec)
    kind, path, split = parse_data_spec(spec)
    if kind == "mnist":
        return load_mnist(path, split=split or "train")  # type: ignore[arg-type]
    if kind == "fsdd":
        return load_fsdd(path, split=split or "all")  # type: ignore[arg-type]
    if path is None:
        raise DataError(f"Data kind {kind!r} needs a path: '{kind}:PATH'.")
    if kind == "cifar10":
        return load_cifar10(path, split=split or "test")  # type: ignore[arg-type]
    if kind == "npz":
        return load_npz(path, split=split or "all")  # type: ignore[arg-type]
    if kind == "speech":
        from ..speech.recipe import run_frames

        return run_frames(path, part=split or "test")  # type: ignore[arg-type]
    size = None
    if "@" in path:
        path, _, s = path.rpartition("@")
        try:
            h, w = (int(v) for v in s.lower().split("x"))
        except ValueError as err:
            raise DataError(f"Bad size {s!r} in {spec!r}; expected e.g. imagefolder:PATH@32x32.") from err
        size = (h, w)
    return load_imagefolder(path, size=size)
