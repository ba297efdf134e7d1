"""Key files and environment keys; link capacity arithmetic."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest

from neuroloop.errors import ConfigError
from neuroloop.link.capacity import link_utilisation, wire_bytes
from neuroloop.link.keys import generate_key_file, load_key_file, load_keys


def test_generated_file_is_private_and_loads_back(tmp_path: Path) -> None:
    path = tmp_path / "k.toml"
    keys = generate_key_file(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    again = load_key_file(path)
    assert (again.h2d, again.d2h) == (keys.h2d, keys.d2h)
    assert len(keys.h2d) == 32 and keys.h2d != keys.d2h
    assert "h2d" not in repr(keys) or keys.h2d.hex() not in repr(keys)  # secrets not printed
    with pytest.raises(ConfigError, match="already exists"):
        generate_key_file(path)


def test_json_and_environment(tmp_path: Path) -> None:
    path = tmp_path / "k.json"
    path.write_text(json.dumps({"h2d": "11" * 32, "d2h": "22" * 32}))
    os.chmod(path, 0o600)
    assert load_keys(path).h2d == bytes([0x11]) * 32
    env = {"NEUROLOOP_KEY_H2D": "33" * 16, "NEUROLOOP_KEY_D2H": "44" * 16}
    keys = load_keys(None, env=env)
    assert keys.d2h == bytes([0x44]) * 16 and keys.source == "environment"
    assert load_keys(None, env={"NEUROLOOP_KEY_FILE": str(path)}).d2h == bytes([0x22]) * 32


@pytest.mark.parametrize(("content", "mode", "match"), [
    (None, 0o600, "not found"),
    ('h2d = "zz"\nd2h = "00"', 0o600, "not valid hex"),
    ('h2d = "11"\nd2h = "22"', 0o600, "use 16..64 bytes"),
    (f'h2d = "{"11" * 32}"', 0o600, "missing key 'd2h'"),
    (f'h2d = "{"11" * 32}"\nd2h = "{"11" * 32}"', 0o600, "identical"),
    (f'h2d = "{"11" * 32}"\nd2h = "{"22" * 32}"', 0o644, "chmod 600"),
    ("h2d = [", 0o600, "neither TOML nor JSON"),
])
def test_bad_key_files_are_one_line_config_errors(tmp_path: Path, content, mode, match) -> None:
    path = tmp_path / "k.toml"
    if content is not None:
        path.write_text(content)
        os.chmod(path, mode)
    with pytest.raises(ConfigError, match=match) as info:
        load_key_file(path)
    assert "\n" not in str(info.value)


def test_no_keys_anywhere_says_how_to_get_some() -> None:
    with pytest.raises(ConfigError, match="--key-file"):
        load_keys(None, env={})


def test_wire_bytes_counts_header_tag_crc_cobs_and_delimiter() -> None:
    assert wire_bytes(0, tagged=False) == 21 + 4 + 1 + 1
    assert wire_bytes(7632) == (21 + 7632 + 16 + 4) + (21 + 7632 + 16 + 4) // 254 + 1 + 1


def test_bsi_stream_fits_921600_baud_with_headroom() -> None:
    u = link_utilisation()
    raw = 64 * 586 * 2
    assert u["raw_sample_bytes_per_s"] == raw
    assert u["capacity_bytes_per_s"] == 92160
    # samples alone take 81.4 %; framing, tags, labels and the periodic frames add ~3 %
    assert raw / 92160 < u["d2h_utilisation"] < 0.86
    assert 0.14 < u["headroom"] < 0.186
    assert u["h2d_utilisation"] < 0.05
    # smaller frames cost more overhead; a slower line does not fit at all
    assert link_utilisation(samples_per_frame=10)["d2h_utilisation"] > u["d2h_utilisation"]
    assert link_utilisation(baud=460800)["headroom"] < 0
