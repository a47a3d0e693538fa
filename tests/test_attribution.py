"""Zeiler & Fergus 2014 tools: projections, receptive fields, top-k, occlusion, invariance, Δ.

Hand-weighted tiny models give expected values worked out by hand; brute force checks the
streaming top-k; every public entry point leaves no hook and the model unchanged, also after an
error.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import TensorDataset

from layerscope.convnets import (
    UnsupportedModelError,
    correspondence,
    crop_patch,
    invariance_curves,
    occlusion,
    project_activation,
    project_activations,
    receptive_field,
    sign_delta,
    top_activations,
    transform_images,
    window_grid,
)
from layerscope.convnets.receptive_field import ReceptiveFieldError
from layerscope.exceptions import LayerNotFoundError, ParameterError



# -- helpers ---------------------------------------------------------------------------------


def n_hooks(model: nn.Module) -> int:
    return sum(
        len(m._forward_hooks) + len(m._forward_pre_hooks) + len(m._backward_hooks) + len(getattr(m, "_backward_pre_hooks", {}))
        for m in model.modules()
    )


def snapshot(model: nn.Module) -> tuple:  # type: ignore[type-arg]
    return (
        {k: v.detach().clone() for k, v in model.state_dict().items()},
        [m.training for m in model.modules()],
        [p.requires_grad for p in model.parameters()],
        [getattr(m, "inplace", None) for m in model.modules()],
    )


def assert_unchanged(model: nn.Module, snap: tuple) -> None:  # type: ignore[type-arg]
    state, training, grads, inplace = snap
    assert n_hooks(model) == 0
    for k, v in model.state_dict().items():
        assert torch.equal(v, state[k]), k
    assert [m.training for m in model.modules()] == training
    assert [p.requires_grad for p in model.parameters()] == grads
    assert [getattr(m, "inplace", None) for m in model.modules()] == inplace


def hand_mlp(inplace: bool = False) -> nn.Sequential:
    """fc1: W1 = [[1,-1],[2,1],[1,1]], relu, fc2: W2 = [[1,1,-1]], no biases."""
    m = nn.Sequential()
    m.add_module("fc1", nn.Linear(2, 3, bias=False))
    m.add_module("relu", nn.ReLU(inplace=inplace))
    m.add_module("fc2", nn.Linear(3, 1, bias=False))
    with torch.no_grad():
        m.fc1.weight.copy_(torch.tensor([[1.0, -1.0], [2.0, 1.0], [1.0, 1.0]]))
        m.fc2.weight.copy_(torch.tensor([[1.0, 1.0, -1.0]]))
    return m.train()  # train mode on purpose: it must be restored


X = torch.tensor([[1.0, 2.0]])
# h = W1 x = [-1, 4, 3]; relu -> [0, 4, 3]; out = 4 - 3 = 1; seed = 1 (the stated convention).
# backward to h: W2^T * 1 = [1, 1, -1]
#   gradient : forward mask [0,1,1]      -> [0, 1, -1] -> W1^T -> [2-1, 1-1] = [1, 0]
#   deconvnet: relu(grad)                -> [1, 1,  0] -> W1^T -> [1+2, -1+1] = [3, 0]
#   guided   : mask and relu             -> [0, 1,  0] -> W1^T -> [2, 1]
EXPECTED = {"gradient": [1.0, 0.0], "deconvnet": [3.0, 0.0], "guided": [2.0, 1.0]}


# -- projections -----------------------------------------------------------------------------


@pytest.mark.parametrize("rule", ["gradient", "deconvnet", "guided"])
@pytest.mark.parametrize("inplace", [False, True])
def test_rules_give_hand_computed_projections(rule: str, inplace: bool) -> None:
    m = hand_mlp(inplace)
    snap = snapshot(m)
    p = project_activations(m, X, "fc2", [0], rule=rule)  # type: ignore[arg-type]
    np.testing.assert_allclose(p.maps[0], EXPECTED[rule], atol=1e-6)
    assert p.values[0] == pytest.approx(1.0)
    assert_unchanged(m, snap)


def test_rules_differ_only_at_relus() -> None:
    # the same network without the ReLU: all three rules are the plain gradient W1^T W2^T * value
    m = nn.Sequential(nn.Linear(2, 3, bias=False), nn.Identity(), nn.Linear(3, 1, bias=False))
    m[0].weight.data = hand_mlp()[0].weight.data.clone()
    m[2].weight.data = hand_mlp()[2].weight.data.clone()
    x = torch.tensor([[2.0, 0.5]])  # h = [1.5, 4.5, 2.5], out = 1.5 + 4.5 - 2.5 = 3.5
    expected = (m[0].weight.T @ m[2].weight.T).detach().flatten().numpy()  # [1, -1]: seeded with 1
    projs = [project_activations(m, x, "2", [0], rule=r) for r in ("gradient", "deconvnet", "guided")]  # type: ignore[arg-type]
    for p in projs:
        np.testing.assert_allclose(p.maps[0], expected, rtol=1e-6)
        assert p.values[0] == pytest.approx(3.5)
    # with the ReLU all active and every backward signal positive, the rules agree too
    m2 = hand_mlp()
    m2.fc2.weight.data = torch.tensor([[1.0, 1.0, 1.0]])
    x2 = torch.tensor([[3.0, 1.0]])  # h = [2, 7, 4] all > 0; grad to h = [v, v, v] > 0
    maps2 = [project_activations(m2, x2, "fc2", [0], rule=r).maps[0] for r in ("gradient", "deconvnet", "guided")]  # type: ignore[arg-type]
    np.testing.assert_allclose(maps2[0], maps2[1])
    np.testing.assert_allclose(maps2[0], maps2[2])


@pytest.mark.parametrize("rule", ["gradient", "deconvnet", "guided"])
def test_negative_and_scaled_activations_follow_the_unit_seed_convention(rule: str) -> None:
    """Issue 11: the backward pass is seeded with 1, whatever the activation's sign; the value is
    returned apart. For a > 0 Z&F's map (seed a) is a times ours; for a < 0 seeding with a would
    give a different map under the rectifying rules, not a sign-flipped one."""
    # positive: x doubled -> h = [-2, 8, 6], out = 2, same ReLU pattern: the same maps, value 2
    p = project_activations(hand_mlp(), 2 * X, "fc2", [0], rule=rule)  # type: ignore[arg-type]
    np.testing.assert_allclose(p.maps[0], EXPECTED[rule], atol=1e-6)
    assert p.values[0] == pytest.approx(2.0)
    # negative: W2 = [[1, -1, -1]]: out = 0 - 4 - 3 = -7; backward to h = [1, -1, -1]
    #   gradient : mask [0,1,1] -> [0,-1,-1] -> W1^T -> [-2-1, -1-1] = [-3, -2]
    #   deconvnet: relu         -> [1, 0, 0] -> W1^T -> [1, -1]
    #   guided   : both         -> [0, 0, 0] -> [0, 0]
    # (seeding with -7 instead: deconvnet relu([-7, 7, 7]) -> [21, 14], not -7 * [1, -1])
    m = hand_mlp()
    m.fc2.weight.data = torch.tensor([[1.0, -1.0, -1.0]])
    snap = snapshot(m)
    p = project_activations(m, X, "fc2", [0], rule=rule)  # type: ignore[arg-type]
    expected = {"gradient": [-3.0, -2.0], "deconvnet": [1.0, -1.0], "guided": [0.0, 0.0]}[rule]
    np.testing.assert_allclose(p.maps[0], expected, atol=1e-6)
    assert p.values[0] == pytest.approx(-7.0)
    assert_unchanged(m, snap)


def test_maxpool_switches_route_to_the_maximum() -> None:
    m = nn.Sequential(nn.Conv2d(1, 1, 1, bias=False), nn.ReLU(), nn.MaxPool2d(2))
    m[0].weight.data.fill_(1.0)
    x = torch.tensor([[[[1.0, 3.0], [2.0, -1.0]]]])
    for rule in ("gradient", "deconvnet", "guided"):
        mp = project_activation(m, x[0], "2", 0, rule=rule)  # type: ignore[arg-type]
        np.testing.assert_allclose(mp[0], [[0.0, 1.0], [0.0, 0.0]])  # the unit seed goes to the maximum (3)
        assert project_activations(m, x, "2", [0], rule=rule).values[0] == pytest.approx(3.0)  # type: ignore[arg-type]


def test_one_activation_is_projected_and_position_is_kept() -> None:
    torch.manual_seed(1)
    m = nn.Sequential(nn.Conv2d(1, 3, 3), nn.ReLU(), nn.Conv2d(3, 2, 3))
    x = torch.randn(2, 1, 9, 9)
    p = project_activations(m, x, "2", [1, 0], [[0, 0], [4, 2]], rule="gradient")
    # exactly the gradient of the one activation (seed 1); its value is returned apart
    for b, (u, (r, c)) in enumerate([(1, (0, 0)), (0, (4, 2))]):
        xb = x[b : b + 1].clone().requires_grad_(True)
        out = m(xb)[0, u, r, c]
        (g,) = torch.autograd.grad(out, xb)
        np.testing.assert_allclose(p.maps[b], g[0].numpy(), rtol=1e-5, atol=1e-7)
        assert p.values[b] == pytest.approx(float(out.detach()), rel=1e-5)
        # outside the receptive field (5x5 window at (r, c)) the projection is zero
        mask = np.ones((9, 9), bool)
        mask[r : r + 5, c : c + 5] = False
        assert np.all(p.maps[b][0][mask] == 0)
    assert p.positions.tolist() == [[0, 0], [4, 2]]


class FunctionalRelu(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.block = nn.Sequential(nn.Conv2d(1, 2, 3))
        self.head = nn.Conv2d(2, 2, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(F.relu(self.block(x)))


class InplaceMethodRelu(FunctionalRelu):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.block(x).relu_())


class LeakyModule(nn.Sequential):
    def __init__(self) -> None:
        super().__init__(nn.Conv2d(1, 2, 3), nn.LeakyReLU(), nn.Conv2d(2, 2, 3))


@pytest.mark.parametrize("cls", [FunctionalRelu, InplaceMethodRelu, LeakyModule])
@pytest.mark.parametrize("rule", ["deconvnet", "guided"])
def test_rectifiers_outside_relu_modules_are_refused(cls: type, rule: str) -> None:
    m = cls()
    snap = snapshot(m)
    with pytest.raises(UnsupportedModelError, match="nn.ReLU module") as info:
        project_activations(m, torch.randn(1, 1, 8, 8), "head" if hasattr(m, "head") else "2", [0], rule=rule)  # type: ignore[arg-type]
    assert "plain" in str(info.value) and "gradients" in str(info.value)
    assert_unchanged(m, snap)
    # the plain gradient is exact for any model
    project_activations(m, torch.randn(1, 1, 8, 8), "head" if hasattr(m, "head") else "2", [0], rule="gradient")
    assert_unchanged(m, snap)


def test_projection_errors_leave_model_unchanged() -> None:
    m = hand_mlp(inplace=True)
    snap = snapshot(m)
    with pytest.raises(ParameterError, match="units must be channels in"):
        project_activations(m, X, "fc2", [3], rule="deconvnet")
    assert_unchanged(m, snap)
    with pytest.raises(ParameterError, match="rule must be one of"):
        project_activations(m, X, "fc2", [0], rule="bogus")  # type: ignore[arg-type]
    assert_unchanged(m, snap)
    with pytest.raises(LayerNotFoundError):
        project_activations(m, X, "fc3", [0])
    assert_unchanged(m, snap)

    class Boom(nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            raise RuntimeError("boom")

    m.add_module("boom", Boom())
    m2 = nn.Sequential(m.fc1, m.relu, Boom(), m.fc2)
    snap2 = snapshot(m2)
    with pytest.raises(RuntimeError, match="boom"):
        project_activations(m2, X, "3", [0], rule="guided")
    assert_unchanged(m2, snap2)


# -- receptive fields ------------------------------------------------------------------------


def test_receptive_field_equals_gradient_support_of_a_linear_chain() -> None:
    torch.manual_seed(0)
    m = nn.Sequential(
        nn.Conv2d(1, 2, 3, padding=1), nn.Conv2d(2, 2, 3, stride=2, dilation=2), nn.AvgPool2d(2), nn.Conv2d(2, 1, 2, padding=1)
    )
    m.input_shape = (1, 31, 31)  # type: ignore[assignment]
    for layer in ("0", "1", "2", "3"):
        rf = receptive_field(m, layer)
        out_shape = m[: int(layer) + 1](torch.zeros(1, 1, 31, 31)).shape[2:]
        for pos in [(0, 0), (out_shape[0] // 2, out_shape[1] - 1)]:
            x = torch.randn(1, 1, 31, 31, requires_grad=True)
            y = m[: int(layer) + 1](x)[0, 0, pos[0], pos[1]]
            (g,) = torch.autograd.grad(y, x)
            rows, cols = np.nonzero(g[0, 0].numpy())
            (r0, r1), (c0, c1) = rf.box(pos)
            assert (rows.min(), rows.max() + 1) == (max(r0, 0), min(r1, 31)), (layer, pos)
            assert (cols.min(), cols.max() + 1) == (max(c0, 0), min(c1, 31)), (layer, pos)


def test_receptive_field_of_residual_net_and_global_layers() -> None:
    from layerscope.models import ResNet20

    m = ResNet20()
    rf = receptive_field(m, "layer1.0")  # two 3x3 convs after the stem's 3x3: 7x7
    assert rf.size == (7, 7) and rf.jump == (1, 1) and rf.start == (-3, -3)
    rf2 = receptive_field(m, "layer2.0")  # + 3x3 stride 2 + 3x3 at jump 2 on top of 15x15
    assert rf2.jump == (2, 2) and rf2.size == (15 + 2 + 4, 15 + 2 + 4)
    assert receptive_field(m, "linear").is_global
    # brute force: the union of the gradient supports of one unit over random inputs is its box
    from layerscope.capture import capture

    m.eval()
    for layer, pos in [("layer2.0", (8, 8)), ("layer2.0.shortcut", (7, 9)), ("layer2.1", (8, 7))]:
        rf = receptive_field(m, layer)
        support = np.zeros((32, 32), bool)
        for _ in range(4):
            x = torch.randn(1, 3, 32, 32, requires_grad=True)
            with capture(m, [layer], detach=False) as cap:
                m(x)
                (g,) = torch.autograd.grad(cap[layer][0, :, pos[0], pos[1]].sum(), x)
            support |= (g[0].abs().sum(0) > 0).numpy()
        rows, cols = np.nonzero(support)
        (r0, r1), (c0, c1) = rf.box(pos)
        assert (rows.min(), rows.max() + 1, cols.min(), cols.max() + 1) == (max(r0, 0), min(r1, 32), max(c0, 0), min(c1, 32))


def test_receptive_field_refuses_unknown_ops_and_untraceable_models() -> None:
    class Upsampler(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = nn.Conv2d(1, 1, 3)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.conv(F.interpolate(x, scale_factor=2.0))

    m = Upsampler()
    with pytest.raises(ReceptiveFieldError, match="interpolate"):
        receptive_field(m, "conv", (1, 8, 8))

    class Branchy(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = nn.Conv2d(1, 1, 3)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            if x.sum() > 0:
                return self.conv(x)
            return self.conv(-x)

    with pytest.raises(ReceptiveFieldError, match="cannot trace"):
        receptive_field(Branchy(), "conv", (1, 8, 8))


def test_crop_patch_pads_outside() -> None:
    img = np.arange(16, dtype=np.float32).reshape(1, 4, 4)
    p = crop_patch(img, [(-1, 2), (2, 5)], fill=-7)
    assert p.shape == (1, 3, 3)
    np.testing.assert_array_equal(p[0], [[-7, -7, -7], [2, 3, -7], [6, 7, -7]])


# -- top-k -----------------------------------------------------------------------------------


def conv_model() -> nn.Sequential:
    torch.manual_seed(3)
    m = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.Conv2d(4, 6, 3, stride=2), nn.ReLU())
    m.input_shape = (1, 12, 12)  # type: ignore[assignment]
    return m


def test_topk_equals_brute_force_over_batches() -> None:
    m = conv_model()
    snap = snapshot(m)
    x = torch.randn(53, 1, 12, 12)
    ds = TensorDataset(x, torch.arange(53) % 10)
    units = [0, 2, 5]
    top = top_activations(m, ds, "3", units=units, k=6, batch_size=7, rule="guided")
    assert_unchanged(m, snap)
    with torch.no_grad():
        a = m.eval()(x)[:, units]  # (N, U, H, W)
    m.train()
    flat = a.flatten(2)
    per_img, arg = flat.max(dim=2)  # (N, U)
    for j, u in enumerate(units):
        order = torch.argsort(per_img[:, j], descending=True)[:6]
        assert top.sample_ids[j].tolist() == order.tolist()
        np.testing.assert_allclose(top.values[j], per_img[order, j].numpy(), rtol=1e-6)
        for i, sid in enumerate(top.sample_ids[j]):
            r, c = top.positions[j, i]
            assert a[sid, j, r, c] == pytest.approx(top.values[j, i])
            assert top.labels[j, i] == sid % 10
    # patches are the receptive field crops (5x5 at jump 2, start -1), padded with 0 outside
    rf = top.receptive_field
    assert rf is not None and rf.size == (5, 5) and rf.jump == (2, 2) and rf.start == (-1, -1)
    sid, (r, c) = top.sample_ids[1, 0], top.positions[1, 0]
    np.testing.assert_array_equal(top.patches[1, 0], crop_patch(x[sid], rf.box((r, c))))  # type: ignore[index]
    assert top.projections is not None and top.projections.shape == (3, 6, 1, 5, 5)


def test_topk_fewer_samples_than_k_and_bad_units() -> None:
    m = conv_model()
    snap = snapshot(m)
    ds = TensorDataset(torch.randn(3, 1, 12, 12), torch.zeros(3, dtype=torch.long))
    top = top_activations(m, ds, "3", k=5, rule=None, patches=False)
    assert top.values.shape == (6, 5)
    assert (top.sample_ids[:, 3:] == -1).all() and np.isneginf(top.values[:, 3:]).all()
    with pytest.raises(ParameterError, match="units must be channels"):
        top_activations(m, ds, "3", units=[6], rule=None, patches=False)
    assert_unchanged(m, snap)


# -- occlusion -------------------------------------------------------------------------------


class LeftHalf(nn.Module):
    """A classifier that only looks at the left 6 columns of a 12x12 image."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(5)
        self.conv = nn.Conv2d(1, 3, 3, padding=1)
        self.fc = nn.Linear(3 * 12 * 4, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.conv(x[:, :, :, :5])  # columns 0..4, padding reaches column 5 only via zeros
        return self.fc(h[:, :, :, :4].flatten(1))


def test_occluding_an_ignored_region_changes_nothing() -> None:
    m = LeftHalf()
    snap = snapshot(m)
    x = torch.randn(1, 12, 12)
    res = occlusion(m, x, size=3, stride=1, value=0.0, anchor="valid", layer="conv")
    assert_unchanged(m, snap)
    rows, cols = res.windows
    ignored = cols[:, 0] >= 5  # windows entirely in columns >= 5
    assert ignored.any() and (~ignored).any()
    # equal up to float rounding of batched vs single forward passes
    np.testing.assert_allclose(res.probability[:, ignored], res.base_probability, rtol=1e-6, atol=1e-7)
    assert (res.label[:, ignored] == res.base_label).all()
    np.testing.assert_allclose(res.activation[:, ignored], res.base_activation, rtol=1e-6)  # type: ignore[index]
    assert np.abs(res.probability[:, ~ignored] - res.base_probability).max() > 1e-4


def test_occlusion_batching_and_windows() -> None:
    m = LeftHalf()
    x = torch.randn(1, 12, 12)
    a = occlusion(m, x, size=4, stride=3, target=2, batch_size=1)
    b = occlusion(m, x, size=4, stride=3, target=2, batch_size=1000)
    np.testing.assert_allclose(a.probability, b.probability, rtol=1e-6)
    assert window_grid(28, 7, 1, "centred").shape == (28, 2)
    np.testing.assert_array_equal(window_grid(10, 4, 3, "valid"), [[0, 4], [3, 7], [6, 10]])
    np.testing.assert_array_equal(window_grid(10, 4, 4, "valid"), [[0, 4], [4, 8], [8, 10]])  # clipped like Captum
    snap = snapshot(m)
    with pytest.raises(ParameterError, match="target must be a class"):
        occlusion(m, x, target=9)
    with pytest.raises(ParameterError, match="larger than the input"):
        occlusion(m, x, size=13)
    assert_unchanged(m, snap)


def test_occlusion_equals_captum_on_mnist_cnn() -> None:
    captum = pytest.importorskip("captum.attr")
    from layerscope.data import load_dataset
    from layerscope.loading import load_model

    m = load_model("mnist-cnn")
    ds = load_dataset("mnist:test")
    snap = snapshot(m)
    worst = 0.0
    for i in (0, 1):
        x, y = ds.x[i], int(ds.y[i])
        for size, stride, base in ((7, 3, 0.1325), (5, 2, 0.0), (8, 8, 0.5)):
            ours = occlusion(m, x, target=y, size=size, stride=stride, value=base, anchor="valid")
            theirs = captum.Occlusion(lambda z: torch.softmax(m(z), dim=1)).attribute(
                x[None], sliding_window_shapes=(1, size, size), strides=(1, stride, stride), baselines=base,
                target=y, perturbations_per_eval=64,
            )
            worst = max(worst, float(np.abs(ours.pixel_attribution() - theirs[0, 0].detach().numpy()).max()))
    assert worst < 1e-5
    assert_unchanged(m, snap)


# -- invariance and correspondence ------------------------------------------------------------


def test_transforms_are_exact_for_integer_shifts_and_identity() -> None:
    x = torch.randn(2, 1, 8, 8)
    t = transform_images(x, "translate", 2, fill=-5.0)
    torch.testing.assert_close(t[..., 2:], x[..., :-2], atol=1e-5, rtol=0)
    torch.testing.assert_close(t[..., :2], torch.full_like(t[..., :2], -5.0))
    v = transform_images(x, "vtranslate", -3, fill=0.0)
    torch.testing.assert_close(v[..., :-3, :], x[..., 3:, :], atol=1e-5, rtol=0)
    torch.testing.assert_close(transform_images(x, "scale", 1.0), x, atol=1e-5, rtol=0)
    torch.testing.assert_close(transform_images(x, "rotate", 0.0), x, atol=1e-5, rtol=0)
    # a 90 degree rotation of a square image is a permutation of its pixels
    r = transform_images(x, "rotate", 90.0)
    assert torch.allclose(torch.sort(r.flatten(1))[0], torch.sort(x.flatten(1))[0], atol=1e-4)


def test_invariance_curves_zero_at_identity() -> None:
    m = conv_model()
    m.add_module("pool", nn.AdaptiveAvgPool2d(1))
    m.add_module("flat", nn.Flatten())
    m.add_module("out", nn.Linear(6, 3))
    snap = snapshot(m)
    x = torch.randn(4, 1, 12, 12)
    c = invariance_curves(m, x, [0, 1, 2, 0], layers=["1", "3"], ranges={"translate": [-2, 0, 2], "scale": [1.0, 1.3]})
    assert_unchanged(m, snap)
    assert c.distances["translate"]["1"].shape == (4, 3)
    np.testing.assert_allclose(c.distances["translate"]["1"][:, 1], 0.0, atol=1e-4)
    np.testing.assert_allclose(c.distances["scale"]["3"][:, 0], 0.0, atol=1e-4)
    assert (c.distances["translate"]["1"][:, [0, 2]] > 1e-3).all()
    with torch.no_grad():
        p = torch.softmax(m.eval()(x), 1)[torch.arange(4), torch.tensor([0, 1, 2, 0])]
    m.train()
    np.testing.assert_allclose(c.probabilities["translate"][:, 1], p.numpy(), rtol=1e-4)


def test_sign_delta_by_hand_and_correspondence_of_identical_images() -> None:
    # signs [+,-,0] and [+,+,0]: 1 of 3 coordinates differ, both ordered pairs -> 2 / (2 * 3)
    assert sign_delta(np.array([[1.0, -2.0, 0.0], [3.0, 1.0, 0.0]])) == pytest.approx(1 / 3)
    m = conv_model()
    snap = snapshot(m)
    x = torch.randn(1, 1, 12, 12).repeat(4, 1, 1, 1)
    res = correspondence(m, x, ["1", "3"], parts={"corner": (0, 0, 4, 4)}, n_random=3, random_state=0)
    assert_unchanged(m, snap)
    assert res.delta["1"]["corner"] == 0.0  # the same change in every copy
    assert res.delta["3"]["random"] > 0.0  # different random positions change different features
    res2 = correspondence(m, x, ["1", "3"], parts={"corner": (0, 0, 4, 4)}, n_random=3, random_state=0)
    assert res2.delta == res.delta  # same seed, same Δ
    # a part at a different place in each image: shifted copies, masked where the content moved
    base = torch.randn(1, 1, 12, 12)
    shifted = torch.cat([torch.roll(base, s, dims=3) for s in (0, 1, 2)])
    shifted[1, :, :, :1] = 0.0
    shifted[2, :, :, :2] = 0.0
    moving = [(4, 4 + s, 3, 3) for s in (0, 1, 2)]
    res3 = correspondence(m, shifted, ["1"], parts={"moving": moving, "fixed": (4, 4, 3, 3)}, n_random=2)
    assert res3.parts["moving"] == moving and res3.parts["fixed"] == (4, 4, 3, 3)
    with pytest.raises(ParameterError, match="one per image"):
        correspondence(m, shifted, ["1"], parts={"bad": moving[:2]})
    assert_unchanged(m, snap)


class Raising(nn.Module):
    """Conv net whose last module raises: every entry point must clean up after it."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 2, 3, padding=1)
        self.relu = nn.ReLU(inplace=True)
        self.bad = nn.Linear(3, 3)  # wrong input size: raises in forward

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.bad(self.relu(self.conv(x)).flatten(1))


@pytest.mark.parametrize(
    "call",
    [
        lambda m, x: occlusion(m, x[0], size=3, stride=2, layer="conv"),
        lambda m, x: invariance_curves(m, x, [0, 0], layers=["conv"], ranges={"rotate": [0, 90]}),
        lambda m, x: correspondence(m, x, ["bad"], n_random=1),
        lambda m, x: top_activations(m, TensorDataset(x, torch.zeros(2, dtype=torch.long)), "bad", k=1, rule=None, patches=False),
        lambda m, x: project_activations(m, x, "bad", [0], rule="guided"),
    ],
    ids=["occlusion", "invariance", "correspondence", "topk", "projection"],
)
def test_no_hooks_left_after_a_raising_model(call) -> None:  # type: ignore[no-untyped-def]
    m = Raising().train()
    snap = snapshot(m)
    with pytest.raises(Exception, match="cannot take an input|shapes cannot be multiplied"):
        call(m, torch.randn(2, 1, 6, 6))
    assert_unchanged(m, snap)


def test_occlusion_equals_captum_on_resnet20_cifar(cifar10_npz) -> None:  # type: ignore[no-untyped-def]
    captum = pytest.importorskip("captum.attr")
    from layerscope.convnets import dataset_mean
    from layerscope.data import load_dataset
    from layerscope.loading import load_model

    m = load_model("resnet20-cifar10")
    ds = load_dataset(f"cifar10:{cifar10_npz}:test")
    grey = dataset_mean(ds)
    x, y = ds.x[3], int(ds.y[3])
    ours = occlusion(m, x, target=y, size=8, stride=4, value=grey, anchor="valid", layer="layer3.2")
    theirs = captum.Occlusion(lambda z: torch.softmax(m(z), dim=1)).attribute(
        x[None], sliding_window_shapes=(3, 8, 8), strides=(3, 4, 4), baselines=grey.view(1, 3, 1, 1).expand(1, 3, 32, 32),
        target=y, perturbations_per_eval=64,
    )
    # Captum gives every channel the same attribution for a window spanning all channels
    assert np.abs(ours.pixel_attribution() - theirs[0, 0].detach().numpy()).max() < 1e-5
    assert np.abs(ours.pixel_attribution() - theirs[0, 2].detach().numpy()).max() < 1e-5


@pytest.mark.parametrize("name,layer", [("mnist-cnn", "relu2"), ("resnet20-cifar10", "layer2.1.relu1")])
def test_projections_equal_captum_neuron_methods(name: str, layer: str) -> None:
    """Captum's NeuronGradient / NeuronDeconvolution / NeuronGuidedBackprop give the same map
    (both seed the backward pass with 1)."""
    import warnings

    attr = pytest.importorskip("captum.attr")
    from layerscope.loading import load_model

    m = load_model(name)
    snap = snapshot(m)
    torch.manual_seed(0)
    x = torch.randn(2, *m.input_shape)
    module = dict(m.named_modules())[layer]
    for rule, cls in (("gradient", attr.NeuronGradient), ("deconvnet", attr.NeuronDeconvolution),
                      ("guided", attr.NeuronGuidedBackprop)):
        p = project_activations(m, x, layer, [1, 3], rule=rule)  # type: ignore[arg-type]
        assert_unchanged(m, snap)
        for b in range(2):
            sel = (int(p.units[b]), *(int(v) for v in p.positions[b]))
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                ref = cls(m, module).attribute(x[b : b + 1].clone(), neuron_selector=sel)[0].detach().numpy()
            assert p.values[b] > 0
            np.testing.assert_allclose(p.maps[b], ref, rtol=1e-4, atol=1e-6)


class LeNetFunctional(nn.Module):
    """Functional ReLU and max-pool, ``view(x.size(0), -1)``: a classic model written by hand."""

    def __init__(self) -> None:
        super().__init__()
        self.c1 = nn.Conv2d(1, 4, 5)
        self.c2 = nn.Conv2d(4, 8, 5)
        self.fc = nn.Linear(8 * 4 * 4, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.max_pool2d(F.relu(self.c1(x)), 2)
        x = F.max_pool2d(F.relu(self.c2(x)), 2)
        return self.fc(x.view(x.size(0), -1))


def test_functional_model_receptive_field_and_rules() -> None:
    m = LeNetFunctional()
    # c1: 5x5; pool 2 -> 6x6 at jump 2; c2 (5x5 at jump 2) -> 6 + 4 * 2 = 14
    assert receptive_field(m, "c2", (1, 28, 28)).size == (14, 14)
    assert receptive_field(m, "c2", (1, 28, 28)).jump == (2, 2)
    assert receptive_field(m, "fc", (1, 28, 28)).is_global
    ds = TensorDataset(torch.randn(20, 1, 28, 28), torch.zeros(20, dtype=torch.long))
    snap = snapshot(m)
    top = top_activations(m, ds, "c2", units=[1], k=3, rule="gradient")
    assert top.patches.shape == (1, 3, 1, 14, 14)  # type: ignore[union-attr]
    with pytest.raises(UnsupportedModelError, match="relu in 'LeNetFunctional.forward"):
        top_activations(m, ds, "c2", units=[1], k=3, rule="deconvnet")
    assert_unchanged(m, snap)
