"""The package is typed (``py.typed``): mypy must accept it as shipped."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def test_mypy_accepts_the_package() -> None:
    pytest.importorskip("mypy")
    out = subprocess.run(
        [sys.executable, "-m", "mypy", "layerscope", "--ignore-missing-imports", "--no-incremental"],
        cwd=REPO, capture_output=True, text=True,
    )
    assert out.returncode == 0, out.stdout[-4000:]
    assert "Success: no issues found" in out.stdout
