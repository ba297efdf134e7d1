"""Compiled streaming kernels of intracortical spike-band features (private; use
:mod:`neuroloop.dsp.spikes`).

One call of :func:`spike_bin` turns one bin of raw samples (``(bin_samples, n_channels)``,
float64 microvolts on the host, int16 ADC counts on the simulated chip) into two features per
channel, carrying every filter state across bins:

1. common-average reference (optional): ``x[t, c] - mean_c x[t, c]``;
2. spike-band filter (Butterworth SOS) -> **threshold crossings**: the number of samples with
   ``y[t] < thr[c] <= y[t-1]`` (a downward crossing; ``y[-1]`` is the last sample of the
   previous bin), with ``thr = multiplier * RMS`` (multiplier negative, e.g. -4.5) and the RMS
   of ``y`` estimated over the first ``calibration_bins`` bins (no crossings are counted
   before the thresholds exist);
3. spike-band-power filter (300-1000 Hz SOS) -> **spike-band power**: the mean absolute
   value of the filtered signal over the bin (Nason et al., Nature Biomedical Engineering
   2020, who named this "spike-band power").

Output layout (feature-major): ``out[c]`` = crossings of channel ``c``, ``out[C + c]`` =
spike-band power of channel ``c``.

Scale by design
---------------
The channels are cut into tiles of :data:`TILE_CHANNELS`; every section of both filters, the
threshold test and the accumulators run over one tile, sample by sample, before the next tile
is touched. A tile's filter states, thresholds and accumulators (a few KB) stay in L1 whatever
the channel count, so the cost per channel does not grow with the number of channels. Rows are
read once per tile (a contiguous run of ``TILE_CHANNELS`` values). SOS states use SciPy's
``zi`` layout ``(n_sections, 2, n_channels)``.
"""

from __future__ import annotations

import numpy as np

from .._jit import jit
from ._kernels import (
    SECTION_GENERAL,
    SECTION_SYMMETRIC,
    SECTION_UNIT,
    _section,
    section_kind,
)

__all__ = ["TILE_CHANNELS", "row_means", "spike_bin", "spike_process"]

#: Channels per tile: (2 + 2 sections x 2 states + 5 per-channel arrays) x 64 x 8 B = 6.5 KB.
TILE_CHANNELS = 64
#: Rows per block: 32 rows x 1024 channels x 8 B = 256 KB, read from memory once into L2.
ROW_BLOCK = 32


@jit
def row_means(x, out):
    """``out[t] = mean_c x[t, c]`` (the common-average reference of every sample)."""
    n_samples, n_channels = x.shape
    inv = 1.0 / n_channels
    for t in range(n_samples):
        xr = x[t]
        s = 0.0
        for c in range(n_channels):
            s += xr[c]
        out[t] = s * inv


@jit
def _spike_tile(x, mean, r0, r1, c0, c1, spk_sos, spk_z, sbp_sos, sbp_z, thr, prev, sumsq,
                out, calibrating, k0, k1):
    """Rows ``r0 <= t < r1`` of channels ``c0 <= c < c1``: both filters (sections of kinds
    ``k0``, ``k1``, see :data:`neuroloop.dsp._kernels.SECTION_GENERAL`), the crossings and the
    power accumulators; while ``calibrating`` also the spike band's squares.

    Every call site passes ``calibrating``, ``k0`` and ``k1`` as constants: Numba compiles one
    specialisation per combination (literal arguments), each inner loop without branches.
    """
    n_channels = out.shape[0] // 2
    p00 = spk_sos[0, 0]
    p01 = spk_sos[0, 1]
    p02 = spk_sos[0, 2]
    q01 = spk_sos[0, 4]
    q02 = spk_sos[0, 5]
    p10 = spk_sos[1, 0]
    p11 = spk_sos[1, 1]
    p12 = spk_sos[1, 2]
    q11 = spk_sos[1, 4]
    q12 = spk_sos[1, 5]
    r00 = sbp_sos[0, 0]
    r01 = sbp_sos[0, 1]
    r02 = sbp_sos[0, 2]
    u01 = sbp_sos[0, 4]
    u02 = sbp_sos[0, 5]
    r10 = sbp_sos[1, 0]
    r11 = sbp_sos[1, 1]
    r12 = sbp_sos[1, 2]
    u11 = sbp_sos[1, 4]
    u12 = sbp_sos[1, 5]
    w = c1 - c0
    # 1-D views of the tile indexed from 0 (the inner loop then vectorises)
    a0 = spk_z[0, 0, c0:c1]
    a1 = spk_z[0, 1, c0:c1]
    b0 = spk_z[1, 0, c0:c1]
    b1 = spk_z[1, 1, c0:c1]
    d0 = sbp_z[0, 0, c0:c1]
    d1 = sbp_z[0, 1, c0:c1]
    e0 = sbp_z[1, 0, c0:c1]
    e1 = sbp_z[1, 1, c0:c1]
    thr_t = thr[c0:c1]
    prev_t = prev[c0:c1]
    tx_t = out[c0:c1]
    sbp_t = out[n_channels + c0:n_channels + c1]
    ss_t = sumsq[c0:c1]
    for t in range(r0, r1):
        m = mean[t]
        xr = x[t, c0:c1]
        for i in range(w):
            v = xr[i] - m
            # spike band, two sections, then the downward threshold crossing
            y, a0[i], a1[i] = _section(k0, v, a0[i], a1[i], p00, p01, p02, q01, q02)
            z, b0[i], b1[i] = _section(k1, y, b0[i], b1[i], p10, p11, p12, q11, q12)
            th = thr_t[i]
            tx_t[i] += 1.0 if (z < th) & (prev_t[i] >= th) else 0.0
            prev_t[i] = z
            if calibrating:
                ss_t[i] += z * z
            # spike-band power band, two sections
            y, d0[i], d1[i] = _section(k0, v, d0[i], d1[i], r00, r01, r02, u01, u02)
            z, e0[i], e1[i] = _section(k1, y, e0[i], e1[i], r10, r11, r12, u11, u12)
            sbp_t[i] += abs(z)


@jit
def _is_bandpass_pair(sos):
    """True for a 2nd-order Butterworth band-pass: ``[k, 2k, k]`` then ``[1, +-2, 1]``."""
    return section_kind(sos[0]) == SECTION_SYMMETRIC and section_kind(sos[1]) == SECTION_UNIT


@jit
def spike_bin(x, use_car, mean, spk_sos, spk_z, sbp_sos, sbp_z, thr, prev, sumsq, cal,
              multiplier, out):
    """Threshold crossings and spike-band power of one bin (module docstring).

    Both filters have exactly two second-order sections (a 2nd-order Butterworth band-pass;
    :func:`neuroloop.dsp.filters.pad_sections` pads a 1st-order design with an identity
    section), applied fused in registers per channel. When both are band-pass pairs as
    ``scipy.signal.butter`` designs them, the sections skip their products by 1 and repeated
    products (the same bits; :mod:`neuroloop.dsp._kernels`, "section kinds").

    Parameters
    ----------
    x : ndarray, shape (bin_samples, n_channels), float64 or int16
        Raw samples of one bin (not modified).
    use_car : bool
        Subtract the mean over channels of every sample first.
    mean : ndarray, shape (bin_samples,), float64
        Scratch (the per-sample reference).
    spk_sos, sbp_sos : ndarray, shape (2, 6), float64
        Spike-band and spike-band-power filters (SciPy SOS).
    spk_z, sbp_z : ndarray, shape (2, 2, n_channels), float64
        Their states, updated in place.
    thr : ndarray, shape (n_channels,), float64
        Thresholds (``-inf`` until calibrated), set in place when calibration ends.
    prev : ndarray, shape (n_channels,), float64
        Last spike-band sample of the previous bin, updated in place.
    sumsq : ndarray, shape (n_channels,), float64
        Sum of squared spike-band samples during calibration.
    cal : ndarray, shape (2,), int64
        ``[bins of calibration left, samples accumulated]``, updated in place.
    multiplier : float
        Threshold in units of the RMS (negative: -4.5).
    out : ndarray, shape (2 * n_channels,), float64
        Crossings then spike-band power (same unit as ``x``).

    Returns
    -------
    int
        Channels whose state was reset because their features were not finite.
    """
    n_samples, n_channels = x.shape
    for c in range(2 * n_channels):
        out[c] = 0.0
    calibrating = cal[0] > 0
    bandpass = _is_bandpass_pair(spk_sos) and _is_bandpass_pair(sbp_sos)
    # two-level blocking: a block of rows (ROW_BLOCK x n_channels, in L2) is referenced once,
    # then every channel tile runs over those rows with its state in L1
    for r0 in range(0, n_samples, ROW_BLOCK):
        r1 = min(r0 + ROW_BLOCK, n_samples)
        if use_car:
            row_means(x[r0:r1], mean[r0:r1])
        else:
            for t in range(r0, r1):
                mean[t] = 0.0
        for c0 in range(0, n_channels, TILE_CHANNELS):
            c1 = min(c0 + TILE_CHANNELS, n_channels)
            if bandpass and calibrating:
                _spike_tile(x, mean, r0, r1, c0, c1, spk_sos, spk_z, sbp_sos, sbp_z, thr, prev,
                            sumsq, out, True, SECTION_SYMMETRIC, SECTION_UNIT)
            elif bandpass:
                _spike_tile(x, mean, r0, r1, c0, c1, spk_sos, spk_z, sbp_sos, sbp_z, thr, prev,
                            sumsq, out, False, SECTION_SYMMETRIC, SECTION_UNIT)
            elif calibrating:
                _spike_tile(x, mean, r0, r1, c0, c1, spk_sos, spk_z, sbp_sos, sbp_z, thr, prev,
                            sumsq, out, True, SECTION_GENERAL, SECTION_GENERAL)
            else:
                _spike_tile(x, mean, r0, r1, c0, c1, spk_sos, spk_z, sbp_sos, sbp_z, thr, prev,
                            sumsq, out, False, SECTION_GENERAL, SECTION_GENERAL)
    inv = 1.0 / n_samples
    for c in range(n_channels):
        out[n_channels + c] *= inv
    if cal[0] > 0:
        cal[0] -= 1
        cal[1] += n_samples
        if cal[0] == 0:
            k = 1.0 / cal[1]
            for c in range(n_channels):
                thr[c] = multiplier * np.sqrt(sumsq[c] * k)
    n_reset = 0
    for c in range(n_channels):
        if not (np.isfinite(out[c + n_channels]) and np.isfinite(prev[c])):
            n_reset += 1
            for s in range(2):
                spk_z[s, 0, c] = 0.0
                spk_z[s, 1, c] = 0.0
                sbp_z[s, 0, c] = 0.0
                sbp_z[s, 1, c] = 0.0
            prev[c] = 0.0
    return n_reset


@jit
def spike_process(x, bin_samples, use_car, mean, spk_sos, spk_z, sbp_sos, sbp_z, thr, prev,
                  sumsq, cal, multiplier, out):
    """:func:`spike_bin` over consecutive bins of a long signal; ``out`` (n_bins, 2 C)."""
    n_reset = 0
    for b in range(out.shape[0]):
        n_reset += spike_bin(x[b * bin_samples:(b + 1) * bin_samples], use_car, mean, spk_sos,
                             spk_z, sbp_sos, sbp_z, thr, prev, sumsq, cal, multiplier, out[b])
    return n_reset
