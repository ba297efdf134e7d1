"""Offline evaluation: blocked folds never leak, every family evaluates, bad input is one
line."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from neuroloop.config import load_scenario
from neuroloop.decoders.kalman import KalmanDecoder
from neuroloop.errors import ConfigError
from neuroloop.evaluation import Dataset, blocked_folds, evaluate, parse_decoder_spec
from neuroloop.evaluation.evaluate import evaluate_datasets


def test_blocked_folds_are_contiguous_with_a_gap() -> None:
    folds = blocked_folds(1000, 5, 20)
    covered = np.concatenate([te for _, te in folds])
    assert np.array_equal(np.sort(covered), np.arange(1000))
    for tr, te in folds:
        assert np.all(np.diff(te) == 1)
        dist = np.min(np.abs(tr[:, None] - te[None, :]))
        assert dist > 20  # no training hop within the gap of a test hop
    with pytest.raises(ConfigError, match="too little data for 50 folds"):
        blocked_folds(100, 50, 5)
    with pytest.raises(ConfigError, match="at least 2 folds"):
        blocked_folds(100, 1, 5)


def _gauss_dataset(seed: int, n: int = 900) -> Dataset:
    rng = np.random.default_rng(seed)
    means = np.random.default_rng(99).normal(0, 1.5, (3, 6))
    y = np.repeat(np.arange(n // 30 + 1) % 3, 30)[:n]
    X = means[y] + rng.normal(0, 1, (n, 6))
    return Dataset(f"g{seed}", X, y.astype(np.int64), 0.1, ("rest", "left", "right"))


def test_train_test_and_cv_rows() -> None:
    sc = load_scenario("eeg-bci")
    specs = [parse_decoder_spec("lda"), parse_decoder_spec("adaptive:gate=false")]
    rows = evaluate_datasets(specs, sc, train=_gauss_dataset(0), tests=[_gauss_dataset(1)],
                             n_permutations=50)
    assert [r["decoder"] for r in rows] == ["lda", "adaptive:gate=false"]
    for r in rows:
        assert r["accuracy"] > 0.8 and r["accuracy"] > r["chance_p95"]
        assert len(r["confusion"]) == 3 and len(r["confusion"][0]) == 4
    cv = evaluate_datasets(specs[:1], sc, train=None, tests=[_gauss_dataset(2)], folds=3,
                           gap_s=1.0, n_permutations=20)
    assert cv[0]["mode"].startswith("blocked CV") and cv[0]["hops"] == 900


def test_continuous_decoder_scores_r2() -> None:
    sc = load_scenario("eeg-bci")
    X, V = KalmanDecoder.example_data(1200, 0)
    data = Dataset("reach", X, np.full(1200, -1), 0.05, ("rest", "move"), targets=V)
    rows = evaluate_datasets([parse_decoder_spec("kalman")], sc, train=data.subset(
        np.arange(800)), tests=[data.subset(np.arange(800, 1200), "held-out")])
    assert rows[0]["r2"] > 0.7 and rows[0]["correlation"] > 0.85
    assert "r2_velocity_x_m_per_s" in rows[0]


def test_bad_input_is_one_line(tmp_path: Path) -> None:
    sc = load_scenario("eeg-bci")
    with pytest.raises(ConfigError, match="neither a recording"):
        evaluate(sc, ["lda"], test=[str(tmp_path / "nope")], folds=2)
    with pytest.raises(ConfigError, match="--train"):
        evaluate(sc, ["lda"], test=["synthetic"])
    with pytest.raises(ConfigError, match="unknown decoder 'nope'; use one of: .*riemann"):
        parse_decoder_spec("nope")
    with pytest.raises(ConfigError, match="not key=value"):
        parse_decoder_spec("lda:shrinkage")
    with pytest.raises(ConfigError, match="shrinkage"):
        parse_decoder_spec("lda:shrinkage=7")
    two = _gauss_dataset(0)
    two.y[two.y == 2] = 1  # the training labels never show "right"
    with pytest.raises(ConfigError, match="no hops labelled right") as info:
        evaluate_datasets([parse_decoder_spec("lda")], sc, train=two, tests=[_gauss_dataset(1)])
    assert "\n" not in str(info.value)
    small = _gauss_dataset(0)
    small.y[small.y == 2] = 1
    small.state_names = ("rest", "left")
    with pytest.raises(ConfigError, match="never saw"):
        evaluate_datasets([parse_decoder_spec("lda")], sc, train=small,
                          tests=[_gauss_dataset(1)])
