"""The binned intracortical stream through firmware-sim over a 3 Mbaud pty, end to end: the
link rehearses each frame's decode before it is due, nothing is lost or refused, and the
recording replays identically (the loop's anticipation changes no decision)."""

from __future__ import annotations

import json
import subprocess
import sys

NEUROLOOP = [sys.executable, "-m", "neuroloop.cli"]

CONFIG = """base = "intracortical"
[source]
url = "intracortical://binned"
n_channels = 64
[dsp]
acquisition = "binned"
[decoder]
calibration_s = 4.0
"""


def test_binned_run_through_firmware_sim_rehearses_and_replays_identically(firmware,
                                                                          tmp_path) -> None:
    cfg = tmp_path / "binned.toml"
    cfg.write_text(CONFIG)
    fw = firmware("--preset", "intracortical", "--electrodes", "64", "--baud", "3000000")
    rec = tmp_path / "rec"
    r = subprocess.run([*NEUROLOOP, "run", "--config", str(cfg), "--device", fw.address,
                        "--baud", "3000000", "--key-file", str(fw.key_file), "--duration", "3",
                        "--record", str(rec), "--json"], capture_output=True, text=True,
                       timeout=180)
    assert r.returncode == 0, r.stderr
    s = json.loads(r.stdout)
    link = s["link"]
    assert s["cycles"] == 150 and s["stall_cycles"] == 0 and s["samples_lost"] == 0
    assert link["frames_lost"] == 0 and link["naks"]["total"] == 0
    assert link["crc_errors"] == 0 and link["acks_missing"] == 0
    # the reader woke before (nearly) every frame and rehearsed its decode
    assert link["rehearsals"] >= s["cycles"] // 2, link["rehearsals"]
    q = link["frame_to_queue_us"]  # every frame's decode was timed (no figure asserted)
    assert 0 < q["p50"] <= q["p99"] <= q["max"]
    fw.stop()
    assert fw.summary()["device"]["stims_applied"] == link["stims_sent"]
    replay = subprocess.run([*NEUROLOOP, "replay", str(rec), "--check"], capture_output=True,
                            text=True, timeout=180)
    assert replay.returncode == 0, replay.stderr
    assert "check: identical" in replay.stdout
