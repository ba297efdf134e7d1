"""``triggered-burst``: responsive neurostimulation, bursts when a detector fires.

Modelled on the NeuroPace RNS System's responsive therapy (RNS System Physician Manual;
Morrell 2011, Neurology 77:1295; Heck et al. 2014, Epilepsia 55:432): a detection starts a
*therapy* (an episode) of up to ``bursts_per_episode`` bursts of ``burst_s`` (e.g. 200 Hz,
160 us, 100 ms); after the first, each further burst is given only if the detector still
detects, at most one per ``burst_period_s`` (start to start); after the episode's last
burst nothing starts for ``refractory_s``; and the stimulation on-time in any rolling
24 hours never passes ``daily_limit_s``.

::

    [control]
    policy = "triggered-burst"
    output = "detector_score"   # the detector's continuous output
    threshold = 1.0             # detection when output >= threshold
    program = "seizure"         # the program (and envelope) a burst runs
    amplitude_ma = 2.0          # burst current, inside the program's envelope (default: max)
    burst_s = 0.1
    burst_period_s = 1.0        # > burst_s ("a burst longer than its period" is refused)
    bursts_per_episode = 5
    refractory_s = 5.0
    daily_limit_s = 60.0        # rolling 24 h stimulation on-time

Bursts are delivered in whole control cycles: a burst lasts the largest whole number of
cycles that fits in ``burst_s`` (at least one); the supervisor independently caps a burst's
length and the daily on-time (``burst_max_s``, ``daily_on_max_s`` in
:mod:`neuroloop.safety.limits`). All timers run on ``now_ns`` (so a replay is exact), and
every piece of state is a scalar or a preallocated ring: ``step`` allocates nothing.
SAFETY.md invariant 20 is a property of ``step`` alone (tests/control/test_triggered_burst.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from .._checks import Range
from ..decoders.base import DecoderOutput, OutputSchema
from ..stimulation.command import StimCommand
from ..stimulation.programs import ProgramSet
from .base import OneOutputPolicy, PolicyParams
from .therapy import TherapyMeter

__all__ = ["TriggeredBurstPolicy", "TriggeredBurstSettings", "DAY_NS"]

DAY_NS = 86_400 * 1_000_000_000
_NS = 1_000_000_000
#: Most bursts the rolling-day ring holds (a day of 10 ms bursts at a 10 s limit is 1000).
_MAX_RING = 1 << 20


@dataclass(frozen=True)
class TriggeredBurstSettings:
    """Validated ``[control]`` keys of :class:`TriggeredBurstPolicy` (module docstring)."""

    output: str
    threshold: float
    program_id: int
    program: str
    amplitude_ma: float
    burst_s: float
    burst_period_s: float
    bursts_per_episode: int
    refractory_s: float
    daily_limit_s: float


class TriggeredBurstPolicy(OneOutputPolicy):
    """Detector-triggered bursts with an episode count, a refractory period and a rolling
    daily limit (module docstring)."""

    name = "triggered-burst"
    settings: TriggeredBurstSettings

    @classmethod
    def parse(cls, params: PolicyParams, programs: ProgramSet) -> TriggeredBurstSettings:
        output = params.output_name("output", "detector_score")
        threshold = params.number("threshold", 1.0, rng=Range(-1e9, 1e9),
                                  hint="e.g. 1.0 (the detector's own detection level)")
        pid = params.intention("program", programs)
        lo, hi = (float(v) for v in (programs.table()["amplitude_min_ma"][pid],
                                     programs.table()["amplitude_max_ma"][pid]))
        amp = params.number("amplitude_ma", hi, rng=Range(max(lo, 0.0), hi, lo_open=lo <= 0),
                            hint=f"inside the program's envelope [{lo:g}, {hi:g}] mA")
        burst_s = params.number("burst_s", 0.1, rng=Range(0.0, 10.0, lo_open=True, unit="s"),
                                hint="e.g. 0.1 (RNS: 10-5000 ms)")
        period_s = params.number("burst_period_s", 1.0, rng=Range(0.0, 3600.0, lo_open=True,
                                                                  unit="s"), hint="e.g. 1.0")
        if not burst_s < period_s:
            raise params.fail("burst_s", params.t.get("burst_s", burst_s),
                              f"is longer than its period allows (control.burst_period_s = "
                              f"{period_s:g} s from one burst's start to the next); use "
                              f"burst_s < {period_s:g} or a longer burst_period_s")
        n = params.integer("bursts_per_episode", 5, rng=Range(1, 100, integer=True),
                           hint="e.g. 5 (RNS gives up to 5 bursts per therapy)")
        refractory_s = params.number("refractory_s", 5.0,
                                     rng=Range(0.0, 86400.0, unit="s"), hint="e.g. 5")
        daily_s = params.number("daily_limit_s", 60.0, rng=Range(0.0, 86400.0, lo_open=True,
                                                                 unit="s"), hint="e.g. 60")
        if daily_s < burst_s:
            raise params.fail("daily_limit_s", params.t.get("daily_limit_s", daily_s),
                              f"is shorter than one burst (control.burst_s = {burst_s:g} s); "
                              "no burst could ever be given; raise it")
        return TriggeredBurstSettings(output, threshold, pid, programs.intention_names[pid],
                                      amp, burst_s, period_s, n, refractory_s, daily_s)

    @classmethod
    def example_params(cls, programs: ProgramSet, schema: OutputSchema) -> dict[str, Any] | None:
        if not schema.output_names or not len(programs):
            return None
        return {"output": schema.output_names[-1], "program": programs.programs[0].name,
                "threshold": 0.5, "burst_s": 0.1, "burst_period_s": 0.5,
                "bursts_per_episode": 3, "refractory_s": 1.0, "daily_limit_s": 2.0}

    def _bind(self, schema: OutputSchema) -> None:
        s = self.settings
        self._index = schema.index(s.output)
        self._burst_ns = int(round(s.burst_s * _NS))
        self._period_ns = int(round(s.burst_period_s * _NS))
        self._refractory_ns = int(round(s.refractory_s * _NS))
        self._daily_ns = int(round(s.daily_limit_s * _NS))
        size = min(_MAX_RING, int(s.daily_limit_s / s.burst_s) + 2)
        #: start time and planned on-time (ns) of every burst of the last 24 h (a ring)
        self._ring_start = np.zeros(size, dtype=np.int64)
        self._ring_on = np.zeros(size, dtype=np.int64)
        self.meter = TherapyMeter()

    def reset(self) -> None:
        super().reset()
        self._head = 0           # oldest burst still in the rolling day
        self._count = 0          # bursts in the ring
        self._day_on_ns = 0      # their summed on-time
        self._cycles_left = 0    # cycles of the current burst still to deliver
        self._last_ns = -1
        self._dt_ns = 0
        self._episode_bursts = 0
        self._next_burst_ns = 0  # earliest start of the episode's next burst
        self._refractory_until_ns = -1
        self._first_ns = -1
        self._prev_on = False
        # figures for metrics()
        self.bursts = 0
        self.episodes = 0
        self.on_time_ns = 0
        self.refused_daily_limit = 0
        self.meter.reset()

    # -- the rolling day ---------------------------------------------------------------------
    def _expire(self, now_ns: int) -> None:
        size = self._ring_start.shape[0]
        while self._count and self._ring_start[self._head] <= now_ns - DAY_NS:
            self._day_on_ns -= int(self._ring_on[self._head])
            self._head = (self._head + 1) % size
            self._count -= 1

    def day_on_time_s(self) -> float:
        """Stimulation on-time planned in the rolling 24 h ending at the last step, s."""
        return self._day_on_ns / _NS

    def _start_burst(self, now_ns: int) -> bool:
        """Start a burst now if the rolling day has room; True when it started."""
        dt = self._dt_ns
        cycles = max(1, self._burst_ns // dt) if dt > 0 else 1
        on_ns = cycles * dt if dt > 0 else self._burst_ns
        if on_ns > self._burst_ns:
            on_ns = self._burst_ns
        if self._day_on_ns + on_ns > self._daily_ns or self._count >= self._ring_start.shape[0]:
            self.refused_daily_limit += 1
            return False
        size = self._ring_start.shape[0]
        tail = (self._head + self._count) % size
        self._ring_start[tail] = now_ns
        self._ring_on[tail] = on_ns
        self._count += 1
        self._day_on_ns += on_ns
        self._cycles_left = cycles
        self._episode_bursts += 1
        self._next_burst_ns = now_ns + self._period_ns
        self.bursts += 1
        self.on_time_ns += on_ns
        return True

    # -- online --------------------------------------------------------------------------------
    def step(self, output: DecoderOutput, now_ns: int, cycle: int) -> StimCommand:
        req = self._decide(output, now_ns, cycle)
        if req.program_id >= 0:
            self.meter.step(now_ns, self.settings.amplitude_ma, req.frequency_hz,
                            req.pulse_width_us)
        else:
            self.meter.step(now_ns, 0.0, 0.0, 0.0)
        return req

    def _decide(self, output: DecoderOutput, now_ns: int, cycle: int) -> StimCommand:
        if self._last_ns >= 0 and now_ns > self._last_ns:
            self._dt_ns = now_ns - self._last_ns
        if self._first_ns < 0:
            self._first_ns = now_ns
        self._last_ns = now_ns
        self._expire(now_ns)
        s = self.settings
        if not output.valid:  # a sensor or decoder fault: off at once, the episode ends
            self._cycles_left = 0
            if self._episode_bursts > 0:
                self._end_episode(now_ns)
            self._prev_on = False
            return self._set_off(cycle)
        if self._cycles_left > 0:  # inside a burst: finish it
            return self._burst_cycle(now_ns, cycle)
        was_on = self._prev_on  # a burst is always followed by at least one cycle off
        self._prev_on = False
        value = float(output.values[self._index])
        detected = value >= s.threshold  # NaN compares False
        if self._episode_bursts > 0:  # an episode is running
            if not detected:
                self._end_episode(now_ns)
                return self._set_off(cycle)
            if now_ns < self._next_burst_ns or was_on:
                return self._set_off(cycle)
        elif not detected or now_ns < self._refractory_until_ns or was_on:
            return self._set_off(cycle)
        new_episode = self._episode_bursts == 0
        if not self._start_burst(now_ns):
            if not new_episode:
                self._end_episode(now_ns)
            return self._set_off(cycle)
        if new_episode:
            self.episodes += 1
        return self._burst_cycle(now_ns, cycle)

    def _burst_cycle(self, now_ns: int, cycle: int) -> StimCommand:
        """One cycle of the current burst; the episode ends with its last burst's last cycle."""
        s = self.settings
        self._cycles_left -= 1
        if self._cycles_left == 0 and self._episode_bursts >= s.bursts_per_episode:
            self._end_episode(now_ns)
        self._prev_on = True
        return self._set_program(s.program_id, s.amplitude_ma, cycle)

    def _end_episode(self, now_ns: int) -> None:
        self._episode_bursts = 0
        self._refractory_until_ns = now_ns + self._refractory_ns

    def metrics(self) -> dict[str, float]:
        """The :class:`~neuroloop.control.therapy.TherapyMeter` figures (stimulation time,
        TEED), bursts, therapies (episodes) and therapies per day of run, planned on-time,
        and bursts refused by the rolling daily limit."""
        span_ns = self._last_ns - self._first_ns if self._first_ns >= 0 else 0
        days = span_ns / DAY_NS
        return {
            **self.meter.metrics(),
            "bursts": float(self.bursts),
            "therapies": float(self.episodes),
            "therapies_per_day": round(self.episodes / days, 1) if days > 0 else 0.0,
            "burst_on_time_s": round(self.on_time_ns / _NS, 3),
            "refused_daily_limit": float(self.refused_daily_limit),
        }
