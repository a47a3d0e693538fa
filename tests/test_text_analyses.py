"""Text analyses on a tiny random BERT, each checked against a hand-written loop over plain forwards."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from text_fixtures import transformers, write_tiny_bert  # noqa: F401  (skips without transformers)

from layerscope.data import load_dataset
from layerscope.exceptions import DataError, ParameterError
from layerscope.loading import load_model
from layerscope.projection import neighborhood_hit
from layerscope.similarity import linear_probe
from layerscope.text import (TextOcclusionResult, TextSeparabilityResult, TextTopKResult, default_text_layers,
                             reinitialized_copy, text_occlusion, text_separability, text_topk)
from layerscope.text.separability import pooled_states

LAYERS = ["embeddings", "encoder.layer.0", "encoder.layer.1"]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> torch.nn.Module:
    return load_model(f"hf:{write_tiny_bert(tmp_path_factory.mktemp('hf') / 'tiny')}")


@pytest.fixture(scope="module")
def glosses() -> object:
    return load_dataset("wordnet:per_class=15:classes=animal,plant,food")


def _hand_pooled(model: torch.nn.Module, texts: list[str]) -> dict[str, dict[str, np.ndarray]]:
    """Masked mean and first token of every hidden state, one text at a time (no padding)."""
    out: dict[str, dict[str, list[np.ndarray]]] = {"mean": {n: [] for n in LAYERS}, "cls": {n: [] for n in LAYERS}}
    with torch.no_grad():
        for text in texts:
            b = model.layerscope_tokenize([text])
            hs = model(**b, output_hidden_states=True).hidden_states  # [0] embeddings, [i] block i-1
            for j, name in enumerate(LAYERS):
                out["mean"][name].append(hs[j][0].mean(0).numpy())
                out["cls"][name].append(hs[j][0, 0].numpy())
    return {p: {n: np.stack(v) for n, v in d.items()} for p, d in out.items()}


def _params(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def test_default_layers_and_reinitialized_copy(tiny: torch.nn.Module) -> None:
    assert default_text_layers(tiny) == LAYERS
    before = _params(tiny)
    fresh = reinitialized_copy(tiny, seed=3)
    assert all(torch.equal(before[k], v) for k, v in tiny.state_dict().items())  # original untouched
    w = "encoder.layer.0.attention.self.query.weight"
    assert not torch.equal(fresh.state_dict()[w], before[w])
    assert torch.equal(reinitialized_copy(tiny, seed=3).state_dict()[w], fresh.state_dict()[w])  # seeded
    assert fresh.layerscope_tokenize is tiny.layerscope_tokenize
    with pytest.raises(ParameterError, match="unchanged"):
        reinitialized_copy(fresh, seed=3)  # already holds this seed's initial weights


def test_pooled_states_equal_hand_loop(tiny: torch.nn.Module, glosses: object) -> None:
    feats, labels, ids = pooled_states(tiny, glosses, LAYERS, batch_size=16)  # padded batches
    ref = _hand_pooled(tiny, glosses.texts)  # type: ignore[attr-defined]
    for p in ("mean", "cls"):
        for name in LAYERS:
            assert np.abs(feats[p][name] - ref[p][name]).max() < 1e-5
    assert labels.tolist() == glosses.labels.tolist() and ids.tolist() == list(range(len(glosses)))  # type: ignore[attr-defined]


def test_separability_numbers_are_the_libraries_on_hand_features(tiny: torch.nn.Module, glosses: object, tmp_path: Path) -> None:
    training = tiny.training
    before = _params(tiny)
    r = text_separability(tiny, glosses, LAYERS, method="pca", seed=1, data_spec="wordnet:test-spec")
    assert tiny.training == training and all(torch.equal(before[k], v) for k, v in tiny.state_dict().items())
    assert r.variants == ["pretrained", "reinitialized"] and len(r.table) == 2 * 2 * 3
    ref = _hand_pooled(tiny, glosses.texts)  # type: ignore[attr-defined]
    y = glosses.labels  # type: ignore[attr-defined]
    for p in ("mean", "cls"):
        for name in LAYERS:
            probe = linear_probe(ref[p][name], y, random_state=1)
            assert r.value("pretrained", p, name, "probe_accuracy") == pytest.approx(probe.accuracy, abs=1e-12)
            nh = neighborhood_hit(ref[p][name], y, 6)
            assert r.value("pretrained", p, name, "nh_activation") == pytest.approx(nh, abs=1e-12)
        s = r.series("pretrained", p, "probe_accuracy")
        assert r.best_layer(p) == LAYERS[int(np.argmax(s))] == r.metrics[f"separates_most_{p}"]
    r.save(tmp_path / "sep")
    back = TextSeparabilityResult.load(tmp_path / "sep")
    assert back.table == r.table and back.metrics == r.metrics and back.data_spec == "wordnet:test-spec"
    assert all(np.array_equal(back.embeddings[k], v) for k, v in r.embeddings.items())
    assert {p.name for p in (tmp_path / "sep").iterdir()} >= {"result.json", "arrays.npz", "separability.png"}
    assert "TextSeparabilityResult(" in repr(r) and len(repr(r)) < 300


def test_topk_equals_hand_loop(tiny: torch.nn.Module, glosses: object, tmp_path: Path) -> None:
    tok = tiny.layerscope_tokenizer
    skip = set(tok.all_special_ids) - {tok.unk_token_id}
    r = text_topk(tiny, glosses, ["encoder.layer.1", "embeddings"], units=[0, 9], k=4, batch_size=8)
    texts, labels = glosses.texts, glosses.labels  # type: ignore[attr-defined]
    with torch.no_grad():
        hidden = []
        for text in texts:
            b = tiny.layerscope_tokenize([text])
            hs = tiny(**b, output_hidden_states=True).hidden_states
            keep = torch.tensor([t not in skip for t in b["input_ids"][0].tolist()])
            hidden.append((hs, keep))
    for layer, hidx in (("encoder.layer.1", 2), ("embeddings", 0)):
        for j, u in enumerate([0, 9]):
            scored = []
            for i, (hs, keep) in enumerate(hidden):
                a = hs[hidx][0, :, u]
                pos = int(torch.nonzero(keep)[a[keep].argmax()].item())
                scored.append((-a[pos].item(), i, pos))
            scored.sort()
            got = r.contexts[layer][j]
            assert [c["row"] for c in got] == [i for _, i, _ in scored[:4]]
            assert [c["position"] for c in got] == [p for _, _, p in scored[:4]]
            assert max(abs(c["activation"] + s) for c, (s, _, _) in zip(got, scored)) < 1e-5
            labs = [int(labels[i]) for _, i, _ in scored[:4]]
            assert r.summaries[layer][j]["purity"] == max(labs.count(c) for c in set(labs)) / 4
            assert got[0]["tokens"][got[0]["position"]] == got[0]["token"]
    assert 0.33 < r.purity_chance < 1.0
    r.save(tmp_path / "topk")
    back = TextTopKResult.load(tmp_path / "topk")
    assert back.contexts == r.contexts and back.metrics == r.metrics
    with pytest.raises(ParameterError, match="outside layer"):
        text_topk(tiny, glosses, "embeddings", units=[32])
    with pytest.raises(ParameterError, match="k=1000 is larger"):
        text_topk(tiny, glosses, "embeddings", units=1, k=1000)


def _hand_occlusion(model: torch.nn.Module, text: str, mode: str, n: int, target: object) -> list[float]:
    tok = model.layerscope_tokenizer
    skip = set(tok.all_special_ids) - {tok.unk_token_id}
    enc = model.layerscope_tokenize([text])
    ids = enc["input_ids"][0].tolist()

    def emb(e: dict[str, torch.Tensor]) -> torch.Tensor:
        with torch.no_grad():
            return model(**e).last_hidden_state[0].mean(0).double()

    base = emb(enc)
    ok = [i for i, t in enumerate(ids) if t not in skip]
    out = []
    for s in range(len(ok) - n + 1):
        a, b = ok[s], ok[s + n - 1] + 1
        if mode == "mask":
            e = {k: v.clone() for k, v in enc.items()}
            e["input_ids"][0, a:b] = tok.mask_token_id
        else:
            keep = [i for i in range(len(ids)) if not a <= i < b]
            e = {k: v[:, keep] for k, v in enc.items()}
        x = emb(e)
        if target is None:
            out.append(float(1 - torch.nn.functional.cosine_similarity(base, x, dim=0)))
        elif isinstance(target, int):
            out.append(float(base[target] - x[target]))
        else:
            f = target.predict_proba  # type: ignore[attr-defined]
            out.append(float(f(base[None].numpy())[0, 1] - f(x[None].numpy())[0, 1]))
    return out


SHORT = [  # 10 short sentences in the tiny vocabulary (few tokens: the hand loop runs one pass per variant)
    ("the dog is an animal", 0), ("a small tree with red fruit", 1), ("a wild bird of the sea", 0),
    ("milk and bread and cheese", 1), ("a young cat", 0), ("the leaf of a plant", 1),
    ("a large fish", 0), ("a sweet fruit of a tree", 1), ("an old dog", 0), ("a hard seed", 1),
]


@pytest.mark.parametrize("mode, n, target", [("mask", 1, 3), ("drop", 1, None), ("drop", 2, 5), ("mask", 2, "probe")])
def test_occlusion_equals_hand_loop(tiny: torch.nn.Module, mode: str, n: int, target: object) -> None:
    from layerscope.data.text import TextDataset

    data = TextDataset([t for t, _ in SHORT], [y for _, y in SHORT], classes=["living", "food/plant"], name="short")
    rows = list(range(10))
    probe = None
    if target == "probe":
        from sklearn.linear_model import LogisticRegression

        feats, labels, _ = pooled_states(tiny, data, ["encoder.layer.1"], poolings=("mean",))
        probe = LogisticRegression(max_iter=300).fit(feats["mean"]["encoder.layer.1"], labels)
        target = probe
    r = text_occlusion(tiny, data, "encoder.layer.1", unit=target if isinstance(target, int) else None,
                       probe=probe, class_index=1 if probe is not None else None, mode=mode, ngram=n, indices=rows)
    assert [t["row"] for t in r.texts] == rows
    diff = 0.0
    for t in r.texts:
        hand = _hand_occlusion(tiny, t["text"], mode, n, target)
        assert len(hand) == len(t["changes"]) > 0
        diff = max(diff, max(abs(a - b) for a, b in zip(t["changes"], hand)))
    assert diff < 1e-5


def test_occlusion_save_load_and_errors(tiny: torch.nn.Module, glosses: object, tmp_path: Path) -> None:
    r = text_occlusion(tiny, ["a dog with red fruit", "salt"], "encoder.layer.0", mode="drop")
    assert r.texts[1]["spans"] == [[1, 2]] and len(r.texts[0]["changes"]) == 5
    r.save(tmp_path / "occ")
    back = TextOcclusionResult.load(tmp_path / "occ")
    assert back.texts == r.texts and back.metrics == r.metrics
    with pytest.raises(ParameterError, match="mode must be"):
        text_occlusion(tiny, ["dog"], "encoder.layer.0", mode="blur")
    with pytest.raises(ParameterError, match="unit 99 is outside"):
        text_occlusion(tiny, ["dog"], "encoder.layer.0", unit=99)
    with pytest.raises(ParameterError, match="not token states"):
        text_occlusion(tiny, ["dog"], "pooler")  # (N, D): no token axis
    plain = torch.nn.Linear(3, 3)
    with pytest.raises(ParameterError, match="tokenizer"):
        text_occlusion(plain, ["dog"], "")
    with pytest.raises(DataError, match="no labels"):
        text_separability(tiny, ["a", "b"], LAYERS)


def test_text_analyses_leave_the_model_as_it_was(tiny: torch.nn.Module, glosses: object) -> None:
    """The no-side-effect check of tests/adversarial/test_no_side_effects.py for the text analyses: a model in
    train mode with a user hook keeps its parameters, buffers, flags and hooks, after success and after an error."""
    from sideeffects import differences, snapshot

    fired: list[int] = []
    handle = tiny.encoder.layer[0].register_forward_hook(lambda m, i, o: fired.append(1))
    tiny.train()
    try:
        calls = [
            lambda: text_topk(tiny, glosses, ["encoder.layer.1"], units=[0], k=2, batch_size=16),
            lambda: text_occlusion(tiny, ["a dog with red fruit"], "encoder.layer.0", mode="mask"),
            lambda: text_separability(tiny, glosses, ["encoder.layer.1"], method="pca", before_training=False),
            lambda: text_occlusion(tiny, ["dog"], "encoder.layer.0", unit=99),  # bad target
        ]
        for call in calls:
            snap = snapshot(tiny)
            try:
                call()
            except ParameterError:
                pass
            assert differences(tiny, snap) == []
        n = len(fired)
        with torch.no_grad():
            tiny(**tiny.layerscope_tokenize(["dog"]))
        assert len(fired) == n + 1  # the user's hook is still there and fires once
    finally:
        handle.remove()
        tiny.eval()
