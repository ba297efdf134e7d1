"""Fixtures for the recording tests (helpers live in io_fakes.py)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from io_fakes import FakeSession, write_session


@pytest.fixture

def make_session(tmp_path: Path) -> Callable[..., FakeSession]:
    """Factory: ``make_session(name="s", **write_session_kwargs)``."""
    def _make(name: str = "session", **kw: Any) -> FakeSession:
        return write_session(tmp_path / name, **kw)
    return _make
