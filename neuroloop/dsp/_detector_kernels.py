"""Compiled kernels of the responsive-neurostimulation detector measures (one hop at a time).

Private: :class:`neuroloop.dsp.detectors.DetectorPipeline` validates shapes once and calls
these with preallocated arrays. References: ``tests/reference.py``
(``detector_measures_ref``).

Measure layout (measure-major), for ``n_channels`` channels::

    out[M_LINE_LENGTH * n_channels + c]   mean |y[t] - y[t-1]| over the hop, uV per sample
    out[M_AREA * n_channels + c]          mean |y[t]| over the hop, uV
    out[M_BAND * n_channels + c]          RMS of the band-passed y over the hop, uV

where ``y`` is the input after the pre-filter cascade (high-pass and notches) and the band
signal is ``y`` through the band-pass cascade; every state carries across hops.
"""

from __future__ import annotations

import math

from .._jit import jit

#: Row of each measure in the measure-major output (named columns, never bare indices).
M_LINE_LENGTH = 0
M_AREA = 1
M_BAND = 2
N_MEASURES = 3


@jit
def _reset_channel(c, pre_z, band_z, prev):
    for s in range(pre_z.shape[0]):
        pre_z[s, 0, c] = 0.0
        pre_z[s, 1, c] = 0.0
    for s in range(band_z.shape[0]):
        band_z[s, 0, c] = 0.0
        band_z[s, 1, c] = 0.0
    prev[c] = 0.0


@jit
def detector_measures(x, pre_sos, pre_zi, pre_z, band_sos, band_zi, band_z, prev, started,
                      out):
    """Line length, area and band RMS of one hop, per channel.

    Parameters
    ----------
    x : ndarray, shape (n_samples, n_channels), float64
        The hop (not modified).
    pre_sos : ndarray, shape (n_pre, 6)
        High-pass and notch sections applied first (may have 0 rows).
    pre_zi : ndarray, shape (n_pre, 2)
        ``scipy.signal.sosfilt_zi(pre_sos)``: on a channel's first sample ``x0`` (and the
        first after a reset) the state starts at ``pre_zi * x0``, the steady state of a
        constant input, so that a DC offset gives no start-up transient.
    pre_z : ndarray, shape (n_pre, 2, n_channels)
        Their state (SciPy ``zi`` layout), updated in place.
    band_sos : ndarray, shape (n_band, 6)
        The band-pass detector's sections.
    band_zi : ndarray, shape (n_band, 2)
        ``scipy.signal.sosfilt_zi(band_sos)``, used likewise with the first pre-filtered
        sample.
    band_z : ndarray, shape (n_band, 2, n_channels)
        Their state, updated in place.
    prev : ndarray, shape (n_channels,)
        Last pre-filtered sample of the previous hop (line length carries across hops).
    started : ndarray, shape (n_channels,), bool
        False until a channel has had one sample (the first difference needs a predecessor).
    out : ndarray, shape (N_MEASURES * n_channels,)
        Measures (module docstring), overwritten.

    Returns
    -------
    int
        Channels whose hop held NaN or infinity: their measures are NaN and their filter
        state is zeroed, so that later clean hops are measured again.
    """
    n_samples, n_ch = x.shape
    n_pre = pre_sos.shape[0]
    n_band = band_sos.shape[0]
    n_bad = 0
    for c in range(n_ch):
        ll = 0.0
        area = 0.0
        bp = 0.0
        n_diff = 0
        p = prev[c]
        have = started[c]
        have_band = have
        bad = False
        for t in range(n_samples):
            v = x[t, c]
            if not math.isfinite(v):
                bad = True
                break
            if not have:
                for s in range(n_pre):
                    pre_z[s, 0, c] = pre_zi[s, 0] * v
                    pre_z[s, 1, c] = pre_zi[s, 1] * v
            for s in range(n_pre):
                yi = pre_sos[s, 0] * v + pre_z[s, 0, c]
                pre_z[s, 0, c] = pre_sos[s, 1] * v - pre_sos[s, 4] * yi + pre_z[s, 1, c]
                pre_z[s, 1, c] = pre_sos[s, 2] * v - pre_sos[s, 5] * yi
                v = yi
            if have:
                ll += abs(v - p)
                n_diff += 1
            have = True
            p = v
            area += abs(v)
            b = v
            if not have_band:
                for s in range(n_band):
                    band_z[s, 0, c] = band_zi[s, 0] * b
                    band_z[s, 1, c] = band_zi[s, 1] * b
                have_band = True
            for s in range(n_band):
                yi = band_sos[s, 0] * b + band_z[s, 0, c]
                band_z[s, 0, c] = band_sos[s, 1] * b - band_sos[s, 4] * yi + band_z[s, 1, c]
                band_z[s, 1, c] = band_sos[s, 2] * b - band_sos[s, 5] * yi
                b = yi
            bp += b * b
        if bad or not (math.isfinite(ll) and math.isfinite(area) and math.isfinite(bp)):
            _reset_channel(c, pre_z, band_z, prev)
            started[c] = False
            out[M_LINE_LENGTH * n_ch + c] = math.nan
            out[M_AREA * n_ch + c] = math.nan
            out[M_BAND * n_ch + c] = math.nan
            n_bad += 1
            continue
        prev[c] = p
        started[c] = have
        out[M_LINE_LENGTH * n_ch + c] = ll / n_diff if n_diff > 0 else 0.0
        out[M_AREA * n_ch + c] = area / n_samples
        out[M_BAND * n_ch + c] = math.sqrt(bp / n_samples)
    return n_bad


@jit
def detector_measures_process(x, hop, pre_sos, pre_zi, pre_z, band_sos, band_zi, band_z, prev,
                              started, out):
    """:func:`detector_measures` over consecutive hops of ``x`` (offline, calibration).

    ``out`` has shape (n_hops, N_MEASURES * n_channels); trailing samples are ignored.
    """
    n_hops = x.shape[0] // hop
    for h in range(n_hops):
        detector_measures(x[h * hop:(h + 1) * hop], pre_sos, pre_zi, pre_z, band_sos, band_zi,
                          band_z, prev, started, out[h])
    return n_hops
