"""STOP is a type, not a format (SAFETY.md rule; invariant 12): any frame whose type byte is
STOP and which passes COBS and CRC stops the output at once and is acknowledged, whatever its
version, flags, tag (absent, valid or garbage), session, sequence number, ``payload_len`` or
payload, in every device state. A frame whose CRC fails is not a frame and changes nothing."""

from __future__ import annotations

import struct

import numpy as np
from fw_helpers import TEST_KEYS, Host, make_device, run_until, start_stream, stim
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from firmware_sim.device import FirmwareDevice
from neuroloop.link.auth import compute_tag
from neuroloop.link.codec import FLAG_TAG, HEADER
from neuroloop.link.crc import crc32
from neuroloop.link.framing import cobs_encode
from neuroloop.link.messages import Ack, Arm, DeviceState, MsgType

STATES = ["DISARMED", "ARMED", "STIMULATING", "WATCHDOG", "FAULT"]


def device_in(state: str) -> tuple[FirmwareDevice, Host, int]:
    """A device in ``state`` and the device time to send at. WATCHDOG is caught mid-ramp
    (output still on), STIMULATING drives contact 2 at -0.8 mA."""
    if state == "FAULT":
        dev = make_device(battery_pct=2.0)
        host = Host(dev)
        assert dev.state == DeviceState.FAULT
        return dev, host, 1000
    dev = make_device()
    host = Host(dev)
    if state == "DISARMED":
        return dev, host, 1000
    start_stream(dev, host, 0)
    run_until(dev, host, 110_000)
    assert isinstance(host.answer(Arm(), 110_000), Ack)
    if state == "ARMED":
        return dev, host, 112_000
    assert isinstance(host.answer(stim({2: -0.8}), 205_000), Ack)
    if state == "STIMULATING":
        return dev, host, 206_000
    run_until(dev, host, 610_000, start_us=206_000)  # silent: trips at ~505 ms, ramps 200 ms
    assert dev.state == DeviceState.WATCHDOG and not dev.output.is_off
    return dev, host, 610_000


def stop_wire(version: int, flags: int, session: int, seq: int, timestamp_us: int,
              payload: bytes, payload_len: int | None, tag: str, garbage_tag: bytes) -> bytes:
    """A STOP exactly as described: header fields as given, then payload, tag, a correct CRC."""
    raw = HEADER.pack(version, int(MsgType.STOP), flags,
                      len(payload) if payload_len is None else payload_len, session, seq,
                      timestamp_us) + payload
    if tag == "valid":
        raw += compute_tag(TEST_KEYS.h2d, raw)
    elif tag == "garbage":
        raw += garbage_tag
    raw += struct.pack("<I", crc32(raw))
    return cobs_encode(raw) + b"\x00"


u32 = st.integers(0, 2**32 - 1)


@settings(max_examples=max(150, settings.default.max_examples), deadline=None,
          suppress_health_check=[HealthCheck.too_slow])
@given(state=st.sampled_from(STATES), data=st.data(),
       version=st.one_of(st.just(1), st.integers(0, 255)),
       flags=st.one_of(st.sampled_from([0, FLAG_TAG, 0x01, 0x03]), st.integers(0, 255)),
       seq=st.one_of(st.sampled_from([0, 1, 2**32 - 1]), u32),
       timestamp_us=st.integers(0, 2**64 - 1),
       payload=st.one_of(st.just(b""), st.binary(min_size=1, max_size=1),
                         st.binary(max_size=600)),
       payload_len=st.one_of(st.none(), st.integers(0, 0xFFFF)),
       tag=st.sampled_from(["none", "valid", "garbage"]),
       garbage_tag=st.binary(min_size=16, max_size=16))
def test_any_stop_frame_stops_and_is_acked_in_every_state(
        state: str, data: st.DataObject, version: int, flags: int, seq: int, timestamp_us: int,
        payload: bytes, payload_len: int | None, tag: str, garbage_tag: bytes) -> None:
    dev, host, t = device_in(state)
    session = data.draw(st.one_of(st.just(dev.session), u32), label="session")
    seq_before = dev.last_h2d_seq
    wire = stop_wire(version, flags, session, seq, timestamp_us, payload, payload_len, tag,
                     garbage_tag)
    replies = host.decode(dev.receive(wire, t))
    assert dev.output.is_off and np.all(dev.output.amplitude_ma == 0.0)
    assert dev.output.case_ma == 0.0
    want = DeviceState.FAULT if state == "FAULT" else DeviceState.DISARMED
    assert dev.state == want, dev.state
    assert [(type(m), m.acked_type, m.acked_seq) for m in replies] == [(Ack, MsgType.STOP, seq)]
    assert all(tr.stop_us is not None for tr in dev.log)  # every train (and ramp) ended
    assert dev.last_h2d_seq == seq_before  # a STOP never moves the sequence number
    # and it stays stopped: time passing brings nothing back
    run_until(dev, host, t + 50_000, start_us=t + 2_000)
    assert dev.output.is_off and dev.state == want


def test_a_stop_whose_crc_fails_is_not_a_frame() -> None:
    dev, host, t = device_in("STIMULATING")
    good = stop_wire(1, 0, dev.session, 0, 0, b"", None, "none", b"")
    body = bytearray(good[:-1])  # still COBS-encoded; flip a bit of the CRC's last byte
    body[-1] ^= 0x01 if body[-1] != 0x01 else 0x02
    before = dev.snapshot()
    assert dev.receive(bytes(body) + b"\x00", t) == []
    assert dev.snapshot() == before and dev.state == DeviceState.STIMULATING
    assert dev.parser.crc_errors + dev.parser.malformed == 1
    # the same STOP, intact, stops it
    assert [type(m) for m in host.decode(dev.receive(good, t))] == [Ack]
    assert dev.state == DeviceState.DISARMED and dev.output.is_off
