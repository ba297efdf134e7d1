"""The responsive preset through firmware_sim over a pty: the device streams the patient, its
patient model reacts to the bursts its output stage applies, and its own limits hold."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from neuroloop.config import load_scenario
from neuroloop.safety.effective import scenario_limits
from neuroloop.safety.validate import validate
from neuroloop.stimulation.command import StimCommand
from neuroloop.stimulation.programs import build_program_set

NEUROLOOP = [sys.executable, "-m", "neuroloop.cli"]
PRESET = Path(__file__).resolve().parents[2] / "neuroloop" / "scenarios" / "responsive.toml"


@pytest.mark.slow
def test_responsive_closed_loop_through_the_device(firmware, tmp_path) -> None:
    # seed 78: the first seizure starts 42 s into the device's stream
    fw = firmware("--preset", "responsive", "--seed", "78", "--array", "rns-strip-depth",
                  "--limits", str(PRESET), duration=150.0)
    rec = tmp_path / "rec"
    r = subprocess.run([*NEUROLOOP, "run", "--scenario", "responsive", "--device", fw.address,
                        "--key-file", str(fw.key_file), "--duration", "60", "--record",
                        str(rec), "--json"], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    s = json.loads(r.stdout)
    assert s["deadline_misses"] == 0 and s["link"]["naks"]["total"] == 0
    det = s["detection"]
    assert det["seizures"] == 1 and det["detected"] == 1 and det["median_latency_s"] <= 2.0
    assert s["control"]["bursts"] >= 1
    fw.stop()
    sc = load_scenario("responsive")
    programs = build_program_set(sc.stimulation, sc.intention_names)
    limits = scenario_limits(sc, programs.array).limits
    trains = [e for e in fw.log() if e["kind"] == "train"]
    assert trains
    for tr in trains:
        cmd = StimCommand(amplitude_ma=np.asarray(tr["amplitude_ma"]),
                          pulse_width_us=tr["pulse_width_us"], frequency_hz=tr["frequency_hz"],
                          interphase_gap_us=tr["interphase_gap_us"], case_ma=tr["case_ma"],
                          program_id=tr["program_id"])
        assert validate(cmd, limits, programs.array, programs=programs) == []
        assert (tr["stop_us"] - tr["start_us"]) / 1e6 <= limits.burst_max_s
    replay = subprocess.run([*NEUROLOOP, "replay", str(rec), "--check"], capture_output=True,
                            text=True, timeout=300)
    assert replay.returncode == 0, replay.stderr
