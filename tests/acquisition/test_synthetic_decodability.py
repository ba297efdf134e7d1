"""The default difficulty makes the bsi decoding target reachable; a low SNR is clearly harder.

Self-contained (SciPy features, NumPy LDA) so that it checks the patient model, not the
project's DSP or decoder: CAR -> 50/100/150 Hz notches -> 8 Butterworth bands -> log mean
power per 59-sample hop -> shrinkage LDA trained on 120 s, scored per hop on fresh data
against the label of the hop's last sample (no gate, no smoothing).
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy import signal

from neuroloop.acquisition.synthetic import generate

FS = 586.0
HOP = 59
BANDS = ((8, 12), (13, 20), (20, 30), (30, 45), (55, 70), (70, 90), (90, 110), (110, 140))


def _features(data: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    x = data - data.mean(axis=1, keepdims=True)
    for f0 in (50.0, 100.0, 150.0):
        b, a = signal.iirnotch(f0, 30.0, fs=FS)
        x = signal.lfilter(b, a, x, axis=0)
    n_hops = x.shape[0] // HOP
    feats = []
    for lo, hi in BANDS:
        sos = signal.butter(4, [lo, hi], btype="bandpass", fs=FS, output="sos")
        y = signal.sosfilt(sos, x[: n_hops * HOP], axis=0) ** 2
        feats.append(np.log(y.reshape(n_hops, HOP, -1).mean(axis=1) + 1e-12))
    return np.concatenate(feats, axis=1), labels[HOP - 1: n_hops * HOP: HOP]


def _lda_fit(X: np.ndarray, y: np.ndarray, shrinkage: float = 0.1):
    mu_all, sd = X.mean(axis=0), X.std(axis=0)
    Z = (X - mu_all) / sd
    classes = np.unique(y)
    means = np.array([Z[y == k].mean(axis=0) for k in classes])
    resid = Z - means[np.searchsorted(classes, y)]
    cov = resid.T @ resid / (Z.shape[0] - classes.size)
    cov = (1 - shrinkage) * cov + shrinkage * np.trace(cov) / cov.shape[0] * np.eye(cov.shape[0])
    W = np.linalg.solve(cov, means.T)
    prior = np.array([np.mean(y == k) for k in classes])
    b = -0.5 * np.sum(means * W.T, axis=1) + np.log(prior)

    def predict(Xn: np.ndarray) -> np.ndarray:
        return classes[np.argmax(((Xn - mu_all) / sd) @ W + b, axis=1)]

    return predict


def _accuracy(snr: float) -> float:
    Xtr, ytr = _features(*generate("bsi", 120.0, seed=1000, snr=snr))
    Xte, yte = _features(*generate("bsi", 60.0, seed=1, snr=snr))
    predict = _lda_fit(Xtr, ytr)
    return float(np.mean(predict(Xte) == yte))


@pytest.fixture(scope="module")
def accuracies() -> dict[float, float]:
    return {snr: _accuracy(snr) for snr in (1.0, 0.3)}


def test_default_snr_reaches_the_decoding_target(accuracies) -> None:
    assert accuracies[1.0] > 0.92, accuracies


def test_low_snr_is_clearly_harder_but_above_chance(accuracies) -> None:
    assert accuracies[0.3] < 0.75, accuracies
    assert accuracies[0.3] < accuracies[1.0] - 0.2
    assert accuracies[0.3] > 0.3  # 7 states: chance is ~0.18
