"""Occlusion sensitivity (Zeiler & Fergus 2014, arXiv 1311.2901, §4.2 and Fig. 7).

A grey square is slid over the image; for each position of the square the model is run on the
occluded image and three maps are recorded:

* (b) the total activation of one feature map of a chosen layer (default: the feature map that
  is strongest for the unoccluded image),
* (d) the probability of the true class,
* (e) the most probable label.

The grey square is the data set's mean in the model's (normalised) input space, per channel, or a
given value. Window size and stride are parameters (the paper does not state them).

Window positions: along each spatial axis, window ``i`` covers ``[i*stride - pad, i*stride - pad +
size)`` clipped to the image, for ``i = 0 .. ceil((n + 2*pad_total - size) / stride)``. With
``anchor="valid"`` there is no padding: exactly the windows of Captum's ``Occlusion`` (the last
one clipped at the border). With ``anchor="centred"`` (default) the windows are centred on every
``stride``-th pixel (padding ``size - 1`` in total, ``(size - 1) // 2`` before), so a stride of 1
gives a map as large as the image.

All positions of a batch are built at once (a boolean mask per position, ``torch.where``) and run
as one forward pass; :attr:`Occlusion.pixel_attribution` turns the maps into Captum's per-pixel
attribution (mean over windows covering a pixel of ``f(x) - f(occluded)``).
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Any, Literal, Sequence

import numpy as np
import torch
from torch import nn

from .._progress import Tracker, no_progress
from ..capture import capture, first_tensor, model_device, model_state_guard, run_model
from ..exceptions import InputShapeError, ParameterError

__all__ = ["Occlusion", "occlusion", "window_grid", "dataset_mean"]

Anchor = Literal["centred", "valid"]


def window_grid(n: int, size: int, stride: int, anchor: Anchor = "centred") -> np.ndarray:
    """``(P, 2)`` array of ``[lo, hi)`` window bounds along one axis of length ``n``, clipped."""
    if size < 1 or stride < 1:
        raise ParameterError(f"size and stride must be >= 1; got size={size}, stride={stride}.")
    if size > n:
        raise ParameterError(f"The occluding square ({size}) is larger than the input ({n}); use a smaller size.")
    if anchor == "valid":
        pad_before, span = 0, n - size
    elif anchor == "centred":
        pad_before, span = (size - 1) // 2, n - 1
    else:
        raise ParameterError(f"anchor must be 'centred' or 'valid'; got {anchor!r}.")
    count = -(-span // stride) + 1
    lo = np.arange(count) * stride - pad_before
    return np.stack([np.clip(lo, 0, n), np.clip(lo + size, 0, n)], axis=1)


def dataset_mean(dataset: Any) -> torch.Tensor:
    """Per-channel mean of the data set's inputs ``(C,)`` in the model's (normalised) space."""
    x = getattr(dataset, "x", None)
    if x is None:
        tensors = getattr(dataset, "tensors", None)
        if tensors is None:
            raise ParameterError("Cannot compute the data set's mean; pass an explicit occlusion value.")
        x = tensors[0]
    return x.float().transpose(0, 1).reshape(x.shape[1], -1).mean(dim=1)


@dataclass(frozen=True)
class Occlusion:
    """Occlusion maps of one image (Z&F 2014, Fig. 7).

    Attributes
    ----------
    probability
        ``(P_h, P_w)`` probability of ``target`` with the square at each position (d).
    label
        ``(P_h, P_w)`` int64 most probable class with the square at each position (e).
    activation
        ``(P_h, P_w)`` total activation of ``unit`` of ``layer`` (b), or ``None``.
    target, base_probability, base_label
        The class whose probability is mapped (default the true class), its probability without
        occlusion, and the unoccluded prediction.
    layer, unit, base_activation
        Feature map of (b) and its total activation without occlusion.
    windows
        ``[rows, cols]``: ``(P_h, 2)`` and ``(P_w, 2)`` window bounds ``[lo, hi)`` in pixels.
    size, stride, anchor, value
        The square, its stride and anchoring, and the grey value per channel.
    """

    probability: np.ndarray
    label: np.ndarray
    activation: np.ndarray | None
    target: int
    base_probability: float
    base_label: int
    layer: str | None
    unit: int | None
    base_activation: float | None
    windows: tuple[np.ndarray, ...]
    size: int
    stride: int
    anchor: str
    value: tuple[float, ...]

    def pixel_attribution(self, which: Literal["probability", "activation"] = "probability") -> np.ndarray:
        """Per-pixel attribution ``(H, W)`` as Captum's ``Occlusion`` computes it.

        For each pixel: the mean, over the windows covering it, of ``base - occluded``.
        Pixels no window covers get 0.
        """
        maps = self.probability if which == "probability" else self.activation
        if maps is None:
            raise ParameterError("This occlusion result has no activation map (no layer was given).")
        base = self.base_probability if which == "probability" else self.base_activation
        diff = float(base) - maps.astype(np.float64)  # type: ignore[arg-type]
        rows, cols = self.windows
        h, w = int(rows[:, 1].max()), int(cols[:, 1].max())
        r_ind = np.zeros((len(rows), h))
        c_ind = np.zeros((len(cols), w))
        for i, (lo, hi) in enumerate(rows):
            r_ind[i, lo:hi] = 1
        for i, (lo, hi) in enumerate(cols):
            c_ind[i, lo:hi] = 1
        total = r_ind.T @ diff @ c_ind
        count = r_ind.sum(0)[:, None] * c_ind.sum(0)[None, :]
        return np.where(count > 0, total / np.maximum(count, 1), 0.0).astype(np.float32)

    def to_dict(self) -> dict[str, Any]:
        return {
            "target": self.target,
            "base_probability": self.base_probability,
            "base_label": self.base_label,
            "layer": self.layer,
            "unit": self.unit,
            "base_activation": self.base_activation,
            "min_probability": float(self.probability.min()),
            "size": self.size,
            "stride": self.stride,
            "anchor": self.anchor,
            "value": list(self.value),
            "map_shape": list(self.probability.shape),
        }


def occlusion(
    model: nn.Module,
    x: torch.Tensor,
    *,
    target: int | None = None,
    size: int = 8,
    stride: int = 2,
    value: float | Sequence[float] | torch.Tensor = 0.0,
    anchor: Anchor = "centred",
    layer: str | None = None,
    unit: int | None = None,
    batch_size: int = 256,
    device: torch.device | str | None = None,
    progress: Tracker | None = None,
) -> Occlusion:
    """Slide a grey square over ``x`` and map the model's response (Z&F 2014, §4.2, Fig. 7).

    Parameters
    ----------
    model
        A classifier returning logits ``(N, classes)``; run in ``eval()``, left unchanged.
    x
        ``(C, H, W)`` (or ``(1, C, H, W)``) input in the model's normalised space.
    target
        Class whose probability is mapped (d); default: the model's prediction on ``x``. Pass
        the true label to get the paper's map.
    size, stride, anchor
        Square side and step in pixels; ``anchor`` as in :func:`window_grid`.
    value
        Grey value: a scalar or one value per channel (use :func:`dataset_mean` for the data set's
        mean in normalised space).
    layer, unit
        Feature map for (b); ``unit`` defaults to the channel with the largest total activation on
        the unoccluded image. ``layer=None`` skips (b).
    batch_size
        Occluded images per forward pass.

    Returns
    -------
    Occlusion
    """
    if x.ndim == 4:
        if x.shape[0] != 1:
            raise InputShapeError(f"occlusion takes one image; got a batch of {x.shape[0]}.")
        x = x[0]
    if x.ndim != 3:
        raise InputShapeError(f"occlusion needs an image of shape (C, H, W); got {tuple(x.shape)}.")
    if batch_size < 1:
        raise ParameterError(f"batch_size must be >= 1; got {batch_size}.")
    c, h, w = x.shape
    rows = window_grid(h, size, stride, anchor)
    cols = window_grid(w, size, stride, anchor)
    val = torch.as_tensor(value, dtype=torch.float32).flatten()
    if val.numel() not in (1, c):
        raise ParameterError(f"value must be a scalar or {c} values (one per channel); got {val.numel()}.")
    val = val.expand(c) if val.numel() == 1 else val
    dev = model_device(model, device)
    xd = x.detach().float().to(dev)
    grey = val.to(dev).view(1, c, 1, 1)
    r_t = torch.as_tensor(rows, device=dev)
    c_t = torch.as_tensor(cols, device=dev)
    hh = torch.arange(h, device=dev)
    ww = torch.arange(w, device=dev)
    n_pos = len(rows) * len(cols)
    track = progress or no_progress
    probs = torch.empty(n_pos)
    labels = torch.empty(n_pos, dtype=torch.long)
    acts = torch.empty(n_pos) if layer is not None else None
    layers = [layer] if layer is not None else []
    with model_state_guard(model), torch.no_grad():
        model.eval()
        with capture(model, layers) if layers else contextlib.nullcontext() as cap:
            forward = cap.run if cap is not None else (lambda z: run_model(model, z))
            out = first_tensor(forward(xd.unsqueeze(0)))
            if out is None or out.ndim != 2:
                raise InputShapeError("occlusion needs a classifier that returns logits of shape (N, classes).")
            p0 = torch.softmax(out.float(), dim=1)[0]
            base_label = int(p0.argmax())
            tgt = base_label if target is None else int(target)
            if not 0 <= tgt < p0.numel():
                raise ParameterError(f"target must be a class in [0, {p0.numel() - 1}]; got {tgt}.")
            base_act = None
            if layer is not None and cap is not None:  # cap is set exactly when layer is
                a0 = cap[layer][0].float()
                tot0 = a0.flatten(1).sum(1) if a0.ndim > 1 else a0
                if unit is None:
                    unit = int(tot0.argmax())
                if not 0 <= unit < tot0.numel():
                    raise ParameterError(f"unit must be a channel in [0, {tot0.numel() - 1}] of {layer!r}; got {unit}.")
                base_act = float(tot0[unit])
            starts = range(0, n_pos, batch_size)
            for s in track(starts, len(starts), "occlusion"):
                idx = torch.arange(s, min(s + batch_size, n_pos), device=dev)
                ri, ci = idx // len(cols), idx % len(cols)
                in_r = (hh[None, :] >= r_t[ri, 0:1]) & (hh[None, :] < r_t[ri, 1:2])
                in_c = (ww[None, :] >= c_t[ci, 0:1]) & (ww[None, :] < c_t[ci, 1:2])
                mask = (in_r[:, :, None] & in_c[:, None, :]).unsqueeze(1)  # (B, 1, H, W)
                xb = torch.where(mask, grey, xd.unsqueeze(0))
                logits = first_tensor(forward(xb))
                pb = torch.softmax(logits.float(), dim=1)  # type: ignore[union-attr]
                sl = slice(s, s + len(idx))
                probs[sl] = pb[:, tgt].cpu()
                labels[sl] = pb.argmax(dim=1).cpu()
                if acts is not None and layer is not None and cap is not None:
                    a = cap[layer][:, unit].float()
                    acts[sl] = (a.flatten(1).sum(1) if a.ndim > 1 else a).cpu()
    shape = (len(rows), len(cols))
    return Occlusion(
        probability=probs.numpy().reshape(shape),
        label=labels.numpy().reshape(shape),
        activation=None if acts is None else acts.numpy().reshape(shape),
        target=tgt,
        base_probability=float(p0[tgt]),
        base_label=base_label,
        layer=layer,
        unit=unit,
        base_activation=base_act,
        windows=(rows, cols),
        size=size,
        stride=stride,
        anchor=anchor,
        value=tuple(float(v) for v in val.tolist()),
    )
