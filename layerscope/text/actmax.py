"""Activation maximization for text (Erhan et al. 2009, asked of a language model).

Text is discrete, so the input is relaxed: a sequence of ``length`` free vectors in the model's
**word-embedding space** (the rows of ``model.get_input_embeddings()``) is optimised by gradient
ascent, between the ``[CLS]`` and ``[SEP]`` word embeddings, fed through ``inputs_embeds=`` with
an attention mask of ones (the model adds its position and token-type embeddings itself).

**Norm constraint** (Erhan's sphere projection, per position): after initialisation and after
every step, each free vector ``x_i`` is projected onto the sphere ``||x_i|| = rho``
(``norm="sphere"``) or into the ball ``||x_i|| <= rho`` (``norm="ball"``), where ``rho`` is the
**median L2 norm of the candidate vocabulary rows** (every token except the tokenizer's special
tokens and BERT's never-trained ``[unusedN]`` rows) unless ``radius`` is given.

The optimum is then turned back into text: each position goes to the candidate token whose
embedding has the largest **cosine** similarity with it, and those ids are fed as real
``input_ids`` (``[CLS] ids [SEP]``, attention mask of ones, the model's default token types). The
result reports, per unit, three numbers, to be honest about the gap:

* ``embedding_activation``: the objective at the optimised embeddings (best step of the best
  restart);
* ``token_activation``: the same objective for the projected real tokens (a plain forward pass);
* ``data_top1`` (when ``data`` is given): the largest value of the objective over the data's
  texts, each scored on its own non-special tokens (``pooling="mean"``: the mean over them;
  ``pooling="token"``: the max over them, as any position may be the chosen one).

Objective: the unit's activation in the layer's token states ``(N, T, D)``, averaged over the
``length`` free positions (``pooling="mean"``; ``[CLS]``/``[SEP]`` excluded) or taken at free
position ``position`` (``pooling="token"``). The model runs in ``eval()`` mode with its
parameters frozen; its training and ``requires_grad`` flags are restored afterwards and its
parameters are never written. Optimiser: Adam on the free vectors (seeded Gaussian start).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
from torch import nn

from .._io import read_json
from ..exceptions import DataError, ParameterError
from ..results import AnalysisResult, model_description, write_result
from ._common import special_ids, text_adapter, tokenizer_of, track

__all__ = ["TextMaxResult", "text_maximize"]

ANALYSIS = "text_maximize"
_PNG_META = {"Software": None}
_UNUSED = re.compile(r"^\[unused\d+\]$")


@dataclass
class TextMaxResult(AnalysisResult):
    """Embedding-space activation maximization of units of one layer, and its projection to tokens.

    Attributes
    ----------
    layer
        The token-state layer.
    units
        ``units[j]``: ``{unit, tokens, token_ids, embedding_activation, token_activation,
        data_top1, data_top1_row, data_top1_text}`` (the data keys are ``None`` without data).
    embeddings
        ``(U, length, D)`` float32: the optimised free vectors (best restart) per unit.
    traces
        ``(U, restarts, steps)`` float32: the objective before each step, per restart.
    radius
        The norm bound ``rho``.
    """

    layer: str
    units: list[dict[str, Any]]
    embeddings: np.ndarray
    traces: np.ndarray
    radius: float
    params: dict[str, Any] = field(default_factory=dict)
    model_info: dict[str, Any] | None = None
    data_spec: str | None = None

    analysis = ANALYSIS
    key_figure = None

    @property
    def parameters(self) -> dict[str, Any]:
        return dict(self.params)

    @property
    def metrics(self) -> dict[str, Any]:
        emb = [u["embedding_activation"] for u in self.units]
        tok = [u["token_activation"] for u in self.units]
        data = [u["data_top1"] for u in self.units if u["data_top1"] is not None]
        out: dict[str, Any] = {
            "layer": self.layer, "n_units": len(self.units), "radius": self.radius,
            "mean_embedding_activation": float(np.mean(emb)), "mean_token_activation": float(np.mean(tok)),
            "mean_gap": float(np.mean(np.subtract(emb, tok))),
            "per_unit": {str(u["unit"]): {k: u[k] for k in ("embedding_activation", "token_activation", "data_top1")}
                         for u in self.units},
        }
        if data:
            out["mean_data_top1"] = float(np.mean(data))
            out["tokens_beat_data"] = int(sum(u["token_activation"] > u["data_top1"] for u in self.units))
        return out

    def __repr__(self) -> str:
        m = self.metrics
        return (f"TextMaxResult({self.layer}, {m['n_units']} units, embedding {m['mean_embedding_activation']:.3g}, "
                f"tokens {m['mean_token_activation']:.3g}" + (f", data top-1 {m['mean_data_top1']:.3g})" if "mean_data_top1" in m else ")"))

    def figures(self) -> dict[str, Any]:
        """One figure: per unit (row) the objective over the steps and a bar of the three activations."""
        from matplotlib.figure import Figure

        n = len(self.units)
        height = 1.9 * n + 0.8
        fig = Figure(figsize=(10, height))
        axes = fig.subplots(n, 2, squeeze=False, gridspec_kw={"width_ratios": (1.6, 1)})
        for j, u in enumerate(self.units):
            a, b = axes[j]
            for r in range(self.traces.shape[1]):
                a.plot(self.traces[j, r], lw=1, label=f"restart {r}")
            a.axhline(u["token_activation"], color="k", ls="--", lw=0.8, label="real tokens")
            a.set_ylabel(f"unit {u['unit']}", fontsize=8)
            a.tick_params(labelsize=7)
            if j == 0:
                a.legend(fontsize=6, loc="lower right")
            if j == n - 1:
                a.set_xlabel("step", fontsize=8)
            names = ["embeddings", "real tokens"] + (["data top-1"] if u["data_top1"] is not None else [])
            vals = [u["embedding_activation"], u["token_activation"]] + ([u["data_top1"]] if u["data_top1"] is not None else [])
            b.bar(names, vals, color=["C0", "C1", "C2"][: len(vals)])
            b.tick_params(labelsize=7)
            b.set_title(" ".join(u["tokens"])[:60], fontsize=7)
        fig.suptitle(f"Activation maximization for text, {self.layer} ({self.params.get('pooling')} pooling)")
        fig.tight_layout(rect=(0, 0, 1, 1 - 0.45 / height))  # room for the suptitle
        return {"actmax": fig}

    def _write(self, d: Path) -> None:
        """Write ``result.json``, ``actmax.png`` and ``arrays.npz`` (embeddings, traces) into ``d``."""
        entries = []
        for stem, fig in self.figures().items():
            fig.savefig(d / f"{stem}.png", dpi=100, metadata=_PNG_META)
            entries.append({"path": f"{stem}.png", "title": fig._suptitle.get_text() if fig._suptitle else stem,
                            "caption": "objective per step (restarts) and the activation in embedding space, of the "
                                       "nearest real tokens and the data's top-1"})
        with open(d / "arrays.npz", "wb") as fh:
            np.savez(fh, embeddings=self.embeddings.astype(np.float32), traces=self.traces.astype(np.float32))
        write_result(
            d, ANALYSIS, model=self.model_info, data=self.data_spec, parameters=self.parameters, metrics=self.metrics,
            figures=entries, layer=self.layer, units=self.units, radius=self.radius,
        )

    @classmethod
    def load(cls, out_dir: str | os.PathLike[str]) -> "TextMaxResult":
        d = Path(out_dir)
        if not (d / "result.json").is_file() or not (d / "arrays.npz").is_file():
            raise DataError(f"{d} holds no saved text maximization result (result.json + arrays.npz expected).")
        doc = read_json(d / "result.json")
        if doc.get("analysis") != ANALYSIS:
            raise DataError(f"{d} holds a {doc.get('analysis')!r} result, not {ANALYSIS!r}.")
        with np.load(d / "arrays.npz", allow_pickle=False) as z:
            emb, traces = np.asarray(z["embeddings"]), np.asarray(z["traces"])
        return cls(layer=str(doc["layer"]), units=list(doc["units"]), embeddings=emb, traces=traces,
                   radius=float(doc["radius"]), params=dict(doc.get("parameters") or {}),
                   model_info=doc.get("model"), data_spec=doc.get("data"))


def _candidates(tok: Any, vocab: int) -> torch.Tensor:
    """Boolean mask of the vocabulary rows a position may decode to (no special, no ``[unusedN]``)."""
    ok = torch.ones(vocab, dtype=torch.bool)
    for i in set(int(i) for i in (getattr(tok, "all_special_ids", None) or [])) | special_ids(tok):
        if 0 <= i < vocab:
            ok[i] = False
    convert = getattr(tok, "convert_ids_to_tokens", None)
    if convert is not None:
        for i, t in enumerate(convert(list(range(vocab)))):
            if isinstance(t, str) and _UNUSED.match(t):
                ok[i] = False
    return ok


def _objective(t: torch.Tensor, units: torch.Tensor, pooling: str, position: int) -> torch.Tensor:
    """``(B,)`` objective: row ``b`` reads unit ``units[b]`` of the free positions 1..T-2 of ``t``."""
    free = t[:, 1:-1, :]
    sel = free.gather(2, units.view(-1, 1, 1).expand(-1, free.shape[1], 1)).squeeze(2)
    return sel.mean(dim=1) if pooling == "mean" else sel[:, position]


def _project(x: torch.Tensor, rho: float, norm: str) -> None:
    """In place: each vector (last axis) onto the sphere ``||x|| = rho`` or into the ball ``<= rho``."""
    n = x.norm(dim=-1, keepdim=True).clamp_min(1e-12)
    x.mul_(rho / n if norm == "sphere" else (rho / n).clamp(max=1.0))


def _layer_states(model: nn.Module, layer: str, kwargs: dict[str, Any], grad: bool) -> torch.Tensor:
    from ..capture import capture

    with capture(model, [layer], detach=not grad, grad=grad, stop_early=True) as cap:
        cap.run(**kwargs)
    t = cap[layer]
    if t.ndim != 3:
        raise ParameterError(f"Layer {layer!r} gave shape {tuple(t.shape)}, not token states (N, T, D); "
                             "choose an encoder block or the embeddings.")
    return t


def _data_top1(model: nn.Module, data: Any, layer: str, units: list[int], pooling: str, special: set[int],
               batch_size: int, progress: Any) -> list[tuple[float, int]]:
    from ..capture import capture
    from ..seam import data_length, iter_batches

    n = data_length(data) or 0
    best = [(-float("inf"), -1) for _ in units]
    idx = torch.tensor(units)
    batches = iter_batches(data, batch_size, model=model, adapter=text_adapter)
    for batch in track(progress, batches, (n + batch_size - 1) // batch_size, f"data top-1: layer {layer}"):
        ids, mask = batch.kwargs.get("input_ids"), batch.mask
        if mask is None or not isinstance(ids, torch.Tensor):
            raise DataError("The tokenizer gave no input_ids/attention_mask; the data's top-1 needs both.")
        with capture(model, [layer], stop_early=True) as cap:
            cap.run(batch)
        t = cap[layer][: batch.n, :, idx].float()  # (n, T, U)
        valid = mask[: batch.n].bool().clone()
        for sid in special:
            valid &= ids[: batch.n] != sid
        v = valid.unsqueeze(-1).to(t.dtype)
        count = v.sum(1)
        if pooling == "mean":
            score = (t * v).sum(1) / count.clamp_min(1)
        else:
            score = t.masked_fill(v == 0, float("-inf")).max(1).values
        score = score.masked_fill(count == 0, float("-inf"))  # a text with no real token scores nothing
        vals, rows = score.max(0)
        for j in range(len(units)):
            if float(vals[j]) > best[j][0]:
                best[j] = (float(vals[j]), int(batch.ids[int(rows[j])]))
    return best


def text_maximize(
    model: nn.Module,
    layer: str,
    units: Sequence[int] | int,
    *,
    length: int = 8,
    steps: int = 200,
    restarts: int = 2,
    lr: float = 0.1,
    norm: str = "sphere",
    radius: float | None = None,
    pooling: str = "mean",
    position: int = 0,
    seed: int = 0,
    data: Any = None,
    batch_size: int = 64,
    progress: Any = None,
    model_info: dict[str, Any] | None = None,
    data_spec: str | None = None,
) -> TextMaxResult:
    """Optimise input embeddings for units of ``layer``, decode them to tokens, measure the gap.

    See the module docstring for the exact objective, constraint and decoding.

    Parameters
    ----------
    model
        A Hugging Face text model with a tokenizer hook (``hf:`` spec) and ``get_input_embeddings()``;
        it must accept ``inputs_embeds=``. Not changed.
    layer
        A layer whose output is token states ``(N, T, D)`` (e.g. ``encoder.layer.5``).
    units
        Unit indices, or a count: that many units drawn at random (seeded).
    length
        Free positions between ``[CLS]`` and ``[SEP]``.
    steps, restarts, lr
        Adam steps per restart, independent seeded starts (the best is kept), learning rate.
    norm
        ``"sphere"`` (``||x_i|| = rho``) or ``"ball"`` (``||x_i|| <= rho``), per position.
    radius
        ``rho``; default the median norm of the candidate vocabulary embeddings.
    pooling, position
        ``"mean"``: the unit averaged over the free positions; ``"token"``: at free position
        ``position`` (0-based, ``[CLS]`` not counted).
    seed
        Seeds the starting points (global RNG state untouched) and the random choice of units.
    data
        Optional texts (``wordnet``, ``text:FILE`` or a list of strings) for the data's top-1.
    batch_size, progress, model_info, data_spec
        As in the other analyses.
    """
    from ..capture import model_state_guard

    for name, v, lo in (("length", length, 1), ("steps", steps, 1), ("restarts", restarts, 1)):
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < lo:
            raise ParameterError(f"{name} must be an integer >= {lo}; got {v!r}.")
    if norm not in ("sphere", "ball"):
        raise ParameterError(f"norm must be 'sphere' or 'ball'; got {norm!r}.")
    if pooling not in ("mean", "token"):
        raise ParameterError(f"pooling must be 'mean' or 'token'; got {pooling!r}.")
    if pooling == "token" and not 0 <= position < length:
        raise ParameterError(f"position must be in 0..{length - 1} (a free position); got {position}.")
    if not (isinstance(lr, (int, float)) and np.isfinite(lr) and lr > 0):
        raise ParameterError(f"lr must be a positive number; got {lr!r}.")
    if radius is not None and not (np.isfinite(radius) and radius > 0):
        raise ParameterError(f"radius must be a positive number; got {radius!r}.")
    tokenizer_of(model)
    tok = getattr(model, "layerscope_tokenizer", None)
    get_emb = getattr(model, "get_input_embeddings", None)
    emb_mod = get_emb() if callable(get_emb) else None
    if not isinstance(emb_mod, nn.Embedding):
        raise ParameterError("text_maximize needs a Hugging Face model with get_input_embeddings() -> nn.Embedding "
                             "(it optimises vectors in that space); load it with an 'hf:' spec.")
    cls_id, sep_id = getattr(tok, "cls_token_id", None), getattr(tok, "sep_token_id", None)
    if cls_id is None or sep_id is None:
        raise ParameterError("The tokenizer has no [CLS]/[SEP] tokens (cls_token_id/sep_token_id); "
                             "text_maximize frames the sequence with them.")
    table = emb_mod.weight.detach().float()
    vocab, dim = table.shape
    cand = _candidates(tok, vocab)
    if not bool(cand.any()):
        raise ParameterError("No vocabulary token is left to decode to once the special tokens are removed.")
    rho = float(table[cand].norm(dim=1).median()) if radius is None else float(radius)
    rng = np.random.default_rng(seed)
    with model_state_guard(model):
        model.eval()
        for p in model.parameters():
            p.requires_grad_(False)
        device = table.device
        probe = _layer_states(model, layer, {"input_ids": torch.tensor([[cls_id, sep_id]], device=device)}, grad=False)
        width = int(probe.shape[2])
        if isinstance(units, (int, np.integer)) and not isinstance(units, bool):
            if units < 1:
                raise ParameterError(f"units must be >= 1 or a list of unit indices; got {units}.")
            chosen = sorted(int(u) for u in rng.choice(width, size=min(int(units), width), replace=False))
        else:
            chosen = [int(u) for u in units]  # type: ignore[union-attr]
            bad = [u for u in chosen if not 0 <= u < width]
            if bad or not chosen:
                raise ParameterError(f"Units {bad or chosen} are outside layer {layer!r}'s {width} units (0..{width - 1}).")
        n_u, n_rows = len(chosen), len(chosen) * restarts
        row_units = torch.tensor(chosen, device=device).repeat_interleave(restarts)
        gen = torch.Generator().manual_seed(int(seed))
        x = torch.randn(n_rows, length, dim, generator=gen).to(device=device, dtype=emb_mod.weight.dtype)
        _project(x, rho, "sphere")
        x.requires_grad_(True)
        ends = emb_mod.weight.detach()[[cls_id, sep_id]]
        cls_e, sep_e = ends[0].expand(n_rows, 1, dim), ends[1].expand(n_rows, 1, dim)
        mask = torch.ones(n_rows, length + 2, dtype=torch.long, device=device)
        opt = torch.optim.Adam([x], lr=float(lr))
        traces = np.zeros((n_rows, steps), dtype=np.float32)
        best_val = torch.full((n_rows,), -float("inf"))
        best_x = x.detach().clone()
        with torch.enable_grad():
            for s in track(progress, range(steps + 1), steps + 1, f"maximize: layer {layer}"):
                seq = torch.cat([cls_e, x, sep_e], dim=1)
                obj = _objective(_layer_states(model, layer, {"inputs_embeds": seq, "attention_mask": mask}, True),
                                 row_units, pooling, position)
                vals = obj.detach().float().cpu()
                better = vals > best_val
                best_val = torch.where(better, vals, best_val)
                best_x[better.to(device)] = x.detach()[better.to(device)]
                if s == steps:  # the last pass only scores the last update
                    break
                traces[:, s] = vals.numpy()
                opt.zero_grad()
                (-obj.sum()).backward()
                opt.step()
                with torch.no_grad():
                    _project(x, rho, norm)
        best_val_u = best_val.view(n_u, restarts)
        pick = best_val_u.argmax(dim=1)
        emb = best_x.view(n_u, restarts, length, dim)[torch.arange(n_u), pick.to(device)].float()
        cos = torch.nn.functional.normalize(emb, dim=-1) @ torch.nn.functional.normalize(table, dim=-1).T
        cos[..., ~cand] = -float("inf")
        ids = cos.argmax(dim=-1)  # (U, length)
        real = torch.cat([torch.full((n_u, 1), cls_id, device=device), ids, torch.full((n_u, 1), sep_id, device=device)], 1)
        with torch.no_grad():
            t = _layer_states(model, layer, {"input_ids": real, "attention_mask": torch.ones_like(real)}, False)
            tok_vals = _objective(t, torch.tensor(chosen, device=device), pooling, position).float().cpu()
        top1: list[tuple[float, int]] | None = None
        texts: list[str] | None = None
        if data is not None:
            from ._common import texts_and_labels

            texts, _ = texts_and_labels(data)
            top1 = _data_top1(model, data, layer, chosen, pooling, special_ids(tok) | {int(cls_id), int(sep_id)},
                              batch_size, progress)
    convert = getattr(tok, "convert_ids_to_tokens", None)
    out_units: list[dict[str, Any]] = []
    for j, u in enumerate(chosen):
        id_list = [int(i) for i in ids[j].tolist()]
        entry: dict[str, Any] = {
            "unit": u, "tokens": list(convert(id_list)) if convert else [str(i) for i in id_list], "token_ids": id_list,
            "embedding_activation": float(best_val_u[j, pick[j]]), "token_activation": float(tok_vals[j]),
            "best_restart": int(pick[j]), "data_top1": None, "data_top1_row": None, "data_top1_text": None,
        }
        if top1 is not None and texts is not None and top1[j][1] >= 0:
            entry.update(data_top1=top1[j][0], data_top1_row=top1[j][1], data_top1_text=texts[top1[j][1]])
        out_units.append(entry)
    params = {
        "layer": layer, "units": units if isinstance(units, int) else [int(u) for u in units], "length": int(length),
        "steps": int(steps), "restarts": int(restarts), "lr": float(lr), "norm": norm,
        "radius": None if radius is None else float(radius), "pooling": pooling, "position": int(position),
        "seed": int(seed), "batch_size": int(batch_size),
        "constraint": f"each free position's embedding {'on the sphere' if norm == 'sphere' else 'in the ball'} "
                      f"of radius rho={rho:.6g} (median candidate-token embedding norm unless radius given)",
        "decoding": "nearest candidate token by cosine (no special tokens, no [unusedN]); fed back as input_ids",
        "data_top1_rule": "max over texts of the same objective on the text's non-special tokens "
                          "(mean pooling: their mean; token pooling: their max)",
    }
    return TextMaxResult(
        layer=layer, units=out_units, embeddings=emb.detach().cpu().numpy().astype(np.float32),
        traces=traces.reshape(n_u, restarts, steps), radius=rho, params=params,
        model_info=model_info if model_info is not None else model_description(model), data_spec=data_spec,
    )
