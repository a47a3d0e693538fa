"""Build the single-file HTML report from the result folders under a directory.

The report reads what the analysis commands wrote — ``result.json`` files (see
:mod:`layerscope.results`), their figures, and the ``run.json`` of training runs — and renders
one section per result. It runs no analysis. Known analyses get a richer rendering; any other
result still gets its figures, metrics, tables and parameters. The only thing it may load
besides the result folders is the dataset a projection names (``data``), to show image
thumbnails of the points when the result carries none (``thumbnails=False`` turns that off).
"""

from __future__ import annotations

import datetime as _dt
import logging
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable

from .._io import read_json
from ..exceptions import DataError
from . import _assets
from ._html import (
    AUDIO_SUFFIXES,
    IMAGE_SUFFIXES,
    bytes_uri,
    data_uri,
    definitions,
    esc,
    fmt,
    heatmap,
    inside,
    is_number,
    is_records,
    join,
    kv_table,
    line_chart,
    metric_table,
    raw_details,
    scalar_metrics,
    script_json,
)
from .glossary import Term, lookup
from ._scatter import find_point_sets, point_spec, sprite_png
from ._text import TEXT_SECTIONS

log = logging.getLogger(__name__)

__all__ = ["build_report", "find_results", "ResultFolder", "ANALYSIS_TITLES"]

#: Section order and titles of the analyses the report knows; others follow, titled by name.
ANALYSIS_TITLES: dict[str, str] = {
    "demo": "Demo steps",
    "training": "Training runs",
    "capture": "Model summary and layers",
    "layers": "Model summary and layers",
    "maximize": "Activation maximization",
    "topk": "Top-9 patches",
    "deconv": "Deconvnet projections",
    "occlusion": "Occlusion maps",
    "invariance": "Invariance",
    "evolution": "Feature evolution",
    "correspondence": "Correspondence",
    "projection": "Hidden-activity projections",
    "neurons": "Neuron projections",
    "probe": "Linear probes",
    "cka": "CKA similarity",
    "transfer": "Transferability grid",
    "speech": "Speech",
    "speaker_embeddings": "Speaker embeddings",
    "xvector_study": "Speaker embeddings: x-vectors vs frame-DNN means",
    "dbn_pretrain": "Deep belief network: greedy pre-training",
    "dbn_speech": "Deep belief network: pre-trained vs random init (FSDD)",
    "dbn_units": "Deep belief network: unit views (Erhan)",
    "text_separability": "Text: per-layer separability",
    "text_topk": "Text: top-k contexts per unit",
    "text_occlusion": "Text: token occlusion",
    "text_maximize": "Text: activation maximization",
    "text_transfer": "Text: transferability grid",
}
COMMON_KEYS = {"analysis", "version", "created", "model", "data", "parameters", "metrics", "figures"}
MAX_FIGURE_BYTES = 8 * 2**20


@dataclass
class ResultFolder:
    """One result: its folder, its document, and where it sits under the report root."""

    folder: Path
    doc: dict[str, Any]
    rel: str

    @property
    def analysis(self) -> str:
        return str(self.doc.get("analysis") or "result")


def _order(analysis: str) -> int:
    keys = list(ANALYSIS_TITLES)
    if analysis in ANALYSIS_TITLES:
        return keys.index(analysis)
    if analysis.startswith("speech"):
        return keys.index("speech")
    return len(keys)


def find_results(root: str | os.PathLike[str]) -> tuple[list[ResultFolder], list[ResultFolder], list[str]]:
    """Scan ``root`` recursively: ``(results, training_runs, problems)``.

    ``results`` come from ``result.json`` files (sorted by analysis, then path); ``training_runs``
    from ``run.json`` files written by ``layerscope train``; ``problems`` lists files that could
    not be read (the report shows them instead of failing).
    """
    base = Path(root)
    if not base.is_dir():
        raise DataError(f"{base} is not a folder; pass the folder the analysis commands wrote into (e.g. demo-out).")
    results: list[ResultFolder] = []
    runs: list[ResultFolder] = []
    problems: list[str] = []
    for dirpath, dirnames, filenames in os.walk(base):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        d = Path(dirpath)
        rel = d.relative_to(base).as_posix()
        for name, bucket in (("result.json", results), ("run.json", runs)):
            if name not in filenames:
                continue
            if _outside(base, (d / name).relative_to(base).as_posix()):
                problems.append(f"{rel}/{name}: a link to a file outside {base.name}; not read")
                continue
            try:
                doc = read_json(d / name)
                if not isinstance(doc, dict):
                    raise ValueError("not a JSON object")
            except Exception as err:
                problems.append(f"{rel}/{name}: {type(err).__name__}: {err}")
                continue
            if name == "run.json" and not isinstance(doc.get("checkpoints"), list):
                continue
            bucket.append(ResultFolder(d, doc, rel if rel != "." else ""))
    results.sort(key=lambda r: (_order(r.analysis), r.rel))
    runs.sort(key=lambda r: r.rel)
    return results, runs, problems


class _Thumbs:
    """Image thumbnails of observations, fetched from the dataset a result names (cached)."""

    def __init__(self, enabled: bool, root: Path | None = None, allow_external_data: bool = False) -> None:
        self.enabled = enabled
        self.root = root
        self.allow_external_data = allow_external_data
        self.refused: list[str] = []
        self.datasets: dict[str, Any] = {}
        self.sprites: dict[tuple[str, int], tuple[str, tuple[int, int], int, dict[Any, int]]] = {}

    def dataset(self, spec: str) -> Any:
        if spec not in self.datasets:
            from ..data import ArrayDataset, load_dataset

            ds = None
            try:
                if spec.partition(":")[0].strip().lower() not in ("mnist", "cifar10", "imagefolder", "npz"):
                    raise DataError(f"{spec!r} is not an image dataset")  # recordings etc.: labels only
                if not self.allowed(spec):
                    if self._exists(spec):  # a missing path: no thumbnails, nothing to say
                        self.refused.append(spec)
                    raise DataError(f"{spec!r} names data outside the report folder")
                ds = load_dataset(spec)
                if not isinstance(ds, ArrayDataset) or len(ds.input_shape) != 3 or ds.input_shape[0] not in (1, 3):
                    ds = None
            except Exception as err:  # no data, no thumbnails: the plots fall back to labels
                log.info("no thumbnails from %s: %s", spec, err)
            self.datasets[spec] = ds
        return self.datasets[spec]

    def allowed(self, spec: str) -> bool:
        """Whether thumbnails may be read from ``spec``: a bundled dataset (no path), a path inside
        the report folder, or anything when ``allow_external_data`` is set."""
        if self.allow_external_data:
            return True
        from ..data import parse_data_spec

        try:
            _, path, _ = parse_data_spec(spec)
        except DataError:
            return False
        if path is None:
            return True  # bundled data (mnist, mnist:test, ...), shipped with layerscope
        path = re.sub(r"@\d+x\d+$", "", path)  # imagefolder:PATH@HxW
        if self.root is None:
            return False
        return not _outside(self.root, str(Path.cwd() / path))  # load_dataset reads relative paths from the cwd

    @staticmethod
    def _exists(spec: str) -> bool:
        from ..data import parse_data_spec

        try:
            path = parse_data_spec(spec)[1]
        except DataError:
            return False
        return path is not None and Path(re.sub(r"@\d+x\d+$", "", path)).exists()

    def sprite(self, spec: str, ids: list[Any]) -> tuple[str, tuple[int, int], int, list[int]] | None:
        """``(data_uri, tile, columns, index_per_point)`` or None."""
        if not self.enabled or not isinstance(spec, str) or not ids:
            return None
        ds = self.dataset(spec)
        if ds is None:
            return None
        import numpy as np

        uniq = sorted({i for i in ids if isinstance(i, int)})
        key = (spec, hash(tuple(uniq)))
        if key not in self.sprites:
            pos = {int(s): k for k, s in enumerate(np.asarray(ds.sample_ids).tolist())}
            rows = [pos[i] for i in uniq if i in pos]
            if not rows:
                return None
            x = ds.x[np.asarray(rows)]
            imgs = ds.normalization.denormalize(x)
            png, tile, cols = sprite_png(imgs)
            where = {i: k for k, i in enumerate(i for i in uniq if i in pos)}
            self.sprites[key] = (bytes_uri(png, "image/png"), tile, cols, where)
        uri, tile, cols, where = self.sprites[key]
        return uri, tile, cols, [where.get(i, -1) if isinstance(i, int) else -1 for i in ids]


@dataclass
class _Page:
    thumbs: _Thumbs
    n_plots: int = 0
    sprites: dict[str, str] = field(default_factory=dict)  # data uri -> element id
    blocks: list[str] = field(default_factory=list)  # hidden sprite images and plot JSON
    notes: list[str] = field(default_factory=list)  # files refused (outside the folders given)
    plot_keys: dict[str, list[str]] = field(default_factory=dict)  # link group -> metric keys shown on its plots

    def sprite_id(self, uri: str) -> str:
        if uri not in self.sprites:
            sid = f"sprite{len(self.sprites)}"
            self.sprites[uri] = sid
            self.blocks.append(f'<img id="{sid}" src="{uri}" alt="" hidden>')
        return self.sprites[uri]


# ---------------------------------------------------------------------------------------------
# pieces shared by the sections


def _figure(folder: Path, fig: Any, used: set[str]) -> str:
    if isinstance(fig, str):
        fig = {"path": fig}
    if not isinstance(fig, dict) or not isinstance(fig.get("path"), str):
        return ""
    rel = fig["path"]
    used.add(rel)
    title = fig.get("title") or Path(rel).stem.replace("_", " ")
    caption = fig.get("caption") or ""
    cap = f"<figcaption><b>{esc(title)}</b>{(' — ' + esc(caption)) if caption else ''}</figcaption>"
    found = inside(folder, rel)
    if found is None:
        if _outside(folder, rel):
            return f'<p class="note">figure {esc(rel)} lies outside its result folder; not included.</p>'
        return f'<p class="note">figure {esc(rel)} is missing.</p>'
    p = found
    if p.stat().st_size > MAX_FIGURE_BYTES:
        return f'<p class="note">figure {esc(rel)} is larger than {MAX_FIGURE_BYTES >> 20} MB; not inlined.</p>'
    suffix = p.suffix.lower()
    if suffix in IMAGE_SUFFIXES:
        width = _png_width(p)
        # wide figures (the top-9 grid is ~1,500 px) keep their natural size in a box that scrolls
        # sideways, so their titles stay readable instead of shrinking to a few pixels
        wide = f' wide" style="width:{width}px' if width > 900 else ""
        return f'<figure><div class="figscroll"><img class="fig{wide}" src="{data_uri(p)}" alt="{esc(title)}"></div>{cap}</figure>'
    if suffix in AUDIO_SUFFIXES:
        return f'<figure><audio controls preload="none" src="{data_uri(p)}"></audio>{cap}</figure>'
    return f'<p class="note">{esc(title)}: {esc(rel)} (not an image; see the result folder)</p>'


def _outside(folder: Path, rel: str) -> bool:
    """Whether ``folder / rel`` resolves outside ``folder`` (absolute path, ``..``, symlink)."""
    try:
        (folder.resolve() / rel).resolve().relative_to(folder.resolve())
    except (ValueError, OSError, RuntimeError):
        return True
    return False


def _png_width(path: Path) -> int:
    """Pixel width from a PNG header (0 if not a PNG)."""
    with open(path, "rb") as fh:
        head = fh.read(24)
    return int.from_bytes(head[16:20], "big") if head[:8] == b"\x89PNG\r\n\x1a\n" else 0


def _figure_dicts(r: ResultFolder) -> list[dict[str, Any]]:
    listed = [f for f in r.doc.get("figures") or [] if isinstance(f, (dict, str))]
    return [f if isinstance(f, dict) else {"path": f} for f in listed]


def _stem(f: dict[str, Any]) -> str:
    return Path(str(f.get("path", ""))).stem


def _figures(r: ResultFolder, used: set[str], only: Callable[[dict[str, Any]], bool] | None = None, gallery_after: int = 6) -> str:
    figs = [f for f in _figure_dicts(r) if f.get("path") not in used and (only is None or only(f))]
    if not figs:
        return ""
    head = [_figure(r.folder, f, used) for f in figs[:gallery_after]]
    rest = figs[gallery_after:]
    if not rest:
        return join(head)
    tiles = "".join(_figure(r.folder, f, used) for f in rest)
    return join(head) + f'<details class="more"><summary>{len(rest)} more figures</summary><div class="gallery">{tiles}</div></details>'


def _static_figures(r: ResultFolder, used: set[str], summary: str = "the analysis's static figures") -> str:
    """Figures not shown yet, folded (their content is shown interactively or as a table above)."""
    figs = _figures(r, used)
    return f'<details class="more"><summary>{esc(summary)}</summary>{figs}</details>' if figs else ""


def _params(r: ResultFolder) -> str:
    params = r.doc.get("parameters")
    model = r.doc.get("model")
    rows: dict[str, Any] = {}
    if isinstance(model, dict):
        source = model.get("source")
        src: dict[str, Any] = source if isinstance(source, dict) else {}
        rows["model"] = model.get("spec") or src.get("spec") or src.get("run") or src.get("name") or model.get("class")
    elif model is not None:
        rows["model"] = model
    if r.doc.get("data") is not None:
        rows["data"] = r.doc.get("data")
    if isinstance(params, dict):
        rows.update(params)
    if not rows:
        return ""
    short = {k: v if not isinstance(v, (dict, list)) or len(str(v)) < 300 else str(v)[:300] + "…" for k, v in rows.items()}
    return f'<details class="more params"><summary>parameters</summary>{kv_table(short, "parameter", "value")}</details>'


def _raw(r: ResultFolder) -> str:
    return raw_details(r.doc)


def _dict(v: Any) -> dict[str, Any]:
    return v if isinstance(v, dict) else {}


def _records(v: Any) -> list[dict[str, Any]]:
    return v if is_records(v) else []


def _metrics_dict(r: ResultFolder) -> dict[str, Any]:
    m = r.doc.get("metrics")
    return m if isinstance(m, dict) else {}


def _scalars(r: ResultFolder, skip: Iterable[str] = (), source: dict[str, Any] | None = None) -> str:
    """The result's scalar metrics that the glossary defines (the others stay in the raw data)."""
    html_, _ = scalar_metrics(source if source is not None else _metrics_dict(r), skip=skip)
    return html_


def _tail(r: ResultFolder) -> str:
    """What every section ends with: parameters, then the raw document (folded)."""
    return join([_params(r), _raw(r)])


def _link_id(r: ResultFolder, page: _Page) -> str:
    """An element id for the result's link group, unique in the page ("a/b" and "a_b" differ)."""
    return f"link{len(page.plot_keys)}-" + re.sub(r"[^A-Za-z0-9_-]", "_", r.rel or "root")


def _scatter_plots(r: ResultFolder, page: _Page, default: str | None = None, define: bool = True) -> tuple[str, int]:
    """Interactive scatter plots of every point set in the result, linked by sample id.

    The plots of one result show the same observations (layers × checkpoints): one toolbar above
    them chooses the colouring (true class first), searches a sample id and clears the selection;
    a selected sample or class is highlighted in every plot of the group.
    """
    sets = find_point_sets(r.doc, r.folder)
    if not sets:
        return "", 0
    link = _link_id(r, page)
    page.plot_keys[link] = []
    plots = []
    for where, pset in sets:
        title_bits = []
        if not isinstance(pset.get("layer"), str) and isinstance(pset.get("_key"), str):
            title_bits.append(pset["_key"])
        for k in ("layer", "checkpoint", "epoch", "method", "name", "title", "colour_by"):
            v = pset.get(k)
            if isinstance(v, bool) or not isinstance(v, (str, int)):
                continue
            title_bits.append(f"epoch {v}" if k in ("checkpoint", "epoch") and isinstance(v, int) else str(v))
        title = " · ".join(title_bits) or where or r.analysis
        spec = point_spec(r.doc, pset, title)
        spec["link"] = link
        if default:
            spec["default"] = default
        keep = spec.pop("_keep")
        if "thumbnails" not in spec and "id" in spec:
            sprite = pset.get("sprite")
            sprite_file = inside(r.folder, sprite.get("path")) if isinstance(sprite, dict) else None
            if isinstance(sprite, dict) and sprite.get("path") is not None and sprite_file is None:
                page.notes.append(f"{r.rel or '.'}: sprite {sprite.get('path')!s:.200} is not a file inside the result folder; not included.")
            if isinstance(sprite, dict) and sprite_file is not None:
                uri = data_uri(sprite_file)
                spec.update(sprite=page.sprite_id(uri), tile=list(sprite.get("tile") or [28, 28]), cols=int(sprite.get("columns") or 1))
                spec["spriteIndex"] = keep
            else:
                data = pset.get("data") or r.doc.get("data")
                got = page.thumbs.sprite(data, spec["id"]) if isinstance(data, str) else None
                if got is not None:
                    uri, tile, cols, index = got
                    spec.update(sprite=page.sprite_id(uri), tile=list(tile), cols=cols, spriteIndex=index)
        metrics = {k: pset[k] for k in ("nh", "neighborhood_hit", "nh_embedding", "nh_2d", "nh_original", "nh_activation", "ac", "accuracy") if is_number(pset.get(k))}
        if isinstance(pset.get("metrics"), dict):
            metrics.update({k: v for k, v in pset["metrics"].items() if is_number(v)})
        shown = {k: v for k, v in metrics.items() if lookup(k) is not None and k not in ("seconds", "n", "k", "dim")}
        page.n_plots += 1
        pid = f"plot{page.n_plots}"
        page.blocks.append(f'<script type="application/json" id="{pid}-data">{script_json(spec)}</script>')
        mline = " · ".join(f'<span class="metric" data-key="{esc(k)}" title="{esc(_term(k).definition)}">{esc(_term(k).label)}</span> {fmt(v)}'
                           for k, v in shown.items())
        note = f'<p class="note">{esc(spec["note"])}</p>' if spec.get("note") else ""
        plots.append(f'<div class="plot" id="{pid}" data-spec="{pid}-data" data-link="{link}"><h4>{esc(title)}</h4>'
                     f'{f"<div class=pm>{mline}</div>" if mline else ""}{note}</div>')
        keys_shown = page.plot_keys.setdefault(link, [])
        keys_shown.extend(k for k in shown if k not in keys_shown)
    defs = definitions(page.plot_keys.get(link, [])) if define else ""  # else: the table below defines them
    bar = f'<div class="linkbar" id="{link}" data-link="{link}"></div>'
    return f'{bar}<div class="plots">{"".join(plots)}</div>{defs}', len(sets)


def _term(key: str) -> Term:
    term = lookup(key)
    if term is None:  # callers check first; a bare key is never shown as a defined label
        raise KeyError(key)
    return term


# ---------------------------------------------------------------------------------------------
# sections: one per analysis, in the order of what its paper shows


def _section_generic(r: ResultFolder, page: _Page) -> str:
    used: set[str] = set()
    plots, _ = _scatter_plots(r, page)
    return join([plots, _figures(r, used), _scalars(r), _tail(r)])


def _section_demo(r: ResultFolder, page: _Page) -> str:
    steps = r.doc.get("steps")
    rows = steps if is_records(steps) else []
    return join([metric_table(rows, ["step", "what", "status", "seconds", "note"]), _scalars(r), _tail(r)])


def _section_capture(r: ResultFolder, page: _Page) -> str:
    doc = r.doc
    parts = []
    model = doc.get("model")
    if isinstance(model, dict):
        source = model.get("source")
        src: dict[str, Any] = source if isinstance(source, dict) else {}
        info = {
            "class": model.get("class"),
            "parameters": model.get("parameters"),
            "input shape": " × ".join(str(s) for s in model.get("input_shape") or []) or None,
            **{f"source {k}": v for k, v in src.items() if not isinstance(v, (dict, list))},
        }
        parts.append("<h3>Model</h3>" + kv_table({k: v for k, v in info.items() if v is not None}, "property", "value"))
    layers = doc.get("layers")
    if is_records(layers):
        rows = []
        for row in layers:
            depth = int(row.get("depth", 1) or 1) if is_number(row.get("depth", 1)) else 1
            shape = row.get("output_shape")
            rows.append({
                "name": "\u2003" * max(0, depth - 1) + str(row.get("name", "")),
                "type": row.get("type"),
                "output_shape": " × ".join(str(s) for s in shape) if isinstance(shape, list) else shape,
                "total_params": row.get("total_params", row.get("params")),
            })
        parts.append(f"<h3>Layers ({len(rows)})</h3>" + metric_table(rows, ["name", "type", "output_shape", "total_params"]))
    parts += [_figures(r, set()), _scalars(r), _tail(r)]
    return join(parts)


def _section_maximize(r: ResultFolder, page: _Page) -> str:
    used: set[str] = set()
    figs = _figures(r, used, only=lambda f: _stem(f) != "traces")
    units = [u for u in r.doc.get("units") or [] if isinstance(u, dict)] if is_records(r.doc.get("units")) else []
    chart = ""
    traced = [u for u in units if isinstance(u.get("trace"), list) and len(u["trace"]) >= 2]
    if traced:
        shown = traced[:10]
        series = {f"unit {u.get('unit', i)}": [(k, float(v)) for k, v in enumerate(u["trace"]) if is_number(v)] for i, u in enumerate(shown)}
        chart = line_chart(series, title="Objective over the optimisation steps (best restart of each unit)", xlabel="step", ylabel="objective")
        if len(traced) > len(shown):
            chart += f'<p class="note">first {len(shown)} of {len(traced)} units shown; all traces are in the raw data.</p>'
    cols = ["unit", "image", "activation", "class_probability", "predicted_class", "consistency", "data_max", "exceeds_data_max"]
    table_ = metric_table(units, cols, folder=r.folder)
    return join([figs, chart, table_, _scalars(r), _static_figures(r, used, "static figures (the same traces, drawn by the analysis)"), _tail(r)])


def _section_topk(r: ResultFolder, page: _Page) -> str:
    used: set[str] = set()
    figs = _figures(r, used)
    topk = _dict(r.doc.get("topk"))
    rows = []
    for t in topk.get("top") or []:
        if not isinstance(t, dict):
            continue
        vals = [v for v in t.get("values") or [] if is_number(v)]
        labels = t.get("labels") or []
        rows.append({"unit": t.get("unit"), "top1": vals[0] if vals else None, "top9": vals[8] if len(vals) > 8 else None,
                     "top_classes": ", ".join(str(c) for c in labels) if isinstance(labels, list) else None})
    return join([figs, _scalars(r), metric_table(rows, ["unit", "top1", "top9", "top_classes"]), _tail(r)])


def _section_figures_first(r: ResultFolder, page: _Page) -> str:
    """Deconvnet projections, invariance: the paper's figure, then the numbers."""
    used: set[str] = set()
    return join([_figures(r, used), _scalars(r), _tail(r)])


def _section_occlusion(r: ResultFolder, page: _Page) -> str:
    used: set[str] = set()
    images = r.doc.get("images")
    rows = images if is_records(images) else []
    cols = ["sample_id", "true_label", "target", "base_label", "base_probability", "min_probability", "layer", "unit", "base_activation"]
    return join([_figures(r, used), _scalars(r), metric_table(rows, cols), _tail(r)])


def _section_evolution(r: ResultFolder, page: _Page) -> str:
    used: set[str] = set()
    ev = _dict(r.doc.get("evolution"))
    rows = []
    epochs, units = ev.get("epochs") or [], ev.get("units") or []
    values, ids = ev.get("values") or [], ev.get("sample_ids") or []
    for i, u in enumerate(units):
        for j, e in enumerate(epochs):
            v = values[i][j] if i < len(values) and isinstance(values[i], list) and j < len(values[i]) else None
            s = ids[i][j] if i < len(ids) and isinstance(ids[i], list) and j < len(ids[i]) else None
            rows.append({"unit": u, "epoch": e, "top_value": v, "sample_id": s})
    return join([_figures(r, used), _scalars(r), metric_table(rows, ["unit", "epoch", "top_value", "sample_id"]), _tail(r)])


def _section_correspondence(r: ResultFolder, page: _Page) -> str:
    used: set[str] = set()
    corr = _dict(r.doc.get("correspondence"))
    delta = _dict(corr.get("delta"))
    std = _dict(corr.get("random_std"))
    rows = []
    parts: list[str] = []
    for layer, d in delta.items():
        if not isinstance(d, dict):
            continue
        row: dict[str, Any] = {"layer": layer}
        for part, v in d.items():
            key = "random" if part == "random" else f"delta {part}"
            row[key] = v
            if key not in parts:
                parts.append(key)
        row["random_std"] = std.get(layer)
        rows.append(row)
    # the same numbers are in metrics as delta_<layer>_<part>: shown once, in this table
    skip = [k for k in _metrics_dict(r) if re.fullmatch(r"delta_.+_(top|bottom|left|right|random)", k)] if rows else []
    return join([_figures(r, used), metric_table(rows, ["layer", *parts, "random_std"]), _scalars(r, skip=skip), _tail(r)])


def _projection_rows(r: ResultFolder) -> list[dict[str, Any]]:
    m = _metrics_dict(r)
    if is_records(m.get("table")):
        return list(m["table"])
    rows = []
    for p in r.doc.get("projections") or []:
        if isinstance(p, dict):
            pm = _dict(p.get("metrics"))
            rows.append({"checkpoint": p.get("checkpoint", p.get("epoch")), "layer": p.get("layer"),
                         **{k: pm.get(k, p.get(k)) for k in ("nh", "nh_original", "ac")}})
    return rows


def _section_projection(r: ResultFolder, page: _Page) -> str:
    plots, _ = _scatter_plots(r, page, define=not _projection_rows(r))
    used: set[str] = set()
    rows = _projection_rows(r)
    table_ = metric_table(rows, ["checkpoint", "layer", "nh", "nh_original", "ac"], caption="Neighborhood hit and accuracy per layer and checkpoint")
    consumed = {"table", "nh", "nh_original", "ac"} if rows else set()
    return join([plots, table_, _scalars(r, skip=consumed), _static_figures(r, used), _tail(r)])


def _section_neurons(r: ResultFolder, page: _Page) -> str:
    plots, _ = _scatter_plots(r, page)
    used: set[str] = set()
    top = _metrics_dict(r).get("top_neurons")
    rows = [{"class": c, "top_neurons": ", ".join(str(n) for n in v)} for c, v in top.items() if isinstance(v, list)] if isinstance(top, dict) else []
    return join([plots, _scalars(r, skip={"top_neurons"}), metric_table(rows, ["class", "top_neurons"]), _static_figures(r, used), _tail(r)])


def _section_probe(r: ResultFolder, page: _Page) -> str:
    used: set[str] = set()
    rows: list[dict[str, Any]] = []
    probes = r.doc.get("probes")
    if isinstance(probes, dict):
        for group, recs in probes.items():
            if is_records(recs):
                epoch = re.fullmatch(r"epoch (\d+)", str(group))
                rows += [{"checkpoint": int(epoch.group(1)) if epoch else group, **rec} for rec in recs]
    elif is_records(probes):
        rows = list(probes)
    cols = ["checkpoint", "layer", "accuracy", "chance", "train_accuracy", "n_train", "n_test", "n_features"]
    if len({row.get("checkpoint") for row in rows}) <= 1:
        cols.remove("checkpoint")
    # metrics.probe holds the same numbers as `probes`: shown once, in this table
    return join([_figures(r, used), metric_table(rows, cols, caption="Linear probes per layer"), _scalars(r, skip={"probe"}), _tail(r)])


def _section_cka(r: ResultFolder, page: _Page) -> str:
    used: set[str] = set()
    doc, m = r.doc, _metrics_dict(r)
    mat = m.get("cka", doc.get("cka"))
    params = _dict(doc.get("parameters"))
    rows_n = doc.get("rows") or params.get("layers") or doc.get("layers")
    cols_n = doc.get("cols") or params.get("layers_b") or rows_n
    block = ""
    if isinstance(mat, list) and mat and all(isinstance(row, list) for row in mat):
        rn = rows_n if isinstance(rows_n, list) and len(rows_n) == len(mat) else [f"row {i}" for i in range(len(mat))]
        cn = cols_n if isinstance(cols_n, list) and len(cols_n) == len(mat[0]) else rn if len(rn) == len(mat[0]) else [f"column {j}" for j in range(len(mat[0]))]
        block = heatmap(mat, rn, cn, caption="Linear CKA between layers (rows × columns)") + definitions(["cka"])
    return join([block, _scalars(r, skip={"cka"}), _static_figures(r, used, "the analysis's figure of the same matrix"), _tail(r)])


def _section_transfer(r: ResultFolder, page: _Page) -> str:
    used: set[str] = set()
    effects = _records(r.doc.get("effects"))
    summary = _records(r.doc.get("summary"))
    srows = [{"condition": s.get("condition"), "n": s.get("n"), "mean": {"mean": s.get("mean"), "std": s.get("std"), "seeds": s.get("seeds")}}
             for s in summary if is_number(s.get("mean"))]
    return join([_figures(r, used), _scalars(r),
                 metric_table(effects, ["n", "co_adaptation", "specificity", "fine_tuning_boost"], caption="Effects per number of copied layers n"),
                 metric_table(srows, ["condition", "n", "mean"], caption="Accuracy on task B per condition"), _tail(r)])


_SPEECH_COLUMNS = ["layer", "nh_digit_xutt", "nh_speaker_xutt", "probe_digit", "probe_speaker", "nh_digit", "nh_speaker",
                   "nh_digit_original_xutt", "nh_speaker_original_xutt"]


def _section_speech(r: ResultFolder, page: _Page) -> str:
    used: set[str] = set()
    m = _metrics_dict(r)
    figs = _figures(r, used, only=lambda f: "projections" not in _stem(f))
    plots, _ = _scatter_plots(r, page)
    rows = _records(m.get("table")) or _records(r.doc.get("table"))
    models = {row.get("model") for row in rows}
    cols = (["model"] if len(models) > 1 else []) + _SPEECH_COLUMNS
    summary = _records(m.get("summary"))
    chance = _dict(m.get("chance"))
    extra = {f"chance_{k}": v for k, v in chance.items()}
    parts = [figs, plots,
             metric_table(rows, cols, caption="Digit and speaker information per layer"),
             metric_table(summary, (["model"] if len(models) > 1 else []) + ["frame_accuracy", "utterance_accuracy"]),
             _scalars(r, source=extra), _scalars(r, skip={"table", "summary", "chance"}),
             _static_figures(r, used), _tail(r)]
    return join(parts)


def _section_speaker_embeddings(r: ResultFolder, page: _Page) -> str:
    used: set[str] = set()
    m = _metrics_dict(r)
    plots, _ = _scatter_plots(r, page, default="speaker")
    rows = _records(m.get("layers"))
    return join([_figures(r, used, only=lambda f: "best_layer" not in _stem(f)), plots,
                 metric_table(rows, ["layer", "dim", "purity", "ari", "nmi", "ari_digit", "n_clusters"], caption="Speaker clustering per layer"),
                 _scalars(r, skip={"layers"}), _static_figures(r, used), _tail(r)])


def _section_training(runs: list[ResultFolder]) -> str:
    rows = []
    charts: list[str] = []
    for run in runs:
        cps = [c for c in run.doc.get("checkpoints") or [] if isinstance(c, dict)]
        last = cps[-1] if cps else {}
        rows.append({
            "run": run.rel or ".",
            "architecture": run.doc.get("arch"),
            "data": run.doc.get("data"),
            "training samples": run.doc.get("n_train"),
            "checkpoints (epochs)": ", ".join(str(c.get("epoch")) for c in cps),
            "final val accuracy": last.get("val_accuracy"),
            "complete": run.doc.get("complete"),
        })
        if len(charts) < 8 and len(cps) >= 2:
            acc = [(c["epoch"], c["val_accuracy"]) for c in cps if is_number(c.get("epoch")) and is_number(c.get("val_accuracy"))]
            tra = [(c["epoch"], c["train_accuracy"]) for c in cps if is_number(c.get("epoch")) and is_number(c.get("train_accuracy"))]
            epochs = [c["epoch"] for c in cps if is_number(c.get("epoch"))]
            ticks = [(e, str(e)) for e in epochs] if len(epochs) <= 12 else None
            charts.append(line_chart({"validation accuracy": acc, "training accuracy": tra}, title=f"{run.rel or 'run'}: accuracy per epoch",
                                     xlabel="epoch", ylabel="accuracy", xticks=ticks, ylim=(0.0, 1.0),
                                     keys={"validation accuracy": "val_accuracy", "training accuracy": "train_accuracy"}))
    per_run = []
    for run in runs[:8]:
        cps = [c for c in run.doc.get("checkpoints") or [] if isinstance(c, dict)]
        per_run.append(f'<details class="more"><summary>{esc(run.rel or "run")}: checkpoints</summary>'
                       f'{metric_table(cps, ["epoch", "train_loss", "train_accuracy", "val_loss", "val_accuracy"])}</details>')
    cols = ["run", "architecture", "data", "training samples", "checkpoints (epochs)", "final val accuracy", "complete"]
    return _once(join([metric_table(rows, cols), join(charts), definitions(["val_accuracy", "train_accuracy", "train_loss"]), join(per_run)]))


#: One renderer per analysis (``result.json``'s ``"analysis"``); others get :func:`_section_generic`.
#: Packages with their own sections add a line here (e.g. the text analyses).
RENDERERS: dict[str, Callable[[ResultFolder, _Page], str]] = {
    "demo": _section_demo,
    "capture": _section_capture,
    "layers": _section_capture,
    "maximize": _section_maximize,
    "topk": _section_topk,
    "deconv": _section_figures_first,
    "occlusion": _section_occlusion,
    "invariance": _section_figures_first,
    "evolution": _section_evolution,
    "correspondence": _section_correspondence,
    "projection": _section_projection,
    "neurons": _section_neurons,
    "probe": _section_probe,
    "cka": _section_cka,
    "transfer": _section_transfer,
    "speech": _section_speech,
    "speaker_embeddings": _section_speaker_embeddings,
}


def _text_section(fn: Callable[[Any], str]) -> Callable[[ResultFolder, _Page], str]:
    """A text analysis (report/_text.py): its own parts (HTML tables, shaded tokens, charts), then
    the analysis's PNG figures of the same results, folded, then parameters and raw data."""
    return lambda r, page: join([fn(r), _static_figures(r, set(), "static figures (the same results, drawn by the analysis)"),
                                 _tail(r)])


RENDERERS.update({a: _text_section(f) for a, f in TEXT_SECTIONS.items()})


def _render(r: ResultFolder, page: _Page) -> str:
    a = r.analysis
    fn = RENDERERS.get(a) or _section_generic
    try:
        return fn(r, page)
    except Exception as err:  # one odd result must not take the whole report down
        log.exception("cannot render %s", r.rel)
        return f'<p class="note">This result could not be rendered ({esc(type(err).__name__)}: {esc(err)}); its folder is {esc(r.rel)}.</p>' + _section_generic_safe(r)


def _section_generic_safe(r: ResultFolder) -> str:
    try:
        return join([_figures(r, set()), _tail(r)])
    except Exception:  # pragma: no cover - last resort
        return ""


_DEF = re.compile(r"<dt>(.*?)</dt><dd>(.*?)</dd>")


def _once(body: str) -> str:
    """Each glossary definition once per section: a term already defined above is not repeated
    (the definition lists are our own markup, with escaped text, so a pattern finds them)."""
    seen: set[str] = set()

    def keep(m: re.Match[str]) -> str:
        if m.group(1) in seen:
            return ""
        seen.add(m.group(1))
        return m.group(0)

    body = _DEF.sub(keep, body)
    return body.replace('<dl class="defs"></dl>', "")


def _subtitle(r: ResultFolder) -> str:
    """What the section is about, beyond the analysis: the model of a summary, the layer analysed."""
    doc = r.doc
    model = doc.get("model")
    if r.analysis in ("capture", "layers") and isinstance(model, dict) and model.get("class"):
        return f": {model['class']}"
    layer = doc.get("layer")
    if not isinstance(layer, str) and isinstance(doc.get("parameters"), dict):
        layer = doc["parameters"].get("layer")
    return f": {layer}" if isinstance(layer, str) and layer else ""


def _title(analysis: str) -> str:
    if analysis in ANALYSIS_TITLES:
        return ANALYSIS_TITLES[analysis]
    if analysis.startswith("speech"):
        rest = analysis[len("speech"):].strip("-_: ")
        return "Speech" + (f": {rest.replace('_', ' ')}" if rest else "")
    return analysis.replace("_", " ").capitalize()


def build_report(
    run_dir: str | os.PathLike[str],
    out: str | os.PathLike[str] | None = None,
    *,
    title: str | None = None,
    thumbnails: bool = True,
    allow_external_data: bool = False,
) -> Path:
    """Write one self-contained HTML file for every result under ``run_dir``.

    Parameters
    ----------
    run_dir
        Folder scanned recursively for ``result.json`` (one section each) and ``run.json``.
    out
        The HTML file to write; default ``run_dir/report.html``.
    title
        Page title; default "layerscope report: <folder name>".
    thumbnails
        Fetch image thumbnails for projection points from the dataset a result names when the
        result has none (the plots show labels only otherwise). Only bundled datasets (``mnist``,
        ``mnist:test``, ...) and data paths inside ``run_dir`` are read, unless
        ``allow_external_data`` is set.
    allow_external_data
        Also read thumbnails from data specs naming paths outside ``run_dir`` (a result.json
        from someone else could otherwise make the report embed any image folder on this disk).

    The report reads no file outside ``run_dir``: figures, sprites, arrays and table images must
    lie inside their result folder (after resolving symlinks); others are skipped with a note,
    and ``result.json``/``run.json`` files that are symlinks resolving outside ``run_dir`` are
    not read.

    Returns
    -------
    Path of the written file. Everything (styles, script, figures as base64 data URIs) is inside
    it, so it works offline and from ``file://``.
    """
    from .. import __version__ as version
    from .._io import atomic_open

    root = Path(run_dir)
    results, runs, problems = find_results(root)
    out_path = Path(out) if out is not None else root / "report.html"
    page = _Page(_Thumbs(thumbnails, root, allow_external_data))
    sections: list[tuple[str, str, str, str]] = []  # (id, title, where, body)
    training = ("sec-training", ANALYSIS_TITLES["training"], f"{len(runs)} run folder(s)", _section_training(runs)) if runs else None
    for i, r in enumerate(results, 1):
        if training is not None and _order(r.analysis) > _order("training"):
            sections.append(training)
            training = None
        body = _once(_render(r, page))
        if not body.strip():
            body = '<p class="note">This result has no figures, metrics or tables.</p>'
        sections.append((f"sec-{i}", _title(r.analysis) + _subtitle(r), r.rel or ".", body))
    if training is not None:
        sections.append(training)
    toc = "".join(f'<li><a href="#{sid}">{esc(t)}</a> <span class="note">{esc(w)}</span></li>' for sid, t, w, _ in sections)
    body = "".join(
        f'<section class="analysis" id="{sid}"><h2>{esc(t)}</h2><p class="where">{esc(w)}</p>{b}</section>'
        for sid, t, w, b in sections
    )
    if not sections:
        body = '<p class="note">No result.json or run.json was found under this folder. Run an analysis command first (e.g. <code>layerscope demo</code>).</p>'
    problems += page.notes
    problems += [f"thumbnails from {spec!r}: the data lies outside the report folder; not read (pass allow_external_data / --allow-external-data to allow it)" for spec in dict.fromkeys(page.thumbs.refused)]
    if problems:
        body += "<section class='analysis' id='sec-problems'><h2>Unreadable files (or not read)</h2><ul>" + "".join(f"<li>{esc(p)}</li>" for p in problems) + "</ul></section>"
    name = title or f"layerscope report: {root.resolve().name}"
    created = _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    doc = f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="generator" content="layerscope {esc(version)}">
<title>{esc(name)}</title>
<link rel="icon" href="data:,">
<style>{_assets.CSS}</style></head>
<body>
<header class="top"><h1>{esc(name)}</h1><p>{len(sections)} sections from {esc(root.as_posix())} · built {esc(created)} by layerscope {esc(version)}</p></header>
<div class="layout">
<nav class="toc" aria-label="Contents"><details open><summary>Contents</summary><ol>{toc}</ol></details></nav>
<main>{body}</main>
</div>
<div hidden>{"".join(page.blocks)}</div>
<script>{_assets.JS}</script>
</body></html>
"""
    with atomic_open(out_path, "w") as fh:
        fh.write(doc)
    os.chmod(out_path, 0o644)  # a page to share, not a private temporary file
    return out_path
