"""Layer names: list and resolve them (the layer table itself is :func:`layerscope.capture.list_layers`).

A layer is named by its dotted ``named_modules()`` path, exactly as PyTorch prints it. There are
no aliases. An unknown name raises :class:`~layerscope.exceptions.LayerNotFoundError` listing
the closest real names.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from typing import Iterable, Sequence

from torch import nn

from .exceptions import LayerNotFoundError

__all__ = ["LayerInfo", "layer_names", "resolve_layer", "resolve_layers"]


def layer_names(model: nn.Module) -> list[str]:
    """Every non-root module path of ``model`` in registration order."""
    return [name for name, _ in model.named_modules() if name]


def _suggest(name: str, names: Sequence[str], n: int = 5) -> list[str]:
    close = difflib.get_close_matches(name, names, n=n, cutoff=0.4)
    if len(close) < n:
        # names that contain the request or share its last component
        tail = name.split(".")[-1]
        for cand in names:
            if cand not in close and (name in cand or cand.split(".")[-1] == tail):
                close.append(cand)
            if len(close) >= n:
                break
    return close


def resolve_layer(model: nn.Module, name: str) -> nn.Module:
    """Return the submodule called ``name`` (a dotted ``named_modules()`` path).

    Raises
    ------
    LayerNotFoundError
        If no module has that path; the message lists the closest real names.
    """
    modules = dict(model.named_modules())
    if name in modules and name != "":
        return modules[name]
    names = [n for n in modules if n]
    close = _suggest(name, names)
    hint = f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""
    if not names:
        hint = " The model has no submodules at all."
    raise LayerNotFoundError(
        f"No layer named {name!r} in {type(model).__name__}.{hint} Layer names are the dotted paths "
        f"of model.named_modules(); run `layerscope layers --model ...` to list all {len(names)}."
    )


def resolve_layers(model: nn.Module, names: Iterable[str]) -> dict[str, nn.Module]:
    """Resolve several names at once; the first unknown name raises."""
    out: dict[str, nn.Module] = {}
    for name in names:
        out[name] = resolve_layer(model, name)
    if not out:
        raise LayerNotFoundError("No layer names given; pass at least one layer name.")
    return out


@dataclass(frozen=True)
class LayerInfo:
    """One row of the layer table."""

    name: str
    type: str
    output_shape: tuple[int, ...] | None  # without the batch dimension; None if not run
    params: int  # parameters owned directly by this module (not its children)
    total_params: int  # parameters of this module and its children
    depth: int
    is_leaf: bool
    calls: int | None = None  # calls in the sample forward pass (> 1: a reused module); None if not run

    @property
    def reused(self) -> bool:
        """Whether the module ran more than once in the sample forward pass (name a call: ``name#k``)."""
        return (self.calls or 0) > 1

    def to_dict(self) -> dict[str, object]:
        return {
            "name": self.name,
            "type": self.type,
            "output_shape": list(self.output_shape) if self.output_shape is not None else None,
            "params": self.params,
            "total_params": self.total_params,
            "depth": self.depth,
            "is_leaf": self.is_leaf,
            "calls": self.calls,
        }
