"""Load a model from a ``--model`` spec, never running pickled code unless asked to.

Specs, tried in this order:

1. A bundled pretrained name: ``resnet20-cifar10``, ``mnist-mlp``, ``mnist-cnn`` (also with a
   ``pretrained:`` prefix).
2. A run folder written by ``layerscope train`` (its last checkpoint), ``RUN@EPOCH`` for a given
   checkpoint, or a checkpoint file inside a run folder.
3. A ``torch.export`` program file (``.pt2``).
4. ``hf:FOLDER_OR_INSTALLED_NAME`` — a Hugging Face model and tokenizer from local files only
   (see :mod:`layerscope.models.hf`; needs the ``[text]`` extra).
5. ``package.module:factory`` — an import path to a callable returning an ``nn.Module``; weights
   from ``weights=`` (``.safetensors``, or a state_dict saved with ``torch.save``).

Weight files are read with ``safetensors`` or ``torch.load(weights_only=True)``. A file that can
only be read by unpickling arbitrary objects raises :class:`~layerscope.exceptions.UnsafeFileError`
explaining the risk and the opt-in (``allow_pickle=True``, CLI ``--allow-pickle``).
"""

from __future__ import annotations

import importlib
import io
import json
import os
import pickle
import re
import zipfile
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .exceptions import ModelSpecError, UnsafeFileError, UnsupportedFileError, WeightsError
from .models import PRETRAINED, build_model, load_pretrained
from .training import RUN_FILE, TrainRun

__all__ = ["load_model", "load_weights", "load_run_model", "ModelSource"]

_PICKLE_RISK = (
    "Unpickling runs whatever code the file's author put in it, so layerscope does not do it by "
    "default. If you trust where {path} came from, pass --allow-pickle (Python: allow_pickle=True); "
    "better, re-save it as a state_dict with safetensors."
)


class ModelSource(dict):  # type: ignore[type-arg]
    """Where a loaded model came from (kept on ``model.layerscope_source``)."""


def _torch_load_safe(path: Path, allow_pickle: bool) -> Any:
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        if not allow_pickle:
            raise UnsafeFileError(
                f"{path} holds more than tensors: loading it needs full unpickling ({str(err).splitlines()[0]}). "
                + _PICKLE_RISK.format(path=path)
            ) from err
    except (RuntimeError, EOFError, OSError, ValueError, zipfile.BadZipFile) as err:
        raise WeightsError(f"{path} is not a readable PyTorch file (corrupt or truncated?): {err}") from err
    try:
        return torch.load(path, map_location="cpu", weights_only=False)
    except Exception as err:  # the file's own code may raise anything
        raise WeightsError(f"{path} could not be loaded even with pickle allowed: {err}") from err


def load_weights(path: str | os.PathLike[str], *, allow_pickle: bool = False) -> dict[str, torch.Tensor]:
    """Read a state_dict from ``.safetensors`` or a ``torch.save`` file.

    A checkpoint dict with a ``state_dict`` (or ``model_state_dict``) entry is unwrapped, and a
    ``module.`` prefix (``DataParallel``) is removed.
    """
    p = Path(path)
    if not p.exists():
        raise WeightsError(f"Weight file {p} does not exist.")
    if p.suffix == ".safetensors":
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        try:
            return load_file(str(p))
        except (SafetensorError, OSError, ValueError) as err:
            raise WeightsError(f"{p} is not a readable safetensors file (corrupt or truncated?): {err}") from err
    obj = _torch_load_safe(p, allow_pickle)
    if isinstance(obj, nn.Module):
        obj = obj.state_dict()
    if isinstance(obj, dict):
        for key in ("state_dict", "model_state_dict", "model"):
            if key in obj and isinstance(obj[key], dict):
                obj = obj[key]
                break
    if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise WeightsError(
            f"{p} does not hold a state_dict (a dict of tensors); it holds {type(obj).__name__}. "
            "Save weights with torch.save(model.state_dict(), path) or safetensors."
        )
    return {k.removeprefix("module."): v for k, v in obj.items()}


def _apply_weights(model: nn.Module, state: dict[str, torch.Tensor], path: Path) -> None:
    own = model.state_dict()
    shape_bad = [
        f"{k}: file {tuple(v.shape)} vs model {tuple(own[k].shape)}"
        for k, v in state.items()
        if k in own and own[k].shape != v.shape
    ]
    missing = [k for k in own if k not in state and not k.endswith("num_batches_tracked")]
    unexpected = [k for k in state if k not in own]
    if shape_bad or missing or unexpected:
        parts = []
        if missing:
            parts.append(f"missing in the file: {missing[:5]}{' ...' if len(missing) > 5 else ''}")
        if unexpected:
            parts.append(f"not in the model: {unexpected[:5]}{' ...' if len(unexpected) > 5 else ''}")
        if shape_bad:
            parts.append(f"shape mismatch: {shape_bad[:3]}")
        raise WeightsError(
            f"Weights in {path} do not fit {type(model).__name__}: {'; '.join(parts)}. "
            "Check that the architecture (and its options) match the one the weights were saved from."
        )
    model.load_state_dict(state, strict=False)


def load_run_model(run_dir: str | os.PathLike[str], epoch: int | None = None) -> nn.Module:
    """The model of a ``layerscope train`` run at ``epoch`` (default: its last checkpoint)."""
    from .data.base import Normalization

    run = TrainRun.load(run_dir)
    cps = run.checkpoints
    if not cps:
        raise WeightsError(f"Run {run.directory} has no checkpoints yet.")
    if epoch is None:
        entry = cps[-1]
    else:
        match = [c for c in cps if int(c["epoch"]) == int(epoch)]
        if not match:
            raise ModelSpecError(
                f"Run {run.directory} has no checkpoint at epoch {epoch}; it has epochs {[c['epoch'] for c in cps]}."
            )
        entry = match[0]
    meta = run.meta
    lacking = [k for k in ("arch", "input_shape", "classes") if k not in meta]
    if lacking:
        raise ModelSpecError(
            f"Run {run.directory} cannot be rebuilt: its {RUN_FILE} lacks {lacking}. Runs of models built "
            "with layerscope.models.build_model record them; for other models pass meta={'arch': ..., "
            "'input_shape': ..., 'classes': ...} to train(), or load the checkpoint with --model "
            "package.module:factory --weights CHECKPOINT."
        )
    model = build_model(meta["arch"], meta["input_shape"], len(meta["classes"]))
    path = run.directory / entry["file"]
    _apply_weights(model, load_weights(path), path)
    model.classes = list(meta["classes"])  # type: ignore[assignment]
    model.normalization = Normalization.from_dict(meta.get("normalization", {}))  # type: ignore[assignment]
    model.layerscope_source = ModelSource(  # type: ignore[assignment]
        kind="run", run=str(run.directory), epoch=int(entry["epoch"]), data=meta.get("data"),
        val_data=meta.get("val_data"),
    )
    return model.eval()


def _check_pt2_safe(path: Path) -> None:
    """Refuse a ``.pt2`` archive whose loading would unpickle arbitrary objects.

    ``torch.export.load`` unpickles weights marked ``use_pickle``, custom and opaque constants, and
    falls back to full unpickling for sample inputs; each such member is checked here first with
    ``weights_only=True`` (written by hand: torch offers no safe mode for this).
    """
    try:
        zf = zipfile.ZipFile(path)
    except zipfile.BadZipFile as err:
        raise UnsupportedFileError(f"{path} is not a torch.export archive (not a zip file).") from err
    with zf:
        names = zf.namelist()
        risky: list[str] = []
        for name in names:
            if name.endswith("weights_config.json") or name.endswith("constants_config.json"):
                cfg = json.loads(zf.read(name)).get("config", {})
                base = name.rsplit("/", 1)[0]
                for entry in cfg.values():
                    pn = str(entry.get("path_name", ""))
                    if pn.startswith(("custom_obj", "opaque")):
                        raise UnsafeFileError(
                            f"{path} holds pickled custom objects ({pn}). " + _PICKLE_RISK.format(path=path)
                        )
                    if entry.get("use_pickle"):
                        risky.append(f"{base}/{pn}")
            elif "/sample_inputs/" in name:
                risky.append(name)
        for name in risky:
            if name not in names:
                continue
            try:
                torch.load(io.BytesIO(zf.read(name)), weights_only=True)
            except Exception as err:
                raise UnsafeFileError(
                    f"{path}: member {name} needs full unpickling to load. " + _PICKLE_RISK.format(path=path)
                ) from err


def load_model(spec: str, *, weights: str | os.PathLike[str] | None = None, allow_pickle: bool = False) -> nn.Module:
    """Load a model from a spec (see the module docstring). The result is in ``eval()`` mode."""
    if not spec:
        raise ModelSpecError("Empty model spec.")
    if spec.startswith("hf:"):  # a Hugging Face model from local files (layerscope.models.hf)
        from .models.hf import load_hf_model

        return load_hf_model(spec, allow_pickle=allow_pickle)
    name = spec.removeprefix("pretrained:")
    if name in PRETRAINED:
        model = load_pretrained(name)
        model.layerscope_source = ModelSource(kind="pretrained", name=name)  # type: ignore[assignment]
        return model
    if spec.startswith("pretrained:"):
        raise ModelSpecError(f"No bundled pretrained model {name!r}; available: {', '.join(PRETRAINED)}.")
    m = re.fullmatch(r"(.+)@(\d+)", spec)
    if m and (Path(m[1]) / RUN_FILE).exists():
        return load_run_model(m[1], int(m[2]))
    p = Path(spec)
    if p.is_dir():
        if (p / RUN_FILE).exists():
            return load_run_model(p)
        raise ModelSpecError(f"{p} is a folder but not a run folder: it has no {RUN_FILE} (written by `layerscope train`).")
    if p.is_file():
        if p.suffix == ".pt2":
            _check_pt2_safe(p)
            try:
                program = torch.export.load(str(p))
            except Exception as err:
                raise WeightsError(f"{p} is not a loadable torch.export program: {err}") from err
            model = program.module()
            model.layerscope_source = ModelSource(kind="export", path=str(p))  # type: ignore[assignment]
            return model  # exported programs have no train/eval switch
        run_dir = p.parent.parent
        if p.suffix == ".safetensors" and (run_dir / RUN_FILE).exists():
            mm = re.search(r"epoch_(\d+)", p.name)
            if mm:
                return load_run_model(run_dir, int(mm[1]))
        raise ModelSpecError(
            f"{p} is a weight file without an architecture. Give the architecture as an import path and the "
            f"file as weights: --model package.module:factory --weights {p}"
        )
    if re.fullmatch(r"[A-Za-z_][\w.]*:[A-Za-z_]\w*", spec):
        mod_name, _, attr = spec.partition(":")
        try:
            module = importlib.import_module(mod_name)
        except ImportError as err:
            raise ModelSpecError(f"Cannot import {mod_name!r} for model spec {spec!r}: {err}") from err
        factory = getattr(module, attr, None)
        if factory is None or not callable(factory):
            raise ModelSpecError(f"{mod_name} has no callable {attr!r} (model spec {spec!r}).")
        model = factory()
        if not isinstance(model, nn.Module):
            raise ModelSpecError(f"{spec} returned {type(model).__name__}, not a torch.nn.Module.")
        if weights is not None:
            wp = Path(weights)
            _apply_weights(model, load_weights(wp, allow_pickle=allow_pickle), wp)
        model.layerscope_source = ModelSource(kind="import", spec=spec, weights=str(weights) if weights else None)  # type: ignore[assignment]
        return model.eval()
    raise ModelSpecError(
        f"Cannot load a model from {spec!r}: it is not a bundled pretrained name ({', '.join(PRETRAINED)}), "
        "an existing run folder or checkpoint, a .pt2 file, or a package.module:factory import path."
    )
