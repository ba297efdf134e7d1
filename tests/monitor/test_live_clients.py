"""The loop never waits for the monitor: one page reading at full rate and one that never reads.

The never-reading page stops acknowledging, is held (sent nothing more) and then dropped by
the server; the full-rate page keeps getting a frame per cycle; the loop's publisher published
every cycle. All of it is read from counters (the run's JSON summary), not from wall-clock
figures; the misses and e2e p99 of the run are printed for the record.
"""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

from live_helpers import LiveRun


class FullRateReader(threading.Thread):
    def __init__(self, url: str) -> None:
        super().__init__(daemon=True)
        self.url = url
        self.frames = 0
        self.cycles: list[int] = []
        self.meta = None
        self.error: BaseException | None = None

    def run(self) -> None:
        from websockets.sync.client import connect

        try:
            with connect(self.url) as ws:
                for msg in ws:
                    m = json.loads(msg)
                    if m["type"] == "meta":
                        self.meta = m
                    elif m["type"] == "frame":
                        self.frames += 1
                        if m.get("cycle") is not None:
                            self.cycles.append(int(m["cycle"]))
                        ws.send(json.dumps({"type": "ack", "n": self.frames}))
        except Exception as exc:  # noqa: BLE001 - the run ending closes the socket
            if "1000" not in str(exc) and "1001" not in str(exc) and "1012" not in str(exc):
                self.error = exc


def test_a_stalled_page_is_dropped_and_the_full_rate_page_keeps_up(decoder: Path) -> None:
    from websockets.sync.client import connect

    run = LiveRun(decoder, duration_s=7)
    try:
        run.wait_cycles(3)
        ws_url = run.url.replace("http://", "ws://") + "ws"
        fast = FullRateReader(ws_url)
        fast.start()
        with connect(ws_url):  # never reads, never acknowledges
            time.sleep(0.2)
            summary = run.finish(timeout_s=90)
        fast.join(timeout=10)
    finally:
        run.kill()
    mon = summary["monitor"]
    print(f"\nmisses {summary['deadline_misses']}, e2e p99 {summary['e2e_us']['p99']} us, "
          f"monitor {mon}")
    assert fast.error is None, fast.error
    # the loop published every cycle, whatever the pages did
    assert mon["published_cycles"] == summary["cycles"]
    assert mon["clients_accepted"] == 2
    # the page that never acknowledged was held, then dropped; the other one never was
    assert mon["frames_held_for_slow_clients"] > 0
    assert mon["clients_dropped_stalled"] == 1
    # the full-rate page saw the cycles advance one frame per cycle (or more often)
    assert fast.meta is not None and fast.meta["scenario"] == "bsi"
    seen = fast.cycles
    assert len(seen) >= 0.8 * (seen[-1] - seen[0]), (len(seen), seen[0], seen[-1])
    assert seen == sorted(seen)
