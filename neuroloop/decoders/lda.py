"""Shrinkage LDA over log band powers, followed by an HMM-style dwell/hysteresis gate.

Model
-----
1. Standardise: ``z = (x - mean_) / scale_`` (calibration mean and standard deviation;
   constant features get scale 1).
2. Linear discriminant with a shrunk pooled covariance
   ``S = (1 - shrinkage) * S_within + shrinkage * (trace(S_within) / p) * I``:
   ``score_k = coef_[k] @ z + intercept_[k]`` with ``coef_ = S^-1 mu_k`` and
   ``intercept_ = -mu_k S^-1 mu_k / 2 + log(priors_[k])``. ``predict_proba`` is
   ``softmax(score)`` (no smoothing, no gate).
3. Online (``step``): the class log-likelihoods ``score_k - log(priors_[k])`` drive an HMM
   forward recursion ``p_t ∝ lik_t * (T.T @ p_{t-1})`` with ``T[i, i] = transition_stay`` and
   the rest of each row spread evenly; the recursion starts (and restarts) from ``priors_``.
4. Gate: a new state is entered only after ``gate_hops`` consecutive hops in which it is the
   most probable state with smoothed probability above ``gate_threshold``; otherwise the
   previous gated state is held (hysteresis). Rest (0) is entered the same way.

Invalid input (NaN/inf features) gives ``valid=False``, state 0, confidence 0, NaN continuous
outputs, and resets the recursion and the gate to rest.

Continuous outputs (``DecoderOutput.values``, all dimensionless, unit ``"1"``)
-------------------------------------------------------------------------------
``confidence``
    Smoothed probability of the gated state (the same number as ``DecoderOutput.confidence``).
``state_margin``
    Top-1 minus top-2 smoothed probability: how decisively the decoder picks its most
    probable state (0 = a tie, 1 = certain).
``movement_probability``
    1 minus the smoothed probability of rest: how strongly any movement is intended.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from .._buffers import copy_into
from ..errors import ConfigError, DecoderFileError
from . import _kernels
from .base import BaseDecoder, DecoderOutput, register_decoder

__all__ = ["LDADecoder", "transition_matrix"]

_F64 = np.dtype(np.float64)
#: Standard deviations below this are treated as constant features (scale 1).
_MIN_SCALE = 1e-12


def transition_matrix(n_states: int, stay: float) -> np.ndarray:
    """Row-stochastic matrix with ``stay`` on the diagonal and ``(1 - stay) / (n - 1)`` elsewhere.

    Returns
    -------
    ndarray, shape (n_states, n_states)
    """
    off = (1.0 - stay) / (n_states - 1)
    T = np.full((n_states, n_states), off)
    np.fill_diagonal(T, stay)
    return T


def _check_number(name: str, value: Any, lo: float, hi: float, *, lo_open: bool = False,
                  hi_open: bool = False, hint: str = "") -> float:
    try:
        v = float(value)
    except (TypeError, ValueError):
        v = float("nan")
    ok = math.isfinite(v) and (v > lo if lo_open else v >= lo) and (v < hi if hi_open else v <= hi)
    if not ok:
        lb = "(" if lo_open else "["
        rb = ")" if hi_open else "]"
        raise ConfigError(f"decoder parameter {name}={value!r} is outside {lb}{lo:g}, {hi:g}{rb}; "
                          f"{hint or 'choose a value in that range'}")
    return v


@register_decoder
class LDADecoder(BaseDecoder):
    """Regularised (shrinkage) LDA + HMM forward smoothing + dwell/hysteresis gate.

    Parameters
    ----------
    n_states : int, optional
        Number of intention states (0 = rest). Default: ``max(y) + 1`` at ``fit``.
    shrinkage : float, default 0.1
        Covariance shrinkage towards a scaled identity, in [0, 1].
    transition_stay : float, default 0.9
        Probability of staying in a state from one hop to the next, in (0, 1).
    gate_hops : int, default 2
        Consecutive hops above ``gate_threshold`` needed to enter a new state (>= 1).
    gate_threshold : float, default 0.6
        Smoothed probability a new state must exceed, in [0, 1).
    priors : sequence of float, optional
        Class priors (normalised); default: class frequencies in the calibration data.

    Attributes
    ----------
    coef_ : ndarray, shape (n_states, n_features)
        Discriminant weights on standardised features.
    intercept_ : ndarray, shape (n_states,)
    mean_, scale_ : ndarray, shape (n_features,)
        Standardisation.
    classes_ : ndarray, shape (n_states,), int64
        ``0..n_states-1``.
    priors_ : ndarray, shape (n_states,)
    output_schema_ : OutputSchema
        State names (given to ``fit``, or recorded in the decoder file) and the continuous
        outputs ``confidence``, ``state_margin``, ``movement_probability`` (module docstring).
    """

    name = "lda"
    outputs = (("confidence", "1"), ("state_margin", "1"), ("movement_probability", "1"))
    #: What carries from hop to hop (a live run's shadow cycle gets private copies of these
    #: and shares the coefficients and scratch: :mod:`neuroloop.runtime.shadow`).
    SHADOW_STATE: tuple[str, ...] = ("_p_prev", "_gate", "_intention")

    def __init__(self, n_states: int | None = None, shrinkage: float = 0.1,
                 transition_stay: float = 0.9, gate_hops: int = 2,
                 gate_threshold: float = 0.6, priors: Sequence[float] | None = None) -> None:
        if n_states is not None and (isinstance(n_states, bool)
                                     or not isinstance(n_states, int | np.integer)
                                     or n_states < 2):
            raise ConfigError(f"decoder parameter n_states={n_states!r} is not an integer >= 2; "
                              "count rest plus every movement state")
        self._n_states_param = None if n_states is None else int(n_states)
        self.shrinkage = _check_number("shrinkage", shrinkage, 0.0, 1.0,
                                       hint="use e.g. 0.1 (0 = plain LDA, 1 = diagonal)")
        self.transition_stay = _check_number("transition_stay", transition_stay, 0.0, 1.0,
                                             lo_open=True, hi_open=True, hint="use e.g. 0.9")
        if isinstance(gate_hops, bool) or not isinstance(gate_hops, int | np.integer) \
                or gate_hops < 1:
            raise ConfigError(f"decoder parameter gate_hops={gate_hops!r} is not an integer "
                              ">= 1; use e.g. 2")
        self.gate_hops = int(gate_hops)
        self.gate_threshold = _check_number("gate_threshold", gate_threshold, 0.0, 1.0,
                                            hi_open=True, hint="use e.g. 0.6")
        self.priors = None if priors is None else [float(p) for p in priors]
        if self.priors is not None:
            pr = np.asarray(self.priors)
            if pr.ndim != 1 or not np.all(np.isfinite(pr)) or np.any(pr <= 0):
                raise ConfigError(f"decoder parameter priors={self.priors!r} must be positive "
                                  "numbers, one per state")
            if self._n_states_param is not None and pr.size != self._n_states_param:
                raise ConfigError(f"{pr.size} priors for n_states={self._n_states_param}; "
                                  "give one prior per state")
        self._fitted = False

    # -- parameters ------------------------------------------------------------------------
    def get_params(self) -> dict[str, Any]:
        return {"n_states": self._n_states_param, "shrinkage": self.shrinkage,
                "transition_stay": self.transition_stay, "gate_hops": self.gate_hops,
                "gate_threshold": self.gate_threshold, "priors": self.priors}

    @property
    def n_features(self) -> int:
        self._check_fitted()
        return int(self.coef_.shape[1])

    @property
    def n_states(self) -> int:
        if self._fitted:
            return int(self.coef_.shape[0])
        if self._n_states_param is not None:
            return self._n_states_param
        self._check_fitted()
        raise AssertionError  # unreachable

    def _check_fitted(self) -> None:
        if not self._fitted:
            raise ConfigError("the LDA decoder is not fitted; call fit(X, y) on calibration "
                              "features or load a trained decoder file")

    # -- training --------------------------------------------------------------------------
    def fit(self, X: np.ndarray, y: np.ndarray, *,
            state_names: Sequence[str] | None = None) -> LDADecoder:
        """Fit on calibration features.

        Parameters
        ----------
        X : ndarray, shape (n_hops, n_features), finite
        y : ndarray, shape (n_hops,), int in ``0..n_states-1``, every state present
        state_names : sequence of str, optional
            One name per state, rest first (recorded in ``output_schema_``).

        Raises
        ------
        ConfigError
            If X is not finite, shapes disagree, a state is missing from ``y`` or there are
            too few hops.
        """
        X = np.asarray(X, dtype=np.float64)
        y = np.asarray(y)
        if X.ndim != 2 or X.shape[0] == 0 or X.shape[1] == 0:
            raise ConfigError(f"calibration features have shape {X.shape}; expected "
                              "(n_hops, n_features) with at least one hop and feature")
        if y.shape != (X.shape[0],):
            raise ConfigError(f"{y.shape} labels for {X.shape[0]} calibration hops; give one "
                              "integer label per hop")
        if not np.all(np.isfinite(X)):
            bad = int(np.count_nonzero(~np.all(np.isfinite(X), axis=1)))
            raise ConfigError(f"calibration features contain NaN or infinity in {bad} hops; "
                              "drop those hops (e.g. X[np.isfinite(X).all(1)]) before fit")
        if not np.issubdtype(y.dtype, np.integer):
            if not np.all(np.isfinite(y)) or not np.all(np.equal(np.mod(y, 1), 0)):
                raise ConfigError("calibration labels are not integers; label hops with "
                                  "state numbers 0..n_states-1")
        y = y.astype(np.int64)
        n_states = self._n_states_param
        if n_states is None:
            n_states = max(2, int(y.max()) + 1) if y.size else 2
        if y.min() < 0 or y.max() >= n_states:
            raise ConfigError(f"calibration labels span {int(y.min())}..{int(y.max())} but "
                              f"n_states={n_states}; use labels 0..{n_states - 1}")
        counts = np.bincount(y, minlength=n_states)
        missing = [k for k in range(n_states) if counts[k] == 0]
        if missing:
            raise ConfigError(f"state(s) {missing} have no calibration hops; record every state "
                              "or lower n_states")
        if state_names is not None and len(state_names) != n_states:
            raise ConfigError(f"{len(state_names)} state names for {n_states} states; give "
                              "one name per state, rest first")
        n, p = X.shape
        if n <= n_states:
            raise ConfigError(f"{n} calibration hops for {n_states} states; record more hops "
                              "than states")
        if self.priors is not None:
            if len(self.priors) != n_states:
                raise ConfigError(f"{len(self.priors)} priors for {n_states} states; give one "
                                  "prior per state")
            priors = np.asarray(self.priors, dtype=np.float64)
        else:
            priors = counts.astype(np.float64)
        priors = priors / priors.sum()

        mean = X.mean(axis=0)
        scale = X.std(axis=0)
        scale = np.where(scale < _MIN_SCALE, 1.0, scale)
        Z = (X - mean) / scale
        mu = np.stack([Z[y == k].mean(axis=0) for k in range(n_states)])
        R = Z - mu[y]
        S = (R.T @ R) / (n - n_states)
        lam = self.shrinkage
        S = (1.0 - lam) * S + lam * (np.trace(S) / p) * np.eye(p)
        try:
            coef = np.linalg.solve(S, mu.T).T
        except np.linalg.LinAlgError:
            raise ConfigError("the pooled feature covariance is singular; raise shrinkage "
                              "above 0 (e.g. 0.1) or remove duplicated features") from None
        if not np.all(np.isfinite(coef)):
            raise ConfigError("LDA weights are not finite (ill-conditioned covariance); raise "
                              "shrinkage (e.g. 0.1)")
        intercept = -0.5 * np.sum(mu * coef, axis=1) + np.log(priors)
        self._set_model(coef, intercept, mean, scale, priors, state_names)
        return self

    def _set_model(self, coef: np.ndarray, intercept: np.ndarray, mean: np.ndarray,
                   scale: np.ndarray, priors: np.ndarray,
                   state_names: Sequence[str] | None = None) -> None:
        n_states = coef.shape[0]
        self.coef_ = np.ascontiguousarray(coef, dtype=np.float64)
        self.intercept_ = np.ascontiguousarray(intercept, dtype=np.float64)
        self.mean_ = np.ascontiguousarray(mean, dtype=np.float64)
        self.scale_ = np.ascontiguousarray(scale, dtype=np.float64)
        self.priors_ = np.ascontiguousarray(priors, dtype=np.float64)
        self.classes_ = np.arange(n_states, dtype=np.int64)
        # Folded weights for the compiled paths: W @ x + b == coef_ @ ((x - mean_) / scale_) + ...
        w = self.coef_ / self.scale_
        self._w = np.ascontiguousarray(w)
        self._b_post = np.ascontiguousarray(self.intercept_ - w @ self.mean_)
        self._b_lik = np.ascontiguousarray(self._b_post - np.log(self.priors_))
        self._trans = np.ascontiguousarray(transition_matrix(n_states, self.transition_stay))
        self._p_prev = self.priors_.copy()
        self._gate = np.zeros(_kernels.GATE_SIZE, dtype=np.int64)
        self._intention = DecoderOutput(probabilities=np.zeros(n_states),
                                        values=np.zeros(_kernels.LDA_N_OUTPUTS))
        self._declare_schema(state_names, n_states)
        self._n_feat = self.coef_.shape[1]
        self._shape = (self._n_feat,)
        self._x_buf = np.zeros(self._n_feat)
        self._fitted = True
        self.reset()

    # -- online ----------------------------------------------------------------------------
    def reset(self) -> None:
        """Restart the recursion from the priors and the gate from rest."""
        self._check_fitted()
        self._p_prev[:] = self.priors_
        self._gate[:] = (0, 0, -1, 0, 1)
        it = self._intention
        it.state = 0
        it.raw_state = 0
        it.probabilities[:] = self.priors_
        it.confidence = 0.0
        it.valid = True
        it.values[:] = np.nan  # no hop decoded yet

    def _schema_changed(self) -> None:
        self._intention.schema = self.output_schema_

    def step(self, features: np.ndarray) -> DecoderOutput:
        """Decode one hop.

        Parameters
        ----------
        features : ndarray, shape (n_features,)
            Contiguous writeable float64 is used as is; anything else of that shape is first
            copied into a preallocated buffer.

        Returns
        -------
        DecoderOutput
            Owned by the decoder and overwritten by the next call.
        """
        if not self._fitted:
            self._check_fitted()
        if type(features) is not np.ndarray or features.dtype != _F64 \
                or not features.flags.c_contiguous \
                or not features.flags.writeable or features.shape != self._shape:
            features = self._coerce(features)
        it = self._intention
        g = self._gate
        probs = it.probabilities
        _kernels.hmm_gate_step(self._w, self._b_lik, features, self._trans, self.priors_,
                               self._p_prev, self.gate_hops, self.gate_threshold, g, probs)
        if g[4]:
            state = int(g[0])
            it.state = state
            it.raw_state = int(g[1])
            it.confidence = float(probs[state])
            it.valid = True
            _kernels.lda_outputs(probs, state, True, it.values)
        else:
            it.state = 0
            it.raw_state = 0
            it.confidence = 0.0
            it.valid = False
            _kernels.lda_outputs(probs, 0, False, it.values)
        return it

    def _coerce(self, features: npt.ArrayLike) -> np.ndarray:
        """Copy features of the right shape but another dtype/layout or a read-only buffer
        into a preallocated array (the kernel keeps its one compiled signature)."""
        return copy_into(features, self._x_buf, "features")

    def warmup(self) -> None:
        """Compile the kernels with the real shapes, then :meth:`reset`."""
        self._check_fitted()
        x = self.mean_.copy()
        self.step(x)
        self.step(x)
        x[0] = np.nan
        self.step(x)
        self.predict_proba(np.zeros((2, self._n_feat)))
        self.reset()

    # -- offline ---------------------------------------------------------------------------
    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        """Per-hop class probabilities without smoothing or gate.

        Parameters
        ----------
        X : ndarray, shape (n_hops, n_features)

        Returns
        -------
        ndarray, shape (n_hops, n_states)
            Rows with non-finite features are NaN.
        """
        self._check_fitted()
        X = np.ascontiguousarray(X, dtype=np.float64)
        if X.ndim != 2 or X.shape[1] != self._n_feat:
            raise ValueError(f"X must have shape (n_hops, {self._n_feat}), got {X.shape}")
        out = np.zeros((X.shape[0], self.coef_.shape[0]))
        _kernels.linear_softmax_rows(self._w, self._b_post, X, out)
        return out

    def predict(self, X: np.ndarray) -> np.ndarray:
        """Most probable state per hop (no smoothing, no gate); -1 for invalid rows."""
        P = self.predict_proba(X)
        ok = np.all(np.isfinite(P), axis=1)
        return np.where(ok, np.argmax(np.nan_to_num(P, nan=-1.0), axis=1), -1)

    def decode(self, X: np.ndarray) -> np.ndarray:
        """Run :meth:`step` over every hop of ``X`` from a reset state (the online path offline).

        Returns
        -------
        ndarray, shape (n_hops,), int64
            Gated states.
        """
        self._check_fitted()
        X = np.ascontiguousarray(X, dtype=np.float64)
        if X.ndim != 2 or X.shape[1] != self._n_feat:
            raise ValueError(f"X must have shape (n_hops, {self._n_feat}), got {X.shape}")
        self.reset()
        states = np.zeros(X.shape[0], dtype=np.int64)
        for i in range(X.shape[0]):
            states[i] = self.step(X[i]).state
        self.reset()
        return states

    # -- persistence -----------------------------------------------------------------------
    def _arrays(self) -> dict[str, np.ndarray]:
        self._check_fitted()
        return {"coef": self.coef_, "intercept": self.intercept_, "mean": self.mean_,
                "scale": self.scale_, "priors": self.priors_, "classes": self.classes_}

    def _from_arrays(self, arrays: dict[str, np.ndarray]) -> None:
        try:
            coef = np.asarray(arrays["coef"], dtype=np.float64)
            intercept = np.asarray(arrays["intercept"], dtype=np.float64)
            mean = np.asarray(arrays["mean"], dtype=np.float64)
            scale = np.asarray(arrays["scale"], dtype=np.float64)
            priors = np.asarray(arrays["priors"], dtype=np.float64)
        except KeyError as exc:
            raise DecoderFileError(f"LDA decoder file lacks array {exc.args[0]!r}; retrain it "
                                   "with `neuroloop train`") from None
        k = coef.shape[0] if coef.ndim == 2 else -1
        p = coef.shape[1] if coef.ndim == 2 else -1
        if k < 2 or p < 1 or intercept.shape != (k,) or mean.shape != (p,) \
                or scale.shape != (p,) or priors.shape != (k,):
            raise DecoderFileError("LDA decoder file has inconsistent array shapes; retrain it "
                                   "with `neuroloop train`")
        if self._n_states_param is not None and k != self._n_states_param:
            raise DecoderFileError(f"LDA decoder file has {k} states but its parameters say "
                                   f"{self._n_states_param}; retrain it")
        arrs = (coef, intercept, mean, scale, priors)
        if not all(np.all(np.isfinite(a)) for a in arrs) or np.any(scale <= 0) \
                or np.any(priors <= 0):
            raise DecoderFileError("LDA decoder file holds non-finite or non-positive values; "
                                   "retrain it with `neuroloop train`")
        self._set_model(coef, intercept, mean, scale, priors)

    def __repr__(self) -> str:
        params = ", ".join(f"{k}={v!r}" for k, v in self.get_params().items())
        return f"LDADecoder({params})"
