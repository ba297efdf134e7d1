"""What runs on a worker: the cell runners (one per mode) and the wrapper around them.

:func:`execute_cell` is the Dask task. It runs the mode's runner in a thread with the cell's
time limit, and always returns a row: the metrics with status ``ok``, or status ``error`` with
the exception as one line, or ``timeout`` when the limit passed (the driver then restarts
that worker, since a Python thread cannot be killed). Infrastructure failures (a worker that
died) are Dask's to retry, so they are not caught here.
"""

from __future__ import annotations

import copy
import os
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ..errors import NeuroloopError

__all__ = ["build_scenario", "compare_cell", "evaluate_cell", "execute_cell", "flatten",
           "missing_paths", "one_line", "replay_check_cell", "run_fast_cell", "warm_worker",
           "worker_code_version"]

#: Summary entries that are not one value per cell (per-stage latency tables, lists).
_DROP = ("stages_us", "listener_errors", "mode")
#: Summary entries renamed so that they do not shadow a cell parameter of the same name.
_RENAME = {"scenario": "scenario_name"}


def build_scenario(ref: str, overrides: Mapping[str, Any], *, label: str = "<sweep>") -> Any:
    """The scenario ``ref`` (a preset name or a TOML path) with dotted ``overrides``
    (``{"source.snr": 0.5, "control.confidence_threshold": 0.7}``) applied, validated."""
    from ..config import load_scenario, scenario_from_dict

    is_path = ref.endswith(".toml") or "/" in ref
    base = load_scenario(Path(ref) if is_path else ref)
    if not overrides:
        return base
    raw: dict[str, Any] = copy.deepcopy(dict(base.raw))
    for key, value in overrides.items():
        *parents, leaf = key.split(".")
        node = raw
        for part in parents:
            child = node.get(part)
            if not isinstance(child, dict):
                child = {}
                node[part] = child
            node = child
        node[leaf] = value
    shown = ", ".join(f"{k}={v!r}" for k, v in overrides.items())
    return scenario_from_dict(raw, label=f"{label} ({base.path} with {shown})")


def flatten(summary: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """One level of columns: nested dicts become dotted names; lists are left out."""
    out: dict[str, Any] = {}
    for k, v in summary.items():
        if not prefix and k in _DROP:
            continue
        name = f"{prefix}{_RENAME.get(k, k) if not prefix else k}"
        if isinstance(v, Mapping):
            out.update(flatten(v, f"{name}."))
        elif isinstance(v, list | tuple):
            continue
        elif hasattr(v, "item") and not isinstance(v, str):  # numpy scalars
            out[name] = v.item()
        else:
            out[name] = v
    return out


def run_fast_cell(params: Mapping[str, Any]) -> dict[str, Any]:
    """A ``neuroloop run --fast`` cell: calibrate, run on the simulated clock, summarise."""
    from ..runtime.session import RunOptions, Session

    overrides = {k: v for k, v in params.items() if "." in k}
    scenario = build_scenario(str(params.get("scenario", "bsi")), overrides)
    options = RunOptions(duration_s=params.get("duration_s"), fast=True,
                         seed=params.get("seed"), source_url=params.get("source"),
                         decoder_path=params.get("decoder"),
                         deadline_ms=params.get("deadline_ms"), realtime_priority=None)
    session = Session(scenario, options)
    session.open()
    summary = session.run()
    summary.pop("stimulator", None)
    if summary.get("error"):
        raise NeuroloopError(str(summary["error"]))
    return flatten(summary)


def replay_check_cell(params: Mapping[str, Any]) -> dict[str, Any]:
    """A ``neuroloop replay --check`` cell: replay the recording, compare every cycle.

    Uses the corpus checker's per-recording :func:`neuroloop.io.check.check_recording`
    (tolerances, baselines) where the package has it, else replays and compares exactly
    through :mod:`neuroloop.io.replay`; both give the same columns.
    """
    try:
        from ..io.check import check_recording  # type: ignore[import-not-found,unused-ignore]
    except ImportError:
        return _replay_check_exact(params)
    res = check_recording(str(params["recording"]), None, "auto",
                          decoder_path=params.get("decoder"),
                          config_path=params.get("scenario"))
    if res.status == "error":
        raise NeuroloopError(str(res.error))
    out = _replay_summary(res.summary)
    out.update(_check_metrics(res.check or {}))
    out["identical"] = res.status == "identical"
    out["against"] = res.against
    return out


def _replay_check_exact(params: Mapping[str, Any]) -> dict[str, Any]:
    from ..io.compare import ReplayChecker, replay_check_report
    from ..io.reader import open_recording
    from ..io.replay import _replay

    directory = str(params["recording"])
    checker = ReplayChecker(open_recording(directory))
    _, summary = _replay(directory, decoder_path=params.get("decoder"),
                         config_path=params.get("scenario"), listeners=[checker],
                         progress=None)
    out = _replay_summary(summary)
    out.update(_check_metrics(replay_check_report(checker.result(), checker.event_result())))
    out["against"] = "the recording"
    return out


def _replay_summary(summary: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in flatten(summary).items()
            if not k.startswith(("stimulator.", "time_in_state_s."))}


def _check_metrics(report: Mapping[str, Any]) -> dict[str, Any]:
    """The columns of a replay check report (:func:`neuroloop.io.compare.
    replay_check_report`)."""
    cycles = report.get("cycles") or {}
    events = report.get("events") or {}
    return {
        "identical": bool(report.get("identical", False)),
        "cycles_identical": bool(cycles.get("identical", False)),
        "events_identical": bool(events.get("identical", True)),
        "cycles_recorded": cycles.get("recorded"),
        "cycles_replayed": cycles.get("replayed"),
        "first_divergent_cycle": cycles.get("first_divergent_cycle"),
        "divergent_field": cycles.get("field_label") or cycles.get("field"),
    }


#: Keys of an evaluation row that would shadow a cell parameter, and their column names.
_EVALUATION_RENAME: dict[str, str | None] = {"decoder": "decoder_label", "mode": "evaluation",
                                             "recording": None}


def _evaluation_row(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """The one row of a one-decoder, one-dataset evaluation, as flat columns (a confusion
    matrix as JSON text)."""
    import json

    if len(rows) != 1:
        raise NeuroloopError(f"expected one result row, got {len(rows)}")
    out: dict[str, Any] = {}
    for k, v in rows[0].items():
        name = _EVALUATION_RENAME.get(k, k)
        if name is None:
            continue
        out[name] = json.dumps(v) if isinstance(v, list | tuple) else v
    return flatten(out)


def evaluate_cell(params: Mapping[str, Any]) -> dict[str, Any]:
    """A ``neuroloop evaluate`` cell: one decoder fitted (on ``train``, or in blocked
    ``folds``) and tested offline on one dataset (:func:`neuroloop.evaluation.evaluate`)."""
    from ..evaluation import evaluate

    overrides = {k: v for k, v in params.items() if "." in k}
    scenario = build_scenario(str(params.get("scenario", "bsi")), overrides)
    rows = evaluate(scenario, [str(params["decoder"])],
                    train=[str(params["train"])] if params.get("train") else [],
                    test=[str(params["test"])], folds=params.get("folds"),
                    duration_s=params.get("duration_s"),
                    n_permutations=int(params.get("n_permutations", 200)),
                    seed=int(params.get("seed", 0)))
    return _evaluation_row(rows)


def compare_cell(params: Mapping[str, Any]) -> dict[str, Any]:
    """A ``neuroloop compare`` cell: one decoder in closed loop on one recording through
    replay (:func:`neuroloop.evaluation.compare`)."""
    from ..evaluation import compare

    scenario = build_scenario(str(params["scenario"]), {}) if params.get("scenario") else None
    rows = compare([str(params["decoder"])], [str(params["recording"])],
                   train=str(params["train"]) if params.get("train") else None,
                   scenario=scenario, duration_s=params.get("duration_s"),
                   n_permutations=int(params.get("n_permutations", 200)),
                   seed=int(params.get("seed", 0)))
    return _evaluation_row(rows)


def one_line(exc: BaseException) -> str:
    """An exception as one line (its type unless it is one of ours, whose message is the
    whole story), at most 500 characters."""
    text = " ".join(str(exc).split())
    line = text if isinstance(exc, NeuroloopError) else f"{type(exc).__name__}: {text}"
    return line if len(line) <= 500 else line[:497] + "..."


def _worker_info() -> tuple[str, int, float]:
    """(worker address or "local", pid, resident memory in MiB)."""
    address = "local"
    try:
        from distributed import get_worker

        address = get_worker().address
    except (ImportError, ValueError):
        pass
    rss = float("nan")
    try:
        import psutil

        rss = psutil.Process().memory_info().rss / 2**20
    except ImportError:  # pragma: no cover - psutil comes with distributed
        pass
    return address, os.getpid(), round(rss, 1)


def execute_cell(task: Mapping[str, Any]) -> dict[str, Any]:
    """Run one cell (:meth:`~neuroloop.sweep.cells.Cell.task`) and return its row fields.

    Returns
    -------
    dict
        ``cell_id``, ``status`` (``ok`` | ``error`` | ``timeout``), ``error`` (one line or
        ``""``), ``metrics`` (dict), ``cell_s`` (wall seconds on the worker), ``worker``,
        ``worker_pid``, ``worker_rss_mb`` (after the cell), ``started_unix_s`` and
        ``finished_unix_s`` (the worker's clock, around the whole task), ``cell_cpu_s``
        (CPU seconds of the worker process during the cell: on a busy machine ``cell_s``
        grows, this does not).
    """
    from .modes import MODES, resolve_runner

    mode = MODES[task["mode"]]
    runner = resolve_runner(mode)
    box: dict[str, Any] = {}

    def target() -> None:
        try:
            box["metrics"] = runner(task["params"])
        except BaseException as exc:  # noqa: BLE001 - recorded as the cell's error
            box["error"] = exc

    started = time.time()
    c0 = time.process_time()
    t0 = time.perf_counter()
    thread = threading.Thread(target=target, name=f"sweep-cell-{task['index']}", daemon=True)
    thread.start()
    thread.join(float(task["time_limit_s"]))
    cell_s = time.perf_counter() - t0
    cell_cpu_s = time.process_time() - c0
    metrics: dict[str, Any]
    if thread.is_alive():
        status, error, metrics = "timeout", (f"exceeded the time limit of "
                                             f"{float(task['time_limit_s']):g} s"), {}
    elif "error" in box:
        status, error, metrics = "error", one_line(box["error"]), {}
    else:
        status, error, metrics = "ok", "", dict(box.get("metrics", {}))
    worker, pid, rss = _worker_info()
    return {"cell_id": task["cell_id"], "status": status, "error": error, "metrics": metrics,
            "cell_s": round(cell_s, 4), "cell_cpu_s": round(cell_cpu_s, 4), "worker": worker, "worker_pid": pid,
            "worker_rss_mb": rss, "started_unix_s": started, "finished_unix_s": time.time()}


_WARM: dict[str, bool] = {"done": False}
#: The warm-up session: the smallest synthetic run that calls every compiled kernel a run or
#: replay cell calls (Numba compiles per argument type, not per channel count or rate).
_WARMUP_PARAMS = {"scenario": "eeg-bci", "duration_s": 1.0, "decoder.calibration_s": 10.0,
                  "runtime.deadline_ms": 10000.0}


def warm_worker(modes: tuple[str, ...] = ("run",)) -> float:
    """Import the runners of ``modes`` and load every compiled kernel once per worker process
    (a short synthetic session), so that no cell pays the process's start-up; returns the
    seconds it took (0 when already warm)."""
    from .modes import MODES, resolve_runner

    t0 = time.perf_counter()
    for name in modes:
        if name in MODES and name not in _WARM:
            resolve_runner(MODES[name])  # imports the runner's module
            if name in ("evaluate", "compare"):
                import neuroloop.evaluation  # noqa: F401 - scikit-learn, pyRiemann
            _WARM[name] = True
    if not _WARM["done"]:
        import neuroloop.io.replay  # noqa: F401 - imported for the replay cells

        run_fast_cell(_WARMUP_PARAMS)
        _WARM["done"] = True
    return time.perf_counter() - t0


def missing_paths(paths: list[str]) -> list[str]:
    """Those of ``paths`` that do not exist here (run on each worker before scheduling)."""
    return [p for p in paths if not os.path.exists(p)]


def worker_code_version() -> str:
    """The code version of this process (run on each worker before scheduling)."""
    from .cells import code_version

    return code_version()
