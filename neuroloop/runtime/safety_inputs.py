"""Safety inputs: what tells the supervisor about the world, polled by the loop every cycle.

A :class:`SafetyInputProvider` is anything with ``poll(cycle, now_ns) -> [(kind, payload)]``:
a device link's monitor (:class:`~neuroloop.link.monitor.LinkMonitor`: heartbeat lost,
stream stalled, NAK storm, device fault, impedance), or, in a replay, the inputs a recording
holds (:class:`RecordedSafetyInputs`). The :class:`~neuroloop.runtime.loop.ControlLoop` polls
every provider it was given each cycle, just before the supervisor's step, forwards each
input to the supervisor (:func:`forward_safety_input`) and records it as a ``link_input``
event (:func:`link_input_event`), so that a replay re-issues the same inputs at the same
cycles. A :class:`~neuroloop.runtime.session.Session` gives the loop its device link's
provider whenever its source or stimulator is on one, however the session was built.

=================================  ==========================================================
kind                               supervisor input
=================================  ==========================================================
``heartbeat_lost``,                :meth:`report_heartbeat_lost` (HOLD, zero output, every
``stream_stalled``                 cycle while it lasts)
``nak_storm``, ``device_fault``    :meth:`report_device_fault` (FAULT, latched)
``impedance``                      :meth:`report_impedance` (ohm per contact)
``estop``                          :meth:`estop` (the operator's STOP from the live monitor's
                                   page or terminal: ESTOP latched, zero output this cycle)
``rearm``                          :meth:`rearm` (the operator's terminal only)
=================================  ==========================================================
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any, Protocol, runtime_checkable

import numpy as np

__all__ = ["SafetyInput", "SafetyInputProvider", "RecordedSafetyInputs",
           "forward_safety_input", "link_input_event", "recorded_link_inputs",
           "poll_safety_inputs", "safety_input_providers"]

#: One input: ``(kind, payload)``; payload a string (why) or an impedance array (ohm).
SafetyInput = tuple[str, Any]


@runtime_checkable
class SafetyInputProvider(Protocol):
    """Something the loop asks, every cycle, what the supervisor must know."""

    def poll(self, cycle: int, now_ns: int) -> Sequence[SafetyInput]:
        """The inputs of cycle ``cycle`` at loop time ``now_ns`` (ns); empty when all is well.

        Called once per cycle from the loop's thread; must not block.
        """
        ...


class RecordedSafetyInputs:
    """Re-issues a recording's inputs at the cycles they were recorded at (replay).

    Parameters
    ----------
    by_cycle : dict of int to list of (str, object)
        ``{cycle: [(kind, payload), ...]}``, e.g. from :func:`recorded_link_inputs`.
    """

    def __init__(self, by_cycle: dict[int, list[SafetyInput]]) -> None:
        self.by_cycle = by_cycle

    def poll(self, cycle: int, now_ns: int) -> Sequence[SafetyInput]:
        return self.by_cycle.get(cycle, ())


def forward_safety_input(supervisor: Any, kind: str, payload: Any, now_ns: int) -> list:
    """Turn one input into the supervisor call it means; returns the supervisor's events."""
    if kind == "heartbeat_lost" or kind == "stream_stalled":
        return list(supervisor.report_heartbeat_lost(now_ns))
    if kind in ("nak_storm", "device_fault"):
        return list(supervisor.report_device_fault(now_ns, f"{kind}: {payload}"))
    if kind == "impedance":
        return list(supervisor.report_impedance(np.asarray(payload, dtype=np.float64), now_ns))
    if kind == "estop":
        return list(supervisor.estop(now_ns))
    if kind == "rearm":
        return list(supervisor.rearm(now_ns))
    return []


def link_input_event(cycle: int, now_ns: int, kind: str, payload: Any) -> dict[str, Any]:
    """The recorded form of one input (``kind == "link_input"`` in events.jsonl)."""
    if isinstance(payload, np.ndarray):
        payload = [float(x) for x in payload]
    elif not isinstance(payload, str | int | float | list | type(None)):
        payload = str(payload)
    return {"kind": "link_input", "cycle": int(cycle), "time_ns": int(now_ns), "input": kind,
            "payload": payload}


def recorded_link_inputs(events: Iterable[dict[str, Any]]) -> dict[int, list[SafetyInput]]:
    """``{cycle: [(kind, payload)]}`` from a recording's events (see :func:`link_input_event`)."""
    out: dict[int, list[SafetyInput]] = {}
    for ev in events:
        if ev.get("kind") == "link_input":
            out.setdefault(int(ev["cycle"]), []).append((str(ev["input"]), ev.get("payload")))
    return out


def poll_safety_inputs(providers: Sequence[SafetyInputProvider], cycle: int, now_ns: int,
                       supervisor: Any) -> Sequence[Any]:
    """Poll every provider; forward each input to ``supervisor``.

    Returns the events in order (for each input: its ``link_input`` record, then the
    supervisor's events), or an empty tuple when no provider reported anything (the usual
    cycle allocates nothing beyond the providers' own answers).
    """
    events: list | None = None
    for provider in providers:
        inputs = provider.poll(cycle, now_ns)
        if not inputs:
            continue
        if events is None:
            events = []
        for kind, payload in inputs:
            events.append(link_input_event(cycle, now_ns, kind, payload))
            events.extend(forward_safety_input(supervisor, kind, payload, now_ns))
    return events if events is not None else ()


def safety_input_providers(*parts: Any) -> list[SafetyInputProvider]:
    """The providers behind ``parts``, each once.

    A part contributes its ``safety_inputs`` attribute when it has one that is not None (a
    :class:`~neuroloop.link.serial_source.SerialSource` or
    :class:`~neuroloop.link.serial_stimulator.SerialStimulator`: its device link's monitor;
    a :class:`~neuroloop.link.device.DeviceLink` itself); a sequence of providers
    contributes each of them. A source and a stimulator on the same link give one.
    """
    out: list[SafetyInputProvider] = []

    def add(provider: Any) -> None:
        if provider is not None and all(provider is not p for p in out):
            out.append(provider)

    for part in parts:
        if isinstance(part, list | tuple):
            for provider in part:
                add(provider)
        elif part is not None:
            add(getattr(part, "safety_inputs", None))
    return out
