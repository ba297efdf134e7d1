"""Fixtures for loop tests: a short bsi session on a simulated clock."""

from __future__ import annotations

import copy
import tomllib
from importlib import resources

import pytest

from neuroloop.config import scenario_from_dict


@pytest.fixture(scope="session")
def small_bsi():
    """The bsi scenario with a 40 s calibration (keeps tests quick)."""
    table = tomllib.loads((resources.files("neuroloop.scenarios") / "bsi.toml").read_text())
    table = copy.deepcopy(table)
    table["decoder"]["calibration_s"] = 40.0
    return scenario_from_dict(table, label="bsi-small")


@pytest.fixture(scope="session")
def bsi_decoder_file(small_bsi, tmp_path_factory):
    """A decoder trained once for the whole test session."""
    from neuroloop.runtime.session import build_pipeline, train_decoder

    dec, _ = train_decoder(small_bsi, build_pipeline(small_bsi))
    path = tmp_path_factory.mktemp("dec") / "bsi.npz"
    dec.save(path)
    return str(path)
