"""Stimulation safety limits: every number of ../shared/SAFETY.md with its unit in its name.

:class:`SafetyLimits` holds the configured limits; :data:`HARD_CEILINGS` holds the built-in
bounds that no configuration may loosen. :func:`load_limits` validates a ``[safety]`` table
once, at load time, and refuses anything unsafe with a one-line
:class:`~neuroloop.errors.ConfigError` that names the key, the value and the allowed range.

Sources of the numbers (see docs/safety.md for the full table):

* Shannon k = 1.5 design value, damage at k >= 1.85 (Shannon, IEEE TBME 39(4):424, 1992).
* 30 uC/cm^2 per phase on platinum (Vercise / Medtronic DBS manuals).
* 18 uC absolute charge per phase (FDA K203547 summary).
* 12.7 mA per contact, 20 mA total (Vercise); 25.5 mA for SCS devices (SCS IFUs).
* PW 20-1000 us, f 2-1200 Hz (SCS device manuals).
* slew: "fast" is 1-10 mA/s (J Neural Eng 2022 review; RC+S aDBS, PMC8558614).
* impedance window 250-3500 ohm (RNS manual); < 50 ohm is a short (DBS literature).
"""

from __future__ import annotations

import math
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from ..errors import ConfigError

__all__ = ["SafetyLimits", "HardCeiling", "HARD_CEILINGS", "load_limits", "load_limits_file",
           "limit_names"]


@dataclass(frozen=True)
class SafetyLimits:
    """Configured stimulation limits (all hard: exceeding one is never allowed).

    Attributes
    ----------
    shannon_k : float
        Shannon constant k; charge per phase Q_c <= sqrt(10^k * A_c) uC. Must stay < 1.85.
    charge_density_max_uc_per_cm2 : float
        Charge density per phase, uC/cm^2 (platinum: 30).
    charge_per_phase_max_uc : float
        Absolute charge per phase on any contact, uC (last-resort cap).
    contact_current_max_ma : float
        |I_c| on any contact, mA.
    total_current_max_ma : float
        Summed cathodic current over all contacts, mA.
    pulse_width_min_us, pulse_width_max_us : float
        Phase width range, us.
    frequency_min_hz, frequency_max_hz : float
        Pulse rate range, Hz.
    interphase_gap_min_us, interphase_gap_max_us : float
        Interphase gap range, us.
    slew_up_ma_per_s : float
        Largest increase of |I_c| per second on any contact, mA/s.
    slew_down_ma_per_s : float
        Smallest decrease rate of the fallback ramp, mA/s. Decreases toward zero are never
        blocked: this only makes the fallback ramp reach zero at least this fast.
    stale_input_ms : float
        Input older than this (now - time the newest sample became available) is stale, ms.
    fallback_cycles : int
        N: invalid/stale/low-confidence input brings the output to the fallback (zero) within
        N cycles, and N consecutive invalid cycles enter HOLD.
    recovery_cycles : int
        M: consecutive valid cycles needed to leave HOLD.
    min_confidence : float
        Decoder confidence below this is invalid input (0..1).
    deadline_miss_limit : int
        K: consecutive missed deadlines latch FAULT.
    impedance_min_ohm, impedance_max_ohm : float
        A contact whose last measured impedance is outside this window is never driven, ohm.
    compliance_voltage_v : float
        |I_c| * Z_c must stay at or below this, V.
    dose_window_s : float
        Length of the rolling dose window, s.
    dose_budget_uc : float
        Largest cathodic charge committed within any rolling window, uC.
    contact_area_cm2 : float or None
        If set, the electrochemical area used for every contact in the Shannon and density
        limits instead of the array's geometric areas, cm^2 (> 0).
    """

    shannon_k: float = 1.5
    charge_density_max_uc_per_cm2: float = 30.0
    charge_per_phase_max_uc: float = 18.0
    contact_current_max_ma: float = 12.7
    total_current_max_ma: float = 20.0
    pulse_width_min_us: float = 20.0
    pulse_width_max_us: float = 1000.0
    frequency_min_hz: float = 2.0
    frequency_max_hz: float = 1200.0
    interphase_gap_min_us: float = 0.0
    interphase_gap_max_us: float = 500.0
    slew_up_ma_per_s: float = 10.0
    slew_down_ma_per_s: float = 20.0
    stale_input_ms: float = 50.0
    fallback_cycles: int = 3
    recovery_cycles: int = 3
    min_confidence: float = 0.1
    deadline_miss_limit: int = 3
    impedance_min_ohm: float = 250.0
    impedance_max_ohm: float = 3500.0
    compliance_voltage_v: float = 12.0
    dose_window_s: float = 60.0
    dose_budget_uc: float = 30000.0
    contact_area_cm2: float | None = None

    def __post_init__(self) -> None:
        # Constructing directly (not through load_limits) is validated the same way.
        _check(self, source="SafetyLimits")

    def shannon_q_max_uc(self, area_cm2: float) -> float:
        """Shannon charge-per-phase limit sqrt(10^k * A), uC, for one contact of ``area_cm2``."""
        return math.sqrt(10.0 ** self.shannon_k * area_cm2)

    def to_dict(self) -> dict[str, Any]:
        """Every limit by name (JSON-friendly)."""
        return {f.name: getattr(self, f.name) for f in fields(self)}


@dataclass(frozen=True)
class HardCeiling:
    """Built-in bounds of one limit: the configured value must lie in [lo, hi] (or [lo, hi)
    when ``hi_open``), and ``lo_open`` makes the lower bound exclusive."""

    lo: float
    hi: float
    lo_open: bool = False
    hi_open: bool = False

    def contains(self, value: float) -> bool:
        above = value > self.lo if self.lo_open else value >= self.lo
        below = value < self.hi if self.hi_open else value <= self.hi
        return above and below

    def text(self) -> str:
        lo = _fmt(self.lo)
        hi = _fmt(self.hi)
        return f"{'(' if self.lo_open else '['}{lo}, {hi}{')' if self.hi_open else ']'}"


def _fmt(x: float) -> str:
    if math.isinf(x):
        return "inf"
    return f"{x:g}"


_INF = math.inf

#: Built-in bounds nothing may loosen (SAFETY.md numbers; see docs/safety.md for sources).
HARD_CEILINGS: Mapping[str, HardCeiling] = {
    "shannon_k": HardCeiling(0.0, 1.85, hi_open=True),
    "charge_density_max_uc_per_cm2": HardCeiling(0.0, 30.0, lo_open=True),
    "charge_per_phase_max_uc": HardCeiling(0.0, 18.0, lo_open=True),
    "contact_current_max_ma": HardCeiling(0.0, 25.5, lo_open=True),
    "total_current_max_ma": HardCeiling(0.0, 25.5, lo_open=True),
    "pulse_width_min_us": HardCeiling(20.0, 1000.0),
    "pulse_width_max_us": HardCeiling(20.0, 1000.0),
    "frequency_min_hz": HardCeiling(2.0, 1200.0),
    "frequency_max_hz": HardCeiling(2.0, 1200.0),
    "interphase_gap_min_us": HardCeiling(0.0, 1000.0),
    "interphase_gap_max_us": HardCeiling(0.0, 1000.0),
    "slew_up_ma_per_s": HardCeiling(0.0, 10.0, lo_open=True),
    "slew_down_ma_per_s": HardCeiling(0.0, _INF, lo_open=True),
    "stale_input_ms": HardCeiling(0.0, 1000.0, lo_open=True),
    "fallback_cycles": HardCeiling(1, 20),
    "recovery_cycles": HardCeiling(1, 1000),
    "min_confidence": HardCeiling(0.0, 1.0, hi_open=True),
    "deadline_miss_limit": HardCeiling(1, 20),
    "impedance_min_ohm": HardCeiling(50.0, 3500.0),
    "impedance_max_ohm": HardCeiling(50.0, 3500.0),
    "compliance_voltage_v": HardCeiling(0.0, 20.0, lo_open=True),
    "dose_window_s": HardCeiling(0.0, 86400.0, lo_open=True),
    "dose_budget_uc": HardCeiling(0.0, _INF, lo_open=True),
    "contact_area_cm2": HardCeiling(0.0, 10.0, lo_open=True),
}

#: (min key, max key) pairs that must be ordered min <= max.
_ORDERED = (
    ("pulse_width_min_us", "pulse_width_max_us"),
    ("frequency_min_hz", "frequency_max_hz"),
    ("interphase_gap_min_us", "interphase_gap_max_us"),
    ("impedance_min_ohm", "impedance_max_ohm"),
)

_INT_KEYS = frozenset({"fallback_cycles", "recovery_cycles", "deadline_miss_limit"})
_OPTIONAL_KEYS = frozenset({"contact_area_cm2"})


def limit_names() -> tuple[str, ...]:
    """Names of every configurable limit, in declaration order."""
    return tuple(f.name for f in fields(SafetyLimits))


def _split_source(source: str) -> tuple[str, str]:
    """``"file.toml [safety]"`` -> (``"file.toml: "``, ``"safety."``)."""
    src = source.strip()
    file_part, key_prefix = src, ""
    if src.endswith("]") and "[" in src:
        i = src.rindex("[")
        key_prefix = src[i + 1:-1].strip()
        file_part = src[:i].strip()
    prefix = f"{file_part}: " if file_part else ""
    return prefix, (key_prefix + "." if key_prefix else "")


def _check_value(key: str, value: Any, source: str) -> None:
    file_prefix, key_prefix = _split_source(source)
    name = f"{file_prefix}{key_prefix}{key}"
    if value is None and key in _OPTIONAL_KEYS:
        return
    if key in _INT_KEYS:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{name} = {value!r} must be a whole number (a count of cycles); "
                              f"use an integer in {HARD_CEILINGS[key].text()}")
    elif isinstance(value, bool) or not isinstance(value, int | float):
        raise ConfigError(f"{name} = {value!r} must be a number; use a value in "
                          f"{HARD_CEILINGS[key].text()}")
    v = float(value)
    bound = HARD_CEILINGS[key]
    if not math.isfinite(v) and not (math.isinf(v) and v > 0 and math.isinf(bound.hi)):
        raise ConfigError(f"{name} = {value!r} must be finite; use a value in {bound.text()}")
    if not bound.contains(v):
        too_high = v > bound.hi or (bound.hi_open and v >= bound.hi)
        fix = "lower it" if too_high else "raise it"
        raise ConfigError(f"{name} = {value!r} is outside the allowed range {bound.text()}; "
                          f"{fix}")


def _check(limits: SafetyLimits, source: str) -> None:
    for f in fields(limits):
        _check_value(f.name, getattr(limits, f.name), source)
    file_prefix, key_prefix = _split_source(source)
    for lo_key, hi_key in _ORDERED:
        lo, hi = getattr(limits, lo_key), getattr(limits, hi_key)
        if lo > hi:
            raise ConfigError(
                f"{file_prefix}{key_prefix}{lo_key} = {lo!r} is above "
                f"{key_prefix}{hi_key} = {hi!r}; the allowed range is "
                f"{lo_key} <= {hi_key}, so lower {lo_key} or raise {hi_key}")


def load_limits(table: Mapping[str, Any] | None = None, *,
                source: str = "[safety]") -> SafetyLimits:
    """Validated :class:`SafetyLimits` from a ``[safety]`` table of overrides.

    Parameters
    ----------
    table : mapping or None
        Keys are :class:`SafetyLimits` field names; missing keys keep their defaults.
    source : str
        Where the table came from, for error messages, e.g. ``"my.toml [safety]"``.

    Raises
    ------
    ConfigError
        Unknown key, wrong type, a value outside its hard ceiling (e.g. ``shannon_k >= 1.85``,
        an area <= 0) or a min above its max. The message names key, value and allowed range.
    """
    table = {} if table is None else table
    file_prefix, key_prefix = _split_source(source)
    if not isinstance(table, Mapping):
        raise ConfigError(f"{file_prefix}{key_prefix.rstrip('.') or 'safety'} must be a table "
                          f"of limits, e.g. shannon_k = 1.5")
    known = limit_names()
    kwargs: dict[str, Any] = {}
    for key, value in table.items():
        if key not in known:
            raise ConfigError(f"{file_prefix}unknown key {key_prefix}{key}; known limits are "
                              f"{', '.join(known)}")
        _check_value(key, value, source)
        kwargs[key] = float(value) if key not in _INT_KEYS and value is not None else value
    limits = SafetyLimits.__new__(SafetyLimits)
    base = SafetyLimits()
    for f in fields(SafetyLimits):
        object.__setattr__(limits, f.name, kwargs.get(f.name, getattr(base, f.name)))
    _check(limits, source)
    return limits


def load_limits_file(path: str | Path) -> SafetyLimits:
    """Validated :class:`SafetyLimits` from a TOML file.

    The file holds either a ``[safety]`` table or the limits as top-level keys.

    Raises
    ------
    ConfigError
        The file is missing or not TOML, or any limit is invalid (see :func:`load_limits`).
    """
    p = Path(path)
    try:
        with p.open("rb") as fh:
            doc = tomllib.load(fh)
    except FileNotFoundError:
        raise ConfigError(f"{p}: limits file not found; check the path") from None
    except OSError as exc:
        raise ConfigError(f"{p}: cannot read limits file ({exc.strerror}); check the path "
                          f"and permissions") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{p}: not valid TOML ({exc}); fix the syntax") from None
    if "safety" in doc:
        extra = [k for k in doc if k != "safety"]
        table = doc["safety"]
        if not isinstance(table, Mapping):
            raise ConfigError(f"{p}: safety must be a table ([safety]) of limits")
        del extra  # other sections (a whole scenario file) are not ours to check
        return load_limits(table, source=f"{p} [safety]")
    return load_limits(doc, source=f"{p} [safety]")
