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

import math
from dataclasses import dataclass

from ..errors import ConfigError
from .auth import TAG_LEN
from .codec import HEADER_LEN
from .crc import CRC_LEN
from .framing import max_encoded_len
from .messages import Ack, Data, Heartbeat, Status, Stim

__all__ = ["wire_bytes", "link_utilisation", "Transport", "TRANSPORTS", "transport_for",
           "stream_need", "check_link", "carriers"]


def wire_bytes(payload_len: int, tagged: bool = True) -> int:
    """Bytes on the wire for one frame with ``payload_len`` payload bytes (worst-case COBS)."""
    body = HEADER_LEN + payload_len + (TAG_LEN if tagged else 0) + CRC_LEN
    return max_encoded_len(body) + 1


def link_utilisation(*, n_channels: int = 64, sampling_rate_hz: float = 586.0,
                     samples_per_frame: int = 59, baud: int = 921600, n_contacts: int = 16,
                     stim_rate_hz: float | None = None, heartbeat_hz: float = 10.0,
                     host_heartbeat_hz: float = 20.0, status_hz: float = 1.0,
                     labels: bool = True,
                     capacity_bytes_per_s: float | None = None) -> dict[str, float]:
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
    capacity_bytes_per_s : float, optional
        Payload capacity of a transport other than a UART (:data:`TRANSPORTS`); default
        ``baud / 10``.

    Returns
    -------
    dict
        ``d2h_bytes_per_s``, ``h2d_bytes_per_s``, ``capacity_bytes_per_s``,
        ``d2h_utilisation`` and ``h2d_utilisation`` (0..1), ``headroom`` (1 - the larger
        one), ``data_frame_bytes``, ``frames_per_s``, ``raw_sample_bytes_per_s``.
    """
    if samples_per_frame <= 0 or sampling_rate_hz <= 0 or baud <= 0:
        raise ValueError("samples_per_frame, sampling_rate_hz and baud must be positive")
    capacity = baud / 10.0 if capacity_bytes_per_s is None else float(capacity_bytes_per_s)
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



# ------------------------------------------------------------------------------ transports
@dataclass(frozen=True)
class Transport:
    """A link a device may stream over, with the payload it sustains each way.

    Attributes
    ----------
    name : str
    bytes_per_s : float
        Sustained payload, bytes per second (UART: ``baud / 10`` with 8N1 framing).
    note : str
        Where the figure comes from.
    """

    name: str
    bytes_per_s: float
    note: str


#: Transports an implant or its bench set-up may use, slowest first. USB and Ethernet figures
#: are sustained payloads (USB 2.0 full speed CDC ~8 Mbit/s, high speed bulk ~320 Mbit/s,
#: gigabit Ethernet TCP ~940 Mbit/s); BLE 5 2M PHY ~1.4 Mbit/s of application data.
TRANSPORTS: tuple[Transport, ...] = (
    Transport("uart-921600", 92_160.0, "UART at 921 600 baud, 8N1"),
    Transport("ble-2m", 175_000.0, "Bluetooth LE 5, 2M PHY, ~1.4 Mbit/s of payload"),
    Transport("uart-3000000", 300_000.0, "UART at 3 Mbaud, 8N1"),
    Transport("usb-fs", 1_000_000.0, "USB 2.0 full speed (CDC), ~8 Mbit/s"),
    Transport("usb-hs", 40_000_000.0, "USB 2.0 high speed (bulk), ~320 Mbit/s"),
    Transport("tcp-gbe", 117_000_000.0, "TCP over gigabit Ethernet, ~940 Mbit/s"),
)


def transport_for(url: str, baud: int = 921600) -> Transport:
    """The transport a device URL stands for: ``socket://`` is TCP (:data:`TRANSPORTS`'
    gigabit Ethernet), anything else (a serial port, a pty path) a UART at ``baud``."""
    if url.startswith("socket://"):
        return TRANSPORTS[-1]
    if "baud=" in url:
        try:
            baud = int(url.split("baud=", 1)[1].split("&", 1)[0])
        except ValueError:
            pass
    return Transport(f"uart-{baud}", baud / 10.0, f"UART at {baud} baud, 8N1")


def stream_need(n_channels: int, sampling_rate_hz: float, samples_per_frame: int) -> float:
    """Device -> host bytes per second of a DATA stream of int16 values with the protocol's
    framing, heartbeats, status and ACKs (:func:`link_utilisation`; capacity-independent)."""
    spf = max(1, int(samples_per_frame))
    u = link_utilisation(n_channels=n_channels, sampling_rate_hz=sampling_rate_hz,
                         samples_per_frame=spf, baud=10, capacity_bytes_per_s=1.0)
    return float(u["d2h_bytes_per_s"])


def carriers(need_bytes_per_s: float, headroom: float = 0.2) -> list[Transport]:
    """Transports of :data:`TRANSPORTS` that carry ``need_bytes_per_s`` with ``headroom``."""
    return [t for t in TRANSPORTS if need_bytes_per_s <= (1.0 - headroom) * t.bytes_per_s]


def _rate(b: float) -> str:
    for unit, k in (("GB/s", 1e9), ("MB/s", 1e6), ("kB/s", 1e3)):
        if b >= k:
            return f"{b / k:.3g} {unit}"
    return f"{b:.3g} B/s"


def check_link(n_channels: int, sampling_rate_hz: float, samples_per_frame: int,
               transport: Transport, *, what: str = "the stream", key: str = "source",
               binned_hint: str = "", headroom: float = 0.0) -> dict[str, float | str]:
    """Check that a stream fits a transport with ``headroom`` to spare (default none: the
    bsi stream takes 84 % of 921 600 baud by design), and report it.

    Returns
    -------
    dict
        ``transport``, ``need_bytes_per_s``, ``capacity_bytes_per_s``, ``utilisation``.

    Raises
    ------
    ConfigError
        One line naming the stream, the transport, the transports that would carry it and
        (``binned_hint``) a cheaper acquisition mode.
    """
    if not (n_channels >= 1 and math.isfinite(sampling_rate_hz) and sampling_rate_hz > 0):
        raise ConfigError(f"{key}: {n_channels} channels at {sampling_rate_hz!r} Hz is not a "
                          "stream; use a positive channel count and rate")
    need = stream_need(n_channels, sampling_rate_hz, samples_per_frame)
    cap = transport.bytes_per_s
    if need > (1.0 - headroom) * cap:
        ok = carriers(need, max(headroom, 0.2))
        would = (f"use {' or '.join(t.name for t in ok[:2])} ({ok[0].note})" if ok else
                 "no transport of neuroloop.link.capacity.TRANSPORTS would")
        raise ConfigError(
            f"{key}: {what} ({n_channels} channels at {sampling_rate_hz:g} Hz) needs "
            f"{_rate(need)} but {transport.name} carries {_rate(cap)} ({100 * need / cap:.0f} %,"
            f" keep below {100 * (1 - headroom):.0f} %); {would}"
            + (f", or {binned_hint}" if binned_hint else ""))
    return {"transport": transport.name, "need_bytes_per_s": need,
            "capacity_bytes_per_s": cap, "utilisation": need / cap}
