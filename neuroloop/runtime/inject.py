"""Fault injection for ``neuroloop run --inject KIND@SECONDS``: it only injects.

A device link's safety inputs (heartbeat lost, device fault, NAK storm, impedance) are not
injected: the loop polls them every cycle from the session's providers
(:mod:`neuroloop.runtime.safety_inputs`), however the session was built.

Each fault starts at the cycle nearest to ``SECONDS`` after the loop starts and lasts the
duration given below (``KIND@SECONDS:DURATION`` overrides it). Faults are keyed on cycle
indices, not wall time, so a replay of the recording reproduces them.

=================  ==========  =========================================================
kind               default     what happens, and the documented safe state
=================  ==========  =========================================================
decoder-nan        2 s         decoder output and request become NaN -> zero output, event
                               ``nonfinite``; HOLD after the fallback count, recovery after
                               M valid cycles
decoder-random     2 s         random intention and confidence each cycle -> output stays in
                               every limit (slew, envelope, charge); events when clamped
decoder-max        2 s         request of 1000 mA on every contact -> clamped to the limits,
                               events per clamped contact
source-stall       1 s         no fresh samples -> stale input -> HOLD (zero), recovery after
                               M valid cycles
deadline-overrun   until end   every cycle overruns its deadline -> after K consecutive misses
                               FAULT, latched: zero output until re-armed
impedance-open     until end   the first cathode of the first program reads open circuit ->
                               that contact is never driven again
estop              until end   STOP -> ESTOP latched, zero output within one cycle
=================  ==========  =========================================================
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..decoders.base import DecoderOutput
from ..errors import ConfigError
from ..stimulation.command import StimCommand
from .loop import FaultHooks
from .safety_inputs import link_input_event, recorded_link_inputs

__all__ = ["Injection", "INJECTION_KINDS", "parse_injections", "build_hooks", "InjectionHooks",
           "link_input_event", "recorded_link_inputs"]

#: kind -> default duration in seconds (inf = until the end of the run).
INJECTION_KINDS: dict[str, float] = {
    "decoder-nan": 2.0,
    "decoder-random": 2.0,
    "decoder-max": 2.0,
    "source-stall": 1.0,
    "deadline-overrun": math.inf,
    "impedance-open": math.inf,
    "estop": math.inf,
}

_OPEN_CIRCUIT_OHM = 1.0e6


@dataclass(frozen=True)
class Injection:
    """One scheduled fault: ``kind`` from ``start_s`` for ``duration_s`` seconds."""

    kind: str
    start_s: float
    duration_s: float


def parse_injections(specs: list[str]) -> list[Injection]:
    """Parse ``KIND@SECONDS[:DURATION]`` strings; raises ConfigError naming the bad one."""
    out: list[Injection] = []
    for spec in specs:
        kind, sep, when = spec.partition("@")
        if not sep or kind not in INJECTION_KINDS:
            raise ConfigError(
                f"--inject {spec!r}: expected KIND@SECONDS with KIND one of "
                f"{', '.join(INJECTION_KINDS)} (e.g. --inject estop@20)")
        start, _, dur = when.partition(":")
        try:
            start_s = float(start)
            duration_s = float(dur) if dur else INJECTION_KINDS[kind]
        except ValueError:
            raise ConfigError(f"--inject {spec!r}: SECONDS must be a number "
                              "(e.g. --inject source-stall@10 or source-stall@10:2.5)") from None
        if not (start_s >= 0 and math.isfinite(start_s)) or not duration_s > 0:
            raise ConfigError(f"--inject {spec!r}: the time must be >= 0 and the duration > 0")
        out.append(Injection(kind, start_s, duration_s))
    return out


class InjectionHooks(FaultHooks):
    """Applies scheduled injections.

    Parameters
    ----------
    injections : list of Injection
    hop_s : float
        Cycle period, s (converts seconds to cycle indices).
    deadline_ns : int
        The loop's deadline, ns; deadline-overrun busy-waits past it.
    n_states, n_contacts : int
    impedance_contact : int
        Contact that ``impedance-open`` opens.
    seed : int
        Seed of ``decoder-random``.
    """

    def __init__(self, injections: list[Injection], *, hop_s: float, deadline_ns: int,
                 n_states: int, n_contacts: int, impedance_contact: int = 0,
                 seed: int = 0) -> None:
        self.windows: dict[str, list[tuple[int, int]]] = {}
        for inj in injections:
            first = int(round(inj.start_s / hop_s))
            last = (2**62 if math.isinf(inj.duration_s)
                    else first + max(1, int(round(inj.duration_s / hop_s))) - 1)
            self.windows.setdefault(inj.kind, []).append((first, last))
        self.deadline_ns = int(deadline_ns)
        self.n_states = n_states
        self.n_contacts = n_contacts
        self.impedance_contact = impedance_contact
        self._starts_at = {a for windows in self.windows.values() for a, _ in windows}
        self._rng = np.random.default_rng(seed)
        self._impedance = np.full(n_contacts, 1000.0)
        self._done: set[tuple[str, int]] = set()

    def _active(self, kind: str, cycle: int) -> bool:
        return any(a <= cycle <= b for a, b in self.windows.get(kind, ()))

    def _starts(self, kind: str, cycle: int) -> bool:
        return any(a == cycle for a, _ in self.windows.get(kind, ()))

    def stall(self, cycle: int) -> bool:
        return self._active("source-stall", cycle)

    def alter_intention(self, cycle: int, intention: DecoderOutput) -> bool:
        if self._active("decoder-nan", cycle):
            intention.probabilities[:] = np.nan
            intention.confidence = math.nan
            intention.values[:] = np.nan
            return True
        if self._active("decoder-random", cycle):
            intention.state = int(self._rng.integers(0, self.n_states))
            intention.confidence = float(self._rng.random())
            return True
        if self._active("decoder-max", cycle):
            intention.confidence = 1.0
            return True
        return False

    def alter_request(self, cycle: int, request: StimCommand) -> bool:
        if self._active("decoder-nan", cycle):
            request.amplitude_ma[:] = np.nan
            request.pulse_width_us = math.nan
            return True
        if self._active("decoder-max", cycle):
            request.amplitude_ma[:] = 1000.0
            request.amplitude_ma[::2] = -1000.0
            request.pulse_width_us = 1.0e4
            request.frequency_hz = 1.0e4
            return True
        return False

    def extra_compute_ns(self, cycle: int) -> int:
        if self._active("deadline-overrun", cycle):
            return self.deadline_ns + 2_000_000
        return 0

    def before_supervisor(self, cycle: int, now_ns: int, supervisor: Any) -> Sequence[Any]:
        if cycle not in self._starts_at:
            return ()  # the usual cycle: nothing to do, nothing allocated
        events: list = []
        if self._starts("estop", cycle):
            events.extend(supervisor.estop(now_ns))
        if self._starts("impedance-open", cycle):
            self._impedance[self.impedance_contact] = _OPEN_CIRCUIT_OHM
            events.extend(supervisor.report_impedance(self._impedance.copy(), now_ns))
        return events


def build_hooks(injections: list[Injection], session: Any) -> InjectionHooks:
    """Hooks for a :class:`~neuroloop.runtime.session.Session` (safety inputs are the
    session's own: see :mod:`neuroloop.runtime.safety_inputs`)."""
    programs = session.programs
    contact = 0
    if len(programs):
        first = programs.programs[0]
        contact = int(np.argmax(first.cathode_fraction))
    return InjectionHooks(
        injections, hop_s=session.scenario.hop_s, deadline_ns=int(session.deadline_ms * 1e6),
        n_states=len(session.scenario.intention_names), n_contacts=programs.array.n_contacts,
        impedance_contact=contact, seed=session.options.seed or 0)
