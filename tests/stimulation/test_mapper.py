"""Programs and the intention -> request mapper."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from neuroloop.config import load_scenario
from neuroloop.decoders.base import Intention
from neuroloop.stimulation.command import PROGRAM_OFF
from neuroloop.stimulation.electrodes import paddle_5_6_5
from neuroloop.stimulation.mapper import StimMapper, build_program_set
from neuroloop.stimulation.programs import StimProgram


@pytest.fixture(scope="module")
def mapper() -> StimMapper:
    sc = load_scenario("bsi")
    return StimMapper(build_program_set(sc.stimulation, sc.intention_names),
                      sc.stimulation.confidence_threshold)


def test_paddle_layout() -> None:
    p = paddle_5_6_5()
    assert p.n_contacts == 16
    xs = p.position_mm[:, 0]
    assert [int((xs == x).sum()) for x in (-4.0, 0.0, 4.0)] == [5, 6, 5]
    assert p.index("E7") == 7
    with pytest.raises(KeyError, match="unknown contact"):
        p.index("E99")


def test_rest_and_invalid_are_off(mapper: StimMapper) -> None:
    it = Intention(state=0, probabilities=np.zeros(7), confidence=1.0)
    assert mapper.map(it, 3).is_off and mapper.request.program_id == PROGRAM_OFF
    it = Intention(state=2, probabilities=np.zeros(7), confidence=0.9, valid=False)
    assert mapper.map(it, 4).is_off


@given(state=st.integers(1, 6), confidence=st.floats(0, 1))
def test_program_currents_conserve_and_scale(mapper: StimMapper, state: int,
                                             confidence: float) -> None:
    req = mapper.map(Intention(state=state, probabilities=np.zeros(7), confidence=confidence), 1)
    prog = mapper.programs.get(state)
    assert prog is not None
    cathodic = -req.amplitude_ma[req.amplitude_ma < 0].sum()
    assert prog.amplitude_min_ma - 1e-12 <= cathodic <= prog.amplitude_max_ma + 1e-12
    # contacts plus case sum to zero in each phase
    assert abs(req.amplitude_ma.sum() + req.case_ma) < 1e-12
    assert req.program_id == state and req.pulse_width_us == prog.pulse_width_us
    # monotone in confidence
    hi = mapper.program_amplitude_ma(state, 1.0)
    assert mapper.program_amplitude_ma(state, confidence) <= hi + 1e-12


def test_confidence_threshold_endpoints(mapper: StimMapper) -> None:
    prog = mapper.programs.get(1)
    assert mapper.program_amplitude_ma(1, 0.0) == prog.amplitude_min_ma
    assert mapper.program_amplitude_ma(1, 1.0) == prog.amplitude_max_ma
    assert mapper.program_amplitude_ma(1, float("nan")) == 0.0


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
