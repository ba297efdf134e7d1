"""The same patient under another control policy, in the same ``neuroloop run``.

A closed-loop therapy is judged against a reference on the *same* patient: adaptive DBS
against continuous DBS at its maximum amplitude (``--compare-continuous``), responsive
stimulation against no stimulation. :func:`run_counterfactual` runs the scenario again with
its ``[control]`` table replaced, on a simulated clock, with the same patient seed and the
same number of cycles as the run it is compared with; :func:`compare` puts the two runs'
therapy figures (``"control"`` and ``"patient"`` in the summary) side by side with their
ratios.

The reference always runs on the scenario's own simulated patient in-process: when the main
run went through a device (``--device``), the device's patient has the same model and seed
but not the same timing, so compare ratios, not single samples. No recorder, fault injection
or device is attached to the reference run.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from ..config import Scenario, scenario_from_dict

__all__ = ["Counterfactual", "CONTINUOUS", "UNSTIMULATED", "BY_OPTION", "run_counterfactual",
           "compare", "format_comparison", "add_counterfactuals"]


@dataclass(frozen=True)
class Counterfactual:
    """A reference run: a name and the ``[control]`` table that replaces the scenario's.

    Attributes
    ----------
    name : str
        How the summary names it (``"continuous"``, ``"unstimulated"``).
    control : mapping
        The whole ``[control]`` table of the reference run (``policy`` and its keys).
    description : str
        One line for the text summary.
    """

    name: str
    control: Mapping[str, Any] = field(default_factory=dict)
    description: str = ""


#: Continuous stimulation of the scenario's first program at its clinician maximum.
CONTINUOUS = Counterfactual("continuous", {"policy": "continuous"},
                            "continuous stimulation at the program's maximum amplitude")
#: The same patient without any stimulation.
UNSTIMULATED = Counterfactual("unstimulated", {"policy": "off"}, "no stimulation")


#: ``neuroloop run`` options (argparse dest) -> the reference run each one adds.
BY_OPTION: dict[str, Counterfactual] = {"compare_continuous": CONTINUOUS,
                                        "compare_unstimulated": UNSTIMULATED}


def counterfactual_scenario(scenario: Scenario, cf: Counterfactual) -> Scenario:
    """``scenario`` with its ``[control]`` table replaced by ``cf.control``."""
    table = dict(scenario.raw)
    table["control"] = dict(cf.control)
    return scenario_from_dict(table, label=f"{scenario.path} ({cf.name} reference)")


def run_counterfactual(scenario: Scenario, options: Any, cf: Counterfactual, *,
                       cycles: int | None = None,
                       progress: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Run ``scenario`` with ``cf``'s control on a simulated clock; its summary.

    Parameters
    ----------
    scenario : Scenario
        The scenario of the run being judged.
    options : RunOptions
        That run's options: its seed, duration, decoder, limits and deadline are reused; its
        source is reused unless it is a device (then the scenario's own source).
    cf : Counterfactual
    cycles : int, optional
        Number of cycles (default: from the duration), so that both runs cover the same
        stretch of patient time.
    progress : callable, optional
    """
    from ..acquisition import parse_url
    from .session import RunOptions, Session

    sc = counterfactual_scenario(scenario, cf)
    url = options.source_url
    if url is not None and parse_url(url)[0] in ("serial", "socket"):
        url = None  # a device: the reference runs on the scenario's own patient
    opts = RunOptions(duration_s=options.duration_s, fast=True, seed=options.seed,
                      source_url=url, decoder_path=options.decoder_path,
                      limits_path=options.limits_path, limits_table=options.limits_table,
                      deadline_ms=options.deadline_ms, realtime_priority=None)
    say = progress or (lambda msg: None)
    say(f"reference run: the same patient with {cf.description or cf.control}")
    session = Session(sc, opts, progress=say)
    session.open()
    return session.run(max_cycles=cycles)


def _ratio(a: float, b: float) -> float:
    if b == 0.0:
        return math.nan if a != 0.0 else 1.0
    return a / b


def compare(summary: Mapping[str, Any], reference: Mapping[str, Any],
            cf: Counterfactual) -> dict[str, Any]:
    """Both runs' therapy figures and their ratios (this run / reference).

    Returns
    -------
    dict
        ``{"name", "description", "policy", "cycles", "control": {key: {"run", "reference",
        "ratio"}}, "patient": {...}}`` over the keys both runs report.
    """
    out: dict[str, Any] = {"name": cf.name, "description": cf.description,
                           "policy": dict(cf.control), "cycles": reference.get("cycles")}
    for section in ("control", "patient"):
        mine, theirs = summary.get(section) or {}, reference.get(section) or {}
        rows = {k: {"run": float(mine[k]), "reference": float(theirs[k]),
                    "ratio": _ratio(float(mine[k]), float(theirs[k]))}
                for k in mine if k in theirs}
        if rows:
            out[section] = rows
    return out


def format_comparison(cmp: Mapping[str, Any]) -> list[str]:
    """Text-summary lines of one :func:`compare` result."""
    lines = [f"vs {cmp['name']:<17}{cmp.get('description', '')} (same patient, "
             f"{cmp.get('cycles')} cycles)"]
    for section in ("control", "patient"):
        for k, row in (cmp.get(section) or {}).items():
            lines.append(f"  {section + '.' + k:<34} run {row['run']:<10.4g} reference "
                         f"{row['reference']:<10.4g} ratio {row['ratio']:.3f}")
    return lines


def add_counterfactuals(summary: dict[str, Any], scenario: Scenario, options: Any,
                        wanted: list[Counterfactual], *,
                        progress: Callable[[str], None] | None = None) -> None:
    """Run each reference of ``wanted`` for as many cycles as ``summary``'s run and append
    its :func:`compare` to ``summary["counterfactuals"]``."""
    for cf in wanted:
        ref = run_counterfactual(scenario, options, cf, cycles=int(summary["cycles"]) or None,
                                 progress=progress)
        summary.setdefault("counterfactuals", []).append(compare(summary, ref, cf))
