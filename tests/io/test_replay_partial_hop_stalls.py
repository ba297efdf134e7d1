"""A recording whose source delivers small blocks and stalls in the middle of a hop (part of
the hop received, the rest late) replays ``--check`` identical: the samples received before
the stall are neither lost nor read twice by the replay."""

from __future__ import annotations

import numpy as np
from stalling_source import StallingSource

from neuroloop.acquisition import open_source
from neuroloop.config import load_scenario
from neuroloop.io.reader import open_recording
from neuroloop.io.recorder import SessionRecorder
from neuroloop.io.replay import replay_recording
from neuroloop.records import FLAG_SOURCE_STALL
from neuroloop.runtime.inject import build_hooks, parse_injections
from neuroloop.runtime.session import RunOptions, Session


def _record(tmp_path, name: str, inject: list[str]):
    sc = load_scenario("bsi")
    rec = tmp_path / name
    opts = RunOptions(fast=True, duration_s=20.0, realtime_priority=None,
                      listeners=[SessionRecorder(rec)])
    s = Session(sc, opts)
    opts.hooks = build_hooks(parse_injections(inject), s)
    s.save_decoder(rec)
    # at most 10 samples per read, and every 23rd read (mostly mid-hop: 59-sample hops) empty
    s.open(source=StallingSource(open_source("synthetic://bsi", seed=3),
                                 stall=lambda k: k % 23 == 0, max_block=10))
    summary = s.run()
    cycles = open_recording(rec).cycles
    assert ((cycles["flags"] & FLAG_SOURCE_STALL) != 0).sum() == summary["stall_cycles"]
    return sc, rec, summary, cycles


def test_recording_with_mid_hop_stalls_replays_identically(tmp_path, capsys) -> None:
    """Also with an injected stall (a dropped hop) right after a hop cut by a late read: the
    samples before the dropped hop are not joined to those after it, live or replayed."""
    sc, rec, summary, cycles = _record(tmp_path, "natural", [])
    assert summary["stall_cycles"] > 10
    assert replay_recording(rec, check=True) == 0, capsys.readouterr()
    # a stall that cut a hop: the stream moved on (samples were received) during it
    stalled = np.flatnonzero((cycles["flags"] & FLAG_SOURCE_STALL) != 0)
    cut = [k for k in stalled[1:] if cycles["first_sample"][k] != cycles["first_sample"][k - 1]]
    k = int(cut[0])
    _, rec2, _, cycles2 = _record(tmp_path, "injected",
                                  [f"source-stall@{(k + 1) * sc.hop_s:.6f}:{sc.hop_s:.6f}"])
    flags2 = cycles2["flags"]
    assert flags2[k] & FLAG_SOURCE_STALL and flags2[k + 1] & FLAG_SOURCE_STALL
    # the hop after the dropped one starts afresh at the first sample after it
    assert cycles2["first_sample"][k + 2] == cycles2["first_sample"][k + 1] + sc.dsp.hop_samples
    assert replay_recording(rec2, check=True) == 0, capsys.readouterr()
