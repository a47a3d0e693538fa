"""Dataset types shared by every loader."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np
import torch
from torch.utils.data import TensorDataset

from ..exceptions import DataError, ParameterError

__all__ = ["Normalization", "ArrayDataset", "stratified_indices", "check_labels", "MAX_CLASSES"]

MAX_CLASSES = 100_000
"""The most classes a dataset may have: a label of 10**12 in a file must not build 10**12 names."""


def check_labels(y: Any, source: str, n_classes: int | None = None) -> np.ndarray:
    """Validate class labels at load time and return them as an ``(N,)`` int64 array.

    Labels must be a 1-D array of integers (integer-valued floats are refused too: a float label
    is more likely a regression target or a mistake) in ``[0, n_classes)``; without
    ``n_classes`` the number of classes is ``max + 1``, which must not exceed :data:`MAX_CLASSES`.

    Raises
    ------
    DataError
        Naming ``source`` (the file or spec), the offending value and the fix.
    """
    a = np.asarray(y)
    if a.ndim != 1:
        raise DataError(f"{source}: labels must be a 1-D array of class indices; got shape {a.shape}.")
    if a.dtype == np.bool_ or not np.issubdtype(a.dtype, np.integer):
        raise DataError(
            f"{source}: labels must be integer class indices; got dtype {a.dtype}. "
            "Store them as an integer array (e.g. y.astype('int64'))."
        )
    if a.size == 0:
        return a.astype(np.int64)
    lo, hi = int(a.min()), int(a.max())
    if lo < 0:
        raise DataError(
            f"{source}: labels must be class indices >= 0; found {lo} (at row {int(np.argmin(a))}). "
            "Map your classes to 0..n_classes-1 first."
        )
    limit = MAX_CLASSES if n_classes is None else n_classes
    if hi >= limit:
        if n_classes is None:
            raise DataError(
                f"{source}: label {hi} (at row {int(np.argmax(a))}) would mean {hi + 1} classes; at most "
                f"{MAX_CLASSES} are supported. Labels must be class indices 0..n_classes-1."
            )
        raise DataError(
            f"{source}: label {hi} (at row {int(np.argmax(a))}) is outside [0, {n_classes}) for its "
            f"{n_classes} class names. Give a name for every class or fix the labels."
        )
    return a.astype(np.int64)



@dataclass(frozen=True)
class Normalization:
    """How raw values were turned into model inputs: ``x = (raw * scale - mean) / std``.

    ``mean`` and ``std`` are per channel (empty: none applied). :meth:`denormalize` maps model
    inputs back to display range (``[0, 1]`` for images).
    """

    scale: float = 1.0 / 255.0
    mean: tuple[float, ...] = ()
    std: tuple[float, ...] = ()
    description: str = "pixels / 255, in [0, 1]"

    def apply(self, raw: np.ndarray) -> torch.Tensor:
        """``raw`` of shape ``(N, C, ...)`` to a normalised float32 tensor."""
        x = torch.from_numpy(np.asarray(raw, dtype=np.float32) * np.float32(self.scale))
        if self.mean:
            shape = (1, len(self.mean)) + (1,) * (x.ndim - 2)
            m = torch.tensor(self.mean, dtype=torch.float32).view(shape)
            s = torch.tensor(self.std, dtype=torch.float32).view(shape)
            x = (x - m) / s
        return x

    def denormalize(self, x: torch.Tensor | np.ndarray) -> np.ndarray:
        """Model inputs ``(N, C, ...)`` back to display values (``[0, 1]`` for images)."""
        a = np.asarray(x.detach().cpu() if isinstance(x, torch.Tensor) else x, dtype=np.float32)
        if self.mean:
            shape = (1, len(self.mean)) + (1,) * (a.ndim - 2)
            a = a * np.asarray(self.std, np.float32).reshape(shape) + np.asarray(self.mean, np.float32).reshape(shape)
        return a

    def to_dict(self) -> dict[str, Any]:
        return {"scale": self.scale, "mean": list(self.mean), "std": list(self.std), "description": self.description}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Normalization":
        return cls(
            scale=float(d.get("scale", 1.0)),
            mean=tuple(d.get("mean", ())),
            std=tuple(d.get("std", ())),
            description=str(d.get("description", "")),
        )

    def zero_value(self) -> float:
        """The occluder value of Zeiler & Fergus's 'grey square', in normalised (model input) space.

        * Data without mean/std (pixels scaled into ``[0, 1]``): ``0.5``, mid-grey.
        * Standardised data (``mean``/``std`` set, e.g. CIFAR-10): ``0.0``, i.e. the per-channel
          mean the data were standardised with (the mean colour), not mid-grey: in standardised
          space mid-grey would be ``(0.5 - mean) / std``, a different value per channel. Filling
          with the mean is the usual choice for standardised inputs (it is what an uninformative
          patch looks like to the model); Zeiler & Fergus (2014) describe a grey square on
          mean-subtracted ImageNet inputs, where the mean is likewise 0.

        For data used "as stored" (``scale == 1`` without mean/std) ``0.5`` is mid-grey only if
        the values lie in ``[0, 1]``; pass an explicit value otherwise.
        """
        return 0.0 if self.mean else 0.5


class ArrayDataset(TensorDataset):
    """An in-memory dataset of normalised inputs and integer labels.

    Items are ``(x, y)`` with ``x`` a tensor of shape :attr:`input_shape` (float32, or int64 for
    integer data such as token ids) and ``y`` an int64 class index into :attr:`classes`; labels are
    checked to lie in ``[0, len(classes))`` when the dataset is built.

    Attributes
    ----------
    classes
        Class names, index = label.
    normalization
        How raw values became ``x`` (see :class:`Normalization`).
    extra_labels
        Other per-sample integer labels, e.g. ``{"speaker": (N,)}``; names in ``label_names``.
    sample_ids
        Row of each sample in the original file(s).
    name
        The data spec it came from.
    """

    def __init__(
        self,
        x: torch.Tensor,
        y: torch.Tensor,
        *,
        classes: Sequence[str],
        normalization: Normalization,
        name: str = "",
        extra_labels: dict[str, np.ndarray] | None = None,
        label_names: dict[str, list[str]] | None = None,
        sample_ids: np.ndarray | None = None,
    ) -> None:
        if x.shape[0] != y.shape[0]:
            raise DataError(f"{name}: {x.shape[0]} inputs but {y.shape[0]} labels; they must match.")
        if len(classes) > MAX_CLASSES:
            raise DataError(f"{name}: {len(classes)} class names; at most {MAX_CLASSES} are supported.")
        if y.dtype.is_floating_point or y.dtype.is_complex or y.dtype == torch.bool:
            raise DataError(f"{name}: labels must be integer class indices; got {y.dtype}.")
        if y.numel():
            lo, hi = int(y.min()), int(y.max())
            if lo < 0 or hi >= len(classes):
                raise DataError(
                    f"{name}: labels must lie in [0, {len(classes)}) (one per class name); found "
                    f"{lo if lo < 0 else hi}. Fix the labels or the class names."
                )
        super().__init__(x, y.long())
        self.classes = [str(c) for c in classes]
        self.normalization = normalization
        self.name = name
        self.extra_labels = dict(extra_labels or {})
        self.label_names = dict(label_names or {})
        self.sample_ids = np.arange(len(y)) if sample_ids is None else np.asarray(sample_ids)

    @property
    def x(self) -> torch.Tensor:
        return self.tensors[0]

    @property
    def y(self) -> torch.Tensor:
        return self.tensors[1]

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(self.x.shape[1:])

    def subset(self, indices: Sequence[int] | np.ndarray) -> "ArrayDataset":
        idx = np.asarray(indices, dtype=np.int64)
        t = torch.from_numpy(idx)
        return ArrayDataset(
            self.x[t],
            self.y[t],
            classes=self.classes,
            normalization=self.normalization,
            name=self.name,
            extra_labels={k: np.asarray(v)[idx] for k, v in self.extra_labels.items()},
            label_names=self.label_names,
            sample_ids=self.sample_ids[idx],
        )

    def class_counts(self) -> np.ndarray:
        return np.bincount(self.y.numpy(), minlength=len(self.classes))

    def __repr__(self) -> str:
        return (
            f"ArrayDataset({self.name!r}, n={len(self)}, input_shape={self.input_shape}, "
            f"classes={len(self.classes)}, normalization={self.normalization.description!r})"
        )


def stratified_indices(labels: np.ndarray, n: int, random_state: int | None = 0) -> np.ndarray:
    """``n`` row indices drawn without replacement, class proportions kept (seeded), sorted."""
    labels = np.asarray(labels)
    if isinstance(n, bool) or int(n) != n or n < 1:
        raise ParameterError(f"limit must be a whole number >= 1 (samples to keep); got {n!r}.")
    if n >= len(labels):
        return np.arange(len(labels))
    from sklearn.model_selection import train_test_split

    idx = np.arange(len(labels))
    counts = np.bincount(labels) if labels.min() >= 0 else None
    strat = labels if counts is not None and (counts[counts > 0] >= 2).all() and n >= len(counts[counts > 0]) else None
    chosen, _ = train_test_split(idx, train_size=n, stratify=strat, random_state=random_state)
    return np.sort(chosen)
