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
from typing import Any, Callable

from .._io import read_json
from ..exceptions import DataError
from . import _assets
from ._html import (
    AUDIO_SUFFIXES,
    IMAGE_SUFFIXES,
    bytes_uri,
    data_uri,
    inside,
    esc,
    fmt,
    heatmap,
    is_number,
    is_records,
    join,
    kv_table,
    line_chart,
    mapping_html,
    script_json,
    table,
)
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
        wide = " wide" if _png_width(p) > 900 else ""
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


def _figures(r: ResultFolder, used: set[str], only: Callable[[dict[str, Any]], bool] | None = None, gallery_after: int = 6) -> str:
    listed = [f for f in r.doc.get("figures") or [] if isinstance(f, (dict, str))]
    figs: list[dict[str, Any]] = [f if isinstance(f, dict) else {"path": f} for f in listed]
    figs = [f for f in figs if f.get("path") not in used and (only is None or only(f))]
    if not figs:
        return ""
    head = [_figure(r.folder, f, used) for f in figs[:gallery_after]]
    rest = figs[gallery_after:]
    if not rest:
        return join(head)
    tiles = "".join(_figure(r.folder, f, used) for f in rest)
    return join(head) + f'<details class="more"><summary>{len(rest)} more figures</summary><div class="gallery">{tiles}</div></details>'


def _params(r: ResultFolder) -> str:
    params = r.doc.get("parameters")
    model = r.doc.get("model")
    rows: dict[str, Any] = {}
    if isinstance(model, dict):
        source = model.get("source")
        src: dict[str, Any] = source if isinstance(source, dict) else {}
        rows["model"] = src.get("spec") or src.get("name") or model.get("class")
    elif model is not None:
        rows["model"] = model
    if r.doc.get("data") is not None:
        rows["data"] = r.doc.get("data")
    if isinstance(params, dict):
        rows.update(params)
    if not rows:
        return ""
    return f'<details class="more"><summary>parameters</summary>{kv_table({k: v if not isinstance(v, (dict, list)) or len(str(v)) < 300 else str(v)[:300] + "…" for k, v in rows.items()}, "parameter", "value")}</details>'


def _extras(r: ResultFolder, consumed: set[str]) -> str:
    """Analysis-specific fields not rendered by a richer renderer: tables and values."""
    doc_metrics = r.doc.get("metrics")
    metrics: dict[str, Any] = doc_metrics if isinstance(doc_metrics, dict) else {}
    rest = {k: v for k, v in r.doc.items() if k not in COMMON_KEYS and k not in consumed and not (k in metrics and metrics[k] == v)}
    parts = []
    for k, v in rest.items():
        if is_records(v):
            parts.append(f"<h3>{esc(k)}</h3>" + table(_table_rows(v), folder=r.folder))
    others = {k: v for k, v in rest.items() if not is_records(v)}
    if others:
        parts.append(mapping_html(others))
    return join(parts)


def _table_rows(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Records without huge nested values (coordinates and such are shown elsewhere)."""
    return [{k: v for k, v in row.items() if not (isinstance(v, list) and v and isinstance(v[0], (list, dict)))} for row in rows]


def _metrics(r: ResultFolder, title: str = "Metrics") -> str:
    m = r.doc.get("metrics")
    if isinstance(m, dict) and m:
        return mapping_html(m, title)
    return ""


def _scatter_plots(r: ResultFolder, page: _Page) -> tuple[str, int]:
    """Interactive scatter plots of every point set in the result."""
    sets = find_point_sets(r.doc, r.folder)
    if not sets:
        return "", 0
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
            metrics.update({k: v for k, v in pset["metrics"].items() if is_number(v) and k not in ("seconds", "n")})
        page.n_plots += 1
        pid = f"plot{page.n_plots}"
        page.blocks.append(f'<script type="application/json" id="{pid}-data">{script_json(spec)}</script>')
        mline = " · ".join(f"{esc(k)} {fmt(v)}" for k, v in metrics.items())
        note = f'<p class="note">{esc(spec["note"])}</p>' if spec.get("note") else ""
        plots.append(f'<div class="plot" id="{pid}" data-spec="{pid}-data"><h4>{esc(title)}</h4>'
                     f'{f"<div class=note>{mline}</div>" if mline else ""}{note}</div>')
    return f'<div class="plots">{"".join(plots)}</div>', len(sets)


# ---------------------------------------------------------------------------------------------
# sections


def _section_generic(r: ResultFolder, page: _Page) -> str:
    used: set[str] = set()
    plots, n = _scatter_plots(r, page)
    return join([plots, _figures(r, used), _metrics(r), _extras(r, set()), _params(r)])


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
    consumed = {"layers"}
    if is_records(layers):
        rows = []
        for row in layers:
            depth = int(row.get("depth", 1) or 1) if is_number(row.get("depth", 1)) else 1
            shape = row.get("output_shape")
            rows.append({
                "name": "\u2003" * max(0, depth - 1) + str(row.get("name", "")),
                "type": row.get("type"),
                "output shape": " × ".join(str(s) for s in shape) if isinstance(shape, list) else shape,
                "parameters": row.get("total_params", row.get("params")),
            })
        parts.append(f"<h3>Layers ({len(rows)})</h3>" + table(rows))
    used: set[str] = set()
    parts += [_figures(r, used), _metrics(r), _extras(r, consumed), _params(r)]
    return join(parts)


def _section_projection(r: ResultFolder, page: _Page) -> str:
    plots, n = _scatter_plots(r, page)
    used: set[str] = set()
    figs = _figures(r, used)
    parts = [plots, _metrics(r, "Neighborhood hit (NH) and accuracy (AC)" if r.analysis == "projection" else "Metrics")]
    if plots and figs:
        parts.append(f'<details class="more"><summary>static figures</summary>{figs}</details>')
    else:
        parts.append(figs)
    parts += [_extras(r, _point_keys(r.doc)), _params(r)]
    return join(parts)


def _point_keys(doc: dict[str, Any]) -> set[str]:
    """Top-level keys holding point sets (rendered as plots, not as tables)."""
    keys = set()
    for where, _ in find_point_sets(doc, Path(".")):
        keys.add(where.split(".")[0].split("[")[0])
    return {k for k in keys if k}


def _matrix_block(doc: dict[str, Any]) -> tuple[str, set[str]]:
    """Square matrices with names (CKA between layers) as shaded tables."""
    out, consumed = [], set()
    names = None
    for k in ("layers", "names", "layer_names", "labels"):
        if isinstance(doc.get(k), list):
            names = doc[k]
            break
    for k, v in list(doc.items()) + list((doc.get("metrics") or {}).items()):
        if isinstance(v, list) and len(v) >= 2 and all(isinstance(row, list) and len(row) == len(v[0]) for row in v) and all(is_number(x) or x is None for x in v[0]):
            rows = names if names and len(names) == len(v) else list(range(len(v)))
            cols_names = doc.get(f"{k}_columns") or doc.get("columns") or (names if names and len(names) == len(v[0]) else list(range(len(v[0]))))
            out.append(heatmap(v, rows, cols_names, title=str(k)))
            consumed.add(k)
    return join(out), consumed


def _section_cka(r: ResultFolder, page: _Page) -> str:
    block, consumed = _matrix_block(r.doc)
    used: set[str] = set()
    return join([block, _figures(r, used), _metrics(r), _extras(r, consumed), _params(r)])


def _per_layer_chart(r: ResultFolder) -> str:
    """A line chart of per-layer numbers found in ``metrics`` (``{layer: {name: value}}``) or in
    a records list with a ``layer`` column."""
    rows: list[dict[str, Any]] = []
    m = r.doc.get("metrics")
    if isinstance(m, dict):
        per = {k: v for k, v in m.items() if isinstance(v, dict) and any(is_number(x) for x in v.values())}
        if len(per) >= 2:
            rows = [{"layer": k, **v} for k, v in per.items()]
    if not rows:
        for k, v in r.doc.items():
            if is_records(v) and all("layer" in row for row in v):
                rows = v
                break
    if len(rows) < 2:
        return ""
    layers = list(dict.fromkeys(str(row["layer"]) for row in rows))
    if len(layers) != len(rows):
        return ""
    skip = {"layer", "depth", "layer_index", "index", "n", "k", "seconds", "epoch", "checkpoint", "dim", "n_train", "n_test"}
    keys = [k for k in rows[0] if k not in skip and all(is_number(row.get(k)) for row in rows)]
    fractions = [k for k in keys if all(-1.0 <= float(row[k]) <= 1.0 for row in rows)]
    keys = fractions or keys  # accuracies, NH, CKA... share one scale; other numbers stay in the tables
    if not keys:
        return ""
    series = {k: [(i, float(row[k])) for i, row in enumerate(rows)] for k in keys[:6]}
    return line_chart(series, title=f"{ANALYSIS_TITLES.get(r.analysis, r.analysis)} per layer", xlabel="layer", xticks=list(enumerate(layers)))


def _section_probe(r: ResultFolder, page: _Page) -> str:
    used: set[str] = set()
    block, consumed = _matrix_block(r.doc)
    plots, n = _scatter_plots(r, page)
    return join([_per_layer_chart(r), block, plots, _figures(r, used), _metrics(r), _extras(r, consumed | _point_keys(r.doc)), _params(r)])


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
            ticks = [(c["epoch"], str(c["epoch"])) for c in cps if is_number(c.get("epoch"))]
            charts.append(line_chart({"validation accuracy": acc, "training accuracy": tra}, title=f"{run.rel or 'run'}: accuracy per epoch",
                                     xlabel="epoch", ylabel="accuracy", xticks=ticks))
    per_run = []
    for run in runs[:8]:
        cps = [c for c in run.doc.get("checkpoints") or [] if isinstance(c, dict)]
        per_run.append(f'<details class="more"><summary>{esc(run.rel or "run")}: checkpoints</summary>{table([{k: v for k, v in c.items() if k != "file"} for c in cps])}</details>')
    return join([table(rows), join(charts), join(per_run)])


RENDERERS: dict[str, Callable[[ResultFolder, _Page], str]] = {
    "capture": _section_capture,
    "layers": _section_capture,
    "projection": _section_projection,
    "neurons": _section_projection,
    "probe": _section_probe,
    "cka": _section_cka,
}


def _text_section(fn: Callable[[Any], str]) -> Callable[[ResultFolder, _Page], str]:
    """A text analysis (report/_text.py): its own parts, then figures, metrics and parameters."""
    return lambda r, page: join([fn(r), _section_generic_safe(r)])


RENDERERS.update({a: _text_section(f) for a, f in TEXT_SECTIONS.items()})


def _render(r: ResultFolder, page: _Page) -> str:
    a = r.analysis
    fn = RENDERERS.get(a)
    if fn is None and a.startswith("speech"):
        fn = _section_probe
    fn = fn or _section_generic
    try:
        return fn(r, page)
    except Exception as err:  # one odd result must not take the whole report down
        log.exception("cannot render %s", r.rel)
        return f'<p class="note">This result could not be rendered ({esc(type(err).__name__)}: {esc(err)}); its folder is {esc(r.rel)}.</p>' + _section_generic_safe(r)


def _section_generic_safe(r: ResultFolder) -> str:
    try:
        return join([_figures(r, set()), _metrics(r), _params(r)])
    except Exception:  # pragma: no cover - last resort
        return ""


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
        body = _render(r, page)
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
