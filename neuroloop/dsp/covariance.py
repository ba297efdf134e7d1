"""Streaming hop-covariance features, the input of the ``riemann`` and ``csp-lda`` decoders.

``dsp.features = "covariance"`` in a scenario selects this pipeline instead of log band
power. The front end is the same (CAR -> notch -> band-pass per band, state carried across
hops); per hop and band it outputs the spatial scatter ``Y' Y / hop_samples`` of the
band-passed hop ``Y`` (hop_samples x n_channels), packed as the upper triangle in
``numpy.triu_indices`` order, band-major: ``n_bands * n (n + 1) / 2`` features (2080 for one
band of 64 channels). The decoders average the last hops into a sliding-window covariance.

A non-finite sample gives non-finite features (the decoder reports the hop invalid) and
zeroes the filter state so that later clean hops recover.
"""

from __future__ import annotations

import numpy as np

from . import _cov_kernels
from .features import FeaturePipeline

__all__ = ["CovariancePipeline"]

_F64 = np.dtype(np.float64)


class CovariancePipeline(FeaturePipeline):
    """Hop covariances per band (parameters as :class:`~neuroloop.dsp.FeaturePipeline`)."""

    SHADOW_STATE: tuple[str, ...] = ("_bank_z", "_notch_z")

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        n = self.n_channels
        self._out = np.zeros(self.n_bands * n * (n + 1) // 2)

    @property
    def feature_names(self) -> list[str]:
        """``"C3*C4:8-30Hz"`` for the (C3, C4) entry of band 8-30 Hz, in feature order."""
        iu = np.triu_indices(self.n_channels)
        names = self._channel_names
        return [f"{names[i]}*{names[j]}:{lo:g}-{hi:g}Hz" for lo, hi in self.bands_hz
                for i, j in zip(iu[0], iu[1], strict=True)]

    def step(self, hop: np.ndarray) -> np.ndarray:
        """Packed hop covariances of one hop (the pipeline's own array, overwritten)."""
        if type(hop) is not np.ndarray or hop.dtype != _F64 or not hop.flags.c_contiguous \
                or not hop.flags.writeable or hop.shape != self._hop_shape:
            hop = self._coerce(hop)
        n = _cov_kernels.covariance_step(hop, self._car_index, self._notch_sos_p, self._notch_z,
                                         self._bank_sos, self._bank_z, self._work, self._out)
        if n:
            self.n_channel_resets += self.n_channels
        return self._out

    def process(self, x: np.ndarray) -> np.ndarray:
        """Offline features of a whole recording from zero state (same kernel as step)."""
        x = np.asarray(x)
        if x.ndim != 2 or x.shape[1] != self.n_channels:
            raise ValueError(f"x must be a (n_samples, {self.n_channels}) array, "
                             f"got shape {x.shape}")
        x = np.ascontiguousarray(x, dtype=np.float64)
        out = np.zeros((x.shape[0] // self.hop_samples, self.n_features))
        _cov_kernels.covariance_process(x, self.hop_samples, self._car_index, self._notch_sos_p,
                                        np.zeros_like(self._notch_z), self._bank_sos,
                                        np.zeros_like(self._bank_z), np.zeros_like(self._work),
                                        out)
        return out

    def __repr__(self) -> str:
        return "Covariance" + super().__repr__()
