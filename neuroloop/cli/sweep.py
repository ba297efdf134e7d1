"""``neuroloop sweep SPEC.toml``: run a parameter sweep on a local or remote Dask cluster."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from .. import _checks as B

__all__ = ["COMMANDS", "register"]

_CONNECT_TIMEOUT_S = B.Range(0.1, 600.0, unit="s")


def register(sub: Any) -> None:
    """Add the ``sweep`` sub-command."""
    from ..sweep.driver import WORKERS
    from . import _bounded

    p = sub.add_parser(
        "sweep", help="run a sweep of cells (run --fast, replay --check, ...) on Dask",
        description="Expand SPEC.toml (axes as a grid and/or an explicit list of cells) into "
        "cells and run each as one Dask task: on a local cluster of worker processes (one per "
        "core) unless --scheduler names a running one. Finished cells are journaled in --out; "
        "a rerun skips them. Writes results.parquet, results.csv and figures/ in --out. "
        "Exit 0 when every cell is ok (and every replay identical), 1 when some cell failed, "
        "timed out or diverged, 2 on bad input. See docs/sweep.md.")
    p.add_argument("spec", metavar="SPEC.toml", help="the sweep spec (docs/sweep.md)")
    p.add_argument("--scheduler", metavar="tcp://HOST:PORT",
                   help="address of a running Dask scheduler (`dask scheduler`); default: "
                   "start a local cluster and stop it at the end")
    p.add_argument("--workers", type=_bounded(WORKERS, "e.g. 2"), metavar="N",
                   help="local worker processes, 1..512 (default: one per core); not with "
                   "--scheduler")
    p.add_argument("--out", metavar="DIR", help="results directory (default: "
                   "sweep-<name> in the current directory); rerun with the same DIR to "
                   "continue an interrupted sweep")
    p.add_argument("--connect-timeout", type=_bounded(_CONNECT_TIMEOUT_S, "e.g. 10"),
                   default=10.0, metavar="S",
                   help="seconds to reach --scheduler and find a worker, 0.1..600 (default 10)")
    p.add_argument("--json", action="store_true",
                   help="print one JSON object (counts, timing, paths) instead of the table")


def _cmd_sweep(args: argparse.Namespace) -> int:
    from ..errors import ConfigError
    from ..sweep.driver import check_scheduler_address, run_sweep
    from ..sweep.spec import load_spec
    from ..sweep.summary import format_summary

    if args.scheduler is not None:
        check_scheduler_address(args.scheduler)
        if args.workers is not None:
            raise ConfigError("--workers starts local workers and --scheduler uses an "
                              "existing cluster; give one of them")
    spec = load_spec(args.spec)
    out = args.out or f"sweep-{''.join(c if c.isalnum() or c in '._-' else '_' for c in spec.name)}"
    n_done = 0

    def count(row: dict[str, Any]) -> None:
        nonlocal n_done
        n_done += 1

    try:
        outcome = run_sweep(spec, out, scheduler=args.scheduler, n_workers=args.workers,
                            connect_timeout_s=args.connect_timeout, as_json=args.json,
                            on_result=count)
    except KeyboardInterrupt:
        sys.stderr.write(f"neuroloop: sweep interrupted after {n_done} new cell(s); they are "
                         f"kept in {out}: rerun the same command to continue\n")
        return 130
    if args.json:
        sys.stdout.write(json.dumps({"sweep": spec.name, "out": str(out),
                                     "code_version": spec.code_version,
                                     **outcome.as_dict()}) + "\n")
    else:
        sys.stdout.write(format_summary(spec, outcome) + "\n")
    return 0 if outcome.passed else 1


COMMANDS = {"sweep": _cmd_sweep}
