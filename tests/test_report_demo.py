"""The demo's step runner: skipped, failing and finished steps, then the report (no training here)."""

from __future__ import annotations

from pathlib import Path

import pytest


from layerscope import demo as demo_mod
from layerscope.cli import app
from layerscope.cli import demo as cli_demo
from layerscope.results import write_result

from folders import assert_same_folder


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


def test_run_demo_is_a_quiet_library_call(tmp_path: Path, monkeypatch, capsys):
    """``run_demo`` prints nothing: statuses, summaries and errors come back in a ``DemoRun``, the
    caller follows along through ``on_step``, and ``progress`` is called with keywords."""
    import json

    from layerscope.exceptions import ParameterError

    out = tmp_path / "demo"
    given: dict[str, object] = {}

    def ok() -> str:
        write_result(out / "good", "maximize", metrics={"mean_activation": 2.5})
        return "first line\nsecond line"

    def boom() -> None:
        raise ValueError("bad [value]")

    def steps(out_: Path, **kw) -> list[demo_mod.Step]:
        given.update(kw)
        return [
            demo_mod.Step("fails", "raises", run=boom),
            demo_mod.Step("after-fail", "needs the failed step", run=ok, needs=["fails"]),
            demo_mod.Step("works", "writes a result", run=ok),
            demo_mod.Step("argv-only", "a command line and no library call", ["report", str(out_)]),
            demo_mod.Step("left-out", "not selected", run=ok),
        ]

    monkeypatch.setattr(demo_mod, "build_steps", steps)
    tracked: list[tuple[object, object]] = []

    def tracker(iterable, *, total=None, desc=None):  # keyword-only: a positional call fails
        tracked.append((total, desc))
        return iterable

    events: list[tuple[str, str, str]] = []
    with pytest.raises(ParameterError, match="no-such-step"):
        demo_mod.run_demo(out, only="works,no-such-step")
    assert not out.exists()  # refused before anything ran or was written
    run = demo_mod.run_demo(out, only=["fails", "after-fail", "works", "argv-only"], progress=tracker, epochs=2,
                            on_step=lambda ev, r: events.append((ev, r.name, r.status)))
    assert capsys.readouterr() == ("", "")
    assert given["progress"] is tracker and given["epochs"] == 2
    assert tracked == [(5, "demo steps")]
    assert [(r.name, r.status) for r in run.steps] == [
        ("fails", "failed"), ("after-fail", "skipped"), ("works", "ok"), ("argv-only", "skipped"), ("left-out", "not selected")]
    failed, after, works, argv, _ = run.steps
    assert not run.ok and run.failed == [failed]
    assert failed.error == failed.note == "ValueError: bad [value]" and "boom" in failed.traceback
    assert after.note == "needs fails" and after.summary == "needs fails, which did not finish."
    assert works.summary == "first line\nsecond line" and works.seconds >= 0
    assert argv.note == "command line only" and str(out) in argv.summary
    assert events == [("start", "fails", "running"), ("end", "fails", "failed"), ("end", "after-fail", "skipped"),
                      ("start", "works", "running"), ("end", "works", "ok"), ("end", "argv-only", "skipped"),
                      ("report", "report", "running")]
    assert run.report == out / "report.html" and "2.5" in run.report.read_text()
    doc = json.loads((out / "demo" / "result.json").read_text())
    assert [s["status"] for s in doc["steps"]] == [r.status for r in run.steps]
    assert {k: doc["metrics"][k] for k in ("ok", "failed", "skipped")} == {"ok": 1, "failed": 1, "skipped": 2}
    assert doc["parameters"]["only"] == "fails,after-fail,works,argv-only"
    assert "failed 1" in repr(run) and "\n" not in repr(run)


def test_run_demo_interrupted_writes_the_report_of_what_finished(tmp_path: Path, monkeypatch):
    out = tmp_path / "demo"

    def ok() -> str:
        write_result(out / "good", "maximize", metrics={"mean_activation": 3.5})
        return "done"

    def interrupt() -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(demo_mod, "build_steps", lambda out_, **kw: [
        demo_mod.Step("first", "works", run=ok), demo_mod.Step("stop", "Ctrl-C", run=interrupt),
        demo_mod.Step("later", "never reached", run=ok)])
    run = demo_mod.run_demo(out)
    assert [r.status for r in run.steps] == ["ok", "interrupted", "not run"]
    assert not run.ok and run.failed == [] and "3.5" in run.report.read_text()


def test_command_lookup_sees_sub_commands():
    assert cli_demo._command_exists(["report"])
    assert cli_demo._command_exists(["train"])
    assert not cli_demo._command_exists(["report", "nothing"])
    assert not cli_demo._command_exists(["nothing"])
    assert demo_mod.command_path(["speech", "train", "--epochs", "3"]) == ["speech", "train"]


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
        if not s.args or not cli_demo._command_exists(demo_mod.command_path(s.args)):
            continue
        cmd, rest = group, list(s.args)
        while rest and getattr(cmd, "commands", None) and rest[0] in cmd.commands:
            cmd = cmd.commands[rest.pop(0)]
        ctx = cmd.make_context("layerscope", rest, resilient_parsing=False)  # raises on unknown options
        assert ctx.params
        checked += 1
    assert checked >= 1


# -- the steps call the library (issue 13): no step goes through argv, and each step writes the
# folder its documented command line writes ---------------------------------------------------------

LIBRARY_STEPS = ["maximize-classes", "correspondence", "occlusion", "probe", "cka"]


def test_every_step_is_a_library_call(tmp_path: Path):
    steps = demo_mod.build_steps(tmp_path, epochs=1, limit=100, n_project=50, progress=False, speech=True, transfer=True)
    assert [s.name for s in steps if s.run is None] == []
    # every analysis keeps its command line as documentation (only the two trainings have none)
    assert sorted(s.name for s in steps if not s.args) == ["layers-cnn", "layers-mlp", "train-cnn", "train-mlp"]


def _tiny_run(run_dir: Path, arch: str, epochs: int) -> None:
    """A small run of ``arch`` on 128 training digits with checkpoints 0..epochs (the demo's runs, smaller)."""
    import numpy as np
    import torch

    import layerscope as ls
    from layerscope.models import build_model
    from layerscope.training import train

    data = ls.load_dataset("mnist").subset(np.arange(128))
    torch.manual_seed(0)
    net = build_model(arch, (1, 28, 28), 10)
    meta = {"arch": arch, "data": "mnist", "val_data": "mnist:test", "input_shape": [1, 28, 28], "classes": data.classes,
            "normalization": data.normalization.to_dict()}
    train(net, data, out_dir=run_dir, epochs=epochs, checkpoints=list(range(epochs + 1)), batch_size=64, lr=0.05, seed=0,
          meta=meta)


def _same_tree(a: Path, b: Path) -> None:
    """Same files (recursively); result.json equal without ``created`` and the run's wall time
    (maximize reports it: not a result); arrays and other bytes equal."""
    assert (a / "result.json").is_file()
    assert_same_folder(a, b, recursive=True, ignore_metrics=("seconds",))


@pytest.mark.slow
def test_steps_call_the_library_and_write_what_their_command_writes(tmp_path: Path, monkeypatch, shared_data: Path):
    """Five steps run with ``app`` and ``_invoke`` made to fail inside the demo module: they succeed,
    and each folder equals the one its documented command line writes (bar the timestamps)."""
    from typer.testing import CliRunner

    out = tmp_path / "demo"
    _tiny_run(out / "runs" / "cnn", "cnn:dense=16x8", 2)
    _tiny_run(out / "runs" / "mlp", "mlp:width=16,depth=3", 1)

    def no_argv(*a: object, **k: object) -> None:
        raise AssertionError("a demo step went through the command line")

    monkeypatch.setattr(cli_demo, "_invoke", no_argv)
    monkeypatch.setattr(cli_demo, "app", no_argv)
    rc = app(args=["demo", "--out", str(out), "--n-project", "100", "--no-speech", "--no-transfer", "--no-progress",
                   "--only", ",".join(LIBRARY_STEPS)], standalone_mode=False)
    assert rc in (None, 0)
    html = (out / "report.html").read_text()
    assert "Occlusion maps" in html and "Activation maximization" in html and "CKA similarity" in html
    monkeypatch.undo()

    steps = {s.name: s for s in demo_mod.build_steps(out, epochs=1, limit=100, n_project=100, progress=False,
                                                     speech=False, transfer=False)}
    runner = CliRunner()
    for name in LIBRARY_STEPS:
        args = list(steps[name].args)
        i = args.index("--out") + 1
        demo_dir, args[i] = Path(args[i]), str(tmp_path / "cli" / name)
        r = runner.invoke(app, args)
        assert r.exit_code == 0, (name, r.output)
        _same_tree(demo_dir, tmp_path / "cli" / name)


def test_demo_list_writes_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``layerscope demo --list`` only prints: no lock file, no output folder next to --out."""
    from typer.testing import CliRunner

    monkeypatch.chdir(tmp_path)
    r = CliRunner().invoke(app, ["demo", "--list", "--out", "demo-out"])
    assert r.exit_code == 0, r.output
    assert "train-mlp" in r.output or "layerscope train" in r.output
    assert sorted(p.name for p in tmp_path.iterdir()) == []
