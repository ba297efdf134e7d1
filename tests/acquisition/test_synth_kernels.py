"""The synthetic patient's compiled kernels against independent Python/SciPy references."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from numpy.testing import assert_allclose, assert_array_equal
from scipy import signal, stats
from synth_reference import synth_reference, xoshiro256ss, ziggurat_normals

from neuroloop.acquisition import _synth_kernels as K
from neuroloop.acquisition._synth_models import aperiodic_sos, bandpass_sos, unit_variance
from neuroloop.acquisition.synthetic import SyntheticSource


def test_xoshiro_matches_published_vector_and_python_reference() -> None:
    # xoshiro256** from state {1, 2, 3, 4}: the authors' reference implementation's outputs
    state = np.array([1, 2, 3, 4], dtype=np.uint64)
    out = np.empty(4, np.uint64)
    K.xoshiro_fill(state, out)
    assert out.tolist() == [11520, 0, 1509978240, 1215971899390074240]
    for keys in [(0,), (1, 0, 7), (2**63 - 1, 5)]:
        s = K.xoshiro_seed_state(*keys)
        ref = xoshiro256ss(s.tolist())
        got = np.empty(2000, np.uint64)
        K.xoshiro_fill(s, got)
        assert got.tolist() == [next(ref) for _ in range(2000)]


def test_seed_state_separates_keys() -> None:
    a = K.xoshiro_seed_state(1, 0)
    b = K.xoshiro_seed_state(0, 1)
    c = K.xoshiro_seed_state(1, 0)
    assert not np.array_equal(a, b)
    assert_array_equal(a, c)
    assert a.dtype == np.uint64 and a.any()


def test_ziggurat_tables_have_equal_layer_areas() -> None:
    x, ratio = K.ziggurat_tables()
    assert x[1] == K.ZIG_R and x[-1] == 0.0
    assert np.all(np.diff(x[1:]) < 0)
    f = np.exp(-0.5 * x**2)
    # every layer i >= 1 is a rectangle of area V: x[i] * (f(x[i+1]) - f(x[i]))
    areas = x[1:-1] * (f[2:] - f[1:-1])
    assert_allclose(areas, K.ZIG_V, rtol=1e-6)
    assert_allclose(ratio, x[1:] / x[:-1])


@pytest.mark.parametrize("seed", [0, 3, 12345])
def test_normals_match_python_ziggurat(seed: int) -> None:
    s = K.xoshiro_seed_state(seed)
    ref = ziggurat_normals(xoshiro256ss(s.tolist()), 20_000)
    got = np.empty(20_000)
    K.normal_fill(s, got)
    assert_allclose(got, ref, rtol=1e-12, atol=0)


def test_normals_are_standard_normal() -> None:
    z = np.empty(400_000)
    K.normal_fill(K.xoshiro_seed_state(42), z)
    assert abs(z.mean()) < 0.01
    assert abs(z.std() - 1.0) < 0.01
    assert abs(stats.kurtosis(z)) < 0.05
    assert stats.kstest(z, "norm").pvalue > 1e-3
    # tail mass beyond the ziggurat base R is drawn by the tail algorithm
    assert_allclose(np.mean(np.abs(z) > K.ZIG_R), 2 * stats.norm.sf(K.ZIG_R), rtol=0.25)


@given(onsets=st.lists(st.integers(1, 500), min_size=0, max_size=20),
       first=st.integers(0, 6000), n=st.integers(0, 700))
def test_fill_labels_matches_searchsorted(onsets: list[int], first: int, n: int) -> None:
    on = np.concatenate([[0], np.cumsum(onsets)]).astype(np.int64)
    states = (np.arange(on.shape[0]) % 7).astype(np.int8)
    out = np.full(n + 3, -5, np.int8)
    K.fill_labels(on, states, first, n, out)
    ref = states[np.searchsorted(on, np.arange(first, first + n), side="right") - 1]
    assert_array_equal(out[:n], ref)
    assert np.all(out[n:] == -5)


def _reference_run(src: SyntheticSource, n: int) -> tuple[np.ndarray, np.ndarray]:
    """What the model must produce for samples 0..n-1 (fresh source, not read yet)."""
    m = src._model
    n_src = m.sos.shape[0]
    z = np.empty(n * n_src)
    K.normal_fill(src._rng.copy(), z)  # the kernel draws sample-major, then source by source
    src.schedule.extend_to(n)
    src.artifacts.extend_to(n)
    return synth_reference(n, z.reshape(n, n_src), src.schedule.onsets, src.schedule.states,
                           src.schedule.strengths, m, src._env_alpha,
                           src.info.sampling_rate_hz, src.rail_uv, src.artifacts,
                           src.info.n_channels)


@pytest.mark.parametrize(("preset", "seed", "seconds"), [("bsi", 7, 25.0), ("eeg-bci", 2, 20.0)])
def test_synth_block_matches_scipy_reference(preset: str, seed: int, seconds: float) -> None:
    # a high artifact rate so that every artifact kind is exercised
    src = SyntheticSource(preset, seed=seed, artifact_rate_per_min=40.0, duration_s=seconds,
                          max_block_samples=997)
    n = src.n_samples_total
    ref_out, ref_lab = _reference_run(src, n)
    kinds = {e["kind"] for e in src.artifacts.events(0, n)}
    assert kinds == {"spike", "saturation", "flat"}
    assert len(set(src.schedule.states[src.schedule.onsets < n].tolist())) == len(
        src.info.intention_names)
    got = np.empty_like(ref_out)
    lab = np.empty(n, np.int8)
    pos = 0
    with src:
        for size in [1, 58, 997, 3, 500] * 1000:  # odd block sizes carry every state
            block = src.read(size)
            if block is None:
                break
            got[pos:pos + block.n_samples] = block.data
            lab[pos:pos + block.n_samples] = block.labels
            pos += block.n_samples
    assert pos == n
    assert_array_equal(lab, ref_lab)
    assert_allclose(got, ref_out, rtol=1e-6, atol=1e-9)
    assert np.any(np.abs(got) == src.rail_uv)  # the saturation reached the rail


@pytest.mark.parametrize("sos", [
    unit_variance(aperiodic_sos(1.8, 1.0, 120.0, 586.0)),
    unit_variance(bandpass_sos(13.0, 30.0, 586.0)),
    unit_variance(bandpass_sos(70.0, 150.0, 586.0)),
])
def test_source_filter_is_sosfilt_with_state_across_blocks(sos: np.ndarray) -> None:
    """One source, one channel, no modulation: the kernel is sosfilt of its own deviates."""
    n = 3000
    sos3 = np.zeros((1, 3, 6))
    sos3[0, :sos.shape[0]] = sos
    rng = K.xoshiro_seed_state(9)
    z = np.empty(n)
    K.normal_fill(rng.copy(), z)
    zi = np.zeros((3, 2, 1))
    out = np.empty((n, 1))
    lab = np.empty(n, np.int8)
    args = dict(
        onsets=np.zeros(1, np.int64), states=np.zeros(1, np.int8), strengths=np.ones(1),
        cursor=np.array([0, 0, -1], np.int64), rng=rng,
        zi=zi, logmod=np.zeros((1, 1)), envelope=np.ones((2, 1)), env_alpha=0.5,
        line_hz=np.zeros(0), line_a=np.zeros((0, 1)),
        line_b=np.zeros((0, 1)), sampling_rate_hz=586.0, rail_uv=1e300,
        ev_onset=np.zeros(0, np.int64), ev_len=np.zeros(0, np.int64),
        ev_kind=np.zeros(0, np.int8), ev_amp=np.zeros(0), ev_tau=np.zeros(0),
        ev_w=np.zeros((0, 1)), ev_hold=np.zeros((0, 1)), scratch=np.zeros(2),
    )
    args["run_ptr"], args["run_sos"] = K.source_runs(
        K.pack_sections(sos3, np.array([sos.shape[0]], np.int64)))
    args["slot_plan"], args["slot_w"] = K.lead_field_slots(
        np.array([0, 1], np.int64), np.zeros(1, np.int64), np.array([2.5]), 1)
    args["mains"] = K.mains_table(
        args["line_hz"], args["line_a"], args["line_b"], 586.0)
    pos = 0
    for size in (1, 1000, 59, 1940):
        part = np.empty((size, 1))
        K.synth_block(size, pos, part, lab, **args)
        out[pos:pos + size] = part
        pos += size
    ref = 2.5 * signal.sosfilt(sos, z)
    assert_allclose(out[:, 0], ref, rtol=1e-6, atol=1e-12)
    # the unit-variance normalisation holds for the filtered noise
    long = np.empty(200_000)
    K.normal_fill(K.xoshiro_seed_state(10), long)
    assert abs(np.std(signal.sosfilt(sos, long)) - 1.0) < 0.05
