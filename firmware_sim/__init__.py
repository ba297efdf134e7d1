"""firmware_sim: a simulated implant that speaks neuroloop's wire protocol byte for byte.

Run it with ``firmware-sim --pty --key-file keys.toml`` (or ``python -m firmware_sim``); it
prints the device path on its first line and streams a synthetic patient until stopped.

Modules: :mod:`~firmware_sim.device` (pure firmware logic: link checks, stimulator state,
watchdog, battery, impedance), :mod:`~firmware_sim.streamer` (patient -> int16 frames),
:mod:`~firmware_sim.transport` (pty / TCP), :mod:`~firmware_sim.faults` (link faults),
:mod:`~firmware_sim.sim` (the paced main loop), :mod:`~firmware_sim.soak` (long runs).
"""

from __future__ import annotations

__all__ = ["__version__"]

__version__ = "0.1.0"
