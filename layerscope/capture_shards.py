"""Capture split across processes or machines on Ray, written into ONE Zarr store.

:func:`collect_activations_sharded` cuts the rows into contiguous ranges, one per Ray task; each
task runs :func:`layerscope.capture.collect_activations` on its rows and writes them into its
region of the per-layer Zarr arrays that the driver created beforehand. Region boundaries fall on
chunk boundaries, so no two tasks ever write the same chunk (Zarr needs no lock). The driver then
writes the labels, sample ids, predictions and ``activations.json``, and swaps the folder in whole
(:func:`layerscope._io.result_folder`). The result equals the single-process capture
(``collect_activations(..., store="zarr")``) value for value: the same model runs on the same rows
in the same batches.

Pointing it at a real cluster
-----------------------------
Start Ray on the machines (``ray start --head`` on one, ``ray start --address=HEAD:6379`` on the
others), each with the same Python environment (layerscope, torch, zarr) and the output folder on a
file system every node mounts at the same path (NFS, Lustre...). Then pass ``address="auto"`` (on a
cluster node) or ``address="ray://HEAD:10001"`` (Ray Client from outside). The model and the
dataset object are sent to the workers through Ray's object store (pickled by Ray: they are the
caller's own objects, never read from a file here); a dataset that reads its files lazily must find
them at the same path on every node. With ``address=None`` a local Ray with ``workers`` CPUs is
started and shut down afterwards (unless Ray was already initialised by the caller).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
from torch import nn

from .capture import Activations, _safe, collect_activations, storage_dtype
from .exceptions import DataError, ParameterError

__all__ = ["collect_activations_sharded", "shard_bounds"]


def shard_bounds(n: int, shards: int, chunk_rows: int) -> list[tuple[int, int]]:
    """Split ``n`` rows into at most ``shards`` contiguous ranges that start on chunk boundaries."""
    if n < 1 or shards < 1 or chunk_rows < 1:
        raise ParameterError(f"need n, shards and chunk_rows >= 1; got {n}, {shards}, {chunk_rows}.")
    chunks = (n + chunk_rows - 1) // chunk_rows
    per = [chunks // shards + (1 if i < chunks % shards else 0) for i in range(min(shards, chunks))]
    out, c = [], 0
    for k in per:
        out.append((c * chunk_rows, min((c + k) * chunk_rows, n)))
        c += k
    return out


def _capture_shard(
    model: nn.Module,
    dataset: Any,
    layers: list[str],
    rows: np.ndarray,
    paths: dict[str, str],
    offset: int,
    kwargs: dict[str, Any],
) -> dict[str, Any]:
    """One Ray task: capture ``rows`` into the stores at ``paths`` from row ``offset`` on."""
    from .store import _zarr

    zarr = _zarr()

    arrays = {n: zarr.open_array(store=p, mode="r+", zarr_format=3) for n, p in paths.items()}
    acts = collect_activations(model, dataset, layers, indices=rows, _region=(arrays, offset), **kwargs)
    return {
        "labels": acts.labels, "sample_ids": acts.sample_ids, "predictions": acts.predictions,
        "extra_labels": acts.extra_labels, "meta": acts.meta, "reduce": acts.reduce,
    }


def collect_activations_sharded(
    model: nn.Module,
    dataset: Any,
    layers: Sequence[str] | str,
    out_dir: str | os.PathLike[str],
    *,
    workers: int = 2,
    address: str | None = None,
    batch_size: int = 256,
    reduce: Any = None,
    layouts: Mapping[str, str] | None = None,
    indices: Sequence[int] | np.ndarray | None = None,
    predictions: bool = False,
    dtype: Any = np.float32,
    chunk_rows: int | None = None,
) -> Activations:
    """Capture ``layers`` over ``dataset`` on Ray workers, each writing its rows into one Zarr store.

    Parameters
    ----------
    model, dataset, layers, batch_size, reduce, layouts, indices, predictions, dtype
        As :func:`layerscope.capture.collect_activations`. ``dataset`` must have a length (map-style).
    out_dir
        The capture folder (written whole or not at all; on a shared file system for a cluster).
    workers
        Shards (Ray tasks, one CPU each); ranges are whole chunks, so fewer shards run when the
        data has fewer chunks.
    address
        ``None``: start a local Ray with ``workers`` CPUs (shut down afterwards). Otherwise passed to
        ``ray.init(address=...)``: ``"auto"`` on a cluster node, ``"ray://HEAD:10001"`` from outside
        (see the module notes on shared storage).
    chunk_rows
        Rows per Zarr chunk (default: about 8 MB of the widest layer, a multiple of ``batch_size``).

    Returns
    -------
    Activations
        Arrays as :class:`layerscope.store.LazyArray`; ``meta["shards"]`` lists the row ranges.
    """
    from ._optional import require

    ray = require("ray", "sharded capture")
    from ._io import result_folder
    from .seam import data_length
    from .store import chunk_rows_for, create_layer_store

    if isinstance(layers, str):
        layers = [layers]
    layers = list(dict.fromkeys(layers))
    if isinstance(workers, bool) or not isinstance(workers, (int, np.integer)) or workers < 1:
        raise ParameterError(f"workers must be an integer >= 1; got {workers!r}.")
    n_data = data_length(dataset)
    if indices is None:
        if n_data is None:
            raise DataError("sharded capture needs data with a length (a map-style dataset); iterable data cannot be split.")
        rows = np.arange(n_data)
    else:
        rows = np.asarray(indices, dtype=np.int64)
    if len(rows) == 0:
        raise DataError("The dataset is empty: there is nothing to capture. Check the data spec or the subset.")
    dt = storage_dtype(dtype)
    common = {"batch_size": batch_size, "reduce": reduce, "layouts": layouts, "predictions": predictions, "dtype": dt}
    # one sample in this process: the per-sample shapes (and every check of the arguments) before any worker starts
    probe = collect_activations(model, dataset, layers, indices=rows[:1], **common)
    shapes = {n: tuple(probe[n].shape[1:]) for n in layers}
    if chunk_rows is None:
        chunk_rows = min(chunk_rows_for(int(np.prod(s, dtype=np.int64)) * dt.itemsize, batch_size) for s in shapes.values())
    chunk_rows = min(int(chunk_rows), len(rows))
    bounds = shard_bounds(len(rows), int(workers), int(chunk_rows))
    started = False
    with result_folder(out_dir) as staging:
        paths = {}
        for i, n in enumerate(layers):
            p = staging / f"layer{i:03d}_{_safe(n)}.zarr"
            create_layer_store(p, (len(rows), *shapes[n]), dt, int(chunk_rows))
            paths[n] = str(p)
        if not ray.is_initialized():
            if address is None:
                ray.init(num_cpus=int(workers), include_dashboard=False, log_to_driver=False)
            else:
                ray.init(address=address)
            started = True
        try:
            task = ray.remote(num_cpus=1)(_capture_shard)
            model_ref, data_ref = ray.put(model), ray.put(dataset)
            refs = [task.remote(model_ref, data_ref, layers, rows[a:b], paths, a, common) for a, b in bounds]
            parts = ray.get(refs)
        finally:
            if started:
                ray.shutdown()
        preds = [p["predictions"] for p in parts]
        meta = dict(parts[0]["meta"])
        meta.pop("storage", None)
        notes = {str(p["meta"].get("predictions")) for p in parts}
        if any(x is None for x in preds):
            preds_all = None
            meta["predictions"] = next(str(p["meta"]["predictions"]) for p in parts if p["predictions"] is None)
        else:
            preds_all = np.concatenate(preds)
            if len(notes) > 1:  # pragma: no cover - every shard runs the same model
                raise DataError(f"shards disagree on predictions: {sorted(notes)}")
        copied = sorted({c for p in parts for c in p["meta"].get("copied_in_place", [])})
        if copied:
            meta["copied_in_place"] = copied
        meta["storage"] = {"dtype": dt.name, "in_memory": [], "zarr": list(layers)}
        meta["shards"] = [[int(a), int(b)] for a, b in bounds]
        extra_keys = set(parts[0]["extra_labels"])
        acts = Activations(
            arrays={},
            labels=np.concatenate([p["labels"] for p in parts]),
            sample_ids=np.concatenate([p["sample_ids"] for p in parts]),
            predictions=preds_all,
            extra_labels={k: np.concatenate([p["extra_labels"][k] for p in parts]) for k in extra_keys
                          if all(k in p["extra_labels"] for p in parts)},
            reduce=parts[0]["reduce"],
            meta=meta,
        )
        if len(acts.labels) != len(rows):
            raise DataError(f"the shards captured {len(acts.labels)} rows of {len(rows)}; the dataset yielded fewer rows than asked.")
        from .store import open_layer_store

        acts.arrays = {n: open_layer_store(paths[n], [len(rows), *shapes[n]]) for n in layers}  # type: ignore[misc]
        acts._write_into(staging)
    return Activations.load(Path(out_dir))
