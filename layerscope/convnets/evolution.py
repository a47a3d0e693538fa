"""Feature evolution during training (Zeiler & Fergus 2014, §4, Fig. 4).

For the checkpoints a ``layerscope train`` run saved, the strongest activation of each chosen unit
over a data set is found (one streaming pass per checkpoint, :func:`~.topk.top_activations` with
``k = 1``) and projected back to the input with the deconvnet rule, cropped by the unit's
receptive field. The result is a grid units x epochs; the paper sees low layers settle within a
few epochs and high layers only after 40–50.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from .._progress import ProgressArg
from ..exceptions import ParameterError
from ._result import FolderResult, read_folder, track
from .topk import top_activations

__all__ = ["Evolution", "feature_evolution"]


@dataclass(frozen=True, repr=False)
class Evolution(FolderResult):
    """Projected top activations of ``units`` at each checkpoint.

    An analysis result (:class:`~layerscope.results.AnalysisResult`): :attr:`metrics`
    (``mean_top_value_last_epoch``, ``fraction_same_sample_as_last``), :meth:`figures`
    (``evolution``, ``evolution_patches``), :meth:`save` writes the folder of
    ``layerscope evolution`` (the two PNGs, evolution.npz, result.json), :meth:`load` reads it back.

    Attributes
    ----------
    layer, rule
        Layer and projection rule.
    epochs
        ``(E,)`` checkpoint epochs.
    units
        ``(U,)`` channels.
    projections, patches
        ``(U, E, C, *rf_size)`` projections (model-input space) and input patches (display range).
    values
        ``(U, E)`` the strongest activation at each checkpoint.
    sample_ids
        ``(U, E)`` the sample it came from.
    limit
        Only the first ``limit`` samples were searched (``None``: all).
    model, data
        Description of the model (the run's final one) and data spec.
    """

    analysis = "evolution"
    arrays_file = "evolution.npz"

    layer: str
    rule: str
    epochs: np.ndarray
    units: np.ndarray
    projections: np.ndarray
    patches: np.ndarray
    values: np.ndarray
    sample_ids: np.ndarray
    limit: int | None = None
    model: dict[str, Any] | None = None
    data: str | None = None

    @property
    def parameters(self) -> dict[str, Any]:
        return {"layer": self.layer, "units": self.units.tolist(), "epochs": self.epochs.tolist(), "rule": self.rule,
                "limit": self.limit}

    @property
    def metrics(self) -> dict[str, Any]:
        return {"mean_top_value_last_epoch": float(self.values[:, -1].mean()),
                "fraction_same_sample_as_last": float((self.sample_ids == self.sample_ids[:, -1:]).mean())}

    def figures(self) -> dict[str, Any]:
        from .plots import plot_evolution

        ep, un = self.epochs.tolist(), self.units.tolist()
        return {
            "evolution": plot_evolution(self.projections, ep, un, title=f"{self.layer}: strongest activation per unit, "
                                        f"{self.rule} projection, by epoch"),
            "evolution_patches": plot_evolution(self.patches, ep, un, kind="image", title=f"{self.layer}: input "
                                                "patches of the strongest activations, by epoch"),
        }

    def figure_info(self) -> dict[str, tuple[str, str]]:
        return {
            "evolution": (f"Feature evolution of {self.layer}",
                          f"Rows: units; columns: checkpoints. Each tile is the {self.rule} projection of the unit's "
                          "strongest activation over the data at that epoch (Zeiler & Fergus 2014, Fig. 4)."),
            "evolution_patches": ("Input patches of those activations",
                                  "The receptive-field patches of the same activations."),
        }

    def arrays(self) -> dict[str, np.ndarray | None]:
        return {"epochs": self.epochs, "units": self.units, "projections": self.projections, "patches": self.patches,
                "values": self.values, "sample_ids": self.sample_ids}

    def extra(self) -> dict[str, Any]:
        return {"evolution": self.to_dict()}

    @classmethod
    def load(cls, out_dir: str | os.PathLike[str]) -> "Evolution":
        """Read a folder written by :meth:`save` (or ``layerscope evolution``)."""
        doc, z = read_folder(out_dir, "evolution")
        p = doc["parameters"]
        return cls(layer=p["layer"], rule=p["rule"], epochs=z["epochs"], units=z["units"], projections=z["projections"],
                   patches=z["patches"], values=z["values"], sample_ids=z["sample_ids"], limit=p.get("limit"),
                   model=doc.get("model"), data=doc.get("data"))

    def to_dict(self) -> dict[str, Any]:
        return {
            "layer": self.layer,
            "rule": self.rule,
            "epochs": self.epochs.tolist(),
            "units": self.units.tolist(),
            "values": self.values.round(6).tolist(),
            "sample_ids": self.sample_ids.tolist(),
            "same_sample_as_last": (self.sample_ids == self.sample_ids[:, -1:]).tolist(),
        }


def feature_evolution(
    run_dir: str | os.PathLike[str],
    dataset: Any,
    layer: str,
    *,
    units: Sequence[int] | None = None,
    epochs: Sequence[int] | None = None,
    rule: str = "deconvnet",
    indices: Sequence[int] | np.ndarray | None = None,
    batch_size: int = 256,
    limit: int | None = None,
    progress: ProgressArg = None,
    model_info: dict[str, Any] | None = None,
    data_spec: str | None = None,
) -> Evolution:
    """Project the strongest activation of each unit at every checkpoint of a training run.

    Parameters
    ----------
    run_dir
        A run folder written by ``layerscope train`` (with checkpoints).
    dataset
        Data to search the strongest activations in (the paper: the training set).
    layer
        Dotted layer name.
    units
        Channels (default: the first 8).
    epochs
        Checkpoint epochs to use (default: all saved).
    rule
        Projection rule (``"deconvnet"`` as in the paper, ``"guided"``, ``"gradient"``).
    indices, limit, batch_size
        Rows of ``dataset`` searched (the first ``limit`` of them), samples per forward pass.
    progress
        ``None``, ``True`` (tqdm.auto) or any tqdm-compatible callable (keywords ``total=``, ``desc=``), over the checkpoints.
    model_info, data_spec
        Stored on the result (default: the description of the run's final model and the data
        set's ``name``).

    Returns
    -------
    Evolution
    """
    from ..loading import load_run_model
    from ..results import model_description
    from ..training import list_checkpoints

    saved = [e for e, _ in list_checkpoints(run_dir)]
    if not saved:
        raise ParameterError(f"Run {run_dir} has no checkpoints; train with --checkpoints to save some.")
    if epochs is None:
        use = saved
    else:
        missing = [e for e in epochs if e not in saved]
        if missing:
            raise ParameterError(f"Run {run_dir} has no checkpoints at epochs {missing}; it has {saved}.")
        use = list(epochs)
    tops = []
    for epoch in track(progress, use, len(use), f"layer {layer}: checkpoints (epochs)"):
        model = load_run_model(run_dir, epoch)
        if units is not None:
            u = list(units)
        else:  # the first 8 channels of the layer
            u = list(range(min(8, _n_channels(model, dataset, layer))))
        tops.append(top_activations(model, dataset, layer, units=u, k=1, batch_size=batch_size, indices=indices,
                                    limit=limit, patches=True, rule=rule, model_info={}))
    first = tops[0]
    proj = np.stack([t.projections[:, 0] for t in tops], axis=1)  # type: ignore[index]
    patches = np.stack([t.patches[:, 0] for t in tops], axis=1)  # type: ignore[index]
    return Evolution(
        layer=layer,
        rule=rule,
        epochs=np.asarray(use, dtype=np.int64),
        units=first.units,
        projections=proj,
        patches=patches,
        values=np.stack([t.values[:, 0] for t in tops], axis=1),
        sample_ids=np.stack([t.sample_ids[:, 0] for t in tops], axis=1),
        limit=limit,
        model=model_info if model_info is not None else model_description(load_run_model(run_dir)),
        data=data_spec if data_spec is not None else getattr(dataset, "name", None),
    )


def _n_channels(model: Any, dataset: Any, layer: str) -> int:
    import torch

    from ..capture import capture, model_device, model_state_guard
    from .topk import dataset_inputs

    with model_state_guard(model), torch.no_grad():
        model.eval()
        with capture(model, [layer], stop_early=True) as cap:
            cap.run(dataset_inputs(dataset, [0]).to(model_device(model)))
            return int(cap[layer].shape[1])
