"""The beta biomarker (compiled EMA of band power) against its SciPy reference; the pipeline
rejects the stimulation artifact; the decoder ranks it in the calibration distribution."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from reference import biomarker_ref

from neuroloop.decoders import make_decoder
from neuroloop.decoders._biomarker_kernels import rank_percent
from neuroloop.dsp.biomarker import BandPowerBiomarker, BiomarkerPipeline, smoothing_alpha
from neuroloop.dsp.features import LOG_POWER_EPS


@settings(max_examples=40)
@given(seed=st.integers(0, 2**31), n_feat=st.integers(1, 6), hops=st.integers(1, 60),
       smoothing=st.floats(0.0, 5.0))
def test_biomarker_kernel_matches_scipy(seed, n_feat, hops, smoothing) -> None:
    rng = np.random.default_rng(seed)
    x = rng.normal(2.0, 3.0, size=(hops, n_feat))
    index = sorted(set(rng.integers(0, n_feat, size=n_feat).tolist()))
    marker = BandPowerBiomarker(index, 0.1, smoothing)
    online = np.array([marker.step(row) for row in x])
    ref = biomarker_ref(x, index, smoothing_alpha(smoothing, 0.1), LOG_POWER_EPS)
    np.testing.assert_allclose(online, ref, rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(marker.process(x), ref, rtol=1e-10, atol=1e-10)


def test_a_nonfinite_hop_is_nan_and_leaves_the_state() -> None:
    m = BandPowerBiomarker([0], 0.1, 1.0)
    a = m.step(np.array([1.0]))
    assert math.isnan(m.step(np.array([np.nan])))
    b = m.step(np.array([1.0]))
    assert a == pytest.approx(b)


def test_rank_percent_matches_numpy_interp() -> None:
    rng = np.random.default_rng(0)
    q = np.percentile(rng.normal(size=500), np.linspace(0, 100, 101))
    for v in np.concatenate([rng.normal(size=200) * 2, [q[0], q[-1], q[50]]]):
        assert rank_percent(float(v), q) == pytest.approx(
            np.interp(v, q, np.linspace(0, 100, 101)), abs=1e-9)
    assert rank_percent(math.inf, q) == 100.0 and math.isnan(rank_percent(math.nan, q))


def _lfp(seed: int, amp: float, seconds: float = 20.0, **kw) -> np.ndarray:
    from neuroloop.acquisition.lfp_patient import LfpPatientSource

    src = LfpPatientSource(seed=seed, **kw)
    out = np.zeros((25, 2))
    lab = np.zeros(25, np.int8)
    xs = []
    for k in range(int(seconds * 10)):
        src.stimulation_applied(np.array([0.0, -amp, 0.0, 0.0]), 130.0, 60.0, (k + 2) * 25)
        src.read_into(out, lab)
        xs.append(out.copy())
    return np.concatenate(xs)


def test_the_pipeline_rejects_the_stimulation_artifact() -> None:
    """Same patient, no suppression effect (depth 0): with a large artifact, beta power moves
    by less than 1 dB with the notch at 10 Hz and its harmonics, by many dB without it."""
    clean = _lfp(4, 3.0, depth=0.0, artifact_uv_per_ma=0.0)
    dirty = _lfp(4, 3.0, depth=0.0, artifact_uv_per_ma=30.0)
    kw = dict(n_channels=2, sampling_rate_hz=250.0, hop_samples=25, band_hz=[13.0, 30.0],
              smoothing_s=0.5)
    notched = BiomarkerPipeline(notch_hz=[10.0], **kw)
    plain = BiomarkerPipeline(**kw)
    settle = 40
    d_notched = np.abs(notched.process(dirty) - notched.process(clean))[settle:, 0]
    d_plain = np.abs(plain.process(dirty) - plain.process(clean))[settle:, 0]
    assert np.median(d_notched) < 1.0
    assert np.median(d_plain) > 5.0


def test_pipeline_step_equals_process() -> None:
    x = _lfp(1, 1.0, seconds=5.0)
    p = BiomarkerPipeline(2, 250.0, 25, [13.0, 30.0], 0.5, notch_hz=[10.0])
    offline = p.process(x)
    p.reset()
    online = np.array([p.step(x[h * 25:(h + 1) * 25]).copy() for h in range(x.shape[0] // 25)])
    np.testing.assert_allclose(online, offline, rtol=1e-12)


def test_decoder_ranks_the_biomarker_and_round_trips(tmp_path) -> None:
    rng = np.random.default_rng(1)
    X = rng.normal(10.0, 2.0, size=(400, 1))
    dec = make_decoder("beta-biomarker", state_percentile=75.0)
    dec.fit(X, None, state_names=("rest", "beta_burst"))
    assert dec.output_schema_.output_names == ("beta_power_db", "beta_percentile")
    hi = dec.step(np.array([20.0]))
    assert hi.valid and hi.state == 1 and hi.values[1] == 100.0
    lo = dec.step(np.array([float(np.percentile(X[20:, 0], 10))]))
    assert lo.state == 0 and lo.values[1] == pytest.approx(10.0, abs=0.5)
    assert not dec.step(np.array([np.nan])).valid
    path = dec.save(tmp_path / "d.npz")
    from neuroloop.decoders import load_decoder

    again = load_decoder(path)
    np.testing.assert_array_equal(again.quantiles_, dec.quantiles_)
    assert again.step(np.array([12.0])).values[1] == dec.step(np.array([12.0])).values[1]


def test_real_beta_ecog_biomarker_matches_reference(shared_data) -> None:
    path = shared_data / "ecog" / "beta_ecog_m1.npy"
    if not path.exists():
        pytest.skip("shared data absent")
    from neuroloop.acquisition import open_source

    src = open_source(f"npy://{path}?rate=1000&decimate=4&channels=0,0").open()
    x = src.read(2500).data.copy()
    p = BiomarkerPipeline(2, 250.0, 25, [13.0, 30.0], 0.5)
    got = p.process(x)[:, 0]
    ref = biomarker_ref(p.bands.process(x), [0, 1], smoothing_alpha(0.5, 0.1), LOG_POWER_EPS)
    np.testing.assert_allclose(got, ref, rtol=1e-10)
    # beta dominates this recording: its beta power is far above a white-noise floor
    assert np.median(got[20:]) > 20.0


def test_bench_workload_matches_its_reference() -> None:
    from neuroloop import bench

    assert "adbs" in bench.workload_names()
    r = bench.run_bench(["adbs"], n_hops=80, warmup_hops=5)["workloads"]["adbs"]
    assert r["max_rel_diff"] <= 1e-6 and r["state_mismatches"] == 0


def test_biomarker_decoder_contract_no_allocation_and_invalid_input() -> None:
    """The BaseDecoder contract for the unsupervised biomarker decoder: probabilities sum to
    1, confidence is the state's probability, invalid input gives rest, predict_proba has a
    row per hop, and step allocates nothing and compiles nothing after warmup."""
    import tracemalloc

    from neuroloop._jit import compiled_signature_count

    rng = np.random.default_rng(3)
    X = rng.normal(5.0, 1.0, size=(300, 1))
    dec = make_decoder("beta-biomarker").fit(X)
    dec.warmup()
    for x in X[:50]:
        out = dec.step(x)
        assert out.valid and np.isclose(out.probabilities.sum(), 1.0)
        assert out.confidence == pytest.approx(out.probabilities[out.state])
    bad = dec.step(np.array([np.inf]))
    assert (bad.valid, bad.state, bad.confidence) == (False, 0, 0.0)
    assert np.allclose(dec.predict_proba(X).sum(axis=1), 1.0)
    count = compiled_signature_count(rank_percent)
    rows = [np.ascontiguousarray(x) for x in X]
    tracemalloc.start()
    try:
        base, _ = tracemalloc.get_traced_memory()
        tracemalloc.reset_peak()
        for i in range(2000):
            dec.step(rows[i % len(rows)])
        current, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak - base < 1024 and current - base < 256
    assert compiled_signature_count(rank_percent) == count
