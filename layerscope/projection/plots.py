"""Figures in the style of Rauber et al. (2017): class-coloured scatter plots, misclassified
observations as triangles coloured by the predicted class, optional thumbnails of outliers, NH and
AC in the title; grids of projections (layers x checkpoints), trails of aligned sequences and
neuron projections. Probe and CKA figures live in :mod:`layerscope.similarity_plots`.

Every function builds a :class:`matplotlib.figure.Figure` directly (no pyplot state, no backend
switch) and returns it; :func:`save_figure` writes one as PNG.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Sequence

import numpy as np
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from .metrics import neighborhood_hit_per_point
from .projectors import Projection

__all__ = [
    "plot_projection",
    "plot_projection_grid",
    "plot_trails",
    "plot_nh_by_layer",
    "plot_neurons",
    "save_figure",
    "outlier_indices",
]


def _cmap(n_classes: int) -> Any:
    import matplotlib

    return matplotlib.colormaps["tab10" if n_classes <= 10 else "tab20"]


def save_figure(fig: Figure, path: str | os.PathLike[str], dpi: int = 110) -> Path:
    """Save ``fig`` as PNG, atomically (the file appears whole or not at all)."""
    from .._io import atomic_path

    p = Path(path)
    with atomic_path(p) as tmp:
        fig.savefig(tmp, format="png", dpi=dpi, bbox_inches="tight")
    return p


def _rotate_xticks(ax: Any) -> None:
    for label in ax.get_xticklabels():
        label.set_rotation(45)
        label.set_horizontalalignment("right")


def title_of(p: Projection) -> str:
    """``layer (epoch e): NH 0.98 | AC 0.99`` like the paper's captions."""
    head = p.layer or "activations"
    if p.checkpoint is not None:
        head += f" (epoch {p.checkpoint})"
    parts = []
    if "nh" in p.metrics:
        parts.append(f"NH {100 * p.metrics['nh']:.2f}%")
    if p.metrics.get("ac") is not None:
        parts.append(f"AC {100 * p.metrics['ac']:.2f}%")
    return head + ("\n" + " | ".join(parts) if parts else "")


def outlier_indices(p: Projection, n: int, k: int | None = None) -> np.ndarray:
    """``n`` points whose neighbourhoods are most foreign to them (lowest per-point NH), spread out."""
    k = int(p.metrics.get("k", 6)) if k is None else k
    if n <= 0:
        return np.zeros(0, dtype=int)
    score = neighborhood_hit_per_point(p.embedding, p.labels, k)
    order = np.argsort(score, kind="stable")
    span = np.ptp(p.embedding, axis=0).max() or 1.0
    chosen: list[int] = []
    for i in order:
        if score[i] >= 0.5 or len(chosen) >= n:
            break
        if all(np.linalg.norm(p.embedding[i] - p.embedding[j]) > 0.06 * span for j in chosen):
            chosen.append(int(i))
    return np.asarray(chosen, dtype=int)


def plot_projection(
    p: Projection,
    ax: Any = None,
    *,
    classes: Sequence[str] | None = None,
    images: np.ndarray | None = None,
    n_thumbnails: int = 0,
    point_size: float = 6.0,
    legend: bool = True,
    title: str | None = None,
) -> Figure:
    """Scatter plot of a projection (Rauber et al. 2017, Fig. 1 style).

    Parameters
    ----------
    p : Projection
    ax : matplotlib Axes, optional
        Draw into this axes (a new figure otherwise).
    classes : list of str, optional
        Class names for the legend.
    images : ndarray of shape (n, H, W) or (n, H, W, 3), optional
        Display-range images of the projected observations (same order), for thumbnails.
    n_thumbnails : int, default 0
        Show this many thumbnails of outliers (points with the lowest per-point NH).

    Returns
    -------
    The matplotlib Figure.
    """
    if ax is None:
        fig = Figure(figsize=(6, 6))
        ax = fig.subplots()
    else:
        fig = ax.figure
    y = np.asarray(p.labels).astype(int)
    n_classes = int(max(y.max(), -1 if p.predictions is None else int(np.max(p.predictions))) + 1)
    cmap = _cmap(n_classes)
    ok = ~p.misclassified
    e = p.embedding
    ax.scatter(e[ok, 0], e[ok, 1], c=[cmap(c % cmap.N) for c in y[ok]], s=point_size, marker="o",
               linewidths=0, alpha=0.8, rasterized=True)
    bad = ~ok
    if bad.any() and p.predictions is not None:
        pred = np.asarray(p.predictions).astype(int)
        ax.scatter(e[bad, 0], e[bad, 1], c=[cmap(c % cmap.N) for c in pred[bad]], s=point_size * 4, marker="^",
                   edgecolors="black", linewidths=0.4, alpha=0.95)
    if images is not None and n_thumbnails > 0 and "nh" in p.metrics:
        from matplotlib.offsetbox import AnnotationBbox, OffsetImage

        for i in outlier_indices(p, n_thumbnails):
            img = np.asarray(images[i])
            oi = OffsetImage(img, zoom=20.0 / max(img.shape[:2]), cmap="gray" if img.ndim == 2 else None)
            ab = AnnotationBbox(oi, e[i], frameon=True, pad=0.1,
                                bboxprops={"edgecolor": cmap(int(y[i]) % cmap.N), "linewidth": 1.2})
            ax.add_artist(ab)
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_title(title if title is not None else title_of(p), fontsize=9)
    if legend:
        names = list(classes) if classes is not None else [str(c) for c in range(n_classes)]
        handles = [Line2D([], [], marker="o", ls="", color=cmap(c % cmap.N), label=names[c] if c < len(names) else str(c))
                   for c in np.unique(y)]
        if p.predictions is not None and bad.any():
            handles.append(Line2D([], [], marker="^", ls="", markerfacecolor="white", markeredgecolor="black",
                                  label="misclassified\n(colour = predicted)"))
        ax.legend(handles=handles, fontsize=6, loc="center left", bbox_to_anchor=(1.0, 0.5), frameon=False)
    return fig


def plot_projection_grid(
    grid: Sequence[Sequence[Projection | None]],
    *,
    classes: Sequence[str] | None = None,
    images: np.ndarray | None = None,
    n_thumbnails: int = 0,
    panel: float = 3.2,
) -> Figure:
    """Projections side by side: ``grid[row][col]`` (e.g. rows = checkpoints, columns = layers)."""
    rows = len(grid)
    cols = max(len(r) for r in grid)
    fig = Figure(figsize=(panel * cols + 1.2, panel * rows))
    axes = fig.subplots(rows, cols, squeeze=False)
    for i, r in enumerate(grid):
        for j in range(cols):
            ax = axes[i][j]
            p = r[j] if j < len(r) else None
            if p is None:
                ax.axis("off")
                continue
            plot_projection(p, ax, classes=classes, images=images, n_thumbnails=n_thumbnails, point_size=3,
                            legend=(i == 0 and j == cols - 1))
    fig.tight_layout()
    return fig


def plot_trails(
    frames: Sequence[Projection],
    *,
    classes: Sequence[str] | None = None,
    max_trails: int = 400,
    random_state: int = 0,
) -> Figure:
    """An aligned sequence as one picture: the last frame, with each point's path over the
    earlier frames drawn as a fading trail (Rauber et al. 2017, the trails of Fig. 9)."""
    from matplotlib.collections import LineCollection

    last = frames[-1]
    fig = Figure(figsize=(7, 6))
    ax = fig.subplots()
    n = len(last.labels)
    rng = np.random.default_rng(random_state)
    sel = np.sort(rng.choice(n, size=min(max_trails, n), replace=False))
    y = np.asarray(last.labels).astype(int)
    cmap = _cmap(int(y.max()) + 1)
    # Frames are drawn in a common frame of reference: scale each to the last frame's spread.
    scale = np.std(last.embedding)
    embs = [f.embedding * (scale / (np.std(f.embedding) or 1.0)) for f in frames]
    for t in range(len(embs) - 1):
        segs = np.stack([embs[t][sel], embs[t + 1][sel]], axis=1)
        alpha = 0.1 + 0.4 * (t + 1) / max(len(embs) - 1, 1)
        ax.add_collection(LineCollection(segs, colors=[cmap(c % cmap.N) for c in y[sel]], linewidths=0.6,  # type: ignore[arg-type]  # stubs: Sequence; (N, 2, 2) array works
                                         alpha=alpha))
    plot_projection(replace_embedding(last, embs[-1]), ax, classes=classes, point_size=5,
                    title=f"{title_of(last)}\ntrails over {len(frames)} frames: "
                          + " → ".join(str(f.layer if f.checkpoint is None or len({g.checkpoint for g in frames}) == 1
                                           else f.checkpoint) for f in frames))
    return fig


def replace_embedding(p: Projection, emb: np.ndarray) -> Projection:
    from dataclasses import replace

    return replace(p, embedding=emb)


def plot_nh_by_layer(table: dict[str, dict[str, float]], *, metric_labels: dict[str, str] | None = None,
                     title: str = "Neighborhood hit per layer") -> Figure:
    """Lines of NH (and NH in activation space) per layer, one line per checkpoint.

    ``table[series][layer] = value``.
    """
    fig = Figure(figsize=(max(5, 0.6 * max(len(v) for v in table.values()) + 2), 4))
    ax = fig.subplots()
    for name, vals in table.items():
        ax.plot(list(vals), [100 * v for v in vals.values()], marker="o", label=name)
    ax.set_ylabel("NH (%)")
    ax.set_xlabel("layer")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    _rotate_xticks(ax)
    fig.tight_layout()
    return fig


def plot_neurons(embedding: np.ndarray, importance: np.ndarray, *, title: str = "", cls_name: str = "") -> Figure:
    """Neuron projection: one point per neuron, colour = discriminative power for a class."""
    fig = Figure(figsize=(6, 5))
    ax = fig.subplots()
    order = np.argsort(importance, kind="stable")  # most discriminative neurons drawn on top
    sc = ax.scatter(embedding[order, 0], embedding[order, 1], c=np.asarray(importance)[order], cmap="viridis", s=14,
                    linewidths=0)
    cb = fig.colorbar(sc, ax=ax)
    cb.set_label(f"feature importance, class {cls_name} vs rest")
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_title(title, fontsize=9)
    return fig
