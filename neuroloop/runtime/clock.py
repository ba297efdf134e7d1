"""Clocks for the control loop. Never ``time.time()`` in the loop.

:class:`WallClock` is monotonic (``time.perf_counter_ns``) and sleeps precisely (coarse sleep,
then a short spin). :class:`SimClock` is a simulated clock for ``--fast`` runs, replay and
tests: ``sleep_until`` jumps instead of waiting.
"""

from __future__ import annotations

import time

__all__ = ["Clock", "WallClock", "SimClock"]

_SPIN_NS = 400_000  # spin the last 0.4 ms: time.sleep overshoots by ~50-100 us on Linux


class Clock:
    """Clock interface: integer nanoseconds."""

    simulated: bool = False

    def now_ns(self) -> int:
        raise NotImplementedError

    def sleep_until(self, t_ns: int) -> None:
        raise NotImplementedError

    def spin_until(self, t_ns: int) -> None:
        """Wait until ``t_ns`` without giving up the CPU (a simulated clock just jumps)."""
        self.sleep_until(t_ns)


class WallClock(Clock):
    """Monotonic wall clock (``time.perf_counter_ns``)."""

    simulated = False

    def now_ns(self) -> int:
        return time.perf_counter_ns()

    def sleep_until(self, t_ns: int) -> None:
        """Return at ``t_ns`` or just after (never before)."""
        remaining = t_ns - time.perf_counter_ns()
        if remaining > _SPIN_NS:
            time.sleep((remaining - _SPIN_NS) / 1e9)
        while time.perf_counter_ns() < t_ns:
            pass

    def spin_until(self, t_ns: int) -> None:
        """Busy-wait until ``t_ns``: the core stays awake and its caches stay ours (after
        cache warming, a sleep would hand the core, and its caches, to other work)."""
        while time.perf_counter_ns() < t_ns:
            pass


class SimClock(Clock):
    """Simulated clock: time moves only when told to."""

    simulated = True

    def __init__(self, start_ns: int = 0) -> None:
        self._t = int(start_ns)

    def now_ns(self) -> int:
        return self._t

    def sleep_until(self, t_ns: int) -> None:
        if t_ns > self._t:
            self._t = int(t_ns)

    def advance(self, dt_ns: int) -> None:
        self._t += int(dt_ns)

    def set(self, t_ns: int) -> None:
        self._t = int(t_ns)
