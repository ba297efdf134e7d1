"""``neuroloop replay``: feed a recording through the current pipeline and compare.

The recorded samples go hop by hop through the current code on a simulated clock, as fast
as possible. The recorded per-cycle times (``now_ns``, ``available_ns``) and the recorded
stall and deadline-miss flags replace the clock, so the outputs are a pure function of the
recording and the code. ``--check`` compares every cycle with the recording.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from ..config import load_scenario, scenario_from_dict
from ..errors import RecordingError
from .records import LoopListener
from .session import RunOptions, Session, summary_json

__all__ = ["CycleCollector", "replay_recording", "replay_cycles"]


class CycleCollector(LoopListener):
    """Keeps a copy of every cycle record in a preallocated array."""

    def __init__(self, dtype: np.dtype, capacity: int) -> None:
        self.cycles = np.zeros(capacity, dtype=dtype)
        self.n = 0

    def on_cycle(self, record: np.ndarray) -> None:
        if self.n < self.cycles.shape[0]:
            self.cycles[self.n] = record[0]
            self.n += 1

    @property
    def collected(self) -> np.ndarray:
        return self.cycles[: self.n]


def _replay(directory: str | Path, *, decoder_path: str | None, config_path: str | None,
            listeners: list[LoopListener],
            progress: Callable[[str], None] | None) -> tuple[Any, dict[str, Any]]:
    """Run the current pipeline over a recording; returns ``(recording, summary)``.

    Memory does not grow with the recording: samples and recorded cycles are read through
    windows, and listeners compare or keep what they need.
    """
    from ..io.reader import open_recording
    from ..io.replay_source import ReplaySource
    from .inject import build_hooks, parse_injections, recorded_link_inputs

    recording = open_recording(directory)
    meta = recording.meta
    if config_path:
        scenario = load_scenario(config_path)
    else:
        scenario = scenario_from_dict(meta["config"], label=f"{directory}/meta.json")
    if decoder_path is None:
        candidate = Path(directory) / "decoder.npz"
        if not candidate.is_file():
            raise RecordingError(f"{directory} holds no decoder.npz; pass --decoder FILE "
                                 "with the decoder the session ran with")
        decoder_path = str(candidate)
    recorded = recording.cycle_stream()
    run_options = meta.get("options", {})
    options = RunOptions(fast=True, decoder_path=decoder_path, seed=run_options.get("seed"),
                         deadline_ms=run_options.get("deadline_ms"), listeners=listeners)
    session = Session(scenario, options, progress=progress)
    injections = run_options.get("inject") or []
    link_inputs = recorded_link_inputs(recording.events())
    if injections or link_inputs:
        options.hooks = build_hooks(parse_injections(list(injections)), session,
                                    recorded_inputs=link_inputs)
    session.armed_ns = int(meta.get("armed_ns", 0))
    if progress:
        progress(f"replaying {recorded.shape[0]} cycles from {directory}")
    session.open(source=ReplaySource(recording), replay_cycles=recorded)
    summary = session.run(mode="replay")
    return recording, summary


def replay_cycles(directory: str | Path, *, decoder_path: str | None = None,
                  config_path: str | None = None,
                  progress: Callable[[str], None] | None = None
                  ) -> tuple[Any, np.ndarray, dict[str, Any]]:
    """Replay ``directory`` keeping every replayed cycle in memory (for tests and
    notebooks; the command line uses a constant-memory checker instead).

    Returns ``(recording, replayed cycles, summary)``.
    """
    from ..io.reader import open_recording

    recording = open_recording(directory)
    collector = CycleCollector(recording.cycle_dtype, max(1, recording.n_cycles))
    recording, summary = _replay(directory, decoder_path=decoder_path,
                                 config_path=config_path, listeners=[collector],
                                 progress=progress)
    return recording, collector.collected, summary


def replay_recording(directory: str | Path, *, decoder_path: str | None = None,
                     config_path: str | None = None, check: bool = False,
                     as_json: bool = False,
                     progress: Callable[[str], None] | None = None) -> int:
    """The ``neuroloop replay`` command; returns the exit code (0 same, 1 diverged)."""
    from ..io.compare import ReplayChecker, replay_check_report
    from ..io.reader import open_recording

    checker = ReplayChecker(open_recording(directory)) if check else None
    _, summary = _replay(directory, decoder_path=decoder_path, config_path=config_path,
                         listeners=[checker] if checker is not None else [],
                         progress=progress)
    code = 0
    if checker is not None:
        diff, events = checker.result(), checker.event_result()
        summary["check"] = replay_check_report(diff, events)
        if not summary["check"]["identical"]:
            code = 1
            if not as_json:
                sys.stderr.write(diff.format() + "\n")
                if not events.identical:
                    sys.stderr.write(events.format() + "\n")
    if as_json:
        sys.stdout.write(summary_json(summary) + "\n")
    else:
        sys.stdout.write(
            f"replayed {summary['cycles']} cycles at x{summary['realtime_factor']} real time; "
            f"accuracy {summary['accuracy']}; interlock events {summary['interlock_events']}\n")
        if check:
            sys.stdout.write("check: identical\n" if code == 0 else "check: DIVERGED\n")
    sys.stdout.flush()
    return code
