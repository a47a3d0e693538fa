"""Speaker embeddings from hidden layers, clustered (Garcia-Romero, Snyder, Sell, Povey & McCree, ICASSP 2017).

Garcia-Romero et al. train a DNN to classify speakers and use a hidden layer's activations,
averaged over the frames of a recording, as a speaker embedding; recordings of *unseen* speakers
are then grouped by agglomerative clustering. Here:

* :func:`utterance_embeddings` — per recording, the mean over its frames of each layer's
  activations (and of the input features, layer ``input``, as a baseline);
* :func:`cluster_scores` — agglomerative clustering (scikit-learn) of the embeddings into as many
  clusters as there are speakers; purity and adjusted Rand index (ARI) against the true speakers;
* :func:`embedding_study` — both, per layer, for a speech run's test recordings (for a speaker
  classifier trained with ``split="speaker"``: the held-out speakers).

``result.json`` of ``layerscope speech embed`` (``analysis = "speaker_embeddings"``)::

    parameters: {run, layers, linkage, metric, n_clusters, max_recordings, random_state,
                 memory_budget, store, storage_rule}
    metrics: {"layers": [{layer, layer_index, purity, ari, nmi, ari_digit, dim}, ...],  # ari_digit: clusters vs digits "best_layer": ..,
              "n_recordings": .., "n_speakers": .., "speakers": [...], "train_speakers": [...],
              "unseen_speakers": bool, "val_accuracy": .., "chance_purity": ..}
    points: {layer: best layer, x, y (2-D PCA of its embeddings), speaker, cluster, utterance, digit,
             speaker_names}
    figures: "embedding_clusters.png" (purity / ARI per layer), "embedding_best_layer.png"
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal, Sequence

import numpy as np
import torch
from torch import nn

from .._progress import ProgressArg, resolve_progress
from .._stream import BLOCK_ROWS, captured, read_layer, read_rows, storage_params
from ..data.base import ArrayDataset
from ..exceptions import DataError, ParameterError

__all__ = ["purity_score", "utterance_embeddings", "cluster_scores", "EmbeddingStudy", "embedding_study"]


def purity_score(labels_true: np.ndarray, labels_pred: np.ndarray) -> float:
    """Cluster purity: each cluster counts its most frequent true label; sum over clusters / n.

    1 when every cluster holds one speaker only; ``max_c p_c`` when all points share one cluster.
    """
    from sklearn.metrics.cluster import contingency_matrix

    t = np.asarray(labels_true)
    p = np.asarray(labels_pred)
    if t.shape != p.shape or t.ndim != 1 or t.size == 0:
        raise DataError(f"purity needs two 1-D label arrays of the same non-zero length; got {t.shape} and {p.shape}.")
    m = contingency_matrix(t, p)
    return float(m.max(axis=0).sum() / m.sum())


def utterance_embeddings(
    model: nn.Module,
    frames: ArrayDataset,
    layers: Sequence[str] | None = None,
    *,
    include_input: bool = True,
    batch_size: int = 2048,
    progress: ProgressArg = None,
    memory_budget: int | None = None,
    store: Literal["npy", "zarr"] | None = None,
) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Mean activation over each recording's frames, per layer.

    Parameters
    ----------
    model
        Frame classifier; left unchanged.
    frames
        Frames with ``extra_labels["utterance"]`` (from :class:`~.features.FrameExtractor`).
    layers
        Default ``model.hidden_layers``.
    include_input
        Also embed the flattened input frames (layer ``input``).
    memory_budget, store
        Passed to :func:`~layerscope.capture.collect_activations` (bytes of layers kept in RAM, the
        others to ``.npy`` files; or ``"zarr"``: a chunked store), in a temporary folder removed at
        the end. The per-recording sums are accumulated block by block (:data:`~layerscope._stream.BLOCK_ROWS`
        rows, each block cut at a recording boundary) in every case, so memory holds one block of
        each layer plus the ``(U, D)`` sums, and the embeddings are bit-identical with and without
        a budget.

    Returns
    -------
    embeddings : dict layer -> (U, D) float32
        Rows in the order of ``utterances``.
    utterances : (U,) int64
        The recording of each row (sorted).
    """
    if "utterance" not in frames.extra_labels:
        raise DataError("Embeddings need frames with extra_labels['utterance'] (from FrameExtractor.transform).")
    names = list(layers) if layers is not None else list(getattr(model, "hidden_layers", []))
    if not names:
        raise ParameterError("No layers to embed: pass layers=[...].")
    with captured(model, frames, names, batch_size=batch_size, progress=resolve_progress(progress),
                  memory_budget=memory_budget, store=store) as acts:
        utt = np.asarray(frames.extra_labels["utterance"])[acts.sample_ids]
        ids, inv = np.unique(utt, return_inverse=True)
        counts = np.bincount(inv).astype(np.float64)[:, None]
        # per-recording sums: rows taken in recording order (stable), np.add.reduceat over each run of
        # rows (np.add.at, unbuffered, took seconds per layer on FSDD-sized inputs), one block of whole
        # runs at a time. reduceat adds a run's rows in order, so the sums do not depend on the blocks.
        order = np.argsort(inv, kind="stable")
        starts = np.searchsorted(inv[order], np.arange(len(ids)))
        contiguous = bool(np.all(order == np.arange(len(order))))
        layers_in: dict[str, Any] = {}
        if include_input:
            whole = np.array_equal(acts.sample_ids, np.arange(len(frames.x)))
            layers_in["input"] = frames.x if whole else frames.x[torch.from_numpy(acts.sample_ids)]
        layers_in.update({n: acts.arrays[n] for n in names})
        out: dict[str, np.ndarray] = {}
        for n, a in layers_in.items():
            out[n] = (_run_sums(a, order, starts, contiguous) / counts).astype(np.float32)
        return out, ids


def _run_sums(a: Any, order: np.ndarray, starts: np.ndarray, contiguous: bool) -> np.ndarray:
    """``(U, D)`` float64 sums of the rows ``order[starts[u]:starts[u + 1]]`` of ``a``, one block of runs at a time."""
    n = len(order)
    bounds = np.append(starts, n)
    out: np.ndarray | None = None
    u = 0
    while u < len(starts):
        # the runs u..v-1 fill one block of about BLOCK_ROWS rows (at least one run)
        v = int(np.searchsorted(bounds, bounds[u] + BLOCK_ROWS, side="right")) - 1
        v = min(max(v, u + 1), len(starts))
        lo, hi = int(bounds[u]), int(bounds[v])
        blk = read_rows(a, lo, hi) if contiguous else read_layer(a, order[lo:hi])
        s = np.add.reduceat(blk.reshape(hi - lo, -1).astype(np.float64), bounds[u:v] - lo, axis=0)
        if out is None:
            out = np.empty((len(starts), s.shape[1]), dtype=np.float64)
        out[u:v] = s
        u = v
    assert out is not None  # at least one recording (np.unique of a non-empty capture)
    return out


def cluster_scores(
    embeddings: np.ndarray,
    speakers: np.ndarray,
    *,
    n_clusters: int | None = None,
    linkage: Literal["average", "complete", "single", "ward"] = "average",
    metric: str = "cosine",
) -> tuple[dict[str, float], np.ndarray]:
    """Agglomerative clustering of embeddings, scored against the true speakers.

    The embeddings are centred (mean over recordings removed) before clustering, so that cosine
    distances compare directions around the data's centre, not around the (all-positive) origin
    of ReLU activations.

    Returns
    -------
    scores : dict
        ``purity``, ``ari`` (adjusted Rand index), ``nmi``, ``n_clusters``.
    assignment : (U,) int array
    """
    from sklearn.cluster import AgglomerativeClustering
    from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score

    x = np.asarray(embeddings, dtype=np.float64)
    y = np.asarray(speakers)
    if x.ndim != 2 or len(x) != len(y):
        raise DataError(f"Expected (U, D) embeddings with one speaker each; got {x.shape} and {y.shape}.")
    n = int(n_clusters or len(np.unique(y)))
    if n < 2 or n > len(x):
        raise ParameterError(f"Clustering needs 2 <= n_clusters <= number of recordings ({len(x)}); got {n}.")
    if linkage == "ward":
        metric = "euclidean"
    x = x - x.mean(axis=0, keepdims=True)
    if metric == "cosine":
        # zero rows have no direction; nudge them so cosine distances stay defined
        norms = np.linalg.norm(x, axis=1)
        x[norms == 0] += 1e-12
    pred = AgglomerativeClustering(n_clusters=n, linkage=linkage, metric=metric).fit_predict(x)
    return {
        "purity": purity_score(y, pred),
        "ari": float(adjusted_rand_score(y, pred)),
        "nmi": float(normalized_mutual_info_score(y, pred)),
        "n_clusters": n,
    }, pred


@dataclass(frozen=True)
class EmbeddingStudy:
    """Per-layer clustering quality of utterance embeddings.

    Attributes
    ----------
    rows : list of dict
        ``layer``, ``layer_index`` (0 = input), ``purity``, ``ari``, ``nmi`` (against the speakers),
        ``ari_digit`` (the same clusters against the spoken digits), ``dim``.
    speakers, digits, utterances : (U,) arrays
    assignments : dict layer -> (U,) cluster ids
    embeddings : dict layer -> (U, D)
    info : dict
    """

    rows: list[dict[str, Any]]
    speakers: np.ndarray
    digits: np.ndarray
    utterances: np.ndarray
    assignments: dict[str, np.ndarray]
    embeddings: dict[str, np.ndarray]
    speaker_names: list[str] = field(default_factory=list)
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def best_layer(self) -> str:
        return max(self.rows, key=lambda r: (r["ari"], r["purity"]))["layer"]

    def points(self, layer: str | None = None, random_state: int | None = 0) -> dict[str, Any]:
        """2-D PCA of one layer's embeddings with speaker / cluster labels (for a scatter)."""
        from sklearn.decomposition import PCA

        name = layer or self.best_layer
        e = self.embeddings[name]
        xy = PCA(n_components=2, random_state=random_state).fit_transform(e - e.mean(0))
        return {
            "layer": name,
            "x": np.round(xy[:, 0], 4).tolist(),
            "y": np.round(xy[:, 1], 4).tolist(),
            "speaker": self.speakers.astype(int).tolist(),
            "cluster": self.assignments[name].astype(int).tolist(),
            "utterance": self.utterances.astype(int).tolist(),
            "digit": self.digits.astype(int).tolist(),
            "speaker_names": list(self.speaker_names),
        }


def embedding_study(
    model: nn.Module,
    frames: ArrayDataset,
    *,
    layers: Sequence[str] | None = None,
    linkage: Literal["average", "complete", "single", "ward"] = "average",
    metric: str = "cosine",
    n_clusters: int | None = None,
    max_recordings: int | None = None,
    random_state: int | None = 0,
    info: dict[str, Any] | None = None,
    progress: ProgressArg = None,
    memory_budget: int | None = None,
    store: Literal["npy", "zarr"] | None = None,
) -> EmbeddingStudy:
    """Cluster the recordings of ``frames`` by speaker with each layer's utterance embeddings.

    Parameters
    ----------
    model
        A frame classifier, usually a speaker classifier (Garcia-Romero et al. 2017); a digit
        model works too and shows how much speaker information its layers keep.
    frames
        Frames of the recordings to cluster (speakers the model may never have heard).
    max_recordings
        Cluster at most this many recordings, drawn per speaker evenly (seeded).
    memory_budget, store
        How the frames' activations are held while they are averaged (see
        :func:`utterance_embeddings`); the embeddings, and so the clusters, are the same.

    Returns
    -------
    EmbeddingStudy
    """
    from sklearn.metrics import adjusted_rand_score

    track = resolve_progress(progress)
    utt_all = np.asarray(frames.extra_labels["utterance"])
    spk_all = np.asarray(frames.extra_labels["speaker"])
    if max_recordings is not None:
        ids, first = np.unique(utt_all, return_index=True)
        if len(ids) > max_recordings:
            from ..data.base import stratified_indices

            keep = ids[stratified_indices(spk_all[first], max_recordings, random_state)]
            frames = frames.subset(np.flatnonzero(np.isin(utt_all, keep)))
            utt_all = np.asarray(frames.extra_labels["utterance"])
            spk_all = np.asarray(frames.extra_labels["speaker"])
    if len(np.unique(spk_all)) < 2:
        raise DataError(
            "The recordings to cluster come from a single speaker; clustering by speaker needs at least two "
            "(train the speaker model with more held-out speakers, e.g. --test-speakers a,b,c)."
        )
    embs, utts = utterance_embeddings(model, frames, layers, progress=progress, memory_budget=memory_budget, store=store)
    _, first = np.unique(utt_all, return_index=True)
    spk = spk_all[first]
    dig = np.asarray(frames.extra_labels.get("digit", frames.y.numpy()))[first]
    rows, assignments = [], {}
    for i, (layer, e) in enumerate(track(list(embs.items()), total=len(embs), desc="cluster layers")):
        scores, pred = cluster_scores(e, spk, n_clusters=n_clusters, linkage=linkage, metric=metric)
        # do the clusters follow the spoken digit instead? (a digit model's deep layers: yes)
        scores["ari_digit"] = float(adjusted_rand_score(dig, pred))
        assignments[layer] = pred
        rows.append({"layer": layer, "layer_index": i if "input" in embs else i + 1, "dim": int(e.shape[1]), **scores})
    counts = np.bincount(spk)
    meta = {
        **(info or {}),
        "n_recordings": int(len(utts)),
        "n_speakers": int(len(np.unique(spk))),
        "chance_purity": float(counts.max() / counts.sum()),
        "linkage": linkage,
        "metric": "euclidean" if linkage == "ward" else metric,
        **storage_params(memory_budget, store),
    }
    return EmbeddingStudy(rows, spk, dig, utts, assignments, embs,
                          list(frames.label_names.get("speaker", [])), meta)
