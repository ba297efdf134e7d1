"""A stateful fuzz of the device: commands (sane and adversarial), link attacks, silence,
STOP, ARM, broken leads and reboots, with the device's safety invariants checked after every
step (SAFETY.md 1-6, 11, 12, 13, 14)."""

from __future__ import annotations

import numpy as np
from fw_helpers import OTHER_KEYS, SPF, Host, make_device, stim
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from neuroloop.link.codec import Direction
from neuroloop.link.messages import NO_SAMPLE, Arm, DeviceState, GetInfo, Heartbeat, Stop
from neuroloop.safety.validate import validate

_sane = st.floats(-1.0, 1.0)
amps_st = st.dictionaries(st.integers(0, 15),
                          st.one_of(_sane, _sane, _sane, st.floats(-6.0, 6.0),
                                    st.sampled_from([-30.0, 1e9, -0.0])),
                          min_size=1, max_size=3)


class DeviceMachine(RuleBasedStateMachine):
    @initialize(battery=st.sampled_from([80.0, 80.0, 4.0]))
    def boot(self, battery: float) -> None:
        self.dev = make_device(battery_pct=battery)
        self.host = Host(self.dev)
        self.evil = Host(self.dev, keys=OTHER_KEYS)
        self.t = 0
        self.sent: list[bytes] = []
        self.host.send(GetInfo(), 0)
        self.zeros = np.zeros((SPF, 4), dtype=np.int16)
        self.time_passes(150, True)
        self.arm()

    def _frames_due(self) -> None:
        d = self.dev
        while d.streaming and self.t >= d.frame_due_us(d.frame_counter):
            d.data_frame(self.zeros, None, int(d.frame_due_us(d.frame_counter)))

    def _send(self, msg) -> None:
        f = self.host.frame(msg)
        self.sent.append(f)
        self.host.decode(self.dev.receive(f, self.t))

    @rule(amps=amps_st, pw=st.sampled_from([60.0, 300.0, 300.0, 900.0, 5000.0]),
          f=st.sampled_from([20.0, 40.0, 40.0, 130.0, 3000.0]),
          use_case=st.sampled_from([True, True, False]))
    def command(self, amps, pw, f, use_case) -> None:
        newest = self.dev.newest_sample
        s = stim(amps, hop=newest if newest >= 0 else NO_SAMPLE, pw=pw, f=f,
                 case=None if use_case else 0.0)
        self._send(s)

    @rule(c=st.integers(0, 15), frac=st.floats(0.0, 1.0))
    def ramp_up(self, c: int, frac: float) -> None:
        """A sane request the device should mostly accept: within the slew allowance."""
        d = self.dev
        newest = d.newest_sample
        now = d.output.amplitude_ma[c] if d.output.amplitude_ma[c] < 0 else 0.0
        target = now - frac * 0.9
        a = np.zeros(16)
        a[c] = max(target, -1.2)
        self._send(stim({c: a[c]}, hop=newest if newest >= 0 else NO_SAMPLE))

    @rule(ms=st.integers(1, 400), heartbeat=st.sampled_from([True, True, True, False]))
    def time_passes(self, ms: int, heartbeat: bool) -> None:
        end = self.t + ms * 1000
        while self.t < end:
            self.t = min(end, self.t + 5000)
            if heartbeat:
                self._send(Heartbeat(0, 0))
            self._frames_due()
            self.host.decode(self.dev.tick(self.t))

    @rule()
    def arm(self) -> None:
        self._send(Arm())

    @rule()
    def stop(self) -> None:
        self.host.decode(self.dev.receive(self.host.frame(Stop(), seq=0), self.t))
        assert self.dev.output.is_off
        assert self.dev.state in (DeviceState.DISARMED, DeviceState.FAULT)

    @precondition(lambda self: self.sent)
    @rule(data=st.data(), kind=st.sampled_from(["replay", "flip", "truncate", "wrong_key",
                                                 "reflect", "session"]))
    def attack(self, data: st.DataObject, kind: str) -> None:
        before = self.dev.snapshot()
        if kind == "replay":
            frame = data.draw(st.sampled_from(self.sent))
        elif kind in ("flip", "truncate"):
            f = bytearray(data.draw(st.sampled_from(self.sent)))
            i = data.draw(st.integers(0, len(f) - 2))
            if kind == "flip":
                f[i] ^= 1 << data.draw(st.integers(0, 7))
            else:
                f = f[:i] + b"\x00"
            frame = bytes(f)
        elif kind == "wrong_key":
            self.evil.seq = self.host.seq + 1000
            frame = self.evil.frame(stim({3: -1.0}, hop=NO_SAMPLE))
        elif kind == "reflect":
            frame = self.host.frame(Heartbeat(1, 1), direction=Direction.D2H)
        else:
            frame = self.host.frame(Arm(), session=self.dev.session ^ 0x5A5A)
        self.host.decode(self.dev.receive(frame, self.t))
        after = self.dev.snapshot()
        if kind == "flip" and after != before:
            # a flip inside the COBS code bytes can cut a frame short but never forge one:
            # the only accepted "mutation" is one the CRC and tag verify, i.e. none
            raise AssertionError(f"a bit-flipped frame changed the device: {before} {after}")
        assert after == before, kind

    @rule(c=st.integers(0, 15))
    def lead_breaks(self, c: int) -> None:
        self.dev.impedance.open_contact(c)
        self.host.decode(self.dev.tick(self.t))  # the next housekeeping tick notices it

    @rule()
    def reboot(self) -> None:
        self.dev.reboot(self.t)
        self.host.send(GetInfo(), self.t)

    # ---------------------------------------------------------------- invariants
    @invariant()
    def every_delivered_train_passes_the_oracle(self) -> None:
        d = self.dev
        for tr in d.log:
            if not tr.ramp:
                assert validate(tr.command(), d.cfg.limits, d.cfg.array) == [], tr

    @invariant()
    def output_only_when_stimulating_or_ramping(self) -> None:
        d = self.dev
        if d.state in (DeviceState.DISARMED, DeviceState.ARMED, DeviceState.FAULT):
            assert d.output.is_off, d.state
        assert np.all(np.isfinite(d.output.amplitude_ma))

    @invariant()
    def ramp_never_rises_and_ends(self) -> None:
        d = self.dev
        if d.state == DeviceState.WATCHDOG and not d.output.is_off:
            ramp = d.log[-1]
            assert ramp.ramp and ramp.stop_us is None
            assert np.all(np.abs(d.output.amplitude_ma) <= np.abs(ramp.amplitude_ma) + 1e-12)
            assert self.t - ramp.start_us <= d.cfg.watchdog_ramp_ms * 1000 + 5000

    @invariant()
    def watchdog_bounds_silence(self) -> None:
        d = self.dev
        if d.state in (DeviceState.ARMED, DeviceState.STIMULATING) and \
                d._last_host_us is not None:
            assert self.t - d._last_host_us <= d.cfg.watchdog_ms * 1000 + 5000

    @invariant()
    def open_contacts_are_never_driven(self) -> None:
        d = self.dev
        assert not np.any(d.impedance.open & (d.output.amplitude_ma != 0.0))


TestDeviceMachine = DeviceMachine.TestCase
