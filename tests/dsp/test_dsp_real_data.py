"""DSP kernels against the SciPy references on real recordings (../shared/data).

* ``ecog/beta_ecog_m1.npy``: 1 channel of human M1 ECoG, 1000 Hz, µV (Cole et al. 2017,
  distributed by neurodsp, Apache-2.0).
* ``eegmmi/S001R03.edf``: 64-channel scalp EEG, 160 Hz, µV (PhysioNet EEG Motor
  Movement/Imagery Database, Schalk et al. 2004; ODC-By 1.0), read with pyEDFlib.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import scipy.signal
from numpy.testing import assert_allclose
from reference import PipelineRef, car_ref

from neuroloop.dsp import LOG_POWER_EPS, CommonAverageReference, FeaturePipeline
from neuroloop.dsp.filters import StreamingSOSFilter, design_bandpass_sos, design_notch_sos

RTOL = 1e-6


@pytest.fixture(scope="module")
def beta_ecog(shared_data: Path) -> np.ndarray:
    path = shared_data / "ecog" / "beta_ecog_m1.npy"
    if not path.is_file():
        pytest.skip(f"{path} not found")
    return np.ascontiguousarray(np.load(path).reshape(-1, 1), dtype=np.float64)


def read_edf(path: Path) -> tuple[np.ndarray, float, list[str]]:
    """All signals of an EDF file as (n_samples, n_channels) µV, the rate, and clean labels."""
    pyedflib = pytest.importorskip("pyedflib")
    if not path.is_file():
        pytest.skip(f"{path} not found")
    with pyedflib.EdfReader(str(path)) as f:
        n = f.signals_in_file
        fs = float(f.getSampleFrequency(0))
        x = np.column_stack([f.readSignal(i) for i in range(n)])
        labels = [lab.strip(".").upper() for lab in f.getSignalLabels()]
    return np.ascontiguousarray(x, dtype=np.float64), fs, labels


@pytest.fixture(scope="module")
def eeg_r03(shared_data: Path) -> tuple[np.ndarray, float, list[str]]:
    return read_edf(shared_data / "eegmmi" / "S001R03.edf")


def test_ecog_filterbank_pipeline_matches_reference(beta_ecog: np.ndarray) -> None:
    fs, hop = 1000.0, 100
    p = FeaturePipeline(1, fs, hop, [(4, 8), (13, 30), (70, 150)], filter_order=4, car=False,
                        notch_hz=[60.0], notch_q=30.0)
    ref = PipelineRef(1, p.bank_sos, p.notch_sos, False, LOG_POWER_EPS)
    expected = ref.process(beta_ecog, hop)
    got = np.array([p.step(np.ascontiguousarray(beta_ecog[h * hop:(h + 1) * hop])).copy()
                    for h in range(beta_ecog.shape[0] // hop)])
    assert_allclose(got, expected, rtol=RTOL)
    assert_allclose(p.process(beta_ecog), expected, rtol=RTOL)
    # the recording is dominated by beta: beta power exceeds high gamma in (almost) every hop
    assert np.mean(got[10:, 1] > got[10:, 2]) > 0.95


def test_ecog_streaming_sos_matches_one_shot_sosfilt(beta_ecog: np.ndarray) -> None:
    sos = design_bandpass_sos((13, 30), 4, 1000.0)
    filt = StreamingSOSFilter(sos, 1)
    cuts = [0, 1, 7, 100, 1234, 1235, 5000, 9999, beta_ecog.shape[0]]
    y = np.vstack([filt.step(np.ascontiguousarray(beta_ecog[a:b]))
                   for a, b in zip(cuts, cuts[1:], strict=False)])
    y_ref = scipy.signal.sosfilt(sos, beta_ecog, axis=0)
    assert_allclose(y, y_ref, rtol=RTOL, atol=1e-9 * np.abs(y_ref).max())


def test_ecog_notch_streaming_matches_sosfilt(beta_ecog: np.ndarray) -> None:
    sos = design_notch_sos([60.0], 30.0, 1000.0)
    assert sos.shape == (8, 6)  # 60, 120, ..., 480 Hz
    filt = StreamingSOSFilter(sos, 1)
    y = np.vstack([filt.step(np.ascontiguousarray(beta_ecog[h * 250:(h + 1) * 250]))
                   for h in range(40)])
    y_ref = scipy.signal.sosfilt(sos, beta_ecog, axis=0)
    assert_allclose(y, y_ref, rtol=RTOL, atol=1e-9 * np.abs(y_ref).max())


def test_eeg_car_matches_reference(eeg_r03: tuple) -> None:
    x, _fs, _labels = eeg_r03
    out = CommonAverageReference(x.shape[1]).apply(x)
    assert_allclose(out, car_ref(x), rtol=RTOL, atol=1e-9 * np.abs(x).max())
    ref_idx = list(range(0, 64, 3))
    out = CommonAverageReference(x.shape[1], ref_idx).apply(x)
    assert_allclose(out, car_ref(x, ref_idx), rtol=RTOL, atol=1e-9 * np.abs(x).max())


def test_eeg_pipeline_matches_reference(eeg_r03: tuple) -> None:
    x, fs, labels = eeg_r03
    assert fs == 160.0 and x.shape[1] == 64
    hop = 16  # 100 ms
    bands = [(8, 13), (13, 30), (30, 45), (55, 75)]
    p = FeaturePipeline(64, fs, hop, bands, filter_order=4, car=True, notch_hz=[60.0],
                        channel_names=labels)
    ref = PipelineRef(64, p.bank_sos, p.notch_sos, True, LOG_POWER_EPS)
    n = 400 * hop  # 40 s keeps the reference quick
    expected = ref.process(x[:n], hop)
    got = np.array([p.step(np.ascontiguousarray(x[h * hop:(h + 1) * hop])).copy()
                    for h in range(n // hop)])
    assert_allclose(got, expected, rtol=RTOL)
    assert_allclose(p.process(x[:n]), expected, rtol=RTOL)
    assert p.feature_names[labels.index("C3")] == "C3:8-13Hz"
