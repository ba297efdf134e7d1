"""FeaturePipeline: equals the SciPy reference, validates its configuration, allocates nothing
and never compiles after warm-up."""

from __future__ import annotations

import tracemalloc

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from numpy.testing import assert_allclose
from reference import PipelineRef

from neuroloop._jit import compiled_signature_count
from neuroloop.dsp import LOG_POWER_EPS, FeaturePipeline, _kernels
from neuroloop.errors import ConfigError

RTOL = 1e-6
BSI_BANDS = [(8, 12), (13, 20), (20, 30), (30, 45), (55, 70), (70, 90), (90, 110), (110, 140)]


def _ref(p: FeaturePipeline, car_channels: list[int] | None = None) -> PipelineRef:
    return PipelineRef(p.n_channels, p.bank_sos, p.notch_sos, p.car, LOG_POWER_EPS,
                       ref_index=car_channels)


@st.composite
def pipelines(draw: st.DrawFn) -> tuple[FeaturePipeline, list[int] | None]:
    fs = draw(st.sampled_from([160.0, 250.0, 586.0, 1000.0]))
    nyq = fs / 2
    c = draw(st.integers(1, 8))
    hop = draw(st.integers(1, 40))
    order = draw(st.integers(1, 6))
    n_bands = draw(st.integers(1, 3))
    bands = []
    for _ in range(n_bands):
        lo = draw(st.floats(1.0, nyq * 0.7))
        hi = draw(st.floats(lo + 1.0, nyq * 0.95))
        bands.append((lo, hi))
    car = draw(st.booleans())
    car_channels = None
    if car and c > 1 and draw(st.booleans()):
        car_channels = draw(st.lists(st.integers(0, c - 1), min_size=1, max_size=c, unique=True))
    notch = draw(st.sampled_from([[], [50.0], [60.0], [50.0, 60.0]]))
    q = draw(st.floats(5.0, 50.0))
    p = FeaturePipeline(c, fs, hop, bands, filter_order=order, car=car, notch_hz=notch,
                        notch_q=q, car_channels=car_channels)
    return p, car_channels


@given(pipelines(), st.integers(0, 2**32 - 1), st.integers(1, 12))
def test_pipeline_matches_reference_on_random_data(cfg: tuple, seed: int, n_hops: int) -> None:
    p, car_channels = cfg
    x = np.random.default_rng(seed).standard_normal((n_hops * p.hop_samples + 3, p.n_channels))
    x *= 20.0
    expected = _ref(p, car_channels).process(x, p.hop_samples)
    got = np.array([p.step(np.ascontiguousarray(x[h * p.hop_samples:(h + 1) * p.hop_samples]))
                    .copy() for h in range(n_hops)])
    assert_allclose(got, expected[:n_hops], rtol=RTOL, atol=1e-9)
    p.reset()
    assert_allclose(p.process(x), expected, rtol=RTOL, atol=1e-9)


def test_bsi_pipeline_with_car_and_notch_matches_reference() -> None:
    p = FeaturePipeline(64, 586.0, 59, BSI_BANDS, filter_order=4, car=True, notch_hz=[50.0])
    assert p.notch_frequencies_hz == [50.0, 100.0, 150.0, 200.0, 250.0]
    assert p.n_features == 512
    x = np.random.default_rng(5).standard_normal((59 * 30, 64)) * 30
    expected = _ref(p).process(x, 59)
    assert_allclose(p.process(x), expected, rtol=RTOL, atol=1e-9)


def test_process_equals_step_sequence_and_leaves_stream_state_alone() -> None:
    p = FeaturePipeline(4, 250.0, 25, [(8, 13), (13, 30)], notch_hz=[50])
    x = np.random.default_rng(6).standard_normal((25 * 10, 4))
    p.step(np.ascontiguousarray(x[:25]))
    state_before = p.bank_state.copy()
    batch = p.process(x)
    assert np.array_equal(p.bank_state, state_before)
    p.reset()
    steps = np.array([p.step(np.ascontiguousarray(x[h * 25:(h + 1) * 25])).copy()
                      for h in range(10)])
    assert np.array_equal(batch, steps)


def test_process_ignores_trailing_partial_hop() -> None:
    p = FeaturePipeline(2, 250.0, 25, [(8, 13)], car=False)
    assert p.process(np.zeros((74, 2))).shape == (2, 2)


def test_feature_names_are_band_major() -> None:
    p = FeaturePipeline(3, 250.0, 25, [(8, 13), (13, 30)], channel_names=["C3", "Cz", "C4"])
    assert p.feature_names == ["C3:8-13Hz", "Cz:8-13Hz", "C4:8-13Hz",
                               "C3:13-30Hz", "Cz:13-30Hz", "C4:13-30Hz"]
    assert p.n_features == len(p.feature_names) == 6


def test_step_returns_its_own_preallocated_array() -> None:
    p = FeaturePipeline(2, 250.0, 10, [(8, 13)])
    a = p.step(np.ones((10, 2)))
    b = p.step(np.zeros((10, 2)))
    assert a is b


def test_nan_hop_marks_features_and_recovers() -> None:
    p = FeaturePipeline(4, 250.0, 25, [(8, 13)], car=True)
    rng = np.random.default_rng(7)
    good = rng.standard_normal((25, 4))
    bad = good.copy()
    bad[3, 1] = np.inf
    p.step(good)
    assert not np.all(np.isfinite(p.step(bad)))
    assert p.n_channel_resets == 4  # CAR spreads the infinity to every channel
    assert np.all(p.bank_state == 0.0)
    fresh = FeaturePipeline(4, 250.0, 25, [(8, 13)], car=True)
    assert_allclose(p.step(good), fresh.step(good), rtol=RTOL)


def test_step_rejects_wrong_hop_shape_or_kind() -> None:
    p = FeaturePipeline(2, 250.0, 10, [(8, 13)])
    with pytest.raises(ValueError, match=r"shape \(10, 2\)"):
        p.step(np.zeros((11, 2)))
    with pytest.raises(ValueError, match=r"shape \(10, 2\)"):
        p.step([[0.0, 0.0]] * 9)
    with pytest.raises(ValueError, match="ragged"):
        p.step([[0.0, 0.0], [0.0]])
    assert np.array_equal(p.step([[1.0, 2.0]] * 10), p.step(np.tile([1.0, 2.0], (10, 1))))
    with pytest.raises(ValueError, match="cannot be read as float64"):
        p.step(np.zeros((10, 2), dtype=complex))


def test_other_dtype_layout_or_readonly_hops_are_copied_not_compiled() -> None:
    """float32, strided and read-only (memmap-like) hops give the float64 result without a
    new kernel signature."""
    x = np.random.default_rng(10).standard_normal((30, 2)).astype(np.float32)
    variants = {
        "float64": lambda h: np.ascontiguousarray(h, dtype=np.float64),
        "float32": lambda h: np.ascontiguousarray(h),
        "fortran": lambda h: np.asfortranarray(h, dtype=np.float64),
        "strided": lambda h: np.repeat(h.astype(np.float64), 2, axis=1)[:, ::2],
        "readonly": lambda h: _readonly(h.astype(np.float64)),
    }
    results = {}
    count = None
    for name, make in variants.items():
        p = FeaturePipeline(2, 250.0, 10, [(8, 13)], notch_hz=[50])
        p.warmup()
        count = count or _kernels.pipeline_step.signatures[:]
        results[name] = np.array([p.step(make(x[h * 10:(h + 1) * 10])).copy()
                                  for h in range(3)])
        assert _kernels.pipeline_step.signatures == count, name
    for name, r in results.items():
        assert np.array_equal(r, results["float64"]), name


def _readonly(a: np.ndarray) -> np.ndarray:
    a.flags.writeable = False
    return a


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"bands_hz": [(110, 350)], "sampling_rate_hz": 586.0},
         r"band 110-350 Hz reaches Nyquist \(293 Hz\) of a 586 Hz signal; lower its upper "
         r"edge below 293 Hz"),
        ({"bands_hz": [(30, 13)]}, "lower edge at or above its upper edge"),
        ({"bands_hz": [(13, 13)]}, "lower edge at or above its upper edge"),
        ({"bands_hz": [(0, 13)]}, "lower edge <= 0 Hz"),
        ({"bands_hz": []}, "no frequency bands"),
        ({"bands_hz": [(1, 2, 3)]}, "not a pair"),
        ({"sampling_rate_hz": 0.0}, "sampling rate 0.0 Hz is not positive"),
        ({"sampling_rate_hz": -250.0}, "is not positive"),
        ({"sampling_rate_hz": float("nan")}, "is not positive"),
        ({"hop_samples": 0}, "hop of 0 samples"),
        ({"hop_samples": 2.5}, "hop of 2.5 samples"),
        ({"n_channels": 0}, "channel count 0"),
        ({"filter_order": 0}, "filter order 0"),
        ({"notch_hz": [130.0]}, r"notch frequency 130 Hz is not below Nyquist \(125 Hz\)"),
        ({"notch_hz": [-50.0]}, "is not positive"),
        ({"notch_hz": [50.0], "notch_q": 0.0}, "quality factor"),
        ({"car_channels": [0, 9]}, "CAR reference channel 9 is outside 0..3"),
        ({"car_channels": []}, "list is empty"),
        ({"channel_names": ["a"]}, "1 channel names for 4 channels"),
    ],
)
def test_bad_configuration_raises_one_line_config_error(kwargs: dict, message: str) -> None:
    cfg = {"n_channels": 4, "sampling_rate_hz": 250.0, "hop_samples": 25,
           "bands_hz": [(8, 13)]}
    cfg.update(kwargs)
    with pytest.raises(ConfigError, match=message) as info:
        FeaturePipeline(**cfg)
    assert "\n" not in str(info.value)
    assert ";" in str(info.value)  # problem; fix


# --------------------------------------------------------------------------------- hot path
_HOT_KERNELS = [_kernels.pipeline_step, _kernels.car, _kernels.car_subset,
                _kernels.filterbank_log_power, _kernels._quad_to, _kernels._quad_power,
                _kernels._cascade_quads, _kernels._reset_nonfinite]


@pytest.mark.parametrize("car_channels", [None, [0, 1, 2, 5]])
def test_step_does_not_allocate_or_compile_after_warmup(car_channels: list[int] | None) -> None:
    p = FeaturePipeline(8, 586.0, 59, BSI_BANDS[:3], filter_order=6, car=True,
                        notch_hz=[50.0], car_channels=car_channels)
    p.warmup()
    x = np.random.default_rng(8).standard_normal((59 * 16, 8))
    hops = [np.ascontiguousarray(x[h * 59:(h + 1) * 59]) for h in range(16)]
    bad = hops[0].copy()
    bad[0, 0] = np.nan
    counts = [compiled_signature_count(k) for k in _HOT_KERNELS]
    for h in range(50):  # settle caches and counters
        p.step(hops[h % 16])
    tracemalloc.start()
    try:
        base, _ = tracemalloc.get_traced_memory()
        tracemalloc.reset_peak()
        for h in range(2000):
            p.step(hops[h % 16] if h % 500 else bad)
        current, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak - base < 1024, f"step allocated {peak - base} bytes over 2000 hops"
    assert current - base < 256
    assert [compiled_signature_count(k) for k in _HOT_KERNELS] == counts


def test_warmup_resets_state() -> None:
    p = FeaturePipeline(2, 250.0, 25, [(8, 13)], notch_hz=[50])
    p.step(np.random.default_rng(9).standard_normal((25, 2)))
    p.warmup()
    assert not np.any(p.bank_state) and not np.any(p.notch_state)
