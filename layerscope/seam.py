"""The one seam between a batch of the user's data and a forward call of the user's model.

Every analysis goes through this module instead of guessing; it decides three things, each by one
documented rule.

**Inputs** — :func:`iter_batches` accepts

* layerscope datasets and any ``TensorDataset`` (fast slicing path);
* any map-style dataset (``__len__`` + ``__getitem__``) and any ``IterableDataset``: items are
  collated with PyTorch's ``default_collate``;
* a ``DataLoader`` (its own batches, batch size and order are used as they come);
* a bare tensor or NumPy array (inputs without labels), or a tuple ``(X, y)`` / ``(X1, X2, y)`` of
  arrays or tensors with one row per sample.

A collated batch becomes ``(args, kwargs, labels)`` by this rule (:func:`default_adapter`):

* a tensor → one positional input, no labels;
* a dict → keyword arguments; a ``"label"`` or ``"labels"`` key is taken out as the labels;
* a tuple/list → positional inputs, except that its **last** element is taken as the labels when it
  is a 1-D integer tensor with one value per sample and there are at least two elements
  (``(x, y)``, ``(input_ids, attention_mask, y)``); ``(dict, y)`` gives keyword arguments;
* a list of strings (text data) → the model's tokenizer (``model.layerscope_tokenize(texts)``, set
  by the ``hf:`` model loader) makes the keyword arguments.

Anything else: pass ``adapter=fn(collated_batch) -> (args, kwargs, labels)``. Floating-point inputs
are cast to the model's floating dtype (float64 and bfloat16 models work on float32 data); integer
inputs (token ids, masks) stay integer. Everything is moved to the model's device.

**Outputs** — a layer is named by a *layer spec* (:func:`parse_layer_spec`): the dotted module path,
optionally followed by

* ``#k`` — the k-th call (0-based) of a module that runs more than once per forward pass;
* ``[i]`` — element ``i`` of a tuple/list output (repeatable: ``[1][0]``);
* ``:key`` (or ``.key`` when the dotted path is not itself a module) — an entry of a dict /
  ``ModelOutput`` output, e.g. ``pooling:sentence_embedding``;
* for recurrent layers (``nn.RNN``/``GRU``/``LSTM``): ``:output`` (the default, all time steps) or
  ``:h_n`` (final hidden state of every layer and direction), ``:c_n`` (LSTM cell state).

Without a selector, :func:`select_output` takes a tensor output as it is, element 0 of a tuple/list
(what Hugging Face layers and RNNs return first), the sequence output of an RNN, and the single
tensor of a dict with one tensor; a dict with several tensors is refused with the keys listed.
Recurrent outputs are always returned batch-first (``batch_first=False`` modules are transposed),
and every recorded tensor must have the batch on axis 0 (checked).

**Reused modules** — a module called more than once in one forward pass is ambiguous: recording it
without ``#k`` raises :class:`ReusedLayerError` listing the calls (``capture`` runs the first batch
through the whole model to count calls, so the rule is the same whatever else is requested).

**Axes** — :func:`layout_of` gives each recorded tensor a layout: ``"flat"`` ``(N, D)``,
``"spatial"`` ``(N, C, *S)`` channels first (4-D and 5-D outputs, and 3-D outputs of convolution,
pooling and batch-norm modules), ``"sequence"`` ``(N, T, D)`` channels last (recurrent, linear,
layer-norm, embedding and attention modules, and any 3-D output whose axis 1 matches the length of the
batch's attention mask) or ``"unknown"``. :func:`reduce_output` reduces by layout: ``"mean"`` /
``"max"`` average / max over spatial positions, or over **tokens** of a sequence (masked by the
attention mask when there is one) — never over the feature axis; ``"first"`` (``"cls"``) and
``"last"`` (last unmasked token) for sequences; or a callable. Reducing an ``"unknown"`` 3-D output
is refused: pass ``layouts={layer: "spatial" | "sequence"}``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Iterator, Mapping, Sequence, Union

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, IterableDataset
from torch.utils.data._utils.collate import default_collate

from .exceptions import DataError, InputShapeError, LayerNotFoundError, ParameterError

__all__ = [
    "Batch",
    "Adapter",
    "LayerSpec",
    "ReusedLayerError",
    "default_adapter",
    "iter_batches",
    "gather",
    "single_input",
    "call_model",
    "model_dtype",
    "model_device",
    "run_model",
    "set_eval",
    "is_exported",
    "data_length",
    "parse_layer_spec",
    "select_output",
    "layout_of",
    "reduce_output",
    "classifier_logits",
    "REDUCTIONS",
]

Adapter = Callable[[Any], "tuple[Sequence[Any], Mapping[str, Any], Any]"]
ReduceFn = Callable[[torch.Tensor, str, "torch.Tensor | None"], torch.Tensor]
Reduction = Union[str, ReduceFn, None]
REDUCTIONS = ("mean", "max", "first", "cls", "last")


class _StopForward(Exception):
    """Raised inside a capture hook to end a forward pass early; caught by ``capture.run``."""


class ReusedLayerError(ParameterError):
    """A module that runs more than once per forward pass was named without saying which call."""


# ------------------------------------------------------------------------------------------
# Model facts
# ------------------------------------------------------------------------------------------


def model_dtype(model: nn.Module) -> torch.dtype:
    """The dtype of the model's first floating-point parameter or buffer (float32 if none)."""
    for t in list(model.parameters()) + list(model.buffers()):
        if t.is_floating_point():
            return t.dtype
    return torch.float32


def is_exported(model: nn.Module) -> bool:
    """Whether ``model`` is a ``torch.export`` program (unflattened or ``program.module()``)."""
    if getattr(model, "layerscope_exported", False):
        return True
    from torch.export.unflatten import UnflattenedModule

    if isinstance(model, UnflattenedModule):
        return True
    # program.module(): a GraphModule subclass whose eval()/train() raise NotImplementedError
    return any(c.__name__ == "_StatefulGraphModule" for c in type(model).__mro__)


def set_eval(model: nn.Module) -> nn.Module:
    """Put ``model`` in eval mode, leaving exported programs (which fixed their mode at export) alone.

    ``program.module()`` refuses ``eval()``/``train()`` (``NotImplementedError``), and an
    unflattened program computes what it was exported with whatever its flags say, so for those
    this does nothing. Returns ``model``. Restore flags with ``layerscope.capture.model_state_guard``.
    """
    if is_exported(model):
        return model
    return model.eval()


def model_device(model: nn.Module, device: torch.device | str | None = None) -> torch.device:
    """The device of ``model``'s first parameter or buffer (CPU if it has none), or ``device``."""
    if device is not None:
        return torch.device(device)
    for param in model.parameters():
        return param.device
    for buf in model.buffers():
        return buf.device
    return torch.device("cpu")


def static_chunks(model: nn.Module, inputs: tuple[Any, ...], kwargs: dict[str, Any]) -> list[tuple[int, tuple[Any, ...], dict[str, Any]]] | None:
    """For a program with a static batch size B called on n != B samples: the calls to make instead.

    ``[(m, args, kwargs), ...]``: the n rows in chunks of B, the last one padded by repeating its
    last row; ``m`` is the number of real rows of each chunk. ``None`` when no chunking is needed
    (no static batch, or exactly B rows). Tensors whose first axis is not the batch pass unchanged.
    """
    static = getattr(model, "layerscope_static_batch", None)
    if not static:
        return None
    n = _rows(list(inputs) + list(kwargs.values()))
    if n is None or n == static:
        return None
    b = int(static)

    def part(x: Any, a: int, z: int) -> Any:
        if isinstance(x, torch.Tensor) and x.ndim and x.shape[0] == n:
            return _pad_rows(x[a:z], b)
        if isinstance(x, dict):
            return {k: part(v, a, z) for k, v in x.items()}
        if isinstance(x, (list, tuple)) and not (x and isinstance(x[0], str)):
            return type(x)(part(v, a, z) for v in x)
        return x

    return [(min(b, n - a), part(inputs, a, a + b), part(kwargs, a, a + b)) for a in range(0, n, b)]


def cat_rows(parts: list[tuple[int, Any]]) -> Any:
    """Join the outputs of :func:`static_chunks` calls: each output's first ``m`` rows, concatenated."""
    first = parts[0][1]
    if first is None:
        return None
    if isinstance(first, torch.Tensor):
        return torch.cat([o[:m] for m, o in parts])
    if isinstance(first, Mapping):
        return type(first)(**{k: cat_rows([(m, o[k]) for m, o in parts]) for k in first}) if hasattr(first, "to_tuple") else {
            k: cat_rows([(m, o[k]) for m, o in parts]) for k in first
        }
    if isinstance(first, (tuple, list)):
        return type(first)(cat_rows([(m, o[i]) for m, o in parts]) for i in range(len(first)))
    raise InputShapeError(
        f"A static-batch program returned {type(first).__name__}; layerscope can only split its calls when it "
        "returns tensors (or tuples/dicts of them). Re-export it with a dynamic batch dimension."
    )


def run_model(model: nn.Module, *inputs: Any, **kwargs: Any) -> Any:
    """Call ``model(*inputs)``, turning torch's shape errors into :class:`InputShapeError`.

    A program exported with a static batch size runs in chunks of that size (the last one padded)
    and the outputs are joined, so callers can pass any number of samples.
    """
    chunks = static_chunks(model, inputs, kwargs)
    if chunks is not None:
        return cat_rows([(m, run_model(model, *a, **k)) for m, a, k in chunks])
    try:
        return model(*inputs, **kwargs)
    except _StopForward:
        raise
    except TypeError as err:
        msg = str(err)
        if "argument" in msg and ("forward()" in msg or "positional" in msg or "keyword" in msg):
            raise DataError(
                f"{type(model).__name__} does not accept the inputs the data gives "
                f"({len(inputs)} positional{', keywords ' + ', '.join(kwargs) if kwargs else ''}): {msg}. "
                "Batches are passed as model(*inputs, **keywords) by the rule of layerscope.seam; pass "
                "adapter=fn(batch) -> (args, kwargs, labels) to say how your data maps onto forward()."
            ) from err
        raise
    except RuntimeError as err:
        msg = str(err)
        dtypes = ("scalar type", "scalar types", "dtype", "expected scalar", "FloatTensor", "LongTensor")
        if any(k in msg for k in dtypes):
            got = [str(x.dtype) for x in (*inputs, *kwargs.values()) if isinstance(x, torch.Tensor)]
            raise DataError(
                f"{type(model).__name__} cannot take inputs of dtype {got[0] if len(got) == 1 else got}: "
                f"{msg.splitlines()[0]} Integer inputs (token ids) must stay integer: load them with a data "
                "kind that keeps integer dtypes (npz: keeps them) or pass an adapter that casts them."
            ) from err
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
# Inputs
# ------------------------------------------------------------------------------------------


@dataclass
class Batch:
    """One forward call's worth of data.

    Attributes
    ----------
    args, kwargs
        What the model is called with: ``model(*args, **kwargs)``.
    labels
        ``(n,)`` int64 class labels, or ``None`` when the data has none.
    ids
        ``(n,)`` int64 row of each sample in the data (iteration order for loaders and iterables).
    n
        Number of real samples. A batch padded to a static batch size (exported programs) has
        ``size > n``; rows ``n:`` are padding and are dropped by every consumer.
    """

    args: tuple[Any, ...]
    kwargs: dict[str, Any]
    labels: torch.Tensor | None
    ids: np.ndarray
    n: int
    size: int = 0

    def __post_init__(self) -> None:
        if not self.size:
            self.size = self.n

    @property
    def mask(self) -> torch.Tensor | None:
        """The ``(N, T)`` attention mask, if the batch carries one (keyword ``attention_mask``)."""
        m = self.kwargs.get("attention_mask")
        return m if isinstance(m, torch.Tensor) and m.ndim == 2 else None

    def inputs(self) -> list[torch.Tensor]:
        """Every input tensor (positional, then keyword)."""
        return [t for t in (*self.args, *self.kwargs.values()) if isinstance(t, torch.Tensor)]


def _is_label_tensor(t: Any, n: int | None) -> bool:
    return (
        isinstance(t, torch.Tensor)
        and t.ndim == 1
        and not t.is_floating_point()
        and not t.is_complex()
        and t.dtype != torch.bool
        and (n is None or t.shape[0] == n)
    )


def _rows(x: Any) -> int | None:
    if isinstance(x, torch.Tensor):
        return int(x.shape[0]) if x.ndim else None
    if isinstance(x, (list, tuple)) and x and isinstance(x[0], str):
        return len(x)
    if isinstance(x, Mapping):
        for v in x.values():
            r = _rows(v)
            if r is not None:
                return r
    if isinstance(x, (list, tuple)):
        for v in x:
            r = _rows(v)
            if r is not None:
                return r
    return None


def default_adapter(batch: Any) -> tuple[tuple[Any, ...], dict[str, Any], Any]:
    """Turn a collated batch into ``(args, kwargs, labels)`` (the rule of the module docstring)."""
    if isinstance(batch, torch.Tensor):
        return (batch,), {}, None
    if isinstance(batch, Mapping):
        kw = dict(batch)
        labels = None
        for key in ("label", "labels"):
            if key in kw:
                labels = kw.pop(key)
                break
        return (), kw, labels
    if isinstance(batch, (list, tuple)):
        if batch and all(isinstance(s, str) for s in batch):
            return (list(batch),), {}, None  # a list of texts
        items = list(batch)
        if len(items) >= 2 and _is_label_tensor(items[-1], _rows(items[0])):
            labels = items.pop()
        else:
            labels = None
        if len(items) == 1 and isinstance(items[0], Mapping):
            return (), dict(items[0]), labels
        return tuple(items), {}, labels
    raise DataError(
        f"Cannot tell the model's inputs from a batch of type {type(batch).__name__}; expected a tensor, "
        "a tuple (inputs..., labels) or a dict of keyword inputs. Pass adapter=fn(batch) -> (args, kwargs, labels)."
    )


def data_length(data: Any) -> int | None:
    """Number of samples in ``data`` if it can be known without iterating (``None`` otherwise)."""
    if isinstance(data, DataLoader):
        try:
            return len(data.dataset)  # type: ignore[arg-type]
        except TypeError:
            return None
    if isinstance(data, IterableDataset):
        try:
            return len(data)  # type: ignore[arg-type]
        except TypeError:
            return None
    if isinstance(data, (torch.Tensor, np.ndarray)):
        return int(data.shape[0])
    if isinstance(data, tuple) and data and all(isinstance(a, (torch.Tensor, np.ndarray)) for a in data):
        return int(data[0].shape[0])
    try:
        return len(data)
    except TypeError:
        return None


def _as_tensor(a: Any) -> Any:
    if isinstance(a, np.ndarray):
        if a.dtype.kind in "OUS":
            raise DataError(f"Array of dtype {a.dtype} cannot be a model input; expected numbers.")
        return torch.from_numpy(np.ascontiguousarray(a))
    return a


def _check_array_tuple(data: tuple[Any, ...]) -> tuple[torch.Tensor, ...]:
    ts = tuple(_as_tensor(a) for a in data)
    n = {int(t.shape[0]) for t in ts}
    if len(n) != 1:
        raise DataError(
            f"The arrays of a data tuple must have one row per sample; got lengths {[int(t.shape[0]) for t in ts]}."
        )
    return ts


def _collate(items: list[Any]) -> Any:
    try:
        return default_collate(items)
    except (TypeError, RuntimeError) as err:
        raise DataError(
            f"Cannot batch the data's items ({type(items[0]).__name__}): {str(err).splitlines()[0]} "
            "Items must be tensors, arrays, numbers, texts, or tuples/dicts of them of equal shapes; "
            "otherwise pass adapter=fn(batch) -> (args, kwargs, labels) or a DataLoader with your collate_fn."
        ) from err


def _raw_batches(
    data: Any, batch_size: int, indices: np.ndarray | None
) -> Iterator[tuple[np.ndarray, Any]]:
    """Yield ``(ids, collated_batch)`` from any supported data."""
    if isinstance(data, DataLoader):
        if indices is not None:
            raise ParameterError("indices cannot be used with a DataLoader (it has its own sampler); subset its dataset.")
        start = 0
        for b in data:
            n = _rows(b) or 0
            yield np.arange(start, start + n, dtype=np.int64), b
            start += n
        return
    if isinstance(data, IterableDataset):
        if indices is not None:
            raise ParameterError("indices cannot be used with an IterableDataset; it can only be read in order.")
        buf: list[Any] = []
        start = 0
        for item in data:
            buf.append(item)
            if len(buf) == batch_size:
                yield np.arange(start, start + len(buf), dtype=np.int64), _collate(buf)
                start += len(buf)
                buf = []
        if buf:
            yield np.arange(start, start + len(buf), dtype=np.int64), _collate(buf)
        return
    if isinstance(data, np.ndarray):
        data = _as_tensor(data)
    if isinstance(data, tuple) and data and all(isinstance(a, (torch.Tensor, np.ndarray)) for a in data):
        tensors: tuple[torch.Tensor, ...] | None = _check_array_tuple(data)
    elif isinstance(data, torch.Tensor):
        tensors = (data,)
    else:
        tensors = getattr(data, "tensors", None)
    n_rows = data_length(data)
    if n_rows is None:
        raise DataError(
            f"Cannot read data of type {type(data).__name__}: expected a Dataset, DataLoader, IterableDataset, "
            "tensor, array or tuple of arrays."
        )
    ids_all = np.arange(n_rows, dtype=np.int64) if indices is None else indices
    for start in range(0, len(ids_all), batch_size):
        ids = ids_all[start : start + batch_size]
        if tensors is not None:
            if indices is None:
                parts = tuple(t[start : start + len(ids)] for t in tensors)
            else:
                idx = torch.as_tensor(ids)
                parts = tuple(t[idx] for t in tensors)
            yield ids, (parts[0] if len(parts) == 1 else parts)
        else:
            yield ids, _collate([data[int(i)] for i in ids])


def _cast(x: Any, device: torch.device, dtype: torch.dtype) -> Any:
    if isinstance(x, torch.Tensor):
        if x.is_floating_point() and x.dtype != dtype:
            x = x.to(dtype)
        return x.to(device) if x.device != device else x
    if isinstance(x, Mapping):
        return {k: _cast(v, device, dtype) for k, v in x.items()}
    if isinstance(x, (list, tuple)) and x and not isinstance(x[0], str):
        return type(x)(_cast(v, device, dtype) for v in x)
    return x


def _pad_rows(x: Any, size: int) -> Any:
    """Pad every tensor's first axis to ``size`` by repeating its last row (static-batch programs)."""
    if isinstance(x, torch.Tensor) and x.ndim and x.shape[0] < size:
        extra = x[-1:].expand(size - x.shape[0], *x.shape[1:])
        return torch.cat([x, extra])
    if isinstance(x, dict):
        return {k: _pad_rows(v, size) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return type(x)(_pad_rows(v, size) for v in x)
    return x


def iter_batches(
    data: Any,
    batch_size: int = 256,
    *,
    indices: Sequence[int] | np.ndarray | None = None,
    model: nn.Module | None = None,
    adapter: Adapter | None = None,
    device: torch.device | str | None = None,
) -> Iterator[Batch]:
    """Yield :class:`Batch` objects ready for ``call_model(model, batch)``.

    Parameters
    ----------
    data
        Any of the kinds of the module docstring.
    batch_size
        Samples per batch (a ``DataLoader`` keeps its own; a static-batch exported program forces
        its batch size, padding the last batch).
    indices
        Rows to use, in this order (map-style data only). Checked against the data's length.
    model
        The model the batches are for: gives the device, the floating dtype, the tokenizer for
        text and the static batch size. Without it, inputs are returned as collated.
    adapter
        ``fn(collated_batch) -> (args, kwargs, labels)`` replacing :func:`default_adapter`.
    device
        Overrides the model's device.
    """
    if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
        raise ParameterError(f"batch_size must be an integer >= 1; got {batch_size!r}.")
    static = getattr(model, "layerscope_static_batch", None) if model is not None else None
    if static:
        batch_size = int(static)
    idx: np.ndarray | None = None
    if indices is not None:
        idx = np.asarray(indices)
        if idx.ndim != 1 or (idx.size and idx.dtype.kind not in "iu"):
            raise ParameterError(f"indices must be a 1-D sequence of integers; got {idx.dtype} of shape {idx.shape}.")
        idx = idx.astype(np.int64)
        n = data_length(data)
        if idx.size and n is not None and (idx.min() < 0 or idx.max() >= n):
            bad = idx[(idx < 0) | (idx >= n)][:5].tolist()
            raise ParameterError(f"indices must be rows in [0, {n - 1}] of the data; got {bad}.")
    dev: torch.device | None = None
    dt = torch.float32
    if model is not None:
        dev = model_device(model, device)
        dt = model_dtype(model)
    elif device is not None:
        dev = torch.device(device)
    adapt = adapter or default_adapter
    tokenize = getattr(model, "layerscope_tokenize", None) if model is not None else None
    for ids, raw in _raw_batches(data, int(batch_size), idx):
        out = adapt(raw)
        if not (isinstance(out, tuple) and len(out) == 3):
            raise ParameterError("adapter must return a tuple (args, kwargs, labels).")
        args, kwargs, labels = tuple(out[0]), dict(out[1]), out[2]
        if len(args) == 1 and isinstance(args[0], (list, tuple)) and args[0] and isinstance(args[0][0], str) and not kwargs:
            if tokenize is None:
                raise DataError(
                    "The data holds texts but the model has no tokenizer; load the model with an 'hf:' spec "
                    "(it attaches one) or set model.layerscope_tokenize = fn(texts) -> dict of tensors."
                )
            kwargs = dict(tokenize(list(args[0])))
            args = ()
        if labels is not None:
            labels = torch.as_tensor(labels)
            if labels.ndim != 1 or labels.is_floating_point():
                labels = None
            else:
                labels = labels.long()
        n_real = len(ids)
        size = n_real
        if static and n_real < static:
            args, kwargs, size = _pad_rows(args, int(static)), _pad_rows(kwargs, int(static)), int(static)
        if dev is not None:
            args = tuple(_cast(a, dev, dt) for a in args)
            kwargs = {k: _cast(v, dev, dt) for k, v in kwargs.items()}
        yield Batch(args=args, kwargs=kwargs, labels=labels, ids=ids, n=n_real, size=size)


def gather(
    data: Any,
    ids: Sequence[int] | np.ndarray,
    *,
    model: nn.Module | None = None,
    adapter: Adapter | None = None,
    device: torch.device | str | None = None,
) -> Batch:
    """One :class:`Batch` of the rows ``ids`` of map-style ``data`` (in that order), by the same rule
    as :func:`iter_batches` — what analyses that revisit chosen samples (top-k patches, occlusion)
    use."""
    idx = np.asarray(ids, dtype=np.int64).reshape(-1)
    if idx.size == 0:
        raise ParameterError("No rows to gather; pass at least one dataset row.")
    out = list(iter_batches(data, len(idx), indices=idx, model=model, adapter=adapter, device=device))
    if len(out) != 1:  # a static-batch program splits the rows into several padded batches
        args = tuple(torch.cat([b.args[i][: b.n] for b in out]) for i in range(len(out[0].args)))
        kwargs = {k: torch.cat([b.kwargs[k][: b.n] for b in out]) for k in out[0].kwargs}
        labels = None if out[0].labels is None else torch.cat([b.labels[: b.n] for b in out if b.labels is not None])
        return Batch(args=args, kwargs=kwargs, labels=labels, ids=idx, n=len(idx))
    b = out[0]
    if b.size != b.n:
        b = Batch(
            args=tuple(a[: b.n] if isinstance(a, torch.Tensor) else a for a in b.args),
            kwargs={k: v[: b.n] if isinstance(v, torch.Tensor) else v for k, v in b.kwargs.items()},
            labels=b.labels, ids=b.ids, n=b.n,
        )
    return b


def single_input(batch: Batch, what: str = "this analysis") -> torch.Tensor:
    """The one positional tensor input of ``batch`` (image analyses), or a clear error."""
    if len(batch.args) == 1 and not batch.kwargs and isinstance(batch.args[0], torch.Tensor):
        return batch.args[0]
    kinds = [type(a).__name__ for a in batch.args] + [f"{k}=" for k in batch.kwargs]
    raise InputShapeError(
        f"{what} perturbs one input tensor (an image batch); this data gives {kinds}. Use a model that takes "
        "one tensor, or pass an adapter that returns ((tensor,), {}, labels)."
    )


def call_model(model: nn.Module, batch: Batch) -> Any:
    """``model(*batch.args, **batch.kwargs)`` with torch's shape errors turned into InputShapeError."""
    return run_model(model, *batch.args, **batch.kwargs)


# ------------------------------------------------------------------------------------------
# Outputs: layer specs and selection
# ------------------------------------------------------------------------------------------

_SPEC = re.compile(r"^(?P<name>[^#\[:]+?)(?:#(?P<call>\d+))?(?P<rest>(?:\[-?\d+\]|:[A-Za-z_]\w*)*)$")
_SEL = re.compile(r"\[(-?\d+)\]|:([A-Za-z_]\w*)")


@dataclass(frozen=True)
class LayerSpec:
    """A parsed layer spec: module path, which call, and which element of the output."""

    spec: str
    module: str
    call: int | None = None
    select: tuple[int | str, ...] = ()

    def describe(self) -> str:
        return self.spec


def parse_layer_spec(model: nn.Module, spec: str) -> LayerSpec:
    """Parse ``name[#k][[i]...][:key...]`` against ``model`` (see the module docstring)."""
    from .layers import resolve_layer

    if not isinstance(spec, str) or not spec.strip():
        raise LayerNotFoundError("Empty layer name; pass a dotted module path such as 'layer1.0.conv1'.")
    spec = spec.strip()
    m = _SPEC.match(spec)
    if m is None:
        resolve_layer(model, spec)  # raises with suggestions
        return LayerSpec(spec, spec)
    name, call, rest = m["name"], m["call"], m["rest"] or ""
    select: list[int | str] = [int(a) if a else b for a, b in _SEL.findall(rest)]
    modules = dict(model.named_modules())
    if name not in modules or not name:
        # 'layer.key': the longest dotted prefix that is a module, the remainder a key
        parts = name.split(".")
        for cut in range(len(parts) - 1, 0, -1):
            head = ".".join(parts[:cut])
            if head in modules and all(re.fullmatch(r"[A-Za-z_]\w*", p) for p in parts[cut:]):
                name = head
                select = [*parts[cut:], *select]
                break
        else:
            resolve_layer(model, name)  # raises LayerNotFoundError listing the closest names
    return LayerSpec(spec, name, int(call) if call is not None else None, tuple(select))


def _rnn_select(module: nn.RNNBase, output: Any, key: str | None) -> torch.Tensor:
    seq, state = output[0], output[1]
    if isinstance(seq, nn.utils.rnn.PackedSequence):
        raise InputShapeError("Packed sequences are not supported for capture; pass padded tensors.")
    bf = bool(getattr(module, "batch_first", False))
    if key in (None, "output"):
        return seq if bf or seq.ndim != 3 else seq.transpose(0, 1)
    if isinstance(module, nn.LSTM):
        h, c = state
        t = {"h_n": h, "c_n": c}.get(key)
    else:
        t = state if key == "h_n" else None
    if t is None:
        ok = "output, h_n, c_n" if isinstance(module, nn.LSTM) else "output, h_n"
        raise LayerNotFoundError(f"{type(module).__name__} outputs have no {key!r}; choose one of: {ok}.")
    # (layers * directions, N, H) -> (N, layers * directions, H): batch first, like every capture
    return t.transpose(0, 1) if t.ndim == 3 else t


def _keys(output: Any) -> list[str]:
    return [str(k) for k, v in output.items() if isinstance(v, torch.Tensor)]


def select_output(output: Any, spec: LayerSpec, module: nn.Module | None = None) -> torch.Tensor:
    """The tensor ``spec`` names in a module's ``output`` (see the module docstring for the rule)."""
    sel = list(spec.select)
    if isinstance(module, nn.RNNBase):
        first = sel[0] if sel else None
        key = str(sel.pop(0)) if isinstance(first, str) else None
        if key is None and sel:
            t: Any = output
        else:
            t = _rnn_select(module, output, key)
    else:
        t = output
    for s in sel:
        try:
            if isinstance(s, int):
                if not isinstance(t, (tuple, list)):
                    raise LayerNotFoundError(
                        f"{spec.spec}: [{s}] indexes a tuple, but the output there is a {type(t).__name__}."
                    )
                t = t[s]
            elif isinstance(t, Mapping):
                t = t[s]
            else:
                t = getattr(t, s)
        except (IndexError, KeyError, AttributeError) as err:
            avail = (
                f"keys {_keys(t)}" if isinstance(t, Mapping)
                else f"{len(t)} elements" if isinstance(t, (tuple, list)) else type(t).__name__
            )
            raise LayerNotFoundError(f"{spec.spec}: the output has no {s!r} (it has {avail}).") from err
    if isinstance(t, torch.Tensor):
        return t
    if isinstance(t, (tuple, list)) and t and isinstance(t[0], torch.Tensor):
        return t[0]
    if isinstance(t, Mapping):
        keys = _keys(t)
        if len(keys) == 1:
            return t[keys[0]]
        raise LayerNotFoundError(
            f"Layer {spec.spec!r} returns a dict with tensors {keys}; say which one to record, e.g. "
            f"'{spec.module}:{keys[-1] if keys else 'key'}'."
        )
    if isinstance(t, (tuple, list)) and t:
        inner = t[0]
        return select_output(inner, LayerSpec(spec.spec, spec.module), None)
    raise InputShapeError(f"Layer {spec.spec!r} produced {type(t).__name__}, not a tensor; select an element of it.")


# ------------------------------------------------------------------------------------------
# Axes
# ------------------------------------------------------------------------------------------

_SPATIAL_TYPES: tuple[type, ...] = (
    nn.modules.conv._ConvNd,
    nn.modules.batchnorm._BatchNorm,
    nn.modules.instancenorm._InstanceNorm,
    nn.modules.pooling._MaxPoolNd,
    nn.modules.pooling._AvgPoolNd,
    nn.modules.pooling._AdaptiveAvgPoolNd,
    nn.modules.pooling._AdaptiveMaxPoolNd,
    nn.GroupNorm,
)
_SEQUENCE_TYPES: tuple[type, ...] = (
    nn.RNNBase,
    nn.Linear,
    nn.LayerNorm,
    nn.Embedding,
    nn.MultiheadAttention,
    nn.TransformerEncoderLayer,
    nn.TransformerDecoderLayer,
    nn.TransformerEncoder,
    nn.TransformerDecoder,
)
LAYOUTS = ("flat", "spatial", "sequence", "unknown")


def layout_of(t: torch.Tensor, module: nn.Module | None = None, batch: Batch | None = None, hint: str | None = None) -> str:
    """The layout of a recorded tensor ``(N, ...)``: flat, spatial, sequence or unknown (module docstring)."""
    if hint is not None:
        if hint not in LAYOUTS[:3]:
            raise ParameterError(f"layout must be one of flat, spatial, sequence; got {hint!r}.")
        return hint
    if t.ndim <= 2:
        return "flat"
    if t.ndim >= 4:
        return "spatial"
    if module is not None and isinstance(module, _SPATIAL_TYPES):
        return "spatial"
    if module is not None and isinstance(module, _SEQUENCE_TYPES):
        return "sequence"
    mask = batch.mask if batch is not None else None
    if mask is not None and t.shape[1] == mask.shape[1]:
        return "sequence"
    return "unknown"


def reduce_output(
    t: torch.Tensor, how: Reduction, layout: str, mask: torch.Tensor | None = None, name: str = "layer"
) -> torch.Tensor:
    """Reduce ``t`` to ``(N, F)`` by its layout (see the module docstring); ``how=None`` keeps it."""
    if how is None or t.ndim <= 2:
        return t
    if callable(how):
        out = how(t, layout, mask)
        if not isinstance(out, torch.Tensor) or out.shape[0] != t.shape[0]:
            raise ParameterError(f"The reduce callable must return a tensor with {t.shape[0]} rows for {name!r}.")
        return out
    if how not in REDUCTIONS:
        raise ParameterError(f"reduce must be None, one of {', '.join(REDUCTIONS)} or a callable; got {how!r}.")
    if layout == "unknown":
        raise ParameterError(
            f"Layer {name!r} outputs shape {tuple(t.shape)}: layerscope cannot tell whether axis 1 is channels "
            "(a conv1d map, N x C x L) or time (a sequence, N x T x D), so it will not guess which axis to "
            f"reduce. Say so: layouts={{'{name}': 'spatial'}} or {{'{name}': 'sequence'}} (CLI: --layout {name}=sequence)."
        )
    if layout == "spatial":
        if how not in ("mean", "max"):
            raise ParameterError(f"reduce={how!r} is for sequences; layer {name!r} is a spatial map: use mean or max.")
        flat = t.flatten(2)
        return flat.mean(dim=2) if how == "mean" else flat.amax(dim=2)
    # sequence (N, T, D): reduce over T, masked
    if mask is not None and (mask.ndim != 2 or mask.shape[0] != t.shape[0] or mask.shape[1] != t.shape[1]):
        mask = None
    if how in ("first", "cls"):
        return t[:, 0]
    if how == "last":
        if mask is None:
            return t[:, -1]
        last = (mask.long().cumsum(1) * mask.long()).argmax(dim=1)
        return t[torch.arange(t.shape[0], device=t.device), last]
    if mask is None:
        return t.mean(dim=1) if how == "mean" else t.amax(dim=1)
    m = mask.to(t.dtype).unsqueeze(-1)
    if how == "mean":
        return (t * m).sum(dim=1) / m.sum(dim=1).clamp_min(1)
    neg = torch.finfo(t.dtype).min if t.is_floating_point() else torch.iinfo(t.dtype).min
    return t.masked_fill(m == 0, neg).amax(dim=1)


def classifier_logits(output: Any, n_classes: int | None) -> tuple[torch.Tensor | None, str]:
    """The model output as ``(N, n_classes)`` class scores, or ``None`` and the reason it is not.

    Predictions, accuracy and "misclassified" marks are only made from this: a 2-D floating output
    (or the ``logits`` of a ``ModelOutput``) whose width matches the number of classes of the labels.
    """
    t: Any = output
    if isinstance(output, Mapping) and "logits" in output:
        t = output["logits"]
    elif hasattr(output, "logits") and isinstance(getattr(output, "logits"), torch.Tensor):
        t = output.logits
    elif isinstance(output, (tuple, list)) and output and isinstance(output[0], torch.Tensor):
        t = output[0]
    if not isinstance(t, torch.Tensor):
        return None, f"the model returns {type(output).__name__}, not a tensor of class scores"
    if t.ndim != 2 or not t.is_floating_point():
        return None, f"the model output has shape {tuple(t.shape)}, not (N, classes) scores"
    if n_classes is not None and t.shape[1] != n_classes:
        return None, f"the model output has {t.shape[1]} columns but the data has {n_classes} classes"
    if t.shape[1] < 2:
        return None, "the model output has one column (not a classifier's scores)"
    return t, ""
