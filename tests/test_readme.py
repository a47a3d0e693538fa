"""The README's examples run as written, in order, at small sizes.

Every ```bash block is run line by line through the ``layerscope`` CLI in this process (``$L``
is the CLI; lines may be joined with ``\\`` and separated by ``;``), and every ```python block is
executed, in one namespace, in a fresh folder. A block whose first line is ``# skip-test: why``
is not run (the set-up commands and the long speech / transfer block); the test checks that such
blocks are few and say why. Sizes are made small by capping the values of the size options
(:data:`SMALL`): ``--epochs 3`` runs 1 epoch, ``--n 2000`` 300 points, and so on; everything else
is run as written.
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"
FENCE = re.compile(r"^```(bash|python)\n(.*?)^```", re.S | re.M)
#: size option -> the largest value the test runs
SMALL = {"--epochs": 1, "--limit": 300, "--n": 300, "--steps": 10, "--restarts": 1, "--seeds": 1, "--n-frames": 300,
         "--val-limit": 100, "--max-recordings": 30, "--k": 1}
VENV_CLI = ".venv/bin/layerscope"


def blocks() -> list[tuple[str, str]]:
    return FENCE.findall(README.read_text())


def commands(block: str) -> list[list[str]]:
    """The block's command lines as argument lists (``L=`` assignments checked and dropped)."""
    out = []
    for line in block.replace("\\\n", " ").splitlines():
        lexer = shlex.shlex(line, posix=True, punctuation_chars=";")
        lexer.whitespace_split = True  # comments dropped; ';' separates commands
        parts: list[list[str]] = [[]]
        for token in lexer:
            if token == ";":
                parts.append([])
            else:
                parts[-1].append(token)
        for words in parts:
            part = " ".join(words)
            if not words:
                continue
            if words[0].startswith("L="):
                assert words == [f"L={VENV_CLI}"], f"README: L must be the venv's CLI, got {part!r}"
                continue
            assert words[0] == "$L", f"README: a runnable shell line must start with $L: {part!r}"
            out.append(words[1:])
    return out


def small(argv: list[str]) -> list[str]:
    args = list(argv)
    for i, a in enumerate(args[:-1]):
        if a in SMALL and re.fullmatch(r"\d+", args[i + 1]):
            args[i + 1] = str(min(int(args[i + 1]), SMALL[a]))
    return args


def test_the_readme_blocks_parse_and_the_skipped_ones_say_why() -> None:
    found = blocks()
    shells = [b for kind, b in found if kind == "bash"]
    skipped = [b for b in shells if b.lstrip().startswith("# skip-test")]
    assert len(shells) >= 4 and len(skipped) <= 5  # installs, the two commands, and the long trainings: speech+transfer+DBN, text, a 60k capture
    assert all(re.match(r"# skip-test: \w+", b.lstrip()) for b in skipped)
    run = [b for b in shells if b not in skipped]
    assert sum(len(commands(b)) for b in run) >= 20
    assert small(["train", "--epochs", "5", "--limit", "20", "--n", "2000"]) == ["train", "--epochs", "1", "--limit", "20",
                                                                                    "--n", "300"]
    # every command the README shows exists
    from layerscope.cli import app

    names = {c.name or (c.callback.__name__ if c.callback else "") for c in app.registered_commands}
    names |= {g.name for g in app.registered_groups if g.name}
    for b in shells:
        for line in b.splitlines():
            m = re.match(r"\$L ([\w-]+)", line.strip())
            if m:
                assert m.group(1) in names, f"README shows an unknown command: {line}"


@pytest.mark.slow
def test_readme_examples_run_in_order(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                      capsys: pytest.CaptureFixture[str]) -> None:
    from layerscope.cli import main

    monkeypatch.chdir(tmp_path)
    namespace: dict[str, object] = {"__name__": "__readme__"}
    ran = 0
    for i, (kind, block) in enumerate(blocks()):
        if kind == "python":
            exec(compile(block, f"README.md[block {i + 1}]", "exec"), namespace)
            continue
        if block.lstrip().startswith("# skip-test"):
            continue
        for argv in commands(block):
            args = small(argv)
            with pytest.raises(SystemExit) as exc:
                main(args)
            out = capsys.readouterr()
            assert exc.value.code in (0, None), f"README command failed: layerscope {' '.join(args)}\n{out.err}"
            if "--out" in args:
                assert Path(args[args.index("--out") + 1]).exists(), args
            ran += 1
    assert ran >= 20
    assert (tmp_path / "out" / "report.html").stat().st_size > 10_000
    assert (tmp_path / "out" / "tensorboard" / "projector_config.pbtxt").is_file()
