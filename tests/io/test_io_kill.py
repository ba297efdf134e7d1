"""A recorder killed with SIGKILL mid-run leaves a recording that opens: every row up to the
last flush is intact, a partial last row is ignored."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from neuroloop.io import ReplaySource, open_recording
from neuroloop.io.format import CYCLES_FILE, SAMPLES_FILE
from neuroloop.records import cycle_dtype

N_CH = 8
HOP = 20

WRITER = f"""
import sys, time
import numpy as np
from neuroloop.io.recorder import SessionRecorder
from neuroloop.records import cycle_dtype

N_CH, HOP = {N_CH}, {HOP}
rec = SessionRecorder(sys.argv[1], flush_interval_s=0.05)
rec.on_start({{"channel_names": [f"c{{i}}" for i in range(N_CH)],
              "channel_types": ["eeg"] * N_CH, "sampling_rate_hz": 1000.0,
              "hop_samples": HOP, "n_features": 3, "n_states": 2, "n_contacts": 16,
              "intention_names": ["rest", "move"]}})
row = np.zeros(1, dtype=cycle_dtype(3, 2, 16))
base = np.arange(HOP * N_CH, dtype=np.float64).reshape(HOP, N_CH)
k = 0
while True:
    rec.on_samples(base + 1000.0 * k, HOP * k)
    row["cycle"] = k
    row["first_sample"] = HOP * k
    row["now_ns"] = 1_000_000 * k
    row["true_state"] = (k // 7) % 2
    row["features"] = (k, -k, 0.5 * k)
    if k % 10 == 3:  # events come before their cycle's record, as in the loop
        rec.on_events([{{"reason": "test", "detail": "x" * 50}}])
    rec.on_cycle(row)
    if k == 150:
        print("ready", flush=True)
    k += 1
    time.sleep(0.0005)
"""


def _expected_samples(n_rows: int) -> np.ndarray:
    k = np.arange(n_rows) // HOP
    within = np.arange(n_rows) % HOP
    return (within[:, None] * N_CH + np.arange(N_CH)[None, :] + 1000.0 * k[:, None])


@pytest.fixture(scope="module")
def killed_recording(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("kill") / "session"
    script = tmp_path_factory.getbasetemp() / "writer.py"
    script.write_text(WRITER)
    proc = subprocess.Popen([sys.executable, str(script), str(path)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline()  # type: ignore[union-attr]
        assert line.strip() == "ready", proc.stderr.read()  # type: ignore[union-attr]
        # let at least one flush land after "ready", then kill mid-run
        deadline = time.monotonic() + 30
        row = cycle_dtype(3, 2, 16).itemsize
        while time.monotonic() < deadline:
            if (path / CYCLES_FILE).exists() and os.path.getsize(path / CYCLES_FILE) > 151 * row:
                break
            time.sleep(0.01)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == -signal.SIGKILL
    return path


def test_killed_recording_opens_with_intact_rows(killed_recording):
    rec = open_recording(killed_recording)
    assert rec.cycle_dtype == cycle_dtype(3, 2, 16)
    assert not rec.closed_cleanly
    assert rec.n_cycles > 150
    cycles = rec.cycles
    k = np.arange(rec.n_cycles)
    assert np.array_equal(cycles["cycle"], k)
    assert np.array_equal(cycles["first_sample"], HOP * k)
    assert np.array_equal(cycles["features"][:, 1], -k.astype(float))
    # every recorded cycle's samples are on disk (samples are written before cycles)
    assert rec.n_samples >= HOP * rec.n_cycles
    assert rec.n_samples % HOP == 0
    assert np.array_equal(rec.samples, _expected_samples(rec.n_samples))
    events = list(rec.events())
    assert events and all(e["reason"] == "test" for e in events)
    assert [e["cycle"] for e in events] == list(range(3, 3 + 10 * len(events), 10))


def test_killed_recording_with_partial_rows(killed_recording, tmp_path):
    """Simulate the kill landing inside a write: partial rows are ignored."""
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(killed_recording, copy)
    before = open_recording(copy)
    n_cycles, n_samples = before.n_cycles, before.n_samples
    with open(copy / CYCLES_FILE, "ab") as fh:
        fh.write(b"\x01" * 50)
    with open(copy / SAMPLES_FILE, "ab") as fh:
        fh.write(b"\x02" * (8 * N_CH - 1))
    rec = open_recording(copy)
    assert rec.n_cycles == n_cycles and rec.n_samples == n_samples
    assert np.array_equal(rec.samples, _expected_samples(n_samples))


def test_killed_recording_replays_to_its_end(killed_recording):
    with ReplaySource(killed_recording) as src:
        n = 0
        while (block := src.read(HOP)) is not None:
            assert block.first_index == n
            assert np.array_equal(block.data, _expected_samples(n + HOP)[n:])
            n += block.n_samples
        assert src.exhausted
    assert n == open_recording(killed_recording).n_samples
