"""End to end through the CLI: `neuroloop run --record`, `neuroloop replay --check`,
`neuroloop export --edf`, a live run killed with SIGKILL, determinism across processes."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pyedflib
import pytest

from neuroloop.io import open_recording
from neuroloop.io.compare import DEFAULT_IGNORE
from neuroloop.io.format import CYCLES_FILE, META_FILE, SAMPLES_FILE

CLI = [sys.executable, "-c", "import sys; from neuroloop.cli import main; sys.exit(main())"]


def neuroloop(*args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*CLI, *args], capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def recorded(tmp_path_factory) -> Path:
    """A 20 s bsi session recorded on the simulated clock."""
    d = tmp_path_factory.mktemp("e2e") / "bsi"
    r = neuroloop("run", "--scenario", "bsi", "--duration", "20", "--fast", "--record", str(d),
                  "--json")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["recording"] == str(d)
    return d


def _check(directory: Path, *extra: str) -> tuple[int, dict]:
    r = neuroloop("replay", str(directory), "--check", "--json", *extra)
    assert r.returncode in (0, 1), r.stderr
    return r.returncode, json.loads(r.stdout)


def test_record_then_replay_check_is_identical(recorded):
    rec = open_recording(recorded)
    assert rec.closed_cleanly and rec.n_cycles >= 190
    assert rec.n_channels == 64 and rec.sampling_rate_hz == 586.0
    assert rec.meta["decoder"]["sha256"]
    code, out = _check(recorded)
    assert code == 0
    assert out["check"]["identical"] is True
    assert out["check"]["cycles"]["recorded"] == out["check"]["cycles"]["replayed"] == rec.n_cycles


def test_changed_decoder_weight_fails_with_the_expected_diff(recorded, tmp_path):
    with np.load(recorded / "decoder.npz") as z:
        arrays = {k: z[k].copy() for k in z.files}
    arrays["a_coef"][3, 17] += 0.5  # one weight of one class
    changed = tmp_path / "changed.npz"
    with open(changed, "wb") as fh:
        np.savez(fh, **arrays)
    # bit-exact: the default tolerances would let the first cycles' 1e-40 probabilities pass
    code, out = _check(recorded, "--decoder", str(changed), "--tolerances", "exact")
    assert code == 1
    check = out["check"]["cycles"]
    rec = open_recording(recorded)
    valid = np.flatnonzero(rec.cycles["valid"] == 1)
    # the decoder's output changes from the first cycle it decodes: its probabilities (and
    # possibly its confidence, which comes first in the record) are the first divergence
    first = int(valid[0])
    assert check["first_divergent_cycle"] == first
    assert check["field"] in ("confidence", "probabilities")
    recorded_value = rec.cycles[check["field"]][first]
    if check["index"]:
        recorded_value = recorded_value[tuple(check["index"])]
    assert check["recorded_value"] == float(recorded_value)
    assert check["replayed_value"] != check["recorded_value"]
    assert check["count_by_field"]["probabilities"] == valid.size
    assert "outputs" in check["count_by_field"]  # the continuous outputs change with it
    assert set(check["count_by_field"]) <= {
        "confidence", "probabilities", "outputs", "raw_state", "state", "request_amplitude_ma",
        "amplitude_ma", "pulse_width_us", "frequency_hz", "interphase_gap_us", "case_ma",
        "program_id", "supervisor_state", "n_events", "flags"}
    # without --json the diff is printed for humans on stderr
    r = neuroloop("replay", str(recorded), "--check", "--decoder", str(changed),
                  "--tolerances", "exact")
    assert r.returncode == 1
    assert f"first divergent cycle: {int(valid[0])}" in r.stderr
    assert f"field:    {check['field_label']}" in r.stderr and "probabilities" in r.stderr


def test_truncated_recording_replays_up_to_its_last_flushed_cycle(recorded, tmp_path):
    d = tmp_path / "cut"
    shutil.copytree(recorded, d)
    rec = open_recording(d)
    keep = 120
    row = rec.cycle_dtype.itemsize
    end_sample = int(rec.cycles["first_sample"][keep - 1]) + rec.hop_samples + 7
    with open(d / CYCLES_FILE, "r+b") as fh:  # 120 cycles and part of the 121st
        fh.truncate(keep * row + row // 3)
    with open(d / SAMPLES_FILE, "r+b") as fh:  # samples a bit past them, half a row more
        fh.truncate(end_sample * 64 * 8 + 100)
    meta = json.loads((d / META_FILE).read_text())
    for key in ("closed_cleanly", "counts", "summary", "stopped_utc"):
        meta.pop(key, None)  # the writer never reached on_stop
    (d / META_FILE).write_text(json.dumps(meta))
    cut = open_recording(d)
    assert cut.n_cycles == keep and not cut.closed_cleanly
    code, out = _check(d)
    assert code == 0, out["check"]
    assert out["cycles"] == keep
    assert out["check"]["cycles"]["replayed"] == keep


def test_live_run_killed_mid_write_replays(tmp_path):
    """A real-time `neuroloop run --record` killed with SIGKILL: the recording opens and
    replays identically up to its last flushed cycle."""
    d = tmp_path / "live"
    proc = subprocess.Popen([*CLI, "run", "--scenario", "bsi", "--duration", "60", "--no-rt",
                             "--record", str(d), "--json"], stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and proc.poll() is None:
            f = d / CYCLES_FILE
            if f.exists() and (d / META_FILE).exists():
                rec = open_recording(d)
                if rec.n_cycles >= 25:
                    break
            time.sleep(0.05)
        assert proc.poll() is None, proc.stderr.read()  # type: ignore[union-attr]
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    rec = open_recording(d)
    assert not rec.closed_cleanly and rec.n_cycles >= 25
    code, out = _check(d)
    assert code == 0, out["check"]
    assert out["cycles"] == rec.n_cycles


REPLAY_DUMP = """
import sys
import numpy as np
from neuroloop.io.replay import replay_cycles
_, cycles, _ = replay_cycles(sys.argv[1])
cycles = np.array(cycles)
for name in sys.argv[3:]:
    cycles[name] = 0
cycles.tofile(sys.argv[2])
"""


def test_replay_is_byte_identical_across_processes(recorded, tmp_path):
    outs = []
    for i in range(2):
        out = tmp_path / f"replay{i}.bin"
        r = subprocess.run([sys.executable, "-c", REPLAY_DUMP, str(recorded), str(out),
                            *DEFAULT_IGNORE], capture_output=True, text=True, timeout=300)
        assert r.returncode == 0, r.stderr
        outs.append(out.read_bytes())
    assert outs[0] == outs[1]
    recorded_cycles = np.array(open_recording(recorded).cycles)
    for name in DEFAULT_IGNORE:
        recorded_cycles[name] = 0
    assert outs[0] == recorded_cycles.tobytes()


def test_export_cli_writes_edf_plus(recorded, tmp_path):
    out = tmp_path / "session.edf"
    r = neuroloop("export", str(recorded), "--edf", str(out))
    assert r.returncode == 0, r.stderr
    rec = open_recording(recorded)
    reader = pyedflib.EdfReader(str(out))
    try:
        assert reader.signals_in_file == 64
        assert reader.getSampleFrequency(0) == 586.0
        assert reader.getSignalLabels() == list(rec.channel_names)
        x = reader.readSignal(5)
        step = (reader.getPhysicalMaximum(5) - reader.getPhysicalMinimum(5)) / 65535
        assert np.abs(x[:rec.n_samples] - rec.samples[:, 5]).max() <= step + 1e-9
        texts = list(reader.readAnnotations()[2])
    finally:
        reader.close()
    assert any(t.startswith("true: ") and t != "true: rest" for t in texts)
    assert any(t.startswith("decoded: ") for t in texts)
    assert any(t.startswith("stim on: ") for t in texts)
    assert "interlock: arm" in texts


def test_bad_recordings_exit_2_with_one_line(recorded, tmp_path):
    r = neuroloop("replay", str(tmp_path / "missing"), "--check")
    assert r.returncode == 2
    assert r.stderr.count("\n") == 1 and "does not exist" in r.stderr
    newer = tmp_path / "newer"
    shutil.copytree(recorded, newer)
    meta = json.loads((newer / META_FILE).read_text())
    meta["format_version"] = 99
    (newer / META_FILE).write_text(json.dumps(meta))
    r = neuroloop("replay", str(newer), "--check")
    assert r.returncode == 2 and "upgrade neuroloop" in r.stderr and "Traceback" not in r.stderr
    meta["format_version"] = 1
    del meta["sizes"]["n_contacts"]
    (newer / META_FILE).write_text(json.dumps(meta))
    r = neuroloop("export", str(newer), "--edf", str(tmp_path / "x.edf"))
    assert r.returncode == 2 and "missing key 'sizes.n_contacts'" in r.stderr


def test_closed_loop_on_real_edf_with_annotation_labels(shared_data, tmp_path):
    """Calibrate on PhysioNet run 3 (labels from its T0/T1/T2 annotations), run the closed
    loop on run 4 through edf://, record it, and replay it identically."""
    labels = "labels=T0:rest,T1:left,T2:right"
    cfg = tmp_path / "eegmmi.toml"
    cfg.write_text(f"""base = "eeg-bci"
[scenario]
name = "eegmmi"
[source]
url = "edf://{shared_data / 'eegmmi/S001R03.edf'}?{labels}"
sampling_rate_hz = 160.0
n_channels = 64
[dsp]
hop_samples = 16
notch_hz = [50.0]
[decoder]
calibration_s = 120.0
""")
    d = tmp_path / "rec"
    r = neuroloop("run", "--config", str(cfg), "--source",
                  f"edf://{shared_data / 'eegmmi/S001R04.edf'}?{labels}", "--fast",
                  "--duration", "60", "--record", str(d), "--json")
    assert r.returncode == 0, r.stderr
    summary = json.loads(r.stdout)
    assert summary["cycles"] == 600 and summary["accuracy_hops"] == 600
    rec = open_recording(d)
    assert rec.channel_names[:2] == ("Fc5.", "Fc3.") and rec.sampling_rate_hz == 160.0
    true_state = np.asarray(rec.cycles["true_state"])
    assert set(np.unique(true_state)) == {0, 1, 2}  # the annotations reached the loop
    assert np.array_equal(rec.samples[:, 0], _edf_channel(shared_data, 0)[:rec.n_samples])
    code, out = _check(d)
    assert code == 0 and out["check"]["cycles"]["replayed"] == 600


def _edf_channel(shared_data: Path, ch: int) -> np.ndarray:
    r = pyedflib.EdfReader(str(shared_data / "eegmmi/S001R04.edf"))
    try:
        return r.readSignal(ch)
    finally:
        r.close()
