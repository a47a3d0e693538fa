"""Find embeddings in result documents and turn them into the scatter plot's JSON spec.

A *point set* is any dict (the result itself, or an item of a list or dict inside it) that has
2-D coordinates under one of :data:`COORD_KEYS` (``[[x, y], ...]``) or both ``x`` and ``y``
lists; alternatively ``embedding_file`` / ``file`` naming an ``.npz`` or ``.npy`` next to
``result.json`` that holds them. Per-point fields read when present (all optional):

``labels`` / ``y_true`` / ``targets``
    true class index per point, names from ``classes`` / ``class_names`` (point set, then result)
``predictions`` / ``y_pred``
    predicted class index (misclassified points are drawn as crosses in the predicted colour)
``sample_ids`` / ``ids`` / ``indices``
    the observation of each point (shown in the tooltip; used to fetch image thumbnails)
``speakers`` / ``speaker``; ``extra_labels: {name: [codes]}`` with ``extra_label_names`` or
``<name>_names``
    other categorical colourings (e.g. speaker of a speech frame); ``groups`` as
    ``[{"name", "codes", "names"}]`` is also accepted verbatim
``values`` with ``value_name``; ``importances: {class: [value per point]}``
    continuous colourings (e.g. a neuron's power to discriminate a class); ``index`` (neurons)
``text``
    a free text line per point (e.g. "neuron 12")
``thumbnails``
    a data-URI (or bare base64 PNG) per point; or ``sprite: {"path", "tile": [w, h], "columns"}``
    a PNG with one tile per point in order
"""

from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import Any

import numpy as np

from ._html import inside

log = logging.getLogger(__name__)

COORD_KEYS = ("embedding", "coords", "coordinates", "xy")
LABEL_KEYS = ("labels", "y_true", "targets", "true_labels", "label", "digit", "digits")
PRED_KEYS = ("predictions", "y_pred", "predicted", "preds")
ID_KEYS = ("sample_ids", "ids", "indices", "sample_id")
MAX_POINTS = 6000


def _pairs(v: Any) -> bool:
    return (
        isinstance(v, list)
        and len(v) >= 2
        and isinstance(v[0], (list, tuple))
        and len(v[0]) >= 2
        and all(isinstance(c, (int, float)) or c is None for c in v[0][:2])
    )


def _num_list(v: Any, n: int) -> bool:
    return isinstance(v, list) and len(v) == n and all(isinstance(c, (int, float)) or c is None for c in v[:50])


def _load_arrays(folder: Path, name: Any) -> dict[str, Any]:
    p = inside(folder, name)
    if p is None:  # not a file inside the result folder: never read
        return {}
    try:
        if p.suffix == ".npz":
            with np.load(p, allow_pickle=False) as z:
                return {k: z[k].tolist() for k in z.files}
        if p.suffix == ".npy":
            return {"embedding": np.load(p, allow_pickle=False).tolist()}
    except Exception as err:  # unreadable array file: the section says so instead of failing
        log.warning("cannot read %s: %s", p, err)
    return {}


def _coords(d: dict[str, Any]) -> tuple[list[float], list[float]] | None:
    for k in COORD_KEYS:
        v = d.get(k)
        if isinstance(v, list) and _pairs(v):
            return [float(p[0]) if p[0] is not None else math.nan for p in v], [float(p[1]) if p[1] is not None else math.nan for p in v]
    x, y = d.get("x"), d.get("y")
    if isinstance(x, list) and isinstance(y, list) and len(x) == len(y) >= 2 and _num_list(x, len(x)) and _num_list(y, len(y)):
        return [float(a) for a in x], [float(b) for b in y]
    return None


def find_point_sets(doc: dict[str, Any], folder: Path) -> list[tuple[str, dict[str, Any]]]:
    """Every point set in a result document, as ``(path_in_doc, merged_dict)``."""
    found: list[tuple[str, dict[str, Any]]] = []

    def visit(d: dict[str, Any], where: str, depth: int, inherited: dict[str, Any]) -> None:
        arrays = {}
        for key in ("embedding_file", "points_file"):
            if isinstance(d.get(key), str) and str(d[key]).endswith((".npz", ".npy")):
                arrays = _load_arrays(folder, d[key])
                break
        # per-point fields of the enclosing dicts apply too, e.g. {"digit": [...], "layers": {"l1": {"x", "y"}}}
        merged = {**inherited, **arrays, **d}
        if _coords(merged) is not None:
            found.append((where, merged))
            return
        if depth >= 4:
            return
        down = {**inherited, **{k: v for k, v in d.items() if not isinstance(v, dict) and k not in ("metrics", "parameters", "figures")}}
        for k, v in d.items():
            if isinstance(v, dict) and k not in ("metrics", "parameters"):
                visit(v, f"{where}.{k}" if where else str(k), depth + 1, {**down, "_key": k})
            elif isinstance(v, list) and v and isinstance(v[0], dict) and k != "figures":
                for i, item in enumerate(v):
                    if isinstance(item, dict):
                        visit(item, f"{where}.{k}[{i}]" if where else f"{k}[{i}]", depth + 1, down)

    visit(doc, "", 0, {})
    return found


def _first(d: dict[str, Any], keys: tuple[str, ...], n: int) -> list[Any] | None:
    for k in keys:
        v = d.get(k)
        if isinstance(v, list) and len(v) == n:
            return v
    return None


def _codes(values: list[Any], names: list[Any] | None) -> tuple[list[int | None], list[str]]:
    """Category codes (indices into names) for a list of labels that may be ints or strings."""
    if names is not None and all(isinstance(v, int) or v is None for v in values):
        return [int(v) if v is not None else None for v in values], [str(s) for s in names]
    if all(isinstance(v, (int, float)) and not isinstance(v, bool) and float(v).is_integer() for v in values if v is not None):
        ints = [int(v) if v is not None else None for v in values]
        hi = max((v for v in ints if v is not None), default=-1)
        if names is None and 0 <= min((v for v in ints if v is not None), default=0) and hi < 1000:
            return ints, [str(i) for i in range(hi + 1)]
        return ints, [str(s) for s in (names or [])]
    uniq = sorted({str(v) for v in values if v is not None})
    index = {s: i for i, s in enumerate(uniq)}
    return [index[str(v)] if v is not None else None for v in values], uniq


def point_spec(doc: dict[str, Any], pset: dict[str, Any], title: str) -> dict[str, Any]:
    """The scatter plot JSON for one point set (without thumbnails)."""
    xs, ys = _coords(pset) or ([], [])
    n = len(xs)
    keep = [i for i in range(n) if math.isfinite(xs[i]) and math.isfinite(ys[i])]
    note = ""
    if len(keep) > MAX_POINTS:
        step = len(keep) / MAX_POINTS
        keep = [keep[int(i * step)] for i in range(MAX_POINTS)]
        note = f"showing {MAX_POINTS} of {n} points (every {step:.1f}th)"
    pick = lambda v: [v[i] for i in keep] if v is not None else None  # noqa: E731
    spec: dict[str, Any] = {"title": title, "x": pick(xs), "y": pick(ys), "note": note}
    classes = pset.get("classes") or pset.get("class_names") or doc.get("classes") or doc.get("class_names")
    groups: list[dict[str, Any]] = []
    if isinstance(pset.get("groups"), list):
        for g in pset["groups"]:
            if isinstance(g, dict) and isinstance(g.get("codes"), list) and len(g["codes"]) == n:
                groups.append({"name": str(g.get("name", "group")), "codes": pick(g["codes"]), "names": [str(s) for s in g.get("names") or []] or None})
    labels = _first(pset, LABEL_KEYS, n)
    label_names: list[str] | None = None
    if labels is not None:
        codes, label_names = _codes(labels, classes if isinstance(classes, list) else None)
        label_key = next(k for k in LABEL_KEYS if isinstance(pset.get(k), list) and len(pset[k]) == n)
        default_name = "digit" if label_key in ("digit", "digits") else "true class"
        groups.insert(0, {"name": str(pset.get("label_name") or doc.get("label_name") or default_name), "codes": pick(codes), "names": label_names})
    preds = _first(pset, PRED_KEYS, n)
    if preds is not None and labels is not None:
        if all(isinstance(p, int) or p is None for p in preds):
            spec["pred"] = pick(preds)
        elif label_names is not None:
            index = {s: i for i, s in enumerate(label_names)}
            spec["pred"] = pick([index.get(str(p), -1) for p in preds])
    extra: dict[str, Any] = {}
    for k in ("speakers", "speaker"):
        if isinstance(pset.get(k), list) and len(pset[k]) == n:
            extra["speaker"] = pset[k]
    for k in ("clusters", "cluster"):  # speaker embeddings: the agglomerative cluster of each recording
        if isinstance(pset.get(k), list) and len(pset[k]) == n:
            extra["cluster"] = pset[k]
    if isinstance(pset.get("extra_labels"), dict):
        for k, v in pset["extra_labels"].items():
            if isinstance(v, list) and len(v) == n:
                extra[str(k)] = v
    for name, vals in extra.items():
        names = pset.get(f"{name}_names") or doc.get(f"{name}_names")
        en = pset.get("extra_label_names") or doc.get("extra_label_names")
        if names is None and isinstance(en, dict):
            names = en.get(name)
        codes, cnames = _codes(vals, names if isinstance(names, list) else None)
        groups.append({"name": name, "codes": pick(codes), "names": cnames})
    spec["groups"] = groups
    ids = _first(pset, ID_KEYS, n)
    id_name = pset.get("id_name") or "sample"
    if ids is None and _num_list(pset.get("index"), n):  # neuron projections: the neuron's index
        ids, id_name = pset["index"], pset.get("id_name") or "neuron"
    if ids is not None:
        spec["id"] = pick(ids)
        spec["idName"] = str(id_name)
    series: list[tuple[str, Any]] = []
    if _num_list(pset.get("values"), n):
        series.append((str(pset.get("value_name") or "value"), pset["values"]))
    if isinstance(pset.get("importances"), dict):  # neuron projections: importance per class
        series += [(f"importance for {k}", v) for k, v in pset["importances"].items() if _num_list(v, n)]
    values = []
    for name, raw in series:
        floats = [float(a) if a is not None else math.nan for a in raw]
        v = [floats[i] for i in keep]
        fin = [a for a in v if math.isfinite(a)]
        values.append({"name": name, "v": [a if math.isfinite(a) else None for a in v], "range": [min(fin), max(fin)] if fin else [0.0, 1.0]})
    if values:
        spec["values"] = values
    text = pset.get("text")
    if isinstance(text, list) and len(text) == n:
        spec["text"] = pick([str(t) for t in text])
    else:  # speech frames: which recording, which frame
        parts = [(k, pset[k]) for k in ("recording", "utterance", "frame") if isinstance(pset.get(k), list) and len(pset[k]) == n]
        if parts:
            spec["text"] = pick([" · ".join(f"{k} {v[i]}" for k, v in parts) for i in range(n)])
    thumbs = pset.get("thumbnails")
    if isinstance(thumbs, list) and len(thumbs) == n:
        spec["thumbnails"] = pick([t if not isinstance(t, str) or t.startswith("data:image/") else "data:image/png;base64," + t for t in thumbs])
    spec["_keep"] = keep
    return spec


def sprite_png(images: np.ndarray, max_tile: int = 32) -> tuple[bytes, tuple[int, int], int]:
    """Tile display-range images ``(N, C, H, W)`` (C = 1 or 3, values in [0, 1]) into one PNG.

    Returns the PNG bytes, the tile size ``(w, h)`` and the number of columns.
    """
    from io import BytesIO

    from PIL import Image

    a = np.clip(np.nan_to_num(np.asarray(images, dtype=np.float32)), 0.0, 1.0)
    n, c, h, w = a.shape
    scale = min(1.0, max_tile / max(h, w))
    tw, th = max(1, round(w * scale)), max(1, round(h * scale))
    cols = max(1, math.ceil(math.sqrt(n)))
    rows = math.ceil(n / cols)
    mode = "L" if c == 1 else "RGB"
    sheet = Image.new(mode, (cols * tw, rows * th), 0)
    u8 = (a * 255 + 0.5).astype(np.uint8)
    for i in range(n):
        tile = u8[i, 0] if c == 1 else np.moveaxis(u8[i, :3], 0, -1)
        im = Image.fromarray(tile, mode)
        if (tw, th) != (w, h):
            im = im.resize((tw, th), Image.BILINEAR)  # type: ignore[attr-defined]  # pillow>=9 allowed; Image.Resampling is 9.1+
        sheet.paste(im, ((i % cols) * tw, (i // cols) * th))
    buf = BytesIO()
    sheet.save(buf, format="PNG", optimize=True)
    return buf.getvalue(), (tw, th), cols
