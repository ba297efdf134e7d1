"""Programs and the program set of a scenario (the request mapping is a control policy now:
tests/control)."""

from __future__ import annotations

import numpy as np
import pytest

from neuroloop.config import load_scenario
from neuroloop.stimulation.electrodes import paddle_5_6_5
from neuroloop.stimulation.mapper import build_program_set as build_program_set_old_home
from neuroloop.stimulation.programs import StimProgram, build_program_set


def test_paddle_layout() -> None:
    p = paddle_5_6_5()
    assert p.n_contacts == 16
    xs = p.position_mm[:, 0]
    assert [int((xs == x).sum()) for x in (-4.0, 0.0, 4.0)] == [5, 6, 5]
    assert p.index("E7") == 7
    with pytest.raises(KeyError, match="unknown contact"):
        p.index("E99")


def test_build_program_set_from_the_bsi_preset() -> None:
    sc = load_scenario("bsi")
    ps = build_program_set(sc.stimulation, sc.intention_names)
    assert build_program_set is build_program_set_old_home  # the old import path still works
    assert len(ps) == 6 and ps.get(0) is None
    assert [p.program_id for p in ps] == [1, 2, 3, 4, 5, 6]
    t = ps.table()
    assert not t["has_program"][0] and t["has_program"][1:].all()


def test_monopolar_program_returns_through_case() -> None:
    arr = paddle_5_6_5()
    p = StimProgram.from_contacts(arr, 1, "x", {"E2": 1.0}, {}, 40, 300, (1.0, 2.0))
    out = np.zeros(16)
    case = p.contact_currents(2.0, out)
    assert out[2] == -2.0 and case == 2.0 and abs(out.sum() + case) < 1e-12


def test_program_rejects_bad_contacts() -> None:
    arr = paddle_5_6_5()
    with pytest.raises(ValueError, match="both cathode and anode"):
        StimProgram.from_contacts(arr, 1, "x", {"E2": 1}, {"E2": 1}, 40, 300, (1, 2))
    with pytest.raises(KeyError):
        StimProgram.from_contacts(arr, 1, "x", {"E20": 1}, {}, 40, 300, (1, 2))
