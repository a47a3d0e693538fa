"""Transfer grid end to end: kill-and-resume, executors give equal tables (Ray locally), the CLI."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

import pytest
from typer.testing import CliRunner

from layerscope.cli import app
from layerscope.transfer import GridConfig, LocalExecutor, PoolExecutor, RayExecutor, TransferStore, pending_cells, resume_grid, run_grid

ARCH = "convnet8:width=2,fc_width=8"


def tiny(**kw: Any) -> GridConfig:
    base = dict(
        arch=ARCH, data="mnist", split="mnist-0-4", seeds=(0, 1), epochs=2, limit=120, val_limit=60,
        layers=(2, 6), conditions=("BnB", "AnB", "AnB+"), k_best=2, lr=0.05, batch_size=32,
    )
    base.update(kw)
    return GridConfig(**base)


def table(result: Any) -> dict[str, float]:
    return {r["cell"]: r["metric"] for r in result.table}


class Killed(RuntimeError):
    pass


class DyingExecutor(LocalExecutor):
    """Runs cells in-process and 'gets killed' (raises) after ``m`` finished cells."""

    def __init__(self, m: int) -> None:
        self.m = m
        self.calls = 0

    def map_unordered(self, fn: Callable[[Any], Any], tasks: Iterable[Any]) -> Iterator[Any]:
        for t in tasks:
            if self.calls >= self.m:
                raise Killed(f"killed after {self.m} cells")
            self.calls += 1
            yield fn(t)


class CountingExecutor(LocalExecutor):
    def __init__(self) -> None:
        self.cells: list[str] = []

    def map_unordered(self, fn: Callable[[Any], Any], tasks: Iterable[Any]) -> Iterator[Any]:
        for t in tasks:
            self.cells.append(t.cell.id)
            yield fn(t)


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> dict[str, float]:
    """The uninterrupted in-process run of the tiny grid."""
    out = tmp_path_factory.mktemp("ref")
    res = run_grid(tiny(), out)
    assert res.complete and res.cells_done == 4 + 2 * 2 * 3
    return table(res)


def test_kill_and_resume_loses_nothing_finished(tmp_path: Path, reference: dict[str, float]) -> None:
    cfg = tiny()
    for m in (1, 7):  # killed among the bases, then among the transfer cells
        out = tmp_path / f"m{m}"
        with pytest.raises(Killed):
            run_grid(cfg, out, executor=DyingExecutor(m))
        store = TransferStore(out)
        done = store.done_ids()
        assert len(done) == m  # every finished cell was written
        assert not list(out.glob("cells/.*.tmp"))
        mtimes = {p.name: p.stat().st_mtime_ns for p in (out / "cells").glob("*.json")}
        counter = CountingExecutor()
        res = resume_grid(out, executor=counter)
        assert sorted(counter.cells) == sorted(set(table(res)) - done)  # finished cells were skipped
        assert {p.name: p.stat().st_mtime_ns for p in (out / "cells").glob("*.json") if p.name in mtimes} == mtimes
        assert table(res) == reference  # same numbers as the uninterrupted run
        assert pending_cells(TransferStore(out)) == []
    # rerunning a finished grid runs nothing
    counter = CountingExecutor()
    run_grid(cfg, tmp_path / "m7", executor=counter)
    assert counter.cells == []


SMALL = dict(seeds=(3,), conditions=("AnB", "AnB+"))


@pytest.fixture(scope="module")
def small_reference(tmp_path_factory: pytest.TempPathFactory) -> dict[str, float]:
    res = run_grid(tiny(**SMALL), tmp_path_factory.mktemp("small"))
    assert res.cells_done == 2 + 2 * 2
    return table(res)


def test_ray_local_gives_the_in_process_table(tmp_path: Path, small_reference: dict[str, float]) -> None:
    pytest.importorskip("ray")
    import ray

    with RayExecutor(num_cpus=2) as ex:
        res = run_grid(tiny(**SMALL), tmp_path / "ray", executor=ex)
    assert not ray.is_initialized()  # the executor shut down the Ray it started
    assert table(res) == small_reference


def test_process_pool_gives_the_in_process_table(tmp_path: Path, small_reference: dict[str, float]) -> None:
    with PoolExecutor(2) as pool:
        res = run_grid(tiny(**SMALL), tmp_path / "pool", executor=pool)
    assert table(res) == small_reference


def test_cli_transfer_run_report_resume(tmp_path: Path) -> None:
    runner = CliRunner()
    out = tmp_path / "g"
    args = [
        "transfer", "--arch", ARCH, "--data", "mnist", "--split", "mnist-0-4", "--seeds", "1", "--epochs", "1",
        "--limit", "80", "--val-limit", "40", "--layers", "3", "--conditions", "AnB,BnB", "--k", "1",
        "--out", str(out), "--no-progress",
    ]
    r = runner.invoke(app, args)
    assert r.exit_code == 0, r.output
    assert "AnB" in r.output and "BnB − AnB" in r.output and "1/1" not in r.output
    doc = json.loads((out / "result.json").read_text())
    assert doc["analysis"] == "transfer" and doc["complete"] and len(doc["table"]) == 4
    assert {r["condition"] for r in doc["table"]} == {"baseA", "baseB", "AnB", "BnB"}
    assert (out / "transfer.png").stat().st_size > 0 and (out / "transfer.csv").exists()
    (out / "result.json").unlink()
    (out / "transfer.png").unlink()
    r = runner.invoke(app, ["transfer", "--report", str(out)])
    assert r.exit_code == 0, r.output
    assert json.loads((out / "result.json").read_text())["table"] == doc["table"]
    assert (out / "transfer.png").exists()
    r = runner.invoke(app, ["transfer", "--resume", str(out), "--no-progress"])
    assert r.exit_code == 0 and "4/4 cells" in r.output, r.output


def test_cli_errors_are_clean(tmp_path: Path) -> None:
    out = subprocess.run(
        [sys.executable, "-m", "layerscope", "transfer", "--arch", ARCH, "--data", "mnist", "--split", "cifar10-living",
         "--out", str(tmp_path / "x"), "--seeds", "1", "--no-progress"],
        capture_output=True, text=True,
    )
    assert out.returncode == 2 and "'airplane'" in out.stderr and "Traceback" not in out.stderr
    runner = CliRunner()
    for args, message in (
        (["--arch", ARCH, "--data", "mnist"], "needs --arch, --data and --out"),
        (["--report", str(tmp_path / "none")], "not a transfer grid folder"),
        (["--arch", "mlp", "--data", "mnist", "--out", str(tmp_path / "y"), "--no-progress"], "no numbered_layers"),
        (["--arch", ARCH, "--data", "mnist", "--out", str(tmp_path / "z"), "--executor", "dask"], "Unknown executor 'dask'"),
        (["--arch", ARCH, "--data", "mnist", "--out", str(tmp_path / "z"), "--address", "auto"], "--address is for --executor ray"),
    ):
        r = runner.invoke(app, ["transfer", *args])
        assert r.exit_code != 0 and message in str(r.exception), (args, r.exception)
