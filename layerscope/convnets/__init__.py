"""Visualizing and understanding convnets (Zeiler & Fergus 2014, arXiv 1311.2901).

* :mod:`.receptive_field` — the true receptive field of a layer's units, from the traced graph.
* :mod:`.topk` — the k strongest activations of many units over a data set, one streaming pass,
  with receptive-field patches and projections.
* :mod:`.deconvnet` — projection of ONE activation back to input space with the plain-gradient,
  deconvnet or guided-backprop rule.
* :mod:`.deconv` — those projections for chosen units over a data set, every rule side by side.
* :mod:`.occlusion` — occlusion sensitivity maps (feature map, true-class probability, label).
* :mod:`.invariance` — feature distances and class probability under translation, scaling and
  rotation.
* :mod:`.evolution` — top activations projected at the checkpoints of a training run.
* :mod:`.correspondence` — the correspondence measure Δ (same part masked vs random masks).
* :mod:`.plots` — figures laid out like the paper's.

Examples
--------
>>> import layerscope as ls
>>> from layerscope.convnets import top_activations, project_activations, occlusion, dataset_mean
>>> model, data = ls.load_model("mnist-cnn"), ls.load_dataset("mnist:test")
>>> top = top_activations(model, data, "relu2", k=9)            # all 16 maps, one pass
>>> top.patches.shape                                           # (16, 9, 1, 10, 10): 10x10 fields
>>> p = project_activations(model, data.x[:4], "relu2", [0, 1, 2, 3], rule="guided")
>>> occ = occlusion(model, data.x[0], target=int(data.y[0]), size=7, stride=1,
...                 value=dataset_mean(data), layer="relu2")    # 28x28 maps (b), (d), (e)
>>> top.save("out/topk")                                        # the folder `layerscope topk` writes
>>> top.figures()["topk"]                                       # a matplotlib Figure

Every analysis returns a result (:class:`~layerscope.results.AnalysisResult`) with ``metrics``,
``parameters``, ``figures()``, ``save(dir)`` and ``load(dir)``: :class:`TopK`
(:func:`top_activations`), :class:`DeconvProjections` (:func:`deconv_projections`),
:class:`OcclusionMaps` (:func:`occlusion_maps`), :class:`InvarianceCurves`
(:func:`invariance_curves`), :class:`Evolution` (:func:`feature_evolution`),
:class:`Correspondence` (:func:`correspondence`).

Command line: ``layerscope topk | deconv | occlude | invariance | evolution | correspondence``.
"""

from .correspondence import Correspondence, correspondence, default_parts, sign_delta
from .deconv import DeconvProjections, deconv_projections
from .deconvnet import RULES, ActivationProjections, UnsupportedModelError, project_activation, project_activations
from .evolution import Evolution, feature_evolution
from .invariance import InvarianceCurves, invariance_curves, transform_images
from .occlusion import Occlusion, OcclusionMaps, dataset_mean, occlusion, occlusion_maps, window_grid
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
    "ActivationProjections",
    "DeconvProjections",
    "UnsupportedModelError",
    "deconv_projections",
    "project_activation",
    "project_activations",
    "Occlusion",
    "OcclusionMaps",
    "dataset_mean",
    "occlusion",
    "occlusion_maps",
    "window_grid",
    "ReceptiveField",
    "ReceptiveFieldError",
    "crop_patch",
    "receptive_field",
    "TopK",
    "add_patches",
    "top_activations",
]
