"""Shared fixtures of the monitor tests."""

from __future__ import annotations

from pathlib import Path

import pytest
from live_helpers import train_decoder


@pytest.fixture(scope="session")
def decoder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A bsi decoder trained once (30 s of calibration), so runs skip calibrating."""
    return train_decoder(tmp_path_factory.mktemp("dec") / "bsi.npz")
