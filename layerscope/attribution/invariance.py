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
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .._progress import Tracker, no_progress
from ..capture import capture, first_tensor, model_device, model_state_guard
from ..exceptions import InputShapeError, ParameterError

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


@dataclass(frozen=True)
class InvarianceCurves:
    """Feature distances and true-class probabilities under transformations (Z&F Fig. 5).

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
    """

    transforms: list[str]
    params: dict[str, np.ndarray]
    layers: list[str]
    distances: dict[str, dict[str, np.ndarray]]
    relative_distances: dict[str, dict[str, np.ndarray]]
    probabilities: dict[str, np.ndarray]
    labels: np.ndarray
    sample_ids: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))

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
    x: torch.Tensor,
    labels: Sequence[int] | np.ndarray,
    *,
    layers: Sequence[str] | None = None,
    ranges: dict[str, Sequence[float] | np.ndarray] | None = None,
    fill: float | Sequence[float] = 0.0,
    batch_size: int = 256,
    sample_ids: Sequence[int] | None = None,
    device: torch.device | str | None = None,
    progress: Tracker | None = None,
) -> InvarianceCurves:
    """Measure how features and the class probability change under transformations.

    Parameters
    ----------
    model
        Classifier returning logits; run in ``eval()``, left unchanged.
    x
        ``(N, C, H, W)`` images in the model's normalised space.
    labels
        ``(N,)`` true classes.
    layers
        Layers to measure (default ``model.hidden_layers``).
    ranges
        ``{transform: values}``; default :func:`default_ranges`. Only the given transforms run.
    fill
        Value of pixels warped in from outside (normalised space, scalar or per channel).

    Returns
    -------
    InvarianceCurves
    """
    if x.ndim != 4:
        raise InputShapeError(f"invariance_curves needs images (N, C, H, W); got {tuple(x.shape)}.")
    labels_np = np.asarray(labels, dtype=np.int64)
    if labels_np.shape != (x.shape[0],):
        raise ParameterError(f"labels must have one entry per image ({x.shape[0]}); got shape {labels_np.shape}.")
    layer_list = list(layers if layers is not None else getattr(model, "hidden_layers", []) or [])
    if not layer_list:
        raise ParameterError("No layers to measure: pass layers=[...] (the model has no hidden_layers).")
    rng = dict(ranges) if ranges is not None else default_ranges(min(x.shape[2:]))
    for kind in rng:
        if kind not in KINDS:
            raise ParameterError(f"transform must be one of {', '.join(KINDS)}; got {kind!r}.")
    dev = model_device(model, device)
    xd = x.detach().float().to(dev)
    fill_t = torch.as_tensor(fill, dtype=torch.float32)
    track = progress or no_progress
    n = x.shape[0]
    y = torch.as_tensor(labels_np, device=dev)

    def feats(cap: capture, xb: torch.Tensor) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
        out: dict[str, list[torch.Tensor]] = {layer: [] for layer in layer_list}
        probs = []
        for s in range(0, xb.shape[0], batch_size):
            logits = first_tensor(cap.run(xb[s : s + batch_size]))
            if logits is None or logits.ndim != 2:
                raise InputShapeError("invariance_curves needs a classifier returning logits (N, classes).")
            probs.append(torch.softmax(logits.float(), 1))
            for layer in layer_list:
                out[layer].append(cap[layer].flatten(1).float())
        return {k: torch.cat(v) for k, v in out.items()}, torch.cat(probs)

    distances: dict[str, dict[str, np.ndarray]] = {}
    rel: dict[str, dict[str, np.ndarray]] = {}
    probabilities: dict[str, np.ndarray] = {}
    params = {k: np.asarray(v, dtype=np.float64) for k, v in rng.items()}
    with model_state_guard(model), torch.no_grad():
        model.eval()
        with capture(model, layer_list) as cap:
            f0, _ = feats(cap, xd)
            norms = {k: v.norm(dim=1).clamp_min(1e-12) for k, v in f0.items()}
            jobs = [(k, float(p)) for k in params for p in params[k]]
            results: dict[tuple[str, float], tuple[dict[str, torch.Tensor], torch.Tensor]] = {}
            for kind, p in track(jobs, len(jobs), "invariance"):
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
    )
