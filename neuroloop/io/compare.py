"""Compare a replay with its recording, cycle by cycle, bit-exactly.

:func:`compare_cycles` takes two arrays of cycle records (a recording's memmap and the
replay's rows) and returns a :class:`CycleDiff`: whether they are identical, the first
divergent cycle with the field, element and both values, and how many cycles differ in each
field. :class:`ReplayChecker` does the same as a :class:`~neuroloop.records.LoopListener`
while the replay runs, in constant memory, and also compares the interlock events.

Equality is exact by default: two floats are equal when their bits are equal, except that any
NaN equals any NaN (so ``-0.0 != 0.0``, and a NaN that stays a NaN is not a divergence). With
``tolerances`` (a :class:`~neuroloop.io.tolerances.Tolerances`, e.g. the built-in default or a
TOML file) each field follows its rule: exact, ignored, or within a relative and absolute
tolerance (floats only; decisions are always exact).

A recording of an older format lacks fields that later formats added (format 1 has no
``outputs``): those fields are left out of the comparison and listed in ``ignored``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..records import LoopListener
from .format import normalise_event, to_jsonable
from .reader import Recording
from .tolerances import CLOSE, FieldRule, Tolerances

__all__ = ["CycleDiff", "EventDiff", "compare_cycles", "compare_events", "ReplayChecker",
           "replay_check_report", "field_mismatch", "DEFAULT_IGNORE"]

#: Fields that measure the host's speed, not its decisions: never compared by default.
DEFAULT_IGNORE: tuple[str, ...] = ("compute_ns", "sent_ns", "e2e_ns")
#: Pseudo-field counting cycles present in one run and missing in the other.
LENGTH_FIELD = "cycle_count"
#: Fields added by a later recording format: not compared when the recording lacks them
#: (it was written before they existed), reported in ``ignored`` instead.
NEWER_FIELDS: tuple[str, ...] = ("outputs",)
_CHUNK_ROWS = 1024


@dataclass
class CycleDiff:
    """Result of comparing recorded and replayed cycle records.

    Attributes
    ----------
    identical : bool
    n_recorded, n_replayed : int
        Number of cycle rows on each side.
    first_divergent_cycle : int or None
        Row (cycle index) of the first difference; equals the shorter length when the
        common part is identical but the lengths differ.
    field : str or None
        First differing field of that row (in record order), or ``"cycle_count"``.
    index : tuple of int or None
        Element of an array field (e.g. ``(3,)`` for ``amplitude_ma[3]``).
    output_names : tuple of str
        Names of the ``outputs`` values (the recording's ``outputs.names``), so that a
        divergent output is reported by name.
    recorded_value, replayed_value : object
        The two values (Python scalars; a description for layout differences).
    count_by_field : dict of str to int
        For each differing field, the number of cycles in which it differs.
    ignored : tuple of str
        Fields left out of the comparison (those the recording's format does not store
        included).
    """

    identical: bool
    n_recorded: int
    n_replayed: int
    first_divergent_cycle: int | None = None
    field: str | None = None
    index: tuple[int, ...] | None = None
    recorded_value: Any = None
    replayed_value: Any = None
    count_by_field: dict[str, int] = dataclasses.field(default_factory=dict)
    ignored: tuple[str, ...] = DEFAULT_IGNORE
    #: a label for the report, not part of the result: left out of ``==``
    output_names: tuple[str, ...] = dataclasses.field(default=(), compare=False)
    #: which tolerances the comparison used (``"exact"``, ``"default"`` or a file): a label
    tolerances: str = dataclasses.field(default="exact", compare=False)
    #: what the replay was compared with (``"the recording"`` or a baseline): a label
    reference: str = dataclasses.field(default="the recording", compare=False)

    @property
    def field_label(self) -> str | None:
        """``field`` with the element, e.g. ``"amplitude_ma[3]"``; an output by its name,
        e.g. ``"outputs[state_margin]"``."""
        if self.field is None:
            return None
        if (self.field == "outputs" and self.index and len(self.index) == 1
                and 0 <= self.index[0] < len(self.output_names)):
            return f"outputs[{self.output_names[self.index[0]]}]"
        if self.index:
            return f"{self.field}[{', '.join(str(i) for i in self.index)}]"
        return self.field

    def format(self) -> str:
        """A readable report for CI logs (several lines)."""
        if self.identical:
            return (f"replay identical to {self.reference}: {self.n_replayed} cycles compared"
                    f" (ignored: {', '.join(self.ignored) or 'nothing'}; tolerances: "
                    f"{self.tolerances})")
        where = "recorded" if self.reference == "the recording" else "in the baseline"
        lines = [f"replay DIVERGES from {self.reference} ({self.n_recorded} cycles {where}, "
                 f"{self.n_replayed} replayed)"]
        if self.field == LENGTH_FIELD:
            lines.append(f"  first divergence: cycle {self.first_divergent_cycle}: the "
                         f"{'replay' if self.n_replayed < self.n_recorded else 'recording'} "
                         "ends here")
        else:
            lines.append(f"  first divergent cycle: {self.first_divergent_cycle}")
            lines.append(f"  field:    {self.field_label}")
            lines.append(f"  recorded: {_show(self.recorded_value)}")
            lines.append(f"  replayed: {_show(self.replayed_value)}")
        lines.append(f"  cycles differing per field (tolerances: {self.tolerances}):")
        width = max(len(k) for k in self.count_by_field)
        for name, count in self.count_by_field.items():
            lines.append(f"    {name:<{width}}  {count}")
        return "\n".join(lines)


@dataclass
class EventDiff:
    """Result of comparing recorded and replayed interlock events (see :func:`compare_events`)."""

    identical: bool
    n_recorded: int
    n_replayed: int
    first_divergent_event: int | None = None
    key: str | None = None
    recorded_value: Any = None
    replayed_value: Any = None
    recorded_event: dict[str, Any] | None = None
    replayed_event: dict[str, Any] | None = None

    def format(self) -> str:
        if self.identical:
            return f"interlock events identical: {self.n_replayed} compared"
        lines = [f"interlock events DIVERGE ({self.n_recorded} recorded, {self.n_replayed} "
                 "replayed)", f"  first divergent event: #{self.first_divergent_event}"]
        if self.key is not None:
            lines.append(f"  key:      {self.key}")
            lines.append(f"  recorded: {_show(self.recorded_value)}")
            lines.append(f"  replayed: {_show(self.replayed_value)}")
        if self.recorded_event is not None:
            lines.append(f"  recorded event: {self.recorded_event}")
        if self.replayed_event is not None:
            lines.append(f"  replayed event: {self.replayed_event}")
        return "\n".join(lines)


def _show(value: Any) -> str:
    if isinstance(value, float):
        return repr(value)
    return str(value)


def _py(value: Any) -> Any:
    """NumPy scalar -> Python scalar (floats stay floats, NaN stays NaN)."""
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    return value


def _field_desc(dtype: np.dtype) -> str:
    if dtype.subdtype is not None:
        base, shape = dtype.subdtype
        return f"{base.name}{list(shape)}"
    return dtype.name


def _mismatch(a: np.ndarray, b: np.ndarray, rule: FieldRule | None = None) -> np.ndarray:
    """Per-element inequality: bit-exact for floats except NaN == NaN, or, when ``rule`` is a
    tolerance, ``|a - b| > abs + rel * max(|a|, |b|)`` (NaN == NaN, inf == inf)."""
    if a.dtype.kind in "fc":
        if rule is not None and rule.mode == CLOSE:
            with np.errstate(invalid="ignore", over="ignore"):
                bound = rule.abs_tol + rule.rel_tol * np.maximum(np.abs(a), np.abs(b))
                ne = ~(np.abs(a - b) <= bound)  # a NaN difference is a mismatch
            ne |= ~(np.isfinite(a) & np.isfinite(b))  # an infinity is near nothing ...
            ne &= ~(a == b)  # ... but itself
        else:
            ne = (a != b) | (np.signbit(a) != np.signbit(b))
        ne &= ~(np.isnan(a) & np.isnan(b))
        return ne
    return a != b


def field_mismatch(a: np.ndarray, b: np.ndarray, name: str,
                   tolerances: Tolerances | None = None) -> np.ndarray:
    """Rows of two columns of field ``name`` that differ (under ``tolerances``, else
    bit-exactly), shape ``(n,)`` bool; an ignored field differs nowhere."""
    if tolerances is not None and name in tolerances.ignored:
        return np.zeros(a.shape[0], dtype=bool)
    ne = _mismatch(a, b, None if tolerances is None else tolerances.rule(name))
    return np.asarray(ne.any(axis=tuple(range(1, ne.ndim))) if ne.ndim > 1 else ne)


class _Accumulator:
    """Incremental comparison over consecutive chunks of rows."""

    def __init__(self, ignore: Sequence[str], output_names: Sequence[str] = (),
                 tolerances: Tolerances | None = None) -> None:
        self.ignore = tuple(ignore)
        self.output_names = tuple(output_names)
        self.tolerances = tolerances
        self.first: tuple[int, str, tuple[int, ...] | None, Any, Any] | None = None
        self.counts: dict[str, int] = {}
        self.fields: list[str] | None = None
        self.layout: dict[str, tuple[np.dtype | None, np.dtype | None]] = {}

    def _setup(self, da: np.dtype, db: np.dtype) -> None:
        names_a = list(da.names or ())
        names_b = list(db.names or ())
        # an older recording does not store the fields later formats added: not a divergence
        older = tuple(n for n in NEWER_FIELDS if n in names_b and n not in names_a
                      and n not in self.ignore)
        self.ignore += older
        ordered = names_a + [n for n in names_b if n not in names_a]
        self.fields = [n for n in ordered if n not in self.ignore]
        for name in self.fields:
            fa = da.fields[name][0] if name in names_a else None  # type: ignore[index]
            fb = db.fields[name][0] if name in names_b else None  # type: ignore[index]
            self.layout[name] = (fa, fb)

    def add(self, start: int, a: np.ndarray, b: np.ndarray) -> None:
        """Compare rows ``a[i]`` and ``b[i]`` (cycle ``start + i``), equal lengths."""
        n = a.shape[0]
        if n == 0:
            return
        if self.fields is None:
            self._setup(a.dtype, b.dtype)
        assert self.fields is not None
        first_row = None if self.first is None else self.first[0]
        best: tuple[int, str, tuple[int, ...] | None, Any, Any] | None = None
        for name in self.fields:
            fa, fb = self.layout[name]
            if fa is None or fb is None or fa.shape != fb.shape or (
                    fa.base.kind != fb.base.kind):
                self.counts[name] = self.counts.get(name, 0) + n
                if best is None or start < best[0]:
                    best = (start, name, None,
                            "absent" if fa is None else _field_desc(fa),
                            "absent" if fb is None else _field_desc(fb))
                continue
            col_a = a[name]
            col_b = b[name]
            ne = _mismatch(col_a, col_b, None if self.tolerances is None
                           else self.tolerances.rule(name))
            if ne.ndim > 1:  # (reshape(n, -1) fails on a zero-width field such as outputs[0])
                row_ne = ne.any(axis=tuple(range(1, ne.ndim)))
            else:
                row_ne = ne
            hits = int(np.count_nonzero(row_ne))
            if not hits:
                continue
            self.counts[name] = self.counts.get(name, 0) + hits
            r = int(np.argmax(row_ne))
            if best is not None and start + r >= best[0]:
                continue
            if ne.ndim > 1:
                elem = tuple(int(i) for i in np.argwhere(ne[r])[0])
                va, vb = _py(col_a[r][elem]), _py(col_b[r][elem])
            else:
                elem = None
                va, vb = _py(col_a[r]), _py(col_b[r])
            best = (start + r, name, elem, va, vb)
        if best is not None and (first_row is None or best[0] < first_row):
            self.first = best

    def result(self, n_a: int, n_b: int) -> CycleDiff:
        counts = {name: self.counts[name] for name in (self.fields or []) if name in self.counts}
        first = self.first
        if n_a != n_b:
            counts[LENGTH_FIELD] = abs(n_a - n_b)
            if first is None:
                first = (min(n_a, n_b), LENGTH_FIELD, None, n_a, n_b)
        label = "exact" if self.tolerances is None else self.tolerances.source
        if first is None:
            return CycleDiff(True, n_a, n_b, ignored=self.ignore,
                             output_names=self.output_names, tolerances=label)
        row, name, elem, va, vb = first
        return CycleDiff(False, n_a, n_b, first_divergent_cycle=row, field=name, index=elem,
                         recorded_value=va, replayed_value=vb, count_by_field=counts,
                         ignored=self.ignore, output_names=self.output_names, tolerances=label)


def _ignored(ignore: Iterable[str] | None, tolerances: Tolerances | None) -> tuple[str, ...]:
    """Fields left out: ``ignore`` when given, else the tolerances' ignored fields (else
    :data:`DEFAULT_IGNORE`)."""
    if ignore is not None:
        return tuple(ignore)
    return tolerances.ignored if tolerances is not None else DEFAULT_IGNORE


def compare_cycles(recorded: np.ndarray, replayed: np.ndarray, *,
                   ignore: Iterable[str] | None = None,
                   output_names: Sequence[str] = (),
                   tolerances: Tolerances | None = None) -> CycleDiff:
    """Compare two runs' cycle records row by row (bit-exactly unless ``tolerances``).

    Parameters
    ----------
    recorded, replayed : ndarray, shape (n,), structured (``cycle_dtype``)
        May be memmaps and of different lengths; they are compared in chunks of 1024 rows.
        Fields present on one side only, or with another shape, differ in every row, except
        a field of :data:`NEWER_FIELDS` that only the replay has (an older recording).
    ignore : iterable of str, optional
        Fields not compared (default: the tolerances' ignored fields, else the timing that
        depends on the host's speed, :data:`DEFAULT_IGNORE`).
    output_names : sequence of str
        Names of the ``outputs`` values (``Recording.output_names``), for the report.
    tolerances : Tolerances, optional
        A rule per field (:mod:`neuroloop.io.tolerances`); default: every field bit-exact.

    Returns
    -------
    CycleDiff
    """
    acc = _Accumulator(_ignored(ignore, tolerances), output_names, tolerances)
    n = min(len(recorded), len(replayed))
    for start in range(0, n, _CHUNK_ROWS):
        stop = min(n, start + _CHUNK_ROWS)
        acc.add(start, np.asarray(recorded[start:stop]), np.asarray(replayed[start:stop]))
    return acc.result(len(recorded), len(replayed))


# -- events ------------------------------------------------------------------------------------
def _is_interlock(event: dict[str, Any]) -> bool:
    return event.get("kind", "interlock" if "reason" in event else "other") == "interlock"


def _canonical(event: Any) -> dict[str, Any]:
    body = to_jsonable(event)
    return body if isinstance(body, dict) else {"value": body}


def _event_values_equal(a: Any, b: Any, rule: FieldRule | None = None) -> bool:
    """Equal JSON values of the same type (both sides are in JSON form: NaN is "nan");
    with a tolerance ``rule``, floats within it (lists element by element)."""
    if rule is not None and rule.mode == CLOSE:
        if isinstance(a, list) and isinstance(b, list):
            return len(a) == len(b) and all(_event_values_equal(x, y, rule)
                                            for x, y in zip(a, b, strict=True))
        if isinstance(a, float) and isinstance(b, float):
            return not bool(_mismatch(np.array([a]), np.array([b]), rule)[0])
    return type(a) is type(b) and bool(a == b)


def compare_events(recorded: Iterable[Any], replayed: Iterable[Any], *,
                   ignore_keys: Iterable[str] = (),
                   tolerances: Tolerances | None = None) -> EventDiff:
    """Compare the interlock events of two runs in order.

    Only interlock events are compared (``kind == "interlock"``, or a ``reason`` key):
    link errors and annotations of a live run do not happen in a replay. Events are
    normalised to their JSON form first, so recorded dicts and live
    :class:`~neuroloop.safety.events.InterlockEvent` objects compare equal. Keys are compared
    exactly; with ``tolerances``, float values within ``tolerances.event_values``.
    """
    skip = set(ignore_keys)
    rule = tolerances.event_values if tolerances is not None else None
    sentinel: dict[str, Any] = {}
    it_a: Iterator[dict[str, Any]] = (e for e in map(_canonical, recorded) if _is_interlock(e))
    it_b: Iterator[dict[str, Any]] = (e for e in map(_canonical, replayed) if _is_interlock(e))
    n_a = n_b = 0
    first: EventDiff | None = None
    while True:
        ea = next(it_a, sentinel)
        eb = next(it_b, sentinel)
        if ea is sentinel and eb is sentinel:
            break
        idx = max(n_a, n_b)
        if ea is not sentinel:
            n_a += 1
        if eb is not sentinel:
            n_b += 1
        if first is not None:
            continue
        if ea is sentinel or eb is sentinel:
            first = EventDiff(False, 0, 0, first_divergent_event=idx,
                              recorded_event=None if ea is sentinel else ea,
                              replayed_event=None if eb is sentinel else eb)
            continue
        for key in list(ea) + [k for k in eb if k not in ea]:
            if key in skip:
                continue
            va, vb = ea.get(key, "<absent>"), eb.get(key, "<absent>")
            if not _event_values_equal(va, vb, rule):
                first = EventDiff(False, 0, 0, first_divergent_event=idx, key=key,
                                  recorded_value=va, replayed_value=vb, recorded_event=ea,
                                  replayed_event=eb)
                break
    if first is None:
        return EventDiff(True, n_a, n_b)
    first.n_recorded, first.n_replayed = n_a, n_b
    return first


# -- streaming checker -------------------------------------------------------------------------
class ReplayChecker(LoopListener):
    """Compare a running replay with its recording as it goes, in constant memory.

    Attach it to the replay loop as a listener; after the run, :meth:`result` gives the
    :class:`CycleDiff` and :meth:`event_result` the :class:`EventDiff`.

    Parameters
    ----------
    recording : Recording
        The recording being replayed.
    ignore : iterable of str, optional
        Cycle fields not compared (default as in :func:`compare_cycles`).
    tolerances : Tolerances, optional
        A rule per field; default: bit-exact.
    """

    def __init__(self, recording: Recording, *, ignore: Iterable[str] | None = None,
                 tolerances: Tolerances | None = None) -> None:
        self.recording = recording
        self.tolerances = tolerances
        self._acc = _Accumulator(_ignored(ignore, tolerances), recording.output_names,
                                 tolerances)
        self._buf: np.ndarray | None = None
        self._rec_buf: np.ndarray | None = None
        self._n = 0  # replayed rows buffered
        self._done = 0  # replayed rows already compared
        self._events: list[dict[str, Any]] = []
        self._finished = False

    def on_cycle(self, record: np.ndarray) -> None:
        if self._buf is None:
            self._buf = np.zeros(_CHUNK_ROWS, dtype=record.dtype)
            self._rec_buf = np.zeros(_CHUNK_ROWS, dtype=self.recording.cycle_dtype)
        self._buf[self._n:self._n + 1] = record
        self._n += 1
        if self._n == _CHUNK_ROWS:
            self._compare_buffered()

    def on_events(self, events: list) -> None:
        # Normalised exactly as the recorder stores them (cycle in progress, last now_ns).
        cycle = self._done + self._n
        now_ns = -1
        if self._n and self._buf is not None and "now_ns" in (self._buf.dtype.names or ()):
            now_ns = int(self._buf[self._n - 1]["now_ns"])
        elif self._done and self._buf is not None and "now_ns" in (self._buf.dtype.names or ()):
            now_ns = int(self._buf[_CHUNK_ROWS - 1]["now_ns"])
        for ev in events:
            body = normalise_event(ev, cycle, now_ns)
            if _is_interlock(body):
                self._events.append(body)

    def on_stop(self, summary: dict) -> None:
        self._finish()

    def _compare_buffered(self) -> None:
        if self._n == 0 or self._buf is None or self._rec_buf is None:
            return
        got = self.recording.read_cycles(self._done, self._rec_buf[:self._n])
        if got:
            self._acc.add(self._done, self._rec_buf[:got], self._buf[:got])
        self._done += self._n
        self._n = 0

    def _finish(self) -> None:
        if not self._finished:
            self._compare_buffered()
            self._finished = True

    def result(self) -> CycleDiff:
        """The cycle comparison (call after the run)."""
        self._finish()
        return self._acc.result(self.recording.n_cycles, self._done)

    def event_result(self) -> EventDiff:
        """The interlock-event comparison (call after the run).

        Recorded events of cycles that were not replayed are left out: in a recording cut
        short by a crash, ``events.jsonl`` may run ahead of the last complete cycle.
        """
        self._finish()
        n = self._done
        recorded = (e for e in self.recording.events() if int(e.get("cycle", -1)) < n)
        return compare_events(recorded, self._events, tolerances=self.tolerances)


def replay_check_report(diff: CycleDiff, events: EventDiff | None = None) -> dict[str, Any]:
    """JSON-ready report of a replay check (``neuroloop replay --check --json``).

    Non-finite values are written as the strings ``"nan"``, ``"inf"``, ``"-inf"``, so the
    output is strict JSON.
    """
    report: dict[str, Any] = {
        "identical": bool(diff.identical and (events is None or events.identical)),
        "cycles": {
            "identical": bool(diff.identical),
            "recorded": diff.n_recorded,
            "replayed": diff.n_replayed,
            "first_divergent_cycle": diff.first_divergent_cycle,
            "field": diff.field,
            "index": list(diff.index) if diff.index else None,
            "field_label": diff.field_label,
            "recorded_value": to_jsonable(diff.recorded_value),
            "replayed_value": to_jsonable(diff.replayed_value),
            "count_by_field": dict(diff.count_by_field),
            "ignored": list(diff.ignored),
            "tolerances": diff.tolerances,
        },
    }
    if events is not None:
        report["events"] = {
            "identical": bool(events.identical),
            "recorded": events.n_recorded,
            "replayed": events.n_replayed,
            "first_divergent_event": events.first_divergent_event,
            "key": events.key,
            "recorded_value": to_jsonable(events.recorded_value),
            "replayed_value": to_jsonable(events.replayed_value),
        }
    return report
