"""A recording with stalled cycles (a device's stream paused: the cycle repeats the previous
hop's first sample with no label) replays identically: the stalled cycle must not erase the
labels its hop was decoded with."""

from __future__ import annotations

import copy
import tomllib
from importlib import resources

from stalling_source import StallingSource

from neuroloop.acquisition import open_source
from neuroloop.config import scenario_from_dict
from neuroloop.io.recorder import SessionRecorder
from neuroloop.io.replay import replay_recording
from neuroloop.runtime.session import RunOptions, Session


def test_stalled_cycles_replay_identically(tmp_path, capsys) -> None:
    table = tomllib.loads((resources.files("neuroloop.scenarios") / "adbs.toml").read_text())
    table = copy.deepcopy(table)
    table["decoder"]["calibration_s"] = 30.0
    sc = scenario_from_dict(table, label="adbs-small")
    rec = tmp_path / "rec"
    s = Session(sc, RunOptions(fast=True, duration_s=15.0,
                               listeners=[SessionRecorder(rec)]))
    s.save_decoder(rec)
    # reads that time out now and then (no samples: a stall)
    s.open(source=StallingSource(open_source("lfp://stn", seed=2), stall=lambda k: k % 23 == 0))
    summary = s.run()
    assert summary["stall_cycles"] > 3
    assert replay_recording(rec, check=True) == 0, capsys.readouterr()
