"""layerscope: see what each layer of a trained PyTorch network has learned.

The analyses of five classic works on any PyTorch model — activation maximization (Erhan et al.
2009), visualizing convnets (Zeiler & Fergus 2014), hidden-activity projections (Rauber et al.
2017), acoustic-model analyses (Mohamed, Hinton & Penn 2012) and layer transferability (Yosinski
et al. 2014) — with figures, JSON metrics, an HTML report and a CLI.
"""

from __future__ import annotations

from .capture import Activations, capture, collect_activations, model_state_guard
from .data import load_dataset
from .capture import list_layers
from .layers import LayerInfo, layer_names, resolve_layer
from .loading import load_model

__version__ = "0.1.0"

__all__ = [
    "Activations",
    "LayerInfo",
    "capture",
    "collect_activations",
    "layer_names",
    "list_layers",
    "load_dataset",
    "load_model",
    "model_state_guard",
    "resolve_layer",
    "__version__",
]
