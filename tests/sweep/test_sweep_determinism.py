"""The same spec gives the same rows (timing columns aside) with 1 local worker, with 2, and
on a scheduler and workers started as separate processes with the `dask` command line."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from neuroloop.sweep.results import comparable_rows

BIN = Path(sys.executable).parent
SPEC = """
[sweep]
name = "determinism"
[fixed]
scenario = "small.toml"
[grid]
seed = [1, 2, 3]
"source.snr" = [0.5, 2.0]
[[cells]]
mode = "replay"
recording = "rec1"
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_port(port: int, proc: subprocess.Popen[bytes], timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        assert proc.poll() is None, "dask scheduler exited"
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    raise AssertionError(f"dask scheduler did not listen on {port}")


@pytest.fixture(scope="module")
def external_scheduler(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """`dask scheduler` and `dask worker` (2 processes, 1 thread each) on 127.0.0.1."""
    logs = tmp_path_factory.mktemp("dask-logs")
    port = _free_port()
    address = f"tcp://127.0.0.1:{port}"
    with open(logs / "scheduler.log", "wb") as slog, open(logs / "worker.log", "wb") as wlog:
        scheduler = subprocess.Popen([str(BIN / "dask"), "scheduler", "--host", "127.0.0.1",
                                      "--port", str(port), "--no-dashboard"],
                                     stdout=slog, stderr=subprocess.STDOUT)
        workers = None
        try:
            _wait_port(port, scheduler)
            workers = subprocess.Popen([str(BIN / "dask"), "worker", address, "--nworkers",
                                        "2", "--nthreads", "1", "--host", "127.0.0.1",
                                        "--no-dashboard"],
                                       stdout=wlog, stderr=subprocess.STDOUT)
            yield address
        finally:
            for proc in (workers, scheduler):
                if proc is not None:
                    proc.terminate()
                    try:
                        proc.wait(20)
                    except subprocess.TimeoutExpired:
                        proc.kill()
                        proc.wait()


def _sweep(spec: Path, out: Path, *args: str) -> dict:
    proc = subprocess.run([str(BIN / "neuroloop"), "sweep", str(spec), "--out", str(out),
                           "--json", *args], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


@pytest.mark.slow
def test_same_rows_on_one_two_and_external_workers(sweep_dir: Path, recording: Path,
                                                   external_scheduler: str,
                                                   tmp_path: Path) -> None:
    spec = sweep_dir / "determinism.toml"
    spec.write_text(SPEC)
    runs = {
        "1 local worker": _sweep(spec, tmp_path / "one", "--workers", "1"),
        "2 local workers": _sweep(spec, tmp_path / "two", "--workers", "2"),
        "external scheduler": _sweep(spec, tmp_path / "ext", "--scheduler", external_scheduler,
                                     "--connect-timeout", "60"),
    }
    assert {k: (r["ran"], r["workers"], r["passed"]) for k, r in runs.items()} == {
        "1 local worker": (7, 1, True), "2 local workers": (7, 2, True),
        "external scheduler": (7, 2, True)}
    tables = {k: pq.read_table(r["parquet"]).to_pylist() for k, r in runs.items()}
    reference = comparable_rows(tables["1 local worker"])
    assert len(reference) == 7 and all("accuracy" in r for r in reference)
    for name, rows in tables.items():
        assert comparable_rows(rows) == reference, name
    # and they did run on different processes
    pids = {k: {r["worker_pid"] for r in rows} for k, rows in tables.items()}
    assert len(pids["1 local worker"]) == 1 and len(pids["2 local workers"]) == 2
    assert not pids["external scheduler"] & (pids["1 local worker"] | pids["2 local workers"])


@pytest.mark.slow
def test_ctrl_c_then_rerun_continues_where_it_stopped(sweep_dir: Path, tmp_path: Path) -> None:
    import signal

    spec = sweep_dir / "interrupt.toml"
    spec.write_text("[fixed]\nscenario = \"small.toml\"\nduration_s = 300\n"
                    "[grid]\nseed = [1, 2, 3, 4, 5, 6, 7, 8]\n")
    out = tmp_path / "out"
    journal = out / "cells.jsonl"
    proc = subprocess.Popen([str(BIN / "neuroloop"), "sweep", str(spec), "--workers", "1",
                             "--out", str(out), "--json"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and proc.poll() is None:
        if journal.is_file() and journal.read_text().count("\n") >= 2:
            break
        time.sleep(0.1)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert "interrupted" in err and "rerun the same command to continue" in err
    done = journal.read_text().count("\n")
    assert 2 <= done < 8
    again = _sweep(spec, out, "--workers", "2")
    assert (again["ran"], again["skipped"]) == (8 - done, done)
    assert again["statuses"] == {"ok": 8}
