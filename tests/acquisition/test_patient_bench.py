"""The synthetic patient's bench workloads: registered, and the SciPy reference agrees."""

from __future__ import annotations

import pytest

from neuroloop import bench
from neuroloop.acquisition.bench import bench_patient_bsi, bench_patient_eeg


def test_patient_workloads_are_registered() -> None:
    assert {"patient-bsi", "patient-eeg-bci"} <= set(bench.workload_names())


@pytest.mark.parametrize("fn", [bench_patient_bsi, bench_patient_eeg])
def test_patient_bench_matches_the_scipy_reference(fn) -> None:  # noqa: ANN001
    res = fn(n_hops=40, warmup_hops=3)
    assert res["n_hops"] == 40
    assert res["max_rel_diff"] <= 1e-9 and res["max_abs_diff"] < 1e-6
    assert res["neuroloop_us"]["p50"] > 0 and res["reference_us"]["p50"] > 0
    assert res["max_realtime_factor"] > 0
    assert res["targets"]["max_rel_diff<=1e-9"]
    assert "patient" in bench.format_bench({"workloads": {res["workload"]: res}})
