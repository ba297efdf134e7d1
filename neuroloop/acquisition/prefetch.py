"""Produce a deterministic sample stream ahead of time, in a thread of its own.

A simulated patient costs more per hop than the whole controller. Run inside the measured
path, it would make end-to-end latency measure the simulation, not the controller. A
:class:`ChunkProducer` runs the generator in a background thread (its kernel is compiled
``nogil``, so the two really run in parallel) into a ring of preallocated slots, so that when a
hop is due it is simply there, as it would be from hardware.

The stream does not depend on the thread: the producer calls the same generator in the same
order with the same chunk size, and the generator's output does not depend on how it is cut
into chunks. Errors in the thread are re-raised in the reader (mne-lsl's convention).

A patient that reacts to stimulation cannot be produced far ahead: its next samples depend on
the command of the hop being computed. Such a source gives its fill function a
:class:`StimulationHorizon` and waits on it before producing a chunk, so the producer never
makes a sample whose stimulation it does not know yet (the stream stays a function of the
commands and their sample indices, whatever the thread's timing).
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable

import numpy as np

__all__ = ["ChunkProducer", "StimulationHorizon"]

#: fill(out (chunk, n_channels) float64, labels (chunk,) int8) -> samples written (0 = end).
FillFn = Callable[[np.ndarray, np.ndarray], int]


class ChunkProducer:
    """A ring of ``depth`` preallocated chunks filled by a background thread.

    Parameters
    ----------
    fill : callable
        ``fill(out, labels) -> n``: writes the next ``n <= chunk_samples`` samples of the
        stream into ``out[:n]`` and ``labels[:n]``; 0 marks the end of a finite stream.
    first_index : int
        Stream index of the first sample ``fill`` will write.
    n_channels : int
    chunk_samples : int
        Samples per chunk (the loop's hop).
    depth : int
        Chunks produced ahead (at most; the producer waits while the ring is full).

    Notes
    -----
    One consumer thread calls :meth:`take` and :meth:`release`; nothing is allocated per chunk.
    Free and filled slots are counted with tokens in two ``queue.SimpleQueue`` (implemented
    in C): a take or release of a ready chunk runs no Python-level lock code. A
    ``threading.Semaphore`` (pure Python, a Condition around a lock) cost the paced loop about
    16 us per take right after its idle wait, when that code was cold in the caches.
    """

    def __init__(self, fill: FillFn, *, first_index: int, n_channels: int, chunk_samples: int,
                 depth: int = 8) -> None:
        if chunk_samples < 1 or depth < 2:
            raise ValueError("chunk_samples must be >= 1 and depth >= 2")
        self._fill = fill
        self.chunk_samples = int(chunk_samples)
        self.depth = int(depth)
        self.data = np.zeros((depth, chunk_samples, n_channels), dtype=np.float64)
        self.labels = np.zeros((depth, chunk_samples), dtype=np.int8)
        self.n = np.zeros(depth, dtype=np.int64)
        self.first = np.zeros(depth, dtype=np.int64)
        self._next_first = int(first_index)
        self._free: queue.SimpleQueue[None] = queue.SimpleQueue()  # a token per free slot
        for _ in range(depth):
            self._free.put(None)
        self._filled: queue.SimpleQueue[None] = queue.SimpleQueue()  # a token per filled slot
        self._stop = threading.Event()
        self._error: BaseException | None = None
        self._write = 0  # next slot the producer fills
        self._read = 0   # next slot the consumer takes
        self._produced = 0  # chunks filled so far (written by the producer only)
        self._taken = 0     # chunks taken so far (written by the consumer only)
        self._ended = False
        self._thread = threading.Thread(target=self._run, name="neuroloop-prefetch", daemon=True)

    def start(self) -> ChunkProducer:
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop the thread (idempotent); chunks not yet taken are dropped."""
        self._stop.set()
        self._free.put(None)  # wake a producer waiting for a free slot
        if self._thread.is_alive() and threading.current_thread() is not self._thread:
            self._thread.join(timeout=5.0)

    # -- producer ---------------------------------------------------------------------------
    def _run(self) -> None:
        try:
            while not self._stop.is_set():
                # block without a timeout: an idle producer must not wake (or allocate)
                # periodically; stop() puts a token to end the wait
                self._free.get()
                if self._stop.is_set():
                    return
                slot = self._write
                n = int(self._fill(self.data[slot], self.labels[slot]))
                self.n[slot] = n
                self.first[slot] = self._next_first
                self._next_first += n
                self._write = (slot + 1) % self.depth
                self._produced += 1
                self._filled.put(None)
                if n == 0:
                    return  # end of a finite stream: the consumer sees an empty chunk
        except BaseException as exc:  # noqa: BLE001 - handed to the reader
            self._error = exc
            self.n[self._write] = 0
            self._produced += 1
            self._filled.put(None)

    # -- consumer ---------------------------------------------------------------------------
    def take(self, timeout: float | None) -> int:
        """Index of the next filled slot, or -1 on timeout or at the end of the stream.

        Raises
        ------
        BaseException
            Whatever the producer thread raised.
        """
        if self._ended:
            return -1
        try:
            self._filled.get(timeout=timeout)
        except queue.Empty:
            return -1
        self._taken += 1
        if self._error is not None:
            self._ended = True
            raise self._error
        slot = self._read
        if self.n[slot] == 0:
            self._ended = True
            return -1
        self._read = (slot + 1) % self.depth
        return slot

    def peek(self) -> int:
        """The slot :meth:`take` returns next if it is filled already with samples, else -1
        (never waits; for cache warming: the consumer may read the slot, never write it)."""
        if self._ended or self._error is not None or not self.ready:
            return -1
        slot = self._read
        return slot if self.n[slot] > 0 else -1

    def release(self) -> None:
        """Hand the oldest taken slot back to the producer (after its samples were copied
        out); slots are released in the order they were taken."""
        self._free.put(None)

    @property
    def filled_count(self) -> int:
        """Chunks filled and not yet taken (for tests and diagnostics)."""
        return self._filled.qsize()

    @property
    def ready(self) -> bool:
        """True when :meth:`take` would not wait: a filled chunk (or the end of the stream,
        or the producer's error) is there. For a consumer that must not block (firmware_sim
        answers its host while its patient model catches up)."""
        return self._ended or self._produced > self._taken

    @property
    def ended(self) -> bool:
        """True once the end of a finite stream (or an error) was taken."""
        return self._ended


class StimulationHorizon:
    """How far a patient that reacts to stimulation may be produced ahead.

    Commands reach the patient (:meth:`~neuroloop.acquisition.base.BaseSource.stimulation_applied`)
    with non-decreasing ``from_sample``; a later command may still start at the latest
    ``from_sample`` (a cycle without fresh samples repeats it), so every sample *below* the
    latest ``from_sample`` has its stimulation settled, and nothing at or beyond it. The
    producer calls :meth:`wait_for` before making samples ``[first, stop)``; the source calls
    :meth:`advance` from ``stimulation_applied``.

    Parameters
    ----------
    limit : int
        Samples below this index are settled before any command arrives (the first command
        the loop sends starts at :func:`~neuroloop.acquisition.base.stimulation_effect_sample`
        of its first hop).
    """

    def __init__(self, limit: int) -> None:
        self._limit = int(limit)
        self._cond = threading.Condition()
        self._closed = False

    @property
    def limit(self) -> int:
        """Samples below this index may be produced."""
        return self._limit

    def advance(self, from_sample: int) -> None:
        """A command starting at ``from_sample`` is known (called by the reader's thread)."""
        if from_sample > self._limit:
            with self._cond:
                self._limit = int(from_sample)
                self._cond.notify()

    def wait_for(self, stop: int) -> bool:
        """Block until samples below ``stop`` may be produced; False once :meth:`close` was
        called (the producer then ends its chunk)."""
        if stop <= self._limit:
            return True
        with self._cond:
            while stop > self._limit and not self._closed:
                self._cond.wait()
            return not self._closed

    def close(self) -> None:
        """Release a producer waiting in :meth:`wait_for` (the source is closing)."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()
