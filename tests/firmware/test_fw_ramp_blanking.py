"""Invariant 19 on the device's own clock: the summed cathodic current rises no faster than
``ramp_up_max_ma_per_s`` and not within ``increase_blanking_s`` of a fall; the firmware NAKs
instead of clamping (second line of defence, independent of the supervisor)."""

from __future__ import annotations

from fw_helpers import Host, make_device, run_until, start_stream, stim

from neuroloop.link.messages import Ack, Arm, Nak, NakReason
from neuroloop.safety.limits import SafetyLimits

HOP1 = 117


def _armed(limits: SafetyLimits):
    dev = make_device(limits)
    host = Host(dev)
    start_stream(dev, host, 0)
    run_until(dev, host, 110_000)
    assert isinstance(host.answer(Arm(), 110_000), Ack)
    run_until(dev, host, 1_105_000, start_us=112_000, heartbeat_every_us=50_000)
    return dev, host


def test_ramp_limit_on_the_summed_current() -> None:
    # slew 10 mA/s per contact would allow 9.9 mA in ~1 s; the ramp limit allows 0.5 mA/s of
    # summed current (the credit is capped at the device's slew_dt_cap_s)
    dev, host = _armed(SafetyLimits(ramp_up_max_ma_per_s=0.5))
    nak = host.answer(stim({4: -0.3, 5: -0.3}, hop=HOP1), 1_105_000)
    assert isinstance(nak, Nak) and nak.reason == NakReason.LIMIT and "ramp_rate" in nak.text
    ack = host.answer(stim({4: -0.02, 5: -0.02}, hop=HOP1), 1_105_000)
    assert isinstance(ack, Ack)


def test_no_rise_inside_the_blanking_period_after_a_fall() -> None:
    dev, host = _armed(SafetyLimits(increase_blanking_s=2.0))
    assert isinstance(host.answer(stim({4: -0.5}, hop=HOP1), 1_105_000), Ack)
    assert isinstance(host.answer(stim({4: -0.2}, hop=HOP1), 1_106_000), Ack)  # a fall
    run_until(dev, host, 1_600_000, start_us=1_106_000, heartbeat_every_us=50_000)
    nak = host.answer(stim({4: -0.3}, hop=HOP1 + 59), 1_600_000)
    assert isinstance(nak, Nak) and "blanking" in nak.text
    # falling further is always allowed; rising again after 2 s of device time is too
    assert isinstance(host.answer(stim({4: -0.1}, hop=HOP1 + 59), 1_601_000), Ack)
    run_until(dev, host, 3_700_000, start_us=1_601_000, heartbeat_every_us=50_000)
    assert isinstance(host.answer(stim({4: -0.3}, hop=HOP1 + 118), 3_700_000), Ack)
