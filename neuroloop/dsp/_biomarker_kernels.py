"""Compiled kernels of the beta-power biomarker (private; see :mod:`.biomarker`)."""

from __future__ import annotations

import math

import numpy as np

from .._jit import jit

__all__ = ["biomarker_step", "biomarker_process"]


@jit
def biomarker_step(log_power: np.ndarray, index: np.ndarray, alpha: float, state: np.ndarray,
                   eps: float) -> float:
    """One hop of the smoothed band power, dB.

    ``p = mean_c exp(log_power[index[c]])`` (the band power of the chosen channels, signal
    unit squared), then ``s += alpha * (p - s)`` (an exponential moving average that starts
    at the first finite ``p``), then ``10 log10(s + eps)``. A hop whose ``p`` is not finite
    leaves ``s`` untouched and returns NaN (the decoder reports it invalid).

    ``state``: ``[s, started]`` (float64, 2), updated in place.
    """
    p = 0.0
    for c in range(index.shape[0]):
        p += math.exp(log_power[index[c]])
    p /= index.shape[0]
    if not math.isfinite(p):
        return math.nan
    if state[1] == 0.0:
        state[0] = p
        state[1] = 1.0
    else:
        state[0] += alpha * (p - state[0])
    return 10.0 * math.log10(state[0] + eps)


@jit
def biomarker_process(log_power: np.ndarray, index: np.ndarray, alpha: float, eps: float,
                      out: np.ndarray) -> None:
    """:func:`biomarker_step` over every row of ``log_power`` (n_hops, n_features) from a
    fresh state, into ``out`` (n_hops,)."""
    state = np.zeros(2)
    for h in range(log_power.shape[0]):
        out[h] = biomarker_step(log_power[h], index, alpha, state, eps)

