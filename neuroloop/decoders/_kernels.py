"""Compiled decoder kernels (private; use :class:`neuroloop.decoders.lda.LDADecoder`).

All kernels take arrays and scalars only and write into caller-owned outputs.

Gate state vector
-----------------
``gate`` (int64, length ``GATE_SIZE``, layout ``GATE_*``) is documented, and its decision
stage defined, in :mod:`neuroloop.decoders._gate_kernels`; the constants are re-exported here.

Output vector
-------------
``values`` (float64, length :data:`LDA_N_OUTPUTS`), the LDA decoder's continuous outputs:

====  =====================  ================================================================
 [0]  confidence             smoothed probability of the gated state
 [1]  state_margin           top-1 minus top-2 smoothed probability (0: a tie, 1: certain)
 [2]  movement_probability   1 - smoothed probability of rest (state 0)
====  =====================  ================================================================
"""

from __future__ import annotations

import numpy as np

from .._jit import jit
from ._gate_kernels import (
    GATE_CANDIDATE,
    GATE_COUNT,
    GATE_RAW,
    GATE_SIZE,
    GATE_STATE,
    GATE_VALID,
    affine,
    all_finite,
    decide,
    invalidate,
)

__all__ = ["linear_softmax", "linear_softmax_rows", "hmm_gate_step", "lda_outputs",
           "GATE_STATE", "GATE_RAW", "GATE_CANDIDATE", "GATE_COUNT", "GATE_VALID", "GATE_SIZE",
           "OUT_CONFIDENCE", "OUT_STATE_MARGIN", "OUT_MOVEMENT_PROBABILITY", "LDA_N_OUTPUTS"]


OUT_CONFIDENCE = 0
OUT_STATE_MARGIN = 1
OUT_MOVEMENT_PROBABILITY = 2
LDA_N_OUTPUTS = 3


@jit
def linear_softmax(W, b, x, out):
    """``out = softmax(W @ x + b)``.

    Parameters
    ----------
    W : ndarray, shape (n_classes, n_features), float64
    b : ndarray, shape (n_classes,), float64
    x : ndarray, shape (n_features,), float64
    out : ndarray, shape (n_classes,), float64
        Probabilities (sum to 1). NaN everywhere if a score is not finite.

    Returns
    -------
    bool
        True when every score was finite.
    """
    n_classes, n_features = W.shape
    for k in range(n_classes):
        s = b[k]
        wk = W[k]
        for j in range(n_features):
            s += wk[j] * x[j]
        out[k] = s
    return _softmax_inplace(out)


@jit
def _softmax_inplace(v):
    """Replace scores ``v`` by their softmax; NaN everywhere (and False) if one is not finite."""
    n = v.shape[0]
    m = -np.inf
    finite = True
    for k in range(n):
        if not np.isfinite(v[k]):
            finite = False
        elif v[k] > m:
            m = v[k]
    if not finite:
        for k in range(n):
            v[k] = np.nan
        return False
    total = 0.0
    for k in range(n):
        e = np.exp(v[k] - m)
        v[k] = e
        total += e
    inv = 1.0 / total
    for k in range(n):
        v[k] *= inv
    return True


@jit
def linear_softmax_rows(W, b, X, out):
    """Row-wise :func:`linear_softmax`: ``X`` (n, n_features) -> ``out`` (n, n_classes)."""
    for i in range(X.shape[0]):
        linear_softmax(W, b, X[i], out[i])


@jit
def hmm_gate_step(W, b, x, trans, reset_p, p_prev, gate_hops, threshold, gate, probs):
    """One online hop: linear scores, HMM forward smoothing, dwell/hysteresis gate.

    Parameters
    ----------
    W : ndarray, shape (n_states, n_features), float64
        Weights giving per-state log-likelihoods (up to a constant) ``W @ x + b``.
    b : ndarray, shape (n_states,), float64
    x : ndarray, shape (n_features,), float64
        Feature vector of this hop.
    trans : ndarray, shape (n_states, n_states), float64
        Row-stochastic transition matrix, ``trans[i, j] = P(s_t = j | s_{t-1} = i)``.
    reset_p : ndarray, shape (n_states,), float64
        Probabilities the forward recursion restarts from (the class priors).
    p_prev : ndarray, shape (n_states,), float64
        Previous smoothed probabilities; updated in place.
    gate_hops : int
        Consecutive hops a state must stay above ``threshold`` before it is entered.
    threshold : float
        Smoothed probability a candidate state must exceed.
    gate : ndarray, shape (5,), int64
        Gate state (module docstring); updated in place.
    probs : ndarray, shape (n_states,), float64
        Output: smoothed probabilities ``p_t ∝ lik_t * (trans.T @ p_{t-1})``.

    Notes
    -----
    Invalid input (a non-finite feature or score): ``probs`` and ``p_prev`` restart from
    ``reset_p``, the gate returns to rest (state 0, no candidate) and ``gate[4] = 0``.
    The recursion runs in the log domain so that extreme scores cannot underflow to 0/0.
    """
    if not all_finite(x):
        invalidate(reset_p, p_prev, gate, probs)
        return
    affine(W, b, x, probs)  # per-state log-likelihood scores, then the shared decision stage
    # probs doubles as the log-likelihood input: decide reads each score before overwriting it
    # (log_prior is not used with the gate; reset_p fills the slot)
    decide(probs, reset_p, True, trans, reset_p, p_prev, gate_hops, threshold, gate, probs)


@jit
def lda_outputs(probs, state, valid, values):
    """Continuous outputs of one hop from the smoothed probabilities (module docstring).

    Parameters
    ----------
    probs : ndarray, shape (n_states,), float64
        Smoothed probabilities of this hop (sum to 1), n_states >= 2.
    state : int
        Gated state.
    valid : bool
        False: every output is NaN (no measurement this hop).
    values : ndarray, shape (LDA_N_OUTPUTS,), float64
        Output, overwritten.
    """
    if not valid:
        for i in range(values.shape[0]):
            values[i] = np.nan
        return
    top1 = -np.inf
    top2 = -np.inf
    moving = 0.0
    for k in range(probs.shape[0]):
        p = probs[k]
        if p > top1:
            top2 = top1
            top1 = p
        elif p > top2:
            top2 = p
        if k > 0:
            moving += p
    values[OUT_CONFIDENCE] = probs[state]
    values[OUT_STATE_MARGIN] = top1 - top2
    values[OUT_MOVEMENT_PROBABILITY] = min(max(moving, 0.0), 1.0)
