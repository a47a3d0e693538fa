"""The input side of :func:`~layerscope.projection.project` for layers too wide for memory.

When the rows to project, ``n x d`` values, exceed ``memory_budget`` bytes, :func:`project` does not
read them into one array. Instead (:func:`streamed_input`):

1. **Staging.** The requested rows are read from the (lazy, memory-mapped or in-memory) layer in
   ascending row order -- a lazy store array one chunk at a time, so each stored chunk is
   decompressed about once -- checked for NaN/inf and written to a temporary float32 (float64 for
   float64 input) file. Later passes read that file by row blocks with plain file reads (no memory
   map, so the pages read are not kept resident).
2. **Neighbours in activation space.** The exact Euclidean nearest neighbours of every row among
   the requested rows, in the full ``d``-dimensional activation space, by blocks: a block of query
   rows against every block of rows, distances ``|q|^2 + |r|^2 - 2 q.r`` in float64, a running
   top-k kept per row (written by hand: scikit-learn's ``NearestNeighbors`` needs all rows in
   memory). These are the same neighbours as the in-memory exact search (up to ties between
   equidistant points), so the t-SNE affinities and ``nh_original`` -- NH in the activation space
   the user asked for -- are those of the in-memory computation.
3. **Reduction** to ``reduce_dim`` dimensions (default 50) by scikit-learn's ``IncrementalPCA``,
   fed block by block (one pass to fit, one to transform). It is used for what needs coordinates:
   the PCA initialisation of t-SNE (openTSNE's ``"pca"``), UMAP's input and the 2-D PCA. The
   result records it (``parameters["reduction"]``) with the explained-variance fraction.

Memory: row blocks are sized so that the blocks, distance tiles and the IncrementalPCA work stay
within ``memory_budget``; what grows with ``n`` alone is the output (``n x reduce_dim`` scores and
``n x k`` neighbours), never ``n x d``. A lazy store array is decompressed one whole chunk at a time
(8 MB by default, see :mod:`layerscope.store`), so the budget must be at least three chunks.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Sequence

import numpy as np

from ..exceptions import DataError, ParameterError
from ..store import n_features_of
from .metrics import check_finite

__all__ = ["StagedRows", "streamed_input", "stage_rows"]

#: default dimension of the streamed reduction (the customary PCA-to-50 before t-SNE)
REDUCE_DIM = 50


@dataclass
class StagedRows:
    """Rows of a layer written to a temporary file, read back by blocks.

    Attributes
    ----------
    path : Path
        The raw file (C order, ``n x d`` of ``dtype``).
    n, d : int
    dtype : numpy dtype
    order : ndarray of shape (n,)
        Position, in the caller's row order, of each staged row (staged rows are in ascending
        dataset-row order).
    """

    path: Path
    n: int
    d: int
    dtype: np.dtype[Any]
    order: np.ndarray

    def block(self, a: int, b: int, out: np.ndarray | None = None, raw: np.ndarray | None = None) -> np.ndarray:
        """Staged rows ``a:b`` as a float64 array (one plain file read).

        ``out`` (float64) and ``raw`` (the staged dtype), each of at least ``b - a`` rows, are
        reused when given: the block routes read many blocks of one size, and fresh 10-30 MB
        arrays each time leave freed heap behind in glibc (see ``bench/store_wide.py``).
        """
        b = min(b, self.n)
        m = b - a
        buf = np.empty((m, self.d), dtype=self.dtype) if raw is None else raw[:m]
        with open(self.path, "rb") as fh:
            fh.seek(a * self.d * self.dtype.itemsize)
            got = fh.readinto(buf.data.cast("B"))
        if got != buf.nbytes:
            raise DataError(f"the staging file {self.path.name} is shorter than expected; was it removed while in use?")
        if out is None:
            return buf.astype(np.float64)
        dst = out[:m]
        np.copyto(dst, buf)
        return dst

    def blocks(self, rows: int) -> Iterator[tuple[int, np.ndarray]]:
        for a in range(0, self.n, rows):
            yield a, self.block(a, a + rows)


def _read_sorted(x: Any, rows: np.ndarray) -> np.ndarray:
    from ..store import LazyArray

    if isinstance(x, LazyArray):
        a = x.take(rows)
    else:
        a = np.asarray(x[rows])
    return a.reshape(len(a), -1)


def stage_rows(x: Any, rows: np.ndarray | None, folder: Path, budget: int) -> StagedRows:
    """Write ``x[rows]`` (all rows if None), flattened, to a raw file in ``folder`` by blocks of at
    most about ``budget / 8`` bytes (plus the stored chunk being decompressed); rows are staged in ascending order (see :class:`StagedRows`)."""
    n_all = len(x)
    r = np.arange(n_all) if rows is None else np.asarray(rows, dtype=np.int64)
    d = n_features_of(x)
    src = np.dtype(getattr(x, "dtype", np.float32))
    dt = np.dtype(np.float64) if src == np.float64 else np.dtype(np.float32)
    order = np.argsort(r, kind="stable")
    sorted_rows = r[order]
    per_block = max(1, (budget // 8) // max(1, d * (src.itemsize + dt.itemsize)))
    path = folder / "rows.bin"
    from ..store import LazyArray

    if isinstance(x, LazyArray):  # one stored chunk at a time, its selected rows written out
        cr = int(x.chunk_rows)
        chunk_of = sorted_rows // cr
        groups = np.split(np.arange(len(sorted_rows)), np.flatnonzero(np.diff(chunk_of)) + 1)
        spans = [(int(chunk_of[g[0]]) * cr, sorted_rows[g]) for g in groups if len(g)]
    else:
        spans = [(-1, sorted_rows[a : a + per_block]) for a in range(0, len(sorted_rows), per_block)]
    with open(path, "wb") as fh:
        for lo, want in spans:
            if lo >= 0:
                chunk = x[lo : min(lo + cr, n_all)]
                blk = chunk[want - lo].reshape(len(want), -1)
                del chunk
            else:
                blk = _read_sorted(x, want)
            if blk.dtype.kind != "f" or blk.dtype != dt:
                blk = blk.astype(dt)
            check_finite(blk, "activations")
            fh.write(np.ascontiguousarray(blk).tobytes())
    return StagedRows(path=path, n=len(r), d=d, dtype=dt, order=order)


def _knn_streamed(st: StagedRows, k: int, rows: int) -> tuple[np.ndarray, np.ndarray]:
    """Exact ``k`` nearest neighbours (Euclidean, self excluded) of every staged row, by blocks of ``rows``.

    Hand-written block search (see the module notes). Returns ``(indices, distances)`` in staged
    order, nearest first; ties broken by the lower staged position.
    """
    n = st.n
    idx_out = np.empty((n, k), dtype=np.int64)
    dist_out = np.empty((n, k), dtype=np.float64)
    rows = min(rows, n)
    q_buf = np.empty((rows, st.d))
    r_buf = np.empty((rows, st.d))
    raw = np.empty((rows, st.d), dtype=st.dtype)
    for a in range(0, n, rows):
        q = st.block(a, a + rows, out=q_buf, raw=raw)
        qn = np.einsum("ij,ij->i", q, q)
        best_d = np.full((len(q), 0), np.inf)
        best_i = np.zeros((len(q), 0), dtype=np.int64)
        for c in range(0, n, rows):
            r = q if c == a else st.block(c, c + rows, out=r_buf, raw=raw)
            rn = qn if c == a else np.einsum("ij,ij->i", r, r)
            d2 = qn[:, None] + rn[None, :] - 2.0 * (q @ r.T)
            np.maximum(d2, 0.0, out=d2)
            if c == a:
                np.fill_diagonal(d2, np.inf)
            cand_d = np.concatenate([best_d, d2], axis=1)
            cand_i = np.concatenate([best_i, np.broadcast_to(np.arange(c, c + len(r)), d2.shape)], axis=1)
            if cand_d.shape[1] > k:
                part = np.argpartition(cand_d, k - 1, axis=1)[:, :k]
                cand_d = np.take_along_axis(cand_d, part, axis=1)
                cand_i = np.take_along_axis(cand_i, part, axis=1)
            best_d, best_i = cand_d, cand_i
            del d2
        srt = np.lexsort((best_i, best_d), axis=1)  # by distance, then position
        idx_out[a : a + len(q)] = np.take_along_axis(best_i, srt, axis=1)
        dist_out[a : a + len(q)] = np.sqrt(np.take_along_axis(best_d, srt, axis=1))
    return idx_out, dist_out


def _ipca(st: StagedRows, m: int, rows: int) -> tuple[np.ndarray, float]:
    """``IncrementalPCA(m)`` fitted and applied block by block; scores in staged order and the
    fraction of the variance the ``m`` components explain."""
    from sklearn.decomposition import IncrementalPCA

    ipca = IncrementalPCA(n_components=m)
    starts = list(range(0, st.n, rows))
    # every partial_fit needs at least m rows: a short last block joins the one before
    if len(starts) > 1 and st.n - starts[-1] < m:
        starts.pop()
    bounds = starts[1:] + [st.n]
    most = max(b - a for a, b in zip(starts, bounds))
    out = np.empty((most, st.d))
    raw = np.empty((most, st.d), dtype=st.dtype)
    for a, b in zip(starts, bounds):
        ipca.partial_fit(st.block(a, b, out=out, raw=raw))
    scores = np.empty((st.n, m), dtype=np.float64)
    for a, b in zip(starts, bounds):
        scores[a:b] = ipca.transform(st.block(a, b, out=out, raw=raw))
    return scores, float(np.sum(ipca.explained_variance_ratio_))


@dataclass(frozen=True)
class StreamedInput:
    """What :func:`streamed_input` hands to :func:`project` (rows in the caller's order)."""

    coordinates: np.ndarray
    knn_indices: np.ndarray | None
    knn_distances: np.ndarray | None
    reduction: dict[str, Any]


def streamed_input(
    x: Any,
    rows: Sequence[int] | np.ndarray | None,
    *,
    memory_budget: int,
    reduce_dim: int,
    n_neighbors: int,
    scratch_dir: str | os.PathLike[str] | None = None,
) -> StreamedInput:
    """Stage, search neighbours and reduce the rows of a layer too wide for ``memory_budget`` (see
    the module notes). ``n_neighbors`` = 0 skips the neighbour search."""
    n = len(x) if rows is None else len(np.asarray(rows))
    d = n_features_of(x)
    m = int(min(reduce_dim, d, n - 1))
    if m < 2:
        raise ParameterError(f"reduce_dim must leave at least 2 dimensions; got reduce_dim={reduce_dim} for {n} x {d}.")
    # Bytes per value of a block, measured with tracemalloc (bench notes in the module docstring):
    # IncrementalPCA holds the float32 read, its float64 copy, the centred copy, the stacked
    # (block + m + 1) x d matrix and its SVD: about 48 bytes per value of (block + m + 1) rows,
    # 56 with a margin. The kNN holds two blocks (float32 read + float64, plus products): about
    # 36 bytes per value of one block, 40 with a margin, plus b x (b + k) tiles of candidates.
    ipca_rows = int(memory_budget // (56 * d)) - m - 1
    k = max(int(n_neighbors), 1)
    # 40 b d + 32 b (b + k) <= budget
    lin = 40.0 * d + 32.0 * k
    knn_rows = int((-lin + np.sqrt(lin * lin + 128.0 * memory_budget)) // 64)
    if ipca_rows < m:
        need = 56 * d * (2 * m + 1)
        raise ParameterError(
            f"memory_budget {memory_budget} bytes is too small to reduce {d} features to {m} dimensions by blocks "
            f"(IncrementalPCA needs blocks of at least {m} rows: about {need} bytes); raise memory_budget or "
            "lower reduce_dim."
        )
    from ..store import LazyArray

    if isinstance(x, LazyArray):
        chunk = int(x.chunk_rows) * d * max(4, x.dtype.itemsize)
        if 3 * chunk > memory_budget:
            raise ParameterError(
                f"memory_budget {memory_budget} bytes is less than 3 x one stored chunk of the layer ({chunk} bytes: "
                f"{x.chunk_rows} rows x {d} features; a chunk is decompressed whole); raise memory_budget to at "
                f"least {3 * chunk} bytes."
            )
    with tempfile.TemporaryDirectory(prefix="layerscope-rows-", dir=scratch_dir) as tmp:
        st = stage_rows(x, None if rows is None else np.asarray(rows), Path(tmp), memory_budget)
        knn_i = knn_d = None
        if n_neighbors > 0:
            si, sd = _knn_streamed(st, int(n_neighbors), max(1, min(knn_rows, n)))
            knn_i, knn_d = si, sd
        scores, explained = _ipca(st, m, max(m, min(ipca_rows, n)))
    # back to the caller's order: staged position s holds caller position order[s]
    inv = np.empty_like(st.order)
    inv[st.order] = np.arange(n)
    coords = scores[inv]
    if knn_i is not None and knn_d is not None:
        knn_i = st.order[knn_i[inv]]
        knn_d = knn_d[inv]
    reduction = {"method": "IncrementalPCA", "components": m, "input_dim": d,
                 "explained_variance_ratio": round(explained, 6), "memory_budget": int(memory_budget),
                 "reason": f"{n} x {d} values exceed memory_budget; rows read by blocks from a staged copy",
                 "knn_space": f"activations ({d} dims, exact block search)" if n_neighbors > 0 else None,
                 "block_rows": {"ipca": int(max(m, min(ipca_rows, n))), "knn": int(max(1, min(knn_rows, n)))}}
    return StreamedInput(coordinates=coords, knn_indices=knn_i, knn_distances=knn_d, reduction=reduction)
