"""Capture as an analysis: :func:`capture_dataset` runs :func:`layerscope.capture.collect_activations`
and returns a :class:`CaptureResult`, whose ``save(dir)`` writes the folder of ``layerscope capture``:

* the activations as written by :meth:`layerscope.capture.Activations.save`: one ``.npy`` (or, with
  ``store="zarr"``, one ``.zarr`` store) per layer,
  ``labels.npz`` (labels, sample ids, predictions, extra labels) and ``activations.json``;
* ``activations.png``: the distribution of each layer's values;
* ``result.json`` (``analysis = "capture"``), read by ``layerscope report``::

    parameters: {layers, reduce, limit, stratify, random_state, batch_size, memory_budget, predictions}
    metrics: {n_samples, n_layers, megabytes, accuracy (classifiers on labelled data only), n_labelled}
    layers: [{name, output_shape, layout, dtype, file}]   # one record per captured layer
    predictions: "arg-max of the model output" | "no predictions: <why>" | "not requested"
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Mapping, Sequence

import numpy as np

from ._progress import ProgressArg
from .capture import Activations
from .exceptions import DataError, ParameterError
from .results import AnalysisResult, short_list

if TYPE_CHECKING:
    from matplotlib.figure import Figure
    from torch import nn

__all__ = ["CaptureResult", "capture_dataset"]

#: ``activations.png`` draws each layer's values over its first samples: at most this many samples...
HISTOGRAM_ROWS = 1000
#: ... and at most this many values per layer (fewer samples for wide layers; at least one sample)
HISTOGRAM_VALUES = 200_000
#: ... for at most this many layers (the first ones)
HISTOGRAM_LAYERS = 32


def _labels_of(dataset: Any) -> np.ndarray:
    if hasattr(dataset, "y"):
        return np.asarray(dataset.y)
    if hasattr(dataset, "labels"):
        return np.asarray(dataset.labels)
    raise ParameterError(
        f"a stratified subset needs class labels; {type(dataset).__name__} has neither .y nor .labels. "
        "Use limit without stratify (the first N samples)."
    )


@dataclass(frozen=True, repr=False)
class CaptureResult(AnalysisResult):
    """Activations of several layers over a dataset, as an analysis result (``analysis = "capture"``).

    Attributes
    ----------
    activations : Activations
        ``arrays[layer]`` of shape ``(N, ...)``, labels, sample ids, predictions (if any).
    parameters : dict
        Every knob used.
    model : dict or None
        :func:`layerscope.results.model_description` of the model.
    data : str or None
        The data spec, if known.
    """

    activations: Activations
    parameters: dict[str, Any] = field(default_factory=dict)
    model: dict[str, Any] | None = None
    data: str | None = None

    analysis = "capture"

    @property  # type: ignore[override]
    def metrics(self) -> dict[str, Any]:
        """``n_samples``, ``n_layers``, ``megabytes``; ``accuracy`` of the model's arg-max over the
        labelled samples (and ``n_labelled``) when predictions were recorded."""
        a = self.activations
        m: dict[str, Any] = {
            "n_samples": len(a),
            "n_layers": len(a.arrays),
            "megabytes": round(sum(int(v.nbytes) for v in a.arrays.values()) / 2**20, 3),
        }
        if "precision" in a.meta:  # float16 storage: every number computed from these arrays inherits it
            m["precision"] = f"reduced: {a.meta.get('storage', {}).get('dtype', 'float16')} storage"
        if a.predictions is not None:
            labelled = np.asarray(a.labels) >= 0  # -1: the data has no label for this sample
            if labelled.any():
                m["accuracy"] = float(np.mean(a.predictions[labelled] == a.labels[labelled]))
                m["n_labelled"] = int(labelled.sum())
        return m

    def layer_records(self, files: dict[str, str] | None = None) -> list[dict[str, Any]]:
        """One record per layer: name, output shape (per sample, as stored), its layout (how the
        capture read its axes: flat, spatial, sequence), dtype and, given ``files`` (layer -> file
        name), the ``.npy`` file that holds it."""
        layouts = self.activations.meta.get("layouts") or {}
        return [
            {"name": name, "output_shape": list(arr.shape[1:]), "layout": layouts.get(name), "dtype": str(arr.dtype),
             **({"file": files[name]} if files is not None and name in files else {})}
            for name, arr in self.activations.arrays.items()
        ]

    def _short_metrics(self, limit: int = 6) -> list[tuple[str, str]]:
        out = super()._short_metrics(limit)
        for r in self.layer_records()[: max(0, limit - len(out))]:
            out.append((r["name"], "×".join(str(s) for s in r["output_shape"]) or "scalar"))
        return out

    def __repr__(self) -> str:
        m = self.metrics
        acc = f", accuracy={m['accuracy']:.4f}" if "accuracy" in m else ""
        return f"CaptureResult(n={m['n_samples']}, layers={short_list(self.activations.arrays)}{acc})"

    def _figure_specs(self) -> list[tuple[str, Figure, str, str]]:
        from matplotlib.figure import Figure

        arrays = self.activations.arrays
        names = list(arrays)[:HISTOGRAM_LAYERS]
        cols = min(4, max(1, len(names)))
        rows = (len(names) + cols - 1) // cols
        fig = Figure(figsize=(3.2 * cols, 2.4 * rows))
        axes = fig.subplots(rows, cols, squeeze=False)
        for k, ax in enumerate(axes.flat):
            if k >= len(names):
                ax.set_axis_off()
                continue
            arr = arrays[names[k]]
            per_sample = max(1, int(np.prod(arr.shape[1:])))
            used = min(len(arr), HISTOGRAM_ROWS, max(1, HISTOGRAM_VALUES // per_sample))
            v = np.asarray(arr[:used], dtype=np.float64).ravel()
            v = v[np.isfinite(v)]
            if v.size:
                ax.hist(v, bins=50, color="#4c72b0")
            ax.set_title(f"{names[k]} {tuple(arr.shape[1:])}, {used} samples", fontsize=8)
            ax.tick_params(labelsize=6)
        fig.suptitle("Activation values per layer", fontsize=9)
        fig.tight_layout()
        return [("activations", fig, "Activation values per layer",
                 f"Histogram of each captured layer's values over its first samples (of {len(self.activations)}): "
                 f"at most {HISTOGRAM_ROWS} samples and {HISTOGRAM_VALUES:,} values per layer; each title gives "
                 "the number of samples used."
                 + (f" The first {len(names)} of the {len(arrays)} layers." if len(arrays) > len(names) else ""))]

    def _write(self, d: Path) -> None:
        """Into ``d``: the folder of ``layerscope capture`` (arrays, ``activations.png``, ``result.json``)."""
        from ._io import read_json
        from .results import write_figures, write_result

        d.mkdir(parents=True, exist_ok=True)
        saved_in = self.activations.directory
        if saved_in is None or Path(saved_in).resolve() != d.resolve():  # not yet written there by the capture
            self.activations.save(d)
        figures = write_figures(d, self._figure_specs())
        write_result(d, "capture", model=self.model, data=self.data, parameters=self.parameters,
                     metrics=self.metrics, figures=figures, predictions=self.activations.meta.get("predictions"),
                     layers=self.layer_records(dict(read_json(d / "activations.json")).get("files")))

    @classmethod
    def load(cls, out_dir: str | os.PathLike[str], mmap: bool = True) -> "CaptureResult":
        """Read a folder written by :meth:`save` (or ``layerscope capture``); arrays memory-mapped by default."""
        from .results import read_result

        doc = read_result(out_dir)
        if doc.get("analysis") != "capture":
            raise DataError(f"{out_dir} holds a {doc.get('analysis')!r} result, not a capture.")
        return cls(activations=Activations.load(out_dir, mmap=mmap), parameters=dict(doc.get("parameters") or {}),
                   model=doc.get("model"), data=doc.get("data"))


def _describe_reduce(reduce: Any) -> Any:
    """``reduce`` as JSON: names as they are, a callable by its name, a dict per layer."""
    if isinstance(reduce, dict):
        return {str(k): _describe_reduce(v) for k, v in reduce.items()}
    if callable(reduce):
        return f"callable {getattr(reduce, '__qualname__', type(reduce).__name__)}"
    return reduce


def capture_dataset(
    model: nn.Module,
    dataset: Any,
    layers: str | Sequence[str],
    *,
    batch_size: int = 256,
    reduce: Any = None,
    layouts: Mapping[str, str] | None = None,
    limit: int | None = None,
    stratify: bool = False,
    random_state: int = 0,
    memory_budget: int | None = None,
    out_dir: str | os.PathLike[str] | None = None,
    predictions: bool = True,
    model_info: dict[str, Any] | None = None,
    data_spec: str | None = None,
    progress: ProgressArg = None,
    store: Literal["npy", "zarr"] | None = None,
    dtype: Any = "float32",
) -> CaptureResult:
    """Capture the activations of ``layers`` over ``dataset`` (what ``layerscope capture`` runs).

    Parameters
    ----------
    model : nn.Module
        Left unchanged.
    dataset
        A dataset :func:`layerscope.capture.collect_activations` accepts.
    layers : "all" or list of str
        Dotted layer names; ``"all"``: every leaf layer.
    batch_size : int
    reduce : {"mean", "max", "first", "cls", "last"}, callable or dict, optional
        Reduction of each layer's output by its layout, inside the hook
        (:func:`layerscope.seam.reduce_output`: over positions or tokens, never features).
    layouts : dict layer -> {"spatial", "sequence", "flat"}, optional
        The layout of a layer whose output ``(N, A, B)`` layerscope cannot tell (a conv1d map or a
        sequence; see :func:`layerscope.seam.layout_of`); the layouts used are recorded in
        ``result.json`` (``layers[i]["layout"]``).
    limit : int, optional
        Use only the first ``limit`` samples, or a seeded stratified subset of that size with
        ``stratify=True``.
    stratify : bool
    random_state : int
        Seed of the stratified subset.
    memory_budget : int, optional
        Bytes; larger captures stream to ``.npy`` files in ``out_dir`` (a temporary folder if not
        given) and come back memory-mapped.
    out_dir : path, optional
        Where to stream and save the arrays (``save(out_dir)`` then only adds the figure and
        ``result.json``).
    predictions : bool, default True
        Record the arg-max of the model's output (gives ``metrics["accuracy"]``).
    model_info : dict, optional
        Description of the model for ``result.json`` (default: :func:`layerscope.results.model_description`).
    data_spec : str, optional
        The data spec, recorded in ``result.json``.
    progress : None, bool or tracker
        ``True``: ``tqdm.auto``; or any tqdm-compatible callable (``total=``, ``desc=`` keywords).
        Any tqdm-compatible callable.
    store : {None, "npy", "zarr"}
        ``"zarr"``: every layer into a chunked, compressed Zarr store in ``out_dir``, read lazily
        (see :func:`layerscope.capture.collect_activations`).
    dtype : {"float32", "float16", "float64"}
        Storage dtype; float16 is recorded as reduced precision in ``metrics["precision"]``.

    Returns
    -------
    CaptureResult
    """
    from .capture import collect_activations
    from .capture import list_layers
    from .results import model_description

    names = [layers] if isinstance(layers, str) else list(layers)
    if names == ["all"]:
        names = [r.name for r in list_layers(model) if r.is_leaf]
    indices = None
    if limit is not None:
        if limit < 1:
            raise ParameterError(f"limit must be at least 1 sample; got {limit}.")
        if stratify:
            from .data import stratified_indices

            indices = np.asarray(stratified_indices(_labels_of(dataset), limit, random_state))
        else:
            indices = np.arange(min(limit, len(dataset)))
    acts = collect_activations(model, dataset, names, batch_size=batch_size, reduce=reduce, layouts=layouts,
                               indices=indices, predictions=predictions, memory_budget=memory_budget, out_dir=out_dir,
                               progress=progress, store=store, dtype=dtype)
    params = {"layers": names, "reduce": _describe_reduce(reduce), "limit": limit, "stratify": stratify,
              "random_state": random_state, "batch_size": batch_size, "memory_budget": memory_budget,
              "predictions": predictions, "layouts": dict(layouts) if layouts else None,
              "store": store, "dtype": acts.meta.get("storage", {}).get("dtype", "float32")}
    return CaptureResult(activations=acts, parameters=params,
                         model=model_info if model_info is not None else model_description(model), data=data_spec)
