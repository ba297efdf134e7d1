"""The ``[control]`` table: default policy, the old place of confidence_threshold, presets."""

from __future__ import annotations

import copy
import tomllib
from importlib import resources
from pathlib import Path

import pytest

from neuroloop.config import ControlConfig, load_scenario, scenario_from_dict
from neuroloop.errors import ConfigError


def _bsi() -> dict:
    return tomllib.loads((resources.files("neuroloop.scenarios") / "bsi.toml").read_text())


@pytest.mark.parametrize("preset", ["bsi", "eeg-bci"])
def test_presets_pick_program_per_state(preset: str) -> None:
    sc = load_scenario(preset)
    assert sc.control.policy == "program-per-state"
    assert sc.control.params == {"confidence_threshold": 0.5}
    assert not hasattr(sc.stimulation, "confidence_threshold")


def test_no_control_table_means_program_per_state() -> None:
    t = _bsi()
    del t["control"]
    sc = scenario_from_dict(t, label="old.toml")
    assert sc.control == ControlConfig("program-per-state", {}, "old.toml")


def test_old_place_of_confidence_threshold_still_read() -> None:
    t = _bsi()
    del t["control"]
    t["stimulation"]["confidence_threshold"] = 0.7
    sc = scenario_from_dict(t, label="old.toml")
    assert sc.control.params == {"confidence_threshold": 0.7}
    assert "confidence_threshold" not in sc.raw["stimulation"]


def test_both_places_is_a_one_line_error() -> None:
    t = _bsi()
    t["stimulation"]["confidence_threshold"] = 0.7
    with pytest.raises(ConfigError) as info:
        scenario_from_dict(t, label="both.toml")
    assert str(info.value) == ("both.toml: stimulation.confidence_threshold has moved to "
                               "control.confidence_threshold; set it only in [control]")


def test_old_place_in_a_file_based_on_a_preset_overrides_it(tmp_path: Path) -> None:
    f = tmp_path / "mine.toml"
    f.write_text('base = "bsi"\n[stimulation]\nconfidence_threshold = 0.8\n')
    assert load_scenario(f).control.params == {"confidence_threshold": 0.8}


def test_another_policy_does_not_inherit_the_presets_keys(tmp_path: Path) -> None:
    f = tmp_path / "prop.toml"
    f.write_text('base = "bsi"\n[control]\npolicy = "proportional"\noutput = "state_margin"\n'
                 'program = "left_hip_flexion"\ninput_range = [0.2, 0.9]\n')
    sc = load_scenario(f)
    assert sc.control.policy == "proportional"
    assert sc.control.params == {"output": "state_margin", "program": "left_hip_flexion",
                                 "input_range": [0.2, 0.9]}
    same = tmp_path / "same.toml"
    same.write_text('base = "bsi"\n[control]\npolicy = "program-per-state"\n')
    assert load_scenario(same).control.params == {"confidence_threshold": 0.5}


@pytest.mark.parametrize(("control", "pattern"), [
    ({"policy": 3}, r"control.policy = 3 must be a non-empty string"),
    ({"policy": ""}, r"control.policy = '' must be a non-empty string"),
    ("proportional", r"\[control\] must be a table"),
])
def test_bad_control_table(control: object, pattern: str) -> None:
    t = copy.deepcopy(_bsi())
    t["control"] = control
    with pytest.raises(ConfigError, match=pattern):
        scenario_from_dict(t, label="x.toml")
