"""``proportional``: one continuous decoder output drives one program's amplitude.

The output's value ``v`` is mapped linearly onto the program's clinician envelope::

    v <  lo + dead_band  -> off
    lo + dead_band <= v <= hi -> amplitude_min + (v - lo) / (hi - lo) * (amplitude_max - amplitude_min)
    v >  hi              -> amplitude_max (saturation)

An invalid decoder output, a non-finite value, or (with ``states``) a gated state outside
``states`` gives off. The amplitude is clamped into ``[amplitude_min_ma, amplitude_max_ma]``
so no decoded value (huge, +inf) can leave the envelope; the supervisor's slew limit then
bounds how fast it may rise.

``[control]`` keys
------------------
``output``
    Name of the decoder's continuous output, e.g. ``"state_margin"`` (checked against the
    decoder's schema when the session is built).
``program``
    The intention whose program is driven, e.g. ``"left_hip_flexion"``.
``input_range``
    ``[lo, hi]`` with ``lo < hi``, in the output's unit: ``lo`` maps to the program's minimum
    amplitude, ``hi`` (and above) to its maximum.
``dead_band``
    Optional, >= 0 and < ``hi - lo`` (default 0): values below ``lo + dead_band`` are off.
``states``
    Optional list of intentions: stimulate only while the gated state is one of them
    (default: whatever the state).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..decoders.base import DecoderOutput, OutputSchema
from ..stimulation.command import StimCommand
from ..stimulation.programs import ProgramSet
from .base import OneOutputPolicy, PolicyParams

__all__ = ["ProportionalPolicy", "ProportionalSettings"]


@dataclass(frozen=True)
class ProportionalSettings:
    """Validated ``[control]`` keys of :class:`ProportionalPolicy` (module docstring)."""

    output: str
    program_id: int
    program: str
    input_lo: float
    input_hi: float
    dead_band: float = 0.0
    states: tuple[int, ...] | None = None


class ProportionalPolicy(OneOutputPolicy):
    """A continuous output mapped onto one program's clinician envelope, with a dead band
    and saturation (module docstring). Keeps no state between cycles."""

    name = "proportional"
    #: No state between cycles but the request it writes (:mod:`neuroloop.runtime.shadow`).
    SHADOW_STATE: tuple[str, ...] = ("request",)
    settings: ProportionalSettings

    @classmethod
    def parse(cls, params: PolicyParams, programs: ProgramSet) -> ProportionalSettings:
        output = params.output_name("output")
        pid = params.intention("program", programs)
        lo, hi = params.interval("input_range", what="[lo, hi] in the output's unit")
        dead_band = params.number("dead_band", 0.0, lo=0.0)
        if not dead_band < hi - lo:
            raise params.fail("dead_band", params.t["dead_band"],
                              f"leaves nothing of input_range [{lo:g}, {hi:g}] to stimulate "
                              f"in; use less than hi - lo = {hi - lo:g}")
        states = None
        if params.get("states", None) is not None:
            states = params.intentions("states", programs.intention_names)
        return ProportionalSettings(output, pid, programs.intention_names[pid], lo, hi,
                                    dead_band, states)

    @classmethod
    def example_params(cls, programs: ProgramSet, schema: OutputSchema) -> dict[str, Any] | None:
        if not schema.output_names or not len(programs):
            return None
        return {"output": schema.output_names[-1], "program": programs.programs[0].name,
                "input_range": [0.2, 0.9], "dead_band": 0.05}

    def _bind(self, schema: OutputSchema) -> None:
        s = self.settings
        self._index = schema.index(s.output)
        self._pid = s.program_id
        self._lo = s.input_lo
        self._on_at = s.input_lo + s.dead_band
        self._hi = s.input_hi
        self._span = s.input_hi - s.input_lo
        self._amin_p = float(self._amin[s.program_id])
        self._amax_p = float(self._amax[s.program_id])
        n = len(self.programs.intention_names)
        self._gate = np.ones(n, dtype=np.bool_)
        if s.states is not None:
            self._gate[:] = False
            self._gate[list(s.states)] = True
        self._n = n

    def amplitude_ma(self, value: float) -> float:
        """Program amplitude (mA) for the output ``value``; 0.0 means off."""
        if not math.isfinite(value) and value != math.inf:
            return 0.0  # NaN, -inf
        if not value >= self._on_at:
            return 0.0
        frac = 1.0 if value >= self._hi else (value - self._lo) / self._span
        if not frac >= 0.0:  # NaN included: never leave the envelope
            frac = 0.0
        elif frac > 1.0:
            frac = 1.0
        amp = self._amin_p + frac * (self._amax_p - self._amin_p)
        if not amp >= self._amin_p:
            return self._amin_p
        return amp if amp <= self._amax_p else self._amax_p

    def step(self, output: DecoderOutput, now_ns: int, cycle: int) -> StimCommand:
        state = int(output.state)
        if not output.valid or not (0 <= state < self._n) or not self._gate[state]:
            return self._set_off(cycle)
        amp = self.amplitude_ma(float(output.values[self._index]))
        if amp <= 0.0:
            return self._set_off(cycle)
        return self._set_program(self._pid, amp, cycle)
