"""The report's text sections: real results of the five text analyses (tiny BERT), rendered and opened in Chromium."""

from __future__ import annotations

import html
import json
from pathlib import Path

import pytest
import torch

from text_fixtures import transformers, write_tiny_bert  # noqa: F401  (skips without transformers)

from layerscope.data import load_dataset
from layerscope.loading import load_model
from layerscope.report import build_report
from layerscope.report._text import section_text_occlusion, section_text_topk
from layerscope.results import write_result

from test_browser import browser, open_report  # noqa: F401  (the Chromium fixture and page opener)

SPEC = "wordnet:per_class=6:classes=animal,artifact,body,food,person,plant"


@pytest.fixture(scope="module")
def text_results(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A demo-like folder holding one result of each text analysis, computed on the tiny BERT."""
    from layerscope.text import text_maximize, text_occlusion, text_separability, text_topk, text_transfer

    old = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        root = tmp_path_factory.mktemp("report")
        model = load_model(f"hf:{write_tiny_bert(root.parent / 'tiny')}")
        data = load_dataset(SPEC)
        text_separability(model, data, method="pca", data_spec=SPEC).save(root / "text" / "separability")
        text_topk(model, data, ["encoder.layer.0", "encoder.layer.1"], 2, k=3, data_spec=SPEC).save(root / "text" / "topk")
        text_occlusion(model, data, "encoder.layer.1", unit=3, indices=[0, 7], data_spec=SPEC).save(root / "text" / "occlusion")
        text_maximize(model, "encoder.layer.1", [1, 2], length=3, steps=5, restarts=1, data=data, data_spec=SPEC).save(
            root / "text" / "maximize")
        text_transfer(model, load_dataset(f"{SPEC}:train"), load_dataset(f"{SPEC}:test"), task_a=["body", "food"],
                      layers=(0, 2), epochs=1, data_spec=f"{SPEC}:train").save(root / "text" / "transfer")
        write_result(root / "demo", "demo", steps=[{"step": "text-topk", "status": "ok"}])
    finally:
        torch.set_num_threads(old)
    return root


def test_text_sections_show_tokens_as_spans_with_their_values(text_results: Path) -> None:
    page = build_report(text_results, text_results / "report.html").read_text()
    assert "could not be rendered" not in page
    assert all(f"text/{d}" in page for d in ("separability", "topk", "occlusion", "maximize", "transfer"))
    topk = json.loads((text_results / "text" / "topk" / "result.json").read_text())
    top = topk["contexts"]["encoder.layer.0"][0][0]  # unit 1 of layer 0, best text
    peak = top["tokens"][top["position"]]
    assert html.escape(f"{peak}: {top['token_activations'][top['position']]:.4g}", quote=True) in page
    occ = json.loads((text_results / "text" / "occlusion" / "result.json").read_text())
    t = occ["texts"][0]
    a, b = t["spans"][0]
    assert html.escape(f"{t['tokens'][a]}: {t['changes'][0]:.4g}", quote=True) in page
    assert "Test accuracy on task B vs n frozen layers" in page and "A-finetuned bases" in page
    assert "activation, nearest real tokens" in page and "Separability per layer, mean pooling" in page


def test_hostile_text_is_escaped() -> None:
    class R:
        folder = Path(".")
        doc = {"layers": ["L<b>"], "units": {"L<b>": [0]}, "k": 1, "classes": ["<i>x</i>"],
               "summaries": {"L<b>": [{"purity": 1.0, "majority_class": "<img src=x onerror=alert(1)>", "top_tokens": [["<s>", 1]]}]},
               "contexts": {"L<b>": [[{"tokens": ["<script>alert(1)</script>", "ok"], "token_activations": [2.0, "bad"],
                                       "position": 0, "activation": 2.0, "label": 0}]]}}

    out = section_text_topk(R())
    assert "<script>" not in out and "<img" not in out and "&lt;script&gt;" in out and "<i>" not in out
    R.doc = {"target": {"kind": "<b>"}, "texts": [{"tokens": ["a", "<b>"], "spans": [[0, 1], "junk", [1, 9]],
                                                   "changes": [0.5, 1.0, float("nan")], "row": "<u>"}]}
    out = section_text_occlusion(R())
    assert "<b>" not in out and "<u>" not in out and "a: 0.5" in out and "not occluded" in out


def test_text_report_in_chromium(browser, text_results: Path) -> None:  # noqa: F811  (the fixture)
    path = build_report(text_results, text_results / "report.html")
    page, problems = open_report(browser, path)
    titles = page.eval_on_selector_all("section.analysis h2", "els => els.map(e => e.textContent)")
    for want in ("Text: per-layer separability", "Text: top-k contexts", "Text: token occlusion",
                 "Text: activation maximization", "Text: transferability"):
        assert any(t.startswith(want) for t in titles), titles
    spans = page.locator("span.tok")
    assert spans.count() > 20
    shaded = page.evaluate("Array.from(document.querySelectorAll('span.tok')).filter(s => getComputedStyle(s)"
                           ".backgroundColor !== 'rgba(0, 0, 0, 0)').length")
    assert shaded > 10  # the shading reaches the page (inline style not blocked)
    assert page.evaluate("Array.from(document.images).filter(i => !i.complete || i.naturalWidth === 0).length") == 0
    assert page.locator("svg").count() >= 3  # separability (2 poolings) and transfer charts
    assert problems == []


def test_text_sections_define_every_label_and_repeat_no_table(text_results: Path, tmp_path: Path) -> None:
    """The glossary walk of the report tests, on a report of the five text results: every metric label
    shown is defined in its section, every table header is a defined metric, and no table repeats another."""
    from test_report_glossary import check_labels_defined, walk

    path = build_report(text_results, tmp_path / "report.html")
    w = walk(path)
    keys = {el["attrs"]["data-key"] for el in w.labelled}
    assert {"probe_accuracy", "nh_2d", "embedding_activation", "token_activation", "anb_test", "pnb_test"} <= keys
    check_labels_defined(w)
    sigs = [tuple(map(tuple, t["rows"])) for t in w.tables]
    assert len(w.tables) >= 4 and len(set(sigs)) == len(sigs)
