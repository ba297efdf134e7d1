"""Supervisor states and interlock events (shared by the supervisor, the loop, the recorder
and the firmware simulator)."""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum

__all__ = ["SupervisorState", "InterlockEvent"]


class SupervisorState(IntEnum):
    """States of :class:`~neuroloop.safety.supervisor.SafetySupervisor`.

    DISARMED -> ARMED -> STIMULATING <-> HOLD (fallback); FAULT and ESTOP are latched.
    """

    DISARMED = 0
    ARMED = 1
    STIMULATING = 2
    HOLD = 3
    FAULT = 4
    ESTOP = 5


@dataclass(frozen=True, slots=True)
class InterlockEvent:
    """One interlock decision.

    Attributes
    ----------
    reason : str
        Reason code, one of :data:`neuroloop.safety.reasons.REASONS` (its row in
        :data:`~neuroloop.safety.reasons.TABLE` gives the invariant, the unit of
        ``requested`` / ``allowed`` and the kernel bit, if any), e.g. ``"shannon"``.
    cycle : int
        Control cycle in which it happened.
    time_ns : int
        Supervisor clock time, ns.
    contact : int
        Contact index, or -1 when the event is not about one contact.
    requested : float
        The requested value (unit: ``reasons.UNIT[reason]``), NaN when not applicable.
    allowed : float
        The value that was allowed instead.
    state : SupervisorState
        Supervisor state after the event.
    detail : str
        Free text for humans.
    """

    reason: str
    cycle: int
    time_ns: int
    contact: int = -1
    requested: float = float("nan")
    allowed: float = float("nan")
    state: SupervisorState = SupervisorState.DISARMED
    detail: str = ""

    def to_dict(self) -> dict[str, object]:
        return {"reason": self.reason, "cycle": self.cycle, "time_ns": self.time_ns,
                "contact": self.contact, "requested": self.requested, "allowed": self.allowed,
                "state": self.state.name, "detail": self.detail}
