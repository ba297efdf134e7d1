"""A recording made by the previous release (commit 36f0441, `neuroloop run --scenario bsi
--fast --duration 2 --record`) still replays identically through the current code.

If the recording format changes, bump its version: then this test must see a one-line
refusal that says how to re-record, never a traceback or a silent divergence.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

FIXTURE = Path(__file__).resolve().parent.parent / "fixtures" / "recording-0.1.0-bsi"


def test_previous_release_recording_replays_identically(tmp_path):
    rec = tmp_path / "rec"
    shutil.copytree(FIXTURE, rec)  # replay must not need to write, but never touch the fixture
    r = subprocess.run([sys.executable, "-m", "neuroloop.cli", "replay", str(rec), "--check"],
                       capture_output=True, text=True, timeout=300)
    assert "Traceback" not in r.stderr
    if r.returncode == 2:  # a format bump: refused in one line that says how to re-record
        assert len(r.stderr.strip().splitlines()) == 1 and "re-record" in r.stderr, r.stderr
    else:
        assert r.returncode == 0, r.stdout + r.stderr
        assert "check: identical" in r.stdout
