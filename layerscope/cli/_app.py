"""Shared pieces of the CLI: the Typer app, consoles, progress bars, model/data loading."""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any, Iterable, Iterator, TypeVar

import typer
from rich.console import Console
from rich.text import Text
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    Task,
    TaskProgressColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from ..exceptions import LayerscopeError

T = TypeVar("T")

app = typer.Typer(
    name="layerscope",
    help="See what each layer of a trained PyTorch network has learned.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
console = Console()
err_console = Console(stderr=True)


class RateColumn(ProgressColumn):
    """Items per second."""

    def render(self, task: Task) -> Text:
        speed = task.finished_speed or task.speed
        return Text(f"{speed:.1f}/s" if speed else "", style="progress.data.speed")


class RichTracker:
    """A progress tracker for the library: a rich bar with counts, rate and time left.

    Called as tqdm is: ``tracker(iterable, total=n, desc="layer fc1")`` (see
    :mod:`layerscope._progress`); other tqdm keywords are accepted and ignored.
    """

    def __init__(self, progress: Progress) -> None:
        self.progress = progress

    def __call__(self, iterable: Iterable[T], total: int | None = None, desc: str | None = None, **_: Any) -> Iterator[T]:
        if total is None and hasattr(iterable, "__len__"):
            total = len(iterable)  # type: ignore[arg-type]
        task = self.progress.add_task(desc or "working", total=total)
        try:
            for item in iterable:
                yield item
                self.progress.advance(task)
        finally:
            self.progress.update(task, visible=True)


@contextlib.contextmanager
def progress_bar(enabled: bool = True) -> Iterator[RichTracker | None]:
    """Context giving a tracker that draws rich progress bars on stderr (None if disabled)."""
    if not enabled:
        yield None
        return
    progress = Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TaskProgressColumn(),
        RateColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=err_console,
        transient=False,
    )
    with progress:
        yield RichTracker(progress)


MODEL_HELP = (
    "Model: a bundled pretrained name (resnet20-cifar10, mnist-mlp, mnist-cnn), a run folder from "
    "`layerscope train` (RUN or RUN@EPOCH), a .pt2 torch.export file, or package.module:factory "
    "with --weights."
)
DATA_HELP = (
    "Data spec: mnist, mnist:test, fsdd, fsdd:test, cifar10:PATH[:train|test], imagefolder:PATH, npz:PATH. "
    "Default: the data the model was trained or is meant for."
)


def model_option() -> Any:
    """``--model/-m``: what to analyse (see MODEL_HELP)."""
    return typer.Option(..., "--model", "-m", help=MODEL_HELP)


def data_option() -> Any:
    """``--data``: a data spec; default: the data the model was trained on or is meant for."""
    return typer.Option(None, help=DATA_HELP)


def out_option(help: str = "Output folder (result.json, figures, arrays).") -> Any:
    """``--out/-o``: the result folder of an analysis command (``help``: what it holds)."""
    return typer.Option(..., "--out", "-o", help=help)


def batch_size_option() -> Any:
    """``--batch-size``: samples per forward pass."""
    return typer.Option(256, min=1, help="Samples per forward pass.")


def weights_option() -> Any:
    """``--weights``: the weight file of a ``package.module:factory`` model."""
    return typer.Option(None, help="Weights for a package.module:factory model (.safetensors or a torch.save'd state_dict).")


def allow_pickle_option() -> Any:
    """``--allow-pickle``: the explicit opt-in to unpickling a weight file."""
    return typer.Option(False, help="Allow weight files that need unpickling (this runs code from the file; trust it first).")


def progress_option() -> Any:
    """``--progress/--no-progress``."""
    return typer.Option(True, help="Show progress bars.")


def seed_option(help: str | None = None) -> Any:
    """``--seed`` (default 0), with the command's own ``help`` (what the seed decides)."""
    return typer.Option(0, help=help)


def threads_option() -> Any:
    """``--threads``: torch CPU threads of the command (see :func:`set_threads`)."""
    return typer.Option(None, help="torch CPU threads.")


def memory_budget_option() -> Any:
    """``--memory-budget-mb``: bytes of captured layers kept in RAM (see :func:`parse_memory_budget`)."""
    return typer.Option(None, "--memory-budget-mb",
                        help="Keep in RAM the layers that fit in this many MB; stream the others to disk.")


def store_option() -> Any:
    """``--store``: ``zarr`` puts every captured layer into a chunked, compressed store on disk."""
    return typer.Option(None, help="'zarr': every layer into a chunked, compressed Zarr store (captures larger than memory).")


def parse_memory_budget(memory_budget_mb: float | None) -> int | None:
    """``--memory-budget-mb`` in bytes (MiB x 2**20); ``None`` stays ``None``; negative, nan or inf is refused."""
    from .._stream import budget_bytes

    return budget_bytes(memory_budget_mb)


def set_threads(threads: int | None) -> None:
    """Apply ``--threads``: the CLI process's torch thread count (library code never sets it)."""
    if threads:
        import torch

        torch.set_num_threads(threads)


def load_model_and_data(model: str, data: str | None, weights: Path | None = None,
                        allow_pickle: bool = False) -> tuple[Any, Any]:
    """``(model, data set)`` of ``--model/--weights/--allow-pickle`` and ``--data`` (default: the model's data)."""
    net = load_model_cli(model, weights, allow_pickle)
    return net, load_data_cli(data, net)


def load_model_cli(spec: str, weights: Path | None = None, allow_pickle: bool = False) -> Any:
    from ..loading import load_model

    return load_model(spec, weights=weights, allow_pickle=allow_pickle)


def default_data_spec(model: Any) -> str | None:
    """The data a model was trained on / is meant for, if known (evaluation split)."""
    src = getattr(model, "layerscope_source", None) or {}
    if src.get("kind") == "run":
        from ..training import TrainRun

        try:
            recipe = TrainRun.load(src["run"]).meta.get("recipe")
        except (LayerscopeError, OSError, KeyError):  # unreadable run.json: keep the generic default
            recipe = None
        if recipe is not None and "speech" in str(recipe):
            return f"speech:{src['run']}:test"
        if src.get("val_data"):
            return str(src["val_data"])
        if src.get("data"):
            from ..data import eval_spec_for

            try:
                return eval_spec_for(str(src["data"])) or str(src["data"])
            except LayerscopeError:  # a spec of a kind no longer registered: give it back as stored
                return str(src["data"])
        return None
    if src.get("kind") == "pretrained":
        from ..models import PRETRAINED

        spec = PRETRAINED[src["name"]].data
        return None if "PATH" in spec else spec
    return None


def load_data_cli(spec: str | None, model: Any = None) -> Any:
    from ..data import load_dataset
    from ..exceptions import DataError

    if spec is None:
        spec = default_data_spec(model) if model is not None else None
        if spec is None:
            raise DataError("This model has no default data; pass --data (e.g. --data mnist:test).")
    return load_dataset(spec)


def load_recordings(data: str, purpose: str = "use fsdd or fsdd:PATH") -> Any:
    """``load_dataset(data)``, refused in one line unless it is a set of recordings (an AudioDataset)."""
    from ..data import AudioDataset, load_dataset
    from ..exceptions import DataError

    audio = load_dataset(data)
    if not isinstance(audio, AudioDataset):
        raise DataError(f"{data} is not a set of recordings; {purpose}.")
    return audio


def parse_list(value: str | None) -> list[str] | None:
    if value is None:
        return None
    return [v.strip() for v in value.split(",") if v.strip()]


# -- small shared validators of CLI values (the library checks its own parameters too) ------------


def check_count(option: str, value: int | None) -> int | None:
    """``value`` if it is None or >= 1; else a ParameterError naming ``option`` (e.g. ``--limit``)."""
    from ..exceptions import ParameterError

    if value is not None and int(value) < 1:
        raise ParameterError(f"{option} must be >= 1; got {value}. Leave it out to use every sample.")
    return value


def parse_indices(value: str | None, n: int, option: str = "--indices") -> Any:
    """Comma-separated dataset rows -> int64 array, each in ``[0, n)``; None if ``value`` is None.

    Negative rows are refused (Python's from-the-end meaning would be recorded as sample -1).
    """
    import numpy as np

    from ..exceptions import ParameterError

    items = parse_list(value)
    if items is None:
        return None
    if not items:
        raise ParameterError(f"{option} is empty; give comma-separated dataset rows, e.g. {option} 0,5,7.")
    try:
        rows = [int(v) for v in items]
    except ValueError:
        raise ParameterError(f"{option} takes comma-separated whole numbers (dataset rows); got {value!r}.") from None
    bad = [r for r in rows if not 0 <= r < n]
    if bad:
        raise ParameterError(f"{option} {bad} out of range: the data has {n} samples, rows 0..{n - 1}.")
    return np.asarray(rows, dtype=np.int64)
