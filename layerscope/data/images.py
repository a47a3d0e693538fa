"""Image loaders: MNIST IDX, CIFAR-10 (python batches or npz), image folders, plain npz."""

from __future__ import annotations

import gzip
import os
import pickle
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch

from ..exceptions import DataError, UnsupportedFileError
from .base import ArrayDataset, Normalization

__all__ = ["load_mnist", "load_cifar10", "load_imagefolder", "load_npz", "read_idx", "MNIST_NORMALIZATION", "CIFAR10_NORMALIZATION"]

Split = Literal["train", "test", "all"]

BUNDLED = Path(__file__).resolve().parent.parent / "bundled"

MNIST_NORMALIZATION = Normalization(description="pixels / 255, in [0, 1], no mean/std (as the bundled MNIST weights expect)")
CIFAR10_NORMALIZATION = Normalization(
    mean=(0.485, 0.456, 0.406),
    std=(0.229, 0.224, 0.225),
    description="pixels / 255, then per channel (x - mean) / std with mean (0.485, 0.456, 0.406), "
    "std (0.229, 0.224, 0.225) (as the bundled ResNet-20 expects)",
)
UNIT_NORMALIZATION = Normalization(description="pixels / 255, in [0, 1]")
IDENTITY_NORMALIZATION = Normalization(scale=1.0, description="values as stored (float data)")


def _check_split(split: str) -> None:
    if split not in ("train", "test", "all"):
        raise DataError(f"split must be 'train', 'test' or 'all'; got {split!r}.")


# ------------------------------------------------------------------------------------ MNIST
def read_idx(path: str | os.PathLike[str]) -> np.ndarray:
    """Read an IDX file (gzip-compressed or raw) into a NumPy array.

    Raises :class:`DataError` for a missing, truncated or malformed file.
    """
    p = Path(path)
    if not p.exists():
        raise DataError(f"IDX file {p} does not exist.")
    try:
        with open(p, "rb") as fh:
            head = fh.read(2)
        opener = gzip.open if head == b"\x1f\x8b" else open
        with opener(p, "rb") as fh:
            raw = fh.read()
    except (OSError, EOFError) as err:
        raise DataError(f"{p} is not a readable IDX file (corrupt or truncated gzip?): {err}") from err
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] != 0x08:
        raise DataError(
            f"{p} is not an unsigned-byte IDX file: expected a magic number 0x0000 08 ND, got {raw[:4].hex() or 'nothing'}."
        )
    nd = raw[3]
    dims = tuple(int(d) for d in np.frombuffer(raw[4 : 4 + 4 * nd], ">u4"))
    data = np.frombuffer(raw[4 + 4 * nd :], np.uint8)
    if data.size != int(np.prod(dims)):
        raise DataError(
            f"{p} is truncated or padded: header says {dims} = {int(np.prod(dims))} values, file holds {data.size}."
        )
    return data.reshape(dims)


def _find_idx(root: Path, stem: str) -> Path:
    for cand in (f"{stem}-ubyte.gz", f"{stem}-ubyte", f"{stem.replace('-idx', '.idx')}-ubyte", f"{stem}.gz"):
        p = root / cand
        if p.exists():
            return p
    raise DataError(
        f"No MNIST file {stem}-ubyte(.gz) in {root}. Expected the four IDX files "
        "train-images-idx3-ubyte(.gz), train-labels-idx1-ubyte(.gz), t10k-images-idx3-ubyte(.gz), "
        "t10k-labels-idx1-ubyte(.gz)."
    )


def load_mnist(root: str | os.PathLike[str] | None = None, split: Split = "train") -> ArrayDataset:
    """MNIST from IDX files (``.gz`` or raw). ``root`` defaults to the bundled copy.

    Inputs are ``(N, 1, 28, 28)`` float32 in ``[0, 1]`` (pixels / 255), which is what the bundled
    MNIST weights expect. ``split='all'`` concatenates train then test.
    """
    _check_split(split)
    r = Path(root) if root is not None else BUNDLED / "mnist"
    if not r.is_dir():
        raise DataError(f"MNIST folder {r} does not exist.")
    parts = ["train", "test"] if split == "all" else [split]
    xs, ys = [], []
    for part in parts:
        prefix = "train" if part == "train" else "t10k"
        x = read_idx(_find_idx(r, f"{prefix}-images-idx3"))
        y = read_idx(_find_idx(r, f"{prefix}-labels-idx1"))
        if x.ndim != 3 or y.ndim != 1 or x.shape[0] != y.shape[0]:
            raise DataError(f"MNIST {part} files in {r} disagree: images {x.shape}, labels {y.shape}.")
        xs.append(x)
        ys.append(y)
    x = np.concatenate(xs)[:, None]
    y = np.concatenate(ys).astype(np.int64)
    return ArrayDataset(
        MNIST_NORMALIZATION.apply(x),
        torch.from_numpy(y),
        classes=[str(i) for i in range(10)],
        normalization=MNIST_NORMALIZATION,
        name=f"mnist:{split}" if root is None else f"mnist:{r}:{split}",
    )


# --------------------------------------------------------------------------------- CIFAR-10
CIFAR10_CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]


class _SafeUnpickler(pickle.Unpickler):
    """Unpickler that builds only plain containers and NumPy arrays (CIFAR python batches).

    Anything else (the way a malicious pickle runs code) is refused.
    """

    ALLOWED = {
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
        ("numpy.core.multiarray", "scalar"),
        ("numpy._core.multiarray", "scalar"),
        ("_codecs", "encode"),
    }

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in self.ALLOWED:
            return super().find_class(module, name)
        raise DataError(
            f"refusing to unpickle {module}.{name}: a CIFAR-10 python batch holds only arrays, lists and "
            "strings, so this file is not one (or has been tampered with)."
        )


def _unpickle_batch(path: Path) -> dict[str, Any]:
    try:
        with open(path, "rb") as fh:
            d = _SafeUnpickler(fh, encoding="bytes").load()
    except (pickle.UnpicklingError, EOFError, ValueError) as err:
        if isinstance(err, DataError):
            raise
        raise DataError(f"{path} is not a readable CIFAR-10 python batch: {err}") from err
    if not isinstance(d, dict):
        raise DataError(f"{path}: expected a dict with b'data' and b'labels', got {type(d).__name__}.")
    return {(k.decode() if isinstance(k, bytes) else k): v for k, v in d.items()}


def load_cifar10(path: str | os.PathLike[str], split: Split = "test", normalize: bool = True) -> ArrayDataset:
    """CIFAR-10 from the official python batches folder or an ``.npz``.

    ``path`` is either the ``cifar-10-batches-py`` folder (``data_batch_1..5``, ``test_batch``,
    ``batches.meta``) or an ``.npz`` with ``x_train, y_train, x_test, y_test`` (HWC uint8) and
    optionally ``class_names``. Inputs are ``(N, 3, 32, 32)``; with ``normalize`` (default) they are
    pixels / 255 then standardised with the mean/std the bundled ResNet-20 was trained with.
    """
    _check_split(split)
    p = Path(path)
    if not p.exists():
        raise DataError(f"CIFAR-10 path {p} does not exist; give the cifar-10-batches-py folder or an .npz.")
    classes = list(CIFAR10_CLASSES)
    parts = ["train", "test"] if split == "all" else [split]
    xs, ys = [], []
    if p.is_dir():
        meta = p / "batches.meta"
        if meta.exists():
            names = _unpickle_batch(meta).get("label_names")
            if names:
                classes = [n.decode() if isinstance(n, bytes) else str(n) for n in names]
        for part in parts:
            files = sorted(p.glob("data_batch_*")) if part == "train" else [p / "test_batch"]
            files = [f for f in files if f.exists()]
            if not files:
                raise DataError(f"No CIFAR-10 {part} batches in {p}: expected data_batch_1..5 / test_batch.")
            for f in files:
                d = _unpickle_batch(f)
                data = np.asarray(d["data"], dtype=np.uint8).reshape(-1, 3, 32, 32)
                xs.append(data)
                ys.append(np.asarray(d["labels"], dtype=np.int64))
    elif p.suffix == ".npz":
        z = _open_npz(p)
        for part in parts:
            kx, ky = f"x_{part}", f"y_{part}"
            if kx not in z.files or ky not in z.files:
                raise DataError(f"{p} has no {kx}/{ky} arrays (it has {z.files}).")
            x = z[kx]
            if x.ndim != 4:
                raise DataError(f"{p}:{kx} should be (N, 32, 32, 3) or (N, 3, 32, 32); got {x.shape}.")
            xs.append(x.transpose(0, 3, 1, 2) if x.shape[-1] == 3 else x)
            ys.append(z[ky].astype(np.int64))
        if "class_names" in z.files:
            classes = [str(c) for c in z["class_names"]]
    else:
        raise UnsupportedFileError(f"{p}: CIFAR-10 must be a cifar-10-batches-py folder or an .npz file.")
    x = np.concatenate(xs)
    norm = CIFAR10_NORMALIZATION if normalize else UNIT_NORMALIZATION
    return ArrayDataset(
        norm.apply(x),
        torch.from_numpy(np.concatenate(ys)),
        classes=classes,
        normalization=norm,
        name=f"cifar10:{p}:{split}",
    )


# ---------------------------------------------------------------------------------- folders
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp"}


def load_imagefolder(
    path: str | os.PathLike[str],
    size: tuple[int, int] | None = None,
    mode: Literal["auto", "L", "RGB"] = "auto",
) -> ArrayDataset:
    """Images in ``path/<class>/<file>``; class names are the sorted sub-folder names.

    All images must share one size unless ``size=(H, W)`` is given (then they are resized).
    ``mode='auto'`` keeps grayscale if every image is grayscale, else converts to RGB.
    Inputs are ``(N, C, H, W)`` in ``[0, 1]``.
    """
    from PIL import Image

    root = Path(path)
    if not root.is_dir():
        raise DataError(f"Image folder {root} does not exist or is not a folder.")
    class_dirs = sorted(d for d in root.iterdir() if d.is_dir() and not d.name.startswith("."))
    if not class_dirs:
        raise DataError(f"{root} has no sub-folders; expected one sub-folder of images per class.")
    files: list[tuple[Path, int]] = []
    for ci, d in enumerate(class_dirs):
        files += [(f, ci) for f in sorted(d.rglob("*")) if f.suffix.lower() in IMAGE_SUFFIXES]
    if not files:
        raise DataError(f"{root} holds no images ({', '.join(sorted(IMAGE_SUFFIXES))}) in its class folders.")
    images = []
    for f, _ in files:
        try:
            with Image.open(f) as im:
                im.load()
                images.append(im.copy())
        except OSError as err:
            raise DataError(f"{f} is not a readable image: {err}") from err
    if mode == "auto":
        mode = "L" if all(im.mode in ("L", "1", "I;16", "I") for im in images) else "RGB"
    arrays = []
    for image in images:
        converted = image.convert(mode)
        if size is not None:
            converted = converted.resize((size[1], size[0]))
        arrays.append(np.asarray(converted))
    shapes = {a.shape for a in arrays}
    if len(shapes) > 1:
        raise DataError(
            f"Images in {root} have different sizes {sorted(shapes)[:4]}; pass size=(H, W) "
            "(CLI: imagefolder:PATH@HxW) to resize them."
        )
    x = np.stack(arrays)
    x = x[:, None] if x.ndim == 3 else x.transpose(0, 3, 1, 2)
    y = np.array([c for _, c in files], dtype=np.int64)
    return ArrayDataset(
        UNIT_NORMALIZATION.apply(x),
        torch.from_numpy(y),
        classes=[d.name for d in class_dirs],
        normalization=UNIT_NORMALIZATION,
        name=f"imagefolder:{root}",
    )


# -------------------------------------------------------------------------------------- npz
def _open_npz(p: Path) -> Any:
    if not p.exists():
        raise DataError(f"{p} does not exist.")
    try:
        return np.load(p, allow_pickle=False)
    except (OSError, ValueError) as err:
        raise DataError(f"{p} is not a readable .npz file (corrupt, or it needs pickle, which is refused): {err}") from err


def load_npz(path: str | os.PathLike[str], split: Split = "all") -> ArrayDataset:
    """Arrays from an ``.npz``: ``x``/``y`` (or ``x_train``/``y_train``/``x_test``/``y_test``).

    ``x`` may be ``(N, D)`` vectors, ``(N, H, W)`` gray images, ``(N, H, W, C)`` or ``(N, C, H, W)``
    images (C in 1, 3). uint8 data is divided by 255; float data is used as stored. Optional
    ``classes`` (or ``class_names``) array names the labels.
    """
    p = Path(path)
    z = _open_npz(p)
    files = set(z.files)
    if {"x", "y"} <= files:
        xs, ys = [z["x"]], [z["y"]]
    else:
        parts = ["train", "test"] if split == "all" else [split]
        if not all({f"x_{q}", f"y_{q}"} <= files for q in parts):
            raise DataError(
                f"{p} has arrays {sorted(files)}; expected 'x' and 'y' (or x_train/y_train/x_test/y_test)."
            )
        xs = [z[f"x_{q}"] for q in parts]
        ys = [z[f"y_{q}"] for q in parts]
    x = np.concatenate(xs)
    y = np.concatenate(ys)
    if x.shape[0] == 0:
        raise DataError(f"{p} holds no samples.")
    if y.ndim != 1 or not np.issubdtype(y.dtype, np.integer):
        raise DataError(f"{p}: y must be a 1-D integer array of class indices; got {y.dtype} {y.shape}.")
    if x.ndim == 3:
        x = x[:, None]
    elif x.ndim == 4 and x.shape[-1] in (1, 3) and x.shape[1] not in (1, 3):
        x = x.transpose(0, 3, 1, 2)
    norm = UNIT_NORMALIZATION if x.dtype == np.uint8 else IDENTITY_NORMALIZATION
    names_key = "classes" if "classes" in files else "class_names" if "class_names" in files else None
    n_cls = int(y.max()) + 1
    classes = [str(c) for c in z[names_key]] if names_key else [str(i) for i in range(n_cls)]
    return ArrayDataset(
        norm.apply(x),
        torch.from_numpy(y.astype(np.int64)),
        classes=classes,
        normalization=norm,
        name=f"npz:{p}",
    )
