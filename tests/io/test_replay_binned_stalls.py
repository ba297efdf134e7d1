"""A binned intracortical recording (one bin per cycle: hop = 1 sample) with stalled cycles
replays ``--check`` identical: the ``true_state`` of stalled cycles (NO_LABEL) and of their
neighbours, whose bins arrived late, comes back from the recording as it was live."""

from __future__ import annotations

import copy
import tomllib
from importlib import resources

from stalling_source import StallingSource

from neuroloop.acquisition import open_source
from neuroloop.config import scenario_from_dict
from neuroloop.io.reader import open_recording
from neuroloop.io.recorder import SessionRecorder
from neuroloop.io.replay import replay_recording
from neuroloop.records import FLAG_SOURCE_STALL
from neuroloop.runtime.session import RunOptions, Session


def test_binned_recording_with_stalls_replays_identically(tmp_path, capsys) -> None:
    text = (resources.files("neuroloop.scenarios") / "intracortical.toml").read_text()
    table = copy.deepcopy(tomllib.loads(text))
    table["source"]["n_channels"] = 64
    table["source"]["url"] = "intracortical://binned"
    table["dsp"]["acquisition"] = "binned"
    table["decoder"]["calibration_s"] = 12.0
    sc = scenario_from_dict(table, label="intracortical-binned-small")
    assert sc.dsp.hop_samples == 1
    rec = tmp_path / "rec"
    s = Session(sc, RunOptions(fast=True, duration_s=12.0, realtime_priority=None,
                               listeners=[SessionRecorder(rec)]))
    s.save_decoder(rec)
    # bins that arrive late now and then: two cycles in a row without a bin, every 17 reads
    s.open(source=StallingSource(open_source("intracortical://binned", seed=3, n_channels=64),
                                 stall=lambda k: k % 17 in (0, 1)))
    summary = s.run()
    assert summary["stall_cycles"] > 40
    cycles = open_recording(rec).cycles
    stalled = (cycles["flags"] & FLAG_SOURCE_STALL) != 0
    assert stalled.sum() == summary["stall_cycles"]
    # the labels change during the run (rest and reach), also next to stalled cycles
    assert len(set(cycles["true_state"][~stalled].tolist())) >= 2
    assert replay_recording(rec, check=True) == 0, capsys.readouterr()
