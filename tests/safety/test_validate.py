"""The ``validate`` oracle on hand-computed cases (SAFETY.md's worked example and each limit
at and just past its boundary)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from neuroloop.safety import SafetyLimits, validate
from neuroloop.stimulation.command import PROGRAM_OFF, StimCommand
from neuroloop.stimulation.electrodes import paddle_5_6_5
from neuroloop.stimulation.programs import ProgramSet, StimProgram

N = 16
A_3389 = 0.0598  # DBS 3389 contact area, cm^2 (SAFETY.md worked example)


def bipolar(i_ma: float, pw_us: float = 1000.0, f_hz: float = 20.0, ipg_us: float = 0.0,
            cathode: int = 0, anode: int = 5) -> StimCommand:
    """-I on ``cathode``, +I on ``anode``: balanced, no case."""
    cmd = StimCommand.off(N)
    cmd.amplitude_ma[cathode] = -i_ma
    cmd.amplitude_ma[anode] = i_ma
    cmd.pulse_width_us = pw_us
    cmd.frequency_hz = f_hz
    cmd.interphase_gap_us = ipg_us
    cmd.program_id = 1
    return cmd


def reasons(violations) -> set[str]:
    return {v.reason for v in violations}


# ------------------------------------------------------------------- worked example
def test_worked_example_numbers():
    """A = 0.0598 cm^2: Q_max 1.38 uC at k = 1.5, 2.06 at k = 1.85, 1.80 at 30 uC/cm^2."""
    assert round(math.sqrt(10 ** 1.5 * A_3389), 2) == 1.38
    assert round(math.sqrt(10 ** 1.85 * A_3389), 2) == 2.06
    assert 30.0 * A_3389 == pytest.approx(1.80, abs=0.01)
    assert SafetyLimits().shannon_q_max_uc(A_3389) == pytest.approx(1.375, abs=5e-3)


def test_shannon_boundary_on_worked_example():
    arr = paddle_5_6_5(A_3389)
    lim = SafetyLimits()  # k = 1.5 -> 1.375 uC; at PW = 1000 us, I [mA] = Q [uC]
    assert validate(bipolar(1.37), lim, arr) == []
    v = validate(bipolar(1.39), lim, arr)
    assert reasons(v) == {"shannon"}
    assert {x.contact for x in v} == {0, 5}
    assert all(x.invariant == 1 for x in v)
    assert v[0].limit == pytest.approx(1.375, abs=5e-3)
    assert v[0].value == pytest.approx(1.39)


def test_density_binds_when_it_is_the_tighter_limit():
    """20 uC/cm^2 x 0.0598 cm^2 = 1.196 uC, below Shannon's 1.375 uC at k = 1.5."""
    arr = paddle_5_6_5(A_3389)
    lim = SafetyLimits(charge_density_max_uc_per_cm2=20.0)
    assert validate(bipolar(1.19), lim, arr) == []
    v = validate(bipolar(1.25), lim, arr)
    assert reasons(v) == {"charge_density"}
    assert v[0].invariant == 2
    assert v[0].value == pytest.approx(1.25 / A_3389)
    assert v[0].limit == 20.0
    assert reasons(validate(bipolar(1.4), lim, arr)) == {"shannon", "charge_density"}


def test_contact_area_override_is_used():
    arr = paddle_5_6_5(1.0)  # huge geometric area, but the override is what counts
    lim = SafetyLimits(contact_area_cm2=A_3389)
    assert reasons(validate(bipolar(1.39), lim, arr)) == {"shannon"}


def test_absolute_charge_cap():
    arr = paddle_5_6_5(0.3)
    lim = SafetyLimits(charge_per_phase_max_uc=1.0)
    assert validate(bipolar(1.0), lim, arr) == []
    assert reasons(validate(bipolar(1.2), lim, arr)) == {"charge_absolute"}


# ------------------------------------------------------------------- invariant 3
def test_contact_and_total_current():
    arr = paddle_5_6_5(1.0)
    lim = SafetyLimits(contact_current_max_ma=2.0, total_current_max_ma=3.0)
    ok = bipolar(2.0, pw_us=100.0)
    assert validate(ok, lim, arr) == []
    assert reasons(validate(bipolar(2.1, pw_us=100.0), lim, arr)) == {"contact_current"}
    cmd = StimCommand.off(N)
    cmd.amplitude_ma[[0, 1]] = -1.6
    cmd.amplitude_ma[[5, 6]] = 1.6
    cmd.pulse_width_us, cmd.frequency_hz, cmd.program_id = 100.0, 20.0, 1
    v = validate(cmd, lim, arr)
    assert reasons(v) == {"total_current"}
    assert v[0].value == pytest.approx(3.2)


@pytest.mark.parametrize("field,value,reason", [
    ("pulse_width_us", 19.0, "pulse_width"), ("pulse_width_us", 1001.0, "pulse_width"),
    ("frequency_hz", 1.9, "frequency"), ("frequency_hz", 1201.0, "frequency"),
    ("interphase_gap_us", 501.0, "interphase_gap"), ("interphase_gap_us", -1.0,
                                                      "interphase_gap"),
])
def test_parameter_ranges(field, value, reason):
    arr = paddle_5_6_5(1.0)
    cmd = bipolar(0.1, pw_us=100.0)
    setattr(cmd, field, value)
    assert reason in reasons(validate(cmd, SafetyLimits(), arr))


def test_off_command_needs_no_parameters():
    arr = paddle_5_6_5()
    assert validate(StimCommand.off(N), SafetyLimits(), arr) == []


@pytest.mark.parametrize("where", ["amp", "pulse_width_us", "frequency_hz", "case_ma"])
@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_nonfinite_is_a_violation(where, bad):
    arr = paddle_5_6_5()
    cmd = bipolar(0.5, pw_us=100.0)
    if where == "amp":
        cmd.amplitude_ma[3] = bad
    else:
        setattr(cmd, where, bad)
    v = validate(cmd, SafetyLimits(), arr)
    assert v and all(x.reason == "nonfinite" and x.invariant == 3 for x in v)


def test_wrong_shape_is_a_violation():
    arr = paddle_5_6_5()
    cmd = StimCommand(np.zeros(15))
    v = validate(cmd, SafetyLimits(), arr)
    assert [x.reason for x in v] == ["bad_request"]


# ------------------------------------------------------------------- invariants 4, 5, 6
def test_pulse_feasibility_is_strict():
    arr = paddle_5_6_5(1.0)
    lim = SafetyLimits()
    # (2 x 1000 + 500) us x 400 Hz = exactly 1 s: pulses would touch -> refused
    assert "pulse_feasibility" in reasons(validate(bipolar(0.1, 1000.0, 400.0, 500.0), lim, arr))
    assert validate(bipolar(0.1, 1000.0, 399.0, 500.0), lim, arr) == []


def test_only_symmetric_biphasic():
    arr = paddle_5_6_5()
    cmd = bipolar(0.5, pw_us=100.0)
    cmd.waveform = 1
    v = validate(cmd, SafetyLimits(), arr)
    assert reasons(v) == {"charge_balance"} and v[0].invariant == 5


def test_conservation_with_and_without_case():
    arr = paddle_5_6_5()
    lim = SafetyLimits()
    cmd = StimCommand.off(N)
    cmd.amplitude_ma[2] = -1.0
    cmd.pulse_width_us, cmd.frequency_hz, cmd.program_id = 200.0, 40.0, 2
    v = validate(cmd, lim, arr)
    assert reasons(v) == {"conservation"} and v[0].invariant == 6
    cmd.case_ma = 1.0
    assert validate(cmd, lim, arr) == []


# ------------------------------------------------------------------- invariant 7
def test_slew_limit():
    arr = paddle_5_6_5(1.0)
    lim = SafetyLimits(slew_up_ma_per_s=10.0)
    prev = StimCommand.off(N)
    assert validate(bipolar(1.0, pw_us=100.0), lim, arr, previous=prev, dt_s=0.1) == []
    v = validate(bipolar(1.01, pw_us=100.0), lim, arr, previous=prev, dt_s=0.1)
    assert reasons(v) == {"slew_up"} and v[0].invariant == 7
    # same sign: the rise is counted from the previous magnitude
    prev2 = bipolar(2.0, pw_us=100.0)
    assert validate(bipolar(3.0, pw_us=100.0), lim, arr, previous=prev2, dt_s=0.1) == []
    assert "slew_up" in reasons(validate(bipolar(3.1, pw_us=100.0), lim, arr, previous=prev2,
                                         dt_s=0.1))
    # decreases toward zero are never blocked
    assert validate(bipolar(0.1, pw_us=100.0), lim, arr, previous=prev2, dt_s=0.0) == []
    # a polarity flip counts the whole new magnitude as a rise
    flipped = bipolar(2.0, pw_us=100.0, cathode=5, anode=0)
    assert "slew_up" in reasons(validate(flipped, lim, arr, previous=prev2, dt_s=0.1))


# ------------------------------------------------------------------- invariant 8
def _programs(arr):
    p1 = StimProgram.from_contacts(arr, 1, "hip", {"E0": 1.0}, {"E5": 1.0}, 20.0, 100.0,
                                   (0.5, 2.0))
    p2 = StimProgram.from_contacts(arr, 2, "mono", {"E2": 1.0}, {}, 20.0, 100.0, (0.5, 2.0))
    return ProgramSet(arr, ("rest", "hip", "mono"), (p1, p2))


def test_envelope_and_pattern():
    arr = paddle_5_6_5(1.0)
    lim = SafetyLimits()
    ps = _programs(arr)
    assert validate(bipolar(2.0, pw_us=100.0), lim, arr, programs=ps) == []
    v = validate(bipolar(2.5, pw_us=100.0), lim, arr, programs=ps)
    assert reasons(v) == {"envelope"} and v[0].invariant == 8
    wrong_contact = bipolar(1.0, pw_us=100.0, cathode=3)
    assert reasons(validate(wrong_contact, lim, arr, programs=ps)) == {"program_pattern"}
    no_program = bipolar(1.0, pw_us=100.0)
    no_program.program_id = PROGRAM_OFF
    assert reasons(validate(no_program, lim, arr, programs=ps)) == {"unknown_program"}
    case_on_bipolar = bipolar(1.0, pw_us=100.0)
    case_on_bipolar.amplitude_ma[5] = 0.5
    case_on_bipolar.case_ma = 0.5
    assert reasons(validate(case_on_bipolar, lim, arr, programs=ps)) == {"program_pattern"}


# ------------------------------------------------------------------- invariant 13
def test_impedance_window_and_compliance():
    arr = paddle_5_6_5(1.0)
    lim = SafetyLimits(compliance_voltage_v=12.0)
    z = np.full(N, 3000.0)
    assert validate(bipolar(4.0, pw_us=100.0), lim, arr, impedance_ohm=z) == []
    v = validate(bipolar(4.1, pw_us=100.0), lim, arr, impedance_ohm=z)
    assert reasons(v) == {"compliance"} and v[0].invariant == 13
    assert v[0].value == pytest.approx(4.1 * 3.0)
    z[0] = 5000.0  # outside the 250-3500 ohm window
    assert "impedance" in reasons(validate(bipolar(0.1, pw_us=100.0), lim, arr,
                                           impedance_ohm=z))
    z[0] = math.nan  # unknown after a report: not driven
    assert "impedance" in reasons(validate(bipolar(0.1, pw_us=100.0), lim, arr,
                                           impedance_ohm=z))
    z[0] = 100.0  # short
    assert "impedance" in reasons(validate(bipolar(0.1, pw_us=100.0), lim, arr,
                                           impedance_ohm=z))


# ------------------------------------------------------------------- invariant 16
def test_dose_budget():
    arr = paddle_5_6_5(1.0)
    lim = SafetyLimits(dose_budget_uc=10.5)
    # 1 mA x 100 us = 0.1 uC per phase x 100 Hz = 10 uC/s; over 0.1 s: 1 uC
    cmd = bipolar(1.0, pw_us=100.0, f_hz=100.0)
    assert validate(cmd, lim, arr, dose_used_uc=9.5, horizon_s=0.1) == []
    v = validate(cmd, lim, arr, dose_used_uc=10.0, horizon_s=0.1)
    assert reasons(v) == {"dose"} and v[0].invariant == 16
    assert v[0].value == pytest.approx(11.0)


def test_violation_text_is_one_line():
    arr = paddle_5_6_5(A_3389)
    v = validate(bipolar(1.39), SafetyLimits(), arr)
    text = str(v[0])
    assert "\n" not in text and "invariant 1" in text and "shannon" in text


# ------------------------------------------------------------------- totality
_ANY = st.one_of(st.none(), st.floats(), st.integers(-2**70, 2**70), st.text(max_size=3),
                 st.booleans())


@given(amp=st.one_of(_ANY, st.lists(st.floats(), min_size=16, max_size=16).map(np.array),
                     st.lists(st.floats(), max_size=20).map(np.array)),
       pw=_ANY, f=_ANY, ipg=_ANY, case=_ANY, pid=_ANY, wf=_ANY)
def test_validate_never_raises(amp, pw, f, ipg, case, pid, wf):
    """The firmware simulator calls validate on whatever arrives: it must answer, not raise,
    and a command it accepts is finite."""
    arr = paddle_5_6_5()
    p1 = StimProgram.from_contacts(arr, 1, "hip", {"E0": 1.0}, {"E5": 1.0}, 20.0, 100.0,
                                   (0.5, 2.0))
    ps = ProgramSet(arr, ("rest", "hip"), (p1,))
    cmd = StimCommand(amp, pw, f, ipg, pid, 0, case, wf)  # type: ignore[arg-type]
    v = validate(cmd, SafetyLimits(), arr, previous=StimCommand.off(N), dt_s=0.1,
                 impedance_ohm=np.full(N, 1000.0), programs=ps, dose_used_uc=0.0,
                 horizon_s=0.1)
    if not v:
        assert all(math.isfinite(float(x)) for x in cmd.amplitude_ma)
        assert math.isfinite(float(cmd.pulse_width_us))
