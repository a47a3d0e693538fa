"""Random robustness transforms applied to the image before each forward pass.

Transformation robustness (Olah et al. 2017, "Feature Visualization", Distill; Mordvintsev et
al. 2015 "Inceptionism"): the image is padded, jittered, scaled and rotated by small random
amounts at every step, so that only patterns that survive these changes are strengthened.

Every transform takes ``(x, generator)`` with ``x`` of shape ``(B, C, H, W)`` and draws its
randomness from the ``torch.Generator`` (one draw per batch, so the whole batch moves together).
Transforms may change the spatial size (pad grows it, jitter crops); :func:`compose` ends with a
centre crop / reflect pad back to the size the model expects, because models with dense layers
(every reference model here) need a fixed input size — unlike Lucid, which relies on global
pooling. Written by hand on ``torch.nn.functional`` (no torchvision dependency).
"""

from __future__ import annotations

import math
from typing import Callable, Sequence

import torch
import torch.nn.functional as F

from ..exceptions import ParameterError

__all__ = [
    "Transform",
    "pad",
    "jitter",
    "random_scale",
    "random_rotate",
    "compose",
    "fit_size",
    "standard_transforms",
]

Transform = Callable[[torch.Tensor, torch.Generator], torch.Tensor]


def _check_image(x: torch.Tensor) -> None:
    if x.ndim != 4:
        raise ParameterError(
            f"Transforms work on image batches (B, C, H, W); got a tensor of shape {tuple(x.shape)}. "
            "Use transforms=[] for flat vectors and frame features."
        )


def _choice(values: Sequence[float], generator: torch.Generator) -> float:
    i = int(torch.randint(len(values), (1,), generator=generator))
    return float(values[i])


def pad(n: int, mode: str = "reflect", value: float = 0.0) -> Transform:
    """Pad ``n`` pixels on every side (``mode`` as in ``torch.nn.functional.pad``)."""
    if n < 0:
        raise ParameterError(f"pad must be >= 0; got {n}.")

    def f(x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        _check_image(x)
        if n == 0:
            return x
        m = mode
        if m == "reflect" and (n >= x.shape[-1] or n >= x.shape[-2]):
            m = "replicate"
        return F.pad(x, (n, n, n, n), mode=m, value=value) if m == "constant" else F.pad(x, (n, n, n, n), mode=m)

    return f


def jitter(d: int) -> Transform:
    """Crop ``d`` pixels in total per axis at a random offset (a random translation by 0..d)."""
    if d < 0:
        raise ParameterError(f"jitter must be >= 0; got {d}.")

    def f(x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        _check_image(x)
        if d == 0:
            return x
        h, w = x.shape[-2:]
        dd = min(d, h - 1, w - 1)
        oy, ox = (int(v) for v in torch.randint(dd + 1, (2,), generator=generator))
        return x[..., oy : oy + h - dd, ox : ox + w - dd]

    return f


def random_scale(scales: Sequence[float]) -> Transform:
    """Resize by a factor drawn from ``scales`` (bilinear)."""
    if not scales or any(s <= 0 for s in scales):
        raise ParameterError(f"scales must be positive numbers; got {list(scales)}.")

    def f(x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        _check_image(x)
        s = _choice(scales, generator)
        if s == 1.0:
            return x
        h, w = x.shape[-2:]
        size = (max(1, round(h * s)), max(1, round(w * s)))
        return F.interpolate(x, size=size, mode="bilinear", align_corners=False)

    return f


def random_rotate(angles: Sequence[float]) -> Transform:
    """Rotate about the centre by an angle (degrees) drawn from ``angles``; size unchanged."""
    if not angles:
        raise ParameterError("angles must not be empty.")

    def f(x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        _check_image(x)
        a = math.radians(_choice(angles, generator))
        if a == 0.0:
            return x
        c, s = math.cos(a), math.sin(a)
        theta = torch.tensor([[c, -s, 0.0], [s, c, 0.0]], dtype=x.dtype, device=x.device)
        grid = F.affine_grid(theta.expand(x.shape[0], 2, 3), list(x.shape), align_corners=False)
        return F.grid_sample(x, grid, mode="bilinear", padding_mode="reflection", align_corners=False)

    return f


def fit_size(x: torch.Tensor, size: Sequence[int]) -> torch.Tensor:
    """Centre-crop or replicate-pad ``x`` ``(B, C, H, W)`` to spatial ``size`` ``(H', W')``."""
    h, w = x.shape[-2:]
    th, tw = int(size[0]), int(size[1])
    if h > th:
        top = (h - th) // 2
        x = x[..., top : top + th, :]
    if w > tw:
        left = (w - tw) // 2
        x = x[..., left : left + tw]
    h, w = x.shape[-2:]
    if h < th or w < tw:
        py, px = th - h, tw - w
        x = F.pad(x, (px // 2, px - px // 2, py // 2, py - py // 2), mode="replicate")
    return x


def compose(transforms: Sequence[Transform], size: Sequence[int] | None = None) -> Transform:
    """Apply ``transforms`` in order, then (if ``size`` is given) fit the result to ``size``."""
    ts = list(transforms)

    def f(x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        for t in ts:
            x = t(x, generator)
        return fit_size(x, size) if size is not None else x

    return f


def standard_transforms(size: int) -> list[Transform]:
    """Lucid's default robustness transforms, rescaled from 224-pixel images to ``size`` pixels.

    Lucid (for 224 px): pad 12, jitter 8, scale 0.9..1.1, rotate -10..10 degrees, jitter 4. Here
    the pixel amounts shrink with the image (28 px: pad 3, jitter 2, jitter 1); scales and angles
    stay as they are.
    """
    p = max(1, round(size / 9))
    j1 = max(1, round(size / 14))
    j2 = max(1, round(size / 28))
    return [
        pad(p),
        jitter(j1),
        random_scale([1 + (i - 5) / 50 for i in range(11)]),
        random_rotate([float(a) for a in range(-10, 11)]),
        jitter(j2),
    ]
