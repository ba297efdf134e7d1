"""The intracortical model produces its frames when the simulator releases them (a fraction
of a frame period after each frame, away from the host's work on it), and what it streams
does not depend on when that is."""

from __future__ import annotations

import time

import numpy as np

from firmware_sim.sim import MODEL_PHASE
from firmware_sim.streamer import Streamer

IC = {"mode": "binned", "n_channels": 32}


def _wait_filled(s: Streamer, n: int, timeout_s: float = 20.0) -> int:
    producer = s.source._producer
    deadline = time.monotonic() + timeout_s
    while producer.filled_count < n and time.monotonic() < deadline:
        time.sleep(0.01)
    return producer.filled_count


def test_the_model_refills_only_when_released_and_streams_the_same() -> None:
    phased = Streamer("intracortical", seed=4, intracortical=dict(IC))
    assert phased.model_in_thread and 0 < MODEL_PHASE < 1
    eager = Streamer("intracortical", seed=4, intracortical=dict(IC))
    a, b = [], []
    phased.prepare()
    depth = phased.source._producer.depth
    assert _wait_filled(phased, depth - 1) == depth - 1  # the ring is full, one frame taken
    for _ in range(5):
        a.append(phased.next_frame()[0].copy())
    phased.prepare()
    time.sleep(0.3)
    # five frames went out and none was made since: nothing was released
    assert phased.source._producer.filled_count == depth - 1 - 5
    phased.release_model()
    assert _wait_filled(phased, depth - 1) == depth - 1  # refilled once released
    for _ in range(20):  # released after every frame: the same stream as released late
        a.append(phased.next_frame()[0].copy())
        phased.release_model()
    for _ in range(25):
        b.append(eager.next_frame()[0].copy())
        eager.release_model()
    np.testing.assert_array_equal(np.array(a), np.array(b))
    for s in (phased, eager):
        s.source.close()


def test_other_presets_have_no_model_thread_to_release() -> None:
    s = Streamer("bsi", 1)
    assert not s.model_in_thread
    q, _ = s.next_frame()
    s.release_model()  # a no-op
    assert q.shape[0] == 59
