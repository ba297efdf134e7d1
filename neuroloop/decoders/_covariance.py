"""Base of the spatial-covariance families (riemann, csp-lda): the sliding window.

Features in are hop covariances, band-major packed upper triangles (what
:class:`neuroloop.dsp.covariance.CovariancePipeline` computes, ``dsp.features =
"covariance"``). The window covariance of a hop is the mean of the last ``window_hops``
valid hops (a hop with a non-finite feature is reported invalid and left out of the window),
shrunk towards ``trace/n * I`` by ``shrinkage``. The family maps each band's window
covariance to a feature vector (tangent vector, CSP log-variances) and a linear model maps
those to per-state scores.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Self

import numpy as np
import numpy.typing as npt

from .._buffers import copy_into
from .._checks import Range
from ..errors import ConfigError
from . import _cov_kernels as ck
from . import _gate_kernels as gk
from ._blas import single_threaded_blas
from ._classifier import ClassifierDecoder, check_int_param, check_param
from .base import DecoderOutput

__all__ = ["CovarianceClassifier", "n_channels_of", "packed_size", "unpack",
           "example_covariance_data"]

_F64 = np.dtype(np.float64)
_BANDS = Range(1, 64, integer=True)
_WINDOW = Range(1, 1000, integer=True)
_SHRINK = Range(0.0, 1.0, hi_open=True)


def packed_size(n: int) -> int:
    return n * (n + 1) // 2


def n_channels_of(n_features: int, n_bands: int) -> int:
    """Channels ``n`` with ``n_bands * n (n + 1) / 2 == n_features``; ConfigError if none."""
    per = n_features // n_bands if n_bands > 0 else 0
    n = int(round((np.sqrt(8 * per + 1) - 1) / 2)) if per > 0 else 0
    if n < 2 or n_bands * packed_size(n) != n_features:
        raise ConfigError(f"{n_features} features are not {n_bands} band(s) of packed channel "
                          "covariances; set dsp.features = \"covariance\" (and n_bands to the "
                          "number of dsp.bands_hz)")
    return n


def unpack(packed: np.ndarray, n: int) -> np.ndarray:
    """Packed upper triangles (..., n(n+1)/2) -> symmetric matrices (..., n, n)."""
    iu = np.triu_indices(n)
    out = np.zeros(packed.shape[:-1] + (n, n))
    out[..., iu[0], iu[1]] = packed
    out[..., iu[1], iu[0]] = packed
    return out


def example_covariance_data(n_hops: int = 600, seed: int = 0, n_channels: int = 4,
                            hop: int = 25) -> tuple[np.ndarray, np.ndarray]:
    """Hop covariances of three classes that differ in which spatial source is active.

    Returns
    -------
    X : ndarray, shape (n_hops, n_channels (n_channels + 1) / 2)
    y : ndarray, shape (n_hops,), int64, in blocks of 20 hops
    """
    rng = np.random.default_rng(seed)
    mixing = np.random.default_rng(1234).normal(size=(n_channels, n_channels))
    y = np.repeat(np.arange(n_hops // 20 + 1) % 3, 20)[:n_hops]
    iu = np.triu_indices(n_channels)
    X = np.zeros((n_hops, iu[0].size))
    for h in range(n_hops):
        gains = np.ones(n_channels)
        gains[y[h]] = 3.0
        s = rng.normal(size=(hop, n_channels)) * gains
        x = s @ mixing.T
        X[h] = (x.T @ x / hop)[iu]
    return X, y.astype(np.int64)


class CovarianceClassifier(ClassifierDecoder):
    """Sliding-window spatial covariance + a per-band transform + a linear model.

    Parameters
    ----------
    n_bands : int, default 1
        Bands in the covariance features.
    window_hops : int, default 10
        Hops averaged into the window covariance (10 hops of 100 ms = 1 s).
    shrinkage : float, default 0.05
        Shrinkage of the window covariance towards ``trace/n * I``, in [0, 1).
    Other parameters: :class:`~neuroloop.decoders._classifier.ClassifierDecoder`.
    """

    sequential = True
    features = "covariance"

    def __init__(self, n_bands: int = 1, window_hops: int = 10, shrinkage: float = 0.05,
                 **gate: Any) -> None:
        super().__init__(**gate)
        self.n_bands = check_int_param("n_bands", n_bands, _BANDS,
                                       "the number of dsp.bands_hz, e.g. 1")
        self.window_hops = check_int_param("window_hops", window_hops, _WINDOW,
                                           "e.g. 10 (1 s of 100 ms hops)")
        self.shrinkage = check_param("shrinkage", shrinkage, _SHRINK, "e.g. 0.05")

    def _cov_params(self) -> dict[str, Any]:
        return {"n_bands": self.n_bands, "window_hops": self.window_hops,
                "shrinkage": self.shrinkage, **self._gate_params()}

    def fit(self, X: np.ndarray, y: np.ndarray, *,
            state_names: Sequence[str] | None = None) -> Self:
        """Fit with BLAS on one thread (:mod:`neuroloop.decoders._blas`); the family's own
        fitting is :meth:`_fit`."""
        with single_threaded_blas():
            return self._fit(X, y, state_names=state_names)

    def _fit(self, X: np.ndarray, y: np.ndarray, *,
             state_names: Sequence[str] | None = None) -> Self:
        raise NotImplementedError

    @classmethod
    def example_data(cls, n_hops: int = 600, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
        return example_covariance_data(n_hops, seed)

    @property
    def n_features(self) -> int:
        self._check_fitted()
        return self.n_bands * packed_size(self.n_channels_)

    # -- offline windows -------------------------------------------------------------------
    def window_covariances(self, X: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray,
                                                                  np.ndarray]:
        """Shrunk window covariances of every valid hop, as the online path forms them.

        Parameters
        ----------
        X : ndarray, shape (n_hops, n_bands * n (n + 1) / 2)
        n : int
            Channels.

        Returns
        -------
        covs : ndarray, shape (n_valid, n_bands, n, n)
        rows : ndarray, shape (n_valid,), int
            Hop index of each window (its newest hop).
        full : ndarray, shape (n_valid,), bool
            The window holds ``window_hops`` hops.
        """
        valid = np.all(np.isfinite(X), axis=1)
        rows = np.flatnonzero(valid)
        Xv = X[valid]
        w = self.window_hops
        cs = np.concatenate([np.zeros((1, Xv.shape[1])), np.cumsum(Xv, axis=0)])
        idx = np.arange(Xv.shape[0])
        lo = np.maximum(idx + 1 - w, 0)
        count = (idx + 1 - lo)[:, None]
        mean = (cs[idx + 1] - cs[lo]) / count
        p = packed_size(n)
        covs = unpack(mean.reshape(-1, self.n_bands, p), n)
        tr = np.trace(covs, axis1=-2, axis2=-1)[..., None, None] / n
        covs = (1.0 - self.shrinkage) * covs + self.shrinkage * tr * np.eye(n)
        return covs, rows, count[:, 0] == w

    def _examples(self, X: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray, int]:
        """Full-window covariances of the labelled hops: (n_ex, n_bands, n, n), labels, n."""
        X = np.asarray(X, dtype=np.float64)
        if X.ndim != 2 or X.shape[0] == 0:
            raise ConfigError(f"calibration features have shape {X.shape}; expected "
                              "(n_hops, n_features)")
        n = n_channels_of(X.shape[1], self.n_bands)
        covs, rows, full = self.window_covariances(X, n)
        keep = full & (y[rows] >= 0)
        if int(keep.sum()) <= self.n_states_hint(y):
            raise ConfigError(f"only {int(keep.sum())} labelled hops have a full "
                              f"{self.window_hops}-hop window; record more calibration data "
                              "or lower window_hops")
        return covs[keep], y[rows[keep]], n

    @staticmethod
    def n_states_hint(y: np.ndarray) -> int:
        return int(y.max()) + 1 if y.size else 2

    # -- model set-up ----------------------------------------------------------------------
    def _set_linear(self, n: int, W: np.ndarray, b_post: np.ndarray, priors: np.ndarray,
                    state_names: Sequence[str] | None, n_feat_per_band: int) -> None:
        """Linear model ``scores = W f + b_post`` on the transformed features ``f``."""
        self.n_channels_ = int(n)
        self.coef_ = np.ascontiguousarray(W, dtype=np.float64)
        self.intercept_ = np.ascontiguousarray(b_post, dtype=np.float64)
        self._b_lik = np.ascontiguousarray(self.intercept_ - np.log(priors))
        self._ring = np.zeros((self.window_hops, self.n_bands * packed_size(n)))
        self._ring_state = np.zeros(2, dtype=np.int64)
        self._C = np.zeros((n, n))
        self._f = np.zeros(self.n_bands * n_feat_per_band)
        self._x_buf = np.zeros(self._ring.shape[1])
        self._shape = (self._ring.shape[1],)
        self._finish(priors, state_names)

    def _reset_model(self) -> None:
        ck.ring_reset(self._ring_state)

    def _warmup_features(self) -> np.ndarray:
        return np.ascontiguousarray(unpack_eye(self.n_channels_, self.n_bands))

    # -- online ----------------------------------------------------------------------------
    def _transform(self, band: int) -> bool:
        """Map ``self._C`` (band ``band``'s window covariance) into ``self._f``."""
        raise NotImplementedError

    def step(self, features: np.ndarray) -> DecoderOutput:
        """Decode one hop: packed hop covariances (n_features,) in."""
        if not self._fitted:
            self._check_fitted()
        if type(features) is not np.ndarray or features.dtype != _F64 \
                or not features.flags.c_contiguous or features.shape != self._shape:
            features = self._coerce(features)
        if not gk.all_finite(features):
            return self._decide(False)
        ck.ring_push(features, self._ring, self._ring_state)
        count = int(self._ring_state[ck.RING_COUNT])
        ok = True
        for band in range(self.n_bands):
            ck.window_cov(self._ring, count, band, self.shrinkage, self._C)
            if not self._transform(band):
                ok = False
        if ok:
            gk.affine(self.coef_, self._b_lik, self._f, self._loglik)
        return self._decide(ok)

    def _coerce(self, features: npt.ArrayLike) -> np.ndarray:
        return copy_into(features, self._x_buf, "features")

    # -- offline ---------------------------------------------------------------------------
    def transform(self, X: np.ndarray) -> np.ndarray:
        """Transformed features (tangent vectors, log-variances) of every hop through the
        online kernels, from an empty window; invalid hops give NaN rows. The online state
        is left untouched.

        Returns
        -------
        ndarray, shape (n_hops, n_bands * features_per_band)
        """
        self._check_fitted()
        X = np.ascontiguousarray(X, dtype=np.float64)
        if X.ndim != 2 or X.shape[1] != self._shape[0]:
            raise ValueError(f"X must have shape (n_hops, {self._shape[0]}), got {X.shape}")
        saved = (self._ring.copy(), self._ring_state.copy())
        out = np.full((X.shape[0], self._f.shape[0]), np.nan)
        ck.ring_reset(self._ring_state)
        try:
            for h in range(X.shape[0]):
                if not gk.all_finite(X[h]):
                    continue
                ck.ring_push(X[h], self._ring, self._ring_state)
                count = int(self._ring_state[ck.RING_COUNT])
                for band in range(self.n_bands):
                    ck.window_cov(self._ring, count, band, self.shrinkage, self._C)
                    self._transform(band)
                out[h] = self._f
        finally:
            self._ring[:], self._ring_state[:] = saved
        return out

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        """Per-hop posteriors without the gate (windows formed as online, from empty)."""
        F = self.transform(X)
        S = F @ self.coef_.T + self.intercept_
        S -= np.max(S, axis=1, keepdims=True)
        P = np.exp(S)
        return P / P.sum(axis=1, keepdims=True)


def unpack_eye(n: int, n_bands: int) -> np.ndarray:
    """Packed identity covariances for every band (a valid warm-up input)."""
    iu = np.triu_indices(n)
    return np.tile(np.eye(n)[iu], n_bands)
