"""Filter design (SciPy, at configuration time) and streaming filter wrappers.

Design happens once, with SciPy: Butterworth band-pass SOS per band, ``iirnotch`` sections
for the line frequency and its harmonics. Only the streaming application is compiled (see
:mod:`neuroloop.dsp._kernels` for the state layout, which equals SciPy's ``zi``).

Every validation failure raises :class:`neuroloop.errors.ConfigError` with one line that
names the problem and the fix.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import scipy.signal

from ..errors import ConfigError
from . import _kernels

__all__ = [
    "IDENTITY_SECTION",
    "check_sampling_rate",
    "check_band",
    "design_bandpass_sos",
    "design_notch_sos",
    "notch_frequencies",
    "pad_sections",
    "CommonAverageReference",
    "StreamingSOSFilter",
]

#: An SOS row that passes a finite signal through unchanged (``y = x``, state stays 0).
IDENTITY_SECTION = np.array([1.0, 0.0, 0.0, 1.0, 0.0, 0.0])

_F64 = np.dtype(np.float64)


def check_sampling_rate(sampling_rate_hz: float) -> float:
    """Return ``sampling_rate_hz`` as float or raise ConfigError if it is not positive/finite."""
    try:
        fs = float(sampling_rate_hz)
    except (TypeError, ValueError):
        raise ConfigError(f"sampling rate {sampling_rate_hz!r} is not a number; "
                          "give it in Hz, e.g. 586") from None
    if not math.isfinite(fs) or fs <= 0:
        raise ConfigError(f"sampling rate {sampling_rate_hz!r} Hz is not positive; "
                          "give the acquisition rate in Hz, e.g. 586")
    return fs


def check_band(band_hz: Sequence[float], sampling_rate_hz: float) -> tuple[float, float]:
    """Validate one ``(lo, hi)`` pass band in Hz against the Nyquist frequency.

    Returns
    -------
    (lo, hi) : tuple of float
    """
    fs = check_sampling_rate(sampling_rate_hz)
    try:
        lo, hi = (float(v) for v in band_hz)
    except (TypeError, ValueError):
        raise ConfigError(f"band {band_hz!r} is not a pair of frequencies; "
                          "write it as [low_hz, high_hz], e.g. [13, 30]") from None
    nyq = fs / 2.0
    if not (math.isfinite(lo) and math.isfinite(hi)):
        raise ConfigError(f"band {lo:g}-{hi:g} Hz is not finite; use finite edges in Hz")
    if lo <= 0:
        raise ConfigError(f"band {lo:g}-{hi:g} Hz has a lower edge <= 0 Hz; "
                          "use a lower edge above 0 Hz (a band-pass needs one)")
    if lo >= hi:
        raise ConfigError(f"band {lo:g}-{hi:g} Hz has its lower edge at or above its upper "
                          "edge; write it as [low_hz, high_hz] with low < high")
    if hi >= nyq:
        raise ConfigError(f"band {lo:g}-{hi:g} Hz reaches Nyquist ({nyq:g} Hz) of a {fs:g} Hz "
                          f"signal; lower its upper edge below {nyq:g} Hz")
    return lo, hi


def design_bandpass_sos(band_hz: Sequence[float], order: int,
                        sampling_rate_hz: float) -> np.ndarray:
    """Butterworth band-pass as second-order sections.

    ``scipy.signal.butter(order, band_hz, btype="bandpass", fs=sampling_rate_hz,
    output="sos")``: a design order N gives 2N poles, i.e. N sections.

    Returns
    -------
    sos : ndarray, shape (order, 6), float64, C-contiguous
    """
    fs = check_sampling_rate(sampling_rate_hz)
    lo, hi = check_band(band_hz, fs)
    if isinstance(order, bool) or not isinstance(order, int | np.integer) or not 1 <= order <= 12:
        raise ConfigError(f"filter order {order!r} is not an integer in 1..12; "
                          "use e.g. 4 (a 4th-order Butterworth band-pass)")
    sos = scipy.signal.butter(int(order), [lo, hi], btype="bandpass", fs=fs, output="sos")
    return np.ascontiguousarray(sos, dtype=np.float64)


def notch_frequencies(line_hz: Sequence[float], sampling_rate_hz: float) -> list[float]:
    """Line frequencies and all their harmonics strictly below Nyquist, sorted, unique.

    Raises ConfigError if a line frequency is not positive or not below Nyquist.
    """
    fs = check_sampling_rate(sampling_rate_hz)
    nyq = fs / 2.0
    freqs: set[float] = set()
    for f in line_hz:
        try:
            f0 = float(f)
        except (TypeError, ValueError):
            raise ConfigError(f"notch frequency {f!r} is not a number; "
                              "give the line frequency in Hz, e.g. 50 or 60") from None
        if not math.isfinite(f0) or f0 <= 0:
            raise ConfigError(f"notch frequency {f!r} Hz is not positive; "
                              "give the line frequency in Hz, e.g. 50 or 60")
        if f0 >= nyq:
            raise ConfigError(f"notch frequency {f0:g} Hz is not below Nyquist ({nyq:g} Hz) "
                              f"of a {fs:g} Hz signal; remove it or use a line frequency "
                              f"below {nyq:g} Hz")
        k = 1
        while k * f0 < nyq:
            freqs.add(round(k * f0, 9))
            k += 1
    return sorted(freqs)


def design_notch_sos(line_hz: Sequence[float], quality: float,
                     sampling_rate_hz: float) -> np.ndarray:
    """``scipy.signal.iirnotch`` sections for each line frequency and harmonic below Nyquist.

    Parameters
    ----------
    line_hz : sequence of float
        Line frequencies in Hz (e.g. ``[50]``); empty gives no sections.
    quality : float
        Quality factor Q of each notch (centre frequency / -3 dB width), e.g. 30.
    sampling_rate_hz : float

    Returns
    -------
    sos : ndarray, shape (n_notches, 6), float64, C-contiguous (one section per notch)
    """
    fs = check_sampling_rate(sampling_rate_hz)
    freqs = notch_frequencies(line_hz, fs)
    try:
        q = float(quality)
    except (TypeError, ValueError):
        q = float("nan")
    if freqs and (not math.isfinite(q) or q <= 0):
        raise ConfigError(f"notch quality factor {quality!r} is not positive; use e.g. 30")
    rows = []
    for f in freqs:
        b, a = scipy.signal.iirnotch(f, q, fs=fs)
        rows.append(scipy.signal.tf2sos(b, a)[0])
    if not rows:
        return np.zeros((0, 6))
    return np.ascontiguousarray(rows, dtype=np.float64)


def pad_sections(sos: np.ndarray, multiple: int = 4) -> np.ndarray:
    """Append identity sections so that the number of sections is a multiple of ``multiple``.

    The fused kernels apply four sections per pass; an identity section (``[1,0,0,1,0,0]``)
    leaves a finite signal bit-identical, so padding does not change the result.

    Parameters
    ----------
    sos : ndarray, shape (n_sections, 6)

    Returns
    -------
    ndarray, shape (ceil(n_sections / multiple) * multiple, 6), float64, C-contiguous
    """
    sos = np.asarray(sos, dtype=np.float64).reshape(-1, 6)
    n = sos.shape[0]
    n_pad = (-n) % multiple
    if n_pad:
        sos = np.vstack([sos, np.tile(IDENTITY_SECTION, (n_pad, 1))])
    return np.ascontiguousarray(sos)


def _check_block(x: np.ndarray, n_channels: int, what: str) -> None:
    if not isinstance(x, np.ndarray) or x.ndim != 2 or x.shape[1] != n_channels:
        shape = getattr(x, "shape", type(x).__name__)
        raise ValueError(f"{what} must be a (n_samples, {n_channels}) array, got {shape}")
    if x.dtype != _F64 or not x.flags.c_contiguous:
        raise ValueError(f"{what} must be C-contiguous float64; use "
                         "np.ascontiguousarray(x, dtype=np.float64)")


class CommonAverageReference:
    """Subtract, at every sample, the mean over reference channels from every channel.

    Parameters
    ----------
    n_channels : int
    ref_channels : sequence of int, optional
        Channels averaged into the reference (default: all). Exclude known-bad channels here.
    """

    def __init__(self, n_channels: int, ref_channels: Sequence[int] | None = None) -> None:
        self.n_channels = _check_channels(n_channels)
        self.ref_index = _check_ref_channels(ref_channels, self.n_channels)

    def apply(self, x: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        """Referenced copy of ``x`` (shape (n_samples, n_channels)); ``out`` may be ``x``."""
        out = _checked_io(x, out, self.n_channels)
        _kernels.car_subset(x, self.ref_index, out)
        return out


def _checked_io(x: np.ndarray, out: np.ndarray | None, n_channels: int) -> np.ndarray:
    """Validate a block ``x`` and its output buffer (allocated when ``out`` is None)."""
    _check_block(x, n_channels, "x")
    if out is None:
        return np.empty_like(x)
    _check_block(out, n_channels, "out")
    if out.shape != x.shape:
        raise ValueError(f"out has shape {out.shape}, expected {x.shape}")
    return out


class StreamingSOSFilter:
    """An SOS cascade applied block by block with its state carried across blocks.

    The result of any split of a signal into blocks equals one-shot
    ``scipy.signal.sosfilt(sos, x, axis=0)`` on the whole signal.

    Parameters
    ----------
    sos : ndarray, shape (n_sections, 6)
        Second-order sections (SciPy layout, ``a0 == 1``).
    n_channels : int

    Attributes
    ----------
    state : ndarray, shape (n_sections, 2, n_channels)
        Carried state; identical to SciPy's ``zi`` for ``sosfilt(..., axis=0)``.
    """

    def __init__(self, sos: np.ndarray, n_channels: int) -> None:
        sos = np.ascontiguousarray(sos, dtype=np.float64)
        if sos.ndim != 2 or sos.shape[1] != 6:
            raise ConfigError(f"SOS coefficients have shape {sos.shape}; expected "
                              "(n_sections, 6) as returned by scipy.signal.butter(output='sos')")
        if not np.all(np.isfinite(sos)) or not np.allclose(sos[:, 3], 1.0):
            raise ConfigError("SOS coefficients must be finite with a0 == 1; "
                              "design them with scipy.signal (output='sos')")
        self.sos = sos
        self.n_channels = _check_channels(n_channels)
        self.state = np.zeros((sos.shape[0], 2, self.n_channels))

    def reset(self) -> None:
        """Zero the filter state."""
        self.state[...] = 0.0

    def step(self, x: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        """Filter one block ``x`` (shape (n_samples, n_channels)); ``out`` may be ``x``."""
        out = _checked_io(x, out, self.n_channels)
        _kernels.sos_stream(x, self.sos, self.state, out)
        return out


def _check_channels(n_channels: int) -> int:
    if isinstance(n_channels, bool) or not isinstance(n_channels, int | np.integer) \
            or n_channels < 1:
        raise ConfigError(f"channel count {n_channels!r} is not a positive integer; "
                          "give the number of recorded channels, e.g. 64")
    return int(n_channels)


def _check_ref_channels(ref_channels: Sequence[int] | None, n_channels: int) -> np.ndarray:
    if ref_channels is None:
        return np.arange(n_channels, dtype=np.int64)
    idx = np.asarray(list(ref_channels))
    if idx.size == 0:
        raise ConfigError("CAR reference channel list is empty; list at least one channel "
                          "or leave it unset to average all channels")
    if not np.issubdtype(idx.dtype, np.integer):
        raise ConfigError(f"CAR reference channels {list(ref_channels)!r} are not integer "
                          "indices; give 0-based channel numbers")
    outside = idx[(idx < 0) | (idx >= n_channels)]
    if outside.size:
        raise ConfigError(f"CAR reference channel {int(outside[0])} is outside "
                          f"0..{n_channels - 1}; use 0-based channel numbers")
    if np.unique(idx).size != idx.size:
        raise ConfigError("CAR reference channels contain duplicates; list each channel once")
    return np.ascontiguousarray(idx, dtype=np.int64)
