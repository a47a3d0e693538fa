"""The analysis contract for the text analyses: the CLI writes the folder the Python API writes."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from matplotlib.figure import Figure
from typer.testing import CliRunner

from folders import assert_same_folder
from text_fixtures import transformers, write_tiny_bert  # noqa: F401  (skips without transformers)

from layerscope.cli import app
from layerscope.data import load_dataset
from layerscope.loading import load_model
from layerscope.text import (TextOcclusionResult, TextSeparabilityResult, TextTopKResult, text_occlusion,
                             text_separability, text_topk)

DATA = "wordnet:per_class=15:classes=animal,plant,food"
runner = CliRunner()


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_tiny_bert(tmp_path_factory.mktemp("hf") / "tiny")


def check(res: Any, cls: type, api: Path, cli_args: list[str], tmp_path: Path) -> None:
    r = runner.invoke(app, [*cli_args, "--no-progress", "--out", str(tmp_path / "cli")])
    assert r.exit_code == 0, r.output
    res.save(api)
    assert_same_folder(tmp_path / "cli", api)
    assert len(repr(res)) < 300 and "array(" not in repr(res)
    assert "<table>" in res._repr_html_()
    assert all(isinstance(f, Figure) for f in res.figures().values())
    json.dumps(res.metrics)
    again = cls.load(api)  # type: ignore[attr-defined]
    again.save(tmp_path / "again")
    assert_same_folder(api, tmp_path / "again")


@pytest.mark.slow
def test_separability_api_equals_cli(folder: Path, tmp_path: Path) -> None:
    model, data = load_model(f"hf:{folder}"), load_dataset(DATA)
    res = text_separability(model, data, method="pca", data_spec=DATA)
    check(res, TextSeparabilityResult, tmp_path / "api",
          ["text-separability", "-m", f"hf:{folder}", "--data", DATA, "--method", "pca"], tmp_path)


def test_topk_api_equals_cli(folder: Path, tmp_path: Path) -> None:
    model, data = load_model(f"hf:{folder}"), load_dataset(DATA)
    res = text_topk(model, data, ["encoder.layer.0", "encoder.layer.1"], 3, k=4, data_spec=DATA)
    check(res, TextTopKResult, tmp_path / "api",
          ["text-topk", "-m", f"hf:{folder}", "--data", DATA, "-l", "encoder.layer.0,encoder.layer.1",
           "--units", "3", "--k", "4"], tmp_path)


def test_occlusion_api_equals_cli(folder: Path, tmp_path: Path) -> None:
    model, data = load_model(f"hf:{folder}"), load_dataset(DATA)
    res = text_occlusion(model, data, "encoder.layer.1", unit=2, mode="drop", ngram=2, indices=[0, 16, 32], data_spec=DATA)
    check(res, TextOcclusionResult, tmp_path / "api",
          ["text-occlude", "-m", f"hf:{folder}", "--data", DATA, "-l", "encoder.layer.1", "--unit", "2",
           "--mode", "drop", "--ngram", "2", "--indices", "0,16,32"], tmp_path)
