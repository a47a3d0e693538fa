"""Generality vs specificity of a transformer's layers: a transfer grid on text (Yosinski et al. 2014).

Yosinski, Clune, Bengio & Lipson, *How transferable are features in deep neural networks?*
(NIPS 2014), asked of a pretrained text encoder. The classes (lexnames) are split into two
disjoint tasks:

* **task B** groups lexnames into a few classes; the default is *living vs non-living*:
  ``living = noun.animal, noun.person, noun.plant`` and ``non-living = noun.artifact, noun.object,
  noun.substance`` (only the lexnames present in the data; a side left empty is refused);
* **task A** classifies the remaining lexnames, one class each (by default every present lexname
  not used by task B).

Two bases: the model as given (``"pretrained"``) and the model fine-tuned on task A (encoder,
embeddings included, plus a linear head; ``"finetuned"``). For every n = 0 … L (L encoder layers)
and every base, a network is trained on task B whose embeddings and first n encoder layers are
copied from the base and **frozen** (eval mode: no dropout, no gradient), while layers n … L−1
(copied from the base too) and a new linear head are trained. The conditions are named after the
paper: ``PnB`` (pretrained base) and ``AnB`` (A-finetuned base); n = L trains the head alone.
The A-finetuning effect ``AnB − PnB`` is paired by seed.

Decisions, stated once (and in the result's ``parameters``):

* **Pooling**: the head reads the masked mean of the last hidden state over the tokens whose
  attention mask is 1 (``[CLS]`` and ``[SEP]`` included), as sentence-transformers pools.
* **Model selection**: a stratified ``val_fraction`` of the *training* data (split seeded with
  ``split_seed``, the same for every seed and cell) is held out; after each epoch the network is
  evaluated on it and the epoch with the best validation accuracy (ties: the earlier) is kept; the
  **test** accuracy of that epoch is reported. The test data is never used for any choice.
* **Seeds** change the head's initialisation, the dropout draws, the batch order and (for the
  A-finetuned base) the base itself; the data and the task split stay fixed.
* **Cached frozen features**: the frozen prefix (embeddings + first n layers) is deterministic, so
  its token states are computed once per (base, n) for the training, validation and test texts and
  reused across epochs and seeds; each batch is re-padded to its longest text, exactly as the
  tokenizer pads it. ``cache=False`` recomputes the prefix for every batch (the baseline whose time
  the cache saves); both paths give the same numbers up to float rounding (tested).
* Training: AdamW (``lr`` for encoder layers, ``head_lr`` for the head, weight decay 0.01),
  cross-entropy, ``epochs`` passes in a seeded random order. Hand-written loop (a few lines) over
  PyTorch modules; the encoder layers are the model's own modules, called as its encoder calls them,
  with an additive padding mask (:func:`_mask`).

Only BERT-like Hugging Face encoders (``embeddings`` + ``encoder.layer``) are supported; the user's
model is deep-copied and never changed. The global torch RNG state is restored afterwards.
"""

from __future__ import annotations

import copy
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np
import torch
from torch import nn

from .._io import to_jsonable
from .._results_util import plain_fields
from ..exceptions import DataError, ModelSpecError, ParameterError
from ..results import AnalysisResult, model_description, read_result, write_figures, write_result
from ._common import texts_and_labels, tokenizer_of, track

__all__ = ["TextTransferResult", "text_transfer", "resolve_text_tasks", "parse_task_b", "DEFAULT_TASK_B", "BASES", "CONDITIONS"]

ANALYSIS = "text_transfer"
#: the default task B: living vs non-living lexnames (those present in the data are used)
DEFAULT_TASK_B: dict[str, tuple[str, ...]] = {
    "living": ("noun.animal", "noun.person", "noun.plant"),
    "non-living": ("noun.artifact", "noun.object", "noun.substance"),
}
BASES = ("pretrained", "finetuned")
CONDITIONS = {"pretrained": "PnB", "finetuned": "AnB"}
POOLING_RULE = "masked mean of the last hidden state over tokens with attention_mask 1 ([CLS]/[SEP] included)"


# ---------------------------------------------------------------------------------------------
# tasks
# ---------------------------------------------------------------------------------------------
def _match(name: str, classes: Sequence[str]) -> str | None:
    n = name.strip()
    for c in classes:
        if c == n or c == f"noun.{n}":
            return c
    return None


def resolve_text_tasks(
    classes: Sequence[str],
    task_b: Mapping[str, Sequence[str]] | None = None,
    task_a: Sequence[str] | None = None,
    *,
    need_a: bool = True,
) -> tuple[list[str], dict[str, list[str]]]:
    """Task A's classes and task B's groups, checked against the classes present.

    Parameters
    ----------
    classes
        The class (lexname) names of the data.
    task_b
        ``{group name: [class names]}`` (``"animal"`` or ``"noun.animal"``); default
        :data:`DEFAULT_TASK_B` restricted to the classes present.
    task_a
        Task A's classes (one class each); default every present class not in task B.
    need_a
        Refuse a task A of fewer than two classes (it is needed for the A-finetuned base).

    Raises
    ------
    DataError
        A named class is not in the data, a class is used twice, task B has fewer than two
        non-empty groups, or task A has fewer than two classes.
    """
    present = [str(c) for c in classes]
    groups: dict[str, list[str]] = {}
    if task_b is None:
        for g, names in DEFAULT_TASK_B.items():
            groups[g] = [c for c in names if c in present]
        empty = [g for g, v in groups.items() if not v]
        if empty:
            raise DataError(
                f"The default task B (living vs non-living lexnames) has no class for {', '.join(empty)} in this data "
                f"(classes: {', '.join(present[:12])}); pass task_b={{'group': ['class', ...], ...}} (CLI --task-b)."
            )
    else:
        if len(task_b) < 2:
            raise DataError(f"task B needs at least two groups of classes; got {list(task_b)}.")
        for g, given in task_b.items():
            if not str(g).strip():
                raise DataError("task B group names must be non-empty.")
            got = []
            for nm in given:
                c = _match(str(nm), present)
                if c is None:
                    raise DataError(f"task B group {g!r} names {nm!r}, which is not a class of the data; "
                                    f"classes: {', '.join(present)}.")
                got.append(c)
            if not got:
                raise DataError(f"task B group {g!r} is empty; give it at least one class.")
            groups[str(g)] = got
    used = [c for v in groups.values() for c in v]
    dup = sorted({c for c in used if used.count(c) > 1})
    if dup:
        raise DataError(f"Class {dup[0]!r} is in two task B groups; each class belongs to one group.")
    if task_a is None:
        a = [c for c in present if c not in used]
    else:
        a = []
        for nm in task_a:
            c = _match(str(nm), present)
            if c is None:
                raise DataError(f"task A names {nm!r}, which is not a class of the data; classes: {', '.join(present)}.")
            if c in a:
                raise DataError(f"Class {c!r} is given twice in task A.")
            a.append(c)
    both = [c for c in a if c in used]
    if both:
        raise DataError(f"Class {both[0]!r} is in task A and in task B; the tasks must use disjoint classes.")
    if need_a and len(a) < 2:
        raise DataError(
            f"task A needs at least two classes (it trains the A-finetuned base); got {a or 'none'} "
            f"after task B took {', '.join(used)}. Pass task_a= or use bases=('pretrained',)."
        )
    return a, groups


def parse_task_b(spec: str) -> dict[str, list[str]]:
    """``"living=animal,person;non-living=artifact,object"`` → ``{"living": [...], "non-living": [...]}``.

    Raises
    ------
    ParameterError
        A part without ``=``, an empty or repeated group name, or a group without classes.
    """
    out: dict[str, list[str]] = {}
    for part in (p.strip() for p in spec.split(";")):
        if not part:
            continue
        name, eq, rest = part.partition("=")
        name = name.strip()
        names = [c.strip() for c in rest.split(",") if c.strip()]
        if not eq or not name or not names:
            raise ParameterError(f"Cannot read {part!r} in task B {spec!r}; expected GROUP=CLASS,CLASS;GROUP=CLASS,... "
                                 "(e.g. living=animal,plant;non-living=artifact,object).")
        if name in out:
            raise ParameterError(f"Task B group {name!r} is given twice in {spec!r}.")
        out[name] = names
    if len(out) < 2:
        raise ParameterError(f"Task B needs at least two groups; got {spec!r} (e.g. living=animal,plant;non-living=artifact).")
    return out


@dataclass
class _Task:
    texts: list[str]
    labels: np.ndarray
    names: list[str]


def _task(texts: Sequence[str], labels: np.ndarray, classes: Sequence[str], mapping: Mapping[str, int],
          names: list[str], per_class: int | None, rng_seed: int) -> _Task:
    """The rows whose class is in ``mapping`` (at most ``per_class`` per source class, seeded), relabelled."""
    rng = np.random.default_rng(rng_seed)
    keep: list[int] = []
    for ci, c in enumerate(classes):
        if c not in mapping:
            continue
        rows = np.flatnonzero(labels == ci)
        if per_class is not None and len(rows) > per_class:
            rows = np.sort(rng.permutation(rows)[:per_class])
        keep.extend(rows.tolist())
    keep.sort()
    return _Task([texts[i] for i in keep], np.asarray([mapping[classes[labels[i]]] for i in keep], dtype=np.int64), names)


def _val_split(labels: np.ndarray, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Stratified (train rows, validation rows): ``fraction`` of each class held out (at least one)."""
    rng = np.random.default_rng(seed)
    val = np.zeros(len(labels), dtype=bool)
    for c in np.unique(labels):
        rows = np.flatnonzero(labels == c)
        k = max(1, int(round(len(rows) * fraction)))
        if k >= len(rows):
            raise DataError(f"Class {int(c)} has {len(rows)} training texts; too few to hold out a validation part.")
        val[rng.permutation(rows)[:k]] = True
    return np.flatnonzero(~val), np.flatnonzero(val)


# ---------------------------------------------------------------------------------------------
# the encoder, piece by piece
# ---------------------------------------------------------------------------------------------
def encoder_parts(model: nn.Module) -> tuple[nn.Module, nn.Module, nn.ModuleList]:
    """``(base, embeddings, encoder layers)`` of a BERT-like Hugging Face encoder.

    Raises
    ------
    ModelSpecError
        The model has no ``embeddings`` + ``encoder.layer`` (or its ``base_model`` has none).
    """
    for base in (model, getattr(model, "base_model", None)):
        if base is None:
            continue
        emb = getattr(base, "embeddings", None)
        layers = getattr(getattr(base, "encoder", None), "layer", None)
        if isinstance(emb, nn.Module) and isinstance(layers, nn.ModuleList) and len(layers):
            if getattr(getattr(base, "config", None), "is_decoder", False):
                raise ModelSpecError(f"{type(model).__name__} is configured as a decoder (causal attention); "
                                     "text_transfer supports bidirectional encoders only.")
            return base, emb, layers
    raise ModelSpecError(
        f"text_transfer needs a BERT-like Hugging Face encoder (embeddings + encoder.layer); {type(model).__name__} "
        "has none. Load a BERT-family model with an 'hf:' spec."
    )


def _mask(base: nn.Module, attn: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """The additive key mask ``(N, 1, 1, T)`` a BERT layer takes: 0 where attended, the dtype's minimum at padding.

    Written by hand (the classic BERT extended mask; transformers 5 builds it internally and no
    longer exposes it); eager and SDPA attention both add it to the scores. Checked against the
    model's own forward in the tests.
    """
    return (1.0 - attn[:, None, None, :].to(dtype)) * torch.finfo(dtype).min


def _layers(layers: nn.ModuleList, h: torch.Tensor, mask: torch.Tensor, lo: int, hi: int) -> torch.Tensor:
    for i in range(lo, hi):
        out = layers[i](h, mask)
        h = out[0] if isinstance(out, (tuple, list)) else out
    return h


def prefix_states(base: nn.Module, emb: nn.Module, layers: nn.ModuleList, batch: Mapping[str, torch.Tensor], n: int) -> torch.Tensor:
    """Token states after the embeddings and the first ``n`` encoder layers, ``(N, T, D)``."""
    kw = {k: batch[k] for k in ("input_ids", "token_type_ids") if k in batch}
    h = emb(**kw)
    if n:
        h = _layers(layers, h, _mask(base, batch["attention_mask"], h.dtype), 0, n)
    return h  # type: ignore[no-any-return]


def masked_mean(h: torch.Tensor, attn: torch.Tensor) -> torch.Tensor:
    """Mean of ``h`` ``(N, T, D)`` over the tokens where ``attn`` ``(N, T)`` is 1: ``(N, D)``."""
    m = attn.to(h.dtype).unsqueeze(-1)
    return (h * m).sum(1) / m.sum(1).clamp_min(1.0)


def upper_logits(base: nn.Module, layers: nn.ModuleList, head: nn.Module, h: torch.Tensor, attn: torch.Tensor, n: int) -> torch.Tensor:
    """Layers ``n`` … L−1 on prefix states ``h``, masked-mean pooling, then the head: ``(N, classes)``."""
    if n < len(layers):
        h = _layers(layers, h, _mask(base, attn, h.dtype), n, len(layers))
    return head(masked_mean(h, attn))  # type: ignore[no-any-return]


class _Features:
    """The frozen prefix's token states of a list of texts, one ``(T_i, D)`` tensor per text."""

    def __init__(self, states: list[torch.Tensor]) -> None:
        self.states = states

    def batch(self, rows: Sequence[int]) -> tuple[torch.Tensor, torch.Tensor]:
        """``(h, attention mask)`` of ``rows``, right-padded with zeros to the longest, as the tokenizer pads."""
        ts = [self.states[i] for i in rows]
        t = max(s.shape[0] for s in ts)
        h = ts[0].new_zeros((len(ts), t, ts[0].shape[1]))
        attn = torch.zeros((len(ts), t), dtype=torch.long)
        for j, s in enumerate(ts):
            h[j, : s.shape[0]] = s
            attn[j, : s.shape[0]] = 1
        return h, attn


def _cache(tokenize: Callable[[list[str]], dict[str, torch.Tensor]], base: nn.Module, emb: nn.Module,
           layers: nn.ModuleList, texts: list[str], n: int, batch_size: int) -> _Features:
    out: list[torch.Tensor] = []
    with torch.no_grad():
        for i in range(0, len(texts), batch_size):
            b = tokenize(texts[i : i + batch_size])
            h = prefix_states(base, emb, layers, b, n)
            attn = b["attention_mask"]
            lengths = attn.sum(1)
            if not torch.equal(attn.bool(), torch.arange(attn.shape[1]).unsqueeze(0) < lengths.unsqueeze(1)):
                raise ModelSpecError("The tokenizer does not pad on the right; cached features assume right padding "
                                     "(set tokenizer.padding_side = 'right').")
            out.extend(h[j, : int(lengths[j])].clone() for j in range(h.shape[0]))
    return _Features(out)


# ---------------------------------------------------------------------------------------------
# training one network
# ---------------------------------------------------------------------------------------------
@dataclass
class _Fit:
    val_curve: list[float]
    train_loss: list[float]
    best_epoch: int
    val_accuracy: float
    test_accuracy: float
    seconds: float
    cpu_seconds: float
    state: dict[str, torch.Tensor] | None = None


class _Cell:
    """One network on a task: a copy of the base encoder (frozen prefix of ``n`` layers) and a new head."""

    def __init__(self, source: nn.Module, n: int | None, n_classes: int, seed: int) -> None:
        self.net = copy.deepcopy(source)
        self.base, self.emb, self.layers = encoder_parts(self.net)
        self.n = n
        d = int(getattr(getattr(self.base, "config", None), "hidden_size", 0) or 0)
        if d < 1:
            raise ModelSpecError(f"{type(self.base).__name__} has no config.hidden_size; cannot size the linear head.")
        torch.manual_seed(seed)
        self.head = nn.Linear(d, n_classes)
        for p in self.net.parameters():
            p.requires_grad_(False)
        trainable: list[nn.Module] = list(self.layers) if n is None else list(self.layers)[n:]
        if n is None:
            trainable.insert(0, self.emb)
        self.trainable = nn.ModuleList(trainable)
        for p in self.trainable.parameters():
            p.requires_grad_(True)

    def train_mode(self, on: bool) -> None:
        self.net.eval()
        self.head.train(on)
        self.trainable.train(on)

    def logits(self, tokenize: Callable[[list[str]], dict[str, torch.Tensor]], texts: list[str],
               feats: _Features | None, rows: Sequence[int]) -> torch.Tensor:
        n = 0 if self.n is None else self.n
        if feats is not None:
            h, attn = feats.batch(rows)
        else:
            b = tokenize([texts[i] for i in rows])
            attn = b["attention_mask"]
            if self.n is None:
                h = prefix_states(self.base, self.emb, self.layers, b, 0)
            else:
                with torch.no_grad():  # the frozen prefix, recomputed for every batch
                    h = prefix_states(self.base, self.emb, self.layers, b, n)
        return upper_logits(self.base, self.layers, self.head, h, attn, n)

    def accuracy(self, tokenize: Callable[[list[str]], dict[str, torch.Tensor]], texts: list[str],
                 feats: _Features | None, rows: np.ndarray, labels: np.ndarray, batch_size: int) -> float:
        self.train_mode(False)
        hits = 0
        with torch.no_grad():
            for i in range(0, len(rows), batch_size):
                r = rows[i : i + batch_size]
                hits += int((self.logits(tokenize, texts, feats, r.tolist()).argmax(1).numpy() == labels[r]).sum())
        return hits / max(len(rows), 1)

    def state(self) -> dict[str, torch.Tensor]:
        return {k: v.detach().clone() for k, v in {**{f"t.{k}": v for k, v in self.trainable.state_dict().items()},
                                                   **{f"h.{k}": v for k, v in self.head.state_dict().items()}}.items()}

    def load(self, state: dict[str, torch.Tensor]) -> None:
        self.trainable.load_state_dict({k[2:]: v for k, v in state.items() if k.startswith("t.")})
        self.head.load_state_dict({k[2:]: v for k, v in state.items() if k.startswith("h.")})


def _fit(cell: _Cell, tokenize: Callable[[list[str]], dict[str, torch.Tensor]], task: _Task, train_rows: np.ndarray,
         val_rows: np.ndarray, test: _Task, feats: tuple[_Features, _Features] | None, *, epochs: int, lr: float,
         head_lr: float, batch_size: int, seed: int, keep_state: bool = False) -> _Fit:
    """Train ``cell`` on ``task`` (rows ``train_rows``), keep the epoch of best validation accuracy, test it."""
    t0, c0 = time.perf_counter(), time.process_time()
    groups = [{"params": list(cell.trainable.parameters()), "lr": lr}, {"params": list(cell.head.parameters()), "lr": head_lr}]
    opt = torch.optim.AdamW([g for g in groups if g["params"]], weight_decay=0.01)
    loss_fn = nn.CrossEntropyLoss()
    rng = np.random.default_rng(seed)
    tr_feats = feats[0] if feats is not None else None
    val_curve: list[float] = []
    losses: list[float] = []
    best: tuple[float, int, dict[str, torch.Tensor]] | None = None
    for epoch in range(epochs):
        cell.train_mode(True)
        order = train_rows[rng.permutation(len(train_rows))]
        total, count = 0.0, 0
        for i in range(0, len(order), batch_size):
            rows = order[i : i + batch_size]
            logits = cell.logits(tokenize, task.texts, tr_feats, rows.tolist())
            loss = loss_fn(logits, torch.from_numpy(task.labels[rows]))
            opt.zero_grad(set_to_none=True)
            loss.backward()  # type: ignore[no-untyped-call]
            opt.step()
            total += float(loss.detach()) * len(rows)
            count += len(rows)
        losses.append(total / max(count, 1))
        acc = cell.accuracy(tokenize, task.texts, tr_feats, val_rows, task.labels, batch_size)
        val_curve.append(acc)
        if best is None or acc > best[0]:
            best = (acc, epoch, cell.state())
    assert best is not None  # epochs >= 1 is checked by the caller
    cell.load(best[2])
    test_feats = feats[1] if feats is not None else None
    test_acc = cell.accuracy(tokenize, test.texts, test_feats, np.arange(len(test.texts)), test.labels, batch_size)
    return _Fit(val_curve, losses, best[1], best[0], test_acc, time.perf_counter() - t0,
                time.process_time() - c0, best[2] if keep_state else None)


# ---------------------------------------------------------------------------------------------
# the result
# ---------------------------------------------------------------------------------------------
def _spread(values: Sequence[float]) -> dict[str, float]:
    a = np.asarray(values, dtype=np.float64)
    return {"mean": float(a.mean()), "std": float(a.std(ddof=1)) if len(a) > 1 else 0.0,
            "min": float(a.min()), "max": float(a.max())}


@plain_fields
@dataclass(frozen=True, repr=False)
class TextTransferResult(AnalysisResult):
    """A transfer grid on text (see :mod:`layerscope.text.transfer`).

    Attributes
    ----------
    table
        One row per trained network on task B: ``condition`` (``PnB``/``AnB``), ``base``, ``n``,
        ``seed``, ``val_accuracy`` (best epoch), ``best_epoch``, ``test_accuracy``, ``val_curve``,
        ``train_loss``, ``cached``, ``seconds`` (wall) and ``cpu_seconds`` (process CPU time; the fair
        measure on a shared machine).
    base_a
        One row per seed for the A-finetuned base: ``seed``, ``val_accuracy``, ``best_epoch``,
        ``test_accuracy`` (on task A's test texts), ``seconds``.
    summary
        Per (condition, n): test accuracy ``mean``/``std`` (ddof=1)/``min``/``max`` over seeds,
        ``val_mean``, ``seeds``.
    effects
        Per n: ``finetuning_effect`` = AnB − PnB test accuracy, paired by seed (spread and per seed).
    task_a, task_b
        Task A's classes; task B's groups ``{group: [classes]}``.
    n_layers
        Encoder layers L (n runs over 0 … L).
    """

    analysis = ANALYSIS
    key_figure = "text_transfer"

    table: list[dict[str, Any]]
    base_a: list[dict[str, Any]]
    summary: list[dict[str, Any]]
    effects: list[dict[str, Any]]
    task_a: list[str]
    task_b: dict[str, list[str]]
    n_layers: int
    parameters: dict[str, Any] = field()
    metrics: dict[str, Any] = field(default_factory=dict)
    model_info: dict[str, Any] | None = None
    data_spec: str | None = None
    test_data_spec: str | None = None

    def __repr__(self) -> str:
        m = self.metrics
        best = ", ".join(f"{c} n={m.get(f'best_n_{c}')} test {m.get(f'best_test_{c}', float('nan')):.3f}"
                         for c in ("PnB", "AnB") if m.get(f"best_n_{c}") is not None)
        return f"TextTransferResult(L={self.n_layers}, networks={len(self.table)}, {best})"

    def accuracy(self, condition: str, n: int, seed: int, metric: str = "test_accuracy") -> float:
        for r in self.table:
            if (r["condition"], r["n"], r["seed"]) == (condition, n, seed):
                return float(r[metric])
        raise KeyError(f"no network {condition} n={n} seed={seed}")

    def _figure_specs(self) -> list[tuple[str, Any, str, str]]:
        if not self.table:
            return []
        from matplotlib.figure import Figure

        from ..transfer.plots import STYLE

        fig = Figure(figsize=(7.5, 7))
        ax, ax2 = fig.subplots(2, 1, gridspec_kw={"height_ratios": [3, 2]}, sharex=True)
        colors = {"PnB": STYLE["BnB"][0], "AnB": STYLE["AnB"][0]}
        for k, cond in enumerate(c for c in ("PnB", "AnB") if any(r["condition"] == c for r in self.table)):
            rows = [r for r in self.table if r["condition"] == cond]
            off = -0.08 if k == 0 else 0.08
            ax.scatter([r["n"] + off for r in rows], [r["test_accuracy"] for r in rows], s=18, color=colors[cond], alpha=0.7)
            s = [x for x in self.summary if x["condition"] == cond]
            base = "pretrained" if cond == "PnB" else "A-finetuned"
            ax.plot([x["n"] + off for x in s], [x["mean"] for x in s], color=colors[cond], lw=1.6, marker="o", ms=3,
                    label=f"{cond}: {base} base, first n layers frozen")
        chance = self.metrics.get("chance_b")
        if chance is not None:
            ax.axhline(chance, color="grey", lw=0.8, ls=":", label="majority class")
        ax.set_ylabel("test accuracy on task B\n(epoch chosen on held-out training data)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
        groups = " vs ".join(self.task_b)
        ax.set_title(f"Transfer on text: task B = {groups}; {len(self.task_a)} task-A classes", fontsize=10)
        es = [e for e in self.effects if e.get("finetuning_effect")]
        if es:
            x = np.array([e["n"] for e in es], dtype=float)
            mean = np.array([e["finetuning_effect"]["mean"] for e in es])
            err = np.array([[e["finetuning_effect"]["mean"] - e["finetuning_effect"]["min"] for e in es],
                            [e["finetuning_effect"]["max"] - e["finetuning_effect"]["mean"] for e in es]])
            ax2.errorbar(x, mean, yerr=err, color="#2a9d3a", marker="o", ms=4, capsize=3, label="AnB − PnB")
            ax2.legend(fontsize=8)
        ax2.axhline(0, color="black", lw=0.8)
        ax2.set_xlabel("n: encoder layers frozen (embeddings always frozen)")
        ax2.set_ylabel("accuracy difference\n(bars: seed min–max)")
        ax2.set_xticks(list(range(self.n_layers + 1)))
        ax2.grid(alpha=0.3)
        fig.tight_layout()
        seeds = sorted({r["seed"] for r in self.table})
        return [("text_transfer", fig, "Transferability of a text encoder's layers (Yosinski et al. 2014)",
                 f"Test accuracy on task B ({groups}) of networks whose embeddings and first n encoder layers are "
                 f"copied from the pretrained model (PnB) or from the model fine-tuned on task A (AnB) and frozen, with "
                 f"the layers above and a linear head trained; {len(seeds)} seed(s), each a dot, lines = means. Lower "
                 "panel: AnB − PnB per n, bars = seed min–max.")]

    def _write(self, d: Path) -> None:
        entries = write_figures(d, self._figure_specs())
        write_result(
            d, ANALYSIS, model=self.model_info, data=self.data_spec, test_data=self.test_data_spec,
            parameters=to_jsonable(self.parameters), metrics=to_jsonable(self.metrics), figures=entries,
            table=to_jsonable(self.table), base_a=to_jsonable(self.base_a), summary=to_jsonable(self.summary),
            effects=to_jsonable(self.effects), task_a=self.task_a, task_b=self.task_b, n_layers=self.n_layers,
        )

    @classmethod
    def load(cls, out_dir: str | os.PathLike[str]) -> "TextTransferResult":
        doc = read_result(out_dir)
        if doc.get("analysis") != ANALYSIS:
            raise DataError(f"{out_dir} holds a {doc.get('analysis')!r} result, not {ANALYSIS!r}.")
        try:
            return cls(
                table=list(doc["table"]), base_a=list(doc["base_a"]), summary=list(doc["summary"]),
                effects=list(doc["effects"]),
                task_a=list(doc["task_a"]), task_b={str(k): list(v) for k, v in dict(doc["task_b"]).items()},
                n_layers=int(doc["n_layers"]), parameters=dict(doc.get("parameters") or {}),
                metrics=dict(doc.get("metrics") or {}), model_info=doc.get("model"), data_spec=doc.get("data"),
                test_data_spec=doc.get("test_data"),
            )
        except (KeyError, TypeError, ValueError) as err:
            raise DataError(f"{out_dir}/result.json is not a complete text transfer result ({type(err).__name__}: {err}).") from err


def _summarise(table: list[dict[str, Any]], n_layers: int) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    summary = []
    for cond in ("PnB", "AnB"):
        for n in range(n_layers + 1):
            rows = [r for r in table if r["condition"] == cond and r["n"] == n]
            if rows:
                summary.append({"condition": cond, "n": n, **_spread([r["test_accuracy"] for r in rows]),
                                "val_mean": float(np.mean([r["val_accuracy"] for r in rows])), "seeds": len(rows)})
    effects = []
    for n in sorted({r["n"] for r in table}):
        p = {r["seed"]: r["test_accuracy"] for r in table if r["condition"] == "PnB" and r["n"] == n}
        a = {r["seed"]: r["test_accuracy"] for r in table if r["condition"] == "AnB" and r["n"] == n}
        seeds = sorted(set(p) & set(a))
        per = {str(s): a[s] - p[s] for s in seeds}
        effects.append({"n": n, "finetuning_effect": {**_spread(list(per.values())), "per_seed": per} if seeds else None})
    return summary, effects


# ---------------------------------------------------------------------------------------------
# the analysis
# ---------------------------------------------------------------------------------------------
def text_transfer(
    model: nn.Module,
    data: Any,
    test_data: Any,
    *,
    task_b: Mapping[str, Sequence[str]] | None = None,
    task_a: Sequence[str] | None = None,
    bases: Sequence[str] = BASES,
    layers: Sequence[int] | None = None,
    seeds: Sequence[int] = (0,),
    epochs: int = 2,
    a_epochs: int | None = None,
    lr: float = 5e-5,
    head_lr: float = 1e-3,
    batch_size: int = 32,
    per_class: int | None = None,
    test_per_class: int | None = None,
    val_fraction: float = 0.2,
    split_seed: int = 0,
    cache: bool = True,
    progress: Any = None,
    model_info: dict[str, Any] | None = None,
    data_spec: str | None = None,
    test_data_spec: str | None = None,
) -> TextTransferResult:
    """Freeze the first n encoder layers of a pretrained or A-finetuned base and train the rest on task B.

    Parameters
    ----------
    model
        A BERT-like Hugging Face encoder with a tokenizer hook (``hf:`` spec); deep-copied, never changed.
    data, test_data
        Labelled texts (e.g. ``wordnet:train`` and ``wordnet:test``) with the same class names; the
        training data also gives the validation part (``val_fraction``) used for model selection.
    task_b, task_a
        Task B's groups and task A's classes (see :func:`resolve_text_tasks`); default living vs
        non-living lexnames, and the other lexnames.
    bases
        ``"pretrained"`` (PnB) and/or ``"finetuned"`` (AnB: the model fine-tuned on task A first).
    layers
        The values of n (frozen encoder layers, 0 … L) to train; default all.
    seeds
        One network per (base, n, seed), and one A-finetuned base per seed.
    epochs, a_epochs
        Training epochs on task B, and on task A for the base (default: ``epochs``).
    lr, head_lr
        AdamW learning rates of the encoder layers and of the linear head.
    batch_size
        Texts per step (and per forward pass when caching or evaluating).
    per_class, test_per_class
        At most this many training / test texts per source class (seeded subset); default all.
    val_fraction, split_seed
        Stratified fraction of the training texts held out for choosing the epoch, and its seed.
    cache
        Compute the frozen prefix once per (base, n) (default) or for every batch.
    progress
        A tqdm-compatible callable (keywords ``total``, ``desc``), ``True`` or ``None``.
    model_info, data_spec, test_data_spec
        Descriptions written to ``result.json``.

    Returns
    -------
    TextTransferResult
    """
    for name, v in (("epochs", epochs), ("batch_size", batch_size)):
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise ParameterError(f"{name} must be a positive integer; got {v!r}.")
    if a_epochs is not None and (isinstance(a_epochs, bool) or not isinstance(a_epochs, int) or a_epochs < 1):
        raise ParameterError(f"a_epochs must be a positive integer; got {a_epochs!r}.")
    if not 0.0 < val_fraction < 0.9:
        raise ParameterError(f"val_fraction must lie in (0, 0.9); got {val_fraction}.")
    for name, rate in (("lr", lr), ("head_lr", head_lr)):
        if not (isinstance(rate, (int, float)) and np.isfinite(rate) and rate > 0):
            raise ParameterError(f"{name} must be a positive number; got {rate!r}.")
    bad = [b for b in bases if b not in BASES]
    if bad or not bases or len(set(bases)) != len(bases):
        raise ParameterError(f"bases must be distinct values among {', '.join(BASES)}; got {list(bases)}.")
    seeds = [int(s) for s in seeds]
    if not seeds or len(set(seeds)) != len(seeds):
        raise ParameterError(f"seeds must be distinct integers, at least one; got {seeds}.")
    for name, cap in (("per_class", per_class), ("test_per_class", test_per_class)):
        if cap is not None and (isinstance(cap, bool) or not isinstance(cap, int) or cap < 2):
            raise ParameterError(f"{name} must be an integer >= 2 or None; got {cap!r}.")
    _, _, enc_layers = encoder_parts(model)
    n_layers = len(enc_layers)
    ns = list(range(n_layers + 1)) if layers is None else [int(n) for n in layers]
    if not ns or any(n < 0 or n > n_layers for n in ns) or len(set(ns)) != len(ns):
        raise ParameterError(f"layers (values of n) must be distinct integers in 0..{n_layers}; got {list(layers or [])}.")
    tokenize = tokenizer_of(model)

    texts, labels = texts_and_labels(data)
    ttexts, tlabels = texts_and_labels(test_data)
    if labels is None or tlabels is None:
        raise DataError("text_transfer needs labelled training and test texts ((text, label) items).")
    classes = [str(c) for c in getattr(data, "classes", None) or range(int(labels.max()) + 1)]
    tclasses = [str(c) for c in getattr(test_data, "classes", None) or range(int(tlabels.max()) + 1)]
    if classes != tclasses:
        raise DataError(f"Training and test data have different classes ({classes[:4]}... vs {tclasses[:4]}...); "
                        "load both from the same source (e.g. wordnet:train and wordnet:test).")
    overlap = len(set(texts) & set(ttexts))
    if ttexts and overlap == len(set(ttexts)):
        raise DataError("Every test text is also a training text; pass a held-out test split (e.g. wordnet:train and wordnet:test).")
    a_names, b_groups = resolve_text_tasks(classes, task_b, task_a, need_a="finetuned" in bases)
    b_map = {c: gi for gi, g in enumerate(b_groups) for c in b_groups[g]}
    a_map = {c: i for i, c in enumerate(a_names)}
    task_B = _task(texts, labels, classes, b_map, list(b_groups), per_class, split_seed)
    test_B = _task(ttexts, tlabels, classes, b_map, list(b_groups), test_per_class, split_seed)
    task_A = _task(texts, labels, classes, a_map, a_names, per_class, split_seed)
    test_A = _task(ttexts, tlabels, classes, a_map, a_names, test_per_class, split_seed)
    for nm, t in (("training", task_B), ("test", test_B)):
        missing = [g for gi, g in enumerate(b_groups) if not (t.labels == gi).any()]
        if missing:
            raise DataError(f"The {nm} data has no text of task B group {missing[0]!r}.")
    b_train, b_val = _val_split(task_B.labels, val_fraction, split_seed)
    a_train, a_val = _val_split(task_A.labels, val_fraction, split_seed) if "finetuned" in bases else (None, None)

    table: list[dict[str, Any]] = []
    base_a: list[dict[str, Any]] = []
    cache_seconds = cache_cpu = 0.0
    kw = dict(epochs=epochs, lr=lr, head_lr=head_lr, batch_size=batch_size)
    jobs: list[tuple[str, int | None]] = []
    if "pretrained" in bases:
        jobs.append(("pretrained", None))
    if "finetuned" in bases:
        jobs += [("finetuned", s) for s in seeds]
    total = len(ns) * len(seeds) * len(bases) + (len(seeds) if "finetuned" in bases else 0)
    bar = iter(track(progress, range(total), total, "text transfer: networks"))
    with torch.random.fork_rng(devices=[]):
        for base_name, base_seed in jobs:
            source: nn.Module = model
            if base_name == "finetuned":
                assert base_seed is not None and a_train is not None and a_val is not None
                cell = _Cell(model, None, len(a_names), base_seed)
                fit = _fit(cell, tokenize, task_A, a_train, a_val, test_A, None, **{**kw, "epochs": a_epochs or epochs},  # type: ignore[arg-type]
                           seed=base_seed)
                next(bar, None)
                base_a.append({"seed": base_seed, "val_accuracy": fit.val_accuracy, "best_epoch": fit.best_epoch,
                               "test_accuracy": fit.test_accuracy, "val_curve": fit.val_curve, "seconds": fit.seconds})
                source = cell.net
            else:
                source = copy.deepcopy(model)  # the user's model is never touched
            cell_seeds = seeds if base_seed is None else [base_seed]
            for n in ns:
                feats = None
                if cache:
                    t0, c0 = time.perf_counter(), time.process_time()
                    source.eval()
                    base_mod, emb, lay = encoder_parts(source)
                    feats = (_cache(tokenize, base_mod, emb, lay, task_B.texts, n, batch_size),
                             _cache(tokenize, base_mod, emb, lay, test_B.texts, n, batch_size))
                    cache_seconds += time.perf_counter() - t0
                    cache_cpu += time.process_time() - c0
                for seed in cell_seeds:
                    cell = _Cell(source, n, len(b_groups), seed)
                    fit = _fit(cell, tokenize, task_B, b_train, b_val, test_B, feats, **kw, seed=seed)  # type: ignore[arg-type]
                    next(bar, None)
                    table.append({
                        "condition": CONDITIONS[base_name], "base": base_name, "n": n, "seed": seed,
                        "val_accuracy": fit.val_accuracy, "best_epoch": fit.best_epoch, "test_accuracy": fit.test_accuracy,
                        "val_curve": fit.val_curve, "train_loss": fit.train_loss, "cached": bool(cache), "seconds": fit.seconds,
                        "cpu_seconds": fit.cpu_seconds,
                    })
    for _ in bar:  # finish the progress bar
        pass
    table.sort(key=lambda r: (r["condition"] != "PnB", r["n"], r["seed"]))
    summary, effects = _summarise(table, n_layers)
    counts = np.bincount(test_B.labels, minlength=len(b_groups))
    metrics: dict[str, Any] = {
        "n_train_b": int(len(b_train)), "n_val_b": int(len(b_val)), "n_test_b": int(len(test_B.labels)),
        "n_train_a": int(len(a_train)) if a_train is not None else 0, "n_test_a": int(len(test_A.labels)),
        "chance_b": float(counts.max() / max(counts.sum(), 1)), "test_texts_in_training": int(overlap),
        "train_seconds": float(sum(r["seconds"] for r in table)), "cache_seconds": float(cache_seconds),
        "train_cpu_seconds": float(sum(r["cpu_seconds"] for r in table)), "cache_cpu_seconds": float(cache_cpu),
    }
    if base_a:
        metrics["base_a_test_accuracy"] = _spread([r["test_accuracy"] for r in base_a])["mean"]
    for cond in ("PnB", "AnB"):
        s = [x for x in summary if x["condition"] == cond]
        if s:
            best = max(s, key=lambda x: (x["val_mean"], -x["n"]))  # chosen on validation accuracy
            metrics[f"best_n_{cond}"] = int(best["n"])
            metrics[f"best_test_{cond}"] = float(best["mean"])
            metrics[f"test_{cond}"] = {str(x["n"]): float(x["mean"]) for x in s}
    fx = [e for e in effects if e["finetuning_effect"]]
    if fx:
        metrics["mean_finetuning_effect"] = float(np.mean([e["finetuning_effect"]["mean"] for e in fx]))
    params = {
        "task_a": a_names, "task_b": b_groups, "bases": list(bases), "layers": ns, "seeds": seeds, "epochs": epochs,
        "a_epochs": a_epochs or epochs, "lr": lr, "head_lr": head_lr, "batch_size": batch_size, "per_class": per_class,
        "test_per_class": test_per_class, "val_fraction": val_fraction, "split_seed": split_seed, "cache": bool(cache),
        "optimizer": "AdamW, weight decay 0.01, cross-entropy",
        "pooling": POOLING_RULE,
        "frozen": "embeddings + encoder layers 0..n-1 copied from the base, frozen (eval mode, no dropout); layers "
                  "n..L-1 copied from the base and trained with a new linear head (train mode)",
        "finetuned_base": "embeddings + every encoder layer + a linear head trained on task A (one base per seed), "
                          "epoch chosen on task A's held-out training part",
        "model_selection": "epoch with the best accuracy on the held-out validation part of the training data "
                           "(ties: the earlier); test accuracy reported at that epoch; best n chosen on mean validation accuracy",
    }
    return TextTransferResult(
        table=table, base_a=base_a, summary=summary, effects=effects, task_a=a_names, task_b=b_groups,
        n_layers=n_layers, parameters=params, metrics=metrics,
        model_info=model_info if model_info is not None else model_description(model), data_spec=data_spec,
        test_data_spec=test_data_spec,
    )
