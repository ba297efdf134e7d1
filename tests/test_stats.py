"""LatencyLog: a fixed ring whose retained samples come back oldest first."""

from __future__ import annotations

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from neuroloop.stats import LatencyLog, percentiles_us


@given(capacity=st.integers(1, 20), values=st.lists(st.integers(0, 10**9), max_size=60))
def test_ordered_is_the_last_capacity_samples_oldest_first(capacity, values) -> None:
    log = LatencyLog(capacity)
    for v in values:
        log.add(v)
    assert log.count == len(values)
    expected = values[len(values) - min(len(values), capacity):]
    assert log.ordered().tolist() == expected
    assert log.recent(3).tolist() == expected[len(expected) - min(3, len(expected)):]


def test_percentiles_in_microseconds() -> None:
    ns = np.arange(1, 1001, dtype=np.int64) * 1000  # 1..1000 us
    p = percentiles_us(ns)
    assert p["max"] == 1000.0 and abs(p["p50"] - 500.5) < 1e-9
    assert all(np.isnan(v) for v in percentiles_us(np.zeros(0, np.int64)).values())
