"""Speech-frame analyses: acoustic DNNs on filterbank / MFCC frames (Mohamed, Hinton & Penn 2012)
and speaker embeddings from hidden layers (Garcia-Romero et al. 2017).

* :mod:`.features` — log-mel / MFCC frames with librosa, context windows, mean/variance normalisation.
* :mod:`.recipe` — train a frame-level :class:`~layerscope.models.AcousticDNN` with checkpoints.
* :mod:`.analysis` — per hidden layer: projections coloured by digit and speaker, neighbourhood hit
  and linear probes for both labels.
* :mod:`.embeddings` — utterance embeddings (frame activations averaged), agglomerative clustering.
"""

from __future__ import annotations

from .features import FeatureConfig, FrameExtractor, frame_features, fsdd_split, normalize_utterance, stack_context

__all__ = [
    "FeatureConfig",
    "FrameExtractor",
    "frame_features",
    "stack_context",
    "normalize_utterance",
    "fsdd_split",
]
