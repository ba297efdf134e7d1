"""The closed loop through the real CLI: ``neuroloop run --device PTY`` against firmware-sim."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import numpy as np
import pytest

from neuroloop.link.keys import generate_key_file
from neuroloop.safety.limits import SafetyLimits
from neuroloop.safety.validate import validate
from neuroloop.stimulation.command import StimCommand
from neuroloop.stimulation.electrodes import paddle_5_6_5

NEUROLOOP = [sys.executable, "-m", "neuroloop.cli"]


def _cli_ok() -> bool:
    import importlib.util

    spec = importlib.util.find_spec("neuroloop.cli")
    if spec is None or spec.origin is None:
        return False
    with open(spec.origin, encoding="utf-8") as fh:
        return '"--device"' in fh.read()


pytestmark = pytest.mark.skipif(not _cli_ok(), reason="neuroloop run --device not available")


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
    fw.stop()
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
    fw = firmware()
    proc = subprocess.Popen([*NEUROLOOP, "run", "--scenario", "bsi", "--device", fw.address,
                             "--key-file", str(fw.key_file), "--duration", "30", "--json"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not any(
                e["kind"] == "train" for e in fw.log()):
            time.sleep(0.1)
        assert any(e["kind"] == "arm" for e in fw.log()), "the loop never armed the device"
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
