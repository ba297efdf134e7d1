"""Streaming measures for responsive-neurostimulation detectors: line length, area, band RMS.

The NeuroPace RNS system detects electrographic seizures on each ECoG channel with three
tools (Sun et al. 2008, Epilepsia 49 Suppl 1; RNS System Physician Manual): *line length*
(the summed absolute sample-to-sample difference over a short window, compared with its own
long-term trend), *area* (the summed rectified amplitude, likewise against its trend) and
*bandpass* (rhythmic activity in a frequency band above a minimum amplitude for a minimum
duration). This module computes, once per hop, the per-channel quantities those detectors
compare; :mod:`neuroloop.decoders.responsive` keeps the windows, trends, thresholds and
durations and combines channels and detectors.

Signal path (per channel, state carried across hops)::

    x -> high-pass (``highpass_hz``, Butterworth, order 2; the amplifier's AC coupling)
      -> low-pass (``lowpass_hz``, Butterworth, order 4; the amplifier's anti-alias band)
      -> notches (``notch_hz`` and harmonics)                         = y
    line length  = mean_t |y[t] - y[t-1]|          uV per sample
    area         = mean_t |y[t]|                   uV
    band RMS     = sqrt(mean_t b[t]^2), b = band-pass(y, ``band_hz``)  uV

Measure layout (measure-major): ``features[m * n_channels + c]`` for measure ``m`` in
(line length, area, band RMS) = (0, 1, 2); :attr:`DetectorPipeline.feature_names` spells it
out. Non-finite input gives NaN measures for that channel and zeroes its filter state. A
channel's filters start (and restart after non-finite input) from the steady state of its
first sample (``scipy.signal.sosfilt_zi``), so a DC offset causes no start-up transient.

The pipeline has the interface of :class:`~neuroloop.dsp.FeaturePipeline` (``step``,
``process``, ``reset``, ``warmup``, ``n_features``, ``SHADOW_STATE``), so the loop runs it
unchanged; a scenario picks it with ``[dsp] features = "detector"``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt
import scipy.signal

from .._buffers import copy_into
from ..errors import ConfigError
from . import _detector_kernels as K
from .filters import (
    _check_channels,
    check_band,
    check_sampling_rate,
    design_bandpass_sos,
    design_notch_sos,
)

__all__ = ["DetectorPipeline", "MEASURES", "design_highpass_sos"]

#: Measure names in feature order (index = ``_detector_kernels.M_*``).
MEASURES: tuple[str, ...] = ("line_length", "area", "band_rms")

_F64 = np.dtype(np.float64)


def design_highpass_sos(cutoff_hz: float, sampling_rate_hz: float, order: int = 2,
                        btype: str = "highpass") -> np.ndarray:
    """Butterworth high-pass (or ``btype="lowpass"``) as second-order sections (an empty
    cascade when ``cutoff_hz`` is 0).

    Returns
    -------
    sos : ndarray, shape (n_sections, 6), float64
    """
    fs = check_sampling_rate(sampling_rate_hz)
    if cutoff_hz == 0:
        return np.zeros((0, 6))
    if not (0 < cutoff_hz < fs / 2):
        raise ConfigError(f"{btype[:-4]}-pass cut-off {cutoff_hz!r} Hz is not inside "
                          f"(0, {fs / 2:g}) Hz (Nyquist); use e.g. 1 Hz, or 0 for none")
    sos = scipy.signal.butter(order, cutoff_hz, btype=btype, fs=fs, output="sos")
    return np.ascontiguousarray(sos, dtype=np.float64)


def _steady_state(sos: np.ndarray) -> np.ndarray:
    """``scipy.signal.sosfilt_zi(sos)`` (shape (n_sections, 2)); empty for no sections."""
    if sos.shape[0] == 0:
        return np.zeros((0, 2))
    return np.ascontiguousarray(scipy.signal.sosfilt_zi(sos), dtype=np.float64)


class DetectorPipeline:
    """Per-hop line length, area and band RMS of every channel.

    Parameters
    ----------
    n_channels : int
    sampling_rate_hz : float
    hop_samples : int
        Samples per hop (one measure vector per hop).
    band_hz : (lo, hi)
        Pass band of the bandpass detector, Hz, strictly inside (0, Nyquist).
    filter_order : int, default 4
        Butterworth design order of the band-pass.
    highpass_hz : float, default 1.0
        Cut-off of the AC-coupling high-pass applied before every measure (0: none).
    lowpass_hz : float, default 0
        Cut-off of a low-pass applied before every measure (0: none).
    notch_hz : sequence of float, default ()
        Line frequencies to notch, with their harmonics below Nyquist.
    notch_q : float, default 30
    channel_names : sequence of str, optional

    Raises
    ------
    ConfigError
        A band above Nyquist, a bad hop, order, cut-off or channel count.
    """

    SHADOW_STATE: tuple[str, ...] = ("_pre_z", "_band_z", "_prev", "_started")

    def __init__(self, n_channels: int, sampling_rate_hz: float, hop_samples: int,
                 band_hz: Sequence[float], filter_order: int = 4, highpass_hz: float = 1.0,
                 lowpass_hz: float = 0.0, notch_hz: Sequence[float] = (), notch_q: float = 30.0,
                 channel_names: Sequence[str] | None = None) -> None:
        self._n_channels = _check_channels(n_channels)
        self._fs = check_sampling_rate(sampling_rate_hz)
        if isinstance(hop_samples, bool) or not isinstance(hop_samples, int | np.integer) \
                or hop_samples < 2:
            raise ConfigError(f"hop of {hop_samples!r} samples is not an integer >= 2; "
                              "use e.g. round(0.1 * sampling_rate_hz) for 100 ms hops")
        self._hop = int(hop_samples)
        self._band = check_band(band_hz, self._fs)
        self._order = filter_order
        self._highpass_hz = float(highpass_hz)
        self._lowpass_hz = float(lowpass_hz)
        if self._lowpass_hz and self._lowpass_hz <= self._highpass_hz:
            raise ConfigError(f"low-pass cut-off {lowpass_hz!r} Hz is not above the high-pass "
                              f"cut-off {highpass_hz!r} Hz; raise it or use 0 for none")
        self._notch_hz = [float(f) for f in notch_hz]
        names = ([f"ch{c}" for c in range(self._n_channels)] if channel_names is None
                 else [str(n) for n in channel_names])
        if len(names) != self._n_channels:
            raise ConfigError(f"{len(names)} channel names for {self._n_channels} channels; "
                              "give one name per channel")
        self._channel_names = names
        hp = design_highpass_sos(self._highpass_hz, self._fs)
        lp = design_highpass_sos(self._lowpass_hz, self._fs, 4, btype="lowpass")
        notch = design_notch_sos(self._notch_hz, notch_q, self._fs)
        #: The pre-filter cascade (high-pass, low-pass, notches) and the band-pass, as designed.
        self.pre_sos = np.ascontiguousarray(np.vstack([hp, lp, notch.reshape(-1, 6)]))
        self.band_sos = design_bandpass_sos(self._band, filter_order, self._fs)
        self.pre_zi = _steady_state(self.pre_sos)
        self.band_zi = _steady_state(self.band_sos)
        n = self._n_channels
        self._pre_z = np.zeros((self.pre_sos.shape[0], 2, n))
        self._band_z = np.zeros((self.band_sos.shape[0], 2, n))
        self._prev = np.zeros(n)
        self._started = np.zeros(n, dtype=np.bool_)
        self._out = np.zeros(K.N_MEASURES * n)
        self._in = np.zeros((self._hop, n))
        self._hop_shape = (self._hop, n)
        self.n_channel_resets = 0

    @property
    def n_channels(self) -> int:
        return self._n_channels

    @property
    def sampling_rate_hz(self) -> float:
        return self._fs

    @property
    def hop_samples(self) -> int:
        return self._hop

    @property
    def band_hz(self) -> tuple[float, float]:
        return self._band

    @property
    def n_features(self) -> int:
        return K.N_MEASURES * self._n_channels

    @property
    def feature_names(self) -> list[str]:
        """``"line_length:ch0"``, ... in feature order."""
        return [f"{m}:{c}" for m in MEASURES for c in self._channel_names]

    def reset(self) -> None:
        """Zero every filter state (as at construction)."""
        self._pre_z[...] = 0.0
        self._band_z[...] = 0.0
        self._prev[...] = 0.0
        self._started[...] = False
        self._out[...] = 0.0
        self.n_channel_resets = 0

    def step(self, hop: np.ndarray) -> np.ndarray:
        """Measures of one hop.

        Parameters
        ----------
        hop : ndarray, shape (hop_samples, n_channels)
            Raw samples, uV (not modified; another dtype or layout is copied first).

        Returns
        -------
        ndarray, shape (3 * n_channels,)
            The pipeline's own array, overwritten by the next call.
        """
        if type(hop) is not np.ndarray or hop.dtype != _F64 or not hop.flags.c_contiguous \
                or hop.shape != self._hop_shape:
            hop = self._coerce(hop)
        n = K.detector_measures(hop, self.pre_sos, self.pre_zi, self._pre_z, self.band_sos,
                                self.band_zi, self._band_z, self._prev, self._started,
                                self._out)
        if n:
            self.n_channel_resets += n
        return self._out

    def _coerce(self, hop: npt.ArrayLike) -> np.ndarray:
        return copy_into(hop, self._in, "hop", "(hop_samples, n_channels)")

    def process(self, x: np.ndarray) -> np.ndarray:
        """Offline measures of a whole recording from zero state (streaming state untouched).

        Parameters
        ----------
        x : ndarray, shape (n_samples, n_channels)

        Returns
        -------
        ndarray, shape (n_samples // hop_samples, 3 * n_channels)
        """
        x = np.asarray(x)
        if x.ndim != 2 or x.shape[1] != self._n_channels:
            raise ValueError(f"x must be a (n_samples, {self._n_channels}) array, "
                             f"got shape {x.shape}")
        x = np.ascontiguousarray(x, dtype=np.float64)
        out = np.zeros((x.shape[0] // self._hop, self.n_features))
        K.detector_measures_process(x, self._hop, self.pre_sos, self.pre_zi,
                                    np.zeros_like(self._pre_z), self.band_sos, self.band_zi,
                                    np.zeros_like(self._band_z),
                                    np.zeros_like(self._prev), np.zeros_like(self._started),
                                    out)
        return out

    def warmup(self) -> None:
        """Compile every kernel with the real shapes, then :meth:`reset`."""
        hop = np.zeros(self._hop_shape)
        self.step(hop)
        self.step(hop)
        self.process(np.zeros((2 * self._hop, self._n_channels)))
        self.reset()

    def __repr__(self) -> str:
        return (f"DetectorPipeline(n_channels={self._n_channels}, "
                f"sampling_rate_hz={self._fs:g}, hop_samples={self._hop}, "
                f"band_hz={list(self._band)}, highpass_hz={self._highpass_hz:g}, "
                f"lowpass_hz={self._lowpass_hz:g}, "
                f"notch_hz={self._notch_hz})")
