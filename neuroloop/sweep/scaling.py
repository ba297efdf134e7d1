"""Measure a sweep's scaling, scheduling overhead and memory per worker.

``python -m neuroloop.sweep.scaling [--cells 16] [--memory-cells 100] [--out DIR]`` runs

1. a sweep of ``--cells`` ``run --fast`` cells (bsi, 60 s calibration, 60 s closed loop) on 1
   local worker (the reference) and on 2, in the same process one after the other, and
   reports the speed-up (wall time from the first task to the last result, and the whole
   command including the cluster start-up) and each run's scheduling overhead as a
   percentage of the cells' own time;
2. a sweep of ``--memory-cells`` small cells on 2 workers and the resident memory of each
   worker after each of its cells: first, last, and the least-squares growth per 100 cells
   after the first tenth (the warm-up).

It prints one JSON object. The targets (docs/sweep.md): speed-up >= 1.7 on 2 cores, overhead
<= 5 %, memory flat. Measure on a quiet machine; the load average is reported with the result.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from .driver import run_sweep
from .spec import load_spec

__all__ = ["measure_memory", "measure_scaling", "main"]

_SCALING_SPEC = """
[sweep]
name = "scaling"
figures = []
[fixed]
scenario = "bsi"
duration_s = 60
"decoder.calibration_s" = 60
"runtime.deadline_ms" = 10000
[grid]
seed = {seeds}
"""

_MEMORY_SPEC = """
[sweep]
name = "memory"
figures = []
[fixed]
scenario = "eeg-bci"
duration_s = 10
"decoder.calibration_s" = 20
[grid]
seed = {seeds}
"""


def _spec(directory: Path, text: str, n: int) -> Any:
    p = directory / "spec.toml"
    p.write_text(text.format(seeds=list(range(1, n + 1))))
    return load_spec(p)


def measure_scaling(n_cells: int, directory: Path) -> dict[str, Any]:
    """Wall time of ``n_cells`` cells on 1 and on 2 local workers, and the ratio."""
    spec = _spec(directory, _SCALING_SPEC, n_cells)
    out: dict[str, Any] = {"cells": n_cells}
    for workers in (1, 2):
        t0 = time.perf_counter()
        o = run_sweep(spec, directory / f"w{workers}", n_workers=workers, as_json=True)
        total = time.perf_counter() - t0
        out[f"workers_{workers}"] = {"wall_s": round(o.wall_s, 2), "total_s": round(total, 2),
                                     "setup_s": round(o.setup_s, 2),
                                     "cells_s": round(o.cells_s, 2),
                                     "cells_cpu_s": round(sum(
                                         float(r["cell_cpu_s"] or 0) for r in o.rows), 2),
                                     "overhead_pct": o.overhead_pct, "statuses": o.statuses}
    one, two = out["workers_1"], out["workers_2"]
    out["speedup_wall"] = round(one["wall_s"] / two["wall_s"], 3)
    out["speedup_total"] = round(one["total_s"] / two["total_s"], 3)
    return out


def measure_memory(n_cells: int, directory: Path) -> dict[str, Any]:
    """Resident memory of each of 2 workers after each of its cells over ``n_cells`` cells."""
    spec = _spec(directory, _MEMORY_SPEC, n_cells)
    o = run_sweep(spec, directory / "mem", n_workers=2, as_json=True)
    per: dict[str, list[tuple[float, float]]] = {}
    for r in o.rows:
        per.setdefault(str(r["worker_pid"]), []).append((r["started_unix_s"], r["worker_rss_mb"]))
    workers = {}
    for pid, pts in per.items():
        rss = np.array([m for _, m in sorted(pts)], dtype=float)
        skip = max(1, rss.shape[0] // 10)
        tail = rss[skip:]
        slope = float(np.polyfit(np.arange(tail.shape[0]), tail, 1)[0]) if tail.shape[0] > 2 \
            else float("nan")
        workers[pid] = {"cells": int(rss.shape[0]), "first_mb": float(rss[0]),
                        "after_warmup_mb": float(tail[0]) if tail.shape[0] else None,
                        "last_mb": float(rss[-1]), "max_mb": float(rss.max()),
                        "growth_mb_per_100_cells": round(slope * 100, 2)}
    return {"cells": n_cells, "statuses": o.statuses, "workers": workers}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m neuroloop.sweep.scaling",
                                description=__doc__.split("\n\n")[0] if __doc__ else None)
    p.add_argument("--cells", type=int, default=16)
    p.add_argument("--memory-cells", type=int, default=100)
    p.add_argument("--out", help="keep the sweeps' results here (default: a temporary dir)")
    p.add_argument("--skip-memory", action="store_true")
    p.add_argument("--skip-scaling", action="store_true")
    args = p.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(args.out or tmp)
        d.mkdir(parents=True, exist_ok=True)
        result: dict[str, Any] = {"cpus": os.cpu_count(), "load_before": os.getloadavg()}
        if not args.skip_scaling:
            (d / "scaling").mkdir(exist_ok=True)
            result["scaling"] = measure_scaling(args.cells, d / "scaling")
        if not args.skip_memory:
            (d / "memory").mkdir(exist_ok=True)
            result["memory"] = measure_memory(args.memory_cells, d / "memory")
        result["load_after"] = os.getloadavg()
    sys.stdout.write(json.dumps(result, indent=1) + "\n")
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
