"""Helpers for control-policy tests: the bsi programs, an LDA-like schema, decoder outputs."""

from __future__ import annotations

import numpy as np
from hypothesis import strategies as st

from neuroloop.config import ControlConfig, load_scenario
from neuroloop.decoders import DecoderOutput, LDADecoder, OutputSchema
from neuroloop.stimulation.command import PROGRAM_OFF, StimCommand
from neuroloop.stimulation.programs import ProgramSet, build_program_set

BSI = load_scenario("bsi")
PROGRAMS: ProgramSet = build_program_set(BSI.stimulation, BSI.intention_names)
SCHEMA = OutputSchema(BSI.intention_names, tuple(n for n, _ in LDADecoder.outputs),
                      tuple(u for _, u in LDADecoder.outputs))
N_STATES = len(BSI.intention_names)


def control(policy: str, **params: object) -> ControlConfig:
    return ControlConfig(policy, dict(params), "test.toml")


def output(state: int = 0, confidence: float = 0.0, valid: bool = True,
           values: tuple[float, ...] = (), schema: OutputSchema = SCHEMA) -> DecoderOutput:
    vals = np.full(schema.n_outputs, np.nan)
    vals[:len(values)] = values
    return DecoderOutput(state=state, raw_state=max(state, 0) % schema.n_states,
                         probabilities=np.full(schema.n_states, 1.0 / schema.n_states),
                         confidence=confidence, valid=valid, values=vals, schema=schema)


#: Any float a broken or adversarial decoder could produce.
any_float = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([0.0, -0.0, 1.0, 0.5, 1e-300, 1e300, -1e300, 1.7976931348623157e308,
                     float("nan"), float("inf"), float("-inf")]),
    st.floats(-2.0, 2.0),
)


@st.composite
def decoder_outputs(draw: st.DrawFn, schema: OutputSchema = SCHEMA) -> DecoderOutput:
    """A decoder output with any state (out of range too), confidence, validity and values."""
    return DecoderOutput(
        state=draw(st.integers(-3, schema.n_states + 3)),
        raw_state=draw(st.integers(0, schema.n_states - 1)),
        probabilities=np.array(draw(st.lists(any_float, min_size=schema.n_states,
                                             max_size=schema.n_states))),
        confidence=draw(any_float),
        valid=draw(st.booleans()),
        values=np.array(draw(st.lists(any_float, min_size=schema.n_outputs,
                                      max_size=schema.n_outputs)), dtype=np.float64),
        schema=schema,
    )


def assert_inside_envelope(req: StimCommand, programs: ProgramSet) -> None:
    """Off, or exactly one program's shape at an amplitude inside its clinician envelope."""
    fields = (req.case_ma, req.pulse_width_us, req.frequency_hz, req.interphase_gap_us)
    assert np.all(np.isfinite(req.amplitude_ma)) and all(np.isfinite(fields)), req
    if req.program_id == PROGRAM_OFF:
        assert req.is_off, f"an off request carries current: {req}"
        return
    prog = programs.get(req.program_id)
    assert prog is not None, f"request for program {req.program_id}, which does not exist"
    amp = float(np.sum(-req.amplitude_ma[req.amplitude_ma < 0]))  # total cathodic current
    tol = 1e-9 * max(1.0, prog.amplitude_max_ma)
    assert prog.amplitude_min_ma - tol <= amp <= prog.amplitude_max_ma + tol, \
        f"{amp} mA outside [{prog.amplitude_min_ma}, {prog.amplitude_max_ma}] of {prog.name}"
    np.testing.assert_allclose(req.amplitude_ma,
                               amp * (prog.anode_fraction - prog.cathode_fraction),
                               rtol=1e-12, atol=1e-12)
    assert abs(req.amplitude_ma.sum() + req.case_ma) < 1e-9  # contacts + case sum to zero
    assert (req.pulse_width_us, req.frequency_hz, req.interphase_gap_us) == \
        (prog.pulse_width_us, prog.frequency_hz, prog.interphase_gap_us)
