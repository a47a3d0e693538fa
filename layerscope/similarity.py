"""Cheap per-layer measures of generality: linear probes and linear CKA.

* **Linear probe** (Alain & Bengio, "Understanding intermediate layers using linear classifier
  probes", 2016): a linear classifier trained on a layer's frozen activations; its held-out
  accuracy says how linearly decodable the labels are at that depth. Here: standardised
  features + multinomial logistic regression (scikit-learn).
* **Linear CKA** (Kornblith, Norouzi, Lee & Hinton, "Similarity of Neural Network
  Representations Revisited", ICML 2019): ``||Yc^T Xc||_F^2 / (||Xc^T Xc||_F ||Yc^T Yc||_F)``
  with column-centred ``Xc``, ``Yc`` (rows = the same observations). 1 for identical
  representations; invariant to orthogonal transforms and isotropic scaling, not to arbitrary
  invertible linear maps.

:func:`probe_model` and :func:`cka_model` run these over a model's layers (what ``layerscope
probe`` / ``cka`` do) and return a :class:`ProbeStudy` / :class:`CKAResult` whose ``save(dir)``
writes the folder of the command (figures in :mod:`layerscope.similarity_plots`):

``analysis = "probe"``::

    parameters: {layers, checkpoints, n, test_size, C, random_state, groups, reduce}
    metrics: {"probe": {"<model or epoch e>": {layer: {accuracy, chance, train_accuracy, n_train,
              n_test, n_features, n_classes, C, layer}}}}
    probes: {"<model or epoch e>": [{layer, accuracy, chance, train_accuracy, ...}, ...]}  # layer order

``analysis = "cka"``::

    parameters: {layers, layers_b, n, random_state, mode: "layers"|"checkpoints"|"models", a, b, reduce}
    metrics: {"cka": [[...]] (len(layers) x len(layers_b)),
              "diagonal": {layer: value} (same layers in two checkpoints / models)}
    rows: [layer names of A], cols: [layer names of B]
"""

from __future__ import annotations

import logging
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping, Sequence

import numpy as np

from ._progress import ProgressArg, resolve_progress
from .exceptions import DataError, ParameterError
from .results import AnalysisResult, short_list
from .store import n_features_of

if TYPE_CHECKING:
    from matplotlib.figure import Figure
    from torch import nn

__all__ = [
    "ProbeResult", "linear_probe", "linear_cka", "linear_cka_detail", "CKADetail", "cka_matrix", "probe_layers",
    "ProbeStudy", "probe_model", "CKAResult", "cka_model",
]

log = logging.getLogger(__name__)


def _check_matrix(x: Any, what: str, rows: Sequence[int] | np.ndarray | None = None,
                  dtype: Any = np.float64) -> np.ndarray:
    """``x`` (its ``rows``) as a finite ``(n, d)`` matrix in ``dtype`` (``None``: float32 and float64 kept as
    they are, other types as float64)."""
    from .store import as_matrix

    # a lazy store array (layerscope.store.LazyArray) is read here, only the rows asked for
    a = as_matrix(x, rows)
    if a.shape[0] == 0 or a.shape[1] == 0:
        raise DataError(f"{what} is empty (shape {a.shape}); expected (n_observations, n_features) with both > 0.")
    if dtype is None:
        dtype = a.dtype if a.dtype in (np.float32, np.float64) else np.float64
    a = a.astype(dtype, copy=False)
    if not np.all(np.isfinite(a)):
        raise DataError(
            f"{what} holds NaN or infinite values; expected finite activations. Check the model or the input."
        )
    return a


@dataclass(frozen=True)
class ProbeResult:
    """Held-out accuracy of a linear classifier on frozen features.

    Attributes
    ----------
    accuracy : float
        Accuracy on the held-out split.
    chance : float
        Accuracy of always predicting the most frequent training class, on the held-out split.
    train_accuracy : float
        Accuracy on the training split (a large gap to ``accuracy`` means over-fitting).
    n_train, n_test, n_features, n_classes : int
    C : float
        Inverse L2 regularisation strength of the logistic regression.
    layer : str or None
        The layer the features came from, if known.
    precision : str or None
        Set when the features were float16 (``collect_activations(dtype="float16")``): the
        accuracy is that of the rounded activations.
    """

    accuracy: float
    chance: float
    train_accuracy: float
    n_train: int
    n_test: int
    n_features: int
    n_classes: int
    C: float = 1.0
    layer: str | None = None
    precision: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def linear_probe(
    X: np.ndarray,
    y: np.ndarray,
    *,
    test_size: float = 0.25,
    random_state: int | None = 0,
    groups: np.ndarray | None = None,
    C: float = 1.0,
    max_iter: int = 500,
    layer: str | None = None,
    rows: Sequence[int] | np.ndarray | None = None,
) -> ProbeResult:
    """Train a linear probe (Alain & Bengio 2016) on frozen features and report held-out accuracy.

    Parameters
    ----------
    X : ndarray of shape (n, d) or (n, ...)
        Activations, one row per observation (extra axes are flattened).
    y : ndarray of shape (n,)
        Class labels.
    test_size : float, default 0.25
        Fraction of observations (or of groups) held out.
    random_state : int or None, default 0
        Seed of the split.
    groups : ndarray of shape (n,), optional
        Group of each observation (e.g. speaker); whole groups are held out together
        (``GroupShuffleSplit``), so the probe is tested on unseen groups. Without groups the
        split is stratified by class.
    C : float, default 1.0
        Inverse L2 regularisation strength of the logistic regression.
    max_iter : int, default 500
    layer : str, optional
        Recorded in the result.
    rows : array of int, optional
        Use only these rows of ``X``, ``y`` and ``groups``. With a lazy store array
        (:class:`layerscope.store.LazyArray`) only these rows are read from disk, chunk by chunk,
        so a probe runs on a row subset of a capture larger than memory.

    Returns
    -------
    ProbeResult
    """
    if not C > 0:  # also refuses nan; inf (no regularisation) is allowed
        raise ParameterError(f"C must be > 0 (the inverse regularisation strength); got {C}.")
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import GroupShuffleSplit, train_test_split
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from .store import reduced_precision_note

    precision = reduced_precision_note(X)
    if rows is not None:
        rows = np.asarray(rows)
        n_all = len(X)
        if len(np.asarray(y)) != n_all:
            raise DataError(f"expected one label per row of X ({n_all}), got {len(np.asarray(y))} labels.")
        y = np.asarray(y)[rows]
        groups = None if groups is None else np.asarray(groups)[rows]
    # the rows as stored (float32 for captures); each split becomes float64 on its own, and the
    # scaler standardises the training copy in place: one float64 copy of the rows at a time
    # instead of the whole matrix plus its split and scaled copies (the same numbers: the same
    # float64 values go through the same operations)
    Xa = _check_matrix(X, "X", rows, dtype=None)
    ya = np.asarray(y)
    if ya.ndim != 1 or len(ya) != len(Xa):
        raise DataError(f"expected one label per row of X ({len(Xa)}), got labels of shape {ya.shape}.")
    if not 0.0 < float(test_size) < 1.0:
        raise ParameterError(f"test_size must be in (0, 1), got {test_size}.")
    classes = np.unique(ya)
    if len(classes) < 2:
        raise DataError(f"a probe needs at least two classes, got only {classes.tolist()}.")
    idx = np.arange(len(Xa))
    if groups is not None:
        g = np.asarray(groups)
        if g.shape != ya.shape:
            raise DataError(f"groups must have one entry per observation ({len(ya)}), got shape {g.shape}.")
        if len(np.unique(g)) < 2:
            raise DataError("group-held-out probing needs at least two distinct groups.")
        split = GroupShuffleSplit(n_splits=1, test_size=test_size, random_state=random_state)
        tr, te = next(split.split(Xa, ya, g))
    else:
        counts = np.unique(ya, return_counts=True)[1]
        n_test = int(np.ceil(test_size * len(ya)))
        stratify = ya if counts.min() >= 2 and n_test >= len(classes) and len(ya) - n_test >= len(classes) else None
        try:
            tr, te = train_test_split(idx, test_size=test_size, random_state=random_state, stratify=stratify)
        except ValueError as e:
            raise DataError(f"cannot split {len(ya)} observations with test_size={test_size}: {e}") from e
    if len(np.unique(ya[tr])) < 2:
        raise DataError("the training split holds a single class; use more observations or another split.")
    clf = make_pipeline(StandardScaler(copy=False), LogisticRegression(C=C, max_iter=max_iter))
    import warnings

    from sklearn.exceptions import ConvergenceWarning

    def part(i: np.ndarray) -> np.ndarray:  # a new float64 array (take copies): the scaler may overwrite it
        return np.take(Xa, i, axis=0).astype(np.float64, copy=False)

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        clf.fit(part(tr), ya[tr])
    vals, cnts = np.unique(ya[tr], return_counts=True)
    majority = vals[np.argmax(cnts)]
    return ProbeResult(
        accuracy=float(np.mean(clf.predict(part(te)) == ya[te])),
        chance=float(np.mean(ya[te] == majority)),
        train_accuracy=float(np.mean(clf.predict(part(tr)) == ya[tr])),
        n_train=int(len(tr)),
        n_test=int(len(te)),
        n_features=int(Xa.shape[1]),
        n_classes=int(len(classes)),
        C=float(C),
        layer=layer,
        precision=precision,
    )


def linear_cka(X: np.ndarray, Y: np.ndarray, *, memory_budget: int | None = None) -> float:
    """Linear centred kernel alignment (Kornblith et al. 2019) between two representations.

    Parameters
    ----------
    X : ndarray of shape (n, p)
    Y : ndarray of shape (n, q)
        Two representations of the same ``n`` observations (rows aligned); extra axes are flattened.
        Lazy store arrays (:class:`layerscope.store.LazyArray`) and memory-mapped arrays are read
        by row blocks.
    memory_budget : int, optional
        Bytes the computation may hold (see :func:`linear_cka_detail`, which also says which
        route ran). Default: in-memory arrays are computed in memory; lazy arrays are streamed
        with a budget of :data:`STREAMED_CKA_BYTES`.

    Returns
    -------
    float in [0, 1]; 1 when ``Y`` is an orthogonal transform and/or isotropic scaling of ``X``.

    Notes
    -----
    Computed in feature space, ``||Yc^T Xc||_F^2 / (||Xc^T Xc||_F ||Yc^T Yc||_F)``, or with
    ``n x n`` Gram matrices when ``n`` is smaller than the feature counts (same value, less work).
    When ``X`` or ``Y`` is a lazy store array (:class:`layerscope.store.LazyArray`), the feature
    form is streamed: the sums ``X^T X``, ``Y^T X``, ``Y^T Y`` and the column sums are accumulated
    chunk by chunk in float64 (shifted by the first chunk's means against cancellation), so only
    ``p x p + q x q + p x q`` numbers are held, never the ``n`` rows. When even those sums exceed
    the budget, blocked routes keep the result exact (float64) within it: see
    :func:`linear_cka_detail`.
    """
    return linear_cka_detail(X, Y, memory_budget=memory_budget).value


#: streamed CKA keeps its feature sums (bytes of float64 p x p + q x q + p x q) within this by
#: default; beyond it, the blocked routes of :func:`linear_cka_detail` run instead
STREAMED_CKA_BYTES = 2 << 30

#: the routes of :func:`linear_cka_detail`
CKA_ROUTES = ("memory-gram", "memory-features", "streamed-features", "blocked-features", "blocked-gram")


@dataclass(frozen=True)
class CKADetail:
    """One linear CKA value and how it was computed (the result of :func:`linear_cka_detail`).

    Attributes
    ----------
    value : float
        Linear CKA in [0, 1].
    route : str
        One of :data:`CKA_ROUTES`: ``"memory-gram"`` / ``"memory-features"`` (both arrays in
        memory, ``n x n`` Gram or feature form), ``"streamed-features"`` (one pass over row
        blocks accumulating the feature sums), ``"blocked-features"`` (tiles of the feature sums,
        as many as the budget holds per pass over the rows), ``"blocked-gram"`` (tiles of the
        centred ``n x n`` Gram matrices, computed from pairs of row blocks and never stored).
    passes : int
        Passes over the rows (``"blocked-gram"``: row blocks read, counted in whole passes).
    n, p, q : int
        Observations and feature counts.
    memory_budget : int or None
        The budget in bytes the streamed/blocked routes kept to (None for the in-memory routes).
    precision : str or None
        Set when either input is stored in reduced precision (float16): the value inherits its
        rounding error.
    """

    value: float
    route: str
    passes: int
    n: int
    p: int
    q: int
    memory_budget: int | None = None
    precision: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _is_streamed(x: Any) -> bool:
    from .store import LazyArray

    return isinstance(x, (LazyArray, np.memmap))


def _row_block(x: Any, a: int, b: int, what: str) -> np.ndarray:
    """Rows ``a:b`` of ``x`` as a finite float64 ``(b - a, d)`` matrix (a lazy array reads only their chunks)."""
    return _check_matrix(x[a:b], what)


def _block_rows(x: Any, y: Any, limit: int) -> int:
    """Rows per block: at most ``limit``, a multiple of a lazy input's chunk rows when it allows."""
    from .store import LazyArray

    chunk = max([int(v.chunk_rows) for v in (x, y) if isinstance(v, LazyArray)] or [1])
    if limit >= chunk:
        return (limit // chunk) * chunk
    return max(1, limit)


def linear_cka_detail(X: Any, Y: Any, *, memory_budget: int | None = None) -> CKADetail:
    """Linear CKA (Kornblith et al. 2019) with the route that computed it, within a memory budget.

    Parameters
    ----------
    X : array-like of shape (n, ...)
    Y : array-like of shape (n, ...)
        The same ``n`` observations (rows aligned): NumPy arrays, memory maps or lazy store arrays
        (:class:`layerscope.store.LazyArray`); extra axes are flattened.
    memory_budget : int, optional
        Bytes of float64 work the computation may hold (row blocks, sums, Gram tiles). Default:
        arrays in memory are computed in memory; memory maps and lazy arrays within
        :data:`STREAMED_CKA_BYTES`.

    Returns
    -------
    CKADetail
        The value, the route (see :class:`CKADetail`) and the passes over the rows.

    Notes
    -----
    Every route is exact in float64 (equal to the in-memory value up to rounding, ~1e-12). Routes:
    in memory when both arrays are and no budget is given; one streamed pass when the feature sums
    ``8 (p^2 + q^2 + pq)`` bytes fit the budget; otherwise, when ``n < p + q`` (the ``n x n``
    form does less work), ``"blocked-gram"``: ``<Kc, Lc>``, ``||Kc||``, ``||Lc||`` summed over tiles
    ``Xc_i Xc_j^T``, ``Yc_i Yc_j^T`` of pairs of row blocks ``i <= j`` (columns centred by means
    from a first pass; off-diagonal tiles counted twice), which reads ``about n / (2 b)`` times
    the rows for blocks of ``b`` rows; else ``"blocked-features"``: the tiles of ``Xc^T Xc``
    (upper triangle), ``Yc^T Yc`` (upper triangle) and ``Yc^T Xc`` accumulated, as many as the
    budget holds, per pass over the rows. A budget too small for one row of each input, or for
    three stored chunks of a lazy input (a chunk is decompressed whole; 8 MB by default), raises
    ``ParameterError``.
    """
    n = len(X)
    if len(Y) != n:
        raise DataError(f"X and Y must describe the same observations: {n} vs {len(Y)} rows.")
    if n < 2:
        raise DataError("CKA needs at least 2 observations.")
    if memory_budget is not None and (
        isinstance(memory_budget, bool) or not isinstance(memory_budget, (int, np.integer)) or memory_budget <= 0
    ):
        raise ParameterError(f"memory_budget must be a positive integer number of bytes; got {memory_budget!r}.")
    from .store import reduced_precision_note

    p, q = n_features_of(X), n_features_of(Y)
    note = reduced_precision_note(X, Y)
    streamed = _is_streamed(X) or _is_streamed(Y)
    if memory_budget is None and not streamed:
        value, route = _cka_in_memory(X, Y)
        return CKADetail(value=value, route=route, passes=1, n=n, p=p, q=q, precision=note)
    budget = int(memory_budget) if memory_budget is not None else STREAMED_CKA_BYTES
    from .store import LazyArray

    chunks = sum(int(v.chunk_rows) * n_features_of(v) * max(4, v.dtype.itemsize) for v in (X, Y)
                 if isinstance(v, LazyArray))
    if 3 * chunks > budget:
        raise ParameterError(
            f"memory_budget {budget} bytes cannot hold 3 x one stored chunk of the inputs ({chunks} bytes; a chunk "
            f"is decompressed whole); raise memory_budget to at least {3 * chunks} bytes."
        )
    # one row of each input in float64, plus the float32/16 block it is converted from
    row_bytes = 12 * (p + q)
    sums = 8 * (p * p + q * q + p * q)
    if sums + row_bytes <= budget:
        rows = _block_rows(X, Y, (budget - sums) // row_bytes)
        value, passes = _cka_streamed_features(X, Y, rows)
        return CKADetail(value=value, route="streamed-features", passes=passes, n=n, p=p, q=q,
                         memory_budget=budget, precision=note)
    if n < p + q:
        # two centred float64 row blocks of each input kept, the next one read (its float32/float64
        # copies): ~20 bytes a value of a block, twice; tiles K, L and K * L: 24 b^2
        blk = 20 * (p + q)
        b = int((-2 * blk + np.sqrt(4.0 * blk * blk + 96.0 * budget)) // 48)
        if b < 1:
            raise ParameterError(
                f"memory_budget {budget} bytes cannot hold two rows of {p} + {q} features for blocked CKA "
                f"(at least {2 * row_bytes + 16} bytes); raise it."
            )
        b = min(b, n)
        b = _block_rows(X, Y, b)
        value, passes = _cka_blocked_gram(X, Y, b)
        return CKADetail(value=value, route="blocked-gram", passes=passes, n=n, p=p, q=q,
                         memory_budget=budget, precision=note)
    value, passes = _cka_blocked_features(X, Y, budget, p, q)
    return CKADetail(value=value, route="blocked-features", passes=passes, n=n, p=p, q=q,
                     memory_budget=budget, precision=note)


def _cka_in_memory(X: Any, Y: Any) -> tuple[float, str]:
    Xa = _check_matrix(X, "X")
    Ya = _check_matrix(Y, "Y")
    Xc = Xa - Xa.mean(axis=0)
    Yc = Ya - Ya.mean(axis=0)
    n, p, q = len(Xc), Xc.shape[1], Yc.shape[1]
    if n * (p + q + 1) < p * q + p * p + q * q:  # the n x n Gram form is cheaper
        K = Xc @ Xc.T
        L = Yc @ Yc.T
        num = float(np.sum(K * L))
        den = float(np.linalg.norm(K) * np.linalg.norm(L))
        route = "memory-gram"
    else:
        num = float(np.linalg.norm(Yc.T @ Xc) ** 2)
        den = float(np.linalg.norm(Xc.T @ Xc) * np.linalg.norm(Yc.T @ Yc))
        route = "memory-features"
    return _cka_ratio(num, den), route


def _cka_ratio(num: float, den: float) -> float:
    if den == 0.0:
        raise DataError("CKA is undefined: one representation is constant over the observations.")
    return float(min(max(num / den, 0.0), 1.0))


def _cka_streamed_features(X: Any, Y: Any, step: int) -> tuple[float, int]:
    """Linear CKA from one pass of feature sums over row blocks of ``step`` rows (see :func:`linear_cka`)."""
    n = len(X)
    p, q = n_features_of(X), n_features_of(Y)
    sxx = np.zeros((p, p))
    syy = np.zeros((q, q))
    syx = np.zeros((q, p))
    sx = np.zeros(p)
    sy = np.zeros(q)
    kx = ky = None
    for a in range(0, n, step):
        xb = _row_block(X, a, a + step, "X")
        yb = _row_block(Y, a, a + step, "Y")
        if kx is None:  # shift by the first block's means: sums of small numbers, less cancellation
            kx, ky = xb.mean(axis=0), yb.mean(axis=0)
        xb = xb - kx
        yb = yb - ky
        sxx += xb.T @ xb
        syy += yb.T @ yb
        syx += yb.T @ xb
        sx += xb.sum(axis=0)
        sy += yb.sum(axis=0)
    cxx = sxx - np.outer(sx, sx) / n
    cyy = syy - np.outer(sy, sy) / n
    cyx = syx - np.outer(sy, sx) / n
    num = float(np.linalg.norm(cyx) ** 2)
    den = float(np.linalg.norm(cxx) * np.linalg.norm(cyy))
    return _cka_ratio(num, den), 1


def _column_means(X: Any, Y: Any, step: int) -> tuple[np.ndarray, np.ndarray]:
    """Column means of ``X`` and ``Y`` in float64, one pass over row blocks."""
    n = len(X)
    sx = np.zeros(n_features_of(X))
    sy = np.zeros(n_features_of(Y))
    for a in range(0, n, step):
        sx += _row_block(X, a, a + step, "X").sum(axis=0)
        sy += _row_block(Y, a, a + step, "Y").sum(axis=0)
    return sx / n, sy / n


def _cka_blocked_gram(X: Any, Y: Any, b: int) -> tuple[float, int]:
    """``<Kc, Lc> / (||Kc|| ||Lc||)`` summed over the tiles of row-block pairs ``i <= j`` (hand-written
    tiling: no library computes HSIC within a memory bound)."""
    n = len(X)
    mx, my = _column_means(X, Y, b)
    starts = list(range(0, n, b))
    num = kk = ll = 0.0
    reads = 1.0  # the means pass
    for ii, a in enumerate(starts):
        xi = _row_block(X, a, a + b, "X") - mx
        yi = _row_block(Y, a, a + b, "Y") - my
        reads += len(xi) / n
        for c in starts[ii:]:
            if c == a:
                xj, yj, w = xi, yi, 1.0
            else:
                xj = _row_block(X, c, c + b, "X") - mx
                yj = _row_block(Y, c, c + b, "Y") - my
                reads += len(xj) / n
                w = 2.0  # the tile (j, i) is the transpose: same sums
            K = xi @ xj.T
            L = yi @ yj.T
            num += w * float(np.sum(K * L))
            kk += w * float(np.sum(K * K))
            ll += w * float(np.sum(L * L))
            del K, L
    return _cka_ratio(num, float(np.sqrt(kk) * np.sqrt(ll))), int(np.ceil(reads))


def _cka_blocked_features(X: Any, Y: Any, budget: int, p: int, q: int) -> tuple[float, int]:
    """``||Cyx||^2 / (||Cxx|| ||Cyy||)`` from tiles of the centred feature sums, as many tiles per
    pass over the rows as the budget holds (hand-written tiling; columns centred by first-pass means)."""
    n = len(X)
    # a row block costs the read, its float64 copy, the centred copy and column slices: ~28 bytes a value
    row_bytes = 28 * (p + q)
    # a quarter of the budget for row blocks (at least one row), the rest for tiles: each tile's
    # float64 accumulator and the product added to it (16 bytes a value)
    rows = _block_rows(X, Y, max(1, (budget // 4) // row_bytes))
    tiles_bytes = budget - rows * row_bytes
    side = int(np.sqrt(max(tiles_bytes, 0) / 16 / 3))  # three tiles per pass at least
    if side < 1:
        raise ParameterError(
            f"memory_budget {budget} bytes cannot hold a row block of {p} + {q} features and the sum tiles "
            f"for blocked CKA; raise it to at least {4 * row_bytes + 64} bytes."
        )
    sp = min(side, p)
    sq = min(side, q)
    xb = [(a, min(a + sp, p)) for a in range(0, p, sp)]
    yb = [(a, min(a + sq, q)) for a in range(0, q, sq)]
    # every tile: (kind, rows of the first factor, cols of the second, weight)
    tiles: list[tuple[str, tuple[int, int], tuple[int, int], float]] = []
    tiles += [("xx", xb[i], xb[j], 1.0 if i == j else 2.0) for i in range(len(xb)) for j in range(i, len(xb))]
    tiles += [("yy", yb[i], yb[j], 1.0 if i == j else 2.0) for i in range(len(yb)) for j in range(i, len(yb))]
    tiles += [("yx", yb[i], xb[j], 1.0) for i in range(len(yb)) for j in range(len(xb))]
    mx, my = _column_means(X, Y, rows)
    per_pass = max(1, tiles_bytes // (8 * max(sp, sq) ** 2) - 1)  # the accumulators and one product
    totals = {"xx": 0.0, "yy": 0.0, "yx": 0.0}
    passes = 1
    for t0 in range(0, len(tiles), per_pass):
        group = tiles[t0 : t0 + per_pass]
        acc = [np.zeros((r[1] - r[0], c[1] - c[0])) for _, r, c, _ in group]
        for a in range(0, n, rows):
            xr = _row_block(X, a, a + rows, "X") - mx
            yr = _row_block(Y, a, a + rows, "Y") - my
            src = {"x": xr, "y": yr}
            for (kind, r, c, _), m in zip(group, acc):
                left = src[kind[0]][:, r[0] : r[1]]
                right = src[kind[1]][:, c[0] : c[1]]
                m += left.T @ right
        passes += 1
        for (kind, _, _, w), m in zip(group, acc):
            totals[kind] += w * float(np.sum(m * m))
        del acc
    return _cka_ratio(totals["yx"], float(np.sqrt(totals["xx"]) * np.sqrt(totals["yy"]))), passes


def cka_matrix(
    a: Mapping[str, np.ndarray],
    b: Mapping[str, np.ndarray] | None = None,
    *,
    progress: ProgressArg = None,
    memory_budget: int | None = None,
) -> tuple[list[str], list[str], np.ndarray]:
    """Linear CKA between every layer of ``a`` and every layer of ``b`` (``a`` itself if omitted).

    Parameters
    ----------
    a, b : mapping layer name -> ndarray of shape (n, ...)
        Activations of the same ``n`` observations (arrays, memory maps or lazy store arrays).
    memory_budget : int, optional
        Passed to :func:`linear_cka_detail` for every pair.

    Returns
    -------
    rows, cols : list of str
    cka : ndarray of shape (len(rows), len(cols))
    """
    rows, cols, out, _ = _cka_table(a, b, progress=progress, memory_budget=memory_budget)
    return rows, cols, out


def _cka_table(
    a: Mapping[str, Any], b: Mapping[str, Any] | None, *, progress: ProgressArg, memory_budget: int | None
) -> tuple[list[str], list[str], np.ndarray, list[str]]:
    """:func:`cka_matrix` and the routes that ran (sorted, distinct)."""
    rows = list(a)
    bb = a if b is None else b
    cols = list(bb)
    out = np.full((len(rows), len(cols)), np.nan)
    routes: set[str] = set()
    pairs = [(i, j) for i in range(len(rows)) for j in range(len(cols)) if b is not None or j >= i]
    for i, j in resolve_progress(progress)(pairs, total=len(pairs), desc="CKA of layer pairs"):
        det = linear_cka_detail(a[rows[i]], bb[cols[j]], memory_budget=memory_budget)
        out[i, j] = det.value
        routes.add(det.route)
        if b is None:
            out[j, i] = out[i, j]
    return rows, cols, out, sorted(routes)


def probe_layers(
    activations: Mapping[str, np.ndarray],
    y: np.ndarray,
    *,
    test_size: float = 0.25,
    random_state: int | None = 0,
    groups: np.ndarray | None = None,
    C: float = 1.0,
    progress: ProgressArg = None,
) -> list[ProbeResult]:
    """:func:`linear_probe` for every layer of ``activations`` (same split for all layers)."""
    names: Sequence[str] = list(activations)
    return [
        linear_probe(activations[n], y, test_size=test_size, random_state=random_state, groups=groups, C=C, layer=n)
        for n in resolve_progress(progress)(names, total=len(names), desc="probes of layers")
    ]


# ------------------------------------------------------------------------------------------
# Over a model's layers: the analyses behind ``layerscope probe`` and ``layerscope cka``
# ------------------------------------------------------------------------------------------


def _models_of(model: nn.Module | Mapping[int, nn.Module]) -> dict[int | None, nn.Module]:
    models: dict[int | None, nn.Module] = {k: v for k, v in model.items()} if isinstance(model, Mapping) else {None: model}
    if not models:
        raise ParameterError("no model given: pass an nn.Module or a non-empty mapping epoch -> nn.Module.")
    return models


@dataclass(frozen=True, repr=False)
class ProbeStudy(AnalysisResult):
    """Linear probes of every layer of a model or of several checkpoints (``analysis = "probe"``).

    Attributes
    ----------
    results : dict key -> list of ProbeResult
        Key ``"model"`` for one model, ``"epoch e"`` per checkpoint; one result per layer, in order.
    layers : list of str
    parameters : dict
        Every knob used.
    model : dict or None
        :func:`layerscope.results.model_description` of the (first) model.
    data : str or None
        The data spec, if known.
    """

    results: dict[str, list[ProbeResult]]
    layers: list[str]
    parameters: dict[str, Any] = field(default_factory=dict)
    model: dict[str, Any] | None = None
    data: str | None = None

    analysis = "probe"

    @property
    def chance(self) -> float:
        """Majority-class accuracy on the held-out split (the same split for every layer)."""
        return next(iter(self.results.values()))[0].chance

    @property  # type: ignore[override]
    def metrics(self) -> dict[str, Any]:
        """``{"probe": {key: {layer: ProbeResult.to_dict()}}}``."""
        return {"probe": {key: {str(r.layer): r.to_dict() for r in rs} for key, rs in self.results.items()}}

    def accuracy(self, key: str | None = None) -> dict[str, float]:
        """Held-out accuracy per layer of one model / checkpoint (default: the first)."""
        rs = self.results[key if key is not None else next(iter(self.results))]
        return {str(r.layer): r.accuracy for r in rs}

    def _short_metrics(self, limit: int = 6) -> list[tuple[str, str]]:
        out = [("chance", f"{self.chance:.4g}")]
        for key, rs in self.results.items():
            for r in rs:
                if len(out) >= limit:
                    return out
                out.append((f"{r.layer}" if key == "model" else f"{r.layer} ({key})", f"{r.accuracy:.4g}"))
        return out

    def __repr__(self) -> str:
        best = {key: max(rs, key=lambda r: r.accuracy) for key, rs in list(self.results.items())[:3]}
        parts = ", ".join(f"{k}: best {b.layer} {b.accuracy:.3f}" for k, b in best.items())
        more = f", ... ({len(self.results)} models)" if len(self.results) > 3 else ""
        return f"ProbeStudy(layers={short_list(self.layers)}, chance={self.chance:.3f}, {parts}{more})"

    def _figure_specs(self) -> list[tuple[str, Figure, str, str]]:
        from .similarity_plots import plot_probes

        series: dict[str, Sequence[float]] = {key: [r.accuracy for r in rs] for key, rs in self.results.items()}
        return [("probes", plot_probes(self.layers, series, self.chance), "Linear probe accuracy per layer",
                 "Held-out accuracy of a standardised logistic regression on each layer's frozen "
                 "activations (Alain & Bengio 2016); dashed: majority-class chance.")]

    def _write(self, d: Path) -> None:
        """Into ``d``: the folder of ``layerscope probe`` (``probes.png``, ``result.json``)."""
        from .results import write_figures, write_result

        d.mkdir(parents=True, exist_ok=True)
        figures = write_figures(d, self._figure_specs())
        write_result(d, "probe", model=self.model, data=self.data, parameters=self.parameters, metrics=self.metrics,
                     probes={key: [r.to_dict() for r in rs] for key, rs in self.results.items()}, figures=figures)

    @classmethod
    def load(cls, out_dir: str | os.PathLike[str]) -> "ProbeStudy":
        """Read a folder written by :meth:`save` (or ``layerscope probe``)."""
        from .results import read_result

        doc = read_result(out_dir)
        if doc.get("analysis") != "probe":
            raise DataError(f"{out_dir} holds a {doc.get('analysis')!r} result, not linear probes.")
        results = {key: [ProbeResult(**r) for r in rs] for key, rs in (doc.get("probes") or {}).items()}
        params = dict(doc.get("parameters") or {})
        return cls(results=results, layers=list(params.get("layers") or []), parameters=params,
                   model=doc.get("model"), data=doc.get("data"))


def probe_model(
    model: nn.Module | Mapping[int, nn.Module],
    dataset: Any,
    layers: str | Sequence[str] | None = "all",
    *,
    n: int | None = 2000,
    test_size: float = 0.25,
    C: float = 1.0,
    group_by: str | None = None,
    reduce: str | None = "mean",
    layouts: Mapping[str, str] | None = None,
    random_state: int | None = 0,
    batch_size: int = 256,
    model_info: dict[str, Any] | None = None,
    data_spec: str | None = None,
    progress: ProgressArg = None,
    dtype: str = "float32",
) -> ProbeStudy:
    """Linear probes (Alain & Bengio 2016) of every requested layer, for one model or several
    checkpoints, on a seeded stratified subset of ``dataset`` (what ``layerscope probe`` runs).

    Parameters
    ----------
    model : nn.Module or mapping epoch -> nn.Module
        One model, or checkpoints of a training run (see
        :func:`layerscope.projection.analysis.models_from_run`). Left unchanged.
    dataset : a layerscope dataset with class labels
    layers : "all" or list of str
        ``"all"``: the model's ``hidden_layers`` (every leaf layer if it has none).
    n : int or None, default 2000
        Size of the seeded stratified subset (all rows if None).
    test_size, C
        See :func:`linear_probe`.
    group_by : str, optional
        Hold out whole groups: the name of a per-sample label of the data (e.g. ``"speaker"``).
    reduce : {"mean", "max", "first", "cls", "last"} or None, default "mean"
        Reduction of each layer's output by its layout, inside the capture hook
        (:func:`layerscope.seam.reduce_output`): the default ``"mean"`` averages a conv map
        ``(N, C, H, W)`` over its positions and a sequence ``(N, T, D)`` over its tokens (masked by
        the attention mask when there is one), and leaves flat ``(N, D)`` outputs as they are --
        never the feature axis. ``"first"``/``"cls"``/``"last"`` take a token of a sequence; None
        (or ``"none"``) flattens.
    layouts : dict layer -> {"spatial", "sequence", "flat"}, optional
        The layout of a layer whose output ``(N, A, B)`` layerscope cannot tell (a conv1d map or a
        sequence; see :func:`layerscope.seam.layout_of`); the layouts used are recorded in
        ``parameters["layouts"]``.
    random_state : int or None
        Seed of the subset and of the split.
    batch_size : int
    model_info : dict, optional
        Description of the model for ``result.json`` (default: :func:`layerscope.results.model_description`
        of the first model).
    data_spec : str, optional
        The data spec, recorded in ``result.json``.
    progress : None, bool or tracker
        ``True``: ``tqdm.auto``; or any tqdm-compatible callable, called as
        ``progress(iterable, total=n, desc="...")``.
    dtype : {"float32", "float16", "float64"}, default "float32"
        Storage of the captured activations (:func:`layerscope.collect_activations`); float16 is
        recorded as reduced precision in ``parameters["precision"]`` and in every probe.

    Returns
    -------
    ProbeStudy
    """
    from .capture import collect_activations
    from .projection.analysis import resolve_projection_layers, select_observations
    from .results import model_description

    models = _models_of(model)
    first = next(iter(models.values()))
    names = resolve_projection_layers(first, layers)
    idx = select_observations(dataset, n, random_state)
    red = None if reduce in (None, "none") else reduce
    results: dict[str, list[ProbeResult]] = {}
    for cp, net in models.items():
        acts = collect_activations(net, dataset, names, batch_size=batch_size, indices=idx, reduce=red,
                                   layouts=layouts, progress=progress, dtype=dtype)
        groups = None
        if group_by is not None:
            if group_by not in acts.extra_labels:
                raise ParameterError(f"group_by={group_by!r}: the data has no such per-sample label; it has "
                                     f"{sorted(acts.extra_labels) or 'none'}.")
            groups = acts.extra_labels[group_by]
        results["model" if cp is None else f"epoch {cp}"] = probe_layers(
            acts.arrays, acts.labels, test_size=test_size, random_state=random_state, groups=groups, C=C,
            progress=progress)
    params = {"layers": names, "checkpoints": list(models), "n": int(len(idx)), "test_size": test_size, "C": C,
              "random_state": random_state, "groups": group_by, "reduce": red, "layouts": acts.meta.get("layouts")}
    note = next((r.precision for rs in results.values() for r in rs if r.precision), None)
    if note is not None:
        params["precision"] = note
    return ProbeStudy(results=results, layers=names, parameters=params,
                      model=model_info if model_info is not None else model_description(first), data=data_spec)


@dataclass(frozen=True, repr=False)
class CKAResult(AnalysisResult):
    """Linear CKA between layers (``analysis = "cka"``).

    Attributes
    ----------
    matrix : ndarray of shape (len(rows), len(cols))
        CKA in [0, 1]; for ``mode="layers"`` symmetric with a unit diagonal.
    rows, cols : list of str
        Layers of representation A (rows) and B (columns).
    mode : {"layers", "checkpoints", "models"}
        All pairs of layers of one model; the layers at two checkpoints; the layers of two models.
    label_a, label_b : str or None
        What A and B are (a model spec, ``"epoch e"``).
    parameters : dict
    model : dict or None
        :func:`layerscope.results.model_description` of model A.
    data : str or None
    """

    matrix: np.ndarray
    rows: list[str]
    cols: list[str]
    mode: str = "layers"
    label_a: str | None = None
    label_b: str | None = None
    parameters: dict[str, Any] = field(default_factory=dict)
    model: dict[str, Any] | None = None
    data: str | None = None

    analysis = "cka"

    @property  # type: ignore[override]
    def metrics(self) -> dict[str, Any]:
        """``cka`` (the matrix, rounded to 6 decimals) and, for two checkpoints / models with the
        same layers, ``diagonal`` (CKA of each layer with itself)."""
        m = np.asarray(self.matrix, dtype=np.float64)
        out: dict[str, Any] = {"cka": np.round(m, 6).tolist()}
        if self.rows == self.cols and self.mode != "layers":
            out["diagonal"] = {r: float(m[i, i]) for i, r in enumerate(self.rows)}
        return out

    def _short_metrics(self, limit: int = 6) -> list[tuple[str, str]]:
        out = [("mode", self.mode), ("shape", f"{len(self.rows)} x {len(self.cols)}")]
        if self.rows == self.cols and self.mode != "layers":
            out += [(f"{r} (diagonal)", f"{float(self.matrix[i, i]):.4g}") for i, r in enumerate(self.rows)]
        return out[:limit]

    def __repr__(self) -> str:
        return f"CKAResult({self.mode}, rows={short_list(self.rows)}, cols={short_list(self.cols)})"

    def _figure_specs(self) -> list[tuple[str, Figure, str, str]]:
        from .similarity_plots import plot_cka

        fig = plot_cka(self.matrix, self.rows, self.cols, title=f"Linear CKA ({self.mode})", ylabel=str(self.label_a),
                       xlabel=str(self.label_b or self.label_a))
        return [("cka", fig, f"Linear CKA ({self.mode})",
                 "Linear centred kernel alignment (Kornblith et al. 2019) between layer representations "
                 "of the same observations; 1 = identical up to rotation and scale.")]

    def _write(self, d: Path) -> None:
        """Into ``d``: the folder of ``layerscope cka`` (``cka.png``, ``result.json``)."""
        from .results import write_figures, write_result

        d.mkdir(parents=True, exist_ok=True)
        figures = write_figures(d, self._figure_specs())
        write_result(d, "cka", model=self.model, data=self.data, parameters=self.parameters, metrics=self.metrics,
                     rows=self.rows, cols=self.cols, figures=figures)

    @classmethod
    def load(cls, out_dir: str | os.PathLike[str]) -> "CKAResult":
        """Read a folder written by :meth:`save` (or ``layerscope cka``); the matrix as stored (6 decimals)."""
        from .results import read_result

        doc = read_result(out_dir)
        if doc.get("analysis") != "cka":
            raise DataError(f"{out_dir} holds a {doc.get('analysis')!r} result, not CKA.")
        m = np.array([[np.nan if v is None else v for v in row] for row in doc["metrics"]["cka"]], dtype=np.float64)
        params = dict(doc.get("parameters") or {})
        return cls(matrix=m.reshape(len(doc["rows"]), len(doc["cols"])), rows=list(doc["rows"]), cols=list(doc["cols"]),
                   mode=str(params.get("mode", "layers")), label_a=params.get("a"), label_b=params.get("b"),
                   parameters=params, model=doc.get("model"), data=doc.get("data"))


def cka_model(
    model: nn.Module | Mapping[int, nn.Module],
    dataset: Any,
    layers: str | Sequence[str] | None = "all",
    *,
    model_b: nn.Module | None = None,
    layers_b: str | Sequence[str] | None = None,
    n: int | None = 2000,
    reduce: str | None = None,
    layouts: Mapping[str, str] | None = None,
    random_state: int | None = 0,
    batch_size: int = 256,
    label_a: str | None = None,
    label_b: str | None = None,
    model_info: dict[str, Any] | None = None,
    data_spec: str | None = None,
    progress: ProgressArg = None,
    dtype: str = "float32",
    memory_budget: int | None = None,
) -> CKAResult:
    """Linear CKA (Kornblith et al. 2019) on a seeded stratified subset of ``dataset`` (what
    ``layerscope cka`` runs): between all pairs of a model's layers, between the layers of two
    checkpoints, or between the layers of two models.

    Parameters
    ----------
    model : nn.Module or mapping epoch -> nn.Module
        One model; or exactly two checkpoints of a run (``mode="checkpoints"``: rows = the first,
        columns = the second). Left unchanged.
    dataset : a layerscope dataset
    layers : "all" or list of str
        Layers of ``model`` (``"all"``: its ``hidden_layers``, else every leaf layer).
    model_b : nn.Module, optional
        A second model (``mode="models"``); its layers are ``layers_b`` (default: as ``layers``).
    n : int or None, default 2000
        Size of the seeded stratified subset (all rows if None).
    reduce : {"mean", "max", "first", "cls", "last"}, optional
        Reduction of each layer's output by its layout (:func:`layerscope.seam.reduce_output`:
        over positions or tokens, never features); default: flatten.
    layouts : dict layer -> {"spatial", "sequence", "flat"}, optional
        The layout of a layer whose output ``(N, A, B)`` layerscope cannot tell (a conv1d map or a
        sequence; see :func:`layerscope.seam.layout_of`); the layouts used are recorded in
        ``parameters["layouts"]``.
    random_state : int or None
        Seed of the subset.
    batch_size : int
    label_a, label_b : str, optional
        What A and B are, for the figure and ``parameters`` (default: ``"epoch e"`` for
        checkpoints, else the model class names).
    model_info : dict, optional
        Description of model A for ``result.json`` (default: :func:`layerscope.results.model_description`).
    data_spec : str, optional
        The data spec, recorded in ``result.json``.
    progress : None, bool or tracker
        ``True``: ``tqdm.auto``; or any tqdm-compatible callable, called as
        ``progress(iterable, total=n, desc="...")``.
    dtype : {"float32", "float16", "float64"}, default "float32"
        Storage of the captured activations; float16 is recorded in ``parameters["precision"]``.
    memory_budget : int, optional
        Bytes each CKA value may hold (:func:`linear_cka_detail`); the routes that ran are
        recorded in ``parameters["routes"]``.

    Returns
    -------
    CKAResult
    """
    from .capture import collect_activations
    from .projection.analysis import resolve_projection_layers, select_observations
    from .results import model_description

    models = _models_of(model)
    if len(models) > 2:
        raise ParameterError(f"CKA compares two checkpoints at most; got {len(models)}: {list(models)}.")
    if len(models) == 2 and model_b is not None:
        raise ParameterError("give either two checkpoints or model_b, not both.")
    net_a = next(iter(models.values()))
    net_b: nn.Module | None = None
    mode = "layers"
    if len(models) == 2:
        (ea, net_a), (eb, net_b) = list(models.items())
        mode, label_a, label_b = "checkpoints", f"epoch {ea}", f"epoch {eb}"
    elif model_b is not None:
        net_b, mode = model_b, "models"
        label_b = label_b if label_b is not None else type(model_b).__name__
    label_a = label_a if label_a is not None else type(net_a).__name__
    names_a = resolve_projection_layers(net_a, layers)
    names_b = (resolve_projection_layers(net_b, layers_b if layers_b is not None else layers)
               if net_b is not None else names_a)
    idx = select_observations(dataset, n, random_state)
    acts_a = collect_activations(net_a, dataset, names_a, batch_size=batch_size, indices=idx, reduce=reduce,
                                 layouts=layouts, progress=progress, dtype=dtype)
    acts_b = (collect_activations(net_b, dataset, names_b, batch_size=batch_size, indices=idx, reduce=reduce,
                                  layouts=layouts, progress=progress, dtype=dtype) if net_b is not None else None)
    rows, cols, m, routes = _cka_table(acts_a.arrays, acts_b.arrays if acts_b is not None else None,
                                       progress=progress, memory_budget=memory_budget)
    params = {"layers": names_a, "layers_b": names_b, "n": int(len(idx)), "random_state": random_state, "mode": mode,
              "a": label_a, "b": label_b, "reduce": reduce, "layouts": acts_a.meta.get("layouts"),
              "layouts_b": acts_b.meta.get("layouts") if acts_b is not None else None,
              "routes": routes, "memory_budget": memory_budget}
    from .store import reduced_precision_note

    note = reduced_precision_note(*acts_a.arrays.values(), *(acts_b.arrays.values() if acts_b is not None else ()))
    if note is not None:
        params["precision"] = note
    return CKAResult(matrix=m, rows=rows, cols=cols, mode=mode, label_a=label_a, label_b=label_b, parameters=params,
                     model=model_info if model_info is not None else model_description(net_a), data=data_spec)
