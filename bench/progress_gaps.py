"""How often do the demo's progress bars move? A progress log of ``layerscope demo``.

Runs the demo (library call, ``run_demo``) with a tracker that records every bar (its ``desc``)
and every tick with its time, then reports per step: seconds, bars, ticks and the longest time
without any tick (from the step's start, between ticks, and to its end) -- the "silences" a user
watches. Writes ``bench/results/progress_gaps.json`` and ``.md``.

    nice -n 10 python bench/progress_gaps.py [--limit 6000 --epochs 2 --n-project 1000] [--out DIR]

Sizes default to a reduced demo so that a run takes minutes on a loaded 2-core machine; the gaps
scale with the sizes (``--limit``: training digits, ``--n-project``: points per t-SNE).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from pathlib import Path
from typing import Any, Iterable, Iterator

import torch


class TickLog:
    """A tqdm-like tracker recording (time, desc) of every tick."""

    def __init__(self) -> None:
        self.ticks: list[tuple[float, str]] = []

    def __call__(self, iterable: Iterable[Any], total: int | None = None, desc: str | None = None, **_: Any) -> Iterator[Any]:
        name = desc or "?"
        self.ticks.append((time.perf_counter(), f"open {name}"))
        for item in iterable:
            yield item
            self.ticks.append((time.perf_counter(), name))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--limit", type=int, default=6000)
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--n-project", type=int, default=1000)
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()
    torch.set_num_threads(1)
    from layerscope.demo import run_demo

    log = TickLog()
    spans: dict[str, list[float]] = {}

    def on_step(event: str, run: Any) -> None:
        if event in ("start", "end"):
            spans.setdefault(run.name, []).append(time.perf_counter())

    out = args.out or Path(tempfile.mkdtemp(prefix="layerscope-progress-"))
    load = os.getloadavg()[0]
    t0 = time.perf_counter()
    run = run_demo(out, epochs=args.epochs, limit=args.limit, n_project=args.n_project, progress=log, on_step=on_step)
    total = time.perf_counter() - t0
    rows = []
    for name, ts in spans.items():
        if len(ts) < 2:
            continue
        start, end = ts[0], ts[-1]
        inside = [(t, d) for t, d in log.ticks if start <= t <= end and d != "demo steps" and not d.startswith("open demo")]
        times = [start] + [t for t, _ in inside] + [end]
        gaps = [b - a for a, b in zip(times, times[1:])]
        bars = sorted({d[5:] for _, d in inside if d.startswith("open ")})
        rows.append({"step": name, "seconds": round(end - start, 1), "bars": bars,
                     "ticks": sum(1 for _, d in inside if not d.startswith("open ")),
                     "longest_silence_s": round(max(gaps), 1)})
    res = {"sizes": {"limit": args.limit, "epochs": args.epochs, "n_project": args.n_project},
           "load_average_start": round(load, 2), "load_average_end": round(os.getloadavg()[0], 2),
           "cpus": os.cpu_count(), "machine": platform.machine(), "torch_threads": 1,
           "total_s": round(total, 1), "ok": run.ok, "steps": rows}
    here = Path(__file__).resolve().parent / "results"
    here.mkdir(exist_ok=True)
    (here / "progress_gaps.json").write_text(json.dumps(res, indent=2) + "\n")
    lines = [f"# Progress log of the demo (limit {args.limit}, epochs {args.epochs}, n_project {args.n_project}; "
             f"{os.cpu_count()} CPUs, load average {load:.1f} -> {os.getloadavg()[0]:.1f}, torch 1 thread; "
             f"total {total:.0f} s)", "",
             "| step | seconds | ticks | longest silence (s) | bars |", "| --- | ---: | ---: | ---: | --- |"]
    for r in rows:
        bars = ", ".join(r["bars"][:4]) + (f", ... ({len(r['bars'])})" if len(r["bars"]) > 4 else "")
        lines.append(f"| {r['step']} | {r['seconds']} | {r['ticks']} | {r['longest_silence_s']} | {bars} |")
    (here / "progress_gaps.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
