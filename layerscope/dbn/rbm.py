"""Restricted Boltzmann machines and deep belief networks, trained with contrastive divergence.

An RBM has visible units ``v`` (``n_visible``), hidden units ``h`` (``n_hidden``), weights ``W``
``(n_visible, n_hidden)``, visible bias ``b`` and hidden bias ``c``. Two kinds:

* **Bernoulli-Bernoulli** (``visible="binary"``), inputs in ``[0, 1]`` (e.g. MNIST pixels / 255)::

      E(v, h) = -b.v - c.h - v W h
      p(h_j = 1 | v) = sigmoid(c_j + v W_:j)          p(v_i = 1 | h) = sigmoid(b_i + W_i: h)
      F(v) = -b.v - sum_j softplus(c_j + v W_:j)        (free energy, h summed out)

* **Gaussian-Bernoulli with unit-variance visibles** (``visible="gaussian"``), for real inputs
  standardised to zero mean and unit variance per feature (e.g. filterbank frames)::

      E(v, h) = |v - b|^2 / 2 - c.h - v W h
      p(h_j = 1 | v) = sigmoid(c_j + v W_:j)          p(v | h) = N(b + W h, I)
      F(v) = |v - b|^2 / 2 - sum_j softplus(c_j + v W_:j)

Training follows Hinton's "A practical guide to training restricted Boltzmann machines" (UTML
TR 2010-003). The log-likelihood gradient of CD-k is, by definition, the positive minus the
negative statistics, written here directly (no autograd)::

      dW = <v h>_data - <v h>_model,   db = <v>_data - <v>_model,   dc = <h>_data - <h>_model

with the data term from ``v0`` and ``p(h | v0)`` and the model term from the chain's last visible
state ``vk`` and ``p(h | vk)`` (hidden *probabilities* in both terms, as the guide recommends, §3).
The chain starts from the hidden sample ``h0 ~ p(h | v0)`` (CD-k) or from a persistent chain that
is carried over from one mini-batch to the next (PCD, Tieleman 2008). The update itself is
``torch.optim.SGD`` with momentum and weight decay on ``W`` only (guide §9, §10), ``p.grad`` set to
minus the statistics.

Knobs of the papers, written here so the defaults can be compared (items marked *check* are from
memory of the papers and were not verified against the text):

* Mohamed, Hinton & Penn (ICASSP 2012) and Mohamed, Dahl & Hinton (IEEE TASLP 2012): a
  Gaussian-Bernoulli RBM on standardised frames (a context window of filterbank / MFCC frames)
  first, Bernoulli-Bernoulli RBMs above, all trained with CD-1; mini-batches of 128, momentum 0.5
  then 0.9, weight cost 0.0002; learning rate 0.002 for the GRBM and 0.02 for the BB-RBMs,
  225 epochs for the GRBM and 75 for each BB-RBM (*check*); hidden layers of 1024-3072 units,
  up to 8 hidden layers; then back-propagation fine-tuning with a softmax output.
* Hinton's guide: weights initialised from N(0, 0.01^2), hidden biases 0, visible biases
  log(p / (1 - p)) of the training data's mean ``p`` (binary visibles); learning rate such that
  updates are about 1e-3 of the weights; momentum 0.5 for the first 5 epochs, then 0.9;
  weight cost 1e-4 to 1e-2 times the learning rate's scale (0.0002 in the MNIST DBN code); the
  reconstruction of visible units is their probability (binary) or their mean (Gaussian).
"""

from __future__ import annotations

import math
from collections import OrderedDict
from typing import Any, Literal, Sequence, cast

import numpy as np
import torch
from torch import nn

from .._progress import ProgressArg, resolve_progress
from ..exceptions import DataError, InputShapeError, ParameterError

__all__ = ["RBM", "DBN", "DBNNet", "as_matrix"]

Visible = Literal["binary", "gaussian"]


def _generator(random_state: int | torch.Generator | None) -> torch.Generator:
    if isinstance(random_state, torch.Generator):
        return random_state
    if random_state is not None and (isinstance(random_state, bool) or not isinstance(random_state, (int, np.integer))):
        raise ParameterError(f"random_state must be an int, a torch.Generator or None; got {random_state!r}.")
    gen = torch.Generator()
    gen.manual_seed(int(random_state) if random_state is not None else int(torch.randint(0, 2**31 - 1, ()).item()))
    return gen


def as_matrix(data: Any, n_visible: int | None = None, *, what: str = "data") -> torch.Tensor:
    """``(N, D)`` float32 tensor from a tensor, an array or a dataset with ``.x`` (flattened per row).

    Raises :class:`~layerscope.exceptions.InputShapeError` when ``D != n_visible`` and
    :class:`~layerscope.exceptions.DataError` for an empty or non-finite input.
    """
    x = getattr(data, "x", data)
    if isinstance(x, np.ndarray):
        x = torch.from_numpy(np.ascontiguousarray(x))
    if not isinstance(x, torch.Tensor):
        raise DataError(f"{what} must be a tensor, a NumPy array or a dataset with .x; got {type(data).__name__}.")
    if x.ndim == 0 or x.shape[0] == 0:
        raise DataError(f"{what} is empty (shape {tuple(x.shape)}); pass at least one row.")
    m = x.detach().reshape(x.shape[0], -1).to(torch.float32)
    if n_visible is not None and m.shape[1] != n_visible:
        raise InputShapeError(
            f"{what} has {m.shape[1]} values per row (shape {tuple(x.shape)}); the RBM has {n_visible} visible units. "
            "Pass rows of that size."
        )
    if not bool(torch.isfinite(m).all()):
        raise DataError(f"{what} holds NaN or infinite values; clean or standardise it first.")
    return m


class RBM(nn.Module):
    """A restricted Boltzmann machine (Bernoulli-Bernoulli or unit-variance Gaussian-Bernoulli).

    Parameters
    ----------
    n_visible, n_hidden : int
    visible : {"binary", "gaussian"}
        Bernoulli visibles for inputs in [0, 1]; Gaussian visibles with unit variance for real
        inputs standardised per feature (Mohamed et al.'s first layer).
    random_state : int, torch.Generator or None
        Seeds the initial weights (N(0, 0.01^2), Hinton's guide §8).

    Attributes
    ----------
    W : (n_visible, n_hidden) parameter
    vbias : (n_visible,) parameter
    hbias : (n_hidden,) parameter
    history_ : list of dict
        After :meth:`fit`: per epoch ``{"epoch", "reconstruction_error", "free_energy_gap"}``
        (the mean squared error between ``v0`` and ``E[v | h0]``, ``h0 ~ p(h | v0)``, over every
        value of every training row; and the mean free energy of the data minus that of the
        negative samples).
    """

    def __init__(self, n_visible: int, n_hidden: int, visible: Visible = "binary",
                 random_state: int | torch.Generator | None = 0) -> None:
        super().__init__()
        for name, v in (("n_visible", n_visible), ("n_hidden", n_hidden)):
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
                raise ParameterError(f"{name} must be a positive integer; got {v!r}.")
        if visible not in ("binary", "gaussian"):
            raise ParameterError(f"visible must be 'binary' or 'gaussian'; got {visible!r}.")
        self.n_visible = int(n_visible)
        self.n_hidden = int(n_hidden)
        self.visible = visible
        gen = _generator(random_state)
        self.W = nn.Parameter(torch.randn(self.n_visible, self.n_hidden, generator=gen) * 0.01, requires_grad=False)
        self.vbias = nn.Parameter(torch.zeros(self.n_visible), requires_grad=False)
        self.hbias = nn.Parameter(torch.zeros(self.n_hidden), requires_grad=False)
        self.history_: list[dict[str, float]] = []
        self.fitted_ = False

    def extra_repr(self) -> str:
        return f"n_visible={self.n_visible}, n_hidden={self.n_hidden}, visible={self.visible!r}"

    # ------------------------------------------------------------------ conditionals
    def _check(self, v: torch.Tensor, n: int, what: str) -> torch.Tensor:
        if not isinstance(v, torch.Tensor):
            raise DataError(f"{what} must be a torch tensor; got {type(v).__name__}.")
        if v.ndim != 2 or v.shape[1] != n:
            raise InputShapeError(f"{what} must have shape (N, {n}); got {tuple(v.shape)}. Flatten the rows first.")
        return v.to(self.W.dtype)

    def hidden_probs(self, v: torch.Tensor) -> torch.Tensor:
        """``p(h = 1 | v) = sigmoid(c + v W)``; ``v`` (N, n_visible) -> (N, n_hidden)."""
        v = self._check(v, self.n_visible, "v")
        return torch.sigmoid(v @ self.W + self.hbias)

    def visible_mean(self, h: torch.Tensor) -> torch.Tensor:
        """``E[v | h]``: ``sigmoid(b + W h)`` (binary) or ``b + W h`` (Gaussian); (N, n_hidden) -> (N, n_visible)."""
        h = self._check(h, self.n_hidden, "h")
        a = h @ self.W.T + self.vbias
        return torch.sigmoid(a) if self.visible == "binary" else a

    def sample_h(self, v: torch.Tensor, generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """``(p(h | v), h)`` with ``h`` a Bernoulli sample of those probabilities."""
        p = self.hidden_probs(v)
        return p, torch.bernoulli(p, generator=generator)

    def sample_v(self, h: torch.Tensor, generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """``(E[v | h], v)``: a Bernoulli sample (binary) or the mean plus N(0, 1) noise (Gaussian)."""
        m = self.visible_mean(h)
        if self.visible == "binary":
            return m, torch.bernoulli(m, generator=generator)
        return m, m + torch.randn(m.shape, generator=generator, dtype=m.dtype)

    def gibbs(self, v: torch.Tensor, steps: int = 1, generator: torch.Generator | None = None) -> torch.Tensor:
        """``steps`` full Gibbs steps ``v -> h -> v`` (sampled states); returns the last ``v``."""
        _check_int("steps", steps, 1)
        for _ in range(steps):
            _, h = self.sample_h(v, generator)
            _, v = self.sample_v(h, generator)
        return v

    def free_energy(self, v: torch.Tensor) -> torch.Tensor:
        """``F(v)`` per row, (N,): ``-log sum_h exp(-E(v, h))`` (see the module docstring)."""
        v = self._check(v, self.n_visible, "v")
        hidden = nn.functional.softplus(v @ self.W + self.hbias).sum(1)
        if self.visible == "binary":
            return -(v @ self.vbias) - hidden
        return 0.5 * ((v - self.vbias) ** 2).sum(1) - hidden

    def transform(self, data: Any) -> torch.Tensor:
        """Mean-field up-pass of the rows of ``data``: ``p(h = 1 | v)``, (N, n_hidden)."""
        with torch.no_grad():
            return self.hidden_probs(as_matrix(data, self.n_visible))

    # ------------------------------------------------------------------ learning
    def cd_statistics(
        self,
        v0: torch.Tensor,
        k: int = 1,
        generator: torch.Generator | None = None,
        *,
        chain: torch.Tensor | None = None,
        visible_sampling: Literal["mean", "sample"] = "mean",
        h0: torch.Tensor | None = None,
    ) -> dict[str, torch.Tensor]:
        """The CD-k (or PCD-k) gradient of the mean log-likelihood: positive minus negative statistics.

        Parameters
        ----------
        v0 : (N, n_visible)
            The data mini-batch.
        k : int
            Gibbs steps of the negative phase.
        generator
            Random source of every sample drawn.
        chain : (M, n_visible) or None
            PCD: the persistent chain's visible states; the negative phase starts from
            ``h ~ p(h | chain)`` instead of from the data, and its visible states are true samples
            (so the chain is a Markov chain). ``None``: CD-k, started from ``h0 ~ p(h | v0)``.
        visible_sampling : {"mean", "sample"}
            CD-k only: the visible states of the negative chain are their means (Hinton's guide
            §3.2, the default) or samples.
        h0 : (N, n_hidden) or None
            Inject the hidden sample the CD chain starts from (tests; default: drawn from
            ``p(h | v0)``).

        Returns
        -------
        dict
            ``W`` (n_visible, n_hidden), ``vbias``, ``hbias``: ``<.>_data - <.>_model`` averaged
            over the rows; ``v_neg``: the negative visible states (the next chain for PCD);
            ``reconstruction``: ``E[v | h0]`` for the data rows.
        """
        _check_int("k", k, 1)
        if visible_sampling not in ("mean", "sample"):
            raise ParameterError(f"visible_sampling must be 'mean' or 'sample'; got {visible_sampling!r}.")
        v0 = self._check(v0, self.n_visible, "v0")
        ph0 = self.hidden_probs(v0)
        if not bool(torch.isfinite(ph0).all()):
            raise ParameterError(
                "p(h | v) is not finite: the weights or the data are too large (training diverged?); lower the "
                "learning rate or standardise the data."
            )
        if h0 is None:
            h0 = torch.bernoulli(ph0, generator=generator)
        else:
            h0 = self._check(h0, self.n_hidden, "h0")
            if h0.shape[0] != v0.shape[0]:
                raise InputShapeError(f"h0 needs one row per row of v0 ({v0.shape[0]}); got {h0.shape[0]}.")
        recon = self.visible_mean(h0)
        if chain is None:
            h = h0
            sample_visible = visible_sampling == "sample"
        else:
            chain = self._check(chain, self.n_visible, "chain")
            h = torch.bernoulli(self.hidden_probs(chain), generator=generator)
            sample_visible = True
        for step in range(k):
            mean, sample = self.sample_v(h, generator)
            vk = sample if sample_visible else mean
            phk = self.hidden_probs(vk)
            if step < k - 1:
                h = torch.bernoulli(phk, generator=generator)
        n0, nk = v0.shape[0], vk.shape[0]
        return {
            "W": v0.T @ ph0 / n0 - vk.T @ phk / nk,
            "vbias": v0.mean(0) - vk.mean(0),
            "hbias": ph0.mean(0) - phk.mean(0),
            "v_neg": vk,
            "reconstruction": recon,
        }

    def fit(
        self,
        data: Any,
        *,
        epochs: int = 10,
        batch_size: int = 128,
        lr: float | None = None,
        k: int = 1,
        persistent: bool = False,
        momentum: float = 0.9,
        initial_momentum: float = 0.5,
        momentum_epochs: int = 5,
        weight_decay: float = 0.0002,
        visible_sampling: Literal["mean", "sample"] = "mean",
        init_visible_bias: bool = True,
        random_state: int | torch.Generator | None = 0,
        progress: ProgressArg = None,
        desc: str = "RBM",
    ) -> "RBM":
        """Train with CD-k (default CD-1) or PCD-k on mini-batches of ``data``; returns ``self``.

        Parameters
        ----------
        data : (N, n_visible) tensor / array, or a dataset with ``.x`` (rows flattened)
            In [0, 1] for binary visibles; standardised (mean 0, std 1 per feature) for Gaussian.
        epochs, batch_size : int
            Passes over the data and rows per update (Mohamed et al.: 128).
        lr : float or None
            Learning rate; default 0.1 (binary) or 0.01 (Gaussian visibles: the guide's advice of a
            1-2 orders smaller rate; Mohamed et al. used 0.02 and 0.002, *check*).
        k : int
            Gibbs steps of the negative phase (CD-1 in the papers).
        persistent : bool
            Persistent CD (Tieleman 2008): one chain of ``batch_size`` rows kept across updates.
        momentum, initial_momentum, momentum_epochs
            Momentum ``initial_momentum`` for the first ``momentum_epochs`` epochs, then
            ``momentum`` (the guide's 0.5 then 0.9).
        weight_decay : float
            L2 weight cost on ``W`` only (not the biases), 0.0002 as in the guide and the papers.
        visible_sampling
            See :meth:`cd_statistics`.
        init_visible_bias : bool
            On the first fit: ``b = log(p / (1 - p))`` of the data's mean (binary, clipped to
            [1e-3, 1 - 1e-3]) or ``b = mean`` (Gaussian), as the guide (§8).
        random_state
            Seeds shuffling and every sample; the same seed gives the same weights on CPU.
        """
        _check_int("epochs", epochs, 0)
        _check_int("batch_size", batch_size, 1)
        _check_int("momentum_epochs", momentum_epochs, 0)
        rate = (0.1 if self.visible == "binary" else 0.01) if lr is None else lr
        for name, val in (("lr", rate), ("momentum", momentum), ("initial_momentum", initial_momentum),
                          ("weight_decay", weight_decay)):
            if not math.isfinite(val) or val < 0 or (name == "lr" and val == 0) or (name.endswith("momentum") and val >= 1):
                raise ParameterError(f"{name} must be finite and in its range (lr > 0, 0 <= momentum < 1, "
                                     f"weight_decay >= 0); got {val}.")
        x = as_matrix(data, self.n_visible)
        if self.visible == "binary" and (float(x.min()) < 0 or float(x.max()) > 1):
            raise DataError(
                f"A binary RBM needs inputs in [0, 1]; got values in [{float(x.min()):.3g}, {float(x.max()):.3g}]. "
                "Scale the data (e.g. pixels / 255) or use visible='gaussian' for standardised real inputs."
            )
        gen = _generator(random_state)
        track = resolve_progress(progress)
        with torch.no_grad():
            if init_visible_bias and not self.fitted_:
                mean = x.mean(0)
                if self.visible == "binary":
                    p = mean.clamp(1e-3, 1 - 1e-3)
                    self.vbias.copy_(torch.log(p / (1 - p)))
                else:
                    self.vbias.copy_(mean)
        opt = torch.optim.SGD(
            [{"params": [self.W], "weight_decay": weight_decay}, {"params": [self.vbias, self.hbias], "weight_decay": 0.0}],
            lr=rate, momentum=initial_momentum if momentum_epochs > 0 else momentum,
        )
        n = x.shape[0]
        chain: torch.Tensor | None = None
        if persistent:
            start = torch.randint(0, n, (min(batch_size, n),), generator=gen)
            chain = x[start].clone()
        params = (self.W, self.vbias, self.hbias)
        for epoch in track(range(1, epochs + 1), total=epochs, desc=desc):
            if epoch == momentum_epochs + 1:
                for group in opt.param_groups:
                    group["momentum"] = momentum
            perm = torch.randperm(n, generator=gen)
            sq, count, gap = 0.0, 0, 0.0
            for i in range(0, n, batch_size):
                v0 = x[perm[i: i + batch_size]]
                with torch.no_grad():
                    if not bool(torch.isfinite(self.W).all()):
                        raise ParameterError(
                            f"RBM training diverged at epoch {epoch} (non-finite weights); lower lr (was {rate}) "
                            "or standardise the data."
                        )
                    stats = self.cd_statistics(v0, k, gen, chain=chain, visible_sampling=visible_sampling)
                    for p, key in zip(params, ("W", "vbias", "hbias")):
                        p.grad = -stats[key]  # SGD descends: minus the log-likelihood gradient
                    sq += float(((v0 - stats["reconstruction"]) ** 2).sum())
                    count += v0.numel()
                    gap += float(self.free_energy(v0).mean() - self.free_energy(stats["v_neg"]).mean()) * v0.shape[0]
                opt.step()
                if persistent:
                    chain = stats["v_neg"].detach()
            for p in params:
                p.grad = None
            if not bool(torch.isfinite(self.W).all()) or not math.isfinite(sq):
                raise ParameterError(
                    f"RBM training diverged at epoch {epoch} (non-finite weights or reconstructions); lower lr "
                    f"(was {rate}) or standardise the data."
                )
            self.history_.append({"epoch": len(self.history_) + 1, "reconstruction_error": sq / max(count, 1),
                                  "free_energy_gap": gap / n})
        self.fitted_ = True
        return self


def _check_int(name: str, value: Any, low: int) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
        raise ParameterError(f"{name} must be an integer >= {low}; got {value!r}.")


class DBNNet(nn.Sequential):
    """Sigmoid MLP of a DBN's shape: ``flatten``, ``fc1``, ``sig1``, ..., ``fcL``, ``sigL`` and, with
    ``n_classes``, a linear output ``out`` (logits; the softmax is in the cross-entropy loss).

    Parameters
    ----------
    input_shape : tuple of int
        Shape of one input (flattened inside), e.g. ``(1, 28, 28)`` or ``(11, 40)``.
    hidden : sequence of int
        Units per hidden layer.
    n_classes : int or None
        Outputs of ``out``; ``None``: no output layer (the DBN's mean-field up-pass alone).
    random_state : int or None
        Seeds the initial weights: PyTorch's default ``nn.Linear`` distribution,
        U(-1/sqrt(fan_in), 1/sqrt(fan_in)) for weights and biases, drawn from a seeded generator
        (the "randomly initialised" baseline of the comparison).
    """

    def __init__(self, input_shape: Sequence[int], hidden: Sequence[int], n_classes: int | None = None,
                 random_state: int | None = 0) -> None:
        if not hidden:
            raise ParameterError("A DBNNet needs at least one hidden layer; got hidden=[].")
        for h in hidden:
            _check_int("hidden layer size", h, 1)
        if n_classes is not None:
            _check_int("n_classes", n_classes, 1)
        layers: OrderedDict[str, nn.Module] = OrderedDict(flatten=nn.Flatten())
        n_in = int(math.prod(input_shape))
        for i, h in enumerate(hidden, start=1):
            layers[f"fc{i}"] = nn.Linear(n_in, int(h))
            layers[f"sig{i}"] = nn.Sigmoid()
            n_in = int(h)
        if n_classes is not None:
            layers["out"] = nn.Linear(n_in, int(n_classes))
        super().__init__(layers)
        gen = _generator(random_state)
        with torch.no_grad():
            for m in self.modules():
                if isinstance(m, nn.Linear):
                    bound = 1.0 / math.sqrt(m.in_features)
                    m.weight.uniform_(-bound, bound, generator=gen)
                    m.bias.uniform_(-bound, bound, generator=gen)
        self.input_shape = tuple(int(s) for s in input_shape)
        self.hidden_sizes = [int(h) for h in hidden]
        self.hidden_layers = [f"sig{i}" for i in range(1, len(hidden) + 1)]


class DBN(nn.Module):
    """A deep belief network: RBMs trained greedily, layer by layer (Hinton, Osindero & Teh 2006).

    Parameters
    ----------
    sizes : sequence of int
        ``[n_input, h1, h2, ...]``: the visible size of the first RBM and each hidden layer's size.
    visible : {"binary", "gaussian"}
        Kind of the first RBM's visibles (Mohamed et al.: Gaussian for standardised frames); the
        RBMs above are always Bernoulli-Bernoulli.
    random_state : int or None
        Seeds the weights of every RBM.

    Attributes
    ----------
    rbms : nn.ModuleList of RBM
    history_ : list of list of dict
        Per layer, the RBM's per-epoch ``history_`` after :meth:`fit`.
    """

    def __init__(self, sizes: Sequence[int], visible: Visible = "binary", random_state: int | None = 0) -> None:
        super().__init__()
        sizes = list(sizes)
        if len(sizes) < 2:
            raise ParameterError(f"sizes must list the input size and at least one hidden size; got {sizes}.")
        gen = _generator(random_state)
        self.rbms = nn.ModuleList(
            RBM(sizes[i], sizes[i + 1], visible if i == 0 else "binary", random_state=gen) for i in range(len(sizes) - 1)
        )
        self.sizes = [int(s) for s in sizes]
        self.visible = visible

    @property
    def rbm_list(self) -> list[RBM]:
        """The RBMs, first (input side) to last, typed."""
        return [cast(RBM, r) for r in self.rbms]

    @property
    def history_(self) -> list[list[dict[str, float]]]:
        return [list(r.history_) for r in self.rbm_list]

    @property
    def depth(self) -> int:
        return len(self.rbms)

    def fit(
        self,
        data: Any,
        *,
        epochs: int | Sequence[int] = 10,
        lr: float | Sequence[float | None] | None = None,
        random_state: int | None = 0,
        progress: ProgressArg = None,
        **rbm_options: Any,
    ) -> "DBN":
        """Greedy layer-wise pre-training: RBM ``i`` learns the mean-field activities ``p(h | v)`` of
        RBM ``i - 1`` on ``data``; returns ``self``.

        Parameters
        ----------
        data
            Input rows (see :meth:`RBM.fit`).
        epochs, lr
            One value for every layer or one per layer (Mohamed et al. trained the GRBM longer and
            with a smaller rate than the BB-RBMs above).
        rbm_options
            Passed to every :meth:`RBM.fit` (``batch_size``, ``k``, ``persistent``, ``momentum``,
            ``weight_decay``, ...).
        """
        epochs_l = _per_layer("epochs", epochs, self.depth)
        lr_l = _per_layer("lr", lr, self.depth)
        x = as_matrix(data, self.sizes[0])
        seed = 0 if random_state is None else int(random_state)
        for i, rbm in enumerate(self.rbm_list):
            rbm.fit(x, epochs=int(epochs_l[i]), lr=lr_l[i], random_state=seed + 1000 * i, progress=progress,  # type: ignore[arg-type]
                    desc=f"RBM {i + 1} ({rbm.n_visible}x{rbm.n_hidden})", **rbm_options)
            x = rbm.transform(x)
        return self

    def up(self, data: Any) -> list[torch.Tensor]:
        """Mean-field up-pass: ``[p(h1 | x), p(h2 | h1), ...]``, each (N, size)."""
        x = as_matrix(data, self.sizes[0])
        out = []
        with torch.no_grad():
            for rbm in self.rbm_list:
                x = rbm.hidden_probs(x)
                out.append(x)
        return out

    def down(self, h: torch.Tensor, from_layer: int) -> torch.Tensor:
        """Mean-field down-pass from hidden layer ``from_layer`` (1-based) to the input: ``E[v | h]`` at
        each RBM in turn; (N, sizes[from_layer]) -> (N, sizes[0])."""
        _check_int("from_layer", from_layer, 1)
        if from_layer > self.depth:
            raise ParameterError(f"from_layer must be 1..{self.depth}; got {from_layer}.")
        x = h
        with torch.no_grad():
            for rbm in reversed(self.rbm_list[:from_layer]):
                x = rbm.visible_mean(x)
        return x

    def to_mlp(self, n_classes: int | None, input_shape: Sequence[int] | None = None,
               random_state: int | None = 0) -> DBNNet:
        """A :class:`DBNNet` whose hidden layers are the RBMs' up-pass (``fc_i`` = ``W_i^T``, ``c_i``).

        The output layer ``out`` (``n_classes`` logits) keeps its seeded default initialisation;
        ``n_classes=None`` gives the up-pass alone (for :func:`layerscope.featurevis.maximize`). The
        network is a copy: fine-tuning it leaves the DBN unchanged.
        """
        shape = tuple(input_shape) if input_shape is not None else (self.sizes[0],)
        if math.prod(shape) != self.sizes[0]:
            raise InputShapeError(f"input_shape {shape} has {math.prod(shape)} values; the DBN's input has {self.sizes[0]}.")
        net = DBNNet(shape, self.sizes[1:], n_classes, random_state=random_state)
        with torch.no_grad():
            for i, rbm in enumerate(self.rbm_list, start=1):
                fc = getattr(net, f"fc{i}")
                fc.weight.copy_(rbm.W.T)
                fc.bias.copy_(rbm.hbias)
        return net

    def state(self) -> dict[str, torch.Tensor]:
        """Tensors only (``rbm{i}.W`` / ``.vbias`` / ``.hbias``), for safetensors."""
        return {f"rbm{i}.{k}": v.detach().clone() for i, r in enumerate(self.rbm_list, 1)
                for k, v in (("W", r.W), ("vbias", r.vbias), ("hbias", r.hbias))}

    def config(self) -> dict[str, Any]:
        return {"sizes": list(self.sizes), "visible": self.visible}

    @classmethod
    def from_state(cls, config: dict[str, Any], state: dict[str, torch.Tensor]) -> "DBN":
        """Rebuild from :meth:`config` and :meth:`state`; every tensor's name and shape is checked."""
        from ..exceptions import WeightsError

        try:
            dbn = cls([int(s) for s in config["sizes"]], config.get("visible", "binary"))
        except (KeyError, TypeError, ValueError) as err:
            raise WeightsError(f"Bad DBN config {config!r} ({err}); expected {{'sizes': [...], 'visible': ...}}.") from None
        want = dbn.state()
        if set(want) != set(state):
            raise WeightsError(f"DBN weights hold {sorted(state)}; expected {sorted(want)}.")
        with torch.no_grad():
            for i, r in enumerate(dbn.rbm_list, 1):
                for k in ("W", "vbias", "hbias"):
                    t = state[f"rbm{i}.{k}"]
                    p = getattr(r, k)
                    if tuple(t.shape) != tuple(p.shape):
                        raise WeightsError(f"DBN tensor rbm{i}.{k} has shape {tuple(t.shape)}; expected {tuple(p.shape)}.")
                    p.copy_(t.to(p.dtype))
                r.fitted_ = True
        return dbn


def _per_layer(name: str, value: Any, n: int) -> list[Any]:
    if isinstance(value, (list, tuple)):
        if len(value) != n:
            raise ParameterError(f"{name} gives {len(value)} values; the DBN has {n} layers (give one or {n}).")
        return list(value)
    return [value] * n
