"""Visualizing and understanding convnets (Zeiler & Fergus 2014, arXiv 1311.2901).

* :mod:`.receptive_field` — the true receptive field of a layer's units, from the traced graph.
* :mod:`.topk` — the k strongest activations of many units over a data set, one streaming pass,
  with receptive-field patches and projections.
* :mod:`.deconvnet` — projection of ONE activation back to input space with the plain-gradient,
  deconvnet or guided-backprop rule.
* :mod:`.occlusion` — occlusion sensitivity maps (feature map, true-class probability, label).
* :mod:`.invariance` — feature distances and class probability under translation, scaling and
  rotation.
* :mod:`.evolution` — top activations projected at the checkpoints of a training run.
* :mod:`.correspondence` — the correspondence measure Δ (same part masked vs random masks).
"""

from .correspondence import Correspondence, correspondence, default_parts, sign_delta
from .deconvnet import RULES, Projections, UnsupportedModelError, project_activation, project_activations
from .evolution import Evolution, feature_evolution
from .invariance import InvarianceCurves, invariance_curves, transform_images
from .occlusion import Occlusion, dataset_mean, occlusion, window_grid
from .receptive_field import ReceptiveField, ReceptiveFieldError, crop_patch, receptive_field
from .topk import TopK, add_patches, top_activations

__all__ = [
    "Correspondence",
    "correspondence",
    "default_parts",
    "sign_delta",
    "Evolution",
    "feature_evolution",
    "InvarianceCurves",
    "invariance_curves",
    "transform_images",
    "RULES",
    "Projections",
    "UnsupportedModelError",
    "project_activation",
    "project_activations",
    "Occlusion",
    "dataset_mean",
    "occlusion",
    "window_grid",
    "ReceptiveField",
    "ReceptiveFieldError",
    "crop_patch",
    "receptive_field",
    "TopK",
    "add_patches",
    "top_activations",
]
