"""Intention -> stimulation request.

Rest (state 0), an invalid decoder output, or an intention without a program give an "off"
request. A movement intention gives its program's contact currents with the program amplitude
scaled by decoder confidence: ``min`` at ``confidence_threshold``, ``max`` at confidence 1.
The result is a *request*: the safety supervisor decides what is actually sent.
"""

from __future__ import annotations

import math

import numpy as np

from ..config import StimulationConfig
from ..decoders.base import Intention
from .command import PROGRAM_OFF, StimCommand
from .electrodes import ElectrodeArray, electrode_array
from .programs import ProgramSet, StimProgram

__all__ = ["StimMapper", "build_program_set"]


def build_program_set(config: StimulationConfig, intention_names: tuple[str, ...]) -> ProgramSet:
    """Build the electrode array and programs of a scenario's ``[stimulation]`` section."""
    try:
        array: ElectrodeArray = electrode_array(config.array)
    except KeyError as exc:
        from ..errors import ConfigError

        raise ConfigError(f"stimulation.array = {config.array!r}: {exc.args[0]}; choose one of "
                          "those") from None
    programs: list[StimProgram] = []
    for p in config.programs:
        pid = intention_names.index(p.intention)
        try:
            programs.append(StimProgram.from_contacts(
                array, pid, p.intention, p.cathodes, p.anodes, p.frequency_hz,
                p.pulse_width_us, p.amplitude_ma, p.interphase_gap_us))
        except (KeyError, ValueError) as exc:
            from ..errors import ConfigError

            msg = exc.args[0] if exc.args else str(exc)
            raise ConfigError(f"stimulation program {p.intention!r}: {msg}") from None
    return ProgramSet(array, intention_names, tuple(programs))


class StimMapper:
    """Maps an :class:`Intention` to a :class:`StimCommand` request, without allocating.

    Parameters
    ----------
    programs : ProgramSet
    confidence_threshold : float
        Confidence (0..1) at which a program runs at its minimum amplitude.
    """

    def __init__(self, programs: ProgramSet, confidence_threshold: float = 0.5) -> None:
        if not 0.0 <= confidence_threshold < 1.0:
            raise ValueError("confidence_threshold must be in [0, 1)")
        self.programs = programs
        self.confidence_threshold = float(confidence_threshold)
        t = programs.table()
        self._signed = t["signed_fraction"]
        self._uses_case = t["uses_case"]
        self._freq = t["frequency_hz"]
        self._pw = t["pulse_width_us"]
        self._ipg = t["interphase_gap_us"]
        self._amin = t["amplitude_min_ma"]
        self._amax = t["amplitude_max_ma"]
        self._has = t["has_program"]
        self.request = StimCommand.off(programs.array.n_contacts)

    def program_amplitude_ma(self, state: int, confidence: float) -> float:
        """Program amplitude (total cathodic current, mA) for ``state`` at ``confidence``."""
        if not (0 <= state < self._has.shape[0]) or not self._has[state]:
            return 0.0
        if not math.isfinite(confidence):
            return 0.0
        thr = self.confidence_threshold
        scale = min(max((confidence - thr) / (1.0 - thr), 0.0), 1.0)
        return float(self._amin[state] + scale * (self._amax[state] - self._amin[state]))

    def map(self, intention: Intention, cycle: int) -> StimCommand:
        """Return the request for ``intention`` (a preallocated command, overwritten next call)."""
        req = self.request
        req.cycle = cycle
        state = int(intention.state)
        if (not intention.valid or state <= 0 or state >= self._has.shape[0]
                or not self._has[state]):
            req.set_off()
            return req
        amp = self.program_amplitude_ma(state, float(intention.confidence))
        np.multiply(self._signed[state], amp, out=req.amplitude_ma)
        req.case_ma = amp if self._uses_case[state] else 0.0
        req.pulse_width_us = float(self._pw[state])
        req.frequency_hz = float(self._freq[state])
        req.interphase_gap_us = float(self._ipg[state])
        req.program_id = state if amp > 0 else PROGRAM_OFF
        return req
