"""Parser totality (SAFETY.md invariant 15): for any byte string, valid frames or a counted
ProtocolError, never another exception, and the parser keeps working afterwards."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st
from link_helpers import SESSION, TEST_KEYS, examples, same

from neuroloop.errors import ProtocolError
from neuroloop.link.codec import Direction, Frame, encode_body, encode_frame
from neuroloop.link.framing import cobs_encode
from neuroloop.link.parser import StreamParser

D2H_EXAMPLES = [m for m, d in examples() if d is Direction.D2H]
H2D_EXAMPLES = [m for m, d in examples() if d is Direction.H2D]


def wire(msg, seq: int, direction: Direction = Direction.D2H) -> bytes:
    key = TEST_KEYS.d2h if direction is Direction.D2H else TEST_KEYS.h2d
    return encode_frame(msg, direction=direction, seq=seq, session=SESSION, timestamp_us=seq,
                        key=key)


def check_total(parser: StreamParser, data: bytes) -> list[Frame]:
    before = parser.total_errors
    out = parser.feed(data)
    assert all(isinstance(x, Frame | ProtocolError) for x in out)
    errors = [x for x in out if isinstance(x, ProtocolError)]
    assert parser.total_errors - before == len(errors)
    return [x for x in out if isinstance(x, Frame)]


@given(st.binary(max_size=4000))
def test_any_bytes_give_frames_or_protocol_errors_and_parsing_goes_on(garbage: bytes) -> None:
    for expect, key, msgs in ((Direction.D2H, TEST_KEYS.d2h, D2H_EXAMPLES),
                              (Direction.H2D, TEST_KEYS.h2d, H2D_EXAMPLES)):
        p = StreamParser(expect, key)
        check_total(p, garbage)
        # the next delimiter resynchronises: a valid frame after it is parsed
        frames = check_total(p, b"\x00" + wire(msgs[0], 10**6, expect))
        assert len(frames) == 1 and same(frames[0].message, msgs[0])


@given(st.lists(st.one_of(st.sampled_from(range(len(D2H_EXAMPLES))),
                          st.binary(min_size=1, max_size=200)), max_size=12),
       st.lists(st.integers(min_value=1, max_value=500), max_size=20))
def test_frames_between_garbage_are_all_recovered_in_order(items, chunks) -> None:
    stream = b""
    expected = []
    for i, item in enumerate(items):
        if isinstance(item, int):
            stream += wire(D2H_EXAMPLES[item], i + 1)
            expected.append(D2H_EXAMPLES[item])
        else:
            stream += item + b"\x00"  # garbage, terminated so it cannot swallow a frame
    p = StreamParser(Direction.D2H, TEST_KEYS.d2h)
    got: list[Frame] = []
    pos = 0
    for c in chunks:
        got += check_total(p, stream[pos:pos + c])
        pos += c
    got += check_total(p, stream[pos:])
    # garbage could by chance be a valid frame only with a forged tag: it never is
    assert [type(f.message) for f in got] == [type(m) for m in expected]
    assert all(same(f.message, m) for f, m in zip(got, expected, strict=True))


@given(st.data())
def test_mutated_frames_never_pass_as_valid(data: st.DataObject) -> None:
    msg = data.draw(st.sampled_from(D2H_EXAMPLES))
    w = bytearray(wire(msg, 3))
    kind = data.draw(st.sampled_from(["flip", "truncate", "insert", "delete"]))
    i = data.draw(st.integers(0, len(w) - 2))
    if kind == "flip":
        w[i] ^= 1 << data.draw(st.integers(0, 7))
    elif kind == "truncate":
        w = w[:i] + b"\x00"
    elif kind == "insert":
        w.insert(i, data.draw(st.integers(0, 255)))
    else:
        del w[i]
    p = StreamParser(Direction.D2H, TEST_KEYS.d2h)
    frames = check_total(p, bytes(w) + b"\x00")
    # the only way a mutation "passes" is by being a no-op on the decoded frame (never here:
    # every mutation above changes the unstuffed bytes, which the CRC and tag cover)
    assert frames == [] or all(same(f.message, msg) and f.seq == 3 for f in frames)
    if any(bytes(w).split(b"\x00")):  # something besides delimiters: it was judged
        assert p.total_errors >= 1 or frames
    check_total(p, wire(msg, 4))  # still usable


def test_wrong_key_counts_auth_failures() -> None:
    p = StreamParser(Direction.D2H, TEST_KEYS.h2d)  # the other direction's key
    assert p.data_received(wire(D2H_EXAMPLES[0], 1) * 3) == []
    assert p.auth_failures == 3 and p.frames_ok == 0
    assert p.counters()["auth_failures"] == 3


def test_crc_and_malformed_counters() -> None:
    p = StreamParser(Direction.D2H, TEST_KEYS.d2h)
    b = encode_body(D2H_EXAMPLES[0], direction=Direction.D2H, seq=1, session=SESSION,
                    timestamp_us=0, key=TEST_KEYS.d2h)
    b[30] ^= 0x10  # line noise inside the payload; the stuffing stays intact
    p.data_received(cobs_encode(bytes(b)) + b"\x00")
    p.data_received(b"\x05\x01\x00")  # COBS code runs past the end
    assert p.crc_errors == 1 and p.malformed == 1
    assert len(p.errors) == 2
