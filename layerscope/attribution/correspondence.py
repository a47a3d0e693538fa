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

from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import numpy as np
import torch
from torch import nn

from ..capture import capture, model_device, model_state_guard
from ..exceptions import InputShapeError, ParameterError

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


@dataclass(frozen=True)
class Correspondence:
    """Δ per layer for each masked part and for random masks.

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
    """

    layers: list[str]
    parts: dict[str, Box | list[Box]]
    delta: dict[str, dict[str, float]]
    random_std: dict[str, float]
    n_images: int

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
    x: torch.Tensor,
    layers: Sequence[str],
    *,
    parts: Mapping[str, Box | Sequence[Box]] | None = None,
    value: float | Sequence[float] = 0.0,
    n_random: int = 10,
    random_state: int | None = 0,
    device: torch.device | str | None = None,
) -> Correspondence:
    """Correspondence Δ of ``layers`` for parts masked in all images ``x`` vs random masks.

    Parameters
    ----------
    model
        Any ``nn.Module``; run in ``eval()``, left unchanged.
    x
        ``(N, C, H, W)`` images (the paper: 5 images of one class, aligned so a box is the same part).
    layers
        Layers whose features are compared.
    parts
        ``{name: (row, col, height, width)}`` (the same box in every image, for aligned images), or
        ``{name: [box per image]}`` where the part sits at different places (the paper's eyes and
        noses); default :func:`default_parts`.
    value
        Mask value (normalised space; scalar or per channel).
    n_random
        Draws of random boxes (each image its own random position) per part.
    random_state
        Seed of the random boxes.

    Returns
    -------
    Correspondence
    """
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
    xd = x.detach().float().to(dev)
    val = torch.as_tensor(value, dtype=torch.float32, device=dev).flatten()
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
                return {layer: cap[layer].flatten(1).float() for layer in layer_list}

            f0 = feats(xd)
            for name, pboxes in part_boxes.items():
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
    )
