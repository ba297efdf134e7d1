"""Sweeps on a real Dask cluster (worker processes): results, resuming, failures, kills."""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from pathlib import Path
from typing import Any

import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest

from neuroloop.sweep.driver import run_sweep, split_done
from neuroloop.sweep.results import JOURNAL_FILE, Journal, comparable_rows
from neuroloop.sweep.runners import execute_cell
from neuroloop.sweep.spec import load_spec

SPEC = """
[sweep]
name = "mixed"
figures = ["accuracy", "cycles"]

[fixed]
scenario = "small.toml"

[grid]
seed = [1, 2]
"source.snr" = [0.5, 2.0]

[[cells]]
seed = 3
"decoder.kind" = "no-such-decoder"

[[cells]]
mode = "replay"
recording = "rec1"
"""


def _spec(d: Path, text: str, name: str) -> Path:
    p = d / name
    p.write_text(text)
    return p


def _address(cluster: Any) -> str:
    return str(cluster.scheduler.address)


def test_sweep_results_resume_and_serial_equality(sweep_dir: Path, recording: Path,
                                                  cluster: Any, tmp_path: Path) -> None:
    spec = load_spec(_spec(sweep_dir, SPEC, "mixed.toml"))
    out = tmp_path / "out"
    first = run_sweep(spec, out, scheduler=_address(cluster), as_json=True)
    assert first.ran == 6 and first.skipped == 0 and first.workers == 2
    assert first.statuses == {"ok": 5, "error": 1}
    assert not first.passed  # one cell raised
    rows = first.rows
    assert [r["cell"] for r in rows] == list(range(6))
    bad = rows[4]
    assert bad["status"] == "error" and "no-such-decoder" in bad["error"]
    assert "\n" not in bad["error"] and bad["accuracy"] is None
    rep = rows[5]
    assert rep["mode"] == "replay" and rep["status"] == "ok" and rep["identical"] is True
    assert rep["cycles_replayed"] == rep["cycles_recorded"] > 0
    for r in rows[:4]:
        assert r["status"] == "ok" and 0.0 <= r["accuracy"] <= 1.0 and r["cycles"] == 100
        assert r["code_version"] == spec.code_version and len(r["cell_id"]) == 64
    # the same rows in Parquet and CSV
    table = pq.read_table(first.parquet).to_pylist()
    assert [r["cell_id"] for r in table] == [r["cell_id"] for r in rows]
    assert [r["accuracy"] for r in table] == [r["accuracy"] for r in rows]
    csv = pacsv.read_csv(first.csv).to_pylist()
    assert [r["seed"] for r in csv] == [1, 1, 2, 2, 3, None]
    assert {f.name for f in first.figures} == {"accuracy.png", "cycles.png"}
    assert all(f.stat().st_size > 1000 for f in first.figures)
    assert first.cells_s > 0 and first.overhead_pct is not None

    # identical to running each cell in this process, one after another
    serial = []
    for c in spec.cells[:4]:
        res = execute_cell(c.task())
        serial.append({"mode": c.mode, **res["metrics"]})
    for a, b in zip(comparable_rows(serial), comparable_rows(rows[:4]), strict=True):
        assert a == {k: b[k] for k in a}

    # a rerun skips every done cell (the error too: it would raise again)
    again = run_sweep(spec, out, scheduler=_address(cluster), as_json=True)
    assert again.ran == 0 and again.skipped == 6
    assert comparable_rows(again.rows) == comparable_rows(rows)

    # an interrupted sweep (two finished cells never journaled) continues where it stopped
    journal = out / JOURNAL_FILE
    lines = journal.read_text().splitlines()
    kept = [ln for ln in lines if json.loads(ln)["cell"] not in (1, 2)]
    journal.write_text("\n".join(kept) + "\n" + lines[-1][: len(lines[-1]) // 2])  # torn line
    resumed = run_sweep(spec, out, scheduler=_address(cluster), as_json=True)
    assert resumed.ran == 2 and resumed.skipped == 4
    assert comparable_rows(resumed.rows) == comparable_rows(rows)


def test_timeout_is_recorded_and_the_sweep_goes_on(sweep_dir: Path, cluster: Any,
                                                   tmp_path: Path) -> None:
    spec = load_spec(_spec(sweep_dir, """
[sweep]
time_limit_s = 5
[fixed]
scenario = "small.toml"
[[cells]]
seed = 11
duration_s = 86000     # 860000 cycles: far beyond the limit
[[cells]]
seed = 12
duration_s = 2
""", "timeout.toml"))
    pids_before = set(cluster.run(os.getpid).values())
    out = run_sweep(spec, tmp_path / "out", scheduler=_address(cluster), as_json=True)
    slow, quick = out.rows
    assert slow["status"] == "timeout" and "time limit of 5 s" in slow["error"]
    assert 5 <= slow["cell_s"] < 15
    assert quick["status"] == "ok" and quick["cycles"] == 20
    # the worker whose thread still ran the cell was replaced by a fresh process
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        pids = set(cluster.run(os.getpid).values())
        if len(pids) == 2 and slow["worker_pid"] not in pids:
            break
        time.sleep(0.2)
    assert slow["worker_pid"] in pids_before and slow["worker_pid"] not in pids
    # a rerun would try the timed-out cell again (it is not done), and skip the other
    _, todo = split_done(spec.cells, Journal(tmp_path / "out").load())
    assert [c.index for c in todo] == [0]


def test_killed_worker_task_is_retried_elsewhere(sweep_dir: Path, cluster: Any,
                                                 tmp_path: Path) -> None:
    spec = load_spec(_spec(sweep_dir, """
[fixed]
scenario = "small.toml"
duration_s = 800           # 8000 cycles, about a second per cell on an idle machine
[grid]
seed = [21, 22]
""", "kill.toml"))
    killed: dict[str, Any] = {}

    def killer() -> None:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not killed:
            for addr, keys in cluster.processing().items():
                mine = [k for k in keys if str(k).startswith("sweep-cell-")]
                if mine:
                    time.sleep(0.3)  # inside the cell
                    pid = cluster.run(os.getpid, workers=[addr])[addr]
                    os.kill(pid, signal.SIGKILL)
                    killed.update(pid=pid, cell=int(str(mine[0]).split("-")[2]))
                    return
            time.sleep(0.05)

    t = threading.Thread(target=killer, daemon=True)
    t.start()
    out = run_sweep(spec, tmp_path / "out", scheduler=_address(cluster), as_json=True,
                    warm=False)
    t.join(5)
    assert killed, "no cell was seen running"
    assert out.statuses == {"ok": 2}
    row = out.rows[killed["cell"]]
    assert row["worker_pid"] != killed["pid"]  # finished by another worker process
    # and it computed what an undisturbed run computes
    ref = execute_cell(spec.cells[killed["cell"]].task())
    assert ref["status"] == "ok"
    assert {k: row[k] for k in ("accuracy", "cycles", "interlock_events.low_confidence")} == \
        {k: ref["metrics"].get(k, 0) for k in ("accuracy", "cycles",
                                                "interlock_events.low_confidence")}


def test_cli_sweep_on_a_scheduler_prints_the_table_and_exits_1_on_a_failed_cell(
        sweep_dir: Path, cluster: Any, tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    from neuroloop.cli import main

    p = _spec(sweep_dir, """
[fixed]
scenario = "small.toml"
duration_s = 2
[grid]
"decoder.kind" = ["lda", "no-such-decoder"]
""", "cli.toml")
    code = main(["sweep", str(p), "--scheduler", _address(cluster), "--out",
                 str(tmp_path / "o")])
    out = capsys.readouterr().out
    assert code == 1
    assert "decoder.kind" in out and "no-such-decoder" in out
    assert "status              1 error, 1 ok" in out
    assert "scheduling overhead" in out and str(tmp_path / "o" / "results.parquet") in out
    code = main(["sweep", str(p), "--scheduler", _address(cluster), "--out",
                 str(tmp_path / "o"), "--json"])
    summary = json.loads(capsys.readouterr().out)
    assert code == 1 and summary["ran"] == 0 and summary["skipped"] == 2
    assert summary["statuses"] == {"error": 1, "ok": 1} and summary["passed"] is False


def test_evaluate_and_compare_cells_give_the_evaluation_api_rows(
        sweep_dir: Path, recording: Path, cluster: Any, tmp_path: Path) -> None:
    from neuroloop.evaluation import compare, evaluate
    from neuroloop.sweep.runners import build_scenario

    spec = load_spec(_spec(sweep_dir, """
[sweep]
figures = ["accuracy"]
[fixed]
scenario = "small.toml"
train = "synthetic:5"
duration_s = 20
n_permutations = 20
[[cells]]
mode = "evaluate"
decoder = "lda:shrinkage=0.3"
test = "synthetic:6"
[[cells]]
mode = "compare"
decoder = "lda"
recording = "rec1"
""", "evcmp.toml"))
    out = run_sweep(spec, tmp_path / "out", scheduler=_address(cluster), as_json=True)
    assert out.statuses == {"ok": 2}
    ev, cmp_ = out.rows
    scenario = build_scenario(str(sweep_dir / "small.toml"), {})
    ref_ev = evaluate(scenario, ["lda:shrinkage=0.3"], train=["synthetic:5"],
                      test=["synthetic:6"], duration_s=20, n_permutations=20, seed=0)[0]
    ref_cmp = compare(["lda"], [str(recording)], train="synthetic:5",
                      scenario=scenario, duration_s=20, n_permutations=20, seed=0)[0]
    for row, ref in ((ev, ref_ev), (cmp_, ref_cmp)):
        for k in ("accuracy", "kappa", "balanced_accuracy", "p_value", "hops"):
            assert row[k] == ref[k], k
        assert row["decoder_label"] == ref["decoder"]
        assert json.loads(row["confusion"]) == ref["confusion"]
    assert cmp_["stim_on_rest_fraction"] == ref_cmp["stim_on_rest_fraction"]
    assert ev["evaluation"] == "train synthetic:5" and ev["decoder"] == "lda:shrinkage=0.3"
    assert [f.name for f in out.figures] == ["accuracy.png"]
