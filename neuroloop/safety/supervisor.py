"""The safety supervisor: a state machine in front of the stimulator.

States (:class:`~neuroloop.safety.events.SupervisorState`)::

    DISARMED --arm--> ARMED <--> STIMULATING <--> HOLD (fallback)
        any state --estop--> ESTOP (latched)   any non-ESTOP state --fault--> FAULT (latched)
        FAULT/ESTOP --rearm--> ARMED (from zero amplitude)

* ARMED: armed, output zero (rest requested, or the slew limit still at zero).
* STIMULATING: armed, output non-zero.
* HOLD: the fallback (zero output). Entered after ``fallback_cycles`` (N) consecutive invalid
  cycles (decoder invalid, stale input, low confidence, non-finite or malformed request) or
  on a lost heartbeat; left after ``recovery_cycles`` (M) consecutive valid cycles. During the
  first N-1 invalid cycles the output ramps linearly from its last value to zero (at least at
  ``slew_down_ma_per_s``), so it reaches the fallback within N cycles; a non-finite or
  malformed request gives zero at once.
* FAULT (``deadline_miss_limit`` K consecutive missed deadlines, a device fault, an internal
  error) and ESTOP (STOP) are latched: output zero until :meth:`SafetySupervisor.rearm`.
  ``arm`` and ``disarm`` are refused there; ``estop`` overrides FAULT.
* Arming and re-arming start from zero amplitude; every increase obeys ``slew_up_ma_per_s``.

Per cycle, :meth:`SafetySupervisor.step` runs one compiled kernel
(:func:`neuroloop.safety._kernels.supervise`) over preallocated arrays; Python only decides
state transitions and builds events. Per-cycle interlock events are edge-triggered: an event
is raised in the cycle an interlock starts acting (with the worst contact, requested and
allowed value); :meth:`SafetySupervisor.limit_cycles` counts every cycle it acted.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Sequence

import numpy as np

from ..errors import ConfigError
from ..stimulation.command import PROGRAM_OFF, WAVEFORM_BIPHASIC_SYMMETRIC, StimCommand
from ..stimulation.electrodes import ElectrodeArray
from ..stimulation.programs import ProgramSet
from . import _kernels as K
from . import reasons as R
from .events import InterlockEvent, SupervisorState
from .limits import SafetyLimits

__all__ = ["SafetySupervisor", "check_programs"]

_S = SupervisorState
_EMPTY: tuple[InterlockEvent, ...] = ()
_N_DOSE_BUCKETS = 64
_INT64_MAX = np.iinfo(np.int64).max


def contact_areas_cm2(limits: SafetyLimits, array: ElectrodeArray) -> np.ndarray:
    """Per-contact area used by the charge limits, cm^2, shape (n_contacts,): the catalogue's,
    or a smaller stated effective area (never a larger one)."""
    return limits.contact_areas_cm2(array.area_cm2)


def check_programs(limits: SafetyLimits, programs: ProgramSet) -> list[str]:
    """Problems of a program set against ``limits`` at each program's maximum amplitude.

    Returns one line per problem (empty when every program can run at its clinician maximum
    without any interlock acting, impedance and slew aside).
    """
    problems: list[str] = []
    areas = contact_areas_cm2(limits, programs.array)
    for p in programs:
        name = f"program {p.name!r}"
        pw, f, ipg = p.pulse_width_us, p.frequency_hz, p.interphase_gap_us
        if not limits.pulse_width_min_us <= pw <= limits.pulse_width_max_us:
            problems.append(f"{name}: pulse_width_us = {pw:g} is outside "
                            f"[{limits.pulse_width_min_us:g}, {limits.pulse_width_max_us:g}]")
        if not limits.frequency_min_hz <= f <= limits.frequency_max_hz:
            problems.append(f"{name}: frequency_hz = {f:g} is outside "
                            f"[{limits.frequency_min_hz:g}, {limits.frequency_max_hz:g}]")
        if not limits.interphase_gap_min_us <= ipg <= limits.interphase_gap_max_us:
            problems.append(f"{name}: interphase_gap_us = {ipg:g} is outside "
                            f"[{limits.interphase_gap_min_us:g}, {limits.interphase_gap_max_us:g}]")
        if (2 * pw + ipg) * f >= 1e6:
            problems.append(f"{name}: pulses overlap, (2 x {pw:g} + {ipg:g}) us x {f:g} Hz >= 1 s")
        amax = p.amplitude_max_ma
        if amax > limits.total_current_max_ma:
            problems.append(f"{name}: amplitude max {amax:g} mA is above total_current_max_ma "
                            f"= {limits.total_current_max_ma:g}")
        currents = amax * np.maximum(p.cathode_fraction, p.anode_fraction)
        for c in range(programs.array.n_contacts):
            i_c = float(currents[c])
            if i_c == 0.0:
                continue
            q = i_c * pw / 1000.0
            cname = programs.array.contact_names[c]
            q_sh = limits.shannon_q_max_uc(float(areas[c]))
            if i_c > limits.contact_current_max_ma:
                problems.append(f"{name}: {i_c:.3g} mA on {cname} is above "
                                f"contact_current_max_ma = {limits.contact_current_max_ma:g}")
            if q > q_sh:
                problems.append(f"{name}: {q:.3g} uC per phase on {cname} is above the Shannon "
                                f"limit {q_sh:.3g} uC (k = {limits.shannon_k:g})")
            if q / areas[c] > limits.charge_density_max_uc_per_cm2:
                problems.append(f"{name}: {q / areas[c]:.3g} uC/cm^2 on {cname} is above "
                                f"{limits.charge_density_max_uc_per_cm2:g} uC/cm^2")
            if q > limits.charge_per_phase_max_uc:
                problems.append(f"{name}: {q:.3g} uC on {cname} is above "
                                f"charge_per_phase_max_uc = {limits.charge_per_phase_max_uc:g}")
    return problems


class SafetySupervisor:
    """Makes every stimulation request safe; a trip is a state, never an exception.

    Parameters
    ----------
    limits : SafetyLimits
    array : ElectrodeArray
        The stimulation array (contact areas for the charge limits).
    programs : ProgramSet
        The clinician's programs (envelopes, contact patterns).
    cycle_period_s : float
        Nominal control period, s. Bounds the slew step per cycle (``slew_up * min(elapsed,
        period)``) and is the horizon over which each command commits dose.
    strict_programs : bool
        True (default): refuse, with a ConfigError, a program that cannot run at its
        clinician maximum within ``limits``. False: accept it and let the per-cycle
        interlocks clamp it (used by the property tests, so that every interlock is
        exercised; the output is safe either way).
    _disabled_interlocks : frozenset of str
        TEST-ONLY. Interlock names (:data:`neuroloop.safety.reasons.INTERLOCKS`) to switch
        off, used by the test that proves each interlock is needed. Never set it elsewhere.

    Raises
    ------
    ConfigError
        A program cannot run at its clinician maximum within ``limits`` (see
        :func:`check_programs`), or the program set is for another array.
    ValueError
        ``cycle_period_s`` is not a positive finite number, or an unknown interlock name.
    """

    def __init__(self, limits: SafetyLimits, array: ElectrodeArray, programs: ProgramSet, *,
                 cycle_period_s: float, strict_programs: bool = True,
                 _disabled_interlocks: frozenset[str] = frozenset()) -> None:
        if not (isinstance(cycle_period_s, int | float) and math.isfinite(cycle_period_s)
                and cycle_period_s > 0):
            raise ValueError(f"cycle_period_s must be a positive number of seconds, "
                             f"got {cycle_period_s!r}")
        unknown = set(_disabled_interlocks) - R.INTERLOCKS
        if unknown:
            raise ValueError(f"unknown interlock(s) {sorted(unknown)}; "
                             f"known: {sorted(R.INTERLOCKS)}")
        if programs.array.n_contacts != array.n_contacts:
            raise ConfigError(f"the programs are for a {programs.array.n_contacts}-contact "
                              f"array but the stimulation array has {array.n_contacts}; "
                              f"use the same array for both")
        problems = check_programs(limits, programs) if strict_programs else []
        if problems:
            raise ConfigError(f"{problems[0]}; change the program or the [safety] limits"
                              + (f" ({len(problems) - 1} more problem(s))"
                                 if len(problems) > 1 else ""))
        self.limits = limits
        self.array = array
        self.programs = programs
        self.cycle_period_s = float(cycle_period_s)
        self._disabled = frozenset(_disabled_interlocks)
        n = array.n_contacts
        self._n = n
        self._shape = (n,)

        # static tables
        t = programs.table()
        self._prog_sf = np.ascontiguousarray(t["signed_fraction"], dtype=np.float64)
        n_rows = self._prog_sf.shape[0]
        self._n_rows = n_rows
        info = np.zeros((n_rows, 7))
        info[:, 0] = t["has_program"]
        info[:, 1] = t["uses_case"]
        info[:, 2] = t["amplitude_min_ma"]
        info[:, 3] = t["amplitude_max_ma"]
        info[:, 4] = t["pulse_width_us"]
        info[:, 5] = t["frequency_hz"]
        info[:, 6] = t["interphase_gap_us"]
        self._prog_info = info
        areas = contact_areas_cm2(limits, array)
        caps = np.zeros((4, n))
        caps[0] = np.sqrt(10.0 ** limits.shannon_k * areas)
        caps[1] = limits.charge_density_max_uc_per_cm2 * areas
        caps[2] = limits.charge_per_phase_max_uc
        caps[3] = areas
        self._caps = caps
        lim = np.zeros(K.N_LIM)
        lim[K.L_CONTACT_MAX] = limits.contact_current_max_ma
        lim[K.L_TOTAL_MAX] = limits.total_current_max_ma
        lim[K.L_PW_MIN] = limits.pulse_width_min_us
        lim[K.L_PW_MAX] = limits.pulse_width_max_us
        lim[K.L_F_MIN] = limits.frequency_min_hz
        lim[K.L_F_MAX] = limits.frequency_max_hz
        lim[K.L_IPG_MIN] = limits.interphase_gap_min_us
        lim[K.L_IPG_MAX] = limits.interphase_gap_max_us
        lim[K.L_SLEW_UP] = limits.slew_up_ma_per_s
        lim[K.L_SLEW_DOWN] = limits.slew_down_ma_per_s
        lim[K.L_COMPLIANCE_V] = limits.compliance_voltage_v
        lim[K.L_DOSE_BUDGET] = limits.dose_budget_uc
        lim[K.L_HORIZON_S] = self.cycle_period_s
        self._lim = lim
        self._stale_ns = int(round(limits.stale_input_ms * 1e6))
        self._period_ns = int(round(self.cycle_period_s * 1e9))
        window_ns = int(round(limits.dose_window_s * 1e9))
        self._window_ns = window_ns
        self._bucket_ns = max(1, -(-window_ns // (_N_DOSE_BUCKETS - 2)))
        mask = 0
        for name in self._disabled:
            if name in R.BIT:
                mask |= 1 << R.BIT[name]
        self._disabled_mask = mask

        # per-cycle buffers
        self._req_amp = np.zeros(n)
        self._req_s = np.zeros(K.N_REQ)
        self._out_amp = np.zeros(n)
        self._out_s = np.zeros(K.N_S)
        self._prev_amp = np.zeros(n)
        self._prev_s = np.zeros(K.N_S)
        self._prev_s[K.S_PROGRAM] = PROGRAM_OFF
        self._z_ohm = np.full(n, np.nan)
        self._blocked = np.zeros(n, dtype=np.bool_)
        self._dose_ids = np.full(_N_DOSE_BUCKETS, np.iinfo(np.int64).min // 2, dtype=np.int64)
        self._dose_sums = np.zeros(_N_DOSE_BUCKETS)
        self._iparams = np.zeros(K.N_I, dtype=np.int64)
        self._iparams[K.I_BUCKET_NS] = self._bucket_ns
        self._iparams[K.I_WINDOW_NS] = window_ns
        self._iparams[K.I_DISABLED] = mask
        self._ev_contact = np.zeros(K.N_BITS, dtype=np.int64)
        self._ev_req = np.zeros(K.N_BITS)
        self._ev_allow = np.zeros(K.N_BITS)
        self._ev_ratio = np.zeros(K.N_BITS)
        self._out = StimCommand(amplitude_ma=self._out_amp)

        # state
        self._state = _S.DISARMED
        self._last_ns: int | None = None
        self._last_step_ns: int | None = None
        self._time_in_state = [0] * len(_S)
        self._invalid_run = 0
        self._valid_run = 0
        self._miss_run = 0
        self._last_invalid_reason = ""
        self._prev_flags = 0
        self._blocked_reported = False
        self._counts: dict[str, int] = {}
        self._active = np.zeros(K.N_BITS, dtype=np.int64)
        self._cycle = 0

    # ------------------------------------------------------------------ properties
    @property
    def state(self) -> SupervisorState:
        """Current state."""
        return self._state

    @property
    def output(self) -> StimCommand:
        """The last command returned by :meth:`step` (owned by the supervisor)."""
        return self._out

    @property
    def impedance_ohm(self) -> np.ndarray:
        """Last reported impedance per contact, ohm (NaN: never measured); a copy."""
        return self._z_ohm.copy()

    @property
    def blocked_contacts(self) -> np.ndarray:
        """Contacts that may not be driven (impedance outside the window); a copy."""
        return self._blocked.copy()

    @property
    def disabled_interlocks(self) -> frozenset[str]:
        """Interlocks switched off through the test-only hook (empty in real use)."""
        return self._disabled

    def dose_used_uc(self, now_ns: int) -> float:
        """Charge committed in the rolling window ending at ``now_ns`` (conservative), uC."""
        return float(K.dose_used_uc(self._dose_ids, self._dose_sums, int(now_ns),
                                    self._bucket_ns, self._window_ns))

    def time_in_state_ns(self) -> dict[str, int]:
        """Time spent in each state (by the clock handed to the supervisor), ns."""
        return {s.name: int(self._time_in_state[s]) for s in _S}

    def counters(self) -> dict[str, int]:
        """Number of interlock events raised, by reason."""
        return dict(self._counts)

    def limit_cycles(self) -> dict[str, int]:
        """Number of cycles in which each per-cycle interlock acted (non-zero only)."""
        return {R.KERNEL_REASONS[b]: int(self._active[b]) for b in range(K.N_BITS)
                if self._active[b]}

    # ------------------------------------------------------------------ helpers
    def _on(self, name: str) -> bool:
        return name not in self._disabled

    def _clock(self, now_ns: int, events: list[InterlockEvent] | None
               ) -> tuple[int, list[InterlockEvent] | None]:
        """Advance the supervisor clock (monotonic guard) and the time-in-state tally."""
        try:
            now = int(now_ns)
        except (TypeError, ValueError, OverflowError):
            now = self._last_ns if self._last_ns is not None else 0
        last = self._last_ns
        if last is not None:
            if now < last:
                events = self._add(events, R.CLOCK_BACKWARDS, requested=float(now),
                                   allowed=float(last),
                                   detail="now_ns went backwards; keeping the last time")
                now = last
            self._time_in_state[self._state] += now - last
        self._last_ns = now
        return now, events

    def _event(self, reason: str, *, contact: int = -1, requested: float = math.nan,
               allowed: float = math.nan, detail: str = "") -> InterlockEvent:
        self._counts[reason] = self._counts.get(reason, 0) + 1
        return InterlockEvent(reason, self._cycle, int(self._last_ns or 0), int(contact),
                              float(requested), float(allowed), self._state, detail)

    def _add(self, events: list[InterlockEvent] | None, reason: str, **kw: object
             ) -> list[InterlockEvent]:
        if events is None:
            events = []
        events.append(self._event(reason, **kw))  # type: ignore[arg-type]
        return events

    def _zero_output(self) -> None:
        self._out_amp[:] = 0.0
        self._prev_amp[:] = 0.0
        self._prev_s[:] = 0.0
        self._prev_s[K.S_PROGRAM] = PROGRAM_OFF
        self._prev_flags = 0
        out = self._out
        out.pulse_width_us = 0.0
        out.frequency_hz = 0.0
        out.interphase_gap_us = 0.0
        out.case_ma = 0.0
        out.program_id = PROGRAM_OFF
        out.waveform = WAVEFORM_BIPHASIC_SYMMETRIC

    def _enter(self, state: SupervisorState) -> None:
        if state != self._state:
            self._state = state
            self._blocked_reported = False
        if state in (_S.DISARMED, _S.FAULT, _S.ESTOP, _S.HOLD):
            self._zero_output()
        if state in (_S.ARMED, _S.DISARMED, _S.FAULT, _S.ESTOP):
            self._invalid_run = 0
            self._valid_run = 0
            self._last_invalid_reason = ""
        if state == _S.ARMED:
            self._miss_run = 0

    def _load_request(self, request: StimCommand) -> tuple[bool, int, int]:
        """Copy ``request`` into the preallocated buffers; (ok, program_row, program_id)."""
        try:
            amp = request.amplitude_ma
            if (type(amp) is not np.ndarray or amp.shape != self._shape
                    or amp.dtype.kind not in "fiub"):
                return False, -1, PROGRAM_OFF
            np.copyto(self._req_amp, amp, casting="unsafe")
            r = self._req_s
            r[K.R_PW] = request.pulse_width_us
            r[K.R_F] = request.frequency_hz
            r[K.R_IPG] = request.interphase_gap_us
            r[K.R_CASE] = request.case_ma
            r[K.R_WAVEFORM] = request.waveform
            pid = operator.index(request.program_id)
        except Exception:
            return False, -1, PROGRAM_OFF
        if pid < -_INT64_MAX or pid > _INT64_MAX:
            return True, -1, PROGRAM_OFF - 1
        row = pid if 0 <= pid < self._n_rows else -1
        return True, row, pid

    def _finish(self, events: list[InterlockEvent] | None
                ) -> tuple[StimCommand, Sequence[InterlockEvent]]:
        return self._out, (_EMPTY if events is None else events)

    # ------------------------------------------------------------------ commands
    def arm(self, now_ns: int) -> list[InterlockEvent]:
        """DISARMED -> ARMED (output starts from zero). Refused (event) in FAULT/ESTOP."""
        now, events = self._clock(now_ns, None)
        events = events or []
        if self._state == _S.DISARMED:
            self._enter(_S.ARMED)
            self._zero_output()
            events.append(self._event(R.ARM, detail="armed; output starts from zero"))
        elif self._state in (_S.FAULT, _S.ESTOP):
            events.append(self._event(R.ARM_REFUSED, detail=f"{self._state.name} is latched; "
                                      f"clear it with rearm()"))
        return events

    def rearm(self, now_ns: int) -> list[InterlockEvent]:
        """FAULT/ESTOP -> ARMED, from zero amplitude. Refused (event) when nothing is latched."""
        now, events = self._clock(now_ns, None)
        events = events or []
        if self._state in (_S.FAULT, _S.ESTOP):
            was = self._state.name
            self._enter(_S.ARMED)
            self._zero_output()
            events.append(self._event(R.REARM, detail=f"re-armed from {was}; output starts "
                                      f"from zero"))
        else:
            events.append(self._event(R.REARM_REFUSED, detail=f"nothing latched in "
                                      f"{self._state.name}; use arm()"))
        return events

    def disarm(self, now_ns: int) -> list[InterlockEvent]:
        """Any non-latched state -> DISARMED (output zero). Cannot clear FAULT/ESTOP."""
        now, events = self._clock(now_ns, None)
        events = events or []
        if self._state in (_S.FAULT, _S.ESTOP):
            events.append(self._event(R.DISARM_REFUSED, detail=f"{self._state.name} is "
                                      f"latched; clear it with rearm()"))
        elif self._state != _S.DISARMED:
            self._enter(_S.DISARMED)
            events.append(self._event(R.DISARM, detail="disarmed; output zero"))
        return events

    def estop(self, now_ns: int) -> list[InterlockEvent]:
        """STOP: ESTOP latched, output zero from the next step until :meth:`rearm`."""
        now, events = self._clock(now_ns, None)
        events = events or []
        if not self._on(R.ESTOP_LATCH):
            return events
        if self._state != _S.ESTOP:
            self._enter(_S.ESTOP)
            events.append(self._event(R.ESTOP, detail="STOP: output zero until rearm()"))
        return events

    def report_heartbeat_lost(self, now_ns: int) -> list[InterlockEvent]:
        """Link heartbeat lost: ARMED/STIMULATING/HOLD -> HOLD (zero output); leaving HOLD
        needs M consecutive valid cycles after the last report. Call it every cycle while
        the heartbeat stays lost. No state change in DISARMED/FAULT/ESTOP (output is already
        zero there)."""
        now, events = self._clock(now_ns, None)
        events = events or []
        if not self._on(R.HEARTBEAT_LOST):
            return events
        if self._state in (_S.ARMED, _S.STIMULATING, _S.HOLD):
            entering = self._state != _S.HOLD
            self._enter(_S.HOLD)
            self._valid_run = 0
            if entering:
                events.append(self._event(R.HEARTBEAT_LOST, detail="link heartbeat lost; HOLD"))
        return events

    def report_device_fault(self, now_ns: int, detail: str = "") -> list[InterlockEvent]:
        """The device reported a fault: FAULT latched (ESTOP stays ESTOP)."""
        now, events = self._clock(now_ns, None)
        events = events or []
        if self._state != _S.ESTOP:
            self._enter(_S.FAULT)
        events.append(self._event(R.DEVICE_FAULT, detail=str(detail)[:200]))
        return events

    def report_impedance(self, impedance_ohm: np.ndarray, now_ns: int) -> list[InterlockEvent]:
        """New per-contact impedances (ohm). A contact outside [impedance_min_ohm,
        impedance_max_ohm] (or NaN) is never driven until a report puts it back inside;
        ``|I_c| * Z_c`` is kept at or below the compliance voltage. A malformed report
        blocks every contact."""
        now, events = self._clock(now_ns, None)
        events = events or []
        lo, hi = self.limits.impedance_min_ohm, self.limits.impedance_max_ohm
        try:
            z = np.asarray(impedance_ohm, dtype=np.float64)
            ok = z.shape == self._shape
        except Exception:
            ok = False
        if not ok:
            self._z_ohm[:] = np.nan
            self._blocked[:] = True
            events.append(self._event(R.IMPEDANCE_REPORT, detail=f"malformed impedance report "
                                      f"(expected {self._n} values); every contact blocked"))
            return events
        was = self._blocked.copy()
        self._z_ohm[:] = z
        with np.errstate(invalid="ignore"):
            inside = (z >= lo) & (z <= hi)
        self._blocked[:] = ~inside
        for c in np.flatnonzero(self._blocked & ~was):
            zc = float(z[c])
            allowed = hi if zc > hi else lo
            events.append(self._event(R.IMPEDANCE_REPORT, contact=int(c), requested=zc,
                                      allowed=allowed,
                                      detail=f"{self.array.contact_names[c]} impedance outside "
                                      f"[{lo:g}, {hi:g}] ohm; contact not driven"))
        return events

    # ------------------------------------------------------------------ the cycle
    def step(self, request: StimCommand, now_ns: int, *, input_ns: int | None = None,
             decoder_valid: bool = True, confidence: float = 1.0,
             deadline_missed: bool = False) -> tuple[StimCommand, Sequence[InterlockEvent]]:
        """Make ``request`` safe for this cycle.

        Parameters
        ----------
        request : StimCommand
            What the mapper asks for. Anything is accepted: NaN, inf, negative or huge
            values, wrong shape or dtype, an unknown program id.
        now_ns : int
            Supervisor clock, ns (monotonic; a step back is ignored with an event).
        input_ns : int or None
            Time the newest input sample became available, ns; stale when
            ``now_ns - input_ns > stale_input_ms``. None: not checked.
        decoder_valid : bool
            False when the decoder flagged its output invalid.
        confidence : float
            Decoder confidence 0..1; below ``min_confidence`` (or NaN) is invalid input.
        deadline_missed : bool
            The previous cycle missed its deadline; K consecutive misses latch FAULT.

        Returns
        -------
        command : StimCommand
            The safe command. Owned by the supervisor and overwritten by the next step.
            ``cycle`` is the request's; ``program_id`` is the request's program when output
            flows (the held program during a fallback ramp) and ``PROGRAM_OFF`` when it is
            zero.
        events : sequence of InterlockEvent
            Events raised in this cycle (a shared empty tuple when there are none).
        """
        try:
            return self._step(request, now_ns, input_ns, decoder_valid, confidence,
                              deadline_missed)
        except Exception as exc:  # never raise: an internal error is a latched FAULT
            try:
                self._enter(_S.FAULT)
                self._zero_output()
                msg = f"{type(exc).__name__}: {exc}".splitlines()[0][:200]
                return self._out, [self._event(R.INTERNAL_ERROR, detail=msg)]
            except Exception:
                self._state = _S.FAULT
                self._out_amp[:] = 0.0
                return self._out, _EMPTY

    def _step(self, request: StimCommand, now_ns: int, input_ns: int | None,
              decoder_valid: bool, confidence: float, deadline_missed: bool
              ) -> tuple[StimCommand, Sequence[InterlockEvent]]:
        last_step = self._last_step_ns
        now, events = self._clock(now_ns, None)
        self._last_step_ns = now
        # slew step: elapsed time since the previous step, at most one period (seconds, not
        # rounded nanoseconds, so that validate(..., dt_s=cycle_period_s) agrees exactly)
        dt_s = (self.cycle_period_s if last_step is None
                else min((now - last_step) / 1e9, self.cycle_period_s))
        try:
            cycle = int(request.cycle)
        except Exception:
            cycle = self._cycle + 1
        self._cycle = cycle
        out = self._out
        out.cycle = cycle

        # deadline accounting (all non-latched states)
        if deadline_missed and self._on(R.DEADLINE_FAULT):
            self._miss_run += 1
            if self._state not in (_S.FAULT, _S.ESTOP):
                if self._miss_run == 1:
                    events = self._add(events, R.DEADLINE_MISS, requested=1.0,
                                       allowed=float(self.limits.deadline_miss_limit))
                if self._miss_run >= self.limits.deadline_miss_limit:
                    self._enter(_S.FAULT)
                    events = self._add(events, R.DEADLINE_FAULT,
                                       requested=float(self._miss_run),
                                       allowed=float(self.limits.deadline_miss_limit - 1),
                                       detail="consecutive deadline misses; FAULT latched")
        else:
            self._miss_run = 0

        st = self._state
        blocked_state = (st == _S.ESTOP
                         or (st == _S.FAULT and self._on(R.FAULT_LATCH))
                         or (st == _S.DISARMED and self._on(R.ARMED_ONLY)))
        ok, row, pid = self._load_request(request)
        if blocked_state:
            self._zero_output()
            if not self._blocked_reported and (not ok or not self._request_is_off()):
                self._blocked_reported = True
                reason = R.NOT_ARMED if st == _S.DISARMED else R.LATCHED
                events = self._add(events, reason,
                                   detail=f"request ignored in {st.name}; output zero")
            return self._finish(events)

        # input validity
        soft = ""
        try:
            dec_ok = bool(decoder_valid)
        except Exception:
            dec_ok = False
        try:
            conf = float(confidence)
        except Exception:
            conf = math.nan
        if not dec_ok and self._on(R.DECODER_INVALID):
            soft = R.DECODER_INVALID
        elif not (conf >= self.limits.min_confidence) and self._on(R.LOW_CONFIDENCE):
            soft = R.LOW_CONFIDENCE
        elif input_ns is not None and self._on(R.STALE_INPUT):
            try:
                age = now - int(input_ns)
            except Exception:
                age = _INT64_MAX
            if age > self._stale_ns:
                soft = R.STALE_INPUT
        hard = ""
        if not ok:
            hard = R.BAD_REQUEST
        elif self._on(R.NONFINITE) and not K.request_finite(self._req_amp, self._req_s):
            hard = R.NONFINITE

        if soft or hard:
            reason = hard or soft
            self._invalid_run += 1
            self._valid_run = 0
            if self._invalid_run == 1 or reason != self._last_invalid_reason:
                events = self._add(events, reason, requested=self._invalid_requested(
                    reason, conf, now, input_ns), allowed=self._invalid_allowed(reason),
                    detail=f"invalid input ({self._invalid_run} of "
                    f"{self.limits.fallback_cycles} before HOLD)")
            self._last_invalid_reason = reason
            if self._state == _S.HOLD:
                self._zero_output()
                return self._finish(events)
            if self._invalid_run >= self.limits.fallback_cycles:
                self._enter(_S.HOLD)
                events = self._add(events, R.FALLBACK, requested=float(self._invalid_run),
                                   allowed=float(self.limits.fallback_cycles),
                                   detail="fallback: output zero until "
                                   f"{self.limits.recovery_cycles} valid cycles")
                return self._finish(events)
            if hard:
                self._zero_output()
                if self._state == _S.STIMULATING:
                    self._state = _S.ARMED
                return self._finish(events)
            # ramp toward the fallback over the remaining cycles
            left = self.limits.fallback_cycles - self._invalid_run
            self._req_s[K.R_MODE] = K.MODE_RAMP
            self._req_s[K.R_RAMP] = left / (left + 1.0)
            events = self._run_kernel(row, pid, now, dt_s, events)
            return self._finish(events)

        # valid input
        self._invalid_run = 0
        self._last_invalid_reason = ""
        if self._state == _S.HOLD:
            self._valid_run += 1
            if self._valid_run < self.limits.recovery_cycles and self._on(R.RECOVERY):
                self._zero_output()
                return self._finish(events)
            self._state = _S.ARMED
            self._valid_run = 0
            events = self._add(events, R.RECOVERED, requested=float(self.limits.recovery_cycles),
                               allowed=float(self.limits.recovery_cycles),
                               detail="valid input again; closed loop resumes from zero")
        self._req_s[K.R_MODE] = K.MODE_REQUEST
        events = self._run_kernel(row, pid, now, dt_s, events)
        return self._finish(events)

    def _request_is_off(self) -> bool:
        return not (self._req_amp.any() or self._req_s[K.R_CASE] != 0.0)

    def _invalid_requested(self, reason: str, conf: float, now: int,
                           input_ns: int | None) -> float:
        if reason == R.LOW_CONFIDENCE:
            return conf
        if reason == R.STALE_INPUT and input_ns is not None:
            try:
                return (now - int(input_ns)) / 1e6
            except Exception:
                return math.nan
        return math.nan

    def _invalid_allowed(self, reason: str) -> float:
        if reason == R.LOW_CONFIDENCE:
            return self.limits.min_confidence
        if reason == R.STALE_INPUT:
            return self.limits.stale_input_ms
        return math.nan

    def _run_kernel(self, row: int, pid: int, now: int, dt_s: float,
                    events: list[InterlockEvent] | None) -> list[InterlockEvent] | None:
        self._req_s[K.R_DT] = dt_s
        ip = self._iparams
        ip[K.I_ROW] = row
        ip[K.I_PROGRAM] = pid
        ip[K.I_NOW] = now
        flags = K.supervise(self._req_amp, self._req_s, self._prog_sf, self._prog_info,
                            self._caps, self._lim, self._z_ohm, self._blocked, self._prev_amp,
                            self._prev_s, self._out_amp, self._out_s, self._dose_ids,
                            self._dose_sums, ip, self._ev_contact, self._ev_req,
                            self._ev_allow, self._ev_ratio)
        o, s = self._out, self._out_s
        o.pulse_width_us = float(s[K.S_PW])
        o.frequency_hz = float(s[K.S_F])
        o.interphase_gap_us = float(s[K.S_IPG])
        o.case_ma = float(s[K.S_CASE])
        o.program_id = int(s[K.S_PROGRAM])
        o.waveform = int(s[K.S_WAVEFORM])
        if self._state in (_S.ARMED, _S.STIMULATING):
            self._state = _S.STIMULATING if o.program_id != PROGRAM_OFF else _S.ARMED
        if flags:
            for b in range(K.N_BITS):
                if (flags >> b) & 1:
                    self._active[b] += 1
            new = flags & ~self._prev_flags
            if new:
                for b in range(K.N_BITS):
                    if (new >> b) & 1:
                        events = self._add(events, R.KERNEL_REASONS[b],
                                           contact=int(self._ev_contact[b]),
                                           requested=float(self._ev_req[b]),
                                           allowed=float(self._ev_allow[b]))
        self._prev_flags = flags
        return events

    # ------------------------------------------------------------------ warm-up
    def warmup(self) -> None:
        """Compile every kernel with the real shapes (on scratch copies; state untouched)."""
        n = self._n
        req = np.zeros(n)
        req_s = np.zeros(K.N_REQ)
        prev_amp = np.zeros(n)
        prev_s = np.zeros(K.N_S)
        out_amp = np.zeros(n)
        out_s = np.zeros(K.N_S)
        ids = self._dose_ids.copy()
        sums = self._dose_sums.copy()
        ip = self._iparams.copy()
        evc = self._ev_contact.copy()
        evr = self._ev_req.copy()
        eva = self._ev_allow.copy()
        evq = self._ev_ratio.copy()
        K.request_finite(req, req_s)
        K.dose_used_uc(ids, sums, 0, self._bucket_ns, self._window_ns)
        for mode in (K.MODE_REQUEST, K.MODE_RAMP):
            req_s[K.R_MODE] = mode
            K.supervise(req, req_s, self._prog_sf, self._prog_info, self._caps, self._lim,
                        self._z_ohm.copy(), self._blocked.copy(), prev_amp, prev_s, out_amp,
                        out_s, ids, sums, ip, evc, evr, eva, evq)
