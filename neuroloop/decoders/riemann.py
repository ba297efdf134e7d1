"""``riemann``: spatial covariance -> tangent space at the training mean -> logistic regression.

The minimum-distance / tangent-space family of Barachant et al. (2012, 2013), built with
pyRiemann and scikit-learn at fit time and stepped online through compiled kernels:

1. window covariance: mean of the last ``window_hops`` hop covariances (features of
   ``dsp.features = "covariance"``), shrunk towards ``trace/n * I`` (``shrinkage``);
2. tangent space at the training Riemannian mean ``Cref`` (``pyriemann`` ``mean_riemann``):
   ``t = upper(logm(Cref^-1/2 C Cref^-1/2))``, off-diagonal terms times sqrt(2) (pyRiemann's
   ``tangent_space``); online the congruence is two compiled products and the matrix log an
   eigen-decomposition by LAPACK ``dsyevd`` on preallocated workspace;
3. multinomial logistic regression (scikit-learn, L2, inverse strength ``lr_c``) on the
   concatenated per-band tangent vectors;
4. optionally the HMM-style gate (``gate = true``, as the ``lda`` decoder).

Invalid input (a non-finite feature) gives ``valid=False`` and is left out of the window.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from .._checks import Range
from ..errors import ConfigError, DecoderFileError
from . import _cov_kernels as ck
from ._classifier import check_labels, check_param
from ._covariance import CovarianceClassifier, packed_size
from .base import OutputSchema, register_decoder

__all__ = ["RiemannDecoder"]

_LR_C = Range(0.0, 1e12, lo_open=True)


def _binary_to_two_rows(coef: np.ndarray, intercept: np.ndarray) -> tuple[np.ndarray,
                                                                          np.ndarray]:
    """scikit-learn's binary linear models give one score row; the decision stage wants one
    per state: ``[0, w]`` so that softmax gives the same posterior as the sigmoid."""
    if coef.shape[0] == 1:
        coef = np.vstack([np.zeros_like(coef), coef])
        intercept = np.concatenate([[0.0], intercept])
    return coef, intercept


_BLAS_LIMIT: list[Any] = []


def _keep_blas_single_threaded() -> None:
    """Process-wide: BLAS/LAPACK on one thread from now on (kept for the process's life)."""
    if not _BLAS_LIMIT:
        from threadpoolctl import threadpool_limits

        _BLAS_LIMIT.append(threadpool_limits(limits=1, user_api="blas"))


@register_decoder
class RiemannDecoder(CovarianceClassifier):
    """Tangent-space + logistic-regression decoder of windowed spatial covariances.

    Parameters
    ----------
    lr_c : float, default 1.0
        Inverse L2 regularisation strength of the logistic regression.
    n_bands, window_hops, shrinkage
        See :class:`~neuroloop.decoders._covariance.CovarianceClassifier`.
    n_states, gate, transition_stay, gate_hops, gate_threshold
        See :class:`~neuroloop.decoders._classifier.ClassifierDecoder`.

    Attributes
    ----------
    reference_ : ndarray, shape (n_bands, n_channels, n_channels)
        Riemannian mean of the training window covariances (the tangent point).
    coef_ : ndarray, shape (n_states, n_bands * n (n + 1) / 2)
    intercept_ : ndarray, shape (n_states,)
    priors_ : ndarray, shape (n_states,)
    """

    name = "riemann"

    def __init__(self, lr_c: float = 1.0, n_bands: int = 1, window_hops: int = 10,
                 shrinkage: float = 0.05, **gate: Any) -> None:
        super().__init__(n_bands=n_bands, window_hops=window_hops, shrinkage=shrinkage, **gate)
        self.lr_c = check_param("lr_c", lr_c, _LR_C, "e.g. 1.0")

    def get_params(self) -> dict[str, Any]:
        return {"lr_c": self.lr_c, **self._cov_params()}

    def _fit(self, X: np.ndarray, y: np.ndarray, *,
             state_names: Sequence[str] | None = None) -> RiemannDecoder:
        """Fit on a calibration sequence.

        Parameters
        ----------
        X : ndarray, shape (n_hops, n_bands * n (n + 1) / 2)
            Hop covariances in time order.
        y : ndarray, shape (n_hops,), int
            State per hop; -1 for hops that only give context to the window.
        state_names : sequence of str, optional
        """
        from pyriemann.geometry.mean import mean_riemann
        from pyriemann.geometry.tangentspace import tangent_space
        from sklearn.linear_model import LogisticRegression

        X = np.asarray(X, dtype=np.float64)
        y, n_states = check_labels(y, X.shape[0] if X.ndim == 2 else -1,
                                   self._n_states_param, allow_context=True)
        covs, lab, n = self._examples(X, y)
        missing = sorted(set(range(n_states)) - set(np.unique(lab).tolist()))
        if missing:
            raise ConfigError(f"state(s) {missing} have no hop with a full window; record "
                              "longer trials or lower window_hops")
        refs, tvs = [], []
        for b in range(self.n_bands):
            ref = mean_riemann(covs[:, b])
            refs.append(ref)
            tvs.append(tangent_space(covs[:, b], ref))
        T = np.concatenate(tvs, axis=1)
        lr = LogisticRegression(C=self.lr_c, max_iter=2000)
        lr.fit(T, lab)
        coef, intercept = _binary_to_two_rows(lr.coef_, lr.intercept_)
        counts = np.bincount(lab, minlength=n_states).astype(np.float64)
        self._set_model(np.stack(refs), coef, intercept, counts / counts.sum(), state_names)
        return self

    def _set_model(self, refs: np.ndarray, coef: np.ndarray, intercept: np.ndarray,
                   priors: np.ndarray, state_names: Sequence[str] | None) -> None:
        from pyriemann.geometry.base import invsqrtm

        n = refs.shape[1]
        self.reference_ = np.ascontiguousarray(refs)
        self._isqrt = np.ascontiguousarray(np.stack([invsqrtm(r) for r in refs]))
        self._M = np.zeros((n, n))
        self._V = np.zeros((n, n))
        self._w = np.zeros(n)
        lwork, liwork = ck.eig_workspace(n)
        self._work = np.zeros(lwork)
        self._iwork = np.zeros(liwork, dtype=np.int32)
        self._ints = np.array([n, lwork, liwork, 0], dtype=np.int32)
        self._chars = np.array([ord("V"), ord("L")], dtype=np.uint8)
        self._p = packed_size(n)
        self._set_linear(n, coef, intercept, priors, state_names, self._p)

    def warmup(self) -> None:
        """Limit BLAS/LAPACK to one thread for the process (the online step calls LAPACK
        ``dsyevd``: OpenBLAS would spread a 64 x 64 eigen-decomposition over threads that cost
        more than they save and fight the loop for the cores; measured on the loaded 2-core
        machine: a 20 ms decoder stage), then compile and reset."""
        _keep_blas_single_threaded()
        super().warmup()

    def _transform(self, band: int) -> bool:
        return bool(ck.tangent_vector(self._C, self._isqrt[band], self._M, self._V, self._w,
                                      self._work, self._iwork, self._ints, self._chars,
                                      self._f, band * self._p))

    def _arrays(self) -> dict[str, np.ndarray]:
        self._check_fitted()
        return {"reference": self.reference_, "coef": self.coef_,
                "intercept": self.intercept_, "priors": self.priors_}

    def _from_arrays(self, arrays: dict[str, np.ndarray]) -> None:
        try:
            refs, coef, intercept, priors = (np.asarray(arrays[k], dtype=np.float64) for k in (
                "reference", "coef", "intercept", "priors"))
        except KeyError as exc:
            raise DecoderFileError(f"riemann decoder file lacks array {exc.args[0]!r}; retrain "
                                   "it") from None
        nb = refs.shape[0] if refs.ndim == 3 else -1
        n = refs.shape[1] if refs.ndim == 3 else -1
        k = priors.shape[0] if priors.ndim == 1 else -1
        if nb != self.n_bands or n < 2 or refs.shape != (nb, n, n) or k < 2 \
                or coef.shape != (k, nb * packed_size(n)) or intercept.shape != (k,):
            raise DecoderFileError("riemann decoder file has inconsistent array shapes; "
                                   "retrain it")
        if not all(np.all(np.isfinite(a)) for a in (refs, coef, intercept, priors)) \
                or np.any(priors <= 0):
            raise DecoderFileError("riemann decoder file holds non-finite values; retrain it")
        self._set_model(refs, coef, intercept, priors, OutputSchema.unnamed_states(k))
