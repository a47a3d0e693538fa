"""Transfer grid: epochs chosen on held-out training data, never on the reported test data."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from layerscope.exceptions import DataError, ParameterError
from layerscope.transfer import Cell, CellTask, GridConfig, TransferStore, run_cell
from layerscope.transfer.grid import holdout_split, select_epochs, stop_epoch, task_holdout

ARCH = "convnet8:width=2,fc_width=8"


def test_select_epochs_and_metric_by_hand() -> None:
    held = [0.50, 0.90, 0.70, 0.90, 0.60]
    test = [0.95, 0.20, 0.80, 0.30, 0.99]  # disagrees with the held-out data on purpose
    assert select_epochs(held, 1) == [1]  # a tie goes to the earlier epoch
    assert select_epochs(held, 2) == [1, 3]
    assert select_epochs(held, 3) == [1, 2, 3]
    assert select_epochs(held, 10) == [0, 1, 2, 3, 4]
    chosen = select_epochs(held, 2)
    assert np.mean([test[i] for i in chosen]) == pytest.approx(0.25)  # not the 0.97 of the 2 best test epochs
    with pytest.raises(ParameterError):
        select_epochs([], 1)


def test_stop_epoch_by_hand() -> None:
    acc = [0.5, 0.6, 0.6, 0.55, 0.58]
    assert [stop_epoch(acc[:e], 2) for e in range(1, 6)] == [False, False, False, True, True]
    assert [stop_epoch(acc[:e], 3) for e in range(1, 6)] == [False, False, False, False, True]
    assert not stop_epoch(acc, None)


def test_holdout_split_is_seeded_disjoint_and_stratified() -> None:
    y = np.repeat([0, 1, 2], [40, 40, 20])
    keep, held = holdout_split(y, 0.1, seed=3)
    assert len(held) == 10 and len(keep) == 90
    assert set(keep).isdisjoint(held) and sorted([*keep, *held]) == list(range(100))
    assert np.bincount(y[held]).tolist() == [4, 4, 2]
    assert np.array_equal(holdout_split(y, 0.1, seed=3)[1], held)
    assert not np.array_equal(holdout_split(y, 0.1, seed=4)[1], held)
    with pytest.raises(DataError, match="leaves none to train on"):
        holdout_split(np.array([0, 1]), 0.9, seed=0)


def test_config_checks_and_legacy_grids() -> None:
    with pytest.raises(ParameterError, match="holdout must be a fraction"):
        GridConfig(arch=ARCH, data="mnist", holdout=1.0)
    with pytest.raises(ParameterError, match="never stop on the reported test data"):
        GridConfig(arch=ARCH, data="mnist", holdout=0.0, patience=3)
    cfg = GridConfig(arch=ARCH, data="mnist", patience=4)
    assert cfg.selection.startswith("held-out train split (fraction 0.1)") and "patience 4" in cfg.selection
    assert GridConfig.from_dict(cfg.to_dict()) == cfg
    old = cfg.to_dict()
    del old["holdout"], old["patience"]  # a grid.json written before held-out selection existed
    legacy = GridConfig.from_dict(old)
    assert legacy.holdout == 0.0 and "optimistic" in legacy.selection


def _write_npz(path: Path, x: np.ndarray, y: np.ndarray) -> str:
    np.savez(path, x=x, y=y, classes=np.array(["a0", "a1", "b0", "b1"]))
    return f"npz:{path}"


@pytest.fixture
def blobs(tmp_path: Path) -> dict[str, str]:
    """4 classes of noisy 8x8 images (A = 0, 1; B = 2, 3), a test set, and the same test images
    with B's two labels swapped (a test set that disagrees with the held-out data)."""
    rng = np.random.default_rng(0)
    proto = rng.normal(size=(4, 8, 8))

    def make(n: int) -> tuple[np.ndarray, np.ndarray]:
        y = np.repeat(np.arange(4), n // 4)
        x = (proto[y] + 1.5 * rng.normal(size=(len(y), 8, 8))).astype(np.float32)[:, None]
        return x, y

    xtr, ytr = make(400)
    xte, yte = make(200)
    swapped = np.where(yte == 2, 3, np.where(yte == 3, 2, yte))
    split = tmp_path / "split.json"
    split.write_text(json.dumps({"name": "ab", "a": ["a0", "a1"], "b": ["b0", "b1"]}))
    return {
        "train": _write_npz(tmp_path / "train.npz", xtr, ytr),
        "test": _write_npz(tmp_path / "test.npz", xte, yte),
        "swapped": _write_npz(tmp_path / "swapped.npz", xte, swapped),
        "split": str(split),
    }


def test_chosen_epochs_follow_the_held_out_data_never_the_test_data(blobs: dict[str, str]) -> None:
    recs = []
    for val in ("test", "swapped"):
        cfg = GridConfig(arch="convnet8:width=4,fc_width=16", data=blobs["train"], val_data=blobs[val], split=blobs["split"],
                         seeds=(0,), epochs=10, lr=0.01, batch_size=32, k_best=2, holdout=0.2, patience=3)
        recs.append(run_cell(CellTask(cfg.to_dict(), Cell("baseB", 0, 0))))
    a, b = recs
    # the test data changed, nothing the selection sees did: same training, same held-out curve, same epochs
    assert a["holdout_accuracy"] == b["holdout_accuracy"] and a["train_loss"] == b["train_loss"]
    assert a["selected_epochs"] == b["selected_epochs"] and a["epochs_run"] == b["epochs_run"]
    assert a["n_train"] == 160 and a["n_holdout"] == 40 and a["n_val"] == 100
    for r in recs:
        held, test = r["holdout_accuracy"], r["val_accuracy"]
        assert r["selected_epochs"] == [i + 1 for i in select_epochs(held, 2)]
        assert r["metric"] == pytest.approx(np.mean([test[e - 1] for e in r["selected_epochs"]]))
        assert r["selection"].startswith("held-out train split (fraction 0.2)")
        # early stopping: stopped on the held-out curve, not before
        assert stop_epoch(held, 3) or r["epochs_run"] == 10
        assert not any(stop_epoch(held[:e], 3) for e in range(1, len(held)))
    # the base keeps the weights of its best held-out epoch, not of its last one: by hand
    from layerscope.models import build_model

    _tr, ho, va, _split = task_holdout(cfg, 0, "B")
    assert ho is not None
    net = build_model("convnet8:width=4,fc_width=16", (1, 8, 8), 2)
    net.load_state_dict(b["state"])
    net.eval()
    best = select_epochs(b["holdout_accuracy"], 1)[0]
    assert b["weights_epoch"] == best + 1 < b["epochs_run"]  # so the last epoch's weights would differ
    with torch.no_grad():
        assert float((net(ho.x).argmax(1) == ho.y).float().mean()) == pytest.approx(b["holdout_accuracy"][best])
        assert float((net(va.x).argmax(1) == va.y).float().mean()) == pytest.approx(b["val_accuracy"][best])
    # the swapped labels make the test accuracies mirror images (acc' = 1 - acc on B's 2 classes),
    # so the chosen epochs are the worst ones for the swapped test data: the choice ignored it
    assert np.allclose(np.add(a["val_accuracy"], b["val_accuracy"]), 1.0)
    assert b["metric"] < max(b["val_accuracy"]) and a["metric"] > 0.7


def test_holdout_is_never_trained_on_and_shared_by_a_seed(blobs: dict[str, str]) -> None:
    cfg = GridConfig(arch=ARCH, data=blobs["train"], val_data=blobs["test"], split=blobs["split"], seeds=(0,), epochs=1)
    tr, ho, _va, _split = task_holdout(cfg, 0, "B")
    assert ho is not None
    ids_tr, ids_ho = set(np.asarray(tr.sample_ids).tolist()), set(np.asarray(ho.sample_ids).tolist())
    assert ids_tr.isdisjoint(ids_ho) and len(ids_tr) + len(ids_ho) == 200
    tr2, ho2, _, _ = task_holdout(GridConfig(**{**cfg.to_dict(), "lr": 0.5, "seeds": (0,)}), 0, "B")
    assert set(np.asarray(ho2.sample_ids).tolist()) == ids_ho  # depends on the data, fraction and seed only


def test_resume_refuses_another_selection(tmp_path: Path) -> None:
    cfg = GridConfig(arch=ARCH, data="mnist", seeds=(0,), epochs=2, patience=1)
    store = TransferStore.create(tmp_path / "g", cfg, 8)
    store.check_matches({"holdout": 0.1, "patience": 1})
    with pytest.raises(ParameterError, match="holdout: stored 0.1, given 0.2"):
        store.check_matches({"holdout": 0.2})
    with pytest.raises(ParameterError, match="different transfer grid.*holdout"):
        TransferStore.create(tmp_path / "g", GridConfig(arch=ARCH, data="mnist", seeds=(0,), epochs=2, holdout=0.0), 8)


def test_cli_resume_refuses_another_holdout_or_patience(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from layerscope.cli import app

    TransferStore.create(tmp_path / "g", GridConfig(arch=ARCH, data="mnist", seeds=(0,), epochs=2, patience=2), 8)
    for opt, value, stored in (("--holdout", "0.3", "0.1"), ("--patience", "5", "2")):
        res = CliRunner().invoke(app, ["transfer", "--resume", str(tmp_path / "g"), opt, value, "--no-progress"])
        assert isinstance(res.exception, ParameterError), res.output
        assert f"{opt[2:]}: stored {stored}" in str(res.exception)
    assert not list((tmp_path / "g" / "cells").iterdir())  # nothing was trained
