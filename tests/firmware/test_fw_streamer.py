"""The simulator's amplifier: quantisation, determinism, stuck channel, noise bursts, skip."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from firmware_sim.faults import FaultConfig, LinkFaults
from firmware_sim.streamer import Streamer, quantise
from neuroloop.acquisition.synthetic import SyntheticSource


@given(arrays(np.float64, st.integers(1, 50), elements=st.floats(-1e5, 1e5)),
       st.sampled_from([0.05, 0.25, 1.0]))
def test_quantise_is_within_half_a_step_or_saturates(x: np.ndarray, scale: float) -> None:
    q = quantise(x, scale, np.empty(x.shape, dtype=np.int16))
    back = q.astype(np.float64) * scale
    inside = np.abs(x / scale) < 32767
    assert np.all(np.abs(back[inside] - x[inside]) <= scale / 2 + 1e-9)
    assert np.all(q[x / scale >= 32767.5] == 32767) and np.all(q[x / scale <= -32768.5] == -32768)


def test_frames_are_the_patient_model_in_order() -> None:
    s = Streamer("bsi", 4)
    frames = [s.next_frame()[0].copy() for _ in range(3)]
    s.prepare()  # generating ahead changes nothing
    frames.append(s.next_frame()[0].copy())
    src = SyntheticSource("bsi", seed=4)
    x = np.empty((4 * 59, 64))
    src.read_into(x)
    expected = quantise(x, 0.25, np.empty(x.shape, np.int16))
    np.testing.assert_array_equal(np.concatenate(frames), expected)
    assert s.info.samples_per_frame == 59 and s.info.uv_per_lsb == 0.25
    eeg = Streamer("eeg-bci", 1)
    assert eeg.info.samples_per_frame == 25 and len(eeg.info.channel_names) == 32
    assert eeg.info.sampling_rate_hz == 250.0 and eeg.info.channel_type == "eeg"


def test_stuck_channel_freezes_and_others_do_not() -> None:
    s = Streamer("bsi", 1, stuck_channel=5, stuck_after_s=59 / 586.0)
    s.next_frame()
    q = np.concatenate([s.next_frame()[0].copy() for _ in range(5)])
    assert np.all(q[:, 5] == q[0, 5])
    assert np.ptp(q[:, 6]) > 0


def test_noise_bursts_add_broadband_noise() -> None:
    clean = Streamer("bsi", 1)
    noisy = Streamer("bsi", 1, noise_bursts_per_s=5.0, fault_seed=3)
    a = np.concatenate([clean.next_frame()[0].copy() for _ in range(30)]).astype(float)
    b = np.concatenate([noisy.next_frame()[0].copy() for _ in range(30)]).astype(float)
    assert noisy.noise_bursts > 0
    diff = (b - a) * 0.25
    assert 100.0 < np.std(diff[np.any(diff != 0, axis=1)]) < 1000.0


def test_skip_lets_patient_time_pass() -> None:
    s = Streamer("bsi", 2)
    s.prepare()
    s.skip(59 * 3)  # the prepared frame is part of the skipped time
    q = s.next_frame()[0].copy()
    src = SyntheticSource("bsi", seed=2)
    x = np.empty((59 * 4, 64))
    src.read_into(x)
    np.testing.assert_array_equal(q, quantise(x[59 * 3:], 0.25, np.empty((59, 64), np.int16)))


def test_bad_streamer_options() -> None:
    with pytest.raises(ValueError):
        Streamer("bsi", 1, samples_per_frame=500)
    with pytest.raises(ValueError):
        Streamer("bsi", 1, stuck_channel=64)


def test_link_faults_count_what_they_inject() -> None:
    lf = LinkFaults(FaultConfig(drop_frames=0.5, corrupt_bytes=0.01), np.random.default_rng(0))
    drops = sum(lf.drop_data_frame() for _ in range(2000))
    assert drops == lf.frames_dropped and 900 < drops < 1100
    frame = bytes(range(256)) * 4
    out = [lf.corrupt_tx(frame) for _ in range(100)]
    changed = sum(o != frame for o in out)
    assert changed == lf.frames_corrupted
    flipped = sum(bin(a ^ b).count("1") for o in out for a, b in zip(o, frame, strict=True))
    assert flipped == lf.bytes_corrupted_tx  # one bit per corrupted byte
    late = LinkFaults(FaultConfig(latency_ms=5.0, faults_after_s=1.0), np.random.default_rng(0))
    late.delay(b"a", 0)  # not active yet: no delay
    assert late.released(0) == [b"a"]
    late.active = True
    late.delay(b"b", 0)
    assert late.released(4999) == [] and late.released(5000) == [b"b"]
    with pytest.raises(ValueError):
        FaultConfig(drop_frames=1.5)
