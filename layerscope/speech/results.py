"""Result objects of the speech analyses (the analysis contract of :mod:`layerscope.results`).

* :class:`SpeechAnalysis` — ``speech analyze`` (``analysis = "speech"``): per-layer digit /
  speaker numbers of one or more runs (schema in :mod:`.analysis` and :mod:`.runs`);
* :class:`SpeakerEmbeddings` — ``speech embed`` (``analysis = "speaker_embeddings"``);
* :class:`SpeechTopK` — ``speech topk`` (``analysis = "speech_topk"``; schema in :mod:`.listen`);
* :class:`XVectorStudy` — ``speech xvector`` (``analysis = "xvector_study"``; schema in :mod:`.xvector_study`).

Each holds the fields of its ``result.json`` (``doc``: model, data, parameters, metrics, figure
entries and the analysis-specific keys the report reads), makes its figures as
:class:`matplotlib.figure.Figure` objects, and writes exactly the folder the CLI writes with
:meth:`~SpeechResult.save`. :meth:`~SpeechResult.load` reads a folder back; a loaded result
rebuilds the figures its ``result.json`` has the numbers for (the trend and clustering plots, the
projections of the first model, the embedding scatter) and keeps no audio.
"""

from __future__ import annotations

import os
from pathlib import Path
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any, Callable

import numpy as np

from ..exceptions import DataError
from ..results import AnalysisResult, read_result, write_result

if TYPE_CHECKING:  # pragma: no cover
    from matplotlib.figure import Figure

__all__ = ["SpeechResult", "SpeechAnalysis", "SpeakerEmbeddings", "SpeechTopK", "XVectorStudy"]

FigureMaker = Callable[[], "Figure"]
_COMMON = ("analysis", "version", "created")


class SpeechResult(AnalysisResult):
    """Shared shape: ``doc`` (the result.json fields), figure makers, extra files (wav)."""

    analysis = "speech"
    #: resolution of the saved PNGs (what the CLI always wrote)
    dpi = 90

    def __init__(self, doc: dict[str, Any], figure_makers: dict[str, FigureMaker] | None = None,
                 files: dict[str, bytes] | None = None) -> None:
        self.doc = dict(doc)
        self._makers = dict(figure_makers) if figure_makers is not None else self._makers_from_doc(self.doc)
        self._files = dict(files or {})

    @property
    def metrics(self) -> dict[str, Any]:
        return dict(self.doc.get("metrics") or {})

    @property
    def parameters(self) -> dict[str, Any]:
        return dict(self.doc.get("parameters") or {})

    @property
    def model(self) -> Any:
        return self.doc.get("model")

    @property
    def data(self) -> Any:
        return self.doc.get("data")

    def figures(self) -> dict[str, Any]:
        """``{stem: Figure}``; ``stem.png`` is the file name in the result folder."""
        return {stem: make() for stem, make in self._makers.items()}

    def _write(self, out: Path) -> None:
        """Write ``result.json``, the PNG figures and extra files (wav) into ``out``.

        :meth:`save` calls it on a staging folder that is swapped in at the end (old or new, never a mix).
        """
        for stem, fig in self.figures().items():
            fig.savefig(out / f"{stem}.png", dpi=self.dpi)
        for rel, data in self._files.items():
            p = out / rel
            p.parent.mkdir(parents=True, exist_ok=True)
            p.write_bytes(data)
        write_result(out, self.analysis, **self.doc)

    @classmethod
    def load(cls, out_dir: str | os.PathLike[str]) -> "SpeechResult":
        doc = read_result(out_dir)
        if doc.get("analysis") != cls.analysis:
            raise DataError(f"{out_dir} holds a {doc.get('analysis')!r} result, not {cls.analysis!r} ({cls.__name__}).")
        if not isinstance(doc.get("metrics"), dict):
            raise DataError(f"{out_dir}/result.json has no metrics; it is not a complete {cls.analysis!r} result.")
        return cls({k: v for k, v in doc.items() if k not in _COMMON})

    @classmethod
    def _makers_from_doc(cls, doc: dict[str, Any]) -> dict[str, FigureMaker]:
        return {}


def _trend_series(table: list[dict[str, Any]], chance: dict[str, Any]) -> list[Any]:
    """``plot_trends`` input rebuilt from a result's table (one series per model)."""
    info = {"chance_digit": chance.get("digit", 0.1), "chance_speaker": chance.get("speaker", 1 / 6)}
    names = list(dict.fromkeys(r["model"] for r in table))
    return [SimpleNamespace(name=n, rows=[r for r in table if r["model"] == n], info=info) for n in names]


class SpeechAnalysis(SpeechResult):
    """Digit vs speaker information per layer of one or more acoustic models (``speech analyze``).

    ``metrics``: ``table`` (one row per model and layer), ``summary`` (first vs last layer and
    trends per model), ``chance``. ``analyses`` holds the :class:`~.analysis.LayerAnalysis` of
    each run (``None`` for a loaded result).
    """

    analysis = "speech"
    key_figure = "trends"

    def __init__(self, doc: dict[str, Any], figure_makers: dict[str, FigureMaker] | None = None,
                 files: dict[str, bytes] | None = None, analyses: list[Any] | None = None) -> None:
        super().__init__(doc, figure_makers, files)
        self.analyses = analyses

    @property
    def table(self) -> list[dict[str, Any]]:
        return list(self.doc.get("table") or [])

    @classmethod
    def _makers_from_doc(cls, doc: dict[str, Any]) -> dict[str, FigureMaker]:
        from .plots import plot_layer_projections, plot_trends

        table = list(doc.get("table") or [])
        chance = dict((doc.get("metrics") or {}).get("chance") or {})
        makers: dict[str, FigureMaker] = {"trends": lambda: plot_trends(_trend_series(table, chance))}
        pts = doc.get("points")
        figs = [f for f in doc.get("figures") or [] if isinstance(f, dict) and str(f.get("path", "")).startswith("model1_")]
        if isinstance(pts, dict) and figs and isinstance(pts.get("layers"), dict):
            rows = [r for r in table if r.get("model") == pts.get("model")]
            first = SimpleNamespace(
                name=pts.get("model"), rows=rows,
                embeddings={k: np.column_stack([v["x"], v["y"]]) for k, v in pts["layers"].items()},
                digit=np.asarray(pts["digit"]), speaker=np.asarray(pts["speaker"]),
                classes=list(pts.get("classes") or []), speaker_names=list(pts.get("speaker_names") or []),
                info={"method": pts.get("method", "")},
            )
            makers[Path(str(figs[0]["path"])).stem] = lambda: plot_layer_projections(first)  # type: ignore[arg-type]
        return makers


class SpeakerEmbeddings(SpeechResult):
    """Speaker clustering of utterance embeddings per layer (``speech embed``).

    ``metrics``: ``layers`` (purity, ARI, NMI, ARI against digits per layer), ``best_layer``,
    ``n_recordings``, ``n_speakers``, ``speakers``, ``train_speakers``, ``unseen_speakers``,
    ``val_accuracy``, ``chance_purity``. ``study`` is the :class:`~.embeddings.EmbeddingStudy`
    (``None`` for a loaded result).
    """

    analysis = "speaker_embeddings"
    key_figure = "embedding_clusters"

    def __init__(self, doc: dict[str, Any], figure_makers: dict[str, FigureMaker] | None = None,
                 files: dict[str, bytes] | None = None, study: Any = None) -> None:
        super().__init__(doc, figure_makers, files)
        self.study = study

    @classmethod
    def _makers_from_doc(cls, doc: dict[str, Any]) -> dict[str, FigureMaker]:
        from .plots import plot_embedding_points, plot_embedding_scores

        m = dict(doc.get("metrics") or {})
        rows = list(m.get("layers") or [])
        makers: dict[str, FigureMaker] = {"embedding_clusters": lambda: plot_embedding_scores(rows, m)}
        pts = doc.get("points")
        if isinstance(pts, dict) and "x" in pts:
            makers["embedding_best_layer"] = lambda: plot_embedding_points(pts)
        return makers


class SpeechTopK(SpeechResult):
    """Top-k frames of hidden units with their recordings (``speech topk``).

    ``metrics``: ``units`` (per unit: ``dead`` and the ``top`` frames), ``digit_purity``,
    ``speaker_purity``. The recordings are written as ``audio/*.wav``; a loaded result has no
    figure (the spectrograms need the audio).
    """

    analysis = "speech_topk"
    key_figure = "topk_spectrograms"


class XVectorStudy(SpeechResult):
    """x-vectors vs frame-DNN means on unseen speakers, per leave-speakers-out fold (``speech xvector``).

    ``metrics``: ``folds`` (one row per fold and method: ``ari``, ``purity``, ``nmi``, ``eer``,
    ``val_accuracy``, speakers), ``summary`` (per method and metric: ``mean``, ``std``, ``min``,
    ``max``, ``n`` across folds), ``methods``, ``headline``, ``n_folds``. Schema in
    :mod:`.xvector_study`.
    """

    analysis = "xvector_study"
    key_figure = "xvector_folds"

    def summary_row(self, method: str, metric: str) -> dict[str, Any]:
        """``{mean, std, min, max, n}`` of ``metric`` for ``method`` across folds."""
        s = self.metrics.get("summary", {})
        if method not in s or metric not in s[method]:
            raise DataError(f"No {metric!r} for method {method!r}; methods: {sorted(s)}.")
        return dict(s[method][metric])

    @classmethod
    def _makers_from_doc(cls, doc: dict[str, Any]) -> dict[str, FigureMaker]:
        from .plots import plot_xvector_folds

        m = dict(doc.get("metrics") or {})
        rows = list(m.get("folds") or [])
        methods = list(m.get("methods") or [])
        return {"xvector_folds": lambda: plot_xvector_folds(rows, methods)}
