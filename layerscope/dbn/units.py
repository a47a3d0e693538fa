"""Greedy pre-training as an analysis, and Erhan et al.'s views of DBN units.

* :func:`pretrain_dbn` — fit a :class:`~.rbm.DBN` and return a :class:`~.results.DBNPretraining`
  (reconstruction error per layer per epoch; the weights are saved with the result).
* :func:`sample_units` — the *sampling* view of Erhan, Bengio, Courville & Vincent (2009): unit
  ``u`` of hidden layer ``j`` clamped on (``h_u = 1``) in the top RBM ``j``, Gibbs sampling of that
  RBM with the other hidden units free, then a mean-field down-pass (``E[v | h]`` of each RBM
  below) to the input; the mean over chains is the unit's picture.
* :func:`linear_views` — the *linear combination* view: the product of the weight matrices
  ``W_1 W_2 ... W_j[:, u]`` (every weight, not only the strongest ones as in the paper).
* :func:`dbn_units` — the three views side by side for units of layers 1-3, with the activation
  reached by :func:`layerscope.featurevis.maximize` (norm constraint ``||x|| = rho``, Erhan's method,
  on the DBN's mean-field up-pass) and the agreement of the views (Pearson correlation per unit).

``result.json`` of ``dbn sample`` (``analysis = "dbn_units"``)::

    parameters: {layers, units: {layer: [...]}, image_shape, n_chains, n_gibbs, init, steps,
                 restarts, rho, random_state}
    metrics: {"layers": [{layer, n_units, mean_activation, mean_data_max, mean_consistency,
                          corr_maximize_sampling, corr_maximize_sampling_contrast, corr_maximize_linear,
                          corr_sampling_linear}]}
    (``..._contrast``: the sampling views minus their mean over the layer's units, which removes the
    average digit every chain drifts to)
    arrays: maximize_<j>, sampling_<j>, linear_<j>: (U, D) per layer j
    figures: units_layer<j>.png (rows = views, columns = units)
"""

from __future__ import annotations

import logging
from typing import Any, Sequence

import numpy as np
import torch

from .._progress import ProgressArg
from ..exceptions import ParameterError
from .rbm import DBN, _check_int, _generator, as_matrix
from .results import DBNPretraining, DBNUnits

__all__ = ["pretrain_dbn", "sample_units", "linear_views", "dbn_units"]

log = logging.getLogger(__name__)


def pretrain_dbn(
    data: Any,
    sizes: Sequence[int],
    *,
    visible: str = "binary",
    epochs: int | Sequence[int] = 5,
    lr: float | Sequence[float | None] | None = None,
    random_state: int = 0,
    data_spec: str | None = None,
    progress: ProgressArg = None,
    **rbm_options: Any,
) -> DBNPretraining:
    """Greedy layer-wise CD pre-training of a DBN on ``data`` (rows flattened).

    Parameters
    ----------
    data
        ``(N, ...)`` tensor / array or a dataset with ``.x``.
    sizes
        Hidden layer sizes (the input size comes from the data), e.g. ``[500, 500, 2000]``
        (Hinton et al. 2006's MNIST DBN).
    visible, epochs, lr, random_state, rbm_options
        See :class:`~.rbm.DBN` and :meth:`~.rbm.DBN.fit`.

    Returns
    -------
    DBNPretraining
        ``metrics["history"]`` per layer per epoch; ``result.dbn`` the trained DBN.
    """
    x = as_matrix(data)
    dbn = DBN([x.shape[1], *sizes], visible=visible, random_state=random_state)  # type: ignore[arg-type]
    dbn.fit(x, epochs=epochs, lr=lr, random_state=random_state, progress=progress, **rbm_options)
    hist = dbn.history_
    # a layer whose units are all ~0 (or ~1) on the data carries nothing up: say so in the metrics
    activity = [float(a.mean()) for a in dbn.up(x[:2000])]
    shape = list(getattr(data, "input_shape", None) or list(np.shape(getattr(data, "x", data))[1:]))
    doc = {
        "model": {"class": "DBN", **dbn.config()},
        "data": data_spec,
        "dbn": {**dbn.config(), "input_shape": shape},
        "parameters": {"sizes": list(sizes), "visible": visible, "epochs": epochs, "lr": lr,
                       "random_state": random_state, "n_rows": int(x.shape[0]),
                       **{k: v for k, v in rbm_options.items() if isinstance(v, (int, float, str, bool))}},
        "metrics": {
            "history": hist,
            "final_reconstruction_error": [h[-1]["reconstruction_error"] if h else None for h in hist],
            "mean_activity": activity,
            "falling": [bool(len(h) > 1 and h[-1]["reconstruction_error"] < h[0]["reconstruction_error"]) for h in hist],
        },
    }
    return DBNPretraining(doc, dbn=dbn)


def _check_layer(dbn: DBN, layer: int) -> None:
    _check_int("layer", layer, 1)
    if layer > dbn.depth:
        raise ParameterError(f"layer must be 1..{dbn.depth} (the DBN's hidden layers); got {layer}.")


def _check_units(dbn: DBN, layer: int, units: Sequence[int]) -> list[int]:
    size = dbn.sizes[layer]
    out = [int(u) for u in units]
    bad = [u for u in out if not 0 <= u < size]
    if not out or bad:
        raise ParameterError(f"units of layer {layer} must be in 0..{size - 1}; got {list(units)}.")
    return out


def sample_units(
    dbn: DBN,
    layer: int,
    units: Sequence[int],
    *,
    n_chains: int = 32,
    n_gibbs: int = 100,
    data: Any = None,
    random_state: int | torch.Generator | None = 0,
) -> np.ndarray:
    """Erhan et al.'s sampling view of units of hidden layer ``layer`` (1-based); ``(U, D)``.

    The top RBM is RBM ``layer`` (between hidden layer ``layer - 1``, or the input, and ``layer``).
    Its chains start from the up-pass of random rows of ``data`` (sampled to binary states) or, with
    no data, from Bernoulli(0.5) states (N(0, 1) for Gaussian visibles). At each of ``n_gibbs``
    steps ``h ~ p(h | v)`` with ``h_u`` set to 1, then ``v ~ p(v | h)``. The last step's mean
    ``E[v | h]`` is propagated down with ``E[v | h]`` of each lower RBM, and averaged over the
    ``n_chains`` chains of each unit.
    """
    _check_layer(dbn, layer)
    us = _check_units(dbn, layer, units)
    _check_int("n_chains", n_chains, 1)
    _check_int("n_gibbs", n_gibbs, 1)
    gen = _generator(random_state)
    top = dbn.rbm_list[layer - 1]
    b = len(us) * n_chains
    with torch.no_grad():
        if data is not None:
            x = as_matrix(data, dbn.sizes[0])
            start = x[torch.randint(0, x.shape[0], (b,), generator=gen)]
            v = dbn.up(start)[layer - 2] if layer > 1 else start
            if top.visible == "binary":
                v = torch.bernoulli(v.clamp(0, 1), generator=gen)
        elif top.visible == "binary":
            v = torch.bernoulli(torch.full((b, top.n_visible), 0.5), generator=gen)
        else:
            v = torch.randn(b, top.n_visible, generator=gen)
        rows = torch.arange(b)
        cols = torch.tensor(us).repeat_interleave(n_chains)
        mean = v
        for _ in range(n_gibbs):
            _, h = top.sample_h(v, gen)
            h[rows, cols] = 1.0
            mean, v = top.sample_v(h, gen)
        img = dbn.down(mean, layer - 1) if layer > 1 else mean
    return img.reshape(len(us), n_chains, -1).mean(1).numpy()


def linear_views(dbn: DBN, layer: int, units: Sequence[int]) -> np.ndarray:
    """``W_1 W_2 ... W_layer[:, units]``: each unit as a linear combination of the lower filters; ``(U, D)``."""
    _check_layer(dbn, layer)
    us = _check_units(dbn, layer, units)
    with torch.no_grad():
        m = dbn.rbm_list[layer - 1].W[:, us]
        for rbm in reversed(dbn.rbm_list[: layer - 1]):
            m = rbm.W @ m
    return m.T.numpy().copy()


def _corr(a: np.ndarray, b: np.ndarray) -> float:
    """Mean over units of the Pearson correlation of two views (rows)."""
    a = a - a.mean(1, keepdims=True)
    b = b - b.mean(1, keepdims=True)
    den = np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1)
    ok = den > 0
    return float(np.mean((a * b).sum(1)[ok] / den[ok])) if ok.any() else float("nan")


def dbn_units(
    dbn: DBN,
    *,
    layers: Sequence[int] = (1, 2, 3),
    units: Sequence[int] | dict[int, Sequence[int]] = tuple(range(8)),
    image_shape: Sequence[int] = (1, 28, 28),
    data: Any = None,
    n_chains: int = 32,
    n_gibbs: int = 100,
    steps: int = 200,
    restarts: int = 3,
    rho: float | None = None,
    random_state: int = 0,
    progress: ProgressArg = None,
) -> DBNUnits:
    """Activation maximization, sampling and linear combination for units of DBN layers (Erhan et al. 2009).

    Parameters
    ----------
    dbn
        A trained DBN (left unchanged: maximization runs on a copy, :meth:`DBN.to_mlp`).
    layers
        Hidden layers (1-based).
    units
        Unit indices for every layer, or ``{layer: units}``.
    image_shape
        Shape of one input, for the figures and for ``maximize`` (``(1, 28, 28)`` for MNIST).
    data
        Rows of the training data: start of the sampling chains, ``rho`` (median norm) and each
        unit's maximum over the data for ``maximize``.
    n_chains, n_gibbs
        Chains per unit and Gibbs steps of :func:`sample_units`.
    steps, restarts, rho
        Of :func:`layerscope.featurevis.maximize` (``method="erhan"``: plain gradient ascent, projection
        onto ``||x|| = rho`` after every step).

    Returns
    -------
    DBNUnits
    """
    from ..data.base import ArrayDataset, Normalization
    from ..featurevis import maximize

    shape = tuple(int(s) for s in image_shape)
    if int(np.prod(shape)) != dbn.sizes[0]:
        raise ParameterError(f"image_shape {shape} has {int(np.prod(shape))} values; the DBN's input has {dbn.sizes[0]}.")
    per_layer = {int(j): list(units[j]) for j in units} if isinstance(units, dict) else {int(j): list(units) for j in layers}
    for j in layers:
        _check_layer(dbn, int(j))
        if int(j) not in per_layer:
            raise ParameterError(f"No units given for layer {j}; units has layers {sorted(per_layer)}.")
        per_layer[int(j)] = _check_units(dbn, int(j), per_layer[int(j)])
    ds = None
    if data is not None:
        x = as_matrix(data, dbn.sizes[0])
        ds = ArrayDataset(x.reshape(-1, *shape), torch.zeros(x.shape[0], dtype=torch.long), classes=["data"],
                          normalization=Normalization(description="as the DBN's input"), name="dbn data")
    net = dbn.to_mlp(None, shape)
    arrays: dict[str, np.ndarray] = {}
    rows = []
    for j in layers:
        us = per_layer[int(j)]
        res = maximize(net, f"sig{j}", us, kind="neuron", method="erhan", steps=steps, restarts=restarts, rho=rho,
                       input_shape=shape, data=ds, data_max=ds is not None, random_state=random_state, progress=progress)
        mx = np.asarray(res.images).reshape(len(us), -1)
        sp = sample_units(dbn, int(j), us, n_chains=n_chains, n_gibbs=n_gibbs, data=data, random_state=random_state)
        ln = linear_views(dbn, int(j), us)
        arrays[f"maximize_{j}"], arrays[f"sampling_{j}"], arrays[f"linear_{j}"] = mx, sp, ln
        cons = np.asarray(res.consistency)
        rows.append({
            "layer": int(j), "n_units": len(us),
            "mean_activation": float(np.mean(res.activation)),
            "mean_data_max": None if res.data_max is None else float(np.mean(res.data_max)),
            "mean_consistency": float(np.nanmean(cons)) if np.isfinite(cons).any() else None,
            "corr_maximize_sampling": _corr(mx, sp),
            "corr_maximize_sampling_contrast": _corr(mx, sp - sp.mean(0, keepdims=True)) if len(us) > 1 else None,
            "corr_maximize_linear": _corr(mx, ln),
            "corr_sampling_linear": _corr(sp, ln),
            "rho": res.parameters.get("rho"),
        })
        log.info("DBN layer %s: %s", j, rows[-1])
    doc = {
        "model": {"class": "DBN", **dbn.config()},
        "parameters": {"layers": [int(j) for j in layers], "units": {str(j): per_layer[int(j)] for j in layers},
                       "image_shape": list(shape), "n_chains": n_chains, "n_gibbs": n_gibbs,
                       "init": "data up-pass" if data is not None else "random", "steps": steps, "restarts": restarts,
                       "rho": rho, "random_state": random_state},
        "metrics": {"layers": rows},
    }
    return DBNUnits(doc, arrays)
