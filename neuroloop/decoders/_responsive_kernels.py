"""Compiled online step of the responsive (RNS-style) seizure detector.

Private: :class:`neuroloop.decoders.responsive.ResponsiveDetector` packs its settings into
the arrays below once and calls :func:`detector_step` per hop. Reference:
``tests/reference.py`` (``ResponsiveDetectorRef``).

Detectors (index ``d``): ``D_LINE_LENGTH``, ``D_AREA`` compare the mean of the last
``window_hops[d]`` per-hop measures of a channel with that channel's long-term trend; they
detect when the window exceeds the trend by ``threshold[d]`` (a fraction: 0.5 = 50 %).
``D_BAND`` detects when the band RMS has been at least ``min_amp`` for ``min_hops``
consecutive hops. Each detector's channel score is >= 1 exactly when it detects:
``(window / trend - 1) / threshold`` for the trend detectors, and
``min(rms / min_amp, run / min_hops)`` (0 when ``rms < min_amp``) for the band detector.
Channels combine by OR (max) or AND (min) per detector, detectors likewise; the combined
``detector_score >= 1`` is a detection.

The trend of a channel is the running mean of its window values for the first
``init_hops`` valid hops (no detection then: the trend is being learned), then an
exponential average with factor ``alpha[d]`` that is updated only in hops where that
channel's detector does not detect (so a seizure does not raise its own baseline).
"""

from __future__ import annotations

import math

from .._jit import jit

D_LINE_LENGTH = 0
D_AREA = 1
D_BAND = 2
N_DETECTORS = 3

#: Column of each value in the decoder's output vector.
V_SCORE = 0
V_LINE_LENGTH_PCT = 1
V_AREA_PCT = 2
V_BAND_RMS = 3
N_VALUES = 4

#: Rows of the int64 state vector.
S_SEEN = 0      # valid hops seen since reset
S_RING_POS = 1  # next write position of the window rings
N_ISTATE = 2


@jit
def detector_step(feat, enabled, mask, logic_and, combine_and, window_hops, threshold,
                  alpha, min_amp, min_hops, init_hops, ring, trend, band_run, istate,
                  values):
    """One hop of the detector.

    Parameters
    ----------
    feat : ndarray, shape (3 * n_channels,)
        Line length, area and band RMS per channel (measure-major, see
        :mod:`neuroloop.dsp.detectors`).
    enabled : ndarray (3,), bool
    mask : ndarray (3, n_channels), bool
        Channels each detector looks at.
    logic_and : ndarray (3,), bool
        Per detector: AND over its channels (else OR).
    combine_and : bool
        AND over the enabled detectors (else OR).
    window_hops : ndarray (3,), int64
        Short window of the trend detectors, hops (>= 1; the ring holds ``ring.shape[2]``).
    threshold : ndarray (3,)
        Trend detectors' threshold as a fraction above the trend (> 0).
    alpha : ndarray (3,)
        Trend detectors' exponential-average factor per hop (0 < alpha <= 1).
    min_amp : float
        Band detector's minimum RMS, uV.
    min_hops : int
        Band detector's minimum duration, hops (>= 1).
    init_hops : int
        Hops of trend learning before any detection (>= 1).
    ring : ndarray (2, n_channels, w_max)
        Window rings of the two trend detectors (state).
    trend : ndarray (2, n_channels)
        Long-term trends (state).
    band_run : ndarray (n_channels,), int64
        Consecutive hops at or above ``min_amp`` (state).
    istate : ndarray (N_ISTATE,), int64
        Hop counters (state).
    values : ndarray (N_VALUES,)
        Output: score, line length % above trend, area % above trend, band RMS (uV);
        NaN when the hop is invalid.

    Returns
    -------
    int
        1 for a detection, 0 for none, -1 for an invalid (non-finite) hop (state untouched).
    """
    n_ch = mask.shape[1]
    for i in range(feat.shape[0]):
        if not math.isfinite(feat[i]):
            for v in range(values.shape[0]):
                values[v] = math.nan
            return -1
    w_max = ring.shape[2]
    pos = istate[S_RING_POS]
    istate[S_SEEN] += 1
    seen = istate[S_SEEN]
    learning = seen <= init_hops
    for d in range(2):
        for c in range(n_ch):
            ring[d, c, pos] = feat[d * n_ch + c]
    istate[S_RING_POS] = (pos + 1) % w_max

    combined = math.inf if combine_and else -math.inf
    any_enabled = False
    best_pct_ll = 0.0
    best_pct_area = 0.0
    best_rms = 0.0
    for d in range(N_DETECTORS):
        if not enabled[d]:
            continue
        any_enabled = True
        det = -math.inf if not logic_and[d] else math.inf
        for c in range(n_ch):
            if d < 2:
                w = window_hops[d]
                if w > seen:
                    w = seen
                acc = 0.0
                for k in range(w):
                    acc += ring[d, c, (pos - k + w_max) % w_max]
                win = acc / w
                if learning:
                    trend[d, c] += (win - trend[d, c]) / seen
                    s = 0.0
                else:
                    tr = trend[d, c]
                    ratio = win / tr if tr > 0.0 else (math.inf if win > 0.0 else 1.0)
                    pct = (ratio - 1.0) * 100.0
                    s = (ratio - 1.0) / threshold[d]
                    if s < 1.0:
                        trend[d, c] += alpha[d] * (win - tr)
                    if mask[d, c]:
                        if d == D_LINE_LENGTH and pct > best_pct_ll:
                            best_pct_ll = pct
                        if d == D_AREA and pct > best_pct_area:
                            best_pct_area = pct
            else:
                rms = feat[D_BAND * n_ch + c]
                if rms >= min_amp:
                    band_run[c] += 1
                    s = min(rms / min_amp, band_run[c] / min_hops)
                else:
                    band_run[c] = 0
                    s = 0.0
                if learning:
                    s = 0.0
                if mask[d, c] and rms > best_rms:
                    best_rms = rms
            if not mask[d, c]:
                continue
            if logic_and[d]:
                if s < det:
                    det = s
            elif s > det:
                det = s
        if combine_and:
            if det < combined:
                combined = det
        elif det > combined:
            combined = det
    if not any_enabled:
        combined = 0.0
    values[V_SCORE] = combined
    values[V_LINE_LENGTH_PCT] = best_pct_ll
    values[V_AREA_PCT] = best_pct_area
    values[V_BAND_RMS] = best_rms
    return 1 if combined >= 1.0 else 0
