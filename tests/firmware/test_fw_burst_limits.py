"""firmware_sim's own line of defence for invariant 20: on its own clock, no pulse train lasts
longer than ``burst_max_s`` and the on-time in the rolling day never passes
``daily_on_max_s``, whatever the host sends and however late it sends the OFF."""

from __future__ import annotations

from fw_helpers import Host, make_device, run_until, start_stream, stim
from hypothesis import given, settings
from hypothesis import strategies as st

from firmware_sim.device import DeviceState
from neuroloop.link.messages import Ack, Arm
from neuroloop.safety.limits import SafetyLimits

TICK_US = 2000
#: Last sample of the second frame, acquired after the ARM at 110 ms (as test_fw_device).
HOP1 = 117


def _armed(limits: SafetyLimits):
    dev = make_device(limits)
    host = Host(dev)
    start_stream(dev, host, 0)
    run_until(dev, host, 110_000)
    assert isinstance(host.answer(Arm(), 110_000), Ack)
    run_until(dev, host, 205_000, start_us=112_000, heartbeat_every_us=50_000)
    return dev, host


def _trains(dev):
    return [(t.start_us, t.stop_us, t.end_reason) for t in dev.log if not t.ramp]


def test_a_train_held_too_long_is_cut_at_the_burst_limit():
    dev, host = _armed(SafetyLimits(burst_max_s=0.3))
    assert isinstance(host.answer(stim({2: -0.5}, hop=HOP1), 205_000), Ack)
    run_until(dev, host, 1_000_000, start_us=207_000, heartbeat_every_us=50_000)
    (start, stop, reason), = _trains(dev)
    assert reason == "burst"
    assert 0.3e6 <= stop - start <= 0.3e6 + TICK_US
    assert dev.state == DeviceState.ARMED and dev.output.is_off


@settings(max_examples=25, deadline=None)
@given(bursts=st.lists(st.tuples(st.integers(20, 600), st.integers(10, 500)), min_size=1,
                       max_size=8),
       burst_max=st.sampled_from([0.1, 0.25, 1.0]), daily=st.sampled_from([0.2, 0.6, 5.0]))
def test_invariant_20_on_the_device_clock(bursts, burst_max, daily):
    dev, host = _armed(SafetyLimits(burst_max_s=burst_max, daily_on_max_s=daily))
    t = 205_000
    for on_ms, off_ms in bursts:  # the host asks for on_ms, then sends OFF
        host.send(stim({2: -0.5}, hop=HOP1), t)
        end = t + on_ms * 1000
        run_until(dev, host, end, start_us=t + TICK_US, step_us=TICK_US,
                  heartbeat_every_us=50_000)
        host.send(stim({}, hop=HOP1), end + TICK_US)
        t = end + TICK_US + off_ms * 1000
        run_until(dev, host, t, start_us=end + 2 * TICK_US, step_us=TICK_US,
                  heartbeat_every_us=50_000)
    total = 0.0
    for start, stop, _reason in _trains(dev):
        assert stop is not None
        dur = (stop - start) / 1e6
        assert dur <= burst_max + TICK_US / 1e6 + 1e-9
        total += dur
    assert total <= daily + TICK_US / 1e6 + 1e-9  # the whole test is well inside one day
