"""Faults: killed and concurrent writers, read-only and full disks, truncated and mixed folders.

Every test asserts the exact outcome: the old result intact or the new one (never a mix), a
one-line error with exit code 2, nothing half-written left where a reader looks.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np
import pytest

from layerscope._io import check_writable, folder_lock, is_leftover, read_json, result_folder
from layerscope.capture import Activations
from layerscope.exceptions import DataError, ParameterError
from layerscope.results import Result, read_result

REPO = Path(__file__).resolve().parents[2]
CAPTURE = ["capture", "-m", "mnist-mlp", "-l", "all", "--no-progress"]


# -- helpers --------------------------------------------------------------------------------


def cli(*args: str, **kw: Any) -> subprocess.CompletedProcess[str]:
    """Run ``python -m layerscope ARGS`` from the repository root."""
    return subprocess.run([sys.executable, "-m", "layerscope", *args], cwd=REPO, capture_output=True, text=True, **kw)


def start(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "layerscope", *args], cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def wait_for(cond: Callable[[], bool], timeout: float = 60.0, every: float = 0.001) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if cond():
            return True
        time.sleep(every)
    return False


def lock_owner(out: Path) -> str:
    p = out.parent / f".{out.name}.lock"
    try:
        return p.read_text().strip()
    except OSError:
        return ""


def one_line_error(proc: subprocess.CompletedProcess[str]) -> str:
    assert proc.returncode == 2, (proc.returncode, proc.stderr)
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), proc.stderr
    assert "Traceback" not in proc.stderr
    return lines[0]


def capture_old(out: Path, limit: int) -> None:
    r = cli(*CAPTURE, "-o", str(out), "--limit", str(limit))
    assert r.returncode == 0, r.stderr
    assert len(Activations.load(out)) == limit


def staging_dirs(out: Path) -> list[Path]:
    return [p for p in out.parent.glob(f".{out.name}.tmp-*") if p.is_dir()]


def acts(n: int, width: int = 3) -> Activations:
    return Activations(
        arrays={"a": np.arange(n * width, dtype=np.float32).reshape(n, width)},
        labels=np.arange(n, dtype=np.int64) % 3,
        sample_ids=np.arange(n, dtype=np.int64),
    )


@dataclass(frozen=True)
class Toy(Result):
    """A result with one array, to exercise Result.save / load."""

    name: str = "toy"
    values: Any = None


# -- result_folder: the primitive ----------------------------------------------------------


def test_result_folder_swaps_in_whole_and_leaves_only_the_lock(tmp_path: Path) -> None:
    out = tmp_path / "r"
    for v in (1, 2):
        with result_folder(out) as d:
            assert d != out and d.parent == tmp_path and d.name.startswith(f".r.tmp-{os.getpid()}-")
            (d / "result.json").write_text(json.dumps({"analysis": "x", "v": v}))
            assert not out.exists() or json.loads((out / "result.json").read_text())["v"] == v - 1
        assert json.loads((out / "result.json").read_text())["v"] == v
    assert sorted(p.name for p in tmp_path.iterdir()) == [".r.lock", "r"]


def test_result_folder_exception_keeps_the_old_folder(tmp_path: Path) -> None:
    out = tmp_path / "r"
    with result_folder(out) as d:
        (d / "result.json").write_text('{"analysis": "x", "v": 1}')
    with pytest.raises(KeyError):
        with result_folder(out) as d:
            (d / "result.json").write_text('{"analysis": "x", "v": 2}')
            (d / "extra.npy").write_bytes(b"new")
            raise KeyError("boom")
    assert sorted(p.name for p in out.iterdir()) == ["result.json"]
    assert json.loads((out / "result.json").read_text())["v"] == 1
    assert staging_dirs(out) == []


def test_result_folder_nests_into_one_swap(tmp_path: Path) -> None:
    out = tmp_path / "r"
    with result_folder(out) as d:
        with result_folder(out) as d2, result_folder(d) as d3:
            assert d2 == d3 == d
            (d / "result.json").write_text('{"analysis": "x"}')
        assert not out.exists()  # the inner blocks did not swap
        (d / "fig.png").write_bytes(b"png")
    assert sorted(p.name for p in out.iterdir()) == ["fig.png", "result.json"]


def test_result_folder_never_replaces_a_users_folder_or_file(tmp_path: Path) -> None:
    mine = tmp_path / "documents"
    mine.mkdir()
    (mine / "thesis.tex").write_text("precious")
    with pytest.raises(ParameterError, match="not a layerscope result.*thesis.tex"):
        with result_folder(mine) as d:
            (d / "result.json").write_text("{}")
    assert (mine / "thesis.tex").read_text() == "precious" and staging_dirs(mine) == []
    afile = tmp_path / "file"
    afile.write_text("x")
    with pytest.raises(ParameterError, match="not a folder"):
        with result_folder(afile):
            pass
    assert afile.read_text() == "x"


def test_leftovers_of_a_killed_writer_are_ignored_then_cleaned(tmp_path: Path) -> None:
    out = tmp_path / "acts"
    acts(4).save(out)
    stale = tmp_path / ".acts.tmp-999999-dead"
    stale.mkdir()
    (stale / "layer000_a.npy").write_bytes(b"half")
    backup = tmp_path / ".acts.old-999999-dead"
    backup.mkdir()
    assert is_leftover(stale.name) and is_leftover(backup.name) and not is_leftover("acts")
    assert len(Activations.load(out)) == 4  # readers never look at leftovers
    acts(6).save(out)
    assert not stale.exists() and not backup.exists()
    assert len(Activations.load(out)) == 6


def test_a_writer_killed_between_its_renames_is_rolled_back(tmp_path: Path) -> None:
    out = tmp_path / "r"
    with result_folder(out) as d:
        (d / "result.json").write_text('{"analysis": "x", "v": "old"}')
    os.rename(out, tmp_path / ".r.old-999999-dead")  # the state after the first rename of the fallback
    with pytest.raises(RuntimeError):
        with result_folder(out):
            raise RuntimeError("the next writer fails too")
    assert json.loads((out / "result.json").read_text())["v"] == "old"


def _hold_lock(out: Path) -> subprocess.Popen[str]:
    code = textwrap.dedent(
        f"""
        import sys, time
        from layerscope._io import folder_lock
        with folder_lock({str(out)!r}):
            print("held", flush=True)
            time.sleep(120)
        """
    )
    proc = subprocess.Popen([sys.executable, "-c", code], cwd=REPO, stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None and proc.stdout.readline().strip() == "held"
    return proc


def test_second_writer_gets_the_lock_error_until_the_first_dies(tmp_path: Path) -> None:
    out = tmp_path / "r"
    holder = _hold_lock(out)
    try:
        with pytest.raises(ParameterError, match=rf"another layerscope process is writing .*r \(pid {holder.pid}\)"):
            with result_folder(out):
                pass
        assert not out.exists() and staging_dirs(out) == []
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    with result_folder(out) as d:  # the OS released the lock of the killed holder
        (d / "result.json").write_text("{}")
    assert (out / "result.json").exists()


def test_check_writable_fails_for_a_file_in_the_way(tmp_path: Path) -> None:
    (tmp_path / "f").write_text("x")
    with pytest.raises(ParameterError, match="cannot write the output"):
        check_writable(tmp_path / "f" / "out")
    with pytest.raises(ParameterError, match="MiB needed"):
        check_writable(tmp_path / "out", need_bytes=2**62)
    assert check_writable(tmp_path / "a" / "b") == tmp_path / "a" / "b"


# -- checked loads: a mixed or truncated folder is refused ---------------------------------


def test_mixed_folder_40000_activations_beside_2000_labels_is_refused(tmp_path: Path) -> None:
    out = tmp_path / "mix"
    acts(2000).save(out)
    np.save(out / "layer000_a.npy", np.zeros((40000, 3), np.float32))
    info = json.loads((out / "activations.json").read_text())
    with pytest.raises(DataError, match=r"layer000_a.npy has shape \(40000, 3\).*\(2000, 3\).*mixes two runs"):
        Activations.load(out)
    info["n"] = 40000
    (out / "activations.json").write_text(json.dumps(info))
    with pytest.raises(DataError, match=r"labels.npz has labels: 2000 rows.*n = 40000"):
        Activations.load(out)


def test_truncated_or_garbage_activations_json_is_a_data_error(tmp_path: Path) -> None:
    out = tmp_path / "a"
    acts(5).save(out)
    text = (out / "activations.json").read_text()
    (out / "activations.json").write_text(text[: len(text) // 2])
    with pytest.raises(DataError, match="activations.json is not valid JSON"):
        Activations.load(out)
    (out / "activations.json").write_bytes(b"\xff\xfe\x00garbage")
    with pytest.raises(DataError, match="not valid JSON"):
        Activations.load(out)
    (out / "activations.json").write_text("[1, 2]")
    with pytest.raises(DataError, match="lacks 'files', 'n' or 'layers'"):
        Activations.load(out)


def test_missing_or_truncated_arrays_are_named(tmp_path: Path) -> None:
    out = tmp_path / "a"
    acts(50).save(out)
    data = (out / "layer000_a.npy").read_bytes()
    (out / "layer000_a.npy").write_bytes(data[:100])
    with pytest.raises(DataError, match="layer000_a.npy"):
        Activations.load(out)
    (out / "layer000_a.npy").unlink()
    with pytest.raises(DataError, match=r"lists 'layer000_a.npy' for layer 'a'.*does not exist"):
        Activations.load(out)
    acts(50).save(out)
    (out / "labels.npz").write_bytes(b"PK\x03\x04 not a zip")
    with pytest.raises(DataError, match="labels.npz is not a readable .npz"):
        Activations.load(out)


def test_saving_a_memmap_view_writes_the_view_not_the_file(tmp_path: Path) -> None:
    src = tmp_path / "src"
    acts(6, 2).save(src)
    loaded = Activations.load(src)  # memory-mapped
    flipped = Activations(arrays={"a": loaded["a"][::-1]}, labels=loaded.labels, sample_ids=loaded.sample_ids)
    flipped.save(tmp_path / "dst")
    np.testing.assert_array_equal(Activations.load(tmp_path / "dst")["a"], np.asarray(loaded["a"])[::-1])
    # a whole memory-mapped file saved over its own folder keeps its values (hard link, then swap)
    expected = np.asarray(loaded["a"]).copy()
    loaded.save(src)
    np.testing.assert_array_equal(np.asarray(Activations.load(src)["a"]), expected)


def test_result_load_checks_arrays_against_result_json(tmp_path: Path) -> None:
    out = tmp_path / "toy"
    Toy(values=np.arange(6.0).reshape(2, 3)).save(out)
    back = Toy.load(out)
    np.testing.assert_array_equal(back.values, np.arange(6.0).reshape(2, 3))
    np.savez(out / "arrays.npz", values=np.zeros((5, 3)))
    with pytest.raises(DataError, match=r"values: result.json says shape \[2, 3\], arrays.npz has \[5, 3\]"):
        Toy.load(out)
    (out / "arrays.npz").unlink()
    with pytest.raises(DataError, match="not in .*toy: arrays.npz"):
        Toy.load(out)


def test_read_result_refuses_truncated_foreign_and_incomplete(tmp_path: Path) -> None:
    out = tmp_path / "r"
    with pytest.raises(DataError, match="does not exist"):
        read_result(out)
    out.mkdir()
    (out / "result.json").write_text('{"analysis": "topk", "arrays": "topk.npz", "figures": [{"path": "topk.png"}]}')
    with pytest.raises(DataError, match="topk.npz, topk.png"):
        read_result(out)
    (out / "result.json").write_text('{"analysis": "top')
    with pytest.raises(DataError, match="not valid JSON"):
        read_result(out)
    (out / "result.json").write_text('{"something": 1}')
    with pytest.raises(DataError, match="not a layerscope result.json"):
        read_result(out)
    with pytest.raises(DataError, match="run.json is not valid JSON"):
        (tmp_path / "run.json").write_text('{"arch": ')
        read_json(tmp_path / "run.json")


# -- real processes: kill -9 and concurrent writers ------------------------------------------


@pytest.mark.slow
def test_capture_killed_while_rerunning_leaves_the_old_result(tmp_path: Path) -> None:
    out = tmp_path / "acts"
    capture_old(out, 30)
    old = {p.name: p.read_bytes() for p in out.iterdir()}
    # killed during the computation: as soon as it holds the lock
    proc = start(*CAPTURE, "-o", str(out))
    assert wait_for(lambda: lock_owner(out) == str(proc.pid))
    proc.kill()
    proc.wait()
    assert {p.name: p.read_bytes() for p in out.iterdir()} == old
    # killed while writing: as soon as its staging folder appears
    proc = start(*CAPTURE, "-o", str(out))
    seen = wait_for(lambda: bool(staging_dirs(out)) or proc.poll() is not None)
    proc.kill()
    proc.wait()
    assert seen
    n = len(Activations.load(out))  # old or new, and never a mix (load checks every file)
    assert n in (30, 10000)
    if n == 30:
        assert {p.name: p.read_bytes() for p in out.iterdir()} == old
    # the next writer cleans the leftovers
    capture_old(out, 20)
    assert staging_dirs(out) == [] and not list(tmp_path.glob(".acts.old-*"))


@pytest.mark.slow
def test_topk_killed_while_rerunning_leaves_the_old_result(tmp_path: Path) -> None:
    out = tmp_path / "top"
    args = ["topk", "-m", "mnist-cnn", "-l", "conv1", "--no-progress", "-o", str(out)]
    r = cli(*args, "--limit", "40", "--k", "2")
    assert r.returncode == 0, r.stderr
    old = {p.name: p.read_bytes() for p in out.iterdir()}
    proc = start(*args, "--k", "3")
    assert wait_for(lambda: lock_owner(out) == str(proc.pid))
    proc.kill()
    proc.wait()
    assert {p.name: p.read_bytes() for p in out.iterdir()} == old
    assert read_result(out)["parameters"]["k"] == 2


def warm(*args: str) -> subprocess.Popen[str]:
    """A ``layerscope`` process that has imported everything and runs ``args`` on a newline."""
    code = "import sys\nfrom layerscope.cli import main\nprint('ready', flush=True)\nsys.stdin.readline()\nmain(sys.argv[1:])"
    proc = subprocess.Popen(
        [sys.executable, "-c", code, *args], cwd=REPO, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True,
    )
    assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
    return proc


@pytest.mark.slow
def test_two_captures_into_one_out_second_gets_the_lock_error(tmp_path: Path) -> None:
    out = tmp_path / "acts"
    second = warm(*CAPTURE, "-o", str(out), "--limit", "100", "--memory-budget-mb", "0.01")
    first = start(*CAPTURE, "-o", str(out), "--memory-budget-mb", "1")
    try:
        assert wait_for(lambda: lock_owner(out) == str(first.pid))
        _, err2 = second.communicate("go\n", timeout=120)
        line = one_line_error(subprocess.CompletedProcess([], second.returncode, "", err2))
        assert f"another layerscope process is writing {out} (pid {first.pid})" in line
    finally:
        _, err = first.communicate(timeout=120)
    assert first.returncode == 0, err
    a = Activations.load(out)  # only the first run's rows, all of them real
    assert len(a) == 10000 and np.array_equal(a.sample_ids, np.arange(10000))
    assert float(np.abs(np.asarray(a["fc1"])).sum(axis=1).min()) > 0  # no rows of zeros
    assert sorted(p.name for p in tmp_path.iterdir()) == [".acts.lock", "acts"]  # no stream or staging leftovers


@pytest.mark.slow
def test_streamed_capture_rerun_replaces_the_folder_whole(tmp_path: Path) -> None:
    out = tmp_path / "acts"
    capture_old(out, 30)
    r = cli(*CAPTURE, "-o", str(out), "--limit", "300", "--memory-budget-mb", "0.01")
    assert r.returncode == 0, r.stderr
    a = Activations.load(out)
    assert len(a) == 300 and a["fc1"].shape == (300, 128)
    assert sorted(p.name for p in tmp_path.iterdir()) == [".acts.lock", "acts"]


def test_grid_folder_has_one_writer_and_one_grid(tmp_path: Path) -> None:
    from layerscope.transfer import GridConfig, TransferStore, run_grid

    out = tmp_path / "grid"
    holder = _hold_lock(out)
    try:
        with pytest.raises(ParameterError, match=f"pid {holder.pid}"):
            run_grid(GridConfig(arch="convnet8:width=4,fc_width=8", data="mnist", seeds=(0,), epochs=1, limit=20), out)
    finally:
        holder.kill()
        holder.wait()
    # grid.json is created exclusively: a grid that finds another's grid.json compares and refuses
    a = GridConfig(arch="convnet8", data="mnist", seeds=(0,), epochs=1)
    TransferStore.create(out, a, 8)
    with pytest.raises(ParameterError, match=r"different transfer grid \(seeds: stored \[0\], given \[0, 1\], epochs: stored 1, given 3\)"):
        TransferStore.create(out, GridConfig(arch="convnet8", data="mnist", seeds=(0, 1), epochs=3), 8)
    assert TransferStore(out).config == a


def test_resume_refuses_settings_that_differ(tmp_path: Path) -> None:
    from layerscope.transfer import GridConfig, TransferStore, resume_grid

    out = tmp_path / "grid"
    TransferStore.create(out, GridConfig(arch="convnet8", data="mnist", seeds=(0,), epochs=2), 8)
    with pytest.raises(ParameterError, match=r"arch: stored 'convnet8', given 'mlp'.*epochs: stored 2, given 9"):
        resume_grid(out, settings={"arch": "mlp", "epochs": 9, "data": "mnist"})
    TransferStore(out).check_matches({"epochs": 2, "seeds": [0]})  # equal settings are fine


def test_truncated_cell_is_refused_by_report_and_recomputed_by_resume(tmp_path: Path) -> None:
    from layerscope.transfer import GridConfig, TransferStore, pending_cells

    store = TransferStore.create(tmp_path / "g", GridConfig(arch="convnet8", data="mnist", seeds=(0,), epochs=1), 8)
    for cid, cond in (("baseA_s0", "baseA"), ("baseB_s0", "baseB")):
        store.put({"cell": cid, "condition": cond, "n": 0, "seed": 0, "metric": 0.5, "val_accuracy": [0.5]})
    text = store.cell_path("baseB_s0").read_text()
    store.cell_path("baseB_s0").write_text(text[:20])
    with pytest.raises(DataError, match=r"baseB_s0.json is not valid JSON.*--resume"):
        store.records()
    assert store.repair() == ["baseB_s0"]
    assert [r["cell"] for r in store.records()] == ["baseA_s0"]
    assert pending_cells(store)[0].id == "baseB_s0"
    assert (store.directory / "cells" / ".baseB_s0.json.corrupt").read_text() == text[:20]
    (store.directory / "grid.json").write_text('{"config": {"arch"')
    with pytest.raises(DataError, match="grid.json is not valid JSON"):
        TransferStore(store.directory)


@pytest.mark.slow
def test_pool_workers_end_when_their_parent_is_killed(tmp_path: Path) -> None:
    code = textwrap.dedent(
        """
        import os, time
        from layerscope.transfer.executors import PoolExecutor
        pool = PoolExecutor(2)
        ex = pool._ensure()
        futs = [ex.submit(time.sleep, 300) for _ in range(2)]
        while len(ex._processes) < 2 or not all(p.pid for p in ex._processes.values()):
            time.sleep(0.05)
        time.sleep(1.0)
        print(" ".join(str(p.pid) for p in ex._processes.values()), flush=True)
        time.sleep(300)
        """
    )
    parent = subprocess.Popen([sys.executable, "-c", code], cwd=REPO, stdout=subprocess.PIPE, text=True)
    try:
        assert parent.stdout is not None
        pids = [int(p) for p in parent.stdout.readline().split()]
        assert len(pids) == 2
        assert all(Path(f"/proc/{p}").exists() for p in pids) or sys.platform != "linux"
    finally:
        os.kill(parent.pid, signal.SIGKILL)
        parent.wait()

    def gone() -> bool:
        alive = []
        for p in pids:
            try:
                os.kill(p, 0)
            except ProcessLookupError:
                continue
            stat = Path(f"/proc/{p}/stat")
            if stat.exists() and stat.read_text().split(")")[-1].split()[0] == "Z":
                continue  # a zombie: ended, waiting to be reaped by init
            alive.append(p)
        return not alive

    assert wait_for(gone, timeout=20, every=0.1), f"workers {pids} outlived their killed parent"


# -- disks: read-only, full, filling up (tmpfs, where the test may mount one) ----------------


@pytest.fixture
def tmpfs(tmp_path: Path) -> Iterator[Callable[..., Path]]:
    """Mount a small tmpfs under tmp_path (skip when mounting is not permitted)."""
    mounted: list[Path] = []

    def mount(size: str = "1m", name: str = "disk") -> Path:
        point = tmp_path / name
        point.mkdir()
        r = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(point)], capture_output=True)
        if r.returncode != 0:
            pytest.skip(f"cannot mount a tmpfs here ({r.stderr.decode().strip() or r.returncode})")
        mounted.append(point)
        return point

    yield mount
    for point in reversed(mounted):
        subprocess.run(["umount", "-l", str(point)], capture_output=True)


def _remount_ro(point: Path) -> None:
    r = subprocess.run(["mount", "-o", "remount,ro", str(point)], capture_output=True)
    if r.returncode != 0:
        pytest.skip("cannot remount the tmpfs read-only")


@pytest.mark.slow
def test_read_only_output_fails_before_any_work(tmpfs: Callable[..., Path]) -> None:
    disk = tmpfs("1m")
    _remount_ro(disk)
    t = time.perf_counter()
    line = one_line_error(cli(*CAPTURE, "-o", str(disk / "acts")))
    assert "Read-only file system" in line and str(disk) in line
    assert time.perf_counter() - t < 30 and list(disk.iterdir()) == []


@pytest.mark.slow
def test_full_disk_fails_before_any_work(tmpfs: Callable[..., Path]) -> None:
    disk = tmpfs("1m")
    with pytest.raises(OSError):
        with open(disk / "filler", "wb") as fh:
            while True:
                fh.write(b"\0" * 65536)
                fh.flush()
    line = one_line_error(cli(*CAPTURE, "-o", str(disk / "acts")))
    assert "No space left on device" in line
    assert [p.name for p in disk.iterdir()] == ["filler"]


@pytest.mark.slow
def test_disk_filling_up_while_writing_keeps_the_old_result(tmpfs: Callable[..., Path]) -> None:
    disk = tmpfs("1m")
    out = disk / "acts"
    capture_old(out, 5)
    old = {p.name: p.read_bytes() for p in out.iterdir()}
    line = one_line_error(cli(*CAPTURE, "-o", str(out), "--limit", "2000"))  # ~9 MB: does not fit
    assert "No space left on device" in line
    assert {p.name: p.read_bytes() for p in out.iterdir()} == old
    assert len(Activations.load(out)) == 5
    assert sorted(p.name for p in disk.iterdir()) == [".acts.lock", "acts"]
