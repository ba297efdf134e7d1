"""Bad input of the intracortical scenario: one line naming the key and the fix, exit 2."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from neuroloop.errors import ConfigError
from neuroloop.link.capacity import TRANSPORTS, carriers, check_link, stream_need, transport_for

CASES = [
    ('[dsp]\nthreshold_multiplier = 4.5\n', "dsp.threshold_multiplier", "wrong sign"),
    ('[dsp]\nbin_ms = 0.01\n', "dsp.bin_ms", "shorter than one sample period"),
    ('[dsp]\nrecord_raw_channels = [0, 5000]\n', "dsp.record_raw_channels", "5000"),
    ('[dsp]\nacquisition = "sideways"\n', "dsp.acquisition", "binned"),
]


def _run(args: list[str], tmp_path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "neuroloop.cli", *args], capture_output=True,
                          text=True, timeout=120, cwd=tmp_path)


@pytest.mark.parametrize("body,key,fix", CASES)
def test_config_errors_are_one_line(tmp_path: Path, body: str, key: str, fix: str) -> None:
    cfg = tmp_path / "ic.toml"
    cfg.write_text('base = "intracortical"\n' + body)
    r = _run(["run", "--config", str(cfg), "--fast", "--duration", "1"], tmp_path)
    assert r.returncode == 2, r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and key in lines[0] and fix in lines[0], r.stderr
    assert "Traceback" not in r.stderr


def test_link_that_cannot_carry_the_stream_names_one_that_would(tmp_path: Path) -> None:
    # raw 1024 x 30 kHz over a serial port: refused before the port is even opened
    r = _run(["run", "--scenario", "intracortical", "--device", "/dev/ttyUSB9", "--duration",
              "1"], tmp_path)
    assert r.returncode == 2
    line = r.stderr.strip()
    assert "\n" not in line and "uart-921600" in line and "tcp-gbe" in line \
        and 'acquisition = "binned"' in line, line


def test_firmware_refuses_a_stream_its_link_cannot_carry(tmp_path: Path) -> None:
    r = subprocess.run([sys.executable, "-m", "firmware_sim", "--preset", "intracortical",
                        "--no-realtime", "--duration", "1"], capture_output=True, text=True,
                       timeout=120, cwd=tmp_path)
    assert r.returncode == 2
    assert "uart-3000000" in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr


def test_capacity_figures() -> None:
    binned = stream_need(2048, 50.0, 1)
    assert 2048 * 2 * 50 < binned < 1.1 * 2048 * 2 * 50 + 5000  # int16 values + framing
    raw = stream_need(1024, 30000.0, 7)
    assert raw > 1024 * 30000 * 2
    assert [t.name for t in carriers(binned)][:2] == ["uart-3000000", "usb-fs"]
    assert [t.name for t in carriers(raw)] == ["tcp-gbe"]
    assert transport_for("socket://127.0.0.1:7000") is TRANSPORTS[-1]
    assert transport_for("/dev/pts/3", 3000000).bytes_per_s == 300000.0
    report = check_link(2048, 50.0, 1, transport_for("/dev/pts/3", 3000000))
    assert 0.6 < report["utilisation"] < 0.8
    with pytest.raises(ConfigError, match="use uart-3000000"):
        check_link(2048, 50.0, 1, transport_for("/dev/pts/3", 921600))
    # the bsi stream takes 84 % of 921 600 baud: fine without headroom, refused with 20 %
    assert check_link(64, 586.0, 59, TRANSPORTS[0])["utilisation"] < 0.85
    with pytest.raises(ConfigError, match="keep below 80"):
        check_link(64, 586.0, 59, TRANSPORTS[0], headroom=0.2)
    with pytest.raises(ConfigError, match="not a stream"):
        check_link(1024, float("nan"), 1, TRANSPORTS[0])
