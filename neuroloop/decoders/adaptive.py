"""``adaptive``: a linear decoder that keeps learning online, with a bounded update.

Model: a least-squares classifier (ridge regression of one-hot state targets on the
standardised features, scikit-learn ``Ridge``), ``scores = W' [z, 1]``, turned into
probabilities by ``softmax(beta * scores)`` with the temperature ``beta`` fitted on the
calibration data (maximum likelihood), optionally followed by the HMM-style gate.

Online learning: recursive least squares with exponential forgetting ``forgetting``
(:mod:`neuroloop.decoders._adaptive_kernels`), initialised at the calibrated weights. Each hop whose decoded probability reaches ``adapt_confidence`` updates the
model towards its own decision (self-training, as in unsupervised co-adaptive BCIs);
``P`` starts at ``inv(Phi' Phi + ridge I)`` of the calibration data, so that RLS continues the
ridge fit rather than restarting it;
:meth:`AdaptiveDecoder.learn` updates it towards a known state (supervised, e.g. from a cue).

Bounded: after every update the weights must stay within ``max_drift`` (relative Frobenius
distance) of the calibrated ones and ``trace(P)`` below ``max_trace``; a violated bound (or a
non-finite number) marks the decoder *diverged*: every later output is invalid
(``valid=False``, so the control policy stops and the supervisor falls back) until
:meth:`reset` restores the calibrated model.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from .._buffers import copy_into
from .._checks import Range
from ..errors import ConfigError, DecoderFileError
from . import _adaptive_kernels as ak
from . import _gate_kernels as gk
from ._blas import single_threaded_blas
from ._classifier import ClassifierDecoder, check_labels, check_param
from .base import DecoderOutput, OutputSchema, register_decoder

__all__ = ["AdaptiveDecoder"]

_F64 = np.dtype(np.float64)
_FORGET = Range(0.9, 1.0, hi_open=False)
_RIDGE = Range(0.0, 1e6, lo_open=True)
_CONF = Range(0.0, 1.0)
_DRIFT = Range(0.0, 1e6, lo_open=True)
_TRACE = Range(0.0, 1e300, lo_open=True)


@register_decoder
class AdaptiveDecoder(ClassifierDecoder):
    """Least-squares classifier adapted online by bounded RLS with forgetting.

    Parameters
    ----------
    forgetting : float, default 0.999
        RLS forgetting factor in [0.9, 1] (memory of about ``1 / (1 - forgetting)`` updates).
    ridge : float, default 1.0
        Ridge penalty of the calibration fit (on standardised features).
    adapt_confidence : float, default 0.8
        Decoded probability at which a hop updates the model towards its own decision
        (1 disables self-training; :meth:`learn` still works).
    max_drift : float, default 1.0
        Bound of ``||W - W_calibrated||_F / ||W_calibrated||_F``.
    max_trace : float, default 1e6
        Bound of ``trace(P)`` (covariance wind-up under forgetting).
    n_states, gate, transition_stay, gate_hops, gate_threshold
        See :class:`~neuroloop.decoders._classifier.ClassifierDecoder`.

    Attributes
    ----------
    weights0_ : ndarray, shape (n_features + 1, n_states)
        Calibrated weights (on standardised features, last row the bias).
    mean_, scale_ : ndarray, shape (n_features,)
    beta_ : float
        Softmax temperature.
    diverged : bool
        A bound was violated since the last :meth:`reset`.
    n_updates : int
        Online updates since the last :meth:`reset`.
    """

    name = "adaptive"

    def __init__(self, forgetting: float = 0.999, ridge: float = 1.0,
                 adapt_confidence: float = 0.8, max_drift: float = 1.0,
                 max_trace: float = 1e6, **gate: Any) -> None:
        super().__init__(**gate)
        self.forgetting = check_param("forgetting", forgetting, _FORGET, "e.g. 0.999")
        self.ridge = check_param("ridge", ridge, _RIDGE, "e.g. 1.0")
        self.adapt_confidence = check_param("adapt_confidence", adapt_confidence, _CONF,
                                            "e.g. 0.8 (1 = no self-training)")
        self.max_drift = check_param("max_drift", max_drift, _DRIFT, "e.g. 1.0")
        self.max_trace = check_param("max_trace", max_trace, _TRACE, "e.g. 1e6")
        self.diverged = False
        self.n_updates = 0

    def get_params(self) -> dict[str, Any]:
        return {"forgetting": self.forgetting, "ridge": self.ridge,
                "adapt_confidence": self.adapt_confidence, "max_drift": self.max_drift,
                "max_trace": self.max_trace, **self._gate_params()}

    @property
    def n_features(self) -> int:
        self._check_fitted()
        return int(self.mean_.shape[0])

    # -- training --------------------------------------------------------------------------
    def fit(self, X: np.ndarray, y: np.ndarray, *,
            state_names: Sequence[str] | None = None) -> AdaptiveDecoder:
        """Fit (BLAS on one thread: :mod:`neuroloop.decoders._blas`); see :meth:`_fit`."""
        with single_threaded_blas():
            return self._fit(X, y, state_names=state_names)

    def _fit(self, X: np.ndarray, y: np.ndarray, *,
             state_names: Sequence[str] | None = None) -> AdaptiveDecoder:
        """Fit the calibrated model on labelled hops (X (n_hops, n_features), y ints)."""
        from scipy.optimize import minimize_scalar
        from sklearn.linear_model import Ridge

        X = np.asarray(X, dtype=np.float64)
        if X.ndim != 2 or X.shape[0] == 0 or X.shape[1] == 0:
            raise ConfigError(f"calibration features have shape {X.shape}; expected "
                              "(n_hops, n_features)")
        if not np.all(np.isfinite(X)):
            raise ConfigError("calibration features contain NaN or infinity; drop those hops "
                              "before fit")
        y, n_states = check_labels(y, X.shape[0], self._n_states_param, allow_context=False)
        if X.shape[0] <= n_states:
            raise ConfigError(f"{X.shape[0]} calibration hops for {n_states} states; record "
                              "more hops than states")
        mean = X.mean(axis=0)
        scale = X.std(axis=0)
        scale = np.where(scale < 1e-12, 1.0, scale)
        Z = (X - mean) / scale
        T = np.eye(n_states)[y]
        reg = Ridge(alpha=self.ridge).fit(Z, T)
        W0 = np.vstack([reg.coef_.T, reg.intercept_[None, :]])
        S = Z @ reg.coef_.T + reg.intercept_

        def nll(beta: float) -> float:
            a = beta * S
            a = a - a.max(axis=1, keepdims=True)
            return float(-np.mean(a[np.arange(y.size), y] - np.log(np.exp(a).sum(axis=1))))

        beta = float(minimize_scalar(nll, bounds=(1e-3, 1e3), method="bounded").x)
        counts = np.bincount(y, minlength=n_states).astype(np.float64)
        Phi = np.hstack([Z, np.ones((Z.shape[0], 1))])
        P0 = np.linalg.inv(Phi.T @ Phi + self.ridge * np.eye(Phi.shape[1]))
        self._set_model(W0, 0.5 * (P0 + P0.T), mean, scale, beta, counts / counts.sum(),
                        state_names)
        return self

    def _set_model(self, W0: np.ndarray, P0: np.ndarray, mean: np.ndarray, scale: np.ndarray,
                   beta: float, priors: np.ndarray, state_names: Sequence[str] | None) -> None:
        self.weights0_ = np.ascontiguousarray(W0)
        self.p0_ = np.ascontiguousarray(P0)
        self.mean_ = np.ascontiguousarray(mean)
        self.scale_ = np.ascontiguousarray(scale)
        self.beta_ = float(beta)
        q, k = W0.shape
        self._W = self.weights0_.copy()
        self._P = self.p0_.copy()
        self._phi = np.zeros(q)
        self._Pphi = np.zeros(q)
        self._scores = np.zeros(k)
        self._x_buf = np.zeros(q - 1)
        self._shape = (q - 1,)
        self._max_drift2 = (self.max_drift * float(np.linalg.norm(W0))) ** 2
        self._finish(priors, state_names)

    def _reset_model(self) -> None:
        """Back to the calibrated model (forgets what was learnt online)."""
        self._W[:] = self.weights0_
        self._P[:] = self.p0_
        self.diverged = False
        self.n_updates = 0

    def _warmup_features(self) -> np.ndarray:
        return self.mean_.copy()

    # -- online ----------------------------------------------------------------------------
    def _scores_of(self, features: np.ndarray) -> bool:
        if not gk.all_finite(features):
            return False
        ak.linear_scores(self._W, features, self.mean_, self.scale_, self.beta_, self._log_prior,
                         self._phi, self._scores, self._loglik)
        return True

    def step(self, features: np.ndarray) -> DecoderOutput:
        """Decode one hop, then (if confident enough) update the model towards it."""
        if not self._fitted:
            self._check_fitted()
        if type(features) is not np.ndarray or features.dtype != _F64 \
                or not features.flags.c_contiguous or features.shape != self._shape:
            features = self._coerce(features)
        if self.diverged or not self._scores_of(features):
            return self._decide(False)
        out = self._decide(True)
        if out.valid and out.confidence >= self.adapt_confidence and self.adapt_confidence < 1:
            self._update(out.raw_state)
        return out

    def learn(self, features: np.ndarray, state: int) -> bool:
        """Supervised online update towards ``state`` (e.g. a cue); False when the features
        are invalid or the update diverged (the decoder is then invalid until reset)."""
        self._check_fitted()
        if not 0 <= int(state) < self.n_states:
            raise ValueError(f"state {state} is not in 0..{self.n_states - 1}")
        x = np.ascontiguousarray(features, dtype=np.float64)
        if self.diverged or x.shape != self._shape or not self._scores_of(x):
            return False
        return self._update(int(state))

    def _update(self, target: int) -> bool:
        ok = ak.rls_update(self._W, self._P, self._phi, self._Pphi, self._scores, target,
                           self.forgetting, self.weights0_, self._max_drift2, self.max_trace)
        self.n_updates += 1
        if not ok:
            self.diverged = True
        return bool(ok)

    def _coerce(self, features: npt.ArrayLike) -> np.ndarray:
        return copy_into(features, self._x_buf, "features")

    # -- offline ---------------------------------------------------------------------------
    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        """Per-hop posteriors of the calibrated model (no adaptation, no gate)."""
        self._check_fitted()
        X = np.asarray(X, dtype=np.float64)
        if X.ndim != 2 or X.shape[1] != self._shape[0]:
            raise ValueError(f"X must have shape (n_hops, {self._shape[0]}), got {X.shape}")
        Z = (X - self.mean_) / self.scale_
        S = self.beta_ * (Z @ self.weights0_[:-1] + self.weights0_[-1])
        S = S - np.max(S, axis=1, keepdims=True)
        P = np.exp(S)
        return P / P.sum(axis=1, keepdims=True)

    # -- persistence -----------------------------------------------------------------------
    def _arrays(self) -> dict[str, np.ndarray]:
        self._check_fitted()
        return {"weights0": self.weights0_, "p0": self.p0_, "mean": self.mean_, "scale": self.scale_,
                "beta": np.array([self.beta_]), "priors": self.priors_}

    def _from_arrays(self, arrays: dict[str, np.ndarray]) -> None:
        try:
            W0, P0, mean, scale, beta, priors = (np.asarray(arrays[k], dtype=np.float64)
                                                 for k in ("weights0", "p0", "mean", "scale",
                                                           "beta", "priors"))
        except KeyError as exc:
            raise DecoderFileError(f"adaptive decoder file lacks array {exc.args[0]!r}; "
                                   "retrain it") from None
        k = priors.shape[0] if priors.ndim == 1 else -1
        p = mean.shape[0] if mean.ndim == 1 else -1
        if k < 2 or p < 1 or W0.shape != (p + 1, k) or scale.shape != (p,) \
                or P0.shape != (p + 1, p + 1) \
                or beta.shape != (1,):
            raise DecoderFileError("adaptive decoder file has inconsistent array shapes; "
                                   "retrain it")
        if not all(np.all(np.isfinite(a)) for a in (W0, P0, mean, scale, beta, priors)) \
                or np.any(scale <= 0) or np.any(priors <= 0):
            raise DecoderFileError("adaptive decoder file holds non-finite values; retrain it")
        self._set_model(W0, P0, mean, scale, float(beta[0]), priors,
                        OutputSchema.unnamed_states(k))
