"""Packaging: torch pinned in one place, extras that match the code, optional imports that name
their extra when missing."""

from __future__ import annotations

import ast
import re
import sys
import tomllib
from pathlib import Path

import numpy as np
import pytest

from layerscope._optional import EXTRAS, require
from layerscope.exceptions import LayerscopeError, MissingDependencyError

ROOT = Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
OPTIONAL = PYPROJECT["project"]["optional-dependencies"]


def names(reqs: list[str]) -> set[str]:
    return {re.split(r"[<>=!~\[; ]", r, maxsplit=1)[0].lower() for r in reqs}


def test_torch_is_pinned_once_in_constraints_and_the_scripts_read_it() -> None:
    pins = [line for line in (ROOT / "constraints.txt").read_text().splitlines()
            if line.strip() and not line.startswith("#")]
    assert pins == ["torch==2.13.0"]
    for script in ("run.sh", ".ci/run"):
        text = (ROOT / script).read_text()
        assert not re.search(r"torch==", text), f"{script} pins torch itself"
    run = (ROOT / "run.sh").read_text()
    assert run.count("-c constraints.txt") >= 2  # torch first, then layerscope with its extra
    assert re.search(r"demo\)\s*\n\s*setup demo\n", run) and re.search(r"test\)\s*\n\s*setup test\n", run)
    torch_req = [d for d in PYPROJECT["project"]["dependencies"] if d.startswith("torch")]
    assert torch_req == ["torch>=2.2"]  # a range: installs beside the user's own torch


def test_extras_table_matches_pyproject() -> None:
    assert {"umap", "speech", "ray", "text", "demo", "test", "bench"} <= set(OPTIONAL)
    for module, (package, extra) in EXTRAS.items():
        assert package.lower() in names(OPTIONAL[extra]), (module, extra)
        assert package.lower() in names(OPTIONAL["test"]), f"the test extra lacks {package}"
    # the demo: speech steps (librosa) and the text section (transformers + MiniLM), nothing for tests
    demo = names(OPTIONAL["demo"])
    assert names(OPTIONAL["speech"]) | names(OPTIONAL["text"]) <= demo
    assert not demo & {"pytest", "playwright", "mypy", "ray", "captum", "ipykernel"}


def test_optional_modules_are_imported_only_through_require() -> None:
    offenders = []
    for path in (ROOT / "layerscope").rglob("*.py"):
        if path.name == "_optional.py":
            continue
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            mods = ([a.name for a in node.names] if isinstance(node, ast.Import)
                    else [node.module or ""] if isinstance(node, ast.ImportFrom) and node.level == 0 else [])
            offenders += [f"{path.relative_to(ROOT)}:{node.lineno} {m}" for m in mods if m.split(".")[0] in EXTRAS]
    assert offenders == []


@pytest.mark.parametrize("module,extra", [("librosa", "speech"), ("umap", "umap"), ("ray", "ray"), ("transformers", "text")])
def test_a_missing_optional_module_names_its_extra(module: str, extra: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, module, None)  # import now raises ModuleNotFoundError
    with pytest.raises(MissingDependencyError, match=re.escape(f"pip install 'layerscope[{extra}]'")) as exc:
        require(module, "this feature")
    assert isinstance(exc.value, ImportError) and isinstance(exc.value, LayerscopeError)
    assert "\n" not in str(exc.value)


def test_missing_librosa_through_the_speech_features(monkeypatch: pytest.MonkeyPatch) -> None:
    from layerscope.speech.features import frame_features

    monkeypatch.setitem(sys.modules, "librosa", None)
    with pytest.raises(MissingDependencyError, match=r"speech features.*layerscope\[speech\]"):
        frame_features(np.zeros(8000, dtype=np.float32), 8000)


def test_missing_umap_through_the_cli(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
                                      tmp_path: Path) -> None:
    from layerscope.cli import main

    monkeypatch.setitem(sys.modules, "umap", None)
    with pytest.raises(SystemExit) as exc:
        main(["project", "--model", "mnist-mlp", "--data", "mnist:test", "--layers", "fc1", "--method", "umap",
              "--n", "60", "--out", str(tmp_path / "p"), "--no-progress"])
    err = capsys.readouterr().err
    assert exc.value.code == 2 and err.count("\n") == 1
    assert "pip install 'layerscope[umap]'" in err and not (tmp_path / "p").exists()


def test_a_broken_dependency_of_an_optional_module_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    """A module that is installed but cannot import its own dependency: say which one."""
    import types

    def broken(name: str, *a: object, **k: object) -> types.ModuleType:
        raise ModuleNotFoundError("No module named 'numba'", name="numba")

    monkeypatch.setattr("importlib.import_module", broken)
    with pytest.raises(MissingDependencyError, match="could not import its own dependency 'numba'.*layerscope\\[umap\\]"):
        require("umap", "method='umap'")
