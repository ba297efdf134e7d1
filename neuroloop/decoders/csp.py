"""``csp-lda``: common spatial patterns -> log-variance -> shrinkage LDA.

The classic motor-imagery pipeline (Ramoser et al. 2000; Blankertz et al. 2008):

1. window covariance: mean of the last ``window_hops`` hop covariances, shrunk (as
   ``riemann``);
2. CSP filters per band from the class-mean training covariances by the generalised
   eigenproblem ``C_k w = lambda (C_k + C_rest) w`` (SciPy ``eigh``): for two states one problem,
   for more states one-vs-rest per state; the ``filter_pairs`` largest and smallest
   eigenvalues' vectors of each problem are kept;
3. features ``f_j = log(w_j' C w_j)`` (log-variance of each filtered signal over the window);
4. shrinkage LDA (scikit-learn, ``solver="lsqr"``, Ledoit-Wolf ``shrinkage="auto"``);
5. optionally the HMM-style gate.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from .._checks import Range
from ..errors import ConfigError, DecoderFileError
from . import _cov_kernels as ck
from ._classifier import check_int_param, check_labels
from ._covariance import CovarianceClassifier
from .base import OutputSchema, register_decoder
from .riemann import _binary_to_two_rows

__all__ = ["CSPLDADecoder", "csp_filters"]

_PAIRS = Range(1, 32, integer=True)


def csp_filters(class_covs: np.ndarray, filter_pairs: int) -> np.ndarray:
    """CSP spatial filters from per-class mean covariances.

    Parameters
    ----------
    class_covs : ndarray, shape (n_states, n, n)
    filter_pairs : int

    Returns
    -------
    ndarray, shape (n_filters, n)
        Two states: ``2 * filter_pairs`` filters; more: ``n_states * 2 * filter_pairs``.
    """
    import scipy.linalg

    k, n = class_covs.shape[0], class_covs.shape[1]
    pairs = min(filter_pairs, n // 2)
    problems = [0] if k == 2 else list(range(k))
    rows = []
    for c in problems:
        rest = np.mean(np.delete(class_covs, c, axis=0), axis=0)
        evals, evecs = scipy.linalg.eigh(class_covs[c], class_covs[c] + rest)
        order = np.argsort(evals)
        pick = np.concatenate([order[:pairs], order[-pairs:]])
        rows.append(evecs[:, pick].T)
    return np.ascontiguousarray(np.concatenate(rows, axis=0))


@register_decoder
class CSPLDADecoder(CovarianceClassifier):
    """Common spatial patterns + log-variance + shrinkage LDA.

    Parameters
    ----------
    filter_pairs : int, default 2
        Filters kept at each end of each CSP problem's spectrum.
    n_bands, window_hops, shrinkage, n_states, gate, transition_stay, gate_hops,
    gate_threshold
        As :class:`~neuroloop.decoders.riemann.RiemannDecoder`.

    Attributes
    ----------
    filters_ : ndarray, shape (n_bands, n_filters, n_channels)
    coef_ : ndarray, shape (n_states, n_bands * n_filters)
    intercept_ : ndarray, shape (n_states,)
    priors_ : ndarray, shape (n_states,)
    """

    name = "csp-lda"

    def __init__(self, filter_pairs: int = 2, n_bands: int = 1, window_hops: int = 10,
                 shrinkage: float = 0.05, **gate: Any) -> None:
        super().__init__(n_bands=n_bands, window_hops=window_hops, shrinkage=shrinkage, **gate)
        self.filter_pairs = check_int_param("filter_pairs", filter_pairs, _PAIRS, "e.g. 2")

    def get_params(self) -> dict[str, Any]:
        return {"filter_pairs": self.filter_pairs, **self._cov_params()}

    def _fit(self, X: np.ndarray, y: np.ndarray, *,
             state_names: Sequence[str] | None = None) -> CSPLDADecoder:
        """Fit on a calibration sequence (as :meth:`RiemannDecoder.fit`)."""
        from sklearn.discriminant_analysis import LinearDiscriminantAnalysis

        X = np.asarray(X, dtype=np.float64)
        y, n_states = check_labels(y, X.shape[0] if X.ndim == 2 else -1,
                                   self._n_states_param, allow_context=True)
        covs, lab, n = self._examples(X, y)
        missing = sorted(set(range(n_states)) - set(np.unique(lab).tolist()))
        if missing:
            raise ConfigError(f"state(s) {missing} have no hop with a full window; record "
                              "longer trials or lower window_hops")
        filters = []
        feats = []
        for b in range(self.n_bands):
            means = np.stack([covs[lab == k, b].mean(axis=0) for k in range(n_states)])
            Wb = csp_filters(means, self.filter_pairs)
            filters.append(Wb)
            feats.append(np.log(np.einsum("fi,mij,fj->mf", Wb, covs[:, b], Wb)))
        F = np.concatenate(feats, axis=1)
        lda = LinearDiscriminantAnalysis(solver="lsqr", shrinkage="auto").fit(F, lab)
        coef, intercept = _binary_to_two_rows(lda.coef_, lda.intercept_)
        self._set_model(np.stack(filters), coef, intercept, np.asarray(lda.priors_),
                        state_names)
        return self

    def _set_model(self, filters: np.ndarray, coef: np.ndarray, intercept: np.ndarray,
                   priors: np.ndarray, state_names: Sequence[str] | None) -> None:
        self.filters_ = np.ascontiguousarray(filters)
        self._nf = filters.shape[1]
        self._set_linear(filters.shape[2], coef, intercept, priors, state_names, self._nf)

    def _transform(self, band: int) -> bool:
        return bool(ck.csp_log_variance(self._C, self.filters_[band], self._f, band * self._nf))

    def _arrays(self) -> dict[str, np.ndarray]:
        self._check_fitted()
        return {"filters": self.filters_, "coef": self.coef_, "intercept": self.intercept_,
                "priors": self.priors_}

    def _from_arrays(self, arrays: dict[str, np.ndarray]) -> None:
        try:
            filters, coef, intercept, priors = (np.asarray(arrays[k], dtype=np.float64)
                                                for k in ("filters", "coef", "intercept",
                                                          "priors"))
        except KeyError as exc:
            raise DecoderFileError(f"csp-lda decoder file lacks array {exc.args[0]!r}; "
                                   "retrain it") from None
        ok = filters.ndim == 3 and filters.shape[0] == self.n_bands and priors.ndim == 1 \
            and priors.shape[0] >= 2 and intercept.shape == priors.shape \
            and coef.shape == (priors.shape[0], filters.shape[0] * filters.shape[1])
        if not ok:
            raise DecoderFileError("csp-lda decoder file has inconsistent array shapes; "
                                   "retrain it")
        if not all(np.all(np.isfinite(a)) for a in (filters, coef, intercept, priors)) \
                or np.any(priors <= 0):
            raise DecoderFileError("csp-lda decoder file holds non-finite values; retrain it")
        self._set_model(filters, coef, intercept, priors,
                        OutputSchema.unnamed_states(priors.shape[0]))
