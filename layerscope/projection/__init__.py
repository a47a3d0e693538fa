"""Hidden-activity projections (Rauber, Fadel, Falcão & Telea, IEEE TVCG 23(1), 2017).

* :func:`project` — 2-D t-SNE (openTSNE) / UMAP (umap-learn) / PCA of one layer's activations
  → :class:`Projection` (embedding, labels, predictions, NH, NH in activation space, AC).
* :func:`neighborhood_hit`, :func:`accuracy` — the paper's NH (k = 6, point itself excluded) and AC.
* :func:`project_sequence` — projections over layers or epochs, optionally aligned (each frame
  starts from the previous one) → :class:`ProjectionSequence`.
* :func:`project_model` — every layer of a model, at one or several checkpoints, for a seeded
  stratified subset of a dataset → :class:`ProjectionStudy` (metrics, ``figures()``, and
  ``save(dir)``, the folder of ``layerscope project``; schema in :mod:`layerscope.projection.analysis`).
* :func:`project_neurons` (a model's layer) / :func:`neuron_projection` (an activation matrix) —
  neurons as points (1 − |Pearson r|), coloured by one-vs-rest ExtraTrees importances →
  :class:`NeuronProjection` (schema in :mod:`layerscope.projection.neurons`).

Figures are built by :mod:`layerscope.projection.plots` as :class:`matplotlib.figure.Figure`
objects; nothing here switches the matplotlib backend.

Linear probes and CKA live in :mod:`layerscope.similarity` (figures: :mod:`layerscope.similarity_plots`).
"""

from .analysis import ProjectionStudy, models_from_run, project_model, save_study
from .metrics import accuracy, neighborhood_hit, neighborhood_hit_per_point
from .neurons import NeuronProjection, neuron_projection, project_neurons
from .projectors import METHODS, Projection, project
from .sequence import ProjectionSequence, project_sequence

__all__ = [
    "project",
    "Projection",
    "METHODS",
    "neighborhood_hit",
    "neighborhood_hit_per_point",
    "accuracy",
    "project_sequence",
    "ProjectionSequence",
    "project_model",
    "ProjectionStudy",
    "save_study",
    "models_from_run",
    "neuron_projection",
    "project_neurons",
    "NeuronProjection",
]
