"""The firmware's own checks, byte by byte, on the pure device logic (no I/O, no clock)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from fw_helpers import (
    FS,
    OTHER_KEYS,
    TEST_KEYS,
    Host,
    make_device,
    run_until,
    start_stream,
    stim,
)

from firmware_sim.device import FirmwareDevice
from neuroloop.link.codec import Direction, encode_body
from neuroloop.link.framing import cobs_encode
from neuroloop.link.messages import (
    Ack,
    Arm,
    DeviceState,
    FaultFlag,
    GetInfo,
    Heartbeat,
    Info,
    MsgType,
    Nak,
    NakReason,
    Status,
    Stop,
)
from neuroloop.safety.limits import SafetyLimits
from neuroloop.safety.validate import validate

#: Last sample of the second frame (acquired at 118 / 586 s = 201.4 ms): the first hop whose
#: samples were all acquired after the ARM at 110 ms.
HOP1 = 117


def armed_device(**kw) -> tuple[FirmwareDevice, Host]:
    """Streaming since t = 0, armed at 110 ms, clock at 205 ms."""
    dev = make_device(**kw)
    host = Host(dev)
    start_stream(dev, host, 0)
    run_until(dev, host, 110_000)  # first frame (samples 0..58) acquired at 100.68 ms
    ack = host.answer(Arm(), 110_000)
    assert isinstance(ack, Ack) and dev.state in (DeviceState.ARMED, DeviceState.FAULT)
    run_until(dev, host, 205_000, start_us=112_000, heartbeat_every_us=50_000)
    return dev, host


def stimulating_device() -> tuple[FirmwareDevice, Host]:
    dev, host = armed_device()
    ack = host.answer(stim({2: -0.8}, hop=HOP1), 205_000)
    assert isinstance(ack, Ack), ack
    assert dev.state == DeviceState.STIMULATING
    return dev, host


# ----------------------------------------------------------------------------- basics
def test_get_info_starts_the_stream_and_describes_it() -> None:
    dev = make_device()
    host = Host(dev)
    [info] = host.send(GetInfo(), 1000)
    assert isinstance(info, Info)
    assert info.sampling_rate_hz == FS and info.samples_per_frame == 59
    assert info.n_contacts == 16 and info.watchdog_ms == 300
    assert dev.streaming and dev.stream_t0_us == 1000


def test_info_reports_the_devices_electrode_array() -> None:
    from neuroloop.stimulation.electrodes import electrode_array

    for name in ("paddle-5-6-5", "dbs-3389", "rns-strip-depth"):
        array = electrode_array(name)
        dev = make_device() if name == "paddle-5-6-5" else make_device(array=array)
        [info] = Host(dev).send(GetInfo(), 1000)
        assert isinstance(info, Info)
        assert info.array_name == name and info.n_contacts == array.n_contacts
        np.testing.assert_array_equal(info.area_cm2, array.area_cm2)
        assert array.mismatch(info.array_name, info.area_cm2) is None


def test_stim_is_applied_acked_with_time_and_latency_and_logged() -> None:
    dev, host = armed_device()
    ack = host.answer(stim({2: -0.9}, hop=HOP1), 206_000)
    assert isinstance(ack, Ack) and ack.acked_type == MsgType.STIM
    assert ack.applied_time_us == 206_000
    # sample 117 was acquired at 118 / 586 s = 201 365.2 us after the stream started
    assert ack.latency_us == int(206_000 - 118 * 1e6 / FS)
    assert dev.latencies_us == [ack.latency_us]
    assert dev.output.amplitude_ma[2] == -0.9 and dev.output.case_ma == 0.9
    [train] = dev.log
    assert train.start_us == 206_000 and train.stop_us is None and train.contacts == (2,)
    host.answer(stim({}, hop=HOP1), 213_000)  # an off command ends it
    assert train.stop_us == 213_000 and train.end_reason == "off"
    assert dev.state == DeviceState.ARMED


def test_off_commands_are_always_accepted_and_deliver_nothing() -> None:
    dev = make_device()
    host = Host(dev)
    start_stream(dev, host)
    ack = host.answer(stim({}, hop=2**64 - 1), 10)
    assert isinstance(ack, Ack) and dev.log == [] and dev.state == DeviceState.DISARMED


def test_stim_before_arm_is_refused() -> None:
    dev = make_device()
    host = Host(dev)
    start_stream(dev, host)
    nak = host.answer(stim({2: -0.5}, hop=2**64 - 1), 10)
    assert isinstance(nak, Nak) and nak.reason == NakReason.NOT_ARMED
    assert dev.output.is_off and dev.log == []


# ----------------------------------------------------------------------------- STOP
@pytest.mark.parametrize("state", ["disarmed", "armed", "stimulating", "watchdog"])
def test_stop_is_always_obeyed_without_tag_session_or_fresh_sequence(state: str) -> None:
    if state == "disarmed":
        dev, host = make_device(), None
        host = Host(dev)
    elif state == "armed":
        dev, host = armed_device()
    else:
        dev, host = stimulating_device()
        if state == "watchdog":
            run_until(dev, host, 600_000, start_us=206_000)
            assert dev.state == DeviceState.WATCHDOG
    # seq 0 (never "new"), a foreign session: STOP still works
    ack = host.answer(Stop(), 700_000, seq=0, session=0xDEAD)
    assert isinstance(ack, Ack) and ack.acked_type == MsgType.STOP
    assert dev.output.is_off and dev.state == DeviceState.DISARMED
    assert all(t.stop_us is not None for t in dev.log)
    # and it did not move the sequence number: the next tagged frame is judged as before
    assert dev.last_h2d_seq == host.seq


def test_stop_leaves_a_fault_latched() -> None:
    dev = make_device(battery_pct=2.0)
    host = Host(dev)
    assert dev.state == DeviceState.FAULT
    assert isinstance(host.answer(Stop(), 206_000), Ack)
    assert dev.state == DeviceState.FAULT


# ----------------------------------------------------------------------------- attacks
def test_wrong_key_is_refused_with_auth_and_changes_nothing() -> None:
    dev, host = armed_device()
    before = dev.snapshot()
    evil = Host(dev, keys=OTHER_KEYS)
    evil.seq = 100
    for msg in (stim({2: -0.5}), Arm(), Heartbeat(0, 0)):
        nak = evil.answer(msg, 206_000)
        assert isinstance(nak, Nak) and nak.reason == NakReason.AUTH
    assert dev.snapshot() == before
    assert dev.parser.auth_failures == 3


def test_replayed_and_reordered_frames_are_refused() -> None:
    dev, host = armed_device()
    f1 = host.frame(stim({2: -0.5}, hop=HOP1))
    f2 = host.frame(stim({2: -0.9}, hop=HOP1))
    assert isinstance(host.decode(dev.receive(f2, 206_000))[0], Ack)
    snap = dev.snapshot()
    for f in (f1, f2):  # f1 reordered (older seq), f2 replayed
        [nak] = host.decode(dev.receive(f, 207_000))
        assert isinstance(nak, Nak) and nak.reason == NakReason.REPLAY
    assert dev.snapshot() == snap


def test_frames_of_another_session_are_refused() -> None:
    dev, host = armed_device()
    snap = dev.snapshot()
    nak = host.answer(stim({2: -0.5}, hop=HOP1), 206_000, session=dev.session ^ 1)
    assert isinstance(nak, Nak) and nak.reason == NakReason.SESSION
    assert dev.snapshot() == snap


def test_truncated_bitflipped_and_wrong_direction_frames_are_dropped_silently() -> None:
    dev, host = armed_device()
    snap = dev.snapshot()
    good = host.frame(stim({2: -0.5}))
    body = bytearray(encode_body(stim({2: -0.5}), direction=Direction.H2D, seq=host.seq + 1,
                                 session=dev.session, timestamp_us=0, key=TEST_KEYS.h2d))
    flipped = bytearray(body)
    flipped[40] ^= 0x04
    attacks = [
        good[: len(good) // 2] + b"\x00",                          # truncated
        cobs_encode(bytes(flipped)) + b"\x00",                     # bit flip (CRC)
        cobs_encode(bytes(body[:-10])) + b"\x00",                  # truncated body
        marked_d2h(body),                                          # a host frame, marked D2H
        host.frame(Heartbeat(0, 0), direction=Direction.D2H),      # a device frame echoed
    ]
    for a in attacks:
        assert dev.receive(a, 206_000) == []
    assert dev.snapshot() == snap
    assert dev.parser.crc_errors >= 1 and dev.parser.wrong_direction == 2


def marked_d2h(body: bytearray) -> bytes:
    """``body`` with the direction bit set and tag and CRC recomputed with the h2d key."""
    import struct

    from neuroloop.link.auth import compute_tag
    from neuroloop.link.crc import crc32

    b = bytearray(body[:-20])
    b[2] |= 0x01
    b += compute_tag(TEST_KEYS.h2d, b)
    b += struct.pack("<I", crc32(bytes(b)))
    return cobs_encode(bytes(b)) + b"\x00"


# ----------------------------------------------------------------------------- own checks
def test_malformed_commands() -> None:
    dev, host = armed_device()
    cases = [
        stim({2: -0.5}, n=8),                       # contact count
        stim({2: math.nan}),                        # NaN
        stim({2: -0.5}, pw=math.inf),               # infinity
        stim({2: -0.5}, hop=10_000),                # a sample not acquired yet
    ]
    bad_wave = stim({2: -0.5})
    bad_wave.waveform = 1
    cases.append(bad_wave)
    for s in cases:
        nak = host.answer(s, 206_000)
        assert isinstance(nak, Nak) and nak.reason == NakReason.MALFORMED, (s, nak)
    assert dev.log == [] and dev.output.is_off


def test_hardware_ceilings_refuse_instead_of_clamping() -> None:
    dev, host = armed_device()
    for s in (stim({2: -0.5}, pw=1500.0), stim({2: -0.5}, f=2000.0),
              stim({2: -0.5}, pw=600.0, f=900.0)):  # pulses would overlap
        nak = host.answer(s, 206_000)
        assert isinstance(nak, Nak) and nak.reason == NakReason.HW_CEILING, nak
    dev.impedance.measured_ohm[:] = 1400.0
    nak = host.answer(stim({3: -11.0}), 206_000)  # 11 mA x 1400 ohm = 15.4 V > 15 V
    assert isinstance(nak, Nak) and nak.reason == NakReason.HW_CEILING and nak.detail == 3
    assert dev.log == []


def test_validate_oracle_refuses_shannon_and_slew() -> None:
    dev, host = armed_device()
    # 5 mA x 300 us = 1.5 uC > sqrt(10^1.5 x 0.06) = 1.38 uC on a 0.06 cm^2 contact
    nak = host.answer(stim({4: -5.0}, hop=HOP1), 206_000)
    assert isinstance(nak, Nak) and nak.reason == NakReason.LIMIT and nak.detail == 4
    assert "shannon" in nak.text
    # slew: 10 mA/s on the device's clock; 96 ms after the ARM allows 0.96 mA (the hop's
    # 100.7 ms of samples earn nothing: the device trusts its own clock)
    nak = host.answer(stim({4: -1.0}, hop=HOP1), 206_000)
    assert isinstance(nak, Nak) and "slew" in nak.text
    ack = host.answer(stim({4: -0.95}, hop=HOP1), 206_000)
    assert isinstance(ack, Ack)
    # unused time carries over: 1 ms left + 97 ms = 0.98 mA more
    run_until(dev, host, 303_000, start_us=207_000)
    nak = host.answer(stim({4: -1.94}, hop=HOP1 + 59), 303_000)
    assert isinstance(nak, Nak) and "slew" in nak.text
    ack = host.answer(stim({4: -1.93}, hop=HOP1 + 59), 303_000)
    assert isinstance(ack, Ack)
    assert dev.output.amplitude_ma[4] == -1.93


def test_every_refusal_is_counted_and_explained() -> None:
    dev, host = armed_device()
    host.answer(stim({4: -5.0}), 206_000)
    host.answer(stim({4: -0.5}, pw=5000.0), 206_000)
    assert dev.naks_by_reason == {"LIMIT": 1, "HW_CEILING": 1}
    assert dev.counters["naks_sent"] == 2


# ----------------------------------------------------------------------------- watchdog
def test_watchdog_ramps_to_zero_and_stays_there_until_rearmed() -> None:
    dev, host = stimulating_device()  # last accepted frame at t = 205 ms
    # heartbeats keep it alive for a second
    run_until(dev, host, 1_206_000, start_us=206_000, heartbeat_every_us=100_000)
    assert dev.state == DeviceState.STIMULATING
    last = 1_206_000  # last heartbeat
    # silence: trips once more than 300 ms passed, then ramps down over 200 ms
    run_until(dev, host, last + 300_000, start_us=last + 2_000)
    assert dev.state == DeviceState.STIMULATING
    run_until(dev, host, last + 304_000, start_us=last + 302_000)
    assert dev.state == DeviceState.WATCHDOG and dev.fault_flags & FaultFlag.WATCHDOG_TRIPPED
    mid = dev.output.amplitude_ma[2]
    assert -0.8 < mid < 0
    run_until(dev, host, last + 404_000, start_us=last + 306_000)
    assert -0.8 / 2 - 0.05 < dev.output.amplitude_ma[2] < -0.8 / 2 + 0.05  # half-way
    run_until(dev, host, last + 700_000, start_us=last + 406_000)
    assert dev.output.is_off
    ramp = dev.log[-1]
    assert ramp.ramp and ramp.end_reason == "ramp_done"
    assert dev.log[-2].end_reason == "watchdog"
    # stays at zero: STIM refused, heartbeats do not re-arm
    host.send(Heartbeat(0, 0), last + 710_000)
    nak = host.answer(stim({2: -0.8}, hop=2**64 - 1), last + 720_000)
    assert isinstance(nak, Nak) and nak.reason == NakReason.WATCHDOG
    assert dev.output.is_off
    # ARM re-arms from zero; the slew limit applies again
    assert isinstance(host.answer(Arm(), last + 800_000), Ack)
    assert dev.state == DeviceState.ARMED and not dev.fault_flags & FaultFlag.WATCHDOG_TRIPPED
    nak = host.answer(stim({2: -0.8}, hop=2**64 - 1), last + 801_000)
    assert isinstance(nak, Nak) and "slew" in nak.text


def test_watchdog_idle_while_disarmed() -> None:
    dev = make_device()
    host = Host(dev)
    run_until(dev, host, 2_000_000)
    assert dev.state == DeviceState.DISARMED and dev.counters["watchdog_trips"] == 0


# ----------------------------------------------------------------------------- battery
def test_low_battery_cuts_output_and_refuses_arm_until_recharged() -> None:
    dev, host = stimulating_device()
    dev.battery.soc_pct = 2.0
    dev.battery.auto_charge = False
    replies = run_until(dev, host, 1_300_000, start_us=206_000, heartbeat_every_us=100_000)
    assert dev.state == DeviceState.FAULT and dev.output.is_off
    assert dev.log[-1].end_reason == "battery"
    assert any(isinstance(m, Status) and m.fault_flags & FaultFlag.BATTERY_LOW
               for m in replies)
    nak = host.answer(Arm(), 1_400_000)
    assert isinstance(nak, Nak) and nak.reason == NakReason.FAULT
    dev.battery.charging = True  # the patient puts the coil on
    dev.battery.soc_pct = 10.5
    run_until(dev, host, 1_500_000, start_us=1_402_000)
    assert dev.state == DeviceState.DISARMED
    assert isinstance(host.answer(Arm(), 1_600_000), Ack)


def test_battery_drains_faster_while_stimulating_and_charges_on_the_coil() -> None:
    from firmware_sim.hardware import Battery

    b = Battery(soc_pct=50.0, auto_charge=False)
    b.step(3600.0, 0.0)
    idle = 50.0 - b.soc_pct
    b2 = Battery(soc_pct=50.0, auto_charge=False)
    b2.step(3600.0, Battery.stimulation_power_mw(np.full(4, 5.0), np.full(4, 1000.0),
                                                 300.0, 1000.0))
    assert 50.0 - b2.soc_pct > idle > 0
    b3 = Battery(soc_pct=50.0, auto_charge=False)
    b3.charging = True
    b3.step(600.0, 0.0)
    assert b3.soc_pct > 50.0


# ----------------------------------------------------------------------------- impedance
def test_open_contact_is_never_driven() -> None:
    dev, host = stimulating_device()  # driving contact 2
    dev.impedance.open_contact(2)
    run_until(dev, host, 206_000, start_us=206_000)
    assert dev.output.is_off and dev.log[-1].end_reason == "impedance"
    assert dev.fault_flags & FaultFlag.IMPEDANCE
    nak = host.answer(stim({2: -0.5}, hop=2**64 - 1), 210_000)
    assert isinstance(nak, Nak) and nak.reason in (NakReason.LIMIT, NakReason.HW_CEILING)
    assert nak.detail == 2
    run_until(dev, host, 310_000, start_us=212_000)
    assert isinstance(host.answer(stim({5: -0.5}, hop=HOP1 + 59), 310_000), Ack)


# ----------------------------------------------------------------------------- dose
def test_dose_budget_is_a_second_line() -> None:
    limits = SafetyLimits(dose_budget_uc=5.0, dose_window_s=60.0)
    dev, host = armed_device(limits=limits)
    # 1 mA x 300 us x 40 Hz = 12 uC/s: the 5 uC budget is spent after about 0.42 s
    assert isinstance(host.answer(stim({2: -1.0}, hop=HOP1), 300_000), Ack)
    run_until(dev, host, 1_000_000, start_us=302_000, heartbeat_every_us=100_000)
    assert dev.output.is_off and dev.log[-1].end_reason == "dose"
    stopped = dev.log[-1].stop_us
    assert stopped is not None and 700_000 <= stopped <= 760_000
    nak = host.answer(stim({2: -1.0}, hop=2**64 - 1), 1_000_000)
    assert isinstance(nak, Nak) and "dose" in nak.text


# ----------------------------------------------------------------------------- reboot
def test_reboot_starts_a_new_session_and_old_frames_die() -> None:
    dev, host = stimulating_device()
    old = dev.session
    held = host.frame(stim({2: -0.5}, hop=2**64 - 1))
    dev.reboot(300_000)
    assert dev.session != old and dev.state == DeviceState.DISARMED and dev.output.is_off
    assert dev.log[-1].end_reason == "reboot" and dev.fault_flags & FaultFlag.REBOOTED
    [nak] = host.decode(dev.receive(held, 310_000))
    assert isinstance(nak, Nak) and nak.reason == NakReason.SESSION
    assert isinstance(host.answer(Arm(), 320_000), Ack)  # same host, the new session
    assert not dev.fault_flags & FaultFlag.REBOOTED


# ----------------------------------------------------------------------------- periodic
def test_periodic_heartbeat_and_status() -> None:
    dev = make_device()
    host = Host(dev)
    msgs = run_until(dev, host, 2_050_000)
    hb = [m for m in msgs if isinstance(m, Heartbeat)]
    st = [m for m in msgs if isinstance(m, Status)]
    assert len(hb) == 21 and len(st) == 3
    assert st[0].impedance_ohm.shape == (16,) and np.all(np.isfinite(st[0].impedance_ohm))
    assert hb[0].state == DeviceState.DISARMED


def test_applied_trains_pass_the_oracle() -> None:
    dev, host = armed_device()
    rng = np.random.default_rng(5)
    t = 206_000
    hop = HOP1
    for _ in range(200):
        amps = {int(c): float(v) for c, v in zip(rng.integers(0, 16, 2),
                                                 rng.normal(0, 3, 2), strict=True)}
        s = stim(amps, hop=hop, pw=float(rng.choice([100.0, 300.0, 1200.0])),
                 f=float(rng.choice([20.0, 40.0, 5000.0])))
        run_until(dev, host, t, start_us=t - 100_000, heartbeat_every_us=50_000)
        host.answer(s, t)
        t += 101_000
        hop += 59
    trains = [tr for tr in dev.log if not tr.ramp]
    assert trains, "some commands should have been accepted"
    for tr in trains:
        assert validate(tr.command(), dev.cfg.limits, dev.cfg.array) == []
