"""Closed-loop compare through replay, and the evaluate/compare command lines."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from neuroloop.evaluation import compare
from neuroloop.io.reader import open_recording


@pytest.fixture(scope="module")
def recording(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("rec") / "eeg"
    subprocess.run([sys.executable, "-m", "neuroloop.cli", "run", "--scenario", "eeg-bci", "--fast",
                    "--duration", "20", "--record", str(d), "--json"], check=True,
                   capture_output=True)
    return d


def test_compare_with_the_recorded_decoder_reproduces_the_recording(recording: Path,
                                                                    tmp_path: Path) -> None:
    png = tmp_path / "cmp.png"
    rows = compare([str(recording / "decoder.npz"), "csp-lda"], [str(recording)],
                   duration_s=40, figure=png, n_permutations=20)
    assert [r["kind"] for r in rows] == ["lda", "csp-lda"]
    with open_recording(recording) as rec:
        cyc = rec.cycles
        y = cyc["true_state"].astype(int)
        pred = np.where(cyc["valid"] > 0, cyc["state"].astype(int), -1)
        lab = y >= 0
        assert rows[0]["accuracy"] == pytest.approx(float(np.mean(y[lab] == pred[lab])),
                                                    abs=1e-4)
        on_rest = np.any(cyc["amplitude_ma"] != 0, axis=1)[y == 0].mean()
    assert rows[0]["stim_on_rest_fraction"] == pytest.approx(on_rest, abs=1e-4)
    for r in rows:
        assert r["cycles"] == 200 and isinstance(r["interlock_events"], int)
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "neuroloop.cli", *args], capture_output=True,
                          text=True)


def test_cli_evaluate_json_csv_and_bad_input(recording: Path, tmp_path: Path) -> None:
    csv = tmp_path / "rows.csv"
    r = _cli("evaluate", "--scenario", "eeg-bci", "--decoder", "lda", "--test", str(recording),
             "--folds", "2", "--gap", "1", "--permutations", "20", "--csv", str(csv), "--json")
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["rows"][0]["decoder"] == "lda" and out["rows"][0]["hops"] > 100
    assert csv.read_text().splitlines()[0].startswith("decoder,kind,dataset")
    for args, text in [  # (more bad input is covered in-process in test_evaluate.py)
        (("--decoder", "lda", "--test", str(recording), "--folds", "60"), "too little data"),
        (("--decoder", "lda", "--test", str(recording), "--gap", "inf"), "--gap"),
    ]:
        r = _cli("evaluate", "--scenario", "eeg-bci", *args)
        assert r.returncode == 2 and text in r.stderr, (args, r.stderr)
        assert r.stderr.count("\n") == 1 and "Traceback" not in r.stderr
    junk = tmp_path / "junk.npz"
    junk.write_bytes(b"\x00\x01 binary")
    r = _cli("compare", "--decoder", str(junk), "--recording", str(recording))
    assert r.returncode == 2 and "not a neuroloop decoder file" in r.stderr
