"""One recording's regression check: replay it, compare, report - as one plain function.

:func:`check_recording` is the unit of work of ``neuroloop replay DIR... --check``: it replays
one recording through the current code, compares the decisions with the recording's baseline
(``DIR/baseline.npz``, when there is one) or with the decisions recorded live, under a set of
tolerances, and returns a :class:`RecordingCheck` - plain, picklable data. It never raises for
a bad recording (the result says ``error`` and why), so a corpus goes on past a corrupt one.
:func:`accept_recording` replays and writes the baseline instead.

Both are top-level functions of picklable arguments, so any executor can run them: the
process pool of :mod:`neuroloop.io.corpus`, or a Dask cluster (``client.submit(check_recording,
path, tolerances, "auto")``). They know nothing of how they are scheduled.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import NeuroloopError, RecordingError
from .format import to_jsonable
from .tolerances import Tolerances, load_tolerances

__all__ = ["RecordingCheck", "check_recording", "accept_recording", "run_check",
           "IDENTICAL", "DIVERGED", "ERROR", "ACCEPTED", "BASELINE_MODES"]

IDENTICAL, DIVERGED, ERROR, ACCEPTED = "identical", "diverged", "error", "accepted"
#: ``baseline`` argument: ``auto`` - the recording's baseline when it has one, else the
#: recording; ``recording`` - the decisions recorded live, whatever baseline exists;
#: ``required`` - the recording's baseline, an error when it has none. Anything else is the
#: path of a baseline file.
BASELINE_MODES = ("auto", "recording", "required")
#: Summary keys a corpus report keeps per recording.
_SUMMARY_KEYS = ("cycles", "simulated_s", "realtime_factor", "accuracy", "interlock_events")


@dataclass
class RecordingCheck:
    """The outcome of checking (or accepting) one recording.

    Attributes
    ----------
    path : str
        The recording directory as given.
    status : str
        ``identical``, ``diverged``, ``error`` or ``accepted``.
    against : str
        What the replay was compared with: ``"the recording"`` or a baseline's description
        (file, code version, decoder hash, date).
    cycles : int
        Cycles replayed.
    check : dict or None
        :func:`~neuroloop.io.compare.replay_check_report` (first divergent cycle, field, both
        values, per-field counts, events), plus ``against``.
    detail : str
        The divergence report for people (several lines; empty when identical).
    explain : dict or None
        :meth:`~neuroloop.io.baseline.BaselineDiff.to_dict` of the change (with ``explain``,
        or after ``accept`` against the previous baseline).
    explain_text : str
    error : str or None
        One line: what is wrong and the fix.
    wall_s, cpu_s : float
        Wall-clock and CPU seconds of this check (in the process that ran it).
    baseline_path : str or None
        The baseline used or written.
    baseline_bytes, recording_bytes : int or None
        Sizes after ``accept`` (the baseline's is a few percent of the recording's).
    summary : dict
        The replay's run summary (``neuroloop run --json`` keys).
    worker_pid : int
        The process that ran the check (a corpus counts how the recordings spread over its
        workers).
    """

    path: str
    status: str
    against: str = ""
    cycles: int = 0
    check: dict[str, Any] | None = None
    detail: str = ""
    explain: dict[str, Any] | None = None
    explain_text: str = ""
    error: str | None = None
    wall_s: float = 0.0
    cpu_s: float = 0.0
    baseline_path: str | None = None
    baseline_bytes: int | None = None
    recording_bytes: int | None = None
    summary: dict[str, Any] = field(default_factory=dict)
    worker_pid: int = field(default_factory=os.getpid)

    @property
    def first_divergence(self) -> str:
        """``cycle 12: probabilities[3] 0.1 -> 0.2`` (or the first divergent event)."""
        if not self.check:
            return ""
        c = self.check.get("cycles") or {}
        if not c.get("identical", True):
            if c.get("field") == "cycle_count":
                return (f"cycle {c['first_divergent_cycle']}: cycle count "
                        f"{c['recorded']} -> {c['replayed']}")
            return (f"cycle {c['first_divergent_cycle']}: {c['field_label']} "
                    f"{_short(c['recorded_value'])} -> {_short(c['replayed_value'])}")
        e = self.check.get("events") or {}
        if not e.get("identical", True):
            what = (f"{e['key']} {_short(e['recorded_value'])} -> "
                    f"{_short(e['replayed_value'])}" if e.get("key") else
                    f"count {e['recorded']} -> {e['replayed']}")
            return f"interlock event #{e['first_divergent_event']}: {what}"
        return ""

    @property
    def counts(self) -> dict[str, int]:
        """Cycles differing per field, and ``interlock_events`` when the events differ."""
        if not self.check:
            return {}
        out = dict((self.check.get("cycles") or {}).get("count_by_field") or {})
        e = self.check.get("events") or {}
        if not e.get("identical", True):
            out["interlock_events"] = max(e.get("recorded", 0), e.get("replayed", 0))
        return out

    def line(self) -> str:
        """One line for the terminal or a CI log."""
        if self.status == ERROR:
            return f"ERROR     {self.path}: {self.error}"
        if self.status == ACCEPTED:
            pct = (100.0 * (self.baseline_bytes or 0) / self.recording_bytes
                   if self.recording_bytes else 0.0)
            return (f"accepted  {self.path}  {self.cycles} cycles -> {self.baseline_path} "
                    f"({(self.baseline_bytes or 0) / 1024:.1f} kB, {pct:.2f} % of the recording)")
        if self.status == DIVERGED:
            counts = ", ".join(f"{k} {v}" for k, v in self.counts.items())
            return (f"DIVERGED  {self.path}  vs {self.against}: {self.first_divergence}"
                    f" ({counts})")
        return f"ok        {self.path}  {self.cycles} cycles  vs {self.against}"

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready (strict JSON: non-finite numbers as strings)."""
        body = {k: getattr(self, k) for k in (
            "path", "status", "against", "cycles", "check", "explain", "error", "baseline_path",
            "baseline_bytes", "recording_bytes", "worker_pid")}
        body["wall_s"] = round(self.wall_s, 3)
        body["cpu_s"] = round(self.cpu_s, 3)
        body["summary"] = {k: self.summary[k] for k in _SUMMARY_KEYS if k in self.summary}
        return to_jsonable(body)


def _short(value: Any) -> str:
    text = repr(value) if isinstance(value, float) else str(value)
    return text if len(text) <= 60 else text[:57] + "..."


def recording_bytes(directory: str | os.PathLike[str]) -> int:
    """Bytes of a recording's files (its baseline left out)."""
    from .baseline import BASELINE_FILE

    total = 0
    for entry in os.scandir(directory):
        if entry.is_file() and entry.name != BASELINE_FILE and not entry.name.endswith(".tmp"):
            total += entry.stat().st_size
    return total


def _chosen_baseline(path: str | os.PathLike[str], baseline: str) -> Path | None:
    """The baseline file ``--check`` compares with (None: the recording's own decisions)."""
    from .baseline import BASELINE_FILE

    own = Path(path) / BASELINE_FILE
    if baseline == "recording":
        return None
    if baseline == "auto":
        return own if own.exists() else None
    if baseline == "required":
        if not own.exists():
            raise RecordingError(f"{path} has no {BASELINE_FILE}; accept one with `neuroloop "
                                 f"replay {path} --accept` (or check against the recording with "
                                 "--against recording)")
        return own
    return Path(baseline)


def run_check(path: str | os.PathLike[str], tolerances: Tolerances | str | None = None,
              baseline: str = "auto", *, decoder_path: str | None = None,
              config_path: str | None = None, explain: bool = False,
              accept: bool = False,
              progress: Callable[[str], None] | None = None,
              listeners: Sequence[Any] = ()) -> RecordingCheck:
    """:func:`check_recording` (or, with ``accept``, :func:`accept_recording`) that raises
    :class:`~neuroloop.errors.NeuroloopError` instead of returning an ``error`` result (for
    the single-recording command, which reports it as one line and exit 2). ``listeners``
    (e.g. a progress bar) see the replayed cycles too."""
    from .baseline import BaselineCollector, load_baseline, recording_fingerprint
    from .compare import ReplayChecker
    from .reader import open_recording
    from .replay import _replay

    t0, c0 = time.perf_counter(), time.process_time()
    tol = load_tolerances(tolerances)
    with open_recording(path) as recording:
        chosen = None if accept else _chosen_baseline(path, baseline)
        fingerprint = recording_fingerprint(recording) if (chosen or accept) else None
        reference = (load_baseline(chosen, recording=recording, fingerprint=fingerprint)
                     if chosen is not None else None)
        checker = (ReplayChecker(recording, tolerances=tol)
                   if reference is None and not accept else None)
        collector = BaselineCollector() if (reference is not None or explain or accept) \
            else None
        _, summary = _replay(Path(path), decoder_path=decoder_path, config_path=config_path,
                             listeners=[*[x for x in (checker, collector) if x is not None],
                                        *listeners],
                             progress=progress)
        result = RecordingCheck(str(path), IDENTICAL, cycles=int(summary.get("cycles", 0)),
                                summary=summary)
        if accept:
            assert collector is not None and fingerprint is not None
            _accept(result, recording, collector, fingerprint, tol, decoder_path)
        else:
            _compare(result, recording, checker, collector, reference, tol, explain)
    result.wall_s = time.perf_counter() - t0
    result.cpu_s = time.process_time() - c0
    return result


def _accept(result: RecordingCheck, recording: Any, collector: Any, fingerprint: str,
            tol: Tolerances, decoder_path: str | None) -> None:
    """Write the replay's decisions as the recording's baseline; explain what that changes
    against the previous baseline (or against the decisions recorded live)."""
    from .baseline import BASELINE_FILE, Baseline, baseline_meta, diff_baselines, load_baseline

    own = Path(result.path) / BASELINE_FILE
    new = collector.baseline(baseline_meta(recording, fingerprint, decoder_path))
    try:
        before = load_baseline(own, recording=recording, fingerprint=fingerprint) \
            if own.exists() else Baseline.from_recording(recording)
    except RecordingError:  # an unreadable old baseline is replaced, not compared
        before = Baseline.from_recording(recording)
    size = new.save(own)
    change = diff_baselines(before, new, tol, labels=(
        str(before.path) if before.path else f"{result.path} (recorded live)", str(own)))
    result.status, result.against = ACCEPTED, "-"
    result.baseline_path, result.baseline_bytes = str(own), size
    result.recording_bytes = recording_bytes(result.path)
    result.explain, result.explain_text = change.to_dict(), change.format()


def _compare(result: RecordingCheck, recording: Any, checker: Any, collector: Any,
             reference: Any, tol: Tolerances, explain: bool) -> None:
    """Fill ``result`` with the comparison of the replay with ``reference`` (a baseline) or,
    without one, with the recording (``checker`` compared while the replay ran)."""
    from .baseline import Baseline, diff_baselines
    from .compare import compare_cycles, compare_events, replay_check_report

    current = None if collector is None else collector.baseline(
        {"intention_names": list(recording.intention_names),
         "output_names": list(recording.output_names)})
    if reference is not None:
        assert current is not None
        result.against, result.baseline_path = reference.describe(), str(reference.path)
        diff = compare_cycles(reference.cycles, current.cycles, tolerances=tol,
                              output_names=recording.output_names)
        events = compare_events(reference.events, current.events, tolerances=tol)
    else:
        result.against = "the recording"
        diff, events = checker.result(), checker.event_result()
    diff.reference = result.against
    report = replay_check_report(diff, events)
    report["against"] = result.against
    result.check = report
    if report["identical"]:
        return
    result.status = DIVERGED
    result.detail = diff.format() + ("" if events.identical else "\n" + events.format())
    if explain and current is not None:
        before = reference if reference is not None else Baseline.from_recording(recording)
        change = diff_baselines(before, current, tol, labels=(
            result.against, f"this replay of {result.path}"))
        result.explain, result.explain_text = change.to_dict(), change.format()


def _guarded(path: str | os.PathLike[str], **kw: Any) -> RecordingCheck:
    t0, c0 = time.perf_counter(), time.process_time()
    try:
        return run_check(path, **kw)
    except NeuroloopError as exc:
        message = " ".join(str(exc).splitlines())
    except (KeyboardInterrupt, SystemExit):
        raise
    except Exception as exc:  # a broken recording must not stop the corpus: name it, go on
        if os.environ.get("NEUROLOOP_DEBUG"):
            raise
        first = " ".join(str(exc).splitlines())[:200]
        message = (f"replay of {path} failed ({type(exc).__name__}: {first}); the recording is "
                   "probably corrupt: re-record it (NEUROLOOP_DEBUG=1 shows the traceback)")
    return RecordingCheck(str(path), ERROR, error=message, wall_s=time.perf_counter() - t0,
                          cpu_s=time.process_time() - c0)


def check_recording(path: str | os.PathLike[str], tolerances: Tolerances | str | None = None,
                    baseline: str = "auto", *, decoder_path: str | None = None,
                    config_path: str | None = None, explain: bool = False) -> RecordingCheck:
    """Replay one recording and compare its decisions; never raises for a bad recording.

    Parameters
    ----------
    path : path-like
        A recording directory.
    tolerances : Tolerances, str or None
        A :class:`~neuroloop.io.tolerances.Tolerances`, ``"default"`` (None), ``"exact"`` or
        a TOML file.
    baseline : str
        ``"auto"`` (the recording's ``baseline.npz`` when present, else the recording),
        ``"recording"``, ``"required"`` or the path of a baseline file.
    decoder_path, config_path : str, optional
        Replay with another decoder or scenario than the recorded ones.
    explain : bool
        On a divergence, also summarise the change (:func:`~neuroloop.io.baseline.
        diff_baselines`) in ``explain``/``explain_text``.

    Returns
    -------
    RecordingCheck
        ``identical``, ``diverged`` or ``error`` (with a one-line message).
    """
    return _guarded(path, tolerances=tolerances, baseline=baseline, decoder_path=decoder_path,
                    config_path=config_path, explain=explain)


def accept_recording(path: str | os.PathLike[str],
                     tolerances: Tolerances | str | None = None, *,
                     decoder_path: str | None = None,
                     config_path: str | None = None) -> RecordingCheck:
    """Replay one recording and write its baseline (``DIR/baseline.npz``); never raises for
    a bad recording. ``explain`` of the result summarises what the new baseline changes
    against the previous one (or against the decisions recorded live)."""
    return _guarded(path, tolerances=tolerances, decoder_path=decoder_path,
                    config_path=config_path, accept=True)
