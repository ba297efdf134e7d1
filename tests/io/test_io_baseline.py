"""Baselines: round trip, size, the recording they belong to, bad baselines, what changed
between two (diff_baselines), and the JUnit XML of a corpus result."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
import zipfile
from pathlib import Path

import numpy as np
import pytest

from neuroloop.errors import ConfigError, RecordingError
from neuroloop.io import open_recording
from neuroloop.io.baseline import (
    BASELINE_VERSION,
    NOT_STORED,
    Baseline,
    BaselineCollector,
    baseline_meta,
    code_version,
    diff_baselines,
    load_baseline,
    recording_fingerprint,
)
from neuroloop.io.check import RecordingCheck, recording_bytes
from neuroloop.io.corpus import find_recordings
from neuroloop.io.junit import check_junit_path, write_junit
from neuroloop.io.tolerances import Tolerances


def _accepted(make_session, name: str = "s", **kw) -> tuple[object, Baseline, Path]:
    """A fake recording and a baseline of its recorded decisions, saved beside it."""
    fake = make_session(name, **kw)
    rec = open_recording(fake.path)
    b = Baseline.from_recording(rec)
    b.meta = dict(baseline_meta(rec, recording_fingerprint(rec), None), **{
        k: b.meta[k] for k in ("intention_names", "output_names")})
    path = fake.path / "baseline.npz"
    b.save(path)
    return rec, load_baseline(path, recording=rec), path


def test_round_trip_keeps_every_decision_and_event(make_session) -> None:
    rec, b, path = _accepted(make_session, n_cycles=60)
    assert b.n_cycles == 60
    assert set(b.cycles.dtype.names) == set(rec.cycle_dtype.names) - set(NOT_STORED)
    for name in b.cycles.dtype.names:
        np.testing.assert_array_equal(b.cycles[name], rec.cycles[name])
    recorded = [e for e in rec.events() if e["kind"] == "interlock"]
    assert b.events == recorded and len(recorded) > 0
    assert b.meta["format_version"] == BASELINE_VERSION
    assert b.meta["code_version"] == code_version() and b.meta["code_version"].startswith("0.")
    assert b.meta["recording"]["fingerprint"] == recording_fingerprint(rec)
    assert "baseline" in b.describe() and str(path) in b.describe()
    with zipfile.ZipFile(path) as zf:  # compressed, plain arrays only
        assert all(i.compress_type == zipfile.ZIP_DEFLATED for i in zf.infolist())
    assert diff_baselines(b, Baseline.from_recording(rec)).identical


def test_a_baseline_is_a_few_percent_of_its_recording(make_session) -> None:
    """Features (most of a record) and samples are not stored: with a realistic width
    (512 features, 64 channels x 59-sample hops as in bsi) the baseline is under 5 %."""
    rec, _, path = _accepted(make_session, n_cycles=300, n_channels=64, hop=59,
                             n_features=512, n_states=7)
    ratio = path.stat().st_size / recording_bytes(rec.path)
    assert ratio < 0.05, ratio


def test_the_fingerprint_tells_recordings_apart_and_copies_alike(make_session,
                                                                tmp_path: Path) -> None:
    import shutil

    a = open_recording(make_session("a", seed=1).path)
    b = open_recording(make_session("b", seed=2).path)
    shutil.copytree(a.path, tmp_path / "copy")
    assert recording_fingerprint(a) != recording_fingerprint(b)
    assert recording_fingerprint(a) == recording_fingerprint(open_recording(tmp_path / "copy"))


def test_bad_baselines_are_one_line_errors(make_session, tmp_path: Path) -> None:
    rec, b, path = _accepted(make_session, "mine")
    other = open_recording(make_session("other", seed=9).path)
    with pytest.raises(RecordingError, match="belongs to another recording") as exc:
        load_baseline(path, recording=other)
    assert "--accept" in str(exc.value) and "\n" not in str(exc.value)
    # a newer format
    newer = Baseline(b.cycles, b.events, dict(b.meta, format_version=BASELINE_VERSION + 1))
    newer.save(tmp_path / "newer.npz")
    with pytest.raises(RecordingError, match="newer than this neuroloop") as exc:
        load_baseline(tmp_path / "newer.npz", recording=rec)
    assert "upgrade neuroloop" in str(exc.value)
    # not a zip, an empty file, a foreign npz, a truncated archive, a missing file
    (tmp_path / "text.npz").write_text("hello")
    (tmp_path / "empty.npz").write_bytes(b"")
    np.savez(tmp_path / "foreign.npz", x=np.arange(3))
    (tmp_path / "cut.npz").write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    for name, words in (("text.npz", "not a readable"), ("empty.npz", "not a readable"),
                        ("foreign.npz", "no readable meta"), ("cut.npz", "not a readable"),
                        ("missing.npz", "does not exist")):
        with pytest.raises(RecordingError, match=words) as exc:
            load_baseline(tmp_path / name)
        assert "\n" not in str(exc.value)
    # a member that does not fit the declared fields
    with np.load(path) as z:
        members = {k: z[k] for k in z.files}
    members["c.state"] = members["c.state"][:-1]
    np.savez_compressed(tmp_path / "short.npz", **members)
    with pytest.raises(RecordingError, match="is corrupt"):
        load_baseline(tmp_path / "short.npz")


def test_diff_baselines_counts_changes_and_first_cycles(make_session) -> None:
    rec, before, _ = _accepted(make_session, n_cycles=50)
    after = Baseline(before.cycles.copy(), [dict(e) for e in before.events], dict(before.meta))
    after.cycles["state"][[12, 30]] = 2
    after.cycles["program_id"][12] = 2
    after.cycles["amplitude_ma"][20, 0] += 0.25
    after.cycles["probabilities"][40:45] *= 1 + 1e-13  # numerically harmless: not a change
    after.events[0]["reason"] = "shannon"
    after.events.append(dict(after.events[-1], cycle=49))
    d = diff_baselines(before, after)
    assert not d.identical
    states = d.sections["states"]
    changed = int((before.cycles["state"] != after.cycles["state"]).sum())
    assert states["cycles_changed"] == changed and states["first_cycle"] == 12
    assert d.sections["amplitudes"]["cycles_changed"] == 1
    assert d.sections["amplitudes"]["first_cycle"] == 20
    assert d.sections["amplitudes"]["max_abs_change_ma"] == pytest.approx(0.25)
    assert "probabilities" not in d.sections["other"]
    ev = d.sections["interlock_events"]
    assert ev["count"] == [len(before.events), len(before.events) + 1]
    assert ev["by_reason"]["shannon"] == [0, 1]
    assert ev["first_event"] == 0
    text = d.format()
    assert "states:" in text and "first at cycle 12" in text and "interlock events:" in text
    assert "largest change 0.25 mA" in text
    json.dumps(d.to_dict(), allow_nan=False)
    # exact tolerances see the 1e-13 change too
    assert "probabilities" in diff_baselines(before, after, Tolerances.exact()).sections["other"]


def test_collector_keeps_decisions_not_features() -> None:
    from neuroloop.records import cycle_dtype
    from neuroloop.safety.events import InterlockEvent, SupervisorState

    c = BaselineCollector()
    row = np.zeros(1, dtype=cycle_dtype(4, 3, 2, 1))
    for k in range(2500):  # across chunk boundaries
        row["cycle"] = k
        row["now_ns"] = 1000 * k
        row["state"] = k % 3
        if k == 1500:
            c.on_events([InterlockEvent("slew_up", k, 1000 * k, 1, 3.5, 1.0,
                                        SupervisorState.STIMULATING),
                         {"kind": "annotation", "text": "not an interlock"}])
        c.on_cycle(row)
    b = c.baseline({})
    assert b.n_cycles == 2500 and "features" not in b.cycles.dtype.names
    np.testing.assert_array_equal(b.cycles["state"], np.arange(2500) % 3)
    assert [e["reason"] for e in b.events] == ["slew_up"] and b.events[0]["cycle"] == 1500


def test_find_recordings_in_directories_and_globs(make_session, tmp_path: Path) -> None:
    a = make_session("corpus/p1/a").path
    b = make_session("corpus/p2/b").path
    (tmp_path / "corpus" / "README.md").write_text("not a recording")
    assert find_recordings([str(tmp_path / "corpus")]) == [str(a), str(b)]
    assert find_recordings([str(tmp_path / "corpus" / "*" / "b")]) == [str(b)]
    assert find_recordings([str(a), str(tmp_path / "corpus")]) == [str(a), str(b)]  # once each
    for bad, words in ((tmp_path / "corpus" / "README.md", "is not a recording (it is a file)"),
                       (tmp_path / "nope", "does not exist"),
                       (tmp_path / "corpus" / "*" / "zzz*", "matches no recording")):
        with pytest.raises(ConfigError, match=words.replace("(", r"\(").replace(")", r"\)")):
            find_recordings([str(bad)])
    (tmp_path / "empty").mkdir()
    with pytest.raises(ConfigError, match="holds none"):
        find_recordings([str(tmp_path / "empty")])


def test_junit_xml_content_and_bad_paths(tmp_path: Path) -> None:
    check = {"identical": False, "against": "the recording",
             "cycles": {"identical": False, "recorded": 10, "replayed": 10,
                        "first_divergent_cycle": 4, "field": "state", "index": None,
                        "field_label": "state", "recorded_value": 1, "replayed_value": 2,
                        "count_by_field": {"state": 3, "amplitude_ma": 2}, "ignored": [],
                        "tolerances": "default"},
             "events": {"identical": True, "recorded": 0, "replayed": 0}}
    results = [RecordingCheck("c/ok", "identical", against="the recording", cycles=10),
               RecordingCheck("c/bad", "diverged", against="the recording", cycles=10,
                              check=check, detail="replay DIVERGES\n  first divergent cycle: 4"),
               RecordingCheck("c/\x01broken", "error", error="c/broken/meta.json is not valid "
                              "JSON at byte offset 0")]
    out = tmp_path / "junit.xml"
    write_junit(out, results, wall_s=1.5)
    root = ET.parse(out).getroot()
    suite = root.find("testsuite")
    assert suite is not None
    assert (suite.get("tests"), suite.get("failures"), suite.get("errors")) == ("3", "1", "1")
    cases = {c.get("name"): c for c in suite.iter("testcase")}
    assert set(cases) == {"c/ok", "c/bad", "c/\ufffdbroken"}  # no control character in XML
    failure = cases["c/bad"].find("failure")
    assert failure is not None
    assert "cycle 4: state 1 -> 2" in failure.get("message", "")
    assert "state 3, amplitude_ma 2" in failure.get("message", "")
    assert "first divergent cycle: 4" in (failure.text or "")
    error = cases["c/\ufffdbroken"].find("error")
    assert error is not None and "not valid JSON" in error.get("message", "")
    with pytest.raises(ConfigError, match="does not exist"):
        check_junit_path(tmp_path / "no" / "such" / "dir" / "j.xml")
    with pytest.raises(ConfigError, match="is a directory"):
        check_junit_path(tmp_path)
