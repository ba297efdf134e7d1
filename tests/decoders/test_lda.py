"""Shrinkage LDA + HMM gate: kernels vs the plain references, gate semantics, bad input."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from numpy.testing import assert_allclose
from reference import HMMGateRef, lda_fit_ref, linear_softmax_ref

from neuroloop.decoders import LDADecoder, transition_matrix
from neuroloop.decoders import _kernels as dk
from neuroloop.errors import ConfigError, DecoderFileError

RTOL = 1e-6


def gaussian_blocks(n_states: int, n_features: int, n_blocks: int, block: int, seed: int,
                    sep: float = 2.0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    means = rng.normal(0.0, sep, (n_states, n_features))
    y = np.repeat(rng.permutation(np.arange(n_blocks) % n_states), block)
    return means[y] + rng.normal(0.0, 1.0, (y.size, n_features)), y


# ------------------------------------------------------------------------- linear + softmax
@given(st.integers(1, 9), st.integers(1, 600), st.integers(0, 2**32 - 1),
       st.sampled_from([0.01, 1.0, 30.0]))
def test_linear_softmax_matches_reference(k: int, f: int, seed: int, scale: float) -> None:
    rng = np.random.default_rng(seed)
    W = rng.standard_normal((k, f)) * scale
    b = rng.standard_normal(k)
    x = rng.standard_normal(f)
    out = np.empty(k)
    assert dk.linear_softmax(W, b, x, out)
    assert_allclose(out, linear_softmax_ref(W, b, x), rtol=RTOL, atol=1e-300)


def test_linear_softmax_nonfinite_gives_nan() -> None:
    W = np.ones((3, 4))
    out = np.empty(3)
    assert not dk.linear_softmax(W, np.zeros(3), np.array([1.0, np.nan, 0.0, 0.0]), out)
    assert np.all(np.isnan(out))


# -------------------------------------------------------------------------------------- fit
@pytest.mark.parametrize("shrinkage", [0.0, 0.1, 0.5, 1.0])
def test_fit_matches_textbook_reference(shrinkage: float) -> None:
    X, y = gaussian_blocks(4, 10, 40, 10, seed=1)
    X[:, 3] *= 100.0  # standardisation matters
    X[:, 7] += 50.0
    dec = LDADecoder(n_states=4, shrinkage=shrinkage).fit(X, y)
    ref = lda_fit_ref(X, y, 4, shrinkage)
    for name in ("coef", "intercept", "mean", "scale", "priors"):
        assert_allclose(getattr(dec, name + "_"), ref[name], rtol=RTOL, atol=1e-10,
                        err_msg=name)
    assert np.array_equal(dec.classes_, np.arange(4))
    z = (X - ref["mean"]) / ref["scale"]
    expected = np.array([linear_softmax_ref(ref["coef"], ref["intercept"], r) for r in z])
    assert_allclose(dec.predict_proba(X), expected, rtol=RTOL, atol=1e-12)


def test_user_priors_enter_the_intercept() -> None:
    X, y = gaussian_blocks(3, 5, 30, 10, seed=2)
    dec = LDADecoder(n_states=3, priors=[2, 1, 1]).fit(X, y)
    ref = lda_fit_ref(X, y, 3, 0.1, priors=np.array([2.0, 1.0, 1.0]))
    assert_allclose(dec.priors_, [0.5, 0.25, 0.25])
    assert_allclose(dec.intercept_, ref["intercept"], rtol=RTOL)


def test_constant_feature_gets_unit_scale() -> None:
    X, y = gaussian_blocks(2, 4, 20, 10, seed=3)
    X[:, 1] = 7.0
    dec = LDADecoder().fit(X, y)
    assert dec.scale_[1] == 1.0
    assert np.all(np.isfinite(dec.coef_))


def test_accuracy_on_gaussian_data() -> None:
    """7 Gaussian classes in 16-d, in 20-hop blocks: held-out accuracy per hop and gated."""
    rng = np.random.default_rng(4)
    means = rng.normal(0.0, 0.45, (7, 16))

    def draw(seed: int) -> tuple[np.ndarray, np.ndarray]:
        r = np.random.default_rng(seed)
        y = np.repeat(r.permutation(np.arange(70) % 7), 20)
        return means[y] + r.normal(0.0, 1.0, (y.size, 16)), y

    Xtr, ytr = draw(5)
    Xte, yte = draw(6)
    dec = LDADecoder(n_states=7).fit(Xtr, ytr)
    per_hop = float(np.mean(dec.predict(Xte) == yte))
    gated = float(np.mean(dec.decode(Xte) == yte))
    assert 0.5 < per_hop < 0.95  # a task where single hops are unreliable ...
    assert gated > per_hop + 0.05  # ... and smoothing + gate over 20-hop blocks helps
    assert gated > 0.8


@pytest.mark.parametrize(
    ("X", "y", "kwargs", "message"),
    [
        (np.zeros((10, 2)), np.array([0] * 5 + [2] * 5), {"n_states": 3},
         r"state\(s\) \[1\] have no calibration hops"),
        (np.full((10, 2), np.nan), np.arange(10) % 2, {}, "NaN or infinity in 10 hops"),
        (np.zeros((10, 2)), np.arange(9) % 2, {}, "labels for 10 calibration hops"),
        (np.zeros((10, 2)), np.arange(10) % 4, {"n_states": 3}, "labels span 0..3"),
        (np.zeros((10, 2)), -(np.arange(10) % 2), {}, "labels span -1..0"),
        (np.zeros((2, 2)), np.array([0, 1]), {}, "record more hops than states"),
        (np.zeros((0, 2)), np.zeros(0, int), {}, "at least one hop"),
        (np.zeros((10, 2)), np.linspace(0, 1, 10), {}, "not integers"),
    ],
)
def test_fit_rejects_bad_calibration_data(X: np.ndarray, y: np.ndarray, kwargs: dict,
                                          message: str) -> None:
    with pytest.raises(ConfigError, match=message) as info:
        LDADecoder(**kwargs).fit(X, y)
    assert "\n" not in str(info.value) and ";" in str(info.value)


def test_singular_covariance_without_shrinkage_is_a_config_error() -> None:
    X, y = gaussian_blocks(2, 3, 4, 2, seed=6)
    X = np.hstack([X, X, X, X])  # 12 features, 8 hops: singular
    with pytest.raises(ConfigError, match="raise shrinkage"):
        LDADecoder(shrinkage=0.0).fit(X, y)
    assert np.all(np.isfinite(LDADecoder(shrinkage=0.2).fit(X, y).coef_))


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"shrinkage": 1.5}, r"shrinkage=1.5 is outside \[0, 1\]"),
        ({"shrinkage": "x"}, "shrinkage='x'"),
        ({"transition_stay": 1.0}, r"transition_stay=1.0 is outside \(0, 1\)"),
        ({"transition_stay": 0.0}, "transition_stay"),
        ({"gate_hops": 0}, "gate_hops=0"),
        ({"gate_hops": 1.5}, "gate_hops=1.5"),
        ({"gate_threshold": 1.0}, r"gate_threshold=1.0 is outside \[0, 1\)"),
        ({"n_states": 1}, "n_states=1"),
        ({"priors": [1.0, -1.0]}, "priors"),
        ({"n_states": 3, "priors": [1.0, 1.0]}, "2 priors for n_states=3"),
    ],
)
def test_bad_parameters_raise_config_error(kwargs: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        LDADecoder(**kwargs)


def test_unfitted_decoder_says_how_to_fix() -> None:
    dec = LDADecoder()
    with pytest.raises(ConfigError, match="not fitted; call fit"):
        dec.step(np.zeros(3))
    with pytest.raises(ConfigError, match="not fitted"):
        dec.predict_proba(np.zeros((1, 3)))


def test_inconsistent_file_arrays_are_refused() -> None:
    X, y = gaussian_blocks(3, 4, 12, 5, seed=7)
    arrays = LDADecoder().fit(X, y)._arrays()
    broken = dict(arrays, mean=arrays["mean"][:2])
    with pytest.raises(DecoderFileError, match="inconsistent array shapes"):
        LDADecoder()._from_arrays(broken)
    with pytest.raises(DecoderFileError, match="lacks array 'scale'"):
        LDADecoder()._from_arrays({k: v for k, v in arrays.items() if k != "scale"})
    nan = dict(arrays, coef=arrays["coef"] * np.nan)
    with pytest.raises(DecoderFileError, match="non-finite"):
        LDADecoder()._from_arrays(nan)


def test_step_rejects_wrong_shape_and_copies_other_dtypes() -> None:
    X, y = gaussian_blocks(2, 4, 10, 5, seed=8)
    dec = LDADecoder().fit(X, y)
    dec.warmup()
    with pytest.raises(ValueError, match=r"shape \(4,\)"):
        dec.step(np.zeros(5))
    with pytest.raises(ValueError, match="cannot be read as float64"):
        dec.step(np.zeros(4, dtype=complex))
    sigs = dk.hmm_gate_step.signatures[:]
    expected = [dec.step(x).probabilities.copy() for x in X[:5]]
    for convert in (lambda x: x.astype(np.float32).astype(np.float64),
                    lambda x: np.repeat(x, 2)[::2], list):
        dec.reset()
        got = [dec.step(convert(x)).probabilities.copy() for x in X[:5]]
        assert_allclose(got, expected, rtol=RTOL)
    ro = X[0].copy()
    ro.flags.writeable = False
    dec.step(ro)
    assert dk.hmm_gate_step.signatures == sigs


# ------------------------------------------------------------------ HMM forward + gate kernel
@st.composite
def gate_cases(draw: st.DrawFn) -> tuple:
    n_states = draw(st.integers(2, 7))
    n_feat = draw(st.integers(1, 12))
    seed = draw(st.integers(0, 2**32 - 1))
    stay = draw(st.floats(0.05, 0.999))
    gate_hops = draw(st.integers(1, 5))
    threshold = draw(st.floats(0.0, 0.99))
    n_hops = draw(st.integers(1, 80))
    nan_rate = draw(st.sampled_from([0.0, 0.0, 0.05, 0.3]))
    return n_states, n_feat, seed, stay, gate_hops, threshold, n_hops, nan_rate


@given(gate_cases())
def test_online_step_matches_plain_python_reference(case: tuple) -> None:
    n_states, n_feat, seed, stay, gate_hops, threshold, n_hops, nan_rate = case
    rng = np.random.default_rng(seed)
    X, y = gaussian_blocks(n_states, n_feat, 3 * n_states, 6, seed=seed % 1000, sep=1.5)
    dec = LDADecoder(n_states=n_states, transition_stay=stay, gate_hops=gate_hops,
                     gate_threshold=threshold).fit(X, y)
    ref = HMMGateRef(dec.coef_, dec.intercept_, dec.mean_, dec.scale_, dec.priors_, stay,
                     gate_hops, threshold)
    # sticky class sequence so the gate actually enters states
    seq = np.repeat(rng.integers(0, n_states, n_hops // 4 + 1), 4)[:n_hops]
    means = np.stack([X[y == k].mean(axis=0) for k in range(n_states)])
    stream = means[seq] + rng.normal(0.0, 1.0, (n_hops, n_feat))
    stream[rng.random(n_hops) < nan_rate, 0] = np.nan
    for x in stream:
        it = dec.step(np.ascontiguousarray(x))
        state, raw, probs, conf, valid = ref.step(x)
        assert it.valid == valid
        assert_allclose(it.probabilities, probs, rtol=RTOL, atol=1e-300)
        near_tie = (n_states > 1 and np.min(np.diff(np.sort(probs))) < 1e-9) \
            or np.min(np.abs(probs - threshold)) < 1e-9
        if not near_tie:
            assert (it.state, it.raw_state) == (state, raw)
            assert it.confidence == pytest.approx(conf, rel=RTOL, abs=1e-12)
        else:  # rounding may legitimately decide a tie differently: continue from ours
            g = dec._gate
            ref.state, ref.count = int(g[0]), int(g[3])
            ref.candidate = None if g[2] < 0 else int(g[2])


def test_transition_matrix_rows_sum_to_one() -> None:
    T = transition_matrix(7, 0.9)
    assert_allclose(T.sum(axis=1), 1.0)
    assert_allclose(np.diag(T), 0.9)
    assert_allclose(T[0, 1], 0.1 / 6)


# ---------------------------------------------------------------------------- gate semantics
def _onehot_decoder(n_states: int = 3, gate_hops: int = 3, threshold: float = 0.6,
                    stay: float = 0.9) -> LDADecoder:
    """Decoder whose log-likelihoods are exactly ``10 * x`` (features = state evidence)."""
    dec = LDADecoder(n_states=n_states, transition_stay=stay, gate_hops=gate_hops,
                     gate_threshold=threshold)
    priors = np.full(n_states, 1.0 / n_states)
    dec._from_arrays({"coef": 10.0 * np.eye(n_states), "intercept": np.log(priors),
                      "mean": np.zeros(n_states), "scale": np.ones(n_states),
                      "priors": priors, "classes": np.arange(n_states)})
    return dec


def _ev(k: int, n: int = 3, strength: float = 1.0) -> np.ndarray:
    x = np.zeros(n)
    x[k] = strength
    return x


def test_new_state_needs_gate_hops_consecutive_hops_above_threshold() -> None:
    dec = _onehot_decoder(gate_hops=3)
    states = []
    for _ in range(5):
        it = dec.step(_ev(1))
        assert it.raw_state == 1 and it.probabilities[1] > 0.6
        states.append(it.state)
    assert states == [0, 0, 1, 1, 1]
    assert dec.step(_ev(1)).confidence == pytest.approx(dec.step(_ev(1)).probabilities[1])


def test_interrupted_evidence_restarts_the_count() -> None:
    dec = _onehot_decoder(gate_hops=3)
    seq = [1, 1, 0, 1, 1, 0, 1, 1, 1]
    got = [dec.step(_ev(k)).state for k in seq]
    assert got == [0, 0, 0, 0, 0, 0, 0, 0, 1]


def test_hysteresis_holds_state_when_nothing_is_confident() -> None:
    dec = _onehot_decoder(gate_hops=2, threshold=0.9)
    for _ in range(3):
        dec.step(_ev(2))
    assert dec.step(_ev(2)).state == 2
    # ambiguous evidence: no state above 0.9, the gated state is held
    ambiguous = np.array([0.3, 0.3, 0.0])
    for _ in range(20):
        it = dec.step(ambiguous)
        assert it.probabilities.max() < 0.9
        assert it.state == 2
    # leaving (to rest) needs the same dwell
    assert [dec.step(_ev(0)).state for _ in range(3)] == [2, 0, 0]


def test_invalid_input_resets_gate_to_rest() -> None:
    dec = _onehot_decoder(gate_hops=2)
    for _ in range(3):
        dec.step(_ev(1))
    assert dec.step(_ev(1)).state == 1
    it = dec.step(np.array([np.nan, 0.0, 0.0]))
    assert (it.valid, it.state, it.raw_state, it.confidence) == (False, 0, 0, 0.0)
    assert_allclose(it.probabilities, dec.priors_)
    # re-entering needs the full dwell again
    assert [dec.step(_ev(1)).state for _ in range(2)] == [0, 1]


def test_overflowing_features_are_invalid_not_a_crash() -> None:
    dec = _onehot_decoder()
    it = dec.step(np.array([1e308, 1e308, -1e308]))
    assert not it.valid and it.state == 0
    assert dec.step(_ev(0)).valid


def test_reset_restores_priors_and_rest() -> None:
    dec = _onehot_decoder(gate_hops=1)
    dec.step(_ev(2))
    dec.reset()
    it = dec._intention
    assert it.state == 0 and it.confidence == 0.0
    assert_allclose(it.probabilities, dec.priors_)
