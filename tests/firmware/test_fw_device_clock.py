"""The device trusts its own clock (SAFETY.md invariant 21 and rule "The device trusts its own
clock"): whatever an authenticated host puts in a STIM, the applied output never rises faster
than the device's own slew limit measured on the device's own clock.

The bound, derived from ``FirmwareDevice`` (``_slew_credit_s`` / ``_spend_slew``): slew time is
a bucket of device microseconds that fills with device time up to ``cap = slew_dt_cap_s``, is
empty at boot and at every accepted ARM, and every applied command takes out the time its
largest rise of |I| needs at ``r = slew_up_ma_per_s`` (rounded up to whole microseconds,
never below empty). ``validate`` admits a rise up to ``r * credit * (1 + 1e-9) + 1e-12`` mA.
Hence, for every contact c and device times t1 <= t2, with n the number of STIMs applied in
(t1, t2]::

    |I_c(t2)| - |I_c(t1)| <= r * (t2 - t1 + cap) + n * (r * cap * 1e-9 + 1e-12)

(``cap`` is the "one cap step": the bucket may be full at t1), and, counted from the last
accepted ARM at t_A (the bucket is empty there and the output zero)::

    |I_c(t2)| <= r * (t2 - t_A) + n * (r * cap * 1e-9 + 1e-12)

The test takes n as every STIM applied so far (an upper bound) and adds 1e-12 mA for its own
float subtraction. The stateful test checks both bounds after every device call, for every
pair of moments, while an attacker who holds the valid h2d key chooses every field of every
STIM (amplitudes, pulse width, frequency, case current, ``hop_last_sample`` old/new/
NO_SAMPLE/huge, program, cycle, sequence number, header timestamp), ARMs, HEARTBEATs, STOPs
and the device time between frames (r and cap are drawn too).
"""

from __future__ import annotations

import numpy as np
from fw_helpers import SPF, TEST_KEYS, Host, make_device, run_until, start_stream, stim
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from firmware_sim.device import FirmwareDevice
from neuroloop.link.codec import Direction, encode_frame
from neuroloop.link.messages import NO_SAMPLE, Ack, Arm, GetInfo, Heartbeat, Message, Stim, Stop
from neuroloop.safety.limits import SafetyLimits

#: validate()'s tolerance (neuroloop.safety.validate._RTOL, _ATOL).
RTOL, ATOL = 1e-9, 1e-12
#: The test's own float slack when subtracting amplitudes (mA).
EPS = 1e-12


def low_impedance(dev: FirmwareDevice, ohm: float = 800.0) -> None:
    """Every contact at ``ohm`` (drift stays small), so that large currents pass compliance
    and only the slew limit stands between the attacker and the output."""
    dev.impedance.true_ohm[:] = ohm
    dev.impedance.measured_ohm[:] = ohm


# ----------------------------------------------------------------------------- regression
def test_alternating_old_and_new_hops_earn_no_slew_credit() -> None:
    """The reported attack: STIMs claiming an old hop alternate with STIMs claiming the newest
    hop. The old firmware credited the stream time between the two hops (capped at 0.5 s) to
    each increase and took 1.0 -> 3.5 -> 6.0 -> 8.5 -> 11.0 mA within 0.3 s (about 33 mA/s
    against a 10 mA/s limit). On the device's own clock each +2.5 mA step is refused."""
    dev = make_device()
    host = Host(dev)
    low_impedance(dev)
    start_stream(dev, host, 0)
    run_until(dev, host, 1_000_000)  # a second of stream: hop 0 is ~1 s older than the newest
    assert isinstance(host.answer(Arm(), 1_000_000), Ack)
    t = 1_100_000
    run_until(dev, host, t, start_us=1_002_000)
    # 100 ms after the ARM: 1.0 mA is exactly what 10 mA/s allows
    assert isinstance(host.answer(stim({3: -1.0}, hop=dev.newest_sample, pw=60.0), t), Ack)
    accepted = [1.0]
    for target in (3.5, 6.0, 8.5, 11.0):
        t += 37_000
        host.answer(stim({3: -accepted[-1]}, hop=0, pw=60.0), t)  # "old hop": same amplitude
        t += 38_000
        run_until(dev, host, t, start_us=t - 38_000 + 2_000)
        ans = host.answer(stim({3: -target}, hop=dev.newest_sample, pw=60.0), t)
        if isinstance(ans, Ack):
            accepted.append(target)
        else:
            assert "slew" in ans.text, ans.text
    assert accepted == [1.0], accepted
    elapsed_s = (t - 1_000_000) / 1e6
    assert abs(dev.output.amplitude_ma[3]) <= dev.cfg.limits.slew_up_ma_per_s * elapsed_s


def test_claimed_hops_do_not_change_what_is_allowed() -> None:
    """The same command at the same device time is accepted or refused alike whatever hop it
    claims (NO_SAMPLE, an old one, the newest)."""
    outcomes = []
    for hop in (NO_SAMPLE, 0, None):
        dev = make_device()
        host = Host(dev)
        start_stream(dev, host, 0)
        run_until(dev, host, 1_000_000)
        host.answer(Arm(), 1_000_000)
        run_until(dev, host, 1_050_000, start_us=1_002_000)
        h = dev.newest_sample if hop is None else hop
        outcomes.append([type(host.answer(stim({3: -a}, hop=h), 1_050_000)).__name__
                         for a in (0.6, 0.5)])
    assert outcomes == [["Nak", "Ack"]] * 3, outcomes


# ----------------------------------------------------------------------------- stateful
_hop_kinds = st.sampled_from(["newest"] * 4 + ["zero"] * 4 + ["no_sample", "no_sample", "arm",
                              "old", "future", "huge", "max"])
_amp = st.one_of(st.floats(-12.0, 12.0), st.sampled_from([0.05, 0.5, 2.5, 5.0, 7.5, 12.0]))
_seq_kinds = st.sampled_from(["next"] * 80 + ["skip", "same", "zero"] * 2 + ["wrap"])


class AttackerHoldsTheKey(RuleBasedStateMachine):
    """An attacker with the valid key drives the device; the output still rises no faster
    than ``slew_up_ma_per_s`` on the device's clock (bounds in the module docstring)."""

    @initialize(r=st.sampled_from([10.0, 10.0, 2.5, 0.5]),
                cap=st.sampled_from([0.5, 0.5, 0.1, 1.0, 2.0]),
                stream_us=st.sampled_from([0, 150_000, 1_000_000, 3_000_000]))
    def boot(self, r: float, cap: float, stream_us: int) -> None:
        self.dev = make_device(limits=SafetyLimits(slew_up_ma_per_s=r), slew_dt_cap_s=cap)
        low_impedance(self.dev)
        self.r, self.cap = r, cap
        self.seq = 0
        self.t = 0
        self.arm_sample = -1
        self.zeros = np.zeros((SPF, 4), dtype=np.int16)
        self.replies = Host(self.dev)  # decodes (and so checks) the device's answers
        # bound bookkeeping: per contact, min over finished levels of (|I| - r * t_end)
        n = self.dev.n_contacts
        self.level = np.zeros(n)  # |I| now (held since self.level_t)
        self.low = np.full(n, np.inf)
        self.arm_t: float | None = None
        self.applied = 0
        self.arms = 0
        self._to_device(encode_frame(GetInfo(), direction=Direction.H2D, seq=0,
                                     session=self.dev.session, timestamp_us=0, key=None))
        self.time_passes(stream_us, tick=True)  # the stream has been running for a while
        self.control("arm", "next")

    # ------------------------------------------------------------------ plumbing
    def _seq(self, kind: str) -> int:
        if kind == "next":
            self.seq += 1
        elif kind == "skip":
            self.seq += 1000
        elif kind == "wrap":  # the largest u32: every later tagged frame is a replay
            return 0xFFFF_FFFF
        elif kind == "zero":
            return 0
        return self.seq  # "same": a replay of the last number

    def _frame(self, msg: Message, seq_kind: str, timestamp_us: int) -> bytes:
        return encode_frame(msg, direction=Direction.H2D, seq=self._seq(seq_kind),
                            session=self.dev.session, timestamp_us=timestamp_us,
                            key=TEST_KEYS.h2d)

    def _to_device(self, data: bytes) -> None:
        arms_before = self.dev.counters["arms"]
        self.replies.decode(self.dev.receive(data, self.t))
        if self.dev.counters["arms"] != arms_before:
            self.arm_t = self.t / 1e6
            self.arm_sample = self.dev.newest_sample
        self._observe()

    def _observe(self) -> None:
        """Record the output after a device call (it only changes inside one)."""
        now = np.abs(self.dev.output.amplitude_ma)
        t_s = self.t / 1e6
        # the previous level was held until now: finish it
        self.low = np.minimum(self.low, self.level - self.r * t_s)
        self.level = now.copy()
        self.applied = self.dev.counters["stims_applied"]
        self.check_bounds()

    # ------------------------------------------------------------------ rules
    @rule(us=st.one_of(st.sampled_from([0, 1, 10, 1000, 37_000, 100_680, 250_000, 600_000]),
                       st.integers(0, 700_000)),
          tick=st.booleans())
    def time_passes(self, us: int, tick: bool) -> None:
        self.t += us
        d = self.dev
        while d.streaming and self.t >= d.frame_due_us(d.frame_counter):
            d.data_frame(self.zeros, None, int(d.frame_due_us(d.frame_counter)))
        if tick:
            self.replies.decode(d.tick(self.t))
            self._observe()

    @rule(data=st.data(), hop_kind=_hop_kinds, seq_kind=_seq_kinds,
          contacts=st.lists(st.integers(0, 15), min_size=1, max_size=3, unique=True),
          kind=st.sampled_from(["absolute", "relative", "relative", "off"]), pw=st.sampled_from([60.0, 60.0, 100.0, 300.0]),
          f=st.sampled_from([40.0, 130.0]), balanced=st.sampled_from([True, True, False]),
          timestamp_us=st.sampled_from([0, 1, 2**63, 2**64 - 1]),
          program=st.integers(-1, 3), cycle=st.integers(0, 2**32 - 1))
    def stim(self, data: st.DataObject, hop_kind: str, seq_kind: str, contacts: list[int],
             kind: str, pw: float, f: float, balanced: bool, timestamp_us: int,
             program: int, cycle: int) -> None:
        d = self.dev
        newest = d.newest_sample
        hop = {"newest": max(newest, 0), "zero": 0, "no_sample": NO_SAMPLE,
               "arm": max(self.arm_sample, 0), "old": max(newest - 59 * 5, 0),
               "future": newest + 59, "huge": 2**63, "max": 2**64 - 2}[hop_kind]
        amps = np.zeros(d.n_contacts)
        for c in contacts if kind != "off" else ():
            a = data.draw(_amp)
            if kind == "relative":  # "a bit more than now": what a slew attack looks like
                a = float(np.sign(a) or -1.0) * (abs(d.output.amplitude_ma[c]) + abs(a) / 4)
            amps[c] = a
        case = -float(amps.sum()) if balanced else 0.0
        msg = Stim(program, cycle, hop, pw, f, 50.0, case, 0, amps)
        self._to_device(self._frame(msg, seq_kind, timestamp_us))

    @rule(action=st.sampled_from(["arm"] * 3 + ["heartbeat"] * 5 + ["stop", "reboot"]),
          seq_kind=_seq_kinds)
    def control(self, action: str, seq_kind: str) -> None:
        """ARM and HEARTBEAT (authenticated), STOP (untagged) and a device reboot (the stream
        restarts and runs for a second)."""
        if action == "arm":
            self._to_device(self._frame(Arm(), seq_kind, 0))
        elif action == "heartbeat":
            self._to_device(self._frame(Heartbeat(0, 0), seq_kind, 0))
        elif action == "stop":
            self._to_device(encode_frame(Stop(), direction=Direction.H2D, seq=0,
                                         session=self.dev.session, timestamp_us=0, key=None))
        else:
            self.dev.reboot(self.t)
            self.seq = 0
            self.arm_t = None
            self._to_device(encode_frame(GetInfo(), direction=Direction.H2D, seq=0,
                                         session=self.dev.session, timestamp_us=0, key=None))
            self.time_passes(1_000_000, tick=True)

    # ------------------------------------------------------------------ the bounds
    def slack(self) -> float:
        return self.applied * (self.r * self.cap * RTOL + ATOL) + EPS

    def check_bounds(self) -> None:
        t_s = self.t / 1e6
        r = self.r
        # any earlier moment t1 (each level counted at the last instant it was held)
        rise = self.level - (self.low + r * t_s)
        worst = float(np.max(rise, initial=-np.inf))
        assert worst <= r * self.cap + self.slack(), (
            f"|I| rose {worst + r * self.cap:.6g} mA more than r*(t2-t1) allows "
            f"(cap step {r * self.cap:.6g} mA, r {r} mA/s)")
        # counted from the last accepted ARM
        if self.arm_t is not None:
            top = float(self.level.max(initial=0.0))
            assert top <= r * (t_s - self.arm_t) + self.slack(), (
                f"{top:.6g} mA {t_s - self.arm_t:.6g} s after ARM at {r} mA/s")

    @invariant()
    def output_finite(self) -> None:
        assert np.all(np.isfinite(self.dev.output.amplitude_ma))


AttackerHoldsTheKey.TestCase.settings = settings(
    max_examples=max(120, settings.default.max_examples), stateful_step_count=40, deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
TestAttackerHoldsTheKey = AttackerHoldsTheKey.TestCase
