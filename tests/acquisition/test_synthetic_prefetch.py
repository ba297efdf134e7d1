"""Prefetching the synthetic patient in a thread changes nothing in the stream."""

from __future__ import annotations

import threading

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from neuroloop.acquisition.prefetch import ChunkProducer
from neuroloop.acquisition.synthetic import SyntheticSource


def _direct(n: int, **kw) -> tuple[np.ndarray, np.ndarray]:
    src = SyntheticSource("bsi", seed=3, **kw).open()
    data = np.empty((n, src.info.n_channels))
    labels = np.empty(n, np.int8)
    got = src.read_into(data, labels)
    src.close()
    return data[:got], labels[:got]


def _prefetched(n: int, chunk: int, reads: list[int], **kw) -> tuple[np.ndarray, np.ndarray,
                                                                      list[int]]:
    src = SyntheticSource("bsi", seed=3, **kw).open()
    assert src.start_prefetch(chunk)
    data, labels, firsts = [], [], []
    i = 0
    while sum(len(d) for d in data) < n:
        b = src.read(reads[i % len(reads)])
        i += 1
        if b is None:
            break
        firsts.append(b.first_index)
        data.append(b.data.copy())
        labels.append(b.labels.copy())
    src.close()
    return np.concatenate(data)[:n], np.concatenate(labels)[:n], firsts


@settings(max_examples=15, deadline=None)
@given(chunk=st.integers(1, 200), reads=st.lists(st.integers(1, 300), min_size=1, max_size=5))
def test_prefetched_stream_equals_direct_generation(chunk, reads):
    n = 1500
    ref, ref_lab = _direct(n)
    got, lab, firsts = _prefetched(n, chunk, reads)
    np.testing.assert_array_equal(got, ref)
    np.testing.assert_array_equal(lab, ref_lab)
    assert firsts[0] == 0


def test_a_finite_stream_ends_and_reports_exhausted():
    src = SyntheticSource("bsi", seed=1, duration_s=1.0).open()
    total = src.n_samples_total
    assert src.start_prefetch(59)
    got = 0
    while (b := src.read(59)) is not None:
        got += b.n_samples
    assert got == total and src.exhausted and src.position == total
    src.close()


def test_the_thread_generates_ahead_of_the_reader():
    src = SyntheticSource("bsi", seed=1).open()
    src.start_prefetch(59)
    producer = src._producer
    assert producer is not None
    # the ring fills without anybody reading
    for _ in range(200):
        if producer.filled_count == producer.depth:  # noqa: SLF001 - white-box check
            break
        threading.Event().wait(0.01)
    assert producer.filled_count == producer.depth  # noqa: SLF001
    src.close()
    assert not producer._thread.is_alive()  # noqa: SLF001


def test_errors_in_the_thread_reach_the_reader():
    def fill(out, labels):
        raise ValueError("model blew up")

    p = ChunkProducer(fill, first_index=0, n_channels=2, chunk_samples=4).start()
    with pytest.raises(ValueError, match="model blew up"):
        p.take(timeout=5.0)
    p.stop()


def test_release_when_idle_refills_only_when_the_reader_waits():
    src = SyntheticSource("bsi", seed=3).open()  # the seed _direct uses
    src.start_prefetch(59, release_when_idle=True)
    producer = src._producer  # noqa: SLF001
    for _ in range(200):  # the ring fills
        if producer.filled_count == producer.depth:  # noqa: SLF001
            break
        threading.Event().wait(0.01)
    for _ in range(3):
        assert src.read(59) is not None
    threading.Event().wait(0.2)
    # two chunks were read to the end, none handed back yet: nothing was refilled
    assert producer.filled_count == producer.depth - 3  # noqa: SLF001
    src.idle()
    for _ in range(200):
        if producer.filled_count == producer.depth - 1:  # noqa: SLF001
            break
        threading.Event().wait(0.01)
    assert producer.filled_count == producer.depth - 1  # noqa: SLF001
    # and the stream is still the direct one
    ref, _ = _direct(59 * 6)
    got = [src.read(59).data.copy() for _ in range(3)]  # samples 177..353
    np.testing.assert_array_equal(np.concatenate(got), ref[177:354])
    src.close()


def test_upcoming_samples_are_the_next_read_and_never_wait():
    """What the shadow cycle reads ahead (upcoming_samples) is exactly what the next read
    returns, for chunk-aligned and unaligned reads; it is None (never a wait) when the
    producer has nothing ready, and the stream is unchanged by the peeking."""
    import time

    src = SyntheticSource("bsi", seed=3).open()
    assert src.upcoming_samples() is None  # no producer yet
    assert src.start_prefetch(59, depth=3)

    def ready() -> np.ndarray | None:  # the producer refills in its own time
        deadline = time.monotonic() + 10.0
        while (ahead := src.upcoming_samples()) is None and time.monotonic() < deadline:
            time.sleep(0.001)
        return ahead

    got = []
    for want in (59, 20, 39, 59, 10, 49):
        ahead = ready()
        assert ahead is not None
        ahead = ahead.copy()
        b = src.read(want)
        assert b is not None
        n = b.n_samples
        # the next read starts inside the chunk that was peeked
        off = b.first_index % 59
        np.testing.assert_array_equal(b.data, ahead[off:off + n])
        got.append(b.data.copy())
    src.close()
    ref, _ = _direct(sum(len(g) for g in got))
    np.testing.assert_array_equal(np.concatenate(got), ref)


def test_peek_is_minus_one_until_a_chunk_is_filled():
    gate = threading.Event()

    def fill(out, labels):
        gate.wait(5.0)
        out[:] = 1.0
        labels[:] = 0
        return out.shape[0]

    p = ChunkProducer(fill, first_index=0, n_channels=2, chunk_samples=4, depth=2).start()
    try:
        assert p.peek() == -1
        gate.set()
        assert p.take(timeout=5.0) == 0
        deadline = __import__("time").monotonic() + 5.0
        while p.peek() == -1 and __import__("time").monotonic() < deadline:
            pass
        assert p.peek() == 1
    finally:
        p.stop()
