"""Frame encoding/decoding: round trips, CRC, tags, direction, and every kind of tampering."""

from __future__ import annotations

import struct

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from link_helpers import SESSION, TEST_KEYS, examples, same, stim_example

from neuroloop.errors import AuthenticationError, ProtocolError
from neuroloop.link.codec import (
    FLAG_D2H,
    HEADER,
    HEADER_LEN,
    PROTOCOL_VERSION,
    CrcError,
    Direction,
    ReplayError,
    TagError,
    VersionError,
    WrongDirectionError,
    decode_body,
    encode_body,
    encode_frame,
)
from neuroloop.link.crc import crc32
from neuroloop.link.framing import cobs_decode
from neuroloop.link.messages import Arm, GetInfo, Heartbeat, Info, MsgType, Stop
from neuroloop.link.session import SequenceGuard
from neuroloop.stimulation.electrodes import electrode_array


def key_for(direction: Direction) -> bytes:
    return TEST_KEYS.d2h if direction is Direction.D2H else TEST_KEYS.h2d


def body(msg, direction, seq=1, session=SESSION, ts=1000, key=None) -> bytes:
    return bytes(encode_body(msg, direction=direction, seq=seq, session=session,
                             timestamp_us=ts, key=key if key is not None else key_for(direction)))


def test_crc_is_ieee_crc32() -> None:
    assert crc32(b"123456789") == 0xCBF43926


@pytest.mark.parametrize(("msg", "direction"), examples(), ids=lambda x: getattr(x, "name", ""))
def test_roundtrip_every_message(msg, direction) -> None:
    wire = encode_frame(msg, direction=direction, seq=77, session=SESSION, timestamp_us=5,
                        key=key_for(direction))
    assert wire.endswith(b"\x00") and 0 not in wire[:-1]
    frame = decode_body(cobs_decode(wire[:-1]), expect=direction, key=key_for(direction))
    assert frame.seq == 77 and frame.session == SESSION and frame.timestamp_us == 5
    assert frame.header.direction is direction
    assert same(frame.message, msg)


def test_header_layout_is_documented_one() -> None:
    b = body(Arm(), Direction.H2D, seq=0x01020304, session=0x0A0B0C0D, ts=0x1122334455667788)
    assert HEADER_LEN == 21
    assert b[:HEADER_LEN] == bytes([2, 0x12, 0x02, 0, 0, 0x0D, 0x0C, 0x0B, 0x0A,
                                    0x04, 0x03, 0x02, 0x01,
                                    0x88, 0x77, 0x66, 0x55, 0x44, 0x33, 0x22, 0x11])
    assert len(b) == HEADER_LEN + 0 + 16 + 4  # empty payload, tag, CRC
    assert struct.unpack("<I", b[-4:])[0] == crc32(b[:-4])


def test_stop_and_get_info_carry_no_tag_and_d2h_always_does() -> None:
    assert len(body(Stop(), Direction.H2D)) == HEADER_LEN + 4
    assert len(body(Heartbeat(1, 2), Direction.D2H)) == HEADER_LEN + 5 + 16 + 4


def test_encode_refuses_wrong_direction_types_and_missing_keys() -> None:
    with pytest.raises(ValueError):
        encode_body(stim_example(), direction=Direction.D2H, seq=1, session=1,
                    timestamp_us=0, key=TEST_KEYS.d2h)
    with pytest.raises(ValueError):
        encode_body(Arm(), direction=Direction.H2D, seq=1, session=1, timestamp_us=0, key=None)
    with pytest.raises(ValueError):
        encode_body(Arm(), direction=Direction.H2D, seq=2**32, session=1, timestamp_us=0,
                    key=TEST_KEYS.h2d)


def test_wrong_key_is_a_tag_error_with_the_header() -> None:
    b = body(stim_example(), Direction.H2D, seq=9)
    with pytest.raises(TagError) as info:
        decode_body(b, expect=Direction.H2D, key=TEST_KEYS.d2h)
    assert isinstance(info.value, AuthenticationError)
    assert info.value.header.seq == 9  # type: ignore[attr-defined]
    with pytest.raises(TagError):
        decode_body(b, expect=Direction.H2D, key=None)


def test_a_reflected_frame_is_wrong_direction() -> None:
    # a device frame bounced back to the device (or a host frame looped back to the host)
    b = body(Heartbeat(0, 0), Direction.D2H)
    with pytest.raises(WrongDirectionError):
        decode_body(b, expect=Direction.H2D, key=TEST_KEYS.d2h)
    b = body(Heartbeat(0, 0), Direction.H2D)
    with pytest.raises(WrongDirectionError):
        decode_body(b, expect=Direction.D2H, key=TEST_KEYS.h2d)


def test_flipping_the_direction_bit_with_a_fixed_crc_breaks_the_tag() -> None:
    # an attacker who recomputes the CRC still cannot change the direction bit (or any
    # header field) because the tag covers the header
    b = bytearray(body(Heartbeat(0, 0), Direction.H2D))
    b[2] |= FLAG_D2H
    b[-4:] = struct.pack("<I", crc32(bytes(b[:-4])))
    with pytest.raises(TagError):
        decode_body(bytes(b), expect=Direction.D2H, key=TEST_KEYS.h2d)
    b = bytearray(body(stim_example(), Direction.H2D, seq=5))
    b[9] ^= 0x01  # seq 5 -> 4 (a replay attempt with a new sequence number)
    b[-4:] = struct.pack("<I", crc32(bytes(b[:-4])))
    with pytest.raises(TagError):
        decode_body(bytes(b), expect=Direction.H2D, key=TEST_KEYS.h2d)


@given(st.data())
def test_any_single_bit_flip_is_detected(data: st.DataObject) -> None:
    msg, direction = data.draw(st.sampled_from(examples()))
    b = bytearray(body(msg, direction))
    i = data.draw(st.integers(0, len(b) * 8 - 1))
    b[i // 8] ^= 1 << (i % 8)
    with pytest.raises(ProtocolError):
        decode_body(bytes(b), expect=direction, key=key_for(direction))


@given(st.data())
def test_any_truncation_is_detected(data: st.DataObject) -> None:
    msg, direction = data.draw(st.sampled_from(examples()))
    b = body(msg, direction)
    n = data.draw(st.integers(0, len(b) - 1))
    with pytest.raises(ProtocolError):
        decode_body(b[:n], expect=direction, key=key_for(direction))


def _recrc(b: bytearray) -> bytes:
    b[-4:] = struct.pack("<I", crc32(bytes(b[:-4])))
    return bytes(b)


def test_header_checks_name_the_problem() -> None:
    for version in (1, 9):  # an older peer (version 1: INFO without the array) or a newer one
        b = bytearray(body(GetInfo(), Direction.H2D))
        b[0] = version
        with pytest.raises(VersionError, match=f"version {version} is not supported"):
            decode_body(_recrc(b), expect=Direction.H2D, key=None)
    b = bytearray(body(GetInfo(), Direction.H2D))
    b[1] = 0x7F
    with pytest.raises(ProtocolError, match="unknown message type"):
        decode_body(_recrc(b), expect=Direction.H2D, key=None)
    b = bytearray(body(GetInfo(), Direction.H2D))
    b[2] = 0x80
    with pytest.raises(ProtocolError, match="reserved"):
        decode_body(_recrc(b), expect=Direction.H2D, key=None)
    b = bytearray(body(GetInfo(), Direction.H2D))
    b[3] = 5
    with pytest.raises(ProtocolError, match="payload_len"):
        decode_body(_recrc(b), expect=Direction.H2D, key=None)
    # a GET_INFO that claims to carry a tag, and an ARM that lacks one
    b = bytearray(body(GetInfo(), Direction.H2D)[:-4] + bytes(16) + bytes(4))
    b[2] |= 0x02
    with pytest.raises(ProtocolError, match="unexpected"):
        decode_body(_recrc(b), expect=Direction.H2D, key=TEST_KEYS.h2d)
    arm = body(Arm(), Direction.H2D)
    b = bytearray(arm[:HEADER_LEN] + arm[-4:])
    b[2] &= ~0x02
    with pytest.raises(ProtocolError, match="lacks"):
        decode_body(_recrc(b), expect=Direction.H2D, key=TEST_KEYS.h2d)


def _stop_frame(*, version: int = 1, flags: int = 0, payload: bytes = b"",
                payload_len: int | None = None, tag: bytes = b"", session: int = 7,
                seq: int = 0) -> bytes:
    """A STOP body exactly as given (header fields, payload, tag), with a correct CRC."""
    raw = HEADER.pack(version, int(MsgType.STOP), flags,
                      len(payload) if payload_len is None else payload_len, session, seq, 0)
    return bytes(raw + payload + tag) + struct.pack("<I", crc32(raw + payload + tag))


@pytest.mark.parametrize("kw", [
    {"flags": 0x02, "tag": bytes(16)},                     # TAG flag, garbage tag
    {"flags": 0x02},                                       # TAG flag, no tag at all
    {"tag": bytes(range(16))},                             # a tag without the flag
    {"payload": b"\x01"},                                  # a 1-byte payload
    {"payload": bytes(300), "payload_len": 3},             # payload_len that lies
    {"flags": 0xFF},                                       # reserved bits, D2H bit
    {"flags": FLAG_D2H},                                   # marked device -> host
    {"version": 0xEE, "session": 0, "seq": 2**32 - 1},     # another version, odd numbers
])
def test_a_malformed_stop_is_still_a_stop_on_the_device_side(kw) -> None:
    b = _stop_frame(**kw)
    frame = decode_body(b, expect=Direction.H2D, key=TEST_KEYS.h2d)
    assert isinstance(frame.message, Stop) and frame.header.msg_type == MsgType.STOP
    assert frame.seq == kw.get("seq", 0)
    # a host never takes a STOP (no device sends one) ...
    with pytest.raises(ProtocolError):
        decode_body(b, expect=Direction.D2H, key=TEST_KEYS.d2h)
    # ... and a STOP whose CRC fails is not a frame at all
    bad = bytearray(b)
    bad[-1] ^= 0x01
    with pytest.raises(CrcError):
        decode_body(bytes(bad), expect=Direction.H2D, key=TEST_KEYS.h2d)


def test_a_stop_with_a_valid_tag_is_a_stop() -> None:
    from neuroloop.link.auth import compute_tag

    raw = HEADER.pack(PROTOCOL_VERSION, int(MsgType.STOP), 0x02, 0, SESSION, 5, 0)
    b = _stop_frame(flags=0x02, tag=compute_tag(TEST_KEYS.h2d, raw), session=SESSION, seq=5)
    assert isinstance(decode_body(b, expect=Direction.H2D, key=TEST_KEYS.h2d).message, Stop)


def test_crc_error_is_its_own_class() -> None:
    b = bytearray(body(Stop(), Direction.H2D))
    b[-1] ^= 0xFF
    with pytest.raises(CrcError):
        decode_body(bytes(b), expect=Direction.H2D, key=None)


def test_payload_that_lies_about_its_content_is_malformed() -> None:
    # a DATA frame whose payload is one sample short, correctly tagged and CRC'd
    msg, direction = examples()[0]
    payload = msg.encode_payload()[:-1]
    h = HEADER.pack(PROTOCOL_VERSION, int(MsgType.DATA), 0x03, len(payload), SESSION, 1, 0)
    from neuroloop.link.auth import compute_tag

    raw = bytearray(h + payload)
    raw += compute_tag(TEST_KEYS.d2h, raw)
    raw += struct.pack("<I", crc32(bytes(raw)))
    with pytest.raises(ProtocolError) as info:
        decode_body(bytes(raw), expect=Direction.D2H, key=TEST_KEYS.d2h)
    assert not isinstance(info.value, AuthenticationError)
    assert info.value.header is not None  # type: ignore[attr-defined]


def test_sequence_guard_refuses_replays_and_old_sessions() -> None:
    g = SequenceGuard()
    hdr = lambda session, seq: decode_body(  # noqa: E731
        body(Heartbeat(0, 0), Direction.D2H, seq=seq, session=session), expect=Direction.D2H,
        key=TEST_KEYS.d2h).header
    assert g.accept(hdr(1, 1)) is True
    assert g.accept(hdr(1, 2)) is False
    for seq in (2, 1):
        with pytest.raises(ReplayError):
            g.accept(hdr(1, seq))
    assert g.accept(hdr(2, 1)) is True and g.session_changes == 1  # device rebooted
    with pytest.raises(ReplayError, match="earlier device session"):
        g.accept(hdr(1, 3))
    assert g.session == 2 and g.last_seq == 1


def test_samples_round_trip_exactly() -> None:
    rng = np.random.default_rng(0)
    from neuroloop.link.messages import Data

    q = rng.integers(-32768, 32768, size=(59, 64)).astype(np.int16)
    lab = rng.integers(-1, 7, size=59).astype(np.int8)
    wire = encode_frame(Data(3, 10**12, 0.25, q, lab), direction=Direction.D2H, seq=1,
                        session=1, timestamp_us=0, key=TEST_KEYS.d2h)
    got = decode_body(cobs_decode(wire[:-1]), expect=Direction.D2H, key=TEST_KEYS.d2h).message
    np.testing.assert_array_equal(got.samples, q)
    np.testing.assert_array_equal(got.labels, lab)
    assert got.first_sample_index == 10**12


# ----------------------------------------------------------------------------- INFO: array
def _info(**kw) -> Info:
    fields = dict(sampling_rate_hz=586.0, n_channels=2, n_contacts=4, samples_per_frame=59,
                  uv_per_lsb=0.25, watchdog_ms=300, heartbeat_ms=100, last_h2d_seq=0,
                  device_name="sim", channel_type="ecog", channel_names=("A", "B"),
                  intention_names=("rest",), array_name="dbs-3389",
                  area_cm2=electrode_array("dbs-3389").area_cm2)
    fields.update(kw)
    return Info(**fields)


def test_info_carries_the_array_name_and_areas_exactly() -> None:
    msg = _info()
    got = Info.decode_payload(msg.encode_payload())
    assert got.array_name == "dbs-3389" and got.n_contacts == 4
    np.testing.assert_array_equal(got.area_cm2, electrode_array("dbs-3389").area_cm2)
    assert electrode_array("dbs-3389").mismatch(got.array_name, got.area_cm2) is None


def test_info_encode_refuses_a_missing_or_impossible_array() -> None:
    for kw in ({"array_name": ""}, {"area_cm2": np.full(3, 0.06)},
               {"area_cm2": np.array([0.06, 0.06, np.nan, 0.06])},
               {"area_cm2": np.array([0.06, 0.0, 0.06, 0.06])}):
        with pytest.raises(ValueError):
            _info(**kw).encode_payload()


def _with_areas(areas: list[float], n_contacts: int = 4, name: str = "dbs-3389") -> bytes:
    head = _info(n_contacts=n_contacts, area_cm2=np.full(n_contacts, 0.06)).encode_payload()
    head = head[:len(head) - 8 * n_contacts - 2 - len("dbs-3389")]  # strip name and areas
    raw = name.encode()
    return head + struct.pack("<H", len(raw)) + raw + np.asarray(areas, "<f8").tobytes()


@pytest.mark.parametrize(("payload", "match"), [
    (_with_areas([0.06, 0.06, 0.06]), "bytes of contact areas"),          # one area short
    (_with_areas([0.06] * 5), "bytes of contact areas"),                  # one area too many
    (_with_areas([0.06] * 4)[:-1], "bytes of contact areas"),             # truncated area
    (_with_areas([0.06, float("nan"), 0.06, 0.06]), "finite and > 0"),
    (_with_areas([0.06, float("inf"), 0.06, 0.06]), "finite and > 0"),
    (_with_areas([0.06, 0.0, 0.06, 0.06]), "finite and > 0"),
    (_with_areas([0.06, -0.06, 0.06, 0.06]), "finite and > 0"),
    (_with_areas([0.06] * 4, name=""), "names no electrode array"),
    (_with_areas([], n_contacts=0), "names no electrode array"),
])
def test_info_with_a_bad_array_is_a_protocol_error(payload: bytes, match: str) -> None:
    with pytest.raises(ProtocolError, match=match):
        Info.decode_payload(payload)


def test_a_version_1_info_without_the_array_is_refused() -> None:
    v1 = _info().encode_payload()[:-(2 + len("dbs-3389") + 32)]  # the version-1 layout
    with pytest.raises(ProtocolError):
        Info.decode_payload(v1)


@given(st.data())
def test_info_decoding_is_total(data: st.DataObject) -> None:
    """Any cut, extension or byte change of a valid INFO payload decodes or raises
    ProtocolError, nothing else; what decodes has finite positive areas, one per contact."""
    raw = bytearray(_info().encode_payload())
    kind = data.draw(st.sampled_from(["cut", "extend", "poke"]))
    if kind == "cut":
        raw = raw[:data.draw(st.integers(0, len(raw) - 1))]
    elif kind == "extend":
        raw += data.draw(st.binary(min_size=1, max_size=40))
    else:
        for _ in range(data.draw(st.integers(1, 4))):
            raw[data.draw(st.integers(0, len(raw) - 1))] = data.draw(st.integers(0, 255))
    try:
        got = Info.decode_payload(bytes(raw))
    except ProtocolError:
        return
    assert got.area_cm2.shape == (got.n_contacts,) and got.n_contacts > 0
    assert np.all(np.isfinite(got.area_cm2)) and np.all(got.area_cm2 > 0) and got.array_name
