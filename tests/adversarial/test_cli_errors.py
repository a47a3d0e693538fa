"""The CLI's error contract: an expected failure is ONE line ``error: ...`` on stderr, exit code 2,
no traceback; an internal error is one line naming the saved traceback, exit code 3; ``--debug``
shows the traceback instead.

Most cases call :func:`layerscope.cli.main` in this process (the same code path as the
``layerscope`` executable, which is ``main``); a few run the real executable.
"""

from __future__ import annotations

import importlib
import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from layerscope.cli import EXIT_ERROR, EXIT_INTERNAL, main
from layerscope.exceptions import DataError

REPO = Path(__file__).resolve().parents[2]


def run_main(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    """Run ``layerscope ARGS`` in-process; return (exit code, stderr)."""
    capsys.readouterr()
    try:
        main(list(args))
        code = 0
    except SystemExit as exc:
        code = int(exc.code) if isinstance(exc.code, int) else 1
    return code, capsys.readouterr().err


def assert_one_line(code: int, err: str, expected: int = EXIT_ERROR) -> str:
    lines = err.strip().splitlines()
    assert code == expected, (code, err)
    assert len(lines) == 1, err
    assert lines[0].startswith("error: ") and "Traceback" not in err
    return lines[0]


BAD_OPTIONS: list[tuple[str, list[str], str]] = [
    ("capture batch 0", ["capture", "-m", "mnist-mlp", "-l", "fc1", "--batch-size", "0"], r"--batch-size"),
    ("capture limit 0", ["capture", "-m", "mnist-mlp", "-l", "fc1", "--limit", "0"], r"limit must be (>= 1|at least 1|a whole number >= 1).*got 0"),
    ("capture limit <0", ["capture", "-m", "mnist-mlp", "-l", "fc1", "--limit", "-5"], r"limit must be (>= 1|at least 1).*got -5"),
    ("train limit 0", ["train", "-m", "mlp", "--epochs", "1", "--limit", "0"], r"limit must be (>= 1|at least 1|a whole number >= 1).*got 0"),
    ("capture bad layer", ["capture", "-m", "mnist-mlp", "-l", "fc9"], r"fc9"),
    ("topk limit 0", ["topk", "-m", "mnist-cnn", "-l", "conv1", "--limit", "0"], r"limit must be (>= 1|at least 1|a whole number >= 1).*got 0"),
    ("topk k 0", ["topk", "-m", "mnist-cnn", "-l", "conv1", "--limit", "10", "--k", "0"], r"k must be >= 1"),
    ("topk batch 0", ["topk", "-m", "mnist-cnn", "-l", "conv1", "--limit", "10", "--batch-size", "0"], r"--batch-size"),
    ("train lr nan", ["train", "-m", "mlp", "--epochs", "1", "--limit", "50", "--lr", "nan"], r"lr must be a finite number > 0; got nan"),
    ("train lr inf", ["train", "-m", "mlp", "--epochs", "1", "--limit", "50", "--lr", "inf"], r"got inf"),
    ("train lr 0", ["train", "-m", "mlp", "--epochs", "1", "--limit", "50", "--lr", "0"], r"got 0"),
    ("train 10^7-wide MLP", ["train", "-m", "mlp:width=10000000", "--epochs", "1", "--limit", "50"], r"parameters .*choose smaller"),
    ("maximize steps -3", ["maximize", "-m", "mnist-mlp", "-l", "fc3", "--steps", "-3"], r"steps must be >= 0; got -3"),
    ("invariance limit 0", ["invariance", "-m", "mnist-cnn", "--limit", "0"], r"limit must be (>= 1|at least 1|a whole number >= 1).*got 0"),
    ("occlude indices -1", ["occlude", "-m", "mnist-cnn", "--indices=-1"], r"indices(?=.*9999)(?=.*-1\b)"),
    ("occlude indices past end", ["occlude", "-m", "mnist-cnn", "--indices", "3,10000"], r"indices(?=.*9999)(?=.*10000)"),
    ("occlude indices not numbers", ["occlude", "-m", "mnist-cnn", "--indices", "1,x"], r"(whole numbers|integers).*1,x"),
    ("deconv indices -1", ["deconv", "-m", "mnist-cnn", "-l", "conv1", "--indices=-1"], r"indices(?=.*9999)(?=.*-1\b)"),
    ("transfer epochs 0", ["transfer", "--arch", "convnet8", "--data", "mnist", "--epochs", "0"], r"epochs must be >= 1; got 0"),
    ("transfer lr nan", ["transfer", "--arch", "convnet8", "--data", "mnist", "--lr", "nan"], r"lr must be a finite number > 0; got nan"),
    ("transfer lr -1", ["transfer", "--arch", "convnet8", "--data", "mnist", "--lr", "-1"], r"got -1"),
    ("transfer limit 0", ["transfer", "--arch", "convnet8", "--data", "mnist", "--limit", "0"], r"limit must be >= 1"),
    ("transfer workers 0", ["transfer", "--arch", "convnet8", "--data", "mnist", "--executor", "pool", "--workers", "0"], r"workers must be >= 1"),
    ("unknown option", ["capture", "-m", "mnist-mlp", "-l", "fc1", "--bogus"], r"No such option: --bogus"),
    ("unknown command", ["capturre"], r"No such command 'capturre'"),
    ("missing option", ["capture", "-m", "mnist-mlp"], r"Missing option '--layers'"),
    ("not a number", ["capture", "-m", "mnist-mlp", "-l", "fc1", "--batch-size", "many"], r"--batch-size"),
]


@pytest.mark.parametrize("name,args,message", BAD_OPTIONS, ids=[c[0] for c in BAD_OPTIONS])
def test_bad_option_is_one_line_exit_2(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, name: str, args: list[str], message: str
) -> None:
    out = tmp_path / "out"
    code, err = run_main(capsys, *args, "-o", str(out), "--no-progress")
    line = assert_one_line(code, err)
    assert re.search(message, line), line
    assert not out.exists() or not any(out.iterdir())  # nothing half-written


def test_resume_with_other_arch_and_epochs_is_refused_listing_the_keys(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    from layerscope.transfer import GridConfig, TransferStore

    grid = tmp_path / "grid"
    import numpy as np

    gone = tmp_path / "train_only.npz"
    np.savez(gone, x_train=np.zeros((4, 1, 8, 8), np.float32), y_train=np.arange(4) % 2)
    data = f"npz:{gone}:train"
    TransferStore.create(grid, GridConfig(arch="convnet8", data=data, seeds=(0, 1, 2), epochs=10), 8)
    # the npz has no test split: a run that passes the settings check fails when it loads the data
    code, err = run_main(capsys, "transfer", "--resume", str(grid), "--arch", "convnet8:width=4", "--epochs", "3", "--no-progress")
    line = assert_one_line(code, err)
    assert "arch: stored 'convnet8', given 'convnet8:width=4'" in line and "epochs: stored 10, given 3" in line
    assert "seeds" not in line and not list((grid / "cells").iterdir())  # nothing was trained
    # options equal to the stored ones pass the check and reach the run (which fails on the data)
    code, err = run_main(capsys, "transfer", "--resume", str(grid), "--epochs", "10", "--seeds", "3", "--arch", "convnet8", "--no-progress")
    line = assert_one_line(code, err)
    assert "train_only.npz" in line and "stored" not in line


def test_truncated_transfer_cell_is_one_line_naming_the_file(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    from layerscope.transfer import GridConfig, TransferStore

    store = TransferStore.create(tmp_path / "g", GridConfig(arch="convnet8", data="mnist", seeds=(0,), epochs=1), 8)
    store.put({"cell": "baseA_s0", "condition": "baseA", "n": 0, "seed": 0, "metric": 0.5, "val_accuracy": [0.5]})
    text = store.cell_path("baseA_s0").read_text()
    store.cell_path("baseA_s0").write_text(text[: len(text) // 3])
    code, err = run_main(capsys, "transfer", "--report", str(store.directory))
    line = assert_one_line(code, err)
    assert "baseA_s0.json is not valid JSON" in line and "--resume" in line


def test_truncated_run_json_is_one_line(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    run = tmp_path / "run"
    run.mkdir()
    (run / "run.json").write_text('{"arch": "mlp", "checkpoints": [{"epo')
    code, err = run_main(capsys, "capture", "-m", str(run), "-l", "fc1", "-o", str(tmp_path / "o"), "--no-progress")
    line = assert_one_line(code, err)
    assert "run.json" in line


def test_out_that_cannot_be_a_folder_is_one_line(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    (tmp_path / "f").write_text("x")
    code, err = run_main(capsys, "capture", "-m", "mnist-mlp", "-l", "fc1", "-o", str(tmp_path / "f" / "o"), "--no-progress")
    assert "cannot write the output" in assert_one_line(code, err)


def test_a_users_own_folder_is_never_replaced(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("keep me")
    code, err = run_main(capsys, "capture", "-m", "mnist-mlp", "-l", "fc1", "--limit", "5", "-o", str(mine), "--no-progress")
    assert "not a layerscope result" in assert_one_line(code, err)
    assert [p.name for p in mine.iterdir()] == ["notes.txt"] and (mine / "notes.txt").read_text() == "keep me"


def test_os_errors_are_one_line_exit_2(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    def denied(*a: Any, **k: Any) -> Any:
        raise PermissionError(13, "Permission denied", "/somewhere/weights.safetensors")

    monkeypatch.setattr(importlib.import_module("layerscope.capture"), "list_layers", denied)
    code, err = run_main(capsys, "layers", "-m", "mnist-mlp")
    assert assert_one_line(code, err) == "error: Permission denied: /somewhere/weights.safetensors"


def test_multi_line_messages_are_joined_into_one(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    def bad(*a: Any, **k: Any) -> Any:
        raise DataError("first part\n  second part\n")

    monkeypatch.setattr(importlib.import_module("layerscope.capture"), "list_layers", bad)
    code, err = run_main(capsys, "layers", "-m", "mnist-mlp")
    assert assert_one_line(code, err) == "error: first part second part"


def _boom(*a: Any, **k: Any) -> Any:
    return 1 / 0


def test_internal_error_is_one_line_exit_3_with_the_traceback_saved(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(importlib.import_module("layerscope.capture"), "list_layers", _boom)
    monkeypatch.delenv("LAYERSCOPE_DEBUG", raising=False)
    code, err = run_main(capsys, "layers", "-m", "mnist-mlp")
    line = assert_one_line(code, err, EXIT_INTERNAL)
    assert "internal error (ZeroDivisionError: division by zero)" in line and "bug in layerscope" in line
    path = Path(re.search(r"traceback is in (\S+?\.txt)", line).group(1))  # type: ignore[union-attr]
    assert path.name == f"layerscope-traceback-{os.getpid()}.txt"
    text = path.read_text()
    assert text.startswith("Traceback") and "ZeroDivisionError" in text and "_boom" in text
    path.unlink()


def test_debug_shows_the_traceback(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(importlib.import_module("layerscope.capture"), "list_layers", _boom)
    monkeypatch.delenv("LAYERSCOPE_DEBUG", raising=False)
    with pytest.raises(ZeroDivisionError):
        main(["--debug", "layers", "-m", "mnist-mlp"])
    monkeypatch.setenv("LAYERSCOPE_DEBUG", "1")
    with pytest.raises(ZeroDivisionError):
        main(["layers", "-m", "mnist-mlp"])
    # --debug does not change expected errors: still one line, exit 2
    code, err = run_main(capsys, "--debug", "capture", "-m", "mnist-mlp", "-l", "fc9", "-o", str(tmp_path / "unused"))
    assert "fc9" in assert_one_line(code, err)


def test_the_real_executable_keeps_the_contract(tmp_path: Path) -> None:
    run = lambda *a, **kw: subprocess.run([sys.executable, *a], cwd=REPO, capture_output=True, text=True, **kw)  # noqa: E731
    r = run("-m", "layerscope", "capture", "-m", "mnist-mlp", "-l", "fc1", "-o", str(tmp_path / "o"), "--batch-size", "0")
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1 and "Traceback" not in r.stderr, r.stderr
    code = "import sys, layerscope.capture\nL = sys.modules['layerscope.capture']\nL.list_layers = lambda *a, **k: {}['missing']\nfrom layerscope.cli import main\nmain(sys.argv[1:])"
    env = {k: v for k, v in os.environ.items() if k != "LAYERSCOPE_DEBUG"}
    r = run("-c", code, "layers", "-m", "mnist-mlp", env=env)
    assert r.returncode == 3 and len(r.stderr.strip().splitlines()) == 1 and "Traceback" not in r.stderr, r.stderr
    saved = Path(re.search(r"traceback is in (\S+?\.txt)", r.stderr).group(1))  # type: ignore[union-attr]
    assert "KeyError: 'missing'" in saved.read_text()
    saved.unlink()
    r = run("-c", code, "--debug", "layers", "-m", "mnist-mlp", env=env)
    assert r.returncode == 1 and "Traceback" in r.stderr and "KeyError: 'missing'" in r.stderr


def test_help_and_success_are_unchanged(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    code, _ = run_main(capsys, "--help")
    assert code == 0
    code, err = run_main(capsys, "capture", "-m", "mnist-mlp", "-l", "fc1", "--limit", "7", "-o", str(tmp_path / "a"), "--no-progress")
    assert code == 0 and "error" not in err
    info = json.loads((tmp_path / "a" / "activations.json").read_text())
    assert info["n"] == 7
