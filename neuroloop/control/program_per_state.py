"""``program-per-state``: each decoded intention drives its own program (BSI, EEG BCI).

Rest (state 0 when a scenario has one; rest has no program), an invalid decoder output, or a
state without a program give an "off"
request. A movement state gives its program's contact currents with the program amplitude
scaled by decoder confidence: the program's ``amplitude_min_ma`` at ``confidence_threshold``
(and below), its ``amplitude_max_ma`` at confidence 1; a non-finite confidence gives zero.
This is, bit for bit, what ``StimMapper`` did before control policies existed.

``[control]`` keys
------------------
``confidence_threshold``
    Confidence in [0, 0.99] at which a program runs at its minimum amplitude (default 0.5).
    Older scenario files set it in ``[stimulation]``; it is still read from there.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from ..decoders.base import DecoderOutput, OutputSchema
from ..stimulation.command import StimCommand
from ..stimulation.programs import ProgramSet
from .base import ControlPolicy, PolicyParams

__all__ = ["ProgramPerStatePolicy", "ProgramPerStateSettings"]


@dataclass(frozen=True)
class ProgramPerStateSettings:
    """Validated ``[control]`` keys of :class:`ProgramPerStatePolicy`."""

    confidence_threshold: float = 0.5


class ProgramPerStatePolicy(ControlPolicy):
    """The gated decoder state picks the program; its confidence sets the amplitude.

    See the module docstring for the mapping and the ``[control]`` keys. Needs no
    continuous decoder output and keeps no state between cycles.
    """

    name = "program-per-state"
    #: No state between cycles but the request it writes (:mod:`neuroloop.runtime.shadow`).
    SHADOW_STATE: tuple[str, ...] = ("request",)
    settings: ProgramPerStateSettings

    @classmethod
    def parse(cls, params: PolicyParams, programs: ProgramSet) -> ProgramPerStateSettings:
        return ProgramPerStateSettings(
            params.number("confidence_threshold", 0.5, lo=0.0, hi=0.99))

    @classmethod
    def example_params(cls, programs: ProgramSet, schema: OutputSchema) -> dict[str, Any]:
        return {"confidence_threshold": 0.5}

    def _bind(self, schema: OutputSchema) -> None:
        self._thr = self.settings.confidence_threshold
        self._n = self._has.shape[0]

    def program_amplitude_ma(self, state: int, confidence: float) -> float:
        """Program amplitude (total cathodic current, mA) for ``state`` at ``confidence``."""
        if not (0 <= state < self._n) or not self._has[state]:
            return 0.0
        if not math.isfinite(confidence):
            return 0.0
        thr = self._thr
        scale = min(max((confidence - thr) / (1.0 - thr), 0.0), 1.0)
        return float(self._amin[state] + scale * (self._amax[state] - self._amin[state]))

    def step(self, output: DecoderOutput, now_ns: int, cycle: int) -> StimCommand:
        state = int(output.state)
        if not output.valid or state < 0 or state >= self._n or not self._has[state]:
            return self._set_off(cycle)
        amp = self.program_amplitude_ma(state, float(output.confidence))
        return self._set_program(state, amp, cycle)
