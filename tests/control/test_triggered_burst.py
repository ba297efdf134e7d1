"""The triggered-burst policy (responsive stimulation): SAFETY.md invariant 20 from ``step``."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from neuroloop.config import ControlConfig
from neuroloop.control import make_policy
from neuroloop.control.triggered_burst import DAY_NS
from neuroloop.decoders.base import DecoderOutput, OutputSchema
from neuroloop.errors import ConfigError
from neuroloop.stimulation.electrodes import rns_strip_depth
from neuroloop.stimulation.programs import ProgramSet, StimProgram

SCHEMA = OutputSchema(("rest", "seizure"), ("detector_score",), ("1",))
HOP_NS = 100_000_000


def _programs() -> ProgramSet:
    arr = rns_strip_depth()
    p = StimProgram.from_contacts(arr, 1, "seizure", {"D0": 0.5, "D1": 0.5},
                                  {"D2": 0.5, "D3": 0.5}, 200.0, 160.0, (0.5, 3.0))
    return ProgramSet(arr, ("rest", "seizure"), (p,))


def _policy(**kw):
    params = {"program": "seizure", "amplitude_ma": 2.0, "burst_s": 0.2,
              "burst_period_s": 0.5, "bursts_per_episode": 3, "refractory_s": 2.0,
              "daily_limit_s": 3.0}
    params.update(kw)
    return make_policy(ControlConfig("triggered-burst", params, "t.toml"), _programs(), SCHEMA)


def _out(v: float, valid: bool = True) -> DecoderOutput:
    return DecoderOutput(state=int(v >= 1), valid=valid, values=np.array([v]), schema=SCHEMA,
                         probabilities=np.array([0.5, 0.5]), confidence=1.0)


def _run(policy, values, dts):
    """(time, on, amplitude) per step."""
    t = 0
    rows = []
    for v, dt in zip(values, dts, strict=True):
        t += dt
        req = policy.step(_out(v), t, 0)
        rows.append((t, req.program_id >= 0, float(-req.amplitude_ma[req.amplitude_ma < 0].sum())))
    return rows


def test_a_detection_gives_bursts_of_the_set_length_then_refractory():
    pol = _policy()
    rows = _run(pol, [0.0] * 3 + [2.0] * 30 + [0.0] * 10, [HOP_NS] * 43)
    on = [r[1] for r in rows]
    # bursts of 2 cycles (0.2 s), starting every 0.5 s, 3 per episode
    starts = [i for i in range(1, len(on)) if on[i] and not on[i - 1]]
    assert len(starts) == 3
    assert [starts[1] - starts[0], starts[2] - starts[1]] == [5, 5]
    assert sum(on) == 6
    assert all(abs(r[2] - 2.0) < 1e-12 for r in rows if r[1])
    m = pol.metrics()
    assert m["bursts"] == 3 and m["therapies"] == 1


@settings(max_examples=60, deadline=None)
@given(values=st.lists(st.one_of(st.floats(-5, 5), st.just(math.nan), st.just(math.inf)),
                       min_size=1, max_size=150),
       dts=st.lists(st.sampled_from([HOP_NS, HOP_NS, HOP_NS, 3 * HOP_NS, DAY_NS // 4]),
                    min_size=150, max_size=150),
       n=st.integers(1, 4), burst=st.sampled_from([0.1, 0.2, 0.35]),
       refractory=st.sampled_from([0.0, 0.5, 3.0]), day_bursts=st.sampled_from([1, 3, 10]))
def test_invariant_20_bursts_episodes_refractory_daily(values, dts, n, burst, refractory,
                                                       day_bursts):
    """Checked from the outside, on the (time, request) sequence only."""
    period = 0.5
    daily = burst * day_bursts
    pol = _policy(burst_s=burst, burst_period_s=period, bursts_per_episode=n,
                  refractory_s=refractory, daily_limit_s=daily)
    rows = _run(pol, values, dts[:len(values)])
    lo, hi = pol.program_envelope_ma(1)
    t = [r[0] for r in rows]
    bursts = []  # [first on-cycle, last on-cycle] of each run of on-cycles
    for i, (_, on, amp) in enumerate(rows):
        if on:
            assert lo <= amp <= hi
            if i and rows[i - 1][1] and i - 1 == bursts[-1][1]:
                bursts[-1][1] = i
            else:
                bursts.append([i, i])
    burst_ns = round(burst * 1e9)
    planned = []
    for s, e in bursts:
        assert values[s] >= 1.0  # a burst starts on a detection only
        dt = t[s] - t[s - 1] if s else 0
        cycles = max(1, burst_ns // dt) if dt else 1
        assert e - s + 1 <= cycles  # never longer than burst_s at the cycle spacing
        planned.append(min(cycles * dt, burst_ns) if dt else burst_ns)
    for j in range(1, len(bursts)):
        gap = t[bursts[j][0]] - t[bursts[j - 1][1]]
        if gap < refractory * 1e9:  # no refractory between them: the same episode
            assert t[bursts[j][0]] - t[bursts[j - 1][0]] >= period * 1e9  # its period
    chain = 1
    for j in range(1, len(bursts)):
        chain = chain + 1 if t[bursts[j][0]] - t[bursts[j - 1][1]] < refractory * 1e9 else 1
        assert chain <= n  # an episode never exceeds its burst count
    for s, _e in bursts:  # the rolling day's on-time
        day = sum(p for k, p in enumerate(planned) if t[s] - DAY_NS < t[bursts[k][0]] <= t[s])
        assert day <= round(daily * 1e9)


def test_daily_limit_refuses_bursts_until_the_day_rolls():
    pol = _policy(burst_s=0.1, bursts_per_episode=1, refractory_s=0.0, daily_limit_s=0.3)
    t = 0
    given = 0
    for _ in range(10):  # detections every second: only three bursts fit the day
        for v in (2.0, 0.0) + (0.0,) * 8:
            t += HOP_NS
            given += pol.step(_out(v), t, 0).program_id >= 0
    assert given == 3
    assert pol.metrics()["refused_daily_limit"] >= 1
    t += DAY_NS
    assert pol.step(_out(2.0), t, 0).program_id >= 0


def test_nan_and_invalid_output_never_start_a_burst():
    pol = _policy()
    for i, v in enumerate([math.nan, -math.inf, 0.99]):
        assert pol.step(_out(v), (i + 1) * HOP_NS, 0).program_id < 0
    assert pol.step(_out(5.0, valid=False), 5 * HOP_NS, 0).program_id < 0


def test_bad_settings_name_the_key():
    with pytest.raises(ConfigError, match="burst_s = 2.0 is longer than its period allows"):
        _policy(burst_s=2.0, burst_period_s=1.0)
    with pytest.raises(ConfigError, match="amplitude_ma"):
        _policy(amplitude_ma=5.0)
    with pytest.raises(ConfigError, match="daily_limit_s"):
        _policy(daily_limit_s=0.05, burst_s=0.1)
    with pytest.raises(ConfigError, match="bursts_per_episode"):
        _policy(bursts_per_episode=0)
