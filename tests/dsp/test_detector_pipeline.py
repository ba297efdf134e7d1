"""The responsive detector measures (line length, area, band RMS) against their reference."""

from __future__ import annotations

import numpy as np
import pytest
from reference import detector_measures_ref

from neuroloop.dsp.detectors import DetectorPipeline
from neuroloop.errors import ConfigError


def _pipe(**kw):
    args = dict(n_channels=3, sampling_rate_hz=250.0, hop_samples=25, band_hz=(15.0, 40.0),
                highpass_hz=1.0, lowpass_hz=90.0, notch_hz=[50.0])
    args.update(kw)
    return DetectorPipeline(**args)


@pytest.mark.parametrize("kw", [{}, {"highpass_hz": 0.0, "lowpass_hz": 0.0, "notch_hz": []},
                                {"hop_samples": 7, "band_hz": (4.0, 8.0)}])
def test_streaming_equals_reference_on_random_data(kw):
    rng = np.random.default_rng(0)
    p = _pipe(**kw)
    x = rng.standard_normal((p.hop_samples * 40 + 3, 3)) * 30.0 + 500.0  # a DC offset too
    want = detector_measures_ref(x, p.hop_samples, p.pre_sos, p.band_sos)
    got = np.array([p.step(x[h * p.hop_samples:(h + 1) * p.hop_samples]).copy()
                    for h in range(want.shape[0])])
    np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(p.process(x), want, rtol=1e-9, atol=1e-9)


def test_measures_of_known_signals():
    fs, hop = 250.0, 250
    p = DetectorPipeline(2, fs, hop, (15.0, 40.0), highpass_hz=0.0)
    t = np.arange(hop * 8) / fs
    x = np.stack([50.0 * np.sin(2 * np.pi * 25.0 * t), 50.0 * np.sin(2 * np.pi * 2.0 * t)], 1)
    f = p.process(x)[-1]
    # line length of A sin(2 pi f t): 4 A f / fs per sample; area 2A/pi; in-band RMS A/sqrt 2
    assert f[0] == pytest.approx(4 * 50 * 25 / fs, rel=0.06)  # sampled: 19.0
    assert f[1] == pytest.approx(4 * 50 * 2 / fs, rel=0.03)
    assert f[2] == pytest.approx(2 * 50 / np.pi, rel=0.05)  # sampled: 30.8
    assert f[4] == pytest.approx(50 / np.sqrt(2), rel=0.05)
    assert f[5] < 2.0  # 2 Hz is outside 15-40 Hz


def test_nonfinite_hop_gives_nan_and_recovers():
    p = _pipe()
    rng = np.random.default_rng(1)
    hop = rng.standard_normal((25, 3))
    p.step(hop)
    bad = hop.copy()
    bad[3, 1] = np.nan
    out = p.step(bad)
    assert np.isnan(out[1]) and np.isnan(out[4]) and np.isnan(out[7])
    assert np.all(np.isfinite(out[[0, 2, 3, 5, 6, 8]]))
    assert np.all(np.isfinite(p.step(hop)))
    assert p.n_channel_resets == 1


def test_bad_band_and_cutoffs_are_config_errors():
    with pytest.raises(ConfigError, match="Nyquist"):
        _pipe(band_hz=(100.0, 130.0))
    with pytest.raises(ConfigError, match="low-pass"):
        _pipe(lowpass_hz=200.0)
    with pytest.raises(ConfigError, match="above the high-pass"):
        _pipe(highpass_hz=10.0, lowpass_hz=5.0)


def test_seizure_ecog_measures_match_reference(shared_data):
    pyedflib = pytest.importorskip("pyedflib")
    path = shared_data / "ecog" / "seizure_ecog.edf"
    if not path.is_file():
        pytest.skip(f"{path} is absent")
    f = pyedflib.EdfReader(str(path))
    try:
        labels = f.getSignalLabels()
        x = np.stack([f.readSignal(labels.index(c)) for c in ("BTM1", "BTM2", "BTM3")], 1)
        fs = float(f.getSampleFrequencies()[0])
    finally:
        f.close()
    p = DetectorPipeline(3, fs, 100, (15.0, 40.0), lowpass_hz=40.0, notch_hz=[60.0])
    want = detector_measures_ref(x, 100, p.pre_sos, p.band_sos)
    np.testing.assert_allclose(p.process(x), want, rtol=1e-8, atol=1e-8)
