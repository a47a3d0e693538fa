"""Measurement: the time the demo's text steps add (text-separability, text-topk, text-occlusion on MiniLM).

Runs :func:`layerscope.demo.run_demo` with only the text steps into a temporary folder and records
each step's wall time, the process CPU time and the load average. Needs the ``[text]`` extra.
Writes ``bench/results/demo_text_time.json``.

Usage: nice -n 10 python bench/demo_text_time.py
"""

from __future__ import annotations

import json
import os
import resource
import tempfile
import time
from pathlib import Path


def main() -> None:
    from layerscope.demo import run_demo

    t0, c0 = time.perf_counter(), resource.getrusage(resource.RUSAGE_SELF)
    with tempfile.TemporaryDirectory() as d:
        run = run_demo(Path(d) / "demo", only="text-separability,text-topk,text-occlusion", speech=False, transfer=False)
        steps = [{"step": s.name, "status": s.status, "seconds": round(s.seconds, 1), "summary": s.summary}
                 for s in run.steps if s.status != "not selected"]
        report_s = run.report_seconds
    c1 = resource.getrusage(resource.RUSAGE_SELF)
    out = {
        "steps": steps, "wall_seconds": round(time.perf_counter() - t0, 1), "report_seconds": round(report_s, 1),
        "cpu_seconds": round((c1.ru_utime - c0.ru_utime) + (c1.ru_stime - c0.ru_stime), 1),
        "torch_threads": __import__("torch").get_num_threads(), "load_average": [round(x, 1) for x in os.getloadavg()],
    }
    path = Path(__file__).resolve().parent / "results" / "demo_text_time.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(out, indent=1) + "\n")
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
