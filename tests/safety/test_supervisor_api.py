"""The supervisor's contract with the loop: never raises, no allocation and no JIT compile
on the normal path, events with reason/contact/requested/allowed, counters, time in state,
and defaults that let the bsi programs run untouched."""

from __future__ import annotations

import math
import tracemalloc

import numpy as np
import pytest

from neuroloop._jit import compiled_signature_count
from neuroloop.errors import ConfigError
from neuroloop.safety import SafetyLimits, SafetySupervisor, SupervisorState, validate
from neuroloop.safety import _kernels as K
from neuroloop.safety import reasons as R
from neuroloop.stimulation.command import PROGRAM_OFF, StimCommand
from neuroloop.stimulation.electrodes import paddle_5_6_5
from neuroloop.stimulation.programs import ProgramSet, StimProgram

S = SupervisorState
N = 16
T = 100_000_000


def make(limits=None, **kw):
    arr = paddle_5_6_5()
    bip = StimProgram.from_contacts(arr, 1, "hip", {"E0": 0.5, "E1": 0.5}, {"E5": 1.0},
                                    40.0, 300.0, (1.0, 3.5))
    mono = StimProgram.from_contacts(arr, 2, "knee", {"E2": 1.0}, {}, 40.0, 300.0, (1.0, 3.0))
    ps = ProgramSet(arr, ("rest", "hip", "knee"), (bip, mono))
    sup = SafetySupervisor(limits or SafetyLimits(), arr, ps, cycle_period_s=0.1, **kw)
    return sup, ps


def request(ps, pid, amp):
    p = ps.get(pid)
    r = StimCommand.off(N)
    r.case_ma = p.contact_currents(amp, r.amplitude_ma)
    r.pulse_width_us, r.frequency_hz, r.interphase_gap_us = (p.pulse_width_us, p.frequency_hz,
                                                             p.interphase_gap_us)
    r.program_id = pid
    return r


def run(sup, req, n, t0=0, **kw):
    out, evs = None, []
    for k in range(n):
        now = t0 + (k + 1) * T
        out, ev = sup.step(req, now, input_ns=now, **kw)
        evs.extend(ev)
    return out, evs


def test_nan_request_gives_zero_and_an_event_and_the_loop_goes_on():
    sup, ps = make()
    sup.arm(0)
    run(sup, request(ps, 1, 2.0), 5)
    bad = request(ps, 1, 2.0)
    bad.amplitude_ma[:] = math.nan
    out, ev = sup.step(bad, 6 * T, input_ns=6 * T)
    assert out.is_off and np.all(np.isfinite(out.amplitude_ma))
    assert [e.reason for e in ev] == [R.NONFINITE]
    out, ev = run(sup, request(ps, 1, 2.0), 3, t0=6 * T)
    assert not out.is_off  # valid input again: stimulation resumes (from zero, slew-limited)


@pytest.mark.parametrize("bad", [
    None, 3, "stim", object(),
    StimCommand(np.zeros(3)), StimCommand(np.zeros((16, 2))),
    StimCommand(np.array([None] * 16)), StimCommand(np.ones(16, dtype=np.complex128)),
    StimCommand(np.zeros(16), program_id=None),  # type: ignore[arg-type]
    StimCommand(np.zeros(16), pulse_width_us="wide"),  # type: ignore[arg-type]
    StimCommand(np.full(16, 1e308), 300.0, 40.0, 50.0, 1, 0, 1e308),
    StimCommand(np.full(16, -1e308), 1e308, 1e308, -1e308, 1, 0, math.inf, 7),
    StimCommand(np.zeros(16), program_id=2**80),
])
def test_bad_requests_never_raise(bad):
    sup, ps = make()
    sup.arm(0)
    run(sup, request(ps, 1, 2.0), 3)
    out, ev = sup.step(bad, 4 * T, input_ns=4 * T)
    assert np.all(np.isfinite(out.amplitude_ma))
    assert validate(out, sup.limits, sup.array, programs=ps) == []
    assert sup.state in (S.ARMED, S.STIMULATING, S.HOLD)


def test_normal_path_allocates_nothing_and_compiles_nothing():
    sup, ps = make()
    sup.warmup()
    sup.arm(0)
    req = request(ps, 1, 2.5)
    run(sup, req, 50)
    counts = {f: compiled_signature_count(f) for f in (K.supervise, K.request_finite)}
    tracemalloc.start()
    t0 = 50 * T
    base = tracemalloc.get_traced_memory()[0]
    for k in range(1000):
        now = t0 + (k + 1) * T
        out, ev = sup.step(req, now, input_ns=now, confidence=0.9)
        assert len(ev) == 0
    grown = tracemalloc.get_traced_memory()[0] - base
    tracemalloc.stop()
    assert grown < 4096, f"{grown} bytes kept after 1000 steps"
    assert {f: compiled_signature_count(f) for f in counts} == counts
    assert not out.is_off


def test_empty_events_are_a_shared_tuple():
    sup, ps = make()
    sup.arm(0)
    run(sup, request(ps, 1, 2.0), 5)
    _, ev1 = sup.step(request(ps, 1, 2.0), 6 * T, input_ns=6 * T)
    _, ev2 = sup.step(request(ps, 1, 2.0), 7 * T, input_ns=7 * T)
    assert ev1 is ev2 and len(ev1) == 0


def test_warmup_compiles_everything_without_touching_state():
    sup, ps = make()
    sup.warmup()
    assert sup.state == S.DISARMED
    assert compiled_signature_count(K.supervise) >= 1
    assert sup.output.is_off and sup.dose_used_uc(0) == 0.0


def test_shannon_event_names_contact_requested_and_allowed_once():
    lim = SafetyLimits()
    arr = paddle_5_6_5()
    # monopolar on E2 at 900 us: 3 mA gives 2.7 uC > 1.38 uC (k = 1.5, 0.06 cm^2)
    hot = StimProgram.from_contacts(arr, 2, "knee", {"E2": 1.0}, {}, 40.0, 900.0, (1.0, 3.0))
    ps = ProgramSet(arr, ("rest", "hip", "knee"), (hot,))
    sup = SafetySupervisor(lim, arr, ps, cycle_period_s=0.1, strict_programs=False)
    sup.arm(0)
    out, ev = run(sup, request(ps, 2, 3.0), 10)
    sh = [e for e in ev if e.reason == R.SHANNON]
    assert len(sh) == 1                 # edge-triggered: one event for the episode
    e = sh[0]
    assert e.contact == 2
    assert e.requested == pytest.approx(2.7)
    assert e.allowed == pytest.approx(lim.shannon_q_max_uc(0.06))
    assert sup.limit_cycles()[R.SHANNON] == 10
    assert sup.counters()[R.SHANNON] == 1
    q = abs(out.amplitude_ma[2]) * out.pulse_width_us / 1000
    assert q == pytest.approx(lim.shannon_q_max_uc(0.06), rel=1e-9)


def test_request_cannot_change_the_programs_pulse_parameters():
    sup, ps = make()
    sup.arm(0)
    req = request(ps, 1, 2.0)
    req.pulse_width_us, req.frequency_hz, req.interphase_gap_us = 1.0e4, 1.0e4, 0.0
    out, ev = run(sup, req, 5)
    assert (out.pulse_width_us, out.frequency_hz, out.interphase_gap_us) == (300.0, 40.0, 50.0)
    pat = [e for e in ev if e.reason == R.PROGRAM_PATTERN]
    assert len(pat) == 1 and pat[0].requested == 1.0e4 and pat[0].allowed == 300.0


def test_rest_request_stops_at_once_and_returns_to_armed():
    sup, ps = make()
    sup.arm(0)
    out, _ = run(sup, request(ps, 1, 3.0), 5)
    assert sup.state == S.STIMULATING
    out, _ = sup.step(StimCommand.off(N), 6 * T, input_ns=6 * T)
    assert out.is_off and out.program_id == PROGRAM_OFF and sup.state == S.ARMED


def test_open_contact_is_never_driven_and_program_rebalanced():
    sup, ps = make()
    sup.arm(0)
    z = np.full(N, 1000.0)
    z[0] = 1e6
    ev = sup.report_impedance(z, 0)
    assert [(e.reason, e.contact) for e in ev] == [(R.IMPEDANCE_REPORT, 0)]
    out, _ = run(sup, request(ps, 1, 3.0), 10)
    assert out.amplitude_ma[0] == 0.0
    assert out.amplitude_ma[1] < 0.0
    assert out.amplitude_ma[5] == pytest.approx(-out.amplitude_ma[1])
    assert validate(out, sup.limits, sup.array, impedance_ohm=z, programs=ps) == []
    # a good report puts it back
    sup.report_impedance(np.full(N, 1000.0), 11 * T)
    out, _ = run(sup, request(ps, 1, 3.0), 10, t0=11 * T)
    assert out.amplitude_ma[0] < 0.0


def test_malformed_impedance_report_blocks_everything():
    sup, ps = make()
    sup.arm(0)
    sup.report_impedance(np.ones(3), 0)
    out, _ = run(sup, request(ps, 1, 3.0), 5)
    assert out.is_off
    assert sup.blocked_contacts.all()


def test_internal_error_latches_fault(monkeypatch):
    sup, ps = make()
    sup.arm(0)

    def boom(*a):
        raise RuntimeError("kernel exploded")

    monkeypatch.setattr(K, "supervise", boom)
    out, ev = sup.step(request(ps, 1, 2.0), T, input_ns=T)
    assert out.is_off and sup.state == S.FAULT
    assert ev[0].reason == R.INTERNAL_ERROR and "kernel exploded" in ev[0].detail


def test_clock_going_backwards_is_an_event_not_a_crash():
    sup, ps = make()
    sup.arm(10 * T)
    out, ev = sup.step(request(ps, 1, 2.0), 5 * T, input_ns=5 * T)
    assert R.CLOCK_BACKWARDS in [e.reason for e in ev]
    assert validate(out, sup.limits, sup.array) == []


def test_time_in_state_and_counters():
    sup, ps = make()
    sup.arm(0)
    run(sup, request(ps, 1, 2.0), 10)
    sup.estop(10 * T)
    run(sup, request(ps, 1, 2.0), 5, t0=10 * T)
    tis = sup.time_in_state_ns()
    assert sum(tis.values()) == 15 * T
    # time between two calls belongs to the state held during it
    assert tis["ARMED"] == T and tis["STIMULATING"] == 9 * T and tis["ESTOP"] == 5 * T
    c = sup.counters()
    assert c[R.ARM] == 1 and c[R.ESTOP] == 1 and c[R.LATCHED] == 1


def test_deadline_misses_latch_fault_after_k():
    lim = SafetyLimits(deadline_miss_limit=3)
    sup, ps = make(lim)
    sup.arm(0)
    run(sup, request(ps, 1, 2.0), 5)
    out, ev = run(sup, request(ps, 1, 2.0), 2, t0=5 * T, deadline_missed=True)
    assert sup.state == S.STIMULATING
    run(sup, request(ps, 1, 2.0), 1, t0=7 * T)  # a good cycle resets the count
    run(sup, request(ps, 1, 2.0), 2, t0=8 * T, deadline_missed=True)
    assert sup.state == S.STIMULATING
    out, ev = run(sup, request(ps, 1, 2.0), 1, t0=10 * T, deadline_missed=True)
    assert sup.state == S.FAULT and out.is_off
    assert R.DEADLINE_FAULT in [e.reason for e in ev]


def test_program_beyond_limits_is_refused_at_construction():
    arr = paddle_5_6_5()
    p = StimProgram.from_contacts(arr, 1, "hot", {"E0": 1.0}, {"E5": 1.0}, 40.0, 500.0,
                                  (1.0, 6.0))  # 6 mA x 500 us = 3 uC > 1.38 uC
    ps = ProgramSet(arr, ("rest", "hot"), (p,))
    with pytest.raises(ConfigError) as exc:
        SafetySupervisor(SafetyLimits(), arr, ps, cycle_period_s=0.1)
    assert "Shannon" in str(exc.value) and "\n" not in str(exc.value)
    SafetySupervisor(SafetyLimits(), arr, ps, cycle_period_s=0.1, strict_programs=False)


@pytest.mark.parametrize("period", [0.0, -1.0, math.nan, math.inf])
def test_bad_cycle_period(period):
    arr = paddle_5_6_5()
    ps = ProgramSet(arr, ("rest",), ())
    with pytest.raises(ValueError, match="cycle_period_s"):
        SafetySupervisor(SafetyLimits(), arr, ps, cycle_period_s=period)


def test_bsi_programs_run_untouched_with_default_limits():
    """The shipped bsi scenario passes the strict program check; each program reaches its
    minimum amplitude within 2 cycles of ~100 ms, and after the slew ramp the mapper's
    request at full confidence goes through unchanged."""
    from neuroloop.config import load_scenario
    from neuroloop.safety import load_limits
    from neuroloop.stimulation.programs import build_program_set

    sc = load_scenario("bsi")
    ps = build_program_set(sc.stimulation, sc.intention_names)
    hop_ns = int(sc.hop_s * 1e9)
    for p in ps:
        sup = SafetySupervisor(load_limits(sc.safety), ps.array, ps, cycle_period_s=sc.hop_s)
        sup.arm(0)
        req = request(ps, p.program_id, p.amplitude_max_ma)
        outs = [sup.step(req, (k + 1) * hop_ns, input_ns=(k + 1) * hop_ns)[0].copy()
                for k in range(6)]
        total = [float(np.sum(np.clip(-o.amplitude_ma, 0, None))) for o in outs]
        assert total[1] >= p.amplitude_min_ma - 1e-9
        np.testing.assert_allclose(outs[-1].amplitude_ma, req.amplitude_ma, rtol=1e-9,
                                   atol=1e-12)
        assert outs[-1].pulse_width_us == p.pulse_width_us
        assert sup.counters().get(R.SHANNON, 0) == 0


def test_slew_credit_starts_after_the_arm_guard():
    """The first steps after ARM get credit only from ARM + guard: a device's slew limit counts
    from when its ARM arrives, and the device refuses (never clamps) a host that runs ahead."""
    from neuroloop.safety.supervisor import ARM_SLEW_GUARD_NS

    sup, ps = make()
    t_arm = 5 * T
    sup.arm(t_arm)
    req = request(ps, 1, 3.5)
    out, _ = sup.step(req, t_arm + ARM_SLEW_GUARD_NS // 2, input_ns=t_arm, decoder_valid=True,
                      confidence=1.0, deadline_missed=False)
    assert out.is_off  # inside the guard: no credit yet
    t = t_arm + ARM_SLEW_GUARD_NS + 30_000_000  # 30 ms of credit
    out, _ = sup.step(req, t, input_ns=t, decoder_valid=True, confidence=1.0,
                      deadline_missed=False)
    rate = sup.limits.slew_up_ma_per_s
    assert np.abs(out.amplitude_ma).max() <= rate * 0.030 + 1e-9
    assert np.abs(out.amplitude_ma).max() > 0
