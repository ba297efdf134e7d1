"""Streaming frame parser: bytes in, checked frames (or counted errors) out.

Like pyserial's ``FramedPacket`` protocol: call :meth:`StreamParser.data_received` with
whatever bytes arrived. For *any* byte string it returns only valid :class:`Frame` objects and
records every problem as a :class:`~neuroloop.errors.ProtocolError`; it never raises and never
stops working: after garbage it resynchronises at the next 0x00 delimiter.
"""

from __future__ import annotations

from collections import deque

from ..errors import AuthenticationError, ProtocolError
from .codec import MAX_ENCODED_LEN, CrcError, Direction, Frame, WrongDirectionError, decode_body
from .framing import FrameSplitter, cobs_decode
from .messages import MsgType

__all__ = ["StreamParser"]

_DATA = int(MsgType.DATA)


class StreamParser:
    """Cuts a byte stream into frames and checks each one.

    Parameters
    ----------
    expect : Direction
        Side the frames come from (a host parses ``D2H`` frames, a device ``H2D``).
    key : bytes or None
        Key of that direction, to verify tags (None: every tagged frame fails).
    max_errors_kept : int
        Length of the :attr:`errors` history.

    Attributes
    ----------
    frames_ok, crc_errors, malformed, auth_failures, wrong_direction : int
        Counters. ``malformed`` covers bad COBS, bad lengths, unknown versions/types,
        oversize frames and undecodable payloads.
    errors : deque of ProtocolError
        The most recent errors, oldest first.
    last_data : bytes or None
        The encoded bytes (without delimiter) of the last valid DATA frame, kept (not copied)
        for :meth:`rehearse`.
    """

    def __init__(self, expect: Direction, key: bytes | None, *, max_errors_kept: int = 64
                 ) -> None:
        self.expect = Direction(expect)
        self.key = key
        self._splitter = FrameSplitter(MAX_ENCODED_LEN)
        self.errors: deque[ProtocolError] = deque(maxlen=max_errors_kept)
        self.frames_ok = 0
        self.crc_errors = 0
        self.malformed = 0
        self.auth_failures = 0
        self.wrong_direction = 0
        self.bytes_received = 0
        self.last_data: bytes | None = None

    def feed(self, data: bytes | bytearray | memoryview) -> list[Frame | ProtocolError]:
        """Parse ``data``; return frames and errors in stream order (errors are also counted)."""
        self.bytes_received += len(data)
        oversize_before = self._splitter.oversize
        encoded = self._splitter.feed(data)
        out: list[Frame | ProtocolError] = []
        for _ in range(self._splitter.oversize - oversize_before):
            out.append(self._record(ProtocolError(
                f"frame longer than {MAX_ENCODED_LEN} bytes without a delimiter; discarded")))
        for enc in encoded:
            try:
                frame = decode_body(cobs_decode(enc), expect=self.expect, key=self.key)
            except ProtocolError as exc:
                out.append(self._record(exc))
                continue
            self.frames_ok += 1
            if frame.header.msg_type == _DATA:
                self.last_data = enc
            out.append(frame)
        return out

    def rehearse(self, encoded: bytes) -> Frame | None:
        """Check and decode ``encoded`` (one COBS frame) exactly as :meth:`feed` would, but
        count nothing and keep nothing: the decoded frame, or None when it fails a check.

        Used to warm the caches of the receive path shortly before a frame is due
        (:meth:`HostProtocol.rehearse_data`).
        """
        try:
            return decode_body(cobs_decode(encoded), expect=self.expect, key=self.key)
        except ProtocolError:
            return None

    def data_received(self, data: bytes | bytearray | memoryview) -> list[Frame]:
        """Parse ``data``; return the valid frames only (errors are counted and kept)."""
        return [f for f in self.feed(data) if isinstance(f, Frame)]

    def _record(self, exc: ProtocolError) -> ProtocolError:
        if isinstance(exc, CrcError):
            self.crc_errors += 1
        elif isinstance(exc, AuthenticationError):
            self.auth_failures += 1
        elif isinstance(exc, WrongDirectionError):
            self.wrong_direction += 1
        else:
            self.malformed += 1
        self.errors.append(exc)
        return exc

    @property
    def pending(self) -> int:
        """Bytes of an unfinished frame waiting for the rest of it."""
        return self._splitter.pending

    @property
    def total_errors(self) -> int:
        return self.crc_errors + self.malformed + self.auth_failures + self.wrong_direction

    def counters(self) -> dict[str, int]:
        """Counters as a dict."""
        return {"frames_ok": self.frames_ok, "crc_errors": self.crc_errors,
                "malformed_frames": self.malformed, "auth_failures": self.auth_failures,
                "wrong_direction": self.wrong_direction, "bytes_received": self.bytes_received}

    def reset(self) -> None:
        """Forget a partial frame (after reopening a port); counters are kept."""
        self._splitter.reset()
