"""The optimisation loop: activation maximisation, Erhan-style and Lucid-style, batched over units.

Two entry points:

* :func:`render` — maximise any :class:`~layerscope.featurevis.objectives.Objective` for a batch
  of images (Lucid's ``render_vis``): a parameterisation, robustness transforms, penalties and
  an optimiser. Only the layers the objective needs are hooked, and the forward pass stops after
  the deepest of them (nothing above is computed).
* :func:`maximize` — one image per unit (and restart) of a layer, all optimised together as one
  batch, with ``method="erhan"`` (Erhan, Bengio, Courville & Vincent 2009: plain gradient ascent
  on the input, projected back onto the sphere ``||x|| = rho`` after every step, random restarts)
  or ``method="lucid"`` (Olah et al. 2017: FFT + decorrelated parameterisation, transforms, Adam).
  Returns an :class:`ActMaxResult` with, per unit, the activation reached, its trace over the
  steps, and the restart consistency (mean pairwise cosine similarity of the restarts' images).

The model is left exactly as it was (parameters, ``training`` and ``requires_grad`` flags, no
hooks, no ``.grad`` accumulated), also after an error.

``result.json`` written by :meth:`ActMaxResult.save` / ``layerscope maximize`` (analysis
``"maximize"``) holds, besides the common keys (``parameters``, ``metrics``, ``figures``)::

    "layer": str, "kind": "neuron"|"channel"|"logit"|"prob", "method": "erhan"|"lucid",
    "objective": str,                       # description of the objective
    "units": [                              # one entry per unit, in order
      {"unit": int, "activation": float,    # value reached (best restart)
       "activation_restarts": [float],      # value reached by every restart
       "trace": [float],                    # objective at every step, best restart
       "consistency": float|null,           # mean pairwise cosine of restarts (null if 1 restart)
       "data_max": float|null,              # max of the unit over the dataset (if data given)
       "exceeds_data_max": bool|null,
       "class_probability": float|null,     # softmax prob of class `unit` (logit/prob kinds)
       "predicted_class": int|null,
       "image": "units/unit_0003.png"}      # one PNG per unit
    ]
    "metrics": {"n_units", "mean_activation", "mean_consistency", "fraction_exceeding_data_max",
                "min_class_probability", "fraction_classified_as_target", "seconds"}

Arrays (``images`` ``(U, *input_shape)``, ``restart_images`` ``(U, R, *input_shape)``,
``trace`` ``(steps, U)``, ``activation_restarts`` ``(U, R)``) go to ``arrays.npz``; images kept at
the ``thresholds`` steps to ``intermediate.npz`` (``step_<k>``: ``(U, *input_shape)``).
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterable, Literal, Sequence

import numpy as np
import torch
from torch import nn

from .._progress import ProgressArg, resolve_progress
from ..capture import capture, model_device, model_state_guard
from ..exceptions import InputShapeError, ParameterError
from ..layers import resolve_layer
from ..results import AnalysisResult
from .objectives import Objective, check_units, class_logit, class_prob, channel, diversity, neuron, unit_values
from .param import (
    ImageParam,
    color_matrix_from_data,
    make_param,
    value_range_from_normalization,
)
from .transforms import Transform, compose, standard_transforms

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = [
    "render", "Rendering", "maximize", "ActMaxResult", "unit_data_max", "layer_units", "is_output_layer",
    "resolve_input_shape", "make_unit_objective",
]

log = logging.getLogger(__name__)

RandomState = int | np.random.Generator | None


def _generator(random_state: RandomState) -> torch.Generator:
    """A CPU ``torch.Generator`` seeded from ``random_state`` (None: a fresh random seed)."""
    if isinstance(random_state, np.random.Generator):
        seed = int(random_state.integers(0, 2**63 - 1))
    elif random_state is None:
        seed = int(np.random.SeedSequence().generate_state(1, dtype=np.uint64)[0] >> 1)
    elif isinstance(random_state, (int, np.integer)):
        seed = int(random_state)
    else:
        raise ParameterError(f"random_state must be an int, a numpy Generator or None; got {type(random_state).__name__}.")
    g = torch.Generator()
    g.manual_seed(seed)
    return g


def resolve_input_shape(model: nn.Module, input_shape: Sequence[int] | None = None, data: Any = None) -> tuple[int, ...]:
    """The input shape: given, else ``model.input_shape``, else the data's (``data.input_shape`` or one item)."""
    if input_shape is not None:
        return tuple(int(s) for s in input_shape)
    shp = getattr(model, "input_shape", None)
    if shp is not None:
        return tuple(int(s) for s in shp)
    if data is not None:
        shp = getattr(data, "input_shape", None)
        if shp is not None:
            return tuple(int(s) for s in shp)
        try:
            return tuple(int(s) for s in torch.as_tensor(data[0][0]).shape)
        except Exception:  # noqa: BLE001 - fall through to the clear error below
            pass
    raise InputShapeError(
        f"Cannot tell the input shape of {type(model).__name__}: it has no .input_shape and no data was given. "
        "Pass input_shape=(C, H, W) (or the shape of one sample), or data."
    )


def _l2(x: torch.Tensor) -> torch.Tensor:
    return x.flatten(1).pow(2).mean(dim=1)


def _tv(x: torch.Tensor, dims: Sequence[int]) -> torch.Tensor:
    """Mean absolute difference of neighbouring values along ``dims``, per image ``(B,)``."""
    out = torch.zeros(x.shape[0], dtype=x.dtype, device=x.device)
    for d in dims:
        if x.shape[d] > 1:
            out = out + x.diff(dim=d).abs().flatten(1).mean(dim=1)
    return out


@dataclass(frozen=True)
class Rendering:
    """What :func:`render` returns.

    Attributes
    ----------
    images
        ``(B, *input_shape)`` float32, the final inputs in the model's input space.
    values
        ``(B,)`` objective of the final images (no transforms applied).
    trace
        ``(steps, B)`` objective at every step (on the transformed image, before the update).
    intermediate
        ``{step: (B, *input_shape)}`` images kept after the given steps (``thresholds``).
    """

    images: np.ndarray
    values: np.ndarray
    trace: np.ndarray
    intermediate: dict[int, np.ndarray] = field(default_factory=dict)


def _refuse_inference_mode(what: str) -> None:
    if torch.is_inference_mode_enabled():
        raise ParameterError(
            f"{what} is gradient ascent on the input, which cannot run inside torch.inference_mode(); "
            "call it outside that block."
        )


def render(
    model: nn.Module,
    objective: Objective,
    *,
    batch: int = 1,
    input_shape: Sequence[int] | None = None,
    param: str | ImageParam = "fft",
    decorrelate: bool = False,
    color_matrix: Any = None,
    value_range: tuple[Any, Any] | None = None,
    transforms: Sequence[Transform] | None = None,
    steps: int = 256,
    optimizer: Literal["adam", "sgd"] = "adam",
    lr: float = 0.05,
    momentum: float = 0.0,
    l2: float = 0.0,
    tv: float = 0.0,
    blur_every: int = 0,
    blur_sigma: float = 0.5,
    rho: float | None = None,
    init_std: float = 0.01,
    init: torch.Tensor | None = None,
    thresholds: Iterable[int] = (),
    random_state: RandomState = 0,
    device: torch.device | str | None = None,
    progress: ProgressArg = None,
    on_step: Callable[[int, torch.Tensor], None] | None = None,
) -> Rendering:
    """Maximise ``objective`` by gradient ascent on a batch of ``batch`` inputs.

    Parameters
    ----------
    model
        Any ``nn.Module``; run in ``eval()`` mode with its parameters frozen, restored afterwards.
    objective
        What to maximise; per image scores ``(B,)`` are summed (images do not interact unless
        the objective couples them, e.g. :func:`~layerscope.featurevis.objectives.diversity`).
    batch
        Number of images optimised together.
    input_shape
        Shape of one input; default ``model.input_shape``.
    param
        ``"pixel"``, ``"fft"`` or an :class:`~layerscope.featurevis.param.ImageParam`.
    decorrelate, color_matrix
        Decorrelated colour parameterisation for 3-channel images (see ``param``).
    value_range
        ``(lo, hi)`` input range (scalars or tensors broadcastable to ``(1, *input_shape)``);
        outputs are squashed into it by a sigmoid. ``None``: unbounded.
    transforms
        Robustness transforms for image inputs (``None`` or ``[]``: none); the transformed image
        is fitted back to the input size.
    steps, optimizer, lr, momentum
        Optimisation: ``"adam"`` (Lucid) or ``"sgd"`` (plain gradient ascent when ``momentum=0``).
    l2, tv
        Weights of the L2 (mean square) and total-variation penalties on the input.
    blur_every, blur_sigma
        Gaussian blur (``blur_sigma`` samples) of the parameter every ``blur_every`` steps (0: never).
    rho
        If given, project every image onto the sphere ``||x|| = rho`` after each step (and at
        the start) — Erhan et al. 2009. Needs ``param="pixel"`` without ``value_range``.
    init_std, init
        Initial parameter values: ``N(0, init_std**2)``, or ``init`` ``(B, *input_shape)`` (pixel).
    thresholds
        Steps (1-based, after the update) at which to keep a copy of the images.
    random_state
        Seeds initialisation and transforms: the same value gives the same images on CPU.
    device
        Default: the model's device.
    progress
        Progress over the steps: None, True (tqdm.auto) or a tqdm-compatible callable.
    on_step
        Called as ``on_step(step, images)`` after every update (1-based step, a detached copy).

    Returns
    -------
    Rendering
    """
    _refuse_inference_mode("Rendering")
    if steps < 0:
        raise ParameterError(f"steps must be >= 0; got {steps}.")
    if rho is not None and not (rho > 0 and math.isfinite(rho)):
        raise ParameterError(f"rho (the radius of the sphere ||x|| = rho) must be a positive number; got {rho}.")
    if not (math.isfinite(lr) and lr > 0):
        raise ParameterError(f"lr must be > 0; got {lr}.")
    if blur_every < 0:
        raise ParameterError(f"blur_every must be >= 0; got {blur_every}.")
    if not isinstance(objective, Objective):
        raise ParameterError(f"objective must be an Objective (e.g. channel('conv3', 0)); got {type(objective).__name__}.")
    resolve_layer_all(model, objective.layers)
    shape = resolve_input_shape(model, input_shape)
    dev = model_device(model, device)
    gen = _generator(random_state)
    if isinstance(param, ImageParam):
        p = param
    else:
        p = make_param(
            param, batch, shape, generator=gen, std=init_std, decorrelate=decorrelate, color_matrix=color_matrix,
            value_range=value_range, device=dev, **({"init": init} if init is not None else {}),
        )
    tf: Transform | None = None
    if transforms:
        if len(shape) != 3:
            raise ParameterError(
                f"Transforms (jitter, scale, rotate, pad) need image inputs (C, H, W); this model takes {shape}. "
                "Pass transforms=[] for flat vectors and frame features."
            )
        tf = compose(transforms, size=shape[1:])
    keep = sorted({int(t) for t in thresholds if 0 < int(t) <= steps})
    if rho is not None:
        p.project_(rho)
    if optimizer == "adam":
        opt: torch.optim.Optimizer = torch.optim.Adam(p.params, lr=lr)
    elif optimizer == "sgd":
        opt = torch.optim.SGD(p.params, lr=lr, momentum=momentum)
    else:
        raise ParameterError(f"optimizer must be 'adam' or 'sgd'; got {optimizer!r}.")
    spatial = p.spatial
    trace = np.zeros((steps, p.batch), dtype=np.float32)
    inter: dict[int, np.ndarray] = {}
    track = resolve_progress(progress)
    layers = list(objective.layers)
    with model_state_guard(model), torch.enable_grad():
        model.eval()
        for q in model.parameters():
            q.requires_grad_(False)
        with capture(model, layers, detach=False, stop_early=True) as cap:

            def evaluate(x: torch.Tensor) -> torch.Tensor:
                cap.activations.clear()
                cap.run(x)
                missing = [n for n in layers if n not in cap.activations]
                if missing:
                    raise InputShapeError(
                        f"Layers {missing} did not run in the forward pass; pick layers the model's forward() calls."
                    )
                vals = objective({n: cap.activations[n] for n in layers})
                if vals.shape != (x.shape[0],):
                    raise ParameterError(
                        f"objective {objective.name} returned shape {tuple(vals.shape)}; expected one score per image ({x.shape[0]},)."
                    )
                return vals

            for step in track(range(steps), total=steps, desc="render steps"):
                x = p()
                xt = tf(x, gen) if tf is not None else x
                vals = evaluate(xt)
                loss = -vals.sum()
                if l2:
                    loss = loss + l2 * _l2(x).sum()
                if tv:
                    loss = loss + tv * _tv(x, spatial).sum()
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                if rho is not None:
                    p.project_(rho)
                if blur_every and (step + 1) % blur_every == 0:
                    p.blur_(blur_sigma)
                    if rho is not None:
                        p.project_(rho)
                trace[step] = vals.detach().cpu().numpy()
                if keep or on_step is not None:
                    with torch.no_grad():
                        cur = p().detach()
                    if step + 1 in keep:
                        inter[step + 1] = cur.cpu().numpy().astype(np.float32)
                    if on_step is not None:
                        on_step(step + 1, cur.clone())
            cap.activations.clear()
            with torch.no_grad():
                x = p()
                final = evaluate(x)
            images = x.detach().cpu().numpy().astype(np.float32)
            values = final.detach().cpu().numpy().astype(np.float32)
            cap.activations.clear()
    return Rendering(images=images, values=values, trace=trace, intermediate=inter)


def resolve_layer_all(model: nn.Module, names: Sequence[str]) -> None:
    """Raise ``LayerNotFoundError`` (with suggestions) for the first unknown layer name."""
    for n in names:
        resolve_layer(model, n)


# ------------------------------------------------------------------------------------------
# Units of a layer
# ------------------------------------------------------------------------------------------


def layer_units(model: nn.Module, layer: str, input_shape: Sequence[int], device: torch.device | None = None) -> tuple[int, ...]:
    """Output shape of ``layer`` (without batch) from one forward pass of zeros, stopped early."""
    resolve_layer(model, layer)
    dev = model_device(model, device)
    with model_state_guard(model), torch.no_grad():
        model.eval()
        with capture(model, [layer], keep="shape", stop_early=True) as cap:
            cap.run(torch.zeros((1, *input_shape), device=dev))
    if layer not in cap.shapes:
        raise InputShapeError(f"Layer {layer!r} did not run in the forward pass; pick a layer the model's forward() calls.")
    return cap.shapes[layer]


def is_output_layer(model: nn.Module, layer: str, input_shape: Sequence[int], device: torch.device | None = None) -> bool:
    """Whether ``layer``'s output is the model's output (the logits), by one forward pass of zeros."""
    from ..capture import first_tensor

    dev = model_device(model, device)
    with model_state_guard(model), torch.no_grad():
        model.eval()
        with capture(model, [layer], detach=False) as cap:
            out = first_tensor(cap.run(torch.zeros((1, *input_shape), device=dev)))
    return out is not None and layer in cap.activations and cap.activations[layer] is out


def unit_data_max(
    model: nn.Module,
    dataset: Any,
    layer: str,
    units: Sequence[int],
    kind: str = "channel",
    position: Sequence[int] | None = None,
    *,
    batch_size: int = 256,
    device: torch.device | str | None = None,
    progress: ProgressArg = None,
) -> np.ndarray:
    """The maximum over ``dataset`` of each unit's value (as :func:`unit_values` defines it), ``(U,)``.

    The forward pass stops after ``layer``.
    """
    from ..seam import iter_batches

    dev = model_device(model, device)
    u = torch.as_tensor(list(units), dtype=torch.long)
    best = torch.full((len(u),), -math.inf)
    n_batches = (len(dataset) + batch_size - 1) // batch_size
    track = resolve_progress(progress)
    with model_state_guard(model), torch.no_grad():
        model.eval()
        with capture(model, [layer], stop_early=True) as cap:
            for batch in track(iter_batches(dataset, batch_size, model=model, device=dev), total=n_batches, desc=f"data max of layer {layer}"):
                cap.run(batch)
                vals = unit_values(cap[layer][: batch.n], kind, None, position).cpu()  # (B, C)
                check_units([int(v) for v in u], vals.shape[1], layer, "channel" if kind == "channel" else "unit")
                best = torch.maximum(best, vals[:, u].amax(dim=0))
    return best.numpy().astype(np.float64)


# ------------------------------------------------------------------------------------------
# Many units at once
# ------------------------------------------------------------------------------------------


@dataclass(frozen=True, repr=False)
class ActMaxResult(AnalysisResult):
    """Activation maximisation of several units of one layer (see the module docstring).

    Attributes
    ----------
    layer, kind, method, objective
        What was maximised and how.
    units
        ``(U,)`` unit (channel / class) indices.
    activation
        ``(U,)`` value reached by the best restart.
    activation_restarts
        ``(U, R)`` value reached by each restart.
    trace
        ``(steps, U)`` objective at every step for the best restart.
    consistency
        ``(U,)`` mean pairwise cosine similarity of the restarts' final inputs (NaN if R = 1).
    images
        ``(U, *input_shape)`` the best restart's input, in the model's input space.
    restart_images
        ``(U, R, *input_shape)``.
    data_max
        ``(U,)`` max of each unit over the dataset, if data was given.
    class_probability, predicted_class
        For ``kind`` logit/prob: softmax probability of class ``unit`` of the full model's output
        for the best image, and the predicted class.
    intermediate
        ``{step: (U, *input_shape)}`` best-restart images kept at the ``thresholds``.
    parameters
        Every knob used.
    normalization
        The data ``Normalization`` the images are drawn with (Lucid-style images are mapped
        back to the data's range); not saved.
    class_names
        Names of the classes, for the titles of logit / prob grids; not saved.
    model, data
        Description of the model (:func:`layerscope.results.model_description`) and the data
        spec, for ``result.json``.
    """

    layer: str
    kind: str
    method: str
    objective: str
    units: np.ndarray
    activation: np.ndarray
    activation_restarts: np.ndarray
    trace: np.ndarray
    consistency: np.ndarray
    images: np.ndarray
    restart_images: np.ndarray
    data_max: np.ndarray | None = None
    class_probability: np.ndarray | None = None
    predicted_class: np.ndarray | None = None
    intermediate: dict[int, np.ndarray] = field(default_factory=dict)
    parameters: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0
    normalization: Any = None
    class_names: list[str] | None = None
    model: dict[str, Any] | None = None
    data: str | None = None

    analysis = "maximize"
    key_figure = "grid"

    def __repr__(self) -> str:
        return (f"ActMaxResult({self.method}, layer={self.layer!r}, kind={self.kind}, units={len(self.units)}, "
                f"mean_activation={self.metrics['mean_activation']:.4g})" if len(self.units) else
                f"ActMaxResult({self.method}, layer={self.layer!r}, kind={self.kind}, units=0)")

    def unit_records(self) -> list[dict[str, Any]]:
        """One JSON-safe dict per unit (the ``units`` list of ``result.json``)."""

        def f(a: np.ndarray | None, i: int) -> float | None:
            if a is None:
                return None
            v = float(a[i])
            return None if math.isnan(v) else v

        out = []
        for i, u in enumerate(self.units.tolist()):
            dm = f(self.data_max, i)
            out.append(
                {
                    "unit": int(u),
                    "activation": float(self.activation[i]),
                    "activation_restarts": [float(v) for v in self.activation_restarts[i]],
                    "trace": [round(float(v), 6) for v in self.trace[:, i]],
                    "consistency": f(self.consistency, i),
                    "data_max": dm,
                    "exceeds_data_max": None if dm is None else bool(self.activation[i] > dm),
                    "class_probability": f(self.class_probability, i),
                    "predicted_class": None if self.predicted_class is None else int(self.predicted_class[i]),
                }
            )
        return out

    @property  # type: ignore[override]
    def metrics(self) -> dict[str, Any]:
        """Summary numbers for ``result.json``."""
        cons = self.consistency[~np.isnan(self.consistency)] if self.consistency.size else self.consistency
        m: dict[str, Any] = {
            "n_units": int(len(self.units)),
            "mean_activation": float(np.mean(self.activation)) if len(self.units) else None,
            "mean_consistency": float(np.mean(cons)) if cons.size else None,
            "seconds": round(self.seconds, 3),
        }
        if self.data_max is not None:
            m["fraction_exceeding_data_max"] = float(np.mean(self.activation > self.data_max))
        if self.class_probability is not None:
            m["min_class_probability"] = float(np.min(self.class_probability))
            m["fraction_classified_as_target"] = float(np.mean(self.predicted_class == self.units))
        return m

    def to_dict(self) -> dict[str, Any]:
        return {
            "analysis": self.analysis,
            "layer": self.layer,
            "kind": self.kind,
            "method": self.method,
            "objective": self.objective,
            "parameters": self.parameters,
            "metrics": self.metrics,
            "units": self.unit_records(),
        }

    def _figure_specs(self) -> list[tuple[str, Figure, str, str]]:
        from .plots import plot_grid, plot_traces

        grid = plot_grid(self, normalization=self.normalization, class_names=self.class_names)
        return [
            ("grid", grid, f"Activation maximisation of {self.layer} ({self.method})",
             f"{self.objective}: the input that maximises each unit; titles give unit and value reached"
             + (" and the model's probability of that class." if self.class_probability is not None else ".")),
            ("traces", plot_traces(self), "Objective over the steps", "One line per unit (best restart)."),
        ]

    def _write(self, d: Path) -> None:
        """Into ``d``: the folder of ``layerscope maximize``: ``grid.png``, ``traces.png``,
        ``units/unit_XXXX.png``, ``arrays.npz``, ``intermediate.npz`` (if any) and ``result.json``."""
        from .._io import atomic_path
        from ..results import write_figures, write_result
        from .plots import save_unit_images

        d.mkdir(parents=True, exist_ok=True)
        figures = write_figures(d, self._figure_specs(), tight=False)
        paths = save_unit_images(self, d / "units", normalization=self.normalization)
        arrays = {
            "units": self.units, "activation": self.activation, "activation_restarts": self.activation_restarts,
            "trace": self.trace, "consistency": self.consistency, "images": self.images,
            "restart_images": self.restart_images,
        }
        for k in ("data_max", "class_probability", "predicted_class"):
            if getattr(self, k) is not None:
                arrays[k] = getattr(self, k)
        with atomic_path(d / "arrays.npz") as tmp:
            with open(tmp, "wb") as fh:
                np.savez(fh, **arrays)  # type: ignore[arg-type]  # numpy stubs match **arrays against allow_pickle: bool
        if self.intermediate:
            with atomic_path(d / "intermediate.npz") as tmp:
                with open(tmp, "wb") as fh:
                    np.savez(fh, **{f"step_{k}": v for k, v in self.intermediate.items()})  # type: ignore[arg-type]  # numpy stubs match **arrays against allow_pickle: bool
        doc = self.to_dict()
        units = doc.pop("units")
        for rec, p in zip(units, paths):
            rec["image"] = p.relative_to(d).as_posix()
        write_result(d, "maximize", **{k: v for k, v in doc.items() if k != "analysis"}, units=units,
                     model=self.model, data=self.data, figures=figures)

    @classmethod
    def load(cls, out_dir: str | Path) -> "ActMaxResult":
        """Read a folder written by :meth:`save` (or ``layerscope maximize``)."""
        from ..results import read_result

        d = Path(out_dir)
        doc = read_result(d)
        z = np.load(d / "arrays.npz")
        inter: dict[int, np.ndarray] = {}
        if (d / "intermediate.npz").exists():
            zi = np.load(d / "intermediate.npz")
            inter = {int(k.split("_", 1)[1]): zi[k] for k in zi.files}
        opt = {k: z[k] for k in ("data_max", "class_probability", "predicted_class") if k in z.files}
        return cls(
            layer=doc["layer"], kind=doc["kind"], method=doc["method"], objective=doc["objective"],
            units=z["units"], activation=z["activation"], activation_restarts=z["activation_restarts"],
            trace=z["trace"], consistency=z["consistency"], images=z["images"], restart_images=z["restart_images"],
            intermediate=inter, parameters=doc.get("parameters", {}),
            seconds=float(doc.get("metrics", {}).get("seconds", 0.0)), model=doc.get("model"), data=doc.get("data"),
            **opt,
        )


def _cosine_consistency(x: np.ndarray) -> np.ndarray:
    """``x`` ``(U, R, D)`` -> ``(U,)`` mean pairwise cosine similarity over the R restarts."""
    u, r = x.shape[:2]
    if r < 2:
        return np.full(u, np.nan)
    v = x.reshape(u, r, -1).astype(np.float64)
    v = v / np.maximum(np.linalg.norm(v, axis=2, keepdims=True), 1e-12)
    sim = np.einsum("urd,usd->urs", v, v)
    off = sim.sum(axis=(1, 2)) - np.trace(sim, axis1=1, axis2=2)
    return off / (r * (r - 1))




Units_t = Sequence[int] | torch.Tensor


def make_unit_objective(layer: str, kind: str, units: Units_t, position: Sequence[int] | None = None) -> Objective:
    """The per-image objective for ``kind`` (``neuron``, ``channel``, ``logit``, ``prob``)."""
    if kind == "neuron":
        return neuron(layer, units, position)
    if kind == "channel":
        return channel(layer, units)
    if kind == "logit":
        return class_logit(layer, units)
    if kind == "prob":
        return class_prob(layer, units)
    raise ParameterError(f"objective must be 'neuron', 'channel', 'logit' or 'prob'; got {kind!r}.")


def maximize(
    model: nn.Module,
    layer: str,
    units: Sequence[int] | str = "all",
    *,
    kind: str | None = None,
    method: Literal["erhan", "lucid"] = "erhan",
    steps: int | None = None,
    restarts: int = 1,
    rho: float | None = None,
    lr: float | None = None,
    position: Sequence[int] | None = None,
    input_shape: Sequence[int] | None = None,
    data: Any = None,
    normalization: Any = None,
    param: str | None = None,
    decorrelate: bool | None = None,
    transforms: Sequence[Transform] | None = None,
    optimizer: Literal["adam", "sgd"] | None = None,
    l2: float = 0.0,
    tv: float = 0.0,
    blur_every: int = 0,
    blur_sigma: float = 0.5,
    diversity_weight: float = 0.0,
    thresholds: Iterable[int] = (),
    batch_size: int = 256,
    data_max: bool = True,
    random_state: RandomState = 0,
    device: torch.device | str | None = None,
    model_info: dict[str, Any] | None = None,
    data_spec: str | None = None,
    progress: ProgressArg = None,
) -> ActMaxResult:
    """Find, for every unit of ``layer``, the input that maximises it; all units in one batch.

    Parameters
    ----------
    model
        Any ``nn.Module``; left unchanged.
    layer
        Dotted layer name.
    units
        ``"all"`` or unit (channel / class) indices.
    kind
        ``"neuron"`` (a unit; at ``position`` — default the centre — for conv maps), ``"channel"``
        (mean over the map), ``"logit"``, ``"prob"`` (softmax over the layer). Default
        (``None`` or ``"auto"``): ``"channel"`` for conv maps, ``"logit"`` for the layer whose
        output is the model's output, ``"neuron"`` for other flat layers.
    method
        ``"erhan"``: pixel parameterisation, plain gradient ascent (SGD, no momentum), projection
        onto ``||x|| = rho`` after every step (Erhan et al. 2009). ``"lucid"``: FFT
        parameterisation (decorrelated colour for RGB), values squashed into the data's range,
        robustness transforms for images, Adam (Olah et al. 2017). Every default can be overridden.
    steps
        Gradient steps (default 200 for erhan, 256 for lucid).
    restarts
        Random restarts per unit; restart consistency is their mean pairwise cosine similarity.
    rho
        Sphere radius for ``erhan``. Default: the median norm of the inputs in ``data``, else
        ``sqrt(D)`` (unit root-mean-square per input value). Must be > 0.
    lr
        Step size. Default for ``erhan``: per unit, see Notes; ``0.05`` for ``lucid`` (Adam).
    data
        A dataset: gives the input shape if the model has none, the default ``rho``, the colour
        statistics, the value range (its ``normalization``) and, with ``data_max=True``, each
        unit's maximum over the data.
    normalization
        A data ``Normalization`` (default: ``data.normalization`` or ``model.normalization``);
        for ``lucid``, images are squashed into the normalised image of [0, 1].
    thresholds
        Steps at which the images are kept (``ActMaxResult.intermediate``).
    batch_size
        Images per batch (units x restarts are split into batches of whole units).
    random_state
        Seeds the initialisation and transforms; the same seed gives the same result on CPU.
    model_info
        Description of the model for ``result.json`` (default: :func:`layerscope.results.model_description`).
    data_spec
        The data spec, recorded in ``result.json``.

    Notes
    -----
    Erhan et al. use plain gradient ascent. The gradient's scale differs by orders of magnitude
    between units and layers, so the default step for ``erhan`` is ``lr = 0.1`` times ``rho``
    divided by the gradient's norm at the first step (per image, then kept fixed): still plain,
    fixed-step gradient ascent, with a step size that does not depend on the unit's scale. Pass
    ``lr`` to use one fixed step for every unit instead.
    """
    _refuse_inference_mode("Activation maximization")
    t0 = time.perf_counter()
    if method not in ("erhan", "lucid"):
        raise ParameterError(f"method must be 'erhan' or 'lucid'; got {method!r}.")
    if restarts < 1:
        raise ParameterError(f"restarts must be >= 1; got {restarts}.")
    if batch_size < 1:
        raise ParameterError(f"batch_size must be >= 1; got {batch_size}.")
    if rho is not None and not (rho > 0 and math.isfinite(rho)):
        raise ParameterError(f"rho (the radius of the sphere ||x|| = rho) must be a positive number; got {rho}.")
    resolve_layer(model, layer)
    shape = resolve_input_shape(model, input_shape, data)
    dev = model_device(model, device)
    out_shape = layer_units(model, layer, shape, dev)
    n_units = out_shape[0] if out_shape else 1
    if kind is None or kind == "auto":
        if len(out_shape) > 1:
            kind = "channel"
        else:
            kind = "logit" if is_output_layer(model, layer, shape, dev) else "neuron"
    if kind not in ("neuron", "channel", "logit", "prob"):
        raise ParameterError(f"kind must be 'neuron', 'channel', 'logit' or 'prob'; got {kind!r}.")
    if isinstance(units, str):
        if units != "all":
            raise ParameterError(f"units must be 'all' or a list of indices; got {units!r}.")
        unit_list = list(range(n_units))
    else:
        unit_list = [int(u) for u in units]
        if not unit_list:
            raise ParameterError("units is empty; give at least one index or 'all'.")
    what = "class" if kind in ("logit", "prob") else ("channel" if len(out_shape) > 1 else "unit")
    check_units(unit_list, n_units, layer, what)
    if position is not None and len(out_shape) > 1:
        spatial = out_shape[1:]
        if len(position) != len(spatial) or any(not 0 <= int(p) < s for p, s in zip(position, spatial)):
            raise ParameterError(
                f"position {tuple(position)} does not fit layer {layer!r}'s spatial shape {tuple(spatial)}."
            )
    if normalization is None:
        normalization = getattr(data, "normalization", None) or getattr(model, "normalization", None)
    x_data = getattr(data, "x", None) if data is not None else None
    if x_data is None and data is not None and getattr(data, "tensors", None):
        x_data = data.tensors[0]

    if steps is not None and steps < 0:
        raise ParameterError(f"steps must be >= 0; got {steps}.")
    # --- per-method settings -------------------------------------------------------------
    if method == "erhan":
        if rho is None:
            if isinstance(x_data, torch.Tensor) and len(x_data):
                rho = float(np.median(x_data[:10000].flatten(1).norm(dim=1).double().cpu().numpy()))
            else:
                rho = math.sqrt(math.prod(shape))
        steps = 200 if steps is None else steps
        param_kind = param or "pixel"
        if param_kind != "pixel":
            raise ParameterError("method='erhan' optimises pixels directly; use method='lucid' for param='fft'.")
        opt_name = optimizer or "sgd"
        deco = False
        vrange = None
        tfs: list[Transform] = list(transforms or [])
        init_std = 1.0
        use_lr = lr
    else:
        steps = 256 if steps is None else steps
        param_kind = param or "fft"
        opt_name = optimizer or "adam"
        is_rgb = len(shape) == 3 and shape[0] == 3
        deco = is_rgb if decorrelate is None else decorrelate
        vrange = value_range_from_normalization(normalization, shape) if normalization is not None else None
        if transforms is None:
            tfs = standard_transforms(min(shape[1:])) if len(shape) == 3 and min(shape[1:]) >= 8 else []
        else:
            tfs = list(transforms)
        init_std = 0.01
        use_lr = 0.05 if lr is None else lr
        rho = None
    cmat = None
    if deco and isinstance(x_data, torch.Tensor) and x_data.ndim == 4 and x_data.shape[1] == 3:
        cmat = color_matrix_from_data(x_data[:2000])

    # --- batches of whole units ------------------------------------------------------------
    gen = _generator(random_state)
    per_batch = max(1, batch_size // restarts)
    chunks = [unit_list[i : i + per_batch] for i in range(0, len(unit_list), per_batch)]
    total_steps = steps * len(chunks)
    track = resolve_progress(progress)
    step_iter = iter(track(range(total_steps), total=total_steps, desc=f"maximize layer {layer}"))

    def chunk_tracker(it: Iterable[Any], total: int | None = None, desc: str = "", **kwargs: Any) -> Iterable[Any]:
        for item in it:
            next(step_iter, None)
            yield item

    U, R = len(unit_list), restarts
    act_r = np.zeros((U, R), dtype=np.float64)
    trace_all = np.zeros((steps, U, R), dtype=np.float32)
    imgs_all = np.zeros((U, R, *shape), dtype=np.float32)
    inter_all: dict[int, np.ndarray] = {}
    keep = sorted({int(t) for t in thresholds if 0 < int(t) <= steps})
    row = 0
    for chunk in chunks:
        b = len(chunk) * R
        per_image_units = torch.as_tensor(chunk, dtype=torch.long).repeat_interleave(R)
        obj = make_unit_objective(layer, kind, per_image_units, position)
        if diversity_weight and R > 1:
            obj = obj + diversity_weight * diversity(layer, group_size=R)
        seed = int(torch.randint(0, 2**62, (1,), generator=gen))
        if method == "erhan":
            assert rho is not None  # set above for method='erhan' (from the data or the input size)
            g = torch.Generator()
            g.manual_seed(seed)
            init = torch.randn((b, *shape), generator=g) * init_std
            init = init * (float(rho) / init.flatten(1).norm(dim=1).clamp_min(1e-12)).view(-1, *([1] * len(shape)))
            per_image_lr = None if use_lr is not None else _auto_erhan_lr(model, obj, init.to(dev), float(rho))
            p_arg: str | ImageParam = _erhan_param(b, shape, init, dev, per_image_lr)
            step_lr = 1.0 if use_lr is None else float(use_lr)
        else:
            assert use_lr is not None  # method='lucid' defaults lr to 0.05 above
            p_arg, step_lr = param_kind, float(use_lr)
        rend = render(
            model, obj, batch=b, input_shape=shape, param=p_arg, decorrelate=deco, color_matrix=cmat,
            value_range=vrange, transforms=tfs, steps=steps, optimizer=opt_name, lr=step_lr, l2=l2, tv=tv,
            blur_every=blur_every, blur_sigma=blur_sigma, rho=rho, init_std=init_std, thresholds=keep,
            random_state=seed, device=dev, progress=chunk_tracker,
        )
        n = len(chunk)
        act_r[row : row + n] = rend.values.reshape(n, R)
        trace_all[:, row : row + n] = rend.trace.reshape(steps, n, R)
        imgs_all[row : row + n] = rend.images.reshape(n, R, *shape)
        for k, v in rend.intermediate.items():
            inter_all.setdefault(k, np.zeros((U, R, *shape), dtype=np.float32))[row : row + n] = v.reshape(n, R, *shape)
        row += n
    for _ in step_iter:  # finish the bar
        pass
    best = act_r.argmax(axis=1)
    idx = np.arange(U)
    images = imgs_all[idx, best]
    result_kw: dict[str, Any] = {}
    if kind in ("logit", "prob"):
        probs = _class_probabilities(model, images, dev)
        result_kw["class_probability"] = probs[idx, np.asarray(unit_list)]
        result_kw["predicted_class"] = probs.argmax(axis=1)
    dmax = None
    if data is not None and data_max:
        dmax = unit_data_max(model, data, layer, unit_list, kind, position, device=dev)
    from ..results import model_description

    names = getattr(model, "classes", None) or getattr(data, "classes", None)
    params = {
        "layer": layer, "units": unit_list, "kind": kind, "method": method, "steps": steps, "restarts": R,
        "rho": rho, "lr": use_lr if isinstance(use_lr, (int, float)) else "auto (0.1 * rho / ||grad at step 0||)",
        "position": list(position) if position is not None else None, "input_shape": list(shape),
        "param": param_kind, "decorrelate": deco, "value_range": None if vrange is None else "normalised [0, 1]",
        "transforms": len(tfs), "optimizer": opt_name, "l2": l2, "tv": tv, "blur_every": blur_every,
        "blur_sigma": blur_sigma, "diversity_weight": diversity_weight, "thresholds": keep,
        "batch_size": batch_size, "random_state": random_state if isinstance(random_state, int) else None,
    }
    return ActMaxResult(
        layer=layer, kind=kind, method=method,
        objective=make_unit_objective(layer, kind, unit_list, position).name,
        units=np.asarray(unit_list, dtype=np.int64),
        activation=act_r[idx, best], activation_restarts=act_r, trace=trace_all[:, idx, best],
        consistency=_cosine_consistency(imgs_all), images=images, restart_images=imgs_all, data_max=dmax,
        intermediate={k: v[idx, best] for k, v in inter_all.items()}, parameters=params,
        seconds=time.perf_counter() - t0, normalization=normalization,
        class_names=[str(c) for c in names] if names else None,
        model=model_info if model_info is not None else model_description(model), data=data_spec, **result_kw,
    )


def _erhan_param(batch: int, shape: tuple[int, ...], init: torch.Tensor, dev: torch.device, lr: torch.Tensor | None) -> ImageParam:
    """Pixel parameter for Erhan's method; a per-image step size ``lr`` scales each image's gradient.

    With SGD at learning rate 1 the update is then exactly ``x_i += lr_i * grad_i``.
    """
    p = make_param("pixel", batch, shape, init=init, device=dev)
    if lr is not None:
        scale = lr.to(dev).view(-1, *([1] * len(shape)))
        p.params[0].register_hook(lambda g: g * scale)
    return p


def _auto_erhan_lr(model: nn.Module, obj: Objective, x0: torch.Tensor, rho: float) -> torch.Tensor:
    """Per-image step ``0.1 * rho / ||grad_x obj(x0)||`` (fixed afterwards)."""
    x = x0.clone().requires_grad_(True)
    with model_state_guard(model), torch.enable_grad():
        model.eval()
        for q in model.parameters():
            q.requires_grad_(False)
        with capture(model, list(obj.layers), detach=False, stop_early=True) as cap:
            cap.run(x)
            vals = obj({n: cap[n] for n in obj.layers})
            (g,) = torch.autograd.grad(vals.sum(), x, allow_unused=True)
    if g is None:
        return torch.ones(x.shape[0])
    gn = g.flatten(1).norm(dim=1)
    lr = torch.where(gn > 0, 0.1 * rho / gn.clamp_min(1e-30), torch.full_like(gn, 0.1 * rho))
    return lr.detach().cpu()


def _class_probabilities(model: nn.Module, images: np.ndarray, dev: torch.device) -> np.ndarray:
    """Softmax of the full model's output for ``images``, ``(U, n_classes)``."""
    from ..capture import first_tensor, run_model

    with model_state_guard(model), torch.no_grad():
        model.eval()
        out = first_tensor(run_model(model, torch.as_tensor(images).to(dev)))
    if out is None or out.ndim != 2:
        raise InputShapeError("class probabilities need a model that returns logits of shape (N, n_classes).")
    return torch.softmax(out.float(), dim=1).cpu().numpy()
