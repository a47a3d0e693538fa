"""Figures of the DBN analyses, drawn from the numbers of their results (``matplotlib.figure.Figure``,
no pyplot state)."""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np
from matplotlib.figure import Figure

__all__ = ["plot_reconstruction", "plot_comparison_layers", "plot_depth", "plot_unit_views"]


def plot_reconstruction(history: Sequence[Sequence[dict[str, Any]]]) -> Figure:
    """One curve per layer: reconstruction error against epoch (log scale)."""
    fig = Figure(figsize=(5.5, 3.6))
    ax = fig.add_subplot(1, 1, 1)
    for i, rows in enumerate(history, start=1):
        if rows:
            ax.plot([r["epoch"] for r in rows], [r["reconstruction_error"] for r in rows], "o-", ms=3, label=f"RBM {i}")
    ax.set_xlabel("epoch")
    ax.set_ylabel("reconstruction error (MSE)")
    ax.set_yscale("log")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    return fig


def _spread(values: list[float]) -> tuple[float, float, float]:
    v = np.asarray(values, float)
    return float(v.mean()), float(v.mean() - v.min()), float(v.max() - v.mean())


def plot_comparison_layers(table: Sequence[dict[str, Any]]) -> Figure:
    """Per (features, depth): digit and speaker NH per layer, pre-trained (solid) vs random (dashed)."""
    groups = list(dict.fromkeys((r["features"], r["depth"]) for r in table))
    n = max(len(groups), 1)
    cols = min(n, 3)
    rows_ = (n + cols - 1) // cols
    fig = Figure(figsize=(4.2 * cols, 3.2 * rows_))
    for gi, (feat, depth) in enumerate(groups):
        ax = fig.add_subplot(rows_, cols, gi + 1)
        for init, style in (("pretrained", "-"), ("random", "--")):
            for key, colour in (("nh_digit", "tab:blue"), ("nh_speaker", "tab:red")):
                sel = [r for r in table if r["features"] == feat and r["depth"] == depth and r["init"] == init]
                idx = sorted({r["layer_index"] for r in sel})
                stats = [_spread([r[key] for r in sel if r["layer_index"] == i]) for i in idx]
                if not stats:
                    continue
                m = [s[0] for s in stats]
                ax.errorbar(idx, m, yerr=np.array([[s[1] for s in stats], [s[2] for s in stats]]), fmt="o" + style,
                            ms=3, color=colour, label=f"{key[3:]} NH, {init}", capsize=2)
        ax.set_title(f"{feat}, depth {depth}", fontsize=9)
        ax.set_xlabel("layer (0 = input)")
        ax.set_ylim(0, 1)
        ax.grid(alpha=0.3)
        if gi == 0:
            ax.legend(fontsize=6)
    fig.tight_layout()
    return fig


def plot_depth(runs: Sequence[dict[str, Any]]) -> Figure:
    """Frame accuracy against depth, per feature kind and initialisation."""
    fig = Figure(figsize=(5.5, 3.6))
    ax = fig.add_subplot(1, 1, 1)
    for feat in dict.fromkeys(r["features"] for r in runs):
        for init, style in (("pretrained", "-"), ("random", "--")):
            sel = [r for r in runs if r["features"] == feat and r["init"] == init]
            depths = sorted({r["depth"] for r in sel})
            stats = [_spread([r["frame_accuracy"] for r in sel if r["depth"] == d]) for d in depths]
            if stats:
                ax.errorbar(depths, [s[0] for s in stats], yerr=np.array([[s[1] for s in stats], [s[2] for s in stats]]),
                            fmt="o" + style, ms=3, capsize=2, label=f"{feat}, {init}")
    ax.set_xlabel("hidden layers")
    ax.set_ylabel("test frame accuracy")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    return fig


def plot_unit_views(views: dict[str, np.ndarray], image_shape: Sequence[int], units: Sequence[int], title: str) -> Figure:
    """Rows = views (maximize, sampling, ..., linear), columns = units; each image scaled to its own range."""
    names = list(views)
    n_units = max(len(v) for v in views.values())
    fig = Figure(figsize=(0.9 * n_units + 1.2, 1.0 * len(names) + 0.5))
    shape = tuple(image_shape[-2:]) if len(image_shape) >= 2 else (1, int(np.prod(image_shape)))
    for r, name in enumerate(names):
        for c in range(n_units):
            ax = fig.add_subplot(len(names), n_units, r * n_units + c + 1)
            ax.set_xticks([])
            ax.set_yticks([])
            if c < len(views[name]):
                ax.imshow(np.asarray(views[name][c]).reshape(shape), cmap="gray")
            if c == 0:
                ax.set_ylabel(name, fontsize=7)
            if r == 0 and c < len(units):
                ax.set_title(f"unit {units[c]}", fontsize=7)
    fig.suptitle(title, fontsize=9)
    return fig
