"""Replies before bulk data: an ARM or STOP answered while a backlog of DATA waits.

The 1024-electrode binned stream takes 71 % of a 3 Mbaud UART. When the host stops reading
for a moment (a busy machine, page faults, a collection), DATA piles up in the device; a
device that queued its ACK behind that backlog answered ARM after the backlog had drained,
past the host's wait, and the run aborted. The device now keeps DATA frames in a FIFO of
their own and lets replies overtake them (:mod:`firmware_sim.txqueue`), encoding each DATA
frame when it leaves, so the host's anti-replay check still sees increasing sequence numbers.

The host side here is neuroloop's real :class:`DeviceLink` over a real pty, read through a
serial port that moves bytes at a 3 Mbaud UART's rate (a pty has no line rate) and that the
test can pause.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest
import serial

from firmware_sim.device import DeviceConfig, StreamInfo
from firmware_sim.sim import Simulator
from firmware_sim.transport import PtyTransport, Transport
from firmware_sim.txqueue import DataFifo
from neuroloop.link.codec import Direction, encode_frame
from neuroloop.link.device import DeviceLink, LinkSettings
from neuroloop.link.keys import LinkKeys
from neuroloop.link.messages import Data, MsgType
from neuroloop.link.parser import StreamParser
from neuroloop.link.session import SequenceGuard
from neuroloop.stimulation.electrodes import electrode_array

KEYS = LinkKeys(bytes(range(0x00, 0x20)), bytes(range(0x20, 0x40)), source="test")
UART_BYTES_PER_S = 300_000.0  # 3 Mbaud, 8N1
N_VALUES = 2048  # what the 1024-electrode implant sends per 20 ms bin


class BinStreamer:
    """The binned implant's stream without its model: 2048 int16 values per 20 ms frame."""

    noise_bursts = 0

    def __init__(self) -> None:
        self.info = StreamInfo(sampling_rate_hz=50.0,
                               channel_names=tuple(f"v{i}" for i in range(N_VALUES)),
                               channel_type="misc", samples_per_frame=1, uv_per_lsb=1.0)
        rng = np.random.default_rng(0)
        self._q = rng.integers(-300, 300, size=(1, N_VALUES)).astype("<i2")
        self._labels = np.zeros(1, np.int8)

    def next_frame(self) -> tuple[np.ndarray, np.ndarray]:
        return self._q, self._labels

    def frame_ready(self) -> bool:
        return True

    def prepare(self) -> None:
        pass

    def skip(self, n_samples: int) -> None:
        pass

    def apply_output(self, output: Any) -> None:
        pass


class Uart:
    """A serial port that delivers at most ``UART_BYTES_PER_S`` and can be paused."""

    def __init__(self, inner: Any) -> None:
        self._inner = inner
        self.paused = threading.Event()
        self._next = time.monotonic()

    def read(self, n: int = 1) -> bytes:
        if self.paused.is_set():
            time.sleep(0.02)
            return b""
        now = time.monotonic()
        if self._next > now:
            time.sleep(self._next - now)
        data = self._inner.read(min(max(n, 1), 1024))
        self._next = max(self._next, time.monotonic() - 0.002) + len(data) / UART_BYTES_PER_S
        return data

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


def _start_simulator(streamer: Any) -> tuple[Simulator, threading.Thread]:
    """firmware_sim streaming ``streamer`` on a 3 Mbaud pty, in a thread of this process."""
    sim = Simulator(transport=PtyTransport(3_000_000), keys=KEYS, streamer=streamer,
                    config=DeviceConfig(stream=streamer.info,
                                        array=electrode_array("paddle-5-6-5")),
                    duration_s=60.0)
    thread = threading.Thread(target=sim.run, name="firmware-sim", daemon=True)
    thread.start()
    return sim, thread


@dataclass
class Rig:
    sim: Simulator
    link: DeviceLink
    uart: Uart


@pytest.fixture
def rig() -> Iterator[Rig]:
    streamer = BinStreamer()
    sim, thread = _start_simulator(streamer)
    uarts: list[Uart] = []

    def factory(url: str, **kw: Any) -> Uart:
        uarts.append(Uart(serial.serial_for_url(url, **kw)))
        return uarts[-1]

    link = DeviceLink(sim.transport.address, keys=KEYS, baudrate=3_000_000,
                      settings=LinkSettings(auto_arm=False, realtime_priority=None),
                      serial_factory=factory)
    link.open()
    try:
        yield Rig(sim, link, uarts[0])
    finally:
        link.close()
        sim.request_stop()
        thread.join(10.0)


def _backlog(rig: Rig, seconds: float) -> None:
    """The host reads nothing for ``seconds``: bins pile up in the device."""
    rig.uart.paused.set()
    time.sleep(seconds)
    # most of a second of bins waits in the device (or in the pty: ~15 kB of it)
    assert rig.sim.frames_produced - rig.link.counters["data_frames"] > 40
    rig.uart.paused.clear()


def test_arm_and_stop_are_answered_ahead_of_a_data_backlog(rig: Rig) -> None:
    link = rig.link
    time.sleep(0.3)
    _backlog(rig, 1.5)
    before = link.counters["data_frames"]
    link.arm(timeout_s=0.5)  # the backlog takes ~0.9 s to drain at 3 Mbaud: the ACK must not wait
    behind = link.counters["data_frames"] - before
    # only what the pty itself buffered (~15 kB, 3-4 bins) and the bin on the line came first
    assert behind <= 8, f"{behind} DATA frames arrived before the ARM's ACK"
    assert rig.sim.device.counters["arms"] == 1

    _backlog(rig, 1.2)
    acks, before = link.counters["acks"], link.counters["data_frames"]
    assert link.send_stop()
    deadline = time.monotonic() + 0.5
    while link.counters["acks"] == acks and time.monotonic() < deadline:
        time.sleep(0.002)
    assert link.counters["acks"] > acks, "no ACK for STOP within 0.5 s"
    assert link.counters["data_frames"] - before <= 8
    assert rig.sim.device.counters["stops"] == 1
    # the backlog then arrives whole and in order: nothing reordered, nothing replayed
    time.sleep(1.5)
    c = link.counters
    assert c["replayed_frames"] == 0
    assert link.protocol.parser.malformed == 0 and link.protocol.parser.crc_errors == 0


class SlowModel(BinStreamer):
    """A patient model that falls behind real time: while ``stalled`` is set, the next frame
    is not there (asking for it blocks, as the intracortical model's producer thread does)."""

    def __init__(self) -> None:
        super().__init__()
        self.stalled = threading.Event()
        self._released = threading.Event()
        self._released.set()

    def frame_ready(self) -> bool:
        return not self.stalled.is_set()

    def next_frame(self) -> tuple[np.ndarray, np.ndarray]:
        while self.stalled.is_set():
            time.sleep(0.005)
        return super().next_frame()


def test_arm_is_answered_while_the_patient_model_is_behind_real_time() -> None:
    """On a busy machine the intracortical model (its own thread) falls behind; the simulator
    used to wait for it inside its catch-up loop and read nothing from the host meanwhile."""
    streamer = SlowModel()
    sim, thread = _start_simulator(streamer)
    link = DeviceLink(sim.transport.address, keys=KEYS, baudrate=3_000_000,
                      settings=LinkSettings(auto_arm=False, realtime_priority=None))
    try:
        link.open()
        time.sleep(0.2)
        streamer.stalled.set()
        time.sleep(0.3)  # frames are due and the model has none
        link.arm(timeout_s=0.3)
        assert link.send_stop()
        deadline = time.monotonic() + 0.3
        while sim.device.counters["stops"] == 0 and time.monotonic() < deadline:
            time.sleep(0.002)
        assert sim.device.counters["stops"] == 1
        assert sim.model_waits > 0
        produced = sim.frames_produced
        streamer.stalled.clear()  # the model catches up: every overdue frame goes out
        time.sleep(0.5)
        assert sim.frames_produced >= produced + 20
        assert link.counters["frames_lost"] == 0 and link.counters["replayed_frames"] == 0
    finally:
        streamer.stalled.clear()
        link.close()
        sim.request_stop()
        thread.join(10.0)


def test_chunk_producer_says_whether_a_chunk_waits() -> None:
    from neuroloop.acquisition.prefetch import ChunkProducer

    go = threading.Event()

    def fill(out: np.ndarray, labels: np.ndarray) -> int:
        go.wait(5.0)
        go.clear()
        out[...] = 1.0
        return out.shape[0]

    p = ChunkProducer(fill, first_index=0, n_channels=2, chunk_samples=3, depth=2).start()
    try:
        assert not p.ready
        go.set()
        deadline = time.monotonic() + 5.0
        while not p.ready and time.monotonic() < deadline:
            time.sleep(0.001)
        assert p.ready
        slot = p.take(timeout=0.0)
        assert slot == 0 and not p.ready
        p.release()
    finally:
        go.set()
        p.stop()


class _Line(Transport):
    """A transport whose peer takes ``budget`` bytes at a time (set by the test)."""

    address = "line"

    def __init__(self) -> None:
        super().__init__(max_queued_bytes=64 * 1024)
        self.budget = 0
        self.wire = bytearray()

    def _fd(self) -> int | None:
        return None

    def _raw_read(self) -> bytes:
        return b""

    def _raw_write(self, data: memoryview) -> int:
        n = min(len(data), self.budget)
        self.budget -= n
        self.wire += data[:n]
        return n

    def close(self) -> None:
        pass


def test_replies_overtake_waiting_bins_and_sequence_numbers_stay_increasing() -> None:
    """Byte-level: a reply queued behind five waiting bins and one half-sent bin reaches the
    wire right after the half-sent one, and every frame on the wire passes the host's
    anti-replay check (the bins are encoded when they leave)."""
    streamer = BinStreamer()
    line = _Line()
    sim = Simulator(transport=line, keys=KEYS, streamer=streamer,
                    config=DeviceConfig(stream=streamer.info,
                                        array=electrode_array("paddle-5-6-5")))
    dev = sim.device
    dev.streaming = True
    line.budget = 1000  # the first bin leaves half-sent
    for k in range(6):
        samples, labels = streamer.next_frame()
        sim._queue_data(dev.data_message(samples, labels), 20_000 * (k + 1), 0)
    assert len(sim.data_fifo) == 5 and not line.idle
    ack = dev.encode(_ack_for_arm(), 130_000)
    sim._send([ack], 130_000)
    line.budget = 10**9
    line.flush()
    sim._pump_data(140_000)
    assert len(sim.data_fifo) == 0

    parser = StreamParser(Direction.D2H, KEYS.d2h)
    guard = SequenceGuard()
    kinds = []
    for item in parser.feed(bytes(line.wire)):
        assert not isinstance(item, Exception), item
        guard.accept(item.header)  # raises on a reordered sequence number
        kinds.append((item.header.msg_type, getattr(item.message, "frame_counter", None)))
    assert kinds == [(MsgType.DATA, 0), (MsgType.ACK, None)] + [(MsgType.DATA, k)
                                                                 for k in range(1, 6)]


def _ack_for_arm() -> Any:
    from neuroloop.link.messages import Ack

    return Ack(1, int(MsgType.ARM), 0, 0)


def test_data_fifo_keeps_frames_in_order_and_refuses_when_full() -> None:
    fifo = DataFifo(2, 3, max_bytes=3 * 2 * 3 * 2)  # room for three frames
    assert fifo.capacity == 3
    buf = np.zeros((2, 3), "<i2")
    for k in range(4):
        buf[...] = k
        ok = fifo.push(Data(k, 2 * k, 0.5, buf, np.full(2, k, np.int8) if k % 2 else None),
                       1000 * k)
        assert ok == (k < 3)
    assert fifo.overflow == 1 and len(fifo) == 3
    for k in range(3):
        msg, stamp = fifo.pop()
        assert (msg.frame_counter, msg.first_sample_index, msg.uv_per_lsb, stamp) == \
            (k, 2 * k, 0.5, 1000 * k)
        assert np.all(msg.samples == k)
        assert (msg.labels is None) == (k % 2 == 0)
        # the frame encodes like the one pushed (what the line gets)
        frame = encode_frame(msg, direction=Direction.D2H, seq=k + 1, session=1,
                             timestamp_us=stamp, key=KEYS.d2h)
        assert frame.endswith(b"\x00")
    with pytest.raises(IndexError):
        fifo.pop()
