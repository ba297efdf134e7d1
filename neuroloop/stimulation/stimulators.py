"""Stimulator backends: where safe commands go.

``send`` hands a command to the stimulator; ``stop`` is always allowed and never needs
authentication; ``status`` reports what the stimulator knows of itself.
Backends: :class:`SimulatedStimulator` (in process), :class:`NullStimulator`, and the serial
link to firmware_sim or real hardware (:mod:`neuroloop.link.serial_stimulator`).
"""

from __future__ import annotations

from typing import Any

from .command import StimCommand

__all__ = ["BaseStimulator", "SimulatedStimulator", "NullStimulator"]


class BaseStimulator:
    """Abstract stimulator."""

    def open(self) -> BaseStimulator:
        return self

    def send(self, command: StimCommand, *, hop_last_sample: int = -1) -> None:
        """Deliver ``command`` (already made safe by the supervisor).

        ``hop_last_sample`` is the stream index of the last sample of the hop the command
        was computed from (a device uses it to measure its own end-to-end latency).
        """
        raise NotImplementedError

    def stop(self) -> None:
        """Stop all output now. Always allowed, never authenticated, never raises on a
        healthy stimulator."""
        raise NotImplementedError

    def status(self) -> dict[str, Any]:
        return {}

    def close(self) -> None:
        self.stop()

    def __enter__(self) -> BaseStimulator:
        return self.open()

    def __exit__(self, *exc: object) -> None:
        self.close()


class NullStimulator(BaseStimulator):
    """Accepts every command and does nothing (for offline evaluation)."""

    def send(self, command: StimCommand, *, hop_last_sample: int = -1) -> None:
        pass

    def stop(self) -> None:
        pass


class SimulatedStimulator(BaseStimulator):
    """In-process stimulator that keeps its current output and simple delivery counters.

    Preallocated: ``send`` copies into its own command, no allocation.
    """

    def __init__(self, n_contacts: int) -> None:
        self.output = StimCommand.off(n_contacts)
        self.commands_received = 0
        self.cycles_stimulating = 0
        self._stopped = False

    def send(self, command: StimCommand, *, hop_last_sample: int = -1) -> None:
        self.output.copy_from(command)
        self.commands_received += 1
        if not command.is_off:
            self.cycles_stimulating += 1
        self._stopped = False

    def stop(self) -> None:
        self.output.set_off()
        self._stopped = True

    def status(self) -> dict[str, Any]:
        return {"commands_received": self.commands_received,
                "cycles_stimulating": self.cycles_stimulating,
                "stopped": self._stopped,
                "program_id": int(self.output.program_id)}
