"""``SampleQueue``: the link's samples between the reader thread and the control loop.

The reader thread :meth:`~SampleQueue.put` s every DATA frame's samples (host indices,
microvolts); the loop copies them out with :meth:`~SampleQueue.read_into`, which never spans
a gap (a block ends where a lost frame begins, so the gap stays visible in ``first_index``).

The stale-frame rule: the control loop's first read drops whatever was queued before it,
and frames still in the port's buffer, arriving more than :data:`STALE_FRAME_US` later than
the stream's fastest frame (device acquisition time vs host arrival time; the clocks'
offset cancels), are skipped until a fresh one arrives. Samples from before the loop
started are history, not input. Both are counted in ``frames_discarded_at_start``.

Bounded: beyond ``max_samples`` (``LinkSettings.queue_s`` of samples) the oldest frames are
dropped and counted in ``samples_overflowed``.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable

import numpy as np

__all__ = ["SampleQueue", "STALE_FRAME_US"]

#: At the loop's first read, a frame that reached the host this much later than the stream's
#: fastest frame had waited in the port's buffer (e.g. while the process locked its memory):
#: it is history, not input, and is skipped (us).
STALE_FRAME_US = 10_000


class _Chunk:
    __slots__ = ("first", "data", "labels", "received_ns", "off")

    def __init__(self, first: int, data: np.ndarray, labels: np.ndarray, received_ns: int):
        self.first = first
        self.data = data
        self.labels = labels
        self.received_ns = received_ns
        self.off = 0


class SampleQueue:
    """Frames of samples waiting for the control loop (thread-safe).

    Attributes
    ----------
    started : bool
        The consumer (the control loop) has read once: from then on, frames are input.
    counters : dict of str to int
        ``frames_discarded_at_start`` (queued before, or stale at, the first read) and
        ``samples_overflowed`` (dropped because nobody read them).
    """

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._queue: deque[_Chunk] = deque()
        self._queued_samples = 0
        self._skip_stale = False
        self._min_age_us = 2**62
        self.started = False
        self.counters: dict[str, int] = {"frames_discarded_at_start": 0,
                                         "samples_overflowed": 0}

    def __len__(self) -> int:
        return self._queued_samples

    def restart_clock(self) -> None:
        """The device rebooted: its clock restarted, so forget the fastest frame's age."""
        self._min_age_us = 2**62

    def put(self, first: int, data: np.ndarray, labels: np.ndarray, received_ns: int,
            acquired_us: int, max_samples: int) -> bool:
        """Queue one frame's samples; False when it was skipped as stale.

        Parameters
        ----------
        first : int
            Host stream index of the first sample.
        data : ndarray, shape (n_samples, n_channels), float64
            Samples, uV (kept, not copied).
        labels : ndarray, shape (n_samples,), int8
        received_ns : int
            Host time the frame arrived, ns (``time.perf_counter_ns``).
        acquired_us : int
            Device time its last sample was acquired, us.
        max_samples : int
            Samples kept at most; the oldest whole frames beyond it are dropped.
        """
        # how much later than the fastest frame so far this one arrived (device clock vs
        # host clock; the offset cancels): the first read skips frames that are history
        age = received_ns // 1000 - acquired_us
        self._min_age_us = min(self._min_age_us, age)
        stale = age - self._min_age_us > STALE_FRAME_US
        with self._cond:
            if self._skip_stale:
                if stale:
                    self.counters["frames_discarded_at_start"] += 1
                    return False
                self._skip_stale = False
            self._queue.append(_Chunk(first, data, labels, received_ns))
            self._queued_samples += data.shape[0]
            while self._queued_samples > max_samples and len(self._queue) > 1:
                old = self._queue.popleft()
                left = old.data.shape[0] - old.off
                self._queued_samples -= left
                self.counters["samples_overflowed"] += left
            self._cond.notify_all()
        return True

    def ready(self) -> bool:
        """True when the consumer has started and samples are waiting (never blocks)."""
        return self.started and self._queued_samples > 0

    def wait_ready(self, timeout_s: float, interrupted: Callable[[], bool] = lambda: False
                   ) -> bool:
        """Wait up to ``timeout_s`` (s) for samples without taking any; True when some are
        waiting. Before the consumer's first read nothing counts (it will be dropped)."""
        if not self.started:
            return False
        deadline = time.monotonic() + timeout_s
        with self._cond:
            while not self._queue:
                if interrupted():
                    return False
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._cond.wait(left)
            return True

    def wake(self) -> None:
        """Wake a waiting reader (the link failed or closed: it checks ``interrupted``)."""
        with self._cond:
            self._cond.notify_all()

    def read_into(self, out: np.ndarray, labels: np.ndarray, max_samples: int,
                  timeout_s: float, interrupted: Callable[[], bool] = lambda: False
                  ) -> tuple[int, int, int]:
        """Copy up to ``max_samples`` consecutive samples into ``out`` and ``labels``.

        Waits up to ``timeout_s`` (s) for the first sample, or until ``interrupted()``
        (checked at every wake-up). Never spans a gap. The first call drops everything
        queued before it and starts skipping stale frames.

        Returns
        -------
        n : int
            Samples copied (0: none arrived in time).
        first_index : int
            Host stream index of ``out[0]``.
        received_ns : int
            Host arrival time of the frame holding the block's last sample, ns.
        """
        deadline = time.monotonic() + timeout_s
        with self._cond:
            if not self.started:
                # the control loop starts now: samples queued before it are history, and so
                # are frames still in the port's buffer (arriving later than the stream's
                # fastest frame by more than STALE_FRAME_US)
                self.started = True
                self._skip_stale = True
                self.counters["frames_discarded_at_start"] += len(self._queue)
                self._queue.clear()
                self._queued_samples = 0
            while not self._queue:
                if interrupted():
                    break
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self._cond.wait(left)
            fill = 0
            first = 0
            recv = 0
            while self._queue and fill < max_samples:
                ch = self._queue[0]
                start = ch.first + ch.off
                if fill and start != first + fill:
                    break  # a gap: the next block starts there
                if not fill:
                    first = start
                k = min(max_samples - fill, ch.data.shape[0] - ch.off)
                out[fill:fill + k] = ch.data[ch.off:ch.off + k]
                labels[fill:fill + k] = ch.labels[ch.off:ch.off + k]
                fill += k
                ch.off += k
                recv = ch.received_ns
                self._queued_samples -= k
                if ch.off >= ch.data.shape[0]:
                    self._queue.popleft()
            return fill, first, recv
