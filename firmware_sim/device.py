"""The implant's firmware logic: link checks, stimulator state, watchdog, battery, impedance.

Pure: no I/O and no clock of its own. Every entry point takes the device time ``now_us``
(microseconds, monotonic) and returns the encoded frames to transmit, so the tests drive it
byte by byte and the transport (:mod:`firmware_sim.transport`) only moves bytes.

What the device accepts (in order; the first failing check answers, and nothing changes):

1. COBS and CRC. A frame that passes them and whose type byte is STOP is obeyed at once,
   whatever its version, flags (direction bit and TAG included), tag (absent, valid or
   garbage), session, sequence number or payload: output zero, DISARMED (FAULT stays
   FAULT), ACK (STOP is a type, not a format; it never moves the sequence number);
2. every other frame: header, direction (frames marked device->host are dropped) and, for
   STIM, ARM and HEARTBEAT, the HMAC tag under the host->device key (else NAK ``AUTH``);
3. tagged frames must carry this boot's session (NAK ``SESSION``) and a sequence number
   above the last accepted one (NAK ``REPLAY``); only then do they count as a sign of life
   for the watchdog and move the sequence number;
4. STIM: a well-formed payload (contact count, waveform, finite numbers; NAK ``MALFORMED``),
   an off command is always applied; otherwise the state must be ARMED/STIMULATING
   (NAK ``NOT_ARMED``/``WATCHDOG``/``FAULT``), the hardware's own ceilings must hold
   (NAK ``HW_CEILING``) and :func:`~neuroloop.safety.validate.validate` must find no
   violation with the device's own impedances, slew reference and dose (NAK ``LIMIT``).
   The device refuses; it never clamps.

The device trusts its own clock (SAFETY.md invariant 21): the slew check and the dose
horizon use ``now_us`` only, never a timestamp or sample index the host sends
(``hop_last_sample`` only feeds the latency statistics and the "not acquired yet" check).
Slew time is a bucket of device microseconds: it fills with device time up to
``slew_dt_cap_s``, is empty at boot and at every ARM, and an applied command spends the time
its largest per-contact rise of |I| needs at ``slew_up_ma_per_s`` (a sign change counts
the whole new magnitude, as in ``validate``). So over any stretch of device time Δ, a
contact's |I| rises by at most ``slew_up_ma_per_s * (Δ + slew_dt_cap_s)`` (plus
``validate``'s rounding tolerance per command), and by at most ``slew_up_ma_per_s * Δ``
counted from an ARM. Unused time carries over (up to the cap), so link jitter between
commands sent one control period apart costs no NAK.

Watchdog: when ARMED or STIMULATING and no accepted tagged frame arrived for ``watchdog_ms``,
the output ramps linearly to zero over ``watchdog_ramp_ms`` and stays there (state WATCHDOG)
until an ARM.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from neuroloop.errors import ProtocolError
from neuroloop.link.codec import Direction, Frame, TagError, encode_frame
from neuroloop.link.keys import LinkKeys
from neuroloop.link.messages import (
    NO_LATENCY,
    NO_SAMPLE,
    Ack,
    Data,
    DeviceState,
    FaultFlag,
    Heartbeat,
    Info,
    Message,
    MsgType,
    Nak,
    NakReason,
    Status,
    Stim,
)
from neuroloop.link.parser import StreamParser
from neuroloop.safety.limits import SafetyLimits
from neuroloop.safety.validate import validate
from neuroloop.stats import LatencyLog
from neuroloop.stimulation.command import WAVEFORM_BIPHASIC_SYMMETRIC, StimCommand
from neuroloop.stimulation.electrodes import ElectrodeArray, electrode_array

from .hardware import Battery, HardwareCeilings, ImpedanceModel, check_ceilings

__all__ = ["DeviceConfig", "StreamInfo", "PulseTrain", "FirmwareDevice"]


@dataclass(frozen=True)
class StreamInfo:
    """What the device streams (filled in by the streamer from the patient model).

    Attributes
    ----------
    sampling_rate_hz : float
    channel_names : tuple of str
    channel_type : str
        ``"ecog"`` or ``"eeg"``.
    intention_names : tuple of str
        Ground-truth states the simulator's labels index into.
    samples_per_frame : int
    uv_per_lsb : float
        Quantisation step: microvolts per int16 count.
    """

    sampling_rate_hz: float
    channel_names: tuple[str, ...]
    channel_type: str = "ecog"
    intention_names: tuple[str, ...] = ()
    samples_per_frame: int = 59
    uv_per_lsb: float = 0.25


@dataclass(frozen=True)
class DeviceConfig:
    """Firmware settings.

    Attributes
    ----------
    stream : StreamInfo
    array : ElectrodeArray
        The electrode array the output stage drives, from the catalogue
        (:func:`~neuroloop.stimulation.electrodes.electrode_array`; default ``paddle-5-6-5``):
        contact areas for the charge limits, reported to the host in INFO.
    limits : SafetyLimits
        Limits the device's :func:`validate` check uses (its own copy, defaults of SAFETY.md).
    ceilings : HardwareCeilings
    watchdog_ms : float
        T_wd: silence (no accepted tagged frame) after which the output ramps to zero.
    watchdog_ramp_ms : float
        Duration of the linear ramp to zero after a watchdog trip.
    heartbeat_ms : int
        Period of the device's HEARTBEAT frames.
    status_ms : int
        Period of STATUS frames (and of impedance measurements).
    slew_dt_cap_s : float
        Most device time the slew check can have saved up (the size of the slew bucket), s.
    battery_pct : float
        Initial state of charge.
    device_name : str
    """

    stream: StreamInfo
    array: ElectrodeArray = field(default_factory=lambda: electrode_array("paddle-5-6-5"))
    limits: SafetyLimits = field(default_factory=SafetyLimits)
    ceilings: HardwareCeilings = field(default_factory=HardwareCeilings)
    watchdog_ms: float = 300.0
    watchdog_ramp_ms: float = 200.0
    heartbeat_ms: int = 100
    status_ms: int = 1000
    slew_dt_cap_s: float = 0.5
    battery_pct: float = 80.0
    device_name: str = "firmware_sim"


@dataclass
class PulseTrain:
    """One stretch of constant (or, when ``ramp``, linearly falling) output.

    Attributes
    ----------
    start_us, stop_us : int
        Device time the train started and ended (``stop_us`` is None while it runs).
    seq : int
        Sequence number of the STIM that started it (-1 for a ramp).
    program_id, cycle : int
    amplitude_ma : tuple of float
        Per-contact signed first-phase current (the ramp's starting value when ``ramp``).
    pulse_width_us, frequency_hz, interphase_gap_us, case_ma : float
    ramp : bool
        True for a watchdog/fault ramp from ``amplitude_ma`` down to zero.
    end_reason : str
        ``replaced``, ``off``, ``stop``, ``watchdog``, ``ramp_done``, ``rearm``, ``battery``,
        ``impedance``, ``dose``, ``burst``, ``daily_on``, ``reboot`` or ``shutdown``.
    """

    start_us: int
    stop_us: int | None
    seq: int
    program_id: int
    cycle: int
    amplitude_ma: tuple[float, ...]
    pulse_width_us: float
    frequency_hz: float
    interphase_gap_us: float
    case_ma: float
    ramp: bool = False
    end_reason: str = ""

    @property
    def contacts(self) -> tuple[int, ...]:
        return tuple(i for i, a in enumerate(self.amplitude_ma) if a != 0.0)

    def command(self) -> StimCommand:
        """The command this train delivered (its starting point for a ramp)."""
        return StimCommand(amplitude_ma=np.asarray(self.amplitude_ma, dtype=np.float64),
                           pulse_width_us=self.pulse_width_us, frequency_hz=self.frequency_hz,
                           interphase_gap_us=self.interphase_gap_us,
                           program_id=self.program_id, cycle=self.cycle, case_ma=self.case_ma)

    def to_dict(self) -> dict[str, Any]:
        return {"kind": "ramp" if self.ramp else "train", "start_us": self.start_us,
                "stop_us": self.stop_us, "seq": self.seq, "program_id": self.program_id,
                "cycle": self.cycle, "contacts": list(self.contacts),
                "amplitude_ma": list(self.amplitude_ma), "pulse_width_us": self.pulse_width_us,
                "frequency_hz": self.frequency_hz, "interphase_gap_us": self.interphase_gap_us,
                "case_ma": self.case_ma, "end_reason": self.end_reason}


class _DoseMeter:
    """Cathodic charge delivered in a rolling window, 1-s buckets."""

    def __init__(self, window_s: float) -> None:
        self.n = max(1, int(math.ceil(window_s)))
        self.buckets = np.zeros(self.n)
        self.current = 0  # index of the current second

    def add(self, t_s: float, charge_uc: float) -> None:
        sec = int(t_s)
        if sec > self.current:
            for s in range(self.current + 1, min(sec, self.current + self.n) + 1):
                self.buckets[s % self.n] = 0.0
            self.current = sec
        self.buckets[sec % self.n] += charge_uc

    def used_uc(self) -> float:
        return float(self.buckets.sum())


def _cathodic(amplitude_ma: np.ndarray) -> float:
    """Summed cathodic current, mA (the program amplitude the ramp and blanking rules see)."""
    return float(-amplitude_ma[amplitude_ma < 0.0].sum())


class _OnTimeMeter:
    """Stimulation on-time on the device clock: the current burst (uninterrupted output) and
    the rolling 24 h (60-s buckets, so the day's sum is conservative by at most a bucket).
    The firmware's own line of defence for ``burst_max_s`` and ``daily_on_max_s``."""

    BUCKET_S = 60
    N = 86400 // BUCKET_S + 1

    def __init__(self) -> None:
        self.burst_s = 0.0
        self.buckets = np.zeros(self.N)
        self.current = 0  # index of the current bucket

    def add(self, t_s: float, on_s: float) -> None:
        k = int(t_s) // self.BUCKET_S
        if k > self.current:
            for b in range(self.current + 1, min(k, self.current + self.N) + 1):
                self.buckets[b % self.N] = 0.0
            self.current = k
        self.buckets[k % self.N] += on_s
        self.burst_s += on_s

    def day_s(self) -> float:
        return float(self.buckets.sum())


def _new_session() -> int:
    while True:
        s = int.from_bytes(os.urandom(4), "little")
        if s:
            return s


class FirmwareDevice:
    """The implant, minus its radio and its patient.

    Parameters
    ----------
    keys : LinkKeys
    config : DeviceConfig
    now_us : int
        Device time at power-on.
    seed : int
        Seeds the impedance model (session ids come from ``os.urandom``, so that no two runs
        share one).
    session : int or None
        Force the first session id (tests and documented vectors only).
    on_log : callable or None
        Called with a dict for every finished pulse train and every notable event
        (``--log`` writes them as JSON lines).

    Attributes
    ----------
    state : DeviceState
    output : StimCommand
        What the output stage delivers now.
    log : list of PulseTrain
        The pulse trains delivered recently (the running one last, ``stop_us`` None): every
        one since power-on up to ``TRAINS_KEPT``, then at least the last ``TRAINS_KEPT / 2``
        (:attr:`trains_started` and :attr:`ramps_started` count them all).
    counters : dict of str to int
    """

    #: Pulse trains kept in :attr:`log` (a new STIM per control hop starts one, up to 50/s;
    #: ~0.9 kB each, so the log fills within a minute or two of stimulation, then stays flat).
    TRAINS_KEPT = 1024
    #: Latencies kept for the summary's percentiles (22 min of STIMs at 50/s).
    LATENCIES_KEPT = 1 << 16

    def __init__(self, keys: LinkKeys, config: DeviceConfig, *, now_us: int = 0, seed: int = 0,
                 session: int | None = None,
                 on_log: Callable[[dict[str, Any]], None] | None = None) -> None:
        self.keys = keys
        self.cfg = config
        self.n_contacts = config.array.n_contacts
        self._rng = np.random.default_rng(seed)
        self.battery = Battery(soc_pct=config.battery_pct)
        self.impedance = ImpedanceModel(self.n_contacts, self._rng)
        self.log: list[PulseTrain] = []
        #: Pulse trains and ramps started since power-on (``log`` keeps the recent ones).
        self.trains_started = 0
        self.ramps_started = 0
        self.on_log = on_log
        self.counters: dict[str, int] = {"stims_applied": 0, "naks_sent": 0, "arms": 0,
                                         "stops": 0, "watchdog_trips": 0, "reboots": 0}
        self.naks_by_reason: dict[str, int] = {}
        #: Device-measured latency of applied STIMs (hop's last sample -> applied), us: the
        #: last ``LATENCIES_KEPT`` (a ring; :attr:`latencies_us` lists them oldest first).
        self.latency_log = LatencyLog(self.LATENCIES_KEPT)
        #: The five slowest: (latency_us, applied_us, seq, hop_last_sample), ascending.
        self.slow_stims: list[tuple[int, int, int, int]] = []
        self._last_tick_us = now_us
        self._on_time = _OnTimeMeter()
        self._boot(now_us, session=session, rebooted=False)

    @property
    def latencies_us(self) -> list[int]:
        """The retained device-measured STIM latencies, oldest first, us."""
        return [int(v) for v in self.latency_log.ordered()]

    # ------------------------------------------------------------------ lifecycle
    def _boot(self, now_us: int, *, session: int | None, rebooted: bool) -> None:
        self.session = session if session is not None else _new_session()
        self.tx_seq = 0
        self.last_h2d_seq = 0
        self.state = DeviceState.DISARMED
        self.output = StimCommand.off(self.n_contacts)
        self._train: PulseTrain | None = None
        self._ramp: tuple[int, int, np.ndarray, float] | None = None  # start, end, amps, case
        self.parser = StreamParser(Direction.H2D, self.keys.h2d)
        self.streaming = False
        self.stream_t0_us = 0
        self.frame_counter = 0
        self.newest_sample = -1
        self._last_host_us: int | None = None
        self._reset_slew(now_us)
        self._dose = _DoseMeter(self.cfg.limits.dose_window_s)
        self._on_time.burst_s = 0.0  # the day's ledger survives a reboot (kept in NVM)
        self._next_hb_us = now_us
        self._next_status_us = now_us
        self.fault_flags = FaultFlag.REBOOTED if rebooted else FaultFlag.NONE
        self._update_faults(now_us)

    def reboot(self, now_us: int) -> None:
        """Power-cycle: output off, new session, counters and stream restart; the pulse log,
        battery and electrodes survive."""
        self._end_train(now_us, "reboot")
        self.counters["reboots"] += 1
        self._emit_log({"kind": "reboot", "time_us": now_us})
        self._boot(now_us, session=None, rebooted=True)

    def shutdown(self, now_us: int) -> None:
        """Power off: close the running train."""
        self._set_output_off(now_us, "shutdown")

    # ------------------------------------------------------------------ frames out
    def encode(self, msg: Message, now_us: int) -> bytes:
        """One device->host frame, tagged with the d2h key, with the next sequence number."""
        self.tx_seq += 1
        return encode_frame(msg, direction=Direction.D2H, seq=self.tx_seq, session=self.session,
                            timestamp_us=now_us, key=self.keys.d2h)

    def info(self) -> Info:
        s = self.cfg.stream
        return Info(s.sampling_rate_hz, len(s.channel_names), self.n_contacts,
                    s.samples_per_frame, s.uv_per_lsb, int(self.cfg.watchdog_ms),
                    int(self.cfg.heartbeat_ms), self.last_h2d_seq, self.cfg.device_name,
                    s.channel_type, s.channel_names, s.intention_names, self.cfg.array.name,
                    self.cfg.array.area_cm2)

    def status(self) -> Status:
        c = self.parser
        return Status(self.battery.soc_pct, self.battery.charging, self.state, self.fault_flags,
                      self.counters["stims_applied"], self.counters["naks_sent"],
                      c.crc_errors, c.malformed + c.wrong_direction, c.auth_failures,
                      self.impedance.measured_ohm.astype(np.float32))

    def sample_time_us(self, index: int) -> float:
        """Device time at which stream sample ``index`` was acquired."""
        fs = self.cfg.stream.sampling_rate_hz
        return self.stream_t0_us + (index + 1) * 1e6 / fs

    def frame_due_us(self, frame_counter: int) -> float:
        """Device time at which DATA frame ``frame_counter`` is complete (its last sample)."""
        return self.sample_time_us((frame_counter + 1) * self.cfg.stream.samples_per_frame - 1)

    def data_frame(self, samples: np.ndarray, labels: np.ndarray | None, now_us: int) -> bytes:
        """Encode the next DATA frame: ``samples`` (samples_per_frame, n_channels) int16.

        Advances the frame counter and the newest-sample index whether or not the frame
        reaches the host (fault injection may drop it afterwards).
        """
        return self.encode(self.data_message(samples, labels), now_us)

    def data_message(self, samples: np.ndarray, labels: np.ndarray | None) -> Data:
        """The next DATA message, not yet encoded (the simulator encodes it when the line
        takes it, :mod:`firmware_sim.txqueue`); advances the frame counter and the
        newest-sample index like :meth:`data_frame`. ``samples`` is referenced, not copied.
        """
        spf = samples.shape[0]
        first = self.frame_counter * self.cfg.stream.samples_per_frame
        msg = Data(self.frame_counter, first, self.cfg.stream.uv_per_lsb, samples, labels)
        self.frame_counter += 1
        self.newest_sample = first + spf - 1
        return msg

    def _ack(self, frame: Frame, now_us: int, applied: bool = False,
             latency_us: int = NO_LATENCY) -> bytes:
        return self.encode(Ack(frame.seq, frame.header.msg_type,
                               now_us if applied else 0, latency_us), now_us)

    def _nak(self, seq: int, msg_type: int, reason: NakReason, now_us: int, detail: int = -1,
             text: str = "") -> bytes:
        self.counters["naks_sent"] += 1
        self.naks_by_reason[reason.name] = self.naks_by_reason.get(reason.name, 0) + 1
        self._emit_log({"kind": "nak", "time_us": now_us, "seq": seq, "type": msg_type,
                        "reason": reason.name, "detail": detail, "text": text})
        return self.encode(Nak(seq, msg_type, reason, detail, text), now_us)

    # ------------------------------------------------------------------ frames in
    def receive(self, data: bytes, now_us: int) -> list[bytes]:
        """Handle bytes from the host; returns the frames to send back."""
        out: list[bytes] = []
        for item in self.parser.feed(data):
            if isinstance(item, ProtocolError):
                hdr = getattr(item, "header", None)
                if isinstance(item, TagError) and hdr is not None:
                    out.append(self._nak(hdr.seq, hdr.msg_type, NakReason.AUTH, now_us,
                                         text="HMAC tag does not verify with the h2d key"))
                continue
            out.extend(self._handle(item, now_us))
        return out

    def _handle(self, frame: Frame, now_us: int) -> list[bytes]:
        h = frame.header
        t = h.msg_type
        if t == MsgType.STOP:
            self.counters["stops"] += 1
            self._set_output_off(now_us, "stop")
            if self.state != DeviceState.FAULT:
                self.state = DeviceState.DISARMED
            self._emit_log({"kind": "stop", "time_us": now_us, "seq": h.seq,
                            "flags": h.flags, "payload_len": h.payload_len})
            return [self._ack(frame, now_us, applied=True)]
        if t == MsgType.GET_INFO:
            if not self.streaming:
                self.streaming = True
                self.stream_t0_us = now_us
                self._emit_log({"kind": "stream_start", "time_us": now_us})
            return [self.encode(self.info(), now_us)]
        # tagged from here on: HEARTBEAT, ARM, STIM (the tag was verified by the parser)
        if h.session != self.session:
            return [self._nak(h.seq, t, NakReason.SESSION, now_us,
                              text=f"frame bound to session 0x{h.session:08x}, device is in "
                                   f"0x{self.session:08x}")]
        if h.seq <= self.last_h2d_seq:
            return [self._nak(h.seq, t, NakReason.REPLAY, now_us,
                              text=f"seq {h.seq} not above {self.last_h2d_seq}")]
        self.last_h2d_seq = h.seq
        self._last_host_us = now_us
        if t == MsgType.HEARTBEAT:
            return []
        if t == MsgType.ARM:
            return [self._arm(frame, now_us)]
        if t == MsgType.STIM:
            return [self._stim(frame, now_us)]
        return [self._nak(h.seq, t, NakReason.UNSUPPORTED, now_us)]  # pragma: no cover

    def _arm(self, frame: Frame, now_us: int) -> bytes:
        if self.state == DeviceState.FAULT:
            return self._nak(frame.seq, MsgType.ARM, NakReason.FAULT, now_us,
                             text=f"fault latched: {self.fault_flags!r}")
        self._set_output_off(now_us, "rearm")
        self.state = DeviceState.ARMED
        self.fault_flags &= ~(FaultFlag.WATCHDOG_TRIPPED | FaultFlag.REBOOTED
                              | FaultFlag.TX_OVERFLOW)
        self._reset_slew(now_us)
        self.counters["arms"] += 1
        self._emit_log({"kind": "arm", "time_us": now_us, "seq": frame.seq})
        return self._ack(frame, now_us, applied=True)

    def _stim(self, frame: Frame, now_us: int) -> bytes:
        s: Stim = frame.message  # type: ignore[assignment]
        seq, t = frame.seq, MsgType.STIM
        n = self.n_contacts
        if s.amplitude_ma.shape != (n,):
            return self._nak(seq, t, NakReason.MALFORMED, now_us,
                             text=f"{s.amplitude_ma.shape[0]} contacts, device has {n}")
        if s.waveform != WAVEFORM_BIPHASIC_SYMMETRIC:
            return self._nak(seq, t, NakReason.MALFORMED, now_us,
                             text=f"waveform {s.waveform} is not symmetric biphasic")
        values = (s.pulse_width_us, s.frequency_hz, s.interphase_gap_us, s.case_ma)
        if not (np.all(np.isfinite(s.amplitude_ma)) and all(math.isfinite(v) for v in values)):
            return self._nak(seq, t, NakReason.MALFORMED, now_us, text="non-finite value")
        if s.hop_last_sample != NO_SAMPLE and s.hop_last_sample > self.newest_sample:
            return self._nak(seq, t, NakReason.MALFORMED, now_us,
                             text=f"hop_last_sample {s.hop_last_sample} not yet acquired "
                                  f"(newest {self.newest_sample})")
        cmd = StimCommand(amplitude_ma=s.amplitude_ma.astype(np.float64), pulse_width_us=
                          s.pulse_width_us, frequency_hz=s.frequency_hz,
                          interphase_gap_us=s.interphase_gap_us, program_id=s.program_id,
                          cycle=s.cycle, case_ma=s.case_ma, waveform=s.waveform)
        if not cmd.is_off:
            if self.state in (DeviceState.DISARMED, DeviceState.WATCHDOG, DeviceState.FAULT):
                reason = {DeviceState.DISARMED: NakReason.NOT_ARMED,
                          DeviceState.WATCHDOG: NakReason.WATCHDOG,
                          DeviceState.FAULT: NakReason.FAULT}[self.state]
                return self._nak(seq, t, reason, now_us,
                                 text=f"device is {self.state.name}; send ARM first")
            z = self.impedance.measured_ohm
            hw = check_ceilings(s, self.cfg.ceilings, z)
            if hw is not None:
                return self._nak(seq, t, NakReason.HW_CEILING, now_us, detail=hw[1], text=hw[0])
            slew_s = self._slew_credit_s(now_us)
            violations = validate(cmd, self.cfg.limits, self.cfg.array, previous=self.output,
                                  dt_s=slew_s, impedance_ohm=z,
                                  dose_used_uc=self._dose.used_uc(),
                                  horizon_s=self._dose_horizon_s(now_us),
                                  blanking_left_s=self._blanking_left_s(now_us),
                                  burst_on_s=None if self.output.is_off else
                                  self._on_time.burst_s,
                                  day_on_s=self._on_time.day_s())
            if violations:
                v = violations[0]
                return self._nak(seq, t, NakReason.LIMIT, now_us, detail=v.contact,
                                 text=str(v))
            self._spend_slew(cmd)
        # apply
        self._last_cmd_us = now_us
        latency = NO_LATENCY
        if s.hop_last_sample != NO_SAMPLE and self.streaming:
            lat = now_us - self.sample_time_us(int(s.hop_last_sample))
            latency = int(min(max(lat, 0.0), NO_LATENCY - 1))
            self.latency_log.add(latency)
            if len(self.slow_stims) < 5 or latency > self.slow_stims[0][0]:
                self.slow_stims.append((latency, now_us, seq, int(s.hop_last_sample)))
                self.slow_stims.sort()
                del self.slow_stims[:-5]
        self._apply(cmd, seq, now_us)
        self.counters["stims_applied"] += 1
        return self._ack(frame, now_us, applied=True, latency_us=latency)

    # ------------------------------------------------------------------ device-time slew
    def _reset_slew(self, now_us: int) -> None:
        """Boot and ARM: an empty slew bucket, filling from ``now_us``."""
        self._slew_credit_us = 0
        self._slew_clock_us = int(now_us)
        self._last_cmd_us = int(now_us)
        if not hasattr(self, "_last_fall_us"):
            self._last_fall_us = -(1 << 62)

    def _slew_credit_s(self, now_us: int) -> float:
        """Fill the slew bucket with the device time since it was last filled (up to
        ``slew_dt_cap_s``) and return its content, s: the time credited to this command's
        slew check. Only the device clock goes in; nothing the host sends."""
        cap_us = int(self.cfg.slew_dt_cap_s * 1e6)
        now_us = int(now_us)
        if now_us > self._slew_clock_us:
            self._slew_credit_us = min(cap_us, self._slew_credit_us
                                       + (now_us - self._slew_clock_us))
            self._slew_clock_us = now_us
        return self._slew_credit_us / 1e6

    def _spend_slew(self, cmd: StimCommand) -> None:
        """Take the time ``cmd``'s largest rise of |I| (per contact, at the slew limit) or of
        the summed cathodic current (at the ramp limit, invariant 19) needs out of the bucket
        (rounded up to whole microseconds; the bucket never goes below empty)."""
        prev = self.output.amplitude_ma
        new = cmd.amplitude_ma
        same_sign = prev * new > 0.0
        rise = np.where(same_sign, np.abs(new) - np.abs(prev), np.abs(new))
        worst = float(rise.max(initial=0.0))
        lim = self.cfg.limits
        need_s = worst / lim.slew_up_ma_per_s if worst > 0.0 else 0.0
        total_rise = _cathodic(new) - _cathodic(prev)
        if total_rise > 0.0:
            need_s = max(need_s, total_rise / lim.ramp_up_max_ma_per_s)
        if need_s > 0.0:
            self._slew_credit_us = max(0, self._slew_credit_us - math.ceil(need_s * 1e6))

    def _blanking_left_s(self, now_us: int) -> float:
        """Device time left of the blanking period after the output's last fall, s."""
        return self.cfg.limits.increase_blanking_s - (int(now_us) - self._last_fall_us) / 1e6

    def _note_fall(self, new_amplitude_ma: np.ndarray, now_us: int) -> None:
        """Start the blanking period when the applied summed cathodic current falls."""
        if _cathodic(new_amplitude_ma) < _cathodic(self.output.amplitude_ma) - 1e-9:
            self._last_fall_us = int(now_us)

    def _dose_horizon_s(self, now_us: int) -> float:
        """How long a command is counted to commit dose for: the device time since the
        previous applied command or ARM, capped at ``slew_dt_cap_s`` (device clock only)."""
        return min(max(int(now_us) - self._last_cmd_us, 0) / 1e6, self.cfg.slew_dt_cap_s)

    # ------------------------------------------------------------------ output stage
    def _apply(self, cmd: StimCommand, seq: int, now_us: int) -> None:
        self._integrate(now_us)
        self._note_fall(cmd.amplitude_ma, now_us)
        if cmd.is_off:
            self._set_output_off(now_us, "off")
            if self.state == DeviceState.STIMULATING:
                self.state = DeviceState.ARMED
            return
        self._end_train(now_us, "replaced")
        self.output.copy_from(cmd)
        self.state = DeviceState.STIMULATING
        self._train = PulseTrain(now_us, None, seq, int(cmd.program_id), int(cmd.cycle),
                                 tuple(float(a) for a in cmd.amplitude_ma),
                                 float(cmd.pulse_width_us), float(cmd.frequency_hz),
                                 float(cmd.interphase_gap_us), float(cmd.case_ma))
        self._keep(self._train)

    def _keep(self, train: PulseTrain) -> None:
        """Log a new train; beyond ``TRAINS_KEPT`` the oldest half goes (every finished train
        was already handed to ``on_log``), so a long run's memory stays flat."""
        if train.ramp:
            self.ramps_started += 1
        else:
            self.trains_started += 1
        self.log.append(train)
        if len(self.log) > self.TRAINS_KEPT:
            del self.log[:len(self.log) - self.TRAINS_KEPT // 2]

    def _end_train(self, now_us: int, reason: str) -> None:
        if self._train is not None:
            self._train.stop_us = now_us
            self._train.end_reason = reason
            self._emit_log(self._train.to_dict())
            self._train = None

    def _set_output_off(self, now_us: int, reason: str) -> None:
        self._integrate(now_us)
        self._note_fall(np.zeros(1), now_us)
        self._on_time.burst_s = 0.0
        self._end_train(now_us, reason)
        self.output.set_off()
        self._ramp = None

    def _trip(self, now_us: int, reason: str, state: DeviceState, ramp: bool) -> None:
        """Leave stimulation: ramp the output down (watchdog) or cut it (faults)."""
        self._integrate(now_us)
        was_on = not self.output.is_off
        start_amps = self.output.amplitude_ma.copy()
        start_case = self.output.case_ma
        template = self.output.copy()
        self._end_train(now_us, reason)
        if was_on:
            self._last_fall_us = int(now_us)
        self.state = state
        if ramp and was_on and self.cfg.watchdog_ramp_ms > 0:
            end = now_us + int(self.cfg.watchdog_ramp_ms * 1000)
            self._ramp = (now_us, end, start_amps, start_case)
            self._train = PulseTrain(now_us, None, -1, int(template.program_id),
                                     int(template.cycle), tuple(float(a) for a in start_amps),
                                     float(template.pulse_width_us),
                                     float(template.frequency_hz),
                                     float(template.interphase_gap_us), float(start_case),
                                     ramp=True)
            self._keep(self._train)
        else:
            self._ramp = None
            self.output.set_off()

    # ------------------------------------------------------------------ time passes
    def _integrate(self, now_us: int) -> None:
        """Charge the battery and the dose meter for the output held since the last call."""
        dt_s = max(0, now_us - self._last_tick_us) / 1e6
        self._last_tick_us = max(self._last_tick_us, now_us)
        if dt_s <= 0:
            return
        out = self.output
        if out.is_off:
            self.battery.step(dt_s, 0.0)
            return
        self.battery.step(dt_s, Battery.stimulation_power_mw(
            out.amplitude_ma, self.impedance.measured_ohm, out.pulse_width_us,
            out.frequency_hz))
        self._on_time.add(now_us / 1e6, dt_s)
        cathodic = float(-out.amplitude_ma[out.amplitude_ma < 0].sum()) + max(-out.case_ma, 0.0)
        self._dose.add(now_us / 1e6, cathodic * out.pulse_width_us / 1000.0 * out.frequency_hz
                       * dt_s)

    def tick(self, now_us: int) -> list[bytes]:
        """Advance the device to ``now_us``: watchdog, ramp, dose, battery, impedance, and
        the periodic HEARTBEAT and STATUS frames. Call it every few milliseconds."""
        out: list[bytes] = []
        self._integrate(now_us)
        # watchdog
        if (self.state in (DeviceState.ARMED, DeviceState.STIMULATING)
                and self._last_host_us is not None
                and now_us - self._last_host_us > self.cfg.watchdog_ms * 1000):
            self.counters["watchdog_trips"] += 1
            self.fault_flags |= FaultFlag.WATCHDOG_TRIPPED
            self._emit_log({"kind": "watchdog", "time_us": now_us,
                            "silent_ms": (now_us - self._last_host_us) / 1000})
            self._trip(now_us, "watchdog", DeviceState.WATCHDOG, ramp=True)
        if self._ramp is not None:
            t0, t1, amps, case = self._ramp
            if now_us >= t1:
                self._set_output_off(t1, "ramp_done")
            else:
                frac = 1.0 - (now_us - t0) / (t1 - t0)
                np.multiply(amps, frac, out=self.output.amplitude_ma)
                self.output.case_ma = case * frac
        # second line on dose: never deliver past the budget
        if not self.output.is_off and self._dose.used_uc() > self.cfg.limits.dose_budget_uc:
            self._emit_log({"kind": "dose_spent", "time_us": now_us})
            self._set_output_off(now_us, "dose")
            if self.state == DeviceState.STIMULATING:
                self.state = DeviceState.ARMED
        # second line on bursts and the rolling daily on-time (invariant 20, device clock)
        if not self.output.is_off:
            lim = self.cfg.limits
            cut = ("burst" if self._on_time.burst_s >= lim.burst_max_s else
                   "daily_on" if self._on_time.day_s() >= lim.daily_on_max_s else "")
            if cut:
                self._emit_log({"kind": f"{cut}_limit", "time_us": now_us,
                                "burst_s": self._on_time.burst_s,
                                "day_s": self._on_time.day_s()})
                self._set_output_off(now_us, cut)
                if self.state == DeviceState.STIMULATING:
                    self.state = DeviceState.ARMED
        # battery fault
        self._update_faults(now_us)
        if now_us >= self._next_status_us:
            self._next_status_us = now_us + self.cfg.status_ms * 1000
            self.impedance.measure()
            self._update_faults(now_us)
            out.append(self.encode(self.status(), now_us))
        if now_us >= self._next_hb_us:
            self._next_hb_us = now_us + self.cfg.heartbeat_ms * 1000
            out.append(self.encode(Heartbeat(int(self.state), self.last_h2d_seq), now_us))
        return out

    def _update_faults(self, now_us: int) -> None:
        ceil = self.cfg.ceilings
        soc = self.battery.soc_pct
        if soc < ceil.battery_min_pct and self.state != DeviceState.FAULT:
            self.fault_flags |= FaultFlag.BATTERY_LOW
            self._emit_log({"kind": "fault", "time_us": now_us, "fault": "battery_low",
                            "soc_pct": soc})
            self._trip(now_us, "battery", DeviceState.FAULT, ramp=False)
        elif (self.state == DeviceState.FAULT and soc >= ceil.battery_resume_pct):
            self.fault_flags &= ~FaultFlag.BATTERY_LOW
            self.state = DeviceState.DISARMED
            self._emit_log({"kind": "fault_cleared", "time_us": now_us, "soc_pct": soc})
        lim = self.cfg.limits
        z = self.impedance.measured_ohm
        with np.errstate(invalid="ignore"):
            outside = ~((z >= lim.impedance_min_ohm) & (z <= lim.impedance_max_ohm))
        if outside.any():
            self.fault_flags |= FaultFlag.IMPEDANCE
            if np.any(outside & (self.output.amplitude_ma != 0.0)):
                self._emit_log({"kind": "fault", "time_us": now_us, "fault": "impedance",
                                "contacts": [int(c) for c in np.flatnonzero(outside)]})
                self._set_output_off(now_us, "impedance")
                if self.state == DeviceState.STIMULATING:
                    self.state = DeviceState.ARMED
        else:
            self.fault_flags &= ~FaultFlag.IMPEDANCE

    def _emit_log(self, entry: dict[str, Any]) -> None:
        if self.on_log is not None:
            self.on_log(entry)

    # ------------------------------------------------------------------ inspection
    def snapshot(self) -> dict[str, Any]:
        """Everything a host frame may change (for the tests' "changed nothing" checks)."""
        return {"state": self.state, "output": self.output.to_dict(),
                "last_h2d_seq": self.last_h2d_seq, "last_host_us": self._last_host_us,
                "n_trains": len(self.log), "stims_applied": self.counters["stims_applied"],
                "arms": self.counters["arms"], "session": self.session,
                "fault_flags": int(self.fault_flags)}
