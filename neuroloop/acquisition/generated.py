"""The block and prefetch machinery shared by the generated (simulated) patients.

:class:`GeneratedSource` is the base of :class:`~.synthetic.SyntheticSource`,
:class:`~.lfp_patient.LfpPatientSource` and :class:`~.intracortical.IntracorticalSource`. It
owns the preallocated :class:`~.base.Block` views a direct read returns, and the
:class:`~.prefetch.ChunkProducer` ring that :meth:`start_prefetch` runs in a thread: reading
a produced chunk, handing chunks back (:meth:`GeneratedSource.idle`), stopping the thread.
A subclass keeps its model: ``_generate(n, out, labels)`` (the next ``n`` samples, for the
default direct read and :meth:`GeneratedSource._fill_next`), ``warmup``, ``start_prefetch``
(which calls :meth:`GeneratedSource._start_producer`), metrics and stimulation hooks.

Nothing here allocates per read: a direct read re-slices its buffer only when the block size
changes, and a full produced chunk is returned through views built when prefetching starts.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable

import numpy as np

from ..errors import DeviceError
from .base import BaseSource, Block
from .prefetch import ChunkProducer

__all__ = ["GeneratedSource"]


class GeneratedSource(BaseSource):
    """A source whose samples a seeded model generates on demand, optionally ahead of time.

    Subclasses call ``super().__init__()`` first, then :meth:`_allocate_blocks` once they know
    their block size and channel count, and set ``_total`` (samples of a finite stream, or
    None) and ``_next_index`` (next sample the generator makes) when they use the default
    direct read.

    Attributes
    ----------
    max_block_samples : int
        Largest block a direct :meth:`read` returns (set by the subclass).
    """

    max_block_samples: int

    #: Seconds a prefetching read waits for the producer before calling its thread stuck.
    _PREFETCH_WAIT_S: float = 10.0
    #: How the stuck-thread message names the patient ("the <name> produced nothing ...").
    _PATIENT_NAME: str = "simulated patient"
    #: Appended to the stuck-thread message (e.g. a reason specific to the model).
    _STUCK_HINT: str = ""

    def __init__(self) -> None:
        super().__init__()
        self._total: int | None = None
        self._next_index = 0
        self._buf = np.zeros((0, 0))
        self._lab = np.zeros(0, np.int8)
        self._block = Block(data=self._buf, first_index=0, labels=self._lab)
        self._view_n = 0
        self._warm = False
        # prefetch (start_prefetch): a producer thread generates chunks ahead of the reader
        self._producer: ChunkProducer | None = None
        self._release_when_idle = False
        self._pf_pending = 0
        self._pf_views: list[tuple[np.ndarray, np.ndarray]] = []
        self._pf_slot = -1
        self._pf_off = 0
        self._pf_block = Block(data=self._buf, first_index=0, labels=self._lab)
        self._read_index = 0

    def _allocate_blocks(self, n_rows: int, n_channels: int) -> None:
        """Allocate the direct-read buffer (``n_rows`` x ``n_channels``) and its blocks.

        Parameters
        ----------
        n_rows : int
            Rows of the buffer (the subclass sets :attr:`max_block_samples`).
        n_channels : int
        """
        self._buf = np.zeros((n_rows, n_channels))
        self._lab = np.zeros(n_rows, np.int8)
        self._block = Block(data=self._buf[:0], first_index=0, labels=self._lab[:0])
        self._view_n = 0
        self._pf_block = Block(data=self._buf[:0], first_index=0, labels=self._lab[:0])

    # -- the model (subclasses) --------------------------------------------------------------
    def warmup(self) -> None:
        """Compile the model's kernels without advancing the stream (subclasses)."""
        raise NotImplementedError

    def _generate(self, n: int, out: np.ndarray, labels: np.ndarray) -> None:
        """Write the next ``n`` samples into ``out[:n]`` and ``labels[:n]`` and advance
        ``_next_index`` by ``n`` (subclasses using the default direct read)."""
        raise NotImplementedError

    # -- direct reads ------------------------------------------------------------------------
    @property
    def exhausted(self) -> bool:
        """True when a finite stream (``duration_s``) has been read to its end."""
        idx = self._read_index if self._producer is not None else self._next_index
        return self._total is not None and idx >= self._total

    def _fill_next(self, out: np.ndarray, labels: np.ndarray) -> int:
        """The next ``len(out)`` samples (fewer at the end): the producer thread and read_into.

        Returns
        -------
        int
            Samples written; 0 at the end of a finite stream.
        """
        n = out.shape[0]
        if self._total is not None:
            n = min(n, self._total - self._next_index)
        if n <= 0:
            return 0
        self._generate(n, out, labels)
        return n

    def _read_direct(self, max_samples: int) -> Block | None:
        """Generate the next block into the preallocated buffer (no prefetch running)."""
        n = min(max_samples, self.max_block_samples)
        if self._total is not None:
            n = min(n, self._total - self._next_index)
            if n <= 0:
                return None
        block = self._block
        if n != self._view_n:
            block.data = self._buf[:n]
            block.labels = self._lab[:n]
            self._view_n = n
        block.first_index = self._next_index
        self._generate(n, self._buf, self._lab)
        return block

    # -- prefetch ----------------------------------------------------------------------------
    def _start_producer(self, fill_method: Callable[[np.ndarray, np.ndarray], int], *,
                        first_index: int, chunk_samples: int, depth: int,
                        release_when_idle: bool,
                        on_thread_start: Callable[[], None] | None = None) -> bool:
        """Start a :class:`ChunkProducer` that calls ``fill_method`` in its thread.

        Nothing happens when one is running already; the kernels are compiled first
        (:meth:`warmup`) when they are not yet. The thread must not keep the source alive:
        it fills through a weak reference, and collecting an unclosed source stops it.

        Parameters
        ----------
        fill_method : bound method
            ``fill(out, labels) -> n`` of this source (0 = end of stream).
        first_index : int
            Stream index of the first sample produced; also the reader's position.
        chunk_samples, depth : int
            See :class:`ChunkProducer`.
        release_when_idle : bool
            Chunks read are handed back only by :meth:`idle`.
        on_thread_start : callable, optional
            Called once in the producer thread, before its first chunk.

        Returns
        -------
        bool
            True (the source prefetches; ``start_prefetch``'s answer).
        """
        if self._producer is not None:
            return True
        if not self._warm:
            self.warmup()
        fill_next = weakref.WeakMethod(fill_method)
        fill: Callable[[np.ndarray, np.ndarray], int]
        if on_thread_start is None:
            def fill(out: np.ndarray, labels: np.ndarray) -> int:
                method = fill_next()
                return 0 if method is None else method(out, labels)
        else:
            first_call = [True]
            hook = on_thread_start

            def fill(out: np.ndarray, labels: np.ndarray) -> int:
                if first_call[0]:
                    first_call[0] = False
                    hook()
                method = fill_next()
                return 0 if method is None else method(out, labels)

        producer = ChunkProducer(fill, first_index=first_index,
                                 n_channels=self.info.n_channels,
                                 chunk_samples=int(chunk_samples), depth=depth)
        self._pf_views = [(producer.data[i], producer.labels[i]) for i in range(depth)]
        self._read_index = first_index
        self._release_when_idle = bool(release_when_idle)
        self._pf_pending = 0  # chunks read but not yet handed back (release_when_idle)
        self._producer = producer.start()
        weakref.finalize(self, producer.stop)
        return True

    def idle(self) -> None:
        """Hand the chunks read since the last call back to the producer thread."""
        p = self._producer
        if p is None:
            return
        while self._pf_pending:
            self._pf_pending -= 1
            p.release()

    def upcoming_samples(self) -> np.ndarray | None:
        """The samples the next read returns, if the producer made them already (else None).

        For cache warming only (:class:`~neuroloop.runtime.shadow.ShadowCycle` reads them in
        the idle time before a hop: another core wrote them). Never blocks; no allocation.
        """
        p = self._producer
        if p is None:
            return None
        slot = self._pf_slot
        if slot < 0 or self._pf_off >= p.n[slot]:
            slot = p.peek()
        return None if slot < 0 else self._pf_views[slot][0]

    def _chunk_taken(self, slot: int) -> None:
        """The reader starts on produced chunk ``slot`` (a hook; nothing by default)."""

    def _prefetch_stopped(self) -> None:
        """The producer thread has stopped (a hook, called by :meth:`_close`)."""

    def _read_prefetched(self, max_samples: int) -> Block | None:
        p = self._producer
        assert p is not None
        if self._pf_slot >= 0 and self._pf_off >= p.n[self._pf_slot]:
            if self._release_when_idle and self._pf_pending < p.depth - 1:
                self._pf_pending += 1  # handed back by idle(), while the reader waits
            else:
                p.release()
            self._pf_slot = -1
        if self._pf_slot < 0:
            # The generator always produces: a long wait is a bug, never a stall to simulate
            # (a spurious stall would make a --fast run depend on the machine's load).
            slot = p.take(timeout=self._PREFETCH_WAIT_S)
            if slot < 0:
                if p.ended:
                    return None
                raise DeviceError(f"the {self._PATIENT_NAME} produced nothing for "
                                  f"{self._PREFETCH_WAIT_S:g} s; its thread is stuck"
                                  f"{self._STUCK_HINT}")
            self._pf_slot, self._pf_off = slot, 0
            self._chunk_taken(slot)
        slot, off = self._pf_slot, self._pf_off
        n_slot = int(p.n[slot])
        n = min(max_samples, n_slot - off)
        block = self._pf_block
        if off == 0 and n == n_slot == p.chunk_samples:
            block.data, block.labels = self._pf_views[slot]  # prebuilt views: no allocation
        else:
            block.data = p.data[slot, off:off + n]
            block.labels = p.labels[slot, off:off + n]
        block.first_index = int(p.first[slot]) + off
        self._pf_off = off + n
        self._read_index = block.first_index + n
        return block

    # -- BaseSource hooks --------------------------------------------------------------------
    def _open(self) -> None:
        if not self._warm:
            self.warmup()

    def _read(self, max_samples: int, timeout: float | None) -> Block | None:
        if self._producer is not None:
            return self._read_prefetched(max_samples)
        return self._read_direct(max_samples)

    def _close(self) -> None:
        if self._producer is not None:
            self._producer.stop()
            self._prefetch_stopped()
            self._producer = None
            self._pf_slot = -1  # chunks produced but never read are dropped (a visible gap)
