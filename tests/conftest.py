"""Shared test fixtures.

``shared_data`` is the project's shared data folder (``../shared/data`` next to the repository,
or ``$LAYERSCOPE_SHARED_DATA``); tests that need it skip when it is absent.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]


def _shared() -> Path:
    env = os.environ.get("LAYERSCOPE_SHARED_DATA")
    return Path(env) if env else REPO.parent / "shared" / "data"


@pytest.fixture
def shared_data() -> Path:
    p = _shared()
    if not p.is_dir():
        pytest.skip(f"shared data folder not found ({p}); set LAYERSCOPE_SHARED_DATA")
    return p


@pytest.fixture
def cifar10_npz(shared_data: Path) -> Path:
    p = shared_data / "cifar10" / "cifar10_subset.npz"
    if not p.exists():
        pytest.skip("CIFAR-10 subset not in the shared data folder")
    return p


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)
