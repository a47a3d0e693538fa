"""Figures of the speech analyses, as :class:`matplotlib.figure.Figure` objects.

Each function builds its figure with ``Figure(...)`` directly (no pyplot state, no backend
switch), so the figures show in a notebook and are saved by the caller (``fig.savefig(path)``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Sequence

import matplotlib
import matplotlib.ticker
import numpy as np
from matplotlib.figure import Figure

if TYPE_CHECKING:  # pragma: no cover
    from matplotlib.axes import Axes

    from .analysis import LayerAnalysis

__all__ = ["plot_layer_projections", "plot_trends", "plot_embedding_scores", "plot_embedding_points", "plot_xvector_folds"]


def _scatter(ax: "Axes", xy: np.ndarray, labels: np.ndarray, names: Sequence[str], cmap: str, legend: bool) -> None:
    colors = matplotlib.colormaps[cmap]
    uniq = np.unique(labels)
    for j, c in enumerate(uniq):
        m = labels == c
        name = names[int(c)] if int(c) < len(names) else str(c)
        ax.scatter(xy[m, 0], xy[m, 1], s=3, alpha=0.7, color=colors(j % colors.N), label=name, linewidths=0)
    ax.set_xticks([])
    ax.set_yticks([])
    if legend:
        ax.legend(loc="center left", bbox_to_anchor=(1.0, 0.5), fontsize=7, markerscale=3, frameon=False)


def plot_layer_projections(analysis: "LayerAnalysis") -> Figure:
    """Rows = layers (input first), columns = the same projection coloured by digit | by speaker."""
    layers = list(analysis.embeddings)
    fig = Figure(figsize=(8.2, 3.1 * len(layers)))
    axes = fig.subplots(len(layers), 2, squeeze=False)
    by_layer = {r["layer"]: r for r in analysis.rows}
    for i, layer in enumerate(layers):
        xy = analysis.embeddings[layer]
        r = by_layer[layer]
        _scatter(axes[i, 0], xy, analysis.digit, analysis.classes, "tab10", legend=i == 0)
        _scatter(axes[i, 1], xy, analysis.speaker, analysis.speaker_names, "Dark2", legend=i == 0)
        axes[i, 0].set_title(f"{layer}: by digit  NH {r['nh_digit']:.2f} (other rec. {r['nh_digit_xutt']:.2f})", fontsize=9)
        axes[i, 1].set_title(f"{layer}: by speaker  NH {r['nh_speaker']:.2f} (other rec. {r['nh_speaker_xutt']:.2f})", fontsize=9)
    fig.suptitle(f"{analysis.name}: {analysis.info.get('method', '')} of {len(analysis.digit)} frames", fontsize=11)
    fig.tight_layout(rect=(0, 0, 1, 1 - 0.45 / fig.get_figheight()))
    return fig


def plot_trends(analyses: Sequence["LayerAnalysis"]) -> Figure:
    """NH (other recordings, projection) and probe accuracy per layer; digit solid, speaker dashed."""
    metrics = [("nh_{}_xutt", "NH on the projection (neighbours from other recordings)"),
               ("nh_{}_original_xutt", "NH in activation space (other recordings)"),
               ("probe_{}", "linear probe accuracy (held-out recordings)")]
    fig = Figure(figsize=(5.2 * len(metrics), 4.2))
    axes = fig.subplots(1, len(metrics), squeeze=False)
    colors = matplotlib.colormaps["tab10"]
    for j, (key, title) in enumerate(metrics):
        ax = axes[0, j]
        for i, a in enumerate(analyses):
            x = [r["layer_index"] for r in a.rows]
            ax.plot(x, [r[key.format("digit")] for r in a.rows], "-o", color=colors(i), ms=3, label=f"{a.name} digit")
            ax.plot(x, [r[key.format("speaker")] for r in a.rows], "--s", color=colors(i), ms=3, label=f"{a.name} speaker")
        if analyses:
            ax.axhline(analyses[0].info.get("chance_digit", 0.1), color="grey", lw=0.8, ls="-")
            ax.axhline(analyses[0].info.get("chance_speaker", 1 / 6), color="grey", lw=0.8, ls="--")
        ax.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))
        ax.set_xlabel("layer (0 = input features)")
        ax.set_title(title, fontsize=9)
        ax.set_ylim(0, 1)
        ax.grid(alpha=0.3)
    axes[0, -1].legend(loc="center left", bbox_to_anchor=(1.0, 0.5), fontsize=7, frameon=False)
    fig.suptitle("Digit (solid) vs speaker (dashed) information per layer; grey: chance", fontsize=11)
    fig.tight_layout()
    return fig


def plot_embedding_scores(rows: Sequence[dict[str, Any]], info: dict[str, Any]) -> Figure:
    """Purity, ARI and NMI of the speaker clustering per layer.

    ``rows``: :attr:`EmbeddingStudy.rows <layerscope.speech.embeddings.EmbeddingStudy.rows>`
    (``layer``, ``layer_index``, ``purity``, ``ari``, ``nmi``); ``info``: ``chance_purity``,
    ``n_recordings``, ``n_speakers``.
    """
    fig = Figure(figsize=(6, 4))
    ax = fig.subplots()
    x = [r["layer_index"] for r in rows]
    for key, style in (("purity", "-o"), ("ari", "-s"), ("nmi", "-^")):
        ax.plot(x, [r[key] for r in rows], style, label=key.upper() if key != "purity" else "purity")
    ax.axhline(info.get("chance_purity", 0), color="grey", lw=0.8, label="purity of one cluster")
    ax.set_xticks(x)
    ax.set_xticklabels([r["layer"] for r in rows], rotation=30, fontsize=8)
    ax.set_ylim(0, 1.02)
    ax.set_title(
        f"Agglomerative clustering of {info.get('n_recordings')} recordings, "
        f"{info.get('n_speakers')} speakers", fontsize=10,
    )
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def plot_embedding_points(points: dict[str, Any]) -> Figure:
    """2-D PCA of one layer's utterance embeddings: true speaker | cluster.

    ``points``: :meth:`EmbeddingStudy.points <layerscope.speech.embeddings.EmbeddingStudy.points>`
    (``layer``, ``x``, ``y``, ``speaker``, ``cluster``, ``speaker_names``).
    """
    pts = points
    xy = np.column_stack([pts["x"], pts["y"]])
    fig = Figure(figsize=(10, 4.2))
    axes = fig.subplots(1, 2)
    _scatter(axes[0], xy, np.asarray(pts["speaker"]), list(pts.get("speaker_names") or []), "Dark2", legend=True)
    cl = np.asarray(pts["cluster"])
    _scatter(axes[1], xy, cl, [f"cluster {c}" for c in range(int(cl.max()) + 1)], "Set1", legend=True)
    axes[0].set_title(f"{pts['layer']}: true speaker", fontsize=10)
    axes[1].set_title(f"{pts['layer']}: agglomerative clusters", fontsize=10)
    fig.tight_layout()
    return fig


def plot_xvector_folds(rows: Sequence[dict[str, Any]], methods: Sequence[str]) -> Figure:
    """ARI, purity and EER per method on held-out speakers: one dot per fold, a bar at the mean."""
    fig = Figure(figsize=(4 + 1.1 * len(methods), 3.6), layout="constrained")
    axes = fig.subplots(1, 3)
    for ax, key, title in zip(axes, ("ari", "purity", "eer"), ("ARI (higher better)", "purity", "EER (lower better)")):
        for j, m in enumerate(methods):
            v = np.asarray([r[key] for r in rows if r["method"] == m], dtype=float)
            if v.size == 0:
                continue
            ax.bar(j, v.mean(), color="C0" if m == "xvector" else "C1" if m == "frame_dnn" else "0.7", alpha=0.6)
            ax.scatter(np.full(v.size, j) + np.linspace(-0.2, 0.2, v.size), v, s=8, color="k", zorder=3)
        ax.set_xticks(range(len(methods)), [m.replace("frame_dnn:", "dnn:") for m in methods], rotation=60, fontsize=7)
        ax.set_title(title, fontsize=9)
        ax.set_ylim(0 if key != "ari" else min(0.0, ax.get_ylim()[0]), 1)
    fig.suptitle("Unseen speakers per fold: x-vector vs frame-DNN means", fontsize=9)
    return fig
