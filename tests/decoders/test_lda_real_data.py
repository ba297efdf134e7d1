"""LDA on real scalp EEG: left vs right fist (PhysioNet EEG Motor Movement/Imagery Database,
subject 1; Schalk et al. 2004, ODC-By 1.0).

Features are the pipeline's mu (8-13 Hz) and beta (13-30 Hz) log powers after CAR over seven
sensorimotor channels, averaged over each T1 (left) / T2 (right) epoch from 0.5 s after onset.
Train on run 3 (executed movement), test on run 4 (imagined movement). With this code the
figures are training accuracy 1.0 and test accuracy 0.87 on 15 epochs each; the asserts
leave room but fail if the features or the classifier break (chance is 0.5).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from neuroloop.decoders import LDADecoder, load_decoder
from neuroloop.dsp import FeaturePipeline

CHANNELS = ["C3", "C4", "CZ", "C1", "C2", "CP3", "CP4"]
HOP = 16  # 100 ms at 160 Hz


def epoch_features(path: Path) -> tuple[np.ndarray, np.ndarray]:
    pyedflib = pytest.importorskip("pyedflib")
    if not path.is_file():
        pytest.skip(f"{path} not found")
    with pyedflib.EdfReader(str(path)) as f:
        x = np.column_stack([f.readSignal(i) for i in range(f.signals_in_file)])
        labels = [lab.strip(".").upper() for lab in f.getSignalLabels()]
        fs = float(f.getSampleFrequency(0))
        onsets, durations, names = f.readAnnotations()
    pipe = FeaturePipeline(x.shape[1], fs, HOP, [(8, 13), (13, 30)], filter_order=4, car=True,
                           channel_names=labels)
    F = pipe.process(x)
    cols = [pipe.feature_names.index(f"{ch}:{band}") for band in ("8-13Hz", "13-30Hz")
            for ch in CHANNELS]
    X, y = [], []
    for onset, duration, name in zip(onsets, durations, names, strict=True):
        if name not in ("T1", "T2"):
            continue
        h0 = int((onset + 0.5) * fs) // HOP
        h1 = int((onset + duration) * fs) // HOP
        X.append(F[h0:h1, cols].mean(axis=0))
        y.append(0 if name == "T1" else 1)
    return np.array(X), np.array(y)


def test_left_vs_right_fist_from_mu_beta_power(shared_data: Path, tmp_path: Path) -> None:
    Xtr, ytr = epoch_features(shared_data / "eegmmi" / "S001R03.edf")
    Xte, yte = epoch_features(shared_data / "eegmmi" / "S001R04.edf")
    assert Xtr.shape == (15, 14) and set(ytr) == {0, 1}
    assert np.all(np.isfinite(Xtr))
    dec = LDADecoder(n_states=2, shrinkage=0.1).fit(Xtr, ytr)
    train_acc = float(np.mean(dec.predict(Xtr) == ytr))
    test_acc = float(np.mean(dec.predict(Xte) == yte))
    assert train_acc >= 0.8
    assert test_acc >= 0.6
    # the trained decoder survives a save/load round trip unchanged
    loaded = load_decoder(dec.save(tmp_path / "eeg.npz"))
    assert np.array_equal(loaded.predict_proba(Xte), dec.predict_proba(Xte))
