"""Evaluation metrics against scikit-learn and their definitions."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from sklearn.metrics import balanced_accuracy_score, cohen_kappa_score, r2_score

from neuroloop.evaluation import metrics as M


@pytest.mark.filterwarnings("ignore::UserWarning")  # sklearn on degenerate label sets
@given(st.lists(st.tuples(st.integers(0, 2), st.integers(0, 2)), min_size=5, max_size=200))
def test_classification_metrics_equal_sklearn(pairs: list[tuple[int, int]]) -> None:
    t = np.array([a for a, _ in pairs])
    p = np.array([b for _, b in pairs])
    assert M.accuracy(t, p) == pytest.approx(np.mean(t == p))
    if len(set(t.tolist())) > 0:
        ref = balanced_accuracy_score(t, p) if set(p.tolist()) <= set(t.tolist()) else None
        if ref is not None:
            assert M.balanced_accuracy(t, p, 3) == pytest.approx(ref)
    k = M.cohen_kappa(t, p, 3)
    ref_k = cohen_kappa_score(t, p, labels=[0, 1, 2])
    if math.isfinite(ref_k):
        assert k == pytest.approx(ref_k)


def test_invalid_outputs_are_errors_and_unlabelled_hops_are_left_out() -> None:
    t = np.array([0, 0, 1, 1, -1, -1])
    p = np.array([0, -1, 1, 1, 0, 1])
    assert M.accuracy(t, p) == 0.75
    m = M.confusion(t, p, 2)
    assert m.tolist() == [[1, 0, 1], [0, 2, 0]]


def test_wolpaw_itr() -> None:
    assert M.wolpaw_bits(1.0, 2) == 1.0
    assert M.wolpaw_bits(0.5, 2) == 0.0
    # N = 4, P = 0.9: 2 + 0.9 log2 0.9 + 0.1 log2(0.1 / 3) = 1.3725 bits per selection
    assert M.wolpaw_bits(0.9, 4) == pytest.approx(1.3725, abs=1e-4)
    assert M.itr_bits_per_min(1.0, 2, 0.5) == 120.0


def test_onset_latency_and_false_activations() -> None:
    # rest, then left (from hop 4), rest, right (from hop 12); hop = 0.1 s
    t = np.array([0] * 4 + [1] * 4 + [0] * 4 + [2] * 4)
    p = np.array([0, 1, 0, 0] + [0, 0, 1, 1] + [0, 0, 0, 0] + [0, 0, 0, 0])
    lat, n = M.onset_latencies_s(t, p, 0.1, rest_state=0)
    assert n == 2 and lat == [pytest.approx(0.2)]
    fa = M.false_activations_per_min(t, p, 0.1, rest_state=0)
    assert fa == pytest.approx(1 / (8 * 0.1 / 60))  # one false start in 0.8 s of rest
    assert M.false_activations_per_min(t, p, 0.1, rest_state=None) is None


def test_r2_and_correlation_equal_sklearn_and_numpy() -> None:
    rng = np.random.default_rng(0)
    t = rng.normal(size=(200, 2))
    p = t * 0.8 + rng.normal(0, 0.3, (200, 2))
    np.testing.assert_allclose(M.r2_scores(t, p), r2_score(t, p, multioutput="raw_values"))
    np.testing.assert_allclose(M.correlations(t, p),
                               [np.corrcoef(t[:, i], p[:, i])[0, 1] for i in range(2)])


def test_block_permutation_chance_is_near_the_majority_level() -> None:
    rng = np.random.default_rng(1)
    t = np.repeat(rng.integers(0, 2, 60), 10)
    good = t.copy()
    good[::7] = 1 - good[::7]
    ch = M.block_permutation_chance(t, good, 10, 300, seed=0)
    assert 0.35 < ch["chance_accuracy"] < 0.65
    assert ch["p_value"] < 0.01
    noise = rng.integers(0, 2, t.size)
    assert M.block_permutation_chance(t, noise, 10, 300, seed=0)["p_value"] > 0.01
