"""Threshold policies of adaptive DBS: ``single-threshold`` and ``dual-threshold``.

Both follow one continuous decoder output (a biomarker such as ``beta_percentile``) and drive
one program's amplitude, with the timing rules of the clinical systems:

* **onset / termination durations**: the output must stay above (below) its threshold for
  ``onset_s`` (``termination_s``) before the target amplitude changes (RC+S "onset" and
  "termination" durations, PMC8558614);
* **ramps**: the amplitude moves toward its target at ``ramp_up_ma_per_s`` /
  ``ramp_down_ma_per_s`` (defaults 0.03 / 0.12 mA/s, the RC+S aDBS values), never faster than
  the scenario's hard limits (``[safety] ramp_up_max_ma_per_s`` and ``slew_up_ma_per_s``:
  a faster ramp is refused when the session is built);
* **blanking**: no new target change starts within ``blanking_s`` of the last one, and no rise
  starts within ``blanking_s`` of the last fall (so the supervisor's own blanking rule, which
  must not be longer, never has to act).

``single-threshold`` (Little et al., *Ann Neurol* 2013): stimulation at the upper amplitude
while the output is above ``threshold`` (e.g. the 75th percentile of calibration beta), off
below it. ``dual-threshold`` (Medtronic Percept aDBS, Velisar et al. 2019): the amplitude
ramps up to the upper amplitude limit above ``thresholds[1]``, down to the lower limit below
``thresholds[0]``, and holds in between.

``[control]`` keys
------------------
``output``            decoder output (default ``"beta_percentile"``)
``program``           intention whose program is driven (default the first program)
``threshold``         single-threshold only: the threshold, in the output's unit
``thresholds``        dual-threshold only: ``[lower, upper]`` with lower < upper
``amplitude_ma``      ``[lower, upper]`` amplitude limits inside the program's envelope
                      (default the envelope; single-threshold uses the upper one)
``onset_s``           default 0.3
``termination_s``     default 1.0
``ramp_up_ma_per_s``  default 0.03
``ramp_down_ma_per_s`` default 0.12
``blanking_s``        default 15 (the RC+S example in SAFETY.md)

An invalid or non-finite output gives an off request at once (the supervisor's fallback; the
amplitude then restarts from zero after the blanking period).
Invariant 19 (ramps and blanking) is a property of :meth:`step` alone.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from ..decoders.base import DecoderOutput, OutputSchema
from ..errors import ConfigError
from ..stimulation.command import StimCommand
from ..stimulation.programs import ProgramSet
from .base import OneOutputPolicy, PolicyParams
from .therapy import TherapyMeter

__all__ = ["ThresholdSettings", "SingleThresholdPolicy", "DualThresholdPolicy",
           "RCS_RAMP_UP_MA_PER_S", "RCS_RAMP_DOWN_MA_PER_S"]

#: RC+S adaptive DBS ramp rates (PMC8558614), the defaults.
RCS_RAMP_UP_MA_PER_S = 0.03
RCS_RAMP_DOWN_MA_PER_S = 0.12
_NS = 1_000_000_000


@dataclass(frozen=True)
class ThresholdSettings:
    """Validated ``[control]`` keys of the threshold policies (module docstring)."""

    output: str
    program_id: int
    program: str
    lower: float
    upper: float
    amplitude_lo_ma: float
    amplitude_hi_ma: float
    onset_s: float
    termination_s: float
    ramp_up_ma_per_s: float
    ramp_down_ma_per_s: float
    blanking_s: float


class _ThresholdPolicy(OneOutputPolicy):
    """Shared state machine of the threshold policies (module docstring)."""

    settings: ThresholdSettings
    single = False

    @classmethod
    def _thresholds(cls, params: PolicyParams) -> tuple[float, float]:
        raise NotImplementedError

    @classmethod
    def parse(cls, params: PolicyParams, programs: ProgramSet) -> ThresholdSettings:
        if not len(programs):
            raise ConfigError(f"{params.label}: control.policy = {cls.name!r} needs a "
                              "program; add a [[stimulation.programs]] table")
        output = params.output_name("output", "beta_percentile")
        pid = params.intention("program", programs, programs.programs[0].name)
        prog = programs.get(pid)
        assert prog is not None
        lower, upper = cls._thresholds(params)
        env_lo, env_hi = prog.amplitude_min_ma, prog.amplitude_max_ma
        if params.get("amplitude_ma", None) is None:
            lo, hi = env_lo, env_hi
        else:
            lo, hi = params.interval("amplitude_ma", what="[lower, upper] mA")
            if lo < env_lo or hi > env_hi:
                raise params.fail("amplitude_ma", params.t["amplitude_ma"],
                                  f"leaves program {prog.name}'s clinician envelope "
                                  f"[{env_lo:g}, {env_hi:g}] mA; keep both limits inside it")
        if not hi > 0.0:
            raise params.fail("amplitude_ma", [lo, hi], "never stimulates; give an upper "
                              "amplitude above 0 mA")
        return ThresholdSettings(
            output, pid, prog.name, lower, upper, 0.0 if cls.single else lo, hi,
            params.number("onset_s", 0.3, lo=0.0, hi=3600.0),
            params.number("termination_s", 1.0, lo=0.0, hi=3600.0),
            params.number("ramp_up_ma_per_s", RCS_RAMP_UP_MA_PER_S, positive=True, hi=255.0),
            params.number("ramp_down_ma_per_s", RCS_RAMP_DOWN_MA_PER_S, positive=True,
                          hi=1000.0),
            params.number("blanking_s", 15.0, lo=0.0, hi=3600.0))

    @classmethod
    def check_limits(cls, settings: Any, limits: Any, label: str = "<config>") -> None:
        """Refuse a ramp faster than the hard limits or a blanking shorter than the
        supervisor's (one line naming the key and the fix)."""
        s: ThresholdSettings = settings
        ceiling = min(float(limits.ramp_up_max_ma_per_s), float(limits.slew_up_ma_per_s))
        if s.ramp_up_ma_per_s > ceiling:
            raise ConfigError(
                f"{label}: control.ramp_up_ma_per_s = {s.ramp_up_ma_per_s:g} is faster than "
                f"the hard limit {ceiling:g} mA/s ([safety] ramp_up_max_ma_per_s / "
                f"slew_up_ma_per_s); use at most {ceiling:g}")
        if s.blanking_s < float(limits.increase_blanking_s):
            raise ConfigError(
                f"{label}: control.blanking_s = {s.blanking_s:g} is shorter than the "
                f"supervisor's [safety] increase_blanking_s = {limits.increase_blanking_s:g}; "
                f"use at least {limits.increase_blanking_s:g}")

    @classmethod
    def example_params(cls, programs: ProgramSet, schema: OutputSchema) -> dict[str, Any] | None:
        if not schema.output_names or not len(programs):
            return None
        base: dict[str, Any] = {"output": schema.output_names[-1],
                                "program": programs.programs[0].name,
                                "onset_s": 0.1, "termination_s": 0.2, "ramp_up_ma_per_s": 2.0,
                                "ramp_down_ma_per_s": 4.0, "blanking_s": 0.5}
        if cls.single:
            base["threshold"] = 0.5
        else:
            base["thresholds"] = [0.3, 0.7]
        return base

    def _bind(self, schema: OutputSchema) -> None:
        s = self.settings
        self._index = schema.index(s.output)
        self._amin_p = float(self._amin[s.program_id])
        self._onset_ns = int(s.onset_s * _NS)
        self._term_ns = int(s.termination_s * _NS)
        self._blank_ns = int(s.blanking_s * _NS)
        self.meter = TherapyMeter()

    def reset(self) -> None:
        super().reset()
        self._amp = 0.0
        self._target = self.settings.amplitude_lo_ma
        self._above_since = -1
        self._below_since = -1
        self._blank_until = -(1 << 62)  # no target change before this time
        self._rise_from = -(1 << 62)     # no rise before this time (blanking after a fall)
        self._last_ns = -1
        self._changes = 0
        self._above_ns = 0
        self._total_ns = 0
        self.meter.reset()

    def step(self, output: DecoderOutput, now_ns: int, cycle: int) -> StimCommand:
        s = self.settings
        dt_ns = 0 if self._last_ns < 0 else min(max(now_ns - self._last_ns, 0), _NS)
        self._last_ns = now_ns
        v = float(output.values[self._index]) if output.valid else math.nan
        self._total_ns += dt_ns
        if not math.isfinite(v):  # fallback: off now (a fall, so blanking follows)
            if self._amp > 0.0:
                self._rise_from = now_ns + self._blank_ns
            self._amp = 0.0
            self._above_since = self._below_since = -1
            self.meter.step(now_ns, 0.0, 0.0, 0.0)
            return self._set_off(cycle)
        above = v > s.upper
        below = v < s.lower if not self.single else not above
        if above:
            self._above_ns += dt_ns
            self._below_since = -1
            if self._above_since < 0:
                self._above_since = now_ns
        elif below:
            self._above_since = -1
            if self._below_since < 0:
                self._below_since = now_ns
        else:
            self._above_since = self._below_since = -1
        if now_ns >= self._blank_until:
            if (self._above_since >= 0 and now_ns - self._above_since >= self._onset_ns
                    and self._target != s.amplitude_hi_ma):
                self._target = s.amplitude_hi_ma
                self._blank_until = now_ns + self._blank_ns
                self._changes += 1
            elif (self._below_since >= 0 and now_ns - self._below_since >= self._term_ns
                  and self._target != s.amplitude_lo_ma):
                self._target = s.amplitude_lo_ma
                self._blank_until = now_ns + self._blank_ns
                self._changes += 1
        dt = dt_ns / _NS
        amp = self._amp
        if amp < self._target:
            if now_ns >= self._rise_from:  # a rise only after the blanking that follows a fall
                amp = min(self._target, amp + s.ramp_up_ma_per_s * dt)
        elif amp > self._target:
            amp = max(self._target, amp - s.ramp_down_ma_per_s * dt)
            self._rise_from = now_ns + self._blank_ns
        self._amp = amp
        if amp <= 0.0 or amp < self._amin_p:
            self.meter.step(now_ns, 0.0, 0.0, 0.0)
            return self._set_off(cycle)
        req = self._set_program(s.program_id, amp, cycle)
        self.meter.step(now_ns, amp, req.frequency_hz, req.pulse_width_us)
        return req

    @property
    def amplitude_ma(self) -> float:
        """The amplitude the ramp has reached, mA."""
        return self._amp

    def metrics(self) -> dict[str, float]:
        m = self.meter.metrics()
        m["threshold_changes"] = float(self._changes)
        m["biomarker_above_threshold_pct"] = (100.0 * self._above_ns / self._total_ns
                                              if self._total_ns else 0.0)
        return m


class SingleThresholdPolicy(_ThresholdPolicy):
    """On (upper amplitude) above ``threshold``, off below (Little et al. 2013)."""

    name = "single-threshold"
    single = True

    @classmethod
    def _thresholds(cls, params: PolicyParams) -> tuple[float, float]:
        t = params.number("threshold", hint="in the output's unit, e.g. 75 (percentile)")
        return t, t


class DualThresholdPolicy(_ThresholdPolicy):
    """Ramp up above the upper threshold, down below the lower one (Percept aDBS)."""

    name = "dual-threshold"

    @classmethod
    def _thresholds(cls, params: PolicyParams) -> tuple[float, float]:
        return params.interval("thresholds", what="[lower, upper] in the output's unit")
