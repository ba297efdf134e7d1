"""Reviewed baselines: the decisions of an accepted code version, stored beside a recording.

``neuroloop replay DIR --accept`` replays ``DIR`` through the current code and writes
``DIR/baseline.npz``: every cycle's decisions (states, probabilities, outputs, requested and
safe amplitudes, pulse parameters, program, supervisor state, flags, event count and the
replayed clock; not the features and not the host timing) and the interlock events, as a
compressed NumPy archive with the code version, the package versions and the decoder hash that
produced them. From then on ``--check`` compares a replay with the baseline instead of the
decisions recorded live, so an intended change (a better decoder) is accepted once, knowingly,
and every later change still fails.

:func:`diff_baselines` summarises what changed between two baselines (states, programs,
amplitudes, supervisor states, interlock events: counts and first cycles), for
``neuroloop diff-baseline A B`` and ``neuroloop replay --check --explain``.

Archive members (all plain arrays, read with ``allow_pickle=False``): ``meta`` (UTF-8 JSON as
uint8), ``events`` (UTF-8 JSON lines as uint8), and one ``c.<field>`` array per stored field.
"""

from __future__ import annotations

import collections
import datetime as _dt
import functools
import hashlib
import json
import os
import subprocess
import zipfile
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import RecordingError
from ..records import LoopListener
from .compare import compare_cycles, compare_events, field_mismatch
from .format import dtype_from_json, dtype_to_json, normalise_event, package_versions, to_jsonable
from .tolerances import Tolerances

__all__ = ["BASELINE_FILE", "BASELINE_FORMAT", "BASELINE_VERSION", "Baseline",
           "BaselineCollector", "BaselineDiff", "diff_baselines", "recording_fingerprint",
           "code_version", "load_baseline"]

#: File name of a recording's baseline, inside the recording directory.
BASELINE_FILE = "baseline.npz"
#: ``meta["format"]`` of a baseline archive.
BASELINE_FORMAT = "neuroloop-baseline"
#: Layout version; a reader refuses a newer one (upgrade neuroloop) and reads every older one.
BASELINE_VERSION = 1
#: Cycle fields a baseline does not keep: the features (most of a record's bytes; their effect
#: is in the probabilities and outputs, which are kept) and the host's timing.
NOT_STORED: tuple[str, ...] = ("features", "sent_ns", "compute_ns", "e2e_ns")
#: Largest baseline read, bytes, compressed and unpacked (a one-hour bsi baseline is ~5 MB).
_MAX_BYTES = 1 << 30
_CHUNK_ROWS = 1024


def _is_interlock(event: Mapping[str, Any]) -> bool:
    return event.get("kind", "interlock" if "reason" in event else "other") == "interlock"


def stored_dtype(cycle_dtype: np.dtype) -> np.dtype:
    """The packed layout of a baseline's cycles: ``cycle_dtype`` without :data:`NOT_STORED`."""
    fields: Mapping[str, tuple[Any, ...]] = cycle_dtype.fields or {}
    return np.dtype([(n, fields[n][0]) for n in cycle_dtype.names or () if n not in NOT_STORED],
                    align=False)


@functools.lru_cache(maxsize=1)
def code_version() -> str:
    """``neuroloop`` version, with the git commit of its source tree when it has one
    (``0.1.0+g1a2b3c4d5e6f``, ``+dirty`` when files differ from it)."""
    from .. import __version__

    here = Path(__file__).resolve().parent
    try:
        commit = subprocess.run(["git", "-C", str(here), "rev-parse", "--short=12", "HEAD"],
                                capture_output=True, text=True, timeout=5, check=True
                                ).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(here), "status", "--porcelain",
                                "--untracked-files=no", "--", str(here.parent)],
                               capture_output=True, text=True, timeout=5, check=True
                               ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return __version__
    if not commit:
        return __version__
    return f"{__version__}+g{commit}" + (".dirty" if dirty else "")


def recording_fingerprint(recording: Any) -> str:
    """Hex SHA-256 that tells one recording from another, cheaply (whatever its length):
    creation time, scenario, configuration, sizes, the whole block index and the first and
    last MiB of samples. A copy of a recording has the same fingerprint."""
    meta = recording.meta
    h = hashlib.sha256()
    head = {"created_utc": meta.get("created_utc"), "scenario": meta.get("scenario"),
            "config": meta.get("config"), "n_channels": recording.n_channels,
            "rate": recording.sampling_rate_hz, "n_samples": recording.n_samples,
            "n_blocks": recording.n_blocks, "n_cycles": recording.n_cycles}
    h.update(json.dumps(to_jsonable(head), sort_keys=True).encode("utf-8"))
    blocks = np.zeros((min(recording.n_blocks, 65536), 3), dtype="<i8")
    for start in range(0, recording.n_blocks, blocks.shape[0]):
        got = recording.read_blocks(start, blocks)
        h.update(blocks[:got].tobytes())
    rows = max(1, (1 << 20) // (8 * recording.n_channels))
    buf = np.zeros((min(rows, recording.n_samples), recording.n_channels), dtype="<f8")
    for row in sorted({0, max(0, recording.n_samples - buf.shape[0])}):
        got = recording.read_samples(row, buf)
        h.update(buf[:got].tobytes())
    return h.hexdigest()


@dataclass
class Baseline:
    """The decisions of one replay (or of the recording itself), and where they came from.

    Attributes
    ----------
    cycles : ndarray, shape (n_cycles,), structured (:func:`stored_dtype`)
    events : list of dict
        Interlock events in their ``events.jsonl`` JSON form, in order.
    meta : dict
        ``format``, ``format_version``, ``created_utc``, ``code_version``, ``versions``,
        ``decoder`` (``path``, ``sha256``), ``recording`` (``path``, ``fingerprint``,
        ``created_utc``, ``scenario``, ``n_cycles``), ``intention_names``, ``output_names``,
        ``n_cycles``, ``n_events``, ``fields``.
    path : Path or None
        The file it was read from or written to.
    """

    cycles: np.ndarray
    events: list[dict[str, Any]]
    meta: dict[str, Any]
    path: Path | None = None

    @property
    def n_cycles(self) -> int:
        return int(self.cycles.shape[0])

    @property
    def intention_names(self) -> tuple[str, ...]:
        return tuple(self.meta.get("intention_names") or ())

    @property
    def output_names(self) -> tuple[str, ...]:
        return tuple(self.meta.get("output_names") or ())

    @property
    def fingerprint(self) -> str:
        return str((self.meta.get("recording") or {}).get("fingerprint", ""))

    def describe(self) -> str:
        """One line: which file, code version, decoder hash and date (for ``--check``)."""
        where = str(self.path) if self.path is not None else "recording"
        decoder = ((self.meta.get("decoder") or {}).get("sha256") or "?")[:12]
        return (f"baseline {where} (neuroloop {self.meta.get('code_version', '?')}, decoder "
                f"{decoder}, accepted {self.meta.get('created_utc', '?')})")

    def save(self, path: str | os.PathLike[str]) -> int:
        """Write the compressed archive atomically (temporary file + ``os.replace``); returns
        its size in bytes."""
        target = Path(path)
        meta = dict(self.meta, n_cycles=self.n_cycles, n_events=len(self.events),
                    fields=dtype_to_json(self.cycles.dtype))
        members: dict[str, np.ndarray] = {
            "meta": np.frombuffer(json.dumps(to_jsonable(meta), allow_nan=False,
                                             sort_keys=True).encode("utf-8"), dtype=np.uint8),
            "events": np.frombuffer("".join(
                json.dumps(to_jsonable(e), allow_nan=False) + "\n" for e in self.events
            ).encode("utf-8"), dtype=np.uint8),
        }
        for name in self.cycles.dtype.names or ():
            members[f"c.{name}"] = np.ascontiguousarray(self.cycles[name])
        tmp = target.with_name(target.name + ".tmp")
        try:
            with open(tmp, "wb") as fh:
                np.savez_compressed(fh, **members)  # type: ignore[arg-type]
            os.replace(tmp, target)
        except OSError as exc:
            tmp.unlink(missing_ok=True)
            raise RecordingError(f"cannot write baseline {target}: {exc.strerror or exc}; check "
                                 "that the recording directory is writable") from None
        self.meta, self.path = meta, target
        return target.stat().st_size

    @classmethod
    def from_recording(cls, recording: Any) -> Baseline:
        """The decisions recorded live, in baseline form (what ``--check`` compares with when
        a recording has no baseline)."""
        dtype = stored_dtype(recording.cycle_dtype)
        out = np.zeros(recording.n_cycles, dtype=dtype)
        buf = np.zeros(min(_CHUNK_ROWS, max(1, recording.n_cycles)), dtype=recording.cycle_dtype)
        for start in range(0, recording.n_cycles, buf.shape[0]):
            got = recording.read_cycles(start, buf)
            for name in dtype.names or ():
                out[name][start:start + got] = buf[name][:got]
        n = recording.n_cycles
        events = [e for e in recording.events() if _is_interlock(e) and int(e.get("cycle", -1)) < n]
        meta = {"format": "neuroloop-session (recorded live)",
                "code_version": (recording.meta.get("versions") or {}).get("neuroloop", "?"),
                "decoder": recording.meta.get("decoder") or {},
                "created_utc": recording.meta.get("created_utc"),
                "intention_names": list(recording.intention_names),
                "output_names": list(recording.output_names)}
        return cls(out, events, meta, None)


def load_baseline(path: str | os.PathLike[str], *, recording: Any = None,
                  fingerprint: str | None = None) -> Baseline:
    """Read and check a baseline archive.

    Parameters
    ----------
    path : path-like
    recording : Recording, optional
        The recording the baseline must belong to (its fingerprint is compared).
    fingerprint : str, optional
        The recording's fingerprint when already computed.

    Raises
    ------
    RecordingError
        Missing, not a baseline, corrupt, of a newer format version, or of another recording
        (one line naming the file and the fix).
    """
    p = Path(path)
    redo = ("re-create it with `neuroloop replay DIR --accept`" if recording is None else
            f"re-create it with `neuroloop replay {recording.path} --accept`")
    if not p.is_file():
        raise RecordingError(f"baseline {p} does not exist or is not a file; create it with "
                             "`neuroloop replay DIR --accept`")
    try:
        size = p.stat().st_size
        if size > _MAX_BYTES:
            raise RecordingError(f"baseline {p} is {size} bytes, more than a baseline may have "
                                 f"({_MAX_BYTES >> 20} MiB); it is not a neuroloop baseline")
        with zipfile.ZipFile(p) as zf:
            unpacked = sum(i.file_size for i in zf.infolist())
            if unpacked > _MAX_BYTES:
                raise RecordingError(f"baseline {p} unpacks to {unpacked} bytes, more than a "
                                     "baseline may hold; it is corrupt or foreign")
        with np.load(p, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
    except RecordingError:
        raise
    except (OSError, ValueError, zipfile.BadZipFile, EOFError, KeyError) as exc:
        raise RecordingError(f"baseline {p} is not a readable neuroloop baseline "
                             f"({type(exc).__name__}); {redo}") from None
    try:
        meta = json.loads(bytes(arrays["meta"].astype(np.uint8)).decode("utf-8"))
    except (KeyError, ValueError, UnicodeDecodeError, RecursionError):
        raise RecordingError(f"baseline {p} has no readable meta; it is not a neuroloop "
                             f"baseline: {redo}") from None
    if not isinstance(meta, dict) or meta.get("format") != BASELINE_FORMAT:
        raise RecordingError(f"baseline {p} is not a neuroloop baseline (format="
                             f"{meta.get('format') if isinstance(meta, dict) else None!r}); "
                             f"{redo}")
    version = meta.get("format_version")
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise RecordingError(f"baseline {p}: format_version {version!r} is invalid; {redo}")
    if version > BASELINE_VERSION:
        from .. import __version__

        raise RecordingError(f"baseline {p} was written in baseline format version {version}, "
                             f"newer than this neuroloop {__version__} reads (up to "
                             f"{BASELINE_VERSION}); upgrade neuroloop, or {redo}")
    try:
        dtype = dtype_from_json(meta.get("fields"))
        n = meta["n_cycles"]
        if not isinstance(n, int) or n < 0:
            raise ValueError("n_cycles")
        cycles = np.zeros(n, dtype=dtype)
        for name in dtype.names or ():
            col = arrays[f"c.{name}"]
            if col.shape != cycles[name].shape or col.dtype != cycles[name].dtype:
                raise ValueError(f"c.{name}")
            cycles[name] = col
        text = bytes(arrays.get("events", np.zeros(0, np.uint8)).astype(np.uint8)).decode("utf-8")
        events = [json.loads(line) for line in text.splitlines() if line.strip()]
        if not all(isinstance(e, dict) for e in events):
            raise ValueError("events")
    except (KeyError, ValueError, TypeError, UnicodeDecodeError, RecursionError) as exc:
        raise RecordingError(f"baseline {p} is corrupt ({_short(exc)}); {redo}") from None
    baseline = Baseline(cycles, events, meta, p)
    if recording is not None:
        mine = fingerprint or recording_fingerprint(recording)
        if baseline.fingerprint != mine:
            raise RecordingError(
                f"baseline {p} belongs to another recording (fingerprint "
                f"{baseline.fingerprint[:12] or '?'}, {recording.path} has {mine[:12]}); {redo}")
    return baseline


def _short(exc: BaseException) -> str:
    """A short, one-line description of a parse error."""
    text = " ".join(str(exc).splitlines())[:80]
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


class BaselineCollector(LoopListener):
    """Keeps the decisions of every replayed cycle (baseline fields only) and the interlock
    events, normalised exactly as the recorder stores them. Memory: about 0.5 kB per cycle
    for bsi (features are not kept)."""

    def __init__(self) -> None:
        self._chunks: list[np.ndarray] = []
        self._buf: np.ndarray | None = None
        self._n = 0
        self._count = 0
        self._last_now_ns = -1
        self.events: list[dict[str, Any]] = []

    def on_cycle(self, record: np.ndarray) -> None:
        if self._buf is None:
            self._buf = np.zeros(_CHUNK_ROWS, dtype=record.dtype)
        self._buf[self._n:self._n + 1] = record
        self._n += 1
        self._count += 1
        if "now_ns" in (record.dtype.names or ()):
            self._last_now_ns = int(record[0]["now_ns"])
        if self._n == _CHUNK_ROWS:
            self._flush()

    def on_events(self, events: list) -> None:
        for ev in events:
            body = normalise_event(ev, self._count, self._last_now_ns)
            if _is_interlock(body):
                self.events.append(body)

    def _flush(self) -> None:
        if self._buf is None or self._n == 0:
            return
        dtype = stored_dtype(self._buf.dtype)
        chunk = np.zeros(self._n, dtype=dtype)
        for name in dtype.names or ():
            chunk[name] = self._buf[name][:self._n]
        self._chunks.append(chunk)
        self._n = 0

    def baseline(self, meta: dict[str, Any]) -> Baseline:
        """The collected decisions as a :class:`Baseline` with ``meta`` (call after the run)."""
        self._flush()
        if self._chunks:
            cycles = np.concatenate(self._chunks)
        else:
            from ..records import cycle_dtype

            cycles = np.zeros(0, dtype=stored_dtype(cycle_dtype(1, 1, 1)))
        return Baseline(cycles, list(self.events), meta, None)


def baseline_meta(recording: Any, fingerprint: str, decoder_path: str | None) -> dict[str, Any]:
    """``meta`` of a baseline accepted now from a replay of ``recording``."""
    from .format import sha256_file

    decoder = str(decoder_path) if decoder_path else str(Path(recording.path) / "decoder.npz")
    try:
        decoder_sha = sha256_file(decoder)
    except OSError:
        decoder_sha = None
    return {"format": BASELINE_FORMAT, "format_version": BASELINE_VERSION,
            "created_utc": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
            "code_version": code_version(), "versions": package_versions(),
            "decoder": {"path": decoder, "sha256": decoder_sha},
            "recording": {"path": str(recording.path), "fingerprint": fingerprint,
                          "created_utc": recording.meta.get("created_utc"),
                          "scenario": recording.meta.get("scenario"),
                          "n_cycles": recording.n_cycles},
            "intention_names": list(recording.intention_names),
            "output_names": list(recording.output_names)}


# -- what changed between two baselines ------------------------------------------------------
@dataclass
class BaselineDiff:
    """Summary of the changes from baseline ``a`` (before) to ``b`` (after).

    ``sections`` maps a topic (``states``, ``programs``, ``supervisor``, ``amplitudes``,
    ``interlock_events``, ``other``) to a JSON-ready dict with counts and first cycles.
    """

    identical: bool
    a: str
    b: str
    n_cycles: tuple[int, int]
    sections: dict[str, dict[str, Any]] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return to_jsonable({"identical": self.identical, "a": self.a, "b": self.b,
                            "n_cycles": list(self.n_cycles), **self.sections})

    def format(self) -> str:
        """Several lines for a reviewer."""
        lines = [f"{'no change' if self.identical else 'changes'} from {self.a}", f"  to {self.b}"]
        if self.n_cycles[0] != self.n_cycles[1]:
            lines.append(f"  cycles: {self.n_cycles[0]} -> {self.n_cycles[1]}")
        for topic in ("states", "programs", "supervisor", "amplitudes"):
            sec = self.sections.get(topic)
            if not sec or not sec.get("cycles_changed"):
                continue
            text = (f"  {topic + ':':<17} {sec['cycles_changed']} cycles changed, first at cycle "
                    f"{sec['first_cycle']}")
            if sec.get("changes"):
                text += "; " + ", ".join(f"{c['from']} -> {c['to']} x{c['cycles']}"
                                         for c in sec["changes"])
            if sec.get("max_abs_change_ma") is not None:
                text += f"; largest change {sec['max_abs_change_ma']:.6g} mA"
            lines.append(text)
        ev = self.sections.get("interlock_events") or {}
        if ev and not ev.get("identical", True):
            counts = ", ".join(f"{r} {n_a} -> {n_b}" for r, (n_a, n_b) in
                               ev.get("by_reason", {}).items() if n_a != n_b)
            lines.append(f"  {'interlock events:':<17} {ev['count'][0]} -> {ev['count'][1]}"
                         + (f" ({counts})" if counts else " (same reasons, other details)")
                         + f"; first difference at event #{ev['first_event']}"
                         + (f", cycle {ev['first_cycle']}" if ev.get("first_cycle") is not None
                            else ""))
        other = self.sections.get("other") or {}
        if other:
            lines.append("  " + f"{'other fields:':<17} " + ", ".join(
                f"{k} {v['cycles_changed']} (first {v['first_cycle']})" for k, v in other.items()))
        if self.identical:
            lines.append("  decisions, amplitudes and interlock events are the same")
        return "\n".join(lines)


def _name(names: Sequence[str], i: int, off: str = "off") -> str:
    if i < 0:
        return off
    return names[i] if i < len(names) else str(i)


def _pairs(a: np.ndarray, b: np.ndarray, rows: np.ndarray, label: Any,
           top: int = 5) -> list[dict[str, Any]]:
    counts = collections.Counter(zip(a[rows].tolist(), b[rows].tolist(), strict=True))
    return [{"from": label(x), "to": label(y), "cycles": c} for (x, y), c in counts.most_common(top)]


def diff_baselines(a: Baseline, b: Baseline, tolerances: Tolerances | None = None,
                   *, labels: tuple[str, str] | None = None) -> BaselineDiff:
    """What changed from ``a`` to ``b``: per topic the cycles that changed, the first one and
    the most frequent changes; interlock events counted per reason.

    Floats are compared with ``tolerances`` (default: the built-in tolerances), decisions
    exactly. Cycles beyond the shorter baseline count as changed.
    """
    from ..safety.events import SupervisorState

    tol = tolerances if tolerances is not None else Tolerances.default()
    n = min(a.n_cycles, b.n_cycles)
    ca, cb = a.cycles[:n], b.cycles[:n]
    extra = abs(a.n_cycles - b.n_cycles)
    names = b.intention_names or a.intention_names
    sections: dict[str, dict[str, Any]] = {}
    common = [f for f in (ca.dtype.names or ()) if f in (cb.dtype.names or ())]

    def rows_of(field_name: str) -> np.ndarray:
        if field_name not in common:
            return np.ones(n, dtype=bool)
        return field_mismatch(ca[field_name], cb[field_name], field_name, tol)

    def section(field_name: str, label: Any) -> dict[str, Any]:
        rows = rows_of(field_name)
        changed = int(rows.sum())
        first = int(np.argmax(rows)) if changed else (n if extra else None)
        sec: dict[str, Any] = {"cycles_changed": changed + extra, "first_cycle": first}
        if changed and field_name in common and label is not None:
            sec["changes"] = _pairs(ca[field_name], cb[field_name], rows, label)
        return sec

    sections["states"] = section("state", lambda i: _name(names, int(i), "none"))
    sections["programs"] = section("program_id", lambda i: "off" if i < 0 else f"program {i}")

    def sup(i: int) -> str:
        try:
            return SupervisorState(int(i)).name
        except ValueError:
            return str(i)

    sections["supervisor"] = section("supervisor_state", sup)
    amp = section("amplitude_ma", None)
    if amp["cycles_changed"] and "amplitude_ma" in common and ca["amplitude_ma"].shape == \
            cb["amplitude_ma"].shape:
        with np.errstate(invalid="ignore"):
            delta = np.abs(ca["amplitude_ma"] - cb["amplitude_ma"])
        amp["max_abs_change_ma"] = float(np.nanmax(delta)) if delta.size else 0.0
    sections["amplitudes"] = amp
    ev = compare_events(a.events, b.events, tolerances=tol)
    by_reason: dict[str, list[int]] = {}
    for side, events in ((0, a.events), (1, b.events)):
        for e in events:
            by_reason.setdefault(str(e.get("reason", e.get("kind"))), [0, 0])[side] += 1
    first_cycle = None
    if not ev.identical:
        for side_event in (ev.recorded_event, ev.replayed_event):
            if isinstance(side_event, dict) and isinstance(side_event.get("cycle"), int):
                c = int(side_event["cycle"])
                first_cycle = c if first_cycle is None else min(first_cycle, c)
    sections["interlock_events"] = {
        "identical": ev.identical, "count": [len(a.events), len(b.events)],
        "by_reason": {k: v for k, v in sorted(by_reason.items())},
        "first_event": ev.first_divergent_event, "first_cycle": first_cycle}
    diff = compare_cycles(a.cycles, b.cycles, tolerances=tol, output_names=b.output_names)
    topics = {"state", "program_id", "supervisor_state", "amplitude_ma", "cycle_count"}
    other: dict[str, dict[str, Any]] = {}
    for name, count in diff.count_by_field.items():
        if name not in topics:
            rows = rows_of(name)
            other[name] = {"cycles_changed": int(count),
                           "first_cycle": int(np.argmax(rows)) if rows.any() else n}
    sections["other"] = other
    identical = diff.identical and ev.identical
    la, lb = labels or (str(a.path or "recording"), str(b.path or "this replay"))
    return BaselineDiff(identical, la, lb, (a.n_cycles, b.n_cycles), sections)


def read_baselines(paths: Iterable[str | os.PathLike[str]]) -> list[Baseline]:
    """:func:`load_baseline` of each path; a recording directory stands for its
    ``baseline.npz``."""
    out = []
    for p in paths:
        q = Path(p)
        out.append(load_baseline(q / BASELINE_FILE if q.is_dir() else q))
    return out

