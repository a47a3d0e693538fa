"""What to maximise: composable objectives over layer activations.

An :class:`Objective` maps the activations of the layers it declares (``{layer: (B, ...)}``) to
one score per image of the batch, shape ``(B,)``. Scores are per image so that many units can
be optimised together as one batch: image ``i`` of the batch may target unit ``units[i]``.
Objectives compose with ``+ - * /`` (with each other or with numbers); the composite declares
the union of the layers of its parts, so the render loop hooks only those layers and stops the
forward pass after the deepest of them.

The split into objectives, parameterisations, transforms and the optimisation loop follows
Lucid / torch-lucent (Olah et al. 2017, "Feature Visualization", Distill); the single-unit
objective is the one of Erhan, Bengio, Courville & Vincent 2009 (U. Montréal TR 1341).
Written from the papers; no code taken from those projects.
"""

from __future__ import annotations

import operator
from typing import Callable, Sequence

import torch
import torch.nn.functional as F

from ..exceptions import ParameterError

__all__ = [
    "Objective",
    "neuron",
    "channel",
    "class_logit",
    "class_prob",
    "direction",
    "diversity",
    "unit_values",
    "UnitKind",
]

UnitKind = str  # "neuron" | "channel" | "logit" | "prob"
Units = int | Sequence[int] | torch.Tensor


class Objective:
    """A per-image score to maximise, computed from the activations of :attr:`layers`.

    Parameters
    ----------
    fn
        ``fn(acts) -> Tensor (B,)`` where ``acts`` maps each layer name to its output ``(B, ...)``.
    layers
        The layers ``fn`` reads; only these are hooked.
    name
        Human-readable description (used in figures and ``result.json``).

    Examples
    --------
    >>> obj = channel("conv3", 5) - 1e-2 * diversity("conv3")
    >>> obj.layers
    ('conv3',)
    """

    def __init__(self, fn: Callable[[dict[str, torch.Tensor]], torch.Tensor], layers: Sequence[str], name: str) -> None:
        self.fn = fn
        self.layers: tuple[str, ...] = tuple(dict.fromkeys(layers))
        self.name = name

    def __call__(self, acts: dict[str, torch.Tensor]) -> torch.Tensor:
        out = self.fn(acts)
        if out.ndim == 0:
            batch = next(iter(acts.values())).shape[0] if acts else 1
            out = out.expand(batch)
        return out

    def __repr__(self) -> str:
        return f"Objective({self.name})"

    # -- composition -------------------------------------------------------------------------
    def _combine(self, other: "Objective | float", op: Callable[..., torch.Tensor], sym: str, rev: bool = False) -> "Objective":
        if isinstance(other, Objective):
            a, b = (other, self) if rev else (self, other)
            return Objective(lambda acts: op(a(acts), b(acts)), a.layers + b.layers, f"({a.name} {sym} {b.name})")
        if isinstance(other, (int, float)):
            c = float(other)
            if rev:
                return Objective(lambda acts: op(torch.as_tensor(c), self(acts)), self.layers, f"({c:g} {sym} {self.name})")
            return Objective(lambda acts: op(self(acts), c), self.layers, f"({self.name} {sym} {c:g})")
        return NotImplemented

    def __add__(self, other: "Objective | float") -> "Objective":
        return self._combine(other, operator.add, "+")

    def __radd__(self, other: "Objective | float") -> "Objective":
        return self._combine(other, operator.add, "+", rev=True)

    def __sub__(self, other: "Objective | float") -> "Objective":
        return self._combine(other, operator.sub, "-")

    def __rsub__(self, other: "Objective | float") -> "Objective":
        return self._combine(other, operator.sub, "-", rev=True)

    def __mul__(self, other: "Objective | float") -> "Objective":
        return self._combine(other, operator.mul, "*")

    def __rmul__(self, other: "Objective | float") -> "Objective":
        return self._combine(other, operator.mul, "*", rev=True)

    def __truediv__(self, other: "Objective | float") -> "Objective":
        if isinstance(other, (int, float)) and other == 0:
            raise ParameterError("Cannot divide an objective by 0; use a non-zero number.")
        return self._combine(other, operator.truediv, "/")

    def __rtruediv__(self, other: "Objective | float") -> "Objective":
        return self._combine(other, operator.truediv, "/", rev=True)

    def __neg__(self) -> "Objective":
        return Objective(lambda acts: -self(acts), self.layers, f"-{self.name}")


def _units_tensor(units: Units, batch: int, device: torch.device) -> torch.Tensor:
    """Unit index per image: an int is broadcast; a sequence must have one entry per image."""
    u = torch.as_tensor(units, dtype=torch.long, device=device).reshape(-1)
    if u.numel() == 1:
        return u.expand(batch)
    if u.numel() != batch:
        raise ParameterError(
            f"Got {u.numel()} unit indices for a batch of {batch} images; give one index, or one per image."
        )
    return u


def check_units(units: Sequence[int], n_units: int, layer: str, what: str = "unit") -> None:
    """Raise :class:`ParameterError` if an index is outside ``0 .. n_units - 1``."""
    bad = [int(u) for u in units if not 0 <= int(u) < n_units]
    if bad:
        raise ParameterError(
            f"{what} index {bad[0]} is out of range for layer {layer!r}, which has {n_units} {what}s "
            f"(valid: 0..{n_units - 1}). Pick indices in that range or use --units all."
        )


def unit_values(
    act: torch.Tensor,
    kind: UnitKind,
    units: Units | None = None,
    position: Sequence[int] | None = None,
) -> torch.Tensor:
    """The value of unit ``units[i]`` for image ``i`` of ``act`` (``(B, C, ...)``), shape ``(B,)``.

    With ``units=None``, every unit for every image: shape ``(B, C)``.

    Parameters
    ----------
    act
        A layer's output ``(B, C)`` or ``(B, C, *spatial)``; ``(B, *dims)`` outputs of any
        other rank are treated as ``(B, C=dims[0], *rest)``.
    kind
        ``"neuron"``: the unit at ``position`` (default: the centre of the spatial dimensions);
        ``"channel"``: the mean of the channel over its spatial positions; ``"logit"``: the
        value itself (a flat layer); ``"prob"``: the softmax over dimension 1 (class probability).
    """
    if kind == "prob":
        act = F.softmax(act.flatten(1) if act.ndim > 2 else act, dim=1)
    if act.ndim > 2:
        if kind == "channel":
            act = act.flatten(2).mean(dim=2)
        elif kind in ("neuron", "logit", "prob"):
            spatial = act.shape[2:]
            pos = tuple(s // 2 for s in spatial) if position is None else tuple(int(p) for p in position)
            if len(pos) != len(spatial) or any(not 0 <= p < s for p, s in zip(pos, spatial)):
                raise ParameterError(
                    f"position {tuple(position) if position is not None else pos} does not fit the layer's "
                    f"spatial shape {tuple(spatial)}; give {len(spatial)} indices inside it."
                )
            act = act[(slice(None), slice(None)) + pos]
        else:
            raise ParameterError(f"kind must be 'neuron', 'channel', 'logit' or 'prob'; got {kind!r}.")
    elif kind not in ("neuron", "channel", "logit", "prob"):
        raise ParameterError(f"kind must be 'neuron', 'channel', 'logit' or 'prob'; got {kind!r}.")
    if units is None:
        return act
    u = _units_tensor(units, act.shape[0], act.device)
    if int(u.max()) >= act.shape[1] or int(u.min()) < 0:
        check_units(u.tolist(), act.shape[1], "?")
    return act.gather(1, u[:, None])[:, 0]


def _describe_units(units: Units) -> str:
    u = torch.as_tensor(units).reshape(-1).tolist()
    return str(u[0]) if len(u) == 1 else f"[{', '.join(str(x) for x in u[:4])}{', ...' if len(u) > 4 else ''}]"


def neuron(layer: str, unit: Units, position: Sequence[int] | None = None) -> Objective:
    """One unit of ``layer``: for conv maps the unit of channel ``unit`` at spatial ``position``.

    ``position`` defaults to the centre of the map (Erhan et al. 2009 maximise single units;
    Lucid's ``neuron`` objective does the same at the centre). ``unit`` is an int or one index per
    image of the batch.
    """
    return Objective(
        lambda acts: unit_values(acts[layer], "neuron", unit, position),
        [layer],
        f"neuron({layer}, {_describe_units(unit)}{'' if position is None else f', at {tuple(position)}'})",
    )


def channel(layer: str, unit: Units) -> Objective:
    """The mean of channel ``unit`` of ``layer`` over all spatial positions (a whole feature map)."""
    return Objective(lambda acts: unit_values(acts[layer], "channel", unit), [layer], f"channel({layer}, {_describe_units(unit)})")


def class_logit(layer: str, cls: Units) -> Objective:
    """The logit of class ``cls`` in ``layer`` (the model's output layer, e.g. ``out``, ``fc2``)."""
    return Objective(lambda acts: unit_values(acts[layer], "logit", cls), [layer], f"logit({layer}, {_describe_units(cls)})")


def class_prob(layer: str, cls: Units) -> Objective:
    """The softmax probability of class ``cls``, the softmax taken over ``layer``'s outputs."""
    return Objective(lambda acts: unit_values(acts[layer], "prob", cls), [layer], f"prob({layer}, {_describe_units(cls)})")


def direction(layer: str, vector: Sequence[float] | torch.Tensor, cosine: bool = False) -> Objective:
    """The projection of ``layer``'s activation vector on ``vector`` (``(C,)``), mean over positions.

    With ``cosine=True`` the cosine similarity instead of the dot product (scale-free). A batch of
    directions ``(B, C)`` gives one per image.
    """
    v0 = torch.as_tensor(vector, dtype=torch.float32)
    if v0.ndim not in (1, 2):
        raise ParameterError(f"direction vector must have shape (C,) or (B, C); got {tuple(v0.shape)}.")

    def fn(acts: dict[str, torch.Tensor]) -> torch.Tensor:
        a = acts[layer]
        a = a.flatten(2) if a.ndim > 2 else a[:, :, None]  # (B, C, P)
        if v0.shape[-1] != a.shape[1]:
            raise ParameterError(
                f"direction vector has {v0.shape[-1]} entries but layer {layer!r} has {a.shape[1]} channels."
            )
        v = v0.to(a.device, a.dtype)
        v = v[None, :, None] if v.ndim == 1 else v[:, :, None]
        if cosine:
            return F.cosine_similarity(a, v.expand_as(a), dim=1).mean(dim=1)
        return (a * v).sum(dim=1).mean(dim=1)

    return Objective(fn, [layer], f"direction({layer}{', cosine' if cosine else ''})")


def diversity(layer: str, group_size: int | None = None) -> Objective:
    """Minus the mean cosine similarity of an image's Gram matrix with the others' in its group.

    Lucid-style diversity term (Olah et al. 2017): adding ``w * diversity(layer)`` pushes the
    images of a group towards different styles. ``group_size`` splits the batch into consecutive
    groups (the images of one unit when many units are optimised together); ``None``: one group.
    Returns 0 for groups of one image.
    """
    if group_size is not None and group_size < 1:
        raise ParameterError(f"group_size must be >= 1; got {group_size}.")

    def fn(acts: dict[str, torch.Tensor]) -> torch.Tensor:
        a = acts[layer]
        b = a.shape[0]
        g = b if group_size is None else group_size
        if b % g:
            raise ParameterError(f"batch of {b} images cannot be split into groups of {g}.")
        a = a.flatten(2) if a.ndim > 2 else a[:, :, None]
        gram = torch.einsum("bcp,bdp->bcd", a, a).flatten(1) / a.shape[2]
        gram = F.normalize(gram, dim=1).view(b // g, g, -1)
        sim = torch.einsum("gid,gjd->gij", gram, gram)  # (groups, g, g)
        if g == 1:
            return torch.zeros(b, device=a.device, dtype=a.dtype)
        off = sim.sum(dim=2) - sim.diagonal(dim1=1, dim2=2)
        return -(off / (g - 1)).reshape(b)

    return Objective(fn, [layer], f"diversity({layer})")

