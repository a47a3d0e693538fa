"""A chunked, compressed on-disk activation store (Zarr v3) and the lazy arrays that read it.

Captures larger than memory go to one Zarr array per layer (``layerNNN_<name>.zarr`` in the
capture folder, beside ``labels.npz`` and ``activations.json``), chunked by rows (each chunk holds
whole samples) and compressed with Blosc/LZ4 and byte shuffling: ReLU maps, full of zeros,
shrink several-fold at little CPU cost.

:class:`LazyArray` is what :class:`~layerscope.capture.Activations` exposes for such a layer: it has
``shape``, ``dtype``, ``len()`` and slicing like an array, but nothing is read until rows are
asked for, and then only the chunks that hold them. The analyses read it chunk by chunk
(:func:`iter_row_blocks`, for top-k maxima and CKA sums) or by row subset (:func:`as_matrix`, for
t-SNE and probes) without loading whole layers. Layers too wide even for that have block routes
within a memory budget: ``project(..., memory_budget=)`` (:mod:`layerscope.projection.streamed`)
and :func:`layerscope.similarity.linear_cka_detail`.

A store is hostile input like any file: before Zarr opens an array, its ``zarr.json`` is read as
plain JSON and checked (Zarr v3 only, a float data type, the shape ``activations.json`` promises,
a regular chunk grid of bounded chunk size, codecs from a short list of numeric codecs). Object
data types and any codec that could unpickle are refused; Zarr v2 metadata is never read.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Iterator, Sequence

import numpy as np

from ._io import read_json
from .exceptions import DataError, ParameterError

__all__ = [
    "LazyArray", "as_matrix", "iter_row_blocks", "create_layer_store", "open_layer_store", "STORE_DTYPES",
    "reduced_precision_note",
]

#: data types a store may hold (float only: activations are never objects, strings or pickles)
STORE_DTYPES = ("float16", "float32", "float64")
#: codecs a store may use: the numeric ones Zarr writes itself (nothing that unpickles)
SAFE_CODECS = ("bytes", "blosc", "zstd", "gzip", "crc32c", "transpose")
#: a chunk larger than this is refused on load (decompressing it could exhaust memory)
MAX_CHUNK_BYTES = 1 << 30
#: target uncompressed size of one chunk when writing
CHUNK_BYTES = 8 << 20


def _zarr() -> Any:
    from ._optional import require

    return require("zarr", "the chunked activation store (store='zarr')")


def chunk_rows_for(row_bytes: int, multiple: int = 1, target: int = CHUNK_BYTES) -> int:
    """Rows per chunk: about ``target`` bytes, a multiple of ``multiple`` (the batch), at least one batch."""
    rows = max(1, target // max(1, row_bytes))
    m = max(1, int(multiple))
    return max(m, (rows // m) * m)


def create_layer_store(
    path: str | os.PathLike[str], shape: tuple[int, ...], dtype: Any, chunk_rows: int
) -> Any:
    """Create one layer's Zarr v3 array at ``path`` (shape ``(N, ...)``, row chunks, Blosc/LZ4 + shuffle)."""
    zarr = _zarr()
    BloscCodec = zarr.codecs.BloscCodec

    dt = np.dtype(dtype)
    if dt.name not in STORE_DTYPES:
        raise ParameterError(f"a store holds {', '.join(STORE_DTYPES)}; got dtype {dt}.")
    return zarr.create_array(
        store=str(path),
        shape=tuple(int(s) for s in shape),
        chunks=(int(chunk_rows), *(int(s) for s in shape[1:])),
        dtype=dt,
        compressors=[BloscCodec(cname="lz4", clevel=5, shuffle="shuffle", typesize=dt.itemsize)],
        fill_value=0,
        zarr_format=3,
        write_data=True,
    )


def _check_metadata(path: Path, shape: Sequence[int] | None) -> None:
    """Refuse a Zarr array whose ``zarr.json`` is not what layerscope writes (read as plain JSON)."""
    meta_path = path / "zarr.json"
    if not meta_path.is_file():
        raise DataError(f"{path} is not a Zarr v3 array (no zarr.json); the capture folder is incomplete or not layerscope's.")
    meta = read_json(meta_path)
    where = f"{meta_path}"
    if not isinstance(meta, dict) or meta.get("zarr_format") != 3 or meta.get("node_type") != "array":
        raise DataError(f"{where} is not Zarr v3 array metadata (zarr_format 3, node_type 'array'); refusing to read it.")
    dt = meta.get("data_type")
    if not isinstance(dt, str) or dt not in STORE_DTYPES:
        raise DataError(
            f"{where} declares data type {dt!r}; a layerscope store holds only {', '.join(STORE_DTYPES)} "
            "(object, string and structured types are refused)."
        )
    shp = meta.get("shape")
    if not isinstance(shp, list) or not all(isinstance(s, int) and not isinstance(s, bool) and s >= 0 for s in shp):
        raise DataError(f"{where} has an invalid shape {shp!r}.")
    if shape is not None and list(shp) != list(shape):
        raise DataError(
            f"{where} has shape {tuple(shp)}, but activations.json says {tuple(shape)}; the folder mixes two runs. "
            "Re-run the capture into a new --out."
        )
    grid = meta.get("chunk_grid")
    chunks = grid.get("configuration", {}).get("chunk_shape") if isinstance(grid, dict) and isinstance(grid.get("configuration"), dict) else None
    if (
        not isinstance(grid, dict) or grid.get("name") != "regular" or not isinstance(chunks, list)
        or len(chunks) != len(shp) or not all(isinstance(c, int) and not isinstance(c, bool) and c >= 1 for c in chunks)
    ):
        raise DataError(f"{where} has chunk grid {grid!r}; expected a regular grid of positive chunk sizes, one per axis.")
    if int(np.prod(chunks, dtype=np.float64)) * np.dtype(dt).itemsize > MAX_CHUNK_BYTES:
        raise DataError(f"{where} has chunks {tuple(chunks)} of more than {MAX_CHUNK_BYTES >> 20} MiB; refusing to decompress them.")
    codecs = meta.get("codecs")
    names = [c.get("name") if isinstance(c, dict) else c for c in codecs] if isinstance(codecs, list) else None
    if not names or any(n not in SAFE_CODECS for n in names):
        raise DataError(f"{where} uses codecs {names!r}; only {', '.join(SAFE_CODECS)} are read.")
    if meta.get("storage_transformers"):
        raise DataError(f"{where} has storage transformers; layerscope stores have none.")


def open_layer_store(path: str | os.PathLike[str], shape: Sequence[int] | None = None) -> "LazyArray":
    """Open one layer's Zarr array read-only, after checking its metadata (see module notes)."""
    p = Path(path)
    _check_metadata(p, shape)
    zarr = _zarr()
    try:
        z = zarr.open_array(store=str(p), mode="r", zarr_format=3)
    except Exception as err:  # zarr raises several types for bad metadata
        raise DataError(f"{p} is not a readable Zarr array ({type(err).__name__}: {err}).") from None
    return LazyArray(z, p)


class LazyArray:
    """A read-only ``(N, ...)`` activation array in a Zarr store, read by rows on demand.

    Indexing (``a[i]``, ``a[i:j]``, ``a[rows]`` with an integer array, ``a[i:j, c]``) reads only
    the chunks that hold the rows asked for and returns a NumPy array. ``np.asarray(a)`` reads the
    whole layer; analyses use :func:`as_matrix` (row subsets) and :func:`iter_row_blocks`
    (streaming) instead.

    Attributes
    ----------
    shape, dtype, ndim, size, nbytes
        As NumPy's (``nbytes``: the uncompressed size).
    chunk_rows : int
        Rows per stored chunk.
    path : Path
        The array's folder.
    """

    def __init__(self, z: Any, path: Path) -> None:
        self._z = z
        self.path = Path(path)
        self.shape: tuple[int, ...] = tuple(int(s) for s in z.shape)
        self.dtype = np.dtype(z.dtype)
        self.chunk_rows = int(z.chunks[0])

    @property
    def ndim(self) -> int:
        return len(self.shape)

    @property
    def size(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64))

    @property
    def nbytes(self) -> int:
        return self.size * self.dtype.itemsize

    @property
    def stored_bytes(self) -> int:
        """Bytes on disk (compressed chunks and metadata)."""
        return sum(f.stat().st_size for f in self.path.rglob("*") if f.is_file())

    def __len__(self) -> int:
        return self.shape[0]

    def __repr__(self) -> str:
        return f"LazyArray(shape={self.shape}, dtype={self.dtype}, chunk_rows={self.chunk_rows}, path={self.path.name!r})"

    def __getitem__(self, key: Any) -> np.ndarray:
        rest: tuple[Any, ...] = ()
        if isinstance(key, tuple):
            key, rest = (key[0], key[1:]) if key else (slice(None), ())
        if isinstance(key, (list, np.ndarray)):
            out = self.take(np.asarray(key))
            return out[(slice(None), *rest)] if rest else out
        return np.asarray(self._z[(key, *rest)])

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        out = self.take(np.arange(len(self)))
        return out if dtype is None else out.astype(dtype, copy=False)

    def take(self, rows: Sequence[int] | np.ndarray, dtype: Any = None) -> np.ndarray:
        """Rows ``rows`` (in that order) as one array, read one chunk at a time.

        Written by hand rather than with Zarr's orthogonal indexing so that memory holds the output
        and one decompressed chunk, never all the chunks touched at once.
        """
        r = np.asarray(rows)
        if r.dtype == bool:
            if r.shape != (len(self),):
                raise DataError(f"a boolean row mask needs {len(self)} entries, got shape {r.shape}.")
            r = np.flatnonzero(r)
        if r.size and (r.dtype.kind not in "iu" or r.ndim != 1):
            raise ParameterError(f"rows must be a 1-D array of integer row numbers; got {r.dtype} of shape {r.shape}.")
        r = r.astype(np.int64)
        if r.size and (r.min() < -len(self) or r.max() >= len(self)):
            raise ParameterError(f"row numbers must lie in [0, {len(self)}); got {int(r.min())}..{int(r.max())}.")
        r = np.where(r < 0, r + len(self), r)
        out = np.empty((len(r), *self.shape[1:]), dtype=self.dtype if dtype is None else dtype)
        if not r.size:
            return out
        order = np.argsort(r, kind="stable")
        chunk_of = r[order] // self.chunk_rows
        bounds = np.flatnonzero(np.diff(chunk_of)) + 1
        for grp in np.split(np.arange(len(order)), bounds):
            c = int(chunk_of[grp[0]])
            lo = c * self.chunk_rows
            hi = min(lo + self.chunk_rows, len(self))
            block = np.asarray(self._z[lo:hi])
            out[order[grp]] = block[r[order[grp]] - lo]
        return out

    def iter_blocks(self, rows_per_block: int | None = None) -> Iterator[tuple[int, np.ndarray]]:
        """``(start_row, block)`` over the whole array, one chunk (or ``rows_per_block`` rows) at a time."""
        step = int(rows_per_block or self.chunk_rows)
        for a in range(0, len(self), step):
            yield a, np.asarray(self._z[a : min(a + step, len(self))])


def is_lazy(x: Any) -> bool:
    """Whether ``x`` is a :class:`LazyArray` (read from disk on demand)."""
    return isinstance(x, LazyArray)


def n_features_of(x: Any) -> int:
    """Features per observation of an ``(n, ...)`` array-like (product of the trailing axes)."""
    shape = tuple(int(s) for s in getattr(x, "shape", np.shape(x)))
    return int(np.prod(shape[1:], dtype=np.int64)) if len(shape) > 1 else 1


def iter_row_blocks(x: Any, rows_per_block: int = 4096) -> Iterator[tuple[int, np.ndarray]]:
    """``(start_row, block)`` of ``x`` by rows: stored chunks of a :class:`LazyArray`, slices of an array."""
    if isinstance(x, LazyArray):
        yield from x.iter_blocks()
        return
    a = x if isinstance(x, np.ndarray) else np.asarray(x)
    for s in range(0, len(a), rows_per_block):
        yield s, a[s : s + rows_per_block]


def as_matrix(x: Any, rows: Sequence[int] | np.ndarray | None = None, dtype: Any = None) -> np.ndarray:
    """``x`` (or its rows ``rows``) as an ``(n, d)`` array; a :class:`LazyArray` is read chunk by chunk.

    For a lazy array only the chunks holding ``rows`` are read, into one preallocated array (memory:
    the result plus one chunk). In-memory arrays are indexed as usual (a view when possible).
    """
    if isinstance(x, LazyArray):
        a = x.take(np.arange(len(x)) if rows is None else rows, dtype=dtype)
    else:
        a = np.asarray(x) if rows is None else np.asarray(x)[np.asarray(rows)]
        if dtype is not None:
            a = a.astype(dtype, copy=False)
    if a.ndim == 1:
        return a[:, None]
    return a.reshape(len(a), -1) if a.ndim > 2 else a


def reduced_precision_note(*arrays: Any) -> str | None:
    """A note when any of ``arrays`` (ndarray, memory map or :class:`LazyArray`) holds float16 values.

    Statistics computed from float16 activations (``collect_activations(dtype="float16")``) inherit
    their rounding; the analyses record this note in their results so a reader sees it. None for
    float32/float64 inputs.
    """
    if not any(np.dtype(getattr(a, "dtype", np.float64)) == np.float16 for a in arrays):
        return None
    return ("reduced: computed from float16 activations (11 significant bits, relative rounding error <= 2**-11 "
            "per value)")
