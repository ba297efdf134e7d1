"""``neuroloop run --monitor [HOST:]PORT``: everything the command needs, in one object.

:meth:`LiveMonitor.open` parses and binds the address at once (a port in use, a port not
allowed, a public host without ``--monitor-public``: one line, exit 2, before calibrating).
The run then gets :attr:`LiveMonitor.publisher` as a listener and :attr:`LiveMonitor.operator`
as a safety input; when stdin is a terminal, an :class:`~.publisher.OperatorConsole` lets the
operator type ``stop`` or ``rearm`` there (re-arming is possible only from the terminal).
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

from ..errors import ConfigError
from .address import bind_monitor_socket, parse_monitor_address
from .publisher import MonitorPublisher, OperatorConsole, OperatorControl

__all__ = ["LiveMonitor"]


class LiveMonitor:
    """The live view of one run: bound socket, publisher, operator control, console."""

    def __init__(self, publisher: MonitorPublisher, operator: OperatorControl,
                 console: OperatorConsole | None) -> None:
        self.publisher = publisher
        self.operator = operator
        self.console = console

    @property
    def url(self) -> str:
        return self.publisher.url

    @classmethod
    def open(cls, spec: str, *, public: bool = False, console: bool | None = None,
             say: Callable[[str], None] = lambda m: None) -> LiveMonitor:
        """Bind ``spec`` (``[HOST:]PORT``) now; the server starts with the run."""
        addr = parse_monitor_address(spec, public=public)
        sock = bind_monitor_socket(addr)
        host, port = sock.getsockname()[:2]
        shown = f"[{host}]" if ":" in host else host
        url = f"http://{shown}:{port}/"
        operator = OperatorControl()
        publisher = MonitorPublisher(sock, operator, url)
        publisher.start_server()
        if console is None:
            console = bool(getattr(sys.stdin, "isatty", lambda: False)())
        con = OperatorConsole(operator, say=say) if console else None
        say(f"live monitor on {url} (E-STOP on the page; type `stop` or `rearm` here"
            + ("" if con else "; no terminal on stdin, so no re-arm this run") + ")")
        return cls(publisher, operator, con)

    def start_console(self) -> None:
        if self.console is not None and not self.console.is_alive():
            self.console.start()

    def summary(self) -> dict[str, Any]:
        """``monitor`` and ``operator`` entries of the run summary."""
        return {"monitor": self.publisher.stats(), "operator": self.publisher.operator_summary()}

    def close(self, linger_s: float = 0.0) -> None:
        self.publisher.close(linger_s)


def check_monitor_options(monitor: str | None, public: bool) -> None:
    """``--monitor-public`` without ``--monitor`` is a mistake worth one line."""
    if public and monitor is None:
        raise ConfigError("--monitor-public needs --monitor [HOST:]PORT (e.g. --monitor "
                          "0.0.0.0:8765 --monitor-public)")
