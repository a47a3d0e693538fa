"""Issue 17, data larger than RAM: ``project`` reads only the rows it needs and goes through a block
route for layers wider than its memory budget; CKA stays exact beyond the feature-sum limit
(blocked routes); projection, probe and CKA results say when they come from float16 activations."""

from __future__ import annotations

import json
import tracemalloc
from pathlib import Path

import numpy as np
import pytest
from threadpoolctl import threadpool_limits
from torch import nn

import layerscope as ls
from layerscope.capture import collect_activations
from layerscope.exceptions import DataError, ParameterError
from layerscope.projection import streamed
from layerscope.projection.projectors import knn_graph, project
from layerscope.similarity import linear_cka, linear_cka_detail, linear_probe
from layerscope.store import LazyArray

zarr = pytest.importorskip("zarr")

N = 300


@pytest.fixture
def mnist() -> tuple[nn.Module, object]:
    return ls.load_model("mnist-cnn"), ls.load_dataset("mnist:test").subset(np.arange(N))


@pytest.fixture
def stored(mnist, tmp_path: Path) -> ls.Activations:
    """Real activations of mnist-cnn on 300 MNIST test images, in a Zarr store (chunks of 32 rows)."""
    model, data = mnist
    return collect_activations(model, data, ["conv1", "relu2", "fc1", "relu3"], batch_size=32, store="zarr",
                               out_dir=tmp_path / "cap", predictions=True, chunk_rows=32)


# -- CKA within a memory budget ---------------------------------------------------------------------


def test_blocked_cka_routes_equal_the_in_memory_value_on_real_activations(stored) -> None:
    conv1, relu2, fc1, relu3 = (stored[n] for n in ["conv1", "relu2", "fc1", "relu3"])
    assert isinstance(conv1, LazyArray)
    mem = {n: np.asarray(stored[n]).reshape(N, -1) for n in ["conv1", "relu2", "fc1", "relu3"]}
    # n = 300 < p + q = 1568 + 784: the n x n Gram tiles, from pairs of row blocks
    ref = linear_cka(mem["conv1"], mem["relu2"])
    linear_cka_detail(conv1, relu2, memory_budget=3_000_000)  # once before counting: zarr's codec set-up
    for x, y in [(conv1, relu2), (mem["conv1"], mem["relu2"])]:
        tracemalloc.start()
        try:
            det = linear_cka_detail(x, y, memory_budget=3_000_000)  # the feature sums alone: 31 MB
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        assert det.route == "blocked-gram" and det.passes > 1
        assert abs(det.value - ref) <= 1e-10
        assert peak <= 3_000_000, peak
    # one streamed pass when the feature sums fit (the default budget for lazy arrays)
    det = linear_cka_detail(fc1, relu3)
    assert det.route == "streamed-features" and det.passes == 1 and det.memory_budget == 2 << 30
    assert abs(det.value - linear_cka(mem["fc1"], mem["relu3"])) <= 1e-10
    # n = 300 >= p + q = 256 + 16: tiles of the feature sums, several passes
    pooled = np.asarray(stored["relu2"]).mean(axis=(2, 3))
    ref = linear_cka(mem["fc1"], pooled)
    det = linear_cka_detail(fc1, pooled, memory_budget=200_000)  # the sums: 559 KB
    assert det.route == "blocked-features" and det.passes > 2
    assert abs(det.value - ref) <= 1e-10
    tracemalloc.start()  # in memory (no chunk decompression to count): within the budget
    try:
        det = linear_cka_detail(mem["fc1"], pooled, memory_budget=200_000)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert det.route == "blocked-features" and abs(det.value - ref) <= 1e-10
    assert peak <= 200_000, peak
    # the in-memory routes are unchanged and named
    assert linear_cka_detail(mem["conv1"], mem["relu2"]).route == "memory-gram"
    assert linear_cka_detail(mem["fc1"], pooled).route == "memory-features"
    with pytest.raises(ParameterError, match="cannot hold"):
        linear_cka_detail(conv1, relu2, memory_budget=1000)


def test_cka_model_records_the_routes(mnist) -> None:
    model, data = mnist
    res = ls.cka_model(model, data, ["conv1", "relu2"], n=120, memory_budget=300_000)
    assert res.parameters["routes"] == ["blocked-gram"]
    ref = ls.cka_model(model, data, ["conv1", "relu2"], n=120)
    assert ref.parameters["routes"] == ["memory-gram"] and "precision" not in ref.parameters
    np.testing.assert_allclose(res.matrix, ref.matrix, rtol=0, atol=1e-10)


# -- project from a lazy layer ---------------------------------------------------------------------


def test_project_reads_only_the_requested_rows_and_equals_the_in_memory_result(stored, monkeypatch) -> None:
    X = stored["conv1"]
    rows = np.arange(N)[::-3][:90].copy()  # unsorted subset
    asked: list[int] = []
    real_take = LazyArray.take
    monkeypatch.setattr(LazyArray, "take", lambda self, r, dtype=None: (asked.append(len(r)), real_take(self, r, dtype))[1])
    kw = {"n_iter": 100, "early_exaggeration_iter": 50, "perplexity": 10}
    lazy = project(X, stored.labels, "tsne", 0, rows=rows, predictions=stored.predictions, **kw)
    assert asked == [len(rows)]  # the rows asked for, never the whole layer
    mem = np.asarray(real_take(X, np.arange(N)))
    ref = project(mem[rows], stored.labels[rows], "tsne", 0, predictions=stored.predictions[rows], **kw)
    assert np.array_equal(lazy.embedding, ref.embedding)
    assert lazy.metrics == {**ref.metrics, "seconds": lazy.metrics["seconds"]}
    assert np.array_equal(lazy.sample_ids, rows) and np.array_equal(lazy.labels, stored.labels[rows])
    # within the budget: the same result, no reduction
    inb = project(X, stored.labels, "tsne", 0, rows=rows, memory_budget=10**8, **kw)
    assert np.array_equal(inb.embedding, ref.embedding) and "reduction" not in inb.parameters


def test_project_rows_refuses_bad_rows_and_misaligned_labels(stored) -> None:
    X, y = stored["relu3"], stored.labels
    with pytest.raises(ParameterError, match="more than once"):
        project(X, y, "pca", rows=np.array([1, 2, 2, 3, 4, 5, 6, 7]))
    with pytest.raises(ParameterError, match=r"\[0, 300\)"):
        project(X, y, "pca", rows=np.array([0, 1, 300]))
    with pytest.raises(DataError, match="one entry per row of X"):
        project(X, y[:50], "pca", rows=np.arange(50))
    for bad in (0, -5, 1.5e6, True):
        with pytest.raises(ParameterError, match="positive integer number of bytes"):
            project(X, y, "pca", memory_budget=bad)
        with pytest.raises(ParameterError, match="positive integer number of bytes"):
            linear_cka_detail(X, X, memory_budget=bad)
    # a NaN is refused by the block route too (found while staging), not projected
    wide = np.asarray(stored["conv1"]).reshape(N, -1).copy()
    wide[17, 5] = np.nan
    with pytest.raises(DataError, match="NaN"):
        project(wide, y, "pca", memory_budget=1_600_000, reduce_dim=4)


def test_project_block_route_is_bounded_and_keeps_the_activation_space_neighbours(stored, monkeypatch) -> None:
    X, y = stored["conv1"], stored.labels  # 1,568 features
    rows = np.arange(N)[::-1].copy()  # 300 rows: 1.9 MB as float32
    budget = 1_600_000
    import sklearn.decomposition  # noqa: F401  (imported before counting: module objects are not the rows)

    seen: dict[str, object] = {}
    real = streamed.streamed_input

    def counted(*args: object, **kwargs: object) -> streamed.StreamedInput:
        tracemalloc.start()
        try:
            out = real(*args, **kwargs)  # type: ignore[arg-type]
            seen["peak"] = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        seen["input"] = out
        return out

    monkeypatch.setattr(streamed, "streamed_input", counted)
    kw = {"perplexity": 15, "n_iter": 300, "early_exaggeration_iter": 125}
    # one BLAS thread: two dozen SVDs of 13 x 1,568 blocks take 1 ms each, 200 ms with threads
    # contending on a loaded machine
    with threadpool_limits(1):
        p = project(X, y, "tsne", 0, rows=rows, memory_budget=budget, reduce_dim=4, **kw)
    si = seen["input"]
    assert isinstance(si, streamed.StreamedInput) and si.knn_indices is not None and si.knn_distances is not None
    # the rows (1.9 MB) never sit in memory at once: blocks, tiles and the O(n) outputs only
    assert int(seen["peak"]) <= budget + N * (4 + 45 * 2) * 8 + 200_000, seen["peak"]  # type: ignore[call-overload]
    mem = np.asarray(X).reshape(N, -1)[rows]
    g = knn_graph(mem, 45, method="exact")
    assert np.array_equal(si.knn_indices, g.indices)  # the exact neighbours of the in-memory search
    np.testing.assert_allclose(si.knn_distances, g.distances, rtol=1e-5)
    ref = project(mem, y[rows], "tsne", 0, **kw)
    red = p.parameters["reduction"]
    assert red["method"] == "IncrementalPCA" and red["components"] == 4 and red["input_dim"] == 1568
    assert 0.0 < red["explained_variance_ratio"] < 1.0
    assert p.metrics["dim"] == 1568 and p.metrics["reduced_dim"] == 4
    assert p.metrics["nh_original"] == pytest.approx(ref.metrics["nh_original"], abs=1e-12)
    # the affinities are the in-memory ones; only the start (PCA of the reduction) differs
    assert abs(p.metrics["nh"] - ref.metrics["nh"]) < 0.08
    assert json.loads(json.dumps(p.to_dict(points=False)))["parameters"]["reduction"]["components"] == 4
    with pytest.raises(ParameterError, match="too small"):
        project(X, y, "tsne", rows=rows, memory_budget=1_000_000)
    with pytest.raises(ParameterError, match="stored chunk"):
        project(X, y, "tsne", rows=rows, memory_budget=500_000, reduce_dim=2)
    with pytest.raises(ParameterError, match="knn_method='annoy'"):
        project(X, y, "tsne", rows=rows, memory_budget=budget, knn_method="annoy")


# -- the float16 flag -------------------------------------------------------------------------------


def test_float16_inputs_are_flagged_in_projection_probe_and_cka(stored) -> None:
    x32 = np.asarray(stored["fc1"])[:120]
    x16 = x32.astype(np.float16)
    y = stored.labels[:120]
    p16, p32 = project(x16, y, "pca"), project(x32, y, "pca")
    assert "float16" in p16.parameters["precision"] and "float16" in p16.metrics["precision"]
    assert "precision" not in p32.parameters and "precision" not in p32.metrics
    assert "float16" in json.loads(json.dumps(p16.to_dict(points=False)))["metrics"]["precision"]
    r16, r32 = linear_probe(x16, y), linear_probe(x32, y)
    assert r16.precision is not None and "float16" in r16.to_dict()["precision"] and r32.precision is None
    c16 = linear_cka_detail(x16, np.asarray(stored["relu3"])[:120])
    assert c16.precision is not None and linear_cka_detail(x32, x32).precision is None


def test_float16_capture_is_flagged_in_the_saved_studies(mnist, tmp_path: Path) -> None:
    model, data = mnist
    kw = {"n": 80, "dtype": "float16"}
    studies = {
        "probe": ls.probe_model(model, data, ["fc1"], **kw),
        "cka": ls.cka_model(model, data, ["fc1", "relu3"], **kw),
        "projection": ls.project_model(model, data, ["fc1"], method="pca", thumbnails=0, **kw),
    }
    for name, st in studies.items():
        doc = json.loads((st.save(tmp_path / name) / "result.json").read_text())
        assert "float16" in doc["parameters"]["precision"], name
    doc = json.loads((tmp_path / "probe" / "result.json").read_text())
    assert "float16" in doc["probes"]["model"][0]["precision"]
    assert ls.ProbeStudy.load(tmp_path / "probe").results["model"][0].precision is not None
    plain = ls.probe_model(model, data, ["fc1"], n=80)
    assert "precision" not in plain.parameters and plain.results["model"][0].precision is None


def test_project_model_sends_a_too_wide_layer_through_the_block_route(mnist) -> None:
    model, data = mnist
    kw = {"n_iter": 50, "early_exaggeration_iter": 25, "perplexity": 10, "thumbnails": 0}
    with threadpool_limits(1):  # see the test above
        st = ls.project_model(model, data, ["conv1", "fc1"], n=N, memory_budget=1_600_000, reduce_dim=4, **kw)
        ref = ls.project_model(model, data, ["conv1", "fc1"], n=N, **kw)  # same BLAS threads: same sums
    wide, narrow = st.get("conv1"), st.get("fc1")
    assert wide.parameters["reduction"]["input_dim"] == 1568 and "reduction" not in narrow.parameters
    assert wide.metrics["nh_original"] == pytest.approx(ref.get("conv1").metrics["nh_original"], abs=1e-12)
    assert np.array_equal(narrow.embedding, ref.get("fc1").embedding)  # within the budget: unchanged
    assert st.parameters["memory_budget"] == 1_600_000


def test_cli_project_memory_budget_takes_the_block_route_for_the_wide_layer(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from typer.testing import CliRunner

    from layerscope.cli import app, main

    runner = CliRunner()
    common = ["--model", "mnist-cnn", "--data", "mnist:test", "--n", "200", "--no-progress", "--layers", "conv1,fc1",
              "--perplexity", "10", "--thumbnails", "0"]
    # 1.15 MiB: conv1 (200 x 1568 float32 = 1.196 MiB) is too wide, fc1 (200 x 128) fits
    r = runner.invoke(app, ["project", *common, "--memory-budget-mb", "1.15", "--reduce-dim", "4", "--out", str(tmp_path / "b")])
    assert r.exit_code == 0, r.output
    said = " ".join(r.output.split())
    assert "conv1: 200 x 1568 values exceed memory_budget" in said and "IncrementalPCA to 4 dimensions" in said
    assert "fc1:" not in said
    r = runner.invoke(app, ["project", *common, "--out", str(tmp_path / "m")])
    assert r.exit_code == 0, r.output
    b, m = (json.loads((tmp_path / d / "result.json").read_text()) for d in ("b", "m"))
    (bw, bn), (mw, mn) = b["projections"], m["projections"]
    assert bw["layer"] == "conv1" and bw["parameters"]["reduction"]["input_dim"] == 1568
    assert bw["parameters"]["reduction"]["components"] == 4 and "reduction" not in bn["parameters"]
    # the neighbours in activation space are exact on both routes: the same NH there
    assert bw["metrics"]["nh_original"] == pytest.approx(mw["metrics"]["nh_original"], abs=1e-12)
    assert bn["metrics"] == {**mn["metrics"], "seconds": bn["metrics"]["seconds"]}
    bad = {"-1": ["--memory-budget-mb", "-1"], "nan": ["--memory-budget-mb", "nan"], "zero": ["--memory-budget-mb", "0"],
           "dim1": ["--memory-budget-mb", "1.15", "--reduce-dim", "1"],  # refused even where no layer needs it
           "nobudget": ["--reduce-dim", "4"]}
    for name, args in bad.items():
        capsys.readouterr()
        with pytest.raises(SystemExit) as ex:
            main(["project", *common, *args, "--out", str(tmp_path / name)])
        err = capsys.readouterr().err.strip()
        assert ex.value.code == 2 and err.startswith("error:") and "Traceback" not in err, (name, err)
        assert ("reduce" in err) if name in ("dim1", "nobudget") else ("budget" in err), (name, err)
        assert not (tmp_path / name).exists(), name


@pytest.mark.parametrize("bad", [0, 1, -4, 2.5, True, "8"])
def test_project_refuses_a_bad_reduce_dim_on_every_route(bad: object) -> None:
    x = np.random.default_rng(0).normal(size=(60, 5)).astype(np.float32)
    y = np.arange(60) % 3
    with pytest.raises(ParameterError, match="reduce_dim must be an integer >= 2"):
        project(x, y, "pca", reduce_dim=bad)  # type: ignore[arg-type]  # no budget: the value would go unused
