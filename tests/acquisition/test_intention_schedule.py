"""The scripted intention schedule: coverage, durations, gait order, determinism, lookup."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from numpy.testing import assert_array_equal

from neuroloop.acquisition.schedule import Schedule, make_schedule

BSI = ("rest", "left_hip_flexion", "right_hip_flexion", "left_knee_extension",
       "right_knee_extension", "left_ankle_dorsiflexion", "right_ankle_dorsiflexion")
EEG = ("rest", "left", "right")
FS = 586.0


@pytest.mark.parametrize("seed", range(8))
def test_every_bsi_state_appears_in_every_60_s_window(seed: int) -> None:
    s = make_schedule(BSI, 3600.0, seed, FS)
    n = int(3600 * FS)
    window = int(60 * FS)
    labels = s.labels(0, n)
    # every state's occurrences, as a cumulative count: any window must add at least one
    starts = np.arange(0, n - window, int(FS))
    for k in range(len(BSI)):
        cum = np.concatenate([[0], np.cumsum(labels == k)])
        assert np.all(cum[starts + window] - cum[starts] > 0), (seed, BSI[k])


@pytest.mark.parametrize(("names", "fs"), [(BSI, FS), (EEG, 250.0)])
def test_segments_are_2_to_4_s_and_start_with_rest(names: tuple[str, ...], fs: float) -> None:
    s = make_schedule(names, 1800.0, 1, fs)
    d = s.durations_s()
    assert d.min() >= 2.0 - 1 / fs and d.max() <= 4.0 + 1 / fs
    assert 2.8 < d.mean() < 3.2
    assert s.states[0] == 0 and s.onsets[0] == 0
    assert np.all(np.diff(s.onsets) > 0)
    assert np.all(s.states[1:] != s.states[:-1])  # every onset is a real transition
    assert set(s.states.tolist()) == set(range(len(names)))
    assert s.end_sample >= int(1800 * fs)
    movement = s.strengths[s.states != 0]
    assert movement.min() >= 0.8 and movement.max() <= 1.2
    assert np.all(s.strengths[s.states == 0] == 1.0)


def test_bsi_bouts_are_strides_of_hip_knee_ankle() -> None:
    s = make_schedule(BSI, 1200.0, 4, FS)
    nxt = {1: 3, 3: 5, 2: 4, 4: 6}  # hip -> knee -> ankle on the same leg
    states = s.states.tolist()
    for a, b in zip(states[:-1], states[1:], strict=True):
        if a in nxt:
            assert b == nxt[a]
        if a in (5, 6):  # after an ankle: the other leg's hip, or rest
            assert b in (0, 2 if a == 5 else 1)
    # bouts are one or two strides (6 or 12 movement segments)
    rests = [i for i, x in enumerate(states) if x == 0]
    lengths = {b - a - 1 for a, b in zip(rests[:-1], rests[1:], strict=True)}
    assert lengths == {6, 12}


def test_eeg_schedule_alternates_sides_within_bouts() -> None:
    s = make_schedule(EEG, 600.0, 2, 250.0)
    states = s.states.tolist()
    for a, b in zip(states[:-1], states[1:], strict=True):
        if a and b:
            assert a != b
    counts = np.bincount(s.states, minlength=3)
    assert abs(counts[1] - counts[2]) <= 1 + 0.05 * counts[1]


def test_unsided_states_are_scheduled() -> None:
    s = make_schedule(("rest", "sit", "stand", "left", "right"), 600.0, 0, 100.0)
    assert set(s.states.tolist()) == {0, 1, 2, 3, 4}


def test_same_seed_same_schedule_other_seed_or_segment_differs() -> None:
    a = make_schedule(BSI, 300.0, 9, FS)
    b = make_schedule(BSI, 300.0, 9, FS)
    assert_array_equal(a.onsets, b.onsets)
    assert_array_equal(a.states, b.states)
    assert_array_equal(a.strengths, b.strengths)
    c = make_schedule(BSI, 300.0, 10, FS)
    d = make_schedule(BSI, 300.0, 9, FS, segment=1)
    assert not np.array_equal(a.onsets[:10], c.onsets[:10])
    assert not np.array_equal(a.onsets[:10], d.onsets[:10])


@settings(max_examples=30)
@given(steps=st.lists(st.integers(0, 200_000), min_size=1, max_size=15))
def test_lazy_extension_equals_drawing_at_once(steps: list[int]) -> None:
    lazy = make_schedule(BSI, 0.0, 3, FS)
    target = 0
    for step in steps:
        target += step
        lazy.extend_to(target)
        assert lazy.end_sample >= target
    full = make_schedule(BSI, (target + 1) / FS, 3, FS)
    n = min(lazy.n_segments, full.n_segments)
    assert_array_equal(lazy.onsets[:n], full.onsets[:n])
    assert_array_equal(lazy.states[:n], full.states[:n])
    assert_array_equal(lazy.strengths[:n], full.strengths[:n])


@given(first=st.integers(0, 400_000), n=st.integers(0, 5000))
def test_labels_match_label_at_and_searchsorted(first: int, n: int) -> None:
    s = make_schedule(EEG, 10.0, 5, 250.0)
    out = np.empty(n + 2, np.int8)
    got = s.labels(first, n, out)
    assert got.shape == (n,)
    assert np.shares_memory(got, out) or n == 0
    ref = s.states[np.searchsorted(s.onsets, np.arange(first, first + n), side="right") - 1]
    assert_array_equal(got, ref)
    if n:
        assert s.label_at(first) == ref[0]
        assert s.label_at(first + n - 1) == ref[-1]


def test_transitions_list_onsets_and_states() -> None:
    s = make_schedule(BSI, 120.0, 1, FS)
    tr = s.transitions(0, int(60 * FS))
    assert tr[0] == (0, 0)
    assert all(0 <= o < 60 * FS for o, _ in tr)
    for o, st_ in tr:
        assert s.label_at(o) == st_
        if o:
            assert s.label_at(o - 1) != st_


@pytest.mark.parametrize(("kwargs", "msg"), [
    ({"intention_names": ("left", "right")}, "rest"),
    ({"intention_names": ("rest", "rest")}, "distinct"),
    ({"sampling_rate_hz": 0.0}, "sampling_rate_hz"),
    ({"min_state_s": 3.0, "max_state_s": 2.0}, "min_state_s"),
    ({"strides_per_bout": (0, 2)}, "strides_per_bout"),
    ({"seed": -1}, "seed"),
])
def test_bad_arguments_raise_value_error(kwargs: dict, msg: str) -> None:
    args = {"intention_names": BSI, "sampling_rate_hz": FS, "seed": 0, **kwargs}
    with pytest.raises(ValueError, match=msg):
        Schedule(args.pop("intention_names"), args.pop("sampling_rate_hz"), args.pop("seed"),
                 **args)


def test_labels_rejects_bad_output() -> None:
    s = make_schedule(EEG, 10.0, 0, 250.0)
    with pytest.raises(ValueError):
        s.labels(0, 10, np.empty(10, np.int64))
    with pytest.raises(ValueError):
        s.labels(0, 10, np.empty(5, np.int8))
    with pytest.raises(ValueError):
        s.labels(-1, 10)
