"""``proportional``: a continuous output onto one program's envelope, dead band, saturation."""

from __future__ import annotations

import math

import numpy as np
import pytest
from control_helpers import PROGRAMS, SCHEMA, assert_inside_envelope, control, output
from hypothesis import given
from hypothesis import strategies as st

from neuroloop.control import ProportionalPolicy, check_control, make_policy
from neuroloop.decoders import OutputSchema
from neuroloop.errors import ConfigError
from neuroloop.stimulation.command import PROGRAM_OFF

PROG = PROGRAMS.get(1)  # left_hip_flexion, envelope [1.0, 3.5] mA
MARGIN = SCHEMA.index("state_margin")


def _policy(**over: object) -> ProportionalPolicy:
    params: dict[str, object] = {"output": "state_margin", "program": "left_hip_flexion",
                                 "input_range": [0.2, 0.8], "dead_band": 0.1}
    params.update(over)
    params = {k: v for k, v in params.items() if v is not None}
    pol = make_policy(control("proportional", **params), PROGRAMS, SCHEMA, decoder="dec.npz")
    assert isinstance(pol, ProportionalPolicy)
    return pol


def _margin(v: float, state: int = 1, valid: bool = True) -> object:
    vals = [0.5, 0.5, 0.5]
    vals[MARGIN] = v
    return output(state, 0.9, valid, tuple(vals))


def _amp(req: object) -> float:
    return float(-req.amplitude_ma[req.amplitude_ma < 0].sum())  # type: ignore[attr-defined]


def test_linear_between_lo_and_hi() -> None:
    pol = _policy()
    lo, hi = 0.2, 0.8
    amin, amax = PROG.amplitude_min_ma, PROG.amplitude_max_ma
    for v in (0.31, 0.35, 0.5, 0.65, 0.79):
        req = pol.step(_margin(v), 0, 1)
        assert req.program_id == 1
        expected = amin + (v - lo) / (hi - lo) * (amax - amin)
        assert _amp(req) == pytest.approx(expected, rel=1e-12)
        assert_inside_envelope(req, PROGRAMS)
    assert pol.amplitude_ma(0.5) < pol.amplitude_ma(0.6) < pol.amplitude_ma(0.7)


def test_dead_band_is_off_below_lo_plus_dead_band() -> None:
    pol = _policy()
    for v in (-5.0, 0.0, 0.2, 0.25, 0.2999):
        req = pol.step(_margin(v), 0, 2)
        assert req.is_off and req.program_id == PROGRAM_OFF and req.cycle == 2
    req = pol.step(_margin(0.2 + 0.1), 0, 3)  # lo + dead_band: the first value that is on
    assert req.program_id == 1
    assert _amp(req) == pytest.approx(PROG.amplitude_min_ma + (0.1 / 0.6) * 2.5)


def test_without_dead_band_lo_gives_the_minimum() -> None:
    pol = _policy(dead_band=None)
    assert _amp(pol.step(_margin(0.2), 0, 0)) == pytest.approx(PROG.amplitude_min_ma)
    assert pol.step(_margin(0.19), 0, 0).is_off


@pytest.mark.parametrize("v", [0.8, 0.81, 1.0, 1e6, 1e308, math.inf])
def test_saturates_at_hi(v: float) -> None:
    req = _policy().step(_margin(v), 0, 0)
    assert req.program_id == 1 and _amp(req) == pytest.approx(PROG.amplitude_max_ma)
    assert_inside_envelope(req, PROGRAMS)


@pytest.mark.parametrize("v", [math.nan, -math.inf, -1e308])
def test_nan_and_minus_inf_are_off(v: float) -> None:
    assert _policy().step(_margin(v), 0, 0).is_off


def test_invalid_output_is_off_whatever_its_value() -> None:
    assert _policy().step(_margin(0.7, valid=False), 0, 0).is_off


def test_states_gate_the_program() -> None:
    pol = _policy(states=["left_hip_flexion", "right_hip_flexion"])
    assert pol.step(_margin(0.7, state=1), 0, 0).program_id == 1
    assert pol.step(_margin(0.7, state=2), 0, 0).program_id == 1
    for s in (0, 3, -1, 99):
        assert pol.step(_margin(0.7, state=s), 0, 0).is_off


@given(lo=st.floats(-1e6, 1e6), width=st.floats(1e-6, 1e6), db=st.floats(0, 0.999),
       v=st.floats(allow_nan=True, allow_infinity=True))
def test_any_range_any_value_stays_in_the_envelope(lo: float, width: float, db: float,
                                                    v: float) -> None:
    hi = lo + width
    if not lo < hi:
        return
    pol = _policy(input_range=[lo, hi], dead_band=db * (hi - lo))
    req = pol.step(_margin(v), 0, 0)
    assert_inside_envelope(req, PROGRAMS)
    if not v >= lo + db * (hi - lo):
        assert req.is_off


def test_another_output_and_program() -> None:
    pol = _policy(output="movement_probability", program="right_ankle_dorsiflexion",
                  input_range=[0.5, 1.0], dead_band=0.0)
    vals = np.full(3, 0.0)
    vals[SCHEMA.index("movement_probability")] = 1.0
    req = pol.step(output(0, 0.2, True, tuple(vals)), 0, 0)
    prog = PROGRAMS.get(6)
    assert req.program_id == 6 and _amp(req) == pytest.approx(prog.amplitude_max_ma)
    assert pol.required_outputs == ("movement_probability",)


@pytest.mark.parametrize(("over", "pattern"), [
    ({"input_range": [0.8, 0.2]}, r"control.input_range = \[0.8, 0.2\] is inverted"),
    ({"input_range": [0.5, 0.5]}, r"control.input_range = \[0.5, 0.5\] is inverted or empty"),
    ({"input_range": [0.2]}, r"control.input_range = \[0.2\] must be \[lo, hi\]"),
    ({"input_range": [0.2, math.nan]}, r"control.input_range .* must be \[lo, hi\]"),
    ({"input_range": [-1e308, 1e308]}, r"control.input_range .* spans more than a float"),
    ({"dead_band": 0.7}, r"control.dead_band = 0.7 leaves nothing of input_range"),
    ({"dead_band": -0.1}, r"control.dead_band = -0.1"),
    ({"program": "rest"}, r"control.program = 'rest' is not an intention with a stimulation "
                          r"program; use one of: left_hip_flexion"),
    ({"program": "fly"}, r"control.program = 'fly' is not an intention"),
    ({"program": None}, r"missing key control.program"),
    ({"output": None}, r"missing key control.output"),
    ({"output": "Beta Power"}, r"control.output = 'Beta Power' is not an output name"),
    ({"output": 3}, r"control.output = 3 is not an output name"),
    ({"states": ["fly"]}, r"control.states = \['fly'\] must list distinct intentions"),
    ({"states": []}, r"control.states = \[\] must list distinct intentions"),
    ({"gain": 2.0}, r"unknown key control.gain"),
])
def test_bad_settings_are_one_line_config_errors(over: dict[str, object],
                                                 pattern: str) -> None:
    with pytest.raises(ConfigError, match=r"^test.toml: .*" + pattern) as info:
        _policy(**over)
    assert "\n" not in str(info.value)


def test_settings_are_checked_without_a_decoder() -> None:
    with pytest.raises(ConfigError, match="inverted"):
        check_control(control("proportional", output="state_margin", program="left_hip_flexion",
                              input_range=[1, 0]), PROGRAMS)


def test_an_output_the_decoder_lacks_names_both() -> None:
    with pytest.raises(ConfigError) as info:
        _policy(output="beta_power_db")
    msg = str(info.value)
    assert "\n" not in msg
    assert msg == ("test.toml: control.output = 'beta_power_db' is not an output of dec.npz, "
                   "which outputs confidence [1], state_margin [1], movement_probability [1]; "
                   "set control.output to one of those or use a decoder that produces "
                   "beta_power_db")


def test_a_decoder_without_continuous_outputs() -> None:
    bare = OutputSchema(SCHEMA.state_names)
    with pytest.raises(ConfigError, match="which outputs no continuous outputs"):
        make_policy(control("proportional", output="state_margin", program="left_hip_flexion",
                            input_range=[0, 1]), PROGRAMS, bare)
