"""Stimulation safety: limits, the supervisor state machine and the independent oracle.

* :mod:`~neuroloop.safety.limits` - :class:`SafetyLimits`, :data:`HARD_CEILINGS`,
  :func:`load_limits` / :func:`load_limits_file` (validated once, ``ConfigError`` on anything
  unsafe).
* :mod:`~neuroloop.safety.supervisor` - :class:`SafetySupervisor`: every request in, a safe
  command and interlock events out; never raises.
* :mod:`~neuroloop.safety.validate` - :func:`validate`: the pure oracle used by the tests and
  by the firmware simulator; it shares no code with the supervisor's clamping.
* :mod:`~neuroloop.safety.reasons` - reason codes of events and violations.
* :mod:`~neuroloop.safety.events` - :class:`SupervisorState`, :class:`InterlockEvent`.

See docs/safety.md for each invariant, where it is enforced and which test proves it.
"""

from __future__ import annotations

from .events import InterlockEvent, SupervisorState
from .limits import HARD_CEILINGS, SafetyLimits, load_limits, load_limits_file
from .supervisor import SafetySupervisor, check_programs
from .validate import Violation, is_safe, validate

__all__ = [
    "SafetyLimits", "HARD_CEILINGS", "load_limits", "load_limits_file",
    "SafetySupervisor", "check_programs", "SupervisorState", "InterlockEvent",
    "Violation", "validate", "is_safe",
]
