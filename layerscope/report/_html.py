"""Small HTML pieces for the report: escaping, tables, inline images, hand-written SVG charts.

Everything that comes from the data (labels, class names, layer names, captions, keys) goes
through :func:`esc`; JSON embedded in ``<script>`` goes through :func:`script_json`.
"""

from __future__ import annotations

import base64
import html
import json
import math
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence, TypeGuard

MIME = {
    ".png": "image/png",
    ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg",
    ".gif": "image/gif",
    ".svg": "image/svg+xml",
    ".webp": "image/webp",
    ".wav": "audio/wav",
    ".mp3": "audio/mpeg",
    ".ogg": "audio/ogg",
}
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".gif", ".svg", ".webp"}
AUDIO_SUFFIXES = {".wav", ".mp3", ".ogg"}


def esc(value: Any) -> str:
    """HTML-escape any value (quotes included), after ``str()``."""
    return html.escape(str(value), quote=True)


def _clean(obj: Any) -> Any:
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {str(k): _clean(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_clean(v) for v in obj]
    return obj


def script_json(obj: Any) -> str:
    """JSON safe to place inside ``<script type="application/json">``.

    ``<``, ``>`` and ``&`` become ``\\u003c``/``\\u003e``/``\\u0026`` (still the same JSON
    strings), so a label such as ``</script>`` cannot end the script element.
    """
    text = json.dumps(_clean(obj), ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    return (
        text.replace("<", "\\u003c")
        .replace(">", "\\u003e")
        .replace("&", "\\u0026")
        .replace("\u2028", "\\u2028")
        .replace("\u2029", "\\u2029")
    )


def inside(folder: Path, rel: Any) -> Path | None:
    """``folder / rel`` resolved, if it is a regular file inside ``folder`` (symlinks followed).

    The report reads no file outside the folders it is given: an absolute path, ``..`` or a
    symlink that resolves elsewhere gives ``None`` (the caller shows a note instead).
    """
    if not isinstance(rel, str) or not rel or "\x00" in rel:
        return None
    try:
        base = folder.resolve()
        p = (base / rel).resolve()
        p.relative_to(base)
    except (ValueError, OSError, RuntimeError):
        return None
    return p if p.is_file() else None


def data_uri(path: Path, mime: str | None = None) -> str:
    """The file's bytes as a ``data:`` URI."""
    mime = mime or MIME.get(path.suffix.lower(), "application/octet-stream")
    return f"data:{mime};base64," + base64.b64encode(path.read_bytes()).decode("ascii")


def bytes_uri(data: bytes, mime: str) -> str:
    return f"data:{mime};base64," + base64.b64encode(data).decode("ascii")


def is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def fmt(v: Any) -> str:
    """Format a value for a table cell (escaped)."""
    if v is None:
        return "–"
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, int):
        return f"{v:,}" if abs(v) >= 10000 else str(v)
    if isinstance(v, float):
        if not math.isfinite(v):
            return esc(v)
        if v == 0:
            return "0"
        if abs(v) >= 1e5 or abs(v) < 1e-3:
            return f"{v:.3g}"
        return f"{v:.4f}".rstrip("0").rstrip(".") if abs(v) < 10 else f"{v:.2f}"
    if isinstance(v, (list, tuple)):
        return esc(shape_text(v))
    if isinstance(v, dict):
        if is_number(v.get("mean")):  # a summary over seeds: mean ± std
            return esc(fmt_plain(v["mean"]) + (f" ± {fmt_plain(v['std'])}" if is_number(v.get("std")) else ""))
        items = [f"{k}: {fmt_plain(x)}" for k, x in v.items() if x is None or isinstance(x, (str, int, float, bool))]
        return esc(", ".join(items)[:200] if items else json.dumps(v)[:200])
    return esc(v)


def shape_text(v: Sequence[Any]) -> str:
    """A short text for a list: its values if short, else its shape."""
    if all(not isinstance(x, (list, tuple, dict)) for x in v):
        if len(v) <= 8:
            return ", ".join(fmt_plain(x) for x in v)
        if len(v) <= 40:
            return ", ".join(fmt_plain(x) for x in v[:12]) + (f", … ({len(v)} values)" if len(v) > 12 else "")
    dims = [len(v)]
    inner: Any = v[0] if len(v) else None
    while isinstance(inner, (list, tuple)) and inner:
        dims.append(len(inner))
        inner = inner[0]
    return "[" + "×".join(str(d) for d in dims) + " values]"


def fmt_plain(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v)


def numeric_list(v: Any, min_len: int = 2) -> bool:
    return isinstance(v, (list, tuple)) and len(v) >= min_len and all(is_number(x) or x is None for x in v)


def sparkline(values: Sequence[Any], width: int = 110, height: int = 26) -> str:
    """A tiny inline SVG line of a list of numbers (e.g. an activation trace)."""
    ys = [float(v) for v in values if is_number(v) and math.isfinite(float(v))]
    if len(ys) < 2:
        return esc(shape_text(list(values)))
    lo, hi = min(ys), max(ys)
    span = (hi - lo) or 1.0
    n = len(ys)
    pts = " ".join(f"{2 + i * (width - 4) / (n - 1):.1f},{height - 2 - (y - lo) / span * (height - 4):.1f}" for i, y in enumerate(ys))
    return (
        f'<svg class="spark" width="{width}" height="{height}" viewBox="0 0 {width} {height}" role="img" '
        f'aria-label="{n} values from {ys[0]:.3g} to {ys[-1]:.3g}"><title>{n} values, first {ys[0]:.4g}, last {ys[-1]:.4g}, '
        f'min {lo:.4g}, max {hi:.4g}</title><polyline fill="none" stroke="#2459a8" stroke-width="1.4" points="{pts}"/></svg>'
    )


def _curve(v: Any) -> bool:
    """A list worth a sparkline: 9+ numbers, not all integers (integers are indices or counts)."""
    return numeric_list(v, 9) and any(isinstance(x, float) and not float(x).is_integer() for x in v)


def cell(v: Any, folder: Path | None = None) -> str:
    if folder is not None and isinstance(v, str) and Path(v).suffix.lower() in IMAGE_SUFFIXES:
        p = inside(folder, v)
        if p is not None and p.stat().st_size < 2**20:
            return f'<td><img class="pixel cellimg" src="{data_uri(p)}" alt="{esc(v)}" title="{esc(v)}"></td>'
    if _curve(v):
        return f"<td>{sparkline(v)}</td>"
    cls = ' class="num"' if is_number(v) else ""
    return f"<td{cls}>{fmt(v)}</td>"


def table(
    rows: Sequence[Mapping[str, Any]],
    columns: Sequence[str] | None = None,
    max_rows: int = 300,
    caption: str | None = None,
    folder: Path | None = None,
) -> str:
    """An HTML table of records (dicts); columns default to the union of keys in order."""
    if not rows:
        return ""
    if columns is None:
        seen: dict[str, None] = {}
        for r in rows:
            for k in r:
                seen.setdefault(str(k), None)
        columns = [c for c in seen if any(r.get(c) is not None for r in rows)]  # drop empty columns
    head = "".join(f"<th>{esc(c)}</th>" for c in columns)
    body = []
    for r in rows[:max_rows]:
        body.append("<tr>" + "".join(cell(r.get(c), folder) for c in columns) + "</tr>")
    more = f'<p class="note">… and {len(rows) - max_rows} more rows (see result.json).</p>' if len(rows) > max_rows else ""
    cap = f"<caption>{esc(caption)}</caption>" if caption else ""
    return f'<div class="tablewrap"><table>{cap}<thead><tr>{head}</tr></thead><tbody>{"".join(body)}</tbody></table></div>{more}'


def kv_table(d: Mapping[str, Any], key_name: str = "name", value_name: str = "value") -> str:
    rows = [{key_name: k, value_name: v} for k, v in d.items()]
    return table(rows, [key_name, value_name])


def is_records(v: Any) -> TypeGuard[list[dict[str, Any]]]:
    return isinstance(v, list) and len(v) > 0 and all(isinstance(r, dict) for r in v)


def is_scalar(v: Any) -> bool:
    return v is None or isinstance(v, (str, int, float, bool))


def mapping_html(d: Mapping[str, Any], title: str | None = None, depth: int = 0) -> str:
    """Render a dict of results: scalars as a two-column table, dicts of dicts as a pivot table,
    lists of records as tables, nested dicts recursively."""
    parts: list[str] = []
    scalars = {k: v for k, v in d.items() if is_scalar(v) or (isinstance(v, list) and (len(v) <= 8 or numeric_list(v)) and not is_records(v))}
    if scalars:
        parts.append(table([{"name": k, "value": v} for k, v in scalars.items()], ["name", "value"]))
    # a dict whose values are all dicts of scalars: one row per key (e.g. metrics per layer)
    pivot = {k: v for k, v in d.items() if isinstance(v, dict) and v and all(is_scalar(x) for x in v.values())}
    if len(pivot) >= 2 or (pivot and depth > 0):
        rows = [{"": k, **v} for k, v in pivot.items()]
        parts.append(table(rows))
    else:
        pivot = {}
    for k, v in d.items():
        if k in scalars or k in pivot:
            continue
        if is_records(v):
            parts.append(f"<h4>{esc(k)}</h4>" + table(v))
        elif isinstance(v, dict) and depth < 3:
            inner = mapping_html(v, depth=depth + 1)
            if inner:
                parts.append(f"<h4>{esc(k)}</h4>{inner}")
        elif isinstance(v, list):
            parts.append(f"<p><b>{esc(k)}</b>: {esc(shape_text(v))}</p>")
    if not parts:
        return ""
    head = f"<h3>{esc(title)}</h3>" if title else ""
    return head + "".join(parts)


def line_chart(
    series: Mapping[str, Sequence[tuple[float, float]]],
    *,
    title: str = "",
    xlabel: str = "",
    ylabel: str = "",
    xticks: Sequence[tuple[float, str]] | None = None,
    width: int = 640,
    height: int = 300,
    ylim: tuple[float, float] | None = None,
) -> str:
    """A hand-written SVG line chart (one polyline + dots per series, with a legend)."""
    pts_all = [(x, y) for s in series.values() for x, y in s if is_number(x) and is_number(y) and math.isfinite(y)]
    if not pts_all:
        return ""
    palette = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"]
    left, right, top, bottom = 56, 16, 28, 46
    xs = [p[0] for p in pts_all]
    ys = [p[1] for p in pts_all]
    x0, x1 = min(xs), max(xs)
    y0, y1 = ylim if ylim else (min(ys), max(ys))
    if x1 == x0:
        x0, x1 = x0 - 1, x1 + 1
    if y1 == y0:
        y0, y1 = y0 - 0.5, y1 + 0.5
    pad = (y1 - y0) * 0.05
    y0, y1 = y0 - pad, y1 + pad
    pw, ph = width - left - right, height - top - bottom

    def X(x: float) -> float:
        return left + (x - x0) / (x1 - x0) * pw

    def Y(y: float) -> float:
        return top + ph - (y - y0) / (y1 - y0) * ph

    out = [f'<svg class="chart" viewBox="0 0 {width} {height}" width="{width}" role="img" aria-label="{esc(title)}">']
    if title:
        out.append(f'<text x="{left}" y="16" font-weight="600">{esc(title)}</text>')
    for k in range(5):
        yv = y0 + (y1 - y0) * k / 4
        out.append(f'<line x1="{left}" x2="{left + pw}" y1="{Y(yv):.1f}" y2="{Y(yv):.1f}" stroke="#e3e7ec"/>')
        out.append(f'<text x="{left - 6}" y="{Y(yv) + 4:.1f}" text-anchor="end">{yv:.3g}</text>')
    ticks = xticks or [(x0 + (x1 - x0) * k / 4, f"{x0 + (x1 - x0) * k / 4:.3g}") for k in range(5)]
    for xv, lab in ticks:
        out.append(f'<text x="{X(xv):.1f}" y="{top + ph + 16}" text-anchor="middle">{esc(lab)}</text>')
    out.append(f'<rect x="{left}" y="{top}" width="{pw}" height="{ph}" fill="none" stroke="#9aa4af"/>')
    if xlabel:
        out.append(f'<text x="{left + pw / 2:.1f}" y="{height - 6}" text-anchor="middle">{esc(xlabel)}</text>')
    if ylabel:
        out.append(f'<text x="14" y="{top + ph / 2:.1f}" text-anchor="middle" transform="rotate(-90 14 {top + ph / 2:.1f})">{esc(ylabel)}</text>')
    lx = left + 8
    for i, (name, s) in enumerate(series.items()):
        col = palette[i % len(palette)]
        good = [(x, y) for x, y in s if is_number(x) and is_number(y) and math.isfinite(y)]
        if not good:
            continue
        pts = " ".join(f"{X(x):.1f},{Y(y):.1f}" for x, y in good)
        out.append(f'<polyline fill="none" stroke="{col}" stroke-width="2" points="{pts}"/>')
        for x, y in good:
            out.append(f'<circle cx="{X(x):.1f}" cy="{Y(y):.1f}" r="3" fill="{col}"><title>{esc(name)}: {y:.4g}</title></circle>')
        ly = top + 14 + 15 * i
        out.append(f'<rect x="{lx}" y="{ly - 9}" width="10" height="10" fill="{col}"/><text x="{lx + 14}" y="{ly}">{esc(name)}</text>')
    out.append("</svg>")
    return "".join(out)


def heatmap(matrix: Sequence[Sequence[Any]], rows: Sequence[Any], cols: Sequence[Any], title: str = "") -> str:
    """A matrix as a table with shaded cells (0 = white, 1 = dark blue), e.g. CKA between layers."""
    vals = [float(v) for r in matrix for v in r if is_number(v) and math.isfinite(float(v))]
    if not vals:
        return ""
    lo, hi = min(min(vals), 0.0), max(max(vals), 1.0)
    head = "<th></th>" + "".join(f"<th>{esc(c)}</th>" for c in cols)
    body = []
    for name, r in zip(rows, matrix):
        tds = []
        for v in r:
            if is_number(v) and math.isfinite(float(v)):
                t = (float(v) - lo) / ((hi - lo) or 1.0)
                bg = f"rgb({int(255 - t * 219)},{int(255 - t * 166)},{int(255 - t * 87)})"
                fg = "#fff" if t > 0.55 else "#111"
                tds.append(f'<td class="num" style="background:{bg};color:{fg}">{float(v):.2f}</td>')
            else:
                tds.append("<td>–</td>")
        body.append(f"<tr><th>{esc(name)}</th>{''.join(tds)}</tr>")
    cap = f"<caption>{esc(title)}</caption>" if title else ""
    return f'<div class="tablewrap"><table class="heat">{cap}<thead><tr>{head}</tr></thead><tbody>{"".join(body)}</tbody></table></div>'


def join(parts: Iterable[str]) -> str:
    return "".join(p for p in parts if p)
