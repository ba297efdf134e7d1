"""Link capacity: how much of a UART the stream and the commands use.

A UART at ``baud`` with 8N1 framing moves ``baud / 10`` bytes per second in each direction
(start bit + 8 data bits + stop bit). Frame sizes below are exact for the protocol's headers,
tags and CRC, and take COBS at its worst case (one extra byte per 254, plus one) plus the
0x00 delimiter. Example, the bsi stream at 921 600 baud (``link_utilisation()``)::

    DATA  64 ch x 59 samples + labels: 7 677 B framed, 7 709 B on the wire, 9.93 frames/s
    device -> host: 77 781 B/s of 92 160 B/s = 84.4 % (headroom 15.6 %)
    host -> device:  3 155 B/s of 92 160 B/s =  3.4 %
    (raw samples alone: 64 x 586 x 2 = 75 008 B/s = 81.4 %)
"""

from __future__ import annotations

from .auth import TAG_LEN
from .codec import HEADER_LEN
from .crc import CRC_LEN
from .framing import max_encoded_len
from .messages import Ack, Data, Heartbeat, Status, Stim

__all__ = ["wire_bytes", "link_utilisation"]


def wire_bytes(payload_len: int, tagged: bool = True) -> int:
    """Bytes on the wire for one frame with ``payload_len`` payload bytes (worst-case COBS)."""
    body = HEADER_LEN + payload_len + (TAG_LEN if tagged else 0) + CRC_LEN
    return max_encoded_len(body) + 1


def link_utilisation(*, n_channels: int = 64, sampling_rate_hz: float = 586.0,
                     samples_per_frame: int = 59, baud: int = 921600, n_contacts: int = 16,
                     stim_rate_hz: float | None = None, heartbeat_hz: float = 10.0,
                     host_heartbeat_hz: float = 20.0, status_hz: float = 1.0,
                     labels: bool = True) -> dict[str, float]:
    """Bytes per second each direction needs, and the share of the UART it takes.

    Parameters
    ----------
    n_channels, sampling_rate_hz, samples_per_frame : int, float, int
        The stream.
    baud : int
        Line rate, bit/s (8N1: ``baud / 10`` bytes/s).
    n_contacts : int
        Contacts in each STIM.
    stim_rate_hz : float, optional
        STIM commands per second (default: one per frame, i.e. one per control hop).
    heartbeat_hz, host_heartbeat_hz, status_hz : float
        Periodic device HEARTBEAT, host HEARTBEAT and device STATUS rates.
    labels : bool
        Whether DATA frames carry the simulator's ground-truth labels (real devices: no).

    Returns
    -------
    dict
        ``d2h_bytes_per_s``, ``h2d_bytes_per_s``, ``capacity_bytes_per_s``,
        ``d2h_utilisation`` and ``h2d_utilisation`` (0..1), ``headroom`` (1 - the larger
        one), ``data_frame_bytes``, ``frames_per_s``, ``raw_sample_bytes_per_s``.
    """
    if samples_per_frame <= 0 or sampling_rate_hz <= 0 or baud <= 0:
        raise ValueError("samples_per_frame, sampling_rate_hz and baud must be positive")
    capacity = baud / 10.0
    frames_per_s = sampling_rate_hz / samples_per_frame
    stim_hz = frames_per_s if stim_rate_hz is None else stim_rate_hz
    data_payload = Data._ST.size + 2 * samples_per_frame * n_channels \
        + (samples_per_frame if labels else 0)
    data_frame = wire_bytes(data_payload)
    hb = wire_bytes(Heartbeat._ST.size)
    status = wire_bytes(Status._ST.size + 4 * n_contacts)
    ack = wire_bytes(Ack._ST.size)
    stim = wire_bytes(Stim._ST.size + 8 * n_contacts)
    d2h = data_frame * frames_per_s + hb * heartbeat_hz + status * status_hz + ack * stim_hz
    h2d = stim * stim_hz + hb * host_heartbeat_hz
    return {
        "baud": float(baud),
        "capacity_bytes_per_s": capacity,
        "raw_sample_bytes_per_s": 2.0 * n_channels * sampling_rate_hz,
        "data_frame_bytes": float(data_frame),
        "frames_per_s": frames_per_s,
        "d2h_bytes_per_s": d2h,
        "h2d_bytes_per_s": h2d,
        "d2h_utilisation": d2h / capacity,
        "h2d_utilisation": h2d / capacity,
        "headroom": 1.0 - max(d2h, h2d) / capacity,
    }

