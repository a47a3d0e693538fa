"""The true receptive field of a layer's units, computed from the model's graph.

Zeiler & Fergus (2014, arXiv 1311.2901) show, next to each of the strongest activations of a
feature map, the image patch that the unit can see. That patch is the unit's *receptive field*:
the input window that can influence it. We compute it exactly from the model's graph instead of
guessing it: the model is traced with :mod:`torch.fx`, and for every node the geometry
``(jump, size, start)`` per spatial dimension is propagated:

* ``jump``  — the distance in input pixels between neighbouring units of the node,
* ``size``  — the width of one unit's window in input pixels,
* ``start`` — the input coordinate of the first pixel of unit 0's window (negative where the
  window reaches into padding).

A convolution or pooling with kernel ``k``, stride ``s``, padding ``p`` and dilation ``d`` maps
``(j, r, a)`` to ``(j*s, r + (d*(k-1))*j, a - p*j)``; element-wise ops keep it; strided slicing
and constant padding shift and scale it; ops that merge branches (``+``, ``*``, ``cat`` along
channels) take the union of their inputs' windows (residual networks). Flatten, linear layers and
global pooling make every unit see the whole input (``is_global``). Any op this walk does not
understand makes the computation refuse with an error naming the op, never a guess.

The composition rule is the standard arithmetic of strided convolutions; it is written here by
hand because no maintained library computes it from a PyTorch graph.
"""

from __future__ import annotations

import operator
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np
import torch
import torch.fx as fx
import torch.nn.functional as F
from torch import nn

from ..exceptions import ParameterError
from ..layers import resolve_layer

__all__ = ["ReceptiveField", "ReceptiveFieldError", "receptive_field", "crop_patch"]


class ReceptiveFieldError(ParameterError):
    """The receptive field of a layer cannot be computed from the model's graph."""


@dataclass(frozen=True)
class ReceptiveField:
    """Where a unit of ``layer`` looks in the input.

    Attributes
    ----------
    layer
        Dotted layer name.
    jump, size, start
        Per spatial dimension: input pixels between neighbouring units, window width, and the
        input coordinate where unit 0's window starts (negative: it reaches into padding).
    input_size
        Spatial size of the input, e.g. ``(28, 28)``.
    is_global
        ``True`` when every unit sees the whole input (after flatten / linear / global pooling);
        then ``jump``/``size``/``start`` describe the whole input.
    """

    layer: str
    jump: tuple[int, ...]
    size: tuple[int, ...]
    start: tuple[int, ...]
    input_size: tuple[int, ...]
    is_global: bool = False
    method: str = "graph"  # "graph": derived from the traced graph; "measured": gradient support

    def box(self, position: Sequence[int] | None) -> list[tuple[int, int]]:
        """``[(lo, hi), ...]`` per spatial dim (``hi`` exclusive) of the unit at ``position``.

        The box may extend past the input borders (``lo < 0`` or ``hi > input_size``).
        """
        if self.is_global or position is None:
            return [(0, n) for n in self.input_size]
        if len(position) != len(self.jump):
            raise ParameterError(
                f"position {tuple(position)} has {len(position)} coordinates; layer {self.layer!r} "
                f"has {len(self.jump)} spatial dimensions."
            )
        return [(a + int(p) * j, a + int(p) * j + r) for p, j, r, a in zip(position, self.jump, self.size, self.start)]

    def to_dict(self) -> dict[str, Any]:
        return {
            "layer": self.layer,
            "jump": list(self.jump),
            "size": list(self.size),
            "start": list(self.start),
            "input_size": list(self.input_size),
            "is_global": self.is_global,
            "method": self.method,
        }


def crop_patch(image: np.ndarray | torch.Tensor, box: Sequence[tuple[int, int]], fill: float = 0.0) -> np.ndarray:
    """Crop ``image`` ``(C, *spatial)`` to ``box``, padding with ``fill`` where it leaves the image."""
    a = np.asarray(image.detach().cpu() if isinstance(image, torch.Tensor) else image, dtype=np.float32)
    spatial = a.shape[1:]
    out = np.full((a.shape[0], *[hi - lo for lo, hi in box]), fill, dtype=np.float32)
    src, dst = [slice(None)], [slice(None)]
    for (lo, hi), n in zip(box, spatial):
        s0, s1 = max(lo, 0), min(hi, n)
        if s1 <= s0:
            return out
        src.append(slice(s0, s1))
        dst.append(slice(s0 - lo, s1 - lo))
    out[tuple(dst)] = a[tuple(src)]
    return out


# ------------------------------------------------------------------------------------------
# Geometry propagation
# ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Geo:
    jump: tuple[int, ...]
    size: tuple[int, ...]
    start: tuple[int, ...]

    def conv(self, k: Sequence[int], s: Sequence[int], p: Sequence[int], d: Sequence[int]) -> "_Geo":
        return _Geo(
            tuple(j * si for j, si in zip(self.jump, s)),
            tuple(r + di * (ki - 1) * j for r, ki, di, j in zip(self.size, k, d, self.jump)),
            tuple(a - pi * j for a, pi, j in zip(self.start, p, self.jump)),
        )


class _Global:
    """Every unit depends on the whole input."""


class _Unknown:
    def __init__(self, reason: str) -> None:
        self.reason = reason


_GLOBAL = _Global()

_ELEMENTWISE_MODULES: tuple[type[nn.Module], ...] = (
    nn.ReLU, nn.ReLU6, nn.LeakyReLU, nn.PReLU, nn.ELU, nn.SELU, nn.CELU, nn.GELU, nn.SiLU, nn.Mish,
    nn.Sigmoid, nn.Tanh, nn.Hardtanh, nn.Hardswish, nn.Hardsigmoid, nn.Softplus, nn.Identity,
    nn.Dropout, nn.Dropout1d, nn.Dropout2d, nn.Dropout3d, nn.AlphaDropout,
    nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d,
)
_GLOBAL_MODULES: tuple[type[nn.Module], ...] = (nn.Flatten, nn.Linear, nn.LayerNorm)
_ELEMENTWISE_FUNCS = {
    F.relu, torch.relu, F.relu6, F.leaky_relu, F.elu, F.selu, F.gelu, F.silu, F.mish, torch.sigmoid,
    torch.tanh, F.sigmoid, F.tanh, F.hardtanh, F.dropout, F.dropout2d, F.batch_norm, torch.clamp,
    F.softplus, operator.neg, torch.abs, torch.exp,
}
_ELEMENTWISE_METHODS = {
    "relu", "relu_", "sigmoid", "tanh", "clamp", "clamp_min", "contiguous", "clone", "float", "to",
    "detach", "abs", "exp", "neg", "type_as", "double", "half",
}
_MERGE_FUNCS = {operator.add, operator.sub, operator.mul, operator.truediv, torch.add, torch.sub, torch.mul,
                torch.cat, torch.maximum, torch.minimum}
_MERGE_METHODS = {"add", "sub", "mul", "div", "add_", "mul_"}
_GLOBAL_FUNCS = {torch.flatten, F.linear, F.adaptive_avg_pool2d, F.adaptive_max_pool2d, F.adaptive_avg_pool1d,
                 torch.mean, torch.sum, F.layer_norm}
_GLOBAL_METHODS = {"flatten", "view", "reshape", "mean", "sum", "amax", "max", "squeeze"}
_SHAPE_METHODS = {"size", "dim", "numel"}  # give numbers, not tensors with a geometry


def _tuple(v: Any, n: int) -> tuple[int, ...]:
    if isinstance(v, (tuple, list)):
        return tuple(int(x) for x in v)
    return (int(v),) * n


def _conv_geo(g: _Geo, mod: nn.Module | None, n: int, **kw: Any) -> _Geo:
    k: Any  # int, tuple of ints or (padding only) "same"/"valid", from the module or the keywords
    s: Any
    p: Any
    d: Any
    if mod is not None:
        k, s, d = mod.kernel_size, mod.stride, getattr(mod, "dilation", 1)
        p = mod.padding
    else:
        k, s, p, d = kw["kernel_size"], kw.get("stride") or kw["kernel_size"], kw.get("padding", 0), kw.get("dilation", 1)
    k, d = _tuple(k, n), _tuple(d, n)
    s = _tuple(s, n)
    if isinstance(p, str):
        if p == "valid":
            p = (0,) * n
        else:  # "same": PyTorch pads total d*(k-1), the smaller half on the left
            p = tuple((di * (ki - 1)) // 2 for ki, di in zip(k, d))
    return g.conv(k, s, _tuple(p, n), d)


def _union(geos: list[_Geo], what: str) -> _Geo | _Unknown:
    if len({g.jump for g in geos}) > 1:
        return _Unknown(f"{what} merges branches whose units are {[g.jump for g in geos]} pixels apart")
    lo = [min(g.start[i] for g in geos) for i in range(len(geos[0].jump))]
    hi = [max(g.start[i] + g.size[i] for g in geos) for i in range(len(geos[0].jump))]
    return _Geo(geos[0].jump, tuple(h - l for l, h in zip(lo, hi)), tuple(lo))


def _node_inputs(node: fx.Node) -> list[fx.Node]:
    return [a for a in node.all_input_nodes]


def _propagate(gm: fx.GraphModule, n: int) -> dict[fx.Node, Any]:
    mods = dict(gm.named_modules())
    state: dict[fx.Node, Any] = {}
    for node in gm.graph.nodes:
        ins = [state[a] for a in _node_inputs(node)]
        unknown = [s for s in ins if isinstance(s, _Unknown)]
        if node.op == "placeholder":
            state[node] = _Geo((1,) * n, (1,) * n, (0,) * n) if not state else _Unknown("second input")
            continue
        if node.op in ("get_attr", "output"):
            state[node] = ins[0] if ins else None
            continue
        if unknown:
            state[node] = unknown[0]
            continue
        geos = [s for s in ins if isinstance(s, _Geo)]
        if any(isinstance(s, _Global) for s in ins):
            state[node] = _GLOBAL
            continue
        if not geos:
            state[node] = None  # constants
            continue
        label = f"{node.op} {node.target if isinstance(node.target, str) else getattr(node.target, '__name__', node.target)} (node {node.name})"
        target = node.target
        try:
            if node.op == "call_module":
                mod = mods[str(target)]
                if isinstance(mod, (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.MaxPool1d, nn.MaxPool2d, nn.MaxPool3d,
                                    nn.AvgPool1d, nn.AvgPool2d, nn.AvgPool3d)):
                    state[node] = _conv_geo(geos[0], mod, n)
                elif isinstance(mod, _ELEMENTWISE_MODULES):
                    state[node] = geos[0]
                elif isinstance(mod, _GLOBAL_MODULES) or (
                    isinstance(mod, (nn.AdaptiveAvgPool1d, nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool1d, nn.AdaptiveMaxPool2d))
                    and all(o == 1 for o in _tuple(mod.output_size, n))
                ):
                    state[node] = _GLOBAL
                else:
                    state[node] = _Unknown(f"module {target!r} of type {type(mod).__name__}")
            elif node.op == "call_function":
                if target in _ELEMENTWISE_FUNCS:
                    state[node] = geos[0]
                elif target in _MERGE_FUNCS:
                    state[node] = _union(geos, label) if len(geos) > 1 else geos[0]
                elif target in _GLOBAL_FUNCS:
                    state[node] = _GLOBAL
                elif target in (F.conv1d, F.conv2d, F.conv3d):
                    w = node.args[1] if len(node.args) > 1 else node.kwargs["weight"]
                    if not isinstance(w, fx.Node) or w.op != "get_attr":
                        raise KeyError("weight not a parameter")
                    weight = gm.get_parameter(str(w.target))
                    args = list(node.args) + [None] * 7
                    state[node] = _conv_geo(
                        geos[0], None, n, kernel_size=tuple(weight.shape[2:]),
                        stride=node.kwargs.get("stride", args[3] or 1), padding=node.kwargs.get("padding", args[4] or 0),
                        dilation=node.kwargs.get("dilation", args[5] or 1),
                    )
                elif target in (F.max_pool1d, F.max_pool2d, F.avg_pool1d, F.avg_pool2d):
                    args = list(node.args) + [None] * 5
                    k = node.kwargs.get("kernel_size", args[1])
                    state[node] = _conv_geo(
                        geos[0], None, n, kernel_size=k, stride=node.kwargs.get("stride", args[2]) or k,
                        padding=node.kwargs.get("padding", args[3] or 0),
                        dilation=node.kwargs.get("dilation", 1),
                    )
                elif target is getattr:  # x.shape, x.dtype, ...
                    state[node] = None
                elif target is operator.getitem:
                    state[node] = _getitem(geos[0], node.args[1], n)
                elif target is F.pad:
                    pad = node.args[1] if len(node.args) > 1 else node.kwargs["pad"]
                    state[node] = _pad(geos[0], pad, n)
                else:
                    state[node] = _Unknown(label)
            elif node.op == "call_method":
                if target in _SHAPE_METHODS:
                    state[node] = None
                elif target in _ELEMENTWISE_METHODS:
                    state[node] = geos[0]
                elif target in _MERGE_METHODS:
                    state[node] = _union(geos, label) if len(geos) > 1 else geos[0]
                elif target in _GLOBAL_METHODS:
                    state[node] = _GLOBAL
                else:
                    state[node] = _Unknown(label)
            else:
                state[node] = _Unknown(label)
        except (KeyError, TypeError, AttributeError, IndexError) as err:
            state[node] = _Unknown(f"{label} ({err})")
    return state


def _getitem(g: _Geo, idx: Any, n: int) -> _Geo | _Unknown:
    if not isinstance(idx, tuple):
        idx = (idx,)
    if any(i is Ellipsis or i is None or not isinstance(i, slice) for i in idx):
        return _Unknown(f"indexing with {idx!r}")
    spatial = list(idx[2:])
    if len(idx) > 2 + n:
        return _Unknown(f"indexing with {idx!r}")
    if any(i != slice(None) for i in idx[:2]):
        if idx[0] != slice(None):
            return _Unknown("indexing the batch dimension")
    jump, start = list(g.jump), list(g.start)
    for d, sl in enumerate(spatial):
        a, step = sl.start or 0, sl.step or 1
        if a < 0 or step < 1:
            return _Unknown(f"negative slice {sl!r}")
        start[d] = start[d] + a * jump[d]
        jump[d] = jump[d] * step
    return _Geo(tuple(jump), g.size, tuple(start))


def _pad(g: _Geo, pad: Sequence[int], n: int) -> _Geo:
    start = list(g.start)
    # pad lists (left, right) pairs from the last dimension backwards
    for i in range(min(len(pad) // 2, n)):
        d = n - 1 - i
        start[d] -= int(pad[2 * i]) * g.jump[d]
    return _Geo(g.jump, g.size, tuple(start))


def _layer_node(gm: fx.GraphModule, layer: str) -> fx.Node | None:
    last = None
    for node in gm.graph.nodes:
        if node.op == "call_module" and node.target == layer:
            last = node
        elif layer in (node.meta.get("nn_module_stack") or {}) and node.op != "output":
            last = node
    return last


def receptive_field(model: nn.Module, layer: str, input_shape: Sequence[int] | None = None) -> ReceptiveField:
    """The receptive field of the units of ``layer``, from the model's traced graph.

    Parameters
    ----------
    model
        Any ``nn.Module`` that :func:`torch.fx.symbolic_trace` can trace (no data-dependent
        control flow). It is not modified.
    layer
        Dotted layer name.
    input_shape
        ``(C, *spatial)`` of one input; defaults to ``model.input_shape``.

    Returns
    -------
    ReceptiveField

    Raises
    ------
    ReceptiveFieldError
        If the model cannot be traced or an op between the input and ``layer`` is not
        understood (the message names it).
    """
    resolve_layer(model, layer)  # unknown names: LayerNotFoundError with suggestions
    shape = tuple(input_shape if input_shape is not None else getattr(model, "input_shape", ()) or ())
    if len(shape) < 2:
        raise ReceptiveFieldError(
            f"Receptive fields need an input of shape (C, H[, W]); got {shape or 'no input_shape'}. "
            "Pass input_shape=(C, H, W)."
        )
    n = len(shape) - 1
    from ..seam import is_exported

    if is_exported(model):
        return _measured_field(model, layer, shape)
    try:
        gm = fx.symbolic_trace(model)
    except Exception as err:  # fx raises many types; the message says why
        raise ReceptiveFieldError(
            f"Cannot compute the receptive field of {layer!r}: torch.fx cannot trace "
            f"{type(model).__name__} ({type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}). "
            "Receptive fields need a model without data-dependent control flow."
        ) from err
    node = _layer_node(gm, layer)
    if node is None:
        raise ReceptiveFieldError(f"Layer {layer!r} does not appear in the traced graph of {type(model).__name__}.")
    st = _propagate(gm, n)[node]
    spatial = tuple(int(s) for s in shape[1:])
    if isinstance(st, _Unknown):
        raise ReceptiveFieldError(
            f"Cannot compute the receptive field of {layer!r}: between the input and this layer the "
            f"model uses {st.reason}, whose geometry layerscope does not know. Supported: Conv/Pool "
            "modules and functions, element-wise ops, residual adds, strided slicing, constant padding."
        )
    if st is None or isinstance(st, _Global):
        return ReceptiveField(layer, (1,) * n, spatial, (0,) * n, spatial, is_global=True)
    return ReceptiveField(layer, st.jump, st.size, st.start, spatial)


def _measured_field(model: nn.Module, layer: str, shape: tuple[int, ...], n_probe: int = 64) -> ReceptiveField:
    """The receptive field of ``layer`` measured as the support of the input gradient.

    For models torch.fx cannot trace but whose geometry is fixed, such as ``torch.export`` programs
    (their graphs are ATen ops, not modules). Written by hand: the union over ``n_probe`` random
    inputs of the input pixels whose gradient is non-zero for the unit at the centre of the map
    (ReLU and max-pool gates close some paths for one input, never for all of them), and for its
    neighbour one step further on every axis, which gives the jump. Equal to the graph-derived field
    where both apply (tested on the bundled ResNet-20). A field wider than the input covers it
    whole (``is_global``); a field clipped on one side only cannot be measured and is refused.
    """
    from ..capture import capture, model_device, model_state_guard

    dev = model_device(model)
    gen = torch.Generator().manual_seed(0)
    spatial = tuple(int(s) for s in shape[1:])
    n = len(spatial)
    static = getattr(model, "layerscope_static_batch", None)
    per_pass = int(static) if static else n_probe  # a static-batch program takes batches of its size
    hits: dict[int, torch.Tensor] = {}
    centre: tuple[int, ...] = ()
    nxt: tuple[int, ...] = ()
    with model_state_guard(model), torch.enable_grad():
        for p in model.parameters():
            p.requires_grad_(False)
        with capture(model, [layer], detach=False, grad=True) as cap:
            for _ in range(max(1, -(-n_probe // per_pass))):
                x = torch.randn((per_pass, *shape), generator=gen).to(dev).requires_grad_(True)
                cap.run(x)
                out = cap[layer]
                if out.ndim < 2 + n:
                    return ReceptiveField(layer, (1,) * n, spatial, (0,) * n, spatial, is_global=True, method="measured")
                maps = tuple(int(s) for s in out.shape[2 : 2 + n])
                centre = tuple(m // 2 for m in maps)
                nxt = tuple(min(c + 1, m - 1) for c, m in zip(centre, maps))
                for i, pos in enumerate((centre, nxt)):
                    unit = out[(slice(None), slice(None), *pos)].sum()
                    (g,) = torch.autograd.grad(unit, x, retain_graph=i == 0)
                    hit = g.detach().abs().sum(dim=(0, 1)) > 0
                    hits[i] = hit if i not in hits else hits[i] | hit

    def box(hit: torch.Tensor) -> list[tuple[int, int]]:
        out_box = []
        for d in range(n):
            along = hit if n == 1 else hit.movedim(d, 0).flatten(1).any(dim=1)
            idx = torch.nonzero(along).flatten()
            if idx.numel() == 0:
                raise ReceptiveFieldError(f"Layer {layer!r} does not depend on the input; no receptive field.")
            out_box.append((int(idx.min()), int(idx.max()) + 1))
        return out_box

    b0, b1 = box(hits[0]), box(hits[1])
    clipped = [lo == 0 or hi == size for (lo, hi), size in zip(b0, spatial)]
    whole = all(lo == 0 and hi == size for (lo, hi), size in zip(b0, spatial))
    if whole:
        return ReceptiveField(layer, (1,) * n, spatial, (0,) * n, spatial, is_global=True, method="measured")
    if any(clipped):
        raise ReceptiveFieldError(
            f"The receptive field of {layer!r} reaches past the input border at the centre unit, so it cannot be "
            "measured from this model; patches need the field (use a layer nearer the input, or --no-patches)."
        )
    jump = tuple(max(b1[d][0] - b0[d][0], 1) if nxt[d] != centre[d] else 1 for d in range(n))
    size = tuple(hi - lo for lo, hi in b0)
    start = tuple(b0[d][0] - centre[d] * jump[d] for d in range(n))
    return ReceptiveField(layer, jump, size, start, spatial, method="measured")
