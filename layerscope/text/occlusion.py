"""Occlusion for text: Zeiler & Fergus's grey square, as a masked or dropped token (or n-gram).

Each text is tokenized once (no padding). For every span of ``ngram`` consecutive non-special
tokens (``[CLS]``/``[SEP]`` are never occluded), one variant of the text is made:

* ``mode="mask"``: the span's token ids are replaced by the tokenizer's mask token (``[MASK]``);
  the length and positions stay;
* ``mode="drop"``: the span is removed from every per-token input (ids, attention mask, token
  types); later tokens move up.

The original and all its variants run through the model in one padded batch (padding is masked,
so it does not change the result beyond float rounding; checked against one-at-a-time forward
passes in the tests). The **target** is read from the chosen layer's token states pooled by
``pool`` (``mean``: masked mean over tokens; ``max``; ``cls``: first token):

* ``unit=u``: the pooled value of unit ``u``; change = original - occluded;
* ``probe=clf``: a fitted scikit-learn classifier on pooled features (``predict_proba``, else
  ``decision_function``) and ``class_index=c``; change = original score - occluded score;
* neither: the sentence embedding (the pooled layer); change = 1 - cosine(original, occluded).

A positive change means the span supported the target.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
from torch import nn

from .._io import read_json
from ..exceptions import DataError, ParameterError
from ..results import AnalysisResult, model_description, write_result
from ._common import special_ids, texts_and_labels, tokenizer_of, track

__all__ = ["TextOcclusionResult", "text_occlusion", "occlusion_variants", "pool_tokens"]

ANALYSIS = "text_occlusion"
_PNG_META = {"Software": None}
POOLS = ("mean", "max", "cls")


def pool_tokens(h: torch.Tensor, mask: torch.Tensor, pool: str) -> torch.Tensor:
    """``(N, T, D)`` token states to ``(N, D)``: masked mean, masked max, or the first token."""
    if pool == "cls":
        return h[:, 0]
    m = mask.to(h.dtype).unsqueeze(-1)
    if pool == "mean":
        return (h * m).sum(1) / m.sum(1).clamp_min(1)
    if pool == "max":
        return h.masked_fill(m == 0, torch.finfo(h.dtype).min).amax(1)
    raise ParameterError(f"pool must be one of {', '.join(POOLS)}; got {pool!r}.")


def occlusion_variants(
    enc: dict[str, torch.Tensor], spans: Sequence[tuple[int, int]], mode: str, mask_id: int | None
) -> list[dict[str, torch.Tensor]]:
    """The tokenized text ``enc`` (tensors of shape ``(1, T)``) with each span masked or dropped."""
    out = []
    ids = enc["input_ids"]
    T = ids.shape[1]
    for a, b in spans:
        if mode == "mask":
            if mask_id is None:
                raise ParameterError("mode='mask' needs a tokenizer with a mask token; use mode='drop'.")
            v = {k: t.clone() for k, t in enc.items()}
            v["input_ids"][0, a:b] = mask_id
        else:
            keep = torch.ones(T, dtype=torch.bool)
            keep[a:b] = False
            v = {k: (t[:, keep] if t.ndim == 2 and t.shape[1] == T else t.clone()) for k, t in enc.items()}
        out.append(v)
    return out


def _pad(variants: list[dict[str, torch.Tensor]], pad_id: int) -> dict[str, torch.Tensor]:
    T = max(v["input_ids"].shape[1] for v in variants)
    batch: dict[str, torch.Tensor] = {}
    for key in variants[0]:
        fill = pad_id if key == "input_ids" else 0  # attention_mask / token_type_ids pad with 0
        rows = []
        for v in variants:
            t = v[key]
            if t.ndim == 2 and t.shape[1] < T:
                t = torch.cat([t, torch.full((1, T - t.shape[1]), fill, dtype=t.dtype)], dim=1)
            rows.append(t)
        batch[key] = torch.cat(rows, dim=0)
    return batch


@dataclass
class TextOcclusionResult(AnalysisResult):
    """Change of a target when each token (n-gram) of each text is masked or dropped.

    Attributes
    ----------
    texts
        Per text: ``{row, text, label, tokens, spans: [[start, end], ...], changes: [...],
        baseline}`` (``spans`` index ``tokens``; ``changes[i]`` belongs to ``spans[i]``).
    target
        What was measured (``unit``, ``probe`` or ``similarity``) and how.
    """

    texts: list[dict[str, Any]]
    target: dict[str, Any]
    params: dict[str, Any] = field(default_factory=dict)
    classes: list[str] = field(default_factory=list)
    model_info: dict[str, Any] | None = None
    data_spec: str | None = None

    analysis = ANALYSIS

    @property
    def parameters(self) -> dict[str, Any]:
        return dict(self.params)

    @property
    def metrics(self) -> dict[str, Any]:
        ch = np.concatenate([np.asarray(t["changes"], dtype=float) for t in self.texts]) if self.texts else np.zeros(0)
        top = []
        for t in self.texts:
            if t["changes"]:
                i = int(np.argmax(t["changes"]))
                a, b = t["spans"][i]
                top.append(" ".join(t["tokens"][a:b]))
        return {
            "n_texts": len(self.texts), "n_variants": int(ch.size),
            "mean_abs_change": float(np.abs(ch).mean()) if ch.size else None,
            "max_change": float(ch.max()) if ch.size else None,
            "most_important_spans": top[:20],
        }

    def __repr__(self) -> str:
        m = self.metrics
        return f"TextOcclusionResult({self.target.get('kind')}, texts={m['n_texts']}, mean |change|={m['mean_abs_change']:.4g})"

    def figures(self, max_texts: int = 12) -> dict[str, Any]:
        from matplotlib import colormaps
        from matplotlib.figure import Figure

        cmap = colormaps["RdBu_r"]
        shown = self.texts[:max_texts]
        fig = Figure(figsize=(11, 0.32 * len(shown) * 2 + 1.2))
        ax = fig.add_axes((0, 0, 1, 1))
        ax.set_xlim(0, 110)
        ax.set_ylim(2 * len(shown) + 1, -1.2)  # room for the suptitle
        ax.axis("off")
        scale = max((max(abs(c) for c in t["changes"]) for t in shown if t["changes"]), default=1.0) or 1.0
        for r, t in enumerate(shown):
            y = 2 * r + 0.8
            tokens = t["tokens"]
            per_tok = np.zeros(len(tokens))
            cnt = np.zeros(len(tokens))
            for (a, b), c in zip(t["spans"], t["changes"]):
                per_tok[a:b] += c
                cnt[a:b] += 1
            per_tok = np.where(cnt > 0, per_tok / np.maximum(cnt, 1), 0.0)
            lab = self.classes[t["label"]] if 0 <= t["label"] < len(self.classes) else ""
            ax.text(0.5, y - 0.75, f"#{t['row']} {lab}  baseline {t['baseline']:.4g}", fontsize=6.5, family="monospace")
            x = 0.5
            for tok, v in zip(tokens, per_tok):
                ax.text(x, y, tok, fontsize=6.5, va="center", family="monospace",
                        bbox={"boxstyle": "square,pad=0.1", "fc": cmap(0.5 + 0.5 * float(v) / scale), "ec": "none"})
                x += 0.62 * (len(tok) + 1)
                if x > 108:
                    break
        fig.suptitle(f"Text occlusion ({self.params.get('mode')}, {self.params.get('ngram')}-gram): "
                     f"{self.target.get('description', '')}; red = span supported the target")
        return {"occlusion": fig}

    def _write(self, d: Path) -> None:
        """Write ``result.json`` (every text's spans and changes) and ``occlusion.png`` to ``out_dir``. (``save()`` stages the folder.)"""
        entries = []
        for stem, fig in self.figures().items():
            fig.savefig(d / f"{stem}.png", dpi=100, metadata=_PNG_META)
            entries.append({"path": f"{stem}.png", "title": fig._suptitle.get_text() if fig._suptitle else stem, "caption": ""})
        write_result(
            d, ANALYSIS, model=self.model_info, data=self.data_spec, parameters=self.parameters, metrics=self.metrics,
            figures=entries, texts=self.texts, target=self.target, classes=self.classes,
        )

    @classmethod
    def load(cls, out_dir: str | os.PathLike[str]) -> "TextOcclusionResult":
        d = Path(out_dir)
        if not (d / "result.json").is_file():
            raise DataError(f"{d} holds no result.json.")
        doc = read_json(d / "result.json")
        if doc.get("analysis") != ANALYSIS:
            raise DataError(f"{d} holds a {doc.get('analysis')!r} result, not {ANALYSIS!r}.")
        return cls(texts=doc["texts"], target=doc["target"], params=dict(doc.get("parameters") or {}),
                   classes=list(doc.get("classes") or []), model_info=doc.get("model"), data_spec=doc.get("data"))


def _score(pooled: torch.Tensor, unit: int | None, probe: Any, class_index: int | None) -> np.ndarray:
    """Target per row of ``pooled`` (unit value or probe score); ``(N,)``."""
    if unit is not None:
        return pooled[:, unit].double().numpy()
    X = pooled.double().numpy()
    f = getattr(probe, "predict_proba", None) or getattr(probe, "decision_function", None)
    s = np.asarray(f(X) if f is not None else probe(X), dtype=np.float64)
    if s.ndim == 1:  # binary decision_function: score of class 1
        s = np.stack([-s, s], axis=1)
    return s[:, int(class_index)]  # type: ignore[arg-type,index]


def text_occlusion(
    model: nn.Module,
    data: Any,
    layer: str,
    *,
    unit: int | None = None,
    probe: Any = None,
    class_index: int | None = None,
    pool: str = "mean",
    mode: str = "mask",
    ngram: int = 1,
    indices: Sequence[int] | None = None,
    progress: Any = None,
    model_info: dict[str, Any] | None = None,
    data_spec: str | None = None,
) -> TextOcclusionResult:
    """Mask or drop each token / n-gram of each text and measure the change of a target.

    Parameters
    ----------
    model
        A text model with a tokenizer hook (``hf:`` spec); not changed.
    data
        Texts: a list of strings, or labelled texts (``(text, label)`` items).
    layer
        The layer whose token states ``(N, T, D)`` give the target (e.g. ``encoder.layer.5``).
    unit, probe, class_index
        The target (module docstring): a unit of the pooled layer, or a fitted classifier's score
        of ``class_index`` (default: the text's own label); neither: embedding similarity.
    pool
        ``mean`` (masked), ``max`` (masked) or ``cls``.
    mode, ngram
        ``mask`` or ``drop``; span length in tokens.
    indices
        Rows of ``data`` to analyse (default: all).
    """
    from ..capture import capture

    if mode not in ("mask", "drop"):
        raise ParameterError(f"mode must be 'mask' or 'drop'; got {mode!r}.")
    if pool not in POOLS:
        raise ParameterError(f"pool must be one of {', '.join(POOLS)}; got {pool!r}.")
    if isinstance(ngram, bool) or not isinstance(ngram, (int, np.integer)) or ngram < 1:
        raise ParameterError(f"ngram must be an integer >= 1; got {ngram!r}.")
    if unit is not None and probe is not None:
        raise ParameterError("Give unit= or probe=, not both.")
    tokenize = tokenizer_of(model)
    tok = getattr(model, "layerscope_tokenizer", None)
    special = special_ids(tok)
    mask_id = getattr(tok, "mask_token_id", None)
    pad_id = getattr(tok, "pad_token_id", None) or 0
    texts, labels = texts_and_labels(data)
    rows = list(range(len(texts))) if indices is None else [int(i) for i in indices]
    bad = [r for r in rows if not 0 <= r < len(texts)]
    if bad:
        raise ParameterError(f"indices {bad[:5]} are outside the data's {len(texts)} rows.")
    if probe is not None and class_index is None and labels is None:
        raise ParameterError("probe= without class_index= needs labelled texts (the score of each text's own label).")
    kind = "unit" if unit is not None else ("probe" if probe is not None else "similarity")
    out_texts: list[dict[str, Any]] = []
    from ..capture import model_state_guard

    with model_state_guard(model), torch.no_grad():
        model.eval()
        for r in track(progress, rows, len(rows), f"occlusion: {layer}"):
            enc = {k: v for k, v in tokenize([texts[r]]).items() if isinstance(v, torch.Tensor)}
            ids = enc["input_ids"][0].tolist()
            ok = [i for i, t in enumerate(ids) if t not in special and enc["attention_mask"][0, i] > 0]
            spans = [(ok[i], ok[i + ngram - 1] + 1) for i in range(len(ok) - ngram + 1)
                     if ok[i + ngram - 1] - ok[i] == ngram - 1]
            variants = [enc] + occlusion_variants(enc, spans, mode, mask_id)
            batch = _pad(variants, pad_id)
            with capture(model, [layer], stop_early=True) as cap:
                cap.run(**batch)
            h = cap[layer]
            if h.ndim != 3 or h.shape[:2] != batch["input_ids"].shape:
                raise ParameterError(f"Layer {layer!r} gave shape {tuple(h.shape)}, not token states (N, T, D).")
            pooled = pool_tokens(h.float(), batch["attention_mask"], pool)
            if unit is not None and not 0 <= unit < pooled.shape[1]:
                raise ParameterError(f"unit {unit} is outside layer {layer!r}'s {pooled.shape[1]} units.")
            if kind == "similarity":
                e = torch.nn.functional.normalize(pooled.double(), dim=1)
                sim = (e[1:] @ e[0]).numpy()
                changes, baseline = 1.0 - sim, 1.0
            else:
                ci = class_index if class_index is not None else (int(labels[r]) if labels is not None else None)
                s = _score(pooled, unit, probe, ci)
                changes, baseline = s[0] - s[1:], float(s[0])
            out_texts.append({
                "row": int(r), "text": texts[r], "label": int(labels[r]) if labels is not None else -1,
                "tokens": tok.convert_ids_to_tokens(ids) if tok is not None else [str(i) for i in ids],
                "spans": [[a, b] for a, b in spans], "changes": [float(c) for c in changes], "baseline": float(baseline),
            })
    desc = {"unit": f"unit {unit} of {layer} ({pool} pooled)",
            "probe": f"probe score of class {class_index if class_index is not None else 'label'} on {layer} ({pool})",
            "similarity": f"1 - cosine similarity of the {pool}-pooled {layer} embedding"}[kind]
    target = {"kind": kind, "layer": layer, "unit": unit, "class_index": class_index, "pool": pool, "description": desc}
    params = {"layer": layer, "unit": unit, "class_index": class_index, "pool": pool, "mode": mode, "ngram": int(ngram),
              "n_texts": len(rows), "probe": type(probe).__name__ if probe is not None else None}
    return TextOcclusionResult(
        texts=out_texts, target=target, params=params, classes=[str(c) for c in getattr(data, "classes", []) or []],
        model_info=model_info if model_info is not None else model_description(model), data_spec=data_spec,
    )
