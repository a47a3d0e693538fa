"""Pieces shared by the text analyses: batching texts, default layers, a re-initialised copy."""

from __future__ import annotations

import copy
from typing import Any, Callable, Iterable, Iterator, Sequence, TypeVar

import numpy as np
import torch
from torch import nn

from ..exceptions import DataError, ParameterError

__all__ = ["special_ids", "text_adapter", "texts_and_labels", "default_text_layers", "reinitialized_copy", "tokenizer_of", "track"]

T = TypeVar("T")


def track(progress: Any, iterable: Iterable[T], total: int | None, desc: str) -> Iterable[T]:
    """Wrap ``iterable`` in ``progress`` (``None``/``False``: none; ``True``: tqdm.auto; or a tqdm-compatible
    callable, called with the keywords ``total=`` and ``desc=``)."""
    from .._progress import resolve_progress

    return resolve_progress(progress)(iterable, total=total, desc=desc)


def text_adapter(batch: Any) -> tuple[tuple[Any, ...], dict[str, Any], Any]:
    """Seam adapter for items ``(text, label)`` (or bare texts): ``((texts,), {}, labels)``.

    ``default_collate`` turns a column of strings into a tuple; the seam tokenizes a *list* of
    texts with ``model.layerscope_tokenize``, so the texts are handed over as a list.
    """
    if isinstance(batch, (list, tuple)) and batch and all(isinstance(s, str) for s in batch):
        return (list(batch),), {}, None
    if isinstance(batch, (list, tuple)) and len(batch) == 2 and isinstance(batch[0], (list, tuple)):
        texts, labels = batch
        if texts and all(isinstance(s, str) for s in texts):
            return (list(texts),), {}, labels
    raise DataError(
        f"Expected a batch of texts or of (text, label) items; got {type(batch).__name__}. Text analyses read "
        "TextDataset-like data (wordnet, text:FILE) or a list of strings."
    )


def texts_and_labels(data: Any) -> tuple[list[str], np.ndarray | None]:
    """The texts (and integer labels, if any) of a text dataset or a list of strings."""
    if isinstance(data, (list, tuple)) and all(isinstance(s, str) for s in data):
        return list(data), None
    texts = getattr(data, "texts", None)
    if texts is not None:
        labels = getattr(data, "labels", None)
        return [str(t) for t in texts], None if labels is None else np.asarray(labels, dtype=np.int64)
    try:
        items = [data[i] for i in range(len(data))]
    except TypeError as err:
        raise DataError(f"Expected texts or (text, label) items; got {type(data).__name__}.") from err
    if items and all(isinstance(it, (tuple, list)) and len(it) == 2 and isinstance(it[0], str) for it in items):
        return [it[0] for it in items], np.asarray([int(it[1]) for it in items], dtype=np.int64)
    raise DataError(f"Expected texts or (text, label) items; got items of type {type(items[0]).__name__ if items else None}.")


def special_ids(tokenizer: Any) -> set[int]:
    """Ids of the tokenizer's structural special tokens (``[CLS]``, ``[SEP]``, ``[PAD]``, ...).

    ``[UNK]`` is not among them: it stands for a real word of the text.
    """
    ids = set(int(i) for i in (getattr(tokenizer, "all_special_ids", None) or []))
    unk = getattr(tokenizer, "unk_token_id", None)
    return ids - ({int(unk)} if unk is not None else set())


def tokenizer_of(model: nn.Module) -> Callable[[list[str]], dict[str, torch.Tensor]]:
    tok = getattr(model, "layerscope_tokenize", None)
    if tok is None or not callable(tok):
        raise ParameterError(
            "Text analyses need the model's tokenizer: load it with an 'hf:' spec (it attaches "
            "model.layerscope_tokenize), or set model.layerscope_tokenize = fn(texts) -> dict of tensors."
        )
    return tok  # type: ignore[no-any-return]


def default_text_layers(model: nn.Module) -> list[str]:
    """The token-state layers of a Hugging Face encoder: its embeddings, then every encoder block.

    Found by name: the first ``nn.ModuleList`` whose path ends in ``layer``, ``layers``, ``h`` or
    ``block`` (BERT ``encoder.layer``, GPT-2 ``h``, T5 ``block``), preceded by the ``embeddings``
    module when there is one. Other models: pass ``layers=`` explicitly.
    """
    names = dict(model.named_modules())
    blocks: list[str] = []
    for name, mod in names.items():
        if isinstance(mod, nn.ModuleList) and name.rsplit(".", 1)[-1] in ("layer", "layers", "h", "block") and len(mod):
            blocks = [f"{name}.{i}" for i in range(len(mod))]
            break
    if not blocks:
        raise ParameterError(
            f"Cannot find the encoder blocks of {type(model).__name__} (no ModuleList named layer/layers/h/block); "
            "pass layers=[...] explicitly (see `layerscope layers`)."
        )
    emb = [n for n in names if n.rsplit(".", 1)[-1] == "embeddings"]
    return emb[:1] + blocks


def reinitialized_copy(model: nn.Module, seed: int = 0) -> nn.Module:
    """A copy of ``model`` with freshly initialised weights: the same network "before training".

    A Hugging Face model is rebuilt from its config (``type(model)(model.config)``), so it gets the
    architecture's own initialisation (e.g. normal(0, ``initializer_range``) for BERT); any other
    model is deep-copied and every submodule's ``reset_parameters()`` is called. The RNG is seeded
    with ``seed`` inside a ``torch.random.fork_rng`` block (the global RNG state is left as it was).
    The copy carries the original's tokenizer hook. The original model is not touched.
    """
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        config = getattr(model, "config", None)
        new: nn.Module
        if config is not None and hasattr(type(model), "from_pretrained"):
            new = type(model)(copy.deepcopy(config))
        else:
            new = copy.deepcopy(model)
            for m in new.modules():
                reset = getattr(m, "reset_parameters", None)
                if callable(reset):
                    reset()
    new.eval()
    for attr in ("layerscope_tokenize", "layerscope_tokenizer"):
        if hasattr(model, attr):
            setattr(new, attr, getattr(model, attr))
    src = dict(getattr(model, "layerscope_source", None) or {})
    new.layerscope_source = {**src, "reinitialized": True, "seed": int(seed)}  # type: ignore[assignment]
    old, fresh = dict(model.named_parameters()), dict(new.named_parameters())
    if set(old) != set(fresh):
        raise ParameterError(f"Re-initialising {type(model).__name__} changed its parameter names; cannot compare.")
    # every weight matrix / embedding table must differ from the original (biases and norm
    # scales may legitimately start at the same constants)
    same = [n for n in old if old[n].ndim >= 2 and torch.equal(old[n].detach(), fresh[n].detach())]
    if same:
        raise ParameterError(
            f"Re-initialising {type(model).__name__} left {len(same)} weight tensors unchanged (e.g. {same[0]}); "
            "either its modules do not reset their weights or the model already holds this seed's initial weights. "
            "Pass another seed, or build the untrained model yourself and pass it (before_training=model)."
        )
    return new


def batched(seq: Sequence[T], size: int) -> Iterator[tuple[int, Sequence[T]]]:
    for i in range(0, len(seq), size):
        yield i, seq[i : i + size]
