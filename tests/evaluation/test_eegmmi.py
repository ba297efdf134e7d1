"""Real EEG (PhysioNet EEGMMI, subject 1): neuroloop's decoders against a tangent-space +
logistic-regression pipeline built directly with pyRiemann and scikit-learn, on the same 1 s
windows at every hop (100 ms), calibrating on one run and testing on the other.

The reference pipeline sees exactly the windows the online decoders see: the EDF signal,
common-average referenced, notched at 60 Hz (US mains) and band-passed 8-30 Hz with the
scenario's own filter designs (SciPy ``sosfilt``), cut into the 160 samples ending at each hop
whose label is known; its covariance estimator is OAS (the sample covariance is singular after
the common average reference). Run with ``-s`` to see the table of figures.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import scipy.signal

from neuroloop.config import load_scenario
from neuroloop.evaluation import metrics as M
from neuroloop.evaluation.data import load_dataset, scenario_for_features
from neuroloop.evaluation.evaluate import (
    decode_sequence,
    fit_decoder,
    parse_decoder_spec,
    single_threaded_blas,
)
from neuroloop.io.edf import read_edf
from neuroloop.runtime.session import build_pipeline

DOCS = Path(__file__).resolve().parents[2] / "docs" / "examples"
DECODERS = ("riemann:gate=false", "riemann", "csp-lda:gate=false", "lda:gate_hops=1",
            "adaptive:gate=false")
CASES = [("eegmmi-lr.toml", "T1:left,T2:right", "03", "04"),
         ("eegmmi-lr.toml", "T1:left,T2:right", "04", "03"),
         ("eegmmi-ff.toml", "T1:fists,T2:feet", "05", "06"),
         ("eegmmi-ff.toml", "T1:fists,T2:feet", "06", "05")]
WINDOW_HOPS = 10


def _windows(edf: Path, sc, labels: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(windows (n, channels, 160), labels, hop indices) of the labelled full windows."""
    x, _, _, _ = read_edf(edf)
    pipe = build_pipeline(sc)
    x = x - x.mean(axis=1, keepdims=True)
    x = scipy.signal.sosfilt(pipe.notch_sos, x, axis=0)
    x = scipy.signal.sosfilt(pipe.bank_sos[0], x, axis=0)
    ds = load_dataset(f"edf://{edf}?labels={labels}", scenario_for_features(sc, "covariance"))
    hop = sc.dsp.hop_samples
    h = np.arange(ds.n_hops)
    keep = (ds.y >= 0) & (h >= WINDOW_HOPS - 1)
    W = np.stack([x[(k - WINDOW_HOPS + 1) * hop:(k + 1) * hop].T for k in h[keep]])
    return W, ds.y[keep], h[keep]


@pytest.mark.slow
@pytest.mark.parametrize(("config", "labels", "train", "test"), CASES)
def test_best_decoder_at_least_matches_pyriemann(shared_data: Path, config: str, labels: str,
                                                 train: str, test: str) -> None:
    from pyriemann.estimation import Covariances
    from pyriemann.tangentspace import TangentSpace
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline

    sc = load_scenario(DOCS / config)
    a = shared_data / "eegmmi" / f"S001R{train}.edf"
    b = shared_data / "eegmmi" / f"S001R{test}.edf"
    with single_threaded_blas():
        Wa, ya, _ = _windows(a, sc, labels)
        Wb, yb, hb = _windows(b, sc, labels)
        ref = make_pipeline(Covariances(estimator="oas"), TangentSpace(metric="riemann"),
                            LogisticRegression(max_iter=1000)).fit(Wa, ya)
        ref_acc = float(np.mean(ref.predict(Wb) == yb))
        acc: dict[str, float] = {}
        for text in DECODERS:
            spec = parse_decoder_spec(text)
            s2 = scenario_for_features(sc, spec.cls.features)
            tr = load_dataset(f"edf://{a}?labels={labels}", s2)
            te = load_dataset(f"edf://{b}?labels={labels}", s2)
            states, _ = decode_sequence(fit_decoder(spec, s2, tr), te.X)
            assert np.array_equal(te.y[hb], yb)  # the very same hops and labels
            acc[text] = float(np.mean(states[hb] == yb))
    best = max(acc, key=acc.__getitem__)
    # chance: the reference's own predictions against labels permuted in 4 s blocks
    perm = M.block_permutation_chance(yb, ref.predict(Wb).astype(int), 40, 200, seed=0)
    majority = float(np.max(np.bincount(yb)) / yb.size)
    print(f"\nEEGMMI {config} run {train} -> {test}: {yb.size} windows; "
          f"pyRiemann TS+LR {ref_acc:.3f}; " + ", ".join(f"{k} {v:.3f}" for k, v in acc.items())
          + f"; best {best}; chance (majority) {majority:.3f}, block-permutation mean "
          f"{perm['chance_accuracy']:.3f} p95 {perm['chance_p95']:.3f}")
    assert acc[best] >= ref_acc
    assert acc[best] > perm["chance_p95"]
