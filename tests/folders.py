"""Comparing two result folders: the one the Python API wrote and the one the CLI wrote."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np


def assert_same_folder(a: Path, b: Path) -> None:
    """Same files; result.json equal without ``created``; arrays equal; other files (PNG) byte-equal."""
    files = sorted(p.name for p in a.iterdir())
    assert files == sorted(p.name for p in b.iterdir())
    for name in files:
        if name == "result.json":
            da, db = (json.loads((d / name).read_text()) for d in (a, b))
            assert da.pop("created") and db.pop("created")
            assert da == db
        elif name.endswith(".npz"):
            za, zb = np.load(a / name), np.load(b / name)
            assert sorted(za.files) == sorted(zb.files)
            for k in za.files:
                np.testing.assert_array_equal(za[k], zb[k], err_msg=f"{name}:{k}")
        else:
            assert (a / name).read_bytes() == (b / name).read_bytes(), name
