"""Helpers for the no-side-effect matrix (``tests/adversarial/test_no_side_effects.py``).

A tiny convnet in four states (train mode, BatchNorm, in-place ReLU, user hooks, or all at once),
a module that raises on its N-th call, and a snapshot of everything an analysis could leave behind
on a model: parameters and buffers (bitwise), ``training`` flags, ``requires_grad``, ``.grad``,
every hook dictionary of every module and parameter, the global module hooks, the module and
parameter objects themselves, the grad mode and torch's and numpy's global random states.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any, cast

import numpy as np
import torch
from torch import nn
from torch.nn.modules import module as module_mod

#: every per-module hook dictionary torch keeps (read with getattr: not all exist in every version)
MODULE_HOOK_DICTS = (
    "_forward_hooks",
    "_forward_hooks_with_kwargs",
    "_forward_hooks_always_called",
    "_forward_pre_hooks",
    "_forward_pre_hooks_with_kwargs",
    "_backward_hooks",
    "_backward_pre_hooks",
    "_state_dict_hooks",
    "_state_dict_pre_hooks",
    "_load_state_dict_pre_hooks",
    "_load_state_dict_post_hooks",
)
#: torch's process-wide module hooks (``register_module_forward_hook`` etc.)
GLOBAL_HOOK_DICTS = (
    "_global_forward_hooks",
    "_global_forward_hooks_always_called",
    "_global_forward_pre_hooks",
    "_global_backward_hooks",
    "_global_backward_pre_hooks",
)
#: model states of the matrix
STATES = ("train", "batchnorm", "inplace", "hooks", "all")
N_CLASSES = 3


class Boom(nn.Module):
    """Identity that raises ``exc("boom ...")`` from its ``fail_at``-th call on (``None``: never).

    ``exc`` is ``RuntimeError`` (a failing model) or ``KeyboardInterrupt`` (Ctrl-C in a notebook).
    """

    def __init__(self) -> None:
        super().__init__()
        self.calls = 0
        self.fail_at: int | None = None
        self.exc: type[BaseException] = RuntimeError

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        if self.fail_at is not None and self.calls >= self.fail_at:
            raise self.exc(f"boom on call {self.calls}")
        return x


@dataclass
class UserHooks:
    """Counters of the hooks a user registered before the analysis."""

    forward: int = 0
    pre: int = 0
    backward: int = 0
    handles: list[Any] = field(default_factory=list)


def build_model(state: str) -> tuple[nn.Sequential, UserHooks | None]:
    """The tiny convnet (input ``(1, 8, 8)``, 3 classes) in ``state`` (one of :data:`STATES`).

    ``train``: plain layers, ``train()`` mode (the Dropout before ``fc`` draws random numbers
    if an analysis forgets ``eval()``). ``batchnorm``: a BatchNorm after ``conv1`` with
    non-trivial running statistics, ``train()`` mode (an analysis that forgets ``eval()`` moves
    them). ``inplace``: ``ReLU(inplace=True)`` after both convs, ``eval()`` mode. ``hooks``: a
    forward hook on ``conv2``, a forward pre-hook on ``fc`` and a full backward hook on ``fc``,
    ``eval()`` mode. ``all``: everything at once, ``train()`` mode, with ``conv1.bias`` frozen
    (and, see :func:`give_user_grads`, gradients the user accumulated before).
    """
    if state not in STATES:
        raise ValueError(state)
    bn = state in ("batchnorm", "all")
    inplace = state in ("inplace", "all")
    layers: list[tuple[str, nn.Module]] = [("conv1", nn.Conv2d(1, 4, 3, padding=1))]
    if bn:
        layers.append(("bn1", nn.BatchNorm2d(4)))
    layers += [
        ("relu1", nn.ReLU(inplace=inplace)),
        ("pool1", nn.MaxPool2d(2)),
        ("boom", Boom()),  # below every analysed layer: runs in every (also truncated) forward pass
        ("conv2", nn.Conv2d(4, 6, 3, padding=1)),
        ("relu2", nn.ReLU(inplace=inplace)),
        ("gap", nn.AdaptiveAvgPool2d(1)),
        ("flat", nn.Flatten()),
        ("drop", nn.Dropout(0.5)),  # in train mode it draws from torch's global generator
        ("fc", nn.Linear(6, N_CLASSES)),
    ]
    model = nn.Sequential(OrderedDict(layers))
    if bn:
        bnm = model.get_submodule("bn1")
        assert isinstance(bnm, nn.BatchNorm2d)
        with torch.no_grad():
            model.get_buffer("bn1.running_mean").copy_(torch.tensor([0.1, -0.2, 0.3, 0.05]))
            model.get_buffer("bn1.running_var").copy_(torch.tensor([1.5, 0.7, 1.1, 2.0]))
            bnm.weight.copy_(torch.tensor([1.2, 0.8, 1.0, 0.9]))
            bnm.bias.copy_(torch.tensor([0.1, 0.0, -0.1, 0.2]))
        model.get_buffer("bn1.num_batches_tracked").fill_(7)
    model.train(state in ("train", "batchnorm", "all"))
    if state == "all":
        model.get_parameter("conv1.bias").requires_grad_(False)  # a frozen parameter must stay frozen
    hooks = None
    if state in ("hooks", "all"):
        hooks = UserHooks()

        def fwd(m: nn.Module, i: Any, o: Any) -> None:
            hooks.forward += 1

        def pre(m: nn.Module, i: Any) -> None:
            hooks.pre += 1

        def bwd(m: nn.Module, gi: Any, go: Any) -> None:
            hooks.backward += 1

        hooks.handles = [
            model.get_submodule("conv2").register_forward_hook(fwd),
            model.get_submodule("fc").register_forward_pre_hook(pre),
            model.get_submodule("fc").register_full_backward_hook(bwd),
        ]
    return model, hooks


def give_user_grads(model: nn.Module) -> None:
    """Set ``.grad`` on two parameters as a user's pending gradient step would leave them."""
    g = torch.Generator().manual_seed(3)
    for p in (model.get_parameter("fc.weight"), model.get_parameter("conv2.weight")):
        assert isinstance(p, nn.Parameter)
        p.grad = torch.randn(p.shape, generator=g)


def boom(model: nn.Module) -> Boom:
    b = model.boom
    assert isinstance(b, Boom)
    return b


def _hooks_of(obj: Any, names: tuple[str, ...]) -> dict[str, tuple[tuple[Any, int], ...]]:
    out = {}
    for n in names:
        d = getattr(obj, n, None)
        if d is not None:
            out[n] = tuple((k, id(v)) for k, v in d.items())
    return out


@dataclass
class Snapshot:
    """Everything on and around a model that an analysis must leave as it was."""

    state: dict[str, torch.Tensor]
    training: dict[str, bool]
    requires_grad: dict[str, bool]
    grads: dict[str, torch.Tensor | None]
    module_hooks: dict[str, dict[str, tuple[tuple[Any, int], ...]]]
    param_hooks: dict[str, dict[str, tuple[tuple[Any, int], ...]]]
    global_hooks: dict[str, tuple[tuple[Any, int], ...]]
    modules: dict[str, int]
    params: dict[str, int]
    grad_enabled: bool
    torch_rng: torch.Tensor
    numpy_rng: Any


def snapshot(model: nn.Module) -> Snapshot:
    """Take a :class:`Snapshot` of ``model`` (tensors cloned)."""
    return Snapshot(
        state={k: v.detach().clone() for k, v in model.state_dict(keep_vars=True).items()},
        training={n: m.training for n, m in model.named_modules()},
        requires_grad={n: p.requires_grad for n, p in model.named_parameters()},
        grads={n: None if p.grad is None else p.grad.clone() for n, p in model.named_parameters()},
        module_hooks={n: _hooks_of(m, MODULE_HOOK_DICTS) for n, m in model.named_modules()},
        param_hooks={n: _hooks_of(p, ("_backward_hooks", "_post_accumulate_grad_hooks"))
                     for n, p in model.named_parameters()},
        global_hooks=_hooks_of(module_mod, GLOBAL_HOOK_DICTS),
        modules={n: id(m) for n, m in model.named_modules()},
        params={n: id(p) for n, p in model.named_parameters()},
        grad_enabled=torch.is_grad_enabled(),
        torch_rng=torch.get_rng_state(),
        numpy_rng=cast(Any, np.random.get_state())[1].copy(),
    )


def differences(model: nn.Module, before: Snapshot) -> list[str]:
    """What changed on ``model`` since ``before`` (empty: nothing)."""
    after = snapshot(model)
    diffs: list[str] = []
    if after.state.keys() != before.state.keys():
        diffs.append(f"state_dict keys {sorted(before.state)} -> {sorted(after.state)}")
    for k in before.state.keys() & after.state.keys():
        a, b = before.state[k], after.state[k]
        if a.dtype != b.dtype or a.shape != b.shape or not torch.equal(a, b):
            diffs.append(f"state_dict[{k!r}] changed")
    for name, attr in (("training", "training"), ("requires_grad", "requires_grad"), ("module objects", "modules"),
                       ("parameter objects", "params"), ("hooks of modules", "module_hooks"),
                       ("hooks of parameters", "param_hooks"), ("global module hooks", "global_hooks")):
        b, a = getattr(before, attr), getattr(after, attr)
        if a != b:
            keys = sorted(k for k in set(a) | set(b) if a.get(k) != b.get(k))
            diffs.append(f"{name} changed at {keys}")
    for k, g in before.grads.items():
        g2 = after.grads.get(k)
        if (g is None) != (g2 is None) or (g is not None and g2 is not None and not torch.equal(g, g2)):
            diffs.append(f"{k}.grad changed ({'none' if g is None else 'set'} -> {'none' if g2 is None else 'set'})")
    if after.grad_enabled != before.grad_enabled:
        diffs.append(f"grad mode {before.grad_enabled} -> {after.grad_enabled}")
    if not torch.equal(after.torch_rng, before.torch_rng):
        diffs.append("torch's global random state changed (seeded or drawn from)")
    if not np.array_equal(after.numpy_rng, before.numpy_rng):
        diffs.append("numpy's global random state changed (seeded or drawn from)")
    return diffs
