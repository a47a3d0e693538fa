"""The k strongest activations of many units over a dataset, with their input patches.

Zeiler & Fergus (2014, arXiv 1311.2901, Fig. 2) show, for a feature map, its 9 strongest
activations over the data set: the image patch each unit sees (its receptive field) next to the
deconvnet projection of that activation. :func:`top_activations` finds them for many units of
one layer in ONE streaming pass over the data: per batch, each unit's map is reduced to its
maximum over positions (one activation per image and unit, as in the paper), and a running
``(k, units)`` table is merged with :func:`torch.topk`. Memory does not grow with the data set.

Patches are cropped by the unit's true receptive field
(:func:`~layerscope.convnets.receptive_field.receptive_field`) and padded where the field
leaves the image; projections (:mod:`~layerscope.convnets.deconvnet`) are cropped the same way.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, replace
from typing import Any, Iterator, Sequence, cast

import numpy as np
import torch
from torch import nn

from .._progress import ProgressArg
from ..capture import capture, model_device, model_state_guard
from ..seam import iter_batches
from ..exceptions import DataError, InputShapeError, ParameterError
from ._result import FolderResult, read_folder, track
from .deconvnet import RULES, Rule, project_activations
from .receptive_field import ReceptiveField, crop_patch, receptive_field

__all__ = ["TopK", "top_activations", "dataset_inputs", "display_normalization"]


@dataclass(frozen=True, repr=False)
class TopK(FolderResult):
    """The ``k`` strongest activations of each unit of ``layer`` over a data set.

    An analysis result (:class:`~layerscope.results.AnalysisResult`): :attr:`metrics`
    (``mean_top1``, ``n_units``), :meth:`figures` (``{"topk": Figure}``, Z&F Fig. 2), :meth:`save`
    writes the folder of ``layerscope topk`` (topk.png, topk.npz, result.json), :meth:`load`
    reads it back.

    Attributes
    ----------
    layer
        Dotted layer name.
    units
        ``(U,)`` channel indices.
    values
        ``(U, k)`` float32 activation values, strongest first (``-inf`` where the data set had
        fewer than ``k`` samples).
    sample_ids
        ``(U, k)`` int64 dataset rows (``-1`` where missing).
    positions
        ``(U, k, n_spatial)`` int64 position of each maximum in the layer's map (empty last axis
        for dense layers).
    labels
        ``(U, k)`` int64 class labels of those samples.
    receptive_field
        The layer's receptive field (``None`` if not computed).
    patches
        ``(U, k, C, *rf_size)`` float32 input patches in display range, or ``None``.
    projections
        ``(U, k, C, *rf_size)`` float32 projections (``rule``) cropped like the patches, or ``None``.
    rule
        Projection rule used, or ``None``. Projections are seeded with 1 at the activation (see
        :mod:`~layerscope.convnets.deconvnet`); ``values`` holds the activations.
    limit, max_units
        Only the first ``limit`` samples were searched (``None``: all); units shown in the figure.
    model, data
        Description of the model (:func:`~layerscope.results.model_description`) and data spec.
    """

    analysis = "topk"
    arrays_file = "topk.npz"

    layer: str
    units: np.ndarray
    values: np.ndarray
    sample_ids: np.ndarray
    positions: np.ndarray
    labels: np.ndarray
    receptive_field: ReceptiveField | None = None
    patches: np.ndarray | None = None
    projections: np.ndarray | None = None
    rule: str | None = None
    meta: dict[str, Any] = field(default_factory=dict)
    limit: int | None = None
    max_units: int = 16
    model: dict[str, Any] | None = None
    data: str | None = None

    @property
    def k(self) -> int:
        return int(self.values.shape[1])

    @property
    def parameters(self) -> dict[str, Any]:
        return {"layer": self.layer, "units": self.units.tolist(), "k": self.k, "rule": self.rule,
                "limit": self.limit, "max_units": self.max_units}

    @property
    def metrics(self) -> dict[str, Any]:
        return {"mean_top1": float(self.values[:, 0].mean()), "n_units": int(len(self.units))}

    def figures(self) -> dict[str, Any]:
        from .plots import plot_topk

        return {"topk": plot_topk(self, max_units=self.max_units)}

    def figure_info(self) -> dict[str, tuple[str, str]]:
        return {"topk": (f"Top-{self.k} activations of {self.layer}",
                         "Per unit: projections of its strongest activations (left) and the input patches cropped "
                         "by the unit's receptive field (right), as in Zeiler & Fergus 2014, Fig. 2.")}

    def arrays(self) -> dict[str, np.ndarray | None]:
        return {"units": self.units, "values": self.values, "sample_ids": self.sample_ids,
                "positions": self.positions, "labels": self.labels, "patches": self.patches,
                "projections": self.projections}

    def extra(self) -> dict[str, Any]:
        return {"topk": self.to_dict()}

    def to_dict(self) -> dict[str, Any]:
        return {
            "layer": self.layer,
            "k": self.k,
            "units": self.units.tolist(),
            "rule": self.rule,
            "receptive_field": None if self.receptive_field is None else self.receptive_field.to_dict(),
            "top": [
                {
                    "unit": int(u),
                    "values": [float(v) for v in self.values[i]],
                    "sample_ids": self.sample_ids[i].tolist(),
                    "positions": self.positions[i].tolist(),
                    "labels": self.labels[i].tolist(),
                }
                for i, u in enumerate(self.units)
            ],
        }

    @classmethod
    def load(cls, out_dir: str | os.PathLike[str]) -> "TopK":
        """Read a folder written by :meth:`save` (or ``layerscope topk``)."""
        doc, z = read_folder(out_dir, "topk")
        top, params = doc["topk"], doc.get("parameters") or {}
        rf = top.get("receptive_field")
        return cls(
            layer=top["layer"], units=z["units"], values=z["values"], sample_ids=z["sample_ids"],
            positions=z["positions"], labels=z["labels"],
            receptive_field=None if rf is None else ReceptiveField(
                rf["layer"], tuple(rf["jump"]), tuple(rf["size"]), tuple(rf["start"]), tuple(rf["input_size"]),
                bool(rf["is_global"]),
            ),
            patches=z.get("patches"), projections=z.get("projections"), rule=top.get("rule"),
            limit=params.get("limit"), max_units=int(params.get("max_units", 16)),
            model=doc.get("model"), data=doc.get("data"),
        )


def display_normalization(dataset: Any = None, model: Any = None) -> Any:
    """The :class:`~layerscope.data.Normalization` of the data (or model), or ``None``."""
    for obj in (dataset, model):
        norm = getattr(obj, "normalization", None)
        if norm is not None:
            return norm
    return None


def dataset_inputs(dataset: Any, ids: Sequence[int] | np.ndarray) -> torch.Tensor:
    """The input tensor of dataset rows ``ids`` (read through :func:`layerscope.seam.gather`)."""
    from ..seam import gather, single_input

    return single_input(gather(dataset, ids), "Top-k patches and projections")


def _labels(dataset: Any, ids: np.ndarray) -> np.ndarray:
    """Labels of dataset rows ``ids`` (any shape; ``-1`` entries and label-free data give ``-1``)."""
    from ..seam import gather

    flat = ids.reshape(-1)
    out = np.full(flat.shape, -1, dtype=np.int64)
    ok = flat >= 0
    if ok.any():
        labels = gather(dataset, flat[ok]).labels
        if labels is not None:
            out[ok] = labels.numpy()
    return out.reshape(ids.shape)


def top_activations(
    model: nn.Module,
    dataset: Any,
    layer: str,
    *,
    units: Sequence[int] | None = None,
    k: int = 9,
    batch_size: int = 256,
    indices: Sequence[int] | np.ndarray | None = None,
    patches: bool = True,
    rule: str | None = "deconvnet",
    fill: float = 0.0,
    limit: int | None = None,
    max_units: int = 16,
    device: torch.device | str | None = None,
    progress: ProgressArg = None,
    model_info: dict[str, Any] | None = None,
    data_spec: str | None = None,
    activations: Any = None,
    sample_ids: Sequence[int] | np.ndarray | None = None,
) -> TopK:
    """The ``k`` strongest activations of many units of ``layer`` in one pass (Z&F 2014, Fig. 2).

    Parameters
    ----------
    model
        Any ``nn.Module``; run in ``eval()`` mode and left unchanged.
    dataset
        Map-style dataset of ``(x, y)`` items (layerscope datasets take a fast path).
    layer
        Dotted layer name; its output is ``(N, C, *spatial)`` or ``(N, C)``.
    units
        Channels to rank (default: all channels of the layer).
    k
        Activations kept per unit; each from a different sample (the unit's maximum over
        positions in that sample).
    batch_size, indices
        Batching and an optional subset of dataset rows.
    limit
        Use only the first ``limit`` rows (of ``indices``, or of the data set).
    patches
        Also crop each sample's input by the unit's receptive field (display range, padded with
        ``fill`` outside the image).
    rule
        Also project each activation back to the input with this rule (``"gradient"``,
        ``"deconvnet"``, ``"guided"``) and crop it like the patch; ``None``: no projections.
        Each projection is seeded with 1 at the activation (the values are in ``values``).
    max_units
        Units shown in the figure.
    progress
        ``None``, ``True`` (tqdm.auto) or any tqdm-compatible callable, called as
        ``progress(iterable, total=n, desc=...)``.
    model_info, data_spec
        Stored on the result (default :func:`~layerscope.results.model_description` of ``model``
        and the data set's ``name``).
    activations
        ``layer``'s outputs captured before, ``(N, C, *spatial)``: an array, a memory-mapped
        ``.npy`` or a lazy store array (:class:`layerscope.store.LazyArray`, read one chunk at a
        time). The running maxima are then updated from these rows instead of running the model
        (which is still used for patches and projections). ``limit`` keeps the first rows.
    sample_ids
        With ``activations``: the dataset row of each of its rows (``Activations.sample_ids``;
        default ``indices``, or ``0..N-1``).

    Returns
    -------
    TopK
    """
    if k < 1:
        raise ParameterError(f"k must be >= 1; got {k}.")
    if batch_size < 1:
        raise ParameterError(f"batch_size must be >= 1; got {batch_size}.")
    if rule is not None and rule not in RULES:
        raise ParameterError(f"rule must be one of {', '.join(RULES)} or None; got {rule!r}.")
    if limit is not None:
        if limit < 1:
            raise ParameterError(f"limit must be >= 1 (samples to search); got {limit}.")
        indices = (np.arange(len(dataset)) if indices is None else np.asarray(indices))[: int(limit)]
    n_total = len(dataset) if indices is None else len(indices)
    if activations is not None:
        n_total = len(activations) if limit is None else min(int(limit), len(activations))
        ids_all = np.asarray(sample_ids if sample_ids is not None else (indices if indices is not None else np.arange(len(activations))))
        if ids_all.ndim != 1 or len(ids_all) < n_total:
            raise DataError(
                f"sample_ids must give the dataset row of each of the {n_total} activation rows; got shape {ids_all.shape}."
            )
    if n_total == 0:
        raise DataError("The dataset is empty: there are no activations to rank.")
    dev = model_device(model, device)
    rf = None
    if patches or rule is not None:  # refuse before the data pass if the field cannot be computed
        x0 = dataset_inputs(dataset, [0])
        rf = receptive_field(model, layer, tuple(x0.shape[1:]))
        if rule is not None:  # ... or if the model cannot take the rule (functional ReLU)
            project_activations(model, x0, layer, 0, rule=cast(Rule, rule), device=device)  # checked against RULES above
    best_v: torch.Tensor | None = None
    best_id = best_pos = None
    unit_idx: torch.Tensor | None = None
    spatial: tuple[int, ...] = ()
    n_batches = (n_total + batch_size - 1) // batch_size
    def captured() -> Iterator[tuple[np.ndarray, torch.Tensor]]:
        with model_state_guard(model), torch.no_grad():
            model.eval()
            with capture(model, [layer], stop_early=True) as cap:
                batches = iter_batches(dataset, batch_size, indices=indices, model=model, device=device)
                for batch in track(progress, batches, n_batches, f"layer {layer}: top-{k}"):
                    cap.run(batch)
                    if layer not in cap.activations:
                        raise InputShapeError(f"Layer {layer!r} did not run in the forward pass; pick a layer forward() uses.")
                    yield np.asarray(batch.ids), cap.activations.pop(layer)[: batch.n]  # rows past n pad a static batch

    def stored() -> Iterator[tuple[np.ndarray, torch.Tensor]]:
        from ..store import iter_row_blocks

        blocks = iter_row_blocks(activations, batch_size)
        n_blk = (n_total + batch_size - 1) // batch_size
        for start, block in track(progress, blocks, n_blk, f"layer {layer}: top-{k} (stored)"):
            if start >= n_total:
                break
            block = block[: n_total - start]
            yield ids_all[start : start + len(block)], torch.from_numpy(np.ascontiguousarray(block))

    with torch.no_grad():
        for ids, a in (stored() if activations is not None else captured()):
                if a.ndim < 2:
                    raise InputShapeError(f"Layer {layer!r} gives shape {tuple(a.shape)}; expected (N, C, ...).")
                if unit_idx is None:
                    n_ch = a.shape[1]
                    u = np.arange(n_ch) if units is None else np.asarray(list(units), dtype=np.int64)
                    if u.size == 0 or (u < 0).any() or (u >= n_ch).any():
                        raise ParameterError(
                            f"units must be channels in [0, {n_ch - 1}] of {layer!r}; got {u.tolist()}."
                        )
                    unit_idx = torch.as_tensor(u, device=a.device)
                    spatial = tuple(a.shape[2:])
                    n_u = len(u)
                    best_v = torch.full((0, n_u), float("-inf"), device=a.device)
                    best_id = torch.full((0, n_u), -1, dtype=torch.long, device=a.device)
                    best_pos = torch.zeros((0, n_u), dtype=torch.long, device=a.device)
                assert best_v is not None and best_id is not None and best_pos is not None  # set with unit_idx
                a = a[:, unit_idx].float()
                flat = a.flatten(2) if a.ndim > 2 else a.unsqueeze(2)
                v, p = flat.max(dim=2)  # (B, U)
                idt = torch.as_tensor(ids, device=a.device).unsqueeze(1).expand_as(v)
                cat_v = torch.cat([best_v, v])
                cat_id = torch.cat([best_id, idt])
                cat_p = torch.cat([best_pos, p])
                kk = min(k, cat_v.shape[0])
                # a stable sort, not topk: among equal values the row seen first wins, so the result
                # does not depend on how the rows are cut into batches (model pass or stored chunks)
                top_v, top_i = (t[:kk] for t in torch.sort(cat_v, dim=0, descending=True, stable=True))
                best_v, best_id, best_pos = top_v, cat_id.gather(0, top_i), cat_p.gather(0, top_i)
    assert best_v is not None and best_id is not None and best_pos is not None and unit_idx is not None
    n_u = best_v.shape[1]
    values = np.full((n_u, k), -np.inf, dtype=np.float32)
    sids = np.full((n_u, k), -1, dtype=np.int64)
    flatpos = np.zeros((n_u, k), dtype=np.int64)
    kk = best_v.shape[0]
    values[:, :kk] = best_v.T.cpu().numpy()
    sids[:, :kk] = best_id.T.cpu().numpy()
    flatpos[:, :kk] = best_pos.T.cpu().numpy()
    if spatial:
        positions = np.stack(np.unravel_index(flatpos, spatial), axis=-1).astype(np.int64)
    else:
        positions = np.zeros((n_u, k, 0), dtype=np.int64)
    units_np = unit_idx.cpu().numpy()
    from ..results import model_description

    result = TopK(layer, units_np, values, sids, positions, _labels(dataset, sids), limit=limit, max_units=max_units,
                  model=model_info if model_info is not None else model_description(model),
                  data=data_spec if data_spec is not None else getattr(dataset, "name", None))
    if patches or rule is not None:
        result = add_patches(model, dataset, result, patches=patches, rule=rule, fill=fill, device=device, rf=rf)
    return result


def add_patches(
    model: nn.Module,
    dataset: Any,
    top: TopK,
    *,
    patches: bool = True,
    rule: str | None = "deconvnet",
    fill: float = 0.0,
    batch_size: int = 128,
    device: torch.device | str | None = None,
    rf: ReceptiveField | None = None,
) -> TopK:
    """Return ``top`` with receptive-field patches and (optionally) cropped projections added."""
    x0 = dataset_inputs(dataset, [0])
    if rf is None:
        rf = receptive_field(model, top.layer, tuple(x0.shape[1:]))
    norm = display_normalization(dataset, model)
    n_u, k = top.values.shape
    valid = top.sample_ids >= 0
    pairs = np.argwhere(valid)
    size = tuple(hi - lo for lo, hi in rf.box(None if rf.is_global else (0,) * len(rf.jump)))
    c = x0.shape[1]
    patch_arr = np.full((n_u, k, c, *size), fill, dtype=np.float32) if patches else None
    proj_arr = np.zeros((n_u, k, c, *size), dtype=np.float32) if rule is not None else None
    for start in range(0, len(pairs), batch_size):
        chunk = pairs[start : start + batch_size]
        ids = top.sample_ids[chunk[:, 0], chunk[:, 1]]
        x = dataset_inputs(dataset, ids)
        pos = top.positions[chunk[:, 0], chunk[:, 1]]
        disp = norm.denormalize(x) if norm is not None else x.numpy()
        maps = None
        if rule is not None:
            maps = project_activations(
                model, x, top.layer, top.units[chunk[:, 0]], None if pos.shape[1] == 0 else pos, rule=cast(Rule, rule), device=device
            ).maps  # project_activations checks the rule (ParameterError)
        for i, (ui, ki) in enumerate(chunk):
            box = rf.box(None if pos.shape[1] == 0 else pos[i])
            if patch_arr is not None:
                patch_arr[ui, ki] = crop_patch(disp[i], box, fill)
            if proj_arr is not None and maps is not None:
                proj_arr[ui, ki] = crop_patch(maps[i], box, 0.0)
    return replace(top, receptive_field=rf, patches=patch_arr, projections=proj_arr, rule=rule, meta=dict(top.meta))
