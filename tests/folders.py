"""Comparing two result folders: the one the Python API wrote and the one the CLI wrote."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np


def assert_same_folder(a: Path, b: Path, *, recursive: bool = False, ignore_metrics: tuple[str, ...] = ()) -> None:
    """Same files; result.json equal without ``created`` (and the ``ignore_metrics`` keys of its
    metrics, e.g. a run's wall time); arrays equal; other files (PNG) byte-equal. ``recursive``
    compares the sub-folders too (relative paths)."""
    def listing(d: Path) -> list[str]:
        return sorted(str(p.relative_to(d)) for p in d.rglob("*") if p.is_file()) if recursive else sorted(
            p.name for p in d.iterdir())

    files = listing(a)
    assert files == listing(b)
    for name in files:
        if name.endswith("result.json"):
            da, db = (json.loads((d / name).read_text()) for d in (a, b))
            assert da.pop("created") and db.pop("created")
            for d in (da, db):
                for key in ignore_metrics:
                    d.get("metrics", {}).pop(key, None)
            assert da == db, name
        elif name.endswith(".npz"):
            za, zb = np.load(a / name), np.load(b / name)
            assert sorted(za.files) == sorted(zb.files)
            for k in za.files:
                np.testing.assert_array_equal(za[k], zb[k], err_msg=f"{name}:{k}")
        else:
            assert (a / name).read_bytes() == (b / name).read_bytes(), name
