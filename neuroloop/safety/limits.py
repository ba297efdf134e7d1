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
from typing import Any, Literal

import numpy as np

from ..errors import ConfigError

__all__ = ["SafetyLimits", "HardCeiling", "LimitSpec", "LIMIT_SPECS", "HARD_CEILINGS",
           "DOSE_RATE_MAX_UC_PER_S", "load_limits", "load_limits_file", "limit_names",
           "check_limit_value", "tighten", "read_limits_table"]


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
    ramp_up_max_ma_per_s : float
        Largest rise of the summed cathodic current (a program's amplitude) per second,
        mA/s: the ceiling of a threshold policy's up-ramp (adaptive DBS ramps at 0.03 mA/s,
        RC+S, PMC8558614). The built-in 255 mA/s never binds before the per-contact slew.
    increase_blanking_s : float
        After the summed cathodic current falls, it may not rise again for this long, s
        (blanking after a change, PMC8558614). 0 switches the rule off.
    burst_max_s : float
        Longest uninterrupted stimulation (a burst), s: the output is cut when one more cycle
        would pass it, and stays off until the request turns off (responsive stimulation;
        the built-in ceiling, 7 days, never limits a run).
    daily_on_max_s : float
        Largest stimulation on-time in any rolling 24 h, s (the built-in 86400 s never
        limits).
    contact_area_cm2 : float or None
        If set, an effective electrochemical area, cm^2 (> 0), that may only make the charge
        limits stricter: each contact's limits use min(catalogue area, this). Geometry itself
        comes from the electrode catalogue, never from a setting.
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
    ramp_up_max_ma_per_s: float = 255.0
    increase_blanking_s: float = 0.0
    burst_max_s: float = 604800.0
    daily_on_max_s: float = 86400.0

    def __post_init__(self) -> None:
        # Constructing directly (not through load_limits) is validated the same way.
        _check(self, source="SafetyLimits")

    def contact_areas_cm2(self, catalogue_area_cm2: np.ndarray) -> np.ndarray:
        """Per-contact area the charge limits use: min(catalogue, stated), cm^2, (n_contacts,)."""
        areas = np.asarray(catalogue_area_cm2, dtype=np.float64)
        if self.contact_area_cm2 is None:
            return areas.copy()
        return np.minimum(areas, float(self.contact_area_cm2))

    def shannon_q_max_uc(self, area_cm2: float) -> float:
        """Shannon charge-per-phase limit sqrt(10^k * A), uC, for one contact of ``area_cm2``."""
        return math.sqrt(10.0 ** self.shannon_k * area_cm2)

    def to_dict(self) -> dict[str, Any]:
        """Every limit by name (JSON-friendly)."""
        return {f.name: getattr(self, f.name) for f in fields(self)}


@dataclass(frozen=True)
class HardCeiling:
    """Built-in bounds of one limit: the configured value must lie in [lo, hi] (or [lo, hi)
    when ``hi_open``), and ``lo_open`` makes the lower bound exclusive. Both bounds are
    finite: no limit accepts an infinite value."""

    lo: float
    hi: float
    lo_open: bool = False
    hi_open: bool = False

    def contains(self, value: float) -> bool:
        if not math.isfinite(value):
            return False
        above = value > self.lo if self.lo_open else value >= self.lo
        below = value < self.hi if self.hi_open else value <= self.hi
        return above and below

    def text(self) -> str:
        return (f"{'(' if self.lo_open else '['}{self.lo:g}, {self.hi:g}"
                f"{')' if self.hi_open else ']'}")


#: Which way a limit gets stricter: a smaller value (``"lower"``, e.g. a current ceiling) or a
#: larger one (``"higher"``, e.g. a minimum pulse width or a dose window).
Stricter = Literal["lower", "higher"]


@dataclass(frozen=True)
class LimitSpec:
    """One configurable limit: its unit, hard range, which way is stricter, and its source.

    The hard range's loose end is the built-in ceiling: no setting may pass it. Inside the
    range a ``[safety]`` table may choose any value; a ``--limits`` file may only move a
    scenario's value the strict way (:func:`tighten`).
    """

    name: str
    unit: str
    ceiling: HardCeiling
    stricter: Stricter
    source: str
    integer: bool = False


def _spec(name: str, unit: str, lo: float, hi: float, stricter: Stricter, source: str, *,
          lo_open: bool = False, hi_open: bool = False, integer: bool = False) -> LimitSpec:
    return LimitSpec(name, unit, HardCeiling(lo, hi, lo_open, hi_open), stricter, source,
                     integer)


_SCS = "SCS device manuals (PW 20-1000 us, 2-1200 Hz, 0-25.5 mA)"

#: Every configurable limit (SAFETY.md numbers; docs/safety.md has the full table).
LIMIT_SPECS: Mapping[str, LimitSpec] = {s.name: s for s in (
    _spec("shannon_k", "", 0.0, 1.5, "lower",
          "Shannon, IEEE TBME 39(4):424, 1992: design value 1.5, damage at k >= 1.85",
          lo_open=True),
    _spec("charge_density_max_uc_per_cm2", "uC/cm^2", 0.0, 30.0, "lower",
          "platinum, Vercise / Medtronic DBS manuals", lo_open=True),
    _spec("charge_per_phase_max_uc", "uC", 0.0, 18.0, "lower", "FDA K203547 summary",
          lo_open=True),
    _spec("contact_current_max_ma", "mA", 0.0, 25.5, "lower", _SCS, lo_open=True),
    _spec("total_current_max_ma", "mA", 0.0, 25.5, "lower", _SCS, lo_open=True),
    _spec("pulse_width_min_us", "us", 20.0, 1000.0, "higher", _SCS),
    _spec("pulse_width_max_us", "us", 20.0, 1000.0, "lower", _SCS),
    _spec("frequency_min_hz", "Hz", 2.0, 1200.0, "higher", _SCS),
    _spec("frequency_max_hz", "Hz", 2.0, 1200.0, "lower", _SCS),
    _spec("interphase_gap_min_us", "us", 0.0, 1000.0, "higher", "device manuals"),
    _spec("interphase_gap_max_us", "us", 0.0, 1000.0, "lower", "device manuals"),
    _spec("slew_up_ma_per_s", "mA/s", 0.0, 10.0, "lower",
          "'fast' ramping is 1-10 mA/s (J Neural Eng 2022 review; PMC8558614)", lo_open=True),
    _spec("slew_down_ma_per_s", "mA/s", 0.0, 1000.0, "higher",
          "fallback ramp speed; it reaches zero within N cycles whatever the value",
          lo_open=True),
    _spec("stale_input_ms", "ms", 0.0, 500.0, "lower", "IEC 60601-1-10 (invalid sensor data)",
          lo_open=True),
    _spec("fallback_cycles", "cycles", 1, 20, "lower", "IEC 60601-1-10", integer=True),
    _spec("recovery_cycles", "cycles", 1, 1000, "higher", "IEC 60601-1-10", integer=True),
    _spec("min_confidence", "", 0.0, 1.0, "higher", "decoder validity gate", hi_open=True),
    _spec("deadline_miss_limit", "cycles", 1, 20, "lower", "IEC 62304 class C: deadlines",
          integer=True),
    _spec("impedance_min_ohm", "ohm", 50.0, 3500.0, "higher",
          "RNS manual 250-3500 ohm; < 50 ohm is a short (DBS literature)"),
    _spec("impedance_max_ohm", "ohm", 50.0, 3500.0, "lower", "RNS manual 250-3500 ohm"),
    _spec("compliance_voltage_v", "V", 0.0, 20.0, "lower", "stimulator output stage",
          lo_open=True),
    _spec("dose_window_s", "s", 1.0, 86400.0, "higher",
          "rolling dose window; at least 1 s, and the budget rate stays <= 500 uC/s"),
    _spec("dose_budget_uc", "uC", 0.0, 30000.0, "lower",
          "built-in budget 30000 uC per 60 s window (500 uC/s)", lo_open=True),
    _spec("contact_area_cm2", "cm^2", 0.0, 1.0, "lower",
          "an effective area may only be smaller than the electrode catalogue's",
          lo_open=True),
    _spec("ramp_up_max_ma_per_s", "mA/s", 0.0, 255.0, "lower",
          "amplitude ramp ceiling; adaptive DBS ramps up at 0.03 mA/s (RC+S, PMC8558614); "
          "255 = the 25.5 mA ceiling within 0.1 s", lo_open=True),
    _spec("increase_blanking_s", "s", 0.0, 600.0, "higher",
          "no rise within this time after a fall: blanking after a change (RC+S, PMC8558614)"),
    _spec("burst_max_s", "s", 0.0, 604800.0, "lower",
          "RNS bursts last 10-5000 ms (RNS System Physician Manual); the ceiling (7 days, the "
          "longest run) leaves continuous therapies unlimited", lo_open=True),
    _spec("daily_on_max_s", "s", 0.0, 86400.0, "lower",
          "rolling 24 h therapy limit of responsive stimulation (RNS System Physician "
          "Manual: a daily maximum of therapies); 86400 s = no limit", lo_open=True),
)}

#: Built-in bounds nothing may loosen, by limit name (the ceilings of :data:`LIMIT_SPECS`).
HARD_CEILINGS: Mapping[str, HardCeiling] = {k: s.ceiling for k, s in LIMIT_SPECS.items()}

#: Largest average dose rate any (budget, window) pair may allow: the built-in 30000 uC per
#: 60 s. A shorter window with the same budget would loosen the budget, so the pair is checked.
DOSE_RATE_MAX_UC_PER_S = 30000.0 / 60.0

#: (min key, max key) pairs that must be ordered min <= max.
_ORDERED = (
    ("pulse_width_min_us", "pulse_width_max_us"),
    ("frequency_min_hz", "frequency_max_hz"),
    ("interphase_gap_min_us", "interphase_gap_max_us"),
    ("impedance_min_ohm", "impedance_max_ohm"),
)

_INT_KEYS = frozenset(k for k, s in LIMIT_SPECS.items() if s.integer)
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


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def check_limit_value(key: str, value: Any, source: str = "[safety]") -> float | int | None:
    """The one validation path of every numeric safety setting.

    Parameters
    ----------
    key : str
        A limit name (:func:`limit_names`).
    value : object
        What the user wrote (any type).
    source : str
        Where it came from, for the message: ``"my.toml [safety]"``.

    Returns
    -------
    float, int or None
        The value as the limit's type (None only for an unset optional area).

    Raises
    ------
    ConfigError
        Wrong type, not finite, or outside its hard range. One line naming the key, the
        value, the allowed range and the fix.
    """
    file_prefix, key_prefix = _split_source(source)
    name = f"{file_prefix}{key_prefix}{key}"
    spec = LIMIT_SPECS[key]
    bound = spec.ceiling
    unit = f" {spec.unit}" if spec.unit else ""
    if value is None and key in _OPTIONAL_KEYS:
        return None
    if spec.integer:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{name} = {_show(value)} must be a whole number (a count of "
                              f"cycles); use an integer in {bound.text()}")
    elif isinstance(value, bool) or not isinstance(value, int | float):
        raise ConfigError(f"{name} = {_show(value)} must be a number; use a value in "
                          f"{bound.text()}{unit}")
    try:
        v = float(value)
    except OverflowError:  # an integer beyond float range
        v = math.inf if value > 0 else -math.inf
    if not math.isfinite(v):
        raise ConfigError(f"{name} = {_show(value)} must be finite; use a value in "
                          f"{bound.text()}{unit}")
    if not bound.contains(v):
        too_high = v > bound.hi or (bound.hi_open and v >= bound.hi)
        fix = "lower it" if too_high else "raise it"
        raise ConfigError(f"{name} = {_show(value)} is outside the allowed range "
                          f"{bound.text()}{unit}; {fix}")
    return int(value) if spec.integer else v


def _check(limits: SafetyLimits, source: str) -> None:
    for f in fields(limits):
        check_limit_value(f.name, getattr(limits, f.name), source)
    file_prefix, key_prefix = _split_source(source)
    for lo_key, hi_key in _ORDERED:
        lo, hi = getattr(limits, lo_key), getattr(limits, hi_key)
        if lo > hi:
            raise ConfigError(
                f"{file_prefix}{key_prefix}{lo_key} = {lo!r} is above "
                f"{key_prefix}{hi_key} = {hi!r}; the allowed range is "
                f"{lo_key} <= {hi_key}, so lower {lo_key} or raise {hi_key}")
    rate = limits.dose_budget_uc / limits.dose_window_s
    if rate > DOSE_RATE_MAX_UC_PER_S * (1.0 + 1e-12):
        raise ConfigError(
            f"{file_prefix}{key_prefix}dose_budget_uc = {limits.dose_budget_uc:g} per "
            f"{key_prefix}dose_window_s = {limits.dose_window_s:g} is {rate:g} uC/s, above the "
            f"built-in {DOSE_RATE_MAX_UC_PER_S:g} uC/s; lower dose_budget_uc to at most "
            f"{DOSE_RATE_MAX_UC_PER_S * limits.dose_window_s:g} or lengthen dose_window_s")


def tighten(base: SafetyLimits, table: Mapping[str, Any], *, source: str,
            base_source: str = "the scenario") -> SafetyLimits:
    """``base`` with the overrides of ``table``, each of which may only be stricter.

    Every value goes through :func:`check_limit_value` first; then a value on the loose side
    of ``base``'s is refused, naming both.

    Raises
    ------
    ConfigError
        Any override is invalid or looser than ``base``.
    """
    file_prefix, key_prefix = _split_source(source)
    _check_table(table, source)
    kwargs: dict[str, Any] = {}
    for key, value in table.items():
        new, old = check_limit_value(key, value, source), getattr(base, key)
        if key in _OPTIONAL_KEYS and (new is None or old is None):
            if new is None and old is not None:
                raise ConfigError(f"{file_prefix}{key_prefix}{key} cannot be unset: "
                                  f"{base_source} states {old:g}; remove the key")
            kwargs[key] = new
            continue
        looser = new > old if LIMIT_SPECS[key].stricter == "lower" else new < old
        if looser:
            way = "lower" if LIMIT_SPECS[key].stricter == "lower" else "higher"
            raise ConfigError(
                f"{file_prefix}{key_prefix}{key} = {new!r} would loosen {base_source}'s "
                f"{old!r}; a limits file can only tighten, so use a value {way} than or equal "
                f"to {old!r}")
        kwargs[key] = new
    return _build({**base.to_dict(), **kwargs}, source)


def _build(values: Mapping[str, Any], source: str) -> SafetyLimits:
    """SafetyLimits from checked values, validated as a whole under ``source``'s name."""
    limits = SafetyLimits.__new__(SafetyLimits)
    for f in fields(SafetyLimits):
        object.__setattr__(limits, f.name, values[f.name])
    _check(limits, source)
    return limits


def _check_table(table: Any, source: str) -> None:
    """A limits table is a mapping of known keys (else one line naming the key)."""
    file_prefix, key_prefix = _split_source(source)
    if not isinstance(table, Mapping):
        raise ConfigError(f"{file_prefix}{key_prefix.rstrip('.') or 'safety'} must be a table "
                          f"of limits, e.g. shannon_k = 1.5")
    known = limit_names()
    for key in table:
        if key not in known:
            raise ConfigError(f"{file_prefix}unknown key {key_prefix}{key}; known limits are "
                              f"{', '.join(known)}")


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
    _check_table(table, source)
    kwargs: dict[str, Any] = {key: check_limit_value(key, value, source)
                              for key, value in table.items()}
    return _build({**SafetyLimits().to_dict(), **kwargs}, source)


def read_limits_table(path: str | Path) -> tuple[Mapping[str, Any], str]:
    """The limits table of a TOML file and its source label (``"FILE [safety]"``).

    The file holds either a ``[safety]`` table or the limits as top-level keys; a whole
    scenario file gives its ``[safety]`` table. It is read with a size cap.

    Raises
    ------
    ConfigError
        The file is missing, unreadable, too large, binary or not TOML.
    """
    from .._files import read_text_capped

    p = Path(path)
    text = read_text_capped(p, f"limits file {p}")
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{p}: not valid TOML ({exc}); fix the syntax") from None
    except RecursionError:
        raise ConfigError(f"{p}: TOML nested too deeply to be a limits file; write the limits "
                          "as key = value lines") from None
    if "safety" in doc:
        table = doc["safety"]
        if not isinstance(table, Mapping):
            raise ConfigError(f"{p}: safety must be a table ([safety]) of limits")
        return table, f"{p} [safety]"
    return doc, f"{p} [safety]"


def load_limits_file(path: str | Path) -> SafetyLimits:
    """Validated :class:`SafetyLimits` from a TOML file (overrides of the built-in defaults).

    Raises
    ------
    ConfigError
        The file cannot be read (see :func:`read_limits_table`) or any limit is invalid
        (see :func:`load_limits`).
    """
    table, source = read_limits_table(path)
    return load_limits(table, source=source)
