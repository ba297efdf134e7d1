"""Fixtures for the two-process link tests: firmware-sim in a subprocess."""

from __future__ import annotations

import json
import os
import select
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest


@dataclass
class Firmware:
    """A running ``python -m firmware_sim`` and what it printed."""

    proc: subprocess.Popen[str]
    address: str
    key_file: Path
    log_path: Path
    _extra_stderr: list[str] = field(default_factory=list)

    def log(self) -> list[dict[str, Any]]:
        """The JSON-lines log written so far."""
        if not self.log_path.exists():
            return []
        out = []
        for line in self.log_path.read_text().splitlines():
            if line.strip():
                out.append(json.loads(line))
        return out

    def summary(self) -> dict[str, Any]:
        return [e for e in self.log() if e["kind"] == "summary"][-1]

    def stop(self, timeout: float = 10.0) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.wait(5)

    def kill(self) -> None:
        """Cable pulled the hard way: SIGKILL, no clean-up in the simulator."""
        self.proc.kill()
        self.proc.wait(5)

    def stderr(self) -> str:
        return self.proc.stderr.read() if self.proc.stderr else ""


@pytest.fixture
def firmware(tmp_path: Path) -> Iterator[Callable[..., Firmware]]:
    """Factory: ``firmware(*args, key_file=None)`` starts firmware-sim on a pty (or with the
    given ``--listen``) and waits for its first line."""
    started: list[Firmware] = []

    def start(*args: str, key_file: Path | None = None, duration: float = 60.0) -> Firmware:
        kf = key_file or tmp_path / "keys.toml"
        log = tmp_path / f"fw{len(started)}.jsonl"
        where = [] if any(a.startswith("--listen") for a in args) else ["--pty"]
        cmd = [sys.executable, "-m", "firmware_sim", *where, "--key-file", str(kf), "--log",
               str(log), "--duration", str(duration), *args]
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                env={**os.environ, "PYTHONUNBUFFERED": "1"})
        deadline = time.monotonic() + 30.0
        line = ""
        while time.monotonic() < deadline:
            ready, _, _ = select.select([proc.stdout], [], [], 0.5)
            if ready:
                line = proc.stdout.readline()  # type: ignore[union-attr]
                break
            if proc.poll() is not None:
                break
        if not line.startswith("firmware-sim: listening on "):
            proc.kill()
            raise RuntimeError(f"firmware-sim did not start: {line!r} "
                               f"{proc.stderr.read() if proc.stderr else ''}")
        fw = Firmware(proc, line.split()[-1], kf, log)
        started.append(fw)
        return fw

    yield start
    for fw in started:
        fw.stop()
        if fw.proc.stdout:
            fw.proc.stdout.close()
        if fw.proc.stderr:
            fw.proc.stderr.close()


@pytest.fixture(autouse=True)
def _close_links() -> Iterator[None]:
    """Close every shared link a test left open (the registry is process-wide)."""
    yield
    from neuroloop.link import device

    for link in list(device._REGISTRY.values()):
        link.close()
