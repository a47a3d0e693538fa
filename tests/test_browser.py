"""The report in a real browser: headless Chromium (Debian's package) driven by Playwright.

No browser is downloaded: Playwright launches the system ``chromium``. The test is skipped only
when no such binary exists (CI installs it in ``.ci/run``).
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from layerscope.report import build_report

from report_fixtures import EVIL, EVIL_LAYER, make_results

ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def _chromium() -> str:
    for p in ("/usr/bin/chromium", "/usr/bin/chromium-browser"):
        if Path(p).exists():
            return p
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if not found:
        pytest.skip("no chromium binary (apt-get install chromium)")
    return found


@pytest.fixture
def browser():
    exe = _chromium()
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=exe, args=ARGS)
        try:
            yield b
        finally:
            b.close()


def open_report(browser, path: Path, width: int = 1280):
    page = browser.new_page(viewport={"width": width, "height": 900})
    problems: list[str] = []
    page.on("console", lambda m: problems.append(f"console {m.type}: {m.text}") if m.type in ("error", "warning") else None)
    page.on("pageerror", lambda e: problems.append(f"page error: {e}"))
    page.on("dialog", lambda d: (problems.append(f"dialog: {d.message}"), d.dismiss()))
    page.on("request", lambda r: problems.append(f"request: {r.url}") if not r.url.startswith(("file:", "data:")) else None)
    page.goto(path.resolve().as_uri())
    page.wait_for_load_state("load")
    return page, problems


def hover_point(page, plot: int, point: int) -> str:
    page.evaluate(f"window.layerscopePlots[{plot}].canvas.scrollIntoView({{behavior: 'instant', block: 'center'}})")
    xy = page.evaluate(f"window.layerscopePlots[{plot}].clientPoint({point})")
    page.mouse.move(xy["x"], xy["y"])
    tip = page.locator(".ls-tooltip").nth(plot)
    tip.wait_for(state="visible", timeout=3000)
    return tip.inner_text()


def test_report_in_chromium(browser, tmp_path: Path):
    make_results(tmp_path / "res")
    path = build_report(tmp_path / "res")
    page, problems = open_report(browser, path)
    # every section, each reachable from the table of contents, none empty
    ids = page.eval_on_selector_all("section.analysis", "els => els.map(e => e.id)")
    assert len(ids) == 8
    toc = page.eval_on_selector_all("nav.toc a", "els => els.map(e => e.getAttribute('href').slice(1))")
    assert toc == ids
    for sid in ids:
        assert page.locator(f"#{sid}").inner_text().count("\n") >= 2
    # every inline image decoded
    broken = page.evaluate("Array.from(document.images).filter(i => !i.complete || i.naturalWidth === 0).length")
    assert broken == 0
    # the plots: one per point set; hovering a point shows its label, prediction and id
    assert page.evaluate("window.layerscopePlots.length") == 4
    text = hover_point(page, 0, 0)
    assert "sample 0" in text and "true class: zero" in text and f"predicted: {EVIL}" in text
    text = hover_point(page, 2, 11)  # neurons: index and importances
    assert "neuron 11" in text and "importance for zero: 1" in text
    text = hover_point(page, 3, 1)  # the speech plot: digit and speaker
    assert "speaker: nicolas" in text and "digit: 1" in text and "predicted: 1" in text and "utterance 0 · frame 1" in text
    # zoom and pan move the points; reset brings them back
    where = "(() => { const p = window.layerscopePlots[0]; return [p.sx(3), p.sy(3), p.sx(30), p.sy(30)]; })()"
    before = page.evaluate(where)
    hover_point(page, 0, 3)
    page.mouse.wheel(0, -400)  # zoom in around point 3: it stays put, the others move away
    page.wait_for_timeout(100)
    after = page.evaluate(where)
    assert abs(after[0] - before[0]) < 1 and abs(after[1] - before[1]) < 1
    assert abs(after[2] - before[2]) + abs(after[3] - before[3]) > 20
    xy = page.evaluate("window.layerscopePlots[0].clientPoint(3)")
    page.mouse.move(xy["x"] + 40, xy["y"] + 40)
    page.mouse.down()
    page.mouse.move(xy["x"] + 80, xy["y"] + 60, steps=5)  # drag: pan by (40, 20)
    page.mouse.up()
    panned = page.evaluate(where)
    assert abs(panned[0] - after[0] - 40) < 1.5 and abs(panned[1] - after[1] - 20) < 1.5
    page.evaluate("window.layerscopePlots[0].reset()")
    assert page.evaluate(where) == pytest.approx(before)
    # the <script> label is visible text, never run (a dialog would have been recorded)
    body = page.inner_text("body")
    assert EVIL in body and EVIL_LAYER in body
    assert page.evaluate("document.querySelectorAll('script').length") == 1 + 4
    page.screenshot(path=str(tmp_path / "desktop.png"), full_page=True)
    assert (tmp_path / "desktop.png").stat().st_size > 10000
    assert problems == []


def test_report_fits_a_phone(browser, tmp_path: Path):
    make_results(tmp_path / "res")
    path = build_report(tmp_path / "res")
    page, problems = open_report(browser, path, width=390)
    # nothing wider than the screen except inside horizontally scrolling table wrappers
    overflow = page.evaluate("document.documentElement.scrollWidth")
    assert overflow <= 390
    width = page.evaluate("window.layerscopePlots[0].canvas.getBoundingClientRect().width")
    assert 250 <= width <= 390
    # a tap shows the tooltip too
    page.evaluate("window.layerscopePlots[0].canvas.scrollIntoView({behavior: 'instant', block: 'center'})")
    xy = page.evaluate("window.layerscopePlots[0].clientPoint(4)")
    page.mouse.click(xy["x"], xy["y"])
    assert "sample 4" in page.locator(".ls-tooltip").first.inner_text()
    page.screenshot(path=str(tmp_path / "phone.png"), full_page=True)
    assert problems == []
