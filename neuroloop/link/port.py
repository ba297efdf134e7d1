"""``LinkPort``: the serial port of a link and the two threads that own it.

Like pyserial's ``ReaderThread`` (which leaves framing to a ``Protocol``): this module moves
bytes and keeps time; what they mean is :class:`~neuroloop.link.host_protocol.HostProtocol`'s.

* the **reader** thread reads whatever bytes arrived, hands them to the protocol with their
  arrival time (``time.perf_counter_ns``) and passes the resulting events to ``on_events``;
  when the port vanishes it reopens it (``reconnect_attempts`` x ``reconnect_delay_s``) and
  asks the device for INFO again, else records the failure; ``rehearse_lead_s`` before the
  next DATA frame is due it wakes (when the port can be waited on with ``select``) and
  rehearses the last frame's decode, so that the frame's own decode, which is on the path
  from sample to stimulation, runs with warm caches (counted in ``rehearsals``);
* the **heartbeat** thread sends GET_INFO while the protocol waits for one (after a device
  reboot), the host HEARTBEAT every ``heartbeat_interval_s`` while ``heartbeat_wanted``
  says so (the link is armed and the control loop is alive), and gives up on STIMs whose
  ACK is later than ``ack_timeout_s``;
* :meth:`LinkPort.send` numbers, encodes and writes one frame under the write lock (so frames
  leave in sequence order whichever thread sends them).

A failure (port gone for good, a bug in a thread) is recorded once (:attr:`LinkPort.failure`)
and reported to ``on_failure``, so that whoever waits on the link wakes up.
"""

from __future__ import annotations

import errno
import io
import select
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

import serial

from ..errors import DeviceError, NeuroloopError
from .host_protocol import HostProtocol, LinkEvent
from .messages import GetInfo, Heartbeat, Message
from .settings import LinkSettings

__all__ = ["LinkPort", "open_error"]

_NS = 1_000_000_000
_PORT_ERRORS = (serial.SerialException, OSError, TypeError, AttributeError)


def open_error(url: str, exc: BaseException, baudrate: int) -> DeviceError:
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


def _short(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0][:120]


class LinkPort:
    """One serial port, its reader thread and its heartbeat thread.

    Parameters
    ----------
    url : str
        pyserial URL (``/dev/ttyUSB0``, a pty path, ``socket://host:port``, ``loop://``).
    baudrate : int
        Line speed, baud.
    settings : LinkSettings
    protocol : HostProtocol
        Gets the bytes read and encodes the frames sent.
    on_events : callable
        ``on_events(events)``, in the reader thread, for the events of each read.
    heartbeat_wanted : callable
        ``heartbeat_wanted(now_ns) -> bool``: send the host HEARTBEAT now.
    on_failure : callable
        Called once the failure is recorded (wake whoever waits).
    serial_factory : callable
        ``serial.serial_for_url`` (injectable for tests).

    Attributes
    ----------
    ser : serial.Serial or None
        The open port (None before :meth:`open`, after :meth:`close` or a failure).
    counters : dict of str to int
        ``bytes_sent``, ``frames_unsent`` (dropped while the port was being reopened),
        ``reconnects``, ``heartbeats_sent``, ``rehearsals`` (decodes rehearsed before a
        DATA frame was due).
    realtime : dict of str to str
        Scheduler each thread got (``SCHED_FIFO`` or why not).
    """

    def __init__(self, url: str, *, baudrate: int, settings: LinkSettings,
                 protocol: HostProtocol,
                 on_events: Callable[[Sequence[LinkEvent]], None] = lambda events: None,
                 heartbeat_wanted: Callable[[int], bool] = lambda now_ns: False,
                 on_failure: Callable[[], None] = lambda: None,
                 serial_factory: Callable[..., Any] = serial.serial_for_url) -> None:
        self.url = url
        self.baudrate = int(baudrate)
        self.settings = settings
        self.protocol = protocol
        self._on_events = on_events
        self._heartbeat_wanted = heartbeat_wanted
        self._on_failure = on_failure
        self._factory = serial_factory
        self.ser: Any = None
        self._write_lock = threading.Lock()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self.failure: NeuroloopError | None = None
        self.reconnecting = False
        self.counters: dict[str, int] = {"bytes_sent": 0, "frames_unsent": 0, "reconnects": 0,
                                         "heartbeats_sent": 0, "rehearsals": 0}
        self.realtime: dict[str, str] = {}
        lead = settings.rehearse_lead_s
        self._rehearse_lead_ns = int(lead * _NS) if lead is not None and lead > 0 else 0
        self._rehearsed_for = 0  # the due time of the DATA frame last rehearsed for, ns

    # ------------------------------------------------------------------ open / close
    def _open_serial(self) -> Any:
        return self._factory(self.url, baudrate=self.baudrate,
                             timeout=self.settings.read_chunk_timeout_s, write_timeout=1.0,
                             exclusive=True)

    def open(self) -> None:
        """Open the port (exclusive), flush stale input and start both threads.

        Raises
        ------
        DeviceError
            The port cannot be opened (one line: busy, no such device, permission,
            refused, baud rate).
        """
        try:
            ser = self._open_serial()
        except (serial.SerialException, OSError, ValueError) as exc:
            raise open_error(self.url, exc, self.baudrate) from None
        try:
            ser.reset_input_buffer()
        except (serial.SerialException, OSError):
            pass
        self.ser = ser
        self._stop.clear()
        self._threads = [threading.Thread(target=self._reader, name="neuroloop-link-reader",
                                          daemon=True),
                         threading.Thread(target=self._housekeeping,
                                          name="neuroloop-link-heartbeat", daemon=True)]
        for t in self._threads:
            t.start()

    def close(self) -> None:
        """Stop the threads and close the port (idempotent)."""
        self._stop.set()
        for t in self._threads:
            if t is not threading.current_thread():
                t.join(timeout=1.0)
        ser, self.ser = self.ser, None
        if ser is not None:
            try:
                ser.close()
            except (serial.SerialException, OSError):
                pass

    # ------------------------------------------------------------------ sending
    def send(self, msg: Message) -> int:
        """Encode and write one host frame; returns its sequence number (-1 when the port is
        being reopened and the frame was dropped, counted in ``frames_unsent``).

        Raises
        ------
        DeviceError
            The port is closed, or the write failed (the failure is recorded).
        """
        ser = self.ser
        if ser is None:
            raise DeviceError(f"link to {self.url} is closed")
        with self._write_lock:
            seq, frame = self.protocol.encode(msg, time.perf_counter_ns(),
                                              time.monotonic_ns() // 1000)
            try:
                ser.write(frame)
            except _PORT_ERRORS as exc:
                self.protocol.unsent(seq)
                if self.reconnecting or self._peer_hung_up(exc):
                    # the reader is reopening the port (or will, at its next read: the peer
                    # hung up): this frame is lost like any other on a broken line (the
                    # supervisor sees heartbeat_lost meanwhile)
                    self.counters["frames_unsent"] += 1
                    return -1
                raise self.set_failure(exc) from None
            self.counters["bytes_sent"] += len(frame)
        return seq

    def _peer_hung_up(self, exc: BaseException) -> bool:
        """A write failed because the peer closed the connection (EPIPE, ECONNRESET) while
        the reader thread runs: it sees the end of the stream at its next read and reconnects
        or records the failure itself. (A heartbeat written between the hang-up and that read
        used to record a permanent failure: a flaky socket-reconnect test.)"""
        if self._stop.is_set() or not any(t.is_alive() for t in self._threads[:1]):
            return False
        for e in (exc, exc.__context__, exc.__cause__):
            if isinstance(e, OSError) and e.errno in (errno.EPIPE, errno.ECONNRESET):
                return True
        text = str(exc).lower()
        return "broken pipe" in text or "connection reset" in text

    # ------------------------------------------------------------------ failure
    def set_failure(self, exc: BaseException) -> NeuroloopError:
        """Record the link's failure (the first one sticks) and wake whoever waits."""
        if self.failure is None:
            self.failure = exc if isinstance(exc, NeuroloopError) else DeviceError(
                f"device {self.url} vanished ({_short(exc)}); the device's watchdog stops its "
                "output; check the cable and restart")
        self._on_failure()
        return self.failure

    # ------------------------------------------------------------------ threads
    def _enter_realtime(self) -> None:
        prio = self.settings.realtime_priority
        if prio is None:
            return
        from ..realtime import enter_realtime

        state = enter_realtime(prio, lock_memory=False)
        self.realtime[threading.current_thread().name] = state.scheduler

    def _reader(self) -> None:
        self._enter_realtime()
        protocol = self.protocol
        while not self._stop.is_set():
            ser = self.ser
            if ser is None:
                return
            if self._rehearse_lead_ns and not self._rehearse_when_due(ser):
                continue  # woke to rehearse, or to look at the stop flag
            try:
                n = ser.in_waiting
                data = ser.read(n if n > 0 else 1)
            except _PORT_ERRORS as exc:
                if self._stop.is_set():
                    return
                if not self._reconnect(exc):
                    return
                continue
            if not data:
                continue
            now = time.perf_counter_ns()
            try:
                self._on_events(protocol.receive(data, now))
            except Exception as exc:  # noqa: BLE001 - a bug here must not pass silently
                self.set_failure(DeviceError(f"internal error handling frames from "
                                             f"{self.url}: {exc!r}"))
                return

    def _rehearse_when_due(self, ser: Any) -> bool:
        """Before the next DATA frame is due: wait for bytes until ``rehearse_lead_s`` before
        it, then rehearse its decode once. True: read the port now (bytes arrived, or there is
        nothing to rehearse); False: come back (rehearsed, or woke to check the stop flag)."""
        due = self.protocol.next_data_due_ns()
        if not due or due == self._rehearsed_for:
            return True
        wake = due - self._rehearse_lead_ns
        left = wake - time.perf_counter_ns()
        if left > 0:  # until rehearse_lead_s before the frame, or until bytes arrive
            try:
                fd = ser.fileno()
                readable, _, _ = select.select([fd], [], [],
                                               min(left / _NS, self.settings.read_chunk_timeout_s))
            except (*_PORT_ERRORS, ValueError, io.UnsupportedOperation):
                self._rehearse_lead_ns = 0  # a port that cannot be waited on: read as before
                return True
            if readable:
                return True
            if time.perf_counter_ns() < wake:
                return False  # the stop flag's turn; then wait again
        self._rehearsed_for = due
        # not once the frame is due: then its bytes are read at once
        if time.perf_counter_ns() < due and self.protocol.rehearse_data():
            self.counters["rehearsals"] += 1
        return True

    def _reconnect(self, exc: BaseException) -> bool:
        """Reopen a vanished port; False (failure recorded) if it stays gone."""
        self.reconnecting = True
        try:
            return self._reconnect_attempts(exc)
        finally:
            self.reconnecting = False

    def _reconnect_attempts(self, exc: BaseException) -> bool:
        old = self.ser
        try:
            old.close()
        except Exception:  # noqa: BLE001 - the port is already broken
            pass
        for _ in range(self.settings.reconnect_attempts):
            if self._stop.wait(self.settings.reconnect_delay_s):
                return False
            try:
                ser = self._open_serial()
            except (serial.SerialException, OSError, ValueError):
                continue
            self.ser = ser
            self.protocol.reset_framing()
            self.counters["reconnects"] += 1
            try:
                self.send(GetInfo())
            except NeuroloopError:
                continue
            return True
        self.ser = None
        self.set_failure(DeviceError(
            f"device {self.url} vanished ({_short(exc)}); the device's watchdog stops its "
            "output; check the cable and restart"))
        return False

    def _housekeeping(self) -> None:
        self._enter_realtime()
        try:
            self._housekeeping_loop()
        except Exception as exc:  # noqa: BLE001 - without heartbeats the device stops: say why
            self.set_failure(DeviceError(f"link heartbeat thread for {self.url} failed: "
                                         f"{exc!r}"))

    def _housekeeping_loop(self) -> None:
        s = self.settings
        protocol = self.protocol
        while not self._stop.wait(s.heartbeat_interval_s):
            if self.ser is None or self.failure is not None:
                continue
            now = time.perf_counter_ns()
            try:
                if protocol.need_info:
                    self.send(GetInfo())
                if self._heartbeat_wanted(now):
                    self.send(Heartbeat(0, protocol.heartbeat_peer_seq))
                    self.counters["heartbeats_sent"] += 1
            except NeuroloopError:
                continue
            protocol.expire_acks(now - int(s.ack_timeout_s * _NS))
