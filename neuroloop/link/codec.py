"""Frames: header + payload + optional HMAC tag + CRC-32, COBS-stuffed, 0x00-terminated.

Unstuffed frame layout (all little-endian)::

    offset  size  field
    0       1     version          u8   = 2 (PROTOCOL_VERSION)
    1       1     msg_type         u8   (MsgType)
    2       1     flags            u8   bit0 D2H (set by the device), bit1 TAG present, others 0
    3       2     payload_len      u16  (<= MAX_PAYLOAD_LEN)
    5       4     session          u32  device boot session (host frames echo the device's)
    9       4     seq              u32  per-direction sequence number, strictly increasing
    13      8     timestamp_us     u64  sender's monotonic clock, microseconds
    21      n     payload
    21+n    16    tag              HMAC-SHA256(key_dir, bytes 0..21+n)[:16], when flags.TAG
    ...     4     crc32            zlib.crc32 of everything before it

The tag covers the header, so the direction bit, type, session and sequence number cannot be
changed without the key; the CRC covers the tag, so line noise is told apart from forgery.

STOP is a type, not a format (SAFETY.md): a device-side decoder (``expect=H2D``) turns any
frame that passes the length and CRC checks and whose type byte is STOP into a
:class:`~neuroloop.link.messages.Stop`, whatever its version, flags (direction bit, TAG,
reserved bits), tag (absent, valid or garbage), session, sequence number, ``payload_len`` or
payload. A frame whose CRC fails is not a frame and stops nothing.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from enum import IntEnum

from ..errors import AuthenticationError, ProtocolError
from .auth import TAG_LEN, compute_tag, verify_tag
from .crc import CRC_LEN, append_crc, split_crc
from .framing import cobs_encode, max_encoded_len
from .messages import (
    D2H_TYPES,
    H2D_AUTH_TYPES,
    H2D_TYPES,
    MAX_PAYLOAD_LEN,
    MESSAGE_CLASSES,
    Message,
    MsgType,
    Stop,
)

__all__ = [
    "PROTOCOL_VERSION", "HEADER", "HEADER_LEN", "FLAG_D2H", "FLAG_TAG", "Direction", "Header",
    "Frame", "CrcError", "VersionError", "WrongDirectionError", "TagError", "ReplayError",
    "encode_frame",
    "encode_body", "decode_body", "requires_tag", "MAX_FRAME_LEN", "MAX_ENCODED_LEN",
]

#: 2: INFO names the electrode array and carries its contact areas (1: without them).
PROTOCOL_VERSION = 2
HEADER = struct.Struct("<BBBHIIQ")
HEADER_LEN = HEADER.size  # 21
FLAG_D2H = 0x01
FLAG_TAG = 0x02
_FLAGS_KNOWN = FLAG_D2H | FLAG_TAG
#: Longest unstuffed frame (header + payload + tag + CRC).
MAX_FRAME_LEN = HEADER_LEN + MAX_PAYLOAD_LEN + TAG_LEN + CRC_LEN
#: Longest COBS-encoded frame, without its delimiter.
MAX_ENCODED_LEN = max_encoded_len(MAX_FRAME_LEN)
_U32 = 0xFFFF_FFFF
_U64 = 0xFFFF_FFFF_FFFF_FFFF


class Direction(IntEnum):
    """Who sent a frame."""

    H2D = 0  # host -> device
    D2H = 1  # device -> host


@dataclass(frozen=True, slots=True)
class Header:
    """A decoded frame header (see the module docstring for the layout)."""

    version: int
    msg_type: int
    flags: int
    payload_len: int
    session: int
    seq: int
    timestamp_us: int

    @property
    def direction(self) -> Direction:
        return Direction.D2H if self.flags & FLAG_D2H else Direction.H2D

    @property
    def tagged(self) -> bool:
        return bool(self.flags & FLAG_TAG)


@dataclass(frozen=True, slots=True)
class Frame:
    """A frame that passed CRC, header, direction and tag checks."""

    header: Header
    message: Message

    @property
    def seq(self) -> int:
        return self.header.seq

    @property
    def session(self) -> int:
        return self.header.session

    @property
    def timestamp_us(self) -> int:
        return self.header.timestamp_us


class CrcError(ProtocolError):
    """The frame's CRC-32 does not match (line corruption)."""


class VersionError(ProtocolError):
    """The frame speaks another protocol version (an older or newer peer)."""


class WrongDirectionError(ProtocolError):
    """A frame marked as sent by our own side came back (reflection, loopback, crossed wires)."""


class TagError(AuthenticationError):
    """A frame's HMAC tag did not verify (wrong key, forgery, or corruption the CRC missed)."""


class ReplayError(AuthenticationError):
    """A frame's sequence number was not new, or it belongs to an old session."""


def _with_header(exc: ProtocolError, header: Header | None) -> ProtocolError:
    exc.header = header  # type: ignore[attr-defined]
    return exc


def requires_tag(msg_type: int, direction: Direction) -> bool:
    """True when a frame of this type in this direction must carry an HMAC tag."""
    return direction is Direction.D2H or msg_type in H2D_AUTH_TYPES


def encode_body(message: Message, *, direction: Direction, seq: int, session: int,
                timestamp_us: int, key: bytes | None) -> bytearray:
    """The unstuffed frame (header, payload, tag, CRC) of ``message``.

    Raises
    ------
    ValueError
        The type is not sent in ``direction``, a tag is needed and ``key`` is None, a field
        is out of range, or the payload is too long.
    """
    t = message.TYPE
    if t not in (D2H_TYPES if direction is Direction.D2H else H2D_TYPES):
        raise ValueError(f"{t.name} is not sent {direction.name}")
    if not (0 <= seq <= _U32 and 0 <= session <= _U32 and 0 <= timestamp_us <= _U64):
        raise ValueError("seq and session must fit u32 and timestamp_us u64")
    payload = message.encode_payload()
    if len(payload) > MAX_PAYLOAD_LEN:
        raise ValueError(f"{t.name} payload of {len(payload)} bytes exceeds {MAX_PAYLOAD_LEN}")
    tagged = requires_tag(t, direction)
    flags = (FLAG_D2H if direction is Direction.D2H else 0) | (FLAG_TAG if tagged else 0)
    body = bytearray(HEADER.pack(PROTOCOL_VERSION, int(t), flags, len(payload), session, seq,
                                 timestamp_us))
    body += payload
    if tagged:
        if key is None:
            raise ValueError(f"{t.name} {direction.name} needs a key")
        body += compute_tag(key, body)
    return append_crc(body)


def encode_frame(message: Message, *, direction: Direction, seq: int, session: int,
                 timestamp_us: int, key: bytes | None) -> bytes:
    """The bytes to write on the wire: COBS(encode_body(...)) + 0x00."""
    body = encode_body(message, direction=direction, seq=seq, session=session,
                       timestamp_us=timestamp_us, key=key)
    return cobs_encode(body) + b"\x00"


def decode_body(body: bytes, *, expect: Direction, key: bytes | None) -> Frame:
    """Check and decode one unstuffed frame received from the ``expect`` side.

    Checks, in order: length, CRC, version, flags, type, payload length, direction, tag
    presence, tag, payload. Nothing is decoded from a frame that fails an earlier check.
    Sequence numbers and sessions are the receiver's business (:mod:`neuroloop.link.session`).

    Exception, on the device side only (``expect`` H2D): a frame that passes the length and
    CRC checks and whose type byte is STOP is a :class:`Stop`, whatever the rest of it holds
    (a malformed STOP is still a STOP; stopping is always safe). Its header is returned as
    received.

    Raises
    ------
    CrcError, WrongDirectionError, TagError, ProtocolError
        Every error raised after the header was read carries it as ``exc.header``.
    """
    if len(body) < HEADER_LEN + CRC_LEN:
        raise _with_header(ProtocolError(f"frame of {len(body)} bytes is shorter than header + "
                                         "CRC"), None)
    data, ok = split_crc(body)
    if not ok:
        raise _with_header(CrcError(f"CRC mismatch on a {len(body)}-byte frame"), None)
    h = Header(*HEADER.unpack_from(data, 0))
    if h.msg_type == MsgType.STOP and expect is Direction.H2D:
        return Frame(h, Stop())
    if h.version != PROTOCOL_VERSION:
        raise _with_header(VersionError(f"protocol version {h.version} is not supported "
                                        f"(this build speaks {PROTOCOL_VERSION})"), h)
    if h.flags & ~_FLAGS_KNOWN:
        raise _with_header(ProtocolError(f"flags 0x{h.flags:02x} has reserved bits set"), h)
    cls = MESSAGE_CLASSES.get(h.msg_type)
    if cls is None:
        raise _with_header(ProtocolError(f"unknown message type 0x{h.msg_type:02x}"), h)
    tag_len = TAG_LEN if h.tagged else 0
    if len(data) != HEADER_LEN + h.payload_len + tag_len or h.payload_len > MAX_PAYLOAD_LEN:
        raise _with_header(ProtocolError(f"{cls.TYPE.name} frame length {len(body)} does not "
                                         f"match payload_len {h.payload_len}"), h)
    if h.direction is not expect:
        raise _with_header(WrongDirectionError(f"{cls.TYPE.name} frame marked "
                                               f"{h.direction.name} arrived where only "
                                               f"{expect.name} frames belong"), h)
    allowed = D2H_TYPES if expect is Direction.D2H else H2D_TYPES
    if cls.TYPE not in allowed:
        raise _with_header(ProtocolError(f"{cls.TYPE.name} is never sent {expect.name}"), h)
    if h.tagged != requires_tag(h.msg_type, expect):
        raise _with_header(ProtocolError(f"{cls.TYPE.name} {expect.name} frame "
                                         f"{'has an unexpected' if h.tagged else 'lacks its'} "
                                         "tag"), h)
    end = HEADER_LEN + h.payload_len
    if h.tagged:
        if key is None or not verify_tag(key, data[:end], data[end:]):
            raise _with_header(TagError(f"{cls.TYPE.name} frame seq {h.seq}: HMAC tag does not "
                                        "verify"), h)
    try:
        msg = cls.decode_payload(data[HEADER_LEN:end])
    except ProtocolError as exc:
        raise _with_header(exc, h) from None
    return Frame(h, msg)

