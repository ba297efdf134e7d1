"""Open-loop references: ``continuous`` (one program always on) and ``off`` (never on).

They are what a closed-loop therapy is compared against in the same run
(:mod:`neuroloop.runtime.counterfactual`): conventional continuous DBS at the adaptive
policy's maximum amplitude (``--compare-continuous``), or no stimulation at all (an
unstimulated control). Both ignore the decoder and report the same therapy figures as the
threshold policies (:class:`~neuroloop.control.therapy.TherapyMeter`).

``[control]`` keys of ``continuous``
------------------------------------
``program``
    The intention whose program runs (default: the scenario's first program).
``amplitude_ma``
    Program amplitude in mA inside its clinician envelope (default: the envelope's maximum).

``off`` has no keys.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..decoders.base import DecoderOutput, OutputSchema
from ..errors import ConfigError
from ..stimulation.command import StimCommand
from ..stimulation.programs import ProgramSet
from .base import ControlPolicy, PolicyParams
from .therapy import TherapyMeter

__all__ = ["ContinuousPolicy", "ContinuousSettings", "OffPolicy"]


@dataclass(frozen=True)
class ContinuousSettings:
    """Validated ``[control]`` keys of :class:`ContinuousPolicy`."""

    program_id: int
    program: str
    amplitude_ma: float


class ContinuousPolicy(ControlPolicy):
    """One program at a fixed amplitude in every cycle (conventional, open-loop DBS); off
    only while the decoder output is invalid (a sensor fault, as the supervisor's fallback)."""

    name = "continuous"
    settings: ContinuousSettings

    @classmethod
    def parse(cls, params: PolicyParams, programs: ProgramSet) -> ContinuousSettings:
        if not len(programs):
            raise ConfigError(f"{params.label}: control.policy = \"continuous\" needs a "
                              "program; add a [[stimulation.programs]] table")
        pid = params.intention("program", programs, programs.programs[0].name)
        prog = programs.get(pid)
        assert prog is not None
        lo, hi = prog.amplitude_min_ma, prog.amplitude_max_ma
        amp = params.number("amplitude_ma", hi, lo=lo, hi=hi,
                            hint=f"inside program {prog.name}'s envelope [{lo:g}, {hi:g}] mA")
        return ContinuousSettings(pid, prog.name, amp)

    @classmethod
    def example_params(cls, programs: ProgramSet, schema: OutputSchema) -> dict[str, Any] | None:
        if not len(programs):
            return None
        return {"program": programs.programs[0].name}

    def _bind(self, schema: OutputSchema) -> None:
        self.meter = TherapyMeter()

    def reset(self) -> None:
        super().reset()
        self.meter.reset()

    def step(self, output: DecoderOutput, now_ns: int, cycle: int) -> StimCommand:
        s = self.settings
        if not output.valid:  # a sensor fault: off, as the supervisor's fallback would be
            self.meter.step(now_ns, 0.0, 0.0, 0.0)
            return self._set_off(cycle)
        req = self._set_program(s.program_id, s.amplitude_ma, cycle)
        self.meter.step(now_ns, s.amplitude_ma, req.frequency_hz, req.pulse_width_us)
        return req

    def metrics(self) -> dict[str, float]:
        return self.meter.metrics()


class OffPolicy(ControlPolicy):
    """Never stimulates (an unstimulated control of the same patient)."""

    name = "off"

    @classmethod
    def parse(cls, params: PolicyParams, programs: ProgramSet) -> None:
        return None

    def _bind(self, schema: OutputSchema) -> None:
        self.meter = TherapyMeter()

    def reset(self) -> None:
        super().reset()
        self.meter.reset()

    def step(self, output: DecoderOutput, now_ns: int, cycle: int) -> StimCommand:
        self.meter.step(now_ns, 0.0, 0.0, 0.0)
        return self._set_off(cycle)

    def metrics(self) -> dict[str, float]:
        return self.meter.metrics()
