"""single-threshold and dual-threshold: onset/termination, ramps and blanking (invariant 19
as a property of ``step``), and the keys a clinician can get wrong."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from neuroloop.config import ControlConfig, load_scenario
from neuroloop.control import make_policy
from neuroloop.decoders import BiomarkerDecoder, DecoderOutput, OutputSchema
from neuroloop.errors import ConfigError
from neuroloop.safety.limits import SafetyLimits
from neuroloop.stimulation.programs import build_program_set

ADBS = load_scenario("adbs")
PROGRAMS = build_program_set(ADBS.stimulation, ADBS.intention_names)
SCHEMA = OutputSchema(ADBS.intention_names, tuple(n for n, _ in BiomarkerDecoder.outputs),
                      tuple(u for _, u in BiomarkerDecoder.outputs))
NS = 1_000_000_000


def _policy(name: str, **params):
    return make_policy(ControlConfig(name, params, "t.toml"), PROGRAMS, SCHEMA)


def _out(pct: float, valid: bool = True) -> DecoderOutput:
    return DecoderOutput(state=0, raw_state=0, probabilities=np.array([1.0, 0.0]),
                         confidence=1.0, valid=valid, values=np.array([0.0, pct]),
                         schema=SCHEMA)


def _amp(req) -> float:
    return float(-req.amplitude_ma[req.amplitude_ma < 0].sum())


def test_single_threshold_on_after_onset_off_after_termination() -> None:
    p = _policy("single-threshold", threshold=75.0, onset_s=0.3, termination_s=1.0,
                ramp_up_ma_per_s=10.0, ramp_down_ma_per_s=10.0, blanking_s=0.0)
    t = 0
    amps = []
    for pct in [50] * 5 + [90] * 10 + [50] * 20:
        amps.append(_amp(p.step(_out(pct), t, 0)))
        t += NS // 10
    assert max(amps[:5]) == 0.0
    assert amps[5:8] == [0.0, 0.0, 0.0]          # 0.3 s onset
    assert amps[9] > 0 and max(amps) == pytest.approx(3.0)
    assert amps[-1] == 0.0
    m = p.metrics()
    assert m["threshold_changes"] == 2 and m["ramps"] == 2 and 0 < m["stim_time_pct"] < 100


def test_dual_threshold_ramps_holds_between_and_ramps_down() -> None:
    p = _policy("dual-threshold", thresholds=[20.0, 60.0], amplitude_ma=[1.0, 3.0],
                onset_s=0.0, termination_s=0.0, ramp_up_ma_per_s=1.0,
                ramp_down_ma_per_s=2.0, blanking_s=0.0)
    t, amps = 0, []
    for pct in [90] * 40 + [40] * 10 + [5] * 20:
        amps.append(_amp(p.step(_out(pct), t, 0)))
        t += NS // 10
    # rises at 1 mA/s (0.1 mA per 100 ms hop) to 3 mA, holds between thresholds, then falls
    # at 2 mA/s to the lower limit 1 mA (stays on)
    assert np.allclose(np.diff(amps[1:31]), 0.1)
    assert amps[39] == pytest.approx(3.0) and amps[45] == pytest.approx(3.0)
    assert amps[-1] == pytest.approx(1.0)
    assert np.allclose(np.diff(amps[50:60]), -0.2)


@settings(max_examples=60)
@given(name=st.sampled_from(["single-threshold", "dual-threshold"]),
       up=st.floats(0.01, 5.0), down=st.floats(0.01, 5.0), blank=st.floats(0.0, 3.0),
       onset=st.floats(0.0, 1.0), term=st.floats(0.0, 1.0),
       seq=st.lists(st.tuples(st.one_of(st.floats(0, 100), st.just(math.nan)),
                              st.integers(0, 400_000_000), st.booleans()),
                    min_size=2, max_size=80))
def test_ramps_and_blanking_are_properties_of_step(name, up, down, blank, onset, term, seq):
    """Invariant 19: between valid steps the amplitude moves no faster than its ramps, no
    rise starts within blanking_s of a fall, target changes are blanking_s apart; an invalid
    output gives off (the fallback, exempt from the ramp)."""
    keys = dict(onset_s=onset, termination_s=term, ramp_up_ma_per_s=up,
                ramp_down_ma_per_s=down, blanking_s=blank)
    if name == "single-threshold":
        keys["threshold"] = 50.0
    else:
        keys["thresholds"] = [30.0, 70.0]
    p = _policy(name, **keys)
    t, prev, last_fall = 0, 0.0, -10**18
    changes: list[int] = []
    prev_target = p._target
    for pct, dt, valid in seq:
        t += dt
        req = p.step(_out(pct, valid), t, 0)
        a = _amp(req)
        if not valid or math.isnan(pct):
            assert req.is_off
            if prev > 0.0:
                last_fall = t
            prev = 0.0
            continue
        step_s = min(dt, NS) / NS
        assert a - prev <= up * step_s + 1e-9
        assert prev - a <= down * step_s + 1e-9
        if a > prev + 1e-12:
            assert t - last_fall >= blank * NS - 1, "a rise inside the blanking period"
        if a < prev - 1e-12:
            last_fall = t
        if p._target != prev_target:
            changes.append(t)
            prev_target = p._target
        prev = a
    assert all(b - a >= blank * NS - 1 for a, b in zip(changes, changes[1:], strict=False))


@pytest.mark.parametrize("keys, match", [
    ({"thresholds": [60.0, 20.0]}, "control.thresholds"),
    ({"thresholds": [20.0, 60.0], "amplitude_ma": [0.0, 5.0]}, "control.amplitude_ma"),
    ({"thresholds": [20.0, 60.0], "ramp_up_ma_per_s": math.nan}, "control.ramp_up_ma_per_s"),
    ({"thresholds": [20.0, 60.0], "ramp_up_ma_per_s": 1e308}, "control.ramp_up_ma_per_s"),
    ({"thresholds": [20.0, 60.0], "output": "velocity"}, "control.output"),
])
def test_bad_keys_are_one_line(keys, match) -> None:
    with pytest.raises(ConfigError, match=match) as info:
        _policy("dual-threshold", **keys)
    assert "\n" not in str(info.value)


def test_limits_refuse_a_ramp_faster_than_the_hard_limit_and_short_blanking() -> None:
    cls = type(_policy("dual-threshold", thresholds=[20.0, 60.0]))
    ok = cls.check_config(ControlConfig("dual-threshold", {"thresholds": [1.0, 2.0],
                                                           "ramp_up_ma_per_s": 1.5,
                                                           "blanking_s": 2.0}), PROGRAMS)
    cls.check_limits(ok, SafetyLimits(ramp_up_max_ma_per_s=2.0, increase_blanking_s=1.0))
    with pytest.raises(ConfigError, match="ramp_up_ma_per_s = 1.5 is faster"):
        cls.check_limits(ok, SafetyLimits(ramp_up_max_ma_per_s=1.0))
    with pytest.raises(ConfigError, match="blanking_s = 2 is shorter"):
        cls.check_limits(ok, SafetyLimits(increase_blanking_s=5.0))
