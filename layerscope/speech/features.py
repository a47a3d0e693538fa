"""Frame features for acoustic models: log-mel filterbanks or MFCCs, context windows, normalisation.

Mohamed, Hinton & Penn (ICASSP 2012) feed a frame-level DNN a *context window* of feature frames
around the frame to classify, and compare log-mel filterbank inputs with MFCCs. This module turns
the recordings of an :class:`~layerscope.data.AudioDataset` into such frames:

1. :func:`frame_features` — one ``(T, F)`` matrix per recording, computed with librosa (STFT of
   ``win_ms`` windows every ``hop_ms``, a mel filterbank, ``power_to_db``; MFCC is the DCT-II of the
   log-mel frames), optionally with deltas (``librosa.feature.delta``).
2. :func:`stack_context` — ``(T, F)`` to ``(T, 2w + 1, F)``: row ``t`` holds frames ``t - w .. t + w``,
   the first / last frame repeated at the edges.
3. :class:`FrameExtractor` — scikit-learn style: ``fit`` learns the global mean / standard deviation
   per feature (when ``normalize="global"``) on the training recordings, ``transform`` returns an
   :class:`~layerscope.data.ArrayDataset` of frames whose label is the recording's class (the digit)
   and whose ``extra_labels`` carry ``speaker``, ``utterance`` (row in the audio dataset), ``take``
   (repetition index) and ``frame`` (index within the recording).

The frame convention is librosa's with ``center=False``: frame ``t`` covers samples
``[t * hop, t * hop + n_fft)``, so a recording of ``L >= n_fft`` samples has
``1 + (L - n_fft) // hop`` frames (shorter recordings are zero-padded to one frame).
"""

from __future__ import annotations

import math
import weakref
from dataclasses import asdict, dataclass, field, replace
from typing import Any, Literal, Sequence

import numpy as np
import torch

from .._progress import ProgressArg, resolve_progress
from ..data.audio import AudioDataset
from ..data.base import ArrayDataset, Normalization
from ..exceptions import DataError, ParameterError

__all__ = [
    "FeatureConfig",
    "FrameExtractor",
    "frame_features",
    "stack_context",
    "normalize_utterance",
    "fsdd_split",
]

FeatureKind = Literal["fbank", "mfcc"]
NormalizeMode = Literal["utterance", "global", "none"]


@dataclass(frozen=True)
class FeatureConfig:
    """How recordings become network inputs.

    Parameters
    ----------
    kind : {"fbank", "mfcc"}
        Log-mel filterbank energies (``n_mels`` per frame) or MFCCs (``n_mfcc`` per frame).
    n_mels : int
        Mel bands (Mohamed et al.: 40).
    n_mfcc : int
        Cepstral coefficients kept for ``kind="mfcc"`` (c0 included).
    deltas : {0, 1, 2}
        Append first (1) or first and second (2) temporal derivatives.
    context : int
        ``w``: frames on each side of the centre frame; inputs have ``2w + 1`` frames.
    normalize : {"utterance", "global", "none"}
        Mean / variance normalisation per feature over each recording, over the training set, or none.
    win_ms, hop_ms : float
        Analysis window and hop in milliseconds (25 / 10 as usual in speech recognition).
    fmin, fmax : float
        Frequency range of the mel filterbank (``fmax=None``: half the sample rate).
    top_db : float
        Dynamic range kept by ``librosa.power_to_db`` below each recording's loudest bin.
    """

    kind: FeatureKind = "fbank"
    n_mels: int = 40
    n_mfcc: int = 13
    deltas: int = 0
    context: int = 5
    normalize: NormalizeMode = "utterance"
    win_ms: float = 25.0
    hop_ms: float = 10.0
    fmin: float = 20.0
    fmax: float | None = None
    top_db: float = 80.0

    def __post_init__(self) -> None:
        if self.kind not in ("fbank", "mfcc"):
            raise ParameterError(f"feature kind must be 'fbank' or 'mfcc'; got {self.kind!r}.")
        if self.normalize not in ("utterance", "global", "none"):
            raise ParameterError(f"normalize must be 'utterance', 'global' or 'none'; got {self.normalize!r}.")
        if self.deltas not in (0, 1, 2):
            raise ParameterError(f"deltas must be 0, 1 or 2; got {self.deltas!r}.")
        if self.context < 0:
            raise ParameterError(f"context must be >= 0 frames; got {self.context}.")
        if self.n_mels < 1 or self.n_mfcc < 1:
            raise ParameterError(f"n_mels and n_mfcc must be positive; got {self.n_mels}, {self.n_mfcc}.")
        if self.kind == "mfcc" and self.n_mfcc > self.n_mels:
            raise ParameterError(f"n_mfcc ({self.n_mfcc}) cannot exceed n_mels ({self.n_mels}).")
        if self.win_ms <= 0 or self.hop_ms <= 0:
            raise ParameterError(f"win_ms and hop_ms must be > 0; got {self.win_ms}, {self.hop_ms}.")

    @property
    def n_base(self) -> int:
        """Features per frame before deltas."""
        return self.n_mels if self.kind == "fbank" else self.n_mfcc

    @property
    def n_features(self) -> int:
        """Features per frame (deltas included)."""
        return self.n_base * (1 + self.deltas)

    @property
    def input_shape(self) -> tuple[int, int]:
        """``(2 * context + 1, n_features)``: the shape of one network input."""
        return (2 * self.context + 1, self.n_features)

    def frame_params(self, sample_rate: int) -> tuple[int, int, int]:
        """``(win_length, hop_length, n_fft)`` in samples; ``n_fft`` is the next power of two."""
        win = max(1, int(round(self.win_ms * sample_rate / 1000.0)))
        hop = max(1, int(round(self.hop_ms * sample_rate / 1000.0)))
        n_fft = 1 << max(0, math.ceil(math.log2(win)))
        return win, hop, n_fft

    def describe(self) -> str:
        base = f"{self.n_mels} log-mel" if self.kind == "fbank" else f"{self.n_mfcc} MFCC"
        d = {0: "", 1: " +Δ", 2: " +Δ+ΔΔ"}[self.deltas]
        return f"{base}{d}, ±{self.context} frames, {self.normalize} CMVN"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "FeatureConfig":
        known = {f for f in cls.__dataclass_fields__}
        return cls(**{k: v for k, v in d.items() if k in known})


def frame_features(waveform: np.ndarray, sample_rate: int, config: FeatureConfig | None = None) -> np.ndarray:
    """Feature frames of one recording, not normalised, no context.

    Parameters
    ----------
    waveform : (L,) float array
    sample_rate : int
    config : FeatureConfig

    Returns
    -------
    (T, config.n_features) float32
        Log-mel energies in dB (``librosa.power_to_db``) or MFCCs (DCT-II, orthonormal, of those),
        then deltas. ``T = 1 + (L - n_fft) // hop`` (one frame for recordings shorter than ``n_fft``).
    """
    from .._optional import require

    librosa = require("librosa", "speech features (log-mel / MFCC)")
    cfg = config or FeatureConfig()
    y = np.asarray(waveform, dtype=np.float32).reshape(-1)
    if y.size == 0:
        raise DataError("Cannot compute features of an empty recording.")
    if not np.all(np.isfinite(y)):
        raise DataError("The recording holds NaN or infinite samples.")
    win, hop, n_fft = cfg.frame_params(sample_rate)
    if y.size < n_fft:
        y = np.pad(y, (0, n_fft - y.size))
    fmax = cfg.fmax if cfg.fmax is not None else sample_rate / 2.0
    mel = librosa.feature.melspectrogram(
        y=y, sr=sample_rate, n_fft=n_fft, win_length=win, hop_length=hop, center=False,
        n_mels=cfg.n_mels, fmin=cfg.fmin, fmax=fmax, power=2.0,
    )
    logmel = librosa.power_to_db(mel, ref=1.0, amin=1e-10, top_db=cfg.top_db)
    feats = logmel if cfg.kind == "fbank" else librosa.feature.mfcc(S=logmel, n_mfcc=cfg.n_mfcc)
    parts = [feats]
    if cfg.deltas:
        # width 9 (librosa's default); "nearest" edges work for any number of frames
        parts.append(librosa.feature.delta(feats, width=9, order=1, mode="nearest", axis=-1))
    if cfg.deltas == 2:
        parts.append(librosa.feature.delta(feats, width=9, order=2, mode="nearest", axis=-1))
    return np.ascontiguousarray(np.concatenate(parts, axis=0).T, dtype=np.float32)


def stack_context(frames: np.ndarray, context: int) -> np.ndarray:
    """Context windows: ``(T, F)`` to ``(T, 2 * context + 1, F)``.

    Row ``t`` is ``frames[t - context : t + context + 1]`` with indices clamped to ``[0, T - 1]``
    (the first and last frames repeated at the edges). Written by hand: a gather with clamped
    indices, no library offers exactly this.
    """
    f = np.asarray(frames)
    if f.ndim != 2:
        raise DataError(f"stack_context expects (T, F) frames; got shape {f.shape}.")
    if context < 0:
        raise ParameterError(f"context must be >= 0; got {context}.")
    t = f.shape[0]
    idx = np.clip(np.arange(t)[:, None] + np.arange(-context, context + 1)[None, :], 0, t - 1)
    return f[idx]


def normalize_utterance(frames: np.ndarray, eps: float = 1e-5) -> np.ndarray:
    """Per-feature mean / variance normalisation over the frames of one recording."""
    f = np.asarray(frames, dtype=np.float32)
    return (f - f.mean(axis=0, keepdims=True)) / (f.std(axis=0, keepdims=True) + np.float32(eps))


def fsdd_split(
    audio: AudioDataset,
    split: Literal["official", "speaker", "all"] = "official",
    test_speakers: Sequence[str] | None = None,
    test_takes: Sequence[int] = range(0, 5),
) -> tuple[np.ndarray, np.ndarray]:
    """Train / test rows of a recording set.

    ``"official"``: FSDD's split, test = repetitions ``test_takes`` (0-4) of every speaker, so the
    same speakers are in both parts. ``"speaker"``: speakers held out; test = every recording of
    ``test_speakers`` (default: the last speaker by name). ``"all"``: every row in both.
    """
    rows = np.arange(len(audio))
    if split == "official":
        test = np.isin(audio.indices, np.asarray(list(test_takes)))
    elif split == "speaker":
        names = list(test_speakers) if test_speakers else [audio.speaker_names[-1]]
        unknown = [s for s in names if s not in audio.speaker_names]
        if unknown:
            raise DataError(f"Unknown speakers {unknown}; the data has {audio.speaker_names}.")
        if len(names) >= len(audio.speaker_names):
            raise DataError("Holding out every speaker leaves nothing to train on; name fewer test speakers.")
        ids = [audio.speaker_names.index(s) for s in names]
        test = np.isin(audio.speakers, ids)
    elif split == "all":
        return rows, rows
    else:
        raise ParameterError(f"split must be 'official', 'speaker' or 'all'; got {split!r}.")
    if not test.any() or test.all():
        raise DataError(f"The {split!r} split leaves an empty part; check test_takes / test_speakers.")
    return rows[~test], rows[test]


@dataclass(eq=False)
class FrameExtractor:
    """Recordings to frame datasets, scikit-learn style (``fit`` learns global statistics).

    Parameters
    ----------
    config : FeatureConfig

    Attributes
    ----------
    mean_, std_ : (n_features,) float32 arrays or None
        Global statistics (only for ``normalize="global"``), learned by :meth:`fit`.
    """

    config: FeatureConfig = field(default_factory=FeatureConfig)
    mean_: np.ndarray | None = None
    std_: np.ndarray | None = None
    _cache: "weakref.WeakKeyDictionary[AudioDataset, dict[int, np.ndarray]]" = field(
        default_factory=weakref.WeakKeyDictionary, repr=False, compare=False
    )

    def _raw(self, audio: AudioDataset, row: int) -> np.ndarray:
        per_audio = self._cache.setdefault(audio, {})
        got = per_audio.get(int(row))
        if got is None:
            got = frame_features(audio.waveforms[row], audio.sample_rate, self.config)
            per_audio[int(row)] = got
        return got

    def fit(self, audio: AudioDataset, rows: Sequence[int] | np.ndarray | None = None,
            progress: ProgressArg = None) -> "FrameExtractor":
        """Learn per-feature mean and std over the frames of ``rows`` (global normalisation only)."""
        if self.config.normalize != "global":
            return self
        r = np.arange(len(audio)) if rows is None else np.asarray(rows, dtype=np.int64)
        if r.size == 0:
            raise DataError("Cannot fit global statistics on zero recordings.")
        track = resolve_progress(progress)
        s = np.zeros(self.config.n_features, np.float64)
        s2 = np.zeros(self.config.n_features, np.float64)
        n = 0
        for i in track(r, total=len(r), desc="feature statistics (recordings)"):
            f = self._raw(audio, int(i)).astype(np.float64)
            s += f.sum(0)
            s2 += (f * f).sum(0)
            n += f.shape[0]
        mean = s / n
        self.mean_ = mean.astype(np.float32)
        self.std_ = np.sqrt(np.maximum(s2 / n - mean * mean, 0.0)).astype(np.float32) + np.float32(1e-5)
        return self

    def utterance(self, audio: AudioDataset, row: int) -> np.ndarray:
        """Normalised ``(T, F)`` frames of one recording (no context)."""
        f = self._raw(audio, row)
        if self.config.normalize == "utterance":
            return normalize_utterance(f)
        if self.config.normalize == "global":
            if self.mean_ is None or self.std_ is None:
                raise ParameterError("Global normalisation needs statistics: call fit() on the training recordings first.")
            return (f - self.mean_) / self.std_
        return f

    def normalization(self) -> Normalization:
        """A :class:`Normalization` for the frames: identity (features are used as computed).

        Its per-"channel" mean 0 / std 1 (one channel per context frame) makes ``zero_value()``
        return 0, the normalised mean, which is what occlusion should fill in.
        """
        c = self.config.input_shape[0]
        return Normalization(scale=1.0, mean=(0.0,) * c, std=(1.0,) * c, description=self.config.describe())

    def transform(
        self,
        audio: AudioDataset,
        rows: Sequence[int] | np.ndarray | None = None,
        *,
        frame_step: int = 1,
        target: Literal["digit", "speaker"] = "digit",
        speakers: Sequence[str] | None = None,
        progress: ProgressArg = None,
    ) -> ArrayDataset:
        """Frames of the recordings ``rows`` as an :class:`ArrayDataset`.

        Parameters
        ----------
        frame_step
            Keep every ``frame_step``-th frame of each recording (neighbouring frames overlap).
        target
            The label ``y``: the recording's class (``"digit"``) or its speaker (``"speaker"``,
            indexed into ``speakers``, default every speaker of ``audio``).

        Returns
        -------
        ArrayDataset
            ``x``: ``(N, 2 * context + 1, n_features)`` float32; ``extra_labels``: ``speaker``
            (index into ``audio.speaker_names``), ``digit``, ``utterance`` (row of ``audio``),
            ``take``, ``frame``.
        """
        if frame_step < 1:
            raise ParameterError(f"frame_step must be >= 1; got {frame_step}.")
        if target not in ("digit", "speaker"):
            raise ParameterError(f"target must be 'digit' or 'speaker'; got {target!r}.")
        r = np.arange(len(audio)) if rows is None else np.asarray(rows, dtype=np.int64)
        if r.size == 0:
            raise DataError("No recordings selected: the frame dataset would be empty.")
        spk_names = list(speakers) if speakers is not None else list(audio.speaker_names)
        spk_map = {audio.speaker_names.index(s): i for i, s in enumerate(spk_names) if s in audio.speaker_names}
        track = resolve_progress(progress)
        xs, utt, frm = [], [], []
        for i in track(r, total=len(r), desc="features (recordings)"):
            f = self.utterance(audio, int(i))
            keep = np.arange(0, f.shape[0], frame_step)
            xs.append(stack_context(f, self.config.context)[keep])
            utt.append(np.full(keep.size, i, np.int64))
            frm.append(keep)
        x = np.concatenate(xs).astype(np.float32, copy=False)
        u = np.concatenate(utt)
        speaker = audio.speakers[u]
        digit = audio.labels[u]
        if target == "digit":
            y = digit
            classes = list(audio.classes)
        else:
            missing = sorted({audio.speaker_names[s] for s in np.unique(speaker)} - set(spk_names))
            if missing:
                raise DataError(f"Recordings of speakers {missing} are not among the target speakers {spk_names}.")
            y = np.array([spk_map[s] for s in speaker], np.int64)
            classes = spk_names
        return ArrayDataset(
            torch.from_numpy(x),
            torch.from_numpy(np.asarray(y, np.int64)),
            classes=classes,
            normalization=self.normalization(),
            name=f"{audio.name} frames ({self.config.describe()})",
            extra_labels={
                "speaker": speaker,
                "digit": digit,
                "utterance": u,
                "take": audio.indices[u],
                "frame": np.concatenate(frm),
            },
            label_names={"speaker": list(audio.speaker_names), "digit": list(audio.classes)},
        )

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe: the config plus learned statistics (stored in ``run.json`` by the recipe)."""
        return {
            **self.config.to_dict(),
            "n_features": self.config.n_features,
            "input_shape": list(self.config.input_shape),
            "global_mean": None if self.mean_ is None else [float(v) for v in self.mean_],
            "global_std": None if self.std_ is None else [float(v) for v in self.std_],
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "FrameExtractor":
        ext = cls(FeatureConfig.from_dict(d))
        if d.get("global_mean") is not None:
            ext.mean_ = np.asarray(d["global_mean"], np.float32)
            ext.std_ = np.asarray(d["global_std"], np.float32)
        return ext

    def with_config(self, **changes: Any) -> "FrameExtractor":
        """A new, unfitted extractor with some config fields changed."""
        return FrameExtractor(replace(self.config, **changes))
