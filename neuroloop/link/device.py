"""``DeviceLink``: neuroloop's end of the serial link to an implant (or to firmware_sim).

One :class:`DeviceLink` per port. It opens any pyserial URL (``/dev/ttyUSB0``, a pty path,
``socket://host:port``, ``loop://``), runs a reader thread that parses frames into a sample
queue and link bookkeeping, and a housekeeping thread that sends the host heartbeat and
watches for missing ACKs. On top of it:

* :attr:`DeviceLink.source` - a :class:`~neuroloop.link.serial_source.SerialSource`
  (``paced_by_device``): blocks with the device's sample indices, so gaps stay visible;
* :attr:`DeviceLink.stimulator` - a :class:`~neuroloop.link.serial_stimulator.SerialStimulator`:
  authenticated STIM without waiting for the ACK, STOP always;
* :meth:`DeviceLink.stats` - counters and latency percentiles for the run summary;
* :meth:`DeviceLink.poll_safety_inputs` - link faults the supervisor must act on.

Sharing: :func:`open_device_link` keeps one link per port in a registry, so a
``SerialSource`` and a ``SerialStimulator`` built from the same URL (``open_source(url)``,
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

import errno
import math
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import serial

from ..acquisition.base import NO_LABEL, SourceInfo
from ..errors import AuthenticationError, ConfigError, DeviceError, NeuroloopError
from ..runtime.stats import LatencyLog, percentiles_us
from ..stimulation.command import StimCommand
from ..stimulation.electrodes import ElectrodeArray
from .capacity import link_utilisation
from .codec import Direction, Frame, ReplayError, VersionError, encode_frame
from .framing import warm_up as warm_up_framing
from .keys import LinkKeys, load_keys
from .messages import (
    NO_LATENCY,
    NO_SAMPLE,
    Ack,
    Arm,
    Data,
    DeviceState,
    FaultFlag,
    GetInfo,
    Heartbeat,
    Info,
    Message,
    MsgType,
    Nak,
    NakReason,
    Status,
    Stim,
    Stop,
)
from .parser import StreamParser
from .session import SequenceGuard

__all__ = ["DeviceLink", "open_device_link", "pyserial_url", "LinkSettings"]

_NS = 1_000_000_000
#: At the loop's first read, a frame that reached the host this much later than the stream's
#: fastest frame had waited in the port's buffer (e.g. while the process locked its memory):
#: it is history, not input, and is skipped (us).
_STALE_FRAME_US = 10_000


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


@dataclass(frozen=True)
class LinkSettings:
    """Timing of the link's checks.

    Attributes
    ----------
    open_timeout_s : float
        A valid INFO frame must arrive within this after opening (else: baud/cable error).
    heartbeat_interval_s : float
        Host HEARTBEAT period (must be well below the device's watchdog, 300 ms default).
    liveness_timeout_s : float
        Heartbeats stop when the loop has not called read/send for this long.
    heartbeat_timeout_s : float or None
        No valid device frame for this long is ``heartbeat_lost`` (default: 3 device
        heartbeat periods, at least 0.3 s).
    stall_timeout_s : float or None
        No DATA for this long is ``stream_stalled`` (default: 3 frame periods, >= 0.3 s).
    ack_timeout_s : float
        A STIM without ACK or NAK after this long counts in ``acks_missing``.
    nak_storm_count, nak_storm_window_s : int, float
        This many NAKs within the window is a ``nak_storm``.
    reconnect_attempts, reconnect_delay_s : int, float
        How often (and how far apart) a vanished port is reopened before giving up.
    queue_s : float
        Seconds of samples buffered for a slow reader before the oldest are dropped.
    read_chunk_timeout_s : float
        pyserial read timeout of the reader thread.
    auto_arm : bool
        Send ARM on the first ``source.read`` or ``stimulator.send`` if nobody armed the
        device yet (the control loop starts; the device starts from zero output too).
    realtime_priority : int or None
        SCHED_FIFO priority the reader and heartbeat threads ask for (like the control
        loop, so that a busy machine does not delay frames); None keeps them time-shared.
        Refusal is not an error (see ``stats()["realtime"]``).
    """

    open_timeout_s: float = 2.0
    heartbeat_interval_s: float = 0.05
    liveness_timeout_s: float = 0.5
    heartbeat_timeout_s: float | None = None
    stall_timeout_s: float | None = None
    ack_timeout_s: float = 0.5
    nak_storm_count: int = 5
    nak_storm_window_s: float = 1.0
    reconnect_attempts: int = 3
    reconnect_delay_s: float = 0.2
    queue_s: float = 10.0
    read_chunk_timeout_s: float = 0.02
    auto_arm: bool = True
    realtime_priority: int | None = 50


class _Chunk:
    __slots__ = ("first", "data", "labels", "received_ns", "off")

    def __init__(self, first: int, data: np.ndarray, labels: np.ndarray, received_ns: int):
        self.first = first
        self.data = data
        self.labels = labels
        self.received_ns = received_ns
        self.off = 0


def _open_error(url: str, exc: BaseException, baudrate: int) -> DeviceError:
    """A one-line DeviceError for a port that would not open."""
    text = str(exc)
    low = text.lower()
    err = getattr(exc, "errno", None)
    if "exclusively lock" in low or err == errno.EBUSY or "busy" in low:
        return DeviceError(f"{url} is busy: another program has it open; close that program "
                           "(or the other neuroloop) first")
    if err == errno.ENOENT or "no such file" in low:
        return DeviceError(f"cannot open {url}: no such device; check the path (firmware-sim "
                           "prints its path on its first line)")
    if err == errno.EACCES or "permission denied" in low:
        return DeviceError(f"cannot open {url}: permission denied; add your user to the "
                           "'dialout' group or fix the device's permissions")
    if "connection refused" in low or err == errno.ECONNREFUSED:
        return DeviceError(f"cannot connect to {url}: nothing is listening there; start "
                           "firmware-sim --listen first or check host and port")
    if "baud" in low or isinstance(exc, ValueError):
        return DeviceError(f"cannot open {url} at {baudrate} baud ({text}); use a rate the "
                           "port supports, e.g. 921600")
    return DeviceError(f"cannot open {url}: {text}")


class DeviceLink:
    """A host's connection to one device.

    Parameters
    ----------
    url : str
        pyserial URL or neuroloop device URL (``serial:///dev/ttyUSB0``, ``/dev/pts/5``,
        ``socket://127.0.0.1:7000``, ``loop://``).
    keys : LinkKeys
    baudrate : int
        Line speed (ignored by sockets and ptys' peers, checked by firmware_sim's pty).
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
        self._factory = serial_factory
        self._ser: Any = None
        self._write_lock = threading.Lock()
        self._cond = threading.Condition()
        self._stop_threads = threading.Event()
        self._threads: list[threading.Thread] = []
        self._parser = StreamParser(Direction.D2H, keys.d2h)
        self._guard = SequenceGuard()
        self._tx_seq = 0
        self._is_open = False
        self._closed = False
        self._refs = 0
        self._failure: NeuroloopError | None = None
        self._reconnecting = False
        self._auth_rejected = False
        self.info: Info | None = None
        self._info_event = threading.Event()
        self._need_info = False
        # samples
        self._queue: deque[_Chunk] = deque()
        self._queued_samples = 0
        self._consumer_started = False
        self._skip_stale = False
        self._min_age_us = 2**62
        self._last_fc: int | None = None
        self._index_offset = 0
        self._next_host_index = 0
        self._offset_pending = False
        # link state
        self._armed = False
        self._expected_array: ElectrodeArray | None = None
        self._arm_results: dict[int, Ack | Nak] = {}
        self._pending: dict[int, int] = {}  # STIM seq -> send time (ns), under _pending_lock
        self._pending_lock = threading.Lock()
        self._nak_times: deque[int] = deque()
        self._last_rx_ns = 0
        self._last_data_ns = 0
        self._last_hb_ns = 0
        self._consumer_ns = 0
        self._first_stim_ns = 0  # perf_counter_ns of the first and the latest STIM sent
        self._last_stim_ns = 0
        self.device_state: DeviceState | None = None
        self.status: Status | None = None
        self._impedance_new: np.ndarray | None = None
        self._fault_reported: set[str] = set()
        self._storm_active = False
        # counters
        self.counters: dict[str, int] = {
            "data_frames": 0, "frames_lost": 0, "samples_lost": 0, "samples_overflowed": 0,
            "frames_discarded_at_start": 0, "replayed_frames": 0, "naks": 0, "acks": 0,
            "stims_sent": 0, "acks_missing": 0, "reconnects": 0, "device_reboots": 0,
            "heartbeats_missed": 0, "heartbeats_sent": 0, "bytes_sent": 0, "stop_failed": 0,
            "arms_sent": 0, "frames_unsent": 0,
        }
        self.naks_by_reason: dict[str, int] = {}
        self.last_nak: Nak | None = None
        self._realtime: dict[str, str] = {}
        self._rtt = LatencyLog(1 << 16)
        self._dev_latency = LatencyLog(1 << 16)
        from .serial_source import SerialSource
        from .serial_stimulator import SerialStimulator

        self.source = SerialSource(link=self)
        self.stimulator = SerialStimulator(link=self)

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
        self._ser = self._open_port()
        self._is_open = True
        self._start_threads()
        try:
            self._handshake()
        except BaseException:
            self.close()
            raise
        return self

    def _open_port(self) -> Any:
        try:
            ser = self._factory(self.url, baudrate=self.baudrate,
                                timeout=self.settings.read_chunk_timeout_s, write_timeout=1.0,
                                exclusive=True)
        except (serial.SerialException, OSError, ValueError) as exc:
            raise _open_error(self.url, exc, self.baudrate) from None
        try:
            ser.reset_input_buffer()
        except (serial.SerialException, OSError):
            pass
        return ser

    def _start_threads(self) -> None:
        self._stop_threads.clear()
        self._threads = [threading.Thread(target=self._reader, name="neuroloop-link-reader",
                                          daemon=True),
                         threading.Thread(target=self._housekeeping,
                                          name="neuroloop-link-heartbeat", daemon=True)]
        for t in self._threads:
            t.start()

    def _handshake(self) -> None:
        s = self.settings
        self._info_event.clear()
        deadline = time.monotonic() + s.open_timeout_s
        next_ask = 0.0
        while not self._info_event.is_set():
            now = time.monotonic()
            if self._failure is not None:
                raise self._failure
            if now >= deadline:
                raise self._no_frame_error()
            if now >= next_ask:
                self._send(GetInfo())
                next_ask = now + 0.25
            self._info_event.wait(min(0.05, max(0.0, deadline - now)))

    def _no_frame_error(self) -> NeuroloopError:
        p = self._parser
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
        self._refs += 1
        return self

    def release(self) -> None:
        """Drop a reference; closes the link when none is left."""
        self._refs -= 1
        if self._refs <= 0:
            self.close()

    def close(self) -> None:
        """Send STOP, stop the threads and close the port. Safe to call more than once."""
        if self._closed:
            return
        self._closed = True
        _REGISTRY.pop(self.url, None)
        if self._is_open:
            self.send_stop()
        self._stop_threads.set()
        for t in self._threads:
            if t is not threading.current_thread():
                t.join(timeout=1.0)
        ser, self._ser = self._ser, None
        if ser is not None:
            try:
                ser.close()
            except (serial.SerialException, OSError):
                pass
        self._is_open = False
        with self._cond:
            self._cond.notify_all()

    @property
    def is_open(self) -> bool:
        return self._is_open and not self._closed

    def __enter__(self) -> DeviceLink:
        return self.open()

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ sending
    def _send(self, msg: Message) -> int:
        """Encode and write one host frame; returns its sequence number (-1 when the port is
        being reopened and the frame was dropped)."""
        ser = self._ser
        if ser is None:
            raise DeviceError(f"link to {self.url} is closed")
        with self._write_lock:
            self._tx_seq += 1
            seq = self._tx_seq
            frame = encode_frame(msg, direction=Direction.H2D, seq=seq,
                                 session=self._guard.session or 0,
                                 timestamp_us=time.monotonic_ns() // 1000, key=self.keys.h2d)
            if msg.TYPE == MsgType.STIM:
                with self._pending_lock:
                    self._pending[seq] = time.perf_counter_ns()
            try:
                ser.write(frame)
            except (serial.SerialException, OSError, TypeError, AttributeError) as exc:
                with self._pending_lock:
                    self._pending.pop(seq, None)
                if self._reconnecting:
                    # the reader is reopening the port: this frame is lost like any other on
                    # a broken line (the supervisor sees heartbeat_lost meanwhile)
                    self.counters["frames_unsent"] += 1
                    return -1
                raise self._set_failure(exc) from None
            self.counters["bytes_sent"] += len(frame)
        return seq

    def check(self) -> None:
        """Raise the link's failure, if any (DeviceError, AuthenticationError)."""
        if self._failure is not None:
            raise self._failure
        if self._auth_rejected:
            raise AuthenticationError("device rejected our key: check --key-file (the device "
                                      f"NAKed a command from {self.url} with reason AUTH)")

    def _alive(self) -> None:
        self._consumer_ns = time.perf_counter_ns()

    # ------------------------------------------------------------------ electrode array
    @property
    def device_array_name(self) -> str | None:
        """Catalogue name of the electrode array the device reported in INFO (None before)."""
        return self.info.array_name if self.info is not None else None

    @property
    def device_area_cm2(self) -> np.ndarray | None:
        """Per-contact areas the device reported in INFO, cm^2 (a copy; None before)."""
        return self.info.area_cm2.copy() if self.info is not None else None

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
        if self.info is None or self._need_info:  # (re)connecting: wait for the INFO
            self._info_event.wait(timeout_s)
        info = self.info
        if info is None or self._need_info:
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
        seq = self._send(Arm())
        self.counters["arms_sent"] += 1
        deadline = time.monotonic() + timeout_s
        with self._cond:
            while seq not in self._arm_results:
                left = deadline - time.monotonic()
                if left <= 0 or self._failure is not None:
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
        seq = self._send(Arm())
        self.counters["arms_sent"] += 1
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
        dev_index = hop_last_sample - self._index_offset if hop_last_sample >= 0 else -1
        msg = Stim(int(command.program_id), int(command.cycle) & 0xFFFFFFFF,
                   dev_index if dev_index >= 0 else NO_SAMPLE, float(command.pulse_width_us),
                   float(command.frequency_hz), float(command.interphase_gap_us),
                   float(command.case_ma), int(command.waveform), command.amplitude_ma)
        seq = self._send(msg)
        self.counters["stims_sent"] += 1
        self._last_stim_ns = time.perf_counter_ns()
        if not self._first_stim_ns:
            self._first_stim_ns = self._last_stim_ns
        return seq

    def send_stop(self) -> bool:
        """Send STOP (no tag, always accepted). Never raises; False if it could not be sent."""
        try:
            self._send(Stop())
            return True
        except NeuroloopError:
            self.counters["stop_failed"] += 1
            return False

    # ------------------------------------------------------------------ reader thread
    def _enter_realtime(self) -> None:
        prio = self.settings.realtime_priority
        if prio is None:
            return
        from ..runtime.realtime import enter_realtime

        state = enter_realtime(prio, lock_memory=False)
        self._realtime[threading.current_thread().name] = state.scheduler

    def _reader(self) -> None:
        self._enter_realtime()
        while not self._stop_threads.is_set():
            ser = self._ser
            if ser is None:
                return
            try:
                n = ser.in_waiting
                data = ser.read(n if n > 0 else 1)
            except (serial.SerialException, OSError, TypeError, AttributeError) as exc:
                if self._stop_threads.is_set():
                    return
                if not self._reconnect(exc):
                    return
                continue
            if not data:
                continue
            now = time.perf_counter_ns()
            try:
                for item in self._parser.feed(data):
                    if isinstance(item, Frame):
                        self._dispatch(item, now)
            except Exception as exc:  # noqa: BLE001 - a bug here must not pass silently
                self._set_failure(DeviceError(f"internal error handling frames from "
                                              f"{self.url}: {exc!r}"))
                return

    def _reconnect(self, exc: BaseException) -> bool:
        """Reopen a vanished port; False (failure recorded, STOP attempted) if it stays gone."""
        self._reconnecting = True
        try:
            return self._reconnect_attempts(exc)
        finally:
            self._reconnecting = False

    def _reconnect_attempts(self, exc: BaseException) -> bool:
        old = self._ser
        try:
            old.close()
        except Exception:  # noqa: BLE001 - the port is already broken
            pass
        for _ in range(self.settings.reconnect_attempts):
            if self._stop_threads.wait(self.settings.reconnect_delay_s):
                return False
            try:
                ser = self._factory(self.url, baudrate=self.baudrate,
                                    timeout=self.settings.read_chunk_timeout_s,
                                    write_timeout=1.0, exclusive=True)
            except (serial.SerialException, OSError, ValueError):
                continue
            self._ser = ser
            self._parser.reset()
            self.counters["reconnects"] += 1
            try:
                self._send(GetInfo())
            except NeuroloopError:
                continue
            return True
        self._ser = None
        self._set_failure(DeviceError(
            f"device {self.url} vanished ({_short(exc)}); the device's watchdog stops its "
            "output; check the cable and restart"))
        return False

    def _set_failure(self, exc: BaseException) -> NeuroloopError:
        if self._failure is None:
            self._failure = exc if isinstance(exc, NeuroloopError) else DeviceError(
                f"device {self.url} vanished ({_short(exc)}); the device's watchdog stops its "
                "output; check the cable and restart")
        with self._cond:
            self._cond.notify_all()
        return self._failure

    def _dispatch(self, frame: Frame, now: int) -> None:
        try:
            new_session = self._guard.accept(frame.header)
        except ReplayError:
            self.counters["replayed_frames"] += 1
            return
        if new_session and self._guard.session_changes:
            self.counters["device_reboots"] += 1
            self._need_info = True
            self._info_event.clear()
            self._last_fc = None
            self._offset_pending = True
            self._armed = False
            self._min_age_us = 2**62  # a real device's clock restarts at boot
        if self._last_hb_ns and now - self._last_hb_ns > 0 and self.info is not None:
            period = max(self.info.heartbeat_ms, 1) * 1_000_000
            gap = now - self._last_hb_ns
            if frame.header.msg_type == MsgType.HEARTBEAT and gap > 1.5 * period:
                self.counters["heartbeats_missed"] += int(gap // period) - 1
        self._last_rx_ns = now
        msg = frame.message
        t = frame.header.msg_type
        if t == MsgType.DATA:
            self._on_data(msg, now, frame.timestamp_us)  # type: ignore[arg-type]
        elif t == MsgType.HEARTBEAT:
            self._last_hb_ns = now
            hb: Heartbeat = msg  # type: ignore[assignment]
            try:
                self.device_state = DeviceState(hb.state)
            except ValueError:
                self.device_state = None
        elif t == MsgType.ACK:
            self._on_ack(msg, now)  # type: ignore[arg-type]
        elif t == MsgType.NAK:
            self._on_nak(msg, now)  # type: ignore[arg-type]
        elif t == MsgType.STATUS:
            st: Status = msg  # type: ignore[assignment]
            self.status = st
            self.device_state = st.state
            self._impedance_new = st.impedance_ohm
        elif t == MsgType.INFO:
            info: Info = msg  # type: ignore[assignment]
            self.info = info
            with self._write_lock:
                self._tx_seq = max(self._tx_seq, info.last_h2d_seq)
            self._need_info = False
            self._info_event.set()

    def _on_data(self, d: Data, now: int, acquired_us: int) -> None:
        if self.info is None:
            return  # stream described by INFO first
        self.counters["data_frames"] += 1
        # how much later than the fastest frame so far this one arrived (device clock vs
        # host clock; the offset cancels): the first read skips frames that are history
        age = now // 1000 - acquired_us
        self._min_age_us = min(self._min_age_us, age)
        stale = age - self._min_age_us > _STALE_FRAME_US
        n = d.n_samples
        if self._offset_pending:
            # the device restarted its stream: continue our indices past the time it was away
            away = (now - self._last_data_ns) / _NS if self._last_data_ns else 0.0
            missing = max(0, int(round(away * self.info.sampling_rate_hz)) - n)
            self._index_offset = self._next_host_index + missing - d.first_sample_index
            self.counters["samples_lost"] += missing
            self.counters["frames_lost"] += math.ceil(missing / max(1, self.info.samples_per_frame))
            self._offset_pending = False
        elif self._last_fc is not None:
            gap = (d.frame_counter - self._last_fc - 1) & 0xFFFFFFFF
            if gap and gap < 0x8000_0000:
                self.counters["frames_lost"] += gap
        self._last_fc = d.frame_counter
        first = d.first_sample_index + self._index_offset
        if first > self._next_host_index and self.counters["data_frames"] > 1:
            self.counters["samples_lost"] += first - self._next_host_index
        self._next_host_index = first + n
        self._last_data_ns = now
        data = d.samples.astype(np.float64)
        data *= d.uv_per_lsb
        labels = (d.labels.astype(np.int8) if d.labels is not None
                  else np.full(n, NO_LABEL, dtype=np.int8))
        cap = int(self.settings.queue_s * self.info.sampling_rate_hz)
        with self._cond:
            if self._skip_stale:
                if stale:
                    self.counters["frames_discarded_at_start"] += 1
                    return
                self._skip_stale = False
            self._queue.append(_Chunk(first, data, labels, now))
            self._queued_samples += n
            while self._queued_samples > cap and len(self._queue) > 1:
                old = self._queue.popleft()
                left = old.data.shape[0] - old.off
                self._queued_samples -= left
                self.counters["samples_overflowed"] += left
            self._cond.notify_all()

    def _on_ack(self, a: Ack, now: int) -> None:
        self.counters["acks"] += 1
        if a.acked_type == MsgType.STIM:
            with self._pending_lock:
                sent = self._pending.pop(a.acked_seq, None)
            if sent is not None:
                self._rtt.add(now - sent)
            if a.latency_us != NO_LATENCY:
                self._dev_latency.add(a.latency_us * 1000)
        elif a.acked_type == MsgType.ARM:
            with self._cond:
                self._arm_results[a.acked_seq] = a
                self._cond.notify_all()

    def _on_nak(self, k: Nak, now: int) -> None:
        self.counters["naks"] += 1
        self.naks_by_reason[k.reason.name] = self.naks_by_reason.get(k.reason.name, 0) + 1
        self.last_nak = k
        self._nak_times.append(now)
        with self._pending_lock:
            self._pending.pop(k.nacked_seq, None)
        if k.reason == NakReason.AUTH:
            self._auth_rejected = True
        if k.nacked_type == MsgType.ARM:
            self._armed = False
            with self._cond:
                self._arm_results[k.nacked_seq] = k
                self._cond.notify_all()
        if k.reason == NakReason.REPLAY:
            # our sequence numbers fell behind the device's (another host session): catch up
            with self._write_lock:
                self._tx_seq = max(self._tx_seq, k.nacked_seq + 1000)

    # ------------------------------------------------------------------ housekeeping thread
    def _housekeeping(self) -> None:
        self._enter_realtime()
        try:
            self._housekeeping_loop()
        except Exception as exc:  # noqa: BLE001 - without heartbeats the device stops: say why
            self._set_failure(DeviceError(f"link heartbeat thread for {self.url} failed: "
                                          f"{exc!r}"))

    def _housekeeping_loop(self) -> None:
        s = self.settings
        while not self._stop_threads.wait(s.heartbeat_interval_s):
            if self._ser is None or self._failure is not None:
                continue
            now = time.perf_counter_ns()
            try:
                if self._need_info:
                    self._send(GetInfo())
                if self._armed and now - self._consumer_ns < s.liveness_timeout_s * _NS:
                    self._send(Heartbeat(0, self._guard.last_seq if self._guard.last_seq > 0
                                         else 0))
                    self.counters["heartbeats_sent"] += 1
            except NeuroloopError:
                continue
            limit = now - int(s.ack_timeout_s * _NS)
            with self._pending_lock:
                late = [q for q, t in self._pending.items() if t < limit]
                for q in late:
                    del self._pending[q]
            self.counters["acks_missing"] += len(late)

    # ------------------------------------------------------------------ samples (SerialSource)
    def _source_info(self) -> SourceInfo:
        info = self.info
        if info is None:
            raise DeviceError(f"no INFO from {self.url}; open the link first")
        ctype = info.channel_type if info.channel_type in ("ecog", "eeg", "lfp", "emg") \
            else "misc"
        return SourceInfo(channel_names=info.channel_names,
                          channel_types=(ctype,) * info.n_channels,
                          sampling_rate_hz=info.sampling_rate_hz, unit="uV",
                          intention_names=info.intention_names)

    def _read_into(self, out: np.ndarray, labels: np.ndarray, max_samples: int,
                   timeout: float | None) -> tuple[int, int, int]:
        """Copy up to ``max_samples`` consecutive samples; returns (n, first_index, recv_ns).

        Waits up to ``timeout`` (None: 1 s) for the first sample; never spans a gap.
        """
        self.check()
        self._alive()
        self._maybe_auto_arm()
        wait_s = 1.0 if timeout is None else max(0.0, timeout)
        deadline = time.monotonic() + wait_s
        with self._cond:
            if not self._consumer_started:
                # the control loop starts now: samples queued before it are history, and so
                # are frames still in the port's buffer (arriving later than the stream's
                # fastest frame by more than _STALE_FRAME_US)
                self._consumer_started = True
                self._skip_stale = True
                self.counters["frames_discarded_at_start"] += len(self._queue)
                self._queue.clear()
                self._queued_samples = 0
            while not self._queue:
                if self._failure is not None or self._closed:
                    break
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self._cond.wait(left)
            if not self._queue:
                self.check()
                if self._closed:
                    raise DeviceError(f"link to {self.url} is closed")
                return 0, 0, 0
            fill = 0
            first = 0
            recv = 0
            while self._queue and fill < max_samples:
                ch = self._queue[0]
                start = ch.first + ch.off
                if fill and start != first + fill:
                    break  # a gap: the next block starts there
                if not fill:
                    first = start
                k = min(max_samples - fill, ch.data.shape[0] - ch.off)
                out[fill:fill + k] = ch.data[ch.off:ch.off + k]
                labels[fill:fill + k] = ch.labels[ch.off:ch.off + k]
                fill += k
                ch.off += k
                recv = ch.received_ns
                self._queued_samples -= k
                if ch.off >= ch.data.shape[0]:
                    self._queue.popleft()
            return fill, first, recv

    # ------------------------------------------------------------------ supervision
    def _timeouts_ns(self) -> tuple[int, int]:
        s = self.settings
        info = self.info
        hb_ms = info.heartbeat_ms if info is not None else 100
        frame_s = (info.samples_per_frame / info.sampling_rate_hz) if info is not None else 0.1
        hb = s.heartbeat_timeout_s if s.heartbeat_timeout_s is not None \
            else max(0.3, 3 * hb_ms / 1000.0)
        stall = s.stall_timeout_s if s.stall_timeout_s is not None else max(0.3, 3 * frame_s)
        return int(hb * _NS), int(stall * _NS)

    def poll_safety_inputs(self, now_ns: int | None = None) -> list[tuple[str, Any]]:
        """Link faults the supervisor must act on, as ``(kind, payload)`` pairs.

        ``heartbeat_lost`` (no valid device frame for the heartbeat timeout, or the port
        vanished) and ``stream_stalled`` (no DATA for the stall timeout) are reported on
        every poll while they last (the supervisor wants them every cycle). ``nak_storm``
        (``nak_storm_count`` NAKs within ``nak_storm_window_s``) and ``device_fault``
        (device state WATCHDOG or FAULT, or fault flags other than impedance) are reported
        once when they begin. ``impedance`` carries each new STATUS impedance array (ohm).

        ``now_ns`` is accepted for the loop's hook signature; link timing always uses the
        host's monotonic clock (``time.perf_counter_ns``), as the frames' arrival times do.
        """
        now = time.perf_counter_ns()
        out: list[tuple[str, Any]] = []
        hb_to, stall_to = self._timeouts_ns()
        if self._failure is not None:
            out.append(("heartbeat_lost", str(self._failure)))
        elif self._last_rx_ns and now - self._last_rx_ns > hb_to:
            out.append(("heartbeat_lost",
                        f"no frame from the device for {(now - self._last_rx_ns) / 1e6:.0f} ms"))
        elif self._last_data_ns and now - self._last_data_ns > stall_to:
            out.append(("stream_stalled",
                        f"no DATA for {(now - self._last_data_ns) / 1e6:.0f} ms"))
        window = int(self.settings.nak_storm_window_s * _NS)
        while self._nak_times and self._nak_times[0] < now - window:
            self._nak_times.popleft()
        storm = len(self._nak_times) >= self.settings.nak_storm_count
        if storm and not self._storm_active:
            last = self.last_nak
            out.append(("nak_storm", f"{len(self._nak_times)} NAKs in "
                                     f"{self.settings.nak_storm_window_s:g} s, last "
                                     f"{last.reason.name if last else '?'}"))
        self._storm_active = storm
        reasons = self._fault_reasons()
        new = [text for key, text in reasons.items() if key not in self._fault_reported]
        if new:
            out.append(("device_fault", "; ".join(new)))
        self._fault_reported = set(reasons)
        z = self._impedance_new
        if z is not None:
            self._impedance_new = None
            out.append(("impedance", z))
        return out

    def _fault_reasons(self) -> dict[str, str]:
        """Current device faults, by reason (each reported once when it appears)."""
        out: dict[str, str] = {}
        st = self.status
        flags = st.fault_flags if st is not None else FaultFlag.NONE
        if self.device_state == DeviceState.WATCHDOG or flags & FaultFlag.WATCHDOG_TRIPPED:
            out["watchdog"] = "device watchdog tripped: output ramped to zero until re-armed"
        if self.device_state == DeviceState.FAULT or flags & FaultFlag.BATTERY_LOW:
            pct = f" ({st.battery_pct:.1f} %)" if st is not None else ""
            out["battery"] = f"device fault latched: battery low{pct}"
        # impedance arrives as its own input; TX_OVERFLOW (nobody read the line) is not a
        # stimulation fault
        n = self.counters["device_reboots"]
        if n:
            out[f"reboot{n}"] = f"device rebooted ({n}x): disarmed, re-arm needed"
        return out

    # ------------------------------------------------------------------ statistics
    def stats(self) -> dict[str, Any]:
        """Counters and latency figures of the link (JSON-friendly)."""
        p = self._parser
        rtt = percentiles_us(self._rtt.values())
        lat = percentiles_us(self._dev_latency.values())
        info = self.info
        util = None
        if info is not None:
            # the host sends one STIM per control hop, not per DATA frame: use the rate
            # it actually sent at (one per frame until two STIMs have gone out)
            n_stims = self.counters["stims_sent"]
            span_s = (self._last_stim_ns - self._first_stim_ns) / _NS
            stim_hz = (n_stims - 1) / span_s if n_stims >= 2 and span_s > 0 else None
            u = link_utilisation(n_channels=info.n_channels,
                                 sampling_rate_hz=info.sampling_rate_hz,
                                 samples_per_frame=info.samples_per_frame, baud=self.baudrate,
                                 n_contacts=info.n_contacts, stim_rate_hz=stim_hz)
            util = {"baud": self.baudrate,
                    "d2h_pct": round(100 * u["d2h_utilisation"], 2),
                    "h2d_pct": round(100 * u["h2d_utilisation"], 2),
                    "headroom_pct": round(100 * u["headroom"], 2)}
        st = self.status
        return {
            "device": self.url,
            "device_array": info.array_name if info is not None else None,
            "frames_received": self.counters["data_frames"],
            "frames_lost": self.counters["frames_lost"],
            "last_frame_counter": self._last_fc,
            "samples_lost": self.counters["samples_lost"],
            "crc_errors": p.crc_errors,
            "malformed_frames": p.malformed,
            "auth_failures": p.auth_failures,
            "wrong_direction": p.wrong_direction,
            "replayed_frames": self.counters["replayed_frames"],
            "naks": {"total": self.counters["naks"], "by_reason": dict(self.naks_by_reason)},
            "acks": self.counters["acks"],
            "stims_sent": self.counters["stims_sent"],
            "acks_missing": self.counters["acks_missing"],
            "reconnects": self.counters["reconnects"],
            "frames_unsent": self.counters["frames_unsent"],
            "device_reboots": self.counters["device_reboots"],
            "heartbeats_missed": self.counters["heartbeats_missed"],
            "heartbeats_sent": self.counters["heartbeats_sent"],
            "samples_overflowed": self.counters["samples_overflowed"],
            "frames_discarded_at_start": self.counters["frames_discarded_at_start"],
            "link_rtt_us": {"p50": rtt["p50"], "p99": rtt["p99"], "max": rtt["max"]},
            "device_latency_us": lat,
            "bytes_received": p.bytes_received,
            "bytes_sent": self.counters["bytes_sent"],
            "utilisation": util,
            "device_state": self.device_state.name if self.device_state is not None else None,
            "battery_pct": round(float(st.battery_pct), 2) if st is not None else None,
            "error": str(self._failure) if self._failure is not None else None,
            "realtime": dict(self._realtime),
        }

    def device_latencies_us(self) -> np.ndarray:
        """Every device-measured latency so far (hop's last sample acquired -> STIM applied)."""
        return self._dev_latency.values() / 1000.0

    def rtts_us(self) -> np.ndarray:
        """Every STIM -> ACK round trip so far, host clock, us."""
        return self._rtt.values() / 1000.0


def _short(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0][:120]


_REGISTRY: dict[str, DeviceLink] = {}
_REGISTRY_LOCK = threading.Lock()


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
