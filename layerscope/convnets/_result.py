"""The folder every Zeiler & Fergus result writes: figures, one ``.npz`` of arrays, ``result.json``.

:class:`FolderResult` is the part the six result types share (:class:`~.topk.TopK`,
:class:`~.deconvnet.DeconvProjections`, :class:`~.occlusion.OcclusionMaps`,
:class:`~.invariance.InvarianceCurves`, :class:`~.evolution.Evolution`,
:class:`~.correspondence.Correspondence`): ``_write`` writes the folder ``layerscope <command>``
writes (through the staged :meth:`~layerscope.results.AnalysisResult.save`), with the common keys
of :func:`~layerscope.results.write_result` and the analysis-specific ones; each type reads it
back with its ``load``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Iterable, TypeVar

import numpy as np

from .._io import atomic_path
from .._progress import ProgressArg
from ..results import AnalysisResult, read_result, write_figures, write_result

__all__ = ["FolderResult", "track", "read_folder"]

T = TypeVar("T")


def track(progress: ProgressArg, iterable: Iterable[T], total: int | None, desc: str) -> Iterable[T]:
    """Wrap ``iterable`` in the tracker of ``progress`` (``None``/``False``: none, ``True``:
    tqdm.auto, or any tqdm-compatible callable), called with the keywords ``total=`` and
    ``desc=`` (:mod:`layerscope._progress`)."""
    from .._progress import resolve_progress

    return resolve_progress(progress)(iterable, total=total, desc=desc)


def read_folder(out_dir: str | os.PathLike[str], analysis: str) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """``(result.json, arrays)`` of a folder written by ``save()``; checks the analysis name."""
    from ..exceptions import DataError

    d = Path(out_dir)
    doc = read_result(d)
    if doc.get("analysis") != analysis:
        raise DataError(f"{d} holds a {doc.get('analysis')!r} result, not {analysis!r}; load it with its own class.")
    arrays: dict[str, np.ndarray] = {}
    name = doc.get("arrays")
    if name:
        if Path(name).name != name:
            raise DataError(f"{d}/result.json names arrays {name!r} outside its folder.")
        with np.load(d / name, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
    return doc, arrays


class FolderResult(AnalysisResult):
    """Mixin: writes ``OUT`` as the CLI does. Subclasses provide the pieces.

    Subclasses set ``analysis``, ``arrays_file`` (or ``None``) and implement :meth:`figures`,
    :meth:`figure_info` (title and caption per figure stem), :meth:`arrays` and :meth:`extra`
    (analysis-specific keys of result.json), and have the attributes ``model`` and ``data``.
    """

    arrays_file: str | None = None
    model: dict[str, Any] | None
    data: str | None

    def figure_info(self) -> dict[str, tuple[str, str]]:
        """``{stem: (title, caption)}`` of the figures in result.json."""
        return {}

    def arrays(self) -> dict[str, np.ndarray | None]:
        """Arrays written to :attr:`arrays_file` (``None`` values are left out)."""
        return {}

    def extra(self) -> dict[str, Any]:
        """Analysis-specific keys of result.json."""
        return {}

    def _write(self, d: Path) -> None:
        info = self.figure_info()
        entries = write_figures(d, ((stem, fig, *info.get(stem, (stem, ""))) for stem, fig in self.figures().items()))
        keys: dict[str, Any] = {}
        if self.arrays_file is not None:
            arrays = {k: v for k, v in self.arrays().items() if v is not None}
            with atomic_path(d / self.arrays_file) as tmp:
                with open(tmp, "wb") as fh:
                    np.savez_compressed(fh, **arrays)  # type: ignore[arg-type]  # numpy stubs match **arrays against allow_pickle
            keys["arrays"] = self.arrays_file
        write_result(d, self.analysis, model=self.model, data=self.data, parameters=self.parameters,
                     metrics=self.metrics, figures=entries, **keys, **self.extra())
