"""The transferability grid of Yosinski, Clune, Bengio & Lipson (NIPS 2014).

*How transferable are features in deep neural networks?* trains two base networks, baseA on
task A and baseB on task B, then for every n = 1 … L−1 networks on B whose first n layers come
from a base:

==========  ============================================================================
``BnB``     layers 1..n copied from baseB and frozen, layers above re-initialised (selffer)
``AnB``     layers 1..n copied from baseA and frozen (transfer)
``BnB+``    as BnB, but the copied layers are fine-tuned at the full learning rate
``AnB+``    as AnB, fine-tuned
``random``  layers 1..n left at their random initialisation and frozen (random filters)
==========  ============================================================================

Selection (which epochs a network is reported at). The paper's metric is the mean of a network's
10 best validation accuracies; picking the best epochs on the very data that is reported is
optimistic. Here (``holdout > 0``, the default) a fraction ``holdout`` of each task's training
samples is set aside (seeded, stratified, the same for every cell of a seed and task, never
trained on); after every epoch the network is scored on it and on the validation (test) data,
the ``k`` epochs with the best *held-out* accuracy are chosen (ties: the earlier epoch), and the
metric is the mean *test* accuracy at those epochs. With ``patience`` a network stops once its
held-out accuracy has not improved for ``patience`` epochs (early stopping; bases are trained to
convergence this way). A network keeps the weights of its best held-out epoch (not the last
epoch's), so a base's copied layers are those of its selected epoch. ``holdout = 0`` keeps the old, optimistic rule (the ``k`` best epochs of the
reported data); grids stored before held-out selection existed load with ``holdout = 0``, so they
resume with the rule they were computed with. The rule is stated in the result's
``parameters["selection"]``.

The effects, computed per n and per seed (paired) and then summarised over seeds:

* fragile co-adaptation = baseB − BnB,
* specificity = BnB − AnB,
* fine-tuning boost = AnB+ − baseB.

Speed where it is free: for a frozen condition the frozen layers' outputs are computed once per
dataset and only the layers above are trained (:func:`fit_network` with ``cache=True``). No data
augmentation is applied, and the cache is skipped when a frozen block holds a module whose
training-mode output differs from its eval-mode output (dropout, batch norm), so the cached run
trains the same top as running the frozen layers every epoch, bit for bit on CPU (same init, same
shuffling; tested).

Batching: batches of ``batch_size`` in a seeded random order; a last remainder of fewer than
:data:`MIN_BATCH` samples is merged into the previous batch. (Besides avoiding a noisy tiny step,
this keeps the cached and uncached paths bitwise equal: CPU kernels take other code paths for
batches of 1–3 rows, which changes the last bits of the frozen features.)
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import math
import time
from dataclasses import dataclass, field
from typing import Any, Iterator, Mapping, Sequence

import numpy as np
import torch
from torch import nn

from ..exceptions import DataError, ParameterError
from .split import ClassSplit, resolve_split, task_subset

__all__ = [
    "CONDITIONS",
    "BASES",
    "FROZEN_CONDITIONS",
    "MIN_BATCH",
    "GridConfig",
    "Cell",
    "CellTask",
    "FitLog",
    "plan_cells",
    "numbered_blocks",
    "count_layers",
    "prepare_network",
    "fit_network",
    "k_best_mean",
    "select_epochs",
    "stop_epoch",
    "run_cell",
    "cell_init_seed",
]

log = logging.getLogger(__name__)

BASES = ("baseA", "baseB")
CONDITIONS = ("BnB", "AnB", "BnB+", "AnB+", "random")
FROZEN_CONDITIONS = ("BnB", "AnB", "random")
_ALL = BASES + CONDITIONS
MIN_BATCH = 8
INITS = ("kaiming", "default")


@dataclass(frozen=True)
class GridConfig:
    """Every knob of one transfer grid (stored in the grid folder; equal configs = same grid).

    Parameters
    ----------
    arch
        Architecture spec of a model with ``numbered_layers()``, e.g. ``"convnet8:width=16"``.
    data, val_data
        Data specs of the training and validation data (``val_data`` defaults to the test split).
    split
        ``"random"`` (a different random split per seed), a preset name, or a JSON file path.
    seeds
        One base pair and one network per cell per seed.
    epochs, lr, momentum, weight_decay, batch_size
        SGD training of every network (same for bases and transfer networks).
    k_best
        Number of epochs a network is reported at: the ``k_best`` epochs with the best held-out
        accuracy (``holdout > 0``; metric = mean test accuracy there) or, with ``holdout = 0``,
        the ``k_best`` best validation accuracies themselves (the paper: 10).
    holdout
        Fraction (0 <= f < 1) of each task's training samples held out for selection and early
        stopping (seeded, stratified per seed; never trained on). 0 = select on the reported data
        (optimistic; the rule of grids made before this option existed).
    patience
        Early stopping: stop a network once its held-out accuracy has not improved for
        ``patience`` epochs (``epochs`` is then the maximum). None = always train ``epochs``.
    limit, val_limit
        Seeded stratified subsets per task (training / validation samples); None = all.
    conditions
        Which transfer conditions to run (default all five).
    layers
        Which n to run (default 1 .. L−1).
    cache_features, cache_budget_mb
        Feature caching of frozen layers, used when the cached arrays fit the budget.
    threads
        torch threads inside a cell (1 makes every executor give the same numbers).
    init
        ``"kaiming"`` (He et al. 2015: normal weights with std sqrt(2 / fan_in), zero biases) or
        ``"default"`` (PyTorch's layer defaults). With the defaults the plain 8-layer ConvNet8
        does not leave chance level in a few SGD epochs on MNIST (measured), so Kaiming is the
        default.
    """

    arch: str
    data: str
    split: str = "random"
    seeds: tuple[int, ...] = (0,)
    epochs: int = 10
    val_data: str | None = None
    lr: float = 0.01
    momentum: float = 0.9
    weight_decay: float = 0.0
    batch_size: int = 128
    k_best: int = 10
    limit: int | None = None
    val_limit: int | None = None
    conditions: tuple[str, ...] = CONDITIONS
    layers: tuple[int, ...] | None = None
    cache_features: bool = True
    cache_budget_mb: float = 512.0
    threads: int = 1
    init: str = "kaiming"
    holdout: float = 0.1
    patience: int | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "seeds", tuple(int(s) for s in self.seeds))
        object.__setattr__(self, "conditions", tuple(self.conditions))
        if self.layers is not None:
            object.__setattr__(self, "layers", tuple(sorted({int(n) for n in self.layers})))
        if self.val_data is None:
            object.__setattr__(self, "val_data", default_val_data(self.data))
        if not self.seeds:
            raise ParameterError("seeds is empty; give at least one seed (e.g. seeds=(0, 1)).")
        if len(set(self.seeds)) != len(self.seeds):
            raise ParameterError(f"seeds must be distinct; got {list(self.seeds)}.")
        if self.epochs < 1:
            raise ParameterError(f"epochs must be >= 1; got {self.epochs}.")
        if self.k_best < 1:
            raise ParameterError(f"k_best must be >= 1; got {self.k_best}.")
        if not (math.isfinite(self.lr) and self.lr > 0):
            raise ParameterError(f"lr must be a finite number > 0; got {self.lr}.")
        if not (math.isfinite(self.momentum) and 0 <= self.momentum < 1):
            raise ParameterError(f"momentum must be in [0, 1); got {self.momentum}.")
        if not (math.isfinite(self.weight_decay) and self.weight_decay >= 0):
            raise ParameterError(f"weight_decay must be a finite number >= 0; got {self.weight_decay}.")
        for name in ("limit", "val_limit"):
            v = getattr(self, name)
            if v is not None and v < 1:
                raise ParameterError(f"{name} must be >= 1 (samples per task) or None for all; got {v}.")
        if self.batch_size < 1:
            raise ParameterError(f"batch_size must be >= 1; got {self.batch_size}.")
        if self.threads < 1:
            raise ParameterError(f"threads must be >= 1; got {self.threads}.")
        bad = [c for c in self.conditions if c not in CONDITIONS]
        if bad:
            raise ParameterError(f"Unknown conditions {bad}; expected some of {', '.join(CONDITIONS)}.")
        if self.init not in INITS:
            raise ParameterError(f"init must be one of {', '.join(INITS)}; got {self.init!r}.")
        if self.layers is not None and any(n < 1 for n in self.layers):
            raise ParameterError(f"layers must be >= 1 (n copied layers); got {list(self.layers)}.")
        if not (isinstance(self.holdout, (int, float)) and math.isfinite(self.holdout) and 0 <= self.holdout < 1):
            raise ParameterError(f"holdout must be a fraction in [0, 1) of the training samples; got {self.holdout!r}.")
        object.__setattr__(self, "holdout", float(self.holdout))
        if self.patience is not None:
            if isinstance(self.patience, bool) or int(self.patience) != self.patience or self.patience < 1:
                raise ParameterError(f"patience must be a whole number of epochs >= 1, or None; got {self.patience!r}.")
            if self.holdout == 0:
                raise ParameterError(
                    "patience (early stopping) needs held-out training data to watch; give holdout > 0 (e.g. 0.1), "
                    "never stop on the reported test data."
                )
            object.__setattr__(self, "patience", int(self.patience))

    @property
    def selection(self) -> str:
        """The selection rule in words (stored as ``parameters["selection"]`` of the result)."""
        k = self.k_best
        if self.holdout == 0:
            return (f"validation data (the reported data itself): mean of the {k} best per-epoch validation "
                    "accuracies (optimistic)")
        stop = f"; early stopping with patience {self.patience}" if self.patience is not None else ""
        return (f"held-out train split (fraction {self.holdout:g}): the {k} epoch(s) with the best held-out accuracy, "
                f"test accuracy reported there{stop}; a network keeps the weights of its best held-out epoch")

    def to_dict(self) -> dict[str, Any]:
        return {f.name: (list(v) if isinstance(v := getattr(self, f.name), tuple) else v) for f in dataclasses.fields(self)}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "GridConfig":
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - names)
        if unknown:
            raise ParameterError(f"Unknown grid settings {unknown}; known: {sorted(names)}.")
        kw = dict(d)
        # A grid stored before held-out selection existed chose its epochs on the reported data: it
        # keeps that rule (holdout = 0) so that its finished cells and the rest agree.
        kw.setdefault("holdout", 0.0)
        for key in ("seeds", "conditions", "layers"):
            if kw.get(key) is not None:
                kw[key] = tuple(kw[key])
        return cls(**kw)

    def split_for(self, seed: int, classes: Sequence[str]) -> ClassSplit:
        """The class split of one seed (random halves are drawn per seed)."""
        return resolve_split(self.split, classes, random_state=seed)


def default_val_data(data: str) -> str | None:
    """The evaluation split of a training spec (``layerscope.data.eval_spec_for``; None if it has none)."""
    from ..data import eval_spec_for

    return eval_spec_for(data)


@dataclass(frozen=True, order=True)
class Cell:
    """One network of the grid: a condition, n copied layers (0 for bases), a seed."""

    condition: str
    n: int
    seed: int

    def __post_init__(self) -> None:
        if self.condition not in _ALL:
            raise ParameterError(f"Unknown condition {self.condition!r}; expected one of {', '.join(_ALL)}.")

    @property
    def is_base(self) -> bool:
        return self.condition in BASES

    @property
    def id(self) -> str:
        """File-safe id: ``baseA_s0``, ``AnB+_n3_s1`` ..."""
        return f"{self.condition}_s{self.seed}" if self.is_base else f"{self.condition}_n{self.n}_s{self.seed}"

    @property
    def source(self) -> str | None:
        """The base whose layers are copied (``"baseA"``/``"baseB"``), None for bases and random."""
        if self.condition.startswith("AnB"):
            return "baseA"
        if self.condition.startswith("BnB"):
            return "baseB"
        return None

    @property
    def frozen(self) -> bool:
        return self.condition in FROZEN_CONDITIONS


def numbered_blocks(model: nn.Module) -> list[nn.Module]:
    """The model's numbered layers (``model.numbered_layers()``), in forward order."""
    fn = getattr(model, "numbered_layers", None)
    if not callable(fn):
        raise ParameterError(
            f"{type(model).__name__} has no numbered_layers(); transfer experiments copy the first n numbered "
            "layers, so use an architecture that has them (e.g. 'convnet8')."
        )
    return list(fn())


@functools.lru_cache(maxsize=16)
def count_layers(arch: str, input_shape: tuple[int, ...], n_classes: int = 2) -> int:
    """L, the number of numbered layers of ``arch`` built for ``input_shape``."""
    from ..models import build_model

    return len(numbered_blocks(build_model(arch, input_shape, n_classes)))


def plan_cells(config: GridConfig, n_layers: int) -> list[Cell]:
    """All cells of the grid, bases first (every other cell needs them)."""
    if n_layers < 2:
        raise ParameterError(f"The model has {n_layers} numbered layers; a transfer grid needs at least 2.")
    ns = list(config.layers) if config.layers is not None else list(range(1, n_layers))
    bad = [n for n in ns if n >= n_layers]
    if bad:
        raise ParameterError(f"layers {bad} are out of range: n must be 1..{n_layers - 1} (L = {n_layers}).")
    bases = [Cell(b, 0, s) for s in config.seeds for b in BASES]
    rest = [Cell(c, n, s) for s in config.seeds for n in ns for c in config.conditions]
    return bases + rest


def cell_init_seed(cell: Cell) -> int:
    """A seed per cell for the initialisation and the shuffling, derived from (seed, condition, n)."""
    ss = np.random.SeedSequence([int(cell.seed), _ALL.index(cell.condition), int(cell.n)])
    return int(ss.generate_state(1, dtype=np.uint32)[0] >> 1)


def k_best_mean(accuracies: Sequence[float], k: int) -> float:
    """Mean of the ``k`` best values (all of them when fewer than ``k``)."""
    a = np.sort(np.asarray(accuracies, dtype=np.float64))[::-1]
    if len(a) == 0:
        raise ParameterError("No validation accuracies to summarise.")
    return float(a[: max(1, min(k, len(a)))].mean())


def select_epochs(holdout_accuracy: Sequence[float], k: int) -> list[int]:
    """0-based indices of the ``k`` epochs with the highest held-out accuracy, in epoch order.

    Ties are broken towards the earlier epoch (a stable sort), so a plateau selects its start.
    Only held-out accuracies enter: the reported (test) accuracies are never looked at here.
    """
    a = np.asarray(holdout_accuracy, dtype=np.float64)
    if len(a) == 0:
        raise ParameterError("No held-out accuracies to select epochs from.")
    if k < 1:
        raise ParameterError(f"k must be >= 1; got {k}.")
    order = np.argsort(-a, kind="stable")
    return sorted(int(i) for i in order[: min(k, len(a))])


def stop_epoch(holdout_accuracy: Sequence[float], patience: int | None) -> bool:
    """Whether training stops after the last epoch of ``holdout_accuracy`` (early stopping).

    True when the best held-out accuracy so far (its first occurrence) lies ``patience`` or more
    epochs back: no improvement for ``patience`` epochs. ``patience=None`` never stops.
    """
    if patience is None or not holdout_accuracy:
        return False
    best = int(np.argmax(np.asarray(holdout_accuracy, dtype=np.float64)))
    return len(holdout_accuracy) - 1 - best >= patience


def prepare_network(
    arch: str,
    input_shape: Sequence[int],
    n_classes: int,
    n: int,
    frozen: bool,
    base: nn.Module | None,
    random_state: int,
    init: str = "kaiming",
) -> nn.Module:
    """A fresh network whose first ``n`` numbered layers come from ``base`` (bitwise).

    The network is initialised from ``random_state``; then the state of ``base``'s layers 1..n
    is copied into it (``base=None`` keeps them random, the random-filter baseline). When
    ``frozen``, the parameters of layers 1..n get ``requires_grad = False``. ``init`` is
    ``"kaiming"`` (He normal weights, zero biases, for every conv / linear layer) or ``"default"``.
    """
    from ..models import build_model

    if init not in INITS:
        raise ParameterError(f"init must be one of {', '.join(INITS)}; got {init!r}.")
    torch.manual_seed(random_state)
    model = build_model(arch, tuple(input_shape), n_classes)
    if init == "kaiming":
        with torch.no_grad():
            for mod in model.modules():
                if isinstance(mod, (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.Linear)):
                    nn.init.kaiming_normal_(mod.weight, nonlinearity="relu")
                    if mod.bias is not None:
                        nn.init.zeros_(mod.bias)
    blocks = numbered_blocks(model)
    if not 0 <= n < len(blocks):
        raise ParameterError(f"n must be 0..{len(blocks) - 1} for a model with {len(blocks)} numbered layers; got {n}.")
    if base is not None:
        src = numbered_blocks(base)
        if len(src) != len(blocks):
            raise ParameterError(f"The base has {len(src)} numbered layers, the new network {len(blocks)}.")
        with torch.no_grad():
            for i in range(n):
                blocks[i].load_state_dict(src[i].state_dict())
    if frozen:
        for block in blocks[:n]:
            for p in block.parameters():
                p.requires_grad_(False)
    return model


@dataclass
class FitLog:
    """What :func:`fit_network` did: per-epoch validation / held-out accuracy and training loss."""

    val_accuracy: list[float] = field(default_factory=list)
    train_loss: list[float] = field(default_factory=list)
    holdout_accuracy: list[float] = field(default_factory=list)
    stopped_early: bool = False
    #: 1-based epoch whose weights the network keeps (the best held-out one); None without held-out data
    best_epoch: int | None = None
    cached: bool = False
    seconds: float = 0.0


def _batch_slices(n: int, batch_size: int) -> list[slice]:
    """Batches of ``batch_size``; a remainder under MIN_BATCH joins the previous batch."""
    starts = list(range(0, n, batch_size))
    if len(starts) > 1 and n - starts[-1] < min(MIN_BATCH, batch_size):
        starts.pop()
    ends = starts[1:] + [n]
    return [slice(a, b) for a, b in zip(starts, ends)]


def _chain(blocks: Sequence[nn.Module], x: torch.Tensor) -> torch.Tensor:
    for b in blocks:
        x = b(x)
    return x


def _forward_frozen(blocks: Sequence[nn.Module], x: torch.Tensor, batch_size: int) -> torch.Tensor:
    with torch.no_grad():
        return torch.cat([_chain(blocks, x[s]) for s in _batch_slices(len(x), batch_size)])


_TRAIN_DEPENDENT = (nn.modules.dropout._DropoutNd, nn.modules.batchnorm._NormBase, nn.AlphaDropout)


def _cacheable(blocks: Sequence[nn.Module]) -> bool:
    return not any(isinstance(m, _TRAIN_DEPENDENT) for b in blocks for m in b.modules())


def _accuracy(blocks: Sequence[nn.Module], x: torch.Tensor, y: torch.Tensor) -> float:
    with torch.no_grad():
        correct = sum(int((_chain(blocks, x[s]).argmax(1) == y[s]).sum()) for s in _batch_slices(len(x), 512))
    return correct / len(x)


def fit_network(
    model: nn.Module,
    train_set: Any,
    val_set: Any,
    *,
    n_frozen: int = 0,
    epochs: int,
    lr: float = 0.01,
    momentum: float = 0.9,
    weight_decay: float = 0.0,
    batch_size: int = 128,
    random_state: int = 0,
    cache: bool = True,
    cache_budget_mb: float = 512.0,
    holdout_set: Any | None = None,
    patience: int | None = None,
) -> FitLog:
    """Train ``model`` (in place) with SGD on ``train_set``; validate after every epoch.

    Parameters
    ----------
    model
        A model with ``numbered_layers()`` whose forward chains them; its first ``n_frozen``
        layers must have ``requires_grad = False`` (see :func:`prepare_network`).
    train_set, val_set
        :class:`~layerscope.data.ArrayDataset` of task B (or A for a base).
    n_frozen
        Number of frozen leading layers.
    cache
        Compute the frozen layers' outputs once (for training and validation data) and train only
        the layers above, when the cached arrays fit ``cache_budget_mb`` and the frozen blocks
        hold no dropout / batch norm. Bitwise the same trained network as ``cache=False``.
    random_state
        Seeds the shuffling (and dropout, through the global torch seed).
    holdout_set
        Held-out training samples, scored after every epoch (``holdout_accuracy``); the only data
        early stopping looks at. With it, the network ends with the weights of its best held-out
        epoch (the first of equal ones; ``best_epoch``), as early stopping restores them, not the
        weights of the last epoch run.
    patience
        Stop once the held-out accuracy has not improved for ``patience`` epochs
        (:func:`stop_epoch`); needs ``holdout_set``. ``epochs`` is the maximum.

    Returns
    -------
    FitLog
        ``val_accuracy`` and ``holdout_accuracy`` (one per epoch run), ``train_loss``,
        ``stopped_early``, whether the cache was used, seconds.
    """
    started = time.perf_counter()
    blocks = numbered_blocks(model)
    frozen_blocks, top = blocks[:n_frozen], blocks[n_frozen:]
    still = [p for b in frozen_blocks for p in b.parameters() if p.requires_grad]
    if still:
        raise ParameterError(f"n_frozen={n_frozen}, but {len(still)} parameters of the first {n_frozen} layers still require grad.")
    params = [p for p in model.parameters() if p.requires_grad]
    if not params:
        raise ParameterError("Every parameter is frozen; nothing to train.")
    dev = params[0].device
    xtr, ytr = train_set.x.to(dev), train_set.y.to(dev)
    xva, yva = val_set.x.to(dev), val_set.y.to(dev)
    if len(xtr) == 0 or len(xva) == 0:
        raise DataError(f"Empty {'training' if len(xtr) == 0 else 'validation'} set.")
    if patience is not None and holdout_set is None:
        raise ParameterError("patience (early stopping) needs a holdout_set of training samples to watch.")
    xho = yho = None
    if holdout_set is not None:
        xho, yho = holdout_set.x.to(dev), holdout_set.y.to(dev)
        if len(xho) == 0:
            raise DataError("Empty held-out set; give a larger holdout fraction or more training samples.")
    use_cache = False
    if cache and n_frozen > 0 and _cacheable(frozen_blocks):
        with torch.no_grad():
            probe = _chain(frozen_blocks, xtr[:1])
        need = probe[0].numel() * probe.element_size() * (len(xtr) + len(xva)) / 2**20
        use_cache = need <= cache_budget_mb
        if not use_cache:
            log.info("feature cache of %.0f MB exceeds the budget of %.0f MB; running the frozen layers", need, cache_budget_mb)
    log_ = FitLog(cached=use_cache)
    if use_cache:
        for b in frozen_blocks:
            b.eval()
        xtr = _forward_frozen(frozen_blocks, xtr, batch_size)
        xva = _forward_frozen(frozen_blocks, xva, batch_size)
        if xho is not None:
            xho = _forward_frozen(frozen_blocks, xho, batch_size)
        run_blocks = top
    else:
        run_blocks = blocks
    torch.manual_seed(random_state)
    gen = torch.Generator().manual_seed(random_state)
    opt = torch.optim.SGD(params, lr=lr, momentum=momentum, weight_decay=weight_decay)
    loss_fn = nn.CrossEntropyLoss()
    n = len(xtr)
    best_state: dict[str, torch.Tensor] | None = None
    for _epoch in range(epochs):
        model.train()
        perm = torch.randperm(n, generator=gen).to(dev)
        total = 0.0
        with torch.enable_grad():  # also when a caller switched autograd off process-wide
            for s in _batch_slices(n, batch_size):
                idx = perm[s]
                opt.zero_grad(set_to_none=True)
                loss = loss_fn(_chain(run_blocks, xtr[idx]), ytr[idx])
                loss.backward()
                opt.step()
                total += float(loss.detach()) * len(idx)
        model.eval()
        log_.train_loss.append(total / n)
        log_.val_accuracy.append(_accuracy(run_blocks, xva, yva))
        if xho is not None and yho is not None:
            log_.holdout_accuracy.append(_accuracy(run_blocks, xho, yho))
            if best_state is None or log_.holdout_accuracy[-1] > max(log_.holdout_accuracy[:-1]):
                best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
                log_.best_epoch = len(log_.holdout_accuracy)
            if stop_epoch(log_.holdout_accuracy, patience):
                log_.stopped_early = len(log_.holdout_accuracy) < epochs
                break
    if best_state is not None:
        model.load_state_dict(best_state)  # early stopping: back to the best held-out epoch
    model.eval()
    log_.seconds = time.perf_counter() - started
    return log_


@functools.lru_cache(maxsize=4)
def _load(spec: str) -> Any:
    from ..data import ArrayDataset, load_dataset

    ds = load_dataset(spec)
    if not isinstance(ds, ArrayDataset):
        raise DataError(f"{spec} is not an in-memory image dataset; transfer grids need e.g. mnist or cifar10:PATH:train.")
    return ds


@functools.lru_cache(maxsize=8)
def task_data(config: GridConfig, seed: int, which: str) -> tuple[Any, Any, ClassSplit]:
    """Training and validation data of task ``which`` for ``seed``, and the split.

    The training data is the whole task pool (``limit`` samples of it); with ``holdout > 0`` the
    networks train on :func:`task_holdout`'s training part only. Cached per process (a worker
    reuses them for every cell of the same seed and task); the returned datasets are only read,
    never changed.
    """
    if config.val_data is None:
        raise DataError(f"No validation data for {config.data!r}; give val_data (e.g. the test split).")
    from ..data import train_spec_for

    train_all, val_all = _load(train_spec_for(config.data)), _load(config.val_data)
    if list(train_all.classes) != list(val_all.classes):
        raise DataError(f"Training data classes {train_all.classes} and validation classes {val_all.classes} differ.")
    split = config.split_for(seed, train_all.classes)
    tr = task_subset(train_all, split, which, config.limit, random_state=seed)
    va = task_subset(val_all, split, which, config.val_limit, random_state=seed)
    return tr, va, split


#: mixed into the seed of the held-out draw, so it is not the draw of ``limit`` (same seed)
_HOLDOUT_SALT = 0x486F6C64


def holdout_split(labels: np.ndarray, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """``(train rows, held-out rows)`` of a task's training pool: a seeded stratified fraction held out.

    ``round(fraction * n)`` rows (at least 1) are held out, class proportions kept
    (:func:`layerscope.data.stratified_indices`); the two parts are disjoint and cover the pool.
    """
    from ..data import stratified_indices

    n = len(labels)
    n_hold = max(1, int(round(fraction * n)))
    if n_hold >= n:
        raise DataError(
            f"holdout {fraction:g} of {n} training samples leaves none to train on; give more samples (limit) or a smaller holdout."
        )
    ss = np.random.SeedSequence([int(seed), _HOLDOUT_SALT])
    held = stratified_indices(np.asarray(labels), n_hold, int(ss.generate_state(1, dtype=np.uint32)[0] >> 1))
    keep = np.setdiff1d(np.arange(n), held)
    return keep, held


@functools.lru_cache(maxsize=8)
def task_holdout(config: GridConfig, seed: int, which: str) -> tuple[Any, Any | None, Any, ClassSplit]:
    """``(train part, held-out part or None, validation data, split)`` of task ``which`` for ``seed``.

    The held-out part depends only on (task pool, ``holdout``, ``seed``): baseB and every network
    trained on B of one seed share it, and none of them trains on it.
    """
    tr, va, split = task_data(config, seed, which)
    if config.holdout == 0:
        return tr, None, va, split
    keep, held = holdout_split(tr.y.numpy(), config.holdout, seed)
    return tr.subset(keep), tr.subset(held), va, split


@dataclass(frozen=True)
class CellTask:
    """What a worker needs to train one cell: the grid config, the cell, the base's state."""

    config: dict[str, Any]
    cell: Cell
    base_state: dict[str, torch.Tensor] | None = None


def _state_to_cpu(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().cpu().clone().contiguous() for k, v in model.state_dict().items()}


def run_cell(task: CellTask) -> dict[str, Any]:
    """Train one cell; return its record (and the trained weights, for a base).

    Runs with ``config.threads`` torch threads (restored afterwards), so every executor gives
    the same numbers. The record is JSON-safe except ``"state"`` (bases only), which the store
    writes as safetensors.
    """
    from ..models import build_model

    config = GridConfig.from_dict(task.config)
    cell = task.cell
    old_threads = torch.get_num_threads()
    torch.set_num_threads(config.threads)
    try:
        which = "A" if cell.condition == "baseA" else "B"
        tr, ho, va, split = task_holdout(config, cell.seed, which)
        seed = cell_init_seed(cell)
        base = None
        if cell.source is not None:
            if task.base_state is None:
                raise ParameterError(f"Cell {cell.id} needs the weights of {cell.source}_s{cell.seed}.")
            n_src = len(split.a if cell.source == "baseA" else split.b)
            base = build_model(config.arch, tr.input_shape, n_src)
            base.load_state_dict(task.base_state)
        model = prepare_network(config.arch, tr.input_shape, len(tr.classes), cell.n, cell.frozen, base, seed, config.init)
        fit = fit_network(
            model, tr, va, n_frozen=cell.n if cell.frozen else 0, epochs=config.epochs, lr=config.lr,
            momentum=config.momentum, weight_decay=config.weight_decay, batch_size=config.batch_size,
            random_state=seed, cache=config.cache_features, cache_budget_mb=config.cache_budget_mb,
            holdout_set=ho, patience=config.patience,
        )
        if ho is None:  # the old rule: the k best epochs of the reported data
            chosen = [int(i) for i in np.argsort(-np.asarray(fit.val_accuracy), kind="stable")[: config.k_best]]
            metric = k_best_mean(fit.val_accuracy, config.k_best)
        else:  # chosen on held-out training data only; the test accuracy there is reported
            chosen = select_epochs(fit.holdout_accuracy, config.k_best)
            metric = float(np.mean([fit.val_accuracy[i] for i in chosen]))
        record: dict[str, Any] = {
            "cell": cell.id,
            "condition": cell.condition,
            "n": cell.n,
            "seed": cell.seed,
            "metric": metric,
            "k": len(chosen),
            "selected_epochs": sorted(i + 1 for i in chosen),
            "selection": config.selection,
            "epochs_run": len(fit.val_accuracy),
            "stopped_early": fit.stopped_early,
            "weights_epoch": fit.best_epoch if fit.best_epoch is not None else len(fit.val_accuracy),
            "val_accuracy": fit.val_accuracy,
            "holdout_accuracy": fit.holdout_accuracy,
            "train_loss": fit.train_loss,
            "cached": fit.cached,
            "seconds": round(fit.seconds, 3),
            "init_seed": seed,
            "n_train": len(tr),
            "n_holdout": len(ho) if ho is not None else 0,
            "n_val": len(va),
            "split": split.to_dict(),
        }
        if cell.is_base:
            record["state"] = _state_to_cpu(model)
        return record
    finally:
        torch.set_num_threads(old_threads)


def iter_tasks(config: GridConfig, cells: Sequence[Cell], base_states: Mapping[str, dict[str, torch.Tensor]]) -> Iterator[CellTask]:
    """Tasks for ``cells``; non-base cells get their base's state from ``base_states`` (by base cell id)."""
    cfg = config.to_dict()
    for c in cells:
        state = base_states[f"{c.source}_s{c.seed}"] if c.source is not None else None
        yield CellTask(cfg, c, state)
