"""The figure of Yosinski et al. 2014 (Fig. 2): accuracy on task B against n copied layers.

Upper panel: every network a dot (jittered per condition), the mean over seeds a line, baseB as
a band (mean ± seed min–max) and a point at n = 0, the random-filter baseline dashed. Lower
panel: the effects per n with seed min–max bars.
"""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:  # pragma: no cover
    from matplotlib.figure import Figure

    from .analysis import TransferResult

__all__ = ["plot_transfer", "STYLE"]

#: colour, marker, label per condition (the paper's colours: selffer blue, transfer red).
STYLE = {
    "baseB": ("white", "o", "baseB"),
    "BnB": ("#1f4fd1", "o", "BnB (selffer, frozen)"),
    "BnB+": ("#7fa6ff", "s", "BnB+ (selffer, fine-tuned)"),
    "AnB": ("#c8102e", "D", "AnB (transfer, frozen)"),
    "AnB+": ("#ff8c69", "^", "AnB+ (transfer, fine-tuned)"),
    "random": ("#777777", "x", "random frozen filters"),
}


def plot_transfer(result: "TransferResult") -> "Figure":
    """The transfer figure of ``result`` (a :class:`matplotlib.figure.Figure`; save it with ``fig.savefig``)."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(8, 8.5))
    ax, ax2 = fig.subplots(2, 1, gridspec_kw={"height_ratios": [3, 2]}, sharex=True)
    rows = result.table
    conds = ["BnB", "BnB+", "AnB", "AnB+", "random"]
    offsets = dict(zip(conds, np.linspace(-0.2, 0.2, len(conds))))
    base = [r["metric"] for r in rows if r["condition"] == "baseB"]
    ns_all = sorted({r["n"] for r in rows if r["n"] > 0}) or [1]
    if base:
        m, lo, hi = float(np.mean(base)), min(base), max(base)
        ax.axhspan(lo, hi, color="0.85", zorder=0, label="baseB seed range")
        ax.axhline(m, color="0.4", lw=1, ls=":", zorder=1)
        ax.scatter(np.zeros(len(base)), base, s=36, facecolor="white", edgecolor="black", zorder=3, label="baseB")
    for c in conds:
        pts = [(r["n"], r["metric"]) for r in rows if r["condition"] == c]
        if not pts:
            continue
        color, marker, label = STYLE[c]
        ns = sorted({n for n, _ in pts})
        means = [float(np.mean([v for n2, v in pts if n2 == n])) for n in ns]
        x = np.array([n for n, _ in pts], dtype=float) + offsets[c]
        ax.scatter(x, [v for _, v in pts], s=22, color=color, marker=marker, alpha=0.8, zorder=3)
        ax.plot(np.array(ns) + offsets[c], means, color=color, ls="--" if c == "random" else "-", lw=1.6, label=label, zorder=2)
    ax.set_ylabel("top-1 validation accuracy on B\n(mean of k best epochs)")
    cfg = result.parameters
    data = str(cfg.get("data"))
    kind, _, rest = data.partition(":")
    if rest:  # KIND:PATH[:SPLIT] -> KIND:file[:SPLIT], so long paths do not push the title off the figure
        head, sep, tail = rest.rpartition(":")
        fpath, split = (head, tail) if sep and tail in ("train", "test", "all") else (rest, "")
        data = f"{kind}:{Path(fpath).name}" + (f":{split}" if split else "")
    title = (
        f"Transferability: {cfg.get('arch')} on {data}, split {Path(str(cfg.get('split'))).name}, "
        f"{len(cfg.get('seeds', []))} seed(s), {cfg.get('epochs')} epochs"
    )
    ax.set_title("\n".join(textwrap.wrap(title, 80)), fontsize=10)
    vals = [r["metric"] for r in rows if r["condition"] != "random"] or [r["metric"] for r in rows]
    if vals:
        lo, hi = min(vals), max(vals)
        pad = max(0.01, 0.08 * (hi - lo))
        rnd_min = min([r["metric"] for r in rows if r["condition"] == "random"] or [lo])
        ax.set_ylim(min(lo, rnd_min) - pad, min(1.0, hi + pad) + pad / 2)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="best", ncol=2, framealpha=0.8)

    colors = {"co_adaptation": "#1f4fd1", "specificity": "#c8102e", "fine_tuning_boost": "#2a9d3a"}
    for i, (key, (_l, _r, label)) in enumerate(result.effect_labels.items()):
        es = [e for e in result.effects if e.get(key)]
        if not es:
            continue
        n = np.array([e["n"] for e in es], dtype=float) + (i - 1) * 0.1
        mean = np.array([e[key]["mean"] for e in es])
        err = np.array([[e[key]["mean"] - e[key]["min"] for e in es], [e[key]["max"] - e[key]["mean"] for e in es]])
        ax2.errorbar(n, mean, yerr=err, color=colors[key], marker="o", ms=4, capsize=3, lw=1.4, label=f"{key.replace('_', ' ')}: {label}")
    ax2.axhline(0, color="black", lw=0.8)
    ax2.set_xlabel("n: layers copied from the base network")
    ax2.set_ylabel("accuracy difference\n(mean; bars: seed min–max)")
    ax2.set_xticks([0] + ns_all)
    ax2.grid(alpha=0.3)
    ax2.legend(fontsize=8)
    fig.tight_layout()
    return fig
