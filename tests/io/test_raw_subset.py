"""Recording a raw-channel subset: the recorder sees only the listed electrodes."""

from __future__ import annotations

import numpy as np
import pytest

from neuroloop.errors import ConfigError
from neuroloop.io.raw_subset import RawChannelSubset, check_raw_subset
from neuroloop.records import LoopListener


class _Inner(LoopListener):
    def __init__(self) -> None:
        self.meta: dict = {}
        self.blocks: list[tuple[np.ndarray, int]] = []

    def on_start(self, meta: dict) -> None:
        self.meta = meta

    def on_samples(self, data: np.ndarray, first_index: int) -> None:
        self.blocks.append((data.copy(), first_index))


def test_subset_forwards_only_listed_channels() -> None:
    inner = _Inner()
    sub = RawChannelSubset(inner, check_raw_subset([5, 0, 2], 8), max_block=4)
    sub.on_start({"channels": {"names": [f"ch{i}" for i in range(8)], "types": ["lfp"] * 8}})
    assert inner.meta["channels"]["names"] == ["ch5", "ch0", "ch2"]
    assert inner.meta["raw_channel_subset"] == [5, 0, 2]
    x = np.arange(6 * 8, dtype=float).reshape(6, 8)
    sub.on_samples(x, 100)  # larger than the buffer: in pieces, indices kept
    got = np.concatenate([b for b, _ in inner.blocks])
    np.testing.assert_array_equal(got, x[:, [5, 0, 2]])
    assert [f for _, f in inner.blocks] == [100, 104]


@pytest.mark.parametrize("bad,match", [([0, 8], "electrode 8"), ([], "non-empty"),
                                       ([1, 1], "twice"), (["a"], "not an electrode")])
def test_bad_subsets(bad: list, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        check_raw_subset(bad, 8)
