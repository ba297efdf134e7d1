"""compare_cycles / ReplayChecker / compare_events: exact, first divergence, counts."""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from neuroloop.io import open_recording
from neuroloop.io.compare import (
    DEFAULT_IGNORE,
    ReplayChecker,
    compare_cycles,
    compare_events,
    replay_check_report,
)
from neuroloop.records import cycle_dtype
from neuroloop.safety.events import InterlockEvent, SupervisorState

DT = cycle_dtype(6, 3, 16, 2)
COMPARED = [n for n in DT.names if n not in DEFAULT_IGNORE]


def _cycles(n: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    a = np.zeros(n, dtype=DT)
    a["cycle"] = np.arange(n)
    a["first_sample"] = 10 * np.arange(n)
    a["now_ns"] = rng.integers(0, 2**40, n)
    a["compute_ns"] = rng.integers(0, 10**6, n)
    a["state"] = rng.integers(0, 3, n)
    a["confidence"] = rng.random(n)
    a["probabilities"] = rng.random((n, 3))
    a["outputs"] = rng.normal(size=(n, 2))
    a["features"] = rng.normal(size=(n, 6))
    a["features"][::7, 2] = np.nan
    a["amplitude_ma"] = rng.normal(size=(n, 16))
    a["program_id"] = rng.integers(-1, 3, n)
    return a


def test_identical_and_ignored_fields():
    a = _cycles(3000)
    b = a.copy()
    b["compute_ns"] += 5  # timing of the host is not a decision
    b["e2e_ns"] += 1
    diff = compare_cycles(a, b)
    assert diff.identical and diff.first_divergent_cycle is None and diff.count_by_field == {}
    assert "identical" in diff.format()
    diff = compare_cycles(a, b, ignore=())
    assert not diff.identical and diff.count_by_field == {"compute_ns": 3000, "e2e_ns": 3000}
    assert diff.field == "compute_ns" and diff.first_divergent_cycle == 0


def test_nan_equals_nan_but_signed_zero_differs():
    a = _cycles(10)
    b = a.copy()
    b["features"][7, 2] = np.float64("nan") * -1  # another NaN (sign bit set) is still NaN
    assert compare_cycles(a, b).identical
    a["confidence"][5] = 0.0
    b["confidence"][5] = -0.0
    diff = compare_cycles(a, b)
    assert not diff.identical and diff.field == "confidence" and diff.first_divergent_cycle == 5
    assert np.signbit(diff.replayed_value) and not np.signbit(diff.recorded_value)


@given(n=st.integers(1, 2500), data=st.data())
def test_single_field_perturbation_is_found_exactly(n, data):
    a = _cycles(n, seed=n)
    b = a.copy()
    row = data.draw(st.integers(0, n - 1), label="row")
    name = data.draw(st.sampled_from(COMPARED), label="field")
    shape = DT.fields[name][0].shape
    elem = tuple(data.draw(st.integers(0, s - 1)) for s in shape)
    col = b[name]
    old = col[(row, *elem)]
    if col.dtype.kind == "f":
        new = data.draw(st.floats(allow_nan=False).filter(
            lambda x: np.float64(x).tobytes() != np.float64(old).tobytes()
            and not np.isnan(old)) if not np.isnan(old) else st.floats(allow_nan=False))
    else:
        info = np.iinfo(col.dtype)
        new = data.draw(st.integers(int(info.min), int(info.max)).filter(lambda x: x != old))
    col[(row, *elem)] = new
    diff = compare_cycles(a, b)
    assert not diff.identical
    assert diff.first_divergent_cycle == row
    assert diff.field == name
    assert diff.index == (elem or None)
    assert diff.count_by_field == {name: 1}
    if isinstance(diff.recorded_value, float) and np.isnan(diff.recorded_value):
        assert np.isnan(old)
    else:
        assert diff.recorded_value == old
    assert np.float64(diff.replayed_value).tobytes() == np.float64(
        col[(row, *elem)]).tobytes()
    text = diff.format()
    assert f"first divergent cycle: {row}" in text and diff.field_label in text
    json.dumps(replay_check_report(diff), allow_nan=False)


def test_first_divergence_and_counts_over_several_fields():
    a = _cycles(5000)
    b = a.copy()
    b["state"][[4000, 4100]] += 1
    b["amplitude_ma"][3000, 7] += 0.5
    b["amplitude_ma"][3000, 9] += 0.5  # same cycle, same field: counted once
    b["amplitude_ma"][4500, 0] += 0.5
    b["program_id"][2999] = 99
    diff = compare_cycles(a, b)
    assert diff.first_divergent_cycle == 2999 and diff.field == "program_id"
    assert diff.replayed_value == 99
    assert diff.count_by_field == {"state": 2, "amplitude_ma": 2, "program_id": 1}
    report = replay_check_report(diff)
    assert report["identical"] is False
    assert report["cycles"]["first_divergent_cycle"] == 2999
    assert report["cycles"]["count_by_field"] == diff.count_by_field


def test_different_lengths():
    a = _cycles(100)
    diff = compare_cycles(a, a[:60])
    assert not diff.identical
    assert diff.first_divergent_cycle == 60 and diff.field == "cycle_count"
    assert diff.count_by_field == {"cycle_count": 40}
    assert "the replay ends here" in diff.format()
    b = a[:60].copy()
    b["state"][10] += 1
    diff = compare_cycles(a, b)
    assert diff.first_divergent_cycle == 10 and diff.field == "state"
    assert diff.count_by_field == {"state": 1, "cycle_count": 40}
    assert compare_cycles(a[:0], a[:0]).identical


def test_different_layouts():
    a = _cycles(20)
    b = np.zeros(20, dtype=cycle_dtype(8, 3, 16, 2))
    for name in DT.names:
        if name != "features":
            b[name] = a[name]
    diff = compare_cycles(a, b)
    assert diff.field == "features" and diff.first_divergent_cycle == 0
    assert diff.count_by_field == {"features": 20}
    assert diff.recorded_value == "float64[6]" and diff.replayed_value == "float64[8]"


def test_replay_checker_streams_like_compare_cycles(make_session):
    s = make_session(n_cycles=2100, hop=2, events_every=500)
    rec = open_recording(s.path)
    replayed = np.array(rec.cycles)
    replayed["state"][1500] += 1
    replayed["features"][2050, 1] = 7.0
    checker = ReplayChecker(rec)
    ev_iter = iter(s.events)
    for k in range(replayed.shape[0]):
        if k % 500 == 3:
            checker.on_events(next(ev_iter))
        checker.on_cycle(replayed[k:k + 1])
    checker.on_stop({})
    streamed = checker.result()
    direct = compare_cycles(rec.cycles, replayed)
    assert streamed == direct
    assert streamed.first_divergent_cycle == 1500
    assert streamed.count_by_field == {"state": 1, "features": 1}
    events = checker.event_result()
    assert events.identical and events.n_recorded == 5


def test_replay_checker_short_replay(make_session):
    s = make_session(n_cycles=30)
    rec = open_recording(s.path)
    checker = ReplayChecker(rec)
    for k in range(25):
        checker.on_cycle(np.array(rec.cycles[k:k + 1]))
    diff = checker.result()
    assert diff.field == "cycle_count" and diff.first_divergent_cycle == 25


def test_compare_events():
    def ev(reason, contact=1, requested=2.0):
        return InterlockEvent(reason, 3, 100, contact, requested, 1.0, SupervisorState.HOLD)

    recorded = [ev("slew_up").to_dict(), {"kind": "link", "error": "crc"}, ev("shannon")]
    assert compare_events(recorded, [ev("slew_up"), ev("shannon")]).identical
    d = compare_events(recorded, [ev("slew_up"), ev("shannon", contact=4)])
    assert not d.identical and d.first_divergent_event == 1 and d.key == "contact"
    assert (d.recorded_value, d.replayed_value) == (1, 4)
    assert "first divergent event: #1" in d.format()
    d = compare_events(recorded, [ev("slew_up")])
    assert not d.identical and d.first_divergent_event == 1 and d.n_replayed == 1
    nan_ev = {"reason": "x", "requested": float("nan")}
    assert compare_events([nan_ev], [dict(nan_ev)]).identical
    report = replay_check_report(compare_cycles(_cycles(3), _cycles(3)), d)
    assert report["identical"] is False and report["cycles"]["identical"] is True
    json.dumps(report, allow_nan=False)


@pytest.mark.parametrize("value", [float("nan"), float("inf"), -0.0])
def test_report_is_strict_json(value):
    a = _cycles(4)
    b = a.copy()
    b["confidence"][2] = value
    report = replay_check_report(compare_cycles(a, b))
    text = json.dumps(report, allow_nan=False)
    assert json.loads(text)["cycles"]["field"] == "confidence"
