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

from .glossary import lookup

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
        if is_number(v.get("mean")):  # a summary over seeds: mean ± std (n = seeds), ± only from 2 seeds
            return esc(mean_std(v))
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


def cell(v: Any, folder: Path | None = None) -> str:
    if folder is not None and isinstance(v, str) and Path(v).suffix.lower() in IMAGE_SUFFIXES:
        p = inside(folder, v)
        if p is not None and p.stat().st_size < 2**20:
            return f'<td><img class="pixel cellimg" src="{data_uri(p)}" alt="{esc(v)}" title="{esc(v)}"></td>'
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
    head = "".join(f'<th class="raw">{esc(c)}</th>' for c in columns)
    body = []
    for r in rows[:max_rows]:
        body.append("<tr>" + "".join(cell(r.get(c), folder) for c in columns) + "</tr>")
    more = f'<p class="note">… and {len(rows) - max_rows} more rows (see result.json).</p>' if len(rows) > max_rows else ""
    cap = f"<caption>{esc(caption)}</caption>" if caption else ""
    return f'<div class="tablewrap"><table>{cap}<thead><tr>{head}</tr></thead><tbody>{"".join(body)}</tbody></table></div>{more}'


def kv_table(d: Mapping[str, Any], key_name: str = "name", value_name: str = "value") -> str:
    """Two columns (name, value): descriptive facts such as the model or the parameters."""
    body = "".join(f'<tr><td class="key">{esc(k)}</td>{cell(v)}</tr>' for k, v in d.items())
    return (f'<div class="tablewrap"><table class="kvt"><thead><tr><th class="struct">{esc(key_name)}</th><th class="struct">{esc(value_name)}</th>'
            f'</tr></thead><tbody>{body}</tbody></table></div>')


def is_records(v: Any) -> TypeGuard[list[dict[str, Any]]]:
    return isinstance(v, list) and len(v) > 0 and all(isinstance(r, dict) for r in v)


def is_scalar(v: Any) -> bool:
    return v is None or isinstance(v, (str, int, float, bool))


def mean_std(v: Mapping[str, Any]) -> str:
    """``mean ± std (n = k)`` of a summary over seeds; the ``±`` only when there are 2 or more.

    The number of seeds is read from ``seeds`` / ``n_seeds`` or the length of ``per_seed``; when
    it is unknown, or 1, only the mean is shown (with "1 seed" when known).
    """
    n: Any = v.get("seeds", v.get("n_seeds"))
    if not is_number(n) and isinstance(v.get("per_seed"), (dict, list)):
        n = len(v["per_seed"])
    text = fmt_plain(v["mean"])
    if is_number(n) and n >= 2 and is_number(v.get("std")):
        return f"{text} ± {fmt_plain(v['std'])} (n = {int(n)} seeds)"
    return text + (" (1 seed)" if n == 1 else "")


def nice_step(span: float, target: int = 5) -> float:
    """A tick step of 1, 2 or 5 × 10^k giving about ``target`` intervals over ``span``."""
    if not (span > 0 and math.isfinite(span)):
        return 1.0
    raw = span / max(1, target)
    mag = 10.0 ** math.floor(math.log10(raw))
    for m in (1.0, 2.0, 5.0, 10.0):
        if raw <= m * mag * (1 + 1e-9):
            return m * mag
    return 10.0 * mag  # pragma: no cover - the loop always returns


def nice_ticks(lo: float, hi: float, target: int = 5) -> list[float]:
    """Ticks at multiples of a 1/2/5 × 10^k step covering ``[lo, hi]`` (ends rounded outwards)."""
    if hi < lo:
        lo, hi = hi, lo
    if hi == lo:
        lo, hi = lo - 0.5, hi + 0.5
    step = nice_step(hi - lo, target)
    start, stop = math.floor(lo / step + 1e-9), math.ceil(hi / step - 1e-9)
    return [round(k * step, 12) for k in range(int(start), int(stop) + 1)]


def tick_text(v: float, step: float) -> str:
    """A tick label with just the decimals the step needs (0.2 → "0.2", 5 → "5", 0.05 → "0.05")."""
    decimals = max(0, -int(math.floor(math.log10(step) + 1e-9))) if step > 0 else 0
    text = f"{v:.{decimals}f}"
    return "0" if text.strip("-0.") == "" else text


def _term_attrs(key: str) -> tuple[str, str]:
    """``(label, attributes)`` of a metric header: ``class="metric" data-key=... title=definition``."""
    term = lookup(key)
    if term is None:
        return key, f'class="struct" data-key="{esc(key)}"'
    return term.label, f'class="metric" data-key="{esc(key)}" title="{esc(term.definition)}"'


def definitions(keys: Iterable[str]) -> str:
    """The glossary entries of ``keys`` as a compact definition list (each shown once)."""
    seen: dict[str, str] = {}
    for k in keys:
        term = lookup(k)
        if term is not None and term.label not in seen:
            seen[term.label] = term.definition
    if not seen:
        return ""
    items = "".join(f"<dt>{esc(label)}</dt><dd>{esc(d)}</dd>" for label, d in seen.items())
    return f'<dl class="defs">{items}</dl>'


def metric_table(
    rows: Sequence[Mapping[str, Any]],
    columns: Sequence[str],
    *,
    caption: str | None = None,
    define: bool = True,
    folder: Path | None = None,
    max_rows: int = 300,
) -> str:
    """A curated table: every column is a glossary key, shown with its label; definitions follow.

    Columns the glossary does not define, and columns empty in every row, are left out (they stay
    in the section's raw data).
    """
    cols = [c for c in columns if lookup(c) is not None and any(r.get(c) is not None for r in rows)]
    if not rows or not cols:
        return ""
    head = "".join(f"<th {_term_attrs(c)[1]}>{esc(_term_attrs(c)[0])}</th>" for c in cols)
    body = "".join("<tr>" + "".join(cell(r.get(c), folder) for c in cols) + "</tr>" for r in rows[:max_rows])
    more = f'<p class="note">… and {len(rows) - max_rows} more rows (in the raw data).</p>' if len(rows) > max_rows else ""
    cap = f"<caption>{esc(caption)}</caption>" if caption else ""
    return (f'<div class="tablewrap"><table class="metrics">{cap}<thead><tr>{head}</tr></thead><tbody>{body}</tbody></table></div>{more}'
            + (definitions(cols) if define else ""))


def scalar_metrics(metrics: Mapping[str, Any], *, skip: Iterable[str] = ()) -> tuple[str, list[str]]:
    """Scalar metrics the glossary defines as a three-column table (metric, value, meaning).

    Returns the HTML and the keys left out (undefined, or not scalars): those stay in the raw data.
    """
    skipped = set(skip)
    rows, left = [], []
    for k, v in metrics.items():
        if k in skipped:
            continue
        term = lookup(str(k))
        if term is None or not (is_scalar(v) or (isinstance(v, dict) and is_number(v.get("mean")))):
            left.append(str(k))
            continue
        if v is None:
            continue
        rows.append(f'<tr><td {_term_attrs(str(k))[1]}>{esc(term.label)}</td>{cell(v)}<td class="def">{esc(term.definition)}</td></tr>')
    if not rows:
        return "", left
    head = '<tr><th class="struct">metric</th><th class="struct">value</th><th class="struct">what it means</th></tr>'
    return f'<div class="tablewrap"><table class="metrics scalars"><thead>{head}</thead><tbody>{"".join(rows)}</tbody></table></div>', left


def _abbreviate(obj: Any, depth: int = 0) -> Any:
    """A JSON value with long lists shortened (``[2000 numbers]``) for the raw-data view."""
    if isinstance(obj, dict):
        if depth > 6:
            return f"{{{len(obj)} keys}}"
        return {str(k): _abbreviate(v, depth + 1) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        if len(obj) > 12 and all(is_number(x) or x is None for x in obj):
            return f"[{len(obj)} numbers: {', '.join(fmt_plain(x) for x in obj[:4])}, …]"
        if len(obj) > 12:
            return [_abbreviate(x, depth + 1) for x in obj[:6]] + [f"… {len(obj) - 6} more items"]
        return [_abbreviate(x, depth + 1) for x in obj]
    if isinstance(obj, float) and not math.isfinite(obj):
        return str(obj)
    return obj


def raw_details(doc: Mapping[str, Any], summary: str = "raw data (result.json, long lists shortened)") -> str:
    """The whole document behind a toggle, as indented JSON text (no tables: nothing is shown twice)."""
    text = json.dumps(_abbreviate(dict(doc)), indent=1, ensure_ascii=False)
    if len(text) > 200_000:
        text = text[:200_000] + "\n… (cut; see result.json)"
    return f'<details class="raw"><summary>{esc(summary)}</summary><pre>{esc(text)}</pre></details>'


PALETTE = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"]


def line_chart(
    series: Mapping[str, Sequence[tuple[float, float]]],
    *,
    title: str = "",
    xlabel: str = "",
    ylabel: str = "",
    xticks: Sequence[tuple[float, str]] | None = None,
    width: int = 640,
    height: int = 280,
    ylim: tuple[float, float] | None = None,
    dashed: Iterable[str] = (),
    keys: Mapping[str, str] | None = None,
) -> str:
    """A hand-written SVG line chart: nice 1/2/5 ticks, a legend below the plot area (never over it).

    ``ylim`` bounds the axis (e.g. ``(0, 1)`` for accuracies: the axis never goes past it);
    ``dashed`` names series drawn dashed (chance levels); ``keys`` maps a series name to the
    glossary key it shows (written as ``data-key`` on its legend entry).
    """
    pts_all = [(x, y) for s in series.values() for x, y in s if is_number(x) and is_number(y) and math.isfinite(y)]
    if not pts_all:
        return ""
    dashed = set(dashed)
    keys = keys or {}
    left, right, top = 56, 16, 26 if title else 10
    xs = [float(p[0]) for p in pts_all]
    ys = [float(p[1]) for p in pts_all]
    x0, x1 = min(xs), max(xs)
    if x1 == x0:
        x0, x1 = x0 - 1, x1 + 1
    if ylim is not None:
        y0, y1 = ylim
        yt = nice_ticks(y0, y1)
        yt = [t for t in yt if y0 - 1e-9 <= t <= y1 + 1e-9]
    else:
        yt = nice_ticks(min(ys), max(ys))
        y0, y1 = yt[0], yt[-1]
    ystep = (yt[1] - yt[0]) if len(yt) > 1 else 1.0
    names = [n for n, s in series.items() if any(is_number(x) and is_number(y) for x, y in s)]
    # legend below the x axis: rows of up to 3 entries
    per_row = 3
    legend_rows = math.ceil(len(names) / per_row)
    ph = height - top - 40
    bottom_extra = 18 * legend_rows + 6
    total_h = top + ph + 40 + bottom_extra
    pw = width - left - right

    def X(x: float) -> float:
        return left + (x - x0) / (x1 - x0) * pw

    def Y(y: float) -> float:
        return top + ph - (y - y0) / ((y1 - y0) or 1.0) * ph

    out = [f'<div class="figscroll"><svg class="chart" viewBox="0 0 {width} {total_h}" width="{width}" role="img" aria-label="{esc(title)}">']
    if title:
        out.append(f'<text x="{left}" y="16" font-weight="600">{esc(title)}</text>')
    for yv in yt:
        out.append(f'<line x1="{left}" x2="{left + pw}" y1="{Y(yv):.1f}" y2="{Y(yv):.1f}" stroke="#e3e7ec"/>')
        out.append(f'<text class="ytick" x="{left - 6}" y="{Y(yv) + 4:.1f}" text-anchor="end">{tick_text(yv, ystep)}</text>')
    if xticks is None:
        xt = [t for t in nice_ticks(x0, x1) if x0 - 1e-9 <= t <= x1 + 1e-9]
        xstep = (xt[1] - xt[0]) if len(xt) > 1 else 1.0
        xticks = [(t, tick_text(t, xstep)) for t in xt]
    for xv, lab in xticks:
        out.append(f'<text class="xtick" x="{X(xv):.1f}" y="{top + ph + 16}" text-anchor="middle">{esc(lab)}</text>')
    out.append(f'<rect x="{left}" y="{top}" width="{pw}" height="{ph}" fill="none" stroke="#9aa4af"/>')
    if xlabel:
        out.append(f'<text x="{left + pw / 2:.1f}" y="{top + ph + 33}" text-anchor="middle">{esc(xlabel)}</text>')
    if ylabel:
        out.append(f'<text x="14" y="{top + ph / 2:.1f}" text-anchor="middle" transform="rotate(-90 14 {top + ph / 2:.1f})">{esc(ylabel)}</text>')
    for i, name in enumerate(names):
        col = PALETTE[i % len(PALETTE)]
        good = [(float(x), float(y)) for x, y in series[name] if is_number(x) and is_number(y) and math.isfinite(y)]
        dash = ' stroke-dasharray="5 4"' if name in dashed else ""
        pts = " ".join(f"{X(x):.1f},{Y(y):.1f}" for x, y in good)
        out.append(f'<polyline fill="none" stroke="{col}" stroke-width="2"{dash} points="{pts}"/>')
        for x, y in good if len(good) <= 15 else []:  # long traces: the line alone
            out.append(f'<circle cx="{X(x):.1f}" cy="{Y(y):.1f}" r="3" fill="{col}"><title>{esc(name)}: {y:.4g}</title></circle>')
        lx = left + (i % per_row) * (pw / per_row)
        ly = top + ph + 40 + 18 * (i // per_row) + 8
        key = keys.get(name)
        attr = f' class="legend-entry" data-key="{esc(key)}"' if key else ' class="legend-entry"'
        out.append(f'<g{attr}><line x1="{lx:.1f}" x2="{lx + 18:.1f}" y1="{ly - 4}" y2="{ly - 4}" stroke="{col}" stroke-width="2.5"{dash}/>'
                   f'<text x="{lx + 23:.1f}" y="{ly}">{esc(name)}</text></g>')
    out.append("</svg></div>")
    return "".join(out)


def heatmap(matrix: Sequence[Sequence[Any]], rows: Sequence[Any], cols: Sequence[Any], caption: str = "") -> str:
    """A matrix as a table with shaded cells (0 = white, 1 = dark blue), rows and columns named
    (e.g. CKA between layers, labelled with the layer names)."""
    vals = [float(v) for r in matrix for v in r if is_number(v) and math.isfinite(float(v))]
    if not vals:
        return ""
    lo, hi = min(min(vals), 0.0), max(max(vals), 1.0)
    head = '<th class="struct"></th>' + "".join(f'<th class="name">{esc(c)}</th>' for c in cols)
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
        body.append(f'<tr><th class="name">{esc(name)}</th>{"".join(tds)}</tr>')
    cap = f"<caption>{esc(caption)}</caption>" if caption else ""
    return f'<div class="tablewrap"><table class="heat">{cap}<thead><tr>{head}</tr></thead><tbody>{"".join(body)}</tbody></table></div>'


def join(parts: Iterable[str]) -> str:
    return "".join(p for p in parts if p)
