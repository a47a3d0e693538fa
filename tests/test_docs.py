"""The Python snippets of ``docs/`` run as written (in order, one namespace per page)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

DOCS = Path(__file__).resolve().parents[1] / "docs"
FENCE = re.compile(r"^```python\n(.*?)^```", re.S | re.M)


def snippets(page: Path) -> list[str]:
    return FENCE.findall(page.read_text())


def test_the_extractor_finds_the_snippets() -> None:
    page = DOCS / "python-api.md"
    found = snippets(page)
    assert len(found) >= 8
    assert all(s.strip() for s in found)
    assert any("ls.load_model(" in s for s in found)


@pytest.mark.slow
@pytest.mark.parametrize("page", sorted(DOCS.glob("*.md")), ids=lambda p: p.name)
def test_doc_snippets_run(page: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, shared_data: Path) -> None:
    monkeypatch.chdir(tmp_path)  # snippets write relative folders (results/, speech-run/)
    namespace: dict[str, object] = {"__name__": "__docs__"}
    for i, code in enumerate(snippets(page)):
        try:
            exec(compile(code, f"{page.name}[snippet {i + 1}]", "exec"), namespace)
        except Exception as err:  # name the failing snippet
            raise AssertionError(f"{page.name}, snippet {i + 1} failed: {type(err).__name__}: {err}\n{code}") from err
