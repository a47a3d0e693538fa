"""Project ONE activation back to input space: plain gradient, deconvnet, guided backprop.

Zeiler & Fergus (2014, arXiv 1311.2901, §2.1) project a single activation of a feature map back
to pixels: all other activations of that layer are set to zero, then the signal goes down the
network — max-pool "switches" recorded in the forward pass place each value where the maximum
was, the signal is rectified (ReLU) and filtered with the transposed filters. With autograd this
is a backward pass from that one activation in which only the rule at each ReLU differs:

======================  ==================================================
rule                    what each ReLU passes back
======================  ==================================================
``"gradient"``          ``grad_out`` where the forward input was > 0
``"deconvnet"``         ``relu(grad_out)``, no forward mask (Z&F)
``"guided"``            both: forward mask and ``relu(grad_out)``
                        (Springenberg et al. 2015, guided backprop)
======================  ==================================================

Max-pool switches, transposed convolutions, batch norm and residual adds come from autograd.

**Seed convention.** The backward pass is seeded with **1** at the chosen activation (0 at every
other one), whatever the activation's value; the value itself is returned separately
(``values``). With the plain gradient the map is then exactly ``d activation / d input``. The
deconvnet and guided rules are positively homogeneous, so for an activation ``a > 0`` the map of
Zeiler & Fergus (who pass the activation's own value down) is ``a`` times this map — the same
picture. For ``a <= 0`` (a pre-ReLU layer, a position chosen by hand) seeding with ``a`` would
not give a sign-flipped map under these rules (they rectify the backward signal) but a
different, meaningless one; seeding with 1 keeps one meaning for every activation: the input
pattern that drives this unit *up*.

The rule is applied by a forward hook on every ``nn.ReLU`` module that swaps the module's output
for the same values computed by a small autograd function whose backward implements the rule
(forward hooks may replace a module's output). ReLUs that are *not* ``nn.ReLU`` modules cannot be
reached that way, so before projecting with ``"deconvnet"`` or ``"guided"`` the forward pass is
run under a :class:`torch.overrides.TorchFunctionMode` that records every rectifier call (``F.relu``,
``torch.relu``, ``Tensor.relu_``, ``clamp(min=0)``, ``leaky_relu``, ...) made outside an
``nn.ReLU`` module; if there is one, the projection is refused with a message naming it — never
a silent fall back to plain gradients. (Rectification written as arithmetic, e.g. ``x * (x > 0)``
or ``torch.maximum(x, zeros)``, cannot be told apart from other ops and is not detected.)
``nn.ReLU(inplace=True)`` modules are handled by switching
them to out-of-place for the duration of the call (restored in ``finally``).

Every hook is removed and every flag restored on exit, also after an error.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Any, Iterator, Literal, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.overrides import TorchFunctionMode

from ..capture import capture, model_device, model_state_guard
from ..exceptions import InputShapeError, ParameterError
from ..layers import resolve_layer
from ._dtype import model_dtype

__all__ = ["Rule", "RULES", "UnsupportedModelError", "ActivationProjections", "project_activations", "project_activation",
           "relu_guard"]

Rule = Literal["gradient", "deconvnet", "guided"]
RULES: tuple[str, ...] = ("gradient", "deconvnet", "guided")


class UnsupportedModelError(ParameterError):
    """The model uses an op the requested method cannot handle correctly (e.g. functional ReLU)."""


class _RuleReLU(torch.autograd.Function):
    """ReLU whose backward applies a projection rule (``ctx.rule``)."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, rule: str) -> torch.Tensor:  # type: ignore[override]
        ctx.rule = rule
        ctx.save_for_backward(x)
        return x.clamp_min(0)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor, None]:  # type: ignore[override]
        (x,) = ctx.saved_tensors
        if ctx.rule == "deconvnet":
            return grad.clamp_min(0), None
        if ctx.rule == "guided":
            return grad.clamp_min(0) * (x > 0).to(grad.dtype), None
        return grad * (x > 0).to(grad.dtype), None


# Functions that rectify; called outside an nn.ReLU module they escape the rule hooks.
_RECTIFIERS = {
    F.relu, torch.relu, torch.relu_, F.relu_, F.relu6, F.leaky_relu, F.leaky_relu_, F.threshold, F.threshold_,  # type: ignore[attr-defined]  # torch stubs lack F.threshold_
    F.hardtanh, F.hardtanh_, F.rrelu, F.rrelu_, F.prelu, F.elu, F.elu_, F.selu, F.celu, F.gelu, F.silu,
    F.mish, F.hardswish, F.softplus, torch.nn.functional.glu,
}
_RECTIFIER_METHODS = {"relu", "relu_"}
_CLAMPS = {torch.clamp, torch.clamp_min, torch.clip}
_CLAMP_METHODS = {"clamp", "clamp_", "clamp_min", "clamp_min_", "clip", "clip_"}


def _fname(func: Any) -> str:
    return getattr(func, "__name__", repr(func))


class _RectifierSpy(TorchFunctionMode):
    """Records rectifier calls made outside ``nn.ReLU`` modules during a forward pass."""

    def __init__(self) -> None:
        super().__init__()
        self.inside_relu = 0
        self.stack: list[str] = []
        self.found: list[str] = []

    def __torch_function__(self, func: Any, types: Any, args: Sequence[Any] = (), kwargs: Any = None) -> Any:
        kwargs = kwargs or {}
        name = _fname(func)
        rect = func in _RECTIFIERS or name in _RECTIFIER_METHODS and isinstance(args[0] if args else None, torch.Tensor)
        if not rect and (func in _CLAMPS or name in _CLAMP_METHODS):
            lo = kwargs.get("min", args[1] if len(args) > 1 else None)
            rect = lo is not None
        if rect and not self.inside_relu:
            where = self.stack[-1] if self.stack else "<root>"
            self.found.append(f"{name} in {where!r}")
        return func(*args, **kwargs)


@contextlib.contextmanager
def relu_guard(model: nn.Module, rule: str) -> Iterator[_RectifierSpy | None]:
    """Install the rule on every ``nn.ReLU`` of ``model`` (and a spy when the rule needs one).

    Yields the spy (``None`` for ``"gradient"``); after the forward pass, call
    :func:`_check_spy`. On exit all hooks are removed and ``inplace`` flags restored.
    """
    if rule not in RULES:
        raise ParameterError(f"rule must be one of {', '.join(RULES)}; got {rule!r}.")
    from ..seam import is_exported

    if rule != "gradient" and is_exported(model):
        # its rectifiers are ATen ops inside the program, not nn.ReLU modules: the rule could not be
        # installed, and the plain gradient would come back under the rule's name
        raise UnsupportedModelError(
            f"The {rule} rule replaces the backward pass of the model's ReLU modules, but an exported program "
            "(.pt2) runs ATen ops, not modules, so layerscope cannot apply it. Use rule 'gradient' (--rule "
            "gradient), or load the module the program was exported from."
        )
    handles: list[Any] = []
    inplace: list[tuple[nn.ReLU, bool]] = []
    spy = _RectifierSpy() if rule != "gradient" else None
    try:
        if rule != "gradient":
            names = {m: n for n, m in model.named_modules()}
            for mod, name in names.items():
                if isinstance(mod, nn.ReLU):
                    inplace.append((mod, mod.inplace))
                    mod.inplace = False

                    def pre(m: nn.Module, inp: Any) -> None:
                        spy.inside_relu += 1  # type: ignore[union-attr]

                    def post(m: nn.Module, inp: Any, out: Any) -> torch.Tensor:
                        try:
                            return _RuleReLU.apply(inp[0], rule)
                        finally:
                            spy.inside_relu -= 1  # type: ignore[union-attr]

                    handles.append(mod.register_forward_pre_hook(pre))
                    handles.append(mod.register_forward_hook(post))
                else:

                    def push(m: nn.Module, inp: Any, _n: str = name) -> None:
                        spy.stack.append(_n or f"{type(model).__name__}.forward (root)")  # type: ignore[union-attr]

                    def pop(m: nn.Module, inp: Any, out: Any) -> None:
                        if spy.stack:  # type: ignore[union-attr]
                            spy.stack.pop()  # type: ignore[union-attr]

                    handles.append(mod.register_forward_pre_hook(push))
                    handles.append(mod.register_forward_hook(pop, always_call=True))
        yield spy
    finally:
        for h in handles:
            h.remove()
        for mod, flag in inplace:
            mod.inplace = flag


def _check_spy(spy: _RectifierSpy | None, model: nn.Module, rule: str) -> None:
    if spy is None or not spy.found:
        return
    calls = sorted(set(spy.found))
    raise UnsupportedModelError(
        f"Rule {rule!r} needs every ReLU of {type(model).__name__} to be an nn.ReLU module, but its "
        f"forward() calls {', '.join(calls[:5])}{' ...' if len(calls) > 5 else ''}. These rectifiers "
        "cannot be given the projection rule, and layerscope will not silently fall back to plain "
        "gradients. Fix: use nn.ReLU modules in the model (not F.relu / torch.relu / relu_ / clamp, "
        "nor LeakyReLU-like units), or use rule='gradient'."
    )


@dataclass(frozen=True)
class ActivationProjections:
    """Projections of single activations to input space (one rule), from :func:`project_activations`.

    Attributes
    ----------
    layer, rule
        Where from and with which rule.
    maps
        ``(B, C, *spatial)`` float32: the projection of each activation (model-input space),
        seeded with 1 at the activation (see the module's docstring).
    units
        ``(B,)`` channel of each projected activation.
    positions
        ``(B, n_spatial)`` int position in the layer's map (empty second axis for dense layers).
    values
        ``(B,)`` the values of the projected activations (not used as the seed).
    """

    layer: str
    rule: str
    maps: np.ndarray
    units: np.ndarray
    positions: np.ndarray
    values: np.ndarray


def project_activations(
    model: nn.Module,
    x: torch.Tensor,
    layer: str,
    units: Sequence[int] | np.ndarray | int,
    positions: Sequence[Sequence[int]] | np.ndarray | None = None,
    *,
    rule: Rule = "deconvnet",
    device: torch.device | str | None = None,
) -> ActivationProjections:
    """Project one activation per input back to input space (Zeiler & Fergus 2014, §2.1).

    For input ``x[b]`` the activation of channel ``units[b]`` at ``positions[b]`` of ``layer``
    is seeded with 1, every other activation of that layer with 0, and the signal is sent down
    to the input with ``rule`` at each ReLU (for an activation ``a > 0`` Zeiler & Fergus's map,
    seeded with ``a``, is ``a`` times this one; see the module's docstring). The inputs are independent: the batch is
    one forward and one backward pass (the model runs in ``eval()`` mode).

    Parameters
    ----------
    model
        Any ``nn.Module``; unchanged afterwards (parameters, flags, no hooks left).
    x
        ``(B, C, *spatial)`` model inputs.
    layer
        Dotted layer name whose activation is projected.
    units
        ``(B,)`` channels (or one int for all).
    positions
        ``(B, n_spatial)`` positions in the layer's map; default the position of each unit's
        maximum for its input. Ignored for dense layers.
    rule
        ``"gradient"``, ``"deconvnet"`` (Z&F) or ``"guided"``.

    Returns
    -------
    ActivationProjections
        ``maps`` of shape ``(B, C, *spatial)``; ``values`` the activations.

    Raises
    ------
    UnsupportedModelError
        For ``"deconvnet"``/``"guided"`` when the model rectifies outside ``nn.ReLU`` modules.
    """
    module = resolve_layer(model, layer)
    if not isinstance(x, torch.Tensor) or x.ndim < 2:
        raise InputShapeError(f"x must be a batch tensor (B, C, ...); got {type(x).__name__} {getattr(x, 'shape', '')}.")
    dev = model_device(model, device)
    b = x.shape[0]
    units_arr = np.broadcast_to(np.asarray(units, dtype=np.int64), (b,)).copy()
    store: dict[str, torch.Tensor] = {}

    with model_state_guard(model):
        model.eval()
        for p in model.parameters():
            p.requires_grad_(False)
        xf = x.detach().to(dev, model_dtype(model)) if x.is_floating_point() else x.detach().to(dev)
        xin = xf.clone().requires_grad_(True)
        with relu_guard(model, rule) as spy:
            # through capture: the layer's output as the model computes it (copied if changed in
            # place later), the pass stopped after it, static-batch programs run in their batch size
            with torch.enable_grad(), (spy if spy is not None else contextlib.nullcontext()):
                with capture(model, [layer], detach=False, grad=True, stop_early=True, eval=False) as cap:
                    cap.run(xin)
                    if layer in cap.activations:
                        store["out"] = cap.activations[layer]
            _check_spy(spy, model, rule)
            if "out" not in store:
                raise InputShapeError(f"Layer {layer!r} did not run in the forward pass; pick a layer that forward() uses.")
            out = store["out"]
            if not out.requires_grad:
                raise UnsupportedModelError(f"The output of {layer!r} does not depend differentiably on the input.")
            if out.ndim < 2:
                raise InputShapeError(f"Layer {layer!r} gives a tensor of shape {tuple(out.shape)}; expected (B, C, ...).")
            n_ch = out.shape[1]
            if (units_arr < 0).any() or (units_arr >= n_ch).any():
                raise ParameterError(f"units must be channels in [0, {n_ch - 1}] of {layer!r}; got {units_arr.tolist()}.")
            flat = out.detach().flatten(2) if out.ndim > 2 else out.detach().unsqueeze(2)
            rows = torch.arange(b, device=out.device)
            uidx = torch.as_tensor(units_arr, device=out.device)
            spatial = tuple(out.shape[2:])
            if positions is None or not spatial:
                flat_pos = flat[rows, uidx].argmax(dim=1)
            else:
                pos = np.asarray(positions, dtype=np.int64).reshape(b, len(spatial))
                for d, n in enumerate(spatial):
                    if (pos[:, d] < 0).any() or (pos[:, d] >= n).any():
                        raise ParameterError(f"positions must lie inside the {spatial} map of {layer!r}; got {pos.tolist()}.")
                flat_pos = torch.as_tensor(np.ravel_multi_index(tuple(pos.T), spatial), device=out.device)
            values = flat[rows, uidx, flat_pos]
            seed = torch.zeros_like(flat)
            seed[rows, uidx, flat_pos] = 1.0  # the stated convention: unit seed, value kept apart
            (grad,) = torch.autograd.grad(out, xin, grad_outputs=seed.view_as(out))
    pos_out = (
        np.stack(np.unravel_index(flat_pos.cpu().numpy(), spatial), axis=1) if spatial else np.zeros((b, 0), np.int64)
    )
    return ActivationProjections(
        layer=layer,
        rule=rule,
        maps=grad.detach().cpu().float().numpy(),
        units=units_arr,
        positions=pos_out.astype(np.int64),
        values=values.cpu().float().numpy(),
    )


def project_activation(
    model: nn.Module,
    x: torch.Tensor,
    layer: str,
    unit: int,
    position: Sequence[int] | None = None,
    *,
    rule: Rule = "deconvnet",
) -> np.ndarray:
    """Projection ``(C, *spatial)`` of one activation of one input ``x`` ``(C, *spatial)``.

    See :func:`project_activations`.
    """
    res = project_activations(model, x.unsqueeze(0), layer, [unit], None if position is None else [position], rule=rule)
    return res.maps[0]

