"""Shared machinery of the classifier families (riemann, csp-lda, adaptive): label checks,
the optional HMM-style gate chained after the family's scores, and the output object.

A family computes per-state log-likelihoods (up to a constant) of one hop into
``self._loglik`` and calls :meth:`ClassifierDecoder._decide`; the decision stage
(:func:`neuroloop.decoders._gate_kernels.decide`) either runs the LDA decoder's HMM forward
recursion + dwell/hysteresis gate (``gate=True``) or takes the posterior directly.

Continuous outputs are the LDA decoder's (``confidence``, ``state_margin``,
``movement_probability``; see :mod:`neuroloop.decoders.lda`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from .._checks import Range, check_number
from ..errors import ConfigError
from . import _gate_kernels as gk
from . import _kernels
from .base import BaseDecoder, DecoderOutput
from .lda import transition_matrix

__all__ = ["ClassifierDecoder", "check_param", "check_int_param", "check_labels"]

_STAY = Range(0.0, 1.0, lo_open=True, hi_open=True)
_THRESHOLD = Range(0.0, 1.0, hi_open=True)
_HOPS = Range(1, 10_000, integer=True)


def check_param(name: str, value: Any, rng: Range, hint: str) -> float:
    """A decoder parameter through the one value checker (one-line ConfigError)."""
    return float(check_number(f"decoder parameter {name}", value, rng, hint=hint))


def check_int_param(name: str, value: Any, rng: Range, hint: str) -> int:
    return int(check_number(f"decoder parameter {name}", value, rng, hint=hint))


def check_labels(y: np.ndarray, n_rows: int, n_states: int | None, *,
                 allow_context: bool) -> tuple[np.ndarray, int]:
    """Validate integer state labels (``-1`` = context hop when ``allow_context``).

    Returns
    -------
    y : ndarray, shape (n_rows,), int64
    n_states : int

    Raises
    ------
    ConfigError
        Wrong shape, non-integer labels, labels outside ``0..n_states-1``, or a state with
        no hop.
    """
    y = np.asarray(y)
    if y.shape != (n_rows,):
        raise ConfigError(f"{y.shape} labels for {n_rows} calibration hops; give one integer "
                          "label per hop")
    if not np.issubdtype(y.dtype, np.integer):
        if not np.all(np.isfinite(y)) or not np.all(np.equal(np.mod(y, 1), 0)):
            raise ConfigError("calibration labels are not integers; label hops with state "
                              "numbers 0..n_states-1")
    y = y.astype(np.int64)
    lab = y[y >= 0] if allow_context else y
    if lab.size == 0:
        raise ConfigError("no labelled calibration hops; label hops with their state")
    if lab.min() < 0:
        raise ConfigError(f"calibration label {int(lab.min())} is negative; use labels "
                          "0..n_states-1")
    n = n_states if n_states is not None else max(2, int(lab.max()) + 1)
    if lab.max() >= n:
        raise ConfigError(f"calibration labels span 0..{int(lab.max())} but n_states={n}; "
                          f"use labels 0..{n - 1}")
    counts = np.bincount(lab, minlength=n)
    missing = [k for k in range(n) if counts[k] == 0]
    if missing:
        raise ConfigError(f"state(s) {missing} have no calibration hops; record every state "
                          "or lower n_states")
    return y, n


class ClassifierDecoder(BaseDecoder):
    """Base of the classifier families: gate parameters, decision stage, output object.

    Parameters
    ----------
    n_states : int, optional
        Number of states; default ``max(y) + 1``.
    gate : bool, default True
        Chain the HMM-style gate (forward smoothing + dwell/hysteresis) after the scores.
    transition_stay, gate_hops, gate_threshold
        As :class:`~neuroloop.decoders.lda.LDADecoder` (used when ``gate`` is True).
    """

    outputs = (("confidence", "1"), ("state_margin", "1"), ("movement_probability", "1"))

    def __init__(self, n_states: int | None = None, gate: bool = True,
                 transition_stay: float = 0.9, gate_hops: int = 2,
                 gate_threshold: float = 0.6) -> None:
        if n_states is not None and (isinstance(n_states, bool)
                                     or not isinstance(n_states, int | np.integer)
                                     or n_states < 2):
            raise ConfigError(f"decoder parameter n_states={n_states!r} is not an integer >= 2; "
                              "count every state")
        self._n_states_param = None if n_states is None else int(n_states)
        if not isinstance(gate, bool):
            raise ConfigError(f"decoder parameter gate={gate!r} is not true or false")
        self.gate = gate
        self.transition_stay = check_param("transition_stay", transition_stay, _STAY, "e.g. 0.9")
        self.gate_hops = check_int_param("gate_hops", gate_hops, _HOPS, "e.g. 2")
        self.gate_threshold = check_param("gate_threshold", gate_threshold, _THRESHOLD,
                                          "e.g. 0.6")
        self._fitted = False

    def _gate_params(self) -> dict[str, Any]:
        return {"n_states": self._n_states_param, "gate": self.gate,
                "transition_stay": self.transition_stay, "gate_hops": self.gate_hops,
                "gate_threshold": self.gate_threshold}

    @property
    def n_states(self) -> int:
        if self._fitted:
            return int(self.priors_.shape[0])
        if self._n_states_param is not None:
            return self._n_states_param
        self._check_fitted()
        raise AssertionError  # unreachable

    def _check_fitted(self) -> None:
        if not self._fitted:
            raise ConfigError(f"the {self.name} decoder is not fitted; call fit(X, y) on "
                              "calibration features or load a trained decoder file")

    def _finish(self, priors: np.ndarray, state_names: Sequence[str] | None) -> None:
        """Set up the decision stage for ``len(priors)`` states (after the model is set)."""
        n = priors.shape[0]
        self.priors_ = np.ascontiguousarray(priors, dtype=np.float64)
        self._log_prior = np.log(self.priors_)
        self._trans = np.ascontiguousarray(transition_matrix(n, self.transition_stay))
        self._p_prev = self.priors_.copy()
        self._gate_state = np.zeros(_kernels.GATE_SIZE, dtype=np.int64)
        self._loglik = np.zeros(n)
        self._out = DecoderOutput(probabilities=np.zeros(n),
                                  values=np.zeros(_kernels.LDA_N_OUTPUTS))
        self._fitted = True
        self._declare_schema(state_names, n)
        self.reset()

    def _schema_changed(self) -> None:
        self._out.schema = self.output_schema_

    def reset(self) -> None:
        """Restart the recursion from the priors and the gate from state 0."""
        self._check_fitted()
        self._p_prev[:] = self.priors_
        self._gate_state[:] = (0, 0, -1, 0, 1)
        o = self._out
        o.state = o.raw_state = 0
        o.probabilities[:] = self.priors_
        o.confidence = 0.0
        o.valid = True
        o.values[:] = np.nan
        self._reset_model()

    def _reset_model(self) -> None:
        """Hook: forget the family's own online state (windows, ...)."""

    def _decide(self, valid: bool) -> DecoderOutput:
        """Finish a hop whose ``self._loglik`` is set (or that is invalid)."""
        o = self._out
        g = self._gate_state
        if valid:
            gk.decide(self._loglik, self._log_prior, self.gate, self._trans, self.priors_,
                      self._p_prev, self.gate_hops, self.gate_threshold, g, o.probabilities)
        else:
            gk.invalidate(self.priors_, self._p_prev, g, o.probabilities)
        if g[_kernels.GATE_VALID]:
            state = int(g[_kernels.GATE_STATE])
            o.state = state
            o.raw_state = int(g[_kernels.GATE_RAW])
            o.confidence = float(o.probabilities[state])
            o.valid = True
            _kernels.lda_outputs(o.probabilities, state, True, o.values)
        else:
            o.state = o.raw_state = 0
            o.confidence = 0.0
            o.valid = False
            _kernels.lda_outputs(o.probabilities, 0, False, o.values)
        return o

    def decode(self, X: np.ndarray) -> np.ndarray:
        """Gated states of :meth:`step` over every hop of ``X`` from a reset state."""
        self._check_fitted()
        X = np.ascontiguousarray(X, dtype=np.float64)
        self.reset()
        states = np.zeros(X.shape[0], dtype=np.int64)
        for i in range(X.shape[0]):
            states[i] = self.step(X[i]).state
        self.reset()
        return states

    def predict(self, X: np.ndarray) -> np.ndarray:
        """Most probable state per hop without the gate; -1 for invalid hops."""
        P = self.predict_proba(X)
        ok = np.all(np.isfinite(P), axis=1)
        return np.where(ok, np.argmax(np.nan_to_num(P, nan=-1.0), axis=1), -1)

    def warmup(self) -> None:
        """Compile every kernel with the real shapes, then :meth:`reset`."""
        self._check_fitted()
        x = self._warmup_features()
        self.step(x)
        self.step(x)
        bad = x.copy()
        bad[0] = np.nan
        self.step(bad)
        self.predict_proba(np.stack([x, x]))
        self.reset()

    def _warmup_features(self) -> np.ndarray:
        raise NotImplementedError

    def __repr__(self) -> str:
        params = ", ".join(f"{k}={v!r}" for k, v in self.get_params().items())
        return f"{type(self).__name__}({params})"
