"""The host's protocol core without a port or a thread: firmware_sim's pure device on one side,
:class:`HostProtocol` on the other, bytes handed over one at a time; events and counters
asserted. Also the sample queue's stale-frame rule and the link monitor on a fake clock."""

from __future__ import annotations

import numpy as np
from link_helpers import TEST_KEYS, d2h_frame

from firmware_sim.device import DeviceConfig, FirmwareDevice, StreamInfo
from neuroloop.errors import ProtocolError
from neuroloop.link.codec import CrcError, ReplayError
from neuroloop.link.framing import cobs_decode, cobs_encode
from neuroloop.link.host_protocol import (
    AckReceived,
    DeviceRebooted,
    HeartbeatReceived,
    HostProtocol,
    InfoReceived,
    NakReceived,
    SamplesReceived,
    StatusReceived,
)
from neuroloop.link.messages import (
    Arm,
    Data,
    DeviceState,
    GetInfo,
    MsgType,
    Nak,
    NakReason,
    Stim,
)
from neuroloop.link.monitor import LinkMonitor
from neuroloop.link.sample_queue import STALE_FRAME_US, SampleQueue
from neuroloop.link.settings import LinkSettings
from neuroloop.stimulation.command import StimCommand

FS, SPF, NCH = 586.0, 59, 4
MS = 1_000_000  # ns


def device() -> FirmwareDevice:
    info = StreamInfo(FS, tuple(f"C{i}" for i in range(NCH)), "ecog", ("rest", "move"), SPF,
                      0.25)
    return FirmwareDevice(TEST_KEYS, DeviceConfig(stream=info), now_us=0, seed=1,
                          session=0xC0FFEE)


def byte_by_byte(host: HostProtocol, frames: list[bytes], now_ns: int) -> list:
    """Hand every byte over on its own (a UART delivering one byte per read)."""
    events: list = []
    for frame in frames:
        for b in frame:
            events.extend(host.receive(bytes([b]), now_ns))
    return events


def samples(k: int) -> np.ndarray:
    q = (np.arange(SPF * NCH, dtype=np.int64).reshape(SPF, NCH) * 7 + k * 1000) % 30000 - 15000
    return q.astype(np.int16)


def connect(host: HostProtocol, dev: FirmwareDevice) -> list:
    """Beacons, then GET_INFO -> INFO (which starts the stream at device time 0)."""
    events = byte_by_byte(host, dev.tick(0), 1 * MS)
    _, frame = host.encode(GetInfo(), 1 * MS)
    return events + byte_by_byte(host, dev.receive(frame, 0), 2 * MS)


def test_connect_info_and_data_byte_by_byte() -> None:
    host, dev = HostProtocol(TEST_KEYS), device()
    events = connect(host, dev)
    kinds = [type(e) for e in events]
    assert kinds == [StatusReceived, HeartbeatReceived, InfoReceived]
    assert host.info is not None and host.info.n_channels == NCH
    assert host.info.array_name == "paddle-5-6-5"
    assert host.device_state == DeviceState.DISARMED and host.guard.session == 0xC0FFEE
    frames = [dev.data_frame(samples(k), np.full(SPF, k % 2, np.int8), 100_000 * (k + 1))
              for k in range(3)]
    events = byte_by_byte(host, frames, 300 * MS)
    assert [type(e) for e in events] == [SamplesReceived] * 3
    for k, ev in enumerate(events):
        assert ev.first_index == k * SPF and ev.acquired_us == 100_000 * (k + 1)
        assert ev.received_ns == 300 * MS
        np.testing.assert_array_equal(ev.data, samples(k) * 0.25)  # exact microvolts
        np.testing.assert_array_equal(ev.labels, np.full(SPF, k % 2))
    c = host.counters
    assert (c["data_frames"], c["frames_lost"], c["samples_lost"]) == (3, 0, 0)
    assert host.parser.frames_ok == 6 and host.parser.crc_errors == 0
    assert host.last_data_ns == host.last_rx_ns == 300 * MS


def test_lost_frames_are_counted_never_filled() -> None:
    host, dev = HostProtocol(TEST_KEYS), device()
    connect(host, dev)
    frames = [dev.data_frame(samples(k), None, 0) for k in range(6)]
    events = byte_by_byte(host, [frames[i] for i in (0, 1, 4, 5)], 5 * MS)
    assert [e.first_index for e in events] == [0, SPF, 4 * SPF, 5 * SPF]
    assert host.counters["frames_lost"] == 2 and host.counters["samples_lost"] == 2 * SPF
    assert (events[0].labels == -1).all()  # no labels sent: NO_LABEL


def test_corruption_replay_and_wrong_key_are_events_and_counted() -> None:
    host, dev = HostProtocol(TEST_KEYS), device()
    connect(host, dev)
    good = dev.data_frame(samples(0), None, 0)
    body = bytearray(cobs_decode(dev.data_frame(samples(1), None, 0)[:-1]))
    body[40] ^= 0x10  # one bit of line noise inside the frame
    bad = cobs_encode(bytes(body)) + b"\x00"
    events = byte_by_byte(host, [good, bad, good], 5 * MS)
    assert [type(e) for e in events] == [SamplesReceived, CrcError, ReplayError]
    assert host.parser.crc_errors == 1 and host.counters["replayed_frames"] == 1
    # garbage up to a delimiter costs nothing but itself: the next frame parses
    events = byte_by_byte(host, [b"\x17\x42\x99\x00", dev.data_frame(samples(2), None, 0)],
                          6 * MS)
    assert [type(e) for e in events] == [ProtocolError, SamplesReceived]
    assert events[-1].first_index == 2 * SPF and host.parser.malformed == 1
    assert host.counters["frames_lost"] == 1  # the corrupted one


def test_stim_ack_round_trip_and_device_latency() -> None:
    host, dev = HostProtocol(TEST_KEYS), device()
    connect(host, dev)
    byte_by_byte(host, [dev.data_frame(samples(0), None, 100_700)], 101 * MS)
    seq_arm, arm = host.encode(Arm(), 102 * MS)
    [ack] = byte_by_byte(host, dev.receive(arm, 102_000), 103 * MS)
    assert isinstance(ack, AckReceived) and ack.ack.acked_type == MsgType.ARM
    assert ack.ack.acked_seq == seq_arm and ack.rtt_ns is None
    cmd = StimCommand.off(16, cycle=1)
    cmd.amplitude_ma[2], cmd.case_ma = -0.01, 0.01
    cmd.pulse_width_us, cmd.frequency_hz, cmd.interphase_gap_us, cmd.program_id = 300, 40, 50, 1
    msg = host.stim(cmd, hop_last_sample=SPF - 1)
    assert isinstance(msg, Stim) and msg.hop_last_sample == SPF - 1
    seq, frame = host.encode(msg, 104 * MS)
    host.stim_sent(104 * MS)
    [ev] = byte_by_byte(host, dev.receive(frame, 104_500), 105 * MS)
    assert isinstance(ev, AckReceived) and ev.ack.acked_seq == seq
    assert ev.rtt_ns == 1 * MS  # host clock: sent at 104 ms, ACK at 105 ms
    # device clock: sample 58 acquired at 100 000 us (= 59 / 586 Hz ~ 100.7 ms), applied at
    # 104 500 us
    want_us = 104_500 - round(dev.sample_time_us(SPF - 1))
    assert abs(host.device_latency.values()[0] / 1000 - want_us) <= 1
    assert host.counters["acks"] == 2 and host.counters["stims_sent"] == 1
    assert host.expire_acks(10**18) == 0  # nothing left waiting


def test_naks_unanswered_stims_and_replay_catch_up() -> None:
    host, dev = HostProtocol(TEST_KEYS), device()
    connect(host, dev)
    cmd = StimCommand.off(16)
    cmd.amplitude_ma[0], cmd.case_ma = -1.0, 1.0
    cmd.pulse_width_us, cmd.frequency_hz, cmd.interphase_gap_us = 300, 40, 50
    seq, frame = host.encode(host.stim(cmd), 10 * MS)
    [ev] = byte_by_byte(host, dev.receive(frame, 10_000), 11 * MS)  # not armed
    assert isinstance(ev, NakReceived) and ev.nak.reason == NakReason.NOT_ARMED
    assert host.naks_by_reason == {"NOT_ARMED": 1} and list(host.nak_times) == [11 * MS]
    assert host.last_nak is ev.nak
    # a STIM nobody answers: missing after the ACK timeout
    host.encode(host.stim(cmd), 20 * MS)
    assert host.expire_acks(19 * MS) == 0 and host.expire_acks(21 * MS) == 1
    assert host.counters["acks_missing"] == 1
    # NAK REPLAY (another host session used higher numbers): continue above them
    byte_by_byte(host, [d2h_frame(Nak(500, MsgType.STIM, NakReason.REPLAY, -1, ""), 10**6,
                                  session=0xC0FFEE)], 30 * MS)
    assert host.tx_seq >= 1500
    # NAK AUTH: our key is wrong
    byte_by_byte(host, [d2h_frame(Nak(9, MsgType.ARM, NakReason.AUTH, -1, ""), 10**6 + 1,
                                  session=0xC0FFEE)], 31 * MS)
    assert host.auth_rejected


def test_reboot_new_session_and_indices_keep_increasing() -> None:
    host, dev = HostProtocol(TEST_KEYS), device()
    connect(host, dev)
    byte_by_byte(host, [dev.data_frame(samples(k), None, 0) for k in range(2)], 200 * MS)
    dev.reboot(300_000)
    events = byte_by_byte(host, dev.tick(300_000), 500 * MS)
    assert isinstance(events[0], DeviceRebooted) and events[0].reboots == 1
    assert host.need_info and host.counters["device_reboots"] == 1
    _, frame = host.encode(GetInfo(), 501 * MS)
    assert isinstance(byte_by_byte(host, dev.receive(frame, 300_001), 502 * MS)[0],
                       InfoReceived)
    assert not host.need_info
    [ev] = byte_by_byte(host, [dev.data_frame(samples(0), None, 400_000)], 600 * MS)
    # 400 ms away at 586 Hz: the new stream continues past the time the device was gone
    assert ev.first_index > 2 * SPF and host.counters["samples_lost"] > 0
    # frames of the old session are replays now
    old = d2h_frame(Data(9, 0, 0.25, samples(0), None), 10**6, session=0xC0FFEE)
    assert isinstance(byte_by_byte(host, [old], 601 * MS)[0], ReplayError)


def test_sample_queue_stale_rule_and_overflow() -> None:
    q = SampleQueue()
    out, lab = np.zeros((1024, NCH)), np.zeros(1024, np.int8)
    data, labels = np.ones((SPF, NCH)), np.zeros(SPF, np.int8)
    t0_ns, t0_us = 10**12, 0
    q.put(0, data, labels, t0_ns + 500_000, t0_us, 1 << 20)  # 0.5 ms in transit: fastest
    assert q.read_into(out, lab, 1024, 0.0)[0] == 0  # the loop starts: history dropped
    late = (STALE_FRAME_US + 1_000) * 1000
    assert not q.put(SPF, data, labels, t0_ns + 100 * MS + late, 100_000, 1 << 20)
    assert q.put(2 * SPF, data, labels, t0_ns + 200 * MS + 600_000, 200_000, 1 << 20)
    assert q.put(3 * SPF, data, labels, t0_ns + 300 * MS + late, 300_000, 1 << 20)  # live
    assert q.counters["frames_discarded_at_start"] == 2
    n, first, recv = q.read_into(out, lab, 1024, 0.0)
    assert (n, first, recv) == (2 * SPF, 2 * SPF, t0_ns + 300 * MS + late)
    for k in range(4):
        q.put((4 + k) * SPF, data, labels, t0_ns, 0, 2 * SPF)  # room for two frames
    assert len(q) == 2 * SPF and q.counters["samples_overflowed"] == 2 * SPF


def test_monitor_reports_from_protocol_state_on_its_own_clock() -> None:
    host, dev = HostProtocol(TEST_KEYS), device()
    clock = [0]
    mon = LinkMonitor(host, LinkSettings(), clock_ns=lambda: clock[0])
    connect(host, dev)  # frames at 1-2 ms, a STATUS among them
    clock[0] = 3 * MS
    inputs = mon.poll(0, 0)
    assert [k for k, _ in inputs] == ["impedance"] and inputs[0][1].shape == (16,)
    assert mon.poll(1, 0) == []
    clock[0] = 2 * MS + 301 * MS  # no frame for 301 ms: the default timeout is 300 ms
    assert [k for k, _ in mon.poll(2, 0)] == ["heartbeat_lost"]
    assert [k for k, _ in mon.poll(3, 0)] == ["heartbeat_lost"]  # every poll while it lasts
    byte_by_byte(host, dev.tick(400_000), clock[0])  # a heartbeat again: all is well
    assert mon.poll(4, 0) == []
    clock[0] += 700 * MS
    byte_by_byte(host, dev.tick(1_000_000), clock[0])  # the next STATUS (1 Hz)
    assert [k for k, _ in mon.poll(5, 0)] == ["impedance"]
