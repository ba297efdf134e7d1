"""The closed loop through the real CLI: ``neuroloop run --device PTY`` against firmware-sim."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import numpy as np

from neuroloop.link.keys import generate_key_file
from neuroloop.safety.limits import SafetyLimits
from neuroloop.safety.validate import validate
from neuroloop.stimulation.command import StimCommand
from neuroloop.stimulation.electrodes import paddle_5_6_5

NEUROLOOP = [sys.executable, "-m", "neuroloop.cli"]


def run_cli(*args: str, timeout: float = 120.0) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*NEUROLOOP, "run", *args], capture_output=True, text=True,
                          timeout=timeout)


def test_closed_loop_through_the_cli_over_a_pty(firmware) -> None:
    fw = firmware()
    r = run_cli("--scenario", "bsi", "--device", fw.address, "--key-file", str(fw.key_file),
                "--duration", "3", "--json")
    assert r.returncode == 0, r.stderr
    summary = json.loads(r.stdout)
    link = summary["link"]
    assert summary["cycles"] >= 25 and summary["stall_cycles"] == 0
    assert link["frames_lost"] == 0 and link["crc_errors"] == 0
    assert link["malformed_frames"] == 0 and link["auth_failures"] == 0
    assert link["naks"]["total"] == 0 and link["acks_missing"] == 0
    assert link["stims_sent"] == summary["cycles"]
    assert link["device_latency_us"]["p50"] > 0
    # a clean run never lets the device's watchdog trip (e.g. by a slow set-up step after ARM)
    assert "device_fault" not in summary["interlock_events"], summary["interlock_events"]
    assert summary["time_in_state_s"]["FAULT"] == 0.0
    fw.stop()
    assert not [e for e in fw.log() if e["kind"] in ("watchdog", "fault")]
    fs = fw.summary()
    assert fs["device"]["stims_applied"] == link["stims_sent"]
    assert fs["device"]["arms"] == 1 and fs["device"]["stops"] >= 1
    limits, array = SafetyLimits(), paddle_5_6_5()
    for tr in (e for e in fw.log() if e["kind"] == "train"):
        cmd = StimCommand(amplitude_ma=np.asarray(tr["amplitude_ma"]),
                          pulse_width_us=tr["pulse_width_us"], frequency_hz=tr["frequency_hz"],
                          interphase_gap_us=tr["interphase_gap_us"], case_ma=tr["case_ma"])
        assert validate(cmd, limits, array) == []


def test_cli_bad_device_input_is_one_line_exit_2(firmware, tmp_path) -> None:
    r = run_cli("--device", "/dev/pts/nope", "--key-file", str(generate_key_file(
        tmp_path / "a.toml").source), "--duration", "1")
    assert r.returncode == 2 and "no such device" in r.stderr and "Traceback" not in r.stderr
    fw = firmware()
    other = tmp_path / "other.toml"
    generate_key_file(other)
    r = run_cli("--device", fw.address, "--key-file", str(other), "--duration", "1")
    assert r.returncode == 2 and "check --key-file" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1, r.stderr


def test_cable_pulled_mid_run_stops_neuroloop_with_one_line(firmware) -> None:
    # Both sides run far longer than the test needs, so the only way the run can end is the
    # pulled cable; the pull happens once the device is armed and has seen a train (or has
    # been armed for 3 s: how soon the decoder first asks for movement is not the point here).
    fw = firmware(duration=600.0)
    proc = subprocess.Popen([*NEUROLOOP, "run", "--scenario", "bsi", "--device", fw.address,
                             "--key-file", str(fw.key_file), "--duration", "600", "--json"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 120
        armed_at = None
        while time.monotonic() < deadline and proc.poll() is None:
            kinds = {e["kind"] for e in fw.log()}
            if armed_at is None and "arm" in kinds:
                armed_at = time.monotonic()
            if "train" in kinds or (armed_at is not None and time.monotonic() - armed_at > 3):
                break
            time.sleep(0.1)
        assert proc.poll() is None, f"neuroloop ended before the pull: {proc.stderr.read()}"
        assert armed_at is not None, "the loop never armed the device"
        fw.kill()
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 2, err
    assert "vanished" in err and "Traceback" not in err
    assert len([ln for ln in err.splitlines() if ln.strip()]) == 1, err
    # the run up to the pull is still summarised (and a recording would be closed with it)
    summary = json.loads(out.strip().splitlines()[-1])
    assert summary["stopped_by"] == "device_error" and summary["cycles"] > 0
    assert "vanished" in summary["error"]


def test_run_refuses_to_arm_a_device_with_another_electrode_array(firmware) -> None:
    """SAFETY.md invariant 18 through the real CLI: firmware-sim drives a DBS lead, the bsi
    scenario a 5-6-5 paddle. neuroloop exits 2 with one line naming both; the device is
    never armed and never stimulates."""
    fw = firmware("--array", "dbs-3389")
    r = run_cli("--scenario", "bsi", "--device", fw.address, "--key-file", str(fw.key_file),
                "--duration", "2", "--json")
    assert r.returncode == 2, (r.returncode, r.stderr)
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, r.stderr
    assert "Traceback" not in r.stderr
    assert lines[0] == (f"neuroloop: error: device on {fw.address} reports array 'dbs-3389', "
                        "the scenario's is 'paddle-5-6-5'; start firmware-sim with --array "
                        "paddle-5-6-5 or choose a scenario for that array")
    assert r.stdout == ""
    fw.stop()
    log = fw.log()
    assert not [e for e in log if e["kind"] in ("arm", "train", "ramp")]
    fs = fw.summary()
    assert fs["device"]["arms"] == 0 and fs["device"]["stims_applied"] == 0


def test_a_device_run_with_link_inputs_and_injections_replays_identically(firmware,
                                                                          tmp_path) -> None:
    """The link's safety inputs (here: STATUS impedance, a lead that breaks at 1 s) are polled
    by the loop and recorded as ``link_input`` events next to an injected fault; the replay
    re-issues them at the same cycles and matches the run cycle for cycle."""
    fw = firmware("--open-contact", "5@1.0")
    rec = tmp_path / "rec"
    r = run_cli("--scenario", "bsi", "--device", fw.address, "--key-file", str(fw.key_file),
                "--duration", "3", "--record", str(rec), "--inject", "estop@2.5", "--json")
    assert r.returncode == 0, r.stderr
    summary = json.loads(r.stdout)
    assert summary["interlock_events"].get("impedance_report", 0) >= 1
    assert summary["interlock_events"].get("estop") == 1
    events = [json.loads(x) for x in (rec / "events.jsonl").read_text().splitlines()]
    inputs = [e for e in events if e["kind"] == "link_input"]
    assert [e["input"] for e in inputs].count("impedance") >= 2
    assert any(float(x) == np.inf for e in inputs for x in e["payload"])  # the open lead
    replay = subprocess.run([*NEUROLOOP, "replay", str(rec), "--check"], capture_output=True,
                            text=True, timeout=120)
    assert replay.returncode == 0, replay.stderr
    assert "check: identical" in replay.stdout
