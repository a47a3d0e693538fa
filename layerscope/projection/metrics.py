"""Quality metrics of a projection: neighborhood hit (NH) and accuracy (AC).

Rauber, Fadel, Falcão & Telea, "Visualizing the Hidden Activity of Artificial Neural Networks",
IEEE TVCG 23(1), 2017: the *neighborhood hit* of a point is the fraction of its ``k`` nearest
neighbours (the point itself excluded) that share its label; NH is the mean over all points.
The paper uses ``k = 6`` on the 2-D t-SNE projection. AC is the network's accuracy on the same
observations.

The neighbour search uses a spatial index (SciPy's ``cKDTree`` for low dimensions, scikit-learn's
``NearestNeighbors`` otherwise), so NH costs O(n log n) for 2-D embeddings instead of the O(n²)
of all pairwise distances.
"""

from __future__ import annotations

import numpy as np

from ..exceptions import DataError, ParameterError

__all__ = ["neighborhood_hit", "neighborhood_hit_per_point", "accuracy", "check_finite", "knn_indices"]

# Above this many dimensions a KD-tree loses to brute force (scikit-learn's choice of algorithm).
_KDTREE_MAX_DIM = 15


def check_finite(x: np.ndarray, what: str = "activations") -> None:
    """Raise :class:`DataError` if ``x`` holds NaN or infinite values."""
    if not np.all(np.isfinite(x)):
        bad = int(np.size(x) - np.count_nonzero(np.isfinite(x)))
        raise DataError(
            f"the {what} hold {bad} NaN or infinite value(s) out of {np.size(x)}; expected only finite "
            "numbers. Check the model (exploding weights, a division by zero) or the input data."
        )


def _as_points(embedding: np.ndarray, labels: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    x = np.asarray(embedding)
    if x.ndim == 1:
        x = x[:, None]
    if x.ndim != 2:
        x = x.reshape(len(x), -1)
    y = np.asarray(labels)
    if y.ndim != 1 or len(y) != len(x):
        raise DataError(f"expected one label per point: {len(x)} points but labels of shape {y.shape}.")
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
        raise ParameterError(f"k must be a positive integer, got {k!r}.")
    if len(x) < k + 1:
        raise ParameterError(
            f"neighborhood hit with k={k} needs at least {k + 1} points (each point and {k} neighbours), "
            f"got {len(x)}. Use more observations or a smaller k."
        )
    if len(np.unique(y)) < 2:
        raise DataError(
            f"all {len(y)} points have the same label; the neighborhood hit is trivially 1 with a single "
            "class. Use observations from at least two classes."
        )
    check_finite(x, "embedding coordinates")
    return x.astype(np.float64, copy=False), y


def knn_indices(x: np.ndarray, k: int, workers: int = 1) -> np.ndarray:
    """Indices ``(n, k)`` of the ``k`` nearest neighbours of every row of ``x``, itself excluded.

    Uses a KD-tree for up to 15 dimensions and scikit-learn's ``NearestNeighbors`` (brute force
    on blocks, or a ball tree) above. If a point has more than ``k`` exact duplicates the point
    itself may not be among the ``k + 1`` returned; then the farthest one is dropped instead.
    """
    n = len(x)
    if x.shape[1] <= _KDTREE_MAX_DIM:
        from scipy.spatial import cKDTree

        # An unbalanced tree builds faster; querying the points in the tree's own (leaf) order
        # keeps consecutive queries in the same cache lines. Results are put back in input order.
        tree = cKDTree(x, balanced_tree=False, compact_nodes=False)
        order = tree.indices
        _, found = tree.query(x[order], k=k + 1, workers=workers)
        idx = np.empty_like(found)
        idx[order] = found
    else:
        from sklearn.neighbors import NearestNeighbors

        nn = NearestNeighbors(n_neighbors=k + 1, n_jobs=workers).fit(x)
        idx = nn.kneighbors(x, return_distance=False)
    idx = np.asarray(idx, dtype=np.int64)
    is_self = idx == np.arange(n)[:, None]
    # Rows where the point itself was not returned (many exact duplicates): drop the last column.
    missing = ~is_self.any(axis=1)
    is_self[missing, -1] = True
    return idx[~is_self].reshape(n, k)


def neighborhood_hit_per_point(embedding: np.ndarray, labels: np.ndarray, k: int = 6, *, n_jobs: int = 1) -> np.ndarray:
    """Per-point neighborhood hit: the fraction of each point's ``k`` nearest neighbours with its label.

    Parameters
    ----------
    embedding : ndarray of shape (n, d)
        Point coordinates (a 2-D projection or the original activations, flattened per point).
    labels : ndarray of shape (n,)
        One label per point.
    k : int, default 6
        Number of neighbours, the point itself excluded (Rauber et al. 2017 use 6).
    n_jobs : int, default 1
        Threads of the neighbour search (-1: all cores).

    Returns
    -------
    ndarray of shape (n,), values in ``{0, 1/k, ..., 1}``.
    """
    x, y = _as_points(embedding, labels, k)
    idx = knn_indices(x, k, workers=n_jobs)
    return (y[idx] == y[:, None]).mean(axis=1)


def neighborhood_hit(embedding: np.ndarray, labels: np.ndarray, k: int = 6, *, n_jobs: int = 1) -> float:
    """Neighborhood hit (NH) of Rauber et al. (2017): mean over points of the fraction of their
    ``k`` nearest neighbours (excluding the point itself) that share their label.

    Parameters
    ----------
    embedding : ndarray of shape (n, d)
        Point coordinates; NH is invariant to translating, rotating or uniformly scaling them and
        to the order of the points (up to ties among equidistant neighbours).
    labels : ndarray of shape (n,)
        One label per point.
    k : int, default 6
        Number of neighbours.
    n_jobs : int, default 1
        Threads of the neighbour search (-1: all cores).

    Returns
    -------
    float in [0, 1]. 1.0 when every class forms its own well-separated cluster; about
    ``sum(p_c**2)`` (chance) when labels are unrelated to positions.

    Raises
    ------
    ParameterError
        ``k`` is not a positive integer or there are fewer than ``k + 1`` points.
    DataError
        Labels do not match the points, or coordinates are NaN/inf.
    """
    return float(neighborhood_hit_per_point(embedding, labels, k, n_jobs=n_jobs).mean())


def accuracy(labels: np.ndarray, predictions: np.ndarray | None) -> float | None:
    """AC: the fraction of ``predictions`` equal to ``labels`` (``None`` if there are no predictions)."""
    if predictions is None:
        return None
    y = np.asarray(labels)
    p = np.asarray(predictions)
    if y.shape != p.shape:
        raise DataError(f"labels {y.shape} and predictions {p.shape} must have the same shape.")
    if len(y) == 0:
        raise DataError("accuracy of zero observations is undefined; pass at least one.")
    return float(np.mean(y == p))
