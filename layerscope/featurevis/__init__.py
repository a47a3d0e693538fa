"""Feature visualisation by activation maximisation (Erhan et al. 2009; Olah et al. 2017).

Four parts, as in Lucid: :mod:`.objectives` (what to maximise, composable with ``+ - * /``),
:mod:`.param` (pixels, FFT, decorrelated colour), :mod:`.transforms` (jitter, scale, rotate,
pad) and :mod:`.render` (the optimisation loop; many units optimised together as one batch, the
forward pass stopped after the deepest layer the objective needs). :mod:`.plots` draws results.

Examples
--------
>>> from layerscope.featurevis import maximize
>>> res = maximize(model, "conv4", "all", method="erhan", steps=100, restarts=3, data=test_set)
>>> res.activation, res.consistency, res.images.shape
"""

from .objectives import Objective, channel, class_logit, class_prob, direction, diversity, neuron, unit_values
from .param import FFTParam, ImageParam, PixelParam, color_matrix_from_data, gaussian_blur, make_param
from .render import ActMaxResult, Rendering, layer_units, maximize, render, resolve_input_shape, unit_data_max
from .transforms import compose, jitter, pad, random_rotate, random_scale, standard_transforms

__all__ = [
    "Objective",
    "neuron",
    "channel",
    "class_logit",
    "class_prob",
    "direction",
    "diversity",
    "unit_values",
    "ImageParam",
    "PixelParam",
    "FFTParam",
    "make_param",
    "gaussian_blur",
    "color_matrix_from_data",
    "pad",
    "jitter",
    "random_scale",
    "random_rotate",
    "compose",
    "standard_transforms",
    "render",
    "Rendering",
    "maximize",
    "ActMaxResult",
    "unit_data_max",
    "layer_units",
    "resolve_input_shape",
]
