"""Transfer grid (Yosinski et al. 2014): splits, copying / freezing, the feature cache, effects."""

from __future__ import annotations

import functools
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from layerscope.data import ArrayDataset, Normalization, load_dataset
from layerscope.exceptions import DataError, ParameterError
from layerscope.models import build_model
from layerscope.transfer import (
    PRESETS,
    Cell,
    ClassSplit,
    GridConfig,
    TransferStore,
    build_result,
    fit_network,
    k_best_mean,
    plan_cells,
    prepare_network,
    random_split,
    resolve_split,
    task_subset,
    write_outputs,
)
from layerscope.transfer.grid import MIN_BATCH, _batch_slices, cell_init_seed

ARCH = "convnet8:width=2,fc_width=8"
DIGITS = [str(i) for i in range(10)]


@functools.lru_cache(maxsize=None)
def _mnist(spec: str) -> ArrayDataset:
    return load_dataset(spec)  # type: ignore[return-value]


def mnist_task(n_train: int = 300, n_val: int = 100, which: str = "B") -> tuple[ArrayDataset, ArrayDataset]:
    split = resolve_split("mnist-0-4", DIGITS)
    return (
        task_subset(_mnist("mnist"), split, which, n_train, random_state=0),
        task_subset(_mnist("mnist:test"), split, which, n_val, random_state=0),
    )


def state(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def flags(model: nn.Module) -> tuple[bool, list[bool]]:
    return model.training, [p.requires_grad for p in model.parameters()]


# ---------------------------------------------------------------- splits


def test_presets_are_the_lecture_splits() -> None:
    s = resolve_split("mnist-0-4", DIGITS)
    assert s.a == (0, 1, 2, 3, 4) and s.b == (5, 6, 7, 8, 9)
    cifar = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
    s = resolve_split("cifar10-living", cifar)
    assert s.names("A") == ["bird", "cat", "deer", "dog", "frog", "horse"]
    assert s.names("B") == ["airplane", "automobile", "ship", "truck"]
    assert set(PRESETS) >= {"mnist-0-4", "cifar10-living"}
    with pytest.raises(ParameterError, match="needs classes .*'airplane'"):
        resolve_split("cifar10-living", DIGITS)


def test_random_split_is_a_seeded_partition() -> None:
    s0, s0b, s1 = random_split(DIGITS, 0), random_split(DIGITS, 0), random_split(DIGITS, 1)
    assert s0 == s0b and (s0.a, s0.b) != (s1.a, s1.b)
    assert sorted(s0.a + s0.b) == list(range(10)) and len(s0.a) == len(s0.b) == 5
    odd = random_split(["x", "y", "z"], 3)
    assert len(odd.a) == 2 and len(odd.b) == 1
    # different seeds give different splits over many draws
    assert len({random_split(DIGITS, s).a for s in range(20)}) > 10


def test_split_file_names_or_indices(tmp_path: Path) -> None:
    f = tmp_path / "odd_even.json"
    f.write_text(json.dumps({"name": "odd-even", "a": ["1", "3", 5, 7, 9], "b": [0, 2, 4, 6, 8]}))
    s = resolve_split(str(f), DIGITS)
    assert s.name == "odd-even" and s.a == (1, 3, 5, 7, 9) and s.b == (0, 2, 4, 6, 8)
    f.write_text(json.dumps({"a": ["1", "cat"], "b": [0]}))
    with pytest.raises(ParameterError, match="'cat' is not a class of this dataset"):
        resolve_split(str(f), DIGITS)
    f.write_text(json.dumps({"a": [1, 2], "b": [2, 3]}))
    with pytest.raises(ParameterError, match=r"classes \['2'\] are in both A and B"):
        resolve_split(str(f), DIGITS)
    f.write_text("{nope")
    with pytest.raises(DataError, match="not valid JSON"):
        resolve_split(str(f), DIGITS)
    with pytest.raises(DataError, match="does not exist"):
        resolve_split(str(tmp_path / "missing.json"), DIGITS)
    with pytest.raises(ParameterError, match="Unknown split 'halves'.*'random'"):
        resolve_split("halves", DIGITS)


def test_task_subset_renumbers_labels() -> None:
    ds = ArrayDataset(
        torch.arange(12, dtype=torch.float32).view(12, 1, 1, 1),
        torch.tensor([0, 1, 2, 3] * 3),
        classes=["a", "b", "c", "d"],
        normalization=Normalization(),
    )
    split = ClassSplit("x", (1, 3), (0, 2), ("a", "b", "c", "d"))
    sub = task_subset(ds, split, "A")
    assert sub.classes == ["b", "d"]
    assert sub.y.tolist() == [0, 1] * 3
    assert sub.x.flatten().tolist() == [1, 3, 5, 7, 9, 11]
    assert len(task_subset(ds, split, "B", limit=4)) == 4
    assert task_subset(ds, split, "B", limit=4).class_counts().tolist() == [2, 2]


# ---------------------------------------------------------------- grid plan and metric


def test_plan_puts_bases_first_and_counts_cells() -> None:
    cfg = GridConfig(arch=ARCH, data="mnist", seeds=(0, 1), epochs=1)
    cells = plan_cells(cfg, 8)
    assert len(cells) == 2 * 2 + 2 * 7 * 5
    assert [c.condition for c in cells[:4]] == ["baseA", "baseB", "baseA", "baseB"]
    assert not any(c.is_base for c in cells[4:])
    assert len({c.id for c in cells}) == len(cells)
    assert Cell("AnB+", 3, 1).id == "AnB+_n3_s1" and Cell("baseA", 0, 2).id == "baseA_s2"
    assert len({cell_init_seed(c) for c in cells}) == len(cells)
    with pytest.raises(ParameterError, match=r"n must be 1\.\.7"):
        plan_cells(GridConfig(arch=ARCH, data="mnist", layers=(8,)), 8)
    with pytest.raises(ParameterError, match="Unknown conditions"):
        GridConfig(arch=ARCH, data="mnist", conditions=("AnA",))
    assert GridConfig(arch=ARCH, data="mnist").val_data == "mnist:test"
    cfg2 = GridConfig.from_dict(json.loads(json.dumps(cfg.to_dict())))
    assert cfg2 == cfg


def test_k_best_mean_by_hand() -> None:
    assert k_best_mean([0.1, 0.5, 0.3, 0.4], 2) == pytest.approx(0.45)
    assert k_best_mean([0.1, 0.5], 10) == pytest.approx(0.3)
    assert k_best_mean([0.7], 1) == pytest.approx(0.7)


def test_batches_merge_a_tiny_remainder() -> None:
    assert [(s.start, s.stop) for s in _batch_slices(40, 16)] == [(0, 16), (16, 32), (32, 40)]
    assert [(s.start, s.stop) for s in _batch_slices(10, 4)] == [(0, 4), (4, 10)]
    n = 2 * 16 + MIN_BATCH - 1
    assert [(s.start, s.stop) for s in _batch_slices(n, 16)] == [(0, 16), (16, n)]
    assert [(s.start, s.stop) for s in _batch_slices(3, 16)] == [(0, 3)]


# ---------------------------------------------------------------- copying, freezing, fine-tuning


def test_copied_layers_are_bitwise_copies_and_base_is_untouched() -> None:
    torch.manual_seed(1)
    base = build_model(ARCH, (1, 28, 28), 5)
    base.train()
    before, fl = state(base), flags(base)
    for n in (1, 4, 7):
        net = prepare_network(ARCH, (1, 28, 28), 5, n, True, base, random_state=n)
        for i in range(1, 9):
            for (k, p), (_, q) in zip(getattr(net, f"layer{i}").state_dict().items(), getattr(base, f"layer{i}").state_dict().items()):
                if i <= n:
                    assert torch.equal(p, q), (n, i, k)
                else:
                    assert not torch.equal(p, q), (n, i, k)
        assert all(not p.requires_grad for i in range(1, n + 1) for p in getattr(net, f"layer{i}").parameters())
        assert all(p.requires_grad for i in range(n + 1, 9) for p in getattr(net, f"layer{i}").parameters())
    # the base's params, flags and training mode are unchanged
    assert all(torch.equal(before[k], v) for k, v in base.state_dict().items())
    assert flags(base) == fl
    # random-filter baseline: same seed, no base -> the same random layers as the re-initialised net
    a = prepare_network(ARCH, (1, 28, 28), 5, 3, True, None, random_state=9)
    b = prepare_network(ARCH, (1, 28, 28), 5, 3, False, None, random_state=9)
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters()))
    assert not any(p.requires_grad for p in a.layer3.parameters()) and all(p.requires_grad for p in b.layer3.parameters())
    with pytest.raises(ParameterError, match="n must be 0..7"):
        prepare_network(ARCH, (1, 28, 28), 5, 8, True, base, random_state=0)
    with pytest.raises(ParameterError, match="no numbered_layers"):
        prepare_network("mlp:width=4,depth=2", (1, 28, 28), 5, 1, True, None, random_state=0)


def test_frozen_layers_stay_fine_tuned_layers_change() -> None:
    tr, va = mnist_task(256, 64)
    torch.manual_seed(0)
    base = build_model(ARCH, (1, 28, 28), 5)
    frozen = prepare_network(ARCH, (1, 28, 28), 5, 3, True, base, random_state=4)
    tuned = prepare_network(ARCH, (1, 28, 28), 5, 3, False, base, random_state=4)
    f0, t0 = state(frozen), state(tuned)
    fit_network(frozen, tr, va, n_frozen=3, epochs=2, lr=0.05, random_state=4, cache=False)
    fit_network(tuned, tr, va, n_frozen=0, epochs=2, lr=0.05, random_state=4)
    for k, v in frozen.state_dict().items():
        if k.split(".")[0] in ("layer1", "layer2", "layer3"):
            assert torch.equal(v, f0[k]), k  # frozen: bitwise unchanged
            assert torch.equal(v, base.state_dict()[k])
        else:
            assert not torch.equal(v, f0[k]), k  # the layers above were trained
    for k, v in tuned.state_dict().items():
        assert not torch.equal(v, t0[k]), k  # fine-tuned copies change too
    with torch.no_grad():  # training works even when the caller switched autograd off
        log = fit_network(prepare_network(ARCH, (1, 28, 28), 5, 0, False, None, 1), tr, va, epochs=1, lr=0.05, random_state=1)
    assert log.train_loss[0] > 0
    with pytest.raises(ParameterError, match="still require grad"):
        fit_network(tuned, tr, va, n_frozen=2, epochs=1)


@pytest.mark.parametrize("n", [2, 5, 7])
def test_cached_features_train_the_same_top_bitwise(n: int) -> None:
    # 3 * 64 + 5 samples: a tail under MIN_BATCH is merged, as in both paths
    tr, va = mnist_task(197, 61)
    torch.manual_seed(0)
    base = build_model(ARCH, (1, 28, 28), 5)
    nets, logs = [], []
    for cache in (True, False):
        net = prepare_network(ARCH, (1, 28, 28), 5, n, True, base, random_state=11)
        logs.append(fit_network(net, tr, va, n_frozen=n, epochs=3, lr=0.05, batch_size=64, random_state=11, cache=cache))
        nets.append(net)
    assert logs[0].cached and not logs[1].cached
    for (k, p), (_, q) in zip(nets[0].state_dict().items(), nets[1].state_dict().items()):
        assert torch.equal(p, q), k
    assert logs[0].val_accuracy == logs[1].val_accuracy and logs[0].train_loss == logs[1].train_loss
    # and the top really trained
    assert not torch.equal(nets[0].layer8[0].weight, prepare_network(ARCH, (1, 28, 28), 5, n, True, base, 11).layer8[0].weight)


def test_cache_is_skipped_for_dropout_and_over_budget() -> None:
    tr, va = mnist_task(64, 32)
    arch = "convnet8:width=2,fc_width=8,dropout=0.5"
    base = build_model(arch, (1, 28, 28), 5)
    net = prepare_network(arch, (1, 28, 28), 5, 7, True, base, random_state=0)
    assert not fit_network(net, tr, va, n_frozen=7, epochs=1, random_state=0).cached  # dropout in layer6/7
    net = prepare_network(arch, (1, 28, 28), 5, 5, True, base, random_state=0)
    assert fit_network(net, tr, va, n_frozen=5, epochs=1, random_state=0).cached
    net = prepare_network(arch, (1, 28, 28), 5, 1, True, base, random_state=0)
    assert not fit_network(net, tr, va, n_frozen=1, epochs=1, random_state=0, cache_budget_mb=0.01).cached


# ---------------------------------------------------------------- effects from a hand-made store


def _fake_store(tmp_path: Path, values: dict[tuple[str, int, int], float]) -> TransferStore:
    cfg = GridConfig(arch=ARCH, data="mnist", split="mnist-0-4", seeds=(0, 1), epochs=1, layers=(1, 2))
    store = TransferStore.create(tmp_path / "g", cfg, 8)
    for (cond, n, seed), v in values.items():
        cell = Cell(cond, n, seed)
        store.put({"cell": cell.id, "condition": cond, "n": n, "seed": seed, "metric": v, "val_accuracy": [v], "split": {"name": "x"}})
    return store


def test_effects_are_paired_differences(tmp_path: Path) -> None:
    vals = {("baseA", 0, 0): 0.9, ("baseB", 0, 0): 0.80, ("baseA", 0, 1): 0.9, ("baseB", 0, 1): 0.90}
    for s, d in ((0, 0.0), (1, 0.1)):
        vals.update({("BnB", 1, s): 0.78 + d, ("AnB", 1, s): 0.70 + d, ("AnB+", 1, s): 0.83 + d, ("BnB+", 1, s): 0.8, ("random", 1, s): 0.5})
        vals.update({("BnB", 2, s): 0.75 + d, ("AnB", 2, s): 0.60 + d, ("AnB+", 2, s): 0.82 + d})
    res = build_result(_fake_store(tmp_path, vals))
    e1, e2 = res.effects
    assert e1["co_adaptation"]["per_seed"] == {0: pytest.approx(0.02), 1: pytest.approx(0.02)}
    assert e1["specificity"]["mean"] == pytest.approx(0.08) and e1["specificity"]["std"] == pytest.approx(0.0, abs=1e-12)
    assert e1["fine_tuning_boost"]["per_seed"] == {0: pytest.approx(0.03), 1: pytest.approx(0.03)}
    assert e2["specificity"]["mean"] == pytest.approx(0.15)
    assert e2["co_adaptation"]["min"] == pytest.approx(0.05) and e2["co_adaptation"]["max"] == pytest.approx(0.05)
    summ = {(s["condition"], s["n"]): s for s in res.summary}
    assert summ[("baseB", 0)]["mean"] == pytest.approx(0.85) and summ[("baseB", 0)]["std"] == pytest.approx(np.std([0.8, 0.9], ddof=1))
    assert res.metrics["max_specificity_n"] == 2 and res.metrics["max_specificity"] == pytest.approx(0.15)
    assert res.cells_done == len(vals) and res.cells_total == 4 + 2 * 2 * 5 and not res.complete


def test_outputs_rebuilt_from_store_alone(tmp_path: Path) -> None:
    vals = {("baseB", 0, 0): 0.8, ("BnB", 1, 0): 0.7, ("AnB", 1, 0): 0.6, ("AnB+", 1, 0): 0.85}
    store = _fake_store(tmp_path, vals)
    write_outputs(TransferStore(store.directory))
    doc = json.loads((store.directory / "result.json").read_text())
    assert doc["analysis"] == "transfer" and doc["figures"][0]["path"] == "transfer.png"
    assert {(r["condition"], r["n"], r["seed"]): r["metric"] for r in doc["table"]} == vals
    assert doc["effects"][0]["specificity"]["mean"] == pytest.approx(0.1)
    assert doc["effects"][1]["specificity"] is None  # n = 2 has no cells yet
    csv_rows = (store.directory / "transfer.csv").read_text().strip().splitlines()
    assert csv_rows[0].startswith("cell,n,condition,seed,metric") and len(csv_rows) == 1 + len(vals)
    from PIL import Image

    img = np.asarray(Image.open(store.directory / "transfer.png").convert("RGB"))
    assert img.shape[0] > 400 and img.shape[1] > 400 and img.std() > 10
    # the selffer (blue) and transfer (red) colours are drawn
    assert ((img[..., 2] > 150) & (img[..., 0] < 80)).sum() > 20
    assert ((img[..., 0] > 150) & (img[..., 1] < 60) & (img[..., 2] < 80)).sum() > 20


def test_store_refuses_a_different_grid(tmp_path: Path) -> None:
    cfg = GridConfig(arch=ARCH, data="mnist", seeds=(0,), epochs=1)
    TransferStore.create(tmp_path, cfg, 8)
    TransferStore.create(tmp_path, cfg, 8)  # same grid: fine
    with pytest.raises(ParameterError, match="different transfer grid.*epochs"):
        TransferStore.create(tmp_path, GridConfig(arch=ARCH, data="mnist", seeds=(0,), epochs=2), 8)
    with pytest.raises(DataError, match="not a transfer grid folder"):
        TransferStore(tmp_path / "nothing")
