"""No traceback, ever, from user input: a generated sweep of bad values.

Every key of every shipped scenario (``neuroloop/scenarios/*.toml``, recursively, program
tables and every ``[safety]`` limit included) is set in turn to each of −1, 0, 1, 1e308, nan,
inf, a string, a list, or removed; every field of a small recording's ``meta.json`` likewise.
Each mutation goes through the entry point the command line uses and must end in exit 0 or
2, without "Traceback", with at most one line on stderr, within a time bound.

Default run (about a minute on 2 cores):

* every scenario mutation through :func:`neuroloop.config.load_scenario` (what ``--config``
  calls first); the mutations it accepts through ``neuroloop.cli.main(["run", "--config", F,
  "--fast", "--duration", "1", "--json"])`` for ``eeg-bci`` (the cheap preset);
* every ``meta.json`` mutation through ``neuroloop.cli.main(["replay", DIR, "--check",
  "--json"])`` except inside ``config`` (the same loader as above) and the informational
  subtrees (``summary``, ``versions``, ...), whose top level only is mutated;
* about ten cases through a real ``neuroloop`` subprocess.

``-m slow``: every key × every value of both presets through ``run``, and every field of
``meta.json`` (``config`` and the informational subtrees included) through ``replay``.

An accepted mutation must really be valid: ``ACCEPTED`` lists, per class, why a value may be
accepted, and a mutation accepted for no listed reason fails the test. The report of counts
(tried, refused, accepted by reason) is printed with ``-s``.
"""

from __future__ import annotations

import contextlib
import copy
import io
import json
import math
import os
import shutil
import signal
import subprocess
import sys
import time
import tomllib
from collections import Counter
from collections.abc import Callable, Iterator
from importlib import resources
from pathlib import Path
from typing import Any

import pytest

from neuroloop.cli import main as cli_main
from neuroloop.config import load_scenario, scenario_names
from neuroloop.errors import NeuroloopError
from neuroloop.safety.limits import limit_names


class _Missing:
    """The "remove this key" mutation (survives deepcopy as itself)."""

    def __deepcopy__(self, memo: dict) -> _Missing:
        return self

    def __repr__(self) -> str:
        return "<missing>"


MISSING = _Missing()
#: The bad values, by name.
VALUES: dict[str, Any] = {
    "-1": -1, "0": 0, "1": 1, "1e308": 1e308, "nan": math.nan, "inf": math.inf,
    "string": "x", "list": [1, 2], "missing": MISSING,
}
#: Seconds one in-process call may take (a hang would be a bug).
CALL_TIMEOUT_S = 60.0
#: meta.json subtrees that neither the reader nor replay reads: only their top is mutated
#: by default (everything in the slow sweep).
INFORMATIONAL_META = ("summary", "versions", "recorder", "calibration", "limits")


# -- enumerating keys ------------------------------------------------------------------------
Path_ = tuple[Any, ...]


def key_paths(node: Any, prefix: Path_ = (), *, skip: tuple[str, ...] = ()) -> Iterator[Path_]:
    """Every key path of a TOML/JSON tree: tables and their keys, arrays of tables and each
    table in them (by index). Lists of scalars are leaves."""
    if isinstance(node, dict):
        for k, v in node.items():
            path = (*prefix, k)
            yield path
            if k in skip and len(prefix) == 0:
                continue
            yield from key_paths(v, path)
    elif isinstance(node, list) and node and all(isinstance(x, dict) for x in node):
        for i, v in enumerate(node):
            path = (*prefix, i)
            yield path
            yield from key_paths(v, path)


def show_path(path: Path_) -> str:
    out = ""
    for p in path:
        out += f"[{p}]" if isinstance(p, int) else (f".{p}" if out else str(p))
    return out


def mutate(tree: Any, path: Path_, value: Any) -> Any:
    out = copy.deepcopy(tree)
    node = out
    for p in path[:-1]:
        node = node[p]
    last = path[-1]
    if value is MISSING:
        del node[last]
    else:
        node[last] = copy.deepcopy(value)
    return out


def preset_table(name: str) -> dict[str, Any]:
    text = (resources.files("neuroloop.scenarios") / f"{name}.toml").read_text("utf-8")
    table = tomllib.loads(text)
    # every limit key, not only those the preset sets
    safety = table.setdefault("safety", {})
    for key in limit_names():
        safety.setdefault(key, MISSING)
    return table


def scenario_mutations(name: str) -> Iterator[tuple[str, str, dict[str, Any]]]:
    """(key, value name, mutated table) for every key of preset ``name`` and every value."""
    table = preset_table(name)
    for path in key_paths(table):
        for vname, value in VALUES.items():
            mutated = mutate(table, path, value)
            yield show_path(path), vname, _drop_missing(mutated)


def _drop_missing(node: Any) -> Any:
    if isinstance(node, dict):
        return {k: _drop_missing(v) for k, v in node.items() if v is not MISSING}
    if isinstance(node, list):
        return [_drop_missing(v) for v in node]
    return node


# -- TOML writer (tomllib reads; the standard library writes none) ---------------------------
def _toml_key(k: str) -> str:
    return k if k and all(c.isalnum() or c in "-_" for c in k) else json.dumps(k)


def _toml_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        if math.isnan(v):
            return "nan"
        if math.isinf(v):
            return "inf" if v > 0 else "-inf"
        return repr(v)
    if isinstance(v, str):
        return json.dumps(v)
    if isinstance(v, list):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{" + ", ".join(f"{_toml_key(k)} = {_toml_value(x)}" for k, x in v.items()) + "}"
    raise TypeError(type(v))


def _is_table_array(v: Any) -> bool:
    return isinstance(v, list) and bool(v) and all(isinstance(x, dict) for x in v)


def dump_toml(table: dict[str, Any]) -> str:
    lines = [f"{_toml_key(k)} = {_toml_value(v)}" for k, v in table.items()
             if not isinstance(v, dict) and not _is_table_array(v)]
    for sect, body in table.items():
        if not isinstance(body, dict):
            continue
        lines.append(f"\n[{_toml_key(sect)}]")
        lines += [f"{_toml_key(k)} = {_toml_value(v)}" for k, v in body.items()
                  if not _is_table_array(v)]
        for k, v in body.items():
            if _is_table_array(v):
                for item in v:
                    lines.append(f"\n[[{_toml_key(sect)}.{_toml_key(k)}]]")
                    lines += [f"{_toml_key(ik)} = {_toml_value(iv)}" for ik, iv in item.items()]
    return "\n".join(lines) + "\n"


# -- running the entry point in-process ------------------------------------------------------
class _Hang(Exception):
    pass


def call_cli(argv: list[str], timeout_s: float = CALL_TIMEOUT_S) -> tuple[int, str, str, float]:
    """``neuroloop.cli.main(argv)`` with stdout/stderr captured: (exit code, stderr, stdout,
    seconds). An exception escaping ``main`` is exit code -1 with its traceback on stderr."""
    err, out = io.StringIO(), io.StringIO()

    def alarm(signum: int, frame: Any) -> None:
        raise _Hang(f"no answer within {timeout_s} s")

    old = signal.signal(signal.SIGALRM, alarm)
    old_int, old_term = signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)
    signal.setitimer(signal.ITIMER_REAL, timeout_s)
    t0 = time.perf_counter()
    try:
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(out):
            try:
                code = cli_main(argv)
            except SystemExit as exc:
                code = exc.code if isinstance(exc.code, int) else 2
            except BaseException:  # noqa: BLE001 - the point is to catch everything
                import traceback

                err.write(traceback.format_exc())
                code = -1
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)
        signal.signal(signal.SIGINT, old_int)
        signal.signal(signal.SIGTERM, old_term)
    return int(code), err.getvalue(), out.getvalue(), time.perf_counter() - t0


def load_in_process(path: Path) -> tuple[int, str]:
    """What ``--config`` does first: (0, "") if the loader accepts the file, else (2, the
    one-line message); an unexpected exception is (-1, its traceback)."""
    try:
        load_scenario(path)
    except NeuroloopError as exc:
        return 2, f"neuroloop: error: {exc}\n"
    except BaseException:  # noqa: BLE001
        import traceback

        return -1, traceback.format_exc()
    return 0, ""


def check_outcome(where: str, code: int, stderr: str, seconds: float,
                  allowed: tuple[int, ...] = (0, 2)) -> str | None:
    """A problem description, or None when the outcome is acceptable."""
    lines = [ln for ln in stderr.splitlines() if ln.strip()]
    if code not in allowed:
        return f"{where}: exit {code}: {stderr.strip()[-400:]}"
    if "Traceback" in stderr:
        return f"{where}: traceback on stderr: {stderr[-400:]}"
    if len(lines) > 1:
        return f"{where}: {len(lines)} lines on stderr: {stderr[:400]}"
    if code == 2 and (not lines or "error" not in lines[0]):
        return f"{where}: exit 2 without a one-line error"
    if seconds > CALL_TIMEOUT_S:
        return f"{where}: took {seconds:.1f} s"
    return None


# -- recording metadata ----------------------------------------------------------------------
def meta_mutations(meta: dict[str, Any], *, full: bool) -> Iterator[tuple[str, str, Any]]:
    """(field, value name, mutated meta) for every field of ``meta`` and every value; by
    default without descending into ``config`` and the informational subtrees."""
    skip = () if full else ("config", *INFORMATIONAL_META)
    for path in key_paths(meta, skip=skip):
        for vname, value in VALUES.items():
            yield show_path(path), vname, mutate(meta, path, value)


def write_meta(directory: Path, meta: Any) -> None:
    """meta.json as the recorder writes it (strict JSON: non-finite floats as strings)."""
    from neuroloop.io.format import to_jsonable

    (directory / "meta.json").write_text(json.dumps(to_jsonable(meta), allow_nan=False))


def link_recording(src: Path, dst: Path) -> None:
    """``dst``: a recording sharing ``src``'s data files (hard links) with its own meta.json."""
    dst.mkdir()
    for f in src.iterdir():
        if f.name != "meta.json":
            os.link(f, dst / f.name)
    shutil.copy(src / "meta.json", dst / "meta.json")


@pytest.fixture(scope="module")
def recording(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    """A 3 s bsi recording made once per module, through the CLI entry point."""
    d = tmp_path_factory.mktemp("rec") / "session"
    code, err, _, _ = call_cli(["run", "--fast", "--duration", "3", "--record", str(d),
                                "--json"])
    assert code == 0, err
    return d, json.loads((d / "meta.json").read_text())


# -- why an accepted mutation is valid -------------------------------------------------------
def _num(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)


#: Scenario keys owned by this suite's author (the rest: [stimulation], [safety], [control]
#: belong to the safety work; an unexplained acceptance there is reported, not failed).
OWNED_SECTIONS = ("scenario", "source", "dsp", "decoder", "runtime")
#: Keys with a documented default: removing them is valid.
DEFAULTED = frozenset({
    "scenario.description", "source.seed", "source.snr", "dsp.car", "dsp.notch_hz",
    "dsp.notch_q", "dsp.filter_order", "decoder.calibration_s", "decoder.calibration_seed",
    "decoder.shrinkage", "decoder.transition_stay", "decoder.gate_hops",
    "decoder.gate_threshold", "runtime", "runtime.deadline_ms", "runtime.duration_s",
    "runtime.status_interval_s",
    # the responsive preset's detector pipeline and detectors (docs/responsive.md)
    "dsp.highpass_hz", "dsp.lowpass_hz", "decoder.combine", "decoder.trend_init_s",
    "decoder.area", "decoder.area.enabled", "decoder.area.channels",
    "decoder.area.channel_logic", "decoder.area.window_s", "decoder.area.trend_s",
    "decoder.area.threshold_pct", "decoder.line_length.channels",
    "decoder.line_length.channel_logic", "decoder.line_length.window_s",
    "decoder.line_length.trend_s", "decoder.line_length.threshold_pct",
    "decoder.bandpass.channels", "decoder.bandpass.channel_logic",
    "decoder.bandpass.min_amplitude_uv", "decoder.bandpass.min_duration_s",
    # [stimulation] / [safety] / [control]
    "stimulation", "stimulation.array", "stimulation.contact_area_cm2",
    "stimulation.confidence_threshold", "stimulation.programs", "safety", "control",
})
#: Keys where a finite number in [lo, hi] is valid (integers where the key is a count).
RANGES: dict[str, tuple[float, float]] = {
    "source.seed": (0, 2**32 - 1), "source.snr": (0, 1e6), "dsp.hop_samples": (1, 1e6),
    "dsp.filter_order": (1, 20), "dsp.notch_q": (0.5, 1000),
    "decoder.calibration_seed": (0, 2**32 - 1), "decoder.shrinkage": (0, 1),
    "decoder.transition_stay": (1e-12, 1 - 1e-12), "decoder.gate_hops": (1, 1e6),
    "decoder.gate_threshold": (0, 1 - 1e-12), "decoder.calibration_s": (1e-9, 3600),
    "runtime.deadline_ms": (0.05, 10000), "runtime.duration_s": (1e-9, 604800),
    "runtime.status_interval_s": (0.01, 60),
    "dsp.highpass_hz": (0, 15), "dsp.lowpass_hz": (0, 124.9), "decoder.trend_init_s": (0.1, 1e4),
    "decoder.line_length.window_s": (0.05, 1.0), "decoder.line_length.trend_s": (1.0, 86400),
    "decoder.line_length.threshold_pct": (1e-9, 1e5),
    "decoder.area.window_s": (0.05, 1.0), "decoder.area.trend_s": (1.0, 86400),
    "decoder.area.threshold_pct": (1e-9, 1e5),
    "decoder.bandpass.min_amplitude_uv": (1e-9, 1e6),
    "decoder.bandpass.min_duration_s": (0, 600),
    "stimulation.confidence_threshold": (0, 0.99), "control.confidence_threshold": (0, 0.99),
}


def _program_key(key: str) -> str | None:
    """``stimulation.programs[3].anodes.E7`` -> ``anodes.E7``; None for other keys."""
    if not key.startswith("stimulation.programs["):
        return None
    rest = key.split("]", 1)[1]
    return rest[1:] if rest.startswith(".") else ""


def _safety_reason(key: str, value: Any) -> str | None:
    from neuroloop.safety import limits as L

    name = key.split(".", 1)[1]
    if value is MISSING:
        return "missing: a limit not set keeps its built-in value"
    try:
        v = L.check_limit_value(name, value)
        spec = L.LIMIT_SPECS[name]
        base = getattr(L.SafetyLimits(), name)
    except Exception:  # noqa: BLE001 - refused or an API change: no reason
        return None
    if base is None or v is None:
        return None
    tighter = v <= base if spec.stricter == "lower" else v >= base
    if tighter:
        return ("safety: inside the hard range, not looser than the built-in value, every "
                "program still fits")
    return ("safety: inside the hard range but LOOSER than the built-in value (a [safety] "
            "table may choose any value in the range, by design of limits.py)")


def accepted_reason(key: str, vname: str, value: Any) -> str | None:
    """Why a scenario mutation that ran (exit 0) is valid, or None."""
    if key.startswith("safety.") or key == "safety":
        return "missing: no [safety] table" if key == "safety" else _safety_reason(key, value)
    if value is MISSING:
        if key in DEFAULTED:
            return "missing: the key has a documented default"
        sub = _program_key(key)
        if sub == "":
            return "missing: one program fewer is a valid scenario"
        if sub is not None and (sub in ("anodes", "interphase_gap_us")
                                or sub.startswith(("cathodes.", "anodes."))):
            return "missing: optional program key, or one contact fewer (others remain)"
        if key.startswith("control."):
            return "missing: a [control] key with a default"
        return None
    if key in RANGES and _num(value) and RANGES[key][0] <= value <= RANGES[key][1]:
        if key in ("dsp.hop_samples", "source.seed", "decoder.calibration_seed",
                   "decoder.gate_hops", "dsp.filter_order") and not isinstance(value, int):
            return None
        return "number: finite and inside the key's documented range"
    if key in ("scenario.name", "scenario.description") and isinstance(value, str) and value:
        return "string: a name or description is any non-empty text"
    if key == "dsp.notch_hz" and isinstance(value, list) and all(_num(x) and x > 0
                                                                 for x in value):
        return "list: notch frequencies that are positive and below Nyquist"
    sub = _program_key(key)
    if sub is not None:
        if sub.startswith(("cathodes.", "anodes.")) and _num(value) and 0 < value < 1e300:
            return "number: a positive contact weight (weights are normalised per program)"
        if sub == "amplitude_ma" and isinstance(value, list) and len(value) == 2 and \
                0 <= value[0] <= value[1]:
            return "list: a valid [min, max] amplitude"
    return None


def owned(key: str) -> bool:
    return key.split(".", 1)[0].split("[", 1)[0] in OWNED_SECTIONS


#: meta.json fields neither the reader nor replay reads (what the run wrote about itself).
META_INFORMATIONAL = ("created_utc", "stopped_utc", "versions", "summary", "recorder",
                      "calibration", "limits", "decoder_kind", "source_url", "scenario",
                      "decoder.path", "options.fast", "options.duration_s",
                      "options.decoder_path", "options.limits_path", "flush_interval_s")
#: meta.json fields that may be absent (the reader or replay has a documented default).
META_OPTIONAL = ("hop_samples", "intention_names", "channels.types", "channels.unit",
                 "cycle_dtype", "streams", "flush_interval_s", "closed_cleanly", "options",
                 "options.seed", "options.deadline_ms", "options.inject", "stopped_utc",
                 "options.config_sha256")


def meta_reason(field: str, vname: str, value: Any, replayed_identically: bool) -> str | None:
    """Why a meta.json mutation that replayed (exit 0) is valid, or None."""
    if not replayed_identically:
        return None
    top = field.split(".", 1)[0].split("[", 1)[0]
    if value is MISSING and (field in META_OPTIONAL or field in META_INFORMATIONAL
                             or top in META_INFORMATIONAL):
        if field == "closed_cleanly":
            return "missing closed_cleanly: reads as a crashed recording (whole rows only)"
        return "missing: optional field with a documented default (or informational)"
    if field in META_INFORMATIONAL or top in META_INFORMATIONAL:
        return "informational: not read by the reader or replay (type-checked where it has one)"
    if field in ("options.seed", "options.deadline_ms", "armed_ns") and _num(value) and value >= 0:
        return "number: a valid seed / deadline / arming time; the replay is still identical"
    return None


# -- the sweeps ------------------------------------------------------------------------------
class Report:
    """Counts of one sweep, printed at the end (``pytest -s`` shows them)."""

    def __init__(self, title: str) -> None:
        self.title = title
        self.tried = 0
        self.refused: Counter[str] = Counter()  # by stage
        self.accepted: Counter[str] = Counter()  # by reason
        self.review: list[str] = []  # accepted without a reason, outside the owned keys
        self.problems: list[str] = []
        self.examples: dict[str, list[str]] = {}  # accepted mutations by reason
        self.seconds = 0.0

    def accept(self, reason: str, where: str) -> None:
        self.accepted[reason] += 1
        self.examples.setdefault(reason, []).append(where)

    def text(self) -> str:
        n_acc = sum(self.accepted.values())
        lines = [f"{self.title}: {self.tried} mutations tried, {sum(self.refused.values())} "
                 f"refused ({dict(self.refused)}), {n_acc} accepted, {len(self.problems)} "
                 f"problems, {self.seconds:.1f} s"]
        for reason, n in self.accepted.most_common():
            lines.append(f"  accepted {n:4d}  {reason}")
            if os.environ.get("NEUROLOOP_SWEEP_VERBOSE"):  # every accepted mutation, by reason
                lines += [f"      {w}" for w in self.examples.get(reason, [])]
        lines += [f"  REVIEW (not this suite's keys): {r}" for r in self.review]
        return "\n".join(lines)


#: Sections whose keys do not change the features or the decoder: with ``decoders[name]``
#: such a mutation runs with ``--decoder`` (a trained decoder file) instead of calibrating.
DECODER_INDEPENDENT = ("stimulation", "safety", "runtime", "control")


def sweep_scenarios(tmp: Path, names: list[str], *, run: Callable[[str], bool],
                    decoders: dict[str, Path] | None = None) -> Report:
    """Every key x value of the presets ``names`` through the loader; the loader-accepted ones
    of presets where ``run(name)`` through ``neuroloop run --fast --duration 1``."""
    report = Report(f"scenario sweep ({', '.join(names)})")
    t0 = time.perf_counter()
    cache: dict[str, tuple[int, str, float]] = {}
    f = tmp / "mutated.toml"
    for name in names:
        for key, vname, table in scenario_mutations(name):
            report.tried += 1
            where = f"{name}: {key} = {vname}"
            text = dump_toml(table)
            f.write_text(text)
            t = time.perf_counter()
            code, err = load_in_process(f)
            problem = check_outcome(f"{where} (loader)", code, err, time.perf_counter() - t)
            if problem:
                report.problems.append(problem)
                continue
            if code == 2:
                report.refused["by the loader"] += 1
                continue
            if not run(name):
                report.accept("loader accepted; run not tried in the default set", where)
                continue
            if text not in cache:  # many mutations give the same file (a default removed)
                argv = ["run", "--config", str(f), "--fast", "--duration", "1", "--json"]
                if decoders and name in decoders and (key.split(".")[0].split("[")[0]
                                                      in DECODER_INDEPENDENT):
                    argv += ["--decoder", str(decoders[name])]
                c, e, _, sec = call_cli(argv)
                cache[text] = (c, e, sec)
            code, err, sec = cache[text]
            problem = check_outcome(f"{where} (run)", code, err, sec)
            if problem:
                report.problems.append(problem)
            elif code == 2:
                report.refused["by run (session build, calibration)"] += 1
            else:
                reason = accepted_reason(key, vname, VALUES[vname])
                if reason is not None:
                    report.accept(reason, where)
                elif owned(key):
                    report.problems.append(f"{where}: accepted (exit 0) but not a valid value")
                else:
                    report.accept("REVIEW: outside this suite's keys, no reason", where)
                    report.review.append(where)
    report.seconds = time.perf_counter() - t0
    return report


def _json_equal(a: Any, b: Any) -> bool:
    return json.dumps(a, sort_keys=True) == json.dumps(b, sort_keys=True)


def sweep_meta(tmp: Path, rec: Path, meta: dict[str, Any], *, full: bool) -> Report:
    """Every field x value of ``meta`` through ``neuroloop replay DIR --check --json``."""
    report = Report(f"meta.json sweep ({'every field' if full else 'default fields'})")
    t0 = time.perf_counter()
    work = tmp / "mutated-recording"
    link_recording(rec, work)
    for field, vname, mutated in meta_mutations(meta, full=full):
        report.tried += 1
        where = f"meta.json: {field} = {vname}"
        mutated = _drop_missing(mutated)
        if _json_equal(mutated, meta):
            report.accept("unchanged: the value is the recorded one", where)
            continue
        # plain json.dumps: NaN and Infinity as a hand edit would write them
        (work / "meta.json").write_text(json.dumps(mutated))
        code, err, out, sec = call_cli(["replay", str(work), "--check", "--json"])
        problem = check_outcome(where, code, err, sec)
        if problem:
            report.problems.append(problem)
        elif code == 2:
            report.refused["by the reader or replay"] += 1
        else:
            identical = json.loads(out)["check"]["identical"]
            reason = meta_reason(field, vname, VALUES[vname], identical)
            if reason is None:
                report.problems.append(f"{where}: accepted (exit 0, identical={identical}) for "
                                       "no listed reason")
            else:
                report.accept(reason, where)
    report.seconds = time.perf_counter() - t0
    return report


def _finish(report: Report) -> None:
    print("\n" + report.text())
    assert not report.problems, "\n".join(report.problems[:300])


# -- tests -----------------------------------------------------------------------------------
#: The preset whose accepted mutations also run in the default set (calibrates in ~0.2 s).
CHEAP_PRESET = "eeg-bci"


@pytest.fixture(scope="module")
def cheap_decoder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("dec") / f"{CHEAP_PRESET}.npz"
    code, err, _, _ = call_cli(["train", "--scenario", CHEAP_PRESET, "--out", str(out),
                                "--json"])
    assert code == 0, err
    return out


def test_scenario_keys_default(tmp_path: Path, cheap_decoder: Path) -> None:
    """Every key x value of every preset through the loader; the cheap preset's accepted
    mutations through ``run --fast --duration 1`` (with its trained decoder when the key
    cannot change the features or the decoder)."""
    _finish(sweep_scenarios(tmp_path, scenario_names(), run=lambda n: n == CHEAP_PRESET,
                            decoders={CHEAP_PRESET: cheap_decoder}))


def test_meta_fields_default(tmp_path: Path, recording: tuple[Path, dict[str, Any]]) -> None:
    rec, meta = recording
    _finish(sweep_meta(tmp_path, rec, meta, full=False))


@pytest.mark.slow
def test_scenario_keys_full(tmp_path: Path) -> None:
    """Every key x value of every preset through ``run`` (about 6 min on 2 cores)."""
    _finish(sweep_scenarios(tmp_path, scenario_names(), run=lambda n: True))


@pytest.mark.slow
def test_meta_fields_full(tmp_path: Path, recording: tuple[Path, dict[str, Any]]) -> None:
    rec, meta = recording
    _finish(sweep_meta(tmp_path, rec, meta, full=True))


# -- a sample through a real subprocess ------------------------------------------------------
def _meta_edit(src: Path, dst: Path, edit: Callable[[dict[str, Any]], None]) -> Path:
    link_recording(src, dst)
    meta = json.loads((dst / "meta.json").read_text())
    edit(meta)
    (dst / "meta.json").write_text(json.dumps(meta))
    return dst


def test_sample_through_a_real_subprocess(tmp_path: Path,
                                          recording: tuple[Path, dict[str, Any]]) -> None:
    """The cases of the hardening issue, as a user runs them: exit code, one stderr line,
    no traceback, promptly (all started at once)."""
    rec, _ = recording
    bsi = 'base = "bsi"\n'
    files = {name: tmp_path / f"{name}.toml" for name in ("rate", "deadline", "cal", "hop")}
    files["rate"].write_text(bsi + "[source]\nsampling_rate_hz = 1e308\n")
    files["deadline"].write_text(bsi + "[runtime]\ndeadline_ms = inf\n")
    files["cal"].write_text(bsi + "[decoder]\ncalibration_s = 1e308\n")
    files["hop"].write_text(bsi + "[dsp]\nhop_samples = nan\n")
    binary = tmp_path / "binary.toml"
    binary.write_bytes(b"[scenario]\n\x00\xff\xfe" * 10)
    fifo = tmp_path / "fifo.toml"
    os.mkfifo(fifo)

    def hop_both(m: dict[str, Any]) -> None:  # config digest dropped: the data must tell
        m["hop_samples"] = m["config"]["dsp"]["hop_samples"] = 60
        m["options"].pop("config_sha256")

    cases: list[tuple[list[str], int, str]] = [
        (["run", "--duration", "1e308"], 2, "--duration"),
        (["run", "--fast", "--duration", "1e12"], 2, "--duration"),
        (["run", "--fast", "--duration", "100000"], 2, "--fast"),
        (["run", "--deadline-ms", "1e308"], 2, "--deadline-ms"),
        (["run", "--fast", "--config", str(files["rate"])], 2, "source.sampling_rate_hz"),
        (["run", "--fast", "--config", str(files["cal"])], 2, "decoder.calibration_s"),
        (["run", "--fast", "--config", "/dev/zero"], 2, "not a regular file"),
        (["run", "--fast", "--config", str(fifo)], 2, "not a regular file"),
        (["run", "--fast", "--config", str(binary)], 2, "binary data at byte"),
        (["run", "--fast", "--config", str(tmp_path)], 2, "directory"),
        (["replay", str(_meta_edit(rec, tmp_path / "neg", lambda m: m["sizes"].update(
            n_features=-1))), "--check"], 2, "sizes.n_features"),
        (["replay", str(_meta_edit(rec, tmp_path / "hash", lambda m: m["decoder"].update(
            sha256="0" * 64))), "--check"], 2, "decoder.sha256"),
        (["replay", str(_meta_edit(rec, tmp_path / "hop", hop_both)), "--check"], 2,
         "hop_samples"),
        (["replay", str(rec), "--check"], 0, ""),
    ]
    procs = [(argv, want, needle, subprocess.Popen(
        [sys.executable, "-m", "neuroloop.cli", *argv], stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True)) for argv, want, needle in cases]
    problems = []
    for argv, want, needle, p in procs:
        try:
            out, err = p.communicate(timeout=120)
        except subprocess.TimeoutExpired:
            p.kill()
            problems.append(f"{argv}: no answer within 120 s")
            continue
        lines = [ln for ln in err.splitlines() if ln.strip()]
        if p.returncode != want or "Traceback" in err:
            problems.append(f"{argv}: exit {p.returncode} (want {want}): {err[-300:]}")
        elif want == 2 and (len(lines) != 1 or needle not in lines[0]):
            problems.append(f"{argv}: stderr is not one line naming {needle!r}: {err!r}")
    assert not problems, "\n".join(problems)
