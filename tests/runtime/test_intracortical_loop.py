"""The intracortical scenario closes the loop in both acquisition modes (a scaled-down
population on a simulated clock): the Kalman decoder, calibrated on true velocity, follows
the true velocity; its decoded x velocity drives the proportional program; the decoded
velocity is in every cycle record (the continuous command for an external effector)."""

from __future__ import annotations

import copy
import tomllib
from importlib import resources
from typing import Any

import numpy as np
import pytest

from neuroloop.config import scenario_from_dict
from neuroloop.records import LoopListener
from neuroloop.runtime.session import RunOptions, Session


def _table(acquisition: str, electrodes: int = 96) -> dict[str, Any]:
    text = (resources.files("neuroloop.scenarios") / "intracortical.toml").read_text()
    t = copy.deepcopy(tomllib.loads(text))
    t["source"]["n_channels"] = electrodes
    t["source"]["url"] = f"intracortical://{acquisition}"
    t["dsp"]["acquisition"] = acquisition
    t["dsp"]["record_raw_channels"] = [0, 1]
    t["decoder"]["calibration_s"] = 12.0
    return t


class _Outputs(LoopListener):
    def __init__(self) -> None:
        self.values: list[np.ndarray] = []

    def on_cycle(self, record: np.ndarray) -> None:
        self.values.append(record[0]["outputs"].copy())


@pytest.mark.parametrize("acquisition", ["raw", "binned"])
def test_closed_loop_decodes_velocity(acquisition: str) -> None:
    scenario = scenario_from_dict(_table(acquisition), label="intracortical-test")
    outputs = _Outputs()
    # a generous deadline: this test checks behaviour, not the machine's speed under load
    session = Session(scenario, RunOptions(duration_s=8.0, fast=True, deadline_ms=5000.0,
                                           realtime_priority=None, listeners=[outputs]))
    assert session.decoder.name == "kalman"
    session.open()
    summary = session.run()
    assert summary["jit_compiles_in_loop"] == 0
    vel = summary["velocity"]
    assert vel["cycles_scored"] > 250
    assert vel["corr_x"] >= 0.8 and vel["corr_y"] >= 0.8, vel
    assert summary["stimulator"]["cycles_stimulating"] > 0  # decoded reach -> program on
    names = session.decoder.output_schema_.output_names
    assert names[:2] == ("velocity_x_m_per_s", "velocity_y_m_per_s")
    decoded = np.array(outputs.values)
    assert decoded.shape == (400, 2) and np.isfinite(decoded[100:]).all()
