"""Capture on tiny hand-weighted models: values by hand, no hooks left, model unchanged."""

from __future__ import annotations

from collections import OrderedDict
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn
from torch.utils.data import TensorDataset

import layerscope as ls
from layerscope.capture import Activations, capture, collect_activations
from layerscope.exceptions import DataError, InputShapeError, LayerNotFoundError


def tiny_mlp() -> nn.Sequential:
    """y = W2 relu(W1 x + b1) + b2 with W1 = [[1, -1], [2, 0], [0, 1]], b1 = [0, -1, 0.5]."""
    m = nn.Sequential(OrderedDict(fc1=nn.Linear(2, 3), relu=nn.ReLU(), fc2=nn.Linear(3, 1)))
    with torch.no_grad():
        m.fc1.weight.copy_(torch.tensor([[1.0, -1.0], [2.0, 0.0], [0.0, 1.0]]))
        m.fc1.bias.copy_(torch.tensor([0.0, -1.0, 0.5]))
        m.fc2.weight.copy_(torch.tensor([[1.0, 1.0, -2.0]]))
        m.fc2.bias.copy_(torch.tensor([0.25]))
    return m


class Boom(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        raise RuntimeError("boom inside the model")


def snapshot(model: nn.Module) -> tuple[dict[str, torch.Tensor], list[bool], list[bool]]:
    return (
        {k: v.clone() for k, v in model.state_dict().items()},
        [m.training for m in model.modules()],
        [p.requires_grad for p in model.parameters()],
    )


def assert_unchanged(model: nn.Module, snap: tuple) -> None:  # type: ignore[type-arg]
    state, training, grads = snap
    for k, v in model.state_dict().items():
        assert torch.equal(v, state[k]), k
    assert [m.training for m in model.modules()] == training
    assert [p.requires_grad for p in model.parameters()] == grads
    for m in model.modules():
        assert not m._forward_hooks and not m._forward_pre_hooks and not m._backward_hooks


def test_capture_equals_hand_computation() -> None:
    m = tiny_mlp()
    x = torch.tensor([[1.0, 2.0], [3.0, -1.0]])
    with capture(m, ["fc1", "relu", "fc2"]) as cap:
        out = cap.run(x)
    # fc1: [1-2, 2-1, 2+0.5] = [-1, 1, 2.5]; [3+1, 6-1, -1+0.5] = [4, 5, -0.5]
    assert cap["fc1"].tolist() == [[-1.0, 1.0, 2.5], [4.0, 5.0, -0.5]]
    assert cap["relu"].tolist() == [[0.0, 1.0, 2.5], [4.0, 5.0, 0.0]]
    # fc2: 0 + 1 - 5 + 0.25 = -3.75; 4 + 5 - 0 + 0.25 = 9.25
    assert cap["fc2"].flatten().tolist() == [-3.75, 9.25]
    assert torch.equal(out, cap["fc2"])


def test_reduce_and_stop_early() -> None:
    calls = []

    class Count(nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            calls.append(1)
            return x

    m = nn.Sequential(OrderedDict(conv=nn.Conv2d(1, 2, 1, bias=False), relu=nn.ReLU(), top=Count()))
    with torch.no_grad():
        m.conv.weight.copy_(torch.tensor([1.0, -1.0]).view(2, 1, 1, 1))
    x = torch.tensor([[[[1.0, -2.0], [3.0, 4.0]]]])
    with capture(m, ["relu"], reduce="mean", stop_early=True) as cap:
        cap.run(x)  # the first pass runs the whole model once, counting calls of reused modules
        assert calls == [1]
        assert cap.run(x) is None
    assert calls == [1]  # from the second pass on, nothing above the requested layer ran
    assert cap["relu"].tolist() == [[(1 + 3 + 4) / 4, 2 / 4]]
    with capture(m, ["relu"], reduce="max") as cap:
        cap.run(x)
    assert cap["relu"].tolist() == [[4.0, 2.0]] and calls == [1, 1]


def test_no_hooks_and_unchanged_after_success_and_error() -> None:
    m = tiny_mlp()
    m.fc2.weight.requires_grad_(False)
    m.train()
    snap = snapshot(m)
    ds = TensorDataset(torch.randn(10, 2), torch.zeros(10, dtype=torch.long))
    collect_activations(m, ds, ["relu"], batch_size=3)
    assert_unchanged(m, snap)

    bad = nn.Sequential(OrderedDict(fc1=nn.Linear(2, 2), boom=Boom()))
    bad.train()
    snap = snapshot(bad)
    with pytest.raises(RuntimeError, match="boom"):
        collect_activations(bad, ds, ["fc1"], predictions=True)
    assert_unchanged(bad, snap)
    with pytest.raises(RuntimeError, match="boom"):
        with capture(bad, ["fc1"]) as cap:
            cap.run(torch.randn(1, 2))
    assert_unchanged(bad, snap)


def test_unknown_layer_suggests_names() -> None:
    m = tiny_mlp()
    with pytest.raises(LayerNotFoundError, match=r"Did you mean 'fc1'"):
        with capture(m, ["fc11"]):
            pass
    assert not m.fc1._forward_hooks


def test_wrong_input_shape_is_explained() -> None:
    model = ls.load_model("mnist-mlp")
    with pytest.raises(InputShapeError, match=r"expects \(N, 1, 28, 28\)"):
        with capture(model, ["relu1"]) as cap:
            cap.run(torch.zeros(2, 3, 32, 32))
    assert not model.relu1._forward_hooks


def test_collect_matches_direct_forward_and_keeps_labels() -> None:
    data = ls.load_dataset("mnist:test").subset(np.arange(300))
    data.extra_labels["writer"] = np.arange(300) % 7
    model = ls.load_model("mnist-cnn")
    acts = collect_activations(model, data, ["relu2", "relu3"], batch_size=64, predictions=True, reduce="mean")
    with torch.no_grad():
        h = model.relu2(model.conv2(model.relu1(model.conv1(data.x))))
        logits = model(data.x)
    np.testing.assert_allclose(acts["relu2"], h.mean(dim=(2, 3)).numpy(), rtol=1e-5, atol=1e-6)
    assert acts["relu3"].shape == (300, 256)
    assert np.array_equal(acts.labels, data.y.numpy())
    assert np.array_equal(acts.predictions, logits.argmax(1).numpy())
    assert np.array_equal(acts.extra_labels["writer"], np.arange(300) % 7)


def test_memory_budget_streams_to_disk(tmp_path: Path) -> None:
    data = ls.load_dataset("mnist:test").subset(np.arange(500))
    model = ls.load_model("mnist-cnn")
    in_ram = collect_activations(model, data, ["relu1", "relu3"], batch_size=128)
    idx = np.arange(499, -1, -2)
    streamed = collect_activations(
        model, data, ["relu1", "relu3"], batch_size=128, memory_budget=100_000, out_dir=tmp_path / "acts", indices=idx
    )
    assert isinstance(streamed["relu1"], np.memmap)
    assert not any(p.name.startswith(".partial") for p in (tmp_path / "acts").iterdir())
    np.testing.assert_array_equal(streamed["relu1"], in_ram["relu1"][idx])
    np.testing.assert_array_equal(streamed.sample_ids, idx)
    again = Activations.load(tmp_path / "acts")
    np.testing.assert_array_equal(again["relu3"], in_ram["relu3"][idx])
    np.testing.assert_array_equal(again.labels, data.y.numpy()[idx])


def test_failed_stream_leaves_nothing(tmp_path: Path) -> None:
    class FailLater(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.n = 0

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            self.n += 1
            if self.n == 3:
                raise RuntimeError("fails on the third batch")
            return x

    m = nn.Sequential(OrderedDict(flat=nn.Flatten(), f=FailLater()))
    ds = TensorDataset(torch.randn(40, 4), torch.zeros(40, dtype=torch.long))
    with pytest.raises(RuntimeError, match="third batch"):
        collect_activations(m, ds, ["flat"], batch_size=10, predictions=True, memory_budget=1, out_dir=tmp_path / "o")
    # the result folder is staged and swapped in only on success: no folder, no partial files
    assert not (tmp_path / "o").exists()
    assert [p.name for p in tmp_path.iterdir() if not p.name.endswith(".lock")] == []


def test_empty_dataset() -> None:
    ds = TensorDataset(torch.zeros(0, 2), torch.zeros(0, dtype=torch.long))
    with pytest.raises(DataError, match="empty"):
        collect_activations(tiny_mlp(), ds, ["fc1"])


def test_list_layers_shapes() -> None:
    model = ls.load_model("resnet20-cifar10")
    rows = {r.name: r for r in ls.list_layers(model, torch.zeros(1, 3, 32, 32))}
    assert rows["layer2.0.relu2"].output_shape == (32, 16, 16)
    assert rows["layer3"].output_shape == (64, 8, 8)
    assert rows["linear"].total_params == 650 and rows["linear"].output_shape == (10,)
    assert sum(r.params for r in rows.values()) == sum(p.numel() for p in model.parameters())
    assert not any(m._forward_hooks for m in model.modules())


def test_captured_arrays_hold_the_forward_values_with_a_short_last_batch() -> None:
    """The hook's copy (NumPy's short path for same-dtype RAM arrays, Tensor.copy_ with conversion for
    float16) equals a hand loop over the same batches, including a 2-row last batch; the arrays are
    writable, contiguous and outlive the capture."""
    data = ls.load_dataset("mnist:test").subset(np.arange(130))
    model = ls.load_model("mnist-cnn")
    acts = collect_activations(model, data, ["conv1", "relu3"], batch_size=64)  # 64 + 64 + 2 rows
    half = collect_activations(model, data, ["conv1"], batch_size=64, dtype="float16")
    with torch.no_grad():  # a hand loop over the same batches (matmul results depend on the batch size)
        conv1 = torch.cat([model.conv1(data.x[s : s + 64]) for s in range(0, 130, 64)])
        relu3 = torch.cat([
            model.relu3(model.fc1(model.flatten(model.relu2(model.conv2(model.relu1(model.conv1(data.x[s : s + 64])))))))
            for s in range(0, 130, 64)
        ])
    assert np.array_equal(acts["conv1"], conv1.numpy())  # the hook's copy is exact
    assert np.array_equal(acts["relu3"], relu3.numpy())
    assert np.array_equal(half["conv1"], conv1.numpy().astype(np.float16))
    for a in (acts["conv1"], acts["relu3"], half["conv1"]):
        assert a.flags.writeable and a.flags.c_contiguous
    arr = acts["conv1"]
    del acts  # the array outlives its result object
    assert np.array_equal(arr, conv1.numpy())
