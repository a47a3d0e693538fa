"""Neuron projections (Rauber et al. 2017, Sec. 4.3): each *neuron* of a layer is a point.

Two neurons are close when their activations over the same observations are strongly
correlated (either sign): dissimilarity ``1 - |Pearson r|``. The neurons are laid out in 2-D
with t-SNE on this precomputed dissimilarity (openTSNE), or with metric MDS, and coloured by their
power to discriminate one class from the rest: the feature importances of a one-vs-rest
randomized-trees classifier (scikit-learn ``ExtraTreesClassifier``) trained on the layer's
activations. Conv layers are described by their spatially pooled channels (mean over H x W).

``result.json`` written by :meth:`NeuronProjection.save` / ``layerscope neurons``
(``analysis = "neurons"``), next to one figure ``neurons_class<c>.png`` per class::

    parameters: {perplexity (tsne), method, n, n_estimators, random_state, pooled, layer}
    metrics: {n_neurons, n_dead, kl_divergence (tsne) | stress (mds),
              top_neurons: {class index: [neuron indices by importance]}}
    neurons: {x: [...], y: [...], index: [neuron index per point], dead: [indices left out],
              importances: {class name: [one value per point]}}   # same order as top_neurons
    classes: [class names]     # the class indices as text when the data names no classes
    layer: str
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Mapping, Sequence

import numpy as np

from .._progress import ProgressArg, resolve_progress
from ..exceptions import DataError, ParameterError
from ..results import AnalysisResult, short_list
from .metrics import check_finite

if TYPE_CHECKING:
    from matplotlib.figure import Figure
    from torch import nn

__all__ = ["NeuronProjection", "neuron_projection", "project_neurons", "neuron_dissimilarity", "class_importances"]

log = logging.getLogger(__name__)


def _pool(X: np.ndarray) -> tuple[np.ndarray, bool]:
    a = np.asarray(X)
    if a.ndim > 2:  # (n, C, H, W...) -> spatially pooled channels
        return a.reshape(a.shape[0], a.shape[1], -1).mean(axis=2), True
    if a.ndim == 1:
        return a[:, None], False
    return a, False


def neuron_dissimilarity(X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``1 - |Pearson r|`` between the columns (neurons) of ``X`` (n observations x m neurons).

    Constant ("dead") neurons have no correlation; they are left out.

    Returns
    -------
    D : ndarray of shape (m_alive, m_alive), zero diagonal, values in [0, 1]
    alive : ndarray of int, indices of the neurons kept
    """
    A = np.asarray(X, dtype=np.float64)
    sd = A.std(axis=0)
    alive = np.flatnonzero(sd > 1e-12 * max(1.0, float(np.abs(A).max(initial=0.0))))
    Z = (A[:, alive] - A[:, alive].mean(axis=0)) / sd[alive]
    R = (Z.T @ Z) / len(Z)
    D = 1.0 - np.clip(np.abs(R), 0.0, 1.0)
    np.fill_diagonal(D, 0.0)
    return D, alive


def class_importances(
    X: np.ndarray,
    y: np.ndarray,
    classes: Sequence[int] | None = None,
    *,
    n_estimators: int = 100,
    random_state: int | None = 0,
    progress: ProgressArg = None,
) -> dict[int, np.ndarray]:
    """Feature importance of every neuron for class ``c`` vs the rest (one ExtraTrees per class)."""
    from sklearn.ensemble import ExtraTreesClassifier

    cls = list(np.unique(y)) if classes is None else list(classes)
    out: dict[int, np.ndarray] = {}
    for c in resolve_progress(progress)(cls, total=len(cls), desc="one-vs-rest trees"):
        target = (np.asarray(y) == c).astype(int)
        if target.min() == target.max():
            raise DataError(f"class {c} has no observations (or only it has); cannot train class-vs-rest trees.")
        et = ExtraTreesClassifier(n_estimators=n_estimators, random_state=random_state, n_jobs=1)
        et.fit(X, target)
        out[int(c)] = et.feature_importances_.astype(np.float64)
    return out


@dataclass(frozen=True, repr=False)
class NeuronProjection(AnalysisResult):
    """2-D layout of a layer's neurons with per-class discriminative power (``analysis = "neurons"``).

    Attributes
    ----------
    embedding : ndarray of shape (m_alive, 2)
    neuron_index : ndarray of shape (m_alive,)
        Which neuron (column / channel) each point is.
    dead : ndarray
        Constant neurons left out of the layout.
    importances : dict class -> ndarray of shape (m_alive,)
    layer : str or None
    classes : list of str
        Class names, indexed by class (empty: classes are named by their index).
    parameters, metrics : dict
    model : dict or None
        :func:`layerscope.results.model_description` of the model, if known.
    data : str or None
        The data spec, if known.

    Notes
    -----
    :meth:`save` writes the folder of ``layerscope neurons`` (schema in the module docstring);
    :meth:`load` reads it back with the coordinates as stored there (rounded to 4 decimals) and
    the importances rounded to 6.
    """

    embedding: np.ndarray
    neuron_index: np.ndarray
    dead: np.ndarray
    importances: dict[int, np.ndarray]
    layer: str | None = None
    classes: list[str] = field(default_factory=list)
    parameters: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)
    model: dict[str, Any] | None = None
    data: str | None = None

    analysis = "neurons"

    def class_name(self, c: int) -> str:
        """Name of class ``c`` (its index as text when the classes have no names)."""
        return str(self.classes[c]) if c < len(self.classes) else str(c)

    def __repr__(self) -> str:
        return (f"NeuronProjection(layer={self.layer!r}, neurons={len(self.neuron_index)}, dead={len(self.dead)}, "
                f"classes={short_list(self.class_name(c) for c in self.importances)})")

    def to_dict(self) -> dict[str, Any]:
        names = self.classes or [str(c) for c in sorted(self.importances)]
        e = np.round(self.embedding, 4)
        return {
            "layer": self.layer,
            "parameters": self.parameters,
            "metrics": self.metrics,
            "classes": names,
            "neurons": {
                "x": e[:, 0].tolist(), "y": e[:, 1].tolist(),
                "index": self.neuron_index.astype(int).tolist(), "dead": self.dead.astype(int).tolist(),
                "importances": {self.class_name(c): np.round(v, 6).tolist() for c, v in self.importances.items()},
            },
        }

    def _figure_specs(self) -> list[tuple[str, Figure, str, str]]:
        from .plots import plot_neurons

        method = str(self.parameters.get("method", "tsne"))
        specs = []
        for c, imp in self.importances.items():
            name = self.class_name(c)
            fig = plot_neurons(self.embedding, imp, cls_name=name,
                               title=f"{self.layer}: {len(self.neuron_index)} neurons, class {name} vs rest")
            specs.append((f"neurons_class{c}", fig, f"Neurons of {self.layer}, class {name}",
                          "Each point is a neuron (conv: a spatially pooled channel); distance 1 - |Pearson r| "
                          "of activations, laid out with " + method + "; colour = feature importance for this "
                          "class vs the rest (ExtraTrees)."))
        return specs

    def _write(self, d: Path) -> None:
        """Into ``d``: the folder of ``layerscope neurons`` (one PNG per class, ``result.json``)."""
        from ..results import write_figures, write_result

        d.mkdir(parents=True, exist_ok=True)
        figures = write_figures(d, self._figure_specs())
        doc = self.to_dict()
        write_result(d, "neurons", model=self.model, data=self.data, parameters=doc["parameters"] | {"layer": self.layer},
                     metrics=doc["metrics"], figures=figures, classes=doc["classes"], neurons=doc["neurons"],
                     layer=self.layer)

    @classmethod
    def load(cls, out_dir: str | os.PathLike[str]) -> "NeuronProjection":
        """Read a folder written by :meth:`save` (or ``layerscope neurons``)."""
        from ..results import read_result

        doc = read_result(out_dir)
        if doc.get("analysis") != "neurons":
            raise DataError(f"{out_dir} holds a {doc.get('analysis')!r} result, not a neuron projection.")
        nd = doc["neurons"]
        metrics = dict(doc.get("metrics") or {})
        # importances are keyed by class name, in the order of metrics["top_neurons"] (keyed by index)
        order = [int(c) for c in metrics.get("top_neurons", {})]
        imps = {c: np.asarray(v, dtype=np.float64) for c, v in zip(order, nd["importances"].values())}
        classes = [str(c) for c in doc.get("classes") or []]
        if classes == [str(c) for c in sorted(imps)]:
            classes = []  # the names were written as the class indices: keep them unnamed
        params = dict(doc.get("parameters") or {})
        params.pop("layer", None)
        return cls(embedding=np.stack([np.asarray(nd["x"], dtype=np.float64), np.asarray(nd["y"], dtype=np.float64)], axis=1),
                   neuron_index=np.asarray(nd["index"], dtype=np.int64), dead=np.asarray(nd["dead"], dtype=np.int64),
                   importances=imps, layer=doc.get("layer"), classes=classes, parameters=params, metrics=metrics,
                   model=doc.get("model"), data=doc.get("data"))


def neuron_projection(
    X: np.ndarray,
    labels: np.ndarray,
    *,
    classes: Sequence[int] | None = None,
    class_names: Sequence[str] | None = None,
    method: Literal["tsne", "mds"] = "tsne",
    perplexity: float | None = None,
    n_estimators: int = 100,
    random_state: int | None = 0,
    layer: str | None = None,
    progress: ProgressArg = None,
) -> NeuronProjection:
    """Project the neurons of a layer (Rauber et al. 2017) and score them per class.

    Parameters
    ----------
    X : ndarray of shape (n, m) or (n, C, H, W)
        Activations of ``n`` observations; conv maps are spatially mean-pooled per channel.
    labels : ndarray of shape (n,)
    classes : list of int, optional
        Classes to score (default: all).
    class_names : list of str, optional
    method : {"tsne", "mds"}
        t-SNE on the precomputed dissimilarity (openTSNE) or metric MDS (scikit-learn).
    perplexity : float, optional
        Default ``min(30, (m_alive - 1) / 3)``.
    n_estimators : int, default 100
        Trees per class-vs-rest ExtraTrees classifier.
    random_state : int or None
    layer : str, optional
    progress : None, bool or tracker
        ``True``: ``tqdm.auto``; or any tqdm-compatible callable (``total=``, ``desc=`` keywords).

    Returns
    -------
    NeuronProjection
    """
    A, pooled = _pool(X)
    check_finite(A, "activations")
    y = np.asarray(labels)
    if y.shape != (len(A),):
        raise DataError(f"expected one label per observation ({len(A)}), got shape {y.shape}.")
    if len(np.unique(y)) < 2:
        raise DataError("neuron importances need observations of at least two classes.")
    if len(A) < 3:
        raise DataError(f"neuron correlations need at least 3 observations, got {len(A)}.")
    D, alive = neuron_dissimilarity(A)
    m = len(alive)
    if m < 4:
        raise DataError(f"layer has only {m} non-constant neuron(s); a neuron projection needs at least 4.")
    dead = np.setdiff1d(np.arange(A.shape[1]), alive)
    info: dict[str, Any] = {}
    if method == "tsne":
        from openTSNE import TSNE
        from openTSNE.affinity import PerplexityBasedNN

        perp = float(perplexity) if perplexity is not None else float(min(30.0, (m - 1) / 3.0))
        if perp <= 0 or m - 1 < 3 * perp:
            raise ParameterError(
                f"perplexity {perp:g} is too large for {m} neurons (needs more than 3 x perplexity); "
                f"use at most {(m - 1) / 3:.1f}."
            )
        aff = PerplexityBasedNN(D, perplexity=perp, metric="precomputed", method="exact", random_state=random_state)
        tsne = TSNE(n_components=2, random_state=random_state, n_jobs=1)
        emb = tsne.prepare_initial(affinities=aff, initialization="spectral")
        emb = emb.optimize(n_iter=250, exaggeration=12, momentum=0.5)
        emb = emb.optimize(n_iter=500, momentum=0.8)
        info["kl_divergence"] = float(emb.kl_divergence)
        embedding = np.asarray(emb, dtype=np.float64)
        params: dict[str, Any] = {"perplexity": perp}
    elif method == "mds":
        from sklearn.manifold import MDS

        try:  # scikit-learn >= 1.8 names the input kind ``metric`` and wants ``init`` spelled out
            mds = MDS(n_components=2, metric="precomputed", init="classical_mds", random_state=random_state)
        except TypeError:  # older scikit-learn
            mds = MDS(n_components=2, dissimilarity="precomputed", random_state=random_state, n_init=1)
        embedding = mds.fit_transform(D)
        info["stress"] = float(mds.stress_)
        params = {}
    else:
        raise ParameterError(f"unknown neuron layout method {method!r}; expected 'tsne' or 'mds'.")
    imps = class_importances(A, y, classes, n_estimators=n_estimators, random_state=random_state, progress=progress)
    # importances are over all neurons (dead ones get ~0); keep the alive ones, in layout order
    imps = {c: v[alive] for c, v in imps.items()}
    top = {str(c): alive[np.argsort(-v)[:10]].astype(int).tolist() for c, v in imps.items()}
    params.update({"method": method, "n": int(len(A)), "n_estimators": n_estimators, "random_state": random_state,
                   "pooled": pooled})
    return NeuronProjection(
        embedding=embedding, neuron_index=alive, dead=dead, importances=imps, layer=layer,
        classes=list(class_names) if class_names is not None else [],
        parameters=params,
        metrics={"n_neurons": int(A.shape[1]), "n_dead": int(len(dead)), **info, "top_neurons": top},
    )


def project_neurons(
    model: nn.Module,
    dataset: Any,
    layer: str,
    *,
    n: int | None = 2000,
    classes: Sequence[int] | None = None,
    class_names: Sequence[str] | None = None,
    method: Literal["tsne", "mds"] = "tsne",
    perplexity: float | None = None,
    n_estimators: int = 100,
    random_state: int | None = 0,
    batch_size: int = 256,
    layouts: Mapping[str, str] | None = None,
    model_info: dict[str, Any] | None = None,
    data_spec: str | None = None,
    progress: ProgressArg = None,
) -> NeuronProjection:
    """Neuron projection of one layer of ``model`` over a seeded stratified subset of ``dataset``
    (what ``layerscope neurons`` runs): activations are captured with conv maps mean-pooled per
    channel and sequences ``(N, T, D)`` mean-pooled over their tokens (masked; the neurons are the
    D features), then passed to :func:`neuron_projection`.

    Parameters
    ----------
    model : nn.Module
        Left unchanged.
    dataset : a layerscope dataset with class labels
    layer : str
        Dotted layer name.
    n : int or None, default 2000
        Size of the seeded stratified subset (all rows if None).
    classes : list of int, optional
        Classes to score (default: all).
    class_names : list of str, optional
        Default: ``dataset.classes``, else ``model.classes``.
    method, perplexity, n_estimators, random_state
        See :func:`neuron_projection`; ``random_state`` also seeds the subset.
    batch_size : int
    layouts : dict layer -> {"spatial", "sequence", "flat"}, optional
        The layout of a layer whose output ``(N, A, B)`` layerscope cannot tell (a conv1d map or a
        sequence; see :func:`layerscope.seam.layout_of`); the layouts used are recorded in
        ``parameters["layouts"]``.
    model_info : dict, optional
        Description of the model for ``result.json`` (default: :func:`layerscope.results.model_description`).
    data_spec : str, optional
        The data spec, recorded in ``result.json``.
    progress : None, bool or tracker
        ``True``: ``tqdm.auto``; or any tqdm-compatible callable, called as
        ``progress(iterable, total=n, desc="...")``.

    Returns
    -------
    NeuronProjection
    """
    from ..capture import collect_activations
    from ..results import model_description
    from ..seam import parse_layer_spec
    from .analysis import select_observations

    parse_layer_spec(model, layer)  # an unknown layer fails before any work
    if class_names is None:
        found = getattr(dataset, "classes", None) or getattr(model, "classes", None)
        class_names = [str(c) for c in found] if found else None
    idx = select_observations(dataset, n, random_state)
    acts = collect_activations(model, dataset, [layer], batch_size=batch_size, indices=idx, reduce="mean",
                               layouts=layouts, progress=progress)
    res = neuron_projection(acts.arrays[layer], acts.labels, classes=classes, class_names=class_names, method=method,
                            perplexity=perplexity, n_estimators=n_estimators, random_state=random_state, layer=layer,
                            progress=progress)
    params = {**res.parameters, "layouts": acts.meta.get("layouts")}
    return replace(res, parameters=params, model=model_info if model_info is not None else model_description(model),
                   data=data_spec)
