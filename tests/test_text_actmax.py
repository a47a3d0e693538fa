"""Activation maximization for text (issue 14, analysis 4) on a tiny random BERT."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from text_fixtures import transformers, write_tiny_bert  # noqa: F401  (skips without transformers)

from layerscope.cli import app
from layerscope.data import load_dataset
from layerscope.exceptions import ParameterError
from layerscope.loading import load_model
from layerscope.text import TextMaxResult, text_maximize

DATA = "wordnet:per_class=15:classes=animal,plant,food"
LAYER = "encoder.layer.1"


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_tiny_bert(tmp_path_factory.mktemp("hf") / "tiny")


@pytest.fixture(scope="module")
def model(folder: Path) -> torch.nn.Module:
    return load_model(f"hf:{folder}")


@pytest.fixture(scope="module")
def result(model: torch.nn.Module) -> TextMaxResult:
    return text_maximize(model, LAYER, [0, 3, 7], steps=40, restarts=2, length=6, data=load_dataset(DATA), data_spec=DATA)


def plain(model: torch.nn.Module, ids: list[int]) -> torch.Tensor:
    """The layer's token states of ``[CLS] ids [SEP]`` by a plain forward pass (hidden_states[i + 1] = block i)."""
    tok = model.layerscope_tokenizer  # type: ignore[attr-defined]
    real = torch.tensor([[tok.cls_token_id, *ids, tok.sep_token_id]])
    with torch.no_grad():
        out = model(input_ids=real, attention_mask=torch.ones_like(real), output_hidden_states=True)
    return out.hidden_states[int(LAYER.rsplit(".", 1)[1]) + 1][0]


def test_objective_increases(result: TextMaxResult) -> None:
    tr = result.traces
    assert tr.shape == (3, 2, 40)
    # every restart of every unit ends well above where it started, and the best value is reached
    assert np.all(tr[:, :, -5:].mean(axis=2) > tr[:, :, 0] + 0.1)
    for j, u in enumerate(result.units):
        assert u["embedding_activation"] >= tr[j].max() - 1e-6


def test_real_tokens_equal_plain_forward(model: torch.nn.Module, result: TextMaxResult) -> None:
    for u in result.units:
        h = plain(model, u["token_ids"])
        want = float(h[1:-1, u["unit"]].mean())
        assert abs(u["token_activation"] - want) < 1e-5
        assert len(u["token_ids"]) == 6


def test_embedding_activation_is_that_of_the_saved_embeddings(model: torch.nn.Module, result: TextMaxResult) -> None:
    emb = model.get_input_embeddings().weight.detach()  # type: ignore[operator, union-attr]
    tok = model.layerscope_tokenizer  # type: ignore[attr-defined]
    for j, u in enumerate(result.units):
        seq = torch.cat([emb[[tok.cls_token_id]], torch.from_numpy(result.embeddings[j]), emb[[tok.sep_token_id]]])[None]
        with torch.no_grad():
            h = model(inputs_embeds=seq, attention_mask=torch.ones(1, seq.shape[1]), output_hidden_states=True).hidden_states[2][0]
        assert abs(float(h[1:-1, u["unit"]].mean()) - u["embedding_activation"]) < 1e-4


def test_norm_constraint_and_decoding(model: torch.nn.Module, result: TextMaxResult) -> None:
    table = model.get_input_embeddings().weight.detach()  # type: ignore[operator, union-attr]
    tok = model.layerscope_tokenizer  # type: ignore[attr-defined]
    special = set(tok.all_special_ids)
    cand = [i for i in range(table.shape[0]) if i not in special]
    assert result.radius == pytest.approx(float(table[cand].norm(dim=1).median()), rel=1e-6)
    norms = np.linalg.norm(result.embeddings, axis=-1)
    np.testing.assert_allclose(norms, result.radius, rtol=1e-5)
    # nearest candidate by cosine, by hand
    normed = torch.nn.functional.normalize(table[cand], dim=1)
    for j, u in enumerate(result.units):
        cos = torch.nn.functional.normalize(torch.from_numpy(result.embeddings[j]), dim=1) @ normed.T
        assert u["token_ids"] == [cand[int(i)] for i in cos.argmax(1)]
        assert not special & set(u["token_ids"])


def test_ball_keeps_inside_and_token_pooling(model: torch.nn.Module) -> None:
    r = text_maximize(model, LAYER, [2], steps=15, restarts=1, length=4, norm="ball", radius=0.5, pooling="token", position=2)
    assert np.all(np.linalg.norm(r.embeddings, axis=-1) <= 0.5 + 1e-5)
    u = r.units[0]
    assert abs(u["token_activation"] - float(plain(model, u["token_ids"])[3, 2])) < 1e-5


def test_data_top1_is_max_over_texts(model: torch.nn.Module, result: TextMaxResult) -> None:
    data = load_dataset(DATA)
    tok = model.layerscope_tokenizer  # type: ignore[attr-defined]
    special = set(tok.all_special_ids)
    best = {u["unit"]: -np.inf for u in result.units}
    for i in range(len(data)):
        enc = tok([data[i][0]], return_tensors="pt")
        with torch.no_grad():
            h = model(**enc, output_hidden_states=True).hidden_states[2][0]
        keep = [t for t, x in enumerate(enc["input_ids"][0].tolist()) if x not in special]
        for unit in best:
            best[unit] = max(best[unit], float(h[keep, unit].mean()))
    for u in result.units:
        assert u["data_top1"] == pytest.approx(best[u["unit"]], abs=1e-5)
        assert isinstance(u["data_top1_text"], str)


def test_seeded_and_model_unchanged(model: torch.nn.Module) -> None:
    model.train()
    flags = {n: p.requires_grad for n, p in model.named_parameters()}
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    state = torch.random.get_rng_state()
    a = text_maximize(model, LAYER, 2, steps=5, restarts=1, length=3, seed=4)
    b = text_maximize(model, LAYER, 2, steps=5, restarts=1, length=3, seed=4)
    assert torch.equal(state, torch.random.get_rng_state())
    assert model.training and all(m.training for m in model.modules())
    assert flags == {n: p.requires_grad for n, p in model.named_parameters()}
    assert all(torch.equal(before[n], p) and p.grad is None for n, p in model.named_parameters())
    np.testing.assert_array_equal(a.embeddings, b.embeddings)
    assert a.units == b.units
    model.eval()


def test_refuses_bad_input(model: torch.nn.Module) -> None:
    for kw in ({"norm": "cube"}, {"pooling": "max"}, {"pooling": "token", "position": 8}, {"steps": 0}, {"lr": -1.0}):
        with pytest.raises(ParameterError):
            text_maximize(model, LAYER, [0], length=8, **kw)  # type: ignore[arg-type]
    with pytest.raises(ParameterError, match="outside"):
        text_maximize(model, LAYER, [32], steps=1)
    with pytest.raises(ParameterError, match="tokenizer"):
        text_maximize(torch.nn.Linear(2, 2), "weight", [0])


def test_api_equals_cli_and_round_trip(folder: Path, model: torch.nn.Module, tmp_path: Path) -> None:
    from folders import assert_same_folder

    res = text_maximize(model, LAYER, [1, 4], steps=8, restarts=2, length=4, data=load_dataset(DATA), data_spec=DATA)
    res.save(tmp_path / "api")
    r = CliRunner().invoke(app, ["text-maximize", "-m", f"hf:{folder}", "-l", LAYER, "--units", "1,4", "--steps", "8",
                                 "--length", "4", "--data", DATA, "--no-progress", "--out", str(tmp_path / "cli")])
    assert r.exit_code == 0, r.output
    assert "unit 4: embeddings" in r.output
    assert_same_folder(tmp_path / "cli", tmp_path / "api")
    doc = json.loads((tmp_path / "api" / "result.json").read_text())
    assert doc["analysis"] == "text_maximize" and doc["metrics"]["n_units"] == 2
    again = TextMaxResult.load(tmp_path / "api")
    assert again.units == res.units and again.radius == res.radius
    np.testing.assert_array_equal(again.embeddings, res.embeddings)
    again.save(tmp_path / "again")
    assert_same_folder(tmp_path / "api", tmp_path / "again")
    assert len(repr(res)) < 300 and "array(" not in repr(res)
