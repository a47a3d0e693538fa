"""Figures of the similarity measures: linear probe accuracy per layer (Alain & Bengio 2016) and
linear CKA matrices (Kornblith et al. 2019).

Each function builds a :class:`matplotlib.figure.Figure` directly (no pyplot state, no backend
switch) and returns it; save it with ``fig.savefig(path)``.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
from matplotlib.figure import Figure

__all__ = ["plot_cka", "plot_probes"]


def plot_cka(matrix: np.ndarray, rows: Sequence[str], cols: Sequence[str], *, title: str = "Linear CKA",
             xlabel: str = "", ylabel: str = "") -> Figure:
    """Heat map of a CKA matrix with the values written in the cells (if it is small).

    Parameters
    ----------
    matrix : ndarray of shape (len(rows), len(cols))
        CKA values in [0, 1]; NaN cells are left blank.
    rows, cols : list of str
        Layer names of the two representations.
    """
    m = np.asarray(matrix, dtype=float)
    fig = Figure(figsize=(1.0 + 0.55 * len(cols) + 1.5, 1.0 + 0.5 * len(rows)))
    ax = fig.subplots()
    im = ax.imshow(m, vmin=0, vmax=1, cmap="magma", origin="upper")
    ax.set_xticks(range(len(cols)), list(cols), rotation=45, ha="right", fontsize=7)
    ax.set_yticks(range(len(rows)), list(rows), fontsize=7)
    if m.size <= 400:
        for i in range(m.shape[0]):
            for j in range(m.shape[1]):
                if np.isfinite(m[i, j]):
                    ax.text(j, i, f"{m[i, j]:.2f}", ha="center", va="center", fontsize=6,
                            color="white" if m[i, j] < 0.6 else "black")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=9)
    fig.colorbar(im, ax=ax, fraction=0.046)
    fig.tight_layout()
    return fig


def plot_probes(layers: Sequence[str], series: dict[str, Sequence[float]], chance: float | None = None,
                title: str = "Linear probe accuracy per layer") -> Figure:
    """Held-out accuracy of the linear probes per layer (one line per model/checkpoint).

    Parameters
    ----------
    layers : list of str
    series : dict name -> accuracies, one per layer, in [0, 1]
    chance : float, optional
        Majority-class accuracy, drawn dashed.
    """
    fig = Figure(figsize=(max(5, 0.6 * len(layers) + 2), 4))
    ax = fig.subplots()
    for name, acc in series.items():
        ax.plot(list(layers), [100 * a for a in acc], marker="o", label=name)
    if chance is not None:
        ax.axhline(100 * chance, color="gray", ls="--", lw=1, label="chance (majority class)")
    ax.set_ylabel("held-out accuracy (%)")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    for label in ax.get_xticklabels():
        label.set_rotation(45)
        label.set_horizontalalignment("right")
    fig.tight_layout()
    return fig
