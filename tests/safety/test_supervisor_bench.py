"""The supervisor bench workload returns the shared result shape and validates its output."""

from __future__ import annotations

from neuroloop.safety.bench import bench_supervisor


def test_bench_supervisor_shape_and_no_violation():
    res = bench_supervisor(n_hops=300, warmup_hops=20)
    assert res["workload"] == "supervisor"
    assert set(res["neuroloop_us"]) >= {"p50", "p99", "p999", "max"}
    assert res["neuroloop_us"]["p50"] > 0
    assert res["violations"] == 0
    assert res["clamped_cycles"] > 0  # the stream does make the interlocks act
    assert set(res["targets"]) == {"p99<=20us", "violations==0"}
