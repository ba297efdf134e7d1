"""An independent monitor of the safety supervisor, shared by the safety tests.

The monitor drives a :class:`SafetySupervisor` and, after every call, checks what it emits
against

* the :func:`validate` oracle (invariants 1-8, 13, 16) with the monitor's own record of the
  previous command, elapsed time, last impedance report and an exact rolling dose ledger;
* its own model of the state machine (invariants 9, 10, 12 and arming), written from
  docs/safety.md and not from the supervisor's code: expected state after every call, zero
  output in DISARMED/HOLD/FAULT/ESTOP, no increase of any contact while the input is invalid,
  zero after N consecutive invalid cycles, zero until M valid cycles after a fallback, FAULT
  after K consecutive deadline misses, ESTOP latched until a distinct re-arm.

Problems are collected as strings (``Monitor.problems``); ``check()`` raises on any.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from neuroloop.safety import SafetyLimits, SafetySupervisor, SupervisorState, validate
from neuroloop.stimulation.command import StimCommand
from neuroloop.stimulation.electrodes import ElectrodeArray
from neuroloop.stimulation.programs import ProgramSet

S = SupervisorState
ZERO_STATES = (S.DISARMED, S.HOLD, S.FAULT, S.ESTOP)


def request_is_hard_invalid(request: Any, n: int) -> bool:
    """True when the request cannot be used at all: wrong type/shape/dtype or non-finite."""
    amp = getattr(request, "amplitude_ma", None)
    if type(amp) is not np.ndarray or amp.shape != (n,) or amp.dtype.kind not in "fiub":
        return True
    try:
        vals = [float(x) for x in amp]
        scal = [float(request.pulse_width_us), float(request.frequency_hz),
                float(request.interphase_gap_us), float(request.case_ma),
                float(request.waveform)]
        int(request.program_id.__index__())
    except Exception:
        return True
    return not all(math.isfinite(v) for v in vals + scal)


@dataclass
class Model:
    """The documented state machine (docs/safety.md), as a plain model."""

    n_fallback: int
    m_recovery: int
    k_deadline: int
    state: S = S.DISARMED
    invalid_run: int = 0
    valid_run: int = 0
    miss_run: int = 0

    def _reset_runs(self) -> None:
        self.invalid_run = 0
        self.valid_run = 0

    def arm(self) -> None:
        if self.state == S.DISARMED:
            self.state = S.ARMED
            self._reset_runs()
            self.miss_run = 0

    def rearm(self) -> None:
        if self.state in (S.FAULT, S.ESTOP):
            self.state = S.ARMED
            self._reset_runs()
            self.miss_run = 0

    def disarm(self) -> None:
        if self.state not in (S.FAULT, S.ESTOP, S.DISARMED):
            self.state = S.DISARMED
            self._reset_runs()

    def estop(self) -> None:
        self.state = S.ESTOP
        self._reset_runs()

    def heartbeat_lost(self) -> None:
        if self.state in (S.ARMED, S.STIMULATING, S.HOLD):
            self.state = S.HOLD
            self.valid_run = 0

    def device_fault(self) -> None:
        if self.state != S.ESTOP:
            self.state = S.FAULT
            self._reset_runs()

    def step(self, *, invalid: bool, hard: bool, deadline_missed: bool) -> str:
        """Advance; returns what the output must be: "zero", "no_rise" or "free"."""
        if deadline_missed:
            self.miss_run += 1
            if self.miss_run >= self.k_deadline and self.state not in (S.FAULT, S.ESTOP):
                self.state = S.FAULT
                self._reset_runs()
        else:
            self.miss_run = 0
        if self.state in (S.DISARMED, S.FAULT, S.ESTOP):
            return "zero"
        if invalid:
            self.invalid_run += 1
            self.valid_run = 0
            if self.state == S.HOLD:
                return "zero"
            if self.invalid_run >= self.n_fallback:
                self.state = S.HOLD
                return "zero"
            return "zero" if hard else "no_rise"
        self.invalid_run = 0
        if self.state == S.HOLD:
            self.valid_run += 1
            if self.valid_run < self.m_recovery:
                return "zero"
            self.valid_run = 0
            self.state = S.ARMED
        return "free"

    def settle(self, output_on: bool) -> None:
        """ARMED/STIMULATING follow whether output flows."""
        if self.state in (S.ARMED, S.STIMULATING):
            self.state = S.STIMULATING if output_on else S.ARMED


@dataclass
class Monitor:
    """Drives a supervisor and checks every output (see the module docstring)."""

    limits: SafetyLimits
    array: ElectrodeArray
    programs: ProgramSet
    cycle_period_s: float
    disabled: frozenset[str] = frozenset()
    strict_programs: bool = False
    now_ns: int = 1_000_000_000
    problems: list[str] = field(default_factory=list)
    log: list[tuple[str, tuple, dict]] = field(default_factory=list)
    outputs: list[dict[str, object]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.sup = SafetySupervisor(self.limits, self.array, self.programs,
                                    cycle_period_s=self.cycle_period_s,
                                    strict_programs=self.strict_programs,
                                    _disabled_interlocks=self.disabled)
        self.n = self.array.n_contacts
        self.model = Model(self.limits.fallback_cycles, self.limits.recovery_cycles,
                           self.limits.deadline_miss_limit)
        self.prev = StimCommand.off(self.n)
        self.last_step_ns: int | None = None
        self.z: np.ndarray | None = None
        self.commits: list[tuple[int, float]] = []
        #: invariant 20: uninterrupted on-time before this step, and (time, on-time) commits
        self.burst_on_s = 0.0
        self.on_commits: list[tuple[int, float]] = []
        self.period_ns = int(round(self.cycle_period_s * 1e9))
        self.steps = 0
        # invariant 19: the monitor's own record of when the summed cathodic current of a
        # step's output last fell (on a clock that never goes back, as the supervisor's)
        self.clock_ns = -(1 << 62)
        self.last_step_total = 0.0
        self.last_fall_ns = -(1 << 62)

    # ----------------------------------------------------------------- bookkeeping
    def _problem(self, text: str) -> None:
        self.problems.append(f"[op {len(self.log)}] {text}")

    def _check_state(self, what: str) -> None:
        if self.sup.state != self.model.state:
            self._problem(f"after {what}: supervisor state {self.sup.state.name}, "
                          f"expected {self.model.state.name}")
            # follow the supervisor so that one divergence is reported once
            self.model.state = self.sup.state

    def _zero_prev(self) -> None:
        self.prev = StimCommand.off(self.n)

    def check(self) -> None:
        if self.problems:
            raise AssertionError("\n".join(self.problems[:10]))

    def exact_day_on_s(self, now_ns: int) -> float:
        day = 86_400 * 1_000_000_000
        return float(sum(d for t, d in self.on_commits if now_ns - day < t <= now_ns))

    def exact_dose_used_uc(self, now_ns: int) -> float:
        w = int(round(self.limits.dose_window_s * 1e9))
        return float(sum(q for t, q in self.commits if now_ns - w < t <= now_ns))

    # ----------------------------------------------------------------- commands
    def advance(self, dt_ns: int) -> None:
        self.log.append(("advance", (int(dt_ns),), {}))
        self.now_ns += int(dt_ns)

    def arm(self) -> None:
        self.log.append(("arm", (), {}))
        self.sup.arm(self.now_ns)
        self.model.arm()
        if self.model.state == S.ARMED:
            self._zero_prev()
        self._check_state("arm")

    def rearm(self) -> None:
        self.log.append(("rearm", (), {}))
        before = self.model.state
        self.sup.rearm(self.now_ns)
        self.model.rearm()
        if before in (S.FAULT, S.ESTOP):
            self._zero_prev()
        self._check_state("rearm")

    def disarm(self) -> None:
        self.log.append(("disarm", (), {}))
        self.sup.disarm(self.now_ns)
        self.model.disarm()
        self._check_state("disarm")

    def estop(self) -> None:
        self.log.append(("estop", (), {}))
        self.sup.estop(self.now_ns)
        self.model.estop()
        self._zero_prev()
        self._check_state("estop")

    def heartbeat_lost(self) -> None:
        self.log.append(("heartbeat_lost", (), {}))
        self.sup.report_heartbeat_lost(self.now_ns)
        self.model.heartbeat_lost()
        self._check_state("heartbeat_lost")

    def device_fault(self) -> None:
        self.log.append(("device_fault", (), {}))
        self.sup.report_device_fault(self.now_ns, "test")
        self.model.device_fault()
        self._check_state("device_fault")

    def impedance(self, z: Any) -> None:
        self.log.append(("impedance", (z,), {}))
        self.sup.report_impedance(z, self.now_ns)
        try:
            arr = np.asarray(z, dtype=np.float64)
            ok = arr.shape == (self.n,)
        except Exception:
            ok = False
        # a malformed report means "nothing known to be safe": every contact is outside
        self.z = arr.copy() if ok else np.full(self.n, np.nan)

    def step(self, request: Any, *, dt_ns: int | None = None, input_age_ns: int | None = 0,
             decoder_valid: bool = True, confidence: float = 1.0,
             deadline_missed: bool = False) -> StimCommand:
        """Advance the clock by ``dt_ns`` (default one period), step, check the output."""
        dt_ns = self.period_ns if dt_ns is None else int(dt_ns)
        self.now_ns += dt_ns
        now = self.now_ns
        input_ns = None if input_age_ns is None else now - int(input_age_ns)
        snapshot = _snapshot(request)
        self.log.append(("step", (snapshot, dt_ns), dict(input_ns=input_ns,
                                                   decoder_valid=decoder_valid,
                                                   confidence=confidence,
                                                   deadline_missed=deadline_missed)))
        out, events = self.sup.step(request, now, input_ns=input_ns,
                                    decoder_valid=decoder_valid, confidence=confidence,
                                    deadline_missed=deadline_missed)
        self.steps += 1
        lim = self.limits
        hard = request_is_hard_invalid(request, self.n)
        try:
            conf = float(confidence)
        except Exception:
            conf = math.nan
        stale = input_ns is not None and (now - input_ns) > round(lim.stale_input_ms * 1e6)
        invalid = hard or (not bool(decoder_valid)) or not (conf >= lim.min_confidence) or stale
        expect = self.model.step(invalid=invalid, hard=hard, deadline_missed=deadline_missed)

        # --- the oracle
        dt_s = (self.cycle_period_s if self.last_step_ns is None
                else min((now - self.last_step_ns) / 1e9, self.cycle_period_s))
        used = self.exact_dose_used_uc(now)
        self.clock_ns = max(self.clock_ns, now)
        blank_left = lim.increase_blanking_s - (self.clock_ns - self.last_fall_ns) / 1e9
        violations = validate(out, lim, self.array, previous=self.prev, dt_s=dt_s,
                              impedance_ohm=self.z, programs=self.programs,
                              dose_used_uc=used, horizon_s=self.cycle_period_s,
                              blanking_left_s=blank_left,
                              burst_on_s=self.burst_on_s, day_on_s=self.exact_day_on_s(now))
        for v in violations:
            self._problem(f"validate: {v}")

        # --- the state machine
        amp = np.asarray(out.amplitude_ma, dtype=np.float64)
        with np.errstate(invalid="ignore"):
            on = bool(np.any(amp != 0.0)) or out.case_ma != 0.0
        if expect == "zero" and on:
            self._problem(f"output must be zero (model state {self.model.state.name}, "
                          f"invalid run {self.model.invalid_run}) but is "
                          f"{np.round(amp, 4).tolist()}")
        if expect == "no_rise":
            prev_amp = self.prev.amplitude_ma
            for c in range(self.n):
                a, p = float(amp[c]), float(prev_amp[c])
                rises = (abs(a) > abs(p) * (1 + 1e-9) + 1e-12) or (a * p < 0.0)
                if rises:
                    self._problem(f"contact {c} rose from {p:.6g} to {a:.6g} mA while the "
                                  f"input was invalid")
        self.model.settle(on)
        self._check_state("step")
        if self.sup.state in ZERO_STATES and on:
            self._problem(f"non-zero output in {self.sup.state.name}")
        for e in events:
            if not isinstance(e.reason, str) or not e.reason:
                self._problem(f"event without reason: {e}")

        # --- bookkeeping for the next step
        with np.errstate(invalid="ignore"):
            cath = float(np.sum(np.where(amp < 0, -amp, 0.0)))
        if on and math.isfinite(cath) and math.isfinite(out.pulse_width_us) \
                and math.isfinite(out.frequency_hz):
            self.commits.append((now, cath * out.pulse_width_us / 1000.0 * out.frequency_hz
                                 * self.cycle_period_s))
        if math.isfinite(cath):
            if cath < self.last_step_total - 1e-9:
                self.last_fall_ns = self.clock_ns
            self.last_step_total = cath
        if on:
            self.burst_on_s += self.cycle_period_s
            self.on_commits.append((now, self.cycle_period_s))
        else:
            self.burst_on_s = 0.0
        self.prev = out.copy()
        self.last_step_ns = now
        self.outputs.append(out.to_dict())
        return out

    # ----------------------------------------------------------------- determinism
    def replay_outputs(self) -> list[dict[str, object]]:
        """Run the logged calls again on a fresh supervisor; its outputs (invariant 17)."""
        sup = SafetySupervisor(self.limits, self.array, self.programs,
                               cycle_period_s=self.cycle_period_s,
                               strict_programs=self.strict_programs,
                               _disabled_interlocks=self.disabled)
        now = 1_000_000_000
        outs: list[dict[str, object]] = []
        for name, args, kw in self.log:
            if name == "advance":
                now += args[0]
            elif name == "step":
                req, dt = args
                now += dt
                out, _ = sup.step(_restore(req), now, **kw)
                outs.append(out.to_dict())
            elif name == "impedance":
                sup.report_impedance(args[0], now)
            elif name == "device_fault":
                sup.report_device_fault(now, "test")
            elif name == "heartbeat_lost":
                sup.report_heartbeat_lost(now)
            else:
                getattr(sup, name)(now)
        return outs


def _snapshot(request: Any) -> Any:
    """A copy of a request good enough to replay it (adversarial objects are kept as is)."""
    if isinstance(request, StimCommand):
        amp = request.amplitude_ma
        amp = amp.copy() if isinstance(amp, np.ndarray) else amp
        return StimCommand(amp, request.pulse_width_us, request.frequency_hz,
                           request.interphase_gap_us, request.program_id, request.cycle,
                           request.case_ma, request.waveform)
    return request


def _restore(snapshot: Any) -> Any:
    return _snapshot(snapshot)
