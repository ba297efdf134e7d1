"""riemann and csp-lda: the online step equals a SciPy/NumPy reference, hop by hop."""

from __future__ import annotations

import numpy as np
import pytest

from neuroloop.decoders import make_decoder
from neuroloop.decoders._covariance import example_covariance_data
from tests.reference import (
    GatedDecisionRef,
    csp_log_variance_ref,
    tangent_vector_ref,
    window_covariances_ref,
)


def _features(dec, covs: np.ndarray) -> np.ndarray:
    if dec.name == "riemann":
        return np.concatenate([tangent_vector_ref(covs[b], dec.reference_[b])
                               for b in range(dec.n_bands)])
    return np.concatenate([csp_log_variance_ref(covs[b], dec.filters_[b])
                           for b in range(dec.n_bands)])


@pytest.mark.parametrize("gate", [True, False])
@pytest.mark.parametrize("name", ["riemann", "csp-lda"])
def test_online_step_equals_reference(name: str, gate: bool) -> None:
    X, y = example_covariance_data(600, seed=0, n_channels=5)
    dec = make_decoder(name, gate=gate, window_hops=6, shrinkage=0.1).fit(X, y)
    Xt, _ = example_covariance_data(200, seed=1, n_channels=5)
    Xt[50, 3] = np.nan
    Xt[51, 0] = np.inf
    windows = window_covariances_ref(Xt, 5, 1, 6, 0.1)
    ref = GatedDecisionRef(dec.priors_, gate, dec.transition_stay, dec.gate_hops,
                           dec.gate_threshold)
    dec.reset()
    for x, covs in zip(Xt, windows, strict=True):
        out = dec.step(x)
        loglik = None
        if covs is not None:
            f = _features(dec, covs)
            loglik = dec.coef_ @ f + dec.intercept_ - np.log(dec.priors_)
        state, raw, probs, valid = ref.step(loglik)
        assert (out.state, out.raw_state, out.valid) == (state, raw, valid)
        np.testing.assert_allclose(out.probabilities, probs, rtol=1e-9, atol=1e-12)


def test_riemann_tangent_vectors_equal_pyriemann() -> None:
    from pyriemann.geometry.tangentspace import tangent_space

    X, y = example_covariance_data(400, seed=2, n_channels=6)
    dec = make_decoder("riemann", window_hops=5).fit(X, y)
    covs, rows, _ = dec.window_covariances(X, 6)
    got = dec.transform(X)[rows]
    want = tangent_space(covs[:, 0], dec.reference_[0])
    np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-10)


@pytest.mark.parametrize("name", ["riemann", "csp-lda"])
def test_separable_classes_are_decoded(name: str) -> None:
    X, y = example_covariance_data(900, seed=3)
    dec = make_decoder(name, gate=False).fit(X[:600], y[:600])
    pred = dec.predict(X[600:])
    assert np.mean(pred[20:] == y[620:]) > 0.8


def test_features_that_are_not_covariances_are_refused() -> None:
    from neuroloop.errors import ConfigError

    with pytest.raises(ConfigError, match="dsp.features"):
        make_decoder("riemann").fit(np.ones((100, 7)), np.arange(100) % 2)
