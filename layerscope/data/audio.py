"""Audio folders of wav files, FSDD naming ``<digit>_<speaker>_<index>.wav``."""

from __future__ import annotations

import io
import os
import re
import tarfile
import warnings
import zlib
from pathlib import Path
from typing import Iterator, Literal

import numpy as np
import torch
from scipy.io import wavfile
from torch.utils.data import Dataset

from ..exceptions import DataError
from .base import MAX_CLASSES

MAX_WAV_BYTES = 2**30
"""The largest single wav file read (1 GiB)."""

__all__ = ["AudioDataset", "load_fsdd", "load_audiofolder"]

BUNDLED_FSDD = Path(__file__).resolve().parent.parent / "bundled" / "fsdd"
FSDD_NAME = re.compile(r"^(?P<digit>\d+)_(?P<speaker>[A-Za-z0-9-]+)_(?P<index>\d+)\.wav$")


class AudioDataset(Dataset):
    """Recordings with a class label and a speaker label each.

    Items are ``(waveform, label)``: a float32 tensor in ``[-1, 1)`` of variable length and the
    class index. Speaker, repetition index and file name are kept per recording.

    Attributes
    ----------
    waveforms : list of (T_i,) float32 arrays
    labels : (N,) int64 class index (the spoken digit for FSDD)
    speakers : (N,) int64 index into ``speaker_names``
    indices : (N,) int64 repetition index from the file name
    classes, speaker_names : list of str
    sample_rate : int
    """

    def __init__(
        self,
        waveforms: list[np.ndarray],
        labels: np.ndarray,
        speakers: np.ndarray,
        indices: np.ndarray,
        filenames: list[str],
        classes: list[str],
        speaker_names: list[str],
        sample_rate: int,
        name: str = "",
    ) -> None:
        self.waveforms = waveforms
        self.labels = np.asarray(labels, dtype=np.int64)
        self.speakers = np.asarray(speakers, dtype=np.int64)
        self.indices = np.asarray(indices, dtype=np.int64)
        self.filenames = list(filenames)
        self.classes = classes
        self.speaker_names = speaker_names
        self.sample_rate = int(sample_rate)
        self.name = name

    @property
    def extra_labels(self) -> dict[str, np.ndarray]:
        return {"speaker": self.speakers, "index": self.indices}

    @property
    def label_names(self) -> dict[str, list[str]]:
        return {"speaker": self.speaker_names}

    def __len__(self) -> int:
        return len(self.waveforms)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        return torch.from_numpy(self.waveforms[i]), int(self.labels[i])

    def subset(self, rows: np.ndarray | list[int]) -> "AudioDataset":
        r = np.asarray(rows, dtype=np.int64)
        return AudioDataset(
            [self.waveforms[i] for i in r],
            self.labels[r],
            self.speakers[r],
            self.indices[r],
            [self.filenames[i] for i in r],
            self.classes,
            self.speaker_names,
            self.sample_rate,
            self.name,
        )

    def __repr__(self) -> str:
        return (
            f"AudioDataset({self.name!r}, n={len(self)}, classes={len(self.classes)}, "
            f"speakers={len(self.speaker_names)}, sample_rate={self.sample_rate})"
        )


def _iter_wavs(path: Path) -> Iterator[tuple[str, bytes]]:
    if path.is_dir():
        files = sorted(path.rglob("*.wav"))
        for f in files:
            if f.stat().st_size > MAX_WAV_BYTES:
                raise DataError(f"{f} is {f.stat().st_size} bytes; wav files over {MAX_WAV_BYTES} are refused.")
            yield f.name, f.read_bytes()
    elif path.name.endswith((".tar.gz", ".tgz", ".tar")):
        try:
            with tarfile.open(path, "r:*") as tar:
                for m in tar:
                    if m.isfile() and m.name.endswith(".wav"):
                        if m.size > MAX_WAV_BYTES:
                            raise DataError(f"{path}: member {m.name} is {m.size} bytes; wav files over {MAX_WAV_BYTES} are refused.")
                        fh = tar.extractfile(m)
                        if fh is not None:
                            yield Path(m.name).name, fh.read()
        except (tarfile.TarError, EOFError, OSError, zlib.error) as err:
            raise DataError(f"{path} is not a readable tar archive of wav files: {err}") from err
    else:
        raise DataError(f"{path}: expected a folder of .wav files or a .tar(.gz) archive of them.")


def _data_chunk_shortfall(data: bytes) -> str | None:
    """Whether the RIFF ``data`` chunk claims more bytes than the file holds (scipy then silently
    returns the samples present). Walked by hand: scipy does not expose the chunk table."""
    pos = 12
    while pos + 8 <= len(data):
        cid, size = data[pos : pos + 4], int.from_bytes(data[pos + 4 : pos + 8], "little")
        if cid == b"data":
            have = len(data) - pos - 8
            return f"data chunk of {size} bytes, {have} present" if size > have else None
        pos += 8 + size + (size & 1)
    return None


def load_audiofolder(path: str | os.PathLike[str], split: Literal["train", "test", "all"] = "all",
                     test_indices: range = range(0, 5)) -> AudioDataset:
    """Wav files named ``<class>_<speaker>_<index>.wav`` (FSDD naming) from a folder or tar archive.

    Class and speaker labels both come from the name. ``split='test'`` keeps the recordings whose
    index is in ``test_indices`` (FSDD's official test split is indices 0-4), ``'train'`` the rest.
    Waveforms are int16 PCM / 32768 (float32 in ``[-1, 1)``); all files must share a sample rate.
    """
    p = Path(path)
    if not p.exists():
        raise DataError(f"Audio path {p} does not exist.")
    if split not in ("train", "test", "all"):
        raise DataError(f"split must be 'train', 'test' or 'all'; got {split!r}.")
    rows = []
    rate = None
    for fname, data in _iter_wavs(p):
        m = FSDD_NAME.match(fname)
        if not m:
            raise DataError(
                f"{fname} in {p} does not follow the naming <digit>_<speaker>_<index>.wav needed for the labels."
            )
        idx = int(m["index"])
        if split == "test" and idx not in test_indices or split == "train" and idx in test_indices:
            continue
        try:
            with warnings.catch_warnings(record=True) as caught:  # scipy warns on odd chunks; decided below
                warnings.simplefilter("always")
                sr, wav = wavfile.read(io.BytesIO(data))
        except Exception as err:  # scipy raises ValueError, EOFError, struct.error, UnboundLocalError... on bad headers
            raise DataError(f"{fname} in {p} is not a readable wav file (corrupt header?): {type(err).__name__}: {err}") from err
        short = [str(w.message) for w in caught if "prematurely" in str(w.message)]
        promised = _data_chunk_shortfall(data)
        if promised:
            short.append(promised)
        if short:
            raise DataError(f"{fname} in {p} is truncated: its header promises more samples than it holds ({short[0]}).")
        if not isinstance(wav, np.ndarray) or wav.ndim not in (1, 2) or wav.dtype.kind not in "uif" or int(sr) <= 0 \
                or wav.shape[0] == 0:
            raise DataError(
                f"{fname} in {p} is not a PCM wav recording: got {getattr(wav, 'dtype', '?')} samples of shape "
                f"{getattr(wav, 'shape', '?')} at {sr} Hz."
            )
        if rate is None:
            rate = sr
        elif sr != rate:
            raise DataError(f"{fname} has sample rate {sr} Hz but earlier files have {rate} Hz; resample them first.")
        if wav.ndim > 1:
            wav = wav.mean(axis=1)
        if wav.dtype == np.int16:
            w = wav.astype(np.float32) / 32768.0
        elif wav.dtype == np.uint8:  # 8-bit wav is unsigned, centred on 128
            w = (wav.astype(np.float32) - 128.0) / 128.0
        elif np.issubdtype(wav.dtype, np.integer):
            w = wav.astype(np.float32) / float(np.iinfo(wav.dtype).max + 1)
        else:
            w = wav.astype(np.float32)
        rows.append((int(m["digit"]), m["speaker"], idx, fname, w))
    if not rows:
        raise DataError(f"No wav recordings found in {p} for split {split!r}.")
    speaker_names = sorted({r[1] for r in rows})
    digits = sorted({r[0] for r in rows})
    # order like the FSDD npz: speaker, digit, index
    rows.sort(key=lambda r: (r[1], r[0], r[2]))
    spk = {s: i for i, s in enumerate(speaker_names)}
    n_classes = max(digits) + 1
    if n_classes > MAX_CLASSES:
        raise DataError(
            f"{p}: a file name gives class {max(digits)}, which would mean {n_classes} classes (at most {MAX_CLASSES}); "
            "names must be <class index>_<speaker>_<index>.wav."
        )
    return AudioDataset(
        waveforms=[r[4] for r in rows],
        labels=np.array([r[0] for r in rows]),
        speakers=np.array([spk[r[1]] for r in rows]),
        indices=np.array([r[2] for r in rows]),
        filenames=[r[3] for r in rows],
        classes=[str(i) for i in range(n_classes)],
        speaker_names=speaker_names,
        sample_rate=int(rate or 0),
        name=f"audiofolder:{p}:{split}",
    )


def load_fsdd(path: str | os.PathLike[str] | None = None, split: Literal["train", "test", "all"] = "all") -> AudioDataset:
    """The Free Spoken Digit Dataset (bundled copy by default): 3,000 recordings, 6 speakers."""
    p = Path(path) if path is not None else BUNDLED_FSDD / "fsdd_recordings.tar.gz"
    ds = load_audiofolder(p, split=split)
    ds.name = f"fsdd:{split}" if path is None else f"fsdd:{p}:{split}"
    return ds
