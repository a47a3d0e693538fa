"""Per-layer separability of a text model (Rauber et al. 2017, asked of a transformer).

For every layer's token states, pooled per text by **masked mean** (the mean over the tokens the
attention mask keeps, ``[CLS]`` and ``[SEP]`` included, as sentence-transformers pools) and by the
**first token** (``[CLS]``), this measures

* the held-out accuracy of a linear probe (:func:`layerscope.similarity.linear_probe`: standardised
  features, logistic regression, stratified 75/25 split, seeded);
* the neighborhood hit (NH, k = 6) of a 2-D projection (t-SNE by default) and in the activation
  space itself (:func:`layerscope.projection.project`);

for the model as given ("pretrained") and, by default, for the same architecture with freshly
initialised weights ("before training", :func:`~layerscope.text._common.reinitialized_copy`).

**Where the classes separate most** is stated per pooling as the layer with the highest probe
accuracy of the pretrained model (ties: the earlier layer); the layers of highest NH (2-D and
activation space) are reported next to it.

Token states come from :func:`layerscope.capture.collect_activations` (one pass per model; both
poolings are computed inside the hook from the same output, see
:func:`layerscope.seam.reduce_output`).
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Literal, Sequence

import numpy as np
import torch
from torch import nn

from .._io import read_json
from .._stream import captured, check_storage, read_layer, storage_params
from ..exceptions import DataError, ParameterError
from ..results import AnalysisResult, model_description, write_result
from ._common import default_text_layers, reinitialized_copy, text_adapter, texts_and_labels, track

__all__ = ["TextSeparabilityResult", "text_separability", "POOLINGS"]

POOLINGS = ("mean", "cls")
ANALYSIS = "text_separability"
_PNG_META = {"Software": None}


def _key(variant: str, pooling: str, layer: str) -> str:
    return f"{variant}|{pooling}|{layer}"


@dataclass
class TextSeparabilityResult(AnalysisResult):
    """Per-layer probe accuracy and NH of pooled token states, for the model and its untrained twin.

    Attributes
    ----------
    layers, classes, variants, poolings
        What was measured; ``variants`` is ``["pretrained"]`` or ``["pretrained", "reinitialized"]``.
    table
        One row per (variant, pooling, layer): ``probe_accuracy``, ``probe_chance``,
        ``probe_train_accuracy``, ``nh_2d``, ``nh_activation``.
    embeddings
        ``{"variant|pooling|layer": (n, 2) array}``: the 2-D projections.
    labels, sample_ids
        Class and dataset row of each text.
    """

    layers: list[str]
    classes: list[str]
    variants: list[str]
    poolings: list[str]
    table: list[dict[str, Any]]
    embeddings: dict[str, np.ndarray]
    labels: np.ndarray
    sample_ids: np.ndarray
    params: dict[str, Any] = field(default_factory=dict)
    model_info: dict[str, Any] | None = None
    data_spec: str | None = None

    analysis = ANALYSIS
    key_figure = "separability"

    # -- numbers -------------------------------------------------------------------------
    def value(self, variant: str, pooling: str, layer: str, metric: str) -> float:
        for r in self.table:
            if (r["variant"], r["pooling"], r["layer"]) == (variant, pooling, layer):
                return float(r[metric])
        raise KeyError(f"no row for {variant}/{pooling}/{layer}")

    def series(self, variant: str, pooling: str, metric: str) -> list[float]:
        return [self.value(variant, pooling, layer, metric) for layer in self.layers]

    def best_layer(self, pooling: str = "mean", metric: str = "probe_accuracy", variant: str = "pretrained") -> str:
        """The layer with the highest ``metric`` (ties: the earlier layer)."""
        s = self.series(variant, pooling, metric)
        return self.layers[int(np.argmax(s))]

    @property
    def parameters(self) -> dict[str, Any]:
        return dict(self.params)

    @property
    def metrics(self) -> dict[str, Any]:
        counts = np.bincount(self.labels, minlength=len(self.classes)).astype(float)
        p = counts / max(counts.sum(), 1.0)
        out: dict[str, Any] = {
            "n": int(len(self.labels)),
            "n_classes": int(len(self.classes)),
            "nh_chance": float((p**2).sum()),
            "probe_chance": float(self.table[0]["probe_chance"]) if self.table else None,
        }
        for pooling in self.poolings:
            out[f"separates_most_{pooling}"] = self.best_layer(pooling)
            out[f"best_probe_accuracy_{pooling}"] = max(self.series("pretrained", pooling, "probe_accuracy"))
        out["best_layer"] = {
            pooling: {m: self.best_layer(pooling, m) for m in ("probe_accuracy", "nh_2d", "nh_activation")}
            for pooling in self.poolings
        }
        out["per_layer"] = {
            v: {
                pooling: {
                    layer: {m: self.value(v, pooling, layer, m) for m in ("probe_accuracy", "nh_2d", "nh_activation")}
                    for layer in self.layers
                }
                for pooling in self.poolings
            }
            for v in self.variants
        }
        return out

    def __repr__(self) -> str:
        best = ", ".join(f"{p}: {self.best_layer(p)}" for p in self.poolings)
        return (
            f"TextSeparabilityResult(n={len(self.labels)}, classes={len(self.classes)}, layers={len(self.layers)}, "
            f"variants={self.variants}, separates most at {best})"
        )

    # -- figures -------------------------------------------------------------------------
    def figures(self) -> dict[str, Any]:
        from matplotlib.figure import Figure

        figs: dict[str, Any] = {}
        fig = Figure(figsize=(13, 3.8))
        metrics = [("probe_accuracy", "linear probe accuracy"), ("nh_2d", "NH, 2-D projection"),
                   ("nh_activation", "NH, activation space")]
        x = np.arange(len(self.layers))
        for i, (m, title) in enumerate(metrics):
            ax = fig.add_subplot(1, 3, i + 1)
            for v in self.variants:
                for pooling in self.poolings:
                    ax.plot(x, self.series(v, pooling, m), marker="o", ms=3,
                            ls="-" if v == "pretrained" else "--", label=f"{v}, {pooling}")
            if m == "probe_accuracy" and self.table:
                ax.axhline(float(self.table[0]["probe_chance"]), color="grey", lw=0.8, ls=":", label="chance")
            else:
                ax.axhline(self.metrics["nh_chance"], color="grey", lw=0.8, ls=":", label="chance")
            ax.set_xticks(x)
            ax.set_xticklabels([_short(layer) for layer in self.layers], rotation=45, ha="right", fontsize=7)
            ax.set_ylim(0, 1.02)
            ax.set_title(title, fontsize=9)
            if i == 0:
                ax.legend(fontsize=7)
        fig.suptitle(f"Per-layer separability of {len(self.classes)} classes ({len(self.labels)} texts)")
        fig.tight_layout()
        figs["separability"] = fig
        cmap = _cmap(len(self.classes))
        for v in self.variants:
            for pooling in self.poolings:
                cols = min(4, len(self.layers))
                rows = int(np.ceil(len(self.layers) / cols))
                g = Figure(figsize=(3.2 * cols, 3.2 * rows + 0.6))
                for j, layer in enumerate(self.layers):
                    ax = g.add_subplot(rows, cols, j + 1)
                    e = self.embeddings[_key(v, pooling, layer)]
                    ax.scatter(e[:, 0], e[:, 1], c=self.labels, cmap=cmap, vmin=-0.5, vmax=len(self.classes) - 0.5,
                               s=3, linewidths=0)
                    ax.set_title(f"{_short(layer)}  NH {self.value(v, pooling, layer, 'nh_2d'):.2f}", fontsize=8)
                    ax.set_xticks([])
                    ax.set_yticks([])
                handles = [
                    g.axes[0].scatter([], [], color=cmap(c), s=12, label=name.removeprefix("noun."))
                    for c, name in enumerate(self.classes)
                ]
                g.legend(handles=handles, loc="lower center", ncol=min(len(self.classes), 10), fontsize=7, frameon=False)
                g.suptitle(f"{self.params.get('method', 'tsne')} of token states, {pooling} pooling, {v}")
                figs[f"projections_{v}_{pooling}"] = g
        return figs

    # -- files ---------------------------------------------------------------------------
    def _write(self, d: Path) -> None:
        """Write ``result.json``, the figures (PNG) and ``arrays.npz`` (projections, labels) to ``out_dir``. (``save()`` stages the folder.)"""
        entries = []
        for stem, fig in self.figures().items():
            fig.savefig(d / f"{stem}.png", dpi=100, metadata=_PNG_META)
            entries.append({"path": f"{stem}.png", "title": fig._suptitle.get_text() if fig._suptitle else stem, "caption": ""})
        arrays = {f"embedding::{k}": np.asarray(v) for k, v in self.embeddings.items()}
        arrays["labels"] = np.asarray(self.labels)
        arrays["sample_ids"] = np.asarray(self.sample_ids)
        with open(d / "arrays.npz", "wb") as fh:
            np.savez(fh, **arrays)  # type: ignore[arg-type]
        write_result(
            d, ANALYSIS, model=self.model_info, data=self.data_spec, parameters=self.parameters, metrics=self.metrics,
            figures=entries, layers=self.layers, classes=self.classes, variants=self.variants, poolings=self.poolings,
            table=self.table,
        )

    @classmethod
    def load(cls, out_dir: str | os.PathLike[str]) -> "TextSeparabilityResult":
        d = Path(out_dir)
        if not (d / "result.json").is_file() or not (d / "arrays.npz").is_file():
            raise DataError(f"{d} holds no saved text separability result (result.json + arrays.npz expected).")
        doc = read_json(d / "result.json")
        if doc.get("analysis") != ANALYSIS:
            raise DataError(f"{d} holds a {doc.get('analysis')!r} result, not {ANALYSIS!r}.")
        with np.load(d / "arrays.npz", allow_pickle=False) as z:
            arrs = {k: z[k] for k in z.files}
        return cls(
            layers=list(doc["layers"]), classes=list(doc["classes"]), variants=list(doc["variants"]),
            poolings=list(doc["poolings"]), table=list(doc["table"]),
            embeddings={k.removeprefix("embedding::"): v for k, v in arrs.items() if k.startswith("embedding::")},
            labels=arrs["labels"], sample_ids=arrs["sample_ids"], params=dict(doc.get("parameters") or {}),
            model_info=doc.get("model"), data_spec=doc.get("data"),
        )


def _short(layer: str) -> str:
    return layer.replace("encoder.layer.", "layer ").replace("embeddings", "emb")


def _cmap(n: int) -> Any:
    from matplotlib import colormaps

    return colormaps["tab10" if n <= 10 else "tab20"]


def _pooling_reducer(how: list[str]) -> Any:
    from ..seam import reduce_output

    def both(t: torch.Tensor, layout: str, mask: torch.Tensor | None) -> torch.Tensor:
        if layout != "sequence" or t.ndim != 3:
            raise ParameterError(f"Text pooling needs (N, T, D) token states; a layer gave {tuple(t.shape)} ({layout}).")
        return torch.cat([reduce_output(t, "cls" if p == "cls" else "mean", layout, mask) for p in how], dim=1)

    return both


def _check_poolings(poolings: Sequence[str]) -> list[str]:
    bad = [p for p in poolings if p not in POOLINGS]
    if bad or not poolings:
        raise ParameterError(f"poolings must be a non-empty subset of {POOLINGS}; got {list(poolings)}.")
    return list(poolings)


@contextlib.contextmanager
def _pooled_capture(
    model: nn.Module, data: Any, layers: Sequence[str], how: list[str], *, indices: np.ndarray | None,
    batch_size: int, progress: Any, memory_budget: int | None, store: str | None,
) -> Iterator[Any]:
    """The capture of every layer's pooled states (``(n, len(how) * D)`` per layer), spilled if asked."""
    with captured(
        model, data, list(layers), batch_size=batch_size, reduce=_pooling_reducer(how),
        layouts={layer: "sequence" for layer in layers}, indices=indices, adapter=text_adapter, progress=progress,
        memory_budget=memory_budget, store=store,
    ) as acts:
        yield acts


def _split_poolings(a: np.ndarray, how: list[str]) -> dict[str, np.ndarray]:
    d = a.shape[1] // len(how)
    return {p: a[:, i * d : (i + 1) * d] for i, p in enumerate(how)}


def pooled_states(
    model: nn.Module,
    data: Any,
    layers: Sequence[str],
    *,
    poolings: Sequence[str] = POOLINGS,
    indices: np.ndarray | None = None,
    batch_size: int = 64,
    progress: Any = None,
) -> tuple[dict[str, dict[str, np.ndarray]], np.ndarray, np.ndarray]:
    """``{pooling: {layer: (n, D)}}``, labels and sample ids, from one pass of ``data`` through ``model``.

    Pooling is done inside the capture hook by :func:`layerscope.seam.reduce_output` (masked mean
    ``"mean"``; ``"cls"`` = first token), so full token states are never stored. Every layer is
    held in RAM; :func:`text_separability` with ``memory_budget``/``store`` reads one at a time.
    """
    how = _check_poolings(poolings)
    with _pooled_capture(model, data, layers, how, indices=indices, batch_size=batch_size, progress=progress,
                         memory_budget=None, store=None) as acts:
        out: dict[str, dict[str, np.ndarray]] = {p: {} for p in how}
        for layer in layers:
            for p, a in _split_poolings(read_layer(acts[layer]), how).items():
                out[p][layer] = a
        return out, np.asarray(acts.labels), np.asarray(acts.sample_ids)


def text_separability(
    model: nn.Module,
    data: Any,
    layers: Sequence[str] | None = None,
    *,
    poolings: Sequence[str] = POOLINGS,
    before_training: bool | nn.Module = True,
    n: int | None = None,
    method: str = "tsne",
    k: int = 6,
    perplexity: float = 30.0,
    test_size: float = 0.25,
    C: float = 1.0,
    seed: int = 0,
    batch_size: int = 64,
    progress: Any = None,
    model_info: dict[str, Any] | None = None,
    data_spec: str | None = None,
    memory_budget: int | None = None,
    store: Literal["npy", "zarr"] | None = None,
) -> TextSeparabilityResult:
    """Probe accuracy and NH of every layer's pooled token states, trained vs untrained.

    Parameters
    ----------
    model
        A text model with a tokenizer hook (``hf:`` spec); not changed.
    data
        Labelled texts: a :class:`~layerscope.data.text.TextDataset` (``wordnet``, ``text:FILE``) or
        any dataset of ``(text, label)`` items.
    layers
        Layers whose outputs are token states ``(N, T, D)``; default: embeddings and every encoder
        block (:func:`~layerscope.text._common.default_text_layers`).
    poolings
        ``"mean"`` (masked mean over tokens) and/or ``"cls"`` (first token).
    before_training
        ``True``: also measure a re-initialised copy (seeded with ``seed``); an ``nn.Module``: that
        model as the untrained one; ``False``: the given model only.
    n
        Use a stratified, seeded subset of ``n`` texts (default: all).
    method
        2-D projection: ``"tsne"`` (openTSNE), ``"umap"`` or ``"pca"``.
    k, perplexity, test_size, C, seed
        NH neighbours; t-SNE perplexity; probe held-out fraction and regularisation; seed of subset, probe split,
        projection and re-initialisation.
    batch_size, progress
        Texts per forward pass; a tqdm-compatible callable (keywords ``total``, ``desc``).
    model_info, data_spec
        Descriptions written to ``result.json`` (default: from the model; none).
    memory_budget, store
        Passed to :func:`~layerscope.capture.collect_activations`: bytes of pooled layers kept in
        RAM (the others go to ``.npy`` files), or ``"zarr"`` (a chunked store), in a temporary
        folder removed at the end. The layers are then read back one at a time (the probe and the
        projection need a layer's whole ``(n, D)`` matrix), so memory holds one layer's pooled
        states, not all of them. The numbers are the same as without (tested). Without either,
        every layer is held in RAM (the default).
    """
    from ..data.base import stratified_indices
    from ..projection import project
    from ..similarity import linear_probe

    _, labels_all = texts_and_labels(data)
    if labels_all is None:
        raise DataError("Separability needs labelled texts ((text, label) items); the data has no labels.")
    if len(np.unique(labels_all)) < 2:
        raise DataError("Separability needs at least two classes in the data.")
    classes = [str(c) for c in getattr(data, "classes", None) or range(int(labels_all.max()) + 1)]
    layers = list(layers) if layers else default_text_layers(model)
    how = _check_poolings(poolings)
    check_storage(memory_budget, store)
    indices = None
    if n is not None:
        if n < 2 * len(classes):
            raise ParameterError(f"n={n} is too small for {len(classes)} classes; use at least {2 * len(classes)}.")
        indices = stratified_indices(labels_all, int(n), random_state=seed)
    variants: list[tuple[str, nn.Module]] = [("pretrained", model)]
    if before_training is True:
        variants.append(("reinitialized", reinitialized_copy(model, seed)))
    elif isinstance(before_training, nn.Module):
        variants.append(("reinitialized", before_training))
    table: list[dict[str, Any]] = []
    embeddings: dict[str, np.ndarray] = {}
    labels = sample_ids = np.zeros(0, dtype=np.int64)
    rows: dict[tuple[str, str, str], dict[str, Any]] = {}
    for vname, m in variants:
        with _pooled_capture(
            m, data, layers, how, indices=indices, batch_size=batch_size, memory_budget=memory_budget, store=store,
            progress=None if progress in (None, False) else (lambda it, total=None, desc="", _v=vname: track(
                progress, it, total, f"{_v}: forward")),
        ) as acts:
            labels, sample_ids = np.asarray(acts.labels), np.asarray(acts.sample_ids)
            jobs = [(p, layer) for layer in layers for p in how]  # layer by layer: one layer read at a time
            feats: dict[str, np.ndarray] = {}
            for p, layer in track(progress, jobs, len(jobs), f"{vname}: probes and projections"):
                if p == how[0]:
                    feats = _split_poolings(read_layer(acts[layer]), how)
                X = feats[p]
                if not np.all(np.isfinite(X)):
                    raise DataError(f"{vname} {layer} ({p} pooling) has NaN/inf activations.")
                pr = linear_probe(X, labels, test_size=test_size, random_state=seed, C=C, layer=layer)
                proj = project(
                    X, labels, method=method, random_state=seed, k=k, nh_original=True, layer=layer,  # type: ignore[arg-type]
                    perplexity=perplexity,
                )
                embeddings[_key(vname, p, layer)] = np.asarray(proj.embedding, dtype=np.float32)
                rows[(vname, p, layer)] = {
                    "variant": vname, "pooling": p, "layer": layer, "probe_accuracy": pr.accuracy,
                    "probe_chance": pr.chance, "probe_train_accuracy": pr.train_accuracy,
                    "nh_2d": float(proj.metrics["nh"]), "nh_activation": float(proj.metrics["nh_original"]),
                }
            feats = {}
        # the table keeps its order: variant, then pooling, then layer
        table.extend(rows[(vname, p, layer)] for p in how for layer in layers)
    embeddings = {_key(v, p, layer): embeddings[_key(v, p, layer)] for v, _ in variants for p in how for layer in layers}
    params = {
        "layers": layers, "poolings": list(poolings), "before_training": "reinitialized copy" if before_training is True
        else ("given model" if isinstance(before_training, nn.Module) else "none"), "n": None if n is None else int(n),
        "method": method, "k": k, "perplexity": perplexity, "test_size": test_size, "C": C, "seed": seed, "batch_size": batch_size,
        **storage_params(memory_budget, store),
        "pooling_rule": "mean: masked mean over tokens with attention_mask 1 ([CLS]/[SEP] included); cls: first token",
        "best_layer_rule": "highest held-out probe accuracy of the pretrained model (ties: earlier layer)",
    }
    return TextSeparabilityResult(
        layers=layers, classes=classes, variants=[v for v, _ in variants], poolings=list(poolings), table=table,
        embeddings=embeddings, labels=np.asarray(labels, dtype=np.int64), sample_ids=np.asarray(sample_ids, dtype=np.int64),
        params=params, model_info=model_info if model_info is not None else model_description(model), data_spec=data_spec,
    )
