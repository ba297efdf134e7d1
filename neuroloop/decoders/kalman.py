"""``kalman``: linear-Gaussian state-space decoder of continuous kinematics (velocity, position).

The BrainGate-style Kalman decoder (Wu et al. 2006; Gilja et al. 2012): the kinematics ``x``
(e.g. 2D velocity) follow a linear random walk and the features ``z`` (band powers,
threshold-crossing counts, spike-band power) are a linear function of them::

    x_t - mu_x = A (x_{t-1} - mu_x) + w,   w ~ N(0, W)
    z_t - mu_z = H (x_t - mu_x) + q,       q ~ N(0, Q)

Fitting is ordinary least squares (with a small ridge) on a calibration block where the true
kinematics are known: ``A`` regresses ``x_t`` on ``x_{t-1}``, ``H`` regresses ``z_t`` on
``x_t``, and ``W``, ``Q`` are the residual covariances (``Q`` shrunk towards a scaled
identity so that it is invertible with more features than hops). Online, each hop runs the
Kalman filter in information form (:mod:`neuroloop.decoders._kalman_kernels`), O(d p) per hop;
with ``steady_state=True`` the gain is the fixed point of the Riccati recursion, computed at
fit, and each hop costs one matrix-vector product.

Outputs
-------
Continuous outputs (``DecoderOutput.values``): the decoded kinematics, one per target
dimension, named by ``output_names`` (default ``velocity_x_m_per_s``, ``velocity_y_m_per_s``
for 2D targets) with ``output_units``.

Discrete states (two, ``rest`` and ``move`` unless named otherwise at fit): ``move`` when the
decoded speed ``|x|`` exceeds ``move_threshold``; ``probabilities = [1 - m, m]`` with
``m = |x|^2 / (|x|^2 + move_threshold^2)`` (0.5 at the threshold).

A non-finite feature gives ``valid=False``, state 0, NaN outputs, and restarts the filter
from the calibration mean.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from .._buffers import copy_into
from .._checks import Range, check_number
from ..errors import ConfigError, DecoderFileError
from . import _kalman_kernels as kk
from ._blas import single_threaded_blas
from .base import BaseDecoder, DecoderOutput, OutputSchema, register_decoder

__all__ = ["KalmanDecoder", "steady_state_covariance"]

_F64 = np.dtype(np.float64)
_RIDGE = Range(0.0, 1.0)
_SHRINK = Range(0.0, 1.0)
_THRESH = Range(0.0, 1e300, lo_open=True)
_STATE_NAMES = ("rest", "move")


def _default_outputs(d: int) -> tuple[tuple[str, ...], tuple[str, ...]]:
    if d <= 3:
        names = tuple(f"velocity_{a}_m_per_s" for a in "xyz"[:d])
        return names, ("m/s",) * d
    return tuple(f"output{i}" for i in range(d)), ("1",) * d


def steady_state_covariance(A: np.ndarray, W: np.ndarray, HtQiH: np.ndarray, P0: np.ndarray,
                            *, tol: float = 1e-13, max_iter: int = 100_000) -> np.ndarray:
    """Fixed point ``P`` of the information-form Riccati recursion
    ``P <- inv(inv(A P A' + W) + H' Q^-1 H)`` (the posterior covariance the filter converges
    to), iterated from ``P0`` until the relative change is below ``tol``.

    Returns
    -------
    ndarray, shape (d, d)

    Raises
    ------
    ConfigError
        When the recursion does not converge (a model without a steady state).
    """
    P = P0.copy()
    for _ in range(max_iter):
        Pp = A @ P @ A.T + W
        Pn = np.linalg.inv(np.linalg.inv(Pp) + HtQiH)
        Pn = 0.5 * (Pn + Pn.T)
        if not np.all(np.isfinite(Pn)):
            break
        if np.max(np.abs(Pn - P)) <= tol * max(np.max(np.abs(Pn)), 1e-300):
            return Pn
        P = Pn
    raise ConfigError("the Kalman gain did not converge to a steady state; fit with "
                      "steady_state=false or check the calibration kinematics")


@register_decoder
class KalmanDecoder(BaseDecoder):
    """Kalman filter decoder of continuous kinematics, fitted by least squares.

    Parameters
    ----------
    output_names : sequence of str, optional
        One name per target dimension (lower-case identifiers with their unit, e.g.
        ``velocity_x_m_per_s``). Default: ``velocity_x_m_per_s``, ``velocity_y_m_per_s``
        (and ``_z_``) for up to 3 dimensions, else ``output0``, ...
    output_units : sequence of str, optional
        One unit per output (default ``m/s`` for the default velocity names).
    steady_state : bool, default False
        Use the constant steady-state gain (one matrix-vector product per hop).
    ridge : float, default 1e-6
        Ridge added to the least-squares normal equations, relative to their mean diagonal.
    obs_shrinkage : float, default 0.01
        Shrinkage of the observation noise covariance ``Q`` towards ``trace(Q)/p * I``.
    move_threshold : float, optional
        Decoded speed (output unit) above which the discrete state is ``move``. Default:
        half the median calibration speed.

    Attributes
    ----------
    A_, W_ : ndarray, shape (d, d)
    H_ : ndarray, shape (p, d)
    Q_ : ndarray, shape (p, p)
    mu_x_ : ndarray, shape (d,)
    mu_z_ : ndarray, shape (p,)
    P0_ : ndarray, shape (d, d)
        Initial (and restart) posterior covariance: the calibration kinematics covariance.
    K_ : ndarray, shape (d, p)
        Steady-state gain (computed whatever ``steady_state`` says; used when it is True).
    move_threshold_ : float
    """

    name = "kalman"
    sequential = True
    continuous_targets = True

    def __init__(self, output_names: Sequence[str] | None = None,
                 output_units: Sequence[str] | None = None, steady_state: bool = False,
                 ridge: float = 1e-6, obs_shrinkage: float = 0.01,
                 move_threshold: float | None = None, n_states: int | None = None) -> None:
        if n_states is not None and n_states != 2:
            raise ConfigError(f"decoder parameter n_states={n_states!r}: the kalman decoder "
                              "has two states (rest, move); use a scenario with two intentions")
        self.output_names = None if output_names is None else [str(n) for n in output_names]
        self.output_units = None if output_units is None else [str(u) for u in output_units]
        if self.output_names is not None and self.output_units is None:
            self.output_units = list(_default_outputs(len(self.output_names))[1]) \
                if all(n.endswith("_m_per_s") for n in self.output_names) \
                else ["1"] * len(self.output_names)
        if self.output_units is not None and (self.output_names is None
                                              or len(self.output_units) != len(self.output_names)):
            raise ConfigError("decoder parameter output_units needs output_names of the same "
                              "length; give one unit per output name")
        if not isinstance(steady_state, bool):
            raise ConfigError(f"decoder parameter steady_state={steady_state!r} is not true or "
                              "false")
        self.steady_state = steady_state
        self.ridge = check_number("decoder parameter ridge", ridge, _RIDGE, hint="e.g. 1e-6")
        self.obs_shrinkage = check_number("decoder parameter obs_shrinkage", obs_shrinkage,
                                          _SHRINK, hint="e.g. 0.01")
        self.move_threshold = None if move_threshold is None else check_number(
            "decoder parameter move_threshold", move_threshold, _THRESH,
            hint="a speed in the output unit, e.g. 0.05")
        if self.output_names is not None:
            self.schema_for(_STATE_NAMES)  # validates the names now
        self._fitted = False

    def get_params(self) -> dict[str, Any]:
        return {"output_names": self.output_names, "output_units": self.output_units,
                "steady_state": self.steady_state, "ridge": self.ridge,
                "obs_shrinkage": self.obs_shrinkage, "move_threshold": self.move_threshold}

    def schema_for(self, state_names: Sequence[str]) -> OutputSchema:
        if self.output_names is not None:
            names = tuple(self.output_names)
            units = tuple(self.output_units or ())
        elif self._fitted:
            names, units = _default_outputs(self.mu_x_.shape[0])
        else:
            names, units = _default_outputs(2)
        try:
            return OutputSchema(tuple(state_names), names, units)
        except ValueError as exc:
            raise ConfigError(f"decoder kalman: {exc}") from None

    @property
    def n_features(self) -> int:
        self._check_fitted()
        return int(self.H_.shape[0])

    @property
    def n_states(self) -> int:
        return 2

    @property
    def n_outputs(self) -> int:
        self._check_fitted()
        return int(self.mu_x_.shape[0])

    def _check_fitted(self) -> None:
        if not self._fitted:
            raise ConfigError("the kalman decoder is not fitted; call fit(features, targets) "
                              "on a calibration block or load a trained decoder file")

    @classmethod
    def example_data(cls, n_hops: int = 600, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
        """2D velocities of a smooth random reach and 6 cosine-tuned noisy features."""
        rng = np.random.default_rng(seed)
        v = np.zeros((n_hops, 2))
        for t in range(1, n_hops):
            v[t] = 0.95 * v[t - 1] + rng.normal(0.0, 0.02, 2)
        tuning = rng.normal(0.0, 1.0, (6, 2)) * 20.0
        X = 5.0 + v @ tuning.T + rng.normal(0.0, 0.3, (n_hops, 6))
        return X, v

    # -- training --------------------------------------------------------------------------
    def fit(self, X: np.ndarray, y: np.ndarray, *,
            state_names: Sequence[str] | None = None) -> KalmanDecoder:
        """Fit (BLAS on one thread: :mod:`neuroloop.decoders._blas`); see :meth:`_fit`."""
        with single_threaded_blas():
            return self._fit(X, y, state_names=state_names)

    def _fit(self, X: np.ndarray, y: np.ndarray, *,
             state_names: Sequence[str] | None = None) -> KalmanDecoder:
        """Fit by least squares on a calibration block.

        Parameters
        ----------
        X : ndarray, shape (n_hops, n_features)
            Features in time order (hops with a non-finite feature are skipped).
        y : ndarray, shape (n_hops, n_outputs) or (n_hops,)
            True kinematics per hop, in the output unit; a NaN row is a hop without a
            target (it breaks the sequence for ``A``).
        state_names : sequence of two str, optional
            Names of the two discrete states (default ``rest``, ``move``).

        Raises
        ------
        ConfigError
            For shapes that disagree, too few valid hops, output names of the wrong length.
        """
        X = np.asarray(X, dtype=np.float64)
        if np.issubdtype(np.asarray(y).dtype, np.integer):
            raise ConfigError("the kalman decoder fits continuous targets (kinematics as "
                              "floats, e.g. velocities in m/s), not integer state labels; "
                              "calibrate it on a source that provides kinematics")
        Y = np.asarray(y, dtype=np.float64)
        if Y.ndim == 1:
            Y = Y[:, None]
        if X.ndim != 2 or X.shape[1] == 0 or Y.ndim != 2 or Y.shape[0] != X.shape[0] \
                or Y.shape[1] == 0:
            raise ConfigError(f"kalman fit needs features (n_hops, n_features) and targets "
                              f"(n_hops, n_outputs); got {X.shape} and {np.shape(y)}")
        if state_names is not None and len(state_names) != 2:
            raise ConfigError(f"{len(state_names)} state names for the kalman decoder; it has "
                              "two states (rest, move)")
        d, p = Y.shape[1], X.shape[1]
        if self.output_names is not None and len(self.output_names) != d:
            raise ConfigError(f"{len(self.output_names)} output names for {d}-dimensional "
                              "targets; give one name per target dimension")
        ok = np.all(np.isfinite(X), axis=1) & np.all(np.isfinite(Y), axis=1)
        n = int(ok.sum())
        if n < max(10, d + 2):
            raise ConfigError(f"only {n} calibration hops have finite features and targets; "
                              f"the kalman decoder needs at least {max(10, d + 2)}")
        pair = ok[1:] & ok[:-1]
        if int(pair.sum()) < d + 2:
            raise ConfigError("too few consecutive valid hops to fit the state transition; "
                              "give targets for a contiguous calibration block")
        mu_x = Y[ok].mean(axis=0)
        mu_z = X[ok].mean(axis=0)
        Xc = Y - mu_x
        Zc = X - mu_z
        X0, X1 = Xc[:-1][pair], Xc[1:][pair]
        G = X0.T @ X0
        G += self.ridge * (np.trace(G) / d + 1e-300) * np.eye(d)
        A = np.linalg.solve(G, X0.T @ X1).T
        Rw = X1 - X0 @ A.T
        W = Rw.T @ Rw / max(Rw.shape[0] - 1, 1)
        W = 0.5 * (W + W.T) + 1e-12 * (np.trace(W) / d + 1e-300) * np.eye(d)
        Xs, Zs = Xc[ok], Zc[ok]
        G = Xs.T @ Xs
        G += self.ridge * (np.trace(G) / d + 1e-300) * np.eye(d)
        H = np.linalg.solve(G, Xs.T @ Zs).T
        Rq = Zs - Xs @ H.T
        Q = Rq.T @ Rq / max(n - 1, 1)
        lam = self.obs_shrinkage
        Q = (1.0 - lam) * Q + lam * (np.trace(Q) / p) * np.eye(p)
        if not np.trace(Q) > 0:
            raise ConfigError("the features do not vary around the kinematics (zero residual "
                              "covariance); check the calibration features")
        P0 = Xs.T @ Xs / max(n - 1, 1) + 1e-12 * np.eye(d)
        speed = np.sqrt(np.sum(Y[ok] ** 2, axis=1))
        thr = self.move_threshold
        if thr is None:
            thr = max(0.5 * float(np.median(speed)), 1e-12)
        self._set_model(A, W, H, Q, mu_x, mu_z, P0, float(thr), state_names)
        return self

    def _set_model(self, A: np.ndarray, W: np.ndarray, H: np.ndarray, Q: np.ndarray,
                   mu_x: np.ndarray, mu_z: np.ndarray, P0: np.ndarray, move_threshold: float,
                   state_names: Sequence[str] | None = None) -> None:
        c = np.ascontiguousarray
        self.A_, self.W_, self.H_, self.Q_ = c(A), c(W), c(H), c(Q)
        self.mu_x_, self.mu_z_, self.P0_ = c(mu_x), c(mu_z), c(P0)
        self.move_threshold_ = float(move_threshold)
        try:
            HtQi = np.linalg.solve(self.Q_, self.H_).T
        except np.linalg.LinAlgError:
            raise ConfigError("the observation noise covariance is singular; raise "
                              "obs_shrinkage (e.g. 0.01)") from None
        self._HtQi = c(HtQi)
        self._HtQiH = c(0.5 * ((HtQi @ self.H_) + (HtQi @ self.H_).T))
        d, p = self.A_.shape[0], self.H_.shape[0]
        self._fitted = True
        Pss = steady_state_covariance(self.A_, self.W_, self._HtQiH, self.P0_)
        self.K_ = c(Pss @ self._HtQi)
        self._s = np.zeros(d)
        self._P = self.P0_.copy()
        self._Pp = np.zeros((d, d))
        self._work = np.zeros((d, 3 * d))
        self._sp = np.zeros(d)
        self._u = np.zeros(d)
        self._x_buf = np.zeros(p)
        self._shape = (p,)
        self._out = DecoderOutput(probabilities=np.zeros(2), values=np.zeros(d))
        self._declare_schema(state_names if state_names is not None else _STATE_NAMES, 2)
        self.reset()

    def _schema_changed(self) -> None:
        self._out.schema = self.output_schema_

    # -- online ----------------------------------------------------------------------------
    def reset(self) -> None:
        """Restart the filter from the calibration mean with covariance ``P0_``."""
        self._check_fitted()
        self._s[:] = 0.0
        self._P[:] = self.P0_
        o = self._out
        o.state = o.raw_state = 0
        o.probabilities[:] = (1.0, 0.0)
        o.confidence = 0.0
        o.valid = True
        o.values[:] = np.nan

    def step(self, features: np.ndarray) -> DecoderOutput:
        """Decode one hop: features (n_features,) -> kinematics in ``values``."""
        if not self._fitted:
            self._check_fitted()
        if type(features) is not np.ndarray or features.dtype != _F64 \
                or not features.flags.c_contiguous or features.shape != self._shape:
            features = self._coerce(features)
        o = self._out
        ok = kk.kalman_step(features, self.mu_z_, self.mu_x_, self.A_, self.W_, self.H_,
                            self._HtQi, self._HtQiH, self.steady_state, self.K_, self._s,
                            self._P, self._Pp, self._work, self._sp, self._u, o.values)
        if not ok:
            self._s[:] = 0.0
            self._P[:] = self.P0_
            o.state = o.raw_state = 0
            o.probabilities[0] = 1.0
            o.probabilities[1] = 0.0
            o.confidence = 0.0
            o.valid = False
            return o
        v = o.values
        sp2 = 0.0
        for i in range(v.shape[0]):
            sp2 += float(v[i]) * float(v[i])
        t2 = self.move_threshold_ * self.move_threshold_
        m = sp2 / (sp2 + t2)
        o.probabilities[0] = 1.0 - m
        o.probabilities[1] = m
        state = 1 if m > 0.5 else 0
        o.state = o.raw_state = state
        o.confidence = float(o.probabilities[state])
        o.valid = True
        return o

    def _coerce(self, features: npt.ArrayLike) -> np.ndarray:
        return copy_into(features, self._x_buf, "features")

    def warmup(self) -> None:
        """Compile the kernels with the real shapes, then :meth:`reset`."""
        self._check_fitted()
        x = self.mu_z_.copy()
        self.step(x)
        self.step(x)
        x[0] = np.nan
        self.step(x)
        self.predict_outputs(np.zeros((2, self.H_.shape[0])))
        self.reset()

    # -- offline ---------------------------------------------------------------------------
    def predict_outputs(self, X: np.ndarray) -> np.ndarray:
        """The online path over a whole block from a reset state (same kernel as
        :meth:`step`); the online state is left untouched.

        Parameters
        ----------
        X : ndarray, shape (n_hops, n_features)

        Returns
        -------
        ndarray, shape (n_hops, n_outputs)
            Decoded kinematics (NaN rows for hops with non-finite features).
        """
        self._check_fitted()
        X = np.ascontiguousarray(X, dtype=np.float64)
        if X.ndim != 2 or X.shape[1] != self.H_.shape[0]:
            raise ValueError(f"X must have shape (n_hops, {self.H_.shape[0]}), got {X.shape}")
        out = np.zeros((X.shape[0], self.mu_x_.shape[0]))
        kk.kalman_run(X, self.mu_z_, self.mu_x_, self.A_, self.W_, self.H_, self._HtQi,
                      self._HtQiH, self.steady_state, self.K_, self.P0_, out)
        return out

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        """``[P(rest), P(move)]`` per hop from the decoded speed (filter run from reset)."""
        V = self.predict_outputs(X)
        sp2 = np.sum(V ** 2, axis=1)
        m = sp2 / (sp2 + self.move_threshold_ ** 2)
        return np.stack([1.0 - m, m], axis=1)

    # -- persistence -----------------------------------------------------------------------
    def _arrays(self) -> dict[str, np.ndarray]:
        self._check_fitted()
        return {"A": self.A_, "W": self.W_, "H": self.H_, "Q": self.Q_, "mu_x": self.mu_x_,
                "mu_z": self.mu_z_, "P0": self.P0_,
                "move_threshold": np.array([self.move_threshold_])}

    def _from_arrays(self, arrays: dict[str, np.ndarray]) -> None:
        try:
            A, W, H, Q, mu_x, mu_z, P0, thr = (np.asarray(arrays[k], dtype=np.float64) for k in (
                "A", "W", "H", "Q", "mu_x", "mu_z", "P0", "move_threshold"))
        except KeyError as exc:
            raise DecoderFileError(f"kalman decoder file lacks array {exc.args[0]!r}; retrain "
                                   "it") from None
        d = A.shape[0] if A.ndim == 2 else -1
        p = H.shape[0] if H.ndim == 2 else -1
        if d < 1 or p < 1 or A.shape != (d, d) or W.shape != (d, d) or H.shape != (p, d) \
                or Q.shape != (p, p) or mu_x.shape != (d,) or mu_z.shape != (p,) \
                or P0.shape != (d, d) or thr.shape != (1,):
            raise DecoderFileError("kalman decoder file has inconsistent array shapes; retrain "
                                   "it")
        if not all(np.all(np.isfinite(a)) for a in (A, W, H, Q, mu_x, mu_z, P0, thr)) \
                or not thr[0] > 0:
            raise DecoderFileError("kalman decoder file holds non-finite values; retrain it")
        if self.output_names is not None and len(self.output_names) != d:
            raise DecoderFileError(f"kalman decoder file has {d} outputs but names "
                                   f"{len(self.output_names)}; retrain it")
        self._set_model(A, W, H, Q, mu_x, mu_z, P0, float(thr[0]),
                        OutputSchema.unnamed_states(2))

    def __repr__(self) -> str:
        params = ", ".join(f"{k}={v!r}" for k, v in self.get_params().items())
        return f"KalmanDecoder({params})"
