"""Issue 17: capture into preallocated arrays, float16 storage, per-layer memory budget, the Zarr
store read lazily by the analyses, hostile store metadata, Ray-sharded capture."""

from __future__ import annotations

import json
import shutil
from collections import OrderedDict
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

import layerscope as ls
from layerscope.capture import Activations, capture, collect_activations
from layerscope.exceptions import DataError, InputShapeError, ParameterError
from layerscope.store import LazyArray, as_matrix, open_layer_store

zarr = pytest.importorskip("zarr")

N = 300


@pytest.fixture
def mnist() -> tuple[nn.Module, object]:
    data = ls.load_dataset("mnist:test").subset(np.arange(N))
    return ls.load_model("mnist-cnn"), data


def leaf_names(model: nn.Module) -> list[str]:
    return [r.name for r in ls.list_layers(model) if r.is_leaf]


def plain_forward(model: nn.Module, x: torch.Tensor, names: list[str]) -> dict[str, np.ndarray]:
    """Each layer's output cloned inside a hand-written hook over one plain forward pass."""
    mods = dict(model.named_modules())
    out: dict[str, torch.Tensor] = {}
    hs = [mods[n].register_forward_hook(lambda m, i, o, n=n: out.__setitem__(n, o.detach().clone())) for n in names]
    try:
        with torch.no_grad():
            model.eval()(x)
    finally:
        for h in hs:
            h.remove()
    return {n: t.numpy() for n, t in out.items()}


def test_preallocated_capture_equals_plain_forward_and_the_capture_context(mnist) -> None:
    model, data = mnist
    names = leaf_names(model)
    ref = plain_forward(model, data.x, names)
    acts = collect_activations(model, data, names, batch_size=64, predictions=True)
    for n in names:
        assert isinstance(acts[n], np.ndarray) and acts[n].shape == ref[n].shape
        np.testing.assert_allclose(acts[n], ref[n], rtol=0, atol=2e-5)  # batches of 64 vs one batch of 300
    # the old path (the capture context keeps tensors, no sink) gives the same values, batch by batch
    with capture(model, names) as cap:
        for s in range(0, N, 64):
            cap.run(data.x[s : s + 64])
            for n in names:
                assert np.array_equal(cap[n].numpy(), acts[n][s : s + 64])
    assert acts.meta["storage"] == {"dtype": "float32", "in_memory": names}
    assert np.array_equal(acts.predictions, ref["fc2" if "fc2" in ref else names[-1]].argmax(1))


def test_inplace_relu_does_not_change_the_copy_made_in_the_hook() -> None:
    torch.manual_seed(0)
    m = nn.Sequential(OrderedDict(fc=nn.Linear(5, 6), act=nn.ReLU(inplace=True), out=nn.Linear(6, 3)))
    x = torch.randn(40, 5)
    with torch.no_grad():
        want = m.fc(x).numpy()
    assert (want < 0).any()
    acts = collect_activations(m, x, ["fc", "act"], batch_size=16)
    np.testing.assert_array_equal(acts["fc"], want)  # pre-ReLU values, though the ReLU wrote over them
    np.testing.assert_array_equal(acts["act"], np.maximum(want, 0))


def test_float16_storage_within_rounding_and_labelled(mnist) -> None:
    model, data = mnist
    names = leaf_names(model)
    full = collect_activations(model, data, names, batch_size=100)
    half = collect_activations(model, data, names, batch_size=100, dtype="float16")
    for n in names:
        assert half[n].dtype == np.float16
        # float16 keeps 11 significant bits: relative error <= 2**-11 (normal range)
        np.testing.assert_allclose(half[n].astype(np.float32), full[n], rtol=2**-11, atol=1e-4)
    assert half.meta["storage"]["dtype"] == "float16"
    assert "reduced precision" in half.meta["precision"]
    assert "precision" not in full.meta
    with pytest.raises(ParameterError, match="bfloat16"):
        collect_activations(model, data, names, dtype=torch.bfloat16)
    with pytest.raises(ParameterError, match="dtype must be one of"):
        collect_activations(model, data, names, dtype="int8")


def test_budget_keeps_small_layers_in_ram_and_streams_large_ones(mnist, tmp_path: Path) -> None:
    model, data = mnist
    names = leaf_names(model)
    full = collect_activations(model, data, names, batch_size=128)
    sizes = {n: full[n].nbytes for n in names}
    budget = sum(sizes.values()) - max(sizes.values())  # everything but one of the largest layers fits
    acts = collect_activations(model, data, names, batch_size=128, memory_budget=budget, out_dir=tmp_path / "o")
    st = acts.meta["storage"]
    assert len(st["streamed_npy"]) == 1
    big = st["streamed_npy"][0]
    assert sizes[big] == max(sizes.values())  # smallest first: only a largest layer is left out
    assert sorted(st["in_memory"]) == sorted(set(names) - {big})
    assert isinstance(acts[big], np.memmap)
    for n in names:
        np.testing.assert_array_equal(acts[n], full[n])
    back = Activations.load(tmp_path / "o")
    for n in names:
        np.testing.assert_array_equal(back[n], full[n])


def test_zarr_round_trip_and_lazy_rows(mnist, tmp_path: Path) -> None:
    model, data = mnist
    names = leaf_names(model)
    full = collect_activations(model, data, names, batch_size=64, predictions=True)
    acts = collect_activations(model, data, names, batch_size=64, predictions=True, store="zarr", chunk_rows=128,
                               out_dir=tmp_path / "z")
    assert all(isinstance(acts[n], LazyArray) for n in names)
    assert acts["conv1" if "conv1" in names else names[0]].chunk_rows == 128
    for n in names:
        np.testing.assert_array_equal(np.asarray(acts[n]), full[n])
    np.testing.assert_array_equal(acts.predictions, full.predictions)
    back = Activations.load(tmp_path / "z")
    rows = np.array([299, 0, 128, 127, 5, 5])
    for n in names:
        assert isinstance(back[n], LazyArray)
        np.testing.assert_array_equal(back[n][rows], full[n][rows])
        np.testing.assert_array_equal(back[n][120:140], full[n][120:140])
        np.testing.assert_array_equal(as_matrix(back[n], rows), full[n][rows].reshape(len(rows), -1))
    # saving elsewhere copies the stores (hard links), loads equal
    back.save(tmp_path / "copy")
    again = Activations.load(tmp_path / "copy")
    np.testing.assert_array_equal(np.asarray(again[names[0]]), full[names[0]])
    res = ls.CaptureResult(activations=back)
    assert res.metrics["n_samples"] == N


def test_analyses_read_the_store_lazily_and_agree_with_memory(mnist, tmp_path: Path) -> None:
    model, data = mnist
    layers = ["conv1", "fc1"] if "fc1" in leaf_names(model) else leaf_names(model)[:2]
    mem = collect_activations(model, data, layers, batch_size=64)
    lazy = collect_activations(model, data, layers, batch_size=64, store="zarr", chunk_rows=64, out_dir=tmp_path / "z")
    a, b = layers
    # CKA: streamed feature sums vs the in-memory formula
    assert ls.linear_cka(lazy[a], lazy[b]) == pytest.approx(ls.linear_cka(mem[a], mem[b]), abs=1e-9)
    # probe on a row subset read from disk vs the same rows in memory
    rows = np.arange(0, N, 2)
    p_lazy = ls.linear_probe(lazy[b], lazy.labels, rows=rows)
    p_mem = ls.linear_probe(mem[b][rows], mem.labels[rows])
    assert p_lazy.accuracy == p_mem.accuracy and p_lazy.n_train == p_mem.n_train
    # projection (PCA: deterministic) of the lazy array vs the array
    from layerscope.projection.projectors import project

    e_lazy = project(lazy[a], lazy.labels, "pca", 0, nh_original=False)
    e_mem = project(mem[a], mem.labels, "pca", 0, nh_original=False)
    np.testing.assert_allclose(e_lazy.embedding, e_mem.embedding, rtol=1e-5, atol=1e-5)
    assert e_lazy.nh == e_mem.nh
    # top-k: running maxima over stored chunks vs the model pass (ties: the first row seen wins in both)
    t_lazy = ls.top_activations(model, data, a, k=5, activations=lazy[a], sample_ids=lazy.sample_ids,
                                patches=False, rule=None, batch_size=64)
    t_model = ls.top_activations(model, data, a, k=5, patches=False, rule=None, batch_size=100)
    np.testing.assert_array_equal(t_lazy.values, t_model.values)
    np.testing.assert_array_equal(t_lazy.sample_ids, t_model.sample_ids)
    np.testing.assert_array_equal(t_lazy.positions, t_model.positions)


def _write_meta(store: Path, **change: object) -> None:
    meta = json.loads((store / "zarr.json").read_text())
    meta.update(change)
    (store / "zarr.json").write_text(json.dumps(meta))


@pytest.mark.parametrize(
    "change, match",
    [
        ({"data_type": "object"}, "data type"),
        ({"data_type": "|O"}, "data type"),
        ({"zarr_format": 2}, "Zarr v3"),
        ({"shape": [301, 8, 14, 14]}, "mixes two runs"),
        ({"codecs": [{"name": "bytes"}, {"name": "pickle"}]}, "codecs"),
        ({"chunk_grid": {"name": "regular", "configuration": {"chunk_shape": [10**9, 8, 14, 14]}}}, "MiB"),
        ({"chunk_grid": {"name": "rectilinear"}}, "chunk grid"),
        ({"storage_transformers": [{"name": "x"}]}, "storage transformers"),
    ],
)
def test_hostile_store_metadata_is_refused(mnist, tmp_path: Path, change: dict, match: str) -> None:
    model, data = mnist
    collect_activations(model, data, ["conv1"], batch_size=100, store="zarr", out_dir=tmp_path / "z")
    store = next((tmp_path / "z").glob("*.zarr"))
    _write_meta(store, **change)
    with pytest.raises(DataError, match=match):
        Activations.load(tmp_path / "z")


def test_store_without_metadata_or_v2_array_is_refused(tmp_path: Path) -> None:
    # a Zarr v2 array (.zarray) whose object dtype would unpickle: never opened
    d = tmp_path / "a.zarr"
    d.mkdir()
    (d / ".zarray").write_text(json.dumps({"zarr_format": 2, "dtype": "|O", "filters": [{"id": "pickle"}],
                                           "shape": [2], "chunks": [2], "compressor": None, "order": "C",
                                           "fill_value": None}))
    with pytest.raises(DataError, match="no zarr.json"):
        open_layer_store(d)


def test_store_argument_checks(mnist) -> None:
    model, data = mnist
    with pytest.raises(ParameterError, match="store must be"):
        collect_activations(model, data, ["conv1"], store="hdf5")  # type: ignore[arg-type]
    with pytest.raises(ParameterError, match="chunk_rows"):
        collect_activations(model, data, ["conv1"], store="zarr", chunk_rows=0)


def test_short_dataloader_rows_are_trimmed_not_garbage(mnist) -> None:
    model, data = mnist
    loader = torch.utils.data.DataLoader(data, batch_size=64, drop_last=True)  # 256 of 300 rows
    acts = collect_activations(model, loader, ["conv1"])
    assert len(acts) == 256 and acts["conv1"].shape[0] == 256
    ref = collect_activations(model, data, ["conv1"], indices=np.arange(256))
    np.testing.assert_array_equal(acts["conv1"], ref["conv1"])


def test_shard_bounds_fall_on_chunks() -> None:
    from layerscope.capture_shards import shard_bounds

    assert shard_bounds(300, 2, 64) == [(0, 192), (192, 300)]
    assert shard_bounds(10, 4, 64) == [(0, 10)]
    b = shard_bounds(1000, 3, 100)
    assert b[0][0] == 0 and b[-1][1] == 1000 and all(a % 100 == 0 for a, _ in b)
    assert all(b[i][1] == b[i + 1][0] for i in range(len(b) - 1))


@pytest.mark.slow
def test_ray_sharded_capture_equals_single_process(mnist, tmp_path: Path) -> None:
    pytest.importorskip("ray")
    model, data = mnist
    names = leaf_names(model)
    single = collect_activations(model, data, names, batch_size=64, predictions=True, store="zarr", chunk_rows=64,
                                 out_dir=tmp_path / "single")
    model.train()
    params = {k: v.clone() for k, v in model.state_dict().items()}
    sharded = ls.collect_activations_sharded(model, data, names, tmp_path / "sharded", workers=2, batch_size=64,
                                             predictions=True, chunk_rows=64)
    assert sharded.meta["shards"] == [[0, 192], [192, 300]]
    for n in names:
        np.testing.assert_array_equal(np.asarray(sharded[n]), np.asarray(single[n]))
    np.testing.assert_array_equal(sharded.labels, single.labels)
    np.testing.assert_array_equal(sharded.sample_ids, single.sample_ids)
    np.testing.assert_array_equal(sharded.predictions, single.predictions)
    back = Activations.load(tmp_path / "sharded")
    assert isinstance(back[names[0]], LazyArray) and len(back) == N
    # the caller's model is as it was: training flag, parameters, no hooks left
    assert model.training and all(m.training for m in model.modules())
    assert all(torch.equal(v, params[k]) for k, v in model.state_dict().items())
    assert not any(m._forward_hooks for m in model.modules())


def test_cli_capture_into_a_float16_zarr_store(tmp_path: Path) -> None:
    from layerscope.capture_result import CaptureResult
    from layerscope.cli import main

    out = tmp_path / "out"
    args = ["capture", "-m", "mnist-cnn", "--data", "mnist:test", "--limit", "40", "--no-progress", "-o", str(out),
            "-l", "conv1,fc1", "--store", "zarr", "--dtype", "float16"]
    with pytest.raises(SystemExit) as ex:
        main(args)
    assert ex.value.code in (0, None)
    assert sorted(p.name for p in out.glob("*.zarr")) == ["layer000_conv1.zarr", "layer001_fc1.zarr"]
    res = CaptureResult.load(out)
    assert isinstance(res.activations["conv1"], LazyArray) and res.activations["conv1"].dtype == np.float16
    assert res.metrics["precision"] == "reduced: float16 storage"
    doc = json.loads((out / "result.json").read_text())
    assert doc["parameters"]["store"] == "zarr" and doc["parameters"]["dtype"] == "float16"
    ref = collect_activations(ls.load_model("mnist-cnn"), ls.load_dataset("mnist:test"), ["conv1"], indices=np.arange(40))
    np.testing.assert_allclose(np.asarray(res.activations["conv1"], dtype=np.float32), ref["conv1"], rtol=2**-11, atol=1e-4)
