"""Compiled hop-covariance features (private; use
:class:`neuroloop.dsp.covariance.CovariancePipeline`).

Per hop and band: CAR -> notch -> band-pass (the same kernels and state as the log-power
pipeline), then the band's spatial scatter ``Y' Y / hop`` packed as its upper triangle in
``numpy.triu_indices`` order, band-major.
"""

from __future__ import annotations

import numpy as np

from .._jit import jit
from ._kernels import _cascade_quads, car, car_subset

__all__ = ["covariance_step", "covariance_process"]


@jit
def _reset_state_if_nonfinite(out, notch_z, bank_z):
    """A non-finite feature means NaN/inf entered the filters: zero every filter state so
    that later clean hops recover (after the transient). Returns 1 if reset, else 0."""
    for i in range(out.shape[0]):
        if not np.isfinite(out[i]):
            notch_z[...] = 0.0
            bank_z[...] = 0.0
            return 1
    return 0


@jit
def covariance_step(x, car_index, notch_sos, notch_z, bank_sos, bank_z, work, out):
    """One hop of covariance features.

    Parameters
    ----------
    x : ndarray, shape (hop, n_channels)
    car_index, notch_sos, notch_z, bank_sos, bank_z
        As :func:`neuroloop.dsp._kernels.pipeline_step` (padded cascades, states in place).
    work : ndarray, shape (4, hop, n_channels)
        Scratch: [0] referenced, [1] notched, [2] band-passed, [3] ping-pong.
    out : ndarray, shape (n_bands * n_channels (n_channels + 1) / 2,)

    Returns
    -------
    int
        1 when the filter state was reset after non-finite input, else 0.
    """
    n_samples, n = x.shape
    src = x
    if car_index.shape[0] == n:
        car(x, work[0])
        src = work[0]
    elif car_index.shape[0] > 0:
        car_subset(x, car_index, work[0])
        src = work[0]
    if notch_sos.shape[0] > 0:
        _cascade_quads(src, work[1], work[2], notch_sos, notch_z, 0, n)
        src = work[1]
    inv = 1.0 / n_samples
    p = n * (n + 1) // 2
    for b in range(bank_sos.shape[0]):
        _cascade_quads(src, work[2], work[3], bank_sos[b], bank_z[b], 0, n)
        y = work[2]
        base = b * p
        for k in range(base, base + p):
            out[k] = 0.0
        for t in range(n_samples):
            yt = y[t]
            k = base
            for i in range(n):
                yi = yt[i]
                for j in range(i, n):
                    out[k] += yi * yt[j]
                    k += 1
        for k in range(base, base + p):
            out[k] *= inv
    return _reset_state_if_nonfinite(out, notch_z, bank_z)


@jit
def covariance_process(x, hop, car_index, notch_sos, notch_z, bank_sos, bank_z, work, out):
    """:func:`covariance_step` over consecutive hops; ``out`` (n_hops, n_features)."""
    n_reset = 0
    for h in range(out.shape[0]):
        n_reset += covariance_step(x[h * hop:(h + 1) * hop], car_index, notch_sos, notch_z,
                                   bank_sos, bank_z, work, out[h])
    return n_reset
