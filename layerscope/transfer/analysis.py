"""Table, effects and outputs of a transfer grid, rebuilt from its store alone.

``result.json`` of a grid folder (``"analysis": "transfer"``) has the common keys of
:func:`layerscope.results.write_result` plus:

* ``"parameters"``: the grid settings and ``"selection"``, the rule that chose the reported
  epochs in words (e.g. ``"held-out train split (fraction 0.1): ..."``; see
  :mod:`layerscope.transfer.grid`);
* ``"table"``: one row per finished cell: ``{"cell", "condition", "n", "seed", "metric",
  "final_accuracy", "selected_epochs", "epochs_run", "cached", "seconds"}`` (``n`` = 0 for
  baseA / baseB; ``metric`` = mean test accuracy at the ``k`` epochs with the best held-out
  accuracy, or with ``holdout = 0`` the mean of the ``k`` best test accuracies;
  ``selected_epochs`` 1-based; the last two are null for cells stored before they were recorded);
* ``"summary"``: per (condition, n): ``{"condition", "n", "mean", "std", "min", "max", "seeds"}``
  over seeds (``std`` with ddof=1, 0 for one seed);
* ``"effects"``: per n: ``{"n", "co_adaptation", "specificity", "fine_tuning_boost"}``, each
  ``{"mean", "std", "min", "max", "per_seed": {seed: value}}`` or null when its cells are
  missing. co_adaptation = baseB − BnB, specificity = BnB − AnB, fine_tuning_boost = AnB+ − baseB,
  differences paired by seed (Yosinski et al. 2014);
* ``"splits"``: the class split per seed (``{"name", "a", "b", "a_names", "b_names"}``);
* ``"n_layers"``, ``"cells_done"``, ``"cells_total"``, ``"complete"``;
* ``"metrics"``: ``baseA``, ``baseB`` (mean metric), ``max_specificity`` / ``max_specificity_n``,
  ``max_co_adaptation`` / ``max_co_adaptation_n``, ``mean_fine_tuning_boost``, ``cells_done``,
  ``cells_total``;
* figures ``transfer.png`` (accuracy vs n; every seed a dot, means as lines, baseB as a band;
  lower panel: the three effects with seed min–max bars); table ``transfer.csv``
  (``result["table_csv"]``).
"""

from __future__ import annotations

import csv
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from .._io import atomic_open, to_jsonable
from .._results_util import plain_fields
from ..results import AnalysisResult, write_result
from .grid import BASES, CONDITIONS, plan_cells
from .store import TransferStore

__all__ = ["TransferResult", "build_result", "write_outputs", "spread"]

EFFECTS = {
    "co_adaptation": ("baseB", "BnB", "baseB − BnB"),
    "specificity": ("BnB", "AnB", "BnB − AnB"),
    "fine_tuning_boost": ("AnB+", "baseB", "AnB+ − baseB"),
}


def spread(values: Sequence[float]) -> dict[str, float]:
    """``{"mean", "std" (ddof=1; 0 for one value), "min", "max"}`` of ``values``."""
    a = np.asarray(values, dtype=np.float64)
    return {
        "mean": float(a.mean()),
        "std": float(a.std(ddof=1)) if len(a) > 1 else 0.0,
        "min": float(a.min()),
        "max": float(a.max()),
    }


@plain_fields
@dataclass(frozen=True, repr=False)
class TransferResult(AnalysisResult):
    """The transfer grid's numbers (see the module docstring for the fields).

    An :class:`~layerscope.results.AnalysisResult`: :attr:`metrics`, :meth:`figures`
    (``{"transfer": Figure}``), :meth:`save` (``result.json``, ``transfer.csv``,
    ``transfer.png``: the grid folder's outputs) and :meth:`load`.
    """

    analysis = "transfer"
    stage_folder = False  # save() writes into out_dir as it is
    key_figure = "transfer"

    table: list[dict[str, Any]]
    summary: list[dict[str, Any]]
    effects: list[dict[str, Any]]
    splits: dict[str, Any]
    parameters: dict[str, Any] = field()  # field(): not the inherited property as a default
    n_layers: int
    cells_done: int
    cells_total: int
    metrics: dict[str, Any] = field(default_factory=dict)
    #: what was trained: ``{"arch", "n_layers", ...}`` (result.json ``model``)
    model: dict[str, Any] = field(default_factory=dict)
    data: str | None = None
    val_data: str | None = None

    @property
    def complete(self) -> bool:
        return self.cells_done == self.cells_total

    @property
    def effect_labels(self) -> dict[str, tuple[str, str, str]]:
        """``{effect: (left condition, right condition, label)}`` (effect = left − right)."""
        return dict(EFFECTS)

    def figures(self) -> dict[str, Any]:
        """``{"transfer": Figure}`` (accuracy vs n and the effects), or ``{}`` with no finished cell."""
        if not self.table:
            return {}
        from .plots import plot_transfer

        return {"transfer": plot_transfer(self)}

    def _figure_entries(self) -> list[dict[str, str]]:
        if not self.table:
            return []
        k_best = self.parameters.get("k_best")
        seeds = self.parameters.get("seeds") or []
        return [{
            "path": "transfer.png",
            "title": "Transferability of layers (Yosinski et al. 2014)",
            "caption": (
                f"Top-1 test accuracy on task B ({self.parameters.get('selection', f'mean of the {k_best} best epochs')}) "
                "of networks whose first n "
                f"layers are copied from baseB (BnB) or baseA (AnB), frozen or fine-tuned (+), or random and frozen; "
                f"{len(seeds)} seed(s), each a dot, lines = means. Lower panel: co-adaptation (baseB − BnB), "
                "specificity (BnB − AnB) and fine-tuning boost (AnB+ − baseB), bars = seed min–max."
            ),
        }]

    def _write(self, out: Path) -> None:
        """Write ``result.json``, ``transfer.csv`` and (with finished cells) ``transfer.png`` into ``out``.

        :meth:`save` (``stage_folder = False``) calls it on ``out_dir`` itself, not a staging folder.
        """
        _write_csv(self, out / "transfer.csv")
        for stem, fig in self.figures().items():
            fig.savefig(out / f"{stem}.png", dpi=110, metadata={"Software": None})
        doc = self.to_dict()
        write_result(
            out,
            "transfer",
            model=self.model,
            data=self.data,
            val_data=self.val_data,
            parameters=doc.pop("parameters"),
            metrics=doc.pop("metrics"),
            figures=self._figure_entries(),
            table_csv="transfer.csv",
            **doc,
        )

    @classmethod
    def load(cls, out_dir: str | os.PathLike[str]) -> "TransferResult":
        """Read a grid folder's ``result.json`` back (the store is not needed)."""
        from ..exceptions import DataError
        from ..results import read_result

        doc = read_result(out_dir)
        if doc.get("analysis") != "transfer":
            raise DataError(f"{out_dir} holds a {doc.get('analysis')!r} result, not a transfer grid.")
        try:
            return cls(
                table=list(doc["table"]), summary=list(doc["summary"]), effects=list(doc["effects"]),
                splits=dict(doc.get("splits") or {}), parameters=dict(doc.get("parameters") or {}),
                n_layers=int(doc["n_layers"]), cells_done=int(doc["cells_done"]), cells_total=int(doc["cells_total"]),
                metrics=dict(doc.get("metrics") or {}), model=dict(doc.get("model") or {}), data=doc.get("data"),
                val_data=doc.get("val_data"),
            )
        except (KeyError, TypeError, ValueError) as err:
            raise DataError(f"{out_dir}/result.json is not a complete transfer result ({type(err).__name__}: {err}).") from err

    def metric(self, condition: str, n: int, seed: int) -> float | None:
        for r in self.table:
            if r["condition"] == condition and r["n"] == n and r["seed"] == seed:
                return float(r["metric"])
        return None

    def to_dict(self) -> dict[str, Any]:
        return to_jsonable(
            {
                "table": self.table,
                "summary": self.summary,
                "effects": self.effects,
                "splits": self.splits,
                "parameters": self.parameters,
                "n_layers": self.n_layers,
                "cells_done": self.cells_done,
                "cells_total": self.cells_total,
                "complete": self.complete,
                "metrics": self.metrics,
            }
        )


def build_result(store: TransferStore) -> TransferResult:
    """Table, per-(condition, n) summary and per-n effects from the store's finished cells."""
    cfg = store.config
    plan = plan_cells(cfg, store.n_layers)
    records = store.records()
    table = sorted(
        (
            {
                "cell": r["cell"],
                "condition": r["condition"],
                "n": int(r["n"]),
                "seed": int(r["seed"]),
                "metric": float(r["metric"]),
                "final_accuracy": float(r["val_accuracy"][-1]),
                "selected_epochs": r.get("selected_epochs"),
                "epochs_run": r.get("epochs_run"),
                "cached": bool(r.get("cached", False)),
                "seconds": float(r.get("seconds", 0.0)),
            }
            for r in records
        ),
        key=lambda r: ((BASES + CONDITIONS).index(r["condition"]), r["n"], r["seed"]),
    )
    by: dict[tuple[str, int], dict[int, float]] = {}
    for r in table:
        by.setdefault((r["condition"], r["n"]), {})[r["seed"]] = r["metric"]
    summary = [
        {"condition": c, "n": n, **spread(list(v.values())), "seeds": len(v)}
        for (c, n), v in sorted(by.items(), key=lambda kv: ((BASES + CONDITIONS).index(kv[0][0]), kv[0][1]))
    ]
    ns = sorted({c.n for c in plan if not c.is_base})

    def values(cond: str, n: int) -> dict[int, float]:
        return by.get((cond, 0 if cond in BASES else n), {})

    effects = []
    for n in ns:
        row: dict[str, Any] = {"n": n}
        for key, (left, right, _label) in EFFECTS.items():
            lv, rv = values(left, n), values(right, n)
            seeds = sorted(set(lv) & set(rv))
            if seeds:
                per = {s: lv[s] - rv[s] for s in seeds}
                row[key] = {**spread(list(per.values())), "per_seed": per}
            else:
                row[key] = None
        effects.append(row)
    splits: dict[str, Any] = {}
    for r in records:
        splits.setdefault(str(r["seed"]), r.get("split"))
    metrics: dict[str, Any] = {"cells_done": len(table), "cells_total": len(plan)}
    for b in BASES:
        v = values(b, 0)
        metrics[b] = float(np.mean(list(v.values()))) if v else None
    for key in ("specificity", "co_adaptation"):
        got = [(e[key]["mean"], e["n"]) for e in effects if e[key] is not None]
        if got:
            best = max(got)
            metrics[f"max_{key}"], metrics[f"max_{key}_n"] = best
    boosts = [e["fine_tuning_boost"]["mean"] for e in effects if e["fine_tuning_boost"] is not None]
    metrics["mean_fine_tuning_boost"] = float(np.mean(boosts)) if boosts else None
    return TransferResult(
        table=table,
        summary=summary,
        effects=effects,
        splits=dict(sorted(splits.items())),
        parameters={**cfg.to_dict(), "selection": cfg.selection},
        n_layers=store.n_layers,
        cells_done=len(table),
        cells_total=len(plan),
        metrics=metrics,
        model={"arch": cfg.arch, "n_layers": store.n_layers, **store.meta.get("model", {})},
        data=cfg.data,
        val_data=cfg.val_data,
    )


def _write_csv(result: TransferResult, path: Path) -> None:
    with atomic_open(path, "w") as fh:
        w = csv.writer(fh)
        w.writerow(["cell", "n", "condition", "seed", "metric", "final_accuracy", "cached", "seconds"])
        for r in result.table:
            w.writerow([r["cell"], r["n"], r["condition"], r["seed"], f"{r['metric']:.6f}", f"{r['final_accuracy']:.6f}", int(r["cached"]), r["seconds"]])


def write_outputs(store: TransferStore, out_dir: str | os.PathLike[str] | None = None) -> TransferResult:
    """Rebuild ``result.json``, ``transfer.csv`` and ``transfer.png`` from the store alone."""
    result = build_result(store)
    result.save(out_dir if out_dir is not None else store.directory)
    return result
