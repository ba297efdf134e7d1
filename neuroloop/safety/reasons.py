"""Reason codes of interlock events and violations, and the invariant each one protects.

A reason code is a short string (``InterlockEvent.reason``, ``Violation.reason``). Everything
about a reason is written once, in :data:`TABLE` (one :class:`Reason` row each: its name, its
kernel bit, the SAFETY.md invariant it protects, the unit of an event's ``requested`` /
``allowed`` values, whether the test-only switch ``_disabled_interlocks`` accepts it, whether
it is an event reason, and a description). :data:`BIT`, :data:`KERNEL_REASONS`,
:data:`INTERLOCKS`, :data:`INVARIANT`, :data:`UNIT`, :data:`DESCRIPTION` and :data:`REASONS`
are derived from it, and the compiled kernel takes its ``B_*`` bit constants from
:data:`BIT` (``tests/safety/test_reasons.py`` checks that they all agree).

The per-cycle interlocks evaluated by the compiled kernel have a bit (``bit >= 0``), used for
the kernel's result mask and for the test-only switch that disables one interlock.
"""

from __future__ import annotations

from typing import NamedTuple

__all__ = [
    "Reason", "TABLE", "REASONS", "INVARIANT", "UNIT", "DESCRIPTION", "BIT", "KERNEL_REASONS",
    "INTERLOCKS",
    # per-cycle (kernel) reasons
    "NONFINITE", "UNKNOWN_PROGRAM", "PROGRAM_PATTERN", "ENVELOPE", "PULSE_WIDTH", "FREQUENCY",
    "INTERPHASE_GAP", "PULSE_FEASIBILITY", "SHANNON", "CHARGE_DENSITY", "CHARGE_ABSOLUTE",
    "CONTACT_CURRENT", "TOTAL_CURRENT", "IMPEDANCE", "COMPLIANCE", "CONSERVATION",
    "CHARGE_BALANCE", "SLEW_UP", "DOSE",
    # state-machine reasons
    "BAD_REQUEST", "STALE_INPUT", "LOW_CONFIDENCE", "DECODER_INVALID", "FALLBACK", "RECOVERED",
    "DEADLINE_MISS", "DEADLINE_FAULT", "ESTOP", "ARM", "REARM", "DISARM", "ARM_REFUSED",
    "REARM_REFUSED", "DISARM_REFUSED", "HEARTBEAT_LOST", "DEVICE_FAULT", "IMPEDANCE_REPORT",
    "NOT_ARMED", "LATCHED", "CLOCK_BACKWARDS", "INTERNAL_ERROR", "RAMP_RATE", "BLANKING",
    "BURST", "DAILY_ON",
    # interlocks that are not a reason of their own
    "RECOVERY", "ESTOP_LATCH", "FAULT_LATCH", "ARMED_ONLY",
]

# The names. Each is used once more, in its TABLE row, which says everything else about it.
# --- per-cycle interlocks (compiled kernel) -------------------------------------------------
NONFINITE = "nonfinite"
UNKNOWN_PROGRAM = "unknown_program"
PROGRAM_PATTERN = "program_pattern"
ENVELOPE = "envelope"
PULSE_WIDTH = "pulse_width"
FREQUENCY = "frequency"
INTERPHASE_GAP = "interphase_gap"
PULSE_FEASIBILITY = "pulse_feasibility"
SHANNON = "shannon"
CHARGE_DENSITY = "charge_density"
CHARGE_ABSOLUTE = "charge_absolute"
CONTACT_CURRENT = "contact_current"
TOTAL_CURRENT = "total_current"
IMPEDANCE = "impedance"
COMPLIANCE = "compliance"
CONSERVATION = "conservation"
CHARGE_BALANCE = "charge_balance"
SLEW_UP = "slew_up"
DOSE = "dose"
# --- state machine -----------------------------------------------------------------------------
BAD_REQUEST = "bad_request"
STALE_INPUT = "stale_input"
LOW_CONFIDENCE = "low_confidence"
DECODER_INVALID = "decoder_invalid"
FALLBACK = "fallback"
RECOVERED = "recovered"
DEADLINE_MISS = "deadline_miss"
DEADLINE_FAULT = "deadline_fault"
ESTOP = "estop"
ARM = "arm"
REARM = "rearm"
DISARM = "disarm"
ARM_REFUSED = "arm_refused"
REARM_REFUSED = "rearm_refused"
DISARM_REFUSED = "disarm_refused"
HEARTBEAT_LOST = "heartbeat_lost"
DEVICE_FAULT = "device_fault"
IMPEDANCE_REPORT = "impedance_report"
NOT_ARMED = "not_armed"
LATCHED = "latched"
CLOCK_BACKWARDS = "clock_backwards"
INTERNAL_ERROR = "internal_error"
RAMP_RATE = "ramp_rate"
BLANKING = "blanking"
BURST = "burst"
DAILY_ON = "daily_on"
# --- interlocks that are not event reasons of their own (names for the test-only switch) -------
RECOVERY = "recovery"
ESTOP_LATCH = "estop_latch"
FAULT_LATCH = "fault_latch"
ARMED_ONLY = "armed_only"


class Reason(NamedTuple):
    """One row of :data:`TABLE`.

    Attributes
    ----------
    name : str
        The reason code.
    bit : int
        Bit of the compiled kernel's result mask (``_kernels.B_*``), or -1 when the reason is
        decided by the state machine in Python.
    invariant : int
        Number of the SAFETY.md invariant it protects (0: state-machine bookkeeping).
    unit : str
        Unit of an event's ``requested`` / ``allowed`` values ("" when they are NaN).
    interlock : bool
        The test-only switch ``SafetySupervisor(_disabled_interlocks=...)`` accepts the name.
    event : bool
        Events (and violations) carry this reason; False for an interlock that raises no
        event of its own (its effect shows through another reason).
    description : str
        What it means, for humans.
    """

    name: str
    bit: int
    invariant: int
    unit: str
    interlock: bool
    event: bool
    description: str


def _k(name: str, bit: int, invariant: int, unit: str, description: str) -> Reason:
    """A per-cycle interlock of the compiled kernel (always an interlock and an event)."""
    return Reason(name, bit, invariant, unit, True, True, description)


def _s(name: str, invariant: int, unit: str, description: str, *,
       interlock: bool = False) -> Reason:
    """A reason decided by the state machine (an event; maybe also a switchable interlock)."""
    return Reason(name, -1, invariant, unit, interlock, True, description)


def _i(name: str, invariant: int, description: str) -> Reason:
    """A switchable interlock of the state machine with no event of its own."""
    return Reason(name, -1, invariant, "", True, False, description)


#: Every reason and interlock, kernel bits in order first; the one place they are described.
TABLE: tuple[Reason, ...] = (
    # --- per-cycle interlocks (compiled kernel), in bit order ---
    _k(NONFINITE, 0, 3, "", "NaN/inf anywhere in the request -> zero output"),
    _k(UNKNOWN_PROGRAM, 1, 8, "program id",
       "non-zero request for a program that does not exist -> zero output"),
    _k(PROGRAM_PATTERN, 2, 8, "mA (contact current)",
       "request not on its program's contacts/fractions/PW/f/IPG; projected onto it"),
    _k(ENVELOPE, 3, 8, "mA (program amplitude)",
       "program amplitude outside the clinician's [min, max]; clamped into it"),
    _k(PULSE_WIDTH, 4, 3, "us", "phase width outside its range; clamped"),
    _k(FREQUENCY, 5, 3, "Hz", "pulse rate outside its range; clamped"),
    _k(INTERPHASE_GAP, 6, 3, "us", "interphase gap outside its range; clamped"),
    _k(PULSE_FEASIBILITY, 7, 4, "Hz", "(2 PW + IPG) f >= 1 s; frequency (then PW) lowered"),
    _k(SHANNON, 8, 1, "uC", "Q_c > sqrt(10^k A_c); common scale factor"),
    _k(CHARGE_DENSITY, 9, 2, "uC/cm^2", "Q_c / A_c > D_max; common scale factor"),
    _k(CHARGE_ABSOLUTE, 10, 2, "uC", "Q_c > absolute cap; common scale factor"),
    _k(CONTACT_CURRENT, 11, 3, "mA", "|I_c| > per-contact max; common scale factor"),
    _k(TOTAL_CURRENT, 12, 3, "mA", "summed cathodic current > total max; common scale factor"),
    _k(IMPEDANCE, 13, 13, "mA", "drive on a contact outside the impedance window; zeroed"),
    _k(COMPLIANCE, 14, 13, "V", "|I_c| Z_c > compliance voltage; common scale factor"),
    _k(CONSERVATION, 15, 6, "mA (sum of contacts + case)",
       "contacts + case do not sum to zero; rebalanced"),
    _k(CHARGE_BALANCE, 16, 5, "waveform code",
       "waveform other than symmetric biphasic; forced to it"),
    _k(SLEW_UP, 17, 7, "mA", "|I_c| rises faster than the up-rate; common scale factor"),
    _k(DOSE, 18, 16, "uC", "rolling-window charge budget spent; common scale factor"),
    # --- state machine ---
    _s(BAD_REQUEST, 3, "", "request of the wrong type/shape/dtype -> zero output"),
    _s(STALE_INPUT, 9, "ms", "input older than stale_input_ms", interlock=True),
    _s(LOW_CONFIDENCE, 9, "confidence", "decoder confidence below min_confidence (or NaN)",
       interlock=True),
    _s(DECODER_INVALID, 9, "", "the decoder flagged its output invalid", interlock=True),
    _s(FALLBACK, 9, "cycles", "N invalid cycles: entered HOLD (output = fallback)"),
    _s(RECOVERED, 9, "cycles", "M valid cycles: left HOLD"),
    _s(DEADLINE_MISS, 10, "cycles", "a cycle missed its deadline"),
    _s(DEADLINE_FAULT, 10, "cycles", "K consecutive misses: FAULT latched", interlock=True),
    _s(ESTOP, 12, "", "STOP: ESTOP latched"),
    _s(ARM, 12, "", "DISARMED -> ARMED, output starts from zero"),
    _s(REARM, 12, "", "FAULT/ESTOP -> ARMED, output starts from zero"),
    _s(DISARM, 0, "", "-> DISARMED, output zero"),
    _s(ARM_REFUSED, 12, "", "arm() in FAULT/ESTOP (use rearm())"),
    _s(REARM_REFUSED, 0, "", "rearm() when nothing is latched (use arm())"),
    _s(DISARM_REFUSED, 12, "", "disarm() cannot clear a latched FAULT/ESTOP"),
    _s(HEARTBEAT_LOST, 11, "", "link heartbeat lost -> HOLD", interlock=True),
    _s(DEVICE_FAULT, 0, "", "device reported a fault -> FAULT latched"),
    _s(IMPEDANCE_REPORT, 13, "ohm", "a contact's impedance is outside the window"),
    _s(NOT_ARMED, 12, "", "non-zero request while DISARMED"),
    _s(LATCHED, 12, "", "non-zero request while FAULT/ESTOP"),
    _s(CLOCK_BACKWARDS, 0, "ns", "now_ns went backwards; the last time is kept"),
    _s(INTERNAL_ERROR, 0, "", "unexpected exception inside step -> FAULT latched"),
    _s(RAMP_RATE, 19, "mA (summed cathodic current)",
       "summed cathodic current rises faster than ramp_up_max_ma_per_s; common scale factor",
       interlock=True),
    _s(BLANKING, 19, "mA (summed cathodic current)",
       "a rise within increase_blanking_s of the last fall; held at the previous level",
       interlock=True),
    _s(BURST, 20, "s", "one more cycle would make the burst longer than burst_max_s; output "
       "off until the request turns off", interlock=True),
    _s(DAILY_ON, 20, "s", "one more cycle would pass daily_on_max_s of on-time in the rolling "
       "24 h; output off", interlock=True),
    # --- interlocks that are not event reasons of their own ---
    _i(RECOVERY, 9, "M-cycle hysteresis before leaving HOLD"),
    _i(ESTOP_LATCH, 12, "STOP latches zero output until rearm"),
    _i(FAULT_LATCH, 10, "FAULT latches zero output until rearm"),
    _i(ARMED_ONLY, 12, "no output unless armed"),
)

#: Kernel reasons in bit order.
KERNEL_REASONS: tuple[str, ...] = tuple(r.name for r in sorted(
    (r for r in TABLE if r.bit >= 0), key=lambda r: r.bit))
#: Kernel bit of each kernel reason.
BIT: dict[str, int] = {r.name: r.bit for r in TABLE if r.bit >= 0}
#: Every interlock that the test-only switch ``_disabled_interlocks`` accepts.
INTERLOCKS: frozenset[str] = frozenset(r.name for r in TABLE if r.interlock)
#: Invariant number (SAFETY.md) that each reason protects (0: state-machine bookkeeping).
INVARIANT: dict[str, int] = {r.name: r.invariant for r in TABLE if r.event}
#: Unit of ``requested`` / ``allowed`` for each reason ("" when they are NaN).
UNIT: dict[str, str] = {r.name: r.unit for r in TABLE if r.event}
#: What each reason (and each switch-only interlock) means.
DESCRIPTION: dict[str, str] = {r.name: r.description for r in TABLE}
#: Every reason code (the event reasons, in table order).
REASONS: tuple[str, ...] = tuple(INVARIANT)
