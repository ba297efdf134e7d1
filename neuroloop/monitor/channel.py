"""The live monitor's channel: one shared-memory block the loop writes and the server reads.

The loop (:class:`~.publisher.MonitorPublisher`) never waits for the monitor: it only copies
into preallocated shared memory and bumps counters; there is no lock, no queue that can fill,
no system call. The web server runs in its own process and reads at its own pace; a reader
that falls behind simply skips (and counts) what was overwritten.

Layout (all little-endian, offsets fixed at creation from the run's sizes)::

    ctl        int64[32]                     counters (CTL_* below)
    slot_seq   int64[N_SLOTS]                seqlock word of each record slot
    records    N_SLOTS x cycle_dtype         the last N_SLOTS cycle records (raw bytes)
    samples    SAMPLE_ROWS x n_sel float64   ring of the selected channels' raw samples
    events     N_EVENT_SLOTS x EVENT_BYTES   ring of the latest events (UTF-8 JSON, 0-padded)
    meta       meta_bytes                    the run's description for the page (JSON)

A record slot is written as: ``slot_seq = -1``; copy; ``slot_seq = seq``. A reader copies the
slot and keeps it only when ``slot_seq`` read before and after the copy both equal the
sequence number it wanted (a seqlock; x86-64 keeps stores in order, and a torn display frame
is the worst a weaker machine could show: the E-STOP path does not use the rings).

The server writes only its own counters and the E-STOP request (``CTL_ESTOP_REQUESTS``,
``CTL_ESTOP_REQUEST_NS``); the loop's operator provider polls them every cycle.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from multiprocessing import shared_memory
from typing import Any

import numpy as np

__all__ = ["ChannelLayout", "MonitorChannel", "N_SLOTS", "N_EVENT_SLOTS", "EVENT_BYTES",
           "CTL_MAGIC", "MAGIC"]

MAGIC = 0x4E4C4D4F4E303031  # "NLMON001"
N_SLOTS = 64
N_EVENT_SLOTS = 64
EVENT_BYTES = 320
_CTL_WORDS = 32

# -- control words --------------------------------------------------------------------------
CTL_MAGIC = 0
CTL_CYCLES = 1             # records published (the next record's sequence number)
CTL_SAMPLES = 2            # sample rows written into the ring, in total
CTL_EVENTS = 3             # events written, in total
CTL_MISSES = 4             # deadline misses the publisher has seen
CTL_CLOSED = 5             # 1 once the loop stopped
CTL_ESTOP_REQUESTS = 6     # written by the server: E-STOP requests received from pages
CTL_ESTOP_REQUEST_NS = 7   # written by the server: CLOCK_MONOTONIC ns of the latest request
CTL_ESTOP_SEEN = 8         # written by the loop: requests it has applied
CTL_ESTOP_CYCLE = 9        # written by the loop: cycle that applied the latest request
CTL_ESTOP_LATENCY_NS = 10  # written by the loop: request -> zero command handed over, ns
CTL_ESTOP_AMPLITUDE = 11   # written by the loop: 1 when that cycle's command was all zero
CTL_SERVER_CLIENTS = 12    # written by the server: clients connected now
CTL_SERVER_ACCEPTED = 13   # ... clients accepted in total
CTL_SERVER_DROPPED = 14    # ... clients dropped for stalling (no acknowledgement in time)
CTL_SERVER_FRAMES = 15     # ... frames sent in total
CTL_SERVER_HELD = 16       # ... frames not sent to a client that had not caught up
CTL_SERVER_LAPPED = 17     # ... cycle records overwritten before the server read them
CTL_SERVER_PID = 18
CTL_META_BYTES = 19
CTL_PUBLISH_MAX_NS = 20    # written by the loop: longest on_cycle+on_samples copy, ns


@dataclass(frozen=True)
class ChannelLayout:
    """Offsets and sizes of one channel (both processes derive it from the same numbers)."""

    record_bytes: int
    n_selected: int
    sample_rows: int
    meta_bytes: int

    @property
    def offsets(self) -> dict[str, int]:
        o: dict[str, int] = {}
        pos = 0
        for name, size in (("ctl", 8 * _CTL_WORDS), ("slot_seq", 8 * N_SLOTS),
                           ("records", N_SLOTS * self.record_bytes),
                           ("samples", 8 * self.sample_rows * max(self.n_selected, 1)),
                           ("events", N_EVENT_SLOTS * EVENT_BYTES),
                           ("meta", self.meta_bytes)):
            o[name] = pos
            pos += (size + 63) // 64 * 64
        o["total"] = pos
        return o

    def to_args(self) -> list[str]:
        return [str(self.record_bytes), str(self.n_selected), str(self.sample_rows),
                str(self.meta_bytes)]

    @classmethod
    def from_args(cls, values: list[str]) -> ChannelLayout:
        a, b, c, d = (int(v) for v in values)
        return cls(a, b, c, d)


class MonitorChannel:
    """Views into one shared-memory block.

    Parameters
    ----------
    layout : ChannelLayout
    name : str or None
        Attach to an existing block (the server); None creates one (the loop's publisher).
    """

    def __init__(self, layout: ChannelLayout, name: str | None = None) -> None:
        self.layout = layout
        off = layout.offsets
        self.owner = name is None
        if name is None:
            self.shm = shared_memory.SharedMemory(create=True, size=off["total"])
            _OWNED.add(self.shm.name)
        else:
            # track=False: the server must not unlink the loop's block when it exits
            self.shm = _attach(name)
        buf = self.shm.buf
        self.ctl = np.ndarray((_CTL_WORDS,), np.int64, buf, off["ctl"])
        self.slot_seq = np.ndarray((N_SLOTS,), np.int64, buf, off["slot_seq"])
        self.records = np.ndarray((N_SLOTS, layout.record_bytes), np.uint8, buf, off["records"])
        self.samples = np.ndarray((layout.sample_rows, max(layout.n_selected, 1)), np.float64,
                                  buf, off["samples"])
        self.events = np.ndarray((N_EVENT_SLOTS, EVENT_BYTES), np.uint8, buf, off["events"])
        self.meta_buf = np.ndarray((layout.meta_bytes,), np.uint8, buf, off["meta"])
        if self.owner:
            # touch every page now, not in the loop's first cycles (tmpfs faults pages in
            # lazily: a few microseconds each, and the sample ring alone can be megabytes)
            np.ndarray((off["total"],), np.uint8, buf)[:] = 0
            self.ctl[:] = 0
            self.slot_seq[:] = -1
            self.ctl[CTL_MAGIC] = MAGIC

    @property
    def name(self) -> str:
        return self.shm.name

    # -- writer side (the loop) ------------------------------------------------------------------
    def write_meta(self, meta: dict[str, Any]) -> None:
        data = json.dumps(meta).encode("utf-8")
        if len(data) > self.meta_buf.shape[0]:
            raise ValueError("monitor meta larger than its region")
        self.meta_buf[:len(data)] = np.frombuffer(data, np.uint8)
        self.ctl[CTL_META_BYTES] = len(data)

    # -- reader side (the server) -----------------------------------------------------------------
    def read_meta(self) -> dict[str, Any]:
        n = int(self.ctl[CTL_META_BYTES])
        return dict(json.loads(bytes(self.meta_buf[:n]).decode("utf-8"))) if n else {}

    def read_record(self, seq: int, out: np.ndarray) -> bool:
        """Copy record ``seq`` into ``out`` (uint8, record_bytes); False when it was
        overwritten (or is being written)."""
        slot = seq % N_SLOTS
        if int(self.slot_seq[slot]) != seq:
            return False
        out[:] = self.records[slot]
        return int(self.slot_seq[slot]) == seq

    def read_event(self, seq: int) -> str | None:
        raw = bytes(self.events[seq % N_EVENT_SLOTS])
        return raw.rstrip(b"\0").decode("utf-8", "replace") or None

    def close(self) -> None:
        # drop our views first: SharedMemory.close refuses while numpy exports the buffer
        for attr in ("ctl", "slot_seq", "records", "samples", "events", "meta_buf"):
            setattr(self, attr, None)
        try:
            self.shm.close()
        except BufferError:  # pragma: no cover - a view still alive somewhere
            return
        if self.owner:
            _OWNED.discard(self.shm.name)
            try:
                self.shm.unlink()
            except FileNotFoundError:
                pass


#: blocks this process created (and will unlink); attaching to one of them in the same
#: process (tests) must leave its resource-tracker registration alone
_OWNED: set[str] = set()


def _attach(name: str) -> shared_memory.SharedMemory:
    try:
        return shared_memory.SharedMemory(name=name, track=False)  # type: ignore[call-arg]
    except TypeError:  # Python < 3.13 has no track=: keep the resource tracker away from it
        from multiprocessing import resource_tracker

        shm = shared_memory.SharedMemory(name=name)
        if name in _OWNED or "/" + name.lstrip("/") in _OWNED:
            return shm
        try:
            resource_tracker.unregister(shm._name, "shared_memory")  # type: ignore[attr-defined]
        except Exception:  # noqa: BLE001
            pass
        return shm
