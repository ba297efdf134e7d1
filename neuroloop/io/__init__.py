"""Session recordings (record, read, replay, compare) and EDF+/BDF+ import/export.

* :class:`SessionRecorder` - a loop listener that writes a session directory
  (``docs/recording.md``); :func:`bench_recorder` measures its per-cycle cost.
* :func:`open_recording` -> :class:`Recording` - memmap views of a session, crash-tolerant.
* :class:`ReplaySource` - ``replay://DIR`` source; :func:`compare_cycles`,
  :class:`ReplayChecker`, :func:`replay_check_report` - bit-exact replay checks.
* :class:`EdfSource` (``edf://``, ``bdf://``), :func:`read_edf`, :func:`export_edf`.
* MNE-Python: :func:`to_mne` (a recording as ``mne.io.Raw``), :func:`export_fif`,
  :class:`MneSource` (``mne://``, any file MNE reads).
* :class:`LslOutlets` - a loop listener publishing decisions on LSL (``run --lsl-out``).
* :func:`check_recording` / :func:`accept_recording` - one recording's regression check;
  :func:`run_corpus` runs it over many; :class:`Baseline`, :func:`diff_baselines`,
  :func:`load_tolerances` (``docs/ci.md``).

Submodules are imported lazily so that ``import neuroloop.io`` stays cheap (pyEDFlib is
loaded only when an EDF function is used).
"""

from __future__ import annotations

import importlib
from typing import Any

__all__ = [
    "SessionRecorder", "bench_recorder", "Recording", "open_recording", "ReplaySource",
    "CycleDiff", "EventDiff", "compare_cycles", "compare_events", "ReplayChecker",
    "replay_check_report", "Annotation", "EdfSource", "read_edf", "export_edf",
    "annotation_labels", "FORMAT_VERSION", "to_mne", "export_fif", "MneSource", "LslOutlets",
    "check_recording", "accept_recording", "run_corpus",
    "Baseline", "diff_baselines", "load_tolerances",
]

_WHERE = {
    "SessionRecorder": "recorder", "bench_recorder": "recorder",
    "Recording": "reader", "open_recording": "reader",
    "ReplaySource": "replay_source",
    "CycleDiff": "compare", "EventDiff": "compare", "compare_cycles": "compare",
    "compare_events": "compare", "ReplayChecker": "compare", "replay_check_report": "compare",
    "Annotation": "edf", "EdfSource": "edf", "read_edf": "edf", "export_edf": "edf",
    "annotation_labels": "edf",
    "FORMAT_VERSION": "format",
    "to_mne": "mne_export", "export_fif": "mne_export", "MneSource": "mne_source",
    "LslOutlets": "lsl_outlets",
    "check_recording": "check", "accept_recording": "check", "run_corpus": "corpus",
    "Baseline": "baseline", "diff_baselines": "baseline", "load_tolerances": "tolerances",
}


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module 'neuroloop.io' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(list(globals()) + __all__)
