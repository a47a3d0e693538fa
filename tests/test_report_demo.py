"""The demo's step runner: skipped, failing and finished steps, then the report (no training here)."""

from __future__ import annotations

from pathlib import Path


from layerscope.cli import app
from layerscope.cli import demo as demo_mod
from layerscope.results import write_result


def test_steps_skip_fail_and_go_on(tmp_path: Path, monkeypatch, capsys):
    out = tmp_path / "demo"
    ran: list[str] = []

    def ok() -> None:
        ran.append("ok")
        write_result(out / "good", "maximize", metrics={"mean_activation": 1.5})

    def boom() -> None:
        ran.append("boom")
        write_result(out / "partial", "occlusion", metrics={"done": 1})
        raise RuntimeError("the occlusion went wrong")

    def steps(out_: Path, **kw) -> list[demo_mod.Step]:
        return [
            demo_mod.Step("missing", "a command that does not exist", ["no-such-command", "--x", "1"]),
            demo_mod.Step("fails", "raises", run=boom),
            demo_mod.Step("after-fail", "needs the failed step", run=ok, needs=["fails"]),
            demo_mod.Step("works", "writes a result", run=ok),
            demo_mod.Step("bad-options", "a real command with a wrong option", ["report", "--no-such-option"]),
        ]

    monkeypatch.setattr(demo_mod, "build_steps", steps)
    rc = app(args=["demo", "--out", str(out), "--no-progress"], standalone_mode=False)
    assert rc == 1  # typer.Exit(1): some steps failed
    assert ran == ["boom", "ok"]
    text = " ".join(capsys.readouterr().out.split())
    assert "`layerscope no-such-command` is not available" in text
    assert "needs fails, which did not finish" in text
    assert "2 step(s) failed" in text
    html = (out / "report.html").read_text()
    # finished results are kept and reported, including what the failing step wrote before failing
    assert "Activation maximization" in html and "Occlusion maps" in html and "1.5" in html


def test_command_lookup_sees_sub_commands():
    assert demo_mod._command_exists(["report"])
    assert demo_mod._command_exists(["train"])
    assert not demo_mod._command_exists(["report", "nothing"])
    assert not demo_mod._command_exists(["nothing"])
    assert demo_mod._command_path(["speech", "train", "--epochs", "3"]) == ["speech", "train"]


def test_demo_steps_are_real_command_lines(tmp_path: Path):
    """Every step's command line parses against the installed command (no option typos)."""
    import typer.main

    steps = demo_mod.build_steps(tmp_path, epochs=1, limit=100, n_project=50, progress=False, speech=True, transfer=True)
    names = [s.name for s in steps]
    assert len(names) == len(set(names))
    group = typer.main.get_command(app)
    checked = 0
    for s in steps:
        assert all(n in names for n in s.needs)
        if not s.args or not demo_mod._command_exists(demo_mod._command_path(s.args)):
            continue
        cmd, rest = group, list(s.args)
        while rest and getattr(cmd, "commands", None) and rest[0] in cmd.commands:
            cmd = cmd.commands[rest.pop(0)]
        ctx = cmd.make_context("layerscope", rest, resilient_parsing=False)  # raises on unknown options
        assert ctx.params
        checked += 1
    assert checked >= 1
