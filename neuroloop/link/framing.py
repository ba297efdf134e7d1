"""COBS byte stuffing and 0x00-delimited frame splitting.

Consistent Overhead Byte Stuffing (Cheshire & Baker, IEEE/ACM Trans. Networking 7(2), 1999)
rewrites a frame so that it contains no 0x00 byte, at a cost of at most one byte per 254 bytes
plus one. A 0x00 then marks the end of every frame, so a receiver that sees garbage (a cable
plugged in mid-frame, a corrupted byte) loses at most the frame in progress and resynchronises
at the next 0x00.

Written here (about 40 lines) rather than taken from the ``cobs`` package: it is the one
dependency the link would need, its C extension has no wheels for every platform we bench on,
and the tests check this code byte for byte against the paper's and Wikipedia's vectors.
"""

from __future__ import annotations

from ..errors import ProtocolError

__all__ = ["cobs_encode", "cobs_decode", "FrameSplitter", "DELIMITER", "max_encoded_len"]

#: Frame delimiter on the wire.
DELIMITER = b"\x00"


def max_encoded_len(n: int) -> int:
    """Largest COBS encoding of ``n`` bytes (without the delimiter)."""
    return n + n // 254 + 1


def cobs_encode(data: bytes | bytearray | memoryview) -> bytes:
    """COBS-encode ``data``; the result contains no 0x00 byte.

    Each zero-free run is emitted as ``len+1`` followed by the run; a run of 254 bytes is
    emitted as ``0xFF`` + 254 bytes with no implied zero. A trailing ``0x01`` after a final
    full 254-byte run is omitted (as in the paper and on Wikipedia).
    """
    out = bytearray()
    chunks = bytes(data).split(b"\x00")
    last = len(chunks) - 1
    for i, chunk in enumerate(chunks):
        n = len(chunk)
        pos = 0
        while n - pos >= 254:
            out.append(0xFF)
            out += chunk[pos:pos + 254]
            pos += 254
        if pos and pos == n and i == last:
            break  # data ends on a full 254-byte run: no implied zero, no extra code byte
        out.append(n - pos + 1)
        out += chunk[pos:]
    return bytes(out)


def cobs_decode(encoded: bytes | bytearray | memoryview) -> bytes:
    """Decode one COBS frame (delimiter already removed).

    Raises
    ------
    ProtocolError
        Empty input, a 0x00 inside the frame, or a code byte that points past the end.
    """
    enc = bytes(encoded)
    n = len(enc)
    if n == 0:
        raise ProtocolError("empty COBS frame")
    if 0 in enc:
        raise ProtocolError("COBS frame contains a 0x00 byte")
    out = bytearray()
    i = 0
    while i < n:
        code = enc[i]
        end = i + code
        if end > n:
            raise ProtocolError(f"COBS code {code} at offset {i} runs past the frame end ({n} bytes)")
        out += enc[i + 1:end]
        i = end
        if code != 0xFF and i < n:
            out.append(0)
    return bytes(out)


class FrameSplitter:
    """Accumulates a byte stream and cuts it into COBS frames at each 0x00.

    Parameters
    ----------
    max_frame_len : int
        Longest encoded frame accepted (bytes, without the delimiter). Bytes beyond it are
        discarded up to the next delimiter and counted in :attr:`oversize`.

    Attributes
    ----------
    oversize : int
        Frames discarded because they grew longer than ``max_frame_len``.
    """

    def __init__(self, max_frame_len: int) -> None:
        if max_frame_len <= 0:
            raise ValueError("max_frame_len must be positive")
        self.max_frame_len = int(max_frame_len)
        self._buf = bytearray()
        self._discarding = False
        self.oversize = 0

    def feed(self, data: bytes | bytearray | memoryview) -> list[bytes]:
        """Add ``data``; return the complete encoded frames it finished (empty frames skipped)."""
        frames: list[bytes] = []
        buf = self._buf
        buf += data
        start = 0
        while True:
            end = buf.find(0, start)
            if end < 0:
                break
            if self._discarding:
                self._discarding = False
            elif end > start:
                if end - start <= self.max_frame_len:
                    frames.append(bytes(buf[start:end]))
                else:
                    self.oversize += 1
            start = end + 1
        del buf[:start]
        if len(buf) > self.max_frame_len:
            if not self._discarding:
                self.oversize += 1
            self._discarding = True
            buf.clear()
        return frames

    @property
    def pending(self) -> int:
        """Bytes of an unfinished frame held in the buffer."""
        return len(self._buf)

    def reset(self) -> None:
        """Forget any partial frame."""
        self._buf.clear()
        self._discarding = False
