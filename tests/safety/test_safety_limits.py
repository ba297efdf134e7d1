"""Loading limits: defaults, overrides, and refusal of anything unsafe (key, value, range)."""

from __future__ import annotations

import math
from dataclasses import fields

import pytest
from hypothesis import given
from hypothesis import strategies as st

from neuroloop.errors import ConfigError
from neuroloop.safety import HARD_CEILINGS, SafetyLimits, load_limits, load_limits_file
from neuroloop.safety.limits import limit_names


def test_defaults_suit_the_bsi_scenario():
    lim = load_limits()
    assert lim == SafetyLimits()
    assert lim.shannon_k == 1.5
    assert lim.charge_density_max_uc_per_cm2 == 30.0
    # 16-contact paddle, 0.06 cm^2 contacts: Shannon Q_max = sqrt(10^1.5 x 0.06) = 1.38 uC
    assert lim.shannon_q_max_uc(0.06) == pytest.approx(1.377, abs=1e-3)
    # a program reaches 1 mA within one 100 ms cycle
    assert lim.slew_up_ma_per_s * 0.1 >= 1.0
    assert lim.slew_down_ma_per_s > lim.slew_up_ma_per_s


def test_every_limit_has_a_ceiling_and_defaults_are_inside():
    assert set(limit_names()) == set(HARD_CEILINGS)
    base = SafetyLimits()
    for f in fields(SafetyLimits):
        v = getattr(base, f.name)
        if v is not None:
            assert HARD_CEILINGS[f.name].contains(float(v)), f.name


def test_override_keeps_the_rest():
    lim = load_limits({"shannon_k": 1.2, "fallback_cycles": 5})
    assert lim.shannon_k == 1.2 and lim.fallback_cycles == 5
    assert lim.charge_density_max_uc_per_cm2 == 30.0


def test_shannon_k_at_or_above_damage_is_refused_with_key_value_and_range():
    with pytest.raises(ConfigError) as exc:
        load_limits({"shannon_k": 1.9})
    assert str(exc.value) == ("safety.shannon_k = 1.9 is outside the allowed range (0, 1.5]; "
                              "lower it")
    with pytest.raises(ConfigError, match=r"shannon_k = 1\.85 .*\(0, 1\.5\]"):
        load_limits({"shannon_k": 1.85})


@pytest.mark.parametrize("key,value,range_text", [
    ("charge_density_max_uc_per_cm2", 35.0, "(0, 30]"),
    ("charge_per_phase_max_uc", 20.0, "(0, 18]"),
    ("contact_current_max_ma", 26.0, "(0, 25.5]"),
    ("total_current_max_ma", 30.0, "(0, 25.5]"),
    ("pulse_width_max_us", 1200.0, "[20, 1000]"),
    ("pulse_width_min_us", 10.0, "[20, 1000]"),
    ("frequency_max_hz", 2000.0, "[2, 1200]"),
    ("frequency_min_hz", 1.0, "[2, 1200]"),
    ("slew_up_ma_per_s", 50.0, "(0, 10]"),
    ("deadline_miss_limit", 50, "[1, 20]"),
    ("impedance_min_ohm", 10.0, "[50, 3500]"),
    ("impedance_max_ohm", 10000.0, "[50, 3500]"),
    ("stale_input_ms", 5000.0, "(0, 500]"),
    ("contact_area_cm2", 0.0, "(0, 1]"),
    ("contact_area_cm2", -0.06, "(0, 1]"),
    ("charge_density_max_uc_per_cm2", 0.0, "(0, 30]"),
])
def test_loosened_ceiling_or_nonpositive_is_refused(key, value, range_text):
    with pytest.raises(ConfigError) as exc:
        load_limits({key: value})
    msg = str(exc.value)
    assert f"safety.{key} = {value!r}" in msg
    assert range_text in msg
    assert "\n" not in msg
    assert ("lower it" in msg) or ("raise it" in msg)


def test_min_above_max_is_refused_naming_both():
    with pytest.raises(ConfigError) as exc:
        load_limits({"pulse_width_min_us": 500.0, "pulse_width_max_us": 200.0})
    msg = str(exc.value)
    assert "pulse_width_min_us = 500.0" in msg and "pulse_width_max_us = 200.0" in msg
    assert "<=" in msg


@pytest.mark.parametrize("key,value", [
    ("shannon_k", "1.5"), ("shannon_k", True), ("fallback_cycles", 2.5),
    ("recovery_cycles", "3"), ("shannon_k", None), ("shannon_k", [1.5]),
])
def test_wrong_type_is_refused(key, value):
    with pytest.raises(ConfigError, match=f"safety.{key}"):
        load_limits({key: value})


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf])
def test_nonfinite_is_refused(value):
    with pytest.raises(ConfigError, match="charge_density_max_uc_per_cm2"):
        load_limits({"charge_density_max_uc_per_cm2": value})


def test_unknown_key_is_refused_and_named():
    with pytest.raises(ConfigError, match=r"unknown key safety\.shanon_k"):
        load_limits({"shanon_k": 1.5})


def test_table_must_be_a_mapping():
    with pytest.raises(ConfigError, match="must be a table"):
        load_limits([("shannon_k", 1.5)])  # type: ignore[arg-type]


def test_direct_construction_is_validated_too():
    with pytest.raises(ConfigError, match="shannon_k"):
        SafetyLimits(shannon_k=2.0)


def test_file_with_safety_table(tmp_path):
    p = tmp_path / "limits.toml"
    p.write_text("[safety]\nshannon_k = 1.4\nrecovery_cycles = 4\n")
    lim = load_limits_file(p)
    assert lim.shannon_k == 1.4 and lim.recovery_cycles == 4


def test_file_with_top_level_keys(tmp_path):
    p = tmp_path / "limits.toml"
    p.write_text("charge_density_max_uc_per_cm2 = 25.0\n")
    assert load_limits_file(p).charge_density_max_uc_per_cm2 == 25.0


def test_whole_scenario_file_uses_only_its_safety_table(tmp_path):
    p = tmp_path / "scenario.toml"
    p.write_text("[scenario]\nname = 'x'\n[safety]\nshannon_k = 1.3\n")
    assert load_limits_file(p).shannon_k == 1.3


@pytest.mark.parametrize("text,match", [
    ("[safety]\nshannon_k = 1.85\n", r"limits\.toml: safety\.shannon_k = 1\.85 .*\(0, 1\.5\]"),
    ("[safety]\ncontact_area_cm2 = 0.0\n", r"limits\.toml: safety\.contact_area_cm2 = 0\.0"),
    ("[safety]\nfrequency_min_hz = 100.0\nfrequency_max_hz = 50.0\n", r"frequency_min_hz"),
    ("[safety]\ntotal_current_max_ma = 40.0\n", r"total_current_max_ma = 40\.0 .*25\.5"),
    ("[safety]\nfoo = 1\n", r"unknown key safety\.foo"),
    ("[safety\nbroken", r"not valid TOML"),
    ("safety = 3\n", r"must be a table"),
])
def test_bad_files_are_refused(tmp_path, text, match):
    p = tmp_path / "limits.toml"
    p.write_text(text)
    with pytest.raises(ConfigError, match=match):
        load_limits_file(p)


def test_missing_file(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_limits_file(tmp_path / "nope.toml")


@given(st.sampled_from(sorted(k for k in HARD_CEILINGS if k != "contact_area_cm2")),
       st.floats(-1e6, 1e6, allow_nan=False))
def test_ceiling_decides_acceptance(key, value):
    """Any single value is accepted exactly when it is inside its hard ceiling (and keeps
    the min <= max pairs ordered)."""
    from neuroloop.safety.limits import _INT_KEYS

    if key in _INT_KEYS:
        value = int(value)
    bound = HARD_CEILINGS[key]
    try:
        lim = load_limits({key: value})
    except ConfigError:
        accepted = False
    else:
        accepted = True
        assert getattr(lim, key) == value
    if not bound.contains(float(value)):
        assert not accepted
