"""The HTML report: sections, escaping, self-containedness, scatter data, thumbnails, CLI."""

from __future__ import annotations

import base64
import io
import json
import re
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from layerscope._io import write_json
from layerscope.exceptions import DataError
from layerscope.report import build_report, find_results
from layerscope.report._html import script_json
from layerscope.results import write_result

from report_fixtures import EVIL, EVIL_LAYER, make_results, png


class Page(HTMLParser):
    """Collects tags, attributes, script blocks and visible text of a page."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.scripts: list[tuple[dict[str, str | None], str]] = []
        self.text: list[str] = []
        self._in_script: dict[str, str | None] | None = None
        self._buf: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))
        if tag == "script":
            self._in_script, self._buf = dict(attrs), []

    def handle_endtag(self, tag: str) -> None:
        if tag == "script" and self._in_script is not None:
            self.scripts.append((self._in_script, "".join(self._buf)))
            self._in_script = None

    def handle_data(self, data: str) -> None:
        if self._in_script is not None:
            self._buf.append(data)
        else:
            self.text.append(data)


def parse(path: Path) -> tuple[str, Page]:
    html = path.read_text()
    p = Page()
    p.feed(html)
    return html, p


def plot_specs(page: Page) -> dict[str, dict]:
    return {a["id"]: json.loads(body) for a, body in page.scripts if a.get("type") == "application/json"}


@pytest.fixture
def report(tmp_path: Path) -> tuple[Path, dict[str, Path]]:
    folders = make_results(tmp_path / "res")
    return build_report(tmp_path / "res"), folders


def test_one_section_per_result_and_a_toc(report):
    path, folders = report
    html, page = parse(path)
    assert path == path.parent / "report.html"
    sections = [a for t, a in page.tags if t == "section"]
    # training runs + capture, maximize, projection, neurons, cka, speech, unknown analysis
    assert len(sections) == 8
    ids = [a["id"] for a in sections]
    toc = [a["href"][1:] for t, a in page.tags if t == "a" and (a.get("href") or "").startswith("#")]
    assert toc == ids
    headings = re.findall(r'<section class="analysis" id="[^"]+"><h2>([^<]+)</h2>', html)
    assert headings == ["Training runs", "Model summary and layers: MLP", "Activation maximization: relu1", "Hidden-activity projections",
                        "Neuron projections: relu1", "CKA similarity", "Speech", "Some new analysis"]


def test_labels_from_data_are_escaped_everywhere(report):
    path, _ = report
    html, page = parse(path)
    assert EVIL not in html
    assert EVIL_LAYER not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    # only our own scripts: the JSON data blocks and the one inline program
    kinds = [a.get("type") for a, _ in page.scripts]
    assert kinds.count(None) == 1 and set(kinds) <= {None, "application/json"}
    assert not any(t == "img" and "onerror" in a for t, a in page.tags)
    # the label still reads as text, in the tables and in the plot data
    text = "".join(page.text)
    assert EVIL in text and EVIL_LAYER in text
    specs = plot_specs(page)
    assert any(EVIL in g["names"] for s in specs.values() for g in s["groups"])


def test_script_json_cannot_close_the_script_element():
    value = {"label": "</script><script>alert(1)</script>", "amp": "a & b", "sep": "\u2028"}
    text = script_json(value)
    assert "<" not in text and ">" not in text and "&" not in text and "\u2028" not in text
    assert json.loads(text) == value
    assert json.loads(script_json({"x": float("nan")})) == {"x": None}


def test_self_contained_no_external_urls(report):
    path, folders = report
    html, page = parse(path)
    for tag, attrs in page.tags:
        for key in ("src", "href"):
            v = attrs.get(key)
            if v is not None:
                assert v.startswith(("data:", "#")), (tag, key, v[:40])
        assert not (tag == "link" and attrs.get("rel") == "stylesheet")
    # the figure is the file's bytes
    grid = (folders["maximize"] / "grid.png").read_bytes()
    assert "data:image/png;base64," + base64.b64encode(grid).decode() in html


def test_projection_points_become_scatter_data(report):
    path, folders = report
    _, page = parse(path)
    specs = plot_specs(page)
    proj = [s for s in specs.values() if s["title"].startswith("relu1 · tsne") and s["groups"][0]["name"] == "true class"]
    assert len(proj) == 1
    s = proj[0]
    doc = json.loads((folders["projection"] / "result.json").read_text())["projections"][0]
    assert s["x"] == [p[0] for p in doc["embedding"]] and s["y"] == [p[1] for p in doc["embedding"]]
    assert s["groups"][0]["codes"] == doc["labels"] and s["groups"][0]["names"] == ["zero", EVIL, "two"]
    assert s["pred"] == doc["predictions"] and s["pred"][0] != s["groups"][0]["codes"][0]
    assert s["id"] == list(range(60))
    assert "sprite" not in s  # its data spec does not load: labels only
    (neurons,) = [s for s in specs.values() if s.get("idName") == "neuron"]
    assert neurons["id"] == list(range(12)) and [v["name"] for v in neurons["values"]] == ["importance for zero", f"importance for {EVIL}"]
    assert neurons["values"][0]["range"] == [0.0, 1.0] and neurons["groups"] == []
    speech = [s for s in specs.values() if len(s["groups"]) == 2]
    assert len(speech) == 1 and [g["name"] for g in speech[0]["groups"]] == ["digit", "speaker"]
    assert speech[0]["groups"][1]["names"] == ["jackson", "nicolas", EVIL] and speech[0]["title"].startswith("relu1")
    assert speech[0]["pred"] == doc["predictions"]


def test_unknown_analysis_still_shows_figure_metrics_table_and_parameters(report):
    path, folders = report
    html, _ = parse(path)
    sec = html[html.index("<h2>Some new analysis</h2>"):]
    fig = base64.b64encode((folders["mystery"] / "fig.png").read_bytes()).decode()
    assert fig in sec and "mystery figure" in sec
    sec = sec[:sec.index("</section>")]
    # a metric the glossary does not define is not given a made-up label: it stays in the raw data
    assert 'class="metrics' not in sec
    raw = sec[sec.index('<details class="raw">'):]
    assert "&quot;score&quot;: 0.25" in raw and "&quot;table&quot;: [" in raw
    assert "<summary>parameters</summary>" in sec and "knob" in sec


def test_capture_layers_cka_and_training(report):
    path, _ = report
    html, _ = parse(path)
    assert "<h3>Layers (2)</h3>" in html and "Flatten" in html and "6280" in html
    assert 'class="heat"' in html and html.count('style="background:rgb(') == 9
    assert "runs/mlp: accuracy per epoch" in html


def test_broken_and_outside_files_are_reported_not_fatal(tmp_path: Path):
    root = tmp_path / "r"
    (root / "bad").mkdir(parents=True)
    (root / "bad" / "result.json").write_text("{ not json")
    png(tmp_path / "secret.png")
    write_result(root / "sneaky", "occlusion", figures=[{"path": "../../secret.png", "title": "x"}, {"path": "gone.png"}])
    html, _ = parse(build_report(root))
    assert "Unreadable files" in html and "bad/result.json" in html
    assert "lies outside its result folder" in html and "gone.png is missing" in html
    assert html.count("data:image/png") == 0


def test_empty_and_missing_folders(tmp_path: Path):
    html, _ = parse(build_report(tmp_path, tmp_path / "x.html"))
    assert "No result.json" in html
    with pytest.raises(DataError, match="is not a folder"):
        build_report(tmp_path / "nope")


def test_thumbnails_from_the_results_data(tmp_path: Path):
    rng = np.random.default_rng(1)
    x = rng.integers(0, 256, size=(20, 8, 8), dtype=np.uint8)
    np.savez(tmp_path / "imgs.npz", x=x, y=np.arange(20) % 2)
    ids = [3, 7, 11, 19]
    write_result(tmp_path / "res" / "p", "projection", data=f"npz:{tmp_path / 'imgs.npz'}",
                 projections=[{"layer": "l", "x": [0.0, 1.0, 2.0, 3.0], "y": [1.0, 0.0, 1.0, 0.0], "labels": [1, 1, 1, 1], "sample_ids": ids}])
    _, page = parse(build_report(tmp_path / "res", allow_external_data=True))  # the npz lies outside "res"
    (spec,) = plot_specs(page).values()
    sprite = next(a for t, a in page.tags if t == "img" and a.get("id") == spec["sprite"])
    img = np.asarray(Image.open(io.BytesIO(base64.b64decode(sprite["src"].split(",", 1)[1]))))
    tw, th = spec["tile"]
    assert (tw, th) == (8, 8)
    for k, i in zip(spec["spriteIndex"], ids):
        r, c = divmod(k, spec["cols"])
        np.testing.assert_array_equal(img[r * th:(r + 1) * th, c * tw:(c + 1) * tw], x[i])
    _, page = parse(build_report(tmp_path / "res", tmp_path / "plain.html", thumbnails=False))
    assert "sprite" not in next(iter(plot_specs(page).values()))


def test_points_from_an_npz_file_and_many_points_are_thinned(tmp_path: Path):
    d = tmp_path / "r" / "p"
    d.mkdir(parents=True)
    n = 7000
    np.savez(d / "points.npz", embedding=np.c_[np.arange(n), np.zeros(n)], labels=np.arange(n) % 10)
    write_result(d, "neurons", projections=[{"layer": "fc", "embedding_file": "points.npz"}])
    _, page = parse(build_report(tmp_path / "r"))
    (spec,) = plot_specs(page).values()
    assert len(spec["x"]) == 6000 and "of 7000 points" in spec["note"]
    xs = spec["x"]
    assert xs[0] == 0.0 and all(b > a for a, b in zip(xs, xs[1:])) and xs[-1] >= n - 2


def test_find_results_orders_known_analyses_first(tmp_path: Path):
    for name, analysis in [("a", "zzz"), ("b", "cka"), ("c", "maximize"), ("d", "speech-train")]:
        write_result(tmp_path / name, analysis)
    write_json(tmp_path / "runs" / "x" / "run.json", {"checkpoints": []})
    results, runs, problems = find_results(tmp_path)
    assert [r.analysis for r in results] == ["maximize", "cka", "speech-train", "zzz"]
    assert [r.rel for r in runs] == ["runs/x"] and problems == []


def test_cli_report(tmp_path: Path, capsys):
    from layerscope.cli import main

    make_results(tmp_path / "res")
    with pytest.raises(SystemExit) as ex:
        main(["report", str(tmp_path / "res"), "--out", str(tmp_path / "out.html")])
    assert ex.value.code == 0
    assert (tmp_path / "out.html").stat().st_size > 1000
    assert "out.html" in capsys.readouterr().out
    with pytest.raises(SystemExit) as ex:
        main(["report", str(tmp_path / "missing")])
    assert ex.value.code == 2
    assert "is not a folder" in " ".join(capsys.readouterr().err.split())


def test_plots_of_one_result_share_a_link_group_and_no_other(tmp_path: Path):
    pts = {"x": [0.0, 1.0, 2.0], "y": [1.0, 0.0, 1.0], "labels": [0, 1, 1], "sample_ids": [5, 6, 7]}
    for rel in ("a/b", "a_b"):  # the same id once made safe for HTML: still two groups
        write_result(tmp_path / "r" / rel, "projection", projections=[dict(pts, layer="l1"), dict(pts, layer="l2")])
    html, page = parse(build_report(tmp_path / "r"))
    specs = plot_specs(page)
    links = [s["link"] for s in specs.values()]
    assert len(links) == 4 and links[0] == links[1] and links[2] == links[3] and links[0] != links[2]
    bars = [a["id"] for t, a in page.tags if t == "div" and "linkbar" in (a.get("class") or "")]
    assert bars == [links[0], links[2]]
    assert all("default" not in s for s in specs.values())  # true class, the first colouring, by default
