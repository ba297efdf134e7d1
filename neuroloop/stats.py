"""Latency statistics over preallocated arrays (no allocation while recording)."""

from __future__ import annotations

import numpy as np

__all__ = ["LatencyLog", "StageLog", "STAGES", "percentiles_us", "latency_stats_us"]

#: The stages of a control cycle whose cost the loop logs, in order.
STAGES = ("acquire", "features", "decoder", "policy", "supervisor", "stimulator",
          "bookkeeping")


def percentiles_us(values_ns: np.ndarray, *, digits: int | None = 3,
                   with_mean: bool = False) -> dict[str, float]:
    """p50/p99/p99.9/max of nanosecond samples, in microseconds (NaN when empty).

    The one percentile helper of neuroloop: the run summary, the link statistics, the bench
    and the firmware simulator's soak all report through it.

    Parameters
    ----------
    values_ns : array_like, shape (n,)
        Durations in nanoseconds.
    digits : int or None
        Round to this many decimals (None: unrounded).
    with_mean : bool
        Also report ``mean``.
    """
    v = np.asarray(values_ns, dtype=np.float64) / 1000.0
    keys = ("p50", "p99", "p999", "max") + (("mean",) if with_mean else ())
    if v.size == 0:
        return {k: float("nan") for k in keys}
    p50, p99, p999 = np.percentile(v, [50, 99, 99.9])
    out = {"p50": float(p50), "p99": float(p99), "p999": float(p999), "max": float(v.max())}
    if with_mean:
        out["mean"] = float(v.mean())
    if digits is not None:
        out = {k: round(x, digits) for k, x in out.items()}
    return out


def latency_stats_us(ns: np.ndarray) -> dict[str, float]:
    """Bench form of :func:`percentiles_us`: unrounded, with the mean."""
    return percentiles_us(ns, digits=None, with_mean=True)


class LatencyLog:
    """A fixed-capacity ring of int64 nanosecond samples.

    Parameters
    ----------
    capacity : int
        Samples kept; older ones are overwritten once full (the count keeps growing).
    """

    def __init__(self, capacity: int) -> None:
        if capacity < 1:
            raise ValueError("capacity must be >= 1")
        self._buf = np.zeros(int(capacity), dtype=np.int64)
        self.count = 0

    def add(self, value_ns: int) -> None:
        self._buf[self.count % self._buf.shape[0]] = value_ns
        self.count += 1

    def values(self) -> np.ndarray:
        """The retained samples (a view, in ring order: not oldest first once wrapped)."""
        return self._buf[: min(self.count, self._buf.shape[0])]

    def ordered(self) -> np.ndarray:
        """The retained samples, oldest first (a copy)."""
        return self.recent(self._buf.shape[0])

    def recent(self, n: int) -> np.ndarray:
        """Up to the last ``n`` samples (a copy)."""
        cap = self._buf.shape[0]
        n = min(n, self.count, cap)
        idx = (np.arange(self.count - n, self.count)) % cap
        return self._buf[idx]

    def summary(self) -> dict[str, float]:
        return percentiles_us(self.values())


class StageLog:
    """A fixed-capacity ring of per-cycle stage costs, int64 nanoseconds.

    Parameters
    ----------
    names : tuple of str
        Stage names, one column each.
    capacity : int
        Cycles kept; older ones are overwritten once full.
    """

    def __init__(self, names: tuple[str, ...], capacity: int) -> None:
        if capacity < 1:
            raise ValueError("capacity must be >= 1")
        self.names = tuple(names)
        self._buf = np.zeros((int(capacity), len(names)), dtype=np.int64)
        self.count = 0

    def add(self, stage_ns: np.ndarray) -> None:
        """Log one cycle's costs, shape (n_stages,) (copied; nothing allocated)."""
        self._buf[self.count % self._buf.shape[0]] = stage_ns
        self.count += 1

    def ordered(self) -> dict[str, np.ndarray]:
        """Stage name -> its retained costs, oldest first (copies)."""
        cap = self._buf.shape[0]
        n = min(self.count, cap)
        idx = np.arange(self.count - n, self.count) % cap
        block = self._buf[idx]
        return {name: block[:, j].copy() for j, name in enumerate(self.names)}
