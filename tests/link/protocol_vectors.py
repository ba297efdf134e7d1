"""The test vectors of docs/protocol.md: what each one encodes, and how it is printed there.

``python tests/link/protocol_vectors.py`` prints the vector blocks of the document;
test_link_vectors.py checks that the document's bytes are exactly what the code produces.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

import numpy as np
from link_helpers import SESSION, TEST_KEYS, stim_example

from neuroloop.link.codec import HEADER, HEADER_LEN, PROTOCOL_VERSION, Direction, encode_body
from neuroloop.link.crc import crc32
from neuroloop.link.framing import cobs_encode
from neuroloop.link.messages import (
    Ack,
    Arm,
    Data,
    DeviceState,
    FaultFlag,
    GetInfo,
    Heartbeat,
    Info,
    Message,
    MsgType,
    Nak,
    NakReason,
    Status,
    Stop,
)
from neuroloop.stimulation.electrodes import electrode_array

#: Documented test keys: h2d = 00 01 .. 1f, d2h = 20 21 .. 3f (defined once in link_helpers).
KEYS = TEST_KEYS


@dataclass(frozen=True)
class Vector:
    name: str
    message: Message
    direction: Direction
    seq: int
    timestamp_us: int

    @property
    def key(self) -> bytes:
        return KEYS.d2h if self.direction is Direction.D2H else KEYS.h2d

    def body(self) -> bytes:
        return bytes(encode_body(self.message, direction=self.direction, seq=self.seq,
                                 session=SESSION, timestamp_us=self.timestamp_us, key=self.key))

    def wire(self) -> bytes:
        return cobs_encode(self.body()) + b"\x00"

    def payload_len(self) -> int:
        return len(self.message.encode_payload())

    def parts(self) -> dict[str, bytes]:
        b = self.body()
        n = self.payload_len()
        tag_end = len(b) - 4
        return {"header": b[:HEADER_LEN], "payload": b[HEADER_LEN:HEADER_LEN + n],
                "tag": b[HEADER_LEN + n:tag_end], "crc": b[tag_end:], "wire": self.wire()}


@dataclass(frozen=True)
class MalformedStop(Vector):
    """A STOP no encoder produces (flags, payload and tag as given), which a device must obey
    all the same: STOP is a type, not a format."""

    flags: int = 0
    payload: bytes = b""
    tag: bytes = b""

    def payload_len(self) -> int:
        return len(self.payload)

    def body(self) -> bytes:
        raw = HEADER.pack(PROTOCOL_VERSION, int(MsgType.STOP), self.flags, len(self.payload),
                          SESSION, self.seq, self.timestamp_us) + self.payload + self.tag
        return raw + struct.pack("<I", crc32(raw))


VECTORS: list[Vector] = [
    Vector("get_info", GetInfo(), Direction.H2D, 1, 1000),
    Vector("stop", Stop(), Direction.H2D, 2, 2000),
    MalformedStop("stop_malformed", Stop(), Direction.H2D, 6, 6000, flags=0x02,
                  payload=b"\x01", tag=bytes([0xAA] * 16)),
    Vector("arm", Arm(), Direction.H2D, 3, 3000),
    Vector("heartbeat_h2d", Heartbeat(0, 9), Direction.H2D, 4, 4000),
    Vector("stim", stim_example(), Direction.H2D, 5, 5000),
    Vector("heartbeat_d2h", Heartbeat(int(DeviceState.ARMED), 5), Direction.D2H, 10, 100000),
    Vector("ack_stim", Ack(5, 0x11, 105000, 1500), Direction.D2H, 11, 105000),
    Vector("nak", Nak(6, 0x11, NakReason.LIMIT, 5, "shannon"), Direction.D2H, 12, 106000),
    Vector("data", Data(7, 413, 0.25, np.array([[1, -2, 300], [-32768, 32767, 0]],
                                               dtype=np.int16),
                        np.array([0, 3], dtype=np.int8)), Direction.D2H, 13, 110000),
    Vector("status", Status(81.5, True, DeviceState.STIMULATING, FaultFlag.IMPEDANCE, 10, 2, 1,
                            0, 3, np.array([900.0, np.inf], dtype=np.float32)),
           Direction.D2H, 14, 1000000),
    Vector("info", Info(586.0, 2, 4, 59, 0.25, 300, 100, 5, "sim", "ecog", ("A1", "A2"),
                        ("rest", "hip"), "dbs-3389", electrode_array("dbs-3389").area_cm2),
           Direction.D2H, 15, 1000500),
]


def hexdump(data: bytes, indent: str = "") -> str:
    """Space-separated hex, 16 bytes per line."""
    rows = [data[i:i + 16].hex(" ") for i in range(0, len(data), 16)] or [""]
    return ("\n" + indent).join(rows)


def render(v: Vector) -> str:
    """The document's block for one vector."""
    p = v.parts()
    pad = " " * 10
    lines = [f"vector {v.name}"]
    for k in ("header", "payload", "tag", "crc", "wire"):
        lines.append(f"{k:<10}{hexdump(p[k], pad)}" if p[k] else f"{k:<10}(none)")
    return "\n".join(lines)


def parse_document(text: str) -> dict[str, dict[str, bytes]]:
    """The vector blocks of docs/protocol.md: name -> field -> bytes."""
    out: dict[str, dict[str, bytes]] = {}
    current: dict[str, bytes] | None = None
    field = None
    for line in text.splitlines():
        if line.startswith("vector "):
            current = out.setdefault(line.split()[1], {})
            field = None
            continue
        if current is None:
            continue
        if line.startswith("```"):
            current = None
            continue
        head, rest = line[:10].strip(), line[10:].strip()
        if head:
            field = head
            current[field] = b"" if rest == "(none)" else bytes.fromhex(rest)
        elif field is not None and rest:
            current[field] += bytes.fromhex(rest)
    return out


if __name__ == "__main__":
    for v in VECTORS:
        print("```text")
        print(render(v))
        print("```")
