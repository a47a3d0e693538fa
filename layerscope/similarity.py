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

Result of the CLI commands (``result.json``):

``analysis = "probe"``::

    parameters: {layers, n, test_size, C, random_state, checkpoint, groups}
    metrics: {"probe": {layer: {accuracy, chance, train_accuracy, n_train, n_test, n_features,
              n_classes}}}
    probes: [{layer, accuracy, chance, train_accuracy, ...}, ...]    # in layer order

``analysis = "cka"``::

    parameters: {layers, layers_b, n, random_state, mode: "layers"|"checkpoints"|"models", a, b}
    metrics: {"cka": [[...]] (len(layers) x len(layers_b)), "diagonal": [...] (if square)}
    rows: [layer names of A], cols: [layer names of B]
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass
from typing import Any, Mapping, Sequence

import numpy as np

from ._progress import Tracker, no_progress
from .exceptions import DataError, ParameterError

__all__ = ["ProbeResult", "linear_probe", "linear_cka", "cka_matrix", "probe_layers"]

log = logging.getLogger(__name__)


def _check_matrix(x: np.ndarray, what: str) -> np.ndarray:
    a = np.asarray(x)
    if a.ndim == 1:
        a = a[:, None]
    elif a.ndim > 2:
        a = a.reshape(len(a), -1)
    if a.shape[0] == 0 or a.shape[1] == 0:
        raise DataError(f"{what} is empty (shape {a.shape}); expected (n_observations, n_features) with both > 0.")
    a = a.astype(np.float64, copy=False)
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

    Returns
    -------
    ProbeResult
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import GroupShuffleSplit, train_test_split
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    Xa = _check_matrix(X, "X")
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
    clf = make_pipeline(StandardScaler(), LogisticRegression(C=C, max_iter=max_iter))
    import warnings

    from sklearn.exceptions import ConvergenceWarning

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        clf.fit(Xa[tr], ya[tr])
    vals, cnts = np.unique(ya[tr], return_counts=True)
    majority = vals[np.argmax(cnts)]
    return ProbeResult(
        accuracy=float(np.mean(clf.predict(Xa[te]) == ya[te])),
        chance=float(np.mean(ya[te] == majority)),
        train_accuracy=float(np.mean(clf.predict(Xa[tr]) == ya[tr])),
        n_train=int(len(tr)),
        n_test=int(len(te)),
        n_features=int(Xa.shape[1]),
        n_classes=int(len(classes)),
        C=float(C),
        layer=layer,
    )


def linear_cka(X: np.ndarray, Y: np.ndarray) -> float:
    """Linear centred kernel alignment (Kornblith et al. 2019) between two representations.

    Parameters
    ----------
    X : ndarray of shape (n, p)
    Y : ndarray of shape (n, q)
        Two representations of the same ``n`` observations (rows aligned); extra axes are flattened.

    Returns
    -------
    float in [0, 1]; 1 when ``Y`` is an orthogonal transform and/or isotropic scaling of ``X``.

    Notes
    -----
    Computed in feature space, ``||Yc^T Xc||_F^2 / (||Xc^T Xc||_F ||Yc^T Yc||_F)``, or with
    ``n x n`` Gram matrices when ``n`` is smaller than the feature counts (same value, less work).
    """
    Xa = _check_matrix(X, "X")
    Ya = _check_matrix(Y, "Y")
    if len(Xa) != len(Ya):
        raise DataError(f"X and Y must describe the same observations: {len(Xa)} vs {len(Ya)} rows.")
    if len(Xa) < 2:
        raise DataError("CKA needs at least 2 observations.")
    Xc = Xa - Xa.mean(axis=0)
    Yc = Ya - Ya.mean(axis=0)
    n, p, q = len(Xc), Xc.shape[1], Yc.shape[1]
    if n * (p + q + 1) < p * q + p * p + q * q:  # the n x n Gram form is cheaper
        K = Xc @ Xc.T
        L = Yc @ Yc.T
        num = float(np.sum(K * L))
        den = float(np.linalg.norm(K) * np.linalg.norm(L))
    else:
        num = float(np.linalg.norm(Yc.T @ Xc) ** 2)
        den = float(np.linalg.norm(Xc.T @ Xc) * np.linalg.norm(Yc.T @ Yc))
    if den == 0.0:
        raise DataError("CKA is undefined: one representation is constant over the observations.")
    return float(min(max(num / den, 0.0), 1.0))


def cka_matrix(
    a: Mapping[str, np.ndarray],
    b: Mapping[str, np.ndarray] | None = None,
    *,
    progress: Tracker = no_progress,
) -> tuple[list[str], list[str], np.ndarray]:
    """Linear CKA between every layer of ``a`` and every layer of ``b`` (``a`` itself if omitted).

    Parameters
    ----------
    a, b : mapping layer name -> ndarray of shape (n, ...)
        Activations of the same ``n`` observations.

    Returns
    -------
    rows, cols : list of str
    cka : ndarray of shape (len(rows), len(cols))
    """
    rows = list(a)
    bb = a if b is None else b
    cols = list(bb)
    out = np.full((len(rows), len(cols)), np.nan)
    pairs = [(i, j) for i in range(len(rows)) for j in range(len(cols)) if b is not None or j >= i]
    for i, j in progress(pairs, len(pairs), "CKA"):
        out[i, j] = linear_cka(a[rows[i]], bb[cols[j]])
        if b is None:
            out[j, i] = out[i, j]
    return rows, cols, out


def probe_layers(
    activations: Mapping[str, np.ndarray],
    y: np.ndarray,
    *,
    test_size: float = 0.25,
    random_state: int | None = 0,
    groups: np.ndarray | None = None,
    C: float = 1.0,
    progress: Tracker = no_progress,
) -> list[ProbeResult]:
    """:func:`linear_probe` for every layer of ``activations`` (same split for all layers)."""
    names: Sequence[str] = list(activations)
    return [
        linear_probe(activations[n], y, test_size=test_size, random_state=random_state, groups=groups, C=C, layer=n)
        for n in progress(names, len(names), "probes")
    ]
