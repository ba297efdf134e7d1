"""SyntheticSource: URL options, streaming contract, determinism, artifacts, no allocation."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import tracemalloc

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from numpy.testing import assert_array_equal

from neuroloop.acquisition import open_source
from neuroloop.acquisition.synthetic import ARTIFACT_KINDS, SyntheticSource, generate
from neuroloop.errors import ConfigError

BSI_NAMES = ("rest", "left_hip_flexion", "right_hip_flexion", "left_knee_extension",
             "right_knee_extension", "left_ankle_dorsiflexion", "right_ankle_dorsiflexion")


# -- info and URL ----------------------------------------------------------------------------
def test_bsi_info() -> None:
    src = open_source("synthetic://bsi?seed=1&snr=1.0")
    assert isinstance(src, SyntheticSource)
    info = src.info
    assert info.channel_names == tuple(f"ECOG{i:02d}" for i in range(1, 65))
    assert set(info.channel_types) == {"ecog"}
    assert info.sampling_rate_hz == 586.0
    assert info.unit == "uV"
    assert info.intention_names == BSI_NAMES
    assert src.seed == 1 and src.snr == 1.0


def test_eeg_info() -> None:
    src = open_source("synthetic://eeg-bci")
    info = src.info
    assert info.n_channels == 32 and info.sampling_rate_hz == 250.0
    assert {"C3", "C4", "Cz"} <= set(info.channel_names)
    assert set(info.channel_types) == {"eeg"}
    assert info.intention_names == ("rest", "left", "right")


def test_url_options_and_typed_options_agree() -> None:
    a = open_source("synthetic://bsi?seed=3&snr=0.5&artifact_rate_per_min=2&line_hz=60"
                    "&n_channels=64&segment=1&duration_s=1.5")
    b = open_source("synthetic://bsi", seed=3, snr=0.5, artifact_rate_per_min=2.0, line_hz=60,
                    n_channels=64, segment=1, duration_s=1.5, sampling_rate_hz=586.0)
    assert a.options == b.options
    assert a.line_hz == 60.0 and a.artifact_rate_per_min == 2.0
    assert a.n_samples_total == round(1.5 * 586)


@pytest.mark.parametrize(("url", "options", "key"), [
    ("synthetic://bsi?seed=-1", {}, "seed"),
    ("synthetic://bsi?seed=abc", {}, "seed"),
    ("synthetic://bsi", {"seed": 1.5}, "seed"),
    ("synthetic://bsi", {"seed": True}, "seed"),
    ("synthetic://bsi?snr=-0.1", {}, "snr"),
    ("synthetic://bsi?snr=nan", {}, "snr"),
    ("synthetic://bsi?snr=inf", {}, "snr"),
    ("synthetic://bsi?artifact_rate_per_min=-1", {}, "artifact_rate_per_min"),
    ("synthetic://bsi?line_hz=293", {}, "line_hz"),
    ("synthetic://eeg-bci?line_hz=125", {}, "line_hz"),
    ("synthetic://bsi?n_channels=32", {}, "n_channels"),
    ("synthetic://eeg-bci", {"n_channels": 64}, "n_channels"),
    ("synthetic://bsi", {"sampling_rate_hz": 500.0}, "sampling_rate_hz"),
    ("synthetic://bsi?duration_s=0", {}, "duration_s"),
    ("synthetic://bsi?max_block_samples=0", {}, "max_block_samples"),
    ("synthetic://bsi?segment=x", {}, "segment"),
    ("synthetic://bsi?colour=red", {}, "colour"),
    ("synthetic://bsi", {"snr": [1.0]}, "snr"),
    ("synthetic://ecog", {}, "ecog"),
    ("synthetic://", {}, "preset"),
])
def test_bad_options_are_one_line_config_errors(url: str, options: dict, key: str) -> None:
    with pytest.raises(ConfigError) as exc:
        open_source(url, **options)
    msg = str(exc.value)
    assert "\n" not in msg
    assert key in msg
    assert "use" in msg  # says how to fix it


# -- streaming contract ----------------------------------------------------------------------
def test_read_reuses_one_block_over_a_preallocated_buffer() -> None:
    with open_source("synthetic://bsi?seed=2", max_block_samples=256) as src:
        b1 = src.read(59)
        assert b1.data.shape == (59, 64) and b1.data.dtype == np.float64
        assert b1.data.flags.c_contiguous
        assert b1.labels.shape == (59,) and b1.labels.dtype == np.int8
        assert b1.first_index == 0
        buf = b1.data
        b2 = src.read(59)
        assert b2 is b1 and b2.data is buf  # same view object when the size repeats
        assert b2.first_index == 59
        b3 = src.read(10_000)  # capped at max_block_samples
        assert b3.n_samples == 256 and b3.first_index == 118
        assert np.shares_memory(b3.data, buf)
        assert_array_equal(b3.labels, src.schedule.labels(118, 256))
        assert src.position == 374


def test_finite_stream_ends_with_a_partial_block_and_is_exhausted() -> None:
    src = SyntheticSource("eeg-bci", seed=1, duration_s=1.0, max_block_samples=64)
    with src:
        sizes = []
        while (b := src.read(100)) is not None:
            sizes.append(b.n_samples)
        assert src.exhausted
        assert src.read(10) is None
    assert sum(sizes) == 250 and sizes[-1] == 250 - 64 * 3


def test_generate_equals_the_stream() -> None:
    data, labels = generate("eeg-bci", 3.0, seed=4, snr=0.7, segment=2)
    assert data.shape == (750, 32) and labels.shape == (750,)
    with SyntheticSource("eeg-bci", seed=4, snr=0.7, segment=2) as src:
        b = src.read(750)
        assert_array_equal(b.data, data)
        assert_array_equal(b.labels, labels)


def test_seed_segment_and_patient_roles() -> None:
    base = SyntheticSource("bsi", seed=1)
    other_seed = SyntheticSource("bsi", seed=2)
    other_segment = SyntheticSource("bsi", seed=1, segment=1)
    other_patient = SyntheticSource("bsi", seed=1, patient=1)
    # the anatomy belongs to the patient, not to the seed: a decoder transfers across seeds
    for k, v in base.task_maps.items():
        assert_array_equal(v, other_seed.task_maps[k])
        assert_array_equal(v, other_segment.task_maps[k])
        assert not np.allclose(v, other_patient.task_maps[k])
    d = {}
    for name, s in [("base", base), ("seed", other_seed), ("segment", other_segment)]:
        with s:
            d[name] = s.read(586).data.copy()
    assert not np.allclose(d["base"], d["seed"])
    assert not np.allclose(d["base"], d["segment"])
    assert not np.array_equal(base.schedule.onsets[:5], other_segment.schedule.onsets[:5])


def test_warmup_does_not_advance_the_stream() -> None:
    a = SyntheticSource("bsi", seed=5)
    a.warmup()
    a.warmup()
    b = SyntheticSource("bsi", seed=5)
    with a, b:
        assert_array_equal(a.read(300).data, b.read(300).data)


# -- determinism -----------------------------------------------------------------------------
_REF_SECONDS = 2.0


@pytest.fixture(scope="module")
def reference_stream() -> tuple[np.ndarray, np.ndarray]:
    return generate("bsi", _REF_SECONDS, seed=11, artifact_rate_per_min=60.0)


@settings(max_examples=25)
@given(chunks=st.lists(st.integers(1, 700), min_size=1, max_size=40))
def test_stream_is_independent_of_read_sizes(reference_stream, chunks: list[int]) -> None:
    ref_data, ref_labels = reference_stream
    n = ref_data.shape[0]
    src = SyntheticSource("bsi", seed=11, artifact_rate_per_min=60.0,
                          duration_s=_REF_SECONDS, max_block_samples=700)
    pos = 0
    with src:
        i = 0
        while (b := src.read(chunks[i % len(chunks)])) is not None:
            assert b.first_index == pos
            assert_array_equal(b.data, ref_data[pos:pos + b.n_samples])
            assert_array_equal(b.labels, ref_labels[pos:pos + b.n_samples])
            pos += b.n_samples
            i += 1
    assert pos == n


_HASH_SCRIPT = (
    "import hashlib; from neuroloop.acquisition.synthetic import generate; "
    "d, l = generate('bsi', 3.0, seed=21, snr=0.8, artifact_rate_per_min=30.0); "
    "print(hashlib.sha256(d.tobytes() + l.tobytes()).hexdigest())"
)


def test_same_seed_gives_identical_bytes_in_another_process() -> None:
    d, lab = generate("bsi", 3.0, seed=21, snr=0.8, artifact_rate_per_min=30.0)
    here = hashlib.sha256(d.tobytes() + lab.tobytes()).hexdigest()
    env = dict(os.environ, PYTHONHASHSEED="123")
    res = subprocess.run([sys.executable, "-c", _HASH_SCRIPT], capture_output=True, text=True,
                         env=env, timeout=120, check=True)
    assert res.stdout.strip() == here


# -- artifacts -------------------------------------------------------------------------------
def test_artifacts_occur_at_the_configured_rate_and_only_inside_their_windows() -> None:
    seconds, rate = 600.0, 6.0
    dirty, _ = generate("eeg-bci", seconds, seed=3, artifact_rate_per_min=rate)
    clean, _ = generate("eeg-bci", seconds, seed=3, artifact_rate_per_min=0.0)
    src = SyntheticSource("eeg-bci", seed=3, artifact_rate_per_min=rate, duration_s=seconds)
    events = src.artifacts.events(0, dirty.shape[0])
    expected = rate * seconds / 60.0
    assert abs(len(events) - expected) < 4 * np.sqrt(expected)
    counts = {k: sum(e["kind"] == k for e in events) for k in ARTIFACT_KINDS}
    assert all(c >= 5 for c in counts.values()), counts

    # the artifact stream leaves the background untouched outside the event windows
    inside = np.zeros(dirty.shape[0], bool)
    for e in events:
        inside[e["onset"]:e["onset"] + e["n_samples"]] = True
    diff = dirty != clean
    assert not diff[~inside].any()
    rail = src.rail_uv
    for e in events:
        sl = slice(e["onset"], e["onset"] + e["n_samples"])
        ch = list(e["channels"])
        seg = dirty[sl][:, ch]
        if e["kind"] == "saturation":
            assert np.all(np.abs(seg) == rail) and 1 <= len(ch) <= 8
        elif e["kind"] == "flat":
            assert len(ch) == 1 and np.ptp(seg) == 0.0 and e["n_samples"] >= 0.5 * 250
        else:  # a large transient on every channel
            assert len(ch) == 32
            assert np.max(np.abs(seg - clean[sl][:, ch])) > 50.0
        assert 0.05 * 250 <= e["n_samples"] <= 3.0 * 250 + 1


def test_artifact_rate_over_many_seeds() -> None:
    rate, minutes = 3.0, 20.0
    n = int(minutes * 60 * 586)
    total = 0
    for seed in range(20):
        src = SyntheticSource("bsi", seed=seed, artifact_rate_per_min=rate)
        total += len(src.artifacts.events(0, n))
    expected = rate * minutes * 20
    assert abs(total - expected) < 4 * np.sqrt(expected)


def test_zero_rate_has_no_artifacts() -> None:
    src = SyntheticSource("bsi", seed=1, artifact_rate_per_min=0)
    src.artifacts.extend_to(10**7)
    assert src.artifacts.n_events == 0


# -- hot path --------------------------------------------------------------------------------
def test_read_allocates_nothing_after_warmup() -> None:
    src = SyntheticSource("bsi", seed=1, artifact_rate_per_min=30.0)
    src.open()
    for _ in range(3):
        src.read(59)
    tracemalloc.start()
    try:
        start, _ = tracemalloc.get_traced_memory()
        tracemalloc.reset_peak()
        for _ in range(1000):
            src.read(59)
        end, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak - start < 2048, f"peak grew by {peak - start} bytes over 1000 reads"
    assert end - start < 1024, f"memory grew by {end - start} bytes over 1000 reads"
    assert src.position == 59 * 1003


def test_tables_extended_mid_stream_give_the_same_data(monkeypatch) -> None:
    """Reading past the drawn schedule/artifact horizon extends them without a seam."""
    import neuroloop.acquisition.synthetic as synthetic

    ref, ref_labels = generate("eeg-bci", 12.0, seed=6, artifact_rate_per_min=30.0)
    monkeypatch.setattr(synthetic, "_HORIZON_S", 1.0)
    src = SyntheticSource("eeg-bci", seed=6, artifact_rate_per_min=30.0)
    assert src.schedule.end_sample < ref.shape[0]
    got = np.empty_like(ref)
    lab = np.empty(ref.shape[0], np.int8)
    with src:
        for start in range(0, ref.shape[0], 100):
            b = src.read(100)
            got[start:start + 100] = b.data
            lab[start:start + 100] = b.labels
    assert_array_equal(got, ref)
    assert_array_equal(lab, ref_labels)
