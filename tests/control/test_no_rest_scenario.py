"""A scenario without a rest state (left/right only): every state has its program, an
invalid decoder output stimulates nothing, and the source's rest samples are unlabelled."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from neuroloop.acquisition import open_source
from neuroloop.acquisition.base import NO_LABEL
from neuroloop.config import load_scenario
from neuroloop.control import make_policy
from neuroloop.decoders import DecoderOutput, OutputSchema
from neuroloop.stimulation.command import PROGRAM_OFF
from neuroloop.stimulation.programs import build_program_set

LR = Path(__file__).resolve().parents[2] / "docs" / "examples" / "eegmmi-lr.toml"


def test_every_state_has_a_program_and_invalid_is_off() -> None:
    sc = load_scenario(LR)
    assert sc.intention_names == ("left", "right")
    programs = build_program_set(sc.stimulation, sc.intention_names)
    assert {p.program_id for p in programs} == {0, 1}
    schema = OutputSchema(sc.intention_names, ("confidence", "state_margin",
                                               "movement_probability"), ("1", "1", "1"))
    policy = make_policy(sc.control, programs, schema)
    out = DecoderOutput(state=0, probabilities=np.array([0.9, 0.1]), confidence=0.9,
                        valid=True, values=np.zeros(3), schema=schema)
    cmd = policy.step(out, 0, 0)
    assert cmd.program_id == 0 and np.any(cmd.amplitude_ma != 0)  # "left" stimulates
    out.valid = False
    cmd = policy.step(out, 1, 1)
    assert cmd.program_id == PROGRAM_OFF and not np.any(cmd.amplitude_ma != 0)


def test_rest_samples_of_a_source_are_unlabelled() -> None:
    with open_source("synthetic://eeg-bci", seed=3) as src:
        src.map_intentions(("left", "right"), "lr")
        labels = []
        while sum(len(x) for x in labels) < 250 * 60:
            b = src.read(2500, timeout=5.0)
            if b is not None:
                labels.append(b.labels.copy())
    lab = np.concatenate(labels)
    assert set(np.unique(lab).tolist()) <= {NO_LABEL, 0, 1}
    assert np.any(lab == NO_LABEL) and np.any(lab == 0) and np.any(lab == 1)
