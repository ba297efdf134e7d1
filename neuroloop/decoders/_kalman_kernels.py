"""Compiled online step of the Kalman decoder (private; use
:class:`neuroloop.decoders.kalman.KalmanDecoder`).

State-space model in centred coordinates (``s = x - mu_x``, ``r = z - mu_z``)::

    s_t = A s_{t-1} + w,  w ~ N(0, W)        (kinematics: position / velocity)
    r_t = H s_t + q,      q ~ N(0, Q)        (features)

The update uses the information form, so that the per-step cost is O(d * p) for ``d`` states
and ``p`` features (never a p x p inverse online)::

    Pp = A P A' + W
    P  = (Pp^-1 + H' Q^-1 H)^-1
    s  = A s + P H' Q^-1 (r - H A s)

With the steady-state gain, ``P`` is the fixed point of that recursion (computed at fit) and
``K = P H' Q^-1`` is constant. Every array is preallocated by the decoder.
"""

from __future__ import annotations

import numpy as np

from .._jit import jit

__all__ = ["spd_inverse", "kalman_step", "kalman_run"]


@jit
def spd_inverse(A, out, work):
    """``out = inv(A)`` for a small symmetric positive definite matrix, by Gauss-Jordan
    elimination with partial pivoting on ``work`` (no allocation).

    Parameters
    ----------
    A : ndarray, shape (d, d)
    out : ndarray, shape (d, d)
    work : ndarray, shape (d, 2 * d)

    Returns
    -------
    bool
        False when a pivot is zero or not finite (``out`` is then NaN).
    """
    d = A.shape[0]
    for i in range(d):
        for j in range(d):
            work[i, j] = A[i, j]
            work[i, d + j] = 1.0 if i == j else 0.0
    for c in range(d):
        piv = c
        best = abs(work[c, c])
        for r in range(c + 1, d):
            v = abs(work[r, c])
            if v > best:
                best = v
                piv = r
        if not (best > 0.0) or not np.isfinite(best):
            for i in range(d):
                for j in range(d):
                    out[i, j] = np.nan
            return False
        if piv != c:
            for j in range(2 * d):
                t = work[c, j]
                work[c, j] = work[piv, j]
                work[piv, j] = t
        inv = 1.0 / work[c, c]
        for j in range(2 * d):
            work[c, j] *= inv
        for r in range(d):
            if r != c:
                f = work[r, c]
                if f != 0.0:
                    for j in range(2 * d):
                        work[r, j] -= f * work[c, j]
    for i in range(d):
        for j in range(d):
            out[i, j] = 0.5 * (work[i, d + j] + work[j, d + i])
    return True


@jit
def kalman_step(z, mu_z, mu_x, A, W, H, HtQi, HtQiH, steady, K, s, P, Pp, work, sp, u,
                out):
    """One online hop of the Kalman decoder.

    Parameters
    ----------
    z : ndarray, shape (p,)
        Features of this hop.
    mu_z : ndarray, shape (p,)
        Calibration mean of the features.
    mu_x : ndarray, shape (d,)
        Calibration mean of the kinematics.
    A, W : ndarray, shape (d, d)
        State transition and its noise covariance.
    H : ndarray, shape (p, d)
        Observation matrix.
    HtQi : ndarray, shape (d, p)
        ``H' Q^-1``.
    HtQiH : ndarray, shape (d, d)
        ``H' Q^-1 H``.
    steady : bool
        Use the constant gain ``K`` instead of propagating ``P``.
    K : ndarray, shape (d, p)
        Steady-state gain (ignored unless ``steady``).
    s : ndarray, shape (d,)
        Centred state estimate; updated in place.
    P : ndarray, shape (d, d)
        Posterior covariance; updated in place (unless ``steady``).
    Pp : ndarray, shape (d, d)
        Scratch.
    work : ndarray, shape (d, 3 * d)
        Scratch: ``[:, :2d]`` for :func:`spd_inverse`, ``[:, 2d:]`` a d x d matrix.
    sp, u : ndarray, shape (d,)
        Scratch.
    out : ndarray, shape (d,)
        Decoded kinematics ``mu_x + s``; NaN when invalid.

    Returns
    -------
    bool
        False when a feature is not finite or the update is not finite; the caller resets
        the state (``out`` is NaN and ``s``/``P`` are left for the caller to restore).
    """
    d = s.shape[0]
    p = z.shape[0]
    for j in range(p):
        if not np.isfinite(z[j]):
            for i in range(d):
                out[i] = np.nan
            return False
    # prediction s_p = A s
    for i in range(d):
        acc = 0.0
        for k in range(d):
            acc += A[i, k] * s[k]
        sp[i] = acc
    # innovation r - H sp, folded into u = H' Q^-1 (r - H sp) or directly s = sp + K (...)
    for i in range(d):
        u[i] = 0.0
    G = K if steady else HtQi
    for j in range(p):
        r = z[j] - mu_z[j]
        for k in range(d):
            r -= H[j, k] * sp[k]
        for i in range(d):
            u[i] += G[i, j] * r
    if steady:
        for i in range(d):
            s[i] = sp[i] + u[i]
    else:
        M = work[:, 2 * d:]
        # Pp = A P A' + W
        for i in range(d):
            for k in range(d):
                acc = 0.0
                for m in range(d):
                    acc += A[i, m] * P[m, k]
                M[i, k] = acc
        for i in range(d):
            for k in range(d):
                acc = W[i, k]
                for m in range(d):
                    acc += M[i, m] * A[k, m]
                Pp[i, k] = acc
        if not spd_inverse(Pp, M, work[:, :2 * d]):
            for i in range(d):
                out[i] = np.nan
            return False
        for i in range(d):
            for k in range(d):
                M[i, k] += HtQiH[i, k]
        if not spd_inverse(M, P, work[:, :2 * d]):
            for i in range(d):
                out[i] = np.nan
            return False
        for i in range(d):
            acc = sp[i]
            for k in range(d):
                acc += P[i, k] * u[k]
            s[i] = acc
    ok = True
    for i in range(d):
        v = mu_x[i] + s[i]
        if not np.isfinite(v):
            ok = False
        out[i] = v
    if not ok:
        for i in range(d):
            out[i] = np.nan
    return ok


@jit
def kalman_run(Z, mu_z, mu_x, A, W, H, HtQi, HtQiH, steady, K, P0, out):
    """Run :func:`kalman_step` over consecutive hops from the initial state (offline path).

    Invalid hops give NaN rows and restart the filter (state ``0``, covariance ``P0``), as
    the online decoder does.

    Parameters
    ----------
    Z : ndarray, shape (n_hops, p)
    P0 : ndarray, shape (d, d)
        Initial posterior covariance.
    out : ndarray, shape (n_hops, d)
    Other parameters as :func:`kalman_step`.
    """
    d = mu_x.shape[0]
    s = np.zeros(d)
    P = P0.copy()
    Pp = np.zeros((d, d))
    work = np.zeros((d, 3 * d))
    sp = np.zeros(d)
    u = np.zeros(d)
    for h in range(Z.shape[0]):
        if not kalman_step(Z[h], mu_z, mu_x, A, W, H, HtQi, HtQiH, steady, K, s, P, Pp, work,
                           sp, u, out[h]):
            for i in range(d):
                s[i] = 0.0
                for k in range(d):
                    P[i, k] = P0[i, k]
