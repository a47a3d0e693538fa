"""The demo-like report read as a researcher would: every metric label shown is defined by the
glossary where it is shown, no table is shown twice, charts have nice ticks and bounded accuracy
axes, ``±`` appears only with two seeds or more."""

from __future__ import annotations

import math
import re
from html.parser import HTMLParser
from pathlib import Path

import pytest

from layerscope.report import build_report
from layerscope.report._html import mean_std, nice_step, nice_ticks, tick_text
from layerscope.report.glossary import PATTERNS, TERMS, lookup

from report_fixtures import EVIL_LAYER, make_demo_like, make_results

VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "track", "wbr"}
STRUCT_HEADERS = {"", "metric", "value", "what it means", "parameter", "property"}


class Walk(HTMLParser):
    """Everything outside the folded raw data and parameters: tables, labelled metrics, definitions."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.stack: list[tuple[str, dict[str, str]]] = []
        self.section = ""
        self.tables: list[dict] = []  # {"section", "rows": [[cell text]], "heads": [(attrs, text)]}
        self.labelled: list[dict] = []  # elements with data-key: {"section", "tag", "attrs", "text"}
        self.defs: dict[str, dict[str, str]] = {}  # section -> {label: definition} (dl.defs and td.def rows)
        self.yticks: list[list[str]] = []
        self.charts: list[str] = []  # aria-labels of SVG charts
        self.text: list[str] = []
        self._open: list[dict] = []  # collectors of text for open elements
        self._dt: str | None = None

    def hidden(self) -> bool:
        return any(t == "details" and ({"raw", "params"} & set(a.get("class", "").split())) for t, a in self.stack) or \
            any(t in ("script", "style") for t, _ in self.stack)

    def handle_starttag(self, tag: str, attrs_: list[tuple[str, str | None]]) -> None:
        attrs = {k: v or "" for k, v in attrs_}
        if tag == "section":
            self.section = attrs.get("id", "")
        if tag in VOID:
            return
        self.stack.append((tag, attrs))
        if self.hidden():
            return
        if tag == "table":
            self.tables.append({"section": self.section, "rows": [], "heads": []})
        if tag == "tr" and self.tables:
            self.tables[-1]["rows"].append([])
        if tag == "svg" and "chart" in attrs.get("class", ""):
            self.yticks.append([])
            self.charts.append(attrs.get("aria-label", ""))
        rec = {"tag": tag, "attrs": attrs, "text": "", "section": self.section}
        self._open.append(rec)

    def handle_endtag(self, tag: str) -> None:
        if tag in VOID or not self.stack:
            return
        hidden = self.hidden()
        self.stack.pop()
        if hidden:
            return
        rec = self._open.pop() if self._open else None
        if rec is None:
            return
        text, attrs = " ".join(rec["text"].split()), rec["attrs"]
        cls = set(attrs.get("class", "").split())
        if tag in ("td", "th") and self.tables and self.tables[-1]["rows"]:
            self.tables[-1]["rows"][-1].append(text)
            if tag == "th":
                self.tables[-1]["heads"].append((attrs, text))
        if "data-key" in attrs and tag in ("th", "td", "span", "g"):
            self.labelled.append({"section": rec["section"], "tag": tag, "attrs": attrs, "text": text})
        if tag == "dt":
            self._dt = text
        if tag == "dd" and self._dt is not None:
            self.defs.setdefault(rec["section"], {})[self._dt] = text
        if tag == "td" and "def" in cls:
            row = self.tables[-1]["rows"][-1] if self.tables and self.tables[-1]["rows"] else []
            if len(row) >= 3:
                self.defs.setdefault(rec["section"], {})[row[0]] = text
        if tag == "text" and "ytick" in cls and self.yticks:
            self.yticks[-1].append(text)
        if self._open:
            self._open[-1]["text"] += " " + rec["text"] + " "

    def handle_data(self, data: str) -> None:
        if self.hidden():
            return
        self.text.append(data)
        if self._open:
            self._open[-1]["text"] += data


def walk(path: Path) -> Walk:
    w = Walk()
    w.feed(path.read_text())
    return w


@pytest.fixture
def demo_report(tmp_path: Path) -> tuple[Path, Walk]:
    make_demo_like(tmp_path / "demo-out")
    path = build_report(tmp_path / "demo-out")
    return path, walk(path)


def _numbers(rows: list[list[str]]) -> list[str]:
    """The table's non-trivial numbers (3+ significant digits), as shown."""
    out = []
    for row in rows:
        for c in row:
            if re.fullmatch(r"-?\d+\.\d+", c) and len(c.strip("-0.").replace(".", "")) >= 3:
                out.append(c)
    return out


def test_every_metric_label_shown_is_defined_where_it_is_shown(demo_report):
    _, w = demo_report
    assert len(w.labelled) > 60
    check_labels_defined(w)


def check_labels_defined(w: Walk) -> None:
    """Every metric label shown is the glossary's, defined in its section; every table header is a
    defined metric, a structural word or a name; no raw analysis key is shown as a label."""
    for el in w.labelled:
        key = el["attrs"]["data-key"]
        term = lookup(key)
        assert term is not None, f"{key!r} shown in {el['section']} without a glossary entry"
        if el["tag"] == "g":  # an SVG legend entry: its text is the series name
            continue
        assert el["text"] == term.label, (key, el["text"], term.label)
        assert el["attrs"].get("title") == term.definition
        shown = w.defs.get(el["section"], {})
        assert shown.get(term.label) == term.definition, f"{term.label!r} not defined in section {el['section']}"
    # every table header outside the folded raw data is a defined metric, a structural word or a name
    for t in w.tables:
        for attrs, text in t["heads"]:
            cls = set(attrs.get("class", "").split())
            if "metric" in cls:
                assert lookup(attrs["data-key"]) is not None and text == lookup(attrs["data-key"]).label
            elif "struct" in cls:
                assert text in STRUCT_HEADERS, text
            else:
                assert "name" in cls, (t["section"], text, attrs)
    # raw keys written by the analyses are not shown as labels
    body = " ".join(" ".join(w.text).split())
    for raw in ("nh_digit_xutt", "activation_restarts", "sequences", "nh_original", "delta_conv2_top", "mean_top1"):
        assert raw not in body, raw


def test_no_table_is_shown_twice(demo_report):
    _, w = demo_report
    assert len(w.tables) >= 15
    sigs = [(t["section"], tuple(map(tuple, t["rows"]))) for t in w.tables]
    assert len({s for _, s in sigs}) == len(sigs)
    nums = [(t["section"], _numbers(t["rows"])) for t in w.tables]
    for i, (sa, a) in enumerate(nums):
        for sb, b in nums[i + 1:]:
            if len(set(a)) >= 3 and len(set(b)) >= 3:  # one shared number (a model's accuracy quoted twice) is no table
                shared = len(set(a) & set(b)) / min(len(set(a)), len(set(b)))
                assert shared < 0.5, (sa, sb, sorted(set(a) & set(b)))


def test_each_number_once_for_the_doubled_results(demo_report):
    path, _ = demo_report
    html = path.read_text()
    visible = re.sub(r'<details class="(?:raw|more params)">.*?</details>', "", html, flags=re.S)
    # probe accuracy (in metrics.probe and probes), correspondence Δ (metrics and correspondence.delta),
    # speech per-layer numbers (metrics.table and table): once each
    for number in ("0.86", "0.0249", "0.6422", "0.0183"):
        assert len(re.findall(rf">{re.escape(number)}<", visible)) == 1, number


def test_speech_nh_variants_have_different_names(demo_report):
    _, w = demo_report
    labels = {el["attrs"]["data-key"]: el["text"] for el in w.labelled if el["tag"] == "th"}
    assert labels["nh_digit_xutt"] == "NH digit (other recordings)" and labels["nh_digit"] == "NH digit (all frames)"
    # the glossary never gives one label two meanings
    by_label: dict[str, set[str]] = {}
    for term in TERMS.values():
        by_label.setdefault(term.label, set()).add(term.definition)
    assert {k: v for k, v in by_label.items() if len(v) > 1} == {}
    assert lookup("nh_digit_xutt_last").label == "NH digit (other recordings) at the last layer"
    assert lookup("nh_digit_last").label != lookup("nh_digit_xutt_last").label
    assert lookup("delta_conv2_random").label == "Δ conv2 random" and lookup("no_such_metric") is None
    assert all(p.pattern for p, _ in PATTERNS)


def test_cka_heat_map_names_layers_and_charts_have_nice_ticks(demo_report):
    path, w = demo_report
    html = path.read_text()
    heat = html[html.index('<table class="heat">'):]
    heat = heat[:heat.index("</table>")]
    assert re.findall(r'<th class="name">([^<]*)</th>', heat)[:3] == ["relu1", "relu2", "fc&quot;&gt;&lt;img src=x onerror=alert(2)&gt;"]
    assert EVIL_LAYER not in html
    assert w.charts and len(w.yticks) == len(w.charts)
    for title, ticks in zip(w.charts, w.yticks):
        vals = [float(t) for t in ticks]
        step = vals[1] - vals[0]
        mant = step / 10 ** math.floor(math.log10(step))
        assert any(abs(mant - m) < 1e-6 for m in (1, 2, 5)), (title, ticks)
        assert all(abs(b - a - step) < 1e-9 for a, b in zip(vals, vals[1:]))
        if "accuracy" in title:
            assert vals[0] == 0 and vals[-1] == 1, ticks
    assert "mlp: accuracy per epoch" in " ".join(w.charts)


def test_plus_minus_only_with_two_seeds(tmp_path: Path):
    make_demo_like(tmp_path / "one", seeds=1)
    one = " ".join(walk(build_report(tmp_path / "one")).text)
    assert "±" not in one and "0.02 (1 seed)" in one
    make_demo_like(tmp_path / "two", seeds=2)
    two = " ".join(walk(build_report(tmp_path / "two")).text)
    assert "0.04 ± 0.005 (n = 2 seeds)" in two and "0.928 ± 0.012 (n = 2 seeds)" in two
    assert mean_std({"mean": 0.5, "std": 0.0}) == "0.5"


def test_wide_figures_keep_their_size_and_no_sparklines(demo_report, tmp_path: Path):
    path, _ = demo_report
    html = path.read_text()
    assert re.search(r'<img class="fig wide" style="width:1000px"', html)
    assert 'class="spark"' not in html and "<polyline" in html  # charts only, no sparklines of lists
    make_results(tmp_path / "res")
    assert 'class="spark"' not in build_report(tmp_path / "res").read_text()


def test_traces_have_a_legend_and_the_speaker_plot_colours_by_speaker(demo_report):
    path, w = demo_report
    html = path.read_text()
    sec = html[html.index("<h2>Activation maximization"):]
    sec = sec[:sec.index("</section>")]
    assert [f"unit {u}" for u in range(10)] == re.findall(r'<g class="legend-entry"><line[^>]*/><text[^>]*>(unit \d+)</text>', sec)
    assert "traces.png" not in sec.split('<details class="more"><summary>static figures')[0]
    specs = re.findall(r'<script type="application/json" id="(plot\d+)-data">(.*?)</script>', html)
    import json

    embed = [json.loads(s) for _, s in specs if '"default":"speaker"' in s]
    assert len(embed) == 1 and [g["name"] for g in embed[0]["groups"]] == ["digit", "speaker", "cluster"]


@pytest.mark.parametrize("lo, hi, expected", [(0.0709, 0.93, [0.0, 0.2, 0.4, 0.6, 0.8, 1.0]), (3, 17, [0, 5, 10, 15, 20]),
                                              (-0.052, 0.116, [-0.1, -0.05, 0.0, 0.05, 0.1, 0.15]),
                                              (1.0, 1.0, [0.4, 0.6, 0.8, 1.0, 1.2, 1.4, 1.6])])
def test_nice_ticks(lo, hi, expected):
    ticks = nice_ticks(lo, hi)
    assert ticks == pytest.approx(expected)
    step = nice_step(hi - lo) if hi > lo else 0.2
    assert [tick_text(t, step) for t in ticks][:2] == [tick_text(expected[0], step), tick_text(expected[1], step)]
    assert tick_text(0.2, 0.2) == "0.2" and tick_text(5.0, 5.0) == "5" and tick_text(-0.0, 0.02) == "0"
