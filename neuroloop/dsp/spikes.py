"""Intracortical spike-band features per bin: threshold crossings and spike-band power.

:class:`SpikeBandFeatures` is the host's feature pipeline of the ``intracortical`` scenario in
*raw* mode (1024 channels at 30 kHz in, 2 x 1024 features per 20 ms bin out), and the same
kernel runs "on the chip" of the simulated implant in *binned* mode (on int16 counts), whose
bins :class:`BinnedFeatures` passes on to the decoder. See :mod:`._spike_kernels` for the
math, the tiling and the feature layout (crossings of every channel, then spike-band power of
every channel).

Thresholds are ``threshold_multiplier`` (negative, e.g. -4.5) times the RMS of the spike-band
signal over the first ``threshold_calibration_s`` of the stream the pipeline sees; until then
no crossing is counted. This is a pure function of the sample stream, so a replay reproduces
it bit for bit.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from .._buffers import copy_into
from ..errors import ConfigError
from . import _spike_kernels as K
from .filters import _check_channels, check_sampling_rate, design_bandpass_sos, pad_sections

__all__ = ["SpikeBandFeatures", "BinnedFeatures", "bin_samples_for", "check_multiplier",
           "spike_pipeline", "source_options_for",
           "SPIKE_BAND_HZ", "SBP_BAND_HZ"]

#: Default spike band for threshold crossings (Hz); BrainGate filters 250-5000 Hz.
SPIKE_BAND_HZ = (250.0, 5000.0)
#: Spike-band power band (Hz), after Nason et al. 2020.
SBP_BAND_HZ = (300.0, 1000.0)


def bin_samples_for(bin_ms: float, sampling_rate_hz: float, key: str = "dsp.bin_ms") -> int:
    """Samples per bin of ``bin_ms`` milliseconds (rounded); a bin shorter than one sample
    period, or not finite, is a :class:`ConfigError` naming ``key``."""
    fs = check_sampling_rate(sampling_rate_hz)
    period_ms = 1000.0 / fs
    if isinstance(bin_ms, bool) or not isinstance(bin_ms, int | float) \
            or not math.isfinite(bin_ms) or bin_ms < period_ms:
        raise ConfigError(f"{key} = {bin_ms!r} is shorter than one sample period "
                          f"({period_ms:.4g} ms at {fs:g} Hz) or not a number; use at least "
                          f"{period_ms:.4g} ms, e.g. 20")
    n = int(round(bin_ms / period_ms))
    if n * period_ms > 10_000.0:
        raise ConfigError(f"{key} = {bin_ms!r} is longer than 10 s; use e.g. 20")
    return n


def check_multiplier(value: object, key: str = "dsp.threshold_multiplier") -> float:
    """A threshold multiplier must be a finite negative number (spikes are negative-going)."""
    if isinstance(value, bool) or not isinstance(value, int | float) \
            or not math.isfinite(value) or value == 0:
        raise ConfigError(f"{key} = {value!r} is not a finite non-zero number; use e.g. -4.5 "
                          "(times the RMS)")
    if value > 0:
        raise ConfigError(f"{key} = {value!r} has the wrong sign: extracellular spikes are "
                          f"negative-going, thresholds sit below zero; use {-value:g}")
    if value < -100:
        raise ConfigError(f"{key} = {value!r} is below -100 x RMS (nothing would cross); "
                          "use e.g. -4.5")
    return float(value)


class SpikeBandFeatures:
    """Streaming threshold crossings and spike-band power per bin.

    Parameters
    ----------
    n_channels : int
    sampling_rate_hz : float
    bin_samples : int
        Samples per bin (600 for 20 ms at 30 kHz); one feature vector per bin.
    car : bool, default True
        Common-average reference before filtering.
    spike_band_hz : (float, float)
        Spike band of the threshold detector.
    sbp_band_hz : (float, float)
        Band of the spike-band power.
    filter_order : int, default 2
        Butterworth design order of both band-passes (``order`` sections each).
    threshold_multiplier : float, default -4.5
        Threshold in units of the calibration RMS; must be negative.
    threshold_calibration_s : float, default 1.0
        Stream time over which the RMS is estimated (rounded up to whole bins).
    input_dtype : {"float64", "int16"}
        What :meth:`step` is compiled for (int16: the chip, in ADC counts).

    Raises
    ------
    ConfigError
        For a bad rate, channel count, bin, band or multiplier.
    """

    SHADOW_STATE: tuple[str, ...] = ("_spk_z", "_sbp_z", "_thr", "_prev", "_sumsq", "_cal")
    #: No shadow cycle (:mod:`neuroloop.runtime.shadow`) before each bin: a 1024 x 600 bin is
    #: 4.9 MB, more than the caches it would warm, and the shadow would double the work.
    SHADOW_CYCLE = False

    def __init__(self, n_channels: int, sampling_rate_hz: float, bin_samples: int, *,
                 car: bool = True, spike_band_hz: Sequence[float] = SPIKE_BAND_HZ,
                 sbp_band_hz: Sequence[float] = SBP_BAND_HZ, filter_order: int = 2,
                 threshold_multiplier: float = -4.5, threshold_calibration_s: float = 1.0,
                 input_dtype: str = "float64",
                 channel_names: Sequence[str] | None = None) -> None:
        self._n = _check_channels(n_channels)
        self._fs = check_sampling_rate(sampling_rate_hz)
        if isinstance(bin_samples, bool) or not isinstance(bin_samples, int | np.integer) \
                or bin_samples < 1:
            raise ConfigError(f"bin of {bin_samples!r} samples is not a positive integer; "
                              "use e.g. 600 (20 ms at 30 kHz)")
        self._bin = int(bin_samples)
        self._car = bool(car)
        self.multiplier = check_multiplier(threshold_multiplier)
        if not (isinstance(threshold_calibration_s, int | float)
                and 0 < threshold_calibration_s <= 600):
            raise ConfigError(f"dsp.threshold_calibration_s = {threshold_calibration_s!r} must "
                              "be in (0, 600] seconds; use e.g. 1.0")
        self.calibration_bins = max(1, math.ceil(threshold_calibration_s * self._fs / self._bin))
        self.spike_band_hz = tuple(float(f) for f in spike_band_hz)
        self.sbp_band_hz = tuple(float(f) for f in sbp_band_hz)
        #: SciPy designs (for references and inspection).
        if filter_order not in (1, 2):
            raise ConfigError(f"dsp.filter_order = {filter_order!r}: the spike-band kernel "
                              "fuses two sections per filter; use 1 or 2")
        self.spike_sos = design_bandpass_sos(self.spike_band_hz, filter_order, self._fs)
        self.sbp_sos = design_bandpass_sos(self.sbp_band_hz, filter_order, self._fs)
        self._spk_sos = pad_sections(self.spike_sos, 2)
        self._sbp_sos = pad_sections(self.sbp_sos, 2)
        if input_dtype not in ("float64", "int16"):
            raise ValueError("input_dtype must be 'float64' or 'int16'")
        self._dtype = np.dtype(input_dtype)
        n = self._n
        self._spk_z = np.zeros((2, 2, n))
        self._sbp_z = np.zeros((2, 2, n))
        self._thr = np.full(n, -np.inf)
        self._prev = np.zeros(n)
        self._sumsq = np.zeros(n)
        self._cal = np.array([self.calibration_bins, 0], dtype=np.int64)
        self._mean = np.zeros(self._bin)
        self._out = np.zeros(2 * n)
        self._in = np.zeros((self._bin, n), dtype=self._dtype)
        self._shape = (self._bin, n)
        self._names = ([f"ch{c + 1:04d}" for c in range(n)] if channel_names is None
                       else [str(s) for s in channel_names])
        #: Channel resets after non-finite input.
        self.n_channel_resets = 0

    # -- properties ------------------------------------------------------------------------
    @property
    def n_channels(self) -> int:
        return self._n

    @property
    def sampling_rate_hz(self) -> float:
        return self._fs

    @property
    def hop_samples(self) -> int:
        """Samples per bin (the loop's hop)."""
        return self._bin

    @property
    def n_features(self) -> int:
        return 2 * self._n

    @property
    def feature_names(self) -> list[str]:
        return [f"{c}:tx" for c in self._names] + [f"{c}:sbp" for c in self._names]

    @property
    def thresholds(self) -> np.ndarray:
        """Current thresholds (``-inf`` before calibration ends), same unit as the input."""
        return self._thr.copy()

    @property
    def calibrated(self) -> bool:
        return bool(self._cal[0] == 0)

    # -- streaming -------------------------------------------------------------------------
    def reset(self) -> None:
        """Back to the state at construction (thresholds are estimated again)."""
        for a in (self._spk_z, self._sbp_z, self._prev, self._sumsq, self._out):
            a[...] = 0.0
        self._thr[...] = -np.inf
        self._cal[0] = self.calibration_bins
        self._cal[1] = 0
        self.n_channel_resets = 0

    def step(self, hop: np.ndarray) -> np.ndarray:
        """Features of one bin, shape (2 * n_channels,) (the pipeline's own array: copy it)."""
        if type(hop) is not np.ndarray or hop.dtype != self._dtype \
                or not hop.flags.c_contiguous or hop.shape != self._shape:
            hop = copy_into(hop, self._in, "bin", "(bin_samples, n_channels)")
        n = K.spike_bin(hop, self._car, self._mean, self._spk_sos, self._spk_z, self._sbp_sos,
                        self._sbp_z, self._thr, self._prev, self._sumsq, self._cal,
                        self.multiplier, self._out)
        if n:
            self.n_channel_resets += n
        return self._out

    def process(self, x: np.ndarray) -> np.ndarray:
        """Offline features of consecutive bins of ``x`` from the current state (which it
        advances, like as many :meth:`step` calls); trailing samples are ignored."""
        x = np.ascontiguousarray(x, dtype=self._dtype)
        if x.ndim != 2 or x.shape[1] != self._n:
            raise ValueError(f"x must be (n_samples, {self._n}), got {x.shape}")
        out = np.zeros((x.shape[0] // self._bin, 2 * self._n))
        self.n_channel_resets += K.spike_process(
            x, self._bin, self._car, self._mean, self._spk_sos, self._spk_z, self._sbp_sos,
            self._sbp_z, self._thr, self._prev, self._sumsq, self._cal, self.multiplier, out)
        return out

    def warmup(self) -> None:
        """Compile with the real shapes, then :meth:`reset`."""
        self.step(np.zeros(self._shape, dtype=self._dtype))
        self.process(np.zeros((self._bin, self._n), dtype=self._dtype))
        self.reset()

    def __repr__(self) -> str:
        return (f"SpikeBandFeatures(n_channels={self._n}, sampling_rate_hz={self._fs:g}, "
                f"bin_samples={self._bin}, car={self._car}, spike_band_hz={self.spike_band_hz},"
                f" sbp_band_hz={self.sbp_band_hz}, threshold_multiplier={self.multiplier:g})")


class BinnedFeatures:
    """The host side of *binned* mode: each "sample" of the stream is one bin computed on
    the implant (crossings then spike-band power per channel, :class:`SpikeBandFeatures`'
    layout), and the features are that row, copied into the pipeline's own array.

    Parameters
    ----------
    n_features : int
        Values per bin (2 x the implant's channel count).
    """

    SHADOW_STATE: tuple[str, ...] = ()

    def __init__(self, n_features: int, channel_names: Sequence[str] | None = None) -> None:
        if n_features < 2 or n_features % 2:
            raise ConfigError(f"a binned stream carries 2 values per electrode; got "
                              f"{n_features} channels, use an even count")
        self._out = np.zeros(n_features)
        self._names = (list(channel_names) if channel_names is not None else
                       [f"ch{c + 1:04d}:tx" for c in range(n_features // 2)]
                       + [f"ch{c + 1:04d}:sbp" for c in range(n_features // 2)])
        self.n_channel_resets = 0

    @property
    def n_features(self) -> int:
        return int(self._out.shape[0])

    @property
    def n_channels(self) -> int:
        return self.n_features

    @property
    def hop_samples(self) -> int:
        return 1

    @property
    def feature_names(self) -> list[str]:
        return list(self._names)

    def reset(self) -> None:
        self._out[...] = 0.0

    def step(self, hop: np.ndarray) -> np.ndarray:
        """``hop`` (1, n_features) -> features (n_features,) (the pipeline's own array)."""
        np.copyto(self._out, hop[0])
        return self._out

    def process(self, x: np.ndarray) -> np.ndarray:
        return np.array(x, dtype=np.float64, copy=True)

    def warmup(self) -> None:
        self.step(np.zeros((1, self.n_features)))
        self.reset()


def spike_pipeline(params: Mapping[str, Any]) -> SpikeBandFeatures | BinnedFeatures:
    """The host pipeline of a ``[dsp] kind = "spike-band"`` scenario (``params`` as
    :func:`neuroloop.config` validated them): :class:`SpikeBandFeatures` on raw samples, or
    :class:`BinnedFeatures` on the implant's bins."""
    n = int(params["electrodes"])
    if params.get("acquisition") == "binned":
        return BinnedFeatures(2 * n)
    return SpikeBandFeatures(
        n, float(params["sampling_rate_hz"]), int(params["bin_samples"]),
        car=bool(params.get("car", True)),
        spike_band_hz=_band(params, "spike_band_hz", SPIKE_BAND_HZ),
        sbp_band_hz=_band(params, "sbp_band_hz", SBP_BAND_HZ),
        filter_order=int(params.get("filter_order", 2)),
        threshold_multiplier=float(params["threshold_multiplier"]),
        threshold_calibration_s=_calibration_s(params))


def source_options_for(params: Mapping[str, Any]) -> dict[str, Any]:
    """Options an ``intracortical://`` source needs to deliver what the pipeline expects:
    the mode, and in binned mode what the chip computes (bin, thresholds)."""
    return {"mode": params.get("acquisition", "raw"), "bin_ms": params["bin_ms"],
            "threshold_multiplier": params["threshold_multiplier"],
            "threshold_calibration_s": _calibration_s(params),
            "n_channels": int(params["electrodes"]),
            "sampling_rate_hz": float(params["sampling_rate_hz"])}


def _calibration_s(params: Mapping[str, Any]) -> float:
    v = params.get("threshold_calibration_s", 1.0)
    if isinstance(v, bool) or not isinstance(v, int | float) or not 0 < v <= 600:
        raise ConfigError(f"dsp.threshold_calibration_s = {v!r} must be in (0, 600] seconds; "
                          "use e.g. 1.0")
    return float(v)


def _band(params: Mapping[str, Any], key: str, default: tuple[float, float]
          ) -> tuple[float, float]:
    v = params.get(key, list(default))
    fs = float(params["sampling_rate_hz"])
    from .filters import check_band

    if not isinstance(v, list | tuple) or len(v) != 2:
        raise ConfigError(f"dsp.{key} = {v!r} must be a [low, high] pair in Hz, e.g. "
                          f"{list(default)}")
    return check_band(v, fs)
