"""docs/protocol.md's test vectors are byte-exact: the code produces them and parses them back."""

from __future__ import annotations

from pathlib import Path

import pytest
from link_helpers import same
from protocol_vectors import KEYS, SESSION, VECTORS, parse_document

from neuroloop.link.codec import Direction
from neuroloop.link.parser import StreamParser

DOC = Path(__file__).resolve().parents[2] / "docs" / "protocol.md"


@pytest.fixture(scope="module")
def documented() -> dict[str, dict[str, bytes]]:
    return parse_document(DOC.read_text(encoding="utf-8"))


def test_every_vector_is_documented(documented) -> None:
    assert sorted(documented) == sorted(v.name for v in VECTORS)


@pytest.mark.parametrize("vector", VECTORS, ids=lambda v: v.name)
def test_documented_bytes_are_what_the_code_encodes(vector, documented) -> None:
    doc = documented[vector.name]
    parts = vector.parts()
    for field in ("header", "payload", "tag", "crc", "wire"):
        assert doc[field] == parts[field], f"{vector.name}.{field}"
    assert doc["header"] + doc["payload"] + doc["tag"] + doc["crc"] == vector.body()


@pytest.mark.parametrize("vector", VECTORS, ids=lambda v: v.name)
def test_documented_wire_bytes_parse_back(vector, documented) -> None:
    key = KEYS.d2h if vector.direction is Direction.D2H else KEYS.h2d
    parser = StreamParser(vector.direction, key)
    [frame] = parser.data_received(documented[vector.name]["wire"])
    assert frame.seq == vector.seq and frame.session == SESSION
    assert frame.timestamp_us == vector.timestamp_us
    assert same(frame.message, vector.message)


def test_header_fields_of_the_stim_vector(documented) -> None:
    h = documented["stim"]["header"]
    assert h[0] == 2 and h[1] == 0x11 and h[2] == 0x02  # version, STIM, TAG
    assert int.from_bytes(h[3:5], "little") == 50 + 16 * 8
    assert int.from_bytes(h[5:9], "little") == SESSION
    assert int.from_bytes(h[9:13], "little") == 5
    assert int.from_bytes(h[13:21], "little") == 5000
