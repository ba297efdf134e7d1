"""The command line as a user runs it: a real subprocess, exit codes, one-line errors."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest


def _run(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "neuroloop.cli", *args], capture_output=True,
                          text=True, timeout=timeout)


def _assert_user_error(p: subprocess.CompletedProcess, *needles: str) -> None:
    assert p.returncode == 2, p.stderr
    lines = [ln for ln in p.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, p.stderr
    assert "Traceback" not in p.stderr
    for n in needles:
        assert n in lines[0], lines[0]


def test_unknown_scenario() -> None:
    _assert_user_error(_run("run", "--scenario", "nope", "--fast"), "unknown scenario", "bsi")


def test_unknown_option() -> None:
    _assert_user_error(_run("run", "--frobnicate"), "unrecognized arguments", "--help")


def test_negative_duration() -> None:
    _assert_user_error(_run("run", "--duration", "-3"), "positive")


@pytest.mark.parametrize(
    ("text", "needles"),
    [
        ('base = "bsi"\n[source]\nsampling_rate_hz = -5.0\n',
         ("source.sampling_rate_hz", "[1, 1000000] Hz")),
        ('base = "bsi"\n[dsp]\nbands_hz = [[8, 12], [200, 300]]\n',
         ("dsp.bands_hz", "Nyquist")),
        ('[scenario]\nname = "x"\nintentions = ["rest", "go"]\n[source]\nurl = "synthetic://bsi"\n'
         'sampling_rate_hz = 586.0\nn_channels = 64\n[dsp]\nbands_hz = [[8, 12]]\n',
         ("missing key dsp.hop_samples",)),
    ],
)
def test_bad_config_files(tmp_path, text: str, needles: tuple[str, ...]) -> None:
    f = tmp_path / "bad.toml"
    f.write_text(text)
    _assert_user_error(_run("run", "--config", str(f), "--fast"), *needles)


def test_decoder_file_of_another_version(tmp_path) -> None:
    f = tmp_path / "old.npz"
    header = json.dumps({"format": 999, "kind": "lda", "params": {}}).encode()
    np.savez(f, header=np.frombuffer(header, dtype=np.uint8))
    _assert_user_error(_run("run", "--decoder", str(f), "--fast"), "format 999",
                       "neuroloop train")


def test_bad_inject_spec() -> None:
    _assert_user_error(_run("run", "--fast", "--inject", "meteor@3"), "--inject", "estop@20")


def test_fast_json_run_and_train(tmp_path) -> None:
    dec = tmp_path / "bsi.npz"
    p = _run("train", "--scenario", "bsi", "--duration", "40", "--out", str(dec), "--json")
    assert p.returncode == 0, p.stderr
    assert json.loads(p.stdout)["decoder"] == str(dec)
    p = _run("run", "--scenario", "bsi", "--fast", "--duration", "20", "--json",
             "--decoder", str(dec))
    assert p.returncode == 0, p.stderr
    lines = p.stdout.strip().splitlines()
    assert len(lines) == 1
    s = json.loads(lines[0])
    for key in ("cycles", "deadline_misses", "compute_us", "e2e_us", "accuracy",
                "intent_to_stim_ms", "interlock_events"):
        assert key in s
    for key in ("compute_us", "e2e_us"):
        assert set(s[key]) == {"p50", "p99", "p999", "max"}
    assert s["cycles"] == round(20 / (59 / 586))


@pytest.mark.parametrize(
    ("text", "needles"),
    [
        ("[safety]\nshannon_k = 1.9\n", ("shannon_k = 1.9", "(0, 1.5]")),
        ("[safety]\ncontact_area_cm2 = 0.0\n", ("contact_area_cm2",)),
        ("[safety]\npulse_width_min_us = 500.0\npulse_width_max_us = 100.0\n",
         ("pulse_width",)),
        ("[safety]\ncharge_density_max_uc_per_cm2 = 45.0\n", ("charge_density_max_uc_per_cm2",)),
    ],
)
def test_limits_file_that_loosens_or_breaks_is_refused(tmp_path, text, needles) -> None:
    f = tmp_path / "limits.toml"
    f.write_text(text)
    _assert_user_error(_run("run", "--fast", "--limits", str(f)), *needles)


def test_scenario_safety_table_is_validated(tmp_path) -> None:
    f = tmp_path / "loose.toml"
    f.write_text('base = "bsi"\n[safety]\nshannon_k = 2.0\n')
    _assert_user_error(_run("run", "--config", str(f), "--fast"), "shannon_k = 2.0")


def test_an_unforeseen_bug_is_one_line_not_a_traceback(monkeypatch, capsys):
    from neuroloop import cli

    def boom(args):
        raise ZeroDivisionError("division by zero\nsecond line")

    monkeypatch.setitem(cli._COMMANDS, "scenarios", boom)
    monkeypatch.delenv("NEUROLOOP_DEBUG", raising=False)
    assert cli.main(["scenarios"]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "internal error: ZeroDivisionError" in err
    monkeypatch.setenv("NEUROLOOP_DEBUG", "1")
    with pytest.raises(ZeroDivisionError):
        cli.main(["scenarios"])
