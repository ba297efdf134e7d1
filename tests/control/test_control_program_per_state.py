"""``program-per-state``: bit for bit what the 0.1.0 ``StimMapper`` did (tests/reference.py)."""

from __future__ import annotations

import numpy as np
import pytest
from control_helpers import BSI, PROGRAMS, SCHEMA, control, decoder_outputs, output
from hypothesis import given, settings
from hypothesis import strategies as st
from reference import StimMapperRef

from neuroloop.config import ControlConfig
from neuroloop.control import ProgramPerStatePolicy, make_policy
from neuroloop.decoders import DecoderOutput
from neuroloop.errors import ConfigError
from neuroloop.stimulation.command import PROGRAM_OFF, StimCommand


def _policy(threshold: float = 0.5) -> ProgramPerStatePolicy:
    pol = make_policy(control("program-per-state", confidence_threshold=threshold), PROGRAMS,
                      SCHEMA)
    assert isinstance(pol, ProgramPerStatePolicy)
    return pol


def _bits(a: np.ndarray | float) -> bytes:
    return np.asarray(a, dtype=np.float64).tobytes()  # -0.0 != 0.0, NaN payloads compared


def _assert_identical(new: StimCommand, old: StimCommand) -> None:
    assert _bits(new.amplitude_ma) == _bits(old.amplitude_ma)
    for f in ("pulse_width_us", "frequency_hz", "interphase_gap_us", "case_ma"):
        assert _bits(getattr(new, f)) == _bits(getattr(old, f)), f
    assert (new.program_id, new.cycle, new.waveform) == (old.program_id, old.cycle, old.waveform)


@settings(max_examples=200)
@given(seq=st.lists(decoder_outputs(), min_size=1, max_size=30),
       threshold=st.one_of(st.just(0.5), st.floats(0.0, 0.99)))
def test_bit_identical_to_the_old_mapper(seq: list[DecoderOutput], threshold: float) -> None:
    new, old = _policy(threshold), StimMapperRef(PROGRAMS, threshold)
    for k, out in enumerate(seq):  # a sequence: an off request keeps the last pulse shape
        _assert_identical(new.step(out, 10**9 * k, k), old.map(out, k))


def test_bit_identical_over_many_random_outputs() -> None:
    rng = np.random.default_rng(7)
    new, old = _policy(), StimMapperRef(PROGRAMS, 0.5)
    specials = np.array([np.nan, np.inf, -np.inf, 1e300, -1e300, 0.5, 1.0, 0.0])
    for k in range(20_000):
        conf = float(specials[k % 8]) if k % 5 == 0 else float(rng.uniform(-0.5, 1.5))
        out = output(int(rng.integers(-2, 10)), conf, bool(rng.random() > 0.05))
        _assert_identical(new.step(out, k, k), old.map(out, k))


def test_rest_and_invalid_are_off() -> None:
    pol = _policy()
    assert pol.step(output(0, 1.0), 0, 3).is_off and pol.request.program_id == PROGRAM_OFF
    assert pol.request.cycle == 3
    assert pol.step(output(2, 0.9, valid=False), 0, 4).is_off


@given(state=st.integers(1, 6), confidence=st.floats(0, 1))
def test_program_currents_conserve_and_scale(state: int, confidence: float) -> None:
    pol = _policy()
    req = pol.step(output(state, confidence), 0, 1)
    prog = PROGRAMS.get(state)
    assert prog is not None
    cathodic = -req.amplitude_ma[req.amplitude_ma < 0].sum()
    assert prog.amplitude_min_ma - 1e-12 <= cathodic <= prog.amplitude_max_ma + 1e-12
    assert abs(req.amplitude_ma.sum() + req.case_ma) < 1e-12
    assert req.program_id == state and req.pulse_width_us == prog.pulse_width_us
    assert pol.program_amplitude_ma(state, confidence) <= pol.program_amplitude_ma(state, 1.0)


def test_confidence_threshold_endpoints() -> None:
    pol = _policy()
    prog = PROGRAMS.get(1)
    assert pol.program_amplitude_ma(1, 0.0) == prog.amplitude_min_ma
    assert pol.program_amplitude_ma(1, 1.0) == prog.amplitude_max_ma
    assert pol.program_amplitude_ma(1, float("nan")) == 0.0


def test_bsi_preset_uses_it_with_the_old_threshold() -> None:
    assert BSI.control == ControlConfig("program-per-state", {"confidence_threshold": 0.5},
                                        "bsi.toml")


@pytest.mark.parametrize("bad", [1.0, -0.1, float("nan"), "high", True])
def test_bad_threshold_is_a_one_line_config_error(bad: object) -> None:
    with pytest.raises(ConfigError, match=r"test.toml: control.confidence_threshold") as info:
        _policy(bad)  # type: ignore[arg-type]
    assert "\n" not in str(info.value)
