"""`neuroloop bench`: structure of the result and equality of the two paths (never timing)."""

from __future__ import annotations

from typing import Any

import pytest

from neuroloop import bench
from neuroloop.errors import ConfigError

STATS = {"p50", "p99", "p999", "max", "mean"}


@pytest.fixture(scope="module")
def result() -> dict[str, Any]:
    return bench.run_bench(["bsi-ecog", "eeg"], n_hops=60, warmup_hops=5)


def test_builtin_workloads_are_registered() -> None:
    assert bench.workload_names()[:2] == ["bsi-ecog", "eeg"]


def test_result_structure(result: dict[str, Any]) -> None:
    assert result["n_hops"] == 60 and result["warmup_hops"] == 5
    assert set(result["workloads"]) == {"bsi-ecog", "eeg"}
    assert {"python", "numpy", "scipy", "numba"} <= set(result["machine"])
    for name, r in result["workloads"].items():
        assert r["workload"] == name
        assert r["n_hops"] == 60
        for key in ("neuroloop_us", "reference_us"):
            assert set(r[key]) == STATS
            assert 0 < r[key]["p50"] <= r[key]["p99"] <= r[key]["p999"] <= r[key]["max"]
        assert r["speedup_median"] == pytest.approx(r["reference_us"]["p50"]
                                                    / r["neuroloop_us"]["p50"])
        assert all(isinstance(v, bool) for v in r["targets"].values())
    bsi = result["workloads"]["bsi-ecog"]
    assert (bsi["n_channels"], bsi["sampling_rate_hz"], bsi["hop_samples"]) == (64, 586.0, 59)
    assert bsi["n_features"] == 512 and bsi["n_outputs"] == 512 + 7
    assert set(bsi["targets"]) == {"speedup_median>=10", "p99<=150us", "max_rel_diff<=1e-6"}
    eeg = result["workloads"]["eeg"]
    assert (eeg["n_channels"], eeg["sampling_rate_hz"], eeg["hop_samples"]) == (32, 250.0, 25)
    assert eeg["n_features"] == 64 and eeg["n_outputs"] == 64 + 3


def test_neuroloop_path_equals_reference(result: dict[str, Any]) -> None:
    for r in result["workloads"].values():
        assert r["max_rel_diff"] <= 1e-6
        assert r["max_abs_diff"] <= 1e-6
        assert r["targets"]["max_rel_diff<=1e-6"]
    eeg = result["workloads"]["eeg"]
    assert eeg["state_mismatches"] == 0
    assert eeg["state_changes"] > 0  # the gate really moved during the comparison
    assert result["workloads"]["bsi-ecog"]["state_mismatches"] is None


def test_format_bench_is_a_table(result: dict[str, Any]) -> None:
    text = bench.format_bench(result)
    assert "p50 us" in text and "p99.9 us" in text
    for name in ("bsi-ecog", "eeg"):
        assert name in text
    assert text.count("neuroloop") >= 2 and text.count("reference") >= 2
    assert "speedup" in text and "targets:" in text


def test_registered_workload_runs_and_formats(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(bench, "_WORKLOADS", dict(bench._WORKLOADS))
    calls = []

    def fake(n_hops: int, warmup_hops: int) -> dict[str, Any]:
        calls.append((n_hops, warmup_hops))
        return {"neuroloop_us": {"p50": 1.0, "p99": 2.0, "p999": 3.0, "max": 4.0},
                "flushes": 3, "targets": {"p99<=20us": True}}

    bench.register_workload("fake", fake)
    bench.register_workload("lazy", "neuroloop.bench:latency_stats_us")
    assert bench.workload_names()[-2:] == ["fake", "lazy"]
    res = bench.run_bench(["fake"], n_hops=7, warmup_hops=1)
    assert calls == [(7, 1)]
    assert res["workloads"]["fake"]["workload"] == "fake"
    assert res["all_targets_pass"] is True
    text = bench.format_bench(res)
    assert "fake" in text and "flushes 3" in text and "p99<=20us PASS" in text


def test_bad_arguments_are_config_errors() -> None:
    with pytest.raises(ConfigError, match="unknown bench workload 'nope'; use one of: bsi-ecog"):
        bench.run_bench(["nope"])
    with pytest.raises(ConfigError, match="n_hops=0"):
        bench.run_bench(["eeg"], n_hops=0)
    with pytest.raises(TypeError):
        bench.register_workload("x", 42)  # type: ignore[arg-type]
