"""Projections of a model's layers over a dataset, per checkpoint: the comparisons of Rauber et
al. (2017) — before vs after training, first vs last layer, every layer side by side, across
epochs — with NH (2-D and in activation space) and AC per (checkpoint, layer).

``result.json`` written by ``layerscope project`` (``analysis = "projection"``)::

    parameters: {layers, checkpoints, method, n, k, random_state, aligned, align_over, reduce, ...}
    metrics: {
      "table": [{"checkpoint": int|null, "layer": str, "nh": float, "nh_original": float,
                 "ac": float, "seconds": float}, ...],
      "nh": {"<checkpoint or 'model'>": {layer: nh}},  "nh_original": {...},
      "ac": {"<checkpoint or 'model'>": ac}
    }
    layers: [str], checkpoints: [int|null], classes: [str]
    projections: [{layer, checkpoint, method, parameters, metrics,
                   x: [n floats], y: [n floats], labels: [n ints], predictions: [n ints],
                   sample_ids: [n ints]}, ...]             # one per (checkpoint, layer)
    sequences: [{axis: "layers"|"epochs", aligned, displacement: [mean move between frames, in frame spreads],
                 frames: [indices into projections, in sequence order]}]
    figures: [{path, title, caption}]
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Mapping, Sequence

import numpy as np
from torch import nn

from .._progress import ProgressArg, resolve_progress
from ..exceptions import DataError, ParameterError
from ..results import AnalysisResult, short_list
from .projectors import KnnGraph, Method, Projection
from .sequence import ProjectionSequence, project_sequence

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = [
    "ProjectionStudy",
    "project_model",
    "resolve_projection_layers",
    "models_from_run",
    "dataset_labels",
    "display_images",
    "select_observations",
]

log = logging.getLogger(__name__)


def dataset_labels(dataset: Any) -> np.ndarray:
    """Class labels of a dataset as an int array: its ``y`` / ``labels``, else the labels its items
    carry by the input rule of :mod:`layerscope.seam` (``(x, y)`` tuples, a ``"labels"`` key)."""
    if hasattr(dataset, "y"):
        return np.asarray(dataset.y).astype(np.int64)
    if hasattr(dataset, "labels"):
        return np.asarray(dataset.labels).astype(np.int64)
    from ..seam import iter_batches

    parts = []
    for b in iter_batches(dataset, 512):
        if b.labels is None:
            raise DataError(
                f"{type(dataset).__name__} yields no class labels, and a stratified subset needs them; "
                "pass n=None (CLI: --n larger than the data) to use every sample, or give the data labels."
            )
        parts.append(np.asarray(b.labels.cpu())[: b.n])
    return np.concatenate(parts).astype(np.int64)


def select_observations(dataset: Any, n: int | None, random_state: int | None = 0) -> np.ndarray:
    """A seeded, stratified subset of ``n`` dataset rows (all rows, in order, if ``n`` is None or
    not smaller than the data; the labels are then not needed)."""
    from ..data import stratified_indices
    from ..seam import data_length

    if n is not None and n < 2:
        raise ParameterError(f"n must be at least 2 observations, got {n}.")
    length = data_length(dataset)
    if length is not None and (n is None or n >= length):
        return np.arange(length)
    y = dataset_labels(dataset)
    if n is None or n >= len(y):
        return np.arange(len(y))
    return np.asarray(stratified_indices(y, n, random_state))


def display_images(dataset: Any, indices: np.ndarray) -> np.ndarray | None:
    """Images of ``indices`` in display range, ``(n, H, W)`` or ``(n, H, W, 3)``, for thumbnails."""
    x = getattr(dataset, "x", None)
    if x is None or getattr(x, "ndim", 0) != 4:
        return None
    norm = getattr(dataset, "normalization", None)
    a = norm.denormalize(x[indices]) if norm is not None else np.asarray(x[indices])
    a = np.clip(a, 0.0, 1.0)
    if a.shape[1] == 1:
        return a[:, 0]
    if a.shape[1] == 3:
        return np.transpose(a, (0, 2, 3, 1))
    return None


def resolve_projection_layers(model: nn.Module, layers: str | Sequence[str] | None) -> list[str]:
    """``"all"``/None: the model's ``hidden_layers`` (every leaf layer if it has none); else the
    layer specs given (dotted names, optionally with the selectors of :mod:`layerscope.seam`:
    ``#k``, ``[i]``, ``:key``), each checked against the model."""
    from ..exceptions import LayerNotFoundError
    from ..layers import layer_names
    from ..seam import parse_layer_spec

    if layers is None or layers == "all" or list(layers) == ["all"]:
        hidden = list(getattr(model, "hidden_layers", []) or [])
        if hidden:
            return hidden
        return list(layer_names(model))
    names = [layers] if isinstance(layers, str) else list(layers)
    if not names:
        raise LayerNotFoundError("No layer names given; pass at least one layer name.")
    for name in names:
        parse_layer_spec(model, name)  # raises LayerNotFoundError with suggestions
    return names


def models_from_run(run_dir: str | os.PathLike[str], epochs: Sequence[int | str] | None = None) -> dict[int, nn.Module]:
    """Models of a ``layerscope train`` run at the given epochs (``"first"``/``"last"`` allowed; default both)."""
    from ..loading import load_run_model
    from ..training import list_checkpoints

    cps = [e for e, _ in list_checkpoints(run_dir)]
    if not cps:
        raise DataError(f"run {run_dir} has no checkpoints yet.")
    wanted: list[int] = []
    for e in (epochs if epochs is not None else ["first", "last"]):
        s = str(e).strip().lower()
        if s == "last":
            ep = cps[-1]
        elif s == "first":
            ep = cps[0]
        else:
            try:
                ep = int(s)
            except ValueError:
                raise ParameterError(f"checkpoint {e!r} is not an epoch number, 'first' or 'last'.") from None
            if ep not in cps:
                raise ParameterError(f"run {run_dir} has no checkpoint at epoch {ep}; it has epochs {cps}.")
        if ep not in wanted:
            wanted.append(ep)
    return {ep: load_run_model(run_dir, ep) for ep in wanted}


@dataclass(frozen=True, repr=False)
class ProjectionStudy(AnalysisResult):
    """Projections of several layers at several checkpoints of the same observations
    (the result of :func:`project_model`; ``analysis = "projection"``).

    Attributes
    ----------
    projections : list of Projection
        Checkpoint-major order: all layers of the first checkpoint, then the next...
    layers : list of str
    checkpoints : list of int or None
        ``[None]`` for a single model that is not from a training run.
    sequences : list of ProjectionSequence
        The chains the projections were computed in (over layers or over epochs).
    indices : ndarray
        Dataset rows of the observations.
    parameters : dict
        Every knob used.
    model : dict or None
        :func:`layerscope.results.model_description` of the (first) model.
    data : str or None
        The data spec, if known.
    classes : list of str or None
        Class names for legends.
    images : ndarray or None
        Display-range images of the observations (same order), for outlier thumbnails; not saved.
    n_thumbnails : int
        Thumbnails of outliers in the single-layer figures.

    Notes
    -----
    :meth:`save` writes the folder of ``layerscope project`` (schema in the module docstring);
    :meth:`load` reads it back, with the 2-D coordinates as stored there (rounded to 4
    decimals), no thumbnail images and sequences rebuilt from their frame indices.
    """

    projections: list[Projection]
    layers: list[str]
    checkpoints: list[int | None]
    sequences: list[ProjectionSequence] = field(default_factory=list)
    indices: np.ndarray | None = None
    parameters: dict[str, Any] = field(default_factory=dict)
    model: dict[str, Any] | None = None
    data: str | None = None
    classes: list[str] | None = None
    images: np.ndarray | None = None
    n_thumbnails: int = 0

    analysis = "projection"
    key_figure = "grid"

    def get(self, layer: str, checkpoint: int | None = None) -> Projection:
        for p in self.projections:
            if p.layer == layer and (checkpoint is None or p.checkpoint == checkpoint):
                return p
        raise KeyError(f"no projection of layer {layer!r} at checkpoint {checkpoint!r}")

    def grid(self) -> list[list[Projection]]:
        """Rows = checkpoints, columns = layers."""
        return [[self.get(lay, cp) for lay in self.layers] for cp in self.checkpoints]

    def table(self) -> list[dict[str, Any]]:
        return [
            {"checkpoint": p.checkpoint, "layer": p.layer, "nh": p.metrics.get("nh"),
             "nh_original": p.metrics.get("nh_original"), "ac": p.metrics.get("ac"),
             "seconds": p.metrics.get("seconds")}
            for p in self.projections
        ]

    @property  # type: ignore[override]
    def metrics(self) -> dict[str, Any]:
        """``table`` (one row per projection) and ``nh``, ``nh_original``, ``ac`` by checkpoint."""
        def key(cp: int | None) -> str:
            return "model" if cp is None else str(cp)

        nh: dict[str, dict[str, float | None]] = {}
        nho: dict[str, dict[str, float | None]] = {}
        ac: dict[str, float | None] = {}
        for p in self.projections:
            nh.setdefault(key(p.checkpoint), {})[str(p.layer)] = p.metrics.get("nh")
            nho.setdefault(key(p.checkpoint), {})[str(p.layer)] = p.metrics.get("nh_original")
            ac[key(p.checkpoint)] = p.metrics.get("ac")
        return {"table": self.table(), "nh": nh, "nh_original": nho, "ac": ac}

    def _short_metrics(self, limit: int = 6) -> list[tuple[str, str]]:
        out = [("projections", str(len(self.projections)))]
        for r in self.table()[: max(0, limit - 1)]:
            tag = r["layer"] if r["checkpoint"] is None else f"{r['layer']} @ {r['checkpoint']}"
            vals = [f"NH {r['nh']:.3f}"] if r["nh"] is not None else []
            if r["ac"] is not None:
                vals.append(f"AC {r['ac']:.3f}")
            out.append((str(tag), ", ".join(vals)))
        return out

    def __repr__(self) -> str:
        return (f"ProjectionStudy({self.parameters.get('method', '?')}, layers={short_list(self.layers)}, "
                f"checkpoints={short_list(self.checkpoints)}, n={len(self.projections[0].labels) if self.projections else 0})")

    def to_dict(self, points: bool = True) -> dict[str, Any]:
        index = {id(p): i for i, p in enumerate(self.projections)}
        return {
            "layers": self.layers,
            "checkpoints": self.checkpoints,
            "parameters": self.parameters,
            "metrics": self.metrics,
            "projections": [p.to_dict(points=points) for p in self.projections],
            "sequences": [
                {"axis": s.axis, "aligned": s.aligned, "displacement": s.displacement(),
                 "frames": [index[id(f)] for f in s.frames]}
                for s in self.sequences
            ],
        }

    def _figure_specs(self) -> list[tuple[str, Figure, str, str]]:
        """``(stem, figure, title, caption)`` of every figure of the folder, in order."""
        from . import plots

        classes = self.classes
        specs: list[tuple[str, Figure, str, str]] = []
        method = self.parameters.get("method", "tsne")
        n = self.parameters.get("n")
        k = self.parameters.get("k", 6)
        if any(p.predictions is not None for p in self.projections):
            cap_common = (f"{method} of {n} observations; circles coloured by true class, triangles = misclassified, "
                          f"coloured by the predicted class. NH = neighborhood hit (k={k}) in the projection; AC = the "
                          "model's accuracy on these observations.")
        else:
            why = str(self.parameters.get("predictions") or "no predictions")
            cap_common = (f"{method} of {n} observations, coloured by true class. NH = neighborhood hit (k={k}) in "
                          f"the projection. No AC and no misclassified marks: the model is not a classifier of these "
                          f"labels ({why}).")
        specs.append(("grid", plots.plot_projection_grid(self.grid(), classes=classes),
                      "Every layer side by side" + (" at every checkpoint" if len(self.checkpoints) > 1 else ""),
                      "Rows: checkpoints (epochs); columns: layers. " + cap_common))
        # NH per layer, one line per checkpoint, 2-D and in activation space
        table: dict[str, dict[str, float]] = {}
        for cp in self.checkpoints:
            tag = "model" if cp is None else f"epoch {cp}"
            table[f"{tag}: NH 2-D"] = {lay: self.get(lay, cp).metrics["nh"] for lay in self.layers}
            table[f"{tag}: NH activations"] = {lay: self.get(lay, cp).metrics["nh_original"] for lay in self.layers
                                               if "nh_original" in self.get(lay, cp).metrics}
        specs.append(("nh", plots.plot_nh_by_layer(table), "Neighborhood hit per layer",
                      "NH of the 2-D projection and NH in the original activation space, per layer and checkpoint."))
        # large single plots: first and last layer at the first and last checkpoint (with thumbnails)
        cps = [self.checkpoints[0]] + ([self.checkpoints[-1]] if len(self.checkpoints) > 1 else [])
        lays = [self.layers[0]] + ([self.layers[-1]] if len(self.layers) > 1 else [])
        thumbs = self.images is not None and self.n_thumbnails > 0
        for cp in cps:
            for lay in lays:
                p = self.get(lay, cp)
                stem = f"projection_{'model' if cp is None else f'epoch{cp}'}_{_safe(lay)}"
                specs.append((stem, plots.plot_projection(p, classes=classes, images=self.images if thumbs else None,
                                                          n_thumbnails=self.n_thumbnails if thumbs else 0),
                              plots.title_of(p).replace("\n", ": "),
                              cap_common + (" Thumbnails: outliers (lowest per-point NH)." if thumbs else "")))
        if len(self.checkpoints) > 1:
            last = self.layers[-1]
            grid = [[self.get(last, self.checkpoints[0]), self.get(last, self.checkpoints[-1])]]
            specs.append(("before_after", plots.plot_projection_grid(grid, classes=classes, panel=4.0),
                          f"Before vs after training: {last}",
                          f"Layer {last} at epoch {self.checkpoints[0]} and at epoch {self.checkpoints[-1]}. "
                          + cap_common))
        if len(self.layers) > 1:
            cp = self.checkpoints[-1]
            grid = [[self.get(self.layers[0], cp), self.get(self.layers[-1], cp)]]
            specs.append(("first_last", plots.plot_projection_grid(grid, classes=classes, panel=4.0),
                          "First vs last layer", f"{self.layers[0]} vs {self.layers[-1]}. " + cap_common))
        if self.parameters.get("aligned"):
            for s in self.sequences[:6]:
                if len(s.frames) < 2:
                    continue
                key = s.frames[0].layer if s.axis == "epochs" else s.frames[0].checkpoint
                specs.append((f"trails_{s.axis}_{_safe('model' if key is None else key)}",
                              plots.plot_trails(s.frames, classes=classes),
                              f"Aligned sequence over {s.axis}" + (f" ({key})" if key is not None else ""),
                              "Each frame starts from the previous one; lines trace each point's path (a random "
                              "subset of points) to its position in the last frame."))
        return specs

    def _write(self, d: Path) -> None:
        """Into ``d``: the folder of ``layerscope project``: figures and ``result.json``."""
        from ..results import write_figures, write_result

        d.mkdir(parents=True, exist_ok=True)
        figures = write_figures(d, self._figure_specs())
        doc = self.to_dict(points=True)
        write_result(
            d, "projection", model=self.model, data=self.data, parameters=doc["parameters"], metrics=doc["metrics"],
            figures=figures, layers=doc["layers"], checkpoints=doc["checkpoints"],
            classes=list(self.classes) if self.classes is not None else None,
            projections=doc["projections"], sequences=doc["sequences"],
        )

    @classmethod
    def load(cls, out_dir: str | os.PathLike[str]) -> "ProjectionStudy":
        """Read a folder written by :meth:`save` (or ``layerscope project``)."""
        from ..results import read_result

        doc = read_result(out_dir)
        if doc.get("analysis") != "projection":
            raise DataError(f"{out_dir} holds a {doc.get('analysis')!r} result, not a projection study.")
        projections = []
        for q in doc.get("projections") or []:
            preds = q.get("predictions")
            projections.append(Projection(
                embedding=np.stack([np.asarray(q["x"], dtype=np.float64), np.asarray(q["y"], dtype=np.float64)], axis=1),
                labels=np.asarray(q["labels"], dtype=np.int64),
                predictions=None if preds is None else np.asarray(preds, dtype=np.int64),
                sample_ids=np.asarray(q["sample_ids"], dtype=np.int64), layer=q.get("layer"),
                method=q.get("method", "tsne"), parameters=dict(q.get("parameters") or {}),
                metrics=dict(q.get("metrics") or {}), checkpoint=q.get("checkpoint")))
        sequences = [ProjectionSequence(frames=[projections[i] for i in s["frames"]], axis=s["axis"],
                                        aligned=bool(s["aligned"])) for s in doc.get("sequences") or []]
        return cls(projections=projections, layers=list(doc.get("layers") or []),
                   checkpoints=list(doc.get("checkpoints") or []), sequences=sequences,
                   indices=projections[0].sample_ids if projections else None,
                   parameters=dict(doc.get("parameters") or {}), model=doc.get("model"), data=doc.get("data"),
                   classes=doc.get("classes"))


def project_model(
    model: nn.Module | Mapping[int, nn.Module],
    dataset: Any,
    layers: str | Sequence[str] | None = "all",
    *,
    n: int | None = 2000,
    indices: np.ndarray | None = None,
    method: Method = "tsne",
    random_state: int | None = 0,
    aligned: bool = False,
    align_over: Literal["layers", "epochs"] | None = None,
    reduce: Literal["mean", "max", "first", "cls", "last"] | None = None,
    layouts: Mapping[str, str] | None = None,
    batch_size: int = 256,
    classes: Sequence[str] | None = None,
    thumbnails: int = 12,
    model_info: dict[str, Any] | None = None,
    data_spec: str | None = None,
    progress: ProgressArg = None,
    dtype: str = "float32",
    **kwargs: Any,
) -> ProjectionStudy:
    """Project every requested layer of a model (or of several checkpoints) over a dataset subset.

    Parameters
    ----------
    model : nn.Module or mapping epoch -> nn.Module
        One model, or checkpoints of a training run (see :func:`models_from_run`).
    dataset : a layerscope dataset
    layers : "all" or list of str
        ``"all"`` = the model's ``hidden_layers``.
    n : int or None, default 2000
        Size of the seeded stratified subset (Rauber et al.: 2,000 test observations).
    indices : ndarray, optional
        Explicit dataset rows instead of ``n``.
    method : {"tsne", "umap", "pca"}
    random_state : int or None
        Seed of the subset and of the projections.
    aligned : bool
        Chain the projections (each initialised from the previous one), see :mod:`.sequence`.
    align_over : {"layers", "epochs"}, optional
        Chain direction; default "epochs" with several checkpoints, else "layers".
    reduce : {"mean", "max", "first", "cls", "last"}, optional
        Reduce each layer's output by its layout (:func:`layerscope.seam.reduce_output`): mean / max
        over the positions of a conv map or over the tokens of a sequence (masked), the first / last
        token of a sequence; never over features. Default: flatten.
    layouts : dict layer -> {"spatial", "sequence", "flat"}, optional
        The layout of a layer whose output ``(N, A, B)`` layerscope cannot tell (a conv1d map or a
        sequence; see :func:`layerscope.seam.layout_of`); the layouts used are recorded in
        ``parameters["layouts"]``.
    batch_size : int
    classes : list of str, optional
        Class names for the legends (default: ``dataset.classes``, else ``model.classes``).
    thumbnails : int, default 12
        Image thumbnails of outliers in the single-layer figures (0: none; only for image data).
    model_info : dict, optional
        Description of the model for ``result.json`` (default:
        :func:`layerscope.results.model_description` of the first model).
    data_spec : str, optional
        The data spec, recorded in ``result.json``.
    progress : None, bool or tracker
        ``True``: ``tqdm.auto``; or any tqdm-compatible callable, called as
        ``progress(iterable, total=n, desc="...")``.
    dtype : {"float32", "float16", "float64"}, default "float32"
        Storage of the captured activations (:func:`layerscope.collect_activations`); float16 is
        recorded as reduced precision in ``parameters["precision"]`` and in every projection.
    **kwargs
        Passed to :func:`project` (``k``, ``perplexity``, ``memory_budget``, ...).

    Returns
    -------
    ProjectionStudy
    """
    from ..capture import collect_activations

    models: dict[int | None, nn.Module] = {cp: m for cp, m in model.items()} if isinstance(model, Mapping) else {None: model}
    if not models:
        raise ParameterError("no model to project.")
    first = next(iter(models.values()))
    names = resolve_projection_layers(first, layers)
    idx = select_observations(dataset, n, random_state) if indices is None else np.asarray(indices)
    if align_over is None:
        align_over = "epochs" if len(models) > 1 else "layers"
    if align_over not in ("layers", "epochs"):
        raise ParameterError(f"align_over must be 'layers' or 'epochs', got {align_over!r}.")
    acts: dict[int | None, Any] = {}
    for cp, m in models.items():
        acts[cp] = collect_activations(m, dataset, names, batch_size=batch_size, reduce=reduce, layouts=layouts,
                                       indices=idx, predictions=True, progress=progress, dtype=dtype)
    labels = next(iter(acts.values())).labels
    sample_ids = next(iter(acts.values())).sample_ids
    out: dict[tuple[int | None, str], Projection] = {}
    sequences: list[ProjectionSequence] = []
    cps = list(models)
    if align_over == "layers":
        chains = [[(cp, lay) for lay in names] for cp in cps]
    else:
        chains = [[(cp, lay) for cp in cps] for lay in names]
    # one kNN-graph cache for the whole study: a layer whose activations are byte-identical at two
    # checkpoints (or a layer listed twice) gets one graph, whichever sequences its frames are in
    graphs: dict[tuple[Any, ...], KnnGraph] = {}
    for chain in chains:
        seq = project_sequence(
            [acts[cp].arrays[lay] for cp, lay in chain], labels, method, random_state,
            aligned=aligned, axis=align_over, layers=[lay for _, lay in chain], checkpoints=[cp for cp, _ in chain],
            predictions=[acts[cp].predictions for cp, _ in chain], sample_ids=sample_ids, progress=progress,
            knn_cache=graphs, **kwargs,
        )
        sequences.append(seq)
        for (cp, lay), p in zip(chain, seq.frames):
            out[(cp, lay)] = p
    projections = [out[(cp, lay)] for cp in cps for lay in names]
    params = {"layers": names, "checkpoints": cps, "method": method, "n": int(len(idx)), "random_state": random_state,
              "aligned": aligned, "align_over": align_over, "reduce": reduce,
              "layouts": next(iter(acts.values())).meta.get("layouts"),
              "predictions": next(iter(acts.values())).meta.get("predictions"), **kwargs}
    note = next((p.parameters["precision"] for p in projections if p.parameters.get("precision")), None)
    if note is not None:
        params["precision"] = note
    from ..results import model_description

    if classes is None:
        found = getattr(dataset, "classes", None) or getattr(first, "classes", None)
        classes = [str(c) for c in found] if found else None
    images = display_images(dataset, idx) if thumbnails > 0 else None
    return ProjectionStudy(projections=projections, layers=names, checkpoints=cps, sequences=sequences,
                           indices=idx, parameters=params,
                           model=model_info if model_info is not None else model_description(first),
                           data=data_spec, classes=list(classes) if classes is not None else None,
                           images=images, n_thumbnails=int(thumbnails) if images is not None else 0)


def _safe(name: Any) -> str:
    import re

    return re.sub(r"[^A-Za-z0-9_.-]+", "_", str(name))


def save_study(
    study: ProjectionStudy,
    out_dir: str | os.PathLike[str],
    *,
    model: Any = None,
    data: str | None = None,
    classes: Sequence[str] | None = None,
    images: np.ndarray | None = None,
    n_thumbnails: int | None = None,
) -> Path:
    """Write the figures and ``result.json`` of a study (see :meth:`ProjectionStudy.save`), with
    the given model, data spec, class names and thumbnails replacing the study's own; returns the
    path of ``result.json``."""
    from dataclasses import replace

    from ..results import RESULT_FILE, model_description

    changes: dict[str, Any] = {}
    if model is not None:
        changes["model"] = model_description(model)
    if data is not None:
        changes["data"] = data
    if classes is not None:
        changes["classes"] = list(classes)
    if images is not None:
        changes["images"] = images
    if n_thumbnails is not None:
        changes["n_thumbnails"] = int(n_thumbnails)
    d = replace(study, **changes).save(out_dir) if changes else study.save(out_dir)
    return d / RESULT_FILE
