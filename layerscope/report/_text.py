"""Report sections of the text analyses (issue 14): separability, top-k contexts, occlusion, maximization, transfer.

Each function takes a result folder (anything with ``.doc``, the parsed ``result.json``, and
``.folder``) and returns the HTML of what is particular to that analysis: per-layer charts and
tables, and the **tokens as HTML spans** shaded by activation (top-k) or by the change when
occluded (occlusion), with the value in each span's ``title``. The builder adds the figures,
metrics and parameters after it (:data:`TEXT_SECTIONS` is its dispatch table). Nothing is
computed here beyond picking and formatting the numbers the result holds; every string from the
result is escaped.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Callable, Protocol, Sequence

from ._html import esc, fmt, is_number, is_records, join, line_chart, metric_table

__all__ = ["TEXT_SECTIONS", "section_text_separability", "section_text_topk", "section_text_occlusion",
           "section_text_maximize", "section_text_transfer"]

#: contexts shown per unit, units per layer, tokens either side of a peak
MAX_UNITS = 12
WINDOW = 10


class _Result(Protocol):
    doc: dict[str, Any]
    folder: Path


def _dict(v: Any) -> dict[str, Any]:
    return v if isinstance(v, dict) else {}


def _num(v: Any) -> float | None:
    return float(v) if is_number(v) and math.isfinite(float(v)) else None


def _short(layer: Any) -> str:
    return str(layer).replace("encoder.layer.", "layer ").replace("embeddings", "emb")


def _class(classes: Any, label: Any) -> str:
    if isinstance(classes, list) and isinstance(label, int) and 0 <= label < len(classes):
        return str(classes[label]).removeprefix("noun.")
    return ""


def _span(token: Any, alpha: float, title: str, *, color: str = "230,85,13", bold: bool = False) -> str:
    a = min(max(alpha, 0.0), 1.0)
    weight = "font-weight:bold;" if bold else ""
    return (f'<span class="tok" style="background:rgba({color},{a:.2f});{weight}padding:0 1px;border-radius:2px" '
            f'title="{esc(title)}">{esc(token)}</span>')


def _tokens_line(tokens: Sequence[Any], values: Sequence[Any], peak: int | None, lo: int, hi: int) -> str:
    """Tokens ``lo..hi`` as spans shaded by ``value / max(value)`` (negative values unshaded)."""
    vals = [_num(v) for v in values]
    top = max([v for v in vals if v is not None] + [1e-12])
    spans = []
    for t in range(lo, hi):
        v = vals[t] if t < len(vals) else None
        spans.append(_span(tokens[t], (v or 0.0) / top, f"{tokens[t]}: {fmt(v)}", bold=t == peak))
    return ("… " if lo > 0 else "") + " ".join(spans) + (" …" if hi < len(tokens) else "")


# ------------------------------------------------------------------------------------------------
def section_text_separability(r: _Result) -> str:
    """Per-layer probe accuracy and NH (one chart per pooling, both variants) and the table."""
    doc = r.doc
    rows = [row for row in doc.get("table") or [] if isinstance(row, dict)]
    layers = [str(x) for x in doc.get("layers") or []]
    m = _dict(doc.get("metrics"))
    parts = []
    said = [f"{esc(p)} pooling: <b>{esc(m.get(f'separates_most_{p}'))}</b> (probe {fmt(m.get(f'best_probe_accuracy_{p}'))})"
            for p in doc.get("poolings") or [] if m.get(f"separates_most_{p}") is not None]
    if said:
        parts.append(f"<p>Where the classes separate most (highest held-out probe accuracy of the pretrained model): "
                     f"{'; '.join(said)}. Chance: probe {fmt(m.get('probe_chance'))}, NH {fmt(m.get('nh_chance'))}.</p>")
    for pooling in doc.get("poolings") or []:
        series: dict[str, list[tuple[float, float]]] = {}
        for variant in doc.get("variants") or []:
            for metric, name in (("probe_accuracy", "probe"), ("nh_2d", "NH 2-D"), ("nh_activation", "NH act.")):
                pts = []
                for i, layer in enumerate(layers):
                    v = next((_num(x.get(metric)) for x in rows if (x.get("variant"), x.get("pooling"), x.get("layer")) ==
                              (variant, pooling, layer)), None)
                    if v is not None:
                        pts.append((float(i), v))
                if pts:
                    series[f"{variant}: {name}"] = pts
        parts.append(line_chart(series, title=f"Separability per layer, {pooling} pooling", xlabel="layer",
                                xticks=[(float(i), _short(x)) for i, x in enumerate(layers)], ylim=(0.0, 1.0)))
    cols = ["variant", "pooling", "layer", "probe_accuracy", "probe_chance", "nh_2d", "nh_activation"]
    parts.append(metric_table(rows, cols, caption="probe accuracy (held out) and neighborhood hit per layer"))
    return join(parts)


def section_text_topk(r: _Result) -> str:
    """Per layer and unit: the summary line, then each top context with its tokens shaded by activation."""
    doc = r.doc
    classes = doc.get("classes")
    contexts = _dict(doc.get("contexts"))
    summaries = _dict(doc.get("summaries"))
    units = _dict(doc.get("units"))
    parts = [f"<p>Tokens shaded by the unit's activation (darkest = the text's peak, in bold); hover a token for its "
             f"value. Lexname purity of the top-{esc(doc.get('k'))}: chance {fmt(doc.get('purity_chance'))}.</p>"]
    for layer in doc.get("layers") or []:
        blocks = []
        sums, ctxs = summaries.get(layer) or [], contexts.get(layer) or []
        for j, unit in enumerate((units.get(layer) or [])[:MAX_UNITS]):
            s = sums[j] if j < len(sums) and isinstance(sums[j], dict) else {}
            top = ", ".join(f"{t} ({c})" for t, c in (s.get("top_tokens") or [])[:5] if isinstance(t, str))
            lines = []
            for c in ctxs[j] if j < len(ctxs) and isinstance(ctxs[j], list) else []:
                if not isinstance(c, dict):
                    continue
                toks = [str(t) for t in c.get("tokens") or []]
                pos = c.get("position") if isinstance(c.get("position"), int) else None
                lo = max(0, (pos or 0) - WINDOW)
                hi = min(len(toks), (pos or 0) + WINDOW + 1)
                lines.append(f'<div class="textctx"><code>{fmt(c.get("activation"))}</code> '
                             f'<small>{esc(_class(classes, c.get("label")))}</small> '
                             f'{_tokens_line(toks, c.get("token_activations") or [], pos, lo, hi)}</div>')
            blocks.append(f"<h4>unit {esc(unit)}: purity {fmt(s.get('purity'))} ({esc(s.get('majority_class') or '')}); "
                          f"top tokens {esc(top)}</h4>" + "".join(lines))
        more = len(units.get(layer) or []) - MAX_UNITS
        note = f'<p class="note">… and {more} more units (see result.json).</p>' if more > 0 else ""
        parts.append(f"<h3>{esc(layer)}</h3>" + "".join(blocks) + note)
    return join(parts)


def section_text_occlusion(r: _Result) -> str:
    """Each text's tokens shaded by the target's change when occluded (red: supported it, blue: against)."""
    doc = r.doc
    target = _dict(doc.get("target"))
    what = "; ".join(f"{k}: {v}" for k, v in target.items() if isinstance(v, (str, int, float)))
    parts = [f"<p>Target: {esc(what)}. Each token is shaded by the change of the target when it is occluded "
             "(n-grams: the mean change of the spans covering it); red = the token supported the target, blue = it "
             "worked against it; hover a token for its value.</p>"]
    for t in doc.get("texts") or []:
        if not isinstance(t, dict):
            continue
        toks = [str(x) for x in t.get("tokens") or []]
        heat: list[list[float]] = [[] for _ in toks]
        for span, ch in zip(t.get("spans") or [], t.get("changes") or []):
            v = _num(ch)
            if v is None or not isinstance(span, list) or len(span) != 2:
                continue
            for i in range(max(0, int(span[0])), min(len(toks), int(span[1]))):
                heat[i].append(v)
        vals = [sum(h) / len(h) if h else None for h in heat]
        top = max([abs(v) for v in vals if v is not None] + [1e-12])
        spans = []
        for tok, v in zip(toks, vals):
            if v is None:
                spans.append(f'<span class="tok" title="not occluded">{esc(tok)}</span>')
            else:
                spans.append(_span(tok, abs(v) / top, f"{tok}: {v:.4g}", color="214,39,40" if v >= 0 else "31,119,180"))
        parts.append(f'<div class="textctx"><small>row {esc(t.get("row"))} '
                     f'{esc(_class(doc.get("classes"), t.get("label")))}</small> {" ".join(spans)}</div>')
    return join(parts)


def section_text_maximize(r: _Result) -> str:
    """The table: activation reached in embedding space, by the nearest real tokens, and by the data's top-1."""
    rows = []
    for u in r.doc.get("units") or []:
        if not isinstance(u, dict):
            continue
        emb, tok = _num(u.get("embedding_activation")), _num(u.get("token_activation"))
        rows.append({
            "unit": u.get("unit"), "embedding_activation": emb, "token_activation": tok,
            "activation_gap": None if emb is None or tok is None else emb - tok,
            "data_top1": u.get("data_top1"),
            "tokens": " ".join(str(x) for x in u.get("tokens") or []),
            "data_top1_text": u.get("data_top1_text"),
        })
    cols = ["unit", "embedding_activation", "token_activation", "activation_gap", "data_top1", "tokens", "data_top1_text"]
    return metric_table(rows, cols, caption=f"layer {r.doc.get('layer')}: what the optimised embeddings reach, what the real "
                               "tokens nearest to them reach, and the best text of the data")


def section_text_transfer(r: _Result) -> str:
    """Test accuracy on task B against n frozen layers (chart and table), the A-finetuned bases."""
    doc = r.doc
    summary = [s for s in doc.get("summary") or [] if isinstance(s, dict)]
    effects = {e.get("n"): e.get("finetuning_effect") for e in doc.get("effects") or [] if isinstance(e, dict)}
    task_b = _dict(doc.get("task_b"))
    groups = "; ".join(f"{g}: {', '.join(str(c).removeprefix('noun.') for c in v)}" for g, v in task_b.items()
                       if isinstance(v, list))
    task_a = ", ".join(str(c).removeprefix("noun.") for c in doc.get("task_a") or [])
    m = _dict(doc.get("metrics"))
    parts = [f"<p>Task B ({esc(groups)}); task A: {esc(task_a)}. Embeddings and the first n encoder layers are copied "
             "from the base and frozen; the layers above and a linear head are trained on B; the epoch is chosen on "
             f"held-out training texts and the test accuracy reported. Majority class on B's test texts: "
             f"{fmt(m.get('chance_b'))}.</p>"]
    series: dict[str, list[tuple[float, float]]] = {}
    for cond, label in (("PnB", "PnB (pretrained base)"), ("AnB", "AnB (A-finetuned base)")):
        pts = [(float(s["n"]), v) for s in summary if s.get("condition") == cond and is_number(s.get("n"))
               and (v := _num(s.get("mean"))) is not None]
        if pts:
            series[label] = pts
    chance = _num(m.get("chance_b"))
    if series and chance is not None:
        xs = [x for pts in series.values() for x, _ in pts]
        series["majority class"] = [(min(xs), chance), (max(xs), chance)]
    parts.append(line_chart(series, title="Test accuracy on task B vs n frozen layers (mean over seeds)",
                            xlabel="n frozen encoder layers", ylabel="test accuracy"))
    ns = sorted({int(s["n"]) for s in summary if is_number(s.get("n"))})
    rows = []
    for n in ns:
        row: dict[str, Any] = {"n": n}
        for cond in ("PnB", "AnB"):
            s = next((x for x in summary if x.get("condition") == cond and x.get("n") == n), None)
            c = cond.lower()
            row[f"{c}_test"] = s.get("mean") if s else None
            row[f"{c}_range"] = f"{fmt(s.get('min'))}–{fmt(s.get('max'))}" if s else None
            row[f"{c}_val"] = s.get("val_mean") if s else None
        e = effects.get(n)
        row["anb_minus_pnb"] = e.get("mean") if isinstance(e, dict) else None
        row["seeds"] = next((x.get("seeds") for x in summary if x.get("n") == n), None)
        rows.append(row)
    cols = ["n", "pnb_test", "pnb_range", "pnb_val", "anb_test", "anb_range", "anb_val", "anb_minus_pnb", "seeds"]
    parts.append(metric_table(rows, cols, caption="test accuracy on task B per n frozen layers (mean and seed range), "
                                                  "held-out accuracy, A-finetuning effect"))
    bases = doc.get("base_a")
    if is_records(bases):
        rows_a = [{"seed": b.get("seed"), "task_a_val_accuracy": b.get("val_accuracy"), "best_epoch": b.get("best_epoch"),
                   "task_a_test_accuracy": b.get("test_accuracy"), "seconds": b.get("seconds")} for b in bases]
        parts.append(metric_table(rows_a, ["seed", "task_a_val_accuracy", "best_epoch", "task_a_test_accuracy", "seconds"],
                                  caption="A-finetuned bases: accuracy on task A"))
    return join(parts)


#: analysis name -> section function (the builder's dispatch entries)
TEXT_SECTIONS: dict[str, Callable[[Any], str]] = {
    "text_separability": section_text_separability,
    "text_topk": section_text_topk,
    "text_occlusion": section_text_occlusion,
    "text_maximize": section_text_maximize,
    "text_transfer": section_text_transfer,
}
