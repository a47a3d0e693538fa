"""x-vector speaker embeddings (Snyder et al. 2017/2018; Garcia-Romero et al., ICASSP 2017).

Garcia-Romero et al. train a DNN to classify the *training* speakers: frame-level layers (a TDNN:
1-D convolutions with dilation over the frame axis), a statistics-pooling layer (mean and standard
deviation of the last frame-level layer over the frames of a segment), segment-level layers and a
softmax over the training speakers. The embedding of a segment is the output of the first
segment-level affine layer, taken *before* its nonlinearity. Unseen speakers are then told apart by
scoring or clustering those embeddings. Here:

* :func:`stats_pool` / :class:`StatsPooling` — masked mean and standard deviation over frames;
* :class:`XVectorNet` — the network (Kaldi's x-vector topology, narrower by default: FSDD is tiny);
* :func:`train_xvector` — cross-entropy training on fixed-length chunks (Kaldi's egs: every chunk of
  a minibatch has the same length, so no padding is ever seen in training);
* :func:`xvector_embeddings` — embeddings of whole recordings, batched with padding + lengths; the
  result does not depend on the batching (tests check it against one-at-a-time forwards);
  :func:`segment_embeddings` — also the pooled statistics and ``segment7``;
* :func:`cosine_trials` and :func:`equal_error_rate` — same/different-speaker trial scoring.

Decisions (stated because they change numbers):

* The standard deviation is the population one (divide by the number of valid frames), floored:
  ``std = sqrt(max(var, eps))`` with ``eps = 1e-5`` (Kaldi floors the variance at 1e-10; a larger
  floor keeps the gradient of ``sqrt`` bounded in float32).
* Convolutions are "valid" (no padding), as Kaldi's TDNN splicing: a recording of ``T`` frames gives
  ``T - receptive_field + 1`` frame-level outputs, all computed from real frames only. A recording
  shorter than the receptive field is extended by repeating its last frame (the same whether it is
  embedded alone or in a batch).
* BatchNorm follows each ReLU (Kaldi's order); in evaluation mode it is a fixed per-channel affine
  map, so padded frames of other recordings in a batch cannot leak into an embedding.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np
import torch
from torch import nn

from .._progress import ProgressArg, resolve_progress
from ..exceptions import DataError, InputShapeError, ParameterError

__all__ = [
    "stats_pool",
    "StatsPooling",
    "XVectorNet",
    "XVectorTraining",
    "train_xvector",
    "xvector_embeddings",
    "segment_embeddings",
    "cosine_trials",
    "equal_error_rate",
]

#: variance floor of the statistics pooling (see the module docstring)
VAR_FLOOR = 1e-5


def stats_pool(x: torch.Tensor, lengths: torch.Tensor | None = None, eps: float = VAR_FLOOR) -> torch.Tensor:
    """Mean and standard deviation over the valid frames of each sequence.

    Parameters
    ----------
    x : (N, C, T) tensor
        Frame-level activations; frames ``t >= lengths[n]`` of row ``n`` are padding and ignored.
    lengths : (N,) int tensor, optional
        Valid frames per row (``1 <= lengths[n] <= T``); default: all ``T`` frames.
    eps : float
        Variance floor: ``std = sqrt(max(var, eps))``; ``var`` is the population variance.

    Returns
    -------
    (N, 2C) tensor
        ``[mean_1..mean_C, std_1..std_C]``.
    """
    if x.ndim != 3:
        raise InputShapeError(f"stats_pool expects (N, C, T) activations; got shape {tuple(x.shape)}.")
    n, _, t = x.shape
    if lengths is None:
        lengths = torch.full((n,), t, dtype=torch.long, device=x.device)
    lengths = torch.as_tensor(lengths, device=x.device)
    if lengths.shape != (n,) or bool((lengths < 1).any()) or bool((lengths > t).any()):
        raise InputShapeError(
            f"stats_pool needs one length per row in [1, {t}]; got {lengths.tolist()} for {n} rows."
        )
    mask = (torch.arange(t, device=x.device)[None, :] < lengths[:, None]).to(x.dtype)[:, None, :]  # (N, 1, T)
    count = lengths.to(x.dtype)[:, None]
    mean = (x * mask).sum(-1) / count
    var = (((x - mean[:, :, None]) * mask) ** 2).sum(-1) / count
    return torch.cat([mean, torch.sqrt(torch.clamp(var, min=eps))], dim=1)


class StatsPooling(nn.Module):
    """:func:`stats_pool` as a module: ``forward(x (N, C, T), lengths (N,)) -> (N, 2C)``."""

    def __init__(self, eps: float = VAR_FLOOR) -> None:
        super().__init__()
        self.eps = float(eps)

    def forward(self, x: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        return stats_pool(x, lengths, self.eps)


class XVectorNet(nn.Module):
    """x-vector network: TDNN frame layers, statistics pooling, segment layers, speaker softmax.

    Layers (dotted names as ``named_modules()`` prints them)::

        frame1..frameK   Conv1d(kernel k_i, dilation d_i) -> ReLU -> BatchNorm1d   (K = len(channels))
        pool             StatsPooling (mean and std of frameK over valid frames)
        segment6         Linear(2 * channels[-1], embed_dim)       <- the embedding (pre-ReLU)
        segment6_post    ReLU -> BatchNorm1d
        segment7         Linear(embed_dim, hidden_dim) -> ReLU -> BatchNorm1d
        out              Linear(hidden_dim, n_speakers)

    Kaldi's x-vector uses channels (512, 512, 512, 512, 1500), kernels (5, 3, 3, 1, 1), dilations
    (1, 2, 3, 1, 1) and 512-wide segment layers; the defaults here keep the kernels and dilations
    (receptive field 15 frames) and narrow the widths for FSDD's ~2,000 training recordings.

    Parameters
    ----------
    n_features : int
        Features per frame (e.g. 40 log-mel filterbanks).
    n_speakers : int
        Training speakers (the softmax's classes).
    """

    def __init__(
        self,
        n_features: int,
        n_speakers: int,
        channels: Sequence[int] = (128, 128, 128, 128, 384),
        kernels: Sequence[int] = (5, 3, 3, 1, 1),
        dilations: Sequence[int] = (1, 2, 3, 1, 1),
        embed_dim: int = 128,
        hidden_dim: int = 128,
    ) -> None:
        super().__init__()
        if not (len(channels) == len(kernels) == len(dilations)) or not channels:
            raise ParameterError(
                f"channels, kernels and dilations need one entry per frame layer; got {list(channels)}, "
                f"{list(kernels)}, {list(dilations)}."
            )
        if min([n_features, n_speakers, embed_dim, hidden_dim, *channels, *kernels, *dilations]) < 1:
            raise ParameterError("XVectorNet sizes, kernels and dilations must all be >= 1.")
        if n_speakers < 2:
            raise ParameterError(f"A speaker softmax needs at least 2 training speakers; got {n_speakers}.")
        self.n_features = int(n_features)
        self.config = {"channels": [int(c) for c in channels], "kernels": [int(k) for k in kernels],
                       "dilations": [int(d) for d in dilations], "embed_dim": int(embed_dim),
                       "hidden_dim": int(hidden_dim), "n_features": int(n_features), "n_speakers": int(n_speakers)}
        c_in = n_features
        for i, (c, k, d) in enumerate(zip(channels, kernels, dilations), start=1):
            self.add_module(f"frame{i}", nn.Sequential(nn.Conv1d(c_in, c, k, dilation=d), nn.ReLU(), nn.BatchNorm1d(c)))
            c_in = c
        self.n_frame_layers = len(channels)
        self.pool = StatsPooling()
        self.segment6 = nn.Linear(2 * c_in, embed_dim)
        self.segment6_post = nn.Sequential(nn.ReLU(), nn.BatchNorm1d(embed_dim))
        self.segment7 = nn.Sequential(nn.Linear(embed_dim, hidden_dim), nn.ReLU(), nn.BatchNorm1d(hidden_dim))
        self.out = nn.Linear(hidden_dim, n_speakers)
        self.receptive_field = 1 + sum((k - 1) * d for k, d in zip(kernels, dilations))

    def frame_outputs(self, x: torch.Tensor, lengths: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Last frame-level layer ``(N, C, T - rf + 1)`` and its valid lengths ``(N,)``."""
        if x.ndim != 3 or x.shape[2] != self.n_features:
            raise InputShapeError(
                f"XVectorNet expects (N, T, {self.n_features}) frames; got shape {tuple(x.shape)}. "
                "Pass padded recordings with their lengths."
            )
        n, t, _ = x.shape
        lens = torch.full((n,), t, dtype=torch.long) if lengths is None else torch.as_tensor(lengths).long().cpu()
        if lens.shape != (n,) or bool((lens > t).any()):
            raise InputShapeError(f"lengths must give one value <= {t} per recording; got {lens.tolist()}.")
        if bool((lens < self.receptive_field).any()):
            raise InputShapeError(
                f"Every recording needs at least {self.receptive_field} frames (the TDNN's receptive field); "
                f"got lengths {sorted(set(lens.tolist()))[:5]}. Use xvector_embeddings, which extends short ones."
            )
        h = x.transpose(1, 2)
        for i in range(1, self.n_frame_layers + 1):
            h = getattr(self, f"frame{i}")(h)
        return h, (lens - self.receptive_field + 1).to(h.device)

    def embed(self, x: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        """The x-vector: ``segment6`` output before its ReLU, ``(N, embed_dim)``."""
        h, lens = self.frame_outputs(x, lengths)
        return self.segment6(self.pool(h, lens))

    def segment_outputs(self, x: torch.Tensor, lengths: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """Every segment-level representation: ``pool`` (N, 2C), ``segment6`` (the x-vector, pre-ReLU)
        and ``segment7`` (after its ReLU and BatchNorm)."""
        h, lens = self.frame_outputs(x, lengths)
        pooled = self.pool(h, lens)
        emb = self.segment6(pooled)
        return {"pool": pooled, "segment6": emb, "segment7": self.segment7(self.segment6_post(emb))}

    def forward(self, x: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        """Speaker logits ``(N, n_speakers)`` of ``x`` ``(N, T, n_features)`` (padded; ``lengths`` valid frames)."""
        return self.out(self.segment7(self.segment6_post(self.embed(x, lengths))))


def _extend(u: np.ndarray, min_frames: int) -> np.ndarray:
    """Repeat the last frame until the recording has ``min_frames`` frames (see module docstring)."""
    if u.shape[0] >= min_frames:
        return u
    return np.concatenate([u, np.repeat(u[-1:], min_frames - u.shape[0], axis=0)])


def _check_utterances(utterances: Sequence[np.ndarray], n_features: int) -> list[np.ndarray]:
    out = []
    for i, u in enumerate(utterances):
        a = np.asarray(u, dtype=np.float32)
        if a.ndim != 2 or a.shape[1] != n_features or a.shape[0] < 1:
            raise InputShapeError(f"Recording {i}: expected (T >= 1, {n_features}) frames; got shape {a.shape}.")
        if not np.all(np.isfinite(a)):
            raise DataError(f"Recording {i} holds NaN or infinite features.")
        out.append(a)
    if not out:
        raise DataError("No recordings given.")
    return out


def _pad(batch: list[np.ndarray]) -> tuple[torch.Tensor, torch.Tensor]:
    t = max(u.shape[0] for u in batch)
    x = np.zeros((len(batch), t, batch[0].shape[1]), np.float32)
    for j, u in enumerate(batch):
        x[j, : u.shape[0]] = u
    return torch.from_numpy(x), torch.tensor([u.shape[0] for u in batch], dtype=torch.long)


def xvector_embeddings(model: XVectorNet, utterances: Sequence[np.ndarray], *, batch_size: int = 64,
                       device: torch.device | str | None = None) -> np.ndarray:
    """x-vectors (``segment6``, pre-ReLU) of whole recordings, ``(U, embed_dim)`` float32 in the order given.

    Recordings are sorted by length, padded per batch and passed with their lengths; the model is
    used in evaluation mode and left as it was (training flags and ``requires_grad`` restored).
    """
    return segment_embeddings(model, utterances, ("segment6",), batch_size=batch_size, device=device)["segment6"]


def segment_embeddings(model: XVectorNet, utterances: Sequence[np.ndarray],
                       layers: Sequence[str] = ("pool", "segment6", "segment7"), *, batch_size: int = 64,
                       device: torch.device | str | None = None) -> dict[str, np.ndarray]:
    """Segment-level representations of whole recordings (see :meth:`XVectorNet.segment_outputs`):
    ``{layer: (U, D) float32}`` in the order given, batched as :func:`xvector_embeddings`."""
    from ..capture import model_device, model_state_guard

    if batch_size < 1:
        raise ParameterError(f"batch_size must be >= 1; got {batch_size}.")
    unknown = sorted(set(layers) - {"pool", "segment6", "segment7"})
    if unknown or not layers:
        raise ParameterError(f"Segment layers are 'pool', 'segment6' and 'segment7'; got {list(layers)}.")
    utts = [_extend(u, model.receptive_field) for u in _check_utterances(utterances, model.n_features)]
    dev = torch.device(device) if device is not None else model_device(model)
    order = np.argsort([u.shape[0] for u in utts], kind="stable")
    out: dict[str, np.ndarray] = {}
    with model_state_guard(model), torch.no_grad():
        model.eval()
        for s in range(0, len(order), batch_size):
            idx = order[s: s + batch_size]
            x, lens = _pad([utts[i] for i in idx])
            got = model.segment_outputs(x.to(dev), lens)
            for name in layers:
                a = got[name].cpu().numpy()
                out.setdefault(name, np.zeros((len(utts), a.shape[1]), np.float32))[idx] = a
    return out


@dataclass
class XVectorTraining:
    """What :func:`train_xvector` returns.

    Attributes
    ----------
    model : XVectorNet (evaluation mode)
    history : list of dict
        Per epoch: ``epoch``, ``loss`` (mean training cross-entropy over chunks), ``train_accuracy``
        (chunks), ``val_accuracy`` (whole validation recordings; ``None`` without validation data).
    """

    model: XVectorNet
    history: list[dict[str, Any]] = field(default_factory=list)


def _chunk_batches(lengths: np.ndarray, batch_size: int, rng: np.random.Generator) -> list[np.ndarray]:
    """Shuffle, then sort by length inside pools of 8 batches, so each batch holds similar lengths."""
    perm = rng.permutation(len(lengths))
    pool = 8 * batch_size
    batches: list[np.ndarray] = []
    for s in range(0, len(perm), pool):
        p = perm[s: s + pool]
        p = p[np.argsort(lengths[p], kind="stable")]
        batches.extend(p[i: i + batch_size] for i in range(0, len(p), batch_size))
    return [batches[i] for i in rng.permutation(len(batches))]


def _recording_accuracy(model: XVectorNet, utts: Sequence[np.ndarray], labels: np.ndarray) -> float:
    from ..capture import model_state_guard

    with model_state_guard(model), torch.no_grad():
        model.eval()
        u = [_extend(a, model.receptive_field) for a in utts]
        correct = 0
        for s in range(0, len(u), 128):
            x, lens = _pad(u[s: s + 128])
            correct += int((model(x, lens).argmax(1).numpy() == labels[s: s + 128]).sum())
    return correct / len(u)


def train_xvector(
    utterances: Sequence[np.ndarray],
    speakers: Sequence[int] | np.ndarray,
    *,
    n_speakers: int | None = None,
    val: tuple[Sequence[np.ndarray], Sequence[int] | np.ndarray] | None = None,
    epochs: int = 20,
    batch_size: int = 32,
    lr: float = 1e-3,
    weight_decay: float = 1e-4,
    max_chunk: int = 200,
    seed: int = 0,
    progress: ProgressArg = None,
    **arch: Any,
) -> XVectorTraining:
    """Train an :class:`XVectorNet` to classify the speakers of ``utterances`` (cross-entropy, Adam).

    Every minibatch is made of chunks of one length (Kaldi's egs): recordings of similar length are
    batched together and each is cropped, at a random offset, to the batch's shortest recording
    (capped at ``max_chunk`` frames); recordings shorter than the receptive field are first extended
    by repeating their last frame.

    Parameters
    ----------
    utterances : sequence of (T_i, F) float arrays
        Normalised feature frames of the training recordings.
    speakers : (U,) int
        Training-speaker index ``0 .. n_speakers - 1`` of each recording.
    val
        Validation recordings and speaker indices (recording-level accuracy after every epoch).
    seed
        Seeds the initialisation, the batching and the crops (same seed, same weights on CPU).
    arch
        Passed to :class:`XVectorNet` (``channels``, ``kernels``, ``dilations``, ``embed_dim``, ``hidden_dim``).
    """
    track = resolve_progress(progress)
    y = np.asarray(speakers, dtype=np.int64)
    if epochs < 1 or batch_size < 2 or max_chunk < 1:
        raise ParameterError(f"epochs >= 1, batch_size >= 2 and max_chunk >= 1 needed; got {epochs}, {batch_size}, {max_chunk}.")
    if y.ndim != 1 or len(y) != len(utterances):
        raise DataError(f"One speaker per recording needed; got {len(y)} labels for {len(utterances)} recordings.")
    n_spk = int(n_speakers if n_speakers is not None else y.max() + 1)
    if y.min() < 0 or y.max() >= n_spk:
        raise DataError(f"Speaker indices must lie in 0..{n_spk - 1}; got {y.min()}..{y.max()}.")
    feats = np.asarray(utterances[0]).shape[-1] if len(utterances) else 0
    utts = _check_utterances(utterances, feats)
    torch.manual_seed(seed)
    model = XVectorNet(feats, n_spk, **arch)
    if max_chunk < model.receptive_field:
        raise ParameterError(f"max_chunk ({max_chunk}) must be at least the receptive field ({model.receptive_field} frames).")
    utts = [_extend(u, model.receptive_field) for u in utts]
    lengths = np.array([u.shape[0] for u in utts])
    val_u = val_y = None
    if val is not None:
        val_u = _check_utterances(val[0], feats)
        val_y = np.asarray(val[1], dtype=np.int64)
    rng = np.random.default_rng(seed)
    opt = torch.optim.Adam(model.parameters(), lr=lr, weight_decay=weight_decay)
    loss_fn = nn.CrossEntropyLoss()
    history = []
    for epoch in track(range(1, epochs + 1), total=epochs, desc="x-vector epochs"):
        model.train()
        tot, correct, n = 0.0, 0, 0
        for idx in _chunk_batches(lengths, batch_size, rng):
            if len(idx) < 2:  # BatchNorm needs two rows in training
                continue
            t = int(min(lengths[idx].min(), max_chunk))
            starts = rng.integers(0, lengths[idx] - t + 1)
            x = torch.from_numpy(np.stack([utts[i][s: s + t] for i, s in zip(idx, starts)]))
            target = torch.from_numpy(y[idx])
            logits = model(x)
            loss = loss_fn(logits, target)
            opt.zero_grad()
            loss.backward()
            opt.step()
            tot += float(loss.detach()) * len(idx)
            correct += int((logits.argmax(1) == target).sum())
            n += len(idx)
        va = None if val_u is None or val_y is None else _recording_accuracy(model, val_u, val_y)
        history.append({"epoch": epoch, "loss": tot / max(n, 1), "train_accuracy": correct / max(n, 1),
                        "val_accuracy": va})
        if not math.isfinite(tot):
            raise DataError(f"x-vector training diverged at epoch {epoch} (loss {tot}); lower lr.")
    return XVectorTraining(model.eval(), history)


def cosine_trials(embeddings: np.ndarray, speakers: np.ndarray, center: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Cosine scores of every pair ``i < j`` of recordings and whether it is a same-speaker pair.

    Parameters
    ----------
    embeddings : (U, D)
    speakers : (U,)
    center : (D,), optional
        Subtracted before the cosine (e.g. the mean embedding of the *training* recordings).

    Returns
    -------
    scores : (U * (U - 1) / 2,) float64
    is_target : (U * (U - 1) / 2,) bool
    """
    x = np.asarray(embeddings, dtype=np.float64)
    s = np.asarray(speakers)
    if x.ndim != 2 or len(x) != len(s) or len(x) < 2:
        raise DataError(f"Expected (U >= 2, D) embeddings with one speaker each; got {x.shape} and {s.shape}.")
    if center is not None:
        x = x - np.asarray(center, dtype=np.float64)[None, :]
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    if (norms == 0).any():
        raise DataError("An embedding is zero (after centring): its cosine with others is undefined.")
    x = x / norms
    i, j = np.triu_indices(len(x), k=1)
    return (x @ x.T)[i, j], s[i] == s[j]


def equal_error_rate(scores: np.ndarray, is_target: np.ndarray) -> float:
    """Equal error rate of a verification trial list (higher score = more likely the same speaker).

    Accepting trials with ``score >= threshold`` gives a false-acceptance rate (non-target trials
    accepted) and a false-rejection rate (target trials rejected) per threshold. The EER is where
    the two are equal on the ROC curve (scikit-learn's ``roc_curve``, every threshold kept), with
    linear interpolation between the two operating points around the crossing. 0 when some threshold
    separates the two kinds of trials perfectly.
    """
    from sklearn.metrics import roc_curve

    s = np.asarray(scores, dtype=np.float64)
    t = np.asarray(is_target)
    if s.ndim != 1 or s.shape != t.shape:
        raise DataError(f"Expected 1-D scores and target flags of one length; got {s.shape} and {t.shape}.")
    if t.dtype != bool:
        raise DataError(f"is_target must be booleans; got dtype {t.dtype}.")
    if not np.all(np.isfinite(s)):
        raise DataError("Trial scores hold NaN or infinite values.")
    if t.all() or not t.any():
        raise DataError("The EER needs both same-speaker and different-speaker trials.")
    fpr, tpr, _ = roc_curve(t, s, drop_intermediate=False)
    fnr = 1.0 - tpr
    d = fnr - fpr  # starts at 1 (nothing accepted), ends at -1 (everything accepted)
    i = int(np.flatnonzero(d <= 0)[0])
    w = d[i - 1] / (d[i - 1] - d[i])
    return float(fpr[i - 1] + w * (fpr[i] - fpr[i - 1]))
