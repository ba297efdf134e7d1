"""Measure the live monitor's targets (not a test: run it by hand on a quiet machine).

    .venv/bin/python tests/monitor/measure_monitor.py [--duration 60] [--repeat 1]

1. A real-time bsi run of ``--duration`` s without the monitor, then the same run with
   ``--monitor`` and the page open in headless Chromium: deadline misses and e2e p50/p99 of
   each (target: 0 misses, p99 within 10 %).
2. At the end of the monitored run the page's E-STOP is clicked: request -> zero command
   handed to the stimulator, in ms and in cycles (target: < 2 cycles).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from live_helpers import LiveRun, train_decoder  # noqa: E402

HOP_MS = 59 / 586.0 * 1000.0


def plain_run(decoder: Path, duration: float) -> dict:
    r = subprocess.run([sys.executable, "-m", "neuroloop.cli", "run", "--scenario", "bsi",
                        "--decoder", str(decoder), "--duration", str(duration), "--json"],
                       capture_output=True, text=True, env=dict(os.environ, NEUROLOOP_PROGRESS="0"))
    r.check_returncode()
    return json.loads(r.stdout)


def monitored_run(decoder: Path, duration: float) -> dict:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By

    run = LiveRun(decoder, duration_s=duration + 5)
    opts = webdriver.ChromeOptions()
    opts.binary_location = "/usr/bin/chromium"
    for a in ("--headless=new", "--no-sandbox", "--disable-gpu", "--window-size=1400,1100"):
        opts.add_argument(a)
    driver = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=opts)
    try:
        driver.get(run.url)
        t_end = time.monotonic() + duration
        while time.monotonic() < t_end:
            time.sleep(1.0)
        driver.find_element(By.ID, "estop").click()
        time.sleep(1.0)
    finally:
        driver.quit()
    return run.finish(interrupt=True)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--duration", type=float, default=60.0)
    ap.add_argument("--repeat", type=int, default=1)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        decoder = train_decoder(Path(tmp) / "bsi.npz")
        for i in range(args.repeat):
            base = plain_run(decoder, args.duration)
            mon = monitored_run(decoder, args.duration)
            op = mon["operator"][0] if mon.get("operator") else {}
            p99b, p99m = base["e2e_us"]["p99"], mon["e2e_us"]["p99"]
            print(json.dumps({
                "run": i, "duration_s": args.duration,
                "without_monitor": {"misses": base["deadline_misses"], "e2e_us": base["e2e_us"],
                                    "cycles": base["cycles"]},
                "with_monitor_and_page": {"misses": mon["deadline_misses"],
                                          "e2e_us": mon["e2e_us"], "cycles": mon["cycles"],
                                          "monitor": mon["monitor"]},
                "e2e_p99_ratio": round(p99m / p99b, 3),
                "estop_ms": op.get("latency_ms"),
                "estop_cycles": (round(op["latency_ms"] / HOP_MS, 2)
                                 if op.get("latency_ms") is not None else None),
                "estop_output_zero": op.get("output_zero"),
            }, indent=1))


if __name__ == "__main__":
    main()
