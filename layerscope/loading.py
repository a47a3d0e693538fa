"""Load a model from a ``--model`` spec, never running pickled code unless asked to.

Specs, tried in this order:

1. A bundled pretrained name: ``resnet20-cifar10``, ``mnist-mlp``, ``mnist-cnn`` (also with a
   ``pretrained:`` prefix).
2. A run folder written by ``layerscope train`` (its last checkpoint), ``RUN@EPOCH`` for a given
   checkpoint, or a checkpoint file inside a run folder.
3. A ``torch.export`` program file (``.pt2``), checked member by member against the layout
   torch writes and loaded as a module tree (:func:`load_exported`); exported programs fixed
   their train/eval behaviour at export, so put models in eval mode with :func:`set_eval`.
4. ``hf:FOLDER_OR_INSTALLED_NAME`` — a Hugging Face model and tokenizer from local files only
   (see :mod:`layerscope.models.hf`; needs the ``[text]`` extra).
5. ``package.module:factory`` — an import path to a callable returning an ``nn.Module``; weights
   from ``weights=`` (``.safetensors``, or a state_dict saved with ``torch.save``).

Weight files are read with ``safetensors`` or ``torch.load(weights_only=True)``. A file that can
only be read by unpickling arbitrary objects raises :class:`~layerscope.exceptions.UnsafeFileError`
explaining the risk and the opt-in (``allow_pickle=True``, CLI ``--allow-pickle``); a file that is
not a well-formed pickle at all raises :class:`~layerscope.exceptions.WeightsError` ("corrupt").
"""

from __future__ import annotations

import importlib
import io
import json
import os
import pickle
import pickletools
import re
import zipfile
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .models.source import ModelSource
from .seam import is_exported, set_eval
from .exceptions import ModelSpecError, UnsafeFileError, UnsupportedFileError, WeightsError
from .models import PRETRAINED, build_model, load_pretrained
from .training import RUN_FILE, TrainRun

__all__ = ["load_model", "load_weights", "load_run_model", "load_exported", "set_eval", "is_exported", "ModelSource"]

_PICKLE_RISK = (
    "Unpickling runs whatever code the file's author put in it, so layerscope does not do it by "
    "default. If you trust where {path} came from, pass --allow-pickle (Python: allow_pickle=True); "
    "better, re-save it as a state_dict with safetensors."
)


def _pickle_stream(path: Path) -> bytes | None:
    """The pickle a ``torch.save`` file starts with (``data.pkl`` of a zip), or ``None`` if unreadable."""
    try:
        if zipfile.is_zipfile(path):
            with zipfile.ZipFile(path) as zf:
                pkl = [n for n in zf.namelist() if n.endswith("/data.pkl") or n == "data.pkl"]
                return zf.read(pkl[0]) if pkl else None
        with open(path, "rb") as fh:
            return fh.read(64 * 1024 * 1024)
    except (OSError, zipfile.BadZipFile, EOFError, ValueError, NotImplementedError):
        return None


def _is_wellformed_pickle(data: bytes) -> bool:
    """Whether ``data`` starts with a complete, well-formed pickle of protocol >= 2 (as ``torch.save``
    writes): opcodes parsed and the stack simulated by :func:`pickletools.dis`, nothing run."""
    if not data.startswith(b"\x80"):
        return False
    try:
        pickletools.dis(data, out=io.StringIO())
    except Exception:  # pickletools raises ValueError and others on garbage
        return False
    return True


def _torch_load_safe(path: Path, allow_pickle: bool) -> Any:
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        # weights_only refuses both a pickle that needs globals and plain garbage with this one
        # exception type; only the first deserves the --allow-pickle hint.
        data = _pickle_stream(path)
        if data is None or not _is_wellformed_pickle(data):
            raise WeightsError(
                f"{path} is not a readable PyTorch file (corrupt): it holds no well-formed pickle. "
                "Re-save it with torch.save(model.state_dict(), path) or safetensors."
            ) from err
        if not allow_pickle:
            raise UnsafeFileError(
                f"{path} holds more than tensors: loading it needs full unpickling ({_first_line(err)}). "
                + _PICKLE_RISK.format(path=path)
            ) from err
    except Exception as err:  # a weights_only load runs no code from the file: any other failure is a parse error
        raise WeightsError(
            f"{path} is not a readable PyTorch file (corrupt or truncated): {_first_line(err)}. "
            "Re-save it with torch.save(model.state_dict(), path) or safetensors."
        ) from err
    try:
        return torch.load(path, map_location="cpu", weights_only=False)
    except Exception as err:  # the file's own code may raise anything
        raise WeightsError(f"{path} could not be loaded even with pickle allowed: {_first_line(err)}") from err


def _first_line(err: BaseException) -> str:
    text = str(err).strip()
    return (text.splitlines()[0][:300] if text else type(err).__name__)


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


# ------------------------------------------------------------------------------ .pt2 programs
# The layout torch.export.save writes (torch 2.13): every member under one root folder,
#   archive_format ("pt2"), archive_version ("0"), byteorder, .data/version, .data/serialization_id,
#   models/model.json, data/sample_inputs/model.pt,
#   data/weights/model_weights_config.json + data/weights/weight_<i>,
#   data/constants/model_constants_config.json + data/constants/tensor_<i>,
#   extra/<name> (extra_files, read back as text).
# torch.export.load unpickles with weights_only=False: config entries marked use_pickle (tensor
# subclasses), custom_obj_/opaque_obj_ constants, a legacy data/weights/model.pt or
# data/constants/model.pt member, sample inputs that fail a weights_only load, and every member of
# the pre-2.8 flat layout (serialized_*.pt at the top level); it also loads compiled code from
# data/aotinductor/. Anything outside the layout above is refused unless allow_pickle is given.
_PT2_FIXED = {"archive_format", "archive_version", "byteorder", ".data/version", ".data/serialization_id",
              "models/model.json", "data/sample_inputs/model.pt",
              "data/weights/model_weights_config.json", "data/constants/model_constants_config.json"}
_PT2_PAYLOAD = {"data/weights/": re.compile(r"weight_\d+"), "data/constants/": re.compile(r"tensor_\d+")}
_PT2_MAX_MEMBERS = 100_000


def _pt2_refuse(path: Path, what: str) -> UnsafeFileError:
    return UnsafeFileError(
        f"{path} is not a plain torch.export program: {what}. Loading it would unpickle code or load compiled "
        "code. " + _PICKLE_RISK.format(path=path)
    )


def _pt2_members(path: Path) -> tuple[str, dict[str, bytes]]:
    """The members of a ``.pt2`` zip read once into memory, keyed by their name under the root."""
    try:
        zf = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as err:
        raise WeightsError(f"{path} is not a torch.export archive (not a readable zip file): {err}") from err
    with zf:
        infos = zf.infolist()
        if not infos:
            raise WeightsError(f"{path} is an empty zip file, not a torch.export archive.")
        if len(infos) > _PT2_MAX_MEMBERS:
            raise WeightsError(f"{path} has {len(infos)} members; a torch.export archive has far fewer.")
        names = [i.filename for i in infos]
        dup = sorted({n for n in names if names.count(n) > 1}) if len(set(names)) != len(names) else []
        if dup:
            raise _pt2_refuse(path, f"member {dup[0]} appears more than once")
        root = names[0].split("/", 1)[0]
        members: dict[str, bytes] = {}
        for info in infos:
            if info.is_dir():
                continue
            head, sep, rel = info.filename.partition("/")
            if info.compress_type != zipfile.ZIP_STORED and info.file_size > 200 * info.compress_size + (1 << 20):
                raise WeightsError(
                    f"{path}: member {info.filename} claims to inflate {info.compress_size} bytes into "
                    f"{info.file_size} (a zip bomb?); torch.export.save stores members uncompressed."
                )
            if not sep or head != root:
                raise _pt2_refuse(path, f"member {info.filename} lies outside the archive folder {root}/ "
                                  "(the pre-2.8 flat layout, which torch loads by full unpickling)")
            try:
                members[rel] = zf.read(info)
            except (zipfile.BadZipFile, OSError, EOFError, ValueError, NotImplementedError) as err:
                raise WeightsError(f"{path}: member {info.filename} cannot be read (corrupt archive?): {err}") from err
    return root, members


def _pt2_config(path: Path, root: str, members: dict[str, bytes], name: str) -> dict[str, Any]:
    try:
        cfg = json.loads(members[name]).get("config")
    except (ValueError, AttributeError) as err:
        raise WeightsError(f"{path}: member {root}/{name} is not valid JSON: {err}") from err
    if not isinstance(cfg, dict) or not all(isinstance(v, dict) for v in cfg.values()):
        raise WeightsError(f"{path}: member {root}/{name} has no 'config' mapping of payload entries.")
    return cfg


def _check_pt2(path: Path) -> bytes:
    """Check a ``.pt2`` against the layout torch 2.13 writes and return a clean copy of it.

    The copy holds exactly the members checked here (re-packed by hand: torch offers no safe mode
    for ``torch.export.load``), so what torch reads is what was checked, whatever tricks the original
    zip plays (duplicate names, data outside the root, two central directories). Raises
    :class:`UnsafeFileError` naming the first member outside the layout.
    """
    root, members = _pt2_members(path)
    missing = [m for m in ("archive_format", "archive_version", "models/model.json") if m not in members]
    if missing:
        raise WeightsError(f"{path} is not a torch.export archive: it lacks {root}/{missing[0]}.")
    if members["archive_format"] != b"pt2" or members["archive_version"] != b"0":
        raise WeightsError(
            f"{path}: archive_format/archive_version are {members['archive_format'][:20]!r}/"
            f"{members['archive_version'][:20]!r}; this torch reads 'pt2'/'0' archives (re-export it)."
        )
    referenced: set[str] = set()
    for folder, kind in (("data/weights/", "weights"), ("data/constants/", "constants")):
        cfg_name = f"{folder}model_{kind}_config.json"
        if cfg_name not in members:
            raise WeightsError(f"{path} is not a complete torch.export archive: it lacks {root}/{cfg_name}.")
        for fqn, entry in _pt2_config(path, root, members, cfg_name).items():
            pn = str(entry.get("path_name", ""))
            member = folder + pn
            if entry.get("use_pickle") or not _PT2_PAYLOAD[folder].fullmatch(pn):
                raise _pt2_refuse(path, f"entry {fqn!r} of {root}/{cfg_name} is stored as pickled member {root}/{member}")
            if member not in members:
                raise WeightsError(f"{path}: {root}/{cfg_name} names {root}/{member}, which the archive lacks.")
            referenced.add(member)
    for rel in members:
        if rel in _PT2_FIXED or rel.startswith("extra/"):
            continue
        folder, _, base = rel.rpartition("/")
        pattern = _PT2_PAYLOAD.get(folder + "/")
        if pattern is None or not pattern.fullmatch(base):
            raise _pt2_refuse(path, f"unexpected member {root}/{rel}")
    stray = sorted(m for m in members if m.startswith(("data/weights/weight_", "data/constants/tensor_")) and m not in referenced)
    if stray:
        raise _pt2_refuse(path, f"unexpected member {root}/{stray[0]} (named by no config)")
    sample = members.get("data/sample_inputs/model.pt", b"")
    if sample:
        try:
            torch.load(io.BytesIO(sample), map_location="cpu", weights_only=True)
        except Exception as err:
            raise _pt2_refuse(path, f"member {root}/data/sample_inputs/model.pt needs full unpickling "
                              f"({str(err).splitlines()[0][:200]})") from err
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED) as out:
        for rel, data in members.items():
            out.writestr(f"archive/{rel}", data)
    return buf.getvalue()


def _static_batch(program: Any) -> int | None:
    """Dim 0 of the program's first tensor input when it is fixed, ``None`` when it is dynamic."""
    user = set(program.graph_signature.user_inputs)
    for node in program.graph.nodes:
        if node.op == "placeholder" and node.name in user:
            val = node.meta.get("val")
            shape = getattr(val, "shape", None)
            if shape is None or len(shape) == 0:
                continue
            return int(shape[0]) if isinstance(shape[0], int) else None
    return None


def load_exported(path: str | os.PathLike[str], *, allow_pickle: bool = False) -> nn.Module:
    """Load a ``torch.export`` program (``.pt2``) as a module tree whose submodules run.

    The archive is checked against the layout torch writes (see :func:`_check_pt2`) and loaded from
    the checked copy, so no member is unpickled unless ``allow_pickle=True``. The program is turned
    back into modules with :func:`torch.export.unflatten`: the submodule names are those of the
    exported module (``features.0``, ``fc``), and forward hooks on them fire.

    The result carries ``layerscope_exported = True`` (its computation was fixed at export time:
    ``eval()``/``train()`` change nothing, use :func:`set_eval`) and ``layerscope_static_batch``:
    the batch size the program was exported with when its batch dimension is static (it then only
    accepts batches of exactly that size), ``None`` when dynamic.
    """
    p = Path(path)
    if not p.is_file():
        raise WeightsError(f"Program file {p} does not exist.")
    source: Any = str(p) if allow_pickle else io.BytesIO(_check_pt2(p))
    try:
        program = torch.export.load(source)
    except Exception as err:  # torch raises many types for a malformed program
        raise WeightsError(f"{p} is not a loadable torch.export program: {str(err).splitlines()[0][:300] if str(err) else type(err).__name__}") from err
    try:
        model = torch.export.unflatten(program)
    except Exception as err:
        raise WeightsError(f"{p}: torch.export.unflatten could not rebuild its module tree: {err}") from err
    model.layerscope_exported = True  # type: ignore[assignment]
    model.layerscope_static_batch = _static_batch(program)  # type: ignore[assignment]
    model.layerscope_source = ModelSource(kind="export", path=str(p))  # type: ignore[assignment]
    return model


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
            return load_exported(p, allow_pickle=allow_pickle)
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
