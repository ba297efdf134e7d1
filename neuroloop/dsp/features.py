"""The streaming feature pipeline: CAR -> notch -> band-pass filter bank -> log band power.

One :meth:`FeaturePipeline.step` per hop runs a single compiled kernel
(:func:`neuroloop.dsp._kernels.pipeline_step`) that writes into a preallocated feature vector.

Feature layout (band-major)
---------------------------
``features[b * n_channels + c] = log(mean_t(y_b[t, c] ** 2) + LOG_POWER_EPS)``, where
``y_b`` is the hop filtered by band ``b`` (state carried from the previous hop). For the bsi
preset (8 bands x 64 channels) that is 512 features; ``feature_names`` spells it out.

Non-finite input
----------------
A NaN or infinity in a hop gives non-finite features for the affected channels (all channels
when CAR is on, since the reference mixes them), which the decoder reports as invalid. The
filter state of those channels is then zeroed so that later clean hops decode again after
the filter transient, instead of the NaN living in the IIR state forever.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from .._buffers import copy_into
from ..errors import ConfigError
from . import _kernels
from .filters import (
    _check_channels,
    _check_ref_channels,
    check_band,
    check_sampling_rate,
    design_bandpass_sos,
    design_notch_sos,
    pad_sections,
)

__all__ = ["FeaturePipeline", "LOG_POWER_EPS"]

#: Floor added to the mean power (signal unit squared, e.g. µV²) before taking the log, so
#: that a flat channel gives a finite feature (log(1e-12) = -27.6) instead of -inf.
LOG_POWER_EPS = 1e-12

_F64 = np.dtype(np.float64)


class FeaturePipeline:
    """Streaming multi-band log-power features.

    Parameters
    ----------
    n_channels : int
        Channels per sample.
    sampling_rate_hz : float
        Sampling rate in Hz.
    hop_samples : int
        Samples per hop (one feature vector per hop).
    bands_hz : sequence of (lo, hi)
        Pass bands in Hz, each strictly inside (0, Nyquist).
    filter_order : int, default 4
        Butterworth design order N of each band-pass (N second-order sections, 2N poles).
    car : bool, default True
        Apply a common average reference before filtering.
    notch_hz : sequence of float, default ()
        Line frequencies to notch, with all their harmonics below Nyquist (e.g. ``[50]``).
    notch_q : float, default 30
        Quality factor of each notch.
    car_channels : sequence of int, optional
        Channels averaged into the CAR reference (default: all).
    channel_names : sequence of str, optional
        Names used in :attr:`feature_names` (default ``ch0, ch1, ...``).

    Raises
    ------
    ConfigError
        For a non-positive rate, a hop < 1, a band not inside (0, Nyquist), lo >= hi, a bad
        order, notch or channel list.
    """

    #: The attributes that carry from hop to hop; everything else is coefficients or per-hop
    #: scratch. A shadow copy (:class:`~neuroloop.runtime.shadow.ShadowCycle`) gets private
    #: copies of these and shares the rest, so that its step warms the real buffers.
    SHADOW_STATE: tuple[str, ...] = ("_bank_z", "_notch_z")

    def __init__(self, n_channels: int, sampling_rate_hz: float, hop_samples: int,
                 bands_hz: Sequence[Sequence[float]], filter_order: int = 4, car: bool = True,
                 notch_hz: Sequence[float] = (), notch_q: float = 30.0,
                 car_channels: Sequence[int] | None = None,
                 channel_names: Sequence[str] | None = None) -> None:
        self._n_channels = _check_channels(n_channels)
        self._fs = check_sampling_rate(sampling_rate_hz)
        if isinstance(hop_samples, bool) or not isinstance(hop_samples, int | np.integer) \
                or hop_samples < 1:
            raise ConfigError(f"hop of {hop_samples!r} samples is not a positive integer; "
                              "use e.g. round(0.1 * sampling_rate_hz) for 100 ms hops")
        self._hop = int(hop_samples)
        bands = list(bands_hz)
        if not bands:
            raise ConfigError("no frequency bands given; list at least one [low_hz, high_hz] "
                              "band, e.g. [[13, 30]]")
        self._bands = [check_band(b, self._fs) for b in bands]
        self._order = filter_order
        self._car = bool(car)
        self._notch_hz = [float(f) for f in notch_hz]
        self._notch_q = notch_q
        if channel_names is None:
            names = [f"ch{c}" for c in range(self._n_channels)]
        else:
            names = [str(n) for n in channel_names]
            if len(names) != self._n_channels:
                raise ConfigError(f"{len(names)} channel names for {self._n_channels} "
                                  "channels; give one name per channel")
        self._channel_names = names

        #: Unpadded designs (what SciPy returned), for references and inspection.
        self.bank_sos = [design_bandpass_sos(b, filter_order, self._fs) for b in self._bands]
        self.notch_sos = design_notch_sos(self._notch_hz, notch_q, self._fs)

        self._bank_sos = np.ascontiguousarray(np.stack([pad_sections(s) for s in self.bank_sos]))
        self._notch_sos_p = (pad_sections(self.notch_sos) if self.notch_sos.shape[0]
                             else np.zeros((0, 6)))
        self._car_index = (_check_ref_channels(car_channels, self._n_channels) if self._car
                           else np.zeros(0, dtype=np.int64))

        c = self._n_channels
        # what carries from hop to hop (everything else is coefficients or per-hop scratch)
        self._bank_z = np.zeros((len(self._bands), self._bank_sos.shape[1], 2, c))
        self._notch_z = np.zeros((self._notch_sos_p.shape[0], 2, c))
        self._work = np.zeros((4, self._hop, c))
        self._in = np.zeros((self._hop, c))  # for hops that must be copied (see _coerce)
        self._acc = np.zeros(c)
        self._out = np.zeros(len(self._bands) * c)
        self._hop_shape = (self._hop, c)
        #: Channel resets after non-finite input since construction / :meth:`reset`.
        self.n_channel_resets = 0

    # -- properties ------------------------------------------------------------------------
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
    def bands_hz(self) -> list[tuple[float, float]]:
        return list(self._bands)

    @property
    def n_bands(self) -> int:
        return len(self._bands)

    @property
    def n_features(self) -> int:
        """``n_bands * n_channels``."""
        return self._out.shape[0]

    @property
    def feature_names(self) -> list[str]:
        """Band-major names, e.g. ``"ch3:13-30Hz"`` at index ``band * n_channels + 3``."""
        return [f"{name}:{lo:g}-{hi:g}Hz" for lo, hi in self._bands
                for name in self._channel_names]

    @property
    def car(self) -> bool:
        return self._car

    @property
    def car_index(self) -> np.ndarray:
        """Channels averaged into the CAR reference (empty when CAR is off)."""
        return self._car_index.copy()

    @property
    def notch_frequencies_hz(self) -> list[float]:
        """Every notched frequency (line frequencies and harmonics below Nyquist)."""
        from .filters import notch_frequencies

        return notch_frequencies(self._notch_hz, self._fs)

    @property
    def bank_state(self) -> np.ndarray:
        """Filter-bank state, shape (n_bands, n_sections_padded, 2, n_channels) (a view)."""
        return self._bank_z

    @property
    def notch_state(self) -> np.ndarray:
        """Notch state, shape (n_notch_sections_padded, 2, n_channels) (a view)."""
        return self._notch_z

    # -- streaming -------------------------------------------------------------------------
    def reset(self) -> None:
        """Zero every filter state (as at construction)."""
        self._bank_z[...] = 0.0
        self._notch_z[...] = 0.0
        self._out[...] = 0.0
        self.n_channel_resets = 0

    def step(self, hop: np.ndarray) -> np.ndarray:
        """Features of one hop.

        Parameters
        ----------
        hop : ndarray, shape (hop_samples, n_channels)
            Raw samples (not modified). C-contiguous writeable float64 is used as is; any
            other dtype, layout or a read-only buffer is first copied into a preallocated
            buffer (no allocation, no new compile).

        Returns
        -------
        ndarray, shape (n_features,)
            The pipeline's own output array, overwritten by the next call: copy what you keep.
        """
        if type(hop) is not np.ndarray or hop.dtype != _F64 or not hop.flags.c_contiguous \
                or not hop.flags.writeable or hop.shape != self._hop_shape:
            hop = self._coerce(hop)
        n = _kernels.pipeline_step(hop, self._car_index, self._notch_sos_p, self._notch_z,
                                   self._bank_sos, self._bank_z, self._work, self._acc,
                                   LOG_POWER_EPS, self._out)
        if n:
            self.n_channel_resets += n
        return self._out

    def _coerce(self, hop: npt.ArrayLike) -> np.ndarray:
        """Copy a hop of the right shape but another dtype, memory layout or a read-only
        buffer (e.g. a memmap) into the preallocated input buffer, so that the kernel always
        sees the one signature it was compiled for. A wrong shape is a ValueError."""
        return copy_into(hop, self._in, "hop", "(hop_samples, n_channels)")

    def process(self, x: np.ndarray) -> np.ndarray:
        """Offline features of a whole recording, hop by hop (for decoder calibration).

        Starts from zero filter state and leaves the streaming state untouched. Uses the same
        compiled kernel as :meth:`step`, so ``process(x)[h]`` equals the ``h``-th ``step``
        after :meth:`reset`.

        Parameters
        ----------
        x : ndarray, shape (n_samples, n_channels)
            Converted to C-contiguous float64. Trailing samples that do not fill a hop are
            ignored.

        Returns
        -------
        ndarray, shape (n_samples // hop_samples, n_features)
        """
        x = np.asarray(x)
        if x.ndim != 2 or x.shape[1] != self._n_channels:
            raise ValueError(f"x must be a (n_samples, {self._n_channels}) array, "
                             f"got shape {x.shape}")
        x = np.ascontiguousarray(x, dtype=np.float64)
        n_hops = x.shape[0] // self._hop
        out = np.zeros((n_hops, self.n_features))
        bank_z = np.zeros_like(self._bank_z)
        notch_z = np.zeros_like(self._notch_z)
        work = np.zeros_like(self._work)
        acc = np.zeros_like(self._acc)
        _kernels.pipeline_process(x, self._hop, self._car_index, self._notch_sos_p, notch_z,
                                  self._bank_sos, bank_z, work, acc, LOG_POWER_EPS, out)
        return out

    def warmup(self) -> None:
        """Compile every kernel with the real shapes, then :meth:`reset`."""
        hop = np.zeros(self._hop_shape)
        self.step(hop)
        self.step(hop)
        self.process(np.zeros((2 * self._hop, self._n_channels)))
        self.reset()

    def __repr__(self) -> str:
        bands = ", ".join(f"{lo:g}-{hi:g}" for lo, hi in self._bands)
        return (f"FeaturePipeline(n_channels={self._n_channels}, sampling_rate_hz={self._fs:g}, "
                f"hop_samples={self._hop}, bands_hz=[{bands}], filter_order={self._order}, "
                f"car={self._car}, notch_hz={self._notch_hz})")
