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

__all__ = ["StreamParser"]


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
                out.append(decode_body(cobs_decode(enc), expect=self.expect, key=self.key))
                self.frames_ok += 1
            except ProtocolError as exc:
                out.append(self._record(exc))
        return out

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
