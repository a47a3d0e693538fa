"""2-D projections of hidden activations: t-SNE (openTSNE), UMAP (umap-learn), PCA (scikit-learn).

Rauber, Fadel, Falcão & Telea, "Visualizing the Hidden Activity of Artificial Neural Networks",
IEEE TVCG 23(1), 2017: each observation is a point described by a layer's activations; a 2-D
t-SNE of these points, coloured by class, shows how well the layer separates the classes, and
the neighborhood hit (NH, :mod:`.metrics`) puts a number on it.

:func:`project` is the one verb; it returns a :class:`Projection` (immutable, ``save``/``load``).
t-SNE is computed with openTSNE's ``TSNE``/``TSNEEmbedding`` (Barnes-Hut gradients below 500
points, FFT-accelerated ones from there, see :func:`tsne_grid`; one thread by default, seeded); UMAP is imported only when asked for (numba compiles on first use).
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Literal

import numpy as np

from .._io import atomic_path, read_json, to_jsonable, write_json
from .._progress import ProgressArg, resolve_progress, ticks
from ..exceptions import DataError, ParameterError
from .metrics import accuracy, check_finite, neighborhood_hit

__all__ = ["Projection", "project", "METHODS", "flatten_activations", "KnnGraph", "knn_graph"]

log = logging.getLogger(__name__)

Method = Literal["tsne", "umap", "pca"]
KnnMethod = Literal["auto", "exact", "annoy"]
METHODS = ("tsne", "umap", "pca")
#: t-SNE progress: one tick every this many gradient-descent iterations
TSNE_TICK = 25


def flatten_activations(x: np.ndarray) -> np.ndarray:
    """``(n, ...)`` activations as an ``(n, d)`` float array (conv maps flattened per observation).

    A lazy store array (:class:`layerscope.store.LazyArray`) is read chunk by chunk into one array;
    to project a row subset of a capture larger than memory, use :func:`project`'s ``rows=`` (and
    ``memory_budget=`` for layers too wide to hold those rows).
    """
    from ..store import as_matrix

    a = as_matrix(x)
    if a.dtype.kind != "f":
        a = a.astype(np.float32)
    return a


@dataclass(frozen=True)
class Projection:
    """A 2-D projection of one layer's activations, with its quality metrics.

    Attributes
    ----------
    embedding : ndarray of shape (n, 2)
        Point coordinates.
    labels : ndarray of shape (n,)
        True class of each observation.
    predictions : ndarray of shape (n,) or None
        The model's predicted class of each observation.
    sample_ids : ndarray of shape (n,) or None
        Row of each observation in the dataset.
    layer : str or None
    method : {"tsne", "umap", "pca"}
    parameters : dict
        Every knob used (perplexity, k, seed, initialisation, ...).
    metrics : dict
        ``nh`` (NH on the 2-D projection), ``nh_original`` (NH in the activation space, if
        computed), ``ac`` (accuracy of the predictions, if any), ``k``, ``n``, ``seconds``.
    checkpoint : int or None
        Training epoch of the model, when the projection belongs to a sequence over epochs.
    """

    embedding: np.ndarray
    labels: np.ndarray
    predictions: np.ndarray | None = None
    sample_ids: np.ndarray | None = None
    layer: str | None = None
    method: str = "tsne"
    parameters: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)
    checkpoint: int | None = None

    analysis = "projection"

    @property
    def nh(self) -> float:
        return float(self.metrics["nh"])

    @property
    def misclassified(self) -> np.ndarray:
        """Boolean mask of observations the model got wrong (all False without predictions)."""
        if self.predictions is None:
            return np.zeros(len(self.labels), dtype=bool)
        return np.asarray(self.predictions) != np.asarray(self.labels)

    def points(self) -> list[dict[str, Any]]:
        """One JSON-safe record per point: ``{"id", "x", "y", "label", "prediction"}``."""
        ids = self.sample_ids if self.sample_ids is not None else np.arange(len(self.labels))
        preds = self.predictions if self.predictions is not None else [None] * len(self.labels)
        return [
            {"id": int(i), "x": round(float(e[0]), 4), "y": round(float(e[1]), 4), "label": int(lab),
             "prediction": None if p is None else int(p)}
            for i, e, lab, p in zip(ids, self.embedding, self.labels, preds)
        ]

    def to_dict(self, points: bool = True) -> dict[str, Any]:
        """JSON-safe description; with ``points``, the coordinates as parallel lists
        ``x``, ``y``, ``labels``, ``predictions``, ``sample_ids`` (rounded to 4 decimals)."""
        d: dict[str, Any] = {
            "layer": self.layer,
            "method": self.method,
            "checkpoint": self.checkpoint,
            "parameters": to_jsonable(self.parameters),
            "metrics": to_jsonable(self.metrics),
        }
        if points:
            e = np.round(np.asarray(self.embedding, dtype=np.float64), 4)
            d["x"] = e[:, 0].tolist()
            d["y"] = e[:, 1].tolist()
            d["labels"] = np.asarray(self.labels).astype(int).tolist()
            d["predictions"] = None if self.predictions is None else np.asarray(self.predictions).astype(int).tolist()
            d["sample_ids"] = (
                np.arange(len(self.labels)) if self.sample_ids is None else np.asarray(self.sample_ids)
            ).astype(int).tolist()
        return d

    def save(self, out_dir: str | os.PathLike[str]) -> Path:
        """Write ``projection.json`` and ``projection.npz`` (exact arrays) into ``out_dir``."""
        d = Path(out_dir)
        d.mkdir(parents=True, exist_ok=True)
        arrays = {"embedding": np.asarray(self.embedding), "labels": np.asarray(self.labels)}
        if self.predictions is not None:
            arrays["predictions"] = np.asarray(self.predictions)
        if self.sample_ids is not None:
            arrays["sample_ids"] = np.asarray(self.sample_ids)
        with atomic_path(d / "projection.npz") as tmp:
            with open(tmp, "wb") as fh:
                np.savez(fh, **arrays)  # type: ignore[arg-type]  # numpy stubs match **arrays against allow_pickle: bool
        doc = {"analysis": "projection", "version": 1, **self.to_dict(points=False)}
        write_json(d / "projection.json", doc)
        return d

    @classmethod
    def load(cls, out_dir: str | os.PathLike[str]) -> "Projection":
        """Read a projection written by :meth:`save`."""
        d = Path(out_dir)
        if not (d / "projection.json").exists() or not (d / "projection.npz").exists():
            raise DataError(f"{d} holds no saved projection (projection.json + projection.npz expected).")
        doc = read_json(d / "projection.json")
        with np.load(d / "projection.npz") as z:
            arrs = {k: z[k] for k in z.files}
        return cls(
            embedding=arrs["embedding"],
            labels=arrs["labels"],
            predictions=arrs.get("predictions"),
            sample_ids=arrs.get("sample_ids"),
            layer=doc.get("layer"),
            method=doc.get("method", "tsne"),
            parameters=dict(doc.get("parameters") or {}),
            metrics=dict(doc.get("metrics") or {}),
            checkpoint=doc.get("checkpoint"),
        )


def _check_inputs(X: np.ndarray, labels: np.ndarray | None, method: str, k: int) -> tuple[np.ndarray, np.ndarray | None]:
    if method not in METHODS:
        raise ParameterError(f"unknown projection method {method!r}; expected one of {', '.join(METHODS)}.")
    Xa = flatten_activations(X)
    check_finite(Xa, "activations")
    return Xa, _check_labels(len(Xa), labels, k)


def _check_labels(n: int, labels: np.ndarray | None, k: int) -> np.ndarray | None:
    if n < 3:
        raise DataError(f"a projection needs at least 3 observations, got {n}.")
    y = None
    if labels is not None:
        y = np.asarray(labels)
        if y.shape != (n,):
            raise DataError(f"expected one label per observation ({n}), got labels of shape {y.shape}.")
        if len(np.unique(y)) < 2:
            raise DataError(
                f"all {len(y)} observations have the same label ({y[0]!r}); the neighborhood hit needs at "
                "least two classes. Pick observations from several classes."
            )
        if n < k + 1:
            raise ParameterError(
                f"neighborhood hit with k={k} needs at least {k + 1} observations, got {n}. "
                "Use more observations (--n) or a smaller k."
            )
    return y


def _procrustes(emb: np.ndarray, ref: np.ndarray) -> np.ndarray:
    """Rotate/reflect ``emb`` (about its centre) to best match ``ref`` (orthogonal Procrustes).

    Distances, hence NH, are unchanged; used to keep consecutive frames of a sequence aligned.
    """
    from scipy.linalg import orthogonal_procrustes

    a = emb - emb.mean(axis=0)
    b = ref - ref.mean(axis=0)
    R, _ = orthogonal_procrustes(a, b)
    return a @ R + ref.mean(axis=0)


# -- t-SNE ------------------------------------------------------------------------------------------
#
# Speed, measured (bench/tsne.py, MNIST activations, one thread): the cost of openTSNE is the 750
# gradient iterations and, before them, the k nearest neighbours (k = 3 x perplexity) of the
# affinities. Three choices make layerscope's path the fastest correct one measured at every n:
#
# * Barnes-Hut gradients (openTSNE's ``"bh"``, theta 0.5) below :data:`TSNE_BH_MAX_N` = 500 points.
#   There the FFT grid's fixed cost dominates: openTSNE's smallest grid (25 boxes per side) costs
#   about 0.65 ms per iteration whatever n, while Barnes-Hut grows with n; at 300 points BH takes
#   0.50 s against 0.76 s for the FFT, at 500 they tie (0.93 / 0.91 s), from 600 the FFT wins
#   (1.01 / 1.19 s; 700: 1.11 / 1.54 s), NH the same within seed noise (bench/results/tsne.md).
# * FFT-interpolated gradients from 500 points with a grid chosen by n: boxes of at most
#   ``ints_in_interval`` units and at least ``min_num_intervals`` = 10 boxes per side (openTSNE
#   rounds up to its smallest FFT-friendly size, 25). From 5,000 points: boxes of 2 units with 3
#   interpolation points each; below, where the embedding is small and the per-point interpolation
#   dominates, boxes of 1.5 units with 2 points (at 2,000 points: 20 % less CPU, the same NH and
#   KL as 2 units x 3 points). openTSNE's defaults switch to Barnes-Hut below 10,000 points and use
#   a floor of 50 boxes of 1 unit above; both cost 2-4x more per iteration at the same NH (the KL
#   divergence ends a few percent higher, see bench/results/tsne.md). Coarser grids (3-unit boxes)
#   lose quality from 1,000 points (NH -0.03, KL +30 %) and were not taken.
#   The price of the coarse grid, measured (bench/results/tsne_gradient.md): on a final layout the
#   repulsive gradient is off by 19-33 % of its mean norm (Barnes-Hut: 1.3 %, openTSNE's FFT grid:
#   2.5-3 %), the layout ends 29-38 % less spread than openTSNE's and its KL 5-10 % higher,
#   while NH stays within 0.005 of scikit-learn's. An accurate gradient costs what openTSNE's
#   defaults cost (Barnes-Hut below 10,000 points is already the fastest accurate one there).
# * Exact neighbours (scikit-learn, brute force on BLAS) while n^2 * d is small (up to about 20,000
#   x 256): faster than openTSNE's Annoy index there, and exact, so the same graph gives the
#   neighborhood hit in activation space for free. Beyond that, the search stays exact whenever NH
#   in activation space is computed (the default; it needs an exact search anyway, so one search
#   serves both: at 50,000 x 256 it is about 40 % of project's time), and is Annoy (approximate,
#   seeded) only with ``nh_original=False`` (:func:`tsne_knn_method`).

#: openTSNE's FFT grid: at least this many boxes per side (openTSNE rounds it up to 25).
TSNE_MIN_NUM_INTERVALS = 10
#: Below this many points, the small-embedding grid (1.5-unit boxes, 2 interpolation points).
TSNE_SMALL_N = 5000
#: Below this many points, Barnes-Hut gradients instead of the FFT (the FFT grid's fixed cost dominates).
TSNE_BH_MAX_N = 500
#: Barnes-Hut accuracy (openTSNE's and scikit-learn's default angle).
TSNE_THETA = 0.5

_FFT_KEYS = ("min_num_intervals", "ints_in_interval", "n_interpolation_points")
_BH_NAMES = ("bh", "BH", "barnes-hut")
_FFT_NAMES = ("fft", "FFT", "interpolation")


def _fft_grid(n: int) -> dict[str, Any]:
    if n < TSNE_SMALL_N:
        return {"negative_gradient_method": "fft", "min_num_intervals": TSNE_MIN_NUM_INTERVALS,
                "ints_in_interval": 1.5, "n_interpolation_points": 2}
    return {"negative_gradient_method": "fft", "min_num_intervals": TSNE_MIN_NUM_INTERVALS,
            "ints_in_interval": 2.0, "n_interpolation_points": 3}


def tsne_grid(n: int) -> dict[str, Any]:
    """The gradient settings (openTSNE keywords) layerscope uses for ``n`` points (see the comment above).

    Below :data:`TSNE_BH_MAX_N` points ``{"negative_gradient_method": "bh", "theta": 0.5}``
    (Barnes-Hut); from there, FFT gradients on the grid chosen by n
    (``negative_gradient_method="fft"``, ``min_num_intervals``, ``ints_in_interval``,
    ``n_interpolation_points``).
    """
    if n < TSNE_BH_MAX_N:
        return {"negative_gradient_method": "bh", "theta": TSNE_THETA}
    return _fft_grid(n)


def tsne_gradient_settings(n: int, overrides: dict[str, Any] | None = None) -> tuple[dict[str, Any], str]:
    """The gradient settings of a t-SNE of ``n`` points, given the caller's openTSNE keywords.

    Without gradient keywords: :func:`tsne_grid` (``"chosen": "by n"``). The caller's
    ``negative_gradient_method`` wins; without it, FFT grid keywords (``min_num_intervals``,
    ``ints_in_interval``, ``n_interpolation_points``) ask for the FFT and ``theta`` for Barnes-Hut.
    The missing keys of the chosen method are filled in from the grid chosen by n.

    Returns
    -------
    settings : dict
        openTSNE keywords of the gradient (only those of the method used).
    chosen : {"by n", "by the caller"}

    Raises
    ------
    ParameterError
        Keywords of both methods, or of the method not asked for (openTSNE would ignore them).
    """
    ov = {k: v for k, v in (overrides or {}).items() if k in ("negative_gradient_method", "theta", *_FFT_KEYS)}
    if not ov:
        return tsne_grid(n), "by n"
    fft_keys = sorted(k for k in ov if k in _FFT_KEYS)
    method = ov.get("negative_gradient_method")
    if method is None:
        if fft_keys and "theta" in ov:
            raise ParameterError(
                f"theta (Barnes-Hut) and {', '.join(fft_keys)} (FFT) were both given; pass "
                "negative_gradient_method='bh' or 'fft' and only that method's keywords.")
        method = "fft" if fft_keys else "bh"
    if method in _BH_NAMES:
        if fft_keys:
            raise ParameterError(f"{', '.join(fft_keys)} set the FFT grid, which Barnes-Hut "
                                 f"(negative_gradient_method={method!r}) does not use; drop them or use 'fft'.")
        return {"negative_gradient_method": "bh", "theta": ov.get("theta", TSNE_THETA)}, "by the caller"
    if method in _FFT_NAMES:
        if "theta" in ov:
            raise ParameterError(f"theta is the Barnes-Hut angle, which the FFT (negative_gradient_method={method!r}) "
                                 "does not use; drop it or use 'bh'.")
        return {**_fft_grid(n), **{k: ov[k] for k in fft_keys}}, "by the caller"
    raise ParameterError(f"unknown negative_gradient_method {method!r}; expected 'fft' or 'bh' (or omit it: "
                         "layerscope chooses by n).")


#: Exact neighbours while n * n * d stays below this (about 20,000 points x 256 dimensions).
EXACT_KNN_MAX_WORK = 1.1e11


def _fingerprint(X: np.ndarray) -> str:
    import hashlib

    a = np.ascontiguousarray(X)
    h = hashlib.blake2b(digest_size=16)
    h.update(str((a.shape, a.dtype.str)).encode())
    h.update(a.tobytes())
    return h.hexdigest()


@dataclass(frozen=True)
class KnnGraph:
    """The ``k`` nearest neighbours of every observation in one activation space.

    Computed once by :func:`knn_graph` and used both for the t-SNE affinities (perplexity-based,
    ``k = 3 x perplexity``) and, when exact, for the neighborhood hit in activation space (its first
    ``k`` columns). Valid only for the very activations it was computed on (same points, same
    layer, same checkpoint): :func:`project` checks ``fingerprint`` and refuses another array.

    Attributes
    ----------
    indices : ndarray of shape (n, k), int64
        Neighbours of each row, nearest first, the row itself excluded.
    distances : ndarray of shape (n, k), float64
        Their Euclidean distances.
    exact : bool
        Whether the search was exact (scikit-learn) or approximate (Annoy).
    method : {"exact", "annoy"}
    fingerprint : str
        Hash of the activations' bytes, shape and dtype.
    """

    indices: np.ndarray
    distances: np.ndarray
    exact: bool
    method: str
    fingerprint: str

    @property
    def n(self) -> int:
        return int(self.indices.shape[0])

    @property
    def k(self) -> int:
        return int(self.indices.shape[1])


def knn_graph(
    X: np.ndarray,
    n_neighbors: int,
    *,
    method: Literal["auto", "exact", "annoy"] = "auto",
    random_state: int | None = 0,
    n_jobs: int = 1,
) -> KnnGraph:
    """The ``n_neighbors`` nearest neighbours (Euclidean) of every row of ``X``, itself excluded.

    Parameters
    ----------
    X : ndarray of shape (n, ...)
        Activations (flattened per observation).
    n_neighbors : int
        Neighbours per row, ``1 <= n_neighbors < n``.
    method : {"auto", "exact", "annoy"}, default "auto"
        ``"exact"``: scikit-learn's ``NearestNeighbors`` (brute force), the same search as
        :func:`~layerscope.projection.neighborhood_hit`; ``"annoy"``: openTSNE's Annoy index
        (approximate, seeded by ``random_state``); ``"auto"``: exact while ``n * n * d`` is at most
        ``EXACT_KNN_MAX_WORK`` (where it is also the faster one), Annoy above.
    random_state : int or None, default 0
    n_jobs : int, default 1

    Returns
    -------
    KnnGraph
    """
    Xa = flatten_activations(X)
    check_finite(Xa, "activations")
    n, d = Xa.shape
    if isinstance(n_neighbors, bool) or not isinstance(n_neighbors, (int, np.integer)) or not 1 <= n_neighbors < n:
        raise ParameterError(f"n_neighbors must be an integer in [1, {n - 1}] for {n} observations, got {n_neighbors!r}.")
    if method not in ("auto", "exact", "annoy"):
        raise ParameterError(f"unknown neighbour search {method!r}; expected 'auto', 'exact' or 'annoy'.")
    if method == "auto":
        method = "exact" if float(n) * n * d <= EXACT_KNN_MAX_WORK else "annoy"
    if method == "exact":
        from sklearn.neighbors import NearestNeighbors

        # ``kneighbors()`` without X queries the fitted points and leaves each point itself out
        # (if it has more exact duplicates than neighbours, the farthest one is dropped instead).
        dist, idx = NearestNeighbors(n_neighbors=int(n_neighbors), algorithm="brute", n_jobs=n_jobs).fit(Xa).kneighbors()
    else:
        from openTSNE.nearest_neighbors import Annoy

        idx, dist = Annoy(np.asarray(Xa, dtype=np.float64), int(n_neighbors), n_jobs=n_jobs,
                          random_state=random_state).build()
    return KnnGraph(indices=np.ascontiguousarray(idx, dtype=np.int64),
                    distances=np.ascontiguousarray(dist, dtype=np.float64),
                    exact=method == "exact", method=method, fingerprint=_fingerprint(Xa))


def _check_graph(graph: KnnGraph, Xa: np.ndarray, need: int) -> None:
    if graph.n != len(Xa) or graph.fingerprint != _fingerprint(Xa):
        raise ParameterError(
            "the kNN graph passed as knn= was computed on other activations (another layer, checkpoint or "
            "set of observations); a graph is valid only for the array it was computed on. Pass knn=None."
        )
    if graph.k < need:
        raise ParameterError(f"the kNN graph holds {graph.k} neighbours per point but {need} are needed; "
                             f"compute it with knn_graph(X, {need}) or pass knn=None.")


def _tsne_neighbours(perplexity: float, n: int) -> int:
    return min(n - 1, int(3 * perplexity))


def tsne_knn_method(knn_method: KnnMethod, n_affinity: int, nh_k: int | None) -> KnnMethod:
    """The neighbour search of a t-SNE's affinities: ``knn_method``, with ``"auto"`` resolved.

    With ``nh_k`` (the ``k`` of an exact NH in activation space that will be computed anyway, at
    most ``n_affinity``), ``"auto"`` is ``"exact"`` at every n: the exact search then serves both
    the affinities and NH, and costs about what the NH search alone costs (measured at 20,000 x
    256: 5.4 s for 90 neighbours, 4.9 s for NH's 6; Annoy 7.7 s on top of NH's 4.9 s). Otherwise
    ``"auto"`` is left to :func:`knn_graph` (exact while ``n * n * d <= EXACT_KNN_MAX_WORK``).
    """
    if knn_method == "auto" and nh_k is not None and nh_k <= n_affinity:
        return "exact"
    return knn_method


def _tsne(
    X: np.ndarray,
    *,
    random_state: int | None,
    perplexity: float,
    initialization: np.ndarray | str | None,
    n_iter: int,
    early_exaggeration_iter: int,
    n_jobs: int,
    graph: KnnGraph,
    tick: Callable[[], None] | None = None,
    **kw: Any,
) -> np.ndarray:
    from openTSNE import TSNE
    from openTSNE.affinity import PerplexityBasedNN
    from openTSNE.initialization import rescale
    from openTSNE.nearest_neighbors import PrecomputedNeighbors

    n = len(X)
    init: Any = "pca" if initialization is None else initialization
    if isinstance(init, np.ndarray):
        if init.shape != (n, 2):
            raise DataError(f"initialization must have shape ({n}, 2), got {init.shape}.")
        # openTSNE recommends a small-variance start; the layout (not the scale) is what we keep.
        init = rescale(np.asarray(init, dtype=np.float64), target_std=1e-4)
    tsne = TSNE(n_components=2, perplexity=perplexity, n_jobs=n_jobs, random_state=random_state,
                n_iter=n_iter, early_exaggeration_iter=early_exaggeration_iter, **kw)
    k = _tsne_neighbours(perplexity, n)
    aff = PerplexityBasedNN(perplexity=perplexity, n_jobs=n_jobs,
                            knn_index=PrecomputedNeighbors(graph.indices[:, :k], graph.distances[:, :k]))
    emb = tsne.prepare_initial(X, affinities=aff, initialization=init)
    # progress: openTSNE calls back every TSNE_TICK iterations (it then also computes the KL
    # divergence; the embedding is the same with or without the callback)
    cb: dict[str, Any] = {} if tick is None else {
        "callbacks": lambda *_: tick(), "callbacks_every_iters": TSNE_TICK}  # returns None: never stops early
    if early_exaggeration_iter > 0:
        emb = emb.optimize(n_iter=early_exaggeration_iter, exaggeration=tsne.early_exaggeration,
                           momentum=tsne.initial_momentum, inplace=True, **cb)
    if n_iter > 0:
        emb = emb.optimize(n_iter=n_iter, exaggeration=tsne.exaggeration, momentum=tsne.final_momentum, inplace=True,
                           **cb)
    return np.asarray(emb, dtype=np.float64)


def _umap(X: np.ndarray, *, random_state: int | None, n_neighbors: int, min_dist: float,
          initialization: np.ndarray | str | None, n_jobs: int, **kw: Any) -> np.ndarray:
    if len(X) <= n_neighbors:
        raise ParameterError(
            f"UMAP with n_neighbors={n_neighbors} needs more than {n_neighbors} observations, got {len(X)}. "
            "Use more observations or a smaller n_neighbors."
        )
    from .._optional import require

    umap = require("umap", "method='umap'")  # lazily: numba compiles on first import
    init: Any = "spectral" if initialization is None else np.asarray(initialization, dtype=np.float64)
    reducer = umap.UMAP(n_components=2, n_neighbors=n_neighbors, min_dist=min_dist, random_state=random_state,
                        init=init, n_jobs=n_jobs if random_state is None else 1, **kw)
    return np.asarray(reducer.fit_transform(X), dtype=np.float64)


def _pca(X: np.ndarray, *, random_state: int | None) -> np.ndarray:
    from sklearn.decomposition import PCA

    if X.shape[1] < 2:
        return np.column_stack([X[:, 0] - X[:, 0].mean(), np.zeros(len(X))])
    return np.asarray(PCA(n_components=2, random_state=random_state).fit_transform(X), dtype=np.float64)


def project(
    X: np.ndarray,
    labels: np.ndarray | None = None,
    method: Method = "tsne",
    random_state: int | None = 0,
    *,
    predictions: np.ndarray | None = None,
    sample_ids: np.ndarray | None = None,
    layer: str | None = None,
    checkpoint: int | None = None,
    k: int = 6,
    nh_original: bool = True,
    perplexity: float = 30.0,
    n_iter: int = 500,
    early_exaggeration_iter: int = 250,
    n_neighbors: int = 15,
    min_dist: float = 0.1,
    initialization: np.ndarray | None = None,
    align_to: np.ndarray | None = None,
    n_jobs: int = 1,
    progress: ProgressArg = None,
    knn: KnnGraph | None = None,
    knn_method: Literal["auto", "exact", "annoy"] = "auto",
    rows: np.ndarray | None = None,
    memory_budget: int | None = None,
    reduce_dim: int = 50,
    scratch_dir: str | os.PathLike[str] | None = None,
    **method_kwargs: Any,
) -> Projection:
    """Project a layer's activations to 2-D and measure how well the classes separate.

    Rauber et al. (2017): t-SNE of the activations of a (random, stratified) set of observations,
    the neighborhood hit (NH, k = 6) of the projection and, as an extra measure, NH in the
    original activation space; AC is the accuracy of the model's ``predictions``.

    Parameters
    ----------
    X : ndarray of shape (n, ...)
        Activations, one row per observation (conv maps are flattened).
    labels : ndarray of shape (n,), optional
        True classes; without labels no NH is computed.
    method : {"tsne", "umap", "pca"}, default "tsne"
        t-SNE via openTSNE, UMAP via umap-learn (imported lazily), PCA via scikit-learn.
    random_state : int or None, default 0
        Seed; the same seed gives the same embedding on CPU.
    predictions : ndarray of shape (n,), optional
        Model predictions (for AC and for marking misclassified observations).
    sample_ids : ndarray of shape (n,), optional
        Dataset rows, kept with the points.
    layer, checkpoint : optional
        Recorded in the result.
    k : int, default 6
        Neighbours for NH.
    nh_original : bool, default True
        Also compute NH in the original activation space.
    perplexity, n_iter, early_exaggeration_iter : t-SNE parameters (openTSNE defaults).
    n_neighbors, min_dist : UMAP parameters.
    initialization : ndarray of shape (n, 2), optional
        Start from this layout (t-SNE: rescaled to a small spread; UMAP: as is), e.g. the
        previous projection of a sequence.
    align_to : ndarray of shape (n, 2), optional
        Rotate/reflect the result to best match this layout (orthogonal Procrustes; NH unchanged).
    n_jobs : int, default 1
    progress : None, bool or tracker
        t-SNE only: a bar ``tsne <layer>`` ticking every :data:`TSNE_TICK` iterations
        (``True``: ``tqdm.auto``; or any tqdm-compatible callable).
    knn : KnnGraph, optional
        t-SNE only: the neighbours of these very activations, from :func:`knn_graph` (at least
        ``3 x perplexity`` per point), e.g. computed once and shared by several projections of the
        same layer. Refused (``ParameterError``) if it was computed on another array.
    knn_method : {"auto", "exact", "annoy"}, default "auto"
        t-SNE only, without ``knn``: how the neighbours of the affinities are found (see
        :func:`knn_graph`); ``"auto"`` is exact at every n when ``nh_original`` is computed (that
        search is then paid once for both, see :func:`tsne_knn_method`), else exact up to about
        20,000 x 256 and Annoy above. With an exact graph, ``nh_original`` is read from its first ``k``
        columns (the same neighbours scikit-learn's ``NearestNeighbors`` finds, up to ties among
        equidistant points); with an approximate one it is computed by an exact search.
    rows : array of int, optional
        Project only these rows of ``X`` (in this order). ``labels``, ``predictions`` and
        ``sample_ids`` then hold one entry per row of ``X`` and are indexed the same way;
        ``sample_ids`` defaults to ``rows``. With a lazy store array
        (:class:`layerscope.store.LazyArray`) only the chunks holding these rows are read.
    memory_budget : int, optional
        Bytes the rows to project may take in memory. Default: no limit (the rows are read into
        one array). When ``n x d`` values exceed it, the layer is read by blocks
        (:mod:`layerscope.projection.streamed`): the exact neighbours in the full activation space
        (the t-SNE affinities and ``nh_original``, as in memory) and an IncrementalPCA reduction to
        ``reduce_dim`` dimensions (the t-SNE initialisation, UMAP's input, the 2-D PCA), recorded in
        ``parameters["reduction"]``. Within the budget the result equals the in-memory one.
    reduce_dim : int, default 50
        Dimensions of that reduction.
    scratch_dir : path, optional
        Where the block route stages the rows (a temporary folder, removed afterwards; default:
        the system's temporary directory). It needs ``n x d x 4`` bytes of disk.
    **method_kwargs
        Passed to ``openTSNE.TSNE`` or ``umap.UMAP``. t-SNE gradients: by default Barnes-Hut
        (theta 0.5) below 500 points and FFT gradients on a coarse grid chosen by n from there
        (:func:`tsne_grid`, measured fastest at the same NH; the layout is more compact and its KL
        a few percent higher than with an accurate gradient); ``negative_gradient_method``
        (``"bh"``/``"fft"``), ``theta`` or the grid keywords ``ints_in_interval``,
        ``min_num_intervals``, ``n_interpolation_points`` override that choice (see
        :func:`tsne_gradient_settings`). The settings used are recorded in ``parameters``
        (``negative_gradient_method`` and its keywords, ``gradient_chosen``: ``"by n"`` or
        ``"by the caller"``).

    Returns
    -------
    Projection

    Raises
    ------
    ParameterError
        Unknown method; too few observations for ``k``, the perplexity or ``n_neighbors``;
        t-SNE gradient keywords of both methods or of the method not used.
    DataError
        NaN/inf activations; labels of the wrong length; a single class.
    """
    import time

    from ..store import as_matrix, reduced_precision_note

    precision = reduced_precision_note(X)
    if rows is not None:
        X, labels, predictions, sample_ids = _select_rows(X, rows, labels, predictions, sample_ids)
        rows = np.asarray(rows, dtype=np.int64)
    if knn is not None and method != "tsne":
        raise ParameterError(f"knn= is used only by method='tsne', not {method!r}; drop it.")
    # checked on every route, so a bad value is never silently unused
    if isinstance(reduce_dim, bool) or not isinstance(reduce_dim, (int, np.integer)) or reduce_dim < 2:
        raise ParameterError(f"reduce_dim must be an integer >= 2; got {reduce_dim!r}.")
    if initialization is not None and method == "pca":
        log.info("PCA ignores the initialization")
    t0 = time.perf_counter()
    streamed = None
    if memory_budget is not None and _too_wide(X, rows, memory_budget):
        streamed = _streamed(X, rows, labels, method, k, nh_original, perplexity, knn, knn_method,
                             memory_budget, reduce_dim, scratch_dir)
        Xa, y = streamed.coordinates, _check_labels(len(streamed.coordinates), labels, k)
    else:
        Xa, y = _check_inputs(X if rows is None else as_matrix(X, rows), labels, method, k)
    graph: KnnGraph | None = None
    if method == "tsne":
        n = len(Xa)
        if n - 1 < 3 * perplexity:
            raise ParameterError(
                f"t-SNE with perplexity {perplexity:g} needs more than {int(3 * perplexity)} observations "
                f"(3 x perplexity neighbours each), got {n}. Use more observations or a smaller perplexity "
                f"(at most {max((n - 1) / 3, 1):.1f})."
            )
        n_aff = _tsne_neighbours(perplexity, n)
        gradient, chosen = tsne_gradient_settings(n, method_kwargs)
        method_kwargs = {k_: v for k_, v in method_kwargs.items() if k_ not in gradient}
        if streamed is not None and streamed.knn_indices is not None:
            # the exact neighbours in the full activation space (the reduced coordinates only
            # start the layout): the affinities of the in-memory computation
            graph = KnnGraph(indices=streamed.knn_indices[:, :n_aff], distances=streamed.knn_distances[:, :n_aff],
                             exact=True, method="exact", fingerprint=_fingerprint(Xa))
        elif knn is not None:
            _check_graph(knn, Xa, n_aff)
            graph = knn
        else:
            nh_k = k if (y is not None and nh_original) else None
            graph = knn_graph(Xa, n_aff, method=tsne_knn_method(knn_method, n_aff, nh_k),
                              random_state=random_state, n_jobs=n_jobs)
        name = "tsne" + ("" if layer is None else f" {layer}") + ("" if checkpoint is None else f" @ epoch {checkpoint}")
        total = -(-max(early_exaggeration_iter, 0) // TSNE_TICK) + -(-max(n_iter, 0) // TSNE_TICK)
        with ticks(resolve_progress(progress), total=total, desc=name) as tick:
            emb = _tsne(Xa, random_state=random_state, perplexity=perplexity, initialization=initialization,
                        n_iter=n_iter, early_exaggeration_iter=early_exaggeration_iter, n_jobs=n_jobs, graph=graph,
                        tick=None if progress is None or progress is False else tick, **gradient, **method_kwargs)
        params: dict[str, Any] = {"perplexity": perplexity, "n_iter": n_iter,
                                  "early_exaggeration_iter": early_exaggeration_iter,
                                  **gradient, "gradient_chosen": chosen,
                                  "knn": graph.method, "knn_neighbors": n_aff, "knn_shared": knn is not None}
    elif method == "umap":
        emb = _umap(Xa, random_state=random_state, n_neighbors=n_neighbors, min_dist=min_dist,
                    initialization=initialization, n_jobs=n_jobs, **method_kwargs)
        params = {"n_neighbors": n_neighbors, "min_dist": min_dist}
    else:
        emb = _pca(Xa, random_state=random_state)
        params = {}
    seconds = time.perf_counter() - t0
    if not np.all(np.isfinite(emb)):
        raise DataError(f"the {method} projection produced NaN/inf coordinates; check the activations' scale.")
    if align_to is not None:
        emb = _procrustes(emb, np.asarray(align_to, dtype=np.float64))
    params.update({"random_state": random_state, "k": k, "initialized": initialization is not None,
                   "aligned": align_to is not None, **{k_: v for k_, v in method_kwargs.items()}})
    if streamed is not None:
        params["reduction"] = streamed.reduction
        params["memory_budget"] = int(memory_budget) if memory_budget is not None else None
    if precision is not None:
        params["precision"] = precision
    dim = int(streamed.reduction["input_dim"]) if streamed is not None else int(Xa.shape[1])
    metrics: dict[str, Any] = {"n": int(len(Xa)), "dim": dim, "k": k, "seconds": round(seconds, 3)}
    if streamed is not None:
        metrics["reduced_dim"] = int(Xa.shape[1])
    if precision is not None:
        metrics["precision"] = precision
    if y is not None:
        metrics["nh"] = neighborhood_hit(emb, y, k)
        if nh_original:
            if streamed is not None and streamed.knn_indices is not None:
                # exact neighbours in the full activation space, nearest first
                metrics["nh_original"] = float((y[streamed.knn_indices[:, :k]] == y[:, None]).mean())
            elif graph is not None and graph.exact and graph.k >= k:
                # the exact neighbours of the affinities, nearest first: their first k are NH's
                metrics["nh_original"] = float((y[graph.indices[:, :k]] == y[:, None]).mean())
            else:
                metrics["nh_original"] = neighborhood_hit(Xa, y, k)
        if predictions is not None:
            metrics["ac"] = accuracy(y, np.asarray(predictions))
    return Projection(
        embedding=emb,
        labels=np.asarray(labels) if labels is not None else np.full(len(Xa), -1),
        predictions=None if predictions is None else np.asarray(predictions),
        sample_ids=None if sample_ids is None else np.asarray(sample_ids),
        layer=layer,
        method=method,
        parameters=params,
        metrics=metrics,
        checkpoint=checkpoint,
    )


def _select_rows(
    X: Any, rows: Any, labels: Any, predictions: Any, sample_ids: Any
) -> tuple[Any, Any, Any, Any]:
    """Check ``rows`` against ``X`` and index the per-row arrays by it (see :func:`project`)."""
    r = np.asarray(rows)
    n_all = len(X)
    if r.ndim != 1 or (r.size and r.dtype.kind not in "iu"):
        raise ParameterError(f"rows must be a 1-D array of integer row numbers; got {r.dtype} of shape {r.shape}.")
    if r.size and (r.min() < 0 or r.max() >= n_all):
        raise ParameterError(f"rows must lie in [0, {n_all}) (the rows of X); got {int(r.min())}..{int(r.max())}.")
    if len(np.unique(r)) != len(r):
        raise ParameterError("rows holds a row more than once; each observation can be projected once.")
    out: list[Any] = []
    for what, v in (("labels", labels), ("predictions", predictions), ("sample_ids", sample_ids)):
        if v is None:
            out.append(None)
            continue
        a = np.asarray(v)
        if a.shape[:1] != (n_all,):
            raise DataError(f"with rows=, {what} must hold one entry per row of X ({n_all}); got shape {a.shape}.")
        out.append(a[r])
    return X, out[0], out[1], r if out[2] is None else out[2]


def _too_wide(X: Any, rows: np.ndarray | None, budget: int) -> bool:
    from ..store import n_features_of

    if isinstance(budget, bool) or not isinstance(budget, (int, np.integer)) or budget <= 0:
        raise ParameterError(f"memory_budget must be a positive integer number of bytes; got {budget!r}.")
    n = len(X) if rows is None else len(rows)
    itemsize = max(4, np.dtype(getattr(X, "dtype", np.float32)).itemsize)  # read as float32 at least
    return n * n_features_of(X) * itemsize > budget


def _streamed(
    X: Any, rows: np.ndarray | None, labels: Any, method: str, k: int, nh_original: bool, perplexity: float,
    knn: KnnGraph | None, knn_method: str, memory_budget: int, reduce_dim: int, scratch_dir: Any,
) -> Any:
    """The block route of :func:`project` (:func:`layerscope.projection.streamed.streamed_input`)."""
    from .streamed import streamed_input

    if method not in METHODS:
        raise ParameterError(f"unknown projection method {method!r}; expected one of {', '.join(METHODS)}.")
    if knn is not None:
        raise ParameterError("knn= cannot be checked against a layer read by blocks (memory_budget exceeded); "
                             "drop knn= (the block route finds the exact neighbours itself) or raise memory_budget.")
    if knn_method == "annoy":
        raise ParameterError("knn_method='annoy' needs the rows in memory; the block route (memory_budget "
                             "exceeded) searches exactly: use knn_method='auto' or 'exact', or raise memory_budget.")
    n = len(X) if rows is None else len(rows)
    _check_labels(n, labels, k)
    need = 0
    if method == "tsne":
        if n - 1 < 3 * perplexity:
            need = 0  # project() refuses this perplexity below, with its message
        else:
            need = _tsne_neighbours(perplexity, n)
    if labels is not None and nh_original:
        need = max(need, k)
    return streamed_input(X, rows, memory_budget=int(memory_budget), reduce_dim=int(reduce_dim), n_neighbors=need,
                          scratch_dir=scratch_dir)
