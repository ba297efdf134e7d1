"""Result rows without a cluster: which cells a rerun skips, the journal, Parquet/CSV types."""

from __future__ import annotations

import math
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from neuroloop.errors import ConfigError
from neuroloop.sweep.driver import split_done
from neuroloop.sweep.results import Journal, comparable_rows, write_tables
from neuroloop.sweep.spec import load_spec


def test_rerun_skips_ok_and_error_cells_and_retries_the_rest(sweep_dir: Path,
                                                             tmp_path: Path) -> None:
    p = sweep_dir / "split.toml"
    p.write_text("[fixed]\nscenario = \"small.toml\"\n[grid]\nseed = [1, 2, 3, 4, 5]\n")
    cells = load_spec(p).cells
    j = Journal(tmp_path / "o")
    for c, status in zip(cells, ["ok", "error", "timeout", "killed"], strict=False):
        j.append({"cell": c.index, "cell_id": c.cell_id, "status": status,
                  "accuracy": math.nan})
    j.append({"cell": 9, "cell_id": "f" * 64, "status": "ok"})  # a cell of another spec
    with open(j.path, "a") as fh:
        fh.write('{"cell": 4, "cell_id": "' + cells[4].cell_id + '", "sta')  # torn by a crash
    rows, todo = split_done(cells, j.load())
    assert sorted(r["cell"] for r in rows.values()) == [0, 1]
    assert [c.index for c in todo] == [2, 3, 4]
    assert rows[cells[0].cell_id]["accuracy"] is None  # NaN is written as null (strict JSON)


def test_tables_keep_types_and_fill_event_counts(tmp_path: Path) -> None:
    rows = [
        {"cell": 0, "mode": "run", "seed": 1, "source.snr": 1, "status": "ok", "error": "",
         "accuracy": 0.5, "identical": None, "interlock_events.arm": 1, "note": {"a": 1}},
        {"cell": 1, "mode": "run", "seed": 2, "source.snr": 0.5, "status": "ok", "error": "",
         "accuracy": 0.75, "interlock_events.slew_up": 3},
        {"cell": 2, "mode": "replay", "seed": None, "status": "error", "error": "boom",
         "identical": True},
    ]
    parquet, csv, full = write_tables(tmp_path, rows, ["seed", "source.snr"])
    t = pq.read_table(parquet)
    types = {f.name: str(f.type) for f in t.schema}
    assert types["seed"] == "int64" and types["source.snr"] == "double"
    assert types["accuracy"] == "double" and types["identical"] == "bool"
    assert types["note"] == "string"  # anything else is JSON text
    got = t.to_pylist()
    assert [r["interlock_events.arm"] for r in got] == [1, 0, None]  # 0 for a finished cell
    assert [r["interlock_events.slew_up"] for r in got] == [0, 3, None]
    assert list(t.column_names[:5]) == ["cell", "mode", "seed", "source.snr", "status"]
    assert csv.read_text().count("\n") == 4
    assert comparable_rows(full)[0].keys() >= {"accuracy", "seed"}


def test_out_that_is_a_file_is_one_line(tmp_path: Path) -> None:
    f = tmp_path / "file"
    f.write_text("x")
    with pytest.raises(ConfigError, match="is not a directory"):
        Journal(f)
