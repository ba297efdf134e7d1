"""``run --monitor [HOST:]PORT``: parse the address and bind it before anything slow starts.

The socket is bound (and listening) in the ``neuroloop`` process as soon as the options are
read, so a port in use or not allowed is one line and exit 2 before calibration, never after;
the server process inherits the bound socket.
"""

from __future__ import annotations

import errno
import ipaddress
import socket
from dataclasses import dataclass

from ..errors import ConfigError

__all__ = ["MonitorAddress", "parse_monitor_address", "bind_monitor_socket"]

#: ports below this are the system's; the monitor never takes one
MIN_PORT = 1024


@dataclass(frozen=True)
class MonitorAddress:
    host: str
    port: int

    @property
    def loopback(self) -> bool:
        return _is_loopback(self.host)


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def parse_monitor_address(text: str, *, public: bool = False) -> MonitorAddress:
    """``PORT``, ``HOST:PORT`` or ``[V6]:PORT`` -> MonitorAddress (default host 127.0.0.1).

    Port 0 asks the system for a free port. A host other than loopback needs ``public``
    (``--monitor-public``): the page has an E-STOP, and anyone who reaches it can press it.
    """
    raw = text.strip()
    host, port_text = "127.0.0.1", raw
    if raw.startswith("["):
        end = raw.find("]")
        if end < 0 or raw[end + 1:end + 2] != ":":
            raise ConfigError(f"--monitor {text!r}: expected [IPV6]:PORT, e.g. [::1]:8765")
        host, port_text = raw[1:end], raw[end + 2:]
    elif ":" in raw:
        host, _, port_text = raw.rpartition(":")
    try:
        port = int(port_text)
    except ValueError:
        port = -1
    if not (port == 0 or MIN_PORT <= port <= 65535):
        raise ConfigError(f"--monitor {text!r}: port {port_text!r} is not allowed; use a port "
                          f"in {MIN_PORT}..65535 (or 0 for any free port), e.g. --monitor 8765")
    if not host:
        raise ConfigError(f"--monitor {text!r}: empty host; use HOST:PORT or just PORT")
    addr = MonitorAddress(host, port)
    if not addr.loopback and not public:
        raise ConfigError(f"--monitor {text!r}: host {host} is not loopback; the page has an "
                          "E-STOP, so serving it beyond this machine needs --monitor-public "
                          "(or use 127.0.0.1)")
    return addr


def bind_monitor_socket(addr: MonitorAddress) -> socket.socket:
    """A listening TCP socket on ``addr`` (inheritable, for the server process).

    Raises
    ------
    ConfigError
        The port is in use, not allowed, or the host is not an address of this machine.
    """
    try:
        infos = socket.getaddrinfo(addr.host, addr.port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise ConfigError(f"--monitor {addr.host}:{addr.port}: cannot resolve host "
                          f"{addr.host!r} ({exc.strerror}); use an address of this machine "
                          "such as 127.0.0.1") from None
    family, _, _, _, sockaddr = infos[0]
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(sockaddr)
        sock.listen(16)
    except OSError as exc:
        sock.close()
        where = f"--monitor {addr.host}:{addr.port}"
        if exc.errno == errno.EADDRINUSE:
            raise ConfigError(f"{where}: port {addr.port} is in use; choose another port (or 0 "
                              "for any free one) or stop the program using it") from None
        if exc.errno in (errno.EACCES, errno.EPERM):
            raise ConfigError(f"{where}: binding port {addr.port} is not allowed here; choose a "
                              f"port in {MIN_PORT}..65535") from None
        if exc.errno == errno.EADDRNOTAVAIL:
            raise ConfigError(f"{where}: {addr.host} is not an address of this machine; use "
                              "127.0.0.1 or one of its own addresses") from None
        raise ConfigError(f"{where}: cannot listen there ({exc.strerror}); choose another "
                          "address") from None
    sock.set_inheritable(True)
    return sock
