"""Closed loop over Lab Streaming Layer across three processes.

1. ``lsl_stream_edf.py`` (process 1) streams the PhysioNet EEGMMI run 4 at its real rate
   (64 channels, 160 Hz, hop-sized chunks stamped at their push), waiting for its consumer;
2. ``neuroloop run --source lsl://NAME --lsl-out PREFIX --record DIR`` (process 2) closes the
   loop on it (the eeg-bci scenario adapted to the file, decoder trained on run 3);
3. ``lsl_capture.py`` (process 3) is an inlet on neuroloop's outlets, as LabRecorder would be.

Checked: what the third process received is what the loop decided (every cycle's decoded
state, probabilities, per-contact amplitude, program, frequency and pulse width, and every
interlock event); the LSL session replays ``--check`` identical; and it decodes the same
states as the same file read through ``edf://`` (bit-exact features: the stream starts at
the file's first sample and the hops align).

The default test runs 8 s of closed loop; ``-m slow`` runs the 60 s target run and reports
the end-to-end latency (LSL push of a hop's last sample -> command) and deadline misses.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("mne_lsl")

from neuroloop.io import open_recording  # noqa: E402

HERE = Path(__file__).resolve().parent
CLI = [sys.executable, "-c", "import sys; from neuroloop.cli import main; sys.exit(main())"]

SCENARIO = """base = "eeg-bci"
[scenario]
name = "eegmmi"
[source]
url = "edf://{data}/eegmmi/S001R03.edf?labels=T0:rest,T1:left,T2:right"
sampling_rate_hz = 160.0
n_channels = 64
[dsp]
hop_samples = 16
notch_hz = [50.0]
"""


@pytest.fixture(scope="module")
def setup(shared_data, tmp_path_factory):
    d = tmp_path_factory.mktemp("lsl")
    cfg = d / "eegmmi.toml"
    cfg.write_text(SCENARIO.format(data=shared_data))
    r = subprocess.run([*CLI, "train", "--config", str(cfg), "--out", str(d / "dec.npz"),
                        "--duration", "30", "--json"], capture_output=True, text=True,
                       timeout=600)
    assert r.returncode == 0, r.stderr
    return d, cfg, shared_data / "eegmmi" / "S001R04.edf"


def _closed_loop(setup, duration_s: float, tag: str, *extra: str) -> dict:
    d, cfg, edf = setup
    name, prefix = f"nl-eeg-{tag}-{uuid.uuid4().hex[:6]}", f"nlout-{tag}-{uuid.uuid4().hex[:6]}"
    rec, cap = d / f"rec-{tag}", d / f"cap-{tag}.npz"
    streamer = subprocess.Popen([sys.executable, str(HERE / "lsl_stream_edf.py"), str(edf),
                                 "--name", name, "--chunk", "16", "--wait-consumer", "300"],
                                stderr=subprocess.PIPE, text=True)
    capture = subprocess.Popen([sys.executable, str(HERE / "lsl_capture.py"), prefix, str(cap),
                                "--timeout", str(duration_s + 300)],
                               stderr=subprocess.PIPE, text=True)
    try:
        run = subprocess.run([*CLI, "run", "--config", str(cfg), "--decoder",
                              str(d / "dec.npz"), "--source", f"lsl://{name}?timeout=30",
                              "--lsl-out", prefix, "--record", str(rec), "--duration",
                              str(duration_s), "--no-rt", "--json", *extra],
                             capture_output=True, text=True, timeout=duration_s + 600)
        assert run.returncode == 0, run.stderr
        assert capture.wait(timeout=120) == 0, capture.stderr.read() if capture.stderr else ""
    finally:
        for p in (streamer, capture):
            if p.poll() is None:
                p.kill()
                p.wait()
    return {"summary": json.loads(run.stdout), "rec": rec, "cap": cap, "dir": d}


def _check_outlets_match_recording(out: dict) -> None:
    rec = open_recording(out["rec"])
    c = rec.cycles
    with np.load(out["cap"], allow_pickle=False) as z:
        dec, stim = z["decoder"], z["stimulation"]
        markers = [json.loads(t) for t in json.loads(str(z["markers"]))]
        meta = json.loads(str(z["meta"]))
    n = rec.n_cycles
    # an inlet receives from the moment it connects (LSL keeps no history for new inlets): the
    # capture may miss the first cycles, never one after it connected, and never a late one
    m = min(dec.shape[0], stim.shape[0])
    assert n - 10 <= m <= n and dec.shape[0] <= n and stim.shape[0] <= n
    dec, stim, c = dec[-m:], stim[-m:], c[n - m:]
    names = rec.intention_names
    assert meta["decoder"]["labels"][:4] == ["state", "raw_state", "confidence", "valid"]
    assert meta["decoder"]["labels"][4:4 + len(names)] == [f"p_{s}" for s in names]
    assert meta["decoder"]["scenario"] == "eegmmi"
    assert tuple(meta["decoder"]["intentions"]) == tuple(names)
    assert meta["decoder"]["rate"] == pytest.approx(10.0)
    np.testing.assert_array_equal(dec[:, 0], c["state"])
    np.testing.assert_array_equal(dec[:, 1], c["raw_state"])
    np.testing.assert_array_equal(dec[:, 2], c["confidence"])
    np.testing.assert_array_equal(dec[:, 4:4 + len(names)], c["probabilities"])
    n_contacts = c["amplitude_ma"].shape[1]
    assert meta["stimulation"]["units"][:n_contacts] == ["mA"] * n_contacts
    np.testing.assert_array_equal(stim[:, :n_contacts], c["amplitude_ma"])
    np.testing.assert_array_equal(stim[:, n_contacts + 1], c["program_id"])
    np.testing.assert_array_equal(stim[:, n_contacts + 2], c["frequency_hz"])
    np.testing.assert_array_equal(stim[:, n_contacts + 3], c["pulse_width_us"])
    assert markers[-1]["kind"] == "stop"
    # the marker inlet subscribes on its own: count from the first event it received
    got_cycles = [mk["cycle"] for mk in markers if mk.get("kind") == "interlock"]
    first_cycle = max(n - m, min(got_cycles, default=n))
    recorded = [(e.get("cycle"), e.get("reason")) for e in rec.events()
                if e.get("kind") == "interlock" and e.get("cycle", -1) >= first_cycle]
    sent = [(mk.get("cycle"), mk.get("reason")) for mk in markers
            if mk.get("kind") == "interlock" and mk.get("cycle", -1) >= first_cycle]
    assert sent == recorded


def _check_replay_identical(out: dict) -> None:
    r = subprocess.run([*CLI, "replay", str(out["rec"]), "--check", "--json"],
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr
    assert json.loads(r.stdout)["check"]["identical"] is True


def _compare_with_edf(setup, out: dict) -> dict:
    """Run the same file through edf:// on the simulated clock, with the same decoder."""
    d, cfg, edf = setup
    rec = open_recording(out["rec"])
    ref_dir = out["dir"] / f"edf-{out['rec'].name}"
    r = subprocess.run([*CLI, "run", "--config", str(cfg), "--decoder", str(d / "dec.npz"),
                        "--source", f"edf://{edf}?labels=T0:rest,T1:left,T2:right", "--fast",
                        "--duration", str(rec.n_cycles * 0.1 + 1.0), "--record", str(ref_dir),
                        "--json"], capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr
    ref = open_recording(ref_dir).cycles
    got = rec.cycles
    fresh = (got["flags"] & 0b1010) == 0  # no stall, no samples lost
    by_first = {int(f): i for i, f in enumerate(ref["first_sample"])}
    pairs = [(i, by_first[int(f)]) for i, f in enumerate(got["first_sample"])
             if fresh[i] and int(f) in by_first]
    li, ri = np.array([p[0] for p in pairs]), np.array([p[1] for p in pairs])
    aligned = got["first_sample"][0] == 0 and bool(fresh.all())
    features_equal = bool(np.array_equal(got["features"][li], ref["features"][ri]))
    agreement = float(np.mean(got["state"][li] == ref["state"][ri]))
    return {"aligned": aligned, "features_equal": features_equal, "agreement": agreement,
            "compared": len(pairs)}


def test_closed_loop_over_lsl_across_three_processes(setup):
    out = _closed_loop(setup, 8.0, "short")
    s = out["summary"]
    assert s["cycles"] == 80  # stalls happen only when this machine descheduled the streamer
    assert s["lsl_out"]["cycles_published"] == 80 and s["lsl_out"]["push_errors"] == 0
    _check_outlets_match_recording(out)
    _check_replay_identical(out)
    cmp = _compare_with_edf(setup, out)
    assert cmp["compared"] >= 60  # every cycle that got fresh samples (all, on a calm machine)
    if cmp["aligned"]:  # the stream started at the file's first sample: bit for bit
        assert cmp["features_equal"] and cmp["agreement"] == 1.0
    else:
        assert cmp["agreement"] >= 0.99


@pytest.mark.slow
def test_sixty_second_real_time_run_targets(setup):
    """The issue's targets on a 60 s run: e2e (LSL push -> command) p99, deadline misses with
    the outlets on, and agreement with edf://. Figures go to stdout (pytest -s)."""
    out = _closed_loop(setup, 60.0, "long")
    s = out["summary"]
    _check_outlets_match_recording(out)
    _check_replay_identical(out)
    cmp = _compare_with_edf(setup, out)
    report = {"e2e_us": s["e2e_us"], "deadline_misses": s["deadline_misses"],
              "cycles": s["cycles"], "lsl_out": s["lsl_out"], "edf_comparison": cmp,
              "load_average": os.getloadavg()}
    print("LSL 60 s run:", json.dumps(report))
    assert cmp["agreement"] >= 0.99
    assert s["lsl_out"]["push_errors"] == 0
    if os.getloadavg()[0] < 1.5:  # the latency targets hold on an idle machine only
        assert s["e2e_us"]["p99"] <= 2000.0
        assert s["deadline_misses"] == 0


def test_no_stream_of_that_name_is_one_line_exit_2(setup):
    d, cfg, _ = setup
    t0 = time.monotonic()
    r = subprocess.run([*CLI, "run", "--config", str(cfg), "--decoder", str(d / "dec.npz"),
                        "--source", "lsl://no-such-stream-here?timeout=0.5", "--duration", "1"],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 2
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "no-such-stream-here" in lines[0] and "visible streams" in lines[0]
    assert time.monotonic() - t0 < 120


@pytest.mark.slow  # in process: test_lsl_source.py::test_rate_and_channel_count_must_match...
def test_rate_mismatch_with_the_scenario_is_one_line_exit_2(setup):
    d, cfg, edf = setup
    name = f"nl-bad-{uuid.uuid4().hex[:6]}"
    streamer = subprocess.Popen([sys.executable, str(HERE / "lsl_stream_edf.py"), str(edf),
                                 "--name", name, "--rate-override", "250", "--seconds", "2",
                                 "--wait-consumer", "60"], stderr=subprocess.DEVNULL)
    try:
        r = subprocess.run([*CLI, "run", "--config", str(cfg), "--decoder", str(d / "dec.npz"),
                            "--source", f"lsl://{name}?timeout=30", "--duration", "1"],
                           capture_output=True, text=True, timeout=300)
    finally:
        streamer.kill()
        streamer.wait()
    assert r.returncode == 2
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "250 Hz" in lines[0] and "160 Hz" in lines[0], r.stderr
