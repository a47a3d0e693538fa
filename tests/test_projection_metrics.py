"""Neighborhood hit and accuracy (Rauber et al. 2017): hand-worked values, properties, brute force."""

from __future__ import annotations

import numpy as np
import pytest

from layerscope.exceptions import DataError, ParameterError
from layerscope.projection import accuracy, neighborhood_hit, neighborhood_hit_per_point


def _blobs(n_per: int = 100, n_classes: int = 4, dim: int = 2, spread: float = 0.1, seed: int = 0):
    rng = np.random.default_rng(seed)
    centres = np.zeros((n_classes, dim))
    centres[:, 0] = 20.0 * np.arange(n_classes)  # far apart along the first axis
    y = np.repeat(np.arange(n_classes), n_per)
    x = centres[y] + rng.normal(scale=spread, size=(len(y), dim))
    return x, y


def _brute_nh(x: np.ndarray, y: np.ndarray, k: int) -> float:
    d = np.linalg.norm(x[:, None, :] - x[None, :, :], axis=2)
    np.fill_diagonal(d, np.inf)
    nn = np.argsort(d, axis=1, kind="stable")[:, :k]
    return float(np.mean(y[nn] == y[:, None]))


def test_hand_worked_1d_example() -> None:
    # k=1: 0->1 hit, 1->0 hit, 3->1 miss, 10->11.5 hit, 11.5->12 miss, 12->11.5 miss  => 3/6
    x = np.array([0.0, 1.0, 3.0, 10.0, 11.5, 12.0])
    y = np.array([0, 0, 1, 1, 1, 0])
    assert neighborhood_hit(x[:, None], y, k=1) == pytest.approx(0.5)
    assert neighborhood_hit_per_point(x[:, None], y, k=1).tolist() == [1, 1, 0, 1, 0, 0]
    # k=2: 0->{1,3}: 1/2; 1->{0,3}: 1/2; 3->{1,0}: 0; 10->{11.5,12}: 1/2; 11.5->{12,10}: 1/2; 12->{11.5,10}: 0
    assert neighborhood_hit(x[:, None], y, k=2) == pytest.approx(2.0 / 6.0)


def test_separated_blobs_give_one() -> None:
    x, y = _blobs()
    assert neighborhood_hit(x, y) == 1.0
    x5, y5 = _blobs(dim=50, n_classes=5)
    assert neighborhood_hit(x5, y5) == 1.0  # high-dimensional path (not the KD-tree)


def test_shuffled_labels_give_chance() -> None:
    rng = np.random.default_rng(1)
    x = rng.normal(size=(4000, 2))
    y = rng.integers(0, 5, size=4000)
    p = np.bincount(y) / len(y)
    chance = float(np.sum(p**2))  # probability that a random neighbour shares the label
    assert neighborhood_hit(x, y) == pytest.approx(chance, abs=0.02)
    xb, yb = _blobs(n_per=500, n_classes=4)
    yb_shuffled = rng.permutation(yb)
    assert neighborhood_hit(xb, yb_shuffled) == pytest.approx(0.25, abs=0.03)


def test_invariant_to_order_scale_rotation_translation() -> None:
    rng = np.random.default_rng(2)
    x = rng.normal(size=(600, 2))
    y = (x[:, 0] + 0.5 * rng.normal(size=600) > 0).astype(int) + (x[:, 1] > 0.7)
    ref = neighborhood_hit(x, y)
    assert 0.4 < ref < 1.0
    perm = rng.permutation(len(x))
    assert neighborhood_hit(x[perm], y[perm]) == pytest.approx(ref, abs=1e-12)
    theta = 0.7
    rot = np.array([[np.cos(theta), -np.sin(theta)], [np.sin(theta), np.cos(theta)]])
    assert neighborhood_hit(1e4 * x @ rot + 3.0, y) == pytest.approx(ref, abs=1e-12)
    assert neighborhood_hit(1e-4 * x, y) == pytest.approx(ref, abs=1e-12)


@pytest.mark.parametrize("dim", [2, 3, 40])
@pytest.mark.parametrize("k", [1, 6, 15])
def test_equals_brute_force(dim: int, k: int) -> None:
    rng = np.random.default_rng(dim * 100 + k)
    x = rng.normal(size=(300, dim))
    y = rng.integers(0, 3, size=300)
    y[x[:, 0] > 1] = 0  # some structure
    assert neighborhood_hit(x, y, k=k) == pytest.approx(_brute_nh(x, y, k), abs=1e-12)


def test_duplicates_exclude_one_point() -> None:
    # 10 identical points of class 0 and 10 of class 1 far away: each point's 6 neighbours are
    # among its own duplicates, even though the search may not return the point itself first
    x = np.vstack([np.zeros((10, 2)), np.ones((10, 2)) * 5])
    y = np.repeat([0, 1], 10)
    assert neighborhood_hit(x, y, k=6) == 1.0
    # per point, exactly k neighbours are used
    assert set(np.unique(neighborhood_hit_per_point(x, y, 6) * 6)) <= set(range(7))


def test_errors_are_clear() -> None:
    x, y = _blobs(n_per=5, n_classes=2)
    with pytest.raises(ParameterError, match="needs at least 7 points"):
        neighborhood_hit(x[:6], y[:6], k=6)
    with pytest.raises(ParameterError, match="positive integer"):
        neighborhood_hit(x, y, k=0)
    with pytest.raises(DataError, match="same label"):
        neighborhood_hit(x, np.zeros(len(x)))
    bad = x.copy()
    bad[2, 1] = np.nan
    with pytest.raises(DataError, match="NaN or infinite"):
        neighborhood_hit(bad, y, k=2)
    with pytest.raises(DataError, match="one label per point"):
        neighborhood_hit(x, y[:-1], k=2)


def test_accuracy() -> None:
    assert accuracy(np.array([0, 1, 2, 2]), np.array([0, 1, 1, 2])) == 0.75
    assert accuracy(np.array([0, 1]), None) is None
    with pytest.raises(DataError, match="same shape"):
        accuracy(np.array([0, 1]), np.array([0]))
