"""Tolerances per field: the TOML file, its errors, and comparisons that follow it (a change
within the tolerance passes, beyond it fails; decisions are always exact)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from neuroloop.errors import ConfigError
from neuroloop.io.compare import compare_cycles, compare_events, field_mismatch
from neuroloop.io.tolerances import (
    DECISION_FIELDS,
    DEFAULT_TOLERANCES_TOML,
    FieldRule,
    Tolerances,
    load_tolerances,
)
from neuroloop.records import cycle_dtype

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "ci" / "tolerances.toml"


def _cycles(n: int = 20) -> np.ndarray:
    rng = np.random.default_rng(0)
    a = np.zeros(n, dtype=cycle_dtype(6, 3, 4, 2))
    a["cycle"] = np.arange(n)
    a["state"] = rng.integers(0, 3, n)
    a["program_id"] = rng.integers(-1, 3, n)
    a["probabilities"] = rng.dirichlet(np.ones(3), n)
    a["confidence"] = a["probabilities"].max(axis=1)
    a["outputs"] = rng.normal(size=(n, 2))
    a["features"] = rng.normal(size=(n, 6))
    a["amplitude_ma"] = rng.uniform(-3, 3, (n, 4))
    a["compute_ns"] = rng.integers(1000, 5000, n)
    return a


def test_the_default_file_is_the_shipped_example_and_parses() -> None:
    assert EXAMPLE.read_text() == DEFAULT_TOLERANCES_TOML
    assert load_tolerances(EXAMPLE).rules == Tolerances.default().rules
    t = load_tolerances(None)
    assert t.source == "default"
    assert t.rule("state") == FieldRule("exact")
    assert t.rule("probabilities") == FieldRule("close", 1e-9, 1e-12)
    assert set(t.ignored) == {"sent_ns", "compute_ns", "e2e_ns"}
    e = load_tolerances("exact")
    assert e.rule("probabilities").mode == "exact" and set(e.ignored) == set(t.ignored)


def test_a_user_file_is_laid_over_the_default(tmp_path: Path) -> None:
    f = tmp_path / "t.toml"
    f.write_text('[fields]\nprobabilities = "exact"\namplitude_ma = { abs = 0.01 }\n'
                 'now_ns = "ignore"\n[events]\nvalues = "exact"\n')
    t = load_tolerances(f)
    assert t.source == str(f)
    assert t.rule("probabilities").mode == "exact"
    assert t.rule("amplitude_ma") == FieldRule("close", 0.0, 0.01)
    assert t.rule("confidence") == FieldRule("close", 1e-9, 1e-12)  # kept from the default
    assert "now_ns" in t.ignored
    assert t.event_values.mode == "exact"


@pytest.mark.parametrize("text, words", [
    ('[fields]\nprobabilitees = "exact"\n', ["unknown field 'probabilitees'", "probabilities"]),
    ('[fields]\namplitude_ma = { rel = -1e-9 }\n', ["amplitude_ma.rel", "negative"]),
    ('[fields]\namplitude_ma = { abs = nan }\n', ["amplitude_ma.abs", "NaN"]),
    ('[fields]\namplitude_ma = { abs = inf }\n', ["amplitude_ma.abs", "not finite"]),
    ('[fields]\namplitude_ma = { abs = 1e308 }\n', ["amplitude_ma.abs", "too large"]),
    ('[fields]\namplitude_ma = { tol = 1 }\n', ["unknown key 'tol'"]),
    ('[fields]\nstate = { abs = 1 }\n', ["fields.state", 'use "exact"']),
    ('[fields]\nstate = "ignore"\n', ["fields.state", 'use "exact"']),
    ('[fields]\nnow_ns = { abs = 5 }\n', ["fields.now_ns", '"exact" or "ignore"']),
    ('[fields]\nconfidence = "roughly"\n', ["fields.confidence", "not allowed"]),
    ('[feilds]\n', ["unknown key 'feilds'"]),
    ('[events]\nvalues = "ignore"\n', ["events.values", "hide interlock events"]),
    ('[events]\nreasons = "exact"\n', ["unknown key 'reasons'"]),
    ('fields = 3\n', ["fields must be a table"]),
    ('[fields\n', ["not valid TOML"]),
])
def test_bad_tolerance_files_are_one_line_errors(tmp_path: Path, text: str,
                                                 words: list[str]) -> None:
    f = tmp_path / "bad.toml"
    f.write_text(text)
    with pytest.raises(ConfigError) as exc:
        load_tolerances(f)
    msg = str(exc.value)
    assert "\n" not in msg and str(f) in msg
    for w in words:
        assert w in msg, msg


def test_missing_binary_and_directory_tolerance_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load_tolerances(tmp_path / "nope.toml")
    with pytest.raises(ConfigError, match="directory"):
        load_tolerances(tmp_path)
    (tmp_path / "bin.toml").write_bytes(b"\xff\xfe\x00\x01")
    with pytest.raises(ConfigError):
        load_tolerances(tmp_path / "bin.toml")


def test_a_1e13_perturbation_passes_default_and_fails_exact() -> None:
    a = _cycles()
    b = a.copy()
    b["probabilities"] *= 1 + 1e-13
    b["amplitude_ma"] *= 1 + 1e-13
    b["compute_ns"] += 77  # host timing: never compared
    assert compare_cycles(a, b, tolerances=Tolerances.default()).identical
    diff = compare_cycles(a, b, tolerances=Tolerances.exact())
    assert not diff.identical and diff.tolerances == "exact"
    assert diff.count_by_field == {"probabilities": 20, "amplitude_ma": 20}
    # a real change is still caught under the default, and named with the tolerances used
    b["amplitude_ma"][5, 2] += 1e-6
    d = compare_cycles(a, b, tolerances=Tolerances.default())
    assert (d.first_divergent_cycle, d.field, d.index) == (5, "amplitude_ma", (2,))
    assert d.count_by_field == {"amplitude_ma": 1} and "tolerances: default" in d.format()


def test_decisions_are_exact_whatever_the_tolerances(tmp_path: Path) -> None:
    a = _cycles()
    for name in ("state", "program_id"):
        b = a.copy()
        b[name][7] += 1
        d = compare_cycles(a, b, tolerances=Tolerances.default())
        assert (d.first_divergent_cycle, d.field) == (7, name)
    assert set(DECISION_FIELDS) >= {"state", "raw_state", "program_id", "supervisor_state"}


def test_events_compare_reasons_exactly_and_values_within_tolerance() -> None:
    def ev(reason: str, allowed: float) -> dict:
        return {"cycle": 3, "time_ns": 10, "kind": "interlock", "reason": reason,
                "contact": 2, "requested": 3.5, "allowed": allowed}

    tol = Tolerances.default()
    assert compare_events([ev("slew_up", 1.0)], [ev("slew_up", 1.0 + 1e-13)],
                          tolerances=tol).identical
    assert not compare_events([ev("slew_up", 1.0)], [ev("slew_up", 1.0 + 1e-13)]).identical
    d = compare_events([ev("slew_up", 1.0)], [ev("shannon", 1.0)], tolerances=tol)
    assert not d.identical and d.key == "reason"
    assert not compare_events([ev("slew_up", 1.0)], [ev("slew_up", 1.01)],
                              tolerances=tol).identical


finite = st.floats(allow_nan=False, allow_infinity=False, min_value=-1e6, max_value=1e6)


@settings(max_examples=200, deadline=None)
@given(x=finite, rel=st.floats(0, 1e-3), abs_=st.floats(0, 1e-3),
       frac=st.floats(0, 0.99))
def test_within_the_tolerance_never_differs_beyond_always_does(x: float, rel: float,
                                                                abs_: float,
                                                                frac: float) -> None:
    rule_t = Tolerances("t", (("confidence", FieldRule("close", rel, abs_)),))
    bound = abs_ + rel * abs(x)
    a = np.array([x])
    inside = np.array([x + frac * bound * 0.999])  # |a-b| < the bound of max(|a|,|b|)
    # ... unless rounding the sum to a float moved it past a bound smaller than an ulp
    assume(abs(inside[0] - x) <= rule_t.rule("confidence").abs_tol
           + rel * max(abs(x), abs(inside[0])))
    assert not field_mismatch(a, inside, "confidence", rule_t)[0]
    outside_step = 2.0 * (abs_ + rel * (abs(x) + 1.0)) + 1e-9
    outside = np.array([x + outside_step]) if rel < 0.25 else None
    if outside is not None:
        assert field_mismatch(a, outside, "confidence", rule_t)[0]


def test_non_finite_values_under_a_tolerance() -> None:
    t = Tolerances("t", (("confidence", FieldRule("close", 1e-9, 1e-9)),))
    a = np.array([math.nan, math.inf, -math.inf, math.inf, 1.0, math.nan, -0.0])
    b = np.array([math.nan, math.inf, -math.inf, -math.inf, math.inf, 1.0, 0.0])
    assert field_mismatch(a, b, "confidence", t).tolist() == [False, False, False, True, True,
                                                              True, False]
    # exact: -0.0 and 0.0 differ, NaN equals NaN
    assert field_mismatch(a, b, "confidence").tolist() == [False, False, False, True, True,
                                                           True, True]
