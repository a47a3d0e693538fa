"""Train a reference model with checkpoints: seeded, deterministic on CPU, atomic writes.

A *run folder* holds ``run.json`` (architecture, data, seed, hyper-parameters, accuracy per
checkpoint) and ``checkpoints/epoch_XXXX.safetensors``. Every file is written atomically, so an
interrupted run keeps every checkpoint already written intact, and ``run.json`` always lists
exactly the checkpoints that exist.
"""

from __future__ import annotations

import math

import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import torch
from torch import nn

from ._io import atomic_path, read_json, write_json
from ._progress import ProgressArg, resolve_progress
from .capture import model_device, model_state_guard
from .exceptions import DataError, ParameterError

__all__ = [
    "train", "default_checkpoints", "evaluate", "TrainRun", "list_checkpoints", "save_safetensors", "RUN_FILE",
    "Recipe", "RECIPES", "dropout_modules",
]

RUN_FILE = "run.json"
_SCHEDULE = (0, 1, 2, 5, 10, 20, 30, 40, 50, 64, 80, 100)


@dataclass(frozen=True)
class Recipe:
    """A named set of training settings taken from a paper (see :data:`RECIPES`).

    Attributes
    ----------
    name
        The name ``train(..., recipe=name)`` and ``layerscope train --recipe name`` take.
    optimizer, lr, momentum, weight_decay, batch_size
        The optimiser settings the recipe fixes.
    dropout
        The dropout probability the model's dropout modules must have (None: no requirement).
        A recipe never adds dropout to a model: :func:`train` refuses a model without it.
    source
        Where each value comes from, in words (stored in ``run.json``).
    """

    name: str
    optimizer: str
    lr: float
    momentum: float
    weight_decay: float
    batch_size: int
    dropout: float | None
    source: str

    def settings(self) -> dict[str, Any]:
        return {"optimizer": self.optimizer, "lr": self.lr, "momentum": self.momentum,
                "weight_decay": self.weight_decay, "batch_size": self.batch_size}


#: Training recipes by name.
#:
#: ``"rauber"`` — Rauber, Fadel, Falcão & Telea, *Visualizing the hidden activity of artificial
#: neural networks*, IEEE TVCG 23(1), 2017: the MLP (4 hidden ReLU layers of 1,000 units) and the
#: CNN (2 x conv32, pool, 2 x conv64, pool, dense 4096, dense 512) were trained with stochastic
#: gradient descent with momentum 0.9 and dropout. From the paper: SGD, momentum 0.9, dropout on
#: the hidden layers. Ours, where the paper's text as we have it states no value: learning rate
#: 0.01, mini-batches of 128, dropout probability 0.5 (Srivastava et al. 2014's value for hidden
#: units), no weight decay, no learning-rate schedule, no data augmentation. The number of epochs
#: is not part of the recipe. Dropout goes after every hidden layer of
#: :class:`~layerscope.models.MLP` (``drop1`` .. ``drop4``) and after the two dense hidden layers
#: of :class:`~layerscope.models.RauberCNN` (``drop1``, ``drop2``; none on the conv layers).
RECIPES: dict[str, Recipe] = {
    "rauber": Recipe(
        name="rauber", optimizer="sgd", lr=0.01, momentum=0.9, weight_decay=0.0, batch_size=128, dropout=0.5,
        source=(
            "Rauber et al. 2017 (IEEE TVCG 23(1)): SGD with momentum 0.9 and dropout on the hidden layers; "
            "learning rate 0.01, batch size 128 and dropout p = 0.5 are layerscope's choices (not stated in the "
            "paper's text as we have it)"
        ),
    ),
}

_PLAIN = {"optimizer": "sgd", "lr": 0.01, "momentum": 0.9, "weight_decay": 0.0, "batch_size": 128}


def dropout_modules(model: nn.Module) -> dict[str, float]:
    """``{module name: p}`` of every dropout module of ``model`` (``nn.Dropout``, ``Dropout2d``, ...)."""
    return {name: float(m.p) for name, m in model.named_modules() if isinstance(m, (nn.modules.dropout._DropoutNd, nn.AlphaDropout))}


def _resolve_recipe(recipe: str | None, model: nn.Module, given: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """The optimiser settings to train with, and the ``run.json`` record of the recipe (None without one).

    ``given`` holds the settings the caller passed (None = not given). With a recipe, a given
    value that differs from the recipe's is refused; so is a model whose dropout does not match.
    """
    if recipe is None:
        return {k: (_PLAIN[k] if v is None else v) for k, v in given.items()}, None
    if recipe not in RECIPES:
        raise ParameterError(f"Unknown recipe {recipe!r}; known recipes: {', '.join(RECIPES)}.")
    r = RECIPES[recipe]
    fixed = r.settings()
    clash = {k: v for k, v in given.items() if v is not None and v != fixed[k]}
    if clash:
        text = ", ".join(f"{k}={v!r} (recipe: {fixed[k]!r})" for k, v in clash.items())
        raise ParameterError(
            f"Recipe {recipe!r} fixes these settings, which were given otherwise: {text}; leave them out to use the "
            "recipe, or train without the recipe."
        )
    record: dict[str, Any] = {"name": recipe, **fixed, "source": r.source}
    if r.dropout is not None:
        drops = dropout_modules(model)
        if not drops:
            raise ParameterError(
                f"Recipe {recipe!r} trains with dropout p = {r.dropout} on the hidden layers, but the model has no "
                f"dropout module; build it with dropout (e.g. 'mlp:dropout={r.dropout}', MLP(..., dropout={r.dropout})) "
                "- the recipe never adds dropout by itself."
            )
        off = {name: p for name, p in drops.items() if p != r.dropout}
        if off:
            raise ParameterError(
                f"Recipe {recipe!r} uses dropout p = {r.dropout}; the model's dropout modules {off} have another p. "
                f"Build the model with dropout={r.dropout}, or train without the recipe."
            )
        record["dropout"] = {"p": r.dropout, "modules": sorted(drops)}
    return fixed, record


def default_checkpoints(epochs: int) -> list[int]:
    """Epochs 0 (untrained), 1, 2, 5, 10, 20, 30, ... up to ``epochs``, plus ``epochs`` itself."""
    pts = {e for e in _SCHEDULE if e <= epochs}
    pts.update(range(100, epochs + 1, 50))
    pts.add(epochs)
    return sorted(pts)


def evaluate(model: nn.Module, dataset: Any, batch_size: int = 1000, device: torch.device | str | None = None) -> float:
    """Top-1 accuracy of ``model`` on ``dataset`` (eval mode; the model's flags are restored)."""
    from .seam import call_model, iter_batches

    correct = 0
    n = 0
    with model_state_guard(model), torch.no_grad():
        model.eval()
        for batch in iter_batches(dataset, batch_size, model=model, device=device):
            if batch.labels is None:
                raise DataError("Cannot evaluate accuracy on data without labels.")
            correct += int((call_model(model, batch)[: batch.n].argmax(1).cpu() == batch.labels[: batch.n]).sum())
            n += batch.n
    if n == 0:
        raise DataError("Cannot evaluate on an empty dataset.")
    return correct / n


@dataclass
class TrainRun:
    """What :func:`train` did; mirrors ``run.json``."""

    directory: Path
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def checkpoints(self) -> list[dict[str, Any]]:
        return list(self.meta.get("checkpoints", []))

    @classmethod
    def load(cls, directory: str | os.PathLike[str]) -> "TrainRun":
        d = Path(directory)
        if not (d / RUN_FILE).exists():
            raise DataError(f"{d} is not a run folder: it has no {RUN_FILE} (written by `layerscope train`).")
        return cls(d, read_json(d / RUN_FILE))


def list_checkpoints(run_dir: str | os.PathLike[str]) -> list[tuple[int, Path]]:
    """``[(epoch, path), ...]`` of a run folder, in epoch order."""
    run = TrainRun.load(run_dir)
    return [(int(c["epoch"]), run.directory / c["file"]) for c in run.checkpoints]


def save_safetensors(state: dict[str, torch.Tensor], path: str | os.PathLike[str]) -> None:
    """Write ``state`` as a ``.safetensors`` file, atomically, with the permissions ``open()`` gives.

    ``safetensors.torch.save_file`` creates its file ``0600`` whatever the umask; the temporary
    file of :func:`~layerscope._io.atomic_path` already has ``0666 & ~umask`` (``0644`` under the
    usual umask 022), so that mode is put back after writing.
    """
    from safetensors.torch import save_file

    with atomic_path(path) as tmp:
        mode = tmp.stat().st_mode & 0o777
        save_file({k: v.detach().cpu().contiguous() for k, v in state.items()}, str(tmp))
        os.chmod(tmp, mode)


def _save_checkpoint(model: nn.Module, path: Path) -> None:
    save_safetensors(model.state_dict(), path)


def train(
    model: nn.Module,
    train_set: Any,
    *,
    out_dir: str | os.PathLike[str],
    epochs: int,
    val_set: Any | None = None,
    checkpoints: Sequence[int] | None = None,
    batch_size: int | None = None,
    lr: float | None = None,
    momentum: float | None = None,
    weight_decay: float | None = None,
    optimizer: str | None = None,
    recipe: str | None = None,
    seed: int = 0,
    meta: dict[str, Any] | None = None,
    progress: ProgressArg = None,
    device: torch.device | str | None = None,
) -> TrainRun:
    """Train ``model`` on ``train_set`` with cross-entropy, saving checkpoints into ``out_dir``.

    Parameters
    ----------
    model
        The model to train (trained in place: this is the one function that changes a model).
    train_set, val_set
        Datasets of ``(x, y)``; accuracy on ``val_set`` is recorded at every checkpoint.
    epochs
        Passes over ``train_set``.
    checkpoints
        Epochs after which to save (0 = before training). Default :func:`default_checkpoints`.
    batch_size, lr, momentum, weight_decay, optimizer
        Optimiser settings; when not given: the recipe's, else batch 128, ``"sgd"``, lr 0.01,
        momentum 0.9, no weight decay. ``optimizer`` is ``"sgd"`` (with ``momentum``) or
        ``"adam"``.
    recipe
        A named recipe of :data:`RECIPES`, e.g. ``"rauber"`` (Rauber et al. 2017: SGD, momentum
        0.9, lr 0.01, batch 128, dropout p = 0.5 on the hidden layers; see :data:`RECIPES` for
        which values are the paper's). It fixes the optimiser settings (a different value given
        with it is refused) and requires the model's dropout (a model without dropout modules, or
        with another p, is refused: build it with ``dropout=0.5``). Recorded in ``run.json``
        (``"training_recipe"``; the key ``"recipe"`` names the kind of run, e.g. ``"speech"``).
    seed
        Seeds the shuffling and dropout; the same seed gives the same weights on CPU.
    meta
        Extra fields for ``run.json`` (the CLI stores the data specs here). ``arch`` (from
        ``model.arch_spec``, set by :func:`layerscope.models.build_model`), ``input_shape``,
        ``classes`` and ``normalization`` (from ``train_set``) are filled in when not given, so
        :func:`layerscope.loading.load_run_model` can rebuild the model.
    """
    from .seam import iter_batches

    opts, recipe_record = _resolve_recipe(
        recipe, model, {"optimizer": optimizer, "lr": lr, "momentum": momentum, "weight_decay": weight_decay,
                        "batch_size": batch_size},
    )
    optimizer, lr, momentum = str(opts["optimizer"]), float(opts["lr"]), float(opts["momentum"])
    weight_decay, batch_size = float(opts["weight_decay"]), opts["batch_size"]
    if epochs < 0:
        raise ParameterError(f"epochs must be >= 0; got {epochs}.")
    if len(train_set) == 0:
        raise DataError("The training set is empty.")
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ParameterError(f"batch_size must be an integer >= 1; got {batch_size!r}.")
    if not (math.isfinite(lr) and lr > 0):
        raise ParameterError(f"lr must be a finite number > 0; got {lr}.")
    cps = sorted(set(default_checkpoints(epochs) if checkpoints is None else checkpoints))
    bad = [c for c in cps if c < 0 or c > epochs]
    if bad:
        raise ParameterError(f"checkpoint epochs {bad} are outside 0..{epochs}.")
    track = resolve_progress(progress)
    out = Path(out_dir)
    (out / "checkpoints").mkdir(parents=True, exist_ok=True)
    dev = model_device(model, device)
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    if optimizer == "sgd":
        opt: torch.optim.Optimizer = torch.optim.SGD(model.parameters(), lr=lr, momentum=momentum, weight_decay=weight_decay)
    elif optimizer == "adam":
        opt = torch.optim.Adam(model.parameters(), lr=lr, weight_decay=weight_decay)
    else:
        raise ParameterError(f"optimizer must be 'sgd' or 'adam'; got {optimizer!r}.")
    loss_fn = nn.CrossEntropyLoss()
    defaults: dict[str, Any] = {}
    if getattr(model, "arch_spec", None):
        defaults["arch"] = model.arch_spec
    shape = getattr(train_set, "input_shape", None) or getattr(model, "input_shape", None)
    if shape is not None:
        defaults["input_shape"] = list(shape)
    if getattr(train_set, "classes", None) is not None:
        defaults["classes"] = list(train_set.classes)
    if getattr(train_set, "normalization", None) is not None:
        defaults["normalization"] = train_set.normalization.to_dict()
    info: dict[str, Any] = {
        **defaults,
        **(meta or {}),
        "seed": seed,
        "epochs": epochs,
        "batch_size": batch_size,
        "lr": lr,
        "momentum": momentum,
        "weight_decay": weight_decay,
        "optimizer": optimizer,
        "training_recipe": recipe_record,  # "recipe" is the kind of run (e.g. "speech") given in meta
        "n_train": len(train_set),
        "n_val": len(val_set) if val_set is not None else 0,
        "checkpoints": [],
        "complete": False,
    }
    started = time.time()

    def checkpoint(epoch: int, train_loss: float | None, train_acc: float | None) -> None:
        rel = f"checkpoints/epoch_{epoch:04d}.safetensors"
        _save_checkpoint(model, out / rel)
        entry = {
            "epoch": epoch,
            "file": rel,
            "train_loss": train_loss,
            "train_accuracy": train_acc,
            "val_accuracy": evaluate(model, val_set, device=dev) if val_set is not None else None,
            "seconds": round(time.time() - started, 2),
        }
        info["checkpoints"].append(entry)
        write_json(out / RUN_FILE, info)

    n = len(train_set)
    if 0 in cps:
        checkpoint(0, None, None)
    n_batches = -(-n // batch_size)
    for epoch in range(1, epochs + 1):
        model.train()
        perm = torch.randperm(n, generator=gen).numpy()
        total, correct, seen = 0.0, 0, 0
        # one tick per batch, the epoch in the description (a bar per epoch)
        for batch in track(iter_batches(train_set, batch_size, indices=perm, model=model, device=dev),
                           total=n_batches, desc=f"train epoch {epoch}/{epochs}"):
            x, y = batch.args[0], batch.labels
            if y is None:
                raise DataError("Training needs labelled data: the batches carry no labels.")
            y = y.to(dev)
            opt.zero_grad(set_to_none=True)
            logits = model(x)
            loss = loss_fn(logits, y)
            loss.backward()
            opt.step()
            total += float(loss.detach()) * len(y)
            correct += int((logits.argmax(1) == y).sum())
            seen += len(y)
        model.eval()
        if epoch in cps:
            checkpoint(epoch, total / seen, correct / seen)
    model.eval()
    info["complete"] = True
    write_json(out / RUN_FILE, info)
    return TrainRun(out, info)
