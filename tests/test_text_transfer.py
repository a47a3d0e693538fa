"""The transfer grid on text (Yosinski et al. 2014) on a tiny random BERT, checked against plain forwards."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from folders import assert_same_folder
from text_fixtures import transformers, write_tiny_bert  # noqa: F401  (skips without transformers)

from layerscope.data import load_dataset
from layerscope.exceptions import DataError, ModelSpecError, ParameterError
from layerscope.loading import load_model
from layerscope.text import TextTransferResult, text_transfer
from layerscope.text.transfer import (_cache, _Cell, _fit, _Task, _val_split, encoder_parts, masked_mean, parse_task_b,
                                      prefix_states, resolve_text_tasks)

CLASSES = ["noun.animal", "noun.artifact", "noun.body", "noun.food", "noun.person", "noun.plant"]


@pytest.fixture(autouse=True)
def one_thread() -> object:
    """Tiny matrices: one torch thread (two threads on a loaded 2-core machine are 20x slower here)."""
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_tiny_bert(tmp_path_factory.mktemp("hf") / "tiny")


@pytest.fixture()
def tiny(folder: Path) -> torch.nn.Module:
    return load_model(f"hf:{folder}")


@pytest.fixture(scope="module")
def splits() -> tuple[object, object]:
    spec = "wordnet:per_class=6:classes=animal,artifact,body,food,person,plant"
    return load_dataset(f"{spec}:train"), load_dataset(f"{spec}:test")


TEXTS = ["a small dog", "the tree with a long root and many green leaf", "a knife", "used to cut bread or meat or cheese"]


@pytest.mark.parametrize("n", [0, 1, 2])
def test_cached_and_uncached_logits_equal_the_models_own_forward(tiny: torch.nn.Module, n: int) -> None:
    tok = tiny.layerscope_tokenize
    cell = _Cell(tiny, n, 3, seed=0)
    cell.train_mode(False)
    b = tok(TEXTS)
    with torch.no_grad():
        hs = cell.net(**b, output_hidden_states=True).hidden_states  # the model's own forward
        want = cell.head(masked_mean(hs[-1], b["attention_mask"]))
        # hand check of the pooling: mean over each text's real tokens
        first = hs[-1][2, : int(b["attention_mask"][2].sum())].mean(0)
        assert torch.allclose(masked_mean(hs[-1], b["attention_mask"])[2], first, atol=1e-6)
        base, emb, layers = encoder_parts(cell.net)
        assert (prefix_states(base, emb, layers, b, n) - hs[n]).abs().max() < 1e-5
        feats = _cache(tok, base, emb, layers, TEXTS, n, batch_size=3)  # other padding than one batch of 4
        cached = cell.logits(tok, TEXTS, feats, [0, 1, 2, 3])
        plain = cell.logits(tok, TEXTS, None, [0, 1, 2, 3])
    assert [s.shape[0] for s in feats.states] == b["attention_mask"].sum(1).tolist()
    assert (cached - want).abs().max() < 1e-5 and (plain - want).abs().max() < 1e-5


def test_training_changes_only_the_layers_above_n(tiny: torch.nn.Module) -> None:
    labels = np.array([0, 1, 0, 1] * 4)
    task = _Task(TEXTS * 4, labels, ["x", "y"])
    cell = _Cell(tiny, 1, 2, seed=0)
    before = {k: v.clone() for k, v in cell.net.state_dict().items()}
    tr, val = _val_split(labels, 0.25, 0)
    _fit(cell, tiny.layerscope_tokenize, task, tr, val, task, None, epochs=2, lr=1e-2, head_lr=1e-2, batch_size=4, seed=0)
    after = cell.net.state_dict()
    frozen = [k for k in before if k.startswith(("embeddings.", "encoder.layer.0."))]
    upper = [k for k in before if k.startswith("encoder.layer.1.") and k.endswith("weight")]
    assert frozen and upper
    assert all(torch.equal(before[k], after[k]) for k in frozen)
    assert all(not torch.equal(before[k], after[k]) for k in upper)


def _snapshot(model: torch.nn.Module) -> tuple[dict[str, torch.Tensor], list[bool], bool, torch.Tensor]:
    return ({k: v.clone() for k, v in model.state_dict().items()}, [p.requires_grad for p in model.parameters()],
            model.training, torch.random.get_rng_state())


def test_grid_runs_leaves_the_model_alone_and_caching_changes_nothing(tiny: torch.nn.Module, splits: tuple[object, object],
                                                                     tmp_path: Path) -> None:
    train, test = splits
    state, grads, training, rng = _snapshot(tiny)
    kw = dict(task_a=["body", "food"], seeds=(0, 1), layers=(0, 2), epochs=2, lr=1e-3, batch_size=8, data_spec="wn:train",
              test_data_spec="wn:test")
    r = text_transfer(tiny, train, test, **kw)  # type: ignore[arg-type]
    after = _snapshot(tiny)
    assert all(torch.equal(state[k], after[0][k]) for k in state) and after[1] == grads and after[2] == training
    assert torch.equal(after[3], rng)  # the global RNG is left as it was
    assert not any(m._forward_hooks or m._forward_pre_hooks for m in tiny.modules())
    assert r.task_b == {"living": ["noun.animal", "noun.person", "noun.plant"], "non-living": ["noun.artifact"]}
    assert r.task_a == ["noun.body", "noun.food"] and r.n_layers == 2
    assert len(r.table) == 2 * 2 * 2 and len(r.base_a) == 2
    assert {(x["condition"], x["n"]) for x in r.summary} == {(c, n) for c in ("PnB", "AnB") for n in (0, 2)}
    assert "masked mean" in r.parameters["pooling"] and r.metrics["n_test_b"] == 4 * 1 and r.metrics["n_train_b"] == 4 * 4
    for row in r.table:  # reported epoch is the best validation epoch
        assert row["val_accuracy"] == max(row["val_curve"]) and row["best_epoch"] == row["val_curve"].index(row["val_accuracy"])
    e = next(x for x in r.effects if x["n"] == 2)["finetuning_effect"]
    assert e["per_seed"]["1"] == pytest.approx(r.accuracy("AnB", 2, 1) - r.accuracy("PnB", 2, 1))
    # the same networks without the cache: the same numbers
    plain = text_transfer(tiny, train, test, **{**kw, "cache": False, "bases": ("pretrained",)})  # type: ignore[arg-type]
    assert len(plain.table) == 4 and not plain.table[0]["cached"]
    for a, b in zip(r.table, plain.table):
        assert (a["condition"], a["n"], a["seed"]) == (b["condition"], b["n"], b["seed"])
        assert a["val_curve"] == b["val_curve"] and a["test_accuracy"] == b["test_accuracy"]
        assert np.allclose(a["train_loss"], b["train_loss"], atol=1e-5)
    # save / load round trip
    r.save(tmp_path / "a")
    doc = json.loads((tmp_path / "a" / "result.json").read_text())
    assert doc["analysis"] == "text_transfer" and (tmp_path / "a" / "text_transfer.png").stat().st_size > 1000
    again = TextTransferResult.load(tmp_path / "a")
    assert again.table == r.table and again.task_b == r.task_b and len(repr(again)) < 300
    again.save(tmp_path / "b")
    assert_same_folder(tmp_path / "a", tmp_path / "b")


def test_bad_tasks_and_parameters_are_refused(tiny: torch.nn.Module, splits: tuple[object, object]) -> None:
    assert resolve_text_tasks(CLASSES) == (
        ["noun.body", "noun.food"], {"living": ["noun.animal", "noun.person", "noun.plant"], "non-living": ["noun.artifact"]})
    with pytest.raises(DataError, match="non-living"):
        resolve_text_tasks(["noun.animal", "noun.body", "noun.food", "noun.plant"])  # no non-living lexname
    with pytest.raises(DataError, match="not a class"):
        resolve_text_tasks(CLASSES, {"a": ["animal"], "b": ["rock"]})
    with pytest.raises(DataError, match="disjoint"):
        resolve_text_tasks(CLASSES, {"a": ["animal"], "b": ["plant"]}, ["animal", "food"])
    with pytest.raises(DataError, match="two task B groups"):
        resolve_text_tasks(CLASSES, {"a": ["animal"], "b": ["noun.animal"]})
    with pytest.raises(DataError, match="at least two classes"):
        resolve_text_tasks(CLASSES, {"a": ["animal", "person"], "b": ["artifact", "food", "body"]})
    assert resolve_text_tasks(CLASSES, {"a": ["animal", "person"], "b": ["artifact", "food", "body"]}, need_a=False)[0] == ["noun.plant"]
    for bad in ("living", "living=animal", "=animal;b=plant", "a=animal;a=plant", "a=;b=plant"):
        with pytest.raises(ParameterError):
            parse_task_b(bad)
    train, test = splits
    with pytest.raises(DataError, match="Every test text"):
        text_transfer(tiny, train, train)
    with pytest.raises(ParameterError, match="layers"):
        text_transfer(tiny, train, test, layers=[3])
    with pytest.raises(ParameterError, match="bases"):
        text_transfer(tiny, train, test, bases=("random",))
    with pytest.raises(ModelSpecError, match="BERT-like"):
        text_transfer(torch.nn.Linear(2, 2), train, test)


def test_cli_runs_and_gives_one_line_errors(folder: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from layerscope.cli import main

    spec = "wordnet:per_class=6:classes=animal,artifact,body,food,person,plant"
    common = ["text-transfer", "-m", f"hf:{folder}", "--data", f"{spec}:train", "--test-data", f"{spec}:test", "--no-progress"]
    with pytest.raises(SystemExit) as e:
        main([*common, "--out", str(tmp_path / "ok"), "--bases", "pretrained", "--layers", "1,2", "--epochs", "1"])
    assert e.value.code in (0, None)
    r = TextTransferResult.load(tmp_path / "ok")
    assert [(x["condition"], x["n"]) for x in r.table] == [("PnB", 1), ("PnB", 2)] and r.base_a == []
    capsys.readouterr()
    cases = [
        (["--task-b", "living"], "GROUP=CLASS"),
        (["--task-b", "a=animal;b=rock"], "not a class of the data"),
        (["--seeds", "x"], "comma-separated integers"),
        (["--layers", "0,9"], "0..2"),
        (["--test-data", f"{spec}:train"], "Every test text"),
    ]
    for extra, text in cases:
        with pytest.raises(SystemExit) as e:
            main([*common, "--out", str(tmp_path / "bad"), *extra])
        assert e.value.code == 2
        err = capsys.readouterr().err
        lines = [ln for ln in err.splitlines() if ln.strip() and "Loading weights" not in ln]  # transformers' own bar
        assert len(lines) == 1 and lines[0].startswith("error:") and text in lines[0], err
    assert not (tmp_path / "bad").exists()
