"""No analysis changes the user's model: a matrix in the style of Captum's hook-removal tests.

One table (:data:`ENTRIES`) of every public analysis entry point that takes a model, each called at
tiny sizes on the tiny convnet of :mod:`sideeffects`. Every entry is run under every outcome:

* ``success``: a valid call;
* ``bad``: an out-of-range unit / class / layer: must raise a ``LayerscopeError``;
* ``raise``: a module of the model raises ``RuntimeError`` from its N-th call: the error (or a
  layerscope error caused by it) must reach the caller, not be swallowed;

on the model state ``all`` (train mode + BatchNorm + in-place ReLU + Dropout + user hooks + a frozen
parameter + pending user gradients), and each single model state (train, BatchNorm, in-place, user
hooks) under a representative subset. The raise outcome is repeated on each analysis' last forward
pass, and as a ``KeyboardInterrupt`` half-way; every analysis is also run inside
``torch.inference_mode()``. After each call
the model must be exactly as before (:func:`sideeffects.differences`: state_dict bitwise incl.
buffers and ``num_batches_tracked``, training flags, requires_grad, ``.grad``, every hook dict of
every module and parameter, the global hooks, module and parameter objects, grad mode), the data
tensors unchanged, and the user's hooks must still fire exactly once per forward pass and give the
same output as before.

The array-only analyses (``project``, ``neuron_projection``, ``linear_probe``, ``linear_cka``,
``cka_matrix``, ``neighborhood_hit``) take no model; they are checked to leave their input arrays
unchanged and to refuse a bad class. ``feature_evolution`` takes a run folder, not a model, and is
not in the table.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np
import pytest
import torch
from torch import nn
from torch.utils.data import TensorDataset

import layerscope as ls
from layerscope.exceptions import LayerscopeError
from layerscope.featurevis import objectives
from sideeffects import STATES, UserHooks, boom, build_model, differences, give_user_grads, snapshot

N = 12
BS = 5  # 3 batches of the 12 samples: a module failing on its 2nd call fails mid-way
SHAPE = (1, 8, 8)


def _data() -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    return torch.randn(N, *SHAPE, generator=g), torch.arange(N) % 3


Call = Callable[[nn.Module, torch.Tensor, torch.Tensor, bool], Any]


def _capture(m: nn.Module, x: torch.Tensor, y: torch.Tensor, bad: bool) -> Any:
    with ls.capture(m, ["conv2", "nope" if bad else "fc"]) as cap:
        cap.run(x[:BS])
    return cap


def _frames(x: torch.Tensor, y: torch.Tensor) -> Any:
    """The data as speech frames: 4 speakers, 2 frames per utterance."""
    from layerscope.data.base import ArrayDataset, Normalization

    n = x.shape[0]
    return ArrayDataset(x, y, classes=["a", "b", "c"], normalization=Normalization(scale=1.0),
                        extra_labels={"speaker": np.arange(n) % 4, "utterance": np.arange(n) // 2})


@dataclass(frozen=True)
class Entry:
    """One analysis: ``call(model, x, y, bad)``; ``fail_at``: the forward call on which the model raises."""

    call: Call
    fail_at: int = 2
    #: outcome -> reason, for known bugs (strict xfail)
    bugs: dict[str, str] = field(default_factory=dict)



ENTRIES: dict[str, Entry] = {
    "list_layers": Entry(lambda m, x, y, bad: ls.list_layers(m, torch.zeros(2, 3, 8, 8) if bad else x[:2]), fail_at=1),
    "capture": Entry(_capture, fail_at=1),
    "collect_activations": Entry(lambda m, x, y, bad: ls.collect_activations(
        m, TensorDataset(x, y), ["conv2", "conv9" if bad else "fc"], batch_size=BS, predictions=True)),
    "capture_dataset": Entry(lambda m, x, y, bad: ls.capture_dataset(
        m, TensorDataset(x, y), ["nope" if bad else "conv2"], batch_size=BS)),
    "top_activations": Entry(lambda m, x, y, bad: ls.top_activations(
        m, TensorDataset(x, y), "conv2", units=[0, 9 if bad else 1], k=2, batch_size=BS, patches=True,
        rule="deconvnet")),
    "deconv_projections": Entry(lambda m, x, y, bad: ls.deconv_projections(
        m, TensorDataset(x, y), "conv2", units=[6 if bad else 1], indices=[0, 1, 2, 3, 4, 5, 6], batch_size=BS,
        rules=("gradient", "guided"))),
    "project_activations": Entry(lambda m, x, y, bad: ls.project_activations(
        m, x[:2], "conv2", [0, 6 if bad else 5], rule="guided"), fail_at=1),
    "project_activation": Entry(lambda m, x, y, bad: ls.project_activation(
        m, x[0], "conv2", 6 if bad else 5, (1, 2), rule="deconvnet"), fail_at=1),
    "occlusion": Entry(lambda m, x, y, bad: ls.occlusion(
        m, x[:1], target=3 if bad else 2, size=4, stride=2, batch_size=4)),
    "occlusion_maps": Entry(lambda m, x, y, bad: ls.occlusion_maps(
        m, TensorDataset(x, y), [0, 1], size=4, stride=4, value=0.0, layer="conv2", unit=6 if bad else 5,
        batch_size=2)),
    "invariance_curves": Entry(lambda m, x, y, bad: ls.invariance_curves(
        m, x[:3], ((y[:3] + 5) if bad else y[:3]).numpy(), layers=["conv2", "fc"], transforms=["translate"],
        ranges={"translate": [0, 1, 2]}, batch_size=2), bugs={}),
    "correspondence": Entry(lambda m, x, y, bad: ls.correspondence(
        m, TensorDataset(x, y), ["conv2"], parts={"a": (0, 0, 3, 3)}, n_random=2, label=3 if bad else 1)),
    "maximize": Entry(lambda m, x, y, bad: ls.maximize(
        m, "fc", [3 if bad else 2], steps=2, input_shape=SHAPE, data=TensorDataset(x, y), batch_size=BS)),
    "render": Entry(lambda m, x, y, bad: ls.render(
        m, objectives.channel("conv2", 6 if bad else 5), steps=2, input_shape=SHAPE, param="pixel")),
    "unit_data_max": Entry(lambda m, x, y, bad: ls.unit_data_max(
        m, TensorDataset(x, y), "conv2", [6 if bad else 5], batch_size=BS), bugs={}),
    "receptive_field": Entry(lambda m, x, y, bad: ls.receptive_field(m, "conv9" if bad else "conv2", SHAPE),
                             fail_at=1),
    "project_model": Entry(lambda m, x, y, bad: ls.project_model(
        m, TensorDataset(x, y), ["conv2", "nope" if bad else "fc"], n=None, method="pca", thumbnails=0,
        batch_size=BS)),
    "project_neurons": Entry(lambda m, x, y, bad: ls.project_neurons(
        m, TensorDataset(x, y), "conv2", n=None, classes=[0, 3 if bad else 2], method="mds", n_estimators=5,
        batch_size=BS)),
    "probe_model": Entry(lambda m, x, y, bad: ls.probe_model(
        m, TensorDataset(x, y), ["conv2", "nope" if bad else "fc"], n=None, batch_size=BS)),
    "cka_model": Entry(lambda m, x, y, bad: ls.cka_model(
        m, TensorDataset(x, y), ["conv2", "nope" if bad else "fc"], n=None, batch_size=BS)),
    # speech analyses on the same model, the data as frames (one forward pass: fail on the first)
    "analyze_layers": Entry(lambda m, x, y, bad: ls.analyze_layers(
        m, _frames(x, y), layers=["conv2", "nope" if bad else "fc"], n_frames=N, method="pca", k=3,
        include_input=False), fail_at=1),
    "embedding_study": Entry(lambda m, x, y, bad: ls.embedding_study(
        m, _frames(x, y), layers=["conv2", "nope" if bad else "fc"]), fail_at=1),
}
OUTCOMES = ("success", "bad", "raise")
#: the entries every single model state is run under
SUBSET = ("capture", "collect_activations", "top_activations", "occlusion", "maximize")


def _probe(model: nn.Module, hooks: UserHooks | None) -> tuple[torch.Tensor, tuple[int, int, int]]:
    """One forward + backward pass of a fixed input: the output, and how often each user hook fired."""
    x = torch.linspace(-1, 1, 2 * 64).reshape(2, *SHAPE)
    before = (hooks.forward, hooks.pre, hooks.backward) if hooks else (0, 0, 0)
    with torch.random.fork_rng():  # the same dropout mask each time, the global generator untouched
        torch.manual_seed(0)
        out = model(x)
    out.sum().backward()
    for p in model.parameters():
        p.grad = None
    after = (hooks.forward, hooks.pre, hooks.backward) if hooks else (0, 0, 0)
    return out.detach(), (after[0] - before[0], after[1] - before[1], after[2] - before[2])


def _chain(e: BaseException | None) -> str:
    text = []
    while e is not None:
        text.append(f"{type(e).__name__}: {e}")
        e = e.__cause__ or e.__context__
    return " <- ".join(text)


def run_case(name: str, outcome: str, state: str, entry: Entry | None = None, fail_at: int | None = None,
             exc: type[BaseException] = RuntimeError) -> int:
    """Run ``entry`` (default ``ENTRIES[name]``) under ``outcome`` on a fresh model in ``state``; check all.

    Returns how many forward passes reached the model's middle (the calls of its ``Boom`` module).
    """
    entry = entry or ENTRIES[name]
    model, hooks = build_model(state)
    x, y = _data()
    x0, y0 = x.clone(), y.clone()
    out_before, fired = _probe(model, hooks)
    assert fired == ((1, 1, 1) if hooks else (0, 0, 0))
    if state == "all":
        give_user_grads(model)
    boom(model).calls = 0
    if outcome == "raise":
        boom(model).fail_at = fail_at or entry.fail_at
        boom(model).exc = exc
    snap = snapshot(model)
    if outcome == "success":
        entry.call(model, x, y, False)
    elif outcome == "bad":
        with pytest.raises(LayerscopeError):
            entry.call(model, x, y, True)
    else:
        with pytest.raises(BaseException) as info:
            entry.call(model, x, y, False)
        assert "boom on call" in _chain(info.value), _chain(info.value)
    calls = boom(model).calls
    diffs = differences(model, snap)
    assert not diffs, "; ".join(diffs)
    assert torch.equal(x, x0) and torch.equal(y, y0), "the analysis changed the data tensors"
    boom(model).fail_at = None
    out_after, fired = _probe(model, hooks)
    assert fired == ((1, 1, 1) if hooks else (0, 0, 0)), "user hooks gone, doubled or left disabled"
    assert torch.equal(out_after, out_before), "the model computes something else after the analysis"
    if hooks:
        conv2, fc = model.get_submodule("conv2"), model.get_submodule("fc")
        assert all(h.id in conv2._forward_hooks or h.id in fc._forward_pre_hooks or h.id in fc._backward_hooks
                   for h in hooks.handles)
    return calls


def _params(names: Any, outcomes: Any, states: Any) -> list[Any]:
    cases = []
    for name in names:
        for outcome in outcomes:
            for state in states:
                bug = ENTRIES[name].bugs.get(outcome)
                marks = [pytest.mark.xfail(strict=True, reason=bug)] if bug else []
                cases.append(pytest.param(name, outcome, state, marks=marks, id=f"{name}-{outcome}-{state}"))
    return cases


@pytest.mark.parametrize(("name", "outcome", "state"), _params(ENTRIES, OUTCOMES, ["all"]))
def test_every_analysis_and_outcome_leaves_the_model_unchanged(name: str, outcome: str, state: str) -> None:
    run_case(name, outcome, state)


@pytest.mark.parametrize("name", [n for n in ENTRIES if n != "analyze_layers"])
def test_a_module_raising_on_the_last_forward_call_leaves_the_model_unchanged(name: str) -> None:
    """The raise outcome again, on the analysis' last forward pass (counted by a successful run), and a
    ``KeyboardInterrupt`` half-way (Ctrl-C in a notebook must leave the model as it was, too)."""
    last = run_case(name, "success", "all")
    assert last >= 1
    run_case(name, "raise", "all", fail_at=last)
    run_case(name, "raise", "all", fail_at=(last + 1) // 2, exc=KeyboardInterrupt)


@pytest.mark.parametrize(("name", "outcome", "state"),
                         _params(SUBSET, OUTCOMES, [s for s in STATES if s != "all"]))
def test_every_model_state_is_left_unchanged(name: str, outcome: str, state: str) -> None:
    run_case(name, outcome, state)


#: a negative unit / class must be refused, not read from the end (a silently wrong number)
NEGATIVE: dict[str, Entry] = {
    "top_activations": Entry(lambda m, x, y, bad: ls.top_activations(
        m, TensorDataset(x, y), "conv2", units=[-1], k=2, batch_size=BS, rule=None, patches=False)),
    "deconv_projections": Entry(lambda m, x, y, bad: ls.deconv_projections(
        m, TensorDataset(x, y), "conv2", units=[-1], indices=[0, 1], rules=("gradient",))),
    "project_activations": Entry(lambda m, x, y, bad: ls.project_activations(m, x[:2], "conv2", [-1])),
    "project_activation": Entry(lambda m, x, y, bad: ls.project_activation(m, x[0], "conv2", -1, (1, 2))),
    "occlusion": Entry(lambda m, x, y, bad: ls.occlusion(m, x[:1], target=-1, size=4, stride=4)),
    "occlusion_maps": Entry(lambda m, x, y, bad: ls.occlusion_maps(
        m, TensorDataset(x, y), [0], size=4, stride=4, value=0.0, layer="conv2", unit=-1)),
    "invariance_curves": Entry(lambda m, x, y, bad: ls.invariance_curves(
        m, x[:3], (y[:3] - 3).numpy(), layers=["fc"], transforms=["translate"], ranges={"translate": [0, 1]}),
        bugs={}),
    "correspondence": Entry(lambda m, x, y, bad: ls.correspondence(
        m, TensorDataset(x, y), ["conv2"], parts={"a": (0, 0, 3, 3)}, n_random=1, label=-1)),
    "maximize": Entry(lambda m, x, y, bad: ls.maximize(m, "fc", [-1], steps=1, input_shape=SHAPE, data_max=False)),
    "render": Entry(lambda m, x, y, bad: ls.render(
        m, objectives.channel("conv2", -1), steps=1, input_shape=SHAPE, param="pixel")),
    "project_neurons": Entry(lambda m, x, y, bad: ls.project_neurons(
        m, TensorDataset(x, y), "conv2", n=None, classes=[-1], method="mds", n_estimators=5)),
    "unit_data_max": Entry(lambda m, x, y, bad: ls.unit_data_max(m, TensorDataset(x, y), "conv2", [-1]),
                           bugs={}),
}


@pytest.mark.parametrize(("name", "outcome", "state"), [
    pytest.param(n, "bad", "all", id=n,
                 marks=[pytest.mark.xfail(strict=True, reason=e.bugs["bad"])] if "bad" in e.bugs else [])
    for n, e in NEGATIVE.items()])
def test_negative_targets_are_refused_without_side_effects(name: str, outcome: str, state: str) -> None:
    run_case(name, outcome, state, NEGATIVE[name])


# -- the checker itself: every kind of leak is seen ------------------------------------------------


def _leave_hook(m: nn.Module) -> None:
    m.get_submodule("conv1").register_forward_hook(lambda *a: None)


def _drop_user_hooks(m: nn.Module) -> None:
    m.get_submodule("conv2")._forward_hooks.clear()


def _forward_in_train_mode(m: nn.Module) -> None:
    m(torch.randn(4, *SHAPE))  # BatchNorm in train mode: running stats and num_batches_tracked move


def _leave_grad(m: nn.Module) -> None:
    with torch.enable_grad():
        m.eval()(torch.randn(2, *SHAPE)).sum().backward()
    m.train()


def _nudge_weight(m: nn.Module) -> None:
    with torch.no_grad():
        m.get_parameter("fc.weight")[0, 0] += 1e-6


def _swap_relu(m: nn.Module) -> None:
    m.relu1 = nn.ReLU(inplace=True)


def _global_hook(m: nn.Module) -> None:
    nn.modules.module.register_module_forward_hook(lambda *a: None)  # removed by the test


LEAKS: dict[str, tuple[Callable[[nn.Module], Any], str]] = {
    "leaves a hook": (_leave_hook, "hooks of modules changed at ['conv1']"),
    "removes the user's hook": (_drop_user_hooks, "hooks of modules changed at ['conv2']"),
    "flips a training flag": (lambda m: m.eval(), "training changed"),
    "freezes a parameter": (lambda m: m.get_parameter("conv1.weight").requires_grad_(False),
                            "requires_grad changed at ['conv1.weight']"),
    "moves BatchNorm statistics": (_forward_in_train_mode, "state_dict['bn1.num_batches_tracked'] changed"),
    "leaves .grad": (_leave_grad, "conv1.weight.grad changed (none -> set)"),
    "changes a weight by 1e-6": (_nudge_weight, "state_dict['fc.weight'] changed"),
    "swaps a module": (_swap_relu, "module objects changed at ['relu1']"),
    "leaves a tensor hook": (lambda m: m.get_parameter("fc.bias").register_hook(lambda g: g),
                             "hooks of parameters changed at ['fc.bias']"),
    "adds a global hook": (_global_hook, "global module hooks changed"),
    "reseeds torch": (lambda m: torch.manual_seed(0), "torch's global random state changed"),
    "draws from numpy": (lambda m: np.random.rand(), "numpy's global random state changed"),
}


@pytest.mark.parametrize("leak", LEAKS)
def test_the_checker_sees_every_kind_of_leak(leak: str) -> None:
    fn, expected = LEAKS[leak]
    saved = dict(nn.modules.module._global_forward_hooks)
    try:
        with pytest.raises(AssertionError, match=re.escape(expected)):
            run_case("leaky", "success", "all", Entry(lambda m, x, y, bad: fn(m)))
    finally:
        nn.modules.module._global_forward_hooks.clear()
        nn.modules.module._global_forward_hooks.update(saved)


def test_the_checker_sees_swallowed_errors_and_changed_data() -> None:
    def swallow(m: nn.Module, x: torch.Tensor, y: torch.Tensor, bad: bool) -> None:
        try:
            m(x)
        except RuntimeError:
            pass

    with pytest.raises(pytest.fail.Exception, match="DID NOT RAISE"):
        run_case("swallow", "raise", "train", Entry(swallow, fail_at=1))
    with pytest.raises(AssertionError, match="changed the data tensors"):
        run_case("relu_", "success", "train", Entry(lambda m, x, y, bad: x.relu_()))


def test_the_matrix_covers_every_model_taking_export() -> None:
    """A new public analysis that takes a model must be added to :data:`ENTRIES` (or listed here)."""
    import inspect

    not_analyses = {"model_state_guard", "load_model", "load_dataset", "iter_batches", "resolve_layer", "layer_names",
                    "build_report", "run_grid", "resume_grid", "GridConfig"}
    # these take a run folder, not a model (checked by tests/test_speech*.py)
    speech = {"analyze_speech_runs", "embed_speech_run", "speech_topk"}
    # these need a transformer with a tokenizer (checked by
    # tests/test_text_analyses.py::test_text_analyses_leave_the_model_as_it_was and
    # tests/test_text_actmax.py)
    speech |= {"text_separability", "text_topk", "text_occlusion", "text_maximize"}
    # tests/test_text_transfer.py checks that the user's model and the global RNG are left as they were
    speech |= {"text_transfer"}
    # runs the model in Ray workers (on copies); in this process only through collect_activations
    # (in the matrix); checked by tests/test_store.py::test_ray_sharded_capture_equals_single_process
    speech |= {"collect_activations_sharded"}
    missing = []
    for name in ls.EXPORTS:
        obj = getattr(ls, name)
        if inspect.isclass(obj) and name != "capture" or not callable(obj):
            continue
        params = list(inspect.signature(obj).parameters)
        if params and params[0] == "model" and name not in ENTRIES and name not in not_analyses | speech:
            missing.append(name)
    assert missing == []


# -- array-only analyses ---------------------------------------------------------------------------


def _arrays() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    return rng.normal(size=(30, 5)).astype(np.float32), np.arange(30) % 3


ARRAY_CALLS: dict[str, Callable[[np.ndarray, np.ndarray], Any]] = {
    "project": lambda X, y: ls.project(X, y, method="pca", k=3),
    "neuron_projection": lambda X, y: ls.neuron_projection(X, y, method="mds", n_estimators=5),
    "linear_probe": lambda X, y: ls.linear_probe(X, y, test_size=0.3),
    "linear_cka": lambda X, y: ls.linear_cka(X, X[:, ::-1]),
    "linear_cka_detail": lambda X, y: ls.linear_cka_detail(X, X[:, ::-1], memory_budget=500),  # blocked-features
    "cka_matrix": lambda X, y: ls.cka_matrix({"a": X, "b": X[:, :3]}),
    "neighborhood_hit": lambda X, y: ls.neighborhood_hit(X[:, :2], y, k=3),
}


@pytest.mark.parametrize("name", ARRAY_CALLS)
def test_array_analyses_leave_their_inputs_unchanged(name: str) -> None:
    X, y = _arrays()
    X0, y0 = X.copy(), y.copy()
    flags = (X.flags.writeable, y.flags.writeable)
    ARRAY_CALLS[name](X, y)
    assert np.array_equal(X, X0) and np.array_equal(y, y0)
    assert (X.flags.writeable, y.flags.writeable) == flags


def test_neuron_projection_refuses_an_absent_class() -> None:
    X, y = _arrays()
    with pytest.raises(LayerscopeError):
        ls.neuron_projection(X, y, classes=[3], method="mds", n_estimators=5)


def test_capture_in_train_mode_changes_the_model_only_as_one_plain_forward_pass() -> None:
    """``capture(eval=False)`` on a train-mode BatchNorm + in-place model: the batch statistics move
    exactly once per :meth:`run` (as in a plain forward pass, not twice for the in-place re-run),
    and each user hook fires once."""
    import copy

    model, hooks = build_model("all")
    twin = copy.deepcopy(model)
    assert hooks is not None
    x = torch.linspace(-2, 2, 4 * 64).reshape(4, *SHAPE)
    with torch.random.fork_rng(), ls.capture(model, ["bn1", "conv2"], eval=False) as cap:
        torch.manual_seed(0)
        out = cap.run(x)
    assert (hooks.forward, hooks.pre) == (1, 1)
    with torch.random.fork_rng():
        torch.manual_seed(0)
        ref = twin(x)
    assert torch.equal(out, ref)
    a, b = model.state_dict(), twin.state_dict()
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert int(a["bn1.num_batches_tracked"]) == 8


# -- the caller's autograd mode ----------------------------------------------------------------------

_INFERENCE_BUG = ("capture reads the version counter of each recorded output (capture.py, capture._make_hook "
                  "and capture.run) to detect in-place changes; inside torch.inference_mode() outputs are "
                  "inference tensors, which have none: raw RuntimeError 'Inference tensors do not track version "
                  "counter'")
_INFERENCE_GRAD_BUG = (_INFERENCE_BUG + "; and once capture copies inference tensors, maximize/render still raise a raw "
                       "'element 0 of tensors does not require grad' (gradient ascent cannot run in inference mode: "
                       "refuse it with a LayerscopeError, as deconv_projections does)")
#: entries that stop with the raw RuntimeError inside torch.inference_mode()
_INFERENCE_FAILS: set[str] = set()  # (fixed: capture copies inference tensors; gradient analyses refuse)


@pytest.mark.parametrize("name", [
    pytest.param(n, marks=[pytest.mark.xfail(
        strict=True, reason=_INFERENCE_GRAD_BUG if n in ("maximize", "render") else _INFERENCE_BUG)]
        if n in _INFERENCE_FAILS else [])
    for n in ENTRIES if n != "analyze_layers"])
def test_inside_inference_mode_an_analysis_works_or_refuses_cleanly(name: str) -> None:
    """A notebook cell under ``torch.inference_mode()``: the analysis runs, or raises a LayerscopeError
    (gradient-based ones cannot run there), never a raw torch error; the model is left as it was."""
    model, _ = build_model("all")
    x, y = _data()
    with torch.inference_mode():
        snap = snapshot(model)
        try:
            ENTRIES[name].call(model, x, y, False)
        except LayerscopeError:
            pass
        diffs = differences(model, snap)
    assert not diffs, "; ".join(diffs)


def test_inside_inference_mode_capture_records_the_values_before_an_in_place_relu() -> None:
    """In inference mode in-place ops do not bump version counters: capture must copy there, not trust them."""
    model, _ = build_model("inplace")
    x, _y = _data()
    with torch.no_grad():
        h = model[:4](x)  # conv1, relu1, pool1, boom: the input of conv2
        conv2 = model.get_submodule("conv2")(h)  # conv2's output before relu2 (in place) clamps it
    assert (conv2 < 0).any()
    with torch.inference_mode():
        with ls.capture(model, ["conv2"]) as cap:
            cap.run(x)
        got = cap["conv2"].clone()
    torch.testing.assert_close(got, conv2, rtol=0, atol=1e-6)
