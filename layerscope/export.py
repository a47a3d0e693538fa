"""Export result folders to TensorBoard's Embedding Projector format.

:func:`export_tensorboard` reads one result folder and writes, into a new folder ``OUT``::

    projector_config.pbtxt        # one ``embeddings { ... }`` block per layer (x checkpoint)
    layerscope-export.json        # what was exported, from where, and every decision taken
    sprite_<k>.png                # image data only: the observations' images, tiled
    <embedding>/tensors.tsv       # one row per point, tab-separated float32 values
    <embedding>/metadata.tsv      # a header line, then one row per point: the label columns

Which results, and what is exported of each:

* ``projection`` (``layerscope project``): the 2-D coordinates of every layer at every
  checkpoint; columns ``sample_id``, ``label``, ``prediction``, ``correct`` (class names where the
  result names its classes). TensorBoard then re-projects them (PCA/t-SNE/UMAP of 2-D points
  reproduces them up to rotation); the point of exporting is the linked label search and the
  sprite thumbnails.
* ``capture`` (``layerscope capture``): each layer's activations, flattened per sample
  (``(N, C, H, W)`` -> ``(N, C*H*W)``), so TensorBoard computes its own projections;
  columns ``sample_id``, ``label``, ``prediction``, ``correct``, and every extra label (e.g.
  ``speaker``).
* ``speech`` (``layerscope speech analyze``): the 2-D coordinates of every layer; columns
  ``sample_id``, ``digit``, ``speaker``, ``predicted``, ``utterance``, ``frame``.
* ``speaker_embeddings`` (``layerscope speech embed``): the 2-D PCA of the best layer's
  recording embeddings; columns ``speaker``, ``cluster``, ``utterance``, ``digit``.
* ``neurons`` (``layerscope neurons``): one point per neuron; columns ``neuron`` and the
  importance of the neuron for each class.

Decisions (also written to ``layerscope-export.json``):

* Tensors are written as TSV with 9 significant digits, which round-trips float32 exactly. The
  binary ``.bytes`` form is not used: TensorBoard's server tries to read every tensor file as
  text first, so a binary file that happens to be valid UTF-8 (an all-zero layer) is misread.
* A label outside the result's class list (``-1``: unlabelled) is written as the number.
  Tabs and line breaks in labels are replaced by spaces (they would break the TSV).
* Sprites (thumbnails) are written only for image data (MNIST, CIFAR-10, image folders, npz
  images), read from the data spec the result names -- only when that spec is bundled data
  (no path), unless ``data=`` names the data explicitly or ``allow_external_data`` is set, as for
  the report. The sprite is a square grid of ``ceil(sqrt(N))`` x ``ceil(sqrt(N))`` tiles in point
  order (row-major, empty tiles black); tiles are shrunk (Pillow's Lanczos filter) when the grid
  would exceed TensorBoard's 8192 x 8192 pixel limit.
* A capture of more than :data:`MAX_VALUES` values per layer is refused (the TSV would be
  several GB): capture fewer samples, reduce conv maps (``--reduce mean``) or pass ``layers=``.
"""

from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from .exceptions import DataError, ParameterError

__all__ = ["export_tensorboard", "sprite_image", "ProjectorExport", "ProjectorEmbedding", "MAX_VALUES",
           "SPRITE_MAX_PIXELS", "EXPORTABLE", "DECISIONS"]

#: the most values (rows x columns) one exported tensor may have
MAX_VALUES = 20_000_000
#: TensorBoard's limit on a sprite image's width and height
SPRITE_MAX_PIXELS = 8192
#: result kinds (``analysis`` of result.json) that :func:`export_tensorboard` reads
EXPORTABLE = ("projection", "capture", "speech", "speaker_embeddings", "neurons")
#: the file that marks an export folder (so that a second export may replace it)
EXPORT_FILE = "layerscope-export.json"
_IMAGE_KINDS = ("mnist", "cifar10", "imagefolder", "npz")
#: what every export decides the same way (written to layerscope-export.json)
DECISIONS = (
    "tensors as TSV with 9 significant digits (float32 round-trips exactly); no binary .bytes",
    "labels outside the class list (-1: unlabelled) written as numbers; tabs and line breaks in labels as spaces",
    "capture layers flattened per sample: (N, C, H, W) -> (N, C*H*W)",
    "sprite: ceil(sqrt(N)) x ceil(sqrt(N)) tiles in point order, row by row, within 8192 x 8192 pixels",
)


@dataclass(frozen=True)
class ProjectorEmbedding:
    """One embedding of the written projector config.

    Attributes
    ----------
    name : str
        ``tensor_name`` in the config (e.g. ``"relu2 @ epoch 5"``).
    tensor_path, metadata_path : str
        Paths relative to the export folder.
    shape : tuple of int
        ``(points, dimensions)``.
    columns : list of str
        Metadata column names, in order.
    sprite_path : str or None
        The sprite image (relative path), for image data.
    image_size : tuple of int or None
        ``(width, height)`` of one sprite tile.
    """

    name: str
    tensor_path: str
    metadata_path: str
    shape: tuple[int, int]
    columns: list[str]
    sprite_path: str | None = None
    image_size: tuple[int, int] | None = None


@dataclass(frozen=True)
class ProjectorExport:
    """What :func:`export_tensorboard` wrote.

    Attributes
    ----------
    out : Path
        The export folder (``tensorboard --logdir OUT`` shows it under "Projector").
    source : Path
        The result folder that was read.
    analysis : str
        Its kind (``projection``, ``capture``, ...).
    embeddings : list of ProjectorEmbedding
    notes : list of str
        What this input made the export decide (e.g. why no sprite was written); the decisions
        every export takes are :data:`DECISIONS`.
    """

    out: Path
    source: Path
    analysis: str
    embeddings: list[ProjectorEmbedding]
    notes: list[str] = field(default_factory=list)

    @property
    def config_path(self) -> Path:
        return self.out / "projector_config.pbtxt"

    def __repr__(self) -> str:
        return (f"ProjectorExport({self.analysis}, {len(self.embeddings)} embeddings, "
                f"sprite={'yes' if any(e.sprite_path for e in self.embeddings) else 'no'}, out={str(self.out)!r})")


@dataclass
class _Table:
    name: str
    matrix: np.ndarray  # (n, d) float32
    columns: dict[str, list[str]]
    sample_ids: np.ndarray | None = None  # dataset sample ids, for sprites


def _names(values: Sequence[Any], names: Sequence[Any] | None) -> list[str]:
    """Class indices as names where ``names`` has them; anything else (``-1``, ``None``) as text."""
    out = []
    for v in values:
        if names is not None and isinstance(v, (int, np.integer)) and 0 <= int(v) < len(names):
            out.append(str(names[int(v)]))
        else:
            out.append("" if v is None else str(v))
    return out


def _xy(d: dict[str, Any], what: str) -> np.ndarray:
    try:
        x = np.asarray(d["x"], dtype=np.float64)
        y = np.asarray(d["y"], dtype=np.float64)
    except (KeyError, TypeError, ValueError) as err:
        raise DataError(f"{what} has no numeric x/y coordinates ({err}); the result folder is damaged.") from err
    if x.ndim != 1 or x.shape != y.shape:
        raise DataError(f"{what}: x has {x.size} values and y {y.size}; expected one each per point.")
    return np.column_stack([x, y]).astype(np.float32)


def _check_rows(what: str, n: int, columns: dict[str, list[str]]) -> None:
    bad = {k: len(v) for k, v in columns.items() if len(v) != n}
    if bad:
        raise DataError(f"{what}: {n} points but label columns of other lengths {bad}; the result folder is damaged.")


def _correct(labels: Sequence[Any], preds: Sequence[Any]) -> list[str]:
    return ["" if (lab is None or p is None or int(lab) < 0) else ("yes" if int(lab) == int(p) else "no")
            for lab, p in zip(labels, preds)]


def _from_projection(doc: dict[str, Any]) -> list[_Table]:
    classes = doc.get("classes")
    tables = []
    for i, q in enumerate(doc.get("projections") or []):
        layer, cp = q.get("layer"), q.get("checkpoint")
        name = f"{layer}" if cp is None else f"{layer} @ epoch {cp}"
        m = _xy(q, f"projection {name}")
        labels = list(q.get("labels") or [])
        ids = list(q.get("sample_ids") or range(len(m)))
        cols = {"sample_id": [str(s) for s in ids], "label": _names(labels, classes)}
        preds = q.get("predictions")
        if preds is not None:
            cols["prediction"] = _names(preds, classes)
            cols["correct"] = _correct(labels, preds)
        _check_rows(f"projection {name}", len(m), cols)
        tables.append(_Table(name, m, cols, np.asarray(ids, dtype=np.int64)))
    return tables


def _from_speech(doc: dict[str, Any]) -> list[_Table]:
    p = doc.get("points")
    if not isinstance(p, dict) or not isinstance(p.get("layers"), dict):
        raise DataError("this speech result holds no points (written by an older layerscope?); re-run speech analyze.")
    speakers, classes = p.get("speaker_names"), p.get("classes")
    cols: dict[str, list[str]] = {}
    if p.get("sample_ids") is not None:
        cols["sample_id"] = [str(s) for s in p["sample_ids"]]
    cols["digit"] = _names(p.get("digit") or [], classes)
    cols["speaker"] = _names(p.get("speaker") or [], speakers)
    for key in ("predicted", "utterance", "frame"):
        if p.get(key) is not None:
            cols[key] = _names(p[key], classes if key == "predicted" else None)
    tables = []
    for layer, xy in p["layers"].items():
        m = _xy(xy, f"speech layer {layer}")
        _check_rows(f"speech layer {layer}", len(m), cols)
        tables.append(_Table(str(layer), m, cols))
    return tables


def _from_embeddings(doc: dict[str, Any]) -> list[_Table]:
    p = doc.get("points")
    if not isinstance(p, dict):
        raise DataError("this speaker-embedding result holds no points; re-run speech embed.")
    name = f"{p.get('layer')} speaker embeddings (2-D PCA)"
    m = _xy(p, name)
    cols = {"speaker": _names(p.get("speaker") or [], p.get("speaker_names")),
            "cluster": _names(p.get("cluster") or [], None),
            "utterance": _names(p.get("utterance") or [], None),
            "digit": _names(p.get("digit") or [], None)}
    _check_rows(name, len(m), cols)
    return [_Table(name, m, cols)]


def _from_neurons(doc: dict[str, Any]) -> list[_Table]:
    p = doc.get("neurons")
    if not isinstance(p, dict):
        raise DataError("this neurons result holds no neuron coordinates; re-run layerscope neurons.")
    name = f"{doc.get('layer')} neurons"
    m = _xy(p, name)
    cols = {"neuron": _names(p.get("index") or [], None)}
    for cls, vals in (p.get("importances") or {}).items():
        cols[f"importance {cls}"] = [f"{float(v):.4g}" for v in vals]
    _check_rows(name, len(m), cols)
    return [_Table(name, m, cols)]


def _from_capture(folder: Path, layers: Sequence[str] | None) -> list[_Table]:
    from .capture import Activations

    acts = Activations.load(folder, mmap=True)
    names = list(acts.arrays)
    if layers is not None:
        unknown = [x for x in layers if x not in acts.arrays]
        if unknown:
            raise ParameterError(f"layers {unknown} are not in this capture; it holds {names}.")
        names = list(layers)
    labels = acts.labels.tolist()
    cols: dict[str, list[str]] = {"sample_id": [str(s) for s in acts.sample_ids.tolist()], "label": _names(labels, None)}
    if acts.predictions is not None:
        cols["prediction"] = _names(acts.predictions.tolist(), None)
        cols["correct"] = _correct(labels, acts.predictions.tolist())
    for key, vals in acts.extra_labels.items():
        cols[str(key)] = _names(np.asarray(vals).tolist(), None)
    tables = []
    for name in names:
        arr = acts.arrays[name]
        n, d = len(arr), int(np.prod(arr.shape[1:], dtype=np.int64)) if arr.ndim > 1 else 1
        if n * d > MAX_VALUES:
            raise ParameterError(
                f"layer {name} holds {n} x {d} = {n * d:,} values, more than the {MAX_VALUES:,} an export writes "
                "(the TSV would take GBs); capture fewer samples (--limit), reduce conv maps (--reduce mean) or "
                "export other layers (--layers)."
            )
        m = np.asarray(arr, dtype=np.float32).reshape(n, d)
        if not np.all(np.isfinite(m)):
            raise DataError(f"layer {name} holds NaN or infinite activations; TensorBoard cannot project them.")
        tables.append(_Table(name, m, cols, acts.sample_ids.astype(np.int64)))
    return tables


def _clean(value: str) -> str:
    return re.sub(r"[\t\r\n]+", " ", value)


def _pbtxt_string(value: str) -> str:
    """A protobuf text-format string literal (hand-written: quotes, backslashes and control
    characters escaped; UTF-8 kept, which text_format reads)."""
    out = []
    for ch in value:
        if ch in ('"', "\\"):
            out.append("\\" + ch)
        elif ch == "\n":
            out.append("\\n")
        elif ord(ch) < 0x20 or ord(ch) == 0x7F:
            out.append(f"\\{ord(ch):03o}")
        else:
            out.append(ch)
    return '"' + "".join(out) + '"'


def _safe_dir(name: str, used: set[str]) -> str:
    base = re.sub(r"[^0-9A-Za-z._-]+", "_", name).strip("._") or "embedding"
    cand, k = base, 1
    while cand in used:
        k += 1
        cand = f"{base}_{k}"
    used.add(cand)
    return cand


def _data_allowed(spec: str) -> bool:
    """A bundled dataset (no path in the spec): read without asking."""
    from .data import parse_data_spec

    try:
        return parse_data_spec(spec)[1] is None
    except DataError:
        return False


def _images(spec: str, sample_ids: np.ndarray) -> tuple[np.ndarray | None, str]:
    """Display images ``(n, H, W)`` or ``(n, H, W, 3)`` in [0, 1] for ``sample_ids`` of ``spec``, or
    None and why not."""
    from .data import ArrayDataset, load_dataset

    if spec.partition(":")[0].strip().lower() not in _IMAGE_KINDS:
        return None, f"no sprite: {spec!r} is not image data"
    ds = load_dataset(spec)
    if not isinstance(ds, ArrayDataset) or ds.x.ndim != 4 or ds.x.shape[1] not in (1, 3):
        return None, f"no sprite: {spec!r} does not load as (N, 1 or 3, H, W) images"
    pos = {int(s): k for k, s in enumerate(np.asarray(ds.sample_ids).tolist())}
    missing = [int(s) for s in sample_ids if int(s) not in pos]
    if missing:
        return None, (f"no sprite: {len(missing)} sample ids (e.g. {missing[:3]}) are not in {spec!r}; "
                      "is it the data the result was computed on?")
    rows = np.asarray([pos[int(s)] for s in sample_ids], dtype=np.int64)
    a = np.clip(np.asarray(ds.normalization.denormalize(ds.x[rows]), dtype=np.float64), 0.0, 1.0)
    return (a[:, 0] if a.shape[1] == 1 else np.transpose(a, (0, 2, 3, 1))), ""


def sprite_image(images: np.ndarray) -> tuple[Any, tuple[int, int], int]:
    """Tile ``images`` (``(n, H, W)`` or ``(n, H, W, 3)`` in [0, 1]) into TensorBoard's sprite layout.

    Returns
    -------
    (PIL.Image.Image, (tile_width, tile_height), n_cols)
        A square grid of ``n_cols = ceil(sqrt(n))`` tiles per side, images in order row by row,
        the rest black; tiles shrunk (Pillow's Lanczos) so the sprite stays within
        :data:`SPRITE_MAX_PIXELS` per side.
    """
    from PIL import Image

    n = len(images)
    if n == 0:
        raise ParameterError("a sprite needs at least one image.")
    h, w = images.shape[1], images.shape[2]
    cols = math.ceil(math.sqrt(n))
    scale = min(1.0, SPRITE_MAX_PIXELS / (cols * max(h, w)))
    tw, th = max(1, int(w * scale)), max(1, int(h * scale))
    mode = "RGB" if images.ndim == 4 else "L"
    sheet = Image.new(mode, (cols * tw, cols * th))
    u8 = np.round(np.asarray(images) * 255.0).astype(np.uint8)
    for i in range(n):
        tile = Image.fromarray(u8[i], mode=mode)
        if (tw, th) != (w, h):
            tile = tile.resize((tw, th), Image.Resampling.LANCZOS)
        sheet.paste(tile, ((i % cols) * tw, (i // cols) * th))
    return sheet, (tw, th), cols


def export_tensorboard(
    result_dir: str | os.PathLike[str],
    out: str | os.PathLike[str],
    *,
    layers: Sequence[str] | None = None,
    data: str | None = None,
    sprites: bool = True,
    allow_external_data: bool = False,
) -> ProjectorExport:
    """Write a result folder's embeddings in TensorBoard's Embedding Projector format.

    Parameters
    ----------
    result_dir
        A folder written by ``layerscope project``, ``capture``, ``speech analyze``,
        ``speech embed`` or ``neurons`` (see the module docstring for what each gives).
    out
        The export folder; a new folder, or one written by an earlier export (replaced whole).
        View it with ``tensorboard --logdir OUT`` (tab "Projector").
    layers
        Only these layers (names as in the result); default all.
    data
        Data spec to read sprite images from, instead of the one the result names.
    sprites
        Write sprite images for image data (default).
    allow_external_data
        Read sprite images also from a path the result names (default: bundled data only).

    Returns
    -------
    ProjectorExport

    Raises
    ------
    DataError
        Not a result folder, a result kind that holds no embeddings, or a damaged folder.
    ParameterError
        Unknown ``layers``, or a capture layer too large to export (:data:`MAX_VALUES`).
    """
    from ._io import result_folder, write_json
    from .results import read_result

    src = Path(result_dir)
    doc = read_result(src)
    kind = str(doc["analysis"])
    if kind == "capture":
        tables = _from_capture(src, layers)
    elif kind in EXPORTABLE:
        tables = {"projection": _from_projection, "speech": _from_speech, "speaker_embeddings": _from_embeddings,
                  "neurons": _from_neurons}[kind](doc)
        if layers is not None:
            keep = [t for t in tables if t.name.split(" ")[0] in set(layers)]
            unknown = sorted(set(layers) - {t.name.split(" ")[0] for t in tables})
            if unknown:
                raise ParameterError(f"layers {unknown} are not in this {kind} result; it holds "
                                     f"{sorted({t.name.split(' ')[0] for t in tables})}.")
            tables = keep
    else:
        raise DataError(f"{src} holds a {kind!r} result, which has no per-point embeddings to export; "
                        f"export one of: {', '.join(EXPORTABLE)}.")
    if not tables:
        raise DataError(f"{src} holds no embeddings to export (an empty {kind} result).")

    notes: list[str] = []
    spec = data if data is not None else doc.get("data")
    want_sprite = sprites and any(t.sample_ids is not None for t in tables)
    if want_sprite and not isinstance(spec, str):
        notes.append("no sprite: the result names no data spec (pass data=)")
        want_sprite = False
    elif want_sprite and data is None and not allow_external_data and not _data_allowed(str(spec)):
        notes.append(f"no sprite: {spec!r} names data by path; pass data={spec!r} or allow_external_data=True "
                     "to read it")
        want_sprite = False

    embeddings: list[ProjectorEmbedding] = []
    with result_folder(Path(out)) as d:
        used: set[str] = set()
        sprite_of: dict[bytes, tuple[str, tuple[int, int]] | None] = {}
        blocks = []
        for t in tables:
            sub = _safe_dir(t.name, used)
            (d / sub).mkdir()
            with open(d / sub / "tensors.tsv", "w", encoding="utf-8", newline="\n") as fh:
                np.savetxt(fh, t.matrix, fmt="%.9g", delimiter="\t")
            names = list(t.columns)
            with open(d / sub / "metadata.tsv", "w", encoding="utf-8", newline="\n") as fh:
                fh.write("\t".join(_clean(c) for c in names) + "\n")
                for row in zip(*(t.columns[c] for c in names)):
                    fh.write("\t".join(_clean(v) for v in row) + "\n")
            sprite: tuple[str, tuple[int, int]] | None = None
            if want_sprite and t.sample_ids is not None:
                key = t.sample_ids.tobytes()
                if key not in sprite_of:
                    imgs, why = _images(str(spec), t.sample_ids)
                    if imgs is None:
                        notes.append(why)
                        sprite_of[key] = None
                    else:
                        sheet, tile, _ = sprite_image(imgs)
                        path = f"sprite_{len([v for v in sprite_of.values() if v is not None])}.png"
                        sheet.save(d / path, format="PNG")
                        sprite_of[key] = (path, tile)
                sprite = sprite_of[key]
            lines = ["embeddings {",
                     f"  tensor_name: {_pbtxt_string(t.name)}",
                     f"  tensor_path: {_pbtxt_string(f'{sub}/tensors.tsv')}",
                     f"  tensor_shape: {t.matrix.shape[0]}",
                     f"  tensor_shape: {t.matrix.shape[1]}",
                     f"  metadata_path: {_pbtxt_string(f'{sub}/metadata.tsv')}"]
            if sprite is not None:
                lines += ["  sprite {",
                          f"    image_path: {_pbtxt_string(sprite[0])}",
                          f"    single_image_dim: {sprite[1][0]}",
                          f"    single_image_dim: {sprite[1][1]}",
                          "  }"]
            blocks.append("\n".join(lines + ["}"]))
            embeddings.append(ProjectorEmbedding(
                name=t.name, tensor_path=f"{sub}/tensors.tsv", metadata_path=f"{sub}/metadata.tsv",
                shape=(int(t.matrix.shape[0]), int(t.matrix.shape[1])), columns=names,
                sprite_path=None if sprite is None else sprite[0], image_size=None if sprite is None else sprite[1]))
        (d / "projector_config.pbtxt").write_text("\n".join(blocks) + "\n", encoding="utf-8")
        write_json(d / EXPORT_FILE, {
            "format": "tensorboard-projector", "source": str(src), "analysis": kind, "data": spec,
            "decisions": list(DECISIONS), "notes": notes, "embeddings": [
                {"name": e.name, "tensor_path": e.tensor_path, "metadata_path": e.metadata_path,
                 "shape": list(e.shape), "columns": e.columns, "sprite_path": e.sprite_path,
                 "image_size": None if e.image_size is None else list(e.image_size)} for e in embeddings]})
    return ProjectorExport(out=Path(out), source=src, analysis=kind, embeddings=embeddings, notes=notes)
