"""How the optimised input is parameterised: pixels, Fourier spectrum, decorrelated colour.

A parameterisation owns the leaf tensors the optimiser changes and renders them into a batch of
model inputs of shape ``(B, *input_shape)``. Any input shape works:

* ``(C, H, W)`` (and ``(C, D1, ..., Dk)``): channel first, the rest spatial;
* ``(T, F)`` frame features and ``(D,)`` flat vectors: no channel axis, every axis spatial.

Options (Olah, Mordvintsev & Schubert 2017, "Feature Visualization", Distill; Mordvintsev et al.
2018, "Differentiable Image Parameterizations"):

* ``"pixel"`` — the input values themselves (Erhan et al. 2009 optimise these directly);
* ``"fft"`` — a spectrum whose coefficients are scaled by ``1 / f ** decay_power`` so that plain
  gradient steps favour low frequencies (natural-image statistics);
* ``decorrelate=True`` — for 3-channel images, colours are optimised in a decorrelated basis and
  mixed by the square root of the colour covariance (from the data when given, else the ImageNet
  estimate published with Lucid);
* ``value_range=(lo, hi)`` — a sigmoid squashes the output into the valid input range (e.g. the
  normalised image of pixels in [0, 1]); ``None``: unbounded.

Written by hand on top of ``torch.fft``; no feature-visualisation library does this for
arbitrary input shapes.
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from ..exceptions import ParameterError

__all__ = [
    "ImageParam",
    "PixelParam",
    "FFTParam",
    "make_param",
    "spatial_dims",
    "gaussian_blur",
    "color_matrix_from_data",
    "IMAGENET_COLOR_SQRT",
    "value_range_from_normalization",
]

#: Square root of the ImageNet RGB colour covariance (columns: decorrelated components), the
#: estimate published with Lucid (Olah et al. 2017). Used when no data is given.
IMAGENET_COLOR_SQRT = ((0.26, 0.09, 0.02), (0.27, 0.00, -0.05), (0.27, -0.09, 0.03))


def spatial_dims(input_shape: Sequence[int]) -> tuple[int, ...]:
    """Indices (into ``input_shape``) of the spatial axes: all but the first for 3+ axes, else all."""
    n = len(input_shape)
    return tuple(range(1, n)) if n >= 3 else tuple(range(n))


def _normalize_matrix(m: torch.Tensor) -> torch.Tensor:
    return m / m.norm(dim=0).max().clamp_min(1e-12)


def color_matrix_from_data(x: torch.Tensor | np.ndarray, max_pixels: int = 200_000) -> torch.Tensor:
    """Square root of the channel covariance of images ``x`` ``(N, C, ...)``: ``U sqrt(S)``.

    Normalised so that its largest column has unit norm (as Lucid does). Multiplying decorrelated
    unit-variance colours by this matrix gives colours with the data's correlations.
    """
    t = torch.as_tensor(np.asarray(x) if not isinstance(x, torch.Tensor) else x, dtype=torch.float64)
    if t.ndim < 3:
        raise ParameterError(f"colour statistics need images (N, C, H, W); got shape {tuple(t.shape)}.")
    pix = t.transpose(0, 1).reshape(t.shape[1], -1)
    if pix.shape[1] > max_pixels:
        step = pix.shape[1] // max_pixels + 1
        pix = pix[:, ::step]
    cov = torch.cov(pix)
    u, s, _ = torch.linalg.svd(cov)
    return _normalize_matrix((u * s.clamp_min(0).sqrt()).float())


def value_range_from_normalization(
    normalization: object, input_shape: Sequence[int]
) -> tuple[torch.Tensor, torch.Tensor] | None:
    """Model-input range of display values in [0, 1] under a data ``Normalization``.

    Per channel ``((0 - mean) / std, (1 - mean) / std)``; ``(0, 1)`` without mean/std.
    Returns tensors broadcastable to ``(1, *input_shape)``, or ``None`` for data that are not
    pixels (``scale == 1``: float features stored as they are, which have no fixed range).
    """
    if float(getattr(normalization, "scale", 1.0)) == 1.0:
        return None
    mean = tuple(getattr(normalization, "mean", ()) or ())
    std = tuple(getattr(normalization, "std", ()) or ())
    shape = (1, len(mean)) + (1,) * (len(input_shape) - 1)
    if mean and len(input_shape) >= 2 and input_shape[0] == len(mean):
        m = torch.tensor(mean, dtype=torch.float32).view(shape)
        s = torch.tensor(std, dtype=torch.float32).view(shape)
        return (0 - m) / s, (1 - m) / s
    return torch.tensor(0.0), torch.tensor(1.0)


def gaussian_blur(x: torch.Tensor, sigma: float, dims: Sequence[int]) -> torch.Tensor:
    """Separable Gaussian blur of ``x`` along ``dims`` (reflect padding at the borders)."""
    if sigma <= 0:
        return x
    radius = max(1, int(math.ceil(3 * sigma)))
    k = torch.arange(-radius, radius + 1, dtype=x.dtype, device=x.device)
    k = torch.exp(-0.5 * (k / sigma) ** 2)
    k = (k / k.sum()).view(1, 1, -1)
    for d in dims:
        size = x.shape[d]
        if size < 2:
            continue
        moved = x.movedim(d, -1)
        shp = moved.shape
        flat = moved.reshape(-1, 1, size)
        r = min(radius, size - 1)
        kk = k[..., radius - r : radius + r + 1]
        kk = kk / kk.sum()
        flat = F.conv1d(F.pad(flat, (r, r), mode="reflect"), kk)
        x = flat.reshape(shp).movedim(-1, d)
    return x


class ImageParam:
    """Base class: :attr:`params` are optimised; calling the object renders ``(B, *input_shape)``."""

    def __init__(
        self,
        batch: int,
        input_shape: Sequence[int],
        *,
        decorrelate: bool = False,
        color_matrix: torch.Tensor | Sequence[Sequence[float]] | None = None,
        value_range: tuple[torch.Tensor | float, torch.Tensor | float] | None = None,
        device: torch.device | str = "cpu",
    ) -> None:
        if batch < 1:
            raise ParameterError(f"batch must be >= 1; got {batch}.")
        self.batch = int(batch)
        self.input_shape = tuple(int(s) for s in input_shape)
        if not self.input_shape or any(s < 1 for s in self.input_shape):
            raise ParameterError(f"input_shape must be non-empty positive sizes; got {self.input_shape}.")
        self.device = torch.device(device)
        self.spatial = tuple(d + 1 for d in spatial_dims(self.input_shape))  # dims of the batch tensor
        self.decorrelate = bool(decorrelate)
        self.color: torch.Tensor | None = None
        if self.decorrelate:
            if len(self.input_shape) < 3 or self.input_shape[0] != 3:
                raise ParameterError(
                    f"decorrelate=True needs 3-channel images (3, H, W); the input shape is {self.input_shape}. "
                    "Use decorrelate=False for 1-channel images, vectors and frame features."
                )
            m = torch.as_tensor(IMAGENET_COLOR_SQRT if color_matrix is None else color_matrix, dtype=torch.float32)
            self.color = _normalize_matrix(m).to(self.device)
        self.value_range: tuple[torch.Tensor, torch.Tensor] | None = None
        if value_range is not None:
            lo, hi = (torch.as_tensor(v, dtype=torch.float32, device=self.device) for v in value_range)
            if bool((hi <= lo).any()):
                raise ParameterError(f"value_range needs lo < hi; got {value_range}.")
            self.value_range = (lo, hi)
        self.params: list[torch.Tensor] = []

    def raw(self) -> torch.Tensor:
        """The unsquashed, correlated-basis tensor ``(B, *input_shape)`` (subclasses)."""
        raise NotImplementedError

    def __call__(self) -> torch.Tensor:
        x = self.raw()
        if self.color is not None:
            x = torch.einsum("ij,bj...->bi...", self.color, x)
        if self.value_range is not None:
            lo, hi = self.value_range
            x = lo + (hi - lo) * torch.sigmoid(x)
        return x

    def blur_(self, sigma: float) -> None:
        """Smooth the parameter in place by a Gaussian of ``sigma`` samples (subclasses)."""
        raise NotImplementedError

    def project_(self, rho: float) -> None:
        """Scale each image back onto the sphere ``||x|| = rho`` (only for unsquashed pixels)."""
        raise ParameterError("Projection onto the sphere needs the pixel parameterisation without value_range.")


class PixelParam(ImageParam):
    """The input values themselves, ``(B, *input_shape)``, initialised ``N(0, std**2)``."""

    def __init__(
        self,
        batch: int,
        input_shape: Sequence[int],
        *,
        std: float = 0.01,
        generator: torch.Generator | None = None,
        init: torch.Tensor | None = None,
        **kw: object,
    ) -> None:
        super().__init__(batch, input_shape, **kw)  # type: ignore[arg-type]
        if init is not None:
            t = torch.as_tensor(init, dtype=torch.float32).to(self.device).clone()
            if tuple(t.shape) != (self.batch, *self.input_shape):
                raise ParameterError(f"init must have shape {(self.batch, *self.input_shape)}; got {tuple(t.shape)}.")
        else:
            t = torch.randn((self.batch, *self.input_shape), generator=generator) * std
            t = t.to(self.device)
        self.tensor = t.requires_grad_(True)
        self.params = [self.tensor]

    def raw(self) -> torch.Tensor:
        return self.tensor

    def blur_(self, sigma: float) -> None:
        with torch.no_grad():
            self.tensor.copy_(gaussian_blur(self.tensor, sigma, self.spatial))

    def project_(self, rho: float) -> None:
        if self.color is not None or self.value_range is not None:
            super().project_(rho)
        with torch.no_grad():
            norms = self.tensor.flatten(1).norm(dim=1).clamp_min(1e-12)
            self.tensor.mul_((rho / norms).view(-1, *([1] * len(self.input_shape))))


class FFTParam(ImageParam):
    """A real spectrum over the spatial axes, scaled by ``1 / max(f, 1/size) ** decay_power``.

    Frequencies ``f`` are in cycles per sample (``torch.fft.fftfreq``); the image is the inverse
    real FFT (``norm="ortho"``) of the scaled spectrum.
    """

    def __init__(
        self,
        batch: int,
        input_shape: Sequence[int],
        *,
        std: float = 0.01,
        decay_power: float = 1.0,
        generator: torch.Generator | None = None,
        **kw: object,
    ) -> None:
        super().__init__(batch, input_shape, **kw)  # type: ignore[arg-type]
        sizes = [self.input_shape[d - 1] for d in self.spatial]
        freqs = [torch.fft.fftfreq(n) for n in sizes[:-1]] + [torch.fft.rfftfreq(sizes[-1])]
        grids = torch.meshgrid(*freqs, indexing="ij")
        f = torch.sqrt(sum(g**2 for g in grids))  # type: ignore[arg-type]
        self.freq = f.to(self.device)
        scale = 1.0 / torch.clamp(f, min=1.0 / max(sizes)) ** decay_power
        self.scale = scale.to(self.device)
        self.sizes = sizes
        spec_shape = (self.batch, *self.input_shape[: self.spatial[0] - 1], *f.shape, 2)
        t = torch.randn(spec_shape, generator=generator) * std
        self.spectrum = t.to(self.device).requires_grad_(True)
        self.params = [self.spectrum]

    def raw(self) -> torch.Tensor:
        spec = torch.view_as_complex(self.spectrum) * self.scale
        x = torch.fft.irfftn(spec, s=self.sizes, dim=self.spatial, norm="ortho")
        return x / 4.0  # keeps the first steps of Adam (lr ~ 0.05) small in pixel terms

    def blur_(self, sigma: float) -> None:
        # The Fourier transform of a Gaussian of std sigma is exp(-2 pi^2 sigma^2 f^2).
        with torch.no_grad():
            gain = torch.exp(-2 * math.pi**2 * sigma**2 * self.freq**2)
            self.spectrum.mul_(gain[..., None])


def make_param(
    kind: str,
    batch: int,
    input_shape: Sequence[int],
    *,
    generator: torch.Generator | None = None,
    **kw: object,
) -> ImageParam:
    """Build a parameterisation by name: ``"pixel"`` or ``"fft"``."""
    if kind == "pixel":
        return PixelParam(batch, input_shape, generator=generator, **kw)  # type: ignore[arg-type]
    if kind == "fft":
        kw.pop("init", None)
        return FFTParam(batch, input_shape, generator=generator, **kw)  # type: ignore[arg-type]
    raise ParameterError(f"param must be 'pixel' or 'fft'; got {kind!r}.")
