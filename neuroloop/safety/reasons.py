"""Reason codes of interlock events and violations, and the invariant each one protects.

A reason code is a short string (``InterlockEvent.reason``, ``Violation.reason``). The unit of
an event's ``requested`` / ``allowed`` values depends on the reason and is listed here.

The per-cycle interlocks evaluated by the compiled kernel also have a bit (``BIT``), used for
the kernel's result mask and for the test-only switch that disables one interlock.
"""

from __future__ import annotations

__all__ = [
    "REASONS", "INVARIANT", "UNIT", "BIT", "KERNEL_REASONS", "INTERLOCKS",
    # per-cycle (kernel) reasons
    "NONFINITE", "UNKNOWN_PROGRAM", "PROGRAM_PATTERN", "ENVELOPE", "PULSE_WIDTH", "FREQUENCY",
    "INTERPHASE_GAP", "PULSE_FEASIBILITY", "SHANNON", "CHARGE_DENSITY", "CHARGE_ABSOLUTE",
    "CONTACT_CURRENT", "TOTAL_CURRENT", "IMPEDANCE", "COMPLIANCE", "CONSERVATION",
    "CHARGE_BALANCE", "SLEW_UP", "DOSE",
    # state-machine reasons
    "BAD_REQUEST", "STALE_INPUT", "LOW_CONFIDENCE", "DECODER_INVALID", "FALLBACK", "RECOVERED",
    "DEADLINE_MISS", "DEADLINE_FAULT", "ESTOP", "ARM", "REARM", "DISARM", "ARM_REFUSED",
    "REARM_REFUSED", "DISARM_REFUSED", "HEARTBEAT_LOST", "DEVICE_FAULT", "IMPEDANCE_REPORT",
    "NOT_ARMED", "LATCHED", "CLOCK_BACKWARDS", "INTERNAL_ERROR",
    # interlocks that are not a reason of their own
    "RECOVERY", "ESTOP_LATCH", "FAULT_LATCH", "ARMED_ONLY",
]

# --- per-cycle interlocks (compiled kernel) -------------------------------------------------
NONFINITE = "nonfinite"                # NaN/inf anywhere in the request -> zero output
UNKNOWN_PROGRAM = "unknown_program"    # non-zero request for a program that does not exist
PROGRAM_PATTERN = "program_pattern"    # request not on its program's contacts/fractions/PW/f/IPG
ENVELOPE = "envelope"                  # program amplitude outside the clinician's [min, max]
PULSE_WIDTH = "pulse_width"            # phase width outside its range
FREQUENCY = "frequency"                # pulse rate outside its range
INTERPHASE_GAP = "interphase_gap"      # interphase gap outside its range
PULSE_FEASIBILITY = "pulse_feasibility"  # (2 PW + IPG) f >= 1 s
SHANNON = "shannon"                    # Q_c > sqrt(10^k A_c)
CHARGE_DENSITY = "charge_density"      # Q_c / A_c > D_max
CHARGE_ABSOLUTE = "charge_absolute"    # Q_c > absolute cap
CONTACT_CURRENT = "contact_current"    # |I_c| > per-contact max
TOTAL_CURRENT = "total_current"        # summed cathodic current > total max
IMPEDANCE = "impedance"                # drive on a contact outside the impedance window
COMPLIANCE = "compliance"              # |I_c| Z_c > compliance voltage
CONSERVATION = "conservation"          # contacts + case do not sum to zero
CHARGE_BALANCE = "charge_balance"      # waveform other than symmetric biphasic
SLEW_UP = "slew_up"                    # |I_c| rises faster than the up-rate
DOSE = "dose"                          # rolling-window charge budget spent

#: Kernel reasons in bit order.
KERNEL_REASONS: tuple[str, ...] = (
    NONFINITE, UNKNOWN_PROGRAM, PROGRAM_PATTERN, ENVELOPE, PULSE_WIDTH, FREQUENCY,
    INTERPHASE_GAP, PULSE_FEASIBILITY, SHANNON, CHARGE_DENSITY, CHARGE_ABSOLUTE,
    CONTACT_CURRENT, TOTAL_CURRENT, IMPEDANCE, COMPLIANCE, CONSERVATION, CHARGE_BALANCE,
    SLEW_UP, DOSE,
)
BIT: dict[str, int] = {r: i for i, r in enumerate(KERNEL_REASONS)}

# --- state machine -----------------------------------------------------------------------------
BAD_REQUEST = "bad_request"            # request of the wrong type/shape/dtype -> zero output
STALE_INPUT = "stale_input"            # input older than stale_input_ms
LOW_CONFIDENCE = "low_confidence"      # decoder confidence below min_confidence (or NaN)
DECODER_INVALID = "decoder_invalid"    # the decoder flagged its output invalid
FALLBACK = "fallback"                  # N invalid cycles: entered HOLD (output = fallback)
RECOVERED = "recovered"                # M valid cycles: left HOLD
DEADLINE_MISS = "deadline_miss"        # a cycle missed its deadline
DEADLINE_FAULT = "deadline_fault"      # K consecutive misses: FAULT latched
ESTOP = "estop"                        # STOP: ESTOP latched
ARM = "arm"
REARM = "rearm"
DISARM = "disarm"
ARM_REFUSED = "arm_refused"            # arm() in FAULT/ESTOP (use rearm())
REARM_REFUSED = "rearm_refused"        # rearm() when nothing is latched (use arm())
DISARM_REFUSED = "disarm_refused"      # disarm() cannot clear a latched FAULT/ESTOP
HEARTBEAT_LOST = "heartbeat_lost"      # link heartbeat lost -> HOLD
DEVICE_FAULT = "device_fault"          # device reported a fault -> FAULT latched
IMPEDANCE_REPORT = "impedance_report"  # a contact's impedance is outside the window
NOT_ARMED = "not_armed"                # non-zero request while DISARMED
LATCHED = "latched"                    # non-zero request while FAULT/ESTOP
CLOCK_BACKWARDS = "clock_backwards"    # now_ns went backwards; the last time is kept
INTERNAL_ERROR = "internal_error"      # unexpected exception inside step -> FAULT latched

# Interlocks that are not event reasons of their own (names for the test-only switch).
RECOVERY = "recovery"                  # M-cycle hysteresis before leaving HOLD
ESTOP_LATCH = "estop_latch"            # STOP latches zero output until rearm
FAULT_LATCH = "fault_latch"            # FAULT latches zero output until rearm
ARMED_ONLY = "armed_only"              # no output unless armed

#: Every interlock that the test-only switch ``_disabled_interlocks`` accepts.
INTERLOCKS: frozenset[str] = frozenset(KERNEL_REASONS) | frozenset({
    STALE_INPUT, LOW_CONFIDENCE, DECODER_INVALID, RECOVERY, DEADLINE_FAULT, ESTOP_LATCH,
    FAULT_LATCH, ARMED_ONLY, HEARTBEAT_LOST,
})

#: Invariant number (SAFETY.md) that each reason protects (0: state-machine bookkeeping).
INVARIANT: dict[str, int] = {
    NONFINITE: 3, UNKNOWN_PROGRAM: 8, PROGRAM_PATTERN: 8, ENVELOPE: 8, PULSE_WIDTH: 3,
    FREQUENCY: 3, INTERPHASE_GAP: 3, PULSE_FEASIBILITY: 4, SHANNON: 1, CHARGE_DENSITY: 2,
    CHARGE_ABSOLUTE: 2, CONTACT_CURRENT: 3, TOTAL_CURRENT: 3, IMPEDANCE: 13, COMPLIANCE: 13,
    CONSERVATION: 6, CHARGE_BALANCE: 5, SLEW_UP: 7, DOSE: 16,
    BAD_REQUEST: 3, STALE_INPUT: 9, LOW_CONFIDENCE: 9, DECODER_INVALID: 9, FALLBACK: 9,
    RECOVERED: 9, DEADLINE_MISS: 10, DEADLINE_FAULT: 10, ESTOP: 12, ARM: 12, REARM: 12,
    DISARM: 0, ARM_REFUSED: 12, REARM_REFUSED: 0, DISARM_REFUSED: 12, HEARTBEAT_LOST: 11,
    DEVICE_FAULT: 0, IMPEDANCE_REPORT: 13, NOT_ARMED: 12, LATCHED: 12, CLOCK_BACKWARDS: 0,
    INTERNAL_ERROR: 0,
}

#: Unit of ``requested`` / ``allowed`` for each reason ("" when they are NaN).
UNIT: dict[str, str] = {
    NONFINITE: "", UNKNOWN_PROGRAM: "program id", PROGRAM_PATTERN: "mA (contact current)",
    ENVELOPE: "mA (program amplitude)", PULSE_WIDTH: "us", FREQUENCY: "Hz",
    INTERPHASE_GAP: "us", PULSE_FEASIBILITY: "Hz", SHANNON: "uC", CHARGE_DENSITY: "uC/cm^2",
    CHARGE_ABSOLUTE: "uC", CONTACT_CURRENT: "mA", TOTAL_CURRENT: "mA", IMPEDANCE: "mA",
    COMPLIANCE: "V", CONSERVATION: "mA (sum of contacts + case)", CHARGE_BALANCE: "waveform code",
    SLEW_UP: "mA", DOSE: "uC", BAD_REQUEST: "", STALE_INPUT: "ms", LOW_CONFIDENCE: "confidence",
    DECODER_INVALID: "", FALLBACK: "cycles", RECOVERED: "cycles", DEADLINE_MISS: "cycles",
    DEADLINE_FAULT: "cycles", ESTOP: "", ARM: "", REARM: "", DISARM: "", ARM_REFUSED: "",
    REARM_REFUSED: "", DISARM_REFUSED: "", HEARTBEAT_LOST: "", DEVICE_FAULT: "",
    IMPEDANCE_REPORT: "ohm", NOT_ARMED: "", LATCHED: "", CLOCK_BACKWARDS: "ns",
    INTERNAL_ERROR: "",
}

#: Every reason code.
REASONS: tuple[str, ...] = tuple(INVARIANT)
