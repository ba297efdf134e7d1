"""``[control]`` through the command line as a user runs it: exit codes, one-line errors, and
a closed-loop run under the ``proportional`` policy."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

FIXTURE_DECODER = (Path(__file__).resolve().parent.parent / "fixtures" / "recording-0.1.0-bsi"
                   / "decoder.npz")  # a format-1 decoder file, written by neuroloop 0.1.0

PROPORTIONAL = '''base = "bsi"

[control]
policy = "proportional"
output = "state_margin"
program = "left_hip_flexion"
input_range = [0.2, 0.9]
dead_band = 0.05
'''


def _neuroloop(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    script = Path(sys.executable).with_name("neuroloop")
    cmd = [str(script)] if script.exists() else [sys.executable, "-m", "neuroloop.cli"]
    return subprocess.run([*cmd, *args], capture_output=True, text=True, timeout=timeout)


def _run_config(tmp_path: Path, text: str, *extra: str) -> subprocess.CompletedProcess:
    f = tmp_path / "scenario.toml"
    f.write_text(text)
    return _neuroloop("run", "--config", str(f), "--fast", "--duration", "2", *extra)


def _assert_user_error(p: subprocess.CompletedProcess, *needles: str) -> str:
    assert p.returncode == 2, p.stderr
    lines = [ln for ln in p.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, p.stderr
    assert "Traceback" not in p.stderr
    for n in needles:
        assert n in lines[0], lines[0]
    return lines[0]


@pytest.mark.parametrize(("text", "needles"), [
    ('base = "bsi"\n[control]\npolicy = "pid"\n',
     ("control.policy = 'pid' is not a control policy", "program-per-state, proportional")),
    (PROPORTIONAL.replace("[0.2, 0.9]", "[0.9, 0.2]"),
     ("control.input_range = [0.9, 0.2] is inverted", "lo < hi")),
    (PROPORTIONAL.replace('"state_margin"', '"Beta Power"'),
     ("control.output = 'Beta Power' is not an output name",)),
    (PROPORTIONAL.replace("dead_band = 0.05", "dead_band = 0.05\ngain = 3"),
     ("unknown key control.gain",)),
    (PROPORTIONAL.replace('"left_hip_flexion"', '"rest"'),
     ("control.program = 'rest' is not an intention with a stimulation program",)),
    ('base = "bsi"\n[control]\nconfidence_threshold = 0.6\n[stimulation]\n'
     'confidence_threshold = 0.7\n',
     ("stimulation.confidence_threshold has moved to control.confidence_threshold",)),
])
def test_bad_control_table_is_one_line_before_calibrating(tmp_path: Path, text: str,
                                                          needles: tuple[str, ...]) -> None:
    p = _run_config(tmp_path, text)
    _assert_user_error(p, "scenario.toml: ", *needles)
    assert "calibrating" not in p.stderr


def test_an_output_a_loaded_decoder_lacks_names_both(tmp_path: Path) -> None:
    p = _run_config(tmp_path, PROPORTIONAL.replace("state_margin", "beta_power_db"),
                    "--decoder", str(FIXTURE_DECODER))
    line = _assert_user_error(p, "control.output = 'beta_power_db' is not an output of "
                              f"decoder {FIXTURE_DECODER} (lda)",
                              "confidence [1], state_margin [1], movement_probability [1]")
    assert "use a decoder that produces beta_power_db" in line


def test_an_output_a_trained_decoder_lacks_names_both(tmp_path: Path) -> None:
    text = PROPORTIONAL.replace("state_margin", "velocity_x_m_per_s") + \
        "\n[decoder]\ncalibration_s = 30.0\n"
    p = _run_config(tmp_path, text)
    _assert_user_error(p, "control.output = 'velocity_x_m_per_s' is not an output of the lda "
                       "decoder trained for bsi", "state_margin [1]")
    assert "calibrating" not in p.stderr  # the kind declares its outputs before it is fitted


def test_proportional_closed_loop_end_to_end(tmp_path: Path) -> None:
    f = tmp_path / "proportional.toml"
    f.write_text(PROPORTIONAL)
    p = _neuroloop("run", "--config", str(f), "--fast", "--duration", "10", "--json",
                   "--decoder", str(FIXTURE_DECODER))
    assert p.returncode == 0, p.stderr
    summary = json.loads(p.stdout)
    assert summary["cycles"] >= 95 and summary["jit_compiles_in_loop"] == 0
    assert summary["stimulator"]["cycles_stimulating"] > 0
    assert summary["time_in_state_s"]["STIMULATING"] > 0
    assert summary["stimulator"]["stopped"] is True
