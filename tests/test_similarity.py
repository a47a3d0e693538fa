"""Linear CKA (Kornblith et al. 2019) and linear probes (Alain & Bengio 2016)."""

from __future__ import annotations

import numpy as np
import pytest

from layerscope.exceptions import DataError, ParameterError
from layerscope.similarity import ProbeResult, cka_matrix, linear_cka, linear_probe, probe_layers


def _cka_reference(x: np.ndarray, y: np.ndarray) -> float:
    # HSIC form with an explicit centring matrix H = I - 11^T/n
    n = len(x)
    h = np.eye(n) - np.ones((n, n)) / n
    k, l_ = x @ x.T, y @ y.T
    hsic = lambda a, b: np.trace(a @ h @ b @ h)  # noqa: E731
    return float(hsic(k, l_) / np.sqrt(hsic(k, k) * hsic(l_, l_)))


def test_cka_hand_example() -> None:
    # x = (1,2,3), y = (1,2,4): centred x = (-1,0,1), y = (-4/3,-1/3,5/3);
    # CKA = (x.y)^2 / (|x|^2 |y|^2) = 3^2 / (2 * 42/9) = 81/84
    x = np.array([[1.0], [2.0], [3.0]])
    y = np.array([[1.0], [2.0], [4.0]])
    assert linear_cka(x, y) == pytest.approx(81.0 / 84.0)


@pytest.mark.parametrize("shape", [(200, 10, 15), (20, 300, 150)])  # feature form and Gram form
def test_cka_matches_reference_and_properties(shape: tuple[int, int, int]) -> None:
    n, p, q = shape
    rng = np.random.default_rng(0)
    x = rng.normal(size=(n, p))
    y = x @ rng.normal(size=(p, q)) + rng.normal(size=(n, q))
    assert linear_cka(x, y) == pytest.approx(_cka_reference(x, y), rel=1e-9)
    assert linear_cka(x, x) == pytest.approx(1.0)
    assert linear_cka(x, y) == pytest.approx(linear_cka(y, x))
    q_, _ = np.linalg.qr(rng.normal(size=(p, p)))
    assert linear_cka(x, x @ q_) == pytest.approx(1.0)
    assert linear_cka(x, 7.5 * x @ q_ + 3.0) == pytest.approx(1.0)
    assert linear_cka(x, y) == pytest.approx(linear_cka(0.01 * x @ q_, 100 * y))
    assert 0.0 <= linear_cka(x, rng.normal(size=(n, q))) < 1.0


def test_cka_not_invariant_to_anisotropic_scaling() -> None:
    rng = np.random.default_rng(1)
    x = rng.normal(size=(500, 5))
    d = np.diag([1.0, 1.0, 1.0, 1.0, 30.0])
    assert linear_cka(x, x @ d) < 0.5


def test_cka_errors() -> None:
    x = np.random.default_rng(0).normal(size=(10, 3))
    with pytest.raises(DataError, match="same observations"):
        linear_cka(x, x[:5])
    bad = x.copy()
    bad[0, 0] = np.inf
    with pytest.raises(DataError, match="NaN or infinite"):
        linear_cka(bad, x)
    with pytest.raises(DataError, match="constant"):
        linear_cka(np.ones((10, 3)), x)


def test_cka_matrix_symmetric_with_unit_diagonal() -> None:
    rng = np.random.default_rng(2)
    a = {"l1": rng.normal(size=(100, 8)), "l2": rng.normal(size=(100, 4, 2, 2)), "l3": rng.normal(size=(100, 3))}
    rows, cols, m = cka_matrix(a)
    assert rows == cols == ["l1", "l2", "l3"]
    assert np.allclose(np.diag(m), 1.0)
    assert np.allclose(m, m.T)
    assert m[0, 1] == pytest.approx(linear_cka(a["l1"], a["l2"].reshape(100, -1)))
    rows, cols, m2 = cka_matrix(a, {"z": a["l3"]})
    assert m2.shape == (3, 1) and m2[2, 0] == pytest.approx(1.0)


def test_probe_separable_and_random() -> None:
    rng = np.random.default_rng(0)
    y = np.repeat(np.arange(3), 100)
    x = rng.normal(size=(300, 20))
    x[:, 0] += 10 * y  # linearly separable along one feature
    r = linear_probe(x, y)
    assert isinstance(r, ProbeResult)
    assert r.accuracy == 1.0
    assert r.n_test == 75 and r.n_train == 225 and r.n_classes == 3 and r.n_features == 20
    assert r.chance == pytest.approx(1 / 3, abs=0.05)
    rnd = linear_probe(rng.normal(size=(300, 20)), y)
    assert rnd.accuracy < 0.5
    assert linear_probe(x, y, random_state=0) == linear_probe(x, y, random_state=0)


def test_probe_equals_a_plain_float64_pipeline_with_fewer_copies() -> None:
    """The probe on real float32 activations equals scikit-learn's StandardScaler + LogisticRegression
    on the float64 matrix, split by hand; the input is left unchanged, and at most one float64 copy
    of the rows is held at a time (tracemalloc peak; the whole-matrix float64 copy plus its split and
    scaled copies measured 5.3x the float32 input)."""
    import tracemalloc

    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import train_test_split
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    import layerscope as ls

    acts = ls.collect_activations(ls.load_model("mnist-cnn"), ls.load_dataset("mnist:test"), ["conv2"],
                                  indices=np.arange(1200))
    x, y = acts["conv2"].reshape(1200, -1), acts.labels
    before = x.copy()
    tracemalloc.start()
    r = linear_probe(x, y, random_state=3)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert np.array_equal(x, before) and x.dtype == np.float32
    tr, te = train_test_split(np.arange(1200), test_size=0.25, random_state=3, stratify=y)
    x64 = x.astype(np.float64)
    clf = make_pipeline(StandardScaler(), LogisticRegression(max_iter=500)).fit(x64[tr], y[tr])
    assert r.accuracy == np.mean(clf.predict(x64[te]) == y[te])
    assert r.train_accuracy == np.mean(clf.predict(x64[tr]) == y[tr])
    assert peak < 4 * x.nbytes, peak / x.nbytes


def test_probe_group_held_out() -> None:
    rng = np.random.default_rng(0)
    sizes = [10, 20, 30, 40, 50]
    groups = np.repeat(np.arange(5), sizes)
    y = rng.integers(0, 2, size=len(groups))
    x = rng.normal(size=(len(groups), 4)) + y[:, None]
    r = linear_probe(x, y, groups=groups, test_size=0.4)
    # whole groups are held out: the test size is a sum of group sizes
    from itertools import combinations

    sums = {sum(c) for k in range(1, 5) for c in combinations(sizes, k)}
    assert r.n_test in sums
    assert r.n_train + r.n_test == len(groups)
    with pytest.raises(DataError, match="two distinct groups"):
        linear_probe(x, y, groups=np.zeros(len(groups)))


def test_probe_errors() -> None:
    x = np.random.default_rng(0).normal(size=(20, 3))
    with pytest.raises(DataError, match="at least two classes"):
        linear_probe(x, np.zeros(20))
    with pytest.raises(ParameterError, match="test_size"):
        linear_probe(x, np.arange(20) % 2, test_size=1.5)
    with pytest.raises(DataError, match="one label per row"):
        linear_probe(x, np.arange(19) % 2)


def test_probe_layers_keeps_order() -> None:
    rng = np.random.default_rng(0)
    y = np.repeat([0, 1], 50)
    acts = {"b": rng.normal(size=(100, 3)) + 5 * y[:, None], "a": rng.normal(size=(100, 3))}
    res = probe_layers(acts, y)
    assert [r.layer for r in res] == ["b", "a"]
    assert res[0].accuracy > res[1].accuracy
