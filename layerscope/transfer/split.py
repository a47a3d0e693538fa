"""Splits of a dataset's classes into two tasks, A and B (Yosinski et al. 2014, §2).

Yosinski, Clune, Bengio & Lipson, *How transferable are features in deep neural networks?*,
NIPS 2014, split the 1000 ImageNet classes into two halves: random halves (similar tasks) and a
man-made / natural split (dissimilar tasks). Here a split is one of:

* ``"random"`` — random halves, drawn from ``random_state`` (the grid draws one per seed, as the
  paper's several random splits); with an odd class count A gets the extra class;
* a preset name from :data:`PRESETS` — ``mnist-0-4`` (digits 0–4 vs 5–9) and ``cifar10-living``
  (bird, cat, deer, dog, frog, horse vs airplane, automobile, ship, truck);
* a JSON file ``{"name": "...", "a": [...], "b": [...]}`` whose entries are class names or
  class indices of the dataset;
* a :class:`ClassSplit` built in code.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

from ..exceptions import DataError, ParameterError

__all__ = ["ClassSplit", "PRESETS", "random_split", "resolve_split", "task_subset"]

#: Preset splits, by class name: ``name -> (A classes, B classes)``.
PRESETS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "mnist-0-4": (("0", "1", "2", "3", "4"), ("5", "6", "7", "8", "9")),
    "cifar10-living": (
        ("bird", "cat", "deer", "dog", "frog", "horse"),
        ("airplane", "automobile", "ship", "truck"),
    ),
}


@dataclass(frozen=True)
class ClassSplit:
    """Two disjoint sets of class indices of one dataset: task A and task B.

    Attributes
    ----------
    name
        ``"random"``, a preset name or a file name; shown in results.
    a, b
        Sorted class indices (into ``classes``) of task A and task B.
    classes
        All class names of the dataset.
    """

    name: str
    a: tuple[int, ...]
    b: tuple[int, ...]
    classes: tuple[str, ...]

    def __post_init__(self) -> None:
        n = len(self.classes)
        for half, idx in (("A", self.a), ("B", self.b)):
            if not idx:
                raise ParameterError(f"Split {self.name!r}: task {half} has no classes; both halves need at least one.")
            bad = [i for i in idx if not 0 <= i < n]
            if bad:
                raise ParameterError(f"Split {self.name!r}: class indices {bad} of task {half} are outside 0..{n - 1}.")
            if len(set(idx)) != len(idx):
                raise ParameterError(f"Split {self.name!r}: task {half} lists a class twice: {list(idx)}.")
        both = sorted(set(self.a) & set(self.b))
        if both:
            raise ParameterError(
                f"Split {self.name!r}: classes {[self.classes[i] for i in both]} are in both A and B; "
                "the two tasks must be disjoint."
            )

    def half(self, which: str) -> tuple[int, ...]:
        """Class indices of task ``"A"`` or ``"B"``."""
        if which not in ("A", "B"):
            raise ParameterError(f"which must be 'A' or 'B'; got {which!r}.")
        return self.a if which == "A" else self.b

    def names(self, which: str) -> list[str]:
        """Class names of task ``"A"`` or ``"B"``."""
        return [self.classes[i] for i in self.half(which)]

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "a": list(self.a),
            "b": list(self.b),
            "a_names": self.names("A"),
            "b_names": self.names("B"),
        }


def random_split(classes: Sequence[str], random_state: int | None = 0) -> ClassSplit:
    """Random halves of ``classes`` (A gets the extra class when the count is odd)."""
    n = len(classes)
    if n < 2:
        raise ParameterError(f"A split needs at least 2 classes; the dataset has {n}.")
    perm = np.random.default_rng(random_state).permutation(n)
    k = (n + 1) // 2
    return ClassSplit("random", tuple(sorted(int(i) for i in perm[:k])), tuple(sorted(int(i) for i in perm[k:])), tuple(classes))


def _to_indices(entries: Sequence[Any], classes: Sequence[str], where: str) -> tuple[int, ...]:
    lookup = {str(c): i for i, c in enumerate(classes)}
    out = []
    for e in entries:
        if isinstance(e, str) and e in lookup:
            out.append(lookup[e])
        elif isinstance(e, (int, np.integer)) and not isinstance(e, bool):
            out.append(int(e))
        else:
            raise ParameterError(
                f"{where}: {e!r} is not a class of this dataset; expected one of {list(classes)} or an index 0..{len(classes) - 1}."
            )
    return tuple(sorted(out))


def resolve_split(spec: "str | os.PathLike[str] | ClassSplit", classes: Sequence[str], random_state: int | None = 0) -> ClassSplit:
    """Turn a split spec into a :class:`ClassSplit` over ``classes``.

    Parameters
    ----------
    spec
        ``"random"``, a key of :data:`PRESETS`, a path to a JSON file with ``"a"`` and ``"b"``
        lists (class names or indices), or a :class:`ClassSplit`.
    classes
        The dataset's class names.
    random_state
        Seed of the random halves (``"random"`` only).
    """
    classes = [str(c) for c in classes]
    if isinstance(spec, ClassSplit):
        if list(spec.classes) != classes:
            raise ParameterError(f"Split {spec.name!r} was made for classes {list(spec.classes)}, not {classes}.")
        return spec
    text = str(spec)
    if text == "random":
        return random_split(classes, random_state)
    if text in PRESETS:
        a, b = PRESETS[text]
        missing = [c for c in (*a, *b) if c not in classes]
        if missing:
            raise ParameterError(
                f"Preset split {text!r} needs classes {missing}, which this dataset lacks (its classes: {classes}); "
                "pick a preset that fits the data, 'random', or a JSON split file."
            )
        return ClassSplit(text, _to_indices(a, classes, text), _to_indices(b, classes, text), tuple(classes))
    path = Path(text)
    if path.suffix.lower() == ".json" or path.exists():
        if not path.is_file():
            raise DataError(f"Split file {path} does not exist; expected a JSON file like {{\"a\": [...], \"b\": [...]}}.")
        try:
            doc = json.loads(path.read_text())
        except json.JSONDecodeError as err:
            raise DataError(f"Split file {path} is not valid JSON ({err}).") from err
        if not isinstance(doc, dict) or not isinstance(doc.get("a"), list) or not isinstance(doc.get("b"), list):
            raise DataError(f"Split file {path} must hold an object with lists \"a\" and \"b\" of class names or indices.")
        name = str(doc.get("name") or path.stem)
        return ClassSplit(name, _to_indices(doc["a"], classes, str(path)), _to_indices(doc["b"], classes, str(path)), tuple(classes))
    raise ParameterError(
        f"Unknown split {text!r}; expected 'random', one of the presets {', '.join(PRESETS)}, or a JSON file path."
    )


def task_subset(dataset: Any, split: ClassSplit, which: str, limit: int | None = None, random_state: int | None = 0) -> Any:
    """The samples of task ``which`` (``"A"``/``"B"``), labels renumbered ``0..k-1`` in split order.

    ``limit`` keeps a seeded stratified subset of that many samples. Returns an
    :class:`~layerscope.data.ArrayDataset` whose ``classes`` are the task's class names.
    """
    from ..data import ArrayDataset, stratified_indices

    if not isinstance(dataset, ArrayDataset):
        raise DataError(f"Transfer experiments need an in-memory image dataset (ArrayDataset); got {type(dataset).__name__}.")
    if list(dataset.classes) != list(split.classes):
        raise DataError(f"The split is over classes {list(split.classes)}, but the dataset has {dataset.classes}.")
    keep = split.half(which)
    y = dataset.y.numpy()
    rows = np.flatnonzero(np.isin(y, keep))
    if len(rows) == 0:
        raise DataError(f"{dataset.name}: no samples of task {which} (classes {split.names(which)}).")
    if limit is not None:
        if limit < 1:
            raise ParameterError(f"limit must be a positive number of samples; got {limit}.")
        rows = rows[stratified_indices(y[rows], limit, random_state)]
    sub = dataset.subset(rows)
    remap = np.full(len(split.classes), -1, dtype=np.int64)
    remap[list(keep)] = np.arange(len(keep))
    return ArrayDataset(
        sub.x,
        torch.from_numpy(remap[sub.y.numpy()]),
        classes=split.names(which),
        normalization=sub.normalization,
        name=f"{dataset.name}[{split.name}:{which}]",
        sample_ids=sub.sample_ids,
    )
