"""``LslOutlets`` (``run --lsl-out``): stream layout and meta-data, and it never blocks the loop
(a consumer that never reads cannot hold it up)."""

from __future__ import annotations

import json
import time
import uuid

import numpy as np
import pytest

pytest.importorskip("mne_lsl")

from neuroloop.acquisition.lsl import configure_liblsl  # noqa: E402
from neuroloop.io.lsl_outlets import LslOutlets, outlet_layout  # noqa: E402
from neuroloop.records import cycle_dtype  # noqa: E402

configure_liblsl()
from mne_lsl.lsl import StreamInlet, resolve_streams  # noqa: E402

META = {"scenario": "eeg-bci", "intention_names": ["rest", "left", "right"],
        "output_names": ["velocity"], "output_units": ["m/s"], "n_contacts": 4,
        "hop_samples": 25, "channels": {"sampling_rate_hz": 250.0}, "options": {"fast": False},
        "versions": {"neuroloop": "0.1.0"}, "source_url": "lsl://amp"}


def _record(k: int) -> np.ndarray:
    rec = np.zeros(1, dtype=cycle_dtype(2, 3, 4, 1))
    rec["cycle"] = k
    rec["state"] = k % 3
    rec["probabilities"] = [0.2, 0.3, 0.5]
    rec["outputs"] = [k * 0.1]
    rec["amplitude_ma"] = [1.0, -0.5, -0.5, 0.0]
    rec["program_id"] = 1
    rec["frequency_hz"] = 40.0
    rec["pulse_width_us"] = 300.0
    rec["sent_ns"] = time.perf_counter_ns()
    return rec


def test_layout_names_units_and_types():
    layout = outlet_layout(META, ["E0", "E1", "E2", "E3"])
    dec = layout["decoder"]
    assert [c[0] for c in dec] == ["state", "raw_state", "confidence", "valid", "p_rest",
                                  "p_left", "p_right", "velocity"]
    assert dec[-1][1] == "m/s" and dec[4][1] == "probability"
    stim = layout["stimulation"]
    assert [c[0] for c in stim][:4] == ["E0", "E1", "E2", "E3"]
    assert all(c[1] == "mA" for c in stim[:5])
    assert [c[0] for c in stim][5:] == ["program_id", "frequency_hz", "pulse_width_us",
                                        "interphase_gap_us", "supervisor_state"]


def test_published_samples_and_markers_reach_an_inlet():
    prefix = f"nlt-{uuid.uuid4().hex[:8]}"
    out = LslOutlets(prefix, linger_s=0.2)
    out.on_start(dict(META))
    inlets = {}
    for key in ("decoder", "stimulation", "markers"):
        found = resolve_streams(timeout=3.0, name=f"{prefix}-{key}")
        assert found, key
        inlets[key] = StreamInlet(found[0])
        inlets[key].pull_chunk(timeout=0.0)  # subscribe
    time.sleep(0.3)
    rec = _record(0)
    for k in range(20):
        rec[:] = _record(k)
        out.on_cycle(rec)
    out.on_events([{"reason": "slew_up", "cycle": 7, "time_ns": time.perf_counter_ns()}])
    summary: dict = {}
    deadline = time.monotonic() + 5.0
    got = {"decoder": [], "stimulation": [], "markers": []}
    while time.monotonic() < deadline and len(got["decoder"]) < 20:
        for key, inlet in inlets.items():
            data, _ = inlet.pull_chunk(timeout=0.05)
            got[key].extend(list(data))
    out.on_stop(summary)
    for key, inlet in inlets.items():
        data, _ = inlet.pull_chunk(timeout=0.3)
        got[key].extend(list(data))
    dec = np.array(got["decoder"])
    assert dec.shape == (20, 8)
    np.testing.assert_array_equal(dec[:, 0], np.arange(20) % 3)
    np.testing.assert_array_equal(dec[:, 4:7], [[0.2, 0.3, 0.5]] * 20)
    np.testing.assert_allclose(dec[:, 7], np.arange(20) * 0.1)
    stim = np.array(got["stimulation"])
    np.testing.assert_array_equal(stim[:, :4], [[1.0, -0.5, -0.5, 0.0]] * 20)
    assert set(stim[:, 5]) == {1.0} and set(stim[:, 6]) == {40.0} and set(stim[:, 7]) == {300.0}
    markers = [json.loads(m[0]) for m in got["markers"]]
    kinds = [m["kind"] for m in markers]
    assert "interlock" in kinds and kinds[-1] == "stop"
    assert next(m for m in markers if m["kind"] == "interlock")["reason"] == "slew_up"
    assert summary["lsl_out"]["cycles_published"] == 20
    assert summary["lsl_out"]["push_errors"] == 0


def test_a_consumer_that_never_reads_does_not_block_the_loop():
    """An inlet subscribed with a 1 s buffer that never pulls: liblsl drops its oldest
    samples, every push returns, nothing is counted as an error."""
    prefix = f"nlt-{uuid.uuid4().hex[:8]}"
    out = LslOutlets(prefix, linger_s=0.0)
    out.on_start(dict(META))
    found = resolve_streams(timeout=3.0, name=f"{prefix}-decoder")
    assert found
    lazy = StreamInlet(found[0], max_buffered=1)
    lazy.pull_chunk(timeout=0.0)  # subscribe, then never read again
    time.sleep(0.3)
    rec = _record(0)
    for k in range(5000):
        rec["cycle"] = k
        out.on_cycle(rec)
    summary: dict = {}
    out.on_stop(summary)
    assert summary["lsl_out"]["cycles_published"] == 5000
    assert summary["lsl_out"]["push_errors"] == 0
    del lazy
