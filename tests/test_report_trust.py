"""The report reads only files inside the folder it is given (issue 11, problem 3).

Each test builds a hostile result folder next to a "secret" file outside it and checks that the
secret's bytes — raw, base64 at any of the three alignments, or as decoded text — never reach the
HTML, and that the page says what it left out.
"""

from __future__ import annotations

import base64
import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from layerscope.report import build_report, find_results
from layerscope.results import write_result

SECRET = b"root:x:0:0:TOP-SECRET-7d1f3:/root:/bin/bash\n" * 4


def _b64_variants(data: bytes) -> list[str]:
    """Base64 of ``data`` at each byte alignment, trimmed to the part that does not depend on
    the bytes around it (what a data URI of a file holding ``data`` somewhere would contain)."""
    out = []
    for shift in range(3):
        enc = base64.b64encode(b"\0" * shift + data).decode("ascii")
        out.append(enc[4:-4])  # drop the edges that mix with neighbouring bytes
    return out


def assert_not_embedded(html: str, secret: bytes) -> None:
    assert secret.decode("latin-1") not in html
    assert "TOP-SECRET-7d1f3" not in html
    for variant in _b64_variants(secret):
        assert variant not in html


def secret_png(path: Path) -> bytes:
    """A PNG outside the result folder, its bytes unique (so any embedding is detectable)."""
    rng = np.random.default_rng(7)
    Image.fromarray(rng.integers(0, 256, size=(12, 12), dtype=np.uint8)).save(path)
    return path.read_bytes()


def points(n: int = 4) -> dict[str, object]:
    return {"layer": "fc", "x": [float(i) for i in range(n)], "y": [0.0, 1.0] * (n // 2), "labels": [0, 1] * (n // 2),
            "sample_ids": list(range(n))}


@pytest.fixture()
def secret(tmp_path: Path) -> Path:
    p = tmp_path / "secret.txt"
    p.write_bytes(SECRET)
    return p


def test_sprite_path_outside_the_folder_is_not_embedded(tmp_path: Path, secret: Path):
    root = tmp_path / "res"
    pset_abs = {**points(), "sprite": {"path": str(secret), "tile": [8, 8], "columns": 2}}
    pset_up = {**points(), "layer": "fc2", "sprite": {"path": "../../secret.txt", "tile": [8, 8], "columns": 2}}
    write_result(root / "p", "projection", projections=[pset_abs, pset_up])
    html = build_report(root).read_text()
    assert_not_embedded(html, SECRET)
    assert "not a file inside the result folder" in html
    assert html.count('class="plot"') == 2  # the points are still plotted, without thumbnails


def test_symlinks_resolving_outside_are_not_followed(tmp_path: Path, secret: Path):
    root = tmp_path / "res"
    d = root / "p"
    d.mkdir(parents=True)
    img = secret_png(tmp_path / "outside.png")
    try:
        os.symlink(secret, d / "sprite.png")
        os.symlink(tmp_path / "outside.png", d / "fig.png")
        os.symlink(tmp_path / "outside.png", d / "cell.png")
    except OSError:
        pytest.skip("this file system has no symlinks")
    write_result(d, "projection", figures=[{"path": "fig.png", "title": "linked"}],
                 rows=[{"name": "a", "image": "cell.png"}, {"name": "b", "image": "cell.png"}],
                 projections=[{**points(), "sprite": {"path": "sprite.png", "tile": [8, 8], "columns": 2}}])
    html = build_report(root).read_text()
    assert_not_embedded(html, SECRET)
    assert_not_embedded(html, img)
    assert "fig.png lies outside its result folder" in html


def test_figure_paths_outside_the_folder_are_refused(tmp_path: Path):
    root = tmp_path / "res"
    img = secret_png(tmp_path / "private.png")
    write_result(root / "a", "maximize", figures=[{"path": str(tmp_path / "private.png")}, {"path": "../../private.png"}, "../../private.png"])
    html = build_report(root).read_text()
    assert_not_embedded(html, img)
    assert html.count("lies outside its result folder") == 3


def test_a_figure_inside_the_folder_is_still_embedded(tmp_path: Path):
    """The check refuses only what lies outside: a real figure next to result.json is inlined."""
    root = tmp_path / "res"
    (root / "a" / "sub").mkdir(parents=True)
    img = secret_png(root / "a" / "sub" / "grid.png")
    write_result(root / "a", "maximize", figures=[{"path": "sub/grid.png"}])
    html = build_report(root).read_text()
    assert base64.b64encode(img).decode("ascii") in html


def test_arrays_file_outside_is_not_read(tmp_path: Path):
    root = tmp_path / "res"
    np.savez(tmp_path / "pts.npz", embedding=np.c_[np.arange(5) * 1234.5, np.zeros(5)])
    write_result(root / "n", "neurons", projections=[{"layer": "fc", "embedding_file": "../../pts.npz"},
                                                     {"layer": "fc2", "embedding_file": str(tmp_path / "pts.npz")}])
    html = build_report(root).read_text()
    assert "4938" not in html and "1234.5" not in html  # 4 * 1234.5, 1234.5: the outside points


def test_result_json_linked_from_outside_is_not_read(tmp_path: Path):
    outside = tmp_path / "elsewhere"
    write_result(outside, "maximize", metrics={"leaked_metric_TOP-SECRET-7d1f3": 1.0})
    root = tmp_path / "res"
    (root / "x").mkdir(parents=True)
    try:
        os.symlink(outside / "result.json", root / "x" / "result.json")
    except OSError:
        pytest.skip("this file system has no symlinks")
    results, _, problems = find_results(root)
    assert results == [] and any("outside" in p for p in problems)
    assert "TOP-SECRET-7d1f3" not in build_report(root).read_text()


def _image_npz(path: Path) -> np.ndarray:
    rng = np.random.default_rng(3)
    x = rng.integers(0, 256, size=(6, 8, 8), dtype=np.uint8)
    np.savez(path, x=x, y=np.arange(6) % 2)
    return x


def _sprite_srcs(html: str) -> list[str]:
    import re

    return re.findall(r'<img id="sprite\d+" src="([^"]+)"', html)


def test_thumbnails_from_data_outside_need_the_explicit_flag(tmp_path: Path):
    _image_npz(tmp_path / "private.npz")
    root = tmp_path / "res"
    write_result(root / "p", "projection", data=f"npz:{tmp_path / 'private.npz'}", projections=[points()])
    html = build_report(root).read_text()
    assert _sprite_srcs(html) == []
    assert "--allow-external-data" in html  # the page says why and how
    html = build_report(root, tmp_path / "allowed.html", allow_external_data=True).read_text()
    assert len(_sprite_srcs(html)) == 1


def test_thumbnails_from_data_inside_the_folder_are_shown(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    root = tmp_path / "res"
    root.mkdir()
    _image_npz(root / "imgs.npz")
    write_result(root / "p", "projection", data=f"npz:{root / 'imgs.npz'}", projections=[points()])
    assert len(_sprite_srcs(build_report(root).read_text())) == 1
    # a relative spec is read from the working directory, as load_dataset does: "../" escapes
    monkeypatch.chdir(root / "p")
    write_result(root / "p", "projection", data="npz:../imgs.npz", projections=[points()])
    assert len(_sprite_srcs(build_report(root).read_text())) == 1
    monkeypatch.chdir(tmp_path)
    _image_npz(tmp_path / "other.npz")
    write_result(root / "p", "projection", data="npz:other.npz", projections=[points()])
    assert _sprite_srcs(build_report(root).read_text()) == []


def test_bundled_dataset_thumbnails_need_no_flag(tmp_path: Path, shared_data: Path):
    root = tmp_path / "res"
    write_result(root / "p", "projection", data="mnist:test", projections=[points()])
    assert len(_sprite_srcs(build_report(root).read_text())) == 1


def test_cli_flag(tmp_path: Path):
    from layerscope.cli import app

    _image_npz(tmp_path / "private.npz")
    root = tmp_path / "res"
    write_result(root / "p", "projection", data=f"npz:{tmp_path / 'private.npz'}", projections=[points()])
    runner = CliRunner()
    res = runner.invoke(app, ["report", str(root), "-o", str(tmp_path / "a.html")])
    assert res.exit_code == 0, res.output
    assert _sprite_srcs((tmp_path / "a.html").read_text()) == []
    res = runner.invoke(app, ["report", str(root), "-o", str(tmp_path / "b.html"), "--allow-external-data"])
    assert res.exit_code == 0, res.output
    assert len(_sprite_srcs((tmp_path / "b.html").read_text())) == 1
