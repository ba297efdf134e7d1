"""Compiled online covariance stages of the ``riemann`` and ``csp-lda`` decoders (private).

Input features are hop covariances packed band-major, each band the upper triangle in
``numpy.triu_indices`` order (as :class:`neuroloop.dsp.covariance.CovariancePipeline` writes
them). The decoder keeps the last ``window_hops`` valid hops in a ring and, every hop,
averages them (the sliding-window spatial covariance), shrinks the average towards a scaled
identity, and then either

* projects it onto the tangent space at the training mean ``Cref`` (riemann):
  ``t = upper(logm(Cref^-1/2 C Cref^-1/2))`` with off-diagonal terms times sqrt(2), the
  matrix logarithm through LAPACK ``dsyevd`` on preallocated workspace; or
* takes the log-variance of CSP-filtered signals (csp-lda): ``f_j = log(w_j' C w_j)``.

Ring state vector ``ring_state`` (int64): ``[0]`` next row to write, ``[1]`` rows filled.
"""

from __future__ import annotations

import numpy as np

from .._jit import jit, jit_uncached, lapack_function

__all__ = ["ring_push", "ring_reset", "window_cov", "tangent_vector", "csp_log_variance",
           "RING_POS", "RING_COUNT", "eig_workspace"]

RING_POS = 0
RING_COUNT = 1
# dsyevd(jobz, uplo, n, a, lda, w, work, lwork, iwork, liwork, info): divide and conquer,
# faster than dsyev for the eigenvectors


def eig_workspace(n: int) -> tuple[int, int]:
    """``(lwork, liwork)`` of LAPACK ``dsyevd`` with eigenvectors for an n x n matrix."""
    return 1 + 6 * n + 2 * n * n, 3 + 5 * n


_dsyevd = lapack_function("dsyevd", 11)


@jit
def ring_reset(ring_state):
    ring_state[RING_POS] = 0
    ring_state[RING_COUNT] = 0


@jit
def ring_push(x, ring, ring_state):
    """Store one hop's packed covariances ``x`` (n_features,) as the newest ring row."""
    pos = ring_state[RING_POS]
    row = ring[pos]
    for j in range(x.shape[0]):
        row[j] = x[j]
    ring_state[RING_POS] = (pos + 1) % ring.shape[0]
    if ring_state[RING_COUNT] < ring.shape[0]:
        ring_state[RING_COUNT] += 1


@jit
def window_cov(ring, count, band, shrinkage, C):
    """Mean of the first ``count`` ring rows for ``band``, unpacked and shrunk, into ``C``.

    ``C = (1 - a) M + a * trace(M) / n * I`` with ``M`` the window mean and ``a = shrinkage``.

    Parameters
    ----------
    ring : ndarray, shape (window_hops, n_features)
    count : int
        Rows filled (1..window_hops).
    band : int
    shrinkage : float
    C : ndarray, shape (n, n)
        Output, symmetric.
    """
    n = C.shape[0]
    p = n * (n + 1) // 2
    off = band * p
    inv = 1.0 / count
    k = off
    tr = 0.0
    for i in range(n):
        for j in range(i, n):
            s = 0.0
            for r in range(count):
                s += ring[r, k]
            s *= inv
            C[i, j] = s
            C[j, i] = s
            if i == j:
                tr += s
            k += 1
    mu = tr / n
    a = shrinkage
    for i in range(n):
        for j in range(n):
            C[i, j] = (1.0 - a) * C[i, j]
        C[i, i] += a * mu


@jit_uncached
def _eigh_inplace(A, w, work, iwork, ints, chars):
    """Eigen-decomposition of symmetric ``A`` in place (LAPACK dsyevd): on return the rows of
    ``A`` (column-major view of Fortran) are the eigenvectors, ``w`` the ascending eigenvalues.
    ``ints`` = ``[n, lwork, liwork, info]`` (int32). Returns LAPACK's ``info`` (0 = success)."""
    _dsyevd(chars[0:1].ctypes, chars[1:2].ctypes, ints[0:1].ctypes, A.ctypes, ints[0:1].ctypes,
            w.ctypes, work.ctypes, ints[1:2].ctypes, iwork.ctypes, ints[2:3].ctypes,
            ints[3:4].ctypes)
    return ints[3]


@jit_uncached
def tangent_vector(C, isqrt_ref, M, V, w, work, iwork, ints, chars, out, out_offset):
    """Tangent-space vector of SPD ``C`` at the reference whose inverse square root is
    ``isqrt_ref``: ``upper(logm(R C R))``, ``R = isqrt_ref``, off-diagonal terms times sqrt(2)
    (pyRiemann's ``tangent_space``), written to ``out[out_offset:out_offset + n(n+1)/2]``.

    Parameters
    ----------
    C : ndarray, shape (n, n)
        Symmetric positive definite (not modified).
    isqrt_ref : ndarray, shape (n, n)
    M, V : ndarray, shape (n, n)
        Scratch.
    w : ndarray, shape (n,)
        Scratch (eigenvalues).
    work : ndarray, shape (lwork,)
    iwork : ndarray, shape (liwork,), int32
        LAPACK workspace (:func:`eig_workspace`).
    ints : ndarray, shape (4,), int32
        ``[n, lwork, liwork, info]``.
    chars : ndarray, shape (2,), uint8
        ``[ord('V'), ord('L')]``.
    out : ndarray
    out_offset : int

    Returns
    -------
    bool
        False when the eigen-decomposition failed or an eigenvalue is not positive (the
        output is then NaN).
    """
    n = C.shape[0]
    # M = C R
    for i in range(n):
        for j in range(n):
            M[i, j] = 0.0
        for k in range(n):
            cik = C[i, k]
            rk = isqrt_ref[k]
            for j in range(n):
                M[i, j] += cik * rk[j]
    # V = R M  (symmetric)
    for i in range(n):
        for j in range(n):
            V[i, j] = 0.0
        for k in range(n):
            rik = isqrt_ref[i, k]
            mk = M[k]
            for j in range(n):
                V[i, j] += rik * mk[j]
    info = _eigh_inplace(V, w, work, iwork, ints, chars)
    p = n * (n + 1) // 2
    ok = info == 0
    if ok:
        for i in range(n):
            if not (w[i] > 0.0) or not np.isfinite(w[i]):
                ok = False
    if not ok:
        for k in range(p):
            out[out_offset + k] = np.nan
        return False
    for i in range(n):
        w[i] = np.log(w[i])
    # dsyevd wrote Fortran order into the C array: row i of V is eigenvector i.
    # S = sum_e log(w_e) v_e v_e'; only the upper triangle is needed.
    sq2 = np.sqrt(2.0)
    k = out_offset
    for i in range(n):
        for j in range(i, n):
            s = 0.0
            for e in range(n):
                s += w[e] * V[e, i] * V[e, j]
            out[k] = s if i == j else sq2 * s
            k += 1
    return True


@jit
def csp_log_variance(C, filters, out, out_offset):
    """``out[out_offset + f] = log(filters[f] @ C @ filters[f])`` for every CSP filter.

    Parameters
    ----------
    C : ndarray, shape (n, n)
    filters : ndarray, shape (n_filters, n)
    out : ndarray

    Returns
    -------
    bool
        False when a variance is not positive or not finite (the output is then NaN).
    """
    n = C.shape[0]
    ok = True
    for f in range(filters.shape[0]):
        wf = filters[f]
        v = 0.0
        for i in range(n):
            acc = 0.0
            ci = C[i]
            for j in range(n):
                acc += ci[j] * wf[j]
            v += wf[i] * acc
        if v > 0.0 and np.isfinite(v):
            out[out_offset + f] = np.log(v)
        else:
            out[out_offset + f] = np.nan
            ok = False
    return ok
