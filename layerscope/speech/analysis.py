"""Per-layer analysis of acoustic models: does speaker information fade and digit information grow?

Mohamed, Hinton & Penn (ICASSP 2012) show t-SNE maps of the hidden layers of a DNN acoustic model
in which frames of the same phone spoken by different speakers come closer with depth. Here that
picture is quantified per hidden layer (and for the input features, "layer" ``input``) on a
stratified sample of frames:

* a 2-D projection (:func:`layerscope.projection.project`: t-SNE, UMAP or PCA), coloured by digit
  and by speaker;
* the neighbourhood hit (:func:`layerscope.projection.neighborhood_hit`, Rauber et al. 2017, k = 6)
  by digit and by speaker, on the projection and in the activation space;
* the same NH with neighbours from the *same recording* skipped (``nh_*_xutt``): neighbouring
  frames of one recording overlap in their context windows and share both labels, which props up
  both NHs; this variant counts only frames of other recordings;
* linear probes (:func:`layerscope.similarity.linear_probe`) for digit and for speaker, trained and
  tested on frames of disjoint recordings (``groups`` = recording).

Expected picture (the paper's): digit NH / probe accuracy rise with depth, speaker ones fall.

``result.json`` of ``layerscope speech analyze`` (``analysis = "speech"``)::

    parameters: {runs, n_frames, method, k, probe_test_size, random_state, part, layers,
                 memory_budget, store, storage_rule}
    metrics: {"table": [row, ...],             # every model x layer, first to last layer
              "summary": [{model, features, depth, frame_accuracy, utterance_accuracy,
                           digit_nh_first, digit_nh_last, speaker_nh_first, speaker_nh_last,
                           digit_probe_first, ..., trend_digit_up, trend_speaker_down}, ...],
              "chance": {"digit": .., "speaker": ..}}
    table: same rows as metrics.table; row = {model, features, depth, layer, layer_index
           (0 = input), nh_digit, nh_speaker, nh_digit_xutt, nh_speaker_xutt, nh_digit_original,
           nh_speaker_original, nh_digit_original_xutt, nh_speaker_original_xutt, probe_digit,
           probe_speaker}
    points: {model, method, n, digit: [...], speaker: [...], predicted: [...], utterance: [...],
             frame: [...], speaker_names: [...], classes: [...],
             layers: {layer: {"x": [...], "y": [...]}}}     # the first model, every layer
    figures: per model "<model>_projections.png" (rows = layers, columns = digit | speaker),
             "trends.png" (NH and probe accuracy per layer, all models)
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any, Literal, Sequence

import numpy as np
from torch import nn

from .._io import to_jsonable
from .._progress import ProgressArg, resolve_progress
from .._stream import captured, read_layer, storage_params
from ..data.base import ArrayDataset, stratified_indices
from ..exceptions import DataError, ParameterError

__all__ = ["LayerAnalysis", "analyze_layers", "grouped_neighborhood_hit", "sample_frames", "summarize"]

log = logging.getLogger(__name__)


def grouped_neighborhood_hit(embedding: np.ndarray, labels: np.ndarray, groups: np.ndarray, k: int = 6) -> float:
    """Neighbourhood hit whose ``k`` neighbours of a point are taken among points of *other* groups.

    Written here because :func:`layerscope.projection.neighborhood_hit` has no notion of groups:
    the ``k + g`` nearest neighbours (``g`` = largest group size) always contain ``k`` points of
    other groups, so this is exact.

    Parameters
    ----------
    embedding : (n, d) array
    labels, groups : (n,) arrays
    k : int

    Returns
    -------
    float in [0, 1]
    """
    from sklearn.neighbors import NearestNeighbors

    x = np.asarray(embedding, dtype=np.float64).reshape(len(embedding), -1)
    y = np.asarray(labels)
    g = np.asarray(groups)
    if y.shape != (len(x),) or g.shape != (len(x),):
        raise DataError(f"labels and groups need one entry per point ({len(x)}); got {y.shape} and {g.shape}.")
    if k < 1:
        raise ParameterError(f"k must be >= 1; got {k}.")
    gmax = int(np.unique(g, return_counts=True)[1].max())
    if len(x) - gmax < k:
        raise ParameterError(f"Too few points outside the largest group ({len(x) - gmax}) for k = {k}.")
    nn_ = NearestNeighbors(n_neighbors=min(len(x), k + gmax)).fit(x)
    _, idx = nn_.kneighbors(x)
    other = g[idx] != g[:, None]
    # the first k neighbours from other groups, per row (stable: keeps distance order)
    order = np.argsort(~other, axis=1, kind="stable")[:, :k]
    chosen = np.take_along_axis(idx, order, axis=1)
    return float((y[chosen] == y[:, None]).mean())


def sample_frames(frames: ArrayDataset, n: int, random_state: int | None = 0) -> np.ndarray:
    """Rows of ``frames``: ``n`` frames stratified by (digit, speaker) cell, sorted."""
    digit = np.asarray(frames.extra_labels.get("digit", frames.y.numpy()))
    speaker = np.asarray(frames.extra_labels["speaker"])
    cell = digit * (int(speaker.max()) + 1) + speaker
    _, cell = np.unique(cell, return_inverse=True)
    return stratified_indices(cell, n, random_state)


@dataclass(frozen=True)
class LayerAnalysis:
    """Per-layer digit / speaker structure of one acoustic model.

    Attributes
    ----------
    name : str
        The model's name in tables.
    rows : list of dict
        One per layer (``input`` first): ``layer``, ``layer_index``, ``nh_digit``, ``nh_speaker``,
        ``nh_digit_xutt``, ``nh_speaker_xutt``, ``nh_digit_original``, ``nh_speaker_original``,
        ``probe_digit``, ``probe_speaker``.
    embeddings : dict layer -> (n, 2) array
    digit, speaker, predicted, utterance, frame, sample_ids : (n,) arrays
    info : dict
        Model facts (features, depth, accuracies) and parameters.
    """

    name: str
    rows: list[dict[str, Any]]
    embeddings: dict[str, np.ndarray]
    digit: np.ndarray
    speaker: np.ndarray
    predicted: np.ndarray
    utterance: np.ndarray
    frame: np.ndarray
    sample_ids: np.ndarray
    speaker_names: list[str] = field(default_factory=list)
    classes: list[str] = field(default_factory=list)
    info: dict[str, Any] = field(default_factory=dict)

    def points(self) -> dict[str, Any]:
        """JSON-safe per-point coordinates and labels for an interactive scatter."""
        return {
            "model": self.name,
            "method": self.info.get("method"),
            "n": int(len(self.digit)),
            "digit": self.digit.astype(int).tolist(),
            "speaker": self.speaker.astype(int).tolist(),
            "predicted": self.predicted.astype(int).tolist(),
            "utterance": self.utterance.astype(int).tolist(),
            "frame": self.frame.astype(int).tolist(),
            "sample_ids": self.sample_ids.astype(int).tolist(),
            "speaker_names": list(self.speaker_names),
            "classes": list(self.classes),
            "layers": {
                layer: {"x": np.round(e[:, 0], 4).tolist(), "y": np.round(e[:, 1], 4).tolist()}
                for layer, e in self.embeddings.items()
            },
        }

    def table(self) -> list[dict[str, Any]]:
        extra: dict[str, Any] = {k: self.info[k] for k in ("features", "depth") if k in self.info}
        return [{"model": self.name, **extra, **r} for r in self.rows]


def analyze_layers(
    model: nn.Module,
    frames: ArrayDataset,
    *,
    layers: Sequence[str] | None = None,
    n_frames: int = 3000,
    method: str = "tsne",
    k: int = 6,
    include_input: bool = True,
    probe_test_size: float = 0.3,
    probe_C: float = 0.1,
    probe_max_iter: int = 300,
    random_state: int | None = 0,
    name: str = "model",
    info: dict[str, Any] | None = None,
    progress: ProgressArg = None,
    memory_budget: int | None = None,
    store: Literal["npy", "zarr"] | None = None,
) -> LayerAnalysis:
    """Digit vs speaker structure of every hidden layer of an acoustic model (Mohamed et al. 2012).

    Parameters
    ----------
    model
        A frame classifier (e.g. :class:`~layerscope.models.AcousticDNN`); left unchanged.
    frames
        Frames from :class:`~layerscope.speech.features.FrameExtractor` (``extra_labels`` must hold
        ``speaker``, ``utterance`` and ``digit``).
    layers
        Layer names (default ``model.hidden_layers``).
    n_frames
        Frames sampled, stratified by (digit, speaker).
    method
        Projection: ``"tsne"``, ``"umap"`` or ``"pca"``.
    k
        Neighbours of the neighbourhood hit.
    include_input
        Add the input features as layer ``input`` (index 0).
    probe_test_size
        Fraction of recordings whose frames test the probes.
    probe_C, probe_max_iter
        Inverse L2 strength and iterations of the logistic-regression probes (a stronger default
        regularisation than the probe's own, 0.1: the stacked input frames are highly collinear
        and the solver would otherwise crawl).
    random_state
        Seeds the sample, the projections and the probe splits.
    memory_budget, store
        Passed to :func:`~layerscope.capture.collect_activations`: bytes of layers kept in RAM
        (the others go to ``.npy`` files), or ``"zarr"`` for a chunked store, in a temporary folder
        removed at the end. Either way the layers are read back one at a time (the projection and
        the probes need a layer's whole ``(n_frames, d)`` matrix, so one layer is in RAM at a time,
        not all of them); the numbers are the same as without (tested).

    Returns
    -------
    LayerAnalysis
    """
    from ..projection import neighborhood_hit, project
    from ..similarity import linear_probe

    missing = [key for key in ("speaker", "utterance") if key not in frames.extra_labels]
    if missing:
        raise DataError(
            f"The frames have no {missing} labels; build them with FrameExtractor.transform (extra_labels "
            "speaker / utterance / digit)."
        )
    names = list(layers) if layers is not None else list(getattr(model, "hidden_layers", []))
    if not names:
        raise ParameterError("No layers to analyse: pass layers=[...] (the model has no hidden_layers attribute).")
    track = resolve_progress(progress)
    idx = sample_frames(frames, n_frames, random_state)
    with captured(model, frames, names, indices=idx, predictions=True, batch_size=1024,
                  memory_budget=memory_budget, store=store) as acts:
        digit = np.asarray(acts.extra_labels.get("digit", acts.labels))
        speaker = np.asarray(acts.extra_labels["speaker"])
        utt = np.asarray(acts.extra_labels["utterance"])
        predicted = acts.predictions
        frame = np.asarray(acts.extra_labels.get("frame", np.zeros(len(idx), np.int64)))
        # one layer in RAM at a time: the input features, then each captured layer read back whole
        order = (["input"] if include_input else []) + names
        rows: list[dict[str, Any]] = []
        embeddings: dict[str, np.ndarray] = {}
        prev = None
        for i, layer in enumerate(track(order, total=len(order), desc=f"layers of {name}")):
            if not include_input:
                i += 1
            X = frames.x[idx].reshape(len(idx), -1).numpy() if layer == "input" else read_layer(acts.arrays[layer])
            proj = project(X, digit, method=method, random_state=random_state, k=k, layer=layer,  # type: ignore[arg-type]
                           align_to=prev, predictions=predicted, sample_ids=idx, progress=progress)
            emb = np.asarray(proj.embedding)
            prev = emb
            embeddings[layer] = emb
            pk = {"test_size": probe_test_size, "random_state": random_state, "groups": utt, "layer": layer,
                  "C": probe_C, "max_iter": probe_max_iter}
            p_d = linear_probe(X, digit, **pk)
            p_s = linear_probe(X, speaker, **pk)
            rows.append({
                "layer": layer,
                "layer_index": i,
                "nh_digit": float(proj.metrics["nh"]),
                "nh_speaker": neighborhood_hit(emb, speaker, k),
                "nh_digit_xutt": grouped_neighborhood_hit(emb, digit, utt, k),
                "nh_speaker_xutt": grouped_neighborhood_hit(emb, speaker, utt, k),
                "nh_digit_original": float(proj.metrics.get("nh_original", neighborhood_hit(X, digit, k))),
                "nh_speaker_original": neighborhood_hit(X, speaker, k),
                "nh_digit_original_xutt": grouped_neighborhood_hit(X, digit, utt, k),
                "nh_speaker_original_xutt": grouped_neighborhood_hit(X, speaker, utt, k),
                "probe_digit": p_d.accuracy,
                "probe_speaker": p_s.accuracy,
            })
            del X
            log.info("%s %s: %s", name, layer, rows[-1])
        labels = np.asarray(acts.labels)
    n_spk = len(np.unique(speaker))
    meta = {
        **(info or {}),
        "method": method,
        "k": k,
        "n_frames": int(len(idx)),
        "n_recordings": int(len(np.unique(utt))),
        "chance_digit": float(np.square(np.bincount(digit) / len(digit)).sum()),
        "chance_speaker": float(np.square(np.bincount(speaker) / len(speaker)).sum()),
        "n_speakers": int(n_spk),
        "probe_C": probe_C,
        "frame_accuracy_sample": float((predicted == labels).mean()) if predicted is not None else None,
        **storage_params(memory_budget, store),
    }
    return LayerAnalysis(
        name=name,
        rows=rows,
        embeddings=embeddings,
        digit=digit,
        speaker=speaker,
        predicted=np.asarray(predicted),
        utterance=utt,
        frame=frame,
        sample_ids=idx,
        speaker_names=list(frames.label_names.get("speaker", [])),
        classes=list(frames.label_names.get("digit", frames.classes)),
        info=meta,
    )


def _trend(values: Sequence[float]) -> float:
    """Spearman correlation of a metric with depth (+1: rises at every layer, -1: falls)."""
    from scipy.stats import spearmanr

    v = np.asarray(values, dtype=float)
    if len(v) < 2 or np.allclose(v, v[0]):
        return 0.0
    return float(spearmanr(np.arange(len(v)), v).statistic)


def summarize(analysis: LayerAnalysis) -> dict[str, Any]:
    """First-vs-last hidden layer (and input) numbers, and the rank correlation of each metric with depth."""
    rows = analysis.rows
    hidden = [r for r in rows if r["layer"] != "input"]
    out: dict[str, Any] = {"model": analysis.name}
    out.update({k: analysis.info.get(k) for k in ("features", "depth", "frame_accuracy", "utterance_accuracy")})
    inp = next((r for r in rows if r["layer"] == "input"), None)
    for key in ("nh_digit_xutt", "nh_speaker_xutt", "nh_digit_original_xutt", "nh_speaker_original_xutt",
                "probe_digit", "probe_speaker", "nh_digit", "nh_speaker"):
        if inp is not None:
            out[f"{key}_input"] = inp[key]
        out[f"{key}_first"] = hidden[0][key] if hidden else None
        out[f"{key}_last"] = hidden[-1][key] if hidden else None
        out[f"{key}_trend"] = _trend([r[key] for r in rows])
    return to_jsonable(out)
