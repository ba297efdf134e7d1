"""Invariant 19 in the supervisor: whatever the requests and the clock, the summed cathodic
current it emits rises no faster than ``ramp_up_max_ma_per_s`` and never within
``increase_blanking_s`` of its last fall (checked by the independent monitor and oracle)."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from safety_monitor import Monitor

from neuroloop.safety import SafetyLimits
from neuroloop.safety import reasons as R
from neuroloop.stimulation.command import StimCommand
from neuroloop.stimulation.electrodes import dbs_3389
from neuroloop.stimulation.programs import ProgramSet, StimProgram

ARRAY = dbs_3389()
PROG = StimProgram.from_contacts(ARRAY, 1, "beta_burst", {"C1": 1.0}, {}, 130.0, 60.0,
                                 (0.0, 3.0))
PROGRAMS = ProgramSet(ARRAY, ("rest", "beta_burst"), (PROG,))


def _request(amp: float) -> StimCommand:
    req = StimCommand.off(4)
    req.case_ma = PROG.contact_currents(amp, req.amplitude_ma)
    req.pulse_width_us, req.frequency_hz = 60.0, 130.0
    req.interphase_gap_us = PROG.interphase_gap_us
    req.program_id = 1 if amp > 0 else -1
    return req


@settings(max_examples=150)
@given(ramp=st.floats(0.01, 20.0), blank=st.floats(0.0, 3.0),
       steps=st.lists(st.tuples(st.floats(0.0, 3.0), st.integers(1, 400_000_000)),
                      min_size=1, max_size=60))
def test_supervisor_obeys_ramp_and_blanking(ramp, blank, steps) -> None:
    limits = SafetyLimits(ramp_up_max_ma_per_s=ramp, increase_blanking_s=blank)
    m = Monitor(limits, ARRAY, PROGRAMS, 0.1)
    m.arm()
    for amp, dt in steps:
        m.step(_request(amp), dt_ns=dt)
    m.check()


def test_the_rules_act_and_report_once_per_episode() -> None:
    m = Monitor(SafetyLimits(ramp_up_max_ma_per_s=1.0, increase_blanking_s=1.0), ARRAY,
                PROGRAMS, 0.1)
    m.arm()
    total = [float(-m.step(_request(3.0)).amplitude_ma.clip(max=0).sum()) for _ in range(10)]
    assert np.allclose(np.diff(total), 0.1)  # 1 mA/s at 100 ms steps (not 10 mA/s slew)
    m.step(_request(0.5))                   # a fall
    held = [float(-m.step(_request(3.0)).amplitude_ma.clip(max=0).sum()) for _ in range(9)]
    assert np.allclose(held, 0.5)           # blanked for 1 s
    assert float(-m.step(_request(3.0)).amplitude_ma.clip(max=0).sum()) > 0.5
    # one event per episode: ramp, blanking, then the ramp again after the blanking
    assert m.sup.counters()[R.RAMP_RATE] == 2 and m.sup.counters()[R.BLANKING] == 1
    m.check()
