"""Top-k contexts per unit: Zeiler & Fergus's top-9, for text.

For a unit (one of the ``D`` features of a layer's ``(N, T, D)`` token states) this finds the ``k``
texts where it fires most and the token where it does: each text's score is the unit's **maximum
over its tokens** (padding never counts; special tokens such as ``[CLS]``/``[SEP]`` are left out
by default, since a few units fire on them in every text), and the ``k`` texts of highest score
are kept, so the contexts are ``k`` distinct texts (ties: the earlier row). Each context keeps the
unit's activation on every token of the text, to show the tokens around the peak.

Unit summary: the most frequent peak tokens of its top-k, and its **lexname purity**: the share of
the top-k texts that carry the most common label among them. The chance level of purity is the
expected purity of ``k`` texts drawn at random from the same data (Monte Carlo, 20,000 seeded
draws; written here by hand, as no library computes it).

Memory: the texts are read batch by batch and each unit keeps a running top-k (merged per batch,
the same ranking as one sort of all scores), so memory holds ``k`` candidates per unit and their
tokens, whatever the number of texts; no layer's ``(N, D)`` peaks are kept.
"""

from __future__ import annotations

import os
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
from torch import nn

from .._io import read_json
from ..exceptions import DataError, ParameterError
from ..results import AnalysisResult, model_description, write_result
from ._common import special_ids, text_adapter, texts_and_labels, tokenizer_of, track

__all__ = ["TextTopKResult", "text_topk", "purity_chance"]

ANALYSIS = "text_topk"
_PNG_META = {"Software": None}


def purity_chance(labels: np.ndarray, k: int, draws: int = 20000, seed: int = 0) -> float:
    """Expected purity (share of the most common label) of ``k`` distinct rows drawn at random."""
    labels = np.asarray(labels)
    if len(labels) < k:
        raise ParameterError(f"k={k} is larger than the {len(labels)} texts.")
    rng = np.random.default_rng(seed)
    picks = np.stack([rng.choice(len(labels), size=k, replace=False) for _ in range(draws)])
    lab = labels[picks]
    n_cls = int(labels.max()) + 1
    counts = np.stack([(lab == c).sum(axis=1) for c in range(n_cls)], axis=1)
    return float(counts.max(axis=1).mean() / k)


@dataclass
class TextTopKResult(AnalysisResult):
    """Top-k contexts of chosen units of one or more layers, with unit summaries.

    Attributes
    ----------
    layers, units
        ``units[layer]`` lists the unit indices analysed in that layer.
    contexts
        ``contexts[layer][j]``: the top-k contexts of ``units[layer][j]``, best first; each a dict
        ``{rank, row, text, label, position, token, activation, tokens, token_activations}``
        (``row``: index in the data; ``position``: index of the peak in ``tokens``).
    summaries
        ``summaries[layer][j]``: ``{unit, top_tokens: [[token, count], ...], purity,
        majority_label, majority_class}``.
    purity_chance
        Expected purity of ``k`` random texts of the data.
    """

    layers: list[str]
    units: dict[str, list[int]]
    contexts: dict[str, list[list[dict[str, Any]]]]
    summaries: dict[str, list[dict[str, Any]]]
    classes: list[str]
    k: int
    purity_chance: float
    params: dict[str, Any] = field(default_factory=dict)
    model_info: dict[str, Any] | None = None
    data_spec: str | None = None

    analysis = ANALYSIS
    key_figure = None

    @property
    def parameters(self) -> dict[str, Any]:
        return dict(self.params)

    @property
    def metrics(self) -> dict[str, Any]:
        out: dict[str, Any] = {"k": self.k, "purity_chance": self.purity_chance}
        for layer in self.layers:
            pur = [s["purity"] for s in self.summaries[layer]]
            out[layer] = {
                "units": len(pur),
                "mean_purity": float(np.mean(pur)) if pur else None,
                "units_above_chance": int(sum(p > self.purity_chance for p in pur)),
            }
        return out

    def __repr__(self) -> str:
        per = ", ".join(f"{layer}: purity {self.metrics[layer]['mean_purity']:.2f}" for layer in self.layers)
        return f"TextTopKResult(k={self.k}, {per}, chance {self.purity_chance:.2f})"

    def figures(self, max_units: int = 6, window: int = 6) -> dict[str, Any]:
        """One figure per layer: the top-k contexts of the first ``max_units`` units, tokens shaded by activation."""
        from matplotlib import colormaps
        from matplotlib.figure import Figure

        cmap = colormaps["Oranges"]
        figs: dict[str, Any] = {}
        for li, layer in enumerate(self.layers):
            units = self.units[layer][:max_units]
            rows = sum(len(self.contexts[layer][j]) + 1 for j in range(len(units)))
            fig = Figure(figsize=(11, 0.22 * (rows + 2)))
            ax = fig.add_axes((0, 0, 1, 1))
            ax.set_xlim(0, 110)
            ax.set_ylim(rows + 2, 0)
            ax.axis("off")
            y = 1.8  # below the suptitle
            for j, unit in enumerate(units):
                s = self.summaries[layer][j]
                top = ", ".join(f"{t} ({c})" for t, c in s["top_tokens"][:4])
                ax.text(0.5, y, f"unit {unit}: purity {s['purity']:.2f} ({s['majority_class']}), top tokens {top}",
                        fontsize=7, fontweight="bold", va="center", family="monospace")
                y += 1
                for c in self.contexts[layer][j]:
                    acts = np.asarray(c["token_activations"], dtype=float)
                    peak = max(float(np.max(acts)), 1e-12)
                    lo, hi = max(0, c["position"] - window), min(len(c["tokens"]), c["position"] + window + 1)
                    x = 1.0
                    ax.text(x, y, f"{c['activation']:7.2f} {_class_name(self.classes, c['label'])[:10]:<10}",
                            fontsize=6.5, va="center", family="monospace")
                    x += 19
                    for t in range(lo, hi):
                        tok = c["tokens"][t]
                        shade = float(np.clip(acts[t] / peak, 0, 1))
                        ax.text(x, y, tok, fontsize=6.5, va="center", family="monospace",
                                fontweight="bold" if t == c["position"] else "normal",
                                bbox={"boxstyle": "square,pad=0.1", "fc": cmap(shade), "ec": "none"})
                        x += 0.62 * (len(tok) + 1)
                        if x > 108:
                            break
                    y += 1
            fig.suptitle(f"Top-{self.k} contexts, {layer}")
            figs[f"contexts_{li}"] = fig
        return figs

    def _write(self, d: Path) -> None:
        """Write ``result.json`` (contexts included) and one PNG per layer to ``out_dir``. (``save()`` stages the folder.)"""
        entries = []
        for stem, fig in self.figures().items():
            fig.savefig(d / f"{stem}.png", dpi=100, metadata=_PNG_META)
            entries.append({"path": f"{stem}.png", "title": fig._suptitle.get_text() if fig._suptitle else stem, "caption": ""})
        write_result(
            d, ANALYSIS, model=self.model_info, data=self.data_spec, parameters=self.parameters, metrics=self.metrics,
            figures=entries, layers=self.layers, units=self.units, contexts=self.contexts, summaries=self.summaries,
            classes=self.classes, k=self.k, purity_chance=self.purity_chance,
        )

    @classmethod
    def load(cls, out_dir: str | os.PathLike[str]) -> "TextTopKResult":
        d = Path(out_dir)
        if not (d / "result.json").is_file():
            raise DataError(f"{d} holds no result.json.")
        doc = read_json(d / "result.json")
        if doc.get("analysis") != ANALYSIS:
            raise DataError(f"{d} holds a {doc.get('analysis')!r} result, not {ANALYSIS!r}.")
        return cls(
            layers=list(doc["layers"]), units={k: [int(u) for u in v] for k, v in doc["units"].items()},
            contexts=doc["contexts"], summaries=doc["summaries"], classes=list(doc["classes"]), k=int(doc["k"]),
            purity_chance=float(doc["purity_chance"]), params=dict(doc.get("parameters") or {}),
            model_info=doc.get("model"), data_spec=doc.get("data"),
        )


def _class_name(classes: list[str], label: int) -> str:
    return classes[label].removeprefix("noun.") if 0 <= label < len(classes) else ""


def _choose_units(d: int, units: Sequence[int] | int, rng: np.random.Generator, layer: str) -> list[int]:
    if isinstance(units, (int, np.integer)) and not isinstance(units, bool):
        if units < 1:
            raise ParameterError(f"units must be >= 1 or a list of unit indices; got {units}.")
        return sorted(int(u) for u in rng.choice(d, size=min(int(units), d), replace=False))
    out = [int(u) for u in units]  # type: ignore[union-attr]
    bad = [u for u in out if not 0 <= u < d]
    if bad or not out:
        raise ParameterError(f"Units {bad or out} are outside layer {layer!r}'s {d} units (0..{d - 1}).")
    return out


class _RunningTopK:
    """The ``k`` best texts of each of ``U`` units so far, merged batch by batch (exact).

    Texts are numbered in the order they come; a batch's texts come after every kept one. The kept
    candidates are sorted by (score descending, number ascending), so a stable sort of the kept
    ones followed by the batch's puts ties in text order: the same ranking as one stable sort of
    all ``N`` scores. Texts whose score is not finite (every token special) sort last and are left
    out of :meth:`top`, as before.
    """

    def __init__(self, k: int, n_units: int) -> None:
        self.k = k
        self.score = np.zeros((0, n_units), dtype=np.float32)
        self.text = np.zeros((0, n_units), dtype=np.int64)
        self.pos = np.zeros((0, n_units), dtype=np.int64)
        self.acts: dict[tuple[int, int], np.ndarray] = {}  # (unit column, text) -> activations on its tokens

    def merge(self, score: np.ndarray, pos: np.ndarray, first: int, sel: np.ndarray, lengths: list[int]) -> None:
        """Merge a batch: ``score``/``pos`` ``(b, U)`` peaks, ``sel`` ``(b, T, U)`` token activations."""
        b = len(score)
        all_score = np.concatenate([self.score, score.astype(np.float32, copy=False)])
        all_text = np.concatenate([self.text, np.broadcast_to(np.arange(first, first + b)[:, None], score.shape)])
        all_pos = np.concatenate([self.pos, pos.astype(np.int64, copy=False)])
        order = np.argsort(-all_score, axis=0, kind="stable")[: self.k]
        self.score = np.take_along_axis(all_score, order, axis=0)
        self.text = np.take_along_axis(all_text, order, axis=0)
        self.pos = np.take_along_axis(all_pos, order, axis=0)
        for j in range(score.shape[1]):
            kept = set(self.text[:, j].tolist())
            for i in kept:
                if first <= i < first + b:
                    self.acts[(j, i)] = sel[i - first, : int(lengths[i - first]), j].copy()
            for key in [key for key in self.acts if key[0] == j and key[1] not in kept]:
                del self.acts[key]

    def texts(self) -> set[int]:
        return set(self.text.ravel().tolist())

    def top(self, j: int) -> list[tuple[int, float, int, np.ndarray]]:
        """``(text, score, position, token activations)`` of unit column ``j``, best first, finite scores only."""
        return [(int(i), float(s), int(p), self.acts[(j, int(i))])
                for s, i, p in zip(self.score[:, j], self.text[:, j], self.pos[:, j]) if np.isfinite(s)]


def text_topk(
    model: nn.Module,
    data: Any,
    layers: str | Sequence[str],
    units: Sequence[int] | int = 20,
    *,
    k: int = 9,
    skip_special: bool = True,
    batch_size: int = 64,
    seed: int = 0,
    progress: Any = None,
    model_info: dict[str, Any] | None = None,
    data_spec: str | None = None,
) -> TextTopKResult:
    """The ``k`` texts (and token) where each chosen unit of ``layers`` fires most, with summaries.

    Parameters
    ----------
    model
        A text model with a tokenizer hook (``hf:`` spec); not changed.
    data
        Labelled texts (``(text, label)`` items, e.g. ``wordnet``); unlabelled texts work too
        (no purity then).
    layers
        Layer(s) whose output is token states ``(N, T, D)``.
    units
        Unit indices (the same for every layer), or a count: that many units drawn at random
        (seeded) per layer.
    k
        Contexts per unit.
    skip_special
        Leave the tokenizer's special tokens (``[CLS]``, ``[SEP]``, ...) out of the peak search.
    batch_size, seed, progress, model_info, data_spec
        As in the other analyses.
    """
    from ..capture import capture
    from ..seam import data_length, iter_batches

    layers = [layers] if isinstance(layers, str) else list(layers)
    if not layers:
        raise ParameterError("Name at least one layer.")
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
        raise ParameterError(f"k must be an integer >= 1; got {k!r}.")
    tokenizer_of(model)
    tok = getattr(model, "layerscope_tokenizer", None)
    special = special_ids(tok) if skip_special else set()
    _, labels_all = texts_and_labels(data)
    n = data_length(data) or 0
    if n < k:
        raise ParameterError(f"k={k} is larger than the {n} texts.")
    rng = np.random.default_rng(seed)
    # a running top-k per unit (merged batch by batch), so memory holds k candidates per unit and the
    # tokens of the texts among them, never the (N, D) peaks of a layer or the tokens of every text
    best: dict[str, _RunningTopK] = {}
    token_ids: dict[int, list[int]] = {}
    rows: list[int] = []
    chosen: dict[str, list[int]] = {}
    batches = iter_batches(data, batch_size, model=model, adapter=text_adapter)
    n_batches = (n + batch_size - 1) // batch_size
    for batch in track(progress, batches, n_batches, f"top-k: {', '.join(layers)}"):
        mask = batch.mask
        ids = batch.kwargs.get("input_ids")
        if mask is None or not isinstance(ids, torch.Tensor):
            raise DataError("The tokenizer gave no input_ids/attention_mask; top-k contexts need both.")
        with capture(model, layers, stop_early=True) as cap:
            cap.run(batch)
        valid = mask.bool().clone()
        for sid in special:
            valid &= ids != sid
        lengths = mask.sum(1).tolist()
        first = len(rows)  # the running number of this batch's first text
        rows.extend(int(r) for r in batch.ids[: batch.n])
        for layer in layers:
            t = cap[layer]
            if t.ndim != 3 or t.shape[:2] != ids.shape:
                raise ParameterError(
                    f"Layer {layer!r} gave shape {tuple(t.shape)}, not token states (N, T, D) matching the tokens "
                    f"{tuple(ids.shape)}; choose an encoder block or the embeddings."
                )
            t = t[: batch.n].float()
            if layer not in chosen:
                chosen[layer] = _choose_units(int(t.shape[2]), units, rng, layer)
                best[layer] = _RunningTopK(int(k), len(chosen[layer]))
            sel = t[:, :, chosen[layer]]
            masked = sel.masked_fill(~valid[: batch.n].unsqueeze(-1), float("-inf"))
            v, p = masked.max(dim=1)
            best[layer].merge(v.numpy(), p.numpy(), first, sel.numpy(), lengths)
        keep = set().union(*(b.texts() for b in best.values()))
        for i in range(batch.n):
            if first + i in keep:
                token_ids[first + i] = ids[i, : int(lengths[i])].tolist()
        for i in [i for i in token_ids if i not in keep]:
            del token_ids[i]
    row_arr = np.asarray(rows, dtype=np.int64)
    labels = labels_all[row_arr] if labels_all is not None else None
    texts, _ = texts_and_labels(data)
    to_tokens = getattr(tok, "convert_ids_to_tokens", None)
    chance = purity_chance(labels, k, seed=seed) if labels is not None else float("nan")
    classes = [str(c) for c in getattr(data, "classes", None) or ([] if labels is None else range(int(labels.max()) + 1))]
    contexts: dict[str, list[list[dict[str, Any]]]] = {}
    summaries: dict[str, list[dict[str, Any]]] = {}
    for layer in layers:
        contexts[layer], summaries[layer] = [], []
        b = best[layer]
        for j, u in enumerate(chosen[layer]):
            ctx: list[dict[str, Any]] = []
            for rank, (i, score, pos, acts) in enumerate(b.top(j)):
                toks = to_tokens(token_ids[i]) if to_tokens else [str(x) for x in token_ids[i]]
                ctx.append({
                    "rank": rank, "row": int(row_arr[i]), "text": texts[int(row_arr[i])],
                    "label": int(labels[i]) if labels is not None else -1, "position": int(pos),
                    "token": toks[int(pos)], "activation": float(score), "tokens": list(toks),
                    "token_activations": [round(float(a), 5) for a in acts],
                })
            top = Counter(str(c["token"]) for c in ctx).most_common()
            if labels is not None and ctx:
                lab_counts: Counter[int] = Counter(int(c["label"]) for c in ctx)
                maj, cnt = max(lab_counts.items(), key=lambda kv: (kv[1], -kv[0]))
                purity, maj_name = cnt / len(ctx), classes[maj] if maj < len(classes) else str(maj)
            else:
                maj, purity, maj_name = -1, float("nan"), ""
            contexts[layer].append(ctx)
            summaries[layer].append({
                "unit": int(u), "top_tokens": [[t, int(c)] for t, c in top[:10]], "purity": float(purity),
                "majority_label": int(maj), "majority_class": maj_name,
            })
    params = {
        "layers": layers, "units": units if isinstance(units, int) else [int(u) for u in units], "k": int(k),
        "skip_special": skip_special, "batch_size": batch_size, "seed": seed,
        "score_rule": "a text's score is the unit's max over its (non-special, unpadded) tokens; top-k distinct texts",
    }
    return TextTopKResult(
        layers=layers, units=chosen, contexts=contexts, summaries=summaries, classes=classes, k=int(k),
        purity_chance=chance, params=params,
        model_info=model_info if model_info is not None else model_description(model), data_spec=data_spec,
    )
