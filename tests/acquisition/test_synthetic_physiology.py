"""Spectral properties of the synthetic patient: task modulation, 1/f background, mains."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import signal

from neuroloop.acquisition.synthetic import SyntheticSource, generate

BSI_FS = 586.0
EEG_FS = 250.0


def _band_power(x: np.ndarray, lo: float, hi: float, fs: float) -> np.ndarray:
    """Instantaneous band power per sample and channel (zero-phase Butterworth)."""
    sos = signal.butter(4, [lo, hi], btype="bandpass", fs=fs, output="sos")
    return signal.sosfiltfilt(sos, x, axis=0) ** 2


def _settled(labels: np.ndarray, margin: int) -> np.ndarray:
    """Samples at least ``margin`` samples away from any label change."""
    change = np.flatnonzero(np.diff(labels)) + 1
    ok = np.ones(labels.shape[0], bool)
    for c in change:
        ok[max(0, c - margin):c + margin] = False
    return ok


@pytest.fixture(scope="module")
def bsi_data() -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray]]:
    data, labels = generate("bsi", 150.0, seed=5, artifact_rate_per_min=0.0)
    maps = SyntheticSource("bsi").task_maps
    return data, labels, maps


@pytest.fixture(scope="module")
def bsi_band_ratios(bsi_data) -> dict[str, np.ndarray]:
    """Per state: band power in the state / power at rest, per channel."""
    data, labels, _ = bsi_data
    x = data - data.mean(axis=1, keepdims=True)  # common average reference
    ok = _settled(labels, int(0.3 * BSI_FS))
    out = {}
    for name, (lo, hi) in {"hg": (70.0, 140.0), "beta": (13.0, 30.0)}.items():
        p = _band_power(x, lo, hi, BSI_FS)
        rest = p[ok & (labels == 0)].mean(axis=0)
        out[name] = np.array([p[ok & (labels == k)].mean(axis=0) / rest for k in range(7)])
    return out


@pytest.mark.parametrize("state", range(1, 7))
def test_movement_raises_high_gamma_and_lowers_beta_on_its_channels(
        bsi_data, bsi_band_ratios, state: int) -> None:
    _, _, maps = bsi_data
    hot = np.argsort(maps["high_gamma"][state])[-4:]  # the state's own electrodes
    cold = np.argsort(maps["high_gamma"][state])[:16]  # far from its map
    hg = bsi_band_ratios["hg"][state]
    beta = bsi_band_ratios["beta"][state]
    assert np.all(hg[hot] > 2.0), hg[hot]
    assert np.all(beta[hot] < 0.75), beta[hot]
    # the modulation is spatially specific
    assert np.median(hg[cold]) < 1.3
    assert np.median(beta[cold]) > 0.85
    # and contralateral: left-leg states on the right hemisphere (columns 4-7) and vice versa
    cols = np.arange(64) % 8
    right_hemi = cols >= 4
    left_leg = SyntheticSource("bsi").info.intention_names[state].startswith("left")
    contra = right_hemi if left_leg else ~right_hemi
    excess = np.clip(hg - 1.0, 0.0, None)
    assert excess[contra].sum() > 1.8 * excess[~contra].sum()


def test_states_have_distinct_spatial_patterns(bsi_band_ratios) -> None:
    """Each movement's high-gamma map correlates best with itself (decodable, not identical)."""
    hg = np.log(bsi_band_ratios["hg"][1:])
    corr = np.corrcoef(hg)
    for k in range(6):
        assert np.argmax(corr[k]) == k
        assert np.sort(corr[k])[-2] < 0.95  # partial overlap, not a copy


def test_snr_scales_the_modulation_depth() -> None:
    maps = SyntheticSource("bsi").task_maps["high_gamma"]
    ratios = {}
    for snr in (0.0, 0.3, 1.0):
        data, labels = generate("bsi", 60.0, seed=8, snr=snr, artifact_rate_per_min=0.0)
        ok = _settled(labels, int(0.3 * BSI_FS))
        p = _band_power(data, 70.0, 140.0, BSI_FS)
        rest = p[ok & (labels == 0)].mean(axis=0)
        r = []
        for k in range(1, 7):
            hot = np.argsort(maps[k])[-3:]
            r.append(np.mean(p[ok & (labels == k)][:, hot].mean(axis=0) / rest[hot]))
        ratios[snr] = float(np.mean(r))
    assert abs(ratios[0.0] - 1.0) < 0.15
    assert 1.2 < ratios[0.3] < ratios[1.0]
    assert ratios[1.0] > 3.0


def test_eeg_mu_and_beta_desynchronise_contralaterally() -> None:
    data, labels = generate("eeg-bci", 180.0, seed=2, artifact_rate_per_min=0.0)
    names = SyntheticSource("eeg-bci").info.channel_names
    c3, c4 = names.index("C3"), names.index("C4")
    ok = _settled(labels, int(0.4 * EEG_FS))
    for lo, hi in ((8.0, 13.0), (14.0, 28.0)):
        p = _band_power(data, lo, hi, EEG_FS)
        rest = p[ok & (labels == 0)].mean(axis=0)
        left = p[ok & (labels == 1)].mean(axis=0) / rest
        right = p[ok & (labels == 2)].mean(axis=0) / rest
        # left intention: ERD over C4 (right hemisphere), right intention: over C3
        assert left[c4] < 0.6 and right[c3] < 0.6, (lo, left[c4], right[c3])
        assert left[c4] < 0.75 * left[c3]
        assert right[c3] < 0.75 * right[c4]
        # volume conduction: the neighbours share the ERD, far electrodes do not
        for near, side in (("FC2", left), ("CP2", left), ("FC1", right), ("CP1", right)):
            assert side[names.index(near)] < 0.85
        for far in ("Fp1", "Fp2", "O1", "O2"):
            assert 0.85 < left[names.index(far)] < 1.15


@pytest.mark.parametrize(("preset", "fs"), [("bsi", BSI_FS), ("eeg-bci", EEG_FS)])
def test_background_spectrum_falls_as_a_power_law(preset: str, fs: float) -> None:
    data, labels = generate(preset, 120.0, seed=1, snr=0.0, artifact_rate_per_min=0.0,
                            line_hz=0.0)
    f, pxx = signal.welch(data, fs=fs, nperseg=int(4 * fs), axis=0)
    psd = pxx.mean(axis=1)
    sel = (f >= 2.0) & (f <= 7.0)  # below every rhythm: the aperiodic component alone
    slope = np.polyfit(np.log10(f[sel]), np.log10(psd[sel]), 1)[0]
    expected = 1.8 if preset == "bsi" else 1.4
    assert slope < 0
    assert abs(-slope - expected) < 0.4, slope
    # and it keeps falling above the rhythms
    assert psd[(f > 35) & (f < 45)].mean() < psd[(f > 2) & (f < 7)].mean() / 20


@pytest.mark.parametrize(("preset", "fs", "line"), [("bsi", BSI_FS, 50.0),
                                                    ("bsi", BSI_FS, 60.0),
                                                    ("eeg-bci", EEG_FS, 50.0)])
def test_mains_peak(preset: str, fs: float, line: float) -> None:
    data, _ = generate(preset, 30.0, seed=1, line_hz=line, artifact_rate_per_min=0.0)
    f, pxx = signal.welch(data, fs=fs, nperseg=int(2 * fs), axis=0)
    psd = pxx.mean(axis=1)
    peak = psd[np.argmin(np.abs(f - line))]
    around = psd[(np.abs(f - line) > 3) & (np.abs(f - line) < 8)].mean()
    assert peak > 20 * around
    # survives a common-average reference (amplitude and phase differ per electrode)
    car = data - data.mean(axis=1, keepdims=True)
    f, pxx = signal.welch(car, fs=fs, nperseg=int(2 * fs), axis=0)
    psd = pxx.mean(axis=1)
    assert psd[np.argmin(np.abs(f - line))] > 5 * psd[(np.abs(f - line) > 3)
                                                      & (np.abs(f - line) < 8)].mean()


def test_no_mains_when_disabled() -> None:
    data, _ = generate("bsi", 30.0, seed=1, line_hz=0.0, artifact_rate_per_min=0.0)
    f, pxx = signal.welch(data, fs=BSI_FS, nperseg=int(2 * BSI_FS), axis=0)
    psd = pxx.mean(axis=1)
    around = psd[(np.abs(f - 50) > 3) & (np.abs(f - 50) < 8)].mean()
    assert psd[np.argmin(np.abs(f - 50))] < 3 * around
