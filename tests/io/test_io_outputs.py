"""Recording format 2: the decoder's continuous outputs in every cycle record.

A recording made now stores ``outputs`` (named in ``meta.json``) and replays ``--check``
identical; an edited output is a divergence that names the output; a bad ``sizes.n_outputs``
or ``outputs`` entry is a one-line error; a format-1 recording (no ``outputs``) still reads
and compares, with ``outputs`` reported as not compared.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from neuroloop.cli import main as cli_main
from neuroloop.decoders.lda import LDADecoder
from neuroloop.errors import RecordingError
from neuroloop.io import open_recording
from neuroloop.io.compare import DEFAULT_IGNORE, compare_cycles
from neuroloop.io.format import CYCLES_FILE, FORMAT_VERSION, META_FILE, cycle_layout
from neuroloop.records import cycle_dtype

CLI = [sys.executable, "-c", "import sys; from neuroloop.cli import main; sys.exit(main())"]
FIXTURE = Path(__file__).resolve().parent.parent / "fixtures" / "recording-0.1.0-bsi"
LDA_OUTPUTS = tuple(name for name, _ in LDADecoder.outputs)


def neuroloop(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*CLI, *args], capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def recorded(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 4 s bsi session recorded now (format 2), on the simulated clock."""
    d = tmp_path_factory.mktemp("outputs") / "bsi"
    r = neuroloop("run", "--scenario", "bsi", "--duration", "4", "--fast", "--record", str(d),
                  "--json")
    assert r.returncode == 0, r.stderr
    return d


def _copy(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst


def _edit_meta(directory: Path, edit: Any) -> None:
    meta = json.loads((directory / META_FILE).read_text())
    edit(meta)
    (directory / META_FILE).write_text(json.dumps(meta))


def _cli(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = cli_main(argv)
    out, err = capsys.readouterr()
    return code, out, err


def test_format_2_stores_named_outputs_and_replays_identically(recorded):
    rec = open_recording(recorded)
    assert rec.format_version == FORMAT_VERSION == 2
    assert rec.meta["sizes"]["n_outputs"] == rec.n_outputs == len(LDA_OUTPUTS) == 3
    assert rec.output_names == LDA_OUTPUTS == tuple(rec.meta["outputs"]["names"])
    assert rec.output_units == ("1", "1", "1") == tuple(rec.meta["outputs"]["units"])
    assert rec.cycle_dtype == cycle_dtype(rec.n_features, rec.n_states, rec.n_contacts, 3)
    assert ["outputs", "<f8", [3]] in rec.meta["cycle_dtype"]
    outputs = np.asarray(rec.cycles["outputs"])
    valid = np.asarray(rec.cycles["valid"]) == 1
    assert valid.sum() > 20
    assert np.isfinite(outputs[valid]).all()
    # LDA's first output is its confidence (the probability of the gated state)
    np.testing.assert_array_equal(outputs[valid, 0], np.asarray(rec.cycles["confidence"])[valid])
    r = neuroloop("replay", str(recorded), "--check", "--json")
    assert r.returncode == 0, r.stderr
    check = json.loads(r.stdout)["check"]
    assert check["identical"] is True
    assert "outputs" not in check["cycles"]["ignored"]


def test_an_edited_output_is_a_divergence_naming_the_output(recorded, tmp_path, capsys):
    d = _copy(recorded, tmp_path / "edited")
    rec = open_recording(d)
    k = int(np.flatnonzero(np.asarray(rec.cycles["valid"]) == 1)[3])
    recorded_value = float(rec.cycles["outputs"][k][1])
    dt = rec.cycle_dtype
    offset = k * dt.itemsize + dt.fields["outputs"][1] + 1 * 8  # outputs[1], state_margin
    rec.close()
    with open(d / CYCLES_FILE, "r+b") as fh:
        fh.seek(offset)
        fh.write(np.array([recorded_value + 0.125], dtype="<f8").tobytes())

    code, out, _ = _cli(["replay", str(d), "--check", "--json"], capsys)
    assert code == 1
    cycles = json.loads(out)["check"]["cycles"]
    assert cycles["first_divergent_cycle"] == k
    assert cycles["field"] == "outputs" and cycles["index"] == [1]
    assert cycles["field_label"] == "outputs[state_margin]"
    assert cycles["recorded_value"] == recorded_value + 0.125
    assert cycles["replayed_value"] == recorded_value
    assert cycles["count_by_field"] == {"outputs": 1}

    code, out, err = _cli(["replay", str(d), "--check"], capsys)
    assert code == 1 and "check: DIVERGED" in out
    assert "field:    outputs[state_margin]" in err


@pytest.mark.parametrize("value", [2, 4, 0, -1, 1.5, "3", None, "missing"])
def test_bad_sizes_n_outputs_is_a_one_line_error(recorded, tmp_path, capsys, value):
    d = _copy(recorded, tmp_path / "bad")

    def edit(meta: dict[str, Any]) -> None:
        if value == "missing":
            del meta["sizes"]["n_outputs"]
        else:
            meta["sizes"]["n_outputs"] = value

    _edit_meta(d, edit)
    with pytest.raises(RecordingError, match="n_outputs") as exc:
        open_recording(d)
    assert "\n" not in str(exc.value)
    code, _, err = _cli(["replay", str(d), "--check"], capsys)
    assert code == 2
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert "n_outputs" in err


def test_a_size_mismatch_without_a_recorded_layout_is_caught_against_the_file(recorded,
                                                                              tmp_path):
    """``cycle_dtype`` may be absent (the layout then follows from the sizes): a wrong
    ``n_outputs`` then disagrees with the size of ``cycles.rec``."""
    for n in (2, 4):
        d = _copy(recorded, tmp_path / f"n{n}")

        def edit(meta: dict[str, Any], n: int = n) -> None:
            del meta["cycle_dtype"]
            meta["sizes"]["n_outputs"] = n
            meta["outputs"] = {"names": [f"o{i}" for i in range(n)], "units": ["1"] * n}

        _edit_meta(d, edit)
        with pytest.raises(RecordingError, match=r"cycles\.rec") as exc:
            open_recording(d)
        assert "\n" not in str(exc.value)


@pytest.mark.parametrize("edit", [
    lambda m: m.pop("outputs"),
    lambda m: m.update(outputs=[]),
    lambda m: m["outputs"].pop("names"),
    lambda m: m["outputs"].update(names=["confidence", "state_margin"]),
    lambda m: m["outputs"].update(names=["a", "a", "b"]),
    lambda m: m["outputs"].update(names=["a", "", "b"]),
    lambda m: m["outputs"].update(units=["1", 1, "1"]),
    lambda m: m["outputs"].update(units="1"),
], ids=["missing", "not-object", "no-names", "too-few-names", "repeated-name", "empty-name",
        "unit-not-string", "units-not-list"])
def test_bad_outputs_names_or_units_are_refused(recorded, tmp_path, edit):
    d = _copy(recorded, tmp_path / "bad")
    _edit_meta(d, edit)
    with pytest.raises(RecordingError, match="outputs") as exc:
        open_recording(d)
    assert "\n" not in str(exc.value)


def test_a_format_2_recording_relabelled_format_1_is_refused(recorded, tmp_path):
    d = _copy(recorded, tmp_path / "relabelled")
    _edit_meta(d, lambda m: m.update(format_version=1))
    with pytest.raises(RecordingError, match="layout of format version 1"):
        open_recording(d)


def test_format_1_recording_reads_without_outputs():
    rec = open_recording(FIXTURE)
    assert rec.format_version == 1
    assert rec.n_outputs == 0 and rec.output_names == () and rec.output_units == ()
    assert "outputs" not in (rec.cycle_dtype.names or ())
    assert rec.cycle_dtype == cycle_layout(1, 512, 7, 16)
    assert rec.cycle_dtype.itemsize == 4517
    # compared with format-2 rows (what a replay now produces): outputs are not compared,
    # and said so; every field both have still is
    recorded = np.asarray(rec.cycles)
    replayed = np.zeros(recorded.shape[0], dtype=cycle_dtype(512, 7, 16, 3))
    for name in recorded.dtype.names or ():
        replayed[name] = recorded[name]
    replayed["outputs"] = 0.5
    diff = compare_cycles(recorded, replayed)
    assert diff.identical and diff.ignored == (*DEFAULT_IGNORE, "outputs")
    replayed["confidence"][4] += 1.0
    diff = compare_cycles(recorded, replayed)
    assert not diff.identical and diff.field == "confidence" and diff.first_divergent_cycle == 4
    rec.close()


def test_compare_cycles_names_outputs():
    a = np.zeros(5, dtype=cycle_dtype(4, 3, 2, 2))
    b = a.copy()
    b["outputs"][3, 1] = 2.0
    diff = compare_cycles(a, b, output_names=("beta_power_db", "detector_score"))
    assert diff.field_label == "outputs[detector_score]" and diff.index == (1,)
    assert "field:    outputs[detector_score]" in diff.format()
    assert compare_cycles(a, b).field_label == "outputs[1]"  # no names given: the index


def test_zero_outputs_is_a_zero_width_field():
    dt = cycle_dtype(4, 3, 2)
    assert dt == cycle_dtype(4, 3, 2, 0)
    assert dt.fields is not None and dt.fields["outputs"][0].shape == (0,)
    assert dt.itemsize == cycle_layout(1, 4, 3, 2).itemsize
    a = np.zeros(3, dtype=dt)
    b = a.copy()
    assert compare_cycles(a, b).identical
