"""Reference architectures, bundled pretrained models, and architecture spec strings.

An architecture spec is ``NAME`` or ``NAME:key=value,key=value``; list values use ``x``:

* ``mlp`` (``width=1000, depth=4, dropout=0``), e.g. ``mlp:width=256,depth=3``
* ``cnn`` (``dense=4096x512, channels=32x64, dropout=0``), e.g. ``cnn:dense=512x128``
* ``convnet8`` (``width=32, fc_width=256, dropout=0``)
* ``dnn`` — frame-level acoustic DNN (``width=512, depth=4``; input shape from the data)

Input shape and class count come from the data the model is trained on.
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

import torch
from torch import nn

from ..exceptions import ModelSpecError
from .pretrained import PRETRAINED, MnistCNNSmall, MnistMLPSmall, ResNet20, load_pretrained
from .reference import MLP, AcousticDNN, ConvNet8, RauberCNN

__all__ = [
    "MLP",
    "RauberCNN",
    "ConvNet8",
    "AcousticDNN",
    "ResNet20",
    "MnistMLPSmall",
    "MnistCNNSmall",
    "ARCHITECTURES",
    "PRETRAINED",
    "build_model",
    "parse_arch_spec",
    "load_pretrained",
]


def _mlp(input_shape: Sequence[int], n_classes: int, **kw: Any) -> nn.Module:
    return MLP(input_shape, n_classes, **kw)


def _cnn(input_shape: Sequence[int], n_classes: int, **kw: Any) -> nn.Module:
    return RauberCNN(input_shape, n_classes, **kw)


def _convnet8(input_shape: Sequence[int], n_classes: int, **kw: Any) -> nn.Module:
    return ConvNet8(input_shape, n_classes, **kw)


def _dnn(input_shape: Sequence[int], n_classes: int, **kw: Any) -> nn.Module:
    return AcousticDNN(input_shape, n_classes, **kw)


ARCHITECTURES: dict[str, tuple[Callable[..., nn.Module], dict[str, type]]] = {
    "mlp": (_mlp, {"width": int, "depth": int, "dropout": float, "activation": str}),
    "cnn": (_cnn, {"dense": tuple, "channels": tuple, "dropout": float}),
    "convnet8": (_convnet8, {"width": int, "fc_width": int, "dropout": float}),
    "dnn": (_dnn, {"width": int, "depth": int, "dropout": float, "activation": str}),
}


def parse_arch_spec(spec: str) -> tuple[str, dict[str, Any]]:
    """``'mlp:width=256,depth=3'`` -> ``('mlp', {'width': 256, 'depth': 3})``."""
    name, _, rest = spec.partition(":")
    name = name.strip().lower()
    if name not in ARCHITECTURES:
        raise ModelSpecError(
            f"Unknown architecture {name!r}; expected one of {', '.join(ARCHITECTURES)} "
            "(optionally with options, e.g. 'mlp:width=256,depth=3')."
        )
    types = ARCHITECTURES[name][1]
    kwargs: dict[str, Any] = {}
    for item in filter(None, (s.strip() for s in rest.split(","))):
        key, eq, value = item.partition("=")
        if not eq or key not in types:
            raise ModelSpecError(
                f"Bad option {item!r} for {name}; options are {', '.join(f'{k}=...' for k in types)}."
            )
        typ = types[key]
        try:
            if typ is tuple:
                kwargs[key] = tuple(int(v) for v in value.lower().split("x"))
            else:
                kwargs[key] = typ(value)
        except ValueError as err:
            raise ModelSpecError(f"Option {key}={value!r} of {name} is not a valid {typ.__name__}.") from err
    return name, kwargs


#: Largest model build_model makes (parameters); larger specs are refused before allocating.
MAX_PARAMETERS = 1_000_000_000


def _check_size(spec: str, factory: Any, input_shape: tuple[int, ...], n_classes: int, kwargs: dict[str, Any]) -> None:
    """Refuse a spec whose model would exceed MAX_PARAMETERS, counted on the meta device (no memory)."""
    try:
        with torch.device("meta"):
            probe = factory(input_shape, n_classes, **kwargs)
        n = sum(p.numel() for p in probe.parameters())
    except Exception:  # noqa: BLE001 - a factory that cannot run on meta is built (and checked) for real
        return
    if n > MAX_PARAMETERS:
        raise ModelSpecError(
            f"{spec!r} would have {n:,} parameters ({n * 4 / 2**30:.1f} GiB as float32), more than the "
            f"{MAX_PARAMETERS:,} layerscope builds; choose smaller widths or depth."
        )


def build_model(spec: str, input_shape: Sequence[int], n_classes: int) -> nn.Module:
    """Build an untrained reference model from an architecture spec."""
    name, kwargs = parse_arch_spec(spec)
    factory = ARCHITECTURES[name][0]
    _check_size(spec, factory, tuple(input_shape), int(n_classes), kwargs)
    model = factory(tuple(input_shape), int(n_classes), **kwargs)
    model.arch_spec = spec  # type: ignore[assignment]
    return model
