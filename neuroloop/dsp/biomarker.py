"""A beta-power biomarker: the band power of chosen channels, smoothed over hops, in dB.

:class:`BiomarkerPipeline` is the feature pipeline of the ``adbs`` preset (``[dsp] features =
"biomarker"`` picks it, ``biomarker_smoothing_s`` sets the smoothing): a :class:`~neuroloop.dsp.FeaturePipeline` with one band
(band-pass and notches per channel, log band power per hop: at 250 Hz with 25-sample hops an
update every 100 ms, as Percept updates its power every 100 ms) followed by
:class:`BandPowerBiomarker`, which averages the chosen channels' power and smooths it with an
exponential moving average of time constant ``smoothing_s`` (Little et al. 2013 smoothed beta
amplitude over 400 ms; Percept averages over about a second). Its single feature is that
smoothed power in dB. One compiled kernel per hop after the filter bank
(:func:`._biomarker_kernels.biomarker_step`); ``tests/reference.py`` has the SciPy reference
(``scipy.signal.lfilter`` of the mean power).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from ..errors import ConfigError
from . import _biomarker_kernels as K
from .features import LOG_POWER_EPS, FeaturePipeline

__all__ = ["BandPowerBiomarker", "BiomarkerPipeline", "smoothing_alpha"]


def smoothing_alpha(smoothing_s: float, hop_s: float) -> float:
    """EMA weight of one hop for a time constant ``smoothing_s``: ``1 - exp(-hop_s / tau)``
    (1 when ``smoothing_s`` is 0: no smoothing)."""
    if smoothing_s <= 0.0:
        return 1.0
    return 1.0 - math.exp(-hop_s / smoothing_s)


class BandPowerBiomarker:
    """Streaming smoothed band power (dB) of some entries of a log-power feature vector.

    Parameters
    ----------
    index : sequence of int
        Which entries (log band powers, natural log of uV^2) to average.
    hop_s : float
        Time between hops, s.
    smoothing_s : float
        EMA time constant, s (0: none).
    """

    def __init__(self, index: Sequence[int], hop_s: float, smoothing_s: float) -> None:
        idx = np.asarray(list(index), dtype=np.int64)
        if idx.ndim != 1 or idx.size == 0 or (idx < 0).any():
            raise ConfigError("the biomarker needs at least one channel; check "
                              "dsp.biomarker_channels")
        if not (math.isfinite(hop_s) and hop_s > 0):
            raise ConfigError(f"hop of {hop_s!r} s is not a positive duration")
        if not (math.isfinite(smoothing_s) and smoothing_s >= 0):
            raise ConfigError(f"dsp.biomarker_smoothing_s = {smoothing_s!r} must be a duration "
                              ">= 0 in seconds, e.g. 1.0")
        self.index = idx
        self.alpha = smoothing_alpha(smoothing_s, hop_s)
        self._state = np.zeros(2)

    def reset(self) -> None:
        self._state[:] = 0.0

    def step(self, log_power: np.ndarray) -> float:
        """The biomarker after this hop, dB (NaN for a non-finite hop)."""
        return float(K.biomarker_step(log_power, self.index, self.alpha, self._state,
                                      LOG_POWER_EPS))

    def process(self, log_power: np.ndarray) -> np.ndarray:
        """Offline over (n_hops, n_features) from a fresh state; (n_hops,) dB."""
        x = np.ascontiguousarray(log_power, dtype=np.float64)
        out = np.zeros(x.shape[0])
        K.biomarker_process(x, self.index, self.alpha, LOG_POWER_EPS, out)
        return out

    def warmup(self, n_features: int) -> None:
        """Compile both kernels (state untouched)."""
        x = np.zeros((2, n_features))
        K.biomarker_step(x[0], self.index, self.alpha, np.zeros(2), LOG_POWER_EPS)
        self.process(x)


class BiomarkerPipeline:
    """One band's power per channel, averaged over ``channels`` and smoothed: one feature
    (``beta_db``) per hop. Same interface as :class:`~neuroloop.dsp.FeaturePipeline`.

    Parameters
    ----------
    n_channels, sampling_rate_hz, hop_samples, filter_order, car, notch_hz, notch_q
        As for :class:`~neuroloop.dsp.FeaturePipeline`.
    band_hz : (lo, hi)
        The biomarker band, Hz (e.g. beta 13-30), strictly inside (0, Nyquist).
    smoothing_s : float
        EMA time constant, s.
    channels : sequence of int, optional
        Channels averaged (default all).
    """

    def __init__(self, n_channels: int, sampling_rate_hz: float, hop_samples: int,
                 band_hz: Sequence[float], smoothing_s: float, *,
                 channels: Sequence[int] | None = None, filter_order: int = 4,
                 car: bool = False, notch_hz: Sequence[float] = (),
                 notch_q: float = 30.0) -> None:
        self.bands = FeaturePipeline(n_channels, sampling_rate_hz, hop_samples, [band_hz],
                                     filter_order=filter_order, car=car, notch_hz=notch_hz,
                                     notch_q=notch_q)
        chans = list(range(n_channels)) if channels is None else [int(c) for c in channels]
        bad = [c for c in chans if not 0 <= c < n_channels]
        if bad or not chans:
            raise ConfigError(f"dsp.biomarker_channels = {list(chans)} must list channels "
                              f"0..{n_channels - 1}")
        self.marker = BandPowerBiomarker(chans, hop_samples / sampling_rate_hz, smoothing_s)
        self.smoothing_s = float(smoothing_s)
        self._out = np.zeros(1)

    @property
    def n_features(self) -> int:
        return 1

    @property
    def n_channels(self) -> int:
        return self.bands.n_channels

    @property
    def hop_samples(self) -> int:
        return self.bands.hop_samples

    @property
    def feature_names(self) -> list[str]:
        lo, hi = self.bands.bands_hz[0]
        return [f"power_db:{lo:g}-{hi:g}Hz"]

    @property
    def notch_frequencies_hz(self) -> list[float]:
        return self.bands.notch_frequencies_hz

    @property
    def n_channel_resets(self) -> int:
        return self.bands.n_channel_resets

    def reset(self) -> None:
        self.bands.reset()
        self.marker.reset()
        self._out[0] = 0.0

    def step(self, hop: np.ndarray) -> np.ndarray:
        """The smoothed band power after this hop, shape (1,), dB (the pipeline's own array,
        overwritten by the next call)."""
        self._out[0] = self.marker.step(self.bands.step(hop))
        return self._out

    def process(self, x: np.ndarray) -> np.ndarray:
        """Offline (n_hops, 1) from zero state (equals successive :meth:`step` after
        :meth:`reset`)."""
        return self.marker.process(self.bands.process(x))[:, None]

    def warmup(self) -> None:
        self.bands.warmup()
        self.marker.warmup(self.bands.n_features)
        self.reset()

    def __repr__(self) -> str:
        return f"BiomarkerPipeline({self.bands!r}, smoothing_s={self.smoothing_s:g})"
