"""Scenario loading: presets load, and every bad value is refused with the key named."""

from __future__ import annotations

import copy
import tomllib
from importlib import resources

import pytest

from neuroloop.config import load_scenario, scenario_from_dict, scenario_names
from neuroloop.errors import ConfigError


def _bsi_table() -> dict:
    text = (resources.files("neuroloop.scenarios") / "bsi.toml").read_text()
    return tomllib.loads(text)


def test_presets_load() -> None:
    assert {"bsi", "eeg-bci"} <= set(scenario_names())
    bsi = load_scenario("bsi")
    assert bsi.source.n_channels == 64 and bsi.source.sampling_rate_hz == 586.0
    assert bsi.dsp.hop_samples == 59 and len(bsi.dsp.bands_hz) == 8
    assert len(bsi.intention_names) == 7 and len(bsi.stimulation.programs) == 6
    eeg = load_scenario("eeg-bci")
    assert eeg.source.n_channels == 32 and eeg.dsp.hop_samples == 25


def test_unknown_scenario_names_the_choices() -> None:
    with pytest.raises(ConfigError, match="unknown scenario 'nope'.*bsi"):
        load_scenario("nope")


@pytest.mark.parametrize("name", ["a" * 300, "bsi\x00", "x" * 5000])
def test_a_name_the_os_cannot_look_up_is_an_unknown_scenario(name: str) -> None:
    """Too long for the file system, or a NUL byte: not a crash in the file lookup."""
    with pytest.raises(ConfigError, match="unknown scenario .*bsi"):
        load_scenario(name)


@pytest.mark.parametrize(
    ("mutate", "pattern"),
    [
        (lambda t: t["source"].__setitem__("sampling_rate_hz", -586.0),
         r"source.sampling_rate_hz = -586.0 is too small; use a value in \[1, 1000000\] Hz"),
        (lambda t: t["dsp"].__setitem__("bands_hz", [[8, 12], [110, 350]]),
         r"dsp.bands_hz = \[110, 350\] reaches the Nyquist frequency \(293 Hz"),
        (lambda t: t["dsp"].__delitem__("hop_samples"), r"missing key dsp.hop_samples"),
        (lambda t: t["dsp"].__setitem__("hop_samples", 0), r"dsp.hop_samples = 0 is too small; use an integer in \[1, 1000000\]"),
        (lambda t: t["dsp"].__setitem__("bands_hz", [[30, 20]]), r"0 < low < high"),
        (lambda t: t["dsp"].__setitem__("hopsamples", 3), r"unknown key dsp.hopsamples"),
        (lambda t: t.__setitem__("extra", {}), r"unknown section \[extra\]"),
        (lambda t: t["stimulation"]["programs"][0].__setitem__("amplitude_ma", [3, 1]),
         r"amplitude_ma = \[3, 1\] must be \[min, max\]"),
        (lambda t: t["stimulation"]["programs"][0].__setitem__("intention", "fly"),
         r"intention = 'fly' is not a movement intention"),
        (lambda t: t["scenario"].__setitem__("intentions", ["walk", "rest"]),
         r"must list \"rest\" first"),
        (lambda t: t["runtime"].__setitem__("deadline_ms", 0), r"runtime.deadline_ms = 0 is too small; use a value in \[0.05, 10000\] ms"),
        (lambda t: t["dsp"].__setitem__("notch_hz", [50.0, 300.0]), r"at or above Nyquist"),
    ],
)
def test_bad_values_name_key_and_fix(mutate, pattern) -> None:
    table = copy.deepcopy(_bsi_table())
    mutate(table)
    with pytest.raises(ConfigError, match=pattern) as info:
        scenario_from_dict(table, label="my.toml")
    msg = str(info.value)
    assert msg.startswith("my.toml: ") and "\n" not in msg


def test_user_file_with_base_overrides(tmp_path) -> None:
    f = tmp_path / "mine.toml"
    f.write_text('base = "bsi"\n[source]\nsnr = 2.0\n[runtime]\ndeadline_ms = 5.0\n')
    sc = load_scenario(str(f))
    assert sc.source.options["snr"] == 2.0 and sc.runtime.deadline_ms == 5.0
    assert sc.dsp.hop_samples == 59


def test_missing_and_broken_files(tmp_path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load_scenario(str(tmp_path / "absent.toml"))
    bad = tmp_path / "bad.toml"
    bad.write_text("[dsp\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_scenario(str(bad))
