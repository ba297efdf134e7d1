"""Messages of the neuroloop wire protocol and their payload layouts (little-endian).

Each message class knows its type code (:class:`MsgType`), packs its payload
(``encode_payload``) and unpacks one (``decode_payload``, which raises
:class:`~neuroloop.errors.ProtocolError` on any malformed payload and nothing else).
The frame around a payload (header, tag, CRC, COBS) is :mod:`neuroloop.link.codec`.
Byte-exact layouts and test vectors: ``docs/protocol.md``.
"""

from __future__ import annotations

import math
import struct
from dataclasses import dataclass, field
from enum import IntEnum, IntFlag
from typing import ClassVar

import numpy as np

from ..errors import ProtocolError

__all__ = [
    "MsgType", "DeviceState", "NakReason", "FaultFlag", "Message",
    "Data", "Status", "Info", "Ack", "Nak", "Heartbeat", "GetInfo", "Stim", "Arm", "Stop",
    "MESSAGE_CLASSES", "D2H_TYPES", "H2D_TYPES", "H2D_AUTH_TYPES", "NO_SAMPLE", "NO_LATENCY",
    "MAX_PAYLOAD_LEN",
]

#: Largest payload a frame may carry (bytes); a 59-sample x 64-channel DATA frame is 7636.
MAX_PAYLOAD_LEN = 16384
#: ``Stim.hop_last_sample`` when the command was not computed from samples.
NO_SAMPLE = 0xFFFF_FFFF_FFFF_FFFF
#: ``Ack.latency_us`` when the device could not measure a latency.
NO_LATENCY = 0xFFFF_FFFF


class MsgType(IntEnum):
    """Message type codes (header byte 1)."""

    DATA = 0x01       # device -> host
    STATUS = 0x02     # device -> host
    INFO = 0x03       # device -> host
    ACK = 0x04        # device -> host
    NAK = 0x05        # device -> host
    HEARTBEAT = 0x06  # both directions
    GET_INFO = 0x10   # host -> device, no tag
    STIM = 0x11       # host -> device, tagged
    ARM = 0x12        # host -> device, tagged
    STOP = 0x13       # host -> device, no tag, always accepted


#: Types a device may send (every one tagged with the d2h key).
D2H_TYPES = frozenset({MsgType.DATA, MsgType.STATUS, MsgType.INFO, MsgType.ACK, MsgType.NAK,
                       MsgType.HEARTBEAT})
#: Types a host may send.
H2D_TYPES = frozenset({MsgType.HEARTBEAT, MsgType.GET_INFO, MsgType.STIM, MsgType.ARM,
                       MsgType.STOP})
#: Host types that must carry an h2d tag (they can start or keep up stimulation).
H2D_AUTH_TYPES = frozenset({MsgType.HEARTBEAT, MsgType.STIM, MsgType.ARM})


class DeviceState(IntEnum):
    """Stimulator state of the device (HEARTBEAT and STATUS byte)."""

    DISARMED = 0     # output zero; needs ARM
    ARMED = 1        # output zero, STIM accepted
    STIMULATING = 2  # delivering a pulse train
    WATCHDOG = 3     # watchdog tripped: ramping to / held at zero until ARM
    FAULT = 4        # latched hardware fault (battery): output zero, ARM refused


class NakReason(IntEnum):
    """Why the device refused a frame (NAK byte 5)."""

    AUTH = 1             # HMAC tag did not verify with the h2d key
    REPLAY = 2           # sequence number not greater than the last accepted one
    SESSION = 3          # frame bound to another device session (device rebooted)
    NOT_ARMED = 4        # STIM while disarmed
    WATCHDOG = 5         # STIM after a watchdog trip; re-arm first
    FAULT = 6            # device fault latched (see STATUS fault flags)
    LIMIT = 7            # the validate() oracle found a violation (detail = contact or -1)
    HW_CEILING = 8       # beyond the hardware's own ceilings (detail = contact or -1)
    MALFORMED = 9        # payload decoded but meaningless (contact count, waveform)
    UNSUPPORTED = 10     # message type the device does not accept


class FaultFlag(IntFlag):
    """STATUS fault flag bits."""

    NONE = 0
    BATTERY_LOW = 1 << 0        # battery below the operating threshold: output zero
    IMPEDANCE = 1 << 1          # a contact's impedance is outside the window
    WATCHDOG_TRIPPED = 1 << 2   # host went silent for longer than T_wd
    REBOOTED = 1 << 3           # device rebooted since the host last armed it
    TX_OVERFLOW = 1 << 4        # device dropped frames because nobody was reading


def _need(payload: bytes, n: int, what: str) -> None:
    if len(payload) != n:
        raise ProtocolError(f"{what} payload is {len(payload)} bytes, expected {n}")


def _take(st: struct.Struct, payload: bytes, what: str) -> tuple:
    if len(payload) < st.size:
        raise ProtocolError(f"{what} payload is {len(payload)} bytes, shorter than its "
                            f"{st.size}-byte fixed part")
    return st.unpack_from(payload, 0)


def _pack_str(text: str) -> bytes:
    raw = text.encode("utf-8")
    if len(raw) > 0xFFFF:
        raise ValueError("string field longer than 65535 bytes")
    return struct.pack("<H", len(raw)) + raw


def _unpack_str(payload: bytes, offset: int, what: str) -> tuple[str, int]:
    if offset + 2 > len(payload):
        raise ProtocolError(f"{what} payload ends inside a string length")
    (n,) = struct.unpack_from("<H", payload, offset)
    end = offset + 2 + n
    if end > len(payload):
        raise ProtocolError(f"{what} string field runs past the payload end")
    try:
        return payload[offset + 2:end].decode("utf-8"), end
    except UnicodeDecodeError:
        raise ProtocolError(f"{what} string field is not UTF-8") from None


class Message:
    """Base of every message: a type code and a payload codec."""

    TYPE: ClassVar[MsgType]

    def encode_payload(self) -> bytes:
        raise NotImplementedError

    @classmethod
    def decode_payload(cls, payload: bytes) -> Message:
        raise NotImplementedError


@dataclass(eq=False)
class Data(Message):
    """DATA: a block of samples (device -> host).

    Payload: ``<IQHHdB`` frame_counter u32, first_sample_index u64, n_samples u16,
    n_channels u16, uv_per_lsb f64, data_flags u8 (bit 0: labels follow) = 25 bytes;
    then samples int16[n_samples * n_channels] sample-major; then, if flagged,
    labels int8[n_samples] (simulator-only ground truth).

    Attributes
    ----------
    frame_counter : int
        Increments by one for every DATA frame the device produced (dropped ones too).
    first_sample_index : int
        Stream index of ``samples[0]``.
    uv_per_lsb : float
        Scale: microvolts = int16 value x uv_per_lsb.
    samples : ndarray, shape (n_samples, n_channels), int16
    labels : ndarray, shape (n_samples,), int8, or None
    """

    TYPE: ClassVar[MsgType] = MsgType.DATA
    _ST: ClassVar[struct.Struct] = struct.Struct("<IQHHdB")
    FLAG_LABELS: ClassVar[int] = 0x01

    frame_counter: int
    first_sample_index: int
    uv_per_lsb: float
    samples: np.ndarray
    labels: np.ndarray | None = None

    @property
    def n_samples(self) -> int:
        return int(self.samples.shape[0])

    def encode_payload(self) -> bytes:
        s = np.ascontiguousarray(self.samples, dtype="<i2")
        if s.ndim != 2 or s.shape[0] == 0 or s.shape[1] == 0:
            raise ValueError("samples must be a non-empty (n_samples, n_channels) array")
        flags = 0
        tail = b""
        if self.labels is not None:
            lab = np.ascontiguousarray(self.labels, dtype=np.int8)
            if lab.shape != (s.shape[0],):
                raise ValueError("labels must have shape (n_samples,)")
            flags |= self.FLAG_LABELS
            tail = lab.tobytes()
        head = self._ST.pack(self.frame_counter & 0xFFFFFFFF, self.first_sample_index,
                             s.shape[0], s.shape[1], self.uv_per_lsb, flags)
        return head + s.tobytes() + tail

    @classmethod
    def decode_payload(cls, payload: bytes) -> Data:
        fc, first, n, ch, scale, flags = _take(cls._ST, payload, "DATA")
        if n == 0 or ch == 0:
            raise ProtocolError(f"DATA frame with {n} samples x {ch} channels")
        if flags & ~cls.FLAG_LABELS:
            raise ProtocolError(f"DATA flags 0x{flags:02x} has reserved bits set")
        if not (math.isfinite(scale) and scale > 0):
            raise ProtocolError(f"DATA scale {scale} uV/LSB is not a positive number")
        off = cls._ST.size
        n_lab = n if flags & cls.FLAG_LABELS else 0
        _need(payload, off + 2 * n * ch + n_lab, "DATA")
        samples = np.frombuffer(payload, dtype="<i2", count=n * ch, offset=off).reshape(n, ch)
        labels = (np.frombuffer(payload, dtype=np.int8, count=n, offset=off + 2 * n * ch)
                  if n_lab else None)
        return cls(fc, first, float(scale), samples, labels)


@dataclass(eq=False)
class Status(Message):
    """STATUS: battery, state, faults, counters and impedance (device -> host, about 1 Hz).

    Payload: ``<fBBIIIIIIB`` battery_pct f32, charging u8, state u8, fault_flags u32,
    stims_applied u32, naks_sent u32, rx_crc_errors u32, rx_malformed u32,
    rx_auth_failures u32, n_contacts u8 = 31 bytes; then impedance_ohm f32[n_contacts]
    (+inf: open circuit).
    """

    TYPE: ClassVar[MsgType] = MsgType.STATUS
    _ST: ClassVar[struct.Struct] = struct.Struct("<fBBIIIIIIB")

    battery_pct: float
    charging: bool
    state: DeviceState
    fault_flags: FaultFlag
    stims_applied: int
    naks_sent: int
    rx_crc_errors: int
    rx_malformed: int
    rx_auth_failures: int
    impedance_ohm: np.ndarray = field(default_factory=lambda: np.zeros(0, np.float32))

    def encode_payload(self) -> bytes:
        z = np.ascontiguousarray(self.impedance_ohm, dtype="<f4")
        return self._ST.pack(self.battery_pct, int(bool(self.charging)), int(self.state),
                             int(self.fault_flags), self.stims_applied & 0xFFFFFFFF,
                             self.naks_sent & 0xFFFFFFFF, self.rx_crc_errors & 0xFFFFFFFF,
                             self.rx_malformed & 0xFFFFFFFF, self.rx_auth_failures & 0xFFFFFFFF,
                             z.shape[0]) + z.tobytes()

    @classmethod
    def decode_payload(cls, payload: bytes) -> Status:
        bat, chg, state, faults, stims, naks, crc, mal, auth, n = _take(cls._ST, payload, "STATUS")
        _need(payload, cls._ST.size + 4 * n, "STATUS")
        try:
            st = DeviceState(state)
        except ValueError:
            raise ProtocolError(f"STATUS state {state} is unknown") from None
        if chg > 1:
            raise ProtocolError(f"STATUS charging byte {chg} is not 0 or 1")
        z = np.frombuffer(payload, dtype="<f4", count=n, offset=cls._ST.size).astype(np.float64)
        return cls(float(bat), bool(chg), st, FaultFlag(faults), stims, naks, crc, mal, auth, z)


@dataclass(eq=False)
class Info(Message):
    """INFO: what the device streams and drives (device -> host, answer to GET_INFO).

    Payload: ``<dHBHdIHI`` sampling_rate_hz f64, n_channels u16, n_contacts u8,
    samples_per_frame u16, uv_per_lsb f64, watchdog_ms u32, heartbeat_ms u16,
    last_h2d_seq u32 = 31 bytes; then five strings, each u16 length + UTF-8:
    device_name, channel_type, channel_names (comma-separated), intention_names
    (comma-separated, empty when the device has no ground truth), array_name (the electrode
    catalogue's name of the array the output stage drives, non-empty); then area_cm2
    f64[n_contacts] (each contact's geometric area, finite and > 0). Geometry is hardware:
    the host refuses to arm a device whose array disagrees with the scenario's.
    """

    TYPE: ClassVar[MsgType] = MsgType.INFO
    _ST: ClassVar[struct.Struct] = struct.Struct("<dHBHdIHI")

    sampling_rate_hz: float
    n_channels: int
    n_contacts: int
    samples_per_frame: int
    uv_per_lsb: float
    watchdog_ms: int
    heartbeat_ms: int
    last_h2d_seq: int
    device_name: str = ""
    channel_type: str = "ecog"
    channel_names: tuple[str, ...] = ()
    intention_names: tuple[str, ...] = ()
    array_name: str = ""
    area_cm2: np.ndarray = field(default_factory=lambda: np.zeros(0))

    def encode_payload(self) -> bytes:
        areas = np.ascontiguousarray(self.area_cm2, dtype="<f8")
        if not self.array_name:
            raise ValueError("INFO needs the electrode array's name")
        if areas.shape != (self.n_contacts,) or not (np.all(np.isfinite(areas))
                                                     and np.all(areas > 0)):
            raise ValueError(f"INFO needs {self.n_contacts} finite contact areas > 0 cm^2")
        return (self._ST.pack(self.sampling_rate_hz, self.n_channels, self.n_contacts,
                              self.samples_per_frame, self.uv_per_lsb, self.watchdog_ms,
                              self.heartbeat_ms, self.last_h2d_seq)
                + _pack_str(self.device_name) + _pack_str(self.channel_type)
                + _pack_str(",".join(self.channel_names))
                + _pack_str(",".join(self.intention_names))
                + _pack_str(self.array_name) + areas.tobytes())

    @classmethod
    def decode_payload(cls, payload: bytes) -> Info:
        fs, nch, ncon, spf, scale, wd, hb, last = _take(cls._ST, payload, "INFO")
        off = cls._ST.size
        name, off = _unpack_str(payload, off, "INFO")
        ctype, off = _unpack_str(payload, off, "INFO")
        chans, off = _unpack_str(payload, off, "INFO")
        ints, off = _unpack_str(payload, off, "INFO")
        array_name, off = _unpack_str(payload, off, "INFO")
        if len(payload) - off != 8 * ncon:
            raise ProtocolError(f"INFO carries {len(payload) - off} bytes of contact areas for "
                                f"{ncon} contacts (expected {8 * ncon})")
        if ncon == 0 or not array_name:
            raise ProtocolError(f"INFO names no electrode array ({ncon} contacts, array "
                                f"{array_name!r})")
        areas = np.frombuffer(payload, dtype="<f8", count=ncon, offset=off).astype(np.float64)
        if not (np.all(np.isfinite(areas)) and np.all(areas > 0)):
            raise ProtocolError(f"INFO contact areas must be finite and > 0 cm^2, got "
                                f"{areas.min():g}..{areas.max():g}")
        if not (math.isfinite(fs) and fs > 0) or nch == 0 or spf == 0:
            raise ProtocolError(f"INFO describes an impossible stream ({nch} channels at {fs} Hz, "
                                f"{spf} samples per frame)")
        if not (math.isfinite(scale) and scale > 0):
            raise ProtocolError(f"INFO scale {scale} uV/LSB is not a positive number")
        names = tuple(chans.split(",")) if chans else ()
        if len(names) != nch:
            raise ProtocolError(f"INFO lists {len(names)} channel names for {nch} channels")
        return cls(fs, nch, ncon, spf, float(scale), wd, hb, last, name, ctype, names,
                   tuple(ints.split(",")) if ints else (), array_name, areas)


@dataclass(eq=False)
class Ack(Message):
    """ACK (device -> host).

    Payload: ``<IBQI`` acked_seq u32, acked_type u8, applied_time_us u64 (device clock; 0
    when nothing was applied), latency_us u32 (device-measured time from the acquisition of
    the STIM's ``hop_last_sample`` to its application; :data:`NO_LATENCY` when unknown)
    = 17 bytes.
    """

    TYPE: ClassVar[MsgType] = MsgType.ACK
    _ST: ClassVar[struct.Struct] = struct.Struct("<IBQI")

    acked_seq: int
    acked_type: int
    applied_time_us: int = 0
    latency_us: int = NO_LATENCY

    def encode_payload(self) -> bytes:
        return self._ST.pack(self.acked_seq, self.acked_type, self.applied_time_us,
                             self.latency_us)

    @classmethod
    def decode_payload(cls, payload: bytes) -> Ack:
        _need(payload, cls._ST.size, "ACK")
        return cls(*cls._ST.unpack(payload))


@dataclass(eq=False)
class Nak(Message):
    """NAK (device -> host).

    Payload: ``<IBBh`` nacked_seq u32, nacked_type u8, reason u8 (:class:`NakReason`),
    detail i16 (contact index, or -1) = 8 bytes; then an optional UTF-8 explanation
    (the rest of the payload, at most 200 bytes).
    """

    TYPE: ClassVar[MsgType] = MsgType.NAK
    _ST: ClassVar[struct.Struct] = struct.Struct("<IBBh")
    MAX_TEXT: ClassVar[int] = 200

    nacked_seq: int
    nacked_type: int
    reason: NakReason
    detail: int = -1
    text: str = ""

    def encode_payload(self) -> bytes:
        raw = self.text.encode("utf-8")[:self.MAX_TEXT]
        return self._ST.pack(self.nacked_seq, self.nacked_type, int(self.reason),
                             self.detail) + raw

    @classmethod
    def decode_payload(cls, payload: bytes) -> Nak:
        seq, typ, reason, detail = _take(cls._ST, payload, "NAK")
        if len(payload) - cls._ST.size > cls.MAX_TEXT:
            raise ProtocolError("NAK text longer than 200 bytes")
        try:
            r = NakReason(reason)
            text = payload[cls._ST.size:].decode("utf-8")
        except ValueError:
            raise ProtocolError(f"NAK reason {reason} unknown or text not UTF-8") from None
        return cls(seq, typ, r, detail, text)


@dataclass(eq=False)
class Heartbeat(Message):
    """HEARTBEAT (both directions).

    Payload: ``<BI`` state u8 (device: :class:`DeviceState`; host: its supervisor state),
    peer_seq u32 (last sequence number accepted from the other side) = 5 bytes.
    """

    TYPE: ClassVar[MsgType] = MsgType.HEARTBEAT
    _ST: ClassVar[struct.Struct] = struct.Struct("<BI")

    state: int = 0
    peer_seq: int = 0

    def encode_payload(self) -> bytes:
        return self._ST.pack(self.state, self.peer_seq)

    @classmethod
    def decode_payload(cls, payload: bytes) -> Heartbeat:
        _need(payload, cls._ST.size, "HEARTBEAT")
        return cls(*cls._ST.unpack(payload))


@dataclass(eq=False)
class Stim(Message):
    """STIM (host -> device, tagged).

    Payload: ``<iIQddddBB`` program_id i32, cycle u32, hop_last_sample u64 (stream index of
    the last sample of the hop the command was computed from, :data:`NO_SAMPLE` if none),
    pulse_width_us f64, frequency_hz f64, interphase_gap_us f64, case_ma f64, waveform u8,
    n_contacts u8 = 50 bytes; then amplitude_ma f64[n_contacts] (signed first-phase
    current, cathodic negative). float64 so the device validates exactly what the host's
    supervisor validated.
    """

    TYPE: ClassVar[MsgType] = MsgType.STIM
    _ST: ClassVar[struct.Struct] = struct.Struct("<iIQddddBB")

    program_id: int
    cycle: int
    hop_last_sample: int
    pulse_width_us: float
    frequency_hz: float
    interphase_gap_us: float
    case_ma: float
    waveform: int
    amplitude_ma: np.ndarray

    def encode_payload(self) -> bytes:
        a = np.ascontiguousarray(self.amplitude_ma, dtype="<f8")
        if a.ndim != 1 or not 0 < a.shape[0] <= 255:
            raise ValueError("amplitude_ma must be 1-D with 1..255 contacts")
        return self._ST.pack(self.program_id, self.cycle & 0xFFFFFFFF, self.hop_last_sample,
                             self.pulse_width_us, self.frequency_hz, self.interphase_gap_us,
                             self.case_ma, self.waveform, a.shape[0]) + a.tobytes()

    @classmethod
    def decode_payload(cls, payload: bytes) -> Stim:
        pid, cyc, hop, pw, f, ipg, case, wf, n = _take(cls._ST, payload, "STIM")
        _need(payload, cls._ST.size + 8 * n, "STIM")
        if n == 0:
            raise ProtocolError("STIM with 0 contacts")
        amps = np.frombuffer(payload, dtype="<f8", count=n, offset=cls._ST.size).copy()
        return cls(pid, cyc, hop, pw, f, ipg, case, wf, amps)


@dataclass(eq=False)
class _Empty(Message):
    def encode_payload(self) -> bytes:
        return b""

    @classmethod
    def decode_payload(cls, payload: bytes) -> Message:
        _need(payload, 0, cls.TYPE.name)
        return cls()


@dataclass(eq=False)
class GetInfo(_Empty):
    """GET_INFO (host -> device, untagged): ask for INFO; also starts the stream. Empty."""

    TYPE: ClassVar[MsgType] = MsgType.GET_INFO


@dataclass(eq=False)
class Arm(_Empty):
    """ARM (host -> device, tagged): enable STIM from zero output. Empty payload."""

    TYPE: ClassVar[MsgType] = MsgType.ARM


@dataclass(eq=False)
class Stop(_Empty):
    """STOP (host -> device, untagged, always accepted): output to zero now, disarm.

    Sent with an empty payload. Received, any payload is accepted and ignored: STOP is a
    type, not a format (a malformed STOP is still a STOP; see
    :func:`neuroloop.link.codec.decode_body`).
    """

    TYPE: ClassVar[MsgType] = MsgType.STOP

    @classmethod
    def decode_payload(cls, payload: bytes) -> Stop:
        return cls()


#: Type code -> message class.
MESSAGE_CLASSES: dict[int, type[Message]] = {
    cls.TYPE: cls for cls in (Data, Status, Info, Ack, Nak, Heartbeat, GetInfo, Stim, Arm, Stop)
}
