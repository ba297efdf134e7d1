"""What counts as a change when a replay is checked: a tolerance per cycle-record field.

A tolerance file (TOML) names, per field of the cycle record, one rule:

* ``"exact"`` - bit-exact (NaN equals NaN, ``-0.0`` differs from ``0.0``);
* ``"ignore"`` - not compared (timing that measures the host, not its decisions);
* ``{ rel = R, abs = A }`` - floats only: equal when ``|a - b| <= A + R * max(|a|, |b|)``
  (NaN equals NaN, an infinity equals only the same infinity).

Decisions are never tolerated: states, programs, the supervisor state, flags and the event
count accept ``"exact"`` only, and interlock events are compared key by key exactly, except
their numeric values (``requested``, ``allowed`` ...), which take ``[events] values``.

A user's file is laid over :data:`DEFAULT_TOLERANCES_TOML` (fields it does not name keep the
default rule). ``"default"`` and ``"exact"`` name the two built-in sets (``exact``: every
field bit-exact, the three host-timing fields ignored).
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .. import _checks as B
from .._files import read_text_capped
from ..errors import ConfigError
from ..records import cycle_dtype

__all__ = ["FieldRule", "Tolerances", "load_tolerances", "DEFAULT_TOLERANCES_TOML",
           "EXACT", "CLOSE", "IGNORE", "DECISION_FIELDS", "TIMING_FIELDS"]

EXACT, CLOSE, IGNORE = "exact", "close", "ignore"
#: Cycle fields that are decisions: compared exactly, always.
DECISION_FIELDS: tuple[str, ...] = ("flags", "raw_state", "state", "valid", "program_id",
                                    "supervisor_state", "n_events")
#: Cycle fields that measure the host's speed: ignored by both built-in sets.
TIMING_FIELDS: tuple[str, ...] = ("sent_ns", "compute_ns", "e2e_ns")
#: Every field of the cycle record, in record order.
KNOWN_FIELDS: tuple[str, ...] = tuple(cycle_dtype(1, 1, 1, 1).names or ())
_FLOAT_FIELDS = tuple(n for n in KNOWN_FIELDS
                      if cycle_dtype(1, 1, 1, 1).fields[n][0].base.kind == "f")  # type: ignore[index]
_REL = B.Range(0.0, 1.0)
_ABS = B.Range(0.0, 1e12)

#: The built-in tolerances (``--tolerances default``), also shipped as
#: ``examples/ci/tolerances.toml``. Relative 1e-9 is a thousand times above what a compiler,
#: BLAS or CPU change moves a float64 result (1e-12 or less) and far below any change that
#: means something; absolute terms are in each field's unit.
DEFAULT_TOLERANCES_TOML = """\
# neuroloop replay --check: what counts as a change, per cycle-record field.
# A rule is "exact", "ignore", or { rel = R, abs = A } (floats: |a-b| <= A + R*max(|a|,|b|)).
# Fields not named here are compared exactly; states, programs, supervisor state, flags and
# event counts can only be "exact".

[fields]
confidence           = { rel = 1e-9, abs = 1e-12 }
probabilities        = { rel = 1e-9, abs = 1e-12 }
outputs              = { rel = 1e-9, abs = 1e-12 }
features             = { rel = 1e-9, abs = 1e-12 }
request_amplitude_ma = { rel = 1e-9, abs = 1e-9 }   # mA
amplitude_ma         = { rel = 1e-9, abs = 1e-9 }   # mA
case_ma              = { rel = 1e-9, abs = 1e-9 }   # mA
pulse_width_us       = { rel = 1e-9, abs = 1e-6 }   # us
frequency_hz         = { rel = 1e-9, abs = 1e-9 }   # Hz
interphase_gap_us    = { rel = 1e-9, abs = 1e-6 }   # us
sent_ns              = "ignore"                     # host timing
compute_ns           = "ignore"
e2e_ns               = "ignore"

[events]
# interlock events: reason, contact, state ... exact; their numbers within this tolerance
values = { rel = 1e-9, abs = 1e-9 }
"""


@dataclass(frozen=True)
class FieldRule:
    """How one field is compared: ``mode`` is ``"exact"``, ``"ignore"`` or ``"close"`` (then
    within ``abs_tol + rel_tol * max(|a|, |b|)``, in the field's unit)."""

    mode: str = EXACT
    rel_tol: float = 0.0
    abs_tol: float = 0.0

    def text(self) -> str:
        if self.mode == CLOSE:
            return f"rel {self.rel_tol:g}, abs {self.abs_tol:g}"
        return self.mode


@dataclass(frozen=True)
class Tolerances:
    """A complete set of rules (plain data: picklable, so it travels to worker processes).

    Attributes
    ----------
    source : str
        ``"default"``, ``"exact"`` or the file it was read from (for reports).
    rules : tuple of (str, FieldRule)
        The rule of every field that is not compared exactly.
    event_values : FieldRule
        Rule for the numeric values of interlock events.
    """

    source: str = "exact"
    rules: tuple[tuple[str, FieldRule], ...] = ()
    event_values: FieldRule = field(default_factory=FieldRule)

    def rule(self, name: str) -> FieldRule:
        """The rule of field ``name`` (exact when not listed)."""
        for key, rule in self.rules:
            if key == name:
                return rule
        return FieldRule()

    @property
    def ignored(self) -> tuple[str, ...]:
        """Fields not compared."""
        return tuple(k for k, r in self.rules if r.mode == IGNORE)

    def to_dict(self) -> dict[str, Any]:
        return {"source": self.source,
                "fields": {k: r.text() for k, r in self.rules},
                "event_values": self.event_values.text()}

    @classmethod
    def exact(cls) -> Tolerances:
        """Every field bit-exact, host timing ignored (``--tolerances exact``)."""
        return cls("exact", tuple((n, FieldRule(IGNORE)) for n in TIMING_FIELDS))

    @classmethod
    def default(cls) -> Tolerances:
        """The built-in tolerances (:data:`DEFAULT_TOLERANCES_TOML`)."""
        return _parse(tomllib.loads(DEFAULT_TOLERANCES_TOML), "default", base=None)


def load_tolerances(spec: str | Path | Tolerances | None) -> Tolerances:
    """Tolerances from ``spec``: None or ``"default"``, ``"exact"``, a TOML file path, or a
    :class:`Tolerances` (returned as is).

    Raises
    ------
    ConfigError
        The file is missing, not TOML, names an unknown field or key, gives a tolerance to a
        decision field, or a tolerance that is negative, not finite or not a number.
    """
    if isinstance(spec, Tolerances):
        return spec
    if spec is None or spec == "default":
        return Tolerances.default()
    if spec == "exact":
        return Tolerances.exact()
    label = f"tolerance file {spec}"
    text = read_text_capped(spec, label)
    try:
        table = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{label} is not valid TOML ({exc}); fix the syntax") from None
    except RecursionError:
        raise ConfigError(f"{label} nests tables too deeply; see examples/ci/tolerances.toml"
                          ) from None
    return _parse(table, str(spec), base=Tolerances.default())


def _rule(label: str, value: Any, *, kind: str) -> FieldRule:
    """One rule; ``kind`` is ``"decision"`` (exact only), ``"int"`` (exact or ignore) or
    ``"float"`` (exact, ignore or a tolerance)."""
    fix = {"decision": 'a decision is compared exactly: use "exact"',
           "int": 'an integer field is "exact" or "ignore"',
           "float": 'use "exact", "ignore" or { rel = R, abs = A }'}[kind]
    if isinstance(value, str):
        if value == EXACT or (value == IGNORE and kind != "decision"):
            return FieldRule(value)
        raise ConfigError(f"{label} = {B.show_value(value)} is not allowed; {fix}")
    if not isinstance(value, Mapping) or kind != "float":
        raise ConfigError(f"{label} = {B.show_value(value)} is not allowed; {fix}")
    unknown = [k for k in value if k not in ("rel", "abs")]
    if unknown or not value:
        raise ConfigError(f"{label} has unknown key {unknown[0] if unknown else '(none)'!r}; "
                          "a tolerance is { rel = R, abs = A } (either may be left out: 0)")
    rel = B.check_number(f"{label}.rel", value.get("rel", 0.0), _REL,
                         hint="a relative tolerance, e.g. 1e-9")
    abs_ = B.check_number(f"{label}.abs", value.get("abs", 0.0), _ABS,
                          hint="an absolute tolerance in the field's unit, e.g. 1e-12")
    return FieldRule(CLOSE, float(rel), float(abs_))


def _parse(table: Mapping[str, Any], source: str, *, base: Tolerances | None) -> Tolerances:
    label = "default tolerances" if base is None else f"tolerance file {source}"
    for key in table:
        if key not in ("fields", "events"):
            raise ConfigError(f"{label}: unknown key {key!r}; a tolerance file has only "
                              "[fields] and [events] (see examples/ci/tolerances.toml)")
    rules: dict[str, FieldRule] = dict(base.rules) if base is not None else {}
    fields = table.get("fields", {})
    if not isinstance(fields, Mapping):
        raise ConfigError(f"{label}: fields must be a table ([fields]); see "
                          "examples/ci/tolerances.toml")
    for name, value in fields.items():
        if name not in KNOWN_FIELDS:
            raise ConfigError(f"{label}: unknown field {name!r} in [fields]; use fields of the "
                              f"cycle record: {', '.join(KNOWN_FIELDS)}")
        kind = ("decision" if name in DECISION_FIELDS
                else "float" if name in _FLOAT_FIELDS else "int")
        rules[name] = _rule(f"{label}: fields.{name}", value, kind=kind)
    event_values = base.event_values if base is not None else FieldRule()
    events = table.get("events", {})
    if not isinstance(events, Mapping):
        raise ConfigError(f"{label}: events must be a table ([events]); see "
                          "examples/ci/tolerances.toml")
    for key, value in events.items():
        if key != "values":
            raise ConfigError(f"{label}: unknown key {key!r} in [events]; only values = "
                              "{ rel = R, abs = A } (event reasons, contacts and states are "
                              "always exact)")
        event_values = _rule(f"{label}: events.values", value, kind="float")
        if event_values.mode == IGNORE:
            raise ConfigError(f"{label}: events.values = \"ignore\" would hide interlock "
                              "events; use \"exact\" or { rel = R, abs = A }")
    ordered = tuple((n, rules[n]) for n in KNOWN_FIELDS
                    if n in rules and rules[n].mode != EXACT)
    return Tolerances(source, ordered, event_values)

