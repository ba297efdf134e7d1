"""Real-time scheduling for live runs: SCHED_FIFO and locked memory, where the OS allows.

A live closed loop shares the CPU with everything else on the machine. Under the default
time-sharing scheduler a busy neighbour can delay a wake-up by milliseconds; under
``SCHED_FIFO`` the loop's thread preempts ordinary processes the moment its sleep ends.
``mlockall`` keeps its pages resident so that no page fault lands inside a cycle.

Both need privileges (root or ``CAP_SYS_NICE`` / ``CAP_IPC_LOCK``, or an rtprio/memlock
limit). When refused, the run goes on under the normal scheduler and the summary says so.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import sys
from dataclasses import dataclass

__all__ = ["RealtimeState", "enter_realtime", "leave_realtime"]

_MCL_CURRENT, _MCL_FUTURE = 1, 2


@dataclass
class RealtimeState:
    """What :func:`enter_realtime` changed, so :func:`leave_realtime` can undo it."""

    scheduler: str
    memory_locked: bool
    notes: list[str]
    gil_switch_interval_s: float = 0.0
    active: bool = True
    _old_switch_interval: float | None = None
    _old_policy: int | None = None
    _old_param: object | None = None

    def describe(self) -> dict[str, object]:
        return {"scheduler": self.scheduler, "memory_locked": self.memory_locked,
                "gil_switch_interval_us": round(self.gil_switch_interval_s * 1e6, 1),
                "notes": self.notes}


def _libc() -> ctypes.CDLL | None:
    name = ctypes.util.find_library("c")
    try:
        return ctypes.CDLL(name, use_errno=True) if name else None
    except OSError:
        return None


def enter_realtime(priority: int = 50, lock_memory: bool = True,
                   gil_switch_interval_s: float = 100e-6) -> RealtimeState:
    """Switch the calling thread to SCHED_FIFO at ``priority``, lock memory if allowed, and
    shorten the GIL switch interval.

    Background threads (the recorder's writer, the serial link's reader) hold the GIL while
    they run Python code; CPython hands it to a waiting thread only after the switch
    interval (5 ms by default), which would land straight in the loop's latency. 100 us
    bounds that wait at the cost of more frequent hand-offs.
    """
    notes: list[str] = []
    state = RealtimeState("SCHED_OTHER", False, notes)
    state._old_switch_interval = sys.getswitchinterval()
    sys.setswitchinterval(gil_switch_interval_s)
    state.gil_switch_interval_s = gil_switch_interval_s
    if hasattr(os, "sched_setscheduler"):
        try:
            state._old_policy = os.sched_getscheduler(0)
            state._old_param = os.sched_getparam(0)
            os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(priority))
            state.scheduler = f"SCHED_FIFO:{priority}"
        except (OSError, PermissionError) as exc:
            notes.append(f"SCHED_FIFO refused ({exc.strerror}); running time-shared")
    else:
        notes.append("no sched_setscheduler on this OS")
    if lock_memory:
        libc = _libc()
        if libc is not None and hasattr(libc, "mlockall"):
            if libc.mlockall(_MCL_CURRENT | _MCL_FUTURE) == 0:
                state.memory_locked = True
            else:
                notes.append(f"mlockall refused ({os.strerror(ctypes.get_errno())})")
    return state


def leave_realtime(state: RealtimeState) -> None:
    """Undo :func:`enter_realtime` (best effort, never raises; a second call does nothing)."""
    if not state.active:
        return
    state.active = False
    if state._old_switch_interval is not None:
        sys.setswitchinterval(state._old_switch_interval)
    if state.memory_locked:
        libc = _libc()
        if libc is not None:
            libc.munlockall()
    if state._old_policy is not None and state.scheduler != "SCHED_OTHER":
        try:
            os.sched_setscheduler(0, state._old_policy, state._old_param)  # type: ignore[arg-type]
        except OSError:
            pass
