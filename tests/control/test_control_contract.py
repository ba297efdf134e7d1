"""The ControlPolicy contract, checked for every registered policy.

Each policy: builds from its ``example_params``; ``step`` returns its one preallocated
request (cycle copied in), never allocates, and whatever the decoder produced (NaN, inf,
huge, out-of-range states, invalid) the request is off or a program inside its clinician
envelope (SAFETY.md invariant 8); ``reset`` turns it off.
"""

from __future__ import annotations

import tracemalloc

import numpy as np
import pytest
from control_helpers import (
    PROGRAMS,
    SCHEMA,
    assert_inside_envelope,
    control,
    decoder_outputs,
    output,
)
from hypothesis import given, settings
from hypothesis import strategies as st

from neuroloop.control import ControlPolicy, make_policy, policy_class, policy_names
from neuroloop.decoders import DecoderOutput


def _build(name: str) -> ControlPolicy:
    params = policy_class(name).example_params(PROGRAMS, SCHEMA)
    if params is None:
        pytest.skip(f"policy {name!r} cannot be built for the bsi programs and an LDA decoder")
    return make_policy(control(name, **params), PROGRAMS, SCHEMA, decoder="test decoder")


@pytest.fixture(params=policy_names())
def policy(request: pytest.FixtureRequest) -> ControlPolicy:
    return _build(request.param)


def test_builtin_policies_are_registered() -> None:
    assert {"program-per-state", "proportional"} <= set(policy_names())


def test_policy_is_a_control_policy_with_its_name(policy: ControlPolicy) -> None:
    assert isinstance(policy, ControlPolicy)
    assert policy.name in policy_names()
    assert policy.programs is PROGRAMS and policy.schema is SCHEMA
    assert set(policy.required_outputs) <= set(SCHEMA.output_names)
    assert policy.request.is_off


def test_step_returns_the_preallocated_request(policy: ControlPolicy) -> None:
    req0 = policy.request
    buf = req0.amplitude_ma
    rng = np.random.default_rng(0)
    for k in range(200):
        out = output(int(rng.integers(0, 7)), float(rng.random()), bool(rng.random() > 0.1),
                     tuple(rng.random(SCHEMA.n_outputs)))
        req = policy.step(out, 1_000_000 * k, k)
        assert req is req0 and req.amplitude_ma is buf and req.cycle == k


@settings(max_examples=300)
@given(seq=st.lists(st.tuples(decoder_outputs(), st.integers(0, 2**62)), min_size=1,
                    max_size=20))
def test_request_always_inside_the_clinician_envelope(
        seq: list[tuple[DecoderOutput, int]]) -> None:
    for name in policy_names():
        pol = _build(name)
        for k, (out, now_ns) in enumerate(seq):
            req = pol.step(out, now_ns, k)
            assert req.cycle == k
            assert_inside_envelope(req, PROGRAMS)
            if not out.valid:
                assert req.is_off, f"{name}: an invalid decoder output stimulated"


def test_reset_turns_the_request_off(policy: ControlPolicy) -> None:
    policy.step(output(1, 1.0, True, (1.0, 1.0, 1.0)), 0, 5)
    policy.reset()
    assert policy.request.is_off


def test_step_does_not_allocate(policy: ControlPolicy) -> None:
    """No growth over 5000 steps and no per-step buffer: only CPython's float boxing (a
    constant few hundred bytes, freed at once), as in the loop's own allocation test."""
    rng = np.random.default_rng(1)
    outs = []
    for i in range(64):
        vals = tuple(rng.random(SCHEMA.n_outputs))
        if i % 9 == 0:
            vals = (np.nan, np.inf, -np.inf)
        outs.append(output(int(rng.integers(-1, 8)), float(rng.random()), i % 13 != 0, vals))
    tracemalloc.start()
    try:
        for k in range(640):  # warm under tracing: freelists, tracemalloc's own tables
            policy.step(outs[k % 64], k, k)
        base, _ = tracemalloc.get_traced_memory()
        tracemalloc.reset_peak()
        for k in range(5000):
            policy.step(outs[k % 64], 100 * k, k)
        current, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak - base < 1024, f"{policy.name}: step allocated {peak - base} B over 5000 steps"
    assert current - base < 256, f"{policy.name}: memory grew by {current - base} B"
