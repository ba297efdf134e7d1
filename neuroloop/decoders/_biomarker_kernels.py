"""Compiled kernel of the ``beta-biomarker`` decoder (private; see :mod:`.biomarker`)."""

from __future__ import annotations

import math

import numpy as np

from .._jit import jit

__all__ = ["rank_percent"]


@jit
def rank_percent(value: float, quantiles: np.ndarray) -> float:
    """Where ``value`` falls in a calibration distribution, 0..100 %.

    ``quantiles`` holds the 0th, 1st, ..., 100th percentiles (101 non-decreasing values);
    linear interpolation between them (``numpy.interp(value, quantiles, 0..100)``), clipped
    to 0 and 100. NaN gives NaN.
    """
    if not math.isfinite(value):
        return math.nan if value != value else (100.0 if value > 0 else 0.0)
    n = quantiles.shape[0]
    if value <= quantiles[0]:
        return 0.0
    if value >= quantiles[n - 1]:
        return 100.0
    lo, hi = 0, n - 1
    while hi - lo > 1:  # quantiles[lo] < value <= quantiles[hi]
        mid = (lo + hi) // 2
        if quantiles[mid] < value:
            lo = mid
        else:
            hi = mid
    span = quantiles[hi] - quantiles[lo]
    frac = (value - quantiles[lo]) / span if span > 0.0 else 1.0
    return 100.0 * (lo + frac) / (n - 1)
