"""Link counters over time for a device run's recording: ``DIR/link.jsonl``.

The run summary holds the link's counters at the end only; the report wants them over time.
:class:`LinkLogger` is a listener that starts a background thread when the run starts and
writes one JSON line per ``interval_s`` into the recording directory: the cumulative counters
(frames received and lost, samples lost, CRC errors, malformed frames, authentication
failures, NAKs, missing ACKs, reconnects, missed heartbeats), the median round-trip time of
the RTTs measured since the previous line, and the device's battery. Inside the cycle it only
counts cycles; the snapshot is a handful of integer reads plus one median of at most 256
values, once a second, outside the loop's thread.

Line: ``{"t_s", "cycle", "frames_received", "frames_lost", "samples_lost", "crc_errors",
"malformed_frames", "auth_failures", "naks", "acks_missing", "reconnects",
"heartbeats_missed", "rtt_us", "battery_pct"}`` (``rtt_us`` null when no RTT was measured
in the interval).
"""

from __future__ import annotations

import json
import logging
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

from ..records import LoopListener

__all__ = ["LinkLogger", "LINK_LOG_FILE", "read_link_log"]

LINK_LOG_FILE = "link.jsonl"
log = logging.getLogger(__name__)


def _snapshot(link: Any, last_rtt_count: int) -> tuple[dict[str, Any], int]:
    proto = link.protocol
    p = proto.parser
    c = link.counters
    rtt_log = proto.rtt
    new = min(int(rtt_log.count) - last_rtt_count, 256)
    rtt = float(np.median(rtt_log.recent(new))) / 1000.0 if new > 0 else None
    st = proto.status
    return {
        "frames_received": int(c["data_frames"]), "frames_lost": int(c["frames_lost"]),
        "samples_lost": int(c["samples_lost"]), "crc_errors": int(p.crc_errors),
        "malformed_frames": int(p.malformed), "auth_failures": int(p.auth_failures),
        "naks": int(c["naks"]), "acks_missing": int(c["acks_missing"]),
        "reconnects": int(c["reconnects"]), "heartbeats_missed": int(c["heartbeats_missed"]),
        "rtt_us": None if rtt is None else round(rtt, 1),
        "battery_pct": round(float(st.battery_pct), 2) if st is not None else None,
    }, int(rtt_log.count)


class LinkLogger(LoopListener):
    """Writes the device link's counters into ``directory/link.jsonl`` while the loop runs.

    Parameters
    ----------
    link : DeviceLink
    directory : path
        The recording directory (created by the recorder, which listens first).
    interval_s : float
        Seconds between lines.
    """

    def __init__(self, link: Any, directory: str | Path, interval_s: float = 1.0) -> None:
        self.link = link
        self.path = Path(directory) / LINK_LOG_FILE
        self.interval_s = float(interval_s)
        self.cycle = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._t0 = 0.0

    def on_start(self, meta: dict) -> None:
        self._t0 = time.monotonic()
        self._thread = threading.Thread(target=self._run, name="neuroloop-link-log",
                                        daemon=True)
        self._thread.start()

    def on_cycle(self, record: np.ndarray) -> None:
        self.cycle += 1

    def _run(self) -> None:
        rtt_count = 0
        try:
            with open(self.path, "a", encoding="utf-8") as fh:
                while True:
                    stopping = self._stop.wait(self.interval_s)
                    row, rtt_count = _snapshot(self.link, rtt_count)
                    fh.write(json.dumps({"t_s": round(time.monotonic() - self._t0, 3),
                                         "cycle": self.cycle, **row}) + "\n")
                    fh.flush()
                    if stopping:
                        return
        except Exception as exc:  # noqa: BLE001 - the log is a convenience; never the loop's
            log.warning("link log %s stopped: %s", self.path, exc)

    def on_stop(self, summary: dict) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5.0)


def read_link_log(directory: str | Path) -> list[dict[str, Any]]:
    """The lines of ``directory/link.jsonl`` (none when absent; a partial last line and
    lines that are not JSON objects are skipped)."""
    path = Path(directory) / LINK_LOG_FILE
    if not path.is_file():
        return []
    out = []
    with open(path, "rb") as fh:
        for line in fh:
            if not line.endswith(b"\n"):
                break
            try:
                row = json.loads(line)
            except ValueError:
                continue
            if isinstance(row, dict):
                out.append(row)
    return out
