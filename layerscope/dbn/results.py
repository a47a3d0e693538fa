"""Result objects of the DBN analyses (the analysis contract of :mod:`layerscope.results`).

* :class:`DBNPretraining` — ``dbn pretrain`` (``analysis = "dbn_pretrain"``): the reconstruction
  error per layer per epoch, and the DBN's weights (``dbn.safetensors``, tensors only);
* :class:`DBNComparison` — ``analysis = "dbn_speech"``: pre-trained vs randomly initialised DNNs on
  FSDD frames (schema in :mod:`.speech`);
* :class:`DBNUnits` — ``dbn sample`` (``analysis = "dbn_units"``): Erhan et al.'s views of DBN units
  (schema in :mod:`.units`).

Each holds the fields of its ``result.json`` in ``doc`` and its arrays in ``arrays``, draws its
figures (``matplotlib.figure.Figure``) from those numbers, so a loaded result redraws them, and
writes the folder with :meth:`~DBNResult.save`.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ..exceptions import DataError
from ..results import AnalysisResult, read_result, write_figures, write_result

if TYPE_CHECKING:  # pragma: no cover
    from matplotlib.figure import Figure

    from .rbm import DBN

__all__ = ["DBNResult", "DBNPretraining", "DBNComparison", "DBNUnits"]

_COMMON = ("analysis", "version", "created", "figures", "arrays", "array_shapes")
WEIGHTS_FILE = "dbn.safetensors"


class DBNResult(AnalysisResult):
    """Shared shape: ``doc`` (result.json fields), ``arrays`` (saved as ``arrays.npz``)."""

    analysis = "dbn"
    dpi = 100

    def __init__(self, doc: dict[str, Any], arrays: dict[str, np.ndarray] | None = None) -> None:
        self.doc = {k: v for k, v in doc.items() if k not in _COMMON}
        self.arrays = {k: np.asarray(v) for k, v in (arrays or {}).items()}

    @property
    def metrics(self) -> dict[str, Any]:
        return dict(self.doc.get("metrics") or {})

    @property
    def parameters(self) -> dict[str, Any]:
        return dict(self.doc.get("parameters") or {})

    def _extra_files(self, d: Path) -> None:
        """Files besides figures, arrays and result.json (default none)."""

    def _write(self, d: Path) -> None:
        entries = write_figures(d, self._figure_specs(), dpi=self.dpi)
        extra: dict[str, Any] = {}
        if self.arrays:
            with open(d / "arrays.npz", "wb") as fh:
                np.savez(fh, **self.arrays)  # type: ignore[arg-type]
            extra = {"arrays": "arrays.npz", "array_shapes": {k: list(v.shape) for k, v in self.arrays.items()}}
        self._extra_files(d)
        write_result(d, self.analysis, **self.doc, figures=entries, **extra)

    @classmethod
    def _read(cls, out_dir: str | os.PathLike[str]) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        import zipfile

        doc = read_result(out_dir)
        if doc.get("analysis") != cls.analysis:
            raise DataError(f"{out_dir} holds a {doc.get('analysis')!r} result, not {cls.analysis!r} ({cls.__name__}).")
        if not isinstance(doc.get("metrics"), dict):
            raise DataError(f"{out_dir}/result.json has no metrics; it is not a complete {cls.analysis!r} result.")
        arrays: dict[str, np.ndarray] = {}
        if doc.get("arrays"):
            p = Path(out_dir) / "arrays.npz"
            try:
                with np.load(p, allow_pickle=False) as z:
                    arrays = {k: z[k] for k in z.files}
            except (OSError, ValueError, zipfile.BadZipFile, EOFError) as err:
                raise DataError(f"{p} is corrupt or truncated ({err}); re-run the analysis.") from None
            shapes = doc.get("array_shapes") or {}
            bad = [k for k in set(shapes) | set(arrays) if k not in arrays or list(arrays[k].shape) != shapes.get(k)]
            if bad:
                raise DataError(f"{p} does not match result.json for arrays {sorted(bad)}; the folder mixes two runs.")
        return doc, arrays

    @classmethod
    def load(cls, out_dir: str | os.PathLike[str]) -> "DBNResult":
        doc, arrays = cls._read(out_dir)
        return cls(doc, arrays)


class DBNPretraining(DBNResult):
    """Greedy pre-training of a DBN: reconstruction error per layer per epoch (``dbn pretrain``).

    ``metrics``: ``history`` (per layer, per epoch: ``reconstruction_error``, ``free_energy_gap``),
    ``final_reconstruction_error`` and ``mean_activity`` (mean p(h | .) on the data: ~0 = a dead
    layer) per layer, ``falling`` per layer (last epoch's error below the
    first's). ``dbn`` holds the trained :class:`~.rbm.DBN` (also after :meth:`load`, from
    ``dbn.safetensors``).
    """

    analysis = "dbn_pretrain"

    def __init__(self, doc: dict[str, Any], arrays: dict[str, np.ndarray] | None = None, dbn: "DBN | None" = None) -> None:
        super().__init__(doc, arrays)
        self.dbn = dbn

    def _extra_files(self, d: Path) -> None:
        if self.dbn is not None:
            from ..training import save_safetensors

            save_safetensors(self.dbn.state(), d / WEIGHTS_FILE)

    def _figure_specs(self) -> list[tuple[str, "Figure", str, str]]:
        from .plots import plot_reconstruction

        hist = self.metrics.get("history") or []
        return [("reconstruction_error", plot_reconstruction(hist),
                 "CD reconstruction error per layer",
                 "Mean squared error between each RBM's training input and E[v | h], h ~ p(h | v), per epoch "
                 "(greedy layer-wise training; layer i learns the mean-field activities of layer i - 1).")]

    @classmethod
    def load(cls, out_dir: str | os.PathLike[str]) -> "DBNPretraining":
        from ..loading import load_weights
        from .rbm import DBN

        doc, arrays = cls._read(out_dir)
        w = Path(out_dir) / WEIGHTS_FILE
        dbn = DBN.from_state(doc.get("dbn") or {}, load_weights(w)) if w.is_file() else None
        return cls(doc, arrays, dbn)


class DBNComparison(DBNResult):
    """Pre-trained (DBN) vs randomly initialised DNNs on FSDD frames (Mohamed, Hinton & Penn 2012)."""

    analysis = "dbn_speech"

    def _figure_specs(self) -> list[tuple[str, "Figure", str, str]]:
        from .plots import plot_comparison_layers, plot_depth

        table = self.doc.get("table") or []
        out = [("layers", plot_comparison_layers(table), "Digit and speaker NH per layer, pre-trained vs random init",
                "Neighbourhood hit (k = 6, activation space, neighbours from other recordings) by digit and by "
                "speaker per hidden layer; mean over seeds, bars = min..max.")]
        runs = self.metrics.get("runs") or []
        if len({r["depth"] for r in runs}) > 1:
            out.append(("depth", plot_depth(runs), "Frame accuracy vs depth",
                        "Test frame accuracy after fine-tuning, pre-trained vs random init, per feature kind; "
                        "mean over seeds, bars = min..max."))
        return out


class DBNUnits(DBNResult):
    """Erhan et al.'s views of DBN units: activation maximization, sampling, linear combination."""

    analysis = "dbn_units"

    def _figure_specs(self) -> list[tuple[str, "Figure", str, str]]:
        from .plots import plot_unit_views

        specs = []
        layers = self.parameters.get("layers") or []
        shape = tuple(self.parameters.get("image_shape") or ())
        for j, layer in enumerate(layers):
            views = {m: self.arrays[f"{m}_{layer}"] for m in ("maximize", "sampling", "linear")
                     if f"{m}_{layer}" in self.arrays}
            if not views:
                continue
            if "sampling" in views and len(views["sampling"]) > 1:
                # every chain drifts towards the average digit; the contrast shows what is unit-specific
                contrast = views["sampling"] - views["sampling"].mean(0, keepdims=True)
                order = [m for m in ("maximize", "sampling") if m in views] + ["sampling - mean"] + (
                    ["linear"] if "linear" in views else [])
                views = {m: contrast if m == "sampling - mean" else views[m] for m in order}
            units = self.parameters.get("units", {}).get(str(layer), [])
            specs.append((f"units_layer{layer}", plot_unit_views(views, shape, units, f"DBN layer {layer}"),
                          f"DBN layer {layer}: maximization, sampling and linear combination",
                          "Rows: activation maximization on the mean-field up-pass (||x|| = rho), the mean of samples "
                          "with the unit clamped on (Gibbs in the top RBM, mean-field down-pass), the same minus "
                          "its mean over the layer's units shown, and the linear combination of lower filters. "
                          "Each image scaled to its own range."))
        return specs
