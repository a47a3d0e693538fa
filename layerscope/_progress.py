"""Progress reporting without printing: the library takes a *tracker*, the CLI passes a bar.

The protocol is tqdm's: a tracker is any callable used as ::

    progress(iterable, total=n, desc="layer fc1")

(keyword arguments ``total`` and ``desc``; the iterable positional) that returns an iterable
yielding the same items. So ``progress=tqdm.tqdm`` or ``progress=tqdm.auto.tqdm`` work as they
are, and so does the CLI's rich bar. Analyses accept ``progress=`` as

* ``None`` or ``False``: no progress output (the default);
* ``True``: :func:`tqdm.auto.tqdm` (a widget in notebooks, a text bar in terminals);
* any tracker.

:func:`resolve_progress` turns that argument into a tracker; library loops call it with
keywords only, and say what they count in ``desc`` ("layer X", "epoch N", ...).
"""

from __future__ import annotations

import contextlib
from typing import Any, Callable, Iterable, Iterator, TypeVar, Union

T = TypeVar("T")

#: ``progress(iterable, total=n, desc="...") -> iterable`` (tqdm's calling convention)
Tracker = Callable[..., Iterable[Any]]
#: what analyses accept as ``progress=``
ProgressArg = Union[Tracker, bool, None]

__all__ = ["Tracker", "ProgressArg", "no_progress", "resolve_progress", "ticks"]


def no_progress(iterable: Iterable[T], total: int | None = None, desc: str | None = None, **_: Any) -> Iterable[T]:
    """The default tracker: no output; returns ``iterable`` unchanged."""
    return iterable


def resolve_progress(progress: ProgressArg) -> Tracker:
    """The tracker for an analysis' ``progress=`` argument (see the module docstring).

    The returned tracker also accepts ``(iterable, total, desc)`` positionally and always calls
    the user's tracker with keywords, so it can be passed on to code that still calls trackers
    positionally.
    """
    if progress is None or progress is False:
        return no_progress
    if progress is True:
        from tqdm.auto import tqdm

        tracker: Tracker = tqdm
    elif not callable(progress):
        from .exceptions import ParameterError

        raise ParameterError(
            f"progress must be None, True/False or a tqdm-like callable; got {type(progress).__name__}. "
            "Pass e.g. progress=True (tqdm.auto) or progress=tqdm.tqdm."
        )
    else:
        tracker = progress

    def track(iterable: Iterable[T], total: int | None = None, desc: str | None = None, **kwargs: Any) -> Iterable[T]:
        # positional (iterable, total, desc) from callers of the older protocol reach the tracker
        # as keywords, the only form tqdm reads correctly
        return tracker(iterable, total=total, desc=desc, **kwargs)

    return track


@contextlib.contextmanager
def ticks(track: Tracker, total: int, desc: str) -> Iterator[Callable[[], None]]:
    """A tick function for work that reports from a callback (e.g. openTSNE's), through ``track``.

    ``track`` only wraps iterables, so this pulls one item of ``track(range(total))`` per tick:
    the bar advances by one on each call of the yielded function (calls beyond ``total`` are
    ignored) and is run to its end when the block exits, also when the work stopped early::

        with ticks(track, total=10, desc="tsne fc1") as tick:
            optimize(callback=lambda *_: tick())
    """
    it = iter(track(range(total), total=total, desc=desc))
    next(it, None)  # the first item opens the bar at 0; each later one advances it by one

    def tick() -> None:
        next(it, None)

    try:
        yield tick
    finally:
        for _ in it:  # the rest, so the bar ends complete and the tracker's generator closes
            pass
