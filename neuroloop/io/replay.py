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

from .. import _checks as B
from ..config import load_scenario, scenario_from_dict
from ..errors import RecordingError
from ..records import FLAG_SOURCE_STALL, LoopListener
from ..runtime.session import RunOptions, Session, summary_json

__all__ = ["CycleCollector", "replay_recording", "replay_cycles"]

_RECORDED_SEED = B.Range(0, 2**63 - 1, integer=True)
_ARMED_NS = B.Range(0, 2**63 - 1, integer=True)


def _check_armed(recording: Any, armed_ns: int, meta_file: str) -> None:
    """``armed_ns`` is not after the loop started, as the first fresh cycle dates it.

    A paced source's hop is available at ``t0 + (first_sample + hop) / rate`` with ``t0``
    the loop start, which comes after arming. (Not for a device: its sample index counts
    from the device's own start.)
    """
    options = recording.meta.get("options")
    hop, rate = recording.hop_samples, recording.sampling_rate_hz
    if (isinstance(options, dict) and options.get("device")) or not hop or \
            recording.n_cycles == 0:
        return
    rows = np.zeros(min(recording.n_cycles, 64), dtype=recording.cycle_dtype)
    recording.read_cycles(0, rows)
    fresh = rows[(rows["flags"] & FLAG_SOURCE_STALL) == 0]
    if fresh.shape[0] == 0 or int(fresh[0]["available_ns"]) <= 0:
        return
    first = fresh[0]
    t0 = int(first["available_ns"]) - int(round((int(first["first_sample"]) + hop) * 1e9 / rate))
    if armed_ns > t0:
        raise RecordingError(
            f"{meta_file}: armed_ns = {armed_ns} is after the loop started ({t0} ns, dated by "
            "the first cycle in cycles.rec); the file is corrupt or was edited")


def _recorded_options(meta: dict[str, Any], meta_file: str) -> dict[str, Any]:
    """The run options a replay repeats (seed, deadline, injections, arming time), checked:
    anything else is a :class:`RecordingError` naming ``meta_file`` and the field."""
    def bad(key: str, value: Any, what: str) -> RecordingError:
        return RecordingError(f"{meta_file}: {key} = {B.show_value(value)} {what}; the file is "
                              "corrupt or was edited")

    run = meta.get("options", {})
    if not isinstance(run, dict):
        raise bad("options", run, "must be an object")
    out: dict[str, Any] = {"seed": None, "deadline_ms": None, "inject": [], "armed_ns": 0}
    hint = "the file is corrupt; re-record the session"
    if run.get("seed") is not None:
        out["seed"] = B.check_number(f"{meta_file}: options.seed", run["seed"], _RECORDED_SEED,
                                     error=RecordingError, hint=hint)
    if run.get("deadline_ms") is not None:
        out["deadline_ms"] = B.check_number(f"{meta_file}: options.deadline_ms",
                                            run["deadline_ms"], B.DEADLINE_MS,
                                            error=RecordingError, hint=hint)
    inject = run.get("inject") or []
    if not isinstance(inject, list):
        raise bad("options.inject", inject, "must be a list of KIND@SECONDS[:DURATION]")
    for spec in inject:
        B.check_inject_spec(spec, name=f"{meta_file}: options.inject", error=RecordingError)
    out["inject"] = list(inject)
    if "armed_ns" not in meta:
        raise RecordingError(f"{meta_file} is incomplete: missing key 'armed_ns' (the time the "
                             "session was armed, which replay repeats); re-record the session")
    out["armed_ns"] = B.check_number(f"{meta_file}: armed_ns", meta["armed_ns"], _ARMED_NS,
                                     error=RecordingError, hint=hint)
    # what the run wrote about itself: not replayed, but a recording that says otherwise
    # than a run can is corrupt or was edited
    if not isinstance(run.get("fast", False), bool):
        raise bad("options.fast", run["fast"], "must be true or false")
    if run.get("duration_s") is not None:
        B.check_number(f"{meta_file}: options.duration_s", run["duration_s"], B.DURATION_S,
                       error=RecordingError, hint=hint)
    for key in ("decoder_path", "limits_path"):
        if not isinstance(run.get(key), str | None):
            raise bad(f"options.{key}", run[key], "must be a path or null")
    for key, types in (("source_url", str), ("decoder_kind", str), ("limits", dict),
                       ("calibration", dict)):
        if key in meta and not isinstance(meta[key], types):
            raise bad(key, meta[key], f"must be {'a string' if types is str else 'an object'}")
    return out


class CycleCollector(LoopListener):
    """Keeps a copy of every cycle record in a preallocated array.

    ``dtype`` is the expected record layout; if the loop's records turn out to have another
    one (replaying a recording of an older format, whose records lack ``outputs``), the
    array is reallocated in the loop's layout at the first cycle.
    """

    def __init__(self, dtype: np.dtype, capacity: int) -> None:
        self.cycles = np.zeros(capacity, dtype=dtype)
        self.n = 0

    def on_cycle(self, record: np.ndarray) -> None:
        if self.n == 0 and record.dtype != self.cycles.dtype:
            self.cycles = np.zeros(self.cycles.shape[0], dtype=record.dtype)
        if self.n < self.cycles.shape[0]:
            self.cycles[self.n] = record[0]
            self.n += 1

    @property
    def collected(self) -> np.ndarray:
        return self.cycles[: self.n]


def _replay(directory: str | Path, *, decoder_path: str | None, config_path: str | None,
            listeners: list[LoopListener],
            progress: Callable[[str], None] | None,
            scenario: Any = None) -> tuple[Any, dict[str, Any]]:
    """Run the current pipeline over a recording; returns ``(recording, summary)``.

    Memory does not grow with the recording: samples and recorded cycles are read through
    windows, and listeners compare or keep what they need.
    """
    from ..runtime.inject import build_hooks, parse_injections, recorded_link_inputs
    from ..runtime.safety_inputs import RecordedSafetyInputs
    from .reader import open_recording
    from .replay_source import ReplaySource

    recording = open_recording(directory)
    meta = recording.meta
    meta_file = f"{Path(directory) / 'meta.json'}"
    recorded = _recorded_options(meta, meta_file)
    _check_armed(recording, recorded["armed_ns"], meta_file)
    if scenario is not None:  # a scenario object (compare: another decoder / features)
        pass
    elif config_path:
        scenario = load_scenario(Path(config_path))
    else:
        if not isinstance(meta.get("config"), dict):
            raise RecordingError(f"{meta_file} holds no config (the scenario the session ran "
                                 "with); pass --config FILE with it")
        scenario = scenario_from_dict(meta["config"], label=f"{meta_file} config")
    if decoder_path is None:
        candidate = Path(directory) / "decoder.npz"
        if not candidate.is_file():
            raise RecordingError(f"{directory} holds no decoder.npz; pass --decoder FILE "
                                 "with the decoder the session ran with")
        decoder_path = str(candidate)
    cycles = recording.cycle_stream()
    # the effective limits the run had (a --limits file included), unless another scenario
    # is asked for: then that scenario's own limits apply
    recorded_limits = meta.get("limits") if not config_path else None
    options = RunOptions(fast=True, decoder_path=decoder_path, seed=recorded["seed"],
                         deadline_ms=recorded["deadline_ms"], listeners=listeners,
                         limits_table=recorded_limits)
    session = Session(scenario, options, progress=progress)
    injections = recorded["inject"]
    if injections:
        options.hooks = build_hooks(parse_injections(list(injections)), session)
    # a device run's safety inputs, re-issued at the cycles they were recorded at
    options.safety_inputs = [RecordedSafetyInputs(recorded_link_inputs(recording.events()))]
    session.armed_ns = int(recorded["armed_ns"])
    if progress:
        progress(f"replaying {cycles.shape[0]} cycles from {directory}")
    session.open(source=ReplaySource(recording), replay_cycles=cycles)
    summary = session.run(mode="replay")
    return recording, summary


def replay_cycles(directory: str | Path, *, decoder_path: str | None = None,
                  config_path: str | None = None,
                  progress: Callable[[str], None] | None = None,
                  scenario: Any = None) -> tuple[Any, np.ndarray, dict[str, Any]]:
    """Replay ``directory`` keeping every replayed cycle in memory (for tests, notebooks and
    ``neuroloop compare``; the replay command uses a constant-memory checker instead).
    ``scenario`` (a :class:`~neuroloop.config.Scenario`) replaces the recorded one.

    Returns ``(recording, replayed cycles, summary)``.
    """
    from .reader import open_recording

    recording = open_recording(directory)
    collector = CycleCollector(recording.cycle_dtype, max(1, recording.n_cycles))
    recording, summary = _replay(directory, decoder_path=decoder_path,
                                 config_path=config_path, listeners=[collector],
                                 progress=progress, scenario=scenario)
    return recording, collector.collected, summary


def replay_recording(directory: str | Path, *, decoder_path: str | None = None,
                     config_path: str | None = None, check: bool = False,
                     as_json: bool = False,
                     progress: Callable[[str], None] | None = None) -> int:
    """The ``neuroloop replay`` command; returns the exit code (0 same, 1 diverged)."""
    from .compare import ReplayChecker, replay_check_report
    from .reader import open_recording

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
