"""adaptive: online step (with RLS updates) equals a NumPy reference; bounded updates."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from neuroloop.decoders import make_decoder
from neuroloop.decoders.adaptive import AdaptiveDecoder
from tests.reference import AdaptiveRef, GatedDecisionRef


def _ref(dec: AdaptiveDecoder) -> AdaptiveRef:
    gate = GatedDecisionRef(dec.priors_, dec.gate, dec.transition_stay, dec.gate_hops,
                            dec.gate_threshold)
    return AdaptiveRef(dec.weights0_, dec.mean_, dec.scale_, dec.beta_, dec.priors_, dec.p0_,
                       dec.forgetting, dec.adapt_confidence, dec.max_drift, dec.max_trace,
                       gate)


@pytest.mark.parametrize("gate", [True, False])
def test_online_step_with_updates_equals_reference(gate: bool) -> None:
    X, y = AdaptiveDecoder.example_data(1000, 0)
    dec = make_decoder("adaptive", gate=gate, forgetting=0.99, adapt_confidence=0.6).fit(
        X[:600], y[:600])
    Xt = X[600:].copy()
    Xt[200:] += 0.7  # a drift the decoder follows
    Xt[150, 2] = np.nan
    ref = _ref(dec)
    dec.reset()
    for x in Xt:
        out = dec.step(x)
        state, raw, p, valid = ref.step(x)
        assert (out.state, out.raw_state, out.valid) == (state, raw, valid)
        np.testing.assert_allclose(out.probabilities, p, rtol=1e-9, atol=1e-12)
    assert dec.n_updates > 50 and not dec.diverged
    np.testing.assert_allclose(dec._W, ref.W, rtol=1e-9, atol=1e-12)


def test_adaptation_follows_a_drift_the_static_model_loses() -> None:
    X, y = AdaptiveDecoder.example_data(1800, 0)
    X, y, Xt, yt = X[:600], y[:600], X[600:], y[600:]
    Xt = Xt + np.linspace(0, 2.0, Xt.shape[0])[:, None]  # slow drift of every feature
    static = make_decoder("adaptive", gate=False, adapt_confidence=1.0).fit(X, y)
    adapt = make_decoder("adaptive", gate=False, forgetting=0.995, adapt_confidence=0.7,
                         max_drift=5.0).fit(X, y)
    acc_static = np.mean([static.step(x).state == t for x, t in zip(Xt, yt, strict=True)])
    acc_adapt = np.mean([adapt.step(x).state == t for x, t in zip(Xt, yt, strict=True)])
    assert acc_adapt >= acc_static


@given(scale=st.floats(1e-3, 1e200), seed=st.integers(0, 2**16))
def test_a_diverging_update_makes_outputs_invalid_never_garbage(scale: float,
                                                                  seed: int) -> None:
    dec = _fitted()
    dec.reset()
    rng = np.random.default_rng(seed)
    for _ in range(60):
        out = dec.step(dec.mean_ + rng.normal(0, 1, dec.n_features) * scale)
        if out.valid:
            assert np.all(np.isfinite(out.probabilities))
        if not dec.diverged:  # the weights the next output will use are within the bound
            drift = np.linalg.norm(dec._W - dec.weights0_)
            assert drift <= dec.max_drift * np.linalg.norm(dec.weights0_) * (1 + 1e-12)
        if dec.diverged:
            assert not dec.step(dec.mean_).valid  # stays invalid until reset
            dec.reset()
            assert dec.step(dec.mean_).valid


_CACHE: list[AdaptiveDecoder] = []


def _fitted() -> AdaptiveDecoder:
    if not _CACHE:
        X, y = AdaptiveDecoder.example_data(600, 0)
        _CACHE.append(make_decoder("adaptive", adapt_confidence=0.0, max_drift=0.5).fit(X, y))
    return _CACHE[0]


def test_supervised_learning_updates_towards_the_given_state() -> None:
    X, y = AdaptiveDecoder.example_data(600, 0)
    dec = make_decoder("adaptive", adapt_confidence=1.0).fit(X, y)
    before = dec.predict_proba(X[:1])
    for _ in range(20):
        assert dec.learn(X[0], 2)
    dec.step(X[0])
    assert dec._scores[2] > (before[0, 2] - 1) or dec._scores.argmax() == 2
    with pytest.raises(ValueError):
        dec.learn(X[0], 7)
