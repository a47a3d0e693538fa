"""Where the cells of a transfer grid run: in-process, a local process pool, or Ray.

An executor has one method, ``map_unordered(fn, tasks)``, that runs ``fn(task)`` for every task
and yields the results as they complete (in any order), and ``close()``. Every cell sets its own
torch thread count and seeds (:func:`~layerscope.transfer.grid.run_cell`), so the same grid gives
the same numbers on every executor.

* :class:`LocalExecutor` — sequential, in this process.
* :class:`PoolExecutor` — ``concurrent.futures.ProcessPoolExecutor`` with spawned workers.
* :class:`RayExecutor` — Ray tasks (one CPU each); ``address`` joins a running cluster
  (``ray.init(address=...)``), else a local Ray is started and shut down on ``close()``.
  Workers load the data from its spec, so on a cluster the data path must exist on every node.
  A cluster with Ray's token authentication needs the token set up in this process as Ray's
  documentation says (a cluster started with ``RAY_AUTH_MODE=disabled`` needs nothing).

Workers end when their parent dies: pool workers run a watchdog thread
(:func:`watch_parent`) that ends the worker with ``os._exit`` within half a second once its
parent process is gone (killed with ``kill -9`` included), so a killed ``layerscope transfer``
leaves no workers holding memory (tested with a real ``kill -9``). Ray: a local Ray started by
:class:`RayExecutor` runs its processes fate-shared with the driver (Ray's own mechanism), and on
a cluster Ray ends the tasks of a driver whose job died; neither is tested here (starting Ray is
too slow for the test suite), so after killing a driver of a long-lived cluster check
``ray list tasks``. A cell killed in flight is never recorded, so a resume recomputes it.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from typing import Any, Callable, Iterable, Iterator, Protocol, TypeVar

from ..exceptions import ParameterError

__all__ = ["Executor", "LocalExecutor", "PoolExecutor", "RayExecutor", "make_executor", "EXECUTORS", "watch_parent"]

T = TypeVar("T")
R = TypeVar("R")
log = logging.getLogger(__name__)

EXECUTORS = ("local", "pool", "ray")


class Executor(Protocol):
    def map_unordered(self, fn: Callable[[T], R], tasks: Iterable[T]) -> Iterator[R]: ...

    def close(self) -> None: ...


class LocalExecutor:
    """Run the tasks one after the other in this process."""

    name = "local"

    def map_unordered(self, fn: Callable[[T], R], tasks: Iterable[T]) -> Iterator[R]:
        for t in tasks:
            yield fn(t)

    def close(self) -> None:
        pass

    def __enter__(self) -> "LocalExecutor":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def watch_parent(parent_pid: int, interval: float = 0.5) -> threading.Thread:
    """Start a daemon thread that ends this process once ``parent_pid`` is no longer its parent.

    Polls ``os.getppid()`` (the parent changes to an init / subreaper process when the parent
    dies, also after ``kill -9``), so it works on Linux and macOS and does not depend on which
    parent thread started the worker (``PR_SET_PDEATHSIG`` fires when that *thread* exits).
    """

    def run() -> None:
        while True:
            if os.getppid() != parent_pid:
                os._exit(1)
            time.sleep(interval)

    t = threading.Thread(target=run, name="layerscope-parent-watchdog", daemon=True)
    t.start()
    return t


def _worker_init(parent_pid: int | None = None) -> None:
    import torch

    torch.set_num_threads(1)
    if parent_pid is not None:
        watch_parent(parent_pid)


class PoolExecutor:
    """A local pool of ``workers`` spawned processes (one torch thread each)."""

    name = "pool"

    def __init__(self, workers: int | None = None) -> None:
        if workers is not None and workers < 1:
            raise ParameterError(f"workers must be >= 1 (or None for all cores); got {workers}.")
        self.workers = int(workers or os.cpu_count() or 1)
        self._pool: Any = None

    def _ensure(self) -> Any:
        if self._pool is None:
            import multiprocessing as mp
            from concurrent.futures import ProcessPoolExecutor

            self._pool = ProcessPoolExecutor(
                self.workers, mp_context=mp.get_context("spawn"), initializer=_worker_init, initargs=(os.getpid(),)
            )
        return self._pool

    def map_unordered(self, fn: Callable[[T], R], tasks: Iterable[T]) -> Iterator[R]:
        from concurrent.futures import FIRST_COMPLETED, wait

        pool = self._ensure()
        it = iter(tasks)
        pending: set[Any] = set()
        # Keep at most 2 tasks per worker queued, so a killed run has few cells in flight.
        try:
            while True:
                while len(pending) < 2 * self.workers:
                    try:
                        pending.add(pool.submit(fn, next(it)))
                    except StopIteration:
                        break
                if not pending:
                    return
                done, pending = wait(pending, return_when=FIRST_COMPLETED)
                for f in done:
                    yield f.result()
        finally:
            for f in pending:
                f.cancel()

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None

    def __enter__(self) -> "PoolExecutor":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


class RayExecutor:
    """Ray tasks; ``address`` joins a cluster (``"auto"`` or ``"ray://host:10001"``), else local Ray.

    Parameters
    ----------
    address
        Passed to ``ray.init(address=...)``; None starts a local Ray with ``num_cpus``.
    num_cpus
        CPUs of a local Ray (ignored with ``address``).
    max_in_flight
        Tasks submitted ahead of the results (default: twice the cluster's CPUs).
    """

    name = "ray"

    def __init__(self, address: str | None = None, num_cpus: int | None = None, max_in_flight: int | None = None) -> None:
        self.address = address
        self.num_cpus = num_cpus
        self.max_in_flight = max_in_flight
        self._started = False
        self._remote: Any = None

    def _ensure(self) -> Any:
        from .._optional import require

        ray = require("ray", "the ray executor")

        if not ray.is_initialized():
            if self.address:
                ray.init(address=self.address)
            else:
                ray.init(num_cpus=self.num_cpus, include_dashboard=False, log_to_driver=False)
            self._started = True
        return ray

    def map_unordered(self, fn: Callable[[T], R], tasks: Iterable[T]) -> Iterator[R]:
        ray = self._ensure()
        remote = ray.remote(num_cpus=1)(_ray_call)
        limit = self.max_in_flight or max(2, 2 * int(ray.cluster_resources().get("CPU", 1)))
        it = iter(tasks)
        pending: list[Any] = []
        try:
            while True:
                while len(pending) < limit:
                    try:
                        pending.append(remote.remote(fn, next(it)))
                    except StopIteration:
                        break
                if not pending:
                    return
                done, pending = ray.wait(pending, num_returns=1)
                for ref in done:
                    yield ray.get(ref)
        finally:
            for ref in pending:
                try:
                    ray.cancel(ref)
                except Exception:  # pragma: no cover - best effort on shutdown
                    log.debug("could not cancel a Ray task", exc_info=True)

    def close(self) -> None:
        if self._started:
            from .._optional import require

            ray = require("ray", "the ray executor")

            ray.shutdown()
            self._started = False

    def __enter__(self) -> "RayExecutor":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def _ray_call(fn: Callable[[T], R], task: T) -> R:
    import torch

    torch.set_num_threads(1)
    return fn(task)


def make_executor(name: str, *, workers: int | None = None, address: str | None = None) -> Any:
    """``"local"`` | ``"pool"`` | ``"ray"`` -> an executor."""
    if name == "local":
        return LocalExecutor()
    if name == "pool":
        return PoolExecutor(workers)
    if name == "ray":
        return RayExecutor(address=address, num_cpus=workers)
    raise ParameterError(f"Unknown executor {name!r}; expected one of {', '.join(EXECUTORS)}.")
