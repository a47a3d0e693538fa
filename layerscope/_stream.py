"""Reading captured layers without whole-layer copies: the plumbing the speech and text analyses share.

An analysis that captures over a dataset (``memory_budget=`` / ``store=``) calls
:func:`captured`: :func:`layerscope.capture.collect_activations` with those two arguments passed
through, into a temporary folder removed when the ``with`` block ends. The statistics then read the
layers with the helpers here instead of ``np.asarray`` of a whole layer:

* :func:`iter_blocks` — fixed-size row blocks, whatever the storage (array in RAM, memory-mapped
  ``.npy``, Zarr :class:`~layerscope.store.LazyArray`), so a statistic summed block by block adds in
  the same order in every case and gives bit-identical results;
* :func:`column_max` and :func:`columns` — per-unit maxima and a few units' columns, one block at a
  time;
* :func:`read_layer` — one layer (or its rows ``rows``) as an in-memory ``(n, d)`` matrix, for a
  statistic that needs the whole matrix (a t-SNE, a probe); the analyses read one layer at a time.

Memory-mapped ``.npy`` files are read with plain file reads (``np.fromfile``), not through the
mapping: pages touched through a mapping stay in the process's resident set while the mapping
lives, so reading a layer through it would count the whole file against the process.
"""

from __future__ import annotations

import contextlib
import math
import mmap
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator, Sequence

import numpy as np

from .exceptions import ParameterError

if TYPE_CHECKING:  # pragma: no cover
    from torch import nn

    from .capture import Activations

__all__ = ["captured", "check_storage", "budget_bytes", "iter_blocks", "read_rows", "column_max", "columns", "read_layer", "storage_params", "BLOCK_ROWS"]

#: rows per block of the streaming statistics (fixed, so sums add in the same order for every storage)
BLOCK_ROWS = 4096


def check_storage(memory_budget: int | None, store: str | None) -> None:
    """Refuse a bad ``memory_budget`` (bytes, an integer >= 0) or ``store`` (None, "npy", "zarr") before any work."""
    if memory_budget is not None and (
        isinstance(memory_budget, bool) or not isinstance(memory_budget, (int, np.integer)) or memory_budget < 0
    ):
        raise ParameterError(f"memory_budget must be a whole number of bytes >= 0 (or None); got {memory_budget!r}.")
    if store not in (None, "npy", "zarr"):
        raise ParameterError(f"store must be None, 'npy' or 'zarr'; got {store!r}.")


def budget_bytes(memory_budget_mb: float | None, option: str = "--memory-budget-mb") -> int | None:
    """Megabytes (MiB) of a CLI option to bytes; ``None`` stays ``None``; negative, nan or inf is refused."""
    if memory_budget_mb is None:
        return None
    if not (math.isfinite(memory_budget_mb) and memory_budget_mb >= 0):
        raise ParameterError(f"{option} must be a finite number >= 0; got {memory_budget_mb}.")
    return int(memory_budget_mb * 2**20)


def storage_params(memory_budget: int | None, store: str | None) -> dict[str, Any]:
    """What a result records about how its layers were held: the budget, the store, the rule."""
    if memory_budget is None and store is None:
        rule = "every captured layer held in RAM"
    elif store == "zarr":
        rule = "every captured layer written to a chunked Zarr store in a temporary folder and read back by rows"
    else:
        rule = ("layers within the memory budget held in RAM, the others streamed to .npy files in a temporary "
                "folder and read back by rows")
    return {"memory_budget": None if memory_budget is None else int(memory_budget), "store": store, "storage_rule": rule}


@contextlib.contextmanager
def captured(
    model: "nn.Module",
    data: Any,
    layers: Sequence[str],
    *,
    memory_budget: int | None = None,
    store: str | None = None,
    **kwargs: Any,
) -> Iterator["Activations"]:
    """:func:`~layerscope.capture.collect_activations` of ``layers``, spilled to a temporary folder if asked.

    Without ``memory_budget`` and ``store`` this is a plain call (every layer in RAM). With either,
    the arrays go to a fresh temporary folder (under ``$TMPDIR``) that is removed when the block
    ends: read everything needed inside the block.
    """
    from .capture import collect_activations

    check_storage(memory_budget, store)
    if memory_budget is None and store is None:
        yield collect_activations(model, data, list(layers), **kwargs)
        return
    with tempfile.TemporaryDirectory(prefix="layerscope-analysis-", ignore_cleanup_errors=True) as tmp:
        acts = collect_activations(
            model, data, list(layers), memory_budget=memory_budget, store=store,  # type: ignore[arg-type]  # checked above
            out_dir=Path(tmp) / "activations", **kwargs,
        )
        try:
            yield acts
        finally:
            acts.arrays.clear()  # drop the mappings / store handles before the folder goes


def _memmap_file(x: Any) -> tuple[str, int] | None:
    """``(file, byte offset)`` of a whole memory-mapped ``.npy`` array (not a view of one: its offset would be wrong)."""
    if isinstance(x, np.memmap) and getattr(x, "filename", None) and x.flags.c_contiguous and isinstance(x.base, mmap.mmap):
        return str(x.filename), int(x.offset)
    return None


def read_rows(x: Any, a: int, b: int) -> np.ndarray:
    """Rows ``a:b`` of ``x`` as an in-memory array (file reads for a memory-mapped ``.npy``)."""
    mm = _memmap_file(x)
    if mm is not None:
        row = int(np.prod(x.shape[1:], dtype=np.int64))
        out = np.fromfile(mm[0], dtype=x.dtype, count=(b - a) * row, offset=mm[1] + a * row * x.dtype.itemsize)
        return out.reshape((b - a, *x.shape[1:]))
    return np.asarray(x[a:b])


def iter_blocks(x: Any, rows_per_block: int = BLOCK_ROWS) -> Iterator[tuple[int, np.ndarray]]:
    """``(start_row, (b, d) block)`` over all rows of ``x`` in blocks of ``rows_per_block`` (the last shorter).

    The same block boundaries for every storage, so that a statistic accumulated block by block
    is bit-identical whether the layer was in RAM, in a ``.npy`` file or in a Zarr store.
    """
    n = len(x)
    step = max(1, int(rows_per_block))
    for a in range(0, n, step):
        b = min(a + step, n)
        blk = read_rows(x, a, b)
        yield a, blk.reshape(b - a, -1)


def column_max(x: Any, rows_per_block: int = BLOCK_ROWS) -> np.ndarray:
    """``(d,)`` maximum of each column of ``x`` (flattened per row), read block by block (exact)."""
    out: np.ndarray | None = None
    for _, blk in iter_blocks(x, rows_per_block):
        m = blk.max(axis=0)
        out = m if out is None else np.maximum(out, m)
    if out is None:
        raise ParameterError("column_max of an array with no rows.")
    return out


def columns(x: Any, cols: Sequence[int] | np.ndarray, rows_per_block: int = BLOCK_ROWS) -> np.ndarray:
    """``(n, len(cols))``: the columns ``cols`` of ``x`` (flattened per row), read block by block."""
    c = np.asarray(cols, dtype=np.int64)
    out = np.empty((len(x), len(c)), dtype=np.dtype(x.dtype))
    for a, blk in iter_blocks(x, rows_per_block):
        out[a : a + len(blk)] = blk[:, c]
    return out


def read_layer(x: Any, rows: Sequence[int] | np.ndarray | None = None) -> np.ndarray:
    """One layer (or its rows ``rows``, in that order) as an in-memory ``(n, d)`` array.

    A :class:`~layerscope.store.LazyArray` is read chunk by chunk into one array; a memory-mapped
    ``.npy`` with file reads (see the module notes); an array in RAM is reshaped (a view, no copy)
    or indexed.
    """
    from .store import as_matrix, is_lazy

    if is_lazy(x):
        return as_matrix(x, rows)
    if _memmap_file(x) is not None:
        if rows is None:
            return read_rows(x, 0, len(x)).reshape(len(x), -1)
        # a row subset: read through the mapping (only the pages of those rows are touched)
        return np.asarray(x[np.asarray(rows, dtype=np.int64)]).reshape(len(rows), -1)
    return as_matrix(x, rows)

