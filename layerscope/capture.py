"""Capture layer activations with forward hooks that never outlive the call.

Two entry points:

* :class:`capture` — a context manager that hooks only the requested layers, records their
  outputs during forward passes and removes every hook in ``finally``. It can stop the forward
  pass once the deepest requested layer has run (nothing above it is computed).
* :func:`collect_activations` — runs a dataset through the model in batches and returns an
  :class:`Activations` result: one array per layer, labels and sample ids alongside, optional
  spatial reduction inside the hook, and a memory budget above which arrays stream to ``.npy``
  files on disk instead of RAM.

After either, also after an exception inside the model, the model has no hooks left and its
``training`` flags and ``requires_grad`` flags are as before; parameters are never written.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Literal, Mapping, Sequence

import numpy as np
import torch
from torch import nn

from ._io import read_json, result_folder, write_json
from ._progress import Tracker, no_progress
from .exceptions import DataError, InputShapeError, ParameterError
from .layers import resolve_layers

__all__ = [
    "capture",
    "model_state_guard",
    "collect_activations",
    "Activations",
    "reduce_spatial",
    "first_tensor",
    "model_device",
    "run_model",
]

Reduce = Literal["mean", "max"] | None


class _StopForward(Exception):
    """Raised inside a hook to end a forward pass early; caught by :meth:`capture.run`."""


def model_device(model: nn.Module, device: torch.device | str | None = None) -> torch.device:
    """The device of ``model``'s first parameter or buffer (CPU if it has none), or ``device``."""
    if device is not None:
        return torch.device(device)
    for param in model.parameters():
        return param.device
    for buf in model.buffers():
        return buf.device
    return torch.device("cpu")


@contextlib.contextmanager
def model_state_guard(model: nn.Module) -> Iterator[None]:
    """Restore every module's ``training`` flag and every parameter's ``requires_grad`` on exit.

    Used by every analysis that switches the model to ``eval()`` or freezes parameters, so that
    the caller's model is exactly as it was afterwards, also after an exception.
    """
    training = [(m, m.training) for m in model.modules()]
    grads = [(p, p.requires_grad) for p in model.parameters()]
    try:
        yield
    finally:
        for m, flag in training:
            m.training = flag
        for p, flag in grads:
            p.requires_grad_(flag)


def first_tensor(output: Any) -> torch.Tensor | None:
    """The tensor a layer produced: itself, or the first tensor of a tuple/list/dict output."""
    if isinstance(output, torch.Tensor):
        return output
    if isinstance(output, (tuple, list)):
        for item in output:
            t = first_tensor(item)
            if t is not None:
                return t
    if isinstance(output, Mapping):
        for item in output.values():
            t = first_tensor(item)
            if t is not None:
                return t
    return None


def reduce_spatial(t: torch.Tensor, reduce: Reduce) -> torch.Tensor:
    """Reduce the dimensions after the channel dimension of ``(N, C, ...)`` by mean or max.

    Tensors of 2 or fewer dimensions are returned unchanged.
    """
    if reduce is None or t.ndim <= 2:
        return t
    if reduce == "mean":
        return t.flatten(2).mean(dim=2)
    if reduce == "max":
        return t.flatten(2).amax(dim=2)
    raise ParameterError(f"reduce must be None, 'mean' or 'max'; got {reduce!r}.")


class capture:
    """Record the outputs of chosen layers during forward passes.

    Parameters
    ----------
    model
        Any ``nn.Module``. Only the named layers are hooked.
    layers
        Dotted ``named_modules()`` paths. Unknown names raise ``LayerNotFoundError`` listing the
        closest real names.
    reduce
        ``None`` (keep the full output), ``"mean"`` or ``"max"`` over spatial positions; applied
        inside the hook, so full conv maps are never stored.
    detach
        If ``True`` (default) the stored tensors are detached; set ``False`` to keep the graph for
        gradient-based methods (activation maximization, projections).
    keep
        ``"last"``: the output of the latest call; ``"all"``: a list of outputs, one per call
        (a batch loop); ``"shape"``: only the output shape (no tensors kept).
    stop_early
        If ``True``, :meth:`run` ends the forward pass as soon as every requested layer has
        produced its output; layers above are not computed and :meth:`run` returns ``None``.

    Examples
    --------
    >>> with capture(model, ["fc1", "fc2"]) as cap:
    ...     logits = cap.run(x)
    >>> cap["fc1"].shape
    """

    def __init__(
        self,
        model: nn.Module,
        layers: Sequence[str] | str,
        *,
        reduce: Reduce = None,
        detach: bool = True,
        keep: Literal["last", "all", "shape"] = "last",
        stop_early: bool = False,
    ) -> None:
        if isinstance(layers, str):
            layers = [layers]
        if keep not in ("last", "all", "shape"):
            raise ParameterError(f"keep must be 'last', 'all' or 'shape'; got {keep!r}.")
        if reduce not in (None, "mean", "max"):
            raise ParameterError(f"reduce must be None, 'mean' or 'max'; got {reduce!r}.")
        self.model = model
        self.layers = list(dict.fromkeys(layers))
        self.modules = resolve_layers(model, self.layers)
        self.reduce: Reduce = reduce
        self.detach = detach
        self.keep = keep
        self.stop_early = stop_early
        self.activations: dict[str, torch.Tensor] = {}
        self.history: dict[str, list[torch.Tensor]] = {n: [] for n in self.layers}
        self.shapes: dict[str, tuple[int, ...]] = {}
        self._handles: list[torch.utils.hooks.RemovableHandle] = []
        self._fired: set[str] = set()
        self._active = False

    # -- context manager -------------------------------------------------------------------
    def __enter__(self) -> "capture":
        if self._active:
            raise RuntimeError("this capture is already active; create a new one")
        self._active = True
        try:
            for name, module in self.modules.items():
                self._handles.append(module.register_forward_hook(self._make_hook(name)))
        except BaseException:
            self._remove()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self._remove()

    def _remove(self) -> None:
        for h in self._handles:
            h.remove()
        self._handles.clear()
        self._active = False

    # -- hooks -----------------------------------------------------------------------------
    def _make_hook(self, name: str) -> Callable[[nn.Module, Any, Any], None]:
        def hook(module: nn.Module, inputs: Any, output: Any) -> None:
            t = first_tensor(output)
            if t is None:
                return
            t = reduce_spatial(t, self.reduce)
            if self.detach:
                t = t.detach()
            self.shapes[name] = tuple(t.shape[1:])
            if self.keep == "last":
                self.activations[name] = t
            elif self.keep == "all":
                self.activations[name] = t
                self.history[name].append(t)
            self._fired.add(name)
            if self.stop_early and len(self._fired) == len(self.layers):
                raise _StopForward()

        return hook

    def __getitem__(self, name: str) -> torch.Tensor:
        if name not in self.activations:
            if name in self.modules:
                raise KeyError(
                    f"layer {name!r} was hooked but did not run in the last forward pass "
                    "(is it used by the model's forward()?)"
                )
            raise KeyError(f"layer {name!r} was not requested; requested: {self.layers}")
        return self.activations[name]

    def run(self, *inputs: Any, **kwargs: Any) -> Any:
        """Call the model on ``inputs``; return its output (``None`` if stopped early).

        A shape mismatch inside the model is re-raised as
        :class:`~layerscope.exceptions.InputShapeError` naming the input shape that came.
        """
        if not self._active:
            raise RuntimeError("capture.run() must be called inside `with capture(...)`")
        self._fired = set()
        try:
            return run_model(self.model, *inputs, **kwargs)
        except _StopForward:
            return None


def run_model(model: nn.Module, *inputs: Any, **kwargs: Any) -> Any:
    """Call ``model(*inputs)``, turning torch's shape errors into :class:`InputShapeError`."""
    try:
        return model(*inputs, **kwargs)
    except _StopForward:
        raise
    except RuntimeError as err:
        msg = str(err)
        keys = ("shape", "size", "mat1", "dimension", "Expected", "expected input", "channels")
        if any(k in msg for k in keys):
            shapes = [tuple(x.shape) for x in inputs if isinstance(x, torch.Tensor)]
            expected = getattr(model, "input_shape", None)
            exp = (
                f"(N, {', '.join(str(s) for s in expected)})"
                if expected is not None
                else "the shape the model was built for"
            )
            raise InputShapeError(
                f"{type(model).__name__} cannot take an input of shape "
                f"{shapes[0] if len(shapes) == 1 else shapes}; it expects {exp}. Use data that "
                f"matches the model (e.g. MNIST 1x28x28 for MNIST models, CIFAR-10 3x32x32 for "
                f"the ResNet-20). PyTorch said: {msg.splitlines()[0]}"
            ) from err
        raise


# ------------------------------------------------------------------------------------------
# Collecting activations over a dataset
# ------------------------------------------------------------------------------------------


@dataclass
class Activations:
    """Activations of several layers over a dataset.

    Attributes
    ----------
    arrays
        ``{layer: array of shape (N, ...)}``; NumPy arrays in RAM or read-only memory-mapped
        ``.npy`` files when the memory budget was exceeded.
    labels
        ``(N,)`` int64 class labels (``-1`` where the data has none).
    sample_ids
        ``(N,)`` int64 index of each row in the dataset.
    predictions
        ``(N,)`` int64 arg-max of the model output, if requested.
    extra_labels
        Other per-sample labels carried by the dataset (e.g. ``{"speaker": ...}``).
    directory
        Where the arrays live on disk, if they were streamed or saved.
    """

    arrays: dict[str, np.ndarray]
    labels: np.ndarray
    sample_ids: np.ndarray
    predictions: np.ndarray | None = None
    extra_labels: dict[str, np.ndarray] = field(default_factory=dict)
    reduce: Reduce = None
    directory: Path | None = None
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def layers(self) -> list[str]:
        return list(self.arrays)

    def __getitem__(self, layer: str) -> np.ndarray:
        return self.arrays[layer]

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe summary (shapes, not values)."""
        return {
            "layers": {k: list(v.shape[1:]) for k, v in self.arrays.items()},
            "n": len(self),
            "reduce": self.reduce,
            "has_predictions": self.predictions is not None,
            "extra_labels": list(self.extra_labels),
            "meta": self.meta,
        }

    def save(self, directory: str | os.PathLike[str]) -> Path:
        """Write one ``.npy`` per layer plus ``labels.npz`` and ``activations.json``.

        The folder is written through :func:`layerscope._io.result_folder`: one writer at a time
        (a second gets a one-line error), and ``directory`` is the old folder or the new one,
        never a mix, also when the process is killed. Arrays memory-mapped from whole ``.npy``
        files are hard-linked (or copied) instead of being rewritten; files already in the
        staging folder stay where they are.
        """
        if len(self.sample_ids) != len(self) or any(len(a) != len(self) for a in self.arrays.values()):
            raise DataError(
                f"Activations rows disagree: labels {len(self)}, sample_ids {len(self.sample_ids)}, "
                + ", ".join(f"{k} {len(a)}" for k, a in self.arrays.items())
                + "; every array needs one row per sample."
            )
        with result_folder(directory) as d:
            files = {}
            for i, (name, arr) in enumerate(self.arrays.items()):
                fname = f"layer{i:03d}_{_safe(name)}.npy"
                target = d / fname
                src = _whole_npy_file(arr)
                if src is not None and src == target.resolve():
                    pass  # streamed into the staging folder already
                elif src is not None:
                    try:
                        os.link(src, target)
                    except OSError:
                        shutil.copyfile(src, target)
                else:
                    with open(target, "wb") as fh:
                        np.save(fh, np.asarray(arr))
                files[name] = fname
            with open(d / "labels.npz", "wb") as fh:
                arrays: dict[str, Any] = {"labels": self.labels, "sample_ids": self.sample_ids}
                arrays.update({f"extra_{k}": v for k, v in self.extra_labels.items()})
                if self.predictions is not None:
                    arrays["predictions"] = self.predictions
                np.savez(fh, **arrays)
            write_json(d / "activations.json", {**self.to_dict(), "files": files})
        return Path(directory)

    @classmethod
    def load(cls, directory: str | os.PathLike[str], mmap: bool = True) -> "Activations":
        """Read a folder written by :meth:`save` (or ``layerscope capture``).

        Every file is checked against ``activations.json`` before anything is returned: the
        files it lists exist, each array has ``n`` rows and the per-sample shape listed there,
        and labels, sample ids, predictions and extra labels have ``n`` entries. A folder that
        fails a check (e.g. 40,000 rows of activations beside 2,000 labels: two runs mixed) is a
        :class:`~layerscope.exceptions.DataError` naming the files.
        """
        import zipfile

        d = Path(directory)
        meta_path = d / "activations.json"
        if not meta_path.is_file():
            raise DataError(
                f"{d} holds no activations.json; expected a folder written by "
                "`layerscope capture` or Activations.save()."
            )
        info = read_json(meta_path)
        files = info.get("files") if isinstance(info, dict) else None
        n = info.get("n") if isinstance(info, dict) else None
        shapes = info.get("layers") if isinstance(info, dict) else None
        if not isinstance(files, dict) or not isinstance(n, int) or not isinstance(shapes, dict):
            raise DataError(
                f"{meta_path} lacks 'files', 'n' or 'layers' (or they have the wrong type); it was not written "
                "by layerscope. Re-run `layerscope capture`."
            )
        arrays = {}
        for name, fname in files.items():
            path = d / str(fname)
            if Path(str(fname)).name != str(fname) or not path.is_file():
                raise DataError(f"{meta_path} lists {fname!r} for layer {name!r}, but {path} does not exist.")
            try:
                arr = np.load(path, mmap_mode="r" if mmap else None, allow_pickle=False)
            except (OSError, ValueError, EOFError) as err:
                raise DataError(f"{path} is not a readable .npy file ({err}); it is truncated or corrupt.") from None
            want = [n, *shapes.get(name, [])] if name in shapes else None
            if want is None or list(arr.shape) != want:
                raise DataError(
                    f"{path} has shape {tuple(arr.shape)}, but {meta_path} says layer {name!r} has "
                    f"{'no entry' if want is None else tuple(want)}; the folder mixes two runs. Re-run the capture "
                    "into a new --out."
                )
            arrays[name] = arr
        lab_path = d / "labels.npz"
        if not lab_path.is_file():
            raise DataError(f"{d} has no labels.npz next to {meta_path}; the folder is incomplete.")
        try:
            with np.load(lab_path, allow_pickle=False) as z:
                lab = {k: z[k] for k in z.files}
        except (OSError, ValueError, EOFError, zipfile.BadZipFile) as err:
            raise DataError(f"{lab_path} is not a readable .npz file ({err}); it is truncated or corrupt.") from None
        if "labels" not in lab or "sample_ids" not in lab:
            raise DataError(f"{lab_path} lacks 'labels' or 'sample_ids'; it was not written by layerscope.")
        wrong = {k: len(v) for k, v in lab.items() if v.ndim != 1 or len(v) != n}
        if wrong:
            raise DataError(
                f"{lab_path} has {', '.join(f'{k}: {v} rows' for k, v in wrong.items())}, but {meta_path} and the "
                f"arrays have n = {n}; the folder mixes two runs. Re-run the capture into a new --out."
            )
        extra = {k[len("extra_") :]: v for k, v in lab.items() if k.startswith("extra_")}
        return cls(
            arrays=arrays,
            labels=lab["labels"],
            sample_ids=lab["sample_ids"],
            predictions=lab.get("predictions"),
            extra_labels=extra,
            reduce=info.get("reduce"),
            directory=d,
            meta=info.get("meta", {}),
        )


def _whole_npy_file(arr: Any) -> Path | None:
    """The ``.npy`` file ``arr`` maps in whole (not a view of part of it), else None."""
    import mmap as _mmap

    if not isinstance(arr, np.memmap) or getattr(arr, "filename", None) is None:
        return None
    try:
        path = Path(str(arr.filename)).resolve()
        with open(path, "rb") as fh:
            version = np.lib.format.read_magic(fh)
            read = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
            shape, fortran, dtype = read(fh)
            header_end = fh.tell()
        base = np.frombuffer(arr._mmap, dtype=np.uint8).ctypes.data  # type: ignore[attr-defined]
        start = base + header_end % _mmap.ALLOCATIONGRANULARITY
    except (OSError, ValueError, AttributeError, TypeError):
        return None
    if (
        tuple(arr.shape) == tuple(shape) and arr.dtype == dtype and not fortran
        and arr.flags.c_contiguous and arr.ctypes.data == start
    ):
        return path
    return None


def _safe(name: str) -> str:
    return "".join(c if c.isalnum() or c in "._-" else "_" for c in name) or "layer"


class _NpyStream:
    """Append rows to a ``.npy`` file with a known final shape, without memory-mapping it.

    Written by hand: NumPy's ``open_memmap`` would keep every written page resident (they count
    towards RSS); plain sequential writes keep memory flat.
    """

    def __init__(self, path: Path, shape: tuple[int, ...], dtype: np.dtype[Any]) -> None:
        self.path = path
        self.shape = shape
        self.dtype = np.dtype(dtype)
        self._fh = open(path, "wb")
        np.lib.format.write_array_header_1_0(
            self._fh,
            {"descr": np.lib.format.dtype_to_descr(self.dtype), "fortran_order": False, "shape": shape},
        )
        self.rows = 0

    def write(self, block: np.ndarray) -> None:
        self._fh.write(np.ascontiguousarray(block, dtype=self.dtype).tobytes())
        self.rows += block.shape[0]

    def close(self) -> None:
        self._fh.close()


def _batches(
    dataset: Any, batch_size: int, indices: Sequence[int] | np.ndarray | None
) -> Iterator[tuple[np.ndarray, Any, torch.Tensor]]:
    """Yield ``(sample_ids, x, y)`` batches; fast path for in-memory tensor datasets."""
    n = len(dataset)
    ids_all = np.arange(n) if indices is None else np.asarray(indices, dtype=np.int64)
    tensors = getattr(dataset, "tensors", None)
    for start in range(0, len(ids_all), batch_size):
        ids = ids_all[start : start + batch_size]
        if tensors is not None and indices is None:
            x, y = tensors[0][start : start + len(ids)], tensors[1][start : start + len(ids)]
        elif tensors is not None:
            idx = torch.as_tensor(ids)
            x, y = tensors[0][idx], tensors[1][idx]
        else:
            items = [dataset[int(i)] for i in ids]
            x = torch.stack([torch.as_tensor(it[0]) for it in items])
            y = torch.as_tensor([int(it[1]) for it in items])
        yield ids, x, y


def collect_activations(
    model: nn.Module,
    dataset: Any,
    layers: Sequence[str] | str,
    *,
    batch_size: int = 256,
    reduce: Reduce = None,
    indices: Sequence[int] | np.ndarray | None = None,
    predictions: bool = False,
    memory_budget: int | None = None,
    out_dir: str | os.PathLike[str] | None = None,
    dtype: Any = np.float32,
    device: torch.device | str | None = None,
    progress: Tracker | None = None,
) -> Activations:
    """Run ``dataset`` through ``model`` in eval mode and collect the outputs of ``layers``.

    Parameters
    ----------
    model
        Any ``nn.Module``; put in ``eval()`` for the pass, then restored.
    dataset
        A map-style dataset whose items are ``(x, y)`` (``TensorDataset`` and layerscope's
        datasets take a fast slicing path). Extra per-sample labels in ``dataset.extra_labels``
        (e.g. the speaker of a recording) are kept alongside.
    layers
        Dotted layer names.
    batch_size
        Samples per forward pass.
    reduce
        ``None``, ``"mean"`` or ``"max"``: spatial reduction of conv maps inside the hook,
        so ``(N, C, H, W)`` becomes ``(N, C)``.
    indices
        Subset of dataset rows to use (default: all), in this order.
    predictions
        Also record the arg-max of the model output (runs the whole model; otherwise the forward
        pass stops after the deepest requested layer).
    memory_budget
        Bytes. If the arrays would exceed it, they are streamed to ``.npy`` files in ``out_dir``
        (a temporary folder if not given) and returned memory-mapped, read-only.
    out_dir
        Where to stream / save arrays. If given, the result is also saved there.
    device
        Defaults to the model's device.
    progress
        A tracker ``(iterable, total, description) -> iterable`` (the CLI passes a progress bar).

    Returns
    -------
    Activations
        ``arrays[layer]`` has shape ``(N, *layer_output_shape)`` (or ``(N, C)`` when reduced).
    """
    if isinstance(layers, str):
        layers = [layers]
    if batch_size < 1:
        raise ParameterError(f"batch_size must be >= 1; got {batch_size}.")
    n_total = len(dataset) if indices is None else len(indices)
    if n_total == 0:
        raise DataError("The dataset is empty: there is nothing to capture. Check the data spec or the subset.")
    track = progress or no_progress
    dev = model_device(model, device)
    out_path = Path(out_dir) if out_dir is not None else None
    streams: dict[str, _NpyStream] = {}
    arrays: dict[str, np.ndarray] = {}
    tmp_dir: Path | None = None
    labels = np.empty(n_total, dtype=np.int64)
    ids_out = np.empty(n_total, dtype=np.int64)
    preds = np.empty(n_total, dtype=np.int64) if predictions else None
    row = 0
    n_batches = (n_total + batch_size - 1) // batch_size
    success = False
    try:
        with model_state_guard(model), torch.no_grad():
            model.eval()
            with capture(model, layers, reduce=reduce, stop_early=not predictions) as cap:
                for ids, x, y in track(_batches(dataset, batch_size, indices), n_batches, "capture"):
                    out = cap.run(x.to(dev))
                    b = len(ids)
                    if row == 0:
                        missing = [n for n in cap.layers if n not in cap.activations]
                        if missing:
                            raise InputShapeError(
                                f"Layers {missing} did not run in the forward pass, so they have no "
                                "activations; pick layers that the model's forward() calls."
                            )
                        per_sample = {
                            n: int(np.prod(cap.activations[n].shape[1:])) * np.dtype(dtype).itemsize
                            for n in cap.layers
                        }
                        total_bytes = sum(per_sample.values()) * n_total
                        stream = memory_budget is not None and total_bytes > memory_budget
                        if stream:
                            import tempfile

                            if out_path is None:
                                tmp_dir = Path(tempfile.mkdtemp(prefix="layerscope-capture-"))
                            else:  # a leftover name of out_path: ignored by readers, cleaned by the next writer
                                out_path.parent.mkdir(parents=True, exist_ok=True)
                                tmp_dir = Path(tempfile.mkdtemp(prefix=f".{out_path.name}.tmp-{os.getpid()}-stream-", dir=out_path.parent))
                            target_dir = tmp_dir
                            assert target_dir is not None
                            target_dir.mkdir(parents=True, exist_ok=True)
                            for i, n in enumerate(cap.layers):
                                shape = (n_total, *cap.activations[n].shape[1:])
                                path = target_dir / f".partial-{os.getpid()}-{secrets.token_hex(4)}_layer{i:03d}_{_safe(n)}.npy"
                                streams[n] = _NpyStream(path, shape, dtype)
                        else:
                            for n in cap.layers:
                                arrays[n] = np.empty((n_total, *cap.activations[n].shape[1:]), dtype=dtype)
                    for n in cap.layers:
                        a = cap.activations[n].cpu().numpy()
                        if n in streams:
                            streams[n].write(a)
                        else:
                            arrays[n][row : row + b] = a
                    labels[row : row + b] = y.numpy() if isinstance(y, torch.Tensor) else y
                    ids_out[row : row + b] = ids
                    if preds is not None:
                        logits = first_tensor(out)
                        if logits is None:
                            raise InputShapeError("predictions=True needs a model that returns a tensor of logits.")
                        preds[row : row + b] = logits.argmax(dim=1).cpu().numpy()
                    row += b
                    cap.activations.clear()
        success = True
    finally:
        for s in streams.values():
            s.close()
        if not success:
            for s in streams.values():
                with contextlib.suppress(FileNotFoundError):
                    s.path.unlink()
            if tmp_dir is not None:
                shutil.rmtree(tmp_dir, ignore_errors=True)
    for i, (n, s) in enumerate(streams.items()):
        final = s.path.with_name(f"layer{i:03d}_{_safe(n)}.npy")
        os.replace(s.path, final)
        arrays[n] = np.load(final, mmap_mode="r")
    extra = {}
    for k, v in (getattr(dataset, "extra_labels", None) or {}).items():
        v = np.asarray(v)
        extra[k] = v[ids_out]
    acts = Activations(
        arrays={n: arrays[n] for n in layers},
        labels=labels,
        sample_ids=ids_out,
        predictions=preds,
        extra_labels=extra,
        reduce=reduce,
        directory=(out_path or tmp_dir) if streams else None,
        meta={"dataset": getattr(dataset, "name", type(dataset).__name__)},
    )
    if out_path is not None:
        acts.save(out_path)  # old folder or new one, never a mix (result_folder)
        acts.directory = out_path
        if streams:  # map the saved files, then drop the stream folder
            acts.arrays = {n: np.load(out_path / f"layer{i:03d}_{_safe(n)}.npy", mmap_mode="r") for i, n in enumerate(acts.arrays)}
            if tmp_dir is not None:
                shutil.rmtree(tmp_dir, ignore_errors=True)
    return acts
