"""Hypothesis strategies for the safety tests: limits inside the hard ceilings, and program
sets on the 5-6-5 paddle (some of them beyond the limits, so that every interlock is used)."""

from __future__ import annotations

import math

import numpy as np
from hypothesis import strategies as st

from neuroloop.safety import SafetyLimits
from neuroloop.stimulation.electrodes import ElectrodeArray, paddle_5_6_5
from neuroloop.stimulation.programs import ProgramSet, StimProgram

N_CONTACTS = 16


def _fl(lo: float, hi: float) -> st.SearchStrategy[float]:
    return st.floats(lo, hi, allow_nan=False, allow_infinity=False)


def _or(value: float, lo: float, hi: float) -> st.SearchStrategy[float]:
    """Half the time ``value`` (a default or a ceiling), else anything in [lo, hi]."""
    return st.one_of(st.just(value), _fl(lo, hi))


@st.composite
def limits_strategy(draw: st.DrawFn) -> SafetyLimits:
    """Any limits inside the hard ceilings (small counts and windows, so things happen)."""
    pw_min = draw(_fl(20.0, 300.0))
    pw_max = draw(_fl(pw_min, 1000.0))
    f_min = draw(_fl(2.0, 60.0))
    f_max = draw(_fl(f_min, 1200.0))
    ipg_min = draw(_fl(0.0, 50.0))
    ipg_max = draw(_fl(ipg_min, 500.0))
    z_min = draw(_fl(50.0, 1000.0))
    z_max = draw(_fl(z_min, 3500.0))
    window_s = draw(_fl(1.0, 5.0))
    return SafetyLimits(
        shannon_k=draw(_or(1.5, 0.8, 1.5)),
        charge_density_max_uc_per_cm2=draw(_or(30.0, 2.0, 30.0)),
        charge_per_phase_max_uc=draw(_or(18.0, 0.2, 18.0)),
        contact_current_max_ma=draw(_or(12.7, 0.5, 25.5)),
        total_current_max_ma=draw(_or(20.0, 0.5, 25.5)),
        pulse_width_min_us=pw_min, pulse_width_max_us=pw_max,
        frequency_min_hz=f_min, frequency_max_hz=f_max,
        interphase_gap_min_us=ipg_min, interphase_gap_max_us=ipg_max,
        slew_up_ma_per_s=draw(_or(10.0, 0.5, 10.0)),
        slew_down_ma_per_s=draw(st.sampled_from([0.05, 1.0, 10.0, 100.0, 1000.0])),
        stale_input_ms=draw(_fl(5.0, 300.0)),
        fallback_cycles=draw(st.integers(1, 5)),
        recovery_cycles=draw(st.integers(1, 5)),
        min_confidence=draw(_fl(0.0, 0.8)),
        deadline_miss_limit=draw(st.integers(1, 5)),
        impedance_min_ohm=z_min, impedance_max_ohm=z_max,
        compliance_voltage_v=draw(_or(12.0, 0.5, 20.0)),
        dose_window_s=window_s,
        # the budget rate never exceeds the built-in 500 uC/s
        dose_budget_uc=draw(st.one_of(_fl(0.5, 50.0), _fl(50.0, 500.0 * window_s))),
        contact_area_cm2=draw(st.one_of(st.none(), _fl(0.005, 0.3))),
        ramp_up_max_ma_per_s=draw(_or(255.0, 0.02, 20.0)),
        increase_blanking_s=draw(_or(0.0, 0.0, 2.0)),
        burst_max_s=draw(st.one_of(st.just(604800.0), _fl(0.05, 2.0))),
        daily_on_max_s=draw(st.one_of(st.just(86400.0), _fl(0.05, 5.0))),
    )


@st.composite
def program_set_strategy(draw: st.DrawFn, limits: SafetyLimits
                         ) -> tuple[ElectrodeArray, ProgramSet]:
    """1-6 programs on a 5-6-5 paddle of random contact area.

    Frequency, pulse width and gap are drawn near the limits' ranges (sometimes outside),
    envelopes up to 1.5x what the limits allow, so that clamping happens.
    """
    array = paddle_5_6_5(draw(_or(0.06, 0.005, 0.3)))
    n_programs = draw(st.integers(1, 6))
    n_intentions = n_programs + 1 + draw(st.integers(0, 2))
    names = tuple(["rest"] + [f"i{k}" for k in range(1, n_intentions)])
    ids = draw(st.permutations(list(range(1, n_intentions))))[:n_programs]
    programs = []
    for pid in ids:
        contacts = draw(st.permutations(list(range(N_CONTACTS))))
        n_cath = draw(st.integers(1, 3))
        n_an = draw(st.integers(0, 2))
        cath = {int(c): draw(_fl(0.1, 1.0)) for c in contacts[:n_cath]}
        an = {int(c): draw(_fl(0.1, 1.0)) for c in contacts[n_cath:n_cath + n_an]}
        pw = draw(_fl(max(10.0, limits.pulse_width_min_us * 0.8),
                      min(1200.0, limits.pulse_width_max_us * 1.2)))
        ipg = draw(_fl(0.0, limits.interphase_gap_max_us * 1.1))
        f = draw(_fl(max(1.0, limits.frequency_min_hz * 0.8), limits.frequency_max_hz * 1.2))
        hi = draw(st.one_of(_fl(0.0, 4.0), _fl(0.0, 30.0)))
        lo = draw(_fl(0.0, hi)) if hi > 0 else 0.0
        programs.append(StimProgram.from_contacts(array, pid, f"i{pid}", cath, an, f, pw,
                                                  (lo, hi), ipg))
    return array, ProgramSet(array, names, tuple(programs))


def program_request(program: StimProgram, amplitude_ma: float, out: np.ndarray) -> float:
    """The mapper's request for ``program`` at ``amplitude_ma``: fills ``out``, returns case."""
    return program.contact_currents(amplitude_ma, out)


ADVERSARIAL_FLOATS = st.sampled_from([math.nan, math.inf, -math.inf, 1e308, -1e308, 1e6,
                                      -1e6, 0.0, -0.0, 5e-324, 1e-300])
