"""A recording with stalled cycles (a device's stream paused: the cycle repeats the previous
hop's first sample with no label) replays identically: the stalled cycle must not erase the
labels its hop was decoded with."""

from __future__ import annotations

import copy
import tomllib
from importlib import resources

from neuroloop.acquisition import open_source
from neuroloop.config import scenario_from_dict
from neuroloop.io.recorder import SessionRecorder
from neuroloop.io.replay import replay_recording
from neuroloop.runtime.session import RunOptions, Session


class _Stalling:
    """The STN patient with reads that time out now and then (no samples: a stall)."""

    reacts_to_stimulation = True
    paced_by_device = False

    def __init__(self, inner) -> None:
        self.inner, self.info = inner, inner.info
        self.calls = 0

    @property
    def exhausted(self) -> bool:
        return False

    def open(self):
        self.inner.open()
        return self

    def read(self, n, timeout=None):
        self.calls += 1
        if self.calls % 23 == 0:
            return None
        return self.inner.read(n, timeout)

    def map_intentions(self, names, scenario=""):
        self.inner.map_intentions(names, scenario)

    def stimulation_applied(self, *args) -> None:
        self.inner.stimulation_applied(*args)

    def close(self) -> None:
        self.inner.close()


def test_stalled_cycles_replay_identically(tmp_path, capsys) -> None:
    table = tomllib.loads((resources.files("neuroloop.scenarios") / "adbs.toml").read_text())
    table = copy.deepcopy(table)
    table["decoder"]["calibration_s"] = 30.0
    sc = scenario_from_dict(table, label="adbs-small")
    rec = tmp_path / "rec"
    s = Session(sc, RunOptions(fast=True, duration_s=15.0,
                               listeners=[SessionRecorder(rec)]))
    s.save_decoder(rec)
    s.open(source=_Stalling(open_source("lfp://stn", seed=2)))
    summary = s.run()
    assert summary["stall_cycles"] > 3
    assert replay_recording(rec, check=True) == 0, capsys.readouterr()
