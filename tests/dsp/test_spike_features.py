"""Spike-band features (threshold crossings, spike-band power) against their SciPy/NumPy
reference, across bins, tiles and the threshold calibration; and the band-power kernel's
cache tiles leave every channel's arithmetic unchanged."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from reference import FilterBankLogPowerRef, SosfiltStream, SpikeBandRef, car_ref

from neuroloop.dsp import FeaturePipeline
from neuroloop.dsp import _kernels as bp_kernels
from neuroloop.dsp.spikes import BinnedFeatures, SpikeBandFeatures, bin_samples_for
from neuroloop.errors import ConfigError


def _spiky(rng: np.random.Generator, n: int, c: int) -> np.ndarray:
    x = rng.standard_normal((n, c)) * 10.0
    x[rng.random((n, c)) < 0.003] -= 150.0  # spikes that cross any sensible threshold
    return x


@pytest.mark.parametrize("n_channels,car,order", [(150, True, 2), (64, False, 2), (7, True, 2),
                                                  (70, True, 1)])
def test_spike_features_match_reference(n_channels: int, car: bool, order: int) -> None:
    """Order 2 runs the band-pass-pair specialisation, order 1 (padded) the general one."""
    fs, bin_n = 30000.0, 300
    pipe = SpikeBandFeatures(n_channels, fs, bin_n, car=car, threshold_calibration_s=0.025,
                             filter_order=order)
    pipe.warmup()
    ref = SpikeBandRef(pipe.spike_sos, pipe.sbp_sos, n_channels, car=car,
                       multiplier=pipe.multiplier, calibration_bins=pipe.calibration_bins)
    rng = np.random.default_rng(n_channels)
    crossings = 0.0
    for _ in range(8):  # 3 calibration bins, then counting
        x = _spiky(rng, bin_n, n_channels)
        got = pipe.step(x).copy()
        want = ref.step(x)
        np.testing.assert_array_equal(got[:n_channels], want[:n_channels])
        np.testing.assert_allclose(got[n_channels:], want[n_channels:], rtol=1e-10, atol=1e-12)
        crossings += got[:n_channels].sum()
    assert pipe.calibrated
    np.testing.assert_allclose(pipe.thresholds, ref.thr, rtol=1e-10)
    assert crossings > 0  # the test data do cross: the comparison is not of zeros


def test_int16_input_like_float_and_process_like_step() -> None:
    rng = np.random.default_rng(3)
    counts = np.clip(np.rint(_spiky(rng, 1800, 40) / 0.195), -32768, 32767).astype(np.int16)
    on_chip = SpikeBandFeatures(40, 30000.0, 600, input_dtype="int16",
                                threshold_calibration_s=0.02)
    on_host = SpikeBandFeatures(40, 30000.0, 600, threshold_calibration_s=0.02)
    offline = SpikeBandFeatures(40, 30000.0, 600, input_dtype="int16",
                                threshold_calibration_s=0.02)
    bins = offline.process(counts)
    for k in range(3):
        seg = counts[k * 600:(k + 1) * 600]
        got = on_chip.step(seg)
        np.testing.assert_array_equal(got, on_host.step(seg.astype(np.float64)))
        np.testing.assert_array_equal(got, bins[k])


def test_non_finite_bin_resets_and_recovers() -> None:
    pipe = SpikeBandFeatures(8, 30000.0, 300, threshold_calibration_s=0.01)
    rng = np.random.default_rng(1)
    pipe.step(rng.standard_normal((300, 8)))
    bad = rng.standard_normal((300, 8))
    bad[10, 3] = np.nan
    pipe.step(bad)  # CAR spreads the NaN to every channel
    assert pipe.n_channel_resets == 8
    out = pipe.step(rng.standard_normal((300, 8)))
    assert np.all(np.isfinite(out))


@given(st.floats(min_value=1e-3, max_value=1e3, allow_nan=False))
def test_threshold_multiplier_must_be_negative(m: float) -> None:
    with pytest.raises(ConfigError, match="wrong sign.*use -"):
        SpikeBandFeatures(4, 30000.0, 600, threshold_multiplier=m)


@pytest.mark.parametrize("bad", [0.0, 0.01, float("nan"), float("inf"), -5.0])
def test_bin_shorter_than_a_sample_period(bad: float) -> None:
    with pytest.raises(ConfigError, match="bin_ms"):
        bin_samples_for(bad, 30000.0)
    assert bin_samples_for(20.0, 30000.0) == 600


def test_binned_features_pass_the_row() -> None:
    b = BinnedFeatures(6)
    row = np.arange(6.0)[None, :]
    np.testing.assert_array_equal(b.step(row), row[0])
    assert b.hop_samples == 1 and b.n_features == 6


def test_band_power_tiles_are_bit_identical_per_channel() -> None:
    """Tiling must not change any channel's arithmetic: 300 channels at once (3 tiles) give
    exactly the features of the two halves computed separately (no CAR couples them)."""
    assert bp_kernels.TILE_CHANNELS < 150
    bands = [(8, 12), (13, 30), (70, 110)]
    rng = np.random.default_rng(9)
    x = rng.standard_normal((59 * 4, 300)) * 20
    kw = dict(filter_order=4, car=False, notch_hz=[50.0])
    whole = FeaturePipeline(300, 586.0, 59, bands, **kw).process(x)
    left = FeaturePipeline(150, 586.0, 59, bands, **kw).process(x[:, :150])
    right = FeaturePipeline(150, 586.0, 59, bands, **kw).process(x[:, 150:])
    for b in range(len(bands)):
        np.testing.assert_array_equal(whole[:, b * 300:b * 300 + 150], left[:, b * 150:(b + 1) * 150])
        np.testing.assert_array_equal(whole[:, b * 300 + 150:(b + 1) * 300],
                                      right[:, b * 150:(b + 1) * 150])


def test_band_power_many_tiles_match_scipy_with_car_and_notch() -> None:
    bands = [(13, 30), (70, 110)]
    pipe = FeaturePipeline(333, 586.0, 59, bands, filter_order=4, car=True, notch_hz=[50.0])
    rng = np.random.default_rng(4)
    x = rng.standard_normal((59 * 3, 333)) * 20
    notch = SosfiltStream(pipe.notch_sos, 333)
    bank = FilterBankLogPowerRef(pipe.bank_sos, 333, 1e-12)
    for h in range(3):
        hop = x[h * 59:(h + 1) * 59]
        want = bank.step(notch.step(car_ref(hop)))
        np.testing.assert_allclose(pipe.step(hop), want, rtol=1e-9)
