"""The intracortical bench lines run, match their SciPy/NumPy references, and print."""

from __future__ import annotations

import pytest

from neuroloop import bench


def test_intracortical_workloads_are_registered() -> None:
    names = bench.workload_names()
    assert {"intracortical-raw", "intracortical-binned", "channel-sweep"} <= set(names)


def test_binned_line_matches_its_reference() -> None:
    res = bench.run_bench(["intracortical-binned"], n_hops=20, warmup_hops=5)
    r = res["workloads"]["intracortical-binned"]
    assert r["max_rel_diff"] <= 1e-6 and r["n_outputs"] == 2048 + 2
    assert "intracortical-binned" in bench.format_bench(res)


@pytest.mark.slow
def test_channel_sweep_reports_per_channel_cost(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(bench, "SWEEP_CHANNELS", (8, 16))
    r = bench.bench_channel_sweep(n_hops=5, warmup_hops=0)
    rows = r["sweep"]
    assert [(x["kernel"], x["n_channels"]) for x in rows] == [
        ("spike-band", 8), ("spike-band", 16), ("band-power", 8), ("band-power", 16)]
    assert rows[0]["per_channel_vs_64"] == 1.0
    assert all(x["max_rel_diff"] <= 1e-6 for x in rows)
    text = bench.format_bench({"workloads": {"channel-sweep": r}})
    assert "ns/ch" in text and "speed-up" in text
