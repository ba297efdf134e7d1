"""Byte transports of the simulated implant: a pseudo-terminal or a TCP socket.

Both are non-blocking and frame-aware on the way out: whole frames are queued and written as
the peer reads them; when nobody reads and the queue passes ``max_queued_bytes``, whole frames
are dropped (a partial frame is never sent) and counted in :attr:`Transport.tx_overflow`.

A pty has no baud rate of its own, so :class:`PtyTransport` emulates a UART's behaviour on a
mismatch: when the host configures the line to another speed than the device's, the host
sees noise instead of frames and the device hears noise instead of commands (what a real
UART does), so that neuroloop's "no valid frame: check the baud rate" path can be exercised.
"""

from __future__ import annotations

import contextlib
import errno
import os
import select
import socket
import termios
import tty
from collections import deque

import numpy as np

__all__ = ["Transport", "TransportClosed", "PtyTransport", "SocketTransport", "BAUD_CONSTANTS"]

#: termios speed constants this module can set on a pty.
BAUD_CONSTANTS: dict[int, int] = {
    b: getattr(termios, f"B{b}") for b in (9600, 19200, 38400, 57600, 115200, 230400, 460800,
                                          500000, 576000, 921600, 1000000, 1152000, 1500000,
                                          2000000, 3000000) if hasattr(termios, f"B{b}")
}


class TransportClosed(Exception):
    """The link is gone (peer closed, cable pulled)."""


class Transport:
    """Base class: a non-blocking byte pipe with a queue of outgoing frames."""

    #: Human-readable address the host opens (printed on the first line of stdout).
    address: str = ""

    def __init__(self, max_queued_bytes: int = 256 * 1024) -> None:
        self._out: deque[bytes] = deque()
        self._head_off = 0
        self._queued = 0
        self.max_queued_bytes = int(max_queued_bytes)
        self.tx_overflow = 0
        self.bytes_sent = 0
        self.bytes_received = 0

    # hooks
    def _fd(self) -> int | None:
        raise NotImplementedError

    def _raw_read(self) -> bytes:
        raise NotImplementedError

    def _raw_write(self, data: memoryview) -> int:
        raise NotImplementedError

    # API
    def wait(self, timeout_s: float) -> None:
        """Sleep until input is readable, output is writable (when queued) or ``timeout_s``."""
        fd = self._fd()
        if fd is None:
            select.select([], [], [], max(0.0, timeout_s))
            return
        wfds = [fd] if self._out else []
        with contextlib.suppress(InterruptedError):
            select.select([fd], wfds, [], max(0.0, timeout_s))

    def read(self) -> bytes:
        """Whatever bytes are waiting (b"" when none). Raises :class:`TransportClosed`."""
        data = self._raw_read()
        self.bytes_received += len(data)
        return data

    def send(self, frame: bytes) -> bool:
        """Queue one whole frame; False (frame dropped) when the queue is full."""
        if self._queued + len(frame) > self.max_queued_bytes:
            self.tx_overflow += 1
            return False
        self._out.append(frame)
        self._queued += len(frame)
        self.flush()
        return True

    def flush(self) -> None:
        """Write as much of the queue as the peer takes without blocking."""
        while self._out:
            head = self._out[0]
            try:
                n = self._raw_write(memoryview(head)[self._head_off:])
            except BlockingIOError:
                return
            if n <= 0:
                return
            self.bytes_sent += n
            self._head_off += n
            if self._head_off >= len(head):
                self._out.popleft()
                self._queued -= len(head)
                self._head_off = 0

    @property
    def idle(self) -> bool:
        """True when every queued frame has been handed to the peer (the line is free)."""
        return not self._out

    def discard_queue(self) -> None:
        self._out.clear()
        self._queued = 0
        self._head_off = 0

    def close(self) -> None:
        raise NotImplementedError


class PtyTransport(Transport):
    """A pseudo-terminal: the host opens :attr:`address` (e.g. ``/dev/pts/5``) as a serial port.

    Parameters
    ----------
    baud : int
        The device's line speed; set on the pty and compared with the host's setting.
    rng : numpy.random.Generator
        Source of the noise emitted on a baud-rate mismatch.
    """

    def __init__(self, baud: int = 921600, rng: np.random.Generator | None = None,
                 max_queued_bytes: int = 256 * 1024) -> None:
        super().__init__(max_queued_bytes)
        if baud not in BAUD_CONSTANTS:
            raise ValueError(f"baud {baud} is not a standard rate; use one of "
                             f"{', '.join(map(str, BAUD_CONSTANTS))}")
        self.baud = baud
        self._speed = BAUD_CONSTANTS[baud]
        self._rng = rng or np.random.default_rng(0)
        self.master, self.slave = os.openpty()
        # raw on both ends: no echo, no CR/LF translation, no signals, 8 bits
        tty.setraw(self.master)
        tty.setraw(self.slave)
        attrs = termios.tcgetattr(self.slave)
        attrs[4] = attrs[5] = self._speed
        termios.tcsetattr(self.slave, termios.TCSANOW, attrs)
        os.set_blocking(self.master, False)
        self.address = os.ttyname(self.slave)
        self.baud_mismatch = False
        self._closed = False

    def _fd(self) -> int | None:
        return None if self._closed else self.master

    def line_speed_matches(self) -> bool:
        """True when the host's configured line speed is the device's (else: noise)."""
        try:
            attrs = termios.tcgetattr(self.slave)
        except termios.error:
            return True
        self.baud_mismatch = attrs[5] != self._speed
        return not self.baud_mismatch

    def _raw_read(self) -> bytes:
        if self._closed:
            raise TransportClosed("pty closed")
        try:
            data = os.read(self.master, 65536)
        except BlockingIOError:
            return b""
        except OSError as exc:
            if exc.errno == errno.EIO:  # no process has the slave open: nothing to read
                return b""
            raise TransportClosed(str(exc)) from None
        if data and self.baud_mismatch:
            return b""  # framing errors: the UART delivers nothing usable
        return data

    def _raw_write(self, data: memoryview) -> int:
        if self._closed:
            raise TransportClosed("pty closed")
        if self.baud_mismatch:
            noise = self._rng.integers(0, 256, size=len(data), dtype=np.uint8).tobytes()
            return os.write(self.master, noise)
        return os.write(self.master, data)

    def close(self) -> None:
        """Pull the cable: the host's next read fails."""
        if not self._closed:
            self._closed = True
            for fd in (self.master, self.slave):
                with contextlib.suppress(OSError):
                    os.close(fd)


class SocketTransport(Transport):
    """A TCP server (``socket://HOST:PORT`` for pyserial); one host connection at a time.

    Parameters
    ----------
    host, port : str, int
        Where to listen; port 0 picks a free one (see :attr:`address`).
    """

    def __init__(self, host: str = "127.0.0.1", port: int = 0,
                 max_queued_bytes: int = 256 * 1024) -> None:
        super().__init__(max_queued_bytes)
        self._srv = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._srv.bind((host, port))
        self._srv.listen(1)
        self._srv.setblocking(False)
        h, p = self._srv.getsockname()[:2]
        self.address = f"socket://{h}:{p}"
        self._conn: socket.socket | None = None
        self.connections = 0
        self._closed = False

    @property
    def connected(self) -> bool:
        return self._conn is not None

    def _fd(self) -> int | None:
        if self._closed:
            return None
        return self._conn.fileno() if self._conn is not None else self._srv.fileno()

    def _accept(self) -> None:
        try:
            conn, _ = self._srv.accept()
        except (BlockingIOError, InterruptedError):
            return
        conn.setblocking(False)
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._conn = conn
        self.connections += 1
        self.discard_queue()

    def _raw_read(self) -> bytes:
        if self._closed:
            raise TransportClosed("socket closed")
        if self._conn is None:
            self._accept()
            return b""
        try:
            data = self._conn.recv(65536)
        except BlockingIOError:
            return b""
        except OSError:
            data = b""
        if not data:
            self.hang_up()
        return data

    def _raw_write(self, data: memoryview) -> int:
        if self._conn is None:
            self.discard_queue()  # nobody connected: the radio sends into the void
            return 0
        try:
            return self._conn.send(data)
        except (BrokenPipeError, ConnectionResetError):
            self.hang_up()
            return 0

    def hang_up(self) -> None:
        """Drop the current connection (keep listening)."""
        if self._conn is not None:
            with contextlib.suppress(OSError):
                self._conn.close()
            self._conn = None
            self.discard_queue()

    def close(self) -> None:
        if not self._closed:
            self.hang_up()
            self._closed = True
            self._srv.close()
