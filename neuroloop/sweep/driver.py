"""The Dask driver: a local cluster or an existing scheduler, one task per cell.

Without a scheduler address it starts a :class:`distributed.LocalCluster` of worker
*processes* (one per core, one thread each, so cells never share an interpreter lock) and
closes it at the end; with one, it connects to the running cluster and leaves it running.

Fault tolerance is split between Dask and the sweep:

- a cell that raises: the runner wrapper records its one-line error (status ``error``);
- a cell past its time limit: recorded as ``timeout``, and its worker is restarted (a Python
  thread cannot be killed, so the process is replaced);
- a worker that dies mid-task (killed, out of memory): the scheduler reruns the task on
  another worker (up to ``distributed.scheduler.allowed-failures`` times, then status
  ``killed``);
- the driver interrupted: every finished cell is already in the journal; a rerun continues.
"""

from __future__ import annotations

import logging
import os
import re
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .. import _checks as B
from ..errors import ConfigError
from ..progress import Progress
from .cells import Cell
from .results import DONE_STATUSES, Journal, cell_row, write_tables
from .runners import execute_cell, missing_paths, one_line, warm_worker, worker_code_version
from .spec import SweepSpec

__all__ = ["SweepOutcome", "WORKERS", "check_scheduler_address", "open_client", "run_sweep",
           "split_done"]

#: ``--workers``: local worker processes.
WORKERS = B.Range(1, 512, integer=True)
#: Seconds to reach a scheduler and find a worker on it.
CONNECT_TIMEOUT_S = 10.0
_ADDRESS = re.compile(r"^(tcp|tls|ws|wss)://(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9_.-]+):(\d{1,5})$")

log = logging.getLogger(__name__)


@dataclass
class SweepOutcome:
    """What a sweep did.

    Attributes
    ----------
    rows : list of dict
        One per cell of the spec, in the spec's order (cells done in an earlier run
        included), every column filled.
    ran, skipped : int
        Cells run now; cells found done in the journal.
    statuses : dict
        Count of rows by status.
    wall_s : float
        From the first task submitted to the last result (cluster start-up excluded).
    setup_s : float
        Connecting or starting the cluster and checking the workers.
    workers : int
    cells_s : float
        The cells' own time (sum of their ``cell_s``) of the cells run now.
    overhead_s : float
        Time workers spent on anything but a cell between the first submission and their
        last result: waiting for the scheduler, (de)serialising, the wrapper's own work.
    scheduler : str
        ``"local"`` or the scheduler address.
    parquet, csv : Path
    figures : list of Path
    """

    rows: list[dict[str, Any]]
    ran: int
    skipped: int
    statuses: dict[str, int]
    wall_s: float
    setup_s: float
    workers: int
    cells_s: float
    overhead_s: float
    scheduler: str
    parquet: Path
    csv: Path
    figures: list[Path] = field(default_factory=list)

    @property
    def overhead_pct(self) -> float | None:
        """Scheduling overhead as a percentage of the cells' own time."""
        return round(100.0 * self.overhead_s / self.cells_s, 2) if self.cells_s > 0 else None

    @property
    def passed(self) -> bool:
        """Every cell ok, and every replay identical."""
        return all(r.get("status") == "ok" and r.get("identical") is not False
                   for r in self.rows)

    def as_dict(self) -> dict[str, Any]:
        return {"cells": len(self.rows), "ran": self.ran, "skipped": self.skipped,
                "statuses": self.statuses, "wall_s": round(self.wall_s, 3),
                "setup_s": round(self.setup_s, 3), "workers": self.workers,
                "cells_s": round(self.cells_s, 3), "overhead_s": round(self.overhead_s, 3),
                "overhead_pct": self.overhead_pct, "scheduler": self.scheduler,
                "parquet": str(self.parquet), "csv": str(self.csv),
                "figures": [str(f) for f in self.figures], "passed": self.passed}


def check_scheduler_address(address: str) -> str:
    """``tcp://HOST:PORT`` (or tls/ws/wss) with a port in 1..65535, else a ConfigError."""
    m = _ADDRESS.match(address.strip()) if isinstance(address, str) else None
    if m is None or not 1 <= int(m.group(3)) <= 65535:
        raise ConfigError(f"--scheduler {B.show_value(address)} is not a scheduler address; "
                          "use tcp://HOST:PORT as `dask scheduler` prints it, e.g. "
                          "tcp://10.0.0.5:8786")
    return address.strip()


def default_workers() -> int:
    """One worker per core this process may use."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not Linux
        return max(1, os.cpu_count() or 1)


@contextmanager
def open_client(scheduler: str | None = None, n_workers: int | None = None, *,
                connect_timeout_s: float = CONNECT_TIMEOUT_S) -> Iterator[Any]:
    """A Dask client on an existing scheduler, or on a local cluster closed afterwards.

    Raises
    ------
    ConfigError
        The scheduler cannot be reached, or has no worker, within ``connect_timeout_s``.
    """
    from distributed import Client, LocalCluster

    cluster = None
    if scheduler:
        address = check_scheduler_address(scheduler)
        try:
            client = Client(address, timeout=connect_timeout_s, set_as_default=False)
        except (OSError, TimeoutError) as exc:
            raise ConfigError(f"cannot reach the Dask scheduler at {address} within "
                              f"{connect_timeout_s:g} s ({type(exc).__name__}); start one "
                              "with `dask scheduler` and check the address, or drop "
                              "--scheduler to run on this machine") from None
        try:
            client.wait_for_workers(1, timeout=connect_timeout_s)
        except (OSError, TimeoutError):
            client.close()
            raise ConfigError(f"the Dask scheduler at {address} has no worker (waited "
                              f"{connect_timeout_s:g} s); start workers with `dask worker "
                              f"{address}`") from None
    else:
        n = n_workers or default_workers()
        cluster = LocalCluster(n_workers=n, threads_per_worker=1, processes=True,
                               dashboard_address=None, silence_logs=logging.ERROR)
        client = Client(cluster, set_as_default=False)
    try:
        yield client
    finally:
        client.close()
        if cluster is not None:
            cluster.close()


def _check_workers(client: Any, spec: SweepSpec, cells: list[Cell]) -> int:
    """Every worker runs the same code and sees every input; returns the worker count."""
    versions: Mapping[str, str] = client.run(worker_code_version)
    wrong = {w: v for w, v in versions.items() if v != spec.code_version}
    if wrong:
        w, v = next(iter(wrong.items()))
        raise ConfigError(f"worker {w} runs neuroloop {v}, this machine {spec.code_version} "
                          f"({len(wrong)} of {len(versions)} workers differ); install the same "
                          "code on every worker, or results would depend on where they ran")
    paths = sorted({str(v) for c in cells for k, v in c.resolved.items() if k in c.inputs})
    paths = [p.split("://", 1)[1].split("?", 1)[0] if "://" in p else p for p in paths]
    if paths:
        missing: Mapping[str, list[str]] = client.run(missing_paths, paths)
        bad = {w: m for w, m in missing.items() if m}
        if bad:
            w, m = next(iter(bad.items()))
            raise ConfigError(f"worker {w} cannot see {len(m)} input(s) ({', '.join(m[:3])}"
                              f"{', ...' if len(m) > 3 else ''}); put the recordings on a "
                              "filesystem every worker mounts at the same path (docs/sweep.md)")
    return len(versions)


def _failed_result(status: str, error: str) -> dict[str, Any]:
    now = time.time()
    return {"status": status, "error": error, "metrics": {}, "cell_s": None, "cell_cpu_s": None,
            "worker": None, "worker_pid": None, "worker_rss_mb": None,
            "started_unix_s": None, "finished_unix_s": now}


def _overhead_s(results: list[dict[str, Any]], submitted: float) -> float:
    """Per worker: the gap before its first cell started, the gaps between its cells, and
    each task's own time beyond its cell's (all on the worker's clock but the first gap)."""
    by_pid: dict[tuple[Any, Any], list[dict[str, Any]]] = {}
    for r in results:
        if r.get("started_unix_s") is not None and r.get("cell_s") is not None:
            by_pid.setdefault((r.get("worker"), r.get("worker_pid")), []).append(r)
    total = 0.0
    for rs in by_pid.values():
        rs.sort(key=lambda r: r["started_unix_s"])
        prev_end = submitted
        for r in rs:
            total += max(0.0, r["started_unix_s"] - prev_end)
            total += max(0.0, r["finished_unix_s"] - r["started_unix_s"] - r["cell_s"])
            prev_end = r["finished_unix_s"]
    return total


def split_done(cells: list[Cell], journal: Mapping[str, dict[str, Any]]
               ) -> tuple[dict[str, dict[str, Any]], list[Cell]]:
    """``(rows of the cells already done, by cell id; the cells still to run)``: a cell is
    done when the journal has a row for its content hash with a status in
    :data:`~neuroloop.sweep.results.DONE_STATUSES`."""
    rows = {c.cell_id: journal[c.cell_id] for c in cells
            if c.cell_id in journal and journal[c.cell_id].get("status") in DONE_STATUSES}
    return rows, [c for c in cells if c.cell_id not in rows]


def run_sweep(spec: SweepSpec, out_dir: str | Path, *, scheduler: str | None = None,
              n_workers: int | None = None, connect_timeout_s: float = CONNECT_TIMEOUT_S,
              as_json: bool = False, warm: bool = True,
              on_result: Callable[[dict[str, Any]], None] | None = None) -> SweepOutcome:
    """Run the cells of ``spec`` not yet done in ``out_dir`` and write the results.

    Parameters
    ----------
    spec : SweepSpec
    out_dir : path-like
        Holds the journal (``cells.jsonl``), ``results.parquet``, ``results.csv`` and
        ``figures/``.
    scheduler : str or None
        ``tcp://HOST:PORT`` of a running Dask scheduler; None starts a local cluster.
    n_workers : int or None
        Local worker processes (default: one per core); ignored with ``scheduler``.
    connect_timeout_s : float
    as_json : bool
        Machine-read output: no progress bar.
    warm : bool
        Warm every worker up first (:func:`.runners.warm_worker`), so that a cell's time is
        its own and not its process's start-up; counted in ``setup_s``.
    on_result : callable, optional
        Called with each new row as it is journaled.
    """
    from distributed import as_completed
    from distributed.client import FutureCancelledError

    try:
        from distributed.scheduler import KilledWorker
    except ImportError:  # pragma: no cover - older distributed
        from distributed import KilledWorker

    journal = Journal(out_dir)
    rows, todo = split_done(spec.cells, journal.load())
    results: list[dict[str, Any]] = []
    workers = 0
    t_setup = time.perf_counter()
    submitted = time.time()
    wall_s = setup_s = 0.0
    if todo:
        with open_client(scheduler, n_workers, connect_timeout_s=connect_timeout_s) as client:
            workers = _check_workers(client, spec, todo)
            if warm:  # as tasks, in each worker's thread, not blocking its event loop
                addresses = list(client.scheduler_info(n_workers=-1)["workers"])
                modes = tuple(sorted({c.mode for c in todo}))
                client.gather([client.submit(warm_worker, modes,
                                             key=f"sweep-warm-{uuid.uuid4().hex}",
                                             workers=[a], allow_other_workers=False,
                                             pure=False) for a in addresses])
            setup_s = time.perf_counter() - t_setup
            token = uuid.uuid4().hex[:8]
            by_key: dict[str, Cell] = {}
            futures = []
            t0 = time.perf_counter()
            submitted = time.time()
            for c in todo:
                key = f"sweep-cell-{c.index}-{c.cell_id[:12]}-{token}"
                by_key[key] = c
                futures.append(client.submit(execute_cell, c.task(), key=key, pure=False,
                                             priority=-c.index))
            with Progress(len(todo), f"sweep {spec.name}", unit="cell",
                          as_json=as_json) as bar:
                failed = 0
                for fut in as_completed(futures, loop=client.loop):
                    cell = by_key[fut.key]
                    try:
                        result = fut.result()
                    except KilledWorker as exc:
                        result = _failed_result("killed", f"its worker died while running it, "
                                                f"every time Dask retried it ({one_line(exc)})")
                    except FutureCancelledError as exc:
                        result = _failed_result("killed", one_line(exc))
                    except Exception as exc:  # noqa: BLE001 - a task that could not run
                        result = _failed_result("error", one_line(exc))
                    results.append(result)
                    row = cell_row(cell, result, spec.code_version)
                    journal.append(row)
                    rows[cell.cell_id] = row
                    if on_result is not None:
                        on_result(row)
                    if result["status"] == "timeout" and result.get("worker"):
                        _restart(client, str(result["worker"]))
                    failed += result["status"] != "ok"
                    bar.update(1)
                    if failed:
                        bar.set_postfix(f"{failed} not ok")
                    fut.release()
            wall_s = time.perf_counter() - t0
    ordered = [rows[c.cell_id] for c in spec.cells]
    parquet, csv, full = write_tables(out_dir, ordered, spec.columns)
    statuses: dict[str, int] = {}
    for r in full:
        statuses[str(r["status"])] = statuses.get(str(r["status"]), 0) + 1
    cells_s = sum(float(r["cell_s"]) for r in results if r.get("cell_s") is not None)
    outcome = SweepOutcome(rows=full, ran=len(todo), skipped=len(spec.cells) - len(todo),
                           statuses=statuses, wall_s=wall_s, setup_s=setup_s, workers=workers,
                           cells_s=cells_s, overhead_s=_overhead_s(results, submitted),
                           scheduler=scheduler or "local", parquet=parquet, csv=csv)
    from .summary import write_figures

    outcome.figures = write_figures(spec, full, Path(out_dir))
    return outcome


def _restart(client: Any, worker: str) -> None:
    """Replace the process of ``worker`` (its timed-out cell still runs in a thread)."""
    try:
        client.restart_workers([worker], raise_for_error=False)
    except Exception as exc:  # noqa: BLE001 - the sweep goes on; the worker may be gone
        log.warning("could not restart worker %s after a timed-out cell: %s", worker, exc)
