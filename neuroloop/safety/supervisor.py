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
state transitions and builds events. The supervisor keeps its configuration (``_Config``,
frozen), its state (``_State``, everything carried from one call to the next, including the
arrays the kernel updates in place) and the kernel's per-cycle buffers (``_Scratch``) apart.
Per-cycle interlock events are edge-triggered: an event is raised in the cycle an interlock
starts acting (with the worst contact, requested and allowed value);
:meth:`SafetySupervisor.limit_cycles` counts every cycle it acted.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ..errors import ConfigError
from ..stimulation.command import PROGRAM_OFF, WAVEFORM_BIPHASIC_SYMMETRIC, StimCommand
from ..stimulation.electrodes import ElectrodeArray
from ..stimulation.programs import ProgramSet
from . import _kernels as K
from . import _ramp
from . import reasons as R
from .events import InterlockEvent, SupervisorState
from .limits import SafetyLimits

__all__ = ["SafetySupervisor", "check_programs"]

_S = SupervisorState
_EMPTY: tuple[InterlockEvent, ...] = ()
_N_DOSE_BUCKETS = 64
#: Slots of the rolling-24 h on-time ledger (bucket width 86400 s / 1440 = 60 s).
_N_DAY_BUCKETS = 1442
_DAY_NS = 86_400 * 1_000_000_000
_INT64_MAX = np.iinfo(np.int64).max

#: Slew credit starts this long after (re-)arming, ns. A device's own slew limit counts from
#: when its ARM arrives, which is after the host armed (listeners start, the ARM frame travels);
#: starting the host's credit later keeps its first steps within what the device accepts
#: (the device refuses, never clamps, so a host ahead of it would be refused all ramp long).
ARM_SLEW_GUARD_NS = 20_000_000


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


#: prog_info column <- ProgramSet.table() key.
_PROG_COLUMNS: tuple[tuple[int, str], ...] = (
    (K.P_HAS_PROGRAM, "has_program"), (K.P_USES_CASE, "uses_case"),
    (K.P_AMP_MIN, "amplitude_min_ma"), (K.P_AMP_MAX, "amplitude_max_ma"),
    (K.P_PW, "pulse_width_us"), (K.P_F, "frequency_hz"), (K.P_IPG, "interphase_gap_us"),
)
#: lim column <- SafetyLimits attribute (``L_HORIZON_S`` is the cycle period, not a limit).
_LIM_COLUMNS: tuple[tuple[int, str], ...] = (
    (K.L_CONTACT_MAX, "contact_current_max_ma"), (K.L_TOTAL_MAX, "total_current_max_ma"),
    (K.L_PW_MIN, "pulse_width_min_us"), (K.L_PW_MAX, "pulse_width_max_us"),
    (K.L_F_MIN, "frequency_min_hz"), (K.L_F_MAX, "frequency_max_hz"),
    (K.L_IPG_MIN, "interphase_gap_min_us"), (K.L_IPG_MAX, "interphase_gap_max_us"),
    (K.L_SLEW_UP, "slew_up_ma_per_s"), (K.L_SLEW_DOWN, "slew_down_ma_per_s"),
    (K.L_COMPLIANCE_V, "compliance_voltage_v"), (K.L_DOSE_BUDGET, "dose_budget_uc"),
)


@dataclass(frozen=True, slots=True, eq=False)
class _Config:
    """What a supervisor is built with; fixed for its life (the kernel only reads the arrays).

    Attributes
    ----------
    limits, array, programs, cycle_period_s
        The constructor's arguments (period in s).
    disabled : frozenset of str
        Interlocks switched off through the test-only hook.
    disabled_mask : int
        The kernel bits among them (``1 << reasons.BIT[name]``).
    n : int
        Number of contacts; ``shape`` is ``(n,)``.
    n_rows : int
        Rows of the program tables (program id = row).
    stale_ns, window_ns, bucket_ns : int
        Stale-input threshold, dose window and dose-ledger bucket width, ns.
    day_bucket_ns : int
        Bucket width of the rolling-24 h on-time ledger, ns (about 60 s).
    prog_sf : ndarray, (n_rows, n) float64
        Signed contact fraction of each program (anode +, cathode -).
    prog_info : ndarray, (n_rows, N_PROG) float64
        Program rows, columns ``_kernels.P_*``.
    caps : ndarray, (N_CAP, n) float64
        Per-contact charge caps (uC) and areas (cm^2), rows ``_kernels.C_*``.
    lim : ndarray, (N_LIM,) float64
        Scalar limits, columns ``_kernels.L_*``.
    """

    limits: SafetyLimits
    array: ElectrodeArray
    programs: ProgramSet
    cycle_period_s: float
    disabled: frozenset[str]
    disabled_mask: int
    n: int
    shape: tuple[int]
    n_rows: int
    stale_ns: int
    window_ns: int
    bucket_ns: int
    day_bucket_ns: int
    prog_sf: np.ndarray
    prog_info: np.ndarray
    caps: np.ndarray
    lim: np.ndarray

    @classmethod
    def build(cls, limits: SafetyLimits, array: ElectrodeArray, programs: ProgramSet,
              cycle_period_s: float, disabled: frozenset[str]) -> _Config:
        """Pack ``limits``, the contact areas and the program set into the kernel's tables."""
        n = array.n_contacts
        t = programs.table()
        prog_sf = np.ascontiguousarray(t["signed_fraction"], dtype=np.float64)
        n_rows = prog_sf.shape[0]
        info = np.zeros((n_rows, K.N_PROG))
        for col, key in _PROG_COLUMNS:
            info[:, col] = t[key]
        areas = contact_areas_cm2(limits, array)
        caps = np.zeros((K.N_CAP, n))
        caps[K.C_SHANNON] = np.sqrt(10.0 ** limits.shannon_k * areas)
        caps[K.C_DENSITY] = limits.charge_density_max_uc_per_cm2 * areas
        caps[K.C_ABSOLUTE] = limits.charge_per_phase_max_uc
        caps[K.C_AREA] = areas
        lim = np.zeros(K.N_LIM)
        for col, name in _LIM_COLUMNS:
            lim[col] = getattr(limits, name)
        lim[K.L_HORIZON_S] = cycle_period_s
        window_ns = int(round(limits.dose_window_s * 1e9))
        mask = 0
        for name in disabled:
            if name in R.BIT:
                mask |= 1 << R.BIT[name]
        return cls(limits=limits, array=array, programs=programs,
                   cycle_period_s=cycle_period_s, disabled=disabled, disabled_mask=mask, n=n,
                   shape=(n,), n_rows=n_rows,
                   stale_ns=int(round(limits.stale_input_ms * 1e6)), window_ns=window_ns,
                   bucket_ns=max(1, -(-window_ns // (_N_DOSE_BUCKETS - 2))),
                   day_bucket_ns=-(-_DAY_NS // (_N_DAY_BUCKETS - 2)),
                   prog_sf=prog_sf, prog_info=info, caps=caps, lim=lim)


@dataclass(slots=True, eq=False)
class _State:
    """Everything a supervisor remembers from one call to the next (all of its mutable state).

    Attributes
    ----------
    state : SupervisorState
        Current state.
    last_ns, last_step_ns : int or None
        Supervisor clock at the last call / the last ``step``, ns (None: never).
    cycle : int
        Cycle of the last step.
    invalid_run, valid_run, miss_run : int
        Consecutive invalid-input cycles, valid cycles in HOLD, missed deadlines.
    last_invalid_reason : str
        Reason of the current invalid run ("" when input is valid).
    prev_flags : int
        Kernel bits that acted in the last kernel run (events are edge-triggered).
    blocked_reported : bool
        A request was already reported as ignored in the current blocking state.
    time_in_state : list of int
        ns spent in each state, indexed by ``SupervisorState``.
    counts : dict
        Events raised, by reason.
    active : ndarray, (N_BITS,) int64
        Cycles in which each kernel interlock acted.
    out : StimCommand
        The command returned by ``step``; ``out_amp`` (n,) mA is its ``amplitude_ma``.
    prev_amp : ndarray, (n,) float64
        Last emitted contact currents, mA (the kernel's slew and ramp reference).
    prev_s : ndarray, (N_S,) float64
        Last emitted command scalars, columns ``_kernels.S_*``.
    z_ohm : ndarray, (n,) float64
        Last reported impedance per contact, ohm (NaN: never measured).
    blocked : ndarray, (n,) bool
        Contacts that may not be driven.
    dose_ids : ndarray, (N_DOSE_BUCKETS,) int64
        Bucket index held by each dose-ledger slot.
    dose_sums : ndarray, (N_DOSE_BUCKETS,) float64
        Charge committed in each slot, uC.
    day_ids, day_sums : ndarray, (N_DAY_BUCKETS,)
        The rolling-24 h on-time ledger (bucket index, on-time in s), like the dose ledger.
    burst_on_s : float
        Uninterrupted on-time emitted so far in the current burst, s.
    burst_cut : bool
        The current burst reached ``burst_max_s``: output stays off until the request is off.
    day_reported : bool
        A ``daily_on`` event was raised for the current refusal run.
    """

    out: StimCommand
    out_amp: np.ndarray
    prev_amp: np.ndarray
    prev_s: np.ndarray
    z_ohm: np.ndarray
    blocked: np.ndarray
    dose_ids: np.ndarray
    dose_sums: np.ndarray
    day_ids: np.ndarray
    day_sums: np.ndarray
    active: np.ndarray
    time_in_state: list[int]
    counts: dict[str, int]
    state: SupervisorState = _S.DISARMED
    last_ns: int | None = None
    last_step_ns: int | None = None
    cycle: int = 0
    invalid_run: int = 0
    valid_run: int = 0
    miss_run: int = 0
    last_invalid_reason: str = ""
    prev_flags: int = 0
    blocked_reported: bool = False
    #: invariant 19: the step's time, the summed cathodic current of the last step's output,
    #: when it last fell (ns) and which of ramp_rate/blanking acted last step ("" none)
    step_now_ns: int = 0
    last_step_total_ma: float = 0.0
    last_fall_ns: int = -(1 << 62)
    ramp_acting: str = ""
    burst_on_s: float = 0.0
    burst_cut: bool = False
    day_reported: bool = False

    @classmethod
    def initial(cls, n: int) -> _State:
        """DISARMED, output off, nothing measured, an empty dose ledger."""
        out_amp = np.zeros(n)
        prev_s = np.zeros(K.N_S)
        prev_s[K.S_PROGRAM] = PROGRAM_OFF
        return cls(out=StimCommand(amplitude_ma=out_amp), out_amp=out_amp,
                   prev_amp=np.zeros(n), prev_s=prev_s, z_ohm=np.full(n, np.nan),
                   blocked=np.zeros(n, dtype=np.bool_),
                   dose_ids=np.full(_N_DOSE_BUCKETS, np.iinfo(np.int64).min // 2,
                                    dtype=np.int64),
                   dose_sums=np.zeros(_N_DOSE_BUCKETS),
                   day_ids=np.full(_N_DAY_BUCKETS, np.iinfo(np.int64).min // 2,
                                   dtype=np.int64),
                   day_sums=np.zeros(_N_DAY_BUCKETS),
                   active=np.zeros(K.N_BITS, dtype=np.int64), time_in_state=[0] * len(_S),
                   counts={})


@dataclass(frozen=True, slots=True, eq=False)
class _Scratch:
    """The kernel's per-cycle buffers: each is rewritten before it is read, every step.

    Attributes
    ----------
    req_amp : ndarray, (n,) float64
        The request's contact currents, mA.
    req_s : ndarray, (N_REQ,) float64
        The request's scalars and the cycle's mode, columns ``_kernels.R_*``.
    out_s : ndarray, (N_S,) float64
        The kernel's output scalars, columns ``_kernels.S_*``.
    iparams : ndarray, (N_I,) int64
        Integer parameters, columns ``_kernels.I_*`` (bucket, window and disabled mask are
        set once here).
    ev : ndarray, (N_EV, N_BITS) float64
        Worst occurrence of each kernel reason, rows ``_kernels.EV_*``.
    """

    req_amp: np.ndarray
    req_s: np.ndarray
    out_s: np.ndarray
    iparams: np.ndarray
    ev: np.ndarray

    @classmethod
    def build(cls, cfg: _Config) -> _Scratch:
        iparams = np.zeros(K.N_I, dtype=np.int64)
        iparams[K.I_BUCKET_NS] = cfg.bucket_ns
        iparams[K.I_WINDOW_NS] = cfg.window_ns
        iparams[K.I_DISABLED] = cfg.disabled_mask
        return cls(req_amp=np.zeros(cfg.n), req_s=np.zeros(K.N_REQ), out_s=np.zeros(K.N_S),
                   iparams=iparams, ev=np.zeros((K.N_EV, K.N_BITS)))


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

    Notes
    -----
    The supervisor holds three things: its configuration (``_cfg``, a frozen ``_Config``:
    the arguments and the kernel's read-only tables), its state (``_st``, a ``_State``:
    everything carried from one call to the next, including the arrays the kernel updates in
    place) and the kernel's per-cycle buffers (``_scratch``, a ``_Scratch``).
    """

    __slots__ = ("_cfg", "_st", "_scratch", "_blank_ns")
    #: A live run's shadow cycle (:mod:`neuroloop.runtime.shadow`) gets a private copy of the
    #: state and shares the read-only configuration and the per-cycle scratch, which every
    #: step rewrites before reading.
    SHADOW_STATE: tuple[str, ...] = ("_st",)

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
        cfg = _Config.build(limits, array, programs, float(cycle_period_s),
                           frozenset(_disabled_interlocks))
        self._cfg = cfg
        self._blank_ns = int(round(limits.increase_blanking_s * 1e9))
        self._st = _State.initial(cfg.n)
        self._scratch = _Scratch.build(cfg)

    # ------------------------------------------------------------------ properties
    @property
    def limits(self) -> SafetyLimits:
        """The limits it enforces."""
        return self._cfg.limits

    @property
    def array(self) -> ElectrodeArray:
        """The stimulation array."""
        return self._cfg.array

    @property
    def programs(self) -> ProgramSet:
        """The clinician's programs."""
        return self._cfg.programs

    @property
    def cycle_period_s(self) -> float:
        """Nominal control period, s."""
        return self._cfg.cycle_period_s

    @property
    def state(self) -> SupervisorState:
        """Current state."""
        return self._st.state

    @property
    def output(self) -> StimCommand:
        """The last command returned by :meth:`step` (owned by the supervisor)."""
        return self._st.out

    @property
    def impedance_ohm(self) -> np.ndarray:
        """Last reported impedance per contact, ohm (NaN: never measured); a copy."""
        return self._st.z_ohm.copy()

    @property
    def blocked_contacts(self) -> np.ndarray:
        """Contacts that may not be driven (impedance outside the window); a copy."""
        return self._st.blocked.copy()

    @property
    def disabled_interlocks(self) -> frozenset[str]:
        """Interlocks switched off through the test-only hook (empty in real use)."""
        return self._cfg.disabled

    def dose_used_uc(self, now_ns: int) -> float:
        """Charge committed in the rolling window ending at ``now_ns`` (conservative), uC."""
        cfg, st = self._cfg, self._st
        return float(K.dose_used_uc(st.dose_ids, st.dose_sums, int(now_ns), cfg.bucket_ns,
                                    cfg.window_ns))

    def time_in_state_ns(self) -> dict[str, int]:
        """Time spent in each state (by the clock handed to the supervisor), ns."""
        return {s.name: int(self._st.time_in_state[s]) for s in _S}

    def counters(self) -> dict[str, int]:
        """Number of interlock events raised, by reason."""
        return dict(self._st.counts)

    def limit_cycles(self) -> dict[str, int]:
        """Number of cycles in which each per-cycle interlock acted (non-zero only)."""
        active = self._st.active
        return {R.KERNEL_REASONS[b]: int(active[b]) for b in range(K.N_BITS) if active[b]}

    # ------------------------------------------------------------------ helpers
    def _on(self, name: str) -> bool:
        return name not in self._cfg.disabled

    def _clock(self, now_ns: int, events: list[InterlockEvent] | None
               ) -> tuple[int, list[InterlockEvent] | None]:
        """Advance the supervisor clock (monotonic guard) and the time-in-state tally."""
        st = self._st
        try:
            now = int(now_ns)
        except (TypeError, ValueError, OverflowError):
            now = st.last_ns if st.last_ns is not None else 0
        last = st.last_ns
        if last is not None:
            if now < last:
                events = self._add(events, R.CLOCK_BACKWARDS, requested=float(now),
                                   allowed=float(last),
                                   detail="now_ns went backwards; keeping the last time")
                now = last
            st.time_in_state[st.state] += now - last
        st.last_ns = now
        return now, events

    def _event(self, reason: str, *, contact: int = -1, requested: float = math.nan,
               allowed: float = math.nan, detail: str = "") -> InterlockEvent:
        st = self._st
        st.counts[reason] = st.counts.get(reason, 0) + 1
        return InterlockEvent(reason, st.cycle, int(st.last_ns or 0), int(contact),
                              float(requested), float(allowed), st.state, detail)

    def _add(self, events: list[InterlockEvent] | None, reason: str, **kw: object
             ) -> list[InterlockEvent]:
        if events is None:
            events = []
        events.append(self._event(reason, **kw))  # type: ignore[arg-type]
        return events

    def _zero_output(self) -> None:
        st = self._st
        st.out_amp[:] = 0.0
        st.prev_amp[:] = 0.0
        st.prev_s[:] = 0.0
        st.prev_s[K.S_PROGRAM] = PROGRAM_OFF
        st.prev_flags = 0
        out = st.out
        out.pulse_width_us = 0.0
        out.frequency_hz = 0.0
        out.interphase_gap_us = 0.0
        out.case_ma = 0.0
        out.program_id = PROGRAM_OFF
        out.waveform = WAVEFORM_BIPHASIC_SYMMETRIC

    def _enter(self, state: SupervisorState) -> None:
        st = self._st
        if state != st.state:
            st.state = state
            st.blocked_reported = False
        if state in (_S.DISARMED, _S.FAULT, _S.ESTOP, _S.HOLD):
            self._zero_output()
        if state in (_S.ARMED, _S.DISARMED, _S.FAULT, _S.ESTOP):
            st.invalid_run = 0
            st.valid_run = 0
            st.last_invalid_reason = ""
        if state == _S.ARMED:
            st.miss_run = 0

    def _load_request(self, request: StimCommand) -> tuple[bool, int, int]:
        """Copy ``request`` into the preallocated buffers; (ok, program_row, program_id)."""
        cfg, sc = self._cfg, self._scratch
        try:
            amp = request.amplitude_ma
            if (type(amp) is not np.ndarray or amp.shape != cfg.shape
                    or amp.dtype.kind not in "fiub"):
                return False, -1, PROGRAM_OFF
            np.copyto(sc.req_amp, amp, casting="unsafe")
            r = sc.req_s
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
        row = pid if 0 <= pid < cfg.n_rows else -1
        return True, row, pid

    def _finish(self, events: list[InterlockEvent] | None
                ) -> tuple[StimCommand, Sequence[InterlockEvent]]:
        st = self._st
        # invariant 19 bookkeeping: when the summed cathodic current of a step's output last
        # fell below the previous step's (whatever made it fall)
        total = _ramp.cathodic_total(st.out_amp)
        if total < st.last_step_total_ma - 1e-9:
            st.last_fall_ns = st.step_now_ns
        st.last_step_total_ma = total
        return st.out, (_EMPTY if events is None else events)

    # ------------------------------------------------------------------ commands
    def arm(self, now_ns: int) -> list[InterlockEvent]:
        """DISARMED -> ARMED (output starts from zero). Refused (event) in FAULT/ESTOP."""
        now, events = self._clock(now_ns, None)
        events = events or []
        state = self._st.state
        if state == _S.DISARMED:
            self._enter(_S.ARMED)
            self._zero_output()
            self._st.last_step_ns = now + ARM_SLEW_GUARD_NS
            events.append(self._event(R.ARM, detail="armed; output starts from zero"))
        elif state in (_S.FAULT, _S.ESTOP):
            events.append(self._event(R.ARM_REFUSED, detail=f"{state.name} is latched; "
                                      f"clear it with rearm()"))
        return events

    def rearm(self, now_ns: int) -> list[InterlockEvent]:
        """FAULT/ESTOP -> ARMED, from zero amplitude. Refused (event) when nothing is latched."""
        now, events = self._clock(now_ns, None)
        events = events or []
        state = self._st.state
        if state in (_S.FAULT, _S.ESTOP):
            self._enter(_S.ARMED)
            self._zero_output()
            self._st.last_step_ns = now + ARM_SLEW_GUARD_NS
            events.append(self._event(R.REARM, detail=f"re-armed from {state.name}; output "
                                      f"starts from zero"))
        else:
            events.append(self._event(R.REARM_REFUSED, detail=f"nothing latched in "
                                      f"{state.name}; use arm()"))
        return events

    def disarm(self, now_ns: int) -> list[InterlockEvent]:
        """Any non-latched state -> DISARMED (output zero). Cannot clear FAULT/ESTOP."""
        now, events = self._clock(now_ns, None)
        events = events or []
        state = self._st.state
        if state in (_S.FAULT, _S.ESTOP):
            events.append(self._event(R.DISARM_REFUSED, detail=f"{state.name} is "
                                      f"latched; clear it with rearm()"))
        elif state != _S.DISARMED:
            self._enter(_S.DISARMED)
            events.append(self._event(R.DISARM, detail="disarmed; output zero"))
        return events

    def estop(self, now_ns: int) -> list[InterlockEvent]:
        """STOP: ESTOP latched, output zero from the next step until :meth:`rearm`."""
        now, events = self._clock(now_ns, None)
        events = events or []
        if not self._on(R.ESTOP_LATCH):
            return events
        if self._st.state != _S.ESTOP:
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
        st = self._st
        if st.state in (_S.ARMED, _S.STIMULATING, _S.HOLD):
            entering = st.state != _S.HOLD
            self._enter(_S.HOLD)
            st.valid_run = 0
            if entering:
                events.append(self._event(R.HEARTBEAT_LOST, detail="link heartbeat lost; HOLD"))
        return events

    def report_device_fault(self, now_ns: int, detail: str = "") -> list[InterlockEvent]:
        """The device reported a fault: FAULT latched (ESTOP stays ESTOP)."""
        now, events = self._clock(now_ns, None)
        events = events or []
        if self._st.state != _S.ESTOP:
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
        cfg, st = self._cfg, self._st
        lo, hi = cfg.limits.impedance_min_ohm, cfg.limits.impedance_max_ohm
        try:
            z = np.asarray(impedance_ohm, dtype=np.float64)
            ok = z.shape == cfg.shape
        except Exception:
            ok = False
        if not ok:
            st.z_ohm[:] = np.nan
            st.blocked[:] = True
            events.append(self._event(R.IMPEDANCE_REPORT, detail=f"malformed impedance report "
                                      f"(expected {cfg.n} values); every contact blocked"))
            return events
        was = st.blocked.copy()
        st.z_ohm[:] = z
        with np.errstate(invalid="ignore"):
            inside = (z >= lo) & (z <= hi)
        st.blocked[:] = ~inside
        for c in np.flatnonzero(st.blocked & ~was):
            zc = float(z[c])
            allowed = hi if zc > hi else lo
            events.append(self._event(R.IMPEDANCE_REPORT, contact=int(c), requested=zc,
                                      allowed=allowed,
                                      detail=f"{cfg.array.contact_names[c]} impedance outside "
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
                return self._st.out, [self._event(R.INTERNAL_ERROR, detail=msg)]
            except Exception:
                self._st.state = _S.FAULT
                self._st.out_amp[:] = 0.0
                return self._st.out, _EMPTY

    def _step(self, request: StimCommand, now_ns: int, input_ns: int | None,
              decoder_valid: bool, confidence: float, deadline_missed: bool
              ) -> tuple[StimCommand, Sequence[InterlockEvent]]:
        cfg, st = self._cfg, self._st
        limits = cfg.limits
        last_step = st.last_step_ns
        now, events = self._clock(now_ns, None)
        st.step_now_ns = now
        # inside the guard after ARM the reference stays at ARM + guard (no credit accrues)
        st.last_step_ns = now if last_step is None else max(now, last_step)
        # slew step: elapsed time since the previous step, at most one period (seconds, not
        # rounded nanoseconds, so that validate(..., dt_s=cycle_period_s) agrees exactly)
        period = cfg.cycle_period_s
        dt_s = period if last_step is None else min(max((now - last_step) / 1e9, 0.0), period)
        try:
            cycle = int(request.cycle)
        except Exception:
            cycle = st.cycle + 1
        st.cycle = cycle
        st.out.cycle = cycle

        # deadline accounting (all non-latched states)
        if deadline_missed and self._on(R.DEADLINE_FAULT):
            st.miss_run += 1
            if st.state not in (_S.FAULT, _S.ESTOP):
                if st.miss_run == 1:
                    events = self._add(events, R.DEADLINE_MISS, requested=1.0,
                                       allowed=float(limits.deadline_miss_limit))
                if st.miss_run >= limits.deadline_miss_limit:
                    self._enter(_S.FAULT)
                    events = self._add(events, R.DEADLINE_FAULT,
                                       requested=float(st.miss_run),
                                       allowed=float(limits.deadline_miss_limit - 1),
                                       detail="consecutive deadline misses; FAULT latched")
        else:
            st.miss_run = 0

        state = st.state
        blocked_state = (state == _S.ESTOP
                         or (state == _S.FAULT and self._on(R.FAULT_LATCH))
                         or (state == _S.DISARMED and self._on(R.ARMED_ONLY)))
        ok, row, pid = self._load_request(request)
        if blocked_state:
            self._zero_output()
            if not st.blocked_reported and (not ok or not self._request_is_off()):
                st.blocked_reported = True
                reason = R.NOT_ARMED if state == _S.DISARMED else R.LATCHED
                events = self._add(events, reason,
                                   detail=f"request ignored in {state.name}; output zero")
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
        elif not (conf >= limits.min_confidence) and self._on(R.LOW_CONFIDENCE):
            soft = R.LOW_CONFIDENCE
        elif input_ns is not None and self._on(R.STALE_INPUT):
            try:
                age = now - int(input_ns)
            except Exception:
                age = _INT64_MAX
            if age > cfg.stale_ns:
                soft = R.STALE_INPUT
        sc = self._scratch
        hard = ""
        if not ok:
            hard = R.BAD_REQUEST
        elif self._on(R.NONFINITE) and not K.request_finite(sc.req_amp, sc.req_s):
            hard = R.NONFINITE

        if soft or hard:
            reason = hard or soft
            st.invalid_run += 1
            st.valid_run = 0
            if st.invalid_run == 1 or reason != st.last_invalid_reason:
                events = self._add(events, reason, requested=self._invalid_requested(
                    reason, conf, now, input_ns), allowed=self._invalid_allowed(reason),
                    detail=f"invalid input ({st.invalid_run} of "
                    f"{limits.fallback_cycles} before HOLD)")
            st.last_invalid_reason = reason
            if st.state == _S.HOLD:
                self._zero_output()
                return self._finish(events)
            if st.invalid_run >= limits.fallback_cycles:
                self._enter(_S.HOLD)
                events = self._add(events, R.FALLBACK, requested=float(st.invalid_run),
                                   allowed=float(limits.fallback_cycles),
                                   detail="fallback: output zero until "
                                   f"{limits.recovery_cycles} valid cycles")
                return self._finish(events)
            if hard:
                self._zero_output()
                if st.state == _S.STIMULATING:
                    st.state = _S.ARMED
                return self._finish(events)
            # ramp toward the fallback over the remaining cycles
            left = limits.fallback_cycles - st.invalid_run
            sc.req_s[K.R_MODE] = K.MODE_RAMP
            sc.req_s[K.R_RAMP] = left / (left + 1.0)
            events = self._run_kernel(row, pid, now, dt_s, events)
            return self._finish(events)

        # valid input
        st.invalid_run = 0
        st.last_invalid_reason = ""
        if st.state == _S.HOLD:
            st.valid_run += 1
            if st.valid_run < limits.recovery_cycles and self._on(R.RECOVERY):
                self._zero_output()
                return self._finish(events)
            st.state = _S.ARMED
            st.valid_run = 0
            events = self._add(events, R.RECOVERED, requested=float(limits.recovery_cycles),
                               allowed=float(limits.recovery_cycles),
                               detail="valid input again; closed loop resumes from zero")
        sc.req_s[K.R_MODE] = K.MODE_REQUEST
        events = self._run_kernel(row, pid, now, dt_s, events)
        return self._finish(events)

    def _request_is_off(self) -> bool:
        sc = self._scratch
        # count_nonzero, not any(): a quarter of the cost per cycle (NaN counts as non-zero)
        return np.count_nonzero(sc.req_amp) == 0 and sc.req_s[K.R_CASE] == 0.0

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
            return self._cfg.limits.min_confidence
        if reason == R.STALE_INPUT:
            return self._cfg.limits.stale_input_ms
        return math.nan

    def _run_kernel(self, row: int, pid: int, now: int, dt_s: float,
                    events: list[InterlockEvent] | None) -> list[InterlockEvent] | None:
        cfg, st, sc = self._cfg, self._st, self._scratch
        sc.req_s[K.R_DT] = dt_s
        ip = sc.iparams
        ip[K.I_ROW] = row
        ip[K.I_PROGRAM] = pid
        ip[K.I_NOW] = now
        ref_total = _ramp.cathodic_total(st.prev_amp)  # what the output rises from
        flags = K.supervise(sc.req_amp, sc.req_s, cfg.prog_sf, cfg.prog_info, cfg.caps,
                            cfg.lim, st.z_ohm, st.blocked, st.prev_amp, st.prev_s, st.out_amp,
                            sc.out_s, st.dose_ids, st.dose_sums, ip, sc.ev)
        o, s = st.out, sc.out_s
        o.pulse_width_us = float(s[K.S_PW])
        o.frequency_hz = float(s[K.S_F])
        o.interphase_gap_us = float(s[K.S_IPG])
        o.case_ma = float(s[K.S_CASE])
        o.program_id = int(s[K.S_PROGRAM])
        o.waveform = int(s[K.S_WAVEFORM])
        events = self._ramp_guard(ref_total, now, dt_s, events)
        if o.program_id != PROGRAM_OFF or st.burst_on_s or st.burst_cut:
            events = self._burst_gate(now, events)
        if st.state in (_S.ARMED, _S.STIMULATING):
            st.state = _S.STIMULATING if o.program_id != PROGRAM_OFF else _S.ARMED
        if flags:
            active = st.active
            for b in range(K.N_BITS):
                if (flags >> b) & 1:
                    active[b] += 1
            new = flags & ~st.prev_flags
            if new:
                ev = sc.ev
                for b in range(K.N_BITS):
                    if (new >> b) & 1:
                        events = self._add(events, R.KERNEL_REASONS[b],
                                           contact=int(ev[K.EV_CONTACT, b]),
                                           requested=float(ev[K.EV_REQ, b]),
                                           allowed=float(ev[K.EV_ALLOW, b]))
        st.prev_flags = flags
        return events

    def _ramp_guard(self, ref_total: float, now: int, dt_s: float,
                    events: list[InterlockEvent] | None) -> list[InterlockEvent] | None:
        """Invariant 19 on the kernel's output: the summed cathodic current rises at most
        ``ramp_up_max_ma_per_s * dt_s`` above ``ref_total`` (the last output) and not at all
        within ``increase_blanking_s`` of its last fall. Only ever scales the output down
        (all contacts and the case by one factor, so balance and conservation hold)."""
        st = self._st
        total = _ramp.cathodic_total(st.out_amp)
        if not total > ref_total + 1e-12:
            st.ramp_acting = ""
            return events
        allowed, reason = total, ""
        if (self._blank_ns > 0 and now - st.last_fall_ns < self._blank_ns
                and self._on(R.BLANKING)):
            allowed, reason = ref_total, R.BLANKING
        elif self._on(R.RAMP_RATE):
            cap = ref_total + self._cfg.limits.ramp_up_max_ma_per_s * dt_s
            if total > cap:
                allowed, reason = cap, R.RAMP_RATE
        if not reason:
            st.ramp_acting = ""
            return events
        factor = allowed / total
        _ramp.scale_output(st.out_amp, st.prev_amp, factor)
        o = st.out
        o.case_ma = o.case_ma * factor
        st.prev_s[K.S_CASE] = o.case_ma
        if not allowed > 0.0:  # held at zero: the command is off
            st.prev_s[:] = 0.0
            st.prev_s[K.S_PROGRAM] = PROGRAM_OFF
            o.pulse_width_us = o.frequency_hz = o.interphase_gap_us = o.case_ma = 0.0
            o.program_id = PROGRAM_OFF
        if reason != st.ramp_acting:
            events = self._add(events, reason, requested=total, allowed=allowed,
                               detail="summed cathodic current held to the ramp limit"
                               if reason == R.RAMP_RATE else "no rise inside the blanking "
                               "period after a fall")
        st.ramp_acting = reason
        return events

    def _burst_gate(self, now: int, events: list[InterlockEvent] | None
                    ) -> list[InterlockEvent] | None:
        """Invariant 20 after the kernel: cut the output when one more cycle would make the
        burst longer than ``burst_max_s`` (and keep it off until the request turns off), or
        pass ``daily_on_max_s`` of on-time in the rolling 24 h; else account this cycle."""
        cfg, st = self._cfg, self._st
        lim = cfg.limits
        period = cfg.cycle_period_s
        if self._request_is_off():
            st.burst_cut = False
        if st.out.program_id == PROGRAM_OFF:
            st.burst_on_s = 0.0
            st.day_reported = False
            return events
        if st.burst_cut and self._on(R.BURST):
            self._zero_output()
            st.burst_on_s = 0.0
            return events
        if self._on(R.BURST) and st.burst_on_s + period > lim.burst_max_s * (1.0 - 1e-12):
            events = self._add(events, R.BURST, requested=st.burst_on_s + period,
                               allowed=lim.burst_max_s,
                               detail="burst cut; output off until the request turns off")
            self._zero_output()
            st.burst_on_s = 0.0
            st.burst_cut = True
            return events
        used = K.dose_used_uc(st.day_ids, st.day_sums, now, cfg.day_bucket_ns, _DAY_NS)
        if self._on(R.DAILY_ON) and used + period > lim.daily_on_max_s * (1.0 - 1e-12):
            if not st.day_reported:
                events = self._add(events, R.DAILY_ON, requested=used + period,
                                   allowed=lim.daily_on_max_s,
                                   detail="rolling 24 h on-time spent; output off")
                st.day_reported = True
            self._zero_output()
            st.burst_on_s = 0.0
            return events
        st.burst_on_s += period
        K._commit_dose(st.day_ids, st.day_sums, now, cfg.day_bucket_ns, period)
        return events

    def day_on_time_s(self, now_ns: int) -> float:
        """On-time committed in the rolling 24 h ending at ``now_ns`` (conservative), s."""
        cfg, st = self._cfg, self._st
        return float(K.dose_used_uc(st.day_ids, st.day_sums, int(now_ns), cfg.day_bucket_ns,
                                    _DAY_NS))

    # ------------------------------------------------------------------ warm-up
    def warmup(self) -> None:
        """Compile every kernel with the real shapes (on scratch copies; state untouched)."""
        cfg, st, sc = self._cfg, self._st, self._scratch
        n = cfg.n
        req = np.zeros(n)
        req_s = np.zeros(K.N_REQ)
        prev_amp = np.zeros(n)
        prev_s = np.zeros(K.N_S)
        out_amp = np.zeros(n)
        out_s = np.zeros(K.N_S)
        ids = st.dose_ids.copy()
        sums = st.dose_sums.copy()
        ip = sc.iparams.copy()
        ev = sc.ev.copy()
        K.request_finite(req, req_s)
        _ramp.cathodic_total(req)
        _ramp.scale_output(out_amp, prev_amp, 1.0)
        K.dose_used_uc(ids, sums, 0, cfg.bucket_ns, cfg.window_ns)
        # the burst gate's day ledger (_burst_gate): the same kernels, called from Python
        day_ids, day_sums = st.day_ids.copy(), st.day_sums.copy()
        K.dose_used_uc(day_ids, day_sums, 0, cfg.day_bucket_ns, _DAY_NS)
        K._commit_dose(day_ids, day_sums, 0, cfg.day_bucket_ns, cfg.cycle_period_s)
        for mode in (K.MODE_REQUEST, K.MODE_RAMP):
            req_s[K.R_MODE] = mode
            K.supervise(req, req_s, cfg.prog_sf, cfg.prog_info, cfg.caps, cfg.lim,
                        st.z_ohm.copy(), st.blocked.copy(), prev_amp, prev_s, out_amp, out_s,
                        ids, sums, ip, ev)
