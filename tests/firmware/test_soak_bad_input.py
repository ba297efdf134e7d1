"""``python -m firmware_sim.soak``: every bad option value is one line and exit 2, before any
process is started (a bad ``--config`` included)."""

from __future__ import annotations

import pytest

from firmware_sim.soak import main


@pytest.mark.parametrize("args", [
    ["--duration", "nan"], ["--duration", "inf"], ["--duration", "-1"], ["--duration", "1e308"],
    ["--baud", "inf"], ["--baud", "-1"], ["--baud", "1e308"], ["--baud", "12.5"],
    ["--e2e-p99-us", "nan"], ["--e2e-p99-us", "0"], ["--e2e-p99-us", "1e308"],
])
def test_bad_numbers_are_one_line_and_exit_2(args: list[str], capsys) -> None:
    with pytest.raises(SystemExit) as info:
        main(args)
    assert info.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert f"error: argument {args[0]}" in err[-1]  # argparse: usage, then the one line


@pytest.mark.parametrize("content", [None, b"\x00\x01binary", b"not = [toml"])
def test_a_bad_config_file_is_one_line_and_exit_2(tmp_path, capsys, content) -> None:
    path = tmp_path / "scenario.toml"
    if content is not None:
        path.write_bytes(content)
    assert main(["--config", str(path), "--duration", "1"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("soak: error:") and str(path) in err[0]
