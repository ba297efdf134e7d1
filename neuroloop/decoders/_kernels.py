"""Compiled decoder kernels (private; use :class:`neuroloop.decoders.lda.LDADecoder`).

All kernels take arrays and scalars only and write into caller-owned outputs.

Gate state vector
-----------------
``gate`` is an int64 array of length 5 owned by the decoder:

====  ===============================================================================
 [0]  gated state (0 = rest)
 [1]  raw state: argmax of this hop's smoothed probabilities
 [2]  candidate state waiting to be entered (-1: none)
 [3]  consecutive hops the candidate has been above the threshold
 [4]  1 if this hop's input was valid (finite), else 0
====  ===============================================================================

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

__all__ = ["linear_softmax", "linear_softmax_rows", "hmm_gate_step", "lda_outputs",
           "GATE_STATE", "GATE_RAW", "GATE_CANDIDATE", "GATE_COUNT", "GATE_VALID", "GATE_SIZE",
           "OUT_CONFIDENCE", "OUT_STATE_MARGIN", "OUT_MOVEMENT_PROBABILITY", "LDA_N_OUTPUTS"]

GATE_STATE = 0
GATE_RAW = 1
GATE_CANDIDATE = 2
GATE_COUNT = 3
GATE_VALID = 4
GATE_SIZE = 5

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
    n_states, n_features = W.shape
    valid = True
    for j in range(n_features):
        if not np.isfinite(x[j]):
            valid = False
            break
    if valid:
        for k in range(n_states):
            s = b[k]
            wk = W[k]
            for j in range(n_features):
                s += wk[j] * x[j]
            if not np.isfinite(s):
                valid = False
            probs[k] = s
    if not valid:
        for k in range(n_states):
            probs[k] = reset_p[k]
            p_prev[k] = reset_p[k]
        gate[GATE_STATE] = 0
        gate[GATE_RAW] = 0
        gate[GATE_CANDIDATE] = -1
        gate[GATE_COUNT] = 0
        gate[GATE_VALID] = 0
        return
    # forward recursion in the log domain: a_k = loglik_k + log(sum_i trans[i, k] p_prev[i])
    m = -np.inf
    for k in range(n_states):
        pred = 0.0
        for i in range(n_states):
            pred += trans[i, k] * p_prev[i]
        a = probs[k] + np.log(pred)
        probs[k] = a
        if a > m:
            m = a
    total = 0.0
    for k in range(n_states):
        e = np.exp(probs[k] - m)
        probs[k] = e
        total += e
    inv = 1.0 / total
    raw = 0
    best = -1.0
    for k in range(n_states):
        p = probs[k] * inv
        probs[k] = p
        p_prev[k] = p
        if p > best:
            best = p
            raw = k
    gate[GATE_RAW] = raw
    gate[GATE_VALID] = 1
    # dwell / hysteresis gate
    current = gate[GATE_STATE]
    if raw != current and best > threshold:
        if raw == gate[GATE_CANDIDATE]:
            gate[GATE_COUNT] += 1
        else:
            gate[GATE_CANDIDATE] = raw
            gate[GATE_COUNT] = 1
        if gate[GATE_COUNT] >= gate_hops:
            gate[GATE_STATE] = raw
            gate[GATE_CANDIDATE] = -1
            gate[GATE_COUNT] = 0
    else:
        gate[GATE_CANDIDATE] = -1
        gate[GATE_COUNT] = 0


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
