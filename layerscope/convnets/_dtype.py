"""Dtypes: the Z&F analyses run the model in its own floating dtype and accumulate wider."""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["model_dtype", "wide"]


def model_dtype(model: nn.Module) -> torch.dtype:
    """The floating dtype of the model's first floating parameter or buffer (float32 if none)."""
    for t in list(model.parameters()) + list(model.buffers()):
        if t.is_floating_point():
            return t.dtype
    return torch.float32


def wide(t: torch.Tensor) -> torch.Tensor:
    """``t`` in float64 if it is float64, else float32 (bfloat16/float16 cannot go to NumPy)."""
    return t.double() if t.dtype == torch.float64 else t.float()
