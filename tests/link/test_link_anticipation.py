"""The link anticipates DATA frames: it knows when the next one is due, rehearses its decode
shortly before (warm caches, nothing counted), lets the loop ask whether samples are waiting
without taking them, and lets the loop's shadow cycle rehearse a STIM's encoding without
sending it. Behaviour only: no assertion on how long anything takes."""

from __future__ import annotations

import os
import threading
import time

import numpy as np
import pytest
from link_helpers import TEST_KEYS, d2h_frame

from neuroloop.link.device import DeviceLink, LinkSettings
from neuroloop.link.host_protocol import HostProtocol, SamplesReceived
from neuroloop.link.messages import Data, Info
from neuroloop.link.port import LinkPort
from neuroloop.link.sample_queue import SampleQueue
from neuroloop.stimulation.command import StimCommand

MS = 1_000_000
FS, SPF = 50.0, 1  # one bin per 20 ms frame, as the intracortical implant sends
PERIOD_NS = 20 * MS


def _info(n_ch: int = 8) -> Info:
    return Info(FS, n_ch, 16, SPF, 1.0, 300, 100, 0, "t", "misc",
                tuple(f"c{i}" for i in range(n_ch)), ("rest",))


def _data(k: int, n_ch: int = 8) -> Data:
    q = (np.arange(n_ch, dtype=np.int64) * 13 + k * 7) % 3000
    return Data(k, k, 1.0, q.astype(np.int16).reshape(1, n_ch), np.full(1, k % 2, np.int8))


def _protocol() -> HostProtocol:
    host = HostProtocol(TEST_KEYS)
    host.info = _info()
    return host


def _state(host: HostProtocol) -> tuple:
    p = host.parser
    return (dict(host.counters), p.frames_ok, p.crc_errors, p.malformed, p.auth_failures,
            p.bytes_received, host.last_data_ns, host.last_data_start_ns, host.last_rx_ns,
            host.guard.last_seq, host.last_frame_counter, host.index_offset, p.pending)


def test_rehearsing_the_last_data_frame_counts_and_keeps_nothing() -> None:
    host = _protocol()
    assert host.rehearse_data() is False  # nothing received yet
    for k in range(3):
        [ev] = host.receive(d2h_frame(_data(k), k + 1), (k + 1) * PERIOD_NS)
        assert isinstance(ev, SamplesReceived)
    host.receive(d2h_frame(_data(3), 4)[:10], 4 * PERIOD_NS)  # a frame half arrived
    before = _state(host)
    assert host.rehearse_data() is True
    assert _state(host) == before
    # the frame in progress is intact: its rest completes it as if nothing had happened
    [ev] = host.receive(d2h_frame(_data(3), 4)[10:], 4 * PERIOD_NS + 1)
    assert isinstance(ev, SamplesReceived) and ev.first_index == 3
    np.testing.assert_array_equal(ev.data, _data(3).samples.astype(np.float64))


def test_parser_rehearse_refuses_what_feed_refuses() -> None:
    host = _protocol()
    enc = d2h_frame(_data(0), 1)[:-1]
    assert host.parser.rehearse(enc) is not None
    bad = bytearray(enc)
    bad[30] ^= 0x01
    assert host.parser.rehearse(bytes(bad)) is None
    assert host.parser.crc_errors == 0 and host.parser.malformed == 0  # nothing counted


def test_the_next_frame_is_due_one_period_after_the_first_bytes_of_the_last() -> None:
    host = _protocol()
    assert host.next_data_due_ns() == 0
    frame = d2h_frame(_data(0), 1)
    host.receive(frame[:15], 100 * MS)  # the first bytes
    host.receive(frame[15:30], 101 * MS)
    [ev] = host.receive(frame[30:], 103 * MS)  # the last bytes: the samples' arrival time
    assert ev.received_ns == 103 * MS and host.last_data_ns == 103 * MS
    assert host.last_data_start_ns == 100 * MS
    assert host.next_data_due_ns() == 100 * MS + PERIOD_NS
    # one read with the tail of one frame and the whole next one: the next began in it
    a, b = d2h_frame(_data(1), 2), d2h_frame(_data(2), 3)
    host.receive(a[:20], 120 * MS)
    events = host.receive(a[20:] + b, 125 * MS)
    assert [e.first_index for e in events] == [1, 2]
    assert host.last_data_start_ns == 125 * MS
    # a frame that arrives whole begins when it arrives
    host.receive(d2h_frame(_data(3), 4), 140 * MS)
    assert host.last_data_start_ns == 140 * MS


def test_the_sample_queue_says_whether_samples_wait_without_taking_them() -> None:
    q = SampleQueue()
    data, labels = np.ones((1, 2)), np.zeros(1, np.int8)
    q.put(0, data, labels, 1000, 0, 100)
    # before the loop's first read everything queued is history: not "ready"
    assert not q.ready() and q.wait_ready(0.0) is False
    out, lab = np.zeros((4, 2)), np.zeros(4, np.int8)
    assert q.read_into(out, lab, 4, 0.0)[0] == 0  # the first read drops it
    assert not q.ready() and q.wait_ready(0.01) is False  # nothing came in time
    woke = []

    def waiter() -> None:
        woke.append(q.wait_ready(10.0))

    t = threading.Thread(target=waiter)
    t.start()
    time.sleep(0.05)
    q.put(1, data * 2, labels, 2000, 1, 100)
    t.join(10.0)
    assert woke == [True] and q.ready()
    assert q.ready()  # asking again takes nothing
    n, first, recv = q.read_into(out, lab, 4, 0.0)
    assert (n, first, recv) == (1, 1, 2000) and out[0, 0] == 2.0
    assert not q.ready()
    assert q.wait_ready(10.0, interrupted=lambda: True) is False  # a closed link wakes it


class _Events:
    def __init__(self) -> None:
        self.samples: list[SamplesReceived] = []

    def __call__(self, events) -> None:
        self.samples += [e for e in events if isinstance(e, SamplesReceived)]


@pytest.fixture
def pty_pair():
    master, slave = os.openpty()
    import tty

    tty.setraw(master)
    tty.setraw(slave)
    yield master, os.ttyname(slave)
    for fd in (master, slave):
        try:
            os.close(fd)
        except OSError:
            pass


@pytest.mark.parametrize("lead_s", [0.05, None])
def test_the_reader_rehearses_once_before_each_frame_is_due(pty_pair, lead_s) -> None:
    """With a frame period of 200 ms and a lead of 50 ms, the reader wakes once 150 ms after a
    frame began and rehearses its decode; without a lead it never does. The samples that then
    arrive are the same either way."""
    master, path = pty_pair
    host = HostProtocol(TEST_KEYS)
    host.info = Info(5.0, 8, 16, 1, 1.0, 300, 100, 0, "t", "misc",
                     tuple(f"c{i}" for i in range(8)), ("rest",))
    events = _Events()
    port = LinkPort(path, baudrate=921600, protocol=host, on_events=events,
                    settings=LinkSettings(rehearse_lead_s=lead_s, realtime_priority=None))
    port.open()
    try:
        os.write(master, d2h_frame(_data(0), 1))
        deadline = time.monotonic() + 10.0
        while not events.samples and time.monotonic() < deadline:
            time.sleep(0.01)
        assert len(events.samples) == 1
        # no next frame: the reader still wakes before it is due, and rehearses once only
        deadline = time.monotonic() + 10.0
        while lead_s is not None and port.counters["rehearsals"] == 0 \
                and time.monotonic() < deadline:
            time.sleep(0.01)
        time.sleep(0.4)  # two more periods: no second rehearsal for the same frame
        assert port.counters["rehearsals"] == (1 if lead_s is not None else 0)
        os.write(master, d2h_frame(_data(1), 2))
        deadline = time.monotonic() + 10.0
        while len(events.samples) < 2 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert [e.first_index for e in events.samples] == [0, 1]
        np.testing.assert_array_equal(events.samples[1].data,
                                      _data(1).samples.astype(np.float64))
        assert host.parser.frames_ok == 2 and host.counters["data_frames"] == 2
    finally:
        port.close()


def test_a_port_without_a_file_descriptor_is_read_as_before() -> None:
    """loop:// has no fileno: the reader gives up rehearsing and reads as it always did."""
    host = _protocol()
    events = _Events()
    port = LinkPort("loop://", baudrate=921600, protocol=host, on_events=events,
                    settings=LinkSettings(rehearse_lead_s=0.01, realtime_priority=None))
    port.open()
    try:
        host.receive(d2h_frame(_data(0), 1), time.perf_counter_ns())  # a frame is "due"
        port.ser.write(d2h_frame(_data(1), 2))
        deadline = time.monotonic() + 10.0
        while not events.samples and time.monotonic() < deadline:
            time.sleep(0.01)
        assert [e.first_index for e in events.samples] == [1]
        assert port.counters["rehearsals"] == 0
    finally:
        port.close()


def test_the_stimulators_rehearsal_encodes_and_sends_nothing() -> None:
    link = DeviceLink("loop://", keys=TEST_KEYS, settings=LinkSettings(auto_arm=False))
    link.info = _info()
    twin = link.stimulator.rehearsal()
    cmd = StimCommand.off(16, cycle=3)
    cmd.amplitude_ma[4], cmd.case_ma = -1.0, 1.0
    cmd.pulse_width_us, cmd.frequency_hz = 200.0, 40.0
    seq, counters = link.protocol.tx_seq, dict(link.counters)
    twin.send(cmd, hop_last_sample=5)
    assert link.protocol.tx_seq == seq and link.counters == counters
    assert link.port.ser is None  # never opened: nothing could have been written
    # the rehearsal is the real frame's work: the same length as the frame send_stim writes
    _, real = link.protocol.encode(link.protocol.stim(cmd, 5), 0)
    assert link.rehearse_stim(cmd, 5) == len(real)
