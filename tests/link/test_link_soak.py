"""Long runs through the real CLI (``pytest -m slow``): the issue-4 link targets."""

from __future__ import annotations

import pytest

from firmware_sim.soak import soak

pytestmark = pytest.mark.slow


def test_ten_minutes_over_a_pty_meet_the_link_targets(tmp_path) -> None:
    res = soak(600.0, workdir=tmp_path)
    assert res["passed"], res["checks"]
    assert res["run"]["deadline_misses"] == 0


def test_one_percent_corrupted_bytes_keep_the_loop_running_within_limits(tmp_path) -> None:
    res = soak(60.0, workdir=tmp_path, sim_args=["--corrupt-bytes", "0.01",
                                                 "--samples-per-frame", "1",
                                                 "--faults-after", "8"])
    link = res["run"]["link"]
    assert res["run"]["cycles"] >= 550  # the loop ran to the end
    assert link["crc_errors"] + link["malformed_frames"] > 0
    assert res["device"]["injected"]["frames_corrupted"] > 0
    assert res["out_of_limits"] == []
