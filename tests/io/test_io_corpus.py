"""CI regression replay of a corpus, end to end: recordings made here (bsi, eeg-bci, an
``--inject`` run, a device run through firmware-sim with link faults), checked in parallel by
``neuroloop replay DIR... --check`` with JUnit XML; a changed decoder weight fails with the
expected content, ``--accept`` then passes; a 1e-13 perturbation passes the default tolerances
and fails exact ones; a corrupt recording gives exit 2 without stopping the others."""

from __future__ import annotations

import contextlib
import io
import json
import os
import select
import shutil
import signal
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from neuroloop.cli import main
from neuroloop.io import open_recording
from neuroloop.io.baseline import BASELINE_FILE, load_baseline
from neuroloop.io.check import recording_bytes
from neuroloop.provenance import sha256_file

CLI = [sys.executable, "-m", "neuroloop.cli"]


def inproc(*args: str) -> tuple[int, str, str]:
    """``neuroloop ARGS`` in this process (cheap: no interpreter start, kernels loaded);
    the signal handlers a run installs are put back."""
    handlers = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    out, err = io.StringIO(), io.StringIO()
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                code = main(list(args))
            except SystemExit as exc:  # argparse refusing an option
                code = int(exc.code or 0)
    finally:
        for s, h in handlers.items():
            signal.signal(s, h)
    return code, out.getvalue(), err.getvalue()


def _firmware(tmp: Path, *args: str) -> tuple[subprocess.Popen[str], str, Path]:
    tmp.mkdir(parents=True, exist_ok=True)
    keys = tmp / "keys.toml"
    proc = subprocess.Popen([sys.executable, "-m", "firmware_sim", "--pty", "--key-file",
                             str(keys), "--duration", "60", "--no-realtime", *args],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONUNBUFFERED": "1"})
    deadline = time.monotonic() + 60
    line = ""
    while time.monotonic() < deadline and proc.poll() is None:
        ready, _, _ = select.select([proc.stdout], [], [], 0.5)
        if ready:
            line = proc.stdout.readline()  # type: ignore[union-attr]
            break
    if not line.startswith("firmware-sim: listening on "):
        proc.kill()
        raise RuntimeError(f"firmware-sim did not start: {line!r}")
    return proc, line.split()[-1], keys


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Iterator[dict[str, Path]]:
    """Four short recordings in ``corpus/`` (one in a subdirectory) and the decoders."""
    tmp = tmp_path_factory.mktemp("corpus")
    root = tmp / "corpus"
    dec = {"bsi": tmp / "bsi.npz", "eeg": tmp / "eeg.npz"}
    for preset, key in (("bsi", "bsi"), ("eeg-bci", "eeg")):
        code, _, err = inproc("train", "--scenario", preset, "--duration", "30",
                              "--out", str(dec[key]))
        assert code == 0, err
    runs = {"bsi-1": ("bsi", "bsi", ["--seed", "1"]),
            "eeg-1": ("eeg-bci", "eeg", ["--seed", "2"]),
            "bsi-inject": ("bsi", "bsi", ["--seed", "3", "--inject", "decoder-nan@1.0:0.4",
                                          "--inject", "source-stall@2.0:0.3"])}
    paths = {}
    for name, (preset, key, extra) in runs.items():
        paths[name] = root / name
        code, _, err = inproc("run", "--scenario", preset, "--fast", "--duration", "3.5",
                              "--decoder", str(dec[key]), "--record", str(paths[name]),
                              "--json", *extra)
        assert code == 0, err
    # a device run over a pty with link faults: dropped frames, flipped bits, a broken lead.
    # It runs in real time: on a machine loaded enough to starve it, try once more.
    paths["device"] = root / "device" / "bsi-faults"
    problems = []
    for attempt in range(2):
        shutil.rmtree(paths["device"], ignore_errors=True)
        proc, address, keys = _firmware(tmp / f"fw{attempt}", "--drop-frames", "0.1",
                                        "--corrupt-bytes", "0.0002", "--open-contact", "5@1.0",
                                        "--seed", "3")
        try:
            code, out, err = inproc("run", "--scenario", "bsi", "--device", address,
                                    "--key-file", str(keys), "--duration", "2.5", "--no-rt",
                                    "--decoder", str(dec["bsi"]), "--record",
                                    str(paths["device"]), "--json")
        finally:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
        link = json.loads(out)["link"] if code == 0 and out.strip() else {}
        if code == 0 and (link.get("frames_lost", 0) > 0 or link.get("crc_errors", 0) > 0):
            break  # the faults happened and the run completed
        problems.append(f"exit {code}: {err.strip()[-300:]} link {link}")
    else:
        raise AssertionError(f"the device run failed twice: {problems}")
    yield {"root": root, "tmp": tmp, **paths, "bsi.npz": dec["bsi"], "eeg.npz": dec["eeg"]}


def _lines(out: str) -> dict[str, str]:
    """Per-recording lines by recording path."""
    found = {}
    for line in out.splitlines():
        parts = line.split()
        if parts and parts[0] in ("ok", "DIVERGED", "ERROR", "accepted"):
            found[parts[1].rstrip(":")] = line
    return found


def _copy(corpus: dict[str, Path], dest: Path, *names: str) -> list[Path]:
    out = []
    for n in names:
        shutil.copytree(corpus[n], dest / n)
        out.append(dest / n)
    return out


def test_the_whole_corpus_is_identical_in_parallel_with_junit(corpus, tmp_path) -> None:
    """The real command line in its own process, two workers, JUnit XML for the CI."""
    junit = tmp_path / "replay.xml"
    r = subprocess.run([*CLI, "replay", str(corpus["root"]), "--check", "--jobs", "2",
                        "--junit", str(junit)], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    lines = _lines(r.stdout)
    names = [str(corpus[n]) for n in ("bsi-1", "bsi-inject", "device", "eeg-1")]
    assert sorted(lines) == sorted(names)
    assert all(line.startswith("ok") and "vs the recording" in line for line in lines.values())
    total = r.stdout.strip().splitlines()[-1]
    assert total.startswith("total: 4 recordings: 4 identical") and "on 2 workers" in total
    suite = ET.parse(junit).getroot().find("testsuite")
    assert suite is not None
    assert (suite.get("tests"), suite.get("failures"), suite.get("errors")) == ("4", "0", "0")
    assert sorted(c.get("name") for c in suite.iter("testcase")) == sorted(names)
    # the inject run and the device run really hold what makes them interesting
    inject = open_recording(corpus["bsi-inject"])
    assert inject.meta["options"]["inject"] and (inject.cycles["flags"] & 16).any()
    device = open_recording(corpus["device"])
    assert device.meta["options"].get("device")
    assert any(e["kind"] == "link_input" for e in device.events())


def _changed_decoder(src: Path, dest: Path, *, add: float = 0.0, scale: float = 1.0) -> Path:
    with np.load(src) as z:
        arrays = {k: z[k].copy() for k in z.files}
    arrays["a_coef"][0, 17] += add  # a weight of "rest", the class most cycles decide
    arrays["a_coef"] *= scale
    with open(dest, "wb") as fh:
        np.savez(fh, **arrays)
    return dest


def test_a_changed_decoder_weight_fails_then_accept_passes(corpus, tmp_path) -> None:
    bsi = _copy(corpus, tmp_path / "c", "bsi-1", "bsi-inject")
    changed = _changed_decoder(corpus["bsi.npz"], tmp_path / "changed.npz", add=20.0)
    junit = tmp_path / "j.xml"
    code, out, err = inproc("replay", *map(str, bsi), "--check", "--decoder", str(changed),
                            "--junit", str(junit), "--jobs", "1")
    assert code == 1, out + err
    code_j, out_j, _ = inproc("replay", *map(str, bsi), "--check", "--decoder", str(changed),
                              "--json", "--jobs", "1")
    assert code_j == 1
    report = {r["path"]: r for r in json.loads(out_j)["recordings"]}
    suite = ET.parse(junit).getroot().find("testsuite")
    assert suite is not None and (suite.get("failures"), suite.get("errors")) == ("2", "0")
    for case in suite.iter("testcase"):
        rec = open_recording(case.get("name"))
        c = report[case.get("name")]["check"]["cycles"]
        assert report[case.get("name")]["status"] == "diverged"
        # the first divergent cycle is the first decoded one, and both values are the real ones
        k = c["first_divergent_cycle"]
        assert k == int(np.flatnonzero(rec.cycles["valid"] == 1)[0]) or c["field"] != "outputs"
        recorded = rec.cycles[c["field"]][k]
        if c["index"]:
            recorded = recorded[tuple(c["index"])]
        assert c["recorded_value"] == recorded.item() != c["replayed_value"]
        failure = case.find("failure")
        assert failure is not None
        message = failure.get("message", "")
        assert f"cycle {k}: {c['field_label']} {c['recorded_value']!r} -> " in message
        assert repr(c["replayed_value"]) in message
        assert message.startswith("diverged from the recording at cycle")
        for name, count in c["count_by_field"].items():  # per-field counts, in both places
            assert f"{name} {count}" in message
            assert f"{name}" in (failure.text or "") and str(count) in (failure.text or "")
        assert "first divergent cycle" in (failure.text or "")
    assert "DIVERGED" in out and "first divergent cycle" in err  # the detail goes to stderr

    # accept the change (reviewed): baselines beside each recording, small, with provenance
    code, out, err = inproc("replay", *map(str, bsi), "--accept", "--decoder", str(changed),
                            "--jobs", "1")
    assert code == 0, out + err
    for d in bsi:
        b = load_baseline(d / BASELINE_FILE, recording=open_recording(d))
        assert b.meta["decoder"]["sha256"] == sha256_file(changed)
        assert b.meta["code_version"]
        assert (d / BASELINE_FILE).stat().st_size <= 0.05 * recording_bytes(d)
    assert "accepted" in out and "% of the recording" in out
    # from now on the check compares with the baseline, and says so
    code, out, err = inproc("replay", *map(str, bsi), "--check", "--decoder", str(changed),
                            "--jobs", "1")
    assert code == 0, out + err
    for d in bsi:
        line = _lines(out)[str(d)]
        assert line.startswith("ok") and f"vs baseline {d / BASELINE_FILE}" in line
        assert sha256_file(changed)[:12] in line
    # the old decoder now differs from the accepted decisions; against the recording it does not
    code, out, err = inproc("replay", *map(str, bsi), "--check", "--explain", "--jobs", "1")
    assert code == 1 and "changes from baseline" in err and "to this replay" in err
    code, out, err = inproc("replay", *map(str, bsi), "--check", "--against", "recording",
                            "--jobs", "1")
    assert code == 0, out + err


def test_diff_baseline_summarises_an_accepted_change(corpus, tmp_path) -> None:
    (d,) = _copy(corpus, tmp_path / "c", "bsi-inject")
    code, _, err = inproc("replay", str(d), "--accept")
    assert code == 0, err
    shutil.copy(d / BASELINE_FILE, tmp_path / "before.npz")
    nudged = _changed_decoder(corpus["bsi.npz"], tmp_path / "n.npz", add=10.0)
    code, _, err = inproc("replay", str(d), "--accept", "--decoder", str(nudged))
    assert code == 0, err
    code, out, _ = inproc("diff-baseline", str(tmp_path / "before.npz"), str(d))
    assert code == 1 and "changes from baseline" in out
    code_j, out_j, _ = inproc("diff-baseline", str(tmp_path / "before.npz"), str(d), "--json")
    summary = json.loads(out_j)
    assert code_j == 1 and not summary["identical"]
    assert summary["other"] or summary["states"]["cycles_changed"]
    code, out, _ = inproc("diff-baseline", str(d), str(d))
    assert code == 0 and "no change" in out
    # baselines of two different recordings are not compared
    (e,) = _copy(corpus, tmp_path / "e", "bsi-1")
    assert inproc("replay", str(e), "--accept")[0] == 0
    code, _, err = inproc("diff-baseline", str(d), str(e))
    assert code == 2 and "different recordings" in err and len(err.splitlines()) == 1


def test_a_1e13_perturbation_passes_default_tolerances_and_fails_exact(corpus,
                                                                      tmp_path) -> None:
    tiny = _changed_decoder(corpus["bsi.npz"], tmp_path / "tiny.npz", scale=1 + 1e-13)
    dirs = [str(corpus["bsi-1"]), str(corpus["bsi-inject"])]
    code, out, err = inproc("replay", *dirs, "--check", "--decoder", str(tiny), "--jobs", "1")
    assert code == 0, out + err
    assert "tolerances default" in out
    strict = tmp_path / "strict.toml"
    strict.write_text("[fields]\n" + "".join(
        f'{f} = "exact"\n' for f in ("confidence", "probabilities", "outputs", "features",
                                     "request_amplitude_ma", "amplitude_ma")))
    for spec in ("exact", str(strict)):
        code, out, err = inproc("replay", *dirs, "--check", "--decoder", str(tiny),
                                "--tolerances", spec, "--jobs", "1")
        assert code == 1, out + err
        assert all(line.startswith("DIVERGED") for line in _lines(out).values())
        assert "probabilities" in out


def test_a_corrupt_recording_is_named_exit_2_and_the_others_go_on(corpus, tmp_path) -> None:
    root = tmp_path / "c"
    good = _copy(corpus, root, "bsi-1", "eeg-1")
    broken = root / "broken"
    shutil.copytree(corpus["bsi-1"], broken)
    (broken / "meta.json").write_text('{"format": "neuroloop-session", "format_ver')
    cut = root / "cut-index"
    shutil.copytree(corpus["bsi-1"], cut)
    index = (cut / "samples_index.i64").read_bytes()
    (cut / "samples_index.i64").write_bytes(index[:24] + b"\xff" * 24 + index[48:])
    junit = tmp_path / "j.xml"
    code, out, err = inproc("replay", str(root), "--check", "--junit", str(junit), "--jobs", "2")
    assert code == 2, out + err
    lines = _lines(out)
    assert lines[str(broken)].startswith(f"ERROR     {broken}: ") and "not valid JSON" in \
        lines[str(broken)]
    assert lines[str(cut)].startswith("ERROR") and "samples_index.i64" in lines[str(cut)]
    for d in good:
        assert lines[str(d)].startswith("ok")
    assert "2 identical, 2 could not be replayed" in out
    suite = ET.parse(junit).getroot().find("testsuite")
    assert suite is not None and (suite.get("errors"), suite.get("failures")) == ("2", "0")
    assert "Traceback" not in out + err


def test_bad_input_is_one_line_and_exit_2(corpus, tmp_path) -> None:
    rec = str(corpus["bsi-1"])
    (tmp_path / "file.txt").write_text("x")
    (tmp_path / "empty").mkdir()
    unknown = tmp_path / "unknown.toml"
    unknown.write_text('[fields]\nstates = "exact"\n')
    negative = tmp_path / "negative.toml"
    negative.write_text("[fields]\namplitude_ma = { rel = -1e-9, abs = 0.0 }\n")
    cases = [
        (["replay", str(tmp_path / "file.txt"), rec, "--check"], "is not a recording"),
        (["replay", str(tmp_path / "empty"), "--check"], "holds none"),
        (["replay", rec, "--check", "--tolerances", str(unknown)], "unknown field 'states'"),
        (["replay", rec, rec, "--check", "--tolerances", str(negative)], "is negative"),
        (["replay", rec, "--check", "--junit", str(tmp_path / "no" / "dir" / "j.xml")],
         "does not exist"),
        (["replay", rec, "--junit", str(tmp_path / "j.xml")], "need --check"),
        (["replay", rec, rec, "--jobs", "0", "--check"], "--jobs"),
    ]
    for argv, words in cases:
        code, out, err = inproc(*argv)
        assert code == 2, (argv, out, err)
        assert len(err.strip().splitlines()) == 1 and words in err, (argv, err)
        assert "Traceback" not in err
    # baselines from a newer format or another recording: that recording is an error, named
    root = tmp_path / "c"
    mine, other = _copy(corpus, root, "bsi-1", "bsi-inject")
    assert inproc("replay", str(mine), "--accept")[0] == 0
    shutil.copy(mine / BASELINE_FILE, other / BASELINE_FILE)  # another recording's baseline
    b = load_baseline(mine / BASELINE_FILE)
    b.meta["format_version"] = 99
    b.save(mine / BASELINE_FILE)
    code, out, err = inproc("replay", str(root), "--check", "--jobs", "1")
    assert code == 2
    lines = _lines(out)
    assert "baseline format version 99" in lines[str(mine)] and "upgrade" in lines[str(mine)]
    assert "belongs to another recording" in lines[str(other)]
    assert "--accept" in lines[str(other)]
    # one recording on its own: the same one line on stderr
    code, out, err = inproc("replay", str(other), "--check")
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert "belongs to another recording" in err


@pytest.mark.slow
def test_target_20_one_minute_recordings_on_two_workers(tmp_path) -> None:
    """The issue's targets, as behaviour (the times are printed for the closing note, never
    asserted): 20 one-minute bsi recordings checked on 2 workers, all identical; each accepted
    baseline at most 5 % of its recording."""
    r = subprocess.run([sys.executable, str(Path(__file__).resolve().parents[2] / "examples"
                                            / "ci" / "make_corpus.py"), str(tmp_path), "20"],
                       capture_output=True, text=True, timeout=3600)
    assert r.returncode == 0, r.stderr[-2000:]
    root = tmp_path / "corpus"
    r = subprocess.run([*CLI, "replay", str(root), "--check", "--jobs", "2", "--json"],
                       capture_output=True, text=True, timeout=1200)
    assert r.returncode == 0, r.stderr[-2000:]
    total = json.loads(r.stdout)["total"]
    assert total["recordings"] == total["identical"] == 20 and total["workers"] == 2
    print(f"\n20 one-minute recordings: {total['wall_s']} s wall, {total['cpu_s']} s CPU "
          f"on {total['workers']} workers")
    r = subprocess.run([*CLI, "replay", str(root), "--accept", "--jobs", "2", "--json"],
                       capture_output=True, text=True, timeout=1200)
    assert r.returncode == 0, r.stderr[-2000:]
    ratios = [x["baseline_bytes"] / x["recording_bytes"] for x in json.loads(r.stdout)["recordings"]]
    assert len(ratios) == 20 and max(ratios) <= 0.05
    print(f"baseline / recording: {100 * min(ratios):.2f} .. {100 * max(ratios):.2f} %")
