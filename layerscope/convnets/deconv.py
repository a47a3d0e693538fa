"""Single activations projected to the input with several rules, over a data set (``layerscope deconv``).

:func:`deconv_projections` picks, for each unit, a dataset row (the one with the unit's strongest
activation, or rows given by hand), projects that activation with each rule of
:mod:`~layerscope.convnets.deconvnet` (seeded with 1; see there) and returns a
:class:`DeconvProjections` result.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np
import torch
from torch import nn

from .._progress import ProgressArg
from ..exceptions import ParameterError
from ._result import FolderResult, read_folder
from .deconvnet import RULES, ActivationProjections, project_activations
from .topk import dataset_inputs, display_normalization, top_activations

__all__ = ["DeconvProjections", "deconv_projections"]


@dataclass(frozen=True, repr=False)
class DeconvProjections(FolderResult):
    """Single activations projected to the input with several rules (``layerscope deconv``).

    An analysis result (:class:`~layerscope.results.AnalysisResult`): :attr:`metrics`
    (``cosine_<ruleA>_<ruleB>``: mean cosine similarity of the two rules' maps), :meth:`figures`
    (``{"projections": Figure}``), :meth:`save` writes projections.png, deconv.npz and
    result.json, :meth:`load` reads them back.

    Attributes
    ----------
    layer
        Layer whose activations were projected.
    maps
        ``{rule: (B, C, *spatial)}`` projections (seeded with 1; see the module's docstring).
    units, sample_ids
        ``(B,)`` channel and dataset row of each projected activation.
    positions
        ``(B, n_spatial)`` position in the layer's map.
    values
        ``(B,)`` the activations' values.
    inputs
        ``(B, C, *spatial)`` the inputs in display range.
    limit
        The strongest activations were searched among the first ``limit`` samples (``None``: all,
        or rows given by hand).
    model, data
        Description of the model and data spec.
    """

    analysis = "deconv"
    arrays_file = "deconv.npz"

    layer: str
    maps: dict[str, np.ndarray]
    units: np.ndarray
    sample_ids: np.ndarray
    positions: np.ndarray
    values: np.ndarray
    inputs: np.ndarray
    limit: int | None = None
    model: dict[str, Any] | None = None
    data: str | None = None
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def rules(self) -> list[str]:
        return list(self.maps)

    @property
    def parameters(self) -> dict[str, Any]:
        return {"layer": self.layer, "units": self.units.tolist(), "rules": self.rules, "limit": self.limit,
                "seed": 1.0}

    @property
    def metrics(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        names, n = self.rules, len(self.sample_ids)
        for i in range(len(names)):
            for j in range(i + 1, len(names)):
                a = self.maps[names[i]].reshape(n, -1).astype(np.float64)
                b = self.maps[names[j]].reshape(n, -1).astype(np.float64)
                cos = (a * b).sum(1) / np.maximum(np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1), 1e-12)
                out[f"cosine_{names[i]}_{names[j]}"] = float(cos.mean())
        return out

    def figures(self) -> dict[str, Any]:
        from .plots import plot_projections

        labels = [f"unit {int(u)}, sample {int(i)}" for u, i in zip(self.units, self.sample_ids)]
        return {"projections": plot_projections(self.inputs, self.maps, title=f"{self.layer}: one activation projected "
                                                "to the input", row_labels=labels)}

    def figure_info(self) -> dict[str, tuple[str, str]]:
        return {"projections": (f"Projections of single {self.layer} activations",
                                "Each row: the input and the projection of one activation (all others zeroed) with "
                                "each rule; grey = 0. Deconvnet = Zeiler & Fergus 2014.")}

    def arrays(self) -> dict[str, np.ndarray | None]:
        return {"inputs": self.inputs, "sample_ids": self.sample_ids, "units": self.units,
                **{f"map_{k}": v for k, v in self.maps.items()}}

    def extra(self) -> dict[str, Any]:
        return {"sample_ids": self.sample_ids.tolist(), "units": self.units.tolist(),
                "positions": self.positions.tolist(), "values": self.values.tolist()}

    @classmethod
    def load(cls, out_dir: str | os.PathLike[str]) -> "DeconvProjections":
        """Read a folder written by :meth:`save` (or ``layerscope deconv``)."""
        doc, z = read_folder(out_dir, "deconv")
        params = doc.get("parameters") or {}
        n = len(doc["sample_ids"])
        return cls(
            layer=params["layer"], maps={r: z[f"map_{r}"] for r in params["rules"]}, units=z["units"],
            sample_ids=z["sample_ids"], positions=np.asarray(doc["positions"], dtype=np.int64).reshape(n, -1),
            values=np.asarray(doc["values"], dtype=np.float32), inputs=z["inputs"], limit=params.get("limit"),
            model=doc.get("model"), data=doc.get("data"),
        )


def deconv_projections(
    model: nn.Module,
    dataset: Any,
    layer: str,
    *,
    units: Sequence[int] | None = None,
    rules: Sequence[str] = RULES,
    indices: Sequence[int] | np.ndarray | None = None,
    limit: int | None = None,
    batch_size: int = 256,
    device: torch.device | str | None = None,
    progress: ProgressArg = None,
    model_info: dict[str, Any] | None = None,
    data_spec: str | None = None,
) -> DeconvProjections:
    """Project single activations of ``layer`` to the input with each rule (``layerscope deconv``).

    Parameters
    ----------
    model
        Any ``nn.Module``; left unchanged.
    dataset
        Map-style dataset of ``(x, y)`` items.
    layer
        Dotted layer name.
    units
        Channels (default: the first 8 of the layer, or one per row of ``indices``, at most 8).
    rules
        Rules to compare (:data:`RULES`).
    indices
        Dataset rows to project from, one per unit (repeated cyclically when shorter; positions:
        each unit's maximum in that row). Default: for each unit, the sample with its strongest
        activation (:func:`~.topk.top_activations` with ``k=1``) among the first ``limit``
        samples.
    progress
        ``None``, ``True`` (tqdm.auto) or any tqdm-compatible callable (keywords ``total=``, ``desc=``) for the search pass.
    model_info, data_spec
        Stored on the result (default: the model's description and the data set's ``name``).

    Returns
    -------
    DeconvProjections
    """
    from ..results import model_description

    rule_list = list(rules)
    if not rule_list:
        raise ParameterError(f"rules must name at least one of {', '.join(RULES)}.")
    for r in rule_list:
        if r not in RULES:
            raise ParameterError(f"rules must be among {', '.join(RULES)}; got {r!r}.")
    unit_list = None if units is None else [int(u) for u in units]
    positions: np.ndarray | None
    if indices is not None:
        ids = np.asarray(indices, dtype=np.int64).reshape(-1)
        if ids.size == 0:
            raise ParameterError("indices is empty: give at least one dataset row.")
        if (ids < 0).any() or (ids >= len(dataset)).any():
            raise ParameterError(f"indices must be rows in [0, {len(dataset) - 1}]; got {ids.tolist()}.")
        if unit_list is None:
            unit_list = list(range(min(8, len(ids))))
        ids = np.resize(ids, len(unit_list))
        positions = None
    else:
        top = top_activations(model, dataset, layer, units=unit_list, k=1, batch_size=batch_size, limit=limit,
                              patches=False, rule=None, device=device, progress=progress, model_info={})
        keep = len(top.units) if unit_list is not None else min(8, len(top.units))
        unit_list = top.units[:keep].tolist()
        ids, top_pos = top.sample_ids[:keep, 0], top.positions[:keep, 0]
        positions = None if top_pos.shape[-1] == 0 else top_pos
    x = dataset_inputs(dataset, ids)
    maps: dict[str, np.ndarray] = {}
    last: ActivationProjections | None = None
    for r in rule_list:
        last = project_activations(model, x, layer, unit_list, positions, rule=r, device=device)  # type: ignore[arg-type]
        maps[r] = last.maps
    assert last is not None  # rule_list is not empty
    norm = display_normalization(dataset, model)
    disp = norm.denormalize(x) if norm is not None else x.float().numpy()
    return DeconvProjections(
        layer=layer, maps=maps, units=np.asarray(unit_list, dtype=np.int64), sample_ids=np.asarray(ids, dtype=np.int64),
        positions=last.positions, values=last.values, inputs=np.asarray(disp), limit=limit if indices is None else None,
        model=model_info if model_info is not None else model_description(model),
        data=data_spec if data_spec is not None else getattr(dataset, "name", None),
    )
