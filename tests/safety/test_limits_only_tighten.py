"""Every limit can only tighten, everywhere: each key x each loosening value is refused.

The sweep enumerates every key of the limits table with values that loosen it (past the
ceiling's loose end), that are not numbers, not finite or absurd (0, negative, nan, +-inf,
1e308, 1e-300, strings, lists, booleans, None), and proves that each is refused with a
one-line message naming the key and the allowed range. The values it accepts are exactly the
ones inside the hard range, i.e. stricter than (or equal to) the built-in ceiling; the
summary test prints the counts.
"""

from __future__ import annotations

import math
import subprocess
import sys
from dataclasses import fields

import numpy as np
import pytest

from neuroloop.config import load_scenario
from neuroloop.errors import ConfigError
from neuroloop.safety.effective import limit_rows, program_rows, resolve_limits
from neuroloop.safety.limits import (
    LIMIT_SPECS,
    SafetyLimits,
    check_limit_value,
    limit_names,
    load_limits,
    load_limits_file,
    tighten,
)
from neuroloop.stimulation.electrodes import electrode_array
from neuroloop.stimulation.programs import build_program_set

_WRONG_TYPES = ("1.5", "inf", True, False, [1.0], {"a": 1.0})
_ABSURD = (0, 0.0, -1, -1.0, math.nan, math.inf, -math.inf, 1e308, -1e308, 1e-300, 10**400)


def _loosening(key: str) -> list[float]:
    """Values just past the loose end of ``key``'s ceiling, and far past it."""
    spec = LIMIT_SPECS[key]
    c = spec.ceiling
    if spec.stricter == "lower":
        return [c.hi * (1 + 1e-9) + (1 if spec.integer else 0), c.hi * 2 + 1, 1e308]
    return [c.lo * (1 - 1e-9) - (1 if spec.integer else 1e-9), -1.0, -1e308]


def _candidates(key: str) -> list[object]:
    spec = LIMIT_SPECS[key]
    values: list[object] = [*_loosening(key), *_ABSURD, *_WRONG_TYPES]
    if spec.integer:
        values += [1.0, 2.5, int(spec.ceiling.hi) + 1]
    else:
        values += [None] if key != "contact_area_cm2" else []
    out = []
    for v in values:
        if spec.integer and isinstance(v, float) and math.isfinite(v) and v == int(v) and \
                abs(v) < 1e18:
            out.append(int(v))  # also try the integer form of a loosening number
        out.append(v)
    return out


def sweep() -> dict[str, list[tuple[object, str]]]:
    """key -> [(value, "refused" or "accepted: <why>")] for every candidate value."""
    result: dict[str, list[tuple[object, str]]] = {}
    for key in limit_names():
        rows = []
        for value in _candidates(key):
            try:
                lim = load_limits({key: value})
            except ConfigError as exc:
                msg = str(exc)
                assert "\n" not in msg
                assert f"safety.{key}" in msg, msg
                assert LIMIT_SPECS[key].ceiling.text() in msg or "uC/s" in msg, msg
                rows.append((value, "refused"))
                continue
            got = getattr(lim, key)
            assert got is None or math.isfinite(float(got))
            assert LIMIT_SPECS[key].ceiling.contains(float(got)), (key, value)
            rows.append((value, "accepted: inside the hard range (stricter than the ceiling)"))
        result[key] = rows
    return result


def test_every_key_refuses_every_loosening_value():
    result = sweep()
    assert set(result) == set(limit_names()) == set(LIMIT_SPECS)
    for key in result:
        refused = {repr(v) for v, verdict in result[key] if verdict == "refused"}
        for v in [*_loosening(key), math.nan, math.inf, -math.inf, 1e308, *_WRONG_TYPES]:
            assert repr(v) in refused, (key, v)


def test_sweep_counts(capsys):
    result = sweep()
    tried = sum(len(r) for r in result.values())
    refused = sum(1 for r in result.values() for _, v in r if v == "refused")
    accepted = [(k, v) for k, r in result.items() for v, why in r if why != "refused"]
    with capsys.disabled():
        sys.stdout.write(f"\nlimits sweep: {len(result)} keys, {tried} values tried, {refused} "
                         f"refused, {len(accepted)} accepted: "
                         f"{', '.join(f'{k}={v!r}' for k, v in accepted)}\n")
    # What is accepted is strictly tighter than the loose end: 1e-300 for a lower-is-stricter
    # limit with an open lower end, and similar; never a value past the ceiling.
    for key, value in accepted:
        spec = LIMIT_SPECS[key]
        v = float(value)  # type: ignore[arg-type]
        if spec.stricter == "lower":
            assert v <= spec.ceiling.hi
        else:
            assert v >= spec.ceiling.lo


@pytest.mark.parametrize("key,value", [
    ("dose_budget_uc", math.inf), ("dose_budget_uc", 1e308), ("dose_window_s", 1e-9),
    ("slew_down_ma_per_s", math.inf),
])
def test_the_reported_loosening_settings_are_refused(key, value):
    with pytest.raises(ConfigError, match=f"safety.{key}"):
        load_limits({key: value})


def test_a_short_window_cannot_loosen_the_dose_rate():
    with pytest.raises(ConfigError, match=r"500 uC/s.*lower dose_budget_uc to at most 500"):
        load_limits({"dose_window_s": 1.0})
    lim = load_limits({"dose_window_s": 1.0, "dose_budget_uc": 500.0})
    assert lim.dose_budget_uc / lim.dose_window_s == 500.0


def test_direct_construction_goes_through_the_same_checker():
    for key in limit_names():
        with pytest.raises(ConfigError, match=key):
            SafetyLimits(**{key: math.nan})


def test_check_limit_value_is_the_one_path():
    assert check_limit_value("shannon_k", 1) == 1.0
    assert check_limit_value("fallback_cycles", 4) == 4
    with pytest.raises(ConfigError, match="whole number"):
        check_limit_value("fallback_cycles", 4.0)


# -- --limits only tightens the scenario --------------------------------------------------------
def _limits_file(tmp_path, text):
    p = tmp_path / "limits.toml"
    p.write_text(text)
    return str(p)


@pytest.mark.parametrize("key", [k for k in limit_names() if k != "contact_area_cm2"])
def test_a_limits_file_cannot_loosen_the_scenario(key):
    spec = LIMIT_SPECS[key]
    lo, hi = spec.ceiling.lo, spec.ceiling.hi
    # the scenario sits half-way inside the hard range; the file tries half-way back out
    mid = lo + (hi - lo) / 2
    looser = (mid + hi) / 2 if spec.stricter == "lower" else (lo + mid) / 2
    if spec.integer:
        mid, looser = int(mid), (int(mid) + 1 if spec.stricter == "lower" else int(mid) - 1)
    partner = {"interphase_gap_min_us": {"interphase_gap_max_us": 1000.0},
               "pulse_width_min_us": {"pulse_width_max_us": 1000.0},
               "frequency_min_hz": {"frequency_max_hz": 1200.0}}.get(key, {})
    base = load_limits({key: mid, **partner})
    with pytest.raises(ConfigError, match=f"{key} = .* would loosen the scenario's"):
        tighten(base, {key: looser}, source="l.toml [safety]",
                base_source="the scenario")
    stricter = (lo + mid) / 2 if spec.stricter == "lower" else (mid + hi) / 2
    if spec.integer:
        stricter = int(mid) - 1 if spec.stricter == "lower" else int(mid) + 1
    if key == "dose_window_s":  # a longer window is stricter only with the budget kept
        assert tighten(base, {key: stricter}, source="l.toml [safety]").dose_window_s == stricter
    else:
        assert getattr(tighten(base, {key: stricter}, source="l.toml [safety]"), key) == stricter


def test_a_limits_file_can_tighten(tmp_path):
    sc = load_scenario("bsi")
    arr = electrode_array("paddle-5-6-5")
    path = _limits_file(tmp_path, "[safety]\nshannon_k = 1.2\ncharge_density_max_uc_per_cm2 = 20\n")
    r = resolve_limits(sc.safety, scenario_source="bsi.toml", array=arr, limits_path=path)
    assert r.limits.shannon_k == 1.2 and r.limits.charge_density_max_uc_per_cm2 == 20.0
    assert r.sources["shannon_k"] == "--limits" and r.sources["slew_up_ma_per_s"] == "built-in"
    assert r.sources["contact_area_cm2"] == "catalogue"


# -- geometry is hardware -------------------------------------------------------------------------
def test_a_stated_area_larger_than_the_catalogue_is_refused(tmp_path):
    sc = load_scenario("bsi")
    arr = electrode_array("paddle-5-6-5")
    with pytest.raises(ConfigError, match=r"contact_area_cm2 = 0.5 is larger than the catalogue's "
                                          r"0.06 cm\^2"):
        resolve_limits({"contact_area_cm2": 0.5}, scenario_source="x.toml", array=arr)
    with pytest.raises(ConfigError, match=r"contact_area_cm2 = 10.0 is outside the allowed range"):
        resolve_limits({"contact_area_cm2": 10.0}, scenario_source="x.toml", array=arr)
    path = _limits_file(tmp_path, "contact_area_cm2 = 0.07\n")
    with pytest.raises(ConfigError, match="larger than the catalogue"):
        resolve_limits(sc.safety, scenario_source="bsi.toml", array=arr, limits_path=path)


def test_a_smaller_stated_area_tightens_every_contact():
    arr = electrode_array("rns-strip-depth")
    r = resolve_limits({}, scenario_source="x.toml", array=arr, stated_area_cm2=0.05)
    np.testing.assert_array_equal(r.areas_cm2, np.full(8, 0.05))
    assert r.sources["contact_area_cm2"] == "scenario"
    r = resolve_limits({}, scenario_source="x.toml", array=arr)
    np.testing.assert_array_equal(r.areas_cm2, arr.area_cm2)


def test_the_supervisor_and_the_oracle_never_use_a_larger_area():
    from neuroloop.safety.supervisor import contact_areas_cm2
    from neuroloop.safety.validate import validate
    from neuroloop.stimulation.command import StimCommand

    arr = electrode_array("paddle-5-6-5")
    big = SafetyLimits(contact_area_cm2=1.0)  # a stated area can never enlarge the catalogue's
    np.testing.assert_array_equal(contact_areas_cm2(big, arr), arr.area_cm2)
    cmd = StimCommand.off(arr.n_contacts)
    cmd.amplitude_ma[0], cmd.amplitude_ma[5] = -12.0, 12.0
    cmd.pulse_width_us, cmd.frequency_hz, cmd.interphase_gap_us = 1000.0, 20.0, 50.0
    cmd.program_id = 1
    reasons = {v.reason for v in validate(cmd, big, arr)}
    assert {"shannon", "charge_density"} <= reasons


def _scenario_file(tmp_path, extra: str) -> str:
    p = tmp_path / "s.toml"
    p.write_text('base = "bsi"\n' + extra)
    return str(p)


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "neuroloop.cli", *args], capture_output=True,
                          text=True, timeout=300)


def test_the_contact_area_bypass_is_closed_through_the_cli(tmp_path):
    """The reported bypass: 10 cm^2 on the 5-6-5 paddle let 12 mA x 1000 us through."""
    for extra in ("[safety]\ncontact_area_cm2 = 10.0\n", "[safety]\ncontact_area_cm2 = 0.5\n",
                  "[stimulation]\ncontact_area_cm2 = 10.0\n"):
        r = _cli("run", "--config", _scenario_file(tmp_path, extra), "--fast", "--duration", "3",
                 "--inject", "decoder-max@1")
        assert r.returncode == 2, r.stderr
        assert len(r.stderr.strip().splitlines()) == 1 and "Traceback" not in r.stderr
        assert "contact_area_cm2 = " in r.stderr
        assert "catalogue" in r.stderr or "allowed range (0, 1]" in r.stderr


def test_a_program_above_shannon_on_the_catalogue_area_is_refused_at_load():
    sc = load_scenario("bsi")
    ps = build_program_set(sc.stimulation, sc.intention_names)
    r = resolve_limits(sc.safety, scenario_source="bsi.toml", array=ps.array)
    rows = program_rows(r, ps)
    assert rows and all(row["ok"] for row in rows)
    from neuroloop.safety.supervisor import check_programs

    assert check_programs(r.limits, ps) == []
    # 12 mA x 1000 us on one contact: 12 uC, Shannon allows 1.38 uC on 0.06 cm^2
    from neuroloop.stimulation.programs import ProgramSet, StimProgram

    p = StimProgram.from_contacts(ps.array, 1, "big", {"E0": 1.0}, {"E5": 1.0}, 20.0, 1000.0,
                                  (0.0, 12.0))
    bad = ProgramSet(ps.array, ("rest", "big"), (p,))
    problems = check_programs(r.limits, bad)
    assert any("Shannon" in x for x in problems) and any("uC/cm^2" in x for x in problems)
    assert not any(row["ok"] for row in program_rows(r, bad))


# -- neuroloop limits -----------------------------------------------------------------------------
def test_limits_command_shows_every_limit_and_its_source(tmp_path):
    path = _limits_file(tmp_path, "shannon_k = 1.3\n")
    r = _cli("limits", "--scenario", "bsi", "--limits", path)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    for f in fields(SafetyLimits):
        assert any(line.startswith(f.name) for line in lines), f.name
    shannon = next(line for line in lines if line.startswith("shannon_k"))
    assert "1.3" in shannon and shannon.rstrip().endswith("--limits")
    area = next(line for line in lines if line.startswith("contact_area_cm2"))
    assert "0.06" in area and area.rstrip().endswith("catalogue")
    assert any(line.startswith("left_hip_flexion") for line in lines)


def test_limits_command_json_and_refusals(tmp_path):
    import json

    cfg = _scenario_file(tmp_path, "[safety]\ncharge_density_max_uc_per_cm2 = 5.0\n")
    r = _cli("limits", "--config", cfg, "--json")
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    assert doc["array"] == "paddle-5-6-5"
    by = {row["limit"]: row for row in doc["limits"]}
    assert by["charge_density_max_uc_per_cm2"]["source"] == "scenario"
    assert doc["refused"] and any(not p["ok"] for p in doc["programs"])
    text = _cli("limits", "--config", cfg)
    assert "`neuroloop run` refuses this scenario" in text.stdout


def test_limit_rows_cover_the_table():
    sc = load_scenario("bsi")
    arr = electrode_array(sc.stimulation.array)
    rows = limit_rows(resolve_limits(sc.safety, scenario_source="bsi.toml", array=arr))
    assert [r["limit"] for r in rows][:len(limit_names())] == list(limit_names())


def test_limits_file_through_the_firmware_uses_the_same_checker(tmp_path):
    path = _limits_file(tmp_path, "dose_budget_uc = inf\n")
    with pytest.raises(ConfigError, match="dose_budget_uc = inf must be finite"):
        load_limits_file(path)


def test_a_run_made_with_limits_replays_with_them(tmp_path):
    """Replay takes the effective limits the run had, not only the scenario's."""
    import json

    limits = _limits_file(tmp_path, "slew_up_ma_per_s = 2.0\n")
    rec = tmp_path / "rec"
    r = _cli("run", "--scenario", "bsi", "--fast", "--duration", "30", "--limits", limits,
             "--record", str(rec), "--json")
    assert r.returncode == 0, r.stderr
    meta = json.loads((rec / "meta.json").read_text())
    assert meta["limits"]["slew_up_ma_per_s"] == 2.0
    r = _cli("replay", str(rec), "--check")
    assert r.returncode == 0 and "identical" in r.stdout, r.stdout + r.stderr
