"""A loop paced by a device anticipates each hop: it expects it one hop period after the
earliest arrivals seen, warms its caches with the shadow cycle before it is due (as a loop
paced by the wall clock does), never while a hop is already waiting, and wakes when the
samples arrive. Behaviour only: no assertion on how long anything takes."""

from __future__ import annotations

import threading
import time
from collections import deque

import numpy as np

from neuroloop.acquisition.base import BaseSource, Block
from neuroloop.acquisition.synthetic import SyntheticSource
from neuroloop.runtime.clock import WallClock
from neuroloop.runtime.hop_reader import ARRIVAL_DRIFT_NS, HOP_FULL, HopReader
from neuroloop.runtime.session import RunOptions, Session

MS = 1_000_000


class DeviceDouble(BaseSource):
    """Samples of a synthetic patient that "arrive" when the test pushes them, each block with
    the arrival time it is given (as a device link's reader thread stamps them)."""

    paced_by_device = True

    def __init__(self, inner: BaseSource, *, anticipation: bool = True) -> None:
        super().__init__()
        self.inner = inner
        self.info = inner.info
        self._cond = threading.Condition()
        self._queue: deque[tuple[np.ndarray, np.ndarray, int, int]] = deque()
        self._next = 0
        self._block = Block(data=np.zeros((0, inner.info.n_channels)))
        if anticipation:
            self.samples_ready = self._samples_ready
            self.wait_for_samples = self._wait_for_samples

    def push(self, n: int, received_ns: int | None = None) -> None:
        block = self.inner.read(n)
        assert block is not None and block.n_samples == n
        with self._cond:
            self._queue.append((block.data.copy(), block.labels.copy(), self._next,
                                time.perf_counter_ns() if received_ns is None else received_ns))
            self._next += n
            self._cond.notify_all()

    def _samples_ready(self) -> bool:
        return bool(self._queue)

    def _wait_for_samples(self, timeout_s: float) -> bool:
        with self._cond:
            return self._cond.wait_for(lambda: bool(self._queue), timeout_s)

    def _open(self) -> None:
        self.inner.open()

    def _read(self, max_samples: int, timeout: float | None) -> Block | None:
        with self._cond:
            if not self._cond.wait_for(lambda: bool(self._queue), timeout):
                return None
            data, labels, first, recv = self._queue.popleft()
        assert data.shape[0] <= max_samples
        b = self._block
        b.data, b.labels, b.first_index, b.received_ns = data, labels, first, recv
        return b

    def _close(self) -> None:
        self.inner.close()


def _reader(src: BaseSource, hop: int = 59, fs: float = 586.0) -> HopReader:
    src.open()
    return HopReader(src, WallClock(), hop_samples=hop, sampling_rate_hz=fs,
                     read_timeout_s=1.0, on_samples=lambda data, first: None)


def test_the_next_hop_is_expected_one_period_after_the_earliest_arrivals() -> None:
    src = DeviceDouble(SyntheticSource("bsi", seed=3))
    r = _reader(src)
    assert r.device_paced and r.paced
    t0 = time.perf_counter_ns()
    assert t0 <= r.hop_due_ns() <= time.perf_counter_ns()  # nothing seen yet: now
    base = time.perf_counter_ns() + 10_000 * MS
    r.start(base)
    lateness_ns = [300_000, 50_000, 2_000_000, 100_000, 5_000_000, 60_000]
    offset = None
    for k, late in enumerate(lateness_ns):
        src.push(59, r.due_ns(59 * (k + 1) - 1) + late)
        assert r.read_hop() == HOP_FULL and r.available_ns == r.due_ns(r.last_sample) + late
        offset = late if offset is None else min(late, offset + ARRIVAL_DRIFT_NS)
        # a late hop does not make the next one expected later (beyond the clocks' drift)
        assert r.hop_due_ns() == r.due_ns(r.next_index + 58) + offset
    assert offset == 50_000 + 4 * ARRIVAL_DRIFT_NS  # the 5 ms late hop moved it 2 us
    src.push(59)  # a hop waiting already: it is due now
    t0 = time.perf_counter_ns()
    assert r.ready() and t0 <= r.hop_due_ns() <= time.perf_counter_ns()


def test_the_wait_ends_when_samples_arrive_and_spin_never_waits() -> None:
    src = DeviceDouble(SyntheticSource("bsi", seed=3))
    r = _reader(src)
    r.start(time.perf_counter_ns())
    src.push(59)
    assert r.read_hop() == HOP_FULL
    r._arrival_offset_ns += 60_000 * MS  # the next hop "expected" a minute from now
    timer = threading.Timer(0.05, src.push, args=(59,))
    timer.start()
    r.wait(lead_ns=1 * MS)  # returns when the samples arrive, not a minute later
    timer.join()
    assert r.ready()
    r.wait(spin=True)  # a device's hop is read by read_hop, which waits on the source
    assert r.read_hop() == HOP_FULL and r.next_index == 118


def test_a_device_source_that_cannot_say_whether_samples_wait_is_not_anticipated() -> None:
    src = DeviceDouble(SyntheticSource("bsi", seed=3), anticipation=False)
    r = _reader(src)
    assert not r.device_paced and not r.paced and not r.ready()


def test_a_device_paced_loop_warms_before_a_hop_but_never_while_one_waits(
        small_bsi, bsi_decoder_file) -> None:
    src = DeviceDouble(SyntheticSource("bsi", seed=5))
    s = Session(small_bsi, RunOptions(fast=False, decoder_path=bsi_decoder_file,
                                      duration_s=10.0, realtime_priority=None))
    loop = s.open(source=src)
    shadow = loop._shadow
    assert shadow is not None  # built at warm-up for the device-paced loop too
    s.supervisor.arm(s.clock.now_ns())
    loop.reader.start(time.perf_counter_ns())
    for _ in range(3):  # hops already waiting: read at once, no warming
        src.push(59)
        before = shadow.runs
        assert loop._one_cycle()
        assert shadow.runs == before
    assert loop.stall_cycles == 0 and loop.samples_lost == 0
    # the next hop is expected 20 ms from now and arrives later: the loop warms its caches
    # shortly before it is expected, then waits for it
    r = loop.reader
    r._arrival_offset_ns = time.perf_counter_ns() + 20 * MS - r.due_ns(r.next_index + 58)
    timer = threading.Timer(0.06, src.push, args=(59,))
    timer.start()
    before = shadow.runs
    assert loop._one_cycle()
    timer.join()
    assert shadow.runs > before
    assert loop.cycle == 4 and loop.stall_cycles == 0 and loop.samples_lost == 0
    rec = loop.record
    assert rec["available_ns"][0] == loop.reader.available_ns  # the arrival, as before
    assert rec["e2e_ns"][0] == rec["sent_ns"][0] - rec["available_ns"][0]
    loop.stimulator.stop()
