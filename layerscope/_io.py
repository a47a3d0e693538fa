"""Atomic writes: a file either appears whole or not at all; a result folder is old or new.

* :func:`atomic_path` / :func:`atomic_open` / :func:`write_json`: one file, renamed into place.
* :func:`result_folder`: a whole result folder, written into a per-process staging folder and
  swapped in at the end, under an exclusive lock (:func:`folder_lock`), after
  :func:`check_writable` made sure the output can be written at all.
* :func:`read_json`: JSON that is missing, truncated or not JSON is a
  :class:`~layerscope.exceptions.DataError` naming the file.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import json
import os
import secrets
import shutil
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Iterator

import numpy as np

from .exceptions import DataError, ParameterError

__all__ = [
    "atomic_path",
    "atomic_open",
    "write_json",
    "read_json",
    "to_jsonable",
    "check_writable",
    "folder_lock",
    "result_folder",
    "is_leftover",
    "RESULT_MARKERS",
]

#: Files that mark a folder as a layerscope result: an existing ``--out`` folder is only replaced
#: by :func:`result_folder` when it is empty or holds one of these (never a user's own folder).
RESULT_MARKERS = ("result.json", "activations.json", "layerscope-export.json")  # the last: layerscope.export


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; rename it over ``path`` on success.

    On an exception (or a kill before the rename) ``path`` keeps its previous content and
    the temporary file is removed (or left under a ``.tmp`` name that no reader looks at).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    # mkstemp creates 0600 files; give the result the permissions open() would (0666 & ~umask)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.replace(tmp_path, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp_path.unlink()
        raise


@contextlib.contextmanager
def atomic_open(path: str | os.PathLike[str], mode: str = "w") -> Iterator[IO[Any]]:
    """``open`` whose result only appears at ``path`` once the block finished without error."""
    with atomic_path(path) as tmp, open(tmp, mode) as fh:
        yield fh
        fh.flush()
        os.fsync(fh.fileno())


def to_jsonable(obj: Any) -> Any:
    """Convert NumPy / torch scalars and arrays, tuples and paths to JSON-safe values."""
    if isinstance(obj, dict):
        return {str(k): to_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [to_jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return to_jsonable(obj.tolist())
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, Path):
        return str(obj)
    if isinstance(obj, float) and not np.isfinite(obj):
        return None
    try:
        import torch

        if isinstance(obj, torch.Tensor):
            return to_jsonable(obj.detach().cpu().numpy())
    except ImportError:  # pragma: no cover
        pass
    return obj


def write_json(path: str | os.PathLike[str], obj: Any) -> None:
    """Write ``obj`` as indented JSON, atomically."""
    with atomic_open(path, "w") as fh:
        json.dump(to_jsonable(obj), fh, indent=2)
        fh.write("\n")


def read_json(path: str | os.PathLike[str]) -> Any:
    """Read a JSON file; a truncated or garbled file is a :class:`DataError` naming it.

    A missing file raises ``FileNotFoundError`` as ``open`` does (callers that expect the file
    check for it first and say which command writes it).
    """
    try:
        with open(path, encoding="utf-8") as fh:
            return json.load(fh)
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise DataError(
            f"{path} is not valid JSON (truncated or corrupt: {err}); it was not written completely. "
            "Re-run the command that writes it, or delete the folder."
        ) from None


# ------------------------------------------------------------------------------------------
# Result folders: one writer at a time, old or new, never a mix
# ------------------------------------------------------------------------------------------


def _names(out_dir: Path) -> tuple[Path, str]:
    out = Path(os.path.abspath(out_dir))
    if not out.name:
        raise ParameterError(f"{out_dir} cannot be an output folder (it has no name); choose a subfolder.")
    return out.parent, out.name


def lock_file(out_dir: str | os.PathLike[str]) -> Path:
    """The lock file of ``out_dir``: ``<parent>/.<name>.lock`` (left in place; it is empty)."""
    parent, name = _names(Path(out_dir))
    return parent / f".{name}.lock"


def is_leftover(name: str) -> bool:
    """True for the names :func:`result_folder` uses while writing (staging, backup, lock).

    Readers ignore them; the next writer of the same folder removes stale ones.
    """
    return name.startswith(".") and (".tmp-" in name or ".old-" in name or name.endswith(".lock"))


def check_writable(out_dir: str | os.PathLike[str], need_bytes: int = 0) -> Path:
    """Fail fast, before any work, when ``out_dir`` cannot be written.

    Creates the parent folders, writes and removes a small probe file next to ``out_dir``
    (where :func:`result_folder` stages and swaps), and checks that at least ``need_bytes`` are
    free there.

    Returns
    -------
    Path
        ``out_dir`` made absolute.

    Raises
    ------
    ParameterError
        The folder (or its parent) is read-only, not permitted, full, or ``out_dir`` is a file
        where a folder is needed -- with the OS's reason and how to fix it.
    """
    parent, name = _names(Path(out_dir))
    out = parent / name
    try:
        parent.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=f".{name}.tmp-probe-", dir=parent)
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(b"\0" * 4096)
                fh.flush()
                os.fsync(fh.fileno())
        finally:
            with contextlib.suppress(OSError):
                os.unlink(probe)
        free = shutil.disk_usage(parent).free
    except OSError as err:
        raise ParameterError(
            f"cannot write the output {out}: {err.strerror or err} ({parent}); "
            "choose another --out, or free space / fix the permissions there."
        ) from None
    if need_bytes and free < need_bytes:
        raise ParameterError(
            f"cannot write the output {out}: {free / 2**20:.1f} MiB free in {parent}, about "
            f"{need_bytes / 2**20:.1f} MiB needed; free space or choose another --out."
        )
    return out


@dataclass
class _Held:
    """One output folder this process holds the lock of."""

    fh: IO[Any]
    depth: int = 0
    staging: Path | None = None


_HELD: dict[Path, _Held] = {}
_HELD_GUARD = threading.Lock()


def _owner_pid(path: Path) -> str:
    try:
        return path.read_text().strip() or "?"
    except OSError:
        return "?"


@contextlib.contextmanager
def folder_lock(out_dir: str | os.PathLike[str]) -> Iterator[Path]:
    """Hold the exclusive write lock of ``out_dir`` (``fcntl.flock`` on its :func:`lock_file`).

    Re-entrant within a process (a command that holds it may call library code that takes it
    again). The lock is released when the block ends or the process dies (the OS drops it).

    Raises
    ------
    ParameterError
        Another process holds the lock: ``"another layerscope process is writing OUT (pid N);
        wait for it or choose another --out"``.
    """
    import fcntl

    parent, name = _names(Path(out_dir))
    out = parent / name
    with _HELD_GUARD:
        held = _HELD.get(out)
        if held is None:
            check_writable(out)
            path = parent / f".{name}.lock"
            fh = open(path, "a+")
            try:
                fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                fh.close()
                raise ParameterError(
                    f"another layerscope process is writing {out} (pid {_owner_pid(path)}); "
                    "wait for it or choose another --out."
                ) from None
            except BaseException:
                fh.close()
                raise
            fh.seek(0)
            fh.truncate()
            fh.write(str(os.getpid()))
            fh.flush()
            held = _HELD[out] = _Held(fh)
        held.depth += 1
    try:
        yield out
    finally:
        with _HELD_GUARD:
            held.depth -= 1
            if held.depth == 0:
                del _HELD[out]
                with contextlib.suppress(OSError):
                    held.fh.seek(0)
                    held.fh.truncate()
                held.fh.close()  # closing the file releases the flock


def _clean_leftovers(parent: Path, name: str) -> None:
    """Remove staging / backup folders of ``name`` left by killed writers (the lock is held).

    Names carrying this process's pid are kept: they belong to this (living) process and may be
    in use by it.
    """
    mine = (f".{name}.tmp-{os.getpid()}-", f".{name}.old-{os.getpid()}-")  # this process's own, in use
    for prefix in (f".{name}.tmp-", f".{name}.old-"):
        for p in parent.glob(f"{glob_escape(prefix)}*"):
            if p.name.startswith(mine):
                continue
            if p.is_dir() and not p.is_symlink():
                shutil.rmtree(p, ignore_errors=True)
            else:
                with contextlib.suppress(OSError):
                    p.unlink()


def glob_escape(text: str) -> str:
    """``text`` with glob's special characters escaped."""
    import glob

    return glob.escape(text)


_RENAME_EXCHANGE = 2
_AT_FDCWD = -100


def _exchange(a: Path, b: Path) -> bool:
    """Atomically swap two paths (Linux ``renameat2(RENAME_EXCHANGE)``); False if unsupported."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        fn = libc.renameat2
    except (OSError, AttributeError):
        return False
    fn.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    rc = fn(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE)
    if rc == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.ENOSYS, errno.EINVAL, errno.EOPNOTSUPP):
        return False
    raise OSError(err, os.strerror(err), str(b))


def _check_replaceable(out: Path) -> None:
    if out.is_symlink() or (out.exists() and not out.is_dir()):
        raise ParameterError(f"{out} exists and is not a folder; choose another --out.")
    if out.is_dir():
        entries = [p.name for p in out.iterdir()]
        if entries and not any(m in entries for m in RESULT_MARKERS):
            raise ParameterError(
                f"{out} already holds files that are not a layerscope result ({', '.join(sorted(entries)[:3])}"
                f"{', ...' if len(entries) > 3 else ''}); a result replaces its whole folder, so choose a new "
                "or empty --out."
            )


@contextlib.contextmanager
def result_folder(out_dir: str | os.PathLike[str]) -> Iterator[Path]:
    """Write a result folder that is either the old result or the new one, never a mix.

    Usage::

        with result_folder(out) as d:      # d is a fresh, empty staging folder
            write everything into d         # result.json, figures, arrays
        # here ``out`` is the new folder; on an exception it is still the old one

    What it does, in order:

    1. takes the exclusive lock of ``out`` (:func:`folder_lock`; a second writer gets a
       one-line :class:`~layerscope.exceptions.ParameterError`) -- :func:`check_writable` runs
       first, so a read-only or full disk fails before anything is computed if the caller
       enters this early (commands call :func:`check_writable` at their start anyway);
    2. removes staging / backup leftovers of writers that were killed;
    3. refuses an existing ``out`` that is not a folder, or a non-empty folder that is not a
       layerscope result (no :data:`RESULT_MARKERS` file in it): the whole folder is replaced,
       so a user's own folder is never deleted;
    4. yields a new staging folder ``<parent>/.<name>.tmp-<pid>-<random>``;
    5. on success swaps it in: ``renameat2(RENAME_EXCHANGE)`` on Linux (atomic), else rename the
       old folder to ``.<name>.old-<pid>-<random>`` and the staging folder to ``out``; then the
       old folder is deleted. A kill at any point leaves ``out`` as the old folder or the new one
       (with the rename fallback, a kill between the two renames leaves the old folder under the
       backup name; the next writer puts it back before it starts);
    6. on an exception (or Ctrl-C) deletes the staging folder; ``out`` is untouched.

    Nesting: inside an active ``result_folder(out)`` of this process, ``result_folder(out)``
    and ``result_folder(<its staging folder>)`` yield the same staging folder and do nothing
    else; only the outermost block swaps. So a result's ``save(d)`` may use ``result_folder(d)``
    and still be called by a command that stages the folder around several writes.

    Parameters
    ----------
    out_dir
        The result folder (created if new, replaced if it holds a result).

    Yields
    ------
    Path
        The staging folder to write into.
    """
    p = Path(os.path.abspath(out_dir))
    with _HELD_GUARD:
        for held in _HELD.values():
            if held.staging is not None and held.staging == p:
                nested: Path | None = p
                break
        else:
            nested = None
    if nested is not None:
        yield nested
        return
    with folder_lock(p) as out:
        held = _HELD[out]
        if held.staging is not None:
            yield held.staging
            return
        parent, name = out.parent, out.name
        backups = sorted(parent.glob(f"{glob_escape(f'.{name}.old-')}*"))
        if not out.exists() and backups:  # a writer died between its two renames: restore
            os.rename(backups[-1], out)
        _clean_leftovers(parent, name)
        _check_replaceable(out)
        staging = parent / f".{name}.tmp-{os.getpid()}-{secrets.token_hex(4)}"
        staging.mkdir()
        held.staging = staging
        try:
            yield staging
            held.staging = None
            _swap_in(staging, out)
        except OSError as err:
            held.staging = None
            full = err.errno in (None, errno.ENOSPC, errno.EDQUOT) and _nearly_full(parent)
            shutil.rmtree(staging, ignore_errors=True)
            if full:  # NumPy's short writes say "N requested and M written", without an errno
                raise ParameterError(
                    f"cannot write the output {out}: No space left on device ({parent}; {err}); the previous "
                    "result, if any, is kept. Free space or choose another --out."
                ) from err
            raise
        except BaseException:
            held.staging = None
            shutil.rmtree(staging, ignore_errors=True)
            raise


def _nearly_full(folder: Path, margin: int = 256 * 1024) -> bool:
    try:
        return shutil.disk_usage(folder).free < margin
    except OSError:
        return False


def _swap_in(staging: Path, out: Path) -> None:
    if out.is_dir() and _exchange(staging, out):
        shutil.rmtree(staging, ignore_errors=True)  # now the old folder
        return
    backup = out.parent / f".{out.name}.old-{os.getpid()}-{secrets.token_hex(4)}"
    had_old = out.exists()
    if had_old:
        os.rename(out, backup)
    try:
        os.rename(staging, out)
    except BaseException:
        if had_old:
            os.rename(backup, out)
        raise
    if had_old:
        shutil.rmtree(backup, ignore_errors=True)
