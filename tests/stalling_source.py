"""A source wrapper whose reads now and then return nothing (a stall), for record/replay tests.

Every attribute it does not define comes from the wrapped source (its info, prefetching,
intention mapping, stimulation feedback), so the loop runs the wrapped patient as it would run
it directly, except for the stalls.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any


class StallingSource:
    """``inner`` with the ``k``-th read returning None when ``stall(k)`` (k from 1), and at
    most ``max_block`` samples per read (a device's small frames), never exhausted."""

    paced_by_device = False

    def __init__(self, inner: Any, stall: Callable[[int], bool],
                 max_block: int | None = None) -> None:
        self.inner, self.info = inner, inner.info
        self.stall = stall
        self.max_block = max_block
        self.calls = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    @property
    def exhausted(self) -> bool:
        return False

    def open(self) -> StallingSource:
        self.inner.open()
        return self

    def read(self, n: int, timeout: float | None = None) -> Any:
        self.calls += 1
        if self.stall(self.calls):
            return None
        return self.inner.read(n if self.max_block is None else min(n, self.max_block), timeout)

    def close(self) -> None:
        self.inner.close()
