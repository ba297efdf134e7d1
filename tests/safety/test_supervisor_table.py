"""Exhaustive (state x event) test of the supervisor state machine.

Every state is reached the documented way, every event is applied to it, and the next state
must be the one in ``EXPECTED`` (written from docs/safety.md). In the zero-output states the
command must be off; refused operations must raise an event saying so.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from neuroloop.safety import SafetyLimits, SafetySupervisor, SupervisorState
from neuroloop.safety import reasons as R
from neuroloop.stimulation.command import StimCommand
from neuroloop.stimulation.electrodes import paddle_5_6_5
from neuroloop.stimulation.programs import ProgramSet, StimProgram

S = SupervisorState
N = 16
PERIOD_NS = 100_000_000
# N = M = K = 2 so that "one" and "N/M/K in a row" differ; a slow slew-down so that one
# invalid cycle ramps down instead of reaching zero at once.
LIMITS = SafetyLimits(fallback_cycles=2, recovery_cycles=2, deadline_miss_limit=2,
                      slew_down_ma_per_s=0.01)


class Rig:
    def __init__(self) -> None:
        arr = paddle_5_6_5()
        prog = StimProgram.from_contacts(arr, 1, "hip", {"E0": 0.5, "E1": 0.5}, {"E5": 1.0},
                                         40.0, 300.0, (1.0, 3.0))
        self.ps = ProgramSet(arr, ("rest", "hip"), (prog,))
        self.sup = SafetySupervisor(LIMITS, arr, self.ps, cycle_period_s=0.1)
        self.now = 0
        self.req_on = StimCommand.off(N)
        self.req_on.case_ma = prog.contact_currents(2.0, self.req_on.amplitude_ma)
        self.req_on.pulse_width_us, self.req_on.frequency_hz = 300.0, 40.0
        self.req_on.interphase_gap_us, self.req_on.program_id = 50.0, 1
        self.req_rest = StimCommand.off(N)
        self.req_nan = self.req_on.copy()
        self.req_nan.amplitude_ma[:] = math.nan
        self.events: list = []
        self.out: StimCommand | None = None

    def tick(self) -> int:
        self.now += PERIOD_NS
        return self.now

    def step(self, req: StimCommand, **kw: object) -> None:
        self.out, ev = self.sup.step(req, self.tick(), input_ns=self.now, **kw)
        self.events.extend(ev)


# ---------------------------------------------------------------- how to reach each state
def reach(state: S) -> Rig:
    r = Rig()
    if state == S.DISARMED:
        pass
    elif state == S.ARMED:
        r.sup.arm(r.tick())
    elif state == S.STIMULATING:
        r.sup.arm(r.tick())
        for _ in range(3):
            r.step(r.req_on)
    elif state == S.HOLD:
        r.sup.arm(r.tick())
        r.step(r.req_on)
        r.sup.report_heartbeat_lost(r.tick())
    elif state == S.FAULT:
        r.sup.arm(r.tick())
        r.sup.report_device_fault(r.tick(), "test")
    elif state == S.ESTOP:
        r.sup.arm(r.tick())
        r.step(r.req_on)
        r.sup.estop(r.tick())
    assert r.sup.state == state
    r.events.clear()
    return r


# ---------------------------------------------------------------- events
def ev_arm(r):
    r.events += r.sup.arm(r.tick())


def ev_rearm(r):
    r.events += r.sup.rearm(r.tick())


def ev_disarm(r):
    r.events += r.sup.disarm(r.tick())


def ev_estop(r):
    r.events += r.sup.estop(r.tick())


def ev_heartbeat_lost(r):
    r.events += r.sup.report_heartbeat_lost(r.tick())


def ev_device_fault(r):
    r.events += r.sup.report_device_fault(r.tick(), "x")


def ev_impedance_open(r):
    r.events += r.sup.report_impedance(np.full(N, 1e6), r.tick())


def ev_step_on(r):
    r.step(r.req_on)


def ev_step_rest(r):
    r.step(r.req_rest)


def ev_step_invalid(r):
    r.step(r.req_on, decoder_valid=False)


def ev_step_invalid_n(r):
    for _ in range(LIMITS.fallback_cycles):
        r.step(r.req_on, decoder_valid=False)


def ev_step_stale_n(r):
    for _ in range(LIMITS.fallback_cycles):
        r.sup.step(r.req_on, r.tick(), input_ns=r.now - 10**9)


def ev_step_low_confidence_n(r):
    for _ in range(LIMITS.fallback_cycles):
        r.step(r.req_on, confidence=0.0)


def ev_step_nan(r):
    r.step(r.req_nan)


def ev_step_valid_m(r):
    for _ in range(LIMITS.recovery_cycles):
        r.step(r.req_on)


def ev_deadline_one(r):
    r.step(r.req_on, deadline_missed=True)


def ev_deadline_k(r):
    for _ in range(LIMITS.deadline_miss_limit):
        r.step(r.req_on, deadline_missed=True)


EVENTS = {
    "arm": ev_arm, "rearm": ev_rearm, "disarm": ev_disarm, "estop": ev_estop,
    "heartbeat_lost": ev_heartbeat_lost, "device_fault": ev_device_fault,
    "impedance_open": ev_impedance_open, "step_on": ev_step_on, "step_rest": ev_step_rest,
    "step_invalid": ev_step_invalid, "step_invalid_xN": ev_step_invalid_n,
    "step_stale_xN": ev_step_stale_n, "step_low_confidence_xN": ev_step_low_confidence_n,
    "step_nan": ev_step_nan, "step_valid_xM": ev_step_valid_m,
    "deadline_miss": ev_deadline_one, "deadline_miss_xK": ev_deadline_k,
}

D, A, ST, H, F, E = S.DISARMED, S.ARMED, S.STIMULATING, S.HOLD, S.FAULT, S.ESTOP
STATES = (D, A, ST, H, F, E)

#: EXPECTED[event] = next state for (DISARMED, ARMED, STIMULATING, HOLD, FAULT, ESTOP).
EXPECTED: dict[str, tuple[S, ...]] = {
    "arm":                    (A, A, ST, H, F, E),
    "rearm":                  (D, A, ST, H, A, A),
    "disarm":                 (D, D, D, D, F, E),
    "estop":                  (E, E, E, E, E, E),
    "heartbeat_lost":         (D, H, H, H, F, E),
    "device_fault":           (F, F, F, F, F, E),
    "impedance_open":         (D, A, ST, H, F, E),
    "step_on":                (D, ST, ST, H, F, E),
    "step_rest":              (D, A, A, H, F, E),
    "step_invalid":           (D, A, ST, H, F, E),
    "step_invalid_xN":        (D, H, H, H, F, E),
    "step_stale_xN":          (D, H, H, H, F, E),
    "step_low_confidence_xN": (D, H, H, H, F, E),
    "step_nan":               (D, A, A, H, F, E),
    "step_valid_xM":          (D, ST, ST, ST, F, E),
    "deadline_miss":          (D, ST, ST, H, F, E),
    "deadline_miss_xK":       (F, F, F, F, F, E),
}

#: Operations that must be refused with an event in these states.
REFUSED = {("arm", F): R.ARM_REFUSED, ("arm", E): R.ARM_REFUSED,
           ("disarm", F): R.DISARM_REFUSED, ("disarm", E): R.DISARM_REFUSED,
           ("rearm", D): R.REARM_REFUSED, ("rearm", A): R.REARM_REFUSED,
           ("rearm", ST): R.REARM_REFUSED, ("rearm", H): R.REARM_REFUSED}

ZERO = (D, H, F, E)


def test_table_is_complete():
    assert set(EXPECTED) == set(EVENTS)
    assert all(len(v) == len(STATES) for v in EXPECTED.values())


@pytest.mark.parametrize("state", STATES, ids=lambda s: s.name)
@pytest.mark.parametrize("event", sorted(EVENTS))
def test_transition(state, event):
    r = reach(state)
    EVENTS[event](r)
    expected = EXPECTED[event][STATES.index(state)]
    assert r.sup.state == expected, (
        f"{state.name} --{event}--> {r.sup.state.name}, expected {expected.name}")
    # the output of the next cycle follows the state: zero in every zero-output state
    out, _ = r.sup.step(r.req_on, r.tick(), input_ns=r.now)
    if r.sup.state in ZERO:
        assert out.is_off and out.program_id == -1
    refused = REFUSED.get((event, state))
    if refused:
        assert refused in [e.reason for e in r.events]
    for e in r.events:
        assert e.reason in R.REASONS
        assert isinstance(e.state, S)


def test_rearm_starts_from_zero_and_obeys_slew():
    r = reach(S.ESTOP)
    r.sup.rearm(r.tick())
    r.step(r.req_on)
    step = LIMITS.slew_up_ma_per_s * 0.1
    assert np.max(np.abs(r.out.amplitude_ma)) <= step * (1 + 1e-9)
    r.step(r.req_on)
    assert np.max(np.abs(r.out.amplitude_ma)) <= 2 * step * (1 + 1e-9)


def test_estop_output_is_zero_within_one_cycle_and_stays_zero():
    r = reach(S.STIMULATING)
    assert not r.out.is_off
    r.sup.estop(r.tick())
    for _ in range(20):
        r.step(r.req_on)
        assert r.out.is_off
        r.sup.arm(r.tick())      # arm is refused
        r.sup.disarm(r.tick())   # disarm cannot clear it
        assert r.sup.state == S.ESTOP


def test_fallback_ramp_reaches_zero_within_n_cycles():
    lim = SafetyLimits(fallback_cycles=4, slew_down_ma_per_s=0.01)
    arr = paddle_5_6_5()
    r = Rig()
    r.sup = SafetySupervisor(lim, arr, r.ps, cycle_period_s=0.1)
    r.sup.arm(r.tick())
    for _ in range(4):
        r.step(r.req_on)
    start = np.abs(r.out.amplitude_ma).max()
    mags = []
    for _ in range(4):
        r.step(r.req_on, decoder_valid=False)
        mags.append(np.abs(r.out.amplitude_ma).max())
    # linear ramp 3/4, 2/4, 1/4 of the last value, then zero and HOLD
    np.testing.assert_allclose(mags, [start * 0.75, start * 0.5, start * 0.25, 0.0],
                               rtol=1e-9, atol=1e-12)
    assert r.sup.state == S.HOLD
    reasons = [e.reason for e in r.events]
    assert R.DECODER_INVALID in reasons and R.FALLBACK in reasons
