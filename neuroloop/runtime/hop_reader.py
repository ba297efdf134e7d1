"""Acquisition for the control loop: whole hops of samples, paced, with gaps counted.

:class:`HopReader` owns the hop buffer and everything about the stream position: which sample
comes next, whether a gap opened, when the hop's last sample became available, and how many
samples were lost. The loop asks it for one hop per cycle.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np

from ..acquisition.base import NO_LABEL, BaseSource, Block
from .clock import Clock

__all__ = ["HopReader", "HOP_FULL", "HOP_STALLED", "HOP_EXHAUSTED"]

_NS = 1_000_000_000

HOP_FULL, HOP_STALLED, HOP_EXHAUSTED = 1, -1, 0

#: A device's arrival phase (see :meth:`HopReader.hop_due_ns`) may drift later by this much
#: per hop (ns): 100 ppm of a 20 ms hop, far above two crystals' disagreement, far below a
#: scheduling delay.
ARRIVAL_DRIFT_NS = 2_000
_NO_OFFSET = -(2**62)

#: on_samples(data (n, n_channels), first_index): every block read, for the listeners.
SamplesCallback = Callable[[np.ndarray, int], None]


class HopReader:
    """Reads one hop of ``hop_samples`` at a time from ``source`` into a preallocated buffer.

    Parameters
    ----------
    source : BaseSource
    clock : Clock
    hop_samples : int
    sampling_rate_hz : float
    read_timeout_s : float
        How long one hop may take to arrive before the cycle counts as a stall, s.
    on_samples : callable
        Called with every block read (the loop hands it to its listeners).

    Attributes
    ----------
    hop : ndarray, shape (hop_samples, n_channels), float64
        The current hop (overwritten by the next).
    labels : ndarray, shape (hop_samples,), int8
        Ground-truth labels of the current hop (``NO_LABEL`` where unknown).
    next_index : int
        Stream index of the next sample expected; the current hop ends at ``next_index - 1``.
    available_ns : int
        When the current hop's last sample became available (clock ns).
    gap : bool
        True when the current hop follows a gap in the stream.
    samples_lost : int
        Samples skipped by gaps so far.
    """

    def __init__(self, source: BaseSource, clock: Clock, *, hop_samples: int,
                 sampling_rate_hz: float, read_timeout_s: float,
                 on_samples: SamplesCallback) -> None:
        self.source = source
        self.clock = clock
        self.n_hop = int(hop_samples)
        self.fs = float(sampling_rate_hz)
        self.read_timeout_s = float(read_timeout_s)
        self.on_samples = on_samples
        #: a live run whose samples come from a device that can say, without consuming
        #: them, whether samples are waiting (``samples_ready``/``wait_for_samples``): the
        #: loop anticipates each hop's arrival, one hop period after the previous one's
        self.device_paced = (not clock.simulated and source.paced_by_device
                             and hasattr(source, "wait_for_samples"))
        #: the loop knows when the next hop is due and waits for it in idle time: paced by
        #: the wall clock (samples that do not arrive on their own), or by such a device
        self.paced = not clock.simulated and (not source.paced_by_device or self.device_paced)
        #: told when the reader is about to wait (a producer refills then); test doubles
        #: and wrappers may lack the hook
        self._idle: Callable[[], None] | None = getattr(source, "idle", None)
        n_ch = source.info.n_channels
        self.hop = np.zeros((self.n_hop, n_ch), dtype=np.float64)
        self.labels = np.full(self.n_hop, NO_LABEL, dtype=np.int8)
        self._fill = 0
        self.next_index = 0
        self._started = False
        self.gap = False
        self.available_ns = 0
        self.t0_ns = 0
        self.samples_lost = 0
        self._arrival_offset_ns = _NO_OFFSET

    def start(self, t0_ns: int) -> None:
        """Sample 0 is due at ``t0_ns`` + one sample period (paced sources)."""
        self.t0_ns = int(t0_ns)

    @property
    def last_sample(self) -> int:
        """Stream index of the current hop's last sample."""
        return self.next_index - 1

    @property
    def true_state(self) -> int:
        """Ground truth at the current hop's last sample (``NO_LABEL`` when unknown)."""
        return int(self.labels[self.n_hop - 1])

    def due_ns(self, sample_index: int) -> int:
        """Time the sample with stream index ``sample_index`` is due (paced sources)."""
        return self.t0_ns + int(round((sample_index + 1) * _NS / self.fs))

    def ready(self) -> bool:
        """True when a device-paced source has samples waiting (the hop may be there)."""
        return self.device_paced and bool(self.source.samples_ready())  # type: ignore[attr-defined]

    def wait(self, lead_ns: int = 0, *, spin: bool = False) -> None:
        """Paced sources: sleep until ``lead_ns`` before the hop's last sample is due (never
        part of a stage); with ``spin``, busy-wait instead of sleeping.

        A device-paced source: wait until ``lead_ns`` before the hop is expected, or until
        samples arrive, whichever is first. With ``spin``, return at once: :meth:`read_hop`
        blocks on the source and the reader thread's samples wake it (a Python spin would
        hold the interpreter lock the reader thread needs to decode them; polling with short
        sleeps measured worse on the 2-core VM, 15 s binned runs: e2e p99 1345 vs 1054 us)."""
        if self.device_paced:
            if spin:
                return  # read_hop waits on the source itself, woken by the samples
            left = self.hop_due_ns() - lead_ns - self.clock.now_ns()
            if left > 0:
                self.source.wait_for_samples(left / _NS)  # type: ignore[attr-defined]
            return
        if self.paced:
            if self._idle is not None:
                self._idle()  # a producer refills while we wait, never while we compute
            if spin:
                self.clock.spin_until(self.hop_due_ns() - lead_ns)
            else:
                self.clock.sleep_until(self.hop_due_ns() - lead_ns)

    def hop_due_ns(self) -> int:
        """Time the last sample of the hop being filled is due (paced sources).

        A device-paced source: when it is expected to arrive, one hop period after the
        previous hop became available, phase-locked to the earliest arrivals seen (a late
        frame does not push the next expectation later); now, before the first hop or when
        samples are waiting already."""
        if self.device_paced:
            if not self._started or self.ready():
                return self.clock.now_ns()
            return self._arrival_offset_ns + self.due_ns(self.next_index + self.n_hop - self._fill - 1)
        return self.due_ns(self.next_index + self.n_hop - self._fill - 1)

    def read_hop(self) -> int:
        """Fill the hop buffer: :data:`HOP_FULL`, :data:`HOP_STALLED` or :data:`HOP_EXHAUSTED`."""
        self.gap = False
        deadline = time.perf_counter_ns() + int(self.read_timeout_s * _NS)
        source = self.source
        while self._fill < self.n_hop:
            remaining = (deadline - time.perf_counter_ns()) / _NS
            if remaining <= 0:
                return HOP_STALLED
            block = source.read(self.n_hop - self._fill, timeout=remaining)
            if block is None:
                if source.exhausted:
                    return HOP_EXHAUSTED
                if self.clock.simulated and not source.paced_by_device:
                    return HOP_STALLED
                continue
            self._take(block)
        self._fill = 0
        return HOP_FULL

    def _take(self, block: Block) -> None:
        """Append a block read from the source to the hop (at most what the hop lacks)."""
        n = block.n_samples
        if self._started and block.first_index != self.next_index:
            lost = block.first_index - self.next_index
            if lost > 0:
                self.samples_lost += lost
            self.gap = True
            if self._fill:  # a hop never spans a gap: restart it at the new block
                self._fill = 0
        self._started = True
        self.next_index = block.first_index + n
        self.hop[self._fill:self._fill + n] = block.data
        if block.labels.shape[0] == n:
            self.labels[self._fill:self._fill + n] = block.labels
        else:
            self.labels[self._fill:self._fill + n] = NO_LABEL
        self._fill += n
        # a device's receive time is when the sample became available; any other
        # source is available when it is due (a recording's stored times belong to
        # another run's clock)
        self.available_ns = (block.received_ns
                             if self.source.paced_by_device and block.received_ns
                             else self.due_ns(self.next_index - 1))
        if self.device_paced:
            self._track_arrival()
        self.on_samples(block.data, block.first_index)

    def _track_arrival(self) -> None:
        """Phase of the device's arrivals on the sample schedule: the earliest offset of
        ``available_ns`` from ``due_ns(last sample)`` seen, allowed to drift later by
        :data:`ARRIVAL_DRIFT_NS` per hop (the device's and the host's clocks differ)."""
        offset = self.available_ns - self.due_ns(self.next_index - 1)
        prev = self._arrival_offset_ns
        self._arrival_offset_ns = offset if prev == _NO_OFFSET \
            else min(offset, prev + ARRIVAL_DRIFT_NS)

    def drop_hop(self) -> bool:
        """Injected stall: the hop's samples never reach the controller (a visible gap).

        Returns False when the source ran out on the way.
        """
        if self.paced and not self.device_paced:
            self.clock.sleep_until(self.due_ns(self.next_index + self.n_hop - 1))
        self._fill = 0  # the samples of a hop cut by the stall are not joined to later ones
        need = self.n_hop
        while need > 0:
            block = self.source.read(need, timeout=self.read_timeout_s)
            if block is None:
                return False
            self._started = True
            self.next_index = block.first_index + block.n_samples
            need -= block.n_samples
        return True

    def skip_to(self, first_sample: int) -> None:
        """Replay of a stalled cycle: the recorded run dropped the hop at ``first_sample``.

        A stall before the first block (a device that had not streamed yet: ``first_sample``
        is ``-hop``) leaves the reader unstarted, as it was live, so the first block is not a
        gap whatever its stream index.

        A live read that timed out in the middle of a hop kept the samples it had received
        (they were recorded) and went on filling the hop in the next cycle: when the source
        says where its next sample is (``next_sample_index()``, a replay), the samples up to
        where the live reader stood are read into the hop as they were live, and only what
        the recording lacks (a dropped hop) is skipped."""
        target = int(first_sample) + self.n_hop
        upcoming = getattr(self.source, "next_sample_index", None)
        while upcoming is not None and self.next_index < target and self._fill < self.n_hop:
            nxt = upcoming()
            if nxt is None or nxt >= target or (nxt < self.next_index and self._started):
                break
            block = self.source.read(min(target - nxt, self.n_hop - self._fill),
                                     timeout=self.read_timeout_s)
            if block is None:
                break
            self._take(block)
        if self.next_index != target:
            self._fill = 0  # skipped samples: as drop_hop, the hop starts afresh
            self.next_index = target
        self._started = self._started or self.next_index != 0
