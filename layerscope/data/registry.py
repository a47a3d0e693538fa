"""The data kinds of ``--data`` specs, and the one place their default splits are stated.

A data spec is ``KIND[:PATH][:SPLIT]``. Each kind registers a loader with
:func:`register_data_kind`, stating three split rules:

``default_split``
    the split :func:`load_dataset` loads when the spec names none;
``train_split``
    the split a training command (``layerscope train``, transfer grids) trains on when the spec
    names none;
``eval_split``
    the split used to validate / evaluate a model trained on ``train_split``.

=============  ===============  =============  ============  ===============================
kind           default (load)   train          eval          splits
=============  ===============  =============  ============  ===============================
mnist          train            train          test          train, test, all
fsdd           all              train          test          train, test, all (index 0-4 test)
cifar10        test             train          test          train, test, all
npz            all              train*         test*         train, test, all (* x_train/x_test)
imagefolder    (none)           (none)         (none)        one folder, no splits
speech         test             train          test          train, test, all (registered by
                                                             :mod:`layerscope.speech.recipe`)
=============  ===============  =============  ============  ===============================

``*`` an ``.npz`` holding plain ``x``/``y`` arrays has no splits: it trains on everything and gets
no validation split. A spec that names its split explicitly always gets exactly that split; a
model trained on an explicit ``test`` or ``all`` split gets no evaluation split (there is no
disjoint one).

Packages add kinds by calling :func:`register_data_kind` when imported, and name the module to
import with :func:`register_data_plugin` so :func:`load_dataset` can import it lazily the first
time its kind is asked for (``speech`` is registered this way; this package never imports it).
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from typing import Any, Callable, Literal

from ..exceptions import DataError

__all__ = [
    "DataKind",
    "register_data_kind",
    "register_data_plugin",
    "data_kinds",
    "get_data_kind",
    "parse_data_spec",
    "load_dataset",
    "default_split",
    "train_spec_for",
    "eval_spec_for",
    "SPLITS",
]

SPLITS = ("train", "test", "all")
Purpose = Literal["load", "train", "eval"]


@dataclass(frozen=True)
class DataKind:
    """One registered data kind.

    Attributes
    ----------
    name
        The ``KIND`` of ``KIND[:PATH][:SPLIT]``.
    loader
        ``loader(path, split) -> dataset``; ``path`` is ``None`` for the bundled copy, ``split`` is
        already resolved (never ``None`` for a kind with splits).
    default_split, train_split, eval_split
        The split rules (see the module docstring); ``None`` for a kind without splits.
    needs_path
        Whether the spec must give a path (no bundled copy).
    available_splits
        ``available_splits(path) -> splits the file/folder actually holds`` (default: all of
        ``SPLITS``); used so a training spec never validates on the data it trains on.
    description
        One line for help texts: what the spec means.
    """

    name: str
    loader: Callable[[str | None, str | None], Any]
    default_split: str | None
    train_split: str | None
    eval_split: str | None
    needs_path: bool = False
    available_splits: Callable[[str | None], tuple[str, ...]] | None = None
    description: str = ""
    splits: tuple[str, ...] = field(default=SPLITS)

    def has_splits(self) -> bool:
        return self.default_split is not None

    def splits_of(self, path: str | None) -> tuple[str, ...]:
        if not self.has_splits():
            return ()
        return self.available_splits(path) if self.available_splits is not None else self.splits


_KINDS: dict[str, DataKind] = {}
_PLUGINS: dict[str, str] = {}


def register_data_kind(
    name: str,
    loader: Callable[[str | None, str | None], Any],
    *,
    default_split: str | None,
    train_split: str | None = None,
    eval_split: str | None = None,
    needs_path: bool = False,
    available_splits: Callable[[str | None], tuple[str, ...]] | None = None,
    description: str = "",
) -> DataKind:
    """Register (or replace) the data kind ``name``; returns its :class:`DataKind`.

    ``default_split=None`` declares a kind without splits (then ``train_split`` and ``eval_split``
    must be ``None`` too, and a spec naming a split other than ``all`` is refused).
    """
    key = name.strip().lower()
    if not key or ":" in key or not key.replace("_", "").replace("-", "").isalnum():
        raise DataError(f"Bad data kind name {name!r}: use letters, digits, '-' or '_'.")
    rules = (default_split, train_split, eval_split)
    if any(r is not None and r not in SPLITS for r in rules):
        raise DataError(f"Data kind {key!r}: splits must be one of {SPLITS} or None; got {rules}.")
    if default_split is None and (train_split is not None or eval_split is not None):
        raise DataError(f"Data kind {key!r} has no default split, so it cannot have train/eval splits.")
    kind = DataKind(key, loader, default_split, train_split, eval_split, needs_path, available_splits, description)
    _KINDS[key] = kind
    return kind


def register_data_plugin(name: str, module: str) -> None:
    """Name the module that registers data kind ``name`` when imported (imported lazily)."""
    _PLUGINS[name.strip().lower()] = module


def _ensure_plugin(name: str) -> None:
    if name not in _KINDS and name in _PLUGINS:
        importlib.import_module(_PLUGINS[name])


def data_kinds() -> tuple[str, ...]:
    """Every known kind: registered ones and lazily imported plug-ins."""
    return tuple(dict.fromkeys([*_KINDS, *_PLUGINS]))


def get_data_kind(name: str) -> DataKind:
    """The registered kind ``name`` (importing its plug-in module if needed)."""
    key = name.strip().lower()
    _ensure_plugin(key)
    if key not in _KINDS:
        raise DataError(
            f"Unknown data kind {key!r}; expected one of {', '.join(data_kinds())} "
            "(e.g. 'mnist', 'mnist:test', 'fsdd', 'cifar10:PATH', 'imagefolder:PATH', 'npz:PATH')."
        )
    return _KINDS[key]


def parse_data_spec(spec: str) -> tuple[str, str | None, str | None]:
    """Split ``KIND[:PATH][:SPLIT]`` into ``(kind, path, split)``; the kind must be known.

    A trailing ``:train``, ``:test`` or ``:all`` is the split (so a path ending in one of these
    words needs an explicit split after it).
    """
    if not spec or not isinstance(spec, str):
        raise DataError(f"Empty data spec; expected one of {', '.join(data_kinds())} (e.g. 'mnist:test').")
    name, _, rest = spec.partition(":")
    kind = get_data_kind(name).name
    path: str | None = rest or None
    split: str | None = None
    if path is not None:
        head, sep, tail = path.rpartition(":")
        if tail in SPLITS:
            split = tail
            path = head if sep else None
            path = path or None
    return kind, path, split


def _format(kind: str, path: str | None, split: str | None) -> str:
    return ":".join(p for p in (kind, path, split) if p)


def default_split(kind: str, purpose: Purpose = "load") -> str | None:
    """The split a spec of ``kind`` that names none gets, for ``purpose``.

    ``"load"``: what :func:`load_dataset` loads; ``"train"``: what a training command trains on;
    ``"eval"``: what a model trained on the train split is validated / evaluated on. ``None`` for
    a kind without splits.
    """
    k = get_data_kind(kind)
    if purpose == "load":
        return k.default_split
    if purpose == "train":
        return k.train_split
    if purpose == "eval":
        return k.eval_split
    raise DataError(f"purpose must be 'load', 'train' or 'eval'; got {purpose!r}.")


def train_spec_for(spec: str) -> str:
    """The spec a training command should load for ``spec``: its split made explicit.

    ``cifar10:F.npz`` -> ``cifar10:F.npz:train``; a spec naming a split is returned unchanged; a
    kind (or file) without a train split is returned as given.
    """
    kind, path, split = parse_data_spec(spec)
    k = get_data_kind(kind)
    if split is not None or k.train_split is None or k.train_split not in k.splits_of(path):
        return spec
    return _format(kind, path, k.train_split)


def eval_spec_for(spec: str) -> str | None:
    """The evaluation spec of a model trained on ``spec`` (``None`` when there is no disjoint split).

    ``mnist`` / ``mnist:train`` -> ``mnist:test``; ``cifar10:F.npz`` -> ``cifar10:F.npz:test``;
    ``cifar10:F.npz:test``, ``imagefolder:DIR`` or an ``npz`` of plain ``x``/``y`` -> ``None``.
    """
    kind, path, split = parse_data_spec(spec)
    k = get_data_kind(kind)
    trained_on = split if split is not None else k.train_split
    if trained_on is None or trained_on != k.train_split or k.eval_split is None:
        return None
    available = k.splits_of(path)
    if k.eval_split not in available or trained_on not in available:
        return None
    return _format(kind, path, k.eval_split)


def load_dataset(spec: str) -> Any:
    """Load the dataset a spec string names (see :mod:`layerscope.data`)."""
    kind, path, split = parse_data_spec(spec)
    k = get_data_kind(kind)
    if k.needs_path and path is None:
        raise DataError(f"Data kind {kind!r} needs a path: '{kind}:PATH'.")
    if not k.has_splits():
        if split not in (None, "all"):
            raise DataError(f"{spec!r}: data kind {kind!r} has no {split!r} split (it is one set); drop ':{split}'.")
        return k.loader(path, None)
    return k.loader(path, split or k.default_split)
