"""How a control cycle learns its times: one strategy per mode, so the loop never branches on it.

==================  ============================  ===========================================
strategy            mode                          times and deadline flags
==================  ============================  ===========================================
:class:`LiveTiming`  real time (``WallClock``)   the clock; end-to-end = sent - available
:class:`SimulatedTiming`  ``--fast`` (``SimClock``)  the clock jumps to each hop's availability;
                                                  end-to-end = the measured compute time
:class:`ReplayTiming`  replay of a recording      the recorded times, stalls and deadline
                                                  flags, so time-based interlocks reproduce
==================  ============================  ===========================================
"""

from __future__ import annotations

import time
from typing import Protocol

import numpy as np

from ..records import FLAG_DEADLINE_MISSED, FLAG_SOURCE_STALL, CycleRows
from .clock import Clock
from .hop_reader import HopReader


class FaultHooksLike(Protocol):
    def stall(self, cycle: int) -> bool: ...

__all__ = ["CycleTiming", "LiveTiming", "SimulatedTiming", "ReplayTiming", "Outcome",
           "timing_for"]


#: ``(sent_ns, e2e_ns, missed)``: when the command left, its end-to-end latency and whether
#: the cycle missed its deadline (a plain tuple: CPython reuses those, nothing per cycle).
Outcome = tuple[int, int, bool]


class CycleTiming:
    """The timing of one run. Subclasses answer each question for their mode.

    Parameters
    ----------
    clock : Clock
    deadline_ns : int
        End-to-end latency above which a cycle is a deadline miss, ns.
    """

    def __init__(self, clock: Clock, deadline_ns: int) -> None:
        self.clock = clock
        self.deadline_ns = int(deadline_ns)

    def has_cycle(self, cycle: int) -> bool:
        """False once a replay has run out of recorded cycles."""
        return True

    def stalled(self, cycle: int, hooks: FaultHooksLike) -> bool:
        """Whether ``cycle`` gets no fresh samples (an injected stall, or a recorded one)."""
        return hooks.stall(cycle)

    def drop_hop(self, cycle: int, reader: HopReader) -> bool:
        """Skip the stalled cycle's hop; False when the source ran out on the way."""
        return reader.drop_hop() or not reader.source.exhausted

    def available(self, cycle: int, available_ns: int) -> int:
        """The time the hop's last sample became available, as this mode counts it."""
        return available_ns

    def now_ns(self, cycle: int) -> int:
        """The supervisor's ``now`` for this cycle."""
        return self.clock.now_ns()

    def burn(self, extra_ns: int) -> None:
        """Spend ``extra_ns`` of injected compute time (deadline-overrun injection)."""
        end = time.perf_counter_ns() + extra_ns
        while time.perf_counter_ns() < end:
            pass

    def outcome(self, cycle: int, available_ns: int, now_ns: int, compute_ns: int) -> Outcome:
        """When the command was sent, its end-to-end latency and whether it missed."""
        raise NotImplementedError


class LiveTiming(CycleTiming):
    """Real time: the wall clock says when the command left."""

    def outcome(self, cycle: int, available_ns: int, now_ns: int, compute_ns: int) -> Outcome:
        sent = self.clock.now_ns()
        e2e = sent - available_ns
        return sent, e2e, e2e > self.deadline_ns


class SimulatedTiming(CycleTiming):
    """``--fast``: the simulated clock jumps to each hop's availability; latency is compute."""

    def available(self, cycle: int, available_ns: int) -> int:
        self.clock.sleep_until(available_ns)
        return available_ns

    def outcome(self, cycle: int, available_ns: int, now_ns: int, compute_ns: int) -> Outcome:
        return now_ns + compute_ns, compute_ns, compute_ns > self.deadline_ns


class ReplayTiming(CycleTiming):
    """Replay: every time and deadline flag comes from the recorded cycle.

    Parameters
    ----------
    records : ndarray of cycle_dtype
        The recorded cycles.
    """

    def __init__(self, clock: Clock, deadline_ns: int, records: CycleRows) -> None:
        super().__init__(clock, deadline_ns)
        self.records = records  # an array of cycle_dtype, or a reader's RecordedCycles
        self._n = int(records.shape[0])
        self._cycle = -1
        self._rec: np.void | None = None

    def _at(self, cycle: int) -> np.void:
        if cycle != self._cycle:
            self._rec = self.records[cycle]
            self._cycle = cycle
        assert self._rec is not None
        return self._rec

    def has_cycle(self, cycle: int) -> bool:
        return cycle < self._n

    def stalled(self, cycle: int, hooks: FaultHooksLike) -> bool:
        return bool(self._at(cycle)["flags"] & FLAG_SOURCE_STALL)

    def drop_hop(self, cycle: int, reader: HopReader) -> bool:
        """The live run dropped this hop: it was never recorded, so skip past it."""
        reader.skip_to(int(self._at(cycle)["first_sample"]))
        return True

    def available(self, cycle: int, available_ns: int) -> int:
        return int(self._at(cycle)["available_ns"])

    def now_ns(self, cycle: int) -> int:
        return int(self._at(cycle)["now_ns"])

    def burn(self, extra_ns: int) -> None:
        """A replay takes the recorded deadline flags instead of burning time."""

    def outcome(self, cycle: int, available_ns: int, now_ns: int, compute_ns: int) -> Outcome:
        rec = self._at(cycle)
        return (int(rec["sent_ns"]), int(rec["e2e_ns"]),
                bool(rec["flags"] & FLAG_DEADLINE_MISSED))


def timing_for(clock: Clock, deadline_ns: int, replay_cycles: CycleRows | None) -> CycleTiming:
    """The strategy for a run: replay when there are recorded cycles, else by the clock."""
    if replay_cycles is not None:
        return ReplayTiming(clock, deadline_ns, replay_cycles)
    if clock.simulated:
        return SimulatedTiming(clock, deadline_ns)
    return LiveTiming(clock, deadline_ns)
