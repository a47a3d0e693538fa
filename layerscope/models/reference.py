"""Reference architectures used by the recipes and tests.

* :class:`MLP` — Rauber et al. 2017's MLP: hidden ReLU layers (default 4 x 1000).
* :class:`RauberCNN` — Rauber et al. 2017's CNN: 2 x conv32, pool, 2 x conv64, pool, two dense
  layers (default 4096, 512 as in the paper).
* :class:`ConvNet8` — an 8-layer convnet whose layers are ``layer1`` .. ``layer8`` (5 conv + 3 fully
  connected, like the AlexNet of Yosinski et al. 2014), for transfer experiments.
* :class:`AcousticDNN` — a frame-level DNN acoustic model (Mohamed, Hinton & Penn 2012): a context
  window of feature frames in, up to 8 hidden layers, one class per frame out.

Every module is a distinct ``nn.Module`` attribute (ReLUs included, never functional or in-place),
so each layer has its own ``named_modules()`` name and can be hooked on its own.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from typing import Literal, Sequence

import torch
from torch import nn

from ..exceptions import ParameterError

__all__ = ["MLP", "RauberCNN", "ConvNet8", "AcousticDNN"]


def _check_positive(name: str, value: int) -> None:
    if int(value) < 1:
        raise ParameterError(f"{name} must be a positive integer; got {value}.")


class MLP(nn.Sequential):
    """Fully connected ReLU network.

    Layers: ``flatten``, then for i = 1..depth ``fc{i}``, ``relu{i}`` (and ``drop{i}`` when
    ``dropout > 0``), then ``out`` (logits). Input ``(N, *input_shape)``, flattened.

    Parameters
    ----------
    input_shape : tuple of int
        Shape of one input, e.g. ``(1, 28, 28)`` or ``(784,)``.
    n_classes : int
    width : int
        Units per hidden layer (Rauber et al.: 1000).
    depth : int
        Number of hidden layers (Rauber et al.: 4).
    dropout : float
        Dropout after each hidden ReLU (Rauber et al. used dropout; 0 disables it).
    activation : {"relu", "sigmoid"}
    """

    def __init__(
        self,
        input_shape: Sequence[int] = (1, 28, 28),
        n_classes: int = 10,
        width: int = 1000,
        depth: int = 4,
        dropout: float = 0.0,
        activation: Literal["relu", "sigmoid"] = "relu",
    ) -> None:
        _check_positive("width", width)
        _check_positive("depth", depth)
        _check_positive("n_classes", n_classes)
        if not 0.0 <= dropout < 1.0:
            raise ParameterError(f"dropout must be in [0, 1); got {dropout}.")
        if activation not in ("relu", "sigmoid"):
            raise ParameterError(f"activation must be 'relu' or 'sigmoid'; got {activation!r}.")
        layers: OrderedDict[str, nn.Module] = OrderedDict(flatten=nn.Flatten())
        n_in = int(math.prod(input_shape))
        for i in range(1, depth + 1):
            layers[f"fc{i}"] = nn.Linear(n_in, width)
            layers[f"relu{i}"] = nn.ReLU() if activation == "relu" else nn.Sigmoid()
            if dropout > 0:
                layers[f"drop{i}"] = nn.Dropout(dropout)
            n_in = width
        layers["out"] = nn.Linear(n_in, n_classes)
        super().__init__(layers)
        self.input_shape = tuple(int(s) for s in input_shape)
        self.hidden_layers = [f"relu{i}" for i in range(1, depth + 1)]


class RauberCNN(nn.Sequential):
    """2 x conv32, pool, 2 x conv64, pool, dense, dense (Rauber et al. 2017).

    Layers: ``conv1, relu1, conv2, relu2, pool1, conv3, relu3, conv4, relu4, pool2, flatten,
    fc1, relu5, fc2, relu6, out``. 3x3 convolutions with padding 1, 2x2 max pooling.
    """

    def __init__(
        self,
        input_shape: Sequence[int] = (1, 28, 28),
        n_classes: int = 10,
        dense: Sequence[int] = (4096, 512),
        channels: Sequence[int] = (32, 64),
        dropout: float = 0.0,
    ) -> None:
        if len(input_shape) != 3:
            raise ParameterError(f"RauberCNN needs image inputs (C, H, W); got input_shape {tuple(input_shape)}.")
        if len(dense) != 2:
            raise ParameterError(f"dense must give two layer widths; got {tuple(dense)}.")
        c, h, w = (int(s) for s in input_shape)
        c1, c2 = channels
        layers: OrderedDict[str, nn.Module] = OrderedDict(
            conv1=nn.Conv2d(c, c1, 3, padding=1),
            relu1=nn.ReLU(),
            conv2=nn.Conv2d(c1, c1, 3, padding=1),
            relu2=nn.ReLU(),
            pool1=nn.MaxPool2d(2),
            conv3=nn.Conv2d(c1, c2, 3, padding=1),
            relu3=nn.ReLU(),
            conv4=nn.Conv2d(c2, c2, 3, padding=1),
            relu4=nn.ReLU(),
            pool2=nn.MaxPool2d(2),
            flatten=nn.Flatten(),
            fc1=nn.Linear(c2 * (h // 4) * (w // 4), dense[0]),
            relu5=nn.ReLU(),
        )
        if dropout > 0:
            layers["drop1"] = nn.Dropout(dropout)
        layers["fc2"] = nn.Linear(dense[0], dense[1])
        layers["relu6"] = nn.ReLU()
        if dropout > 0:
            layers["drop2"] = nn.Dropout(dropout)
        layers["out"] = nn.Linear(dense[1], n_classes)
        super().__init__(layers)
        self.input_shape = (c, h, w)
        self.hidden_layers = ["relu1", "relu2", "relu3", "relu4", "relu5", "relu6"]


class ConvNet8(nn.Module):
    """Eight numbered layers, ``layer1`` .. ``layer8`` (5 convolutional + 3 fully connected).

    ``layer1``: conv w, ReLU; ``layer2``: conv w, ReLU, max-pool 2; ``layer3``: conv 2w, ReLU;
    ``layer4``: conv 2w, ReLU, max-pool 2; ``layer5``: conv 4w, ReLU, adaptive avg-pool to 3x3;
    ``layer6``: flatten, fc 8w·... -> fc_width, ReLU; ``layer7``: fc, ReLU; ``layer8``: fc -> classes.

    :meth:`numbered_layers` returns the eight blocks in order; transfer experiments copy the first
    n of them.
    """

    def __init__(
        self,
        input_shape: Sequence[int] = (1, 28, 28),
        n_classes: int = 10,
        width: int = 32,
        fc_width: int = 256,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        if len(input_shape) != 3:
            raise ParameterError(f"ConvNet8 needs image inputs (C, H, W); got input_shape {tuple(input_shape)}.")
        _check_positive("width", width)
        _check_positive("fc_width", fc_width)
        c = int(input_shape[0])
        w = int(width)

        def conv(cin: int, cout: int, pool: nn.Module | None = None) -> nn.Sequential:
            mods: list[nn.Module] = [nn.Conv2d(cin, cout, 3, padding=1), nn.ReLU()]
            if pool is not None:
                mods.append(pool)
            return nn.Sequential(*mods)

        self.layer1 = conv(c, w)
        self.layer2 = conv(w, w, nn.MaxPool2d(2))
        self.layer3 = conv(w, 2 * w)
        self.layer4 = conv(2 * w, 2 * w, nn.MaxPool2d(2))
        self.layer5 = conv(2 * w, 4 * w, nn.AdaptiveAvgPool2d(3))
        fc6: list[nn.Module] = [nn.Flatten(), nn.Linear(4 * w * 9, fc_width), nn.ReLU()]
        fc7: list[nn.Module] = [nn.Linear(fc_width, fc_width), nn.ReLU()]
        if dropout > 0:
            fc6.append(nn.Dropout(dropout))
            fc7.append(nn.Dropout(dropout))
        self.layer6 = nn.Sequential(*fc6)
        self.layer7 = nn.Sequential(*fc7)
        self.layer8 = nn.Sequential(nn.Linear(fc_width, n_classes))
        self.input_shape = tuple(int(s) for s in input_shape)
        self.hidden_layers = [f"layer{i}" for i in range(1, 8)]

    def numbered_layers(self) -> list[nn.Module]:
        """The eight blocks in order: ``[layer1, ..., layer8]``."""
        return [getattr(self, f"layer{i}") for i in range(1, 9)]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for layer in self.numbered_layers():
            x = layer(x)
        return x


class AcousticDNN(MLP):
    """Frame-level DNN acoustic model (Mohamed, Hinton & Penn 2012).

    Input: a context window of ``2 * context + 1`` feature frames, shape
    ``(N, 2 * context + 1, n_features)`` (flattened inside). Hidden layers ``fc1..fc{depth}``
    with activations ``relu1..``; output ``out``: one class score vector per centre frame.

    Parameters
    ----------
    n_features : int
        Features per frame (e.g. 40 log-mel filterbanks or 13 MFCCs).
    context : int
        Frames on each side of the centre frame.
    depth : int
        Hidden layers, 1 to 8.
    """

    def __init__(
        self,
        input_shape: Sequence[int] | None = None,
        n_classes: int = 10,
        n_features: int = 40,
        context: int = 5,
        width: int = 512,
        depth: int = 4,
        dropout: float = 0.0,
        activation: Literal["relu", "sigmoid"] = "relu",
    ) -> None:
        if not 1 <= depth <= 8:
            raise ParameterError(f"AcousticDNN depth must be 1 to 8 hidden layers; got {depth}.")
        if input_shape is None:
            if context < 0:
                raise ParameterError(f"context must be >= 0; got {context}.")
            input_shape = (2 * context + 1, n_features)
        super().__init__(input_shape, n_classes, width=width, depth=depth, dropout=dropout, activation=activation)
