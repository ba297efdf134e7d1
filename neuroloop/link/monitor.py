"""``LinkMonitor``: what the link tells the safety supervisor (a safety-input provider).

The control loop polls it every cycle (:class:`~neuroloop.runtime.safety_inputs.
SafetyInputProvider`: ``poll(cycle, now_ns) -> [(kind, payload), ...]``), whenever the
session's source or stimulator is a device link, however the session was built. It reads
the protocol state (:class:`~neuroloop.link.host_protocol.HostProtocol`) and the port's
failure; it sends nothing and never blocks.

==================  ===========================================  ========================
kind                when                                         reported
==================  ===========================================  ========================
``heartbeat_lost``  no valid device frame for the heartbeat      every poll while it
                    timeout, or the port vanished (payload: why)  lasts
``stream_stalled``  no DATA for the stall timeout                every poll while it lasts
``nak_storm``       ``nak_storm_count`` NAKs within               once when it begins
                    ``nak_storm_window_s``
``device_fault``    device state WATCHDOG or FAULT, fault flags   once per new reason
                    (battery, watchdog), a device reboot
``impedance``       each new STATUS: impedance per contact, ohm   once per STATUS
                    (ndarray, +inf = open circuit)
==================  ===========================================  ========================
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from .host_protocol import HostProtocol
from .messages import DeviceState, FaultFlag, Status
from .settings import LinkSettings

__all__ = ["LinkMonitor"]

_NS = 1_000_000_000


class LinkMonitor:
    """Link faults the supervisor must act on, as ``(kind, payload)`` pairs.

    Parameters
    ----------
    protocol : HostProtocol
        The link's protocol state (written by the reader thread, read here).
    settings : LinkSettings
    failure : callable
        Returns the port's failure (an exception) or None.
    clock_ns : callable
        Host clock the frames' arrival times are on (``time.perf_counter_ns``), ns.
    """

    def __init__(self, protocol: HostProtocol, settings: LinkSettings,
                 failure: Callable[[], BaseException | None] = lambda: None,
                 clock_ns: Callable[[], int] = time.perf_counter_ns) -> None:
        self.protocol = protocol
        self.settings = settings
        self._failure = failure
        self._clock_ns = clock_ns
        self._storm_active = False
        self._fault_reported: set[str] = set()
        self._status_seen: Status | None = None

    def timeouts_ns(self) -> tuple[int, int]:
        """(heartbeat timeout, stall timeout), ns: the settings', else from the device's INFO."""
        s = self.settings
        info = self.protocol.info
        hb_ms = info.heartbeat_ms if info is not None else 100
        frame_s = (info.samples_per_frame / info.sampling_rate_hz) if info is not None else 0.1
        hb = s.heartbeat_timeout_s if s.heartbeat_timeout_s is not None \
            else max(0.3, 3 * hb_ms / 1000.0)
        stall = s.stall_timeout_s if s.stall_timeout_s is not None else max(0.3, 3 * frame_s)
        return int(hb * _NS), int(stall * _NS)

    def poll(self, cycle: int = -1, now_ns: int | None = None) -> list[tuple[str, Any]]:
        """The inputs of this cycle (see the module docstring); ``[]`` when all is well.

        Parameters
        ----------
        cycle : int
            The loop's cycle (unused: the link's state is the same whoever asks).
        now_ns : int or None
            The loop's time, ns (unused: link timing always uses the host clock the frames'
            arrival times are on, ``clock_ns``; a replay re-issues recorded inputs instead).
        """
        p = self.protocol
        now = self._clock_ns()
        out: list[tuple[str, Any]] = []
        hb_to, stall_to = self.timeouts_ns()
        failure = self._failure()
        if failure is not None:
            out.append(("heartbeat_lost", str(failure)))
        elif p.last_rx_ns and now - p.last_rx_ns > hb_to:
            out.append(("heartbeat_lost",
                        f"no frame from the device for {(now - p.last_rx_ns) / 1e6:.0f} ms"))
        elif p.last_data_ns and now - p.last_data_ns > stall_to:
            out.append(("stream_stalled",
                        f"no DATA for {(now - p.last_data_ns) / 1e6:.0f} ms"))
        window = int(self.settings.nak_storm_window_s * _NS)
        times = p.nak_times
        while times and times[0] < now - window:
            times.popleft()
        storm = len(times) >= self.settings.nak_storm_count
        if storm and not self._storm_active:
            last = p.last_nak
            out.append(("nak_storm", f"{len(times)} NAKs in "
                                     f"{self.settings.nak_storm_window_s:g} s, last "
                                     f"{last.reason.name if last else '?'}"))
        self._storm_active = storm
        reasons = self.fault_reasons()
        new = [text for key, text in reasons.items() if key not in self._fault_reported]
        if new:
            out.append(("device_fault", "; ".join(new)))
        self._fault_reported = set(reasons)
        st = p.status
        if st is not None and st is not self._status_seen:
            self._status_seen = st
            out.append(("impedance", st.impedance_ohm))
        return out

    def fault_reasons(self) -> dict[str, str]:
        """Current device faults, by reason (each reported once when it appears)."""
        p = self.protocol
        out: dict[str, str] = {}
        st = p.status
        flags = st.fault_flags if st is not None else FaultFlag.NONE
        if p.device_state == DeviceState.WATCHDOG or flags & FaultFlag.WATCHDOG_TRIPPED:
            out["watchdog"] = "device watchdog tripped: output ramped to zero until re-armed"
        if p.device_state == DeviceState.FAULT or flags & FaultFlag.BATTERY_LOW:
            pct = f" ({st.battery_pct:.1f} %)" if st is not None else ""
            out["battery"] = f"device fault latched: battery low{pct}"
        # impedance arrives as its own input; TX_OVERFLOW (nobody read the line) is not a
        # stimulation fault
        n = p.counters["device_reboots"]
        if n:
            out[f"reboot{n}"] = f"device rebooted ({n}x): disarmed, re-arm needed"
        return out
