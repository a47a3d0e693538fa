"""Invariance of features to translation, scaling and rotation (Zeiler & Fergus 2014, §4.1, Fig. 5).

A few images are translated, rescaled and rotated over a range. For each transformed image and
each chosen layer we record the Euclidean distance between the layer's feature vector for the
original image and for the transformed one, and the probability the model gives the true class.
The paper finds small changes have a large effect in the first layer and a smaller one at the
top, and that the output is stable to translation and scaling but not to rotation (except for
rotation-symmetric objects).

Transforms are one affine warp each (:func:`torch.nn.functional.affine_grid` and
:func:`~torch.nn.functional.grid_sample`, bilinear); pixels coming from outside the image get
``fill`` (in the model's normalised space; default the value of a black/background pixel is the
caller's choice).
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .._progress import ProgressArg
from ..capture import capture, model_device, model_state_guard
from ..seam import classifier_logits
from ..exceptions import InputShapeError, ParameterError
from ._result import FolderResult, read_folder, track

__all__ = ["InvarianceCurves", "invariance_curves", "transform_images", "default_ranges"]

KINDS = ("translate", "vtranslate", "scale", "rotate")


def default_ranges(size: int) -> dict[str, np.ndarray]:
    """Parameter ranges: translate ±30 % of the side (pixels), scale 0.6–1.4, rotate 0–360°."""
    t = max(1, int(round(0.3 * size)))
    step = max(1, t // 4)
    return {
        "translate": np.arange(-t, t + 1, step).astype(np.float64),
        "vtranslate": np.arange(-t, t + 1, step).astype(np.float64),
        "scale": np.round(np.linspace(0.6, 1.4, 9), 3),
        "rotate": np.arange(0, 361, 30).astype(np.float64),
    }


def transform_images(x: torch.Tensor, kind: str, param: float, fill: float | torch.Tensor = 0.0) -> torch.Tensor:
    """Translate (``param`` pixels; ``"translate"`` to the right, ``"vtranslate"`` down, as in the
    paper's Fig. 5), scale (factor) or rotate (degrees) ``x`` ``(N, C, H, W)``.

    Pixels from outside the image get ``fill`` (scalar or per channel).
    """
    n, c, h, w = x.shape
    if kind == "translate":
        theta = torch.tensor([[1.0, 0.0, -2.0 * param / w], [0.0, 1.0, 0.0]])
    elif kind == "vtranslate":
        theta = torch.tensor([[1.0, 0.0, 0.0], [0.0, 1.0, -2.0 * param / h]])
    elif kind == "scale":
        if param <= 0:
            raise ParameterError(f"scale factors must be > 0; got {param}.")
        theta = torch.tensor([[1.0 / param, 0.0, 0.0], [0.0, 1.0 / param, 0.0]])
    elif kind == "rotate":
        a = math.radians(param)
        theta = torch.tensor([[math.cos(a), -math.sin(a) * h / w, 0.0], [math.sin(a) * w / h, math.cos(a), 0.0]])
    else:
        raise ParameterError(f"transform must be one of {', '.join(KINDS)}; got {kind!r}.")
    theta = theta.to(x.device, x.dtype).unsqueeze(0).expand(n, 2, 3)
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    f = torch.as_tensor(fill, dtype=x.dtype, device=x.device).reshape(1, -1, 1, 1)
    return F.grid_sample(x - f, grid, mode="bilinear", padding_mode="zeros", align_corners=False) + f


@dataclass(frozen=True, repr=False)
class InvarianceCurves(FolderResult):
    """Feature distances and true-class probabilities under transformations (Z&F Fig. 5).

    An analysis result (:class:`~layerscope.results.AnalysisResult`): :attr:`metrics`
    (``<transform>_min_mean_probability``), :meth:`figures` (``{"invariance": Figure}``),
    :meth:`save` writes the folder of ``layerscope invariance`` (invariance.png, invariance.npz,
    result.json), :meth:`load` reads it back.

    Attributes
    ----------
    transforms
        Names, a subset of ``("translate", "scale", "rotate")``.
    params
        ``{transform: (P,)}`` parameter values (pixels, factor, degrees).
    layers
        Layers measured.
    distances
        ``{transform: {layer: (N, P)}}`` Euclidean distance between the layer's flattened
        features of the original and of the transformed image.
    relative_distances
        Same, divided by the norm of the original features.
    probabilities
        ``{transform: (N, P)}`` probability of the true class.
    labels, sample_ids
        ``(N,)`` true classes and dataset rows.
    fill
        The fill as asked for (``"min"``, ``"mean"``, a number or one per channel).
    plot_layers
        Layers drawn in the figure (default: the lowest and the highest).
    model, data
        Description of the model and data spec.
    """

    analysis = "invariance"
    arrays_file = "invariance.npz"

    transforms: list[str]
    params: dict[str, np.ndarray]
    layers: list[str]
    distances: dict[str, dict[str, np.ndarray]]
    relative_distances: dict[str, dict[str, np.ndarray]]
    probabilities: dict[str, np.ndarray]
    labels: np.ndarray
    sample_ids: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    fill: Any = 0.0
    plot_layers: list[str] | None = None
    model: dict[str, Any] | None = None
    data: str | None = None

    @property
    def shown_layers(self) -> list[str]:
        """Layers drawn in the figure."""
        if self.plot_layers:
            return list(self.plot_layers)
        return [self.layers[0], self.layers[-1]] if len(self.layers) > 1 else list(self.layers)

    @property
    def parameters(self) -> dict[str, Any]:
        return {"layers": self.layers, "transforms": self.transforms, "n_images": int(len(self.labels)),
                "fill": self.fill, "ranges": {k: v.tolist() for k, v in self.params.items()},
                "plot_layers": self.shown_layers}

    @property
    def metrics(self) -> dict[str, Any]:
        return {f"{kind}_min_mean_probability": float(self.probabilities[kind].mean(axis=0).round(6).min())
                for kind in self.transforms}

    def figures(self) -> dict[str, Any]:
        from .plots import plot_invariance

        return {"invariance": plot_invariance(self, layers=self.shown_layers)}

    def figure_info(self) -> dict[str, tuple[str, str]]:
        return {"invariance": ("Invariance to translation, scale and rotation",
                               "Rows: transformations. Columns: Euclidean distance between the features of the "
                               f"original and the transformed image at {', '.join(self.shown_layers)}, and the "
                               "probability of the true class (one line per image; Zeiler & Fergus 2014, Fig. 5).")}

    def arrays(self) -> dict[str, np.ndarray | None]:
        out: dict[str, np.ndarray | None] = {"sample_ids": self.sample_ids, "labels": self.labels}
        for kind in self.transforms:
            out[f"{kind}_params"] = self.params[kind]
            out[f"{kind}_probability"] = self.probabilities[kind]
            for i, layer in enumerate(self.layers):
                out[f"{kind}_distance_{i}"] = self.distances[kind][layer]
                out[f"{kind}_relative_distance_{i}"] = self.relative_distances[kind][layer]
        return out

    def extra(self) -> dict[str, Any]:
        return {"curves": self.summary(), "sample_ids": self.sample_ids.tolist(), "labels": self.labels.tolist()}

    @classmethod
    def load(cls, out_dir: str | os.PathLike[str]) -> "InvarianceCurves":
        """Read a folder written by :meth:`save` (or ``layerscope invariance``)."""
        doc, z = read_folder(out_dir, "invariance")
        p = doc["parameters"]
        kinds, layers = list(p["transforms"]), list(p["layers"])
        return cls(
            transforms=kinds, params={k: z[f"{k}_params"] for k in kinds}, layers=layers,
            distances={k: {la: z[f"{k}_distance_{i}"] for i, la in enumerate(layers)} for k in kinds},
            relative_distances={k: {la: z[f"{k}_relative_distance_{i}"] for i, la in enumerate(layers)} for k in kinds},
            probabilities={k: z[f"{k}_probability"] for k in kinds}, labels=z["labels"], sample_ids=z["sample_ids"],
            fill=p.get("fill"), plot_layers=p.get("plot_layers"), model=doc.get("model"), data=doc.get("data"),
        )

    def summary(self) -> dict[str, Any]:
        """Per transform: mean relative distance per layer and mean p(true) at each parameter."""
        return {
            kind: {
                "params": self.params[kind].tolist(),
                "mean_relative_distance": {
                    layer: self.relative_distances[kind][layer].mean(axis=0).round(6).tolist() for layer in self.layers
                },
                "mean_probability": self.probabilities[kind].mean(axis=0).round(6).tolist(),
            }
            for kind in self.transforms
        }


def invariance_curves(
    model: nn.Module,
    x: Any,
    labels: Sequence[int] | np.ndarray | None = None,
    *,
    layers: Sequence[str] | None = None,
    ranges: dict[str, Sequence[float] | np.ndarray] | None = None,
    transforms: Sequence[str] | None = None,
    fill: str | float | Sequence[float] = 0.0,
    batch_size: int = 256,
    sample_ids: Sequence[int] | None = None,
    indices: Sequence[int] | np.ndarray | None = None,
    limit: int | None = None,
    plot_layers: Sequence[str] | None = None,
    device: torch.device | str | None = None,
    progress: ProgressArg = None,
    model_info: dict[str, Any] | None = None,
    data_spec: str | None = None,
) -> InvarianceCurves:
    """Measure how features and the class probability change under transformations.

    Parameters
    ----------
    model
        Classifier returning logits; run in ``eval()``, left unchanged.
    x
        ``(N, C, H, W)`` images in the model's normalised space, or a map-style dataset of
        ``(x, y)`` items (then ``indices``, else the first ``limit`` rows, are used, with their
        labels, and ``labels``/``sample_ids`` must not be given).
    labels
        ``(N,)`` true classes (for a tensor ``x``).
    layers
        Layers to measure (default ``model.hidden_layers``).
    ranges
        ``{transform: values}``; default :func:`default_ranges`. Only the given transforms run.
    transforms
        Without ``ranges``: which transforms run, with their default ranges (default: all four).
    fill
        Value of pixels warped in from outside (normalised space, scalar or per channel), or
        ``"min"`` (per channel, the smallest input value: the background) or ``"mean"``, over the
        data set (over ``x`` for a tensor).
    plot_layers
        Layers drawn in the figure (default: the lowest and the highest).
    progress
        ``None``, ``True`` (tqdm.auto) or any tqdm-compatible callable (keywords ``total=``, ``desc=``).
    model_info, data_spec
        Stored on the result (default: the model's description and the data set's ``name``).

    Returns
    -------
    InvarianceCurves
    """
    from ..results import model_description
    from ._dtype import model_dtype
    from .occlusion import dataset_mean

    if batch_size < 1:
        raise ParameterError(f"batch_size must be >= 1; got {batch_size}.")
    data_name = None
    n_classes: int | None = None  # known for a dataset with class names: the output must match them
    if isinstance(x, torch.Tensor):
        if labels is None:
            raise ParameterError("labels are needed with a tensor of images: pass labels=[true class per image].")
        pool: Any = x
    else:  # a dataset
        if labels is not None or sample_ids is not None:
            raise ParameterError("With a dataset, labels and sample ids come from it: choose rows with indices= or limit=.")
        dataset = x
        data_name = getattr(dataset, "name", None)
        if limit is not None and limit < 1:
            raise ParameterError(f"limit must be >= 1 (images to use); got {limit}.")
        ids = np.arange(len(dataset)) if indices is None else np.asarray(indices, dtype=np.int64).reshape(-1)
        ids = ids if limit is None else ids[: int(limit)]
        if ids.size == 0 or (ids < 0).any() or (ids >= len(dataset)).any():
            raise ParameterError(f"indices must be rows in [0, {len(dataset) - 1}]; got {ids.tolist()}.")
        from ..seam import gather, single_input

        rows = gather(dataset, ids)
        x = single_input(rows, "Invariance curves")
        if rows.labels is None:
            raise ParameterError("Invariance curves map p(true class), so the data needs labels; this data has none.")
        labels = rows.labels.tolist()
        classes = getattr(dataset, "classes", None)
        n_classes = len(classes) if classes is not None else None
        sample_ids = ids.tolist()
        pool = getattr(dataset, "x", None)  # the whole data set's inputs where it has them
        if not isinstance(pool, torch.Tensor):
            tensors = getattr(dataset, "tensors", None)
            pool = tensors[0] if tensors is not None else x
    if x.ndim != 4:
        raise InputShapeError(f"invariance_curves needs images (N, C, H, W); got {tuple(x.shape)}.")
    fill_v: Any = fill
    if isinstance(fill, str):
        if fill == "min":
            fill_v = pool.float().transpose(0, 1).reshape(pool.shape[1], -1).min(dim=1).values
        elif fill == "mean":
            fill_v = dataset_mean(_Pool(pool))
        else:
            raise ParameterError(f"fill takes 'min', 'mean', a number or one number per channel; got {fill!r}.")
    labels_np = np.asarray(labels, dtype=np.int64)
    if labels_np.shape != (x.shape[0],):
        raise ParameterError(f"labels must have one entry per image ({x.shape[0]}); got shape {labels_np.shape}.")
    layer_list = list(layers if layers is not None else getattr(model, "hidden_layers", []) or [])
    if not layer_list:
        raise ParameterError("No layers to measure: pass layers=[...] (the model has no hidden_layers).")
    if ranges is not None:
        rng = dict(ranges)
    else:
        full = default_ranges(min(x.shape[2:]))
        kinds = list(transforms) if transforms is not None else list(full)
        bad = [k for k in kinds if k not in full]
        if bad or not kinds:
            raise ParameterError(f"transforms takes some of {', '.join(KINDS)}; got {kinds}.")
        rng = {k: full[k] for k in kinds}
    for kind in rng:
        if kind not in KINDS:
            raise ParameterError(f"transform must be one of {', '.join(KINDS)}; got {kind!r}.")
    dev = model_device(model, device)
    dtype = model_dtype(model)  # the model runs in its own dtype; warps and distances in float32 or float64
    acc = torch.float64 if dtype == torch.float64 else torch.float32
    xd = x.detach().to(dev, acc)
    fill_t = torch.as_tensor(fill_v, dtype=acc)
    n = x.shape[0]
    y = torch.as_tensor(labels_np, device=dev)

    def feats(cap: capture, xb: torch.Tensor) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
        out: dict[str, list[torch.Tensor]] = {layer: [] for layer in layer_list}
        probs = []
        for s in range(0, xb.shape[0], batch_size):
            logits, why = classifier_logits(cap.run(xb[s : s + batch_size].to(dtype)), n_classes)
            if logits is None:
                raise InputShapeError(f"invariance_curves maps p(true class), so it needs a classifier: {why}.")
            probs.append(torch.softmax(logits.to(acc), 1))
            for layer in layer_list:
                out[layer].append(cap[layer].flatten(1).to(acc))
        return {k: torch.cat(v) for k, v in out.items()}, torch.cat(probs)

    distances: dict[str, dict[str, np.ndarray]] = {}
    rel: dict[str, dict[str, np.ndarray]] = {}
    probabilities: dict[str, np.ndarray] = {}
    params = {k: np.asarray(v, dtype=np.float64) for k, v in rng.items()}
    with model_state_guard(model), torch.no_grad():
        model.eval()
        with capture(model, layer_list) as cap:
            f0, p0 = feats(cap, xd)
            n_cls = int(p0.shape[1])
            y_np = y.cpu().numpy() if isinstance(y, torch.Tensor) else np.asarray(y)
            if y_np.size and (int(y_np.min()) < 0 or int(y_np.max()) >= n_cls):
                raise ParameterError(
                    f"Labels must be classes in [0, {n_cls - 1}] of the model's output to read p(true class); got "
                    f"{sorted(set(int(v) for v in y_np if v < 0 or v >= n_cls))[:5]}. Use data labelled for this model."
                )
            norms = {k: v.norm(dim=1).clamp_min(1e-12) for k, v in f0.items()}
            jobs = [(k, float(p)) for k in params for p in params[k]]
            results: dict[tuple[str, float], tuple[dict[str, torch.Tensor], torch.Tensor]] = {}
            for kind, p in track(progress, jobs, len(jobs), f"invariance, layers {', '.join(layer_list)}"):
                xt = transform_images(xd, kind, p, fill_t.to(dev))
                ft, pt = feats(cap, xt)
                results[(kind, p)] = ({k: (ft[k] - f0[k]).norm(dim=1) for k in layer_list}, pt[torch.arange(n), y])
    for kind in params:
        ps = [float(p) for p in params[kind]]
        distances[kind] = {
            layer: torch.stack([results[(kind, p)][0][layer] for p in ps], dim=1).cpu().numpy() for layer in layer_list
        }
        rel[kind] = {layer: distances[kind][layer] / norms[layer].cpu().numpy()[:, None] for layer in layer_list}
        probabilities[kind] = torch.stack([results[(kind, p)][1] for p in ps], dim=1).cpu().numpy()
    return InvarianceCurves(
        transforms=list(params),
        params=params,
        layers=layer_list,
        distances=distances,
        relative_distances=rel,
        probabilities=probabilities,
        labels=labels_np,
        sample_ids=np.asarray(sample_ids if sample_ids is not None else np.arange(n), dtype=np.int64),
        fill=fill if isinstance(fill, (str, float, int)) else torch.as_tensor(fill).tolist(),
        plot_layers=None if plot_layers is None else list(plot_layers),
        model=model_info if model_info is not None else model_description(model),
        data=data_spec if data_spec is not None else data_name,
    )


class _Pool:
    """A tensor of inputs seen as a dataset (for :func:`~.occlusion.dataset_mean`)."""

    def __init__(self, x: torch.Tensor) -> None:
        self.x = x
