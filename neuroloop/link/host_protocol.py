"""The host's end of the protocol, pure: bytes and a time in, events out.

:class:`HostProtocol` is to :class:`~neuroloop.link.device.DeviceLink` what
:class:`firmware_sim.device.FirmwareDevice` is to the simulator (and pyserial's
``Protocol``/``Packetizer`` to its ``ReaderThread``): no thread, no port, no clock of its own.
:meth:`HostProtocol.receive` takes the bytes that arrived and the host time they arrived at
and returns what they meant, in stream order:

* framing, CRC, version, direction and tag (the :class:`~neuroloop.link.parser.StreamParser`;
  every refused frame comes back as its :class:`~neuroloop.errors.ProtocolError` and is
  counted),
* anti-replay per device session (:class:`~neuroloop.link.session.SequenceGuard`; a new
  session after the first is a device reboot: :class:`DeviceRebooted`),
* DATA bookkeeping: frame-counter gaps, lost samples, host sample indices that keep
  increasing across device reboots (:class:`SamplesReceived`, in microvolts),
* ACK/NAK matching against the STIMs sent (round trip on the host clock, the device's own
  latency measurement), NAK storms' raw material (:attr:`HostProtocol.nak_times`),
* INFO (what the device streams, its electrode array, where our sequence numbers continue),
  HEARTBEAT and STATUS (device state, battery, impedance).

:meth:`HostProtocol.encode` numbers and encodes host frames (the sequence number is shared
with the reader side, which moves it past the device's ``last_h2d_seq`` and after a NAK
REPLAY, so it is kept under a lock; the caller serialises encode + write).

Tests feed it frames encoded by :mod:`firmware_sim.device` or by the codec, byte by byte,
and assert the events and counters (``tests/link/test_link_host_protocol.py``).
"""

from __future__ import annotations

import math
import threading
from collections import deque
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..acquisition.base import NO_LABEL
from ..errors import ProtocolError
from ..stats import LatencyLog
from ..stimulation.command import StimCommand
from .codec import Direction, Frame, ReplayError, encode_frame
from .keys import LinkKeys
from .messages import (
    NO_LATENCY,
    NO_SAMPLE,
    Ack,
    Data,
    DeviceState,
    Heartbeat,
    Info,
    Message,
    MsgType,
    Nak,
    NakReason,
    Status,
    Stim,
)
from .parser import StreamParser
from .session import SequenceGuard

__all__ = ["HostProtocol", "LinkEvent", "SamplesReceived", "InfoReceived", "DeviceRebooted",
           "HeartbeatReceived", "StatusReceived", "AckReceived", "NakReceived"]

_NS = 1_000_000_000


@dataclass(frozen=True, slots=True)
class SamplesReceived:
    """A DATA frame's samples, on the host's sample index.

    Attributes
    ----------
    first_index : int
        Host stream index of the first sample (continues across device reboots).
    data : ndarray, shape (n_samples, n_channels), float64
        Samples in microvolts (int16 x ``uv_per_lsb``, exact).
    labels : ndarray, shape (n_samples,), int8
        Ground-truth intention per sample (``NO_LABEL`` when the device sends none).
    received_ns : int
        Host time the frame's bytes arrived, ns (``time.perf_counter_ns`` in a live link).
    acquired_us : int
        Device time the frame's last sample was acquired, us (the frame's timestamp).
    """

    first_index: int
    data: np.ndarray
    labels: np.ndarray
    received_ns: int
    acquired_us: int


@dataclass(frozen=True, slots=True)
class InfoReceived:
    """The device described itself (answer to GET_INFO)."""

    info: Info


@dataclass(frozen=True, slots=True)
class DeviceRebooted:
    """A frame of a new device session after another one: the device rebooted (disarmed).

    Attributes
    ----------
    session : int
        The new boot session.
    reboots : int
        Reboots seen so far, this one included.
    """

    session: int
    reboots: int


@dataclass(frozen=True, slots=True)
class HeartbeatReceived:
    """A device HEARTBEAT (``state`` None: a state this host does not know)."""

    state: DeviceState | None


@dataclass(frozen=True, slots=True)
class StatusReceived:
    """A device STATUS (battery, state, fault flags, impedance per contact)."""

    status: Status


@dataclass(frozen=True, slots=True)
class AckReceived:
    """An ACK; ``rtt_ns`` is the STIM -> ACK round trip on the host clock, ns (None: not a
    STIM this host is waiting for)."""

    ack: Ack
    rtt_ns: int | None


@dataclass(frozen=True, slots=True)
class NakReceived:
    """A NAK (the device refused one of our frames)."""

    nak: Nak


#: What :meth:`HostProtocol.receive` returns: one event per accepted frame, one
#: :class:`~neuroloop.errors.ProtocolError` per refused one (replays included).
LinkEvent = (SamplesReceived | InfoReceived | DeviceRebooted | HeartbeatReceived
             | StatusReceived | AckReceived | NakReceived | ProtocolError)


class HostProtocol:
    """Host-side protocol state of one link: bytes and a time in, events out.

    Parameters
    ----------
    keys : LinkKeys
        d2h verifies the device's frames, h2d tags ours.
    latency_capacity : int
        Round trips and device latencies kept for the statistics (a ring).

    Attributes
    ----------
    parser : StreamParser
        Framing and checks; its counters (``crc_errors``, ``malformed`` ...) are the
        link's.
    guard : SequenceGuard
        Device session and last accepted sequence number.
    info : Info or None
        The device's last INFO (None before the first).
    need_info : bool
        The device rebooted and has not described itself again yet.
    device_state : DeviceState or None
        From the last HEARTBEAT or STATUS.
    status : Status or None
        The last STATUS (a new object for every STATUS frame).
    auth_rejected : bool
        The device NAKed one of our frames with reason AUTH (our h2d key is wrong).
    last_nak : Nak or None
    naks_by_reason : dict of str to int
    nak_times : deque of int
        Host time of each NAK, ns (the link monitor trims it to its storm window).
    last_rx_ns, last_data_ns, last_hb_ns : int
        Host time of the last accepted frame, DATA frame and HEARTBEAT, ns (0: none yet).
    last_data_start_ns : int
        Host time the first bytes of the last DATA frame arrived, ns (a large frame can
        arrive in several reads; 0: none yet).
    last_frame_counter : int or None
        Frame counter of the last DATA frame of the current session.
    counters : dict of str to int
        ``data_frames``, ``frames_lost``, ``samples_lost``, ``replayed_frames``, ``naks``,
        ``acks``, ``stims_sent``, ``acks_missing``, ``device_reboots``,
        ``heartbeats_missed``.
    rtt, device_latency : LatencyLog
        STIM -> ACK round trips (host clock) and the device's own latency measurements
        (hop's last sample acquired -> STIM applied, device clock), ns.
    """

    def __init__(self, keys: LinkKeys, *, latency_capacity: int = 1 << 16) -> None:
        self.keys = keys
        self.parser = StreamParser(Direction.D2H, keys.d2h)
        self.guard = SequenceGuard()
        self.info: Info | None = None
        self.need_info = False
        self.device_state: DeviceState | None = None
        self.status: Status | None = None
        self.auth_rejected = False
        self.last_nak: Nak | None = None
        self.naks_by_reason: dict[str, int] = {}
        self.nak_times: deque[int] = deque()
        self.last_rx_ns = 0
        self.last_data_ns = 0
        self.last_data_start_ns = 0
        self._partial_since_ns = 0
        self.last_hb_ns = 0
        self.last_frame_counter: int | None = None
        self.index_offset = 0  # host index = device index + index_offset
        self._next_host_index = 0
        self._offset_pending = False
        self._tx_seq = 0
        self._tx_lock = threading.Lock()
        self._pending: dict[int, int] = {}  # STIM seq -> host send time (ns)
        self._pending_lock = threading.Lock()
        self.first_stim_ns = 0  # host time of the first and the latest STIM sent, ns
        self.last_stim_ns = 0
        self.counters: dict[str, int] = {
            "data_frames": 0, "frames_lost": 0, "samples_lost": 0, "replayed_frames": 0,
            "naks": 0, "acks": 0, "stims_sent": 0, "acks_missing": 0, "device_reboots": 0,
            "heartbeats_missed": 0,
        }
        self.rtt = LatencyLog(latency_capacity)
        self.device_latency = LatencyLog(latency_capacity)

    # ------------------------------------------------------------------ receiving
    def receive(self, data: bytes | bytearray | memoryview, now_ns: int) -> list[LinkEvent]:
        """Bytes that arrived at host time ``now_ns`` (ns); returns their events in order.

        Never raises for any byte string: refused frames come back as their
        :class:`~neuroloop.errors.ProtocolError` (counted by :attr:`parser`, replays in
        ``counters["replayed_frames"]``).
        """
        out: list[LinkEvent] = []
        parser = self.parser
        # when the bytes of each frame began to arrive: a frame finished here began with the
        # unfinished one held before, or in this chunk
        started = self._partial_since_ns if parser.pending else now_ns
        finished = False
        for item in parser.feed(data):
            if isinstance(item, Frame):
                if item.header.msg_type == MsgType.DATA:
                    self.last_data_start_ns = started
                started = now_ns
                finished = True
                self._dispatch(item, now_ns, out)
            else:
                out.append(item)
        if parser.pending and (finished or not self._partial_since_ns):
            self._partial_since_ns = now_ns
        elif not parser.pending:
            self._partial_since_ns = 0
        return out

    def reset_framing(self) -> None:
        """Forget a partial frame (the port was reopened); counters and sessions are kept."""
        self.parser.reset()

    def _dispatch(self, frame: Frame, now: int, out: list[LinkEvent]) -> None:
        try:
            new_session = self.guard.accept(frame.header)
        except ReplayError as exc:
            self.counters["replayed_frames"] += 1
            out.append(exc)
            return
        if new_session and self.guard.session_changes:
            self.counters["device_reboots"] += 1
            self.need_info = True
            self.last_frame_counter = None
            self._offset_pending = True
            out.append(DeviceRebooted(frame.header.session, self.counters["device_reboots"]))
        t = frame.header.msg_type
        if self.last_hb_ns and now - self.last_hb_ns > 0 and self.info is not None \
                and t == MsgType.HEARTBEAT:
            period = max(self.info.heartbeat_ms, 1) * 1_000_000
            gap = now - self.last_hb_ns
            if gap > 1.5 * period:
                self.counters["heartbeats_missed"] += int(gap // period) - 1
        self.last_rx_ns = now
        msg = frame.message
        if t == MsgType.DATA:
            ev = self._on_data(msg, now, frame.timestamp_us)  # type: ignore[arg-type]
            if ev is not None:
                out.append(ev)
        elif t == MsgType.HEARTBEAT:
            self.last_hb_ns = now
            hb: Heartbeat = msg  # type: ignore[assignment]
            try:
                self.device_state = DeviceState(hb.state)
            except ValueError:
                self.device_state = None
            out.append(HeartbeatReceived(self.device_state))
        elif t == MsgType.ACK:
            out.append(self._on_ack(msg, now))  # type: ignore[arg-type]
        elif t == MsgType.NAK:
            out.append(self._on_nak(msg, now))  # type: ignore[arg-type]
        elif t == MsgType.STATUS:
            st: Status = msg  # type: ignore[assignment]
            self.status = st
            self.device_state = st.state
            out.append(StatusReceived(st))
        elif t == MsgType.INFO:
            info: Info = msg  # type: ignore[assignment]
            self.info = info
            with self._tx_lock:  # continue above what the device accepted last
                self._tx_seq = max(self._tx_seq, info.last_h2d_seq)
            self.need_info = False
            out.append(InfoReceived(info))

    def _on_data(self, d: Data, now: int, acquired_us: int) -> SamplesReceived | None:
        info = self.info
        if info is None:
            return None  # the stream is described by INFO first
        self.counters["data_frames"] += 1
        n = d.n_samples
        if self._offset_pending:
            # the device restarted its stream: continue our indices past the time it was away
            away = (now - self.last_data_ns) / _NS if self.last_data_ns else 0.0
            missing = max(0, int(round(away * info.sampling_rate_hz)) - n)
            self.index_offset = self._next_host_index + missing - d.first_sample_index
            self.counters["samples_lost"] += missing
            self.counters["frames_lost"] += math.ceil(missing / max(1, info.samples_per_frame))
            self._offset_pending = False
        elif self.last_frame_counter is not None:
            gap = (d.frame_counter - self.last_frame_counter - 1) & 0xFFFFFFFF
            if gap and gap < 0x8000_0000:
                self.counters["frames_lost"] += gap
        self.last_frame_counter = d.frame_counter
        first = d.first_sample_index + self.index_offset
        if first > self._next_host_index and self.counters["data_frames"] > 1:
            self.counters["samples_lost"] += first - self._next_host_index
        self._next_host_index = first + n
        self.last_data_ns = now
        data = d.samples.astype(np.float64)
        data *= d.uv_per_lsb
        labels = (d.labels.astype(np.int8) if d.labels is not None
                  else np.full(n, NO_LABEL, dtype=np.int8))
        return SamplesReceived(first, data, labels, now, acquired_us)

    @property
    def data_period_ns(self) -> int:
        """Time between two DATA frames of the stream the device described, ns (0: no INFO)."""
        info = self.info
        if info is None or not info.sampling_rate_hz > 0:
            return 0
        return int(round(info.samples_per_frame * _NS / info.sampling_rate_hz))

    def next_data_due_ns(self) -> int:
        """When the first bytes of the next DATA frame should arrive (host clock, ns): those of
        the last one plus one frame period; 0 when unknown (no INFO or no DATA yet)."""
        period = self.data_period_ns
        start = self.last_data_start_ns
        return start + period if period and start else 0

    def rehearse_data(self) -> bool:
        """Decode the last DATA frame again, all checks included, and convert its samples as
        :meth:`receive` does; count, queue and keep nothing.

        A reader thread that slept since the last frame finds the receive path's code and
        tables evicted from its core's caches: on the 2-core development VM a 4 KB frame's
        COBS decode took 9 us back to back but 117 us after a 20 ms sleep, and 18 us when the
        same decode had run once just before. Rehearsing shortly before the next frame is due
        (:class:`~neuroloop.link.port.LinkPort`) makes the real decode the warm one.

        Returns
        -------
        bool
            False when there is nothing to rehearse (no INFO or no DATA frame yet).
        """
        enc = self.parser.last_data
        if enc is None or self.info is None:
            return False
        frame = self.parser.rehearse(enc)
        if frame is None:
            return False
        d: Data = frame.message  # type: ignore[assignment]
        data = d.samples.astype(np.float64)
        data *= d.uv_per_lsb
        if d.labels is not None:
            d.labels.astype(np.int8)
        return True

    def _on_ack(self, a: Ack, now: int) -> AckReceived:
        self.counters["acks"] += 1
        rtt = None
        if a.acked_type == MsgType.STIM:
            with self._pending_lock:
                sent = self._pending.pop(a.acked_seq, None)
            if sent is not None:
                rtt = now - sent
                self.rtt.add(rtt)
            if a.latency_us != NO_LATENCY:
                self.device_latency.add(a.latency_us * 1000)
        return AckReceived(a, rtt)

    def _on_nak(self, k: Nak, now: int) -> NakReceived:
        self.counters["naks"] += 1
        self.naks_by_reason[k.reason.name] = self.naks_by_reason.get(k.reason.name, 0) + 1
        self.last_nak = k
        self.nak_times.append(now)
        with self._pending_lock:
            self._pending.pop(k.nacked_seq, None)
        if k.reason == NakReason.AUTH:
            self.auth_rejected = True
        if k.reason == NakReason.REPLAY:
            # our sequence numbers fell behind the device's (another host session): catch up
            with self._tx_lock:
                self._tx_seq = max(self._tx_seq, k.nacked_seq + 1000)
        return NakReceived(k)

    # ------------------------------------------------------------------ sending
    def encode(self, msg: Message, now_ns: int, timestamp_us: int | None = None
               ) -> tuple[int, bytes]:
        """Number and encode one host frame; returns ``(seq, bytes on the wire)``.

        A STIM is registered as waiting for its ACK from ``now_ns`` (host time, ns).
        ``timestamp_us`` (default ``now_ns // 1000``) goes into the header. The caller
        writes frames in ``seq`` order (it holds its write lock across encode and write).
        """
        with self._tx_lock:
            self._tx_seq += 1
            seq = self._tx_seq
        frame = encode_frame(msg, direction=Direction.H2D, seq=seq,
                             session=self.guard.session or 0,
                             timestamp_us=now_ns // 1000 if timestamp_us is None
                             else timestamp_us, key=self.keys.h2d)
        if msg.TYPE == MsgType.STIM:
            with self._pending_lock:
                self._pending[seq] = now_ns
        return seq, frame

    def unsent(self, seq: int) -> None:
        """Frame ``seq`` never reached the line: stop waiting for its answer."""
        with self._pending_lock:
            self._pending.pop(seq, None)

    @property
    def tx_seq(self) -> int:
        """Sequence number of the last host frame encoded."""
        return self._tx_seq

    def stim(self, command: StimCommand, hop_last_sample: int = -1) -> Stim:
        """The STIM message for ``command``; ``hop_last_sample`` is a host stream index
        (-1: none), sent as the device's own index."""
        dev_index = hop_last_sample - self.index_offset if hop_last_sample >= 0 else -1
        return Stim(int(command.program_id), int(command.cycle) & 0xFFFFFFFF,
                    dev_index if dev_index >= 0 else NO_SAMPLE, float(command.pulse_width_us),
                    float(command.frequency_hz), float(command.interphase_gap_us),
                    float(command.case_ma), int(command.waveform), command.amplitude_ma)

    def stim_sent(self, now_ns: int) -> None:
        """Count a STIM handed to the line at host time ``now_ns`` (ns)."""
        self.counters["stims_sent"] += 1
        self.last_stim_ns = now_ns
        if not self.first_stim_ns:
            self.first_stim_ns = now_ns

    def expire_acks(self, older_than_ns: int) -> int:
        """Give up on STIMs sent before ``older_than_ns`` (host time, ns) and still without
        ACK or NAK; counted in ``acks_missing``. Returns how many."""
        with self._pending_lock:
            late = [q for q, t in self._pending.items() if t < older_than_ns]
            for q in late:
                del self._pending[q]
        self.counters["acks_missing"] += len(late)
        return len(late)

    @property
    def heartbeat_peer_seq(self) -> int:
        """``peer_seq`` of our HEARTBEAT: the last device sequence number accepted (0: none)."""
        return self.guard.last_seq if self.guard.last_seq > 0 else 0

    def stats(self) -> dict[str, Any]:
        """The parser's counters and ours (JSON-friendly)."""
        p = self.parser
        return {**self.counters, "crc_errors": p.crc_errors, "malformed_frames": p.malformed,
                "auth_failures": p.auth_failures, "wrong_direction": p.wrong_direction,
                "bytes_received": p.bytes_received, "frames_ok": p.frames_ok}
