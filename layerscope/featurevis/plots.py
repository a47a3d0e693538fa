"""Figures for activation maximisation: a grid of the units' images, one PNG per unit, traces.

Inputs of any shape are drawn: ``(1|3, H, W)`` images (greyscale / RGB), other ``(C, H, W)`` as
the channel mean, ``(T, F)`` frame features as a heat map (features up, frames across), ``(D,)``
vectors as a square when ``D`` is a square number, else as a strip.

The plot functions build a :class:`matplotlib.figure.Figure` directly (no pyplot state, no backend
switch) and return it; :meth:`layerscope.featurevis.ActMaxResult.save` writes them.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Sequence

import numpy as np
from matplotlib.figure import Figure

__all__ = ["to_display", "plot_grid", "save_unit_images", "plot_traces"]


def _minmax(a: np.ndarray) -> np.ndarray:
    lo, hi = float(np.min(a)), float(np.max(a))
    return (a - lo) / (hi - lo) if hi > lo else np.zeros_like(a)


def _symmetric(a: np.ndarray, q: float = 99.5) -> np.ndarray:
    """0 to mid-grey, +-(the q-th percentile of |a|) to white / black, clipped beyond.

    Erhan-style solutions have both signs and are often dominated by a few large values; a
    robust symmetric scale shows the rest of the pattern too.
    """
    s = float(np.percentile(np.abs(a), q)) if a.size else 0.0
    if s <= 0:
        s = float(np.max(np.abs(a))) if a.size else 0.0
    if s <= 0:
        return np.full_like(a, 0.5)
    return np.clip(0.5 + 0.5 * a / s, 0.0, 1.0)


def to_display(x: np.ndarray, normalization: Any = None, scale: str = "symmetric") -> tuple[np.ndarray, str | None]:
    """One input (``input_shape``) to a displayable array and a colour map.

    ``scale="symmetric"`` maps 0 to mid-grey and the 99.5th percentile of ``|x|`` to white / black
    (Erhan-style solutions live on a sphere, not in the data's range, and have both signs);
    ``scale="minmax"`` stretches each image to [0, 1]; ``scale="data"`` maps back through
    ``normalization`` and clips to [0, 1] (Lucid-style solutions, squashed into the data's range).
    Returns ``(array (H, W) or (H, W, 3), cmap or None)``.
    """
    a = np.asarray(x, dtype=np.float32)
    if a.ndim == 3:
        if scale == "data" and normalization is not None and hasattr(normalization, "denormalize"):
            a = np.clip(normalization.denormalize(a[None])[0], 0.0, 1.0)
        elif scale == "data":
            a = np.clip(a, 0.0, 1.0)
        elif scale == "symmetric":
            a = _symmetric(a)
        else:
            a = _minmax(a)
        if a.shape[0] == 3:
            return np.transpose(a, (1, 2, 0)), None
        return a.mean(axis=0) if a.shape[0] != 1 else a[0], "gray"
    if a.ndim == 2:
        return _minmax(a.T), "magma"
    if a.ndim == 1:
        s = int(round(math.sqrt(a.size)))
        if s * s == a.size:
            return _minmax(a.reshape(s, s)), "gray"
        return _minmax(a[None, :]), "magma"
    return _minmax(a.reshape(a.shape[0], -1)), "magma"


def _upscale(a: np.ndarray, min_side: int = 112) -> np.ndarray:
    h, w = a.shape[:2]
    fy = max(1, min_side // max(1, h)) if h > 1 else 1
    fx = max(1, min_side // max(1, w)) if w > 1 else 1
    if a.ndim == 3:
        return np.repeat(np.repeat(a, fy, axis=0), fx, axis=1)
    return np.repeat(np.repeat(a, max(fy, 1) if h > 1 else 16, axis=0), fx, axis=1)


def _titles(result: Any) -> list[str]:
    out = []
    for i, u in enumerate(np.asarray(result.units).tolist()):
        t = f"{u}: {float(result.activation[i]):.3g}"
        if getattr(result, "class_probability", None) is not None:
            t += f"\np={float(result.class_probability[i]):.3f}"
        elif getattr(result, "data_max", None) is not None:
            t += f"\n(data {float(result.data_max[i]):.3g})"
        out.append(t)
    return out


def plot_grid(
    result: Any,
    *,
    normalization: Any = None,
    scale: str | None = None,
    ncols: int | None = None,
    title: str | None = None,
    class_names: Sequence[str] | None = None,
) -> Figure:
    """Grid of the best image of every unit, titled with unit and activation reached."""
    images = np.asarray(result.images)
    n = len(images)
    scale = scale or ("data" if getattr(result, "method", "") == "lucid" else "symmetric")
    ncols = ncols or max(1, math.ceil(math.sqrt(n)))
    nrows = max(1, math.ceil(n / ncols))
    fig = Figure(figsize=(1.6 * ncols, 1.9 * nrows + 0.5))
    axes = fig.subplots(nrows, ncols, squeeze=False)
    titles = _titles(result)
    for k, ax in enumerate(axes.flat):
        ax.set_axis_off()
        if k >= n:
            continue
        a, cmap = to_display(images[k], normalization, scale)
        ax.imshow(a, cmap=cmap, vmin=0, vmax=1, aspect="auto" if a.ndim == 2 and a.shape[0] == 1 else "equal",
                  interpolation="nearest")
        t = titles[k]
        if class_names is not None and getattr(result, "kind", "") in ("logit", "prob"):
            u = int(result.units[k])
            if u < len(class_names) and str(class_names[u]) != str(u):
                t = f"{class_names[u]} " + t
        ax.set_title(t, fontsize=7)
    fig.suptitle(title or f"{getattr(result, 'method', '')}: {getattr(result, 'objective', '')}", fontsize=9)
    fig.tight_layout()
    return fig


def save_unit_images(
    result: Any, directory: str | Path, *, normalization: Any = None, scale: str | None = None
) -> list[Path]:
    """One PNG per unit (``unit_0003.png``), upscaled with nearest neighbours; returns the paths."""
    from matplotlib.image import imsave

    from .._io import atomic_path

    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    scale = scale or ("data" if getattr(result, "method", "") == "lucid" else "symmetric")
    paths = []
    for k, u in enumerate(np.asarray(result.units).tolist()):
        a, cmap = to_display(np.asarray(result.images[k]), normalization, scale)
        p = d / f"unit_{int(u):04d}.png"
        with atomic_path(p) as tmp:
            imsave(tmp, _upscale(np.clip(a, 0, 1)), cmap=cmap, vmin=0, vmax=1, format="png")
        paths.append(p)
    return paths


def plot_traces(result: Any, max_lines: int = 64) -> Figure:
    """Objective over the steps, one line per unit (best restart)."""
    tr = np.asarray(result.trace)
    fig = Figure(figsize=(6, 3.5))
    ax = fig.subplots()
    steps = np.arange(1, tr.shape[0] + 1)
    for i in range(min(tr.shape[1], max_lines)):
        ax.plot(steps, tr[:, i], lw=0.8, alpha=0.8)
    ax.set_xlabel("step")
    ax.set_ylabel("objective")
    ax.set_title(f"{getattr(result, 'objective', '')} over the steps", fontsize=9)
    fig.tight_layout()
    return fig
