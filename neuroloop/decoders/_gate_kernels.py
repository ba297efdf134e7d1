"""Compiled decision stage shared by the classifier families (riemann, csp-lda, adaptive).

A family computes per-state log-likelihood scores (up to a constant) for one hop; this stage
turns them into the :class:`~neuroloop.decoders.base.DecoderOutput` fields, either through the
HMM-style gate of the LDA decoder (forward smoothing + dwell/hysteresis, chained) or directly
(posterior = softmax(loglik + log prior), state = most probable).

The ``gate`` vector (int64, length :data:`GATE_SIZE`, owned by the decoder; the LDA decoder's
:func:`neuroloop.decoders._kernels.hmm_gate_step` runs this stage too):

====  ===============================================================================
 [0]  gated state (0 = rest)
 [1]  raw state: argmax of this hop's smoothed probabilities
 [2]  candidate state waiting to be entered (-1: none)
 [3]  consecutive hops the candidate has been above the threshold
 [4]  1 if this hop's input was valid (finite), else 0
====  ===============================================================================
"""

from __future__ import annotations

import numpy as np

from .._jit import jit

__all__ = ["decide", "invalidate", "all_finite", "affine", "GATE_STATE", "GATE_RAW",
           "GATE_CANDIDATE", "GATE_COUNT", "GATE_VALID", "GATE_SIZE"]

GATE_STATE = 0
GATE_RAW = 1
GATE_CANDIDATE = 2
GATE_COUNT = 3
GATE_VALID = 4
GATE_SIZE = 5


@jit
def invalidate(reset_p, p_prev, gate, probs):
    """Invalid hop: probabilities and recursion restart from ``reset_p``, gate to state 0."""
    for k in range(reset_p.shape[0]):
        probs[k] = reset_p[k]
        p_prev[k] = reset_p[k]
    gate[GATE_STATE] = 0
    gate[GATE_RAW] = 0
    gate[GATE_CANDIDATE] = -1
    gate[GATE_COUNT] = 0
    gate[GATE_VALID] = 0


@jit
def decide(loglik, log_prior, use_gate, trans, reset_p, p_prev, gate_hops, threshold, gate,
           probs):
    """Turn one hop's per-state log-likelihoods into probabilities and a (gated) state.

    Parameters
    ----------
    loglik : ndarray, shape (n_states,), float64
        Log-likelihood of each state (up to a common constant); not modified.
    log_prior : ndarray, shape (n_states,), float64
        Log class priors (used without the gate: posterior ∝ likelihood × prior).
    use_gate : bool
        True: HMM forward recursion ``p_t ∝ lik_t * (trans.T @ p_{t-1})`` and the
        dwell/hysteresis gate (the LDA decoder's).
        False: ``probs = softmax(loglik + log_prior)`` and state = raw state.
    trans : ndarray, shape (n_states, n_states)
        Row-stochastic transition matrix.
    reset_p : ndarray, shape (n_states,)
        Where the recursion (re)starts (the priors).
    p_prev : ndarray, shape (n_states,)
        Previous smoothed probabilities; updated in place.
    gate_hops : int
    threshold : float
    gate : ndarray, shape (5,), int64
        Gate state; updated in place.
    probs : ndarray, shape (n_states,)
        Output probabilities.

    Notes
    -----
    A non-finite score makes the hop invalid (:func:`invalidate`).
    """
    n = loglik.shape[0]
    for k in range(n):
        if not np.isfinite(loglik[k]):
            invalidate(reset_p, p_prev, gate, probs)
            return
    m = -np.inf
    for k in range(n):
        if use_gate:
            pred = 0.0
            for i in range(n):
                pred += trans[i, k] * p_prev[i]
            a = loglik[k] + np.log(pred)
        else:
            a = loglik[k] + log_prior[k]
        probs[k] = a
        if a > m:
            m = a
    total = 0.0
    for k in range(n):
        e = np.exp(probs[k] - m)
        probs[k] = e
        total += e
    inv = 1.0 / total
    raw = 0
    best = -1.0
    for k in range(n):
        p = probs[k] * inv
        probs[k] = p
        p_prev[k] = p
        if p > best:
            best = p
            raw = k
    gate[GATE_RAW] = raw
    gate[GATE_VALID] = 1
    if not use_gate:
        gate[GATE_STATE] = raw
        gate[GATE_CANDIDATE] = -1
        gate[GATE_COUNT] = 0
        return
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
def all_finite(x):
    """True when every element of the 1-D array ``x`` is finite."""
    for j in range(x.shape[0]):
        if not np.isfinite(x[j]):
            return False
    return True


@jit
def affine(W, b, x, out):
    """``out = W @ x + b`` (no allocation); W (n_out, n_in), b (n_out,), x (n_in,)."""
    for k in range(W.shape[0]):
        s = b[k]
        wk = W[k]
        for j in range(W.shape[1]):
            s += wk[j] * x[j]
        out[k] = s
