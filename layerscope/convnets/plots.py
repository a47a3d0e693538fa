"""Figures laid out like Zeiler & Fergus (2014, arXiv 1311.2901).

* :func:`plot_topk` — Fig. 2: per unit, a 3x3 mosaic of projections next to a 3x3 mosaic of the
  receptive-field patches.
* :func:`plot_projections` — an input and the projection of one activation under each rule.
* :func:`plot_occlusion` — Fig. 7: (a) input with the square, (b) feature-map activation,
  (d) true-class probability, (e) most probable label; one row per image.
* :func:`plot_invariance` — Fig. 5: rows translate / scale / rotate; columns feature distance at
  each chosen layer and true-class probability.
* :func:`plot_evolution` — Fig. 4: units x epochs grid of projected top activations.
* :func:`plot_correspondence` — Δ per layer, parts vs random masks.

Every function builds a :class:`matplotlib.figure.Figure` directly (no pyplot state, no backend
switch) and returns it: it shows in a notebook, and ``fig.savefig(path)`` writes it.
"""

from __future__ import annotations

import math
from typing import Any, Mapping, Sequence

import matplotlib
import matplotlib.patches
import numpy as np
from matplotlib.figure import Figure

__all__ = [
    "image_for_display",
    "projection_for_display",
    "plot_topk",
    "plot_projections",
    "plot_occlusion",
    "plot_invariance",
    "plot_evolution",
    "plot_correspondence",
]


def image_for_display(a: np.ndarray) -> np.ndarray:
    """``(C, H, W)`` display-range image to ``(H, W)`` grey or ``(H, W, 3)`` RGB in [0, 1]."""
    a = np.asarray(a, dtype=np.float32)
    if a.ndim == 2:
        a = a[None]
    img = a[0] if a.shape[0] == 1 else np.moveaxis(a[:3], 0, -1)
    return np.clip(np.nan_to_num(img), 0.0, 1.0)


def projection_for_display(p: np.ndarray) -> np.ndarray:
    """A projection ``(C, H, W)`` scaled by its largest magnitude to [0, 1], zero at 0.5 grey."""
    p = np.asarray(p, dtype=np.float32)
    m = float(np.abs(p).max())
    return image_for_display(0.5 + 0.5 * p / m if m > 0 else np.full_like(p, 0.5))


def _mosaic(tiles: Sequence[np.ndarray], cols: int, gap: int = 1, fill: float = 1.0) -> np.ndarray:
    if not tiles:
        return np.ones((1, 1))
    h, w = tiles[0].shape[:2]
    rgb = tiles[0].ndim == 3
    rows = math.ceil(len(tiles) / cols)
    shape = (rows * (h + gap) - gap, cols * (w + gap) - gap) + ((3,) if rgb else ())
    out = np.full(shape, fill, dtype=np.float32)
    for i, t in enumerate(tiles):
        r, c = divmod(i, cols)
        out[r * (h + gap) : r * (h + gap) + h, c * (w + gap) : c * (w + gap) + w] = t
    return out


def _subplots(rows: int, cols: int, figsize: tuple[float, float]) -> tuple[Figure, np.ndarray]:
    """A new :class:`~matplotlib.figure.Figure` (no pyplot state) and its ``(rows, cols)`` axes."""
    fig = Figure(figsize=figsize)
    axes = np.asarray(fig.subplots(rows, cols, squeeze=False))
    return fig, axes


def _imshow(ax: Any, img: np.ndarray, **kw: Any) -> None:
    ax.imshow(img, cmap="gray" if img.ndim == 2 else None, vmin=0, vmax=1, interpolation="nearest", **kw)
    ax.set_xticks([])
    ax.set_yticks([])


def plot_topk(top: Any, max_units: int = 16) -> Figure:
    """Z&F Fig. 2: per unit, projections (left) and receptive-field patches (right)."""
    n_u = min(len(top.units), max_units)
    k = top.k
    side = math.ceil(math.sqrt(k))
    cols = min(4, n_u)
    rows = math.ceil(n_u / cols)
    n_panels = 2 if top.projections is not None and top.patches is not None else 1
    if top.projections is None and top.patches is None:  # ranking only: a bar chart of the values
        fig, axes = _subplots(1, 1, (1.0 + 0.5 * n_u, 3.0))
        ax = axes[0, 0]
        for j in range(k):
            ax.scatter(np.arange(n_u), top.values[:n_u, j], s=8, color="k")
        ax.set_xticks(np.arange(n_u))
        ax.set_xticklabels([str(int(u)) for u in top.units[:n_u]], fontsize=7)
        ax.set_xlabel("unit")
        ax.set_ylabel(f"top-{k} activations")
        ax.set_title(f"{top.layer}: top-{k} activations per unit", fontsize=9)
        return fig
    fig, axes = _subplots(rows, cols * n_panels, (2.2 * cols * n_panels, 2.4 * rows))
    for ax in axes.flat:
        ax.axis("off")
    for i in range(n_u):
        r, c = divmod(i, cols)
        valid = top.sample_ids[i] >= 0
        panels = []
        if top.projections is not None:
            panels.append(("projections", [projection_for_display(top.projections[i, j]) for j in range(k) if valid[j]]))
        if top.patches is not None:
            panels.append(("patches", [image_for_display(top.patches[i, j]) for j in range(k) if valid[j]]))
        for pi, (what, tiles) in enumerate(panels[:n_panels]):
            ax = axes[r, c * n_panels + pi]
            ax.axis("on")
            _imshow(ax, _mosaic(tiles, side))
            ax.set_title(f"unit {int(top.units[i])} {what}", fontsize=7)
    rf = top.receptive_field
    rf_txt = f", receptive field {'x'.join(map(str, rf.size))}" if rf is not None and not rf.is_global else ""
    fig.suptitle(f"{top.layer}: top-{k} activations per unit ({top.rule or 'no'} projection{rf_txt})", fontsize=9)
    return fig


def plot_projections(
    image: np.ndarray,
    projections: Mapping[str, np.ndarray],
    title: str = "",
    row_labels: Sequence[str] | None = None,
) -> Figure:
    """One row per projected activation: the input, then one column per rule.

    ``projections[rule]`` is ``(R, C, H, W)``; ``image`` is ``(C, H, W)`` (display range) or
    ``(R, C, H, W)``.
    """
    rules = list(projections)
    n_rows = next(iter(projections.values())).shape[0]
    imgs = image if image.ndim == 4 else np.repeat(image[None], n_rows, axis=0)
    fig, axes = _subplots(n_rows, 1 + len(rules), (1.6 * (1 + len(rules)), 1.7 * n_rows))
    for r in range(n_rows):
        _imshow(axes[r, 0], image_for_display(imgs[r]))
        if row_labels is not None:
            axes[r, 0].set_ylabel(row_labels[r], fontsize=7)
        for j, rule in enumerate(rules):
            _imshow(axes[r, 1 + j], projection_for_display(projections[rule][r]))
            if r == 0:
                axes[r, 1 + j].set_title(rule, fontsize=8)
    axes[0, 0].set_title("input", fontsize=8)
    fig.suptitle(title, fontsize=9)
    return fig


def plot_occlusion(
    images: Sequence[np.ndarray],
    results: Sequence[Any],
    class_names: Sequence[str] | None = None,
    true_labels: Sequence[int] | None = None,
    projections: Sequence[np.ndarray] | None = None,
) -> Figure:
    """Z&F Fig. 7: per image (a) input, (b) feature-map activation, (c) projection of that feature
    map's strongest activation (if ``projections`` given, ``(C, H, W)`` each), (d) p(true class),
    (e) most probable label."""
    n = len(results)
    names = list(class_names) if class_names is not None else None
    has_b = any(r.activation is not None for r in results)
    has_c = projections is not None
    cols = 3 + int(has_b) + int(has_c)
    fig, axes = _subplots(n, cols, (2.3 * cols, 2.2 * n))
    n_classes = max(int(max(r.label.max(), r.target, r.base_label)) for r in results) + 1
    cmap = matplotlib.colormaps["tab10" if n_classes <= 10 else "tab20"].resampled(max(n_classes, 2))
    for i, (img, res) in enumerate(zip(images, results)):
        col = 0
        ax = axes[i, col]
        _imshow(ax, image_for_display(img))
        y = true_labels[i] if true_labels is not None else res.target
        lab = names[y] if names and 0 <= y < len(names) else str(y)
        ax.set_title(f"(a) true: {lab}", fontsize=7)
        rows_w, cols_w = res.windows
        centres_r = (rows_w[:, 0] + rows_w[:, 1] - 1) / 2
        centres_c = (cols_w[:, 0] + cols_w[:, 1] - 1) / 2
        ext = (centres_c.min() - 0.5, centres_c.max() + 0.5, centres_r.max() + 0.5, centres_r.min() - 0.5)
        if has_b:
            col += 1
            ax = axes[i, col]
            if res.activation is not None:
                im = ax.imshow(res.activation, cmap="viridis", extent=ext)
                fig.colorbar(im, ax=ax, fraction=0.046)
                ax.set_title(f"(b) {res.layer} map {res.unit} total", fontsize=7)
            ax.set_xticks([])
            ax.set_yticks([])
        if has_c and projections is not None:
            col += 1
            _imshow(axes[i, col], projection_for_display(projections[i]))
            axes[i, col].set_title(f"(c) map {res.unit}: strongest unit projected", fontsize=7)
        col += 1
        ax = axes[i, col]
        im = ax.imshow(res.probability, cmap="jet", vmin=0, vmax=1, extent=ext)
        fig.colorbar(im, ax=ax, fraction=0.046)
        ax.set_title(f"(d) p({lab}), unoccluded {res.base_probability:.2f}", fontsize=7)
        ax.set_xticks([])
        ax.set_yticks([])
        col += 1
        ax = axes[i, col]
        ax.imshow(res.label, cmap=cmap, vmin=-0.5, vmax=cmap.N - 0.5, extent=ext, interpolation="nearest")
        present = sorted(set(int(v) for v in np.unique(res.label)))
        handles = [
            matplotlib.patches.Patch(color=cmap(v), label=names[v] if names and v < len(names) else str(v))
            for v in present[:8]
        ]
        ax.legend(handles=handles, fontsize=5, loc="upper left", bbox_to_anchor=(1.0, 1.0), frameon=False)
        ax.set_title("(e) most probable label", fontsize=7)
        ax.set_xticks([])
        ax.set_yticks([])
    r0 = results[0]
    fig.suptitle(f"Occlusion: {r0.size}x{r0.size} square, stride {r0.stride}", fontsize=9)
    return fig


def plot_invariance(curves: Any, layers: Sequence[str] | None = None) -> Figure:
    """Z&F Fig. 5: rows = transformations; columns = distance at each layer, then p(true class)."""
    kinds = list(curves.transforms)
    layers = list(layers or curves.layers)
    ncol = len(layers) + 1
    fig, axes = _subplots(len(kinds), ncol, (2.6 * ncol, 2.2 * len(kinds)))
    for r, kind in enumerate(kinds):
        params = curves.params[kind]
        for c, layer in enumerate(layers):
            ax = axes[r, c]
            d = curves.distances[kind][layer]  # (images, params)
            many = d.shape[0] > 8
            for i in range(d.shape[0]):
                ax.plot(params, d[i], lw=0.6 if many else 1, alpha=0.2 if many else 1.0)
            if many:
                ax.plot(params, d.mean(axis=0), lw=2, color="k", label="mean")
            ax.set_title(f"{kind}: {layer}" + (f" ({d.shape[0]} images, black: mean)" if many else ""), fontsize=7)
            ax.set_ylabel("Euclidean distance" if c == 0 else "", fontsize=7)
            ax.tick_params(labelsize=6)
        ax = axes[r, -1]
        p = curves.probabilities[kind]
        many = p.shape[0] > 8
        for i in range(p.shape[0]):
            ax.plot(params, p[i], lw=0.6 if many else 1, alpha=0.2 if many else 1.0)
        if many:
            ax.plot(params, p.mean(axis=0), lw=2, color="k")
        ax.set_ylim(-0.02, 1.02)
        ax.set_title(f"{kind}: p(true class)", fontsize=7)
        ax.tick_params(labelsize=6)
        unit = {"translate": "pixels", "vtranslate": "pixels (vertical)", "scale": "scale factor", "rotate": "degrees"}.get(kind, kind)
        for ax in axes[r]:
            ax.set_xlabel(unit, fontsize=7)
    fig.tight_layout()
    return fig


def plot_evolution(
    tiles: np.ndarray,
    epochs: Sequence[int],
    units: Sequence[int],
    title: str = "",
    kind: str = "projection",
) -> Figure:
    """Z&F Fig. 4: one row per unit, one column per epoch, each a projected top activation.

    ``tiles`` is ``(U, E, C, h, w)``: projections (``kind="projection"``, each scaled to its own
    largest magnitude) or input patches in display range (``kind="image"``).
    """
    show = projection_for_display if kind == "projection" else image_for_display
    n_u, n_e = tiles.shape[:2]
    fig, axes = _subplots(n_u, n_e, (1.1 * n_e + 0.6, 1.1 * n_u + 0.5))
    for i in range(n_u):
        for j in range(n_e):
            ax = axes[i, j]
            _imshow(ax, show(tiles[i, j]))
            if i == 0:
                ax.set_title(f"epoch {epochs[j]}", fontsize=7)
            if j == 0:
                ax.set_ylabel(f"unit {units[i]}", fontsize=7)
    fig.suptitle(title, fontsize=9)
    return fig


def plot_correspondence(res: Any) -> Figure:
    """Δ per layer: one group of bars per layer, one bar per masked part and one for random masks."""
    layers = list(res.layers)
    names = list(res.parts) + ["random"]
    fig, axes = _subplots(1, 1, (1.4 + 1.2 * len(layers), 3.0))
    ax = axes[0, 0]
    width = 0.8 / len(names)
    x = np.arange(len(layers))
    for i, name in enumerate(names):
        vals = [res.delta[layer][name] for layer in layers]
        err = [res.random_std[layer] for layer in layers] if name == "random" else None
        ax.bar(x + i * width, vals, width, label=name + (" (± std over draws)" if err else ""),
               color="0.6" if name == "random" else None, yerr=err, capsize=2)
    ax.set_xticks(x + 0.4 - width / 2)
    ax.set_xticklabels(layers, fontsize=7)
    ax.set_ylabel("Δ (normalised Hamming)", fontsize=8)
    ax.legend(fontsize=6)
    ax.set_title("Correspondence: lower Δ = more consistent change", fontsize=8)
    fig.tight_layout()
    return fig
