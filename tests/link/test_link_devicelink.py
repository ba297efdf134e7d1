"""DeviceLink bookkeeping without a device: gaps, blocks, safety inputs, error messages."""

from __future__ import annotations

import time

import numpy as np
import pytest
from link_helpers import TEST_KEYS, d2h_frame

from neuroloop.errors import DeviceError
from neuroloop.link.device import DeviceLink, LinkSettings
from neuroloop.link.messages import Data, DeviceState, Info, Nak, NakReason
from neuroloop.stimulation.electrodes import electrode_array


def fresh_link() -> DeviceLink:
    link = DeviceLink("loop://", keys=TEST_KEYS, settings=LinkSettings(auto_arm=False))
    link.info = Info(586.0, 2, 16, 59, 0.25, 300, 100, 0, "t", "ecog", ("A", "B"), ("rest",))
    link.samples.started = True  # reading as if the loop were running
    return link


def deliver(link: DeviceLink, msg, now_ns: int, timestamp_us: int = 0) -> list:
    """``msg`` arrives from the device at host time ``now_ns``, through the protocol core and
    the facade's event handling (as the reader thread would hand it over)."""
    deliver.seq = getattr(deliver, "seq", 0) + 1  # type: ignore[attr-defined]
    events = link.protocol.receive(d2h_frame(msg, deliver.seq, timestamp_us), now_ns)
    link._on_events(events)
    return events


def frame(counter: int, n: int = 59) -> Data:
    q = np.arange(counter * n * 2, (counter + 1) * n * 2, dtype=np.int64) % 30000
    return Data(counter, counter * n, 0.25, q.astype(np.int16).reshape(n, 2),
                np.full(n, counter % 3, np.int8))


def test_gaps_are_counted_and_never_spanned_by_a_block() -> None:
    link = fresh_link()
    now = time.perf_counter_ns()
    for c in (0, 1, 4, 5):  # frames 2 and 3 never arrive
        deliver(link, frame(c), now + c, timestamp_us=c * 100_000)
    st = link.stats()
    assert st["frames_lost"] == 2 and st["samples_lost"] == 118
    out = np.zeros((512, 2))
    lab = np.zeros(512, np.int8)
    n, first, _ = link._read_into(out, lab, 512, 0.0)
    assert (n, first) == (118, 0)  # frames 0-1, stops at the gap
    np.testing.assert_array_equal(out[:59], frame(0).samples * 0.25)
    n, first, _ = link._read_into(out, lab, 512, 0.0)
    assert (n, first) == (118, 236)  # frames 4-5: first_index jumps, nothing synthesised
    assert link._read_into(out, lab, 512, 0.0)[0] == 0


def test_first_read_skips_frames_that_waited_in_the_port_buffer() -> None:
    """Samples from before the loop started are history: the first read drops the queue, and
    frames that reach the host more than 10 ms later than the stream's fastest frame (they sat
    in the port's buffer, e.g. while the process locked its memory) are skipped until a fresh
    one arrives; after that nothing is skipped."""
    link = DeviceLink("loop://", keys=TEST_KEYS, settings=LinkSettings(auto_arm=False))
    link.info = Info(586.0, 2, 16, 59, 0.25, 300, 100, 0, "t", "ecog", ("A", "B"), ("rest",))
    base = 10**15
    period_us = 100_000

    def arrive(c: int, late_us: int) -> None:  # frame c reaches the host late_us after sending
        deliver(link, frame(c), base + (c * period_us + late_us) * 1000,
                timestamp_us=base // 1000 + c * period_us)

    out, lab = np.zeros((512, 2)), np.zeros(512, np.int8)
    arrive(0, 500)  # the fastest frame so far: 0.5 ms in transit
    arrive(1, 600)
    assert link._read_into(out, lab, 512, 0.0)[0] == 0  # the loop starts: queue dropped
    arrive(2, 40_000)  # waited 40 ms in the buffer: history
    arrive(3, 11_000)  # 10.5 ms later than the fastest: history
    arrive(4, 9_000)  # 8.5 ms: input
    arrive(5, 30_000)  # once the stream is live, a late frame is still input
    assert link.stats()["frames_discarded_at_start"] == 4
    n, first, _ = link._read_into(out, lab, 512, 0.0)
    assert (n, first) == (118, 4 * 59)
    np.testing.assert_array_equal(out[:59], frame(4).samples * 0.25)
    link.close()


def test_device_faults_are_reported_once_per_appearance() -> None:
    link = fresh_link()
    assert link.poll_safety_inputs() == []
    link.protocol.device_state = DeviceState.WATCHDOG
    [(kind, text)] = link.poll_safety_inputs()
    assert kind == "device_fault" and "watchdog" in text
    assert link.poll_safety_inputs() == []
    link.protocol.device_state = DeviceState.ARMED
    assert link.poll_safety_inputs() == []
    link.protocol.device_state = DeviceState.WATCHDOG
    assert [k for k, _ in link.poll_safety_inputs()] == ["device_fault"]


def test_nak_storm_and_timeouts() -> None:
    link = fresh_link()
    now = time.perf_counter_ns()
    for i in range(5):
        deliver(link, Nak(i, 0x11, NakReason.LIMIT, 3, "x"), now)
    assert [k for k, _ in link.poll_safety_inputs()] == ["nak_storm"]
    assert link.poll_safety_inputs() == []
    assert link.stats()["naks"] == {"total": 5, "by_reason": {"LIMIT": 5}}
    link.protocol.last_rx_ns = now - 2_000_000_000
    assert [k for k, _ in link.poll_safety_inputs()] == ["heartbeat_lost"]
    assert [k for k, _ in link.poll_safety_inputs()] == ["heartbeat_lost"]  # every poll
    link.protocol.last_rx_ns = now
    link.protocol.last_data_ns = now - 2_000_000_000
    assert [k for k, _ in link.poll_safety_inputs()] == ["stream_stalled"]


def test_a_looped_back_line_is_named() -> None:
    with pytest.raises(DeviceError, match="looped back"):
        DeviceLink("loop://", keys=TEST_KEYS, settings=LinkSettings(open_timeout_s=0.5)).open()


def test_utilisation_uses_the_stim_rate_sent_not_one_per_frame() -> None:
    """With 1-sample frames (586 frames/s) the host still sends one STIM per 59-sample hop:
    the summary's host->device share must not assume 586 STIMs a second."""
    from neuroloop.link.capacity import link_utilisation

    link = DeviceLink("loop://", keys=TEST_KEYS, settings=LinkSettings(auto_arm=False))
    link.info = Info(586.0, 64, 16, 1, 0.25, 300, 100, 0, "t", "ecog", (), ())
    per_frame = link_utilisation(samples_per_frame=1, stim_rate_hz=586.0)["h2d_utilisation"]
    assert per_frame > 1.0  # what one STIM per frame would need: more than the line
    assert link.stats()["utilisation"]["h2d_pct"] == round(100 * per_frame, 2)  # no STIM yet
    hop_hz = 586.0 / 59
    link.protocol.counters["stims_sent"] = 100
    link.protocol.first_stim_ns = 10**12
    link.protocol.last_stim_ns = 10**12 + round(99 / hop_hz * 1e9)
    u = link.stats()["utilisation"]
    want = link_utilisation(samples_per_frame=1, stim_rate_hz=hop_hz)["h2d_utilisation"]
    assert u["h2d_pct"] == round(100 * want, 2) and u["h2d_pct"] < 5.0
    link.close()


# -- electrode array (SAFETY.md invariant 18) ------------------------------------------------
def _array_link(name: str, areas: np.ndarray) -> DeviceLink:
    link = DeviceLink("loop://", keys=TEST_KEYS, settings=LinkSettings(auto_arm=True))
    link.info = Info(586.0, 2, areas.shape[0], 59, 0.25, 300, 100, 0, "t", "ecog", ("A", "B"),
                     ("rest",), name, areas)
    return link


def test_the_link_reports_the_devices_array() -> None:
    dbs = electrode_array("dbs-3389")
    link = _array_link("dbs-3389", dbs.area_cm2)
    assert link.device_array_name == "dbs-3389"
    np.testing.assert_array_equal(link.device_area_cm2, dbs.area_cm2)
    assert link.stats()["device_array"] == "dbs-3389"
    link.expect_array(dbs)  # agrees: no error
    assert link.expected_array is dbs


def test_arm_is_refused_on_another_array_and_nothing_is_sent() -> None:
    link = _array_link("dbs-3389", electrode_array("dbs-3389").area_cm2)
    paddle = electrode_array("paddle-5-6-5")
    want = ("device on loop:// reports array 'dbs-3389', the scenario's is 'paddle-5-6-5'; "
            "start firmware-sim with --array paddle-5-6-5 or choose a scenario for that array")
    with pytest.raises(DeviceError) as info:
        link.expect_array(paddle)
    assert str(info.value) == want
    # every way to ARM checks it (the port is not even open: the check comes first)
    for arm in (link.arm, link.arm_async, link._maybe_auto_arm,
                lambda: link.arm(expected_array=paddle)):
        with pytest.raises(DeviceError, match="reports array 'dbs-3389'"):
            arm()
    assert link.counters["arms_sent"] == 0 and link.counters["bytes_sent"] == 0


def test_arm_is_refused_on_other_areas_or_without_info() -> None:
    paddle = electrode_array("paddle-5-6-5")
    areas = paddle.area_cm2.copy()
    areas[3] = 0.09  # a device claiming larger contacts: looser charge limits
    link = _array_link("paddle-5-6-5", areas)
    with pytest.raises(DeviceError, match="contact E3 of 'paddle-5-6-5' with 0.09 cm"):
        link.arm(expected_array=paddle)
    link = _array_link("paddle-5-6-5", paddle.area_cm2[:4])
    with pytest.raises(DeviceError, match="with 4 contacts, the scenario's has 16"):
        link.arm(expected_array=paddle)
    link.info = None
    with pytest.raises(DeviceError, match="has not reported its electrode array"):
        link.expect_array(paddle, timeout_s=0.05)
    assert link.counters["arms_sent"] == 0


def test_a_peer_of_another_protocol_version_is_named_not_blamed_on_the_baud_rate() -> None:
    import struct

    from neuroloop.link.codec import HEADER
    from neuroloop.link.crc import crc32
    from neuroloop.link.framing import cobs_encode
    from neuroloop.link.messages import MsgType

    link = DeviceLink("loop://", keys=TEST_KEYS, settings=LinkSettings(auto_arm=False))
    raw = HEADER.pack(1, int(MsgType.HEARTBEAT), 0x03, 5, 1, 1, 0) + bytes(5 + 16)
    link.protocol.parser.feed(cobs_encode(raw + struct.pack("<I", crc32(raw))) + b"\x00")
    msg = str(link._no_frame_error())
    assert "speaks another protocol version: protocol version 1 is not supported" in msg
    assert "baud" not in msg
