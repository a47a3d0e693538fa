"""Capture layer activations with forward hooks that never outlive the call.

Two entry points:

* :class:`capture` — a context manager that hooks only the requested layers, records their
  outputs during forward passes and removes every hook in ``finally``. It can stop the forward
  pass once the deepest requested layer has run (nothing above it is computed).
* :func:`collect_activations` — runs a dataset through the model in batches and returns an
  :class:`Activations` result: one array per layer, labels and sample ids alongside, optional
  spatial reduction inside the hook. Each output is copied once, inside the hook, into an array
  preallocated for all rows (optionally float16). A memory budget keeps in RAM the layers that fit
  and streams the others to ``.npy`` files; ``store="zarr"`` writes every layer into a chunked,
  compressed Zarr store (:mod:`layerscope.store`) read lazily by the analyses.
  :func:`layerscope.capture_shards.collect_activations_sharded` splits a capture over Ray workers.

After either, also after an exception inside the model, the model has no hooks left and its
``training`` flags and ``requires_grad`` flags are as before; parameters are never written.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import shutil
import weakref
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Literal, Mapping, ParamSpec, Sequence

import numpy as np
import torch
from torch import nn

from ._io import atomic_path, read_json, result_folder, write_json
from ._progress import ProgressArg, resolve_progress
from .exceptions import DataError, InputShapeError, LayerNotFoundError, LayerscopeError, ParameterError
from .layers import LayerInfo
from .seam import (
    REDUCTIONS,
    Batch,
    ReusedLayerError,
    _StopForward,
    layout_of,
    model_device,
    parse_layer_spec,
    reduce_output,
    run_model,
    select_output,
    static_chunks,
)

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

_P = ParamSpec("_P")

Reduce = Literal["mean", "max"] | None


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
        Any ``nn.Module``. Only the modules named by ``layers`` are hooked.
    layers
        Layer specs (:func:`layerscope.seam.parse_layer_spec`): dotted ``named_modules()`` paths,
        optionally with ``#k`` (which call of a reused module), ``[i]`` or ``:key`` (which element
        of a tuple/dict output; ``:h_n`` for recurrent layers). Unknown names raise
        ``LayerNotFoundError`` listing the closest real names.
    reduce
        ``None`` (keep the full output), ``"mean"``/``"max"`` (over spatial positions of a conv
        map, or over the tokens of a sequence, masked by the batch's attention mask), ``"first"``/
        ``"cls"``/``"last"`` (a token of a sequence), a callable ``fn(tensor, layout, mask)``, or a
        dict ``{layer: reduction}``. Applied inside the hook, so full maps are never stored; a
        reduction that cannot tell which axis holds the features is refused
        (:func:`layerscope.seam.reduce_output`).
    layouts
        ``{layer: "flat" | "spatial" | "sequence"}`` where the automatic layout
        (:func:`layerscope.seam.layout_of`) is ``"unknown"`` or wrong.
    detach
        If ``True`` (default) the stored tensors are detached; ``False`` keeps the graph for
        gradient-based methods.
    keep
        ``"last"``: the output of the latest call; ``"all"``: a list of outputs, one per
        :meth:`run`; ``"shape"``: only the output shape.
    stop_early
        If ``True``, :meth:`run` ends the forward pass as soon as every requested layer has
        produced its output; layers above are not computed and :meth:`run` returns ``None``. The
        first :meth:`run` always goes through the whole model, to count the calls of every hooked
        module (so a reused module is found whatever else is requested).
    eval
        Put the model in ``eval()`` mode inside the ``with`` block (default) and restore every
        module's flag afterwards.
    grad
        Run the forward passes with gradients (default: only when ``detach=False``).
    sink
        ``fn(layer, tensor)`` called inside the hook with each (reduced, detached) output instead of
        keeping it: the sink copies it where it belongs (``out[i:j].copy_(tensor)``, what
        :func:`collect_activations` does), so no output is kept, watched or copied twice. With a
        sink, :attr:`activations` stays empty; :attr:`shapes` and :attr:`layouts` are filled.

    Notes
    -----
    Recorded tensors are right also when a later operation of the model changes them in place
    (``ReLU(inplace=True)``, ``out += identity``): each stored tensor's version counter is checked
    after the pass, and if it moved, that layer is recorded as a copy and the pass is run again
    (in training mode with ``eval=False``, where a second pass would change batch-norm statistics,
    outputs are always copied). Layers whose output is never changed in place cost no copy.

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
        reduce: Any = None,
        layouts: Mapping[str, str] | None = None,
        detach: bool = True,
        keep: Literal["last", "all", "shape"] = "last",
        stop_early: bool = False,
        eval: bool = True,
        grad: bool | None = None,
        sink: Callable[[str, torch.Tensor], None] | None = None,
    ) -> None:
        if isinstance(layers, str):
            layers = [layers]
        if keep not in ("last", "all", "shape"):
            raise ParameterError(f"keep must be 'last', 'all' or 'shape'; got {keep!r}.")
        self.model = model
        self.layers = list(dict.fromkeys(layers))
        if not self.layers:
            raise LayerNotFoundError("No layer names given; pass at least one layer name.")
        self.specs = {name: parse_layer_spec(model, name) for name in self.layers}
        mods = dict(model.named_modules())
        self.modules = {name: mods[s.module] for name, s in self.specs.items()}
        self._reduce = {name: _reduction_for(reduce, name) for name in self.layers}
        for name, r in self._reduce.items():
            if r is not None and not callable(r) and r not in REDUCTIONS:
                raise ParameterError(
                    f"reduce must be None, one of {', '.join(REDUCTIONS)}, a callable or a dict of them; got {r!r} for {name!r}."
                )
        self.reduce = reduce
        self.layouts_given = dict(layouts or {})
        self.detach = detach
        self.keep = keep
        self.stop_early = stop_early
        self.eval = eval
        self.grad = (not detach) if grad is None else grad
        self.sink = sink
        self.activations: dict[str, torch.Tensor] = {}
        self.history: dict[str, list[torch.Tensor]] = {n: [] for n in self.layers}
        self.shapes: dict[str, tuple[int, ...]] = {}
        #: layout of each recorded layer ("flat", "spatial", "sequence", "unknown")
        self.layouts: dict[str, str] = {}
        #: calls of each hooked module in the first full forward pass
        self.calls: dict[str, int] = {}
        #: layers recorded as copies because the model changes their output in place
        self.copied: set[str] = set()
        self._handles: list[torch.utils.hooks.RemovableHandle] = []
        self._fired: set[str] = set()
        self._counts: dict[str, int] = {}
        self._watch: dict[str, tuple[torch.Tensor, int]] = {}
        self._batch: Any = None
        self._rows: int | None = None
        self._counting = True
        self._active = False
        self._guard: contextlib.ExitStack | None = None

    # -- context manager -------------------------------------------------------------------
    def __enter__(self) -> "capture":
        if self._active:
            raise RuntimeError("this capture is already active; create a new one")
        self._active = True
        stack = contextlib.ExitStack()
        try:
            if self.eval:
                stack.enter_context(model_state_guard(self.model))
                from .seam import set_eval

                set_eval(self.model)
            by_module: dict[str, list[str]] = {}
            for name, spec in self.specs.items():
                by_module.setdefault(spec.module, []).append(name)
            mods = dict(self.model.named_modules())
            for mname, names in by_module.items():
                self._handles.append(mods[mname].register_forward_hook(self._make_hook(mname, names)))
        except BaseException:
            self._remove()
            stack.close()
            raise
        self._guard = stack
        return self

    def __exit__(self, *exc: object) -> None:
        self._remove()
        if self._guard is not None:
            self._guard.close()
            self._guard = None

    def _remove(self) -> None:
        for h in self._handles:
            h.remove()
        self._handles.clear()
        self._active = False

    # -- hooks -----------------------------------------------------------------------------
    def _make_hook(self, mname: str, names: list[str]) -> Callable[[nn.Module, Any, Any], None]:
        def hook(module: nn.Module, inputs: Any, output: Any) -> None:
            k = self._counts.get(mname, 0)
            self._counts[mname] = k + 1
            for name in names:
                spec = self.specs[name]
                if k != (spec.call or 0):
                    continue
                t = select_output(output, spec, module)
                if self._rows is not None and (t.ndim == 0 or t.shape[0] != self._rows):
                    raise InputShapeError(
                        f"Layer {name!r} output has shape {tuple(t.shape)}, but the batch has {self._rows} "
                        "samples: layerscope records tensors with the batch on axis 0. Select a batch-first "
                        f"element of the output (e.g. '{spec.module}[0]') or a different layer."
                    )
                batch = self._batch if isinstance(self._batch, Batch) else None
                layout = layout_of(t, module, batch, self.layouts_given.get(name))
                self.layouts[name] = layout
                if self.keep == "shape":
                    self.shapes[name] = tuple(t.shape[1:])
                else:
                    t = reduce_output(t, self._reduce[name], layout, batch.mask if batch is not None else None, name)
                    if self.detach:
                        t = t.detach()
                    if self.sink is not None:
                        # the sink copies the output now, before the model can change it in place:
                        # nothing is kept, so nothing needs watching
                        self.shapes[name] = tuple(t.shape[1:])
                        self.sink(name, t)
                        self._fired.add(name)
                        continue
                    if name in self.copied or self.model.training or t.is_inference():
                        # (inference tensors have no version counter to watch: copy them too)
                        # (in training mode a second pass would change batch-norm statistics: always copy)
                        t = t.clone()
                    else:
                        self._watch[name] = (t, t._version)
                    self.shapes[name] = tuple(t.shape[1:])
                    self.activations[name] = t
                    if self.keep == "all":
                        self.history[name].append(t)
                self._fired.add(name)
            if self.stop_early and not self._counting and len(self._fired) == len(self.layers):
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

    def _forward(self, inputs: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        self._fired = set()
        self._counts = {}
        self._watch = {}
        grad_ctx = contextlib.nullcontext() if self.grad else torch.no_grad()
        try:
            with grad_ctx:
                if len(inputs) == 1 and not kwargs and isinstance(inputs[0], Batch):
                    from .seam import call_model

                    return call_model(self.model, inputs[0])
                return run_model(self.model, *inputs, **kwargs)
        except _StopForward:
            return None

    def run(self, *inputs: Any, **kwargs: Any) -> Any:
        """Call the model on ``inputs`` (or on one :class:`~layerscope.seam.Batch`); return its output.

        Returns ``None`` if stopped early. A shape mismatch inside the model is re-raised as
        :class:`~layerscope.exceptions.InputShapeError` naming the input shape that came.
        """
        if not self._active:
            raise RuntimeError("capture.run() must be called inside `with capture(...)`")
        if not (len(inputs) == 1 and not kwargs and isinstance(inputs[0], Batch)):
            chunks = static_chunks(self.model, inputs, kwargs)
            if chunks is not None:  # a static-batch program: run in its batch size, join the records
                return self._run_chunks(chunks)
        self._batch = inputs[0] if len(inputs) == 1 and not kwargs and isinstance(inputs[0], Batch) else None
        # the batch-axis check needs to know the batch size: known for a Batch; raw inputs may be
        # time-first (an RNN's (T, N, D)), so they are not checked
        self._rows = self._batch.size if isinstance(self._batch, Batch) else None
        marks = {n: len(h) for n, h in self.history.items()}
        if self._counting:
            known = _cached_calls(self.model, inputs, kwargs, {s.module for s in self.specs.values()})
            if known is not None:  # counted before for this model and input signature
                self._counting = False
                self.calls = known
                self._check_calls()
        out = self._forward(inputs, kwargs)
        if self._counting:
            self._counting = False
            self.calls = dict(self._counts)
            _store_calls(self.model, inputs, kwargs, {s.module for s in self.specs.values()}, self.calls)
            self._check_calls()
        moved = [n for n, (t, v) in self._watch.items() if t._version != v]
        if moved:
            # the model changed these outputs in place after recording them: record copies and redo
            self.copied.update(moved)
            for n, mark in marks.items():
                del self.history[n][mark:]
            out = self._forward(inputs, kwargs)
        self._watch = {}
        return out

    def _run_chunks(self, chunks: list[tuple[int, tuple[Any, ...], dict[str, Any]]]) -> Any:
        from .seam import cat_rows

        outs: list[tuple[int, Any]] = []
        parts: dict[str, list[tuple[int, torch.Tensor]]] = {}
        marks = {n: len(h) for n, h in self.history.items()}
        for m, args, kw in chunks:
            self.activations.clear()
            outs.append((m, self.run(*args, **kw)))
            for name, t in self.activations.items():
                parts.setdefault(name, []).append((m, t))
        self.activations = {name: cat_rows(p) for name, p in parts.items()}
        if self.keep == "all":
            for n, mark in marks.items():
                del self.history[n][mark:]
                if n in self.activations:
                    self.history[n].append(self.activations[n])
        return None if any(o is None for _, o in outs) else cat_rows(outs)

    def _check_calls(self) -> None:
        for name, spec in self.specs.items():
                count = self.calls.get(spec.module, 0)
                if spec.call is None and count > 1:
                    raise ReusedLayerError(
                        f"Layer {spec.module!r} runs {count} times in one forward pass, so {name!r} is "
                        f"ambiguous; name the call to record: "
                        f"{', '.join(repr(f'{spec.module}#{i}') for i in range(count))} (0-based)."
                    )
                if spec.call is not None and spec.call >= max(count, 1) and count > 0:
                    raise ParameterError(
                        f"{name!r} asks for call {spec.call} of {spec.module!r}, which runs {count} time(s) per forward pass."
                    )


# Calls per forward pass of hooked modules, per model and input signature (shapes and dtypes without
# the batch axis), so that repeated captures of one model (activation maximization makes many)
# count once. Weak keys: nothing keeps a model alive.
_CALLS: "weakref.WeakKeyDictionary[nn.Module, dict[Any, dict[str, int]]]" = weakref.WeakKeyDictionary()


def _signature(inputs: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    if len(inputs) == 1 and not kwargs and isinstance(inputs[0], Batch):
        inputs, kwargs = inputs[0].args, inputs[0].kwargs

    def sig(v: Any) -> Any:
        if isinstance(v, torch.Tensor):
            return (tuple(v.shape[1:]), str(v.dtype))
        if isinstance(v, (list, tuple)):
            return tuple(sig(i) for i in v)
        if isinstance(v, Mapping):
            return tuple(sorted((str(k), sig(i)) for k, i in v.items()))
        return type(v).__name__

    return (sig(inputs), sig(kwargs))


def _cached_calls(model: nn.Module, inputs: tuple[Any, ...], kwargs: dict[str, Any], modules: set[str]) -> dict[str, int] | None:
    try:
        known = _CALLS.get(model, {}).get(_signature(inputs, kwargs))
    except TypeError:  # unhashable signature
        return None
    if known is None or not modules <= set(known):
        return None
    return dict(known)


def _store_calls(
    model: nn.Module, inputs: tuple[Any, ...], kwargs: dict[str, Any], modules: set[str], counts: dict[str, int]
) -> None:
    try:
        per_model = _CALLS.setdefault(model, {})
        entry = per_model.setdefault(_signature(inputs, kwargs), {})
    except TypeError:
        return
    entry.update({m: counts.get(m, 0) for m in modules})


def _reduction_for(reduce: Any, name: str) -> Any:
    if isinstance(reduce, Mapping):
        return reduce.get(name)
    return reduce



# ------------------------------------------------------------------------------------------
# Collecting activations over a dataset
# ------------------------------------------------------------------------------------------


@dataclass
class Activations:
    """Activations of several layers over a dataset.

    Attributes
    ----------
    arrays
        ``{layer: array of shape (N, ...)}``; NumPy arrays in RAM, read-only memory-mapped
        ``.npy`` files for layers beyond the memory budget, or :class:`layerscope.store.LazyArray`
        (a Zarr store read by rows on demand) with ``store="zarr"``.
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
            self._write_into(d)
        return Path(directory)

    def _write_into(self, d: Path) -> None:
        """Write the arrays, ``labels.npz`` and ``activations.json`` into the (staging) folder ``d``."""
        files = {}
        for i, (name, arr) in enumerate(self.arrays.items()):
            if _is_lazy(arr):  # a Zarr store: kept as a store (never loaded whole)
                fname = f"layer{i:03d}_{_safe(name)}.zarr"
                target = d / fname
                src_dir = Path(getattr(arr, "path"))
                if src_dir.resolve() != target.resolve():
                    _copy_tree(src_dir, target)
                files[name] = fname
                continue
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
        arrays: dict[str, Any] = {}
        for name, fname in files.items():
            path = d / str(fname)
            if Path(str(fname)).name != str(fname) or not (path.is_dir() if str(fname).endswith(".zarr") else path.is_file()):
                raise DataError(f"{meta_path} lists {fname!r} for layer {name!r}, but {path} does not exist.")
            if str(fname).endswith(".zarr"):  # a chunked store: checked, then read lazily
                from .store import open_layer_store

                if name not in shapes or not isinstance(shapes[name], list):
                    raise DataError(f"{meta_path} lists {fname!r} for layer {name!r} but no shape for it; not written by layerscope.")
                arrays[name] = open_layer_store(path, [n, *shapes[name]])
                continue
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


def _is_lazy(arr: Any) -> bool:
    from .store import LazyArray

    return isinstance(arr, LazyArray)


def _copy_tree(src: Path, dst: Path) -> None:
    """Copy a store folder, hard-linking its files where the file system allows (chunks are never rewritten)."""

    def link(a: str, b: str) -> None:
        try:
            os.link(a, b)
        except OSError:
            shutil.copy2(a, b)

    shutil.copytree(src, dst, copy_function=link)


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
    """Append rows to a ``.npy`` file, without memory-mapping it.

    Written by hand: NumPy's ``open_memmap`` would keep every written page resident (they count
    towards RSS); plain sequential writes keep memory flat. When the number of rows is not known in
    advance (iterable data), rows go to a raw side file and the ``.npy`` is assembled on close.
    """

    def __init__(self, path: Path, shape: tuple[int | None, ...], dtype: np.dtype[Any]) -> None:
        self.path = path
        self.shape = shape
        self.dtype = np.dtype(dtype)
        self.rows = 0
        self._raw = shape[0] is None
        self._fh = open(path.with_suffix(".raw") if self._raw else path, "wb")
        if not self._raw:
            self._header(self._fh, shape)  # type: ignore[arg-type]

    def _header(self, fh: Any, shape: tuple[int, ...]) -> None:
        np.lib.format.write_array_header_1_0(
            fh, {"descr": np.lib.format.dtype_to_descr(self.dtype), "fortran_order": False, "shape": shape}
        )

    def write(self, block: np.ndarray) -> None:
        self._fh.write(np.ascontiguousarray(block, dtype=self.dtype).tobytes())
        self.rows += block.shape[0]

    def close(self) -> None:
        self._fh.close()
        if self._raw:
            raw = self.path.with_suffix(".raw")
            with open(self.path, "wb") as out, open(raw, "rb") as src:
                self._header(out, (self.rows, *self.shape[1:]))  # type: ignore[arg-type]
                shutil.copyfileobj(src, out, 16 * 2**20)
            raw.unlink()
            self._raw = False

    def discard(self) -> None:
        self._fh.close()
        for p in (self.path, self.path.with_suffix(".raw")):
            with contextlib.suppress(FileNotFoundError):
                p.unlink()


def _n_classes(dataset: Any) -> int | None:
    classes = getattr(dataset, "classes", None)
    if classes is None and isinstance(dataset, torch.utils.data.DataLoader):
        classes = getattr(dataset.dataset, "classes", None)
    return len(classes) if classes is not None else None


def _staged_out_dir(collect: Callable[_P, Activations]) -> Callable[_P, Activations]:
    """``collect`` with its ``out_dir=`` written whole or not at all.

    The folder is the old result or the new one, never a mix: ``collect`` streams and saves into
    a staging folder that is swapped in at the end (one writer at a time; see
    :func:`layerscope._io.result_folder`); streamed arrays are then mapped from their final place.
    """

    @functools.wraps(collect)
    def staged(*args: _P.args, **kwargs: _P.kwargs) -> Activations:
        out_dir: str | os.PathLike[str] | None = kwargs.get("out_dir")  # type: ignore[assignment]  # ParamSpec kwargs are objects
        if out_dir is None:
            return collect(*args, **kwargs)
        with result_folder(out_dir) as staging:
            kwargs["out_dir"] = staging
            acts = collect(*args, **kwargs)
        if acts.directory is not None:  # streamed arrays: map them from their final place
            return Activations.load(out_dir)
        acts.directory = Path(out_dir)
        return acts

    return staged


@_staged_out_dir
def collect_activations(
    model: nn.Module,
    dataset: Any,
    layers: Sequence[str] | str,
    *,
    batch_size: int = 256,
    reduce: Any = None,
    layouts: Mapping[str, str] | None = None,
    indices: Sequence[int] | np.ndarray | None = None,
    predictions: bool = False,
    memory_budget: int | None = None,
    out_dir: str | os.PathLike[str] | None = None,
    dtype: Any = np.float32,
    device: torch.device | str | None = None,
    adapter: Any = None,
    progress: ProgressArg = None,
    store: Literal["npy", "zarr"] | None = None,
    chunk_rows: int | None = None,
    _region: tuple[dict[str, Any], int] | None = None,
) -> Activations:
    """Run ``dataset`` through ``model`` in eval mode and collect the outputs of ``layers``.

    Parameters
    ----------
    model
        Any ``nn.Module`` (also an exported program loaded by :func:`layerscope.load_model`); put
        in ``eval()`` for the pass, then restored.
    dataset
        Any data :func:`layerscope.seam.iter_batches` reads: layerscope datasets, map-style and
        iterable datasets, a ``DataLoader``, tensors/arrays with or without labels, tuples of
        arrays, dict items, texts (with an ``hf:`` model). Extra per-sample labels in
        ``dataset.extra_labels`` (e.g. the speaker of a recording) are kept alongside.
    layers
        Layer specs (dotted names, optionally ``#k``, ``[i]``, ``:key``; see :mod:`layerscope.seam`).
    batch_size
        Samples per forward pass.
    reduce
        ``None``, ``"mean"``/``"max"`` (over spatial positions, or over the tokens of a sequence,
        masked), ``"first"``/``"cls"``/``"last"`` (a token), a callable, or ``{layer: ...}``;
        applied inside the hook (see :func:`layerscope.seam.reduce_output`).
    layouts
        ``{layer: "spatial" | "sequence" | "flat"}`` where the automatic layout is unknown.
    indices
        Subset of dataset rows to use (default: all), in this order.
    predictions
        Also record the arg-max of the model output, **if** the model is a classifier of these
        labels: its output (or ``.logits``) is ``(N, n_classes)`` scores. Otherwise no predictions
        are recorded and ``meta["predictions"]`` says why. Without predictions the forward pass stops
        after the deepest requested layer.
    memory_budget
        Bytes. The layers that fit in it (smallest first) are kept in RAM; the others are streamed
        to ``.npy`` files in ``out_dir`` (a temporary folder if not given) and returned
        memory-mapped, read-only. ``meta["storage"]`` lists which went where.
    out_dir
        Where to stream / save arrays. If given, the result is also saved there.
    dtype
        Storage dtype of the arrays: ``float32`` (default, whatever the model computes in),
        ``float16`` (half the memory; values rounded to 11 significant bits, recorded in
        ``meta["precision"]``) or ``float64``. ``bfloat16`` is refused (NumPy cannot hold it).
        The conversion happens in the one copy the hook makes.
    store
        ``None``/``"npy"``: arrays in RAM, or ``.npy`` files beyond the budget. ``"zarr"``: every
        layer goes into a chunked, compressed Zarr v3 store (one array per layer in ``out_dir``,
        a temporary folder if not given; needs ``pip install zarr``), written one chunk at a time,
        so memory holds one chunk per layer whatever the data size. The arrays come back as
        :class:`layerscope.store.LazyArray` that the analyses read chunk by chunk.
    chunk_rows
        Rows per Zarr chunk (default: about 8 MB of the widest layer, a multiple of the batch).
    device
        Defaults to the model's device.
    adapter
        ``fn(batch) -> (args, kwargs, labels)`` for data the default rule cannot read.
    progress
        A tracker ``(iterable, total, description) -> iterable`` (the CLI passes a progress bar).

    Returns
    -------
    Activations
        ``arrays[layer]`` has shape ``(N, *layer_output_shape)`` (or ``(N, F)`` when reduced).
        ``meta`` records each layer's layout, the layers recorded as copies (changed in place by the
        model), the calls of reused modules and whether predictions were made.
    """
    from .seam import classifier_logits, data_length, iter_batches, set_eval

    if isinstance(layers, str):
        layers = [layers]
    if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
        raise ParameterError(f"batch_size must be an integer >= 1; got {batch_size!r}.")
    if memory_budget is not None and memory_budget < 0:
        raise ParameterError(f"memory_budget must be >= 0 bytes; got {memory_budget}.")
    if store not in (None, "npy", "zarr"):
        raise ParameterError(f"store must be None, 'npy' or 'zarr'; got {store!r}.")
    if chunk_rows is not None and (isinstance(chunk_rows, bool) or not isinstance(chunk_rows, (int, np.integer)) or chunk_rows < 1):
        raise ParameterError(f"chunk_rows must be an integer >= 1; got {chunk_rows!r}.")
    storage = storage_dtype(dtype)
    n_known = data_length(dataset) if indices is None else len(indices)
    if n_known == 0:
        raise DataError("The dataset is empty: there is nothing to capture. Check the data spec or the subset.")
    track = resolve_progress(progress)
    out_path = Path(out_dir) if out_dir is not None else None  # a staging folder: see _staged_out_dir
    label_chunks: list[np.ndarray] = []
    id_chunks: list[np.ndarray] = []
    pred_chunks: list[np.ndarray] | None = [] if predictions else None
    n_classes = _n_classes(dataset)
    pred_note = "not requested"
    pred_width: int | None = None
    static = getattr(model, "layerscope_static_batch", None)
    eff_batch = int(static) if static else int(batch_size)
    n_batches = None if n_known is None else (n_known + eff_batch - 1) // eff_batch
    sink = _Collector(
        n_known, storage, memory_budget, store, out_path, eff_batch, chunk_rows,
        region=_region,
    )
    success = False
    cap: capture | None = None
    try:
        with model_state_guard(model), torch.no_grad():
            set_eval(model)
            with capture(
                model, layers, reduce=reduce, layouts=layouts, stop_early=not predictions, eval=False, grad=False,
                # a static-batch program runs in padded chunks joined after the pass: copy from there
                sink=None if static else sink.write,
            ) as cap:
                sink.layers = list(cap.layers)
                batches = iter_batches(dataset, batch_size, indices=indices, model=model, adapter=adapter, device=device)
                for batch in track(batches, total=n_batches, desc=f"capture {', '.join(cap.layers)}"[:60]):
                    b = batch.n
                    sink.begin(b)
                    out = cap.run(batch)
                    if static:
                        for n in cap.layers:
                            if n in cap.activations:
                                sink.write(n, cap.activations[n])
                        cap.activations.clear()
                    if sink.first:
                        missing = [n for n in cap.layers if n not in sink.seen]
                        if missing:
                            raise InputShapeError(
                                f"Layers {missing} did not run in the forward pass, so they have no "
                                "activations; pick layers that the model's forward() calls."
                            )
                        if pred_chunks is not None:
                            logits, why = classifier_logits(out, n_classes)
                            if logits is None:
                                pred_chunks, pred_note = None, f"no predictions: {why}"
                                cap.stop_early = True  # nothing above the layers is needed now
                            else:
                                pred_note = "arg-max of the model output"
                                pred_width = int(logits.shape[1])
                    sink.end({n: cap.layouts.get(n) for n in cap.layers})
                    y = batch.labels
                    label_chunks.append(
                        y[:b].cpu().numpy().astype(np.int64) if y is not None else np.full(b, -1, np.int64)
                    )
                    id_chunks.append(np.asarray(batch.ids, dtype=np.int64))
                    if pred_chunks is not None:
                        logits, why = classifier_logits(out, n_classes)
                        if logits is None:
                            raise InputShapeError(f"The model stopped returning class scores mid-way: {why}.")
                        pred_chunks.append(logits[:b].argmax(dim=1).cpu().numpy())
                    del out
            if sink.row == 0:
                raise DataError("The data yielded no samples: there is nothing to capture.")
            arrays = sink.finish()
        success = True
    finally:
        if not success:
            sink.discard()
    assert cap is not None  # set inside the with-block that ran at least one batch
    labels = np.concatenate(label_chunks)
    ids_out = np.concatenate(id_chunks)
    preds = np.concatenate(pred_chunks) if pred_chunks is not None else None
    if preds is not None and n_classes is None and pred_width is not None and int(labels.max()) >= pred_width:
        # without named classes, scores are class scores of these labels only if wide enough
        preds, pred_note = None, f"no predictions: the model output has {pred_width} columns but the labels reach {int(labels.max())}"
    extra = {}
    source = dataset.dataset if isinstance(dataset, torch.utils.data.DataLoader) else dataset
    for k, v in (getattr(source, "extra_labels", None) or {}).items():
        v = np.asarray(v)
        if len(v) > int(ids_out.max()):
            extra[k] = v[ids_out]
    meta: dict[str, Any] = {
        "dataset": getattr(source, "name", type(source).__name__),
        "layouts": dict(cap.layouts),
        "predictions": pred_note,
        "storage": sink.describe(),
    }
    if storage != np.float32:
        meta["precision"] = _precision_note(storage)
    if cap.copied:
        meta["copied_in_place"] = sorted(cap.copied)
    reused = {cap.specs[n].module: cap.calls.get(cap.specs[n].module, 0) for n in cap.layers if cap.specs[n].call is not None}
    if reused:
        meta["calls"] = reused
    if static:
        meta["static_batch"] = int(static)
    acts = Activations(
        arrays={n: arrays[n] for n in layers},
        labels=labels,
        sample_ids=ids_out,
        predictions=preds,
        extra_labels=extra,
        reduce=reduce if isinstance(reduce, (str, type(None))) else "custom",  # type: ignore[arg-type]
        directory=sink.directory,
        meta=meta,
    )
    if _region is not None:
        return acts
    if out_path is not None:
        acts.save(out_path)
        acts.directory = out_path
    return acts


#: storage dtypes collect_activations accepts (NumPy names)
STORAGE_DTYPES = ("float32", "float16", "float64")


def storage_dtype(dtype: Any) -> np.dtype[Any]:
    """The NumPy dtype arrays are stored in: float32 (default), float16 or float64.

    ``bfloat16`` is refused: NumPy has no such dtype, so it could be neither memory-mapped nor
    read by the analyses; float16 takes the same two bytes with 3 more bits of mantissa (and a
    smaller range, max 65504: values beyond it become inf, which the analyses refuse).
    """
    if isinstance(dtype, torch.dtype):
        name = str(dtype).replace("torch.", "")
    elif isinstance(dtype, str):
        name = dtype
    else:
        try:
            name = np.dtype(dtype).name
        except TypeError:
            name = str(dtype)
    if name == "bfloat16":
        raise ParameterError(
            "dtype bfloat16 cannot be stored: NumPy has no bfloat16, so the arrays could not be read back; "
            "use dtype='float16' (same size) or float32."
        )
    try:
        dt = np.dtype(name)
    except TypeError:
        raise ParameterError(f"dtype must be one of {', '.join(STORAGE_DTYPES)}; got {dtype!r}.") from None
    if dt.name not in STORAGE_DTYPES:
        raise ParameterError(f"dtype must be one of {', '.join(STORAGE_DTYPES)}; got {dt}.")
    return dt


def _precision_note(dt: np.dtype[Any]) -> str:
    if dt == np.float16:
        return ("reduced precision: stored as float16 (11 significant bits, relative rounding error <= 2**-11, "
                "max 65504); statistics computed from these arrays inherit that error")
    return f"stored as {dt}"


class _Collector:
    """Where each layer's rows go during :func:`collect_activations`.

    The first batch's outputs are copied aside; once every layer has run once, their sizes are
    known and the destinations are allocated: layers that fit the memory budget (smallest first)
    get one preallocated array for all rows, the others stream to ``.npy`` files (or every layer
    goes to a Zarr store with ``store="zarr"``) through a reused staging buffer. From the second
    batch on, the capture hook writes each output straight into its destination
    (``dest.copy_(t)``: one copy, converted to the storage dtype on the way), before the model can
    change it in place.
    """

    def __init__(
        self,
        n: int | None,
        dtype: np.dtype[Any],
        budget: int | None,
        store: str | None,
        out_path: Path | None,
        batch: int,
        chunk_rows: int | None,
        region: tuple[dict[str, Any], int] | None = None,
    ) -> None:
        self.n, self.dtype, self.budget, self.store = n, dtype, budget, store
        self.out_path, self.batch, self.chunk_rows_given = out_path, batch, chunk_rows
        self.region = region
        self.layers: list[str] = []
        self.row = 0
        self.b = 0
        self.first = True
        self.pending: dict[str, torch.Tensor] = {}
        self.shapes: dict[str, tuple[int, ...]] = {}
        self.kind: dict[str, str] = {}
        self.ram: dict[str, np.ndarray] = {}
        self.ram_t: dict[str, torch.Tensor] = {}
        self.parts: dict[str, list[np.ndarray]] = {}
        self.streams: dict[str, _NpyStream] = {}
        self.buf: dict[str, np.ndarray] = {}
        self.buf_t: dict[str, torch.Tensor] = {}
        self.zarrs: dict[str, Any] = {}
        self.zpaths: dict[str, Path] = {}
        self.zstart = region[1] if region is not None else 0
        self.zoff = 0
        self.cap_rows = 0
        self.tmp_dir: Path | None = None
        self.directory: Path | None = None
        self.tag = f"{os.getpid()}-{os.urandom(4).hex()}"  # unique per process and call
        self.layouts: dict[str, str | None] = {}
        #: layers that produced an output in the first batch
        self.seen: set[str] = set()
        #: every layer to RAM (known length, no budget, no store): arrays allocated at their first output
        self.direct = n is not None and budget is None and store in (None, "npy") and region is None

    # -- per batch ---------------------------------------------------------------------------
    def begin(self, b: int) -> None:
        if self.n is not None and self.row + b > self.n:
            raise DataError(
                f"The data yielded more than the {self.n} samples it reports (len()); layerscope sizes the arrays "
                "by it. Fix the dataset's __len__ or pass indices."
            )
        self.b = b
        if self.zarrs and self.zoff + b > self.cap_rows:
            self._flush()
            if b > self.cap_rows:
                self._alloc_buffers(b)

    def write(self, name: str, t: torch.Tensor) -> None:
        """The sink: copy the real rows of ``t`` to their destination."""
        b = self.b
        if t.shape[0] != b:
            t = t[:b]
        if not self.first and t.shape[0] == b and t.shape[1:] == self.shapes[name] and self.kind[name] == "ram" \
                and t.device.type == "cpu" and t.dtype == self.ram_t[name].dtype and not t.is_neg():
            # the common case, kept short (it runs once per layer and batch): same dtype on the CPU into RAM.
            # NumPy's copy (a memcpy for contiguous rows, with streaming stores for big blocks) measured
            # faster than Tensor.copy_ on 16-25 MB maps (bench/capture.py)
            np.copyto(self.ram[name][self.row : self.row + b], t.numpy())
            return
        if self.first:
            self.seen.add(name)
            if not self.direct:  # where it goes is decided once every layer has run: keep a copy till then
                self.pending[name] = t.detach().to("cpu", copy=True)
                return
            # no budget, no store: every layer goes to RAM, so its array is allocated right away
            self.shapes[name] = tuple(t.shape[1:])
            self.kind[name] = "ram"
            self.ram[name] = np.empty((int(self.n or 0), *self.shapes[name]), dtype=self.dtype)
            self.ram_t[name] = torch.from_numpy(self.ram[name])
        want = self.shapes[name]
        if tuple(t.shape[1:]) != want or t.shape[0] != self.b:
            raise InputShapeError(
                f"Layer {name!r} gives per-sample shape {tuple(t.shape[1:])} in this batch but {want} in the first: "
                f"{'token states of texts padded to each batch' if self.layouts.get(name) == 'sequence' else 'its outputs'} "
                "have no common shape. Reduce them inside the hook (reduce='mean', 'cls', 'first', 'last' "
                "or a callable) or give every batch one length (pad to a fixed length)."
            )
        self._dest(name).copy_(t)  # converted to the storage dtype (and moved to the CPU) on the way

    def _dest(self, name: str) -> torch.Tensor:
        kind = self.kind[name]
        if kind == "ram":
            return self.ram_t[name][self.row : self.row + self.b]
        if kind == "list":
            a = np.empty((self.b, *self.shapes[name]), dtype=self.dtype)
            self.parts[name].append(a)
            return torch.from_numpy(a)
        if kind == "npy":
            return self.buf_t[name][: self.b]
        return self.buf_t[name][self.zoff : self.zoff + self.b]

    def end(self, layouts: dict[str, str | None]) -> None:
        self.layouts = layouts
        if self.first:
            self._setup()
            self.first = False
            for name, t in self.pending.items():
                self.write(name, t)
            self.pending = {}
        for name, s in self.streams.items():
            s.write(self.buf[name][: self.b])
        if self.zarrs:
            self.zoff += self.b
            if self.zoff >= self.cap_rows:
                self._flush()
        self.row += self.b

    # -- allocation ----------------------------------------------------------------------------
    def _target_dir(self) -> Path:
        if self.out_path is None and self.tmp_dir is None:
            import tempfile

            self.tmp_dir = Path(tempfile.mkdtemp(prefix="layerscope-capture-"))
        d = self.out_path or self.tmp_dir
        assert d is not None  # one of the two is set just above
        d.mkdir(parents=True, exist_ok=True)
        self.directory = d
        return d

    def _setup(self) -> None:
        if self.direct:
            return
        self.shapes = {n: tuple(self.pending[n].shape[1:]) for n in self.layers}
        itemsize = self.dtype.itemsize
        row_bytes = {n: int(np.prod(s, dtype=np.int64)) * itemsize for n, s in self.shapes.items()}
        if self.region is not None:
            self.zarrs = dict(self.region[0])
            self.kind = {n: "zarr" for n in self.layers}
            for n, z in self.zarrs.items():
                if tuple(z.shape[1:]) != self.shapes[n] or np.dtype(z.dtype) != self.dtype:
                    raise DataError(
                        f"The store for layer {n!r} holds {tuple(z.shape[1:])} {z.dtype} per sample, but this shard "
                        f"captures {self.shapes[n]} {self.dtype}; every shard must run the same model, layers and reduce."
                    )
        elif self.store == "zarr":
            from .store import create_layer_store

            d = self._target_dir()
            # one chunk height for every layer (that of the widest), so that every flush and every
            # shard boundary falls on chunk boundaries of all layers
            rows = self.chunk_rows_given or min(_chunk_rows(row_bytes[n], self.batch) for n in self.layers)
            rows = min(rows, self.n) if self.n else rows  # no chunk taller than the data
            for i, n in enumerate(self.layers):
                path = d / f".partial-{self.tag}_layer{i:03d}_{_safe(n)}.zarr"
                self.zpaths[n] = path
                self.zarrs[n] = create_layer_store(path, (self.n or 0, *self.shapes[n]), self.dtype, rows)
                self.kind[n] = "zarr"
        elif self.n is None:
            for n in self.layers:
                self.kind[n] = "list" if self.budget is None else "npy"
        else:
            left = None if self.budget is None else int(self.budget)
            for n in sorted(self.layers, key=lambda k: row_bytes[k]):  # smallest first: most layers in RAM
                need = row_bytes[n] * self.n
                if left is None or need <= left:
                    self.kind[n] = "ram"
                    left = None if left is None else left - need
                else:
                    self.kind[n] = "npy" if self.store != "zarr" else "zarr"
        for i, n in enumerate(self.layers):
            kind = self.kind[n]
            if kind == "ram":
                self.ram[n] = np.empty((int(self.n or 0), *self.shapes[n]), dtype=self.dtype)
                self.ram_t[n] = torch.from_numpy(self.ram[n])
            elif kind == "list":
                self.parts[n] = []
            elif kind == "npy":
                path = self._target_dir() / f".partial-{self.tag}_layer{i:03d}_{_safe(n)}.npy"
                self.streams[n] = _NpyStream(path, (self.n, *self.shapes[n]), self.dtype)
        if self.zarrs:
            self._alloc_buffers(max(self.b, min(int(z.chunks[0]) for z in self.zarrs.values())))
        for n in self.streams:
            self.buf[n] = np.empty((self.b if self.n is None else max(self.b, self.batch), *self.shapes[n]), dtype=self.dtype)
            self.buf_t[n] = torch.from_numpy(self.buf[n])

    def _alloc_buffers(self, rows: int) -> None:
        self.cap_rows = int(rows)
        for n in self.zarrs:
            self.buf[n] = np.empty((self.cap_rows, *self.shapes[n]), dtype=self.dtype)
            self.buf_t[n] = torch.from_numpy(self.buf[n])

    def _flush(self) -> None:
        if not self.zoff:
            return
        end = self.zstart + self.zoff
        for n, z in self.zarrs.items():
            if self.n is None and self.region is None:
                z.resize((end, *self.shapes[n]))
            z[self.zstart : end] = self.buf[n][: self.zoff]
        self.zstart, self.zoff = end, 0

    # -- end -----------------------------------------------------------------------------------
    def finish(self) -> dict[str, Any]:
        """Flush and close every destination; the arrays by layer (RAM, memory-mapped or lazy)."""
        self._flush()
        short = self.n is not None and self.row < self.n
        if short and (self.streams or self.zarrs):
            raise DataError(
                f"The data yielded {self.row} samples but reports {self.n} (len()); the streamed files were sized by "
                "len(). Fix the dataset's __len__ or pass indices."
            )
        for s in self.streams.values():
            s.close()
        out: dict[str, Any] = {}
        for i, n in enumerate(self.layers):
            kind = self.kind[n]
            if kind == "ram":
                out[n] = self.ram[n][: self.row] if short else self.ram[n]  # a short DataLoader: the rows it gave
            elif kind == "list":
                out[n] = np.concatenate(self.parts[n]) if self.parts[n] else np.empty((0, *self.shapes[n]), self.dtype)
            elif kind == "npy":
                s = self.streams[n]
                final = s.path.with_name(f"layer{i:03d}_{_safe(n)}.npy")
                os.replace(s.path, final)
                out[n] = np.load(final, mmap_mode="r")
            elif self.region is None:
                from .store import open_layer_store

                path = self.zpaths[n]
                final = path.with_name(f"layer{i:03d}_{_safe(n)}.zarr")
                if final.exists():
                    shutil.rmtree(final)
                os.replace(path, final)
                out[n] = open_layer_store(final, [self.row, *self.shapes[n]])
            else:
                out[n] = self.zarrs[n]
        if not (self.streams or (self.zarrs and self.region is None)):
            self.directory = None
        return out

    def discard(self) -> None:
        for s in self.streams.values():
            s.discard()
        for p in self.zpaths.values():
            shutil.rmtree(p, ignore_errors=True)
        if self.tmp_dir is not None:
            shutil.rmtree(self.tmp_dir, ignore_errors=True)

    def describe(self) -> dict[str, Any]:
        """JSON-safe: the storage dtype, which layers stayed in RAM and which went to disk, and how."""
        d: dict[str, Any] = {"dtype": self.dtype.name, "in_memory": [n for n in self.layers if self.kind.get(n) in ("ram", "list")]}
        streamed = [n for n in self.layers if self.kind.get(n) == "npy"]
        stored = [n for n in self.layers if self.kind.get(n) == "zarr"]
        if streamed:
            d["streamed_npy"] = streamed
        if stored:
            d["zarr"] = stored
        if self.budget is not None:
            d["memory_budget"] = int(self.budget)
        return d


def _chunk_rows(row_bytes: int, batch: int) -> int:
    from .store import chunk_rows_for

    return chunk_rows_for(row_bytes, batch)


def list_layers(model: nn.Module, sample_input: Any = None, *, adapter: Any = None) -> list[LayerInfo]:
    """Describe every layer: name, type, output shape, parameter counts, calls per forward pass.

    Parameters
    ----------
    model
        Any ``nn.Module``; it is not changed (run under ``eval()`` and ``no_grad``, flags restored).
    sample_input
        One batch: a tensor ``(N, ...)``, a tuple of positional inputs, a dict of keyword inputs, a
        :class:`~layerscope.seam.Batch`, or data (a dataset, ``DataLoader``, array...) whose first
        two samples are used. When given, one forward pass records each layer's output shape
        (without the batch dimension; the tensor :func:`~layerscope.seam.select_output` takes by
        default) and how often each module runs (``calls > 1``: a reused module). Layers that are
        not called get ``None``.
    adapter
        For data: ``fn(batch) -> (args, kwargs, labels)`` (see :func:`layerscope.seam.iter_batches`).
    """
    from .layers import layer_names
    from .seam import LayerSpec, call_model, iter_batches, set_eval

    shapes: dict[str, tuple[int, ...] | None] = {}
    calls: dict[str, int] = {}
    names = layer_names(model)
    if sample_input is not None and names:
        if isinstance(sample_input, Batch):
            batch = sample_input
        elif isinstance(sample_input, torch.Tensor):
            batch = Batch(args=(sample_input,), kwargs={}, labels=None, ids=np.arange(len(sample_input)), n=len(sample_input))
        elif isinstance(sample_input, Mapping) and all(isinstance(k, str) for k in sample_input):
            batch = Batch(args=(), kwargs=dict(sample_input), labels=None, ids=np.zeros(0, np.int64), n=0)
        elif isinstance(sample_input, tuple) and all(isinstance(a, torch.Tensor) for a in sample_input):
            batch = Batch(args=sample_input, kwargs={}, labels=None, ids=np.zeros(0, np.int64), n=0)
        else:
            batch = next(iter(iter_batches(sample_input, 2, model=model, adapter=adapter)))
        modules = dict(model.named_modules())

        def make(name: str) -> Callable[[nn.Module, Any, Any], None]:
            spec = LayerSpec(name, name)

            def hook(module: nn.Module, inputs: Any, output: Any) -> None:
                calls[name] = calls.get(name, 0) + 1
                if calls[name] == 1:
                    try:
                        shapes[name] = tuple(select_output(output, spec, module).shape[1:])
                    except LayerscopeError:  # e.g. a dict of several tensors: no single shape
                        shapes[name] = None

            return hook

        handles = [modules[n].register_forward_hook(make(n)) for n in names]
        try:
            with model_state_guard(model), torch.no_grad():
                set_eval(model)
                call_model(model, batch)
        finally:
            for h in handles:
                h.remove()
    rows = []
    for name, module in model.named_modules():
        if not name:
            continue
        own = sum(p.numel() for p in module.parameters(recurse=False))
        total = sum(p.numel() for p in module.parameters())
        rows.append(
            LayerInfo(
                name=name,
                type=type(module).__name__,
                output_shape=shapes.get(name),
                params=own,
                total_params=total,
                depth=name.count(".") + 1,
                is_leaf=len(list(module.children())) == 0,
                calls=calls.get(name, 0) if sample_input is not None else None,
            )
        )
    return rows
