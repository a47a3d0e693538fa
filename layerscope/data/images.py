"""Image loaders: MNIST IDX, CIFAR-10 (python batches or npz), image folders, plain npz."""

from __future__ import annotations

import gzip
import math
import os
import pickle
import warnings
import zipfile
import zlib
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch

from ..exceptions import DataError, UnsupportedFileError
from .base import MAX_CLASSES
from .base import ArrayDataset, Normalization, check_labels

__all__ = [
    "load_mnist", "load_cifar10", "load_imagefolder", "load_npz", "npz_splits", "read_idx", "MNIST_NORMALIZATION",
    "CIFAR10_NORMALIZATION",
]

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
INTEGER_NORMALIZATION = Normalization(scale=1.0, description="integer values as stored, int64 (e.g. token ids)")
UNIT16_NORMALIZATION = Normalization(
    scale=1.0 / 65535.0, description="pixels / 65535 (16-bit depth; 8-bit images scaled by 257 first), in [0, 1]"
)

MAX_IDX_BYTES = 2**30
"""The largest IDX payload read, 1 GiB (MNIST's largest file is 47 MB)."""
MAX_NPZ_BYTES = 2**32
"""The most bytes the arrays of one ``.npz`` may inflate to (4 GiB), checked before any is read."""
MAX_IMAGE_PIXELS = 2**26
"""The most pixels one image may have (8192 x 8192), checked from the header before decoding.

Set here rather than through ``PIL.Image.MAX_IMAGE_PIXELS`` so PIL's global state is left alone."""
MAX_IMAGE_SIDE = 8192
"""The largest height or width accepted for ``imagefolder:PATH@HxW`` resizing."""


def _check_split(split: str) -> None:
    if split not in ("train", "test", "all"):
        raise DataError(f"split must be 'train', 'test' or 'all'; got {split!r}.")


# ------------------------------------------------------------------------------------ MNIST
def read_idx(path: str | os.PathLike[str]) -> np.ndarray:
    """Read an IDX file (gzip-compressed or raw) into a NumPy array.

    The header is read first and the payload only up to the size it announces (at most
    :data:`MAX_IDX_BYTES`), so neither a lying header nor a gzip bomb is inflated into memory.
    Raises :class:`DataError` for a missing, truncated, padded, malformed or corrupt file.
    """
    p = Path(path)
    if not p.exists():
        raise DataError(f"IDX file {p} does not exist.")
    try:
        with open(p, "rb") as fh:
            head = fh.read(2)
        opener = gzip.open if head == b"\x1f\x8b" else open
        with opener(p, "rb") as fh:
            magic = fh.read(4)
            if len(magic) < 4 or magic[0] != 0 or magic[1] != 0 or magic[2] != 0x08:
                raise DataError(
                    f"{p} is not an unsigned-byte IDX file: expected a magic number 0x0000 08 ND, "
                    f"got {magic.hex() or 'nothing'}."
                )
            nd = magic[3]
            header = fh.read(4 * nd)
            if nd == 0 or len(header) < 4 * nd:
                raise DataError(f"{p}: the IDX header announces {nd} dimensions but the file ends inside the header.")
            dims = tuple(int(d) for d in np.frombuffer(header, ">u4"))
            want = math.prod(dims)  # a Python int: no overflow for lying headers
            if want > MAX_IDX_BYTES:
                raise DataError(
                    f"{p} is truncated or padded: header says {dims} = {want} values, more than the "
                    f"{MAX_IDX_BYTES} bytes an IDX file may hold here."
                )
            raw = fh.read(want + 1)
    except DataError:
        raise
    except (OSError, EOFError, zlib.error) as err:
        raise DataError(f"{p} is not a readable IDX file (corrupt or truncated gzip): {err}") from err
    if len(raw) != want:
        raise DataError(
            f"{p} is truncated or padded: header says {dims} = {want} values, file holds "
            f"{'more' if len(raw) > want else len(raw)}."
        )
    return np.frombuffer(raw, np.uint8).reshape(dims)


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
        ys.append(check_labels(y, str(_find_idx(r, f"{prefix}-labels-idx1")), n_classes=10))
    x = np.concatenate(xs)[:, None]
    y = np.concatenate(ys)
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
    except DataError:
        raise
    except Exception as err:  # only allowed classes are built: any failure is a malformed file
        raise DataError(f"{path} is not a readable CIFAR-10 python batch (corrupt?): {err}") from err
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
                lacking = [k for k in ("data", "labels") if k not in d]
                if lacking:
                    raise DataError(
                        f"{f} is not a CIFAR-10 python batch: it lacks {lacking} (it has {sorted(map(str, d))[:8]})."
                    )
                try:
                    data = np.asarray(d["data"])
                    labels = np.asarray(d["labels"])
                except (ValueError, TypeError) as err:
                    raise DataError(f"{f}: 'data'/'labels' are not arrays: {err}") from err
                if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3072:
                    raise DataError(
                        f"{f}: 'data' should be (N, 3072) uint8 (32x32 RGB rows); got {data.dtype} {data.shape}."
                    )
                if labels.shape != (data.shape[0],):
                    raise DataError(f"{f}: {data.shape[0]} images but labels of shape {labels.shape}.")
                xs.append(data.reshape(-1, 3, 32, 32))
                ys.append(check_labels(labels, str(f), n_classes=len(classes)))
    elif p.suffix == ".npz":
        z = _open_npz(p)
        if "class_names" in z.files:
            names_arr = _npz_array(z, p, "class_names")
            if names_arr.ndim != 1 or not 0 < len(names_arr) <= MAX_CLASSES:
                raise DataError(f"{p}: class_names should be a 1-D array of 1..{MAX_CLASSES} names; got {names_arr.shape}.")
            classes = [str(c) for c in names_arr]
        for part in parts:
            kx, ky = f"x_{part}", f"y_{part}"
            if kx not in z.files or ky not in z.files:
                raise DataError(f"{p} has no {kx}/{ky} arrays (it has {z.files}).")
            x = _npz_array(z, p, kx)
            if x.ndim != 4 or x.dtype != np.uint8 or not (x.shape[1:] == (32, 32, 3) or x.shape[1:] == (3, 32, 32)):
                raise DataError(f"{p}:{kx} should be uint8 (N, 32, 32, 3) or (N, 3, 32, 32); got {x.dtype} {x.shape}.")
            y = check_labels(_npz_array(z, p, ky), f"{p}:{ky}", n_classes=len(classes))
            if len(y) != len(x):
                raise DataError(f"{p}: {kx} has {len(x)} images but {ky} has {len(y)} labels.")
            xs.append(x.transpose(0, 3, 1, 2) if x.shape[-1] == 3 else x)
            ys.append(y)
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


_SIXTEEN_BIT = ("I;16", "I;16B", "I;16L", "I;16N", "I")
_GRAY = ("L", "1") + _SIXTEEN_BIT


def _open_image(f: Path) -> Any:
    """Open and decode one image, refusing bombs from the header before any pixel is decoded."""
    from PIL import Image

    try:
        with warnings.catch_warnings(record=True):  # PIL's own bomb warning: our limit below decides
            im = Image.open(f)
        with im:
            w, h = im.size
            if w < 1 or h < 1 or w * h > MAX_IMAGE_PIXELS:
                raise DataError(
                    f"{f} claims {w}x{h} pixels; images of 1 to {MAX_IMAGE_PIXELS} pixels are read "
                    "(a larger one is most likely a decompression bomb). Shrink it first."
                )
            im.load()
            return im.copy()
    except DataError:
        raise
    except Image.DecompressionBombError as err:
        raise DataError(f"{f} is refused as a decompression bomb: {err}") from err
    except Exception as err:  # PIL raises OSError, SyntaxError, ValueError, struct/zlib errors... on bad files
        raise DataError(f"{f} is not a readable image (corrupt?): {type(err).__name__}: {err}") from err


def _image_array(image: Any, mode: str, size: tuple[int, int] | None, sixteen: bool, f: Path) -> np.ndarray:
    """One image as ``(H, W)`` or ``(H, W, 3)``: uint8 pixels, or uint16 (16-bit scale) when ``sixteen``."""
    from PIL import Image

    if image.mode == "F":
        raise DataError(f"{f} holds floating-point pixels (mode F); save it as an 8- or 16-bit image.")
    if image.mode not in _SIXTEEN_BIT:
        converted = image.convert(mode)
        if size is not None:
            converted = converted.resize((size[1], size[0]))
        a8 = np.asarray(converted)
        return a8.astype(np.uint16) * np.uint16(257) if sixteen else a8  # 255 * 257 = 65535
    a = np.asarray(image.convert("I"), dtype=np.int64)
    if a.size and (a.min() < 0 or a.max() > 65535):
        raise DataError(
            f"{f}: 32-bit integer pixels outside 0..65535 ({a.min()}..{a.max()}); only 8- and 16-bit depths are read."
        )
    v = a.astype(np.float32)
    if size is not None:
        v = np.asarray(Image.fromarray(v, mode="F").resize((size[1], size[0])))
    a16 = np.clip(np.rint(v), 0, 65535).astype(np.uint16)
    return np.repeat(a16[..., None], 3, axis=2) if mode == "RGB" else a16


def load_imagefolder(
    path: str | os.PathLike[str],
    size: tuple[int, int] | None = None,
    mode: Literal["auto", "L", "RGB"] = "auto",
) -> ArrayDataset:
    """Images in ``path/<class>/<file>``; class names are the sorted sub-folder names.

    All images must share one size unless ``size=(H, W)`` is given (then they are resized).
    ``mode='auto'`` keeps grayscale if every image is grayscale, else converts to RGB.
    Inputs are ``(N, C, H, W)`` in ``[0, 1]``: 8-bit pixels / 255; if any image has 16-bit depth
    (PIL modes ``I;16``, ``I``) every pixel is scaled by its real range: 16-bit / 65535, 8-bit / 255
    (as ``* 257 / 65535``), so a 16-bit value of 30000 gives 0.4578. Images larger than
    :data:`MAX_IMAGE_PIXELS` are refused from their header, before decoding.
    """
    root = Path(path)
    if not root.is_dir():
        raise DataError(f"Image folder {root} does not exist or is not a folder.")
    if size is not None:
        h, w = size
        if not (1 <= int(h) <= MAX_IMAGE_SIDE and 1 <= int(w) <= MAX_IMAGE_SIDE):
            raise DataError(
                f"Image size {h}x{w} for {root} is outside 1..{MAX_IMAGE_SIDE} pixels per side; "
                "give e.g. imagefolder:PATH@32x32."
            )
        size = (int(h), int(w))
    class_dirs = sorted(d for d in root.iterdir() if d.is_dir() and not d.name.startswith("."))
    if not class_dirs:
        raise DataError(f"{root} has no sub-folders; expected one sub-folder of images per class.")
    if len(class_dirs) > MAX_CLASSES:
        raise DataError(f"{root} has {len(class_dirs)} class folders; at most {MAX_CLASSES} are supported.")
    files: list[tuple[Path, int]] = []
    for ci, d in enumerate(class_dirs):
        files += [(f, ci) for f in sorted(d.rglob("*")) if f.suffix.lower() in IMAGE_SUFFIXES and f.is_file()]
    if not files:
        raise DataError(f"{root} holds no images ({', '.join(sorted(IMAGE_SUFFIXES))}) in its class folders.")
    images = [_open_image(f) for f, _ in files]
    if mode == "auto":
        mode = "L" if all(im.mode in _GRAY for im in images) else "RGB"
    sixteen = any(im.mode in _SIXTEEN_BIT for im in images)
    arrays = [_image_array(im, mode, size, sixteen, f) for im, (f, _) in zip(images, files)]
    shapes = {a.shape for a in arrays}
    if len(shapes) > 1:
        raise DataError(
            f"Images in {root} have different sizes {sorted(shapes)[:4]}; pass size=(H, W) "
            "(CLI: imagefolder:PATH@HxW) to resize them."
        )
    x = np.stack(arrays)
    x = x[:, None] if x.ndim == 3 else x.transpose(0, 3, 1, 2)
    y = np.array([c for _, c in files], dtype=np.int64)
    norm = UNIT16_NORMALIZATION if sixteen else UNIT_NORMALIZATION
    return ArrayDataset(
        norm.apply(x),
        torch.from_numpy(y),
        classes=[d.name for d in class_dirs],
        normalization=norm,
        name=f"imagefolder:{root}",
    )


# -------------------------------------------------------------------------------------- npz
def _open_npz(p: Path) -> Any:
    if not p.exists():
        raise DataError(f"{p} does not exist.")
    try:
        with open(p, "rb") as fh:
            magic = fh.read(6)
    except OSError as err:
        raise DataError(f"{p} cannot be read: {err}") from err
    if magic.startswith(b"\x93NUMPY"):
        raise DataError(f"{p} holds a single .npy array, not an .npz archive of named arrays (x, y, ...).")
    if not magic.startswith((b"PK\x03\x04", b"PK\x05\x06")):
        # np.load would try to unpickle it (and suggest allow_pickle): it is never done here
        raise DataError(f"{p} is not a readable .npz file (corrupt: not a zip archive of arrays); save it with numpy.savez.")
    try:
        with zipfile.ZipFile(p) as zf:
            total = sum(i.file_size for i in zf.infolist())
    except (zipfile.BadZipFile, OSError, EOFError, ValueError) as err:
        raise DataError(f"{p} is not a readable .npz file (corrupt): {err}") from err
    if total > MAX_NPZ_BYTES:
        raise DataError(
            f"{p} inflates to {total} bytes, more than the {MAX_NPZ_BYTES} read here (a zip bomb, or data "
            "too large to hold in memory); split it or pass a subset."
        )
    try:
        z = np.load(p, allow_pickle=False)
    except Exception as err:  # np.load raises OSError, ValueError, BadZipFile, EOFError... on bad files
        raise DataError(f"{p} is not a readable .npz file (corrupt): {err}") from err
    if not hasattr(z, "files"):
        raise DataError(f"{p} holds a single array, not an .npz archive of named arrays (x, y, ...).")
    return z


def _npz_array(z: Any, p: Path, key: str) -> np.ndarray:
    """One array of an opened ``.npz`` (never unpickled), as a :class:`DataError` naming it if unreadable."""
    try:
        return np.asarray(z[key])
    except Exception as err:  # object arrays (pickle refused), CRC errors, truncated members...
        raise DataError(
            f"{p}: array {key!r} cannot be read ({err}); object arrays need pickle, which is refused, "
            "so store numbers (and class names as a string array)."
        ) from err


def npz_splits(path: str | None) -> tuple[str, ...]:
    """The splits an ``.npz`` holds: ``('all',)`` for plain ``x``/``y``, else those with ``x_``/``y_`` pairs."""
    if path is None:
        return ()
    z = _open_npz(Path(path))
    files = set(z.files)
    if {"x", "y"} <= files:
        return ("all",)
    parts = tuple(q for q in ("train", "test") if {f"x_{q}", f"y_{q}"} <= files)
    return parts + ("all",) if len(parts) == 2 else parts


def load_npz(path: str | os.PathLike[str], split: Split = "all") -> ArrayDataset:
    """Arrays from an ``.npz``: ``x``/``y`` (or ``x_train``/``y_train``/``x_test``/``y_test``).

    ``x`` may be ``(N, D)`` vectors, ``(N, H, W)`` gray images, ``(N, H, W, C)`` or ``(N, C, H, W)``
    images (C in 1, 3), or any ``(N, ...)`` array. dtypes: uint8 is read as pixels and divided by
    255 (float32 in [0, 1]); other integer dtypes are kept as integers (int64, e.g. token ids);
    floats become float32 as stored. Strings, objects, booleans and complex numbers are refused.
    ``y`` must hold integer class indices in ``[0, n_classes)``; optional ``classes`` (or
    ``class_names``) array names them (else ``n_classes = max(y) + 1``, at most
    :data:`~layerscope.data.base.MAX_CLASSES`). The file is never unpickled.
    """
    p = Path(path)
    _check_split(split)
    z = _open_npz(p)
    files = set(z.files)
    if {"x", "y"} <= files:
        if split != "all":
            raise DataError(f"{p} holds plain x/y arrays, not a {split!r} split; use npz:{p} (or store x_{split}/y_{split}).")
        keys = [("x", "y")]
    else:
        parts = ["train", "test"] if split == "all" else [split]
        if not all({f"x_{q}", f"y_{q}"} <= files for q in parts):
            raise DataError(
                f"{p} has arrays {sorted(files)}; expected 'x' and 'y' (or x_train/y_train/x_test/y_test)."
            )
        keys = [(f"x_{q}", f"y_{q}") for q in parts]
    xs, ys = [], []
    for kx, ky in keys:
        x = _npz_array(z, p, kx)
        if x.dtype.kind not in "uif":
            raise DataError(
                f"{p}: {kx} has dtype {x.dtype}; inputs must be numbers (uint8 pixels, integers such as token "
                "ids, or floats)."
            )
        if x.ndim < 2:
            raise DataError(f"{p}: {kx} should be (N, ...) with one row per sample; got shape {x.shape}.")
        y = check_labels(_npz_array(z, p, ky), f"{p}:{ky}")
        if len(y) != len(x):
            raise DataError(f"{p}: {kx} has {len(x)} rows but {ky} has {len(y)} labels; they must match.")
        xs.append(x)
        ys.append(y)
    if len({(a.shape[1:], a.dtype) for a in xs}) > 1:
        raise DataError(f"{p}: {' and '.join(k for k, _ in keys)} differ in shape or dtype; they cannot be joined.")
    x = np.concatenate(xs)
    y = np.concatenate(ys)
    if x.shape[0] == 0:
        raise DataError(f"{p} holds no samples.")
    image_like = x.dtype == np.uint8 or x.dtype.kind == "f"  # other integers (token ids) keep their layout
    if image_like and x.ndim == 3:
        x = x[:, None]
    elif image_like and x.ndim == 4 and x.shape[-1] in (1, 3) and x.shape[1] not in (1, 3):
        x = x.transpose(0, 3, 1, 2)
    names_key = "classes" if "classes" in files else "class_names" if "class_names" in files else None
    if names_key:
        names = _npz_array(z, p, names_key)
        if names.ndim != 1 or not 0 < len(names) <= MAX_CLASSES:
            raise DataError(f"{p}: {names_key} should be a 1-D array of 1..{MAX_CLASSES} names; got shape {names.shape}.")
        classes = [str(c) for c in names]
        check_labels(y, f"{p}:y", n_classes=len(classes))
    else:
        classes = [str(i) for i in range(int(y.max()) + 1)]
    if x.dtype == np.uint8:
        norm, xt = UNIT_NORMALIZATION, UNIT_NORMALIZATION.apply(x)
    elif x.dtype.kind in "ui":
        if x.dtype == np.uint64 and x.size and int(x.max()) > np.iinfo(np.int64).max:
            raise DataError(f"{p}: uint64 values above 2**63 - 1 do not fit int64.")
        norm, xt = INTEGER_NORMALIZATION, torch.from_numpy(np.ascontiguousarray(x, dtype=np.int64))
    else:
        norm, xt = IDENTITY_NORMALIZATION, IDENTITY_NORMALIZATION.apply(x)
    return ArrayDataset(xt, torch.from_numpy(y), classes=classes, normalization=norm, name=f"npz:{p}")
