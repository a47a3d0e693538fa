"""The common shape of analysis results and of their folders on disk.

Every analysis command writes a folder ``OUT`` holding ``result.json`` plus figures (PNG) and,
where useful, arrays (``.npz``). ``result.json`` always has these keys::

    {
      "analysis": "<name>",         # e.g. "capture", "maximize", "occlusion", "projection", "transfer"
      "version": 1,
      "created": "<ISO time>",
      "model": {...},               # what was analysed (spec, source), if any
      "data": "<data spec>",        # if any
      "parameters": {...},          # every knob used
      "metrics": {...},             # the numbers (JSON-safe)
      "figures": [{"path": "grid.png", "title": "...", "caption": "..."}],  # paths relative to OUT
      ...                           # analysis-specific fields
    }

The HTML report (``layerscope report``) reads only these folders; it computes nothing itself.
:class:`Result` is a small immutable base that analysis result types can extend.
"""

from __future__ import annotations

import datetime as _dt
import os
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, TypeVar

from ._io import read_json, to_jsonable, write_json

__all__ = ["Result", "write_result", "read_result", "RESULT_FILE", "model_description"]

RESULT_FILE = "result.json"
R = TypeVar("R", bound="Result")


def model_description(model: Any) -> dict[str, Any]:
    """JSON-safe description of a model: class, parameter count, where it came from."""
    src = dict(getattr(model, "layerscope_source", None) or {})
    return {
        "class": type(model).__name__,
        "parameters": int(sum(p.numel() for p in model.parameters())),
        "source": src,
        "input_shape": list(getattr(model, "input_shape", []) or []),
    }


def write_result(out_dir: str | os.PathLike[str], analysis: str, **fields_: Any) -> Path:
    """Write ``OUT/result.json`` atomically with the common keys filled in."""
    d = Path(out_dir)
    d.mkdir(parents=True, exist_ok=True)
    doc = {
        "analysis": analysis,
        "version": 1,
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "figures": [],
        "metrics": {},
        "parameters": {},
    }
    doc.update(fields_)
    write_json(d / RESULT_FILE, doc)
    return d / RESULT_FILE


def read_result(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read ``result.json`` from a folder or a file path."""
    p = Path(path)
    if p.is_dir():
        p = p / RESULT_FILE
    return dict(read_json(p))


@dataclass(frozen=True)
class Result:
    """Immutable base for analysis results: ``to_dict()`` (JSON-safe), ``save()``, ``load()``.

    Subclasses are frozen dataclasses; array fields are saved to ``arrays.npz`` next to
    ``result.json`` and restored by :meth:`load`.
    """

    analysis: str = field(default="result", init=False)

    def to_dict(self) -> dict[str, Any]:
        import numpy as np

        return {k: to_jsonable(v) for k, v in asdict(self).items() if not isinstance(v, np.ndarray)}

    def save(self, out_dir: str | os.PathLike[str]) -> Path:
        import numpy as np

        from ._io import atomic_path

        d = Path(out_dir)
        d.mkdir(parents=True, exist_ok=True)
        arrays = {f.name: getattr(self, f.name) for f in fields(self) if isinstance(getattr(self, f.name), np.ndarray)}
        if arrays:
            with atomic_path(d / "arrays.npz") as tmp:
                with open(tmp, "wb") as fh:
                    np.savez(fh, **arrays)
        doc = self.to_dict()
        doc.setdefault("version", 1)
        write_json(d / RESULT_FILE, doc)
        return d

    @classmethod
    def load(cls: type[R], out_dir: str | os.PathLike[str]) -> R:
        import numpy as np

        d = Path(out_dir)
        doc = read_json(d / RESULT_FILE)
        kwargs = {f.name: doc.get(f.name) for f in fields(cls) if f.init and f.name in doc}
        if (d / "arrays.npz").exists():
            z = np.load(d / "arrays.npz")
            kwargs.update({k: z[k] for k in z.files})
        return cls(**kwargs)
