"""Sequences of projections over layers or over training epochs, optionally *aligned*.

Rauber et al. (2017) compare projections of consecutive layers and of consecutive epochs; to
make such a sequence readable as an animation, each projection starts from the previous one
(so points move only as much as the data demands) and the motion is shown as trails.

Aligned mode here: the first frame is a full t-SNE (early exaggeration + optimisation); every
later frame is initialised with the previous frame's layout (openTSNE ``initialization=`` an
array) and, because it starts near a good layout, runs a shorter schedule
(``aligned_early_exaggeration_iter``, ``aligned_n_iter``). Every frame is then rotated/reflected
onto the previous one (orthogonal Procrustes; distances, hence NH, unchanged). For UMAP the
previous layout is the ``init``; PCA frames are only Procrustes-aligned.

The first frame of an aligned sequence is exactly the independent projection with the same seed.
Measured (bench/projection.py, 5 layers of mnist-cnn, 2,000 MNIST test images, seeds 0-4): the
aligned sequence costs about half the independent projections (1.97x less CPU) at a mean NH 0.0005
lower (0.8892 vs 0.8898; per seed -0.0017 to +0.0007, the spread between seeds). A larger
``aligned_n_iter`` buys NH with time: 400 raised it on every seed (to 0.8900) at about 1.5-1.6x.

kNN graphs: each frame's t-SNE affinities need the neighbours of that frame's activations. A graph
is reused only by frames whose activations are bitwise the same array (same bytes, shape and
dtype, e.g. a frozen layer at several checkpoints) and that ask for the same search (neighbours,
method, seed); the frames of different layers, or of one layer at checkpoints where it changed,
live in different spaces and each get their own graph. ``knn_cache`` shares the graphs across
sequences (:func:`~layerscope.projection.analysis.project_model` passes one per study).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np

from .._progress import ProgressArg, resolve_progress
from ..exceptions import DataError
from ..store import as_matrix
from .projectors import (
    KnnGraph, Method, Projection, _fingerprint, _too_wide, flatten_activations, knn_graph, project, tsne_knn_method,
)

__all__ = ["ProjectionSequence", "project_sequence"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ProjectionSequence:
    """Projections of the same observations over several layers or epochs.

    Attributes
    ----------
    frames : list of Projection
        In sequence order.
    axis : {"layers", "epochs"}
    aligned : bool
        Whether each frame was initialised from (and rotated onto) the previous one.
    """

    frames: list[Projection]
    axis: str = "layers"
    aligned: bool = False
    parameters: dict[str, Any] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.frames)

    def __iter__(self):  # type: ignore[no-untyped-def]
        return iter(self.frames)

    def nh(self) -> list[float]:
        return [f.metrics.get("nh", float("nan")) for f in self.frames]

    def displacement(self) -> list[float]:
        """Mean distance each point moves between consecutive frames, relative to the frame's spread."""
        out = []
        for a, b in zip(self.frames[:-1], self.frames[1:]):
            ea = a.embedding / (np.std(a.embedding) or 1.0)
            eb = b.embedding / (np.std(b.embedding) or 1.0)
            out.append(float(np.mean(np.linalg.norm(eb - ea, axis=1))))
        return out

    def to_dict(self, points: bool = True) -> dict[str, Any]:
        return {
            "axis": self.axis,
            "aligned": self.aligned,
            "parameters": self.parameters,
            "displacement": self.displacement(),
            "frames": [f.to_dict(points=points) for f in self.frames],
        }


def project_sequence(
    arrays: Sequence[np.ndarray],
    labels: np.ndarray,
    method: Method = "tsne",
    random_state: int | None = 0,
    *,
    aligned: bool = True,
    axis: str = "layers",
    layers: Sequence[str | None] | None = None,
    checkpoints: Sequence[int | None] | None = None,
    predictions: Sequence[np.ndarray | None] | np.ndarray | None = None,
    sample_ids: np.ndarray | None = None,
    aligned_n_iter: int = 250,
    aligned_early_exaggeration_iter: int = 0,
    progress: ProgressArg = None,
    knn_cache: dict[tuple[Any, ...], KnnGraph] | None = None,
    **kwargs: Any,
) -> ProjectionSequence:
    """Project the same observations as seen by several layers (or at several epochs).

    Parameters
    ----------
    arrays : sequence of ndarray, each of shape (n, ...)
        Activations per frame; the rows are the same observations in the same order.
    labels : ndarray of shape (n,)
    method : {"tsne", "umap", "pca"}
    random_state : int or None
    aligned : bool, default True
        Initialise each frame from the previous one and rotate it onto it (see module docs).
    axis : {"layers", "epochs"}
        What the frames are, for titles and the report.
    layers, checkpoints : sequences, optional
        Per-frame layer names / epochs recorded in the projections.
    predictions : ndarray of shape (n,) or a sequence of them (one per frame), optional
    aligned_n_iter, aligned_early_exaggeration_iter : int
        t-SNE schedule of the frames after the first in aligned mode.
    progress : None, bool or tracker
        ``True``: ``tqdm.auto``; or any tqdm-compatible callable (``total=``, ``desc=`` keywords).
    knn_cache : dict, optional
        t-SNE: kNN graphs already computed, keyed by the activations' fingerprint and the search
        (see the module docs); graphs computed here are added to it. Default: a fresh one per call.
    **kwargs
        Passed to :func:`project` (``k``, ``perplexity``, ``n_iter``, ...).

    Returns
    -------
    ProjectionSequence
    """
    n_frames = len(arrays)
    if n_frames == 0:
        raise DataError("a projection sequence needs at least one array of activations.")
    n = len(arrays[0])
    for i, a in enumerate(arrays):
        if len(a) != n:
            raise DataError(f"every frame must hold the same {n} observations; frame {i} has {len(a)} rows.")
    lays = list(layers) if layers is not None else [None] * n_frames
    cps = list(checkpoints) if checkpoints is not None else [None] * n_frames
    if predictions is None or isinstance(predictions, np.ndarray):
        preds: list[np.ndarray | None] = [predictions] * n_frames  # type: ignore[list-item]
    else:
        preds = list(predictions)
    frames: list[Projection] = []
    prev: np.ndarray | None = None
    graphs: dict[tuple[Any, ...], KnnGraph] = {} if knn_cache is None else knn_cache
    # as project() would choose: exact whenever NH in activation space is computed anyway
    nh_k = int(kwargs.get("k", 6)) if kwargs.get("nh_original", True) else None
    rows = kwargs.get("rows")
    n_rows = n if rows is None else len(rows)  # project() projects only these rows of every frame
    n_aff = min(n_rows - 1, int(3 * float(kwargs.get("perplexity", 30.0))))
    knn_method = tsne_knn_method(kwargs.get("knn_method", "auto"), n_aff, nh_k)
    for i in resolve_progress(progress)(range(n_frames), total=n_frames, desc=f"{method} of {n_frames} {axis}"):
        kw = dict(kwargs)
        init = None
        if aligned and prev is not None:
            if method in ("tsne", "umap"):
                init = prev
            if method == "tsne":
                kw["n_iter"] = aligned_n_iter
                kw["early_exaggeration_iter"] = aligned_early_exaggeration_iter
        budget = kwargs.get("memory_budget")
        if budget is not None and _too_wide(arrays[i], kwargs.get("rows"), budget):
            pass  # too wide for memory: project() finds the neighbours by blocks, never loading the layer
        elif method == "tsne" and "knn" not in kwargs and 3 <= n_aff < n_rows:
            xa = flatten_activations(arrays[i] if rows is None else as_matrix(arrays[i], rows))
            # the seed matters only to the approximate (Annoy) search, but is kept in the key for all
            key = (_fingerprint(xa), n_aff, knn_method, random_state)
            if key not in graphs:
                graphs[key] = knn_graph(xa, n_aff, method=knn_method,
                                        random_state=random_state, n_jobs=int(kwargs.get("n_jobs", 1)))
            kw["knn"] = graphs[key]
        p = project(
            arrays[i], labels, method, random_state, predictions=preds[i], sample_ids=sample_ids,
            layer=lays[i], checkpoint=cps[i], initialization=init,
            align_to=prev if (aligned and prev is not None) else None, progress=progress, **kw,
        )
        frames.append(p)
        prev = p.embedding
    return ProjectionSequence(
        frames=frames, axis=axis, aligned=aligned,
        parameters={"method": method, "random_state": random_state, "aligned": aligned,
                    "aligned_n_iter": aligned_n_iter if aligned else None,
                    "aligned_early_exaggeration_iter": aligned_early_exaggeration_iter if aligned else None},
    )
