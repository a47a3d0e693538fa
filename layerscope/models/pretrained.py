"""Definitions of the bundled pretrained models, and their loader.

Written from the published architecture descriptions (no code copied); the weights ship in
``layerscope/bundled/pretrained`` as ``.safetensors`` with their licenses.

* ``resnet20-cifar10`` — He et al. 2016 CIFAR ResNet-20, weights by Y. Idelbayev (BSD-2-Clause);
  91.78 % reported on the CIFAR-10 test set. Input: RGB 32x32, pixels / 255 then standardised with
  mean (0.485, 0.456, 0.406), std (0.229, 0.224, 0.225) — what ``cifar10:PATH`` data gives.
* ``mnist-mlp`` — MLP 784-128-64-10 from auto_LiRPA (BSD-3-Clause), 97.52 %.
* ``mnist-cnn`` — conv 8 (4x4/2), conv 16 (4x4/2), fc 256, fc 10, from auto_LiRPA, 96.69 %.
  Both MNIST models take pixels / 255 in [0, 1], no mean/std — what ``mnist`` data gives.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

from ..exceptions import ModelSpecError, WeightsError

__all__ = ["ResNet20", "MnistMLPSmall", "MnistCNNSmall", "PRETRAINED", "load_pretrained", "PretrainedInfo"]

WEIGHTS = Path(__file__).resolve().parent.parent / "bundled" / "pretrained"


class _ShortcutA(nn.Module):
    """Option-A shortcut: subsample by 2 and zero-pad channels (no parameters)."""

    def __init__(self, pad: int) -> None:
        super().__init__()
        self.pad = pad

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.pad(x[:, :, ::2, ::2], (0, 0, 0, 0, self.pad, self.pad))


class BasicBlock(nn.Module):
    """conv3x3 -> BN -> ReLU -> conv3x3 -> BN, plus shortcut, then ReLU (``relu1``, ``relu2``)."""

    def __init__(self, cin: int, cout: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.relu1 = nn.ReLU()
        self.conv2 = nn.Conv2d(cout, cout, 3, stride=1, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.shortcut: nn.Module = _ShortcutA(cout // 4) if (stride != 1 or cin != cout) else nn.Identity()
        self.relu2 = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu1(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu2(out + self.shortcut(x))


class ResNet20(nn.Module):
    """CIFAR ResNet-20 (n = 3), option-A shortcuts. Layers: ``conv1, bn1, relu, layer1..3, pool, linear``."""

    def __init__(self, n_classes: int = 10) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 16, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(16)
        self.relu = nn.ReLU()
        self.layer1 = nn.Sequential(*[BasicBlock(16, 16) for _ in range(3)])
        self.layer2 = nn.Sequential(BasicBlock(16, 32, 2), BasicBlock(32, 32), BasicBlock(32, 32))
        self.layer3 = nn.Sequential(BasicBlock(32, 64, 2), BasicBlock(64, 64), BasicBlock(64, 64))
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.flatten = nn.Flatten()
        self.linear = nn.Linear(64, n_classes)
        self.input_shape = (3, 32, 32)
        self.hidden_layers = ["relu"] + [f"layer{i}.{j}" for i in (1, 2, 3) for j in range(3)]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.relu(self.bn1(self.conv1(x)))
        x = self.layer3(self.layer2(self.layer1(x)))
        return self.linear(self.flatten(self.pool(x)))


class MnistMLPSmall(nn.Sequential):
    """784-128-64-10 ReLU MLP (``flatten, fc1, relu1, fc2, relu2, fc3``)."""

    def __init__(self) -> None:
        super().__init__()
        self.flatten = nn.Flatten()
        self.fc1 = nn.Linear(784, 128)
        self.relu1 = nn.ReLU()
        self.fc2 = nn.Linear(128, 64)
        self.relu2 = nn.ReLU()
        self.fc3 = nn.Linear(64, 10)
        self.input_shape = (1, 28, 28)
        self.hidden_layers = ["relu1", "relu2"]


class MnistCNNSmall(nn.Sequential):
    """conv 1->8 (4x4, stride 2, pad 1), ReLU, conv 8->16 (same), ReLU, fc 784->256, ReLU, fc 256->10."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(1, 8, 4, stride=2, padding=1)
        self.relu1 = nn.ReLU()
        self.conv2 = nn.Conv2d(8, 16, 4, stride=2, padding=1)
        self.relu2 = nn.ReLU()
        self.flatten = nn.Flatten()
        self.fc1 = nn.Linear(784, 256)
        self.relu3 = nn.ReLU()
        self.fc2 = nn.Linear(256, 10)
        self.input_shape = (1, 28, 28)
        self.hidden_layers = ["relu1", "relu2", "relu3"]


@dataclass(frozen=True)
class PretrainedInfo:
    name: str
    build: Callable[[], nn.Module]
    weights: str
    data: str  # data spec of the matching evaluation data (bundled where possible)
    classes: tuple[str, ...]
    reported_accuracy: float
    license: str
    source: str


_DIGITS = tuple(str(i) for i in range(10))
_CIFAR = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")

PRETRAINED: dict[str, PretrainedInfo] = {
    "resnet20-cifar10": PretrainedInfo(
        "resnet20-cifar10", ResNet20, "cifar10_resnet20/resnet20_cifar10.safetensors", "cifar10:PATH:test", _CIFAR,
        0.9178, "BSD-2-Clause", "Y. Idelbayev, github.com/akamaster/pytorch_resnet_cifar10",
    ),
    "mnist-mlp": PretrainedInfo(
        "mnist-mlp", MnistMLPSmall, "mnist_autolirpa/mnist_fc_3layer.safetensors", "mnist:test", _DIGITS,
        0.9752, "BSD-3-Clause", "auto_LiRPA, github.com/Verified-Intelligence/auto_LiRPA",
    ),
    "mnist-cnn": PretrainedInfo(
        "mnist-cnn", MnistCNNSmall, "mnist_autolirpa/mnist_cnn_small.safetensors", "mnist:test", _DIGITS,
        0.9669, "BSD-3-Clause", "auto_LiRPA, github.com/Verified-Intelligence/auto_LiRPA",
    ),
}


def load_pretrained(name: str) -> nn.Module:
    """Build a bundled pretrained model with its weights, in ``eval()`` mode."""
    from safetensors.torch import load_file

    if name not in PRETRAINED:
        raise ModelSpecError(f"No bundled pretrained model {name!r}; available: {', '.join(PRETRAINED)}.")
    info = PRETRAINED[name]
    model = info.build()
    path = WEIGHTS / info.weights
    if not path.exists():
        raise WeightsError(f"Bundled weights {path} are missing; reinstall layerscope from a full checkout.")
    state = load_file(str(path))
    missing, unexpected = model.load_state_dict(state, strict=False)
    missing = [k for k in missing if not k.endswith("num_batches_tracked")]
    if missing or unexpected:
        raise WeightsError(f"{path} does not fit {name}: missing {missing[:5]}, unexpected {unexpected[:5]}.")
    model.classes = list(info.classes)  # type: ignore[assignment]
    model.pretrained_name = name  # type: ignore[assignment]
    return model.eval()
