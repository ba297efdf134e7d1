"""SessionRecorder: round trip, determinism, crash visibility, errors, no allocation."""

from __future__ import annotations

import json
import os
import time
import tracemalloc
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from io_fakes import base_meta, write_session

from neuroloop.errors import RecordingError
from neuroloop.io import bench_recorder, open_recording
from neuroloop.io.format import (
    CYCLES_FILE,
    EVENTS_FILE,
    FORMAT_VERSION,
    INDEX_FILE,
    META_FILE,
    SAMPLES_FILE,
    normalise_event,
)
from neuroloop.io.recorder import SessionRecorder
from neuroloop.records import cycle_dtype


def test_round_trip_identical_arrays(make_session):
    s = make_session(n_cycles=60, gaps={10: 5, 30: 17}, split_blocks=True)
    rec = open_recording(s.path)
    assert rec.closed_cleanly
    assert rec.samples.shape == s.samples.shape
    assert rec.samples.tobytes() == s.samples.tobytes()
    assert [tuple(int(v) for v in row[:2]) for row in rec.blocks] == s.blocks
    assert rec.cycles.dtype == s.cycles.dtype
    assert rec.cycles.tobytes() == s.cycles.tobytes()
    events = list(rec.events())
    assert len(events) == 2 * len(s.events)
    first = events[0]
    assert first["kind"] == "interlock" and first["reason"] == "slew_up"
    assert first["cycle"] == 3 and first["state"] == "STIMULATING"
    note = events[1]
    assert note == {"cycle": 3, "time_ns": int(s.cycles[2]["now_ns"]), "kind": "annotation",
                    "text": "note 3"}


def test_meta_contents(make_session, tmp_path):
    decoder = tmp_path / "dec.npz"
    decoder.write_bytes(b"decoder bytes")
    s = make_session(n_cycles=5)
    meta = json.loads((s.path / META_FILE).read_text())
    assert meta["format"] == "neuroloop-session"
    assert meta["format_version"] == FORMAT_VERSION
    assert set(meta["versions"]) >= {"numpy", "numba", "scipy", "neuroloop", "python"}
    assert meta["channels"]["names"] == s.meta["channels"]["names"]
    assert meta["channels"]["types"] == ["ecog"] * 4
    assert meta["channels"]["sampling_rate_hz"] == 100.0
    assert meta["channels"]["n_channels"] == 4
    assert meta["intention_names"] == ["rest", "left", "right"]
    assert meta["sizes"] == {"n_features": 6, "n_states": 3, "n_contacts": 16, "n_outputs": 2}
    assert meta["outputs"] == {"names": ["confidence", "state_margin"], "units": ["1", "1"]}
    assert meta["sample_dtype"] == "<f8"
    assert meta["decoder"]["sha256"] == "0" * 64
    assert meta["config"]["dsp"]["hop_samples"] == 10
    assert meta["options"] == {"seed": 3}  # unknown loop keys stay at the top level
    assert meta["closed_cleanly"] is True
    assert meta["counts"] == {"samples": 50, "blocks": 5, "cycles": 5, "events": 2}
    assert meta["summary"] == {"cycles": 5}

    # A decoder path is hashed with SHA-256.
    import hashlib

    r = SessionRecorder(tmp_path / "hashed")
    m = base_meta(2, 100.0, 10, 2, 2, 16)
    del m["decoder_sha256"]
    m["decoder_path"] = str(decoder)
    r.on_start(m)
    r.on_stop({})
    meta2 = json.loads((tmp_path / "hashed" / META_FILE).read_text())
    assert meta2["decoder"]["sha256"] == hashlib.sha256(b"decoder bytes").hexdigest()


@settings(max_examples=15)
@given(n_channels=st.integers(1, 9), hop=st.integers(1, 40), n_cycles=st.integers(0, 120),
       split=st.booleans(), seed=st.integers(0, 2**16),
       gap_at=st.lists(st.tuples(st.integers(0, 119), st.integers(1, 50)), max_size=4),
       flush=st.sampled_from([0.001, 0.01, 0.5]))
def test_round_trip_property(tmp_path_factory, n_channels, hop, n_cycles, split, seed, gap_at,
                             flush):
    path = tmp_path_factory.mktemp("rt") / "s"
    s = write_session(path, n_cycles=n_cycles, n_channels=n_channels, hop=hop, seed=seed,
                      split_blocks=split and hop > 1, gaps=dict(gap_at), flush_interval_s=flush)
    rec = open_recording(path)
    assert rec.n_cycles == n_cycles
    assert rec.samples.tobytes() == s.samples.tobytes()
    assert rec.cycles.tobytes() == s.cycles.tobytes()
    assert [tuple(int(v) for v in row[:2]) for row in rec.blocks] == s.blocks


def test_ring_wraps_and_large_blocks(tmp_path):
    """More data than every ring holds, blocks larger than half a ring: still identical."""
    s = write_session(tmp_path / "wrap", n_cycles=700, hop=10, split_blocks=True,
                      flush_interval_s=0.05, buffer_s=0.01)
    rec = open_recording(s.path)
    assert rec.samples.tobytes() == s.samples.tobytes()
    assert rec.cycles.tobytes() == s.cycles.tobytes()

    r = SessionRecorder(tmp_path / "big", flush_interval_s=0.05, buffer_s=0.01)
    r.on_start(base_meta(3, 100.0, 10, 2, 2, 16))
    big = np.random.default_rng(1).normal(size=(20_000, 3))  # 5x the 4096-row ring
    r.on_samples(big, 0)
    r.on_samples(big[:7], 20_000)
    r.on_stop({})
    rec = open_recording(tmp_path / "big")
    assert np.array_equal(rec.samples[:20_000], big)
    assert np.array_equal(rec.samples[20_000:], big[:7])
    assert rec.blocks.tolist() == [[0, 20_000, 0], [20_000, 7, 20_000]]


def test_writer_is_deterministic(tmp_path):
    a = write_session(tmp_path / "a", n_cycles=50, gaps={4: 3}, split_blocks=True, seed=9)
    b = write_session(tmp_path / "b", n_cycles=50, gaps={4: 3}, split_blocks=True, seed=9,
                      flush_interval_s=0.002)
    for name in (SAMPLES_FILE, INDEX_FILE, CYCLES_FILE, EVENTS_FILE):
        assert (a.path / name).read_bytes() == (b.path / name).read_bytes(), name
    ma = json.loads((a.path / META_FILE).read_text())
    mb = json.loads((b.path / META_FILE).read_text())
    for m in (ma, mb):
        m.pop("stopped_utc")
        m.pop("flush_interval_s")
        m["recorder"].pop("flush_interval_s")
        m["recorder"].pop("flushes")
    assert ma == mb


def test_data_reaches_disk_without_close(tmp_path):
    """The writer thread flushes on its own: a reader sees the rows before on_stop."""
    r = SessionRecorder(tmp_path / "s", flush_interval_s=0.05)
    r.on_start(base_meta(2, 100.0, 10, 2, 2, 16))
    row = np.zeros(1, dtype=cycle_dtype(2, 2, 16))
    for k in range(5):
        r.on_samples(np.full((10, 2), float(k)), 10 * k)
        row["cycle"] = k
        r.on_cycle(row)
    deadline = time.monotonic() + 10.0
    while time.monotonic() < deadline:
        rec = open_recording(tmp_path / "s")
        if rec.n_cycles == 5 and rec.n_samples == 50:
            break
        time.sleep(0.01)
    assert rec.n_cycles == 5 and rec.n_samples == 50
    assert not rec.closed_cleanly
    assert rec.samples[-1, 0] == 4.0
    r.on_stop({})
    assert open_recording(tmp_path / "s").closed_cleanly


def test_sizes_and_channels_from_first_data(tmp_path):
    """A loop that gives no sizes: they come from the first record and block."""
    r = SessionRecorder(tmp_path / "s")
    r.on_start({"scenario": "bare", "sampling_rate_hz": 50.0})
    dt = cycle_dtype(5, 4, 16, 2)
    r.on_samples(np.ones((3, 7)), 0)
    r.on_cycle(np.zeros(1, dtype=dt))
    r.on_stop({})
    meta = json.loads((tmp_path / "s" / META_FILE).read_text())
    assert meta["sizes"] == {"n_features": 5, "n_states": 4, "n_contacts": 16, "n_outputs": 2}
    # outputs nobody named: placeholder names, unknown units
    assert meta["outputs"] == {"names": ["output0", "output1"], "units": ["", ""]}
    assert meta["channels"]["n_channels"] == 7


def test_refuses_existing_recording_and_bad_directory(make_session, tmp_path):
    s = make_session(n_cycles=2)
    with pytest.raises(RecordingError, match="already holds a recording"):
        SessionRecorder(s.path).on_start(base_meta(4, 100.0, 10, 6, 3, 16))
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(RecordingError, match="cannot create recording directory"):
        SessionRecorder(blocker / "sub").on_start(base_meta(4, 100.0, 10, 6, 3, 16))
    with pytest.raises(ValueError, match="flush_interval_s"):
        SessionRecorder(tmp_path / "x", flush_interval_s=5.0)


def test_inconsistent_input_raises(tmp_path):
    r = SessionRecorder(tmp_path / "s")
    r.on_start(base_meta(2, 100.0, 10, 2, 2, 16))
    r.on_samples(np.zeros((10, 2)), 100)
    with pytest.raises(RecordingError, match="out of order"):
        r.on_samples(np.zeros((10, 2)), 105)
    with pytest.raises(RecordingError, match="3 channels"):
        r.on_samples(np.zeros((10, 3)), 200)
    r.on_stop({})


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="needs /dev/full")
def test_disk_full_becomes_recording_error(tmp_path):
    """A write failure in the writer thread surfaces in the control thread and in meta."""
    r = SessionRecorder(tmp_path / "s", flush_interval_s=0.01)
    r.on_start(base_meta(2, 100.0, 10, 2, 2, 16))
    full = os.open("/dev/full", os.O_WRONLY)
    os.dup2(full, r._fds["samples"])  # the samples file now answers ENOSPC
    os.close(full)
    row = np.zeros(1, dtype=cycle_dtype(2, 2, 16))
    with pytest.raises(RecordingError, match="failed while writing"):
        for k in range(10_000):
            r.on_samples(np.zeros((10, 2)), 10 * k)
            r.on_cycle(row)
            time.sleep(0.001)
    with pytest.raises(RecordingError):
        r.on_stop({})
    meta = json.loads((tmp_path / "s" / META_FILE).read_text())
    assert meta["closed_cleanly"] is False
    assert "writer_error" in meta


def test_no_allocation_in_steady_state(tmp_path):
    """on_samples + on_cycle keep no memory: 2000 cycles after warm-up hold < 16 kB."""
    r = SessionRecorder(tmp_path / "s", flush_interval_s=0.05)
    r.on_start(base_meta(64, 586.0, 59, 512, 7, 16))
    block = np.random.default_rng(0).normal(size=(59, 64))
    row = np.zeros(1, dtype=cycle_dtype(512, 7, 16))
    for k in range(200):
        r.on_samples(block, 59 * k)
        r.on_cycle(row)
    tracemalloc.start()
    try:
        before, _ = tracemalloc.get_traced_memory()
        tracemalloc.reset_peak()
        for k in range(200, 2200):
            r.on_samples(block, 59 * k)
            r.on_cycle(row)
        after, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    r.on_stop({})
    # 2000 cycles carry 36 MB of data: a per-cycle copy would show up by orders of magnitude.
    assert after - before < 16_384
    assert peak - before < 262_144
    rec = open_recording(tmp_path / "s")
    assert rec.n_cycles == 2200 and rec.n_samples == 2200 * 59


def test_events_are_normalised(tmp_path):
    r = SessionRecorder(tmp_path / "s")
    r.on_start(base_meta(1, 100.0, 10, 1, 2, 16))
    r.on_events([{"kind": "link", "error": "crc", "value": float("inf")}])
    row = np.zeros(1, dtype=cycle_dtype(1, 2, 16))
    row["now_ns"] = 777
    r.on_cycle(row)
    r.on_events([{"reason": "stale_input", "requested": float("nan")}])
    r.on_stop({})
    events = list(open_recording(tmp_path / "s").events())
    assert events == [
        {"cycle": 0, "time_ns": -1, "kind": "link", "error": "crc", "value": "inf"},
        {"cycle": 1, "time_ns": 777, "kind": "interlock", "reason": "stale_input",
         "requested": "nan"},
    ]
    assert normalise_event({"reason": "x", "cycle": 5}, 9, 1) == {
        "cycle": 5, "time_ns": 1, "kind": "interlock", "reason": "x"}


def test_bench_recorder_reports_percentiles(tmp_path):
    out = bench_recorder(n_hops=60, warmup_hops=10, speedup=200.0, directory=tmp_path)
    assert {"p50", "p99", "p999", "max"} <= set(out["neuroloop_us"])
    assert 0 < out["neuroloop_us"]["p50"] <= out["neuroloop_us"]["max"]
    assert out["n_hops"] == 60
    assert out["bytes_per_hop"] > 59 * 64 * 8
    assert Path(tmp_path / "session" / META_FILE).is_file()
