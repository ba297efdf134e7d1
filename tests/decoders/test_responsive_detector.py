"""The RNS-style detector decoder: compiled step vs the reference, settings, persistence."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from reference import ResponsiveDetectorRef

from neuroloop.decoders import load_decoder
from neuroloop.decoders.responsive import ResponsiveDetector
from neuroloop.errors import ConfigError

HOP_S = 0.1


def _det(**kw):
    args = dict(hop_s=HOP_S, n_channels=3, trend_init_s=1.0,
                line_length={"channels": [0, 1], "window_s": 0.3, "trend_s": 2.0,
                             "threshold_pct": 40.0},
                area={"channels": [1, 2], "channel_logic": "and", "window_s": 0.5,
                      "trend_s": 3.0, "threshold_pct": 60.0},
                bandpass={"channels": [0, 2], "min_amplitude_uv": 12.0,
                          "min_duration_s": 0.3})
    args.update(kw)
    d = ResponsiveDetector(**args)
    d.fit(np.ones((20, 9)), np.zeros(20, dtype=int), state_names=["rest", "seizure"])
    return d


def _ref(d: ResponsiveDetector) -> ResponsiveDetectorRef:
    return ResponsiveDetectorRef(d.n_channels, d._enabled, d._mask, d._logic_and,
                                 d.combine == "and", d._window, d._threshold, d._alpha,
                                 d._min_amp, d._min_hops, d._init_hops)


@pytest.mark.parametrize("combine", ["or", "and"])
def test_step_equals_reference_on_random_measures(combine):
    rng = np.random.default_rng(3)
    d = _det(combine=combine)
    ref = _ref(d)
    X = np.abs(rng.standard_normal((400, 9))) * 10.0
    X[150:170] *= 4.0  # a burst of activity
    X[250, 4] = np.nan
    for x in X:
        out = d.step(x)
        state, score = ref.step(x)
        if state < 0:
            assert not out.valid and math.isnan(out.values[0])
            continue
        assert out.state == state
        assert out.values[0] == pytest.approx(score, rel=1e-12, abs=1e-12)


@settings(max_examples=40, deadline=None)
@given(st.lists(st.lists(st.floats(0.0, 1e3), min_size=9, max_size=9), min_size=1,
                max_size=60))
def test_step_equals_reference_hypothesis(rows):
    d = _det()
    ref = _ref(d)
    for r in rows:
        x = np.asarray(r)
        out = d.step(x)
        state, score = ref.step(x)
        assert out.state == state
        if math.isfinite(score):
            assert out.values[0] == pytest.approx(score, rel=1e-9, abs=1e-9)
        else:
            assert out.values[0] == score


def test_nothing_is_detected_while_the_trends_are_learned():
    d = _det(trend_init_s=2.0)
    x = np.full(9, 100.0)
    for _ in range(20):
        assert d.step(x).state == 0
    assert d.init_hops == 20


def test_a_rise_above_the_trend_is_detected():
    d = _det(area={"enabled": False}, bandpass=None)
    base = np.full(9, 10.0)
    for _ in range(30):
        assert d.step(base).state == 0
    hi = base.copy()
    hi[0] = 10.0 * 1.6  # 60 % above the trend on channel 0 (threshold 40 %)
    states = [d.step(hi).state for _ in range(5)]
    assert states[-1] == 1
    assert d.step(hi).values[1] > 40.0  # line_length_pct


def test_bad_settings_are_one_line_config_errors():
    with pytest.raises(ConfigError, match="channel 7 does not exist"):
        _det(line_length={"channels": [0, 7]})
    with pytest.raises(ConfigError, match="channel_logic"):
        _det(area={"channel_logic": "xor"})
    with pytest.raises(ConfigError, match="threshold_pct"):
        _det(line_length={"threshold_pct": math.nan})
    with pytest.raises(ConfigError, match="trend_s"):
        _det(line_length={"window_s": 5.0, "trend_s": 1.0})
    with pytest.raises(ConfigError, match="unknown key decoder.bandpass.band_hz"):
        _det(bandpass={"band_hz": [1, 2]})
    with pytest.raises(ConfigError, match="no detector is enabled"):
        _det(line_length=None, area=None, bandpass=None)
    with pytest.raises(ConfigError, match="two states"):
        ResponsiveDetector(n_states=3, hop_s=0.1, n_channels=2)


def test_save_and_load_round_trip(tmp_path):
    d = _det()
    path = d.save(tmp_path / "d.npz")
    e = load_decoder(path)
    assert isinstance(e, ResponsiveDetector)
    assert e.get_params() == d.get_params()
    assert e.output_schema_.output_names == ("detector_score", "line_length_pct", "area_pct",
                                             "band_rms_uv")
    rng = np.random.default_rng(0)
    X = np.abs(rng.standard_normal((80, 9))) * 10
    assert np.array_equal(d.decode(X), e.decode(X))
