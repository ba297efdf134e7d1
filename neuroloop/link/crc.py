"""CRC-32 of a frame: ``zlib.crc32`` (IEEE 802.3 polynomial 0x04C11DB7, reflected, init and
final XOR 0xFFFFFFFF; the CRC of ``b"123456789"`` is 0xCBF43926), stored little-endian.

The CRC catches line corruption; it is no protection against a forger (the HMAC tag is).
"""

from __future__ import annotations

import struct
import zlib

__all__ = ["CRC_LEN", "crc32", "append_crc", "split_crc"]

#: Bytes of CRC at the end of every frame.
CRC_LEN = 4
_CRC = struct.Struct("<I")


def crc32(data: bytes | bytearray | memoryview) -> int:
    """CRC-32 of ``data`` as an unsigned 32-bit integer."""
    return zlib.crc32(data) & 0xFFFFFFFF


def append_crc(data: bytearray) -> bytearray:
    """Append the little-endian CRC-32 of ``data`` to it, in place; returns ``data``."""
    data += _CRC.pack(crc32(data))
    return data


def split_crc(frame: bytes) -> tuple[bytes, bool]:
    """Split ``frame`` into (body, crc_ok). ``frame`` must hold at least :data:`CRC_LEN` bytes."""
    body = frame[:-CRC_LEN]
    (stored,) = _CRC.unpack_from(frame, len(frame) - CRC_LEN)
    return body, stored == crc32(body)
