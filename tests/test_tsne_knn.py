"""The t-SNE path of ``project``: one kNN graph shared by the affinities and NH in activation
space (checked against scikit-learn's NearestNeighbors on real MNIST), the gradient method and FFT
grid chosen by n reproduced by plain openTSNE calls, seeds, graph reuse in sequences, refusals."""

from __future__ import annotations

import numpy as np
import pytest

from layerscope.exceptions import ParameterError
from layerscope.projection import project
from layerscope.projection import sequence as seq_mod
from layerscope.projection import projectors
from layerscope.projection.projectors import (TSNE_BH_MAX_N, knn_graph, tsne_gradient_settings, tsne_grid,
                                              tsne_knn_method)
from layerscope.projection.sequence import project_sequence

FAST = {"perplexity": 10.0, "n_iter": 120, "early_exaggeration_iter": 80}


@pytest.fixture(scope="module")
def mnist() -> tuple[np.ndarray, np.ndarray]:
    from layerscope.data import load_dataset

    ds = load_dataset("mnist:test")  # the bundled copy
    x = ds.x[:500].reshape(500, -1).numpy().astype(np.float32)
    return x, ds.y[:500].numpy()


def _plain_nh(x: np.ndarray, y: np.ndarray, k: int) -> float:
    from sklearn.neighbors import NearestNeighbors

    idx = NearestNeighbors(n_neighbors=k + 1).fit(x).kneighbors(x, return_distance=False)
    hits = [np.mean(y[[j for j in row if j != i][:k]] == y[i]) for i, row in enumerate(idx)]
    return float(np.mean(hits))


@pytest.mark.parametrize("k", [1, 6, 15])
def test_nh_original_from_the_shared_graph_equals_plain_sklearn(mnist, k: int) -> None:
    x, y = mnist
    p = project(x, y, "tsne", 0, k=k, knn_method="exact", **FAST)
    assert p.parameters["knn"] == "exact" and p.parameters["knn_neighbors"] == 30
    assert p.metrics["nh_original"] == pytest.approx(_plain_nh(x, y, k), abs=1e-12)
    # the graph's first k neighbours are scikit-learn's k nearest (as sets)
    g = knn_graph(x, 30, method="exact")
    from sklearn.neighbors import NearestNeighbors

    ref = NearestNeighbors(n_neighbors=k).fit(x).kneighbors(return_distance=False)
    assert all(set(a) == set(b) for a, b in zip(g.indices[:, :k], ref))
    assert np.all(np.diff(g.distances, axis=1) >= 0)


def test_approximate_graph_still_gives_exact_nh_original(mnist) -> None:
    x, y = mnist
    p = project(x, y, "tsne", 0, knn_method="annoy", **FAST)
    assert p.parameters["knn"] == "annoy"
    assert p.metrics["nh_original"] == pytest.approx(_plain_nh(x, y, 6), abs=1e-12)


def test_chosen_grid_is_a_plain_seeded_opentsne_run(mnist) -> None:
    from openTSNE import TSNE
    from openTSNE.affinity import PerplexityBasedNN

    x, y = mnist
    p = project(x, y, "tsne", 5, **FAST)
    assert len(x) == TSNE_BH_MAX_N  # the smallest size that gets the FFT
    grid = tsne_grid(len(x))
    assert grid == {"negative_gradient_method": "fft", "min_num_intervals": 10, "ints_in_interval": 1.5,
                    "n_interpolation_points": 2}
    assert tsne_grid(5000)["ints_in_interval"] == 2.0 and tsne_grid(5000)["n_interpolation_points"] == 3
    assert all(p.parameters[k] == v for k, v in grid.items()) and p.parameters["gradient_chosen"] == "by n"
    assert "theta" not in p.parameters
    again = project(x, y, "tsne", 5, **FAST)
    assert np.array_equal(p.embedding, again.embedding)  # seeded, deterministic
    assert not np.allclose(p.embedding, project(x, y, "tsne", 6, **FAST).embedding)
    # the same run written out with openTSNE by hand: exact neighbours, FFT, the same grid
    t = TSNE(perplexity=10.0, n_jobs=1, random_state=5, negative_gradient_method="fft",
             min_num_intervals=10, ints_in_interval=1.5, n_interpolation_points=2)
    aff = PerplexityBasedNN(x, perplexity=10.0, method="exact", n_jobs=1, random_state=5)
    e = t.prepare_initial(x, affinities=aff, initialization="pca")
    e = e.optimize(80, exaggeration=12, momentum=0.8, inplace=True).optimize(120, momentum=0.8, inplace=True)
    np.testing.assert_allclose(p.embedding, np.asarray(e), rtol=0, atol=1e-6)


def _count_graph_searches(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """A list that grows by one at every kNN-graph search made by project_sequence."""
    calls: list[int] = []
    real = seq_mod.knn_graph

    def counting(*a, **kw):  # type: ignore[no-untyped-def]
        calls.append(1)
        return real(*a, **kw)

    monkeypatch.setattr(seq_mod, "knn_graph", counting)
    return calls


def test_aligned_first_frame_is_the_independent_projection_and_graphs_are_reused(mnist, monkeypatch) -> None:
    x, y = mnist
    rng = np.random.default_rng(0)
    other = x @ rng.normal(size=(x.shape[1], 32)).astype(np.float32)
    calls = _count_graph_searches(monkeypatch)
    s = project_sequence([x, other, x.copy()], y, "tsne", 2, aligned=True, aligned_n_iter=60, **FAST)
    assert len(calls) == 2  # frames 0 and 2 hold the same activations: one graph for both
    assert np.array_equal(s.frames[0].embedding, project(x, y, "tsne", 2, **FAST).embedding)
    assert s.frames[0].metrics["nh_original"] == s.frames[2].metrics["nh_original"]
    assert s.frames[1].parameters["initialized"] and s.frames[1].parameters["knn_shared"]


def test_graph_of_other_activations_is_refused(mnist) -> None:
    x, y = mnist
    g = knn_graph(x, 30)
    with pytest.raises(ParameterError, match="computed on other activations"):
        project(x[:, ::-1].copy(), y, "tsne", 0, knn=g, **FAST)
    with pytest.raises(ParameterError, match="holds 30 neighbours per point but 60"):
        project(x, y, "tsne", 0, knn=g, perplexity=20.0, n_iter=10, early_exaggeration_iter=0)
    with pytest.raises(ParameterError, match="only by method='tsne'"):
        project(x, y, "pca", 0, knn=g)
    with pytest.raises(ParameterError, match="n_neighbors must be"):
        knn_graph(x, 500)
    p = project(x, y, "tsne", 0, knn=g, **FAST)
    assert p.parameters["knn_shared"] and np.array_equal(p.embedding, project(x, y, "tsne", 0, **FAST).embedding)


def test_small_n_uses_barnes_hut_equal_to_a_plain_opentsne_run(mnist) -> None:
    from openTSNE import TSNE
    from openTSNE.affinity import PerplexityBasedNN

    x, y = mnist
    x, y = x[:300], y[:300]
    assert tsne_grid(300) == tsne_grid(TSNE_BH_MAX_N - 1) == {"negative_gradient_method": "bh", "theta": 0.5}
    p = project(x, y, "tsne", 3, **FAST)
    assert p.parameters["negative_gradient_method"] == "bh" and p.parameters["theta"] == 0.5
    assert p.parameters["gradient_chosen"] == "by n" and "ints_in_interval" not in p.parameters
    assert np.array_equal(p.embedding, project(x, y, "tsne", 3, **FAST).embedding)  # seeded, deterministic
    assert not np.allclose(p.embedding, project(x, y, "tsne", 4, **FAST).embedding)
    t = TSNE(perplexity=10.0, n_jobs=1, random_state=3, negative_gradient_method="bh", theta=0.5)
    aff = PerplexityBasedNN(x, perplexity=10.0, method="exact", n_jobs=1, random_state=3)
    e = t.prepare_initial(x, affinities=aff, initialization="pca")
    e = e.optimize(80, exaggeration=12, momentum=0.8, inplace=True).optimize(120, momentum=0.8, inplace=True)
    np.testing.assert_allclose(p.embedding, np.asarray(e), rtol=0, atol=1e-6)
    # the caller's choice wins and is recorded as such
    f = project(x, y, "tsne", 3, negative_gradient_method="fft", **FAST)
    assert f.parameters["negative_gradient_method"] == "fft" and f.parameters["ints_in_interval"] == 1.5
    assert f.parameters["gradient_chosen"] == "by the caller" and "theta" not in f.parameters
    assert not np.allclose(f.embedding, p.embedding)


def test_gradient_overrides_are_explicit_or_refused() -> None:
    assert tsne_gradient_settings(300) == (tsne_grid(300), "by n")
    assert tsne_gradient_settings(300, {"perplexity": 5}) == (tsne_grid(300), "by n")
    assert tsne_gradient_settings(300, {"ints_in_interval": 1.0}) == (
        {"negative_gradient_method": "fft", "min_num_intervals": 10, "ints_in_interval": 1.0,
         "n_interpolation_points": 2}, "by the caller")
    assert tsne_gradient_settings(20000, {"theta": 0.8}) == (
        {"negative_gradient_method": "bh", "theta": 0.8}, "by the caller")
    assert tsne_gradient_settings(20000, {"negative_gradient_method": "BH"})[0] == {
        "negative_gradient_method": "bh", "theta": 0.5}
    with pytest.raises(ParameterError, match="were both given"):
        tsne_gradient_settings(300, {"theta": 0.5, "ints_in_interval": 1.0})
    with pytest.raises(ParameterError, match="does not use"):
        tsne_gradient_settings(300, {"negative_gradient_method": "bh", "n_interpolation_points": 3})
    with pytest.raises(ParameterError, match="does not use"):
        tsne_gradient_settings(3000, {"negative_gradient_method": "fft", "theta": 0.3})
    with pytest.raises(ParameterError, match="unknown negative_gradient_method"):
        tsne_gradient_settings(3000, {"negative_gradient_method": "exact"})


def test_study_reuses_a_graph_across_sequences_only_for_identical_activations(monkeypatch) -> None:
    """project_model: checkpoint 1 is a copy of checkpoint 0 (byte-identical activations, but in
    another sequence when aligning over layers): its graphs are reused; checkpoint 2 differs and gets
    its own. Reused or not, every frame equals a fresh ``project`` of its activations."""
    import copy

    import torch

    from layerscope.capture import collect_activations
    from layerscope.data import load_dataset
    from layerscope.models import build_model
    from layerscope.projection.analysis import project_model, select_observations

    ds = load_dataset("mnist:test").subset(np.arange(400))
    torch.manual_seed(0)
    m0 = build_model("mlp:width=16,depth=2", (1, 28, 28), 10)
    m2 = copy.deepcopy(m0)
    with torch.no_grad():
        m2.get_submodule("fc2").weight.mul_(-1.0)  # relu1 unchanged, relu2 differs
    models = {0: m0, 1: copy.deepcopy(m0), 2: m2}
    calls = _count_graph_searches(monkeypatch)
    quick = {"perplexity": 10.0, "n_iter": 20, "early_exaggeration_iter": 10}  # equality, not quality, is tested
    study = project_model(models, ds, "all", n=150, method="tsne", align_over="layers", thumbnails=0, **quick)
    assert study.layers == ["relu1", "relu2"] and len(study.sequences) == 3
    # relu1: one graph for all three checkpoints; relu2: one for checkpoints 0 and 1, one for 2
    assert len(calls) == 3
    idx = select_observations(ds, 150, 0)
    for cp, m in models.items():
        acts = collect_activations(m, ds, ["relu1", "relu2"], indices=idx)
        for lay in ("relu1", "relu2"):
            got = study.get(lay, cp)
            fresh = project(acts.arrays[lay], acts.labels, "tsne", 0, **quick)
            assert got.metrics["nh"] == fresh.metrics["nh"]
            assert got.metrics["nh_original"] == fresh.metrics["nh_original"]
            assert np.array_equal(got.embedding, fresh.embedding)
    assert not np.array_equal(study.get("relu2", 2).embedding, study.get("relu2", 0).embedding)


def test_auto_search_is_exact_whenever_nh_in_activation_space_needs_it(mnist, monkeypatch) -> None:
    assert tsne_knn_method("auto", 90, 6) == "exact" and tsne_knn_method("auto", 90, None) == "auto"
    assert tsne_knn_method("auto", 30, 60) == "auto" and tsne_knn_method("annoy", 90, 6) == "annoy"
    x, y = mnist
    x, y = x[:300], y[:300]
    monkeypatch.setattr(projectors, "EXACT_KNN_MAX_WORK", 0.0)  # as if these were 50,000 points
    with_nh = project(x, y, "tsne", 0, **FAST)
    assert with_nh.parameters["knn"] == "exact"  # one exact search serves the affinities and NH
    assert with_nh.metrics["nh_original"] == pytest.approx(_plain_nh(x, y, 6), abs=1e-12)
    assert project(x, y, "tsne", 0, nh_original=False, **FAST).parameters["knn"] == "annoy"
    assert project(x, None, "tsne", 0, **FAST).parameters["knn"] == "annoy"
    seq = project_sequence([x], y, "tsne", 0, aligned=False, **FAST)
    assert seq.frames[0].parameters["knn"] == "exact" and seq.frames[0].parameters["knn_shared"]


def test_sequence_of_selected_rows_shares_graphs_of_those_rows(mnist) -> None:
    # project_sequence(rows=...) projects only those rows of each frame; the graph it shares must be
    # of the same rows (a graph of all rows would not match them), and each frame equals project()
    x, y = mnist
    rows = np.arange(0, 500, 2)[::-1]  # 250 rows, reversed order
    s = project_sequence([x, x.copy()], y, "tsne", 3, rows=rows, aligned=False, **FAST)
    alone = project(x, y, "tsne", 3, rows=rows, **FAST)
    for f in s.frames:
        assert f.metrics["n"] == 250
        assert np.array_equal(f.embedding, alone.embedding)
        assert f.metrics["nh_original"] == alone.metrics["nh_original"]
    assert s.frames[1].parameters["knn_shared"]
