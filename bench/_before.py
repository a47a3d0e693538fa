"""``layerscope.capture`` as it was at an earlier git revision, for before/after benches."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]


def load_before(rev: str) -> Any:
    """The ``layerscope.capture`` module as it was at ``rev`` (run inside the package)."""
    src = subprocess.run(
        ["git", "show", f"{rev}:layerscope/capture.py"], cwd=REPO, capture_output=True, text=True, check=True
    ).stdout
    spec = importlib.util.spec_from_loader("layerscope._capture_before", loader=None)
    assert spec is not None
    mod = importlib.util.module_from_spec(spec)
    mod.__package__ = "layerscope"
    sys.modules[spec.name] = mod  # dataclasses look their module up there
    exec(compile(src, f"{rev}:layerscope/capture.py", "exec"), mod.__dict__)
    return mod
