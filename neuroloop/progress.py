"""Progress bars for long work (calibration, replay, export, report, evaluate, sweeps).

One helper for every long command: a tqdm bar with an ETA on the terminal's stderr, and nothing
at all when the output is machine-read (``--json``) or stderr is not a terminal (CI logs, pipes).
``NEUROLOOP_PROGRESS=1`` forces the bar on (tests), ``=0`` forces it off.
"""

from __future__ import annotations

import os
import sys
from types import TracebackType
from typing import Any

__all__ = ["Progress", "progress_enabled"]


def progress_enabled(*, as_json: bool = False, stream: Any = None) -> bool:
    """Whether a progress bar should be drawn.

    Parameters
    ----------
    as_json : bool
        The command prints machine-readable output (``--json``): never draw.
    stream : file-like, optional
        Where the bar would go (default ``sys.stderr``).
    """
    forced = os.environ.get("NEUROLOOP_PROGRESS", "").strip()
    if forced in ("0", "1"):
        return forced == "1" and not as_json
    if as_json:
        return False
    stream = sys.stderr if stream is None else stream
    isatty = getattr(stream, "isatty", None)
    try:
        return bool(isatty and isatty())
    except (ValueError, OSError):  # a closed stream
        return False


class Progress:
    """A context-managed progress bar that is a no-op when disabled.

    Parameters
    ----------
    total : float or None
        Units of work expected (None: unknown, no ETA).
    desc : str
        Short label shown before the bar ("replay", "calibrate", ...).
    unit : str
        Name of one unit ("hop", "s", "cell", "file").
    as_json : bool
        The command's output is ``--json``: the bar stays off.
    """

    def __init__(self, total: float | None, desc: str, *, unit: str = "it",
                 as_json: bool = False) -> None:
        self._bar: Any = None
        if progress_enabled(as_json=as_json):
            from tqdm import tqdm  # imported only when a bar is drawn

            self._bar = tqdm(total=total, desc=desc, unit=unit, file=sys.stderr,
                             dynamic_ncols=True, leave=False, mininterval=0.2)

    @property
    def enabled(self) -> bool:
        """True when a bar is being drawn."""
        return self._bar is not None

    def update(self, n: float = 1) -> None:
        """Advance by ``n`` units."""
        if self._bar is not None:
            self._bar.update(n)

    def set_postfix(self, text: str) -> None:
        """Show a short status after the bar (e.g. ``"3 failed"``)."""
        if self._bar is not None:
            self._bar.set_postfix_str(text, refresh=False)

    def close(self) -> None:
        """Remove the bar."""
        if self._bar is not None:
            self._bar.close()
            self._bar = None

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()
