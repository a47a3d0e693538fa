"""Correspondence analysis (Zeiler & Fergus 2014, §4.3, Table 1).

Does the network tie a part of an object to the same features in different images? The same
part (a box) is masked in several images of a class; for image ``i`` and layer ``l`` the change
``eps_i = f_l(x_i) - f_l(x_i masked)`` is taken, and

    Δ_l = Σ_{i≠j} H(sign eps_i, sign eps_j)

with ``H`` the Hamming distance. Here it is normalised — divided by the number of ordered pairs
and by the feature dimension — so ``Δ`` is the mean fraction of feature signs on which two
images disagree. A lower Δ for a part than for masks at random positions (same size) means the
part changes the features consistently. The paper, layer 5: 0.067–0.079 for eyes / nose vs 0.107
random; layer 7: no clear difference.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

import numpy as np
import torch
from torch import nn

from .._progress import ProgressArg, resolve_progress
from ..capture import capture, model_device, model_state_guard
from ..exceptions import InputShapeError, ParameterError
from ._result import FolderResult, read_folder

__all__ = ["Correspondence", "correspondence", "sign_delta", "default_parts"]

Box = tuple[int, int, int, int]  # (row, col, height, width)


def sign_delta(eps: np.ndarray | torch.Tensor) -> float:
    """Normalised Δ of changes ``eps`` ``(N, D)``: mean over ordered pairs i≠j of the fraction of
    coordinates where ``sign(eps_i) != sign(eps_j)``."""
    e = torch.as_tensor(eps).flatten(1)
    n, d = e.shape
    if n < 2:
        raise ParameterError(f"Δ needs at least 2 images; got {n}.")
    s = torch.sign(e).to(torch.int8)
    total = 0
    for i in range(n):
        total += int((s[i : i + 1] != s).sum())  # the i == i term is 0
    return float(total) / (n * (n - 1) * d)


def default_parts(h: int, w: int) -> dict[str, Box]:
    """Four boxes of a quarter of the side: top, bottom, left and right of centre."""
    bh, bw = max(1, h // 4), max(1, w // 4)
    return {
        "top": (h // 4 - bh // 2, w // 2 - bw // 2, bh, bw),
        "bottom": (3 * h // 4 - bh // 2, w // 2 - bw // 2, bh, bw),
        "left": (h // 2 - bh // 2, w // 4 - bw // 2, bh, bw),
        "right": (h // 2 - bh // 2, 3 * w // 4 - bw // 2, bh, bw),
    }


@dataclass(frozen=True, repr=False)
class Correspondence(FolderResult):
    """Δ per layer for each masked part and for random masks.

    An analysis result (:class:`~layerscope.results.AnalysisResult`): :attr:`metrics`
    (``delta_<layer>_<part>``), :meth:`figures` (``{"correspondence": Figure}``), :meth:`save`
    writes the folder of ``layerscope correspondence`` (correspondence.png, result.json),
    :meth:`load` reads it back.

    Attributes
    ----------
    layers
        Layers measured.
    parts
        ``{name: (row, col, height, width)}`` masked boxes (a list of boxes, one per image, where
        they differ).
    delta
        ``{layer: {part or "random": Δ}}``; ``"random"`` is the mean over ``n_random`` draws of
        random boxes of each part's size.
    random_std
        ``{layer: std of the random Δ draws}``.
    n_images
        Images used.
    sample_ids, label
        Dataset rows of the images and the class they were chosen from (``None``: given by hand).
    value, n_random, seed
        Mask value as asked for (``"mean"``, a number or one per channel), random draws, seed.
    model, data
        Description of the model and data spec.
    """

    analysis = "correspondence"

    layers: list[str]
    parts: dict[str, Box | list[Box]]
    delta: dict[str, dict[str, float]]
    random_std: dict[str, float]
    n_images: int
    sample_ids: list[int] = field(default_factory=list)
    label: int | None = None
    value: Any = 0.0
    n_random: int = 10
    seed: int | None = 0
    model: dict[str, Any] | None = None
    data: str | None = None

    @property
    def parameters(self) -> dict[str, Any]:
        return {"layers": self.layers, "parts": self.to_dict()["parts"], "label": self.label,
                "sample_ids": self.sample_ids, "value": self.value, "n_random": self.n_random, "seed": self.seed}

    @property
    def metrics(self) -> dict[str, Any]:
        return {f"delta_{layer}_{name}": v for layer in self.layers for name, v in self.delta[layer].items()}

    def figures(self) -> dict[str, Any]:
        from .plots import plot_correspondence

        return {"correspondence": plot_correspondence(self)}

    def figure_info(self) -> dict[str, tuple[str, str]]:
        return {"correspondence": ("Correspondence Δ per layer",
                                   "Mean normalised Hamming distance between the sign patterns of feature changes when "
                                   "the same part is masked in each image, vs random masks of the same size (Zeiler & "
                                   "Fergus 2014, Table 1). Lower = more consistent.")}

    def extra(self) -> dict[str, Any]:
        return {"correspondence": self.to_dict()}

    @classmethod
    def load(cls, out_dir: str | os.PathLike[str]) -> "Correspondence":
        """Read a folder written by :meth:`save` (or ``layerscope correspondence``)."""
        doc, _ = read_folder(out_dir, "correspondence")
        c, p = doc["correspondence"], doc["parameters"]

        def box(v: list[Any]) -> Any:
            return [tuple(b) for b in v] if v and isinstance(v[0], list) else tuple(v)

        return cls(layers=list(c["layers"]), parts={k: box(v) for k, v in c["parts"].items()}, delta=c["delta"],
                   random_std=c["random_std"], n_images=int(c["n_images"]), sample_ids=list(p.get("sample_ids") or []),
                   label=p.get("label"), value=p.get("value"), n_random=int(p.get("n_random", 10)), seed=p.get("seed"),
                   model=doc.get("model"), data=doc.get("data"))

    def to_dict(self) -> dict[str, Any]:
        return {
            "layers": self.layers,
            "parts": {k: [list(b) for b in v] if isinstance(v, list) else list(v) for k, v in self.parts.items()},
            "delta": self.delta,
            "random_std": self.random_std,
            "n_images": self.n_images,
        }


def _mask(x: torch.Tensor, boxes: Sequence[Box], value: torch.Tensor) -> torch.Tensor:
    out = x.clone()
    for i, (r, c, h, w) in enumerate(boxes):
        out[i, :, max(r, 0) : r + h, max(c, 0) : c + w] = value.view(-1, 1, 1)
    return out


def correspondence(
    model: nn.Module,
    x: Any,
    layers: Sequence[str],
    *,
    parts: Mapping[str, Box | Sequence[Box]] | None = None,
    value: str | float | Sequence[float] = 0.0,
    n_random: int = 10,
    random_state: int | None = 0,
    label: int | None = None,
    indices: Sequence[int] | np.ndarray | None = None,
    limit: int | None = None,
    device: torch.device | str | None = None,
    model_info: dict[str, Any] | None = None,
    data_spec: str | None = None,
    progress: ProgressArg = None,
) -> Correspondence:
    """Correspondence Δ of ``layers`` for parts masked in all images ``x`` vs random masks.

    Parameters
    ----------
    model
        Any ``nn.Module``; run in ``eval()``, left unchanged.
    x
        ``(N, C, H, W)`` images (the paper: 5 images of one class, aligned so a box is the same part),
        or a map-style dataset of ``(x, y)`` items: then the rows ``indices`` are used, else the
        first ``limit`` images of class ``label`` (default: the class of the first image).
    layers
        Layers whose features are compared.
    parts
        ``{name: (row, col, height, width)}`` (the same box in every image, for aligned images), or
        ``{name: [box per image]}`` where the part sits at different places (the paper's eyes and
        noses); default :func:`default_parts`.
    value
        Mask value (normalised space; scalar or per channel), or ``"mean"``: the per-channel mean
        of the data set (of ``x`` for a tensor).
    n_random
        Draws of random boxes (each image its own random position) per part.
    random_state
        Seed of the random boxes.
    model_info, data_spec
        Stored on the result (default: the model's description and the data set's ``name``).
    progress
        A bar ticking once per part (each part: its mask and ``n_random`` random masks);
        ``True``: ``tqdm.auto``; or any tqdm-compatible callable.

    Returns
    -------
    Correspondence
    """
    from ..results import model_description
    from ._dtype import model_dtype, wide as _wide
    from .occlusion import dataset_mean
    from .topk import dataset_inputs

    data_name = None
    mask: Any = value
    value_spec: Any = value if isinstance(value, (str, float, int)) else torch.as_tensor(value).tolist()
    if isinstance(x, torch.Tensor):
        if label is not None or indices is not None or limit is not None:
            raise ParameterError("label, indices and limit choose rows of a dataset; with a tensor of images, slice it.")
        ids = np.arange(x.shape[0])
        if value == "mean":
            mask = x.float().transpose(0, 1).reshape(x.shape[1], -1).mean(dim=1)
    else:
        dataset = x
        data_name = getattr(dataset, "name", None)
        if indices is not None:
            ids = np.asarray(indices, dtype=np.int64).reshape(-1)
        else:
            ids = np.arange(len(dataset))
            if label is None and len(dataset):
                label = int(dataset[0][1])
            if label is not None:
                y = dataset.y.numpy() if hasattr(dataset, "y") else np.asarray([int(dataset[int(i)][1]) for i in ids])
                ids = ids[y == label]
            if limit is not None:
                ids = ids[: max(int(limit), 0)]
        if ids.size and ((ids < 0).any() or (ids >= len(dataset)).any()):
            raise ParameterError(f"indices must be rows in [0, {len(dataset) - 1}]; got {ids.tolist()}.")
        if ids.size < 2:
            raise ParameterError(f"correspondence needs at least 2 images; {ids.size} selected (label={label}, limit={limit}).")
        x = dataset_inputs(dataset, ids)
        if value == "mean":
            mask = dataset_mean(dataset)
    if isinstance(mask, str):
        raise ParameterError(f"value takes 'mean', a number or one number per channel; got {value!r}.")
    if x.ndim != 4:
        raise InputShapeError(f"correspondence needs images (N, C, H, W); got {tuple(x.shape)}.")
    n, c, h, w = x.shape
    if n < 2:
        raise ParameterError(f"correspondence needs at least 2 images; got {n}.")
    if n_random < 1:
        raise ParameterError(f"n_random must be >= 1; got {n_random}.")
    raw = dict(parts) if parts is not None else default_parts(h, w)
    part_boxes: dict[str, list[Box]] = {}
    for name, spec in raw.items():
        boxes = [tuple(int(v) for v in b) for b in spec] if spec and isinstance(spec[0], (tuple, list)) else [tuple(int(v) for v in spec)] * n  # type: ignore[union-attr, arg-type]
        if len(boxes) != n or any(len(b) != 4 for b in boxes):
            raise ParameterError(f"part {name!r} needs one (row, col, height, width) box or one per image ({n}); got {spec!r}.")
        for r, cc, bh, bw in boxes:  # type: ignore[misc]
            if bh < 1 or bw < 1 or r < 0 or cc < 0 or r + bh > h or cc + bw > w:
                raise ParameterError(f"part {name!r} box (row={r}, col={cc}, h={bh}, w={bw}) must lie inside the {h}x{w} image.")
        part_boxes[name] = boxes  # type: ignore[assignment]
    rng = np.random.default_rng(random_state)
    dev = model_device(model, device)
    dtype = model_dtype(model)  # run in the model's own dtype
    xd = x.detach().to(dev, dtype)
    val = torch.as_tensor(mask, dtype=torch.float64).flatten().to(dev, dtype)
    val = val.expand(c) if val.numel() == 1 else val
    if val.numel() != c:
        raise ParameterError(f"value must be a scalar or {c} values; got {val.numel()}.")
    layer_list = list(layers)
    delta: dict[str, dict[str, float]] = {layer: {} for layer in layer_list}
    rand: dict[str, list[float]] = {layer: [] for layer in layer_list}
    with model_state_guard(model), torch.no_grad():
        model.eval()
        with capture(model, layer_list) as cap:

            def feats(z: torch.Tensor) -> dict[str, torch.Tensor]:
                cap.run(z)
                return {layer: _wide(cap[layer].flatten(1)) for layer in layer_list}

            f0 = feats(xd)
            track = resolve_progress(progress)
            for name, pboxes in track(list(part_boxes.items()), total=len(part_boxes),
                                      desc=f"correspondence: {len(part_boxes)} parts x {n_random + 1} masks"):
                fm = feats(_mask(xd, pboxes, val))
                for layer in layer_list:
                    delta[layer][name] = sign_delta(f0[layer] - fm[layer])
                for _ in range(n_random):
                    rboxes = [(int(rng.integers(0, h - bh + 1)), int(rng.integers(0, w - bw + 1)), bh, bw) for _, _, bh, bw in pboxes]
                    fr = feats(_mask(xd, rboxes, val))
                    for layer in layer_list:
                        rand[layer].append(sign_delta(f0[layer] - fr[layer]))
    for layer in layer_list:
        delta[layer]["random"] = float(np.mean(rand[layer]))
    return Correspondence(
        layers=layer_list,
        parts={k: b[0] if all(x == b[0] for x in b) else b for k, b in part_boxes.items()},  # type: ignore[misc]
        delta=delta,
        random_std={layer: float(np.std(rand[layer])) for layer in layer_list},
        n_images=n,
        sample_ids=[int(i) for i in ids],
        label=label,
        value=value_spec,
        n_random=n_random,
        seed=random_state,
        model=model_info if model_info is not None else model_description(model),
        data=data_spec if data_spec is not None else data_name,
    )
