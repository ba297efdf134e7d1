"""The adbs preset as a user runs it: a real subprocess, the therapy figures, the continuous
reference, record -> replay --check -> EDF, and one-line errors for bad input."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest


def _run(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "neuroloop.cli", *args], capture_output=True,
                          text=True, timeout=timeout)


def _user_error(p: subprocess.CompletedProcess, *needles: str) -> None:
    assert p.returncode == 2, p.stderr
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in p.stderr, p.stderr
    for n in needles:
        assert n in lines[0], lines[0]


def test_scenarios_lists_adbs() -> None:
    p = _run("scenarios")
    assert p.returncode == 0 and "adbs" in p.stdout


def test_fast_run_with_continuous_reference_record_replay_export(tmp_path: Path) -> None:
    rec = tmp_path / "rec"
    p = _run("run", "--scenario", "adbs", "--fast", "--duration", "30", "--json",
             "--compare-continuous", "--record", str(rec))
    assert p.returncode == 0, p.stderr
    s = json.loads(p.stdout)
    assert s["cycles"] == 300
    for key in ("stim_time_pct", "teed_mj", "ramps", "biomarker_above_threshold_pct"):
        assert key in s["control"]
    assert {"beta_above_threshold_pct", "teed_delivered_mj"} <= set(s["patient"])
    cmp = s["counterfactuals"][0]
    assert cmp["name"] == "continuous" and cmp["cycles"] == 300
    stim = cmp["control"]["stim_time_pct"]
    assert stim["reference"] > 99.0 and stim["ratio"] == pytest.approx(
        stim["run"] / stim["reference"])
    assert cmp["control"]["teed_mj"]["ratio"] < 1.0
    # the stimulation the patient received is what the policy asked (no interlock acted),
    # one hop later (within a couple of hops of 300)
    assert s["patient"]["stim_delivered_pct"] == pytest.approx(s["control"]["stim_time_pct"],
                                                               abs=1.0)
    r = _run("replay", str(rec), "--check")
    assert r.returncode == 0, r.stdout + r.stderr
    edf = tmp_path / "rec.edf"
    e = _run("export", str(rec), "--edf", str(edf))
    assert e.returncode == 0, e.stderr
    import pyedflib

    with pyedflib.EdfReader(str(edf)) as f:
        assert f.getSignalLabels() == ["LFP0-2", "LFP1-3"]
        texts = set(f.readAnnotations()[2])
    assert any("stim" in t.lower() for t in texts), sorted(texts)[:10]


def _config(tmp_path: Path, text: str) -> str:
    path = tmp_path / "bad.toml"
    path.write_text('base = "adbs"\n' + text)
    return str(path)


@pytest.mark.parametrize("text, needles", [
    ("[control]\npolicy = \"dual-threshold\"\nthresholds = [10.0, 3.0]\n",
     ("control.thresholds", "lo < hi")),
    ("[control]\npolicy = \"dual-threshold\"\nthresholds = [3.0, 10.0]\n"
     "ramp_up_ma_per_s = 5.0\n", ("control.ramp_up_ma_per_s = 5", "hard limit 2.5")),
    ("[dsp]\nbands_hz = [[13.0, 130.0]]\n", ("dsp.bands_hz", "Nyquist")),
    ("[safety]\nramp_up_max_ma_per_s = 300.0\n", ("ramp_up_max_ma_per_s",)),
    ("[safety]\nincrease_blanking_s = 5.0\n", ("control.blanking_s", "shorter")),
])
def test_bad_adbs_config_is_one_line(tmp_path: Path, text: str, needles) -> None:
    _user_error(_run("run", "--config", _config(tmp_path, text), "--fast", "--duration", "1"),
                *needles)


def test_real_data_at_the_wrong_rate_is_refused_and_decimated_runs(shared_data) -> None:
    path = shared_data / "ecog" / "beta_ecog_m1.npy"
    if not path.exists():
        pytest.skip("shared data absent")
    p = _run("run", "--scenario", "adbs", "--fast", "--json", "--source",
             f"npy://{path}?rate=1000&channels=0,0")
    _user_error(p, "1000 Hz", "250 Hz")
    ok = _run("run", "--scenario", "adbs", "--fast", "--json", "--source",
              f"npy://{path}?rate=1000&decimate=4&channels=0,0")
    assert ok.returncode == 0, ok.stderr
    s = json.loads(ok.stdout)
    assert s["cycles"] == 100  # 10 s of recording, then the source is exhausted
