"""``StimCommand``: one stimulation setting for one control cycle.

Conventions (see ../shared/SAFETY.md): currents in mA, signed, cathodic negative, in the
*first* phase of a charge-balanced symmetric biphasic pulse (the second phase is the exact
negative, so each pulse is balanced by construction). Pulse width is per phase in µs,
frequency in Hz, interphase gap in µs. In each phase the contact currents plus ``case_ma``
(current returned through the implant case, for monopolar programs) sum to zero.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["StimCommand", "WAVEFORM_BIPHASIC_SYMMETRIC", "PROGRAM_OFF"]

#: The only waveform neuroloop emits: charge-balanced, symmetric, cathodic-first biphasic.
WAVEFORM_BIPHASIC_SYMMETRIC = 0
#: ``program_id`` of a command that stimulates nothing (rest, hold, stop).
PROGRAM_OFF = -1


@dataclass(slots=True, eq=False)
class StimCommand:
    """A per-contact stimulation command.

    Mutable on purpose: the hot path reuses preallocated commands and overwrites them in
    place (:meth:`copy_from`), so no object is created per cycle. Keep a :meth:`copy` if you
    need one to outlive the cycle.

    Attributes
    ----------
    amplitude_ma : ndarray, shape (n_contacts,), float64
        Signed first-phase current per contact, mA, cathodic negative.
    pulse_width_us : float
        Width of each phase, µs.
    frequency_hz : float
        Pulse repetition rate, Hz (0 when the command is off).
    interphase_gap_us : float
        Gap between the two phases, µs.
    program_id : int
        Program this command belongs to, :data:`PROGRAM_OFF` for none.
    cycle : int
        Control cycle that produced it.
    case_ma : float
        Current through the case (return electrode) in the first phase, mA.
    waveform : int
        Waveform code; only :data:`WAVEFORM_BIPHASIC_SYMMETRIC` is ever valid.
    """

    amplitude_ma: np.ndarray
    pulse_width_us: float = 0.0
    frequency_hz: float = 0.0
    interphase_gap_us: float = 0.0
    program_id: int = PROGRAM_OFF
    cycle: int = 0
    case_ma: float = 0.0
    waveform: int = WAVEFORM_BIPHASIC_SYMMETRIC

    @classmethod
    def off(cls, n_contacts: int, cycle: int = 0) -> StimCommand:
        """A command that stimulates nothing on ``n_contacts`` contacts."""
        return cls(amplitude_ma=np.zeros(n_contacts, dtype=np.float64), cycle=cycle)

    @property
    def n_contacts(self) -> int:
        return int(self.amplitude_ma.shape[0])

    @property
    def is_off(self) -> bool:
        """True when no current flows on any contact or the case."""
        # count_nonzero, not any(): a quarter of the cost per cycle (NaN counts as non-zero)
        return np.count_nonzero(self.amplitude_ma) == 0 and self.case_ma == 0.0

    def copy_from(self, other: StimCommand) -> None:
        """Overwrite this command with ``other`` in place (no allocation)."""
        self.amplitude_ma[:] = other.amplitude_ma
        self.pulse_width_us = other.pulse_width_us
        self.frequency_hz = other.frequency_hz
        self.interphase_gap_us = other.interphase_gap_us
        self.program_id = other.program_id
        self.cycle = other.cycle
        self.case_ma = other.case_ma
        self.waveform = other.waveform

    def set_off(self) -> None:
        """Turn this command off in place, keeping its cycle."""
        self.amplitude_ma[:] = 0.0
        self.frequency_hz = 0.0
        self.program_id = PROGRAM_OFF
        self.case_ma = 0.0

    def copy(self) -> StimCommand:
        """An independent copy."""
        out = StimCommand(amplitude_ma=self.amplitude_ma.copy())
        out.copy_from(self)
        return out

    def charge_per_phase_uc(self) -> np.ndarray:
        """|I| · PW per contact, µC, shape (n_contacts,)."""
        return np.abs(self.amplitude_ma) * self.pulse_width_us / 1000.0

    def to_dict(self) -> dict[str, object]:
        """JSON-friendly view (for events, logs and recordings)."""
        return {
            "amplitude_ma": [float(a) for a in self.amplitude_ma],
            "pulse_width_us": float(self.pulse_width_us),
            "frequency_hz": float(self.frequency_hz),
            "interphase_gap_us": float(self.interphase_gap_us),
            "program_id": int(self.program_id),
            "cycle": int(self.cycle),
            "case_ma": float(self.case_ma),
            "waveform": int(self.waveform),
        }
