"""Run a transfer grid into a resumable store, on any executor.

:func:`run_grid` plans the cells (bases first), skips the finished ones, runs the bases, then
every other cell with its base's weights, writing each record atomically as it arrives. A
killed run loses only the cells in flight; :func:`resume_grid` (or :func:`run_grid` again with
the same config) finishes the rest. The outputs are rebuilt from the store at the end.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any, Iterator

from .._io import folder_lock
from .._progress import ProgressArg, resolve_progress
from .analysis import TransferResult, write_outputs
from .executors import LocalExecutor
from .grid import Cell, GridConfig, _load, count_layers, iter_tasks, plan_cells, run_cell
from .store import TransferStore

__all__ = ["run_grid", "resume_grid", "pending_cells"]

log = logging.getLogger(__name__)


def pending_cells(store: TransferStore) -> list[Cell]:
    """Cells of the store's grid that have no record yet (bases first)."""
    done = store.done_ids()
    return [c for c in plan_cells(store.config, store.n_layers) if c.id not in done]


def _execute(store: TransferStore, executor: Any) -> Iterator[str]:
    """Run the pending cells; yield each cell id once its record is on disk."""
    todo = pending_cells(store)
    bases = [c for c in todo if c.is_base]
    rest = [c for c in todo if not c.is_base]
    for rec in executor.map_unordered(run_cell, iter_tasks(store.config, bases, {})):
        store.put(rec)
        yield rec["cell"]
    needed = sorted({f"{c.source}_s{c.seed}" for c in rest if c.source is not None})
    states = {cid: store.base_state(cid) for cid in needed}
    for rec in executor.map_unordered(run_cell, iter_tasks(store.config, rest, states)):
        store.put(rec)
        yield rec["cell"]


def run_grid(
    config: GridConfig,
    out_dir: str | os.PathLike[str],
    executor: Any | None = None,
    progress: ProgressArg = None,
    meta: dict[str, Any] | None = None,
) -> TransferResult:
    """Run (or continue) the grid ``config`` in ``out_dir``; return the result.

    Parameters
    ----------
    config
        The grid (:class:`~layerscope.transfer.grid.GridConfig`).
    out_dir
        Grid folder: store, ``result.json``, ``transfer.csv``, ``transfer.png``. If it already
        holds the same grid, finished cells are skipped; a different grid is an error.
    executor
        :class:`~layerscope.transfer.executors.LocalExecutor` (default), ``PoolExecutor`` or
        ``RayExecutor``; the caller closes it.
    progress
        Tracker over the cells still to run.
    """
    train = _load(config.data)
    n_layers = count_layers(config.arch, tuple(train.input_shape))
    with folder_lock(out_dir):  # one process per grid folder (a second gets a one-line error)
        store = TransferStore.create(out_dir, config, n_layers, meta)
        return _run(store, executor, progress)


def resume_grid(
    directory: str | os.PathLike[str],
    executor: Any | None = None,
    progress: ProgressArg = None,
    settings: dict[str, Any] | None = None,
) -> TransferResult:
    """Finish the grid stored in ``directory`` (its own config); return the result.

    ``settings`` (GridConfig keys, e.g. ``{"epochs": 5}``) must equal the stored ones; any that
    differ raise ``ParameterError`` listing them (the stored grid is never silently changed).
    """
    with folder_lock(directory):
        store = TransferStore(directory)
        if settings:
            store.check_matches(settings)
        return _run(store, executor, progress)


def _run(store: TransferStore, executor: Any | None, progress: ProgressArg) -> TransferResult:
    track = resolve_progress(progress)
    redo = store.repair()  # unreadable cells / bases are recomputed (logged as warnings)
    if redo:
        log.warning("transfer grid %s: recomputing %d unreadable cell(s): %s", store.directory, len(redo), ", ".join(redo))
    ex = executor or LocalExecutor()
    todo = len(pending_cells(store))
    log.info("transfer grid %s: %d cells to run", store.directory, todo)
    for _ in track(_execute(store, ex), total=todo, desc="transfer cells"):
        pass
    return write_outputs(store, Path(store.directory))
