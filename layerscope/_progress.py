"""Progress reporting without printing: the library takes a *tracker*, the CLI passes a bar.

A tracker is any callable ``(iterable, total, description) -> iterable``. The library wraps
its long loops in it; :func:`no_progress` (the default) returns the iterable unchanged.
"""

from __future__ import annotations

from typing import Callable, Iterable, TypeVar

T = TypeVar("T")

Tracker = Callable[..., Iterable[T]]  # called as tracker(iterable, total=n, desc="...") (tqdm keywords)

__all__ = ["Tracker", "no_progress"]


def no_progress(iterable: Iterable[T], total: int | None = None, desc: str = "", **kwargs: object) -> Iterable[T]:
    """The default tracker: no output (takes tqdm's keywords ``total=`` and ``desc=``)."""
    return iterable
