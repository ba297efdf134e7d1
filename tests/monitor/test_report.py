"""`neuroloop report`: every figure for any recording, self-contained, and bad input in one line."""

from __future__ import annotations

import base64
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from neuroloop.cli import main
from neuroloop.io import open_recording
from neuroloop.monitor.figures import _thresholds
from neuroloop.monitor.layout import contact_shapes
from neuroloop.monitor.report import build_report
from neuroloop.monitor.session_data import bucket_edges, envelope, load_session
from neuroloop.stimulation.electrodes import ELECTRODE_CATALOGUE

ALL = {"intention", "confusion", "stimulation", "programs", "envelope", "outputs",
       "supervisor", "latency"}


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "neuroloop.cli", *args], capture_output=True,
                          text=True, timeout=300, env=dict(os.environ, NEUROLOOP_PROGRESS="0"))


@pytest.fixture(scope="module")
def bsi_rec(tmp_path_factory: pytest.TempPathFactory, decoder: Path) -> Path:
    """20 s of bsi with a decoder NaN burst and an E-STOP, so interlocks are there to draw."""
    d = tmp_path_factory.mktemp("rec") / "bsi"
    r = _run("run", "--scenario", "bsi", "--fast", "--duration", "20", "--decoder",
             str(decoder), "--record", str(d), "--inject", "decoder-nan@6:1",
             "--inject", "estop@16", "--json")
    assert r.returncode == 0, r.stderr
    return d


def _pngs(html: str) -> list[bytes]:
    return [base64.b64decode(m) for m in re.findall(r'src="data:image/png;base64,([^"]+)"', html)]


def test_report_is_one_self_contained_file_with_every_figure(bsi_rec: Path,
                                                             tmp_path: Path) -> None:
    out, png = tmp_path / "r.html", tmp_path / "png"
    r = _run("report", str(bsi_rec), "--out", str(out), "--png", str(png), "--json")
    assert r.returncode == 0, r.stderr
    result = json.loads(r.stdout)
    assert ALL <= set(result["figures"])
    assert "device" not in result["figures"]  # no device in this run
    html = out.read_text()
    images = _pngs(html)
    assert len(images) == len(result["figures"])
    assert all(i.startswith(b"\x89PNG") and len(i) > 5000 for i in images)
    # nothing to fetch: no external script, style or image
    assert not re.search(r'(src|href)="(https?:)?//', html)
    for name in result["figures"]:
        assert (png / f"{name}.png").read_bytes().startswith(b"\x89PNG")
    # header, summary, the interlocks listed (the E-STOP and the NaN fallback)
    for text in ("bsi", "closed cleanly", "sha256", "numba", "Run summary", "estop",
                 "nonfinite", "paddle-5-6-5", "left_hip_flexion"):
        assert text in html, text


@pytest.mark.slow
def test_report_draws_another_array_and_a_replayed_run(decoder: Path, bsi_rec: Path,
                                                       tmp_path: Path) -> None:
    raw = (Path(__file__).parents[2] / "neuroloop/scenarios/bsi.toml").read_text()
    cfg = tmp_path / "dbs.toml"
    cfg.write_text(raw.split("[stimulation]")[0] + """[stimulation]
array = "dbs-3389"
[[stimulation.programs]]
intention = "left_hip_flexion"
cathodes = { C1 = 1.0 }
anodes = { C2 = 1.0 }
frequency_hz = 130.0
pulse_width_us = 60.0
amplitude_ma = [0.5, 2.0]
""")
    dbs = tmp_path / "dbs"
    r = _run("run", "--config", str(cfg), "--fast", "--duration", "8", "--decoder",
             str(decoder), "--record", str(dbs), "--json")
    assert r.returncode == 0, r.stderr
    result = build_report(dbs, tmp_path / "dbs.html")
    assert {"programs", "envelope", "stimulation"} <= set(result["figures"])
    html = (tmp_path / "dbs.html").read_text()
    assert "dbs-3389" in html
    # a recording of a replayed run (replay:// source) reports like any other
    rep = tmp_path / "replayed"
    r = _run("run", "--scenario", "bsi", "--fast", "--source", f"replay://{bsi_rec}",
             "--decoder", str(decoder), "--record", str(rep), "--json")
    assert r.returncode == 0, r.stderr
    result = build_report(rep, tmp_path / "rep.html")
    assert ALL <= set(result["figures"])
    assert "replay://" in (tmp_path / "rep.html").read_text()


def test_report_on_a_recording_cut_short(bsi_rec: Path, tmp_path: Path) -> None:
    """As the writer leaves it when killed: meta.json from the start (no summary, no counts,
    not closed cleanly), a partial last record and a partial last events line."""
    d = tmp_path / "cut"
    shutil.copytree(bsi_rec, d)
    meta = json.loads((d / "meta.json").read_text())
    for key in ("summary", "counts", "recorder", "stopped_utc"):
        meta.pop(key, None)
    meta["closed_cleanly"] = False
    (d / "meta.json").write_text(json.dumps(meta))
    row = open_recording(bsi_rec).cycle_dtype.itemsize
    with open(d / "cycles.rec", "r+b") as f:
        f.truncate(120 * row + row // 3)
    with open(d / "events.jsonl", "ab") as f:
        f.write(b'{"cycle": 119, "kind": "interl')
    out = tmp_path / "cut.html"
    assert main(["report", str(d), "--out", str(out)]) == 0
    html = out.read_text()
    assert "not close this recording cleanly" in html and "120 cycles" in html
    assert len(_pngs(html)) >= 7


@pytest.mark.slow
def test_report_on_a_recording_killed_mid_run(decoder: Path, tmp_path: Path) -> None:
    d = tmp_path / "killed"
    proc = subprocess.Popen([sys.executable, "-m", "neuroloop.cli", "run", "--scenario", "bsi",
                             "--fast", "--duration", "3000", "--decoder", str(decoder),
                             "--record", str(d), "--json"], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            f = d / "cycles.rec"
            if f.exists() and f.stat().st_size > 300 * 4541:
                break
            time.sleep(0.05)
        else:
            pytest.fail("the run never recorded 300 cycles")
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    rec = open_recording(d)
    assert not rec.closed_cleanly and rec.n_cycles >= 300
    rec.close()
    out = tmp_path / "k.html"
    assert main(["report", str(d), "--out", str(out)]) == 0
    html = out.read_text()
    assert "not close this recording cleanly" in html
    assert len(_pngs(html)) >= 7  # every record-based figure; the per-stage bars need a summary


def test_report_bad_input_is_one_line_exit_2(bsi_rec: Path, tmp_path: Path,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    def err(argv: list[str]) -> str:
        assert main(argv) == 2
        text = capsys.readouterr().err
        assert text.count("\n") == 1 and "Traceback" not in text, text
        return text

    assert "does not exist" in err(["report", str(tmp_path / "nope")])
    (tmp_path / "empty").mkdir()
    assert "not a neuroloop recording" in err(["report", str(tmp_path / "empty")])
    (tmp_path / "file").write_bytes(b"\x00\xff" * 100)
    assert "not a recording directory" in err(["report", str(tmp_path / "file")])
    newer = tmp_path / "newer"
    shutil.copytree(bsi_rec, newer)
    meta = json.loads((newer / "meta.json").read_text())
    meta["format_version"] = 99
    (newer / "meta.json").write_text(json.dumps(meta))
    assert "upgrade neuroloop" in err(["report", str(newer)])
    assert "--out" in err(["report", str(bsi_rec), "--out", str(tmp_path / "no/dir/r.html")])
    assert "--png" in err(["report", str(bsi_rec), "--png", str(tmp_path / "file")])


# -- pieces ----------------------------------------------------------------------------------
@settings(max_examples=60, deadline=None)
@given(st.lists(st.one_of(st.floats(-1e6, 1e6), st.just(float("nan"))), min_size=1,
                max_size=300), st.integers(1, 50))
def test_envelope_keeps_every_bucket_min_max_mean(values: list[float], points: int) -> None:
    v = np.asarray(values)
    edges = bucket_edges(v.size, points)
    assert edges[0] == 0 and edges[-1] == v.size and np.all(np.diff(edges) > 0)
    assert edges.size - 1 <= max(points, 1) or v.size <= points
    lo, hi, mean = envelope(v, edges)
    for k in range(edges.size - 1):  # reference: plain NumPy per bucket
        chunk = v[edges[k]:edges[k + 1]]
        finite = chunk[np.isfinite(chunk)]
        if finite.size == 0:
            assert np.isnan(lo[k]) and np.isnan(hi[k])
        else:
            assert lo[k] == finite.min() and hi[k] == finite.max()
            assert mean[k] == pytest.approx(finite.mean(), rel=1e-9, abs=1e-6)


def test_every_catalogue_array_has_its_contacts_drawn() -> None:
    for entry in ELECTRODE_CATALOGUE.values():
        array = entry.build()
        shapes = contact_shapes(array)
        assert [s["name"] for s in shapes] == list(array.contact_names)
        assert all(s["w"] > 0 and s["h"] > 0 for s in shapes)
        # no two contacts overlap
        for i, a in enumerate(shapes):
            for b in shapes[i + 1:]:
                assert (abs(a["x"] - b["x"]) >= (a["w"] + b["w"]) / 2
                        or abs(a["y"] - b["y"]) >= (a["h"] + b["h"]) / 2), (a, b)


def test_thresholds_are_drawn_on_the_output_they_apply_to() -> None:
    meta = {"config": {"control": {"policy": "dual-threshold", "output": "beta_power_db",
                                   "threshold_db": [3.0, 6.0]},
                       "decoder": {"gate_threshold": 0.6}}}
    t = _thresholds(meta, ("beta_power_db",))
    assert t["beta_power_db"] == [("control.threshold_db[0]", 3.0),
                                  ("control.threshold_db[1]", 6.0)]
    assert t["confidence"] == [("decoder.gate_threshold", 0.6)]


def test_session_data_reads_the_records_exactly(bsi_rec: Path) -> None:
    rec = open_recording(bsi_rec)
    d = load_session(rec)
    cyc = np.asarray(rec.cycles)
    assert d.n_cycles == cyc.shape[0]
    assert np.array_equal(d.state, cyc["state"])
    assert np.array_equal(d.amplitude_ma, cyc["amplitude_ma"])
    assert np.array_equal(d.outputs, cyc["outputs"], equal_nan=True)
    assert np.array_equal(d.e2e_us, cyc["e2e_ns"] / 1000.0)
    rec.close()


def test_device_run_report_draws_the_link_over_time(bsi_rec: Path, tmp_path: Path) -> None:
    """A device run's recording: link safety inputs and impedance in events.jsonl, the
    counters over time in link.jsonl (written by LinkLogger, tested below)."""
    d = tmp_path / "dev"
    shutil.copytree(bsi_rec, d)
    meta = json.loads((d / "meta.json").read_text())
    meta["options"]["device"] = "/dev/pts/9"
    meta["summary"]["link"] = {"frames_received": 200, "frames_lost": 2, "battery_pct": 80.0,
                               "naks": {"total": 1}, "link_rtt_us": {"p50": 800.0}}
    meta["counts"]["events"] += 4  # the four lines appended below
    (d / "meta.json").write_text(json.dumps(meta))
    with open(d / "events.jsonl", "a") as f:
        for c in (10, 20, 30):
            f.write(json.dumps({"cycle": c, "time_ns": c, "kind": "link_input",
                                "input": "impedance", "payload": [1000.0] * 15 + [1e6]}) + "\n")
        f.write(json.dumps({"cycle": 25, "time_ns": 25, "kind": "link_input",
                            "input": "heartbeat_lost", "payload": "no heartbeat"}) + "\n")
    with open(d / "link.jsonl", "w") as f:
        for i in range(5):
            f.write(json.dumps({"t_s": i + 1.0, "cycle": 10 * i, "frames_received": 60 * i,
                                "frames_lost": i // 2, "crc_errors": i // 3, "naks": 0,
                                "rtt_us": 800.0 + i, "battery_pct": 80.0 - i / 10}) + "\n")
        f.write('{"t_s": 6.0, "cyc')  # a partial last line (killed writer): skipped
    png = tmp_path / "png"
    result = build_report(d, tmp_path / "dev.html", png_dir=png)
    assert "device" in result["figures"]
    assert (png / "device.png").read_bytes().startswith(b"\x89PNG")
    assert "input:heartbeat_lost" in (tmp_path / "dev.html").read_text()


def test_link_logger_writes_counters_over_time(tmp_path: Path) -> None:
    from types import SimpleNamespace

    from neuroloop.monitor.link_log import LinkLogger, read_link_log
    from neuroloop.stats import LatencyLog

    rtt = LatencyLog(64)
    counters = {"data_frames": 0, "frames_lost": 0, "samples_lost": 0, "naks": 0,
                "acks_missing": 0, "reconnects": 0, "heartbeats_missed": 0}
    proto = SimpleNamespace(parser=SimpleNamespace(crc_errors=0, malformed=0, auth_failures=0),
                            rtt=rtt, status=SimpleNamespace(battery_pct=77.5))
    link = SimpleNamespace(protocol=proto, counters=counters)
    logger = LinkLogger(link, tmp_path, interval_s=0.05)
    logger.on_start({})
    for k in range(5):
        counters["data_frames"] += 10
        counters["frames_lost"] += k % 2
        rtt.add(700_000 + 1000 * k)
        logger.on_cycle(np.zeros(1))
        time.sleep(0.06)
    logger.on_stop({})
    rows = read_link_log(tmp_path)
    assert len(rows) >= 3
    assert rows[-1]["frames_received"] == 50 and rows[-1]["frames_lost"] == 2
    assert rows[-1]["cycle"] == 5 and rows[-1]["battery_pct"] == 77.5
    assert all(r["rtt_us"] is None or 700.0 <= r["rtt_us"] <= 704.0 for r in rows)
    assert [r["frames_received"] for r in rows] == sorted(r["frames_received"] for r in rows)


def test_programs_rebuilt_from_the_stimulation_table_alone_match_the_full_parse() -> None:
    """A recording from a newer neuroloop (config keys this one does not know) still shows
    its programs: the [stimulation] table alone gives the same programs."""
    from neuroloop.config import load_scenario
    from neuroloop.monitor.figures import _programs_from_table
    from neuroloop.stimulation.programs import build_program_set

    scenario = load_scenario("bsi")
    full = build_program_set(scenario.stimulation, scenario.intention_names)
    alone = _programs_from_table(scenario.raw["stimulation"], scenario.intention_names)
    assert alone is not None and alone.array.name == full.array.name
    for a, b in zip(alone, full, strict=True):
        assert a.program_id == b.program_id and a.name == b.name
        assert np.array_equal(a.cathode_fraction, b.cathode_fraction)
        assert np.array_equal(a.anode_fraction, b.anode_fraction)
        assert (a.amplitude_min_ma, a.amplitude_max_ma) == (b.amplitude_min_ma,
                                                            b.amplitude_max_ma)
    assert _programs_from_table({"array": "no-such-array"}, scenario.intention_names) is None
