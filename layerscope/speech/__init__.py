"""Speech-frame analyses: acoustic DNNs on filterbank / MFCC frames (Mohamed, Hinton & Penn 2012)
and speaker embeddings from their hidden layers (Garcia-Romero et al. 2017).

* :mod:`.features` — log-mel / MFCC frames with librosa, context windows, mean/variance normalisation.
* :mod:`.recipe` — train a frame-level :class:`~layerscope.models.AcousticDNN` with checkpoints.
* :mod:`.analysis` — per hidden layer: projections coloured by digit and speaker, neighbourhood hit
  and linear probes for both labels.
* :mod:`.embeddings` — utterance embeddings (frame activations averaged), agglomerative clustering.
* :mod:`.xvector` — x-vector networks (TDNN, statistics pooling, segment layers) and EER scoring;
  :mod:`.xvector_study` — x-vectors vs frame-DNN means on unseen speakers over leave-speakers-out
  folds (:func:`speaker_embedding_study`).
* :mod:`.runs` — the above on run folders (:func:`analyze_speech_runs`, :func:`embed_speech_run`), and
  :mod:`.listen` (:func:`speech_topk`), returning result objects (:mod:`.results`) that save the
  folders the CLI writes; :mod:`.plots` — figures (``matplotlib.figure.Figure``).

Example::

    from layerscope.data import load_fsdd
    from layerscope.speech import FeatureConfig, train_acoustic_model, analyze_layers

    audio = load_fsdd()
    run = train_acoustic_model(audio, out_dir="runs/fbank", features=FeatureConfig(kind="fbank"),
                               arch="dnn:width=256,depth=4", epochs=5)
    result = analyze_layers(run.model, run.frames(audio, "test"), n_frames=3000, method="tsne")
"""

from __future__ import annotations

from .analysis import LayerAnalysis, analyze_layers, grouped_neighborhood_hit, summarize
from .embeddings import EmbeddingStudy, cluster_scores, embedding_study, purity_score, utterance_embeddings
from .features import FeatureConfig, FrameExtractor, frame_features, fsdd_split, normalize_utterance, stack_context
from .listen import speech_topk
from .recipe import AcousticRun, load_acoustic_run, run_frames, train_acoustic_model, utterance_accuracy
from .results import SpeakerEmbeddings, SpeechAnalysis, SpeechTopK, XVectorStudy
from .runs import analyze_speech_runs, embed_speech_run, export_frames, merge_results
from .xvector import XVectorNet, cosine_trials, equal_error_rate, stats_pool, train_xvector, xvector_embeddings
from .xvector_study import fold_rows, speaker_embedding_study, speaker_folds

__all__ = [
    "FeatureConfig",
    "FrameExtractor",
    "frame_features",
    "stack_context",
    "normalize_utterance",
    "fsdd_split",
    "AcousticRun",
    "train_acoustic_model",
    "load_acoustic_run",
    "run_frames",
    "utterance_accuracy",
    "LayerAnalysis",
    "analyze_layers",
    "grouped_neighborhood_hit",
    "summarize",
    "EmbeddingStudy",
    "utterance_embeddings",
    "cluster_scores",
    "embedding_study",
    "purity_score",
    "analyze_speech_runs",
    "SpeechAnalysis",
    "embed_speech_run",
    "SpeakerEmbeddings",
    "speech_topk",
    "SpeechTopK",
    "export_frames",
    "merge_results",
    "XVectorNet",
    "stats_pool",
    "train_xvector",
    "xvector_embeddings",
    "cosine_trials",
    "equal_error_rate",
    "speaker_folds",
    "fold_rows",
    "speaker_embedding_study",
    "XVectorStudy",
]
