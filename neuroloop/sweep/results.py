"""Result rows of a sweep: the journal that makes it resumable, Parquet and CSV files.

Every finished cell is appended to ``OUT/cells.jsonl`` at once (flushed and fsynced), keyed by
its content hash, so a sweep that is interrupted (Ctrl-C, a lost scheduler, a power cut) loses
at most the cells that were running. A rerun reads the journal, skips cells already done, and
writes ``results.parquet`` and ``results.csv`` with one row per cell of the spec, in the
spec's order.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from ..errors import ConfigError
from .cells import Cell
from .modes import MODES

__all__ = ["DONE_STATUSES", "Journal", "TIMING_COLUMNS", "cell_row", "comparable_rows",
           "result_columns", "write_tables"]

JOURNAL_FILE = "cells.jsonl"
PARQUET_FILE = "results.parquet"
CSV_FILE = "results.csv"

#: A cell with one of these statuses is done: a rerun skips it. ``timeout`` and ``killed``
#: (its worker died more often than Dask allows) are tried again.
DONE_STATUSES = ("ok", "error")
#: Columns that say where and how fast a cell ran, not what it computed.
TIMING_COLUMNS = ("cell_s", "cell_cpu_s", "worker", "worker_pid", "worker_rss_mb",
                  "started_unix_s", "finished_unix_s")
_LEAD = ("cell", "mode")
_TAIL = (*TIMING_COLUMNS, "code_version", "inputs_sha256", "cell_id")


def _clean(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None if math.isnan(value) else ("inf" if value > 0 else "-inf")
    return value


class Journal:
    """The append-only record of finished cells in ``out_dir``.

    Parameters
    ----------
    out_dir : path-like
        Created if missing.
    """

    def __init__(self, out_dir: str | os.PathLike[str]) -> None:
        self.dir = Path(out_dir)
        try:
            self.dir.mkdir(parents=True, exist_ok=True)
        except (FileExistsError, NotADirectoryError):
            raise ConfigError(f"--out {out_dir} is not a directory; choose a directory for "
                              "the results") from None
        except OSError as exc:
            raise ConfigError(f"cannot create --out {out_dir}: {exc.strerror}; choose a "
                              "writable directory") from None
        self.path = self.dir / JOURNAL_FILE
        if not os.access(self.dir, os.W_OK | os.X_OK):
            raise ConfigError(f"--out {out_dir} is not writable; choose a writable directory")

    def load(self) -> dict[str, dict[str, Any]]:
        """Rows by cell id (the last one written wins; a torn last line is ignored)."""
        rows: dict[str, dict[str, Any]] = {}
        if not self.path.is_file():
            return rows
        with open(self.path, encoding="utf-8", errors="replace") as fh:
            for line in fh:
                try:
                    row = json.loads(line)
                except json.JSONDecodeError:
                    continue  # a line cut short by a crash
                if isinstance(row, dict) and isinstance(row.get("cell_id"), str):
                    rows[row["cell_id"]] = row
        return rows

    def append(self, row: Mapping[str, Any]) -> None:
        """Write ``row`` durably (one JSON line, flushed and fsynced)."""
        line = json.dumps({k: _clean(v) for k, v in row.items()}, allow_nan=False)
        with open(self.path, "a", encoding="utf-8") as fh:
            fh.write(line + "\n")
            fh.flush()
            os.fsync(fh.fileno())


def cell_row(cell: Cell, result: Mapping[str, Any], code_version: str) -> dict[str, Any]:
    """The row of ``cell`` from the worker's ``result`` (:func:`.runners.execute_cell`, or
    the driver's record of a task Dask gave up on)."""
    row: dict[str, Any] = {"cell": cell.index, "mode": cell.mode, **cell.params,
                           "status": result["status"], "error": result.get("error", "")}
    for k, v in result.get("metrics", {}).items():
        row.setdefault(k, v)
    row.update({k: result.get(k) for k in TIMING_COLUMNS})
    row.update({"code_version": code_version, "inputs_sha256": cell.inputs_sha256,
                "cell_id": cell.cell_id})
    return row


def result_columns(rows: Sequence[Mapping[str, Any]], param_columns: Sequence[str]) -> list[str]:
    """Column order: cell, mode, parameters, status, error, metrics (sorted), timing, ids."""
    head = [*_LEAD, *param_columns, "status", "error"]
    seen = set(head) | set(_TAIL)
    metrics = sorted({k for r in rows for k in r if k not in seen})
    return [*head, *metrics, *_TAIL]


def _fill(rows: Sequence[dict[str, Any]], columns: Sequence[str]) -> list[dict[str, Any]]:
    """Every row has every column; an interlock event a finished cell never saw counts 0."""
    out = []
    for r in rows:
        full = {c: r.get(c) for c in columns}
        if r.get("status") == "ok":
            for c in columns:
                if c.startswith("interlock_events.") and full[c] is None:
                    full[c] = 0
        out.append(full)
    return out


def _arrow_type(values: Iterable[Any]) -> Any:
    import pyarrow as pa

    present = [v for v in values if v is not None]
    if not present:
        return pa.string()
    if all(isinstance(v, bool) for v in present):
        return pa.bool_()
    if all(isinstance(v, int) and not isinstance(v, bool) for v in present):
        return pa.int64()
    if all(isinstance(v, int | float) and not isinstance(v, bool) for v in present):
        return pa.float64()
    return pa.string()


def _arrow_table(rows: Sequence[Mapping[str, Any]], columns: Sequence[str]) -> Any:
    import pyarrow as pa

    arrays, fields = [], []
    for c in columns:
        values = [r.get(c) for r in rows]
        t = _arrow_type(values)
        if t == pa.string():
            values = [None if v is None else v if isinstance(v, str)
                      else json.dumps(v, sort_keys=True) for v in values]
        elif t == pa.float64():
            values = [None if v is None else float(v) for v in values]
        arrays.append(pa.array(values, type=t))
        fields.append(pa.field(c, t))
    return pa.Table.from_arrays(arrays, schema=pa.schema(fields))


def write_tables(out_dir: str | Path, rows: Sequence[dict[str, Any]],
                 param_columns: Sequence[str]) -> tuple[Path, Path, list[dict[str, Any]]]:
    """Write ``results.parquet`` and ``results.csv``; returns their paths and the filled rows."""
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq

    columns = result_columns(rows, param_columns)
    full = _fill(rows, columns)
    table = _arrow_table(full, columns)
    out = Path(out_dir)
    parquet, csv = out / PARQUET_FILE, out / CSV_FILE
    for path, write in ((parquet, lambda p: pq.write_table(table, p)),
                        (csv, lambda p: pacsv.write_csv(table, p))):
        tmp = path.with_suffix(path.suffix + ".tmp")
        write(tmp)
        os.replace(tmp, path)  # a reader never sees half a file
    return parquet, csv, full


def comparable_rows(rows: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Rows without the columns that depend on where and how fast they ran (timing, worker,
    and each mode's timing metrics): what must be identical wherever a sweep runs."""
    out = []
    for r in rows:
        mode = MODES.get(str(r.get("mode")))
        out.append({k: v for k, v in r.items()
                    if k not in TIMING_COLUMNS and not (mode is not None and mode.is_timing(k))})
    return out
