"""``DeviceLink``: neuroloop's end of the serial link to an implant (or to firmware_sim).

One :class:`DeviceLink` per port. It opens any pyserial URL (``/dev/ttyUSB0``, a pty path,
``socket://host:port``, ``loop://``) and is a thin facade over four parts, each doing one
thing (as pyserial splits framing from its ``ReaderThread``, and as
:class:`firmware_sim.device.FirmwareDevice` is pure):

* :attr:`DeviceLink.protocol` - :class:`~neuroloop.link.host_protocol.HostProtocol`, pure:
  bytes and a time in, events out (framing, anti-replay, counters, ACK/NAK, INFO);
* :attr:`DeviceLink.port` - :class:`~neuroloop.link.port.LinkPort`: the serial port, the
  reader thread (bytes into the protocol), the heartbeat thread, reconnects;
* :attr:`DeviceLink.samples` - :class:`~neuroloop.link.sample_queue.SampleQueue`: DATA
  samples for the control loop, with the stale-frame rule at the loop's start;
* :attr:`DeviceLink.monitor` - :class:`~neuroloop.link.monitor.LinkMonitor`: the safety
  inputs (heartbeat lost, stream stalled, NAK storm, device fault, impedance), a
  :class:`~neuroloop.runtime.safety_inputs.SafetyInputProvider` that the control loop polls
  every cycle whenever a session's source or stimulator is on a device link.

On top of it:

* :attr:`DeviceLink.source` - a :class:`~neuroloop.link.serial_source.SerialSource`
  (``paced_by_device``): blocks with the device's sample indices, so gaps stay visible;
* :attr:`DeviceLink.stimulator` - a :class:`~neuroloop.link.serial_stimulator.SerialStimulator`:
  authenticated STIM without waiting for the ACK, STOP always;
* :meth:`DeviceLink.stats` - counters and latency percentiles for the run summary;
* :meth:`DeviceLink.poll_safety_inputs` - the monitor's inputs, polled now.

Sharing: :func:`open_device_link` keeps one link per port in a registry (under its lock), so
a ``SerialSource`` and a ``SerialStimulator`` built from the same URL (``open_source(url)``,
``SerialStimulator.from_url(url)``) talk through the same port, reader thread and sequence
numbers. The link closes when its last user closes it, or at once with :meth:`close`.

The host heartbeat proves that the *control loop* is alive, not just this thread: it is sent
only while the loop has called ``read`` or ``send`` within ``liveness_timeout_s``. A hung loop
therefore lets the device's watchdog ramp its output to zero.

Geometry is hardware (SAFETY.md invariant 18): the device names its electrode array and
reports its contact areas in INFO (:attr:`DeviceLink.device_array_name`,
:attr:`DeviceLink.device_area_cm2`). Given the scenario's array
(:meth:`DeviceLink.expect_array`, which ``neuroloop run`` always calls), the link refuses to
send ARM, explicit or automatic, to a device that reports another array or other areas: a
one-line :class:`~neuroloop.errors.DeviceError` naming both.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import serial

from ..acquisition.base import SourceInfo
from ..errors import AuthenticationError, ConfigError, DeviceError, NeuroloopError
from ..stats import LatencyLog, percentiles_us
from ..stimulation.command import StimCommand
from ..stimulation.electrodes import ElectrodeArray
from .capacity import link_utilisation
from .codec import Direction, VersionError, encode_frame
from .framing import warm_up as warm_up_framing
from .host_protocol import (
    AckReceived,
    DeviceRebooted,
    HostProtocol,
    InfoReceived,
    LinkEvent,
    NakReceived,
    SamplesReceived,
)
from .keys import LinkKeys, load_keys
from .messages import Ack, Arm, DeviceState, GetInfo, Info, MsgType, Nak, Status, Stop
from .monitor import LinkMonitor
from .port import LinkPort
from .sample_queue import SampleQueue
from .settings import LinkSettings

__all__ = ["DeviceLink", "open_device_link", "pyserial_url", "LinkSettings"]

_NS = 1_000_000_000


def pyserial_url(url: str) -> str:
    """The pyserial URL for a neuroloop device URL.

    ``serial:///dev/ttyUSB0?baud=...`` -> ``/dev/ttyUSB0``; ``socket://h:p`` and ``loop://``
    pass through; a bare path stays a path. Query options are stripped (see
    :func:`url_options`).
    """
    base = url.split("?", 1)[0]
    if base.startswith("serial://"):
        return base[len("serial://"):]
    return base


def url_options(url: str) -> dict[str, str]:
    """Query options of a device URL (``?baud=921600&key_file=k.toml``)."""
    from urllib.parse import parse_qsl

    return dict(parse_qsl(url.split("?", 1)[1])) if "?" in url else {}


class DeviceLink:
    """A host's connection to one device (a facade over protocol, port, samples, monitor).

    Parameters
    ----------
    url : str
        pyserial URL or neuroloop device URL (``serial:///dev/ttyUSB0``, ``/dev/pts/5``,
        ``socket://127.0.0.1:7000``, ``loop://``).
    keys : LinkKeys
    baudrate : int
        Line speed, baud (ignored by sockets and ptys' peers, checked by firmware_sim's pty).
    settings : LinkSettings, optional
    serial_factory : callable, optional
        ``serial.serial_for_url`` (injectable for tests).

    Raises (from :meth:`open`)
    -------------------------
    DeviceError
        The port cannot be opened, is busy, or sends no valid frame in time.
    AuthenticationError
        The device's frames fail our d2h key, or it rejects our h2d key.
    """

    def __init__(self, url: str, *, keys: LinkKeys, baudrate: int = 921600,
                 settings: LinkSettings | None = None,
                 serial_factory: Callable[..., Any] = serial.serial_for_url) -> None:
        self.url = pyserial_url(url)
        self.keys = keys
        self.baudrate = int(baudrate)
        self.settings = settings or LinkSettings()
        self.protocol = HostProtocol(keys)
        self.samples = SampleQueue()
        self.port = LinkPort(self.url, baudrate=self.baudrate, settings=self.settings,
                             protocol=self.protocol, on_events=self._on_events,
                             heartbeat_wanted=self._heartbeat_wanted, on_failure=self._wake,
                             serial_factory=serial_factory)
        self.monitor = LinkMonitor(self.protocol, self.settings, failure=self._port_failure)
        self._cond = threading.Condition()  # ARM answers
        self._arm_results: dict[int, Ack | Nak] = {}
        self._info_event = threading.Event()
        self._is_open = False
        self._closed = False
        self._refs = 0
        self._armed = False
        self._expected_array: ElectrodeArray | None = None
        self._consumer_ns = 0
        self._counters: dict[str, int] = {"arms_sent": 0, "stop_failed": 0}
        #: per DATA frame: its last bytes read -> its samples queued for the loop, ns
        self._frame_to_queue = LatencyLog(1 << 16)
        from .serial_source import SerialSource
        from .serial_stimulator import SerialStimulator

        self.source = SerialSource(link=self)
        self.stimulator = SerialStimulator(link=self)

    # ------------------------------------------------------------------ state (read-through)
    @property
    def info(self) -> Info | None:
        """The device's last INFO (None before the first)."""
        return self.protocol.info

    @info.setter
    def info(self, value: Info | None) -> None:
        self.protocol.info = value

    @property
    def device_state(self) -> DeviceState | None:
        """The device's state from its last HEARTBEAT or STATUS."""
        return self.protocol.device_state

    @property
    def status(self) -> Status | None:
        """The device's last STATUS."""
        return self.protocol.status

    @property
    def last_nak(self) -> Nak | None:
        return self.protocol.last_nak

    @property
    def naks_by_reason(self) -> dict[str, int]:
        return self.protocol.naks_by_reason

    @property
    def counters(self) -> dict[str, int]:
        """Every part's counters in one dict (a snapshot)."""
        return {**self.protocol.counters, **self.port.counters, **self.samples.counters,
                **self._counters}

    @property
    def safety_inputs(self) -> LinkMonitor:
        """The link's safety-input provider (polled by the control loop every cycle)."""
        return self.monitor

    # ------------------------------------------------------------------ open / close
    def open(self) -> DeviceLink:
        """Open the port, start the threads and wait for the device's INFO.

        Idempotent. Raises DeviceError or AuthenticationError (see the class docstring).
        """
        if self._is_open:
            return self
        if self._closed:
            raise DeviceError(f"link to {self.url} was closed; open a new one")
        warm_up_framing()  # compile (or load) the COBS kernels before the reader needs them
        self.port.open()
        self._is_open = True
        try:
            self._handshake()
        except BaseException:
            self.close()
            raise
        return self

    def _handshake(self) -> None:
        s = self.settings
        self._info_event.clear()
        deadline = time.monotonic() + s.open_timeout_s
        next_ask = 0.0
        while not self._info_event.is_set():
            now = time.monotonic()
            if self.port.failure is not None:
                raise self.port.failure
            if now >= deadline:
                raise self._no_frame_error()
            if now >= next_ask:
                self.port.send(GetInfo())
                next_ask = now + 0.25
            self._info_event.wait(min(0.05, max(0.0, deadline - now)))

    def _no_frame_error(self) -> NeuroloopError:
        p = self.protocol.parser
        t = f"{self.settings.open_timeout_s:g} s"
        if p.auth_failures and p.frames_ok == 0:
            return AuthenticationError(
                f"frames from {self.url} fail authentication with our device->host key: "
                "check --key-file (it must be the file firmware-sim/the device uses)")
        versions = [e for e in p.errors if isinstance(e, VersionError)]
        if versions and p.frames_ok == 0:
            return DeviceError(
                f"{self.url} speaks another protocol version: {versions[-1]}; update "
                "firmware-sim (or the device's firmware) and neuroloop together")
        if p.wrong_direction and p.frames_ok == 0:
            return DeviceError(
                f"only our own frames came back from {self.url}: the line is looped back (TX "
                "bridged to RX); connect the device instead")
        if p.bytes_received:
            return DeviceError(
                f"no valid frame from {self.url} in {t} ({p.bytes_received} bytes of noise): "
                f"check the baud rate (we opened at {self.baudrate}; firmware-sim speaks "
                "921600 unless started with --baud)")
        return DeviceError(f"no valid frame from {self.url} in {t}: no data at all; is the "
                           "device on, the cable in and the baud rate right?")

    def acquire(self) -> DeviceLink:
        """Take a reference (the link closes when the last one is released)."""
        with _REGISTRY_LOCK:
            self._refs += 1
        return self

    def release(self) -> None:
        """Drop a reference; closes the link when none is left."""
        with _REGISTRY_LOCK:
            self._refs -= 1
            last = self._refs <= 0
        if last:
            self.close()

    def close(self) -> None:
        """Send STOP, stop the threads and close the port. Safe to call more than once."""
        if self._closed:
            return
        self._closed = True
        with _REGISTRY_LOCK:
            if _REGISTRY.get(self.url) is self:
                del _REGISTRY[self.url]
        if self._is_open:
            self.send_stop()
        self.port.close()
        self._is_open = False
        self._wake()

    @property
    def is_open(self) -> bool:
        return self._is_open and not self._closed

    def __enter__(self) -> DeviceLink:
        return self.open()

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ events (reader thread)
    def _on_events(self, events: Sequence[LinkEvent]) -> None:
        for ev in events:
            if isinstance(ev, SamplesReceived):
                info = self.protocol.info
                cap = int(self.settings.queue_s * info.sampling_rate_hz) if info else 1 << 30
                self.samples.put(ev.first_index, ev.data, ev.labels, ev.received_ns,
                                 ev.acquired_us, cap)
                # last bytes read -> samples queued for the loop: the link's share of e2e
                self._frame_to_queue.add(time.perf_counter_ns() - ev.received_ns)
            elif isinstance(ev, AckReceived):
                if ev.ack.acked_type == MsgType.ARM:
                    self._arm_answer(ev.ack.acked_seq, ev.ack)
            elif isinstance(ev, NakReceived):
                if ev.nak.nacked_type == MsgType.ARM:
                    self._armed = False
                    self._arm_answer(ev.nak.nacked_seq, ev.nak)
            elif isinstance(ev, InfoReceived):
                self._info_event.set()
            elif isinstance(ev, DeviceRebooted):
                self._info_event.clear()
                self._armed = False
                self.samples.restart_clock()  # a real device's clock restarts at boot

    def _arm_answer(self, seq: int, answer: Ack | Nak) -> None:
        with self._cond:
            self._arm_results[seq] = answer
            self._cond.notify_all()

    def _wake(self) -> None:
        """The link failed or closed: wake every waiting reader and ARM."""
        self.samples.wake()
        with self._cond:
            self._cond.notify_all()

    def _port_failure(self) -> NeuroloopError | None:
        return self.port.failure

    def _heartbeat_wanted(self, now_ns: int) -> bool:
        return self._armed and now_ns - self._consumer_ns < self.settings.liveness_timeout_s * _NS

    # ------------------------------------------------------------------ sending
    def check(self) -> None:
        """Raise the link's failure, if any (DeviceError, AuthenticationError)."""
        if self.port.failure is not None:
            raise self.port.failure
        if self.protocol.auth_rejected:
            raise AuthenticationError("device rejected our key: check --key-file (the device "
                                      f"NAKed a command from {self.url} with reason AUTH)")

    def _alive(self) -> None:
        self._consumer_ns = time.perf_counter_ns()

    # ------------------------------------------------------------------ electrode array
    @property
    def device_array_name(self) -> str | None:
        """Catalogue name of the electrode array the device reported in INFO (None before)."""
        info = self.protocol.info
        return info.array_name if info is not None else None

    @property
    def device_area_cm2(self) -> np.ndarray | None:
        """Per-contact areas the device reported in INFO, cm^2 (a copy; None before)."""
        info = self.protocol.info
        return info.area_cm2.copy() if info is not None else None

    @property
    def expected_array(self) -> ElectrodeArray | None:
        """The array a device must report before it is armed (None: not checked)."""
        return self._expected_array

    def expect_array(self, array: ElectrodeArray | None, timeout_s: float = 1.0) -> None:
        """Arm the device only if it reports ``array`` (name and contact areas).

        Checked at once when the device's INFO is in, and again before every ARM (explicit or
        automatic), so a device that reboots as another array is not armed either.

        Raises
        ------
        DeviceError
            The device reports another array or other areas (one line naming both).
        """
        self._expected_array = array
        if array is not None:
            self._check_array(timeout_s)

    def _check_array(self, timeout_s: float = 1.0) -> None:
        expected = self._expected_array
        if expected is None:
            return
        p = self.protocol
        if p.info is None or p.need_info:  # (re)connecting: wait for the INFO
            self._info_event.wait(timeout_s)
        info = p.info
        if info is None or p.need_info:
            raise DeviceError(f"device on {self.url} has not reported its electrode array "
                              f"(no INFO in {timeout_s:g} s); it is not armed without one that "
                              f"matches the scenario's {expected.name!r}")
        reason = expected.mismatch(info.array_name, info.area_cm2)
        if reason is not None:
            raise DeviceError(f"device on {self.url} reports {reason}; start firmware-sim with "
                              f"--array {expected.name} or choose a scenario for that array")

    def arm(self, timeout_s: float = 1.0, *, expected_array: ElectrodeArray | None = None
            ) -> None:
        """Send ARM and wait for the answer.

        ``expected_array`` (or the one given to :meth:`expect_array`) must be what the
        device reported in INFO, else nothing is sent.

        Raises
        ------
        AuthenticationError
            The device NAKed with reason AUTH ("device rejected our key: check --key-file").
        DeviceError
            The device's electrode array is not the expected one, any other NAK, or no answer
            within ``timeout_s``.
        """
        self.check()
        if expected_array is not None:
            self._expected_array = expected_array
        self._check_array(timeout_s)
        self._alive()
        seq = self.port.send(Arm())
        self._counters["arms_sent"] += 1
        deadline = time.monotonic() + timeout_s
        with self._cond:
            while seq not in self._arm_results:
                left = deadline - time.monotonic()
                if left <= 0 or self.port.failure is not None:
                    break
                self._cond.wait(left)
            answer = self._arm_results.pop(seq, None)
        self.check()
        if answer is None:
            raise DeviceError(f"no answer to ARM from {self.url} in {timeout_s:g} s")
        if isinstance(answer, Nak):
            raise DeviceError(f"device refused ARM: {answer.reason.name} {answer.text}".strip())
        self._armed = True

    def arm_async(self) -> int:
        """Send ARM without waiting (the answer is handled by the reader thread); refused
        like :meth:`arm` when the device's electrode array is not the expected one."""
        self.check()
        self._check_array()
        self._alive()
        seq = self.port.send(Arm())
        self._counters["arms_sent"] += 1
        self._armed = True
        return seq

    def _maybe_auto_arm(self) -> None:
        if self.settings.auto_arm and not self._armed:
            self.arm_async()

    def send_stim(self, command: StimCommand, hop_last_sample: int = -1) -> int:
        """Send ``command`` as an authenticated STIM (does not wait for the ACK).

        ``hop_last_sample`` is the host stream index of the hop's last sample (-1: none).
        Returns the frame's sequence number.
        """
        self.check()
        self._alive()
        self._maybe_auto_arm()
        seq = self.port.send(self.protocol.stim(command, hop_last_sample))
        self.protocol.stim_sent(time.perf_counter_ns())
        return seq

    def rehearse_stim(self, command: StimCommand, hop_last_sample: int = -1) -> int:
        """Encode ``command`` as :meth:`send_stim` would and send nothing (no sequence
        number taken, no state changed): the control loop's shadow cycle warms the send
        path with it. Returns the encoded frame's length, bytes."""
        proto = self.protocol
        frame = encode_frame(proto.stim(command, hop_last_sample), direction=Direction.H2D,
                             seq=(proto.tx_seq + 1) & 0xFFFFFFFF, session=proto.guard.session or 0,
                             timestamp_us=time.perf_counter_ns() // 1000, key=self.keys.h2d)
        return len(frame)

    def send_stop(self) -> bool:
        """Send STOP (no tag, always accepted). Never raises; False if it could not be sent."""
        try:
            self.port.send(Stop())
            return True
        except NeuroloopError:
            self._counters["stop_failed"] += 1
            return False

    # ------------------------------------------------------------------ samples (SerialSource)
    def _source_info(self) -> SourceInfo:
        info = self.protocol.info
        if info is None:
            raise DeviceError(f"no INFO from {self.url}; open the link first")
        ctype = info.channel_type if info.channel_type in ("ecog", "eeg", "lfp", "emg") \
            else "misc"
        return SourceInfo(channel_names=info.channel_names,
                          channel_types=(ctype,) * info.n_channels,
                          sampling_rate_hz=info.sampling_rate_hz, unit="uV",
                          intention_names=info.intention_names)

    def _interrupted(self) -> bool:
        return self.port.failure is not None or self._closed

    def _read_into(self, out: np.ndarray, labels: np.ndarray, max_samples: int,
                   timeout: float | None) -> tuple[int, int, int]:
        """Copy up to ``max_samples`` consecutive samples; returns (n, first_index, recv_ns).

        Waits up to ``timeout`` (s; None: 1 s) for the first sample; never spans a gap
        (see :meth:`SampleQueue.read_into`).
        """
        self.check()
        self._alive()
        self._maybe_auto_arm()
        wait_s = 1.0 if timeout is None else max(0.0, timeout)
        n, first, recv = self.samples.read_into(out, labels, max_samples, wait_s,
                                                self._interrupted)
        if n == 0:
            self.check()
            if self._closed:
                raise DeviceError(f"link to {self.url} is closed")
        return n, first, recv

    # ------------------------------------------------------------------ supervision
    def poll_safety_inputs(self, now_ns: int | None = None) -> list[tuple[str, Any]]:
        """Link faults the supervisor must act on, as ``(kind, payload)`` pairs (see
        :class:`~neuroloop.link.monitor.LinkMonitor`; the control loop polls
        :attr:`monitor` itself every cycle).

        ``now_ns`` is accepted for the loop's signature; link timing always uses the host's
        monotonic clock (``time.perf_counter_ns``), as the frames' arrival times do.
        """
        return self.monitor.poll(-1, now_ns)

    # ------------------------------------------------------------------ statistics
    def stats(self) -> dict[str, Any]:
        """Counters and latency figures of the link (JSON-friendly)."""
        proto = self.protocol
        p = proto.parser
        c = self.counters
        rtt = percentiles_us(proto.rtt.values())
        lat = percentiles_us(proto.device_latency.values())
        info = proto.info
        util = None
        if info is not None:
            # the host sends one STIM per control hop, not per DATA frame: use the rate
            # it actually sent at (one per frame until two STIMs have gone out)
            n_stims = c["stims_sent"]
            span_s = (proto.last_stim_ns - proto.first_stim_ns) / _NS
            stim_hz = (n_stims - 1) / span_s if n_stims >= 2 and span_s > 0 else None
            u = link_utilisation(n_channels=info.n_channels,
                                 sampling_rate_hz=info.sampling_rate_hz,
                                 samples_per_frame=info.samples_per_frame, baud=self.baudrate,
                                 n_contacts=info.n_contacts, stim_rate_hz=stim_hz)
            util = {"baud": self.baudrate,
                    "d2h_pct": round(100 * u["d2h_utilisation"], 2),
                    "h2d_pct": round(100 * u["h2d_utilisation"], 2),
                    "headroom_pct": round(100 * u["headroom"], 2)}
        st = proto.status
        failure = self.port.failure
        return {
            "device": self.url,
            "device_array": info.array_name if info is not None else None,
            "frames_received": c["data_frames"],
            "frames_lost": c["frames_lost"],
            "last_frame_counter": proto.last_frame_counter,
            "samples_lost": c["samples_lost"],
            "crc_errors": p.crc_errors,
            "malformed_frames": p.malformed,
            "auth_failures": p.auth_failures,
            "wrong_direction": p.wrong_direction,
            "replayed_frames": c["replayed_frames"],
            "naks": {"total": c["naks"], "by_reason": dict(proto.naks_by_reason)},
            "acks": c["acks"],
            "stims_sent": c["stims_sent"],
            "acks_missing": c["acks_missing"],
            "reconnects": c["reconnects"],
            "frames_unsent": c["frames_unsent"],
            "device_reboots": c["device_reboots"],
            "heartbeats_missed": c["heartbeats_missed"],
            "heartbeats_sent": c["heartbeats_sent"],
            "rehearsals": c["rehearsals"],
            "samples_overflowed": c["samples_overflowed"],
            "frames_discarded_at_start": c["frames_discarded_at_start"],
            "link_rtt_us": {"p50": rtt["p50"], "p99": rtt["p99"], "max": rtt["max"]},
            "device_latency_us": lat,
            "frame_to_queue_us": percentiles_us(self._frame_to_queue.values()),
            "bytes_received": p.bytes_received,
            "bytes_sent": c["bytes_sent"],
            "utilisation": util,
            "device_state": (proto.device_state.name if proto.device_state is not None
                             else None),
            "battery_pct": round(float(st.battery_pct), 2) if st is not None else None,
            "error": str(failure) if failure is not None else None,
            "realtime": dict(self.port.realtime),
        }

    def device_latencies_us(self) -> np.ndarray:
        """Every device-measured latency so far (hop's last sample acquired -> STIM applied),
        us."""
        return self.protocol.device_latency.values() / 1000.0

    def rtts_us(self) -> np.ndarray:
        """Every STIM -> ACK round trip so far, host clock, us."""
        return self.protocol.rtt.values() / 1000.0


#: One open link per port (pyserial URL), shared by sources and stimulators; guarded by
#: :data:`_REGISTRY_LOCK` (as are the links' reference counts).
_REGISTRY: dict[str, DeviceLink] = {}
_REGISTRY_LOCK = threading.RLock()


def open_device_link(url: str, *, key_file: str | None = None, keys: LinkKeys | None = None,
                     baudrate: int | None = None, settings: LinkSettings | None = None
                     ) -> DeviceLink:
    """The open, shared link to ``url`` (created and opened on first use).

    Keys: ``keys``, else ``key_file``, else the URL's ``key_file`` option, else the
    environment (:func:`neuroloop.link.keys.load_keys`). Baud: ``baudrate``, else the URL's
    ``baud`` option, else 921600. The caller holds a reference; :meth:`DeviceLink.close`
    (or :meth:`DeviceLink.release`) ends it.

    Raises
    ------
    ConfigError
        No usable keys, or a bad ``baud`` option.
    DeviceError, AuthenticationError
        See :meth:`DeviceLink.open`.
    """
    opts = url_options(url)
    if baudrate is None:
        try:
            baudrate = int(opts.get("baud", 921600))
        except ValueError:
            raise ConfigError(f"device URL {url!r}: baud={opts['baud']!r} is not an integer; "
                              "use e.g. ?baud=921600") from None
    if baudrate <= 0:
        raise ConfigError(f"baud rate must be positive, got {baudrate}")
    port = pyserial_url(url)
    with _REGISTRY_LOCK:
        link = _REGISTRY.get(port)
        if link is not None and link.is_open:
            return link.acquire()
        if keys is None:
            keys = load_keys(key_file or opts.get("key_file"))
        link = DeviceLink(port, keys=keys, baudrate=baudrate, settings=settings)
        link.open()
        _REGISTRY[port] = link
        return link.acquire()
