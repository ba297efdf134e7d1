"""The synthetic intracortical population: equal to its NumPy reference, deterministic
whatever the read sizes or threads, int16 counts with a gain, a ground truth that is a
minimum-jerk reach, bins on the chip equal to the host's kernel on the same counts, and
bad options as one-line errors."""

from __future__ import annotations

import numpy as np
import pytest
from reference import IntracorticalSynthRef, min_jerk_velocity_ref

from neuroloop.acquisition import open_source
from neuroloop.acquisition.intracortical import IntracorticalSource
from neuroloop.dsp.spikes import SpikeBandFeatures
from neuroloop.errors import ConfigError


def _src(**kw: object) -> IntracorticalSource:
    opts = dict(n_channels=6, seed=3, snr=3.0, artifact_rate_per_min=600, max_block_samples=4096)
    opts.update(kw)
    return IntracorticalSource("raw", **opts).open()  # type: ignore[arg-type]


def test_raw_block_equals_reference_model() -> None:
    src = _src()
    ref = IntracorticalSynthRef(src)
    x = np.zeros((1500, 6))
    src.read_into(x)
    want, counts = ref.block(0, 1500)
    np.testing.assert_array_equal(x, want)
    np.testing.assert_array_equal(src.last_counts[:1500], counts)
    x2 = np.zeros((700, 6))
    src.read_into(x2)
    np.testing.assert_array_equal(x2, ref.block(1500, 700)[0])
    assert np.ptp(x) > 120  # spikes and artifacts are in there, not just noise


def test_counts_times_gain_and_independent_of_read_sizes() -> None:
    a, b = _src(gain_uv=0.5), _src(gain_uv=0.5)
    whole = np.zeros((3000, 6))
    a.read_into(whole)
    parts = []
    for n in (1, 599, 1000, 1400):
        block = b.read(n)
        assert block is not None
        parts.append(block.data.copy())
    got = np.concatenate(parts)
    np.testing.assert_array_equal(got, whole)
    np.testing.assert_array_equal(np.rint(whole / 0.5) * 0.5, whole)


def test_prefetch_thread_gives_the_same_stream() -> None:
    direct = _src()
    want = np.zeros((1800, 6))
    direct.read_into(want)
    threaded = _src()
    threaded.start_prefetch(600)
    got = np.concatenate([threaded.read(600).data.copy() for _ in range(3)])
    threaded.close()
    np.testing.assert_array_equal(got, want)


def test_ground_truth_is_a_minimum_jerk_reach() -> None:
    src = _src()
    t = src.tasks
    p0, p1 = np.stack([t.x0, t.y0], 1), np.stack([t.x1, t.y1], 1)
    v = src.true_velocity(0, 3000, 30)  # 1 ms bins over 3 s
    for b in (0, 700, 1234, 2999):
        mid = [min_jerk_velocity_ref(s, t.starts, t.lengths, p0, p1, src.fs)
               for s in range(b * 30, b * 30 + 30)]
        np.testing.assert_allclose(v[b], np.mean(mid, axis=0), atol=1e-12)
    labels = np.zeros(90000, np.int8)
    x = np.zeros((90000, 6))
    src.read_into(x, labels)
    speed = np.hypot(*src.true_velocity(0, 90000, 1).T)
    assert np.all(speed[labels == 0] == 0.0)  # holding: still
    assert speed[labels == 1].max() > 0.15  # reaching: ~0.19 m/s peak for 10 cm
    assert set(np.unique(labels)) == {0, 1}


def test_random_target_task_and_tuning() -> None:
    src = _src(task="random-target", n_channels=64, snr=1.0)
    v = src.true_velocity(0, 500, 600)
    assert np.abs(v).max() > 0.02
    x = np.zeros((600 * 400, 64))
    src.read_into(x)
    assert x.std() > 5.0


def test_binned_mode_is_the_chip_kernel_on_the_counts() -> None:
    kw = dict(n_channels=16, seed=2, threshold_calibration_s=0.04, max_block_samples=600)
    binned = IntracorticalSource("binned", **kw).open()  # type: ignore[arg-type]
    raw = IntracorticalSource("raw", **kw).open()  # type: ignore[arg-type]
    chip = SpikeBandFeatures(16, 30000.0, 600, threshold_calibration_s=0.04, input_dtype="int16")
    assert binned.info.n_channels == 32 and binned.info.sampling_rate_hz == 50.0
    tx = 0.0
    for _ in range(6):
        row = binned.read(1).data[0].copy()
        raw.read(600)
        want = np.rint(chip.step(raw.last_counts))
        np.testing.assert_array_equal(row, want)
        tx += row[:16].sum()
    assert tx > 0


@pytest.mark.parametrize("url,match", [
    ("intracortical://sideways", "mode"),
    ("intracortical://raw?threshold_multiplier=4.5", "wrong sign"),
    ("intracortical://raw?bin_ms=0.01", "shorter than one sample period"),
    ("intracortical://raw?n_channels=5000", "n_channels"),
    ("intracortical://raw?task=spiral", "task"),
    ("intracortical://raw?snr=nan", "snr"),
    ("intracortical://raw?colour=red", "unknown intracortical source option"),
])
def test_bad_options_are_one_line(url: str, match: str) -> None:
    with pytest.raises(ConfigError, match=match) as err:
        open_source(url)
    assert "\n" not in str(err.value)


def test_finite_stream_ends_with_and_without_prefetch() -> None:
    for prefetch in (False, True):
        src = _src(duration_s=0.05)  # 1500 samples
        if prefetch:
            src.start_prefetch(600)
        got = 0
        while True:
            block = src.read(600)
            if block is None:
                break
            got += block.n_samples
        assert got == 1500 and src.exhausted
        src.close()
