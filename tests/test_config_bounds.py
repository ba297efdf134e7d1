"""Every numeric scenario key and option is finite and inside a documented range, and
config files are read safely (size cap, regular files only, text only)."""

from __future__ import annotations

import copy
import math
import os
import time
import tomllib
from importlib import resources
from pathlib import Path

import pytest

from neuroloop import _checks as B
from neuroloop.cli import main
from neuroloop.config import load_scenario, scenario_from_dict
from neuroloop.errors import ConfigError


def _bsi() -> dict:
    return tomllib.loads((resources.files("neuroloop.scenarios") / "bsi.toml").read_text())


def _with(section: str, key: str, value: object) -> dict:
    table = copy.deepcopy(_bsi())
    table.setdefault(section, {})[key] = value
    return table


@pytest.mark.parametrize(("section", "key", "value", "needle"), [
    ("source", "sampling_rate_hz", 1e308, "too large; use a value in [1, 1000000] Hz"),
    ("source", "sampling_rate_hz", math.nan, "not a number (NaN)"),
    ("source", "sampling_rate_hz", 0.5, "too small"),
    ("source", "n_channels", 4097, "use an integer in [1, 4096]"),
    ("source", "n_channels", 64.0, "not an integer"),
    ("source", "seed", -1, "use an integer in [0, 4294967295]"),
    ("source", "seed", 2**32, "too large"),
    ("source", "snr", math.inf, "not finite"),
    ("dsp", "hop_samples", 10**7, "use an integer in [1, 1000000]"),
    ("dsp", "hop_samples", 5861, "longer than the 10 s a control cycle may last"),
    ("dsp", "filter_order", 21, "use an integer in [1, 20]"),
    ("dsp", "notch_q", 0.1, "use a value in [0.5, 1000]"),
    ("decoder", "calibration_s", 3601.0, "use a value in (0, 3600] s"),
    ("decoder", "calibration_s", 0, "not positive"),
    ("decoder", "calibration_seed", -1, "use an integer in [0, 4294967295]"),
    ("runtime", "deadline_ms", 0.01, "use a value in [0.05, 10000] ms"),
    ("runtime", "deadline_ms", 1e308, "too large"),
    ("runtime", "duration_s", 604801.0, "use a value in (0, 604800] s"),
    ("runtime", "status_interval_s", 0.0, "use a value in [0.01, 60] s"),
    ("scenario", "description", 3, "must be a string"),
])
def test_each_bound_names_key_range_and_fix(section, key, value, needle) -> None:
    with pytest.raises(ConfigError) as info:
        scenario_from_dict(_with(section, key, value), label="my.toml")
    msg = str(info.value)
    assert msg.startswith(f"my.toml: {section}.{key} = "), msg
    assert needle in msg and "\n" not in msg, msg


def test_list_lengths_are_bounded() -> None:
    for key, value, needle in (("bands_hz", [[8, 12]] * 65, "1 to 64"),
                               ("notch_hz", [50.0] * 33, "at most 32")):
        with pytest.raises(ConfigError, match=needle):
            scenario_from_dict(_with("dsp", key, value), label="my.toml")
    table = _bsi()
    table["scenario"]["intentions"] = ["rest"] + [f"s{i}" for i in range(64)]
    with pytest.raises(ConfigError, match="2 to 64 distinct"):
        scenario_from_dict(table, label="my.toml")


def _intracortical(calibration_s: float) -> dict:
    """A 1024-channel, 30 kHz intracortical scenario (20 ms hops, spike-band power)."""
    table = _bsi()
    table["source"].update(sampling_rate_hz=30000.0, n_channels=1024)
    table["dsp"].update(hop_samples=600, bands_hz=[[300, 1000], [1000, 5000]])
    table["decoder"]["calibration_s"] = calibration_s
    return table


def test_the_intracortical_rate_and_size_fit_the_bounds() -> None:
    sc = scenario_from_dict(_intracortical(10.0), label="ic.toml")
    assert sc.source.sampling_rate_hz == 30000.0 and sc.source.n_channels == 1024
    # 120 s of 1024 x 30 kHz would be 29 GB in memory: refused with the longest that fits
    with pytest.raises(ConfigError, match=r"decoder.calibration_s = 120 s is too long .*"
                                          r"use at most 17.4\d s"):
        scenario_from_dict(_intracortical(120.0), label="ic.toml")


def test_hop_times_channels_is_capped() -> None:
    table = _intracortical(1.0)
    table["source"]["n_channels"] = 4096
    table["dsp"]["hop_samples"] = 4097  # 137 ms, but 16.8 M values per cycle
    with pytest.raises(ConfigError, match="values per cycle, more than 16777216; use at "
                                          "most 4096"):
        scenario_from_dict(table, label="ic.toml")


def test_check_number_refuses_bool_and_float_for_integer() -> None:
    with pytest.raises(ConfigError, match="True is not a number"):
        B.check_number("k", True, B.DEADLINE_MS)
    with pytest.raises(ConfigError, match="4.0 is not an integer"):
        B.check_number("k", 4.0, B.FILTER_ORDER)
    assert B.check_number("k", 4, B.FILTER_ORDER) == 4
    assert B.check_number("k", 2**200, B.Range(0, math.inf, integer=True)) == 2**200


def _cli(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, list[str]]:
    try:
        code = main(argv)
    except SystemExit as exc:
        code = int(exc.code)
    err = [ln for ln in capsys.readouterr().err.splitlines() if ln.strip()]
    return code, err


@pytest.mark.parametrize(("argv", "needle"), [
    (["run", "--duration", "1e308"], "argument --duration: 1e308 is too large; use a value "
                                     "in (0, 604800] s"),
    (["run", "--duration", "nan"], "not a number (NaN)"),
    (["run", "--deadline-ms", "0.01"], "use a value in [0.05, 10000] ms"),
    (["run", "--seed", "4294967296"], "use an integer in [0, 4294967295]"),
    (["run", "--seed", "1.5"], "--seed: 1.5 is not an integer"),
    (["run", "--baud", "0"], "use an integer in [300, 16000000]"),
    (["run", "--inject", "estop@1e308"], "SECONDS = 1e308 is too large"),
    (["run", "--inject", "estop@1:inf"], "DURATION = inf is not finite"),
    (["train", "--out", "x.npz", "--duration", "7200"], "use a value in (0, 3600] s"),
    (["bench", "--hops", "10"], "use an integer in [100, 200000]"),
    (["run", "--fast", "--duration", "86401"], "too long for --fast: a simulated run is at "
                                               "most 86400 s (24 h) and 1000000 cycles"),
])
def test_cli_options_are_bounded(argv, needle, capsys) -> None:
    code, err = _cli(argv, capsys)
    assert code == 2 and len(err) == 1 and needle in err[0], err


def test_fast_bound_names_the_scenario_key(tmp_path, capsys) -> None:
    f = tmp_path / "long.toml"
    f.write_text('base = "bsi"\n[runtime]\nduration_s = 90000.0\n')
    code, err = _cli(["run", "--fast", "--config", str(f)], capsys)
    assert code == 2 and len(err) == 1
    assert f"{f}: runtime.duration_s = 90000 s is too long for --fast" in err[0]


# -- reading config files --------------------------------------------------------------------
def _refused(path: Path, needle: str) -> None:
    t0 = time.perf_counter()
    with pytest.raises(ConfigError) as info:
        load_scenario(path)
    assert time.perf_counter() - t0 < 5.0
    msg = str(info.value)
    assert needle in msg and "\n" not in msg, msg


def test_config_files_that_are_not_small_text(tmp_path) -> None:
    _refused(Path("/dev/zero"), "not a regular file")
    _refused(tmp_path, "is a directory")
    fifo = tmp_path / "fifo.toml"
    os.mkfifo(fifo)  # nobody writes: opening it must not block
    _refused(fifo, "not a regular file")
    binary = tmp_path / "bin.toml"
    binary.write_bytes(b"name = 1\n\x7fELF\x00\x01")
    _refused(binary, "not a text TOML file (binary data at byte 13)")
    latin = tmp_path / "latin.toml"
    latin.write_bytes(b"# caf\xe9\n")
    _refused(latin, "at byte 5")
    huge = tmp_path / "huge.toml"
    huge.write_bytes(b"# padding\n" * 200_000)
    _refused(huge, "bytes, more than")
    deep = tmp_path / "deep.toml"
    deep.write_text("a = " + "[" * 100_000 + "]" * 100_000 + "\n")
    _refused(deep, "nests arrays or tables too deeply")


def test_a_config_path_is_a_file_even_without_a_slash(tmp_path, monkeypatch, capsys) -> None:
    monkeypatch.chdir(tmp_path)
    os.mkfifo("ff")
    code, err = _cli(["run", "--fast", "--config", "ff"], capsys)
    assert code == 2 and len(err) == 1 and "ff is not a regular file" in err[0], err


def test_base_must_be_a_shipped_preset(tmp_path) -> None:
    f = tmp_path / "b.toml"
    f.write_text('base = "../scenarios/bsi"\n')
    _refused(f, "unknown scenario '../scenarios/bsi'")


def test_record_dir_is_checked_before_calibrating(tmp_path, capsys) -> None:
    (tmp_path / "file").write_text("x")
    t0 = time.perf_counter()
    code, err = _cli(["run", "--fast", "--duration", "1", "--record",
                      str(tmp_path / "file" / "session")], capsys)
    assert code == 2 and len(err) == 1 and "file is not a directory" in err[0], err
    assert time.perf_counter() - t0 < 5.0
