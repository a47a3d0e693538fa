"""Where a loaded model came from."""

from __future__ import annotations

__all__ = ["ModelSource"]


class ModelSource(dict):  # type: ignore[type-arg]
    """Where a loaded model came from (kept on ``model.layerscope_source``)."""
