"""Bench: capture speed of all 6 encoder layers of all-MiniLM-L6-v2, layerscope vs nnsight vs a plain forward.

Issue 14's "Done means" (capture speed), measured in one run on one torch thread:

* model ``hf:all-MiniLM-L6-v2`` (loaded offline, ``HF_HUB_OFFLINE=1``), data: a stratified subset of
  the bundled WordNet glosses (``--n``, default 2,000), batches of ``--batch`` (default 64);
* the hidden states of ``encoder.layer.0`` .. ``encoder.layer.5`` (the outputs of the 6 encoder
  layers, equal to ``hidden_states[1:]`` of the model output), in two forms:

  - **full**: the ``(N, T, D)`` token states of every layer, written into one float32 array per
    layer (the product ``collect_activations(reduce=None)`` returns);
  - **mean**: the masked mean over the real tokens, ``(N, D)`` per layer.

Variants (each produces the same arrays, from the same tokenized batches):

* ``forward``: ``model(**batch)`` keeping nothing -- the floor, not a capture;
* ``plain``: ``model(**batch, output_hidden_states=True)``; the 6 states copied into the arrays (full)
  or pooled by hand (mean);
* ``layerscope``: ``collect_activations(model, data, layers, reduce=None | "mean")``;
* ``nnsight``: ``NNsight(model).trace(...)`` saving ``encoder.layer[i].output`` (a separate copy of the
  model, so nnsight's wrapping cannot touch the other variants' model); pooled by hand for mean.

Tokenization is inside every timed variant. Padding: ``collect_activations(reduce=None)`` stores one
``(N, T, D)`` array, so all its batches must have the same length ``T``; with the default
"pad to the longest text of the batch" it stops at the second batch (see the report). The **full**
group therefore pads every batch to the longest gloss of the subset (``model.layerscope_tokenize`` is
replaced by that tokenizer for the group, for all variants alike); the **mean** group uses the default
per-batch padding. Both are stated in the output.

Timing: variants are interleaved; repeat ``r`` runs them in the order rotated by ``r``; the median of
``--repeats`` (>= 3) runs is reported, wall (``perf_counter``) and process CPU time
(``process_time``), with the 1-minute load average before each run. ``torch.set_num_threads(1)`` is
set here (a bench script, not library code). Agreement: max abs difference of every variant's arrays
against the plain forward's, per group.

Needs the ``[text]`` extra and, for the nnsight rows, ``nnsight`` (``[bench]`` extra); without nnsight
those rows are skipped and the output says so.

Usage: python bench/text_capture.py [--n 2000] [--batch 64] [--repeats 3] [--groups full,mean]

Measured (2 shared CPU cores, load average 2-3 from other jobs, so differences under ~10% are noise:
the "forward" floor itself came out 0.94x and 1.06x of "plain")::


    all-MiniLM-L6-v2, 2000 WordNet glosses (10 lexnames), batch 64, 1 torch thread, torch 2.13.0+cpu, x86_64, 2 CPUs; tokens per gloss: mean 16.6, max 77; load 4.4s

    nnsight 0.8.1: wrap (a separate copy of the model) 0.1s
    TransformerLens: not measured (its install pulls ~30 packages, wandb and datasets among them; nnsight covers the 'field tool' row)

    [mean] 6 layers x (N, 384) float32, padded to the longest of each batch
      variant      wall med       (min-max)  CPU med  x plain  load avg  max|diff| vs plain
      plain          25.42s ( 24.98- 26.09)   24.69s    1.00x      3.10         (reference)
      forward        23.94s ( 23.18- 24.75)   23.68s    0.94x      3.12                   -
      layerscope     24.28s ( 22.79- 26.00)   23.95s    0.96x      3.08            0.00e+00
      nnsight        24.76s ( 23.57- 25.78)   24.46s    0.97x      3.05            0.00e+00

    [full] 6 layers x (N, 77, 384) float32, padded to the longest gloss (77 tokens)
      variant      wall med       (min-max)  CPU med  x plain  load avg  max|diff| vs plain
      plain          49.49s ( 48.77- 51.65)   48.76s    1.00x      3.20         (reference)
      forward        52.61s ( 48.46- 54.70)   51.25s    1.06x      1.90                   -
      layerscope     54.21s ( 51.51- 57.35)   53.31s    1.10x      2.28            0.00e+00
      nnsight        50.65s ( 49.11- 51.65)   50.10s    1.02x      2.59            0.00e+00
"""

from __future__ import annotations

import argparse
import gc
import os
import platform
import statistics
import time
import warnings
from typing import Any, Callable

import numpy as np
import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")

LAYERS = [f"encoder.layer.{i}" for i in range(6)]
Arrays = dict[str, np.ndarray]


def masked_mean(h: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean over the real tokens: ``(B, T, D)``, ``(B, T)`` -> ``(B, D)``."""
    m = mask.unsqueeze(-1).to(h.dtype)
    return (h * m).sum(1) / m.sum(1)


def batches(texts: list[str], size: int) -> list[list[str]]:
    return [texts[s : s + size] for s in range(0, len(texts), size)]


def alloc(n: int, full_t: int | None, d: int) -> Arrays:
    shape = (n, full_t, d) if full_t is not None else (n, d)
    return {name: np.empty(shape, dtype=np.float32) for name in LAYERS}


def run_forward(model: torch.nn.Module, texts: list[str], bs: int, tokenize: Callable[..., Any]) -> None:
    with torch.no_grad():
        for chunk in batches(texts, bs):
            model(**tokenize(chunk))


def run_plain(model: torch.nn.Module, texts: list[str], bs: int, tokenize: Callable[..., Any],
              full_t: int | None, d: int) -> Arrays:
    out = alloc(len(texts), full_t, d)
    row = 0
    with torch.no_grad():
        for chunk in batches(texts, bs):
            enc = tokenize(chunk)
            hs = model(**enc, output_hidden_states=True).hidden_states[1:]
            b = len(chunk)
            for name, h in zip(LAYERS, hs):
                out[name][row : row + b] = (h if full_t is not None else masked_mean(h, enc["attention_mask"])).numpy()
            row += b
    return out


def run_layerscope(model: torch.nn.Module, data: Any, idx: np.ndarray, bs: int, full_t: int | None) -> Arrays:
    import layerscope as ls

    acts = ls.collect_activations(model, data, LAYERS, reduce=None if full_t is not None else "mean",
                                  indices=idx, batch_size=bs)
    return {name: np.asarray(acts[name]) for name in LAYERS}


def run_nnsight(nmodel: Any, texts: list[str], bs: int, tokenize: Callable[..., Any],
                full_t: int | None, d: int) -> Arrays:
    out = alloc(len(texts), full_t, d)
    row = 0
    with torch.no_grad():
        for chunk in batches(texts, bs):
            enc = tokenize(chunk)
            ids = enc.pop("input_ids")
            # The input ids go positionally: a trace given keyword arguments only does not run the
            # model at all in nnsight 0.8 (its body is skipped; the saved names stay unbound).
            saved = []
            with nmodel.trace(ids, **enc):
                for i in range(6):
                    saved.append(nmodel.encoder.layer[i].output.save())
            b = len(chunk)
            for name, h in zip(LAYERS, saved):
                h = h[0] if isinstance(h, tuple) else h
                out[name][row : row + b] = (h if full_t is not None else masked_mean(h, enc["attention_mask"])).numpy()
            row += b
    return out


def max_diff(a: Arrays, ref: Arrays) -> float:
    worst = 0.0
    for name in LAYERS:
        if a[name].shape != ref[name].shape:
            raise RuntimeError(f"{name}: shape {a[name].shape} vs the plain forward's {ref[name].shape}")
        worst = max(worst, float(np.abs(a[name] - ref[name]).max()))
    return worst


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=2000, help="glosses (stratified subset of the bundled 3,000)")
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--groups", default="mean,full", help="comma list of 'mean', 'full'")
    args = ap.parse_args()
    if args.repeats < 3:
        ap.error("--repeats must be >= 3 (the median of 3+ runs is reported)")

    torch.set_num_threads(1)
    warnings.filterwarnings("ignore", module="nnsight")
    import layerscope as ls
    from layerscope.data import stratified_indices

    t0 = time.perf_counter()
    model = ls.load_model("hf:all-MiniLM-L6-v2")
    data = ls.load_dataset("wordnet")
    idx = stratified_indices(np.asarray(data.labels), args.n, 0)
    texts = [data.texts[i] for i in idx]
    tok: Any = getattr(model, "layerscope_tokenizer")
    default_tokenize: Callable[[list[str]], dict[str, torch.Tensor]] = getattr(model, "layerscope_tokenize")
    lengths = [len(x) for x in tok(texts, truncation=True, max_length=128)["input_ids"]]
    t_max = max(lengths)
    d = int(getattr(model, "config").hidden_size)
    n_classes = len(np.unique(np.asarray(data.labels)[idx]))
    print(f"all-MiniLM-L6-v2, {len(texts)} WordNet glosses ({n_classes} lexnames), batch {args.batch}, "
          f"{torch.get_num_threads()} torch thread, torch {torch.__version__}, {platform.processor() or platform.machine()}, "
          f"{os.cpu_count()} CPUs; tokens per gloss: mean {np.mean(lengths):.1f}, max {t_max}; "
          f"load {time.perf_counter() - t0:.1f}s")

    try:
        import nnsight
        from nnsight import NNsight

        t0 = time.perf_counter()
        nn_model = NNsight(ls.load_model("hf:all-MiniLM-L6-v2"))  # its own copy
        print(f"nnsight {nnsight.__version__}: wrap (a separate copy of the model) {time.perf_counter() - t0:.1f}s")
    except ImportError:
        nn_model = None
        print("nnsight is not installed: its rows are skipped (pip install nnsight, the [bench] extra)")
    print("TransformerLens: not measured (its install pulls ~30 packages, wandb and datasets among them; "
          "nnsight covers the 'field tool' row)")

    def fixed_tokenize(chunk: list[str]) -> dict[str, torch.Tensor]:
        enc = tok(list(chunk), padding="max_length", truncation=True, max_length=t_max, return_tensors="pt")
        return {k: v for k, v in enc.items() if isinstance(v, torch.Tensor)}

    for group in [g.strip() for g in args.groups.split(",") if g.strip()]:
        if group not in ("mean", "full"):
            ap.error(f"unknown group {group!r}; expected 'mean' or 'full'")
        full_t = t_max if group == "full" else None
        tokenize = fixed_tokenize if group == "full" else default_tokenize
        setattr(model, "layerscope_tokenize", tokenize)  # what collect_activations tokenizes with
        variants: dict[str, Callable[[], Arrays | None]] = {
            "plain": lambda: run_plain(model, texts, args.batch, tokenize, full_t, d),
            "forward": lambda: run_forward(model, texts, args.batch, tokenize),
            "layerscope": lambda: run_layerscope(model, data, idx, args.batch, full_t),
        }
        if nn_model is not None:
            variants["nnsight"] = lambda: run_nnsight(nn_model, texts, args.batch, tokenize, full_t, d)
        names = list(variants)
        wall: dict[str, list[float]] = {k: [] for k in names}
        cpu: dict[str, list[float]] = {k: [] for k in names}
        load: dict[str, list[float]] = {k: [] for k in names}
        diffs: dict[str, float] = {}
        ref: Arrays | None = None
        pad = f"padded to the longest gloss ({t_max} tokens)" if full_t else "padded to the longest of each batch"
        shape = f"(N, {t_max}, {d})" if full_t else f"(N, {d})"
        print(f"\n[{group}] 6 layers x {shape} float32, {pad}")
        for r in range(args.repeats):
            order = names[r % len(names):] + names[: r % len(names)]
            for name in order:
                gc.collect()
                load[name].append(os.getloadavg()[0])
                w0, c0 = time.perf_counter(), time.process_time()
                res = variants[name]()
                wall[name].append(time.perf_counter() - w0)
                cpu[name].append(time.process_time() - c0)
                if name == "plain" and ref is None:
                    ref = res
                if res is not None and name != "plain":
                    assert ref is not None  # "plain" runs first in repeat 1 (rotation starts there)
                    diffs[name] = max(diffs.get(name, 0.0), max_diff(res, ref))
                del res
            print(f"  repeat {r + 1}: " + ", ".join(f"{k} {wall[k][-1]:.2f}s" for k in order), flush=True)
        base = statistics.median(wall["plain"])
        print(f"  {'variant':11s} {'wall med':>9s} {'(min-max)':>15s} {'CPU med':>8s} {'x plain':>8s} "
              f"{'load avg':>9s} {'max|diff| vs plain':>19s}")
        for name in names:
            w = statistics.median(wall[name])
            diff = "(reference)" if name == "plain" else ("-" if name not in diffs else f"{diffs[name]:.2e}")
            print(f"  {name:11s} {w:8.2f}s ({min(wall[name]):6.2f}-{max(wall[name]):6.2f}) "
                  f"{statistics.median(cpu[name]):7.2f}s {w / base:7.2f}x "
                  f"{statistics.median(load[name]):9.2f} {diff:>19s}")
        setattr(model, "layerscope_tokenize", default_tokenize)
        del ref
        gc.collect()


if __name__ == "__main__":
    main()
