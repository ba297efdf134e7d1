"""The effective limits of a session, where each one comes from, and what they allow.

Limits are layered and can only tighten on the way:

1. **built-in**: :class:`~neuroloop.safety.limits.SafetyLimits` defaults, inside the hard
   ceilings of :data:`~neuroloop.safety.limits.LIMIT_SPECS`;
2. **scenario**: the scenario's ``[safety]`` table (any value inside the hard ceilings);
3. **--limits**: a limits file, each value only on the strict side of the scenario's
   (:func:`~neuroloop.safety.limits.tighten`);
4. **catalogue**: contact areas come from the electrode catalogue; the scenario's
   ``[stimulation] contact_area_cm2`` or a ``contact_area_cm2`` limit may only state a smaller
   effective area.

:func:`resolve_limits` builds the result once; :func:`limit_rows` and :func:`program_rows`
describe it for ``neuroloop limits`` so that a bench engineer sees why a program is refused.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from typing import Any

import numpy as np

from ..config import Scenario
from ..errors import ConfigError
from ..stimulation.electrodes import ELECTRODE_CATALOGUE, ElectrodeArray
from ..stimulation.programs import ProgramSet
from .limits import (
    DOSE_RATE_MAX_UC_PER_S,
    LIMIT_SPECS,
    SafetyLimits,
    load_limits,
    read_limits_table,
    tighten,
)

__all__ = ["ResolvedLimits", "resolve_limits", "scenario_limits", "limit_rows", "program_rows",
           "format_tables"]

BUILT_IN = "built-in"
SCENARIO = "scenario"
LIMITS_FILE = "--limits"
CATALOGUE = "catalogue"


@dataclass(frozen=True)
class ResolvedLimits:
    """The limits a session runs with.

    Attributes
    ----------
    limits : SafetyLimits
        Effective limits (``contact_area_cm2`` is the smallest stated area, or None).
    array : ElectrodeArray
        The catalogue array whose areas the charge limits use.
    sources : mapping of str to str
        For each limit name, where its value came from: ``"built-in"``, ``"scenario"``,
        ``"--limits"`` or ``"catalogue"``.
    """

    limits: SafetyLimits
    array: ElectrodeArray
    sources: Mapping[str, str]

    @property
    def areas_cm2(self) -> np.ndarray:
        """Per-contact area every charge limit uses, cm^2, shape (n_contacts,)."""
        return self.limits.contact_areas_cm2(self.array.area_cm2)


def resolve_limits(safety_table: Mapping[str, Any], *, scenario_source: str,
                   array: ElectrodeArray, stated_area_cm2: float | None = None,
                   limits_path: str | None = None,
                   limits_table: Mapping[str, Any] | None = None,
                   limits_table_source: str = "recorded limits") -> ResolvedLimits:
    """Layer built-in, scenario and ``--limits`` values, and check the stated area.

    Parameters
    ----------
    safety_table : mapping
        The scenario's ``[safety]`` table.
    scenario_source : str
        The scenario file, for messages (``"bsi.toml"``).
    array : ElectrodeArray
        The scenario's catalogue array.
    stated_area_cm2 : float or None
        The scenario's ``[stimulation] contact_area_cm2``, if any, cm^2.
    limits_path : str or None
        A ``--limits`` file that may only tighten.
    limits_table : mapping or None
        Limits that may only tighten, applied last: a replay passes the effective limits its
        recording ran with (``meta.json`` ``limits``), so a run made with ``--limits``
        replays with them.
    limits_table_source : str
        Where ``limits_table`` came from, for messages.

    Raises
    ------
    ConfigError
        Any invalid or loosening value, or a stated area larger than a catalogue contact.
    """
    limits = load_limits(safety_table, source=f"{scenario_source} [safety]")
    sources = {f.name: (SCENARIO if f.name in safety_table else BUILT_IN)
               for f in fields(SafetyLimits)}
    if limits_path is not None:
        table, source = read_limits_table(limits_path)
        limits = tighten(limits, table, source=source,
                         base_source=f"the scenario ({scenario_source})")
        sources.update({k: LIMITS_FILE for k in table})
    if limits_table is not None:
        before = limits
        limits = tighten(limits, limits_table, source=f"{limits_table_source} [safety]",
                         base_source=f"the scenario ({scenario_source})")
        sources.update({k: LIMITS_FILE for k in limits_table
                        if getattr(limits, k) != getattr(before, k)})
    smallest = float(np.min(array.area_cm2))
    stated = limits.contact_area_cm2
    if stated is not None and stated > smallest:
        where = "--limits file" if sources["contact_area_cm2"] == LIMITS_FILE else (
            f"{scenario_source} [safety]")
        raise ConfigError(
            f"{where}: contact_area_cm2 = {stated:g} is larger than the catalogue's "
            f"{smallest:.4g} cm^2 for a contact of {array.name}; geometry is hardware: state a "
            "smaller effective area or remove the key")
    if stated_area_cm2 is not None and (stated is None or stated_area_cm2 < stated):
        if stated_area_cm2 > smallest:
            raise ConfigError(f"{scenario_source}: stimulation.contact_area_cm2 = "
                              f"{stated_area_cm2:g} is larger than the catalogue's "
                              f"{smallest:.4g} cm^2 for a contact of {array.name}; geometry is "
                              "hardware: state a smaller effective area or remove the key")
        limits = replace(limits, contact_area_cm2=float(stated_area_cm2))
        sources["contact_area_cm2"] = SCENARIO
    if limits.contact_area_cm2 is None:
        sources["contact_area_cm2"] = CATALOGUE
    return ResolvedLimits(limits, array, sources)


def scenario_limits(scenario: Scenario, array: ElectrodeArray, *,
                    limits_path: str | None = None,
                    limits_table: Mapping[str, Any] | None = None) -> ResolvedLimits:
    """:func:`resolve_limits` for a scenario: its ``[safety]`` table and its stated area.

    The one place ``neuroloop run`` (the Session) and ``neuroloop limits`` resolve limits, so
    the table the command shows is the one a run uses.
    """
    return resolve_limits(scenario.safety, scenario_source=scenario.path, array=array,
                          stated_area_cm2=scenario.stimulation.contact_area_cm2,
                          limits_path=limits_path, limits_table=limits_table,
                          limits_table_source="limits recorded in meta.json")


def _fmt(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def limit_rows(resolved: ResolvedLimits) -> list[dict[str, Any]]:
    """One row per limit: name, value, unit, hard range, which way is stricter, source.

    The contact-area row shows the areas the charge limits really use (from the catalogue,
    or the smaller stated area).
    """
    rows: list[dict[str, Any]] = []
    lim = resolved.limits
    for f in fields(SafetyLimits):
        spec = LIMIT_SPECS[f.name]
        value: Any = getattr(lim, f.name)
        if f.name == "contact_area_cm2":
            areas = resolved.areas_cm2
            value = float(areas.min()) if np.all(areas == areas.min()) else [
                float(a) for a in areas]
        rows.append({
            "limit": f.name, "value": value, "unit": spec.unit,
            "allowed": spec.ceiling.text(), "stricter": spec.stricter,
            "source": resolved.sources[f.name], "reference": spec.source,
        })
    rows.append({
        "limit": "dose_rate_uc_per_s", "value": lim.dose_budget_uc / lim.dose_window_s,
        "unit": "uC/s", "allowed": f"(0, {DOSE_RATE_MAX_UC_PER_S:g}]", "stricter": "lower",
        "source": "derived", "reference": "dose_budget_uc / dose_window_s",
    })
    entry = ELECTRODE_CATALOGUE.get(resolved.array.name)
    rows.append({
        "limit": "electrode_array", "value": resolved.array.name, "unit": "",
        "allowed": "catalogue", "stricter": "", "source": CATALOGUE,
        "reference": entry.source if entry else "",
    })
    return rows


def program_rows(resolved: ResolvedLimits, programs: ProgramSet) -> list[dict[str, Any]]:
    """What each program asks at its clinician maximum, per driven contact, against the limits.

    Returns
    -------
    list of dict
        ``program``, ``contact``, ``current_ma``, ``charge_uc`` (per phase), ``density_uc_per_cm2``,
        ``area_cm2``, ``shannon_q_max_uc``, ``density_max_uc_per_cm2``, ``charge_max_uc``,
        ``allowed_amplitude_max_ma`` (the largest program amplitude every charge limit allows)
        and ``ok``.
    """
    lim = resolved.limits
    areas = resolved.areas_cm2
    rows: list[dict[str, Any]] = []
    for p in programs:
        frac = np.maximum(p.cathode_fraction, p.anode_fraction)
        for c in np.flatnonzero(frac > 0):
            area = float(areas[c])
            q_sh = lim.shannon_q_max_uc(area)
            q_allowed = min(q_sh, lim.charge_density_max_uc_per_cm2 * area,
                            lim.charge_per_phase_max_uc)
            i_c = p.amplitude_max_ma * float(frac[c])
            q = i_c * p.pulse_width_us / 1000.0
            allowed_amp = min(q_allowed * 1000.0 / p.pulse_width_us / float(frac[c]),
                              lim.contact_current_max_ma / float(frac[c]),
                              lim.total_current_max_ma)
            rows.append({
                "program": p.name, "contact": programs.array.contact_names[c],
                "current_ma": i_c, "pulse_width_us": p.pulse_width_us, "charge_uc": q,
                "density_uc_per_cm2": q / area, "area_cm2": area, "shannon_q_max_uc": q_sh,
                "density_max_uc_per_cm2": lim.charge_density_max_uc_per_cm2,
                "charge_max_uc": lim.charge_per_phase_max_uc,
                "allowed_amplitude_max_ma": allowed_amp,
                "ok": bool(q <= q_allowed * (1 + 1e-12) and i_c <= lim.contact_current_max_ma
                           and p.amplitude_max_ma <= lim.total_current_max_ma),
            })
    return rows


def format_tables(resolved: ResolvedLimits, programs: ProgramSet) -> str:
    """Plain-text limit and program tables (what ``neuroloop limits`` prints)."""
    out = [f"{'limit':34s} {'value':>12s} {'unit':8s} {'allowed':16s} source"]
    for r in limit_rows(resolved):
        v = r["value"]
        text = ("per contact" if isinstance(v, list) else _fmt(v))
        out.append(f"{r['limit']:34s} {text:>12s} {r['unit']:8s} {r['allowed']:16s} "
                   f"{r['source']}")
    out.append("")
    out.append(f"{'program':24s} {'contact':8s} {'I mA':>6s} {'Q uC':>7s} {'D uC/cm2':>9s} "
               f"{'Shannon':>8s} {'D max':>6s} {'A max mA':>9s}  ok")
    for r in program_rows(resolved, programs):
        out.append(f"{r['program']:24s} {r['contact']:8s} {r['current_ma']:6.2f} "
                   f"{r['charge_uc']:7.3f} {r['density_uc_per_cm2']:9.2f} "
                   f"{r['shannon_q_max_uc']:8.3f} {r['density_max_uc_per_cm2']:6.1f} "
                   f"{r['allowed_amplitude_max_ma']:9.2f}  {'yes' if r['ok'] else 'NO'}")
    return "\n".join(out)
