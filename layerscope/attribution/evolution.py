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

from .._progress import Tracker, no_progress
from ..exceptions import ParameterError
from .topk import top_activations

__all__ = ["Evolution", "feature_evolution"]


@dataclass(frozen=True)
class Evolution:
    """Projected top activations of ``units`` at each checkpoint.

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
    """

    layer: str
    rule: str
    epochs: np.ndarray
    units: np.ndarray
    projections: np.ndarray
    patches: np.ndarray
    values: np.ndarray
    sample_ids: np.ndarray

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
    progress: Tracker | None = None,
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

    Returns
    -------
    Evolution
    """
    from ..loading import load_run_model
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
    track = progress or no_progress
    tops = []
    for epoch in track(use, len(use), "checkpoints"):
        model = load_run_model(run_dir, epoch)
        if units is not None:
            u = list(units)
        else:  # the first 8 channels of the layer
            u = list(range(min(8, _n_channels(model, dataset, layer))))
        tops.append(top_activations(model, dataset, layer, units=u, k=1, batch_size=batch_size, indices=indices,
                                    patches=True, rule=rule))
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
