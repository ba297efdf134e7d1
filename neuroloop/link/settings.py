"""``LinkSettings``: the timing of the host link's checks (shared by all of its parts)."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["LinkSettings"]


@dataclass(frozen=True)
class LinkSettings:
    """Timing of the link's checks.

    Attributes
    ----------
    open_timeout_s : float
        A valid INFO frame must arrive within this after opening (else: baud/cable error), s.
    heartbeat_interval_s : float
        Host HEARTBEAT period (must be well below the device's watchdog, 300 ms default), s.
    liveness_timeout_s : float
        Heartbeats stop when the loop has not called read/send for this long, s.
    heartbeat_timeout_s : float or None
        No valid device frame for this long is ``heartbeat_lost``, s (default: 3 device
        heartbeat periods, at least 0.3 s).
    stall_timeout_s : float or None
        No DATA for this long is ``stream_stalled``, s (default: 3 frame periods, >= 0.3 s).
    ack_timeout_s : float
        A STIM without ACK or NAK after this long counts in ``acks_missing``, s.
    nak_storm_count, nak_storm_window_s : int, float
        This many NAKs within the window (s) is a ``nak_storm``.
    reconnect_attempts, reconnect_delay_s : int, float
        How often (and how far apart, s) a vanished port is reopened before giving up.
    queue_s : float
        Seconds of samples buffered for a slow reader before the oldest are dropped.
    read_chunk_timeout_s : float
        pyserial read timeout of the reader thread, s.
    auto_arm : bool
        Send ARM on the first ``source.read`` or ``stimulator.send`` if nobody armed the
        device yet (the control loop starts; the device starts from zero output too).
    realtime_priority : int or None
        SCHED_FIFO priority the reader and heartbeat threads ask for (like the control
        loop, so that a busy machine does not delay frames); None keeps them time-shared.
        Refusal is not an error (see ``stats()["realtime"]``).
    rehearse_lead_s : float or None
        The reader thread wakes this long before the next DATA frame is due (one frame
        period after the last) and decodes the last frame again, outputs discarded, so that
        the real frame is decoded with warm caches (:meth:`HostProtocol.rehearse_data`);
        None: never (the reader sleeps until bytes arrive), s.
    """

    open_timeout_s: float = 2.0
    heartbeat_interval_s: float = 0.05
    liveness_timeout_s: float = 0.5
    heartbeat_timeout_s: float | None = None
    stall_timeout_s: float | None = None
    ack_timeout_s: float = 0.5
    nak_storm_count: int = 5
    nak_storm_window_s: float = 1.0
    reconnect_attempts: int = 3
    reconnect_delay_s: float = 0.2
    queue_s: float = 10.0
    read_chunk_timeout_s: float = 0.02
    auto_arm: bool = True
    realtime_priority: int | None = 50
    rehearse_lead_s: float | None = 0.001
