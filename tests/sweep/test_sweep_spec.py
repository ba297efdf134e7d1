"""Sweep specs: expansion, validation before scheduling, content hashes, and the command's
bad-input behaviour (one line, exit 2)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from neuroloop.cli import main
from neuroloop.errors import ConfigError
from neuroloop.sweep.cells import cell_hash
from neuroloop.sweep.spec import load_spec

HEAD = """
[sweep]
name = "t"
[fixed]
scenario = "small.toml"
"""


def spec(d: Path, text: str, name: str = "spec.toml") -> Path:
    p = d / name
    p.write_text(text)
    return p


def test_grid_and_list_expand_in_order(sweep_dir: Path) -> None:
    p = spec(sweep_dir, HEAD + """
duration_s = 5
[grid]
seed = [1, 2, 3]
"source.snr" = [0.5, 2.0]
[[cells]]
seed = 9
"control.confidence_threshold" = 0.7
""")
    s = load_spec(p)
    assert len(s.cells) == 7
    assert [(c.params["seed"], c.params.get("source.snr")) for c in s.cells] == [
        (1, 0.5), (1, 2.0), (2, 0.5), (2, 2.0), (3, 0.5), (3, 2.0), (9, None)]
    assert all(c.mode == "run" and c.params["duration_s"] == 5 for c in s.cells)
    assert s.columns == ["scenario", "duration_s", "seed", "source.snr",
                         "control.confidence_threshold"]
    assert s.varying == ["seed", "source.snr", "control.confidence_threshold"]
    assert (s.figure_item, s.figure_group) == ("seed", "source.snr")  # spec order
    # the scenario file is an input: resolved to an absolute path, digested
    assert Path(s.cells[0].resolved["scenario"]).is_absolute()
    assert set(s.cells[0].inputs) == {"scenario"}
    assert len({c.cell_id for c in s.cells}) == 7


def test_replay_cells_and_modes_mix(sweep_dir: Path, recording: Path) -> None:
    p = spec(sweep_dir, """
[grid]
mode = ["run"]
seed = [1]
[[cells]]
mode = "replay"
recording = "rec1"
""")
    s = load_spec(p)
    assert [c.mode for c in s.cells] == ["run", "replay"]
    assert s.cells[1].resolved["recording"] == str(recording.resolve())
    assert "mode" in s.varying


@pytest.mark.parametrize(("body", "needle"), [
    ("[fixed]\nseed = 1\n[grid]\nbogus = [1, 2]\n", "unknown key 'bogus' for mode run"),
    ("[fixed]\nseed = 1\n[grid]\n\"dsp.nope\" = [1]\n", "unknown key dsp.nope"),
    ("[fixed]\nseed = 1\n[grid]\n\"nosection.x\" = [1]\n", "SECTION one of"),
    ("[grid]\nseed = []\n", "grid.seed is empty"),
    ("[sweep]\nname = \"x\"\n", "the sweep has no cells"),
    ("[sweep]\ntimeout = 3\n[grid]\nseed = [1]\n", "unknown key sweep.timeout"),
    ("[grids]\nseed = [1]\n", "unknown table or key 'grids'"),
    ("[grid]\nseed = [1, 1]\n", "appears twice"),
    ("[grid]\nseed = [-1]\n", "seed = -1 is negative"),
    ("[grid]\nseed = [1]\n\"source.snr\" = [nan]\n", "source.snr = nan is not a number"),
    ("[grid]\nseed = [1]\nduration_s = [1e308]\n", "duration_s = 1e+308 is too large"),
    ("[grid]\nseed = [1]\nduration_s = [90000]\n", "too long for --fast"),
    ("[grid]\nmode = [\"evaluate-nope\"]\n", "is not a sweep mode"),
    ("[fixed]\nmode = \"replay\"\n[grid]\nseed = [1]\n", "unknown key 'seed' for mode replay"),
    ("[fixed]\nmode = \"replay\"\n[grid]\ndecoder = [\"x.npz\"]\n", "needs 'recording'"),
    ("[fixed]\nseed = 1\n[grid]\nseed = [2]\n", "both in [fixed] and an axis"),
    ("[grid]\nseed = [1]\nsource = [\"socket://h:1\"]\n", "is a device"),
    ("[grid]\nseed = [1]\n[[cells]]\nseed = 1\n", "is the same cell as"),
    ("[grid]\nseed = [1]\n[sweep]\ntime_limit_s = inf\n", "sweep.time_limit_s = inf"),
    ("[grid]\nseed = 1\n", "grid.seed = 1 must be a list"),
    ("[grid\n", "is not valid TOML"),
])
def test_bad_specs_are_one_line_naming_the_key(sweep_dir: Path, body: str,
                                               needle: str) -> None:
    p = spec(sweep_dir, body, "bad.toml")
    with pytest.raises(ConfigError) as e:
        load_spec(p)
    assert needle in str(e.value)
    assert "\n" not in str(e.value) and str(p) in str(e.value)


def test_missing_inputs_are_all_listed_before_scheduling(sweep_dir: Path) -> None:
    p = spec(sweep_dir, """
[fixed]
mode = "replay"
[grid]
recording = ["nope1", "nope2"]
decoder = ["gone.npz"]
[[cells]]
mode = "run"
source = "edf://missing.edf?labels=T0:rest"
""", "missing.toml")
    with pytest.raises(ConfigError) as e:
        load_spec(p)
    msg = str(e.value)
    for what in ("recording nope1 (cell 0)", "recording nope2 (cell 1)",
                 "decoder gone.npz (cells 0, 1)", "source edf://missing.edf"):
        assert what in msg
    assert msg.count(";") >= 3 and "\n" not in msg


def test_hash_follows_content_not_location(sweep_dir: Path, recording: Path,
                                           tmp_path: Path) -> None:
    text = "[fixed]\nmode = \"replay\"\n[grid]\nrecording = [\"{}\"]\n"
    a = load_spec(spec(sweep_dir, text.format("rec1"), "h1.toml")).cells[0]
    moved = tmp_path / "elsewhere"
    shutil.copytree(recording, moved)
    b = load_spec(spec(tmp_path, text.format("elsewhere"), "h2.toml")).cells[0]
    assert a.cell_id == b.cell_id and a.inputs == b.inputs
    with open(moved / "events.jsonl", "a") as fh:  # one byte of an input changes the cell
        fh.write(" ")
    c = load_spec(spec(tmp_path, text.format("elsewhere"), "h3.toml")).cells[0]
    assert c.cell_id != a.cell_id and c.inputs_sha256 != a.inputs_sha256


values = st.one_of(st.integers(-10**6, 10**6), st.floats(allow_nan=False), st.text(max_size=8),
                   st.booleans())


@given(st.dictionaries(st.text(min_size=1, max_size=8), values, min_size=1, max_size=6),
       st.data())
def test_hash_ignores_key_order_and_sees_every_value(params: dict, data: st.DataObject) -> None:
    cid, _ = cell_hash("run", params, {}, "v1")
    shuffled = dict(reversed(list(params.items())))
    assert cell_hash("run", shuffled, {}, "v1")[0] == cid
    key = data.draw(st.sampled_from(sorted(params)))
    new = data.draw(values.filter(lambda v: repr(v) != repr(params[key])))
    assert cell_hash("run", {**params, key: new}, {}, "v1")[0] != cid
    assert cell_hash("run", params, {}, "v2")[0] != cid
    assert cell_hash("replay", params, {}, "v1")[0] != cid


def _cli(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    try:
        code = main(argv)
    except SystemExit as exc:  # argparse refuses an option value
        code = int(exc.code or 0)
    return code, capsys.readouterr().err


@pytest.mark.parametrize(("argv_tail", "needle"), [
    (["--scheduler", "localhost"], "is not a scheduler address"),
    (["--scheduler", "tcp://127.0.0.1:99999"], "is not a scheduler address"),
    (["--workers", "0"], "too small"),
    (["--workers", "nan"], "not an integer"),
    (["--scheduler", "tcp://127.0.0.1:8786", "--workers", "2"], "give one of them"),
    (["--connect-timeout", "inf"], "not finite"),
])
def test_cli_bad_options(sweep_dir: Path, capsys: pytest.CaptureFixture[str],
                         argv_tail: list[str], needle: str) -> None:
    p = spec(sweep_dir, "[grid]\nseed = [1]\n", "ok.toml")
    code, err = _cli(["sweep", str(p), *argv_tail], capsys)
    assert code == 2
    assert needle in err and err.count("\n") == 1


def test_cli_bad_spec_and_binary_spec(sweep_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    p = spec(sweep_dir, "[grid]\nseed = [1]\nwhat = [2]\n", "unk.toml")
    code, err = _cli(["sweep", str(p)], capsys)
    assert code == 2 and "unknown key 'what'" in err and err.count("\n") == 1
    b = sweep_dir / "bin.toml"
    b.write_bytes(b"\x00\x01\x02" * 100)
    code, err = _cli(["sweep", str(b)], capsys)
    assert code == 2 and "binary" in err and err.count("\n") == 1
    code, err = _cli(["sweep", str(sweep_dir / "absent.toml")], capsys)
    assert code == 2 and "does not exist" in err


def test_cli_unreachable_scheduler_within_timeout(sweep_dir: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    import socket

    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()  # nothing listens there now
    p = spec(sweep_dir, "[fixed]\nscenario = \"small.toml\"\n[grid]\nseed = [1]\n", "un.toml")
    code, err = _cli(["sweep", str(p), "--scheduler", f"tcp://127.0.0.1:{port}",
                      "--connect-timeout", "1", "--out", str(sweep_dir / "un-out")], capsys)
    assert code == 2
    assert f"cannot reach the Dask scheduler at tcp://127.0.0.1:{port}" in err
    assert err.count("\n") == 1


weird = st.one_of(
    st.sampled_from([float("nan"), float("inf"), -float("inf"), 1e308, -1e308, 0, -1, 2**64,
                     True, "", "\x00", "a" * 5000, "[", "edf://[x", "../" * 50, [], {}, [1],
                     {"a": 1}]),
    st.integers(), st.floats(), st.text(max_size=20),
    st.lists(st.integers(0, 3), max_size=3),
)
keys = st.sampled_from(["seed", "duration_s", "deadline_ms", "scenario", "source", "decoder",
                        "recording", "mode", "source.snr", "control.confidence_threshold",
                        "dsp.hop_samples", "dsp.bands_hz", "decoder.kind", "runtime.duration_s",
                        "scenario.intentions", "stimulation.array", "nope", "x.y"])


@given(st.dictionaries(keys, weird, min_size=1, max_size=4),
       st.dictionaries(st.sampled_from(["name", "time_limit_s", "figures", "figure_item"]),
                       weird, max_size=2))
def test_any_values_are_accepted_or_one_config_error(sweep_dir: Path, cell: dict,
                                                    sweep: dict) -> None:
    from neuroloop.sweep.spec import parse_spec

    table = {"fixed": {"scenario": "small.toml"}, "cells": [cell], "sweep": sweep}
    try:
        s = parse_spec(table, path=sweep_dir / "h.toml")
    except ConfigError as exc:
        assert "\n" not in str(exc) and str(exc)
    else:
        assert len(s.cells) == 1


def test_shipped_example_spec_is_valid() -> None:
    example = Path(__file__).resolve().parents[2] / "examples" / "sweep" / "snr-study.toml"
    s = load_spec(example)
    assert len(s.cells) == 24 and {c.mode for c in s.cells} == {"run"}
    assert (s.figure_item, s.figure_group) == ("source.snr", "control.confidence_threshold")


def test_evaluate_and_compare_cells_are_checked_before_scheduling(sweep_dir: Path,
                                                                  recording: Path) -> None:
    p = spec(sweep_dir, """
[grid]
mode = ["evaluate"]
decoder = ["lda", "lda:shrinkage=0.3"]
test = ["synthetic:6", "rec1"]
[fixed]
scenario = "small.toml"
train = "synthetic:5"
[[cells]]
mode = "compare"
decoder = "lda"
recording = "rec1"
""", "ev.toml")
    s = load_spec(p)
    assert [c.mode for c in s.cells] == ["evaluate"] * 4 + ["compare"]
    assert set(s.cells[1].inputs) == {"scenario", "test"}  # rec1 is digested
    assert (s.figure_item, s.figure_group) == ("recording", "decoder")  # per decoder
    for body, needle in [
        ('[grid]\nmode = ["evaluate"]\ndecoder = ["no-such"]\ntest = ["synthetic:1"]\n',
         "unknown decoder 'no-such'"),
        ('[grid]\nmode = ["evaluate"]\ndecoder = ["lda:shrink"]\ntest = ["synthetic:1"]\n',
         "is not key=value"),
        ('[grid]\nmode = ["evaluate"]\ndecoder = ["lda"]\ntest = ["synthetic:x"]\n',
         "the seed = 'x' is not an integer"),
        ('[grid]\nmode = ["evaluate"]\ndecoder = ["lda"]\ntest = ["synthetic:1"]\n'
         'folds = [1]\n', "folds = 1 is too small"),
        ('[grid]\nmode = ["compare"]\ndecoder = ["lda"]\n', "needs 'recording'"),
        ('[grid]\nmode = ["evaluate"]\ndecoder = ["lda"]\ntest = ["gone", "gone.edf"]\n'
         'train = ["nothere"]\n',
         "train nothere (cells 0, 1); test gone (cell 0); test gone.edf"),
    ]:
        with pytest.raises(ConfigError) as e:
            load_spec(spec(sweep_dir, body, "ev-bad.toml"))
        assert needle in str(e.value), str(e.value)
