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

The occluded images are built and run in the model's own floating dtype (a float64 model gives
float64 maps, a bfloat16 model runs in bfloat16); probabilities and activations are accumulated in
float32 or float64 (whichever is wider than the model's dtype).

:func:`occlusion_maps` runs :func:`occlusion` over several images of a data set and returns an
:class:`OcclusionMaps` result (the folder of ``layerscope occlude``).
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass, field
from typing import Any, Literal, Sequence

import numpy as np
import torch
from torch import nn

from .._progress import ProgressArg
from ..capture import capture, model_device, model_state_guard, run_model
from ..seam import classifier_logits
from ..exceptions import InputShapeError, ParameterError
from ._dtype import model_dtype, wide as _wide
from ._result import FolderResult, read_folder, track

__all__ = ["Occlusion", "OcclusionMaps", "occlusion", "occlusion_maps", "window_grid", "dataset_mean"]

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
    progress: ProgressArg = None,
    n_classes: int | None = None,
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
        the unoccluded image. ``layer=None`` skips (b); a ``unit`` without a ``layer`` is refused.
    batch_size
        Occluded images per forward pass.
    progress
        ``None``, ``True`` (tqdm.auto) or any tqdm-compatible callable (keywords ``total=``, ``desc=``).

    n_classes
        The number of classes of the data, when known: the model's output must then be scores of
        exactly that many classes (:func:`layerscope.seam.classifier_logits`); an embedding or any
        other non-classifier output is refused rather than read as class probabilities.

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
    if unit is not None and layer is None:
        raise ParameterError(f"unit={unit} needs a layer: pass layer=... (the feature map of panel (b)), or drop unit.")
    c, h, w = x.shape
    rows = window_grid(h, size, stride, anchor)
    cols = window_grid(w, size, stride, anchor)
    dtype = model_dtype(model)
    val = torch.as_tensor(value, dtype=torch.float64).flatten()
    if val.numel() not in (1, c):
        raise ParameterError(f"value must be a scalar or {c} values (one per channel); got {val.numel()}.")
    if not torch.isfinite(val).all():
        raise ParameterError(f"value must be finite (the occluder's grey); got {val.tolist()}.")
    val = val.expand(c) if val.numel() == 1 else val
    dev = model_device(model, device)
    xd = x.detach().to(dev, dtype)
    grey = val.to(dev, dtype).view(1, c, 1, 1)
    r_t = torch.as_tensor(rows, device=dev)
    c_t = torch.as_tensor(cols, device=dev)
    hh = torch.arange(h, device=dev)
    ww = torch.arange(w, device=dev)
    n_pos = len(rows) * len(cols)
    acc = torch.float64 if dtype == torch.float64 else torch.float32
    probs = torch.empty(n_pos, dtype=acc)
    labels = torch.empty(n_pos, dtype=torch.long)
    acts = torch.empty(n_pos, dtype=acc) if layer is not None else None
    layers = [layer] if layer is not None else []
    with model_state_guard(model), torch.no_grad():
        model.eval()
        with capture(model, layers) if layers else contextlib.nullcontext() as cap:
            forward = cap.run if cap is not None else (lambda z: run_model(model, z))
            out, why = classifier_logits(forward(xd.unsqueeze(0)), n_classes)
            if out is None:
                raise InputShapeError(
                    f"occlusion maps class probabilities, so it needs a classifier of the data's classes: {why}."
                )
            p0 = torch.softmax(_wide(out), dim=1)[0]
            base_label = int(p0.argmax())
            tgt = base_label if target is None else int(target)
            if not 0 <= tgt < p0.numel():
                raise ParameterError(f"target must be a class in [0, {p0.numel() - 1}]; got {tgt}.")
            base_act = None
            if layer is not None and cap is not None:  # cap is set exactly when layer is
                a0 = _wide(cap[layer][0])
                tot0 = a0.flatten(1).sum(1) if a0.ndim > 1 else a0
                if unit is None:
                    unit = int(tot0.argmax())
                if not 0 <= unit < tot0.numel():
                    raise ParameterError(f"unit must be a channel in [0, {tot0.numel() - 1}] of {layer!r}; got {unit}.")
                base_act = float(tot0[unit])
            starts = range(0, n_pos, batch_size)
            desc = "occlusion" if layer is None else f"occlusion, layer {layer}"
            for s in track(progress, starts, len(starts), desc):
                idx = torch.arange(s, min(s + batch_size, n_pos), device=dev)
                ri, ci = idx // len(cols), idx % len(cols)
                in_r = (hh[None, :] >= r_t[ri, 0:1]) & (hh[None, :] < r_t[ri, 1:2])
                in_c = (ww[None, :] >= c_t[ci, 0:1]) & (ww[None, :] < c_t[ci, 1:2])
                mask = (in_r[:, :, None] & in_c[:, None, :]).unsqueeze(1)  # (B, 1, H, W)
                xb = torch.where(mask, grey, xd.unsqueeze(0))
                logits, _ = classifier_logits(forward(xb), n_classes)
                if logits is None:  # (cannot happen: the unoccluded image gave class scores)
                    raise InputShapeError("the model stopped returning class scores for occluded images.")
                pb = torch.softmax(_wide(logits), dim=1)
                sl = slice(s, s + len(idx))
                probs[sl] = pb[:, tgt].cpu()
                labels[sl] = pb.argmax(dim=1).cpu()
                if acts is not None and layer is not None and cap is not None:
                    a = _wide(cap[layer][:, unit])
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


@dataclass(frozen=True, repr=False)
class OcclusionMaps(FolderResult):
    """Occlusion maps of several images of a data set (``layerscope occlude``, Z&F Fig. 7).

    An analysis result (:class:`~layerscope.results.AnalysisResult`): :attr:`metrics`
    (``mean_base_probability``, ``mean_min_probability``, ``label_changed_fraction``),
    :meth:`figures` (``{"occlusion": Figure}``), :meth:`save` writes occlusion.png,
    occlusion.npz and result.json, :meth:`load` reads them back.

    Attributes
    ----------
    images
        One :class:`Occlusion` per image.
    sample_ids, true_labels
        ``(N,)`` dataset rows and their labels (the class whose probability is mapped).
    inputs
        ``(N, C, H, W)`` the images in display range.
    projections
        ``(N, C, H, W)`` deconvnet projection of the strongest activation of each image's feature
        map (panel c), or ``None``.
    value
        The grey value as asked for (``"mean"``, ``"zero"``, a number or one per channel); each
        :class:`Occlusion` holds the values used.
    layer, unit, size, stride, anchor
        The settings of :func:`occlusion_maps`.
    classes
        Class names for the figure, or ``None``.
    notes
        What was left out and why (e.g. panel c for a model the deconvnet rule cannot take).
    model, data
        Description of the model and data spec.
    """

    analysis = "occlusion"
    arrays_file = "occlusion.npz"

    images: list[Occlusion]
    sample_ids: np.ndarray
    true_labels: np.ndarray
    inputs: np.ndarray
    projections: np.ndarray | None
    value: Any
    layer: str | None
    unit: int | None
    size: int
    stride: int
    anchor: str
    classes: list[str] | None = None
    notes: list[str] = field(default_factory=list)
    model: dict[str, Any] | None = None
    data: str | None = None

    @property
    def parameters(self) -> dict[str, Any]:
        return {"size": self.size, "stride": self.stride, "value": self.value, "anchor": self.anchor,
                "layer": self.layer, "unit": self.unit, "indices": self.sample_ids.tolist()}

    @property
    def metrics(self) -> dict[str, Any]:
        r = self.images
        return {
            "mean_base_probability": float(np.mean([o.base_probability for o in r])),
            "mean_min_probability": float(np.mean([o.probability.min() for o in r])),
            "label_changed_fraction": float(np.mean([(o.label != o.base_label).mean() for o in r])),
        }

    def figures(self) -> dict[str, Any]:
        from .plots import plot_occlusion

        return {"occlusion": plot_occlusion(list(self.inputs), self.images, class_names=self.classes,
                                            true_labels=self.true_labels.tolist(),
                                            projections=None if self.projections is None else list(self.projections))}

    def figure_info(self) -> dict[str, tuple[str, str]]:
        return {"occlusion": ("Occlusion sensitivity",
                              "Per image: (a) input, (b) total activation of the chosen feature map, (c) the deconvnet "
                              "projection of that map's strongest activation, (d) probability "
                              "of the true class and (e) most probable label as a function of the grey square's "
                              "position (Zeiler & Fergus 2014, Fig. 7).")}

    def arrays(self) -> dict[str, np.ndarray | None]:
        acts = [o.activation for o in self.images]
        return {"sample_ids": self.sample_ids, "inputs": self.inputs,
                "probability": np.stack([o.probability for o in self.images]),
                "label": np.stack([o.label for o in self.images]),
                "activation": None if any(a is None for a in acts) else np.stack(acts),  # type: ignore[arg-type]
                "projection": self.projections}

    def extra(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "images": [{"sample_id": int(i), "true_label": int(t), **o.to_dict()}
                       for i, t, o in zip(self.sample_ids, self.true_labels, self.images)],
            "classes": self.classes,
        }
        if self.notes:
            out["notes"] = list(self.notes)
        return out

    @classmethod
    def load(cls, out_dir: str | os.PathLike[str]) -> "OcclusionMaps":
        """Read a folder written by :meth:`save` (or ``layerscope occlude``)."""
        doc, z = read_folder(out_dir, "occlusion")
        p = doc["parameters"]
        h, w = z["inputs"].shape[-2:]
        windows = (window_grid(h, p["size"], p["stride"], p["anchor"]), window_grid(w, p["size"], p["stride"], p["anchor"]))
        images = [
            Occlusion(
                probability=z["probability"][i], label=z["label"][i],
                activation=z["activation"][i] if "activation" in z else None, target=d["target"],
                base_probability=d["base_probability"], base_label=d["base_label"], layer=d["layer"], unit=d["unit"],
                base_activation=d["base_activation"], windows=windows, size=d["size"], stride=d["stride"],
                anchor=d["anchor"], value=tuple(d["value"]),
            )
            for i, d in enumerate(doc["images"])
        ]
        return cls(
            images=images, sample_ids=z["sample_ids"], true_labels=np.asarray([d["true_label"] for d in doc["images"]]),
            inputs=z["inputs"], projections=z.get("projection"), value=p["value"], layer=p["layer"], unit=p["unit"],
            size=p["size"], stride=p["stride"], anchor=p["anchor"], classes=doc.get("classes"),
            notes=list(doc.get("notes") or []), model=doc.get("model"), data=doc.get("data"),
        )


def occlusion_maps(
    model: nn.Module,
    dataset: Any,
    indices: Sequence[int] | np.ndarray = (0, 1, 2, 3),
    *,
    size: int = 7,
    stride: int = 2,
    value: str | float | Sequence[float] | torch.Tensor = "mean",
    anchor: Anchor = "centred",
    layer: str | None = None,
    unit: int | None = None,
    project: bool = True,
    batch_size: int = 256,
    device: torch.device | str | None = None,
    progress: ProgressArg = None,
    model_info: dict[str, Any] | None = None,
    data_spec: str | None = None,
) -> OcclusionMaps:
    """Occlusion maps of dataset rows ``indices`` (Z&F 2014, Fig. 7; ``layerscope occlude``).

    Each image is occluded with :func:`occlusion`, mapping the probability of its true label.

    Parameters
    ----------
    model
        A classifier returning logits; left unchanged.
    dataset
        Map-style dataset of ``(x, y)`` items.
    indices
        Dataset rows to occlude.
    size, stride, anchor, batch_size
        As in :func:`occlusion`.
    value
        Grey value: ``"mean"`` (:func:`dataset_mean`), ``"zero"``
        (:meth:`~layerscope.data.Normalization.zero_value`: 0 in normalised space — the
        normalisation's mean, per channel — for standardised data, 0.5 for data left in [0, 1];
        0 without a normalisation), a number or one per channel (normalised space).
    layer, unit
        Feature map of panel (b) (``unit`` default: the strongest per image); a ``unit`` without a
        ``layer`` is refused.
    project
        With a layer: panel (c), the deconvnet projection of the feature map's strongest
        activation (left out, with a note, for a model the deconvnet rule cannot take).
    progress
        ``None``, ``True`` (tqdm.auto) or any tqdm-compatible callable (keywords ``total=``, ``desc=``).
    model_info, data_spec
        Stored on the result (default: the model's description and the data set's ``name``).

    Returns
    -------
    OcclusionMaps
    """
    from ..results import model_description
    from .topk import display_normalization

    if unit is not None and layer is None:
        raise ParameterError(f"unit={unit} needs a layer: pass the layer of the feature map (--layer), or drop --unit.")
    ids = np.asarray(indices, dtype=np.int64).reshape(-1)
    if ids.size == 0:
        raise ParameterError("indices is empty: give at least one dataset row to occlude.")
    if (ids < 0).any() or (ids >= len(dataset)).any():
        raise ParameterError(f"indices must be rows in [0, {len(dataset) - 1}]; got {ids.tolist()}.")
    grey: Any
    if isinstance(value, str):
        if value == "mean":
            grey = dataset_mean(dataset)
        elif value == "zero":
            norm = display_normalization(dataset, model)
            grey = norm.zero_value() if norm is not None else 0.0
        else:
            raise ParameterError(f"value takes 'mean', 'zero', a number or one number per channel; got {value!r}.")
        value_spec: Any = value
    else:
        grey = value
        value_spec = torch.as_tensor(value).tolist()
    from ..seam import gather, single_input

    rows = gather(dataset, ids)
    x = single_input(rows, "Occlusion")
    if rows.labels is None:
        raise ParameterError("Occlusion maps p(true class), so the data needs labels; this data has none.")
    y = rows.labels.numpy().astype(np.int64)
    classes = getattr(dataset, "classes", None)
    n_cls = len(classes) if classes is not None else None  # the model must score exactly these classes
    results = [
        occlusion(model, x[i], target=int(y[i]), n_classes=n_cls, size=size, stride=stride, value=grey, anchor=anchor, layer=layer,
                  unit=unit, batch_size=batch_size, device=device, progress=progress)
        for i in range(len(ids))
    ]
    proj = None
    notes: list[str] = []
    if layer is not None and project:
        from .deconvnet import UnsupportedModelError, project_activations

        try:
            # with a layer, occlusion() picks (or checks) a unit per image, so no unit is None here
            proj = project_activations(model, x, layer, [int(r.unit) for r in results if r.unit is not None],
                                       rule="deconvnet", device=device).maps
        except UnsupportedModelError as err:
            notes.append(f"panel (c) left out: {err}")
    norm = display_normalization(dataset, model)
    disp = norm.denormalize(x) if norm is not None else x.float().numpy()
    classes = getattr(dataset, "classes", None) or getattr(model, "classes", None)
    return OcclusionMaps(
        images=results, sample_ids=ids, true_labels=y, inputs=np.asarray(disp), projections=proj, value=value_spec,
        layer=layer, unit=unit, size=size, stride=stride, anchor=anchor, classes=list(classes) if classes else None,
        notes=notes, model=model_info if model_info is not None else model_description(model),
        data=data_spec if data_spec is not None else getattr(dataset, "name", None),
    )
