"""Compiled online step of the ``adaptive`` decoder (private): linear scores and the bounded
recursive-least-squares update with exponential forgetting.

``phi = [x, 1]`` (the features and a bias), ``scores = W' phi`` with ``W`` (p + 1, k). One RLS
update towards the one-hot target ``t`` of state ``target``::

    k = P phi / (lam + phi' P phi)
    W += k (t - W' phi)'
    P  = (P - k phi' P) / lam

Bounds (checked after every update): every entry of ``W`` and ``P`` finite,
``||W - W0||_F <= max_drift * ||W0||_F`` and ``trace(P) <= max_trace``. A violated bound
returns False: the decoder then reports every output invalid until it is reset.
"""

from __future__ import annotations

import numpy as np

from .._jit import jit

__all__ = ["linear_scores", "rls_update"]


@jit
def linear_scores(W, x, mean, scale, beta, log_prior, phi, scores, loglik):
    """``phi = [(x - mean) / scale, 1]``, ``scores = W' phi``,
    ``loglik = beta * scores - log_prior``.

    W (p + 1, k), x/mean/scale (p,), phi (p + 1,), scores/loglik/log_prior (k,).
    """
    p = x.shape[0]
    for j in range(p):
        phi[j] = (x[j] - mean[j]) / scale[j]
    phi[p] = 1.0
    for c in range(W.shape[1]):
        scores[c] = 0.0
    for j in range(p + 1):
        v = phi[j]
        wj = W[j]
        for c in range(W.shape[1]):
            scores[c] += wj[c] * v
    for c in range(W.shape[1]):
        loglik[c] = beta * scores[c] - log_prior[c]


@jit
def rls_update(W, P, phi, Pphi, scores, target, lam, W0, max_drift2, max_trace):
    """One RLS step towards one-hot ``target`` (``scores`` = W' phi before the update).

    Parameters
    ----------
    W : ndarray, shape (q, k)
        Weights, updated in place (q = p + 1).
    P : ndarray, shape (q, q)
        Inverse correlation matrix, updated in place.
    phi : ndarray, shape (q,)
    Pphi : ndarray, shape (q,)
        Scratch.
    scores : ndarray, shape (k,)
    target : int
    lam : float
        Forgetting factor in (0, 1].
    W0 : ndarray, shape (q, k)
        Calibrated weights (the drift reference).
    max_drift2 : float
        Squared bound of ``||W - W0||_F``.
    max_trace : float
        Bound of ``trace(P)``.

    Returns
    -------
    bool
        False when a bound is violated (the model must not be used any more).
    """
    q = phi.shape[0]
    k = W.shape[1]
    denom = lam
    for i in range(q):
        acc = 0.0
        Pi = P[i]
        for j in range(q):
            acc += Pi[j] * phi[j]
        Pphi[i] = acc
        denom += phi[i] * acc
    if not (denom > 0.0) or not np.isfinite(denom):
        return False
    inv = 1.0 / denom
    for i in range(q):
        g = Pphi[i] * inv
        Wi = W[i]
        for c in range(k):
            e = (1.0 if c == target else 0.0) - scores[c]
            Wi[c] += g * e
    inv_lam = 1.0 / lam
    for i in range(q):
        gi = Pphi[i] * inv
        Pi = P[i]
        for j in range(q):
            Pi[j] = (Pi[j] - gi * Pphi[j]) * inv_lam
    drift = 0.0
    for i in range(q):
        for c in range(k):
            v = W[i, c]
            if not np.isfinite(v):
                return False
            d = v - W0[i, c]
            drift += d * d
    tr = 0.0
    for i in range(q):
        v = P[i, i]
        if not np.isfinite(v):
            return False
        tr += v
    return drift <= max_drift2 and tr <= max_trace
