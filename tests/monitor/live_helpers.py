"""Start ``neuroloop run --monitor`` in a subprocess and talk to it (shared by the live tests)."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

_URL = re.compile(r"live monitor on (http://\S+/)")


def train_decoder(path: Path) -> Path:
    subprocess.run([sys.executable, "-m", "neuroloop.cli", "train", "--scenario", "bsi",
                    "--duration", "30", "--out", str(path), "--json"], check=True,
                   capture_output=True, timeout=120)
    return path


class LiveRun:
    """A ``neuroloop run --monitor 0 --json`` in a subprocess; ``url`` once it listens."""

    def __init__(self, decoder: Path, *, duration_s: float, record: Path | None = None,
                 extra: tuple[str, ...] = ()) -> None:
        cmd = [sys.executable, "-m", "neuroloop.cli", "run", "--scenario", "bsi",
               "--decoder", str(decoder), "--duration", str(duration_s), "--monitor", "0",
               "--json", *extra]
        if record is not None:
            cmd += ["--record", str(record)]
        env = dict(os.environ, NEUROLOOP_PROGRESS="0")
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     stdin=subprocess.DEVNULL, text=True, env=env)
        self.url = ""
        self.stderr: list[str] = []
        deadline = time.monotonic() + 60
        assert self.proc.stderr is not None
        while time.monotonic() < deadline:
            line = self.proc.stderr.readline()
            if not line:
                break
            self.stderr.append(line)
            m = _URL.search(line)
            if m:
                self.url = m.group(1)
                break
        assert self.url, f"no monitor URL; stderr: {''.join(self.stderr)}"

    def get(self, path: str) -> Any:
        with urllib.request.urlopen(self.url + path.lstrip("/"), timeout=5) as r:
            return json.loads(r.read().decode())

    def wait_cycles(self, n: int, timeout_s: float = 60.0) -> dict[str, Any]:
        """Wait until the page's state has reached cycle ``n`` (the server is up)."""
        deadline = time.monotonic() + timeout_s
        last: dict[str, Any] = {}
        while time.monotonic() < deadline:
            try:
                last = self.get("/api/state")
                if (last.get("cycle") or 0) >= n:
                    return last
            except OSError:
                pass
            time.sleep(0.1)
        raise AssertionError(f"the monitor never reached cycle {n}: {last}")

    def finish(self, *, interrupt: bool = False, timeout_s: float = 60.0) -> dict[str, Any]:
        if interrupt and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
        out, err = self.proc.communicate(timeout=timeout_s)
        assert self.proc.returncode == 0, err
        return json.loads(out)

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.communicate(timeout=30)
