"""The supervisor against everything at once: a Hypothesis state machine.

``@initialize`` fuzzes the limits (inside the hard ceilings), the paddle area and the program
set; rules send decoder outputs (plausible and adversarial: NaN, inf, negative, huge, wrong
shapes and dtypes, unknown program ids, random contacts, bad pulse parameters, non-zero
waveform codes), advance or stall the clock, miss deadlines, report impedances (in and out of
the window, NaN, malformed), STOP and re-arm, arm/disarm, lose the heartbeat and report
device faults. After every call the :class:`Monitor` checks the emitted command with the
independent ``validate`` oracle and the documented state machine (see safety_monitor.py).
At teardown the whole run is replayed on a fresh supervisor and must give identical commands
(invariant 17).

Profiles (tests/conftest.py): dev 50 x 30, ci 200 x 50, long 10 000 x 50 -
``HYPOTHESIS_PROFILE=long .venv/bin/pytest tests/safety`` or ``make long-safety``.
"""

from __future__ import annotations

import math

import numpy as np
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule
from safety_monitor import Monitor
from safety_strategies import ADVERSARIAL_FLOATS, limits_strategy, program_set_strategy

from neuroloop.stimulation.command import PROGRAM_OFF, StimCommand

N = 16

#: Clock steps: stall, jitter around one period, a late cycle, a long gap.
DT_FACTORS = st.sampled_from([0.0, 0.5, 0.99, 1.0, 1.0, 1.0, 1.01, 1.5, 3.0, 40.0])


class SupervisorMachine(RuleBasedStateMachine):
    monitor: Monitor

    @initialize(limits=limits_strategy(), data=st.data(),
                period_s=st.sampled_from([0.025, 0.05, 0.1007, 59 / 586]))
    def setup(self, limits, data, period_s):
        array, programs = data.draw(program_set_strategy(limits))
        self.monitor = Monitor(limits, array, programs, period_s)
        self.programs = programs
        self.request = StimCommand.off(N)
        self.monitor.arm()

    # ------------------------------------------------------------------ helpers
    def _dt(self, data, factor=None):
        f = data.draw(DT_FACTORS) if factor is None else factor
        return int(round(self.monitor.period_ns * f))

    def _step(self, request, data, **kw):
        dt = self._dt(data)
        deadline = data.draw(st.integers(0, 29), label="deadline_roll") == 0
        stale_ns = int(self.monitor.limits.stale_input_ms * 1e6)
        age = data.draw(st.sampled_from([0] * 8 + [1_000_000, None, stale_ns, stale_ns + 1,
                                                   10**12]), label="input_age_ns")
        self.monitor.step(request, dt_ns=dt, input_age_ns=age, deadline_missed=deadline, **kw)

    # ------------------------------------------------------------------ decoder outputs
    @rule(data=st.data(), n_steps=st.integers(1, 20))
    def decoder_output(self, data, n_steps):
        """What the mapper sends: a burst of cycles of one program (or rest), mostly at one
        amplitude up to 1.6x the program's maximum, with mostly valid, confident, fresh
        input."""
        progs = list(self.programs)
        req = self.request
        p = None
        if progs and data.draw(st.integers(0, 5), label="rest") != 0:
            p = data.draw(st.sampled_from(progs), label="program")
        scale = data.draw(st.floats(0.0, 1.6), label="scale")
        for _ in range(n_steps):
            if p is None:
                req.set_off()
            else:
                s = data.draw(st.one_of(st.just(scale), st.just(scale),
                                        st.floats(0.0, 1.6)), label="step_scale")
                amp = s * p.amplitude_max_ma
                req.case_ma = p.contact_currents(amp, req.amplitude_ma)
                req.pulse_width_us = p.pulse_width_us
                req.frequency_hz = p.frequency_hz
                req.interphase_gap_us = p.interphase_gap_us
                req.program_id = p.program_id if amp > 0 else PROGRAM_OFF
                req.waveform = 0
            req.cycle += 1
            valid = data.draw(st.integers(0, 19), label="invalid_roll") != 0
            confidence = data.draw(st.one_of(st.floats(0.85, 1.0), st.floats(0.85, 1.0),
                                             st.floats(0.0, 1.0)), label="confidence")
            self._step(req, data, decoder_valid=valid, confidence=confidence)

    @rule(data=st.data(), n_steps=st.integers(1, 4))
    def adversarial_request(self, data, n_steps):
        """Hostile or broken requests: anything in any field, repeated a few cycles."""
        kind = data.draw(st.sampled_from(["values", "contacts", "params", "program", "shape",
                                          "dtype", "waveform", "case"]), label="kind")
        progs = list(self.programs)
        prog = data.draw(st.sampled_from(progs), label="program")
        amp = np.zeros(N)
        case = prog.contact_currents(data.draw(st.floats(0, 30), label="amp_ma"), amp)
        pid: object = prog.program_id
        pw, f, ipg = prog.pulse_width_us, prog.frequency_hz, prog.interphase_gap_us
        waveform: object = 0
        if kind == "values":
            for c in data.draw(st.lists(st.integers(0, N - 1), min_size=1, max_size=N)):
                amp[c] = data.draw(st.one_of(ADVERSARIAL_FLOATS, st.floats(-50, 50)))
            case = data.draw(st.one_of(st.just(case), ADVERSARIAL_FLOATS))
        elif kind == "contacts":
            for c in data.draw(st.lists(st.integers(0, N - 1), min_size=1, max_size=4)):
                amp[c] += data.draw(st.floats(-10, 10))
        elif kind == "params":
            pw = data.draw(st.one_of(st.floats(0, 2000), ADVERSARIAL_FLOATS), label="pw")
            f = data.draw(st.one_of(st.floats(0, 5000), ADVERSARIAL_FLOATS), label="f")
            ipg = data.draw(st.one_of(st.floats(0, 2000), ADVERSARIAL_FLOATS), label="ipg")
        elif kind == "program":
            pid = data.draw(st.sampled_from([99, -3, 0, PROGRAM_OFF, 2**63 - 1, 2**70, 1.5,
                                             "x", None, True]))
        elif kind == "shape":
            amp = np.zeros(data.draw(st.sampled_from([0, 1, N - 1, N + 1])))
        elif kind == "dtype":
            dt = data.draw(st.sampled_from([np.float32, np.int32, np.complex128, object,
                                            np.bool_]))
            amp = amp.astype(dt) if dt is not object else np.array([None] * N)
        elif kind == "waveform":
            waveform = data.draw(st.sampled_from([1, 2, -1, 255, 0.5, math.nan]))
        elif kind == "case":
            case = data.draw(st.one_of(ADVERSARIAL_FLOATS, st.floats(-30, 30)))
        req = StimCommand(amp, pw, f, ipg, pid, 0, case, waveform)  # type: ignore[arg-type]
        valid = data.draw(st.booleans())
        conf = data.draw(st.one_of(st.floats(0.85, 1), ADVERSARIAL_FLOATS))
        for _ in range(n_steps):
            self._step(req, data, decoder_valid=valid, confidence=conf)

    @rule(data=st.data())
    def not_a_command(self, data):
        """Not even a StimCommand."""
        obj = data.draw(st.sampled_from([None, 3, "stim", object()]))
        self._step(obj, data)

    # ------------------------------------------------------------------ clock and faults
    @rule(data=st.data())
    def time_passes(self, data):
        self.monitor.advance(self._dt(data))

    @precondition(lambda self: self.monitor.steps % 4 == 0)
    @rule(data=st.data(), k=st.integers(1, 6))
    def deadline_misses(self, data, k):
        req = self.request
        for _ in range(k):
            self.monitor.step(req, dt_ns=self._dt(data, 1.0), deadline_missed=True)

    @rule(data=st.data())
    def impedance_report(self, data):
        lim = self.monitor.limits
        z = np.array(data.draw(st.lists(
            st.one_of(st.floats(lim.impedance_min_ohm, lim.impedance_max_ohm),
                      st.just(lim.impedance_max_ohm),
                      st.sampled_from([0.0, 10.0, 1e6, math.nan, math.inf, -5.0]),
                      st.floats(1.0, 20000.0)),
            min_size=N, max_size=N)))
        if data.draw(st.integers(0, 19)) == 0:
            z = z[:-1]  # malformed report
        self.monitor.impedance(z)

    @precondition(lambda self: self.monitor.steps % 6 == 2)
    @rule()
    def estop(self):
        self.monitor.estop()

    @rule()
    def rearm(self):
        """Re-arm (refused, with an event, when nothing is latched)."""
        self.monitor.rearm()

    @rule()
    def arm(self):
        self.monitor.arm()

    @precondition(lambda self: self.monitor.steps % 7 == 3)
    @rule()
    def disarm(self):
        self.monitor.disarm()

    @rule()
    def heartbeat_lost(self):
        self.monitor.heartbeat_lost()

    @precondition(lambda self: self.monitor.steps % 11 == 5)
    @rule()
    def device_fault(self):
        self.monitor.device_fault()

    # ------------------------------------------------------------------ checks
    @invariant()
    def no_problem(self):
        if hasattr(self, "monitor"):
            self.monitor.check()

    def teardown(self):
        if not hasattr(self, "monitor"):
            return
        original = [repr(o) for o in self.monitor.outputs]
        replayed = [repr(o) for o in self.monitor.replay_outputs()]
        assert original == replayed, "the same inputs gave different outputs"


SupervisorMachine.TestCase.settings = settings(
    settings.default, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                             HealthCheck.filter_too_much])
TestSupervisorStateMachine = SupervisorMachine.TestCase
