"""dsp.features = "covariance": the compiled hop-covariance pipeline equals SciPy/NumPy."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from neuroloop.dsp import CovariancePipeline
from neuroloop.errors import ConfigError
from tests.reference import CovariancePipelineRef


@pytest.mark.parametrize("car", [True, False])
def test_step_and_process_equal_the_reference(car: bool) -> None:
    rng = np.random.default_rng(0)
    pipe = CovariancePipeline(6, 160.0, 16, [[8, 13], [13, 30]], car=car, notch_hz=[60.0])
    ref = CovariancePipelineRef(6, pipe.bank_sos, pipe.notch_sos, car)
    x = rng.normal(0, 20, (16 * 40, 6))
    got = np.array([pipe.step(x[h * 16:(h + 1) * 16]).copy() for h in range(40)])
    want = np.array([ref.step(x[h * 16:(h + 1) * 16]) for h in range(40)])
    assert got.shape == (40, 2 * 21) and pipe.n_features == 42
    np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(pipe.process(x), want, rtol=1e-9, atol=1e-9)
    assert pipe.feature_names[1] == "ch0*ch1:8-13Hz"


def test_nan_input_is_non_finite_and_the_state_recovers() -> None:
    pipe = CovariancePipeline(4, 250.0, 25, [[8, 30]])
    rng = np.random.default_rng(1)
    for _ in range(5):
        pipe.step(rng.normal(size=(25, 4)))
    bad = rng.normal(size=(25, 4))
    bad[3, 1] = np.nan
    assert not np.all(np.isfinite(pipe.step(bad)))
    assert np.all(np.isfinite(pipe.bank_state)) and np.all(np.isfinite(pipe.notch_state))
    assert np.all(np.isfinite(pipe.step(rng.normal(size=(25, 4)))))


def test_real_eeg_covariances_are_spd(shared_data: Path) -> None:
    from neuroloop.io.edf import read_edf

    x, fs, _, _ = read_edf(shared_data / "eegmmi" / "S001R04.edf")
    pipe = CovariancePipeline(64, fs, 16, [[8, 30]], notch_hz=[60.0])
    X = pipe.process(x[:1600])
    iu = np.triu_indices(64)
    C = np.zeros((64, 64))
    C[iu] = X[-10:].mean(axis=0)
    C = C + np.triu(C, 1).T
    w = np.linalg.eigvalsh(C)
    assert w[-1] > 0 and w[0] > -1e-9 * w[-1]  # PSD (CAR removes one dimension)


def test_scenario_key_selects_it() -> None:
    from neuroloop.config import load_scenario
    from neuroloop.runtime.session import build_pipeline

    sc = load_scenario(Path(__file__).resolve().parents[2] / "docs/examples/eegmmi-lr.toml")
    assert isinstance(build_pipeline(sc), CovariancePipeline)
    with pytest.raises(ConfigError, match="dsp.features"):
        from neuroloop.config import scenario_from_dict

        table = {"scenario": {"name": "x", "intentions": ["rest", "go"]},
                 "source": {"url": "synthetic://eeg-bci", "sampling_rate_hz": 250.0,
                            "n_channels": 4},
                 "dsp": {"hop_samples": 25, "bands_hz": [[8, 30]], "features": "wavelets"},
                 "decoder": {"kind": "lda"}, "stimulation": {"array": "paddle-5-6-5"},
                 "control": {}, "safety": {}, "runtime": {}}
        scenario_from_dict(table)
