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


# -- linked projections (issue 16): colour by true class, isolate a class, find a sample everywhere --

COUNT_COLOURS = """(i) => {
  // pixels of each class colour (drawn with alpha over white, perhaps twice) and of the selection ring
  const p = window.layerscopePlots[i], c = p.canvas, d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
  const hex = (h) => [1, 3, 5].map(k => parseInt(h.slice(k, k + 2), 16));
  const pal = Array.from({length: 10}, (_, k) => hex(window.layerscopeColor(k)));
  const counts = new Array(10).fill(0); let ring = 0;
  for (let j = 0; j < d.length; j += 4) {
    const px = [d[j], d[j + 1], d[j + 2]];
    if (px[0] > 190 && px[1] < 40 && px[2] < 40) { ring++; continue; }
    for (let k = 0; k < 10; k++) {
      const col = pal[k]; let m = 0;
      for (let ch = 1; ch < 3; ch++) { if (Math.abs(col[ch] - 255) > Math.abs(col[m] - 255)) { m = ch; } }
      const w = (255 - px[m]) / (255 - col[m]);
      if (w < 0.6 || w > 1.02) { continue; }
      if ([0, 1, 2].every(ch => Math.abs(w * col[ch] + (1 - w) * 255 - px[ch]) < 5)) { counts[k]++; break; }
    }
  }
  return {counts: counts, ring: ring};
}"""


def _shots_dir(tmp_path: Path) -> Path:
    import os

    d = Path(os.environ.get("LAYERSCOPE_SCREENSHOTS") or tmp_path)
    d.mkdir(parents=True, exist_ok=True)
    return d


def _link(page, n_plots: int) -> tuple[str, list[int]]:
    """The link group with ``n_plots`` plots: its id and the plots' indices in window.layerscopePlots."""
    groups = page.evaluate("Object.values(window.layerscopeLinks).map(l => [l.id, l.plots.map(p => window.layerscopePlots.indexOf(p))])")
    (found,) = [g for g in groups if len(g[1]) == n_plots]
    return found[0], found[1]


def test_linked_projections_in_chromium(browser, tmp_path: Path):
    from report_fixtures import make_demo_like

    make_demo_like(tmp_path / "demo-out")
    path = build_report(tmp_path / "demo-out")
    page, problems = open_report(browser, path)
    modes = page.evaluate("Object.values(window.layerscopeLinks).map(l => l.mode)")
    assert modes == ["true class", "digit", "speaker"]  # projections, speech frames, speaker embeddings
    link, plots = _link(page, 4)  # the projections: 2 layers x 2 checkpoints
    titles = [page.evaluate(f"window.layerscopePlots[{i}].spec.title") for i in plots]
    assert titles == ["relu1 · epoch 0 · tsne", "relu2 · epoch 0 · tsne", "relu1 · epoch 5 · tsne", "relu2 · epoch 5 · tsne"]
    untrained = plots[0]  # predicts class 0 for every digit
    count = lambda i: page.evaluate(COUNT_COLOURS, i)  # noqa: E731
    # by default the colour is the TRUE class: the untrained checkpoint shows its three classes
    c = count(untrained)["counts"]
    assert min(c[:3]) > 100 and sum(c[3:]) == 0, c
    page.select_option(f"#{link} select", "predicted class")
    c = count(untrained)["counts"]
    assert c[0] > 300 and c[1] == c[2] == 0, c  # ... and one colour when coloured by the prediction
    assert page.evaluate(f"window.layerscopePlots[{plots[2]}].modeName()") == "predicted class"  # linked: every plot switched
    page.select_option(f"#{link} select", "true class")

    # a legend click isolates a class in every linked plot; a second click shows all again
    page.locator(f"#plot{untrained + 1} .legend button.item[data-code='2']").click()
    for i in plots:
        c = count(i)["counts"]
        assert c[2] > 100 and c[0] == c[1] == 0, (i, c)
    assert page.locator(f"#plot{plots[3] + 1} .legend button.item[data-code='2']").get_attribute("aria-pressed") == "true"
    page.locator(f"#plot{plots[3] + 1} .legend button.item[data-code='2']").click()
    assert min(count(plots[3])["counts"][:3]) > 100
    # shift-click hides a class (and a second shift-click shows it)
    page.locator(f"#plot{untrained + 1} .legend button.item[data-code='1']").click(modifiers=["Shift"])
    for i in plots:
        c = count(i)["counts"]
        assert c[1] == 0 and c[0] > 100 and c[2] > 100, (i, c)
    page.locator(f"#plot{untrained + 1} .legend button.item[data-code='1']").click(modifiers=["Shift"])
    assert count(untrained)["counts"][1] > 100

    # search a sample id: ringed in every linked plot, at that sample's point
    assert all(count(i)["ring"] == 0 for i in plots)
    page.fill(f"#{link} input[type=search]", "137")
    page.press(f"#{link} input[type=search]", "Enter")
    for i in plots:
        assert page.evaluate(f"window.layerscopePlots[{i}].selectedIndex()") == 37
        assert page.get_attribute(f"#plot{i + 1} canvas", "data-selected") == "37"
        assert count(i)["ring"] > 30
    assert "sample 137 is ringed in 4 of 4 plots" in page.inner_text(f"#{link} .status")
    assert all(count(i)["ring"] == 0 for i in _link(page, 3)[1])  # other data: not linked
    page.fill(f"#{link} input[type=search]", "99999")
    page.press(f"#{link} input[type=search]", "Enter")
    assert "sample 99999 is not in these plots" in page.inner_text(f"#{link} .status")
    assert all(count(i)["ring"] == 0 for i in plots)

    # clicking a point selects its sample in the other plots too
    page.evaluate(f"window.layerscopePlots[{plots[3]}].canvas.scrollIntoView({{behavior: 'instant', block: 'center'}})")
    xy = page.evaluate(f"window.layerscopePlots[{plots[3]}].clientPoint(5)")
    page.mouse.click(xy["x"], xy["y"])
    picked = page.evaluate(f"window.layerscopePlots[{plots[3]}].spec.id[window.layerscopePlots[{plots[3]}].selectedIndex()]")
    j = picked - 100  # sample ids are 100 + index in every plot
    assert page.evaluate(f"window.layerscopePlots[{plots[0]}].selectedIndex()") == j
    assert page.input_value(f"#{link} input[type=search]") == str(picked)
    page.evaluate(f"window.layerscopePlots[{plots[0]}].canvas.scrollIntoView({{behavior: 'instant', block: 'center'}})")
    page.screenshot(path=str(_shots_dir(tmp_path) / "linked-1280.png"), full_page=False)
    page.screenshot(path=str(_shots_dir(tmp_path) / "report-1280.png"), full_page=True)
    assert [p for p in problems if "willReadFrequently" not in p] == []  # our own pixel reads


def test_linked_projections_on_a_phone(browser, tmp_path: Path):
    from report_fixtures import make_demo_like

    make_demo_like(tmp_path / "demo-out")
    path = build_report(tmp_path / "demo-out")
    page, problems = open_report(browser, path, width=390)
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    link, plots = _link(page, 4)
    assert page.evaluate(f"document.getElementById('{link}').getBoundingClientRect().width") <= 390
    page.fill(f"#{link} input[type=search]", "101")
    page.press(f"#{link} input[type=search]", "Enter")
    assert [page.evaluate(f"window.layerscopePlots[{i}].selectedIndex()") for i in plots] == [1, 1, 1, 1]
    page.locator(f"#plot{plots[1] + 1} .legend button.item[data-code='0']").click()
    assert page.evaluate(f"window.layerscopeLinks['{link}'].iso") == 0
    c = page.evaluate(COUNT_COLOURS, plots[2])["counts"]
    assert c[0] > 50 and c[1] == c[2] == 0
    # the top-9 grid keeps its natural width and scrolls sideways inside its box
    img = page.locator("img.fig.wide").first
    assert img.evaluate("e => e.getBoundingClientRect().width") == 1000
    assert img.evaluate("e => e.parentElement.scrollWidth > e.parentElement.clientWidth")
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    page.evaluate(f"window.layerscopePlots[{plots[2]}].canvas.scrollIntoView({{behavior: 'instant', block: 'center'}})")
    page.screenshot(path=str(_shots_dir(tmp_path) / "linked-390.png"), full_page=False)
    page.screenshot(path=str(_shots_dir(tmp_path) / "report-390.png"), full_page=True)
    assert [p for p in problems if "willReadFrequently" not in p] == []  # our own pixel reads
