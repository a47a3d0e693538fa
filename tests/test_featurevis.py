"""Activation maximisation: objectives, parameterisations, transforms, the loop, the CLI."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from layerscope.exceptions import InputShapeError, LayerNotFoundError, ParameterError
from layerscope.featurevis import (
    Objective,
    channel,
    class_logit,
    class_prob,
    compose,
    direction,
    diversity,
    gaussian_blur,
    jitter,
    make_param,
    maximize,
    neuron,
    pad,
    random_rotate,
    random_scale,
    render,
    standard_transforms,
    unit_data_max,
    unit_values,
)
from layerscope.featurevis.render import _cosine_consistency, _tv, is_output_layer
from layerscope.models import AcousticDNN


# ------------------------------------------------------------------------------------------
# Tiny hand-weighted models
# ------------------------------------------------------------------------------------------


class Tiny(nn.Module):
    """conv 1->2 (3x3, pad 1) -> relu -> flatten -> fc 32->3 on 1x4x4 inputs; weights set by hand."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 2, 3, padding=1)
        self.relu = nn.ReLU()
        self.flatten = nn.Flatten()
        self.fc = nn.Linear(32, 3)
        with torch.no_grad():
            self.conv.weight.copy_(
                torch.tensor(
                    [
                        [[[0.0, 1.0, 0.0], [1.0, -4.0, 1.0], [0.0, 1.0, 0.0]]],  # Laplacian
                        [[[1.0, 2.0, 1.0], [0.0, 0.0, 0.0], [-1.0, -2.0, -1.0]]],  # Sobel (horizontal edge)
                    ]
                )
            )
            self.conv.bias.copy_(torch.tensor([0.1, -0.1]))
            w = torch.linspace(-1.0, 1.0, 96).reshape(3, 32)
            self.fc.weight.copy_(torch.stack([w[0], w[1].flip(0), torch.cos(torch.arange(32.0))]))
            self.fc.bias.copy_(torch.tensor([0.0, 0.5, -0.5]))
        self.input_shape = (1, 4, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.flatten(self.relu(self.conv(x))))


class Linear6(nn.Module):
    """Flatten -> fc 6->2 with rows of norm 3 and 5: on ||x|| = rho the best input is rho w / ||w||."""

    def __init__(self) -> None:
        super().__init__()
        self.flatten = nn.Flatten()
        self.fc = nn.Linear(6, 2)
        with torch.no_grad():
            self.fc.weight.copy_(torch.tensor([[1.0, 2.0, 2.0, 0.0, 0.0, 0.0], [0.0, 0.0, 0.0, 3.0, 4.0, 0.0]]))
            self.fc.bias.copy_(torch.tensor([0.5, -1.0]))
        self.input_shape = (6,)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.flatten(x))


class Counting(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.calls = 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        return x


class HookSpy(nn.Module):
    """Records, at every call, which modules of ``root`` carry forward hooks."""

    def __init__(self) -> None:
        super().__init__()
        self.root: list[nn.Module] = []
        self.seen: list[set[str]] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.seen.append({n for n, m in self.root[0].named_modules() if m._forward_hooks})
        return x


class Boom(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        raise RuntimeError("boom inside the model")


def _snapshot(model: nn.Module) -> dict:
    return {
        "state": {k: v.clone() for k, v in model.state_dict().items()},
        "training": [m.training for m in model.modules()],
        "rg": [p.requires_grad for p in model.parameters()],
    }


def assert_model_unchanged(model: nn.Module, snap: dict) -> None:
    for k, v in model.state_dict().items():
        assert torch.equal(v, snap["state"][k]), k
    assert [m.training for m in model.modules()] == snap["training"]
    assert [p.requires_grad for p in model.parameters()] == snap["rg"]
    assert all(p.grad is None for p in model.parameters())
    for m in model.modules():
        assert not m._forward_hooks and not m._forward_pre_hooks and not m._backward_hooks


def _prepared(model: nn.Module) -> nn.Module:
    """Training mode and a mix of requires_grad flags: both must survive every call."""
    model.train()
    params = list(model.parameters())
    params[0].requires_grad_(False)
    return model


# ------------------------------------------------------------------------------------------
# Objectives
# ------------------------------------------------------------------------------------------


def test_unit_values_by_hand() -> None:
    act = torch.arange(2 * 3 * 2 * 2, dtype=torch.float32).reshape(2, 3, 2, 2)
    # channel mean: image 0 channel 1 = mean(4..7) = 5.5; image 1 channel 2 = mean(20..23) = 21.5
    assert unit_values(act, "channel", [1, 2]).tolist() == [5.5, 21.5]
    # neuron at the centre (1, 1) of a 2x2 map; at (0, 1) when given
    assert unit_values(act, "neuron", 0).tolist() == [3.0, 15.0]
    assert unit_values(act, "neuron", [2, 0], position=(0, 1)).tolist() == [9.0, 13.0]
    logits = torch.tensor([[0.0, math.log(3.0)]])
    assert unit_values(logits, "prob", 1).item() == pytest.approx(0.75)
    assert unit_values(logits, "logit", 1).item() == pytest.approx(math.log(3.0))
    assert unit_values(act, "channel").shape == (2, 3)
    with pytest.raises(ParameterError, match="does not fit"):
        unit_values(act, "neuron", 0, position=(2, 0))


def test_objective_algebra_and_layers() -> None:
    acts = {"a": torch.tensor([[1.0, 2.0], [3.0, 4.0]]), "b": torch.tensor([[10.0], [20.0]])}
    obj = 2 * neuron("a", 1) - neuron("b", 0) / 10 + 1
    assert obj.layers == ("a", "b")
    assert obj(acts).tolist() == [2 * 2 - 1 + 1, 2 * 4 - 2 + 1]
    assert (-neuron("a", 0))(acts).tolist() == [-1.0, -3.0]
    assert (1 - neuron("a", 0))(acts).tolist() == [0.0, -2.0]
    assert (neuron("a", 0) * neuron("b", 0))(acts).tolist() == [10.0, 60.0]
    assert (6 / neuron("a", 0))(acts).tolist() == [6.0, 2.0]
    with pytest.raises(ParameterError, match="divide an objective by 0"):
        neuron("a", 0) / 0
    d = direction("a", [1.0, -1.0])
    assert d(acts).tolist() == [-1.0, -1.0]
    assert direction("a", [1.0, 1.0], cosine=True)(acts)[0].item() == pytest.approx(3 / (math.sqrt(2) * math.sqrt(5)))


def test_diversity_by_hand() -> None:
    # two identical images: cosine of Grams 1 -> diversity -1; orthogonal Grams -> 0
    same = {"a": torch.tensor([[1.0, 0.0], [1.0, 0.0]])}
    assert diversity("a")(same).tolist() == pytest.approx([-1.0, -1.0])
    ortho = {"a": torch.tensor([[1.0, 0.0], [0.0, 1.0]])}
    assert diversity("a")(ortho).tolist() == pytest.approx([0.0, 0.0])
    groups = {"a": torch.tensor([[1.0, 0.0], [1.0, 0.0], [1.0, 0.0], [0.0, 1.0]])}
    assert diversity("a", group_size=2)(groups).tolist() == pytest.approx([-1.0, -1.0, 0.0, 0.0])


OBJECTIVES = {
    "neuron": lambda: neuron("conv", 1),
    "neuron_at_position": lambda: neuron("conv", 0, position=(1, 2)),
    "channel": lambda: channel("relu", 1),
    "class_logit": lambda: class_logit("fc", 2),
    "class_prob": lambda: class_prob("fc", 0),
    "direction": lambda: direction("relu", [1.0, -0.5]),
    "diversity": lambda: diversity("relu"),
    "composite": lambda: channel("relu", 0) + 0.5 * class_logit("fc", 1) - 0.1 * neuron("conv", 1),
}


@pytest.mark.parametrize("name", sorted(OBJECTIVES))
@pytest.mark.parametrize("param", ["pixel", "fft"])
def test_each_objective_increases(name: str, param: str) -> None:
    model = _prepared(Tiny())
    snap = _snapshot(model)
    obj = OBJECTIVES[name]()
    r = render(model, obj, batch=3, param=param, steps=6, optimizer="adam", lr=0.05, init_std=0.5, random_state=1)
    start = r.trace[0]
    assert np.all(np.isfinite(r.images)) and r.images.shape == (3, 1, 4, 4)
    assert r.values.sum() > start.sum() + 1e-4, (name, start, r.values)
    assert_model_unchanged(model, snap)


# ------------------------------------------------------------------------------------------
# Erhan's method
# ------------------------------------------------------------------------------------------


def test_sphere_constraint_after_every_step() -> None:
    model = _prepared(Tiny())
    norms: list[np.ndarray] = []
    r = render(
        model, channel("relu", [0, 1, 1]), batch=3, param="pixel", optimizer="sgd", lr=0.7, rho=2.5, steps=12,
        init_std=1.0, random_state=3, blur_every=4, on_step=lambda step, x: norms.append(x.flatten(1).norm(dim=1).numpy()),
    )
    assert len(norms) == 12
    np.testing.assert_allclose(np.stack(norms), 2.5, atol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(r.images.reshape(3, -1), axis=1), 2.5, atol=1e-5)
    # maximize(): the kept intermediate images lie on the sphere too
    res = maximize(model, "conv", [0, 1], method="erhan", rho=1.5, steps=8, restarts=2, thresholds=range(1, 9))
    assert sorted(res.intermediate) == list(range(1, 9))
    for imgs in res.intermediate.values():
        np.testing.assert_allclose(np.linalg.norm(imgs.reshape(2, -1), axis=1), 1.5, atol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(res.restart_images.reshape(4, -1), axis=1), 1.5, atol=1e-5)


def test_erhan_linear_unit_matches_closed_form() -> None:
    # On ||x|| = rho a linear unit w.x + b is maximised by rho w / ||w||, reaching rho ||w|| + b.
    model = _prepared(Linear6())
    snap = _snapshot(model)
    res = maximize(model, "fc", "all", kind="neuron", method="erhan", rho=2.0, steps=150, restarts=3, random_state=0)
    np.testing.assert_allclose(res.activation, [2 * 3 + 0.5, 2 * 5 - 1.0], atol=1e-4)
    w = np.array([[1, 2, 2, 0, 0, 0], [0, 0, 0, 3, 4, 0]], dtype=np.float64)
    np.testing.assert_allclose(res.images, 2.0 * w / np.linalg.norm(w, axis=1, keepdims=True), atol=1e-4)
    np.testing.assert_allclose(res.consistency, 1.0, atol=1e-6)  # every restart finds the same point
    assert res.trace.shape == (150, 2) and res.trace[-1, 1] > res.trace[0, 1]
    assert res.kind == "neuron" and list(res.units) == [0, 1]
    assert_model_unchanged(model, snap)


def test_output_layer_defaults_to_logit_and_reports_probability() -> None:
    model = Linear6()
    assert is_output_layer(model, "fc", (6,)) and not is_output_layer(model, "flatten", (6,))
    res = maximize(model, "fc", [1], method="erhan", rho=3.0, steps=20)
    assert res.kind == "logit"
    # logits at x = 3 w1/||w1||: [0.5 + 0, -1 + 15] -> p(1) = sigmoid(14 - 0.5)
    assert res.class_probability[0] == pytest.approx(1 / (1 + math.exp(-(14 - 0.5))), rel=1e-5)
    assert res.predicted_class.tolist() == [1]


def test_consistency_by_hand() -> None:
    x = np.zeros((2, 3, 2))
    x[0] = [[1, 0], [1, 0], [2, 0]]  # all the same direction: 1
    x[1] = [[1, 0], [0, 1], [-1, 0]]  # pairs: 0, -1, 0 -> mean -1/3
    np.testing.assert_allclose(_cosine_consistency(x), [1.0, -1 / 3])
    assert np.isnan(_cosine_consistency(x[:, :1])).all()


def test_same_seed_same_result() -> None:
    model = Tiny()
    a = maximize(model, "relu", "all", method="lucid", steps=5, restarts=2, random_state=7)
    b = maximize(model, "relu", "all", method="lucid", steps=5, restarts=2, random_state=7)
    c = maximize(model, "relu", "all", method="lucid", steps=5, restarts=2, random_state=8)
    assert np.array_equal(a.restart_images, b.restart_images) and np.array_equal(a.trace, b.trace)
    assert not np.array_equal(a.restart_images, c.restart_images)
    e1 = maximize(model, "fc", [0, 2], method="erhan", steps=5, restarts=3, random_state=1)
    e2 = maximize(model, "fc", [0, 2], method="erhan", steps=5, restarts=3, random_state=1)
    assert np.array_equal(e1.restart_images, e2.restart_images)


def test_batched_units_equal_one_at_a_time() -> None:
    # Units do not interact: optimising them together gives each the result it gets alone.
    model = Tiny()
    obj_all = channel("relu", [0, 1])
    init = torch.randn(2, 1, 4, 4)
    both = render(model, obj_all, batch=2, param="pixel", init=init, optimizer="sgd", lr=0.3, rho=2.0, steps=10)
    for i in range(2):
        one = render(model, channel("relu", i), batch=1, param="pixel", init=init[i : i + 1], optimizer="sgd",
                     lr=0.3, rho=2.0, steps=10)
        np.testing.assert_allclose(both.images[i], one.images[0], atol=1e-5)


def test_forward_stops_at_deepest_needed_layer() -> None:
    model = nn.Sequential()
    model.add_module("fc1", nn.Linear(5, 4))
    model.add_module("relu1", nn.ReLU())
    model.add_module("above", Counting())
    model.add_module("fc2", nn.Linear(4, 2))
    model.input_shape = (5,)  # type: ignore[assignment]
    # the first capture of a model runs one pass through the whole model (counting the calls of
    # reused modules, remembered per model and input shape); every optimisation step stops at the
    # deepest needed layer
    render(model, neuron("relu1", 1), steps=4, param="pixel")
    assert model.above.calls == 1
    maximize(model, "relu1", "all", kind="neuron", steps=3, restarts=2)
    assert model.above.calls == 1
    maximize(model, "relu1", "all", steps=3)  # kind "auto" probes once whether relu1 is the output layer
    assert model.above.calls == 2
    model.above.calls = 0
    render(model, neuron("relu1", 1) + class_logit("fc2", 0), steps=2, param="pixel")
    assert model.above.calls == 2 + 1  # 2 steps + the final evaluation


def test_only_the_objective_layers_are_hooked() -> None:
    model = nn.Sequential()
    model.add_module("fc1", nn.Linear(5, 4))
    model.add_module("spy", HookSpy())
    model.add_module("relu1", nn.ReLU())
    model.add_module("fc2", nn.Linear(4, 2))
    model.spy.root.append(model)
    model.input_shape = (5,)  # type: ignore[assignment]
    render(model, neuron("relu1", 0) - 0.5 * direction("fc2", [1.0, -1.0]), steps=3, param="pixel")
    assert model.spy.seen and all(s == {"relu1", "fc2"} for s in model.spy.seen)


def test_data_max_over_dataset() -> None:
    from torch.utils.data import TensorDataset

    model = Linear6()
    x = torch.eye(6) * torch.arange(1.0, 7.0)[:, None]  # sample i: (i+1) e_i
    ds = TensorDataset(x, torch.zeros(6, dtype=torch.long))
    # unit 0 = x0 + 2 x1 + 2 x2 + 0.5 -> max over samples: 2*3 + 0.5 = 6.5; unit 1: 4*5 - 1 = 19
    np.testing.assert_allclose(unit_data_max(model, ds, "fc", [0, 1], "neuron", batch_size=4), [6.5, 19.0])
    res = maximize(model, "fc", "all", kind="neuron", method="erhan", rho=1.0, steps=10, data=ds)
    np.testing.assert_allclose(res.data_max, [6.5, 19.0])
    # rho defaulted to the median norm of the data: median of 1..6 = 3.5
    res = maximize(model, "fc", [0], kind="neuron", method="erhan", steps=150, data=ds)
    assert res.parameters["rho"] == pytest.approx(3.5)
    assert res.activation[0] == pytest.approx(3.5 * 3 + 0.5, abs=1e-3)


# ------------------------------------------------------------------------------------------
# Input shapes, parameterisations, transforms, penalties
# ------------------------------------------------------------------------------------------


def test_flat_vector_and_frame_feature_inputs() -> None:
    mlp = nn.Sequential(nn.Linear(20, 8), nn.ReLU(), nn.Linear(8, 3))
    mlp.input_shape = (20,)  # type: ignore[assignment]
    for method in ("erhan", "lucid"):
        res = maximize(mlp, "1", "all", method=method, steps=5)
        assert res.images.shape == (8, 20) and np.isfinite(res.images).all()
    dnn = AcousticDNN(input_shape=(5, 13), n_classes=4, width=16, depth=2)
    for method in ("erhan", "lucid"):
        res = maximize(dnn, "out", "all", method=method, steps=5, restarts=2)
        assert res.kind == "logit" and res.images.shape == (4, 5, 13) and res.restart_images.shape == (4, 2, 5, 13)
        assert res.class_probability.shape == (4,)
    with pytest.raises(ParameterError, match="need image inputs"):
        render(dnn, neuron("relu1", 0), transforms=[jitter(1)], steps=1)


def test_rgb_fft_decorrelated_in_value_range() -> None:
    net = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 2))
    net.input_shape = (3, 12, 12)  # type: ignore[assignment]
    lo = torch.tensor([-1.0, -2.0, 0.0]).view(1, 3, 1, 1)
    hi = torch.tensor([1.0, 0.0, 3.0]).view(1, 3, 1, 1)
    r = render(net, channel("1", 2), batch=2, param="fft", decorrelate=True, value_range=(lo, hi),
               transforms=standard_transforms(12), steps=5)
    assert r.images.shape == (2, 3, 12, 12)
    assert (r.images >= lo.numpy()).all() and (r.images <= hi.numpy()).all()
    with pytest.raises(ParameterError, match="3-channel"):
        make_param("pixel", 1, (1, 8, 8), decorrelate=True)


def test_transforms_shapes_and_identity() -> None:
    g = torch.Generator().manual_seed(0)
    x = torch.rand(2, 1, 10, 10)
    assert pad(3)(x, g).shape == (2, 1, 16, 16)
    assert jitter(4)(x, g).shape == (2, 1, 6, 6)
    assert torch.allclose(random_rotate([0.0])(x, g), x)
    assert torch.equal(random_scale([1.0])(x, g), x)
    assert random_scale([1.5])(x, g).shape == (2, 1, 15, 15)
    t = compose(standard_transforms(10), size=(10, 10))
    assert t(x, g).shape == (2, 1, 10, 10)
    # rotating by 90 degrees with an odd-free grid moves the top row to the left column
    y = torch.zeros(1, 1, 4, 4)
    y[0, 0, 0, :] = 1.0
    r = random_rotate([90.0])(y, g)
    assert r[0, 0, :, 0].sum() > 3.0 or r[0, 0, :, -1].sum() > 3.0


def test_blur_and_tv() -> None:
    x = torch.zeros(1, 1, 9, 9)
    x[0, 0, 4, 4] = 1.0
    b = gaussian_blur(x, 1.0, dims=(2, 3))
    assert b.sum().item() == pytest.approx(1.0, abs=1e-5)
    assert torch.allclose(b, b.flip(2)) and torch.allclose(b, b.transpose(2, 3))
    assert b[0, 0, 4, 4] < 0.2
    # TV by hand: one step edge in a 1x1x2x3 image
    e = torch.tensor([[[[0.0, 1.0, 1.0], [0.0, 1.0, 1.0]]]])
    assert _tv(e, (2, 3)).item() == pytest.approx(0.0 + 2 / 4)
    model = Tiny()
    plain = render(model, channel("relu", 0), param="pixel", steps=15, random_state=0, init_std=0.5)
    smooth = render(model, channel("relu", 0), param="pixel", steps=15, random_state=0, init_std=0.5, tv=5.0)
    tv = lambda a: _tv(torch.as_tensor(a), (2, 3)).item()  # noqa: E731
    assert tv(smooth.images) < tv(plain.images)
    fp = make_param("fft", 1, (1, 8, 8), std=1.0, generator=torch.Generator().manual_seed(0))
    before = tv(fp().detach())
    fp.blur_(1.5)
    assert tv(fp().detach()) < before


# ------------------------------------------------------------------------------------------
# Errors; nothing left behind
# ------------------------------------------------------------------------------------------


def test_errors_are_clear_and_leave_model_unchanged() -> None:
    model = _prepared(Tiny())
    snap = _snapshot(model)
    with pytest.raises(ParameterError, match="channel index 5 is out of range for layer 'conv', which has 2"):
        maximize(model, "conv", [0, 5])
    with pytest.raises(ParameterError, match="class index 3 is out of range"):
        maximize(model, "fc", [3], kind="logit")
    with pytest.raises(LayerNotFoundError, match="Did you mean 'conv'"):
        maximize(model, "conv9", "all")
    with pytest.raises(LayerNotFoundError, match="Did you mean"):
        render(model, channel("rleu", 0))
    for bad in (0.0, -1.0, float("nan")):
        with pytest.raises(ParameterError, match="rho .* must be a positive number"):
            maximize(model, "conv", "all", rho=bad)
        with pytest.raises(ParameterError, match="rho"):
            render(model, channel("conv", 0), param="pixel", rho=bad)
    with pytest.raises(ParameterError, match="does not fit layer 'conv'"):
        maximize(model, "conv", [0], kind="neuron", position=(4, 0))
    with pytest.raises(ParameterError, match="method must be"):
        maximize(model, "conv", "all", method="deepdream")  # type: ignore[arg-type]

    def raising(acts: dict) -> torch.Tensor:
        raise RuntimeError("objective failed")

    with pytest.raises(RuntimeError, match="objective failed"):
        render(model, Objective(raising, ["relu"], "raising"), steps=3)
    assert_model_unchanged(model, snap)

    broken = _prepared(nn.Sequential(nn.Linear(4, 3), Boom(), nn.Linear(3, 2)))
    broken.input_shape = (4,)  # type: ignore[assignment]
    bsnap = _snapshot(broken)
    with pytest.raises(RuntimeError, match="boom"):
        render(broken, neuron("2", 0), steps=2)
    with pytest.raises(RuntimeError, match="boom"):
        maximize(broken, "2", "all", steps=2)
    assert_model_unchanged(broken, bsnap)

    no_shape = nn.Sequential(nn.Linear(4, 2))
    with pytest.raises(InputShapeError, match="Pass input_shape"):
        maximize(no_shape, "0", "all")
    assert maximize(no_shape, "0", "all", input_shape=(4,), steps=2).images.shape == (2, 4)


def test_success_leaves_no_hooks_and_model_unchanged() -> None:
    from torch.utils.data import TensorDataset

    model = _prepared(Tiny())
    snap = _snapshot(model)
    ds = TensorDataset(torch.randn(10, 1, 4, 4), torch.zeros(10, dtype=torch.long))
    maximize(model, "relu", "all", method="lucid", steps=3, restarts=2, diversity_weight=0.1, data=ds)
    maximize(model, "fc", "all", kind="prob", method="erhan", steps=3, data=ds, batch_size=2)
    render(model, channel("relu", 0) + diversity("relu"), batch=2, steps=3, l2=0.1, tv=0.1, blur_every=1)
    unit_data_max(model, ds, "conv", [0, 1])
    assert_model_unchanged(model, snap)


def test_chunks_of_whole_units_and_progress() -> None:
    model = Tiny()
    seen: list[int] = []
    descs: list[str] = []

    def tracker(it, desc=None, total=None):  # type: ignore[no-untyped-def]  # tqdm's order: called by keyword
        seen.append(total)
        descs.append(desc)
        yield from it

    res = maximize(model, "fc", "all", kind="logit", steps=4, restarts=2, batch_size=2, progress=tracker)
    assert seen == [4 * 3]  # 3 batches of one unit x 2 restarts, one bar over all steps
    assert descs == ["maximize layer fc"]
    assert res.restart_images.shape == (3, 2, 1, 4, 4) and res.trace.shape == (4, 3)


# ------------------------------------------------------------------------------------------
# Saving and the CLI
# ------------------------------------------------------------------------------------------


def test_result_json_schema(tmp_path: Path) -> None:
    from layerscope.featurevis.plots import plot_grid, plot_traces, save_unit_images

    model = Tiny()
    res = maximize(model, "fc", "all", kind="logit", steps=5, restarts=2, thresholds=[2, 5])
    res.save(tmp_path)
    doc = json.loads((tmp_path / "result.json").read_text())
    assert doc["analysis"] == "maximize" and doc["layer"] == "fc" and doc["kind"] == "logit"
    assert len(doc["units"]) == 3 and len(doc["units"][0]["trace"]) == 5
    u = doc["units"][2]
    assert u["unit"] == 2 and u["activation"] == pytest.approx(float(res.activation[2]))
    assert 0.0 <= u["class_probability"] <= 1.0 and -1.0 <= u["consistency"] <= 1.0
    assert doc["metrics"]["n_units"] == 3 and "min_class_probability" in doc["metrics"]
    z = np.load(tmp_path / "arrays.npz")
    assert z["images"].shape == (3, 1, 4, 4)
    assert sorted(np.load(tmp_path / "intermediate.npz").files) == ["step_2", "step_5"]
    back = type(res).load(tmp_path)
    assert np.array_equal(back.images, res.images) and back.kind == "logit" and sorted(back.intermediate) == [2, 5]
    assert np.array_equal(back.class_probability, res.class_probability) and back.data_max is None
    from matplotlib.figure import Figure

    for name, fig in {"g.png": plot_grid(res), "t.png": plot_traces(res)}.items():
        assert isinstance(fig, Figure)
        fig.savefig(tmp_path / name)
    for p in (tmp_path / "g.png", tmp_path / "t.png", *save_unit_images(res, tmp_path / "u")):
        assert p.exists() and p.stat().st_size > 100


def test_cli_maximize(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from layerscope.cli import app

    out = tmp_path / "am"
    res = CliRunner().invoke(
        app,
        ["maximize", "--model", "mnist-mlp", "--layer", "fc3", "--units", "0,3", "--steps", "15", "--restarts", "2",
         "--out", str(out), "--no-progress"],
    )
    assert res.exit_code == 0, res.output
    doc = json.loads((out / "result.json").read_text())
    assert doc["analysis"] == "maximize" and doc["kind"] == "logit" and doc["method"] == "erhan"
    assert [u["unit"] for u in doc["units"]] == [0, 3]
    assert doc["units"][0]["image"] == "units/unit_0000.png" and (out / "units" / "unit_0003.png").exists()
    assert doc["units"][0]["data_max"] is None  # no --data
    assert (out / "grid.png").exists() and doc["figures"][0]["path"] == "grid.png"
    assert doc["parameters"]["rho"] == pytest.approx(9.28, abs=0.05)  # median norm of MNIST test digits
    bad = CliRunner().invoke(
        app, ["maximize", "--model", "mnist-mlp", "--layer", "fc3", "--units", "12", "--out", str(tmp_path / "b")]
    )
    assert bad.exit_code != 0 and "out of range" in str(bad.exception)


def test_value_range_from_data_normalization() -> None:
    from layerscope.data.images import CIFAR10_NORMALIZATION, IDENTITY_NORMALIZATION, MNIST_NORMALIZATION
    from layerscope.featurevis.param import value_range_from_normalization

    lo, hi = value_range_from_normalization(MNIST_NORMALIZATION, (1, 28, 28))
    assert float(lo) == 0.0 and float(hi) == 1.0
    lo, hi = value_range_from_normalization(CIFAR10_NORMALIZATION, (3, 32, 32))
    assert lo.shape == (1, 3, 1, 1)
    assert float(lo[0, 0]) == pytest.approx(-0.485 / 0.229) and float(hi[0, 2]) == pytest.approx((1 - 0.406) / 0.225)
    assert value_range_from_normalization(IDENTITY_NORMALIZATION, (5, 13)) is None  # features: no fixed range
