"""A session with any injected fault replays bit-exactly: the faults are keyed on cycles and
the time-based decisions (stalls, deadline misses) come from the recording."""

from __future__ import annotations

import json

import pytest

from neuroloop.io.recorder import SessionRecorder
from neuroloop.io.replay import replay_recording
from neuroloop.runtime.inject import INJECTION_KINDS, build_hooks, parse_injections
from neuroloop.runtime.session import RunOptions, Session


@pytest.mark.parametrize("kind", sorted(INJECTION_KINDS))
def test_injected_session_replays_identically(small_bsi, bsi_decoder_file, tmp_path, kind,
                                              capsys) -> None:
    rec_dir = tmp_path / "rec"
    spec = f"{kind}@2"
    opts = RunOptions(fast=True, decoder_path=bsi_decoder_file, duration_s=4.0,
                      extra_meta={"inject": [spec]})
    session = Session(small_bsi, opts)
    session.save_decoder(rec_dir)
    opts.hooks = build_hooks(parse_injections([spec]), session)
    opts.listeners = [SessionRecorder(rec_dir)]
    session.open()
    session.run()
    assert replay_recording(rec_dir, check=True) == 0, capsys.readouterr().err


class _FakeLink:
    """A safety-input provider that reports link faults at fixed polls, as a device link's
    monitor would."""

    def __init__(self) -> None:
        self.polls = 0

    def poll(self, cycle: int, now_ns: int) -> list:
        self.polls += 1
        if self.polls == 15:
            import numpy as np

            z = np.full(16, 900.0)
            z[1] = float("inf")  # the lead to E1 broke
            return [("impedance", z)]
        if 25 <= self.polls < 30:
            return [("heartbeat_lost", "no heartbeat for 0.6 s")]
        return []


def test_link_inputs_of_a_device_run_replay_identically(small_bsi, bsi_decoder_file,
                                                        tmp_path, capsys) -> None:
    rec_dir = tmp_path / "rec"
    opts = RunOptions(fast=True, decoder_path=bsi_decoder_file, duration_s=5.0)
    session = Session(small_bsi, opts)
    session.save_decoder(rec_dir)
    opts.safety_inputs = [_FakeLink()]  # polled by the loop every cycle: no hooks needed
    opts.listeners = [SessionRecorder(rec_dir)]
    session.open()
    summary = session.run()
    assert summary["interlock_events"].get("heartbeat_lost", 0) >= 1
    assert summary["interlock_events"].get("impedance_report", 0) == 1
    assert replay_recording(rec_dir, check=True) == 0, capsys.readouterr().err
    # without the recorded link inputs the replay would decide differently
    events = (rec_dir / "events.jsonl").read_text().splitlines()
    kept = [e for e in events if '"link_input"' not in e]
    (rec_dir / "events.jsonl").write_text("".join(e + "\n" for e in kept))
    meta = json.loads((rec_dir / "meta.json").read_text())
    if isinstance(meta.get("counts"), dict):  # keep the recording self-consistent
        meta["counts"]["events"] = len(kept)
        (rec_dir / "meta.json").write_text(json.dumps(meta))
    assert replay_recording(rec_dir, check=True) == 1


def test_a_live_run_arms_after_slow_listeners_and_replays_identically(
        small_bsi, bsi_decoder_file, tmp_path, capsys) -> None:
    """The supervisor arms after every listener has started and after the device, not at the
    time the metadata planned before a slow listener (a recorder opening files, here 0.3 s):
    its slew reference must not precede the device's, or it grants a first rise the device
    refuses. The recording keeps the real arming time, so the run replays --check identical."""
    import time

    from neuroloop.records import LoopListener
    from neuroloop.stimulation.stimulators import SimulatedStimulator

    times: dict[str, int] = {}

    class SlowStart(LoopListener):
        def on_start(self, meta: dict) -> None:
            times["planned"] = int(meta["armed_ns"])
            time.sleep(0.3)

    class Device(SimulatedStimulator):
        def arm(self) -> None:
            times["device"] = time.perf_counter_ns()

    arm_events: list[dict] = []

    class Events(LoopListener):
        def on_events(self, events: list) -> None:
            arm_events.extend(e for e in events if e.get("reason") == "arm")

    rec_dir = tmp_path / "rec"
    opts = RunOptions(fast=False, decoder_path=bsi_decoder_file, duration_s=1.0,
                      stimulator=Device(16), realtime_priority=None)
    session = Session(small_bsi, opts)
    session.save_decoder(rec_dir)
    opts.listeners = [SlowStart(), SessionRecorder(rec_dir), Events()]
    session.open()
    session.run()
    armed = json.loads((rec_dir / "meta.json").read_text())["armed_ns"]
    assert times["planned"] + 300_000_000 <= times["device"] <= armed
    assert [e["time_ns"] for e in arm_events] == [armed]
    assert replay_recording(rec_dir, check=True) == 0, capsys.readouterr().err
